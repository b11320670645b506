#!/usr/bin/env python3
"""End-to-end observability: the real hopgate-server and hopgate-client on loopback, one tunnel and
a few requests, then:
  - /metrics exports hopgate_build_info{version,protocol}, the process_* metrics, the per-domain
    families (own label for the tunnel's domain, "other" for an unknown host, kind="admin" for the
    control domain) and hopgate_domain_tunnels, and the original-name aliases;
  - every metric named by an expr of packaging/grafana/hopgate.json and
    packaging/prometheus/alerts.yml is exported by the server;
  - GET /api/v1/admin/domains/tunnels lists the live tunnel; the access log names it;
  - the status page shows the version the binary reports.
Usage: observability_test.py <bin-dir> <source-dir> <dtls|tls>. Every wait is bounded."""
import datetime, http.server, json, os, re, shutil, subprocess, sys, threading, time

from hg_e2e import Gateway, check, start_local_service

BIN, SRC, TRANSPORT = sys.argv[1], sys.argv[2], sys.argv[3]
ADMIN_KEY = "obs-admin-key-0123456789abcdef"
DOMAIN = "obs.example.com"
# Families registered without samples in this set-up: ACME ones (no certificate issued, the CA
# below is unreachable). They must still be declared (# TYPE).
MAY_BE_EMPTY = {"hopgate_acme_certificate_expiry_timestamp_seconds", "hopgate_acme_orders_total"}



def parse_exposition(text):
    """{family: type} from # TYPE lines and {series name: [(labels dict, value)]}."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
        elif line and not line.startswith("#"):
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
            if not m:
                check(False, f"exposition line parses: {line!r}")
                continue
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            samples.setdefault(m.group(1), []).append((labels, float(m.group(4))))
    return types, samples


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset", "inf", "nan"}


def metric_names(expr):
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    label names or values, range/offset durations or Grafana variables."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                          # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                         # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\$\w+", "", e)                              # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_exprs(path):
    dash = json.load(open(path))
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                exprs.append(t["expr"])
            walk(p.get("panels", []))

    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        m = re.match(r"label_values\(\s*([^,)]+)", q) if isinstance(q, str) else None
        if m:
            exprs.append(m.group(1))
    return exprs


def alert_exprs(path):
    try:
        import yaml
        doc = yaml.safe_load(open(path))
        return [r["expr"] for g in doc["groups"] for r in g["rules"]]
    except ImportError:  # python3-yaml missing: the file keeps every expr on "expr: " lines
        text = open(path).read()
        out = []
        for m in re.finditer(r"^(\s*)expr: ?(\|)?(.*)$", text, re.M):
            if not m.group(2):
                out.append(m.group(3))
                continue
            block, indent = [], None
            for line in text[m.end() + 1:].splitlines():
                cur = len(line) - len(line.lstrip())
                if line.strip() and cur <= len(m.group(1)):
                    break
                block.append(line)
            out.append("\n".join(block))
        return out


def exported(name, types, samples):
    """True if `name` (maybe a histogram's _bucket/_sum/_count series) is a declared family;
    with samples unless listed in MAY_BE_EMPTY."""
    family = name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            family = base
    if family not in types:
        return False
    return family in MAY_BE_EMPTY or bool(samples.get(name))


local = start_local_service(b"hello observability")
gw = Gateway(BIN, "hopgate-obs-", ADMIN_KEY)

try:
    version = subprocess.run([os.path.join(BIN, "hopgate-server"), "--version"], capture_output=True,
                             text=True, timeout=10).stdout.split()[1]
    # An unreachable ACME directory: the server serves its self-signed certificate meanwhile and
    # declares the ACME families the alert rules read.
    server = gw.start_server(["--acme-ca-dir", "http://127.0.0.1:9/directory",
                              "--acme-cache-dir", os.path.join(gw.work, "acme")])
    st, reg = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN})
    check(st == 201, "register the domain")
    started = time.time()
    gw.start_client(DOMAIN, reg["client_api_key"], local.server_address[1], TRANSPORT, "client.log")
    check(gw.wait_status("/hello", DOMAIN, 200, 30), "a request through the tunnel answers 200")
    for _ in range(3):
        gw.request("GET", "/hello", DOMAIN)
    check(gw.request("GET", "/", "nobody.example.net")[0].status == 404, "unknown host -> 404")

    # The status page: the version the binary reports.
    r, page = gw.request("GET", "/", "localhost")
    check(r.status == 200 and f"<dd>{version}</dd>" in page.decode(errors="replace"),
          f"status page shows the build's version {version}")

    # Admin API: the live tunnel.
    st, live = gw.admin("GET", f"/api/v1/admin/domains/tunnels?domain={DOMAIN}")
    tunnels = live.get("tunnels") or []
    check(st == 200 and len(tunnels) == 1, f"admin tunnels lists one live tunnel ({st} {live})")
    peer = ""
    if tunnels:
        t = tunnels[0]
        peer = t.get("peer", "")
        check(t.get("transport") == TRANSPORT, "tunnel transport")
        check(re.fullmatch(r"127\.0\.0\.1:\d+", peer) is not None, f"tunnel peer address {peer}")
        since = datetime.datetime.strptime(t.get("since", ""), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        check(started - 5 <= since <= time.time() + 5, f"tunnel since {t.get('since')} is its start")
        check(isinstance(t.get("streams_open"), int) and t["streams_open"] >= 0, "streams_open")
        check(isinstance(t.get("rtt_ms"), (int, float)) and 0 <= t["rtt_ms"] < 5000, "rtt_ms")
    check(gw.admin("GET", "/api/v1/admin/domains/tunnels?domain=ghost.example.com")[0] == 404,
          "admin tunnels of an unregistered domain -> 404")
    check(gw.admin("GET", f"/api/v1/admin/domains/tunnels?domain={DOMAIN}", token=None)[0] == 401,
          "admin tunnels without the token -> 401")

    # The access log names the tunnel that served each proxied request.
    served = [l for l in gw.log_lines("server.log")
              if l.get("msg") == "request" and l.get("host") == DOMAIN and l.get("status") == 200]
    check(served and all(l.get("tunnel") == peer for l in served),
          f"access log lines name the serving tunnel {peer}")
    unknown = [l for l in gw.log_lines("server.log") if l.get("host") == "nobody.example.net"]
    check(unknown and unknown[0].get("tunnel") == "", "no tunnel named for an unknown host")

    r, body = gw.request("GET", "/metrics", "localhost")
    check(r.status == 200, "/metrics answers")
    types, samples = parse_exposition(body.decode())

    def value(name, **labels):
        for l, v in samples.get(name, []):
            if all(l.get(k) == x for k, x in labels.items()):
                return v
        return None

    check(value("hopgate_build_info", version=version, protocol="1") == 1,
          "hopgate_build_info{version,protocol} 1")
    rss, fds, maxfds = (value("process_resident_memory_bytes"), value("process_open_fds"),
                        value("process_max_fds"))
    check(rss is not None and 1 << 20 < rss < 4 << 30, f"process_resident_memory_bytes {rss}")
    check(fds is not None and 3 < fds and maxfds is not None and fds < maxfds,
          f"process_open_fds {fds} < process_max_fds {maxfds}")
    start = value("process_start_time_seconds")
    check(start is not None and abs(start - started) < 120, f"process_start_time_seconds {start}")
    check((value("process_cpu_seconds_total") or -1) >= 0, "process_cpu_seconds_total")
    check(types.get("process_cpu_seconds_total") == "counter", "process_cpu_seconds_total is a counter")
    check((value("hopgate_http_domain_requests_total", kind="proxy", domain=DOMAIN, code="2xx") or 0) >= 4,
          "requests counted under the tunnel's domain")
    check((value("hopgate_http_domain_requests_total", kind="proxy", domain="other", code="4xx") or 0) >= 1,
          "an unknown host counts as domain=\"other\"")
    check((value("hopgate_http_domain_requests_total", kind="admin", domain="localhost", code="2xx") or 0) >= 1,
          "admin API / control-domain requests counted apart (kind=\"admin\")")
    check(value("hopgate_http_domain_requests_total", kind="proxy", domain="localhost") is None,
          "control-domain requests are not counted as proxied")
    check((value("hopgate_http_domain_request_duration_seconds_count", kind="proxy", domain=DOMAIN) or 0) >= 4,
          "duration histogram by domain")
    check((value("hopgate_http_domain_bytes_total", kind="proxy", domain=DOMAIN, direction="out") or 0) >= 4 * 19,
          "bytes by domain")
    check((value("hopgate_tunnel_bytes_total", direction="in") or 0) >= 4 * 19,
          "hopgate_tunnel_bytes_total counts the responses' stream bytes")
    check(value("hopgate_domain_tunnels", domain=DOMAIN) == 1, "hopgate_domain_tunnels{domain} 1")
    check(value("hopgate_tunnels_active", transport=TRANSPORT) == 1, "hopgate_tunnels_active by transport")
    check(value("hopgate_dtls_handshakes_total", result="ok") ==
          value("hopgate_tunnel_handshakes_total", result="ok", transport="dtls"),
          "hopgate_dtls_handshakes_total aliases the dtls handshakes")

    # Every metric of the dashboard and the alert rules is exported.
    sources = [("dashboard", e) for e in dashboard_exprs(os.path.join(SRC, "packaging/grafana/hopgate.json"))]
    sources += [("alerts", e) for e in alert_exprs(os.path.join(SRC, "packaging/prometheus/alerts.yml"))]
    check(len(sources) >= 20, f"{len(sources)} exprs read from the dashboard and the alert rules")
    names = set()
    for where, e in sources:
        found = metric_names(e)
        check(bool(found), f"{where} expr names a metric: {e[:80]}")
        for n in found:
            names.add((where, n))
    missing = sorted(f"{w}: {n}" for w, n in names if not exported(n, types, samples))
    check(not missing, f"{len(names)} metric references all exported (missing: {missing})")
    # The rules file is valid for Prometheus itself (syntax, PromQL, templates).
    promtool = shutil.which("promtool")
    if check(promtool is not None, "promtool is installed (Debian prometheus, scripts/install-deps.sh)"):
        r = subprocess.run([promtool, "check", "rules", os.path.join(SRC, "packaging/prometheus/alerts.yml")],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"promtool check rules: {(r.stdout + r.stderr).strip()[-200:]}")

    # The tunnel going away: the per-domain gauge drops to 0 (the alert's condition).
    gw.terminate(gw.procs[-1], "hopgate-client")
    deadline = time.time() + 20
    zero = False
    while time.time() < deadline and not zero:
        time.sleep(0.3)
        _, s2 = parse_exposition(gw.request("GET", "/metrics", "localhost")[1].decode())
        zero = any(l.get("domain") == DOMAIN and v == 0 for l, v in s2.get("hopgate_domain_tunnels", []))
    check(zero, "hopgate_domain_tunnels drops to 0 when the client leaves")
    st, _ = gw.admin("POST", "/api/v1/admin/domains/unregister",
                     {"domain": DOMAIN, "client_api_key": reg["client_api_key"]})
    check(st == 200, "unregister the domain")
    gone = False
    deadline = time.time() + 10
    while time.time() < deadline and not gone:
        _, s3 = parse_exposition(gw.request("GET", "/metrics", "localhost")[1].decode())
        gone = not any(l.get("domain") == DOMAIN for l, _ in s3.get("hopgate_domain_tunnels", []))
        time.sleep(0.2)
    check(gone, "an unregistered domain's hopgate_domain_tunnels series goes (no stale alert)")
finally:
    gw.stop_all()
    local.shutdown()
gw.finish()
