#!/usr/bin/env python3
"""Tests of the BigQuery fake itself: the SQL it executes has BigQuery's
semantics (MERGE, transactions, loads, types), its REST answers follow the
protocol, and Google's official Node client (tests/gcp-bq) works against it
unchanged - so that the fake cannot drift from what dataops meets in Google
Cloud.
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bq_engine  # noqa: E402
import fake_bigquery  # noqa: E402
import gauth_fake  # noqa: E402
from bq_engine import BQError  # noqa: E402

NODE_DIR = os.path.join(HERE, "..", "gcp-bq")
P = "test-project"


class EngineTest(unittest.TestCase):
    def setUp(self):
        self.e = bq_engine.Engine()
        self.e.datasets[(P, "d")] = {"location": "US"}
        for name in ("t", "s"):
            self.e.create_table((P, "d", name), {"schema": {"fields": [
                {"name": "k", "type": "INT64", "mode": "REQUIRED"},
                {"name": "v", "type": "STRING"},
                {"name": "at", "type": "DATETIME"}]}})

    def load(self, table, text, **conf):
        conf.setdefault("skipLeadingRows", 1)
        return self.e.load((P, "d", table), text.encode(), conf, None)

    def run_sql(self, sql, **params):
        return self.e.script(sql, params)

    def test_merge_updates_only_differing_rows_and_inserts_the_rest(self):
        self.load("t", "k,v,at\n1,a,2023-01-01 00:00:00\n2,b,2023-01-01 00:00:01.5\n")
        self.load("s", "k,v,at\n1,a,2023-01-02 00:00:00\n2,B,2023-01-02 00:00:00\n3,c,\n")
        _, stype, n, _ = self.run_sql(
            "MERGE `test-project.d.t` T USING `test-project.d.s` S ON T.k = S.k "
            "WHEN MATCHED AND T.v IS DISTINCT FROM S.v THEN UPDATE SET v = S.v, at = S.at "
            "WHEN NOT MATCHED THEN INSERT (k, v, at) VALUES (S.k, S.v, S.at)")
        self.assertEqual((stype, n), ("MERGE", 2))
        rows = self.e.rows((P, "d", "t"), "k")
        self.assertEqual(rows[0], (1, "a", datetime.datetime(2023, 1, 1)))   # untouched
        self.assertEqual(rows[1], (2, "B", datetime.datetime(2023, 1, 2)))
        self.assertEqual(rows[2], (3, "c", None))
        # Merging the same source again changes nothing.
        _, _, n, _ = self.run_sql(
            "MERGE d.t T USING d.s S ON T.k = S.k WHEN MATCHED AND T.v IS DISTINCT FROM S.v "
            "THEN UPDATE SET v = S.v WHEN NOT MATCHED THEN INSERT ROW")
        self.assertEqual(n, 0)
        self.assertEqual(len(self.e.rows((P, "d", "t"))), 3)

    def test_merge_refuses_two_source_rows_for_one_target_row(self):
        self.load("t", "k,v,at\n1,a,\n")
        self.load("s", "k,v,at\n1,x,\n1,y,\n")
        with self.assertRaises(BQError) as cm:
            self.run_sql("MERGE d.t T USING d.s S ON T.k = S.k WHEN MATCHED THEN UPDATE SET "
                         "v = S.v")
        self.assertIn("at most one source row", cm.exception.message)
        self.assertEqual(self.e.rows((P, "d", "t")), [(1, "a", None)])

    def test_merge_by_source_clause_order_and_subquery_source(self):
        self.load("t", "k,v,at\n1,a,\n2,b,\n3,c,\n")
        _, _, n, _ = self.run_sql(
            "MERGE d.t T USING (SELECT @k AS k, @v AS v) S ON T.k = S.k "
            "WHEN MATCHED AND S.v = 'zz' THEN DELETE "
            "WHEN MATCHED THEN UPDATE SET v = S.v "
            "WHEN NOT MATCHED BY SOURCE AND T.k = 3 THEN DELETE", k=2, v="q")
        self.assertEqual(n, 2)
        self.assertEqual(self.e.rows((P, "d", "t"), "k"), [(1, "a", None), (2, "q", None)])

    def test_merge_with_case_in_its_update(self):
        # CASE's WHEN is not a clause of the MERGE.
        self.load("t", "k,v,at\n1,m,\n2,b,\n")
        sql = ("MERGE d.t T USING (SELECT @k AS k, @v AS v) S ON T.k = S.k "
               "WHEN MATCHED THEN UPDATE SET v = CASE WHEN S.v > T.v THEN S.v ELSE T.v END "
               "WHEN NOT MATCHED THEN INSERT (k, v) VALUES (S.k, CASE WHEN S.v = 'x' THEN 'X' "
               "ELSE S.v END)")
        self.run_sql(sql, k=1, v="a")
        self.run_sql(sql, k=2, v="z")
        self.run_sql(sql, k=3, v="x")
        self.assertEqual(self.e.rows((P, "d", "t"), "k"),
                         [(1, "m", None), (2, "z", None), (3, "X", None)])

    def test_transaction_rolls_back_on_error_statements_outside_commit(self):
        with self.assertRaises(BQError):
            self.run_sql("BEGIN TRANSACTION; INSERT INTO d.t (k, v) VALUES (1, 'a'); "
                         "INSERT INTO d.t (k, v) VALUES (NULL, 'b'); COMMIT TRANSACTION;")
        self.assertEqual(self.e.rows((P, "d", "t")), [])
        with self.assertRaises(BQError):
            self.run_sql("INSERT INTO d.t (k, v) VALUES (1, 'a'); "
                         "INSERT INTO d.t (k, v) VALUES (NULL, 'b')")
        self.assertEqual(self.e.rows((P, "d", "t")), [(1, "a", None)])
        _, stype, _, _ = self.run_sql("BEGIN TRANSACTION; DELETE FROM d.t WHERE true; "
                                      "ROLLBACK TRANSACTION")
        self.assertEqual(stype, "SCRIPT")
        self.assertEqual(len(self.e.rows((P, "d", "t"))), 1)

    def test_types_are_enforced(self):
        with self.assertRaises(BQError) as cm:
            self.run_sql("INSERT INTO d.t (k, v) VALUES ('x', 'a')")
        self.assertIn("type STRING", cm.exception.message)
        with self.assertRaises(BQError):
            self.run_sql("UPDATE d.t SET v = 1")     # no WHERE
        with self.assertRaises(BQError) as cm:
            self.load("t", "k,v,at\n1,a,\n2,b,not-a-datetime\n")
        self.assertIn("Could not parse 'not-a-datetime' as DATETIME", cm.exception.message)
        self.assertEqual(self.e.rows((P, "d", "t")), [])      # the whole load failed
        with self.assertRaises(BQError):
            self.load("t", "k,v,at\n,a,\n")                   # REQUIRED
        self.load("t", '{"k": 1, "v": "a,\\"b"}\n', sourceFormat="NEWLINE_DELIMITED_JSON",
                  skipLeadingRows=0)
        self.load("t", "k,v,at\n2,x,\n", writeDisposition="WRITE_TRUNCATE")
        self.assertEqual(self.e.rows((P, "d", "t")), [(2, "x", None)])

    def test_functions_and_result_rendering(self):
        last, _, _, _ = self.run_sql(
            "SELECT PARSE_DATETIME('%Y-%m-%d %H:%M:%E3S', SUBSTR(@s, 1, 23)) AS d, "
            "UNIX_MILLIS(TIMESTAMP(@dt)) AS ms, UNIX_MILLIS(CURRENT_TIMESTAMP()) > 0 AS now",
            s="2023-03-20 08:00:00.250+08:00", dt=bq_engine.convert(
                "2023-03-20 00:00:00", "DATETIME", "dt"))
        row = last["rows"][0]
        types = [f["type"] for f in last["schema"]]
        self.assertEqual(types[:2], ["DATETIME", "INT64"])
        self.assertEqual(bq_engine.canonical(row[0], "DATETIME"), "2023-03-20T08:00:00.250000")
        self.assertEqual(row[1], 1679270400000)
        self.assertEqual(bq_engine.canonical(bq_engine.convert(
            "2023-03-20 00:00:00", "DATETIME", "x"), "DATETIME"), "2023-03-20T00:00:00")

    def test_unsupported_sql_is_refused_not_misread(self):
        for sql in ("SELECT * FROM UNNEST([1, 2])", "CREATE TABLE d.x (a INT64)",
                    "SELECT * FROM d.nope"):
            with self.assertRaises(BQError, msg=sql):
                self.run_sql(sql)


class ProtocolTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fake-bq-")
        self.issuer = gauth_fake.TokenIssuer(None)
        self.bq = fake_bigquery.FakeBigQuery(self.issuer).start()
        self.token = self.issuer.issue()

    def tearDown(self):
        self.bq.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, method, path, body=None, token=True, upload=False):
        url = self.bq.url + ("/upload" if upload else "") + "/bigquery/v2/projects/" + P + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if data:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def make_table(self):
        self.assertEqual(self.call("POST", "/datasets", {
            "datasetReference": {"datasetId": "d"}, "location": "EU"})[0], 200)
        st, t = self.call("POST", "/datasets/d/tables", {
            "tableReference": {"tableId": "t"},
            "schema": {"fields": [{"name": "k", "type": "INT64"}]},
            "timePartitioning": {"type": "DAY", "field": "k"}})
        self.assertEqual(st, 400)            # partitioning on an INT64
        st, t = self.call("POST", "/datasets/d/tables", {
            "tableReference": {"tableId": "t"},
            "schema": {"fields": [{"name": "k", "type": "INT64"}]}})
        self.assertEqual(st, 200)

    def test_auth_job_ids_legacy_sql_and_location(self):
        st, body = self.call("GET", "/datasets", token=False)
        self.assertEqual((st, body["error"]["status"]), (401, "UNAUTHENTICATED"))
        self.make_table()
        job = {"jobReference": {"jobId": "j1", "location": "EU"},
               "configuration": {"query": {"query": "INSERT INTO d.t (k) VALUES (1)"}}}
        st, body = self.call("POST", "/jobs", job)
        self.assertEqual(body["status"]["errorResult"]["reason"], "invalidQuery")
        self.assertIn("useLegacySql", body["status"]["errorResult"]["message"])
        job["jobReference"]["jobId"] = "j2"
        job["configuration"]["query"]["useLegacySql"] = False
        st, body = self.call("POST", "/jobs", job)
        self.assertEqual(st, 200)
        self.assertEqual(body["statistics"]["query"]["numDmlAffectedRows"], "1")
        st, body = self.call("POST", "/jobs", job)                      # same id again
        self.assertEqual((st, body["error"]["errors"][0]["reason"]), (409, "duplicate"))
        self.assertIn("Already Exists: Job test-project:EU.j2", body["error"]["message"])
        self.assertEqual(self.bq.rows("d", "t"), [(1,)])                # ran once
        self.assertEqual(self.call("GET", "/jobs/j2?location=US")[0], 404)
        self.assertEqual(self.call("GET", "/jobs/j2?location=EU")[0], 200)
        job["jobReference"] = {"jobId": "j3", "location": "US"}          # data is in EU
        st, body = self.call("POST", "/jobs", job)
        self.assertEqual(body["status"]["errorResult"]["reason"], "notFound")
        self.assertEqual(self.call("POST", "/jobs", dict(job, jobReference={
            "jobId": "bad id!"}))[0], 400)

    def raw(self, method, url, body=b"", headers=()):
        req = urllib.request.Request(url, data=body, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        for k, v in headers:
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def test_resumable_upload_protocol(self):
        self.make_table()
        job = {"jobReference": {"jobId": "up1", "location": "EU"}, "configuration": {"load": {
            "destinationTable": {"datasetId": "d", "tableId": "t"}, "sourceFormat": "CSV"}}}
        st, hdr, _ = self.raw("POST", self.bq.url + "/upload/bigquery/v2/projects/" + P +
                              "/jobs?uploadType=resumable", json.dumps(job).encode(),
                              [("Content-Type", "application/json")])
        self.assertEqual(st, 200)
        session = hdr["Location"]
        self.assertIn("upload_id=", session)
        q = 256 * 1024
        data = b"".join(b"%d\n" % i for i in range(120000))      # > 2 quanta
        total = len(data)

        def rng(a, b):
            return [("Content-Range", "bytes %d-%d/%d" % (a, b, total))]
        self.assertEqual(self.raw("PUT", session, data[:1000], rng(0, 999))[0], 400)
        st, hdr, _ = self.raw("PUT", session, data[:q], rng(0, q - 1))
        self.assertEqual((st, hdr.get("Range")), (308, "bytes=0-%d" % (q - 1)))
        st, hdr, _ = self.raw("PUT", session, b"", [("Content-Range", "bytes */%d" % total)])
        self.assertEqual((st, hdr.get("Range")), (308, "bytes=0-%d" % (q - 1)))
        st, _, body = self.raw("PUT", session, data[q:], rng(q, total - 1))
        self.assertEqual(st, 200)
        res = json.loads(body)
        self.assertEqual(res["statistics"]["load"]["outputRows"], "120000")
        st, _, body = self.raw("PUT", session, b"", [("Content-Range", "bytes */%d" % total)])
        self.assertEqual((st, json.loads(body)["jobReference"]["jobId"]), (200, "up1"))
        self.assertEqual(self.bq.rows("d", "t")[:2], [(0,), (1,)])

    def test_query_paging_and_expiring_tables(self):
        self.make_table()
        q = {"query": "INSERT INTO d.t (k) VALUES (1), (2), (3)", "useLegacySql": False,
             "location": "EU"}
        self.assertEqual(self.call("POST", "/queries", q)[1]["numDmlAffectedRows"], "3")
        st, page = self.call("POST", "/queries", dict(q, query="SELECT k FROM d.t ORDER BY k",
                                                      maxResults=2))
        self.assertEqual([r["f"][0]["v"] for r in page["rows"]], ["1", "2"])
        self.assertEqual(page["schema"]["fields"][0], {"name": "k", "type": "INT64",
                                                       "mode": "NULLABLE"})
        job = page["jobReference"]["jobId"]
        st, more = self.call("GET", "/queries/%s?location=EU&maxResults=2&pageToken=%s" % (
            job, page["pageToken"]))
        self.assertEqual(([r["f"][0]["v"] for r in more["rows"]], "pageToken" in more),
                         (["3"], False))
        st, t = self.call("POST", "/datasets/d/tables", {
            "tableReference": {"tableId": "gone"}, "expirationTime": "1000",
            "schema": {"fields": [{"name": "k", "type": "INT64"}]}})
        self.assertEqual(st, 200)
        self.assertEqual(self.call("GET", "/datasets/d/tables/gone")[0], 404)

    def test_table_patch_adds_nullable_columns_only(self):
        self.make_table()
        q = {"query": "INSERT INTO d.t (k) VALUES (1)", "useLegacySql": False, "location": "EU"}
        self.call("POST", "/queries", q)
        k = {"name": "k", "type": "INT64"}
        st, body = self.call("PATCH", "/datasets/d/tables/t", {"schema": {"fields": [
            {"name": "v", "type": "STRING"}]}})
        self.assertEqual(st, 400)
        self.assertIn("Field k is missing in new schema", body["error"]["message"])
        st, body = self.call("PATCH", "/datasets/d/tables/t", {"schema": {"fields": [
            k, {"name": "v", "type": "STRING", "mode": "REQUIRED"}]}})
        self.assertEqual(st, 400)
        self.assertIn("Cannot add required fields", body["error"]["message"])
        st, body = self.call("PATCH", "/datasets/d/tables/t", {"schema": {"fields": [
            {"name": "k", "type": "STRING"}]}})
        self.assertEqual(st, 400)
        self.assertIn("Field k has changed type", body["error"]["message"])
        st, t = self.call("PATCH", "/datasets/d/tables/t", {"schema": {"fields": [
            k, {"name": "v", "type": "STRING"}]}, "description": "patched"})
        self.assertEqual(st, 200)
        self.assertEqual(([f["name"] for f in t["schema"]["fields"]], t["description"],
                          t["numRows"]), (["k", "v"], "patched", "1"))
        self.call("POST", "/queries", dict(q, query="UPDATE d.t SET v = 'x' WHERE k = 1"))
        st, page = self.call("POST", "/queries", dict(q, query="SELECT k, v FROM d.t"))
        self.assertEqual([c["v"] for c in page["rows"][0]["f"]], ["1", "x"])


def ensure_node_modules():
    """tests/gcp-bq/node_modules, installed from the lock file when missing."""
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@google-cloud", "bigquery")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)


@unittest.skipUnless(shutil.which("node") and shutil.which("npm"), "node/npm not installed")
class NodeClientTest(unittest.TestCase):
    """Google's @google-cloud/bigquery against the fake (tests/gcp-bq)."""

    def test_official_client(self):
        ensure_node_modules()
        d = tempfile.mkdtemp(prefix="fake-bq-node-")
        issuer = gauth_fake.TokenIssuer(None)
        bq = fake_bigquery.FakeBigQuery(issuer).start()
        try:
            key = gauth_fake.make_service_account_key(d, bq.url + "/token")
            issuer.public_key_pem = key.public_pem
            issuer.client_email = key.client_email
            csv = os.path.join(d, "k.csv")
            with open(csv, "w") as f:
                f.write("utc_datetime,open_time,close,symbol,interval\n"
                        "2023-03-20 00:00:00.000,1679270400000,27987.88,BTCUSDT,15m\n"
                        "2023-03-20 00:15:00.000,1679271300000,27986.42,BTCUSDT,15m\n")
            r = subprocess.run(["node", os.path.join(NODE_DIR, "bq_client.js"), bq.url,
                                key.path, bq.url + "/token", csv], capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = json.loads(r.stdout)
            self.assertEqual(out["load"], {"state": "DONE", "outputRows": "2",
                                           "jobId": "node_load_1"})
            self.assertEqual(out["duplicate"], {"code": 409, "reason": "duplicate"})
            self.assertEqual(out["node_merge_2"], {"state": "DONE",
                                                   "statementType": "SCRIPT"})
            self.assertEqual(out["pages"], 2)
            self.assertEqual(out["rows"], [["2023-03-20T00:00:00", 1679270400000, "27987.88"],
                                           ["2023-03-20T00:15:00", 1679271300000, "27986.42"]])
            self.assertEqual(out["count"], {"n": 2, "wm": 1679271300000})
            self.assertEqual(out["tableMeta"]["timePartitioning"], {"type": "DAY",
                                                                    "field": "utc_datetime"})
            self.assertEqual(out["badQuery"], {"code": 400, "reason": "invalidQuery"})
            self.assertEqual(out["tables"], ["klines"])
            self.assertEqual(bq.job_inserts("node_load_1"), 2)
            self.assertGreaterEqual(issuer.stats()["jwt_grants"], 1)
            self.assertEqual(bq.stats()["unauthorized"], 0)
        finally:
            bq.stop()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
