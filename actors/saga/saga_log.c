/*  saga_log.c - the saga coordinator's write-ahead log (see saga_log.h).

    One SQLite connection and its statements, prepared once at open and
    reset after every use (a statement left stepping would hold a read
    transaction open and stop WAL checkpoints):

      keel_saga_log_t                      saga.db  (+ saga.db-wal, -shm)
      +--------------------------------+   +------------------------------+
      | db ----------------------------+-> | sagas                        |
      | stmt[]: begin commit rollback  |   |   id (PK), state, definition,|
      |         update put get ...     |   |   key, updated_ms, created_ms|
      | in_batch, doomed, doom_reason  |   |   record: packed SagaRecord  |
      | batch_puts, fail_commits       |   | definitions                  |
      | buffer (packing, reused)       |   |   name, version (PK),        |
      | stats, error                   |   |   body: packed definition    |
      +--------------------------------+   +------------------------------+

    Indexes, each for a question the coordinator asks:

      sagas_state    (state, created_ms, id)   each_unfinished, list by state,
                                               compact
      sagas_created  (created_ms, id)          list of every state, newest
                                               first, without sorting
      sagas_key      (key) UNIQUE WHERE key IS NOT NULL
                                               find_key; one saga per key

    A batch is one transaction:

      begin ──> BEGIN IMMEDIATE (the write lock now, not at the first put)
      put   ──> UPDATE state, updated_ms, record WHERE the id and the
                fixed columns (definition, key, created_ms) match: the
                usual case, which rewrites the state index and no other
           └──> else INSERT ... ON CONFLICT (id) DO UPDATE every column
      commit ─> COMMIT: one WAL append, one fsync with synchronous = FULL
           └──> ROLLBACK instead when the batch is doomed, a failure is
                injected, or COMMIT itself fails

    Why an upsert and not INSERT OR REPLACE: REPLACE settles a conflict on
    any unique index by deleting the other row, so a second saga claiming
    an idempotency key would silently delete the first. The upsert replaces
    by id only; a key already held by another saga fails the put (and so
    dooms the batch): the coordinator must look the key up (find_key, or
    its own memory for sagas started in the open batch) before starting.

    A failed put dooms the batch: later puts are refused and commit rolls
    back. Besides being what the header promises, this matters after an
    I/O error: SQLite may have rolled the transaction back by itself, and
    further puts would then each commit on their own.

    Reads (each_unfinished, list, each_definition) unpack every row before
    the first callback, then reset the statement: a callback may use the
    log (get, a batch, a commit) without disturbing the rows being read,
    and a corrupt row fails the call before any callback has run.

    Reads hold every record they return in memory at once: fine for the
    coordinator, which keeps the unfinished sagas anyway and lists with a
    limit. get and find_key clear the last error first, so that their NULL
    tells "unknown" ("") from a failure.

    Records are unpacked with protobuf-c's default allocator, so callers
    free them with protobuf_c_message_free_unpacked (what
    keel_saga_record_destroy does). A row whose blob does not unpack, has
    no status, or names another saga is reported (by saga id), never
    handed out.
*/
#include "saga_log.h"

#include <assert.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Finished sagas are kept this long by default: a day.
#define S_DEFAULT_RETENTION_MS (24LL * 3600 * 1000)

//  How long a statement waits for another connection's lock. The log has
//  one writer; a second process on the same file is a mistake, reported
//  quickly rather than waited out.
#define S_BUSY_TIMEOUT_MS 100

//  The packing buffer is kept between puts up to this size; a larger one
//  (a record with big outputs) is freed after its put.
#define S_BUFFER_KEEP (256 * 1024)

//  Compaction deletes this many sagas a transaction, so that it holds the
//  write lock (which another connection, the coordinator's log writer,
//  may be waiting for) briefly, and the WAL does not grow by a day of
//  sagas at once.
#define S_COMPACT_CHUNK KEEL_SAGA_LOG_CHUNK

//  A WAL larger than this is truncated back to it after a checkpoint.
#define S_WAL_SIZE_LIMIT (64 * 1024 * 1024)

//  The schema version written to PRAGMA user_version.
#define S_SCHEMA_VERSION 1

#define S_RUNNING      KEEL__SAGA_STATE__SAGA_RUNNING
#define S_COMPENSATING KEEL__SAGA_STATE__SAGA_COMPENSATING
#define S_COMPLETED    KEEL__SAGA_STATE__SAGA_COMPLETED
#define S_COMPENSATED  KEEL__SAGA_STATE__SAGA_COMPENSATED
#define S_STUCK        KEEL__SAGA_STATE__SAGA_STUCK

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS sagas ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " state INTEGER NOT NULL,"
    " definition TEXT NOT NULL,"
    " key TEXT,"
    " updated_ms INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " record BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sagas_state"
    " ON sagas (state, created_ms, id);"
    "CREATE INDEX IF NOT EXISTS sagas_created ON sagas (created_ms, id);"
    "CREATE UNIQUE INDEX IF NOT EXISTS sagas_key"
    " ON sagas (key) WHERE key IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS definitions ("
    " name TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " body BLOB NOT NULL,"
    " PRIMARY KEY (name, version));";

//  The prepared statements, in the order of s_sql.
typedef enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_UPDATE,
    S_PUT,
    S_GET,
    S_FIND_KEY,
    S_UNFINISHED,
    S_LIST_ALL,
    S_LIST_STATE,
    S_COMPACT,
    S_PUT_DEF,
    S_EACH_DEF,
    S_STMTS
} s_stmt_t;

static const char *s_sql[S_STMTS] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    //  A put is usually the next change to a saga already stored: update
    //  what changes (state, updated_ms, record) and leave the indexes on
    //  the columns that do not (created_ms, key) untouched. When that
    //  finds no row (a new saga, or one whose fixed columns differ), the
    //  upsert below writes every column.
    [S_UPDATE] = "UPDATE sagas SET state = ?2, updated_ms = ?5, record = ?7"
                 " WHERE id = ?1 AND definition = ?3 AND key IS ?4"
                 " AND created_ms = ?6",
    [S_PUT] = "INSERT INTO sagas (id, state, definition, key, updated_ms,"
              " created_ms, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
              " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
              " definition = excluded.definition, key = excluded.key,"
              " updated_ms = excluded.updated_ms,"
              " created_ms = excluded.created_ms, record = excluded.record",
    [S_GET] = "SELECT id, record FROM sagas WHERE id = ?1",
    [S_FIND_KEY] = "SELECT id FROM sagas WHERE key = ?1",
    [S_UNFINISHED] = "SELECT id, record FROM sagas WHERE state IN (?1, ?2, ?3)"
                     " ORDER BY created_ms, id",
    [S_LIST_ALL] = "SELECT id, record FROM sagas"
                   " ORDER BY created_ms DESC, id DESC LIMIT ?1",
    [S_LIST_STATE] = "SELECT id, record FROM sagas WHERE state = ?1"
                     " ORDER BY created_ms DESC, id DESC LIMIT ?2",
    //  created_ms < cutoff is implied by updated_ms < cutoff (a saga is
    //  updated after it is created) and lets the state index range over
    //  created_ms instead of reading every finished saga. A record whose
    //  clock went backwards is kept longer, never deleted early.
    [S_COMPACT] = "DELETE FROM sagas WHERE rowid IN (SELECT rowid FROM sagas"
                  " WHERE state IN (?1, ?2) AND created_ms < ?3"
                  " AND updated_ms < ?3 LIMIT ?4)",
    [S_PUT_DEF] = "INSERT OR REPLACE INTO definitions (name, version, body)"
                  " VALUES (?1, ?2, ?3)",
    [S_EACH_DEF] = "SELECT name, version, body FROM definitions"
                   " ORDER BY name, version",
};

struct _keel_saga_log_t {
    sqlite3 *db;                 //  the connection
    char *path;                  //  as opened, for messages
    int64_t retention_ms;        //  finished sagas are kept this long
    sqlite3_stmt *stmt[S_STMTS]; //  prepared once, reset after each use
    bool in_batch;               //  a batch (transaction) is open
    bool doomed;                 //  a put failed: the batch cannot commit
    char *doom_reason;           //  that put's error message
    uint64_t batch_puts;         //  puts in the open batch
    int fail_commits;            //  commits still to fail (tests)
    uint8_t *buffer;             //  packing buffer, reused across puts
    size_t buffer_size;          //  its size in bytes
    keel_saga_log_stats_t stats; //  counters since open
    char *error;                 //  last error message, NULL for none
};

//  Messages gathered by a read before its callbacks run.
typedef struct {
    ProtobufCMessage **items; //  unpacked messages, owned until handed out
    size_t count;             //  how many
    size_t size;              //  allocated slots
} s_rows_t;

// ---------------------------------------------------------------------------
//  Errors

//  Set the last error from a format (the old message may be an argument:
//  it is freed only after the new one is made).
static void s_set_error (keel_saga_log_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_set_error (keel_saga_log_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *message = NULL;
    if (vasprintf (&message, format, args) < 0)
        message = NULL; //  "out of memory" is reported below
    va_end (args);
    free (self->error);
    self->error = message ? message : strdup ("out of memory");
}

//  Set the last error to "<path>: <what>: <SQLite's message>". Call it
//  before the failed statement is reset.
static void
s_db_error (keel_saga_log_t *self, const char *what)
{
    s_set_error (self, "%s: %s: %s", self->path, what,
                 sqlite3_errmsg (self->db));
}

static void
s_clear_error (keel_saga_log_t *self)
{
    free (self->error);
    self->error = NULL;
}

// ---------------------------------------------------------------------------
//  Open and close

//  Run `sql` (no rows wanted). Returns 0, or -1 with *message_p set.
static int
s_exec (sqlite3 *db, const char *sql, char **message_p)
{
    char *errmsg = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &errmsg) == SQLITE_OK)
        return 0;
    *message_p = strdup (errmsg ? errmsg : sqlite3_errmsg (db));
    sqlite3_free (errmsg);
    return -1;
}

//  Run a PRAGMA that answers one row and copy its first column into
//  `value` (size `size`). Returns 0, or -1 with *message_p set.
static int
s_pragma (sqlite3 *db, const char *sql, char *value, size_t size,
          char **message_p)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step (stmt);
        if (rc == SQLITE_ROW) {
            const unsigned char *text = sqlite3_column_text (stmt, 0);
            snprintf (value, size, "%s", text ? (const char *)text : "");
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            value[0] = 0;
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        *message_p = strdup (sqlite3_errmsg (db));
    sqlite3_finalize (stmt);
    return rc == SQLITE_OK ? 0 : -1;
}

//  Set up a freshly opened connection: pragmas, schema, statements.
//  Returns 0, or -1 with *message_p set (SQLite's words).
static int
s_setup (keel_saga_log_t *self, const keel_saga_log_config_t *config,
         char **message_p)
{
    sqlite3 *db = self->db;
    sqlite3_extended_result_codes (db, 1);
    sqlite3_busy_timeout (db, S_BUSY_TIMEOUT_MS);
    if (sqlite3_db_readonly (db, "main") == 1) {
        *message_p = strdup ("the file is read-only");
        return -1;
    }
    //  The first statement to read the file: "file is not a database"
    //  shows up here.
    char mode[32];
    if (s_pragma (db, "PRAGMA journal_mode = WAL", mode, sizeof mode,
                  message_p))
        return -1;
    if (strcmp (mode, "wal") != 0 && strcmp (mode, "memory") != 0) {
        if (asprintf (message_p, "cannot use WAL (journal mode is %s)", mode) <
            0)
            *message_p = NULL;
        return -1;
    }
    const char *sync = config && config->sync_normal
                           ? "PRAGMA synchronous = NORMAL"
                           : "PRAGMA synchronous = FULL";
    if (s_exec (db, sync, message_p) ||
        s_exec (db, "PRAGMA foreign_keys = OFF", message_p))
        return -1;
    char limit[64];
    snprintf (limit, sizeof limit, "PRAGMA journal_size_limit = %d",
              S_WAL_SIZE_LIMIT);
    if (s_pragma (db, limit, mode, sizeof mode, message_p))
        return -1;

    char version[32];
    if (s_pragma (db, "PRAGMA user_version", version, sizeof version,
                  message_p))
        return -1;
    if (atoi (version) > S_SCHEMA_VERSION) {
        if (asprintf (message_p, "schema version %s is newer than %d", version,
                      S_SCHEMA_VERSION) < 0)
            *message_p = NULL;
        return -1;
    }
    char *schema = NULL;
    if (asprintf (&schema, "BEGIN; %s PRAGMA user_version = %d; COMMIT;",
                  s_schema, S_SCHEMA_VERSION) < 0) {
        *message_p = NULL;
        return -1;
    }
    int rc = s_exec (db, schema, message_p);
    free (schema);
    if (rc) {
        sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    for (int i = 0; i < S_STMTS; i++) {
        if (sqlite3_prepare_v3 (db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &self->stmt[i], NULL) != SQLITE_OK) {
            *message_p = strdup (sqlite3_errmsg (db));
            return -1;
        }
    }
    return 0;
}

static void
s_free (keel_saga_log_t *self)
{
    for (int i = 0; i < S_STMTS; i++)
        sqlite3_finalize (self->stmt[i]);
    sqlite3_close_v2 (self->db);
    free (self->path);
    free (self->doom_reason);
    free (self->buffer);
    free (self->error);
    free (self);
}

keel_saga_log_t *
keel_saga_log_open (const char *path, const keel_saga_log_config_t *config,
                    char **error_p)
{
    assert (path);
    if (error_p)
        *error_p = NULL;
    keel_saga_log_t *self = calloc (1, sizeof *self);
    char *path_copy = strdup (path);
    if (!self || !path_copy) {
        free (self);
        free (path_copy);
        if (error_p)
            *error_p = strdup ("out of memory");
        return NULL;
    }
    self->path = path_copy;
    self->retention_ms = config && config->retention_ms > 0
                             ? config->retention_ms
                             : S_DEFAULT_RETENTION_MS;

    char *message = NULL;
    int system_errno = 0;
    int rc = sqlite3_open_v2 (
        path, &self->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        //  db is NULL only when SQLite could not allocate it.
        message =
            strdup (self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
        system_errno = self->db ? sqlite3_system_errno (self->db) : 0;
    } else if (s_setup (self, config, &message))
        system_errno = sqlite3_system_errno (self->db);
    else
        return self;

    if (error_p) {
        char *text = NULL;
        int len = system_errno
                      ? asprintf (&text, "cannot open %s: %s (%s)", path,
                                  message ? message : "out of memory",
                                  strerror (system_errno))
                      : asprintf (&text, "cannot open %s: %s", path,
                                  message ? message : "out of memory");
        *error_p = len < 0 ? strdup ("out of memory") : text;
    }
    free (message);
    s_free (self);
    return NULL;
}

//  Roll the open transaction back, if there is one, and forget the batch.
//  Keeps the last error (it usually says why).
static void
s_rollback (keel_saga_log_t *self)
{
    if (!sqlite3_get_autocommit (self->db)) {
        sqlite3_step (self->stmt[S_ROLLBACK]);
        sqlite3_reset (self->stmt[S_ROLLBACK]);
    }
    self->in_batch = false;
    self->doomed = false;
    free (self->doom_reason);
    self->doom_reason = NULL;
    self->batch_puts = 0;
}

void
keel_saga_log_close (keel_saga_log_t **self_p)
{
    assert (self_p);
    keel_saga_log_t *self = *self_p;
    if (!self)
        return;
    if (self->in_batch)
        s_rollback (self);
    s_free (self);
    *self_p = NULL;
}

const char *
keel_saga_log_error (keel_saga_log_t *self)
{
    assert (self);
    return self->error ? self->error : "";
}

// ---------------------------------------------------------------------------
//  Batches

//  Make the packing buffer at least `size` bytes. Returns 0 or -1.
static int
s_reserve (keel_saga_log_t *self, size_t size)
{
    if (size <= self->buffer_size && self->buffer)
        return 0;
    size_t want = self->buffer_size ? self->buffer_size : 1024;
    while (want < size)
        want *= 2;
    uint8_t *buffer = realloc (self->buffer, want);
    if (!buffer)
        return -1;
    self->buffer = buffer;
    self->buffer_size = want;
    return 0;
}

//  After a put: drop an oversized packing buffer.
static void
s_trim (keel_saga_log_t *self)
{
    if (self->buffer_size > S_BUFFER_KEEP) {
        free (self->buffer);
        self->buffer = NULL;
        self->buffer_size = 0;
    }
}

int
keel_saga_log_begin (keel_saga_log_t *self)
{
    assert (self);
    if (self->in_batch) {
        s_set_error (self, "%s: begin: a batch is already open", self->path);
        return -1;
    }
    sqlite3_stmt *stmt = self->stmt[S_BEGIN];
    int rc = sqlite3_step (stmt);
    if (rc != SQLITE_DONE)
        s_db_error (self, "begin");
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        self->stats.failures++;
        return -1;
    }
    self->in_batch = true;
    self->doomed = false;
    self->batch_puts = 0;
    return 0;
}

//  A put failed with the last error set: doom the open batch.
static int
s_doom (keel_saga_log_t *self)
{
    self->stats.failures++;
    if (self->in_batch && !self->doomed) {
        self->doomed = true;
        free (self->doom_reason);
        self->doom_reason = self->error ? strdup (self->error) : NULL;
    }
    return -1;
}

//  After a unique-constraint failure putting `id` with `key`: say which
//  saga holds the key, if that is what failed.
static void
s_key_conflict (keel_saga_log_t *self, const char *id, const char *key)
{
    sqlite3_stmt *stmt = self->stmt[S_FIND_KEY];
    sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step (stmt) == SQLITE_ROW) {
        const char *owner = (const char *)sqlite3_column_text (stmt, 0);
        if (owner && strcmp (owner, id) != 0)
            s_set_error (self,
                         "%s: put saga %s: idempotency key \"%s\" already "
                         "belongs to saga %s",
                         self->path, id, key, owner);
    }
    sqlite3_reset (stmt);
}

//  Bind a record's columns to S_UPDATE or S_PUT (the same parameters).
//  The values must outlive the statement's step.
static void
s_bind_put (sqlite3_stmt *stmt, const Keel__SagaStatus *status, const char *id,
            const char *definition, const char *key, const uint8_t *packed,
            size_t size)
{
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int (stmt, 2, (int)status->state);
    sqlite3_bind_text (stmt, 3, definition, -1, SQLITE_STATIC);
    if (key)
        sqlite3_bind_text (stmt, 4, key, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (stmt, 4);
    sqlite3_bind_int64 (stmt, 5, status->updated_ms);
    sqlite3_bind_int64 (stmt, 6, status->created_ms);
    sqlite3_bind_blob64 (stmt, 7, packed, size, SQLITE_STATIC);
}

int
keel_saga_log_put (keel_saga_log_t *self, const Keel__SagaRecord *record)
{
    assert (self);
    assert (record);
    const Keel__SagaStatus *status = record->status;
    const char *id = status && status->id ? status->id : "";
    if (!self->in_batch) {
        s_set_error (self, "%s: put saga %s: no batch open", self->path, id);
        self->stats.failures++;
        return -1;
    }
    if (self->doomed) {
        s_set_error (self, "%s: put saga %s: the batch already failed (%s)",
                     self->path, id,
                     self->doom_reason ? self->doom_reason : "?");
        self->stats.failures++;
        return -1;
    }
    if (!status || !*id) {
        s_set_error (self, "%s: put: record has no %s", self->path,
                     status ? "saga id" : "status");
        return s_doom (self);
    }
    size_t size = keel__saga_record__get_packed_size (record);
    if (s_reserve (self, size)) {
        s_set_error (self,
                     "%s: put saga %s: cannot pack (%zu bytes: out of "
                     "memory)",
                     self->path, id, size);
        return s_doom (self);
    }
    size_t packed = keel__saga_record__pack (record, self->buffer);
    assert (packed == size);
    const char *definition = status->definition ? status->definition : "";
    const char *key = status->idempotency_key && *status->idempotency_key
                          ? status->idempotency_key
                          : NULL;

    //  The update first (the usual case: a saga already stored), then,
    //  when it found no row, the upsert.
    sqlite3_stmt *stmt = self->stmt[S_UPDATE];
    s_bind_put (stmt, status, id, definition, key, self->buffer, packed);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_DONE && sqlite3_changes (self->db) == 0) {
        sqlite3_reset (stmt);
        stmt = self->stmt[S_PUT];
        s_bind_put (stmt, status, id, definition, key, self->buffer, packed);
        rc = sqlite3_step (stmt);
    }
    if (rc != SQLITE_DONE) {
        char what[64 + 256];
        snprintf (what, sizeof what, "put saga %.256s", id);
        s_db_error (self, what);
    }
    sqlite3_reset (stmt);
    s_trim (self);
    if (rc == SQLITE_DONE) {
        self->batch_puts++;
        return 0;
    }
    if (rc == SQLITE_CONSTRAINT_UNIQUE && key)
        s_key_conflict (self, id, key);
    return s_doom (self);
}

//  Commit the open transaction: 0, or -1 (rolled back, error set, counted
//  as a failure). `what` names it in messages.
static int
s_commit (keel_saga_log_t *self, const char *what)
{
    if (self->doomed)
        s_set_error (self, "%s: %s: rolled back: %s", self->path, what,
                     self->doom_reason ? self->doom_reason : "a put failed");
    else if (self->fail_commits > 0) {
        self->fail_commits--;
        s_set_error (self, "%s: %s: database or disk is full (injected)",
                     self->path, what);
    } else {
        sqlite3_stmt *stmt = self->stmt[S_COMMIT];
        int rc = sqlite3_step (stmt);
        if (rc != SQLITE_DONE)
            s_db_error (self, what);
        sqlite3_reset (stmt);
        if (rc == SQLITE_DONE) {
            self->in_batch = false;
            self->batch_puts = 0;
            return 0;
        }
    }
    s_rollback (self);
    self->stats.failures++;
    return -1;
}

int
keel_saga_log_commit (keel_saga_log_t *self)
{
    assert (self);
    if (!self->in_batch) {
        s_set_error (self, "%s: commit: no batch open", self->path);
        self->stats.failures++;
        return -1;
    }
    uint64_t puts = self->batch_puts;
    if (s_commit (self, "commit"))
        return -1;
    self->stats.commits++;
    self->stats.records += puts;
    return 0;
}

void
keel_saga_log_rollback (keel_saga_log_t *self)
{
    assert (self);
    if (self->in_batch)
        s_rollback (self);
}

// ---------------------------------------------------------------------------
//  Definitions

int
keel_saga_log_put_definition (keel_saga_log_t *self,
                              const Keel__SagaDefinition *definition)
{
    assert (self);
    assert (definition);
    const char *name = definition->name ? definition->name : "";
    if (self->in_batch) {
        s_set_error (self, "%s: put definition %s: a batch is open", self->path,
                     name);
        self->stats.failures++;
        return -1;
    }
    if (!*name) {
        s_set_error (self, "%s: put definition: no name", self->path);
        self->stats.failures++;
        return -1;
    }
    char what[64 + 256];
    snprintf (what, sizeof what, "put definition %.256s v%u", name,
              definition->version);
    size_t size = keel__saga_definition__get_packed_size (definition);
    if (s_reserve (self, size)) {
        s_set_error (self, "%s: %s: cannot pack (out of memory)", self->path,
                     what);
        self->stats.failures++;
        return -1;
    }
    size_t packed = keel__saga_definition__pack (definition, self->buffer);
    assert (packed == size);
    if (keel_saga_log_begin (self))
        return -1;
    sqlite3_stmt *stmt = self->stmt[S_PUT_DEF];
    sqlite3_bind_text (stmt, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, definition->version);
    sqlite3_bind_blob64 (stmt, 3, self->buffer, packed, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc != SQLITE_DONE)
        s_db_error (self, what);
    sqlite3_reset (stmt);
    s_trim (self);
    if (rc != SQLITE_DONE) {
        s_rollback (self);
        self->stats.failures++;
        return -1;
    }
    return s_commit (self, what);
}

// ---------------------------------------------------------------------------
//  Reads

static void
s_rows_free (s_rows_t *rows, size_t from)
{
    for (size_t i = from; i < rows->count; i++)
        if (rows->items[i])
            protobuf_c_message_free_unpacked (rows->items[i], NULL);
    free (rows->items);
    rows->items = NULL;
    rows->count = rows->size = 0;
}

static int
s_rows_add (s_rows_t *rows, ProtobufCMessage *message)
{
    if (rows->count == rows->size) {
        size_t size = rows->size ? rows->size * 2 : 16;
        ProtobufCMessage **items = realloc (rows->items, size * sizeof *items);
        if (!items)
            return -1;
        rows->items = items;
        rows->size = size;
    }
    rows->items[rows->count++] = message;
    return 0;
}

//  Unpack the record in column `col` of the row of saga `id`. Returns it
//  (caller owns it), or NULL with the error set.
static Keel__SagaRecord *
s_unpack_record (keel_saga_log_t *self, sqlite3_stmt *stmt, const char *id,
                 int col)
{
    if (sqlite3_column_type (stmt, col) != SQLITE_BLOB) {
        s_set_error (self,
                     "%s: saga %s: stored record is not a blob "
                     "(corrupt)",
                     self->path, id);
        return NULL;
    }
    const void *data = sqlite3_column_blob (stmt, col);
    int size = sqlite3_column_bytes (stmt, col);
    Keel__SagaRecord *record =
        keel__saga_record__unpack (NULL, (size_t)size, data);
    if (!record) {
        s_set_error (self,
                     "%s: saga %s: stored record (%d bytes) does not "
                     "unpack (corrupt)",
                     self->path, id, size);
        return NULL;
    }
    if (!record->status || strcmp (record->status->id, id) != 0) {
        s_set_error (self, "%s: saga %s: stored record %s (corrupt)",
                     self->path, id,
                     record->status ? "is another saga's" : "has no status");
        protobuf_c_message_free_unpacked (&record->base, NULL);
        return NULL;
    }
    return record;
}

//  Step `stmt` (columns: id, record) to the end, gathering the records.
//  Resets it. Returns 0, or -1 with the error set and nothing gathered.
static int
s_gather (keel_saga_log_t *self, sqlite3_stmt *stmt, const char *what,
          s_rows_t *rows)
{
    int rc;
    int result = 0;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text (stmt, 0);
        Keel__SagaRecord *record =
            s_unpack_record (self, stmt, id ? id : "?", 1);
        if (!record) {
            result = -1;
            break;
        }
        if (s_rows_add (rows, &record->base)) {
            protobuf_c_message_free_unpacked (&record->base, NULL);
            s_set_error (self, "%s: %s: out of memory", self->path, what);
            result = -1;
            break;
        }
    }
    if (result == 0 && rc != SQLITE_DONE) {
        s_db_error (self, what);
        result = -1;
    }
    sqlite3_reset (stmt);
    if (result)
        s_rows_free (rows, 0);
    return result;
}

//  Hand the gathered records to `fn` in order; frees what is left when fn
//  stops early. Returns 0 or fn's non-zero value.
static int
s_dispatch (s_rows_t *rows, keel_saga_record_fn *fn, void *arg)
{
    int rc = 0;
    size_t i;
    for (i = 0; i < rows->count && rc == 0; i++) {
        Keel__SagaRecord *record = (Keel__SagaRecord *)rows->items[i];
        rows->items[i] = NULL; //  the callee's now
        rc = fn (record, arg);
    }
    s_rows_free (rows, i);
    return rc;
}

int
keel_saga_log_each_unfinished (keel_saga_log_t *self, keel_saga_record_fn *fn,
                               void *arg)
{
    assert (self);
    assert (fn);
    sqlite3_stmt *stmt = self->stmt[S_UNFINISHED];
    sqlite3_bind_int (stmt, 1, S_RUNNING);
    sqlite3_bind_int (stmt, 2, S_COMPENSATING);
    sqlite3_bind_int (stmt, 3, S_STUCK);
    s_rows_t rows = {0};
    if (s_gather (self, stmt, "read unfinished sagas", &rows))
        return -1;
    return s_dispatch (&rows, fn, arg);
}

int
keel_saga_log_list (keel_saga_log_t *self, int state, size_t limit,
                    keel_saga_record_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    sqlite3_int64 max =
        limit > (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit;
    sqlite3_stmt *stmt;
    if (state == -1) {
        stmt = self->stmt[S_LIST_ALL];
        sqlite3_bind_int64 (stmt, 1, max);
    } else {
        stmt = self->stmt[S_LIST_STATE];
        sqlite3_bind_int (stmt, 1, state);
        sqlite3_bind_int64 (stmt, 2, max);
    }
    s_rows_t rows = {0};
    if (s_gather (self, stmt, "list sagas", &rows))
        return -1;
    return s_dispatch (&rows, fn, arg);
}

Keel__SagaRecord *
keel_saga_log_get (keel_saga_log_t *self, const char *id)
{
    assert (self);
    assert (id);
    s_clear_error (self);
    sqlite3_stmt *stmt = self->stmt[S_GET];
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    Keel__SagaRecord *record = NULL;
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
        record = s_unpack_record (self, stmt, id, 1);
    else if (rc != SQLITE_DONE) {
        char what[64 + 256];
        snprintf (what, sizeof what, "get saga %.256s", id);
        s_db_error (self, what);
    }
    sqlite3_reset (stmt);
    return record;
}

char *
keel_saga_log_find_key (keel_saga_log_t *self, const char *key)
{
    assert (self);
    assert (key);
    s_clear_error (self);
    sqlite3_stmt *stmt = self->stmt[S_FIND_KEY];
    sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
    char *id = NULL;
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text (stmt, 0);
        id = strdup (text ? text : "");
        if (!id)
            s_set_error (self, "%s: find key: out of memory", self->path);
    } else if (rc != SQLITE_DONE)
        s_db_error (self, "find key");
    sqlite3_reset (stmt);
    return id;
}

int
keel_saga_log_each_definition (keel_saga_log_t *self, keel_saga_def_fn *fn,
                               void *arg)
{
    assert (self);
    assert (fn);
    sqlite3_stmt *stmt = self->stmt[S_EACH_DEF];
    s_rows_t rows = {0};
    int result = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text (stmt, 0);
        sqlite3_int64 version = sqlite3_column_int64 (stmt, 1);
        Keel__SagaDefinition *definition = NULL;
        if (sqlite3_column_type (stmt, 2) == SQLITE_BLOB)
            definition = keel__saga_definition__unpack (
                NULL, (size_t)sqlite3_column_bytes (stmt, 2),
                sqlite3_column_blob (stmt, 2));
        if (!definition || strcmp (definition->name, name ? name : "") != 0 ||
            definition->version != version) {
            s_set_error (self,
                         "%s: definition %s v%lld: stored body does not "
                         "unpack (corrupt)",
                         self->path, name ? name : "?", (long long)version);
            if (definition)
                protobuf_c_message_free_unpacked (&definition->base, NULL);
            result = -1;
            break;
        }
        if (s_rows_add (&rows, &definition->base)) {
            protobuf_c_message_free_unpacked (&definition->base, NULL);
            s_set_error (self, "%s: read definitions: out of memory",
                         self->path);
            result = -1;
            break;
        }
    }
    if (result == 0 && rc != SQLITE_DONE) {
        s_db_error (self, "read definitions");
        result = -1;
    }
    sqlite3_reset (stmt);
    for (size_t i = 0; i < rows.count && result == 0; i++)
        result = fn ((const Keel__SagaDefinition *)rows.items[i], arg);
    s_rows_free (&rows, 0);
    return result;
}

// ---------------------------------------------------------------------------
//  Compaction, counters, tests

static int
s_compact (keel_saga_log_t *self, int64_t now_ms, bool one_chunk)
{
    assert (self);
    if (self->in_batch) {
        s_set_error (self, "%s: compact: a batch is open", self->path);
        return -1;
    }
    int64_t cutoff = now_ms < INT64_MIN + self->retention_ms
                         ? INT64_MIN
                         : now_ms - self->retention_ms;
    sqlite3_stmt *stmt = self->stmt[S_COMPACT];
    sqlite3_bind_int (stmt, 1, S_COMPLETED);
    sqlite3_bind_int (stmt, 2, S_COMPENSATED);
    sqlite3_bind_int64 (stmt, 3, cutoff);
    sqlite3_bind_int (stmt, 4, S_COMPACT_CHUNK);
    //  One chunk a transaction (autocommit); chunks deleted before an
    //  error stay deleted and counted.
    int deleted = 0;
    int chunk;
    do {
        int rc = sqlite3_step (stmt);
        if (rc != SQLITE_DONE)
            s_db_error (self, "compact");
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE) {
            self->stats.failures++;
            return -1;
        }
        chunk = sqlite3_changes (self->db);
        deleted += chunk;
        self->stats.compacted += (uint64_t)chunk;
    } while (!one_chunk && chunk == S_COMPACT_CHUNK &&
             deleted <= INT_MAX - S_COMPACT_CHUNK);
    return deleted;
}

int
keel_saga_log_compact (keel_saga_log_t *self, int64_t now_ms)
{
    return s_compact (self, now_ms, false);
}

int
keel_saga_log_compact_chunk (keel_saga_log_t *self, int64_t now_ms)
{
    return s_compact (self, now_ms, true);
}

keel_saga_log_stats_t
keel_saga_log_stats (keel_saga_log_t *self)
{
    assert (self);
    return self->stats;
}

void
keel_saga_log_fail_commits (keel_saga_log_t *self, int count)
{
    assert (self);
    self->fail_commits = count > 0 ? count : 0;
}
