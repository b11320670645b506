#!/usr/bin/env bash
# Installation (docs/DEPLOY.md): `cmake --install` into a temporary prefix lays out the binaries,
# the systemd units (pointing at the installed binaries; `systemd-analyze verify` must be silent),
# the sysusers entry (`systemd-sysusers --root` must create the hopgate user), the example
# settings and the docs; the installed server must start from the example settings file.
# Usage: install_test.sh <build-dir>
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/hopgate-install-test.XXXXXX")
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2> /dev/null && wait "$server_pid" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fails=0
check() {  # check <description> <command...>
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
for f in bin/hopgate-server bin/hopgate-client; do
  check "$f installed and executable" test -x "$prefix/$f"
done
for f in lib/systemd/system/hopgate-server.service lib/systemd/system/hopgate-client@.service \
         lib/sysusers.d/hopgate.conf share/doc/hopgate/examples/server.env.example \
         share/doc/hopgate/examples/client.env.example share/doc/hopgate/DEPLOY.md \
         share/doc/hopgate/CONFIG.md share/doc/hopgate/grafana/hopgate.json \
         share/doc/hopgate/prometheus/alerts.yml; do
  check "$f installed" test -s "$prefix/$f"
done
check "installed server reports its version" \
  sh -c "'$prefix/bin/hopgate-server' --version | grep -Eq '^hopgate-server [0-9]+\.[0-9]+\.[0-9]+ '"

units=$prefix/lib/systemd/system
check "server unit starts the installed binary" \
  grep -qx "ExecStart=$prefix/bin/hopgate-server" "$units/hopgate-server.service"
check "client unit starts the installed binary" \
  grep -qx "ExecStart=$prefix/bin/hopgate-client" "$units/hopgate-client@.service"
# A template is verified as an instance. Any output (an unknown key is only a warning) fails.
mkdir -p "$work/verify"
cp "$units/hopgate-server.service" "$work/verify/"
cp "$units/hopgate-client@.service" "$work/verify/hopgate-client@test.service"
for u in hopgate-server.service hopgate-client@test.service; do
  out=$(systemd-analyze verify "$work/verify/$u" 2>&1) && rc=0 || rc=$?
  check "systemd-analyze verify $u: clean${out:+ ($out)}" test "$rc" -eq 0 -a -z "$out"
done
mkdir -p "$work/root/etc"
check "sysusers entry creates the hopgate user" sh -c \
  "systemd-sysusers --root='$work/root' '$prefix/lib/sysusers.d/hopgate.conf' > /dev/null 2>&1 &&
   grep -q '^hopgate:x:[0-9]*:[0-9]*:.*:/var/lib/hopgate:' '$work/root/etc/passwd'"

# The example settings start a server (loopback ports, self-signed certificate instead of the
# example's ACME CA, SQLite in a scratch working directory): every key in it is known and valid.
mkdir -p "$work/state"
grep -E '^[A-Z_]+=' "$prefix/share/doc/hopgate/examples/server.env.example" > "$work/server.env"
(
  cd "$work/state"
  set -a; . "$work/server.env"; set +a
  export HOP_SERVER_DEBUG=true HOP_SERVER_HTTP_LISTEN=127.0.0.1:0 HOP_SERVER_HTTPS_LISTEN=127.0.0.1:0 \
         HOP_SERVER_DTLS_LISTEN=127.0.0.1:0 HOP_SERVER_TUNNEL_LISTEN=127.0.0.1:0
  exec "$prefix/bin/hopgate-server" > "$work/server.out" 2> "$work/server.err"
) &
server_pid=$!
for _ in $(seq 100); do
  grep -q '"https"' "$work/server.out" 2> /dev/null && break
  kill -0 "$server_pid" 2> /dev/null || break
  sleep 0.1
done
check "installed server starts from server.env.example" grep -q '"https"' "$work/server.out"
if kill -0 "$server_pid" 2> /dev/null; then
  kill -TERM "$server_pid"
  rc=0; wait "$server_pid" || rc=$?
  server_pid=""
  check "and exits 0 on SIGTERM" test "$rc" -eq 0
fi
check "example client settings name every required variable" sh -c \
  "for v in HOP_CLIENT_SERVER_ADDR HOP_CLIENT_DOMAIN HOP_CLIENT_API_KEY HOP_CLIENT_LOCAL_TARGET; do
     grep -q \"^\$v=\" '$prefix/share/doc/hopgate/examples/client.env.example' || exit 1; done"

if [ "$fails" -ne 0 ]; then
  echo "--- server stderr"; cat "$work/server.err" 2> /dev/null || true
  echo "$fails check(s) failed"
  exit 1
fi
echo "all checks passed"
