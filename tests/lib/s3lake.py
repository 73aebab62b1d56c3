"""s3rver for the tests of the s3:// lake: the npm tools of tests/s3
(installed with `npm ci` when missing) and one s3rver on a free loopback
port, storing its objects on disk, with the given buckets created.

Shared by tests/integration/test_lake_s3.py and tests/system/test_matrix.py.
"""
import os
import shutil
import subprocess
import tempfile
import time

from harness import SRC, stop_process

S3DIR = os.path.join(SRC, "tests", "s3")
KEY_ID = "S3RVER"                       # the only key id s3rver accepts
SUFFIX = "._S3rver_object"              # s3rver's file of an object's bytes


def ensure_node_modules():
    need = [os.path.join(S3DIR, "node_modules", m, "package.json") for m in ("s3rver", "aws4")]
    if all(os.path.exists(p) for p in need):
        return
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise RuntimeError("the S3 lake tests need node and npm (scripts/install-deps.sh test "
                           "installs them); then run: cd tests/s3 && npm ci")
    r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=S3DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("npm ci in tests/s3 failed (is the npm registry reachable?):\n"
                           + r.stdout[-3000:])


class S3rver:
    """s3rver (tests/s3/s3rver_start.js) in a temporary directory: .proc,
    .port, .dir, .store (the directory s3rver keeps its objects in); stop()."""

    def __init__(self, *buckets):
        self.dir = tempfile.mkdtemp(prefix="dataops-s3rver-")
        port_file = os.path.join(self.dir, "port")
        self.store = os.path.join(self.dir, "store")
        os.mkdir(self.store)
        self.proc = subprocess.Popen(["node", os.path.join(S3DIR, "s3rver_start.js"),
                                      self.store, port_file] + list(buckets),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                err = self.proc.stderr.read().decode()
                self.proc.wait()
                self.proc.stderr.close()
                shutil.rmtree(self.dir, ignore_errors=True)
                raise RuntimeError("s3rver did not start: " + err)
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def objects(self, bucket, prefix):
        """{key under prefix: bytes} of the visible (completed) objects."""
        root = os.path.join(self.store, bucket, prefix)
        out = {}
        for d, _, files in os.walk(root):
            for f in files:
                if f.endswith(SUFFIX):
                    full = os.path.join(d, f)
                    with open(full, "rb") as fh:
                        out[os.path.relpath(full, root)[:-len(SUFFIX)]] = fh.read()
        return out
