/*
 * log.h - structured logging to stderr.
 *
 * Lines are readable text on a terminal and JSON lines otherwise (or as
 * chosen), one line per event, each with a timestamp, level, component and
 * the run id once known.  The level is checked before any formatting work.
 *
 * Secrets: values registered with log_add_secret() are masked in every line
 * before it is written anywhere; code must still never pass a credential to
 * a log call - the mask is the second line of defence, not the first.
 *
 * A copy of every line (JSON form) can be captured into a bounded buffer so
 * that the run's log becomes one of its artifacts.
 */
#ifndef DATAOPS_LOG_H
#define DATAOPS_LOG_H

#include "util/buf.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
enum log_format { LOG_FORMAT_AUTO = 0, LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

void log_init(enum log_format fmt, enum log_level level);
int log_enabled(enum log_level level);
void log_set_run_id(const char *run_id);
/* Mask this value (if at least 4 characters long) in every later line. */
void log_add_secret(const char *secret);
/* Start (b != NULL) or stop (NULL) copying JSON lines into b; b is borrowed. */
void log_capture(struct buf *b);
void log_shutdown(void);   /* frees the secret list */

void log_write(enum log_level level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parse "json"/"text"/"auto" and "debug"/"info"/"warn"/"error"; -1 if unknown. */
int log_format_parse(const char *s);
int log_level_parse(const char *s);

#define log_debug(comp, ...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define log_info(comp, ...) do { if (log_enabled(LOG_INFO)) log_write(LOG_INFO, comp, __VA_ARGS__); } while (0)
#define log_warn(comp, ...) do { if (log_enabled(LOG_WARN)) log_write(LOG_WARN, comp, __VA_ARGS__); } while (0)
#define log_error(comp, ...) do { if (log_enabled(LOG_ERROR)) log_write(LOG_ERROR, comp, __VA_ARGS__); } while (0)

#endif
