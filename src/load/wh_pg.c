/*
 * wh_pg.c - the warehouse in PostgreSQL, through libpq: the connection and
 * its session, the run lock, transactions and the COPY stream.  The tables
 * and the statements that read and write them are in wh_pg_sql.c.
 *
 * Connection.  The URL goes to libpq as it is (postgresql:// or postgres://),
 * so libpq's own parameters, its PG* environment variables and ~/.pgpass
 * (or PGPASSFILE) all work.  We add only defaults the user can override:
 * fallback_application_name=dataops (PGAPPNAME or application_name win),
 * connect_timeout from DATAOPS_CONNECT_TIMEOUT (PGCONNECT_TIMEOUT or the
 * URL win) and TCP keepalives; client_encoding is forced to UTF8.  The
 * password, from wherever libpq took it, is registered with the logger and
 * scrubbed from every message we build; the URL is only ever shown masked.
 *
 * Session.  Times are exchanged in UTC (SET TimeZone), a statement_timeout
 * and a lock_timeout are set when the server, role or PGOPTIONS set none,
 * and two temporary staging tables are created.  Everything here is per
 * connection: after a reconnect it is all done again.
 *
 * Loads.  begin() opens a transaction.  put_raw()/put_transformed() stream
 * their rows as COPY text into the staging table, and the COPY stays open
 * across pages, so the rows of a batch travel as one stream and memory stays
 * one page.  A batch whose rows all come after the table's newest row of
 * the pair (the tail: most of a backfill) is COPYed straight into the table
 * instead, in the same transaction: nothing there to merge with, and the
 * upsert, the larger half of the load's time, is skipped (enum pg_route).
 * The COPY waits on the exchange between pages, which is why it runs with
 * statement_timeout 0 (SET LOCAL); lock_timeout still applies.
 * Any other statement first ends the COPY (the rows stay staged).  commit()
 * moves the staged rows with one INSERT ... SELECT ... ON CONFLICT per
 * table, then COMMITs: a batch is all or nothing, whatever kills the
 * process or the connection, because nothing reaches the tables before the
 * COMMIT.
 *
 * Run lock.  A session-level advisory lock on hashtext('dataops:<schema>.
 * <raw table>'): it works across hosts (two pods, one database), and the
 * server drops it when the session ends, however the process died.
 *
 * Lost connection.  A statement that finds the connection gone fails with
 * "connection ... lost": the open transaction died with it on the server,
 * so nothing of the batch is there, and the pipeline fails that pair.  The
 * next operation that starts afresh outside a transaction (a watermark,
 * the run record) reconnects and re-takes the run lock first; if another
 * run took the lock in between, it stops with ERR_LOCKED rather than
 * interleave.  Retrying the batch itself is the next run's job.
 */
#include "load/wh_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/timeutil.h"

/* --- messages and secrets --- */

static void note_secret(struct wh_pg *w, const char *s)
{
    if (!s || !*s) {
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (strcmp(w->secret[i], s) == 0) {
            return;
        }
        if (!w->secret[i][0]) {
            snprintf(w->secret[i], sizeof(w->secret[i]), "%s", s);
            log_add_secret(s);
            return;
        }
    }
}

/* The password as written in the URL (maybe percent-encoded) and as libpq
 * decodes it: either form may turn up in a parse error. */
static void note_url_secrets(struct wh_pg *w, const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    if (at && (!slash || at < slash)) {
        const char *colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
        if (colon && at > colon + 1) {
            char raw[256];
            snprintf(raw, sizeof(raw), "%.*s", (int)(at - colon - 1), colon + 1);
            note_secret(w, raw);
        }
    }
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &errmsg);
    if (errmsg) {
        PQfreemem(errmsg);   /* may quote the password: never shown */
    }
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val) {
            note_secret(w, o->val);
        }
    }
    PQconninfoFree(opts);
}

/* libpq's message on one line, without the password. */
static void clean_message(const struct wh_pg *w, const char *m, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = m ? m : ""; *p && o + 3 < n; p++) {
        if (*p == '\n' || *p == '\r') {
            while (p[1] == '\n' || p[1] == '\r') {
                p++;
            }
            /* An indented line continues the sentence; others are new ones. */
            if (p[1] && o > 0 && p[1] != '\t' && p[1] != ' ') {
                out[o++] = ';';
            }
            if (p[1] && o > 0) {
                out[o++] = ' ';
            }
            continue;
        }
        char c = *p == '\t' ? ' ' : *p;
        if (c == ' ' && o > 0 && out[o - 1] == ' ') {
            continue;   /* "ERROR:  x" -> "ERROR: x" */
        }
        out[o++] = c;
    }
    out[o] = '\0';
    if (!out[0]) {
        snprintf(out, n, "no message from libpq");
    }
    for (int i = 0; i < 3; i++) {
        const char *s = w->secret[i];
        size_t sl = strlen(s);
        if (!sl || !strstr(out, s)) {
            continue;
        }
        if (sl < 4) {
            snprintf(out, n, "(libpq's message withheld: it contains the password)");
            return;
        }
        char *hit;
        while ((hit = strstr(out, s)) != NULL) {
            memmove(hit + 4, hit + sl, strlen(hit + sl) + 1);
            memcpy(hit, "****", 4);
        }
    }
}

int pg_fail(struct wh_pg *w, const PGresult *res, const char *what, struct err *e)
{
    char msg[384];
    const char *m = res ? PQresultErrorMessage(res) : NULL;
    if (!m || !*m) {
        m = PQerrorMessage(w->conn);
    }
    clean_message(w, m, msg, sizeof(msg));
    /* A FATAL error (a terminated backend, a server shutting down) ends the
     * session even before libpq has noticed the socket close. */
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *sev = res ? PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED) : NULL;
    int lost = PQstatus(w->conn) != CONNECTION_OK ||
               (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) ||
               (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0));
    if (lost) {
        /* The session, its transaction and its advisory lock are gone. */
        w->locked = 0;
        return err_set(e, ERR_WAREHOUSE, "connection to the PostgreSQL warehouse %s lost "
                       "during %s: %s", w->shown, what, msg);
    }
    if (state) {
        return err_set(e, ERR_WAREHOUSE, "PostgreSQL warehouse %s: %s failed: %s [SQLSTATE %s]",
                       w->shown, what, msg, state);
    }
    return err_set(e, ERR_WAREHOUSE, "PostgreSQL warehouse %s: %s failed: %s", w->shown, what,
                   msg);
}

static void notice(void *arg, const char *message)
{
    struct wh_pg *w = arg;
    char msg[384];
    clean_message(w, message, msg, sizeof(msg));
    log_debug("warehouse", "postgres: %s", msg);
}

/* --- COPY --- */

/* End the open COPY: complete it (reason NULL) or abort it with reason.
 * Returns 0 when the server took the rows.  The error a result carries
 * (a bad row, a terminated backend) says more than libpq's "could not
 * send", so it is preferred. */
static int finish_copy(struct wh_pg *w, const char *reason, struct err *e)
{
    w->copying = PG_STAGE_NONE;
    int end_failed = PQputCopyEnd(w->conn, reason) != 1;
    int rc = 0;
    PGresult *res;
    for (int guard = 0; (res = PQgetResult(w->conn)) != NULL; guard++) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH ||
            guard > 8) {
            /* Still copying after PQputCopyEnd: the connection is unusable. */
            PQclear(res);
            rc = rc ? rc : err_set(e, ERR_WAREHOUSE, "PostgreSQL warehouse %s: the COPY "
                                   "could not be ended", w->shown);
            break;
        }
        if (st != PGRES_COMMAND_OK && rc == 0 && !reason) {
            rc = pg_fail(w, res, "COPY", e);
        }
        PQclear(res);
    }
    if (end_failed && rc == 0 && !reason) {
        rc = pg_fail(w, NULL, "COPY", e);
    }
    return rc;
}

int pg_copy_begin(struct wh_pg *w, enum pg_stage st, int straight, struct err *e)
{
    if (w->copying == (int)st && w->copy_straight == straight) {
        return 0;
    }
    if (w->copying != PG_STAGE_NONE && finish_copy(w, NULL, e) != 0) {
        return e->code;
    }
    /* The COPY spans pages, so it waits on the exchange: no statement
     * timeout for it (this transaction only). */
    buf_reset(&w->sql);
    if (buf_puts(&w->sql, "SET LOCAL statement_timeout = 0; ") != 0 ||
        pg_copy_sql(w, st, straight, &w->sql) != 0) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    PGresult *res = PQexec(w->conn, w->sql.data);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        int rc = pg_fail(w, res, "COPY", e);
        PQclear(res);
        return rc;
    }
    PQclear(res);
    w->copying = st;
    w->copy_straight = straight;
    return 0;
}

int pg_copy_send(struct wh_pg *w, const char *data, size_t len, struct err *e)
{
    if (len > (size_t)0x7fffffff) {
        return err_set(e, ERR_WAREHOUSE, "COPY chunk too large");
    }
    if (PQputCopyData(w->conn, data, (int)len) == 1) {
        return 0;
    }
    /* Collect the server's reason, then report it. */
    if (finish_copy(w, NULL, e) == 0) {
        pg_fail(w, NULL, "COPY", e);
    }
    return e->code ? e->code : ERR_WAREHOUSE;
}

int pg_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        if (c > 0 && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
        }
        else {
            return 0;   /* NUL, a stray continuation byte, or never valid */
        }
        if (n - i <= k) {
            return 0;
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                return 0;
            }
        }
        /* Overlong 3/4-byte forms, surrogates and code points past U+10FFFF. */
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] >= 0xa0) ||
            (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] >= 0x90)) {
            return 0;
        }
        i += k + 1;
    }
    return 1;
}

int pg_copy_field(struct buf *b, const char *s, size_t n, int first)
{
    if (!pg_utf8_valid(s, n)) {
        return -2;
    }
    if (buf_reserve(b, 2 * n + 1) != 0) {
        return -1;
    }
    char *p = b->data + b->len;
    if (!first) {
        *p++ = '\t';
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        switch (c) {
        case '\\': *p++ = '\\'; *p++ = '\\'; break;
        case '\t': *p++ = '\\'; *p++ = 't'; break;
        case '\n': *p++ = '\\'; *p++ = 'n'; break;
        case '\r': *p++ = '\\'; *p++ = 'r'; break;
        default: *p++ = c; break;
        }
    }
    b->len = (size_t)(p - b->data);
    b->data[b->len] = '\0';
    return 0;
}

/* --- statements --- */

static int ready(struct wh_pg *w, struct err *e)
{
    if (w->copying != PG_STAGE_NONE) {
        return finish_copy(w, NULL, e);
    }
    return 0;
}

int pg_exec(struct wh_pg *w, const char *sql, const char *what, struct err *e)
{
    if (ready(w, e) != 0) {
        return e->code;
    }
    PGresult *res = PQexec(w->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = pg_fail(w, res, what, e);
    }
    PQclear(res);
    return rc;
}

int pg_params(struct wh_pg *w, const char *sql, int n, const char *const *vals,
              const char *what, PGresult **out, struct err *e)
{
    if (ready(w, e) != 0) {
        return e->code;
    }
    PGresult *res = PQexecParams(w->conn, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = pg_fail(w, res, what, e);
        PQclear(res);
        return rc;
    }
    if (out) {
        *out = res;
    }
    else {
        PQclear(res);
    }
    return 0;
}

/* --- the run lock --- */

static int try_lock(struct wh_pg *w, int *got, struct err *e)
{
    char key[24];
    snprintf(key, sizeof(key), "%lld", (long long)w->lock_key);
    const char *v[1] = {key};
    PGresult *res = NULL;
    if (pg_params(w, "SELECT pg_try_advisory_lock($1::bigint)", 1, v, "taking the run lock",
                  &res, e) != 0) {
        return e->code;
    }
    *got = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (*got) {
        w->locked = 1;
    }
    return 0;
}

/* Who holds the lock, for the operator of the run that waited: best effort
 * (other roles' sessions may show no client address). */
static void lock_holder(struct wh_pg *w, char *out, size_t n)
{
    char classid[16], objid[16];
    uint64_t k = (uint64_t)w->lock_key;
    snprintf(classid, sizeof(classid), "%u", (unsigned)(k >> 32));
    snprintf(objid, sizeof(objid), "%u", (unsigned)(k & 0xffffffffu));
    const char *v[2] = {classid, objid};
    PGresult *res = NULL;
    struct err e2;
    out[0] = '\0';
    if (pg_params(w, "SELECT l.pid, coalesce(a.application_name, ''),"
                  " coalesce(host(a.client_addr), ''),"
                  " coalesce(to_char(a.backend_start AT TIME ZONE 'UTC',"
                  " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
                  " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
                  " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                  " AND l.database = (SELECT oid FROM pg_database"
                  " WHERE datname = current_database())"
                  " AND l.classid = $1::oid AND l.objid = $2::oid LIMIT 1",
                  2, v, "looking up the lock holder", &res, &e2) != 0) {
        return;
    }
    if (PQntuples(res) == 1) {
        const char *app = PQgetvalue(res, 0, 1);
        const char *client = PQgetvalue(res, 0, 2);
        const char *since = PQgetvalue(res, 0, 3);
        snprintf(out, n, "server process %s%s%s%s%s%s%s", PQgetvalue(res, 0, 0),
                 app[0] ? ", application " : "", app, client[0] ? ", client " : "", client,
                 since[0] ? ", connected " : "", since);
    }
    PQclear(res);
}

static int pg_lock(struct wh *base, long timeout_s, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (pg_revive(w, 0, e) != 0) {
        return e->code;
    }
    if (!w->have_key) {
        char name[300];
        snprintf(name, sizeof(name), "dataops:%s.%s", w->schema, w->raw_table);
        const char *v[1] = {name};
        PGresult *res = NULL;
        if (pg_params(w, "SELECT hashtext($1)", 1, v, "computing the run lock key", &res,
                      e) != 0) {
            return e->code;
        }
        w->lock_key = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        w->have_key = 1;
        PQclear(res);
    }
    int64_t deadline = time_monotonic_ms() + timeout_s * 1000;
    int waited = 0;
    for (;;) {
        int got = 0;
        if (try_lock(w, &got, e) != 0) {
            return e->code;
        }
        if (got) {
            w->want_lock = 1;
            log_debug("warehouse", "run lock dataops:%s.%s taken on %s", w->schema,
                      w->raw_table, w->shown);
            return 0;
        }
        if (time_monotonic_ms() >= deadline) {
            char who[256];
            lock_holder(w, who, sizeof(who));
            return err_set(e, ERR_LOCKED, "another run holds the warehouse lock dataops:%s.%s "
                           "on %s%s%s (waited %lds; raise --lock-timeout to wait longer)",
                           w->schema, w->raw_table, w->shown, who[0] ? ": " : "", who,
                           timeout_s);
        }
        if (!waited) {
            log_info("warehouse", "another run holds the lock dataops:%s.%s on %s; waiting "
                     "up to %lds", w->schema, w->raw_table, w->shown, timeout_s);
            waited = 1;
        }
        if (interrupt_sleep_ms(200)) {
            return err_set(e, ERR_INTERRUPTED, "interrupted by a signal while waiting for "
                           "the warehouse lock");
        }
    }
}

int pg_revive(struct wh_pg *w, int need_lock, struct err *e)
{
    if (PQstatus(w->conn) != CONNECTION_OK) {
        log_warn("warehouse", "the connection to %s was lost; reconnecting", w->shown);
        w->locked = 0;
        w->in_txn = 0;
        w->copying = PG_STAGE_NONE;
        pg_batch_reset(w);
        PQreset(w->conn);
        if (PQstatus(w->conn) != CONNECTION_OK) {
            char msg[384];
            clean_message(w, PQerrorMessage(w->conn), msg, sizeof(msg));
            return err_set(e, ERR_WAREHOUSE, "connection to the PostgreSQL warehouse %s was "
                           "lost and cannot be re-established: %s", w->shown, msg);
        }
        if (pg_session_sql(w, e) != 0) {
            return e->code;
        }
    }
    if (need_lock && w->want_lock && !w->locked) {
        int got = 0;
        if (try_lock(w, &got, e) != 0) {
            return e->code;
        }
        if (!got) {
            return err_set(e, ERR_LOCKED, "the warehouse lock dataops:%s.%s on %s was lost "
                           "with the connection and another run has taken it: stopping so "
                           "that the two runs do not interleave", w->schema, w->raw_table,
                           w->shown);
        }
        log_info("warehouse", "reconnected to %s and took the run lock again", w->shown);
    }
    return 0;
}

/* --- transactions --- */

void pg_batch_reset(struct wh_pg *w)
{
    for (int st = PG_STAGE_RAW; st <= PG_STAGE_T; st++) {
        w->staged[st] = 0;
        w->route[st] = PG_ROUTE_UNDECIDED;
        w->straight_rows[st] = 0;
    }
}

static int pg_begin(struct wh *base, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (w->in_txn) {
        return err_set(e, ERR_WAREHOUSE, "PostgreSQL warehouse %s: a transaction is already "
                       "open", w->shown);
    }
    if (pg_exec(w, "BEGIN", "BEGIN", e) != 0) {
        return e->code;
    }
    w->in_txn = 1;
    pg_batch_reset(w);
    return 0;
}

static void rollback_quiet(struct wh_pg *w)
{
    if (w->copying != PG_STAGE_NONE) {
        finish_copy(w, "batch abandoned by dataops", NULL);
    }
    if (w->in_txn && PQstatus(w->conn) == CONNECTION_OK) {
        PQclear(PQexec(w->conn, "ROLLBACK"));
    }
    w->in_txn = 0;
    pg_batch_reset(w);
}

static int pg_commit(struct wh *base, const char *lake_uri, struct err *e)
{
    struct wh_pg *w = (struct wh_pg *)base;
    (void)lake_uri;
    int rc = 0;
    for (int st = PG_STAGE_RAW; st <= PG_STAGE_T && rc == 0; st++) {
        if (w->staged[st]) {
            rc = pg_upsert_staged(w, (enum pg_stage)st, e);
        }
        if (w->straight_rows[st]) {
            log_debug("warehouse", "%lld %s rows copied straight into the table",
                      w->straight_rows[st], st == PG_STAGE_RAW ? "raw" : "transformed");
        }
    }
    if (rc == 0 && (rc = ready(w, e)) == 0) {
        PGresult *res = PQexec(w->conn, "COMMIT");
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = pg_fail(w, res, "COMMIT", e);
            if (PQstatus(w->conn) != CONNECTION_OK) {
                err_wrap(e, "the batch may or may not have been committed (the next run "
                         "continues from what the tables hold)");
            }
        }
        else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
            rc = err_set(e, ERR_WAREHOUSE, "PostgreSQL warehouse %s: the server rolled the "
                         "batch back (COMMIT answered %s)", w->shown, PQcmdStatus(res));
        }
        else {
            w->in_txn = 0;
        }
        PQclear(res);
    }
    if (rc != 0) {
        rollback_quiet(w);
    }
    w->in_txn = 0;
    pg_batch_reset(w);
    return rc;
}

static void pg_rollback(struct wh *base)
{
    rollback_quiet((struct wh_pg *)base);
}

/* --- open and close --- */

static void pg_close(struct wh *base)
{
    struct wh_pg *w = (struct wh_pg *)base;
    if (!w) {
        return;
    }
    if (w->conn) {
        rollback_quiet(w);
        PQfinish(w->conn);   /* ends the session: the server drops the run lock */
    }
    free(w->schema_q);
    free(w->raw_q);
    free(w->tr_q);
    free(w->local_q);
    free(w->quar_q);
    free(w->runs_q);
    free(w->pairs_q);
    free(w->ranges_q);
    buf_free(&w->copy);
    buf_free(&w->sql);
    memset(w->secret, 0, sizeof(w->secret));
    free(w);
}

/* "a" or "a"."b", quoted by libpq; malloc'd (NULL on failure). */
static char *quote(PGconn *c, const char *a, const char *b)
{
    char *qa = PQescapeIdentifier(c, a, strlen(a));
    char *qb = b ? PQescapeIdentifier(c, b, strlen(b)) : NULL;
    char *out = NULL;
    if (qa && (qb || !b)) {
        size_t n = strlen(qa) + (qb ? strlen(qb) + 1 : 0) + 1;
        out = malloc(n);
        if (out) {
            snprintf(out, n, "%s%s%s", qa, qb ? "." : "", qb ? qb : "");
        }
    }
    PQfreemem(qa);
    PQfreemem(qb);
    return out;
}

static int pg_open(const char *url, const struct wh_names *names, struct wh **out,
                   struct err *e)
{
    struct wh_pg *w = calloc(1, sizeof(*w));
    if (!w) {
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    w->base.ops = &wh_pg_ops;
    w->copying = PG_STAGE_NONE;
    buf_init(&w->copy, 64u << 20);
    buf_init(&w->sql, 1u << 20);
    config_mask_url(url, w->shown, sizeof(w->shown));
    note_url_secrets(w, url);
    const struct config *cfg = names->cfg;
    snprintf(w->schema, sizeof(w->schema), "%s", cfg ? cfg->text[S_PG_SCHEMA] : "public");
    snprintf(w->raw_table, sizeof(w->raw_table), "%s", names->raw_table);

    /* Our defaults come before the URL (which may override them); libpq
     * reads PG* variables only for keywords not given, so a default that
     * has a variable is left out when the variable is set. */
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%ld", cfg ? cfg->connect_timeout_s : 10L);
    const char *kw[8];
    const char *val[8];
    int n = 0;
    kw[n] = "fallback_application_name";
    val[n++] = "dataops";
    if (!getenv("PGCONNECT_TIMEOUT")) {
        kw[n] = "connect_timeout";
        val[n++] = timeout;
    }
    kw[n] = "keepalives_idle";
    val[n++] = "60";
    kw[n] = "keepalives_interval";
    val[n++] = "10";
    kw[n] = "dbname";
    val[n++] = url;
    kw[n] = "client_encoding";
    val[n++] = "UTF8";
    kw[n] = NULL;
    val[n] = NULL;
    w->conn = PQconnectdbParams(kw, val, 1);
    int rc = ERR_NOMEM;
    if (!w->conn) {
        err_set(e, rc, "out of memory");
        goto fail;
    }
    /* From the URL, PGPASSWORD or the password file: never to be shown. */
    note_secret(w, PQpass(w->conn));
    if (PQstatus(w->conn) != CONNECTION_OK) {
        char msg[384];
        clean_message(w, PQerrorMessage(w->conn), msg, sizeof(msg));
        rc = err_set(e, ERR_WAREHOUSE, "cannot connect to the PostgreSQL warehouse %s: %s",
                     w->shown, msg);
        goto fail;
    }
    PQsetNoticeProcessor(w->conn, notice, w);
    if (PQserverVersion(w->conn) < 100000) {
        rc = err_set(e, ERR_WAREHOUSE, "the PostgreSQL warehouse %s runs server version %d; "
                     "dataops needs 10 or later", w->shown, PQserverVersion(w->conn));
        goto fail;
    }
    w->schema_q = quote(w->conn, w->schema, NULL);
    w->raw_q = quote(w->conn, w->schema, names->raw_table);
    w->tr_q = quote(w->conn, w->schema, names->transformed_table);
    w->local_q = quote(w->conn, names->local_time_column, NULL);
    w->quar_q = quote(w->conn, w->schema, "dataops_quarantine");
    w->runs_q = quote(w->conn, w->schema, "dataops_runs");
    w->pairs_q = quote(w->conn, w->schema, "dataops_run_pairs");
    w->ranges_q = quote(w->conn, w->schema, "dataops_ranges");
    if (!w->schema_q || !w->raw_q || !w->tr_q || !w->local_q || !w->quar_q || !w->runs_q ||
        !w->pairs_q || !w->ranges_q) {
        rc = err_set(e, ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = pg_session_sql(w, e)) != 0) {
        goto fail;
    }
    log_info("warehouse", "connected to PostgreSQL %s (server %d, schema %s)", w->shown,
             PQserverVersion(w->conn), w->schema);
    *out = &w->base;
    return 0;
fail:
    pg_close(&w->base);
    return rc;
}

const struct wh_ops wh_pg_ops = {
    .scheme = "postgresql",
    .alias = "postgres",
    .open = pg_open,
    .lock = pg_lock,
    .ensure_schema = pg_ensure_schema,
    .watermark = pg_watermark,
    .begin = pg_begin,
    .put_raw = pg_put_raw,
    .put_transformed = pg_put_transformed,
    .put_quarantine = pg_put_quarantine,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .scan_raw = pg_scan_raw,
    .record_run = pg_record_run,
    .abandon_dead_runs = pg_abandon_dead_runs,
    .close = pg_close,
    .check = pg_check,
    .holes = pg_holes,
    .ranges = pg_ranges,
    .range_put = pg_range_put,
    .range_delete = pg_range_delete,
};
