/*
 * wh_sqlite.c - the warehouse as one SQLite file (the embedded default).
 *
 * Settings chosen for the job: WAL journal (readers never block the loader,
 * a crash mid-transaction leaves the last committed state), synchronous
 * NORMAL (in WAL mode a commit survives a process crash; a power cut may
 * lose the last commits but never corrupts, and the next run refetches what
 * the watermark does not cover), and WITHOUT ROWID tables clustered on
 * (symbol, interval, open_time), so appending in time order touches the
 * right-most pages only and the watermark is one index probe.  A new file
 * gets 64 KiB pages: a bulk load then makes a sixteenth of the page writes
 * (and of the WAL and checkpoint system calls) that 4 KiB pages cost, and
 * the b-tree is a level shallower; an existing file keeps its page size.
 *
 * Loads run on the writer thread of wh_async.c (WH_CAP_ASYNC_PUTS), which
 * uses the connection only while the caller waits, so the connection is
 * opened without SQLite's own mutex.  scan_raw reads through a second,
 * read-only connection (WH_CAP_CONCURRENT_SCAN): in WAL mode it sees the
 * committed rows while the writer inserts the next batch of the other
 * table.
 *
 * The run lock is an flock() on "<db>.lock": the kernel releases it when the
 * process dies, however it dies, so a killed run never wedges the next one.
 * SQLite's own locking would not do: it protects transactions, not a run.
 */
#include "load/wh.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/failpoint.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"

#define BUSY_TIMEOUT_MS 10000

enum stmt_id {
    ST_UPSERT_RAW,
    ST_UPSERT_T,
    ST_WM_RAW,
    ST_WM_T,
    ST_QUARANTINE,
    ST_HOLES,           /* backfill planner (holes, ranges): docs/backfill.md */
    ST_RANGES,
    ST_RANGE_PUT,
    ST_RANGE_DEL,
    ST__COUNT
};

struct wh_sqlite {
    struct wh base;
    sqlite3 *db;
    sqlite3 *rdb;             /* read-only, scan_raw's own (opened by its first call) */
    sqlite3_stmt *scan;
    char path[PATH_MAX];
    int lock_fd;
    int in_txn;
    char *raw;      /* quoted identifiers */
    char *tr;
    char *local;
    const char *raw_name;     /* the same, unquoted (borrowed from the config) */
    const char *tr_name;
    const char *local_name;
    sqlite3_stmt *st[ST__COUNT];
};

static int conn_err(struct wh_sqlite *w, sqlite3 *db, struct err *e, const char *what)
{
    return err_set(e, ERR_WAREHOUSE, "sqlite %s: %s (%s)", w->path, sqlite3_errmsg(db), what);
}

static int db_err(struct wh_sqlite *w, struct err *e, const char *what)
{
    return conn_err(w, w->db, e, what);
}

static int exec(struct wh_sqlite *w, const char *sql, struct err *e)
{
    char *msg = NULL;
    if (sqlite3_exec(w->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(e, ERR_WAREHOUSE, "sqlite %s: %s", w->path, msg ? msg : "error");
        sqlite3_free(msg);
        return ERR_WAREHOUSE;
    }
    return 0;
}

/*
 * The connection's settings, then the schema: the first access, which
 * notices a file that is not a database at all.  When another process
 * opens or creates the file at the same moment (two runs started
 * together; one of them switches the new file to WAL), SQLite may answer
 * SQLITE_BUSY without calling the busy handler, because waiting could
 * deadlock: the statements are then tried again, for as long as the busy
 * timeout.
 */
static int first_access(struct wh_sqlite *w, struct err *e)
{
    const char *sql = "PRAGMA page_size=65536; PRAGMA journal_mode=WAL; "
                      "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF; "
                      "PRAGMA cache_size=-16384; SELECT count(*) FROM sqlite_master;";
    int64_t deadline = time_monotonic_ms() + BUSY_TIMEOUT_MS;
    for (;;) {
        int rc = exec(w, sql, e);
        if (rc == 0 || (sqlite3_errcode(w->db) & 0xff) != SQLITE_BUSY ||
            time_monotonic_ms() >= deadline) {
            return rc;
        }
        usleep(20000);
    }
}

static void sq_close(struct wh *base)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (!w) {
        return;
    }
    for (int i = 0; i < ST__COUNT; i++) {
        sqlite3_finalize(w->st[i]);
    }
    sqlite3_finalize(w->scan);
    sqlite3_close(w->rdb);
    if (w->in_txn) {
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close(w->db);
    if (w->lock_fd >= 0) {
        close(w->lock_fd);   /* releases the flock */
    }
    sqlite3_free(w->raw);
    sqlite3_free(w->tr);
    sqlite3_free(w->local);
    free(w);
}

static int sq_open(const char *url, const struct wh_names *names, struct wh **out,
                   struct err *e)
{
    const char *path = url;
    if (strncmp(url, "sqlite://", 9) == 0) {
        path = url + 9;
    }
    if (!*path) {
        return err_set(e, ERR_CONFIG, "sqlite URL '%s' has no path", url);
    }
    struct wh_sqlite *w = calloc(1, sizeof(*w));
    if (!w) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    w->base.ops = &wh_sqlite_ops;
    w->lock_fd = -1;
    snprintf(w->path, sizeof(w->path), "%s", path);
    w->raw = sqlite3_mprintf("\"%w\"", names->raw_table);
    w->tr = sqlite3_mprintf("\"%w\"", names->transformed_table);
    w->local = sqlite3_mprintf("\"%w\"", names->local_time_column);
    w->raw_name = names->raw_table;
    w->tr_name = names->transformed_table;
    w->local_name = names->local_time_column;

    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (fs_mkdir_p(dir, e) != 0) {
            char why[sizeof(e->msg)];
            snprintf(why, sizeof(why), "%s", e->msg);
            sq_close(&w->base);
            return err_set(e, ERR_WAREHOUSE, "warehouse directory: %s", why);
        }
    }
    if (sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        int rc = err_set(e, ERR_WAREHOUSE, "cannot open SQLite warehouse '%s': %s", path,
                         w->db ? sqlite3_errmsg(w->db) : "out of memory");
        sq_close(&w->base);
        return rc;
    }
    sqlite3_busy_timeout(w->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(w->db, 1);
    if (first_access(w, e) != 0) {
        char msg[sizeof(e->msg)];
        snprintf(msg, sizeof(msg), "%s", e->msg);
        sq_close(&w->base);
        return err_set(e, ERR_WAREHOUSE, "'%s' is not a usable SQLite warehouse: %s", path,
                       msg);
    }
    *out = &w->base;
    return 0;
}

static int sq_lock(struct wh *base, long timeout_s, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    char lp[PATH_MAX + 8];
    snprintf(lp, sizeof(lp), "%s.lock", w->path);
    if (w->lock_fd >= 0) {
        close(w->lock_fd);   /* a retry after a failed attempt */
    }
    w->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w->lock_fd < 0) {
        return err_set(e, ERR_WAREHOUSE, "cannot open lock file '%s': %s", lp, strerror(errno));
    }
    int64_t deadline = time_monotonic_ms() + timeout_s * 1000;
    int waited = 0;
    while (flock(w->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            return err_set(e, ERR_WAREHOUSE, "cannot lock '%s': %s", lp, strerror(errno));
        }
        if (time_monotonic_ms() >= deadline) {
            char holder[128] = "";
            ssize_t n = pread(w->lock_fd, holder, sizeof(holder) - 1, 0);
            holder[n > 0 ? n : 0] = '\0';
            holder[strcspn(holder, "\n")] = '\0';
            return err_set(e, ERR_LOCKED, "another run holds the warehouse lock %s%s%s "
                           "(waited %lds; raise --lock-timeout to wait longer)", lp,
                           holder[0] ? ": " : "", holder, timeout_s);
        }
        if (!waited) {
            log_info("warehouse", "another run holds %s; waiting up to %lds", lp, timeout_s);
            waited = 1;
        }
        usleep(200 * 1000);
    }
    /* Say who holds it, for the operator of a second run. */
    char who[128];
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    int n = snprintf(who, sizeof(who), "pid %ld on %s\n", (long)getpid(), host);
    if (ftruncate(w->lock_fd, 0) == 0 && pwrite(w->lock_fd, who, (size_t)n, 0) < 0) {
        log_debug("warehouse", "cannot note the lock holder in %s", lp);
    }
    return 0;
}

static int has_column(struct wh_sqlite *w, const char *table, const char *column)
{
    sqlite3_stmt *ti = NULL;
    int has = 0;
    if (sqlite3_prepare_v2(w->db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1,
                           &ti, NULL) == SQLITE_OK) {
        sqlite3_bind_text(ti, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(ti, 2, column, -1, SQLITE_STATIC);
        has = sqlite3_step(ti) == SQLITE_ROW;
    }
    sqlite3_finalize(ti);
    return has;
}

static int sq_ensure_schema(struct wh *base, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    char *sql = sqlite3_mprintf(
        "BEGIN IMMEDIATE;"
        "CREATE TABLE IF NOT EXISTS %s ("
        " utc_datetime TEXT NOT NULL, open_time INTEGER NOT NULL,"
        " \"open\" TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL,"
        " \"close\" TEXT NOT NULL, volume TEXT NOT NULL, close_time INTEGER NOT NULL,"
        " quote_asset_volume TEXT NOT NULL, number_of_trades INTEGER NOT NULL,"
        " taker_buy_base_asset_volume TEXT NOT NULL,"
        " taker_buy_quote_asset_volume TEXT NOT NULL, \"ignore\" TEXT NOT NULL,"
        " updated_at TEXT NOT NULL, symbol TEXT NOT NULL, \"interval\" TEXT NOT NULL,"
        " PRIMARY KEY (symbol, \"interval\", open_time)) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS %s ("
        " utc_datetime TEXT NOT NULL, open_time TEXT NOT NULL,"
        " \"open\" REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL,"
        " \"close\" REAL NOT NULL, volume REAL NOT NULL, close_time TEXT NOT NULL,"
        " quote_asset_volume REAL NOT NULL, number_of_trades INTEGER NOT NULL,"
        " taker_buy_base_asset_volume REAL NOT NULL,"
        " taker_buy_quote_asset_volume REAL NOT NULL, \"ignore\" TEXT NOT NULL,"
        " updated_at TEXT NOT NULL, %s TEXT NOT NULL,"
        " symbol TEXT NOT NULL, \"interval\" TEXT NOT NULL,"
        " PRIMARY KEY (symbol, \"interval\", open_time)) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS dataops_quarantine ("
        " run_id TEXT NOT NULL, stage TEXT NOT NULL, symbol TEXT NOT NULL,"
        " \"interval\" TEXT NOT NULL, open_time INTEGER, reason TEXT NOT NULL,"
        " row_json TEXT, created_at TEXT NOT NULL);"
        "CREATE INDEX IF NOT EXISTS dataops_quarantine_pair ON dataops_quarantine"
        " (symbol, \"interval\", open_time);"
        "CREATE TABLE IF NOT EXISTS dataops_runs ("
        " run_id TEXT PRIMARY KEY, git_commit TEXT NOT NULL, version TEXT NOT NULL,"
        " hostname TEXT, started_at TEXT NOT NULL, ended_at TEXT, status TEXT NOT NULL,"
        " exit_code INTEGER, error TEXT, raw_table TEXT);"
        "CREATE TABLE IF NOT EXISTS dataops_run_pairs ("
        " run_id TEXT NOT NULL, symbol TEXT NOT NULL, \"interval\" TEXT NOT NULL,"
        " range_start INTEGER, range_end INTEGER, first_open INTEGER, last_open INTEGER,"
        " pages INTEGER, rows_extracted INTEGER, open_skipped INTEGER,"
        " rows_raw_loaded INTEGER, rows_rejected INTEGER, rows_transformed INTEGER,"
        " rows_transformed_rejected INTEGER, short_candles INTEGER, zero_trade INTEGER,"
        " gaps INTEGER, missing_candles INTEGER, status TEXT NOT NULL, error TEXT,"
        " PRIMARY KEY (run_id, symbol, \"interval\"));"
        /* The planner's ranges: known exchange gaps, hole fills to transform. */
        "CREATE TABLE IF NOT EXISTS dataops_ranges ("
        " kind TEXT NOT NULL, symbol TEXT NOT NULL, \"interval\" TEXT NOT NULL,"
        " range_from INTEGER NOT NULL, range_to INTEGER NOT NULL, run_id TEXT,"
        " recorded_at TEXT NOT NULL,"
        " PRIMARY KEY (kind, symbol, \"interval\", range_from)) WITHOUT ROWID;"
        "COMMIT;",
        w->raw, w->tr, w->local);
    if (!sql) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    int rc = exec(w, sql, e);
    sqlite3_free(sql);
    if (rc != 0) {
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    /* An existing transformed table made with another local-time column
     * name cannot take our rows: say so instead of failing on insert.
     * (SELECT "name" would not do: SQLite reads an unknown double-quoted
     * name as a string literal.) */
    if (!has_column(w, w->tr_name, w->local_name)) {
        return err_set(e, ERR_WAREHOUSE, "transformed table %s has no column %s (was it "
                       "created with another DATAOPS_LOCAL_TIME_COLUMN?)", w->tr, w->local);
    }
    /* dataops_runs made by an older dataops lacks raw_table (the lock's
     * scope, named for the other backends' sake: this file's lock covers
     * every run in it). */
    if (!has_column(w, "dataops_runs", "raw_table")) {
        if ((rc = exec(w, "ALTER TABLE dataops_runs ADD COLUMN raw_table TEXT", e)) != 0) {
            return rc;
        }
        log_info("warehouse", "added column raw_table to dataops_runs in %s", w->path);
    }
    return 0;
}

static int prepare(struct wh_sqlite *w, enum stmt_id id, struct err *e)
{
    if (w->st[id]) {
        sqlite3_reset(w->st[id]);
        sqlite3_clear_bindings(w->st[id]);
        return 0;
    }
    static const char *const cols =
        "utc_datetime, open_time, \"open\", high, low, \"close\", volume, close_time,"
        " quote_asset_volume, number_of_trades, taker_buy_base_asset_volume,"
        " taker_buy_quote_asset_volume, \"ignore\", updated_at";
    /* DO UPDATE only when a value differs, so a repeated load leaves the
     * row (and its updated_at) exactly as it was. */
    static const char *const upd =
        " ON CONFLICT (symbol, \"interval\", open_time) DO UPDATE SET"
        " utc_datetime = excluded.utc_datetime, \"open\" = excluded.\"open\","
        " high = excluded.high, low = excluded.low, \"close\" = excluded.\"close\","
        " volume = excluded.volume, close_time = excluded.close_time,"
        " quote_asset_volume = excluded.quote_asset_volume,"
        " number_of_trades = excluded.number_of_trades,"
        " taker_buy_base_asset_volume = excluded.taker_buy_base_asset_volume,"
        " taker_buy_quote_asset_volume = excluded.taker_buy_quote_asset_volume,"
        " \"ignore\" = excluded.\"ignore\", updated_at = excluded.updated_at";
    static const char *const differs =
        " WHERE (\"open\", high, low, \"close\", volume, close_time, quote_asset_volume,"
        " number_of_trades, taker_buy_base_asset_volume, taker_buy_quote_asset_volume,"
        " \"ignore\") IS NOT (excluded.\"open\", excluded.high, excluded.low,"
        " excluded.\"close\", excluded.volume, excluded.close_time,"
        " excluded.quote_asset_volume, excluded.number_of_trades,"
        " excluded.taker_buy_base_asset_volume, excluded.taker_buy_quote_asset_volume,"
        " excluded.\"ignore\")";
    char *sql = NULL;
    switch (id) {
    case ST_UPSERT_RAW:
        sql = sqlite3_mprintf("INSERT INTO %s (%s, symbol, \"interval\") VALUES (?,?,?,?,?,?,"
                              "?,?,?,?,?,?,?,?,?,?)%s%s", w->raw, cols, upd, differs);
        break;
    case ST_UPSERT_T:
        /* The local-time column takes part in "differs": a new time zone
         * must update rows that are otherwise identical. */
        sql = sqlite3_mprintf("INSERT INTO %s (%s, %s, symbol, \"interval\") VALUES (?,?,?,?,"
                              "?,?,?,?,?,?,?,?,?,?,?,?,?)%s, %s = excluded.%s%s OR %s IS NOT "
                              "excluded.%s", w->tr, cols, w->local, upd, w->local, w->local,
                              differs, w->local, w->local);
        break;
    case ST_WM_RAW:
        sql = sqlite3_mprintf("SELECT max(open_time) FROM %s WHERE symbol = ?1 AND "
                              "\"interval\" = ?2", w->raw);
        break;
    case ST_WM_T:
        sql = sqlite3_mprintf("SELECT max(open_time) FROM %s WHERE symbol = ?1 AND "
                              "\"interval\" = ?2", w->tr);
        break;
    case ST_QUARANTINE:
        sql = sqlite3_mprintf("INSERT INTO dataops_quarantine (run_id, stage, symbol,"
                              " \"interval\", open_time, reason, row_json, created_at)"
                              " VALUES (?,?,?,?,?,?,?,?)");
        break;
    case ST_HOLES:
        /* The pair's open times in order, straight off the primary key; the
         * gaps are found in C (sq_holes).  A LAG/LEAD window query says the
         * same but SQLite materialises the window: 0.8 s against 0.15 s for
         * a year of 1m candles. */
        sql = sqlite3_mprintf("SELECT open_time FROM %s WHERE symbol = ?1 AND \"interval\" = ?2"
                              " AND open_time >= ?3 AND open_time < ?4 ORDER BY open_time",
                              w->raw);
        break;
    case ST_RANGES:
        sql = sqlite3_mprintf("SELECT range_from, range_to FROM dataops_ranges WHERE kind = ?1"
                              " AND symbol = ?2 AND \"interval\" = ?3 ORDER BY range_from");
        break;
    case ST_RANGE_PUT:
        sql = sqlite3_mprintf("INSERT INTO dataops_ranges (kind, symbol, \"interval\","
                              " range_from, range_to, run_id, recorded_at) VALUES"
                              " (?1,?2,?3,?4,?5,?6,?7) ON CONFLICT (kind, symbol, \"interval\","
                              " range_from) DO UPDATE SET range_to = max(range_to,"
                              " excluded.range_to), run_id = excluded.run_id,"
                              " recorded_at = excluded.recorded_at");
        break;
    case ST_RANGE_DEL:
        sql = sqlite3_mprintf("DELETE FROM dataops_ranges WHERE kind = ?1 AND symbol = ?2 AND"
                              " \"interval\" = ?3 AND range_from = ?4 AND range_to = ?5");
        break;
    default:
        break;
    }
    if (!sql) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    int rc = sqlite3_prepare_v3(w->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &w->st[id], NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        return db_err(w, e, "prepare");
    }
    return 0;
}

static int sq_watermark(struct wh *base, enum wh_table t, const char *symbol,
                        const char *interval, int64_t *open_time, int *found, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    enum stmt_id id = t == WH_RAW ? ST_WM_RAW : ST_WM_T;
    if (prepare(w, id, e) != 0) {
        return e->code;
    }
    sqlite3_stmt *s = w->st[id];
    sqlite3_bind_text(s, 1, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, interval, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        return db_err(w, e, "watermark");
    }
    *found = sqlite3_column_type(s, 0) != SQLITE_NULL;
    if (*found) {
        if (t == WH_RAW) {
            *open_time = sqlite3_column_int64(s, 0);
        }
        else {
            const char *txt = (const char *)sqlite3_column_text(s, 0);
            char why[64];
            if (!txt || time_parse(txt, open_time, why, sizeof(why)) != 0) {
                sqlite3_reset(s);
                return err_set(e, ERR_WAREHOUSE, "transformed table holds an unreadable "
                               "open_time '%s'", txt ? txt : "NULL");
            }
        }
    }
    sqlite3_reset(s);
    return 0;
}

static int sq_begin(struct wh *base, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (exec(w, "BEGIN IMMEDIATE", e) != 0) {
        return e->code;
    }
    w->in_txn = 1;
    return 0;
}

static int step_done(struct wh_sqlite *w, sqlite3_stmt *s, struct err *e, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        return db_err(w, e, what);
    }
    return 0;
}

static int sq_put_raw(struct wh *base, const char *symbol, const char *interval,
                      const struct kline_batch *b, const char *updated_at, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (prepare(w, ST_UPSERT_RAW, e) != 0) {
        return e->code;
    }
    sqlite3_stmt *s = w->st[ST_UPSERT_RAW];
    sqlite3_bind_text(s, 14, updated_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 15, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 16, interval, -1, SQLITE_STATIC);
    for (size_t i = 0; i < b->n; i++) {
        const struct kline *k = &b->rows[i];
        char dt[24];
        time_format_sql(k->open_time, dt);
        sqlite3_bind_text(s, 1, dt, 23, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, k->open_time);
        for (int f = KS_OPEN; f <= KS_VOLUME; f++) {
            sqlite3_bind_text(s, 3 + f, k->s[f], k->len[f], SQLITE_STATIC);
        }
        sqlite3_bind_int64(s, 8, k->close_time);
        sqlite3_bind_text(s, 9, k->s[KS_QUOTE_VOLUME], k->len[KS_QUOTE_VOLUME], SQLITE_STATIC);
        sqlite3_bind_int64(s, 10, k->trades);
        sqlite3_bind_text(s, 11, k->s[KS_TAKER_BASE], k->len[KS_TAKER_BASE], SQLITE_STATIC);
        sqlite3_bind_text(s, 12, k->s[KS_TAKER_QUOTE], k->len[KS_TAKER_QUOTE], SQLITE_STATIC);
        sqlite3_bind_text(s, 13, k->s[KS_IGNORE], k->len[KS_IGNORE], SQLITE_STATIC);
        if (step_done(w, s, e, "raw upsert") != 0) {
            return e->code;
        }
    }
    return 0;
}

static int sq_put_transformed(struct wh *base, const char *symbol, const char *interval,
                              const struct tkline_batch *b, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (prepare(w, ST_UPSERT_T, e) != 0) {
        return e->code;
    }
    sqlite3_stmt *s = w->st[ST_UPSERT_T];
    sqlite3_bind_text(s, 16, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 17, interval, -1, SQLITE_STATIC);
    for (size_t i = 0; i < b->n; i++) {
        const struct tkline *t = &b->rows[i];
        sqlite3_bind_text(s, 1, t->utc_datetime, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, t->open_dt, -1, SQLITE_STATIC);
        for (int f = TN_OPEN; f <= TN_VOLUME; f++) {
            sqlite3_bind_double(s, 3 + f, t->v[f]);
        }
        sqlite3_bind_text(s, 8, t->close_dt, -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 9, t->v[TN_QUOTE_VOLUME]);
        sqlite3_bind_int64(s, 10, t->trades);
        sqlite3_bind_double(s, 11, t->v[TN_TAKER_BASE]);
        sqlite3_bind_double(s, 12, t->v[TN_TAKER_QUOTE]);
        sqlite3_bind_text(s, 13, t->ignore, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 14, t->updated_at, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 15, t->local_dt, -1, SQLITE_STATIC);
        if (step_done(w, s, e, "transformed upsert") != 0) {
            return e->code;
        }
    }
    return 0;
}

static int sq_put_quarantine(struct wh *base, const char *run_id, const char *stage,
                             const char *symbol, const char *interval, int64_t open_time,
                             const char *reason, const char *row_json, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (prepare(w, ST_QUARANTINE, e) != 0) {
        return e->code;
    }
    sqlite3_stmt *s = w->st[ST_QUARANTINE];
    char now[24];
    time_format_sql(time_now_ms(), now);
    sqlite3_bind_text(s, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, stage, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, interval, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, open_time);
    sqlite3_bind_text(s, 6, reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, row_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, now, -1, SQLITE_STATIC);
    return step_done(w, s, e, "quarantine insert");
}

static int sq_commit(struct wh *base, const char *lake_uri, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    (void)lake_uri;
    if (exec(w, "COMMIT", e) != 0) {
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        w->in_txn = 0;
        return e->code;
    }
    w->in_txn = 0;
    return 0;
}

static void sq_rollback(struct wh *base)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (w->in_txn) {
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        w->in_txn = 0;
    }
}

static void col_str(sqlite3_stmt *s, int col, struct kline *k, int slot)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    int n = sqlite3_column_bytes(s, col);
    if (!t || n < 0) {
        n = 0;
    }
    if (n >= KLINE_STR_MAX) {
        n = KLINE_STR_MAX - 1;
    }
    memcpy(k->s[slot], t ? (const char *)t : "", (size_t)n);
    k->s[slot][n] = '\0';
    k->len[slot] = (uint8_t)n;
}

/* scan_raw's connection and statement, made by its first call. */
static int open_scan(struct wh_sqlite *w, struct err *e)
{
    if (sqlite3_open_v2(w->path, &w->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        int rc = w->rdb ? conn_err(w, w->rdb, e, "open for reading")
                        : err_set(e, ERR_NOMEM, "out of memory");
        sqlite3_close(w->rdb);
        w->rdb = NULL;
        return rc;
    }
    sqlite3_busy_timeout(w->rdb, BUSY_TIMEOUT_MS);
    char *sql = sqlite3_mprintf("SELECT open_time, \"open\", high, low, \"close\", volume,"
                                " close_time, quote_asset_volume, number_of_trades,"
                                " taker_buy_base_asset_volume, taker_buy_quote_asset_volume,"
                                " \"ignore\", updated_at FROM %s WHERE symbol = ?1 AND"
                                " \"interval\" = ?2 AND open_time > ?3 ORDER BY open_time"
                                " LIMIT ?4", w->raw);
    if (!sql) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    int rc = sqlite3_prepare_v3(w->rdb, sql, -1, SQLITE_PREPARE_PERSISTENT, &w->scan, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        conn_err(w, w->rdb, e, "prepare raw scan");
        sqlite3_close(w->rdb);   /* the next call opens afresh */
        w->rdb = NULL;
        return e->code;
    }
    return 0;
}

/* Committed rows only (the pipeline never scans its own open batch). */
static int sq_scan_raw(struct wh *base, const char *symbol, const char *interval,
                       int64_t after, struct kline_batch *out, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (!w->scan && open_scan(w, e) != 0) {
        return e->code;
    }
    sqlite3_stmt *s = w->scan;
    sqlite3_bind_text(s, 1, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, interval, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, after);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)(out->cap - out->n));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct kline *k = kline_batch_push(out);
        if (!k) {
            break;
        }
        k->open_time = sqlite3_column_int64(s, 0);
        col_str(s, 1, k, KS_OPEN);
        col_str(s, 2, k, KS_HIGH);
        col_str(s, 3, k, KS_LOW);
        col_str(s, 4, k, KS_CLOSE);
        col_str(s, 5, k, KS_VOLUME);
        k->close_time = sqlite3_column_int64(s, 6);
        col_str(s, 7, k, KS_QUOTE_VOLUME);
        k->trades = sqlite3_column_int64(s, 8);
        col_str(s, 9, k, KS_TAKER_BASE);
        col_str(s, 10, k, KS_TAKER_QUOTE);
        col_str(s, 11, k, KS_IGNORE);
        const unsigned char *u = sqlite3_column_text(s, 12);
        snprintf(k->updated_at, sizeof(k->updated_at), "%s", u ? (const char *)u : "");
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return conn_err(w, w->rdb, e, "raw scan");
    }
    return 0;
}

static void bind_time(sqlite3_stmt *s, int col, int64_t ms)
{
    if (ms > 0) {
        char t[24];
        time_format_sql(ms, t);
        sqlite3_bind_text(s, col, t, -1, SQLITE_TRANSIENT);
    }
    else {
        sqlite3_bind_null(s, col);
    }
}

static int sq_record_run(struct wh *base, const struct run *r, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    sqlite3_stmt *s = NULL;
    int rc = exec(w, "SAVEPOINT record_run", e);
    if (rc != 0) {
        return rc;
    }
    const char *sql_run =
        "INSERT INTO dataops_runs (run_id, git_commit, version, hostname, started_at,"
        " ended_at, status, exit_code, error, raw_table) VALUES (?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (run_id) DO UPDATE SET ended_at = excluded.ended_at,"
        " status = excluded.status, exit_code = excluded.exit_code, error = excluded.error";
    if (sqlite3_prepare_v2(w->db, sql_run, -1, &s, NULL) != SQLITE_OK) {
        rc = db_err(w, e, "record run");
        goto out;
    }
    sqlite3_bind_text(s, 1, r->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, r->git_commit, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->version, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->hostname, -1, SQLITE_STATIC);
    bind_time(s, 5, r->started_at);
    bind_time(s, 6, r->ended_at);
    sqlite3_bind_text(s, 7, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 8, r->exit_code);
    if (r->error[0]) {
        sqlite3_bind_text(s, 9, r->error, -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(s, 10, w->raw_name, -1, SQLITE_STATIC);
    if ((rc = step_done(w, s, e, "record run")) != 0) {
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;
    const char *sql_pair =
        "INSERT OR REPLACE INTO dataops_run_pairs (run_id, symbol, \"interval\","
        " range_start, range_end, first_open, last_open, pages, rows_extracted,"
        " open_skipped, rows_raw_loaded, rows_rejected, rows_transformed,"
        " rows_transformed_rejected, short_candles, zero_trade, gaps, missing_candles,"
        " status, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    if (sqlite3_prepare_v2(w->db, sql_pair, -1, &s, NULL) != SQLITE_OK) {
        rc = db_err(w, e, "record run pairs");
        goto out;
    }
    for (size_t i = 0; i < r->npairs; i++) {
        const struct pair_stats *p = &r->pairs[i];
        int c = 1;
        sqlite3_bind_text(s, c++, r->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, c++, p->symbol, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, c++, p->iv->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, c++, p->range_start);
        sqlite3_bind_int64(s, c++, p->range_end);
        sqlite3_bind_int64(s, c++, p->first_open);
        sqlite3_bind_int64(s, c++, p->last_open);
        sqlite3_bind_int64(s, c++, p->pages);
        sqlite3_bind_int64(s, c++, p->extracted);
        sqlite3_bind_int64(s, c++, p->open_skipped);
        sqlite3_bind_int64(s, c++, p->raw_loaded);
        sqlite3_bind_int64(s, c++, p->rejected);
        sqlite3_bind_int64(s, c++, p->transformed);
        sqlite3_bind_int64(s, c++, p->transformed_rejected);
        sqlite3_bind_int64(s, c++, p->short_candles);
        sqlite3_bind_int64(s, c++, p->zero_trade);
        sqlite3_bind_int64(s, c++, p->ngaps);
        sqlite3_bind_int64(s, c++, p->missing_candles);
        sqlite3_bind_text(s, c++, p->status, -1, SQLITE_STATIC);
        if (p->error[0]) {
            sqlite3_bind_text(s, c, p->error, -1, SQLITE_STATIC);
        }
        else {
            sqlite3_bind_null(s, c);
        }
        if ((rc = step_done(w, s, e, "record run pair")) != 0) {
            goto out;
        }
    }
    rc = exec(w, "RELEASE record_run", e);
out:
    sqlite3_finalize(s);
    if (rc != 0) {
        sqlite3_exec(w->db, "ROLLBACK TO record_run; RELEASE record_run", NULL, NULL, NULL);
    }
    return rc;
}

/* The run lock is the whole file's, so every other 'running' run in it is
 * dead. */
static int sq_abandon_dead_runs(struct wh *base, const char *run_id, int *n, char *ids,
                                size_t idsz, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    sqlite3_stmt *s = NULL;
    *n = 0;
    ids[0] = '\0';
    int rc = exec(w, "SAVEPOINT abandon_dead_runs", e);
    if (rc != 0) {
        return rc;
    }
    const char *sql_pairs =
        "UPDATE dataops_run_pairs SET status = 'abandoned' WHERE status = 'pending' AND run_id IN"
        " (SELECT run_id FROM dataops_runs WHERE status = 'running' AND run_id <> ?1)";
    const char *sql_runs =
        "UPDATE dataops_runs SET status = 'abandoned', exit_code = NULL, error = ?2"
        " WHERE status = 'running' AND run_id <> ?1 RETURNING run_id";
    char error[200];
    wh_abandoned_error(error, sizeof(error), run_id);
    if (sqlite3_prepare_v2(w->db, sql_pairs, -1, &s, NULL) != SQLITE_OK) {
        rc = db_err(w, e, "mark abandoned runs");
        goto out;
    }
    sqlite3_bind_text(s, 1, run_id, -1, SQLITE_STATIC);
    if ((rc = step_done(w, s, e, "mark abandoned runs")) != 0) {
        goto out;
    }
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(w->db, sql_runs, -1, &s, NULL) != SQLITE_OK) {
        rc = db_err(w, e, "mark abandoned runs");
        goto out;
    }
    sqlite3_bind_text(s, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, error, -1, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        (*n)++;
        wh_note_id(ids, idsz, (const char *)sqlite3_column_text(s, 0));
    }
    if (step != SQLITE_DONE) {
        rc = db_err(w, e, "mark abandoned runs");
        goto out;
    }
    rc = exec(w, "RELEASE abandon_dead_runs", e);
out:
    sqlite3_finalize(s);
    if (rc != 0) {
        sqlite3_exec(w->db, "ROLLBACK TO abandon_dead_runs; RELEASE abandon_dead_runs", NULL, NULL,
                     NULL);
        *n = 0;
        ids[0] = '\0';
    }
    return rc;
}

/* ---- backfill planner: holes and ranges (docs/backfill.md) ---- */

static int sq_holes(struct wh *base, const char *symbol, const struct interval *iv,
                    int64_t from, int64_t to, wh_range_cb cb, void *ctx, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (prepare(w, ST_HOLES, e) != 0) {
        return e->code;
    }
    sqlite3_stmt *s = w->st[ST_HOLES];
    sqlite3_bind_text(s, 1, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, iv->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, from);
    sqlite3_bind_int64(s, 4, to);
    /* expect: the next open time on the grid (calendar months for 1M). */
    int64_t expect = interval_align_up(iv, from);
    int rc;
    int stop = 0;
    while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t cur = sqlite3_column_int64(s, 0);
        if (cur > expect) {
            stop = cb(ctx, expect, cur);
        }
        if (cur >= expect) {
            expect = interval_next(iv, interval_align_down(iv, cur));
        }
    }
    sqlite3_reset(s);
    if (stop) {
        return stop;
    }
    if (rc != SQLITE_DONE) {
        return db_err(w, e, "holes");
    }
    if (expect < to) {
        return cb(ctx, expect, to);
    }
    return 0;
}

static int sq_ranges(struct wh *base, enum wh_range_kind kind, const char *symbol,
                     const char *interval, wh_range_cb cb, void *ctx, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (prepare(w, ST_RANGES, e) != 0) {
        return e->code;
    }
    sqlite3_stmt *s = w->st[ST_RANGES];
    sqlite3_bind_text(s, 1, wh_range_kind_name(kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, interval, -1, SQLITE_STATIC);
    int rc;
    int stop = 0;
    while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        stop = cb(ctx, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
    }
    sqlite3_reset(s);
    if (stop) {
        return stop;
    }
    if (rc != SQLITE_DONE) {
        return db_err(w, e, "ranges");
    }
    return 0;
}

static int sq_range_put(struct wh *base, enum wh_range_kind kind, const char *symbol,
                        const char *interval, int64_t from, int64_t to, const char *run_id,
                        struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (prepare(w, ST_RANGE_PUT, e) != 0) {
        return e->code;
    }
    sqlite3_stmt *s = w->st[ST_RANGE_PUT];
    char now[24];
    time_format_sql(time_now_ms(), now);
    sqlite3_bind_text(s, 1, wh_range_kind_name(kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, interval, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, from);
    sqlite3_bind_int64(s, 5, to);
    sqlite3_bind_text(s, 6, run_id ? run_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, now, -1, SQLITE_STATIC);
    return step_done(w, s, e, "range insert");
}

static int sq_range_delete(struct wh *base, enum wh_range_kind kind, const char *symbol,
                           const char *interval, int64_t from, int64_t to, struct err *e)
{
    struct wh_sqlite *w = (struct wh_sqlite *)base;
    if (prepare(w, ST_RANGE_DEL, e) != 0) {
        return e->code;
    }
    sqlite3_stmt *s = w->st[ST_RANGE_DEL];
    sqlite3_bind_text(s, 1, wh_range_kind_name(kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, interval, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, from);
    sqlite3_bind_int64(s, 5, to);
    return step_done(w, s, e, "range delete");
}

const struct wh_ops wh_sqlite_ops = {
    .scheme = "sqlite",
    .caps = WH_CAP_ASYNC_PUTS | WH_CAP_CONCURRENT_SCAN,
    .open = sq_open,
    .lock = sq_lock,
    .ensure_schema = sq_ensure_schema,
    .watermark = sq_watermark,
    .begin = sq_begin,
    .put_raw = sq_put_raw,
    .put_transformed = sq_put_transformed,
    .put_quarantine = sq_put_quarantine,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .scan_raw = sq_scan_raw,
    .record_run = sq_record_run,
    .abandon_dead_runs = sq_abandon_dead_runs,
    .close = sq_close,
    .holes = sq_holes,
    .ranges = sq_ranges,
    .range_put = sq_range_put,
    .range_delete = sq_range_delete,
};
