/*
 * pipeline.h - one run of the ELT pipeline over every configured pair.
 */
#ifndef DATAOPS_PIPELINE_H
#define DATAOPS_PIPELINE_H

#include "conf/config.h"

/* Run once; returns the process exit code (0 ok, 1 runtime failure, 2
 * configuration error, 3 data-quality gate failed, 4 warehouse locked) and
 * prints a summary of what landed on stdout. */
int pipeline_run(const struct config *cfg);

#endif
