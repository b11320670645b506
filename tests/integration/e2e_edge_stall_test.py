#!/usr/bin/env python3
"""Stalled visitors must not freeze a domain (issue 14, item 1), with the real hopgate-server and
hopgate-client on loopback.

20 visitors keep a large download open on one domain without ever reading it (raw TLS sockets with
a 4 KiB receive buffer, the GET sent, nothing read); whenever the server ends one (stalled-reader
timeout, set to STALL seconds here) the attacker opens a new one at once, so 20 stalled downloads
are in the tunnel throughout. Meanwhile a normal visitor fetches 1 MiB from the same domain again
and again for about MEASURE seconds: every fetch must complete within LIMIT seconds. The stalled
connections must be ended by the server after about STALL seconds, and the server's RSS must stay
bounded.
Usage: e2e_edge_stall_test.py <bin-dir> <dtls|tls>. Every wait is bounded; exits non-zero on
failure."""
import hashlib, http.server, os, socket, ssl, struct, sys, threading, time

from hg_e2e import Gateway, check, rss

BIN, TRANSPORT = sys.argv[1], sys.argv[2]
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
DOMAIN = "app.example.com"
MIB = 1 << 20
BIG = 64 * MIB       # the stalled downloads (generated piecewise, never held whole)
SMALL = bytes((i * 31 + (i >> 11)) & 0xFF for i in range(MIB))
STALLED = 20
STALL = 5            # HOP_SERVER_STALL_TIMEOUT_SECONDS in this test
MEASURE = 16         # seconds of normal fetches while the stalled downloads are held
LIMIT = 2.0          # seconds per 1 MiB fetch (the acceptance bar)
RSS_LIMIT = 200 * MIB
if os.environ.get("HG_SANITIZED") == "1":  # ASan+UBSan: several times slower and larger
    LIMIT *= 3
    RSS_LIMIT *= 3
PIECE = bytes(range(256)) * 256  # 64 KiB


class Local(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            try:
                for _ in range(BIG // len(PIECE)):
                    self.wfile.write(PIECE)
            except OSError:
                self.close_connection = True
        elif self.path == "/small":
            self.send_response(200)
            self.send_header("Content-Length", str(len(SMALL)))
            self.end_headers()
            self.wfile.write(SMALL)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # the client's pool resets idle local connections; not a failure here


local = Server(("127.0.0.1", 0), Local)
threading.Thread(target=local.serve_forever, daemon=True).start()


def tcp_state(sock):
    """Linux tcpi_state: 1 = ESTABLISHED; anything else means the server ended the connection."""
    try:
        return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[:1])[0]
    except OSError:
        return 0


class Stalled:
    """Holds STALLED downloads that are never read; replaces each one the server ends, and
    records how long each lived. Runs on its own thread until stop()."""

    def __init__(self, port, ctx):
        self.port, self.ctx = port, ctx
        self.open = []          # (ssl socket, opened at)
        self.lifetimes = []     # seconds, of those the server ended
        self.opened = 0
        self.errors = 0
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open_one(self):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
        raw.settimeout(10)
        try:
            raw.connect(("127.0.0.1", self.port))
            s = self.ctx.wrap_socket(raw, server_hostname=DOMAIN)
            s.sendall(f"GET /big HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode())
        except OSError:
            raw.close()
            self.errors += 1
            return
        self.open.append((s, time.time()))
        self.opened += 1

    def fill(self):
        for _ in range(STALLED - len(self.open)):
            self.open_one()

    def run(self):
        while self.running:
            now = time.time()
            keep = []
            for s, t in self.open:
                if tcp_state(s) == 1:
                    keep.append((s, t))
                else:
                    self.lifetimes.append(now - t)
                    s.close()
            self.open = keep
            self.fill()
            time.sleep(0.1)

    def stop(self):
        self.running = False
        self.thread.join(10)
        for s, _ in self.open:
            s.close()


gw = Gateway(BIN, "hopgate-e2e-stall-", ADMIN_KEY)
try:
    env = dict(os.environ, HOP_SERVER_STALL_TIMEOUT_SECONDS=str(STALL))
    server = gw.start_server(env=env)
    st, reg = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "e2e"})
    check(st == 201, f"register {DOMAIN}")
    gw.start_client(DOMAIN, reg.get("client_api_key", ""), local.server_address[1], TRANSPORT,
                    "client.log")
    check(gw.wait_status("/small", DOMAIN, 200, 20), f"tunnel up over {TRANSPORT}")

    def fetch():
        t0 = time.time()
        try:
            r, body = gw.request("GET", "/small", DOMAIN, timeout=30)
            ok = r.status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(SMALL).digest()
        except OSError as e:
            print("fetch error:", e)
            ok = False
        return ok, time.time() - t0

    ok, base = fetch()
    check(ok, f"1 MiB fetch before the stall: {base:.3f} s")

    stalled = Stalled(gw.ports["https"], gw.ctx)
    stalled.fill()
    check(len(stalled.open) == STALLED, f"{STALLED} stalled downloads opened")
    stalled.thread.start()
    time.sleep(1.0)  # the stalled streams take their windows

    times, bad, peak_rss = [], 0, 0
    end = time.time() + MEASURE
    while time.time() < end and len(times) < 400:
        ok, took = fetch()
        times.append(took)
        bad += 0 if ok else 1
        peak_rss = max(peak_rss, rss(server.pid))
        time.sleep(0.05)
    check(bad == 0, f"{len(times)} fetches of 1 MiB next to {STALLED} stalled downloads all "
                    f"complete intact ({bad} failed)")
    worst = max(times) if times else 0.0
    mean = sum(times) / len(times) if times else 0.0
    check(len(times) >= 5 and worst < LIMIT,
          f"each 1 MiB fetch takes < {LIMIT} s (max {worst:.3f} s, mean {mean:.3f} s, "
          f"{len(times)} fetches)")

    # Hold on until every download opened before the measurement has been ended by the server.
    deadline = time.time() + STALL + 20
    while time.time() < deadline and len(stalled.lifetimes) < STALLED:
        time.sleep(0.2)
    peak_rss = max(peak_rss, rss(server.pid))
    stalled.stop()
    lt = stalled.lifetimes
    check(len(lt) >= STALLED,
          f"the server ended the stalled downloads ({len(lt)} of {stalled.opened} opened)")
    check(lt and max(lt) < STALL + 10,
          f"a stalled download lives about the stall timeout of {STALL} s "
          f"(min {min(lt or [0]):.1f} s, max {max(lt or [0]):.1f} s)")
    check(lt and min(lt) >= STALL - 1, "but not much less")
    check(peak_rss < RSS_LIMIT, f"server RSS stays bounded: peak {peak_rss / MIB:.1f} MiB "
                                f"(limit {RSS_LIMIT // MIB} MiB)")
    stalls = [l for l in gw.log_lines("server.log") if l.get("msg") == "stalled reader"]
    check(len(stalls) >= STALLED, f"server logs the stalled readers ({len(stalls)} lines)")

    ok, after = fetch()
    check(ok and after < LIMIT, f"1 MiB fetch after the stall: {after:.3f} s")
finally:
    gw.stop_all()
gw.finish()
