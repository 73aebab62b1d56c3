#!/usr/bin/env python3
"""System tests: the built dataops binary end to end on a temporary
directory, against the loopback fake exchange serving real Binance data.

Covers: first run over a real outage (gaps, a candle cut short, zero-trade
candles: no false rejections), the still-forming candle, an incremental
second run, a rerun that changes nothing, a run made to fail between the
raw load and the transform followed by a run that completes it, the
quality gate with quarantine, and the artifacts of a run.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import (F15M, F5M, RAW, TRANSFORMED, PipelineTest, load_rows,  # noqa: E402
                     write_rows)

WEEK_START = "2023-03-20"
WEEK_ROWS = load_rows(F15M)
WEEK_END_MS = WEEK_ROWS[-1][6] + 1          # after the last candle closed


class FirstRunTest(PipelineTest):
    def test_outage_week_loads_without_false_rejections(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS + 60000)
        r = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual(self.count(TRANSFORMED), 667)
        self.assertEqual(self.query("SELECT count(*) FROM dataops_quarantine")[0][0], 0)
        # Raw is lossless: every field as the exchange sent it.
        got = self.query('SELECT open_time, "open", high, low, "close", volume, close_time, '
                         'quote_asset_volume, number_of_trades, taker_buy_base_asset_volume, '
                         'taker_buy_quote_asset_volume, "ignore" FROM "%s" ORDER BY open_time'
                         % RAW)
        self.assertEqual([list(g) for g in got], WEEK_ROWS)
        # The quality figures of the real outage of 2023-03-24.
        pair = self.query("SELECT gaps, missing_candles, short_candles, zero_trade, status "
                          "FROM dataops_run_pairs")[0]
        self.assertEqual(pair, (1, 5, 1, 5, "ok"))
        self.assertIn("BTCUSDT", r.out)

    def test_transformed_values_and_local_time(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        r = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        rows = self.query('SELECT utc_datetime, open_time, "open", high, low, "close", volume, '
                          'close_time, quote_asset_volume, number_of_trades, '
                          'taker_buy_base_asset_volume, taker_buy_quote_asset_volume, '
                          '"ignore", utc_singapore_datetime FROM "%s" ORDER BY open_time'
                          % TRANSFORMED)
        self.assertEqual(len(rows), len(WEEK_ROWS))
        for got, src in zip(rows, WEEK_ROWS):
            self.assertEqual(got[2:7], tuple(float(x) for x in src[1:6]))
            self.assertEqual(got[8], float(src[7]))
            self.assertEqual(got[9], src[8])
            self.assertEqual(got[10:12], (float(src[9]), float(src[10])))
        self.assertEqual(rows[0][0], "2023-03-20 00:00:00.000")
        self.assertEqual(rows[0][1], "2023-03-20 00:00:00.000")
        self.assertEqual(rows[0][7], "2023-03-20 00:14:59.999")
        self.assertEqual(rows[0][13], "2023-03-20 08:00:00.000+08:00")
        # The truncated candle keeps the close_time the exchange sent.
        cut = [r for r in rows if r[0] == "2023-03-24 12:30:00.000"][0]
        self.assertEqual(cut[7], "2023-03-24 12:39:41.646")

    def test_other_timezone_and_column_name(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        r = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                             BINANCE_BASE_URL=fx.url, DATAOPS_TIMEZONE="America/New_York",
                             DATAOPS_LOCAL_TIME_COLUMN="utc_new_york_datetime")
        self.assertEqual(r.code, 0, r)
        first = self.query('SELECT utc_new_york_datetime FROM "%s" ORDER BY open_time LIMIT 1'
                           % TRANSFORMED)[0][0]
        self.assertEqual(first, "2023-03-19 20:00:00.000-04:00")


class FormingCandleTest(PipelineTest):
    def test_last_candle_still_forming_is_not_stored(self):
        last_open = WEEK_ROWS[-1][0]
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=last_open + 5 * 60000)
        r = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 666)
        self.assertEqual(self.query('SELECT max(open_time) FROM "%s"' % RAW)[0][0],
                         WEEK_ROWS[-2][0])
        self.assertEqual(self.query("SELECT open_skipped FROM dataops_run_pairs")[0][0], 1)
        # Once it has closed, the next run stores the final candle.
        fx.set_now(WEEK_END_MS)
        r = self.run_dataops("run", "--intervals", "15m", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        last = self.query('SELECT "close", volume, number_of_trades FROM "%s" '
                          'WHERE open_time = ?' % RAW, last_open)[0]
        self.assertEqual(last, (WEEK_ROWS[-1][4], WEEK_ROWS[-1][5], WEEK_ROWS[-1][8]))

    def test_real_5m_sample_with_an_open_last_candle(self):
        rows = load_rows(F5M)
        # The sample was fetched while its last candle (19:10) was forming.
        fx = self.fake(data=["BTCUSDT:5m:" + F5M], now=rows[-1][0] + 2 * 60000)
        r = self.run_dataops("run", "--intervals", "5m", "--start", str(rows[0][0]),
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 999)
        self.assertEqual(self.count(TRANSFORMED), 999)


class IncrementalTest(PipelineTest):
    def test_second_run_adds_only_new_closed_klines(self):
        mid = 1679443200000   # 2023-03-22 00:00
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=mid + 1)
        r1 = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                              BINANCE_BASE_URL=fx.url)
        self.assertEqual(r1.code, 0, r1)
        n1 = self.count(RAW)
        self.assertEqual(n1, 2 * 96)
        before = self.query('SELECT * FROM "%s" ORDER BY open_time' % RAW)
        fx.set_now(WEEK_END_MS)
        r2 = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                              BINANCE_BASE_URL=fx.url)
        self.assertEqual(r2.code, 0, r2)
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual(self.count(TRANSFORMED), 667)
        # Rows of the first run are untouched (same updated_at).
        after = self.query('SELECT * FROM "%s" ORDER BY open_time LIMIT ?' % RAW, n1)
        self.assertEqual(before, after)
        # The second run asked the exchange from the watermark on.
        starts = [int(q["query"]["startTime"]) for q in fx.requests("/api/v3/klines")]
        self.assertIn(mid, starts)
        self.assertNotIn(1679270400000, starts[1:])
        extracted = self.query("SELECT rows_extracted FROM dataops_run_pairs p JOIN "
                               "dataops_runs r USING (run_id) ORDER BY r.started_at")
        self.assertEqual([e[0] for e in extracted], [192, 475])

    def test_rerun_changes_nothing(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        args = ("run", "--intervals", "15m", "--start", WEEK_START)
        self.assertEqual(self.run_dataops(*args, BINANCE_BASE_URL=fx.url).code, 0)
        raw = self.query('SELECT * FROM "%s" ORDER BY open_time' % RAW)
        tr = self.query('SELECT * FROM "%s" ORDER BY open_time' % TRANSFORMED)
        r = self.run_dataops(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.query('SELECT * FROM "%s" ORDER BY open_time' % RAW), raw)
        self.assertEqual(self.query('SELECT * FROM "%s" ORDER BY open_time' % TRANSFORMED), tr)
        self.assertEqual(self.query("SELECT count(*) FROM dataops_runs")[0][0], 2)


class TransformGapTest(PipelineTest):
    """The original leaves a permanent hole when it dies after the raw load;
    here the next run completes the transform from its own watermark."""

    def test_failure_between_raw_and_transform_is_completed_next_run(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        args = ("run", "--intervals", "15m", "--start", WEEK_START)
        r = self.run_dataops(*args, BINANCE_BASE_URL=fx.url,
                             DATAOPS_FAILPOINT="wh.raw.committed:error")
        self.assertEqual(r.code, 1, r)
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual(self.count(TRANSFORMED), 0)
        status = self.query("SELECT status, error FROM dataops_runs")[0]
        self.assertEqual(status[0], "failed")
        self.assertIn("wh.raw.committed", status[1])
        r = self.run_dataops(*args, BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(TRANSFORMED), 667)
        missing = self.query('SELECT count(*) FROM "%s" r WHERE NOT EXISTS (SELECT 1 FROM "%s" '
                             't WHERE t.symbol = r.symbol AND t."interval" = r."interval" AND '
                             't.utc_datetime = r.utc_datetime)' % (RAW, TRANSFORMED))[0][0]
        self.assertEqual(missing, 0)


class QualityGateTest(PipelineTest):
    def test_bad_rows_are_quarantined_and_the_run_exits_3(self):
        rows = [list(r) for r in WEEK_ROWS[:10]]
        rows[3][2] = "1.00000000"            # high below low
        rows[6][9] = "999999.00000000"       # taker buy above volume
        body = write_rows(os.path.join(self.dir, "bad.json"), rows)
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS,
                       faults=["klines:1:body:" + body])
        r = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                             "--end", str(rows[9][6] + 1), BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 3, r)
        q = self.query("SELECT stage, open_time, reason, row_json FROM dataops_quarantine "
                       "ORDER BY open_time")
        self.assertEqual([x[1] for x in q], [rows[3][0], rows[6][0]])
        self.assertIn("high 1.00000000 is below", q[0][2])
        self.assertIn("taker_buy_base_asset_volume", q[1][2])
        self.assertEqual(json.loads(q[0][3]), rows[3])
        self.assertEqual(self.count(RAW), 8)
        self.assertEqual(self.query("SELECT status FROM dataops_runs")[0][0], "rejected")


class ArtifactsTest(PipelineTest):
    def test_lake_objects_and_artifacts(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        r = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        run_id = self.query("SELECT run_id FROM dataops_runs")[0][0]
        files = self.lake_files()
        raw = [f for f in files if f.startswith("thebareops_production/" + RAW +
                                                "/symbol=BTCUSDT/interval=15m/")]
        tr = [f for f in files if f.startswith("thebareops_production/" + TRANSFORMED + "/")]
        self.assertEqual(len(raw), 1)
        self.assertEqual(len(tr), 1)
        self.assertIn(run_id, raw[0])
        with open(os.path.join(self.dir, "data", "lake", raw[0])) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0].split(",")[:3], ["utc_datetime", "open_time", "open"])
        self.assertEqual(len(lines), 668)
        art = "thebareops_production/pipeline-dataops/%s/" % run_id
        for name in ("config.json", "metadata.json", "run.log"):
            self.assertIn(art + name, files)
        meta = json.load(open(os.path.join(self.dir, "data", "lake", art + "metadata.json")))
        self.assertEqual(meta["run_id"], run_id)
        self.assertEqual(meta["status"], "ok")
        self.assertEqual(meta["pairs"][0]["rows_raw_loaded"], 667)
        self.assertEqual(meta["pairs"][0]["missing_candles"], 5)
        cfg = json.load(open(os.path.join(self.dir, "data", "lake", art + "config.json")))
        self.assertEqual(cfg["DATAOPS_INTERVALS"]["value"], "15m")
        with open(os.path.join(self.dir, "data", "lake", art + "run.log")) as f:
            log = [json.loads(x) for x in f]
        self.assertTrue(all(x["run_id"] == run_id for x in log))
        self.assertFalse(any(f.startswith(".tmp/") and f.endswith(".part") for f in files))


if __name__ == "__main__":
    unittest.main(verbosity=2)
