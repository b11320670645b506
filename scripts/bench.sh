#!/usr/bin/env bash
# Runs the protocol-core micro-benchmarks (bench/proto_bench.cpp) and prints Google Benchmark's
# table, then the transport benchmark (bench/tunnel_bench.cpp). Short per-benchmark minimum time
# so the proto part stays well under a minute; numbers on a shared or busy machine are indicative
# only (compare CPU time, not wall time; compare rows of one run, not runs).
#
# Usage: scripts/bench.sh <build-dir> [extra Google Benchmark flags...]
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 <build-dir> [benchmark flags...]" >&2
  exit 2
fi
build=$1
shift
bin="$build/bin/proto_bench"
if [ ! -x "$bin" ]; then
  echo "bench: $bin not found (configure with -DHG_BUILD_BENCH=ON and build the proto_bench target)" >&2
  exit 1
fi
echo "bench: $bin ($(nproc) cores, build type $(grep -m1 '^CMAKE_BUILD_TYPE' "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2 || echo '?'))"
"$bin" --benchmark_min_time=0.3 --benchmark_counters_tabular=false "$@"

# Transport benchmark (bench/tunnel_bench.cpp, issue 3): raw TCP/TLS/DTLS vs the TLS and DTLS
# tunnels on loopback, through hopgate-impair at 1 % loss / 20 ms RTT, and handshakes/s; one
# table, under 3 minutes. HG_TUNNEL_BENCH_ARGS adds flags (e.g. "--quick" for a ~30 s run).
tunnel="$build/bin/tunnel_bench"
impair="$build/bin/hopgate-impair"
if [ ! -x "$tunnel" ]; then
  echo "bench: $tunnel not found (build the tunnel_bench target); skipping the transport benchmark" >&2
else
  if [ ! -x "$impair" ]; then
    echo "bench: $impair not found (build the hopgate-impair target); the relay rows will fail" >&2
  fi
  echo
  echo "bench: $tunnel"
  # shellcheck disable=SC2086  # word splitting of the extra flags is intended
  "$tunnel" --impair "$impair" ${HG_TUNNEL_BENCH_ARGS:-}
fi

# Server memory under visitor connections (bench/memory_bench.py, issue 14): RSS per idle
# kept-alive TLS visitor and RSS after a 10 000-connection flood closes; about 2 minutes.
# HG_MEMORY_BENCH=0 skips it.
if [ "${HG_MEMORY_BENCH:-1}" != 0 ]; then
  echo
  echo "bench: bench/memory_bench.py"
  python3 "$(dirname "$0")/../bench/memory_bench.py" "$build/bin"
fi

# End to end against nginx (bench/e2e_bench.sh, issue 5): the real server and client, wrk and
# curl, about 90 s. HG_E2E_BENCH=0 skips it.
if [ "${HG_E2E_BENCH:-1}" != 0 ]; then
  echo
  echo "bench: bench/e2e_bench.sh"
  "$(dirname "$0")/../bench/e2e_bench.sh" "$build"
fi
