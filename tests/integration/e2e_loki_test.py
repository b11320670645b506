#!/usr/bin/env python3
"""Loki push (HOP_LOKI_*) against a local HTTP receiver that checks Loki's push API format.

hopgate-server and hopgate-client run with HOP_LOKI_ENABLE pointing at a python receiver on
127.0.0.1. Checked: POST /loki/api/v1/push, Content-Type application/json, X-Scope-OrgID, Basic
auth, the stream labels (app, component, HOP_LOKI_STATIC_LABELS), nanosecond timestamps near now,
and that the access-log lines of requests arrive. Then the receiver answers 500 for a while: the
server keeps answering requests fast, retries, and the lines logged during the outage arrive once
the receiver is back (hopgate_loki_* metrics move). SIGTERM: exit 0 and the final flush carries
the "shutting down" line. A second server whose Loki accepts connections but never answers still
stops promptly on SIGTERM (the final flush is bounded).

Usage: e2e_loki_test.py <bin-dir>. Every wait is bounded."""
import base64, http.server, json, os, re, socket, sys, threading, time

from hg_e2e import Gateway, check

BIN = sys.argv[1]
ADMIN_KEY = "loki-admin-key-0123456789abcdef"
DOMAIN = "app.example.com"
USER, PASSWORD, TENANT = "loki-user", "loki-secret-pw", "tenant-a"

lock = threading.Lock()
pushes = []        # every request the receiver saw: dict(path, headers, body or None, status)
mode = {"status": 204}


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n) if 0 < n < 16 * 1024 * 1024 else b""
        with lock:
            status = mode["status"]
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with lock:
            pushes.append({"path": self.path, "headers": dict(self.headers), "body": body,
                           "status": status, "t": time.time()})
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Local(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


recv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=recv.serve_forever, daemon=True).start()
local = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Local)
threading.Thread(target=local.serve_forever, daemon=True).start()


def loki_env(endpoint, labels="env=test,region=local"):
    env = dict(os.environ)
    env.update({"HOP_LOKI_ENABLE": "true", "HOP_LOKI_ENDPOINT": endpoint,
                "HOP_LOKI_TENANT_ID": TENANT, "HOP_LOKI_USERNAME": USER,
                "HOP_LOKI_PASSWORD": PASSWORD, "HOP_LOKI_STATIC_LABELS": labels})
    return env


def accepted_entries(component=None):
    """(labels, ts, parsed line) of every entry in pushes the receiver accepted."""
    out = []
    with lock:
        seen = list(pushes)
    for p in seen:
        if p["status"] >= 300 or not p["body"]:
            continue
        for s in p["body"].get("streams", []):
            if component and s.get("stream", {}).get("component") != component:
                continue
            for v in s.get("values", []):
                try:
                    out.append((s["stream"], v[0], json.loads(v[1])))
                except (ValueError, IndexError, TypeError):
                    out.append((s.get("stream"), None, None))
    return out


def wait_for(pred, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def paths_seen(prefix):
    return {e[2].get("path") for e in accepted_entries("server")
            if e[2] and e[2].get("msg") == "request" and str(e[2].get("path", "")).startswith(prefix)}


def metric(gw, name):
    r, d = gw.request("GET", "/metrics", "localhost")
    m = re.search(rb"^" + name.encode() + rb" (\d+)", d, re.M)
    return int(m.group(1)) if m else None


gw = Gateway(BIN, "hopgate-loki-", ADMIN_KEY)
try:
    endpoint = f"http://127.0.0.1:{recv.server_address[1]}"
    server = gw.start_server(env=loki_env(endpoint))
    st, body = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "l"})
    key = body.get("client_api_key", "")
    if not check(st == 201 and key, "domain registered"):
        raise SystemExit
    client = gw.start([f"{BIN}/hopgate-client", "--server-addr", f"127.0.0.1:{gw.ports['dtls']}",
                       "--server-tls-port", str(gw.ports["tunnel"]), "--server-name", "localhost",
                       "--domain", DOMAIN, "--api-key", key, "--transport", "tls",
                       "--local-target", f"127.0.0.1:{local.server_address[1]}",
                       "--ca-file", gw.ports["certificate"]], "client.log",
                      env=loki_env(endpoint + "/loki/api/v1/push", "env=test"))
    check(gw.wait_status("/", DOMAIN, 200, 30), "tunnel up")
    for i in range(5):
        gw.request("GET", f"/loki-probe-{i}", DOMAIN)

    # --- format ---------------------------------------------------------------------------
    check(wait_for(lambda: len(paths_seen("/loki-probe-")) == 5, 20),
          "the access-log lines of 5 requests arrive at the receiver")
    with lock:
        first = [p for p in pushes if p["status"] < 300]
    check(first and all(p["path"] == "/loki/api/v1/push" for p in first),
          "every push is POST /loki/api/v1/push (base URL and full push URL)")
    check(bool(first) and all(p["headers"].get("Content-Type") == "application/json" for p in first),
          "Content-Type: application/json")
    check(bool(first) and all(p["headers"].get("X-Scope-OrgID") == TENANT for p in first),
          "X-Scope-OrgID")
    want_auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    check(bool(first) and all(p["headers"].get("Authorization") == want_auth for p in first),
          "Basic auth")
    check(bool(first) and all(p["body"] is not None for p in first), "every push body is JSON")
    server_entries = accepted_entries("server")
    labels = {json.dumps(e[0], sort_keys=True) for e in server_entries}
    check(labels == {json.dumps({"app": "hopgate", "component": "server", "env": "test",
                                 "region": "local"}, sort_keys=True)},
          f"server stream labels: app, component, static labels ({labels})")
    now_ns = time.time_ns()
    ts_ok = bool(server_entries) and all(isinstance(e[1], str) and e[1].isdigit() and
                abs(int(e[1]) - now_ns) < 300 * 10**9 for e in server_entries)
    check(ts_ok, "timestamps are Unix nanoseconds as strings, near now")
    check(wait_for(lambda: any(e[2] and e[2].get("msg") == "tunnel established"
                               for e in accepted_entries("client")), 20),
          "the client pushes its own lines (component=client, \"tunnel established\")")
    client_labels = {json.dumps(e[0], sort_keys=True) for e in accepted_entries("client")}
    check(client_labels == {json.dumps({"app": "hopgate", "component": "client", "env": "test"},
                                       sort_keys=True)}, f"client stream labels ({client_labels})")
    warns = [l for l in gw.log_lines("server.log") if "HOP_LOKI" in json.dumps(l)]
    check(not warns, "no unknown-setting warning about HOP_LOKI_* (server)")
    warns = [l for l in gw.log_lines("client.log") if "HOP_LOKI" in json.dumps(l)]
    check(not warns, "no unknown-setting warning about HOP_LOKI_* (client)")
    check(PASSWORD not in open(os.path.join(gw.work, "server.log")).read(),
          "the password never appears in the log")

    # --- outage: 500 for a while ---------------------------------------------------------
    with lock:
        mode["status"] = 500
        failed_before = sum(1 for p in pushes if p["status"] == 500)
    slowest, statuses = 0.0, []
    for i in range(20):
        t0 = time.time()
        r, _ = gw.request("GET", f"/loki-outage-{i}", DOMAIN, timeout=30)
        slowest = max(slowest, time.time() - t0)
        statuses.append(r.status)
        time.sleep(0.1)
    check(statuses == [200] * 20, f"all 20 requests during the outage answer 200 ({statuses})")
    check(wait_for(lambda: sum(1 for p in pushes if p["status"] == 500) - failed_before >= 2, 20),
          "the pusher retries while the receiver answers 500")
    print(f"     slowest request during the outage: {slowest * 1000:.0f} ms")
    check(slowest < 5.0, f"requests stay fast during the outage ({slowest:.2f} s < 5 s)")
    check(wait_for(lambda: (metric(gw, "hopgate_loki_push_failures_total") or 0) >= 2, 10),
          "hopgate_loki_push_failures_total counts the failures "
          f"({metric(gw, 'hopgate_loki_push_failures_total')})")
    check(not paths_seen("/loki-outage-"), "nothing from the outage was accepted yet")
    with lock:
        mode["status"] = 204
    check(wait_for(lambda: len(paths_seen("/loki-outage-")) == 20, 40),
          "after the outage, all 20 lines logged during it arrive (retry with backoff)")
    pushed = metric(gw, "hopgate_loki_pushed_lines_total")
    check(pushed is not None and pushed >= 25, f"hopgate_loki_pushed_lines_total ({pushed})")
    dropped = metric(gw, "hopgate_loki_dropped_lines_total")
    check(dropped == 0, f"hopgate_loki_dropped_lines_total is 0 ({dropped})")

    # --- SIGTERM: exit 0, final flush ------------------------------------------------------
    gw.request("GET", "/loki-final", DOMAIN)
    gw.terminate(client, "hopgate-client")
    t0 = time.time()
    gw.terminate(server, "hopgate-server")
    print(f"     server stop took {time.time() - t0:.2f} s")
    check(wait_for(lambda: any(e[2] and e[2].get("msg") == "shutting down"
                               for e in accepted_entries("server")), 5),
          "the final flush at SIGTERM delivers the \"shutting down\" line")
    check("/loki-final" in paths_seen("/loki-final"), "the last request's line arrives")

    # --- a Loki that never answers does not hold up the stop --------------------------------
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # never accepted: connects succeed, no response ever comes
    server2 = gw.start_server(env=loki_env(f"http://127.0.0.1:{silent.getsockname()[1]}"),
                              log_name="server2.log")
    for i in range(3):
        gw.request("GET", f"/silent-{i}", DOMAIN)
    time.sleep(1.5)
    t0 = time.time()
    gw.terminate(server2, "hopgate-server with a silent Loki")
    took = time.time() - t0
    print(f"     stop with a silent Loki took {took:.2f} s")
    check(took < 10, f"the stop is bounded although Loki never answers ({took:.2f} s < 10 s)")
    silent.close()

    # --- settings: errors name the setting; check-config masks the password -------------------
    import subprocess
    bad = subprocess.run([f"{BIN}/hopgate-server", "check-config"], cwd=gw.work, timeout=30,
                         capture_output=True, text=True,
                         env=loki_env("https://loki.example:3100"))
    check(bad.returncode == 1 and "HOP_LOKI_ENDPOINT" in bad.stderr,
          f"an https:// endpoint is refused naming HOP_LOKI_ENDPOINT (exit {bad.returncode})")
    bad = subprocess.run([f"{BIN}/hopgate-client", "--server-addr", "127.0.0.1:1", "--domain",
                          DOMAIN, "--api-key", "k", "check-config"], cwd=gw.work, timeout=30,
                         capture_output=True, text=True,
                         env=loki_env(endpoint, "not a label"))
    check(bad.returncode == 1 and "HOP_LOKI_STATIC_LABELS" in bad.stderr,
          f"client check-config refuses bad HOP_LOKI_STATIC_LABELS (exit {bad.returncode})")
    good = subprocess.run([f"{BIN}/hopgate-client", "--server-addr", "127.0.0.1:1", "--domain",
                           DOMAIN, "--api-key", "k", "check-config"], cwd=gw.work, timeout=30,
                          capture_output=True, text=True, env=loki_env(endpoint))
    check(good.returncode == 0 and "HOP_LOKI_PASSWORD=<redacted>" in good.stdout and
          PASSWORD not in good.stdout + good.stderr,
          f"client check-config accepts the Loki settings and masks the password "
          f"(exit {good.returncode})")
finally:
    gw.stop_all()
gw.finish()
