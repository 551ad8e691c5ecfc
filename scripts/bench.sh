#!/usr/bin/env bash
# make bench: runs the project's benchmarks and writes docs/benchmarks.md with
# the figures and the commands that produced them. Needs what make test needs
# (root for the guest benchmarks); P3 builds conftest once into $ESBAKE_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/benchmarks.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

declare -a names=(P1 provision P2 P3 eval launch vm)
declare -A cmds=(
  [P1]="go test -run '^\$' -bench BenchmarkE2EBootVersusInstall -benchtime=1x -count=3 ./internal/e2e/"
  [provision]="go test -run '^\$' -bench BenchmarkE2EProvisionWholeNode -benchtime=3x ./internal/e2e/"
  [P2]="go test -run '^\$' -bench BenchmarkFleet1000 -benchtime=1x -count=2 ./audit/"
  [P3]="go test -run '^\$' -bench BenchmarkP3EngineVersusConftest -benchtime=3x ./audit/eval/"
  [eval]="go test -run '^\$' -bench '^BenchmarkEvaluate\$' -benchmem ./audit/eval/"
  [launch]="go test -run '^\$' -bench BenchmarkLaunch -benchtime=5x ./internal/testcloud/"
  [vm]="go test -run '^\$' -bench 'BenchmarkVM(RestoreToSSH|BootToSSH)' -benchtime=2x ./internal/testcloud/vm/"
)
declare -A titles=(
  [P1]="P1: per-boot config (esnode boot) versus a whole install (esnode install) on the same kind of guest"
  [provision]="Provisioning a whole node: elasticsearch-node through the plugin protocol and SSH on a fresh CIS-like guest"
  [P2]="P2: audit of 1,000 nodes over SSH, 10 % of them dead, slow or hostile (wall time, peak RSS)"
  [P3]="P3: policy evaluation throughput, our prepared OPA query versus conftest on the same inputs and policies"
  [eval]="Policy evaluation of one realistic facts document"
  [launch]="Local test cloud: guest start to SSH"
  [vm]="Local test cloud, QEMU backend: a VM restored from its saved state versus a full boot, to SSH"
)
for n in "${names[@]}"; do
  echo "==> ${titles[$n]}"
  echo "    ${cmds[$n]}"
  start=$(date +%s)
  bash -c "${cmds[$n]}" > "$tmp/$n.txt" 2>&1 || { cat "$tmp/$n.txt"; echo "bench: $n failed" >&2; exit 1; }
  echo "    done in $(( $(date +%s) - start ))s"
done

{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB,"
  echo "$(go version | cut -d' ' -f3-). Figures from one machine; a shared or loaded machine makes the absolute"
  echo "numbers noisy, while the ratios stay steadier."
  for n in "${names[@]}"; do
    echo
    echo "## ${titles[$n]}"
    echo
    echo '```'
    echo "${cmds[$n]}"
    echo '```'
    echo
    echo '```'
    grep -E '^(Benchmark|goos|goarch|cpu)' "$tmp/$n.txt" || true
    echo '```'
  done
} > "$out"
echo "bench: wrote $out"
