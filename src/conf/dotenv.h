/*
 * dotenv.h - the .env file reader.
 *
 * Format: KEY=VALUE lines; blank lines and lines starting with '#' are
 * skipped; an optional "export " prefix; values may be wrapped in single
 * quotes (taken literally) or double quotes (\n, \", \\ understood);
 * unquoted values end at " #" (a comment) and are trimmed.  Keys must be
 * [A-Za-z_][A-Za-z0-9_]*.  A malformed line is an error naming its number.
 */
#ifndef DATAOPS_DOTENV_H
#define DATAOPS_DOTENV_H

#include <stddef.h>

#include "util/err.h"

/* Called once per assignment; return non-zero to stop with that code. */
typedef int (*dotenv_cb)(void *ctx, const char *key, const char *value);

/* Parse text[0..len); name is used in error messages. */
int dotenv_parse(const char *text, size_t len, const char *name, dotenv_cb cb, void *ctx,
                 struct err *e);

#endif
