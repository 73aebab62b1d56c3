#!/usr/bin/env python3
"""The benchmark is not a timed test: this only runs it once on a small
input (10,000 rows, dataops only) to prove that `make bench` works, on the
SQLite default and on a throwaway PostgreSQL cluster."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import BIN, SRC  # noqa: E402


class BenchSmokeTest(unittest.TestCase):
    def test_bench_runs_and_prints_its_table(self):
        out = subprocess.run([sys.executable, os.path.join(SRC, "bench", "bench.py"),
                              "--dataops", BIN, "--smoke"], capture_output=True, text=True,
                             timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        for word in ("=== 10,000 rows ===", "load_raw", "dataops (SQLite + lake)",
                     "peak RSS"):
            self.assertIn(word, out.stdout)

    def test_bench_on_postgresql(self):
        out = subprocess.run([sys.executable, os.path.join(SRC, "bench", "bench.py"),
                              "--dataops", BIN, "--smoke", "--warehouse", "postgresql"],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        for word in ("=== 10,000 rows ===", "load_transformed", "dataops (PostgreSQL + lake)"):
            self.assertIn(word, out.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
