#!/usr/bin/env python3
"""The concurrent REST extractor (src/extract/fetcher*.c) against the
loopback fake exchange: pages arrive out of order but are loaded in order
(the watermark never skips, even when the run is killed), the request
weight in a minute never goes above the budget even with several pairs
sharing it, and a 429 in the middle pauses every request for its
Retry-After and loses nothing.  The budget test waits for the exchange's
next one-minute window, so it takes up to a minute."""
import glob
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import RAW, TRANSFORMED, PipelineTest  # noqa: E402

START = 1577836800000          # 2020-01-01, on every grid
MIN = 60000


class ConcurrentTest(PipelineTest):
    def sources(self):
        files = sorted(glob.glob(os.path.join(self.dir, "data", "lake", "*",
                                              "pipeline-dataops", "*", "metadata.json")),
                       key=os.path.getmtime)
        with open(files[-1]) as f:
            return json.load(f)["sources"]

    def contiguous(self, symbol=None):
        where = " WHERE symbol = '%s'" % symbol if symbol else ""
        n, lo, hi = self.query('SELECT count(*), min(open_time), max(open_time) FROM "%s"%s'
                               % (RAW, where))[0]
        return n, lo, hi, n == 0 or (hi - lo) // MIN + 1 == n


class OrderingTest(ConcurrentTest):
    def test_out_of_order_pages_are_loaded_in_order(self):
        n = 20000
        # The first window after the probe is held back three seconds, so the
        # windows behind it arrive first (one second was not always enough
        # on a loaded machine: the fake's threads starved, and nothing else
        # arrived in time). The fault picks the window by its startTime: the
        # requests after the probe go out together, so "the second klines
        # request" was sometimes the next window, which then came in last.
        held = START + 1000 * MIN
        fx = self.fake(synth=["ETHUSDT:1m:%d:%d" % (START, n)], now=START + n * MIN,
                       latency_ms=30, faults=["klines?startTime=%d:1:delay:3" % held])
        env = dict(BINANCE_BASE_URL=fx.url, DATAOPS_BATCH_ROWS="2000")
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START),
                             DATAOPS_FAILPOINT="wh.raw.committed:kill", **env)
        self.assertEqual(r.code, -9, r)
        # Killed right after the first commit: exactly the first two pages,
        # although later windows had already arrived.
        cnt, lo, hi, ok = self.contiguous()
        self.assertEqual((cnt, lo, ok), (2000, START, True))
        done = [int(q["query"]["startTime"]) for q in fx.requests("/api/v3/klines")]
        self.assertIn(held, done)
        self.assertTrue(any(t > held for t in done[:done.index(held)]),
                        "later windows arrived before the held one: %s" % done[:8])
        # The next run continues after the watermark and completes.
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START), **env)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.contiguous(), (n, START, START + (n - 1) * MIN, True))
        self.assertEqual(self.count(TRANSFORMED), n)
        # Every raw lake object is in order and the objects follow each other.
        objs = sorted(glob.glob(os.path.join(self.dir, "data", "lake", "*", RAW, "**",
                                             "*.csv"), recursive=True))
        times = []
        for path in objs:
            with open(path) as f:
                header = f.readline().rstrip("\n").split(",")
                col = header.index("open_time")
                t = [int(line.split(",")[col]) for line in f]
            self.assertEqual(t, sorted(t), path)
            times += t
        self.assertEqual(sorted(set(times)), [START + i * MIN for i in range(n)])
        rest = self.sources()["rest"]
        self.assertGreater(rest["peak_in_flight"], 1, rest)
        self.assertLessEqual(rest["peak_in_flight"], 6, rest)

    def test_requests_in_flight_follow_the_setting(self):
        n = 12000
        fx = self.fake(synth=["ETHUSDT:1m:%d:%d" % (START, n)], now=START + n * MIN,
                       latency_ms=50)
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START),
                             "--max-in-flight", "1", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.sources()["rest"]["peak_in_flight"], 1)
        self.assertEqual(self.count(RAW), n)
        r = self.run_dataops("run", "--max-in-flight", "65")
        self.assertEqual(r.code, 2, r)
        self.assertIn("DATAOPS_MAX_IN_FLIGHT", r.err)


class BudgetTest(ConcurrentTest):
    def test_several_pairs_never_go_above_the_budget(self):
        # A limit of 60 gives a budget of 48/min: two exchangeInfo (40),
        # the clock (1) and 2 x 8 pages (32) cannot fit in one minute.
        n = 8000
        fx = self.fake(synth=["ETHUSDT:1m:%d:%d" % (START, n), "BTCUSDT:1m:%d:%d" % (START, n)],
                       now=START + n * MIN, weight_limit=60, latency_ms=20)
        r = self.run_dataops("run", "--symbols", "ETHUSDT,BTCUSDT", "--start", str(START),
                             BINANCE_BASE_URL=fx.url, timeout=400)
        self.assertEqual(r.code, 0, r)
        self.assertIn("request weight budget 48/min", r.err)
        self.assertIn("weight budget 48/min reached", r.err)
        for sym in ("ETHUSDT", "BTCUSDT"):
            self.assertEqual(self.contiguous(sym), (n, START, START + (n - 1) * MIN, True))
        stats = fx.stats()
        self.assertEqual(stats["status_counts"].get("429", 0), 0, stats)
        self.assertEqual(stats["status_counts"].get("418", 0), 0, stats)
        # The exchange's own count, request by request, never passed the budget.
        used = [q["used_weight"] for q in fx.requests()]
        self.assertLessEqual(max(used), 48, used)
        self.assertLessEqual(stats["max_used_weight"], 48, stats)


class RateLimitTest(ConcurrentTest):
    def test_a_429_in_the_middle_pauses_everything_and_loses_nothing(self):
        # Requests already on their way when the exchange decides on a 429
        # reach it during the Retry-After period whatever the client does
        # (and this fake, busy making pages, may deliver the 429 ~100 ms
        # after deciding it).  The fake bans after --ban-after such
        # requests; it is set to twice the requests in flight here, and the
        # test checks what the client controls: nothing is sent from the
        # moment it has the 429 until Retry-After has passed.
        n = 40000
        fx = self.fake(synth=["ETHUSDT:1m:%d:%d" % (START, n)], now=START + n * MIN,
                       latency_ms=50, faults=["klines:12:429:2"], ban_after=12)
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START),
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        self.assertIn("Retry-After 2s", r.err)
        self.assertEqual(self.contiguous(), (n, START, START + (n - 1) * MIN, True))
        self.assertEqual(self.count(TRANSFORMED), n)
        stats = fx.stats()
        self.assertEqual(stats["status_counts"].get("429"), 1, stats)
        self.assertEqual(stats["status_counts"].get("418", 0), 0, stats)
        # Nothing was sent from the moment the client had the 429 (its log
        # line) until Retry-After had passed.  The fake stamps a request when
        # its thread gets to it, which on a loaded machine can be well after
        # it was sent: the first 300 ms are left out for that.  A client that
        # ignored Retry-After would send dozens of requests in the rest.
        import datetime
        seen = [e for e in self.log_events(r) if "Retry-After 2s" in e["msg"]][0]
        t_seen = datetime.datetime.fromisoformat(
            seen["ts"].replace("Z", "+00:00")).timestamp() * 1000
        reqs = fx.requests("/api/v3/klines")
        t429 = [q["t"] for q in reqs if q["status"] == 429][0]
        self.assertGreaterEqual(t_seen, t429)
        during = [q for q in reqs if t_seen + 300 < q["t"] < t_seen + 1900]
        self.assertEqual(during, [])
        self.assertTrue(any(q["t"] >= t_seen + 1900 for q in reqs))
        # The refused page was asked again.
        starts = [int(q["query"]["startTime"]) for q in reqs]
        refused = [int(q["query"]["startTime"]) for q in reqs if q["status"] == 429][0]
        self.assertEqual(starts.count(refused), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
