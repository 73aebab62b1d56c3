"""Shared test harness: the fake exchange as a context manager, a runner for
the dataops binary, and helpers to read the SQLite warehouse and the lake.

Every test gets its own temporary working directory; nothing outside it is
written, and every server is stopped at the end.
"""
import csv
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from decimal import Decimal

SRC = os.environ.get("DATAOPS_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("DATAOPS_BIN") or os.path.join(SRC, "build", "dataops")
DATA = os.path.join(SRC, "tests", "samples", "binance")
FAKE = os.path.join(SRC, "tests", "fakes", "fake_binance.py")

F15M = os.path.join(DATA, "finom-static-klines", "BTCUSDT", "15m", "2023-03-20.json")
F1H = os.path.join(DATA, "finom-static-klines", "BTCUSDT", "1h", "2022-01-01.json")
F1D = os.path.join(DATA, "finom-static-klines", "BTCUSDT", "1d", "2024-01-01.json")
F1M = os.path.join(DATA, "patten-trainer", "BTCUSDT_1m.json")
F5M = os.path.join(DATA, "patten-trainer", "BTCUSDT_5m.json")
CSV1H = os.path.join(DATA, "batmayacagiz", "BTCUSDT-1h-2022-01.csv")

# make asan runs with ASAN_OPTIONS/UBSAN_OPTIONS exitcode=86, so a report is
# never mistaken for an expected failure exit code.
SANITIZER_EXIT = 86

RAW = "raw_binance_btcusdt_spot"
TRANSFORMED = "processed_binance_btcusdt_spot"


def stop_process(proc):
    """SIGTERM a helper server, SIGKILL it after 10 s, close its stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr:
        proc.stderr.close()


def csv_blank_updated_at(data):
    """A lake object's CSV rows (bytes in) with the run's time, the
    updated_at column, blanked: what two runs of the same rows share."""
    rows = list(csv.reader(io.StringIO(data.decode())))
    if rows and "updated_at" in rows[0]:
        i = rows[0].index("updated_at")
        for r in rows[1:]:
            r[i] = "*"
    return rows


def load_rows(path):
    with open(path) as f:
        return json.load(f)


class FakeExchange:
    """tests/fakes/fake_binance.py on a free loopback port."""

    def __init__(self, workdir, data=(), synth=(), now=None, weight_limit=None,
                 faults=(), latency_ms=None, ban_after=None):
        # One port file and request log per fake: a test may start several.
        n = 0
        while os.path.exists(os.path.join(workdir, "fake%s.port" % (n or ""))):
            n += 1
        self.port_file = os.path.join(workdir, "fake%s.port" % (n or ""))
        self.log_path = os.path.join(workdir, "fake%s-requests.jsonl" % (n or ""))
        args = [sys.executable, FAKE, "--port", "0", "--port-file", self.port_file,
                "--request-log", self.log_path]
        for d in data:
            args += ["--data", d]
        for s in synth:
            args += ["--synth", s]
        if now is not None:
            args += ["--now", str(now)]
        if weight_limit is not None:
            args += ["--weight-limit", str(weight_limit)]
        if latency_ms is not None:
            args += ["--latency-ms", str(latency_ms)]
        if ban_after is not None:
            args += ["--ban-after", str(ban_after)]
        for f in faults:
            args += ["--fault", f]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("fake exchange exited: " + self.proc.stderr.read().decode())
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("fake exchange did not start")
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def control(self, path, method="POST"):
        req = urllib.request.Request(self.url + "/_control/" + path, method=method, data=b""
                                     if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode())

    def set_now(self, ms):
        return self.control("now?ms=%d" % ms)

    def add_fault(self, spec):
        return self.control("fault?spec=" + urllib.request.quote(spec, safe=""))

    def stats(self):
        return self.control("stats", method="GET")

    def requests(self, path_suffix=None):
        if not os.path.exists(self.log_path):
            return []
        out = []
        with open(self.log_path) as f:
            for line in f:
                r = json.loads(line)
                if path_suffix is None or r["path"].endswith(path_suffix):
                    out.append(r)
        return out

    def stop(self):
        stop_process(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Result:
    def __init__(self, proc, out, err):
        self.code = proc.returncode
        self.out = out
        self.err = err

    def __repr__(self):
        return "exit %s\nstdout:\n%s\nstderr:\n%s" % (self.code, self.out, self.err[-4000:])


class PipelineTest(unittest.TestCase):
    """A temporary working directory per test, and helpers to run dataops in it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="dataops-test-")
        self.fakes = []

    def tearDown(self):
        for f in self.fakes:
            f.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def fake(self, **kw):
        f = FakeExchange(self.dir, **kw)
        self.fakes.append(f)
        return f

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith("DATAOPS_") or k.startswith("BIGQUERY_") or k in (
                   "BINANCE_BASE_URL", "GCS_BUCKET_NAME", "GCS_BUCKET_PROJECT_NAME",
                   "PROJECT_ID", "GOOGLE_APPLICATION_CREDENTIALS"))}
        env["DATAOPS_LOG_FORMAT"] = "json"
        env["DATAOPS_HTTP_RETRIES"] = env.get("DATAOPS_HTTP_RETRIES", "3")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run_dataops(self, *args, env=None, timeout=300, cwd=None, **envkw):
        e = env if env is not None else self.env(**envkw)
        p = subprocess.Popen([BIN] + list(args), cwd=cwd or self.dir, env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=timeout)
        if p.returncode == SANITIZER_EXIT:
            raise AssertionError("sanitizer report from dataops %s:\n%s" % (args, err[-6000:]))
        return Result(p, out, err)

    def db(self, path=None):
        path = path or os.path.join(self.dir, "data", "warehouse.db")
        return sqlite3.connect(path)

    def query(self, sql, *params, path=None):
        con = self.db(path)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def count(self, table=RAW, path=None):
        return self.query('SELECT count(*) FROM "%s"' % table, path=path)[0][0]

    def lake_files(self, sub=""):
        root = os.path.join(self.dir, "data", "lake", sub)
        out = []
        for d, _, files in os.walk(root):
            for f in files:
                out.append(os.path.relpath(os.path.join(d, f), root))
        return sorted(out)

    def log_events(self, result):
        events = []
        for line in result.err.splitlines():
            line = line.strip()
            if line.startswith("{"):
                events.append(json.loads(line))
        return events


def rollup(rows, bucket_of):
    """Roll klines up into larger candles, exactly, in Decimal arithmetic
    (open = first open, close = last close, high = max, low = min, volumes
    and trade counts summed, close_time of the last row)."""
    out = []
    cur = None
    for r in rows:
        b = bucket_of(r[0])
        if cur is None or cur[0] != b:
            if cur:
                out.append(cur[1])
            cur = (b, [b, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], "0"])
            continue
        c = cur[1]
        if Decimal(r[2]) > Decimal(c[2]):
            c[2] = r[2]
        if Decimal(r[3]) < Decimal(c[3]):
            c[3] = r[3]
        c[4] = r[4]
        for i in (5, 7, 9, 10):
            s = Decimal(c[i]) + Decimal(r[i])
            c[i] = "%.8f" % s
        c[6] = r[6]
        c[8] = c[8] + r[8]
    if cur:
        out.append(cur[1])
    return out


def plan_holes(out):
    """The holes in `dataops plan`'s table: (from, to, candles) per line."""
    holes = [tuple(f[3:6]) for f in (line.split() for line in out.splitlines())
             if len(f) >= 11 and f[2] == "hole"]
    return [(a, b, int(n)) for a, b, n in holes]


def write_rows(path, rows):
    with open(path, "w") as f:
        json.dump(rows, f, separators=(",", ":"))
    return path
