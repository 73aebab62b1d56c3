#!/usr/bin/env python3
"""Tests for tests/fakes/fake_binance.py (standard library unittest).

Run from anywhere:  python3 tests/fakes/test_fake_binance.py [-v]

Each test class talks over loopback HTTP to fake processes started on port 0
(the port is read from --port-file) and stopped with SIGTERM at the end.
"""

from __future__ import annotations

import datetime as dt
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
FAKE = HERE / "fake_binance.py"
DATA = HERE.parent / "samples" / "binance"
H1_JSON = DATA / "finom-static-klines" / "BTCUSDT" / "1h" / "2022-01-01.json"
H1_CSV = DATA / "batmayacagiz" / "BTCUSDT-1h-2022-01.csv"
M5_RAW = DATA / "patten-trainer" / "BTCUSDT_5m.json"

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
JAN1_2022 = 1640995200000  # first open time in the 1h sample
LAST_1H = JAN1_2022 + 743 * HOUR  # 2022-01-31 23:00, last open time in it
LATER = 1900000000000  # 2030-03-17: every sample candle is final by then
SYNTH_START = 1577836800000  # 2020-01-01, also on the 3d grid
SYNTH_COUNT = 10_000_000  # 1m candles: about 19 years

SYNTH_ARGS = [
    "--synth", f"SYNUSDT:1m:{SYNTH_START}:{SYNTH_COUNT}",
    "--synth", f"SYNUSDT:3d:{SYNTH_START}:1000",
]

MSG_TOO_MUCH = (
    "Too much request weight used; current limit is {} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)


def utc_ms(*fields) -> int:
    return int(dt.datetime(*fields, tzinfo=dt.timezone.utc).timestamp() * 1000)


def load_rows(path: Path) -> list:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def load_fake_module():
    """The fake as a module, for tests of its parts."""
    name = "fake_binance_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FAKE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
    spec.loader.exec_module(module)
    return module


def wait_for_window_margin(seconds: float) -> None:
    """Sleep into the next wall-clock minute if fewer than `seconds` are left
    in this one, so a weight test cannot straddle a window reset."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.05)


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def weight(self) -> int:
        return int(self.headers["X-MBX-USED-WEIGHT-1M"])


class FakeBinance:
    """One fake_binance.py process on a free loopback port."""

    def __init__(self, *args: str):
        self.args = [str(arg) for arg in args]
        self.proc = None
        self.port = None

    def start(self) -> "FakeBinance":
        self.tmp = tempfile.mkdtemp(prefix="fake_binance_test_")
        self.port_file = os.path.join(self.tmp, "port")
        self._out = open(os.path.join(self.tmp, "stdout"), "w+")
        self._err = open(os.path.join(self.tmp, "stderr"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE), "--port", "0", "--port-file", self.port_file,
             *self.args],
            stdout=self._out, stderr=self._err,
        )
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self._err.seek(0)
                raise RuntimeError(f"fake did not start: {self._err.read()}")
            time.sleep(0.01)
        with open(self.port_file) as handle:
            self.port = int(handle.read())
        return self

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        finally:
            self.port_file_left = os.path.exists(self.port_file)
            self._out.close()
            self._err.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def stdout(self) -> str:
        self._out.flush()
        with open(self._out.name) as handle:
            return handle.read()

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, path: str, params=None, method: str = "GET",
                timeout: float = 10) -> Response:
        url = path + ("?" + urlencode(params) if params else "")
        conn = self.connection(timeout)
        try:
            conn.request(method, url)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def klines(self, **params) -> Response:
        return self.request("/api/v3/klines", params)

    def control(self, name: str, method: str = "POST", **params) -> Response:
        return self.request(f"/_control/{name}", params, method)


SERVERS: dict[str, FakeBinance] = {}
TMP = tempfile.mkdtemp(prefix="fake_binance_data_")
CAL_WEEKLY = os.path.join(TMP, "weekly.json")
CAL_MONTHLY = os.path.join(TMP, "monthly.json")
REQUEST_LOG = os.path.join(TMP, "requests.jsonl")
WEEK_OPENS = [utc_ms(2024, 1, 1) + i * 7 * DAY for i in range(4)]  # Mondays
MONTH_OPENS = [utc_ms(2024, m, 1) for m in range(1, 6)]  # Jan .. May 2024


def hand_row(open_ms: int, close_ms: int, base: int) -> list:
    return [open_ms, f"{base}.00000000", f"{base + 50}.00000000", f"{base - 40}.00000000",
            f"{base + 10}.00000000", "120.50000000", close_ms, f"{base * 120}.50000000",
            1500 + base % 7, "60.25000000", f"{base * 60}.25000000", "0"]


def write_rows_one_per_line(path: str, rows: list) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[\n" + ",\n".join("  " + compact(r).decode() for r in rows) + "\n]\n")


def setUpModule():
    weekly = [hand_row(t, t + 7 * DAY - 1, 40000 + i * 100) for i, t in enumerate(WEEK_OPENS)]
    monthly = [hand_row(t, nxt - 1, 42000 + i * 500)
               for i, (t, nxt) in enumerate(zip(MONTH_OPENS, MONTH_OPENS[1:]))]
    write_rows_one_per_line(CAL_WEEKLY, weekly)
    write_rows_one_per_line(CAL_MONTHLY, monthly)
    SERVERS["main"] = FakeBinance(
        "--data", f"BTCUSDT:1h:{H1_JSON}", f"CSVBTC:1h:{H1_CSV}",
        "--data", f"MERGED:1h:{H1_JSON}", "--data", f"MERGED:1h:{H1_CSV}",
        "--data", f"BTCUSDT:5m:{M5_RAW}",
        "--data", f"CAL:1w:{CAL_WEEKLY}", f"CAL:1M:{CAL_MONTHLY}",
        *SYNTH_ARGS, "--now", LATER,
    )
    SERVERS["limited"] = FakeBinance("--weight-limit", 10, "--ban-after", 2,
                                     *SYNTH_ARGS, "--now", LATER)
    SERVERS["slow"] = FakeBinance("--latency-ms", 300, "--request-log", REQUEST_LOG,
                                  "--fault", "time:2:503", "--data", f"BTCUSDT:1h:{H1_JSON}",
                                  "--now", LATER)
    for fake in SERVERS.values():
        fake.start()


def tearDownModule():
    for fake in SERVERS.values():
        if fake.proc and fake.proc.poll() is None:
            fake.stop()
    shutil.rmtree(TMP, ignore_errors=True)


class FakeTestCase(unittest.TestCase):
    server_name = "main"

    def setUp(self):
        self.fake = SERVERS[self.server_name]
        self.assertEqual(self.fake.control("reset").status, 200)
        self.set_now(LATER)

    def set_now(self, ms) -> None:
        self.assertEqual(self.fake.control("now", ms=ms).json(), {"now": ms})

    def get_rows(self, **params) -> list:
        resp = self.fake.klines(**params)
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.headers["Content-Type"], "application/json")
        return resp.json()

    def assertApiError(self, resp: Response, status: int, code: int, msg=None):
        self.assertEqual(resp.status, status, resp.body)
        self.assertEqual(resp.headers["Content-Type"], "application/json")
        body = resp.json()
        self.assertEqual(body["code"], code, body)
        if msg is not None:
            self.assertEqual(body["msg"], msg)
            self.assertEqual(resp.body, compact({"code": code, "msg": msg}))
        return body

    def assertValidCandle(self, row, interval_ms=None):
        self.assertEqual(len(row), 12)
        for col in (0, 6, 8):
            self.assertIsInstance(row[col], int)
        for col in (1, 2, 3, 4, 5, 7, 9, 10):
            self.assertRegex(row[col], r"^[0-9]+\.[0-9]{8}$")
        o, h, l, c = (Decimal(v) for v in row[1:5])
        self.assertLessEqual(l, min(o, c), row)
        self.assertGreaterEqual(h, max(o, c), row)
        self.assertLessEqual(Decimal(row[9]), Decimal(row[5]), row)
        self.assertLessEqual(Decimal(row[10]), Decimal(row[7]), row)
        self.assertGreaterEqual(row[8], 0)
        self.assertEqual(row[11], "0")
        if interval_ms:
            self.assertEqual(row[6], row[0] + interval_ms - 1)

    def assertFormingVersionOf(self, open_row, final_row):
        """open_row is the still-forming image of final_row."""
        self.assertNotEqual(open_row, final_row)
        self.assertEqual(open_row[0], final_row[0])
        self.assertEqual(open_row[6], final_row[6])
        self.assertEqual(open_row[4], open_row[1], "close of a forming candle = open")
        self.assertEqual(open_row[1], final_row[1])
        self.assertLessEqual(Decimal(open_row[2]), Decimal(final_row[2]))
        self.assertGreaterEqual(Decimal(open_row[3]), Decimal(final_row[3]))
        self.assertLess(Decimal(open_row[5]), Decimal(final_row[5]))
        self.assertLess(open_row[8], final_row[8])
        self.assertValidCandle(open_row)


class TestPaging(FakeTestCase):
    def setUp(self):
        super().setUp()
        self.expected = load_rows(H1_JSON)

    def test_start_time_pages_cover_the_file_exactly(self):
        got, start, sizes = [], JAN1_2022, []
        while True:
            page = self.get_rows(symbol="BTCUSDT", interval="1h", startTime=start, limit=300)
            if not page:
                break
            sizes.append(len(page))
            got += page
            start = page[-1][6] + 1
        self.assertEqual(sizes, [300, 300, 144])
        self.assertEqual(got, self.expected)

    def test_start_and_end_time_are_inclusive(self):
        rows = self.get_rows(symbol="BTCUSDT", interval="1h",
                             startTime=JAN1_2022 + 5 * HOUR, endTime=JAN1_2022 + 10 * HOUR)
        self.assertEqual(rows, self.expected[5:11])

    def test_limit_caps_a_start_end_window(self):
        rows = self.get_rows(symbol="BTCUSDT", interval="1h", startTime=JAN1_2022,
                             endTime=JAN1_2022 + 100 * HOUR, limit=7)
        self.assertEqual(rows, self.expected[:7])

    def test_start_time_between_grid_points_starts_at_next_candle(self):
        rows = self.get_rows(symbol="BTCUSDT", interval="1h", startTime=JAN1_2022 + 1, limit=2)
        self.assertEqual(rows, self.expected[1:3])

    def test_start_before_first_candle_and_start_after_end(self):
        self.assertEqual(self.get_rows(symbol="BTCUSDT", interval="1h", startTime=0, limit=2),
                         self.expected[:2])
        self.assertEqual(self.get_rows(symbol="BTCUSDT", interval="1h",
                                       startTime=JAN1_2022 + 10 * HOUR,
                                       endTime=JAN1_2022 + 5 * HOUR), [])
        self.assertEqual(self.get_rows(symbol="BTCUSDT", interval="1h",
                                       startTime=LAST_1H + HOUR), [])

    def test_default_limit_is_500(self):
        self.assertEqual(self.get_rows(symbol="BTCUSDT", interval="1h", startTime=0),
                         self.expected[:500])
        self.assertEqual(self.get_rows(symbol="BTCUSDT", interval="1h"), self.expected[-500:])

    def test_newest_rows_without_start_time(self):
        self.assertEqual(self.get_rows(symbol="BTCUSDT", interval="1h", limit=10),
                         self.expected[-10:])
        for end in (JAN1_2022 + 99 * HOUR, JAN1_2022 + 99 * HOUR + 1):
            self.assertEqual(self.get_rows(symbol="BTCUSDT", interval="1h", endTime=end, limit=5),
                             self.expected[95:100])

    def test_microsecond_start_time(self):
        rows = self.get_rows(symbol="BTCUSDT", interval="1h",
                             startTime=(JAN1_2022 + 5 * HOUR) * 1000, limit=1)
        self.assertEqual(rows, self.expected[5:6])

    def test_known_symbol_without_data_for_interval_is_empty(self):
        self.assertEqual(self.get_rows(symbol="BTCUSDT", interval="1m"), [])

    def test_body_is_byte_identical_to_exchange_output(self):
        resp = self.fake.klines(symbol="BTCUSDT", interval="5m", limit=1000)
        self.assertEqual(resp.body, M5_RAW.read_bytes())
        resp = self.fake.klines(symbol="BTCUSDT", interval="1h", limit=1000)
        self.assertEqual(resp.body, compact(self.expected))

    def test_keep_alive_reuses_one_connection(self):
        conn = self.fake.connection()
        try:
            sockets = []
            for path in ("/api/v3/ping", "/api/v3/time",
                         "/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=3"):
                conn.request("GET", path)
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                resp.read()
                sockets.append(conn.sock)
            self.assertIsNotNone(sockets[0])
            self.assertTrue(all(s is sockets[0] for s in sockets))
        finally:
            conn.close()


class TestClock(FakeTestCase):
    def setUp(self):
        super().setUp()
        self.expected = load_rows(H1_JSON)

    def test_server_time_follows_control_now(self):
        self.assertEqual(self.fake.request("/api/v3/time").json(), {"serverTime": LATER})
        self.set_now(LAST_1H)
        self.assertEqual(self.fake.request("/api/v3/time").json(), {"serverTime": LAST_1H})
        self.assertEqual(self.fake.control("now", ms="wall").status, 200)
        server_time = self.fake.request("/api/v3/time").json()["serverTime"]
        self.assertLess(abs(server_time - time.time() * 1000), 5000)
        self.assertEqual(self.fake.request("/api/v3/ping").json(), {})

    def test_candles_after_now_do_not_exist(self):
        self.set_now(JAN1_2022 + 10 * HOUR + 30 * MINUTE)
        rows = self.get_rows(symbol="BTCUSDT", interval="1h", startTime=JAN1_2022 + 8 * HOUR)
        self.assertEqual([r[0] for r in rows], [JAN1_2022 + h * HOUR for h in (8, 9, 10)])
        self.assertEqual(rows[:2], self.expected[8:10])
        self.assertFormingVersionOf(rows[2], self.expected[10])

    def test_forming_candle_becomes_final_after_its_close_time(self):
        self.set_now(LAST_1H + 30 * MINUTE)
        rows = self.get_rows(symbol="BTCUSDT", interval="1h", limit=2)
        self.assertEqual(rows[0], self.expected[-2])
        self.assertFormingVersionOf(rows[1], self.expected[-1])
        self.set_now(LAST_1H + HOUR - 1)  # exactly the close_time: still forming
        self.assertFormingVersionOf(
            self.get_rows(symbol="BTCUSDT", interval="1h", limit=1)[0], self.expected[-1])
        self.set_now(LAST_1H + HOUR)
        self.assertEqual(self.get_rows(symbol="BTCUSDT", interval="1h", limit=2),
                         self.expected[-2:])

    def test_forming_synthetic_candle(self):
        open_ms = SYNTH_START + 1000 * MINUTE
        self.set_now(open_ms + 30_000)
        forming = self.get_rows(symbol="SYNUSDT", interval="1m", limit=1)[0]
        self.assertEqual(forming[0], open_ms)
        self.set_now(open_ms + MINUTE)
        final = self.get_rows(symbol="SYNUSDT", interval="1m", startTime=open_ms, limit=1)[0]
        self.assertFormingVersionOf(forming, final)


class TestErrors(FakeTestCase):
    def test_symbol_errors(self):
        missing = ("Mandatory parameter 'symbol' was not sent, was empty/null, "
                   "or malformed.")
        self.assertApiError(self.fake.klines(interval="1h"), 400, -1102, missing)
        self.assertApiError(self.fake.klines(symbol="", interval="1h"), 400, -1102, missing)
        self.assertApiError(
            self.fake.klines(symbol="btcusdt", interval="1h"), 400, -1100,
            "Illegal characters found in parameter 'symbol'; "
            "legal range is '^[A-Z0-9-_.]{1,20}$'.")
        self.assertApiError(self.fake.klines(symbol="NOPEUSDT", interval="1h"),
                            400, -1121, "Invalid symbol.")

    def test_interval_errors(self):
        for params in ({}, {"interval": "1H"}, {"interval": "2d"}, {"interval": ""}):
            self.assertApiError(self.fake.klines(symbol="BTCUSDT", **params),
                                400, -1120, "Invalid interval.")

    def test_limit_errors(self):
        for limit in (0, 1001, -5):
            self.assertApiError(self.fake.klines(symbol="BTCUSDT", interval="1h", limit=limit),
                                400, -1130, "Invalid data sent for a parameter.")
        self.assertEqual(len(self.get_rows(symbol="BTCUSDT", interval="1h", limit=1000)), 744)

    def test_non_integer_numbers(self):
        for name in ("startTime", "endTime", "limit"):
            body = self.assertApiError(
                self.fake.klines(symbol="BTCUSDT", interval="1h", **{name: "12x"}), 400, -1100)
            self.assertIn(f"parameter '{name}'", body["msg"])

    def test_unknown_and_duplicate_parameters(self):
        self.assertApiError(
            self.fake.klines(symbol="BTCUSDT", interval="1h", limit=5, start_time=1), 400, -1104,
            "Not all sent parameters were read; read 3 parameter(s) but was sent 4.")
        resp = self.fake.request("/api/v3/klines?symbol=BTCUSDT&interval=1h&interval=1h")
        self.assertApiError(resp, 400, -1101)

    def test_time_zone(self):
        self.assertEqual(len(self.get_rows(symbol="BTCUSDT", interval="1h", limit=3,
                                           timeZone="0")), 3)
        self.assertApiError(self.fake.klines(symbol="BTCUSDT", interval="1h", timeZone="+8"),
                            400, -1130)

    def test_unknown_path_is_404(self):
        resp = self.fake.request("/api/v3/nothing")
        self.assertEqual(resp.status, 404)
        self.assertIn(b"404", resp.body)
        self.assertEqual(self.fake.request("/api/v3/klines", method="POST").status, 404)


class TestExchangeInfo(FakeTestCase):
    def test_all_symbols_and_rate_limits(self):
        resp = self.fake.request("/api/v3/exchangeInfo")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.weight(), 20)
        info = resp.json()
        self.assertEqual(info["timezone"], "UTC")
        self.assertEqual(info["serverTime"], LATER)
        self.assertEqual(info["rateLimits"][0], {
            "rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
            "limit": 6000})
        self.assertEqual([s["symbol"] for s in info["symbols"]],
                         ["BTCUSDT", "CAL", "CSVBTC", "MERGED", "SYNUSDT"])
        btc = info["symbols"][0]
        self.assertEqual((btc["status"], btc["baseAsset"], btc["quoteAsset"]),
                         ("TRADING", "BTC", "USDT"))

    def test_symbol_filters(self):
        info = self.fake.request("/api/v3/exchangeInfo", {"symbol": "SYNUSDT"}).json()
        self.assertEqual([s["symbol"] for s in info["symbols"]], ["SYNUSDT"])
        info = self.fake.request("/api/v3/exchangeInfo",
                                 {"symbols": '["BTCUSDT","CSVBTC"]'}).json()
        self.assertEqual([s["symbol"] for s in info["symbols"]], ["BTCUSDT", "CSVBTC"])
        self.assertApiError(self.fake.request("/api/v3/exchangeInfo", {"symbol": "ETHUSDT"}),
                            400, -1121, "Invalid symbol.")
        self.assertApiError(self.fake.request("/api/v3/exchangeInfo",
                                              {"symbols": '["BTCUSDT","ETHUSDT"]'}),
                            400, -1121)


class TestWeights(FakeTestCase):
    def test_used_weight_header_and_stats(self):
        wait_for_window_margin(4)
        self.fake.control("reset")
        steps = [
            ("/api/v3/ping", None, 1),
            ("/api/v3/time", None, 2),
            ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": 1}, 4),
            ("/api/v3/exchangeInfo", None, 24),
            ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1x"}, 26),  # errors count
            ("/api/v3/nothing", None, 26),  # unknown paths do not
        ]
        for path, params, expected in steps:
            resp = self.fake.request(path, params)
            self.assertEqual(resp.headers["X-MBX-USED-WEIGHT-1M"], str(expected), path)
            self.assertEqual(resp.headers["x-mbx-used-weight"], str(expected), path)
        stats = self.fake.control("stats", method="GET").json()
        self.assertEqual(stats, {
            "requests": {"ping": 1, "time": 1, "klines": 2, "exchangeInfo": 1, "nothing": 1},
            "status_counts": {"200": 4, "400": 1, "404": 1},
            "max_used_weight": 26,
        })


class TestRateLimits(FakeTestCase):
    server_name = "limited"  # --weight-limit 10 --ban-after 2

    def test_429_then_418_for_a_client_that_keeps_sending(self):
        wait_for_window_margin(5)
        self.fake.control("reset")
        for expected in (2, 4, 6, 8, 10):
            resp = self.fake.klines(symbol="SYNUSDT", interval="1m", limit=1)
            self.assertEqual((resp.status, resp.weight()), (200, expected))
        resp = self.fake.klines(symbol="SYNUSDT", interval="1m", limit=1)
        self.assertApiError(resp, 429, -1003, MSG_TOO_MUCH.format(10))
        self.assertEqual(resp.weight(), 10)  # a rejected request is not charged
        retry_after = int(resp.headers["Retry-After"])
        self.assertTrue(1 <= retry_after <= 60, retry_after)
        self.assertLessEqual(retry_after, 60 - int(time.time() % 60) + 1)
        for _ in range(2):  # --ban-after 2: two more requests are tolerated
            self.assertEqual(self.fake.request("/api/v3/ping").status, 429)
        before = time.time()
        resp = self.fake.request("/api/v3/ping")
        body = self.assertApiError(resp, 418, -1003)
        self.assertEqual(resp.headers["Retry-After"], "120")
        until = int(re.search(r"IP banned until (\d+)\.", body["msg"]).group(1))
        self.assertAlmostEqual(until / 1000, before + 120, delta=2)
        resp = self.fake.request("/api/v3/time")
        self.assertEqual(resp.status, 418)
        self.assertTrue(118 <= int(resp.headers["Retry-After"]) <= 120)
        self.assertEqual(self.fake.control("stats", method="GET").json()["status_counts"],
                         {"200": 5, "429": 3, "418": 2})
        self.fake.control("reset")  # lifts the ban
        self.assertEqual(self.fake.request("/api/v3/ping").status, 200)

    def test_heavier_request_than_the_limit(self):
        self.assertEqual(self.fake.request("/api/v3/exchangeInfo").status, 429)

    def test_synthetic_rows_are_identical_across_processes(self):
        params = {"symbol": "SYNUSDT", "interval": "1m",
                  "startTime": SYNTH_START + 4_321_000 * MINUTE, "limit": 4}
        here = self.fake.klines(**params)
        main = SERVERS["main"].klines(**params)
        self.assertEqual(here.status, 200)
        self.assertEqual(here.body, main.body)


class TestFaults(FakeTestCase):
    def add_fault(self, spec: str) -> None:
        resp = self.fake.control("fault", spec=spec)
        self.assertEqual(resp.status, 200, resp.body)

    def ping_statuses(self, count: int) -> list:
        return [self.fake.request("/api/v3/ping").status for _ in range(count)]

    def test_nth_request_and_later_and_every(self):
        self.add_fault("ping:2:500")
        self.assertEqual(self.ping_statuses(3), [200, 500, 200])
        self.fake.control("reset")
        self.add_fault("ping:2+:502")
        self.assertEqual(self.ping_statuses(3), [200, 502, 502])
        self.fake.control("reset")
        self.add_fault("ping:*:504")
        self.assertEqual(self.ping_statuses(2), [504, 504])

    def test_5xx_bodies(self):
        unknown = "An unknown error occurred while processing the request."
        for kind, code in (("500", -1000), ("502", -1000), ("503", -1008), ("504", -1000)):
            self.add_fault(f"klines:1:{kind}")
            resp = self.fake.klines(symbol="BTCUSDT", interval="1h", limit=1)
            body = self.assertApiError(resp, int(kind), code, unknown if code == -1000 else None)
            self.assertTrue(body["msg"])
            self.assertIn("X-MBX-USED-WEIGHT-1M", resp.headers)
            self.fake.control("reset")

    def test_only_matching_paths_are_counted(self):
        self.add_fault("klines:1:error")
        self.assertEqual(self.fake.request("/api/v3/time").status, 200)
        self.assertApiError(self.fake.klines(symbol="BTCUSDT", interval="1h", limit=1),
                            400, -1121, "Invalid symbol.")
        self.assertEqual(self.fake.klines(symbol="BTCUSDT", interval="1h", limit=1).status, 200)

    def test_a_query_filter_picks_requests_by_parameter(self):
        self.add_fault("klines?interval=1d&limit=2:1:error")
        # Other intervals, or the same one with another limit, do not count.
        for params in (dict(interval="1h", limit=2), dict(interval="1d", limit=3),
                       dict(interval="1d")):
            self.assertEqual(self.fake.klines(symbol="BTCUSDT", **params).status, 200, params)
        self.assertEqual(self.fake.klines(symbol="BTCUSDT", interval="1d", limit=2).status, 400)
        self.assertEqual(self.fake.klines(symbol="BTCUSDT", interval="1d", limit=2).status, 200)

    def test_reset_connection(self):
        self.add_fault("klines:1:reset")
        with self.assertRaises(ConnectionResetError):
            self.fake.klines(symbol="BTCUSDT", interval="1h", limit=1)
        self.assertEqual(self.fake.klines(symbol="BTCUSDT", interval="1h", limit=1).status, 200)
        stats = self.fake.control("stats", method="GET").json()
        self.assertEqual(stats["status_counts"], {"reset": 1, "200": 1})

    def test_truncated_body(self):
        self.add_fault("klines:1:truncate")
        conn = self.fake.connection()
        try:
            conn.request("GET", "/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=10")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            length = int(resp.headers["Content-Length"])
            with self.assertRaises(http.client.IncompleteRead) as caught:
                resp.read()
            self.assertEqual(len(caught.exception.partial), length // 2)
        finally:
            conn.close()

    def test_stall_after_headers(self):
        self.add_fault("ping:1:stall:1")
        self.add_fault("ping:2:stall:1")
        conn = self.fake.connection()
        try:
            started = time.monotonic()
            conn.request("GET", "/api/v3/ping")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertLess(time.monotonic() - started, 0.8)
            with self.assertRaises(http.client.IncompleteRead):
                resp.read()
            self.assertGreaterEqual(time.monotonic() - started, 0.95)
        finally:
            conn.close()
        conn = self.fake.connection(timeout=0.2)  # a client timeout fires first
        try:
            conn.request("GET", "/api/v3/ping")
            resp = conn.getresponse()
            with self.assertRaises(TimeoutError):
                resp.read()
        finally:
            conn.close()

    def test_delay(self):
        self.add_fault("time:1:delay:0.4")
        started = time.monotonic()
        resp = self.fake.request("/api/v3/time")
        self.assertGreaterEqual(time.monotonic() - started, 0.4)
        self.assertEqual(resp.json(), {"serverTime": LATER})

    def test_malformed(self):
        self.add_fault("klines:1:malformed")
        resp = self.fake.klines(symbol="BTCUSDT", interval="1h")
        self.assertEqual((resp.status, resp.body), (200, b'[[1,"2",'))
        self.assertEqual(resp.headers["Content-Length"], "8")
        with self.assertRaises(json.JSONDecodeError):
            resp.json()

    def test_body_from_file(self):
        crafted = b'[[1640995200000,"1.0","2.0","0.5","1.5","10",1640998799999,"15",3,"5","7"]]'
        path = os.path.join(TMP, "crafted.json")
        with open(path, "wb") as handle:
            handle.write(crafted)
        self.add_fault(f"klines:1:body:{path}")
        resp = self.fake.klines(symbol="BTCUSDT", interval="1h")
        self.assertEqual((resp.status, resp.body), (200, crafted))

    def test_forced_429(self):
        self.add_fault("klines:1:429:3")
        resp = self.fake.klines(symbol="BTCUSDT", interval="1h", limit=1)
        self.assertApiError(resp, 429, -1003, MSG_TOO_MUCH.format(6000))
        self.assertEqual(resp.headers["Retry-After"], "3")

    def test_requests_during_a_forced_429_backoff_lead_to_a_ban(self):
        self.add_fault("klines:1:429:30")
        self.assertEqual(self.fake.klines(symbol="BTCUSDT", interval="1h").status, 429)
        # Within Retry-After: --ban-after (default 5) requests pass, the next is banned.
        self.assertEqual(self.ping_statuses(6), [200] * 5 + [418])

    def test_the_ban_counts_only_requests_that_arrive_after_the_429_went_out(self):
        limiter = load_fake_module().RateLimiter(limit=4, ban_after=2)
        now = 600.5  # 0.5 s into a window
        self.assertEqual([limiter.admit("ip", 2, now).status for _ in range(2)], [200, 200])
        verdict = limiter.admit("ip", 2, now)
        self.assertEqual((verdict.status, verdict.backoff_until), (429, 660.0))
        # Decided before the 429 went out: refused, not held against the client.
        statuses = [limiter.admit("ip", 1, now + 0.01).status for _ in range(5)]
        self.assertEqual(statuses, [429] * 5)
        limiter.start_backoff("ip", verdict.backoff_until, now + 0.02)
        # Arrived before it went out, decided after: still not held against it.
        statuses = [limiter.admit("ip", 1, now + 0.03, arrival=now + 0.015) for _ in range(5)]
        self.assertEqual([v.status for v in statuses], [429] * 5)
        # Sent in spite of it: --ban-after tolerated, then the ban.
        self.assertEqual([limiter.admit("ip", 1, now + 0.04).status for _ in range(3)],
                         [429, 429, 418])

    def test_forced_418_bans_until_reset(self):
        self.add_fault("klines:1:418:7")
        resp = self.fake.klines(symbol="BTCUSDT", interval="1h", limit=1)
        self.assertApiError(resp, 418, -1003)
        self.assertEqual(resp.headers["Retry-After"], "7")
        resp = self.fake.request("/api/v3/ping")
        self.assertEqual(resp.status, 418)
        self.assertTrue(1 <= int(resp.headers["Retry-After"]) <= 7)
        self.fake.control("reset")
        self.assertEqual(self.fake.request("/api/v3/ping").status, 200)

    def test_control_requests_are_exempt_and_bad_specs_rejected(self):
        self.add_fault("*:*:500")
        self.assertEqual(self.fake.control("stats", method="GET").status, 200)
        self.assertEqual(self.fake.request("/api/v3/ping").status, 500)
        for spec in ("klines:0:500", "klines:1:bogus", "klines:1", "klines:1:500:9",
                     "klines:1:body:/nonexistent/file", "klines?limit:1:500",
                     "klines?=2:1:500", "?limit=2:1:500"):
            self.assertEqual(self.fake.control("fault", spec=spec).status, 400, spec)
        listed = self.fake.control("fault", method="GET").json()["faults"]
        self.assertEqual([f["spec"] for f in listed], ["*:*:500"])


class TestCalendarIntervals(FakeTestCase):
    def setUp(self):
        super().setUp()
        self.weekly = load_rows(Path(CAL_WEEKLY))
        self.monthly = load_rows(Path(CAL_MONTHLY))

    def test_weekly(self):
        self.set_now(utc_ms(2024, 1, 10, 12))  # a Wednesday in the second week
        rows = self.get_rows(symbol="CAL", interval="1w")
        self.assertEqual(len(rows), 2)
        self.assertEqual(rows[0], self.weekly[0])
        self.assertFormingVersionOf(rows[1], self.weekly[1])
        self.assertEqual(dt.datetime.fromtimestamp(rows[1][0] / 1000, dt.timezone.utc).weekday(), 0)
        self.set_now(utc_ms(2024, 2, 1))
        self.assertEqual(self.get_rows(symbol="CAL", interval="1w", startTime=0), self.weekly)

    def test_monthly(self):
        self.set_now(utc_ms(2024, 2, 15))
        rows = self.get_rows(symbol="CAL", interval="1M", startTime=utc_ms(2023, 12, 1))
        self.assertEqual([r[0] for r in rows], MONTH_OPENS[:2])
        self.assertEqual(rows[0], self.monthly[0])
        self.assertFormingVersionOf(rows[1], self.monthly[1])
        self.assertEqual(rows[1][6], utc_ms(2024, 3, 1) - 1)  # 29 days: leap February
        self.set_now(utc_ms(2024, 3, 1))
        rows = self.get_rows(symbol="CAL", interval="1M", limit=2)
        self.assertEqual(rows[0], self.monthly[1])
        self.assertFormingVersionOf(rows[1], self.monthly[2])


class TestSynthetic(FakeTestCase):
    def check_page(self, rows, interval_ms, first_open):
        self.assertEqual([r[0] for r in rows],
                         [first_open + i * interval_ms for i in range(len(rows))])
        for row in rows:
            self.assertValidCandle(row, interval_ms)

    def test_rows_are_valid(self):
        rows = self.get_rows(symbol="SYNUSDT", interval="1m", startTime=SYNTH_START, limit=1000)
        self.assertEqual(len(rows), 1000)
        self.check_page(rows, MINUTE, SYNTH_START)
        middle = SYNTH_START + 5_000_000 * MINUTE
        self.set_now(middle + 10 * DAY)
        self.check_page(self.get_rows(symbol="SYNUSDT", interval="1m", startTime=middle,
                                      limit=1000), MINUTE, middle)
        self.assertGreater(len({r[4] for r in rows}), 100, "prices should move")

    def test_rows_are_deterministic(self):
        params = {"symbol": "SYNUSDT", "interval": "1m", "startTime": SYNTH_START + 777 * MINUTE,
                  "limit": 50}
        first = self.fake.klines(**params).body
        self.assertEqual(first, self.fake.klines(**params).body)
        overlapping = self.get_rows(**{**params, "startTime": SYNTH_START + 800 * MINUTE})
        self.assertEqual(json.loads(first)[23:], overlapping[:27])

    def test_end_of_a_ten_million_row_range_is_cheap(self):
        self.set_now(utc_ms(2100, 1, 1))
        started = time.monotonic()
        rows = self.get_rows(symbol="SYNUSDT", interval="1m", limit=1000)
        self.assertLess(time.monotonic() - started, 2)
        last_open = SYNTH_START + (SYNTH_COUNT - 1) * MINUTE
        self.check_page(rows, MINUTE, last_open - 999 * MINUTE)
        self.assertEqual(self.get_rows(symbol="SYNUSDT", interval="1m",
                                       startTime=last_open + 1), [])

    def test_three_day_grid(self):
        rows = self.get_rows(symbol="SYNUSDT", interval="3d", startTime=0, limit=20)
        self.check_page(rows, 3 * DAY, SYNTH_START)
        self.assertTrue(all((r[0] // DAY) % 3 == 1 for r in rows))

    def test_bad_synth_and_data_options_exit_with_an_error(self):
        cases = [
            ("--synth", "X:1w:1704067200000:10"),  # 1w has no synth
            ("--synth", "X:1M:1704067200000:10"),
            ("--synth", f"X:1h:{SYNTH_START + 1}:10"),  # off the grid
            ("--synth", f"X:3d:{SYNTH_START + DAY}:10"),
            ("--synth", "X:1h:abc:10"),
            ("--synth", "x:1h:0:10"),
            ("--data", "X:1h:/nonexistent/file.json"),
            ("--data", "X:7m:" + str(H1_JSON)),
            ("--fault", "klines:x:500"),
        ]
        for option, value in cases:
            done = subprocess.run([sys.executable, str(FAKE), "--port", "0", option, value],
                                  capture_output=True, text=True, timeout=20)
            self.assertEqual(done.returncode, 2, (option, value, done.stderr))
            self.assertIn("error", done.stderr, (option, value))


class TestCsv(FakeTestCase):
    def test_csv_rows_equal_api_rows(self):
        expected = load_rows(H1_JSON)
        resp = self.fake.klines(symbol="CSVBTC", interval="1h", startTime=0, limit=1000)
        self.assertEqual(resp.json(), expected)
        self.assertEqual(resp.body, compact(expected))

    def test_files_for_one_pair_are_merged(self):
        rows = self.get_rows(symbol="MERGED", interval="1h", startTime=0, limit=1000)
        self.assertEqual(rows, load_rows(H1_JSON))

    def test_csv_loader_without_header_lf_and_microseconds(self):
        module = load_fake_module()
        path = os.path.join(TMP, "plain.csv")
        with open(path, "w", newline="") as handle:
            handle.write("1735689600000000,1.10000000,1.20000000,1.00000000,1.15000000,"
                         "10.00000000,1735693199999999,11.50000000,42,4.00000000,"
                         "4.60000000,0\n\n")
        self.assertEqual(module.load_csv_rows(path), [[
            1735689600000, "1.10000000", "1.20000000", "1.00000000", "1.15000000",
            "10.00000000", 1735693199999, "11.50000000", 42, "4.00000000", "4.60000000", "0"]])


class TestLatencyAndRequestLog(unittest.TestCase):
    """The "slow" fake: --latency-ms 300, --request-log, --fault time:2:503.
    No test here resets it, so the command-line fault stays armed."""

    def setUp(self):
        self.fake = SERVERS["slow"]

    def test_latency_does_not_block_other_connections(self):
        results = []

        def ping():
            started = time.monotonic()
            status = self.fake.request("/api/v3/ping").status
            results.append((status, time.monotonic() - started))

        started = time.monotonic()
        threads = [threading.Thread(target=ping) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertLess(time.monotonic() - started, 1.2)  # 5 in series: 1.5 s
        self.assertEqual([status for status, _ in results], [200] * 5)
        self.assertTrue(all(elapsed >= 0.29 for _, elapsed in results))

    def test_control_requests_have_no_latency(self):
        started = time.monotonic()
        self.assertEqual(self.fake.control("stats", method="GET").status, 200)
        self.assertLess(time.monotonic() - started, 0.25)

    def test_command_line_fault_and_request_log(self):
        statuses = [self.fake.request("/api/v3/time").status for _ in range(3)]
        self.assertEqual(statuses, [200, 503, 200])
        self.assertEqual(self.fake.klines(symbol="BTCUSDT", interval="1h", limit=5).status, 200)
        with open(REQUEST_LOG, encoding="utf-8") as handle:
            entries = [json.loads(line) for line in handle]
        times = [e for e in entries if e["path"] == "/api/v3/time"]
        self.assertEqual([e["status"] for e in times], [200, 503, 200])
        self.assertEqual(times[1]["fault"], "503")
        kline = [e for e in entries if e["path"] == "/api/v3/klines"][-1]
        self.assertEqual(kline["query"], {"symbol": "BTCUSDT", "interval": "1h", "limit": "5"})
        self.assertEqual((kline["status"], kline["rows"]), (200, 5))
        self.assertIsInstance(kline["used_weight"], int)
        self.assertAlmostEqual(kline["t"] / 1000, time.time(), delta=10)
        self.assertFalse(any(e["path"].startswith("/_control") for e in entries))


class TestProcess(unittest.TestCase):
    def test_startup_output_and_clean_stop(self):
        self.assertTrue(os.access(FAKE, os.X_OK))
        self.assertEqual(FAKE.read_text().splitlines()[0], "#!/usr/bin/env python3")
        for sig in (signal.SIGTERM, signal.SIGINT):
            fake = FakeBinance("--synth", "TSTUSDT:1m:0:10").start()
            self.assertEqual(fake.request("/api/v3/ping").status, 200)
            self.assertEqual(fake.stdout(), f"listening on http://127.0.0.1:{fake.port}\n")
            self.assertEqual(fake.stop(sig), 0)
            self.assertFalse(fake.port_file_left)


if __name__ == "__main__":
    unittest.main()
