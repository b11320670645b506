#!/usr/bin/env python3
"""SIGHUP reloads hopgate-server without a restart: replaced certificate files are served on the
next handshake while a kept-alive visitor connection and a client's tunnel stay up; replaced error
pages are served at once; the log level follows .env; a broken certificate file is refused and the
running certificate kept. Usage: reload_test.py <bin-dir> <dtls|tls>."""
import hashlib, http.client, http.server, json, os, shutil, signal, socket, ssl, subprocess, sys, threading, time

from hg_e2e import Gateway, check, start_local_service

BIN, TRANSPORT = sys.argv[1], sys.argv[2]
ADMIN_KEY = "reload-admin-key-0123456789abcdef"
DOMAIN = "app.gw.example.com"



local = start_local_service(b"served")
gw = Gateway(BIN, "hopgate-reload-", ADMIN_KEY)
work = gw.work


def make_cert(tag):
    key, crt = os.path.join(work, f"{tag}.key"), os.path.join(work, f"{tag}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "30", "-subj", f"/CN=gw-{tag}",
                    "-addext", "subjectAltName=DNS:gw.example.com,DNS:*.gw.example.com,DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return crt, key


def fingerprint():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", gw.ports["https"]), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="gw.example.com") as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def pem_fp(path):
    der = ssl.PEM_cert_to_DER_cert(open(path).read())
    return hashlib.sha256(der).hexdigest()


def wait_log(msg, after, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        lines = gw.log_lines("server.log")[after:]
        if any(l.get("msg", "").startswith(msg) for l in lines):
            return True
        time.sleep(0.1)
    return False


try:
    a_crt, a_key = make_cert("a")
    b_crt, b_key = make_cert("b")
    live_crt, live_key = os.path.join(work, "live.crt"), os.path.join(work, "live.key")
    shutil.copy(a_crt, live_crt)
    shutil.copy(a_key, live_key)
    bundle = os.path.join(work, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(a_crt).read() + open(b_crt).read())
    pages = os.path.join(work, "pages")
    os.mkdir(pages)
    with open(os.path.join(pages, "404.html"), "w") as f:
        f.write("<html><body>first 404 page</body></html>")
    server = gw.start_server(["--domain", "gw.example.com", "--tls-cert", live_crt, "--tls-key", live_key,
                              "--error-pages-dir", pages])
    gw.ctx = ssl.create_default_context(cafile=bundle)
    gw.ctx.check_hostname = False
    gw.ports["certificate"] = bundle
    r, d = gw.request("POST", "/api/v1/admin/domains/register", "gw.example.com",
                      json.dumps({"domain": DOMAIN, "memo": "r"}),
                      {"Authorization": "Bearer " + ADMIN_KEY, "Content-Type": "application/json"})
    st, body = r.status, (json.loads(d) if d else {})
    key = body.get("client_api_key", "")
    if not check(st == 201 and key, "domain registered"):
        raise SystemExit
    client = gw.start_client(DOMAIN, key, local.server_address[1], TRANSPORT, "client.log")
    client_args = client.args
    check(gw.wait_status("/", DOMAIN, 200, 30), f"tunnel up over {TRANSPORT}")
    check(fingerprint() == pem_fp(a_crt), "first certificate served")
    kept = gw.connect()
    kept.request("GET", "/", headers={"Host": DOMAIN})
    r = kept.getresponse()
    check(r.status == 200 and r.read() == b"served", "a kept-alive visitor connection is open")
    r, d = gw.request("GET", "/", "nobody.gw.example.com")
    check(r.status == 404 and b"first 404 page" in d, "the override 404 page is served")

    # Replace the certificate and the 404 page, SIGHUP.
    shutil.copy(b_crt, live_crt)
    shutil.copy(b_key, live_key)
    with open(os.path.join(pages, "404.html"), "w") as f:
        f.write("<html><body>second 404 page</body></html>")
    n = len(gw.log_lines("server.log"))
    server.send_signal(signal.SIGHUP)
    check(wait_log("reloaded", n), "the server logs the reload")
    check(fingerprint() == pem_fp(b_crt), "the new certificate is served on the next handshake")
    r, d = gw.request("GET", "/", "nobody.gw.example.com")
    check(r.status == 404 and b"second 404 page" in d, "the replaced 404 page is served")
    kept.request("GET", "/", headers={"Host": DOMAIN})
    r = kept.getresponse()
    check(r.status == 200 and r.read() == b"served", "the kept-alive connection survived the reload")
    kept.close()
    check(gw.request("GET", "/", DOMAIN)[0].status == 200, "the tunnel still serves")
    check(not any(l.get("msg") == "tunnel closed" for l in gw.log_lines("client.log")),
          "the client's tunnel was not dropped")

    # A broken certificate file: refused, the running one kept.
    with open(live_crt, "w") as f:
        f.write("garbage\n")
    n = len(gw.log_lines("server.log"))
    server.send_signal(signal.SIGHUP)
    check(wait_log("reload failed", n), "a broken certificate file: 'reload failed' is logged")
    check(fingerprint() == pem_fp(b_crt), "the running certificate is kept")
    check(server.poll() is None, "the server keeps running")

    # The log level from .env.
    shutil.copy(b_crt, live_crt)
    with open(os.path.join(work, ".env"), "w") as f:
        f.write("HOP_LOG_LEVEL=warn\n")
    n = len(gw.log_lines("server.log"))
    server.send_signal(signal.SIGHUP)
    check(wait_log("reloaded", n), "reload with HOP_LOG_LEVEL=warn in .env")
    n = len(gw.log_lines("server.log"))
    gw.request("GET", "/", DOMAIN)
    time.sleep(0.5)
    check(not any(l.get("msg") == "request" for l in gw.log_lines("server.log")[n:]),
          "info lines (access log) stop at log level warn")
    gw.terminate(client, "client")
    gw.terminate(server, "server")
except SystemExit:
    pass
finally:
    gw.stop_all()
    local.shutdown()

gw.finish(3000)
