#!/usr/bin/env python3
"""The BigQuery warehouse under faults, end to end (see test_wh_bq.py for
the setting): a run killed anywhere, including between the staging load and
the MERGE, converges on the next run to exactly SQLite's rows; a load job
that fails; lost answers (409, the job adopted, never run twice); uploads
cut off halfway, multipart and resumable; a token revoked mid-run;
transient errors retried.  Two pairs, several batches each."""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from bq import DS, NOW, WEEK, BQTest, norm_raw, norm_tr  # noqa: E402
from harness import BIN, F15M, RAW, TRANSFORMED, FakeExchange  # noqa: E402

START1M = 1577836800000      # 2020-01-01
N1M = 2500
ARGS = ("run", "--symbols", "ETHUSDT,BTCUSDT", "--intervals", "1m,15m", "--start",
        str(START1M))


class ConvergeTest(BQTest):
    """Killed anywhere, including between the staging load and the MERGE,
    the next run ends with exactly SQLite's rows; multi-batch, two pairs."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # One exchange and one SQLite reference for the whole class.
        cls.fx_dir = tempfile.mkdtemp(prefix="dataops-bq-fx-")
        # A weight limit that many runs a minute stay under: these tests are
        # about the warehouse, not the exchange's rate limits.
        cls.fx = FakeExchange(cls.fx_dir, data=["BTCUSDT:15m:" + F15M],
                              synth=["ETHUSDT:1m:%d:%d" % (START1M, N1M)], now=NOW,
                              weight_limit=1000000)
        db = os.path.join(cls.fx_dir, "want.db")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATAOPS_", "BIGQUERY_"))}
        env.update(DATAOPS_WAREHOUSE=db, DATAOPS_LAKE=db + ".lake", DATAOPS_BATCH_ROWS="1000",
                   BINANCE_BASE_URL=cls.fx.url, DATAOPS_LOG_FORMAT="json")
        r = subprocess.run([BIN] + list(ARGS), env=env, cwd=cls.fx_dir, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        con = sqlite3.connect(db)
        try:
            cls.want = (sorted(norm_raw(x) for x in con.execute('SELECT * FROM "%s"' % RAW)),
                        sorted(norm_tr(x) for x in con.execute('SELECT * FROM "%s"'
                                                               % TRANSFORMED)))
        finally:
            con.close()
        assert len(cls.want[0]) == N1M + len(WEEK)

    @classmethod
    def tearDownClass(cls):
        cls.fx.stop()
        shutil.rmtree(cls.fx_dir, ignore_errors=True)

    def go(self, failpoint=None, **extra):
        env = dict(BINANCE_BASE_URL=self.fx.url, DATAOPS_BATCH_ROWS="1000")
        if failpoint:
            env["DATAOPS_FAILPOINT"] = failpoint
        env.update(extra)
        return self.run_bq(*ARGS, **env)

    def test_kill_at_failpoints_then_converge(self):
        for fp in ("bq.staged", "wh.raw.committed", "wh.transformed.committed"):
            with self.subTest(failpoint=fp):
                self.bq.reset()
                r = self.go(fp)
                self.assertEqual(r.code, -signal.SIGKILL, "%s: %r" % (fp, r))
                raw, tr = self.bq_tables()
                self.assertLessEqual(len(tr), len(raw))
                if fp == "bq.staged":
                    # Staged, never merged: the target has nothing, the
                    # staging table stays behind and expires in a day.
                    self.assertEqual(raw, [])
                    left = self.staging_left()
                    self.assertEqual(len(left), 1, left)
                    exp = int(self.bq.engine.tables[("test-project", DS, left[0])]
                              ["expirationTime"])
                    self.assertLess(exp - time.time() * 1000, 24 * 3600 * 1000 + 60000)
                # The lease of the killed run blocks the next one: end it as
                # time would (10 minutes later).
                self.bq.engine.con.execute('UPDATE "test-project.%s.dataops_locks" SET '
                                           'expires_ms = 0' % DS)
                r = self.go()
                self.assertEqual(r.code, 0, "%s: %r" % (fp, r))
                self.assertEqual(self.bq_tables(), self.want, fp)

    def test_load_job_fails_nothing_merged_then_converges(self):
        self.bq.add_fault("loadfail:1:invalid")
        r = self.go()
        self.assertEqual(r.code, 1, r)
        self.assertIn("_1_raw_load failed: invalid: Error while reading data", r.err)
        # The pair whose load failed has nothing (the other pairs went on).
        raw, tr = self.bq_tables()
        self.assertEqual([x for x in raw + tr if x[0] == "ETHUSDT"], [])
        self.assertEqual(len(raw), len(WEEK))
        self.assertEqual(self.staging_left(), [])
        self.assertEqual(self.go().code, 0)
        self.assertEqual(self.bq_tables(), self.want)

    def test_lost_answer_same_job_id_runs_once(self):
        # The MERGE runs, its answer is lost; gapi sends the same jobs.insert
        # again: 409 duplicate, the job is adopted, nothing runs twice.
        self.bq.add_fault("losejob:_1_raw_merge")
        self.bq.add_fault("losejob:_1_raw_load")
        r = self.go()
        self.assertEqual(r.code, 0, r)
        self.assertIn("already exists (a repeated request)", r.err)
        ids = [j for (p, j) in self.bq.jobs if j.endswith("_1_raw_merge")]
        self.assertEqual(len(ids), 1)
        self.assertEqual(self.bq.job_inserts(ids[0]), 2)
        self.assertGreaterEqual(self.bq.stats()["duplicates"], 2)
        self.assertEqual(self.bq_tables(), self.want)

    def test_upload_cut_off_halfway(self):
        self.bq.add_fault("cut:1")
        self.bq.add_fault("cut:3")
        r = self.go()
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.bq_tables(), self.want)

    def test_resumable_upload_cut_resumed_and_answer_lost(self):
        # Every upload resumable, in 512 KiB chunks: the ETH 1m transformed
        # batch (~630 KB) takes two.  The raw load's last chunk runs but its
        # answer is lost (upload requests 1 session, 2 lost, 3 the resend,
        # which the session answers with the job it made).  Requests 5 and 6
        # (the first transformed chunk, and libcurl's own resend of it on a
        # fresh connection) are cut halfway: the session keeps 256 KiB, the
        # upload asks it how much it has and goes on from there.
        for f in ("losejob:_1_raw_load", "cut:5", "cut:6"):
            self.bq.add_fault(f)
        r = self.go(DATAOPS_BATCH_ROWS="5000", DATAOPS_BQ_RESUMABLE_THRESHOLD="1",
                    DATAOPS_BQ_CHUNK_SIZE=str(512 * 1024))
        self.assertEqual(r.code, 0, r)
        self.assertIn("asking the session how much it has", r.err)
        st = self.bq.stats()
        self.assertGreaterEqual(st["cut_kept_bytes"], 256 * 1024)
        self.assertGreaterEqual(st["status_queries"], 1)
        raw1 = [j for (p, j) in self.bq.jobs if j.endswith("_1_raw_load")]
        self.assertEqual(len(raw1), 1)
        self.assertEqual(self.bq.job_inserts(raw1[0]), 0)       # only PUTs
        puts = [e for e in self.bq.log if e[0] == "PUT" and e[2] == raw1[0]]
        self.assertEqual(len(puts), 2)
        self.assertEqual(self.bq_tables(), self.want)

    def test_token_revoked_mid_run(self):
        self.issuer.expires_in = 3          # and tokens that expire by themselves
        self.bq.add_fault("expire:40")
        r = self.go()
        self.assertEqual(r.code, 0, r)
        self.assertGreaterEqual(self.issuer.stats()["jwt_grants"], 2)
        self.assertGreaterEqual(self.bq.stats()["unauthorized"], 1)
        self.assertEqual(self.bq_tables(), self.want)
        for t in self.issuer.tokens():
            self.assertNotIn(t, r.err + r.out)

    def test_transient_errors_are_retried(self):
        for f in ("503:5", "503:6", "429:9", "ratelimit:12", "jobfail:6:backendError"):
            self.bq.add_fault(f)
        r = self.go(DATAOPS_HTTP_RETRIES="4")
        self.assertEqual(r.code, 0, r)
        self.assertIn("retrying as a new job", r.err)
        self.assertEqual(self.bq_tables(), self.want)


if __name__ == "__main__":
    unittest.main(verbosity=2)
