#!/usr/bin/env python3
"""End-to-end: what the public edge lets a visitor claim (issue 14, items 4, 5, 6, 12b), with the
real hopgate-server and hopgate-client on loopback and a local service that echoes the request it
received. Usage: e2e_edge_headers_test.py <bin-dir> <dtls|tls>.

  - Host confusion (RFC 9112 §3.2): an absolute-form target with a disagreeing Host, two Host
    fields, no Host on HTTP/1.1 -> 400 page, and the local service never sees the request; an
    agreeing absolute-form request reaches it in origin-form with the routed Host;
  - the local service sees the routed authority as Host and X-Forwarded-Host;
  - client address: X-Real-IP is the peer, a Forwarded element is appended, other spoofable
    headers are dropped; from a trusted proxy (--trusted-proxies 127.0.0.2/32, reached by binding
    the visitor socket to 127.0.0.2) the XFF / Forwarded chains are kept and extended;
  - control domain: normalised at start (`--domain Ctl.Example.COM.:443`), cannot be registered
    (admin API 409, `hopgate-server domain add` exit 1, proxy domains too), still wins routing
    when it was registered before, and its tunnel is refused;
  - /metrics: open to loopback by default, 403 outside HOP_METRICS_ALLOW_CIDRS, 401 without the
    HOP_METRICS_TOKEN when one is set.
Every wait is bounded."""
import http.server, json, os, shutil, socket, subprocess, sys, threading, time

import hg_e2e
from hg_e2e import Gateway, check

BIN, TRANSPORT = sys.argv[1], sys.argv[2]
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
METRICS_TOKEN = "e2e-metrics-token-0123456789"
DOMAIN = "app.example.com"
CTL = "ctl.example.com"
PROXY_DOMAIN = "www.example.com"

seen = []  # every request the local service got: {"path", "headers": [[name, value], ...]}
seen_lock = threading.Lock()


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        got = {"path": self.path, "headers": [[k, v] for k, v in self.headers.items()]}
        with seen_lock:
            seen.append(got)
        body = json.dumps(got).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def values(got, name):
    return [v for k, v in got["headers"] if k.lower() == name.lower()]


def one(got, name):
    v = values(got, name)
    return v[0] if len(v) == 1 else v


def raw(gw, data, src="127.0.0.1", timeout=10):
    """Sends `data` on a fresh TLS connection from `src`; returns (status, headers, body) of the
    first response (status 0 when the connection ended without one)."""
    s = socket.create_connection(("127.0.0.1", gw.ports["https"]), timeout=timeout,
                                 source_address=(src, 0))
    t = gw.ctx.wrap_socket(s, server_hostname="localhost")
    try:
        t.sendall(data)
        buf = b""
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in buf and time.time() < deadline:
            chunk = t.recv(65536)
            if not chunk:
                break
            buf += chunk
        if b"\r\n\r\n" not in buf:
            return 0, {}, b""
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(body) < n and time.time() < deadline:
            chunk = t.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body
    finally:
        t.close()


def get(gw, target, headers, src="127.0.0.1", version="HTTP/1.1"):
    """One GET with exactly the given header lines (a list of (name, value), duplicates kept)."""
    lines = [f"GET {target} {version}"] + [f"{k}: {v}" for k, v in headers] + ["Connection: close"]
    return raw(gw, ("\r\n".join(lines) + "\r\n\r\n").encode(), src)


def echoed(gw, target, headers, src="127.0.0.1"):
    """A GET that must reach the local service; returns what it saw (or None)."""
    st, _, body = get(gw, target, headers, src)
    if st != 200:
        print(f"     (status {st} for {target})")
        return None
    return json.loads(body)


def domain_cli(gw, args, env):
    full = dict(os.environ)
    full.update(env)
    full["HOP_DB_DSN"] = f"sqlite://{gw.work}/hg.db"
    return subprocess.run([f"{BIN}/hopgate-server", "domain", *args], capture_output=True,
                          text=True, timeout=30, cwd=gw.work, env=full)


local = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
threading.Thread(target=local.serve_forever, daemon=True).start()
gw = Gateway(BIN, "hopgate-edge-", ADMIN_KEY)
gw2 = Gateway(BIN, "hopgate-edge-ctl-", ADMIN_KEY)

try:
    # ------------------------------------------------------------------ main server
    gw.start_server(["--trusted-proxies", "127.0.0.2/32"], log_name="hopgate-server.log")
    st, reg = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "e2e"})
    check(st == 201, "register the tenant domain")
    gw.start_client(DOMAIN, reg.get("client_api_key", ""), local.server_address[1], TRANSPORT,
                    "hopgate-client.log")
    check(gw.wait_status("/", DOMAIN, 200, 20), f"tunnel up over {TRANSPORT}")

    # Host confusion: refused with the 400 page, and nothing reaches the local service.
    with seen_lock:
        before = len(seen)
    st, h, body = get(gw, f"http://{DOMAIN}/x", [("Host", "evil.example")])
    check(st == 400 and b"<html" in body.lower(), f"absolute-form target + other Host -> 400 page ({st})")
    st, _, _ = get(gw, f"https://{DOMAIN}:8443/x", [("Host", DOMAIN)])
    check(st == 400, f"absolute-form target + Host with another port -> 400 ({st})")
    st, _, body = get(gw, "/x", [("Host", DOMAIN), ("Host", DOMAIN)])
    check(st == 400 and b"<html" in body.lower(), f"two Host headers (equal) -> 400 page ({st})")
    st, _, _ = get(gw, "/x", [("Host", DOMAIN), ("Host", "evil.example")])
    check(st == 400, f"two Host headers (different) -> 400 ({st})")
    st, _, _ = get(gw, f"http://{DOMAIN}/x", [("Host", DOMAIN), ("Host", DOMAIN)])
    check(st == 400, f"absolute-form + two Host headers -> 400 ({st})")
    st, _, _ = get(gw, f"http://{DOMAIN}/x", [])
    check(st == 400, f"HTTP/1.1 without Host (absolute-form) -> 400 ({st})")
    st, _, _ = get(gw, "/x", [])
    check(st == 400, f"HTTP/1.1 without Host (origin-form) -> 400 ({st})")
    with seen_lock:
        check(len(seen) == before, "none of the refused requests reached the local service")

    # The routed authority is what the local service sees.
    got = echoed(gw, f"http://{DOMAIN.upper()}/abs?q=1", [("Host", DOMAIN)])
    check(got is not None and got["path"] == "/abs?q=1", f"absolute-form reaches the service in origin-form ({got and got['path']})")
    check(got is not None and one(got, "Host") == DOMAIN and one(got, "X-Forwarded-Host") == DOMAIN,
          "absolute-form: Host and X-Forwarded-Host are the routed authority")
    got = echoed(gw, f"https://{DOMAIN}:8443/p", [("Host", f"{DOMAIN}:8443")])
    check(got is not None and one(got, "Host") == f"{DOMAIN}:8443" and
          one(got, "X-Forwarded-Host") == f"{DOMAIN}:8443", "the port given in the target is kept")
    got = echoed(gw, "/o", [("Host", "App.Example.COM.")])
    check(got is not None and one(got, "Host") == DOMAIN and one(got, "X-Forwarded-Host") == DOMAIN,
          f"origin-form: Host normalised to the routed name ({got and one(got, 'Host')})")

    # Client address from an untrusted visitor: overwritten, appended, stripped.
    spoof = [("Host", DOMAIN), ("X-Real-IP", "6.6.6.6"), ("X-Forwarded-For", "10.9.9.9"),
             ("Forwarded", "for=6.6.6.6;proto=http"), ("True-Client-IP", "6.6.6.6"),
             ("CF-Connecting-IP", "6.6.6.6"), ("X-Client-IP", "6.6.6.6"),
             ("X-Forwarded-Port", "80"), ("X-Forwarded-Proto", "http"),
             ("X-Forwarded-Host", "evil.example"), ("X-Custom", "kept")]
    got = echoed(gw, "/spoof", spoof)
    check(got is not None and one(got, "X-Real-IP") == "127.0.0.1", f"X-Real-IP overwritten with the peer ({got and one(got, 'X-Real-IP')})")
    check(got is not None and one(got, "Forwarded") == f"for=127.0.0.1;proto=https;host={DOMAIN}",
          f"Forwarded is our element alone ({got and one(got, 'Forwarded')})")
    check(got is not None and one(got, "X-Forwarded-For") == "127.0.0.1",
          f"X-Forwarded-For from an untrusted visitor dropped, peer only ({got and one(got, 'X-Forwarded-For')})")
    check(got is not None and all(values(got, n) == [] for n in
                                  ("True-Client-IP", "CF-Connecting-IP", "X-Client-IP", "X-Forwarded-Port")),
          "True-Client-IP, CF-Connecting-IP, X-Client-IP, X-Forwarded-Port stripped")
    check(got is not None and one(got, "X-Forwarded-Proto") == "https" and
          one(got, "X-Forwarded-Host") == DOMAIN and one(got, "X-Custom") == "kept",
          "X-Forwarded-Proto/Host are ours; other headers pass")

    # From a trusted proxy (127.0.0.2): chains kept and extended, its claims kept.
    got = echoed(gw, "/trusted", spoof, src="127.0.0.2")
    check(got is not None and one(got, "X-Forwarded-For") == "10.9.9.9, 127.0.0.2",
          f"trusted proxy: X-Forwarded-For chain extended ({got and one(got, 'X-Forwarded-For')})")
    check(got is not None and one(got, "Forwarded") ==
          f"for=6.6.6.6;proto=http, for=127.0.0.2;proto=https;host={DOMAIN}",
          f"trusted proxy: Forwarded chain extended ({got and one(got, 'Forwarded')})")
    check(got is not None and one(got, "X-Real-IP") == "6.6.6.6" and one(got, "CF-Connecting-IP") == "6.6.6.6",
          "trusted proxy: its X-Real-IP and CF-Connecting-IP kept")

    # /metrics with the defaults: loopback may read it.
    st, _, body = get(gw, "/metrics", [("Host", "localhost")])
    check(st == 200 and b"hopgate_http_requests_total" in body, f"/metrics from 127.0.0.1 with the default allow-list -> 200 ({st})")

    # ------------------------------------------------------------------ control-domain server
    # Registered before it became the control domain (no HOP_SERVER_DOMAIN yet: allowed).
    r = domain_cli(gw2, ["add", CTL], {})
    check(r.returncode == 0 and "client_api_key: " in r.stdout, "CLI add of the future control domain before the change")
    ctl_key = r.stdout.split("client_api_key: ")[1][:64] if "client_api_key: " in r.stdout else ""
    env = {"HOP_SERVER_DOMAIN": "Ctl.Example.COM.:443", "HOP_SERVER_PROXY_DOMAINS": PROXY_DOMAIN}
    r = domain_cli(gw2, ["add", "CTL.example.com."], env)
    check(r.returncode != 0 and "reserved by HOP_SERVER_DOMAIN" in r.stderr,
          f"`domain add` of the control domain -> exit {r.returncode}: {r.stderr.strip()}")
    r = domain_cli(gw2, ["add", PROXY_DOMAIN], env)
    check(r.returncode != 0 and "HOP_SERVER_PROXY_DOMAINS" in r.stderr,
          f"`domain add` of a proxy domain -> exit {r.returncode}")
    r = domain_cli(gw2, ["add", "tenant.example.com"], env)
    check(r.returncode == 0, "`domain add` of another name still works")

    gw2.start_server(["--domain", "Ctl.Example.COM.:443", "--proxy-domains", PROXY_DOMAIN,
                      "--metrics-allow-cidrs", "127.0.0.3/32", "--metrics-token", METRICS_TOKEN],
                     log_name="hopgate-server-ctl.log")
    check(any(l.get("msg", "").startswith("a registered tenant domain is reserved") and l.get("domain") == CTL
              for l in gw2.log_lines("hopgate-server-ctl.log")), "start-up warns about the registered control domain")

    def admin2(payload, host=CTL):
        r, d = gw2.request("POST", "/api/v1/admin/domains/register", host, json.dumps(payload),
                           {"Content-Type": "application/json", "Authorization": "Bearer " + ADMIN_KEY})
        return r.status, (json.loads(d) if d else {})

    st, body = admin2({"domain": "Ctl.Example.com."})
    check(st == 409 and "control domain" in body.get("error", ""), f"admin register of the control domain -> 409: {body.get('error')}")
    st, body = admin2({"domain": PROXY_DOMAIN})
    check(st == 409 and "HOP_SERVER_PROXY_DOMAINS" in body.get("error", ""), f"admin register of a proxy domain -> 409 ({st})")
    st, _ = admin2({"domain": "other.example.com"})
    check(st == 201, "admin API on the normalised control domain (Host ctl.example.com) works")
    st, _ = admin2({"domain": "third.example.com"}, host="CTL.EXAMPLE.COM.:443")
    check(st == 201, "... in any spelling of the Host")

    # The control domain wins routing although it is registered, and its tunnel is refused.
    ctl_client = gw2.start_client(CTL, ctl_key, local.server_address[1], TRANSPORT, "hopgate-client-ctl.log")
    rejected = False
    deadline = time.time() + 20
    while time.time() < deadline and not rejected:
        rejected = any(l.get("msg") == "tunnel rejected" and l.get("domain") == CTL
                       for l in gw2.log_lines("hopgate-server-ctl.log"))
        time.sleep(0.2)
    check(rejected, "a tunnel for the control domain is refused")
    r, d = gw2.request("GET", "/", CTL)
    check(r.status == 200 and b"<html" in d.lower(), f"GET / on the control domain is the status page ({r.status})")
    gw2.terminate(ctl_client, "client of the control domain")

    # /metrics outside the allow-list: 403 even with the token; inside it the token is needed.
    auth = [("Authorization", "Bearer " + METRICS_TOKEN)]
    st, _, body = get(gw2, "/metrics", [("Host", CTL)] + auth)
    check(st == 403 and b"hopgate_" not in body, f"/metrics from 127.0.0.1 outside HOP_METRICS_ALLOW_CIDRS -> 403 ({st})")
    st, h, body = get(gw2, "/metrics", [("Host", CTL)], src="127.0.0.3")
    check(st == 401 and h.get("www-authenticate", "").startswith("Bearer") and b"hopgate_" not in body,
          f"/metrics without the token -> 401 ({st})")
    st, _, _ = get(gw2, "/metrics", [("Host", CTL), ("Authorization", "Bearer wrong-token-0123456789")], src="127.0.0.3")
    check(st == 401, f"/metrics with a wrong token -> 401 ({st})")
    st, _, body = get(gw2, "/metrics", [("Host", CTL)] + auth, src="127.0.0.3")
    check(st == 200 and b"hopgate_http_requests_total" in body, f"/metrics from an allowed address with the token -> 200 ({st})")
    st, _, _ = get(gw2, f"https://{CTL}/metrics", [("Host", CTL)] + auth, src="127.0.0.3")
    check(st == 200, f"absolute-form /metrics goes through the same gate ({st})")
    st, _, _ = get(gw2, f"https://{CTL}/metrics", [("Host", CTL)] + auth)
    check(st == 403, f"absolute-form /metrics from outside the list -> 403 ({st})")
finally:
    gw.stop_all()
    gw2.stop_all()
    local.shutdown()

if hg_e2e.failures:
    for name in sorted(os.listdir(gw2.work)):
        if name.endswith(".log"):
            print(f"--- control-domain server: {name}\n" + open(os.path.join(gw2.work, name), errors="replace").read()[-3000:])
else:
    shutil.rmtree(gw2.work, ignore_errors=True)
gw.finish(3000)
