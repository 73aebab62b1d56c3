#!/usr/bin/env python3
"""The Cloud Storage fake speaks the real protocol: Google's official Node
client (@google-cloud/storage 7.x, tests/gcp) uploads small objects
(multipart) and large ones (resumable, in chunks and streamed), downloads
them with checksum validation, lists, deletes, and meets a precondition
failure, all against tests/fakes/fake_gcs.py.  Also: the fake's token
endpoint refuses unsigned or foreign JWTs and its storage API refuses
requests without a valid token.

Needs node and npm (node_modules is installed with `npm ci` when missing);
skipped when node is not on PATH.
"""
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
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
import gauth_fake  # noqa: E402
from fake_gcs import FakeGCS  # noqa: E402

GCP = os.path.join(HERE, "..", "gcp")


def ensure_node_modules():
    if not os.path.isdir(os.path.join(GCP, "node_modules", "@google-cloud", "storage")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=GCP, check=True,
                       stdout=subprocess.DEVNULL)


@unittest.skipUnless(shutil.which("node") and shutil.which("npm"), "node/npm not installed")
class NodeClientTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fake-gcs-node-")
        self.issuer = gauth_fake.TokenIssuer(None, 3600)
        self.gcs = FakeGCS(self.issuer, ["node-bucket"]).start()
        self.key = gauth_fake.make_service_account_key(self.dir, self.gcs.url + "/token")
        self.issuer.public_key_pem = self.key.public_pem
        self.issuer.client_email = self.key.client_email
        self.issuer.audience = self.key.token_uri

    def tearDown(self):
        self.gcs.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_official_client_against_the_fake(self):
        ensure_node_modules()
        env = dict(os.environ, FAKE_URL=self.gcs.url, TOKEN=self.issuer.issue(),
                   BUCKET="node-bucket")
        env.pop("STORAGE_EMULATOR_HOST", None)
        p = subprocess.run(["node", os.path.join(GCP, "storage_client.mjs")], cwd=GCP, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual(out["bucket"], "node-bucket", out)
        self.assertEqual(out["multipart"]["size"], "39", out)
        self.assertTrue(out["multipart"]["md5"], out)
        self.assertEqual(out["resumable_chunked"], {"size": str(5 * 262144), "md5": True}, out)
        self.assertEqual(out["resumable_stream"], {"size": str(5 * 262144), "md5": True}, out)
        self.assertEqual(out["download"], {"small": True, "large": True}, out)
        self.assertEqual(out["list"], ["node/large-chunked.bin", "node/large-stream.bin",
                                       "node/small.csv"], out)
        self.assertEqual(out["list_paged"], [2, 1, True, True], out)
        self.assertEqual(out["precondition"].get("code"), 412, out)
        self.assertIn("412", out["precondition_resumable"]["error"], out)
        self.assertIs(out["delete"], False, out)
        self.assertEqual(out["missing"].get("code"), 404, out)
        # What the client did, seen from the fake.
        st = self.gcs.stats()
        self.assertGreaterEqual(st["multipart"], 1, st)
        self.assertGreaterEqual(st["resumable_sessions"], 2, st)
        self.assertGreaterEqual(st["chunks"], 4, st)   # 3 chunked + 1 streamed
        self.assertEqual(self.gcs.object("node-bucket", "node/small.csv"),
                         b"symbol,open_time\nBTCUSDT,1577836800000\n")

    def test_storage_api_needs_a_valid_token(self):
        url = self.gcs.url + "/storage/v1/b/node-bucket"
        for header in (None, "Bearer not-a-token"):
            req = urllib.request.Request(url)
            if header:
                req.add_header("Authorization", header)
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(cm.exception.code, 401)
        tok = self.issuer.issue()
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + tok})
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(json.loads(r.read())["name"], "node-bucket")
        self.issuer.revoke_all()
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(cm.exception.code, 401)

    def test_token_endpoint_checks_the_jwt(self):
        """Signed with openssl by the test itself: accepted; a foreign key, a
        wrong audience or an expired JWT: invalid_grant."""
        import base64
        import time

        def b64(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

        def jwt(claims, key_pem):
            h = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
            c = b64(json.dumps(claims).encode())
            keyfile = os.path.join(self.dir, "k.pem")
            with open(keyfile, "w") as f:
                f.write(key_pem)
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", keyfile],
                                 input=(h + "." + c).encode(), stdout=subprocess.PIPE,
                                 check=True).stdout
            os.unlink(keyfile)
            return h + "." + c + "." + b64(sig)

        now = int(time.time())
        good = {"iss": self.key.client_email, "scope": gauth_fake.SCOPE_CLOUD,
                "aud": self.key.token_uri, "iat": now, "exp": now + 3600}
        other = os.path.join(self.dir, "other")
        os.makedirs(other)
        k2 = gauth_fake.make_service_account_key(other, self.key.token_uri)

        def post(assertion):
            body = ("grant_type=" + urllib.request.quote(gauth_fake.JWT_GRANT, safe="") +
                    "&assertion=" + assertion).encode()
            return self.issuer.handle_token_request(body)

        st, body = post(jwt(good, self.key.private_pem))
        self.assertEqual(st, 200, body)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertTrue(self.issuer.check_bearer("Bearer " + body["access_token"]))
        for claims, key in ((good, k2.private_pem),
                            (dict(good, aud="https://elsewhere/token"), self.key.private_pem),
                            (dict(good, iat=now - 7200, exp=now - 3600), self.key.private_pem),
                            (dict(good, scope=""), self.key.private_pem)):
            st, body = post(jwt(claims, key))
            self.assertEqual(st, 400, (claims, body))
            self.assertIn(body["error"], ("invalid_grant", "invalid_scope"))
        self.issuer.refuse = "Account disabled"
        self.assertEqual(post(jwt(good, self.key.private_pem)),
                         (400, {"error": "invalid_grant", "error_description":
                                "Account disabled"}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
