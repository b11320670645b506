#!/usr/bin/env python3
"""Memory of hopgate-server under visitor connections (issue 14 item 11): the real server and
client on loopback with a small local HTTP service, one tunnel transport.

  1. idle visitors: N TLS connections, each with one completed proxied request (a GET of 5 bytes,
     then a second set with a 256 KiB POST), kept open and idle. Prints the server's RSS growth
     per connection, (RSS_after - RSS_before) / N, and the RSS once they closed. Then the same
     for N TCP connections that send nothing and N handshakes that stop after their ClientHello.
  2. flood: F connections held open at once (mostly TLS with one request; some only TCP, some
     stuck after their ClientHello), then all closed. Prints the RSS before, at the peak and
     a few seconds after they closed (ratio to the pre-flood value).

Not a test: it prints figures (targets: <= 24 KiB per idle connection, RSS after the flood within
2x the pre-flood value). Usage:
  bench/memory_bench.py <bin-dir> [--conns N] [--flood F] [--transport tls|dtls] [--settle S]
All traffic is on 127.0.0.1; every wait is bounded."""
import argparse, asyncio, http.server, json, os, resource, signal, socket, ssl, subprocess
import sys, tempfile, threading, time, shutil

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--conns", type=int, default=2000)
ap.add_argument("--flood", type=int, default=10000)
ap.add_argument("--transport", default="tls")
ap.add_argument("--settle", type=float, default=6.0, help="seconds after the flood closes")
ap.add_argument("--pause", type=float, default=0,
                help="seconds to wait with the idle connections open (to inspect the server)")
ap.add_argument("--env", action="append", default=[], help="extra NAME=VALUE for the server")
args = ap.parse_args()
args.bin = os.path.abspath(args.bin)

# Both processes need a descriptor per connection (the server inherits this limit).
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = max(args.conns * 2, args.flood) + 1000
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
if soft < want:
    print(f"memory_bench: RLIMIT_NOFILE is {soft}, {want} wanted: flood and connections shrink")
    args.flood = min(args.flood, soft - 500)
    args.conns = min(args.conns, (soft - 500) // 2)

ADMIN_KEY = "mem-bench-admin-key-0123456789abcdef"
DOMAIN = "mem.example.com"
KIB = 1024


class Local(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        while n > 0:
            n -= len(self.rfile.read(min(n, 65536)) or b"x" * n)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


local = Server(("127.0.0.1", 0), Local)
threading.Thread(target=local.serve_forever, daemon=True).start()

work = tempfile.mkdtemp(prefix="hopgate-mem-bench.")
procs = []


def start(argv, log, env=None):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(os.path.join(work, log), "ab"),
                         cwd=work, env=env)
    procs.append(p)
    return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def settle_rss(pid, seconds):
    """RSS after `seconds`, sampled every 0.5 s; returns (last, min)."""
    end = time.time() + seconds
    lo = rss_kib(pid)
    cur = lo
    while time.time() < end:
        time.sleep(0.5)
        cur = rss_kib(pid)
        lo = min(lo, cur)
    return cur, lo


env = dict(os.environ, HOP_SERVER_MAX_CONNECTIONS=str(max(args.flood, args.conns * 2) + 100),
           HOP_LOG_LEVEL="warn")
for kv in args.env:
    k, _, v = kv.partition("=")
    env[k] = v
server = start([f"{args.bin}/hopgate-server", "--http-listen", "127.0.0.1:0", "--https-listen",
                "127.0.0.1:0", "--dtls-listen", "127.0.0.1:0", "--tunnel-listen", "127.0.0.1:0",
                "--admin-api-key", ADMIN_KEY, "--db-dsn", f"sqlite://{work}/hg.db",
                "--cert-dir", work,
                # every visitor comes from 127.0.0.1: no per-source limits in this benchmark
                "--max-connections-per-source", "0", "--buffer-share-source-percent", "100"],
               "server.log", env)
ports = json.loads(server.stdout.readline())
HTTPS = ports["https"]
ctx = ssl.create_default_context(cafile=ports["certificate"])
ctx.check_hostname = False


def sync_request(method, path, host, body=None, headers=None):
    import http.client
    c = http.client.HTTPSConnection("127.0.0.1", HTTPS, context=ctx, timeout=10)
    try:
        h = {"Host": host}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def fail(msg):
    print("memory_bench: " + msg, file=sys.stderr)
    cleanup()
    for name in sorted(os.listdir(work)):
        if name.endswith(".log"):
            print(f"--- {name}\n" + open(os.path.join(work, name), errors="replace").read()[-3000:])
    sys.exit(1)


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


st, d = sync_request("POST", "/api/v1/admin/domains/register", "localhost",
                     json.dumps({"domain": DOMAIN, "memo": "bench"}),
                     {"Authorization": "Bearer " + ADMIN_KEY, "Content-Type": "application/json"})
if st != 201:
    fail(f"register: {st} {d!r}")
key = json.loads(d)["client_api_key"]
start([f"{args.bin}/hopgate-client", "--server-addr", f"127.0.0.1:{ports['dtls']}",
       "--server-tls-port", str(ports["tunnel"]), "--server-name", "localhost", "--domain", DOMAIN,
       "--api-key", key, "--transport", args.transport,
       "--local-target", f"127.0.0.1:{local.server_address[1]}",
       "--ca-file", ports["certificate"]], "client.log")
deadline = time.time() + 20
while time.time() < deadline:
    try:
        if sync_request("GET", "/", DOMAIN)[0] == 200:
            break
    except OSError:
        pass
    time.sleep(0.2)
else:
    fail("the tunnel did not come up")

POST_BODY = b"p" * (256 * KIB)


async def visit(method, body, hold):
    """One TLS connection with one request; returns the writer (open) or closes it."""
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", HTTPS, ssl=ctx,
                                                          server_hostname="localhost"), 30)
    head = f"{method} /x HTTP/1.1\r\nHost: {DOMAIN}\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    w.write(head.encode() + b"\r\n" + (body or b""))
    await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
    # Both answers are tiny (Content-Length 5 or 2): read the body too.
    await asyncio.wait_for(r.readexactly(2 if method == "POST" else 5), 30)
    if hold:
        return (r, w)
    w.close()
    return None


async def stall_tcp():
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", HTTPS), 30)
    return (r, w)


def client_hello():
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


async def stall_handshake():
    """Sends a ClientHello and never answers the server's flight."""
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", HTTPS), 30)
    w.write(client_hello())
    return (r, w)


async def gather_bounded(factories, parallel=64):
    sem = asyncio.Semaphore(parallel)
    errors = 0

    async def one(f):
        nonlocal errors
        async with sem:
            try:
                return await f()
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
                errors += 1
                return None

    res = await asyncio.gather(*(one(f) for f in factories))
    return [x for x in res if x is not None], errors


async def close_all(held):
    for _, w in held:
        w.close()
    await asyncio.sleep(0.5)


def fmt_kib(k):
    return f"{k / 1024:.1f} MiB"


async def main():
    pid = server.pid
    rows = []
    # Warm-up: the allocator's arenas, OpenSSL's tables, the tunnel's buffers.
    held, _ = await gather_bounded([lambda: visit("GET", None, False)] * 200)
    held, _ = await gather_bounded([lambda: visit("POST", POST_BODY, False)] * 50)
    start_rss, _ = settle_rss(pid, 2)
    rows.append(("server after start and 250 requests", fmt_kib(start_rss), ""))

    for label, method, body in (("GET 5 B", "GET", None), ("POST 256 KiB", "POST", POST_BODY)):
        before, _ = settle_rss(pid, 2)
        t0 = time.time()
        held, errors = await gather_bounded(
            [lambda m=method, b=body: visit(m, b, True)] * args.conns)
        after, _ = settle_rss(pid, 2)
        if args.pause:
            print(f"memory_bench: {len(held)} idle connections open, server pid {pid}", flush=True)
            await asyncio.sleep(args.pause)
        per = (after - before) / max(1, len(held))
        rows.append((f"idle kept-alive visitor after one {label}", f"{per:.1f} KiB / connection",
                     f"{len(held)} conns ({errors} failed) in {time.time() - t0:.1f} s, "
                     f"RSS {fmt_kib(before)} -> {fmt_kib(after)}"))
        await close_all(held)
        closed, _ = settle_rss(pid, args.settle)
        rows.append(("  ... those connections closed", fmt_kib(closed),
                     f"{args.settle:.0f} s after closing"))

    # Connections that send nothing, and handshakes that stop after the ClientHello (both cut by
    # the header timeout, 10 s by default).
    for label, factory in (("TCP connection that sends nothing", stall_tcp),
                           ("handshake stalled after its ClientHello", stall_handshake)):
        before, _ = settle_rss(pid, 1)
        stalled, errors = await gather_bounded([factory] * args.conns, 256)
        after, _ = settle_rss(pid, 1)
        rows.append((label, f"{(after - before) / max(1, len(stalled)):.1f} KiB / connection",
                     f"{len(stalled)} conns ({errors} failed), RSS {fmt_kib(before)} -> "
                     f"{fmt_kib(after)}"))
        await close_all(stalled)
        settle_rss(pid, args.settle)

    # Flood: held at once, then closed.
    pre = rss_kib(pid)
    n_tcp = args.flood // 10
    n_hello = args.flood // 10
    n_tls = args.flood - n_tcp - n_hello
    t0 = time.time()
    stalled, e1 = await gather_bounded([stall_tcp] * n_tcp + [stall_handshake] * n_hello, 256)
    held, e2 = await gather_bounded([lambda: visit("GET", None, True)] * n_tls)
    took = time.time() - t0
    peak = rss_kib(pid)
    await close_all(held + stalled)
    after, lo = settle_rss(pid, args.settle)
    rows.append((f"flood of {args.flood} connections",
                 f"{after / pre:.2f}x pre-flood, {after / start_rss:.2f}x start",
                 f"{len(held)} TLS+request, {len(stalled)} stalled (TCP / ClientHello); "
                 f"{e1 + e2} failed; opened in {took:.1f} s; RSS {fmt_kib(pre)} -> peak "
                 f"{fmt_kib(peak)} -> {fmt_kib(after)} {args.settle:.0f} s after closing"))
    return rows


try:
    rows = asyncio.run(main())
    print(f"memory_bench: hopgate-server {args.bin}, tunnel {args.transport}, "
          f"{os.cpu_count()} cores")
    for what, figure, detail in rows:
        print(f"  {what:46s} {figure:30s} {detail}")
finally:
    cleanup()
    bad = [p for p in procs if p.returncode not in (0, None)]
    if bad:
        print("memory_bench: a process did not exit 0: " +
              ", ".join(f"{p.args[0]} {p.returncode}" for p in bad), file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
