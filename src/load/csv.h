/*
 * csv.h - the lake's CSV layout, written without printf in the row loop.
 *
 * Raw objects: the original's raw columns in order, then symbol and
 * interval; decimals exactly as received.  Transformed objects: the
 * transformed columns; each number is written as the raw decimal string it
 * was cast from (so it reads back to the same double), or with 17
 * significant digits when the raw row is not at hand.  A header line names the
 * columns; lines end in \n; no field needs quoting (the values are numbers,
 * datetimes and validated symbols).
 */
#ifndef DATAOPS_CSV_H
#define DATAOPS_CSV_H

#include "schema/kline.h"
#include "util/buf.h"

int csv_raw_header(struct buf *out);
int csv_raw_rows(struct buf *out, const struct kline_batch *b, const char *symbol,
                 const char *interval, const char *updated_at);
int csv_transformed_header(struct buf *out, const char *local_time_column);
int csv_transformed_rows(struct buf *out, const struct tkline_batch *b, const char *symbol,
                         const char *interval);

#endif
