#!/usr/bin/env bash
# Runs every libFuzzer target built in <build-dir>/bin for <seconds> each, on a scratch copy of
# its seed corpus (fuzz/corpus/<target without fuzz_>/), so the committed corpus never grows.
# Prints one line per target with the number of executions; exits non-zero if any target
# crashes, leaks, times out or exceeds the RSS limit. Crash inputs are kept in
# <build-dir>/fuzz-artifacts/ for replay: `<build-dir>/bin/fuzz_x <artifact>`.
#
# Usage: scripts/fuzz-smoke.sh <build-dir> <seconds>
set -uo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <build-dir> <seconds>" >&2
  exit 2
fi
build=$1
secs=$2
root=$(cd "$(dirname "$0")/.." && pwd)

shopt -s nullglob
targets=()
for t in "$build"/bin/fuzz_*; do
  name=$(basename "$t")
  [ -x "$t" ] && [ "$name" != fuzz_corpus_gen ] && targets+=("$t")
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz-smoke: no fuzz targets in $build/bin (build with 'make fuzz')" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hg-fuzz-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

failed=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  short=${name#fuzz_}
  corpus="$work/corpus-$short"
  mkdir -p "$corpus"
  if [ -d "$root/fuzz/corpus/$short" ]; then
    cp -R "$root/fuzz/corpus/$short/." "$corpus/"
  fi
  log="$work/$name.log"
  "$t" -max_total_time="$secs" -rss_limit_mb=1024 -max_len=4096 -timeout=10 \
       -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  seeds=$(find "$root/fuzz/corpus/$short" -type f 2>/dev/null | wc -l)
  if [ $rc -eq 0 ]; then
    printf 'fuzz-smoke: %-16s ok    %10s execs in %ss (%s seeds)\n' "$name" "${execs:-?}" "$secs" "$seeds"
  else
    failed=1
    printf 'fuzz-smoke: %-16s FAIL  exit %d after %s execs; artifacts in %s\n' \
      "$name" "$rc" "${execs:-?}" "$artifacts" >&2
    grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$log" | head -20 >&2
  fi
done
exit $failed
