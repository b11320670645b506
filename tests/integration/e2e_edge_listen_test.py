#!/usr/bin/env python3
"""The server's listeners at the public edge, with the real hopgate-server on loopback:
- a port already in use fails start-up with exit 1 and one line naming the listener and the
  address, for each listener in turn (HTTPS, HTTP, DTLS, TLS tunnels); the DTLS socket must not
  share its UDP port with another server (no SO_REUSEADDR);
- the plain-HTTP listener caps its open connections (HOP_SERVER_HTTP_MAX_CONNECTIONS): excess
  connections are closed at accept and counted;
- out of file descriptors (EMFILE under a low RLIMIT_NOFILE) the accept loops pause instead of
  spinning at 100 % CPU, log it once per interval, and serve again once descriptors are free.
Usage: e2e_edge_listen_test.py <bin-dir>. Every wait is bounded; exits non-zero on failure."""
import json, os, re, socket, ssl, subprocess, sys, time

from hg_e2e import Gateway, check

BIN = os.path.abspath(sys.argv[1])
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
LISTENERS = [("https", "--https-listen", "HTTPS"), ("http", "--http-listen", "HTTP"),
             ("dtls", "--dtls-listen", "DTLS"), ("tunnel", "--tunnel-listen", "TLS tunnels")]


def server_args(gw, name, overrides=None, extra=()):
    """hopgate-server's command line on port-0 loopback listeners, with its own database and
    certificate directory under the work directory; `overrides` maps a listen flag to a value."""
    d = os.path.join(gw.work, name)
    os.makedirs(d, exist_ok=True)
    listen = {flag: "127.0.0.1:0" for _, flag, _ in LISTENERS}
    listen.update(overrides or {})
    args = [f"{BIN}/hopgate-server", "--admin-api-key", ADMIN_KEY,
            "--db-dsn", f"sqlite://{d}/hg.db", "--cert-dir", d]
    for flag, value in listen.items():
        args += [flag, value]
    return args + list(extra)


def http_get(port, path="/", host="app.example.com", timeout=5):
    """One plain-HTTP request; returns the status line (b"" when the server closed at once)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return data.split(b"\r\n", 1)[0]


def metrics(gw):
    r, d = gw.request("GET", "/metrics", "localhost", timeout=10)
    return d.decode() if r.status == 200 else ""


def metric_value(text, pattern):
    m = re.search(pattern + r" (\d+)", text)
    return int(m.group(1)) if m else None


def test_busy_ports(gw):
    """A second server on the ports of a running one: each busy listener stops start-up."""
    first = gw.start(server_args(gw, "first"), "first.log")
    ports = json.loads(first.stdout.readline())
    for key, flag, what in LISTENERS:
        addr = f"127.0.0.1:{ports[key]}"
        try:
            p = subprocess.run(server_args(gw, "second-" + key, {flag: addr}), cwd=gw.work,
                               capture_output=True, timeout=30)
            code, out, err = p.returncode, p.stdout.decode(), p.stderr.decode()
        except subprocess.TimeoutExpired as e:
            code, out, err = "still running after 30 s", "", (e.stderr or b"").decode()
        want = f"hopgate-server: cannot listen for {what} on {addr}: Address already in use"
        lines = [l for l in err.splitlines() if l.startswith("hopgate-server:")]
        check(code == 1, f"{what} port in use: second server exits 1 (status {code})")
        check(lines == [want], f"{what} port in use: one clear line {want!r} (got {lines})")
        check(".hpp" not in err and "/usr/include" not in err,
              f"{what} port in use: no library source location in the message")
        check('"https"' not in out, f"{what} port in use: no ports line on stdout")
    gw.terminate(first, "first server")


def test_http_cap(gw):
    """HOP_SERVER_HTTP_MAX_CONNECTIONS=4: a fifth idle :80 connection is closed at accept."""
    p = gw.start_server(["--http-max-connections", "4", "--header-timeout", "30"],
                        log_name="cap.log")
    port = gw.ports["http"]
    check(http_get(port).startswith(b"HTTP/1.1 308"), ":80 redirects to HTTPS")
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
    deadline = time.time() + 10
    while time.time() < deadline and metric_value(
            metrics(gw), "hopgate_http_redirect_connections_open") != 4:
        time.sleep(0.1)
    check(metric_value(metrics(gw), "hopgate_http_redirect_connections_open") == 4,
          "four idle :80 connections are open")
    status = http_get(port)
    check(status == b"", f":80 over the cap: the fifth connection is closed unanswered ({status!r})")
    check((metric_value(metrics(gw), "hopgate_http_redirect_connections_rejected_total") or 0) >= 1,
          "the refusal is counted in hopgate_http_redirect_connections_rejected_total")
    idle.pop().close()
    deadline = time.time() + 10
    ok = False
    while time.time() < deadline and not ok:
        ok = http_get(port).startswith(b"HTTP/1.1 308")
        time.sleep(0.1)
    check(ok, ":80 below the cap again: 308")
    for s in idle:
        s.close()
    gw.terminate(p, "capped server")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_emfile_backoff(gw):
    """With 64 descriptors the server runs out after a few dozen connections; the rest wait in
    the listen queue. The accept loops must pause (not spin), log once, and recover."""
    nofile = 64
    p = gw.start(["prlimit", f"--nofile={nofile}:{nofile}", "--"] +
                 server_args(gw, "emfile", extra=["--header-timeout", "60"]), "emfile.log")
    ports = json.loads(p.stdout.readline())
    gw.ports = ports
    gw.ctx = ssl.create_default_context(cafile=ports["certificate"])
    gw.ctx.check_hostname = False
    check(http_get(ports["http"]).startswith(b"HTTP/1.1 308"), "EMFILE: server answers at first")
    flood = []
    for _ in range(nofile + 40):
        try:
            flood.append(socket.create_connection(("127.0.0.1", ports["http"]), timeout=5))
        except OSError:
            break
    check(len(flood) == nofile + 40, f"EMFILE: {len(flood)} flood connections established")
    time.sleep(1.0)  # the server accepts what it can and runs out
    c0, t0 = cpu_seconds(p.pid), time.monotonic()
    time.sleep(2.0)
    c1, t1 = cpu_seconds(p.pid), time.monotonic()
    share = (c1 - c0) / (t1 - t0)
    print(f"     server CPU while out of descriptors: {share * 100:.1f} % of one core")
    check(share < 0.30, f"EMFILE: the accept loop does not spin ({share * 100:.0f} % CPU < 30 %)")
    pauses = [l for l in gw.log_lines("emfile.log")
              if l.get("msg") == "accept failed: pausing the listener"]
    check(1 <= len(pauses) <= 2,
          f"EMFILE: logged once per interval, not per error ({len(pauses)} lines)")
    check(any(l.get("listener") == "http" and "open files" in l.get("error", "")
              for l in pauses), "EMFILE: the line names the listener and the error")
    for s in flood:
        s.close()
    ok = False
    deadline = time.time() + 15
    while time.time() < deadline and not ok:
        try:
            ok = http_get(ports["http"], timeout=2).startswith(b"HTTP/1.1 308")
        except OSError:
            pass
        if not ok:
            time.sleep(0.2)
    check(ok, "EMFILE: after the flood closes, :80 answers again")
    try:
        r, _ = gw.request("GET", "/", "localhost", timeout=10)
        status = r.status
    except OSError as e:
        status = str(e)
    check(status == 200, f"EMFILE: after the flood closes, HTTPS answers again ({status})")
    m = metrics(gw)
    check((metric_value(m, r'hopgate_accept_pauses_total\{listener="http"\}') or 0) >= 1,
          "EMFILE: pauses counted in hopgate_accept_pauses_total{listener=\"http\"}")
    gw.terminate(p, "server under RLIMIT_NOFILE")


def main():
    gw = Gateway(BIN, "hg-e2e-edge-", ADMIN_KEY)
    try:
        test_busy_ports(gw)
        test_http_cap(gw)
        test_emfile_backoff(gw)
    finally:
        gw.stop_all()
    gw.finish()


if __name__ == "__main__":
    main()
