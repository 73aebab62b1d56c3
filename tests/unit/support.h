/*
 * support.h - helpers shared by the unit tests (linked into each of them).
 */
#ifndef DATAOPS_TEST_SUPPORT_H
#define DATAOPS_TEST_SUPPORT_H

#include <stddef.h>

/* Remove path and everything under it (no error if it does not exist). */
int rm_rf(const char *path);
/* Read <DATAOPS_TESTDATA>/<rel> into a malloc'd NUL-terminated buffer;
 * fails the running cmocka test if it cannot. */
char *read_testdata(const char *rel, size_t *len);
/* Create <dir>/<name> holding text (a regular file where a directory is
 * expected, in the tests of bad paths); fails the running test if it cannot. */
void put_file(const char *dir, const char *name, const char *text);

#endif
