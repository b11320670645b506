#!/usr/bin/env python3
"""Memory of the real hopgate-server at the public edge (issue 14 item 11), no tunnel needed:

  a. 1000 idle kept-alive TLS visitors, each after one completed request: the server's RSS grows
     by less than 40 KiB per connection (it was ~70 KiB: Asio's TLS stream keeps ~68 KiB of
     BIO-pair and staging buffers per connection; now OpenSSL's record buffers are released
     while a connection is idle and the SSL reads the socket itself).
  b. a flood on top: 2000 more TLS visitors with one request each, 300 TCP connections that never
     start TLS and 300 that stop after their ClientHello, all held at once; then everything closes.
     Within 20 s the server's RSS is back under the pre-flood value + 40 MiB (it stayed at the
     peak, +150-200 MiB: glibc keeps freed memory in its arenas; the server now trims it).
  c. the server still answers, and exits 0 on SIGTERM.

Bounds are on memory only (no timing assertions); they are generous on purpose. Usage:
e2e_edge_memory_test.py <bin-dir>. HG_SANITIZED=1 (ASan builds) only reports the figures.
Every wait is bounded; exits non-zero on failure."""
import asyncio, resource, ssl, sys, time

from hg_e2e import Gateway, check

BIN = sys.argv[1]
SANITIZED = __import__("os").environ.get("HG_SANITIZED") is not None
ADMIN_KEY = "mem-admin-key-0123456789abcdef"
HOST = "nobody.example.com"  # no such domain: a 404 page, and the connection stays open
KIB = 1024
N_IDLE, N_FLOOD, N_TCP, N_HELLO = 1000, 2000, 300, 300
PER_CONN_LIMIT_KIB = 40
AFTER_FLOOD_LIMIT_KIB = 40 * 1024

# Each side needs a descriptor per connection (the server inherits this limit).
want = N_IDLE + N_FLOOD + N_TCP + N_HELLO + 500
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    soft = min(want, hard)
if soft < want:  # a small hard limit: fewer connections, same bounds
    scale = (soft - 500) / (want - 500)
    N_IDLE, N_FLOOD = int(N_IDLE * scale), int(N_FLOOD * scale)
    N_TCP, N_HELLO = int(N_TCP * scale), int(N_HELLO * scale)
    print(f"note: RLIMIT_NOFILE {soft}: {N_IDLE} idle and {N_FLOOD} flood connections")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


gw = Gateway(BIN, "hopgate-e2e-memory.", ADMIN_KEY)
errors = {"n": 0}


async def visit(ctx, port, hold):
    """A TLS connection with one completed request (404 page read to its end)."""
    r, w = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 30)
    w.write(f"GET /x HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await asyncio.wait_for(r.readexactly(length), 30)
    if not hold:
        w.close()
        return None
    return w


async def stall_tcp(port):
    _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
    return w


def client_hello(ctx):
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


async def stall_hello(port, hello):
    """Sends a ClientHello and never answers the server's flight."""
    _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
    w.write(hello)
    return w


async def bounded(factories, parallel=64):
    sem = asyncio.Semaphore(parallel)

    async def one(f):
        async with sem:
            try:
                return await f()
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
                errors["n"] += 1
                return None

    return [w for w in await asyncio.gather(*(one(f) for f in factories)) if w is not None]


def settle(pid, seconds=1.5):
    time.sleep(seconds)
    return rss_kib(pid)


async def main(server):
    pid, port, ctx = server.pid, gw.ports["https"], gw.ctx
    await bounded([lambda: visit(ctx, port, False)] * 200)  # warm-up: arenas, OpenSSL tables
    base = settle(pid)

    # a. idle kept-alive visitors
    idle = await bounded([lambda: visit(ctx, port, True)] * N_IDLE)
    grown = settle(pid)
    per = (grown - base) / max(1, len(idle))
    print(f"RSS {base / KIB:.1f} MiB -> {grown / KIB:.1f} MiB with {len(idle)} idle visitors: "
          f"{per:.1f} KiB each")
    check(len(idle) >= N_IDLE * 0.95, f"{len(idle)}/{N_IDLE} idle visitors connected")
    check(SANITIZED or per < PER_CONN_LIMIT_KIB,
          f"an idle kept-alive TLS visitor costs {per:.1f} KiB of server RSS "
          f"(< {PER_CONN_LIMIT_KIB})")

    # b. the flood on top, then everything closes
    hello = client_hello(ctx)
    stalled = await bounded([lambda: stall_tcp(port)] * N_TCP +
                            [lambda: stall_hello(port, hello)] * N_HELLO, 128)
    flood = await bounded([lambda: visit(ctx, port, True)] * N_FLOOD)
    peak = rss_kib(pid)
    print(f"flood: {len(flood)} TLS visitors + {len(stalled)} stalled handshakes held "
          f"({errors['n']} failed to connect); RSS {peak / KIB:.1f} MiB")
    check(len(flood) >= N_FLOOD * 0.95, f"{len(flood)}/{N_FLOOD} flood visitors connected")
    for w in idle + flood + stalled:
        w.close()
    await asyncio.sleep(0.5)
    deadline = time.time() + 20
    after = rss_kib(pid)
    while after > base + AFTER_FLOOD_LIMIT_KIB and time.time() < deadline:
        await asyncio.sleep(0.5)
        after = rss_kib(pid)
    print(f"after the flood closed: RSS {after / KIB:.1f} MiB (pre-flood {base / KIB:.1f} MiB, "
          f"peak {peak / KIB:.1f} MiB)")
    check(SANITIZED or after <= base + AFTER_FLOOD_LIMIT_KIB,
          f"RSS back under pre-flood + {AFTER_FLOOD_LIMIT_KIB // KIB} MiB within 20 s "
          f"({(after - base) / KIB:+.1f} MiB)")


try:
    # All visitors come from 127.0.0.1: the per-source cap (256) is lifted for this flood.
    server = gw.start_server(["--max-connections-per-source", "0"],
                             env=dict(__import__("os").environ,
                                      HOP_SERVER_HEADER_TIMEOUT_SECONDS="30"))
    asyncio.run(main(server))
    # c. still serving
    r, _ = gw.request("GET", "/x", HOST, timeout=10)
    check(r.status == 404, f"the server still answers after the flood ({r.status})")
    gw.terminate(server, "hopgate-server")
except Exception as e:  # a set-up step failed: report it with the logs
    check(False, f"unexpected {type(e).__name__}: {e}")
finally:
    gw.stop_all()
gw.finish()
