#!/usr/bin/env node
// s3rver_start.js - run s3rver (npm, 3.7.1) on a free loopback port for one
// test run, with the given buckets created, and write the port to a file.
//
// Usage: node s3rver_start.js DIR PORT_FILE BUCKET...
//
// The port file is written atomically (temporary file + rename) once the
// server listens; SIGTERM or SIGINT closes it.  Virtual-host style requests
// work with Host: BUCKET.s3.localhost[:PORT] (serviceEndpoint "localhost";
// libcurl resolves every *.localhost name to the loopback address itself).
'use strict';

const fs = require('fs');
const S3rver = require('s3rver');

async function main() {
  const [dir, portFile, ...buckets] = process.argv.slice(2);
  if (!dir || !portFile || !buckets.length) {
    console.error('usage: node s3rver_start.js DIR PORT_FILE BUCKET...');
    process.exit(2);
  }
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    serviceEndpoint: 'localhost',
    configureBuckets: buckets.map(name => ({ name })),
  });
  const { port } = await server.run();
  fs.writeFileSync(portFile + '.tmp', String(port));
  fs.renameSync(portFile + '.tmp', portFile);
  const stop = () => server.close().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  console.error('s3rver_start: ' + (err && err.stack ? err.stack : err));
  process.exit(1);
});
