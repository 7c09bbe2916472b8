/*  saga_machine.h - the saga state machine (pure core): what one saga does
    next, given its record, the time, and the results that came back. No
    sockets, no threads, no clock, no randomness (retry jitter comes from a
    hash of saga id, step and attempt, so a replay decides the same).

    The record (Keel__SagaRecord, schemas/saga.proto) is the whole state:
    status (saga and step states, attempts, errors, outputs), the
    definition the saga started with, per-step runtime (attempt in flight,
    its deadline, the earliest next attempt). The coordinator stores it
    after every change and before sending the commands the change produced,
    so a restart from the log resumes exactly (an attempt in flight at the
    crash is sent again after its deadline: at-least-once, made exactly-once
    by the participant's dedupe of the idempotency key).

        start ──> RUNNING ──all steps DONE──────────────────> COMPLETED
                    │ a step fails for good (or cancel)
                    v
                COMPENSATING ──every DONE step COMPENSATED──> COMPENSATED
                    │ a compensation fails for good
                    v
                  STUCK ──resolve retry | skip──> back where it was

    Forward: steps run in order; consecutive steps with the same non-empty
    group run at once (the group is done when all its steps are). A failed
    action is retried per its policy (max_attempts; the wait before attempt
    n+1 is min(initial * backoff^(n-1), max) +- jitter); an error named in
    non_retryable, or the last attempt failing, fails it for good: FAILED.
    A step FAILED by an error the participant answered did not take effect
    and is not compensated; one whose last attempt timed out may have, so
    it is compensated with the DONE ones (a compensation must accept an
    action that never happened).
    Its siblings in a parallel group still in flight are awaited: those that
    succeed are compensated too.

    Pivot: once a step marked pivot is DONE, the saga can only go forward:
    a later step that fails for good makes the saga STUCK (resolve retry
    gives it a fresh attempt budget; skip marks it SKIPPED and goes on), and
    cancel is refused.

    Backward: DONE steps are compensated one at a time in reverse order
    (steps with no compensation method become COMPENSATED at once), each
    retried per its compensation_retry policy; when one fails for good the
    saga is STUCK (resolve retry: a fresh budget; skip: SKIPPED, go on).

    Every call that changes the record returns true; the caller then stores
    it, then performs the commands (keel_saga_cmd_t) and publishes the
    events (keel_saga_event_t) collected in the output arrays.
*/
#ifndef KEEL_SAGA_MACHINE_H_INCLUDED
#define KEEL_SAGA_MACHINE_H_INCLUDED

#include "saga.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Most steps in a definition.
#define KEEL_SAGA_MAX_STEPS 64

//  Send step `step`'s action (compensate false) or compensation, attempt
//  `attempt` (1, 2, ...), answer due by `deadline_ms`.
typedef struct {
    int step;
    bool compensate;
    uint32_t attempt;
    int64_t deadline_ms;
} keel_saga_cmd_t;

//  Something to publish: type is one of "saga.started", "saga.step_done",
//  "saga.step_failed" (a failed attempt, retried or not), "saga.compensating",
//  "saga.completed", "saga.compensated", "saga.stuck", "saga.resolved"
//  (static strings). step -1 when not about one step. error is borrowed
//  from the record (valid until it changes again) or static; "" if none.
typedef struct {
    const char *type;
    int step;
    uint32_t attempt;
    const char *error;
} keel_saga_event_t;

//  Where a call puts what the caller must do. The caller provides the
//  arrays; KEEL_SAGA_MAX_STEPS entries of each always suffice for one call
//  (at most one command per step, at most 2 events per step + 2).
typedef struct {
    keel_saga_cmd_t *cmds;
    size_t n_cmds;
    keel_saga_event_t *events;
    size_t n_events;
} keel_saga_out_t;

#define KEEL_SAGA_MAX_EVENTS (2 * KEEL_SAGA_MAX_STEPS + 2)

// ---------------------------------------------------------------------------
//  Definitions

//  Check a definition: name [A-Za-z0-9_.-]{1,100}, version >= 1, 1 to
//  KEEL_SAGA_MAX_STEPS steps with unique non-empty names, a service and an
//  action each (printable, no spaces, <= 100 bytes), group names likewise
//  when given, at most one pivot, retry policies sane (max_attempts 1..1000
//  once defaults applied, backoff >= 1, jitter 0..1, intervals <= 1 day;
//  non_retryable names known error names). Returns NULL if valid, else a
//  static description of the first problem.
const char *keel_saga_def_check (const Keel__SagaDefinition *def);

//  Fill the zero fields of a definition's policies and timeouts with the
//  defaults (see schemas/saga.proto). Allocates the policies that are
//  absent (with malloc: the definition must be malloc-owned, as one from
//  protobuf-c's unpack with the default allocator). Returns 0 or -1 (out
//  of memory).
int keel_saga_def_defaults (Keel__SagaDefinition *def);

// ---------------------------------------------------------------------------
//  Records

//  A new record for a saga of `def` (copied; defaults applied), with `id`,
//  `input` (size bytes, copied), `key` (idempotency key or NULL), created
//  at `now_ms` (wall clock ms), state RUNNING, every step PENDING. Everything
//  is malloc-owned: destroy with keel_saga_record_destroy. Emits
//  "saga.started" and the first commands into out (if not NULL) — i.e. it
//  also runs keel_saga_advance. Returns NULL if out of memory.
Keel__SagaRecord *keel_saga_record_new (const Keel__SagaDefinition *def,
                                        const char *id, const void *input,
                                        size_t size, const char *key,
                                        int64_t now_ms, keel_saga_out_t *out);

//  Free a record (malloc-owned, as made by keel_saga_record_new or unpacked
//  with protobuf-c's default allocator); nulls *self_p.
void keel_saga_record_destroy (Keel__SagaRecord **self_p);

//  Is the saga over (COMPLETED or COMPENSATED)? STUCK is not over.
bool keel_saga_finished (const Keel__SagaRecord *self);

// ---------------------------------------------------------------------------
//  Driving a saga

//  Do what is due at `now_ms`: attempts whose deadline passed fail with
//  TIMEOUT (then retried or failed per policy), retries whose wait is over
//  and steps whose turn came are sent (commands), state changes follow.
//  Also the way to resume a record loaded after a restart: attempts that
//  were in flight stay in flight until their deadline. Updates wake_ms.
//  Returns true if the record changed.
bool keel_saga_advance (Keel__SagaRecord *self, int64_t now_ms,
                        keel_saga_out_t *out);

//  A participant answered attempt `attempt` of step `step` (compensate:
//  of its compensation): `code` 0 = success with `output` (size bytes), or
//  an error code (keel ErrorCode number) with its name `error_name`
//  ("TIMEOUT", "BAD_REQUEST", ...) and `text`. An answer for an attempt
//  that is not the one in flight (late, duplicate) is ignored: returns
//  false. Otherwise applies it, then advances (as keel_saga_advance) and
//  returns true.
bool keel_saga_result (Keel__SagaRecord *self, int step, bool compensate,
                       uint32_t attempt, int code, const char *error_name,
                       const char *text, const void *output, size_t size,
                       int64_t now_ms, keel_saga_out_t *out);

//  Cancel: a RUNNING saga before its pivot is done turns COMPENSATING
//  (attempts in flight are awaited; actions that succeed are compensated).
//  Returns 0 (changed, or already COMPENSATING / finished as COMPENSATED:
//  nothing to do), or -1 when it cannot be cancelled (pivot done, or
//  COMPLETED, or STUCK): *why_p gets a static reason.
int keel_saga_cancel (Keel__SagaRecord *self, int64_t now_ms,
                      keel_saga_out_t *out, const char **why_p);

//  Resolve a STUCK saga: retry (the stuck step's attempt budget starts
//  again) or skip (the stuck step becomes SKIPPED and the saga goes on).
//  Returns 0, or -1 if the saga is not STUCK (*why_p set).
int keel_saga_resolve (Keel__SagaRecord *self, bool skip, int64_t now_ms,
                       keel_saga_out_t *out, const char **why_p);

//  The wait before attempt `attempt` + 1 under `policy` (attempt >= 1),
//  jitter included, as a hash of `seed_text` and the attempt picks it.
int64_t keel_saga_backoff_ms (const Keel__RetryPolicy *policy, uint32_t attempt,
                              const char *seed_text);

//  Static names: "RUNNING", "COMPENSATING", "COMPLETED", "COMPENSATED",
//  "STUCK" and "PENDING", "RUNNING", "DONE", "FAILED", "COMPENSATING",
//  "COMPENSATED", "SKIPPED"; "UNKNOWN" when out of range. And the reverse
//  for saga states (case-insensitive; -1 if unknown).
const char *keel_saga_state_name (int state);
const char *keel_saga_step_state_name (int state);
int keel_saga_state_parse (const char *name);

#ifdef __cplusplus
}
#endif

#endif
