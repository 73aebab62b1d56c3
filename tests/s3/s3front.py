"""A loopback front for s3rver that behaves more like AWS S3, for tests.

s3rver stores objects and speaks multipart upload, but it checks neither
Content-MD5 nor x-amz-content-sha256, ignores If-None-Match, has no
AbortMultipartUpload and answers a completion of an unknown upload with a
500.  This front, placed between the client and s3rver, adds those S3
behaviours and records every request for later checks:

  - each request is logged as a JSON line {n, method, path, headers, len,
    verdict} (tests/s3/sigv4_check.js re-signs these with npm's aws4);
  - a body whose Content-MD5 or x-amz-content-sha256 does not match is
    refused (400 BadDigest / XAmzContentSHA256Mismatch), as S3 does;
  - PUT of an object and CompleteMultipartUpload with If-None-Match: * get
    412 PreconditionFailed when the key exists;
  - DELETE ?uploadId= (AbortMultipartUpload) removes the upload from s3rver's
    directory (204), or answers 404 NoSuchUpload;
  - POST ?uploadId= for an upload that no longer exists: 404 NoSuchUpload.

A test can hook each request (S3Front.hook) to inject faults: answer with an
error instead, forward and then answer with an error (the answer is lost),
drop the connection, plant a concurrent writer's object, or kill the client.

Python 3 standard library only.
"""
import base64
import hashlib
import http.client
import http.server
import json
import os
import shutil
import threading
import urllib.parse

UPLOADS = "._S3rver_uploads"   # s3rver's directory of pending multipart uploads
HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te",
       "upgrade"}


def error_xml(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
            '<Message>%s</Message></Error>' % (code, message)).encode()


class Request:
    """What a hook sees: one request, parsed."""

    def __init__(self, n, method, path, headers, body, bucket, key):
        self.n = n
        self.method = method
        self.path = path
        self.headers = headers          # lower-case names
        self.body = body
        self.bucket = bucket
        self.key = key                  # None for a bucket request
        self.query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query,
                                                 keep_blank_values=True))

    @property
    def kind(self):
        """PutObject, HeadObject, CreateMultipartUpload, UploadPart,
        CompleteMultipartUpload, AbortMultipartUpload, DeleteObject, ListObjects..."""
        m, q = self.method, self.query
        if self.key is None:
            return "ListObjects" if m == "GET" else m + "Bucket"
        if m == "PUT":
            return "UploadPart" if "uploadId" in q else "PutObject"
        if m == "POST":
            return "CompleteMultipartUpload" if "uploadId" in q else "CreateMultipartUpload"
        if m == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in q else "DeleteObject"
        return {"HEAD": "HeadObject", "GET": "GetObject"}.get(m, m)


class S3Front:
    """The front on a free loopback port: .url, .hook, .requests(), .stop()."""

    def __init__(self, upstream_port, store_dir, log_path):
        self.upstream_port = upstream_port
        self.store_dir = store_dir
        self.log_path = log_path
        # hook(req) -> None (go on) | ("error", status, code) | ("lost", status, code)
        #              | ("drop",); it may also act (plant an object, kill a process).
        self.hook = None
        self.hide_head = False          # HEAD of objects says 404: only If-None-Match guards
        self.lock = threading.Lock()
        self.count = 0
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                front.handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # --- upstream helpers --------------------------------------------------

    def upstream(self, method, path, headers=None, body=b""):
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, r.getheaders(), data
        finally:
            conn.close()

    def exists(self, bucket, key):
        """Anonymous HEAD on s3rver (it allows unsigned requests)."""
        status, _, _ = self.upstream("HEAD", "/%s/%s" % (bucket, urllib.parse.quote(key)))
        return status == 200

    def plant(self, bucket, key, data):
        """Write an object directly, as a concurrent writer would."""
        status, _, _ = self.upstream("PUT", "/%s/%s" % (bucket, urllib.parse.quote(key)),
                                     {"Content-Length": str(len(data))}, data)
        assert status == 200, status

    def upload_dir(self, bucket, upload_id):
        return os.path.join(self.store_dir, bucket, UPLOADS, upload_id)

    def pending_uploads(self, bucket):
        """{upload_id: key} of the multipart uploads neither completed nor aborted."""
        d = os.path.join(self.store_dir, bucket, UPLOADS)
        out = {}
        if os.path.isdir(d):
            for u in os.listdir(d):
                try:
                    with open(os.path.join(d, u, "key")) as f:
                        out[u] = f.read()
                except OSError:
                    out[u] = None
        return out

    def requests(self):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    # --- one request -------------------------------------------------------

    def split(self, path, host):
        """(bucket, key) of a path-style or virtual-host-style request."""
        p = urllib.parse.urlsplit(path).path
        hostname = host.split(":")[0]
        if hostname.endswith(".s3.localhost"):
            bucket = hostname[:-len(".s3.localhost")]
            key = p[1:]
        else:
            parts = p[1:].split("/", 1)
            bucket = parts[0]
            key = parts[1] if len(parts) > 1 else ""
        return bucket, (urllib.parse.unquote(key) if key else None)

    def verdict(self, req):
        """The checks S3 makes on a body, as (status, code, message) or None."""
        sha = req.headers.get("x-amz-content-sha256")
        if sha is None:
            return 400, "InvalidRequest", "Missing required header: x-amz-content-sha256"
        if sha != "UNSIGNED-PAYLOAD" and sha != hashlib.sha256(req.body).hexdigest():
            return (400, "XAmzContentSHA256Mismatch",
                    "The provided x-amz-content-sha256 header does not match")
        md5 = req.headers.get("content-md5")
        if md5 is not None and md5 != base64.b64encode(hashlib.md5(req.body).digest()).decode():
            return 400, "BadDigest", "The Content-MD5 you specified did not match"
        return None

    def reply(self, h, status, headers, body, head=False):
        h.send_response(status)
        length_sent = False
        for k, v in headers:
            lk = k.lower()
            if lk in HOP or lk == "date" or lk == "server":
                continue
            if lk == "content-length":
                if not head:
                    continue
                length_sent = True
            h.send_header(k, v)
        if not length_sent:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head and body:
            h.wfile.write(body)

    def reply_error(self, h, status, code, message=None, head=False):
        body = b"" if head else error_xml(code, message or code)
        self.reply(h, status, [("Content-Type", "application/xml")], body, head)

    def handle(self, h):
        n_len = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n_len) if n_len else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        bucket, key = self.split(h.path, headers.get("host", ""))
        with self.lock:
            self.count += 1
            n = self.count
        req = Request(n, h.command, h.path, headers, body, bucket, key)
        verdict = self.verdict(req)
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps({"n": n, "method": h.command, "path": h.path, "kind": req.kind,
                                "headers": headers, "len": len(body),
                                "verdict": verdict[1] if verdict else "ok"}) + "\n")
        head = h.command == "HEAD"
        if verdict:
            return self.reply_error(h, verdict[0], verdict[1], verdict[2], head)
        action = self.hook(req) if self.hook else None
        if action and action[0] == "drop":
            h.close_connection = True
            return None
        if action and action[0] == "error":
            return self.reply_error(h, action[1], action[2], head=head)
        kind = req.kind
        if kind == "HeadObject" and self.hide_head:
            return self.reply_error(h, 404, "NoSuchKey", head=True)
        if kind in ("AbortMultipartUpload", "CompleteMultipartUpload", "UploadPart"):
            d = self.upload_dir(bucket, req.query["uploadId"])
            if not os.path.isdir(d):
                return self.reply_error(h, 404, "NoSuchUpload",
                                        "The specified upload does not exist")
            if kind == "AbortMultipartUpload":
                shutil.rmtree(d)
                return self.reply(h, 204, [], b"")
        if kind in ("PutObject", "CompleteMultipartUpload") and \
                headers.get("if-none-match") == "*" and self.exists(bucket, key):
            return self.reply_error(h, 412, "PreconditionFailed",
                                    "At least one of the pre-conditions you specified did not hold")
        fwd = {k: v for k, v in h.headers.items() if k.lower() not in HOP}
        status, rheaders, rbody = self.upstream(h.command, h.path, fwd, body)
        if action and action[0] == "lost":
            return self.reply_error(h, action[1], action[2], head=head)
        return self.reply(h, status, rheaders, rbody, head)
