#!/usr/bin/env python3
"""Fault injection, end to end: a run SIGKILLed at every fail point converges
on the next run to exactly the tables of an uninterrupted run; one run at a
time per warehouse (exit 4 or wait); SIGTERM stops cleanly; planted secrets
never reach any output."""
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import BIN, F15M, RAW, TRANSFORMED, PipelineTest, load_rows  # noqa: E402

START = 1577836800000   # 2020-01-01
N1M = 2500
WEEK = load_rows(F15M)
NOW = WEEK[-1][6] + 1        # every candle of both data sets has closed

FAILPOINTS = [
    "extract.page",
    "lake.raw.written",
    "wh.raw.inside",
    "wh.raw.committed",
    "lake.transformed.written",
    "wh.transformed.inside",
    "wh.transformed.committed",
    "metadata.write",
]

RAW_COLS = ('symbol, "interval", utc_datetime, open_time, "open", high, low, "close", volume, '
            'close_time, quote_asset_volume, number_of_trades, taker_buy_base_asset_volume, '
            'taker_buy_quote_asset_volume, "ignore"')
T_COLS = ('symbol, "interval", utc_datetime, open_time, "open", high, low, "close", volume, '
          'close_time, quote_asset_volume, number_of_trades, taker_buy_base_asset_volume, '
          'taker_buy_quote_asset_volume, "ignore", utc_singapore_datetime')


class CrashTest(PipelineTest):
    def setUp(self):
        super().setUp()
        self.fx = self.fake(data=["BTCUSDT:15m:" + F15M],
                            synth=["ETHUSDT:1m:%d:%d" % (START, N1M)], now=NOW)

    def go(self, db, failpoint=None):
        env = dict(BINANCE_BASE_URL=self.fx.url, DATAOPS_BATCH_ROWS="1000",
                   DATAOPS_WAREHOUSE=db, DATAOPS_LAKE=db + ".lake")
        if failpoint:
            env["DATAOPS_FAILPOINT"] = failpoint
        return self.run_dataops("run", "--symbols", "ETHUSDT,BTCUSDT", "--intervals", "1m,15m",
                                "--start", str(START), **env)

    def tables(self, db):
        raw = self.query("SELECT %s FROM %s ORDER BY 1, 2, 4" % (RAW_COLS, RAW), path=db)
        tr = self.query("SELECT %s FROM %s ORDER BY 1, 2, 4" % (T_COLS, TRANSFORMED), path=db)
        return raw, tr

    def run_ids(self, db):
        """The runs recorded as 'running' in db (none when it or its run table
        is missing)."""
        if not os.path.exists(db) or not self.query(
                "SELECT 1 FROM sqlite_master WHERE name = 'dataops_runs'", path=db):
            return []
        return self.query("SELECT run_id FROM dataops_runs WHERE status = 'running'", path=db)

    def test_kill_at_every_failpoint_then_converge(self):
        clean = os.path.join(self.dir, "clean.db")
        r = self.go(clean)
        self.assertEqual(r.code, 0, r)
        want = self.tables(clean)
        self.assertEqual(len(want[0]), N1M + len(WEEK))
        self.assertEqual(len(want[1]), N1M + len(WEEK))
        for fp in FAILPOINTS:
            with self.subTest(failpoint=fp):
                db = os.path.join(self.dir, "wh-%s.db" % fp)
                r = self.go(db, failpoint=fp)
                self.assertEqual(r.code, -signal.SIGKILL, "%s: %r" % (fp, r))
                self.assertIn("failpoint %s triggered" % fp, r.err)
                # Consistent after the kill: raw is a contiguous prefix per pair
                # and the transformed table never runs ahead of raw.
                raw, tr = self.tables(db) if os.path.exists(db) else ([], [])
                self.assertLessEqual(len(tr), len(raw))
                killed = self.run_ids(db)
                r = self.go(db)
                self.assertEqual(r.code, 0, "%s: %r" % (fp, r))
                self.assertEqual(self.tables(db), want, fp)
                # The killed run's record (if it got that far) is marked, not 'running'.
                for (run_id,) in killed:
                    self.assertIn("marked 'abandoned': " + run_id, r.err)
                    self.assertEqual(self.query("SELECT status FROM dataops_runs WHERE run_id ="
                                                " '%s'" % run_id, path=db), [("abandoned",)])
                self.assertEqual(self.run_ids(db), [])
                # Orphans of the killed run are only .part files under .tmp/.
                lake = db + ".lake"
                for d, _, files in os.walk(lake):
                    for f in files:
                        if f.endswith(".part"):
                            self.assertEqual(os.path.basename(d), ".tmp")
                # Every raw object holds whole lines with a header.
                for d, _, files in os.walk(os.path.join(lake, "thebareops_production")):
                    for f in files:
                        if f.endswith(".csv"):
                            with open(os.path.join(d, f)) as fh:
                                text = fh.read()
                            self.assertTrue(text.startswith("utc_datetime,"))
                            self.assertTrue(text.endswith("\n"))

    def test_error_at_every_failpoint_then_converge(self):
        clean = os.path.join(self.dir, "clean.db")
        self.assertEqual(self.go(clean).code, 0)
        want = self.tables(clean)
        for fp in FAILPOINTS:
            with self.subTest(failpoint=fp):
                db = os.path.join(self.dir, "err-%s.db" % fp)
                r = self.go(db, failpoint=fp + ":error")
                self.assertEqual(r.code, 1, "%s: %r" % (fp, r))
                self.assertEqual(self.go(db).code, 0)
                self.assertEqual(self.tables(db), want, fp)


class LockTest(PipelineTest):
    def hold_lock(self):
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        f = open(os.path.join(self.dir, "data", "warehouse.db.lock"), "w")
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("pid 1 on test-holder\n")
        f.flush()
        return f

    def test_second_run_exits_4_while_the_lock_is_held(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        f = self.hold_lock()
        try:
            r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                                 BINANCE_BASE_URL=fx.url)
        finally:
            f.close()
        self.assertEqual(r.code, 4, r)
        self.assertIn("another run holds the warehouse lock", r.err)
        self.assertIn("test-holder", r.err)
        self.assertEqual(fx.requests("/api/v3/klines"), [])

    def test_waits_up_to_the_lock_timeout(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        f = self.hold_lock()
        threading.Timer(1.0, f.close).start()
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                             "--lock-timeout", "20", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), len(WEEK))

    def test_two_concurrent_runs_leave_one_correct_copy(self):
        fx = self.fake(synth=["ETHUSDT:1m:%d:%d" % (START, 5000)], latency_ms=20,
                       now=START + 5000 * 60000)
        env = self.env(BINANCE_BASE_URL=fx.url, DATAOPS_LOCK_TIMEOUT="120")
        args = [BIN, "run", "--symbols", "ETHUSDT", "--start", str(START)]
        # Files, not pipes: a full pipe would stall the run that holds the lock.
        errs = [open(os.path.join(self.dir, "run%d.err" % i), "w+") for i in range(2)]
        procs = [subprocess.Popen(args, cwd=self.dir, env=env, stdout=subprocess.DEVNULL,
                                  stderr=err) for err in errs]
        codes = [p.wait(120) for p in procs]
        stderr = ""
        for err in errs:
            err.seek(0)
            stderr += err.read()[-3000:] + "\n"
            err.close()
        self.assertEqual(codes, [0, 0], stderr)
        self.assertEqual(self.count(RAW), 5000)
        self.assertEqual(self.count(TRANSFORMED), 5000)


class SigtermTest(PipelineTest):
    def test_sigterm_stops_cleanly_and_the_next_run_completes(self):
        n = 30000
        fx = self.fake(synth=["ETHUSDT:1m:%d:%d" % (START, n)], latency_ms=150,
                       now=START + n * 60000)
        # One request at a time, so the run is still going when the signal
        # comes, however fast the concurrent extractor would be.
        env = self.env(BINANCE_BASE_URL=fx.url, DATAOPS_BATCH_ROWS="2000",
                       DATAOPS_MAX_IN_FLIGHT="1")
        p = subprocess.Popen([BIN, "run", "--symbols", "ETHUSDT", "--start", str(START)],
                             cwd=self.dir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        t0 = time.time()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(30)
        self.assertLess(time.time() - t0, 5, "must stop promptly")
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("interrupted", err)
        self.assertEqual(self.query("SELECT status FROM dataops_runs")[0][0], "interrupted")
        loaded = self.count(RAW)
        self.assertEqual(loaded % 2000, 0, "only whole batches are committed")
        if loaded:
            lo, hi = self.query('SELECT min(open_time), max(open_time) FROM "%s"' % RAW)[0]
            self.assertEqual((hi - lo) // 60000 + 1, loaded, "no holes")
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START), env=env)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), n)
        self.assertEqual(self.count(TRANSFORMED), n)


class SecretsTest(PipelineTest):
    SECRET = "PlantedSecret-9f8e7d6c"

    def test_planted_secrets_never_reach_any_output(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        base = fx.url.replace("http://", "http://dataops:%s@" % self.SECRET)
        with open(os.path.join(self.dir, ".env"), "w") as f:
            f.write("AWS_SECRET_ACCESS_KEY=%s\n" % self.SECRET)
        outputs = []
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                             BINANCE_BASE_URL=base, DATAOPS_LOG_LEVEL="debug")
        self.assertEqual(r.code, 0, r)
        outputs += [r.out, r.err]
        r = self.run_dataops("config", BINANCE_BASE_URL=base)
        outputs += [r.out, r.err]
        # A failing run (its error messages) too.
        r = self.run_dataops("run", "--intervals", "15m",
                             BINANCE_BASE_URL="http://u:%s@127.0.0.1:9" % self.SECRET,
                             DATAOPS_HTTP_RETRIES="0")
        self.assertEqual(r.code, 1)
        outputs += [r.out, r.err]
        for text in outputs:
            self.assertNotIn(self.SECRET, text)
        for d, _, files in os.walk(os.path.join(self.dir, "data")):
            for f in files:
                with open(os.path.join(d, f), "rb") as fh:
                    self.assertNotIn(self.SECRET.encode(), fh.read(), f)


class EnvironmentFaultTest(PipelineTest):
    """Bad configuration and environment: refused or failed with a clear
    message, and nothing partial left behind."""

    def run_week(self, **env):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        return self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                                BINANCE_BASE_URL=fx.url, **env)

    def test_unwritable_lake(self):
        blocker = os.path.join(self.dir, "not-a-dir")
        with open(blocker, "w") as f:
            f.write("x")
        r = self.run_week(DATAOPS_LAKE=os.path.join(blocker, "lake"))
        self.assertEqual(r.code, 1, r)
        self.assertIn("lake directory", r.err)
        self.assertIn("not-a-dir", r.err)

    def test_warehouse_file_that_is_not_a_database(self):
        path = os.path.join(self.dir, "wh.db")
        with open(path, "w") as f:
            f.write("this is a text file, not SQLite\n" * 100)
        r = self.run_week(DATAOPS_WAREHOUSE=path)
        self.assertEqual(r.code, 1, r)
        self.assertIn("is not a usable SQLite warehouse", r.err)
        self.assertIn("not a database", r.err)
        with open(path) as f:
            self.assertTrue(f.read().startswith("this is a text file"))

    def tmpfs(self, size):
        mnt = os.path.join(self.dir, "small")
        os.makedirs(mnt)
        rc = subprocess.call(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", mnt],
                             stderr=subprocess.DEVNULL)
        if rc != 0:
            self.skipTest("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
        # Cleanups run after tearDown, whose rmtree cannot remove a mount
        # point: unmount, then remove the test's directory here.
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.addCleanup(subprocess.call, ["umount", "-l", mnt])
        return mnt

    def test_disk_full_under_the_lake(self):
        mnt = self.tmpfs("48k")
        r = self.run_week(DATAOPS_LAKE=os.path.join(mnt, "lake"))
        self.assertEqual(r.code, 1, r)
        self.assertIn("No space left on device", r.err)
        # No visible object is partial, and no rows were loaded without one.
        self.assertEqual(self.count(RAW), 0)
        for d, _, files in os.walk(os.path.join(mnt, "lake")):
            for f in files:
                self.assertTrue(f.endswith(".part") is False or os.path.basename(d) == ".tmp")
                self.assertFalse(f.endswith(".csv"), "no CSV object may be half-written")

    def test_disk_full_under_the_warehouse(self):
        mnt = self.tmpfs("96k")
        db = os.path.join(mnt, "wh.db")
        r = self.run_week(DATAOPS_WAREHOUSE=db)
        self.assertEqual(r.code, 1, r)
        self.assertTrue("full" in r.err or "disk" in r.err or "space" in r.err, r.err)
        # Whatever committed is consistent: raw is a contiguous prefix.
        import sqlite3
        con = sqlite3.connect(db)
        try:
            n = con.execute('SELECT count(*) FROM "%s"' % RAW).fetchone()[0]
        except sqlite3.OperationalError:
            n = 0
        con.close()
        self.assertLess(n, len(WEEK))

    def test_credentials_file_check(self):
        missing = os.path.join(self.dir, "nope.json")
        r = self.run_dataops("check-credentials", missing)
        self.assertEqual(r.code, 2)
        self.assertIn("nope.json", r.err)
        bad = os.path.join(self.dir, "bad.json")
        with open(bad, "w") as f:
            f.write('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----'
                    'SECRETMATERIAL", "client_email": "x"}')
        r = self.run_dataops("check-credentials", bad)
        self.assertEqual(r.code, 2)
        self.assertNotIn("SECRETMATERIAL", r.err + r.out)
        self.assertIn("client_email", r.err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
