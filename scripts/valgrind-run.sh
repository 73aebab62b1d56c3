#!/bin/sh
# make valgrind: one full pipeline run (extract, lake, raw and transformed
# loads, artifacts) under valgrind's memcheck against the loopback fake
# exchange; fails on any leak or memory error.
set -eu
bin=${1:-build/dataops}
root=$(cd "$(dirname "$0")/.." && pwd)
case "$bin" in /*) ;; *) bin=$(pwd)/$bin ;; esac
work=$(mktemp -d)
trap 'kill "$fake" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
python3 "$root/tests/fakes/fake_binance.py" --port 0 --port-file "$work/port" \
    --data "BTCUSDT:15m:$root/tests/samples/binance/finom-static-klines/BTCUSDT/15m/2023-03-20.json" \
    --synth ETHUSDT:1m:1577836800000:3000 --now 1679961600000 >/dev/null &
fake=$!
i=0
while [ ! -s "$work/port" ]; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "valgrind: fake did not start" >&2; exit 1; }
    sleep 0.1
done
cd "$work"
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
    "$bin" run --base-url "http://127.0.0.1:$(cat port)" --symbols BTCUSDT,ETHUSDT \
    --intervals 1m,15m --start 2020-01-01 --batch-rows 1000 --log-format json 2>"$work/err" \
    >/dev/null || { status=$?; grep -v '^{' "$work/err" | tail -60; echo "valgrind: FAILED ($status)"; exit 1; }
grep -v '^{' "$work/err" || true
echo "valgrind: no leaks, no memory errors"
