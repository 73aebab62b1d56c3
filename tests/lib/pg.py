"""A throwaway PostgreSQL cluster for tests: initdb into a temporary
directory, pg_ctl start on a free loopback port (with its own socket
directory), psql for queries, and a stop that always runs.

The server tools refuse to run as root, so as root they run as the
`postgres` user (runuser), which the `postgresql` package creates.  The
binaries come from /usr/lib/postgresql/<version>/bin (the highest version
installed), or from $DATAOPS_PG_BINDIR.

PostgreSQL is a real part of the tests: when it is missing, PgCluster()
raises PgMissing with what to install, and the tests fail rather than skip.
"""
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

SUPERUSER = "postgres"
SEP = "\x1f"
RSEP = "\x1e"
NULL = "\x1dNULL\x1d"


class PgMissing(RuntimeError):
    pass


def bindir():
    env = os.environ.get("DATAOPS_PG_BINDIR")
    if env:
        if not os.path.exists(os.path.join(env, "initdb")):
            raise PgMissing("DATAOPS_PG_BINDIR=%s has no initdb" % env)
        return env
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        m = re.search(r"/postgresql/(\d+)(?:\.(\d+))?/bin$", d)
        if m and os.path.exists(os.path.join(d, "initdb")):
            found.append(((int(m.group(1)), int(m.group(2) or 0)), d))
    if not found:
        raise PgMissing("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb)"
                        ": install the 'postgresql' package (scripts/install-deps.sh test) "
                        "or set DATAOPS_PG_BINDIR")
    return sorted(found)[-1][1]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """One cluster for a test module.  hba_extra lines go before the
    trusting ones (for password tests)."""

    def __init__(self, hba_extra=()):
        self.bin = bindir()
        self.dir = tempfile.mkdtemp(prefix="dataops-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "server.log")
        self.port = None
        self.started = False
        self.as_user = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PgMissing("running as root needs the 'postgres' user to run the server "
                                "(it comes with the 'postgresql' package)") from None
            self.as_user = "postgres"
            os.chmod(self.dir, 0o755)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        try:
            self._tool("initdb", "-D", self.data, "-A", "trust", "-U", SUPERUSER,
                       "-E", "UTF8", "--locale=C", "--no-sync")
            self._mkdir(self.sock)
            with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
                f.write("local all all trust\n")
                for line in hba_extra:
                    f.write(line + "\n")
                f.write("host all all 127.0.0.1/32 trust\n")
            self._start()
        except BaseException:
            self.stop()
            raise

    def _cmd(self, tool, *args):
        cmd = [os.path.join(self.bin, tool)] + list(args)
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--"] + cmd
        return cmd

    def _tool(self, tool, *args, check=True):
        p = subprocess.run(self._cmd(tool, *args), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed (exit %d):\n%s" % (tool, p.returncode, p.stdout))
        return p

    def _mkdir(self, path):
        os.makedirs(path, exist_ok=True)
        if self.as_user:
            pw = pwd.getpwnam(self.as_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _start(self):
        last = ""
        for _ in range(5):
            self.port = free_port()
            opts = ("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=50" % (self.sock, self.port))
            p = self._tool("pg_ctl", "-D", self.data, "-w", "-t", "60", "-l", self.log,
                           "-o", opts, "start", check=False)
            if p.returncode == 0:
                self.started = True
                return
            last = p.stdout + self.server_log()
        raise RuntimeError("pg_ctl start failed:\n" + last)

    def server_log(self):
        try:
            with open(self.log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.started:
            self._tool("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- connections ---

    def url(self, db="postgres", user=SUPERUSER, password=None, query=""):
        auth = user if password is None else "%s:%s" % (user, password)
        return "postgresql://%s@127.0.0.1:%d/%s%s" % (auth, self.port, db, query)

    def psql_cmd(self, db="postgres"):
        return [os.path.join(self.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", db]

    def psql_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGTZ"] = "UTC"
        env["PGCONNECT_TIMEOUT"] = "10"
        return env

    def query(self, sql, db="postgres"):
        """Rows of the last statement as tuples of str (None for NULL)."""
        p = subprocess.run(self.psql_cmd(db) + ["-A", "-t", "-F", SEP, "-R", RSEP,
                                                "-P", "null=" + NULL, "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=self.psql_env(), timeout=60)
        if p.returncode != 0:
            raise RuntimeError("psql failed on %r:\n%s" % (sql[:200], p.stderr))
        # No rows print nothing; otherwise rows end with one newline (so a
        # row holding one empty string is told from no row at all).
        if p.stdout == "":
            return []
        text = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout
        return [tuple(None if v == NULL else v for v in line.split(SEP))
                for line in text.split(RSEP)]

    def value(self, sql, db="postgres"):
        rows = self.query(sql, db)
        return rows[0][0] if rows else None

    def execute(self, sql, db="postgres"):
        self.query(sql, db)

    def create_db(self, name):
        self.execute('DROP DATABASE IF EXISTS "%s"' % name)
        self.execute('CREATE DATABASE "%s"' % name)
        return name

    def session(self, db="postgres"):
        """An interactive psql session (for holding locks): write SQL lines
        to .stdin; close() ends it."""
        return subprocess.Popen(self.psql_cmd(db), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                text=True, env=self.psql_env())

    def wait_for(self, sql, db="postgres", timeout=20.0, interval=0.02):
        """Poll until sql returns a row; return it (None on timeout)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            rows = self.query(sql, db)
            if rows:
                return rows[0]
            time.sleep(interval)
        return None
