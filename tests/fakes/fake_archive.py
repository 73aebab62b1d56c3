#!/usr/bin/env python3
"""Loopback fake of data.binance.vision (the kline archive), for tests.

Python 3 standard library only. It serves the files under --root exactly as
they lie on disk, at the same paths as the real host, e.g.

    ROOT/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2022-01.zip
    ROOT/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2022-01.zip.CHECKSUM

A missing file is a 404 with an S3-style XML body, as the real host answers.
The tests build the zips and .CHECKSUM files themselves; the helpers below
(kline_csv, write_archive_file) do it the way Binance publishes them:
one CSV member named like the zip, unquoted values, and a sha256sum line.

Usage
-----
    fake_archive.py --root DIR [--host 127.0.0.1] [--port 0]
                    [--port-file PATH] [--latency-ms N] [--request-log PATH]
                    [--fault SPEC ...]

Once listening it writes the port to --port-file (temporary file + rename)
and prints ``listening on http://HOST:PORT``; it runs until SIGTERM/SIGINT.

Faults (--fault SPEC, or POST /_control/fault?spec=SPEC)
--------------------------------------------------------
SPEC = PATH_SUFFIX:NTH:KIND   (NTH: N, N+ or *, counted per fault)
KIND: 500, 503, 404, reset (no answer, connection dropped), truncate (full
Content-Length, half the body, close).

Control API (not logged, no latency)
------------------------------------
GET  /_control/stats   {"requests": {path: n}, "status_counts": {"200": n},
                        "bytes": n}
POST /_control/reset   clear faults and counters
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving import serve_until_signalled  # noqa: E402

NOT_FOUND = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
             b'<Message>The specified key does not exist.</Message></Error>')

# ---------------------------------------------------------------------------
# Building archive files (used by the tests)


def kline_csv(rows, header=False, micro=False, crlf=False):
    """The archive's CSV for API-shaped rows: 12 unquoted columns, an
    optional header line, microsecond times (x1000) if asked."""
    out = []
    if header:
        out.append("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                   "taker_buy_volume,taker_buy_quote_volume,ignore")
    for r in rows:
        ot, ct = int(r[0]), int(r[6])
        if micro:
            ot, ct = ot * 1000, ct * 1000 + 999
        out.append(",".join([str(ot), r[1], r[2], r[3], r[4], r[5], str(ct), r[7], str(r[8]),
                             r[9], r[10], str(r[11])]))
    nl = "\r\n" if crlf else "\n"
    return (nl.join(out) + nl).encode()


def archive_path(symbol, interval, period):
    """data/spot/{monthly|daily}/klines/SYMBOL/IV/SYMBOL-IV-PERIOD.zip; the
    month is spelt 1mo, and a period with a day is a daily file."""
    iv = "1mo" if interval == "1M" else interval
    kind = "daily" if period.count("-") == 2 else "monthly"
    name = "%s-%s-%s.zip" % (symbol, iv, period)
    return "data/spot/%s/klines/%s/%s/%s" % (kind, symbol, iv, name)


def write_archive_file(root, symbol, interval, period, csv_bytes, checksum="good",
                       mangle=None, stored=False):
    """Write the zip and its .CHECKSUM under root; returns the zip's path.

    checksum: "good", "wrong" (a valid line for other bytes) or None (no
    .CHECKSUM file).  mangle(zip_bytes) -> bytes alters the zip after it is
    built and before the checksum is taken (so the checksum matches the
    damaged file, and only the zip's own checks can catch it)."""
    rel = archive_path(symbol, interval, period)
    name = os.path.basename(rel)
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as z:
        z.writestr(name[:-4] + ".csv", csv_bytes)
    data = buf.getvalue()
    if mangle:
        data = mangle(data)
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if checksum is not None:
        digest = hashlib.sha256(data if checksum == "good" else data + b"x").hexdigest()
        with open(path + ".CHECKSUM", "w") as f:
            f.write("%s  %s\n" % (digest, name))
    return path


class FakeArchiveProcess:
    """This fake on a free loopback port, as a context manager (tests)."""

    started = 0

    def __init__(self, workdir, root, latency_ms=0, faults=()):
        import subprocess
        FakeArchiveProcess.started += 1
        n = FakeArchiveProcess.started
        self.port_file = os.path.join(workdir, "archive-%d.port" % n)
        self.log_path = os.path.join(workdir, "archive-requests-%d.jsonl" % n)
        args = [sys.executable, os.path.abspath(__file__), "--root", root, "--port-file",
                self.port_file, "--request-log", self.log_path, "--latency-ms", str(latency_ms)]
        for f in faults:
            args += ["--fault", f]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("fake archive did not start")
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())

    def _control(self, path, method="GET"):
        import urllib.request
        req = urllib.request.Request(self.url + "/_control/" + path, method=method,
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        return self._control("stats")

    def requests(self):
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return [json.loads(line) for line in f]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------
# The server


class Fault:
    def __init__(self, spec):
        parts = spec.split(":")
        if len(parts) != 3:
            raise ValueError("fault spec is PATH_SUFFIX:NTH:KIND, got %r" % spec)
        self.spec = spec
        self.suffix, nth, self.kind = parts
        if self.kind not in ("500", "503", "404", "reset", "truncate"):
            raise ValueError("unknown fault kind %r" % self.kind)
        self.every = nth == "*"
        self.from_on = nth.endswith("+")
        self.n = 0 if self.every else int(nth.rstrip("+"))
        self.seen = 0

    def observe(self, path):
        if not path.endswith(self.suffix):
            return False
        self.seen += 1
        if self.every:
            return True
        return self.seen >= self.n if self.from_on else self.seen == self.n


class Archive:
    def __init__(self, root, latency_ms, faults, request_log):
        self.root = os.path.abspath(root)
        self.latency = latency_ms / 1000.0
        self.lock = threading.Lock()
        self.faults = list(faults)
        self.requests = Counter()
        self.statuses = Counter()
        self.bytes = 0
        self.log = open(request_log, "a", encoding="utf-8") if request_log else None

    def fault_for(self, path):
        with self.lock:
            fired = [f for f in self.faults if f.observe(path)]
        return fired[0] if fired else None

    def file_for(self, path):
        rel = os.path.normpath(path.lstrip("/"))
        if rel.startswith("..") or not rel.startswith("data/"):
            return None
        full = os.path.join(self.root, rel)
        return full if os.path.isfile(full) else None

    def record(self, path, status, size):
        with self.lock:
            self.requests[path] += 1
            self.statuses[str(status)] += 1
            self.bytes += size
            if self.log:
                self.log.write(json.dumps({"t": round(time.time() * 1000, 3), "path": path,
                                           "status": status, "bytes": size}) + "\n")
                self.log.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-archive/1.0"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002
        pass

    def _send(self, status, body, ctype="application/octet-stream", truncate=False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if truncate:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method):
        url = urlsplit(self.path)
        arch = self.server.archive
        if url.path.startswith("/_control/"):
            self._control(method, url.path[len("/_control/"):], url.query)
            return
        if arch.latency:
            time.sleep(arch.latency)
        fault = arch.fault_for(url.path)
        if fault and fault.kind == "reset":
            arch.record(url.path, "reset", 0)
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            except OSError:
                pass
            self.connection.close()
            return
        if fault and fault.kind in ("500", "503", "404"):
            status = int(fault.kind)
            body = NOT_FOUND if status == 404 else b"<Error><Code>InternalError</Code></Error>"
            arch.record(url.path, status, len(body))
            self._send(status, body, "application/xml")
            return
        full = arch.file_for(url.path) if method == "GET" else None
        if not full:
            arch.record(url.path, 404, len(NOT_FOUND))
            self._send(404, NOT_FOUND, "application/xml")
            return
        with open(full, "rb") as f:
            body = f.read()
        arch.record(url.path, 200, len(body))
        ctype = "text/plain" if full.endswith(".CHECKSUM") else "application/zip"
        self._send(200, body, ctype, truncate=bool(fault and fault.kind == "truncate"))

    def _control(self, method, name, query):
        arch = self.server.archive
        params = dict(parse_qsl(query))
        status, body = 200, {}
        try:
            if (method, name) == ("GET", "stats"):
                with arch.lock:
                    body = {"requests": dict(arch.requests), "status_counts": dict(arch.statuses),
                            "bytes": arch.bytes}
            elif (method, name) == ("POST", "reset"):
                with arch.lock:
                    arch.faults.clear()
                    arch.requests.clear()
                    arch.statuses.clear()
                    arch.bytes = 0
                body = {"ok": True}
            elif (method, name) == ("POST", "fault"):
                fault = Fault(params.get("spec", ""))
                with arch.lock:
                    arch.faults.append(fault)
                body = {"faults": [f.spec for f in arch.faults]}
            else:
                status, body = 404, {"error": "unknown control endpoint"}
        except ValueError as exc:
            status, body = 400, {"error": str(exc)}
        self._send(status, json.dumps(body).encode(), "application/json")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, archive):
        self.archive = archive
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Loopback fake of data.binance.vision.")
    ap.add_argument("--root", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--request-log")
    ap.add_argument("--fault", action="append", default=[])
    args = ap.parse_args(argv)
    try:
        archive = Archive(args.root, args.latency_ms, [Fault(s) for s in args.fault],
                          args.request_log)
        server = Server((args.host, args.port), archive)
    except (ValueError, OSError) as exc:
        print("fake_archive: error: %s" % exc, file=sys.stderr)
        return 2
    port = server.server_address[1]
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    worker.start()

    def stop_server():
        server.shutdown()
        server.server_close()
    serve_until_signalled("http://%s:%d" % (args.host, port), port, args.port_file,
                          stop_server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
