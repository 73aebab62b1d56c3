/*
 * transform.h - the original's cast_columns, row by row.
 *
 * open_time and close_time become UTC datetimes, utc_datetime is the open
 * time as a UTC datetime, the local-time column is utc_datetime in the
 * configured zone (with its offset, so it stays unambiguous around DST
 * changes), and the eight price and volume columns become doubles with
 * exactly the value strtod() gives for the exchange's decimal string
 * (correctly rounded, as Python's float() and pandas' astype(float) do).
 */
#ifndef DATAOPS_TRANSFORM_H
#define DATAOPS_TRANSFORM_H

#include "schema/kline.h"

/* tz_init() must have been called.  updated_at is the raw row's. */
void transform_row(const struct kline *k, struct tkline *t);

#endif
