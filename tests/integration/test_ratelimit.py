#!/usr/bin/env python3
"""A long backfill against a fake exchange with a low request-weight limit
finishes without a single 418 and with no 429 but the one the fake forces:
the extractor reads the weight the exchange reports and waits for the next
window instead of running into the limit.  Takes about a minute by design
(the exchange's windows are one minute long)."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import RAW, PipelineTest  # noqa: E402

START = 1577836800000
ROWS = 30000          # 30 pages of 1000


class WeightBudgetTest(PipelineTest):
    def test_backfill_stays_under_a_low_weight_limit(self):
        fx = self.fake(synth=["ETHUSDT:1m:%d:%d" % (START, ROWS)], weight_limit=60,
                       now=START + ROWS * 60000, faults=["klines:5:429:1"])
        t0 = time.time()
        r = self.run_dataops("run", "--symbols", "ETHUSDT", "--start", str(START),
                             BINANCE_BASE_URL=fx.url, timeout=400)
        elapsed = time.time() - t0
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), ROWS)
        stats = fx.stats()
        self.assertEqual(stats["status_counts"].get("418", 0), 0, stats)
        self.assertLessEqual(stats["status_counts"].get("429", 0), 1, stats)
        self.assertLessEqual(stats["max_used_weight"], 60, stats)
        # The budget came from exchangeInfo: 80% of the fake's limit.
        self.assertIn("request weight budget 48/min", r.err)
        self.assertIn("weight budget 48/min reached", r.err)
        self.assertGreater(elapsed, 1.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
