#!/usr/bin/env python3
"""End-to-end: both tunnel transports on one public port (issue 15 item 5). The HTTPS listener
takes TLS tunnels by ALPN hopgate/1, so a client given only the HTTPS port serves requests with
--transport tls, and `auto` tries DTLS on UDP at that port, then TLS on TCP at the same port.
Visitors on that port keep getting HTTP; a TLS peer that negotiates hopgate/1 and then speaks
HTTP is closed without hurting anybody; a client offering hopgate/1 to a TLS server that does
not support it fails with a clear error; `--tunnel-listen off` leaves the HTTPS port as the only
TLS tunnel entrance. Usage: e2e_one_port_test.py <bin-dir>.
Every wait is bounded."""
import http.server, os, socket, ssl, sys, threading, time

from hg_e2e import Gateway, check, start_local_service

BIN = sys.argv[1]
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
DOMAIN = "app.example.com"



def start_client(gw, key, transport, port, log_name):
    """hopgate-client given only --server-addr (no --server-tls-port)."""
    return gw.start([f"{gw.bin}/hopgate-client", "--server-addr", f"127.0.0.1:{port}",
                     "--server-name", "localhost", "--domain", DOMAIN, "--api-key", key,
                     "--transport", transport, "--local-target",
                     f"127.0.0.1:{local.server_address[1]}", "--ca-file",
                     gw.ports["certificate"]], log_name)


def wait_log(gw, name, pred, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        hit = [l for l in gw.log_lines(name) if pred(l)]
        if hit:
            return hit
        time.sleep(0.2)
    return []


def established(gw, name, seconds=20):
    return wait_log(gw, name, lambda l: l.get("msg") == "tunnel established", seconds)


def dials(gw, name):
    return [(l.get("protocol"), l.get("port"), l.get("address"))
            for l in gw.log_lines(name) if l.get("msg") == "connecting"]


local = start_local_service(b"hello through one port")
gw = Gateway(BIN, "hopgate-one-port-", ADMIN_KEY)

try:
    server = gw.start_server()
    https = gw.ports["https"]
    st, reg = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "one"})
    key = reg.get("client_api_key", "")
    if not check(st == 201 and key, "admin register -> 201"):
        raise SystemExit

    # 1. --transport tls with only the HTTPS port.
    c = start_client(gw, key, "tls", https, "client-tls.log")
    hit = established(gw, "client-tls.log")
    check(hit and hit[0].get("transport") == "tls" and hit[0].get("peer") == f"127.0.0.1:{https}",
          f"--transport tls --server-addr 127.0.0.1:{https} (HTTPS port): tunnel established "
          f"over TLS to that port ({hit[:1]})")
    check(dials(gw, "client-tls.log")[:1] == [("tcp", https, "127.0.0.1")],
          f"the client logs the address and port it dials ({dials(gw, 'client-tls.log')[:1]})")
    check(gw.wait_status("/", DOMAIN, 200), "GET through the tunnel on the HTTPS port -> 200")
    r, body = gw.request("GET", "/", DOMAIN)
    check(r.status == 200 and body == b"hello through one port", "response body intact")

    # 2. Visitors on the same port still get HTTP (control domain and the tunnel's domain),
    #    over fresh connections and over one kept-alive connection.
    ok = 0
    for _ in range(20):
        r, _b = gw.request("GET", "/", DOMAIN)
        ok += r.status == 200
    check(ok == 20, f"20 visitor requests on the shared port -> 200 ({ok}/20)")
    conn = gw.connect()
    kept = 0
    for _ in range(10):
        conn.request("GET", "/", headers={"Host": DOMAIN})
        resp = conn.getresponse()
        kept += resp.status == 200 and resp.read() == b"hello through one port"
    conn.close()
    check(kept == 10, f"10 requests on one kept-alive visitor connection -> 200 ({kept}/10)")
    st, _ = gw.admin("GET", "/api/v1/admin/domains")
    check(st == 200, "admin API on the shared port -> 200")

    # 3. A visitor that offers hopgate/1 and h2/http/1.1 is a visitor (server prefers http/1.1).
    vctx = ssl.create_default_context(cafile=gw.ports["certificate"])
    vctx.check_hostname = False
    vctx.set_alpn_protocols(["h2", "http/1.1", "hopgate/1"])
    with socket.create_connection(("127.0.0.1", https), timeout=10) as raw:
        with vctx.wrap_socket(raw, server_hostname="localhost") as s:
            check(s.selected_alpn_protocol() == "http/1.1",
                  f"a browser-like ALPN list gets http/1.1 ({s.selected_alpn_protocol()})")

    # 4. A peer that negotiates hopgate/1 and then speaks HTTP: closed, others unharmed.
    rctx = ssl.create_default_context(cafile=gw.ports["certificate"])
    rctx.check_hostname = False
    rctx.set_alpn_protocols(["hopgate/1"])
    rogues = []
    for _ in range(3):
        raw = socket.create_connection(("127.0.0.1", https), timeout=10)
        s = rctx.wrap_socket(raw, server_hostname="localhost")
        rogues.append(s)
    check(all(s.selected_alpn_protocol() == "hopgate/1" for s in rogues),
          "a peer offering only hopgate/1 negotiates hopgate/1 on the HTTPS port")
    for s in rogues:
        s.sendall(b"GET / HTTP/1.1\r\nHost: " + DOMAIN.encode() + b"\r\n\r\n")
    r, body = gw.request("GET", "/", DOMAIN)
    check(r.status == 200, "requests keep working while hopgate/1 peers send garbage")
    closed = 0
    deadline = time.time() + 30
    for s in rogues:
        s.settimeout(max(1, deadline - time.time()))
        got = b""
        try:
            while len(got) < 1 << 16:
                d = s.recv(4096)
                if not d:
                    closed += 1
                    break
                got += d
        except (ssl.SSLError, ConnectionResetError):
            closed += 1
        except socket.timeout:
            pass
        s.close()
        check(not got.startswith(b"HTTP/"), f"no HTTP answer to a hopgate/1 peer ({got[:16]!r})")
    check(closed == 3, f"each hopgate/1 peer speaking HTTP is closed within 30 s ({closed}/3)")
    check(server.poll() is None and c.poll() is None, "server and client still running")
    r, body = gw.request("GET", "/", DOMAIN)
    check(r.status == 200 and body == b"hello through one port",
          "the real tunnel still serves after the garbage peers")
    gw.terminate(c, "hopgate-client (tls on the HTTPS port)")

    # 5. auto with only the HTTPS port: UDP at that port has no DTLS listener (as when UDP is
    #    blocked), so it falls back to TLS on the same port.
    a = start_client(gw, key, "auto", https, "client-auto.log")
    hit = established(gw, "client-auto.log", 30)
    seen = dials(gw, "client-auto.log")
    check(hit and hit[0].get("transport") == "tls",
          f"auto with only the HTTPS port: DTLS fails, TLS on the same port serves ({hit[:1]})")
    check(seen[:2] == [("udp", https, "127.0.0.1"), ("tcp", https, "127.0.0.1")],
          f"auto dials udp:{https} then tcp:{https} ({seen[:2]})")
    check(gw.wait_status("/", DOMAIN, 200), "GET through the auto client's tunnel -> 200")
    gw.terminate(a, "hopgate-client (auto on the HTTPS port)")

    # 6. The extra listener (HOP_SERVER_TUNNEL_LISTEN) keeps working: auto given the DTLS port
    #    and --server-tls-port of the tunnel listener, forced onto TLS with --transport tls.
    x = gw.start_client(DOMAIN, key, local.server_address[1], "tls", "client-extra.log")
    hit = established(gw, "client-extra.log")
    check(hit and hit[0].get("peer") == f"127.0.0.1:{gw.ports['tunnel']}",
          f"--server-tls-port (the extra tunnel listener) is dialled and serves ({hit[:1]})")
    check(gw.wait_status("/", DOMAIN, 200), "GET through the extra listener's tunnel -> 200")
    gw.terminate(x, "hopgate-client (extra listener)")

    # 7. A TLS server that does not offer hopgate/1 (here: one that speaks only http/1.1 with
    #    the same certificate): the client fails clearly on ALPN instead of talking to it.
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(gw.ports["certificate"],
                         os.path.join(os.path.dirname(gw.ports["certificate"]),
                                      "hopgate-selfsigned.key"))
    sctx.set_alpn_protocols(["http/1.1"])
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen(8)
    stop = threading.Event()

    def serve_plain():
        plain.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = plain.accept()
            except (socket.timeout, OSError):
                continue
            try:
                conn.settimeout(5)
                with sctx.wrap_socket(conn, server_side=True) as t:
                    t.recv(1024)
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve_plain, daemon=True).start()
    n = start_client(gw, key, "tls", plain.getsockname()[1], "client-noalpn.log")
    fail = wait_log(gw, "client-noalpn.log", lambda l: l.get("msg") == "connect failed")
    err = fail[0].get("error", "") if fail else ""
    check("ALPN" in err and "hopgate/1" in err,
          f"a server without hopgate/1: the client's connect fails naming ALPN ({err!r})")
    check(not established(gw, "client-noalpn.log", 1), "no tunnel to a server without hopgate/1")
    gw.terminate(n, "hopgate-client (server without hopgate/1)")
    stop.set()
    plain.close()
    gw.terminate(server, "hopgate-server")

    # 8. --tunnel-listen off: no extra listener at all; the HTTPS port alone carries TLS tunnels.
    server = gw.start_server(["--tunnel-listen", "off"], log_name="server-off.log")
    check(gw.ports.get("tunnel") == 0, f"--tunnel-listen off: no tunnel listener ({gw.ports})")
    off = start_client(gw, key, "tls", gw.ports["https"], "client-off.log")
    hit = established(gw, "client-off.log")
    check(hit and hit[0].get("peer") == f"127.0.0.1:{gw.ports['https']}",
          f"--tunnel-listen off: the TLS tunnel comes up on the HTTPS port ({hit[:1]})")
    check(gw.wait_status("/", DOMAIN, 200), "--tunnel-listen off: GET through the tunnel -> 200")
    gw.terminate(off, "hopgate-client (tunnel listener off)")
finally:
    gw.stop_all()
    local.shutdown()
gw.finish()
