#!/usr/bin/env python3
"""Bounded soak of the real hopgate-server and hopgate-client (issue 14): for SOAK_SECONDS, normal
visitors keep requesting small pages and 1 MiB downloads from one domain while, at the same time,
hostile visitors from other loopback addresses run slowloris heads, stalled downloads (a tiny
receive buffer, never read), slow POSTs (a byte every few seconds), an idle connection flood, and
a hopgate-client with a wrong key keeps retrying. A second domain is served by another client.

Asserted: every normal request succeeds (a few transport hiccups tolerated: at least 99 %), no
normal request takes longer than LATENCY_BOUND, the server's RSS stays under RSS_BOUND, both
binaries stay up, and every process exits 0 on SIGTERM at the end.

Usage: e2e_soak_test.py <bin-dir> <dtls|tls> [seconds]. Every loop is bounded in time."""
import hashlib, http.client, http.server, os, socket, ssl, sys, threading, time

from hg_e2e import Gateway, check, rss

BIN, TRANSPORT = sys.argv[1], sys.argv[2]
SOAK_SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
ADMIN_KEY = "soak-admin-key-0123456789abcdef"
DOMAIN = "app.example.com"
OTHER = "other.example.com"
MIB = 1 << 20
BIG = bytes((i * 7 + (i >> 11)) & 0xFF for i in range(MIB))
HUGE_LEN = 64 * MIB  # what the stalled downloads ask for (generated on the fly, never all sent)
LATENCY_BOUND = 5.0  # seconds, for a 1 MiB download on a loaded 2-core machine
RSS_BOUND = 256 * MIB
SANITIZED = os.environ.get("HG_SANITIZED") == "1"
if SANITIZED:  # the sanitized build is several times slower and larger: a shorter, looser run
    SOAK_SECONDS = min(SOAK_SECONDS, 20.0)
    LATENCY_BOUND *= 3
    RSS_BOUND *= 3


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
        if self.path == "/small":
            self.reply(b"small page")
        elif self.path == "/big":
            self.reply(BIG)
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(HUGE_LEN))
            self.end_headers()
            piece = BIG[:256 << 10]
            try:
                for _ in range(HUGE_LEN // len(piece)):
                    self.wfile.write(piece)
            except OSError:
                pass
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        got = 0
        while got < n:
            chunk = self.rfile.read(min(65536, n - got))
            if not chunk:
                return
            got += len(chunk)
        self.reply(b"posted %d" % got)


class LocalServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


threading.stack_size(512 * 1024)
local = LocalServer(("127.0.0.1", 0), Local)
threading.Thread(target=local.serve_forever, daemon=True).start()
gw = Gateway(BIN, "hopgate-soak-", ADMIN_KEY)

stop = threading.Event()
stats_lock = threading.Lock()
normal = {"ok": 0, "bad": [], "lat": []}
hostile = {"slowloris": 0, "stalled": 0, "slowpost": 0, "idle": 0, "errors": 0}


def raw_tls(source, rcvbuf=None, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", gw.ports["https"]))
    return gw.ctx.wrap_socket(s, server_hostname="localhost")


def normal_visitor(host, path, want_len, digest):
    while not stop.is_set():
        t0 = time.time()
        ok, why = False, ""
        try:
            c = gw.connect(timeout=LATENCY_BOUND * 2)
            c.request("GET", path, headers={"Host": host})
            r = c.getresponse()
            body = r.read()
            c.close()
            ok = r.status == 200 and len(body) == want_len and (
                digest is None or hashlib.sha256(body).digest() == digest)
            why = f"{host}{path}: {r.status}, {len(body)} bytes"
        except (OSError, http.client.HTTPException) as e:
            why = f"{host}{path}: {type(e).__name__} {e}"
        took = time.time() - t0
        with stats_lock:
            normal["lat"].append(took)
            if ok:
                normal["ok"] += 1
            else:
                normal["bad"].append(why)
        stop.wait(0.05)


def hostile_loop(kind, source, make, hold):
    """Keeps one hostile connection of `kind` going: opens it with make(), then hold() until it
    is cut or the soak ends; reconnects after a short pause."""
    while not stop.is_set():
        s = None
        try:
            s = make(source)
            with stats_lock:
                hostile[kind] += 1
            hold(s)
        except (OSError, ssl.SSLError):
            with stats_lock:
                hostile["errors"] += 1
        finally:
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        stop.wait(0.5)


def until_cut(s, step, every):
    """Calls step(s) every `every` seconds until the server closes the connection or the soak ends."""
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            if s.recv(1) == b"":
                return
        except (socket.timeout, ssl.SSLWantReadError):
            pass
        step(s)
        stop.wait(every)


def slowloris(source):
    s = raw_tls(source)
    s.sendall(b"GET /small HTTP/1.1\r\n")
    return s


def hold_slowloris(s):
    until_cut(s, lambda t: t.sendall(b"X"), 1.0)


def stalled(source):
    s = raw_tls(source, rcvbuf=4096)
    s.sendall(f"GET /huge HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode())
    return s


def hold_stalled(s):
    # Never read: only notice the end by a failing send, checked rarely.
    while not stop.is_set():
        stop.wait(2.0)
        try:
            s.settimeout(0.5)
            s.send(b"")
        except OSError:
            return


def slow_post(source):
    s = raw_tls(source)
    s.sendall(f"POST /post HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: 1000000\r\n\r\n".encode())
    return s


def hold_slow_post(s):
    until_cut(s, lambda t: t.sendall(b"a"), 3.0)


def idle(source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", gw.ports["https"]))
    return s


def hold_idle(s):
    s.settimeout(1.0)
    while not stop.is_set():
        try:
            if s.recv(1) == b"":
                return
        except socket.timeout:
            pass


try:
    server = gw.start_server(["--header-timeout", "3", "--keepalive-timeout", "5",
                              "--log-level", "warn"])
    st, body = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "soak"})
    key = body.get("client_api_key", "")
    st2, body2 = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": OTHER, "memo": "soak"})
    key2 = body2.get("client_api_key", "")
    if not check(st == 201 and st2 == 201 and key and key2, "two domains registered"):
        raise SystemExit
    client = gw.start_client(DOMAIN, key, local.server_address[1], TRANSPORT, "client.log")
    other = gw.start_client(OTHER, key2, local.server_address[1], TRANSPORT, "client-other.log")
    wrong = gw.start_client(DOMAIN, "0" * 64, local.server_address[1], TRANSPORT, "client-wrong.log")
    if not check(gw.wait_status("/small", DOMAIN, 200, 30) and gw.wait_status("/small", OTHER, 200, 30),
                 f"both tunnels up over {TRANSPORT}"):
        raise SystemExit
    base_rss = rss(server.pid)

    threads = []
    digest = hashlib.sha256(BIG).digest()
    for host, path, n, dg in ((DOMAIN, "/small", 10, None), (DOMAIN, "/big", MIB, digest),
                              (OTHER, "/small", 10, None), (OTHER, "/big", MIB, digest)):
        threads.append(threading.Thread(target=normal_visitor, args=(host, path, n, dg), daemon=True))
    plan = [("slowloris", "127.0.0.2", slowloris, hold_slowloris, 40),
            ("stalled", "127.0.0.3", stalled, hold_stalled, 20),
            ("slowpost", "127.0.0.4", slow_post, hold_slow_post, 20),
            ("idle", "127.0.0.5", idle, hold_idle, 200)]
    for kind, source, make, hold, n in plan:
        for _ in range(n):
            threads.append(threading.Thread(target=hostile_loop, args=(kind, source, make, hold),
                                            daemon=True))
    for t in threads:
        t.start()

    peak = 0
    t_end = time.time() + SOAK_SECONDS
    while time.time() < t_end:
        peak = max(peak, rss(server.pid))
        if server.poll() is not None or client.poll() is not None:
            break
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=15)

    lat = sorted(normal["lat"])
    total = normal["ok"] + len(normal["bad"])
    p99 = lat[int(len(lat) * 0.99) - 1] if lat else 0.0
    print(f"     normal requests: {normal['ok']}/{total} ok; latency p50 "
          f"{lat[len(lat) // 2] if lat else 0:.3f} s, p99 {p99:.3f} s, max {lat[-1] if lat else 0:.3f} s")
    print(f"     hostile connections opened: {hostile}")
    print(f"     server RSS {base_rss / MIB:.1f} MiB before, peak {peak / MIB:.1f} MiB")
    check(server.poll() is None and client.poll() is None and other.poll() is None,
          "server and clients still running after the soak")
    check(total >= 40, f"normal traffic flowed throughout ({total} requests)")
    check(total > 0 and normal["ok"] >= 0.99 * total,
          f"normal requests succeed under attack ({normal['ok']}/{total}; first failures: {normal['bad'][:5]})")
    check(lat and lat[-1] < LATENCY_BOUND, f"slowest normal request {lat[-1] if lat else 0:.2f} s < {LATENCY_BOUND} s")
    check(all(hostile[k] > 0 for k in ("slowloris", "stalled", "slowpost", "idle")),
          "every kind of hostile traffic ran")
    check(peak < RSS_BOUND, f"server peak RSS {peak / MIB:.1f} MiB < {RSS_BOUND // MIB} MiB")
    wrong_log = gw.log_lines("client-wrong.log")
    check(any("rejected" in l.get("msg", "") for l in wrong_log), "the wrong-key client is rejected")
    for p, what in ((wrong, "wrong-key client"), (other, "client of the second domain"),
                    (client, "client"), (server, "server")):
        gw.terminate(p, what)
except SystemExit:
    pass
finally:
    stop.set()
    gw.stop_all()
    local.shutdown()

gw.finish(3000)
