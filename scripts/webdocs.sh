#!/usr/bin/env bash
# Turns the docs rendered by `packer-sdc renderdocs` into the integration
# registry's .web-docs layout:
#   <rendered>/README.md                  -> .web-docs/README.md
#   <rendered>/builders/<slug>.mdx        -> .web-docs/components/builder/<slug>/README.md
#   <rendered>/provisioners/<slug>.mdx    -> .web-docs/components/provisioner/<slug>/README.md
# A component page loses its front matter and its H1 (the registry shows the
# component's name from metadata.hcl). .web-docs/metadata.hcl is written by
# hand and left alone. Only component pages are taken: docs/ also holds
# esnode.md, esaudit.md, policies.md and benchmarks.md, which are not part of
# the registry page.
set -euo pipefail
rendered=$1
out=$2

[ -f "$rendered/README.md" ] || { echo "webdocs: $rendered/README.md is missing (docs/README.md is the registry's plugin page)" >&2; exit 1; }
rm -rf "$out/components"
mkdir -p "$out"
cp "$rendered/README.md" "$out/README.md"

for folder in builders provisioners post-processors datasources; do
  case $folder in
    builders) kind=builder ;;
    provisioners) kind=provisioner ;;
    post-processors) kind=post-processor ;;
    datasources) kind=data-source ;;
  esac
  [ -d "$rendered/$folder" ] || continue
  for page in "$rendered/$folder"/*.mdx; do
    [ -e "$page" ] || continue
    slug=$(basename "$page" .mdx)
    mkdir -p "$out/components/$kind/$slug"
    # Drop the front matter (--- ... ---), then the first H1 and the blank
    # lines after it. Optional fields are Go pointers so that "unset" can
    # default; users write the HCL type: "(\*bool)" becomes "(bool)".
    awk '
      NR == 1 && $0 == "---" { fm = 1; next }
      fm { if ($0 == "---") fm = 0; next }
      !h1 && $0 == "" { next }
      !h1 && /^# / { h1 = 1; skip = 1; next }
      skip && $0 == "" { next }
      { skip = 0; gsub(/\(\\\*/, "("); print }
    ' "$page" >"$out/components/$kind/$slug/README.md"
    grep -q '^Type: `' "$out/components/$kind/$slug/README.md" ||
      { echo "webdocs: $page has no 'Type: \`<name>\`' line under its title" >&2; exit 1; }
  done
done
