#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian/Ubuntu machine:
# Debian packages (only the missing ones) and Go tools, cached under
# $ESBAKE_CACHE/bin. Safe to run again; does nothing when all is there.
set -euo pipefail

cache=${ESBAKE_CACHE:-/var/cache/esbake}
need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: needs root to install $*; run: sudo $0" >&2
    exit 1
  fi
}

[ "$(uname -s)" = Linux ] || { echo "install-deps: needs Linux (systemd-nspawn, network namespaces)" >&2; exit 1; }
command -v go >/dev/null || { echo "install-deps: Go is not on PATH; install Go >= 1.26 first" >&2; exit 1; }

# command → Debian package
declare -A pkgs=(
  [debootstrap]=debootstrap
  [systemd-nspawn]=systemd-container
  [ip]=iproute2
  [iptables]=iptables
  [nft]=nftables
  [nsenter]=util-linux
  [ssh-keygen]=openssh-client
  [dpkg-deb]=dpkg
  [python3]=python3
  [unzip]=unzip
  [zip]=zip
  [chromium]=chromium
  # QEMU guest backend (internal/testcloud/vm)
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-img]=qemu-utils
  [socat]=socat
)
missing=()
for cmd in "${!pkgs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkgs[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root "${missing[*]}"
  if ! command -v apt-get >/dev/null; then
    echo "install-deps: no apt-get; install these packages by hand: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$cache/bin"
if [ ! -x "$cache/bin/ec2-metadata-mock" ]; then
  echo "install-deps: go install amazon-ec2-metadata-mock v1.13.0"
  GOBIN="$cache/bin" go install github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0
fi
# AWS's session-manager-plugin (ssh_interface = "session_manager" tunnels SSH
# through it), built from source: its module has no go.mod, so it is built
# in a throwaway module with every dependency pinned by the .pins file. The
# stamp keys the binary by the pins' content.
smp_pins="$(cd "$(dirname "$0")/.." && pwd)/internal/testcloud/session-manager-plugin.pins"
smp_key=$(sha256sum "$smp_pins" | cut -c1-64)
if [ ! -x "$cache/bin/session-manager-plugin" ] || [ "$(cat "$cache/bin/.session-manager-plugin.key" 2>/dev/null)" != "$smp_key" ]; then
  echo "install-deps: go build session-manager-plugin (pinned in $smp_pins)"
  smp_tmp=$(mktemp -d)
  trap 'rm -rf "$smp_tmp"' EXIT
  {
    echo "module esbake.invalid/session-manager-plugin-build"
    echo "go 1.26"
    echo "require ("
    grep -v '^#' "$smp_pins" | grep -v '^$' | sed 's/^/\t/'
    echo ")"
  } >"$smp_tmp/go.mod"
  (cd "$smp_tmp" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$smp_tmp/session-manager-plugin" \
    github.com/aws/session-manager-plugin/src/sessionmanagerplugin-main)
  mv "$smp_tmp/session-manager-plugin" "$cache/bin/session-manager-plugin"
  echo "$smp_key" >"$cache/bin/.session-manager-plugin.key"
  rm -rf "$smp_tmp"
  trap - EXIT
fi
if [ ! -x "$cache/bin/opa" ]; then
  echo "install-deps: go install opa v1.22.2"
  GOBIN="$cache/bin" go install github.com/open-policy-agent/opa@v1.22.2
fi

# Real Packer, built from its module and pinned by version and module sum
# (the real-Packer tests and `make demo` run it).
"$(dirname "$0")/install-packer.sh"

# Elasticsearch's bootstrap check needs vm.max_map_count >= 262144. The test
# cloud's instances are containers sharing this kernel, so it is set here, as
# it is on any host that runs Elasticsearch in containers.
if [ "$(cat /proc/sys/vm/max_map_count)" -lt 262144 ]; then
  need_root "vm.max_map_count=262144"
  echo "install-deps: sysctl -w vm.max_map_count=262144 (Elasticsearch bootstrap check; instances share this kernel)"
  sysctl -qw vm.max_map_count=262144
fi
