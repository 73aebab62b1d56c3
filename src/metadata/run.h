/*
 * run.h - the record of one run: who ran what, when, with which outcome,
 * and per (symbol, interval) what was requested, extracted, loaded,
 * rejected and transformed.  The warehouse keeps it in its runs tables;
 * metadata.json in the lake is the same record as JSON.
 */
#ifndef DATAOPS_RUN_H
#define DATAOPS_RUN_H

#include <stdint.h>

#include "schema/interval.h"
#include "util/buf.h"

#define RUN_MAX_PAIRS 1024
#define RUN_MAX_GAPS 32

struct gap {
    int64_t from;   /* first missing open time */
    int64_t to;     /* open time of the next candle that exists */
};

struct pair_stats {
    char symbol[24];
    const struct interval *iv;
    int64_t range_start;        /* requested [start, end) of open times */
    int64_t range_end;
    int64_t first_open;         /* of rows loaded this run; 0 if none */
    int64_t last_open;
    long long pages;
    long long extracted;        /* closed rows received */
    long long open_skipped;     /* still-forming candles not stored */
    long long raw_loaded;
    long long rejected;         /* raw rows quarantined */
    long long transformed;
    long long transformed_rejected;
    long long short_candles;    /* close_time before the interval's end */
    long long zero_trade;
    long long missing_candles;  /* open times the exchange had no candle for */
    long long ngaps;
    struct gap gaps[RUN_MAX_GAPS];  /* the first gaps, for the report */
    int raw_objects;
    int transformed_objects;
    char status[16];            /* pending, ok, rejected, failed, interrupted */
    char error[512];
};

/* Where a run's time goes, for the run record and the benchmarks.  Timed
 * per page or batch, never per row. */
enum run_stage {
    RS_EXTRACT = 0,         /* fetching and parsing pages */
    RS_VALIDATE_RAW,
    RS_LAKE_RAW,            /* raw CSV and its object */
    RS_LOAD_RAW,            /* raw upserts and commits */
    RS_READ_RAW,            /* reading raw rows back for the transform */
    RS_TRANSFORM,           /* casts and transformed validation */
    RS_LAKE_TRANSFORMED,
    RS_LOAD_TRANSFORMED,
    RS_METADATA,            /* run records and artifacts */
    RS__COUNT
};

extern const char *const run_stage_names[RS__COUNT];

struct run {
    char run_id[37];
    char git_commit[64];
    char version[32];
    char hostname[64];
    int64_t started_at;
    int64_t ended_at;
    char status[16];            /* running, ok, rejected, failed, interrupted */
    char error[512];
    int exit_code;
    struct pair_stats *pairs;
    size_t npairs;
    int64_t stage_ns[RS__COUNT];
};

int64_t run_clock_ns(void);

/* Fill id, commit, host and start time; pairs is allocated for cap pairs. */
int run_init(struct run *r, size_t cap);
void run_free(struct run *r);
struct pair_stats *run_add_pair(struct run *r, const char *symbol, const struct interval *iv);
/* Record a hole between two consecutive loaded candles. */
void pair_note_gap(struct pair_stats *p, int64_t from, int64_t to, long long missing);
/* metadata.json: the run and every pair, as JSON. */
int run_to_json(const struct run *r, struct buf *out);

#endif
