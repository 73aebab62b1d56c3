#!/usr/bin/env python3
"""Integration tests of the extractor against the loopback fake exchange:
paging semantics, every interval (1w and 1M included), error bodies,
network faults with retries, 429 and 418."""
import datetime
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import (F1D, F1H, F1M, F15M, RAW, TRANSFORMED, PipelineTest,  # noqa: E402
                     load_rows, rollup, write_rows)

DAY = 86400000


def utc(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


class PagingTest(PipelineTest):
    def test_pages_follow_the_watermark_without_overlap_or_skip(self):
        start = 1577836800000          # 2020-01-01, on the 1m grid
        n = 2500
        fx = self.fake(synth=["BTCUSDT:1m:%d:%d" % (start, n)], now=start + n * 60000 + 5)
        r = self.run_dataops("run", "--start", str(start), BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), n)
        reqs = fx.requests("/api/v3/klines")
        # Windows may be in flight together (the order they reach the fake
        # varies); test_concurrent proves they are loaded in order.
        self.assertEqual(sorted(int(q["query"]["startTime"]) for q in reqs),
                         [start, start + 1000 * 60000, start + 2000 * 60000])
        self.assertTrue(all(q["query"]["limit"] == "1000" for q in reqs))
        self.assertTrue(all(q["query"]["interval"] == "1m" for q in reqs))
        # endTime bounds every request at the exchange clock.
        self.assertTrue(all(int(q["query"]["endTime"]) < start + n * 60000 + 5 for q in reqs))
        # The last candle (open at start + n*60000) is still forming: not stored.
        self.assertEqual(self.query('SELECT max(open_time) FROM "%s"' % RAW)[0][0],
                         start + (n - 1) * 60000)

    def test_end_time_bounds_the_range(self):
        rows = load_rows(F1H)
        fx = self.fake(data=["BTCUSDT:1h:" + F1H], now=rows[-1][6] + 1)
        r = self.run_dataops("run", "--intervals", "1h", "--start", "2022-01-10",
                             "--end", "2022-01-11T00:00:00Z", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 24)
        got = self.query('SELECT min(utc_datetime), max(utc_datetime) FROM "%s"' % RAW)[0]
        self.assertEqual(got, ("2022-01-10 00:00:00.000", "2022-01-10 23:00:00.000"))

    def test_csv_archive_and_api_json_give_identical_rows(self):
        # The data.binance.vision CSV (header + CRLF) and the API JSON of the
        # same month are string-identical once normalised.
        from harness import CSV1H
        rows = load_rows(F1H)
        a = self.fake(data=["BTCUSDT:1h:" + F1H], now=rows[-1][6] + 1)
        b = self.fake(data=["BTCUSDT:1h:" + CSV1H], now=rows[-1][6] + 1)
        da = os.path.join(self.dir, "a.db")
        dbb = os.path.join(self.dir, "b.db")
        for fx, db in ((a, da), (b, dbb)):
            r = self.run_dataops("run", "--intervals", "1h", "--start", "2022-01-01",
                                 "--warehouse", db, BINANCE_BASE_URL=fx.url)
            self.assertEqual(r.code, 0, r)
        q = 'SELECT open_time, "open", high, low, "close", volume FROM "%s" ORDER BY 1' % RAW
        self.assertEqual(self.query(q, path=da), self.query(q, path=dbb))


class IntervalsTest(PipelineTest):
    """Every Binance interval, with data rolled up exactly from real candles
    (Decimal arithmetic), so calendar intervals land on the exchange's grid."""

    def build(self):
        m1 = load_rows(F1M)
        h1 = load_rows(F1H)
        d1 = load_rows(F1D)
        first_m = (m1[0][0] // (60 * 60000) + 1) * 60 * 60000   # whole hours only
        m1 = [r for r in m1 if r[0] >= first_m]
        data = {"1m": m1, "1h": h1, "1d": d1}
        for name, minutes in (("3m", 3), ("5m", 5), ("15m", 15), ("30m", 30)):
            data[name] = rollup(m1, lambda t, k=minutes * 60000: t - t % k)
        for name, hours in (("2h", 2), ("4h", 4), ("6h", 6), ("8h", 8), ("12h", 12)):
            data[name] = rollup(h1, lambda t, k=hours * 3600000: t - t % k)
        # 3d candles open on days where days-since-epoch % 3 == 1.
        data["3d"] = rollup(d1, lambda t: t - ((t // DAY - 1) % 3) * DAY)
        data["1w"] = rollup(d1, lambda t: t - ((t // DAY - 4) % 7) * DAY)

        def month(t):
            d = utc(t)
            return int(datetime.datetime(d.year, d.month, 1,
                                         tzinfo=datetime.timezone.utc).timestamp() * 1000)
        data["1M"] = rollup(d1, month)
        # Drop a leading partial bucket so every candle is complete.
        for k in ("3d", "1w"):
            data[k] = [r for r in data[k] if r[0] >= d1[0][0]]
        args = []
        for iv, rows in data.items():
            path = write_rows(os.path.join(self.dir, "rows-%s.json" % iv), rows)
            args.append("BTCUSDT:%s:%s" % (iv, path))
        return data, args

    def test_all_intervals_load_on_their_grids(self):
        data, args = self.build()
        start = 1700000000000
        fx = self.fake(data=args, synth=["BTCUSDT:1s:%d:1500" % start],
                       now=1767225600000 + DAY)
        r = self.run_dataops("run", "--intervals",
                             "1s,1m,3m,5m,15m,30m,1h,2h,4h,6h,8h,12h,1d,3d,1w,1M",
                             "--start", "2021-01-01", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        counts = dict(self.query('SELECT "interval", count(*) FROM "%s" GROUP BY 1' % RAW))
        for iv, rows in data.items():
            self.assertEqual(counts[iv], len(rows), iv)
        self.assertEqual(counts["1s"], 1500)
        self.assertEqual(self.query("SELECT count(*) FROM dataops_quarantine")[0][0], 0)
        for (ot,) in self.query('SELECT open_time FROM "%s" WHERE "interval" = \'1w\'' % RAW):
            self.assertEqual(utc(ot).weekday(), 0)       # Monday
        for (ot, ct) in self.query('SELECT open_time, close_time FROM "%s" WHERE '
                                   '"interval" = \'1M\'' % RAW):
            self.assertEqual(utc(ot).day, 1)
            self.assertEqual(utc(ct + 1).day, 1)          # closes on the month's last ms
        feb = self.query('SELECT close_time - open_time FROM "%s" WHERE "interval" = \'1M\' '
                         'AND utc_datetime LIKE \'2024-02-%%\'' % RAW)[0][0]
        self.assertEqual(feb, 29 * DAY - 1)
        # The month's lake objects use 1mo, apart from 1m on any file system.
        files = self.lake_files()
        self.assertTrue(any("/interval=1mo/" in f for f in files))
        self.assertEqual(self.count(TRANSFORMED), self.count(RAW))


class ErrorBodyTest(PipelineTest):
    def test_unknown_symbol_is_a_configuration_error(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000)
        r = self.run_dataops("run", "--symbols", "BTCUSDT,NOPEUSDT", "--intervals", "15m",
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 2, r)
        self.assertIn("NOPEUSDT", r.err)
        self.assertIn("-1121", r.err)
        self.assertEqual(self.query("SELECT status FROM dataops_runs")[0][0], "failed")

    def test_api_error_body_is_reported_with_code_and_message(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000,
                       faults=["klines:1:error"])
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                             BINANCE_BASE_URL=fx.url)
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("code -1121", r.err)
        self.assertIn("Invalid symbol.", r.err)
        self.assertEqual(self.count(RAW), 0)

    def test_malformed_body_fails_cleanly(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000,
                       faults=["klines:1:malformed"])
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 1, r)
        self.assertIn("klines response row 0", r.err)
        self.assertEqual(self.count(RAW), 0)
        self.assertEqual(self.count(TRANSFORMED), 0)


class HostileResponseTest(PipelineTest):
    """Responses that are not what the exchange documents never crash the
    program and never reach a table unvalidated."""

    def test_duplicated_and_out_of_order_rows_are_quarantined(self):
        rows = [list(r) for r in load_rows(F15M)[:12]]
        bad = rows[:4] + [rows[3]] + rows[4:6] + [rows[2]] + rows[6:]
        body = write_rows(os.path.join(self.dir, "dups.json"), bad)
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000,
                       faults=["klines:1:body:" + body])
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                             "--end", str(rows[-1][6] + 1), BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 3, r)
        reasons = [q[0] for q in self.query("SELECT reason FROM dataops_quarantine "
                                            "ORDER BY rowid")]
        self.assertEqual(len(reasons), 2, reasons)
        self.assertIn("duplicate open_time", reasons[0])
        self.assertIn("goes back in time", reasons[1])
        got = [g[0] for g in self.query('SELECT open_time FROM "%s" ORDER BY 1' % RAW)]
        self.assertEqual(got, [row[0] for row in rows])

    def test_a_page_that_goes_back_in_time_fails_the_pair(self):
        start = 1577836800000
        fx = self.fake(synth=["ETHUSDT:1m:%d:2500" % start], now=start + 2500 * 60000)
        first = os.path.join(self.dir, "first.json")
        import urllib.request
        with urllib.request.urlopen(fx.url + "/api/v3/klines?symbol=ETHUSDT&interval=1m"
                                    "&startTime=%d&limit=1000" % start) as resp, \
                open(first, "wb") as f:
            f.write(resp.read())
        fx.add_fault("klines:2:body:" + first)
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(start),
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 1, r)
        self.assertIn("went back in time", r.err)
        self.assertEqual(self.count(RAW), 0, "the batch of that pair is not half-loaded")

    def test_a_huge_body_is_refused(self):
        big = os.path.join(self.dir, "big.json")
        with open(big, "w") as f:
            f.write("[" + " " * (17 << 20) + "]")
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000,
                       faults=["klines:1:body:" + big])
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 1, r)
        self.assertIn("larger than 16777216 bytes", r.err)
        self.assertEqual(self.count(RAW), 0)

    def test_type_errors_name_the_row_and_field(self):
        rows = [list(r) for r in load_rows(F15M)[:3]]
        cases = [
            (lambda r: r[1].__setitem__(4, None), "row 1, field close", "null"),
            (lambda r: r[2].__setitem__(8, "12"), "row 2, field number_of_trades",
             "a string"),
            (lambda r: r[0].__setitem__(5, "NaN"), "row 0, field volume",
             "not a decimal number"),
            (lambda r: r[1].append("x"), "row 1 has more than 12 fields", ""),
            (lambda r: r[0].pop(), "row 0 has 11 fields", ""),
        ]
        for mutate, where, what in cases:
            with self.subTest(where=where):
                data = [list(x) for x in rows]
                mutate(data)
                body = write_rows(os.path.join(self.dir, "t.json"), data)
                fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000,
                               faults=["klines:1:body:" + body])
                r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                                     "--warehouse", os.path.join(self.dir, "t.db"),
                                     BINANCE_BASE_URL=fx.url)
                fx.stop()
                self.assertEqual(r.code, 1, r)
                self.assertIn(where, r.err)
                self.assertIn(what, r.err)
                self.assertEqual(self.count(RAW, path=os.path.join(self.dir, "t.db")), 0)


class NetworkFaultTest(PipelineTest):
    NOW = 1679900000000

    def run_with(self, faults, **env):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=self.NOW, faults=faults)
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                             BINANCE_BASE_URL=fx.url, **env)
        return fx, r

    def retries_logged(self, r):
        return [e["msg"] for e in self.log_events(r) if e["msg"].startswith("retry ")]

    def test_transient_faults_are_retried_and_the_run_succeeds(self):
        for kind in ("500", "503", "reset", "truncate"):
            with self.subTest(kind=kind):
                self.tearDown()
                self.setUp()
                # Two in a row: libcurl itself silently retries a request
                # whose reused connection died once; the second is ours.
                fx, r = self.run_with(["klines:1:" + kind, "klines:2:" + kind])
                self.assertEqual(r.code, 0, r)
                self.assertEqual(self.count(RAW), 667)
                msgs = self.retries_logged(r)
                self.assertIn(len(msgs), (1, 2), msgs)

    def test_stalled_transfer_times_out_and_is_retried(self):
        fx, r = self.run_with(["klines:1:stall:30"], DATAOPS_HTTP_TIMEOUT="2")
        self.assertEqual(r.code, 0, r)
        self.assertIn("timeout", self.retries_logged(r)[0])
        self.assertEqual(self.count(RAW), 667)

    def test_a_page_that_never_succeeds_fails_with_nothing_half_loaded(self):
        t0 = time.time()
        fx, r = self.run_with(["klines:1+:502"], DATAOPS_HTTP_RETRIES="2")
        self.assertEqual(r.code, 1, r)
        self.assertIn("giving up after 3 attempts", r.err)
        self.assertEqual(len(fx.requests("/api/v3/klines")), 3)
        self.assertEqual(self.count(RAW), 0)
        self.assertLess(time.time() - t0, 60)

    def test_connection_refused(self):
        r = self.run_dataops("run", "--intervals", "15m", BINANCE_BASE_URL="http://127.0.0.1:9",
                             DATAOPS_HTTP_RETRIES="1")
        self.assertEqual(r.code, 1, r)
        self.assertIn("cannot connect", r.err)


class RateLimitResponseTest(PipelineTest):
    def test_429_waits_for_retry_after(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000,
                       faults=["klines:1:429:2"])
        t0 = time.time()
        r = self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-20",
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertGreaterEqual(time.time() - t0, 1.9)
        self.assertEqual(self.count(RAW), 667)
        self.assertIn("Retry-After 2s", r.err)
        self.assertEqual(fx.stats()["status_counts"].get("418", 0), 0)

    def test_418_stops_the_run_and_names_the_ban_end(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000,
                       faults=["klines:1:418:300"])
        r = self.run_dataops("run", "--symbols", "BTCUSDT", "--intervals", "15m,1h",
                             "--start", "2023-03-20", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 1, r)
        self.assertIn("banned this IP until", r.err)
        # Nothing more was sent after the ban.
        self.assertEqual(len(fx.requests("/api/v3/klines")), 1)
        self.assertEqual(self.count(RAW), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
