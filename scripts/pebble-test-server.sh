#!/usr/bin/env bash
# A private Pebble ACME CA (with pebble-challtestsrv as its DNS) on loopback, for the ACME tests.
#
#   scripts/pebble-test-server.sh start DIR   generate test certificates, start both servers,
#                                             print eval-able `export PEBBLE_*=...` lines (also
#                                             written to DIR/env)
#   scripts/pebble-test-server.sh stop DIR    stop both and delete DIR (HG_PEBBLE_KEEP=1 keeps it)
#
# Environment for start:
#   PEBBLE_HTTP_PORT  port Pebble validates HTTP-01 on (our server's HTTP listener), required
#   PEBBLE_TLS_PORT   port Pebble validates TLS-ALPN-01 on (our HTTPS listener), required
#   PEBBLE_NONCE_REJECT  percentage of valid nonces Pebble rejects as badNonce (default 10)
# Every name resolves to 127.0.0.1 (challtestsrv -defaultIPv4). Pebble's ACME endpoint and
# management interface listen on free loopback ports chosen here. Pebble's issuing root is served
# by its management interface at https://127.0.0.1:$PEBBLE_MGMT_PORT/roots/0.
set -euo pipefail

die() { echo "pebble-test-server: $*" >&2; exit 1; }
cmd=${1:-}
DIR=${2:-}
[ -n "$cmd" ] && [ -n "$DIR" ] || die "usage: $0 start|stop DIR"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_udp_port() { python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_pid() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cmd_start() {
  command -v pebble >/dev/null || die "pebble not installed (Debian package 'pebble'; scripts/install-deps.sh)"
  [ -n "${PEBBLE_HTTP_PORT:-}" ] && [ -n "${PEBBLE_TLS_PORT:-}" ] || die "set PEBBLE_HTTP_PORT and PEBBLE_TLS_PORT"
  mkdir -p "$DIR"
  stop_pid "$DIR/pebble.pid"; stop_pid "$DIR/challtestsrv.pid"
  # A test CA and Pebble's HTTPS certificate (localhost, 127.0.0.1), valid one day.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=hopgate pebble test CA" -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$DIR/pebble.key" -out "$DIR/pebble.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$DIR/ext.cnf"
  openssl x509 -req -in "$DIR/pebble.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
    -days 1 -extfile "$DIR/ext.cnf" -out "$DIR/pebble.crt" 2>/dev/null

  local acme_port mgmt_port dns_port cts_mgmt
  acme_port=$(free_port); mgmt_port=$(free_port); dns_port=$(free_udp_port); cts_mgmt=$(free_port)
  cat > "$DIR/pebble-config.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$acme_port",
  "managementListenAddress": "127.0.0.1:$mgmt_port",
  "certificate": "$DIR/pebble.crt",
  "privateKey": "$DIR/pebble.key",
  "httpPort": $PEBBLE_HTTP_PORT,
  "tlsPort": $PEBBLE_TLS_PORT,
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false
}}
JSON
  # DNS only: every A query answers 127.0.0.1; its own challenge servers are disabled.
  pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns_port" \
    -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$cts_mgmt" \
    >"$DIR/challtestsrv.log" 2>&1 &
  echo $! > "$DIR/challtestsrv.pid"
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=${PEBBLE_NONCE_REJECT:-10} PEBBLE_VA_ALWAYS_VALID=0 \
    pebble -config "$DIR/pebble-config.json" -dnsserver "127.0.0.1:$dns_port" \
    >"$DIR/pebble.log" 2>&1 &
  echo $! > "$DIR/pebble.pid"
  local ok=0
  for _ in $(seq 100); do
    if curl -sf --cacert "$DIR/ca.crt" "https://127.0.0.1:$mgmt_port/roots/0" -o "$DIR/pebble-root.pem" 2>/dev/null \
       && curl -sf --cacert "$DIR/ca.crt" "https://127.0.0.1:$acme_port/dir" >/dev/null 2>&1; then
      ok=1; break
    fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || { tail -n 20 "$DIR/pebble.log" >&2; die "pebble did not start (log: $DIR/pebble.log)"; }
  cat > "$DIR/env" <<ENV
export PEBBLE_DIR_URL=https://127.0.0.1:$acme_port/dir
export PEBBLE_MGMT_PORT=$mgmt_port
export PEBBLE_DNS_PORT=$dns_port
export PEBBLE_CHALLTESTSRV_MGMT=http://127.0.0.1:$cts_mgmt
export PEBBLE_CA_CERT=$DIR/ca.crt
export PEBBLE_ROOT=$DIR/pebble-root.pem
ENV
  cat "$DIR/env"
}

cmd_stop() {
  stop_pid "$DIR/pebble.pid"
  stop_pid "$DIR/challtestsrv.pid"
  if [ "${HG_PEBBLE_KEEP:-0}" != 1 ]; then rm -rf "$DIR"; fi
}

case "$cmd" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) die "usage: $0 start|stop DIR" ;;
esac
