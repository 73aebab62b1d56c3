#!/usr/bin/env python3
"""Loopback fake of the Binance spot REST API (market data only), for tests.

Python 3 standard library only. It serves kline data loaded from files or
generated on the fly, with the exchange's paging rules, request weights,
429/418 rate limiting, error bodies and the still-forming last candle, and it
can inject transport and HTTP faults on demand.

Usage
-----
    fake_binance.py [--host 127.0.0.1] [--port 0] [--port-file PATH]
                    [--data SYMBOL:INTERVAL:FILE ...]
                    [--synth SYMBOL:INTERVAL:START_MS:COUNT ...]
                    [--now MS] [--weight-limit N] [--latency-ms N]
                    [--ban-after N] [--request-log PATH]
                    [--fault SPEC ...] [--verbose]

Once listening, the fake writes the bound port number to --port-file
(atomically: temporary file + rename) and prints
``listening on http://HOST:PORT`` to stdout. It runs until SIGTERM or SIGINT,
then exits 0 (and removes the port file).

Example::

    fake_binance.py --port-file /tmp/fb.port \\
        --data BTCUSDT:1h:tests/samples/binance/finom-static-klines/BTCUSDT/1h/2022-01-01.json \\
        --synth ETHUSDT:1m:1577836800000:5000000 --now 1643671800000

Data
----
--data SYMBOL:INTERVAL:FILE   JSON array of 12-element kline rows (any
    whitespace layout), or a data.binance.vision CSV when FILE ends in .csv
    (optional header line, CRLF or LF; microsecond timestamps are converted to
    milliseconds). Repeatable; files for one pair are merged by open time
    (a later file wins) and sorted. Rows are served exactly as loaded.
--synth SYMBOL:INTERVAL:START_MS:COUNT   COUNT deterministic synthetic
    candles from START_MS (on the interval grid). Row i is computed from its
    open time alone, so any page costs O(rows returned). Fixed-length
    intervals only (1s .. 1d, 3d).

A pair has either --data or --synth, not both. A symbol is "known" when it has
data for at least one interval; asking for a known symbol with an interval
that has no data returns ``[]``.

Clock
-----
NOW is the exchange clock: wall-clock time by default; ``--now MS`` freezes it
at MS (it does not advance) until changed through /_control/now. Only klines
with open_time <= NOW exist. The kline with open_time <= NOW <= close_time is
served as still forming: close = open, high/low pulled halfway towards the
open, volumes halved (rounded down to the field's decimals) and trades halved.
Once NOW passes its close_time the row is served as loaded. (A flat candle
with no volume and no trades has nothing to reduce, so both versions agree.)

Endpoints (compact JSON, Content-Type application/json, keep-alive)
---------------------------------------------------------------------
GET /api/v3/ping            weight 1   {}
GET /api/v3/time            weight 1   {"serverTime": NOW}
GET /api/v3/exchangeInfo    weight 20  [symbol=X | symbols=["A","B"]]
GET /api/v3/klines          weight 2   symbol, interval, startTime, endTime,
                                       limit (default 500, 1..1000), timeZone
                                       (only UTC offsets of zero accepted)
Anything else: 404 with an HTML body.

Every API response carries ``x-mbx-used-weight`` and ``x-mbx-used-weight-1m``
(weight used by the client IP in the current wall-clock minute, this request
included). Over --weight-limit: 429 + Retry-After (seconds to the end of the
minute), weight not charged. A client that sends more than --ban-after
requests while a 429's Retry-After period is still running gets 418 and is
banned for 120 s (Retry-After: 120); during a ban every request gets 418.
The Retry-After period starts as the 429 is written to the client: requests
that arrived before then cannot have been sent in spite of it and do not
count, even when they are answered later.

Faults (--fault SPEC, or POST /_control/fault?spec=SPEC)
--------------------------------------------------------
SPEC = PATH_SUFFIX[?NAME=VALUE[&...]]:NTH:KIND[:ARG]
  PATH_SUFFIX  requests whose path ends with it count (``*`` = every API path);
               with ``?NAME=VALUE`` only those whose query also has each of
               these parameters with exactly that value (concurrent requests
               arrive in no fixed order: ``klines?startTime=MS`` picks one
               page whatever its place)
  NTH          N (the Nth matching request), N+ (the Nth and later), * (all);
               counted from the moment the fault was added
  KIND         500 502 504 (-1000 body), 503 (-1008 body), 429 [Retry-After
               ARG, default 1], 418 [ban for ARG s, default 120], reset (TCP
               RST, no response), truncate (full Content-Length, half the
               body, close), stall [ARG s, default 30: headers only, wait,
               close], delay [ARG s, default 1, then answer normally],
               malformed (200 ``[[1,"2",``), body ARG=FILE (200 with the
               file's bytes verbatim), error (400 -1121)
When several faults fire on one request the one added first wins. A faulted
request is charged its weight like any other, except forced 429/418. A forced
429 starts a Retry-After period exactly like a real one, as it goes out (so
--ban-after applies); a forced 418 is a real ban lasting ARG seconds.

Control API (no weight, no latency, no faults, not logged)
----------------------------------------------------------
POST /_control/now?ms=MS        set NOW (``ms=wall`` follows the wall clock)
GET  /_control/now              {"now": NOW}
POST /_control/fault?spec=SPEC  add a fault; GET /_control/fault lists them
POST /_control/reset            clear faults (command-line ones too), counters,
                                weight windows and bans; NOW is kept
GET  /_control/stats            {"requests": {"klines": n, ...},
                                 "status_counts": {"200": n, ...},
                                 "max_used_weight": n}
                                (a reset connection counts as "reset")

--request-log PATH appends one JSON line per API request:
{"t": epoch_ms, "path", "query", "status", "rows", "used_weight"} plus
"fault" when a fault fired ("status" is null for a reset).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import hashlib
import json
import math
import os
import re
import socket
import struct
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving import serve_until_signalled  # noqa: E402

# --------------------------------------------------------------------------
# Intervals and time grid

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS

# Length of each interval in ms; None for the calendar month.
INTERVAL_MS: dict[str, Optional[int]] = {
    "1s": SECOND_MS,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": WEEK_MS,
    "1M": None,
}
SYNTH_INTERVALS = tuple(name for name in INTERVAL_MS if name not in ("1w", "1M"))

FIRST_MONDAY_MS = 4 * DAY_MS  # 1970-01-05, weekly candles open on Mondays
EPOCH_DATE = dt.date(1970, 1, 1)


def on_interval_grid(interval: str, open_ms: int) -> bool:
    """True when open_ms is a legal open time for a candle of this interval."""
    if interval == "1M":
        days, rest = divmod(open_ms, DAY_MS)
        return rest == 0 and (EPOCH_DATE + dt.timedelta(days=days)).day == 1
    if interval == "1w":
        return (open_ms - FIRST_MONDAY_MS) % WEEK_MS == 0
    if interval == "3d":  # 3d candles open on days where day_index % 3 == 1
        return (open_ms - DAY_MS) % (3 * DAY_MS) == 0
    return open_ms % INTERVAL_MS[interval] == 0


def wall_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------
# Exchange error bodies

SYMBOL_RE = re.compile(r"[A-Z0-9_.\-]{1,20}")
LONG_RE = re.compile(r"-?[0-9]{1,20}")
MICROSECOND_THRESHOLD = 10**15  # 16-digit timestamps are microseconds

MSG_UNKNOWN = "An unknown error occurred while processing the request."
MSG_BUSY = "Server is currently overloaded with other requests. Please try again in a few minutes."
MSG_BAD_SYMBOL = "Invalid symbol."
MSG_BAD_INTERVAL = "Invalid interval."
MSG_BAD_DATA = "Invalid data sent for a parameter."
MSG_DUPLICATE = "Duplicate values for a parameter detected."
MSG_BAD_COMBO = "Combination of optional parameters invalid."
MSG_SYMBOL_MISSING = (
    "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
)
MSG_SYMBOL_ILLEGAL = (
    "Illegal characters found in parameter 'symbol'; "
    "legal range is '^[A-Z0-9-_.]{1,20}$'."
)
MSG_SYMBOLS_ILLEGAL = (
    "Illegal characters found in parameter 'symbols'; legal range is "
    "'^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'."
)
NOT_FOUND_BODY = b"<html><body><h1>404 Not Found</h1></body></html>\n"


class ApiError(Exception):
    """An exchange error answer: HTTP status plus the {"code","msg"} body."""

    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


def compact_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def error_body(code: int, msg: str) -> bytes:
    return compact_json({"code": code, "msg": msg})


def too_much_weight_body(limit: int) -> bytes:
    return error_body(
        -1003,
        f"Too much request weight used; current limit is {limit} request weight "
        "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
        "polling the API.",
    )


def banned_body(until_ms: int) -> bytes:
    return error_body(
        -1003,
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans.",
    )


# --------------------------------------------------------------------------
# Loading kline rows

INT_COLUMNS = (0, 6, 8)
DECIMAL_COLUMNS = (1, 2, 3, 4, 5, 7, 9, 10)
DECIMAL_RE = re.compile(r"[0-9]+(\.[0-9]+)?")


class DataError(ValueError):
    """A data file or data option that cannot be used."""


def check_row(row, where: str) -> None:
    if not isinstance(row, list) or len(row) != 12:
        raise DataError(f"{where}: a kline row must be an array of 12 elements")
    for col in INT_COLUMNS:
        if type(row[col]) is not int:
            raise DataError(f"{where}: column {col} must be an integer")
    for col in DECIMAL_COLUMNS:
        if not isinstance(row[col], str) or not DECIMAL_RE.fullmatch(row[col]):
            raise DataError(f"{where}: column {col} must be a decimal string")


def load_json_rows(path: str) -> list[list]:
    with open(path, encoding="utf-8") as handle:
        try:
            rows = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON array of kline rows")
    for index, row in enumerate(rows):
        check_row(row, f"{path}: row {index}")
    return rows


def load_csv_rows(path: str) -> list[list]:
    """Read a data.binance.vision kline CSV into API-shaped rows.

    Columns 0, 6 and 8 become ints (timestamps in microseconds are brought
    down to milliseconds, as the REST API reports them); the other columns
    stay strings exactly as written in the file.
    """
    rows: list[list] = []
    first_line = True
    with open(path, encoding="utf-8", newline="") as handle:
        for line_no, fields in enumerate(csv.reader(handle), start=1):
            if not fields or all(not value.strip() for value in fields):
                continue
            if first_line:
                first_line = False
                if not fields[0].strip().isdigit():
                    continue  # header line
            where = f"{path}: line {line_no}"
            if len(fields) != 12:
                raise DataError(f"{where}: expected 12 columns, found {len(fields)}")
            row: list = list(fields)
            for col in INT_COLUMNS:
                try:
                    row[col] = int(fields[col])
                except ValueError:
                    raise DataError(f"{where}: column {col} is not an integer") from None
            for col in (0, 6):
                if row[col] >= MICROSECOND_THRESHOLD:
                    row[col] //= 1000
            check_row(row, where)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------
# Series: the klines of one (symbol, interval) pair, indexed by position


class StaticSeries:
    """Rows loaded from files, sorted by open time."""

    def __init__(self, rows: list[list]):
        self._rows = rows
        self._open_times = [row[0] for row in rows]

    def __len__(self) -> int:
        return len(self._rows)

    def first_at_or_after(self, ms: int) -> int:
        return bisect.bisect_left(self._open_times, ms)

    def first_after(self, ms: int) -> int:
        return bisect.bisect_right(self._open_times, ms)

    def row(self, index: int) -> list:
        return self._rows[index]


class SynthSeries:
    """COUNT synthetic candles computed on demand from their open time.

    All arithmetic is on integers in units of 1e-8, so the output is the same
    on every machine. The price path is a sum of two triangle waves and
    per-candle noise; each candle closes at the next candle's open price.
    Prices sit on a 0.01 tick and volumes on a 0.00001 lot, like BTCUSDT, and
    every field is printed with 8 decimals. Every candle has high > max(open,
    close), volume > 0 and trades >= 1, so its still-forming version always
    differs from the final one.
    """

    UNIT = 10**8
    TICK = 10**6
    LOT = 10**3

    def __init__(self, symbol: str, interval: str, start_ms: int, count: int):
        self.step = INTERVAL_MS[interval]
        self.start = start_ms
        self.count = count
        self._key = hashlib.blake2b(
            f"{symbol}:{interval}".encode(), digest_size=32
        ).digest()
        seed = int.from_bytes(self._key[:8], "big")
        self._base = (1000 + seed % 59000) * self.UNIT
        self._phase_slow = (seed >> 20) % 997
        self._phase_fast = (seed >> 40) % 89

    def __len__(self) -> int:
        return self.count

    def first_at_or_after(self, ms: int) -> int:
        if ms <= self.start:
            return 0
        return min(self.count, -(-(ms - self.start) // self.step))

    def first_after(self, ms: int) -> int:
        if ms < self.start:
            return 0
        return min(self.count, (ms - self.start) // self.step + 1)

    def _random(self, k: int) -> int:
        digest = hashlib.blake2b(
            k.to_bytes(8, "big", signed=True), digest_size=32, key=self._key
        ).digest()
        return int.from_bytes(digest, "big")

    @staticmethod
    def _triangle(x: int, period: int) -> int:
        """Triangle wave of period `period`, values in [-1000, 1000]."""
        return 4000 * abs(x % period - period // 2) // period - 1000

    def _price(self, k: int, rand: int) -> int:
        base = self._base
        price = (
            base
            + base * self._triangle(k + self._phase_slow, 997) // 5000
            + base * self._triangle(k + self._phase_fast, 89) // 50000
            + base * ((rand & 0xFFFF) % 4001 - 2000) // 1_000_000
        )
        return max(self.TICK, price - price % self.TICK)

    @classmethod
    def _text(cls, units: int) -> str:
        return f"{units // cls.UNIT}.{units % cls.UNIT:08d}"

    def row(self, index: int) -> list:
        open_ms = self.start + index * self.step
        k = open_ms // self.step
        rand = self._random(k)
        open_p = self._price(k, rand)
        close_p = self._price(k + 1, self._random(k + 1))
        top, bottom = max(open_p, close_p), min(open_p, close_p)
        wiggle = max(1, top // 500 // self.TICK)
        high = top + self.TICK * (1 + (rand >> 32) % wiggle)
        low = max(self.TICK, bottom - self.TICK * (1 + (rand >> 64) % wiggle))
        lots = 1 + (rand >> 96) % 2_000_000
        taker_lots = lots * ((rand >> 128) % 1001) // 1000
        volume, taker = lots * self.LOT, taker_lots * self.LOT
        mid = (high + low) // 2
        text = self._text
        return [
            open_ms,
            text(open_p),
            text(high),
            text(low),
            text(close_p),
            text(volume),
            open_ms + self.step - 1,
            text(volume * mid // self.UNIT),
            1 + (rand >> 160) % 20000,
            text(taker),
            text(taker * mid // self.UNIT),
            "0",
        ]


def _quantum(*texts: str) -> Decimal:
    """The finest decimal step among the given number strings."""
    places = max(len(t) - t.index(".") - 1 if "." in t else 0 for t in texts)
    return Decimal(1).scaleb(-places)


def _floor_text(value: Decimal, quantum: Decimal) -> str:
    return format(value.quantize(quantum, rounding=ROUND_DOWN), "f")


def forming_version(row: list) -> list:
    """What the exchange shows for a candle that is still forming.

    Same open and close time; close = open; high and low move halfway towards
    the open; volumes are halved and trades halved. OHLC stays consistent
    (low <= open = close <= high) and taker volumes stay <= their totals.
    """
    out = list(row)
    price_q = _quantum(row[1], row[2], row[3])
    open_p = Decimal(row[1])
    high_gap = (Decimal(row[2]) - open_p) / 2
    low_gap = (open_p - Decimal(row[3])) / 2
    out[2] = _floor_text(open_p + high_gap.quantize(price_q, rounding=ROUND_DOWN), price_q)
    out[3] = _floor_text(open_p - low_gap.quantize(price_q, rounding=ROUND_DOWN), price_q)
    out[4] = row[1]
    base_q = _quantum(row[5], row[9])
    quote_q = _quantum(row[7], row[10])
    out[5] = _floor_text(Decimal(row[5]) / 2, base_q)
    out[9] = _floor_text(Decimal(row[9]) / 2, base_q)
    out[7] = _floor_text(Decimal(row[7]) / 2, quote_q)
    out[10] = _floor_text(Decimal(row[10]) / 2, quote_q)
    out[8] = row[8] // 2
    return out


def _split_option(text: str, parts: int, what: str, shape: str) -> list[str]:
    """Split "A:B:C" option values; the last part may itself contain ':'."""
    pieces = text.split(":", parts - 1)
    if len(pieces) != parts or not all(pieces):
        raise DataError(f"{what} {text!r}: expected {shape}")
    return pieces


def _check_pair(symbol: str, interval: str, what: str) -> None:
    if not SYMBOL_RE.fullmatch(symbol):
        raise DataError(f"{what}: illegal symbol {symbol!r} (need ^[A-Z0-9-_.]{{1,20}}$)")
    if interval not in INTERVAL_MS:
        raise DataError(
            f"{what}: unknown interval {interval!r} (one of {' '.join(INTERVAL_MS)})"
        )


def build_series(data_specs: list[str], synth_specs: list[str]) -> dict:
    """Turn the --data and --synth options into {(symbol, interval): series}."""
    files: dict[tuple[str, str], list[str]] = {}
    for spec in data_specs:
        symbol, interval, path = _split_option(spec, 3, "--data", "SYMBOL:INTERVAL:FILE")
        _check_pair(symbol, interval, "--data")
        files.setdefault((symbol, interval), []).append(path)

    series: dict[tuple[str, str], object] = {}
    for (symbol, interval), paths in files.items():
        by_open_time: dict[int, list] = {}
        for path in paths:
            loader = load_csv_rows if path.lower().endswith(".csv") else load_json_rows
            for row in loader(path):
                by_open_time[row[0]] = row
        rows = [by_open_time[key] for key in sorted(by_open_time)]
        off_grid = sum(1 for row in rows if not on_interval_grid(interval, row[0]))
        if off_grid:
            print(
                f"fake_binance: warning: {symbol}:{interval}: {off_grid} row(s) "
                "open off the interval grid",
                file=sys.stderr,
            )
        series[(symbol, interval)] = StaticSeries(rows)

    for spec in synth_specs:
        symbol, interval, start_text, count_text = _split_option(
            spec, 4, "--synth", "SYMBOL:INTERVAL:START_MS:COUNT")
        _check_pair(symbol, interval, "--synth")
        if interval not in SYNTH_INTERVALS:
            raise DataError(
                f"--synth {spec!r}: interval {interval} has no fixed length; "
                "use --data with a file for 1w and 1M"
            )
        try:
            start, count = int(start_text), int(count_text)
        except ValueError:
            raise DataError(f"--synth {spec!r}: START_MS and COUNT must be integers") from None
        if start < 0 or count < 1:
            raise DataError(f"--synth {spec!r}: need START_MS >= 0 and COUNT >= 1")
        if not on_interval_grid(interval, start):
            raise DataError(f"--synth {spec!r}: START_MS is not on the {interval} grid")
        if (symbol, interval) in series:
            raise DataError(f"--synth {spec!r}: {symbol}:{interval} already has data")
        series[(symbol, interval)] = SynthSeries(symbol, interval, start, count)
    return series


# --------------------------------------------------------------------------
# Faults

REPLY_FAULTS = {"500", "502", "503", "504", "429", "418", "malformed", "body", "error"}
TRANSPORT_FAULTS = {"reset", "truncate", "stall"}
FAULT_KINDS = REPLY_FAULTS | TRANSPORT_FAULTS | {"delay"}
FAULT_DEFAULT_ARG = {"429": "1", "418": "120", "stall": "30", "delay": "1"}


@dataclass
class Fault:
    spec: str
    suffix: str
    params: dict  # query parameters a request must carry to count
    nth: Optional[int]  # None: every matching request
    and_later: bool
    kind: str
    seconds: float = 0.0  # 429/418 Retry-After, stall and delay durations
    body: bytes = b""  # for kind "body"
    seen: int = 0  # matching requests counted so far

    def observe(self, path: str, params: dict) -> bool:
        """Count a request; True when this fault fires on it."""
        if self.suffix != "*" and not path.endswith(self.suffix):
            return False
        if any(params.get(name) != value for name, value in self.params.items()):
            return False
        self.seen += 1
        if self.nth is None:
            return True
        return self.seen == self.nth or (self.and_later and self.seen > self.nth)


def parse_fault(spec: str) -> Fault:
    pieces = spec.split(":", 3)
    if len(pieces) < 3:
        raise ValueError(f"fault {spec!r}: expected PATH_SUFFIX:NTH:KIND[:ARG]")
    suffix, nth_text, kind = pieces[:3]
    arg = pieces[3] if len(pieces) == 4 else None
    suffix, _, query = suffix.partition("?")
    if not suffix:
        raise ValueError(f"fault {spec!r}: empty PATH_SUFFIX (use * for every path)")
    params = {}
    for item in query.split("&") if query else []:
        name, equals, value = item.partition("=")
        if not name or not equals:
            raise ValueError(f"fault {spec!r}: query filter {item!r} is not NAME=VALUE")
        params[name] = value
    if nth_text == "*":
        nth, and_later = None, False
    else:
        and_later = nth_text.endswith("+")
        digits = nth_text[:-1] if and_later else nth_text
        if not digits.isdigit() or int(digits) < 1:
            raise ValueError(f"fault {spec!r}: NTH must be N, N+ or * with N >= 1")
        nth = int(digits)
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault {spec!r}: unknown kind {kind!r}")
    fault = Fault(spec, suffix, params, nth, and_later, kind)
    if kind == "body":
        if not arg:
            raise ValueError(f"fault {spec!r}: kind body needs a file name as ARG")
        with open(arg, "rb") as handle:
            fault.body = handle.read()
    elif kind in FAULT_DEFAULT_ARG:
        text = arg if arg is not None else FAULT_DEFAULT_ARG[kind]
        try:
            seconds = int(text) if kind in ("429", "418") else float(text)
        except ValueError:
            raise ValueError(f"fault {spec!r}: ARG must be a number of seconds") from None
        if not 0 <= seconds < 10**7:
            raise ValueError(f"fault {spec!r}: ARG out of range")
        fault.seconds = seconds
    elif arg is not None:
        raise ValueError(f"fault {spec!r}: kind {kind} takes no ARG")
    return fault


# --------------------------------------------------------------------------
# Request weight and bans

BAN_SECONDS = 120


@dataclass
class Verdict:
    status: int  # 200 (admitted), 429 or 418
    used: int
    retry_after: int = 0
    until_ms: int = 0  # end of the ban, for 418
    backoff_until: float = 0.0  # for 429: when its Retry-After period ends


@dataclass
class _ClientState:
    window: int = -1
    used: int = 0
    backoff_from: float = 0.0  # a 429's Retry-After runs from its delivery
    backoff_until: float = 0.0  # until then
    ignored: int = 0  # requests sent while backoff was running
    banned_until: float = 0.0


def _seconds_left(until: float, now: float) -> int:
    return max(1, math.ceil(until - now))


class RateLimiter:
    """REQUEST_WEIGHT per client IP in fixed wall-clock minutes. Not locked:
    the Exchange calls it under its own lock."""

    def __init__(self, limit: int, ban_after: int):
        self.limit = limit
        self.ban_after = ban_after
        self.max_used = 0
        self._clients: dict[str, _ClientState] = {}

    def reset(self) -> None:
        self.max_used = 0
        self._clients.clear()

    def _state(self, ip: str, now: float) -> _ClientState:
        state = self._clients.setdefault(ip, _ClientState())
        window = int(now // 60)
        if state.window != window:
            state.window, state.used = window, 0
        return state

    def used(self, ip: str, now: float) -> int:
        return self._state(ip, now).used

    def _ban(self, state: _ClientState, seconds: float, now: float) -> Verdict:
        state.banned_until = now + seconds
        state.backoff_until, state.ignored = 0.0, 0
        return Verdict(418, state.used, max(0, math.ceil(seconds)),
                       int(state.banned_until * 1000))

    def admit(self, ip: str, weight: int, now: float, arrival: Optional[float] = None) -> Verdict:
        """Decide at `now` on a request that arrived at `arrival` (default
        `now`)."""
        arrival = now if arrival is None else arrival
        state = self._state(ip, now)
        if state.banned_until > now:
            return Verdict(418, state.used, _seconds_left(state.banned_until, now),
                           int(state.banned_until * 1000))
        if state.backoff_from <= arrival < state.backoff_until:
            state.ignored += 1
            if state.ignored > self.ban_after:
                return self._ban(state, BAN_SECONDS, now)
        else:
            state.ignored = 0
        if state.used + weight > self.limit:
            window_end = (state.window + 1) * 60.0
            return Verdict(429, state.used, _seconds_left(window_end, now),
                           backoff_until=window_end)
        state.used += weight
        self.max_used = max(self.max_used, state.used)
        return Verdict(200, state.used)

    def start_backoff(self, ip: str, until: float, now: float) -> None:
        """A 429 is going out to the client: requests that arrive from now
        until `until` count towards --ban-after."""
        state = self._state(ip, now)
        if state.backoff_until <= now:
            state.backoff_from = now
        state.backoff_until = max(state.backoff_until, until)

    def force_ban(self, ip: str, seconds: float, now: float) -> Verdict:
        return self._ban(self._state(ip, now), seconds, now)


# --------------------------------------------------------------------------
# The exchange: data, clock, endpoints, faults, statistics


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list = field(default_factory=list)
    rows: int = 0


@dataclass
class Outcome:
    """Everything the HTTP handler needs to answer one API request."""

    reply: Reply
    used_weight: int
    fault: Optional[Fault] = None
    arrival: float = 0.0
    path: str = ""
    query: dict = field(default_factory=dict)
    stat_name: str = ""
    # For a 429 over the weight limit: when its Retry-After period ends (the
    # period itself starts as the answer goes out).
    backoff_until: float = 0.0


class Params:
    """Query parameters that remember which ones an endpoint read."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._values: dict[str, str] = {}
        for name, value in pairs:
            if name in self._values:
                raise ApiError(400, -1101, MSG_DUPLICATE)
            self._values[name] = value
        self._read: set[str] = set()

    def get(self, name: str) -> Optional[str]:
        self._read.add(name)
        return self._values.get(name)

    def get_long(self, name: str) -> Optional[int]:
        value = self.get(name)
        if value is None:
            return None
        if value == "":
            raise ApiError(400, -1105, f"Parameter '{name}' was empty.")
        if not LONG_RE.fullmatch(value):
            raise ApiError(
                400, -1100,
                f"Illegal characters found in parameter '{name}'; "
                "legal range is '^-?[0-9]{1,20}$'.",
            )
        return int(value)

    def require_all_read(self) -> None:
        read = sum(1 for name in self._values if name in self._read)
        if read != len(self._values):
            raise ApiError(
                400, -1104,
                f"Not all sent parameters were read; read {read} parameter(s) "
                f"but was sent {len(self._values)}.",
            )


TIME_ZONE_RE = re.compile(r"([+-]?)([0-9]{1,2})(?::([0-9]{2}))?")
KNOWN_QUOTES = (
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "BTC", "ETH",
    "BNB", "EUR", "TRY", "BRL", "GBP", "JPY", "AUD",
)


def split_assets(symbol: str) -> tuple[str, str]:
    for quote in KNOWN_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


@dataclass
class Endpoint:
    stat_name: str
    weight: int
    handler: Callable


class Exchange:
    """State shared by all connections. One lock guards the clock, the
    faults, the rate limiter and the counters; kline data is read-only."""

    def __init__(self, series: dict, now_ms: Optional[int], weight_limit: int,
                 ban_after: int, latency_ms: int, faults: list[Fault],
                 request_log: Optional[str], verbose: bool):
        self.series = series
        self.symbols = sorted({symbol for symbol, _ in series})
        self.weight_limit = weight_limit
        self.latency = latency_ms / 1000.0
        self.verbose = verbose
        self._lock = threading.Lock()
        self._fixed_now = now_ms
        self._faults = list(faults)
        self._limiter = RateLimiter(weight_limit, ban_after)
        self._request_counts: Counter = Counter()
        self._status_counts: Counter = Counter()
        self._log_lock = threading.Lock()
        self._log = open(request_log, "a", encoding="utf-8") if request_log else None
        self.endpoints = {
            "/api/v3/ping": Endpoint("ping", 1, self.api_ping),
            "/api/v3/time": Endpoint("time", 1, self.api_time),
            "/api/v3/exchangeInfo": Endpoint("exchangeInfo", 20, self.api_exchange_info),
            "/api/v3/klines": Endpoint("klines", 2, self.api_klines),
        }

    def close(self) -> None:
        if self._log:
            with self._log_lock:
                self._log.close()
                self._log = None

    # ---- clock and control ------------------------------------------------

    def now_ms(self) -> int:
        with self._lock:
            fixed = self._fixed_now
        return wall_ms() if fixed is None else fixed

    def set_now(self, text: Optional[str]) -> int:
        if text == "wall":
            value = None
        elif text is not None and LONG_RE.fullmatch(text):
            value = int(text)
        else:
            raise ValueError("ms must be an integer number of milliseconds or 'wall'")
        with self._lock:
            self._fixed_now = value
        return self.now_ms()

    def add_fault(self, spec: Optional[str]) -> None:
        if not spec:
            raise ValueError("missing spec")
        fault = parse_fault(spec)
        with self._lock:
            self._faults.append(fault)

    def list_faults(self) -> list:
        with self._lock:
            return [{"spec": f.spec, "seen": f.seen} for f in self._faults]

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._limiter.reset()
            self._request_counts.clear()
            self._status_counts.clear()

    def stats(self) -> dict:
        with self._lock:
            return {
                "requests": dict(self._request_counts),
                "status_counts": dict(self._status_counts),
                "max_used_weight": self._limiter.max_used,
            }

    # ---- request pipeline -------------------------------------------------

    def process(self, ip: str, method: str, path: str, query: str) -> Outcome:
        """Decide the answer to one API request (sleeping for latency and
        delay faults on the way). The handler delivers it."""
        arrival = time.time()
        pairs = parse_qsl(query, keep_blank_values=True)
        endpoint = self.endpoints.get(path) if method == "GET" else None
        stat_name = endpoint.stat_name if endpoint else path.rsplit("/", 1)[-1] or "/"
        with self._lock:
            self._request_counts[stat_name] += 1
            fired = [fault for fault in self._faults if fault.observe(path, dict(pairs))]
        fault = fired[0] if fired else None

        if self.latency:
            time.sleep(self.latency)
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)

        outcome = Outcome(Reply(404, NOT_FOUND_BODY, "text/html"), 0, fault,
                          arrival, path, dict(pairs), stat_name)
        if endpoint is None:
            with self._lock:
                outcome.used_weight = self._limiter.used(ip, time.time())
            if fault and fault.kind in REPLY_FAULTS:
                outcome.reply = self._fault_reply(fault, ip)
            return outcome

        forced = fault.kind if fault and fault.kind in ("429", "418") else None
        with self._lock:
            verdict = self._limiter.admit(ip, 0 if forced else endpoint.weight, time.time(),
                                          arrival)
        outcome.used_weight = verdict.used
        if fault and fault.kind in REPLY_FAULTS:
            outcome.reply = self._fault_reply(fault, ip)
        elif verdict.status == 429:
            outcome.reply = Reply(429, too_much_weight_body(self.weight_limit),
                                  headers=[("Retry-After", str(verdict.retry_after))])
            outcome.backoff_until = verdict.backoff_until
        elif verdict.status == 418:
            outcome.reply = Reply(418, banned_body(verdict.until_ms),
                                  headers=[("Retry-After", str(verdict.retry_after))])
        else:
            outcome.reply = self._call(endpoint, pairs)
        return outcome

    def _call(self, endpoint: Endpoint, pairs: list) -> Reply:
        try:
            value, rows = endpoint.handler(Params(pairs))
        except ApiError as exc:
            return Reply(exc.status, error_body(exc.code, exc.msg))
        except Exception:  # a bug in the fake: answer like the exchange would
            traceback.print_exc()
            return Reply(500, error_body(-1000, MSG_UNKNOWN))
        return Reply(200, compact_json(value), rows=rows)

    def _fault_reply(self, fault: Fault, ip: str) -> Reply:
        kind = fault.kind
        if kind in ("500", "502", "504"):
            return Reply(int(kind), error_body(-1000, MSG_UNKNOWN))
        if kind == "503":
            return Reply(503, error_body(-1008, MSG_BUSY))
        if kind == "429":  # its Retry-After period starts on delivery
            return Reply(429, too_much_weight_body(self.weight_limit),
                         headers=[("Retry-After", str(int(fault.seconds)))])
        if kind == "418":
            with self._lock:
                verdict = self._limiter.force_ban(ip, fault.seconds, time.time())
            return Reply(418, banned_body(verdict.until_ms),
                         headers=[("Retry-After", str(int(fault.seconds)))])
        if kind == "malformed":
            return Reply(200, b'[[1,"2",')
        if kind == "body":
            return Reply(200, fault.body)
        if kind == "error":
            return Reply(400, error_body(-1121, MSG_BAD_SYMBOL))
        raise AssertionError(f"not a reply fault: {kind}")

    def delivering(self, ip: str, outcome: Outcome) -> None:
        """The answer goes out now: a 429's Retry-After period starts."""
        if outcome.reply.status != 429:
            return
        now = time.time()
        until = outcome.backoff_until
        if outcome.fault and outcome.fault.kind == "429":
            until = max(until, now + outcome.fault.seconds)
        with self._lock:
            self._limiter.start_backoff(ip, until, now)

    def record(self, outcome: Outcome) -> None:
        """Count an answer about to be delivered and append it to the request
        log. A reset connection has no status; rows only count when the body
        is delivered whole."""
        kind = outcome.fault.kind if outcome.fault else None
        status = None if kind == "reset" else outcome.reply.status
        rows = 0 if kind in TRANSPORT_FAULTS else outcome.reply.rows
        with self._lock:
            self._status_counts["reset" if status is None else str(status)] += 1
        if self._log is None:
            return
        entry = {
            "t": round(outcome.arrival * 1000, 3),
            "path": outcome.path,
            "query": outcome.query,
            "status": status,
            "rows": rows,
            "used_weight": outcome.used_weight,
        }
        if outcome.fault:
            entry["fault"] = outcome.fault.kind
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._log_lock:
            if self._log:
                self._log.write(line)
                self._log.flush()

    # ---- endpoints: each returns (JSON value, number of kline rows) --------

    def api_ping(self, params: Params):
        params.require_all_read()
        return {}, 0

    def api_time(self, params: Params):
        params.require_all_read()
        return {"serverTime": self.now_ms()}, 0

    def _known_symbol(self, symbol: str) -> str:
        if not SYMBOL_RE.fullmatch(symbol):
            raise ApiError(400, -1100, MSG_SYMBOL_ILLEGAL)
        if symbol not in self.symbols:
            raise ApiError(400, -1121, MSG_BAD_SYMBOL)
        return symbol

    def api_exchange_info(self, params: Params):
        symbol = params.get("symbol")
        symbols_text = params.get("symbols")
        permissions = params.get("permissions")
        status = params.get("symbolStatus")
        params.get("showPermissionSets")
        if sum(v is not None for v in (symbol, symbols_text, permissions, status)) > 1:
            raise ApiError(400, -1128, MSG_BAD_COMBO)
        params.require_all_read()

        chosen = self.symbols
        if symbol is not None:
            chosen = [self._known_symbol(symbol)]
        elif symbols_text is not None:
            try:
                wanted = json.loads(symbols_text)
            except json.JSONDecodeError:
                wanted = None
            if (not isinstance(wanted, list) or not wanted
                    or not all(isinstance(s, str) and SYMBOL_RE.fullmatch(s) for s in wanted)):
                raise ApiError(400, -1100, MSG_SYMBOLS_ILLEGAL)
            chosen = sorted({self._known_symbol(s) for s in wanted})
        elif status is not None:
            if status not in ("TRADING", "HALT", "BREAK"):
                raise ApiError(400, -1130, MSG_BAD_DATA)
            chosen = self.symbols if status == "TRADING" else []

        entries = []
        for name in chosen:
            base, quote = split_assets(name)
            entries.append({
                "symbol": name,
                "status": "TRADING",
                "baseAsset": base,
                "baseAssetPrecision": 8,
                "quoteAsset": quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [],
                "permissions": [],
                "permissionSets": [["SPOT"]],
            })
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                 "intervalNum": 1, "limit": self.weight_limit},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE",
                 "intervalNum": 5, "limit": 300000},
            ],
            "exchangeFilters": [],
            "symbols": entries,
        }, 0

    def api_klines(self, params: Params):
        symbol = params.get("symbol")
        if not symbol:
            raise ApiError(400, -1102, MSG_SYMBOL_MISSING)
        if not SYMBOL_RE.fullmatch(symbol):
            raise ApiError(400, -1100, MSG_SYMBOL_ILLEGAL)
        interval = params.get("interval")
        if interval not in INTERVAL_MS:
            raise ApiError(400, -1120, MSG_BAD_INTERVAL)
        start = params.get_long("startTime")
        end = params.get_long("endTime")
        limit = params.get_long("limit")
        if limit is None:
            limit = 500
        elif not 1 <= limit <= 1000:
            raise ApiError(400, -1130, MSG_BAD_DATA)
        time_zone = params.get("timeZone")
        if time_zone is not None and not _is_utc_offset(time_zone):
            raise ApiError(400, -1130, MSG_BAD_DATA)
        params.require_all_read()
        if symbol not in self.symbols:
            raise ApiError(400, -1121, MSG_BAD_SYMBOL)

        # startTime/endTime may be given in microseconds.
        if start is not None and start >= MICROSECOND_THRESHOLD:
            start = -(-start // 1000)
        if end is not None and end >= MICROSECOND_THRESHOLD:
            end //= 1000

        series = self.series.get((symbol, interval))
        if series is None:
            return [], 0
        now = self.now_ms()
        stop = series.first_after(now if end is None else min(now, end))
        if start is not None:
            first = series.first_at_or_after(start)
            stop = min(stop, first + limit)
        else:
            first = max(0, stop - limit)
        rows = []
        for index in range(first, stop):
            row = series.row(index)
            rows.append(forming_version(row) if row[0] <= now <= row[6] else row)
        return rows, len(rows)


def _is_utc_offset(text: str) -> bool:
    """timeZone values that keep UTC candles (the only ones the fake serves)."""
    match = TIME_ZONE_RE.fullmatch(text)
    return bool(match) and int(match.group(2)) == 0 and int(match.group(3) or 0) == 0


# --------------------------------------------------------------------------
# HTTP layer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-binance/1.0"
    sys_version = ""

    server: "FakeBinanceServer"

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 (signature of the base class)
        if self.server.exchange.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._discard_request_body()
        url = urlsplit(self.path)
        if url.path == "/_control" or url.path.startswith("/_control/"):
            self._control(method, url.path[len("/_control/"):], url.query)
            return
        exchange = self.server.exchange
        outcome = exchange.process(self.client_address[0], method, url.path, url.query)
        # Record first, so a client that got its answer always finds it in
        # the stats and the request log.
        exchange.record(outcome)
        exchange.delivering(self.client_address[0], outcome)
        self._deliver(outcome)

    def _discard_request_body(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True  # not worth decoding; just hang up afterwards
            return
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > 0:
            self.rfile.read(int(length))

    def _send(self, status: int, body: bytes, content_type: str,
              headers: list, weight: Optional[int]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if weight is not None:
            self.send_header("x-mbx-used-weight", str(weight))
            self.send_header("x-mbx-used-weight-1m", str(weight))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _deliver(self, outcome: Outcome) -> None:
        """Write the answer, or break the connection as the fault says."""
        reply = outcome.reply
        kind = outcome.fault.kind if outcome.fault else None
        if kind == "reset":
            self._reset_connection()
            return
        self._send(reply.status, reply.body, reply.content_type, reply.headers,
                   outcome.used_weight)
        if kind == "truncate":
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self.close_connection = True
        elif kind == "stall":
            self.wfile.flush()
            time.sleep(outcome.fault.seconds)
            self.close_connection = True
        else:
            self.wfile.write(reply.body)

    def _reset_connection(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0) and no answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        except OSError:
            pass
        self.rfile.close()  # releases the file's reference so close() is real
        self.connection.close()

    def _control(self, method: str, name: str, query: str) -> None:
        exchange = self.server.exchange
        params = dict(parse_qsl(query, keep_blank_values=True))

        def add_fault():
            exchange.add_fault(params.get("spec"))
            return {"faults": exchange.list_faults()}

        def reset():
            exchange.reset()
            return {"ok": True}

        routes = {
            ("GET", "stats"): exchange.stats,
            ("GET", "now"): lambda: {"now": exchange.now_ms()},
            ("POST", "now"): lambda: {"now": exchange.set_now(params.get("ms"))},
            ("GET", "fault"): lambda: {"faults": exchange.list_faults()},
            ("POST", "fault"): add_fault,
            ("POST", "reset"): reset,
        }
        action = routes.get((method, name))
        if action is not None:
            try:
                status, body = 200, action()
            except (ValueError, OSError) as exc:
                status, body = 400, {"error": str(exc)}
        elif any(route_name == name for _, route_name in routes):
            status, body = 405, {"error": f"{method} not allowed on /_control/{name}"}
        else:
            status, body = 404, {"error": f"unknown control endpoint /_control/{name}"}
        payload = compact_json(body)
        self._send(status, payload, "application/json", [], None)
        self.wfile.write(payload)


class FakeBinanceServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, exchange: Exchange):
        self.exchange = exchange
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        """Clients hanging up (often on purpose, in fault tests) are normal."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)) and not self.exchange.verbose:
            return
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------
# Command line


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="fake_binance.py",
        description="Loopback fake of the Binance spot REST API (see the module docstring).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--port-file", metavar="PATH",
                        help="write the bound port here once listening")
    parser.add_argument("--data", action="extend", nargs="+", default=[],
                        metavar="SYMBOL:INTERVAL:FILE")
    parser.add_argument("--synth", action="extend", nargs="+", default=[],
                        metavar="SYMBOL:INTERVAL:START_MS:COUNT")
    parser.add_argument("--now", type=int, metavar="MS", help="freeze the exchange clock at MS")
    parser.add_argument("--weight-limit", type=int, default=6000, metavar="N")
    parser.add_argument("--latency-ms", type=int, default=0, metavar="N")
    parser.add_argument("--ban-after", type=int, default=5, metavar="N",
                        help="requests tolerated during a 429's Retry-After before a 418")
    parser.add_argument("--request-log", metavar="PATH")
    parser.add_argument("--fault", action="extend", nargs="+", default=[], metavar="SPEC")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    for name in ("weight_limit", "latency_ms", "ban_after"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    try:
        series = build_series(args.data, args.synth)
        faults = [parse_fault(spec) for spec in args.fault]
        exchange = Exchange(series, args.now, args.weight_limit, args.ban_after,
                            args.latency_ms, faults, args.request_log, args.verbose)
        server_class = FakeBinanceServer
        if ":" in args.host:
            server_class = type("FakeBinanceServer6", (FakeBinanceServer,),
                                {"address_family": socket.AF_INET6})
        server = server_class((args.host, args.port), exchange)
    except (ValueError, OSError) as exc:
        print(f"fake_binance: error: {exc}", file=sys.stderr)
        return 2

    port = server.server_address[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="fake-binance-server", daemon=True)
    worker.start()

    def stop_server():
        server.shutdown()
        server.server_close()
        exchange.close()
    serve_until_signalled(f"http://{host}:{port}", port, args.port_file, stop_server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
