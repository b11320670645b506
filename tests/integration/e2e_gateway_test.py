#!/usr/bin/env python3
"""End-to-end: the real hopgate-server and hopgate-client binaries on loopback with a local HTTP
service, over each tunnel transport. Usage: e2e_gateway_test.py <bin-dir> <dtls|tls>.
Every wait is bounded; the script exits non-zero on the first failed check."""
import hashlib, http.client, http.server, json, os, re, subprocess, sys
import threading, time

from hg_e2e import Gateway, check

BIN, TRANSPORT = sys.argv[1], sys.argv[2]
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
DOMAIN = "app.example.com"
BIG = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(8 << 20))


class Local(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/hello":
            body = b"hello through the tunnel"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Seen-Host", self.headers.get("Host", ""))
            self.send_header("X-Seen-XFF", self.headers.get("X-Forwarded-For", ""))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BIG)))
            self.end_headers()
            self.wfile.write(BIG)
        elif self.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(5):
                data = f"data: event {i}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(0.2)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/slow":
            time.sleep(4)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        left = n
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        body = json.dumps({"len": n - left, "sha256": h.hexdigest()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


local = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Local)
threading.Thread(target=local.serve_forever, daemon=True).start()
gw = Gateway(BIN, "hopgate-e2e-", ADMIN_KEY)

try:
    for prog in ("hopgate-server", "hopgate-client"):
        v = subprocess.run([os.path.join(BIN, prog), "--version"], capture_output=True, text=True, timeout=10)
        check(v.returncode == 0 and re.fullmatch(prog + r" \d+\.\d+\.\d+ \(tunnel protocol 1, OpenSSL 3\.[^)]*\)\n",
                                                  v.stdout) is not None, f"{prog} --version: {v.stdout.strip()}")
        h = subprocess.run([os.path.join(BIN, prog), "--help"], capture_output=True, text=True, timeout=10)
        check(h.returncode == 0 and "--version" in h.stdout, f"{prog} --help lists --version")
    server = gw.start_server(["--proxy-timeout", "2"], log_name="hopgate-server.log")
    ports, ctx, request, admin = gw.ports, gw.ctx, gw.request, gw.admin

    st, reg = admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "e2e"})
    check(st == 201 and len(reg.get("client_api_key", "")) == 64, "admin register -> 201 with a 64-hex key")
    check(admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "x"})[0] == 409, "duplicate register -> 409")
    check(admin("GET", "/api/v1/admin/domains", token=None)[0] == 401, "admin without token -> 401")
    key = reg.get("client_api_key", "")

    def start_client(k):
        return gw.start_client(DOMAIN, k, local.server_address[1], TRANSPORT, "hopgate-client.log")

    def wait_status(path, want, seconds=15):
        return gw.wait_status(path, DOMAIN, want, seconds)

    check(request("GET", "/hello", "nobody.example.com")[0].status == 404, "unknown host -> 404 page")
    check(request("GET", "/hello", DOMAIN)[0].status in (502, 404), "registered domain without a tunnel -> error page")

    bad = start_client("0" * 64)
    time.sleep(1.5)
    check(request("GET", "/hello", DOMAIN)[0].status != 200, "a client with a wrong key serves nothing")
    gw.terminate(bad, "client with a wrong key")

    client = start_client(key)
    check(wait_status("/hello", 200), f"tunnel up over {TRANSPORT}: GET /hello -> 200")
    r, d = request("GET", "/hello", DOMAIN + ":8443", headers={"X-Forwarded-For": "10.9.9.9"})
    check(d == b"hello through the tunnel", "body intact")
    check(r.getheader("X-Seen-Host") == DOMAIN + ":8443", "routed Host (with its port) for the local service")
    # The visitor is no trusted proxy: its X-Forwarded-For is dropped (e2e_edge_headers covers
    # HOP_SERVER_TRUSTED_PROXIES, where the chain is kept and extended).
    check(r.getheader("X-Seen-XFF") == "127.0.0.1", "X-Forwarded-For is the peer address alone")
    check(r.getheader("X-Content-Type-Options") == "nosniff", "security headers added")
    r, d = request("GET", "/big", DOMAIN)
    check(r.status == 200 and hashlib.sha256(d).digest() == hashlib.sha256(BIG).digest(), "8 MiB download intact")
    up = os.urandom(4 << 20)
    r, d = request("POST", "/echo", DOMAIN, body=up)
    check(r.status == 200 and json.loads(d)["sha256"] == hashlib.sha256(up).hexdigest(), "4 MiB upload intact")

    # SSE: events must arrive one by one, not all at the end.
    c = http.client.HTTPSConnection("127.0.0.1", ports["https"], context=ctx, timeout=10)
    c.request("GET", "/sse", headers={"Host": DOMAIN})
    r = c.getresponse()
    stamps = []
    while True:
        line = r.fp.readline()
        if not line:
            break
        if line.startswith(b"data:"):
            stamps.append(time.time())
        if len(stamps) == 5:
            break
    c.close()
    check(len(stamps) == 5 and stamps[-1] - stamps[0] > 0.5, "SSE events flushed as produced")

    t0 = time.time()
    r, _ = request("GET", "/slow", DOMAIN)
    check(r.status == 504 and time.time() - t0 < 4, "no response head within the proxy timeout -> 504")

    # Kill -9 the client mid-download: the visitor gets an error or a closed stream quickly.
    c = http.client.HTTPSConnection("127.0.0.1", ports["https"], context=ctx, timeout=10)
    c.request("GET", "/big", headers={"Host": DOMAIN})
    r = c.getresponse()
    r.read(1 << 16)
    client.kill(); client.wait()
    t0 = time.time()
    try:
        rest = r.read()
        complete = 65536 + len(rest) == len(BIG)
    except Exception:
        complete = False
    c.close()
    released = time.time() - t0
    check(released < 6, f"visitor of a dying tunnel is released within seconds ({released:.1f} s)")
    check(wait_status("/hello", 502, 10), "tunnel gone -> 502 page")
    client = start_client(key)
    check(wait_status("/hello", 200, 20), "restarted client serves again")

    st, body = admin("GET", f"/api/v1/admin/domains/exists?domain={DOMAIN}")
    check(st == 200 and body.get("exists") is True, "exists -> true")
    st, body = admin("GET", "/api/v1/admin/domains/status?domain=nope.example.com")
    check(st == 404, "status of an unknown domain -> 404")
    st, body = admin("GET", f"/api/v1/admin/domains/status?domain={DOMAIN}")
    check(st == 200 and body.get("success") is True, "status -> 200")
    st, body = admin("GET", "/api/v1/admin/domains")
    check(st == 200 and DOMAIN in json.dumps(body), "list shows the domain")
    check(admin("POST", "/api/v1/admin/domains/register", {"domain": "bad domain!", "memo": ""})[0] == 400, "invalid domain -> 400")
    st, body = admin("POST", "/api/v1/admin/domains/rotate", {"domain": DOMAIN})
    new_key = body.get("client_api_key", "")
    check(st == 200 and len(new_key) == 64 and new_key != key, "rotate -> a new key")
    check(wait_status("/hello", 502, 10), "rotating drops the live tunnel (old key)")
    gw.terminate(client, "client whose key was rotated")
    client = start_client(new_key)
    check(wait_status("/hello", 200, 20), "the new key connects")
    # A client with a live tunnel stops cleanly (it used to die of SIGSEGV in Agent::stop).
    gw.terminate(client, "client with a live tunnel")
    check(wait_status("/hello", 502, 10), "the stopped client's tunnel is gone")
    client = start_client(new_key)
    check(wait_status("/hello", 200, 20), "a restarted client serves again")
    key = new_key

    st, _ = admin("POST", "/api/v1/admin/domains/unregister", {"domain": DOMAIN, "client_api_key": key})
    check(st == 200, "unregister -> 200")
    check(wait_status("/hello", 404, 10), "unregistering drops the tunnel: unknown host again")

    c = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=5)
    c.request("GET", "/x", headers={"Host": DOMAIN})
    r = c.getresponse()
    check(r.status == 308 and r.getheader("Location", "").startswith("https://" + DOMAIN), "HTTP -> 308 to HTTPS")
    r, d = request("GET", "/metrics", "localhost")
    check(b"hopgate_http_requests_total" in d and b"hopgate_tunnel_handshakes_total" in d, "/metrics exposes counters")
    server.send_signal(15)
    check(server.wait(timeout=15) == 0, "server exits 0 on SIGTERM")
finally:
    gw.stop_all()
    local.shutdown()

gw.finish(3000)
