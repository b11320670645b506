#!/usr/bin/env bash
# A private, throw-away PostgreSQL 15 server for the registry tests.
#
#   scripts/pg-test-server.sh start     initdb a fresh cluster, start it, create the test database,
#                                       print `export HG_TEST_PG_DSN=...` (eval-able)
#   scripts/pg-test-server.sh stop      stop it and delete its directory (HG_PG_KEEP=1 keeps it)
#   scripts/pg-test-server.sh restart   restart the running server (fast shutdown)
#   scripts/pg-test-server.sh pause     stop the server, keep the data (tests of outages)
#   scripts/pg-test-server.sh resume    start a paused server again
#   scripts/pg-test-server.sh status|dsn
#
# Environment: HG_PG_DIR (state directory, default /tmp/hopgate-pg-$UID), HG_PG_PORT (default
# 25432), HG_PG_BIN (default /usr/lib/postgresql/15/bin). Listens on 127.0.0.1 only, trust
# authentication, fsync off: for tests, never for data. As root the server runs as the `postgres`
# user (initdb refuses root); otherwise as the current user.
set -euo pipefail

PGBIN=${HG_PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=${HG_PG_DIR:-/tmp/hopgate-pg-$(id -u)}
PORT=${HG_PG_PORT:-25432}
DATA="$DIR/data"
LOG="$DIR/server.log"
SOCK="$DIR/sock"
DB=hopgate_test
PGUSER_NAME=hopgate
DSN="postgres://$PGUSER_NAME@127.0.0.1:$PORT/$DB"

if [ "$(id -u)" -eq 0 ]; then
  OWNER=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  OWNER=$(id -un)
  as_owner() { "$@"; }
fi

die() { echo "pg-test-server: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

running() { [ -f "$DATA/postmaster.pid" ] && as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

server_start() {
  as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$SOCK' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    start >/dev/null || { tail -n 20 "$LOG" >&2 || true; die "server did not start (log: $LOG)"; }
}

print_env() {
  echo "export HG_TEST_PG_DSN=$DSN"
  echo "export HG_PG_DIR=$DIR"
  echo "export HG_PG_PORT=$PORT"
  echo "export HG_PG_SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
}

cmd_start() {
  [ -x "$PGBIN/initdb" ] || die "$PGBIN/initdb not found: install Debian's 'postgresql' (scripts/install-deps.sh)"
  if [ -f "$DATA/postmaster.pid" ]; then  # left over from an interrupted run
    as_owner "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  port_in_use && die "127.0.0.1:$PORT is already in use; set HG_PG_PORT to a free port"
  rm -rf "$DIR"
  mkdir -p "$SOCK"
  chown -R "$OWNER" "$DIR"
  chmod 700 "$DIR"
  as_owner test -w "$DIR" || die "user $OWNER cannot write $DIR (a parent directory is not traversable?)"
  as_owner "$PGBIN/initdb" -D "$DATA" -U "$PGUSER_NAME" --auth=trust -E UTF8 --locale=C --no-sync \
    >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  server_start
  as_owner "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$PGUSER_NAME" "$DB" || die "createdb failed"
  print_env
}

cmd_stop() {
  if [ -f "$DATA/postmaster.pid" ]; then
    as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || die "stop failed"
  fi
  if [ "${HG_PG_KEEP:-0}" != 1 ]; then rm -rf "$DIR"; fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart)
    running || die "not running"
    as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    server_start ;;
  pause)
    running || die "not running"
    as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null ;;
  resume)
    [ -d "$DATA" ] || die "no cluster in $DATA (run start first)"
    server_start ;;
  status) if running; then echo "running: $DSN"; else echo "stopped"; exit 3; fi ;;
  dsn) print_env ;;
  *) echo "usage: $0 start|stop|restart|pause|resume|status|dsn" >&2; exit 2 ;;
esac
