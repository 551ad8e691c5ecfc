#!/usr/bin/env bash
# make demo: the offline main job. Needs Linux; installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -s)" = Linux ] || { echo "demo: needs Linux" >&2; exit 1; }
./scripts/install-deps.sh
if command -v packer >/dev/null 2>&1 && packer version 2>/dev/null | grep -qE 'Packer v1\.(1[0-9]|[2-9][0-9])'; then
  echo "==> Packer $(packer version | head -1) found: packer validate through the installed plugin"
  make install-plugin
  packer validate -var elastichq_sha512="$(printf '0%.0s' {1..128})" -var cloudwatch_agent_sha512="$(printf '0%.0s' {1..128})" example.pkr.hcl
  exit 0
fi
go run ./internal/demo -plugin bin/packer-plugin-elasticsearch -template example.pkr.hcl
