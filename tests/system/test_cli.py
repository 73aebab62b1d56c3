#!/usr/bin/env python3
"""System tests of the command line: help, version, config (precedence,
redaction), bad configuration values (exit 2, the setting and the value
named, nothing written), log formats and exit codes."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import F15M, PipelineTest  # noqa: E402


class HelpVersionTest(PipelineTest):
    def test_help(self):
        r = self.run_dataops("--help")
        self.assertEqual(r.code, 0, r)
        for cmd in ("run", "config", "version", "check-credentials"):
            self.assertIn(cmd, r.out)
        r = self.run_dataops("run", "--help")
        self.assertEqual(r.code, 0, r)
        for opt in ("--symbols", "DATAOPS_SYMBOLS", "--intervals", "--start", "--end",
                    "--warehouse", "--lake", "--base-url", "BIGQUERY_RAW_TABLE_NAME",
                    "DATAOPS_TIMEZONE", "--log-format", "Exit codes"):
            self.assertIn(opt, r.out)

    def test_no_command_and_unknown_command_are_usage_errors(self):
        self.assertEqual(self.run_dataops().code, 2)
        r = self.run_dataops("frobnicate")
        self.assertEqual(r.code, 2)
        self.assertIn("unknown command 'frobnicate'", r.err)
        r = self.run_dataops("run", "--no-such-flag", "x")
        self.assertEqual(r.code, 2)
        self.assertIn("--no-such-flag", r.err)

    def test_version_has_the_commit(self):
        r = self.run_dataops("version")
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.out, r"^dataops \d+\.\d+\.\d+ \(commit \S+\)\n$")


class ConfigTest(PipelineTest):
    def config(self, *args, **env):
        r = self.run_dataops("config", *args, **env)
        self.assertEqual(r.code, 0, r)
        return json.loads(r.out)

    def test_defaults(self):
        c = self.config()
        self.assertEqual(c["DATAOPS_SYMBOLS"], {"value": "BTCUSDT", "source": "default"})
        self.assertEqual(c["DATAOPS_INTERVALS"]["value"], "1m")
        self.assertEqual(c["DATAOPS_START_TIME"]["value"], "1687363200000")
        self.assertEqual(c["BIGQUERY_RAW_TABLE_NAME"]["value"], "raw_binance_btcusdt_spot")
        self.assertEqual(c["BIGQUERY_TRANSFORMED_TABLE_NAME"]["value"],
                         "processed_binance_btcusdt_spot")
        self.assertEqual(c["DATAOPS_TIMEZONE"]["value"], "Asia/Singapore")
        self.assertEqual(c["DATAOPS_LOCAL_TIME_COLUMN"]["value"], "utc_singapore_datetime")
        self.assertEqual(c["BINANCE_BASE_URL"]["value"], "https://api.binance.com")
        self.assertEqual(c["DATAOPS_WAREHOUSE"]["value"], "data/warehouse.db")
        self.assertEqual(c["DATAOPS_LAKE"]["value"], "data/lake")

    def test_precedence_flag_env_dotenv_default(self):
        with open(os.path.join(self.dir, ".env"), "w") as f:
            f.write("# a comment\nexport DATAOPS_SYMBOLS=ETHUSDT\nDATAOPS_INTERVALS='1h'\n"
                    "DATAOPS_TIMEZONE=\"Europe/London\"  # inline comment\n")
        c = self.config()
        self.assertEqual(c["DATAOPS_SYMBOLS"], {"value": "ETHUSDT", "source": ".env"})
        self.assertEqual(c["DATAOPS_INTERVALS"], {"value": "1h", "source": ".env"})
        self.assertEqual(c["DATAOPS_TIMEZONE"]["value"], "Europe/London")
        c = self.config(DATAOPS_SYMBOLS="BNBUSDT")
        self.assertEqual(c["DATAOPS_SYMBOLS"], {"value": "BNBUSDT", "source": "environment"})
        c = self.config("--symbols", "XRPUSDT", DATAOPS_SYMBOLS="BNBUSDT")
        self.assertEqual(c["DATAOPS_SYMBOLS"], {"value": "XRPUSDT", "source": "flag"})
        c = self.config("--symbols=SOLUSDT")
        self.assertEqual(c["DATAOPS_SYMBOLS"]["value"], "SOLUSDT")

    def test_env_file_option_and_a_malformed_env_file(self):
        path = os.path.join(self.dir, "other.env")
        with open(path, "w") as f:
            f.write("DATAOPS_INTERVALS=4h\n")
        self.assertEqual(self.config("--env-file", path)["DATAOPS_INTERVALS"]["value"], "4h")
        with open(os.path.join(self.dir, ".env"), "w") as f:
            f.write("DATAOPS_SYMBOLS=BTCUSDT\nthis is not an assignment\n")
        r = self.run_dataops("config")
        self.assertEqual(r.code, 2, r)
        self.assertIn("line 2", r.err)
        r = self.run_dataops("config", "--env-file", os.path.join(self.dir, "missing.env"))
        self.assertEqual(r.code, 2, r)
        self.assertIn("missing.env", r.err)

    def test_original_environment_names(self):
        c = self.config(BIGQUERY_RAW_DATASET="thebareops_staging",
                        BIGQUERY_RAW_TABLE_NAME="raw_x", GCS_BUCKET_PROJECT_NAME="proj_art",
                        PROJECT_ID="my-project")
        self.assertEqual(c["BIGQUERY_RAW_DATASET"]["value"], "thebareops_staging")
        self.assertEqual(c["BIGQUERY_RAW_TABLE_NAME"]["value"], "raw_x")
        self.assertEqual(c["PROJECT_ID"]["value"], "my-project")

    def test_the_originals_environment_alone_selects_google(self):
        c = self.config(GCS_BUCKET_NAME="gaohn", PROJECT_ID="gao-hongnan")
        self.assertEqual(c["DATAOPS_LAKE"]["value"], "gs://gaohn")
        self.assertEqual(c["DATAOPS_WAREHOUSE"]["value"], "bigquery://gao-hongnan")
        self.assertTrue(c["DATAOPS_LAKE"]["source"].startswith("derived"))
        # An explicit setting wins.
        c = self.config(GCS_BUCKET_NAME="gaohn", PROJECT_ID="p", DATAOPS_LAKE="data/lake",
                        DATAOPS_WAREHOUSE="data/wh.db")
        self.assertEqual(c["DATAOPS_LAKE"]["value"], "data/lake")
        self.assertEqual(c["DATAOPS_WAREHOUSE"]["value"], "data/wh.db")

    def test_password_in_a_url_is_redacted(self):
        r = self.run_dataops("config", BINANCE_BASE_URL="https://user:S3cr3tPlanted@example.com")
        self.assertEqual(r.code, 0, r)
        self.assertNotIn("S3cr3tPlanted", r.out + r.err)
        self.assertIn("https://user:****@example.com", r.out)


class BadConfigTest(PipelineTest):
    CASES = [
        (["--intervals", "2m"], "DATAOPS_INTERVALS", "'2m'"),
        (["--intervals", "1m,1MO"], "DATAOPS_INTERVALS", "'1MO'"),
        (["--symbols", "btcusdt"], "DATAOPS_SYMBOLS", "'btcusdt'"),
        (["--symbols", "BTC USDT"], "DATAOPS_SYMBOLS", "'BTC USDT'"),
        (["--symbols", " , "], "DATAOPS_SYMBOLS", "empty"),
        (["--start", "2024-01-02", "--end", "2024-01-01"], "DATAOPS_END_TIME", "2024-01-01"),
        (["--start", "yesterday"], "DATAOPS_START_TIME", "'yesterday'"),
        (["--start", "1687363200"], "DATAOPS_START_TIME", "seconds"),
        (["--end", "2024-02-30"], "DATAOPS_END_TIME", "no such calendar date"),
        (["--warehouse", "mysql://db/x"], "DATAOPS_WAREHOUSE", "mysql"),
        (["--lake", "ftp://host/x"], "DATAOPS_LAKE", "ftp"),
        (["--base-url", "api.binance.com"], "BINANCE_BASE_URL", "api.binance.com"),
        (["--raw-table", 'x"; DROP TABLE y; --'], "BIGQUERY_RAW_TABLE_NAME", "DROP TABLE"),
        (["--transformed-dataset", "a-b"], "BIGQUERY_TRANSFORMED_DATASET", "'a-b'"),
        (["--local-time-column", "1col"], "DATAOPS_LOCAL_TIME_COLUMN", "'1col'"),
        (["--timezone", "Mars/Olympus"], "DATAOPS_TIMEZONE", "Mars/Olympus"),
        (["--log-format", "xml"], "DATAOPS_LOG_FORMAT", "text, json"),
        (["--lock-timeout", "-1"], "DATAOPS_LOCK_TIMEOUT", "'-1'"),
        (["--batch-rows", "ten"], "DATAOPS_BATCH_ROWS", "'ten'"),
        (["--source", "s3://x"], "DATAOPS_SOURCE", "s3://x"),
    ]

    def test_each_bad_value_is_refused_with_its_name_and_value(self):
        for args, name, fragment in self.CASES:
            with self.subTest(args=args):
                r = self.run_dataops("run", *args)
                self.assertEqual(r.code, 2, r)
                self.assertIn(name, r.err)
                self.assertIn(fragment, r.err)
                self.assertFalse(os.path.exists(os.path.join(self.dir, "data")),
                                 "nothing may be written on a configuration error")

    def test_bad_value_from_the_environment(self):
        r = self.run_dataops("run", DATAOPS_INTERVALS="1m,7m")
        self.assertEqual(r.code, 2, r)
        self.assertIn("DATAOPS_INTERVALS", r.err)
        self.assertIn("'7m'", r.err)


class CheckTest(PipelineTest):
    def test_all_checks_pass_and_no_data_moves(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000)
        r = self.run_dataops("check", "--intervals", "15m", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 0, r)
        for what in ("exchange", "symbols", "lake", "warehouse"):
            self.assertRegex(r.out, r"ok +%s " % what)
        self.assertIn("all checks passed", r.out)
        self.assertEqual(fx.requests("/api/v3/klines"), [])
        self.assertEqual(self.query("SELECT count(*) FROM sqlite_master")[0][0], 0)

    def test_failures_are_named(self):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000)
        r = self.run_dataops("check", "--symbols", "NOPEUSDT", BINANCE_BASE_URL=fx.url)
        self.assertEqual(r.code, 2, r)
        self.assertRegex(r.out, r"FAIL +symbols +NOPEUSDT: .*-1121")
        blocker = os.path.join(self.dir, "file")
        open(blocker, "w").close()
        r = self.run_dataops("check", "--lake", os.path.join(blocker, "lake"),
                             BINANCE_BASE_URL="http://127.0.0.1:9", DATAOPS_HTTP_RETRIES="0")
        self.assertEqual(r.code, 1, r)
        self.assertRegex(r.out, r"FAIL +exchange +http://127.0.0.1:9: .*cannot connect to")
        self.assertRegex(r.out, r"FAIL +lake .*not usable")


class LogFormatTest(PipelineTest):
    def run_small(self, **env):
        fx = self.fake(data=["BTCUSDT:15m:" + F15M], now=1679900000000)
        return self.run_dataops("run", "--intervals", "15m", "--start", "2023-03-26",
                                BINANCE_BASE_URL=fx.url, **env)

    def test_json_lines(self):
        r = self.run_small(DATAOPS_LOG_FORMAT="json")
        self.assertEqual(r.code, 0, r)
        events = [json.loads(x) for x in r.err.splitlines()]
        self.assertTrue(events)
        for ev in events:
            self.assertEqual(set(ev) - {"run_id"}, {"ts", "level", "comp", "msg"})

    def test_text(self):
        r = self.run_small(DATAOPS_LOG_FORMAT="text")
        self.assertEqual(r.code, 0, r)
        self.assertRegex(r.err.splitlines()[0], r"^\d{4}-\d\d-\d\dT\S+Z info +\[pipeline\] ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
