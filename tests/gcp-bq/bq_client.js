// Google's official BigQuery Node.js client against tests/fakes/fake_bigquery.py:
// what it sends, the fake must accept as BigQuery does, and what the fake
// answers, it must read.  Run by tests/fakes/test_fake_bigquery.py:
//
//   node bq_client.js ENDPOINT KEY_FILE TOKEN_URL CSV_FILE
//
// It authenticates with the service-account key (a signed JWT exchanged at
// the fake's token endpoint), creates a dataset and a partitioned, clustered
// table, loads a CSV through the multipart upload of jobs.insert with a
// chosen job id, repeats that job id (409), runs parameterised GoogleSQL
// with paging, a MERGE script in a transaction, and prints what it saw as
// one JSON object.
'use strict';

const fs = require('fs');
const {BigQuery} = require('@google-cloud/bigquery');
const {JWT} = require('google-auth-library');

const [endpoint, keyFile, tokenUrl, csvFile] = process.argv.slice(2);
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

async function main() {
  const key = JSON.parse(fs.readFileSync(keyFile, 'utf8'));
  const jwt = new JWT({email: key.client_email, key: key.private_key, keyId: key.private_key_id,
                       scopes: ['https://www.googleapis.com/auth/bigquery']});
  // The auth library posts every JWT to Google's own token URL, whatever
  // the key's token_uri says: send that one request to the fake instead.
  jwt.transporter.interceptors.request.add({
    resolved: async opts => {
      if (String(opts.url).startsWith(GOOGLE_TOKEN_URL)) {
        opts.url = new URL(tokenUrl);
      }
      return opts;
    },
  });
  const bq = new BigQuery({projectId: 'test-project', apiEndpoint: endpoint, authClient: jwt,
                           location: 'US', autoRetry: false});
  const out = {};

  const [dataset] = await bq.createDataset('nodeds', {location: 'US'});
  out.dataset = dataset.id;
  const schema = [
    {name: 'utc_datetime', type: 'DATETIME', mode: 'REQUIRED'},
    {name: 'open_time', type: 'INT64', mode: 'REQUIRED'},
    {name: 'close', type: 'STRING'},
    {name: 'symbol', type: 'STRING', mode: 'REQUIRED'},
    {name: 'interval', type: 'STRING', mode: 'REQUIRED'},
  ];
  const [table] = await dataset.createTable('klines', {
    schema,
    timePartitioning: {type: 'DAY', field: 'utc_datetime'},
    clustering: {fields: ['symbol', 'interval']},
  });
  out.table = table.id;
  const [staging] = await dataset.createTable('staging', {schema});

  // A load job with media (multipart upload) and a chosen job id.
  const [loadJob] = await staging.load(csvFile, {
    sourceFormat: 'CSV', skipLeadingRows: 1, writeDisposition: 'WRITE_TRUNCATE',
    jobId: 'node_load_1',
  });
  out.load = {state: loadJob.status.state, outputRows: loadJob.statistics.load.outputRows,
              jobId: loadJob.jobReference.jobId};
  // The same id again: BigQuery refuses with 409 duplicate, nothing runs.
  try {
    await staging.load(csvFile, {sourceFormat: 'CSV', skipLeadingRows: 1, jobId: 'node_load_1'});
    out.duplicate = 'accepted';
  } catch (e) {
    out.duplicate = {code: e.code, reason: e.errors && e.errors[0] && e.errors[0].reason};
  }

  // MERGE in a transaction, as a script job with a chosen id.
  const merge = 'BEGIN TRANSACTION;\n' +
    'MERGE `test-project.nodeds.klines` T USING `test-project.nodeds.staging` S\n' +
    'ON T.symbol = S.symbol AND T.`interval` = S.`interval` AND T.open_time = S.open_time\n' +
    'WHEN MATCHED AND T.close IS DISTINCT FROM S.close THEN UPDATE SET close = S.close\n' +
    'WHEN NOT MATCHED THEN INSERT (utc_datetime, open_time, close, symbol, `interval`)\n' +
    '  VALUES (S.utc_datetime, S.open_time, S.close, S.symbol, S.`interval`);\n' +
    'COMMIT TRANSACTION;';
  for (const id of ['node_merge_1', 'node_merge_2']) {
    const [job] = await bq.createQueryJob({query: merge, jobId: id});
    await job.getQueryResults();
    const [meta] = await job.getMetadata();
    out[id] = {state: meta.status.state, statementType: meta.statistics.query.statementType};
  }

  // Parameterised GoogleSQL, read one row per page (pageToken paging).
  const [qjob] = await bq.createQueryJob({
    query: 'SELECT utc_datetime, open_time, close FROM `test-project.nodeds.klines` ' +
           'WHERE symbol = @symbol AND `interval` = @interval ORDER BY open_time',
    params: {symbol: 'BTCUSDT', interval: '15m'},
    jobId: 'node_query_1',
  });
  let [rows, next] = await qjob.getQueryResults({maxResults: 1, autoPaginate: false});
  out.pages = 1;
  while (next) {
    const [more, after] = await qjob.getQueryResults(next);
    rows = rows.concat(more);
    next = after;
    out.pages++;
  }
  out.rows = rows.map(r => [r.utc_datetime.value, r.open_time, r.close]);
  const [[count]] = await bq.query({
    query: 'SELECT COUNT(*) AS n, MAX(open_time) AS wm FROM nodeds.klines WHERE symbol = @s',
    params: {s: 'BTCUSDT'},
  });
  out.count = count;
  const [meta] = await table.getMetadata();
  out.tableMeta = {numRows: meta.numRows, timePartitioning: meta.timePartitioning,
                   clustering: meta.clustering};
  // A query the fake (and BigQuery) refuses: an error with a reason.
  try {
    await bq.query({query: 'SELECT nope FROM `test-project.nodeds.klines`'});
    out.badQuery = 'accepted';
  } catch (e) {
    out.badQuery = {code: e.code, reason: e.errors && e.errors[0] && e.errors[0].reason};
  }
  await staging.delete();
  const [tables] = await dataset.getTables();
  out.tables = tables.map(t => t.id).sort();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch(e => {
  process.stderr.write('bq_client.js: ' + (e.stack || e) + '\n' +
                       (e.response ? JSON.stringify(e.response.data || '') : '') + '\n');
  process.exit(1);
});
