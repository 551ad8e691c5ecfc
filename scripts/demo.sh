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
packer_args=()
if command -v packer >/dev/null 2>&1 && packer version 2>/dev/null | grep -qE 'Packer v1\.(1[0-9]|[2-9][0-9])'; then
  echo "==> $(packer version | head -1) found: installing the plugin into it and baking with packer build"
  make install-plugin
  packer validate -var elastichq_sha512="$(printf '0%.0s' {1..128})" -var cloudwatch_agent_sha512="$(printf '0%.0s' {1..128})" example.pkr.hcl
  packer_args=(-packer "$(command -v packer)")
else
  echo "==> no Packer >= 1.10 on PATH: driving the plugin binary over Packer's plugin protocol directly"
fi
exec go run ./internal/demo -plugin bin/packer-plugin-elasticsearch "${packer_args[@]}" -template example.pkr.hcl -reports reports
