#!/usr/bin/env node
// sigv4_check.js - recompute the AWS Signature Version 4 of captured requests
// with npm's aws4 and compare it with the signature the client sent.
//
// Usage: node sigv4_check.js REQUESTS.jsonl
// Each line is one request as a server received it:
//   {"method": "PUT", "path": "/bucket/key?partNumber=1&uploadId=x",
//    "headers": {"host": "...", "authorization": "...", ...}}
// The secret key comes from the environment (AWS_SECRET_ACCESS_KEY); the
// access key, date, region and service come from the Authorization header.
// Only the headers the client says it signed (SignedHeaders) are given to
// aws4, so aws4 canonicalises exactly the request the client sent: method,
// path, query, those headers and the payload hash in x-amz-content-sha256.
// Prints one line per request and a closing "N passed, N failed" line;
// exits 1 when any signature differs or a request is not signed.
'use strict';

const fs = require('fs');
const aws4 = require('aws4');

const AUTH_RE = new RegExp('^AWS4-HMAC-SHA256 Credential=([^/]+)/(\\d{8})/([^/]+)/([^/]+)/aws4_request, ?' +
  'SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$');

function check(req, secret) {
  const auth = req.headers.authorization;
  if (!auth) return 'not signed (no Authorization header)';
  const m = AUTH_RE.exec(auth);
  if (!m) return 'Authorization header not understood: ' + auth.slice(0, 60);
  const [, keyId, date, region, service, signed, signature] = m;
  const headers = {};
  for (const name of signed.split(';')) {
    if (!(name in req.headers)) return 'signed header ' + name + ' was not sent';
    headers[name] = req.headers[name];
  }
  if (!headers['x-amz-date'] || headers['x-amz-date'].slice(0, 8) !== date) {
    return 'x-amz-date missing or not on the credential date ' + date;
  }
  if (service === 's3' && !headers['x-amz-content-sha256']) {
    return 'x-amz-content-sha256 is not signed';
  }
  const opts = {
    method: req.method,
    host: headers.host,
    path: req.path,
    service,
    region,
    headers,
    doNotModifyHeaders: true,
  };
  const creds = { accessKeyId: keyId, secretAccessKey: secret };
  const signer = new aws4.RequestSigner(opts, creds);
  // aws4 takes the time from x-amz-date; with doNotModifyHeaders it must be
  // told explicitly, as prepareRequest() skips the header handling.
  signer.datetime = headers['x-amz-date'];
  const expected = signer.authHeader();
  if (expected !== auth) {
    return 'signature differs:\n  client: ' + auth + '\n  aws4:   ' + expected +
      '\n  canonical request (aws4):\n' + signer.canonicalString().replace(/^/gm, '    ');
  }
  return null;
}

function main() {
  const file = process.argv[2];
  const secret = process.env.AWS_SECRET_ACCESS_KEY;
  if (!file || !secret) {
    console.error('usage: AWS_SECRET_ACCESS_KEY=... node sigv4_check.js REQUESTS.jsonl');
    process.exit(2);
  }
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  let passed = 0;
  let failed = 0;
  for (const line of lines) {
    const req = JSON.parse(line);
    const why = check(req, secret);
    if (why) {
      failed++;
      console.log('FAIL ' + req.method + ' ' + req.path + ': ' + why);
    } else {
      passed++;
      console.log('ok   ' + req.method + ' ' + req.path);
    }
  }
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed || !passed ? 1 : 0);
}

main();
