/*
 * buf.h - a growable byte buffer with a hard maximum.
 *
 * Every buffer that holds input from outside the process (HTTP bodies, files,
 * captured logs) is created with a maximum, so hostile or broken input is
 * refused long before memory runs out.  A failed append leaves the contents
 * unchanged and returns -1.  The data is always NUL-terminated so it can be
 * handed to string functions, but it may also contain NUL bytes.
 */
#ifndef DATAOPS_BUF_H
#define DATAOPS_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;   /* largest len accepted; 0 means no limit */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);                 /* len = 0, keeps memory */
int buf_reserve(struct buf *b, size_t extra);  /* 0, or -1 if over max/OOM */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as the body of a JSON string (no surrounding quotes). */
int buf_json_escape(struct buf *b, const char *s, size_t n);

#endif
