#!/bin/sh
# make demo: the whole pipeline, offline, on the embedded default.
#
# Starts the project's loopback fake exchange (tests/fakes/fake_binance.py)
# serving real Binance BTCUSDT data bundled in tests/samples (a week of 15m
# candles with the 2023-03-24 outage, a month of 1h, two years of 1d), runs
# `dataops run` against it into demo/out (a local lake + SQLite), prints
# what landed, and stops the fake.  Run it twice: the second run finds
# nothing new and changes nothing.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-build/dataops}
case "$bin" in /*) ;; *) bin=$(pwd)/$bin ;; esac
out=${DEMO_DIR:-$root/demo/out}
data=$root/tests/samples/binance/finom-static-klines/BTCUSDT
mkdir -p "$out"
port_file=$out/fake.port
rm -f "$port_file"

# The exchange clock is frozen just after the newest bundled candle closed.
python3 "$root/tests/fakes/fake_binance.py" --port 0 --port-file "$port_file" \
    --data "BTCUSDT:15m:$data/15m/2023-03-20.json" \
    --data "BTCUSDT:1h:$data/1h/2022-01-01.json" \
    --data "BTCUSDT:1d:$data/1d/2024-01-01.json" \
    --now 1767225600000 >/dev/null &
fake=$!
trap 'kill "$fake" 2>/dev/null || true' EXIT INT TERM
i=0
while [ ! -s "$port_file" ]; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$fake" 2>/dev/null; then
        echo "demo: the fake exchange did not start" >&2
        exit 1
    fi
    sleep 0.1
done
port=$(cat "$port_file")

echo "demo: fake exchange on http://127.0.0.1:$port; warehouse $out/warehouse.db, lake $out/lake"
status=0
( cd "$out" && "$bin" run \
    --base-url "http://127.0.0.1:$port" \
    --symbols BTCUSDT --intervals 15m,1h,1d --start 2022-01-01 \
    --warehouse "$out/warehouse.db" --lake "$out/lake" \
    --log-format "${DATAOPS_LOG_FORMAT:-text}" ) || status=$?

if command -v sqlite3 >/dev/null 2>&1; then
    echo
    echo "what landed (sqlite3 $out/warehouse.db):"
    sqlite3 -header -column "$out/warehouse.db" \
        "SELECT symbol, \"interval\", count(*) AS raw_rows, min(utc_datetime) AS first_candle,
                max(utc_datetime) AS last_candle
           FROM raw_binance_btcusdt_spot GROUP BY 1, 2 ORDER BY 1, 2;"
    echo
    sqlite3 -header -column "$out/warehouse.db" \
        "SELECT symbol, \"interval\", count(*) AS transformed_rows,
                max(utc_singapore_datetime) AS last_candle_singapore
           FROM processed_binance_btcusdt_spot GROUP BY 1, 2 ORDER BY 1, 2;"
    echo
    echo "lake objects: $(find "$out/lake" -name '*.csv' | wc -l) CSV files, artifacts of $(find "$out/lake/thebareops_production/pipeline-dataops" -mindepth 1 -maxdepth 1 -type d | wc -l) run(s)"
fi
exit "$status"
