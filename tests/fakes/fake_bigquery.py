#!/usr/bin/env python3
"""Loopback fake of the BigQuery REST API v2 (and, standalone, of the OAuth
2.0 token endpoint), for tests.

Python 3 standard library; the SQL runs on SQLite through bq_engine.py
(which says which GoogleSQL it executes).  It follows the documented
protocol (cloud.google.com/bigquery/docs/reference/rest/v2), so that
Google's own Node client (tests/gcp-bq, @google-cloud/bigquery) and dataops
agree on it.

Use as a module (tests start it in-process, beside fake_gcs.FakeGCS)::

    bq = FakeBigQuery(issuer, gcs=gcs_fake).start()
    bq.url                      # http://127.0.0.1:PORT (BIGQUERY_EMULATOR_HOST)
    bq.add_fault("lose:3")      # see Faults
    bq.rows("ds", "table", order_by="open_time")
    bq.stop()

or from the command line: fake_bigquery.py --port-file F [--expires-in S]
[--anonymous] (it writes a service-account key whose token_uri points at
itself next to the port file: F.key.json).

Endpoints (all under /bigquery/v2/projects/P, uploads under /upload/...)
------------------------------------------------------------------------
POST /token                         OAuth 2.0 JWT bearer grant (gauth_fake)
GET|POST .../datasets               datasets.list / datasets.insert (location)
GET|DELETE .../datasets/D           datasets.get / datasets.delete
GET|POST .../datasets/D/tables      tables.list / tables.insert (schema,
                                    timePartitioning, clustering,
                                    expirationTime: an expired table is gone)
GET|DELETE .../datasets/D/tables/T  tables.get (numRows) / tables.delete
POST .../jobs                       jobs.insert: configuration.load (from
                                    sourceUris gs://B/O, read from the
                                    FakeGCS given) or configuration.query
POST /upload/bigquery/v2/projects/P/jobs?uploadType=multipart
                                    jobs.insert with media: multipart/related,
                                    the Job as JSON then the data
POST /upload/...jobs?uploadType=resumable   the Job as JSON: 200 with a
                                    Location session URI (upload_id=)
PUT  <session URI>                  a chunk, Content-Range: bytes A-B/TOTAL
                                    (not the last: a multiple of 256 KiB):
                                    308 Range: bytes=0-N until complete, then
                                    the Job (or 409); bytes */TOTAL asks
GET  .../jobs/J?location=L          jobs.get
POST .../jobs/J/cancel              jobs.cancel
POST .../queries                    jobs.query (runs the query as a job)
GET  .../queries/J                  jobs.getQueryResults (maxResults,
                                    pageToken, startIndex, timeoutMs)
Protocol points enforced: a bearer token the issuer gave and that has not
expired (401 otherwise, unless anonymous); job ids [A-Za-z0-9_-]{1,1024},
unique per project: a second jobs.insert with the same id is 409 duplicate
and runs nothing; useLegacySql must be false (BigQuery's default is legacy
SQL); a job runs in its jobReference.location and its tables' datasets must
be there; jobs.get/getQueryResults with another location is 404; load jobs
honour sourceFormat (CSV, NEWLINE_DELIMITED_JSON), skipLeadingRows,
writeDisposition, createDisposition, and fail whole on one bad value.

Faults (add_fault("KIND:N[:ARG]"); N counts from 1)
---------------------------------------------------
503:N        the Nth API request answers 503 backendError (nothing done)
ratelimit:N  the Nth API request answers 403 rateLimitExceeded
429:N        the Nth API request answers 429
quota:N      the Nth API request answers 403 quotaExceeded (not to be retried)
expire:N     every token is revoked before the Nth API request (it gets 401)
lose:N       the Nth jobs.insert runs the job, then the connection is reset
             instead of answering (the client repeats it with the same id)
losejob:S    the same for the first jobs.insert whose job id contains S
cut:N        the Nth upload request: half of the body is read, then the
             connection is reset (nothing is created; a resumable chunk keeps
             the whole 256 KiB pieces it got)
jobfail:N:R  the Nth job inserted ends DONE with errorResult reason R (e.g.
             invalid, backendError) and changes nothing
loadfail:N:R the same for the Nth load job
running:N    every job answers RUNNING to its first N polls
denied:S     every request whose path contains S answers 403 accessDenied,
             naming the resource and the permission
"""
import argparse
import base64
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bq_engine  # noqa: E402
import gauth_fake  # noqa: E402
from bq_engine import BQError  # noqa: E402
from serving import InProcessServer, serve_until_signalled  # noqa: E402

JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,1024}")
QUANTUM = 256 * 1024
MB = 1 << 20


class Disconnect(Exception):
    pass


def gerror(code, reason, message, status=None):
    statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
                503: "UNAVAILABLE"}
    return code, {"error": {"code": code, "message": message,
                            "errors": [{"message": message, "domain": "global",
                                        "reason": reason}],
                            "status": status or statuses.get(code, "UNKNOWN")}}


def http_of(reason):
    return {"notFound": 404, "duplicate": 409, "accessDenied": 403}.get(reason, 400)


class FakeBigQuery(InProcessServer):
    def __init__(self, issuer=None, gcs=None, project="test-project", db_path=":memory:",
                 anonymous=False, host="127.0.0.1", port=0):
        self.issuer = issuer
        self.gcs = gcs
        self.project = project
        self.anonymous = anonymous or issuer is None
        self.engine = bq_engine.Engine(db_path, project)
        self.lock = threading.RLock()
        self.jobs = {}              # (project, job id) -> job dict
        self.sessions = {}          # resumable upload id -> session
        self.faults = []            # [kind, n, arg]
        self.counts = {"requests": 0, "job_inserts": 0, "jobs_run": 0, "duplicates": 0,
                       "uploads": 0, "loads": 0, "queries": 0, "unauthorized": 0,
                       "job_polls": 0, "status_queries": 0, "cut_kept_bytes": 0}
        self.log = []               # (method, path, job id or None, status)
        self.bind(host, port, self._handler_class())

    # -- control ------------------------------------------------------------
    def reset(self):
        """Forget every dataset, table, job and fault (a fresh project)."""
        with self.lock:
            self.engine = bq_engine.Engine(":memory:", self.project)
            self.jobs.clear()
            self.faults.clear()
            self.log.clear()
            for k in self.counts:
                self.counts[k] = 0

    def add_fault(self, spec):
        kind, _, rest = spec.partition(":")
        n, _, arg = rest.partition(":")
        with self.lock:
            self.faults.append([kind, int(n) if n.isdigit() else 0, arg or n])

    def _fault(self, kind, count):
        with self.lock:
            for f in self.faults:
                if f[0] == kind and f[1] == count:
                    return f[2] or True
        return None

    def _fault_arg(self, kind):
        with self.lock:
            for f in self.faults:
                if f[0] == kind:
                    return f
        return None

    def rows(self, dataset, table, order_by=None):
        with self.lock:
            return self.engine.rows((self.project, dataset, table), order_by)

    def table_names(self, dataset):
        with self.lock:
            self.engine.purge_expired()
            return sorted(k[2] for k in self.engine.tables if k[1] == dataset)

    def stats(self):
        with self.lock:
            return dict(self.counts)

    def job_inserts(self, job_id):
        """How many jobs.insert requests named job_id."""
        with self.lock:
            return sum(1 for m, p, j, s in self.log if j == job_id and m == "POST")

    # -- jobs ---------------------------------------------------------------
    def _job_resource(self, j):
        return json.loads(json.dumps(j["resource"]))

    def _new_job(self, project, ref, config):
        job_id = ref.get("jobId")
        loc = ref.get("location") or "US"
        now = str(int(time.time() * 1000))
        kind = "LOAD" if "load" in config else "QUERY" if "query" in config else None
        conf = json.loads(json.dumps(config))
        conf["jobType"] = kind
        res = {"kind": "bigquery#job", "etag": base64.b64encode(os.urandom(9)).decode(),
               "id": "%s:%s.%s" % (project, loc, job_id),
               "selfLink": "%s/bigquery/v2/projects/%s/jobs/%s?location=%s" % (
                   self.url, project, job_id, loc),
               "user_email": gauth_fake.DEFAULT_EMAIL,
               "configuration": conf,
               "jobReference": {"projectId": project, "jobId": job_id, "location": loc},
               "statistics": {"creationTime": now, "startTime": now},
               "status": {"state": "RUNNING"}}
        j = {"resource": res, "polls": 0, "result": None}
        self.jobs[(project, job_id)] = j
        return j

    def _finish(self, j, error=None, stats=None):
        res = j["resource"]
        res["status"] = {"state": "DONE"}
        res["statistics"]["endTime"] = str(int(time.time() * 1000))
        if stats:
            res["statistics"].update(stats)
        if error:
            e = {"reason": error.reason, "message": error.message}
            if error.location:
                e["location"] = error.location
            res["status"]["errorResult"] = e
            res["status"]["errors"] = [dict(e)]

    def _check_location(self, project, dataset, loc):
        ds = self.engine.datasets.get((project, dataset))
        if ds is None:
            raise BQError("notFound", "Not found: Dataset %s:%s" % (project, dataset))
        if ds["location"].upper() != loc.upper():
            raise BQError("notFound", "Not found: Dataset %s:%s was not found in location %s"
                          % (project, dataset, loc))

    def _run_job(self, project, j, media):
        """Execute a job (under self.lock); failures become its errorResult."""
        res = j["resource"]
        conf = res["configuration"]
        loc = res["jobReference"]["location"]
        self.counts["jobs_run"] += 1
        ninserted = self.counts["job_inserts"]
        fail = self._fault("jobfail", ninserted)
        try:
            if conf["jobType"] == "LOAD":
                self.counts["loads"] += 1
                fail = fail or self._fault("loadfail", self.counts["loads"])
                if fail:
                    raise BQError(fail if fail is not True else "invalid",
                                  "Error while reading data (injected by the fake)")
                stats = self._load(project, conf["load"], media, loc)
            elif conf["jobType"] == "QUERY":
                self.counts["queries"] += 1
                if fail:
                    raise BQError(fail if fail is not True else "invalidQuery",
                                  "Query failed (injected by the fake)")
                stats = self._query(project, j, conf["query"], loc)
            else:
                raise BQError("invalid", "Job configuration must contain load or query (the "
                              "fake runs no copy or extract jobs)")
            self._finish(j, stats=stats)
        except BQError as e:
            self._finish(j, error=e)

    def _load(self, project, load, media, loc):
        dest = load.get("destinationTable") or {}
        key = (dest.get("projectId") or project, dest.get("datasetId"), dest.get("tableId"))
        self._check_location(key[0], key[1], loc)
        self.engine.purge_expired()
        if media is not None:
            if load.get("sourceUris"):
                raise BQError("invalid", "A load job with media cannot also have sourceUris")
            data = media
        else:
            uris = load.get("sourceUris") or []
            if not uris:
                raise BQError("invalid", "Load configuration must specify at least one "
                              "source URI")
            data = b""
            for uri in uris:
                m = re.fullmatch(r"gs://([^/]+)/(.+)", uri)
                if not m:
                    raise BQError("invalid", "Invalid source URI %s" % uri)
                obj = self.gcs.object(m.group(1), m.group(2)) if self.gcs else None
                if obj is None:
                    raise BQError("notFound", "Not found: URI %s" % uri)
                data += obj
        c = self.engine.con
        c.execute("SAVEPOINT bq_load")
        try:
            n = self.engine.load(key, data, load, load.get("schema"))
        except BQError as e:
            c.execute("ROLLBACK TO bq_load")
            c.execute("RELEASE bq_load")
            if e.reason == "invalid" and "reading data" in e.message:
                e.message += " (the whole load job changed nothing)"
            raise
        c.execute("RELEASE bq_load")
        return {"load": {"inputFiles": str(len(load.get("sourceUris") or [1])),
                         "inputFileBytes": str(len(data)), "outputRows": str(n),
                         "outputBytes": str(len(data)), "badRecords": "0"}}

    def _params(self, q):
        if q.get("useLegacySql", True) is not False:
            raise BQError("invalidQuery", "the fake runs GoogleSQL only: send useLegacySql "
                          "false (BigQuery's default is legacy SQL)")
        params = {}
        for p in q.get("queryParameters") or []:
            name = p.get("name")
            if not name:
                raise BQError("invalidQuery", "the fake takes named parameters only "
                              "(parameterMode NAMED)")
            typ = bq_engine.TYPES.get(p.get("parameterType", {}).get("type", "").upper())
            if typ is None:
                raise BQError("invalidQuery", "Unsupported parameter type %s" %
                              p.get("parameterType"))
            val = (p.get("parameterValue") or {}).get("value")
            params[name] = bq_engine.convert(val, typ, "@" + name)
        return params

    def _query(self, project, j, q, loc):
        params = self._params(q)
        self.engine.purge_expired()
        last, stype, affected, refs = self.engine.script(q.get("query", ""), params)
        for key in refs:
            self._check_location(key[0], key[1], loc)
        processed = sum(self.engine.num_bytes(k) for k in refs)
        billed = 0 if processed == 0 else max(10 * MB, -(-processed // MB) * MB)
        stats = {"statementType": stype, "totalBytesProcessed": str(processed),
                 "totalBytesBilled": str(billed), "cacheHit": False}
        if stype in ("INSERT", "UPDATE", "DELETE", "MERGE"):
            stats["numDmlAffectedRows"] = str(affected)
        if stype == "SCRIPT":
            stats["numChildJobs"] = str(len(bq_engine.split_statements(q.get("query", ""))))
        schema = last["schema"] if last and last["kind"] == "SELECT" else []
        rows = last["rows"] if last and last["kind"] == "SELECT" else []
        j["result"] = {"schema": {"fields": schema},
                       "rows": [{"f": [{"v": bq_engine.canonical(v, f["type"])}
                                       for v, f in zip(r, schema)]} for r in rows],
                       "affected": affected if stype != "SELECT" else None}
        return {"query": stats, "totalBytesProcessed": str(processed)}

    # -- HTTP ---------------------------------------------------------------
    def _handler_class(fake):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "fake-bigquery/1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in two writes: without this, Nagle
                # and the client's delayed ACK cost 40 ms per request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _read_body(self, limit=None):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                        if limit is not None and len(out) >= limit:
                            return bytes(out)
                n = int(self.headers.get("Content-Length") or 0)
                if limit is not None:
                    n = min(n, limit)
                return self.rfile.read(n) if n else b""

            def _drop(self):
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass
                raise Disconnect()

            def _send(self, status, body=None, headers=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
                return status

            def _json_body(self, raw):
                try:
                    return json.loads(raw.decode() or "{}")
                except ValueError:
                    raise BQError("parseError", "This API does not support parsing "
                                  "form-encoded input, or the body is not JSON.")

            def _dispatch(self):
                u = urllib.parse.urlsplit(self.path)
                path = u.path
                query = {k: v[-1] for k, v in urllib.parse.parse_qs(
                    u.query, keep_blank_values=True).items()}
                entry = [self.command, path, None, 0]
                with fake.lock:
                    fake.log.append(entry)
                try:
                    if path == "/token" and self.command == "POST" and fake.issuer:
                        st, body = fake.issuer.handle_token_request(self._read_body())
                        entry[3] = self._send(st, body)
                        return
                    entry[3] = self._api(path, query, entry)
                except Disconnect:
                    entry[3] = -1
                except BQError as e:
                    entry[3] = self._send(*gerror(http_of(e.reason), e.reason, e.message))

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

            def _api(self, path, query, entry):
                m = re.fullmatch(r"/(upload/)?bigquery/v2/projects/([^/]+)(/.*)?", path)
                if not m:
                    self._read_body()
                    return self._send(*gerror(404, "notFound", "Not found: %s" % path))
                upload = bool(m.group(1))
                project = urllib.parse.unquote(m.group(2))
                rest = [urllib.parse.unquote(s) for s in (m.group(3) or "").split("/") if s]
                with fake.lock:
                    fake.counts["requests"] += 1
                    nreq = fake.counts["requests"]
                    if upload:
                        fake.counts["uploads"] += 1
                    nup = fake.counts["uploads"]
                if fake._fault("expire", nreq) and fake.issuer:
                    fake.issuer.revoke_all()
                if not fake.anonymous and not fake.issuer.check_bearer(
                        self.headers.get("Authorization")):
                    with fake.lock:
                        fake.counts["unauthorized"] += 1
                    self._read_body()
                    return self._send(*gerror(401, "required", "Request is missing required "
                                              "authentication credential, or the access token "
                                              "is invalid or expired."),
                                      headers={"WWW-Authenticate": 'Bearer realm="fake"'})
                if upload and fake._fault("cut", nup):
                    n = int(self.headers.get("Content-Length") or 0)
                    got = self._read_body(limit=max(1, n // 2))
                    self._persist_cut(query, got)
                    self._drop()
                if fake._fault("503", nreq):
                    self._read_body()
                    return self._send(*gerror(503, "backendError", "Error encountered during "
                                              "execution. Retrying may solve the problem."))
                if fake._fault("429", nreq):
                    self._read_body()
                    return self._send(*gerror(429, "rateLimitExceeded", "Too many requests."))
                if fake._fault("quota", nreq):
                    self._read_body()
                    return self._send(*gerror(403, "quotaExceeded", "Quota exceeded: Your "
                                              "project exceeded quota for free query bytes "
                                              "scanned."))
                if fake._fault("ratelimit", nreq):
                    self._read_body()
                    return self._send(*gerror(403, "rateLimitExceeded", "Exceeded rate limits: "
                                              "too many api requests per user per method for "
                                              "this user_method."))
                denied = fake._fault_arg("denied")
                if denied and denied[2] in path:
                    self._read_body()
                    what = "bigquery.jobs.create" if "jobs" in path or "queries" in path else (
                        "bigquery.tables.get" if "tables" in path else "bigquery.datasets.get")
                    return self._send(*gerror(403, "accessDenied", "Access Denied: %s: "
                                              "Permission %s denied (or it may not exist)."
                                              % (path, what)))
                body = self._read_body()
                if upload:
                    return self._upload(project, query, body, entry)
                if project != fake.project:
                    raise BQError("notFound", "Not found: Project %s" % project)
                return self._rest(project, rest, query, body, entry)

            def _rest(self, project, rest, query, body, entry):
                cmd = self.command
                n = len(rest)
                if n >= 1 and rest[0] == "datasets":
                    return self._datasets(project, rest[1:], body)
                if rest == ["jobs"] and cmd == "POST":
                    job = self._json_body(body)
                    entry[2] = (job.get("jobReference") or {}).get("jobId")
                    return self._insert(project, job, None)
                if n == 2 and rest[0] == "jobs" and cmd == "GET":
                    return self._get_job(project, rest[1], query)
                if n == 3 and rest[0] == "jobs" and rest[2] == "cancel" and cmd == "POST":
                    j = self._find_job(project, rest[1], query)
                    return self._send(200, {"kind": "bigquery#jobCancelResponse",
                                            "job": fake._job_resource(j)})
                if rest == ["queries"] and cmd == "POST":
                    return self._jobs_query(project, self._json_body(body))
                if n == 2 and rest[0] == "queries" and cmd == "GET":
                    return self._results(project, rest[1], query)
                raise BQError("notFound", "Not found: %s %s" % (cmd, "/".join(rest)))

            # -- datasets and tables --------------------------------------
            def _datasets(self, project, rest, body):
                e = fake.engine
                cmd = self.command
                with fake.lock:
                    e.purge_expired()
                    if not rest and cmd == "POST":
                        d = self._json_body(body)
                        ds = (d.get("datasetReference") or {}).get("datasetId", "")
                        if not re.fullmatch(r"[A-Za-z0-9_]{1,1024}", ds):
                            raise BQError("invalid", "Invalid dataset ID \"%s\"" % ds)
                        if (project, ds) in e.datasets:
                            raise BQError("duplicate", "Already Exists: Dataset %s:%s" % (
                                project, ds))
                        d["location"] = d.get("location") or "US"
                        d.update({"kind": "bigquery#dataset", "id": "%s:%s" % (project, ds),
                                  "creationTime": str(int(time.time() * 1000))})
                        d["datasetReference"] = {"projectId": project, "datasetId": ds}
                        e.datasets[(project, ds)] = d
                        return self._send(200, d)
                    if not rest and cmd == "GET":
                        return self._send(200, {"kind": "bigquery#datasetList", "datasets": [
                            {"kind": "bigquery#dataset", "id": d["id"], "location":
                             d["location"], "datasetReference": d["datasetReference"]}
                            for k, d in sorted(e.datasets.items()) if k[0] == project]})
                    ds = rest[0]
                    if (project, ds) not in e.datasets:
                        raise BQError("notFound", "Not found: Dataset %s:%s" % (project, ds))
                    if len(rest) == 1 and cmd == "GET":
                        return self._send(200, e.datasets[(project, ds)])
                    if len(rest) == 1 and cmd == "DELETE":
                        for key in [k for k in e.tables if k[:2] == (project, ds)]:
                            e.drop_table(key)
                        del e.datasets[(project, ds)]
                        return self._send(204)
                    if len(rest) == 2 and rest[1] == "tables" and cmd == "POST":
                        return self._insert_table(project, ds, self._json_body(body))
                    if len(rest) == 2 and rest[1] == "tables" and cmd == "GET":
                        return self._send(200, {"kind": "bigquery#tableList", "tables": [
                            {"kind": "bigquery#table", "id": "%s:%s.%s" % k,
                             "tableReference": dict(zip(("projectId", "datasetId",
                                                         "tableId"), k))}
                            for k in sorted(e.tables) if k[:2] == (project, ds)]})
                    if len(rest) == 3 and rest[1] == "tables":
                        key = (project, ds, rest[2])
                        if key not in e.tables:
                            raise BQError("notFound", "Not found: Table %s:%s.%s" % key)
                        if cmd == "GET":
                            t = dict(e.tables[key])
                            t["numRows"] = str(e.num_rows(key))
                            t["numBytes"] = str(e.num_bytes(key))
                            return self._send(200, t)
                        if cmd == "DELETE":
                            e.drop_table(key)
                            return self._send(204)
                        if cmd == "PATCH":
                            t = dict(e.patch_table(key, self._json_body(body)))
                            t["numRows"] = str(e.num_rows(key))
                            return self._send(200, t)
                raise BQError("notFound", "Not found: %s %s" % (cmd, "/".join(rest)))

            def _insert_table(self, project, ds, t):
                ref = t.get("tableReference") or {}
                tid = ref.get("tableId", "")
                if not re.fullmatch(r"[\w-]{1,1024}", tid):
                    raise BQError("invalid", "Invalid table ID \"%s\"" % tid)
                key = (project, ds, tid)
                if key in fake.engine.tables:
                    raise BQError("duplicate", "Already Exists: Table %s:%s.%s" % key)
                t["tableReference"] = {"projectId": project, "datasetId": ds, "tableId": tid}
                t.update({"kind": "bigquery#table", "id": "%s:%s.%s" % key, "type": "TABLE",
                          "creationTime": str(int(time.time() * 1000)),
                          "location": fake.engine.datasets[(project, ds)]["location"]})
                fake.engine.create_table(key, t)
                out = dict(t, numRows="0")
                return self._send(200, out)

            # -- jobs -----------------------------------------------------
            def _upload(self, project, query, body, entry):
                if query.get("uploadType") == "resumable":
                    return self._resumable(project, query, body, entry)
                if self.command != "POST" or query.get("uploadType") != "multipart":
                    raise BQError("invalid", "uploadType must be multipart or resumable")
                ctype = self.headers.get("Content-Type", "")
                m = re.search(r'boundary="?([^";]+)"?', ctype)
                if not ctype.lower().startswith("multipart/related") or not m:
                    raise BQError("invalid", "multipart upload needs Content-Type "
                                  "multipart/related with a boundary")
                parts = self._parts(body, m.group(1).encode())
                if len(parts) != 2:
                    raise BQError("invalid", "multipart upload needs 2 parts (metadata, media),"
                                  " got %d" % len(parts))
                job = self._json_body(parts[0])
                entry[2] = (job.get("jobReference") or {}).get("jobId")
                if "load" not in (job.get("configuration") or {}):
                    raise BQError("invalid", "an upload must carry a load job")
                return self._insert(project, job, parts[1])

            def _persist_cut(self, query, got):
                """A resumable chunk cut off keeps the whole 256 KiB quanta it got."""
                with fake.lock:
                    sess = fake.sessions.get(query.get("upload_id", ""))
                m = re.fullmatch(r"bytes (\d+)-\d+/\S+",
                                 self.headers.get("Content-Range", "").strip())
                if sess is None or not m or int(m.group(1)) > len(sess["data"]):
                    return
                keep = len(got) // QUANTUM * QUANTUM
                del sess["data"][int(m.group(1)):]
                sess["data"] += got[:keep]
                with fake.lock:
                    fake.counts["cut_kept_bytes"] += keep

            def _resumable(self, project, query, body, entry):
                """Resumable media upload: a session, chunks, status queries."""
                if self.command == "POST" and "upload_id" not in query:
                    job = self._json_body(body)
                    if "load" not in (job.get("configuration") or {}):
                        raise BQError("invalid", "an upload must carry a load job")
                    uid = base64.urlsafe_b64encode(os.urandom(18)).decode().rstrip("=")
                    with fake.lock:
                        fake.sessions[uid] = {"project": project, "job": job,
                                              "data": bytearray(), "done": None}
                    loc = "%s/upload/bigquery/v2/projects/%s/jobs?uploadType=resumable&" \
                          "upload_id=%s" % (fake.url, project, uid)
                    return self._send(200, None, headers={"Location": loc})
                if self.command != "PUT":
                    raise BQError("invalid", "a resumable session takes PUT")
                with fake.lock:
                    sess = fake.sessions.get(query.get("upload_id", ""))
                if sess is None:
                    raise BQError("notFound", "Not found: upload session")
                entry[2] = (sess["job"].get("jobReference") or {}).get("jobId")
                m = re.fullmatch(r"bytes (\*|(\d+)-(\d+))/(\*|\d+)",
                                 self.headers.get("Content-Range", "").strip())
                if not m:
                    raise BQError("invalid", "Content-Range must be bytes A-B/TOTAL or "
                                  "bytes */TOTAL")
                total = None if m.group(4) == "*" else int(m.group(4))
                if m.group(1) == "*":
                    with fake.lock:
                        fake.counts["status_queries"] += 1
                if sess["done"] is not None:
                    return self._send(*sess["done"])
                data = sess["data"]
                if m.group(1) != "*":
                    a, b = int(m.group(2)), int(m.group(3))
                    if b - a + 1 != len(body) or a > len(data):
                        raise BQError("invalid", "Content-Range %s does not match the body "
                                      "(%d bytes) or the %d bytes persisted" % (
                                          m.group(0), len(body), len(data)))
                    last = total is not None and b + 1 == total
                    if not last and len(body) % QUANTUM:
                        raise BQError("invalid", "a chunk that is not the last must be a "
                                      "multiple of 256 KiB")
                    del data[a:]
                    data += body
                if total is not None and len(data) == total and (
                        m.group(1) != "*" or total == 0):
                    nins = None
                    try:
                        code, res, nins = self._insert(project, sess["job"], bytes(data),
                                                       send=False)
                        st = (code, res)
                    except BQError as e:
                        st = gerror(http_of(e.reason), e.reason, e.message)
                    sess["done"] = st
                    if nins is not None:
                        self._maybe_lose(nins, entry[2] or "")
                    return self._send(*st)
                hdr = {"Range": "bytes=0-%d" % (len(data) - 1)} if data else {}
                return self._send(308, None, headers=hdr)

            @staticmethod
            def _parts(body, boundary):
                delim = b"--" + boundary
                chunks = body.split(delim)
                out = []
                for ch in chunks[1:]:
                    if ch.startswith(b"--"):
                        break
                    ch = ch[2:] if ch.startswith(b"\r\n") else ch
                    head, sep, data = ch.partition(b"\r\n\r\n")
                    if not sep:
                        continue
                    if data.endswith(b"\r\n"):
                        data = data[:-2]
                    out.append(data)
                return out

            def _insert(self, project, job, media, send=True):
                ref = dict(job.get("jobReference") or {})
                ref.setdefault("jobId", "job_" + base64.urlsafe_b64encode(
                    os.urandom(18)).decode().rstrip("="))
                ref["projectId"] = project
                if not JOB_ID.fullmatch(ref["jobId"]):
                    raise BQError("invalid", "Invalid job ID \"%s\". Job IDs must be "
                                  "alphanumeric (plus underscores and dashes) and must be at "
                                  "most 1024 characters long." % ref["jobId"][:80])
                with fake.lock:
                    fake.counts["job_inserts"] += 1
                    nins = fake.counts["job_inserts"]
                    if (project, ref["jobId"]) in fake.jobs:
                        fake.counts["duplicates"] += 1
                        loc = fake.jobs[(project, ref["jobId"])]["resource"][
                            "jobReference"]["location"]
                        raise BQError("duplicate", "Already Exists: Job %s:%s.%s" % (
                            project, loc, ref["jobId"]))
                    j = fake._new_job(project, ref, job.get("configuration") or {})
                    fake._run_job(project, j, media)
                    res = fake._job_resource(j)
                if fake._fault_arg("running"):
                    res["status"] = {"state": "RUNNING"}
                    res["statistics"].pop("endTime", None)
                if not send:
                    return 200, res, nins
                self._maybe_lose(nins, ref["jobId"])
                return self._send(200, res)

            def _maybe_lose(self, nins, job_id):
                """The lose faults: the job ran, its answer never arrives."""
                lose = fake._fault("lose", nins)
                with fake.lock:
                    for f in list(fake.faults):
                        if f[0] == "losejob" and f[2] in job_id:
                            fake.faults.remove(f)
                            lose = True
                            break
                if lose:
                    self._drop()

            def _find_job(self, project, job_id, query):
                with fake.lock:
                    j = fake.jobs.get((project, job_id))
                loc = query.get("location")
                if j is None or (loc and j["resource"]["jobReference"]["location"].upper()
                                 != loc.upper()):
                    raise BQError("notFound", "Not found: Job %s:%s.%s" % (
                        project, loc or "US", job_id))
                return j

            def _running(self, j):
                f = fake._fault_arg("running")
                with fake.lock:
                    fake.counts["job_polls"] += 1
                    j["polls"] += 1
                    return f is not None and j["polls"] <= f[1]

            def _get_job(self, project, job_id, query):
                j = self._find_job(project, job_id, query)
                res = fake._job_resource(j)
                if self._running(j):
                    res["status"] = {"state": "RUNNING"}
                    res["statistics"].pop("endTime", None)
                return self._send(200, res)

            def _jobs_query(self, project, q):
                ref = {"jobId": "job_" + base64.urlsafe_b64encode(os.urandom(18)).decode()
                       .rstrip("="), "location": q.get("location") or "US"}
                conf = {"query": {k: v for k, v in q.items() if k in (
                    "query", "useLegacySql", "queryParameters", "parameterMode",
                    "defaultDataset")}}
                with fake.lock:
                    j = fake._new_job(project, ref, conf)
                    fake._run_job(project, j, None)
                err = j["resource"]["status"].get("errorResult")
                if err:
                    return self._send(*gerror(http_of(err["reason"]), err["reason"],
                                              err["message"]))
                return self._page(j, q.get("maxResults"), 0, "bigquery#queryResponse")

            def _results(self, project, job_id, query):
                j = self._find_job(project, job_id, query)
                err = j["resource"]["status"].get("errorResult")
                if err:
                    return self._send(*gerror(http_of(err["reason"]), err["reason"],
                                              err["message"]))
                if self._running(j):
                    return self._send(200, {"kind": "bigquery#getQueryResultsResponse",
                                            "jobReference": j["resource"]["jobReference"],
                                            "jobComplete": False})
                start = int(query.get("startIndex") or 0)
                tok = query.get("pageToken")
                if tok:
                    try:
                        start = int(base64.urlsafe_b64decode(tok.encode()).decode()
                                    .split(":")[1])
                    except (ValueError, IndexError):
                        raise BQError("invalid", "Invalid page token")
                return self._page(j, query.get("maxResults"), start,
                                  "bigquery#getQueryResultsResponse")

            def _page(self, j, max_results, start, kind):
                r = j["result"] or {"schema": {"fields": []}, "rows": [], "affected": None}
                total = len(r["rows"])
                limit = int(max_results) if max_results not in (None, "") else total
                rows = r["rows"][start:start + max(limit, 0)]
                out = {"kind": kind, "etag": base64.b64encode(os.urandom(9)).decode(),
                       "schema": r["schema"], "jobReference": j["resource"]["jobReference"],
                       "totalRows": str(total), "jobComplete": True, "cacheHit": False,
                       "totalBytesProcessed": j["resource"]["statistics"].get(
                           "totalBytesProcessed", "0")}
                if rows:
                    out["rows"] = rows
                if start + len(rows) < total:
                    out["pageToken"] = base64.urlsafe_b64encode(
                        ("p:%d" % (start + len(rows))).encode()).decode()
                if r["affected"] is not None:
                    out["numDmlAffectedRows"] = str(r["affected"])
                return self._send(200, out)

        return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--project", default="test-project")
    ap.add_argument("--db", default=":memory:")
    ap.add_argument("--expires-in", type=int, default=3600)
    ap.add_argument("--anonymous", action="store_true")
    ap.add_argument("--fault", action="append", default=[])
    a = ap.parse_args()
    workdir = os.path.dirname(os.path.abspath(a.port_file)) if a.port_file else "."
    issuer = None if a.anonymous else gauth_fake.TokenIssuer(None, a.expires_in)
    fake = FakeBigQuery(issuer, None, a.project, a.db, a.anonymous, a.host, a.port)
    key = None
    if issuer:
        key = gauth_fake.make_service_account_key(workdir, fake.url + "/token")
        issuer.public_key_pem = key.public_pem
        issuer.client_email = key.client_email
    for f in a.fault:
        fake.add_fault(f)
    fake.start()
    if a.port_file and key:
        os.replace(key.path, a.port_file + ".key.json")
    serve_until_signalled(fake.url, fake.port, a.port_file, fake.stop)


if __name__ == "__main__":
    main()
