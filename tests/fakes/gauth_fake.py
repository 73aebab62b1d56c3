"""Google OAuth 2.0 for the loopback fakes: service-account keys made at test
time, the token endpoint (JWT bearer grant) and the metadata server.

Python 3 standard library plus the ``openssl`` command line (the key pair is
made with ``openssl genpkey``, and each JWT signature is checked with
``openssl dgst -sha256 -verify``), so no private key is ever committed.
Shared by tests/fakes/fake_gcs.py and the BigQuery fake.

API
---
make_service_account_key(workdir, token_uri, client_email=DEFAULT_EMAIL,
                         project_id="test-project") -> ServiceAccountKey
    Generates an RSA-2048 key pair in workdir and writes a service-account
    key file (the JSON layout Google hands out: type, project_id,
    private_key_id, private_key, client_email, client_id, auth_uri,
    token_uri, ...).  The result has .path (the key file, for
    GOOGLE_APPLICATION_CREDENTIALS), .public_pem (path), .private_pem (the PEM
    text, so tests can grep for leaks), .key_id, .client_email, .token_uri.

TokenIssuer(public_key_pem, expires_in=3600, client_email=None,
            audience=None, scope=None)
    public_key_pem: path of the public half (ServiceAccountKey.public_pem).
    client_email / audience / scope: when set, the JWT's iss / aud must equal
    them and its scope must contain scope.
    Attributes a test may change at any time (thread-safe enough for tests):
      .expires_in   lifetime of the next tokens, seconds (short = renewal)
      .refuse       None, or an error_description: every token request is
                    then refused with 400 {"error": "invalid_grant", ...}
    Methods:
      .handle_token_request(body: bytes) -> (status, dict)
          POST /token with an application/x-www-form-urlencoded body
          (grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=
          JWT).  Verifies the header (alg RS256), the RS256 signature with the
          public key, and the claims (iss, aud, scope, iat <= now + 60,
          now < exp, exp - iat <= 3600).  200 {"access_token", "expires_in",
          "token_type": "Bearer"}, or 400 {"error", "error_description"}.
      .handle_metadata_request(headers) -> (status, dict or str)
          GET /computeMetadata/v1/instance/service-accounts/default/token;
          needs the header Metadata-Flavor: Google (else 403, text).
      .issue(expires_in=None) -> str     a valid token without a JWT (for a
                                         client whose own auth cannot reach us)
      .check_bearer(header) -> bool      an "Authorization" header value
                                         "Bearer <token>" with a token that
                                         was issued, is unexpired and not
                                         revoked
      .revoke_all()                      every token issued so far is now
                                         invalid (a token expiring mid-run)
      .stats() -> dict                   counters: jwt_grants, metadata_grants,
                                         refused, bearer_rejected
      .tokens() -> list[str]             every token issued (to grep for leaks)
"""
import base64
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
import urllib.parse

DEFAULT_EMAIL = "dataops-test@test-project.iam.gserviceaccount.com"
SCOPE_CLOUD = "https://www.googleapis.com/auth/cloud-platform"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class ServiceAccountKey:
    def __init__(self, path, public_pem, private_pem, key_id, client_email, token_uri):
        self.path = path
        self.public_pem = public_pem
        self.private_pem = private_pem
        self.key_id = key_id
        self.client_email = client_email
        self.token_uri = token_uri


def make_service_account_key(workdir, token_uri, client_email=DEFAULT_EMAIL,
                             project_id="test-project"):
    priv = os.path.join(workdir, "sa-private.pem")
    pub = os.path.join(workdir, "sa-public.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", priv], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(priv) as f:
        private_pem = f.read()
    # The key file carries the private key; the separate PEM is not needed.
    os.unlink(priv)
    key_id = secrets.token_hex(20)
    doc = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": client_email,
        "client_id": "1" + "".join(str(secrets.randbelow(10)) for _ in range(20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                + urllib.parse.quote(client_email),
        "universe_domain": "googleapis.com",
    }
    path = os.path.join(workdir, "sa-key.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    os.chmod(path, 0o600)
    return ServiceAccountKey(path, pub, private_pem, key_id, client_email, token_uri)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_rs256(public_pem, signing_input, signature):
    """True if signature is an RS256 signature of signing_input (bytes)."""
    with tempfile.TemporaryDirectory(prefix="jwt-") as d:
        data = os.path.join(d, "data")
        sig = os.path.join(d, "sig")
        with open(data, "wb") as f:
            f.write(signing_input)
        with open(sig, "wb") as f:
            f.write(signature)
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", public_pem, "-signature",
                            sig, data], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return r.returncode == 0 and b"Verified OK" in r.stdout


class TokenIssuer:
    def __init__(self, public_key_pem, expires_in=3600, client_email=None, audience=None,
                 scope=None):
        self.public_key_pem = public_key_pem
        self.expires_in = expires_in
        self.client_email = client_email
        self.audience = audience
        self.scope = scope
        self.refuse = None
        self._lock = threading.Lock()
        self._tokens = {}          # token -> expiry (time.time())
        self._all = []
        self._counts = {"jwt_grants": 0, "metadata_grants": 0, "refused": 0,
                        "bearer_rejected": 0}

    # -- tokens -------------------------------------------------------------
    def issue(self, expires_in=None):
        life = self.expires_in if expires_in is None else expires_in
        token = "ya29.fake-" + secrets.token_urlsafe(36)
        with self._lock:
            self._tokens[token] = time.time() + life
            self._all.append(token)
        return token

    def _grant(self, kind):
        life = self.expires_in
        token = self.issue(life)
        with self._lock:
            self._counts[kind] += 1
        return 200, {"access_token": token, "expires_in": life, "token_type": "Bearer"}

    def check_bearer(self, header):
        ok = False
        if header and header.startswith("Bearer "):
            token = header[7:].strip()
            with self._lock:
                exp = self._tokens.get(token)
                ok = exp is not None and time.time() < exp
        if not ok:
            with self._lock:
                self._counts["bearer_rejected"] += 1
        return ok

    def revoke_all(self):
        with self._lock:
            for t in self._tokens:
                self._tokens[t] = 0

    def tokens(self):
        with self._lock:
            return list(self._all)

    def stats(self):
        with self._lock:
            return dict(self._counts)

    # -- endpoints ----------------------------------------------------------
    def _refused(self, desc, error="invalid_grant"):
        with self._lock:
            self._counts["refused"] += 1
        return 400, {"error": error, "error_description": desc}

    def handle_token_request(self, body):
        if self.refuse is not None:
            return self._refused(self.refuse)
        form = urllib.parse.parse_qs(body.decode("ascii", "replace"), keep_blank_values=True)
        if form.get("grant_type", [""])[0] != JWT_GRANT:
            return self._refused("Invalid grant_type", "unsupported_grant_type")
        jwt = form.get("assertion", [""])[0]
        parts = jwt.split(".")
        if len(parts) != 3:
            return self._refused("Invalid JWT: Token must be a short-lived token and in a "
                                 "reasonable timeframe")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except ValueError:
            return self._refused("Invalid JWT: malformed")
        if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
            return self._refused("Invalid JWT header")
        if not verify_rs256(self.public_key_pem, (parts[0] + "." + parts[1]).encode(),
                            signature):
            return self._refused("Invalid JWT Signature.")
        now = time.time()
        iat = claims.get("iat")
        exp = claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            return self._refused("Invalid JWT: iat and exp must be integers")
        if iat > now + 60 or exp <= now or exp - iat > 3600:
            return self._refused("Invalid JWT: Token must be a short-lived token (60 minutes) "
                                 "and in a reasonable timeframe. Check your iat and exp values "
                                 "in the JWT claim.")
        if self.client_email and claims.get("iss") != self.client_email:
            return self._refused("Invalid JWT: unknown issuer", "invalid_client")
        if self.audience and claims.get("aud") != self.audience:
            return self._refused("Invalid JWT: Failed audience check.")
        scopes = str(claims.get("scope", "")).split()
        if not scopes or (self.scope and self.scope not in scopes):
            return self._refused("Invalid OAuth scope or ID token audience provided.",
                                 "invalid_scope")
        return self._grant("jwt_grants")

    def handle_metadata_request(self, headers):
        if headers.get("Metadata-Flavor") != "Google":
            return 403, "Missing required header: Metadata-Flavor"
        if self.refuse is not None:
            with self._lock:
                self._counts["refused"] += 1
            return 404, "Not Found"
        return self._grant("metadata_grants")
