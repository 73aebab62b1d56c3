/*
 * tz.h - the configured time zone, for the local-time column.
 *
 * The zone is an IANA name resolved by the C library from the system's
 * tzdata (the container image ships tzdata for this).  glibc silently falls
 * back to UTC for unknown names, so tz_valid() checks that the zone file
 * exists before the name is accepted.
 */
#ifndef DATAOPS_TZ_H
#define DATAOPS_TZ_H

#include <stddef.h>
#include <stdint.h>

int tz_valid(const char *name);
/* Make name the process's zone (TZ).  Returns 0 or -1 if not valid. */
int tz_init(const char *name);
/* UTC offset in seconds of the configured zone at instant ms. */
long tz_offset_at(int64_t ms);
/* "YYYY-MM-DD HH:MM:SS.mmm+HH:MM": ms as wall time in the configured zone
 * with its offset.  Returns the length written (29). */
size_t tz_format_local(int64_t ms, char out[32]);

#endif
