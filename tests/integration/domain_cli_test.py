#!/usr/bin/env python3
"""`hopgate-server domain ...` as an operator types it: the subcommand parses its own flags
(--memo, --limit, --json) and help, uses the configured database (HOP_DB_DSN from a flag, the
environment or .env) and says on stderr which one. Usage: domain_cli_test.py <bin-dir>."""
import json, os, shutil, subprocess, sys, tempfile

BIN = os.path.abspath(sys.argv[1])
from hg_e2e import check, failures


work = tempfile.mkdtemp(prefix="hopgate-domain-cli-")
env = {k: v for k, v in os.environ.items() if not k.startswith("HOP_")}


def run(*args, extra_env=None):
    e = dict(env)
    e.update(extra_env or {})
    return subprocess.run([f"{BIN}/hopgate-server", *args], cwd=work, env=e, capture_output=True,
                          text=True, timeout=30)


r = run("domain", "add", "app.example.com", "--memo", "team a", "--json")
out = json.loads(r.stdout) if r.returncode == 0 else {}
check(r.returncode == 0 and out.get("domain") == "app.example.com" and len(out.get("client_api_key", "")) == 64
      and out.get("memo") == "team a", f"domain add X --memo T --json -> one JSON object with the key ({r.stdout}{r.stderr})")
check("using database SQLite " + os.path.join(work, "hopgate.db") in r.stderr,
      f"stderr names the database in use ({r.stderr.strip()})")
r = run("domain", "add", "b.example.com")
check(r.returncode == 0, "a second domain")
r = run("domain", "list", "--limit", "1", "--json")
out = json.loads(r.stdout) if r.returncode == 0 else {}
check(r.returncode == 0 and len(out.get("domains", [])) == 1 and out.get("next_after"),
      f"domain list --limit 1 --json -> one page and a cursor ({r.stdout.strip()})")
r = run("domain", "rotate", "app.example.com", "--json")
out = json.loads(r.stdout) if r.returncode == 0 else {}
check(r.returncode == 0 and out.get("domain") == "app.example.com" and len(out.get("client_api_key", "")) == 64,
      f"domain rotate --json -> {{domain, client_api_key}} ({r.stdout.strip()})")
r = run("domain", "--help")
check(r.returncode == 0 and "hopgate-server domain <command>" in r.stdout and "--memo" in r.stdout,
      "domain --help prints the subcommand's help, not the server's")
r = run("domain", "add", "c.example.com", "--bogus")
check(r.returncode == 2 and "--bogus" in r.stderr, f"an unknown subcommand flag is a usage error (exit {r.returncode})")
# The database from a server flag before the subcommand, from the environment and from .env.
r = run("--db-dsn", f"sqlite://{work}/flag.db", "domain", "list", "--json")
check(r.returncode == 0 and json.loads(r.stdout).get("total") == 0 and "flag.db" in r.stderr,
      "--db-dsn before the subcommand selects the database")
r = run("domain", "list", "--json", extra_env={"HOP_DB_DSN": f"sqlite://{work}/env.db"})
check(r.returncode == 0 and "env.db" in r.stderr, "HOP_DB_DSN from the environment")
with open(os.path.join(work, ".env"), "w") as f:
    f.write(f"HOP_DB_DSN=sqlite://{work}/dotenv.db\n")
r = run("domain", "list", "--json")
check(r.returncode == 0 and "dotenv.db" in r.stderr, "HOP_DB_DSN from .env")
r = run("domain", "list", "--json", extra_env={"HOP_DB_DSN": "postgres://hop:s3cret@127.0.0.1:1/x"})
check(r.returncode == 1 and "s3cret" not in r.stderr and "***" in r.stderr,
      f"an unreachable PostgreSQL fails with exit 1 and no password in the message ({r.stderr.strip()[:200]})")

if not failures:
    shutil.rmtree(work, ignore_errors=True)
print(f"{len(failures)} failed" if failures else "all checks passed")
sys.exit(1 if failures else 0)
