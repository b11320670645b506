"""Shared pieces of the end-to-end tests (e2e_gateway, e2e_proxy, e2e_load): checks, the work
directory with the binaries' logs, starting hopgate-server on loopback ports chosen at run time,
HTTPS requests and admin calls against it, starting hopgate-client, and the final report.

The test scripts are run as `python3 <dir>/<script>.py`, so this module is importable from their
directory. Every wait here is bounded."""
import http.client, http.server, json, os, shutil, signal, ssl, subprocess, sys, tempfile, threading, time

failures = []


def check(cond, what):
    """Prints ok/FAIL and records a failure; returns cond (so set-up steps can bail out)."""
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def start_local_service(body):
    """A local HTTP/1.1 service on 127.0.0.1 (a free port) that answers every GET with 200 and
    `body`; runs in daemon threads. Returns the server (`.server_address[1]` is its port;
    `.shutdown()` stops it)."""

    class Local(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Local)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def rss(pid):
    """The resident set size of process `pid` in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def count_closed(conns):
    """How many of the connected sockets `conns` the peer has closed (reads without blocking;
    leaves them non-blocking)."""
    closed = 0
    for c in conns:
        c.setblocking(False)
        try:
            if c.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


class Gateway:
    """hopgate-server (+ clients) under a fresh work directory; logs are <work>/<name>.log."""

    def __init__(self, bin_dir, prefix, admin_key):
        self.bin = bin_dir
        self.admin_key = admin_key
        self.work = tempfile.mkdtemp(prefix=prefix)
        self.procs = []
        self.ports = {}
        self.ctx = None

    def start(self, args, log_name, env=None):
        p = subprocess.Popen(args, stdout=subprocess.PIPE, cwd=self.work, env=env,
                             stderr=open(os.path.join(self.work, log_name), "ab"))
        self.procs.append(p)
        return p

    def log_lines(self, name):
        """The JSON lines of a binary's log so far."""
        try:
            with open(os.path.join(self.work, name), errors="replace") as f:
                return [json.loads(l) for l in f if l.startswith("{")]
        except OSError:
            return []

    def start_server(self, extra_args=(), env=None, log_name="server.log"):
        """Starts hopgate-server on port-0 loopback listeners with SQLite and a self-signed
        certificate in the work directory; reads its ports line. Returns the process."""
        server = self.start([f"{self.bin}/hopgate-server", "--http-listen", "127.0.0.1:0",
                             "--https-listen", "127.0.0.1:0", "--dtls-listen", "127.0.0.1:0",
                             "--tunnel-listen", "127.0.0.1:0", "--admin-api-key", self.admin_key,
                             "--db-dsn", f"sqlite://{self.work}/hg.db", "--cert-dir", self.work,
                             *extra_args], log_name, env)
        self.ports = json.loads(server.stdout.readline())
        self.ctx = ssl.create_default_context(cafile=self.ports["certificate"])
        self.ctx.check_hostname = False
        return server

    def connect(self, timeout=30):
        return http.client.HTTPSConnection("127.0.0.1", self.ports["https"], context=self.ctx,
                                           timeout=timeout)

    def request(self, method, path, host, body=None, headers=None, timeout=30):
        """One HTTPS request to the server's front door; returns (response, body bytes)."""
        c = self.connect(timeout)
        h = {"Host": host}
        h.update(headers or {})
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r, r.read()
        finally:
            c.close()

    def admin(self, method, path, payload=None, token=True):
        """An admin API call on the control domain; token=None sends no Authorization."""
        hdr = {"Content-Type": "application/json"}
        if token:
            hdr["Authorization"] = "Bearer " + (self.admin_key if token is True else token)
        r, d = self.request(method, path, "localhost",
                            json.dumps(payload) if payload is not None else None, hdr)
        return r.status, (json.loads(d) if d else {})

    def start_client(self, domain, key, local_port, transport, log_name, dtls_port=None,
                     tls_port=None):
        """hopgate-client for `domain`, serving 127.0.0.1:local_port, dialling the server (or
        the given ports, e.g. a relay's)."""
        return self.start([f"{self.bin}/hopgate-client",
                           "--server-addr", f"127.0.0.1:{dtls_port or self.ports['dtls']}",
                           "--server-tls-port", str(tls_port or self.ports["tunnel"]),
                           "--server-name", "localhost", "--domain", domain, "--api-key", key,
                           "--transport", transport, "--local-target", f"127.0.0.1:{local_port}",
                           "--ca-file", self.ports["certificate"]], log_name)

    def wait_status(self, path, host, want, seconds=15):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if self.request("GET", path, host, timeout=5)[0].status == want:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def terminate(self, p, what=None, timeout=15):
        """Stops `p` with SIGTERM as systemd would and checks that it exits 0 within `timeout`."""
        what = what or os.path.basename(p.args[0])
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
            code = "no exit within %d s" % timeout
        return check(code == 0, f"{what} exits 0 on SIGTERM (status {code})")

    def stop_all(self):
        """Stops every process still running with SIGTERM and checks each exits 0; a process
        that does not stop in time is killed and recorded as a failure."""
        for p in self.procs:
            if p.poll() is None:
                self.terminate(p)

    def finish(self, tail=4000):
        """Prints the result (with the tail of every log when something failed), removes the
        work directory when all passed, and exits 0/1."""
        print(f"{len(failures)} failed" if failures else "all checks passed")
        if failures:
            for p in sorted(os.listdir(self.work)):
                if p.endswith(".log"):
                    text = open(os.path.join(self.work, p), errors="replace").read()
                    print(f"--- {p}\n" + text[-tail:])
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        sys.exit(1 if failures else 0)
