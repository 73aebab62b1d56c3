#!/usr/bin/env python3
"""Integration tests of the Cloud Storage lake (gs://) and the shared Google
auth: the real dataops binary, the loopback fake exchange, and the loopback
Cloud Storage fake (tests/fakes/fake_gcs.py, with its token endpoint and
metadata server), selected as Google's clients select an emulator
(STORAGE_EMULATOR_HOST) and with a service-account key made for the test
whose token_uri points at the fake.

Covers: objects and artifacts land in the right buckets with the bytes the
file lake writes; a rerun; a token that expires mid-run and one revoked
mid-run; a resumable upload cut off halfway and resumed; a 503 on a chunk;
an answer lost after the object was created; an existing object never
overwritten (412); Workload Identity (metadata server); an emulator without
credentials; a refusing token endpoint and broken key files; and no private
key or token anywhere in the output, the lake or the warehouse.
"""
import csv
import io
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import (F15M, RAW, TRANSFORMED, PipelineTest, load_rows, rollup,  # noqa: E402
                     write_rows)
import gauth_fake  # noqa: E402
from fake_gcs import OCCUPIED, FakeGCS, b64_crc, b64_md5  # noqa: E402

WEEK_START = "2023-03-20"
WEEK_ROWS = load_rows(F15M)
WEEK_END_MS = WEEK_ROWS[-1][6] + 1
LAKE = "dataops-lake"
ARTIFACTS = "dataops-artifacts"      # DATAOPS_GCS_ARTIFACTS_BUCKET (opt-in)
ART_PREFIX = "thebareops_production/pipeline-dataops/"
RAW_PREFIX = "thebareops_production/%s/symbol=BTCUSDT/" % RAW
TR_PREFIX = "thebareops_production/%s/symbol=BTCUSDT/" % TRANSFORMED


def without_column(data, name):
    """CSV text without the column `name` (updated_at differs between runs)."""
    rows = list(csv.reader(io.StringIO(data.decode())))
    if name not in rows[0]:
        return rows
    i = rows[0].index(name)
    return [r[:i] + r[i + 1:] for r in rows]


class GcsTest(PipelineTest):
    anonymous = False

    def setUp(self):
        super().setUp()
        self.issuer = gauth_fake.TokenIssuer(None, 3600, scope=gauth_fake.SCOPE_CLOUD)
        self.gcs = FakeGCS(self.issuer, [LAKE, ARTIFACTS], anonymous=self.anonymous).start()
        self.key = gauth_fake.make_service_account_key(self.dir, self.gcs.url + "/token")
        self.issuer.public_key_pem = self.key.public_pem
        self.issuer.client_email = self.key.client_email
        self.issuer.audience = self.key.token_uri
        self.results = []

    def tearDown(self):
        try:
            self.assert_no_secrets()
        finally:
            self.gcs.stop()
            super().tearDown()

    def gcs_env(self, fx, **extra):
        env = self.env(BINANCE_BASE_URL=fx.url, DATAOPS_LAKE="gs://" + LAKE,
                       STORAGE_EMULATOR_HOST="127.0.0.1:%d" % self.gcs.port,
                       GOOGLE_APPLICATION_CREDENTIALS=self.key.path)
        env.pop("GCE_METADATA_HOST", None)
        env.pop("DATAOPS_GCS_ARTIFACTS_BUCKET", None)
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def run_gcs(self, fx, *args, **extra):
        r = self.run_dataops("run", *args, env=self.gcs_env(fx, **extra))
        self.results.append(r)
        return r

    def week(self):
        return self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)

    def assert_no_secrets(self):
        """Neither the private key nor any token in stdout, stderr, the lake
        objects or the warehouse file."""
        pem_lines = [ln for ln in self.key.private_pem.splitlines()
                     if ln and not ln.startswith("-----")]
        needles = [ln.encode() for ln in pem_lines[1:-1]]
        needles += [t.encode() for t in self.issuer.tokens()]
        hay = [r.out.encode() + r.err.encode() for r in self.results]
        for b in (LAKE, ARTIFACTS):
            hay += [self.gcs.object(b, n) for n in self.gcs.names(b)]
        db = os.path.join(self.dir, "data", "warehouse.db")
        if os.path.exists(db):
            with open(db, "rb") as f:
                hay.append(f.read())
        for h in hay:
            for n in needles:
                self.assertNotIn(n, h, "a secret leaked")

    def data_names(self):
        return [n for n in self.gcs.names(LAKE) if "/pipeline-dataops/" not in n]

    def artifact_names(self, run_id, bucket=LAKE, prefix=ART_PREFIX):
        return [n for n in self.gcs.names(bucket) if n.startswith(prefix + run_id + "/")]


class BucketsTest(GcsTest):
    def test_objects_and_artifacts_land_in_their_buckets_with_file_lake_bytes(self):
        fx = self.week()
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 667)
        names = self.gcs.names(LAKE)
        raw = [n for n in names if n.startswith(RAW_PREFIX + "interval=15m/")]
        tr = [n for n in names if n.startswith(TR_PREFIX + "interval=15m/")]
        self.assertEqual((len(raw), len(tr)), (1, 1), names)
        run_id = self.query("SELECT run_id FROM dataops_runs")[0][0]
        # The original's layout, in the one bucket: <GCS_BUCKET_PROJECT_NAME>/
        # pipeline-dataops/<run_id>/ beside <dataset>/<table>/.
        self.assertEqual(sorted(self.artifact_names(run_id)),
                         [ART_PREFIX + "%s/%s" % (run_id, f)
                          for f in ("config.json", "metadata.json", "run.log")])
        self.assertEqual(len(names), 5, names)
        self.assertEqual(self.gcs.names(ARTIFACTS), [])
        meta = json.loads(self.gcs.object(LAKE, ART_PREFIX + "%s/metadata.json" % run_id))
        self.assertEqual(meta["status"], "ok")
        cfg = json.loads(self.gcs.object(LAKE, ART_PREFIX + "%s/config.json" % run_id))
        self.assertEqual(cfg["DATAOPS_LAKE"]["value"], "gs://" + LAKE)
        # Small objects take one multipart upload each, checked by checksum.
        st = self.gcs.stats()
        self.assertEqual(st["multipart"], 5)
        self.assertEqual(st["resumable_sessions"], 0)
        self.assertEqual(st["jwt_grants"], 1, "the token is cached")
        # The same CSV as the file lake (apart from the extraction time).
        file_dir = os.path.join(self.dir, "filelake")
        os.makedirs(file_dir)
        r2 = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START,
                              BINANCE_BASE_URL=fx.url, cwd=file_dir)
        self.results.append(r2)
        self.assertEqual(r2.code, 0, r2)
        root = os.path.join(file_dir, "data", "lake")
        for prefix, got in ((RAW_PREFIX, raw[0]), (TR_PREFIX, tr[0])):
            d = os.path.join(root, prefix, "interval=15m")
            (fname,) = os.listdir(d)
            with open(os.path.join(d, fname), "rb") as f:
                want = f.read()
            self.assertEqual(without_column(self.gcs.object(LAKE, got), "updated_at"),
                             without_column(want, "updated_at"))
        # Run records point at gs:// URIs.
        uris = " ".join(str(x) for row in self.query("SELECT * FROM dataops_runs") for x in row)
        self.assertNotIn("file://", uris)

    def test_rerun_adds_no_data_object_and_overwrites_nothing(self):
        fx = self.week()
        args = ("--intervals", "15m", "--start", WEEK_START)
        self.assertEqual(self.run_gcs(fx, *args).code, 0)
        before = {n: self.gcs.object(LAKE, n) for n in self.gcs.names(LAKE)}
        r = self.run_gcs(fx, *args)
        self.assertEqual(r.code, 0, r)
        self.assertEqual({n: self.gcs.object(LAKE, n) for n in self.data_names()},
                         {n: d for n, d in before.items() if "/pipeline-dataops/" not in n})
        self.assertEqual(len(self.gcs.names(LAKE)), len(before) + 3)
        for n, d in before.items():
            self.assertEqual(self.gcs.object(LAKE, n), d)
        self.assertEqual(self.gcs.stats()["precondition_failed"], 0)

    def test_prefix_in_the_lake_url(self):
        fx = self.week()
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START,
                         DATAOPS_LAKE="gs://%s/lake/v1/" % LAKE)
        self.assertEqual(r.code, 0, r)
        names = self.gcs.names(LAKE)
        self.assertEqual(len(names), 5)
        self.assertTrue(all(n.startswith("lake/v1/thebareops_production/") for n in names),
                        names)

    def test_bucket_from_gcs_bucket_name_as_the_original_sets_it(self):
        """gs:// alone takes GCS_BUCKET_NAME; GCS_BUCKET_PROJECT_NAME is the
        artifacts' top-level folder in it, as in the original."""
        fx = self.week()
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START,
                         DATAOPS_LAKE="gs://", GCS_BUCKET_NAME=LAKE,
                         GCS_BUCKET_PROJECT_NAME="myproject")
        self.assertEqual(r.code, 0, r)
        run_id = self.query("SELECT run_id FROM dataops_runs")[0][0]
        self.assertEqual(len(self.artifact_names(run_id, LAKE, "myproject/pipeline-dataops/")),
                         3)
        self.assertEqual(len(self.data_names()), 2)

    def test_artifacts_bucket_of_their_own(self):
        fx = self.week()
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START,
                         DATAOPS_GCS_ARTIFACTS_BUCKET=ARTIFACTS)
        self.assertEqual(r.code, 0, r)
        run_id = self.query("SELECT run_id FROM dataops_runs")[0][0]
        self.assertEqual(sorted(self.gcs.names(ARTIFACTS)),
                         ["pipeline-dataops/%s/%s" % (run_id, f)
                          for f in ("config.json", "metadata.json", "run.log")])
        self.assertEqual(len(self.gcs.names(LAKE)), 2)
        self.assertIn("artifacts in gs://" + ARTIFACTS, r.err)

    def test_missing_bucket_is_a_clear_error(self):
        fx = self.week()
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START,
                         DATAOPS_LAKE="gs://no-such-bucket")
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("no-such-bucket", r.err)
        self.assertIn("404", r.err)


class TokenTest(GcsTest):
    def test_short_lived_token_is_renewed_and_a_revoked_one_refreshed(self):
        self.issuer.expires_in = 2
        # Two pairs with a slow exchange: the run outlives several 2-second
        # tokens whatever the machine's speed.
        rows30 = rollup(load_rows(F15M), lambda t: t - t % 1800000)
        path30 = write_rows(os.path.join(self.dir, "30m.json"), rows30)
        fx = self.fake(data=["BTCUSDT:15m:" + F15M, "BTCUSDT:30m:" + path30],
                       now=WEEK_END_MS, latency_ms=900)
        self.gcs.add_fault("expire:3")
        r = self.run_gcs(fx, "--intervals", "15m,30m", "--start", WEEK_START)
        self.assertEqual(r.code, 0, r)
        st = self.gcs.stats()
        self.assertGreaterEqual(st["jwt_grants"], 3, st)
        self.assertGreaterEqual(st["unauthorized"], 1, st)
        self.assertEqual(st["created"], 7)
        self.assertIn("HTTP 401, refreshing", r.err)

    def test_refusing_token_endpoint_is_a_clear_error(self):
        self.issuer.refuse = "Invalid JWT Signature."
        fx = self.week()
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START)
        self.assertEqual(r.code, 1, r)
        self.assertIn("invalid_grant", r.err)
        self.assertIn("Invalid JWT Signature.", r.err)
        self.assertIn(self.key.token_uri, r.err)
        self.assertIn(self.key.client_email, r.err)
        self.assertEqual(self.gcs.names(LAKE), [])
        self.assertEqual(self.gcs.stats()["storage_requests"], 0)

    def test_wrong_signing_key_is_refused(self):
        other = os.path.join(self.dir, "other")
        os.makedirs(other)
        k2 = gauth_fake.make_service_account_key(other, self.key.token_uri,
                                                 client_email=self.key.client_email)
        fx = self.week()
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START,
                         GOOGLE_APPLICATION_CREDENTIALS=k2.path)
        self.results.append(r)
        self.assertEqual(r.code, 1, r)
        self.assertIn("Invalid JWT Signature", r.err)
        for ln in k2.private_pem.splitlines()[2:-2]:
            self.assertNotIn(ln, r.err)

    def test_key_file_problems(self):
        fx = self.week()
        bad = os.path.join(self.dir, "bad.json")
        cases = [
            (os.path.join(self.dir, "missing.json"), None, "does not exist"),
            (bad, "not json at all", "is not a JSON object"),
            (bad, json.dumps({"type": "authorized_user", "refresh_token": "x" * 30}),
             "authorized_user"),
            (bad, json.dumps({"type": "service_account",
                              "client_email": "a@b.iam.gserviceaccount.com"}),
             "has no private_key"),
            (bad, json.dumps({"type": "service_account",
                              "client_email": "a@b.iam.gserviceaccount.com",
                              "private_key": "-----BEGIN PRIVATE KEY-----\nQUJD\n"
                                             "-----END PRIVATE KEY-----\n"}),
             "is not a PEM private key"),
        ]
        for path, content, want in cases:
            if content is not None:
                with open(path, "w") as f:
                    f.write(content)
            r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START,
                             GOOGLE_APPLICATION_CREDENTIALS=path)
            self.assertEqual(r.code, 2, r)
            self.assertIn(want, r.err)
            self.assertIn(path, r.err)
            self.assertNotIn("QUJD", r.err)
        os.chmod(bad, 0)
        if os.geteuid() != 0:
            r = self.run_gcs(fx, GOOGLE_APPLICATION_CREDENTIALS=bad)
            self.assertIn("cannot read", r.err)

    def test_metadata_server_gives_the_token_without_a_key_file(self):
        fx = self.week()
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START,
                         GOOGLE_APPLICATION_CREDENTIALS=None,
                         GCE_METADATA_HOST="127.0.0.1:%d" % self.gcs.port)
        self.assertEqual(r.code, 0, r)
        st = self.gcs.stats()
        self.assertEqual(st["jwt_grants"], 0)
        self.assertGreaterEqual(st["metadata_grants"], 1)
        self.assertEqual(st["created"], 5)


class AnonymousEmulatorTest(GcsTest):
    anonymous = True

    def test_emulator_without_credentials_goes_anonymous(self):
        fx = self.week()
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START,
                         GOOGLE_APPLICATION_CREDENTIALS=None)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.gcs.stats()["created"], 5)
        self.assertEqual(self.issuer.tokens(), [])


class UploadFaultTest(GcsTest):
    START = 1577836800000
    N = 6000

    def big(self):
        return self.fake(synth=["BTCUSDT:1m:%d:%d" % (self.START, self.N)],
                         now=self.START + self.N * 60000 + 5)

    def resumable_env(self):
        return {"DATAOPS_GCS_RESUMABLE_THRESHOLD": 300000, "DATAOPS_GCS_CHUNK_SIZE": 262144}

    def check_raw_object(self, n_rows):
        (name,) = [n for n in self.gcs.names(LAKE) if n.startswith(RAW_PREFIX)]
        data = self.gcs.object(LAKE, name)
        lines = data.decode().splitlines()
        self.assertEqual(len(lines), n_rows + 1)
        opens = [int(line.split(",")[1]) for line in lines[1:]]
        self.assertEqual(opens, [self.START + i * 60000 for i in range(n_rows)])
        return data

    def test_resumable_upload_cut_halfway_resumes_from_what_was_kept(self):
        fx = self.big()
        # Upload requests: 1 opens the raw session, 2 and 3 send 512 KiB chunks.
        # The 3rd is cut halfway (the session keeps 256 KiB of it), and so is
        # the 4th: libcurl itself resends a request once when a reused
        # connection dies before any answer, so the cut shows only the second
        # time.  dataops then asks the session what it kept and resumes from
        # there; a later request gets a 503 and is resumed the same way.
        for f in ("cut:3", "cut:4", "503:6"):
            self.gcs.add_fault(f)
        env = self.resumable_env()
        env["DATAOPS_GCS_CHUNK_SIZE"] = 524288
        r = self.run_gcs(fx, "--start", str(self.START), **env)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), self.N)
        data = self.check_raw_object(self.N)
        self.assertGreater(len(data), 2 * 524288)
        st = self.gcs.stats()
        self.assertEqual(st["resumable_sessions"], 2, st)   # raw and transformed
        self.assertGreaterEqual(st["status_queries"], 2, (st, r.err[-3000:]))
        self.assertEqual(st["faults_fired"], 3)
        self.assertEqual(st["precondition_failed"], 0)
        self.assertIn("asking the session what it kept", r.err)

    def test_interrupted_resumable_upload_is_cancelled_and_leaves_nothing(self):
        fx = self.big()
        # Every chunk request after the first fails: the writer gives up,
        # cancels its session and the run fails; nothing is visible.
        for n in range(3, 12):
            self.gcs.add_fault("503:%d" % n)
        r = self.run_gcs(fx, "--start", str(self.START), DATAOPS_HTTP_RETRIES=2,
                         **self.resumable_env())
        self.assertEqual(r.code, 1, r)
        self.assertEqual([n for n in self.gcs.names(LAKE) if n.startswith(RAW_PREFIX)], [])
        self.assertGreaterEqual(self.gcs.stats()["cancelled"], 1)
        self.assertEqual(self.count(RAW), 0)

    def test_lost_answer_after_create_is_recognised_as_ours(self):
        fx = self.week()
        self.gcs.add_fault("lose:1")
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START)
        self.assertEqual(r.code, 0, r)
        st = self.gcs.stats()
        self.assertEqual(st["precondition_failed"], 1)
        self.assertEqual(st["created"], 5)
        self.assertIn("created by an earlier attempt", r.err)

    def test_existing_object_is_never_overwritten(self):
        fx = self.week()
        self.gcs.add_fault("occupy:1")
        r = self.run_gcs(fx, "--intervals", "15m", "--start", WEEK_START)
        self.assertEqual(r.code, 1, r)
        self.assertIn("already exists; not overwritten", r.err)
        (name,) = [n for n in self.gcs.names(LAKE) if n.startswith(RAW_PREFIX)]
        self.assertEqual(self.gcs.object(LAKE, name), OCCUPIED)
        self.assertEqual(self.count(RAW), 0, "the rows of a refused object are not loaded")

    def test_existing_object_refused_at_resumable_start(self):
        fx = self.big()
        self.gcs.add_fault("occupy:1")
        r = self.run_gcs(fx, "--start", str(self.START), **self.resumable_env())
        self.assertEqual(r.code, 1, r)
        self.assertIn("already exists; not overwritten", r.err)
        (name,) = [n for n in self.gcs.names(LAKE) if n.startswith(RAW_PREFIX)]
        self.assertEqual(self.gcs.object(LAKE, name), OCCUPIED)

    def test_checksums_of_created_objects(self):
        fx = self.big()
        r = self.run_gcs(fx, "--start", str(self.START), **self.resumable_env())
        self.assertEqual(r.code, 0, r)
        data = self.check_raw_object(self.count(RAW))
        # The fake computed these from what it stored; dataops compared them
        # with its own (a mismatch would have failed the run).
        self.assertTrue(b64_crc(data) and b64_md5(data))


if __name__ == "__main__":
    unittest.main(verbosity=2)
