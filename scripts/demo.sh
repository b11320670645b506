#!/usr/bin/env bash
# `make demo`: the real gateway on embedded defaults, on this machine: hopgate-server (self-signed
# certificate, SQLite), a small local web service, hopgate-client, and a demo domain registered
# through the admin API. Prints the curl command that fetches the page through the tunnel.
# Ctrl-C stops everything. `make demo-sim` shows the tunnel core on the simulated network.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
bin="$build/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/hopgate-demo.XXXXXX")
HTTPS_PORT=${HOPGATE_DEMO_HTTPS_PORT:-8443}
HTTP_PORT=${HOPGATE_DEMO_HTTP_PORT:-8080}
DTLS_PORT=${HOPGATE_DEMO_DTLS_PORT:-8443}
TLS_PORT=${HOPGATE_DEMO_TLS_PORT:-7443}
LOCAL_PORT=${HOPGATE_DEMO_LOCAL_PORT:-18080}
# The server's own name; the demo domain lives under it, so the self-signed certificate (which
# covers *.<control domain>) fits it. Proxy domains cannot be tenant domains.
CONTROL=hopgate.localhost
DOMAIN=demo.hopgate.localhost
ADMIN_KEY=demo-admin-key-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped (logs were in $work)"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/site"
cat > "$work/site/index.html" <<HTML
<!doctype html><meta charset="utf-8"><title>HopGate demo</title>
<h1>Hello from a private service</h1>
<p>This page is served by a local web server on 127.0.0.1:$LOCAL_PORT and reached you through
hopgate-server and a DTLS tunnel to hopgate-client.</p>
HTML
python3 -m http.server "$LOCAL_PORT" --bind 127.0.0.1 --directory "$work/site" > "$work/local.log" 2>&1 &
pids+=($!)

( cd "$work" && exec "$bin/hopgate-server" --http-listen "127.0.0.1:$HTTP_PORT" \
    --https-listen "127.0.0.1:$HTTPS_PORT" --dtls-listen "127.0.0.1:$DTLS_PORT" \
    --tunnel-listen "127.0.0.1:$TLS_PORT" --admin-api-key "$ADMIN_KEY" --debug \
    --domain "$CONTROL" ) \
    > "$work/server.out" 2> "$work/server.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/server.out" ] && break; sleep 0.1; done
[ -s "$work/server.out" ] || { echo "demo: hopgate-server did not start:"; cat "$work/server.log"; exit 1; }
cert="$work/hopgate-selfsigned.crt"

reply=$(curl -sS --cacert "$cert" --resolve "$CONTROL:$HTTPS_PORT:127.0.0.1" \
  -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' \
  -d "{\"domain\":\"$DOMAIN\",\"memo\":\"make demo\"}" \
  "https://$CONTROL:$HTTPS_PORT/api/v1/admin/domains/register" 2>&1) || true
key=$(printf '%s' "$reply" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_api_key"])' 2>/dev/null) || {
  echo "demo: registering $DOMAIN failed: $reply"; exit 1; }

"$bin/hopgate-client" --server-addr "127.0.0.1:$DTLS_PORT" --server-tls-port "$TLS_PORT" \
  --server-name "$CONTROL" --ca-file "$cert" --domain "$DOMAIN" --api-key "$key" \
  --local-target "127.0.0.1:$LOCAL_PORT" > "$work/client.out" 2> "$work/client.log" &
pids+=($!)

for _ in $(seq 50); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$cert" \
    --resolve "$DOMAIN:$HTTPS_PORT:127.0.0.1" "https://$DOMAIN:$HTTPS_PORT/" || true)
  [ "$code" = 200 ] && break
  sleep 0.2
done
echo
echo "HopGate demo is running (server, client and a local service on this machine)."
echo "Fetch the private page through the tunnel:"
echo
echo "  curl --cacert $cert --resolve $DOMAIN:$HTTPS_PORT:127.0.0.1 https://$DOMAIN:$HTTPS_PORT/"
echo
curl -s --cacert "$cert" --resolve "$DOMAIN:$HTTPS_PORT:127.0.0.1" "https://$DOMAIN:$HTTPS_PORT/" | head -5
echo
echo "Admin API key for this run: $ADMIN_KEY   (logs: $work)"
if [ -n "${HOPGATE_DEMO_ONESHOT:-}" ]; then
  exit 0
fi
echo "Press Ctrl-C to stop."
wait
