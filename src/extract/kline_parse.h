/*
 * kline_parse.h - the /api/v3/klines response parser.
 *
 * A strict scanner made for one shape: a JSON array of 12-element arrays
 * [int, str, str, str, str, str, int, str, int, str, str, str].  It writes
 * straight into the caller's reused batch (no allocation), accepts any JSON
 * whitespace, and refuses everything else with a message naming the row,
 * the field and what was found: 11 or 13 fields, a null, a string where a
 * number belongs, a number out of range, NaN or Infinity, escapes inside a
 * decimal, trailing bytes after the array, or a body that stops early.
 *
 * Semantic checks (OHLC order, grid, duplicates) are validate/'s job.
 */
#ifndef DATAOPS_KLINE_PARSE_H
#define DATAOPS_KLINE_PARSE_H

#include <stddef.h>

#include "schema/kline.h"
#include "util/err.h"

/* Parse body[0..len) and append its rows to out.  On error out->n is
 * restored to its value on entry (the page is taken whole or not at all).
 * An exchange error object {"code":C,"msg":M} gives ERR_API with C and M in
 * the message.  Returns 0, ERR_INVALID, ERR_API or ERR_NOMEM. */
int kline_parse_page(const char *body, size_t len, struct kline_batch *out, struct err *e);

/* Recognise {"code":-1121,"msg":"..."}; returns 1 and fills code and msg
 * (truncated to msg_len) when body is such an object, else 0. */
int binance_error_body(const char *body, size_t len, long *code, char *msg, size_t msg_len);

#endif
