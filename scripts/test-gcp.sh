#!/bin/sh
# make test-gcp: a short end-to-end run against a REAL Google Cloud project,
# when credentials are given; otherwise it says why it skipped and exits 0.
#
#   GOOGLE_APPLICATION_CREDENTIALS=key.json PROJECT_ID=my-project \
#   GCS_BUCKET_NAME=my-bucket [DATAOPS_BIGQUERY_LOCATION=US] make test-gcp
#
# What it does, on throwaway names so production tables are never touched:
#   1. serves a week of real BTCUSDT 15m candles from the loopback fake
#      exchange (no Binance access needed: only Google is real here);
#   2. dataops run  -> lake gs://$GCS_BUCKET_NAME/dataops-e2e-<stamp>/,
#      warehouse bigquery://$PROJECT_ID, dataset dataops_e2e_<stamp>:
#      datasets and tables are created, the batch is loaded from the lake
#      object into a staging table and MERGEd;
#   3. dataops run again -> nothing new, nothing changes (exactly once);
#   4. with the bq CLI: the row counts (667 raw, 667 transformed, no
#      duplicate key) and then removes the dataset (DATAOPS_E2E_KEEP=1 keeps
#      it); without it, prints the commands to check and clean up.
# Cost: a few MB scanned (BigQuery bills 10 MB minimum per query), cents at
# most; the lake objects stay under the prefix (a few hundred KB).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-build/dataops}
case "$bin" in /*) ;; *) bin=$(pwd)/$bin ;; esac

missing=""
[ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ] || missing="$missing GOOGLE_APPLICATION_CREDENTIALS"
[ -n "${PROJECT_ID:-}" ] || missing="$missing PROJECT_ID"
[ -n "${GCS_BUCKET_NAME:-}" ] || missing="$missing GCS_BUCKET_NAME"
if [ -n "$missing" ]; then
    echo "test-gcp: skipped: set$missing to run the end-to-end check against a real" \
         "Google Cloud project (see docs/gcp.md, \"make test-gcp\")"
    exit 0
fi
if [ ! -r "$GOOGLE_APPLICATION_CREDENTIALS" ]; then
    echo "test-gcp: GOOGLE_APPLICATION_CREDENTIALS=$GOOGLE_APPLICATION_CREDENTIALS is not a" \
         "readable file" >&2
    exit 2
fi
# (DATAOPS_E2E_ALLOW_EMULATOR=1 lets the project's own test drive this script
# against the loopback fakes.)
if [ -n "${BIGQUERY_EMULATOR_HOST:-}${STORAGE_EMULATOR_HOST:-}" ] &&
   [ "${DATAOPS_E2E_ALLOW_EMULATOR:-0}" != 1 ]; then
    echo "test-gcp: unset BIGQUERY_EMULATOR_HOST and STORAGE_EMULATOR_HOST: this check is" \
         "against Google itself" >&2
    exit 2
fi

stamp=$(date -u +%Y%m%d%H%M%S)_$$
dataset=dataops_e2e_$stamp
work=$(mktemp -d "${TMPDIR:-/tmp}/dataops-e2e.XXXXXX")
week=$root/tests/samples/binance/finom-static-klines/BTCUSDT/15m/2023-03-20.json
port_file=$work/fake.port
python3 "$root/tests/fakes/fake_binance.py" --port 0 --port-file "$port_file" \
    --data "BTCUSDT:15m:$week" --now 1679875200000 >/dev/null &
fake=$!
trap 'kill "$fake" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
i=0
while [ ! -s "$port_file" ]; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$fake" 2>/dev/null; then
        echo "test-gcp: the fake exchange did not start" >&2
        exit 1
    fi
    sleep 0.1
done

BINANCE_BASE_URL="http://127.0.0.1:$(cat "$port_file")"
export BINANCE_BASE_URL
export DATAOPS_WAREHOUSE="bigquery://$PROJECT_ID"
export DATAOPS_LAKE="gs://$GCS_BUCKET_NAME/dataops-e2e-$stamp"
export BIGQUERY_RAW_DATASET="$dataset" BIGQUERY_TRANSFORMED_DATASET="$dataset"
export DATAOPS_SYMBOLS=BTCUSDT DATAOPS_INTERVALS=15m DATAOPS_START_TIME=2023-03-20
export DATAOPS_LOG_FORMAT=text

echo "test-gcp: project $PROJECT_ID, dataset $dataset, lake $DATAOPS_LAKE"
for n in 1 2; do
    start=$(date +%s)
    if ! "$bin" run >"$work/out$n" 2>"$work/err$n"; then
        cat "$work/err$n" >&2
        echo "test-gcp: FAILED: run $n did not succeed (dataset $dataset may need removing:" \
             "bq rm -r -f $PROJECT_ID:$dataset)" >&2
        exit 1
    fi
    cat "$work/out$n"
    grep -E "\[bigquery\] (staged|merged)" "$work/err$n" || true
    echo "test-gcp: run $n took $(($(date +%s) - start))s"
done
if ! grep -qE "^BTCUSDT +15m +667 +667 +0 +667 " "$work/out1"; then
    echo "test-gcp: FAILED: the first run did not load 667 rows" >&2
    exit 1
fi
if ! grep -qE "^BTCUSDT +15m +0 +0 +0 +0 " "$work/out2"; then
    echo "test-gcp: FAILED: the rerun found something new" >&2
    exit 1
fi

# DATAOPS_E2E_BQ="" skips the bq CLI (the offline test of this script).
bq=${DATAOPS_E2E_BQ-bq}
if [ -n "$bq" ] && command -v "$bq" >/dev/null 2>&1; then
    raw="\`$PROJECT_ID.$dataset.raw_binance_btcusdt_spot\`"
    tr="\`$PROJECT_ID.$dataset.processed_binance_btcusdt_spot\`"
    q="SELECT (SELECT COUNT(*) FROM $raw), (SELECT COUNT(DISTINCT open_time) FROM $raw),
              (SELECT COUNT(*) FROM $tr)"
    counts=$("$bq" --project_id="$PROJECT_ID" query --use_legacy_sql=false --format=csv "$q" |
             tail -n 1)
    echo "test-gcp: raw rows, distinct keys, transformed rows: $counts"
    if [ "$counts" != "667,667,667" ]; then
        echo "test-gcp: FAILED: expected 667,667,667 (dataset $dataset kept)" >&2
        exit 1
    fi
    if [ "${DATAOPS_E2E_KEEP:-0}" != 1 ]; then
        "$bq" --project_id="$PROJECT_ID" rm -r -f "$PROJECT_ID:$dataset"
        echo "test-gcp: removed dataset $dataset (the lake objects stay under $DATAOPS_LAKE)"
    fi
else
    echo "test-gcp: no bq CLI here: check and clean up with"
    echo "  bq query --use_legacy_sql=false \\"
    echo "    'SELECT COUNT(*) FROM \`$PROJECT_ID.$dataset.raw_binance_btcusdt_spot\`'"
    echo "  bq rm -r -f $PROJECT_ID:$dataset"
    echo "  gcloud storage rm -r $DATAOPS_LAKE"
fi
echo "test-gcp: passed"
