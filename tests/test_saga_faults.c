/*  test_saga_faults.c - the saga coordinator when its log cannot be
    written: a real node (registry, breaker, saga, shop) whose saga log is a
    file, and a real write failure: RLIMIT_FSIZE lowered to 0 in this
    process (SIGXFSZ ignored), so every write to a regular file fails with
    EFBIG and SQLite reports an I/O error. No hook in the actor.

    While the log cannot be written, saga.start is refused with UNAVAILABLE
    and the log's error; sagas accepted before go on in memory and, once the
    limit is raised again, end COMPLETED or COMPENSATED with each effect
    applied once; their ends are in the log (a second node reads them back);
    new starts are accepted again.

    Between lowering and raising the limit nothing here may write a file,
    and Check writes its progress to a file at every ck_assert: that stretch
    records what it sees and asserts afterwards. */
#include "breaker_actor.h"
#include "keel_client.h"
#include "keel_node.h"
#include "node.pb-c.h"
#include "registry.pb-c.h"
#include "registry_actor.h"
#include "saga.pb-c.h"
#include "saga_actor.h"
#include "shop_actor.h"
#include "testutil.h"

#include <jansson.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {"breaker", keel_breaker_actor, "breaker"},
    {"saga", keel_saga_actor, "saga"},
    {"shop", keel_shop_actor, "shop"},
    {NULL, NULL, NULL},
};

// ---------------------------------------------------------------------------
//  The disk

//  Make every write to a regular file in this process fail (EFBIG), or
//  allow them again.
static void
s_disk_full (bool full)
{
    static struct rlimit saved;
    static bool saved_set = false;
    if (!saved_set) {
        ck_assert_int_eq (getrlimit (RLIMIT_FSIZE, &saved), 0);
        saved_set = true;
        signal (SIGXFSZ, SIG_IGN);
    }
    struct rlimit limit = saved;
    if (full)
        limit.rlim_cur = 0;
    //  No ck_assert here: raising must work even while files cannot grow.
    int rc = setrlimit (RLIMIT_FSIZE, &limit);
    if (rc != 0) {
        setrlimit (RLIMIT_FSIZE, &saved);
        ck_abort_msg ("setrlimit failed");
    }
}

// ---------------------------------------------------------------------------
//  The node

typedef struct {
    char *name;
    keel_config_t *config;
    zactor_t *node;
    keel_client_t *saga;
    keel_client_t *shop;
} s_node_t;

static s_node_t *
s_node_start (const char *log)
{
    static int counter = 0;
    s_node_t *self = (s_node_t *)calloc (1, sizeof (s_node_t));
    self->name = zsys_sprintf ("sagafault%d-%d", (int)getpid (), ++counter);
    char *step_extra = zsys_sprintf ("            timeout = %dms\n"
                                     "            max_attempts = 5\n"
                                     "            initial_interval = 20ms\n"
                                     "            max_interval = 100ms\n"
                                     "            jitter = 0\n",
                                     testutil_slack (5000));
    char *order = testutil_order_definition (step_extra);
    char *text = zsys_sprintf ("node\n    name = %s\n"
                               "    actors\n        registry\n"
                               "        breaker\n        saga\n"
                               "        shop\n"
                               "saga\n    log = \"%s\"\n    sync = full\n"
                               "%s"
                               "shop\n    stock = 1000\n",
                               self->name, log, order);
    zstr_free (&step_extra);
    zstr_free (&order);
    char *error = NULL;
    self->config = keel_config_load_string (text, "test", &error);
    ck_assert_msg (self->config, "%s", error);
    free (text);
    keel_node_args_t args = {self->config, s_defs};
    self->node = zactor_new (keel_node_actor, &args);
    ck_assert_ptr_nonnull (self->node);
    error = keel_actor_status (self->node);
    ck_assert_msg (error == NULL, "%s", error);
    char *bus = keel_node_bus_endpoint (self->name);
    self->saga = keel_client_new ("tester", bus, "saga");
    self->shop = keel_client_new ("tester", bus, "shop");
    ck_assert_ptr_nonnull (self->saga);
    ck_assert_ptr_nonnull (self->shop);

    //  Wait (bounded) until the registry offers each shop service.
    keel_client_t *registry = keel_client_new ("tester", bus, "registry");
    const char *services[] = {"orders", "inventory", "payments"};
    testutil_wait_discovered (registry, services, 3, testutil_slack (10000));
    keel_client_destroy (&registry);
    free (bus);
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
    free (self);
    *self_p = NULL;
}

// ---------------------------------------------------------------------------
//  Calls that never ck_assert (usable while the disk is full)

//  saga.start of "order" with `input`; returns the code, *st_p the status
//  (caller frees) or NULL, *error_p the error text (caller frees) or NULL.
static int
s_try_start (s_node_t *self, const char *input, bool wait,
             Keel__SagaStatus **st_p, char **error_p)
{
    Keel__StartRequest req = KEEL__START_REQUEST__INIT;
    req.definition = (char *)"order";
    req.input.data = (uint8_t *)input;
    req.input.len = strlen (input);
    req.wait = wait;
    req.wait_ms = wait ? (uint32_t)testutil_slack (15000) : 0;
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)testutil_slack (20000)};
    *st_p = NULL;
    *error_p = NULL;
    return keel_client_call (self->saga, "saga.start", &req.base, &opts,
                             &keel__saga_status__descriptor,
                             (ProtobufCMessage **)st_p, error_p);
}

//  saga.status of `id`, or NULL.
static Keel__SagaStatus *
s_try_status (s_node_t *self, const char *id)
{
    Keel__SagaRef ref = KEEL__SAGA_REF__INIT;
    ref.id = (char *)id;
    Keel__SagaStatus *st = NULL;
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)testutil_slack (5000)};
    if (keel_client_call (self->saga, "saga.status", &ref.base, &opts,
                          &keel__saga_status__descriptor,
                          (ProtobufCMessage **)&st, NULL) != KEEL_OK)
        return NULL;
    return st;
}

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
                    : NULL;
}

//  The shop's effects (caller decrefs), or NULL.
static json_t *
s_try_effects (s_node_t *self)
{
    s_raw_t raw = {false, 0, NULL};
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)testutil_slack (5000)};
    if (!keel_client_request_bytes (self->shop, "shop.effects", NULL, 0, &opts,
                                    s_on_raw, &raw))
        return NULL;
    while (!raw.done) {
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (self->shop)), 0,
                               ZMQ_POLLIN, 0};
        int64_t wait = keel_client_timeout (self->shop);
        zmq_poll (&item, 1, wait < 0 || wait > 100 ? 100 : (long)wait);
        if (keel_client_process (self->shop) < 0)
            return NULL;
    }
    json_t *doc = raw.data ? json_loads (raw.data, 0, NULL) : NULL;
    free (raw.data);
    return doc;
}

//  Actions the shop has answered late and not yet (delay_ms), all services.
static long long
s_pending (json_t *effects)
{
    const char *names[] = {"orders", "inventory", "payments"};
    long long pending = 0;
    for (int i = 0; i < 3; i++)
        pending += json_integer_value (
            json_object_get (json_object_get (effects, names[i]), "pending"));
    return pending;
}

//  How often `service` applied `method` for saga `id`.
static int
s_count (json_t *effects, const char *service, const char *id,
         const char *method)
{
    json_t *saga = json_object_get (
        json_object_get (json_object_get (effects, service), "sagas"), id);
    return saga ? (int)json_integer_value (json_object_get (saga, method)) : 0;
}

// ---------------------------------------------------------------------------
//  The test

//  A saga log file in a new directory made from `dir` (a mkdtemp
//  template, changed in place). Caller frees the path (s_log_remove).
static char *
s_log_in (char *dir)
{
    ck_assert_ptr_nonnull (mkdtemp (dir));
    return zsys_sprintf ("%s/saga.db", dir);
}

//  Remove the directory of s_log_in and free the path.
static void
s_log_remove (const char *dir, char **log_p)
{
    char *cmd = zsys_sprintf ("rm -rf '%s'", dir);
    ck_assert_int_eq (system (cmd), 0);
    free (cmd);
    zstr_free (log_p);
}

#define S_ACCEPTED 6 //  sagas accepted before the fault

static bool
s_finished (Keel__SagaState state)
{
    return state == KEEL__SAGA_STATE__SAGA_COMPLETED ||
           state == KEEL__SAGA_STATE__SAGA_COMPENSATED;
}

//  Sagas in flight when the log fails: refused starts, then every saga ends
//  and is durable once the disk has room again.
START_TEST (test_log_full_in_flight)
{
    char dir[] = "/tmp/keel-sagafault-XXXXXX";
    char *log = s_log_in (dir);
    s_node_t *node = s_node_start (log);

    //  The log works: a saga runs to its end.
    Keel__SagaStatus *st = NULL;
    char *error = NULL;
    int code = s_try_start (node, "{\"item\":\"pear\"}", true, &st, &error);
    ck_assert_msg (code == KEEL_OK, "%s", error);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
    protobuf_c_message_free_unpacked (&st->base, NULL);

    //  Accepted sagas, each waiting on a late payment (even ones are
    //  declined, so they compensate): the fault comes while their charge is
    //  out.
    char *ids[S_ACCEPTED];
    int delay = testutil_slack (1500);
    for (int i = 0; i < S_ACCEPTED; i++) {
        char *input = zsys_sprintf (
            "{\"item\":\"apple\",\"qty\":1,\"amount\":5,\"delay_ms\":%d,"
            "\"slow\":\"payments\"%s}",
            delay, i % 2 ? "" : ",\"fail\":\"payments\"");
        code = s_try_start (node, input, false, &st, &error);
        ck_assert_msg (code == KEEL_OK, "%s", error);
        ids[i] = strdup (st->id);
        protobuf_c_message_free_unpacked (&st->base, NULL);
        free (input);
    }
    for (int i = 0; i < S_ACCEPTED; i++) {
        int64_t deadline = zclock_mono () + testutil_slack (10000);
        while (true) {
            st = s_try_status (node, ids[i]);
            ck_assert_ptr_nonnull (st);
            bool charging =
                st->n_steps == 3 &&
                st->steps[2]->state == KEEL__STEP_STATE__STEP_RUNNING &&
                st->steps[2]->attempts == 1;
            protobuf_c_message_free_unpacked (&st->base, NULL);
            if (charging)
                break;
            ck_assert_msg (zclock_mono () < deadline, "%s never charges",
                           ids[i]);
            zclock_sleep (5); //  polling the status, bounded
        }
    }

    //  The status shows a charge RUNNING as soon as the coordinator decided
    //  it; the command goes out once that decision is durable: wait until
    //  payments has received all of them (the pear's and these).
    int64_t received_by = zclock_mono () + testutil_slack (10000);
    while (true) {
        json_t *effects = s_try_effects (node);
        ck_assert_ptr_nonnull (effects);
        json_int_t received = json_integer_value (json_object_get (
            json_object_get (effects, "payments"), "requests"));
        json_decref (effects);
        if (received >= 1 + S_ACCEPTED)
            break;
        ck_assert_msg (zclock_mono () < received_by,
                       "payments received %lld charges, not %d",
                       (long long)received, 1 + S_ACCEPTED);
        zclock_sleep (5); //  polling the shop, bounded
    }

    uint64_t failures_before = testutil_stat (node->saga, "log_write_failures");
    // ---- the disk is full: no ck_assert until it has room again -------
    int64_t full_at = zclock_mono ();
    s_disk_full (true);
    //  New starts: refused, with the log's error.
    int refused = 0, tried = 0;
    char *first_error = NULL;
    for (int i = 0; i < 5; i++) {
        tried++;
        code = s_try_start (node, "{\"item\":\"plum\"}", false, &st, &error);
        if (st)
            protobuf_c_message_free_unpacked (&st->base, NULL);
        if (code == KEEL_ERR_UNAVAILABLE && error &&
            strstr (error, "saga log cannot be written: "))
            refused++;
        if (!first_error)
            first_error = error ? error : strdup (keel_errname (code));
        else
            free (error);
    }
    //  The late payments come back while the log cannot take them.
    bool answered = false;
    int64_t deadline = zclock_mono () + testutil_slack (10000);
    while (!answered && zclock_mono () < deadline) {
        json_t *effects = s_try_effects (node);
        answered = effects && s_pending (effects) == 0;
        int charged = 0;
        for (int i = 0; answered && i < S_ACCEPTED; i++)
            charged += s_count (effects, "payments", ids[i], "charge") == 1 ||
                       i % 2 == 0;
        answered = answered && charged == S_ACCEPTED;
        json_decref (effects);
        if (!answered)
            zclock_sleep (10); //  polling the shop, bounded
    }
    //  ...and the coordinator took them in (in memory).
    int moved = 0;
    for (int i = 0; answered && i < S_ACCEPTED; i++) {
        deadline = zclock_mono () + testutil_slack (5000);
        while (zclock_mono () < deadline) {
            st = s_try_status (node, ids[i]);
            bool out = st && st->n_steps == 3 &&
                       st->steps[2]->state != KEEL__STEP_STATE__STEP_RUNNING;
            if (st)
                protobuf_c_message_free_unpacked (&st->base, NULL);
            if (out) {
                moved++;
                break;
            }
            zclock_sleep (5); //  polling the status, bounded
        }
    }
    //  Still refused while retries of the kept changes keep failing.
    code = s_try_start (node, "{\"item\":\"plum\"}", false, &st, &error);
    if (st)
        protobuf_c_message_free_unpacked (&st->base, NULL);
    int late_code = code;
    char *late_error = error;
    s_disk_full (false);
    int64_t full_ms = zclock_mono () - full_at;
    // ---- room again ------------------------------------------------------
    //  Failed writes are tried again after a pause that doubles up to 1 s,
    //  not in a loop: a few per second at most.
    uint64_t failures =
        testutil_stat (node->saga, "log_write_failures") - failures_before;
    ck_assert_msg (failures >= 1, "no log write failed");
    ck_assert_msg (failures <= 10 + (uint64_t)full_ms / 500,
                   "%llu failed writes in %lld ms",
                   (unsigned long long)failures, (long long)full_ms);

    ck_assert_msg (refused == tried, "%d of %d starts refused; first: %s",
                   refused, tried, first_error);
    ck_assert (answered);
    ck_assert_int_eq (moved, S_ACCEPTED);
    ck_assert_int_eq (late_code, KEEL_ERR_UNAVAILABLE);
    ck_assert_ptr_nonnull (strstr (late_error, "saga log cannot be written"));
    free (first_error);
    free (late_error);

    //  Every accepted saga ends, each effect applied once.
    for (int i = 0; i < S_ACCEPTED; i++) {
        deadline = zclock_mono () + testutil_slack (15000);
        while (true) {
            st = s_try_status (node, ids[i]);
            ck_assert_ptr_nonnull (st);
            Keel__SagaState state = st->state;
            protobuf_c_message_free_unpacked (&st->base, NULL);
            if (s_finished (state)) {
                ck_assert_int_eq (state,
                                  i % 2 ? KEEL__SAGA_STATE__SAGA_COMPLETED
                                        : KEEL__SAGA_STATE__SAGA_COMPENSATED);
                break;
            }
            ck_assert_msg (zclock_mono () < deadline, "%s stays %d", ids[i],
                           (int)state);
            zclock_sleep (10); //  polling the status, bounded
        }
    }
    json_t *effects = s_try_effects (node);
    ck_assert_ptr_nonnull (effects);
    for (int i = 0; i < S_ACCEPTED; i++) {
        ck_assert_int_eq (s_count (effects, "orders", ids[i], "create"), 1);
        ck_assert_int_eq (s_count (effects, "inventory", ids[i], "reserve"), 1);
        if (i % 2) {
            ck_assert_int_eq (s_count (effects, "payments", ids[i], "charge"),
                              1);
            ck_assert_int_eq (s_count (effects, "orders", ids[i], "cancel"), 0);
        } else {
            ck_assert_int_eq (s_count (effects, "inventory", ids[i], "release"),
                              1);
            ck_assert_int_eq (s_count (effects, "orders", ids[i], "cancel"), 1);
        }
    }
    json_decref (effects);

    //  New starts are accepted again.
    code = s_try_start (node, "{\"item\":\"fig\"}", true, &st, &error);
    ck_assert_msg (code == KEEL_OK, "%s", error);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    s_node_stop (&node);

    //  The ends are durable: another node on the same log reads them.
    node = s_node_start (log);
    for (int i = 0; i < S_ACCEPTED; i++) {
        st = s_try_status (node, ids[i]);
        ck_assert_ptr_nonnull (st);
        ck_assert_int_eq (st->state, i % 2
                                         ? KEEL__SAGA_STATE__SAGA_COMPLETED
                                         : KEEL__SAGA_STATE__SAGA_COMPENSATED);
        protobuf_c_message_free_unpacked (&st->base, NULL);
        free (ids[i]);
    }
    s_node_stop (&node);
    s_log_remove (dir, &log);
}
END_TEST

//  The log fails while nothing is in flight: a start is refused; once the
//  disk has room again, starts are accepted (nothing else would write).
START_TEST (test_log_full_idle)
{
    char dir[] = "/tmp/keel-sagafault-XXXXXX";
    char *log = s_log_in (dir);
    s_node_t *node = s_node_start (log);
    Keel__SagaStatus *st = NULL;
    char *error = NULL;
    int code = s_try_start (node, "{\"item\":\"pear\"}", true, &st, &error);
    ck_assert_msg (code == KEEL_OK, "%s", error);
    protobuf_c_message_free_unpacked (&st->base, NULL);

    s_disk_full (true);
    int codes[2];
    char *errors[2];
    for (int i = 0; i < 2; i++) {
        codes[i] =
            s_try_start (node, "{\"item\":\"plum\"}", true, &st, &errors[i]);
        if (st)
            protobuf_c_message_free_unpacked (&st->base, NULL);
    }
    s_disk_full (false);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg (codes[i] == KEEL_ERR_UNAVAILABLE, "start %d: %s: %s", i,
                       keel_errname (codes[i]), errors[i]);
        ck_assert_ptr_nonnull (
            strstr (errors[i], "saga log cannot be written: "));
        free (errors[i]);
    }

    //  Room again: the next start may still find the old error (a write is
    //  what proves the log healthy), but within a few ticks starts go on.
    int64_t deadline = zclock_mono () + testutil_slack (5000);
    while (true) {
        code = s_try_start (node, "{\"item\":\"fig\"}", true, &st, &error);
        if (code == KEEL_OK)
            break;
        ck_assert_msg (
            code == KEEL_ERR_UNAVAILABLE && zclock_mono () < deadline,
            "start after the fault: %s: %s", keel_errname (code), error);
        free (error);
        zclock_sleep (20); //  bounded: the coordinator's 100 ms tick
    }
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    s_node_stop (&node);
    s_log_remove (dir, &log);
}
END_TEST

//  Starts with the same key while the log cannot be written: none may be
//  answered with an id before that id is durable (a crash would leave the
//  caller an id the log never had).
typedef struct {
    int replies;
    int ok;
    int refused;
} s_dup_t;

static void
s_on_dup (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_dup_t *dup = (s_dup_t *)arg;
    dup->replies++;
    if (reply->code == KEEL_OK)
        dup->ok++;
    else if (reply->code == KEEL_ERR_UNAVAILABLE)
        dup->refused++;
}

#define S_DUP_ROUNDS 20
#define S_DUP_BURST  4

START_TEST (test_duplicate_start_not_durable)
{
    char dir[] = "/tmp/keel-sagafault-XXXXXX";
    char *log = s_log_in (dir);
    s_node_t *node = s_node_start (log);
    Keel__SagaStatus *st = NULL;
    char *error = NULL;
    int code = s_try_start (node, "{\"item\":\"pear\"}", true, &st, &error);
    ck_assert_msg (code == KEEL_OK, "%s", error);
    protobuf_c_message_free_unpacked (&st->base, NULL);

    // ---- the disk is full: no ck_assert until it has room again -------
    s_disk_full (true);
    s_dup_t dup = {0, 0, 0};
    int sent = 0;
    const char *input = "{\"item\":\"apple\",\"qty\":1,\"amount\":1}";
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)testutil_slack (5000),
                             .retries = KEEL_NO_RETRY};
    for (int round = 0; round < S_DUP_ROUNDS; round++) {
        char key[32];
        snprintf (key, sizeof key, "dup-%d", round);
        Keel__StartRequest req = KEEL__START_REQUEST__INIT;
        req.definition = "order";
        req.input.data = (uint8_t *)input;
        req.input.len = strlen (input);
        req.idempotency_key = key;
        //  A burst: the coordinator reads them together, before the batch
        //  with the new saga has failed.
        for (int i = 0; i < S_DUP_BURST; i++)
            sent += keel_client_request (node->saga, "saga.start", &req.base,
                                         &opts, s_on_dup, &dup) != 0;
        while (dup.replies < sent) {
            zmq_pollitem_t item = {
                zsock_resolve (keel_client_sock (node->saga)), 0, ZMQ_POLLIN,
                0};
            int64_t wait = keel_client_timeout (node->saga);
            zmq_poll (&item, 1, wait < 0 || wait > 100 ? 100 : (long)wait);
            if (keel_client_process (node->saga) < 0)
                break;
        }
        //  Past the coordinator's tick, which lets the next start try the
        //  log again.
        zclock_sleep (30);
    }
    s_disk_full (false);
    // ---- room again ------------------------------------------------------

    ck_assert_int_eq (sent, S_DUP_ROUNDS * S_DUP_BURST);
    ck_assert_int_eq (dup.replies, sent);
    ck_assert_msg (dup.ok == 0, "%d starts answered with an id never written",
                   dup.ok);
    ck_assert_int_eq (dup.refused, sent);
    s_node_stop (&node);
    s_log_remove (dir, &log);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("saga_faults");
    TCase *tc = tcase_create ("log");
    tcase_set_timeout (tc, getenv ("KEEL_TEST_MEMCHECK") ? 600 : 60);
    tcase_add_test (tc, test_log_full_in_flight);
    tcase_add_test (tc, test_log_full_idle);
    tcase_add_test (tc, test_duplicate_start_not_durable);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
