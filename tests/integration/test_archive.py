#!/usr/bin/env python3
"""The data.binance.vision archive as a source (--source archive, --source
auto), against a loopback fake of the archive that serves zips and
.CHECKSUM files built here from the real data in tests/samples/binance: with
and without header rows, CRLF and LF, microsecond timestamps, a wrong
checksum, a missing month, a truncated zip and a zip whose CRC-32 does not
match (with a checksum that does).  No row of a refused file may ever reach
a table."""
import calendar
import datetime
import glob
import json
import os
import sys
import unittest

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
from harness import CSV1H, F1D, F1H, RAW, TRANSFORMED, PipelineTest, load_rows  # noqa: E402
from fake_archive import FakeArchiveProcess, kline_csv, write_archive_file  # noqa: E402

DAY = 86400000
COLS = 'open_time, "open", high, low, "close", volume, close_time, quote_asset_volume, ' \
       'number_of_trades, taker_buy_base_asset_volume, taker_buy_quote_asset_volume, "ignore"'


def ms(y, m, d=1, h=0):
    return calendar.timegm((y, m, d, h, 0, 0)) * 1000


def utc(t):
    return datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc)


class ArchiveTest(PipelineTest):
    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.dir, "archive")
        os.makedirs(self.root)
        self.archives = []

    def tearDown(self):
        for a in self.archives:
            a.stop()
        super().tearDown()

    def archive(self, **kw):
        a = FakeArchiveProcess(self.dir, self.root, **kw)
        self.archives.append(a)
        return a

    def rows(self, path=None):
        return self.query("SELECT %s FROM \"%s\" ORDER BY open_time" % (COLS, RAW), path=path)

    def sources(self):
        files = glob.glob(os.path.join(self.dir, "data", "lake", "*", "pipeline-dataops", "*",
                                       "metadata.json"))
        self.assertEqual(len(files), 1, files)
        with open(files[0]) as f:
            return json.load(f)["sources"]

    def api_rows(self, data, start, end, interval):
        """The same range loaded through the fake exchange's REST API."""
        fx = self.fake(data=["BTCUSDT:%s:%s" % (interval, data)], now=end + 10 * DAY)
        db = os.path.join(self.dir, "api.db")
        r = self.run_dataops("run", "--source", "rest", "--intervals", interval, "--start",
                             str(start), "--end", str(end), "--warehouse", db,
                             "--lake", os.path.join(self.dir, "api-lake"),
                             BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        fx.stop()
        return self.rows(db)

    def run_archive(self, a, *args, **env):
        return self.run_dataops("run", "--source", "archive", "--archive-url", a.url, *args,
                                **env)


class FileFormatTest(ArchiveTest):
    """The same month as the API sends it, whatever the file's layout."""

    def test_header_crlf_lf_and_microseconds_all_load_like_the_api(self):
        with open(CSV1H, "rb") as f:
            real = f.read()                       # header line + CRLF, as uploaded
        rows = load_rows(F1H)
        variants = {
            "real": real,
            "no-header-lf": kline_csv(rows),
            "header-lf": kline_csv(rows, header=True),
            "micro": kline_csv(rows, micro=True, crlf=True),
        }
        expected = self.api_rows(F1H, ms(2022, 1), ms(2022, 2), "1h")
        self.assertEqual(len(expected), 744)
        for name, body in variants.items():
            with self.subTest(variant=name):
                write_archive_file(self.root, "BTCUSDT", "1h", "2022-01", body)
                a = self.archive()
                db = os.path.join(self.dir, "%s.db" % name)
                r = self.run_archive(a, "--intervals", "1h", "--start", "2022-01-01",
                                     "--end", "2022-02-01", "--warehouse", db)
                a.stop()
                self.assertEqual(r.code, 0, r)
                self.assertEqual(self.rows(db), expected)
                self.assertEqual(self.count(TRANSFORMED, path=db), 744)
                paths = [q["path"] for q in a.requests()]
                self.assertEqual(paths, [
                    "/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2022-01.zip.CHECKSUM",
                    "/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2022-01.zip"])
                if name == "micro":
                    self.assertIn("timestamps in microseconds, converted to milliseconds",
                                  r.err)

    def test_microsecond_conversion_is_recorded_in_the_run_record(self):
        write_archive_file(self.root, "BTCUSDT", "1h", "2022-01",
                           kline_csv(load_rows(F1H), micro=True))
        a = self.archive()
        r = self.run_archive(a, "--intervals", "1h", "--start", "2022-01-01",
                             "--end", "2022-02-01")
        self.assertEqual(r.code, 0, r)
        src = self.sources()
        self.assertEqual(src["source"], "archive")
        self.assertEqual(src["microsecond_files"], 1)
        self.assertEqual(src["files_monthly"], 1)
        self.assertEqual(src["rows_archive"], 744)
        (rec,) = src["loaded"]
        self.assertEqual(rec["file"], "BTCUSDT-1h-2022-01.zip")
        self.assertEqual(rec["source"], "archive-monthly")
        self.assertEqual(rec["time_unit"], "us (converted to ms)")
        self.assertEqual(rec["rows"], 744)
        # Every stored time is in milliseconds.
        self.assertEqual(self.query('SELECT max(open_time), max(close_time) FROM "%s"' % RAW)[0],
                         (1643670000000, 1643673599999))


class RefusedFileTest(ArchiveTest):
    """A file that fails any check is not used, not even in part."""

    def run_one(self, **kw):
        write_archive_file(self.root, "BTCUSDT", "1h", "2022-01",
                           kline_csv(load_rows(F1H)), **kw)
        a = self.archive()
        r = self.run_archive(a, "--intervals", "1h", "--start", "2022-01-01",
                             "--end", "2022-02-01")
        return a, r

    def test_wrong_checksum(self):
        a, r = self.run_one(checksum="wrong")
        self.assertEqual(r.code, 1, r)
        self.assertIn("does not match its .CHECKSUM", r.err)
        self.assertIn("the file is not used", r.err)
        self.assertEqual(self.count(RAW), 0)
        self.assertEqual(self.count(TRANSFORMED), 0)
        # Fetched once more (a reissue between the two downloads?) before refusing.
        zips = [q for q in a.requests() if q["path"].endswith(".zip")]
        self.assertEqual(len(zips), 2)

    def test_truncated_zip(self):
        # The checksum matches the truncated bytes: only the zip's own
        # structure can tell.
        a, r = self.run_one(mangle=lambda d: d[: len(d) * 2 // 3])
        self.assertEqual(r.code, 1, r)
        self.assertIn("not a readable zip", r.err)
        self.assertEqual(self.count(RAW), 0)

    def test_crc_mismatch_is_caught_before_any_row_is_used(self):
        # A stored (uncompressed) member with one digit changed: the CSV
        # still parses, the checksum matches, only the CRC-32 is wrong.
        def flip(data):
            i = data.index(b"46216.93000000")
            return data[:i] + b"4" + data[i + 1:i + 1] + b"7" + data[i + 2:]
        a, r = self.run_one(mangle=flip, stored=True)
        self.assertEqual(r.code, 1, r)
        self.assertIn("CRC-32 mismatch", r.err)
        self.assertEqual(self.count(RAW), 0)

    def test_transfer_cut_short_is_retried(self):
        write_archive_file(self.root, "BTCUSDT", "1h", "2022-01", kline_csv(load_rows(F1H)))
        a = self.archive(faults=[".zip:1:truncate"])
        r = self.run_archive(a, "--intervals", "1h", "--start", "2022-01-01",
                             "--end", "2022-02-01")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 744)
        self.assertIn("retry 1/", r.err)


class MissingFileTest(ArchiveTest):
    """2024 daily candles in monthly files, March missing."""

    def build(self):
        rows = load_rows(F1D)
        for m in range(1, 7):
            if m == 3:
                continue
            month = [x for x in rows if ms(2024, m) <= x[0] < ms(2024, m + 1)]
            write_archive_file(self.root, "BTCUSDT", "1d", "2024-%02d" % m, kline_csv(month))
        return rows

    def test_archive_alone_skips_the_missing_month_and_plan_shows_the_hole(self):
        rows = self.build()
        a = self.archive()
        r = self.run_archive(a, "--intervals", "1d", "--start", "2024-01-01",
                             "--end", "2024-07-01")
        self.assertEqual(r.code, 0, r)
        self.assertIn("the archive has no file for 2024-03-01", r.err)
        self.assertEqual(self.count(RAW), 31 + 29 + 30 + 31 + 30)
        # The monthly file, then each day's, were asked for.
        paths = [q["path"] for q in a.requests() if q["status"] == 404]
        self.assertIn("/data/spot/monthly/klines/BTCUSDT/1d/BTCUSDT-1d-2024-03.zip.CHECKSUM",
                      paths)
        self.assertEqual(len([p for p in paths if "/daily/" in p]), 31)
        # Nothing is remembered as missing at the exchange: the archive
        # cannot say so; March is a hole, and the API fills it.
        self.assertEqual(self.query("SELECT count(*) FROM dataops_ranges WHERE "
                                    "kind = 'known_gap'")[0][0], 0)
        fx = self.fake(data=["BTCUSDT:1d:" + F1D], now=ms(2024, 7, 2))
        r = self.run_dataops("plan", "--intervals", "1d", "--start", "2024-01-01", "--end",
                             "2024-07-01", "--source", "rest", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        holes = [line.split() for line in r.out.splitlines() if " hole " in line]
        self.assertEqual([(h[3], h[4], h[5]) for h in holes],
                         [("2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z", "31")])
        r = self.run_dataops("run", "--intervals", "1d", "--start", "2024-01-01", "--end",
                             "2024-07-01", "--source", "rest", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        want = [x[0] for x in rows if ms(2024, 1) <= x[0] < ms(2024, 7)]
        self.assertEqual([g[0] for g in self.rows()], want)
        self.assertEqual(self.count(TRANSFORMED), len(want))

    def test_archive_alone_stops_where_no_file_is_out_yet(self):
        # Today's candles are in no file: the run stops there, without
        # error, and the next run continues from the watermark.
        import time
        today = int(time.time() * 1000) // DAY * DAY
        yday = [[today - DAY + i * 3600000, "1.0", "2.0", "0.5", "1.5", "10.0",
                 today - DAY + (i + 1) * 3600000 - 1, "15.0", 7, "5.0", "7.5", "0"]
                for i in range(24)]
        day = utc(today - DAY).strftime("%Y-%m-%d")
        write_archive_file(self.root, "BTCUSDT", "1h", day, kline_csv(yday))
        a = self.archive()
        r = self.run_archive(a, "--intervals", "1h", "--start", str(today - DAY))
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 24)
        self.assertIn("no archive file covers %s" % utc(today).strftime("%Y-%m-%dT00:00:00"),
                      r.err)

    def test_auto_takes_files_and_fills_the_missing_month_from_the_api(self):
        rows = self.build()
        now = ms(2024, 7, 11, 0) + 30 * 60000
        fx = self.fake(data=["BTCUSDT:1d:" + F1D], now=now)
        a = self.archive()
        r = self.run_dataops("run", "--source", "auto", "--intervals", "1d", "--start",
                             "2024-01-01", BINANCE_BASE_URL=fx.url, DATAOPS_ARCHIVE_URL=a.url,
                             DATAOPS_ARCHIVE_MIN_CANDLES="0")
        self.assertEqual(r.code, 0, r)
        want = [x for x in rows if ms(2024, 1) <= x[0] < ms(2024, 7, 11)]
        self.assertEqual(self.count(RAW), len(want))
        self.assertEqual(self.count(TRANSFORMED), len(want))
        got = self.rows()
        self.assertEqual([g[0] for g in got], [w[0] for w in want])
        self.assertEqual([g[1:6] for g in got], [tuple(w[1:6]) for w in want])
        # Which source loaded what.
        src = self.sources()
        self.assertEqual(src["source"], "auto")
        self.assertEqual(src["files_monthly"], 5)
        by = {}
        for rec in src["loaded"]:
            by.setdefault(rec["source"], []).append(rec)
        months = sorted(utc(datetime.datetime.fromisoformat(
            x["first_open"].replace("Z", "+00:00")).timestamp() * 1000).month
            for x in by["archive-monthly"])
        self.assertEqual(months, [1, 2, 4, 5, 6])
        rest_days = sum(x["rows"] for x in by["rest"])
        self.assertEqual(rest_days, 31 + 10)           # March, and July 1..10
        self.assertEqual(src["rows_archive"] + src["rows_rest"], len(want))
        # The API was only asked for March and July.
        for q in fx.requests("/api/v3/klines"):
            t = int(q["query"]["startTime"])
            self.assertTrue(ms(2024, 3) <= t < ms(2024, 4) or t >= ms(2024, 7), utc(t))
        self.assertEqual(fx.stats()["status_counts"].get("429", 0), 0)


class AutoTest(ArchiveTest):
    def test_daily_files_for_past_days_and_the_api_for_today(self):
        # January 2022 is not over yet by the exchange's clock, so its
        # monthly file is not published: days 1..19 come from daily files
        # (some with a header, some in microseconds), the 20th from the API.
        rows = load_rows(F1H)
        for d in range(1, 32):
            day = [x for x in rows if ms(2022, 1, d) <= x[0] < ms(2022, 1, d) + DAY]
            write_archive_file(self.root, "BTCUSDT", "1h", "2022-01-%02d" % d,
                               kline_csv(day, header=d % 3 == 0, micro=d % 4 == 0,
                                         crlf=d % 2 == 0))
        now = ms(2022, 1, 20, 10) + 30 * 60000
        fx = self.fake(data=["BTCUSDT:1h:" + F1H], now=now)
        a = self.archive()
        r = self.run_dataops("run", "--intervals", "1h", "--start", "2022-01-01",
                             BINANCE_BASE_URL=fx.url, DATAOPS_ARCHIVE_URL=a.url,
                             DATAOPS_ARCHIVE_MIN_CANDLES="0")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 19 * 24 + 10)
        src = self.sources()
        self.assertEqual(src["files_daily"], 19)
        self.assertEqual(src["files_monthly"], 0)
        self.assertEqual(src["rows_rest"], 10)
        paths = [q["path"] for q in a.requests()]
        self.assertNotIn("/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2022-01.zip", paths)
        for q in fx.requests("/api/v3/klines"):
            self.assertGreaterEqual(int(q["query"]["startTime"]), ms(2022, 1, 20))
        # Identical to what the API alone gives.
        api = self.api_rows(F1H, ms(2022, 1), ms(2022, 1, 20, 10), "1h")
        self.assertEqual(self.rows(), api)

    def test_files_are_used_only_where_they_save_requests(self):
        # With the default threshold a day of 1h candles (24) is one API
        # request anyway: auto asks the archive for nothing.
        rows = load_rows(F1H)
        write_archive_file(self.root, "BTCUSDT", "1h", "2022-01", kline_csv(rows))
        fx = self.fake(data=["BTCUSDT:1h:" + F1H], now=ms(2022, 3, 1))
        a = self.archive()
        r = self.run_dataops("run", "--intervals", "1h", "--start", "2022-01-01",
                             BINANCE_BASE_URL=fx.url, DATAOPS_ARCHIVE_URL=a.url)
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 744)
        self.assertEqual(a.requests(), [])

    def test_auto_with_another_api_host_leaves_the_archive_alone(self):
        # The default: a non-Binance base URL (here, the fake) without an
        # explicit archive URL keeps auto on the API.
        fx = self.fake(data=["BTCUSDT:1h:" + F1H], now=ms(2022, 3, 1))
        r = self.run_dataops("run", "--intervals", "1h", "--start", "2022-01-01",
                             BINANCE_BASE_URL=fx.url, DATAOPS_ARCHIVE_MIN_CANDLES="0")
        self.assertEqual(r.code, 0, r)
        self.assertEqual(self.count(RAW), 744)
        src = self.sources()
        self.assertFalse(src["archive_used"])
        self.assertEqual(src["rows_rest"], 744)


if __name__ == "__main__":
    unittest.main(verbosity=2)
