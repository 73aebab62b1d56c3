"""Shared by the BigQuery warehouse's tests (tests/integration/test_wh_bq*.py):
the token issuer, the BigQuery fake and (optionally) the Cloud Storage fake
in-process, the binary's environment for them, and the rows of both
warehouses normalized so that SQLite's and BigQuery's can be compared
(datetimes as values; SQLite keeps the local time's offset as text,
BigQuery a DATETIME; updated_at differs per run and is left out)."""
import datetime
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import BIN, F15M, RAW, TRANSFORMED, PipelineTest, load_rows  # noqa: E402

import fake_bigquery  # noqa: E402
import gauth_fake  # noqa: E402

try:
    import fake_gcs  # noqa: E402
except ImportError:      # the Cloud Storage fake is optional here
    fake_gcs = None

DS = "thebareops_production"
WEEK = load_rows(F15M)
WEEK_START = "2023-03-20"
NOW = WEEK[-1][6] + 1


def dt_text(v):
    """A datetime (BigQuery) or SQLite text -> 'YYYY-MM-DD HH:MM:SS.mmm'."""
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (v.microsecond // 1000)
    return v[:23]


def norm_raw(r):
    # columns: utc_datetime .. ignore (13), updated_at, symbol, interval
    return (r[14], r[15], r[1], dt_text(r[0])) + tuple(r[2:13])


def norm_tr(r):
    # columns: utc_datetime .. ignore (13), updated_at, local, symbol, interval
    return (r[15], r[16], dt_text(r[1]), dt_text(r[0]), tuple(r[2:7]), dt_text(r[7]),
            r[8], r[9], r[10], r[11], r[12], dt_text(r[14]))


def bigquery_built():
    r = subprocess.run([BIN, "config"], capture_output=True, text=True,
                       env=dict(os.environ, DATAOPS_WAREHOUSE="bigquery://test-project"))
    return "not supported by this build" not in r.stderr


class BQTest(PipelineTest):
    """A token issuer, the BigQuery fake and the Cloud Storage fake, in-process."""

    @classmethod
    def setUpClass(cls):
        if not bigquery_built():
            raise unittest.SkipTest("this build has no BigQuery warehouse")

    def setUp(self):
        super().setUp()
        self.issuer = gauth_fake.TokenIssuer(None)
        self.bq = fake_bigquery.FakeBigQuery(self.issuer).start()
        self.key = gauth_fake.make_service_account_key(self.dir, self.bq.url + "/token")
        self.issuer.public_key_pem = self.key.public_pem
        self.issuer.client_email = self.key.client_email
        self.gcs = None

    def tearDown(self):
        self.bq.stop()
        if self.gcs:
            self.gcs.stop()
        super().tearDown()

    def start_gcs(self):
        if fake_gcs is None:
            self.skipTest("tests/fakes/fake_gcs.py is not there")
        self.gcs = fake_gcs.FakeGCS(self.issuer, buckets=["lake"]).start()
        self.bq.gcs = self.gcs
        return self.gcs

    def bq_env(self, **extra):
        env = dict(DATAOPS_WAREHOUSE="bigquery://test-project",
                   BIGQUERY_EMULATOR_HOST=self.bq.url,
                   GOOGLE_APPLICATION_CREDENTIALS=self.key.path,
                   DATAOPS_LAKE=os.path.join(self.dir, "lake-bq"))
        if self.gcs:
            env.update(DATAOPS_LAKE="gs://lake", STORAGE_EMULATOR_HOST=self.gcs.url)
        env.update(extra)
        return env

    def run_bq(self, *args, **extra):
        return self.run_dataops(*args, **self.bq_env(**extra))

    def bq_tables(self):
        raw = sorted(norm_raw(r) for r in self.bq.rows(DS, RAW))
        tr = sorted(norm_tr(r) for r in self.bq.rows(DS, TRANSFORMED))
        return raw, tr

    def sqlite_tables(self, path):
        raw = sorted(norm_raw(r) for r in self.query('SELECT * FROM "%s"' % RAW, path=path))
        tr = sorted(norm_tr(r) for r in self.query('SELECT * FROM "%s"' % TRANSFORMED,
                                                   path=path))
        return raw, tr

    def sqlite_run(self, *args, **extra):
        db = os.path.join(self.dir, "sqlite-%d.db" % len(os.listdir(self.dir)))
        r = self.run_dataops(*args, DATAOPS_WAREHOUSE=db, DATAOPS_LAKE=db + ".lake", **extra)
        self.assertIn(r.code, (0, 3), r)
        return self.sqlite_tables(db)

    def staging_left(self):
        return [t for t in self.bq.table_names(DS) if t.startswith("dataops_stg_")]
