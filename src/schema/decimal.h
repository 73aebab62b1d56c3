/*
 * decimal.h - exact comparisons of decimal strings, and their conversion.
 *
 * Validation compares prices and volumes as the exchange sent them, without
 * converting to binary floating point, so "high >= low" is decided exactly.
 * The grammar is -?[0-9]+(\.[0-9]+)?  (what Binance sends; no exponent).
 */
#ifndef DATAOPS_DECIMAL_H
#define DATAOPS_DECIMAL_H

#include <stddef.h>

/* 1 if s[0..n) matches the grammar above, else 0. */
int dec_valid(const char *s, size_t n);
/* <0, 0, >0 as a < b, a == b, a > b numerically; both must be valid. */
int dec_cmp(const char *a, size_t an, const char *b, size_t bn);
/* 1 if the value is below zero ("-0.0" is not). */
int dec_negative(const char *s, size_t n);
/* The double nearest the value of s[0..n), exactly what strtod gives (the
 * transform's contract), without strtod's cost for the usual short prices
 * and volumes.  NaN only when a long input cannot be copied (no memory). */
double dec_to_double(const char *s, size_t n);

#endif
