/*
 * timeutil.h - UTC calendar arithmetic on epoch milliseconds.
 *
 * All times inside the program are int64 milliseconds since the Unix epoch,
 * UTC.  The calendar conversion is done with integer arithmetic (proleptic
 * Gregorian, days since 1970-01-01), not with gmtime(), so it is thread-safe,
 * fast enough for the per-row hot path, and identical on every libc.
 */
#ifndef DATAOPS_TIMEUTIL_H
#define DATAOPS_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define MS_PER_SEC 1000LL
#define MS_PER_MIN 60000LL
#define MS_PER_HOUR 3600000LL
#define MS_PER_DAY 86400000LL

int64_t time_now_ms(void);
int64_t time_monotonic_ms(void);

int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/* floor division that rounds towards minus infinity (times before 1970). */
int64_t floor_div(int64_t a, int64_t b);

/* "YYYY-MM-DD HH:MM:SS.mmm" (23 chars + NUL), the warehouse's datetime text.
 * Written without printf: it runs once per row and column. Returns 23. */
size_t time_format_sql(int64_t ms, char out[24]);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" for logs and metadata. */
void time_format_iso(int64_t ms, char out[32]);
/* "YYYYMMDDTHHMMSSZ" for object names. */
void time_format_compact(int64_t ms, char out[20]);

/* Parse a setting: epoch milliseconds (digits only, at least 12 of them, so
 * that seconds are not taken for milliseconds by mistake) or ISO-8601
 * "YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM]" (a space may replace T).
 * Returns 0, or -1 with a reason in why. */
int time_parse(const char *s, int64_t *out_ms, char *why, size_t why_len);

#endif
