/*
 * source.c - picks the source backend from the "source" setting.
 */
#include "extract/source.h"

#include <string.h>

int source_open(const struct config *c, struct source **out, struct err *e)
{
    const char *s = c->text[S_SOURCE];
    if (strncmp(s, "file://", 7) == 0) {
        return source_replay_ops.open(c, out, e);
    }
    if (strcmp(s, "archive") == 0) {
        return source_archive_ops.open(c, out, e);
    }
    if (strcmp(s, "auto") == 0) {
        return source_auto_ops.open(c, out, e);
    }
    return source_binance_ops.open(c, out, e);
}

void source_close(struct source *s)
{
    if (s) {
        s->ops->close(s);
    }
}
