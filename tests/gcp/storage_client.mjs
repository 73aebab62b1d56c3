// Google's own Cloud Storage client (@google-cloud/storage, pinned in
// package.json) against the loopback fake (tests/fakes/fake_gcs.py), to show
// that the fake speaks the protocol the real service speaks.  Run by
// tests/integration/test_fake_gcs_node.py, which starts the fake and passes:
//   FAKE_URL   http://127.0.0.1:PORT  (the client's apiEndpoint)
//   TOKEN      an access token the fake issued
//   BUCKET     an existing bucket
// Prints one JSON object with what each step saw; exits 1 on a failed step.
//
// Quirks of the client with a custom endpoint (see test-recipes.md):
//   - its auth library would post a JWT to Google's own token URL, ignoring
//     the key's token_uri, so it is given an OAuth2Client holding the token;
//   - its resumable uploads go through plain gaxios without credentials for
//     a non-Google host, so a request interceptor adds the bearer token.
import { createHash, randomBytes } from 'node:crypto';
import { Storage } from '@google-cloud/storage';
import { OAuth2Client } from 'google-auth-library';

const { FAKE_URL, TOKEN, BUCKET } = process.env;
const auth = new OAuth2Client();
auth.setCredentials({ access_token: TOKEN, expiry_date: Date.now() + 3600e3 });
const storage = new Storage({
  apiEndpoint: FAKE_URL,
  projectId: 'test-project',
  authClient: auth,
  retryOptions: { maxRetries: 0 },
});
storage.interceptors.push({
  request: (opts) => {
    opts.headers = { ...(opts.headers || {}), Authorization: `Bearer ${TOKEN}` };
    return opts;
  },
});

const out = {};
const md5 = (b) => createHash('md5').update(b).digest('base64');
const bucket = storage.bucket(BUCKET);

async function step(name, fn) {
  try {
    out[name] = await fn();
  } catch (e) {
    out[name] = { error: String(e.message || e), code: e.code ?? null };
  }
}

await step('bucket', async () => (await bucket.getMetadata())[0].name);

const small = Buffer.from('symbol,open_time\nBTCUSDT,1577836800000\n');
await step('multipart', async () => {
  const f = bucket.file('node/small.csv');
  await f.save(small, { resumable: false, contentType: 'text/csv', validation: 'crc32c' });
  const [m] = await f.getMetadata();
  return { size: m.size, md5: m.md5Hash === md5(small), crc32c: m.crc32c };
});

// 1.25 MiB in 512 KiB chunks: three requests with Content-Range.
const large = randomBytes(5 * 256 * 1024);
await step('resumable_chunked', async () => {
  const f = bucket.file('node/large-chunked.bin');
  await f.save(large, { resumable: true, chunkSize: 2 * 256 * 1024, validation: 'md5' });
  const [m] = await f.getMetadata();
  return { size: m.size, md5: m.md5Hash === md5(large) };
});

// One streamed request for the whole object (no chunkSize).
await step('resumable_stream', async () => {
  const f = bucket.file('node/large-stream.bin');
  await f.save(large, { resumable: true, validation: 'crc32c' });
  const [m] = await f.getMetadata();
  return { size: m.size, md5: m.md5Hash === md5(large) };
});

await step('download', async () => {
  const [a] = await bucket.file('node/small.csv').download({ validation: 'crc32c' });
  const [b] = await bucket.file('node/large-chunked.bin').download({ validation: 'md5' });
  return { small: a.equals(small), large: b.equals(large) };
});

await step('list', async () => {
  const [files] = await bucket.getFiles({ prefix: 'node/' });
  return files.map((f) => f.name).sort();
});

await step('list_paged', async () => {
  const opts = { prefix: 'node/', maxResults: 2, autoPaginate: false };
  const [page1, next] = await bucket.getFiles(opts);
  const [page2, last] = await bucket.getFiles(next);
  return [page1.length, page2.length, Boolean(next && next.pageToken), last === null];
});

await step('precondition', async () => {
  await bucket.file('node/small.csv').save(Buffer.from('other'), {
    resumable: false,
    preconditionOpts: { ifGenerationMatch: 0 },
  });
  return 'overwritten';
});

await step('precondition_resumable', async () => {
  await bucket.file('node/large-chunked.bin').save(large, {
    resumable: true,
    preconditionOpts: { ifGenerationMatch: 0 },
  });
  return 'overwritten';
});

await step('delete', async () => {
  await bucket.file('node/large-stream.bin').delete();
  const [exists] = await bucket.file('node/large-stream.bin').exists();
  return exists;
});

await step('missing', async () => {
  await bucket.file('node/nothing-here').download();
  return 'downloaded';
});

console.log(JSON.stringify(out));
