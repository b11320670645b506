#!/usr/bin/env bash
# Counts per request, for running proxy processes under a wrk load: malloc calls (a perf uprobe
# on glibc's malloc), system calls, context switches. Use with `HG_E2E_HOLD=1 bench/e2e_bench.sh`
# (it prints the URL, Host and pids of each path). Uprobes slow malloc down a lot: use the counts,
# not the req/s of this run.
#
# Usage: scripts/per_request_counts.sh <url> <host> <pid>[,<pid>...] [seconds] [connections]
# Needs perf with uprobes (run as root); adds the probe probe_libc:malloc if it is missing.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 <url> <host> <pids> [seconds] [connections]" >&2
  exit 2
fi
url=$1 host=$2 pids=$3 dur=${4:-5} conns=${5:-64}
libc=$(ldd "/proc/${pids%%,*}/exe" | awk '/libc.so.6/ {print $3}')
perf probe -l 2> /dev/null | grep -q 'probe_libc:malloc ' ||
  perf probe -q -x "$libc" malloc > /dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
perf stat -x, -e probe_libc:malloc,raw_syscalls:sys_enter,context-switches -p "$pids" \
  -o "$out" -- sleep "$dur" &
stat_pid=$!
reqs=$(wrk -t 1 -c "$conns" -d "${dur}s" -H "Host: $host" "$url" | awk '/requests in/ {print $1}')
wait "$stat_pid"
echo "requests: $reqs (pids $pids, $conns connections, $dur s)"
awk -F, -v n="$reqs" '$3 != "" && $1 ~ /^[0-9]+$/ { printf "%-26s %10.2f per request\n", $3, $1 / n }' \
  "$out"
