/*  test_saga_machine.c - the saga state machine: forward, backward, retries,
    timeouts, backoff, pivot, cancel, resolve, parallel groups, late results,
    resume from a packed record, and a randomized run checking invariants.
    Time is injected: every test drives its own clock. Every record a test
    sees is packed and unpacked again (it must survive the log). */
#include "saga_machine.h"
#include "keel_common.h"
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define T0 1000000

#define S_RUNNING      KEEL__SAGA_STATE__SAGA_RUNNING
#define S_COMPENSATING KEEL__SAGA_STATE__SAGA_COMPENSATING
#define S_COMPLETED    KEEL__SAGA_STATE__SAGA_COMPLETED
#define S_COMPENSATED  KEEL__SAGA_STATE__SAGA_COMPENSATED
#define S_STUCK        KEEL__SAGA_STATE__SAGA_STUCK

#define PENDING      KEEL__STEP_STATE__STEP_PENDING
#define RUNNING      KEEL__STEP_STATE__STEP_RUNNING
#define DONE         KEEL__STEP_STATE__STEP_DONE
#define FAILED       KEEL__STEP_STATE__STEP_FAILED
#define COMPENSATING KEEL__STEP_STATE__STEP_COMPENSATING
#define COMPENSATED  KEEL__STEP_STATE__STEP_COMPENSATED
#define SKIPPED      KEEL__STEP_STATE__STEP_SKIPPED

#define ACT  false
#define COMP true

// ---------------------------------------------------------------------------
//  Definitions, malloc-owned like an unpacked one

static void
s_str (char **field, const char *text)
{
    if (*field && *field != protobuf_c_empty_string)
        free (*field);
    *field = *text ? strdup (text) : (char *)protobuf_c_empty_string;
}

//  n steps "s0".."sN-1" of service "svc", action "do", compensation "undo".
static Keel__SagaDefinition *
s_def_new (int n)
{
    Keel__SagaDefinition *def = malloc (sizeof *def);
    keel__saga_definition__init (def);
    s_str (&def->name, "order");
    def->version = 1;
    def->steps = calloc (n, sizeof (Keel__SagaStep *));
    def->n_steps = n;
    for (int i = 0; i < n; i++) {
        Keel__SagaStep *step = malloc (sizeof *step);
        keel__saga_step__init (step);
        char name[16];
        snprintf (name, sizeof name, "s%d", i);
        s_str (&step->name, name);
        s_str (&step->service, "svc");
        s_str (&step->action, "do");
        s_str (&step->compensation, "undo");
        def->steps[i] = step;
    }
    return def;
}

static void
s_def_destroy (Keel__SagaDefinition **def_p)
{
    protobuf_c_message_free_unpacked (&(*def_p)->base, NULL);
    *def_p = NULL;
}

//  Step i's action (or compensation) policy, made if absent.
static Keel__RetryPolicy *
s_policy (Keel__SagaDefinition *def, int i, bool compensate)
{
    Keel__RetryPolicy **policy_p =
        compensate ? &def->steps[i]->compensation_retry : &def->steps[i]->retry;
    if (!*policy_p) {
        *policy_p = malloc (sizeof (Keel__RetryPolicy));
        keel__retry_policy__init (*policy_p);
    }
    return *policy_p;
}

static void
s_non_retryable (Keel__RetryPolicy *policy, const char *name)
{
    policy->non_retryable = realloc (
        policy->non_retryable, (policy->n_non_retryable + 1) * sizeof (char *));
    policy->non_retryable[policy->n_non_retryable++] = strdup (name);
}

static void
s_group (Keel__SagaDefinition *def, int i, const char *group)
{
    s_str (&def->steps[i]->group, group);
}

// ---------------------------------------------------------------------------
//  Driving a record

typedef struct {
    Keel__SagaRecord *rec;
    keel_saga_cmd_t cmds[KEEL_SAGA_MAX_STEPS];
    keel_saga_event_t events[KEEL_SAGA_MAX_EVENTS];
    keel_saga_out_t out;
    int64_t now;
    bool reload; //  replace the record by its packed copy after each call
} drv_t;

//  A packed record unpacked again (default allocator).
static Keel__SagaRecord *
s_roundtrip (const Keel__SagaRecord *rec)
{
    size_t size = keel__saga_record__get_packed_size (rec);
    uint8_t *buffer = malloc (size + 1);
    keel__saga_record__pack (rec, buffer);
    Keel__SagaRecord *copy = keel__saga_record__unpack (NULL, size, buffer);
    ck_assert_ptr_nonnull (copy);
    //  ... and it packs to the same bytes.
    size_t size2 = keel__saga_record__get_packed_size (copy);
    ck_assert_uint_eq (size2, size);
    uint8_t *buffer2 = malloc (size2 + 1);
    keel__saga_record__pack (copy, buffer2);
    ck_assert_mem_eq (buffer, buffer2, size);
    free (buffer);
    free (buffer2);
    return copy;
}

//  After each call: the record packs; reload if asked.
static void
s_after (drv_t *d)
{
    Keel__SagaRecord *copy = s_roundtrip (d->rec);
    if (d->reload) {
        keel_saga_record_destroy (&d->rec);
        d->rec = copy;
    } else
        keel_saga_record_destroy (&copy);
}

static void
s_drv_start (drv_t *d, const Keel__SagaDefinition *def, int64_t now)
{
    memset (d, 0, sizeof *d);
    d->out.cmds = d->cmds;
    d->out.events = d->events;
    d->now = now;
    d->rec =
        keel_saga_record_new (def, "saga-1", "in", 2, "key-1", now, &d->out);
    ck_assert_ptr_nonnull (d->rec);
    s_after (d);
}

static void
s_drv_end (drv_t *d)
{
    keel_saga_record_destroy (&d->rec);
    ck_assert_ptr_null (d->rec);
}

static int
s_code (const char *name)
{
    for (int code = 1; code <= KEEL_ERR_MAX_KNOWN; code++)
        if (strcmp (keel_errname (code), name) == 0)
            return code;
    return 99;
}

static bool
s_result (drv_t *d, int step, bool compensate, uint32_t attempt,
          const char *error)
{
    char output[32];
    snprintf (output, sizeof output, "out-%d-%u", step, attempt);
    bool changed = keel_saga_result (
        d->rec, step, compensate, attempt, error ? s_code (error) : 0, error,
        error ? "went wrong" : NULL, output, strlen (output), d->now, &d->out);
    s_after (d);
    return changed;
}

//  A result the machine must take.
static void
s_ok (drv_t *d, int step, bool compensate, uint32_t attempt)
{
    ck_assert (s_result (d, step, compensate, attempt, NULL));
}

static void
s_err (drv_t *d, int step, bool compensate, uint32_t attempt, const char *error)
{
    ck_assert (s_result (d, step, compensate, attempt, error));
}

static bool
s_advance (drv_t *d, int64_t now)
{
    d->now = now;
    bool changed = keel_saga_advance (d->rec, now, &d->out);
    s_after (d);
    return changed;
}

//  Advance to the record's wake time.
static bool
s_wake (drv_t *d)
{
    ck_assert_int_gt (d->rec->wake_ms, 0);
    return s_advance (d, d->rec->wake_ms);
}

//  The commands of the last call are exactly these n (step, compensate,
//  attempt) triples, in this order.
static void
s_cmds (drv_t *d, int n, ...)
{
    ck_assert_uint_eq (d->out.n_cmds, n);
    va_list args;
    va_start (args, n);
    for (int i = 0; i < n; i++) {
        int step = va_arg (args, int);
        int compensate = va_arg (args, int);
        int attempt = va_arg (args, int);
        ck_assert_int_eq (d->cmds[i].step, step);
        ck_assert_int_eq (d->cmds[i].compensate, compensate);
        ck_assert_uint_eq (d->cmds[i].attempt, (uint32_t)attempt);
        const Keel__StepRuntime *rt = d->rec->runtime[step];
        ck_assert_uint_eq (rt->inflight, (uint32_t)attempt);
        ck_assert_int_eq (rt->inflight_compensate, compensate);
        ck_assert_int_eq (d->cmds[i].deadline_ms, rt->deadline_ms);
    }
    va_end (args);
}

//  The events of the last call are exactly these types, in order (NULL
//  ends the list).
static void
s_events (drv_t *d, ...)
{
    va_list args;
    va_start (args, d);
    size_t i = 0;
    const char *type;
    while ((type = va_arg (args, const char *))) {
        ck_assert_uint_lt (i, d->out.n_events);
        ck_assert_str_eq (d->events[i].type, type);
        i++;
    }
    va_end (args);
    ck_assert_uint_eq (d->out.n_events, i);
}

static Keel__SagaState
s_state (drv_t *d)
{
    return d->rec->status->state;
}

static Keel__StepState
s_step (drv_t *d, int i)
{
    return d->rec->status->steps[i]->state;
}

// ---------------------------------------------------------------------------
//  Names and definitions

START_TEST (test_names)
{
    ck_assert_str_eq (keel_saga_state_name (S_RUNNING), "RUNNING");
    ck_assert_str_eq (keel_saga_state_name (S_COMPENSATING), "COMPENSATING");
    ck_assert_str_eq (keel_saga_state_name (S_COMPLETED), "COMPLETED");
    ck_assert_str_eq (keel_saga_state_name (S_COMPENSATED), "COMPENSATED");
    ck_assert_str_eq (keel_saga_state_name (S_STUCK), "STUCK");
    ck_assert_str_eq (keel_saga_state_name (5), "UNKNOWN");
    ck_assert_str_eq (keel_saga_state_name (-1), "UNKNOWN");
    const char *steps[] = {"PENDING",      "RUNNING",     "DONE",   "FAILED",
                           "COMPENSATING", "COMPENSATED", "SKIPPED"};
    for (int i = 0; i < 7; i++)
        ck_assert_str_eq (keel_saga_step_state_name (i), steps[i]);
    ck_assert_str_eq (keel_saga_step_state_name (7), "UNKNOWN");
    ck_assert_str_eq (keel_saga_step_state_name (-1), "UNKNOWN");
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq (keel_saga_state_parse (keel_saga_state_name (i)), i);
    ck_assert_int_eq (keel_saga_state_parse ("stuck"), S_STUCK);
    ck_assert_int_eq (keel_saga_state_parse ("Compensated"), S_COMPENSATED);
    ck_assert_int_eq (keel_saga_state_parse ("DONE"), -1);
    ck_assert_int_eq (keel_saga_state_parse (""), -1);
    ck_assert_int_eq (keel_saga_state_parse (NULL), -1);
}
END_TEST

START_TEST (test_def_check)
{
    Keel__SagaDefinition *def = s_def_new (3);
    ck_assert_ptr_null (keel_saga_def_check (def));
    ck_assert_ptr_nonnull (keel_saga_def_check (NULL));

    //  Each fault alone, then put back.
#define S_BAD(fault, undo)                                                     \
    do {                                                                       \
        fault;                                                                 \
        ck_assert_ptr_nonnull (keel_saga_def_check (def));                     \
        undo;                                                                  \
        ck_assert_ptr_null (keel_saga_def_check (def));                        \
    } while (0)
    S_BAD (s_str (&def->name, ""), s_str (&def->name, "order"));
    S_BAD (s_str (&def->name, "or der"), s_str (&def->name, "order"));
    S_BAD (s_str (&def->name, "ord/er"), s_str (&def->name, "order"));
    char long_name[102], max_name[101];
    memset (long_name, 'a', 101);
    long_name[101] = 0;
    memset (max_name, 'a', 100);
    max_name[100] = 0;
    S_BAD (s_str (&def->name, long_name), s_str (&def->name, "order"));
    s_str (&def->name, max_name);
    ck_assert_ptr_null (keel_saga_def_check (def));
    s_str (&def->name, "Order_v2.x-y");
    ck_assert_ptr_null (keel_saga_def_check (def));
    S_BAD (def->version = 0, def->version = 1);
    S_BAD (def->n_steps = 0, def->n_steps = 3);
    S_BAD (s_str (&def->steps[1]->name, "s0"),
           s_str (&def->steps[1]->name, "s1"));
    S_BAD (s_str (&def->steps[1]->name, ""),
           s_str (&def->steps[1]->name, "s1"));
    S_BAD (s_str (&def->steps[1]->service, ""),
           s_str (&def->steps[1]->service, "svc"));
    S_BAD (s_str (&def->steps[1]->service, "my svc"),
           s_str (&def->steps[1]->service, "svc"));
    S_BAD (s_str (&def->steps[1]->action, ""),
           s_str (&def->steps[1]->action, "do"));
    S_BAD (s_str (&def->steps[1]->action, "d\to"),
           s_str (&def->steps[1]->action, "do"));
    S_BAD (s_str (&def->steps[1]->action, long_name),
           s_str (&def->steps[1]->action, max_name));
    s_str (&def->steps[1]->action, "do");
    S_BAD (s_str (&def->steps[1]->compensation, "un do"),
           s_str (&def->steps[1]->compensation, "undo"));
    S_BAD (s_str (&def->steps[1]->group, "g 1"),
           s_str (&def->steps[1]->group, ""));
    s_str (&def->steps[1]->compensation, "");
    s_group (def, 1, "g1");
    ck_assert_ptr_null (keel_saga_def_check (def));
    def->steps[0]->pivot = true;
    ck_assert_ptr_null (keel_saga_def_check (def));
    S_BAD (def->steps[2]->pivot = true, def->steps[2]->pivot = false);

    Keel__RetryPolicy *policy = s_policy (def, 2, ACT);
    S_BAD (policy->max_attempts = 1001, policy->max_attempts = 1000);
    S_BAD (policy->backoff = 0.5, policy->backoff = 1);
    S_BAD (policy->backoff = NAN, policy->backoff = 1.5);
    S_BAD (policy->jitter = 1.01, policy->jitter = 1);
    S_BAD (policy->jitter = -0.1, policy->jitter = 0);
    S_BAD (policy->initial_interval_ms = 86400001,
           policy->initial_interval_ms = 86400000);
    S_BAD (policy->max_interval_ms = 86400001,
           policy->max_interval_ms = 86400000);
    s_non_retryable (policy, "BAD_REQUEST");
    s_non_retryable (policy, "INVALID_ARGUMENT");
    ck_assert_ptr_null (keel_saga_def_check (def));
    s_non_retryable (policy, "NO_SUCH_ERROR");
    ck_assert_ptr_nonnull (keel_saga_def_check (def));
    s_str (&policy->non_retryable[2], "OK");
    ck_assert_ptr_nonnull (keel_saga_def_check (def));
    s_str (&policy->non_retryable[2], "TIMEOUT");
    ck_assert_ptr_null (keel_saga_def_check (def));
    Keel__RetryPolicy *comp = s_policy (def, 0, COMP);
    S_BAD (comp->max_attempts = 5000, comp->max_attempts = 0);
    s_def_destroy (&def);

    def = s_def_new (KEEL_SAGA_MAX_STEPS);
    ck_assert_ptr_null (keel_saga_def_check (def));
    s_def_destroy (&def);
    def = s_def_new (KEEL_SAGA_MAX_STEPS + 1);
    ck_assert_ptr_nonnull (keel_saga_def_check (def));
    //  An invalid definition starts no saga.
    ck_assert_ptr_null (
        keel_saga_record_new (def, "x", NULL, 0, NULL, T0, NULL));
    s_def_destroy (&def);
#undef S_BAD
}
END_TEST

START_TEST (test_def_defaults)
{
    Keel__SagaDefinition *def = s_def_new (2);
    Keel__RetryPolicy *given = s_policy (def, 1, ACT);
    given->max_attempts = 7;
    given->initial_interval_ms = 50;
    given->jitter = 0.5;
    def->steps[1]->timeout_ms = 300;
    ck_assert_int_eq (keel_saga_def_defaults (def), 0);

    const Keel__SagaStep *s0 = def->steps[0];
    ck_assert_uint_eq (s0->timeout_ms, 5000);
    ck_assert_uint_eq (s0->retry->max_attempts, 3);
    ck_assert_uint_eq (s0->retry->initial_interval_ms, 100);
    ck_assert (s0->retry->backoff == 2);
    ck_assert_uint_eq (s0->retry->max_interval_ms, 10000);
    ck_assert (s0->retry->jitter == 0.2);
    ck_assert_uint_eq (s0->compensation_retry->max_attempts, 5);
    ck_assert_uint_eq (s0->compensation_retry->initial_interval_ms, 100);
    ck_assert (s0->compensation_retry->backoff == 2);
    ck_assert_uint_eq (s0->compensation_retry->max_interval_ms, 10000);
    ck_assert (s0->compensation_retry->jitter == 0.2);

    //  Given values stay; the compensation takes the action's intervals.
    const Keel__SagaStep *s1 = def->steps[1];
    ck_assert_uint_eq (s1->timeout_ms, 300);
    ck_assert_uint_eq (s1->retry->max_attempts, 7);
    ck_assert_uint_eq (s1->retry->initial_interval_ms, 50);
    ck_assert (s1->retry->jitter == 0.5);
    ck_assert_uint_eq (s1->compensation_retry->max_attempts, 5);
    ck_assert_uint_eq (s1->compensation_retry->initial_interval_ms, 50);
    ck_assert (s1->compensation_retry->jitter == 0.5);

    //  Applying them twice changes nothing.
    ck_assert_int_eq (keel_saga_def_defaults (def), 0);
    ck_assert_uint_eq (s1->retry->max_attempts, 7);
    ck_assert_uint_eq (s0->compensation_retry->max_attempts, 5);
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Forward

START_TEST (test_success)
{
    Keel__SagaDefinition *def = s_def_new (3);
    drv_t d;
    s_drv_start (&d, def, T0);
    s_events (&d, "saga.started", NULL);
    s_cmds (&d, 1, 0, ACT, 1);
    ck_assert_int_eq (d.cmds[0].deadline_ms, T0 + 5000);
    ck_assert_int_eq (d.rec->wake_ms, T0 + 5000);
    ck_assert_int_eq (d.rec->stuck_step, -1);

    //  The record: status, a copy of the definition with defaults.
    const Keel__SagaStatus *status = d.rec->status;
    ck_assert_str_eq (status->id, "saga-1");
    ck_assert_str_eq (status->definition, "order");
    ck_assert_uint_eq (status->version, 1);
    ck_assert_str_eq (status->idempotency_key, "key-1");
    ck_assert_uint_eq (status->input.len, 2);
    ck_assert_mem_eq (status->input.data, "in", 2);
    ck_assert_int_eq (status->created_ms, T0);
    ck_assert_int_eq (status->updated_ms, T0);
    ck_assert_str_eq (status->last_error, "");
    ck_assert_uint_eq (status->n_steps, 3);
    ck_assert_str_eq (status->steps[2]->name, "s2");
    ck_assert_int_eq (s_state (&d), S_RUNNING);
    ck_assert_int_eq (s_step (&d, 0), RUNNING);
    ck_assert_int_eq (s_step (&d, 1), PENDING);
    ck_assert_uint_eq (status->steps[0]->attempts, 1);
    ck_assert_ptr_ne (d.rec->definition, def);
    ck_assert_uint_eq (d.rec->definition->steps[0]->retry->max_attempts, 3);
    ck_assert_ptr_null (def->steps[0]->retry); //  the given one untouched
    ck_assert (!keel_saga_finished (d.rec));

    //  Nothing due before the deadline.
    ck_assert (!s_advance (&d, T0 + 4999));
    s_events (&d, NULL);
    s_cmds (&d, 0);

    d.now = T0 + 10;
    s_ok (&d, 0, ACT, 1);
    s_events (&d, "saga.step_done", NULL);
    ck_assert_int_eq (d.events[0].step, 0);
    ck_assert_uint_eq (d.events[0].attempt, 1);
    s_cmds (&d, 1, 1, ACT, 1);
    ck_assert_int_eq (d.rec->wake_ms, T0 + 10 + 5000);
    ck_assert_int_eq (d.rec->status->updated_ms, T0 + 10);
    ck_assert_int_eq (s_step (&d, 0), DONE);
    ck_assert_uint_eq (d.rec->status->steps[0]->output.len, 7);
    ck_assert_mem_eq (d.rec->status->steps[0]->output.data, "out-0-1", 7);

    d.now = T0 + 20;
    s_ok (&d, 1, ACT, 1);
    s_cmds (&d, 1, 2, ACT, 1);
    d.now = T0 + 30;
    s_ok (&d, 2, ACT, 1);
    s_events (&d, "saga.step_done", "saga.completed", NULL);
    ck_assert_int_eq (d.events[1].step, -1);
    s_cmds (&d, 0);
    ck_assert_int_eq (s_state (&d), S_COMPLETED);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq (s_step (&d, i), DONE);
        ck_assert_uint_eq (d.rec->runtime[i]->inflight, 0);
    }
    ck_assert_int_eq (d.rec->wake_ms, 0);
    ck_assert (keel_saga_finished (d.rec));

    //  Over: nothing more happens.
    ck_assert (!s_advance (&d, T0 + 100000));
    ck_assert (!s_result (&d, 2, ACT, 1, NULL));
    const char *why = NULL;
    ck_assert_int_eq (keel_saga_cancel (d.rec, T0, &d.out, &why), -1);
    ck_assert_ptr_nonnull (why);
    why = NULL;
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, T0, &d.out, &why), -1);
    ck_assert_ptr_nonnull (why);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

//  Step k fails for good: the steps before it are compensated in reverse.
static void
s_fail_at (int k)
{
    Keel__SagaDefinition *def = s_def_new (3);
    s_non_retryable (s_policy (def, k, ACT), "BAD_REQUEST");
    drv_t d;
    s_drv_start (&d, def, T0);
    for (int i = 0; i < k; i++)
        s_ok (&d, i, ACT, 1);
    s_cmds (&d, 1, k, ACT, 1);
    d.now += 5;
    s_err (&d, k, ACT, 1, "BAD_REQUEST");
    ck_assert_int_eq (s_step (&d, k), FAILED);
    ck_assert_str_eq (d.rec->status->steps[k]->last_error,
                      "BAD_REQUEST: went wrong");
    ck_assert_str_eq (d.rec->status->last_error, "BAD_REQUEST: went wrong");
    ck_assert_str_eq (d.events[0].type, "saga.step_failed");
    ck_assert_int_eq (d.events[0].step, k);
    ck_assert_uint_eq (d.events[0].attempt, 1);
    ck_assert_str_eq (d.events[0].error, "BAD_REQUEST: went wrong");
    if (k == 0) {
        s_events (&d, "saga.step_failed", "saga.compensating",
                  "saga.compensated", NULL);
        s_cmds (&d, 0);
    } else {
        s_events (&d, "saga.step_failed", "saga.compensating", NULL);
        ck_assert_int_eq (d.events[1].step, k);
        ck_assert_str_eq (d.events[1].error, "BAD_REQUEST: went wrong");
        ck_assert_int_eq (s_state (&d), S_COMPENSATING);
        for (int i = k - 1; i >= 0; i--) {
            s_cmds (&d, 1, i, COMP, 1);
            ck_assert_int_eq (s_step (&d, i), COMPENSATING);
            ck_assert_uint_eq (d.rec->status->steps[i]->compensation_attempts,
                               1);
            //  The ones below wait their turn.
            for (int j = 0; j < i; j++)
                ck_assert_int_eq (s_step (&d, j), DONE);
            s_ok (&d, i, COMP, 1);
            ck_assert_int_eq (s_step (&d, i), COMPENSATED);
        }
        s_events (&d, "saga.step_done", "saga.compensated", NULL);
        s_cmds (&d, 0);
    }
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert (keel_saga_finished (d.rec));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq (s_step (&d, i), i < k    ? COMPENSATED
                                          : i == k ? FAILED
                                                   : SKIPPED);
    ck_assert_int_eq (d.rec->wake_ms, 0);
    ck_assert (!d.rec->status->cancel_requested);
    //  Cancelling a compensated saga: nothing to do.
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, NULL), 0);
    s_drv_end (&d);
    s_def_destroy (&def);
}

START_TEST (test_fail_first)
{
    s_fail_at (0);
}
END_TEST

START_TEST (test_fail_second)
{
    s_fail_at (1);
}
END_TEST

START_TEST (test_fail_third)
{
    s_fail_at (2);
}
END_TEST

START_TEST (test_no_compensation)
{
    //  s1 has nothing to undo: COMPENSATED at once, s0 goes on.
    Keel__SagaDefinition *def = s_def_new (4);
    s_str (&def->steps[1]->compensation, "");
    s_str (&def->steps[2]->compensation, "");
    s_non_retryable (s_policy (def, 3, ACT), "INVALID_ARGUMENT");
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    s_ok (&d, 1, ACT, 1);
    s_ok (&d, 2, ACT, 1);
    s_err (&d, 3, ACT, 1, "INVALID_ARGUMENT");
    s_cmds (&d, 1, 0, COMP, 1);
    ck_assert_int_eq (s_step (&d, 2), COMPENSATED);
    ck_assert_int_eq (s_step (&d, 1), COMPENSATED);
    ck_assert_uint_eq (d.rec->status->steps[1]->compensation_attempts, 0);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_timeout_retry)
{
    Keel__SagaDefinition *def = s_def_new (2);
    drv_t d;
    s_drv_start (&d, def, T0);
    ck_assert (!s_advance (&d, T0 + 4999));
    ck_assert (s_advance (&d, T0 + 5000));
    s_events (&d, "saga.step_failed", NULL);
    ck_assert_uint_eq (d.events[0].attempt, 1);
    ck_assert_str_eq (d.events[0].error, "TIMEOUT: no answer within 5000 ms");
    ck_assert_str_eq (d.rec->status->steps[0]->last_error,
                      "TIMEOUT: no answer within 5000 ms");
    s_cmds (&d, 0);
    ck_assert_int_eq (s_step (&d, 0), RUNNING);
    ck_assert_uint_eq (d.rec->runtime[0]->inflight, 0);
    //  The first wait: 100 ms +- 20%.
    int64_t due = d.rec->runtime[0]->due_ms;
    ck_assert_int_eq (d.rec->wake_ms, due);
    ck_assert_int_ge (due, T0 + 5000 + 80);
    ck_assert_int_le (due, T0 + 5000 + 120);
    ck_assert (!s_advance (&d, due - 1));
    s_cmds (&d, 0);
    ck_assert (s_advance (&d, due));
    s_events (&d, NULL);
    s_cmds (&d, 1, 0, ACT, 2);
    ck_assert_int_eq (d.cmds[0].deadline_ms, due + 5000);
    ck_assert_uint_eq (d.rec->status->steps[0]->attempts, 2);
    //  The timed-out attempt answers late: ignored.
    ck_assert (!s_result (&d, 0, ACT, 1, NULL));
    s_ok (&d, 0, ACT, 2);
    ck_assert_int_eq (s_step (&d, 0), DONE);
    s_cmds (&d, 1, 1, ACT, 1);
    s_ok (&d, 1, ACT, 1);
    ck_assert_int_eq (s_state (&d), S_COMPLETED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_retries_exhausted)
{
    Keel__SagaDefinition *def = s_def_new (2);
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    int64_t last_wait = 0;
    for (uint32_t attempt = 1; attempt <= 2; attempt++) {
        s_err (&d, 1, ACT, attempt, "UNAVAILABLE");
        s_events (&d, "saga.step_failed", NULL);
        s_cmds (&d, 0);
        ck_assert_int_eq (s_step (&d, 1), RUNNING);
        int64_t wait = d.rec->wake_ms - d.now;
        ck_assert_int_gt (wait, last_wait); //  100 +-20%, then 200 +-20%
        last_wait = wait;
        ck_assert (s_wake (&d));
        s_cmds (&d, 1, 1, ACT, attempt + 1);
    }
    s_err (&d, 1, ACT, 3, "UNAVAILABLE");
    s_events (&d, "saga.step_failed", "saga.compensating", NULL);
    s_cmds (&d, 1, 0, COMP, 1);
    ck_assert_int_eq (s_step (&d, 1), FAILED);
    ck_assert_uint_eq (d.rec->status->steps[1]->attempts, 3);
    ck_assert_str_eq (d.rec->status->last_error, "UNAVAILABLE: went wrong");
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_non_retryable)
{
    Keel__SagaDefinition *def = s_def_new (1);
    Keel__RetryPolicy *policy = s_policy (def, 0, ACT);
    s_non_retryable (policy, "BAD_REQUEST");
    s_non_retryable (policy, "TIMEOUT");
    drv_t d;
    s_drv_start (&d, def, T0);
    //  Another error is retried.
    s_err (&d, 0, ACT, 1, "UNAVAILABLE");
    ck_assert_int_eq (s_step (&d, 0), RUNNING);
    ck_assert (s_wake (&d));
    s_cmds (&d, 1, 0, ACT, 2);
    //  A listed one ends it at once, even with attempts left; the name
    //  comes from the code when not given.
    ck_assert (keel_saga_result (d.rec, 0, ACT, 2, KEEL_ERR_BAD_REQUEST, NULL,
                                 "bad", NULL, 0, d.now, &d.out));
    s_after (&d);
    ck_assert_int_eq (s_step (&d, 0), FAILED);
    ck_assert_str_eq (d.rec->status->steps[0]->last_error, "BAD_REQUEST: bad");
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);

    //  TIMEOUT listed: a timeout ends it at once too. The attempt got no
    //  answer, so it may have taken effect: it is compensated.
    s_drv_start (&d, def, T0);
    ck_assert (s_advance (&d, T0 + 5000));
    s_events (&d, "saga.step_failed", "saga.compensating", NULL);
    ck_assert_uint_eq (d.rec->status->steps[0]->attempts, 1);
    ck_assert_str_eq (d.rec->status->steps[0]->last_error,
                      "TIMEOUT: no answer within 5000 ms");
    s_cmds (&d, 1, 0, COMP, 1);
    ck_assert_int_eq (s_step (&d, 0), COMPENSATING);
    ck_assert_int_eq (s_state (&d), S_COMPENSATING);
    s_ok (&d, 0, COMP, 1);
    s_events (&d, "saga.step_done", "saga.compensated", NULL);
    ck_assert_int_eq (s_step (&d, 0), COMPENSATED);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_error_text)
{
    //  A long failure text is cut on a character boundary; no text: the
    //  name alone.
    Keel__SagaDefinition *def = s_def_new (1);
    drv_t d;
    s_drv_start (&d, def, T0);
    char text[701] = "";
    for (int i = 0; i < 350; i++)
        strcat (text, "\xc3\xa9"); //  U+00E9, two bytes
    ck_assert (keel_saga_result (d.rec, 0, ACT, 1, 7, "INTERNAL", text, NULL, 0,
                                 d.now, &d.out));
    s_after (&d);
    const char *error = d.rec->status->steps[0]->last_error;
    ck_assert_uint_eq (strlen (error), strlen ("INTERNAL: ") + 200);
    ck_assert_mem_eq (error, "INTERNAL: \xc3\xa9", 12);
    ck_assert_str_eq (error + strlen (error) - 2, "\xc3\xa9");
    ck_assert (s_wake (&d));
    //  A three-byte character across the cut is left out whole.
    memset (text, 'a', 199);
    strcpy (text + 199, "\xe2\x82\xac tail"); //  U+20AC at 199..201
    ck_assert (keel_saga_result (d.rec, 0, ACT, 2, 7, "INTERNAL", text, NULL, 0,
                                 d.now, &d.out));
    s_after (&d);
    error = d.rec->status->steps[0]->last_error;
    ck_assert_uint_eq (strlen (error), strlen ("INTERNAL: ") + 199);
    ck_assert (s_wake (&d));
    ck_assert (keel_saga_result (d.rec, 0, ACT, 3, 6, "UNAVAILABLE", "", NULL,
                                 0, d.now, &d.out));
    s_after (&d);
    ck_assert_str_eq (d.rec->status->steps[0]->last_error, "UNAVAILABLE");
    ck_assert_str_eq (d.rec->status->last_error, "UNAVAILABLE");
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Backoff

START_TEST (test_backoff)
{
    Keel__RetryPolicy policy = KEEL__RETRY_POLICY__INIT;
    policy.max_attempts = 10;
    policy.initial_interval_ms = 100;
    policy.backoff = 2;
    policy.max_interval_ms = 1000;
    policy.jitter = 1e-9; //  0 would mean the default
    int64_t want[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (uint32_t n = 1; n <= 7; n++)
        ck_assert_int_eq (keel_saga_backoff_ms (&policy, n, "a/s0/action"),
                          want[n - 1]);
    ck_assert_int_eq (keel_saga_backoff_ms (&policy, 1000, "x"), 1000);
    policy.backoff = 1;
    ck_assert_int_eq (keel_saga_backoff_ms (&policy, 5, "x"), 100);
    policy.backoff = 1.5;
    ck_assert_int_eq (keel_saga_backoff_ms (&policy, 3, "x"), 225);
    //  Initial over the cap: the cap.
    policy.initial_interval_ms = 5000;
    ck_assert_int_eq (keel_saga_backoff_ms (&policy, 1, "x"), 1000);

    //  Jitter: within +-20% of the base, the same for the same seed, spread
    //  over the range across seeds and attempts.
    policy.initial_interval_ms = 100;
    policy.backoff = 2;
    policy.jitter = 0.2;
    for (uint32_t n = 1; n <= 6; n++) {
        double base = want[n - 1];
        int64_t lo = INT64_MAX, hi = 0;
        double sum = 0;
        for (int i = 0; i < 2000; i++) {
            char seed[64];
            snprintf (seed, sizeof seed, "saga-%d/s%d/action", i, i % 5);
            int64_t wait = keel_saga_backoff_ms (&policy, n, seed);
            ck_assert_int_eq (wait, keel_saga_backoff_ms (&policy, n, seed));
            ck_assert_int_ge (wait, (int64_t)floor (base * 0.8));
            ck_assert_int_le (wait, (int64_t)ceil (base * 1.2));
            lo = wait < lo ? wait : lo;
            hi = wait > hi ? wait : hi;
            sum += (double)wait;
        }
        ck_assert_int_le (lo, (int64_t)(base * 0.83));
        ck_assert_int_ge (hi, (int64_t)(base * 1.17));
        ck_assert (fabs (sum / 2000 - base) < base * 0.02);
    }
    //  The attempt counts in the seed.
    int differ = 0;
    for (uint32_t n = 5; n < 50; n++)
        differ += keel_saga_backoff_ms (&policy, n, "same") !=
                  keel_saga_backoff_ms (&policy, n + 1, "same");
    ck_assert_int_gt (differ, 30);
    //  Full jitter stays within 0..2x.
    policy.jitter = 1;
    for (int i = 0; i < 500; i++) {
        char seed[32];
        snprintf (seed, sizeof seed, "%d", i);
        int64_t wait = keel_saga_backoff_ms (&policy, 2, seed);
        ck_assert_int_ge (wait, 0);
        ck_assert_int_le (wait, 400);
    }
}
END_TEST

START_TEST (test_backoff_in_saga)
{
    //  The waits a saga takes are keel_saga_backoff_ms of its seed text.
    Keel__SagaDefinition *def = s_def_new (1);
    Keel__RetryPolicy *policy = s_policy (def, 0, ACT);
    policy->max_attempts = 6;
    policy->initial_interval_ms = 100;
    policy->max_interval_ms = 500;
    drv_t d;
    s_drv_start (&d, def, T0);
    for (uint32_t attempt = 1; attempt <= 5; attempt++) {
        d.now += 7;
        s_err (&d, 0, ACT, attempt, "INTERNAL");
        int64_t want = keel_saga_backoff_ms (d.rec->definition->steps[0]->retry,
                                             attempt, "saga-1/s0/action");
        ck_assert_int_eq (d.rec->wake_ms - d.now, want);
        ck_assert (s_wake (&d));
        s_cmds (&d, 1, 0, ACT, attempt + 1);
    }
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Backward: STUCK and resolve

//  Steps 0..n-1 with step n-1 failing at once: compensation of n-2 starts.
static void
s_to_compensation (drv_t *d, Keel__SagaDefinition *def)
{
    int n = (int)def->n_steps;
    s_non_retryable (s_policy (def, n - 1, ACT), "CONFLICT");
    s_drv_start (d, def, T0);
    for (int i = 0; i < n - 1; i++)
        s_ok (d, i, ACT, 1);
    s_err (d, n - 1, ACT, 1, "CONFLICT");
    s_cmds (d, 1, n - 2, COMP, 1);
}

//  Fail the compensation of step i from attempt `first` until its budget
//  is spent (5 attempts): the saga is STUCK on it.
static void
s_comp_exhaust (drv_t *d, int i, uint32_t first)
{
    for (uint32_t attempt = first; attempt < first + 5; attempt++) {
        s_cmds (d, 1, i, COMP, attempt);
        d->now += 3;
        s_err (d, i, COMP, attempt, "UNAVAILABLE");
        if (attempt < first + 4) {
            s_events (d, "saga.step_failed", NULL);
            ck_assert_int_eq (s_state (d), S_COMPENSATING);
            ck_assert (s_wake (d));
        }
    }
    s_events (d, "saga.step_failed", "saga.stuck", NULL);
    ck_assert_int_eq (d->events[1].step, i);
    ck_assert_uint_eq (d->events[1].attempt, first + 4);
    ck_assert_str_eq (d->events[1].error, "UNAVAILABLE: went wrong");
    s_cmds (d, 0);
    ck_assert_int_eq (s_state (d), S_STUCK);
    ck_assert_int_eq (d->rec->stuck_step, i);
    ck_assert_int_eq (s_step (d, i), COMPENSATING);
    ck_assert_uint_eq (d->rec->status->steps[i]->compensation_attempts,
                       first + 4);
    ck_assert_str_eq (d->rec->status->last_error, "UNAVAILABLE: went wrong");
    ck_assert_int_eq (d->rec->wake_ms, 0);
}

START_TEST (test_compensation_stuck_retry)
{
    Keel__SagaDefinition *def = s_def_new (3);
    drv_t d;
    s_to_compensation (&d, def);
    s_comp_exhaust (&d, 1, 1);
    //  STUCK stays: time, cancel and stray results change nothing.
    ck_assert (!s_advance (&d, d.now + 1000000));
    const char *why = NULL;
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, &why), -1);
    ck_assert_ptr_nonnull (why);
    ck_assert (!s_result (&d, 1, COMP, 5, NULL));
    ck_assert (!keel_saga_finished (d.rec));

    //  Retry: a fresh budget of 5 (the count goes on).
    d.now += 10;
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, d.now, &d.out, &why), 0);
    s_after (&d);
    s_events (&d, "saga.resolved", NULL);
    ck_assert_int_eq (d.events[0].step, 1);
    s_cmds (&d, 1, 1, COMP, 6);
    ck_assert_int_eq (s_state (&d), S_COMPENSATING);
    ck_assert_int_eq (d.rec->stuck_step, -1);
    //  The waits start small again.
    s_err (&d, 1, COMP, 6, "UNAVAILABLE");
    ck_assert_int_le (d.rec->wake_ms - d.now, 120);
    ck_assert (s_wake (&d));
    s_cmds (&d, 1, 1, COMP, 7);
    s_ok (&d, 1, COMP, 7);
    ck_assert_int_eq (s_step (&d, 1), COMPENSATED);
    s_cmds (&d, 1, 0, COMP, 1);
    s_ok (&d, 0, COMP, 1);
    s_events (&d, "saga.step_done", "saga.compensated", NULL);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, d.now, &d.out, &why),
                      -1);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_compensation_stuck_again)
{
    //  A retried compensation that fails its whole new budget: STUCK again.
    Keel__SagaDefinition *def = s_def_new (2);
    drv_t d;
    s_to_compensation (&d, def);
    s_comp_exhaust (&d, 0, 1);
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_comp_exhaust (&d, 0, 6);
    ck_assert_int_eq (keel_saga_resolve (d.rec, true, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_events (&d, "saga.resolved", "saga.compensated", NULL);
    ck_assert_int_eq (s_step (&d, 0), SKIPPED);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_compensation_timeout_stuck)
{
    //  Compensation timeouts count against its budget too.
    Keel__SagaDefinition *def = s_def_new (2);
    s_policy (def, 0, COMP)->max_attempts = 2;
    drv_t d;
    s_to_compensation (&d, def);
    ck_assert (s_wake (&d)); //  deadline
    s_events (&d, "saga.step_failed", NULL);
    ck_assert (s_wake (&d)); //  retry
    s_cmds (&d, 1, 0, COMP, 2);
    ck_assert (s_wake (&d));
    s_events (&d, "saga.step_failed", "saga.stuck", NULL);
    ck_assert_int_eq (s_state (&d), S_STUCK);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_compensation_resolve_skip)
{
    Keel__SagaDefinition *def = s_def_new (4);
    drv_t d;
    s_to_compensation (&d, def);
    s_ok (&d, 2, COMP, 1);
    s_cmds (&d, 1, 1, COMP, 1);
    d.now += 1;
    s_comp_exhaust (&d, 1, 1);
    const char *why = NULL;
    ck_assert_int_eq (keel_saga_resolve (d.rec, true, d.now, &d.out, &why), 0);
    s_after (&d);
    s_events (&d, "saga.resolved", NULL);
    ck_assert_int_eq (s_step (&d, 1), SKIPPED);
    ck_assert_uint_eq (d.rec->runtime[1]->inflight, 0);
    s_cmds (&d, 1, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATING);
    ck_assert_int_eq (keel_saga_resolve (d.rec, true, d.now, &d.out, &why), -1);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert_int_eq (s_step (&d, 0), COMPENSATED);
    ck_assert_int_eq (s_step (&d, 1), SKIPPED);
    ck_assert_int_eq (s_step (&d, 2), COMPENSATED);
    ck_assert_int_eq (s_step (&d, 3), FAILED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Backward: a step whose last attempt timed out may have taken effect

//  Three steps, s1 with 2 attempts: s0 succeeds; s1's attempt 1 fails with
//  `first` (NULL: times out), its attempt 2 with `last` and `text` (NULL:
//  times out), which fails it for good and turns the saga back.
static void
s_second_fails (drv_t *d, const Keel__SagaDefinition *def, const char *first,
                const char *last, const char *text)
{
    s_drv_start (d, def, T0);
    s_ok (d, 0, ACT, 1);
    s_cmds (d, 1, 1, ACT, 1);
    d->now += 5;
    if (first)
        s_err (d, 1, ACT, 1, first);
    else
        ck_assert (s_wake (d));
    s_events (d, "saga.step_failed", NULL);
    ck_assert_int_eq (s_step (d, 1), RUNNING);
    ck_assert (s_wake (d));
    s_cmds (d, 1, 1, ACT, 2);
    d->now += 5;
    if (last) {
        ck_assert (keel_saga_result (d->rec, 1, ACT, 2, s_code (last), last,
                                     text, NULL, 0, d->now, &d->out));
        s_after (d);
    } else
        ck_assert (s_wake (d));
    s_events (d, "saga.step_failed", "saga.compensating", NULL);
    ck_assert_int_eq (d->events[1].step, 1);
    ck_assert_int_eq (s_state (d), S_COMPENSATING);
    ck_assert_uint_eq (d->rec->status->steps[1]->attempts, 2);
    ck_assert_int_eq (s_step (d, 2), PENDING);
}

//  After s_second_fails: s1 is compensated, then s0.
static void
s_both_compensated (drv_t *d)
{
    s_cmds (d, 1, 1, COMP, 1);
    ck_assert_int_eq (s_step (d, 1), COMPENSATING);
    ck_assert_int_eq (s_step (d, 0), DONE);
    d->now += 5;
    s_ok (d, 1, COMP, 1);
    s_events (d, "saga.step_done", NULL);
    ck_assert_int_eq (s_step (d, 1), COMPENSATED);
    s_cmds (d, 1, 0, COMP, 1);
    ck_assert_int_eq (s_step (d, 0), COMPENSATING);
    s_ok (d, 0, COMP, 1);
    s_events (d, "saga.step_done", "saga.compensated", NULL);
    ck_assert_int_eq (s_state (d), S_COMPENSATED);
    ck_assert_int_eq (s_step (d, 0), COMPENSATED);
    ck_assert_int_eq (s_step (d, 1), COMPENSATED);
    ck_assert_int_eq (s_step (d, 2), SKIPPED);
    ck_assert_uint_eq (d->rec->status->steps[1]->compensation_attempts, 1);
    ck_assert_int_eq (d->rec->wake_ms, 0);
}

//  After s_second_fails: s1 is left FAILED, only s0 is compensated.
static void
s_first_compensated (drv_t *d)
{
    s_cmds (d, 1, 0, COMP, 1);
    ck_assert_int_eq (s_step (d, 1), FAILED);
    s_ok (d, 0, COMP, 1);
    s_events (d, "saga.step_done", "saga.compensated", NULL);
    ck_assert_int_eq (s_state (d), S_COMPENSATED);
    ck_assert_int_eq (s_step (d, 0), COMPENSATED);
    ck_assert_int_eq (s_step (d, 1), FAILED);
    ck_assert_int_eq (s_step (d, 2), SKIPPED);
    ck_assert_uint_eq (d->rec->status->steps[1]->compensation_attempts, 0);
    ck_assert_int_eq (d->rec->wake_ms, 0);
}

START_TEST (test_timeout_compensated)
{
    Keel__SagaDefinition *def = s_def_new (3);
    s_policy (def, 1, ACT)->max_attempts = 2;
    drv_t d;

    //  s1's last attempt gets no answer: it may have taken effect, so s1
    //  is compensated, then s0.
    s_second_fails (&d, def, "UNAVAILABLE", NULL, NULL);
    ck_assert_str_eq (d.rec->status->steps[1]->last_error,
                      "TIMEOUT: no answer within 5000 ms");
    ck_assert_str_eq (d.rec->status->last_error,
                      "TIMEOUT: no answer within 5000 ms");
    s_both_compensated (&d);
    s_drv_end (&d);

    //  The same with an error answered: s1 did not take effect, only s0
    //  is compensated (an earlier attempt's timeout does not count).
    s_second_fails (&d, def, NULL, "INTERNAL", "went wrong");
    ck_assert_str_eq (d.rec->status->steps[1]->last_error,
                      "INTERNAL: went wrong");
    s_first_compensated (&d);
    s_drv_end (&d);

    //  The participant itself answering TIMEOUT counts as a timeout, with
    //  or without a text; a longer name starting with it does not.
    s_second_fails (&d, def, "UNAVAILABLE", "TIMEOUT", "");
    ck_assert_str_eq (d.rec->status->steps[1]->last_error, "TIMEOUT");
    s_both_compensated (&d);
    s_drv_end (&d);
    s_second_fails (&d, def, "UNAVAILABLE", "TIMEOUT", "upstream");
    ck_assert_str_eq (d.rec->status->steps[1]->last_error, "TIMEOUT: upstream");
    s_both_compensated (&d);
    s_drv_end (&d);
    s_second_fails (&d, def, NULL, "TIMEOUTS", "x");
    ck_assert_str_eq (d.rec->status->steps[1]->last_error, "TIMEOUTS: x");
    s_first_compensated (&d);
    s_drv_end (&d);

    //  Its compensation failing for good makes the saga STUCK on it; skip
    //  goes on to s0.
    s_second_fails (&d, def, NULL, NULL, NULL);
    s_comp_exhaust (&d, 1, 1);
    ck_assert_int_eq (s_step (&d, 0), DONE);
    ck_assert_int_eq (keel_saga_resolve (d.rec, true, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_events (&d, "saga.resolved", NULL);
    ck_assert_int_eq (s_step (&d, 1), SKIPPED);
    s_cmds (&d, 1, 0, COMP, 1);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert_int_eq (s_step (&d, 1), SKIPPED);
    s_drv_end (&d);

    //  With no compensation method there is nothing to send: s1 is marked
    //  COMPENSATED at once, like a DONE step with nothing to undo.
    s_str (&def->steps[1]->compensation, "");
    s_second_fails (&d, def, "UNAVAILABLE", NULL, NULL);
    s_cmds (&d, 1, 0, COMP, 1);
    ck_assert_int_eq (s_step (&d, 1), COMPENSATED);
    ck_assert_uint_eq (d.rec->status->steps[1]->compensation_attempts, 0);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Pivot

START_TEST (test_pivot)
{
    //  s1 is the pivot: after it, failures make the saga STUCK.
    Keel__SagaDefinition *def = s_def_new (4);
    def->steps[1]->pivot = true;
    s_non_retryable (s_policy (def, 3, ACT), "BAD_REQUEST");
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    //  Before the pivot is done a cancel would be taken; after, refused
    //  (and the refusal's output is empty).
    s_ok (&d, 1, ACT, 1);
    s_cmds (&d, 1, 2, ACT, 1);
    const char *why = NULL;
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, &why), -1);
    ck_assert_ptr_nonnull (why);
    ck_assert_int_eq (d.out.n_events, 0);
    ck_assert (!d.rec->status->cancel_requested);

    //  s2 spends its budget: STUCK on it, still RUNNING.
    for (uint32_t attempt = 1; attempt <= 3; attempt++) {
        if (attempt > 1)
            s_cmds (&d, 1, 2, ACT, attempt);
        s_err (&d, 2, ACT, attempt, "UNAVAILABLE");
        if (attempt < 3)
            ck_assert (s_wake (&d));
    }
    s_events (&d, "saga.step_failed", "saga.stuck", NULL);
    ck_assert_int_eq (s_state (&d), S_STUCK);
    ck_assert_int_eq (d.rec->stuck_step, 2);
    ck_assert_int_eq (s_step (&d, 2), RUNNING);
    ck_assert_int_eq (s_step (&d, 1), DONE);
    ck_assert_int_eq (s_step (&d, 0), DONE);
    ck_assert_int_eq (d.rec->wake_ms, 0);
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, &why), -1);

    //  Retry: three more attempts (4, 5, 6), then STUCK again.
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, d.now, &d.out, &why), 0);
    s_after (&d);
    s_events (&d, "saga.resolved", NULL);
    for (uint32_t attempt = 4; attempt <= 6; attempt++) {
        s_cmds (&d, 1, 2, ACT, attempt);
        ck_assert_int_eq (s_state (&d), S_RUNNING);
        s_err (&d, 2, ACT, attempt, "UNAVAILABLE");
        if (attempt < 6)
            ck_assert (s_wake (&d));
    }
    ck_assert_int_eq (s_state (&d), S_STUCK);
    ck_assert_uint_eq (d.rec->status->steps[2]->attempts, 6);

    //  Skip: s2 SKIPPED, s3 runs. A non-retryable failure: STUCK at once.
    ck_assert_int_eq (keel_saga_resolve (d.rec, true, d.now, &d.out, &why), 0);
    s_after (&d);
    s_events (&d, "saga.resolved", NULL);
    ck_assert_int_eq (s_step (&d, 2), SKIPPED);
    s_cmds (&d, 1, 3, ACT, 1);
    s_err (&d, 3, ACT, 1, "BAD_REQUEST");
    s_events (&d, "saga.step_failed", "saga.stuck", NULL);
    ck_assert_int_eq (d.rec->stuck_step, 3);
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, d.now, &d.out, &why), 0);
    s_after (&d);
    s_cmds (&d, 1, 3, ACT, 2);
    s_ok (&d, 3, ACT, 2);
    s_events (&d, "saga.step_done", "saga.completed", NULL);
    ck_assert_int_eq (s_state (&d), S_COMPLETED);
    ck_assert_int_eq (s_step (&d, 2), SKIPPED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_pivot_skip_completes)
{
    //  Skipping the last step after the pivot completes the saga.
    Keel__SagaDefinition *def = s_def_new (2);
    def->steps[0]->pivot = true;
    s_policy (def, 1, ACT)->max_attempts = 1;
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    ck_assert (s_wake (&d)); //  s1 times out, its only attempt
    s_events (&d, "saga.step_failed", "saga.stuck", NULL);
    ck_assert_int_eq (keel_saga_resolve (d.rec, true, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_events (&d, "saga.resolved", "saga.completed", NULL);
    ck_assert_int_eq (s_state (&d), S_COMPLETED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_pivot_fails_itself)
{
    //  The pivot failing for good is an ordinary failure: compensation.
    Keel__SagaDefinition *def = s_def_new (3);
    def->steps[1]->pivot = true;
    s_policy (def, 1, ACT)->max_attempts = 1;
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    s_err (&d, 1, ACT, 1, "INTERNAL");
    s_cmds (&d, 1, 0, COMP, 1);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_pivot_group)
{
    //  After the pivot, a parallel group with two failures: STUCK on the
    //  first, the second waits its turn; the siblings go on meanwhile.
    Keel__SagaDefinition *def = s_def_new (5);
    def->steps[0]->pivot = true;
    for (int i = 1; i <= 3; i++) {
        s_group (def, i, "g");
        s_policy (def, i, ACT)->max_attempts = 1;
    }
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    s_cmds (&d, 3, 1, ACT, 1, 2, ACT, 1, 3, ACT, 1);
    s_err (&d, 2, ACT, 1, "INTERNAL");
    ck_assert_int_eq (s_state (&d), S_STUCK);
    ck_assert_int_eq (d.rec->stuck_step, 2);
    s_err (&d, 1, ACT, 1, "INTERNAL");
    s_events (&d, "saga.step_failed", NULL);
    ck_assert_int_eq (d.rec->stuck_step, 2);
    s_ok (&d, 3, ACT, 1);
    ck_assert_int_eq (s_step (&d, 3), DONE);
    ck_assert_int_eq (s_state (&d), S_STUCK);
    //  Resolving s2 shows s1.
    ck_assert_int_eq (keel_saga_resolve (d.rec, true, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_events (&d, "saga.resolved", "saga.stuck", NULL);
    ck_assert_int_eq (d.rec->stuck_step, 1);
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_cmds (&d, 1, 1, ACT, 2);
    s_ok (&d, 1, ACT, 2);
    s_cmds (&d, 1, 4, ACT, 1);
    s_ok (&d, 4, ACT, 1);
    ck_assert_int_eq (s_state (&d), S_COMPLETED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Cancel

START_TEST (test_cancel)
{
    Keel__SagaDefinition *def = s_def_new (4);
    def->steps[3]->pivot = true;
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    s_cmds (&d, 1, 1, ACT, 1);
    //  Cancel with s1 in flight: COMPENSATING, s1 awaited.
    d.now += 50;
    const char *why = NULL;
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, &why), 0);
    s_after (&d);
    s_events (&d, "saga.compensating", NULL);
    ck_assert_int_eq (d.events[0].step, -1);
    s_cmds (&d, 0);
    ck_assert_int_eq (s_state (&d), S_COMPENSATING);
    ck_assert (d.rec->status->cancel_requested);
    ck_assert_int_eq (s_step (&d, 0), DONE);
    ck_assert_int_eq (d.rec->status->updated_ms, d.now);
    //  Again: nothing to do.
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, &why), 0);
    ck_assert_uint_eq (d.out.n_events, 0);
    //  s1 succeeds late: it is compensated, then s0.
    s_ok (&d, 1, ACT, 1);
    s_events (&d, "saga.step_done", NULL);
    s_cmds (&d, 1, 1, COMP, 1);
    ck_assert_uint_eq (d.rec->status->steps[1]->output.len, 7);
    s_ok (&d, 1, COMP, 1);
    s_cmds (&d, 1, 0, COMP, 1);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert_int_eq (s_step (&d, 2), SKIPPED);
    ck_assert_int_eq (s_step (&d, 3), SKIPPED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_cancel_inflight_fails)
{
    //  Cancel with the action in flight; it then times out: FAILED, never
    //  retried, but it may have taken effect: compensated, then s0.
    Keel__SagaDefinition *def = s_def_new (2);
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, NULL), 0);
    s_after (&d);
    ck_assert (s_wake (&d));
    s_events (&d, "saga.step_failed", NULL);
    ck_assert_uint_eq (d.rec->status->steps[1]->attempts, 1);
    s_cmds (&d, 1, 1, COMP, 1);
    ck_assert_int_eq (s_step (&d, 1), COMPENSATING);
    ck_assert_int_eq (s_step (&d, 0), DONE);
    s_ok (&d, 1, COMP, 1);
    ck_assert_int_eq (s_step (&d, 1), COMPENSATED);
    s_cmds (&d, 1, 0, COMP, 1);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);

    //  The same, but it answers an error: FAILED, never compensated.
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_err (&d, 1, ACT, 1, "UNAVAILABLE");
    s_events (&d, "saga.step_failed", NULL);
    ck_assert_int_eq (s_step (&d, 1), FAILED);
    s_cmds (&d, 1, 0, COMP, 1);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert_int_eq (s_step (&d, 1), FAILED);
    ck_assert_uint_eq (d.rec->status->steps[1]->compensation_attempts, 0);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_cancel_waiting_retry)
{
    //  Cancel while the step waits to retry: it never runs again.
    Keel__SagaDefinition *def = s_def_new (2);
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    s_err (&d, 1, ACT, 1, "UNAVAILABLE");
    ck_assert_int_gt (d.rec->runtime[1]->due_ms, 0);
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_events (&d, "saga.compensating", NULL);
    s_cmds (&d, 1, 0, COMP, 1);
    ck_assert_int_eq (s_step (&d, 1), FAILED);
    ck_assert_int_eq (d.rec->wake_ms, d.cmds[0].deadline_ms);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);
    s_def_destroy (&def);

    //  Cancel before anything is done: COMPENSATED once s0 answers.
    def = s_def_new (2);
    s_drv_start (&d, def, T0);
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_err (&d, 0, ACT, 1, "UNAVAILABLE");
    s_events (&d, "saga.step_failed", "saga.compensated", NULL);
    ck_assert_int_eq (s_step (&d, 0), FAILED);
    ck_assert_int_eq (s_step (&d, 1), SKIPPED);
    s_drv_end (&d);

    //  Cancel while the step waits to retry after a timeout: its last
    //  attempt may have taken effect, so it is compensated before s0.
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    ck_assert (s_wake (&d));
    s_events (&d, "saga.step_failed", NULL);
    ck_assert_int_eq (s_step (&d, 1), RUNNING);
    ck_assert_int_gt (d.rec->runtime[1]->due_ms, 0);
    ck_assert_int_eq (keel_saga_cancel (d.rec, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_events (&d, "saga.compensating", NULL);
    s_cmds (&d, 1, 1, COMP, 1);
    ck_assert_uint_eq (d.rec->status->steps[1]->attempts, 1);
    s_ok (&d, 1, COMP, 1);
    s_cmds (&d, 1, 0, COMP, 1);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert_int_eq (s_step (&d, 1), COMPENSATED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Parallel groups

//  s0, then s1 s2 s3 in group "g", then s4.
static Keel__SagaDefinition *
s_group_def (void)
{
    Keel__SagaDefinition *def = s_def_new (5);
    for (int i = 1; i <= 3; i++) {
        s_group (def, i, "g");
        s_non_retryable (s_policy (def, i, ACT), "BAD_REQUEST");
    }
    return def;
}

START_TEST (test_group_success)
{
    Keel__SagaDefinition *def = s_group_def ();
    def->steps[2]->timeout_ms = 700;
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    s_cmds (&d, 3, 1, ACT, 1, 2, ACT, 1, 3, ACT, 1);
    ck_assert_int_eq (d.rec->wake_ms, T0 + 700);
    s_ok (&d, 3, ACT, 1);
    s_cmds (&d, 0);
    s_ok (&d, 1, ACT, 1);
    s_cmds (&d, 0);
    ck_assert_int_eq (s_step (&d, 4), PENDING);
    ck_assert_int_eq (d.rec->wake_ms, T0 + 700);
    s_ok (&d, 2, ACT, 1);
    s_cmds (&d, 1, 4, ACT, 1);
    s_ok (&d, 4, ACT, 1);
    ck_assert_int_eq (s_state (&d), S_COMPLETED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_group_retry_inside)
{
    //  A member retrying holds the group; the others wait.
    Keel__SagaDefinition *def = s_group_def ();
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    s_ok (&d, 1, ACT, 1);
    s_ok (&d, 3, ACT, 1);
    s_err (&d, 2, ACT, 1, "UNAVAILABLE");
    s_cmds (&d, 0);
    ck_assert (s_wake (&d));
    s_cmds (&d, 1, 2, ACT, 2);
    s_ok (&d, 2, ACT, 2);
    s_cmds (&d, 1, 4, ACT, 1);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_group_fail_sibling_succeeds)
{
    Keel__SagaDefinition *def = s_group_def ();
    s_str (&def->steps[1]->compensation, "");
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    s_ok (&d, 1, ACT, 1);
    //  s2 fails for good with s3 in flight: wait for s3.
    s_err (&d, 2, ACT, 1, "BAD_REQUEST");
    s_events (&d, "saga.step_failed", "saga.compensating", NULL);
    s_cmds (&d, 0);
    ck_assert_int_eq (s_state (&d), S_COMPENSATING);
    ck_assert_int_eq (s_step (&d, 1), DONE);
    ck_assert_int_eq (s_step (&d, 3), RUNNING);
    ck_assert_int_eq (d.rec->wake_ms, d.rec->runtime[3]->deadline_ms);
    //  s3 succeeds: compensated first (highest), then s1 (nothing), s0.
    s_ok (&d, 3, ACT, 1);
    s_cmds (&d, 1, 3, COMP, 1);
    s_ok (&d, 3, COMP, 1);
    s_cmds (&d, 1, 0, COMP, 1);
    ck_assert_int_eq (s_step (&d, 1), COMPENSATED);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert_int_eq (s_step (&d, 2), FAILED);
    ck_assert_int_eq (s_step (&d, 3), COMPENSATED);
    ck_assert_int_eq (s_step (&d, 4), SKIPPED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_group_fail_sibling_fails)
{
    Keel__SagaDefinition *def = s_group_def ();
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    s_err (&d, 1, ACT, 1, "BAD_REQUEST");
    s_cmds (&d, 0);
    //  s2 fails with a retryable error: no retry now, FAILED.
    s_err (&d, 2, ACT, 1, "UNAVAILABLE");
    s_events (&d, "saga.step_failed", NULL);
    s_cmds (&d, 0);
    ck_assert_int_eq (s_step (&d, 2), FAILED);
    //  s3 times out: it may have taken effect, so it is compensated (the
    //  highest), then s0; s1 and s2 answered errors: left FAILED.
    ck_assert (s_wake (&d));
    s_events (&d, "saga.step_failed", NULL);
    s_cmds (&d, 1, 3, COMP, 1);
    ck_assert_int_eq (s_step (&d, 3), COMPENSATING);
    s_ok (&d, 3, COMP, 1);
    s_cmds (&d, 1, 0, COMP, 1);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert_int_eq (s_step (&d, 0), COMPENSATED);
    ck_assert_int_eq (s_step (&d, 1), FAILED);
    ck_assert_int_eq (s_step (&d, 2), FAILED);
    ck_assert_int_eq (s_step (&d, 3), COMPENSATED);
    ck_assert_int_eq (s_step (&d, 4), SKIPPED);
    for (int i = 1; i <= 2; i++)
        ck_assert_uint_eq (d.rec->status->steps[i]->compensation_attempts, 0);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_group_separate_runs)
{
    //  The same group name apart: two stages. Adjacent other names: two.
    Keel__SagaDefinition *def = s_def_new (5);
    s_group (def, 0, "a");
    s_group (def, 1, "a");
    s_group (def, 2, "b");
    s_group (def, 3, "a");
    s_group (def, 4, "a");
    drv_t d;
    s_drv_start (&d, def, T0);
    s_cmds (&d, 2, 0, ACT, 1, 1, ACT, 1);
    s_ok (&d, 0, ACT, 1);
    s_ok (&d, 1, ACT, 1);
    s_cmds (&d, 1, 2, ACT, 1);
    s_ok (&d, 2, ACT, 1);
    s_cmds (&d, 2, 3, ACT, 1, 4, ACT, 1);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_group_largest)
{
    //  64 steps in one group time out at once, one attempt each: the
    //  output arrays' sizes suffice.
    Keel__SagaDefinition *def = s_def_new (KEEL_SAGA_MAX_STEPS);
    for (int i = 0; i < KEEL_SAGA_MAX_STEPS; i++) {
        s_group (def, i, "all");
        s_policy (def, i, ACT)->max_attempts = 1;
    }
    drv_t d;
    s_drv_start (&d, def, T0);
    ck_assert_uint_eq (d.out.n_cmds, KEEL_SAGA_MAX_STEPS);
    ck_assert (s_advance (&d, T0 + 5000));
    ck_assert_uint_eq (d.out.n_events, KEEL_SAGA_MAX_STEPS + 1);
    ck_assert_str_eq (d.events[1].type, "saga.compensating");
    ck_assert_str_eq (d.events[KEEL_SAGA_MAX_STEPS].type, "saga.step_failed");
    //  Each may have taken effect: all 64 compensated, from the highest.
    for (int i = KEEL_SAGA_MAX_STEPS - 1; i >= 0; i--) {
        s_cmds (&d, 1, i, COMP, 1);
        s_ok (&d, i, COMP, 1);
    }
    s_events (&d, "saga.step_done", "saga.compensated", NULL);
    for (int i = 0; i < KEEL_SAGA_MAX_STEPS; i++)
        ck_assert_int_eq (s_step (&d, i), COMPENSATED);
    s_drv_end (&d);

    //  With nothing to undo the saga ends in the same call: 64 failures
    //  and two saga events.
    for (int i = 0; i < KEEL_SAGA_MAX_STEPS; i++)
        s_str (&def->steps[i]->compensation, "");
    s_drv_start (&d, def, T0);
    ck_assert (s_advance (&d, T0 + 5000));
    ck_assert_uint_eq (d.out.n_events, KEEL_SAGA_MAX_STEPS + 2);
    ck_assert_str_eq (d.events[KEEL_SAGA_MAX_STEPS + 1].type,
                      "saga.compensated");
    s_cmds (&d, 0);
    s_drv_end (&d);
    for (int i = 0; i < KEEL_SAGA_MAX_STEPS; i++)
        s_str (&def->steps[i]->compensation, "undo");

    //  ... and all succeed but one, which fails late: 63 compensations.
    for (int i = 0; i < KEEL_SAGA_MAX_STEPS; i++)
        s_policy (def, i, ACT)->max_attempts = 3;
    s_drv_start (&d, def, T0);
    for (int i = 1; i < KEEL_SAGA_MAX_STEPS; i++)
        s_ok (&d, i, ACT, 1);
    s_non_retryable (s_policy (def, 0, ACT), "BAD_REQUEST"); //  not the copy
    s_err (&d, 0, ACT, 1, "UNAVAILABLE");
    ck_assert_int_eq (s_state (&d), S_RUNNING);
    ck_assert (s_wake (&d));
    s_err (&d, 0, ACT, 2, "BAD_REQUEST"); //  retryable in the saga's copy
    ck_assert (s_wake (&d));
    s_err (&d, 0, ACT, 3, "BAD_REQUEST");
    for (int i = KEEL_SAGA_MAX_STEPS - 1; i >= 1; i--) {
        s_cmds (&d, 1, i, COMP, 1);
        s_ok (&d, i, COMP, 1);
    }
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Late, duplicate and stray results

static uint8_t *
s_pack (const Keel__SagaRecord *rec, size_t *size_p)
{
    *size_p = keel__saga_record__get_packed_size (rec);
    uint8_t *buffer = malloc (*size_p + 1);
    keel__saga_record__pack (rec, buffer);
    return buffer;
}

//  The result is ignored: false, no output, record unchanged.
static void
s_ignored (drv_t *d, int step, bool compensate, uint32_t attempt)
{
    size_t size1, size2;
    uint8_t *before = s_pack (d->rec, &size1);
    ck_assert (!keel_saga_result (d->rec, step, compensate, attempt, 0, NULL,
                                  NULL, "x", 1, d->now + 1, &d->out));
    ck_assert (!keel_saga_result (d->rec, step, compensate, attempt, 6,
                                  "UNAVAILABLE", "x", NULL, 0, d->now + 1,
                                  &d->out));
    ck_assert_uint_eq (d->out.n_cmds, 0);
    ck_assert_uint_eq (d->out.n_events, 0);
    uint8_t *after = s_pack (d->rec, &size2);
    ck_assert_uint_eq (size1, size2);
    ck_assert_mem_eq (before, after, size1);
    free (before);
    free (after);
}

START_TEST (test_ignored_results)
{
    Keel__SagaDefinition *def = s_def_new (3);
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ignored (&d, 0, ACT, 2);  //  not yet sent
    s_ignored (&d, 0, ACT, 0);  //  no attempt 0
    s_ignored (&d, 0, COMP, 1); //  wrong phase
    s_ignored (&d, 1, ACT, 1);  //  step not started
    s_ignored (&d, -1, ACT, 1);
    s_ignored (&d, 3, ACT, 1);
    s_ignored (&d, 1000, ACT, 1);
    s_ok (&d, 0, ACT, 1);
    s_ignored (&d, 0, ACT, 1); //  duplicate
    s_err (&d, 1, ACT, 1, "UNAVAILABLE");
    s_ignored (&d, 1, ACT, 1); //  duplicate failure while waiting to retry
    s_ignored (&d, 1, ACT, 2); //  the retry is not sent yet
    ck_assert (s_wake (&d));
    s_cmds (&d, 1, 1, ACT, 2);
    s_ignored (&d, 1, ACT, 1); //  late
    s_ignored (&d, 1, ACT, 3);
    s_ok (&d, 1, ACT, 2);
    s_ignored (&d, 1, ACT, 2);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_output_replaced)
{
    //  The output of a reloaded record's step is kept.
    Keel__SagaDefinition *def = s_def_new (1);
    drv_t d;
    s_drv_start (&d, def, T0);
    d.reload = true;
    ck_assert (keel_saga_result (d.rec, 0, ACT, 1, 0, NULL, NULL, "first", 5,
                                 d.now, &d.out));
    s_after (&d);
    ck_assert_uint_eq (d.rec->status->steps[0]->output.len, 5);
    ck_assert_int_eq (s_state (&d), S_COMPLETED);
    s_drv_end (&d);

    //  An empty output is {0, NULL}.
    s_drv_start (&d, def, T0);
    ck_assert (keel_saga_result (d.rec, 0, ACT, 1, 0, NULL, NULL, NULL, 0,
                                 d.now, &d.out));
    ck_assert_uint_eq (d.rec->status->steps[0]->output.len, 0);
    ck_assert_ptr_null (d.rec->status->steps[0]->output.data);
    s_after (&d);
    s_drv_end (&d);

    //  No input, no key.
    Keel__SagaRecord *rec =
        keel_saga_record_new (def, "bare", NULL, 0, NULL, T0, NULL);
    ck_assert_ptr_nonnull (rec);
    ck_assert_str_eq (rec->status->idempotency_key, "");
    ck_assert_uint_eq (rec->status->input.len, 0);
    ck_assert_uint_eq (rec->runtime[0]->inflight, 1); //  sent, unheard
    Keel__SagaRecord *copy = s_roundtrip (rec);
    keel_saga_record_destroy (&copy);
    keel_saga_record_destroy (&rec);
    keel_saga_record_destroy (&rec); //  NULL is fine
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Resume

//  One scripted saga: a group, retries, a timeout, compensation STUCK,
//  resolve. Returns the final packed record; reload: unpack after each call.
static uint8_t *
s_script (bool reload, size_t *size_p)
{
    Keel__SagaDefinition *def = s_def_new (4);
    s_group (def, 1, "g");
    s_group (def, 2, "g");
    s_policy (def, 2, ACT)->max_attempts = 2;
    def->steps[2]->timeout_ms = 9000;
    s_policy (def, 1, COMP)->max_attempts = 1;
    drv_t d;
    s_drv_start (&d, def, T0);
    d.reload = reload;
    s_ok (&d, 0, ACT, 1);
    d.now += 11;
    s_err (&d, 2, ACT, 1, "UNAVAILABLE");
    ck_assert (s_wake (&d));
    s_cmds (&d, 1, 2, ACT, 2);
    ck_assert (s_advance (&d, d.rec->runtime[1]->deadline_ms));
    ck_assert (s_wake (&d));
    s_cmds (&d, 1, 1, ACT, 2);
    s_ok (&d, 1, ACT, 2);
    ck_assert (s_wake (&d)); //  s2 attempt 2 times out: its last
    //  s2 may have taken effect: compensated first (the highest).
    s_cmds (&d, 1, 2, COMP, 1);
    s_ok (&d, 2, COMP, 1);
    s_cmds (&d, 1, 1, COMP, 1);
    s_err (&d, 1, COMP, 1, "INTERNAL");
    ck_assert_int_eq (s_state (&d), S_STUCK);
    d.now += 1000;
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, d.now, &d.out, NULL), 0);
    s_after (&d);
    s_ok (&d, 1, COMP, 2);
    s_ok (&d, 0, COMP, 1);
    ck_assert_int_eq (s_state (&d), S_COMPENSATED);
    ck_assert_int_eq (s_step (&d, 0), COMPENSATED);
    ck_assert_int_eq (s_step (&d, 1), COMPENSATED);
    ck_assert_int_eq (s_step (&d, 2), COMPENSATED);
    ck_assert_int_eq (s_step (&d, 3), SKIPPED);
    uint8_t *packed = s_pack (d.rec, size_p);
    s_drv_end (&d);
    s_def_destroy (&def);
    return packed;
}

START_TEST (test_resume)
{
    size_t size1, size2;
    uint8_t *kept = s_script (false, &size1);
    uint8_t *reloaded = s_script (true, &size2);
    ck_assert_uint_eq (size1, size2);
    ck_assert_mem_eq (kept, reloaded, size1);
    free (kept);
    free (reloaded);
}
END_TEST

START_TEST (test_resume_inflight)
{
    //  A record saved with an attempt in flight: after a restart it stays
    //  in flight until its deadline, then is retried.
    Keel__SagaDefinition *def = s_def_new (2);
    drv_t d;
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    int64_t deadline = d.rec->runtime[1]->deadline_ms;
    Keel__SagaRecord *loaded = s_roundtrip (d.rec);
    keel_saga_record_destroy (&d.rec);
    d.rec = loaded;
    ck_assert (!s_advance (&d, deadline - 1));
    s_cmds (&d, 0);
    ck_assert (s_advance (&d, deadline));
    ck_assert (s_wake (&d));
    s_cmds (&d, 1, 1, ACT, 2);
    //  Or the answer to the first attempt arrives after the restart.
    s_drv_end (&d);
    s_drv_start (&d, def, T0);
    s_ok (&d, 0, ACT, 1);
    loaded = s_roundtrip (d.rec);
    keel_saga_record_destroy (&d.rec);
    d.rec = loaded;
    s_ok (&d, 1, ACT, 1);
    ck_assert_int_eq (s_state (&d), S_COMPLETED);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

START_TEST (test_damaged_record)
{
    //  A record missing parts (from a damaged log) is refused, not crashed
    //  on.
    Keel__SagaDefinition *def = s_def_new (2);
    drv_t d;
    s_drv_start (&d, def, T0);
    d.rec->n_runtime = 1;
    ck_assert (!keel_saga_advance (d.rec, T0 + 99999, &d.out));
    ck_assert (!keel_saga_result (d.rec, 0, ACT, 1, 0, NULL, NULL, NULL, 0, T0,
                                  &d.out));
    const char *why = NULL;
    ck_assert_int_eq (keel_saga_cancel (d.rec, T0, &d.out, &why), -1);
    ck_assert_ptr_nonnull (why);
    d.rec->n_runtime = 2;
    d.rec->status->state = 9;
    ck_assert (!keel_saga_advance (d.rec, T0 + 99999, &d.out));
    d.rec->status->state = S_STUCK;
    d.rec->stuck_step = 5;
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, T0, &d.out, &why), -1);
    d.rec->stuck_step = 0; //  not blocked
    ck_assert_int_eq (keel_saga_resolve (d.rec, false, T0, &d.out, &why), -1);
    s_drv_end (&d);
    s_def_destroy (&def);
}
END_TEST

// ---------------------------------------------------------------------------
//  Randomized: many sagas, random answers, invariants after every call

//  What the test knows of one saga beyond its record.
typedef struct {
    uint32_t last[KEEL_SAGA_MAX_STEPS][2];  //  last attempt sent per phase
    bool succeeded[KEEL_SAGA_MAX_STEPS];    //  an action success was taken
    bool maybe[KEEL_SAGA_MAX_STEPS];        //  the last action attempt timed
                                            //  out: may have taken effect
    uint32_t inflight[KEEL_SAGA_MAX_STEPS]; //  action attempt in flight
                                            //  before the call, and its
    int64_t deadline[KEEL_SAGA_MAX_STEPS];  //  deadline
    int maybe_compensated;                  //  compensations sent for steps
                                            //  that did not succeed
    bool skipped[KEEL_SAGA_MAX_STEPS];      //  skipped by resolve
    bool pivot_done;                        //  the pivot was seen DONE
    int last_comp_started;                  //  index of the last compensation
                                            //  started (they go down)
    struct {
        int step;
        bool compensate;
        uint32_t attempt;
    } sent[4096]; //  commands sent, answered or not
    int n_sent;
} model_t;

static uint32_t s_rng;

static uint32_t
s_rand (uint32_t n)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 17;
    s_rng ^= s_rng << 5;
    return n ? s_rng % n : 0;
}

static int
s_stage_start (const Keel__SagaDefinition *def, int i)
{
    const char *group = def->steps[i]->group;
    while (i > 0 && *group && strcmp (def->steps[i - 1]->group, group) == 0)
        i--;
    return i;
}

//  Check a call's output and the record against the model.
static void
s_check (drv_t *d, Keel__SagaRecord *twin, const keel_saga_out_t *twin_out,
         model_t *m)
{
    Keel__SagaRecord *rec = d->rec;
    const Keel__SagaStatus *status = rec->status;
    const Keel__SagaDefinition *def = rec->definition;
    int n = (int)status->n_steps;

    //  The twin, reloaded before every call, decided the same.
    size_t size1, size2;
    uint8_t *packed1 = s_pack (rec, &size1);
    uint8_t *packed2 = s_pack (twin, &size2);
    ck_assert_uint_eq (size1, size2);
    ck_assert_mem_eq (packed1, packed2, size1);
    free (packed1);
    free (packed2);
    ck_assert_uint_eq (d->out.n_cmds, twin_out->n_cmds);
    ck_assert_uint_eq (d->out.n_events, twin_out->n_events);
    for (size_t i = 0; i < d->out.n_events; i++) {
        ck_assert_str_eq (d->events[i].type, twin_out->events[i].type);
        ck_assert_int_eq (d->events[i].step, twin_out->events[i].step);
        ck_assert_str_eq (d->events[i].error, twin_out->events[i].error);
    }

    //  Commands: the next attempt of their phase, now in flight, one per
    //  step, actions only once the stages before are through,
    //  compensations only of steps that took effect, going down.
    bool seen[KEEL_SAGA_MAX_STEPS] = {false};
    for (size_t c = 0; c < d->out.n_cmds; c++) {
        const keel_saga_cmd_t *cmd = &d->cmds[c];
        ck_assert_int_eq (cmd->step, twin_out->cmds[c].step);
        ck_assert_int_eq (cmd->compensate, twin_out->cmds[c].compensate);
        ck_assert_uint_eq (cmd->attempt, twin_out->cmds[c].attempt);
        ck_assert_int_eq (cmd->deadline_ms, twin_out->cmds[c].deadline_ms);
        ck_assert_int_ge (cmd->step, 0);
        ck_assert_int_lt (cmd->step, n);
        ck_assert (!seen[cmd->step]);
        seen[cmd->step] = true;
        ck_assert_uint_eq (cmd->attempt,
                           m->last[cmd->step][cmd->compensate] + 1);
        m->last[cmd->step][cmd->compensate] = cmd->attempt;
        ck_assert_uint_eq (rec->runtime[cmd->step]->inflight, cmd->attempt);
        ck_assert_int_eq (rec->runtime[cmd->step]->inflight_compensate,
                          cmd->compensate);
        ck_assert_int_gt (cmd->deadline_ms, d->now);
        if (cmd->compensate) {
            ck_assert (m->succeeded[cmd->step] || m->maybe[cmd->step]);
            ck_assert (!m->pivot_done);
            if (rec->status->steps[cmd->step]->compensation_attempts == 1) {
                ck_assert_int_lt (cmd->step, m->last_comp_started);
                m->last_comp_started = cmd->step;
                //  The steps above it that took effect (or may have) are
                //  through with theirs.
                for (int j = cmd->step + 1; j < n; j++)
                    if (m->succeeded[j] || m->maybe[j])
                        ck_assert (status->steps[j]->state == COMPENSATED ||
                                   (status->steps[j]->state == SKIPPED &&
                                    m->skipped[j]));
                if (!m->succeeded[cmd->step])
                    m->maybe_compensated++;
            }
        } else {
            int start = s_stage_start (def, cmd->step);
            for (int j = 0; j < start; j++)
                ck_assert (status->steps[j]->state == DONE ||
                           status->steps[j]->state == SKIPPED);
            ck_assert (!m->succeeded[cmd->step]);
        }
        ck_assert_int_lt (m->n_sent, 4096);
        m->sent[m->n_sent].step = cmd->step;
        m->sent[m->n_sent].compensate = cmd->compensate;
        m->sent[m->n_sent].attempt = cmd->attempt;
        m->n_sent++;
    }

    //  Steps: in flight only in their phase's state, never ahead of the
    //  counts; at most one compensation under way.
    int compensating = 0;
    int64_t wake = 0;
    for (int i = 0; i < n; i++) {
        const Keel__StepStatus *step = status->steps[i];
        const Keel__StepRuntime *rt = rec->runtime[i];
        ck_assert_uint_eq (step->attempts, m->last[i][0]);
        ck_assert_uint_eq (step->compensation_attempts, m->last[i][1]);
        if (rt->inflight) {
            ck_assert_int_eq (step->state,
                              rt->inflight_compensate ? COMPENSATING : RUNNING);
            ck_assert_uint_eq (rt->inflight,
                               m->last[i][rt->inflight_compensate]);
            wake =
                (wake == 0 || rt->deadline_ms < wake) ? rt->deadline_ms : wake;
        } else if ((step->state == RUNNING || step->state == COMPENSATING) &&
                   rt->due_ms != INT64_MAX && rt->due_ms > 0)
            wake = (wake == 0 || rt->due_ms < wake) ? rt->due_ms : wake;
        if (step->state == COMPENSATING)
            compensating++;
        if (step->state == FAILED)
            ck_assert (!m->succeeded[i]);
        if (step->state == DONE)
            ck_assert (m->succeeded[i]);
        if (step->state == COMPENSATING || step->state == COMPENSATED)
            ck_assert (m->succeeded[i] || m->maybe[i]);
        //  A pivot awaited while turning back is compensated like the
        //  others; one done going forward locks the saga forward.
        if (def->steps[i]->pivot && step->state == DONE &&
            status->state != S_COMPENSATING)
            m->pivot_done = true;
    }
    ck_assert_int_le (compensating, 1);
    ck_assert_int_eq (rec->wake_ms, wake);
    if (m->pivot_done)
        ck_assert (status->state != S_COMPENSATING &&
                   status->state != S_COMPENSATED);

    //  Never stalled: a saga not over and not STUCK has something to wait
    //  for.
    if (status->state == S_RUNNING || status->state == S_COMPENSATING)
        ck_assert_int_gt (rec->wake_ms, 0);
    if (status->state == S_STUCK) {
        ck_assert_int_ge (rec->stuck_step, 0);
        ck_assert_int_lt (rec->stuck_step, n);
    }
    if (status->state == S_COMPLETED)
        for (int i = 0; i < n; i++)
            ck_assert (status->steps[i]->state == DONE ||
                       (status->steps[i]->state == SKIPPED && m->skipped[i]));
    if (status->state == S_COMPENSATED)
        for (int i = 0; i < n; i++) {
            Keel__StepState state = status->steps[i]->state;
            ck_assert (state == COMPENSATED || state == FAILED ||
                       state == SKIPPED);
            if (m->succeeded[i] || m->maybe[i])
                ck_assert (state == COMPENSATED ||
                           (state == SKIPPED && m->skipped[i]));
        }
    if (keel_saga_finished (rec)) {
        ck_assert_int_eq (rec->wake_ms, 0);
        for (int i = 0; i < n; i++)
            ck_assert_uint_eq (rec->runtime[i]->inflight, 0);
    }
}

//  Before a call: note the action attempts in flight.
static void
s_model_before (model_t *m, const Keel__SagaRecord *rec)
{
    for (size_t i = 0; i < rec->n_runtime; i++) {
        const Keel__StepRuntime *rt = rec->runtime[i];
        m->inflight[i] = rt->inflight_compensate ? 0 : rt->inflight;
        m->deadline[i] = rt->deadline_ms;
    }
}

//  After a call at `now` (that answered step `answered`'s action in flight,
//  or -1): an action attempt in flight before it, gone and not answered,
//  timed out (at its deadline, no sooner): it may have taken effect.
static void
s_model_after (model_t *m, const Keel__SagaRecord *rec, int64_t now,
               int answered)
{
    for (size_t i = 0; i < rec->n_runtime; i++) {
        const Keel__StepRuntime *rt = rec->runtime[i];
        if (!m->inflight[i] || (int)i == answered ||
            (rt->inflight == m->inflight[i] && !rt->inflight_compensate))
            continue;
        ck_assert_int_le (m->deadline[i], now);
        ck_assert (!m->succeeded[i]);
        m->maybe[i] = true;
    }
}

static Keel__SagaDefinition *
s_random_def (void)
{
    int n = 1 + (int)s_rand (7);
    Keel__SagaDefinition *def = s_def_new (n);
    int pivot = s_rand (3) == 0 ? (int)s_rand (n) : -1;
    for (int i = 0; i < n; i++) {
        Keel__SagaStep *step = def->steps[i];
        if (s_rand (4) == 0)
            s_str (&step->compensation, "");
        if (s_rand (3) == 0) {
            char group[8];
            snprintf (group, sizeof group, "g%u", s_rand (2));
            s_group (def, i, group);
        }
        step->pivot = i == pivot;
        step->timeout_ms = 50 + s_rand (200);
        Keel__RetryPolicy *policy = s_policy (def, i, ACT);
        policy->max_attempts = 1 + s_rand (3);
        policy->initial_interval_ms = 1 + s_rand (50);
        policy->max_interval_ms = 200;
        if (s_rand (2))
            s_non_retryable (policy, "BAD_REQUEST");
        if (s_rand (2))
            s_policy (def, i, COMP)->max_attempts = 1 + s_rand (3);
    }
    ck_assert_ptr_null (keel_saga_def_check (def));
    return def;
}

START_TEST (test_randomized)
{
    s_rng = 2463534242u + (uint32_t)_i;
    static const char *errors[] = {"UNAVAILABLE", "BAD_REQUEST", "TIMEOUT",
                                   "INTERNAL"};
    int outcomes[5] = {0};
    int maybe_compensated = 0;
    for (int saga = 0; saga < 300; saga++) {
        Keel__SagaDefinition *def = s_random_def ();
        model_t *m = calloc (1, sizeof *m);
        m->last_comp_started = KEEL_SAGA_MAX_STEPS;
        drv_t d;
        s_drv_start (&d, def, T0);
        keel_saga_cmd_t twin_cmds[KEEL_SAGA_MAX_STEPS];
        keel_saga_event_t twin_events[KEEL_SAGA_MAX_EVENTS];
        keel_saga_out_t twin_out = {twin_cmds, 0, twin_events, 0};
        Keel__SagaRecord *twin = keel_saga_record_new (def, "saga-1", "in", 2,
                                                       "key-1", T0, &twin_out);
        s_check (&d, twin, &twin_out, m);

        //  Drive it; after 300 moves, only good answers and skips.
        for (int move = 0; !keel_saga_finished (d.rec); move++) {
            ck_assert_int_lt (move, 2000);
            bool calm = move >= 300;
            Keel__SagaRecord *reloaded = s_roundtrip (twin);
            keel_saga_record_destroy (&twin);
            twin = reloaded;
            s_model_before (m, d.rec);
            int answered = -1;
            uint32_t r = s_rand (100);
            d.now += s_rand (30);
            if (d.rec->status->state == S_STUCK && (calm || r < 30)) {
                bool skip = calm || s_rand (2);
                int stuck = d.rec->stuck_step;
                ck_assert_int_eq (
                    keel_saga_resolve (d.rec, skip, d.now, &d.out, NULL), 0);
                ck_assert_int_eq (
                    keel_saga_resolve (twin, skip, d.now, &twin_out, NULL), 0);
                if (skip)
                    m->skipped[stuck] = true;
            } else if (r < 60 && m->n_sent > 0) {
                //  Answer one sent command, maybe a stale one.
                int k = s_rand (2) ? m->n_sent - 1 - (int)s_rand (3)
                                   : (int)s_rand (m->n_sent);
                if (k < 0)
                    k = 0;
                int step = m->sent[k].step;
                bool comp = m->sent[k].compensate;
                uint32_t attempt = m->sent[k].attempt;
                const char *error = NULL;
                if (!calm && s_rand (100) < 45)
                    error = errors[s_rand (4)];
                const Keel__StepRuntime *rt = d.rec->runtime[step];
                bool live = rt->inflight == attempt &&
                            (bool)rt->inflight_compensate == comp;
                int code = error ? s_code (error) : 0;
                bool taken =
                    keel_saga_result (d.rec, step, comp, attempt, code, error,
                                      "x", "o", 1, d.now, &d.out);
                ck_assert_int_eq (taken, live);
                ck_assert_int_eq (keel_saga_result (twin, step, comp, attempt,
                                                    code, error, "x", "o", 1,
                                                    d.now, &twin_out),
                                  taken);
                if (taken && !comp) {
                    answered = step;
                    //  An answered TIMEOUT is a timeout too.
                    if (error)
                        m->maybe[step] = strcmp (error, "TIMEOUT") == 0;
                    else
                        m->succeeded[step] = true;
                }
            } else if (r < 65 && !calm) {
                const char *why = NULL;
                int rc = keel_saga_cancel (d.rec, d.now, &d.out, &why);
                ck_assert_int_eq (
                    keel_saga_cancel (twin, d.now, &twin_out, NULL), rc);
                ck_assert (rc == 0 || why);
                if (rc == -1)
                    ck_assert (m->pivot_done ||
                               d.rec->status->state == S_STUCK ||
                               d.rec->status->state == S_COMPLETED);
            } else {
                //  Time passes: to the wake time, or not quite.
                int64_t now = d.now;
                if (d.rec->wake_ms > 0 && s_rand (3) > 0)
                    now = d.rec->wake_ms > now ? d.rec->wake_ms : now;
                d.now = now;
                bool changed = keel_saga_advance (d.rec, now, &d.out);
                ck_assert_int_eq (keel_saga_advance (twin, now, &twin_out),
                                  changed);
            }
            s_model_after (m, d.rec, d.now, answered);
            s_check (&d, twin, &twin_out, m);
        }
        outcomes[d.rec->status->state]++;
        maybe_compensated += m->maybe_compensated;
        keel_saga_record_destroy (&twin);
        s_drv_end (&d);
        s_def_destroy (&def);
        free (m);
    }
    //  The run reached both ends often.
    ck_assert_int_gt (outcomes[S_COMPLETED], 30);
    ck_assert_int_gt (outcomes[S_COMPENSATED], 30);
    //  ... and compensated steps that had timed out.
    ck_assert_int_gt (maybe_compensated, 10);
}
END_TEST

// ---------------------------------------------------------------------------

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_saga_machine");
    TCase *tc = tcase_create ("core");
    tcase_add_test (tc, test_names);
    tcase_add_test (tc, test_def_check);
    tcase_add_test (tc, test_def_defaults);
    tcase_add_test (tc, test_success);
    tcase_add_test (tc, test_fail_first);
    tcase_add_test (tc, test_fail_second);
    tcase_add_test (tc, test_fail_third);
    tcase_add_test (tc, test_no_compensation);
    tcase_add_test (tc, test_timeout_retry);
    tcase_add_test (tc, test_retries_exhausted);
    tcase_add_test (tc, test_non_retryable);
    tcase_add_test (tc, test_error_text);
    tcase_add_test (tc, test_backoff);
    tcase_add_test (tc, test_backoff_in_saga);
    tcase_add_test (tc, test_compensation_stuck_retry);
    tcase_add_test (tc, test_compensation_stuck_again);
    tcase_add_test (tc, test_compensation_timeout_stuck);
    tcase_add_test (tc, test_compensation_resolve_skip);
    tcase_add_test (tc, test_timeout_compensated);
    tcase_add_test (tc, test_pivot);
    tcase_add_test (tc, test_pivot_skip_completes);
    tcase_add_test (tc, test_pivot_fails_itself);
    tcase_add_test (tc, test_pivot_group);
    tcase_add_test (tc, test_cancel);
    tcase_add_test (tc, test_cancel_inflight_fails);
    tcase_add_test (tc, test_cancel_waiting_retry);
    tcase_add_test (tc, test_group_success);
    tcase_add_test (tc, test_group_retry_inside);
    tcase_add_test (tc, test_group_fail_sibling_succeeds);
    tcase_add_test (tc, test_group_fail_sibling_fails);
    tcase_add_test (tc, test_group_separate_runs);
    tcase_add_test (tc, test_group_largest);
    tcase_add_test (tc, test_ignored_results);
    tcase_add_test (tc, test_output_replaced);
    tcase_add_test (tc, test_resume);
    tcase_add_test (tc, test_resume_inflight);
    tcase_add_test (tc, test_damaged_record);
    tcase_add_loop_test (tc, test_randomized, 0, 3);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
