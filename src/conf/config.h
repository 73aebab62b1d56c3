/*
 * config.h - every setting of the program, where it comes from, and its
 * validated, typed value.
 *
 * One declarative table (config.c: settings[]) gives each setting its flag,
 * environment variable, default, help text and whether it may hold a
 * secret.  The table drives flag parsing, environment and .env lookup,
 * --help, and the redacted JSON dump, so a new setting is one line there.
 *
 * Precedence: command-line flag > process environment > .env file in the
 * working directory > default.  The .env file is loaded into the
 * environment without overriding variables already set (so libraries that
 * read their own variables, such as libpq's PG*, see it too).
 */
#ifndef DATAOPS_CONFIG_H
#define DATAOPS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "schema/interval.h"
#include "util/buf.h"
#include "util/err.h"

enum setting_id {
    S_SYMBOLS,
    S_INTERVALS,
    S_START,
    S_END,
    S_SOURCE,
    S_BASE_URL,
    S_ARCHIVE_URL,          /* backfill: the data.binance.vision archive */
    S_ARCHIVE_MIN_CANDLES,
    S_WAREHOUSE,
    S_LAKE,
    S_RAW_DATASET,
    S_RAW_TABLE,
    S_TRANSFORMED_DATASET,
    S_TRANSFORMED_TABLE,
    S_GCS_BUCKET,
    S_ARTIFACTS_PREFIX,
    S_PROJECT_ID,
    S_CREDENTIALS,
    S_TIMEZONE,
    S_LOCAL_TIME_COLUMN,
    S_LOG_FORMAT,
    S_LOG_LEVEL,
    S_LOCK_TIMEOUT,
    S_HTTP_TIMEOUT,
    S_CONNECT_TIMEOUT,
    S_RETRIES,
    S_WEIGHT_BUDGET,
    S_MAX_IN_FLIGHT,        /* backfill: concurrent REST requests */
    S_BATCH_ROWS,
    S_PG_SCHEMA,
    S_S3_ENDPOINT,
    S_S3_REGION,
    S_S3_ADDRESSING,
    S_GCS_ENDPOINT,
    S_BQ_ENDPOINT,
    S_BQ_LOCATION,
    S__COUNT
};

enum setting_source { SRC_DEFAULT = 0, SRC_DOTENV, SRC_ENV, SRC_FLAG, SRC_DERIVED };

struct setting_def {
    const char *flag;       /* long option without "--" */
    const char *env;        /* environment variable */
    const char *def;        /* default value as text ("" = unset) */
    const char *metavar;
    const char *help;
    int secret_url;         /* value may be a URL with a password: mask it */
    int run_only;           /* only meaningful for `dataops run` */
};

extern const struct setting_def settings[S__COUNT];

#define CONFIG_MAX_SYMBOLS 256
#define CONFIG_MAX_INTERVALS INTERVAL_COUNT

struct config {
    /* Raw text of every setting and where it came from. */
    char *text[S__COUNT];
    enum setting_source source[S__COUNT];

    /* Typed values, filled by config_finalize(). */
    char *symbols[CONFIG_MAX_SYMBOLS];
    size_t nsymbols;
    const struct interval *intervals[CONFIG_MAX_INTERVALS];
    size_t nintervals;
    int64_t start_ms;
    int64_t end_ms;         /* 0 = now (the exchange's clock) */
    int log_format;
    int log_level;
    long lock_timeout_s;
    long http_timeout_s;
    long connect_timeout_s;
    long retries;
    long weight_budget;     /* 0 = derive from exchangeInfo */
    long max_in_flight;     /* REST requests in flight at once */
    long archive_min_candles;   /* auto: files only for periods holding more */
    long batch_rows;
};

/* Fill defaults, load .env (path may be NULL for "./.env"; a missing file is
 * fine), read the environment.  Flags are applied with config_set_flag. */
int config_init(struct config *c, const char *dotenv_path, struct err *e);
void config_free(struct config *c);
/* Set from a command-line flag (name without "--"). ERR_USAGE if unknown. */
int config_set_flag(struct config *c, const char *name, const char *value, struct err *e);
/* Validate every setting and fill the typed fields.  ERR_CONFIG naming the
 * setting and the value on the first problem found. */
int config_finalize(struct config *c, struct err *e);
/* The effective configuration as a JSON object, secrets redacted. */
int config_to_json(const struct config *c, struct buf *out);
/* Copy url into out with any password replaced by "****". */
void config_mask_url(const char *url, char *out, size_t n);
/* 1 if s is a plain identifier usable as a table or dataset name. */
int config_is_identifier(const char *s);
/* Register the secrets found in settings with the logger's mask list. */
void config_register_secrets(const struct config *c);

#endif
