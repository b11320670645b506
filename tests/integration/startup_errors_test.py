#!/usr/bin/env python3
"""Start-up errors of hopgate-server as an operator meets them: each bad certificate setting ends
the process with exit 1 and one line on stderr that names the setting, the value and the
operating system's reason, and nothing (no hopgate.db) is written before the configuration is
valid. Usage: startup_errors_test.py <bin-dir>."""
import os, subprocess, sys, tempfile

BIN = os.path.abspath(sys.argv[1])
from hg_e2e import check, failures


work = tempfile.mkdtemp(prefix="hopgate-startup-")
garbage = os.path.join(work, "garbage.pem")
with open(garbage, "w") as f:
    f.write("not a certificate\n")
listen = ["--http-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0",
          "--dtls-listen", "127.0.0.1:0", "--tunnel-listen", "127.0.0.1:0"]
cases = [
    (["--tls-cert", garbage], ["HOP_SERVER_TLS_CERT", "--tls-key", "is not"]),
    (["--tls-key", garbage], ["HOP_SERVER_TLS_KEY", "--tls-cert", "is not"]),
    (["--tls-cert", "/nonexistent/c.pem", "--tls-key", garbage],
     ["--tls-cert", "/nonexistent/c.pem", "No such file or directory"]),
    (["--tls-cert", work, "--tls-key", garbage], ["--tls-cert", work, "is a directory"]),
    (["--tls-cert", garbage, "--tls-key", garbage], ["--tls-cert", "no certificate found"]),
]
for args, want in cases:
    r = subprocess.run([f"{BIN}/hopgate-server", *listen, *args], cwd=work, capture_output=True,
                       text=True, timeout=30)
    err = r.stderr.strip()
    check(r.returncode == 1 and all(w in err for w in want) and "/usr/include" not in err,
          f"{' '.join(args)} -> exit 1 naming {want} (exit {r.returncode}: {err[-300:]})")
    check(not os.path.exists(os.path.join(work, "hopgate.db")),
          "no database file written by a start-up that failed")

# A misspelt setting (HOP_LOKKI_*), one of the original project that does nothing here, and ACME settings without a CA: a
# server that starts anyway says so on its first lines, then stops cleanly on SIGTERM.
import json, signal, time
env = dict(os.environ, HOP_ACME_EMAIL="ops@example.com", HOP_LOKKI_ENABLE="true",
           HOP_DB_MAXOPEN="3")
log_path = os.path.join(work, "warn.log")
p = subprocess.Popen([f"{BIN}/hopgate-server", *listen, "--db-dsn", f"sqlite://{work}/w.db",
                      "--cert-dir", work], cwd=work, env=env, stdout=subprocess.PIPE,
                     stderr=open(log_path, "wb"))
ports = p.stdout.readline()
time.sleep(0.3)
lines = [json.loads(l) for l in open(log_path, errors="replace") if l.startswith("{")]
msgs = [l.get("msg", "") for l in lines]
check(any(m.startswith("certificate source: self-signed although ACME settings are present") for m in msgs),
      "ACME settings without HOP_ACME_CA_DIR: a warning names the certificate source and why")
check("environment: unknown key HOP_LOKKI_ENABLE (ignored)" in msgs and
      "environment: unknown key HOP_DB_MAXOPEN (ignored)" in msgs,
      "unknown HOP_* keys in the environment are reported (not only HOP_SERVER_*)")
p.send_signal(signal.SIGTERM)
try:
    code = p.wait(timeout=15)
except subprocess.TimeoutExpired:
    p.kill()
    code = "no exit"
check(code == 0, f"server exits 0 on SIGTERM (status {code})")

if not failures:
    import shutil
    shutil.rmtree(work, ignore_errors=True)
print(f"{len(failures)} failed" if failures else "all checks passed")
sys.exit(1 if failures else 0)
