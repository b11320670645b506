#!/usr/bin/env python3
"""ACME end to end: the real hopgate-server against a real Pebble CA (pebble-challtestsrv as DNS,
every name -> 127.0.0.1, Pebble validating on our server's HTTP and HTTPS ports).
Usage: acme_pebble_test.py <bin-dir> <repo-root>. Every wait is bounded; exits non-zero on the
first failed check (after running the rest of the phase).

Phases:
  1. CA unreachable at start: the server starts, serves the self-signed fallback, retries with
     backoff.
  2. HTTP-01: ctl + two proxy domains at start, one registered at run time, chains verified
     against Pebble's root and served by SNI; a failing challenge gives a clear error and a retry.
  3. TLS-ALPN-01 for a domain registered at run time; renewal with a short threshold swaps the
     certificate while a long download through the tunnel keeps running."""
import hashlib, http.client, http.server, json, os, re, socket, ssl, subprocess, sys, tempfile
import threading, time, urllib.request

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
SCRIPT = os.path.join(ROOT, "scripts", "pebble-test-server.sh")
ADMIN_KEY = "acme-admin-key-0123456789abcdef"
CTL, PA, PB = "ctl.hopgate.test", "a.hopgate.test", "b.hopgate.test"
DL, BAD, ALPN = "dl.hopgate.test", "bad.hopgate.test", "alpn.hopgate.test"
failures = []
work = tempfile.mkdtemp(prefix="hopgate-acme-")
cache = os.path.join(work, "cache")
peb_dir = os.path.join(work, "pebble")
procs = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


HTTP_PORT, HTTPS_PORT = free_port(), free_port()

BIG_LEN = 24 << 20


class Local(http.server.BaseHTTPRequestHandler):
    """The tunnelled local service: streams BIG_LEN bytes over ~20 s."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(BIG_LEN))
        self.end_headers()
        chunk = bytes(range(256)) * 1024
        for _ in range(BIG_LEN // len(chunk)):
            self.wfile.write(chunk)
            time.sleep(20.0 / (BIG_LEN // len(chunk)))


class Server:
    def __init__(self, env):
        full = dict(os.environ)
        full.update({
            "HOP_SERVER_HTTP_LISTEN": f"127.0.0.1:{HTTP_PORT}",
            "HOP_SERVER_HTTPS_LISTEN": f"127.0.0.1:{HTTPS_PORT}",
            "HOP_SERVER_DTLS_LISTEN": "127.0.0.1:0", "HOP_SERVER_TUNNEL_LISTEN": "127.0.0.1:0",
            "HOP_SERVER_DOMAIN": CTL, "HOP_SERVER_PROXY_DOMAINS": f"{PA},{PB}",
            "HOP_ADMIN_API_KEY": ADMIN_KEY, "HOP_DB_DSN": f"sqlite://{work}/hg.db",
            "HOP_SERVER_CERT_DIR": work, "HOP_ACME_CACHE_DIR": cache,
            "HOP_ACME_CHECK_INTERVAL_SECONDS": "2", "HOP_ACME_RETRY_BASE_SECONDS": "1",
            "HOP_ACME_RETRY_MAX_SECONDS": "4", "HOP_LOG_LEVEL": "info"})
        full.update(env)
        self.log_path = os.path.join(work, f"server-{len(procs)}.log")
        self.p = subprocess.Popen([f"{BIN}/hopgate-server"], env=full, cwd=work, stdout=subprocess.PIPE,
                                  stderr=open(self.log_path, "wb"))
        procs.append(self.p)
        self.ports = json.loads(self.p.stdout.readline())

    def logs(self):
        out = []
        with open(self.log_path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_log(self, pred, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            hit = [l for l in self.logs() if pred(l)]
            if hit:
                return hit
            time.sleep(0.1)
        return []

    def stop(self):
        self.p.terminate()
        try:
            code = self.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            code = "no exit within 15 s"
        check(code == 0, f"server exits 0 on SIGTERM (status {code})")


def installed(domain):
    return lambda l: l.get("msg") == "acme: certificate installed" and l.get("domain") == domain


def peer_cert(name, cafile=None):
    """Handshake with SNI `name`; returns the DER leaf. With cafile: full chain + hostname check."""
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            return t.getpeercert(binary_form=True)


def der_of_pem(path):
    pem = open(path).read()
    body = pem.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    import base64
    return base64.b64decode("".join(body.split()))


def admin_register(domain):
    ctx = ssl._create_unverified_context()
    c = http.client.HTTPSConnection("127.0.0.1", HTTPS_PORT, context=ctx, timeout=10)
    c.request("POST", "/api/v1/admin/domains/register", json.dumps({"domain": domain, "memo": "acme"}),
              {"Host": CTL, "Authorization": "Bearer " + ADMIN_KEY, "Content-Type": "application/json"})
    r = c.getresponse()
    body = json.loads(r.read() or b"{}")
    c.close()
    return r.status, body


def verify_chain(domain, root):
    crt = os.path.join(cache, domain + ".crt")
    r = subprocess.run(["openssl", "verify", "-CAfile", root, "-untrusted", crt, crt], capture_output=True, text=True)
    return r.returncode == 0


pebble_env = {}
try:
    # ---- Pebble
    out = subprocess.run([SCRIPT, "start", peb_dir], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PEBBLE_HTTP_PORT=str(HTTP_PORT), PEBBLE_TLS_PORT=str(HTTPS_PORT)))
    check(out.returncode == 0, "pebble + challtestsrv started: " + out.stderr.strip()[-200:])
    for m in re.finditer(r"export (\w+)=(\S+)", out.stdout):
        pebble_env[m.group(1)] = m.group(2)
    mgmt = pebble_env["PEBBLE_MGMT_PORT"]
    tls_ctx = ssl.create_default_context(cafile=pebble_env["PEBBLE_CA_CERT"])
    root_pem = urllib.request.urlopen(f"https://127.0.0.1:{mgmt}/roots/0", context=tls_ctx, timeout=10).read()
    root = os.path.join(work, "pebble-root.pem")
    open(root, "wb").write(root_pem)
    acme_env = {"HOP_ACME_CA_DIR": pebble_env["PEBBLE_DIR_URL"], "HOP_ACME_CA_ROOTS": pebble_env["PEBBLE_CA_CERT"]}

    # ---- 1. CA unreachable at start
    dead = free_port()
    srv = Server({"HOP_ACME_CA_DIR": f"https://127.0.0.1:{dead}/dir", "HOP_ACME_CA_ROOTS": pebble_env["PEBBLE_CA_CERT"]})
    fails = srv.wait_log(lambda l: l.get("msg") == "acme: order failed" and l.get("failures", 0) >= 2, 20)
    check(bool(fails), "CA unreachable: server up, orders fail and are retried (failures >= 2)")
    if fails:
        print("     error:", fails[0].get("error"), "retry_in_s:", fails[0].get("retry_in_s"))
        check("connect" in fails[0].get("error", ""), "CA unreachable: the error says the connection failed")
    selfsigned = der_of_pem(srv.ports["certificate"])
    check(peer_cert(PA) == selfsigned, "CA unreachable: HTTPS serves the self-signed fallback by SNI")
    srv.stop()

    # ---- 2. HTTP-01
    t0 = time.time()
    srv = Server(dict(acme_env, HOP_ACME_CHALLENGES="http-01", HOP_ACME_EMAIL="ops@hopgate.test"))
    for d in (CTL, PA, PB):
        hit = srv.wait_log(installed(d), 60)
        check(bool(hit), f"HTTP-01: {d} issued (took_ms={hit[0].get('took_ms') if hit else None}, "
                         f"bad_nonce_retries={hit[0].get('bad_nonce_retries') if hit else None})")
    print(f"     three certificates in {time.time() - t0:.1f} s from server start")
    st, reg = admin_register(DL)
    check(st == 201, "admin register dl.hopgate.test at run time")
    dl_key = reg.get("client_api_key", "")
    check(bool(srv.wait_log(installed(DL), 60)), "HTTP-01: a domain registered at run time gets its certificate")
    types = {(l["domain"], l["type"]) for l in srv.logs() if l.get("msg") == "acme: challenge provisioned"}
    check(all((d, "http-01") in types for d in (CTL, PA, PB, DL)), "HTTP-01 was the challenge answered")
    for d in (CTL, PA, PB, DL):
        check(verify_chain(d, root), f"{d}: stored chain verifies against Pebble's root")
        check(oct(os.stat(os.path.join(cache, d + ".key")).st_mode & 0o777) == "0o600", f"{d}: key file is 0600")
        try:
            served = peer_cert(d, cafile=root)
            check(served == der_of_pem(os.path.join(cache, d + ".crt")), f"{d}: HTTPS serves it by SNI (verified, hostname checked)")
        except (ssl.SSLError, OSError) as e:
            check(False, f"{d}: HTTPS serves it by SNI ({e})")
    c = http.client.HTTPSConnection("127.0.0.1", HTTPS_PORT, context=ssl._create_unverified_context(), timeout=10)
    c.request("GET", "/metrics", headers={"Host": CTL})
    metrics = c.getresponse().read().decode()
    c.close()
    m = re.search(r'hopgate_acme_orders_total\{result="ok"\} (\d+)', metrics)
    check(m is not None and int(m.group(1)) >= 4, f"/metrics: hopgate_acme_orders_total ok = {m.group(1) if m else None}")
    check(f'hopgate_acme_certificate_expiry_timestamp_seconds{{domain="{DL}"}}' in metrics,
          "/metrics: certificate expiry per domain")
    check(peer_cert("unknown.hopgate.test") == der_of_pem(srv.ports["certificate"]),
          "an unknown SNI name still gets the self-signed fallback")
    # A challenge that fails validation: DNS points bad.hopgate.test where nothing listens.
    req = urllib.request.Request(pebble_env["PEBBLE_CHALLTESTSRV_MGMT"] + "/add-a",
                                 data=json.dumps({"host": BAD + ".", "addresses": ["127.0.0.2"]}).encode())
    urllib.request.urlopen(req, timeout=10).read()
    check(admin_register(BAD)[0] == 201, "admin register bad.hopgate.test")
    bad = srv.wait_log(lambda l: l.get("msg") == "acme: order failed" and l.get("domain") == BAD
                       and l.get("failures", 0) >= 2, 60)
    check(bool(bad), "failing challenge: a clear error, then a retry with backoff")
    if bad:
        first = [l for l in srv.logs() if l.get("msg") == "acme: order failed" and l.get("domain") == BAD][0]
        print("     error:", first.get("error"), "retry_in_s:", first.get("retry_in_s"))
        check("validation failed" in first.get("error", ""), "the error names the failed validation")
    srv.stop()

    # ---- 3. TLS-ALPN-01 at run time, and renewal under a running download
    lifetime = None
    out = subprocess.run(["openssl", "x509", "-noout", "-startdate", "-enddate", "-in", os.path.join(cache, DL + ".crt")],
                         capture_output=True, text=True).stdout
    import email.utils
    nb = email.utils.parsedate_to_datetime(re.search(r"notBefore=(.*)", out).group(1).replace("GMT", "+0000"))
    na = email.utils.parsedate_to_datetime(re.search(r"notAfter=(.*)", out).group(1).replace("GMT", "+0000"))
    lifetime = int((na - nb).total_seconds())
    # Renew when (lifetime - age_at_renewal) remains: the cached DL certificate becomes due
    # `due_in` seconds from now.
    age = int(time.time() - nb.timestamp())
    due_in = 10
    renew_before = lifetime - age - due_in
    local = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Local)
    threading.Thread(target=local.serve_forever, daemon=True).start()
    srv = Server(dict(acme_env, HOP_ACME_CHALLENGES="tls-alpn-01", HOP_ACME_RENEW_BEFORE_SECONDS=str(renew_before),
                      HOP_SERVER_PROXY_DOMAINS=""))
    old_dl = peer_cert(DL)
    check(old_dl == der_of_pem(os.path.join(cache, DL + ".crt")), "restart: cached certificate served at once")
    check(admin_register(ALPN)[0] == 201, "admin register alpn.hopgate.test at run time")
    hit = srv.wait_log(installed(ALPN), 60)
    check(bool(hit), f"TLS-ALPN-01: {ALPN} issued (took_ms={hit[0].get('took_ms') if hit else None})")
    check(any(l.get("msg") == "acme: challenge provisioned" and l.get("domain") == ALPN and l.get("type") == "tls-alpn-01"
              for l in srv.logs()), "TLS-ALPN-01 was the challenge answered")
    check(verify_chain(ALPN, root), f"{ALPN}: chain verifies against Pebble's root")
    try:
        check(peer_cert(ALPN, cafile=root) == der_of_pem(os.path.join(cache, ALPN + ".crt")), f"{ALPN}: served by SNI")
    except (ssl.SSLError, OSError) as e:
        check(False, f"{ALPN}: served by SNI ({e})")
    # A long download through the tunnel, started on the old certificate.
    client = subprocess.Popen([f"{BIN}/hopgate-client", "--server-addr", f"127.0.0.1:{srv.ports['dtls']}",
                               "--server-tls-port", str(srv.ports["tunnel"]), "--server-name", "localhost",
                               "--domain", DL, "--api-key", dl_key, "--transport", "tls",
                               "--local-target", f"127.0.0.1:{local.server_address[1]}",
                               "--ca-file", srv.ports["certificate"]],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "client.log"), "wb"))
    procs.append(client)
    result = {}

    def download():
        ctx = ssl.create_default_context(cafile=root)
        deadline = time.time() + 15
        while time.time() < deadline:
            s = socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=30)
            t = ctx.wrap_socket(s, server_hostname=DL)
            result["cert"] = t.getpeercert(binary_form=True)
            t.sendall(f"GET /slow HTTP/1.1\r\nHost: {DL}\r\nConnection: close\r\n\r\n".encode())
            resp = http.client.HTTPResponse(t)
            resp.begin()
            if resp.status != 200:
                resp.close()
                t.close()
                time.sleep(0.3)
                continue
            result["started"] = time.time()
            h = hashlib.sha256()
            n = 0
            while True:
                b = resp.read(1 << 16)
                if not b:
                    break
                n += len(b)
                h.update(b)
            result["len"] = n
            result["ended"] = time.time()
            t.close()
            return

    th = threading.Thread(target=download, daemon=True)
    th.start()
    renewed = srv.wait_log(lambda l: l.get("msg") == "acme: renewing certificate" and l.get("domain") == DL, 40)
    check(bool(renewed), "renewal: started when the short threshold was reached")
    hit = srv.wait_log(installed(DL), 40)
    check(bool(hit), "renewal: the renewed certificate is installed")
    swapped_at = time.time()
    new_dl = peer_cert(DL, cafile=root)
    check(new_dl != old_dl and new_dl == der_of_pem(os.path.join(cache, DL + ".crt")),
          "renewal: new handshakes get the new certificate (stored atomically)")
    th.join(60)
    check(result.get("cert") == old_dl, "renewal: the download began on the old certificate")
    check(result.get("len") == BIG_LEN, f"renewal: the download through the tunnel completed ({result.get('len')} bytes)")
    check(result.get("started", 1e18) < swapped_at < result.get("ended", 0),
          "renewal: the certificate was swapped while the download was running")
    srv.stop()

    # ---- 4. Operator CLI (server stopped: the CLI answers HTTP-01 on the HTTP port itself)
    cli_env = dict(os.environ, HOP_ACME_CACHE_DIR=cache, HOP_SERVER_HTTP_LISTEN=f"127.0.0.1:{HTTP_PORT}",
                   HOP_DB_DSN=f"sqlite://{work}/hg.db", **acme_env)
    r = subprocess.run([f"{BIN}/hopgate-server", "cert", "obtain", "cli.hopgate.test"], env=cli_env, cwd=work,
                       capture_output=True, text=True, timeout=120)
    print("     " + (r.stdout + r.stderr).strip())
    check(r.returncode == 0 and verify_chain("cli.hopgate.test", root), "cert obtain: issued and stored")
    r = subprocess.run([f"{BIN}/hopgate-server", "cert", "list"], env=cli_env, cwd=work,
                       capture_output=True, text=True, timeout=30)
    listed = {l.split("\t")[0] for l in r.stdout.splitlines()}
    check(r.returncode == 0 and {CTL, PA, PB, DL, ALPN, "cli.hopgate.test"} <= listed,
          f"cert list: every cached certificate ({len(listed)})")
finally:
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                code = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
                code = "no exit within 15 s"
            check(code == 0, f"{os.path.basename(p.args[0])} exits 0 on SIGTERM (status {code})")
    subprocess.run([SCRIPT, "stop", peb_dir], capture_output=True, timeout=30)

print("FAILED: %d check(s)" % len(failures) if failures else "all ACME checks passed")
sys.exit(1 if failures else 0)
