/*
 * fsutil.h - file-system helpers with the durability steps spelled out.
 */
#ifndef DATAOPS_FSUTIL_H
#define DATAOPS_FSUTIL_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

/* mkdir -p with mode 0755; ERR_IO naming the directory on failure. */
int fs_mkdir_p(const char *path, struct err *e);
/* fsync the directory that holds path, so a rename in it is durable. */
int fs_fsync_dir_of(const char *path, struct err *e);
/* Read a whole file into b (which carries the size limit). */
int fs_read_file(const char *path, struct buf *b, struct err *e);

#endif
