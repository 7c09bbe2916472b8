/*  test_saga.c - the saga coordinator end to end: a real node in this
    process (registry, breaker, saga, shop) driven over the bus with
    keel_client, and over tcp with the `keel saga` CLI.

    Every scenario checks both sides: what the coordinator says (saga and
    step states, attempts) and what the participants did (the shop's
    effects: counts per saga and the journal of effects in order). */
#include "breaker_actor.h"
#include "keel_client.h"
#include "keel_events.h"
#include "keel_node.h"
#include "registry.pb-c.h"
#include "registry_actor.h"
#include "saga.pb-c.h"
#include "saga_actor.h"
#include "shop_actor.h"
#include "testutil.h"

#include <jansson.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {"breaker", keel_breaker_actor, "breaker"},
    {"saga", keel_saga_actor, "saga"},
    {"shop", keel_shop_actor, "shop"},
    {NULL, NULL, NULL},
};

// ---------------------------------------------------------------------------
//  The node under test

typedef struct {
    char *name;            //  node name (fresh per node)
    char *text;            //  its config
    keel_config_t *config; //  loaded
    zactor_t *node;        //  running
    char *bus;             //  front door (inproc or tcp)
    char *events;          //  event endpoint (inproc or tcp)
    keel_client_t *saga;   //  to the coordinator
    keel_client_t *shop;   //  to the shop actor
} s_node_t;

//  One step of a definition in ZPL; `extra` adds lines (already indented).
static char *
s_step (const char *name, const char *service, const char *action,
        const char *compensation, int timeout_ms, const char *extra)
{
    return zsys_sprintf (
        "        step\n"
        "            name = %s\n"
        "            service = %s\n"
        "            action = %s\n"
        "            compensation = %s\n"
        "            timeout = %dms\n"
        "            initial_interval = 20ms\n"
        "            max_interval = 100ms\n"
        "            jitter = 0\n"
        "            non_retryable = \"CONFLICT BAD_REQUEST\"\n"
        "            compensation_attempts = 2\n"
        "%s",
        name, service, action, compensation, timeout_ms, extra ? extra : "");
}

//  The step timeouts: generous for steps that are never slow on purpose
//  (valgrind makes everything slow), short for charge (timeout tests).
#define S_SLOW_MS   testutil_slack (3000)
#define S_CHARGE_MS testutil_slack (400)

//  Definitions used below:
//    order:        create -> reserve -> charge (charge: timeout 400 ms)
//    order-pivot:  create -> reserve (pivot) -> charge (2 attempts)
//    order-par:    create -> {reserve, charge} (group "pay")
static char *
s_definitions (void)
{
    char *steps[9] = {
        s_step ("create", "orders", "create", "cancel", S_SLOW_MS, NULL),
        s_step ("reserve", "inventory", "reserve", "release", S_SLOW_MS, NULL),
        s_step ("charge", "payments", "charge", "refund", S_CHARGE_MS,
                "            max_attempts = 3\n"),
        s_step ("create", "orders", "create", "cancel", S_SLOW_MS, NULL),
        s_step ("reserve", "inventory", "reserve", "release", S_SLOW_MS,
                "            pivot = true\n"),
        s_step ("charge", "payments", "charge", "refund", S_SLOW_MS,
                "            max_attempts = 2\n"),
        s_step ("create", "orders", "create", "cancel", S_SLOW_MS, NULL),
        s_step ("reserve", "inventory", "reserve", "release", S_SLOW_MS,
                "            group = pay\n"),
        s_step ("charge", "payments", "charge", "refund", S_SLOW_MS,
                "            group = pay\n"),
    };
    char *text =
        zsys_sprintf ("    definition\n        name = order\n%s%s%s"
                      "    definition\n        name = order-pivot\n%s%s%s"
                      "    definition\n        name = order-par\n%s%s%s",
                      steps[0], steps[1], steps[2], steps[3], steps[4],
                      steps[5], steps[6], steps[7], steps[8]);
    for (int i = 0; i < 9; i++)
        zstr_free (&steps[i]);
    return text;
}

static void s_wait_registered (s_node_t *self);

//  Start a node; tcp: front door and events on free loopback ports.
//  `shop_extra`: more lines for the shop section (indented), or NULL.
static s_node_t *
s_node_start (bool tcp, const char *shop_extra)
{
    static int counter = 0;
    s_node_t *self = (s_node_t *)calloc (1, sizeof (s_node_t));
    self->name = zsys_sprintf ("saga%d-%d", (int)getpid (), ++counter);
    char *doors =
        tcp ? zsys_sprintf ("    bus = tcp://127.0.0.1:%d\n"
                            "    events = tcp://127.0.0.1:%d\n",
                            testutil_free_port (), testutil_free_port ())
            : strdup ("");
    char *defs = s_definitions ();
    self->text =
        zsys_sprintf ("node\n    name = %s\n%s"
                      "    actors\n        registry\n"
                      "        breaker\n        saga\n"
                      "        shop\n"
                      "saga\n    log = \":memory:\"\n%s"
                      "shop\n    stock = 1000\n%s",
                      self->name, doors, defs, shop_extra ? shop_extra : "");
    zstr_free (&doors);
    zstr_free (&defs);
    char *error = NULL;
    self->config = keel_config_load_string (self->text, "test", &error);
    ck_assert_msg (self->config, "%s", error);
    keel_node_args_t args = {self->config, s_defs};
    self->node = zactor_new (keel_node_actor, &args);
    ck_assert_ptr_nonnull (self->node);
    error = keel_actor_status (self->node);
    ck_assert_msg (error == NULL, "%s", error);
    const char *bus = NULL, *events = NULL;
    keel_config_string (self->config, "node/bus", NULL, &bus);
    keel_config_string (self->config, "node/events", NULL, &events);
    self->bus = bus ? strdup (bus) : keel_node_bus_endpoint (self->name);
    self->events =
        events ? strdup (events) : keel_node_events_endpoint (self->name);
    self->saga = keel_client_new ("tester", self->bus, "saga");
    self->shop = keel_client_new ("tester", self->bus, "shop");
    ck_assert_ptr_nonnull (self->saga);
    ck_assert_ptr_nonnull (self->shop);
    s_wait_registered (self);
    return self;
}

static void
s_node_stop (s_node_t **self_p)
{
    s_node_t *self = *self_p;
    keel_client_destroy (&self->saga);
    keel_client_destroy (&self->shop);
    zactor_destroy (&self->node);
    keel_config_destroy (&self->config);
    free (self->name);
    free (self->text);
    free (self->bus);
    free (self->events);
    free (self);
    *self_p = NULL;
}

//  Wait (bounded) until the registry offers each shop service.
static void
s_wait_registered (s_node_t *self)
{
    keel_client_t *registry = keel_client_new ("tester", self->bus, "registry");
    const char *services[] = {"orders", "inventory", "payments"};
    testutil_wait_discovered (registry, services, 3, testutil_slack (10000));
    keel_client_destroy (&registry);
}

// ---------------------------------------------------------------------------
//  Talking to the coordinator

//  Call `type` on the saga actor; the reply as a SagaStatus (caller frees),
//  or NULL with *code_p (if not NULL) set to the error.
static Keel__SagaStatus *
s_saga_call (s_node_t *self, const char *type, const ProtobufCMessage *payload,
             int *code_p, char **error_p)
{
    Keel__SagaStatus *st = NULL;
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)testutil_slack (20000)};
    int rc = keel_client_call (self->saga, type, payload, &opts,
                               &keel__saga_status__descriptor,
                               (ProtobufCMessage **)&st, error_p);
    if (code_p)
        *code_p = rc;
    return rc == KEEL_OK ? st : NULL;
}

//  Start a saga of `def` with `input` (JSON); key NULL = none; wait: reply
//  when it ends. Asserts the start was accepted.
static Keel__SagaStatus *
s_start (s_node_t *self, const char *def, const char *input, const char *key,
         bool wait)
{
    Keel__StartRequest req = KEEL__START_REQUEST__INIT;
    req.definition = (char *)def;
    req.input.data = (uint8_t *)input;
    req.input.len = strlen (input);
    req.idempotency_key = (char *)(key ? key : "");
    req.wait = wait;
    req.wait_ms = wait ? (uint32_t)testutil_slack (15000) : 0;
    char *error = NULL;
    int code = 0;
    Keel__SagaStatus *st =
        s_saga_call (self, "saga.start", &req.base, &code, &error);
    ck_assert_msg (st, "saga.start: %s: %s", keel_errname (code), error);
    free (error);
    return st;
}

static Keel__SagaStatus *
s_status (s_node_t *self, const char *id)
{
    Keel__SagaRef ref = KEEL__SAGA_REF__INIT;
    ref.id = (char *)id;
    int code = 0;
    Keel__SagaStatus *st =
        s_saga_call (self, "saga.status", &ref.base, &code, NULL);
    ck_assert_msg (st, "saga.status %s: %s", id, keel_errname (code));
    return st;
}

//  Poll the status (bounded) until the saga is in `state`. Caller frees.
static Keel__SagaStatus *
s_wait_state (s_node_t *self, const char *id, Keel__SagaState state)
{
    int64_t deadline = zclock_mono () + testutil_slack (15000);
    while (true) {
        Keel__SagaStatus *st = s_status (self, id);
        if (st->state == state)
            return st;
        int now = st->state;
        protobuf_c_message_free_unpacked (&st->base, NULL);
        ck_assert_msg (zclock_mono () < deadline,
                       "saga %s stays %d, expected %d", id, now, (int)state);
        zclock_sleep (10); //  polling the status, bounded
    }
}

//  Poll until step `step` is in state `state`.
static void
s_wait_step (s_node_t *self, const char *id, size_t step, Keel__StepState state)
{
    int64_t deadline = zclock_mono () + testutil_slack (15000);
    while (true) {
        Keel__SagaStatus *st = s_status (self, id);
        ck_assert_uint_gt (st->n_steps, step);
        bool there = st->steps[step]->state == state;
        protobuf_c_message_free_unpacked (&st->base, NULL);
        if (there)
            return;
        ck_assert_msg (zclock_mono () < deadline, "step %zu never reached %d",
                       step, (int)state);
        zclock_sleep (10); //  polling the status, bounded
    }
}

static Keel__SagaStatus *
s_resolve (s_node_t *self, const char *id, bool skip, int *code_p)
{
    Keel__ResolveRequest req = KEEL__RESOLVE_REQUEST__INIT;
    req.id = (char *)id;
    req.action = skip ? KEEL__RESOLVE_REQUEST__ACTION__SKIP
                      : KEEL__RESOLVE_REQUEST__ACTION__RETRY;
    return s_saga_call (self, "saga.resolve", &req.base, code_p, NULL);
}

static Keel__SagaStatus *
s_cancel (s_node_t *self, const char *id, int *code_p)
{
    Keel__SagaRef ref = KEEL__SAGA_REF__INIT;
    ref.id = (char *)id;
    return s_saga_call (self, "saga.cancel", &ref.base, code_p, NULL);
}

//  Assert step i: state and action attempts (attempts < 0: any).
static void
s_assert_step (const Keel__SagaStatus *st, size_t i, const char *name,
               Keel__StepState state, int attempts)
{
    ck_assert_uint_gt (st->n_steps, i);
    ck_assert_str_eq (st->steps[i]->name, name);
    ck_assert_msg (st->steps[i]->state == state, "step %s is %d, expected %d",
                   name, (int)st->steps[i]->state, (int)state);
    if (attempts >= 0)
        ck_assert_uint_eq (st->steps[i]->attempts, (unsigned)attempts);
}

// ---------------------------------------------------------------------------
//  The shop's effects

typedef struct {
    bool done;
    int code;
    char *data;
} s_raw_t;

static void
s_on_raw (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_raw_t *raw = (s_raw_t *)arg;
    raw->done = true;
    raw->code = reply->code;
    raw->data = reply->code == KEEL_OK
                    ? strndup ((const char *)reply->data, reply->size)
                    : strdup (reply->text);
}

//  Call `type` with an empty payload; the reply payload as text (caller
//  frees), or asserts.
static char *
s_call_raw (keel_client_t *client, const char *type)
{
    s_raw_t raw = {false, 0, NULL};
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)testutil_slack (5000)};
    ck_assert (keel_client_request_bytes (client, type, NULL, 0, &opts,
                                          s_on_raw, &raw));
    while (!raw.done) {
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (client)), 0,
                               ZMQ_POLLIN, 0};
        int64_t wait = keel_client_timeout (client);
        zmq_poll (&item, 1, wait < 0 || wait > 100 ? 100 : (long)wait);
        ck_assert_int_ge (keel_client_process (client), 0);
    }
    ck_assert_msg (raw.code == KEEL_OK, "%s: %s: %s", type,
                   keel_errname (raw.code), raw.data);
    return raw.data;
}

//  The shop's effects, parsed (caller decrefs).
static json_t *
s_effects (s_node_t *self)
{
    char *text = s_call_raw (self->shop, "shop.effects");
    json_error_t error;
    json_t *doc = json_loads (text, 0, &error);
    ck_assert_msg (doc, "effects are not JSON: %s", text);
    free (text);
    return doc;
}

//  How often `service` applied `method` for saga `id` (0 if unknown).
static int
s_count (json_t *effects, const char *service, const char *id,
         const char *method)
{
    json_t *saga = json_object_get (
        json_object_get (json_object_get (effects, service), "sagas"), id);
    return saga ? (int)json_integer_value (json_object_get (saga, method)) : 0;
}

//  The journal of saga `id` as "a,b,c" ("" if none). Caller frees.
static char *
s_journal (json_t *effects, const char *id)
{
    json_t *list = json_object_get (json_object_get (effects, "journal"), id);
    char *text = strdup ("");
    for (size_t i = 0; i < json_array_size (list); i++) {
        char *more =
            zsys_sprintf ("%s%s%s", text, i ? "," : "",
                          json_string_value (json_array_get (list, i)));
        free (text);
        text = more;
    }
    return text;
}

static void
s_assert_journal (s_node_t *self, const char *id, const char *expected)
{
    json_t *effects = s_effects (self);
    char *journal = s_journal (effects, id);
    ck_assert_msg (streq (journal, expected),
                   "saga %s: journal '%s', "
                   "expected '%s'",
                   id, journal, expected);
    free (journal);
    json_decref (effects);
}

static long long
s_stock (json_t *effects, const char *item)
{
    json_t *stock =
        json_object_get (json_object_get (effects, "inventory"), "stock");
    json_t *units = json_object_get (stock, item);
    return units ? json_integer_value (units) : 1000;
}

//  Wait (bounded) until no delayed action is pending in the shop: the late
//  answers have come and gone.
static void
s_wait_shop_idle (s_node_t *self)
{
    int64_t deadline = zclock_mono () + testutil_slack (10000);
    while (true) {
        json_t *effects = s_effects (self);
        json_int_t pending = 0;
        const char *names[] = {"orders", "inventory", "payments"};
        for (int i = 0; i < 3; i++)
            pending += json_integer_value (json_object_get (
                json_object_get (effects, names[i]), "pending"));
        json_decref (effects);
        if (pending == 0)
            return;
        ck_assert_msg (zclock_mono () < deadline, "shop never idle");
        zclock_sleep (20); //  polling the shop, bounded
    }
}

// ---------------------------------------------------------------------------
//  Events

//  A subscriber to the node's saga events that is known to be receiving:
//  start throwaway sagas until one of their events arrives (slow joiner).
static keel_subscriber_t *
s_subscribe (s_node_t *self)
{
    keel_subscriber_t *sub = keel_subscriber_new ();
    ck_assert_int_eq (keel_subscriber_connect (sub, self->events), 0);
    keel_subscriber_subscribe (sub, "saga.");
    for (int i = 0; i < 100; i++) {
        Keel__SagaStatus *st =
            s_start (self, "order", "{\"item\":\"warmup\"}", NULL, true);
        protobuf_c_message_free_unpacked (&st->base, NULL);
        if (keel_subscriber_recv (sub, 50)) {
            //  Drain what the warm-up sagas published.
            while (keel_subscriber_recv (sub, 50))
                ;
            return sub;
        }
    }
    ck_abort_msg ("no saga event ever arrived");
    return NULL;
}

//  Receive events until one of `type` for saga `id` (bounded); every type
//  seen for that saga is appended to *seen ("a,b,..."). Returns true if it
//  came.
static bool
s_wait_event (keel_subscriber_t *sub, const char *id, const char *type,
              char **seen)
{
    int64_t deadline = zclock_mono () + testutil_slack (10000);
    while (zclock_mono () < deadline) {
        const keel_event_t *event = keel_subscriber_recv (sub, 100);
        if (!event)
            continue;
        Keel__SagaEvent *ev = (Keel__SagaEvent *)keel_codec_payload (
            event->envelope, &keel__saga_event__descriptor, NULL);
        ck_assert_ptr_nonnull (ev);
        bool mine = streq (ev->id, id);
        bool found = mine && streq (event->envelope->type, type);
        if (mine && seen) {
            char *more = zsys_sprintf ("%s%s%s%s%s", *seen, **seen ? "," : "",
                                       event->envelope->type,
                                       *ev->step ? ":" : "", ev->step);
            free (*seen);
            *seen = more;
        }
        protobuf_c_message_free_unpacked (&ev->base, NULL);
        if (found)
            return true;
    }
    return false;
}

// ---------------------------------------------------------------------------
//  Scenarios

static const char *s_order_input =
    "{\"order\":\"o1\",\"item\":\"apple\",\"qty\":2,\"amount\":30}";

//  Success: the three steps in order, each once; the shop shows it.
static void
s_success (s_node_t *node)
{
    Keel__SagaStatus *st = s_start (node, "order", s_order_input, NULL, true);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
    ck_assert_str_eq (st->definition, "order");
    ck_assert_uint_eq (st->version, 1);
    ck_assert_uint_eq (st->n_steps, 3);
    s_assert_step (st, 0, "create", KEEL__STEP_STATE__STEP_DONE, 1);
    s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_DONE, 1);
    s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_DONE, 1);
    //  Each step's output is the participant's reply.
    ck_assert_ptr_nonnull (strstr ((const char *)st->steps[0]->output.data,
                                   "\"state\":\"CREATED\""));
    ck_assert_ptr_nonnull (
        strstr ((const char *)st->steps[1]->output.data, "\"stock\":998"));
    json_t *effects = s_effects (node);
    ck_assert_int_eq (s_count (effects, "orders", st->id, "create"), 1);
    ck_assert_int_eq (s_count (effects, "orders", st->id, "cancel"), 0);
    ck_assert_int_eq (s_count (effects, "inventory", st->id, "reserve"), 1);
    ck_assert_int_eq (s_count (effects, "payments", st->id, "charge"), 1);
    ck_assert_int_eq (s_stock (effects, "apple"), 998);
    ck_assert_int_eq (json_integer_value (json_object_get (
                          json_object_get (effects, "payments"), "charged")),
                      30);
    json_t *order = json_object_get (
        json_object_get (
            json_object_get (json_object_get (effects, "orders"), "sagas"),
            st->id),
        "state");
    ck_assert_str_eq (json_string_value (order), "CREATED");
    char *journal = s_journal (effects, st->id);
    ck_assert_str_eq (journal,
                      "orders.create,inventory.reserve,payments.charge");
    free (journal);
    json_decref (effects);
    protobuf_c_message_free_unpacked (&st->base, NULL);
}

START_TEST (test_success)
{
    s_node_t *node = s_node_start (false, NULL);
    s_success (node);
    s_node_stop (&node);
}
END_TEST

//  The same over tcp: node bus on a free port, client over tcp.
START_TEST (test_success_tcp)
{
    s_node_t *node = s_node_start (true, NULL);
    ck_assert (strncmp (node->bus, "tcp://", 6) == 0);
    s_success (node);
    s_node_stop (&node);
}
END_TEST

//  Failure at step _i: the completed steps are compensated in reverse
//  order, the failing one is FAILED after one attempt (CONFLICT is not
//  retryable), later ones never run, and the effects net out.
START_TEST (test_failure_at_each_step)
{
    static const char *services[] = {"orders", "inventory", "payments"};
    static const char *journals[] = {
        "",
        "orders.create,orders.cancel",
        "orders.create,inventory.reserve,inventory.release,orders.cancel",
    };
    static const char *names[] = {"create", "reserve", "charge"};
    s_node_t *node = s_node_start (false, NULL);
    char *input = zsys_sprintf (
        "{\"item\":\"pear\",\"qty\":3,\"amount\":50,\"fail\":\"%s\"}",
        services[_i]);
    Keel__SagaStatus *st = s_start (node, "order", input, NULL, true);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    for (int i = 0; i < 3; i++) {
        if (i < _i)
            s_assert_step (st, i, names[i], KEEL__STEP_STATE__STEP_COMPENSATED,
                           1);
        else if (i == _i)
            s_assert_step (st, i, names[i], KEEL__STEP_STATE__STEP_FAILED, 1);
        else
            s_assert_step (st, i, names[i], KEEL__STEP_STATE__STEP_SKIPPED, 0);
    }
    ck_assert_ptr_nonnull (strstr (st->steps[_i]->last_error, "CONFLICT"));
    ck_assert_ptr_nonnull (strstr (st->last_error, "CONFLICT"));
    s_assert_journal (node, st->id, journals[_i]);
    json_t *effects = s_effects (node);
    ck_assert_int_eq (s_stock (effects, "pear"), 1000);
    ck_assert_int_eq (json_integer_value (json_object_get (
                          json_object_get (effects, "payments"), "charged")),
                      0);
    json_decref (effects);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    free (input);
    s_node_stop (&node);
}
END_TEST

//  Stock running out is a natural CONFLICT.
START_TEST (test_out_of_stock)
{
    s_node_t *node = s_node_start (false, NULL);
    Keel__SagaStatus *st =
        s_start (node, "order", "{\"item\":\"plum\",\"qty\":1001}", NULL, true);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_FAILED, 1);
    ck_assert_ptr_nonnull (strstr (st->steps[1]->last_error, "out of stock"));
    s_assert_journal (node, st->id, "orders.create,orders.cancel");
    protobuf_c_message_free_unpacked (&st->base, NULL);
    s_node_stop (&node);
}
END_TEST

//  A non-retryable error fails the step at once: one attempt, even with
//  attempts to spare.
START_TEST (test_non_retryable)
{
    s_node_t *node = s_node_start (false, NULL);
    keel_subscriber_t *sub = s_subscribe (node);
    Keel__SagaStatus *st = s_start (
        node, "order", "{\"fail\":\"payments\",\"amount\":5}", NULL, true);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_FAILED, 1);
    char *seen = strdup ("");
    ck_assert (s_wait_event (sub, st->id, "saga.compensated", &seen));
    //  Compensations report as steps done, in reverse order.
    ck_assert_str_eq (seen, "saga.started,saga.step_done:create,"
                            "saga.step_done:reserve,saga.step_failed:charge,"
                            "saga.compensating:charge,saga.step_done:reserve,"
                            "saga.step_done:create,saga.compensated");
    free (seen);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    keel_subscriber_destroy (&sub);
    s_node_stop (&node);
}
END_TEST

//  Transient failures are retried: fail_times = 2 with 3 attempts
//  succeeds on the third (_i = 0); fail_times = 5 runs out of attempts and
//  the saga compensates (_i = 1).
START_TEST (test_retry)
{
    s_node_t *node = s_node_start (false, NULL);
    int times = _i == 0 ? 2 : 5;
    char *input = zsys_sprintf ("{\"item\":\"fig\",\"amount\":7,"
                                "\"fail_times\":%d,\"flaky\":\"payments\"}",
                                times);
    Keel__SagaStatus *st = s_start (node, "order", input, NULL, true);
    s_assert_step (st, 0, "create",
                   _i == 0 ? KEEL__STEP_STATE__STEP_DONE
                           : KEEL__STEP_STATE__STEP_COMPENSATED,
                   1);
    s_assert_step (st, 2, "charge",
                   _i == 0 ? KEEL__STEP_STATE__STEP_DONE
                           : KEEL__STEP_STATE__STEP_FAILED,
                   3);
    if (_i == 0) {
        ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
        s_assert_journal (node, st->id,
                          "orders.create,inventory.reserve,payments.charge");
    } else {
        ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPENSATED);
        ck_assert_ptr_nonnull (
            strstr (st->steps[2]->last_error, "UNAVAILABLE"));
        s_assert_journal (node, st->id,
                          "orders.create,inventory.reserve,"
                          "inventory.release,orders.cancel");
    }
    json_t *effects = s_effects (node);
    ck_assert_int_eq (s_count (effects, "payments", st->id, "charge"),
                      _i == 0 ? 1 : 0);
    json_decref (effects);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    free (input);
    s_node_stop (&node);
}
END_TEST

//  Timeouts. _i = 0: every charge attempt is slower than the step timeout:
//  each times out, the step fails after 3, the saga compensates -- the
//  charge too, since a timed-out attempt may have taken effect -- and the
//  late work is dropped by the shop (nothing charged, ever; the refund finds
//  nothing to undo). _i = 1: only
//  the first attempt is slow: the second succeeds, and the first's late
//  answer changes nothing (charged once).
START_TEST (test_timeout)
{
    s_node_t *node = s_node_start (false, NULL);
    char *input =
        zsys_sprintf ("{\"item\":\"kiwi\",\"amount\":9,\"slow\":\"payments\","
                      "\"delay_ms\":%d,\"delay_times\":%d}",
                      testutil_slack (1000), _i == 0 ? 0 : 1);
    Keel__SagaStatus *st = s_start (node, "order", input, NULL, true);
    if (_i == 0) {
        ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPENSATED);
        s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_COMPENSATED, 3);
        ck_assert_uint_eq (st->steps[2]->compensation_attempts, 1);
    } else {
        ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
        s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_DONE, 2);
    }
    s_wait_shop_idle (node);
    s_assert_journal (node, st->id,
                      _i == 0 ? "orders.create,inventory.reserve,"
                                "payments.refund,inventory.release,"
                                "orders.cancel"
                              : "orders.create,inventory.reserve,"
                                "payments.charge");
    json_t *effects = s_effects (node);
    ck_assert_int_eq (json_integer_value (json_object_get (
                          json_object_get (effects, "payments"), "charged")),
                      _i == 0 ? 0 : 9);
    json_decref (effects);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    free (input);
    s_node_stop (&node);
}
END_TEST

//  A compensation that keeps failing makes the saga STUCK (listed as
//  stuck, "saga.stuck" published). Resolve retry while it still fails:
//  STUCK again. Healed, resolve retry: COMPENSATED, every effect undone.
START_TEST (test_stuck_resolve_retry)
{
    s_node_t *node = s_node_start (false, NULL);
    keel_subscriber_t *sub = s_subscribe (node);
    Keel__SagaStatus *st =
        s_start (node, "order",
                 "{\"item\":\"lime\",\"qty\":4,\"fail\":\"payments\","
                 "\"fail_compensation\":\"inventory\"}",
                 NULL, true);
    char *id = strdup (st->id);
    //  A waiting start answers when the saga is stuck, too.
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_STUCK);
    s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_COMPENSATING, 1);
    ck_assert_uint_eq (st->steps[1]->compensation_attempts, 2);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    ck_assert (s_wait_event (sub, id, "saga.stuck", NULL));

    //  Listed among the stuck.
    Keel__ListSagasRequest lreq = KEEL__LIST_SAGAS_REQUEST__INIT;
    lreq.state = KEEL__SAGA_STATE__SAGA_STUCK;
    Keel__SagaList *list = NULL;
    ck_assert_int_eq (keel_client_call (node->saga, "saga.list", &lreq.base,
                                        NULL, &keel__saga_list__descriptor,
                                        (ProtobufCMessage **)&list, NULL),
                      KEEL_OK);
    ck_assert_uint_eq (list->n_sagas, 1);
    ck_assert_str_eq (list->sagas[0]->id, id);
    ck_assert_int_eq (list->sagas[0]->state, KEEL__SAGA_STATE__SAGA_STUCK);
    protobuf_c_message_free_unpacked (&list->base, NULL);

    //  Not healed yet: stuck again after a fresh budget of 2.
    int code = 0;
    st = s_resolve (node, id, false, &code);
    ck_assert_int_eq (code, KEEL_OK);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    ck_assert (s_wait_event (sub, id, "saga.stuck", NULL));
    st = s_wait_state (node, id, KEEL__SAGA_STATE__SAGA_STUCK);
    ck_assert_uint_eq (st->steps[1]->compensation_attempts, 4);
    protobuf_c_message_free_unpacked (&st->base, NULL);

    //  Healed: the retry goes through.
    char *healed = s_call_raw (node->shop, "shop.heal");
    ck_assert_ptr_nonnull (strstr (healed, "\"healed\":"));
    free (healed);
    st = s_resolve (node, id, false, &code);
    ck_assert_int_eq (code, KEEL_OK);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    ck_assert (s_wait_event (sub, id, "saga.compensated", NULL));
    st = s_wait_state (node, id, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    s_assert_step (st, 0, "create", KEEL__STEP_STATE__STEP_COMPENSATED, 1);
    s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_COMPENSATED, 1);
    ck_assert_uint_eq (st->steps[1]->compensation_attempts, 5);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    s_assert_journal (node, id,
                      "orders.create,inventory.reserve,inventory.release,"
                      "orders.cancel");
    json_t *effects = s_effects (node);
    ck_assert_int_eq (s_stock (effects, "lime"), 1000);
    json_decref (effects);

    //  Only a stuck saga can be resolved.
    ck_assert_ptr_null (s_resolve (node, id, false, &code));
    ck_assert_int_eq (code, KEEL_ERR_CONFLICT);
    free (id);
    keel_subscriber_destroy (&sub);
    s_node_stop (&node);
}
END_TEST

//  Resolve skip: the stuck compensation is SKIPPED and the saga goes on;
//  that effect stays (the operator took care of it).
START_TEST (test_stuck_resolve_skip)
{
    s_node_t *node = s_node_start (false, NULL);
    Keel__SagaStatus *st =
        s_start (node, "order",
                 "{\"item\":\"date\",\"qty\":4,\"fail\":\"payments\","
                 "\"fail_compensation\":\"inventory\"}",
                 NULL, true);
    char *id = strdup (st->id);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_STUCK);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    int code = 0;
    st = s_resolve (node, id, true, &code);
    ck_assert_int_eq (code, KEEL_OK);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    st = s_wait_state (node, id, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_SKIPPED, 1);
    s_assert_step (st, 0, "create", KEEL__STEP_STATE__STEP_COMPENSATED, 1);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    s_assert_journal (node, id,
                      "orders.create,inventory.reserve,orders.cancel");
    json_t *effects = s_effects (node);
    ck_assert_int_eq (s_stock (effects, "date"), 996);
    ck_assert_int_eq (s_count (effects, "inventory", id, "release"), 0);
    json_decref (effects);
    free (id);
    s_node_stop (&node);
}
END_TEST

//  Pivot (reserve): a later step that fails for good makes the saga STUCK
//  instead of compensating; cancel is refused. _i = 0: transient failures
//  (fail_times 3, 2 attempts): resolve retry gives a fresh budget, attempt
//  4 succeeds: COMPLETED. _i = 1: refused (CONFLICT): resolve skip marks
//  charge SKIPPED and the saga completes without it.
START_TEST (test_pivot)
{
    s_node_t *node = s_node_start (false, NULL);
    Keel__SagaStatus *st = s_start (
        node, "order-pivot",
        _i == 0 ? "{\"item\":\"yam\",\"fail_times\":3,\"flaky\":\"payments\"}"
                : "{\"item\":\"yam\",\"fail\":\"payments\"}",
        NULL, true);
    char *id = strdup (st->id);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_STUCK);
    s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_DONE, 1);
    s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_RUNNING,
                   _i == 0 ? 2 : 1);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    int code = 0;
    ck_assert_ptr_null (s_cancel (node, id, &code));
    ck_assert_int_eq (code, KEEL_ERR_CONFLICT);
    st = s_resolve (node, id, _i == 1, &code);
    ck_assert_int_eq (code, KEEL_OK);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    st = s_wait_state (node, id, KEEL__SAGA_STATE__SAGA_COMPLETED);
    if (_i == 0)
        s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_DONE, 4);
    else
        s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_SKIPPED, 1);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    s_assert_journal (node, id,
                      _i == 0 ? "orders.create,inventory.reserve,"
                                "payments.charge"
                              : "orders.create,inventory.reserve");
    free (id);
    s_node_stop (&node);
}
END_TEST

//  Cancel a running saga: the step in flight (a slow reserve) is awaited,
//  then everything done is compensated; charge never runs. Cancelling a
//  completed saga is refused; a compensated one, a no-op.
START_TEST (test_cancel)
{
    s_node_t *node = s_node_start (false, NULL);
    char *input = zsys_sprintf ("{\"item\":\"nut\",\"qty\":5,"
                                "\"slow\":\"inventory\",\"delay_ms\":%d}",
                                testutil_slack (600));
    Keel__SagaStatus *st = s_start (node, "order", input, NULL, false);
    char *id = strdup (st->id);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_RUNNING);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    s_wait_step (node, id, 1, KEEL__STEP_STATE__STEP_RUNNING);
    int code = 0;
    st = s_cancel (node, id, &code);
    ck_assert_int_eq (code, KEEL_OK);
    ck_assert (st->cancel_requested);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPENSATING);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    st = s_wait_state (node, id, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    s_assert_step (st, 0, "create", KEEL__STEP_STATE__STEP_COMPENSATED, 1);
    s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_COMPENSATED, 1);
    s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_SKIPPED, 0);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    s_assert_journal (node, id,
                      "orders.create,inventory.reserve,inventory.release,"
                      "orders.cancel");
    //  Again: nothing to do.
    st = s_cancel (node, id, &code);
    ck_assert_int_eq (code, KEEL_OK);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    //  A completed saga cannot be undone by cancel.
    st = s_start (node, "order", "{}", NULL, true);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
    ck_assert_ptr_null (s_cancel (node, st->id, &code));
    ck_assert_int_eq (code, KEEL_ERR_CONFLICT);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    //  Unknown saga.
    ck_assert_ptr_null (s_cancel (node, "nope", &code));
    ck_assert_int_eq (code, KEEL_ERR_NOT_FOUND);
    free (id);
    free (input);
    s_node_stop (&node);
}
END_TEST

//  A parallel group: reserve and charge run at once (reserve is slow, and
//  charge takes effect before it). _i = 1: charge is refused; reserve,
//  still in flight, is awaited, then compensated with create.
START_TEST (test_parallel)
{
    s_node_t *node = s_node_start (false, NULL);
    char *input = zsys_sprintf ("{\"item\":\"oat\",\"amount\":4,"
                                "\"slow\":\"inventory\",\"delay_ms\":%d%s}",
                                testutil_slack (300),
                                _i == 1 ? ",\"fail\":\"payments\"" : "");
    Keel__SagaStatus *st = s_start (node, "order-par", input, NULL, true);
    if (_i == 0) {
        ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
        s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_DONE, 1);
        s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_DONE, 1);
        s_assert_journal (node, st->id,
                          "orders.create,payments.charge,inventory.reserve");
    } else {
        ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPENSATED);
        s_assert_step (st, 0, "create", KEEL__STEP_STATE__STEP_COMPENSATED, 1);
        s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_COMPENSATED, 1);
        s_assert_step (st, 2, "charge", KEEL__STEP_STATE__STEP_FAILED, 1);
        s_assert_journal (node, st->id,
                          "orders.create,inventory.reserve,"
                          "inventory.release,orders.cancel");
    }
    protobuf_c_message_free_unpacked (&st->base, NULL);
    free (input);
    s_node_stop (&node);
}
END_TEST

//  The same idempotency key: the same saga, whether it is still running
//  or has ended; its effects happen once. A waiting duplicate gets the
//  final state.
START_TEST (test_duplicate_start)
{
    s_node_t *node = s_node_start (false, NULL);
    char *input = zsys_sprintf ("{\"item\":\"rye\",\"amount\":3,"
                                "\"slow\":\"orders\",\"delay_ms\":%d}",
                                testutil_slack (200));
    Keel__SagaStatus *first = s_start (node, "order", input, "key-1", false);
    Keel__SagaStatus *again = s_start (node, "order", input, "key-1", false);
    ck_assert_str_eq (again->id, first->id);
    ck_assert_str_eq (again->idempotency_key, "key-1");
    protobuf_c_message_free_unpacked (&again->base, NULL);
    again = s_start (node, "order", input, "key-1", true);
    ck_assert_str_eq (again->id, first->id);
    ck_assert_int_eq (again->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
    protobuf_c_message_free_unpacked (&again->base, NULL);
    //  After the end (from the log now).
    again = s_start (node, "order", "{}", "key-1", false);
    ck_assert_str_eq (again->id, first->id);
    ck_assert_int_eq (again->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
    protobuf_c_message_free_unpacked (&again->base, NULL);
    //  Another key: another saga.
    Keel__SagaStatus *other = s_start (node, "order", input, "key-2", true);
    ck_assert_str_ne (other->id, first->id);
    json_t *effects = s_effects (node);
    ck_assert_int_eq (s_count (effects, "orders", first->id, "create"), 1);
    ck_assert_int_eq (s_count (effects, "inventory", first->id, "reserve"), 1);
    ck_assert_int_eq (s_count (effects, "payments", first->id, "charge"), 1);
    ck_assert_int_eq (s_stock (effects, "rye"), 998);
    json_decref (effects);
    protobuf_c_message_free_unpacked (&other->base, NULL);
    protobuf_c_message_free_unpacked (&first->base, NULL);
    free (input);
    s_node_stop (&node);
}
END_TEST

//  Events: one saga's life on the node's event endpoint, in order.
START_TEST (test_events)
{
    s_node_t *node = s_node_start (_i == 1, NULL);
    keel_subscriber_t *sub = s_subscribe (node);
    Keel__SagaStatus *st = s_start (node, "order", s_order_input, NULL, true);
    char *seen = strdup ("");
    ck_assert (s_wait_event (sub, st->id, "saga.completed", &seen));
    ck_assert_str_eq (seen, "saga.started,saga.step_done:create,"
                            "saga.step_done:reserve,saga.step_done:charge,"
                            "saga.completed");
    free (seen);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    keel_subscriber_destroy (&sub);
    s_node_stop (&node);
}
END_TEST

//  Bad requests: unknown definition, input the shop refuses, the shop's
//  per-service methods.
START_TEST (test_bad_requests)
{
    s_node_t *node = s_node_start (false, NULL);
    Keel__StartRequest req = KEEL__START_REQUEST__INIT;
    req.definition = "nope";
    int code = 0;
    ck_assert_ptr_null (
        s_saga_call (node, "saga.start", &req.base, &code, NULL));
    ck_assert_int_eq (code, KEEL_ERR_NOT_FOUND);
    //  An input the participants refuse (BAD_REQUEST is not retryable here).
    Keel__SagaStatus *st =
        s_start (node, "order", "{\"qty\":\"many\"}", NULL, true);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    s_assert_step (st, 0, "create", KEEL__STEP_STATE__STEP_FAILED, 1);
    s_assert_step (st, 1, "reserve", KEEL__STEP_STATE__STEP_SKIPPED, 0);
    ck_assert_ptr_nonnull (strstr (st->steps[0]->last_error, "BAD_REQUEST"));
    ck_assert_ptr_nonnull (strstr (st->steps[0]->last_error, "qty"));
    protobuf_c_message_free_unpacked (&st->base, NULL);

    //  Each service answers for itself on its own endpoint.
    char *actor = keel_node_actor_endpoint (node->name, "shop");
    char *endpoint = zsys_sprintf ("%s-inventory", actor);
    keel_client_t *inventory = keel_client_new ("tester", endpoint, NULL);
    char *text = s_call_raw (inventory, "inventory.effects");
    ck_assert_ptr_nonnull (strstr (text, "\"service\":\"inventory\""));
    free (text);
    text = s_call_raw (inventory, "inventory.heal");
    ck_assert_ptr_nonnull (strstr (text, "\"healed\":"));
    free (text);
    //  A step request without a saga id.
    ck_assert_int_eq (keel_client_call (inventory, "inventory.reserve", NULL,
                                        NULL, NULL, NULL, NULL),
                      KEEL_ERR_BAD_REQUEST);
    keel_client_destroy (&inventory);
    free (endpoint);
    free (actor);
    s_node_stop (&node);
}
END_TEST

//  The shop by itself: it applies every request that reaches it; the
//  SDK's dedupe makes a repeated key apply once; a compensation of an
//  action that never took effect is counted and changes nothing.
START_TEST (test_shop_direct)
{
    s_node_t *node = s_node_start (false, NULL);
    char *actor = keel_node_actor_endpoint (node->name, "shop");
    char *endpoint = zsys_sprintf ("%s-orders", actor);
    keel_client_t *orders = keel_client_new ("tester", endpoint, NULL);
    Keel__SagaStepRequest req = KEEL__SAGA_STEP_REQUEST__INIT;
    req.input.data = (uint8_t *)"{\"order\":\"x\"}";
    req.input.len = strlen ((const char *)req.input.data);
    req.attempt = 1;
    keel_call_opts_t keyed = {.idempotency_key = "direct-1/create/action"};
    for (int i = 0; i < 3; i++) {
        req.saga_id = "direct-1";
        ck_assert_int_eq (keel_client_call (orders, "orders.create", &req.base,
                                            &keyed, NULL, NULL, NULL),
                          KEEL_OK);
        req.saga_id = "direct-2";
        ck_assert_int_eq (keel_client_call (orders, "orders.create", &req.base,
                                            NULL, NULL, NULL, NULL),
                          KEEL_OK);
    }
    req.saga_id = "direct-3";
    req.compensate = true;
    ck_assert_int_eq (keel_client_call (orders, "orders.cancel", &req.base,
                                        NULL, NULL, NULL, NULL),
                      KEEL_OK);
    json_t *effects = s_effects (node);
    ck_assert_int_eq (s_count (effects, "orders", "direct-1", "create"), 1);
    ck_assert_int_eq (s_count (effects, "orders", "direct-2", "create"), 3);
    ck_assert_int_eq (s_count (effects, "orders", "direct-3", "cancel"), 1);
    json_t *three = json_object_get (
        json_object_get (json_object_get (effects, "orders"), "sagas"),
        "direct-3");
    ck_assert_str_eq (json_string_value (json_object_get (three, "state")),
                      "NONE");
    ck_assert_int_eq (json_integer_value (json_object_get (
                          json_object_get (effects, "orders"), "dedupe_hits")),
                      2);
    json_decref (effects);
    keel_client_destroy (&orders);
    free (endpoint);
    free (actor);
    s_node_stop (&node);
}
END_TEST

// ---------------------------------------------------------------------------
//  The CLI over the tcp front door

//  Run `keel ARGS... --bus BUS` (ARGS end with NULL); returns the exit
//  status, *out_p the output (caller frees).
static int64_t s_keel_ms; //  how long the last one took

static int
s_keel (s_node_t *node, char **out_p, ...)
{
    char *argv[16] = {KEEL_BIN};
    int n = 1;
    va_list args;
    va_start (args, out_p);
    for (char *arg; n < 12 && (arg = va_arg (args, char *));)
        argv[n++] = arg;
    va_end (args);
    argv[n++] = "--bus";
    argv[n++] = node->bus;
    argv[n] = NULL;
    int64_t started = zclock_mono ();
    int rc = testutil_run_cmd (argv, out_p);
    s_keel_ms = zclock_mono () - started;
    return rc;
}

//  The saga id in `keel saga` output ("saga ID  ...").
static char *
s_id_of (const char *output)
{
    const char *p = strstr (output, "saga ");
    ck_assert_ptr_nonnull (p);
    p += 5;
    size_t len = strcspn (p, " \n");
    return strndup (p, len);
}

//  Everything `fd` has until it closes (bounded). Caller frees.
static char *
s_read_all (int fd, int timeout_ms)
{
    size_t size = 0, cap = 4096;
    char *text = (char *)calloc (1, cap);
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        zmq_pollitem_t item = {NULL, fd, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 100) <= 0)
            continue;
        if (size + 1024 >= cap)
            text = (char *)realloc (text, cap *= 2);
        ssize_t got = read (fd, text + size, cap - size - 1);
        if (got <= 0)
            break;
        size += (size_t)got;
        text[size] = 0;
    }
    return text;
}

START_TEST (test_cli)
{
    s_node_t *node = s_node_start (true, NULL);
    char *out = NULL;

    //  start --wait: the final state; exit 0 when completed.
    int rc =
        s_keel (node, &out, "saga", "start", "order", "--input",
                "{\"item\":\"cli\",\"qty\":1,\"amount\":2}", "--wait", NULL);
    ck_assert_msg (rc == 0, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    ck_assert_ptr_nonnull (strstr (out, "COMPLETED"));
    char *done_id = s_id_of (out);
    free (out);

    //  status
    rc = s_keel (node, &out, "saga", "status", done_id, NULL);
    ck_assert_msg (rc == 0, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    ck_assert_ptr_nonnull (strstr (out, "COMPLETED"));
    ck_assert_ptr_nonnull (strstr (out, "charge"));
    free (out);
    rc = s_keel (node, &out, "saga", "status", done_id, "--json", NULL);
    ck_assert_msg (rc == 0, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    json_error_t jerr;
    json_t *doc = json_loads (out, 0, &jerr);
    ck_assert_msg (doc, "not JSON: %s", out);
    ck_assert_str_eq (json_string_value (json_object_get (doc, "id")), done_id);
    ck_assert_str_eq (json_string_value (json_object_get (doc, "state")),
                      "SAGA_COMPLETED");
    json_decref (doc);
    free (out);
    rc = s_keel (node, &out, "saga", "status", "nope", NULL);
    ck_assert_int_eq (rc, 1);
    free (out);

    //  A failing saga: start --wait exits 1 (compensated), and it is
    //  listed among the compensated.
    rc = s_keel (node, &out, "saga", "start", "order", "--input",
                 "{\"fail\":\"payments\"}", "--wait", NULL);
    ck_assert_msg (rc == 1, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    ck_assert_ptr_nonnull (strstr (out, "COMPENSATED"));
    char *failed_id = s_id_of (out);
    free (out);
    rc = s_keel (node, &out, "saga", "list", "--state", "compensated", NULL);
    ck_assert_msg (rc == 0, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    ck_assert_ptr_nonnull (strstr (out, failed_id));
    ck_assert_ptr_null (strstr (out, done_id));
    free (out);
    rc = s_keel (node, &out, "saga", "list", "--json", NULL);
    ck_assert_msg (rc == 0, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    ck_assert_ptr_nonnull (strstr (out, failed_id));
    ck_assert_ptr_nonnull (strstr (out, done_id));
    free (out);

    //  cancel a slow one.
    rc = s_keel (node, &out, "saga", "start", "order", "--input",
                 "{\"slow\":\"inventory\",\"delay_ms\":1500}", "--key",
                 "cli-slow", NULL);
    ck_assert_msg (rc == 0, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    char *slow_id = s_id_of (out);
    free (out);
    s_wait_step (node, slow_id, 1, KEEL__STEP_STATE__STEP_RUNNING);
    rc = s_keel (node, &out, "saga", "cancel", slow_id, NULL);
    ck_assert_msg (rc == 0, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    ck_assert_ptr_nonnull (strstr (out, "cancel requested"));
    free (out);
    Keel__SagaStatus *st =
        s_wait_state (node, slow_id, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    protobuf_c_message_free_unpacked (&st->base, NULL);

    //  resolve --retry a stuck one after healing.
    rc = s_keel (node, &out, "saga", "start", "order", "--input",
                 "{\"fail\":\"payments\",\"fail_compensation\":\"orders\"}",
                 "--wait", NULL);
    ck_assert_msg (rc == 1, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    ck_assert_ptr_nonnull (strstr (out, "STUCK"));
    char *stuck_id = s_id_of (out);
    free (out);
    rc = s_keel (node, &out, "saga", "list", "--state", "stuck", NULL);
    ck_assert_ptr_nonnull (strstr (out, stuck_id));
    free (out);
    char *healed = s_call_raw (node->shop, "shop.heal");
    free (healed);
    rc = s_keel (node, &out, "saga", "resolve", stuck_id, "--retry", NULL);
    ck_assert_msg (rc == 0, "exit %d after %lld ms: %s", rc,
                   (long long)s_keel_ms, out);
    free (out);
    st = s_wait_state (node, stuck_id, KEEL__SAGA_STATE__SAGA_COMPENSATED);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    rc = s_keel (node, &out, "saga", "resolve", stuck_id, NULL);
    ck_assert_int_eq (rc, 2); //  neither --retry nor --skip
    free (out);

    //  watch --count: a watcher that is receiving (slow joiner: start
    //  sagas until it has had its count and exits).
    for (int json = 0; json < 2; json++) {
        char *argv[] = {KEEL_BIN, "saga",  "watch",   "--count",
                        "5",      "--bus", node->bus, json ? "--json" : NULL,
                        NULL};
        int fd = -1;
        pid_t pid = testutil_spawn (argv, &fd);
        int status = -1;
        for (int i = 0; i < 100; i++) {
            st = s_start (node, "order", "{}", NULL, true);
            protobuf_c_message_free_unpacked (&st->base, NULL);
            if (waitpid (pid, &status, WNOHANG) == pid)
                break;
        }
        out = s_read_all (fd, testutil_slack (5000));
        close (fd);
        if (!WIFEXITED (status))
            ck_assert_int_eq (testutil_reap (pid, testutil_slack (5000)), 0);
        else
            ck_assert_int_eq (WEXITSTATUS (status), 0);
        //  One line per event (stderr's "watching ..." line aside).
        int lines = 0;
        for (char *line = out; line && *line; line = strchr (line, '\n')) {
            if (*line == '\n')
                line++;
            if (strncmp (line, json ? "{\"id\":\"" : "saga.", json ? 7 : 5) ==
                0)
                lines++;
        }
        ck_assert_msg (lines == 5, "%d events in:\n%s", lines, out);
        free (out);
    }

    free (done_id);
    free (failed_id);
    free (slow_id);
    free (stuck_id);
    s_node_stop (&node);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("saga");
    TCase *tc = tcase_create ("saga");
    tcase_set_timeout (tc, testutil_slack (60));
    tcase_add_test (tc, test_success);
    tcase_add_test (tc, test_success_tcp);
    tcase_add_loop_test (tc, test_failure_at_each_step, 0, 3);
    tcase_add_test (tc, test_out_of_stock);
    tcase_add_test (tc, test_non_retryable);
    tcase_add_loop_test (tc, test_retry, 0, 2);
    tcase_add_loop_test (tc, test_timeout, 0, 2);
    tcase_add_test (tc, test_stuck_resolve_retry);
    tcase_add_test (tc, test_stuck_resolve_skip);
    tcase_add_loop_test (tc, test_pivot, 0, 2);
    tcase_add_test (tc, test_cancel);
    tcase_add_loop_test (tc, test_parallel, 0, 2);
    tcase_add_test (tc, test_duplicate_start);
    tcase_add_loop_test (tc, test_events, 0, 2);
    tcase_add_test (tc, test_bad_requests);
    tcase_add_test (tc, test_shop_direct);
    tcase_add_test (tc, test_cli);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
