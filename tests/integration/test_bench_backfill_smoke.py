#!/usr/bin/env python3
"""bench/backfill.py --smoke: the REST backfill benchmark runs once on a
small input and reports its figures.  Its timings are not asserted (make
bench prints them); only that it works and loads every row."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import BIN, SRC  # noqa: E402


class BackfillBenchSmokeTest(unittest.TestCase):
    def test_smoke(self):
        with tempfile.TemporaryDirectory(prefix="dataops-bench-smoke-") as d:
            out = os.path.join(d, "results.json")
            p = subprocess.run([sys.executable, os.path.join(SRC, "bench", "backfill.py"),
                                "--smoke", "--dataops", BIN, "--json", out],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("rows/s", p.stdout)
            with open(out) as f:
                results = json.load(f)
        self.assertEqual(len(results), 2)
        for r in results:
            self.assertEqual(r["exit"], 0, r)
            self.assertEqual(r["rows"], r["expected_rows"], r)
            self.assertEqual(r["http_429"], 0, r)
            self.assertEqual(r["http_418"], 0, r)
            self.assertLessEqual(r["max_weight_per_minute"], r["budget_per_minute"], r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
