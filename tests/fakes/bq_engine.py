"""The storage and SQL engine behind tests/fakes/fake_bigquery.py.

Tables live in one SQLite database (Python's sqlite3): each BigQuery table
`project.dataset.table` is a SQLite table of the same quoted name, with
untyped columns, so values keep their storage class.  BigQuery types map to
SQLite values as:
    INT64 -> integer      FLOAT64 -> real      STRING -> text     BOOL -> 0/1
    DATETIME  -> text "\\x1dD:YYYY-MM-DD HH:MM:SS.ffffff"  (tagged: fixed width,
    TIMESTAMP -> text "\\x1dT:YYYY-MM-DD HH:MM:SS.ffffff"   so they order and
                                                           compare as BigQuery)
The tag lets a query result say which columns are DATETIME, and keeps a
DATETIME from ever comparing equal to a STRING.

GoogleSQL subset that is executed (anything else is refused with an
"invalidQuery" error naming the construct, never silently misread):
  * SELECT ... (FROM/WHERE/GROUP BY/ORDER BY/LIMIT and window functions
    such as LAG/LEAD ... OVER, with a WINDOW clause, as SQLite runs them),
    INSERT [INTO] ... VALUES/SELECT, UPDATE ... SET ... WHERE, DELETE [FROM]
    ... WHERE, TRUNCATE TABLE, and MERGE (below);
  * scripts: statements separated by ';', with BEGIN TRANSACTION /
    COMMIT TRANSACTION / ROLLBACK TRANSACTION; an error inside a
    transaction rolls it back (as BigQuery does without an exception
    handler), statements outside one commit one by one;
  * table names `project.dataset.table`, `dataset.table` (backticks or bare);
    `identifier` quoting; named parameters @name (typed by parameterType);
  * functions: CURRENT_TIMESTAMP(), CURRENT_DATETIME(), UNIX_MILLIS(ts),
    UNIX_SECONDS(ts), TIMESTAMP_MILLIS(n), TIMESTAMP(datetime or string),
    DATETIME(timestamp or string), PARSE_DATETIME(format, s) with %Y %m %d
    %H %M %S %E3S %E6S %E*S %F %T, plus SQLite's own (MAX, MIN, COUNT,
    SUM, SUBSTR, COALESCE, ...); IS [NOT] DISTINCT FROM, BETWEEN.
MERGE is executed by the engine itself with BigQuery's semantics: the ON
condition pairs target and source rows; a target row matched by two source
rows is the error "UPDATE/MERGE must match at most one source row for each
target row"; WHEN clauses are tried in order, first match wins; WHEN
MATCHED [AND c] THEN UPDATE SET/DELETE, WHEN NOT MATCHED [BY TARGET] [AND
c] THEN INSERT (cols) VALUES (...)/INSERT ROW, WHEN NOT MATCHED BY SOURCE
[AND c] THEN UPDATE/DELETE.  After every DML statement the target's rows
are checked against its schema (types, REQUIRED), so a statement that
would store a wrong type fails like BigQuery's does.
"""
import csv
import datetime
import io
import json
import re
import sqlite3

TAG_DT = "\x1dD:"
TAG_TS = "\x1dT:"
TYPES = {"STRING": "STRING", "INT64": "INT64", "INTEGER": "INT64", "FLOAT64": "FLOAT64",
         "FLOAT": "FLOAT64", "BOOL": "BOOL", "BOOLEAN": "BOOL", "DATETIME": "DATETIME",
         "TIMESTAMP": "TIMESTAMP"}


class BQError(Exception):
    """A BigQuery error: reason (invalidQuery, invalid, notFound, ...), message."""

    def __init__(self, reason, message, location=None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.location = location


# === values ================================================================

_DT_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})"
                    r"(?:\.(\d{1,6}))?)?)?$")


def parse_datetime_text(s):
    """BigQuery's canonical DATETIME text -> datetime, or None."""
    m = _DT_RE.match(s.strip())
    if not m:
        return None
    y, mo, d, h, mi, sec, frac = m.groups()
    try:
        return datetime.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0),
                                 int(sec or 0), int((frac or "0").ljust(6, "0")))
    except ValueError:
        return None


def dt_value(d, tag=TAG_DT):
    return tag + d.strftime("%Y-%m-%d %H:%M:%S.%f")


def untag(v):
    """Stored value -> (python value, type or None)."""
    if isinstance(v, str) and v.startswith(TAG_DT):
        return datetime.datetime.strptime(v[3:], "%Y-%m-%d %H:%M:%S.%f"), "DATETIME"
    if isinstance(v, str) and v.startswith(TAG_TS):
        return (datetime.datetime.strptime(v[3:], "%Y-%m-%d %H:%M:%S.%f")
                .replace(tzinfo=datetime.timezone.utc), "TIMESTAMP")
    return v, None


def canonical(v, typ):
    """A stored value as BigQuery's REST API renders it in query results."""
    if v is None:
        return None
    if typ == "DATETIME":
        d, _ = untag(v)
        s = d.strftime("%Y-%m-%dT%H:%M:%S")
        return s + (".%06d" % d.microsecond if d.microsecond else "")
    if typ == "TIMESTAMP":
        d, _ = untag(v)
        return "%.6f" % d.timestamp() if d.microsecond else "%d" % int(d.timestamp())
    if typ == "BOOL":
        return "true" if v else "false"
    if typ == "FLOAT64":
        return repr(float(v))
    return str(v)


def convert(text, typ, field):
    """A value from a load file or a query parameter -> stored value."""
    if text is None:
        return None
    try:
        if typ == "STRING":
            return str(text)
        if typ == "INT64":
            if isinstance(text, bool) or (isinstance(text, float) and not text.is_integer()):
                raise ValueError
            return int(text)
        if typ == "FLOAT64":
            return float(text)
        if typ == "BOOL":
            if isinstance(text, bool):
                return int(text)
            t = str(text).lower()
            if t in ("true", "1"):
                return 1
            if t in ("false", "0"):
                return 0
            raise ValueError
        if typ in ("DATETIME", "TIMESTAMP"):
            s = str(text)
            if typ == "TIMESTAMP" and s.endswith(("Z", "+00:00", " UTC")):
                s = s.rsplit("Z", 1)[0].replace("+00:00", "").replace(" UTC", "")
            d = parse_datetime_text(s)
            if d is None:
                raise ValueError
            return dt_value(d, TAG_DT if typ == "DATETIME" else TAG_TS)
    except (ValueError, TypeError, OverflowError):
        raise BQError("invalid", "Could not parse '%s' as %s for field %s" % (
            str(text)[:60], typ, field))
    raise BQError("invalid", "Unsupported type %s for field %s" % (typ, field))


def value_type(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return "INT64"
    if isinstance(v, float):
        return "FLOAT64"
    _, t = untag(v)
    return t or "STRING"


# === SQL functions =========================================================

def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _ts_of(v):
    if v is None:
        return None
    d, t = untag(v)
    if t is None:
        d = parse_datetime_text(str(v))
        if d is None:
            raise ValueError("not a timestamp: %r" % v)
    return d.replace(tzinfo=None)


def _unix_millis(v):
    d = _ts_of(v)
    if d is None:
        return None
    delta = d - datetime.datetime(1970, 1, 1)
    return delta.days * 86400000 + delta.seconds * 1000 + delta.microseconds // 1000


_FMT = {"%Y": r"(\d{4})", "%m": r"(\d{2})", "%d": r"(\d{2})", "%H": r"(\d{2})",
        "%M": r"(\d{2})", "%S": r"(\d{2})", "%E3S": r"(\d{2}\.\d{3})",
        "%E6S": r"(\d{2}\.\d{6})", "%E*S": r"(\d{2}(?:\.\d{1,6})?)"}


def _parse_datetime(fmt, s):
    if fmt is None or s is None:
        return None
    fmt = fmt.replace("%F", "%Y-%m-%d").replace("%T", "%H:%M:%S")
    parts = re.split(r"(%E3S|%E6S|%E\*S|%[YmdHMS])", fmt)
    rx = ""
    names = []
    for p in parts:
        if p in _FMT:
            rx += _FMT[p]
            names.append(p)
        elif p.startswith("%"):
            raise ValueError("PARSE_DATETIME: format element %s is not supported" % p)
        else:
            rx += re.escape(p)
    m = re.fullmatch(rx, s)
    if not m:
        raise ValueError("Failed to parse input string \"%s\"" % s)
    f = dict(zip(names, m.groups()))
    sec = f.get("%S") or f.get("%E3S") or f.get("%E6S") or f.get("%E*S") or "0"
    whole, _, frac = sec.partition(".")
    d = datetime.datetime(int(f.get("%Y", 1970)), int(f.get("%m", 1)), int(f.get("%d", 1)),
                          int(f.get("%H", 0)), int(f.get("%M", 0)), int(whole),
                          int(frac.ljust(6, "0")) if frac else 0)
    return dt_value(d)


def _register(con):
    con.create_function("bq_current_timestamp", 0, lambda: dt_value(_now(), TAG_TS))
    con.create_function("bq_current_datetime", 0, lambda: dt_value(_now()))
    con.create_function("UNIX_MILLIS", 1, _unix_millis)
    con.create_function("UNIX_SECONDS", 1,
                        lambda v: None if v is None else _unix_millis(v) // 1000)
    con.create_function("TIMESTAMP_MILLIS", 1, lambda n: None if n is None else dt_value(
        datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=n), TAG_TS))
    con.create_function("TIMESTAMP", 1, lambda v: None if v is None else dt_value(
        _ts_of(v), TAG_TS))
    con.create_function("DATETIME", 1, lambda v: None if v is None else dt_value(_ts_of(v)))
    con.create_function("PARSE_DATETIME", 2, _parse_datetime)


# === lexing ================================================================

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _scan(sql):
    """Yield (index, char, depth) of characters outside quotes and comments."""
    i = 0
    depth = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n and sql[j] != c:
                j += 2 if sql[j] == "\\" else 1
            i = j + 1
            continue
        if sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        yield i, c, depth
        i += 1


def split_statements(sql):
    out = []
    start = 0
    for i, c, depth in _scan(sql):
        if c == ";" and depth == 0:
            out.append(sql[start:i])
            start = i + 1
    out.append(sql[start:])
    return [s.strip() for s in out if s.strip()]


def find_keywords(sql, words):
    """Top-level (depth 0) positions of whole keywords (case-insensitive):
    list of (index, WORD)."""
    hits = []
    words = {w.upper() for w in words}
    prev_end = -1
    for i, c, depth in _scan(sql):
        if depth != 0 or i < prev_end or not (c.isalpha() or c == "_"):
            continue
        if i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_.@`"):
            continue
        m = _WORD.match(sql, i)
        w = m.group(0)
        prev_end = m.end()
        if w.upper() in words:
            hits.append((i, w.upper()))
    return hits


# === the engine ============================================================

class Engine:
    def __init__(self, path=":memory:", default_project="test-project"):
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        _register(self.con)
        self.default_project = default_project
        self.datasets = {}     # (project, dataset) -> resource
        self.tables = {}       # (project, dataset, table) -> resource
        self.in_txn = False

    # -- catalog ------------------------------------------------------------
    @staticmethod
    def sql_name(key):
        return '"%s.%s.%s"' % key

    def purge_expired(self):
        now_ms = _unix_millis(dt_value(_now()))
        for key, t in list(self.tables.items()):
            exp = t.get("expirationTime")
            if exp and int(exp) <= now_ms:
                self.drop_table(key)

    @staticmethod
    def check_fields(key, fields):
        """The lower-cased names of a valid schema's fields."""
        if not fields:
            raise BQError("invalid", "Table %s:%s.%s has no schema" % key)
        names = set()
        for f in fields:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]{0,299}", f.get("name", "")):
                raise BQError("invalid", "Invalid field name \"%s\"" % f.get("name"))
            if f["name"].lower() in names:
                raise BQError("invalid", "Duplicate column names: %s" % f["name"])
            names.add(f["name"].lower())
            t = TYPES.get(str(f.get("type", "")).upper())
            if t is None:
                raise BQError("invalid", "Field %s: type %s is not supported by the fake" %
                              (f["name"], f.get("type")))
            mode = str(f.get("mode", "NULLABLE")).upper()
            if mode not in ("NULLABLE", "REQUIRED"):
                raise BQError("invalid", "Field %s: mode %s is not supported by the fake" %
                              (f["name"], mode))
        return names

    def create_table(self, key, resource):
        fields = resource.get("schema", {}).get("fields") or []
        names = self.check_fields(key, fields)
        tp = resource.get("timePartitioning")
        if tp:
            pf = tp.get("field")
            ft = {f["name"]: TYPES[f["type"].upper()] for f in fields}.get(pf)
            if tp.get("type", "DAY") not in ("DAY", "HOUR", "MONTH", "YEAR"):
                raise BQError("invalid", "Invalid time partitioning type %s" % tp.get("type"))
            if pf and ft not in ("DATE", "DATETIME", "TIMESTAMP"):
                raise BQError("invalid", "The field specified for time partitioning can only "
                              "be of type TIMESTAMP, DATE or DATETIME. The type found is: %s."
                              % ft)
        cl = (resource.get("clustering") or {}).get("fields") or []
        if len(cl) > 4 or any(c.lower() not in names for c in cl):
            raise BQError("invalid", "Clustering fields %s must be at most 4 columns of the "
                          "table" % cl)
        cols = ", ".join('"%s"' % f["name"] for f in fields)
        self.con.execute("CREATE TABLE %s (%s)" % (self.sql_name(key), cols))
        self.tables[key] = resource

    def patch_table(self, key, patch):
        """tables.patch: the fields given replace the table's.  A new schema
        must keep every column with its type and mode; columns it adds must
        be NULLABLE (BigQuery's rules for a schema update)."""
        t = self.tables[key]
        if "schema" in patch:
            old = {f["name"].lower(): f for f in t["schema"]["fields"]}
            new = (patch["schema"] or {}).get("fields") or []
            ref = "%s:%s.%s" % key
            by_name = {f.get("name", "").lower(): f for f in new}
            for name, f in old.items():
                g = by_name.get(name)
                if g is None:
                    raise BQError("invalid", "Provided Schema does not match Table %s. Field %s"
                                  " is missing in new schema" % (ref, f["name"]))
                if TYPES.get(str(g.get("type", "")).upper()) != TYPES[f["type"].upper()]:
                    raise BQError("invalid", "Provided Schema does not match Table %s. Field %s"
                                  " has changed type from %s to %s" % (ref, f["name"],
                                                                       f["type"], g.get("type")))
            added = [f for f in new if f.get("name", "").lower() not in old]
            for f in added:
                if str(f.get("mode", "NULLABLE")).upper() != "NULLABLE":
                    raise BQError("invalid", "Provided Schema does not match Table %s. Cannot"
                                  " add required fields to an existing schema. (field: %s)"
                                  % (ref, f.get("name")))
            self.check_fields(key, new)
            for f in added:
                self.con.execute('ALTER TABLE %s ADD COLUMN "%s"'
                                 % (self.sql_name(key), f["name"]))
        for field, value in patch.items():
            if field not in ("tableReference", "id", "kind", "type", "creationTime"):
                t[field] = value
        return t

    def drop_table(self, key):
        self.con.execute("DROP TABLE IF EXISTS %s" % self.sql_name(key))
        self.tables.pop(key, None)

    def schema(self, key):
        return [dict(f, type=TYPES[f["type"].upper()], mode=f.get("mode", "NULLABLE").upper())
                for f in self.tables[key]["schema"]["fields"]]

    def num_rows(self, key):
        return self.con.execute("SELECT count(*) FROM %s" % self.sql_name(key)).fetchone()[0]

    def num_bytes(self, key):
        total = 0
        for row in self.con.execute("SELECT * FROM %s" % self.sql_name(key)):
            for v in row:
                total += 8 if isinstance(v, (int, float)) else len(str(v or "")) + 2
        return total

    def rows(self, key, order_by=None):
        """Rows of a table as python values (datetimes untagged), for tests."""
        sql = "SELECT * FROM %s" % self.sql_name(key)
        if order_by:
            sql += " ORDER BY " + order_by
        return [tuple(untag(v)[0] for v in r) for r in self.con.execute(sql)]

    # -- loads --------------------------------------------------------------
    def load(self, key, data, conf, schema_if_created):
        """Load bytes into a table per configuration.load; returns outputRows."""
        fmt = conf.get("sourceFormat", "CSV")
        if key not in self.tables:
            if conf.get("createDisposition", "CREATE_IF_NEEDED") == "CREATE_NEVER":
                raise BQError("notFound", "Not found: Table %s:%s.%s" % key)
            if not schema_if_created:
                raise BQError("invalid", "No schema specified on job or table.")
            self.create_table(key, {"schema": schema_if_created,
                                    "tableReference": dict(zip(
                                        ("projectId", "datasetId", "tableId"), key))})
        fields = self.schema(key)
        rows = []
        text = data.decode(conf.get("encoding", "UTF-8").replace("UTF-8", "utf-8"))
        if fmt == "CSV":
            delim = conf.get("fieldDelimiter", ",")
            reader = csv.reader(io.StringIO(text), delimiter=delim, quotechar='"')
            skip = int(conf.get("skipLeadingRows", 0))
            for lineno, rec in enumerate(reader, 1):
                if lineno <= skip:
                    continue
                if not rec:
                    continue
                if len(rec) != len(fields):
                    raise BQError("invalid", "Error while reading data, error message: CSV "
                                  "table references column position %d, but line contains "
                                  "only %d columns. (line %d)" % (len(fields) - 1, len(rec),
                                                                  lineno))
                rows.append([self._field(f, None if v == "" else v, lineno)
                             for f, v in zip(fields, rec)])
        elif fmt == "NEWLINE_DELIMITED_JSON":
            names = {f["name"].lower(): f for f in fields}
            for lineno, line in enumerate(text.split("\n"), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    raise BQError("invalid", "Error while reading data, error message: JSON "
                                  "table encountered too many errors, giving up. Rows: %d; "
                                  "errors: 1. (line %d: not JSON)" % (lineno, lineno))
                low = {k.lower(): v for k, v in obj.items()}
                extra = [k for k in low if k not in names]
                if extra and not conf.get("ignoreUnknownValues"):
                    raise BQError("invalid", "Error while reading data, error message: JSON "
                                  "parsing error in row starting at position 0: No such "
                                  "field: %s. (line %d)" % (extra[0], lineno))
                rows.append([self._field(f, low.get(f["name"].lower()), lineno)
                             for f in fields])
        else:
            raise BQError("invalid", "sourceFormat %s is not supported by the fake" % fmt)
        disp = conf.get("writeDisposition", "WRITE_APPEND")
        name = self.sql_name(key)
        if disp == "WRITE_EMPTY" and self.num_rows(key):
            raise BQError("duplicate", "Already Exists: Table %s:%s.%s" % key)
        if disp == "WRITE_TRUNCATE":
            self.con.execute("DELETE FROM %s" % name)
        elif disp not in ("WRITE_APPEND", "WRITE_EMPTY"):
            raise BQError("invalid", "Invalid writeDisposition %s" % disp)
        if rows:
            self.con.executemany("INSERT INTO %s VALUES (%s)" % (
                name, ", ".join("?" * len(fields))), rows)
        return len(rows)

    @staticmethod
    def _field(f, v, lineno):
        if v is None:
            if f["mode"] == "REQUIRED":
                raise BQError("invalid", "Error while reading data, error message: Required "
                              "field %s cannot be null (line %d)" % (f["name"], lineno))
            return None
        try:
            return convert(v, f["type"], f["name"])
        except BQError as e:
            raise BQError("invalid", "Error while reading data, error message: %s (line %d)"
                          % (e.message, lineno))

    # -- queries ------------------------------------------------------------
    def table_key(self, path):
        parts = path.split(".")
        if len(parts) == 2:
            parts = [self.default_project] + parts
        if len(parts) != 3:
            raise BQError("invalidQuery", "Table name \"%s\" missing dataset while no default "
                          "dataset is set in the request." % path)
        key = tuple(parts)
        if key not in self.tables:
            raise BQError("notFound", "Not found: Table %s:%s.%s was not found in location US"
                          % key)
        return key

    def translate(self, sql, refs):
        """GoogleSQL text of the subset -> SQLite text; table keys go to refs."""
        def table(path):
            key = self.table_key(path)
            refs.add(key)
            return self.sql_name(key)
        sql = re.sub(r"`([^`]*)`", lambda m: table(m.group(1)) if "." in m.group(1)
                     else m.group(0), sql)

        def bare(m):
            # "IS DISTINCT FROM S.col" names a column, not a table.
            if re.search(r"(?i)\bDISTINCT\s+$", sql[max(0, m.start() - 12):m.start()]):
                return m.group(0)
            return m.group(1) + table(m.group(2))
        sql = re.sub(r"(?i)(\b(?:FROM|JOIN|INTO|UPDATE|MERGE|USING|TABLE)\s+)"
                     r"((?:[A-Za-z][\w-]*\.)?[A-Za-z_]\w*\.[A-Za-z_]\w*)\b", bare, sql)
        sql = re.sub(r"(?i)\bCURRENT_TIMESTAMP\s*\(\s*\)", "bq_current_timestamp()", sql)
        sql = re.sub(r"(?i)\bCURRENT_DATETIME\s*\(\s*\)", "bq_current_datetime()", sql)
        for bad in ("UNNEST", "STRUCT", "ARRAY", "QUALIFY", "SAFE_CAST", "EXCEPT(", "REPLACE("):
            if re.search(r"(?i)\b" + re.escape(bad), sql):
                raise BQError("invalidQuery", "the fake does not execute %s" % bad.strip("("))
        return sql

    def _exec(self, sql, params, refs):
        try:
            return self.con.execute(self.translate(sql, refs), params)
        except sqlite3.Error as e:
            raise BQError("invalidQuery", "%s [at the fake's SQLite: %s]" % (e, sql[:200]))

    def check_types(self, key):
        """Coerce INT64 into FLOAT64 columns, then refuse any other mismatch."""
        name = self.sql_name(key)
        for f in self.schema(key):
            if f["type"] == "FLOAT64":
                self.con.execute('UPDATE %s SET "%s" = CAST("%s" AS REAL) WHERE typeof("%s") = '
                                 "'integer'" % (name, f["name"], f["name"], f["name"]))
        fields = self.schema(key)
        for row in self.con.execute("SELECT * FROM %s" % name):
            for f, v in zip(fields, row):
                if v is None:
                    if f["mode"] == "REQUIRED":
                        raise BQError("invalidQuery", "Required field %s cannot be null" %
                                      f["name"])
                    continue
                t = value_type(v)
                ok = t == f["type"] or (f["type"] == "BOOL" and t == "INT64" and v in (0, 1))
                if not ok:
                    raise BQError("invalidQuery", "Value of type %s cannot be assigned to %s, "
                                  "which has type %s" % (t, f["name"], f["type"]))

    def statement(self, sql, params):
        """Run one statement; returns dict(kind, rows/schema or affected)."""
        words = sql.split(None, 2)
        head = words[0].upper()
        if head == "MERGE":
            return self.merge(sql, params)
        if head in ("SELECT", "WITH"):
            refs = set()
            cur = self._exec(sql, params, refs)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
            return {"kind": "SELECT", "schema": self._result_schema(names, rows, refs),
                    "rows": rows, "refs": refs}
        if head == "TRUNCATE":
            refs = set()
            key = self.table_key(re.sub(r"(?is)^TRUNCATE\s+TABLE\s+", "", sql).strip("` "))
            n = self.num_rows(key)
            self.con.execute("DELETE FROM %s" % self.sql_name(key))
            return {"kind": "TRUNCATE_TABLE", "affected": n, "refs": {key}}
        if head in ("INSERT", "UPDATE", "DELETE"):
            if head == "INSERT" and not re.match(r"(?i)INSERT\s+INTO\b", sql):
                sql = re.sub(r"(?i)^INSERT\s+", "INSERT INTO ", sql)
            if head == "DELETE" and not re.match(r"(?i)DELETE\s+FROM\b", sql):
                sql = re.sub(r"(?i)^DELETE\s+", "DELETE FROM ", sql)
            if head in ("UPDATE", "DELETE") and not re.search(r"(?i)\bWHERE\b", sql):
                raise BQError("invalidQuery", "%s must have a WHERE clause" % head)
            refs = set()
            before = self.con.total_changes
            self._exec(sql, params, refs)
            affected = self.con.total_changes - before
            target = self._dml_target(sql, refs)
            if target:
                self.check_types(target)
            return {"kind": head, "affected": affected, "refs": refs}
        raise BQError("invalidQuery", "Syntax error: the fake does not execute statements "
                      "starting with %s" % words[0])

    def _dml_target(self, sql, refs):
        m = re.match(r'(?i)(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(`[^`]+`|[\w.-]+)', sql)
        if not m:
            return None
        try:
            return self.table_key(m.group(1).strip("`"))
        except BQError:
            return None

    def _result_schema(self, names, rows, refs):
        cols = {}
        for key in refs:
            for f in self.schema(key):
                cols.setdefault(f["name"].lower(), f["type"])
        out = []
        for i, name in enumerate(names):
            typ = None
            for r in rows:
                if r[i] is not None:
                    typ = value_type(r[i])
                    break
            if typ is None:
                idents = re.findall(r"[A-Za-z_]\w*", name.replace("`", ""))
                typ = next((cols[w.lower()] for w in reversed(idents) if w.lower() in cols),
                           "STRING")
            plain = re.fullmatch(r"`?([A-Za-z_]\w*)`?", name)
            out.append({"name": plain.group(1) if plain else "f%d_" % i, "type": typ,
                        "mode": "NULLABLE"})
        return out

    # -- MERGE --------------------------------------------------------------
    def merge(self, sql, params):
        kw = find_keywords(sql, ["MERGE", "INTO", "USING", "ON", "WHEN"])
        pos = {w: i for i, w in kw if w in ("USING", "ON")}
        # A clause starts at WHEN [NOT] MATCHED; other WHENs belong to CASE.
        whens = [i for i, w in kw if w == "WHEN" and
                 re.match(r"(?i)WHEN\s+(NOT\s+)?MATCHED\b", sql[i:])]
        if "USING" not in pos or "ON" not in pos or not whens:
            raise BQError("invalidQuery", "Syntax error: MERGE needs USING, ON and WHEN")
        target_part = re.sub(r"(?is)^MERGE\s+(INTO\s+)?", "", sql[:pos["USING"]]).strip()
        source_part = sql[pos["USING"] + 5:pos["ON"]].strip()
        on = sql[pos["ON"] + 2:whens[0]].strip()
        clauses = [sql[a:b].strip() for a, b in zip(whens, whens[1:] + [len(sql)])]

        tm = re.fullmatch(r"(?is)(`[^`]+`|[\w.-]+)(?:\s+(?:AS\s+)?(\w+))?", target_part)
        if not tm:
            raise BQError("invalidQuery", "MERGE target not understood: %s" % target_part)
        tkey = self.table_key(tm.group(1).strip("`"))
        talias = tm.group(2) or tkey[2]
        sm = re.fullmatch(r"(?is)(\(.*\)|`[^`]+`|[\w.-]+)(?:\s+(?:AS\s+)?(\w+))?", source_part)
        if not sm:
            raise BQError("invalidQuery", "MERGE source not understood: %s" % source_part)
        src = sm.group(1)
        salias = sm.group(2) or src.strip("`").split(".")[-1]
        refs = {tkey}
        src_sql = self.translate(src if src.startswith("(") else "SELECT * FROM %s" % src, refs)
        if src_sql.startswith("("):
            src_sql = src_sql[1:-1]
        tname = self.sql_name(tkey)
        c = self.con
        try:
            c.execute("DROP TABLE IF EXISTS temp._mrg_src")
            c.execute("DROP TABLE IF EXISTS temp._mrg_m")
            c.execute("CREATE TEMP TABLE _mrg_src AS SELECT ROW_NUMBER() OVER () AS _srid, * "
                      "FROM (%s)" % src_sql, params)
            on_sql = self.translate(on, refs)
            c.execute("CREATE TEMP TABLE _mrg_m AS SELECT %s.rowid AS trid, %s._srid AS srid, "
                      "0 AS done FROM %s AS %s JOIN temp._mrg_src AS %s ON %s" % (
                          talias, salias, tname, talias, salias, on_sql), params)
        except sqlite3.Error as e:
            raise BQError("invalidQuery", "%s [in MERGE]" % e)
        has_matched = any(re.match(r"(?i)WHEN\s+MATCHED", cl) for cl in clauses)
        if has_matched and c.execute("SELECT 1 FROM temp._mrg_m GROUP BY trid HAVING "
                                     "count(*) > 1 LIMIT 1").fetchone():
            raise BQError("invalidQuery", "UPDATE/MERGE must match at most one source row for "
                          "each target row")
        src_cols = [d[0] for d in c.execute("SELECT * FROM temp._mrg_src LIMIT 0")
                    .description][1:]
        unmatched_src = set(r[0] for r in c.execute(
            "SELECT _srid FROM temp._mrg_src WHERE _srid NOT IN (SELECT srid FROM temp._mrg_m)"))
        unmatched_tgt = set(r[0] for r in c.execute(
            "SELECT rowid FROM %s WHERE rowid NOT IN (SELECT trid FROM temp._mrg_m)" % tname))
        affected = 0
        try:
            for cl in clauses:
                m = re.match(r"(?is)WHEN\s+(MATCHED|NOT\s+MATCHED(?:\s+BY\s+(TARGET|SOURCE))?)"
                             r"(?:\s+AND\s+(.*?))?\s+THEN\s+(.*)$", cl)
                if not m:
                    raise BQError("invalidQuery", "MERGE clause not understood: %s" % cl[:80])
                which = "MATCHED" if m.group(1).upper() == "MATCHED" else (
                    "SOURCE" if (m.group(2) or "").upper() == "SOURCE" else "TARGET")
                cond = self.translate(m.group(3), refs) if m.group(3) else "1"
                action = m.group(4).strip()
                affected += self._merge_clause(which, cond, action, tname, talias, salias,
                                               src_cols, params, refs, unmatched_src,
                                               unmatched_tgt)
            self.check_types(tkey)
        except sqlite3.Error as e:
            raise BQError("invalidQuery", "%s [in MERGE]" % e)
        finally:
            c.execute("DROP TABLE IF EXISTS temp._mrg_src")
            c.execute("DROP TABLE IF EXISTS temp._mrg_m")
        return {"kind": "MERGE", "affected": affected, "refs": refs}

    def _merge_clause(self, which, cond, action, tname, ta, sa, src_cols, params, refs,
                      unmatched_src, unmatched_tgt):
        c = self.con
        up = action.upper()
        if which == "MATCHED":
            ids = c.execute("SELECT M.trid, M.srid FROM temp._mrg_m AS M JOIN %s AS %s ON "
                            "%s.rowid = M.trid JOIN temp._mrg_src AS %s ON %s._srid = M.srid "
                            "WHERE M.done = 0 AND (%s)" % (tname, ta, ta, sa, sa, cond),
                            params).fetchall()
            if not ids:
                return 0
            c.executemany("UPDATE temp._mrg_m SET done = 1 WHERE trid = ? AND srid = ?", ids)
            c.execute("DROP TABLE IF EXISTS temp._mrg_sel")
            c.execute("CREATE TEMP TABLE _mrg_sel (trid, srid)")
            c.executemany("INSERT INTO temp._mrg_sel VALUES (?, ?)", ids)
            try:
                if up == "DELETE":
                    c.execute("DELETE FROM %s WHERE rowid IN (SELECT trid FROM temp._mrg_sel)"
                              % tname)
                elif up.startswith("UPDATE"):
                    sets = self.translate(re.sub(r"(?is)^UPDATE\s+SET\s+", "", action), refs)
                    c.execute("UPDATE %s AS %s SET %s FROM temp._mrg_src AS %s, temp._mrg_sel "
                              "AS X WHERE X.trid = %s.rowid AND X.srid = %s._srid" % (
                                  tname, ta, sets, sa, ta, sa), params)
                else:
                    raise BQError("invalidQuery", "WHEN MATCHED THEN %s is not allowed"
                                  % action[:20])
            finally:
                c.execute("DROP TABLE IF EXISTS temp._mrg_sel")
            return len(ids)
        if which == "TARGET":
            if not unmatched_src:
                return 0
            ids = [r[0] for r in c.execute(
                "SELECT _srid FROM temp._mrg_src AS %s WHERE (%s)" % (sa, cond), params)
                if r[0] in unmatched_src]
            if not ids:
                return 0
            unmatched_src.difference_update(ids)
            im = re.match(r"(?is)INSERT\s*(?:\((.*?)\))?\s*(VALUES\s*\((.*)\)|ROW)\s*$", action)
            if not im:
                raise BQError("invalidQuery", "WHEN NOT MATCHED THEN %s is not allowed"
                              % action[:20])
            cols = im.group(1)
            if im.group(2).upper() == "ROW":
                vals = ", ".join('%s."%s"' % (sa, n) for n in src_cols)
            else:
                vals = self.translate(im.group(3), refs)
            col_sql = "(%s)" % cols if cols else ""
            c.execute("CREATE TEMP TABLE IF NOT EXISTS _mrg_ids (id)")
            c.execute("DELETE FROM temp._mrg_ids")
            c.executemany("INSERT INTO temp._mrg_ids VALUES (?)", [(i,) for i in ids])
            c.execute("INSERT INTO %s %s SELECT %s FROM temp._mrg_src AS %s WHERE %s._srid IN "
                      "(SELECT id FROM temp._mrg_ids) ORDER BY %s._srid" % (
                          tname, col_sql, vals, sa, sa, sa), params)
            c.execute("DROP TABLE temp._mrg_ids")
            return len(ids)
        # NOT MATCHED BY SOURCE: target rows no source row paired with.
        if not unmatched_tgt:
            return 0
        ids = [r[0] for r in c.execute("SELECT rowid FROM %s AS %s WHERE (%s)" % (
            tname, ta, cond), params) if r[0] in unmatched_tgt]
        if not ids:
            return 0
        unmatched_tgt.difference_update(ids)
        marks = ",".join(str(int(i)) for i in ids)
        if up == "DELETE":
            c.execute("DELETE FROM %s WHERE rowid IN (%s)" % (tname, marks))
        elif up.startswith("UPDATE"):
            sets = self.translate(re.sub(r"(?is)^UPDATE\s+SET\s+", "", action), refs)
            c.execute("UPDATE %s AS %s SET %s WHERE %s.rowid IN (%s)" % (
                tname, ta, sets, ta, marks), params)
        else:
            raise BQError("invalidQuery", "WHEN NOT MATCHED BY SOURCE THEN %s is not allowed"
                          % action[:20])
        return len(ids)

    # -- scripts ------------------------------------------------------------
    def script(self, sql, params):
        """Run a query (one statement or a script). Returns (last result,
        statement type, affected rows, refs)."""
        stmts = split_statements(sql)
        if not stmts:
            raise BQError("invalidQuery", "Syntax error: Unexpected end of script")
        last = None
        affected = 0
        refs = set()
        in_txn = False
        kinds = []
        c = self.con
        try:
            for s in stmts:
                up = " ".join(s.upper().split())
                if up in ("BEGIN TRANSACTION", "BEGIN"):
                    if in_txn:
                        raise BQError("invalidQuery", "Transaction already started")
                    c.execute("SAVEPOINT bq_txn")
                    in_txn = True
                    continue
                if up in ("COMMIT TRANSACTION", "COMMIT"):
                    if not in_txn:
                        raise BQError("invalidQuery", "COMMIT TRANSACTION without BEGIN")
                    c.execute("RELEASE bq_txn")
                    in_txn = False
                    continue
                if up in ("ROLLBACK TRANSACTION", "ROLLBACK"):
                    if not in_txn:
                        raise BQError("invalidQuery", "ROLLBACK TRANSACTION without BEGIN")
                    c.execute("ROLLBACK TO bq_txn")
                    c.execute("RELEASE bq_txn")
                    in_txn = False
                    continue
                c.execute("SAVEPOINT bq_stmt")
                try:
                    res = self.statement(s, params)
                except Exception:
                    c.execute("ROLLBACK TO bq_stmt")
                    c.execute("RELEASE bq_stmt")
                    raise
                c.execute("RELEASE bq_stmt")
                kinds.append(res["kind"])
                refs |= res.get("refs", set())
                affected += res.get("affected", 0)
                last = res
            if in_txn:
                # A script that ends inside a transaction: BigQuery rolls back.
                c.execute("ROLLBACK TO bq_txn")
                c.execute("RELEASE bq_txn")
                in_txn = False
        except sqlite3.Error as e:
            if in_txn:
                c.execute("ROLLBACK TO bq_txn")
                c.execute("RELEASE bq_txn")
            raise BQError("invalidQuery", str(e))
        except BQError:
            if in_txn:
                c.execute("ROLLBACK TO bq_txn")
                c.execute("RELEASE bq_txn")
            raise
        stype = kinds[0] if len(stmts) == 1 and kinds else "SCRIPT"
        return last, stype, affected, refs
