/*  saga_actor.c - the saga coordinator's shell. See saga_actor.h.

    One thread: a zloop with the pipe, the bus server, the registry
    follower, the breaker mirror, a DEALER per participant endpoint, a
    10 ms tick (due retries and deadlines, --wait timeouts) and a flush.

    Every change of a saga goes the same way:

        machine call (start, result, tick, cancel, resolve)
           -> saga marked dirty; its commands, events and replies queued
           -> flush (next loop turn): one log batch with every dirty saga,
              one commit; then commands sent, events published, replies
              given -- never before the batch is durable.

    A saga lives in memory (s_saga_t) until it has finished and its last
    batch was written; after that its status comes from the log.
*/
#include "saga_actor.h"
#include "breaker.h"
#include "breaker_actor.h"
#include "breaker_mirror.h"
#include "keel_client.h"
#include "keel_config.h"
#include "keel_events.h"
#include "keel_follow.h"
#include "keel_node.h"
#include "keel_server.h"
#include "saga.pb-c.h"
#include "saga_config.h"
#include "saga_log.h"
#include "saga_machine.h"

#include <sodium.h>
#include <string.h>

typedef struct _self_t self_t;

//  A start request waiting for its saga to end (StartRequest.wait).
typedef struct {
    keel_request_t *request; //  deferred
    int64_t deadline_ms;     //  wall clock: answer by then anyway
} s_waiter_t;

//  A saga in memory.
typedef struct {
    Keel__SagaRecord *record; //  its state (the machine's)
    bool dirty;               //  changed since the last batch
    bool persisted;           //  in the log (a batch with it committed)
    bool dropped;             //  never persisted and given up (log error)
    zlistx_t *waiters;        //  s_waiter_t: starts that wait for the end
} s_saga_t;

//  Work queued until the batch that produced it is durable.
typedef struct {
    s_saga_t *saga;
    enum { S_CMD, S_EVENT, S_REPLY } kind;
    keel_saga_cmd_t cmd;     //  S_CMD
    const char *type;        //  S_EVENT: static
    int step;                //  S_EVENT
    uint32_t attempt;        //  S_EVENT
    char *error;             //  S_EVENT: copy
    keel_request_t *request; //  S_REPLY: deferred start
} s_work_t;

//  One step request in flight.
typedef struct {
    self_t *self;
    char *id; //  saga id
    int step;
    bool compensate;
    uint32_t attempt;
    char *service_key;  //  breaker "bus:<service>"
    char *instance_key; //  breaker "bus:<service>/<instance>"
    int64_t started_us; //  for the breaker's slow-call view
} s_call_t;

struct _self_t {
    keel_actor_args_t *args;     //  what the node gave
    const char *name;            //  actor name
    zloop_t *loop;               //  everything runs here
    keel_server_t *server;       //  requests
    keel_publisher_t *publisher; //  events
    keel_saga_log_t *log;        //  durable state
    char *log_error;             //  last write failure, or NULL
    int64_t retry_at_ms;         //  no write again before (monotonic)
    int write_failures;          //  failed writes in a row (backoff)
    zhashx_t *defs;              //  "name@version" -> Keel__SagaDefinition
    zhashx_t *latest;            //  "name" -> (borrowed) latest version
    zhashx_t *sagas;             //  id -> s_saga_t (unfinished, or not
                                 //  yet flushed)
    zhashx_t *keys;              //  idempotency key -> s_saga_t
    zlistx_t *dirty;             //  s_saga_t changed since last batch
    s_work_t *work;              //  queued work
    size_t n_work, cap_work;
    bool flush_scheduled; //  a flush timer is set
    zactor_t *writer;     //  log writer thread, or NULL (inline)
    zlistx_t *parked;     //  s_parked_t: waiting for their service's discovery
    bool writing;         //  a batch is with the writer
    zlistx_t *batch;      //  s_saga_t of the batch being written
    s_work_t *batch_work; //  its work, done once it is durable
    size_t n_batch_work;
    keel_follow_t *follow;         //  participants' instances
    zhashx_t *clients;             //  endpoint -> keel_client_t
    zhashx_t *rr;                  //  service -> round robin counter
    keel_breaker_mirror_t *mirror; //  breakers
    keel_classifier_t classifier;  //  what counts as failure
    uint64_t started;              //  counters
    uint64_t finished;
    uint64_t stuck;
    uint64_t log_failures;
    uint64_t refused;           //  starts refused (log down)
    keel_ratelimit_t log_limit; //  warnings
};

//  First pause before a failed log write is tried again (doubles up to 1 s).
#define S_WRITE_RETRY_MS 10

static void s_schedule_flush (self_t *self);

static int64_t
s_now (void)
{
    return zclock_time (); //  wall clock ms: records outlive the process
}

// ---------------------------------------------------------------------------
//  Sagas in memory

static void
s_waiter_free (void **item)
{
    s_waiter_t *waiter = (s_waiter_t *)*item;
    keel_request_destroy (&waiter->request);
    free (waiter);
    *item = NULL;
}

static s_saga_t *
s_saga_new (Keel__SagaRecord *record)
{
    s_saga_t *saga = (s_saga_t *)zmalloc (sizeof (s_saga_t));
    saga->record = record;
    saga->waiters = zlistx_new ();
    zlistx_set_destructor (saga->waiters, s_waiter_free);
    return saga;
}

static void
s_saga_free (s_saga_t **saga_p)
{
    s_saga_t *saga = *saga_p;
    *saga_p = NULL;
    if (!saga)
        return;
    zlistx_destroy (&saga->waiters);
    keel_saga_record_destroy (&saga->record);
    free (saga);
}

static const char *
s_id (s_saga_t *saga)
{
    return saga->record->status->id;
}

static s_work_t *
s_work_add (self_t *self, s_saga_t *saga, int kind)
{
    if (self->n_work == self->cap_work) {
        size_t cap = self->cap_work ? 2 * self->cap_work : 256;
        s_work_t *work =
            (s_work_t *)realloc (self->work, cap * sizeof (s_work_t));
        if (!work)
            return NULL;
        self->work = work;
        self->cap_work = cap;
    }
    s_work_t *w = &self->work[self->n_work++];
    memset (w, 0, sizeof *w);
    w->saga = saga;
    w->kind = kind;
    return w;
}

//  The machine changed `saga` and said what to do: queue it all.
static void
s_changed (self_t *self, s_saga_t *saga, const keel_saga_out_t *out)
{
    if (!saga->dirty) {
        saga->dirty = true;
        zlistx_add_end (self->dirty, saga);
    }
    for (size_t i = 0; i < out->n_cmds; i++) {
        s_work_t *w = s_work_add (self, saga, S_CMD);
        if (w)
            w->cmd = out->cmds[i];
    }
    for (size_t i = 0; i < out->n_events; i++) {
        s_work_t *w = s_work_add (self, saga, S_EVENT);
        if (!w)
            continue;
        w->type = out->events[i].type;
        w->step = out->events[i].step;
        w->attempt = out->events[i].attempt;
        w->error = strdup (out->events[i].error ? out->events[i].error : "");
        if (streq (w->type, "saga.stuck"))
            self->stuck++;
    }
    s_schedule_flush (self);
}

#define S_OUT(name)                                                            \
    keel_saga_cmd_t name##_cmds[KEEL_SAGA_MAX_STEPS];                          \
    keel_saga_event_t name##_events[KEEL_SAGA_MAX_EVENTS];                     \
    keel_saga_out_t name = {name##_cmds, 0, name##_events, 0}

// ---------------------------------------------------------------------------
//  Status replies

//  The status of a record, without the heavy parts when `brief`.
static void
s_reply_status (self_t *self, keel_request_t *request,
                const Keel__SagaRecord *record)
{
    keel_server_reply (self->server, request, &record->status->base);
}

// ---------------------------------------------------------------------------
//  Sending step requests

static void s_on_step_reply (keel_client_t *client, const keel_reply_t *reply,
                             void *arg);

static void
s_call_free (s_call_t *call)
{
    free (call->id);
    free (call->service_key);
    free (call->instance_key);
    free (call);
}

static bool
s_instance_allowed (self_t *self, const char *service,
                    const Keel__Instance *inst)
{
    char key[512];
    snprintf (key, sizeof key, "bus:%s/%s", service, inst->id);
    keel_breaker_state_t state = keel_breaker_mirror_state (self->mirror, key);
    return state != KEEL_BREAKER_OPEN && state != KEEL_BREAKER_FORCED_OPEN &&
           strncmp (inst->endpoint, "http://", 7) != 0;
}

static keel_client_t *
s_client (self_t *self, const char *endpoint)
{
    keel_client_t *client =
        (keel_client_t *)zhashx_lookup (self->clients, endpoint);
    if (client)
        return client;
    client = keel_client_new (self->name, endpoint, NULL);
    if (!client)
        return NULL;
    keel_client_set_max_msg_size (client, self->args->max_msg_size);
    keel_client_attach (client, self->loop);
    zhashx_insert (self->clients, endpoint, client);
    return client;
}

//  An attempt that could not even be sent fails now (retried per policy).
static void
s_fail_now (self_t *self, s_saga_t *saga, const keel_saga_cmd_t *cmd, int code,
            const char *text)
{
    S_OUT (out);
    if (keel_saga_result (saga->record, cmd->step, cmd->compensate,
                          cmd->attempt, code, keel_errname (code), text, NULL,
                          0, s_now (), &out))
        s_changed (self, saga, &out);
}

//  A command waiting for its service's first discovery.
typedef struct {
    char *id;            //  saga id
    keel_saga_cmd_t cmd; //  what to send
} s_parked_t;

static void
s_parked_free (void **item)
{
    s_parked_t *parked = (s_parked_t *)*item;
    free (parked->id);
    free (parked);
    *item = NULL;
}

static void
s_park (self_t *self, s_saga_t *saga, const keel_saga_cmd_t *cmd)
{
    s_parked_t *parked = (s_parked_t *)zmalloc (sizeof (s_parked_t));
    parked->id = strdup (s_id (saga));
    parked->cmd = *cmd;
    if (!parked->id || !zlistx_add_end (self->parked, parked)) {
        free (parked->id);
        free (parked);
    }
}

static void s_send (self_t *self, s_saga_t *saga, const keel_saga_cmd_t *cmd);

//  Send the parked commands whose service is known now; forget those whose
//  saga moved on (their attempt timed out, or the saga ended).
static void
s_unpark (self_t *self)
{
    size_t count = zlistx_size (self->parked);
    int64_t now = s_now ();
    while (count--) {
        s_parked_t *parked = (s_parked_t *)zlistx_detach (self->parked, NULL);
        if (!parked)
            break;
        s_saga_t *saga = (s_saga_t *)zhashx_lookup (self->sagas, parked->id);
        const Keel__StepRuntime *rt =
            saga && parked->cmd.step >= 0 &&
                    (size_t)parked->cmd.step < saga->record->n_runtime
                ? saga->record->runtime[parked->cmd.step]
                : NULL;
        bool current = rt && rt->inflight == parked->cmd.attempt &&
                       rt->inflight_compensate == parked->cmd.compensate &&
                       parked->cmd.deadline_ms > now;
        if (current)
            s_send (self, saga, &parked->cmd); //  may park it again
        free (parked->id);
        free (parked);
    }
}

static void
s_send (self_t *self, s_saga_t *saga, const keel_saga_cmd_t *cmd)
{
    Keel__SagaRecord *rec = saga->record;
    Keel__SagaDefinition *def = rec->definition;
    if (cmd->step < 0 || (size_t)cmd->step >= def->n_steps)
        return;
    Keel__SagaStep *step = def->steps[cmd->step];
    const char *method = cmd->compensate ? step->compensation : step->action;
    //  Until the registry has answered for this service (just after a
    //  start or a restart), wait for it instead of failing the attempt: it
    //  stays in flight and goes out on a tick (or times out as usual).
    if (!keel_follow_ready (self->follow, step->service)) {
        s_park (self, saga, cmd);
        return;
    }
    //  Pick an instance: round robin among those the breakers allow.
    const Keel__Instance *const *list = NULL;
    size_t n = keel_follow_instances (self->follow, step->service, &list);
    size_t *counter = (size_t *)zhashx_lookup (self->rr, step->service);
    if (!counter) {
        counter = (size_t *)zmalloc (sizeof (size_t));
        zhashx_insert (self->rr, step->service, counter);
    }
    const Keel__Instance *inst = NULL;
    for (size_t i = 0; i < n && !inst; i++) {
        const Keel__Instance *candidate = list[(*counter + i) % n];
        if (s_instance_allowed (self, step->service, candidate))
            inst = candidate;
    }
    (*counter)++;
    if (!inst && n == 0) {
        //  No instance at all (the participant's node is down, or it is
        //  being restarted): the command waits for one until its attempt's
        //  deadline, as before the first discovery, instead of burning its
        //  attempts at once. Perhaps a registration's event was missed: ask
        //  again (at most twice a second).
        keel_follow_refresh (self->follow, step->service, 500);
        s_park (self, saga, cmd);
        return;
    }
    if (!inst) {
        //  Instances, but every breaker refuses: fail the attempt now.
        char text[256];
        snprintf (text, sizeof text, "no healthy instance of %s",
                  step->service);
        s_fail_now (self, saga, cmd, KEEL_ERR_UNAVAILABLE, text);
        return;
    }
    s_call_t *call = (s_call_t *)zmalloc (sizeof (s_call_t));
    call->self = self;
    call->id = strdup (s_id (saga));
    call->step = cmd->step;
    call->compensate = cmd->compensate;
    call->attempt = cmd->attempt;
    call->service_key = zsys_sprintf ("bus:%s", step->service);
    call->instance_key = zsys_sprintf ("bus:%s/%s", step->service, inst->id);
    call->started_us = zclock_usecs ();
    uint64_t wait_us = 0;
    if (!keel_breaker_mirror_acquire (self->mirror, call->service_key,
                                      &wait_us)) {
        s_call_free (call);
        s_fail_now (self, saga, cmd, KEEL_ERR_UNAVAILABLE,
                    "circuit breaker open");
        return;
    }
    keel_breaker_mirror_acquire (self->mirror, call->instance_key, &wait_us);
    keel_client_t *client = s_client (self, inst->endpoint);
    Keel__SagaStepRequest req = KEEL__SAGA_STEP_REQUEST__INIT;
    req.saga_id = (char *)s_id (saga);
    req.definition = def->name;
    req.step = step->name;
    req.compensate = cmd->compensate;
    req.input = rec->status->input;
    if (cmd->compensate)
        req.output = rec->status->steps[cmd->step]->output;
    req.attempt = cmd->attempt;
    char type[256], key[512];
    snprintf (type, sizeof type, "%s.%s", step->service, method);
    snprintf (key, sizeof key, "%s/%s/%s", s_id (saga), step->name,
              cmd->compensate ? "compensate" : "action");
    int64_t left = cmd->deadline_ms - s_now ();
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)(left > 1 ? left : 1),
                             .retries = KEEL_NO_RETRY,
                             .idempotency_key = key};
    if (!client || !keel_client_request (client, type, &req.base, &opts,
                                         s_on_step_reply, call)) {
        keel_breaker_mirror_record (self->mirror, call->service_key,
                                    KEEL_OUTCOME_IGNORED, 0);
        keel_breaker_mirror_record (self->mirror, call->instance_key,
                                    KEEL_OUTCOME_IGNORED, 0);
        s_call_free (call);
        s_fail_now (self, saga, cmd, KEEL_ERR_UNAVAILABLE,
                    "cannot send to the participant");
    }
}

static void
s_on_step_reply (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_call_t *call = (s_call_t *)arg;
    self_t *self = call->self;
    int64_t duration = zclock_usecs () - call->started_us;
    keel_outcome_t outcome = keel_classify_bus (&self->classifier, reply->code);
    keel_breaker_mirror_record (self->mirror, call->service_key, outcome,
                                (uint64_t)(duration > 0 ? duration : 0));
    keel_breaker_mirror_record (self->mirror, call->instance_key, outcome,
                                (uint64_t)(duration > 0 ? duration : 0));
    s_saga_t *saga = (s_saga_t *)zhashx_lookup (self->sagas, call->id);
    if (saga) {
        S_OUT (out);
        if (keel_saga_result (saga->record, call->step, call->compensate,
                              call->attempt, reply->code,
                              keel_errname (reply->code),
                              reply->text ? reply->text : "", reply->data,
                              reply->size, s_now (), &out))
            s_changed (self, saga, &out);
    }
    s_call_free (call);
}

// ---------------------------------------------------------------------------
//  Flush: one batch, then the work it allows

static void
s_publish (self_t *self, s_saga_t *saga, const s_work_t *w)
{
    Keel__SagaRecord *rec = saga->record;
    Keel__SagaEvent ev = KEEL__SAGA_EVENT__INIT;
    ev.id = rec->status->id;
    ev.definition = rec->status->definition;
    ev.state = rec->status->state;
    if (w->step >= 0 && (size_t)w->step < rec->definition->n_steps)
        ev.step = rec->definition->steps[w->step]->name;
    ev.error = w->error ? w->error : "";
    ev.attempt = w->attempt;
    keel_publisher_publish (self->publisher, w->type, &ev.base);
}

//  Answer a saga's waiters (it ended, or got stuck).
static void
s_answer_waiters (self_t *self, s_saga_t *saga)
{
    s_waiter_t *waiter;
    while ((waiter = (s_waiter_t *)zlistx_first (saga->waiters))) {
        s_reply_status (self, waiter->request, saga->record);
        zlistx_delete (saga->waiters, NULL);
    }
}

static void
s_forget (self_t *self, s_saga_t *saga)
{
    const char *key = saga->record->status->idempotency_key;
    if (key && *key && zhashx_lookup (self->keys, key) == saga)
        zhashx_delete (self->keys, key);
    zhashx_delete (self->sagas, s_id (saga));
}

//  A record packed for the log, without its definition: the definition is
//  stored once (saga.define, config) and put back on load by name and
//  version, so each write carries only the saga's own state.
static zframe_t *
s_pack (Keel__SagaRecord *record)
{
    Keel__SagaDefinition *definition = record->definition;
    record->definition = NULL;
    size_t size = keel__saga_record__get_packed_size (record);
    zframe_t *frame = zframe_new (NULL, size);
    if (frame)
        keel__saga_record__pack (record, zframe_data (frame));
    record->definition = definition;
    return frame;
}

//  The log writer: a thread with its own connection to the log file that
//  writes batches of packed records, one transaction each, and answers
//  "OK" or "ERR" + message. The coordinator goes on with the next batch's
//  changes meanwhile (the write and its fsync use the other core).
typedef struct {
    const char *path;
    keel_saga_log_config_t config;
} s_writer_args_t;

static void
s_writer_actor (zsock_t *pipe, void *args)
{
    s_writer_args_t *a = (s_writer_args_t *)args;
    char *error = NULL;
    keel_saga_log_t *log = keel_saga_log_open (a->path, &a->config, &error);
    zsock_signal (pipe, log ? 0 : 1);
    free (error);
    //  Compaction goes a chunk at a time, between batches: a batch waiting
    //  is written first, so deleting old sagas never holds up new ones for
    //  more than one chunk's transaction.
    bool compacting = false;
    int64_t compact_now = 0;
    while (log) {
        if (compacting && !(zsock_events (pipe) & ZMQ_POLLIN)) {
            compacting = keel_saga_log_compact_chunk (log, compact_now) ==
                         KEEL_SAGA_LOG_CHUNK;
            continue;
        }
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            break;
        char *command = zmsg_popstr (msg);
        if (!command || streq (command, "$TERM")) {
            zstr_free (&command);
            zmsg_destroy (&msg);
            break;
        }
        if (streq (command, "COMPACT")) {
            //  Every write goes through this connection: no two writers
            //  wait on each other's lock.
            char *now = zmsg_popstr (msg);
            compacting = true;
            compact_now = now ? atoll (now) : 0;
            zstr_free (&now);
            zstr_free (&command);
            zmsg_destroy (&msg);
            continue;
        }
        int rc = keel_saga_log_begin (log);
        for (zframe_t *frame = zmsg_first (msg); frame && rc == 0;
             frame = zmsg_next (msg)) {
            Keel__SagaRecord *record = keel__saga_record__unpack (
                NULL, zframe_size (frame), zframe_data (frame));
            rc = record ? keel_saga_log_put (log, record) : -1;
            if (record)
                keel__saga_record__free_unpacked (record, NULL);
        }
        if (rc == 0)
            rc = keel_saga_log_commit (log);
        else
            keel_saga_log_rollback (log);
        zsock_send (pipe, "ss", rc == 0 ? "OK" : "ERR",
                    rc == 0 ? "" : keel_saga_log_error (log));
        zstr_free (&command);
        zmsg_destroy (&msg);
    }
    keel_saga_log_close (&log);
}

//  A batch ended: written (error NULL) or not. Do its work, or undo what
//  cannot stand.
static void
s_batch_done (self_t *self, const char *error)
{
    zlistx_t *batch = self->batch;
    s_work_t *work = self->batch_work;
    size_t n_work = self->n_batch_work;
    self->batch = NULL;
    self->batch_work = NULL;
    self->n_batch_work = 0;
    self->writing = false;
    if (error) {
        //  Nothing of this batch is durable: do none of its work. Sagas
        //  never written are given up (their starts answered UNAVAILABLE);
        //  the others are written again (with their work) on the next tick.
        self->log_failures++;
        //  Written again after a pause that doubles with each failure in a
        //  row (10 ms .. 1 s): a full disk is not hammered, and the loop
        //  stays free for replies and requests meanwhile.
        int shift = self->write_failures < 7 ? self->write_failures : 7;
        int64_t pause = (int64_t)S_WRITE_RETRY_MS << shift;
        self->retry_at_ms = zclock_mono () + (pause < 1000 ? pause : 1000);
        self->write_failures++;
        free (self->log_error);
        self->log_error = strdup (error);
        keel_log_limited (&self->log_limit, keel_now_ms (),
                          "%s: saga log write failed: %s", self->name,
                          self->log_error);
        for (s_saga_t *saga = (s_saga_t *)zlistx_first (batch); saga;
             saga = (s_saga_t *)zlistx_next (batch))
            if (!saga->persisted && !saga->dropped) {
                saga->dropped = true;
                s_forget (self, saga);
            }
        //  The kept work goes before whatever came since.
        //  Work queued since for a saga given up goes too (the saga is
        //  freed below).
        size_t n_all = n_work + self->n_work;
        s_work_t *merged = (s_work_t *)malloc ((n_all + 1) * sizeof (s_work_t));
        size_t kept = 0;
        for (size_t i = 0; i < n_all; i++) {
            s_work_t *w = i < n_work ? &work[i] : &self->work[i - n_work];
            if (!w->saga->dropped && merged) {
                merged[kept++] = *w;
                continue;
            }
            if (w->kind == S_REPLY) {
                keel_server_reply_error (
                    self->server, w->request, KEEL_ERR_UNAVAILABLE,
                    "saga log cannot be written: %s", self->log_error);
                keel_request_destroy (&w->request);
            }
            free (w->error);
        }
        free (self->work);
        self->work = merged;
        self->n_work = self->cap_work = merged ? kept : 0;
        free (work);
        for (s_saga_t *saga = (s_saga_t *)zlistx_first (batch); saga;
             saga = (s_saga_t *)zlistx_next (batch)) {
            if (saga->dropped) {
                if (saga->dirty) {
                    void *handle = zlistx_find (self->dirty, saga);
                    if (handle)
                        zlistx_delete (self->dirty, handle);
                }
                s_waiter_t *waiter;
                while ((waiter = (s_waiter_t *)zlistx_first (saga->waiters))) {
                    keel_server_reply_error (
                        self->server, waiter->request, KEEL_ERR_UNAVAILABLE,
                        "saga log cannot be written: %s", self->log_error);
                    zlistx_delete (saga->waiters, NULL);
                }
                s_saga_free (&saga);
            } else if (!saga->dirty) {
                saga->dirty = true;
                zlistx_add_end (self->dirty, saga);
            }
        }
        zlistx_destroy (&batch);
        return;
    }
    //  Durable: mark, then do the work, in order.
    zstr_free (&self->log_error);
    self->write_failures = 0;
    for (s_saga_t *saga = (s_saga_t *)zlistx_first (batch); saga;
         saga = (s_saga_t *)zlistx_next (batch))
        saga->persisted = true;
    for (size_t i = 0; i < n_work; i++) {
        s_work_t *w = &work[i];
        if (w->kind == S_CMD && !keel_saga_finished (w->saga->record))
            s_send (self, w->saga, &w->cmd);
        else if (w->kind == S_EVENT)
            s_publish (self, w->saga, w);
        else if (w->kind == S_REPLY) {
            s_reply_status (self, w->request, w->saga->record);
            keel_request_destroy (&w->request);
        }
        free (w->error);
    }
    free (work);
    //  Sagas that ended (or got stuck) answer their waiters; finished ones
    //  leave memory unless changed again meanwhile.
    for (s_saga_t *saga = (s_saga_t *)zlistx_first (batch); saga;
         saga = (s_saga_t *)zlistx_next (batch)) {
        int state = saga->record->status->state;
        if (keel_saga_finished (saga->record) ||
            state == KEEL__SAGA_STATE__SAGA_STUCK)
            s_answer_waiters (self, saga);
        if (keel_saga_finished (saga->record) && !saga->dirty) {
            self->finished++;
            s_forget (self, saga);
            s_saga_free (&saga);
        }
    }
    zlistx_destroy (&batch);
}

//  Write what changed since the last batch (one batch at a time: while
//  one is being written, changes gather for the next).
static int
s_flush (self_t *self)
{
    if (self->writing)
        return 0;
    if (zlistx_size (self->dirty) == 0 && self->n_work == 0)
        return 0;
    if (self->log_error && zclock_mono () < self->retry_at_ms)
        return 0; //  the tick writes again when the pause is over
    self->batch = self->dirty;
    self->dirty = zlistx_new ();
    self->batch_work = self->work;
    self->n_batch_work = self->n_work;
    self->work = NULL;
    self->n_work = self->cap_work = 0;
    for (s_saga_t *saga = (s_saga_t *)zlistx_first (self->batch); saga;
         saga = (s_saga_t *)zlistx_next (self->batch))
        saga->dirty = false;
    if (self->writer) {
        zmsg_t *msg = zmsg_new ();
        zmsg_addstr (msg, "BATCH");
        bool ok = true;
        for (s_saga_t *saga = (s_saga_t *)zlistx_first (self->batch);
             saga && ok; saga = (s_saga_t *)zlistx_next (self->batch)) {
            zframe_t *frame = s_pack (saga->record);
            ok = frame && zmsg_append (msg, &frame) == 0;
        }
        if (ok && zmsg_send (&msg, self->writer) == 0) {
            self->writing = true;
            return 0;
        }
        zmsg_destroy (&msg);
        s_batch_done (self, "cannot hand the batch to the log writer");
        return -1;
    }
    //  No writer (a log in memory): write here.
    int rc = keel_saga_log_begin (self->log);
    for (s_saga_t *saga = (s_saga_t *)zlistx_first (self->batch);
         saga && rc == 0; saga = (s_saga_t *)zlistx_next (self->batch)) {
        Keel__SagaDefinition *definition = saga->record->definition;
        saga->record->definition = NULL;
        rc = keel_saga_log_put (self->log, saga->record);
        saga->record->definition = definition;
    }
    if (rc == 0)
        rc = keel_saga_log_commit (self->log);
    else
        keel_saga_log_rollback (self->log);
    s_batch_done (self, rc == 0 ? NULL : keel_saga_log_error (self->log));
    return rc;
}

//  The writer answered the batch in flight.
static int
s_on_writer (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    self_t *self = (self_t *)arg;
    char *status = NULL, *message = NULL;
    if (zsock_recv (sock, "ss", &status, &message) == -1)
        return -1;
    if (self->writing)
        s_batch_done (self, status && streq (status, "OK") ? NULL
                            : message                      ? message
                                      : "log writer failed");
    zstr_free (&status);
    zstr_free (&message);
    //  Changes that gathered meanwhile go next.
    s_flush (self);
    return 0;
}

static int
s_on_flush (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    self->flush_scheduled = false;
    s_flush (self);
    return 0;
}

static void
s_schedule_flush (self_t *self)
{
    if (self->flush_scheduled)
        return;
    self->flush_scheduled = true;
    zloop_timer (self->loop, 0, 1, s_on_flush, self);
}

// ---------------------------------------------------------------------------
//  Tick: deadlines, retries, waiters, failed writes

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    if (zlistx_size (self->parked))
        s_unpark (self);
    int64_t now = s_now ();
    s_saga_t *saga = (s_saga_t *)zhashx_first (self->sagas);
    for (; saga; saga = (s_saga_t *)zhashx_next (self->sagas)) {
        if (saga->record->wake_ms && saga->record->wake_ms <= now) {
            S_OUT (out);
            if (keel_saga_advance (saga->record, now, &out))
                s_changed (self, saga, &out);
        }
        //  Waiters whose time is up get the status as it stands.
        s_waiter_t *waiter = (s_waiter_t *)zlistx_first (saga->waiters);
        while (waiter) {
            //  (Not before its start is durable: see s_handle_start.)
            if (waiter->deadline_ms <= now && saga->persisted) {
                s_reply_status (self, waiter->request, saga->record);
                zlistx_delete (saga->waiters, zlistx_cursor (saga->waiters));
                waiter = (s_waiter_t *)zlistx_first (saga->waiters);
                continue;
            }
            waiter = (s_waiter_t *)zlistx_next (saga->waiters);
        }
    }
    if (self->log_error && zlistx_size (self->dirty))
        s_schedule_flush (self); //  s_flush waits out the pause itself
    else if (self->log_error && !self->writing && self->n_work == 0)
        //  Nothing is left to write again, so no write would ever clear the
        //  error and starts would be refused for good: let the next start
        //  try the log (if it still fails, that start is answered
        //  UNAVAILABLE with the log's error).
        zstr_free (&self->log_error);
    return 0;
}

static int
s_on_compact (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    if (self->writer) {
        zstr_sendm (self->writer, "COMPACT");
        zstr_sendf (self->writer, "%" PRId64, s_now ());
    } else
        keel_saga_log_compact (self->log, s_now ());
    return 0;
}

// ---------------------------------------------------------------------------
//  Definitions

static void
s_def_free (void **item)
{
    Keel__SagaDefinition *def = (Keel__SagaDefinition *)*item;
    keel__saga_definition__free_unpacked (def, NULL);
    *item = NULL;
}

//  Take a checked definition (owned) into the maps. Returns the stored one.
static Keel__SagaDefinition *
s_def_add (self_t *self, Keel__SagaDefinition *def)
{
    char key[160];
    snprintf (key, sizeof key, "%s@%u", def->name, def->version);
    zhashx_delete (self->defs, key);
    zhashx_insert (self->defs, key, def);
    Keel__SagaDefinition *latest =
        (Keel__SagaDefinition *)zhashx_lookup (self->latest, def->name);
    if (!latest || latest == def || latest->version <= def->version)
        zhashx_update (self->latest, def->name, def);
    //  Find its participants now, not at its first saga.
    if (self->follow)
        for (size_t i = 0; i < def->n_steps; i++)
            keel_follow_watch (self->follow, def->steps[i]->service);
    return def;
}

//  A deep, malloc-owned copy.
static Keel__SagaDefinition *
s_def_copy (const Keel__SagaDefinition *def)
{
    size_t size = keel__saga_definition__get_packed_size (def);
    uint8_t *buf = (uint8_t *)malloc (size ? size : 1);
    if (!buf)
        return NULL;
    keel__saga_definition__pack (def, buf);
    Keel__SagaDefinition *copy =
        keel__saga_definition__unpack (NULL, size, buf);
    free (buf);
    return copy;
}

static bool
s_def_same (const Keel__SagaDefinition *a, const Keel__SagaDefinition *b)
{
    size_t sa = keel__saga_definition__get_packed_size (a);
    size_t sb = keel__saga_definition__get_packed_size (b);
    if (sa != sb)
        return false;
    uint8_t *pa = (uint8_t *)malloc (sa + 1), *pb = (uint8_t *)malloc (sb + 1);
    bool same = pa && pb;
    if (same) {
        keel__saga_definition__pack (a, pa);
        keel__saga_definition__pack (b, pb);
        same = memcmp (pa, pb, sa) == 0;
    }
    free (pa);
    free (pb);
    return same;
}

static int
s_on_stored_def (const Keel__SagaDefinition *def, void *arg)
{
    self_t *self = (self_t *)arg;
    char key[160];
    snprintf (key, sizeof key, "%s@%u", def->name, def->version);
    if (zhashx_lookup (self->defs, key))
        return 0; //  config's own wins
    Keel__SagaDefinition *copy = s_def_copy (def);
    if (copy && keel_saga_def_check (copy) == NULL)
        s_def_add (self, copy);
    else if (copy)
        keel__saga_definition__free_unpacked (copy, NULL);
    return 0;
}

static int
s_handle_define (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__SagaDefinition *def = (Keel__SagaDefinition *)keel_request_payload (
        request, &keel__saga_definition__descriptor);
    if (!def)
        return KEEL_ERR_BAD_REQUEST;
    Keel__SagaDefinition *copy = s_def_copy (def);
    if (!copy)
        return KEEL_ERR_INTERNAL;
    const char *why = keel_saga_def_check (copy);
    if (why || keel_saga_def_defaults (copy) == -1) {
        keel__saga_definition__free_unpacked (copy, NULL);
        keel_server_reply_error (server, request, KEEL_ERR_INVALID_ARGUMENT,
                                 "%s", why ? why : "out of memory");
        return KEEL_OK;
    }
    char key[160];
    snprintf (key, sizeof key, "%s@%u", copy->name, copy->version);
    Keel__SagaDefinition *old =
        (Keel__SagaDefinition *)zhashx_lookup (self->defs, key);
    if (old && !s_def_same (old, copy)) {
        keel__saga_definition__free_unpacked (copy, NULL);
        keel_server_reply_error (server, request, KEEL_ERR_CONFLICT,
                                 "saga %s version %u exists with other steps",
                                 old->name, old->version);
        return KEEL_OK;
    }
    if (old) {
        keel__saga_definition__free_unpacked (copy, NULL);
        keel_server_reply (server, request, &old->base);
        return KEEL_OK;
    }
    if (keel_saga_log_put_definition (self->log, copy) == -1) {
        keel_server_reply_error (server, request, KEEL_ERR_UNAVAILABLE,
                                 "saga log cannot be written: %s",
                                 keel_saga_log_error (self->log));
        keel__saga_definition__free_unpacked (copy, NULL);
        return KEEL_OK;
    }
    s_def_add (self, copy);
    keel_server_reply (server, request, &copy->base);
    return KEEL_OK;
}

static int
s_handle_definitions (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    size_t n = zhashx_size (self->latest);
    Keel__SagaDefinition **list =
        (Keel__SagaDefinition **)calloc (n ? n : 1, sizeof (void *));
    if (!list)
        return KEEL_ERR_INTERNAL;
    size_t i = 0;
    for (void *d = zhashx_first (self->latest); d && i < n;
         d = zhashx_next (self->latest))
        list[i++] = (Keel__SagaDefinition *)d;
    Keel__DefinitionList reply = KEEL__DEFINITION_LIST__INIT;
    reply.n_definitions = i;
    reply.definitions = list;
    keel_server_reply (server, request, &reply.base);
    free (list);
    return KEEL_OK;
}

// ---------------------------------------------------------------------------
//  Commands

static int
s_handle_start (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__StartRequest *req = (Keel__StartRequest *)keel_request_payload (
        request, &keel__start_request__descriptor);
    if (!req)
        return KEEL_ERR_BAD_REQUEST;
    //  The same key: the same saga.
    if (*req->idempotency_key) {
        s_saga_t *saga =
            (s_saga_t *)zhashx_lookup (self->keys, req->idempotency_key);
        if (saga && !saga->dropped) {
            if (req->wait && !keel_saga_finished (saga->record)) {
                keel_request_t *deferred = keel_server_defer (server, request);
                if (!deferred) {
                    //  Out of memory: answer now with the status so far.
                    s_reply_status (self, request, saga->record);
                    return KEEL_OK;
                }
                s_waiter_t *waiter = (s_waiter_t *)zmalloc (sizeof *waiter);
                waiter->request = deferred;
                waiter->deadline_ms =
                    s_now () + (req->wait_ms ? req->wait_ms : 30000);
                zlistx_add_end (saga->waiters, waiter);
                return KEEL_OK;
            }
            if (!saga->persisted) {
                //  Its start is not durable yet: answer once it is (a
                //  crash before then must not leave the caller an id the
                //  log never had).
                keel_request_t *deferred = keel_server_defer (server, request);
                s_work_t *w =
                    deferred ? s_work_add (self, saga, S_REPLY) : NULL;
                if (w)
                    w->request = deferred;
                else {
                    keel_request_destroy (&deferred);
                    keel_server_reply_error (server, request,
                                             KEEL_ERR_UNAVAILABLE,
                                             "saga not durable yet; try again");
                }
                return KEEL_OK;
            }
            s_reply_status (self, request, saga->record);
            return KEEL_OK;
        }
        char *id = keel_saga_log_find_key (self->log, req->idempotency_key);
        if (id) {
            Keel__SagaRecord *rec = keel_saga_log_get (self->log, id);
            free (id);
            if (rec) {
                s_reply_status (self, request, rec);
                keel_saga_record_destroy (&rec);
                return KEEL_OK;
            }
        }
    }
    if (self->log_error) {
        self->refused++;
        keel_server_reply_error (server, request, KEEL_ERR_UNAVAILABLE,
                                 "saga log cannot be written: %s",
                                 self->log_error);
        return KEEL_OK;
    }
    Keel__SagaDefinition *def = NULL;
    if (req->version) {
        char key[160];
        snprintf (key, sizeof key, "%s@%u", req->definition, req->version);
        def = (Keel__SagaDefinition *)zhashx_lookup (self->defs, key);
    } else
        def = (Keel__SagaDefinition *)zhashx_lookup (self->latest,
                                                     req->definition);
    if (!def) {
        keel_server_reply_error (server, request, KEEL_ERR_NOT_FOUND,
                                 "no saga definition '%s'%s", req->definition,
                                 req->version ? " of that version" : "");
        return KEEL_OK;
    }
    //  Participants are found in the registry.
    for (size_t i = 0; i < def->n_steps; i++)
        keel_follow_watch (self->follow, def->steps[i]->service);
    //  Ids sort by creation (12 hex digits of wall-clock ms, then 8
    //  random): the log's indexes then grow at one end, which keeps its
    //  writes on a few hot pages instead of all over the file.
    uint32_t random = randombytes_random ();
    char id[32];
    snprintf (id, sizeof id, "%012llx%08x",
              (unsigned long long)(s_now () & 0xFFFFFFFFFFFFULL), random);
    S_OUT (out);
    Keel__SagaRecord *record = keel_saga_record_new (
        def, id, req->input.data, req->input.len,
        *req->idempotency_key ? req->idempotency_key : NULL, s_now (), &out);
    if (!record)
        return KEEL_ERR_INTERNAL;
    s_saga_t *saga = s_saga_new (record);
    zhashx_insert (self->sagas, id, saga);
    if (*req->idempotency_key)
        zhashx_insert (self->keys, req->idempotency_key, saga);
    self->started++;
    s_changed (self, saga, &out);
    keel_request_t *deferred = keel_server_defer (server, request);
    if (!deferred)
        return KEEL_OK; //  the saga runs; the caller will ask its status
    if (req->wait) {
        s_waiter_t *waiter = (s_waiter_t *)zmalloc (sizeof *waiter);
        waiter->request = deferred;
        int64_t wait = req->wait_ms ? req->wait_ms : 0;
        int64_t deadline = keel_request_deadline (request);
        if (!wait && deadline)
            wait = deadline - keel_now_ms () - 50;
        waiter->deadline_ms = s_now () + (wait > 0 ? wait : 30000);
        zlistx_add_end (saga->waiters, waiter);
    } else {
        s_work_t *w = s_work_add (self, saga, S_REPLY);
        if (w)
            w->request = deferred;
        else
            keel_request_destroy (&deferred);
    }
    return KEEL_OK;
}

//  The saga `id` in memory, or NULL (then *record_p gets it from the log,
//  caller destroys, or NULL if unknown).
static s_saga_t *
s_find (self_t *self, const char *id, Keel__SagaRecord **record_p)
{
    *record_p = NULL;
    s_saga_t *saga = (s_saga_t *)zhashx_lookup (self->sagas, id);
    if (saga && !saga->dropped)
        return saga;
    *record_p = keel_saga_log_get (self->log, id);
    return NULL;
}

static int
s_handle_status (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__SagaRef *ref = (Keel__SagaRef *)keel_request_payload (
        request, &keel__saga_ref__descriptor);
    if (!ref)
        return KEEL_ERR_BAD_REQUEST;
    Keel__SagaRecord *stored = NULL;
    s_saga_t *saga = s_find (self, ref->id, &stored);
    if (saga)
        s_reply_status (self, request, saga->record);
    else if (stored) {
        s_reply_status (self, request, stored);
        keel_saga_record_destroy (&stored);
    } else
        keel_server_reply_error (server, request, KEEL_ERR_NOT_FOUND,
                                 "no saga '%s'", ref->id);
    return KEEL_OK;
}

//  cancel and resolve: change a saga in memory (finished ones cannot be).
static int
s_handle_change (keel_server_t *server, keel_request_t *request, void *arg,
                 bool resolve)
{
    self_t *self = (self_t *)arg;
    const char *id = NULL;
    bool skip = false;
    if (resolve) {
        Keel__ResolveRequest *req =
            (Keel__ResolveRequest *)keel_request_payload (
                request, &keel__resolve_request__descriptor);
        if (!req)
            return KEEL_ERR_BAD_REQUEST;
        id = req->id;
        skip = req->action == KEEL__RESOLVE_REQUEST__ACTION__SKIP;
    } else {
        Keel__SagaRef *ref = (Keel__SagaRef *)keel_request_payload (
            request, &keel__saga_ref__descriptor);
        if (!ref)
            return KEEL_ERR_BAD_REQUEST;
        id = ref->id;
    }
    Keel__SagaRecord *stored = NULL;
    s_saga_t *saga = s_find (self, id, &stored);
    if (!saga) {
        if (stored) {
            int state = stored->status->state;
            keel_saga_record_destroy (&stored);
            //  Cancelling a compensated saga: nothing to do.
            if (!resolve && state == KEEL__SAGA_STATE__SAGA_COMPENSATED) {
                stored = keel_saga_log_get (self->log, id);
                if (stored) {
                    s_reply_status (self, request, stored);
                    keel_saga_record_destroy (&stored);
                    return KEEL_OK;
                }
            }
            keel_server_reply_error (server, request, KEEL_ERR_CONFLICT,
                                     "saga '%s' has finished", id);
        } else
            keel_server_reply_error (server, request, KEEL_ERR_NOT_FOUND,
                                     "no saga '%s'", id);
        return KEEL_OK;
    }
    S_OUT (out);
    const char *why = NULL;
    int rc = resolve
                 ? keel_saga_resolve (saga->record, skip, s_now (), &out, &why)
                 : keel_saga_cancel (saga->record, s_now (), &out, &why);
    if (rc == -1) {
        keel_server_reply_error (server, request, KEEL_ERR_CONFLICT, "%s",
                                 why ? why : "not now");
        return KEEL_OK;
    }
    s_changed (self, saga, &out);
    keel_request_t *deferred = keel_server_defer (server, request);
    s_work_t *w = deferred ? s_work_add (self, saga, S_REPLY) : NULL;
    if (w)
        w->request = deferred;
    else
        keel_request_destroy (&deferred);
    return KEEL_OK;
}

static int
s_handle_cancel (keel_server_t *server, keel_request_t *request, void *arg)
{
    return s_handle_change (server, request, arg, false);
}

static int
s_handle_resolve (keel_server_t *server, keel_request_t *request, void *arg)
{
    return s_handle_change (server, request, arg, true);
}

typedef struct {
    Keel__SagaStatus **items;
    Keel__SagaRecord **records;
    size_t n, cap;
} s_list_t;

static int
s_on_listed (Keel__SagaRecord *record, void *arg)
{
    s_list_t *list = (s_list_t *)arg;
    if (list->n == list->cap) {
        keel_saga_record_destroy (&record);
        return 0;
    }
    list->records[list->n] = record;
    list->items[list->n++] = record->status;
    return 0;
}

static int
s_handle_list (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__ListSagasRequest *req =
        (Keel__ListSagasRequest *)keel_request_payload (
            request, &keel__list_sagas_request__descriptor);
    if (!req)
        return KEEL_ERR_BAD_REQUEST;
    size_t limit = req->limit ? req->limit : 100;
    if (limit > 1000)
        limit = 1000;
    //  What is in memory and not written yet shows up after the next
    //  flush (the next loop turn): write it now so the list is current.
    s_flush (self);
    s_list_t list = {0};
    list.cap = limit;
    list.items = (Keel__SagaStatus **)calloc (limit, sizeof (void *));
    list.records = (Keel__SagaRecord **)calloc (limit, sizeof (void *));
    if (!list.items || !list.records) {
        free (list.items);
        free (list.records);
        return KEEL_ERR_INTERNAL;
    }
    int rc =
        keel_saga_log_list (self->log, req->any_state ? -1 : (int)req->state,
                            limit, s_on_listed, &list);
    if (rc == -1)
        keel_server_reply_error (server, request, KEEL_ERR_UNAVAILABLE,
                                 "saga log cannot be read: %s",
                                 keel_saga_log_error (self->log));
    else {
        //  Leave the heavy parts out.
        for (size_t i = 0; i < list.n; i++) {
            list.items[i]->input.len = 0;
            for (size_t s = 0; s < list.items[i]->n_steps; s++)
                list.items[i]->steps[s]->output.len = 0;
        }
        Keel__SagaList reply = KEEL__SAGA_LIST__INIT;
        reply.n_sagas = list.n;
        reply.sagas = list.items;
        keel_server_reply (server, request, &reply.base);
    }
    for (size_t i = 0; i < list.n; i++)
        keel_saga_record_destroy (&list.records[i]);
    free (list.items);
    free (list.records);
    return KEEL_OK;
}

// ---------------------------------------------------------------------------
//  Set-up

//  keel.stats: after the server's counters, the coordinator's own.
static size_t
s_stats (void *arg, keel_stat_t *rows, size_t max)
{
    self_t *self = (self_t *)arg;
    const keel_stat_t mine[] = {
        {"sagas_started", self->started},
        {"sagas_finished", self->finished},
        {"sagas_stuck", self->stuck},
        {"sagas_in_memory", zhashx_size (self->sagas)},
        {"sagas_parked", zlistx_size (self->parked)},
        {"starts_refused", self->refused},
        {"log_write_failures", self->log_failures},
    };
    return keel_stats_fill (rows, max, mine, sizeof mine / sizeof mine[0]);
}

static int
s_on_unfinished (Keel__SagaRecord *record, void *arg)
{
    self_t *self = (self_t *)arg;
    //  The log keeps records without their definition: put it back.
    if (!record->definition) {
        char key[160];
        snprintf (key, sizeof key, "%s@%u", record->status->definition,
                  record->status->version);
        Keel__SagaDefinition *def =
            (Keel__SagaDefinition *)zhashx_lookup (self->defs, key);
        record->definition = def ? s_def_copy (def) : NULL;
        if (!record->definition) {
            zsys_error ("%s: saga %s: its definition %s is unknown; it "
                        "cannot resume",
                        self->name, record->status->id, key);
            keel_saga_record_destroy (&record);
            return 0;
        }
    }
    s_saga_t *saga = s_saga_new (record);
    saga->persisted = true;
    zhashx_insert (self->sagas, s_id (saga), saga);
    const char *key = record->status->idempotency_key;
    if (key && *key)
        zhashx_insert (self->keys, key, saga);
    for (size_t i = 0; i < record->definition->n_steps; i++)
        keel_follow_watch (self->follow, record->definition->steps[i]->service);
    return 0;
}

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_client_destructor (void **item)
{
    keel_client_t *client = (keel_client_t *)*item;
    keel_client_destroy (&client);
    *item = NULL;
}

static const char *
s_self_init (self_t *self)
{
    keel_actor_args_t *args = self->args;
    keel_config_t *config = args->config;
    static const char *keys[] = {"bind",       "log",      "sync",
                                 "retention",  "registry", "breaker",
                                 "definition", NULL};
    char path[160];
#define S_PATH(key)                                                            \
    (snprintf (path, sizeof path, "%s/%s", self->name, key), path)
    if (keel_config_check_keys (config, self->name, keys) == -1)
        return keel_config_error (config);
    const char *log_path, *sync, *registry_name, *breaker_name;
    int64_t retention;
    if (keel_config_string (config, S_PATH ("log"), "keel-saga.db",
                            &log_path) == -1 ||
        keel_config_string (config, S_PATH ("sync"), "full", &sync) == -1 ||
        keel_config_duration_ms (config, S_PATH ("retention"), 86400000,
                                 &retention) == -1 ||
        keel_config_string (config, S_PATH ("registry"), "registry",
                            &registry_name) == -1 ||
        keel_config_string (config, S_PATH ("breaker"), "breaker",
                            &breaker_name) == -1)
        return keel_config_error (config);
    if (!streq (sync, "full") && !streq (sync, "normal")) {
        keel_config_fail (config, S_PATH ("sync"), "expected full or normal");
        return keel_config_error (config);
    }
    Keel__SagaDefinition **defs = NULL;
    int n_defs = keel_saga_config_load (config, self->name, &defs);
    if (n_defs == -1)
        return keel_config_error (config);

    self->defs = zhashx_new ();
    self->latest = zhashx_new ();
    self->sagas = zhashx_new ();
    self->keys = zhashx_new ();
    self->dirty = zlistx_new ();
    self->parked = zlistx_new ();
    self->clients = zhashx_new ();
    self->rr = zhashx_new ();
    self->loop = zloop_new ();
    self->server = keel_server_new (self->name);
    self->publisher = keel_publisher_new (self->name);
    if (!self->defs || !self->latest || !self->sagas || !self->keys ||
        !self->dirty || !self->parked || !self->clients || !self->rr ||
        !self->loop || !self->server || !self->publisher) {
        for (int i = 0; i < n_defs; i++)
            keel__saga_definition__free_unpacked (defs[i], NULL);
        free (defs);
        return "out of memory";
    }
    zhashx_set_destructor (self->defs, s_def_free);
    zhashx_set_destructor (self->clients, s_client_destructor);
    zlistx_set_destructor (self->parked, s_parked_free);
    zhashx_set_destructor (self->rr, s_free_item);
    keel_classifier_default (&self->classifier);

    //  The log; config definitions go in it (and win over stored ones).
    keel_saga_log_config_t lc = {streq (sync, "normal"), retention};
    char *error = NULL;
    self->log = keel_saga_log_open (log_path, &lc, &error);
    if (!self->log) {
        keel_config_fail (config, S_PATH ("log"), "%s", error);
        free (error);
        for (int i = 0; i < n_defs; i++)
            keel__saga_definition__free_unpacked (defs[i], NULL);
        free (defs);
        return keel_config_error (config);
    }
    //  Batches are written by a thread of their own (a file log only: a
    //  log in memory is one connection's).
    if (!streq (log_path, ":memory:") &&
        strncmp (log_path, "file::memory:", 13)) {
        static s_writer_args_t writer_args;
        writer_args.path = log_path;
        writer_args.config = lc;
        self->writer = zactor_new (s_writer_actor, &writer_args);
        if (!self->writer)
            return "cannot start the log writer";
        zloop_reader (self->loop, (zsock_t *)self->writer, s_on_writer, self);
    }
    for (int i = 0; i < n_defs; i++) {
        keel_saga_log_put_definition (self->log, defs[i]);
        s_def_add (self, defs[i]);
    }
    free (defs);
    keel_saga_log_each_definition (self->log, s_on_stored_def, self);

    //  Participants: registry and breakers.
    const char *r_ep =
        *registry_name
            ? keel_directory_endpoint (args->directory, registry_name)
            : NULL;
    if (!r_ep)
        return "no registry in the directory: participants cannot be found";
    self->follow = keel_follow_new (
        self->name, r_ep, registry_name,
        keel_directory_events (args->directory, registry_name));
    if (!self->follow || keel_follow_attach (self->follow, self->loop) == -1)
        return "cannot follow the registry";
    for (Keel__SagaDefinition *def =
             (Keel__SagaDefinition *)zhashx_first (self->defs);
         def; def = (Keel__SagaDefinition *)zhashx_next (self->defs))
        for (size_t i = 0; i < def->n_steps; i++)
            keel_follow_watch (self->follow, def->steps[i]->service);
    keel_breaker_config_t bc;
    keel_breaker_config_default (&bc);
    const char *b_ep =
        *breaker_name ? keel_directory_endpoint (args->directory, breaker_name)
                      : NULL;
    self->mirror = keel_breaker_mirror_new (
        self->name, b_ep, breaker_name,
        b_ep ? keel_directory_events (args->directory, breaker_name) : NULL,
        &bc);
    if (!self->mirror || keel_breaker_mirror_attach (self->mirror, self->loop))
        return "cannot start its breaker mirror";

    //  Unfinished sagas resume.
    if (keel_saga_log_each_unfinished (self->log, s_on_unfinished, self) ==
        -1) {
        keel_config_fail (config, S_PATH ("log"), "cannot read: %s",
                          keel_saga_log_error (self->log));
        return keel_config_error (config);
    }

    if (keel_actor_bind (args, self->server, self->publisher) == -1)
        return "cannot bind its endpoints";
    keel_server_set_stats_fn (self->server, s_stats, self);
    keel_server_on (self->server, "saga.define", s_handle_define, self);
    keel_server_on (self->server, "saga.definitions", s_handle_definitions,
                    self);
    keel_server_on (self->server, "saga.start", s_handle_start, self);
    keel_server_on (self->server, "saga.status", s_handle_status, self);
    keel_server_on (self->server, "saga.list", s_handle_list, self);
    keel_server_on (self->server, "saga.cancel", s_handle_cancel, self);
    keel_server_on (self->server, "saga.resolve", s_handle_resolve, self);
    zloop_reader (self->loop, keel_server_sock (self->server),
                  keel_server_reader, self->server);
    zloop_timer (self->loop, 10, 0, s_on_tick, self);
    //  Often, so each round has little to delete.
    zloop_timer (self->loop, 5000, 0, s_on_compact, self);
    zloop_set_nonstop (self->loop, true);
    return NULL;
#undef S_PATH
}

static void
s_self_destroy (self_t *self)
{
    //  What is not written yet is written now if it can be: wait for the
    //  batch with the writer, then write the rest.
    for (int round = 0; round < 3 && self->log; round++) {
        if (self->writing && self->writer) {
            zsock_set_rcvtimeo (self->writer, 5000);
            if (s_on_writer (self->loop, (zsock_t *)self->writer, self) == -1)
                break;
        } else if (!self->writing)
            s_flush (self);
        if (!self->writing && zlistx_size (self->dirty) == 0 &&
            self->n_work == 0)
            break;
    }
    if (self->writing && self->batch) {
        //  The writer did not answer: drop the batch's work.
        for (size_t i = 0; i < self->n_batch_work; i++) {
            keel_request_destroy (&self->batch_work[i].request);
            free (self->batch_work[i].error);
        }
        free (self->batch_work);
        zlistx_destroy (&self->batch);
    }
    zactor_destroy (&self->writer);
    for (size_t i = 0; i < self->n_work; i++) {
        keel_request_destroy (&self->work[i].request);
        free (self->work[i].error);
    }
    free (self->work);
    keel_follow_destroy (&self->follow);
    keel_breaker_mirror_destroy (&self->mirror);
    zhashx_destroy (&self->clients);
    zhashx_destroy (&self->keys);
    zlistx_destroy (&self->dirty);
    zlistx_destroy (&self->parked);
    if (self->sagas) {
        s_saga_t *saga = (s_saga_t *)zhashx_first (self->sagas);
        for (; saga; saga = (s_saga_t *)zhashx_next (self->sagas))
            s_saga_free (&saga);
    }
    zhashx_destroy (&self->sagas);
    zhashx_destroy (&self->latest);
    zhashx_destroy (&self->defs);
    zhashx_destroy (&self->rr);
    keel_saga_log_close (&self->log);
    keel_publisher_destroy (&self->publisher);
    keel_server_destroy (&self->server);
    zloop_destroy (&self->loop);
    free (self->log_error);
}

static int
s_on_resume (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    //  Loaded sagas go on: attempts in flight at the crash wait for their
    //  deadline, then are sent again (the participant's dedupe makes that
    //  safe).
    self_t *self = (self_t *)arg;
    int64_t now = s_now ();
    for (s_saga_t *saga = (s_saga_t *)zhashx_first (self->sagas); saga;
         saga = (s_saga_t *)zhashx_next (self->sagas)) {
        S_OUT (out);
        if (keel_saga_advance (saga->record, now, &out))
            s_changed (self, saga, &out);
    }
    return 0;
}

void
keel_saga_actor (zsock_t *pipe, void *args)
{
    self_t self = {0};
    self.args = (keel_actor_args_t *)args;
    self.name = self.args->name;
    const char *error = s_self_init (&self);
    if (!error) {
        zloop_reader (self.loop, pipe, keel_actor_on_pipe, NULL);
        zloop_timer (self.loop, 1, 1, s_on_resume, &self);
    }
    keel_actor_ready (pipe, error);
    if (!error)
        zloop_start (self.loop);
    s_self_destroy (&self);
}
