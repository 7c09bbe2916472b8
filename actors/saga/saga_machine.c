/*  saga_machine.c - the saga state machine (see saga_machine.h).

    A record, all of it malloc-owned (protobuf_c_message_free_unpacked
    frees it, as one unpacked from the log with the default allocator):

      SagaRecord
      +- status: SagaStatus     id, definition, state, last_error, ...
      |    +- steps[i]          StepStatus: state, attempts, compensation_
      |                         attempts, last_error, output
      +- definition             the SagaDefinition, defaults applied
      |    +- steps[i]          SagaStep: timeout, retry, compensation_retry
      +- runtime[i]             StepRuntime: inflight, inflight_compensate,
      |                         deadline_ms, due_ms, budget_base
      +- wake_ms, stuck_step

    One step, one phase at a time (the action, then maybe its
    compensation). Where a step stands, from its state and runtime:

      state         inflight  due_ms       meaning
      PENDING       0         0            not started
      RUNNING       n         -            action attempt n in flight
      RUNNING       0         t            action retry not before t
      RUNNING       0         S_BLOCKED    action failed for good after
                                           the pivot: waits for resolve
      COMPENSATING  n / 0     as above     the same for the compensation
      DONE, FAILED, COMPENSATED, SKIPPED   runtime all zero

    The phase's budget: attempts (or compensation_attempts) minus
    budget_base, against the phase policy's max_attempts. Resolve retry sets
    budget_base to the attempts so far, so the counters keep counting while
    the budget starts again (and so do the backoff waits).

    Stages: the first step not DONE or SKIPPED and the consecutive steps
    sharing its non-empty group. Only the current stage runs forward.

    Failing: when an action fails for good before the pivot is done, the
    saga turns COMPENSATING at once; no action starts again (a step waiting
    to retry becomes FAILED); actions in flight are awaited (success: DONE,
    so compensated; failure or timeout: FAILED). Once none is in flight the
    DONE steps, and the FAILED ones whose last attempt timed out (they may
    have taken effect), are compensated from the highest index down, one at
    a time.
    A pivot still in flight in the failing stage is awaited like any other
    action: if it succeeds it is compensated too (it was not done yet when
    the saga turned back).

    After the pivot is DONE (a later step, or a sibling in its group) an
    action failing for good is BLOCKED; the saga is STUCK on the lowest
    BLOCKED step, while its siblings in flight go on (one failing for good
    too is BLOCKED and becomes the stuck step once the first is resolved).

    Every public call runs in three parts: apply the input (result, cancel,
    resolve), fail the attempts past their deadline (only at the start: a
    deadline set in the call is later than now), then s_run moves the saga
    forward until nothing changes. A call emits at most one failure and one
    success per step and two saga events, and sends each step at most once.
*/
#include "saga_machine.h"
#include "keel_common.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  due_ms of a step that failed for good and waits for saga.resolve.
#define S_BLOCKED INT64_MAX

//  Defaults (schemas/saga.proto).
#define S_DEFAULT_MAX_ATTEMPTS      3
#define S_DEFAULT_COMP_MAX_ATTEMPTS 5
#define S_DEFAULT_INITIAL_MS        100
#define S_DEFAULT_BACKOFF           2.0
#define S_DEFAULT_MAX_INTERVAL_MS   10000
#define S_DEFAULT_JITTER            0.2
#define S_DEFAULT_TIMEOUT_MS        5000

//  Limits of a definition.
#define S_MAX_NAME        100
#define S_MAX_ATTEMPTS    1000
#define S_MAX_INTERVAL_MS 86400000u //  a day
#define S_MAX_ERROR_TEXT  200       //  bytes of a failure's text kept

// ---------------------------------------------------------------------------
//  Names

static const char *s_saga_state_names[] = {"RUNNING", "COMPENSATING",
                                           "COMPLETED", "COMPENSATED", "STUCK"};

static const char *s_step_state_names[] = {
    "PENDING",      "RUNNING",     "DONE",   "FAILED",
    "COMPENSATING", "COMPENSATED", "SKIPPED"};

#define S_COUNT(a) ((int)(sizeof (a) / sizeof ((a)[0])))

const char *
keel_saga_state_name (int state)
{
    if (state < 0 || state >= S_COUNT (s_saga_state_names))
        return "UNKNOWN";
    return s_saga_state_names[state];
}

const char *
keel_saga_step_state_name (int state)
{
    if (state < 0 || state >= S_COUNT (s_step_state_names))
        return "UNKNOWN";
    return s_step_state_names[state];
}

int
keel_saga_state_parse (const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < S_COUNT (s_saga_state_names); i++)
        if (strcasecmp (name, s_saga_state_names[i]) == 0)
            return i;
    return -1;
}

// ---------------------------------------------------------------------------
//  Definitions

//  [A-Za-z0-9_.-]{1,100}
static bool
s_valid_def_name (const char *name)
{
    size_t len = name ? strlen (name) : 0;
    if (len == 0 || len > S_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum (c) && c != '_' && c != '.' && c != '-')
            return false;
    }
    return true;
}

//  Printable ASCII, no spaces, 1 to 100 bytes.
static bool
s_valid_token (const char *text)
{
    size_t len = text ? strlen (text) : 0;
    if (len == 0 || len > S_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

static bool
s_known_error_name (const char *name)
{
    if (!name)
        return false;
    for (int code = 1; code <= KEEL_ERR_MAX_KNOWN; code++)
        if (strcmp (name, keel_errname (code)) == 0)
            return true;
    return false;
}

//  NULL if the policy is sane once its defaults are applied.
static const char *
s_check_policy (const Keel__RetryPolicy *policy)
{
    if (!policy)
        return NULL;
    if (policy->max_attempts > S_MAX_ATTEMPTS)
        return "retry max_attempts over 1000";
    if (policy->backoff != 0 &&
        !(policy->backoff >= 1 && isfinite (policy->backoff)))
        return "retry backoff must be >= 1";
    if (!(policy->jitter >= 0 && policy->jitter <= 1))
        return "retry jitter not within 0..1";
    if (policy->initial_interval_ms > S_MAX_INTERVAL_MS ||
        policy->max_interval_ms > S_MAX_INTERVAL_MS)
        return "retry interval over a day";
    for (size_t i = 0; i < policy->n_non_retryable; i++)
        if (!s_known_error_name (policy->non_retryable[i]))
            return "retry non_retryable names an unknown error";
    return NULL;
}

const char *
keel_saga_def_check (const Keel__SagaDefinition *def)
{
    if (!def)
        return "no definition";
    if (!s_valid_def_name (def->name))
        return "definition name must be 1 to 100 of [A-Za-z0-9_.-]";
    if (def->version < 1)
        return "definition version must be >= 1";
    if (def->n_steps < 1 || def->n_steps > KEEL_SAGA_MAX_STEPS)
        return "a definition has 1 to 64 steps";
    int pivots = 0;
    for (size_t i = 0; i < def->n_steps; i++) {
        const Keel__SagaStep *step = def->steps[i];
        if (!step)
            return "missing step";
        if (!s_valid_token (step->name))
            return "step name must be 1 to 100 printable bytes, no spaces";
        for (size_t j = 0; j < i; j++)
            if (strcmp (def->steps[j]->name, step->name) == 0)
                return "step names must be unique";
        if (!s_valid_token (step->service))
            return "step service must be 1 to 100 printable bytes, no spaces";
        if (!s_valid_token (step->action))
            return "step action must be 1 to 100 printable bytes, no spaces";
        if (step->compensation && *step->compensation &&
            !s_valid_token (step->compensation))
            return "step compensation must be printable, no spaces, <= 100 "
                   "bytes";
        if (step->group && *step->group && !s_valid_token (step->group))
            return "step group must be printable, no spaces, <= 100 bytes";
        if (step->pivot && ++pivots > 1)
            return "at most one pivot step";
        const char *why = s_check_policy (step->retry);
        if (!why)
            why = s_check_policy (step->compensation_retry);
        if (why)
            return why;
    }
    return NULL;
}

//  Fill a policy's zero fields; `model` (if not NULL) gives the intervals.
static void
s_policy_defaults (Keel__RetryPolicy *policy, uint32_t max_attempts,
                   const Keel__RetryPolicy *model)
{
    if (policy->max_attempts == 0)
        policy->max_attempts = max_attempts;
    if (policy->initial_interval_ms == 0)
        policy->initial_interval_ms =
            model ? model->initial_interval_ms : S_DEFAULT_INITIAL_MS;
    if (policy->backoff == 0)
        policy->backoff = model ? model->backoff : S_DEFAULT_BACKOFF;
    if (policy->max_interval_ms == 0)
        policy->max_interval_ms =
            model ? model->max_interval_ms : S_DEFAULT_MAX_INTERVAL_MS;
    if (policy->jitter == 0)
        policy->jitter = model ? model->jitter : S_DEFAULT_JITTER;
}

static Keel__RetryPolicy *
s_policy_new (void)
{
    Keel__RetryPolicy *policy = malloc (sizeof (*policy));
    if (policy)
        keel__retry_policy__init (policy);
    return policy;
}

int
keel_saga_def_defaults (Keel__SagaDefinition *def)
{
    assert (def);
    for (size_t i = 0; i < def->n_steps; i++) {
        Keel__SagaStep *step = def->steps[i];
        assert (step);
        if (step->timeout_ms == 0)
            step->timeout_ms = S_DEFAULT_TIMEOUT_MS;
        if (!step->retry && !(step->retry = s_policy_new ()))
            return -1;
        s_policy_defaults (step->retry, S_DEFAULT_MAX_ATTEMPTS, NULL);
        if (!step->compensation_retry &&
            !(step->compensation_retry = s_policy_new ()))
            return -1;
        s_policy_defaults (step->compensation_retry,
                           S_DEFAULT_COMP_MAX_ATTEMPTS, step->retry);
    }
    return 0;
}

// ---------------------------------------------------------------------------
//  Backoff

#define S_FNV_OFFSET 14695981039346656037ull
#define S_FNV_PRIME  1099511628211ull

static uint64_t
s_fnv (uint64_t hash, const void *data, size_t size)
{
    const unsigned char *bytes = (const unsigned char *)data;
    for (size_t i = 0; i < size; i++) {
        hash ^= bytes[i];
        hash *= S_FNV_PRIME;
    }
    return hash;
}

static uint64_t
s_fnv_str (uint64_t hash, const char *text)
{
    return s_fnv (hash, text, strlen (text));
}

//  The wait before attempt `attempt` + 1, jitter picked by `hash` (FNV-1a of
//  the seed text so far): the attempt's 4 bytes (little-endian) are hashed
//  in, then mixed (murmur3's finaliser) so near seeds spread apart.
static int64_t
s_backoff (const Keel__RetryPolicy *policy, uint32_t attempt, uint64_t hash)
{
    uint32_t max_ms = policy->max_interval_ms;
    double wait = policy->initial_interval_ms;
    if (wait > max_ms)
        wait = max_ms;
    for (uint32_t n = 1; n < attempt && wait < max_ms; n++) {
        wait *= policy->backoff >= 1 ? policy->backoff : 1;
        if (wait > max_ms)
            wait = max_ms;
    }
    unsigned char le[4] = {
        (unsigned char)attempt, (unsigned char)(attempt >> 8),
        (unsigned char)(attempt >> 16), (unsigned char)(attempt >> 24)};
    hash = s_fnv (hash, le, sizeof (le));
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdull;
    hash ^= hash >> 33;
    hash *= 0xc4ceb9fe1a85ec53ull;
    hash ^= hash >> 33;
    double unit = (double)(hash >> 11) / 9007199254740992.0; //  [0, 1)
    double jitter = policy->jitter;
    if (!(jitter >= 0))
        jitter = 0;
    if (jitter > 1)
        jitter = 1;
    wait += wait * jitter * (2 * unit - 1);
    if (wait < 0)
        wait = 0;
    return (int64_t)(wait + 0.5);
}

int64_t
keel_saga_backoff_ms (const Keel__RetryPolicy *policy, uint32_t attempt,
                      const char *seed_text)
{
    assert (policy);
    return s_backoff (policy, attempt,
                      s_fnv_str (S_FNV_OFFSET, seed_text ? seed_text : ""));
}

// ---------------------------------------------------------------------------
//  Record memory: every string malloc'd or protobuf_c_empty_string

static void
s_free_str (char *text)
{
    if (text && text != protobuf_c_empty_string)
        free (text);
}

//  Replace a string field with a copy of `text` ("" when out of memory).
static void
s_set_str (char **field, const char *text)
{
    char *copy = (text && *text) ? strdup (text) : NULL;
    s_free_str (*field);
    *field = copy ? copy : (char *)protobuf_c_empty_string;
}

//  Replace a bytes field with a copy (empty when out of memory).
static void
s_set_bytes (ProtobufCBinaryData *field, const void *data, size_t size)
{
    free (field->data);
    field->data = NULL;
    field->len = 0;
    if (size > 0 && data && (field->data = malloc (size))) {
        memcpy (field->data, data, size);
        field->len = size;
    }
}

//  A deep copy of a definition, malloc-owned; NULL if out of memory.
static Keel__SagaDefinition *
s_def_copy (const Keel__SagaDefinition *def)
{
    size_t size = keel__saga_definition__get_packed_size (def);
    uint8_t *buffer = malloc (size ? size : 1);
    if (!buffer)
        return NULL;
    keel__saga_definition__pack (def, buffer);
    Keel__SagaDefinition *copy =
        keel__saga_definition__unpack (NULL, size, buffer);
    free (buffer);
    return copy;
}

void
keel_saga_record_destroy (Keel__SagaRecord **self_p)
{
    assert (self_p);
    if (*self_p) {
        protobuf_c_message_free_unpacked (&(*self_p)->base, NULL);
        *self_p = NULL;
    }
}

bool
keel_saga_finished (const Keel__SagaRecord *self)
{
    assert (self);
    return self->status &&
           (self->status->state == KEEL__SAGA_STATE__SAGA_COMPLETED ||
            self->status->state == KEEL__SAGA_STATE__SAGA_COMPENSATED);
}

// ---------------------------------------------------------------------------
//  One call's context

typedef struct {
    Keel__SagaRecord *rec; //  the saga
    int64_t now;           //  the call's time
    keel_saga_out_t *out;  //  where commands and events go; may be NULL
    bool changed;          //  the record changed
} s_ctx_t;

static void
s_ctx_init (s_ctx_t *ctx, Keel__SagaRecord *rec, int64_t now,
            keel_saga_out_t *out)
{
    ctx->rec = rec;
    ctx->now = now;
    ctx->out = out;
    ctx->changed = false;
    if (out) {
        out->n_cmds = 0;
        out->n_events = 0;
    }
}

#define S_STATUS(ctx)  ((ctx)->rec->status)
#define S_STEP(ctx, i) ((ctx)->rec->status->steps[i])
#define S_DEF(ctx, i)  ((ctx)->rec->definition->steps[i])
#define S_RT(ctx, i)   ((ctx)->rec->runtime[i])
#define S_N(ctx)       ((int)(ctx)->rec->status->n_steps)

//  Is the record whole (it may come from a file)?
static bool
s_record_ok (const Keel__SagaRecord *rec)
{
    if (!rec || !rec->status || !rec->definition)
        return false;
    size_t n = rec->status->n_steps;
    if (n < 1 || n > KEEL_SAGA_MAX_STEPS || rec->definition->n_steps != n ||
        rec->n_runtime != n)
        return false;
    if (rec->status->state < KEEL__SAGA_STATE__SAGA_RUNNING ||
        rec->status->state > KEEL__SAGA_STATE__SAGA_STUCK)
        return false;
    for (size_t i = 0; i < n; i++) {
        const Keel__StepStatus *step = rec->status->steps[i];
        const Keel__SagaStep *def = rec->definition->steps[i];
        if (!step || !def || !rec->runtime[i] || !def->retry ||
            !def->compensation_retry)
            return false;
        if (step->state < KEEL__STEP_STATE__STEP_PENDING ||
            step->state > KEEL__STEP_STATE__STEP_SKIPPED)
            return false;
    }
    if (rec->status->state == KEEL__SAGA_STATE__SAGA_STUCK &&
        (rec->stuck_step < 0 || (size_t)rec->stuck_step >= n))
        return false;
    return true;
}

static void
s_emit (s_ctx_t *ctx, const char *type, int step, uint32_t attempt,
        const char *error)
{
    if (!ctx->out)
        return;
    assert (ctx->out->n_events < KEEL_SAGA_MAX_EVENTS);
    keel_saga_event_t *event = &ctx->out->events[ctx->out->n_events++];
    event->type = type;
    event->step = step;
    event->attempt = attempt;
    event->error = error ? error : "";
}

static const Keel__RetryPolicy *
s_policy (s_ctx_t *ctx, int i, bool compensate)
{
    return compensate ? S_DEF (ctx, i)->compensation_retry
                      : S_DEF (ctx, i)->retry;
}

//  Attempts of the phase so far.
static uint32_t
s_attempts (s_ctx_t *ctx, int i, bool compensate)
{
    return compensate ? S_STEP (ctx, i)->compensation_attempts
                      : S_STEP (ctx, i)->attempts;
}

//  Attempts of the phase in its current budget.
static uint32_t
s_used (s_ctx_t *ctx, int i, bool compensate)
{
    uint32_t attempts = s_attempts (ctx, i, compensate);
    uint32_t base = S_RT (ctx, i)->budget_base;
    return base <= attempts ? attempts - base : attempts;
}

static void
s_rt_clear (Keel__StepRuntime *rt)
{
    rt->inflight = 0;
    rt->inflight_compensate = false;
    rt->deadline_ms = 0;
    rt->due_ms = 0;
}

static bool
s_blocked (s_ctx_t *ctx, int i)
{
    return S_RT (ctx, i)->inflight == 0 && S_RT (ctx, i)->due_ms == S_BLOCKED;
}

//  Waiting for its next attempt (not blocked), due by now?
static bool
s_retry_due (s_ctx_t *ctx, int i)
{
    const Keel__StepRuntime *rt = S_RT (ctx, i);
    return rt->inflight == 0 && rt->due_ms != S_BLOCKED &&
           rt->due_ms <= ctx->now;
}

static bool
s_pivot_done (s_ctx_t *ctx)
{
    for (int i = 0; i < S_N (ctx); i++)
        if (S_DEF (ctx, i)->pivot &&
            S_STEP (ctx, i)->state == KEEL__STEP_STATE__STEP_DONE)
            return true;
    return false;
}

//  Send the next attempt of step i's phase.
static void
s_send (s_ctx_t *ctx, int i, bool compensate)
{
    Keel__StepStatus *step = S_STEP (ctx, i);
    Keel__StepRuntime *rt = S_RT (ctx, i);
    uint32_t attempt =
        compensate ? ++step->compensation_attempts : ++step->attempts;
    uint32_t timeout = S_DEF (ctx, i)->timeout_ms;
    rt->inflight = attempt;
    rt->inflight_compensate = compensate;
    rt->deadline_ms = ctx->now + (timeout ? timeout : S_DEFAULT_TIMEOUT_MS);
    rt->due_ms = 0;
    ctx->changed = true;
    if (ctx->out) {
        assert (ctx->out->n_cmds < KEEL_SAGA_MAX_STEPS);
        keel_saga_cmd_t *cmd = &ctx->out->cmds[ctx->out->n_cmds++];
        cmd->step = i;
        cmd->compensate = compensate;
        cmd->attempt = attempt;
        cmd->deadline_ms = rt->deadline_ms;
    }
}

//  Start step i's phase with a fresh budget.
static void
s_start (s_ctx_t *ctx, int i, bool compensate)
{
    S_STEP (ctx, i)->state = compensate ? KEEL__STEP_STATE__STEP_COMPENSATING
                                        : KEEL__STEP_STATE__STEP_RUNNING;
    S_RT (ctx, i)->budget_base = s_attempts (ctx, i, compensate);
    s_send (ctx, i, compensate);
}

//  Turn the saga back: no action starts again, DONE steps get compensated.
//  `step` is the step whose failure caused it, -1 for a cancel.
static void
s_turn_back (s_ctx_t *ctx, int step)
{
    Keel__SagaStatus *status = S_STATUS (ctx);
    status->state = KEEL__SAGA_STATE__SAGA_COMPENSATING;
    const char *error = "";
    if (step >= 0) {
        s_set_str (&status->last_error, S_STEP (ctx, step)->last_error);
        error = S_STEP (ctx, step)->last_error;
    }
    ctx->changed = true;
    s_emit (ctx, "saga.compensating", step, 0, error);
}

static void
s_stick (s_ctx_t *ctx, int i)
{
    Keel__SagaStatus *status = S_STATUS (ctx);
    bool compensate =
        S_STEP (ctx, i)->state == KEEL__STEP_STATE__STEP_COMPENSATING;
    status->state = KEEL__SAGA_STATE__SAGA_STUCK;
    ctx->rec->stuck_step = i;
    s_set_str (&status->last_error, S_STEP (ctx, i)->last_error);
    ctx->changed = true;
    s_emit (ctx, "saga.stuck", i, s_attempts (ctx, i, compensate),
            S_STEP (ctx, i)->last_error);
}

//  The attempt of step i in flight failed with `name`: retry, fail for
//  good, block, or (an action awaited while compensating) FAILED.
static void
s_fail (s_ctx_t *ctx, int i, const char *name, const char *text)
{
    Keel__StepStatus *step = S_STEP (ctx, i);
    Keel__StepRuntime *rt = S_RT (ctx, i);
    bool compensate = rt->inflight_compensate;
    uint32_t attempt = rt->inflight;
    s_rt_clear (rt);
    ctx->changed = true;

    //  "NAME: text", the text cut to S_MAX_ERROR_TEXT bytes on a UTF-8
    //  character boundary (the record stays small and valid proto3).
    size_t len = strlen (text);
    if (len > S_MAX_ERROR_TEXT) {
        len = S_MAX_ERROR_TEXT;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
    }
    size_t size = strlen (name) + len + 3;
    char *error = malloc (size);
    if (error)
        snprintf (error, size, len ? "%s: %.*s" : "%s", name, (int)len, text);
    s_free_str (step->last_error);
    step->last_error = error ? error : (char *)protobuf_c_empty_string;
    s_emit (ctx, "saga.step_failed", i, attempt, step->last_error);

    Keel__SagaState saga = S_STATUS (ctx)->state;
    if (!compensate && saga == KEEL__SAGA_STATE__SAGA_COMPENSATING) {
        step->state = KEEL__STEP_STATE__STEP_FAILED;
        return;
    }
    const Keel__RetryPolicy *policy = s_policy (ctx, i, compensate);
    bool retryable = true;
    for (size_t k = 0; k < policy->n_non_retryable; k++)
        if (policy->non_retryable[k] &&
            strcmp (policy->non_retryable[k], name) == 0)
            retryable = false;
    uint32_t used = s_used (ctx, i, compensate);
    if (retryable && used < policy->max_attempts) {
        const char *id = S_STATUS (ctx)->id;
        uint64_t hash = s_fnv_str (S_FNV_OFFSET, id ? id : "");
        hash = s_fnv_str (hash, "/");
        hash = s_fnv_str (hash, S_DEF (ctx, i)->name);
        hash = s_fnv_str (hash, compensate ? "/compensation" : "/action");
        rt->due_ms = ctx->now + s_backoff (policy, used, hash);
    } else if (compensate || s_pivot_done (ctx))
        rt->due_ms = S_BLOCKED;
    else {
        step->state = KEEL__STEP_STATE__STEP_FAILED;
        if (saga == KEEL__SAGA_STATE__SAGA_RUNNING)
            s_turn_back (ctx, i);
    }
}

//  Fail every attempt whose deadline passed.
static void
s_timeouts (s_ctx_t *ctx)
{
    for (int i = 0; i < S_N (ctx); i++) {
        Keel__StepRuntime *rt = S_RT (ctx, i);
        if (rt->inflight && rt->deadline_ms <= ctx->now) {
            char text[64];
            snprintf (text, sizeof (text), "no answer within %u ms",
                      S_DEF (ctx, i)->timeout_ms);
            s_fail (ctx, i, "TIMEOUT", text);
        }
    }
}

//  Forward: stick on a blocked step, complete, or run the current stage.
static void
s_step_running (s_ctx_t *ctx)
{
    int n = S_N (ctx);
    for (int i = 0; i < n; i++)
        if (S_STEP (ctx, i)->state == KEEL__STEP_STATE__STEP_RUNNING &&
            s_blocked (ctx, i)) {
            s_stick (ctx, i);
            return;
        }
    //  The current stage: [first, last)
    int first = 0;
    while (first < n &&
           (S_STEP (ctx, first)->state == KEEL__STEP_STATE__STEP_DONE ||
            S_STEP (ctx, first)->state == KEEL__STEP_STATE__STEP_SKIPPED))
        first++;
    if (first == n) {
        S_STATUS (ctx)->state = KEEL__SAGA_STATE__SAGA_COMPLETED;
        ctx->changed = true;
        s_emit (ctx, "saga.completed", -1, 0, "");
        return;
    }
    int last = first + 1;
    const char *group = S_DEF (ctx, first)->group;
    if (group && *group)
        while (last < n && strcmp (S_DEF (ctx, last)->group, group) == 0)
            last++;
    for (int i = first; i < last; i++) {
        Keel__StepStatus *step = S_STEP (ctx, i);
        if (step->state == KEEL__STEP_STATE__STEP_PENDING)
            s_start (ctx, i, false);
        else if (step->state == KEEL__STEP_STATE__STEP_RUNNING &&
                 s_retry_due (ctx, i))
            s_send (ctx, i, false);
    }
}

//  A step FAILED by a timeout: its last attempt got no answer, so it may
//  have been applied.
static bool
s_maybe_applied (const Keel__StepStatus *step)
{
    return step->state == KEEL__STEP_STATE__STEP_FAILED && step->last_error &&
           strncmp (step->last_error, "TIMEOUT", 7) == 0 &&
           (step->last_error[7] == 0 || step->last_error[7] == ':');
}

//  Backward: await actions in flight, then compensate the DONE steps one at
//  a time from the highest index down, then end COMPENSATED.
static void
s_step_compensating (s_ctx_t *ctx)
{
    int n = S_N (ctx);
    //  Actions in flight are awaited; actions waiting to retry never run.
    bool draining = false;
    for (int i = 0; i < n; i++) {
        if (S_STEP (ctx, i)->state != KEEL__STEP_STATE__STEP_RUNNING)
            continue;
        if (S_RT (ctx, i)->inflight)
            draining = true;
        else {
            S_STEP (ctx, i)->state = KEEL__STEP_STATE__STEP_FAILED;
            s_rt_clear (S_RT (ctx, i));
            ctx->changed = true;
        }
    }
    if (draining)
        return;
    //  The compensation under way, if any.
    for (int i = 0; i < n; i++) {
        if (S_STEP (ctx, i)->state != KEEL__STEP_STATE__STEP_COMPENSATING)
            continue;
        if (s_blocked (ctx, i))
            s_stick (ctx, i);
        else if (s_retry_due (ctx, i))
            s_send (ctx, i, true);
        return;
    }
    //  The next one, from the highest index down: steps done, and steps
    //  whose action failed by timing out -- that attempt may have taken
    //  effect after all, so it is undone too (a compensation must accept
    //  an action that never happened).
    for (int i = n - 1; i >= 0; i--) {
        if (S_STEP (ctx, i)->state != KEEL__STEP_STATE__STEP_DONE &&
            !s_maybe_applied (S_STEP (ctx, i)))
            continue;
        const char *method = S_DEF (ctx, i)->compensation;
        if (method && *method) {
            s_start (ctx, i, true);
            return;
        }
        S_STEP (ctx, i)->state = KEEL__STEP_STATE__STEP_COMPENSATED;
        ctx->changed = true;
    }
    for (int i = 0; i < n; i++)
        if (S_STEP (ctx, i)->state == KEEL__STEP_STATE__STEP_PENDING)
            S_STEP (ctx, i)->state = KEEL__STEP_STATE__STEP_SKIPPED;
    S_STATUS (ctx)->state = KEEL__SAGA_STATE__SAGA_COMPENSATED;
    ctx->changed = true;
    s_emit (ctx, "saga.compensated", -1, 0, "");
}

//  STUCK: nothing starts; siblings of a blocked action go on retrying.
static void
s_step_stuck (s_ctx_t *ctx)
{
    for (int i = 0; i < S_N (ctx); i++)
        if (S_STEP (ctx, i)->state == KEEL__STEP_STATE__STEP_RUNNING &&
            s_retry_due (ctx, i))
            s_send (ctx, i, false);
}

//  Move the saga until nothing more can happen now.
static void
s_run (s_ctx_t *ctx)
{
    for (;;) {
        Keel__SagaState before = S_STATUS (ctx)->state;
        switch (before) {
        case KEEL__SAGA_STATE__SAGA_RUNNING:
            s_step_running (ctx);
            break;
        case KEEL__SAGA_STATE__SAGA_COMPENSATING:
            s_step_compensating (ctx);
            break;
        case KEEL__SAGA_STATE__SAGA_STUCK:
            s_step_stuck (ctx);
            break;
        default:
            break;
        }
        //  Each pass does all it can in its state; a new state may allow
        //  more (e.g. a stage with no compensation method undone at once).
        if (S_STATUS (ctx)->state == before)
            break;
    }
}

//  Close a call: stamp the change, recompute wake_ms.
static void
s_finish (s_ctx_t *ctx)
{
    int64_t wake = 0;
    for (int i = 0; i < S_N (ctx); i++) {
        const Keel__StepRuntime *rt = S_RT (ctx, i);
        int64_t when = 0;
        if (rt->inflight)
            when = rt->deadline_ms;
        else if (rt->due_ms != S_BLOCKED &&
                 (S_STEP (ctx, i)->state == KEEL__STEP_STATE__STEP_RUNNING ||
                  S_STEP (ctx, i)->state ==
                      KEEL__STEP_STATE__STEP_COMPENSATING))
            when = rt->due_ms;
        if (when > 0 && (wake == 0 || when < wake))
            wake = when;
    }
    if (wake != ctx->rec->wake_ms) {
        ctx->rec->wake_ms = wake;
        ctx->changed = true;
    }
    if (ctx->changed)
        S_STATUS (ctx)->updated_ms = ctx->now;
}

// ---------------------------------------------------------------------------
//  Records

Keel__SagaRecord *
keel_saga_record_new (const Keel__SagaDefinition *def, const char *id,
                      const void *input, size_t size, const char *key,
                      int64_t now_ms, keel_saga_out_t *out)
{
    assert (id);
    assert (input || size == 0);
    if (out) {
        out->n_cmds = 0;
        out->n_events = 0;
    }
    if (keel_saga_def_check (def))
        return NULL;
    Keel__SagaRecord *rec = malloc (sizeof (*rec));
    if (!rec)
        return NULL;
    keel__saga_record__init (rec);
    rec->stuck_step = -1;
    size_t n = def->n_steps;

    //  Built so that destroy frees whatever part was made.
    if (!(rec->status = malloc (sizeof (Keel__SagaStatus))))
        goto failed;
    keel__saga_status__init (rec->status);
    Keel__SagaStatus *status = rec->status;
    if (!(rec->definition = s_def_copy (def)) ||
        keel_saga_def_defaults (rec->definition))
        goto failed;
    if (!(status->steps = calloc (n, sizeof (Keel__StepStatus *))) ||
        !(rec->runtime = calloc (n, sizeof (Keel__StepRuntime *))))
        goto failed;
    for (size_t i = 0; i < n; i++) {
        Keel__StepStatus *step = malloc (sizeof (*step));
        if (!step)
            goto failed;
        keel__step_status__init (step);
        status->steps[status->n_steps++] = step;
        if (!(step->name = strdup (def->steps[i]->name)))
            goto failed;
        Keel__StepRuntime *rt = malloc (sizeof (*rt));
        if (!rt)
            goto failed;
        keel__step_runtime__init (rt);
        rec->runtime[rec->n_runtime++] = rt;
    }
    if (!(status->id = strdup (id)) ||
        !(status->definition = strdup (def->name)))
        goto failed;
    if (key && *key && !(status->idempotency_key = strdup (key)))
        goto failed;
    if (size > 0) {
        if (!(status->input.data = malloc (size)))
            goto failed;
        memcpy (status->input.data, input, size);
        status->input.len = size;
    }
    status->version = def->version;
    status->state = KEEL__SAGA_STATE__SAGA_RUNNING;
    status->created_ms = now_ms;

    s_ctx_t ctx;
    s_ctx_init (&ctx, rec, now_ms, out);
    s_emit (&ctx, "saga.started", -1, 0, "");
    s_run (&ctx);
    s_finish (&ctx);
    status->updated_ms = now_ms;
    return rec;

failed:
    //  A string left NULL by a failed strdup is skipped by free_unpacked.
    keel_saga_record_destroy (&rec);
    return NULL;
}

// ---------------------------------------------------------------------------
//  Driving a saga

bool
keel_saga_advance (Keel__SagaRecord *self, int64_t now_ms, keel_saga_out_t *out)
{
    assert (self);
    s_ctx_t ctx;
    s_ctx_init (&ctx, self, now_ms, out);
    if (!s_record_ok (self) || keel_saga_finished (self))
        return false;
    s_timeouts (&ctx);
    s_run (&ctx);
    s_finish (&ctx);
    return ctx.changed;
}

bool
keel_saga_result (Keel__SagaRecord *self, int step, bool compensate,
                  uint32_t attempt, int code, const char *error_name,
                  const char *text, const void *output, size_t size,
                  int64_t now_ms, keel_saga_out_t *out)
{
    assert (self);
    s_ctx_t ctx;
    s_ctx_init (&ctx, self, now_ms, out);
    if (!s_record_ok (self) || keel_saga_finished (self) || step < 0 ||
        step >= S_N (&ctx) || attempt == 0)
        return false;
    Keel__StepRuntime *rt = S_RT (&ctx, step);
    if (rt->inflight != attempt || (bool)rt->inflight_compensate != compensate)
        return false;
    if (code == 0) {
        Keel__StepStatus *status = S_STEP (&ctx, step);
        s_rt_clear (rt);
        if (compensate)
            status->state = KEEL__STEP_STATE__STEP_COMPENSATED;
        else {
            status->state = KEEL__STEP_STATE__STEP_DONE;
            s_set_bytes (&status->output, output, size);
        }
        ctx.changed = true;
        s_emit (&ctx, "saga.step_done", step, attempt, "");
    } else {
        if (!error_name || !*error_name)
            error_name = keel_errname (code);
        s_fail (&ctx, step, error_name, text ? text : "");
    }
    s_timeouts (&ctx);
    s_run (&ctx);
    s_finish (&ctx);
    return true;
}

int
keel_saga_cancel (Keel__SagaRecord *self, int64_t now_ms, keel_saga_out_t *out,
                  const char **why_p)
{
    assert (self);
    const char *why = NULL;
    s_ctx_t ctx;
    s_ctx_init (&ctx, self, now_ms, out);
    if (!s_record_ok (self))
        why = "damaged saga record";
    else
        switch (S_STATUS (&ctx)->state) {
        case KEEL__SAGA_STATE__SAGA_COMPENSATING:
        case KEEL__SAGA_STATE__SAGA_COMPENSATED:
            return 0;
        case KEEL__SAGA_STATE__SAGA_COMPLETED:
            why = "the saga has completed";
            break;
        case KEEL__SAGA_STATE__SAGA_STUCK:
            why = "the saga is stuck: resolve it";
            break;
        default:
            if (s_pivot_done (&ctx))
                why = "the pivot step is done: the saga can only go forward";
            break;
        }
    if (why) {
        if (why_p)
            *why_p = why;
        return -1;
    }
    S_STATUS (&ctx)->cancel_requested = true;
    s_turn_back (&ctx, -1);
    s_timeouts (&ctx);
    s_run (&ctx);
    s_finish (&ctx);
    return 0;
}

int
keel_saga_resolve (Keel__SagaRecord *self, bool skip, int64_t now_ms,
                   keel_saga_out_t *out, const char **why_p)
{
    assert (self);
    s_ctx_t ctx;
    s_ctx_init (&ctx, self, now_ms, out);
    const char *why = NULL;
    if (!s_record_ok (self))
        why = "damaged saga record";
    else if (S_STATUS (&ctx)->state != KEEL__SAGA_STATE__SAGA_STUCK)
        why = "the saga is not stuck";
    else if (!s_blocked (&ctx, self->stuck_step))
        why = "damaged saga record";
    if (why) {
        if (why_p)
            *why_p = why;
        return -1;
    }
    int i = self->stuck_step;
    Keel__StepStatus *step = S_STEP (&ctx, i);
    bool compensate = step->state == KEEL__STEP_STATE__STEP_COMPENSATING;
    S_STATUS (&ctx)->state = compensate ? KEEL__SAGA_STATE__SAGA_COMPENSATING
                                        : KEEL__SAGA_STATE__SAGA_RUNNING;
    self->stuck_step = -1;
    if (skip) {
        step->state = KEEL__STEP_STATE__STEP_SKIPPED;
        s_rt_clear (S_RT (&ctx, i));
    } else {
        S_RT (&ctx, i)->budget_base = s_attempts (&ctx, i, compensate);
        S_RT (&ctx, i)->due_ms = now_ms;
    }
    ctx.changed = true;
    s_emit (&ctx, "saga.resolved", i, s_attempts (&ctx, i, compensate), "");
    s_timeouts (&ctx);
    s_run (&ctx);
    s_finish (&ctx);
    return 0;
}
