#!/usr/bin/env python3
"""Loopback fake of Google Cloud Storage's JSON API, the OAuth 2.0 token
endpoint and the GKE/GCE metadata server, for tests.

Python 3 standard library (plus the openssl command line, through
gauth_fake.py).  It follows the documented protocol
(cloud.google.com/storage/docs/json_api), so that Google's own client
(tests/gcp/storage_client.mjs, @google-cloud/storage) and dataops agree on it.

Use as a module (tests start it in-process)::

    fake = FakeGCS(issuer, buckets=["lake", "artifacts"]).start()
    fake.url                  # http://127.0.0.1:PORT
    fake.add_fault("cut:2")   # see Faults
    fake.object("lake", "a/b.csv") -> bytes or None
    fake.stop()

or from the command line: fake_gcs.py --bucket B [--bucket B2] --port-file F
[--expires-in S] [--anonymous]  (it writes a service-account key whose
token_uri points at itself next to the port file: F.key.json).

Endpoints
---------
POST /token                       OAuth 2.0 JWT bearer grant (gauth_fake)
GET  /computeMetadata/v1/instance/service-accounts/default/token
                                  metadata server (Metadata-Flavor: Google)
GET  /storage/v1/b/B              buckets.get
GET  /storage/v1/b/B/o            objects.list (prefix, delimiter, maxResults,
                                  pageToken)
GET  /storage/v1/b/B/o/O          objects.get: metadata, or the bytes with
                                  alt=media (x-goog-hash, x-goog-generation)
DELETE /storage/v1/b/B/o/O        objects.delete (ifGenerationMatch)
POST /upload/storage/v1/b/B/o     objects.insert: uploadType=media (name=),
                                  multipart (multipart/related: JSON metadata,
                                  then the bytes; crc32c/md5Hash in the
                                  metadata are verified, 400 on mismatch),
                                  resumable (JSON metadata; 200 with a
                                  Location session URI carrying upload_id)
PUT  <session URI>                a chunk, Content-Range: bytes A-B/TOTAL (or
                                  /*), or bytes A-*/TOTAL (or /*): one streamed
                                  body that ends the object:
                                  308 with Range: bytes=0-N while incomplete,
                                  200 with the object when complete; a status
                                  query (no body, bytes */TOTAL or bytes */*)
                                  answers the same way.  Non-final chunks are
                                  persisted in multiples of 256 KiB.
DELETE <session URI>              cancel: 499, later requests 404
Every create honours ifGenerationMatch (0: only if absent; else 412
conditionNotMet), checked when the session starts and when it completes.
Storage requests need "Authorization: Bearer <token>" with a token the
issuer gave and that has not expired (401 otherwise), unless anonymous.

Faults (add_fault("KIND:N"), N counts upload requests - POST/PUT under
/upload/ - from 1, except expire which counts every storage request)
---------------------------------------------------------------------
cut:N     read half of the body (a resumable chunk persists what it got, in
          256 KiB multiples), then reset the connection without answering
reset:N   reset the connection before reading the body
503:N     answer 503 backendError (nothing persisted)
lose:N    carry the request out fully, then reset instead of answering
expire:N  revoke every token before the Nth storage request (it gets 401)
occupy:N  another writer creates the object (content OCCUPIED) just before
          the Nth upload request, a create, is handled
"""
import argparse
import hashlib
import base64
import json
import os
import re
import secrets
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gauth_fake  # noqa: E402
from serving import InProcessServer, serve_until_signalled  # noqa: E402

QUANTUM = 256 * 1024
OCCUPIED = b"written by someone else\n"
METADATA_TOKEN = "/computeMetadata/v1/instance/service-accounts/default/token"
METADATA_EMAIL = "/computeMetadata/v1/instance/service-accounts/default/email"


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = _CRC_T
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def b64_crc(data):
    return base64.b64encode(struct.pack(">I", crc32c(data))).decode()


def b64_md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class Disconnect(Exception):
    """Raised to drop the connection without an answer (a fault)."""


def gerror(code, reason, message):
    return code, {"error": {"code": code, "message": message,
                            "errors": [{"message": message, "domain": "global",
                                        "reason": reason}]}}


class Store:
    def __init__(self, buckets):
        self.lock = threading.Lock()
        self.buckets = {b: {} for b in buckets}
        self.sessions = {}
        self.gen = int(time.time() * 1e6)

    def next_gen(self):
        self.gen += 1
        return self.gen


class FakeGCS(InProcessServer):
    def __init__(self, issuer, buckets=(), anonymous=False, host="127.0.0.1", port=0):
        self.issuer = issuer
        self.anonymous = anonymous
        self.store = Store(buckets)
        self.faults = []          # [kind, n]
        self.counts = {"upload_requests": 0, "storage_requests": 0, "multipart": 0,
                       "media": 0, "resumable_sessions": 0, "chunks": 0, "status_queries": 0,
                       "cancelled": 0, "precondition_failed": 0, "unauthorized": 0,
                       "faults_fired": 0, "created": 0}
        self.log = []
        self.bind(host, port, self._handler_class())

    # -- control (tests) ----------------------------------------------------
    def add_fault(self, spec):
        kind, n = spec.split(":")
        with self.store.lock:
            self.faults.append([kind, int(n)])

    def object(self, bucket, name):
        with self.store.lock:
            o = self.store.buckets.get(bucket, {}).get(name)
            return o["data"] if o else None

    def names(self, bucket):
        with self.store.lock:
            return sorted(self.store.buckets.get(bucket, {}))

    def put(self, bucket, name, data, content_type="application/octet-stream"):
        with self.store.lock:
            self._create(bucket, name, data, content_type)

    def stats(self):
        with self.store.lock:
            d = dict(self.counts)
        d.update(self.issuer.stats())
        return d

    # -- internals ----------------------------------------------------------
    def _fault(self, kind_set, counter):
        """The fault due at this count of counter, if any (fired once)."""
        with self.store.lock:
            n = self.counts[counter]
            for f in self.faults:
                if f[0] in kind_set and f[1] == n:
                    self.faults.remove(f)
                    self.counts["faults_fired"] += 1
                    return f[0]
        return None

    def _resource(self, bucket, o):
        name = o["name"]
        q = urllib.parse.quote(name, safe="")
        return {"kind": "storage#object", "id": "%s/%s/%d" % (bucket, name, o["generation"]),
                "selfLink": "%s/storage/v1/b/%s/o/%s" % (self.url, bucket, q),
                "mediaLink": "%s/download/storage/v1/b/%s/o/%s?generation=%d&alt=media"
                             % (self.url, bucket, q, o["generation"]),
                "name": name, "bucket": bucket, "generation": str(o["generation"]),
                "metageneration": "1", "contentType": o["contentType"],
                "storageClass": "STANDARD", "size": str(len(o["data"])),
                "md5Hash": o["md5Hash"], "crc32c": o["crc32c"],
                "etag": base64.b64encode(struct.pack(">Q", o["generation"])).decode(),
                "timeCreated": o["time"], "updated": o["time"]}

    def _create(self, bucket, name, data, content_type):
        gen = self.store.next_gen()
        o = {"name": name, "data": bytes(data), "generation": gen,
             "contentType": content_type or "application/octet-stream",
             "md5Hash": b64_md5(data), "crc32c": b64_crc(data),
             "time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        self.store.buckets[bucket][name] = o
        self.counts["created"] += 1
        return o

    @staticmethod
    def _precondition(query, existing):
        """None, or an error answer when ifGenerationMatch does not hold."""
        v = query.get("ifGenerationMatch")
        if v is None:
            return None
        gen = existing["generation"] if existing else 0
        if int(v) != gen:
            return gerror(412, "conditionNotMet", "At least one of the pre-conditions you "
                          "specified did not hold.")
        return None

    def _handler_class(fake):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "fake-gcs/1"

            def log_message(self, *a):
                pass

            # -- plumbing ----------------------------------------------------
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

            def _send(self, status, body=None, headers=None, ctype="application/json"):
                if isinstance(body, (dict, list)):
                    data = json.dumps(body).encode()
                elif isinstance(body, str):
                    data = body.encode()
                    ctype = "text/plain"
                else:
                    data = body or b""
                self.send_response(status)
                if data or status not in (204, 308):
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _dispatch(self):
                u = urllib.parse.urlsplit(self.path)
                path = u.path
                query = {k: v[-1] for k, v in urllib.parse.parse_qs(
                    u.query, keep_blank_values=True).items()}
                fake.log.append((self.command, path, dict(query)))
                try:
                    if path == "/token" and self.command == "POST":
                        st, body = fake.issuer.handle_token_request(self._read_body())
                        return self._send(st, body)
                    if path == METADATA_TOKEN and self.command == "GET":
                        st, body = fake.issuer.handle_metadata_request(self.headers)
                        return self._send(st, body)
                    if path == METADATA_EMAIL and self.command == "GET":
                        return self._send(200, gauth_fake.DEFAULT_EMAIL)
                    return self._storage(path, query)
                except Disconnect:
                    return None

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

            # -- storage ------------------------------------------------------
            def _storage(self, path, query):
                with fake.store.lock:
                    fake.counts["storage_requests"] += 1
                upload = path.startswith("/upload/") and self.command in ("POST", "PUT")
                if upload:
                    with fake.store.lock:
                        fake.counts["upload_requests"] += 1
                if fake._fault({"expire"}, "storage_requests"):
                    fake.issuer.revoke_all()
                if not fake.anonymous and not fake.issuer.check_bearer(
                        self.headers.get("Authorization")):
                    with fake.store.lock:
                        fake.counts["unauthorized"] += 1
                    self._read_body()
                    return self._send(*gerror(401, "required", "Anonymous caller does not have "
                                              "storage access, or the token is invalid."),
                                      headers={"WWW-Authenticate": "Bearer realm=\"fake\""})
                fault = fake._fault({"cut", "reset", "503", "lose", "occupy"}, "upload_requests") \
                    if upload else None
                if fault == "reset":
                    self._drop()
                if fault == "503":
                    self._read_body()
                    return self._send(*gerror(503, "backendError", "Backend Error"))
                m = re.match(r"^/(upload/)?storage/v1/b/([^/]+)(/o(?:/(.+))?)?$", path)
                if not m:
                    self._read_body()
                    return self._send(*gerror(404, "notFound", "Not Found"))
                is_upload, bucket, has_o, obj = m.group(1), m.group(2), m.group(3), m.group(4)
                obj = urllib.parse.unquote(obj) if obj is not None else None
                with fake.store.lock:
                    if bucket not in fake.store.buckets:
                        self._read_body()
                        return self._send(*gerror(404, "notFound", "The specified bucket does "
                                                  "not exist."))
                if is_upload:
                    return self._upload(bucket, query, fault)
                if not has_o:
                    if self.command != "GET":
                        return self._send(*gerror(405, "methodNotAllowed", "Method not "
                                                  "allowed"))
                    return self._send(200, {"kind": "storage#bucket", "id": bucket,
                                            "name": bucket, "location": "US",
                                            "storageClass": "STANDARD",
                                            "metageneration": "1",
                                            "projectNumber": "123456789"})
                if obj is None:
                    return self._list(bucket, query)
                return self._object(bucket, obj, query)

            def _list(self, bucket, query):
                prefix = query.get("prefix", "")
                delim = query.get("delimiter")
                limit = int(query.get("maxResults", "1000"))
                start = query.get("pageToken", "")
                with fake.store.lock:
                    objs = fake.store.buckets[bucket]
                    names = sorted(n for n in objs if n.startswith(prefix) and n > start)
                    items, prefixes = [], set()
                    last = None
                    for n in names:
                        if len(items) + len(prefixes) >= limit:
                            break
                        rest = n[len(prefix):]
                        if delim and delim in rest:
                            prefixes.add(prefix + rest.split(delim)[0] + delim)
                        else:
                            items.append(fake._resource(bucket, objs[n]))
                        last = n
                    more = last is not None and any(n > last for n in names)
                body = {"kind": "storage#objects"}
                if items:
                    body["items"] = items
                if prefixes:
                    body["prefixes"] = sorted(prefixes)
                if more:
                    body["nextPageToken"] = last
                return self._send(200, body)

            def _object(self, bucket, name, query):
                with fake.store.lock:
                    o = fake.store.buckets[bucket].get(name)
                    if self.command == "DELETE":
                        if not o:
                            return self._send(*gerror(404, "notFound", "No such object: %s/%s"
                                                      % (bucket, name)))
                        err = fake._precondition(query, o)
                        if err:
                            return self._send(*err)
                        del fake.store.buckets[bucket][name]
                        return self._send(204)
                    if self.command != "GET":
                        return self._send(*gerror(405, "methodNotAllowed", "Not allowed"))
                    if not o:
                        return self._send(*gerror(404, "notFound", "No such object: %s/%s"
                                                  % (bucket, name)))
                    res = fake._resource(bucket, o)
                    data = o["data"]
                if query.get("alt") == "media":
                    return self._send(200, data, ctype=res["contentType"], headers={
                        "x-goog-hash": "crc32c=%s,md5=%s" % (res["crc32c"], res["md5Hash"]),
                        "x-goog-generation": res["generation"],
                        "x-goog-stored-content-length": str(len(data)),
                        "x-goog-stored-content-encoding": "identity"})
                return self._send(200, res)

            # -- uploads ------------------------------------------------------
            def _upload(self, bucket, query, fault):
                kind = query.get("uploadType", "")
                if self.command == "PUT" or (kind == "resumable" and "upload_id" in query):
                    return self._chunk(bucket, query, fault)
                if self.command != "POST":
                    return self._send(*gerror(405, "methodNotAllowed", "Not allowed"))
                body = self._read_body(None if fault != "cut" else
                                       int(self.headers.get("Content-Length") or 0) // 2)
                if fault == "cut":
                    self._drop()
                ctype = self.headers.get("Content-Type", "")
                if kind == "media":
                    name = query.get("name")
                    meta = {"name": name, "contentType": ctype}
                    data = body
                    fake.counts["media"] += 1
                elif kind == "multipart":
                    try:
                        meta, data, dtype = self._multipart(ctype, body)
                    except ValueError as ex:
                        return self._send(*gerror(400, "invalid", "Invalid multipart request: "
                                                  + str(ex)))
                    meta.setdefault("contentType", dtype)
                    if query.get("name"):
                        meta.setdefault("name", query["name"])
                    fake.counts["multipart"] += 1
                    if "crc32c" in meta and meta["crc32c"] != b64_crc(data):
                        return self._send(*gerror(400, "invalid", "Provided CRC32C \"%s\" "
                                                  "doesn't match calculated CRC32C \"%s\"."
                                                  % (meta["crc32c"], b64_crc(data))))
                    if "md5Hash" in meta and meta["md5Hash"] != b64_md5(data):
                        return self._send(*gerror(400, "invalid", "Provided MD5 hash doesn't "
                                                  "match calculated MD5 hash."))
                elif kind == "resumable":
                    try:
                        meta = json.loads(body) if body.strip() else {}
                    except ValueError:
                        return self._send(*gerror(400, "parseError", "Parse Error"))
                    if query.get("name"):
                        meta.setdefault("name", query["name"])
                    if not meta.get("name"):
                        return self._send(*gerror(400, "required", "Required"))
                    meta.setdefault("contentType", self.headers.get("X-Upload-Content-Type"))
                    with fake.store.lock:
                        if fault == "occupy":
                            fake._create(bucket, meta["name"], OCCUPIED, "text/plain")
                        err = fake._precondition(
                            query, fake.store.buckets[bucket].get(meta["name"]))
                        if err:
                            fake.counts["precondition_failed"] += 1
                            return self._send(*err)
                        sid = secrets.token_urlsafe(24)
                        fake.store.sessions[sid] = {"bucket": bucket, "meta": meta,
                                                    "query": query, "data": bytearray(),
                                                    "done": None}
                        fake.counts["resumable_sessions"] += 1
                    loc = "%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s" \
                          "&upload_id=%s" % (fake.url, bucket,
                                             urllib.parse.quote(meta["name"], safe=""), sid)
                    if fault == "lose":
                        self._drop()
                    return self._send(200, b"", headers={"Location": loc,
                                                         "X-GUploader-UploadID": sid})
                else:
                    return self._send(*gerror(400, "invalid", "Unknown uploadType"))
                if not meta.get("name"):
                    return self._send(*gerror(400, "required", "Required"))
                with fake.store.lock:
                    if fault == "occupy":
                        fake._create(bucket, meta["name"], OCCUPIED, "text/plain")
                    err = fake._precondition(query, fake.store.buckets[bucket].get(meta["name"]))
                    if err:
                        fake.counts["precondition_failed"] += 1
                        return self._send(*err)
                    o = fake._create(bucket, meta["name"], data, meta.get("contentType"))
                    res = fake._resource(bucket, o)
                if fault == "lose":
                    self._drop()
                return self._send(200, res)

            @staticmethod
            def _multipart(ctype, body):
                m = re.search(r'boundary="?([^";]+)"?', ctype)
                if not ctype.startswith("multipart/related") or not m:
                    raise ValueError("Content-Type is not multipart/related with a boundary")
                b = b"--" + m.group(1).encode()
                parts = body.split(b)
                if len(parts) < 4 or not parts[-1].startswith(b"--"):
                    raise ValueError("expected two parts and a closing boundary")
                out = []
                for p in parts[1:-1]:
                    if p.startswith(b"\r\n"):
                        p = p[2:]
                    head, sep, content = p.partition(b"\r\n\r\n")
                    if not sep:
                        raise ValueError("part without headers")
                    if content.endswith(b"\r\n"):
                        content = content[:-2]
                    headers = {}
                    for line in head.split(b"\r\n"):
                        k, _, v = line.decode("latin-1").partition(":")
                        headers[k.strip().lower()] = v.strip()
                    out.append((headers, content))
                if len(out) != 2:
                    raise ValueError("expected exactly two parts")
                meta = json.loads(out[0][1] or b"{}")
                return meta, out[1][1], out[1][0].get("content-type",
                                                      "application/octet-stream")

            def _chunk(self, bucket, query, fault):
                sid = query.get("upload_id", "")
                with fake.store.lock:
                    s = fake.store.sessions.get(sid)
                if self.command == "DELETE" and s:
                    with fake.store.lock:
                        fake.store.sessions.pop(sid, None)
                        fake.counts["cancelled"] += 1
                    return self._send(499, b"")
                if not s or s.get("cancelled"):
                    self._read_body()
                    return self._send(*gerror(404, "notFound", "No such upload session"))
                cr = self.headers.get("Content-Range", "")
                length = int(self.headers.get("Content-Length") or 0)
                m = re.match(r"^bytes (\*|(\d+)-(\d+|\*))/(\*|\d+)$", cr.strip())
                if cr and not m:
                    self._read_body()
                    return self._send(*gerror(400, "invalid", "Invalid Content-Range"))
                total = None if (not m or m.group(4) == "*") else int(m.group(4))
                if s["done"] is not None:
                    self._read_body()
                    return self._send(200, s["done"])
                if not m or m.group(1) == "*":
                    # Status query (or a body-less finalisation).
                    self._read_body()
                    with fake.store.lock:
                        fake.counts["status_queries"] += 1
                    if total is not None and total == len(s["data"]):
                        return self._finalize(s, fault)
                    return self._incomplete(s)
                first = int(m.group(2))
                if fault == "cut":
                    body = self._read_body(length // 2)
                else:
                    body = self._read_body()
                if m.group(3) == "*" and fault != "cut":
                    # "bytes A-*/N": one streamed request carries the rest of
                    # the object, which ends with this body.
                    if total is not None and total != first + len(body):
                        return self._send(*gerror(400, "invalid", "Invalid Content-Range"))
                    total = first + len(body)
                with fake.store.lock:
                    fake.counts["chunks"] += 1
                    have = len(s["data"])
                    if first > have:
                        return self._send(*gerror(400, "invalid", "Invalid request: the chunk "
                                                  "starts after the persisted bytes"))
                    body = body[have - first:]
                    end = have + len(body)
                    final = total is not None and end == total and fault != "cut"
                    if not final:
                        # Only whole 256 KiB units of an unfinished upload persist.
                        body = body[:(len(body) // QUANTUM) * QUANTUM]
                    s["data"] += body
                if fault == "cut":
                    self._drop()
                if total is not None and len(s["data"]) == total:
                    return self._finalize(s, fault)
                if fault == "lose":
                    self._drop()
                return self._incomplete(s)

            def _incomplete(self, s):
                h = {}
                if s["data"]:
                    h["Range"] = "bytes=0-%d" % (len(s["data"]) - 1)
                return self._send(308, b"", headers=h)

            def _finalize(self, s, fault):
                with fake.store.lock:
                    bucket, meta = s["bucket"], s["meta"]
                    err = fake._precondition(s["query"],
                                             fake.store.buckets[bucket].get(meta["name"]))
                    if err:
                        fake.counts["precondition_failed"] += 1
                        return self._send(*err)
                    o = fake._create(bucket, meta["name"], s["data"], meta.get("contentType"))
                    s["done"] = fake._resource(bucket, o)
                if fault == "lose":
                    self._drop()
                return self._send(200, s["done"])

        return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--bucket", action="append", default=[])
    ap.add_argument("--expires-in", type=int, default=3600)
    ap.add_argument("--anonymous", action="store_true")
    ap.add_argument("--fault", action="append", default=[])
    a = ap.parse_args()
    workdir = os.path.dirname(os.path.abspath(a.port_file)) if a.port_file else "."
    # The key's token_uri must name our port, which is only known once bound:
    # bind first, then write the key.
    issuer = gauth_fake.TokenIssuer(None, a.expires_in)
    fake = FakeGCS(issuer, a.bucket, a.anonymous, a.host, a.port)
    key = gauth_fake.make_service_account_key(workdir, fake.url + "/token")
    issuer.public_key_pem = key.public_pem
    issuer.client_email = key.client_email
    issuer.audience = key.token_uri
    for f in a.fault:
        fake.add_fault(f)
    fake.start()
    if a.port_file:
        os.replace(key.path, a.port_file + ".key.json")
    serve_until_signalled(fake.url, fake.port, a.port_file, fake.stop)


if __name__ == "__main__":
    main()
