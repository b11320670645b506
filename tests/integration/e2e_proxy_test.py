#!/usr/bin/env python3
"""End-to-end proxy behaviour of the real hopgate-server and hopgate-client binaries on loopback:
WebSocket upgrade pipes (echo, 1 MiB message, idle timeouts), access-log request ids on both
sides, visitor pipelining, slowloris / idle flood / keep-alive timeout, the connection cap, the
proxy buffer budget, and graceful drain on SIGTERM.
Usage: e2e_proxy_test.py <bin-dir> <dtls|tls>. Every wait is bounded; exits non-zero on failure."""
import asyncio, hashlib, http.client, http.server, json, os, re, socket, ssl, sys, threading
import time

try:
    import websockets
except ImportError:  # Debian's python3-websockets under another interpreter (e.g. pyenv)
    sys.path.append("/usr/lib/python3/dist-packages")
    import websockets
from http import HTTPStatus

from hg_e2e import Gateway, check, count_closed

BIN, TRANSPORT = sys.argv[1], sys.argv[2]
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
DOMAIN = "app.example.com"
WS_DOMAIN = "ws.example.com"
SLOW = bytes((i * 13 + (i >> 9)) & 0xFF for i in range(2 << 20))
UPGRADE_IDLE = 6
HEADER_TIMEOUT = 3
KEEPALIVE_TIMEOUT = 3


class Local(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/hello":
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Seen-Request-Id", self.headers.get("X-Request-Id", ""))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/p/"):
            n = int(self.path[3:])
            time.sleep(0.3 if n == 1 else 0.0)  # the first answer is the slowest
            body = f"response {n}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/slowdl":  # 2 MiB over about 3 s
            self.send_response(200)
            self.send_header("Content-Length", str(len(SLOW)))
            self.end_headers()
            step = len(SLOW) // 30
            for i in range(0, len(SLOW), step):
                self.wfile.write(SLOW[i:i + step])
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self):  # answers at once without reading the body
        body = b"too large"
        self.send_response(413)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


local = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Local)
threading.Thread(target=local.serve_forever, daemon=True).start()


# The WebSocket echo service (a second tunnelled domain). /deny answers a plain 403 instead of 101.
async def ws_echo(ws, path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


def ws_process_request(path, headers):
    if path == "/deny":
        return HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"no upgrade here\n"
    return None


ws_loop = asyncio.new_event_loop()
threading.Thread(target=ws_loop.run_forever, daemon=True).start()


async def start_ws_server():
    return await websockets.serve(ws_echo, "127.0.0.1", 0, max_size=None, ping_interval=None,
                                  process_request=ws_process_request)


ws_server = asyncio.run_coroutine_threadsafe(start_ws_server(), ws_loop).result(10)
ws_port = ws_server.sockets[0].getsockname()[1]

gw = Gateway(BIN, "hopgate-e2e-proxy-", ADMIN_KEY)
work, start, log_lines = gw.work, gw.start, gw.log_lines


def find_access(name, rid, seconds=5):
    deadline = time.time() + seconds
    while time.time() < deadline:
        for l in log_lines(name):
            if l.get("msg") == "request" and l.get("request_id") == rid:
                return l
        time.sleep(0.1)
    return None


try:
    env = dict(os.environ, HOP_SERVER_UPGRADE_IDLE_SECONDS=str(UPGRADE_IDLE),
               HOP_SERVER_PROXY_TIMEOUT_SECONDS="2",
               HOP_SERVER_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
               HOP_SERVER_KEEPALIVE_TIMEOUT_SECONDS=str(KEEPALIVE_TIMEOUT),
               HOP_SERVER_BUFFER_BUDGET_MB="1",  # 8 exchanges of 128 KiB
               # Every visitor here is 127.0.0.1: no per-domain / per-source shares or
               # per-source connection cap, so the whole budget and the idle flood are reachable
               # (the shares and that cap: e2e_edge_budget_test.py).
               HOP_SERVER_BUFFER_SHARE_DOMAIN_PERCENT="100",
               HOP_SERVER_BUFFER_SHARE_SOURCE_PERCENT="100",
               HOP_SERVER_MAX_CONNECTIONS_PER_SOURCE="0",
               HOP_SERVER_TUNNEL_BUFFER_BUDGET_MB="1",  # tunnel window growth, all tunnels
               HOP_SERVER_DRAIN_SECONDS="10")
    server = gw.start_server(env=env)
    ports, ctx, request, admin = gw.ports, gw.ctx, gw.request, gw.admin

    def start_client(domain, key, port, log_name):
        return gw.start_client(domain, key, port, TRANSPORT, log_name)

    def wait_status(path, host, want, seconds=20):
        return gw.wait_status(path, host, want, seconds)

    keys = {}
    for d in (DOMAIN, WS_DOMAIN):
        st, reg = admin("POST", "/api/v1/admin/domains/register", {"domain": d, "memo": "e2e"})
        keys[d] = reg.get("client_api_key", "")
        check(st == 201, f"register {d}")
    start_client(DOMAIN, keys[DOMAIN], local.server_address[1], "client-app.log")
    start_client(WS_DOMAIN, keys[WS_DOMAIN], ws_port, "client-ws.log")
    check(wait_status("/hello", DOMAIN, 200), f"HTTP tunnel up over {TRANSPORT}")

    # ---------------------------------------------------------------- 1. WebSocket upgrade
    async def ws_connect(path="/echo"):
        return await websockets.connect(f"wss://{WS_DOMAIN}{path}", host="127.0.0.1", port=ports["https"],
                                        ssl=ctx, max_size=None, ping_interval=None, open_timeout=10,
                                        close_timeout=2)

    async def ws_wait_up():
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                ws = await ws_connect()
                await ws.close()
                return True
            except Exception:
                await asyncio.sleep(0.3)
        return False

    async def ws_echo_checks():
        ws = await ws_connect()
        ok = True
        for i in range(5):
            await ws.send(f"message {i}")
            ok = ok and await asyncio.wait_for(ws.recv(), 10) == f"message {i}"
        check(ok, "WebSocket: five text messages echoed in order")
        big = os.urandom(1 << 20)
        await ws.send(big)
        got = await asyncio.wait_for(ws.recv(), 30)
        check(isinstance(got, bytes) and hashlib.sha256(got).digest() == hashlib.sha256(big).digest(),
              "WebSocket: 1 MiB binary message echoed intact")
        await ws.send(b"\x00\x01\x02")
        check(await asyncio.wait_for(ws.recv(), 10) == b"\x00\x01\x02", "WebSocket: small binary after the big one")
        # Idle longer than the proxy (2 s), header and keep-alive (3 s) timeouts: still open.
        await asyncio.sleep(4)
        await ws.send("after idle")
        try:
            ok = await asyncio.wait_for(ws.recv(), 10) == "after idle"
        except Exception:
            ok = False
        check(ok, "WebSocket idle 4 s (> proxy timeout 2 s) is not cut")
        await ws.close()
        check(ws.close_code == 1000, "WebSocket closes cleanly (1000)")

    async def ws_idle_cut():
        ws = await ws_connect()
        await ws.send("x")
        await asyncio.wait_for(ws.recv(), 10)
        t0 = time.time()
        try:
            await asyncio.wait_for(ws.recv(), UPGRADE_IDLE + 8)
            closed = False
        except websockets.ConnectionClosed:
            closed = True
        except asyncio.TimeoutError:
            closed = False
        took = time.time() - t0
        check(closed and UPGRADE_IDLE - 1 <= took <= UPGRADE_IDLE + 4,
              f"WebSocket idle past HOP_SERVER_UPGRADE_IDLE_SECONDS={UPGRADE_IDLE} is closed ({took:.1f} s)")

    async def ws_deny():
        try:
            ws = await ws_connect("/deny")
            await ws.close()
            return None
        except websockets.InvalidStatusCode as e:
            return e.status_code

    check(asyncio.run(ws_wait_up()), "WebSocket tunnel up")
    asyncio.run(ws_echo_checks())
    denied = [asyncio.run(ws_deny()) for _ in range(5)]
    check(denied == [403] * 5, f"upgrade answered without 101 -> proxied as a normal response ({denied})")
    asyncio.run(ws_idle_cut())

    # ---------------------------------------------------------------- 6. buffer budget
    def metric(name, seconds=0.0, want=None):
        """The value of an unlabelled metric, polled until it equals `want` (if given)."""
        deadline = time.time() + seconds
        while True:
            _, d = request("GET", "/metrics", "localhost")
            m = re.search(rb"^" + name.encode() + rb" (\d+)$", d, re.M)
            v = int(m.group(1)) if m else None
            if want is None or v == want or time.time() >= deadline:
                return v
            time.sleep(0.1)

    check(metric("hopgate_proxy_buffer_bytes", 5, 0) == 0, "no proxy buffers leased while idle")

    async def budget_checks():
        held = [await ws_connect() for _ in range(8)]  # each pipe holds 128 KiB of the 1 MiB budget
        r, _ = await asyncio.get_running_loop().run_in_executor(None, lambda: request("GET", "/hello", DOMAIN))
        check(r.status == 503 and r.getheader("Retry-After") == "1",
              f"proxy buffer budget spent -> 503 with Retry-After (got {r.status})")
        for ws in held:
            await ws.close()

    asyncio.run(budget_checks())
    check(wait_status("/hello", DOMAIN, 200, 5), "budget returned when the pipes close -> 200 again")
    r, d = request("GET", "/metrics", "localhost")
    check(b'hopgate_proxy_errors_total{type="overloaded"}' in d and b"hopgate_http_upgrades_total" in d,
          "metrics: overloaded errors and upgrades counted")
    # The tunnels' shared receive-window budget (its rules are pinned by unit_proto CreditBudget.*;
    # on loopback the windows rarely need to grow): exported, and never above its 1 MiB.
    wb = metric("hopgate_tunnel_window_budget_bytes")
    check(wb is not None and wb <= 1 << 20 and b"hopgate_tunnel_window_budget_denied_total" in d,
          f"metrics: tunnel window budget exported and within its capacity ({wb})")

    # ---------------------------------------------------------------- 2. access log + request id
    r, _ = request("GET", "/hello?secret=1", DOMAIN)  # query strings are not logged
    rid = r.getheader("X-Request-Id", "")
    check(re.fullmatch(r"[0-9a-f]{16}", rid) is not None, f"response carries a generated X-Request-Id ({rid})")
    r, _ = request("GET", "/hello", DOMAIN)
    rid2 = r.getheader("X-Request-Id", "")
    check(r.getheader("X-Seen-Request-Id") == rid2 and rid2 != rid, "the local service sees the same X-Request-Id")
    s_line = find_access("server.log", rid2)
    c_line = find_access("client-app.log", rid2)
    check(s_line is not None and c_line is not None, f"request id {rid2} in both the server and the client access log")
    if s_line:
        check(s_line.get("status") == 200 and s_line.get("method") == "GET" and s_line.get("host") == DOMAIN
              and s_line.get("path") == "/hello" and s_line.get("bytes_out") == 5
              and s_line.get("transport") == TRANSPORT and s_line.get("remote_addr") == "127.0.0.1"
              and isinstance(s_line.get("duration_ms"), (int, float)), f"server access line fields: {s_line}")
    if c_line:
        check(c_line.get("status") == 200 and c_line.get("path") == "/hello" and c_line.get("result") == "ok",
              f"client access line fields: {c_line}")
    s1 = find_access("server.log", rid)
    check(s1 is not None and s1.get("path") == "/hello", "path logged without the query string")
    r, _ = request("GET", "/hello", DOMAIN, headers={"X-Request-Id": "trace-0123456789"})
    check(r.getheader("X-Request-Id") == "trace-0123456789" and r.getheader("X-Seen-Request-Id") == "trace-0123456789",
          "a sane incoming X-Request-Id is kept end to end")
    check(find_access("client-app.log", "trace-0123456789") is not None, "the kept id is in the client log")
    r, _ = request("GET", "/hello", DOMAIN, headers={"X-Request-Id": "bad id\"{}"})
    check(re.fullmatch(r"[0-9a-f]{16}", r.getheader("X-Request-Id", "")) is not None,
          "an unsafe incoming X-Request-Id is replaced")
    r, _ = request("GET", "/hello", "nobody.example.com")
    check(r.status == 404 and find_access("server.log", r.getheader("X-Request-Id", "-")) is not None,
          "error pages carry X-Request-Id and are logged")

    early = [request("POST", "/early", DOMAIN, body=os.urandom(32 << 10)) for _ in range(5)]
    check(all(r.status == 413 and d == b"too large" for r, d in early),
          "a response sent before the request body was read reaches the visitor intact "
          f"({[(r.status, d[:40]) for r, d in early]})")

    # ---------------------------------------------------------------- 5. pipelining
    def tls_connect(timeout=10):
        raw = socket.create_connection(("127.0.0.1", ports["https"]), timeout=timeout)
        return ctx.wrap_socket(raw, server_hostname="localhost")

    s = tls_connect()
    s.sendall(b"".join(f"GET /p/{n} HTTP/1.1\r\nHost: {DOMAIN}\r\n{'Connection: close' if n == 3 else 'X-N: 1'}\r\n\r\n".encode()
                       for n in (1, 2, 3)))
    data = b""
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except (ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
    s.close()
    bodies = re.findall(rb"response \d", data)
    check(data.count(b"HTTP/1.1 200") == 3 and bodies == [b"response 1", b"response 2", b"response 3"],
          f"three pipelined requests -> three responses in order ({bodies})")

    # ---------------------------------------------------------------- 4. keep-alive, slowloris, flood
    s = tls_connect()
    s.sendall(f"GET /hello HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode())
    data = b""
    while not data.endswith(b"hello"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    t0 = time.time()
    s.settimeout(KEEPALIVE_TIMEOUT + 5)
    try:
        eof = s.recv(1) == b""
    except (ssl.SSLError, OSError):
        eof = True
    took = time.time() - t0
    s.close()
    check(eof and took < KEEPALIVE_TIMEOUT + 2,
          f"idle keep-alive connection closed after HOP_SERVER_KEEPALIVE_TIMEOUT_SECONDS ({took:.1f} s)")

    idle = []
    for _ in range(500):
        idle.append(socket.create_connection(("127.0.0.1", ports["https"]), timeout=5))
    slow = []
    for _ in range(50):
        t = tls_connect()
        t.sendall(b"GET /hello HTTP/1.1\r\n")
        slow.append(t)
    t0 = time.time()
    r, d = request("GET", "/hello", DOMAIN, timeout=10)
    took = time.time() - t0
    check(r.status == 200 and took < 3, f"500 idle + 50 slowloris connections: a normal request still takes {took:.2f} s")
    cut = {}
    stop_at = time.time() + HEADER_TIMEOUT + 6
    header = b"X-Slow: " + b"a" * 200
    i = 0
    while len(cut) < len(slow) and time.time() < stop_at:
        for k, t in enumerate(slow):
            if k in cut:
                continue
            try:
                t.setblocking(False)
                try:
                    if t.recv(1) == b"":
                        cut[k] = time.time() - t0
                        continue
                except (ssl.SSLWantReadError, BlockingIOError):
                    pass
                t.setblocking(True)
                t.settimeout(1)
                t.sendall(header[i % len(header):i % len(header) + 1])
            except (ssl.SSLError, OSError):
                cut[k] = time.time() - t0
        i += 1
        time.sleep(0.5)
    check(len(cut) == len(slow) and max(cut.values()) < HEADER_TIMEOUT + 4,
          f"slowloris trickles cut after the header timeout ({len(cut)}/{len(slow)}, "
          f"last at {max(cut.values()) if cut else -1:.1f} s)")
    n_open = metric("hopgate_http_connections_open", 5, 1)
    check(n_open is not None and n_open < 20, f"idle flood connections were closed too (open: {n_open})")
    for t in idle + slow:
        t.close()

    # ---------------------------------------------------------------- connection cap (own server)
    cap_dir = os.path.join(work, "cap")
    os.mkdir(cap_dir)
    cap = start([f"{BIN}/hopgate-server", "--http-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0",
                 "--dtls-listen", "127.0.0.1:0", "--tunnel-listen", "127.0.0.1:0", "--max-connections", "20",
                 "--db-dsn", f"sqlite://{work}/cap.db", "--cert-dir", cap_dir], "cap.log")
    cap_ports = json.loads(cap.stdout.readline())
    cap_ctx = ssl.create_default_context(cafile=cap_ports["certificate"])
    cap_ctx.check_hostname = False
    conns = [socket.create_connection(("127.0.0.1", cap_ports["https"]), timeout=5) for _ in range(30)]
    time.sleep(1)
    closed = count_closed(conns)
    check(closed == 10, f"over --max-connections 20: the 10 extra connections are closed ({closed})")
    for c in conns:
        c.close()
    d = b""
    deadline = time.time() + 10
    while time.time() < deadline:  # until the closed handshakes are gone and we get a slot
        try:
            cc = http.client.HTTPSConnection("127.0.0.1", cap_ports["https"], context=cap_ctx, timeout=5)
            cc.request("GET", "/metrics", headers={"Host": "localhost"})
            d = cc.getresponse().read()
            cc.close()
            break
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
    m = re.search(rb"hopgate_http_connections_rejected_total (\d+)", d)
    check(m is not None and int(m.group(1)) >= 10, "hopgate_http_connections_rejected_total counts them")
    cap.send_signal(15)
    check(cap.wait(timeout=15) == 0, "idle server exits 0 on SIGTERM")

    # ---------------------------------------------------------------- 3. graceful drain
    c = http.client.HTTPSConnection("127.0.0.1", ports["https"], context=ctx, timeout=20)
    c.request("GET", "/slowdl", headers={"Host": DOMAIN})
    r = c.getresponse()
    first = r.read(1 << 16)
    t0 = time.time()
    server.send_signal(15)
    refused = False
    deadline = time.time() + 2
    while time.time() < deadline and not refused:
        try:
            socket.create_connection(("127.0.0.1", ports["https"]), timeout=1).close()
            time.sleep(0.05)
        except ConnectionRefusedError:
            refused = True
        except OSError:
            pass
    check(refused, "draining server refuses new connections")
    # A tunnel that connects during the drain is refused at AUTH as "shutting down", and the
    # client retries with its normal backoff (not the slow retry of a wrong key).
    start_client(DOMAIN, keys[DOMAIN], local.server_address[1], "client-late.log")
    late_deadline = time.time() + 4
    late = []
    while time.time() < late_deadline:
        late = log_lines("client-late.log")
        if any(l.get("msg") == "reconnecting later" for l in late):
            break
        time.sleep(0.1)
    refusal = [l for l in late if l.get("msg") == "server refused the tunnel for now"]
    retry = [l for l in late if l.get("msg") == "reconnecting later"]
    check(refusal and "shutting down" in refusal[0].get("reason", "") and retry
          and retry[0].get("in_ms", 99999) <= 2000,
          "a tunnel dialling in during the drain is refused (shutting down) and retried soon")
    rest = r.read()
    c.close()
    check(hashlib.sha256(first + rest).digest() == hashlib.sha256(SLOW).digest(),
          "in-flight slow download completes intact during the drain")
    code = server.wait(timeout=20)
    took = time.time() - t0
    check(code == 0 and took < 8, f"server exits 0 once drained ({took:.1f} s after SIGTERM)")
    check(any(l.get("msg") == "drained" for l in log_lines("server.log")), "server logs 'drained'")
finally:
    gw.stop_all()
    local.shutdown()

gw.finish(4000)
