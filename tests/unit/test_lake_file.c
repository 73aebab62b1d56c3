/*
 * test_lake_file.c - unit tests for the local-directory lake
 * (src/load/lake_file.c through the lake.c seam): put makes the object
 * visible with its content, a second put of the same key fails and keeps the
 * first content, abort and failed puts leave nothing behind (not even in
 * .tmp), streamed writes are invisible until commit, nested keys create
 * their directories, stale .part files are cleaned on open, key validation,
 * opening a lake under a regular file, and the scheme checks of
 * lake_url_supported, and an object directory blocked by a file.  Each test
 * works in its own mkdtemp directory.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"

#include "load/lake.h"
#include "util/err.h"

struct fixture {
    char dir[256];
    char lake[300];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/dataops_test_lake_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->lake, sizeof(f->lake), "%s/lake", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* The whole content of a file, or NULL if it does not exist. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        return NULL;
    }
    char *p = NULL;
    size_t cap = 0;
    size_t n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            p = realloc(p, cap);
            assert_non_null(p);
        }
        size_t got = fread(p + n, 1, 4096, fp);
        n += got;
        if (got == 0) {
            break;
        }
    }
    fclose(fp);
    p[n] = '\0';
    *len = n;
    return p;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static struct lake *open_lake(const char *url)
{
    struct lake *lk = NULL;
    struct err e;
    err_clear(&e);
    if (lake_open(url, NULL, &lk, &e) != 0) {
        fail_msg("lake_open(%s): %s", url, e.msg);
    }
    assert_non_null(lk);
    return lk;
}

static void assert_file_content(const char *path, const char *want)
{
    size_t len = 0;
    char *got = slurp(path, &len);
    if (!got) {
        fail_msg("%s does not exist", path);
    }
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
    free(got);
}

static void test_put_then_visible(void **state)
{
    struct fixture *f = *state;
    struct lake *lk = open_lake(f->lake);
    char tmpdir[512];
    snprintf(tmpdir, sizeof(tmpdir), "%s/.tmp", f->lake);
    assert_int_equal(count_entries(tmpdir), 0);

    struct err e;
    err_clear(&e);
    const char *content = "a,b\n1,2\n";
    assert_int_equal(lake_put(lk, "ds/BTCUSDT/1m/part-0001.csv", content, strlen(content), &e),
                     0);
    char path[512];
    snprintf(path, sizeof(path), "%s/ds/BTCUSDT/1m/part-0001.csv", f->lake);
    assert_file_content(path, content);
    assert_int_equal(count_entries(tmpdir), 0);

    /* An empty object is an object too. */
    assert_int_equal(lake_put(lk, "empty.csv", "", 0, &e), 0);
    snprintf(path, sizeof(path), "%s/empty.csv", f->lake);
    assert_file_content(path, "");

    char uri[1024];
    lake_uri(lk, "ds/BTCUSDT/1m/part-0001.csv", uri, sizeof(uri));
    char want[1024];
    snprintf(want, sizeof(want), "file://%s/ds/BTCUSDT/1m/part-0001.csv", f->lake);
    assert_string_equal(uri, want);
    lake_close(lk);
}

static void test_second_put_refused(void **state)
{
    struct fixture *f = *state;
    struct lake *lk = open_lake(f->lake);
    struct err e;
    err_clear(&e);
    assert_int_equal(lake_put(lk, "k/obj.csv", "first", 5, &e), 0);
    err_clear(&e);
    assert_int_equal(lake_put(lk, "k/obj.csv", "second!", 7, &e), ERR_LAKE);
    assert_int_equal(e.code, ERR_LAKE);
    assert_non_null(strstr(e.msg, "k/obj.csv"));
    assert_non_null(strstr(e.msg, "exists"));
    char path[512];
    snprintf(path, sizeof(path), "%s/k/obj.csv", f->lake);
    assert_file_content(path, "first");
    char tmpdir[512];
    snprintf(tmpdir, sizeof(tmpdir), "%s/.tmp", f->lake);
    assert_int_equal(count_entries(tmpdir), 0);
    lake_close(lk);

    /* The same through a second lake handle on the same directory. */
    lk = open_lake(f->lake);
    err_clear(&e);
    assert_int_equal(lake_put(lk, "k/obj.csv", "third", 5, &e), ERR_LAKE);
    assert_file_content(path, "first");
    lake_close(lk);
}

/* Two writers racing for one key: the first commit wins, the second commit
 * is refused (RENAME_NOREPLACE) and its data is dropped. */
static void test_concurrent_writers_one_key(void **state)
{
    struct fixture *f = *state;
    struct lake *lk = open_lake(f->lake);
    struct err e;
    err_clear(&e);
    struct lake_writer *w1 = NULL;
    struct lake_writer *w2 = NULL;
    assert_int_equal(lake_writer_open(lk, "race.csv", &w1, &e), 0);
    assert_int_equal(lake_writer_open(lk, "race.csv", &w2, &e), 0);
    assert_int_equal(lake_write(w1, "one", 3, &e), 0);
    assert_int_equal(lake_write(w2, "two", 3, &e), 0);
    assert_int_equal(lake_commit(w1, &e), 0);
    err_clear(&e);
    assert_int_equal(lake_commit(w2, &e), ERR_LAKE);
    assert_non_null(strstr(e.msg, "race.csv"));
    char path[512];
    snprintf(path, sizeof(path), "%s/race.csv", f->lake);
    assert_file_content(path, "one");
    char tmpdir[512];
    snprintf(tmpdir, sizeof(tmpdir), "%s/.tmp", f->lake);
    assert_int_equal(count_entries(tmpdir), 0);
    lake_close(lk);
}

static void test_stream_and_abort(void **state)
{
    struct fixture *f = *state;
    struct lake *lk = open_lake(f->lake);
    char tmpdir[512];
    snprintf(tmpdir, sizeof(tmpdir), "%s/.tmp", f->lake);
    char path[512];
    snprintf(path, sizeof(path), "%s/s/streamed.csv", f->lake);
    struct err e;
    err_clear(&e);

    /* Streamed in pieces: invisible until commit. */
    struct lake_writer *w = NULL;
    assert_int_equal(lake_writer_open(lk, "s/streamed.csv", &w, &e), 0);
    assert_non_null(w);
    char chunk[1000];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 300; i++) {
        assert_int_equal(lake_write(w, chunk, sizeof(chunk), &e), 0);
    }
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_entries(tmpdir), 1);
    assert_int_equal(lake_commit(w, &e), 0);
    size_t len = 0;
    char *got = slurp(path, &len);
    assert_non_null(got);
    assert_int_equal(len, 300000);
    free(got);
    assert_int_equal(count_entries(tmpdir), 0);

    /* Aborted: nothing visible, nothing left in .tmp. */
    w = NULL;
    assert_int_equal(lake_writer_open(lk, "s/aborted.csv", &w, &e), 0);
    assert_int_equal(lake_write(w, "partial", 7, &e), 0);
    assert_int_equal(count_entries(tmpdir), 1);
    lake_abort(w);
    snprintf(path, sizeof(path), "%s/s/aborted.csv", f->lake);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_entries(tmpdir), 0);
    /* The key is still free after an abort. */
    assert_int_equal(lake_put(lk, "s/aborted.csv", "done", 4, &e), 0);
    assert_file_content(path, "done");
    lake_abort(NULL);   /* harmless */
    lake_close(lk);
}

/* A .part file older than a day is removed on open; a young one stays (it
 * may belong to a run still going). */
static void test_orphans_cleaned(void **state)
{
    struct fixture *f = *state;
    struct lake *lk = open_lake(f->lake);
    lake_close(lk);
    char old_part[512];
    char young_part[512];
    char other[512];
    snprintf(old_part, sizeof(old_part), "%s/.tmp/999-1.part", f->lake);
    snprintf(young_part, sizeof(young_part), "%s/.tmp/999-2.part", f->lake);
    snprintf(other, sizeof(other), "%s/.tmp/keep.txt", f->lake);
    const char *paths[] = {old_part, young_part, other};
    for (int i = 0; i < 3; i++) {
        FILE *fp = fopen(paths[i], "wb");
        assert_non_null(fp);
        fputs("junk", fp);
        fclose(fp);
    }
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= 2 * 24 * 3600;
    tv[1] = tv[0];
    assert_int_equal(utimes(old_part, tv), 0);
    assert_int_equal(utimes(other, tv), 0);
    lk = open_lake(f->lake);
    assert_int_equal(access(old_part, F_OK), -1);
    assert_int_equal(access(young_part, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    lake_close(lk);
}

static void test_file_url_and_trailing_slash(void **state)
{
    struct fixture *f = *state;
    char url[600];
    snprintf(url, sizeof(url), "file://%s//", f->lake);
    struct lake *lk = open_lake(url);
    struct err e;
    err_clear(&e);
    assert_int_equal(lake_put(lk, "x.csv", "1", 1, &e), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/x.csv", f->lake);
    assert_file_content(path, "1");
    char uri[1024];
    char want[1024];
    lake_uri(lk, "x.csv", uri, sizeof(uri));
    snprintf(want, sizeof(want), "file://%s/x.csv", f->lake);
    assert_string_equal(uri, want);
    lake_close(lk);
}

static void test_key_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "a", "a/b", "ds/BTCUSDT/1m/2024-09-04/part-0001.csv", "a/.hidden", "a/b..c",
        "...", "a/...", "x=1/y_2/z-3.csv",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!lake_key_valid(good[i])) {
            fail_msg("lake_key_valid(\"%s\") should accept it", good[i]);
        }
    }
    static const char *const bad[] = {
        "../x", "/abs", "a//b", "a/./b", "", "a b", "a/../b", "..", ".", "a/..", "a/.", "./a",
        "a/", "a\\b", "a\tb", "a\nb", "caf\xc3\xa9", "a\x7f",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (lake_key_valid(bad[i])) {
            fail_msg("lake_key_valid(\"%s\") should reject it", bad[i]);
        }
    }
    char long_key[1100];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_false(lake_key_valid(long_key));
    long_key[1024] = '\0';
    assert_true(lake_key_valid(long_key));
}

/* A bad key never reaches the file system. */
static void test_put_with_bad_key(void **state)
{
    struct fixture *f = *state;
    struct lake *lk = open_lake(f->lake);
    struct err e;
    err_clear(&e);
    assert_int_equal(lake_put(lk, "../escape.csv", "x", 1, &e), ERR_LAKE);
    assert_non_null(strstr(e.msg, "../escape.csv"));
    char path[512];
    snprintf(path, sizeof(path), "%s/escape.csv", f->dir);
    assert_int_equal(access(path, F_OK), -1);
    err_clear(&e);
    assert_int_equal(lake_put(lk, "/abs.csv", "x", 1, &e), ERR_LAKE);
    assert_int_equal(access("/abs.csv", F_OK), -1);
    char tmpdir[512];
    snprintf(tmpdir, sizeof(tmpdir), "%s/.tmp", f->lake);
    assert_int_equal(count_entries(tmpdir), 0);
    lake_close(lk);
}

/* A lake path that runs through a regular file cannot be opened (tests run
 * as root, so a chmod'ed directory would not show this). */
static void test_open_under_a_file(void **state)
{
    struct fixture *f = *state;
    put_file(f->dir, "file", "not a directory");
    char file[512];
    snprintf(file, sizeof(file), "%s/file", f->dir);
    char url[600];
    snprintf(url, sizeof(url), "%s/file/lake", f->dir);
    struct lake *lk = NULL;
    struct err e;
    err_clear(&e);
    assert_int_equal(lake_open(url, NULL, &lk, &e), ERR_LAKE);
    assert_int_equal(e.code, ERR_LAKE);
    assert_null(lk);
    assert_true(strncmp(e.msg, "lake directory '", 16) == 0);
    assert_non_null(strstr(e.msg, url));

    /* The lake itself being a file. */
    err_clear(&e);
    assert_int_equal(lake_open(file, NULL, &lk, &e), ERR_LAKE);
    assert_non_null(strstr(e.msg, file));
}

/* The message of a failed open is readable: it says what failed exactly
 * once, with the cause (file_open once formatted e->msg into itself and
 * lost the cause). */
static void test_open_error_message_not_garbled(void **state)
{
    struct fixture *f = *state;
    put_file(f->dir, "file", "");
    char url[600];
    snprintf(url, sizeof(url), "%s/file/lake", f->dir);
    struct lake *lk = NULL;
    struct err e;
    err_clear(&e);
    assert_int_equal(lake_open(url, NULL, &lk, &e), ERR_LAKE);
    const char *first = strstr(e.msg, "lake directory");
    assert_non_null(first);
    if (strstr(first + 1, "lake directory")) {
        fail_msg("garbled message: %s", e.msg);
    }
    /* The cause from fs_mkdir_p survives. */
    assert_non_null(strstr(e.msg, "cannot create directory"));
    assert_non_null(strstr(e.msg, "Not a directory"));
}

/* An object whose directory cannot be created (a regular file is in the
 * way) fails with ERR_LAKE naming the path, and leaves nothing in .tmp.
 * BUG if this fails: see the report (lake_file.c file_commit does
 * err_set(e, ERR_LAKE, "%s", e->msg), formatting the message into itself;
 * glibc empties the buffer first, so the message comes out empty). */
static void test_bug_commit_directory_blocked(void **state)
{
    struct fixture *f = *state;
    struct lake *lk = open_lake(f->lake);
    char blocker[512];
    snprintf(blocker, sizeof(blocker), "%s/ds", f->lake);
    FILE *fp = fopen(blocker, "wb");
    assert_non_null(fp);
    fclose(fp);
    struct err e;
    err_clear(&e);
    assert_int_equal(lake_put(lk, "ds/part.csv", "x", 1, &e), ERR_LAKE);
    assert_int_equal(e.code, ERR_LAKE);
    if (!strstr(e.msg, blocker) || !strstr(e.msg, "not a directory")) {
        fail_msg("message \"%s\" should name %s and say it is not a directory", e.msg,
                 blocker);
    }
    char tmpdir[512];
    snprintf(tmpdir, sizeof(tmpdir), "%s/.tmp", f->lake);
    assert_int_equal(count_entries(tmpdir), 0);
    lake_close(lk);
}

static void test_url_supported(void **state)
{
    (void)state;
    char why[256];
    static const char *const ok[] = {"/tmp/lake", "data/lake", "file:///tmp/lake", "lake"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        why[0] = '\0';
        if (!lake_url_supported(ok[i], why, sizeof(why))) {
            fail_msg("lake_url_supported(\"%s\"): %s", ok[i], why);
        }
    }
    /* Cloud lakes are refused with a reason unless compiled in. */
    why[0] = '\0';
#ifdef DATAOPS_HAVE_GCS
    assert_true(lake_url_supported("gs://b", why, sizeof(why)));
#else
    assert_false(lake_url_supported("gs://b", why, sizeof(why)));
    assert_non_null(strstr(why, "gs://"));
    assert_non_null(strstr(why, "not supported by this build"));
#endif
    why[0] = '\0';
#ifdef DATAOPS_HAVE_S3
    assert_true(lake_url_supported("s3://bucket/x", why, sizeof(why)));
#else
    assert_false(lake_url_supported("s3://bucket/x", why, sizeof(why)));
    assert_non_null(strstr(why, "s3://"));
#endif
    why[0] = '\0';
    assert_false(lake_url_supported("ftp://x", why, sizeof(why)));
    assert_non_null(strstr(why, "unknown URL scheme 'ftp'"));
    assert_non_null(strstr(why, "ftp://x"));
    why[0] = '\0';
    assert_false(lake_url_supported("", why, sizeof(why)));
    assert_non_null(strstr(why, "empty"));

    /* lake_open refuses them as configuration errors. */
    struct lake *lk = NULL;
    struct err e;
    err_clear(&e);
    assert_int_equal(lake_open("ftp://x", NULL, &lk, &e), ERR_CONFIG);
    assert_non_null(strstr(e.msg, "ftp"));
    assert_null(lk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_then_visible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_put_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_and_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphans_cleaned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_url_and_trailing_slash, setup, teardown),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test_setup_teardown(test_put_with_bad_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_under_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_error_message_not_garbled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bug_commit_directory_blocked, setup, teardown),
        cmocka_unit_test(test_url_supported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
