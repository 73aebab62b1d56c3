/*
 * check.h - `dataops check`: a preflight that moves no data.
 */
#ifndef DATAOPS_CHECK_H
#define DATAOPS_CHECK_H

#include "conf/config.h"

/* Verify the exchange, the symbols, the lake and the warehouse; print one
 * line per check on stdout.  Returns the exit code (0 all passed, 1 a check
 * failed, 2 a configuration problem). */
int check_run(const struct config *cfg);

#endif
