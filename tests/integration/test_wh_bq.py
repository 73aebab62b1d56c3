#!/usr/bin/env python3
"""The BigQuery warehouse (bigquery://) end to end: the dataops binary
against loopback fakes of the token endpoint, BigQuery's REST API
(tests/fakes/fake_bigquery.py) and Cloud Storage (tests/fakes/fake_gcs.py),
with the fake exchange as the source.

The system scenarios of the embedded default run here too, on the same
inputs, and must leave the same final rows as SQLite.  Plus: loads from the
gs:// lake, retry limits, quota and permission refusals, the endpoint
settings, the lease lock, the backfill planner (holes, transform markers,
known gaps), and make test-gcp itself.  The fault and
convergence tests (lost answers, cut uploads, kills) are in
test_wh_bq_faults.py.
"""
import calendar
import json
import os
import sys
import time
import unittest
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from bq import (DS, NOW, WEEK, WEEK_START, BQTest, dt_text)  # noqa: E402
from harness import (F1D, F15M, RAW, TRANSFORMED, load_rows, plan_holes, rollup,  # noqa: E402
                     write_rows)


class ScenariosTest(BQTest):
    """The embedded default's system scenarios, against BigQuery."""

    def test_outage_week_first_run_and_rerun(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW + 60000)
        args = ("run", "--intervals", "15m", "--start", WEEK_START)
        t0 = time.time()
        r = self.run_bq(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        first = time.time() - t0
        raw, tr = self.bq_tables()
        self.assertEqual(len(raw), 667)
        self.assertEqual(len(tr), 667)
        # Raw is lossless, as the exchange sent it.
        got = [list(x[2:3] + x[4:]) for x in raw]
        self.assertEqual(got, [[w[0]] + w[1:12] for w in WEEK])
        pair = [p for p in self.bq.rows(DS, "dataops_run_pairs")][0]
        self.assertEqual((pair[16], pair[17], pair[14], pair[15], pair[18]), (1, 5, 1, 5, "ok"))
        # Local time: the DATETIME is the wall time of the +08:00 text.
        t = self.bq.rows(DS, TRANSFORMED, order_by="open_time")[0]
        self.assertEqual(dt_text(t[14]), "2023-03-20 08:00:00.000")
        self.assertEqual(dt_text(t[7]), "2023-03-20 00:14:59.999")
        self.assertEqual(self.staging_left(), [])
        # The original's schemas plus symbol and interval, partitioned by day
        # on utc_datetime, clustered on (symbol, interval).
        for name in (RAW, TRANSFORMED):
            t = self.bq.engine.tables[("test-project", DS, name)]
            self.assertEqual(t["timePartitioning"], {"type": "DAY", "field": "utc_datetime"})
            self.assertEqual(t["clustering"], {"fields": ["symbol", "interval"]})
        types = {f["name"]: f["type"] for f in self.bq.engine.tables[
            ("test-project", DS, TRANSFORMED)]["schema"]["fields"]}
        self.assertEqual((types["open_time"], types["open"], types["number_of_trades"],
                          types["utc_singapore_datetime"], types["ignore"]),
                         ("DATETIME", "FLOAT64", "INT64", "DATETIME", "STRING"))
        # Job ids come from the run id and the batch number.
        run_id = self.bq.rows(DS, "dataops_runs")[0][0]
        ids = sorted(j for (p, j) in self.bq.jobs if j.startswith("dataops_" + run_id))
        self.assertEqual(ids, ["dataops_%s_%s" % (run_id, x) for x in (
            "1_raw_load", "1_raw_merge", "2_transformed_load", "2_transformed_merge",
            "record_1", "record_2", "record_2_load")])
        # Rerun: nothing changes (updated_at included), a second run row.
        before = self.bq.rows(DS, RAW, order_by="open_time")
        before_t = self.bq.rows(DS, TRANSFORMED, order_by="open_time")
        r = self.run_bq(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.bq.rows(DS, RAW, order_by="open_time"), before)
        self.assertEqual(self.bq.rows(DS, TRANSFORMED, order_by="open_time"), before_t)
        self.assertEqual(len(self.bq.rows(DS, "dataops_runs")), 2)
        # Same final rows as SQLite on the same input.
        self.assertEqual(self.bq_tables(), self.sqlite_run(*args, BINANCE_BASE_URL=fx.url))
        print("first run against the fakes: %.2fs" % first, file=sys.stderr)

    def test_forming_candle_then_incremental(self):
        mid = 1679443200000   # 2023-03-22 00:00
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=mid + 1)
        args = ("run", "--intervals", "15m", "--start", WEEK_START)
        self.assertEqual(self.run_bq(*args, BINANCE_BASE_URL=fx.url).code, 0)
        self.assertEqual(len(self.bq.rows(DS, RAW)), 2 * 96)
        before = self.bq.rows(DS, RAW, order_by="open_time")
        fx.set_now(WEEK[-1][0] + 5 * 60000)     # the last candle still forming
        r = self.run_bq(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.bq.rows(DS, RAW)), 666)
        self.assertEqual(self.bq.rows(DS, RAW, order_by="open_time")[:192], before)
        fx.set_now(NOW)
        self.assertEqual(self.run_bq(*args, BINANCE_BASE_URL=fx.url).code, 0)
        self.assertEqual(len(self.bq.rows(DS, TRANSFORMED)), 667)
        starts = [int(q["query"]["startTime"]) for q in fx.requests("/api/v3/klines")]
        self.assertIn(mid, starts)
        self.assertEqual(self.bq_tables(), self.sqlite_run(*args, BINANCE_BASE_URL=fx.url))

    def test_transform_gap_is_completed_next_run(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        args = ("run", "--intervals", "15m", "--start", WEEK_START)
        r = self.run_bq(*args, BINANCE_BASE_URL=fx.url,
                        DATAOPS_FAILPOINT="wh.raw.committed:error")
        self.assertEqual(r.code, 1, r)
        self.assertEqual(len(self.bq.rows(DS, RAW)), 667)
        self.assertEqual(len(self.bq.rows(DS, TRANSFORMED)), 0)
        run = self.bq.rows(DS, "dataops_runs")[0]
        self.assertEqual(run[6], "failed")
        self.assertIn("wh.raw.committed", run[8])
        self.assertEqual(self.run_bq(*args, BINANCE_BASE_URL=fx.url).code, 0)
        self.assertEqual(len(self.bq.rows(DS, TRANSFORMED)), 667)

    def test_quality_gate_quarantines_with_the_batch(self):
        rows = [list(r) for r in WEEK[:10]]
        rows[3][2] = "1.00000000"            # high below low
        rows[6][9] = "999999.00000000"       # taker buy above volume
        body = write_rows(os.path.join(self.dir, "bad.json"), rows)
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW, faults=["klines:1:body:" + body])
        r = self.run_bq("run", "--intervals", "15m", "--start", WEEK_START, "--end",
                        str(rows[9][6] + 1), BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 3, r)
        q = sorted(self.bq.rows(DS, "dataops_quarantine"), key=lambda x: x[4])
        self.assertEqual([x[4] for x in q], [rows[3][0], rows[6][0]])
        self.assertIn("high 1.00000000 is below", q[0][5])
        self.assertEqual(json.loads(q[0][6]), rows[3])
        self.assertEqual(len(self.bq.rows(DS, RAW)), 8)
        self.assertEqual(self.bq.rows(DS, "dataops_runs")[0][6], "rejected")


class CheckTest(BQTest):
    def test_check_names_a_missing_dataset_then_passes_after_a_run(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW + 60000)
        r = self.run_bq("check", "--intervals", "15m", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 2, r)
        self.assertRegex(r.out, r"FAIL +warehouse .*dataset test-project:\S+ does not exist")
        r = self.run_bq("run", "--intervals", "15m", "--start", WEEK_START,
                        BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        r = self.run_bq("check", "--intervals", "15m", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.out, r"ok +warehouse +bigquery://test-project")


class RetryLimitsTest(BQTest):
    def test_persistent_5xx_gives_up_bounded(self):
        for n in range(5, 40):
            self.bq.add_fault("503:%d" % n)
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        t0 = time.time()
        r = self.run_bq("run", "--intervals", "15m", BINANCE_BASE_URL=fx.url,
                        DATAOPS_HTTP_RETRIES="2")
        self.assertEqual(r.code, 1, r)
        self.assertIn("HTTP 503 backendError", r.err)
        self.assertIn("giving up after 3 attempts", r.err)
        self.assertLess(time.time() - t0, 30)

    def test_quota_fails_fast(self):
        self.bq.add_fault("quota:1")
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        r = self.run_bq("run", "--intervals", "15m", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 1, r)
        self.assertIn("HTTP 403 quotaExceeded", r.err)
        self.assertIn("a quota of project test-project", r.err)
        self.assertEqual(self.bq.stats()["requests"], 1)


class GcsLakeTest(BQTest):
    def test_loads_read_the_lake_objects(self):
        self.start_gcs()
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        args = ("run", "--intervals", "15m", "--start", WEEK_START)
        r = self.run_bq(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        loads = [j["resource"]["configuration"]["load"] for j in self.bq.jobs.values()
                 if "load" in j["resource"]["configuration"]]
        uris = [u for ld in loads for u in ld.get("sourceUris", [])]
        self.assertEqual(len(uris), 2, loads)
        self.assertTrue(all(u.startswith("gs://lake/") for u in uris))
        for u in uris:
            self.assertIsNotNone(self.gcs.object("lake", u[len("gs://lake/"):]))
        self.assertEqual(self.bq_tables(), self.sqlite_run(*args, BINANCE_BASE_URL=fx.url))


class ErrorsTest(BQTest):
    def test_permission_refused_fails_fast_and_names_the_role(self):
        self.bq.add_fault("denied:/datasets")
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        t0 = time.time()
        r = self.run_bq("run", "--intervals", "15m", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 1, r)
        self.assertLess(time.time() - t0, 10)
        self.assertIn("HTTP 403 accessDenied", r.err)
        self.assertIn("/datasets/" + DS, r.err)
        self.assertIn("bigquery.datasets.get", r.err)
        self.assertIn("roles/bigquery.dataEditor", r.err)
        self.assertIn(self.key.client_email, r.err)
        self.assertLessEqual(self.bq.stats()["requests"], 2)

    def test_no_project(self):
        r = self.run_dataops("run", DATAOPS_WAREHOUSE="bigquery://")
        self.assertEqual(r.code, 2, r)
        self.assertIn("needs a project", r.err)

    def test_project_from_the_setting_and_location(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        # BIGQUERY_EMULATOR_HOST as host:port (Python/Go clients' form).
        r = self.run_bq("run", "--intervals", "15m", "--start", "2023-03-26",
                        BINANCE_BASE_URL=fx.url, DATAOPS_WAREHOUSE="bigquery://",
                        PROJECT_ID="test-project", DATAOPS_BIGQUERY_LOCATION="EU",
                        BIGQUERY_EMULATOR_HOST=self.bq.url[len("http://"):])
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.bq.engine.datasets[("test-project", DS)]["location"], "EU")
        self.assertTrue(all(j["resource"]["jobReference"]["location"] == "EU"
                            for j in self.bq.jobs.values()))
        self.assertEqual(len(self.bq.rows(DS, RAW)), 96)
        # The flag, as the Node client's base URL form.
        env = self.bq_env(BINANCE_BASE_URL=fx.url, DATAOPS_BIGQUERY_LOCATION="EU")
        del env["BIGQUERY_EMULATOR_HOST"]
        r = self.run_dataops("run", "--intervals", "15m", "--bigquery-endpoint",
                             self.bq.url + "/bigquery/v2/", **env)
        self.assertEqual(r.code, 0, r)

    def test_table_of_the_original_without_symbol_is_refused(self):
        self.bq.engine.datasets[("test-project", DS)] = {"location": "US"}
        self.bq.engine.create_table(("test-project", DS, RAW), {"schema": {"fields": [
            {"name": "utc_datetime", "type": "DATETIME"}, {"name": "open_time",
                                                           "type": "INTEGER"}]}})
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        r = self.run_bq("run", "--intervals", "15m", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 1, r)
        self.assertIn("has no column", r.err)
        self.assertIn("Python original", r.err)


class MakeTestGcpTest(BQTest):
    """scripts/test-gcp.sh (make test-gcp): skips cleanly without credentials,
    and its whole sequence passes against the fakes."""

    SCRIPT = os.path.join(HERE, "..", "..", "scripts", "test-gcp.sh")

    def script(self, **env):
        import subprocess
        from harness import BIN
        e = {k: v for k, v in os.environ.items() if k not in (
            "GOOGLE_APPLICATION_CREDENTIALS", "PROJECT_ID", "GCS_BUCKET_NAME")}
        e.update(env)
        return subprocess.run(["sh", self.SCRIPT, BIN], capture_output=True, text=True,
                              env=e, timeout=300)

    def test_skips_without_credentials(self):
        r = self.script()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("test-gcp: skipped: set GOOGLE_APPLICATION_CREDENTIALS PROJECT_ID "
                      "GCS_BUCKET_NAME", r.stdout)

    def test_end_to_end_sequence_against_the_fakes(self):
        self.start_gcs()
        r = self.script(GOOGLE_APPLICATION_CREDENTIALS=self.key.path, PROJECT_ID="test-project",
                        GCS_BUCKET_NAME="lake", BIGQUERY_EMULATOR_HOST=self.bq.url,
                        STORAGE_EMULATOR_HOST=self.gcs.url, DATAOPS_E2E_ALLOW_EMULATOR="1",
                        DATAOPS_E2E_BQ="")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("test-gcp: passed", r.stdout)
        ds = [k[1] for k in self.bq.engine.datasets]
        self.assertEqual(len(ds), 1)
        self.assertTrue(ds[0].startswith("dataops_e2e_"))


class LockTest(BQTest):
    def hold(self, expires_ms):
        self.bq.engine.datasets[("test-project", DS)] = {"location": "US"}
        self.bq.engine.create_table(("test-project", DS, "dataops_locks"), {"schema": {
            "fields": [{"name": n, "type": t} for n, t in (
                ("name", "STRING"), ("holder", "STRING"), ("host", "STRING"),
                ("acquired_ms", "INT64"), ("expires_ms", "INT64"))]}})
        self.bq.engine.con.execute(
            'INSERT INTO "test-project.%s.dataops_locks" VALUES (?, ?, ?, ?, ?)' % DS,
            ("`test-project.%s.%s`" % (DS, RAW), "other-run pid 7 on elsewhere", "elsewhere",
             0, expires_ms))

    def test_held_lease_exits_4_and_an_expired_one_is_taken(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        self.hold(int(time.time() * 1000) + 600000)
        r = self.run_bq("run", "--intervals", "15m", "--start", "2023-03-26",
                        BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 4, r)
        self.assertIn("other-run pid 7 on elsewhere", r.err)
        self.assertIn("lease ends in", r.err)
        self.bq.engine.con.execute('UPDATE "test-project.%s.dataops_locks" SET expires_ms = 1'
                                   % DS)
        r = self.run_bq("run", "--intervals", "15m", "--start", "2023-03-26",
                        BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        lock = self.bq.rows(DS, "dataops_locks")[0]
        self.assertEqual((lock[1], lock[4]), ("", 0))   # released at the end


class AbandonedRunTest(BQTest):
    """Runs that died say 'running' until the next run of the same raw table
    marks them; a run table made before the raw_table column gets it."""

    RUN_COLS = (("run_id", "STRING"), ("git_commit", "STRING"), ("version", "STRING"),
                ("hostname", "STRING"), ("started_at", "DATETIME"), ("ended_at", "DATETIME"),
                ("status", "STRING"), ("exit_code", "INT64"), ("error", "STRING"))

    def runs(self):
        return {r[0]: r for r in self.bq.rows(DS, "dataops_runs")}

    def test_old_run_table_gets_the_column_and_dead_runs_are_marked(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        e = self.bq.engine
        e.datasets[("test-project", DS)] = {"location": "US"}
        e.create_table(("test-project", DS, "dataops_runs"), {"schema": {"fields": [
            {"name": n, "type": t} for n, t in self.RUN_COLS]}})
        e.con.execute('INSERT INTO "test-project.%s.dataops_runs" (run_id, git_commit, version,'
                      ' status) VALUES (\'legacy\', \'x\', \'0\', \'running\')' % DS)
        args = ("run", "--intervals", "15m", "--start", "2023-03-26")
        r = self.run_bq(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertIn("added column raw_table to `test-project.%s.dataops_runs`" % DS, r.err)
        self.assertEqual(e.tables[("test-project", DS, "dataops_runs")]["schema"]["fields"][-1],
                         {"name": "raw_table", "type": "STRING", "mode": "NULLABLE"})
        runs = self.runs()
        self.assertEqual(runs["legacy"][6], "running")   # whose lock covered it is unknown
        first = [k for k in runs if k != "legacy"][0]
        self.assertEqual((runs[first][6], runs[first][9]), ("ok", RAW))
        # Two runs that died: one of this raw table, one of another.
        for run_id, raw in (("dead", RAW), ("other", "other_raw")):
            e.con.execute('INSERT INTO "test-project.%s.dataops_runs" (run_id, git_commit,'
                          ' version, status, raw_table) VALUES (?, \'x\', \'0\', \'running\','
                          ' ?)' % DS, (run_id, raw))
        r = self.run_bq(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertIn("1 earlier run(s) ended without recording it (killed, crashed or lost "
                      "with their host), marked 'abandoned': dead", r.err)
        runs = self.runs()
        self.assertEqual(runs["dead"][6:8], ("abandoned", None))
        self.assertIn("no end was recorded", runs["dead"][8])
        self.assertEqual((runs["other"][6], runs["legacy"][6]), ("running", "running"))


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % (ms % 1000)


class PlannerTest(BQTest):
    """dataops plan and run on BigQuery: the holes come from a LAG/LEAD
    query job on the raw table, the ranges from dataops_ranges, and a range
    commits in the script of the rows it describes."""
    ARGS = ("--intervals", "15m", "--start", WEEK_START)

    def plan(self, *args, **env):
        r = self.run_bq("plan", *args, **env)
        self.assertEqual(r.code, 0, r)
        return r, plan_holes(r.out)

    def delete(self, first, last, transformed=True):
        """Delete the candles opening in [first, last] from raw (and transformed)."""
        with self.bq.lock:
            self.bq.engine.script("DELETE FROM `test-project.%s.%s` WHERE open_time BETWEEN %d"
                                  " AND %d" % (DS, RAW, first, last), {})
            if transformed:
                self.bq.engine.script(
                    "DELETE FROM `test-project.%s.%s` WHERE UNIX_MILLIS(TIMESTAMP(open_time))"
                    " BETWEEN %d AND %d" % (DS, TRANSFORMED, first, last), {})

    def end_lease(self):
        """A killed run's lease would block the next run for 10 minutes."""
        with self.bq.lock:
            self.bq.engine.con.execute('UPDATE "test-project.%s.dataops_locks" SET '
                                       'expires_ms = 1' % DS)

    def ranges(self, kind):
        return sorted((r[3], r[4]) for r in self.bq.rows(DS, "dataops_ranges") if r[0] == kind)

    def test_holes_are_planned_and_filled(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        r = self.run_bq("run", *self.ARGS, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        t = [w[0] for w in WEEK]       # the week's outage is after candle 400
        self.delete(t[100], t[199])
        self.delete(t[300], t[309], transformed=False)
        r, holes = self.plan(*self.ARGS, BINANCE_BASE_URL=fx.url)
        self.assertEqual(holes, [(iso(t[100]), iso(t[200]), 100),
                                 (iso(t[300]), iso(t[310]), 10)], r.out)
        # Killed with the first hole's rows staged but not merged: neither
        # they nor their transform marker are there (one script commits both).
        r = self.run_bq("run", *self.ARGS, BINANCE_BASE_URL=fx.url,
                        DATAOPS_FAILPOINT="bq.staged:kill")
        self.assertEqual(r.code, -9, r)
        self.assertEqual(len(self.bq.rows(DS, RAW)), len(WEEK) - 110)
        self.assertEqual(self.ranges("transform"), [])
        self.end_lease()
        before = len(fx.requests("/api/v3/klines"))
        # Killed after the holes' raw rows committed: the transform markers
        # committed with them, and the next run transforms the holes.
        r = self.run_bq("run", *self.ARGS, BINANCE_BASE_URL=fx.url,
                        DATAOPS_FAILPOINT="wh.raw.committed:kill")
        self.assertEqual(r.code, -9, r)
        self.assertEqual(len(self.bq.rows(DS, RAW)), len(WEEK))
        self.assertEqual(len(self.bq.rows(DS, TRANSFORMED)), len(WEEK) - 100)
        self.assertEqual(self.ranges("transform"), [(t[100], t[200]), (t[300], t[310])])
        self.end_lease()
        r = self.run_bq("run", *self.ARGS, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.ranges("transform"), [])
        # Only the holes were asked for, once each; the rows are SQLite's.
        asked = sorted(int(q["query"]["startTime"]) for q in
                       fx.requests("/api/v3/klines")[before:])
        self.assertEqual(asked, [t[100], t[300]])
        self.assertEqual(self.bq_tables(), self.sqlite_run("run", *self.ARGS,
                                                           BINANCE_BASE_URL=fx.url))
        r, holes = self.plan(*self.ARGS, BINANCE_BASE_URL=fx.url)
        self.assertEqual(holes, [])
        self.assertIn("nothing missing", r.out)

    def test_calendar_month_holes(self):
        def month_start(ms):
            d = datetime.fromtimestamp(ms / 1000, timezone.utc)
            return calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000
        months = rollup(load_rows(F1D), month_start)
        path = write_rows(os.path.join(self.dir, "1M.json"), months)
        fx = self.fake(data=["BTCUSDT:1M:" + path], now=months[-1][6] + 1)
        args = ("--intervals", "1M", "--start", "2024-01-01")
        r = self.run_bq("run", *args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.bq.rows(DS, RAW)), 24)
        jan, feb, mar, jun = (calendar.timegm((2024, mo, 1, 0, 0, 0)) * 1000
                              for mo in (1, 2, 3, 6))
        self.delete(jan, jan)
        self.delete(mar, jun - 1)
        r, holes = self.plan(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(holes, [(iso(jan), iso(feb), 1), (iso(mar), iso(jun), 3)], r.out)
        r = self.run_bq("run", *args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.bq.rows(DS, RAW)), 24)
        self.assertEqual(len(self.bq.rows(DS, TRANSFORMED)), 24)
        self.assertEqual(self.plan(*args, BINANCE_BASE_URL=fx.url)[1], [])

    def test_a_real_outage_is_remembered_not_fetched_again(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=NOW)
        args = ("--intervals", "15m", "--start", "2023-03-01")
        r = self.run_bq("run", *args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.bq.rows(DS, RAW)), len(WEEK))
        mar1 = calendar.timegm((2023, 3, 1, 0, 0, 0)) * 1000
        outage = (calendar.timegm((2023, 3, 24, 12, 45, 0)) * 1000,
                  calendar.timegm((2023, 3, 24, 14, 0, 0)) * 1000)
        self.assertEqual(self.ranges("known_gap"), [(mar1, WEEK[0][0]), outage])
        r, holes = self.plan(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(holes, [])
        self.assertIn("left out: %d candles" % (19 * 96 + 5), r.out)
        n = len(fx.requests("/api/v3/klines"))
        self.assertEqual(self.run_bq("run", *args, BINANCE_BASE_URL=fx.url).code, 0)
        self.assertEqual(len(fx.requests("/api/v3/klines")), n)
        self.assertEqual(self.ranges("known_gap"), [(mar1, WEEK[0][0]), outage])


if __name__ == "__main__":
    unittest.main(verbosity=2)
