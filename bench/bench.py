#!/usr/bin/env python3
"""make bench: dataops on the embedded default (local lake + SQLite) against
the reference pipelines, side by side, on the same input and machine.

Input: recorded /api/v3/klines bodies, one per line (shared/bench/gen.py
when ../shared/bench exists, else bench/gen_pages.py), read by dataops
through its replay source (--source file://PATH).  Stages of dataops come
from the run's metadata.json (stages_ms), peak RSS from the kernel
(wait4's ru_maxrss).  References (only when ../shared/bench exists): the
original's Python pipeline (seed) and a DuckDB pipeline with 2 threads.
Ratios are computed in the same run, so they hold on a busy machine even
when absolute figures do not.

usage: bench.py [--dataops build/dataops] [--rows 100000,1000000] [--runs N]
                [--no-references] [--big] [--smoke] [--warehouse sqlite|postgresql]
  --big    also 10,000,000 rows (dataops only): peak RSS must stay flat
  --smoke  10,000 rows, dataops only, one run: proves the benchmark works
  --warehouse postgresql
           dataops loads a throwaway PostgreSQL cluster started here
           (tests/lib/pg.py: Debian's postgresql, initdb in a temporary
           directory) instead of the SQLite file; the lake stays local
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHARED = os.environ.get("DATAOPS_SHARED_BENCH") or os.path.join(ROOT, "..", "shared", "bench")
OUT = os.path.join(ROOT, "bench", "out")
BIG_START_MS = 1136073600000      # 2006-01-01T00:00:00Z
STAGES = ["extract", "validate_raw", "lake_raw", "load_raw", "read_raw", "transform",
          "lake_transformed", "load_transformed", "metadata"]


def peak_rss_of(args, cwd=None, env=None):
    """Run args; its wall time, peak RSS (MB, from wait4), stdout and exit code."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            if cwd:
                os.chdir(cwd)
            out = os.open(os.path.join(cwd or ".", "stdout.txt"),
                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open(os.path.join(cwd or ".", "stderr.txt"),
                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.execvpe(args[0], args, env or os.environ)
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    with open(os.path.join(cwd or ".", "stdout.txt")) as f:
        stdout = f.read()
    return wall, ru.ru_maxrss / 1024.0, stdout, code


def ensure_input(rows, own=False):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "klines_%d%s.jsonl" % (rows, "_own" if own else ""))
    if os.path.exists(path):
        return path
    gen = os.path.join(SHARED, "gen.py")
    if os.path.exists(gen) and not own:
        cmd = [sys.executable, gen, str(rows), path]
        if rows > 3000000:
            # gen.py starts at 2020-01-01: 10M minutes from there reach past
            # today, and dataops (rightly) stores no candle that has not
            # closed.  Start in 2006 instead, so that every row is history.
            cmd += ["--start-ms", str(BIG_START_MS)]
    else:
        cmd = [sys.executable, os.path.join(ROOT, "bench", "gen_pages.py"), str(rows), path]
    print("bench: generating %d rows with %s" % (rows, os.path.relpath(cmd[1], ROOT)),
          file=sys.stderr)
    subprocess.check_call(cmd, stderr=subprocess.DEVNULL)
    return path


def bench_dataops(binary, inp, rows, warehouse=None):
    """warehouse: None (the SQLite default) or a function giving a fresh URL."""
    work = os.path.join(OUT, "dataops_%d" % rows)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAOPS_", "PG"))}
    env["DATAOPS_LOG_FORMAT"] = "json"
    if warehouse:
        env["DATAOPS_WAREHOUSE"] = warehouse()
    wall, rss, _, code = peak_rss_of(
        [binary, "run", "--source", "file://" + inp, "--symbols", "BTCUSDT",
         "--intervals", "1m", "--start", "2000-01-01"], cwd=work, env=env)
    if code != 0:
        with open(os.path.join(work, "stderr.txt")) as f:
            sys.exit("bench: dataops failed (%d): %s" % (code, f.read()[-2000:]))
    meta = json.load(open(glob.glob(os.path.join(
        work, "data", "lake", "*", "pipeline-dataops", "*", "metadata.json"))[0]))
    loaded = meta["pairs"][0]["rows_transformed"]
    if loaded != rows:
        sys.exit("bench: dataops loaded %d of %d rows" % (loaded, rows))
    stages = {s: meta["stages_ms"][s] / 1000.0 for s in STAGES}
    shutil.rmtree(os.path.join(work, "data"), ignore_errors=True)
    return {"total_s": wall, "rss_mb": rss, "stages_s": stages}


def bench_seed(inp, rows):
    script = os.path.join(SHARED, "seed", "seed_pipeline.py")
    work = os.path.join(OUT, "seed_%d" % rows)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    wall, rss, out, code = peak_rss_of(["/usr/bin/python3", script, inp,
                                        os.path.join(work, "out")], cwd=work)
    if code != 0:
        print("bench: seed pipeline failed (is python3-pandas and python3-pydantic "
              "installed?)", file=sys.stderr)
        return None
    res = json.loads(out.strip().splitlines()[-1])
    shutil.rmtree(work, ignore_errors=True)
    return {"total_s": res["total_s"], "rss_mb": res["peak_rss_mb"], "stages_s": res["stages_s"]}


def bench_duckdb(inp, rows, threads=2):
    src = os.path.join(SHARED, "duckdb")
    ref = os.path.join(OUT, "duckdb-ref")
    if not os.path.exists(os.path.join(ref, "node_modules")):
        shutil.rmtree(ref, ignore_errors=True)
        shutil.copytree(src, ref)
        for d, _, files in os.walk(ref):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        if subprocess.call(["npm", "ci", "--silent"], cwd=ref) != 0:
            print("bench: npm ci of the DuckDB reference failed", file=sys.stderr)
            return None
    work = os.path.join(OUT, "duckdb_%d" % rows)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    wall, rss, out, code = peak_rss_of(["node", os.path.join(ref, "pipeline.mjs"), inp,
                                        os.path.join(work, "out"), "--threads", str(threads)],
                                       cwd=work)
    if code != 0:
        print("bench: DuckDB reference failed", file=sys.stderr)
        return None
    res = json.loads(out.strip().splitlines()[-1])
    shutil.rmtree(work, ignore_errors=True)
    return {"total_s": res["total_s"], "rss_mb": res["peak_rss_mb"], "stages_s": res["stages_s"]}


def median_run(fn, runs):
    results = [r for r in (fn() for _ in range(runs)) if r]
    if not results:
        return None
    results.sort(key=lambda r: r["total_s"])
    return results[len(results) // 2]


def fmt_rate(rows, s):
    if s <= 0:
        return "-"
    r = rows / s
    return "%.2fM" % (r / 1e6) if r >= 1e6 else "%.0fk" % (r / 1e3)


def report(rows, d, seed, duck, label="dataops (SQLite + lake)"):
    print("\n=== %s rows ===" % format(rows, ","))
    print("dataops stages (rows/s; the main thread's time: load_* is its wait for the "
          "loader thread):")
    for s in STAGES:
        t = d["stages_s"][s]
        per_row = s != "metadata"      # written once per run, not per row
        print("  %-18s %9s  (%.3f s)" % (s, fmt_rate(rows, t) if per_row else "-", t))
    print("%-26s %12s %10s %12s" % ("pipeline", "rows/s", "seconds", "peak RSS MB"))
    line = "%-26s %12s %10.2f %12.1f"
    print(line % (label, fmt_rate(rows, d["total_s"]), d["total_s"],
                  d["rss_mb"]))
    if duck:
        print(line % ("DuckDB, 2 threads", fmt_rate(rows, duck["total_s"]), duck["total_s"],
                      duck["rss_mb"]))
    if seed:
        print(line % ("original (pandas)", fmt_rate(rows, seed["total_s"]), seed["total_s"],
                      seed["rss_mb"]))
    if duck:
        print("dataops / DuckDB-2t: %.1fx faster (target >= 1.5x)" %
              (duck["total_s"] / d["total_s"]))
    if seed:
        print("dataops / original:  %.1fx faster (target >= 20x, aim 50x)" %
              (seed["total_s"] / d["total_s"]))
    print("peak RSS %.1f MB (target <= 64 MB)" % d["rss_mb"])


def main():
    ap = argparse.ArgumentParser(
        description="dataops against the reference pipelines, side by side, on the same "
        "input and machine (see the top of bench/bench.py for what is measured).")
    ap.add_argument("--dataops", default=os.path.join(ROOT, "build", "dataops"),
                    help="the dataops binary to measure (default: %(default)s)")
    ap.add_argument("--rows", default="100000,1000000",
                    help="comma-separated input sizes in rows (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=1,
                    help="runs per size and pipeline; the median is reported (default: 1)")
    ap.add_argument("--no-references", action="store_true",
                    help="measure dataops only, even when ../shared/bench exists")
    ap.add_argument("--big", action="store_true",
                    help="also 10,000,000 rows (dataops only): peak RSS must stay flat")
    ap.add_argument("--smoke", action="store_true",
                    help="10,000 rows, dataops only, one run: proves the benchmark works")
    ap.add_argument("--warehouse", choices=("sqlite", "postgresql"), default="sqlite",
                    help="sqlite (default): the embedded file; postgresql: a throwaway "
                    "cluster started here with Debian's postgresql")
    a = ap.parse_args()
    binary = os.path.abspath(a.dataops)
    sizes = [int(x) for x in a.rows.split(",")]
    refs = not a.no_references
    if a.smoke:
        sizes, refs, a.runs = [10000], False, 1
    if a.big:
        sizes.append(10000000)
    if refs and not os.path.isdir(SHARED):
        print("bench: %s is absent: reference pipelines skipped, dataops figures only"
              % os.path.normpath(SHARED))
        refs = False
    cluster = warehouse = None
    label = "dataops (SQLite + lake)"
    if a.warehouse == "postgresql":
        sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
        import pg
        cluster = pg.PgCluster()
        label = "dataops (PostgreSQL + lake)"

        def warehouse():
            return cluster.url(cluster.create_db("bench"))   # dropped and made afresh
    try:
        for rows in sizes:
            inp = ensure_input(rows, own=a.smoke)
            d = median_run(lambda: bench_dataops(binary, inp, rows, warehouse), a.runs)
            seed = duck = None
            if refs and rows <= 1000000:
                duck = median_run(lambda: bench_duckdb(inp, rows), a.runs)
                seed = median_run(lambda: bench_seed(inp, rows), 1)
            report(rows, d, seed, duck, label)
    finally:
        if cluster:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
