#!/usr/bin/env python3
"""The backfill planner (dataops plan) on warehouses with holes, and `run`
filling them: raw holes, the transform of rows loaded below the
transformed watermark (also after a crash between the two), gaps that are
real exchange outages (remembered, not fetched forever), a head range
before the first row, and rejected candles (not re-quarantined every run)."""
import calendar
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import F1H, F15M, RAW, TRANSFORMED, PipelineTest, load_rows, write_rows  # noqa: E402

START = 1577836800000          # 2020-01-01
MIN = 60000
N = 6000


def iso(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


class PlanTest(PipelineTest):
    def plan(self, *args, **env):
        r = self.run_dataops("plan", *args, **env)
        self.assertEqual(r.code, 0, r)
        rows = []
        for line in r.out.splitlines()[2:]:
            f = line.split()
            if len(f) >= 11 and f[2] in ("hole", "tail"):
                rows.append({"symbol": f[0], "iv": f[1], "kind": f[2], "from": f[3],
                             "to": f[4], "candles": int(f[5]), "source": f[6],
                             "requests": int(f[7]), "weight": int(f[8])})
        return r, rows

    def synth_run(self, *args, **env):
        fx = self.fake(synth=["ETHUSDT:1m:%d:%d" % (START, N)], now=START + N * MIN)
        self.env_base = dict(BINANCE_BASE_URL=fx.url)
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START), *args,
                             BINANCE_BASE_URL=fx.url, **env)
        return fx, r

    def delete(self, table, first, last):
        con = self.db()
        col = "open_time"
        if table == TRANSFORMED:
            q = ('DELETE FROM "%s" WHERE utc_datetime >= ? AND utc_datetime <= ?' % table,
                 (iso(first).replace("T", " ")[:23], iso(last).replace("T", " ")[:23]))
        else:
            q = ('DELETE FROM "%s" WHERE %s BETWEEN ? AND ?' % (table, col), (first, last))
        con.execute(*q)
        con.commit()
        con.close()

    def contiguous(self, table=RAW):
        if table == RAW:
            n, lo, hi = self.query('SELECT count(*), min(open_time), max(open_time) FROM "%s"'
                                   % RAW)[0]
            return n, (hi - lo) // MIN + 1 == n
        return self.count(TRANSFORMED), None


class HolesTest(PlanTest):
    def test_plan_lists_the_holes_and_run_fills_them(self):
        fx, r = self.synth_run()
        self.assertEqual(r.code, 0, r)
        # Two holes in both tables (a month of downtime in a real warehouse),
        # one more in raw only.
        self.delete(RAW, START + 100 * MIN, START + 1599 * MIN)
        self.delete(TRANSFORMED, START + 100 * MIN, START + 1599 * MIN)
        self.delete(RAW, START + 3000 * MIN, START + 3009 * MIN)
        self.delete(RAW, START + 4500 * MIN, START + 4500 * MIN)
        self.assertEqual(self.count(RAW), N - 1511)
        first_run = len(fx.requests("/api/v3/klines"))
        r, rows = self.plan("--symbols", "ETHUSDT", "--start", str(START),
                            BINANCE_BASE_URL=fx.url)
        self.assertIn("the exchange's clock", r.out)
        self.assertEqual([(x["kind"], x["from"], x["to"], x["candles"]) for x in rows], [
            ("hole", iso(START + 100 * MIN), iso(START + 1600 * MIN), 1500),
            ("hole", iso(START + 3000 * MIN), iso(START + 3010 * MIN), 10),
            ("hole", iso(START + 4500 * MIN), iso(START + 4501 * MIN), 1),
        ])
        self.assertEqual([x["requests"] for x in rows], [2, 1, 1])
        self.assertEqual([x["weight"] for x in rows], [4, 2, 2])
        self.assertTrue(all(x["source"] == "rest" for x in rows))
        self.assertIn("total: 1511 candles", r.out)
        # plan sends no klines request.
        before = len(fx.requests("/api/v3/klines"))
        self.assertEqual(before, first_run)

        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START),
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertIn("(a hole in the warehouse)", r.err)
        self.assertEqual(self.contiguous(), (N, True))
        self.assertEqual(self.count(TRANSFORMED), N)
        # Only the holes were asked for.
        asked = [int(q["query"]["startTime"]) for q in fx.requests("/api/v3/klines")[before:]]
        self.assertEqual(sorted(asked), [START + 100 * MIN, START + 1100 * MIN,
                                         START + 3000 * MIN, START + 4500 * MIN])
        # The transform markers are gone once done.
        self.assertEqual(self.query("SELECT count(*) FROM dataops_ranges WHERE kind = "
                                    "'transform'")[0][0], 0)
        r, rows = self.plan("--symbols", "ETHUSDT", "--start", str(START),
                            BINANCE_BASE_URL=fx.url)
        self.assertEqual(rows, [])
        self.assertIn("nothing missing", r.out)

    def test_a_crash_between_hole_fill_and_transform_is_completed(self):
        fx, r = self.synth_run()
        self.assertEqual(r.code, 0, r)
        self.delete(RAW, START + 2000 * MIN, START + 2499 * MIN)
        self.delete(TRANSFORMED, START + 2000 * MIN, START + 2499 * MIN)
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START),
                             BINANCE_BASE_URL=fx.url, DATAOPS_FAILPOINT="wh.raw.committed:kill")
        self.assertEqual(r.code, -9, r)
        self.assertEqual(self.count(RAW), N)
        self.assertEqual(self.count(TRANSFORMED), N - 500)
        self.assertEqual(self.query("SELECT range_from, range_to FROM dataops_ranges WHERE "
                                    "kind = 'transform'"),
                         [(START + 2000 * MIN, START + 2500 * MIN)])
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START),
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(TRANSFORMED), N)
        self.assertEqual(self.query("SELECT count(*) FROM dataops_ranges WHERE kind = "
                                    "'transform'")[0][0], 0)

    def test_an_earlier_start_is_a_hole_before_the_first_row(self):
        fx, r = self.synth_run()
        self.assertEqual(r.code, 0, r)
        self.delete(RAW, START, START + 999 * MIN)
        self.delete(TRANSFORMED, START, START + 999 * MIN)
        r, rows = self.plan("--symbols", "ETHUSDT", "--start", str(START),
                            BINANCE_BASE_URL=fx.url)
        self.assertEqual([(x["kind"], x["from"], x["candles"]) for x in rows],
                         [("hole", iso(START), 1000)])
        # A later start leaves it out.
        r, rows = self.plan("--symbols", "ETHUSDT", "--start", str(START + 1000 * MIN),
                            BINANCE_BASE_URL=fx.url)
        self.assertEqual(rows, [])
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START),
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.contiguous(), (N, True))
        self.assertEqual(self.count(TRANSFORMED), N)


class KnownGapTest(PlanTest):
    def test_an_exchange_outage_is_remembered_not_fetched_forever(self):
        rows = load_rows(F15M)
        now = rows[-1][6] + 1
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=now)
        # The data starts on 2023-03-20; asking from the 1st finds nothing
        # before it, and the real outage of 2023-03-24 misses 5 candles.
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-01",
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 667)
        gaps = self.query("SELECT range_from, range_to FROM dataops_ranges WHERE kind = "
                          "'known_gap' ORDER BY 1")
        mar1 = calendar.timegm((2023, 3, 1, 0, 0, 0)) * 1000
        self.assertEqual(gaps, [(mar1, rows[0][0]),
                                (calendar.timegm((2023, 3, 24, 12, 45, 0)) * 1000,
                                 calendar.timegm((2023, 3, 24, 14, 0, 0)) * 1000)])
        r, plan = self.plan("--intervals", "15m", "--start", "2023-03-01",
                            BINANCE_BASE_URL=fx.url)
        self.assertEqual(plan, [])
        self.assertIn("left out: %d candles" % (19 * 96 + 5), r.out)
        n = len(fx.requests("/api/v3/klines"))
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-01",
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(fx.requests("/api/v3/klines")), n)   # nothing to ask

    def test_a_rejected_candle_is_not_quarantined_again_every_run(self):
        rows = [list(x) for x in load_rows(F1H)]
        bad = [list(x) for x in rows[:48]]
        bad[20][2], bad[20][3] = bad[20][3], bad[20][2]          # high below low
        body = write_rows(os.path.join(self.dir, "bad.json"), bad)
        fx = self.fake(data=["BTCUSDT:1h:" + F1H], now=rows[47][6] + 1,
                       faults=["klines:1:body:" + body])
        r = self.run_dataops("run", "--intervals", "1h", "--start", "2022-01-01",
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 3, r)
        self.assertEqual(self.count(RAW), 47)
        self.assertEqual(self.query("SELECT count(*) FROM dataops_quarantine")[0][0], 1)
        r, plan = self.plan("--intervals", "1h", "--start", "2022-01-01",
                            BINANCE_BASE_URL=fx.url)
        self.assertEqual(plan, [])
        r = self.run_dataops("run", "--intervals", "1h", "--start", "2022-01-01",
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.query("SELECT count(*) FROM dataops_quarantine")[0][0], 1)


class SourcePlanTest(PlanTest):
    def test_auto_plans_monthly_and_daily_files_and_the_api(self):
        # Three months and ten days of 1m candles, by the exchange's clock.
        start = calendar.timegm((2020, 1, 1, 0, 0, 0)) * 1000
        now = calendar.timegm((2020, 4, 11, 6, 0, 0)) * 1000
        fx = self.fake(synth=["ETHUSDT:1m:%d:%d" % (start, 200000)], now=now)
        r, rows = self.plan("--symbols", "ETHUSDT", "--start", str(start),
                            BINANCE_BASE_URL=fx.url, DATAOPS_ARCHIVE_URL="http://127.0.0.1:9")
        (tail,) = rows
        self.assertEqual(tail["source"], "monthly:3+daily:10+rest")
        self.assertEqual(tail["requests"], 1)           # 6 hours of today: 360 candles
        self.assertIn("3 monthly + 10 daily files", r.out)
        # Without the archive, the API does it all.
        r, rows = self.plan("--symbols", "ETHUSDT", "--start", str(start), "--source", "rest",
                            BINANCE_BASE_URL=fx.url)
        self.assertEqual(rows[0]["source"], "rest")
        self.assertEqual(rows[0]["requests"], (rows[0]["candles"] + 999) // 1000)
        self.assertEqual(rows[0]["weight"], 2 * rows[0]["requests"])
        self.assertEqual(len(fx.requests("/api/v3/klines")), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
