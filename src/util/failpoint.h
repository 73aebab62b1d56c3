/*
 * failpoint.h - named points where a test can make the program fail.
 *
 * DATAOPS_FAILPOINT=name[:action][,name[:action]...] is read once at start.
 * Actions: "kill" (default: SIGKILL the process, as an OOM killer or a node
 * failure would), "error" (the point returns ERR_IO so the run fails cleanly),
 * "exit" (_exit(1) without cleanup).  With the variable unset a failpoint
 * costs one branch on a NULL pointer.
 *
 * The points are listed in failpoint.c (failpoint_names) and documented in
 * the README's "Failure modes" section; the crash test iterates over them.
 */
#ifndef DATAOPS_FAILPOINT_H
#define DATAOPS_FAILPOINT_H

#include "util/err.h"

void failpoint_init(const char *spec);   /* NULL or "" disables */
void failpoint_shutdown(void);
/* Returns 0, or ERR_IO (with e filled) for the "error" action; does not
 * return for "kill" and "exit". */
int failpoint_hit(const char *name, struct err *e);
/* NULL-terminated list of every point in the program, for tests and --help. */
extern const char *const failpoint_names[];

#define FAILPOINT(name, e) (failpoint_active ? failpoint_hit(name, e) : 0)
extern int failpoint_active;

#endif
