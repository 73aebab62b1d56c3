#!/usr/bin/env python3
"""Integration tests of the PostgreSQL warehouse (DATAOPS_WAREHOUSE=
postgresql://...): the built dataops binary against a real, throwaway
PostgreSQL cluster (tests/lib/pg.py) and the fake exchange.

Covers: a first run (tables created, raw lossless, the outage week's
figures), the same rows as the embedded SQLite default, an incremental run,
a rerun that changes nothing (not even xmin), the quarantine, a connection
killed in the middle of a COPY (pg_terminate_backend), runs SIGKILLed
between COPY and COMMIT, two concurrent runs on one database and a run
refused while another holds the advisory lock, passwords (a wrong one
fails naming the endpoint, and no password ever reaches an output), and
the backfill planner on PostgreSQL (holes of 1m and of the calendar month,
a crash between a hole fill and its transform, a real outage remembered).

Each test works in its own PostgreSQL schema (DATAOPS_PG_SCHEMA) of one
database; the first run uses the default schema, public.  PostgreSQL is
required: without it the module fails with what to install.
"""
import calendar
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import pg  # noqa: E402
from harness import (BIN, F1D, F15M, RAW, TRANSFORMED, PipelineTest, Result,  # noqa: E402
                     load_rows, plan_holes, rollup, write_rows)

DB = "dataops"
SECURE_USER = "dataops_secured"
SECURE_PW = "Planted-Pw-7f3a9c21"
WEEK = load_rows(F15M)
WEEK_START = "2023-03-20"
WEEK_END_MS = WEEK[-1][6] + 1
# Synthetic 1m series end where the week ends (the exchange's "now"), so a
# run from WEEK_START covers them without paging through years of nothing.
N1M = 2500
TS = "'YYYY-MM-DD HH24:MI:SS.MS'"

CLUSTER = None


def synth(symbol, n):
    """--synth spec of n 1m candles that end at WEEK_END_MS."""
    return "%s:1m:%d:%d" % (symbol, WEEK_END_MS - n * 60000, n)


def setUpModule():
    global CLUSTER
    if not os.path.exists(BIN):
        raise RuntimeError("dataops binary not found at %s (set DATAOPS_BIN)" % BIN)
    probe = subprocess.run([BIN, "config", "--warehouse", "postgresql://probe@127.0.0.1:1/x"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if probe.returncode != 0:
        raise RuntimeError("this dataops cannot use postgresql:// warehouses (was libpq-dev "
                           "installed when it was configured?): " + probe.stderr.strip())
    CLUSTER = pg.PgCluster(hba_extra=["host all %s 127.0.0.1/32 scram-sha-256" % SECURE_USER])
    unittest.addModuleCleanup(CLUSTER.stop)
    CLUSTER.create_db(DB)
    CLUSTER.execute("SET password_encryption = 'scram-sha-256'; "
                    "CREATE ROLE %s LOGIN PASSWORD '%s'; "
                    "CREATE SCHEMA secured AUTHORIZATION %s"
                    % (SECURE_USER, SECURE_PW, SECURE_USER), DB)


RAW_SQL = ('SELECT symbol, "interval", to_char(utc_datetime, %s), open_time, "open", high, low,'
           ' "close", volume, close_time, quote_asset_volume, number_of_trades,'
           ' taker_buy_base_asset_volume, taker_buy_quote_asset_volume, "ignore",'
           ' to_char(updated_at, %s) FROM %%s ORDER BY 1, 2, 4' % (TS, TS))
T_SQL = ('SELECT symbol, "interval", to_char(utc_datetime, %s), to_char(open_time, %s),'
         ' "open", high, low, "close", volume, to_char(close_time, %s), quote_asset_volume,'
         ' number_of_trades, taker_buy_base_asset_volume, taker_buy_quote_asset_volume,'
         ' "ignore", to_char(updated_at, %s), to_char(%%s, %s) FROM %%s ORDER BY 1, 2, 4'
         % (TS, TS, TS, TS, TS))
SQLITE_RAW = ('SELECT symbol, "interval", utc_datetime, open_time, "open", high, low, "close",'
              ' volume, close_time, quote_asset_volume, number_of_trades,'
              ' taker_buy_base_asset_volume, taker_buy_quote_asset_volume, "ignore", updated_at'
              ' FROM "%s" ORDER BY 1, 2, 4')
SQLITE_T = ('SELECT symbol, "interval", utc_datetime, open_time, "open", high, low, "close",'
            ' volume, close_time, quote_asset_volume, number_of_trades,'
            ' taker_buy_base_asset_volume, taker_buy_quote_asset_volume, "ignore", updated_at,'
            ' %s FROM "%s" ORDER BY 1, 2, 4')
PAIRS_COLS = ("symbol, \"interval\", range_start, range_end, first_open, last_open, pages, "
              "rows_extracted, open_skipped, rows_raw_loaded, rows_rejected, rows_transformed, "
              "rows_transformed_rejected, short_candles, zero_trade, gaps, missing_candles, "
              "status")


def raw_typed(row):
    """A raw row from psql text into the types SQLite returns."""
    r = list(row)
    for i in (3, 9, 11):
        r[i] = int(r[i])
    return tuple(r)


def t_typed(row):
    r = list(row)
    for i in (4, 5, 6, 7, 8, 10, 12, 13):
        r[i] = float(r[i])
    r[11] = int(r[11])
    return tuple(r)


def offset_of(local_wall, utc):
    """'+08:00' from the local wall time and the UTC time of one instant."""
    f = "%Y-%m-%d %H:%M:%S.%f"
    secs = int((datetime.strptime(local_wall, f) - datetime.strptime(utc, f)).total_seconds())
    sign = "+" if secs >= 0 else "-"
    secs = abs(secs)
    return "%s%02d:%02d" % (sign, secs // 3600, secs % 3600 // 60)


class PgTest(PipelineTest):
    schema = None

    def setUp(self):
        super().setUp()
        if self.schema is None:
            self.schema = "t_" + self.id().rsplit(".", 1)[-1][5:40].lower()
        self.pg = CLUSTER
        self.url = CLUSTER.url(DB)

    def env(self, **extra):
        e = super().env(**extra)
        for k in list(e):
            if k.startswith("PG") and k not in extra:
                del e[k]
        return e

    def go(self, *args, url=None, schema=None, **env):
        env.setdefault("DATAOPS_WAREHOUSE", url or self.url)
        env.setdefault("DATAOPS_PG_SCHEMA", schema or self.schema)
        return self.run_dataops("run", *args, **env)

    def q(self, sql):
        return self.pg.query(sql, DB)

    def v(self, sql):
        return self.pg.value(sql, DB)

    def t(self, table, schema=None):
        return '"%s"."%s"' % (schema or self.schema, table)

    def count(self, table=RAW, schema=None, path=None):
        return int(self.v("SELECT count(*) FROM %s" % self.t(table, schema)))

    def raw_rows(self, schema=None):
        return [raw_typed(r) for r in self.q(RAW_SQL % self.t(RAW, schema))]

    def t_rows(self, schema=None, local="utc_singapore_datetime"):
        sql = T_SQL % ('"%s"' % local, self.t(TRANSFORMED, schema))
        return [t_typed(r) for r in self.q(sql)]

    def versions(self, table, schema=None):
        """(open_time, xmin, updated_at) of every row: xmin changes whenever
        a row is rewritten, even with the same values."""
        return self.q("SELECT symbol, \"interval\", open_time::text, xmin::text, "
                      "updated_at::text FROM %s ORDER BY 1, 2, 3" % self.t(table, schema))

    def assert_contiguous(self, step_ms, schema=None, symbol="ETHUSDT"):
        n, lo, hi = self.q("SELECT count(*), min(open_time), max(open_time) FROM %s WHERE "
                           "symbol = '%s'" % (self.t(RAW, schema), symbol))[0]
        if int(n):
            self.assertEqual((int(hi) - int(lo)) // step_ms + 1, int(n), "a hole in raw")
        return int(n)

    def week_and_1m(self, **kw):
        return self.fake(data=["BTCUSDT:15m:" + F15M],
                         synth=[synth("ETHUSDT", N1M)], now=WEEK_END_MS, **kw)


class FirstRunTest(PgTest):
    schema = "public"

    def test_first_run_creates_the_tables_and_loads_losslessly(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS + 60000)
        r = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                             BINANCE_BASE_URL=fx.url,
                             DATAOPS_WAREHOUSE=self.url + "?sslmode=disable")
        self.assertEqual(r.code, 0, r)
        self.assertIn("connected to PostgreSQL " + self.url, r.err)
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual(self.count(TRANSFORMED), 667)
        self.assertEqual(self.count("dataops_quarantine"), 0)
        # Raw is lossless: the exchange's decimal text, byte for byte.
        got = self.q('SELECT open_time, "open", high, low, "close", volume, close_time, '
                     'quote_asset_volume, number_of_trades, taker_buy_base_asset_volume, '
                     'taker_buy_quote_asset_volume, "ignore" FROM %s ORDER BY open_time'
                     % self.t(RAW))
        want = [[str(x) for x in row] for row in WEEK]
        self.assertEqual([list(g) for g in got], want)
        pair = self.q("SELECT gaps, missing_candles, short_candles, zero_trade, status "
                      "FROM public.dataops_run_pairs")
        self.assertEqual(pair, [("1", "5", "1", "5", "ok")])
        run = self.q("SELECT status, exit_code, ended_at > started_at FROM public.dataops_runs")
        self.assertEqual(run, [("ok", "0", "t")])
        # The documented types.
        types = dict(self.q("SELECT table_name || '.' || column_name, data_type FROM "
                            "information_schema.columns WHERE table_schema = 'public'"))
        self.assertEqual(types[RAW + ".open"], "text")
        self.assertEqual(types[RAW + ".open_time"], "bigint")
        self.assertEqual(types[RAW + ".utc_datetime"], "timestamp without time zone")
        self.assertEqual(types[TRANSFORMED + ".open"], "double precision")
        self.assertEqual(types[TRANSFORMED + ".open_time"], "timestamp with time zone")
        self.assertEqual(types[TRANSFORMED + ".utc_singapore_datetime"],
                         "timestamp without time zone")
        pk = self.q("SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM pg_index i "
                    "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) "
                    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                    "WHERE i.indisprimary AND i.indrelid = 'public.%s'::regclass" % RAW)
        self.assertEqual(pk, [("symbol,interval,open_time",)])
        # The truncated candle of the outage keeps its close_time; local time.
        cut = self.q("SELECT to_char(close_time, %s), to_char(utc_singapore_datetime, %s) "
                     "FROM public.%s WHERE open_time = '2023-03-24 12:30:00+00'"
                     % (TS, TS, TRANSFORMED))
        self.assertEqual(cut, [("2023-03-24 12:39:41.646", "2023-03-24 20:30:00.000")])


class SameAsSqliteTest(PgTest):
    def test_same_rows_as_the_embedded_default(self):
        fx = self.week_and_1m()
        args = ("--symbols", "BTCUSDT,ETHUSDT", "--intervals", "15m,1m", "--start", WEEK_START)
        env = dict(BINANCE_BASE_URL=fx.url, DATAOPS_BATCH_ROWS="1000")
        r = self.run_dataops("run", *args, **env)
        self.assertEqual(r.code, 0, r)
        r = self.go(*args, **env)
        self.assertEqual(r.code, 0, r)
        lite_raw = self.query(SQLITE_RAW % RAW)
        lite_t = self.query(SQLITE_T % ("utc_singapore_datetime", TRANSFORMED))
        pg_raw = self.raw_rows()
        pg_t = self.t_rows()
        self.assertEqual(len(lite_raw), N1M + len(WEEK))
        self.assertEqual(len(pg_raw), len(lite_raw))
        self.assertEqual(len(pg_t), len(lite_t))
        # Every value but updated_at (each run has its own).
        self.assertEqual([x[:15] for x in pg_raw], [x[:15] for x in lite_raw])
        for p, s in zip(pg_t, lite_t):
            self.assertEqual(p[:15], s[:15])
            self.assertEqual(p[16], s[16][:23])
            self.assertEqual(offset_of(p[16], p[2]), s[16][23:])
        for row in pg_raw + pg_t:
            self.assertRegex(row[15], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
        # The run's figures too.
        lite_pairs = self.query("SELECT %s FROM dataops_run_pairs ORDER BY 1, 2" % PAIRS_COLS)
        pg_pairs = self.q("SELECT %s FROM %s ORDER BY 1, 2"
                          % (PAIRS_COLS, self.t("dataops_run_pairs")))
        self.assertEqual([tuple(str(v) for v in x) for x in lite_pairs],
                         [tuple(x) for x in pg_pairs])


class IncrementalTest(PgTest):
    def test_second_run_adds_only_new_closed_klines(self):
        mid = 1679443200000   # 2023-03-22 00:00
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=mid + 1)
        args = ("--intervals", "15m", "--start", WEEK_START)
        r1 = self.go(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r1.code, 0, r1)
        self.assertEqual(self.count(RAW), 2 * 96)
        before_raw = self.versions(RAW)
        before_t = self.versions(TRANSFORMED)
        fx.set_now(WEEK_END_MS)
        r2 = self.go(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r2.code, 0, r2)
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual(self.count(TRANSFORMED), 667)
        # The first run's rows were not touched.
        self.assertEqual(self.versions(RAW)[:192], before_raw)
        self.assertEqual(self.versions(TRANSFORMED)[:192], before_t)
        starts = [int(q["query"]["startTime"]) for q in fx.requests("/api/v3/klines")]
        self.assertIn(mid, starts)
        extracted = self.q("SELECT p.rows_extracted FROM %s p JOIN %s r USING (run_id) "
                           "ORDER BY r.started_at" % (self.t("dataops_run_pairs"),
                                                      self.t("dataops_runs")))
        self.assertEqual(extracted, [("192",), ("475",)])


class RerunTest(PgTest):
    def test_rerun_changes_nothing(self):
        fx = self.week_and_1m()
        args = ("--symbols", "BTCUSDT,ETHUSDT", "--intervals", "15m,1m", "--start", WEEK_START)
        self.assertEqual(self.go(*args, BINANCE_BASE_URL=fx.url).code, 0)
        raw = self.versions(RAW)
        tr = self.versions(TRANSFORMED)
        self.assertEqual(len(raw), N1M + len(WEEK))
        r = self.go(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.versions(RAW), raw)
        self.assertEqual(self.versions(TRANSFORMED), tr)
        self.assertEqual(self.count("dataops_runs"), 2)


class QuarantineTest(PgTest):
    def test_bad_rows_are_quarantined_and_the_run_exits_3(self):
        rows = [list(r) for r in WEEK[:10]]
        rows[3][2] = "1.00000000"            # high below low
        rows[6][9] = "999999.00000000"       # taker buy above volume
        body = write_rows(os.path.join(self.dir, "bad.json"), rows)
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS,
                       faults=["klines:1:body:" + body])
        r = self.go("--intervals", "15m", "--start", WEEK_START, "--end", str(rows[9][6] + 1),
                    BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 3, r)
        q = self.q("SELECT stage, open_time, reason, row_json::text, row_json->>2 FROM %s "
                   "ORDER BY open_time" % self.t("dataops_quarantine"))
        self.assertEqual([int(x[1]) for x in q], [rows[3][0], rows[6][0]])
        self.assertIn("high 1.00000000 is below", q[0][2])
        self.assertEqual(json.loads(q[0][3]), rows[3])
        self.assertEqual(q[0][4], "1.00000000")
        self.assertEqual(self.count(RAW), 8)
        self.assertEqual(self.v("SELECT status FROM %s" % self.t("dataops_runs")), "rejected")


class ConnectionLossTest(PgTest):
    def test_connection_killed_mid_copy_fails_cleanly_then_converges(self):
        # Three pages per batch, each page 150 ms late and one request at a
        # time: the COPY of a batch stays open while the pipeline waits on
        # the exchange.  ETHUSDT 1m goes first; BTCUSDT 15m comes after the
        # connection was lost.
        n, batch = 9000, 3000
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], synth=[synth("ETHUSDT", n)],
                       latency_ms=150, now=WEEK_END_MS)
        env = self.env(BINANCE_BASE_URL=fx.url, DATAOPS_BATCH_ROWS=str(batch),
                       DATAOPS_MAX_IN_FLIGHT="1", DATAOPS_WAREHOUSE=self.url,
                       DATAOPS_PG_SCHEMA=self.schema)
        pairs = ["--symbols", "ETHUSDT,BTCUSDT", "--intervals", "1m,15m", "--start", WEEK_START]
        args = [BIN, "run"] + pairs
        p = subprocess.Popen(args, cwd=self.dir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            # Once a batch is committed, catch the next one inside its COPY.
            made = self.pg.wait_for("SELECT 1 WHERE to_regclass('%s') IS NOT NULL"
                                    % self.t(RAW), DB, timeout=30)
            self.assertIsNotNone(made, "the raw table was never created")
            # One statement finds the backend waiting for COPY data and kills it.
            hit = self.pg.wait_for(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "application_name = 'dataops' AND state = 'active' AND "
                "wait_event = 'ClientRead' AND "
                "query ~ 'COPY (pg_temp.dataops_stage_raw|%s) ' AND "
                "(SELECT count(*) FROM %s) >= %d" % (self.t(RAW), self.t(RAW), batch), DB,
                timeout=30)
            self.assertIsNotNone(hit, "never saw the pipeline inside a COPY")
            self.assertEqual(hit[1], "t")
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 1, err[-3000:])
        # (The batch's last page may have been on its way: then the loss
        # shows in the upsert that follows the COPY.)
        msgs = "\n".join(ev["msg"] for ev in self.log_events(Result(p, out, err)))
        self.assertRegex(msgs, r"failed: connection to the PostgreSQL warehouse %s lost "
                         r"during (COPY|the raw upsert): " % re.escape(self.url))
        # Nothing of the killed batch: whole batches, no hole, no transform.
        loaded = self.assert_contiguous(60000)
        self.assertGreaterEqual(loaded, batch)
        self.assertEqual(loaded % batch, 0, "only whole batches are committed")
        self.assertLess(loaded, n)
        self.assertEqual(self.v("SELECT count(*) FROM %s WHERE symbol = 'ETHUSDT'"
                                % self.t(TRANSFORMED)), "0")
        # The run reconnected, took the lock again and went on with the
        # other pairs, then recorded that it failed, and why.
        self.assertIn("the connection to %s was lost; reconnecting" % self.url, msgs)
        self.assertIn("took the run lock again", msgs)
        self.assertEqual(self.v("SELECT count(*) FROM %s WHERE symbol = 'BTCUSDT'"
                                % self.t(TRANSFORMED)), str(len(WEEK)))
        status, error = self.q("SELECT status, error FROM %s" % self.t("dataops_runs"))[0]
        self.assertEqual(status, "failed")
        self.assertRegex(error, "lost during (COPY|the raw upsert)")
        self.assertEqual(self.q("SELECT symbol, status FROM %s WHERE rows_extracted > 0 "
                                "ORDER BY 1" % self.t("dataops_run_pairs")),
                         [("BTCUSDT", "ok"), ("ETHUSDT", "failed")])
        # The next run continues from the last whole batch and converges.
        r = self.go(*pairs, BINANCE_BASE_URL=fx.url, DATAOPS_BATCH_ROWS=str(batch),
                    DATAOPS_MAX_IN_FLIGHT="1")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.assert_contiguous(60000), n)
        self.assertEqual(self.count(TRANSFORMED), n + len(WEEK))
        self.assertEqual(self.q("SELECT count(*) FROM %s t JOIN %s r USING (symbol, \"interval\""
                                ") WHERE r.open_time = (extract(epoch FROM t.open_time) * 1000)"
                                "::bigint AND r.\"open\"::float8 = t.\"open\""
                                % (self.t(TRANSFORMED), self.t(RAW))), [(str(n + len(WEEK)),)])


class CrashTest(PgTest):
    def go_all(self, schema, failpoint=None, **env):
        if failpoint:
            env["DATAOPS_FAILPOINT"] = failpoint
        return self.go("--symbols", "ETHUSDT,BTCUSDT", "--intervals", "1m,15m", "--start",
                       WEEK_START, schema=schema, BINANCE_BASE_URL=self.fx.url,
                       DATAOPS_BATCH_ROWS="1000", **env)

    def test_killed_between_copy_and_commit_then_converges(self):
        self.fx = self.week_and_1m()
        clean = self.schema + "_clean"
        self.assertEqual(self.go_all(clean).code, 0)
        want = ([x[:15] for x in self.raw_rows(clean)], [x[:15] for x in self.t_rows(clean)])
        self.assertEqual(len(want[0]), N1M + len(WEEK))
        for fp in ("wh.raw.inside", "wh.transformed.inside"):
            with self.subTest(failpoint=fp):
                schema = self.schema + "_" + fp.split(".")[1]
                r = self.go_all(schema, failpoint=fp)
                self.assertEqual(r.code, -signal.SIGKILL, r)
                self.assertIn("failpoint %s triggered" % fp, r.err)
                # The server rolled the batch back when the connection closed.
                gone = self.pg.wait_for("SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM "
                                        "pg_stat_activity WHERE application_name = 'dataops')",
                                        DB, timeout=10)
                self.assertIsNotNone(gone, "the killed run's session lingers")
                # ETHUSDT 1m goes first: its first batch died uncommitted.
                raw, tr = self.count(RAW, schema), self.count(TRANSFORMED, schema)
                self.assertEqual(raw, 0 if fp == "wh.raw.inside" else N1M)
                self.assertEqual(tr, 0)
                killed = self.v("SELECT run_id FROM %s" % self.t("dataops_runs", schema))
                r = self.go_all(schema)
                self.assertEqual(r.code, 0, r)
                got = ([x[:15] for x in self.raw_rows(schema)],
                       [x[:15] for x in self.t_rows(schema)])
                self.assertEqual(got, want, fp)
                # The run that finished it found the killed one's record.
                self.assertIn("1 earlier run(s) ended without recording it", r.err)
                self.assertEqual(self.q("SELECT status, coalesce(exit_code, -1) FROM %s WHERE "
                                        "run_id = '%s'" % (self.t("dataops_runs", schema),
                                                           killed)), [("abandoned", "-1")])


class AbandonedRunTest(PgTest):
    """A SIGKILLed run leaves its record 'running'.  The run lock is per (schema,
    raw table) while dataops_runs is per schema, so only the next run on the
    same raw table may mark it abandoned."""

    def kill_run(self, fx, **env):
        r = self.go("--symbols", "ETHUSDT", "--start", WEEK_START, BINANCE_BASE_URL=fx.url,
                    DATAOPS_BATCH_ROWS="1000", DATAOPS_FAILPOINT="wh.raw.committed:kill", **env)
        self.assertEqual(r.code, -signal.SIGKILL, r)
        return self.v("SELECT run_id FROM %s WHERE status = 'running'" % self.t("dataops_runs"))

    def status(self, run_id):
        return self.v("SELECT status FROM %s WHERE run_id = '%s'"
                      % (self.t("dataops_runs"), run_id))

    def test_only_a_run_on_the_same_raw_table_marks_a_killed_run(self):
        fx = self.fake(synth=[synth("ETHUSDT", N1M)], now=WEEK_END_MS)
        killed = self.kill_run(fx)
        self.assertEqual(self.status(killed), "running")
        other = self.go("--symbols", "ETHUSDT", "--start", WEEK_START, BINANCE_BASE_URL=fx.url,
                        BIGQUERY_RAW_TABLE_NAME="other_raw",
                        BIGQUERY_TRANSFORMED_TABLE_NAME="other_transformed")
        self.assertEqual(other.code, 0, other)
        self.assertEqual(self.status(killed), "running")  # not covered by that run's lock
        self.assertNotIn("earlier run(s)", other.err)
        r = self.go("--symbols", "ETHUSDT", "--start", WEEK_START, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertIn("1 earlier run(s) ended without recording it (killed, crashed or lost "
                      "with their host), marked 'abandoned': " + killed, r.err)
        status, exit_code, error, raw_table = self.q(
            "SELECT status, coalesce(exit_code, -1), error, raw_table FROM %s WHERE run_id = '%s'"
            % (self.t("dataops_runs"), killed))[0]
        self.assertEqual((status, exit_code, raw_table), ("abandoned", "-1", RAW))
        self.assertIn("no end was recorded", error)
        self.assertEqual(self.v("SELECT count(*) FROM %s WHERE status = 'running'"
                                % self.t("dataops_runs")), "0")

    def test_a_runs_table_from_before_gets_the_column(self):
        early = self.fake(synth=[synth("ETHUSDT", N1M)], now=WEEK_END_MS - 1000 * 60000)
        self.assertEqual(self.go("--start", WEEK_START, "--symbols", "ETHUSDT",
                                 BINANCE_BASE_URL=early.url).code, 0)
        # As an older dataops left it: no column, and a run that died then.
        self.q("ALTER TABLE %s DROP COLUMN raw_table" % self.t("dataops_runs"))
        self.q("UPDATE %s SET status = 'running', ended_at = NULL" % self.t("dataops_runs"))
        legacy = self.v("SELECT run_id FROM %s" % self.t("dataops_runs"))
        fx = self.fake(synth=[synth("ETHUSDT", N1M)], now=WEEK_END_MS)
        r = self.go("--symbols", "ETHUSDT", "--start", WEEK_START, BINANCE_BASE_URL=fx.url,
                    DATAOPS_FAILPOINT="wh.raw.committed:kill")
        self.assertEqual(r.code, -signal.SIGKILL, r)
        self.assertIn("added column raw_table", r.err)
        killed = self.v("SELECT run_id FROM %s WHERE raw_table IS NOT NULL"
                        % self.t("dataops_runs"))
        r = self.go("--symbols", "ETHUSDT", "--start", WEEK_START, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.status(killed), "abandoned")
        # Recorded before the column: whose lock covered it is unknown, so it stays.
        self.assertEqual(self.status(legacy), "running")

    def test_a_role_that_may_not_add_the_column_runs_on_without_it(self):
        early = self.fake(synth=[synth("ETHUSDT", N1M)], now=WEEK_END_MS - 1000 * 60000)
        self.assertEqual(self.go("--start", WEEK_START, "--symbols", "ETHUSDT",
                                 BINANCE_BASE_URL=early.url).code, 0)
        self.q("ALTER TABLE {runs} DROP COLUMN raw_table; GRANT USAGE ON SCHEMA {s} TO {u};"
               " GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {u}"
               .format(runs=self.t("dataops_runs"), s=self.schema, u=SECURE_USER))
        fx = self.fake(synth=[synth("ETHUSDT", N1M)], now=WEEK_END_MS)
        r = self.go("--symbols", "ETHUSDT", "--start", WEEK_START, BINANCE_BASE_URL=fx.url,
                    url=self.pg.url(DB, SECURE_USER, SECURE_PW))
        self.assertEqual(r.code, 0, r)
        self.assertIn("must be owner of table dataops_runs", r.err)
        self.assertIn("runs that die stay 'running' in %s until its owner runs: ALTER TABLE %s "
                      "ADD COLUMN IF NOT EXISTS raw_table text"
                      % (json.dumps(self.t("dataops_runs"))[1:-1],
                         json.dumps(self.t("dataops_runs"))[1:-1]), r.err)
        self.assertEqual(self.count(RAW), N1M)
        self.assertEqual(self.v("SELECT count(*) FROM %s WHERE status = 'ok'"
                                % self.t("dataops_runs")), "2")


class LockTest(PgTest):
    def test_two_concurrent_runs_on_one_database(self):
        n = 5000
        # Pages slow enough (the extract takes ~1 s under the lock) that the
        # second run is surely started before the first one is done, however
        # slowly a loaded machine starts it.
        fx = self.fake(synth=[synth("ETHUSDT", n)], latency_ms=300, now=WEEK_END_MS)
        env = self.env(BINANCE_BASE_URL=fx.url, DATAOPS_LOCK_TIMEOUT="120",
                       DATAOPS_WAREHOUSE=self.url, DATAOPS_PG_SCHEMA=self.schema)
        args = [BIN, "run", "--symbols", "ETHUSDT", "--start", WEEK_START]
        procs = [subprocess.Popen(args, cwd=self.dir, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        self.assertEqual([p.returncode for p in procs], [0, 0], outs)
        self.assertTrue(any("another run holds the lock" in o[1] for o in outs),
                        "one run should have waited for the other")
        self.assertEqual(self.assert_contiguous(60000), n)
        self.assertEqual(self.count(TRANSFORMED), n)
        self.assertEqual(self.count("dataops_runs"), 2)
        extracted = sorted(int(x[0]) for x in self.q("SELECT rows_extracted FROM %s"
                                                     % self.t("dataops_run_pairs")))
        self.assertEqual(extracted, [0, n])

    def test_lock_held_elsewhere_exits_4_naming_the_holder(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        holder = self.pg.session(DB)
        try:
            holder.stdin.write("SELECT pg_advisory_lock(hashtext('dataops:%s.%s'));\n"
                               % (self.schema, RAW))
            holder.stdin.flush()
            held = self.pg.wait_for("SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                                    "AND granted", DB)
            self.assertIsNotNone(held)
            t0 = time.time()
            r = self.go("--intervals", "15m", "--start", WEEK_START, BINANCE_BASE_URL=fx.url,
                        DATAOPS_LOCK_TIMEOUT="1")
            self.assertGreaterEqual(time.time() - t0, 1.0)
        finally:
            holder.stdin.close()
            holder.wait(10)
        self.assertEqual(r.code, 4, r)
        self.assertIn("another run holds the warehouse lock dataops:%s.%s on %s"
                      % (self.schema, RAW, self.url), r.err)
        self.assertIn("server process %s" % held[0], r.err)
        self.assertEqual(fx.requests("/api/v3/klines"), [])
        # Released when the holder's session ended.
        r = self.go("--intervals", "15m", "--start", WEEK_START, BINANCE_BASE_URL=fx.url,
                    DATAOPS_LOCK_TIMEOUT="10")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), len(WEEK))


class CheckTest(PgTest):
    def test_check_says_what_the_role_lacks(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        self.pg.execute("DROP ROLE IF EXISTS dataops_reader; CREATE ROLE dataops_reader LOGIN",
                        DB)
        ok = self.run_dataops("check", BINANCE_BASE_URL=fx.url, DATAOPS_WAREHOUSE=self.url,
                              DATAOPS_PG_SCHEMA=self.schema)
        self.assertEqual(ok.code, 0, ok)
        self.assertIn("ok    warehouse  %s: reachable" % self.url, ok.out)
        self.assertIsNone(self.v("SELECT 1 FROM pg_namespace WHERE nspname = '%s'"
                                 % self.schema), "check must not create anything")
        reader = self.pg.url(DB, "dataops_reader")
        bad = self.run_dataops("check", BINANCE_BASE_URL=fx.url, DATAOPS_WAREHOUSE=reader,
                               DATAOPS_PG_SCHEMA=self.schema)
        self.assertEqual(bad.code, 1, bad)
        self.assertIn('FAIL  warehouse  %s: schema "%s" does not exist and role dataops_reader '
                      'may not create it (no CREATE on database %s)' % (reader, self.schema, DB),
                      bad.out)


class PasswordTest(PgTest):
    schema = "secured"
    WRONG = "WrongPlanted-5b1e0d"

    def outputs_of(self, *results):
        texts = []
        for r in results:
            texts += [r.out, r.err]
        for d, _, files in os.walk(self.dir):
            for f in files:
                with open(os.path.join(d, f), "rb") as fh:
                    texts.append(fh.read().decode("utf-8", "replace"))
        return texts

    def test_wrong_password_names_the_endpoint_and_no_password_is_shown(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        args = ("--intervals", "15m", "--start", WEEK_START)
        shown = "postgresql://%s:****@127.0.0.1:%d/%s" % (SECURE_USER, self.pg.port, DB)
        bad = self.go(*args, url=self.pg.url(DB, SECURE_USER, self.WRONG),
                      BINANCE_BASE_URL=fx.url, DATAOPS_LOG_LEVEL="debug")
        self.assertEqual(bad.code, 1, bad)
        msgs = "\n".join(ev["msg"] for ev in self.log_events(bad))
        self.assertIn("cannot connect to the PostgreSQL warehouse " + shown, msgs)
        self.assertIn('password authentication failed for user "%s"' % SECURE_USER, msgs)
        self.assertIn('server at "127.0.0.1", port %d' % self.pg.port, msgs)
        # The right password, in the URL.
        good = self.go(*args, url=self.pg.url(DB, SECURE_USER, SECURE_PW),
                       BINANCE_BASE_URL=fx.url, DATAOPS_LOG_LEVEL="debug")
        self.assertEqual(good.code, 0, good)
        self.assertIn("connected to PostgreSQL " + shown, good.err)
        self.assertEqual(self.count(RAW), len(WEEK))
        # The config dump masks it.
        cfg = self.run_dataops("config", DATAOPS_WAREHOUSE=self.pg.url(DB, SECURE_USER,
                                                                       SECURE_PW))
        self.assertEqual(cfg.code, 0, cfg)
        self.assertIn(shown, cfg.out)
        # libpq's own ways: PGPASSWORD, and a password file.
        plain = self.pg.url(DB, SECURE_USER)
        by_env = self.go(*args, url=plain, BINANCE_BASE_URL=fx.url, PGPASSWORD=SECURE_PW,
                         DATAOPS_LOG_LEVEL="debug")
        self.assertEqual(by_env.code, 0, by_env)
        passfile = os.path.join(self.dir, "pgpass")
        with open(passfile, "w") as f:
            f.write("127.0.0.1:%d:%s:%s:%s\n" % (self.pg.port, DB, SECURE_USER, SECURE_PW))
        os.chmod(passfile, 0o600)
        by_file = self.go(*args, url=plain, BINANCE_BASE_URL=fx.url, PGPASSFILE=passfile,
                          DATAOPS_LOG_LEVEL="debug")
        self.assertEqual(by_file.code, 0, by_file)
        # A password as a URL parameter is masked as well.
        by_param = self.go(*args, url=plain + "?password=" + SECURE_PW,
                           BINANCE_BASE_URL=fx.url, DATAOPS_LOG_LEVEL="debug")
        self.assertEqual(by_param.code, 0, by_param)
        self.assertIn("connected to PostgreSQL %s?password=****" % plain,
                      "\n".join(ev["msg"] for ev in self.log_events(by_param)))
        no_pw = self.go(*args, url=plain, BINANCE_BASE_URL=fx.url,
                        PGPASSFILE=os.path.join(self.dir, "none"))
        self.assertEqual(no_pw.code, 1, no_pw)
        self.assertIn("password", no_pw.err)
        os.unlink(passfile)
        for text in self.outputs_of(bad, good, cfg, by_env, by_file, by_param, no_pw):
            self.assertNotIn(SECURE_PW, text)
            self.assertNotIn(self.WRONG, text)
        runs = self.q("SELECT coalesce(error, '') FROM secured.dataops_runs")
        self.assertEqual(len(runs), 4)
        self.assertFalse(any(SECURE_PW in x[0] for x in runs))


def iso(ms):
    return datetime.utcfromtimestamp(ms / 1000).strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % (ms % 1000)


def month_start(ms):
    d = datetime.utcfromtimestamp(ms / 1000)
    return int(calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000)


class PlannerTest(PgTest):
    """dataops plan and run on PostgreSQL: the holes come from its LAG/LEAD
    query on the primary key, the ranges from <schema>.dataops_ranges."""
    MIN = 60000

    def plan(self, *args, **env):
        env.setdefault("DATAOPS_WAREHOUSE", self.url)
        env.setdefault("DATAOPS_PG_SCHEMA", self.schema)
        r = self.run_dataops("plan", *args, **env)
        self.assertEqual(r.code, 0, r)
        return r, plan_holes(r.out)

    def delete(self, first, last, transformed=True):
        """Delete the candles opening in [first, last] from raw (and transformed)."""
        self.pg.execute("DELETE FROM %s WHERE open_time BETWEEN %d AND %d"
                        % (self.t(RAW), first, last), DB)
        if transformed:
            self.pg.execute("DELETE FROM %s WHERE open_time BETWEEN to_timestamp(%d / 1000.0)"
                            " AND to_timestamp(%d / 1000.0)"
                            % (self.t(TRANSFORMED), first, last), DB)

    def markers(self):
        return self.q("SELECT range_from, range_to FROM %s WHERE kind = 'transform'"
                      % self.t("dataops_ranges"))

    def test_holes_are_planned_and_filled(self):
        fx = self.fake(synth=[synth("ETHUSDT", N1M)], now=WEEK_END_MS)
        start = WEEK_END_MS - N1M * self.MIN
        args = ("--symbols", "ETHUSDT", "--start", str(start))
        self.assertEqual(self.go(*args, BINANCE_BASE_URL=fx.url).code, 0)
        m = self.MIN
        self.delete(start + 100 * m, start + 599 * m)
        self.delete(start + 1000 * m, start + 1009 * m, transformed=False)
        r, holes = self.plan(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(holes, [(iso(start + 100 * m), iso(start + 600 * m), 500),
                                 (iso(start + 1000 * m), iso(start + 1010 * m), 10)], r.out)
        before = len(fx.requests("/api/v3/klines"))
        # Killed after the hole's raw rows committed: the transform marker
        # commits with them, and the next run transforms the hole.
        r = self.go(*args, BINANCE_BASE_URL=fx.url, DATAOPS_FAILPOINT="wh.raw.committed:kill")
        self.assertEqual(r.code, -9, r)
        self.assertEqual(self.assert_contiguous(m), N1M)
        self.assertEqual(self.count(TRANSFORMED), N1M - 500)
        self.assertEqual(self.markers(), [(str(start + 100 * m), str(start + 600 * m)),
                                          (str(start + 1000 * m), str(start + 1010 * m))])
        r = self.go(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(TRANSFORMED), N1M)
        self.assertEqual(self.markers(), [])
        self.assertEqual(self.t_rows(), sorted(self.t_rows()))
        # Only the holes were asked for, once each.
        asked = sorted(int(q["query"]["startTime"]) for q in
                       fx.requests("/api/v3/klines")[before:])
        self.assertEqual(asked, [start + 100 * m, start + 1000 * m])
        r, holes = self.plan(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(holes, [])
        self.assertIn("nothing missing", r.out)

    def test_tail_batches_go_straight_in_and_holes_are_merged(self):
        # A tail (after the newest row of the pair) has nothing to merge
        # with: its batches are COPYed straight into the table.  A hole's
        # batch goes through the staging table and the upsert.
        fx = self.fake(synth=[synth("ETHUSDT", N1M)], now=WEEK_END_MS)
        m = self.MIN
        start = WEEK_END_MS - N1M * m
        args = ("--symbols", "ETHUSDT", "--start", str(start))
        env = dict(BINANCE_BASE_URL=fx.url, DATAOPS_BATCH_ROWS="1000",
                   DATAOPS_LOG_LEVEL="debug")

        def routes(r):
            self.assertEqual(r.code, 0, r)
            msgs = [ev["msg"] for ev in self.log_events(r)]
            return [sorted(x for x in msgs if x.endswith(end)) for end in
                    ("rows copied straight into the table", "rows upserted")]

        straight, upserted = routes(self.go(*args, **env))
        self.assertEqual(straight, ["1000 raw rows copied straight into the table"] * 2 +
                         ["1000 transformed rows copied straight into the table"] * 2 +
                         ["500 raw rows copied straight into the table",
                          "500 transformed rows copied straight into the table"])
        self.assertEqual(upserted, [])
        self.delete(start + 100 * m, start + 199 * m)
        straight, upserted = routes(self.go(*args, **env))
        self.assertEqual(straight, [])
        self.assertEqual(upserted, ["100 raw rows upserted", "100 transformed rows upserted"])
        self.assertEqual(self.assert_contiguous(m), N1M)
        self.assertEqual(self.count(TRANSFORMED), N1M)
        # Both routes leave what the embedded default holds.
        db = os.path.join(self.dir, "sqlite.db")
        r = self.run_dataops("run", *args, DATAOPS_WAREHOUSE=db, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.q("SELECT open_time, \"open\", high, low, \"close\", volume FROM %s"
                                " ORDER BY open_time" % self.t(RAW)),
                         [tuple(str(v) for v in row) for row in self.query(
                             'SELECT open_time, "open", high, low, "close", volume FROM "%s"'
                             ' ORDER BY open_time' % RAW, path=db)])

    def test_a_tail_row_inserted_meanwhile_fails_the_batch_then_converges(self):
        # Another program inserts a candle of the tail while a straight COPY
        # is under way: the COPY waits for its transaction, then fails on
        # the key once it commits.  The batch rolls back whole; the next run
        # fills the rest around that row.
        fx = self.fake(synth=[synth("ETHUSDT", N1M)], now=WEEK_END_MS)
        m = self.MIN
        start = WEEK_END_MS - N1M * m
        args = ("--symbols", "ETHUSDT", "--start", str(start))
        env = dict(BINANCE_BASE_URL=fx.url, DATAOPS_BATCH_ROWS="1000")
        fx.set_now(start + 1000 * m)
        self.assertEqual(self.go(*args, **env).code, 0)
        self.assertEqual(self.count(), 1000)
        fx.set_now(WEEK_END_MS)
        t = start + 1500 * m
        import urllib.request
        with urllib.request.urlopen("%s/api/v3/klines?symbol=ETHUSDT&interval=1m&startTime=%d"
                                    "&limit=1" % (fx.url, t)) as resp:
            k = json.loads(resp.read())[0]
        holder = self.pg.session(DB)
        try:
            holder.stdin.write(
                "BEGIN; INSERT INTO %s VALUES (to_timestamp(%d / 1000.0) AT TIME ZONE 'UTC', %d,"
                " '%s', '%s', '%s', '%s', '%s', %d, '%s', %d, '%s', '%s', '%s', now(),"
                " 'ETHUSDT', '1m');\n" % ((self.t(RAW), t) + tuple(k)))
            holder.stdin.flush()
            p = subprocess.Popen([BIN, "run"] + list(args), cwd=self.dir, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=self.env(
                                     DATAOPS_WAREHOUSE=self.url, DATAOPS_PG_SCHEMA=self.schema,
                                     **env))
            waiting = self.pg.wait_for(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'dataops' AND"
                " wait_event_type = 'Lock' AND query ~ 'COPY %s '" % self.t(RAW), DB,
                timeout=30)
            holder.stdin.write("COMMIT;\n")
            holder.stdin.flush()
            out, err = p.communicate(timeout=60)
        finally:
            holder.stdin.close()
            holder.wait(10)
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertIsNotNone(waiting, "the straight COPY never waited for the other insert")
        self.assertEqual(p.returncode, 1, err[-3000:])
        self.assertIn("duplicate key", err)
        self.assertIn("SQLSTATE 23505", err)
        self.assertEqual(self.count(), 1001, "the failed batch left nothing")
        r = self.go(*args, **env)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.assert_contiguous(m), N1M)
        self.assertEqual(self.count(TRANSFORMED), N1M)

    def test_calendar_month_holes(self):
        days = load_rows(F1D)
        months = rollup(days, month_start)
        path = write_rows(os.path.join(self.dir, "1M.json"), months)
        fx = self.fake(data=["BTCUSDT:1M:" + path], now=months[-1][6] + 1)
        args = ("--intervals", "1M", "--start", "2024-01-01")
        self.assertEqual(self.go(*args, BINANCE_BASE_URL=fx.url).code, 0)
        self.assertEqual(self.count(), 24)
        jan, mar, jun = (calendar.timegm((2024, mo, 1, 0, 0, 0)) * 1000 for mo in (1, 3, 6))
        self.delete(jan, jan)
        self.delete(mar, jun - 1)
        r, holes = self.plan(*args, BINANCE_BASE_URL=fx.url)
        feb = calendar.timegm((2024, 2, 1, 0, 0, 0)) * 1000
        self.assertEqual(holes, [(iso(jan), iso(feb), 1), (iso(mar), iso(jun), 3)], r.out)
        self.assertEqual(self.go(*args, BINANCE_BASE_URL=fx.url).code, 0)
        self.assertEqual(self.count(), 24)
        self.assertEqual(self.count(TRANSFORMED), 24)
        self.assertEqual(self.plan(*args, BINANCE_BASE_URL=fx.url)[1], [])

    def test_a_real_outage_is_remembered_not_fetched_again(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        args = ("--intervals", "15m", "--start", "2023-03-01")
        self.assertEqual(self.go(*args, BINANCE_BASE_URL=fx.url).code, 0)
        self.assertEqual(self.count(), 667)
        gaps = self.q("SELECT range_from, range_to FROM %s WHERE kind = 'known_gap' ORDER BY 1"
                      % self.t("dataops_ranges"))
        mar1 = calendar.timegm((2023, 3, 1, 0, 0, 0)) * 1000
        outage = (calendar.timegm((2023, 3, 24, 12, 45, 0)) * 1000,
                  calendar.timegm((2023, 3, 24, 14, 0, 0)) * 1000)
        self.assertEqual(gaps, [(str(mar1), str(WEEK[0][0])),
                                (str(outage[0]), str(outage[1]))])
        r, holes = self.plan(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(holes, [])
        self.assertIn("left out: %d candles" % (19 * 96 + 5), r.out)
        n = len(fx.requests("/api/v3/klines"))
        self.assertEqual(self.go(*args, BINANCE_BASE_URL=fx.url).code, 0)
        self.assertEqual(len(fx.requests("/api/v3/klines")), n)


if __name__ == "__main__":
    unittest.main(verbosity=2)
