#!/usr/bin/env python3
"""The REST backfill benchmark: `dataops run` against the loopback fake
exchange with 50 ms of added latency, on SQLite and a local lake in a
temporary directory.

Cases (figures are printed, never asserted: see the issue "Fast at the
limits"; the target is one year in 15 s with zero 429s):
  1. one symbol, one year of 1m klines (525,600 rows);
  2. ten symbols, one year each (5,256,000 rows), sharing one weight
     budget (80% of the fake's 6000/min): 10,520 weight of klines cannot
     go faster than the budget allows, so the figure to read is the weight
     the exchange counted per minute against the budget.  The fake's
     synthetic pages cost it ~20-30 ms of Python each: on a small or busy
     machine it may serve fewer pages than the budget allows, and
     --ten-weight-limit lowers the limit so that the budget binds again.

For each: rows, seconds, rows/s, requests, 429s and 418s (the fake's
/_control/stats), the highest weight the exchange saw in a minute, peak
RSS (wait4), and where the time went (the run's metadata.json stages_ms).

usage: backfill.py [--dataops build/dataops] [--smoke] [--latency-ms 50]
                   [--one-rows 525600] [--ten-days 365] [--ten-weight-limit 6000]
                   [--max-in-flight N] [--only one|ten] [--json PATH] [--keep]
  --smoke  small inputs (a few seconds), for the test suite: proves it works
"""
import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FAKE = os.path.join(ROOT, "tests", "fakes", "fake_binance.py")
START = 1672531200000          # 2023-01-01T00:00:00Z
MIN = 60000
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "SOLUSDT", "DOGEUSDT",
           "TRXUSDT", "DOTUSDT", "LTCUSDT"]


class Fake:
    def __init__(self, workdir, synth, now, latency_ms, weight_limit=None):
        self.port_file = os.path.join(workdir, "fake.port")
        self.log = os.path.join(workdir, "requests.jsonl")
        args = [sys.executable, FAKE, "--port", "0", "--port-file", self.port_file,
                "--latency-ms", str(latency_ms), "--now", str(now), "--request-log", self.log]
        for s in synth:
            args += ["--synth", s]
        if weight_limit:
            args += ["--weight-limit", str(weight_limit)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the fake exchange did not start: %s"
                                   % self.proc.stderr.read().decode())
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())

    def stats(self):
        with urllib.request.urlopen(self.url + "/_control/stats", timeout=10) as r:
            return json.loads(r.read())

    def weight_per_minute(self):
        """Weight the exchange counted in each wall-clock minute (its own
        X-MBX-USED-WEIGHT-1M, the largest value seen in that minute)."""
        per = {}
        with open(self.log) as f:
            for line in f:
                q = json.loads(line)
                m = int(q["t"] // 60000)
                per[m] = max(per.get(m, 0), q["used_weight"] or 0)
        return [per[m] for m in sorted(per)]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.stderr.close()


def run_measured(args, cwd, env):
    """Run, returning (seconds, peak RSS in MB, exit code)."""
    t0 = time.perf_counter()
    with open(os.path.join(cwd, "stdout.txt"), "w") as out, \
            open(os.path.join(cwd, "stderr.txt"), "w") as err:
        p = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, ru.ru_maxrss / 1024.0, p.returncode


def case(name, dataops, symbols, rows, latency_ms, weight_limit, extra, keep):
    work = tempfile.mkdtemp(prefix="dataops-backfill-")
    now = START + rows * MIN
    fake = Fake(work, ["%s:1m:%d:%d" % (s, START, rows) for s in symbols], now, latency_ms,
                weight_limit)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATAOPS_")}
        env.update(DATAOPS_LOG_FORMAT="json", BINANCE_BASE_URL=fake.url)
        args = [dataops, "run", "--source", "rest", "--symbols", ",".join(symbols),
                "--intervals", "1m", "--start", str(START), "--warehouse",
                os.path.join(work, "wh.db"), "--lake", os.path.join(work, "lake")] + extra
        seconds, rss, code = run_measured(args, work, env)
        stats = fake.stats()
        per_min = fake.weight_per_minute()
    finally:
        fake.stop()
    meta = glob.glob(os.path.join(work, "lake", "*", "pipeline-dataops", "*", "metadata.json"))
    stages = {}
    loaded = 0
    if meta:
        with open(meta[0]) as f:
            m = json.load(f)
        stages = m.get("stages_ms", {})
        loaded = sum(p["rows_raw_loaded"] for p in m["pairs"])
    peak_in_flight = None
    if meta:
        s = m.get("sources", {})
        peak_in_flight = (s.get("rest") or s).get("peak_in_flight")
    if code != 0:
        with open(os.path.join(work, "stderr.txt")) as f:
            sys.stderr.write(f.read()[-3000:])
    result = {
        "case": name, "exit": code, "rows": loaded, "expected_rows": rows * len(symbols),
        "seconds": round(seconds, 2), "rows_per_s": round(loaded / seconds) if seconds else 0,
        "requests": sum(stats["requests"].values()),
        "klines_requests": stats["requests"].get("klines", 0),
        "http_429": stats["status_counts"].get("429", 0),
        "http_418": stats["status_counts"].get("418", 0),
        "max_weight_per_minute": max(per_min) if per_min else 0,
        "weight_per_minute": per_min,
        "budget_per_minute": (weight_limit or 6000) * 8 // 10,
        "peak_in_flight": peak_in_flight,
        "peak_rss_mb": round(rss, 1),
        "stages_s": {k: round(v / 1000.0, 2) for k, v in stages.items()},
    }
    if keep:
        result["workdir"] = work
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


def show(r):
    print("%-38s %9d rows  %7.2f s  %8d rows/s  %5d requests  %d x 429  %d x 418  "
          "peak in flight %s  peak RSS %.0f MB"
          % (r["case"], r["rows"], r["seconds"], r["rows_per_s"], r["requests"], r["http_429"],
             r["http_418"], r["peak_in_flight"], r["peak_rss_mb"]))
    print("    weight per minute (the exchange's count): %s, budget %d/min"
          % (r["weight_per_minute"], r["budget_per_minute"]))
    print("    stages (s): %s" % ", ".join("%s %.2f" % kv for kv in r["stages_s"].items()))
    if r["exit"] != 0 or r["rows"] != r["expected_rows"]:
        print("    PROBLEM: exit %d, %d rows of %d" % (r["exit"], r["rows"], r["expected_rows"]))


def main():
    ap = argparse.ArgumentParser(
        description="The REST backfill benchmark: dataops run against the loopback fake "
        "exchange (see the top of bench/backfill.py for the cases and figures).")
    ap.add_argument("--dataops", default=os.path.join(ROOT, "build", "dataops"),
                    help="the dataops binary to measure (default: %(default)s)")
    ap.add_argument("--smoke", action="store_true",
                    help="small inputs (a few seconds), for the test suite: proves it works")
    ap.add_argument("--latency-ms", type=int, default=50,
                    help="latency the fake adds to every request (default: %(default)s)")
    ap.add_argument("--one-rows", type=int, default=525600,
                    help="rows of case 1, one symbol (default: %(default)s, a year of 1m)")
    ap.add_argument("--ten-days", type=int, default=365,
                    help="days of 1m klines per symbol in case 2 (default: %(default)s)")
    ap.add_argument("--ten-weight-limit", type=int, default=6000,
                    help="the fake's weight limit per minute in case 2; lower it on a "
                    "small machine so the budget binds (default: %(default)s)")
    ap.add_argument("--max-in-flight", type=int,
                    help="passed to dataops as --max-in-flight (default: dataops' own)")
    ap.add_argument("--only", choices=("one", "ten"), help="run only this case")
    ap.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    a = ap.parse_args()
    a.dataops = os.path.abspath(a.dataops)
    if not os.access(a.dataops, os.X_OK):
        sys.exit("backfill.py: %s is not an executable (build first, or --dataops)" % a.dataops)
    extra = ["--max-in-flight", str(a.max_in_flight)] if a.max_in_flight else []
    one_rows, ten_rows, ten_limit = a.one_rows, a.ten_days * 1440, a.ten_weight_limit
    if a.smoke:
        one_rows, ten_rows = 5000, 2000
    print("dataops REST backfill benchmark: fake exchange with %d ms latency, SQLite, local "
          "lake; %s" % (a.latency_ms, "smoke" if a.smoke else "full"))
    results = []
    if a.only in (None, "one"):
        r = case("1 symbol, %d x 1m" % one_rows, a.dataops, SYMBOLS[:1], one_rows,
                 a.latency_ms, None, extra, a.keep)
        show(r)
        results.append(r)
    if a.only in (None, "ten"):
        n = 2 if a.smoke else 10
        r = case("%d symbols, %d x 1m each" % (n, ten_rows), a.dataops, SYMBOLS[:n], ten_rows,
                 a.latency_ms, None if a.smoke else ten_limit, extra, a.keep)
        show(r)
        full = r["weight_per_minute"][1:-1]
        if full:
            print("    full minutes: %.0f%% of the budget on average"
                  % (100.0 * sum(full) / len(full) / r["budget_per_minute"]))
        results.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    bad = [r for r in results if r["exit"] != 0 or r["rows"] != r["expected_rows"] or
           r["http_418"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
