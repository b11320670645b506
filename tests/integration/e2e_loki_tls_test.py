#!/usr/bin/env python3
"""Loki push over https:// (HOP_LOKI_ENDPOINT=https://..., HOP_LOKI_CA_FILE) against a local
python receiver wrapped in TLS with a self-signed certificate for DNS:localhost (made with
`openssl req -x509` in the work directory).

1. https://localhost:<port> with HOP_LOKI_CA_FILE = that certificate: lines arrive over TLS, with
   SNI "localhost" and the usual push format; exit 0 on SIGTERM after the final flush.
2. https://127.0.0.1:<port> with the same CA file: the certificate does not name 127.0.0.1, so
   host name verification refuses it: pushes fail and are retried, nothing is accepted.
3. https://localhost:<port> without HOP_LOKI_CA_FILE (untrusted self-signed certificate): pushes
   fail and are retried (hopgate_loki_push_failures_total grows), the reason is logged, requests
   still answer fast, exit 0 on SIGTERM.
Also: check-config refuses an unreadable HOP_LOKI_CA_FILE naming the setting.

Usage: e2e_loki_tls_test.py <bin-dir>. Every wait is bounded."""
import http.server, json, os, re, ssl, subprocess, sys, threading, time

from hg_e2e import Gateway, check

BIN = sys.argv[1]
ADMIN_KEY = "loki-tls-admin-key-0123456789abcdef"

lock = threading.Lock()
pushes = []   # dict(path, headers, body) of every request that got through TLS
snis = []     # server names the clients sent


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n) if 0 < n < 16 * 1024 * 1024 else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with lock:
            pushes.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


class TlsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # refused handshakes (cases 2 and 3) are expected


gw = Gateway(BIN, "hopgate-loki-tls-", ADMIN_KEY)
cert, key = os.path.join(gw.work, "loki-cert.pem"), os.path.join(gw.work, "loki-key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost"],
               check=True, capture_output=True, timeout=60)
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(cert, key)


def on_sni(sslobj, name, ctx):
    with lock:
        snis.append(name)


sctx.sni_callback = on_sni
recv = TlsServer(("127.0.0.1", 0), Receiver)
# The handshake runs in the handler thread (first read), so a refused one never stalls accept.
recv.socket = sctx.wrap_socket(recv.socket, server_side=True, do_handshake_on_connect=False)
threading.Thread(target=recv.serve_forever, daemon=True).start()
PORT = recv.server_address[1]


def loki_env(endpoint, ca_file=None):
    env = dict(os.environ)
    env.update({"HOP_LOKI_ENABLE": "true", "HOP_LOKI_ENDPOINT": endpoint,
                "HOP_LOKI_STATIC_LABELS": "env=tls"})
    env.pop("HOP_LOKI_CA_FILE", None)
    if ca_file:
        env["HOP_LOKI_CA_FILE"] = ca_file
    return env


def wait_for(pred, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def lines(component="server"):
    out = []
    with lock:
        seen = list(pushes)
    for p in seen:
        for s in (p["body"] or {}).get("streams", []):
            if s.get("stream", {}).get("component") != component:
                continue
            for v in s.get("values", []):
                try:
                    out.append(json.loads(v[1]))
                except (ValueError, IndexError, TypeError):
                    pass
    return out


def metric(name):
    r, d = gw.request("GET", "/metrics", "localhost")
    m = re.search(rb"^" + name.encode() + rb" (\d+)", d, re.M)
    return int(m.group(1)) if m else None


def probe_paths(prefix):
    return {l.get("path") for l in lines()
            if l.get("msg") == "request" and str(l.get("path", "")).startswith(prefix)}


try:
    # --- 1. trusted via HOP_LOKI_CA_FILE: lines arrive over https ---------------------------
    server = gw.start_server(env=loki_env(f"https://localhost:{PORT}", cert))
    for i in range(3):
        gw.request("GET", f"/tls-probe-{i}", "localhost")
    check(wait_for(lambda: len(probe_paths("/tls-probe-")) == 3, 20),
          "https:// with HOP_LOKI_CA_FILE: the access-log lines of 3 requests arrive over TLS")
    with lock:
        first = list(pushes)
        sni = list(snis)
    check(bool(first) and all(p["path"] == "/loki/api/v1/push" and
                              p["headers"].get("Content-Type") == "application/json"
                              for p in first), "POST /loki/api/v1/push, application/json")
    check("localhost" in sni, f"SNI names the endpoint's host ({sni})")
    check(wait_for(lambda: (metric("hopgate_loki_pushed_lines_total") or 0) >= 3, 10),
          f"hopgate_loki_pushed_lines_total ({metric('hopgate_loki_pushed_lines_total')})")
    check(metric("hopgate_loki_push_failures_total") == 0, "no push failure")
    gw.terminate(server, "hopgate-server (https Loki)")
    check(wait_for(lambda: any(l.get("msg") == "shutting down" for l in lines()), 5),
          "the final flush at SIGTERM goes over TLS too (\"shutting down\" arrives)")

    # --- 2. trusted CA but the name does not match: host name verification refuses -----------
    with lock:
        pushes.clear()
    server = gw.start_server(env=loki_env(f"https://127.0.0.1:{PORT}", cert),
                             log_name="server-ip.log")
    gw.request("GET", "/tls-mismatch", "localhost")
    check(wait_for(lambda: (metric("hopgate_loki_push_failures_total") or 0) >= 2, 20),
          "certificate for DNS:localhost, endpoint 127.0.0.1: pushes fail and are retried "
          f"({metric('hopgate_loki_push_failures_total')})")
    with lock:
        got = len(pushes)
    check(got == 0, f"nothing reached the receiver through a mismatched name ({got})")
    warns = [l for l in gw.log_lines("server-ip.log")
             if l.get("msg") == "Loki push failed: will retry"]
    reason = warns[0].get("reason", "") if warns else ""
    print(f"     logged reason: {reason}")
    check("mismatch" in reason, "the name mismatch is the logged reason")
    gw.terminate(server, "hopgate-server (name mismatch)")

    # --- 3. untrusted certificate: failures retried, requests fast, exit 0 ---------------------
    server = gw.start_server(env=loki_env(f"https://localhost:{PORT}"),
                             log_name="server-untrusted.log")
    slowest, statuses = 0.0, []
    for i in range(10):
        t0 = time.time()
        r, _ = gw.request("GET", f"/tls-untrusted-{i}", "localhost", timeout=30)
        slowest = max(slowest, time.time() - t0)
        statuses.append(r.status)
        time.sleep(0.2)
    check(len(set(statuses)) == 1 and statuses[0] < 500,
          f"requests answer while pushes fail ({statuses})")
    print(f"     slowest request while pushes fail: {slowest * 1000:.0f} ms")
    check(slowest < 5.0, f"requests stay fast ({slowest:.2f} s < 5 s)")
    check(wait_for(lambda: (metric("hopgate_loki_push_failures_total") or 0) >= 2, 20),
          "untrusted certificate: hopgate_loki_push_failures_total grows "
          f"({metric('hopgate_loki_push_failures_total')})")
    with lock:
        got = len(pushes)
    check(got == 0, f"nothing reached the receiver without trusting its certificate ({got})")
    warns = [l for l in gw.log_lines("server-untrusted.log")
             if l.get("msg") == "Loki push failed: will retry"]
    reason = warns[0].get("reason", "") if warns else ""
    print(f"     logged reason: {reason}")
    check("TLS handshake" in reason and "certificate" in reason,
          "the failure is logged with the OpenSSL reason")
    t0 = time.time()
    gw.terminate(server, "hopgate-server (untrusted Loki)")
    check(time.time() - t0 < 10, "the stop is bounded although every push fails")

    # --- settings ---------------------------------------------------------------------------
    bad = subprocess.run([f"{BIN}/hopgate-server", "check-config"], cwd=gw.work, timeout=30,
                         capture_output=True, text=True,
                         env=loki_env(f"https://localhost:{PORT}", gw.work + "/missing.pem"))
    check(bad.returncode == 1 and "HOP_LOKI_CA_FILE" in bad.stderr,
          f"check-config refuses an unreadable HOP_LOKI_CA_FILE (exit {bad.returncode})")
    good = subprocess.run([f"{BIN}/hopgate-server", "check-config"], cwd=gw.work, timeout=30,
                          capture_output=True, text=True,
                          env=loki_env(f"https://localhost:{PORT}", cert))
    check("HOP_LOKI_CA_FILE" not in good.stderr and "HOP_LOKI_ENDPOINT" not in good.stderr,
          f"check-config accepts an https:// endpoint with a CA file ({good.stderr.strip()[:300]})")
finally:
    gw.stop_all()
gw.finish()
