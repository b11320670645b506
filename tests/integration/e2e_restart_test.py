#!/usr/bin/env python3
"""A server restart as an operator does it (systemctl restart): hopgate-server with its default
self-signed certificate is stopped with SIGTERM and started again on the same ports, database and
certificate directory. The certificate of the first run is reused (same bytes), so a
hopgate-client that trusts it with --ca-file reconnects by itself and serves again. A start whose
names the stored certificate does not cover generates a new one and says why.

Usage: e2e_restart_test.py <bin-dir> <dtls|tls>. Every wait is bounded."""
import http.server, json, os, sys, threading

from hg_e2e import Gateway, check, start_local_service

BIN, TRANSPORT = sys.argv[1], sys.argv[2]
ADMIN_KEY = "restart-admin-key-0123456789abcdef"
DOMAIN = "app.example.com"



local = start_local_service(b"still here")
gw = Gateway(BIN, "hopgate-restart-", ADMIN_KEY)


def read(path):
    with open(path, "rb") as f:
        return f.read()


try:
    server = gw.start_server()
    ports = dict(gw.ports)
    cert_path = ports["certificate"]
    first_cert = read(cert_path)
    st, body = gw.admin("POST", "/api/v1/admin/domains/register", {"domain": DOMAIN, "memo": "r"})
    key = body.get("client_api_key", "")
    if not check(st == 201 and key, "domain registered"):
        raise SystemExit
    client = gw.start_client(DOMAIN, key, local.server_address[1], TRANSPORT, "client.log")
    check(gw.wait_status("/", DOMAIN, 200, 30), f"tunnel up over {TRANSPORT}")

    # A client that does not trust the self-signed certificate is told what to do.
    untrusting = gw.start([f"{BIN}/hopgate-client", "--server-addr", f"127.0.0.1:{ports['dtls']}",
                           "--server-tls-port", str(ports["tunnel"]), "--domain", DOMAIN,
                           "--api-key", key, "--transport", TRANSPORT,
                           "--local-target", f"127.0.0.1:{local.server_address[1]}"],
                          "client-untrusting.log")
    hint = []
    for _ in range(50):
        hint = [l.get("hint", "") for l in gw.log_lines("client-untrusting.log")
                if l.get("msg") == "connect failed" and "verify" in l.get("error", "")]
        if hint:
            break
        threading.Event().wait(0.2)
    check(hint and "--ca-file" in hint[0] and "--server-name" in hint[0],
          f"a certificate verify failure tells the operator to pass --ca-file / --server-name ({hint[:1]})")
    gw.terminate(untrusting, "client without --ca-file")

    gw.terminate(server, "server (first run)")
    same_ports = ["--http-listen", f"127.0.0.1:{ports['http']}",
                  "--https-listen", f"127.0.0.1:{ports['https']}",
                  "--dtls-listen", f"127.0.0.1:{ports['dtls']}",
                  "--tunnel-listen", f"127.0.0.1:{ports['tunnel']}"]
    server = gw.start_server(same_ports, log_name="server-2.log")
    check(gw.ports["https"] == ports["https"] and gw.ports["dtls"] == ports["dtls"],
          "second run on the same ports")
    check(read(cert_path) == first_cert, "the stored self-signed certificate is reused (same bytes)")
    check(any("reusing" in l.get("msg", "") for l in gw.log_lines("server-2.log")),
          "the server logs that it reuses the stored certificate")
    check(gw.wait_status("/", DOMAIN, 200, 45),
          "the --ca-file client reconnects by itself after the restart and serves again")
    client_log = gw.log_lines("client.log")
    check(not any("verify" in json.dumps(l) for l in client_log),
          "the client never saw a certificate verify failure")

    # New names that the stored certificate does not cover: a new one, with the reason logged.
    gw.terminate(server, "server (second run)")
    server = gw.start_server(same_ports + ["--proxy-domains", "new.example.com"],
                             log_name="server-3.log")
    check(read(cert_path) != first_cert, "a certificate that does not cover the names is replaced")
    why = [l.get("why", "") for l in gw.log_lines("server-3.log")
           if l.get("msg") == "generating a self-signed certificate"]
    check(why and "new.example.com" in why[0], f"the server logs why it generated a new one ({why})")
    gw.terminate(client, "client")
    gw.terminate(server, "server (third run)")
except SystemExit:
    pass
finally:
    gw.stop_all()
    local.shutdown()

gw.finish(3000)
