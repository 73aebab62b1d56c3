#!/bin/sh
# Run every libFuzzer target over its corpus for SECONDS seconds each.
# New interesting inputs go to a scratch corpus (not committed); a crash
# leaves its reproducer in the build directory and fails the script.
set -eu
dir=${1:-build-fuzz}
seconds=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
for t in fuzz_klines fuzz_dotenv; do
    name=${t#fuzz_}
    work=$root/tests/fuzz/corpus-work/$name
    mkdir -p "$work"
    echo "fuzz: $t for ${seconds}s"
    log=$work.log
    if ! (cd "$dir" && "./tests/fuzz/$t" -max_total_time="$seconds" -max_len=65536 \
        -print_final_stats=1 "$work" "$root/tests/fuzz/corpus/$name") >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz: $t FAILED (reproducer in $dir)" >&2
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' "$log" || true
done
