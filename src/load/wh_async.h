/*
 * wh_async.h - batch loads on a writer thread, behind the warehouse seam
 * (wh_async.c says how the contract of wh.h is kept).
 */
#ifndef DATAOPS_WH_ASYNC_H
#define DATAOPS_WH_ASYNC_H

#include "load/wh.h"

/* Wrap an open backend that sets WH_CAP_ASYNC_PUTS; the wrapper owns it
 * from then on (closing the wrapper closes it).  On failure inner is left
 * to the caller. */
int wh_async_wrap(struct wh *inner, struct wh **out, struct err *e);

#endif
