/*
 * lake_file.c - the lake as a local directory (the embedded default).
 *
 * An object is written to <root>/.tmp/<pid>-<n>.part, then flushed, fsynced,
 * closed and renamed into place with RENAME_NOREPLACE (so an existing object
 * is never replaced), and the target directory is fsynced: after commit the
 * object survives a power cut, and before it nothing is visible.  A run
 * killed mid-write leaves only a .part file in .tmp/, which is harmless and
 * removed by the next open once it is a day old (a younger one may belong to
 * a run still going on another process).
 */
#include "load/lake.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/failpoint.h"
#include "util/fsutil.h"

#define ORPHAN_AGE_S (24 * 3600)

struct lake_file {
    struct lake base;
    char root[PATH_MAX];
    unsigned next_id;
};

struct lake_file_writer {
    struct lake_writer base;
    struct lake_file *lk;
    FILE *f;
    char tmp[PATH_MAX];
    char final[PATH_MAX];
};

static void clean_orphans(const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    if (!d) {
        return;
    }
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".part") != 0) {
            continue;
        }
        char p[PATH_MAX];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
        if (stat(p, &st) == 0 && now - st.st_mtime > ORPHAN_AGE_S) {
            unlink(p);
        }
    }
    closedir(d);
}

static int file_open(const char *url, const struct config *cfg, struct lake **out,
                     struct err *e)
{
    const char *path = strncmp(url, "file://", 7) == 0 ? url + 7 : url;
    struct lake_file *lk = calloc(1, sizeof(*lk));
    if (!lk) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    lk->base.ops = &lake_file_ops;
    if (path[0] == '/') {
        snprintf(lk->root, sizeof(lk->root), "%s", path);
    }
    else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd))) {
            free(lk);
            return err_set(e, ERR_LAKE, "cannot resolve the lake path '%s'", path);
        }
        snprintf(lk->root, sizeof(lk->root), "%s/%s", cwd, path);
    }
    size_t n = strlen(lk->root);
    while (n > 1 && lk->root[n - 1] == '/') {
        lk->root[--n] = '\0';
    }
    char tmpdir[PATH_MAX];
    if (strlen(lk->root) + 8 > sizeof(tmpdir) - 1024) {
        free(lk);
        return err_set(e, ERR_LAKE, "lake path '%s' is too long", path);
    }
    snprintf(tmpdir, sizeof(tmpdir), "%s/.tmp", lk->root);
    err_clear(e);
    if (fs_mkdir_p(tmpdir, e) != 0 || access(tmpdir, W_OK) != 0) {
        if (e->code == ERR_OK) {
            err_set(e, ERR_LAKE, "lake directory '%s' is not writable: %s", lk->root,
                    strerror(errno));
        }
        else {
            char why[sizeof(e->msg)];
            snprintf(why, sizeof(why), "%s", e->msg);
            err_set(e, ERR_LAKE, "lake directory '%s' is not usable: %s", lk->root, why);
        }
        free(lk);
        return ERR_LAKE;
    }
    clean_orphans(tmpdir);
    *out = &lk->base;
    return 0;
}

static int file_writer_open(struct lake *base, const char *key, struct lake_writer **out,
                            struct err *e)
{
    struct lake_file *lk = (struct lake_file *)base;
    struct lake_file_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    w->base.ops = &lake_file_ops;
    w->lk = lk;
    int n1 = snprintf(w->final, sizeof(w->final), "%s/%s", lk->root, key);
    int n2 = snprintf(w->tmp, sizeof(w->tmp), "%s/.tmp/%ld-%u.part", lk->root, (long)getpid(),
                      lk->next_id++);
    if (n1 < 0 || (size_t)n1 >= sizeof(w->final) || n2 < 0 || (size_t)n2 >= sizeof(w->tmp)) {
        free(w);
        return err_set(e, ERR_LAKE, "lake path for %s is too long", key);
    }
    if (access(w->final, F_OK) == 0) {
        free(w);
        return err_set(e, ERR_LAKE, "lake object %s already exists", key);
    }
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || !(w->f = fdopen(fd, "wb"))) {
        int saved = errno;
        if (fd >= 0) {
            close(fd);
        }
        unlink(w->tmp);
        err_set(e, ERR_LAKE, "cannot create '%s': %s", w->tmp, strerror(saved));
        free(w);
        return ERR_LAKE;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    *out = &w->base;
    return 0;
}

static int file_write(struct lake_writer *base, const void *data, size_t n, struct err *e)
{
    struct lake_file_writer *w = (struct lake_file_writer *)base;
    if (n && fwrite(data, 1, n, w->f) != n) {
        return err_set(e, ERR_LAKE, "cannot write '%s': %s", w->tmp, strerror(errno));
    }
    return 0;
}

static void file_abort(struct lake_writer *base)
{
    struct lake_file_writer *w = (struct lake_file_writer *)base;
    if (w->f) {
        fclose(w->f);
    }
    unlink(w->tmp);
    free(w);
}

static int file_commit(struct lake_writer *base, struct err *e)
{
    struct lake_file_writer *w = (struct lake_file_writer *)base;
    const char *step = "flush";
    if (fflush(w->f) != 0) {
        goto fail;
    }
    step = "fsync";
    if (fsync(fileno(w->f)) != 0) {
        goto fail;
    }
    step = "close";
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0) {
        goto fail;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", w->final);
    *strrchr(dir, '/') = '\0';
    if (fs_mkdir_p(dir, e) != 0) {
        file_abort(base);
        e->code = ERR_LAKE;   /* fs_mkdir_p's message names the directory */
        return ERR_LAKE;
    }
    step = "rename";
    if (renameat2(AT_FDCWD, w->tmp, AT_FDCWD, w->final, RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST) {
            err_set(e, ERR_LAKE, "lake object '%s' already exists; not overwritten", w->final);
            file_abort(base);
            return ERR_LAKE;
        }
        /* File systems without RENAME_NOREPLACE: link() also refuses to
         * replace an existing name. */
        if (errno != EINVAL || link(w->tmp, w->final) != 0) {
            goto fail;
        }
        unlink(w->tmp);
    }
    if (fs_fsync_dir_of(w->final, e) != 0) {
        free(w);
        return ERR_LAKE;
    }
    free(w);
    return 0;
fail:
    err_set(e, ERR_LAKE, "cannot %s lake object '%s': %s", step, w->final, strerror(errno));
    file_abort(base);
    return ERR_LAKE;
}

static void file_uri(const struct lake *base, const char *key, char *out, size_t n)
{
    const struct lake_file *lk = (const struct lake_file *)base;
    snprintf(out, n, "file://%s/%s", lk->root, key);
}

static void file_close(struct lake *base)
{
    free(base);
}

const struct lake_ops lake_file_ops = {
    .scheme = "file",
    .open = file_open,
    .writer_open = file_writer_open,
    .write = file_write,
    .commit = file_commit,
    .abort = file_abort,
    .uri = file_uri,
    .close = file_close,
};
