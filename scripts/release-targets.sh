#!/usr/bin/env bash
# Reads .goreleaser.yml on stdin and writes it with the plugin build's goos and
# goarch lists replaced by `targets:` (goreleaser's explicit target list), so
# `make release RELEASE_TARGETS=linux_amd64` builds only those platforms with
# the same archive and checksum settings as a full release.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 GOOS_GOARCH... <.goreleaser.yml" >&2; exit 2; }
for t in "$@"; do
  [[ $t =~ ^[a-z0-9]+_[a-z0-9]+(_[a-z0-9.]+)?$ ]] || { echo "release-targets: $t is not a goreleaser target (GOOS_GOARCH, e.g. linux_amd64)" >&2; exit 2; }
done
awk -v targets="$*" '
  /^    goos:$/ { n = split(targets, t, " "); print "    targets:"; for (i = 1; i <= n; i++) print "      - " t[i]; skip = 1; replaced = 1; next }
  skip && /^    goarch:$/ { next }
  skip && /^      - / { next }
  { skip = 0; print }
  END { if (!replaced) { print "release-targets: no goos list under builds in .goreleaser.yml" > "/dev/stderr"; exit 1 } }
'
