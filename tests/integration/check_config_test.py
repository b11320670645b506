#!/usr/bin/env python3
"""`hopgate-server check-config` and `hopgate-client check-config` as an operator runs them
before a restart: exit 0 and the effective configuration with secrets masked when everything is
fine; exit 1 with a FAIL line naming the setting for a busy port, a certificate that does not match
its key or does not cover the names, a bad CIDR list, an unreadable CA file; nothing written.
Usage: check_config_test.py <bin-dir>."""
import os, shutil, socket, subprocess, sys, tempfile

BIN = os.path.abspath(sys.argv[1])
from hg_e2e import check, failures


work = tempfile.mkdtemp(prefix="hopgate-check-config-")
env = {k: v for k, v in os.environ.items() if not k.startswith("HOP_")}


def run(binary, *args):
    return subprocess.run([f"{BIN}/{binary}", "check-config", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=60)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


ports = [free_port(), free_port(), free_port(socket.SOCK_DGRAM), free_port()]
base = ["--http-listen", f"127.0.0.1:{ports[0]}", "--https-listen", f"127.0.0.1:{ports[1]}",
        "--dtls-listen", f"127.0.0.1:{ports[2]}", "--tunnel-listen", f"127.0.0.1:{ports[3]}",
        "--admin-api-key", "check-config-secret-0123456789", "--db-dsn", f"sqlite://{work}/hg.db",
        "--cert-dir", work]

r = run("hopgate-server", *base)
check(r.returncode == 0 and "check-config: ok" in r.stdout, f"a valid configuration -> exit 0 ({r.returncode})")
check("check-config-secret" not in r.stdout + r.stderr and "HOP_ADMIN_API_KEY=<redacted>" in r.stdout,
      "the effective configuration is printed with secrets masked")
check(f"HOP_SERVER_HTTPS_LISTEN=127.0.0.1:{ports[1]} (from --https-listen)" in r.stdout,
      "each setting says where it came from")
check(not os.path.exists(os.path.join(work, "hg.db")) and "does not exist yet" in r.stdout,
      "a missing SQLite database is reported, not created")
check(not os.path.exists(os.path.join(work, "hopgate-selfsigned.crt")), "no certificate written")

busy = socket.socket()
busy.bind(("127.0.0.1", ports[1]))
busy.listen()
r = run("hopgate-server", *base)
check(r.returncode == 1 and f"FAIL HTTPS listener 127.0.0.1:{ports[1]} (HOP_SERVER_HTTPS_LISTEN)" in r.stdout,
      f"a busy HTTPS port -> exit 1 naming the listener ({[l for l in r.stdout.splitlines() if l.startswith('FAIL')]})")
busy.close()
budp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
budp.bind(("127.0.0.1", ports[2]))
r = run("hopgate-server", *base)
check(r.returncode == 1 and "FAIL DTLS listener" in r.stdout, "a busy DTLS (UDP) port -> exit 1")
budp.close()

# Certificates: a pair that does not match, and a pair that does not cover the control domain.
def pem(name, days=30):
    key, crt = os.path.join(work, name + ".key"), os.path.join(work, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", str(days), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True)
    return crt, key


a_crt, a_key = pem("gw.example.com")
b_crt, b_key = pem("other.example.com")
r = run("hopgate-server", *base, "--domain", "gw.example.com", "--tls-cert", a_crt, "--tls-key", a_key)
check(r.returncode == 0 and "certificate covers" in r.stdout, "a matching certificate for the control domain -> ok")
r = run("hopgate-server", *base, "--domain", "gw.example.com", "--tls-cert", a_crt, "--tls-key", b_key)
check(r.returncode == 1 and "FAIL HOP_SERVER_TLS_CERT/HOP_SERVER_TLS_KEY" in r.stdout,
      "a key that does not match the certificate -> exit 1")
r = run("hopgate-server", *base, "--domain", "gw.example.com", "--tls-cert", b_crt, "--tls-key", b_key)
check(r.returncode == 1 and "does not cover gw.example.com" in r.stdout,
      "a certificate that does not cover the control domain -> exit 1")
short_crt, short_key = pem("gw.example.com", days=3)
r = run("hopgate-server", *base, "--domain", "gw.example.com", "--tls-cert", short_crt, "--tls-key", short_key)
check(r.returncode == 0 and "warn certificate" in r.stdout, "a certificate expiring within 14 days -> a warning")
r = run("hopgate-server", *base, "--admin-allow-cidrs", "10.0.0.0/33")
check(r.returncode == 1 and "FAIL HOP_ADMIN_ALLOW_CIDRS" in r.stdout, "a bad CIDR list -> exit 1 naming it")
r = run("hopgate-server", *base, "--db-dsn", "postgres://hop:pw-secret@127.0.0.1:1/x")
check(r.returncode == 1 and "FAIL database PostgreSQL" in r.stdout and "pw-secret" not in r.stdout,
      "an unreachable database -> exit 1, password masked")

# The client.
cbase = ["--server-addr", "127.0.0.1:4433", "--domain", "app.example.com", "--api-key",
         "client-secret-0123456789", "--local-target", "127.0.0.1:8080", "--ca-file", a_crt]
r = run("hopgate-client", *cbase)
check(r.returncode == 0 and "check-config: ok" in r.stdout and "client-secret" not in r.stdout,
      f"client: a valid configuration -> exit 0, secrets masked ({r.stdout[-300:]}{r.stderr[-300:]})")
r = run("hopgate-client", *cbase[:-1], os.path.join(work, "missing.pem"))
check(r.returncode == 1 and "FAIL HOP_CLIENT_CA_FILE" in r.stdout, "client: a missing CA file -> exit 1")
r = run("hopgate-client", "--server-addr", "127.0.0.1:4433", "--domain", "app.example.com",
        "--api-key", "k", "--local-target", "nonsense")
check(r.returncode == 1 and "HOP_CLIENT_LOCAL_TARGET" in r.stdout + r.stderr, "client: a bad local target -> exit 1")

if not failures:
    shutil.rmtree(work, ignore_errors=True)
print(f"{len(failures)} failed" if failures else "all checks passed")
sys.exit(1 if failures else 0)
