/*
 * archive.h - the data.binance.vision kline archive: which file holds
 * what, and reading one verified zip from memory.
 *
 * Facts this relies on (shared/docs/binance-api-facts.md section 8 and
 * docs/backfill.md, with their sources):
 *   - files live at {base}/data/spot/{monthly|daily}/klines/{SYMBOL}/{iv}/
 *     {SYMBOL}-{iv}-{YYYY-MM|YYYY-MM-DD}.zip, with the month spelt 1mo;
 *   - every zip has a sibling .CHECKSUM: one sha256sum line, 64 hex digits,
 *     two spaces, the zip's name; a changed checksum means a reissue;
 *   - a zip holds one CSV of the API's 12 columns, unquoted, with or
 *     without a header line, CRLF or LF; spot files from 2025-01-01 on have
 *     microsecond timestamps (a value above 10^14 is in microseconds);
 *   - a day's file appears the next day, a month's file on the first Monday
 *     of the next month; daily files exist for intervals up to 1d only.
 */
#ifndef DATAOPS_ARCHIVE_H
#define DATAOPS_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "schema/interval.h"
#include "schema/kline.h"
#include "util/err.h"

/* ---- which source loads which open times (shared with the planner) ---- */

enum archive_kind { ARCH_NONE = 0, ARCH_MONTHLY, ARCH_DAILY, ARCH_REST };

struct archive_choice {
    enum archive_kind kind;
    int64_t from;     /* the file's period, or the REST stretch: [from, to) */
    int64_t to;
};

/* How a source setting uses the archive: ARCHIVE_OFF (rest, replay, or
 * auto pointed at an API host that is not Binance's own: a fake, a proxy,
 * the testnet, whose data the archive does not hold), ARCHIVE_ONLY
 * (archive) or ARCHIVE_AUTO. */
enum archive_use { ARCHIVE_OFF = 0, ARCHIVE_ONLY, ARCHIVE_AUTO };
enum archive_use archive_use_of(const struct config *c);

/* Decide how to load the open times from `from` on (below `to`), at time
 * `now`:
 *   - the monthly file of from's month, if published (a week after the
 *     month ended), not 1s (too large), not skip_month, and either
 *     archive-only or holding more than min_candles of [from, to);
 *   - else the daily file of from's day, likewise (published once the day
 *     has ended; intervals up to 1d);
 *   - else, archive-only: ARCH_NONE (nothing to load yet);
 *   - else REST up to the next day or month where a file could take over,
 *     or to `to`.
 * A file's period may reach past `to`: only the rows below `to` are used. */
void archive_choose(enum archive_use use, const struct interval *iv, int64_t from, int64_t to,
                    int64_t now, long min_candles, int64_t skip_month, int64_t skip_day,
                    struct archive_choice *out);
/* "BTCUSDT-1m-2024-01.zip" or "BTCUSDT-1m-2024-01-15.zip", and the path
 * under the base URL ("data/spot/monthly/klines/BTCUSDT/1m/..."). */
void archive_file_name(const char *symbol, const struct interval *iv,
                       const struct archive_choice *ch, char *name, size_t n);
void archive_file_path(const char *symbol, const struct interval *iv,
                       const struct archive_choice *ch, char *path, size_t n);

/* ---- one zip, verified, read from memory ------------------------------- */

/* Parse a .CHECKSUM body: "<64 hex>  <name>" (one "*" before the name, as
 * binary-mode sha256sum writes it, is accepted).  The name must be want. */
int archive_checksum_parse(const char *body, size_t len, const char *want,
                           unsigned char digest[32], struct err *e);
/* SHA-256 of data; 1 if it equals want.  got_hex receives the digest. */
int archive_sha256_matches(const void *data, size_t len, const unsigned char want[32],
                           char got_hex[65]);

struct zipstream;

/* Open the zip in data[0..len) (borrowed until close), which must hold
 * exactly one member, and read that member to the end once: libzip checks
 * its CRC-32 there, and the size is checked against max_bytes.  Only then
 * is it rewound for zipstream_line(), so no row of a damaged file is ever
 * handed out.  ERR_INVALID names the file (label) and the problem. */
int zipstream_open(const void *data, size_t len, const char *label, size_t max_bytes,
                   struct zipstream **out, struct err *e);
/* The next line, without CR/LF (borrowed until the next call); *line is
 * NULL at the end. */
int zipstream_line(struct zipstream *z, const char **line, size_t *len, struct err *e);
void zipstream_close(struct zipstream *z);

/* Parse one CSV line of the archive into k.  Returns 0, 1 for a header
 * line (skip it; only the first line may be one), or ERR_INVALID.
 * Microsecond open and close times are divided by 1000; *micro is set when
 * they were. */
int archive_csv_row(const char *line, size_t len, long lineno, struct kline *k, int *micro,
                    struct err *e);

#endif
