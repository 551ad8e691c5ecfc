#!/usr/bin/env bash
# Builds real Packer from its Go module into $ESBAKE_CACHE/bin/packer, pinned
# by version and module sum. `go install` refuses the module (its go.mod has a
# replace directive), so it is downloaded with `go mod download` and built
# inside the downloaded module directory. The binary is keyed by the pin and
# the Go version: changing either rebuilds it.
set -euo pipefail

# Pin: bump both together (`go mod download -json github.com/hashicorp/packer@vX.Y.Z` prints the Sum).
packer_version=v1.16.0
packer_sum="h1:+e9/aNeyZuEGm9fGre3wfg2BNnj1AQj5HzboO4iEYuY="

cache=${ESBAKE_CACHE:-/var/cache/esbake}
bin="$cache/bin/packer"
key="github.com/hashicorp/packer@$packer_version $packer_sum $(go env GOVERSION)"
if [ -x "$bin" ] && [ "$(cat "$cache/bin/.packer.key" 2>/dev/null)" = "$key" ]; then
  exit 0
fi
mkdir -p "$cache/bin"
echo "install-packer: go build github.com/hashicorp/packer@$packer_version (about 10 minutes on 2 cores; cached in $bin)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The download verifies the module against the checksum database; the pin
# also checks it against the sum recorded here.
(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/packer@$packer_version") >"$tmp/download.json"
sum=$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",$/\1/p' "$tmp/download.json")
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$tmp/download.json")
if [ "$sum" != "$packer_sum" ]; then
  echo "install-packer: github.com/hashicorp/packer@$packer_version has module sum $sum, pinned $packer_sum; refusing to build it" >&2
  exit 1
fi
(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w' -o "$tmp/packer" .)
"$tmp/packer" version | grep -q "Packer ${packer_version}" || { echo "install-packer: built binary reports $("$tmp/packer" version | head -1), want $packer_version" >&2; exit 1; }
mv "$tmp/packer" "$bin"
printf '%s\n' "$key" >"$cache/bin/.packer.key"
