#!/usr/bin/env python3
"""Hostile framing at the public edge (issue 14 items 9, 10, 12a), with the real hopgate-server
and hopgate-client on loopback and a raw local service that records every byte it receives.

Visitor side, over raw TLS sockets: heads the tunnel cannot carry get 431 / 501 (not 502),
request-smuggling shapes (Transfer-Encoding other than one "chunked", Content-Length with
Transfer-Encoding, several Content-Length values, bad chunk sizes, bare LF) get the 400 page and
the connection closes, and the local service never sees a smuggled request. Tunnel side: a
local service answering with status 999 gets the visitor a 502 page (counted in
hopgate_proxy_bad_responses_total), an obs-folded response header never reaches the visitor as
an extra line; hopgate-hostile-client (tests/integration/hostile_client.cpp) sends heads with
CR/LF in names and values, odd statuses and Content-Length lies: 502 pages, cut bodies, nothing
injected. Plain HTTP: an absolute-form request is redirected to https://host/path?query.
Usage: e2e_edge_framing_test.py <bin-dir> <dtls|tls>. Every wait is bounded."""
import re, socket, ssl, sys, threading, time

from hg_e2e import Gateway, check

BIN, TRANSPORT = sys.argv[1], sys.argv[2]
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
DOMAIN = "app.example.com"
EVIL = "hostile-tenant.example.com"

# ------------------------------------------------------------------ the local service
# Reads one request head per connection, records it (and every later byte on that connection),
# answers by path with Connection: close.
seen_lock = threading.Lock()
seen_heads = []  # request heads (bytes), in arrival order
seen_bytes = []  # everything received, per connection


def serve_conn(c):
    c.settimeout(3)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < 1 << 20:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0]
        with seen_lock:
            seen_heads.append(head)
        path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
        if path.startswith(b"/slow"):
            time.sleep(1.5)  # the visitor's framing error is found long before this answer
        if path == b"/status999":
            c.sendall(b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno")
        elif path == b"/fold":
            c.sendall(b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n Injected: 1\r\nContent-Length: 2\r\n"
                      b"Connection: close\r\n\r\nok")
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        # Anything more the client sends on this connection is recorded too.
        c.settimeout(1)
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        with seen_lock:
            seen_bytes.append(data)
        c.close()


lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(64)
LOCAL_PORT = lsock.getsockname()[1]


def accept_loop():
    while True:
        try:
            c, _ = lsock.accept()
        except OSError:
            return
        threading.Thread(target=serve_conn, args=(c,), daemon=True).start()


threading.Thread(target=accept_loop, daemon=True).start()


def local_saw(marker):
    with seen_lock:
        return any(marker in b for b in seen_bytes) or any(marker in h for h in seen_heads)


gw = Gateway(BIN, "hopgate-e2e-framing-", ADMIN_KEY)


def exchange(raw, timeout=10, tls=True):
    """Sends `raw` on a fresh connection and reads until the server closes it (or `timeout`).
    Returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", gw.ports["https" if tls else "http"]),
                                 timeout=timeout)
    if tls:
        s = gw.ctx.wrap_socket(s, server_hostname="localhost")
    data, closed = b"", False
    deadline = time.time() + timeout
    try:
        s.sendall(raw)
        while time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except (ssl.SSLError, OSError) as e:
        closed = "timed out" not in str(e)
    finally:
        s.close()
    return data, closed


def status_of(data):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    return int(m.group(1)) if m else None


def is_error_page(data, status):
    return (b'<p class="code">' + str(status).encode() + b"</p>" in data and b'lang="ko"' in data)


def refused(name, raw, want, marker):
    """`raw` is answered with the `want` error page, then the connection closes, and the local
    service never sees `marker` (a path unique to this case)."""
    data, closed = exchange(raw)
    st = status_of(data)
    check(st == want and is_error_page(data, want) and closed,
          f"{name}: {want} error page, then close (got {st}, closed={closed})")
    time.sleep(0.2)
    check(not local_saw(marker), f"{name}: nothing reached the local service")


try:
    gw.start_server()
    st, reg = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "e2e"})
    check(st == 201, f"register {DOMAIN}")
    gw.start_client(DOMAIN, reg.get("client_api_key", ""), LOCAL_PORT, TRANSPORT, "client.log")
    check(gw.wait_status("/up", DOMAIN, 200, 30), f"tunnel up over {TRANSPORT}")
    H = f"Host: {DOMAIN}\r\n"

    # ---------------------------------------------------------------- item 9: limits
    many = "".join(f"X-H{i}: v\r\n" for i in range(260))
    refused("260 header fields", f"GET /case-many HTTP/1.1\r\n{H}{many}\r\n".encode(), 431,
            b"/case-many")
    refused("a 40-byte method", f"{'M' * 40} /case-method HTTP/1.1\r\n{H}\r\n".encode(), 501,
            b"/case-method")
    refused("a 1100-byte header name",
            f"GET /case-name HTTP/1.1\r\n{H}{'N' * 1100}: v\r\n\r\n".encode(), 431, b"/case-name")
    refused("a 40 KiB header section",
            f"GET /case-big HTTP/1.1\r\n{H}X-Big: {'v' * 40000}\r\n\r\n".encode(), 431,
            b"/case-big")
    # Lingering close: after the page, the server keeps reading (and dropping) what the visitor
    # still sends for a while instead of closing under it (a TCP reset could destroy the page in
    # the visitor's receive buffer before it was read).
    s = gw.ctx.wrap_socket(socket.create_connection(("127.0.0.1", gw.ports["https"]), timeout=10),
                           server_hostname="localhost")
    s.sendall(f"GET /case-linger HTTP/1.1\r\n{H}X-Big: {'v' * 40000}".encode())
    page = b""
    while b"</html>" not in page:
        chunk = s.recv(65536)
        if not chunk:
            break
        page += chunk
    sent_ok, t0 = True, time.time()
    try:
        for _ in range(16):  # 64 KiB more, after the page
            s.sendall(b"v" * 4096)
            time.sleep(0.005)
    except OSError as e:
        sent_ok = str(e)
    s.close()
    check(status_of(page) == 431 and sent_ok is True,
          f"lingering close: the visitor reads the whole 431 page and may keep sending "
          f"({status_of(page)}, sends: {sent_ok}, {time.time() - t0:.1f} s)")
    refused("a NUL in a header value", f"GET /case-nul HTTP/1.1\r\n{H}X: a\0b\r\n\r\n".encode(),
            400, b"/case-nul")

    # ---------------------------------------------------------------- item 9: smuggling
    smuggled = f"GET /smuggled HTTP/1.1\r\n{H}\r\n"
    for i, te in enumerate(["xchunked", "chunked, identity", "gzip, chunked", "identity"]):
        refused(f"Transfer-Encoding: {te}",
                (f"POST /case-te{i} HTTP/1.1\r\n{H}Transfer-Encoding: {te}\r\n\r\n"
                 f"0\r\n\r\n{smuggled}").encode(), 400, f"/case-te{i}".encode())
    refused("two Transfer-Encoding fields",
            (f"POST /case-te2f HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n"
             f"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}").encode(), 400,
            b"/case-te2f")
    refused("Content-Length then Transfer-Encoding",
            (f"POST /case-clte HTTP/1.1\r\n{H}Content-Length: 6\r\n"
             f"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}").encode(), 400,
            b"/case-clte")
    refused("Transfer-Encoding then Content-Length",
            (f"POST /case-tecl HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n"
             f"Content-Length: 3\r\n\r\n0\r\n\r\n{smuggled}").encode(), 400, b"/case-tecl")
    refused("xchunked with Content-Length",
            (f"POST /case-xcl HTTP/1.1\r\n{H}Transfer-Encoding: xchunked\r\n"
             f"Content-Length: 5\r\n\r\nhello{smuggled}").encode(), 400, b"/case-xcl")
    refused("two different Content-Length",
            (f"POST /case-cl2 HTTP/1.1\r\n{H}Content-Length: 5\r\nContent-Length: 40\r\n\r\n"
             f"hello{smuggled}").encode(), 400, b"/case-cl2")
    refused("two equal Content-Length",
            (f"POST /case-cl2s HTTP/1.1\r\n{H}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
             f"hello{smuggled}").encode(), 400, b"/case-cl2s")
    refused("bare LF line endings", f"GET /case-lf HTTP/1.1\n{H.strip()}\n\n{smuggled}".encode(),
            400, b"/case-lf")

    # Bad chunk framing: the head went into the tunnel before the body arrived, so the local
    # service sees the request (then a reset); the visitor gets the 400 page and a close.
    for name, body in [("bad chunk size", "zz\r\nhello\r\n0\r\n\r\n"),
                       ("overflowing chunk size", "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
                       ("chunk data without CRLF", "5\r\nhelloXX0\r\n\r\n")]:
        data, closed = exchange((f"POST /slow-chunk HTTP/1.1\r\n{H}Transfer-Encoding: chunked"
                                 f"\r\n\r\n{body}{smuggled}").encode())
        st = status_of(data)
        check(st == 400 and is_error_page(data, 400) and closed,
              f"{name}: 400 error page, then close (got {st}, closed={closed})")
    # A chunked request with extensions is fine.
    data, _ = exchange((f"POST /chunk-ok HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n"
                        f"Connection: close\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n").encode())
    check(status_of(data) == 200, f"chunked body with an extension -> 200 ({status_of(data)})")
    # An obs-folded request header reaches the local service as one line.
    data, _ = exchange((f"GET /case-fold HTTP/1.1\r\n{H}X-Folded: one\r\n two\r\n"
                        f"Connection: close\r\n\r\n").encode())
    with seen_lock:
        folded = [h for h in seen_heads if b"/case-fold" in h]
    check(status_of(data) in (200, 400) and
          all(not re.search(rb"\r\n[ \t]", h) for h in folded),
          f"obs-fold request: {status_of(data)}, no continuation line reaches the local service")
    time.sleep(1.6)  # the /slow answers
    check(not local_saw(b"/smuggled"), "the local service never saw a smuggled request")

    # ---------------------------------------------------------------- item 10: response heads
    def bad_responses():
        _, d = gw.request("GET", "/metrics", "localhost")
        return sum(int(v) for v in re.findall(
            rb'^hopgate_proxy_bad_responses_total\{reason="bad_status"\} (\d+)$', d, re.M))

    before = bad_responses()
    data, _ = exchange(f"GET /status999 HTTP/1.1\r\n{H}Connection: close\r\n\r\n".encode())
    check(status_of(data) == 502 and is_error_page(data, 502),
          f"local service answers status 999 -> visitor gets the 502 page ({data[:40]!r})")
    check(bad_responses() == before + 1, "the refused head is counted (reason bad_status)")
    data, _ = exchange(f"GET /fold HTTP/1.1\r\n{H}Connection: close\r\n\r\n".encode())
    head = data.split(b"\r\n\r\n", 1)[0]
    check(status_of(data) in (200, 502) and not re.search(rb"\r\n[ \t]", head) and
          not re.search(rb"(?i)\r\ninjected:", head),
          f"obs-folded response header: no continuation or injected line reaches the visitor "
          f"({status_of(data)})")

    # A hostile tunnel client (hopgate-hostile-client) answering with heads the real client never
    # sends: CR/LF in names and values, odd statuses, bad Content-Length, bodies that disagree.
    st, reg = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": EVIL, "memo": "e2e"})
    check(st == 201, f"register {EVIL}")
    hostile = gw.start([f"{BIN}/hopgate-hostile-client", "127.0.0.1", TRANSPORT,
                        str(gw.ports["dtls" if TRANSPORT == "dtls" else "tunnel"]),
                        gw.ports["certificate"], EVIL, reg.get("client_api_key", "")],
                       "hostile.log")
    check(gw.wait_status("/ok", EVIL, 200, 30), "hostile client's tunnel up")
    HE = f"Host: {EVIL}\r\nConnection: close\r\n"

    def reasons():
        _, d = gw.request("GET", "/metrics", "localhost")
        return {k.decode(): int(v) for k, v in re.findall(
            rb'^hopgate_proxy_bad_responses_total\{reason="([a-z_]+)"\} (\d+)$', d, re.M)}

    for path, reason in [("/crlf-value", "bad_header_value"), ("/crlf-name", "bad_header_name"),
                         ("/space-name", "bad_header_name"), ("/nul-value", "bad_header_value"),
                         ("/status-100", "bad_status"), ("/status-600", "bad_status"),
                         ("/status-999", "bad_status"), ("/cl-bad", "bad_content_length"),
                         ("/cl-two", "bad_content_length")]:
        before = reasons().get(reason, 0)
        data, _ = exchange(f"GET {path} HTTP/1.1\r\n{HE}\r\n".encode())
        check(status_of(data) == 502 and is_error_page(data, 502) and b"evil" not in data.lower(),
              f"hostile head {path}: 502 page, nothing of it reaches the visitor "
              f"({data[:30]!r})")
        check(reasons().get(reason, 0) == before + 1, f"hostile head {path}: counted ({reason})")
    before = reasons().get("body_length", 0)
    data, closed = exchange(f"GET /cl-long HTTP/1.1\r\nHost: {EVIL}\r\n\r\n".encode())
    check(status_of(data) == 200 and data.endswith(b"\r\n\r\nok") and b"evil" not in data and
          closed, f"body longer than its Content-Length: the promised 2 bytes, then close "
                  f"({data[-20:]!r}, closed={closed})")
    data, closed = exchange(f"GET /cl-short HTTP/1.1\r\nHost: {EVIL}\r\n\r\n".encode())
    check(data.endswith(b"ok") and closed,
          f"body shorter than its Content-Length: cut ({data[-10:]!r}, closed={closed})")
    for method, path in [("GET", "/no-content"), ("HEAD", "/head")]:
        data, closed = exchange(f"{method} {path} HTTP/1.1\r\nHost: {EVIL}\r\n\r\n".encode())
        check(status_of(data) in (200, 204) and data.endswith(b"\r\n\r\n") and
              b"evil" not in data and closed,
              f"{method} {path}: a body to a bodiless response is dropped, then close "
              f"({data[-20:]!r}, closed={closed})")
    check(reasons().get("body_length", 0) == before + 4, "the four bodies counted (body_length)")
    data, _ = exchange(f"GET /ok HTTP/1.1\r\n{HE}\r\n".encode())
    check(status_of(data) == 200 and data.endswith(b"fine"), "the hostile tunnel still serves")
    gw.terminate(hostile, "hopgate-hostile-client")

    # ---------------------------------------------------------------- item 12a: :80 redirect
    data, _ = exchange(f"GET http://{DOMAIN}/x?y=1 HTTP/1.1\r\n{H}\r\n".encode(), tls=False)
    loc = re.search(rb"(?i)\r\nlocation: ([^\r]*)\r\n", data)
    loc = loc.group(1).decode() if loc else ""
    check(status_of(data) == 308 and re.fullmatch(rf"https://{re.escape(DOMAIN)}(:\d+)?/x\?y=1",
                                                  loc) is not None,
          f"absolute-form on :80 -> 308 to https://host/x?y=1 ({loc})")
    data, _ = exchange(f"GET /p/q?r=s HTTP/1.1\r\n{H}\r\n".encode(), tls=False)
    loc = re.search(rb"(?i)\r\nlocation: ([^\r]*)\r\n", data)
    loc = loc.group(1).decode() if loc else ""
    check(re.fullmatch(rf"https://{re.escape(DOMAIN)}(:\d+)?/p/q\?r=s", loc) is not None,
          f"origin-form on :80 -> 308 to the same path ({loc})")
finally:
    gw.stop_all()
    lsock.close()

gw.finish(4000)
