#!/usr/bin/env python3
"""The visitor-facing pages in a real browser (Debian's headless Chromium): the 404, 502, 504 and
525 error pages as the real hopgate-server sends them (each produced by its real cause: unknown
host, no tunnel, a local service that does not answer, a tunnel whose transport dies mid-request)
and the control domain's status page. Each is rendered at a phone (390x844) and a desktop
(1280x800) width: the screenshot is not blank, the page's text is in the
rendered DOM, the markup declares no fixed width wider than a phone, and the browser logs no console
error. The pages hold no script at all (checked), so they work with JavaScript off.

Usage: browser_pages_test.py <bin-dir> <hopgate-impair>. Every wait is bounded."""
import glob, http.server, json, os, re, shutil, signal, struct, subprocess, sys, threading, time, zlib

from hg_e2e import Gateway, check

BIN, IMPAIR = sys.argv[1], sys.argv[2]
ADMIN_KEY = "browser-admin-key-0123456789abcdef"
DOMAIN = "app.example.com"
NO_TUNNEL = "idle.example.com"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Local(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(6)
        body = b"ok"
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass


local = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Local)
threading.Thread(target=local.serve_forever, daemon=True).start()
gw = Gateway(BIN, "hopgate-browser-", ADMIN_KEY)
work = gw.work


def png_is_not_blank(path):
    """True when the PNG's decompressed scanlines hold more than a handful of distinct bytes (a
    single-colour image holds one or two, whatever filter the encoder chose)."""
    data = open(path, "rb").read()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw = zlib.decompress(idat)
    return len(set(raw)) > 16


def render(name, html_path, width, height):
    """Screenshot and DOM of a local HTML file, JavaScript off; returns (png, dom, console log)."""
    shot = os.path.join(work, f"{name}-{width}.png")
    profile = os.path.join(work, f"profile-{name}-{width}")
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--disable-extensions", "--disable-background-networking", "--no-default-browser-check",
              f"--user-data-dir={profile}", f"--window-size={width},{height}", "--hide-scrollbars",
              "--enable-logging=stderr", "--v=0"]
    url = "file://" + html_path
    r1 = subprocess.run(common + [f"--screenshot={shot}", url], capture_output=True, text=True, timeout=90)
    r2 = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
    return shot, r2.stdout, r1.stderr + r2.stderr


def visible_text(dom):
    dom = re.sub(r"(?s)<(style|script)[^>]*>.*?</\1>", " ", dom)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)).strip()


try:
    if not check(CHROMIUM is not None, "Debian's chromium is installed (scripts/install-deps.sh)"):
        raise SystemExit
    server = gw.start_server(["--proxy-timeout", "3"])
    st, body = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "b"})
    key = body.get("client_api_key", "")
    st2, _ = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": NO_TUNNEL, "memo": "b"})
    if not check(st == 201 and st2 == 201 and key, "domains registered"):
        raise SystemExit
    # The client reaches the server's TLS tunnel port through a relay the test can kill.
    relay = gw.start([IMPAIR, "--tcp", "--target", f"127.0.0.1:{gw.ports['tunnel']}",
                      "--listen", "127.0.0.1:0"], "relay.log")
    relay_port = int(json.loads(relay.stdout.readline())["listen"].rsplit(":", 1)[1])
    client = gw.start_client(DOMAIN, key, local.server_address[1], "tls", "client.log",
                             tls_port=relay_port)
    check(gw.wait_status("/", DOMAIN, 200, 30), "tunnel up through the relay")

    pages = {}
    r, d = gw.request("GET", "/", "nobody.example.com")
    pages["404"] = (r.status, d)
    # 502: the client reports its local service unreachable.
    st3, body3 = gw.admin("POST", "/api/v1/admin/domains/rotate", {"domain": NO_TUNNEL})
    dead = gw.start_client(NO_TUNNEL, body3.get("client_api_key", ""), 1, "tls", "client-dead.log")
    gw.wait_status("/", NO_TUNNEL, 502, 30)
    r, d = gw.request("GET", "/", NO_TUNNEL)
    pages["502"] = (r.status, d)
    gw.terminate(dead, "client of an unreachable local service")
    r, d = gw.request("GET", "/slow", DOMAIN, timeout=20)
    pages["504"] = (r.status, d)
    # 525: the tunnel's transport dies while the request waits for its answer.
    holder = {}

    def visitor():
        try:
            holder["r"] = gw.request("GET", "/slow-525", DOMAIN, timeout=20)
        except Exception as e:  # noqa: BLE001 - reported below
            holder["e"] = e

    t = threading.Thread(target=visitor)
    t.start()
    time.sleep(1.0)
    relay.send_signal(signal.SIGKILL)
    relay.wait(timeout=10)
    t.join(timeout=25)
    if "r" in holder:
        pages["525"] = (holder["r"][0].status, holder["r"][1])
    r, d = gw.request("GET", "/", "localhost")
    pages["status"] = (r.status, d)
    for name, (status, body) in pages.items():
        want = 200 if name == "status" else int(name)
        check(status == want and b"<html" in body.lower(), f"{name} page from the real server (status {status})")
    check("525" in pages, f"a tunnel whose transport fails mid-request -> 525 ({holder.get('e')})")

    for name, (status, body) in pages.items():
        html_path = os.path.join(work, f"{name}.html")
        with open(html_path, "wb") as f:
            f.write(body)
        markup = body.decode("utf-8", "replace")
        check(not re.search(r"(?<![-\w])(min-)?width:\s*(\d{4,}|[4-9]\d\d)px", markup),
              f"{name}: no fixed width wider than a phone in the markup")
        check("<script" not in markup.lower() and "javascript:" not in markup.lower(),
              f"{name}: no script, so it works with JavaScript off")
        for width, height in ((390, 844), (1280, 800)):
            shot, dom, log = render(name, html_path, width, height)
            text = visible_text(dom)
            check(os.path.exists(shot) and png_is_not_blank(shot), f"{name} at {width}px: screenshot is not blank")
            want = "HopGate" if name == "status" else name
            check(want in text and len(text) > 40, f"{name} at {width}px: the page's text is rendered ({text[:80]!r})")
            console = [l for l in log.splitlines() if "CONSOLE" in l or "Uncaught" in l]
            check(not console, f"{name} at {width}px: no console errors ({console[:2]})")
    gw.terminate(client, "client")
    gw.terminate(server, "server")
except SystemExit:
    pass
finally:
    gw.stop_all()
    local.shutdown()

gw.finish(3000)
