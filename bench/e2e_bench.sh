#!/usr/bin/env bash
# End-to-end benchmark: HopGate against nginx as a one-hop HTTPS reverse proxy, on loopback.
#
# One origin (nginx serving static files over plain HTTP, 1 worker) and four paths to it:
#   direct   wrk/curl -> origin (plain HTTP)
#   nginx    wrk/curl -> nginx HTTPS reverse proxy (1 worker, keep-alive upstream) -> origin
#   dtls     wrk/curl -> hopgate-server HTTPS -> DTLS tunnel -> hopgate-client -> origin
#   tls      wrk/curl -> hopgate-server HTTPS -> TLS/TCP tunnel -> hopgate-client -> origin
# For each: requests/s of a small response (wrk, HG_E2E_CONNS keep-alive connections, 1 thread),
# p50/p99 latency at that load and unloaded (1 connection), CPU time of the proxy processes per
# request during the loaded run, and MB/s of a 100 MiB download (curl, best of 3). Prints one
# table with ratios against nginx. The origin, wrk and the proxies share the machine's cores, so
# compare rows of one run, not runs.
#
# Usage: bench/e2e_bench.sh <build-dir>     (needs nginx, wrk, curl, openssl, python3)
# Env: HG_E2E_HOLD=1 starts everything, prints the endpoints and waits (for profiling).
#      HG_E2E_DURATION (s per loaded wrk run, default 10), HG_E2E_CONNS (default 64),
#      HG_E2E_PERF=DIR records a perf profile of the proxy processes of each loaded run into DIR.
#      HG_E2E_PATHS (default "direct nginx dtls tls"; the ratios need nginx), HG_E2E_DOWNLOAD=0
#      skips the 100 MiB downloads (for quicker per-request runs).
#      HG_E2E_ACCESS_LOG=on|off (default on): on, the nginx proxy writes one JSON access-log line
#      per request to a file, as HopGate's server and client do (into their log files); off, neither
#      logs requests (nginx `access_log off`, HopGate `--log-level warn`).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 <build-dir>" >&2
  exit 2
fi
bin=$(cd "$1" && pwd)/bin
DUR=${HG_E2E_DURATION:-10}
CONNS=${HG_E2E_CONNS:-64}
ACCESS_LOG=${HG_E2E_ACCESS_LOG:-on}
PATHS=${HG_E2E_PATHS:-direct nginx dtls tls}
DOWNLOAD=${HG_E2E_DOWNLOAD:-1}
case "$ACCESS_LOG" in
  on) HG_LOG_LEVEL=info ;;
  off) HG_LOG_LEVEL=warn ;;
  *) echo "e2e_bench: HG_E2E_ACCESS_LOG must be on or off" >&2; exit 2 ;;
esac
for tool in nginx wrk curl openssl python3; do
  command -v "$tool" > /dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "e2e_bench: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for b in hopgate-server hopgate-client; do
  [ -x "$bin/$b" ] || { echo "e2e_bench: $bin/$b not found (build it first)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hopgate-e2e-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ORIGIN=$(free_port)
PROXY=$(free_port)
DOMAIN=bench.example.com
ADMIN_KEY=bench-admin-key-0123456789abcdef

# --- origin and nginx proxy ----------------------------------------------------------------
mkdir -p "$work/www" "$work/origin" "$work/proxy"
chmod 755 "$work" "$work/www"  # nginx workers drop root privileges (user nobody) when run as root
printf 'hello from the origin, a small response body of about a hundred bytes..........\n' \
  > "$work/www/small"
head -c $((100 << 20)) /dev/urandom > "$work/www/big"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$work/proxy/key.pem" -out "$work/proxy/cert.pem" 2> /dev/null

common="worker_processes 1; daemon off; master_process on; pid PID; error_log ERR warn;
events { worker_connections 4096; }"
cat > "$work/origin/nginx.conf" <<EOF
${common//PID/$work/origin/nginx.pid}
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path $work/origin/body; proxy_temp_path $work/origin/proxy;
  fastcgi_temp_path $work/origin/fcgi; uwsgi_temp_path $work/origin/uwsgi;
  scgi_temp_path $work/origin/scgi;
  server { listen 127.0.0.1:$ORIGIN; root $work/www; }
}
EOF
sed -i "s|ERR|$work/origin/error.log|" "$work/origin/nginx.conf"
if [ "$ACCESS_LOG" = on ]; then
  # The fields of HopGate's access-log line, one JSON line per request, one write(2) each.
  proxy_log="log_format hg escape=json '{\"ts\":\"\$time_iso8601\",\"level\":\"info\",'
    '\"msg\":\"request\",\"component\":\"access\",\"request_id\":\"\$request_id\",'
    '\"method\":\"\$request_method\",\"host\":\"\$host\",\"path\":\"\$uri\",'
    '\"status\":\$status,\"bytes_in\":\$request_length,\"bytes_out\":\$bytes_sent,'
    '\"duration_ms\":\$request_time,\"remote_addr\":\"\$remote_addr\",\"transport\":\"https\"}';
  access_log $work/proxy/access.log hg;"
else
  proxy_log="access_log off;"
fi
cat > "$work/proxy/nginx.conf" <<EOF
${common//PID/$work/proxy/nginx.pid}
http {
  $proxy_log
  keepalive_requests 1000000;
  client_body_temp_path $work/proxy/body; proxy_temp_path $work/proxy/proxy;
  fastcgi_temp_path $work/proxy/fcgi; uwsgi_temp_path $work/proxy/uwsgi;
  scgi_temp_path $work/proxy/scgi;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$PROXY ssl;
    ssl_certificate $work/proxy/cert.pem; ssl_certificate_key $work/proxy/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
sed -i "s|ERR|$work/proxy/error.log|" "$work/proxy/nginx.conf"
"$NGINX" -p "$work/origin" -c "$work/origin/nginx.conf" -e "$work/origin/error.log" &
pids+=($!)
nginx_origin=$!
"$NGINX" -p "$work/proxy" -c "$work/proxy/nginx.conf" -e "$work/proxy/error.log" &
pids+=($!)
nginx_proxy=$!

# --- HopGate server and one client per transport -----------------------------------------
( cd "$work" && exec "$bin/hopgate-server" --http-listen 127.0.0.1:0 --https-listen 127.0.0.1:0 \
    --dtls-listen 127.0.0.1:0 --tunnel-listen 127.0.0.1:0 --admin-api-key "$ADMIN_KEY" \
    --db-dsn "sqlite://$work/hg.db" --cert-dir "$work" --log-level "$HG_LOG_LEVEL" ) \
  > "$work/server.out" 2> "$work/server.log" &
pids+=($!)
server=$!
for _ in $(seq 100); do [ -s "$work/server.out" ] && break; sleep 0.1; done
read -r HTTPS DTLS TUNNEL CERT < <(python3 -c 'import json,sys; p=json.loads(open(sys.argv[1]).readline());
print(p["https"], p["dtls"], p["tunnel"], p["certificate"])' "$work/server.out") || {
  echo "e2e_bench: hopgate-server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }

register() {  # $1 domain -> prints the client API key
  curl -sS --cacert "$CERT" --resolve "localhost:$HTTPS:127.0.0.1" \
    -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' \
    -d "{\"domain\":\"$1\",\"memo\":\"bench\"}" \
    "https://localhost:$HTTPS/api/v1/admin/domains/register" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["client_api_key"])'
}
declare -A client_pid
for t in dtls tls; do
  key=$(register "$t.$DOMAIN")
  "$bin/hopgate-client" --server-addr "127.0.0.1:$DTLS" --server-tls-port "$TUNNEL" \
    --server-name localhost --ca-file "$CERT" --domain "$t.$DOMAIN" --api-key "$key" \
    --transport "$t" --local-target "127.0.0.1:$ORIGIN" --log-level "$HG_LOG_LEVEL" > /dev/null 2> "$work/client-$t.log" &
  pids+=($!)
  client_pid[$t]=$!
done

# url, Host header and proxy pids of each path
declare -A url host procs
url[direct]="http://127.0.0.1:$ORIGIN";  host[direct]="127.0.0.1:$ORIGIN"; procs[direct]=""
url[nginx]="https://127.0.0.1:$PROXY";   host[nginx]="localhost";          procs[nginx]="$nginx_proxy"
url[dtls]="https://127.0.0.1:$HTTPS";    host[dtls]="dtls.$DOMAIN";        procs[dtls]="$server ${client_pid[dtls]}"
url[tls]="https://127.0.0.1:$HTTPS";     host[tls]="tls.$DOMAIN";          procs[tls]="$server ${client_pid[tls]}"

for p in direct nginx dtls tls; do
  ok=""
  for _ in $(seq 100); do
    code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Host: ${host[$p]}" "${url[$p]}/small" || true)
    [ "$code" = 200 ] && { ok=1; break; }
    sleep 0.2
  done
  [ -n "$ok" ] || { echo "e2e_bench: path $p is not serving (last status $code)" >&2
                    tail -n 5 "$work"/*.log "$work"/*/error.log >&2; exit 1; }
done

# HG_E2E_HOLD=1: keep everything running for manual runs or profiling (Ctrl-C stops).
if [ "${HG_E2E_HOLD:-0}" = 1 ]; then
  for p in direct nginx dtls tls; do
    echo "e2e_bench: $p: curl -sk -H 'Host: ${host[$p]}' ${url[$p]}/big  (pids: ${procs[$p]})"
  done
  wait
fi

# CPU ticks (utime+stime) of a set of pids and of their children threads/processes.
cpu_ticks() {
  local total=0 p c
  for p in "$@"; do
    for c in $p $(pgrep -P "$p" || true); do
      [ -r "/proc/$c/stat" ] || continue
      total=$((total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$c/stat")))
    done
  done
  echo "$total"
}
to_ms() {  # wrk latency like 1.23ms / 456.00us / 1.01s -> milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n;
                          else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
HZ=$(getconf CLK_TCK)
# Busy and total ticks of all cores together ("busy total"), from /proc/stat.
machine_ticks() {
  awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

declare -A rps p50 p99 u50 u99 cpu mbs dlcpu dlbusy
rps[nginx]=0 cpu[nginx]=- u50[nginx]=0
for p in $PATHS; do
  echo "e2e_bench: $p ..." >&2
  # shellcheck disable=SC2086  # the pid list is split on purpose
  before=$(cpu_ticks ${procs[$p]})
  perf_pid=""
  if [ -n "${HG_E2E_PERF:-}" ] && [ -n "${procs[$p]}" ]; then
    # Optional profile of the proxy processes during the loaded run (perf report -i FILE).
    mkdir -p "$HG_E2E_PERF"
    perf record -e cpu-clock -F 499 -g -o "$HG_E2E_PERF/$p.perf.data" \
      -p "$(tr ' ' ',' <<< "${procs[$p]}")" -- sleep "$DUR" > /dev/null 2>&1 &
    perf_pid=$!
  fi
  out=$(wrk -t 1 -c "$CONNS" -d "${DUR}s" --latency -H "Host: ${host[$p]}" "${url[$p]}/small")
  # shellcheck disable=SC2086
  after=$(cpu_ticks ${procs[$p]})
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  rps[$p]=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
  p50[$p]=$(to_ms "$(awk '$1 == "50%" {print $2}' <<< "$out")")
  p99[$p]=$(to_ms "$(awk '$1 == "99%" {print $2}' <<< "$out")")
  reqs=$(awk '/requests in/ {print $1}' <<< "$out")
  if grep -q 'Non-2xx\|Socket errors' <<< "$out"; then
    echo "e2e_bench: $p: wrk reported errors:" >&2; grep 'Non-2xx\|Socket errors' <<< "$out" >&2
  fi
  if [ -n "${procs[$p]}" ] && [ "${reqs:-0}" -gt 0 ]; then
    cpu[$p]=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$reqs" \
      'BEGIN { printf "%.0f", t / hz / n * 1e6 }')
  else
    cpu[$p]="-"
  fi
  out=$(wrk -t 1 -c 1 -d "$(( (DUR + 1) / 2 ))s" --latency -H "Host: ${host[$p]}" "${url[$p]}/small")
  u50[$p]=$(to_ms "$(awk '$1 == "50%" {print $2}' <<< "$out")")
  u99[$p]=$(to_ms "$(awk '$1 == "99%" {print $2}' <<< "$out")")
  best=0 got=0
  # shellcheck disable=SC2086
  before=$(cpu_ticks ${procs[$p]})
  busy_before=$(machine_ticks)
  for _ in $( [ "$DOWNLOAD" = 0 ] || echo 1 2 3); do
    s=$(curl -sk -o /dev/null -w '%{speed_download} %{size_download}' -H "Host: ${host[$p]}" \
      "${url[$p]}/big")
    if [ "${s#* }" != $((100 << 20)) ]; then
      echo "e2e_bench: $p: short download (${s#* } bytes)" >&2
      s="0 0"
    fi
    got=$((got + ${s#* }))
    best=$(awk -v a="$best" -v b="${s% *}" 'BEGIN { print (b > a ? b : a) }')
  done
  # shellcheck disable=SC2086
  after=$(cpu_ticks ${procs[$p]})
  busy_after=$(machine_ticks)
  mbs[$p]=$(awk -v b="$best" 'BEGIN { printf "%.0f", b / 1e6 }')
  # CPU seconds per GiB downloaded: of the proxy processes, and of the whole machine (busy
  # share of all cores, so curl, the origin and the kernel's loopback work count too).
  dlcpu[$p]="-" dlbusy[$p]="-"
  if [ "$got" -gt 0 ]; then
    [ -z "${procs[$p]}" ] || dlcpu[$p]=$(awk -v t=$((after - before)) -v hz="$HZ" -v g="$got" \
      'BEGIN { printf "%.2f", t / hz / (g / 1073741824) }')
    dlbusy[$p]=$(awk -v a="$busy_before" -v b="$busy_after" -v hz="$HZ" -v g="$got" \
      'BEGIN { split(a, x); split(b, y); printf "%.2f (%.0f%%)", (y[1] - x[1]) / hz / (g / 1073741824),
               100 * (y[1] - x[1]) / (y[2] - x[2]) }')
  fi
done

ratio() {
  awk -v a="$1" -v b="$2" \
    'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
echo
echo "End-to-end on loopback, $(nproc) cores, ${DUR} s per loaded run, $CONNS connections (wrk -t 1),"
echo "access logs $ACCESS_LOG (nginx proxy and HopGate alike), load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo "small = $(wc -c < "$work/www/small")-byte response; p50@1/p99@1 = 1 connection (unloaded);"
echo "cpu = CPU µs per request of the proxy processes during the loaded run"
echo "(nginx: the proxy nginx; HopGate: server + client); ratios are HopGate / nginx."
echo
printf '| %-7s | %9s | %8s | %8s | %9s | %9s | %7s | %7s | %8s | %8s | %8s |\n' \
  path 'req/s' 'p50 ms' 'p99 ms' 'p50@1 ms' 'p99@1 ms' 'cpu µs' 'MB/s' 'req/s ×' 'cpu ×' 'p50@1 ×'
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' --------- ----------: ---------: ---------: \
  ----------: ----------: --------: --------: ---------: ---------: ---------:
for p in $PATHS; do
  printf '| %-7s | %9.0f | %8s | %8s | %9s | %9s | %7s | %7s | %8s | %8s | %8s |\n' "$p" "${rps[$p]}" \
    "${p50[$p]}" "${p99[$p]}" "${u50[$p]}" "${u99[$p]}" "${cpu[$p]}" "${mbs[$p]}" \
    "$(ratio "${rps[$p]}" "${rps[nginx]}")" "$(ratio "${cpu[$p]}" "${cpu[nginx]}")" \
    "$(ratio "${u50[$p]}" "${u50[nginx]}")"
done
if [ "$DOWNLOAD" != 0 ]; then
  echo
  echo "100 MiB downloads (3 in a row, one at a time): best MB/s; CPU seconds per GiB of the proxy"
  echo "processes and of the whole machine (all processes and the kernel; in brackets the busy share"
  echo "of all $(nproc) cores)."
  echo
  printf '| %-7s | %7s | %14s | %20s |\n' path 'MB/s' 'proxy s/GiB' 'machine s/GiB (busy)'
  printf '|%s|%s|%s|%s|\n' --------- --------: ---------------: ---------------------:
  for p in $PATHS; do
    printf '| %-7s | %7s | %14s | %20s |\n' "$p" "${mbs[$p]}" "${dlcpu[$p]}" "${dlbusy[$p]}"
  done
fi
