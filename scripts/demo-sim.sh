#!/usr/bin/env bash
# `make demo-sim`: runs the tunnel protocol core on the deterministic simulated network and
# prints what it achieves under bad network conditions. The real gateway demo (server + client +
# local service) is `make demo`.
set -euo pipefail
build=${1:-build}
sim="$build/bin/hopgate-sim"
[ -x "$sim" ] || { echo "demo: $sim not built (run make build)" >&2; exit 1; }

run() {
  local title=$1; shift
  local out
  out=$("$sim" "$@") || { echo "FAILED: $title: $out"; exit 1; }
  python3 - "$title" "$out" <<'PY'
import json, sys
title, r = sys.argv[1], json.loads(sys.argv[2])
print(f"  {title:<58} {r['goodput_mbit']:8.1f} Mbit/s  {r['sim_seconds']:7.2f} s  "
      f"retx {r['retransmitted_bytes']/1048576:6.2f} MiB  intact={'yes' if r['ok'] else 'NO'}")
PY
}

echo "HopGate tunnel core on a simulated 100 Mbit/s path (every byte pattern-checked):"
run "clean, 20 ms RTT, 64 MiB, BBR"                       --rtt-ms 20 --bytes 64m --no-echo
run "1 % loss, 20 ms RTT, 64 MiB, BBR (default)"          --rtt-ms 20 --loss 1 --bytes 64m --no-echo
run "1 % loss, 20 ms RTT, 16 MiB, CUBIC (loss-based)"     --rtt-ms 20 --loss 1 --bytes 16m --no-echo --cc cubic
run "5 % loss + reordering, 50 ms RTT, 64 streams x 1 MiB each way" \
                                                          --rtt-ms 50 --loss 5 --jitter-ms 5 --streams 64 --bytes 1m
run "PMTU discovery on a 1400-byte path, 16 MiB"          --mtu 1400 --bytes 16m --no-echo
run "TLS/TCP-style stream mode, 16 MiB each way"          --mode stream --bytes 16m
echo
echo "Replay or vary any run: $sim --help"
