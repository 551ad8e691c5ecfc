#!/bin/sh
# Runs packer-sdc for go:generate. struct-markdown finds the project root by
# walking up to a directory named packer-plugin-* (and loops forever when there
# is none), so it runs through a link with that name: checkouts may be named
# anything.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd -P)
link="${TMPDIR:-/tmp}/esbake-sdc-$(id -u)-$(printf %s "$root" | cksum | cut -d" " -f1)/packer-plugin-elasticsearch"
mkdir -p "$(dirname "$link")"
ln -sfn "$root" "$link"
here=$(pwd -P)
cd "$link${here#"$root"}"
exec go tool packer-sdc "$@"
