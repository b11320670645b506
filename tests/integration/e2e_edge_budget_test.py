#!/usr/bin/env python3
"""Fair shares of the proxy buffer budget and the per-source connection cap (issue 14, item 2),
with the real hopgate-server and hopgate-client binaries on loopback.

The server gets a 2 MiB budget (16 exchanges of 128 KiB), a per-domain share of 50 % (8
exchanges), a per-source share of 25 % (4 exchanges) and at most 24 connections per source.
Visitors come from different loopback sources (Linux routes all of 127.0.0.0/8 to lo, so a
socket bound to 127.0.0.2 reaches the server on 127.0.0.1 from that source):
  1. one source (127.0.0.2) holds its share with two stalled downloads (SO_RCVBUF 4096, never
     read), a pending GET and a slow POST (1 byte / 2 s), then asks for 12 more of these: all
     503 at once. Another source on the same domain, and another source on another domain,
     still get 200; the hostile source gets 503 on any domain. (The stalled downloads go to a
     third domain: a stalled stream holding its tunnel's window is item 1 of issue 14, with its
     own test; here only the buffer budget is under test.)
  2. three more sources fill the attacked domain's share with pending GETs: a new source gets
     503 on that domain, 200 on the other one.
  3. everything is released: the budget returns to 0.
  4. 30 connections of one source: the 6 over the per-source cap are closed at accept, while
     another source still connects and gets 200.
Usage: e2e_edge_budget_test.py <bin-dir> <dtls|tls>. Every wait is bounded; exits non-zero on
failure."""
import http.server, os, re, socket, ssl, sys, threading, time

from hg_e2e import Gateway, check, count_closed

BIN, TRANSPORT = sys.argv[1], sys.argv[2]
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
DOM_A = "attacked.example.com"
DOM_B = "quiet.example.com"
DOM_C = "downloads.example.com"  # the stalled downloads
LEASE = 128 * 1024  # 2 x 64 KiB per exchange
SOURCE_SHARE = 4    # exchanges: 25 % of 16
DOMAIN_SHARE = 8    # exchanges: 50 % of 16
PER_SOURCE_CONNS = 24
BIG = bytes(range(256)) * 4096  # 1 MiB, sent 16 times by /big

release = threading.Event()  # lets the pending GETs answer at the end


class Local(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        try:
            if self.path == "/hello":
                self.reply(b"hello")
            elif self.path == "/big":  # 16 MiB: far more than any window or socket buffer
                self.send_response(200)
                self.send_header("Content-Length", str(16 * len(BIG)))
                self.end_headers()
                for _ in range(16):
                    self.wfile.write(BIG)
            elif self.path == "/slow":  # no answer until the end of the test
                release.wait(90)
                self.reply(b"slow")
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
        except OSError:
            pass  # the visitor went away

    def do_POST(self):
        try:
            n = int(self.headers.get("Content-Length", "0"))
            while n > 0:
                got = self.rfile.read(min(n, 65536))
                if not got:
                    return
                n -= len(got)
            self.reply(b"uploaded")
        except OSError:
            pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


local = Server(("127.0.0.1", 0), Local)
threading.Thread(target=local.serve_forever, daemon=True).start()

gw = Gateway(BIN, "hopgate-e2e-edge-budget-", ADMIN_KEY)
opened = []  # every visitor socket, closed at the end


def metrics_text():
    return gw.request("GET", "/metrics", "localhost", timeout=10)[1].decode(errors="replace")


def metric(name, labels="", seconds=0.0, want=None):
    """A metric's value (labels as rendered, e.g. 'share="source"'), polled until it equals
    `want` if given."""
    sel = name + ("{" + labels + "}" if labels else "")
    deadline = time.time() + seconds
    while True:
        m = re.search(r"^" + re.escape(sel) + r" (\d+)$", metrics_text(), re.M)
        v = int(m.group(1)) if m else None
        if want is None or v == want or time.time() >= deadline:
            return v
        time.sleep(0.1)


def tls_from(src, rcvbuf=None, timeout=10):
    """A TLS connection to the front door from source address `src`."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    opened.append(raw)
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.bind((src, 0))
    raw.settimeout(timeout)
    raw.connect(("127.0.0.1", gw.ports["https"]))
    s = gw.ctx.wrap_socket(raw, server_hostname="localhost")
    opened.append(s)
    return s


def head(host, method, path, extra=""):
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").encode()


def read_status(s, timeout):
    """The status of the response on `s` (only its head is read), None if none came in time or
    the connection closed first."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    return int(m.group(1)) if m else None


def get_status(src, host, path="/hello", timeout=10):
    """One GET from source `src`; its status, or None if the connection failed."""
    try:
        s = tls_from(src, timeout=timeout)
        s.sendall(head(host, "GET", path, "Connection: close\r\n"))
        return read_status(s, timeout)
    except (OSError, ssl.SSLError):
        return None


def leased(n, seconds=10):
    """Waits until exactly n exchanges hold buffers; returns the count seen."""
    v = metric("hopgate_proxy_buffer_bytes", seconds=seconds, want=n * LEASE)
    return None if v is None else v // LEASE


# ------------------------------------------------------------------ the hostile visitor's moves
def stalled_download(src):
    s = tls_from(src, rcvbuf=4096)
    s.sendall(head(DOM_C, "GET", "/big"))
    return s  # never read


def pending_get(src, host=DOM_A):
    s = tls_from(src)
    s.sendall(head(host, "GET", "/slow"))
    return s


slow_posts = []
stop_trickle = threading.Event()


def slow_post(src):
    s = tls_from(src)
    s.sendall(head(DOM_A, "POST", "/upload", "Content-Length: 1000\r\n") + b"x")
    slow_posts.append(s)
    return s


def trickle():  # 1 byte every 2 s to every slow POST
    while not stop_trickle.wait(2):
        for s in list(slow_posts):
            try:
                s.sendall(b"x")
            except (OSError, ssl.SSLError):
                slow_posts.remove(s)


threading.Thread(target=trickle, daemon=True).start()

try:
    env = dict(os.environ,
               HOP_SERVER_BUFFER_BUDGET_MB="2",
               HOP_SERVER_BUFFER_SHARE_DOMAIN_PERCENT="50",
               HOP_SERVER_BUFFER_SHARE_SOURCE_PERCENT="25",
               HOP_SERVER_MAX_CONNECTIONS_PER_SOURCE=str(PER_SOURCE_CONNS),
               HOP_SERVER_PROXY_TIMEOUT_SECONDS="60")  # pending GETs stay pending
    gw.start_server(env=env)
    for d, log in ((DOM_A, "client-a.log"), (DOM_B, "client-b.log"), (DOM_C, "client-c.log")):
        st, reg = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": d, "memo": "e2e"})
        check(st == 201, f"register {d}")
        gw.start_client(d, reg.get("client_api_key", ""), local.server_address[1], TRANSPORT, log)
    for d in (DOM_A, DOM_B, DOM_C):
        check(gw.wait_status("/hello", d, 200, 30), f"{d}: tunnel up over {TRANSPORT}")
    check(leased(0, 5) == 0, "no proxy buffers leased while idle")

    # ---------------------------------------------------------------- 1. one source's share
    hostile = "127.0.0.2"
    held = 0
    for what, move in (("stalled download", stalled_download), ("stalled download", stalled_download),
                       ("pending GET", pending_get), ("slow POST", slow_post)):
        move(hostile)
        held += 1
        check(leased(held) == held, f"{hostile}: {what} holds an exchange ({held} of {SOURCE_SHARE})")
    # Twelve more of the same kinds from the same source: each is refused with a 503 at once
    # (without shares they would take the rest of the budget, 16 exchanges in all).
    statuses = []
    for move in (stalled_download, pending_get, slow_post) * 4:
        statuses.append(read_status(move(hostile), 5))
    check(statuses == [503] * 12, f"{hostile} beyond its share: 12 more exchanges -> 503 ({statuses})")
    check(leased(SOURCE_SHARE, 2) == SOURCE_SHARE,
          f"the hostile source holds only its share ({SOURCE_SHARE} x 128 KiB of 2 MiB)")
    check((metric("hopgate_proxy_buffer_refused_total", 'share="source"') or 0) >= 12,
          "refusals counted in hopgate_proxy_buffer_refused_total{share=\"source\"}")
    check(get_status("127.0.0.3", DOM_A) == 200, "another source on the same domain -> 200")
    check(get_status("127.0.0.4", DOM_B) == 200, "another source on another domain -> 200")
    check(get_status(hostile, DOM_B) == 503, "the hostile source on another domain -> 503 (its share is spent)")

    # ---------------------------------------------------------------- 2. one domain's share
    # The hostile source holds 2 exchanges on DOM_A (and 2 on DOM_C); 12 more pending GETs from
    # three sources: 6 fit in DOM_A's share, 6 are refused.
    for src in ("127.0.0.5", "127.0.0.6", "127.0.0.8"):
        for _ in range(SOURCE_SHARE):
            pending_get(src)
    check(leased(DOMAIN_SHARE + 2) == DOMAIN_SHARE + 2,
          f"sources together hold at most the domain's share ({DOMAIN_SHARE} x 128 KiB)")
    check((metric("hopgate_proxy_buffer_refused_total", 'share="domain"') or 0) >= SOURCE_SHARE,
          "refusals counted in hopgate_proxy_buffer_refused_total{share=\"domain\"}")
    check(get_status("127.0.0.7", DOM_A) == 503, "a new source on the attacked domain -> 503 (domain share spent)")
    check(get_status("127.0.0.7", DOM_B) == 200, "the same source on another domain -> 200")

    # ---------------------------------------------------------------- 3. everything returns
    release.set()
    stop_trickle.set()
    for s in opened:
        s.close()
    opened.clear()
    check(leased(0, 20) == 0, "all buffers return once the visitors are gone")
    check(metric("hopgate_http_connections_open", seconds=20, want=1) == 1,
          "every visitor connection closed (only the metrics scrape is open)")

    # ---------------------------------------------------------------- 4. connections per source
    crowd = []
    for _ in range(PER_SOURCE_CONNS + 6):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.bind(("127.0.0.2", 0))
        c.settimeout(5)
        c.connect(("127.0.0.1", gw.ports["https"]))
        crowd.append(c)
    time.sleep(1)
    closed = count_closed(crowd)
    check(closed == 6, f"over --max-connections-per-source {PER_SOURCE_CONNS}: the 6 extra connections are closed ({closed})")
    check(get_status("127.0.0.3", DOM_A) == 200, "another source still connects and gets 200")
    check(get_status("127.0.0.2", DOM_A) is None, "a further connection of the crowded source is closed")
    check((metric("hopgate_http_connections_rejected_per_source_total") or 0) >= 7,
          "closed connections counted in hopgate_http_connections_rejected_per_source_total")
    check((metric("hopgate_http_connections_rejected_total") or 0) == 0,
          "the global connection cap was not involved")
    for c in crowd:
        c.close()
    ok = False
    deadline = time.time() + 15
    while time.time() < deadline and not ok:
        ok = get_status("127.0.0.2", DOM_A, timeout=5) == 200
        if not ok:
            time.sleep(0.2)
    check(ok, "once its connections close, the source connects again -> 200")
finally:
    release.set()
    stop_trickle.set()
    for s in opened:
        try:
            s.close()
        except OSError:
            pass
    gw.stop_all()
    local.shutdown()

gw.finish(int(os.environ.get("HG_E2E_LOG_TAIL", "4000")))
