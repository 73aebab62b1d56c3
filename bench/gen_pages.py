#!/usr/bin/env python3
"""Synthetic /api/v3/klines pages (1m candles), one response body per line,
for the benchmarks when ../shared/bench/gen.py is not there.

Deterministic (a 64-bit LCG seeded by the row index), integer arithmetic
only, 8-decimal strings like the exchange's; every candle passes
validation (low <= open/close <= high, taker volumes <= volumes).

usage: gen_pages.py ROWS OUT.jsonl [--start-ms MS]
"""
import argparse

M64 = (1 << 64) - 1


def dec(units, scale):
    """units * 10^-scale as an 8-decimal string."""
    q, r = divmod(units, 10 ** scale)
    return "%d.%s" % (q, str(r).rjust(scale, "0") + "0" * (8 - scale))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rows", type=int)
    ap.add_argument("out")
    ap.add_argument("--start-ms", type=int, default=1577836800000)
    a = ap.parse_args()
    state = 0x2545F4914F6CDD1D
    price = 700000   # cents
    t = a.start_ms
    left = a.rows
    with open(a.out, "w") as f:
        while left > 0:
            n = min(1000, left)
            rows = []
            for _ in range(n):
                state = (state * 6364136223846793005 + 1442695040888963407) & M64
                r = state >> 16
                o = price
                c = max(100, o + r % 1501 - 750)
                hi = max(o, c) + (r >> 11) % 400
                lo = max(1, min(o, c) - (r >> 20) % 400)
                vol = 1 + (r >> 29) % 9000000
                tb = (r >> 7) % (vol + 1)
                px = lo + (r >> 3) % (hi - lo + 1)
                rows.append('[%d,"%s","%s","%s","%s","%s",%d,"%s",%d,"%s","%s","0"]' % (
                    t, dec(o, 2), dec(hi, 2), dec(lo, 2), dec(c, 2), dec(vol, 5),
                    t + 59999, dec(vol * px * 10, 8), 1 + (r >> 40) % 4000, dec(tb, 5),
                    dec(tb * px * 10, 8)))
                price = c
                t += 60000
            f.write("[" + ",".join(rows) + "]\n")
            left -= n


if __name__ == "__main__":
    main()
