/*
 * fsutil.c - see fsutil.h.
 */
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdir_p(const char *path, struct err *e)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp)) {
        return err_set(e, ERR_IO, "directory path '%s' is empty or too long", path);
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            return err_set(e, ERR_IO, "cannot create directory '%s': %s", tmp, strerror(errno));
        }
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        return err_set(e, ERR_IO, "cannot create directory '%s': %s", tmp, strerror(errno));
    }
    struct stat st;
    if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return err_set(e, ERR_IO, "'%s' exists and is not a directory", tmp);
    }
    return 0;
}

int fs_fsync_dir_of(const char *path, struct err *e)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) {
        dir[1] = '\0';
    }
    else if (slash) {
        *slash = '\0';
    }
    else {
        snprintf(dir, sizeof(dir), ".");
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return err_set(e, ERR_IO, "cannot open directory '%s': %s", dir, strerror(errno));
    }
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc != 0) {
        return err_set(e, ERR_IO, "cannot fsync directory '%s': %s", dir, strerror(saved));
    }
    return 0;
}

int fs_read_file(const char *path, struct buf *b, struct err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return err_set(e, ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    }
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(b, chunk, n) != 0) {
            rc = err_set(e, ERR_IO, "'%s' is larger than %zu bytes", path, b->max);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = err_set(e, ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    }
    fclose(f);
    return rc;
}
