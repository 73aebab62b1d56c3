/*
 * config.c - the settings table, their sources and their validation.
 */
#include "conf/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/dotenv.h"
#include "load/lake.h"
#include "load/wh.h"
#include "transform/tz.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"

const struct setting_def settings[S__COUNT] = {
    [S_SYMBOLS] = {"symbols", "DATAOPS_SYMBOLS", "BTCUSDT", "LIST",
                   "comma-separated symbols, upper case (e.g. BTCUSDT,ETHUSDT)", 0, 1},
    [S_INTERVALS] = {"intervals", "DATAOPS_INTERVALS", "1m", "LIST",
                     "comma-separated intervals: 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d "
                     "1w 1M", 0, 1},
    [S_START] = {"start", "DATAOPS_START_TIME", "1687363200000", "TIME",
                 "first open time when the warehouse has nothing yet for a pair "
                 "(epoch ms or ISO-8601 UTC)", 0, 1},
    [S_END] = {"end", "DATAOPS_END_TIME", "", "TIME",
               "stop before this time (epoch ms or ISO-8601 UTC); default: now, by the "
               "exchange's clock", 0, 1},
    [S_SOURCE] = {"source", "DATAOPS_SOURCE", "auto", "SRC",
                  "where klines come from: rest (the exchange API), archive (the "
                  "data.binance.vision zips only), auto (whole months and days from the "
                  "archive, the rest from the API; the archive is used only with Binance's own "
                  "API hosts or an explicit DATAOPS_ARCHIVE_URL) or file://PATH (replay a "
                  "file of recorded /api/v3/klines bodies, one per line)", 0, 1},
    [S_BASE_URL] = {"base-url", "BINANCE_BASE_URL", "https://api.binance.com", "URL",
                    "Binance REST base URL (https://data-api.binance.vision also works)", 1, 1},
    /* Backfill settings (archive source, concurrent REST): docs/backfill.md. */
    [S_ARCHIVE_URL] = {"archive-url", "DATAOPS_ARCHIVE_URL", "https://data.binance.vision",
                       "URL", "base URL of the public kline archive (monthly and daily zips "
                       "with .CHECKSUM files)", 1, 1},
    [S_ARCHIVE_MIN_CANDLES] = {"archive-min-candles", "DATAOPS_ARCHIVE_MIN_CANDLES", "1000",
                               "N", "auto takes a month or a day from an archive file only "
                               "when it holds more candles than this (1000: when the API "
                               "would need two requests or more)", 0, 1},
    [S_WAREHOUSE] = {"warehouse", "DATAOPS_WAREHOUSE", "data/warehouse.db", "URL",
                     "warehouse: a SQLite path or sqlite:///path, postgresql://USER@HOST:PORT/DB, "
                     "or bigquery://PROJECT_ID", 1, 0},
    [S_LAKE] = {"lake", "DATAOPS_LAKE", "data/lake", "URL",
                "lake: a directory or file:///path, s3://BUCKET/PREFIX, or gs://BUCKET[/PREFIX]",
                1, 0},
    [S_RAW_DATASET] = {"raw-dataset", "BIGQUERY_RAW_DATASET", "thebareops_production", "NAME",
                       "dataset of the raw table (first part of raw lake paths)", 0, 0},
    [S_RAW_TABLE] = {"raw-table", "BIGQUERY_RAW_TABLE_NAME", "raw_binance_btcusdt_spot",
                     "NAME", "raw table name", 0, 0},
    [S_TRANSFORMED_DATASET] = {"transformed-dataset", "BIGQUERY_TRANSFORMED_DATASET",
                               "thebareops_production", "NAME",
                               "dataset of the transformed table", 0, 0},
    [S_TRANSFORMED_TABLE] = {"transformed-table", "BIGQUERY_TRANSFORMED_TABLE_NAME",
                             "processed_binance_btcusdt_spot", "NAME",
                             "transformed table name", 0, 0},
    [S_GCS_BUCKET] = {"gcs-bucket", "GCS_BUCKET_NAME", "", "NAME",
                      "Cloud Storage bucket of the raw objects (Google backends)", 0, 0},
    [S_ARTIFACTS_PREFIX] = {"artifacts-prefix", "GCS_BUCKET_PROJECT_NAME",
                            "thebareops_production", "NAME",
                            "where run artifacts go: <this>/pipeline-dataops/<run_id>/", 0, 0},
    [S_PROJECT_ID] = {"project-id", "PROJECT_ID", "", "ID", "Google Cloud project id", 0, 0},
    [S_CREDENTIALS] = {"credentials", "GOOGLE_APPLICATION_CREDENTIALS", "", "FILE",
                       "Google service-account key file (Google backends)", 0, 0},
    [S_TIMEZONE] = {"timezone", "DATAOPS_TIMEZONE", "Asia/Singapore", "TZ",
                    "IANA time zone of the local-time column", 0, 0},
    [S_LOCAL_TIME_COLUMN] = {"local-time-column", "DATAOPS_LOCAL_TIME_COLUMN",
                             "utc_singapore_datetime", "NAME",
                             "name of the local-time column of the transformed table", 0, 0},
    [S_LOG_FORMAT] = {"log-format", "DATAOPS_LOG_FORMAT", "auto", "FMT",
                      "log lines on stderr: text, json, or auto (text on a terminal)", 0, 0},
    [S_LOG_LEVEL] = {"log-level", "DATAOPS_LOG_LEVEL", "info", "LEVEL",
                     "debug, info, warn or error", 0, 0},
    [S_LOCK_TIMEOUT] = {"lock-timeout", "DATAOPS_LOCK_TIMEOUT", "0", "SECONDS",
                        "wait this long for another run's warehouse lock, then exit 4", 0, 1},
    [S_HTTP_TIMEOUT] = {"http-timeout", "DATAOPS_HTTP_TIMEOUT", "30", "SECONDS",
                        "total time allowed for one HTTP request", 0, 1},
    [S_CONNECT_TIMEOUT] = {"connect-timeout", "DATAOPS_CONNECT_TIMEOUT", "10", "SECONDS",
                           "time allowed to connect", 0, 1},
    [S_RETRIES] = {"retries", "DATAOPS_HTTP_RETRIES", "5", "N",
                   "retries of a failed request (timeouts, resets, 5xx, 429)", 0, 1},
    [S_WEIGHT_BUDGET] = {"weight-budget", "DATAOPS_WEIGHT_BUDGET", "0", "N",
                         "request weight per minute to stay under; 0 = 80% of the "
                         "exchange's REQUEST_WEIGHT limit (6000 if unknown)", 0, 1},
    [S_MAX_IN_FLIGHT] = {"max-in-flight", "DATAOPS_MAX_IN_FLIGHT", "12", "N",
                         "API requests in flight at most (1-64; a run starts with 2 and "
                         "grows); the weight budget still sets the pace", 0, 1},
    [S_BATCH_ROWS] = {"batch-rows", "DATAOPS_BATCH_ROWS", "100000", "N",
                      "rows per lake object part and warehouse transaction", 0, 1},
    [S_PG_SCHEMA] = {"pg-schema", "DATAOPS_PG_SCHEMA", "public", "NAME",
                     "PostgreSQL schema of the tables (postgresql:// warehouses)", 0, 0},
    [S_S3_ENDPOINT] = {"s3-endpoint", "DATAOPS_S3_ENDPOINT", "", "URL",
                       "S3-compatible endpoint (MinIO, Ceph, R2); empty = AWS", 1, 0},
    [S_S3_REGION] = {"s3-region", "AWS_REGION", "us-east-1", "REGION",
                     "region used to sign S3 requests", 0, 0},
    [S_S3_ADDRESSING] = {"s3-addressing", "DATAOPS_S3_ADDRESSING", "auto", "STYLE",
                         "S3 addressing: path, virtual, or auto (path with a custom "
                         "endpoint, virtual-host on AWS)", 0, 0},
    [S_GCS_ENDPOINT] = {"gcs-endpoint", "STORAGE_EMULATOR_HOST", "", "URL",
                        "Cloud Storage endpoint override (an emulator); empty = Google", 1, 0},
    [S_BQ_ENDPOINT] = {"bigquery-endpoint", "BIGQUERY_EMULATOR_HOST", "", "URL",
                       "BigQuery endpoint override (an emulator); empty = Google", 1, 0},
    [S_BQ_LOCATION] = {"bigquery-location", "DATAOPS_BIGQUERY_LOCATION", "US", "LOCATION",
                       "location of the BigQuery datasets and jobs", 0, 0},
};

static int set_text(struct config *c, int id, const char *v, enum setting_source src)
{
    char *copy = strdup(v);
    if (!copy) {
        return -1;
    }
    free(c->text[id]);
    c->text[id] = copy;
    c->source[id] = src;
    return 0;
}

struct dotenv_ctx {
    struct config *c;
};

/* .env values go into the environment unless the variable is already set,
 * so the process environment wins and libraries see the file's values. */
static int dotenv_apply(void *ctx, const char *key, const char *value)
{
    struct dotenv_ctx *d = ctx;
    if (getenv(key)) {
        return 0;
    }
    if (setenv(key, value, 0) != 0) {
        return ERR_NOMEM;
    }
    for (int i = 0; i < S__COUNT; i++) {
        if (strcmp(settings[i].env, key) == 0) {
            if (set_text(d->c, i, value, SRC_DOTENV) != 0) {
                return ERR_NOMEM;
            }
        }
    }
    return 0;
}

int config_init(struct config *c, const char *dotenv_path, struct err *e)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < S__COUNT; i++) {
        if (set_text(c, i, settings[i].def, SRC_DEFAULT) != 0) {
            return err_set(e, ERR_NOMEM, "out of memory");
        }
    }
    /* The environment first, so that .env cannot override it. */
    for (int i = 0; i < S__COUNT; i++) {
        const char *v = getenv(settings[i].env);
        if (v && set_text(c, i, v, SRC_ENV) != 0) {
            return err_set(e, ERR_NOMEM, "out of memory");
        }
    }
    const char *path = dotenv_path ? dotenv_path : ".env";
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT && !dotenv_path) {
            return 0;
        }
        return err_set(e, ERR_CONFIG, "cannot read env file '%s': %s", path, strerror(errno));
    }
    fclose(f);
    struct buf text;
    buf_init(&text, 1 << 20);
    int rc = fs_read_file(path, &text, e);
    if (rc == 0) {
        struct dotenv_ctx d = {c};
        rc = dotenv_parse(text.data ? text.data : "", text.len, path, dotenv_apply, &d, e);
        if (rc != 0) {
            e->code = ERR_CONFIG;
        }
    }
    buf_free(&text);
    return rc ? ERR_CONFIG : 0;
}

void config_free(struct config *c)
{
    for (int i = 0; i < S__COUNT; i++) {
        free(c->text[i]);
        c->text[i] = NULL;
    }
    for (size_t i = 0; i < c->nsymbols; i++) {
        free(c->symbols[i]);
    }
    c->nsymbols = 0;
}

int config_set_flag(struct config *c, const char *name, const char *value, struct err *e)
{
    for (int i = 0; i < S__COUNT; i++) {
        if (strcmp(settings[i].flag, name) == 0) {
            if (set_text(c, i, value, SRC_FLAG) != 0) {
                return err_set(e, ERR_NOMEM, "out of memory");
            }
            return 0;
        }
    }
    return err_set(e, ERR_USAGE, "unknown option --%s (see --help)", name);
}

int config_is_identifier(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) {
            return 0;
        }
    }
    return 1;
}

static int symbol_valid(const char *s, size_t n)
{
    if (n == 0 || n > 20) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
              ch == '.')) {
            return 0;
        }
    }
    return 1;
}

static int bad(struct err *e, int id, const char *why)
{
    return err_set(e, ERR_CONFIG, "invalid %s (--%s) value: %s", settings[id].env,
                   settings[id].flag, why);
}

/* Split a comma list, trimming blanks; calls f for each non-empty item. */
static int for_each_item(const char *list, int (*f)(void *, const char *, size_t), void *ctx)
{
    const char *p = list;
    int count = 0;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *a = p;
        const char *b = p + n;
        while (a < b && isspace((unsigned char)*a)) {
            a++;
        }
        while (b > a && isspace((unsigned char)b[-1])) {
            b--;
        }
        if (b > a) {
            int rc = f(ctx, a, (size_t)(b - a));
            if (rc != 0) {
                return rc;
            }
            count++;
        }
        if (!end) {
            break;
        }
        p = end + 1;
    }
    return count == 0 ? -2 : 0;
}

struct list_ctx {
    struct config *c;
    struct err *e;
};

static int add_symbol(void *ctx, const char *s, size_t n)
{
    struct list_ctx *l = ctx;
    char why[128];
    if (!symbol_valid(s, n)) {
        snprintf(why, sizeof(why), "'%.*s' is not a symbol (1-20 of A-Z 0-9 - _ .; upper case)",
                 (int)(n > 40 ? 40 : n), s);
        return bad(l->e, S_SYMBOLS, why);
    }
    for (size_t i = 0; i < l->c->nsymbols; i++) {
        if (strlen(l->c->symbols[i]) == n && memcmp(l->c->symbols[i], s, n) == 0) {
            return 0;
        }
    }
    if (l->c->nsymbols == CONFIG_MAX_SYMBOLS) {
        return bad(l->e, S_SYMBOLS, "more than 256 symbols");
    }
    char *copy = strndup(s, n);
    if (!copy) {
        return err_set(l->e, ERR_NOMEM, "out of memory");
    }
    l->c->symbols[l->c->nsymbols++] = copy;
    return 0;
}

static int add_interval(void *ctx, const char *s, size_t n)
{
    struct list_ctx *l = ctx;
    char name[8];
    const struct interval *iv = NULL;
    if (n < sizeof(name)) {
        memcpy(name, s, n);
        name[n] = '\0';
        iv = interval_find(name);
    }
    if (!iv) {
        char why[160];
        snprintf(why, sizeof(why), "'%.*s' is not a Binance interval (1s 1m 3m 5m 15m 30m 1h "
                 "2h 4h 6h 8h 12h 1d 3d 1w 1M; 1M is a month, 1m a minute)",
                 (int)(n > 20 ? 20 : n), s);
        return bad(l->e, S_INTERVALS, why);
    }
    for (size_t i = 0; i < l->c->nintervals; i++) {
        if (l->c->intervals[i] == iv) {
            return 0;
        }
    }
    l->c->intervals[l->c->nintervals++] = iv;
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_time_setting(struct config *c, int id, int64_t *out, struct err *e)
{
    char why[160];
    char msg[256];
    if (time_parse(c->text[id], out, why, sizeof(why)) != 0) {
        snprintf(msg, sizeof(msg), "'%.40s': %s", c->text[id], why);
        return bad(e, id, msg);
    }
    if (*out < 0 || *out > 253402300799999LL) {
        snprintf(msg, sizeof(msg), "'%.40s' is outside the years 1970-9999", c->text[id]);
        return bad(e, id, msg);
    }
    return 0;
}

/* The original's environment alone selects the Google backends, as it did
 * there: with DATAOPS_LAKE / DATAOPS_WAREHOUSE left at their defaults,
 * GCS_BUCKET_NAME makes the lake gs://<bucket> and PROJECT_ID makes the
 * warehouse bigquery://<project>.  Its ConfigMap works unchanged. */
static int derive_google_defaults(struct config *c)
{
    char url[600];
    if (c->source[S_LAKE] == SRC_DEFAULT && c->text[S_GCS_BUCKET][0]) {
        snprintf(url, sizeof(url), "gs://%s", c->text[S_GCS_BUCKET]);
        if (set_text(c, S_LAKE, url, SRC_DERIVED) != 0) {
            return -1;
        }
    }
    if (c->source[S_WAREHOUSE] == SRC_DEFAULT && c->text[S_PROJECT_ID][0]) {
        snprintf(url, sizeof(url), "bigquery://%s", c->text[S_PROJECT_ID]);
        if (set_text(c, S_WAREHOUSE, url, SRC_DERIVED) != 0) {
            return -1;
        }
    }
    return 0;
}

int config_finalize(struct config *c, struct err *e)
{
    char msg[512];
    struct list_ctx l = {c, e};
    if (derive_google_defaults(c) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < c->nsymbols; i++) {
        free(c->symbols[i]);
    }
    c->nsymbols = 0;
    c->nintervals = 0;

    int rc = for_each_item(c->text[S_SYMBOLS], add_symbol, &l);
    if (rc == -2) {
        return bad(e, S_SYMBOLS, "the list is empty");
    }
    if (rc) {
        return rc;
    }
    rc = for_each_item(c->text[S_INTERVALS], add_interval, &l);
    if (rc == -2) {
        return bad(e, S_INTERVALS, "the list is empty");
    }
    if (rc) {
        return rc;
    }
    if (parse_time_setting(c, S_START, &c->start_ms, e)) {
        return ERR_CONFIG;
    }
    c->end_ms = 0;
    if (c->text[S_END][0]) {
        if (parse_time_setting(c, S_END, &c->end_ms, e)) {
            return ERR_CONFIG;
        }
        if (c->end_ms <= c->start_ms) {
            snprintf(msg, sizeof(msg), "'%.40s' is not after the start time '%.40s'",
                     c->text[S_END], c->text[S_START]);
            return bad(e, S_END, msg);
        }
    }
    const char *src = c->text[S_SOURCE];
    if (strcmp(src, "rest") != 0 && strcmp(src, "archive") != 0 && strcmp(src, "auto") != 0 &&
        strncmp(src, "file://", 7) != 0) {
        snprintf(msg, sizeof(msg), "'%.80s' is not a source (rest, archive, auto or "
                 "file://PATH)", src);
        return bad(e, S_SOURCE, msg);
    }
    if (strncmp(src, "file://", 7) == 0 && src[7] == '\0') {
        return bad(e, S_SOURCE, "file:// needs a path");
    }
    const char *url = c->text[S_BASE_URL];
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        char shown[256];
        config_mask_url(url, shown, sizeof(shown));
        snprintf(msg, sizeof(msg), "'%s' is not an http:// or https:// URL", shown);
        return bad(e, S_BASE_URL, msg);
    }
    url = c->text[S_ARCHIVE_URL];
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        char shown[256];
        config_mask_url(url, shown, sizeof(shown));
        snprintf(msg, sizeof(msg), "'%s' is not an http:// or https:// URL", shown);
        return bad(e, S_ARCHIVE_URL, msg);
    }
    char why[256];
    if (!wh_url_supported(c->text[S_WAREHOUSE], why, sizeof(why))) {
        return bad(e, S_WAREHOUSE, why);
    }
    if (!lake_url_supported(c->text[S_LAKE], why, sizeof(why))) {
        return bad(e, S_LAKE, why);
    }
    static const int idents[] = {S_RAW_DATASET, S_RAW_TABLE, S_TRANSFORMED_DATASET,
                                 S_TRANSFORMED_TABLE, S_ARTIFACTS_PREFIX,
                                 S_LOCAL_TIME_COLUMN, S_PG_SCHEMA};
    for (size_t i = 0; i < sizeof(idents) / sizeof(idents[0]); i++) {
        if (!config_is_identifier(c->text[idents[i]])) {
            snprintf(msg, sizeof(msg), "'%.60s' is not an identifier (letters, digits and _, "
                     "not starting with a digit, at most 128)", c->text[idents[i]]);
            return bad(e, idents[i], msg);
        }
    }
    if (strcmp(c->text[S_RAW_DATASET], c->text[S_TRANSFORMED_DATASET]) == 0 &&
        strcmp(c->text[S_RAW_TABLE], c->text[S_TRANSFORMED_TABLE]) == 0) {
        return bad(e, S_TRANSFORMED_TABLE, "the raw and transformed tables must differ");
    }
    if (!tz_valid(c->text[S_TIMEZONE])) {
        snprintf(msg, sizeof(msg), "'%.60s' is not an IANA time zone known to this system "
                 "(e.g. Asia/Singapore, UTC)", c->text[S_TIMEZONE]);
        return bad(e, S_TIMEZONE, msg);
    }
    c->log_format = log_format_parse(c->text[S_LOG_FORMAT]);
    if (c->log_format < 0) {
        return bad(e, S_LOG_FORMAT, "expected text, json or auto");
    }
    c->log_level = log_level_parse(c->text[S_LOG_LEVEL]);
    if (c->log_level < 0) {
        return bad(e, S_LOG_LEVEL, "expected debug, info, warn or error");
    }
    struct {
        int id;
        long lo, hi;
        long *out;
    } nums[] = {
        {S_LOCK_TIMEOUT, 0, 86400, &c->lock_timeout_s},
        {S_HTTP_TIMEOUT, 1, 3600, &c->http_timeout_s},
        {S_CONNECT_TIMEOUT, 1, 600, &c->connect_timeout_s},
        {S_RETRIES, 0, 100, &c->retries},
        {S_WEIGHT_BUDGET, 0, 1000000, &c->weight_budget},
        {S_MAX_IN_FLIGHT, 1, 64, &c->max_in_flight},
        {S_ARCHIVE_MIN_CANDLES, 0, 10000000, &c->archive_min_candles},
        {S_BATCH_ROWS, 1000, 10000000, &c->batch_rows},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (parse_long(c->text[nums[i].id], nums[i].lo, nums[i].hi, nums[i].out) != 0) {
            snprintf(msg, sizeof(msg), "'%.40s' is not a whole number from %ld to %ld",
                     c->text[nums[i].id], nums[i].lo, nums[i].hi);
            return bad(e, nums[i].id, msg);
        }
    }
    return 0;
}

/* Append s[0..len) to out[*o..n) without overflowing; always terminated. */
static void put_bounded(char *out, size_t n, size_t *o, const char *s, size_t len)
{
    while (len-- && *o + 1 < n) {
        out[(*o)++] = *s++;
    }
    out[*o < n ? *o : n - 1] = '\0';
}

void config_mask_url(const char *url, char *out, size_t n)
{
    static const char *const keys[] = {"password=", "sslpassword=", "secret=", "token=",
                                       "sig=", "X-Amz-Signature=", NULL};
    size_t o = 0;
    if (n == 0) {
        return;
    }
    out[0] = '\0';
    const char *p = url;
    /* scheme://user:password@host...  ->  scheme://user:****@host... */
    const char *scheme = strstr(url, "://");
    if (scheme) {
        const char *auth = scheme + 3;
        size_t span = strcspn(auth, "/?#");
        const char *at = memchr(auth, '@', span);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            put_bounded(out, n, &o, url, (size_t)(colon + 1 - url));
            put_bounded(out, n, &o, "****", 4);
            p = at;
        }
    }
    /* key=value pairs of the query that carry secrets. */
    while (*p) {
        int masked = 0;
        if (p == url || p[-1] == '?' || p[-1] == '&') {
            for (int k = 0; keys[k]; k++) {
                size_t kl = strlen(keys[k]);
                if (strncmp(p, keys[k], kl) == 0) {
                    put_bounded(out, n, &o, p, kl);
                    put_bounded(out, n, &o, "****", 4);
                    p += kl + strcspn(p + kl, "&#");
                    masked = 1;
                    break;
                }
            }
        }
        if (!masked) {
            put_bounded(out, n, &o, p, 1);
            p++;
        }
    }
}

void config_register_secrets(const struct config *c)
{
    for (int i = 0; i < S__COUNT; i++) {
        if (!settings[i].secret_url) {
            continue;
        }
        const char *url = c->text[i];
        const char *q = strstr(url, "password=");
        if (q) {
            char secret[256];
            q += strlen("password=");
            snprintf(secret, sizeof(secret), "%.*s", (int)strcspn(q, "&#"), q);
            log_add_secret(secret);
        }
        const char *scheme = strstr(url, "://");
        const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
        if (!at) {
            continue;
        }
        const char *colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
        if (colon && at > colon + 1) {
            char secret[256];
            snprintf(secret, sizeof(secret), "%.*s", (int)(at - colon - 1), colon + 1);
            log_add_secret(secret);
        }
    }
}

static const char *source_names[] = {"default", ".env", "environment", "flag",
                                     "derived from GCS_BUCKET_NAME / PROJECT_ID"};

int config_to_json(const struct config *c, struct buf *out)
{
    int rc = buf_puts(out, "{\n");
    for (int i = 0; i < S__COUNT && rc == 0; i++) {
        char shown[1024];
        if (settings[i].secret_url) {
            config_mask_url(c->text[i], shown, sizeof(shown));
        }
        else {
            snprintf(shown, sizeof(shown), "%s", c->text[i]);
        }
        rc |= buf_puts(out, "  \"");
        rc |= buf_puts(out, settings[i].env);
        rc |= buf_puts(out, "\": {\"value\": \"");
        rc |= buf_json_escape(out, shown, strlen(shown));
        rc |= buf_printf(out, "\", \"source\": \"%s\"}%s\n", source_names[c->source[i]],
                         i + 1 < S__COUNT ? "," : "");
    }
    rc |= buf_puts(out, "}\n");
    return rc ? -1 : 0;
}
