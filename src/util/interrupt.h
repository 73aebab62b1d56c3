/*
 * interrupt.h - SIGTERM/SIGINT handling.
 *
 * Kubernetes stops a pod with SIGTERM and waits terminationGracePeriodSeconds
 * before SIGKILL.  The handler only sets a flag; the pipeline checks it
 * between pages and batches, HTTP transfers abort through libcurl's progress
 * callback, and sleeps wake early.  The current warehouse transaction is
 * rolled back, the run is recorded as interrupted, and the process exits 1.
 */
#ifndef DATAOPS_INTERRUPT_H
#define DATAOPS_INTERRUPT_H

void interrupt_install(void);
int interrupt_requested(void);
/* Sleep up to ms milliseconds; returns early (non-zero) when interrupted. */
int interrupt_sleep_ms(long ms);

#endif
