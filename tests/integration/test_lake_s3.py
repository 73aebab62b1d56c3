#!/usr/bin/env python3
"""Integration tests of the S3-compatible lake (DATAOPS_LAKE=s3://bucket/prefix).

The real dataops binary runs against the fake exchange and SQLite, with its
lake in s3rver (npm, 3.7.1), reached through tests/s3/s3front.py: a loopback
front that records every request and adds the S3 behaviours s3rver lacks
(Content-MD5 and payload-hash verification, If-None-Match: *, abort of a
multipart upload, NoSuchUpload) and lets a test inject faults.

Covers: the same objects, byte for byte, as the file lake for the same run;
incremental run and rerun; multipart upload with integrity checks; transient
failures retried (and a retry that finds its first attempt landed); an
interrupted multipart upload (failed: aborted, nothing left; killed: no
object, the upload left for the lifecycle rule); never overwrite (by HEAD,
and by If-None-Match where HEAD cannot see); wrong and missing credentials
(a clear error naming the endpoint and key id, the secret never printed);
virtual-host addressing with a session token; and the SigV4 signature of
every request checked against npm's aws4 (tests/s3/sigv4_check.js), since
s3rver verifies only the access key id.

Needs node and npm: tests/s3/node_modules is installed with `npm ci` here
when missing (the npm registry must be reachable).
"""
import hashlib
import os
import re
import signal
import subprocess
import sys
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "s3"))
from harness import (BIN, F15M, RAW, TRANSFORMED, PipelineTest,  # noqa: E402
                     csv_blank_updated_at, load_rows)
from s3front import S3Front  # noqa: E402
from s3lake import KEY_ID, S3DIR, SUFFIX, S3rver, ensure_node_modules  # noqa: E402

BUCKET = "lake"
SECRET = "Sekrit-s3-9b8a7c6d5e4f"       # s3rver does not check it; aws4 does
WEEK_START = "2023-03-20"
WEEK_ROWS = load_rows(F15M)
WEEK_END_MS = WEEK_ROWS[-1][6] + 1
MID_MS = 1679443200000                  # 2023-03-22 00:00: 192 candles closed
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STAMP = re.compile(r"\d{8}T\d{6}Z")

S3RVER = {}                             # the module's s3rver: proc, port, dir


def setUpModule():
    ensure_node_modules()
    srv = S3rver(BUCKET)
    S3RVER.update(srv=srv, proc=srv.proc, port=srv.port, dir=srv.dir, store=srv.store)


def tearDownModule():
    if S3RVER.get("srv"):
        S3RVER["srv"].stop()


normalize_csv = csv_blank_updated_at


def generic(key):
    """A key with its run id and run time replaced, to compare two runs."""
    return STAMP.sub("<time>", RUN_ID.sub("<run>", key))


class S3LakeTest(PipelineTest):
    def setUp(self):
        super().setUp()
        self.prefix = "t/" + self._testMethodName
        self.front = S3Front(S3RVER["port"], S3RVER["store"],
                             os.path.join(self.dir, "s3-requests.jsonl"))

    def tearDown(self):
        self.front.stop()
        super().tearDown()

    # --- helpers -----------------------------------------------------------

    def s3env(self, **kw):
        env = self.env(DATAOPS_LAKE="s3://%s/%s" % (BUCKET, self.prefix),
                       DATAOPS_S3_ENDPOINT=self.front.url, AWS_ACCESS_KEY_ID=KEY_ID,
                       AWS_SECRET_ACCESS_KEY=SECRET, DATAOPS_HTTP_RETRIES="2")
        for k in ("AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                  "DATAOPS_S3_ADDRESSING", "DATAOPS_S3_PART_SIZE"):
            env.pop(k, None)
        env.update({k: str(v) for k, v in kw.items()})
        return env

    def run_s3(self, fx, *extra, **kw):
        return self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START, *extra,
                                env=self.s3env(BINANCE_BASE_URL=fx.url, **kw))

    def objects(self, sub=""):
        """{key under the prefix: bytes} of the visible objects."""
        root = os.path.join(S3RVER["store"], BUCKET, self.prefix)
        out = {}
        for d, _, files in os.walk(root):
            for f in files:
                if f.endswith(SUFFIX):
                    full = os.path.join(d, f)
                    key = os.path.relpath(full, root)[:-len(SUFFIX)]
                    if key.startswith(sub):
                        with open(full, "rb") as fh:
                            out[key] = fh.read()
        return out

    def data_objects(self, table):
        return {k: v for k, v in self.objects().items() if ("/%s/" % table) in k}

    def pending(self):
        return {u: k for u, k in self.front.pending_uploads(BUCKET).items()
                if k is None or k.startswith(self.prefix + "/")}

    def check_signatures(self, secret=SECRET):
        log = os.path.join(self.dir, "s3-requests.jsonl")
        return subprocess.run(["node", os.path.join(S3DIR, "sigv4_check.js"), log],
                              env=dict(os.environ, AWS_SECRET_ACCESS_KEY=secret),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=60)

    def assert_signatures(self):
        """Every request of the test, re-signed by npm's aws4, must match."""
        r = self.check_signatures()
        self.assertEqual(r.returncode, 0, r.stdout[-4000:])
        self.assertRegex(r.stdout, r"\n[1-9]\d* passed, 0 failed\n$")

    def assert_no_secret(self, *texts):
        for t in texts:
            self.assertNotIn(SECRET, t)
        for d, _, files in os.walk(self.dir):
            for f in files:
                with open(os.path.join(d, f), "rb") as fh:
                    self.assertNotIn(SECRET.encode(), fh.read(), f)
        for k, v in self.objects().items():
            self.assertNotIn(SECRET.encode(), v, k)

    def lake_rows(self, table):
        """Rows of the table's objects, by open time (objects never overlap)."""
        rows = []
        for data in self.data_objects(table).values():
            rows += normalize_csv(data)[1:]
        return sorted(rows, key=lambda r: r[1])

    # --- tests -------------------------------------------------------------

    def test_same_objects_as_the_file_lake_then_incremental_and_rerun(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=MID_MS)
        # The embedded default, in a directory of its own.
        ref = os.path.join(self.dir, "ref")
        os.mkdir(ref)
        r = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START, cwd=ref,
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        ref_root = os.path.join(ref, "data", "lake")
        ref_objects = {}
        for d, _, files in os.walk(ref_root):
            for f in files:
                p = os.path.join(d, f)
                if "/.tmp/" not in p:
                    with open(p, "rb") as fh:
                        ref_objects[os.path.relpath(p, ref_root)] = fh.read()

        r = self.run_s3(fx)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 192)
        got = self.objects()
        self.assertEqual(sorted(generic(k) for k in got), sorted(generic(k) for k in ref_objects))
        by_generic = {generic(k): v for k, v in ref_objects.items()}
        for k, v in got.items():
            if k.endswith(".csv"):
                self.assertEqual(normalize_csv(v), normalize_csv(by_generic[generic(k)]), k)
        run_id = self.query("SELECT run_id FROM dataops_runs")[0][0]
        self.assertIn("s3://%s/%s/thebareops_production/%s/" % (BUCKET, self.prefix, RAW), r.err)
        self.assertIn("thebareops_production/pipeline-dataops/%s/metadata.json" % run_id, got)

        # Every object went up as one PUT with its checksums and the
        # never-overwrite condition, and every signature is right.
        reqs = self.front.requests()
        puts = [q for q in reqs if q["kind"] == "PutObject"]
        self.assertEqual(len(puts), len(got))
        for q in puts:
            self.assertEqual(q["headers"].get("if-none-match"), "*")
            self.assertIn("content-md5", q["headers"])
            self.assertRegex(q["headers"]["x-amz-content-sha256"], "^[0-9a-f]{64}$")
        self.assertTrue(all(q["verdict"] == "ok" for q in reqs))
        self.assertFalse(any(q["kind"] == "CreateMultipartUpload" for q in reqs))

        # Incremental: only the candles closed since, in new objects.
        fx.set_now(WEEK_END_MS)
        r = self.run_s3(fx)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual(self.count(TRANSFORMED), 667)
        self.assertEqual(len(self.data_objects(RAW)), 2)
        # Rerun: nothing new, no new data object (only the run's artifacts).
        r = self.run_s3(fx)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(len(self.data_objects(RAW)), 2)
        self.assertEqual(len(self.data_objects(TRANSFORMED)), 2)
        # The lake holds exactly what the warehouse holds.
        raw = self.lake_rows(RAW)
        self.assertEqual([int(x[1]) for x in raw], [w[0] for w in WEEK_ROWS])
        self.assertEqual(len(self.lake_rows(TRANSFORMED)), 667)
        self.assertEqual(self.pending(), {})
        self.assert_signatures()
        self.assert_no_secret(r.out, r.err)

    def test_multipart_upload_with_integrity_and_retries(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        parts_seen = []

        def hook(req):
            # One transient failure of a part, a lost answer to a single PUT
            # and to a completion: each retried, the last two find their
            # first attempt landed and accept it (same ETag), not "exists".
            if req.kind == "UploadPart":
                parts_seen.append(req.n)
                if len(parts_seen) == 2:
                    return ("error", 503, "SlowDown")
            once = req.kind == "PutObject" and req.key.endswith("config.json") or \
                req.kind == "CompleteMultipartUpload" and "/%s/" % TRANSFORMED in req.key
            if once and req.kind not in lost:
                lost.append(req.kind)
                return ("lost", 500, "InternalError")
            return None
        lost = []
        self.front.hook = hook
        r = self.run_s3(fx, DATAOPS_S3_PART_SIZE="16K", DATAOPS_LOG_LEVEL="debug")
        self.assertEqual(r.code, 0, r)
        self.assertIn("below S3's 5 MiB minimum part size", r.err)
        self.assertEqual(sorted(lost), ["CompleteMultipartUpload", "PutObject"])
        reqs = self.front.requests()
        for table, rows in ((RAW, 667), (TRANSFORMED, 667)):
            objs = self.data_objects(table)
            self.assertEqual(len(objs), 1)
            (key, data), = objs.items()
            self.assertGreater(len(data), 16384 * 5)
            self.assertEqual(len(normalize_csv(data)), rows + 1)
            full = urllib.parse.quote("%s/%s" % (self.prefix, key), safe="/-_.~")
            parts = [q for q in reqs if q["kind"] == "UploadPart" and q["verdict"] == "ok"
                     and full in q["path"]]
            # 16 KiB parts, the last shorter; Content-MD5 on each (checked by the front).
            nparts = (len(data) + 16383) // 16384
            self.assertEqual(sorted({int(re.search(r"partNumber=(\d+)", q["path"]).group(1))
                                     for q in parts}), list(range(1, nparts + 1)))
            self.assertTrue(all(q["len"] == 16384 for q in parts
                                if "partNumber=%d&" % nparts not in q["path"]))
            self.assertTrue(all("content-md5" in q["headers"] for q in parts))
            # The object's bytes are the ones sent: s3rver's stored MD5.
            md5file = os.path.join(S3RVER["store"], BUCKET, self.prefix, key + SUFFIX + ".md5")
            with open(md5file) as f:
                self.assertEqual(f.read(), hashlib.md5(data).hexdigest())
        kinds = [q["kind"] for q in reqs if "/thebareops_production/" in q["path"]
                 and "/pipeline-dataops/" not in q["path"]]
        self.assertEqual(kinds.count("CreateMultipartUpload"), 2)
        self.assertEqual(kinds.count("CompleteMultipartUpload"), 3)   # one lost answer
        self.assertNotIn("AbortMultipartUpload", [q["kind"] for q in reqs])
        # The debug log names each request, never a credential header.
        self.assertIn("?uploads= -> 200", r.err)
        self.assert_no_secret(r.out, r.err)
        # The warehouse rows equal the lake's, and nothing is left pending.
        self.assertEqual([int(x[1]) for x in self.lake_rows(RAW)], [w[0] for w in WEEK_ROWS])
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual(self.pending(), {})
        self.assert_signatures()

    def test_failed_multipart_upload_is_aborted_and_the_next_run_converges(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        # Every part after the first is refused with 503 until the retries
        # run out: the upload must be aborted and nothing become visible.
        self.front.hook = lambda req: (("error", 503, "SlowDown")
                                       if req.kind == "UploadPart" and
                                       "partNumber=1&" not in req.path else None)
        r = self.run_s3(fx, DATAOPS_S3_PART_SIZE="16K", DATAOPS_HTTP_RETRIES="1")
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("SlowDown", r.err)
        self.assertIn("multipart upload of s3://%s/%s/" % (BUCKET, self.prefix), r.err)
        self.assertEqual(self.data_objects(RAW), {})
        self.assertEqual(self.pending(), {})
        aborts = [q for q in self.front.requests() if q["kind"] == "AbortMultipartUpload"]
        self.assertEqual(len(aborts), 1)
        self.assertEqual(self.count(RAW), 0)
        # The store recovers: the next run writes everything.
        self.front.hook = None
        r = self.run_s3(fx, DATAOPS_S3_PART_SIZE="16K")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual([int(x[1]) for x in self.lake_rows(RAW)], [w[0] for w in WEEK_ROWS])
        self.assertEqual(self.pending(), {})
        self.assert_signatures()

    def test_killed_mid_upload_leaves_no_object(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        procs = []

        def hook(req):
            if req.kind == "UploadPart" and "partNumber=3&" in req.path:
                procs[0].kill()     # SIGKILL: no chance to abort
                return ("drop",)
            return None
        self.front.hook = hook
        env = self.s3env(BINANCE_BASE_URL=fx.url, DATAOPS_S3_PART_SIZE="16K")
        p = subprocess.Popen([BIN, "run", "--intervals", "15m", "--start", WEEK_START],
                             cwd=self.dir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        procs.append(p)
        p.communicate(timeout=60)
        self.assertEqual(p.returncode, -signal.SIGKILL)
        # Nothing visible: the object exists only once completed.
        self.assertEqual(self.data_objects(RAW), {})
        self.assertEqual(self.count(RAW), 0)
        # Its parts stay pending (a bucket lifecycle rule removes them).
        self.assertEqual(len(self.pending()), 1)
        self.front.hook = None
        r = self.run_s3(fx, DATAOPS_S3_PART_SIZE="16K")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual(len(self.data_objects(RAW)), 1)

    def test_never_overwrites_an_existing_object(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        other = b"another writer's object\n"

        def plant(req):
            # A concurrent writer creates the raw object just before us.
            if req.kind == "HeadObject" and "/%s/" % RAW in req.key and \
                    not self.front.exists(BUCKET, req.key):
                self.front.plant(BUCKET, req.key, other)
            return None
        for hide_head in (False, True):
            with self.subTest(hide_head=hide_head):
                # hide_head: the store's HEAD cannot see it (a race, or no
                # list permission); only If-None-Match stops the write.
                self.front.hide_head = hide_head
                self.front.hook = plant
                before = set(self.data_objects(RAW))
                r = self.run_s3(fx)
                self.assertNotEqual(r.code, 0, r)
                self.assertIn("already exists", r.err)
                self.assertIn("not overwritten", r.err)
                new = set(self.data_objects(RAW)) - before
                self.assertEqual(len(new), 1)
                self.assertEqual(self.data_objects(RAW)[new.pop()], other)
                self.assertEqual(self.count(RAW), 0)
                puts = [q for q in self.front.requests() if q["kind"] == "PutObject"
                        and "/%s/" % RAW in q["path"]]
                self.assertEqual(len(puts), 1 if hide_head else 0)
        self.assert_signatures()

    def test_wrong_credentials_name_the_endpoint_and_key_id_never_the_secret(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        # s3rver knows only the key id S3RVER.
        r = self.run_s3(fx, AWS_ACCESS_KEY_ID="AKIAWRONGKEY1234")
        self.assertEqual(r.code, 2, r)
        self.assertIn("AKIAWRONGKEY1234", r.err)
        self.assertIn(self.front.url, r.err)
        self.assertIn("InvalidAccessKeyId", r.err)
        self.assertEqual(self.objects(), {})
        self.assert_no_secret(r.out, r.err)
        # A wrong secret: AWS answers SignatureDoesNotMatch (the front plays it).
        self.front.hook = lambda req: ("error", 403, "SignatureDoesNotMatch")
        r = self.run_s3(fx)
        self.assertEqual(r.code, 2, r)
        self.assertIn("SignatureDoesNotMatch", r.err)
        self.assertIn("'%s'" % KEY_ID, r.err)
        self.assertIn("AWS_SECRET_ACCESS_KEY", r.err)
        self.assert_no_secret(r.out, r.err)
        # No credentials at all: a configuration error naming the variables.
        self.front.hook = None
        env = self.s3env(BINANCE_BASE_URL=fx.url)
        del env["AWS_SECRET_ACCESS_KEY"]
        r = self.run_dataops("run", "--intervals", "15m", "--start", WEEK_START, env=env)
        self.assertEqual(r.code, 2, r)
        self.assertIn("AWS_SECRET_ACCESS_KEY", r.err)
        # An unreachable endpoint fails fast, before any extraction.
        r = self.run_s3(fx, DATAOPS_S3_ENDPOINT="http://127.0.0.1:9", DATAOPS_HTTP_RETRIES="0")
        self.assertNotEqual(r.code, 0, r)
        self.assertIn("http://127.0.0.1:9", r.err)
        self.assertEqual(self.objects(), {})

    def test_virtual_host_addressing_and_session_token(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=WEEK_END_MS)
        token = "FwoGZXIvYXdzEPb-session-token-" + "x" * 40
        endpoint = "http://s3.localhost:%d" % self.front.port
        r = self.run_s3(fx, DATAOPS_S3_ENDPOINT=endpoint, DATAOPS_S3_ADDRESSING="virtual",
                        AWS_SESSION_TOKEN=token, AWS_REGION="eu-west-3",
                        DATAOPS_LOG_LEVEL="debug")
        self.assertEqual(r.code, 0, r)
        self.assertIn("virtual-host", r.err)
        self.assertEqual(self.count(RAW), 667)
        self.assertEqual(len(self.data_objects(RAW)), 1)
        reqs = self.front.requests()
        self.assertTrue(reqs)
        for q in reqs:
            self.assertEqual(q["headers"]["host"], "%s.s3.localhost:%d" % (BUCKET, self.front.port))
            self.assertFalse(q["path"].startswith("/%s/" % BUCKET), q["path"])
            self.assertEqual(q["headers"]["x-amz-security-token"], token)
            self.assertIn("/eu-west-3/s3/aws4_request", q["headers"]["authorization"])
            self.assertIn("x-amz-security-token", q["headers"]["authorization"])
        self.assertNotIn(token, r.err + r.out)
        self.assert_signatures()
        # The check has teeth: with another secret no signature matches.
        r = self.check_signatures(secret=SECRET + "x")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stdout, r"\n0 passed, [1-9]\d* failed\n$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
