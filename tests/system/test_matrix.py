#!/usr/bin/env python3
"""System tests of every (lake, warehouse) combination the project supports:
the embedded default's scenarios (tests/system/test_pipeline.py) run on each
of the 9 pairs of lake (file: a directory; s3: s3://lake/<prefix> in s3rver
behind tests/s3/s3front.py; gs: gs://lake in the in-process Cloud Storage
fake) and warehouse (sqlite: a file; postgresql: a throwaway cluster,
tests/lib/pg.py; bigquery: the in-process BigQuery fake), and must leave the
same final rows as the reference, file + sqlite.

The scenario, per combination, on the real outage week of 2023-03-20:
  first        a run with the exchange's clock mid-week (192 candles closed);
  incremental  a run after the week's end picks up the rest: 667 rows, the
               outage of 2023-03-24 included (1 gap, 5 missing, 1 short and
               5 zero-trade candles), the first run's rows untouched;
  rerun        a run that changes nothing: same rows, same updated_at, no
               new data object in the lake;
  killed       in a fresh state, a run SIGKILLed by the failpoint
               wh.raw.committed (raw committed, transform not started);
  recovered    the next run completes the transform: the same rows as the
               sequence above ended with.
After each step the combination's state is compared with the reference's
after the same step: the raw and transformed warehouse rows (updated_at left
out, datetimes as 'YYYY-MM-DD HH:MM:SS.mmm', numbers as numbers), the lake's
data objects per table (names with the run id and time replaced, CSV content
with updated_at blanked), and the runs with their pairs' figures (status,
exit code; ranges, row counts, gaps, missing, short and zero-trade candles).

A backend whose tools are missing (PostgreSQL's server binaries, node for
s3rver) or which this build lacks is skipped with the reason.
"""
import datetime
import itertools
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

if os.environ.get("DATAOPS_BIN"):       # runs happen in other directories
    os.environ["DATAOPS_BIN"] = os.path.abspath(os.environ["DATAOPS_BIN"])

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "s3"))
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import (BIN, F15M, RAW, SANITIZER_EXIT, TRANSFORMED, FakeExchange,  # noqa: E402
                     Result, csv_blank_updated_at, load_rows)

LAKES = ("file", "s3", "gs")
WAREHOUSES = ("sqlite", "postgresql", "bigquery")
REFERENCE = ("file", "sqlite")

WEEK_START = "2023-03-20"
WEEK_ROWS = load_rows(F15M)
MID_MS = 1679443200000                       # 2023-03-22 00:00: 192 candles closed
END_MS = WEEK_ROWS[-1][6] + 1 + 60000        # after the week's last candle closed
OUTAGE = dict(gaps=1, missing_candles=5, short_candles=1, zero_trade=5, status="ok")
FAILPOINT = "wh.raw.committed"

DS = "thebareops_production"
BQ_PROJECT = "test-project"
BUCKET = "lake"
PG_DB = "dataops"
TS = "'YYYY-MM-DD HH24:MI:SS.MS'"
S3_SECRET = "matrix-s3-secret-0123456789"

RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STAMP = re.compile(r"\d{8}T\d{6}Z")


# --- values as the three warehouses give them, made comparable -------------

def dt_text(v):
    """A datetime (BigQuery), or text (SQLite, PostgreSQL's to_char) ->
    'YYYY-MM-DD HH:MM:SS.mmm' (SQLite's local time loses its '+08:00')."""
    if v is None:
        return None
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (v.microsecond // 1000)
    return str(v)[:23]


def as_int(v):
    return None if v is None else int(v)


def as_float(v):
    return None if v is None else float(v)


def as_text(v):
    return None if v is None else str(v)


# The compared columns of each table (updated_at is compared only within one
# combination) and how to read each; a column not named here is text.
ROW_COLS = {
    RAW: ("symbol", "interval", "open_time", "utc_datetime", "open", "high", "low", "close",
          "volume", "close_time", "quote_asset_volume", "number_of_trades",
          "taker_buy_base_asset_volume", "taker_buy_quote_asset_volume", "ignore"),
    TRANSFORMED: ("symbol", "interval", "open_time", "utc_datetime", "open", "high", "low",
                  "close", "volume", "close_time", "quote_asset_volume", "number_of_trades",
                  "taker_buy_base_asset_volume", "taker_buy_quote_asset_volume", "ignore",
                  "utc_singapore_datetime"),
}
FLOATS = ("open", "high", "low", "close", "volume", "quote_asset_volume",
          "taker_buy_base_asset_volume", "taker_buy_quote_asset_volume")
KINDS = {
    RAW: dict(open_time=as_int, close_time=as_int, number_of_trades=as_int,
              utc_datetime=dt_text),
    TRANSFORMED: dict({c: as_float for c in FLOATS}, number_of_trades=as_int,
                      open_time=dt_text, close_time=dt_text, utc_datetime=dt_text,
                      utc_singapore_datetime=dt_text),
}
PAIR_TEXT = ("symbol", "interval", "status")
PAIR_COLS = ("symbol", "interval", "range_start", "range_end", "first_open", "last_open",
             "pages", "rows_extracted", "open_skipped", "rows_raw_loaded", "rows_rejected",
             "rows_transformed", "rows_transformed_rejected", "short_candles", "zero_trade",
             "gaps", "missing_candles", "status")


def local_offset(d):
    """The offset of the local time: SQLite keeps it as text ('+08:00'), the
    others keep the wall time, whose distance to the UTC time gives it."""
    v = d["utc_singapore_datetime"]
    if isinstance(v, str) and len(v) > 23:
        return v[23:]
    f = "%Y-%m-%d %H:%M:%S.%f"
    secs = int((datetime.datetime.strptime(dt_text(v), f) -
                datetime.datetime.strptime(dt_text(d["utc_datetime"]), f)).total_seconds())
    return "%s%02d:%02d" % ("-" if secs < 0 else "+", abs(secs) // 3600, abs(secs) % 3600 // 60)


def canon_row(table, d):
    kinds = KINDS[table]
    row = tuple(kinds.get(c, as_text)(d[c]) for c in ROW_COLS[table])
    return row + (local_offset(d),) if table == TRANSFORMED else row


def canon_pair(d):
    return {c: (as_text if c in PAIR_TEXT else as_int)(d[c]) for c in PAIR_COLS}


def generic(key):
    """An object's name with its run id and run time replaced."""
    return STAMP.sub("<time>", RUN_ID.sub("<run>", key))


def csv_rows(data):
    """An object's CSV rows with the run's time (updated_at) blanked."""
    return tuple(tuple(r) for r in csv_blank_updated_at(data))


# --- the module's servers ------------------------------------------------------

class Servers:
    """What the module starts once: the PostgreSQL cluster, s3rver and its
    front; and why a backend is skipped."""
    dir = None
    pg = None
    s3rver = None
    s3front = None
    skip = {}        # backend -> reason
    broken = {}      # backend -> the exception that stopped its server


def unsupported(**env):
    """The build's refusal of a lake or warehouse, or None."""
    e = dict(os.environ, **env)
    r = subprocess.run([BIN, "config"], env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    return r.stderr.strip() if "not supported by this build" in r.stderr else None


def setUpModule():
    if not os.path.exists(BIN):
        raise RuntimeError("dataops binary not found at %s (set DATAOPS_BIN)" % BIN)
    Servers.dir = tempfile.mkdtemp(prefix="dataops-matrix-")
    unittest.addModuleCleanup(shutil.rmtree, Servers.dir, ignore_errors=True)
    probes = dict(s3=dict(DATAOPS_LAKE="s3://%s/probe" % BUCKET),
                  gs=dict(DATAOPS_LAKE="gs://" + BUCKET),
                  postgresql=dict(DATAOPS_WAREHOUSE="postgresql://probe@127.0.0.1:1/x"),
                  bigquery=dict(DATAOPS_WAREHOUSE="bigquery://" + BQ_PROJECT))
    for backend, env in probes.items():
        why = unsupported(**env)
        if why:
            Servers.skip[backend] = "this build has no %s backend: %s" % (backend, why)
    try:
        import fake_bigquery  # noqa: F401
        import fake_gcs  # noqa: F401
        import gauth_fake  # noqa: F401
    except ImportError as exc:
        for b in ("gs", "bigquery"):
            Servers.skip.setdefault(b, "the Google fakes cannot be imported: %s" % exc)
    if "postgresql" not in Servers.skip:
        import pg
        try:
            Servers.pg = pg.PgCluster()
            unittest.addModuleCleanup(Servers.pg.stop)
            Servers.pg.create_db(PG_DB)
        except pg.PgMissing as exc:
            Servers.skip["postgresql"] = "no PostgreSQL server: %s" % exc
        except Exception as exc:     # reported by each test that needs it
            Servers.broken["postgresql"] = exc
    if "s3" not in Servers.skip:
        import s3lake
        from s3front import S3Front
        try:
            if not shutil.which("node") or not shutil.which("npm"):
                raise unittest.SkipTest("node and npm are needed to run s3rver "
                                        "(scripts/install-deps.sh test installs them)")
            s3lake.ensure_node_modules()
            Servers.s3rver = s3lake.S3rver(BUCKET)
            unittest.addModuleCleanup(Servers.s3rver.stop)
            Servers.s3front = S3Front(Servers.s3rver.port, Servers.s3rver.store,
                                      os.path.join(Servers.dir, "s3-requests.jsonl"))
            unittest.addModuleCleanup(Servers.s3front.stop)
        except unittest.SkipTest as exc:
            Servers.skip["s3"] = str(exc)
        except Exception as exc:     # reported by each test that needs it
            Servers.broken["s3"] = exc


# --- one state of one combination: a lake and a warehouse -------------------

class Site:
    """A fresh lake and warehouse of the given kinds under dir (a schema of
    the module's cluster, a prefix of its s3rver, Google fakes of its own);
    tag names the state, unique in the module."""

    def __init__(self, lake, wh, dir, tag):
        self.lake, self.wh, self.dir = lake, wh, dir
        self.name = "%s+%s" % (lake, wh)
        self.tag = tag
        self.stoppers = []
        self.env = {}
        self.gcs = self.bq = None
        if lake == "gs" or wh == "bigquery":
            self._google()
        if lake == "file":
            self.lake_dir = os.path.join(dir, "lake")
            self.env["DATAOPS_LAKE"] = self.lake_dir
        elif lake == "s3":
            self.prefix = "matrix/%s/%s_%s" % (tag, lake, wh)
            self.env.update(DATAOPS_LAKE="s3://%s/%s" % (BUCKET, self.prefix),
                            DATAOPS_S3_ENDPOINT=Servers.s3front.url, AWS_REGION="us-east-1",
                            AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY=S3_SECRET)
        else:
            self.env.update(DATAOPS_LAKE="gs://" + BUCKET, STORAGE_EMULATOR_HOST=self.gcs.url)
        if wh == "sqlite":
            self.db = os.path.join(dir, "warehouse.db")
            self.env["DATAOPS_WAREHOUSE"] = self.db
        elif wh == "postgresql":
            self.schema = "m_%s_%s" % (tag, lake)
            self.env.update(DATAOPS_WAREHOUSE=Servers.pg.url(PG_DB),
                            DATAOPS_PG_SCHEMA=self.schema)
        else:
            self.env.update(DATAOPS_WAREHOUSE="bigquery://" + BQ_PROJECT,
                            BIGQUERY_EMULATOR_HOST=self.bq.url)

    def _google(self):
        import fake_bigquery
        import fake_gcs
        import gauth_fake
        issuer = gauth_fake.TokenIssuer(None)
        if self.lake == "gs":
            self.gcs = fake_gcs.FakeGCS(issuer, buckets=[BUCKET]).start()
            self.stoppers.append(self.gcs.stop)
        if self.wh == "bigquery":
            self.bq = fake_bigquery.FakeBigQuery(issuer, gcs=self.gcs).start()
            self.stoppers.append(self.bq.stop)
        token = (self.bq or self.gcs).url + "/token"
        key = gauth_fake.make_service_account_key(self.dir, token)
        issuer.public_key_pem = key.public_pem
        issuer.client_email = key.client_email
        self.env["GOOGLE_APPLICATION_CREDENTIALS"] = key.path

    def close(self):
        for stop in self.stoppers:
            stop()

    def run(self, fx, *args, **extra):
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith(("DATAOPS_", "BIGQUERY_", "AWS_", "PG")) or k in (
                   "BINANCE_BASE_URL", "GCS_BUCKET_NAME", "GCS_BUCKET_PROJECT_NAME",
                   "PROJECT_ID", "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST",
                   "GCE_METADATA_HOST"))}
        env.update(DATAOPS_LOG_FORMAT="json", DATAOPS_HTTP_RETRIES="3",
                   BINANCE_BASE_URL=fx.url)
        env.update(self.env)
        env.update({k: str(v) for k, v in extra.items()})
        p = subprocess.Popen([BIN, "run", "--intervals", "15m", "--start", WEEK_START] +
                             list(args), cwd=self.dir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=300)
        if p.returncode == SANITIZER_EXIT:
            raise AssertionError("sanitizer report from dataops:\n" + err[-6000:])
        return Result(p, out, err)

    def lease_expires(self):
        """BigQuery's lock is a lease that a killed run leaves for 10 minutes
        (docs/gcp.md): end it as time would."""
        if self.wh == "bigquery":
            with self.bq.lock:
                self.bq.engine.con.execute('UPDATE "%s.%s.dataops_locks" SET expires_ms = 0'
                                           % (BQ_PROJECT, DS))

    # --- the warehouse, as lists of {column: value} ---

    def table(self, name):
        if self.wh == "sqlite":
            con = sqlite3.connect(self.db)
            try:
                if not con.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                                   (name,)).fetchall():
                    return []
                cur = con.execute('SELECT * FROM "%s"' % name)
                cols = [d[0] for d in cur.description]
                return [dict(zip(cols, r)) for r in cur.fetchall()]
            finally:
                con.close()
        if self.wh == "postgresql":
            cols = Servers.pg.query("SELECT column_name, data_type FROM information_schema."
                                    "columns WHERE table_schema = '%s' AND table_name = '%s' "
                                    "ORDER BY ordinal_position" % (self.schema, name), PG_DB)
            if not cols:
                return []
            sel = ", ".join('to_char("%s", %s)' % (c, TS) if t.startswith("timestamp")
                            else '"%s"::text' % c for c, t in cols)
            rows = Servers.pg.query('SELECT %s FROM "%s"."%s"' % (sel, self.schema, name),
                                    PG_DB)
            return [dict(zip([c for c, _ in cols], r)) for r in rows]
        key = (BQ_PROJECT, DS, name)
        with self.bq.lock:
            if key not in self.bq.engine.tables:
                return []
            cols = [f["name"] for f in self.bq.engine.tables[key]["schema"]["fields"]]
            return [dict(zip(cols, r)) for r in self.bq.engine.rows(key)]

    def runs(self):
        """The runs in the order they started, each with its pairs' figures."""
        pairs = {}
        for p in self.table("dataops_run_pairs"):
            pairs.setdefault(p["run_id"], []).append(canon_pair(p))
        out = []
        for r in sorted(self.table("dataops_runs"), key=lambda r: r["started_at"]):
            out.append(dict(status=r["status"], exit_code=as_int(r["exit_code"]),
                            pairs=sorted(pairs.get(r["run_id"], []),
                                         key=lambda p: (p["symbol"], p["interval"]))))
        return out

    # --- the lake's data objects, {name: bytes} ---

    def objects(self):
        if self.lake == "file":
            out = {}
            for d, _, files in os.walk(self.lake_dir):
                for f in files:
                    p = os.path.join(d, f)
                    with open(p, "rb") as fh:
                        out[os.path.relpath(p, self.lake_dir)] = fh.read()
        elif self.lake == "s3":
            out = Servers.s3rver.objects(BUCKET, self.prefix)
        else:
            out = {n: self.gcs.object(BUCKET, n) for n in self.gcs.names(BUCKET)}
        return {k: v for k, v in out.items()
                if k.startswith((DS + "/" + RAW + "/", DS + "/" + TRANSFORMED + "/"))}

    def snapshot(self):
        snap = dict(runs=self.runs(), lake={}, keys={}, rows={}, stamps={})
        objects = self.objects()
        for t in (RAW, TRANSFORMED):
            rows = self.table(t)
            snap["rows"][t] = sorted(canon_row(t, d) for d in rows)
            snap["stamps"][t] = {(d["symbol"], d["interval"], canon_row(t, d)[2]):
                                 dt_text(d["updated_at"]) for d in rows}
            mine = {k: v for k, v in objects.items() if k.startswith(DS + "/" + t + "/")}
            snap["keys"][t] = sorted(mine)
            snap["lake"][t] = sorted((generic(k), csv_rows(v)) for k, v in mine.items())
        return snap


STATES = itertools.count(1)    # numbers the states (PostgreSQL schemas, S3 prefixes)


def play(t, lake, wh, fx, ref=None):
    """The scenario on fresh states of (lake, wh); every step is checked on
    its own and, given the reference's snapshots, against them.  Returns the
    snapshots by step."""
    snaps = {}
    base = tempfile.mkdtemp(prefix="%s-%s-" % (lake, wh), dir=Servers.dir)
    sites = []

    def step(site, name, now, code, **env):
        fx.set_now(now)
        r = site.run(fx, **env)
        where = "%s, step %s" % (site.name, name)
        t.assertEqual(r.code, code, "%s: %r" % (where, r))
        snap = site.snapshot()
        if ref is not None:
            compare(t, where, snap, ref[name])
        snaps[name] = snap
        return r, snap, where

    try:
        for part in ("seq", "crash"):
            os.mkdir(os.path.join(base, part))
            sites.append(Site(lake, wh, os.path.join(base, part),
                              "%s%d" % (part, next(STATES))))
        seq, crash = sites

        _, s, where = step(seq, "first", MID_MS, 0)
        t.assertEqual([len(s["rows"][x]) for x in (RAW, TRANSFORMED)], [192, 192], where)
        t.assertEqual([len(s["keys"][x]) for x in (RAW, TRANSFORMED)], [1, 1], where)

        _, s, where = step(seq, "incremental", END_MS, 0)
        t.assertEqual([len(s["rows"][x]) for x in (RAW, TRANSFORMED)], [667, 667], where)
        # Raw is lossless; the first run's rows were not touched.
        t.assertEqual([[r[2]] + list(r[4:]) for r in s["rows"][RAW]], WEEK_ROWS, where)
        for x in (RAW, TRANSFORMED):
            first = snaps["first"]["stamps"][x]
            t.assertEqual({k: s["stamps"][x][k] for k in first}, first, where)
        pair = s["runs"][-1]["pairs"]
        t.assertEqual(len(pair), 1, where)
        t.assertEqual({k: pair[0][k] for k in OUTAGE}, OUTAGE, where)

        _, s, where = step(seq, "rerun", END_MS, 0)
        done = snaps["incremental"]
        for k in ("rows", "stamps", "keys"):
            t.assertEqual(s[k], done[k], "%s: %s changed" % (where, k))
        t.assertEqual([(r["status"], r["exit_code"]) for r in s["runs"]], [("ok", 0)] * 3,
                      where)

        r, s, where = step(crash, "killed", END_MS, -signal.SIGKILL,
                           DATAOPS_FAILPOINT=FAILPOINT)
        t.assertIn("failpoint %s triggered" % FAILPOINT, r.err, where)
        t.assertEqual([len(s["rows"][x]) for x in (RAW, TRANSFORMED)], [667, 0], where)
        crash.lease_expires()

        _, s, where = step(crash, "recovered", END_MS, 0)
        t.assertEqual(s["rows"], done["rows"], "%s: not the rows of the sequence" % where)
        return snaps
    finally:
        for site in sites:
            site.close()


def compare(t, where, got, want):
    """got's rows, lake objects and runs equal want's; a difference is named
    by table and its first differing rows."""
    for table in (RAW, TRANSFORMED):
        for part, what in (("rows", "warehouse rows"), ("lake", "lake objects")):
            g, w = got[part][table], want[part][table]
            if g != w:
                extra = [x for x in g if x not in w][:3]
                lost = [x for x in w if x not in g][:3]
                t.fail("%s: %s of %s differ from the reference's (%d vs %d)\n"
                       "  only here: %s\n  only in the reference: %s"
                       % (where, what, table, len(g), len(w), short(extra), short(lost)))
    t.assertEqual(got["runs"], want["runs"], "%s: runs and their figures differ from the "
                  "reference's" % where)


def short(items):
    text = repr(items)
    return text if len(text) < 3000 else text[:3000] + "..."


class MatrixTest(unittest.TestCase):
    """One test per combination, each against the reference file + sqlite."""
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.fx = FakeExchange(Servers.dir, data=["BTCUSDT:15m:" + F15M], now=MID_MS)
        cls.ref = None
        cls.ref_error = None
        try:
            cls.ref = play(unittest.TestCase(), *REFERENCE, cls.fx)
        except Exception as exc:     # each test reports it
            cls.ref_error = exc

    @classmethod
    def tearDownClass(cls):
        cls.fx.stop()

    def check(self, lake, wh):
        for backend in (lake, wh):
            if backend in Servers.skip:
                self.skipTest(Servers.skip[backend])
            if backend in Servers.broken:
                raise AssertionError("the %s server did not start" % backend) \
                    from Servers.broken[backend]
        if self.ref is None:
            raise AssertionError("the reference (file + sqlite) failed") from self.ref_error
        t0 = time.time()
        play(self, lake, wh, self.fx, self.ref)
        print("%s+%s: %.1fs" % (lake, wh, time.time() - t0), file=sys.stderr)


def _combination(lake, wh):
    def test(self):
        self.check(lake, wh)
    test.__name__ = "test_%s_%s" % (lake, wh)
    test.__doc__ = "lake %s, warehouse %s: the same final rows as file + sqlite" % (lake, wh)
    return test


for _lake in LAKES:
    for _wh in WAREHOUSES:
        _t = _combination(_lake, _wh)
        setattr(MatrixTest, _t.__name__, _t)


if __name__ == "__main__":
    unittest.main(verbosity=2)
