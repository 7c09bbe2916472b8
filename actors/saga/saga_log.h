/*  saga_log.h - the saga coordinator's write-ahead log: SQLite in WAL mode.

    Why SQLite: one file, transactions, WAL (readers never block the
    writer, commits append to the WAL), an index on state and idempotency
    key for the queries the coordinator answers, and it is in Debian and
    everywhere else. LMDB would commit faster per transaction, but the
    coordinator batches: group commit makes the fsync rate, not the engine,
    the limit.

    Layout (one file; `-wal` and `-shm` beside it):

        sagas(id TEXT PRIMARY KEY, state INTEGER, definition TEXT,
              key TEXT UNIQUE (NULL when none), updated_ms INTEGER,
              created_ms INTEGER, record BLOB)   -- record = packed SagaRecord
        definitions(name TEXT, version INTEGER, body BLOB,
                    PRIMARY KEY (name, version))

    Group commit: the coordinator opens a batch, puts every record that
    changed since the last batch (a put of the same id twice in one batch
    keeps the last), commits once (one fsync with synchronous = full), and
    only then sends the commands those changes produced. A commit that fails
    (disk full, I/O error) is rolled back: nothing of the batch is durable,
    and the caller must not act on it.

    Thread: a log belongs to one thread.
*/
#ifndef KEEL_SAGA_LOG_H_INCLUDED
#define KEEL_SAGA_LOG_H_INCLUDED

#include "saga.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_saga_log_t keel_saga_log_t;

//  Settings. Zero fields take the defaults.
typedef struct {
    bool sync_normal;     //  false (default): synchronous = FULL, every
                          //  commit is fsynced; true: NORMAL (WAL fsynced
                          //  at checkpoints only: survives a process crash,
                          //  not a power cut)
    int64_t retention_ms; //  finished sagas kept this long (default 24 h)
} keel_saga_log_config_t;

//  Counters since open.
typedef struct {
    uint64_t commits;   //  batches committed
    uint64_t records;   //  records written (puts that reached a commit)
    uint64_t failures;  //  commits (or puts) that failed
    uint64_t compacted; //  finished sagas deleted by compaction
} keel_saga_log_stats_t;

//  Open (create if needed) the log at `path` (a file name; ":memory:" for
//  a log that lasts as long as the process, in tests). config may be NULL.
//  Returns the log, or NULL with *error_p (caller frees) set to a clear
//  message ("cannot open /x/saga.db: unable to open database file").
keel_saga_log_t *keel_saga_log_open (const char *path,
                                     const keel_saga_log_config_t *config,
                                     char **error_p);

//  Close (a batch not committed is rolled back); nulls *self_p.
void keel_saga_log_close (keel_saga_log_t **self_p);

//  The last error's message (static or owned by the log; valid until the
//  next call), "" if none.
const char *keel_saga_log_error (keel_saga_log_t *self);

//  Start a batch. Returns 0, or -1 (a batch is already open, or an error).
int keel_saga_log_begin (keel_saga_log_t *self);

//  Put a record in the open batch (insert or replace by its id). Returns 0,
//  or -1 (no batch, cannot pack, I/O error: the batch is then doomed and
//  commit will fail).
int keel_saga_log_put (keel_saga_log_t *self, const Keel__SagaRecord *record);

//  Commit the batch. Returns 0 once it is durable, or -1 (rolled back;
//  keel_saga_log_error says why).
int keel_saga_log_commit (keel_saga_log_t *self);

//  Roll the open batch back (no-op without one).
void keel_saga_log_rollback (keel_saga_log_t *self);

//  Store a definition (its own transaction). The same name and version
//  again replaces it. Returns 0 or -1.
int keel_saga_log_put_definition (keel_saga_log_t *self,
                                  const Keel__SagaDefinition *definition);

//  Call `fn` for every stored definition (any order), then return 0; stop
//  and return fn's value when it returns non-zero; -1 on an error. The
//  definition is borrowed for the call.
typedef int (keel_saga_def_fn) (const Keel__SagaDefinition *definition,
                                void *arg);
int keel_saga_log_each_definition (keel_saga_log_t *self, keel_saga_def_fn *fn,
                                   void *arg);

//  Call `fn` for every saga not finished (RUNNING, COMPENSATING, STUCK),
//  oldest first. The record is the callee's: it owns it and destroys it
//  (keel_saga_record_destroy) or keeps it. Returns 0, fn's non-zero value,
//  or -1 on an error (a record that does not unpack is an error, named).
typedef int (keel_saga_record_fn) (Keel__SagaRecord *record, void *arg);
int keel_saga_log_each_unfinished (keel_saga_log_t *self,
                                   keel_saga_record_fn *fn, void *arg);

//  The stored record of saga `id`, or NULL (unknown, or an error: see
//  keel_saga_log_error). Caller owns it (keel_saga_record_destroy).
Keel__SagaRecord *keel_saga_log_get (keel_saga_log_t *self, const char *id);

//  The id of the saga started with idempotency key `key`, or NULL. Caller
//  frees.
char *keel_saga_log_find_key (keel_saga_log_t *self, const char *key);

//  Call `fn` for up to `limit` sagas, newest (created) first: all of them
//  when state is -1, else those in `state` (a Keel__SagaState). Records
//  are the callee's, as in each_unfinished. Returns as each_unfinished.
int keel_saga_log_list (keel_saga_log_t *self, int state, size_t limit,
                        keel_saga_record_fn *fn, void *arg);

//  Delete finished sagas (COMPLETED, COMPENSATED) last updated before
//  now_ms - retention. Returns how many, or -1.
int keel_saga_log_compact (keel_saga_log_t *self, int64_t now_ms);

//  As keel_saga_log_compact, but one chunk (at most KEEL_SAGA_LOG_CHUNK
//  sagas, one transaction) only, so a writer can interleave its batches
//  between chunks. Returns how many were deleted (KEEL_SAGA_LOG_CHUNK: there
//  may be more), or -1.
#define KEEL_SAGA_LOG_CHUNK 4096
int keel_saga_log_compact_chunk (keel_saga_log_t *self, int64_t now_ms);

//  Counters.
keel_saga_log_stats_t keel_saga_log_stats (keel_saga_log_t *self);

//  For tests of I/O failures: make the next `count` commits fail as a full
//  disk would (SQLITE_FULL; the batch is rolled back). 0 stops it.
void keel_saga_log_fail_commits (keel_saga_log_t *self, int count);

#ifdef __cplusplus
}
#endif

#endif
