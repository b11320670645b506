#!/usr/bin/env bash
# Runs README.md's self-signed walkthrough exactly as written (the block between the
# `walkthrough:self-signed` markers) with the built binaries first on PATH and a scratch HOME, then
# checks that the last command fetched the local service's page through the tunnel, that nothing
# in it failed, and that the server and the client it started exit 0 on SIGTERM.
# Usage: readme_walkthrough_test.sh <source-dir> <bin-dir>
set -uo pipefail
src=$1
bin=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/hopgate-readme-XXXXXX)
fail=0
check() { if [ "$1" = 0 ]; then echo "ok   $2"; else echo "FAIL $2"; fail=1; fi; }

script="$work/walkthrough.sh"
{
  echo 'set -euo pipefail'
  # Whatever happens, no process of the walkthrough outlives it (they hold fixed ports).
  echo 'trap '"'"'kill $(jobs -p) 2> /dev/null || true'"'"' EXIT'
  sed -n '/<!-- walkthrough:self-signed:begin -->/,/<!-- walkthrough:self-signed:end -->/p' \
    "$src/README.md" | sed '1,2d;$d' | sed '$d'
  # Epilogue of the test: stop the background jobs (server, local service, client) the way an
  # operator would, client first, and record the exit status of each.
  cat << 'EPILOGUE'
set +e
mapfile -t _pids < <(jobs -p)
echo "jobs=${#_pids[@]}" > "$HOME/exits"
for _i in 2 0 1; do
  kill -TERM "${_pids[$_i]}"
  timeout 30 tail --pid="${_pids[$_i]}" -f /dev/null
  wait "${_pids[$_i]}"
  echo "job$_i=$?" >> "$HOME/exits"
done
EPILOGUE
} > "$script"
n=$(grep -c . "$script")
[ "$n" -gt 10 ]; check $? "README walkthrough block extracted ($n lines)"

export HOME="$work/home"
mkdir -p "$HOME"
PATH="$bin:$PATH" timeout 120 bash "$script" > "$work/out.txt" 2> "$work/err.txt"
rc=$?
check $rc "every command of the walkthrough succeeds (exit $rc)"
grep -q "Directory listing" "$work/out.txt"
check $? "the last curl shows the local service's page through the tunnel"

grep -qx "jobs=3" "$HOME/exits"
check $? "three background jobs: server, local service, client ($(head -1 "$HOME/exits" 2> /dev/null))"
grep -qx "job2=0" "$HOME/exits"
check $? "the client exits 0 on SIGTERM ($(grep job2 "$HOME/exits"))"
grep -qx "job0=0" "$HOME/exits"
check $? "the server exits 0 on SIGTERM ($(grep job0 "$HOME/exits"))"
grep -q '"msg":"drained"' "$HOME/hopgate-try/server.log"
check $? "the server drained on SIGTERM"
if [ $fail != 0 ]; then
  for f in "$work/out.txt" "$work/err.txt" "$HOME/hopgate-try/server.log" "$HOME/hopgate-try/client.log"; do
    echo "--- $f"; tail -c 3000 "$f" 2> /dev/null
  done
  echo "1 failed"
  exit 1
fi
rm -rf "$work"
echo "all checks passed"
