#!/usr/bin/env bash
# make demo: the offline main job on the local test cloud (see README).
# Needs Linux and root; installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  echo "demo: needs Linux and root (systemd-nspawn guests, network namespaces): run sudo make demo" >&2
  exit 1
fi
./scripts/install-deps.sh
# Real Packer bakes the example: the one `make deps` built (pinned, under
# $ESBAKE_CACHE/bin), or PACKER=<path> for another Packer >= 1.10. The plugin
# is installed into a plugin dir of the checkout's own (.cache/, ignored by
# git) as a release version, so `packer init` accepts it too.
packer=${PACKER:-${ESBAKE_CACHE:-/var/cache/esbake}/bin/packer}
packer_args=()
if [ "${ESBAKE_DEMO_PROTOCOL:-}" = 1 ]; then
  echo "==> ESBAKE_DEMO_PROTOCOL=1: driving the plugin binary over Packer's plugin protocol directly (no Packer)"
elif "$packer" version 2>/dev/null | grep -qE 'Packer v1\.(1[0-9]|[2-9][0-9])'; then
  export PACKER_PLUGIN_PATH=${PACKER_PLUGIN_PATH:-$PWD/.cache/packer-plugins}
  export CHECKPOINT_DISABLE=1
  echo "==> $("$packer" version | head -1) ($packer): installing the plugin into $PACKER_PLUGIN_PATH and baking with packer build"
  make install-plugin PACKER="$packer" PRERELEASE=
  "$packer" init example.pkr.hcl
  # Packer reads var-files named *.pkrvars.hcl: validate with the shipped sample.
  vars=$(mktemp -d)
  cp checksums.pkrvars.hcl.example "$vars/checksums.pkrvars.hcl"
  "$packer" validate -var-file="$vars/checksums.pkrvars.hcl" example.pkr.hcl
  rm -rf "$vars"
  packer_args=(-packer "$packer")
else
  echo "demo: no Packer >= 1.10 at $packer: run make deps (it builds Packer 1.16.0), set PACKER=<path>, or ESBAKE_DEMO_PROTOCOL=1 to drive the plugin protocol directly" >&2
  exit 1
fi
exec go run ./internal/demo -plugin bin/packer-plugin-elasticsearch "${packer_args[@]}" -template example.pkr.hcl -reports reports
