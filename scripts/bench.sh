#!/usr/bin/env bash
# make bench: runs the project's benchmarks and writes docs/benchmarks.md with
# the figures and the commands that produced them. Needs what make test needs
# (root for the guest benchmarks); P3 builds conftest once into $ESBAKE_CACHE.
# With arguments (scripts/bench.sh ssm P2) it runs only those cases and replaces
# only their sections of docs/benchmarks.md, keeping the other figures.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/benchmarks.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

declare -a names=(P1 provision P2 P2facts ssm P3 firewall eval launch vm)
declare -A cmds=(
  [P1]="go test -run '^\$' -bench BenchmarkE2EBootVersusInstall -benchtime=1x -count=3 ./internal/e2e/"
  [provision]="go test -run '^\$' -bench BenchmarkE2EProvisionWholeNode -benchtime=3x ./internal/e2e/"
  [P2]="go test -run '^\$' -bench '^BenchmarkFleet\$' -benchtime=1x -timeout 30m ./audit/"
  [P2facts]="go test -run '^\$' -bench '^BenchmarkFleetFacts\$' -benchtime=1x -timeout 60m ./audit/"
  [ssm]="go test -run '^\$' -bench BenchmarkSSMFleet10000 -benchtime=1x -count=2 ./audit/"
  [P3]="go test -run '^\$' -bench BenchmarkP3EngineVersusConftest -benchtime=3x ./audit/eval/"
  [firewall]="go test -run '^\$' -bench BenchmarkFirewallRules -benchtime=50x ./audit/eval/"
  [eval]="go test -run '^\$' -bench '^BenchmarkEvaluate\$' -benchmem ./audit/eval/"
  [launch]="go test -run '^\$' -bench BenchmarkLaunch -benchtime=5x ./internal/testcloud/"
  [vm]="go test -run '^\$' -bench 'BenchmarkVM(RestoreToSSH|BootToSSH)' -benchtime=2x ./internal/testcloud/vm/"
)
declare -A titles=(
  [P1]="P1: per-boot config (esnode boot) versus a whole install (esnode install) on the same kind of guest (esnode-boot.service at first boot, esnode boot's own work in it from its summary line, and each one's ratio to the install)"
  [provision]="Provisioning a whole node: elasticsearch-node through the plugin protocol and SSH on a fresh CIS-like guest"
  [P2]="P2: audit of 1,000 and 10,000 nodes over SSH serving realistic facts (60-rule firewall), 10 % dead, slow or hostile, every report format written (time to the last healthy node, slow-node tail, report writing, wall, process CPU, peak RSS, load)"
  [P2facts]="P2 without SSH: 10,000 and 100,000 nodes from --facts files (the same realistic document), every report format written (evaluation time, report writing, wall, process CPU, peak RSS, load)"
  [ssm]="Audit of 10,000 simulated instances over SSM Run Command through the emulator: tag target, MaxConcurrency 10 %, 1 % failing, 500 ms per script (wall time, API calls per node, peak RSS)"
  [P3]="P3: policy evaluation throughput, our prepared OPA query versus conftest on the same inputs and policies"
  [firewall]="P3, second case: cost per node of a 6-, 50- and 200-rule firewall (rules judged by esaudit's Go model, by the one-pass Rego library alone as opa and conftest run it, and by the pairwise library before it)"
  [eval]="Policy evaluation of one realistic facts document"
  [launch]="Local test cloud: guest start to SSH"
  [vm]="Local test cloud, QEMU backend: a VM restored from its saved state versus a full boot, to SSH"
)
all=("${names[@]}")
if [ $# -gt 0 ]; then
  for n in "$@"; do
    [ -n "${cmds[$n]+x}" ] || { echo "bench: unknown case $n (cases: ${all[*]})" >&2; exit 2; }
  done
  names=("$@")
fi
for n in "${names[@]}"; do
  echo "==> ${titles[$n]}"
  echo "    ${cmds[$n]}"
  start=$(date +%s)
  # Each section carries when it ran and the load then: partial runs
  # refresh some sections only, and load moves the absolute figures.
  echo "Run $(date -u '+%Y-%m-%d %H:%M') UTC; 1-minute load at the start $(cut -d' ' -f1 /proc/loadavg)." > "$tmp/$n.when"
  bash -c "${cmds[$n]}" > "$tmp/$n.txt" 2>&1 || { cat "$tmp/$n.txt"; echo "bench: $n failed" >&2; exit 1; }
  echo "    done in $(( $(date +%s) - start ))s"
done

section() {
  local n=$1
  echo "## ${titles[$n]}"
  echo
  cat "$tmp/$n.when"
  echo
  echo '```'
  echo "${cmds[$n]}"
  echo '```'
  echo
  echo '```'
  grep -E '^(Benchmark|goos|goarch|cpu)' "$tmp/$n.txt" || true
  echo '```'
}

if [ $# -gt 0 ] && [ -f "$out" ]; then
  # Replace (or append) only the sections that ran; keep the rest of the file.
  cp "$out" "$tmp/doc.md"
  for n in "${names[@]}"; do
    section "$n" > "$tmp/section.md"
    # A new section goes before the next case's, in the order of the full run.
    following="" seen=""
    for m in "${all[@]}"; do
      if [ -n "$seen" ] && [ -z "$following" ]; then following="## ${titles[$m]}"; fi
      [ "$m" = "$n" ] && seen=1
    done
    present=$(grep -cxF "## ${titles[$n]}" "$tmp/doc.md" || true)
    awk -v title="## ${titles[$n]}" -v nexttitle="$following" -v present="$present" -v file="$tmp/section.md" '
      function emit() { while ((getline line < file) > 0) print line; close(file); done = 1 }
      $0 == title { emit(); skip = 1; next }
      present == 0 && !done && $0 == nexttitle { emit(); print "" }
      skip && /^## / { skip = 0; print ""; }
      !skip { print }
      END { if (!done) { print ""; emit() } }' "$tmp/doc.md" > "$tmp/doc2.md"
    mv "$tmp/doc2.md" "$tmp/doc.md"
  done
  cp "$tmp/doc.md" "$out"
  echo "bench: updated ${names[*]} in $out"
  exit 0
fi

{
  echo "# Benchmarks"
  echo
  echo "Written whole by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB,"
  echo "$(go version | cut -d' ' -f3-). Figures from one machine; a shared or loaded machine makes the absolute"
  echo "numbers noisy, while the ratios stay steadier."
  for n in "${names[@]}"; do
    echo
    section "$n"
  done
} > "$out"
echo "bench: wrote $out"
