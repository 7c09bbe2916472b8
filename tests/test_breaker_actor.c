/*  test_breaker_actor.c - the breaker actor and local mirrors on real
    sockets: a transition reported by one caller reaches another within a
    few milliseconds; manual control over the bus; callers keep deciding
    with the actor stopped. */
#include "breaker.pb-c.h"
#include "breaker_actor.h"
#include "breaker_mirror.h"
#include "keel_client.h"
#include "keel_node.h"
#include "testutil.h"

#include <string.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"breaker", keel_breaker_actor, "breaker"},
    {NULL, NULL, NULL},
};

typedef struct {
    char *name;
    keel_config_t *config;
    keel_node_args_t args;
    zactor_t *node;
    char *bus;
    char *events;
} s_node_t;

static void
s_node_start (s_node_t *n, int transport)
{
    static int counter = 0;
    n->name = zsys_sprintf ("b%d-%d", (int)getpid (), ++counter);
    const char *settings = "breaker\n    window_size = 10\n"
                           "    minimum_calls = 4\n"
                           "    failure_threshold = 50\n"
                           "    open_wait = 300ms\n"
                           "    half_open_calls = 2\n";
    char *text;
    if (transport == 0) {
        n->bus = keel_node_bus_endpoint (n->name);
        n->events = keel_node_events_endpoint (n->name);
        text = zsys_sprintf ("node\n    name = %s\n    actors\n        "
                             "breaker\n%s",
                             n->name, settings);
    } else {
        n->bus = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
        n->events = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
        text = zsys_sprintf ("node\n    name = %s\n    bus = %s\n    events = "
                             "%s\n    actors\n        breaker\n%s",
                             n->name, n->bus, n->events, settings);
    }
    char *error = NULL;
    n->config = keel_config_load_string (text, "test", &error);
    ck_assert_msg (n->config, "%s", error);
    free (text);
    n->args.config = n->config;
    n->args.defs = s_defs;
    n->node = zactor_new (keel_node_actor, &n->args);
    error = keel_actor_status (n->node);
    ck_assert_msg (!error, "%s", error);
}

static void
s_node_stop (s_node_t *n)
{
    zactor_destroy (&n->node);
    keel_config_destroy (&n->config);
    free (n->name);
    free (n->bus);
    free (n->events);
}

// ---------------------------------------------------------------------------
//  A caller: a mirror in its own thread, driven by pipe commands.
//    "FAIL key n"   acquire + record n failures, flush; replies "OK"
//    "TRY key"      replies "PERMIT" or "REFUSE"
//    "STATE key"    replies the local state's name
//  and it reports "APPLIED key STATE" whenever it takes a state from the
//  actor.

typedef struct {
    const char *bus;    //  actor reached through this front door
    const char *events; //  its events; NULL = no actor at all
} s_caller_args_t;

static void
s_applied (const char *key, keel_breaker_state_t state, void *arg)
{
    zstr_sendf ((zsock_t *)arg, "APPLIED %s %s", key,
                keel_breaker_state_name (state));
}

static int
s_on_command (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void)loop;
    keel_breaker_mirror_t *mirror = (keel_breaker_mirror_t *)arg;
    char *command = zstr_recv (pipe);
    if (!command || streq (command, "$TERM")) {
        zstr_free (&command);
        return -1;
    }
    char verb[16] = "", key[64] = "";
    int count = 0;
    sscanf (command, "%15s %63s %d", verb, key, &count);
    if (streq (verb, "FAIL")) {
        for (int i = 0; i < count; i++)
            if (keel_breaker_mirror_acquire (mirror, key, NULL))
                keel_breaker_mirror_record (mirror, key, KEEL_OUTCOME_FAILURE,
                                            1000);
        keel_breaker_mirror_flush (mirror);
        zstr_send (pipe, "OK");
    } else if (streq (verb, "TRY"))
        zstr_send (pipe, keel_breaker_mirror_acquire (mirror, key, NULL)
                             ? "PERMIT"
                             : "REFUSE");
    else if (streq (verb, "STATE"))
        zstr_send (pipe, keel_breaker_state_name (
                             keel_breaker_mirror_state (mirror, key)));
    zstr_free (&command);
    return 0;
}

static void
s_caller (zsock_t *pipe, void *args)
{
    s_caller_args_t *caller = (s_caller_args_t *)args;
    keel_breaker_config_t config;
    keel_breaker_config_default (&config);
    config.window_size = 10;
    config.minimum_calls = 4;
    config.open_wait_us = 300000;
    config.half_open_calls = 2;
    //  No actor: report to an endpoint nobody serves.
    char *nowhere = NULL;
    if (!caller->events)
        nowhere = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
    keel_breaker_mirror_t *mirror = keel_breaker_mirror_new (
        "caller", caller->events ? caller->bus : nowhere, "breaker",
        caller->events, &config);
    keel_breaker_mirror_set_listener (mirror, s_applied, pipe);
    zloop_t *loop = zloop_new ();
    keel_breaker_mirror_attach (mirror, loop);
    zloop_reader (loop, pipe, s_on_command, mirror);
    zloop_set_nonstop (loop, true);
    zsock_signal (pipe, 0);
    zloop_start (loop);
    keel_breaker_mirror_destroy (&mirror);
    zloop_destroy (&loop);
    free (nowhere);
}

//  Next message from a caller starting with `prefix` (others skipped).
static char *
s_expect (zactor_t *caller, const char *prefix, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        zsock_set_rcvtimeo (caller, (int)(deadline - zclock_mono ()) + 1);
        char *text = zstr_recv (caller);
        if (!text)
            return NULL;
        //  A command's answer never starts with "APPLIED": skip reports
        //  that arrive in between unless one is what we wait for.
        bool report = strncmp (text, "APPLIED ", 8) == 0;
        bool want_report = strncmp (prefix, "APPLIED", 7) == 0;
        if (report == want_report &&
            strncmp (text, prefix, strlen (prefix)) == 0)
            return text;
        free (text);
    }
    return NULL;
}

static char *
s_ask (zactor_t *caller, const char *command, const char *expect_prefix)
{
    zstr_send (caller, command);
    return s_expect (caller, expect_prefix, 2000);
}

// ---------------------------------------------------------------------------

START_TEST (test_transition_reaches_callers)
{
    s_node_t n = {0};
    s_node_start (&n, _i);
    s_caller_args_t args = {n.bus, n.events};
    zactor_t *a = zactor_new (s_caller, &args);
    zactor_t *b = zactor_new (s_caller, &args);

    //  The events' slow joiner: make sure B's subscription is live by
    //  forcing a harmless state on another key until B hears it.
    keel_client_t *control = keel_client_new ("tester", n.bus, "breaker");
    Keel__ControlRequest req = KEEL__CONTROL_REQUEST__INIT;
    req.key = "probe";
    req.action = KEEL__CONTROL_REQUEST__ACTION__DISABLE;
    char *seen = NULL;
    for (int i = 0; i < 100 && !seen; i++) {
        //  Alternate, so that every request is a transition (and an event):
        //  disabling a disabled breaker would publish nothing.
        req.action = i % 2 ? KEEL__CONTROL_REQUEST__ACTION__FORCE_CLOSE
                           : KEEL__CONTROL_REQUEST__ACTION__DISABLE;
        ck_assert_int_eq (keel_client_call (control, "breaker.control",
                                            &req.base, NULL, NULL, NULL, NULL),
                          KEEL_OK);
        seen = s_expect (b, "APPLIED probe", 50);
    }
    ck_assert_ptr_nonnull (seen);
    free (seen);

    //  Caller A fails 4 calls to "pay": the actor opens the breaker; B
    //  hears it within a few milliseconds, and refuses without trying.
    int64_t start = zclock_usecs ();
    char *ok = s_ask (a, "FAIL pay 4", "OK");
    ck_assert_ptr_nonnull (ok);
    free (ok);
    seen = s_expect (b, "APPLIED pay OPEN", 2000);
    ck_assert_ptr_nonnull (seen);
    int64_t took_us = zclock_usecs () - start;
    free (seen);
    ck_assert_msg (took_us < testutil_slack (50) * 1000, "took %d us",
                   (int)took_us);
    char *answer = s_ask (b, "TRY pay", "");
    ck_assert_str_eq (answer, "REFUSE");
    free (answer);

    //  Manual control over the bus: force-close; both follow.
    req.key = "pay";
    req.action = KEEL__CONTROL_REQUEST__ACTION__FORCE_CLOSE;
    Keel__BreakerInfo *info = NULL;
    ck_assert_int_eq (keel_client_call (control, "breaker.control", &req.base,
                                        NULL, &keel__breaker_info__descriptor,
                                        (ProtobufCMessage **)&info, NULL),
                      KEEL_OK);
    ck_assert_int_eq (info->state, KEEL__BREAKER_STATE__CLOSED);
    protobuf_c_message_free_unpacked (&info->base, NULL);
    seen = s_expect (b, "APPLIED pay CLOSED", 2000);
    ck_assert_ptr_nonnull (seen);
    free (seen);

    //  List and get.
    Keel__BreakerList *list = NULL;
    ck_assert_int_eq (keel_client_call (control, "breaker.list", NULL, NULL,
                                        &keel__breaker_list__descriptor,
                                        (ProtobufCMessage **)&list, NULL),
                      KEEL_OK);
    ck_assert_uint_eq (list->n_breakers, 2);
    ck_assert_str_eq (list->breakers[0]->key, "pay");
    ck_assert_uint_eq (list->breakers[0]->calls, 4);
    ck_assert_uint_eq (list->breakers[0]->failures, 4);
    protobuf_c_message_free_unpacked (&list->base, NULL);
    Keel__BreakerKey key = KEEL__BREAKER_KEY__INIT;
    key.key = "nope";
    ck_assert_int_eq (keel_client_call (control, "breaker.get", &key.base, NULL,
                                        NULL, NULL, NULL),
                      KEEL_ERR_NOT_FOUND);

    keel_client_destroy (&control);
    zactor_destroy (&a);
    zactor_destroy (&b);
    s_node_stop (&n);
}
END_TEST

//  With no actor at all, a caller's own breaker still decides.
START_TEST (test_works_without_actor)
{
    s_caller_args_t args = {NULL, NULL};
    zactor_t *a = zactor_new (s_caller, &args);
    char *ok = s_ask (a, "FAIL pay 4", "OK");
    ck_assert_ptr_nonnull (ok);
    free (ok);
    char *answer = s_ask (a, "STATE pay", "");
    ck_assert_str_eq (answer, "OPEN");
    free (answer);
    answer = s_ask (a, "TRY pay", "");
    ck_assert_str_eq (answer, "REFUSE");
    free (answer);
    zactor_destroy (&a);
}
END_TEST

//  The actor stops in the middle: callers keep deciding locally.
START_TEST (test_actor_stops)
{
    s_node_t n = {0};
    s_node_start (&n, 1);
    s_caller_args_t args = {n.bus, n.events};
    zactor_t *a = zactor_new (s_caller, &args);
    s_node_stop (&n);
    char *ok = s_ask (a, "FAIL pay 4", "OK");
    ck_assert_ptr_nonnull (ok);
    free (ok);
    char *answer = s_ask (a, "TRY pay", "");
    ck_assert_str_eq (answer, "REFUSE");
    free (answer);
    zactor_destroy (&a);
}
END_TEST

START_TEST (test_bad_config)
{
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (
        "node\n    name = x\n    actors\n        breaker\nbreaker\n"
        "    failure_threshold = 150\n",
        "bad.cfg", &error);
    ck_assert_ptr_nonnull (config);
    keel_node_args_t args = {config, s_defs};
    zactor_t *node = zactor_new (keel_node_actor, &args);
    error = keel_actor_status (node);
    ck_assert_ptr_nonnull (error);
    ck_assert_ptr_nonnull (strstr (error, "bad.cfg:6"));
    free (error);
    zactor_destroy (&node);
    keel_config_destroy (&config);
}
END_TEST

//  The keel breaker verbs, as a user types them.
START_TEST (test_cli)
{
    s_node_t n = {0};
    s_node_start (&n, 1);
    char *output = NULL;
    char *open[] = {KEEL_BIN, "breaker", "force-open", "pay",
                    "--bus",  n.bus,     NULL};
    ck_assert_int_eq (testutil_run_cmd (open, &output), 0);
    ck_assert_ptr_nonnull (strstr (output, "pay is now FORCED_OPEN"));
    free (output);
    char *list[] = {KEEL_BIN, "breaker", "list", "--bus", n.bus, NULL};
    ck_assert_int_eq (testutil_run_cmd (list, &output), 0);
    ck_assert_ptr_nonnull (strstr (output, "FORCED_OPEN"));
    free (output);
    char *show[] = {KEEL_BIN, "breaker", "show", "pay",
                    "--json", "--bus",   n.bus,  NULL};
    ck_assert_int_eq (testutil_run_cmd (show, &output), 0);
    ck_assert_ptr_nonnull (strstr (output, "\"state\":\"FORCED_OPEN\""));
    free (output);
    const char *verbs[] = {"force-close", "disable", "reset"};
    const char *states[] = {"CLOSED", "DISABLED", "CLOSED"};
    for (int i = 0; i < 3; i++) {
        char *argv[] = {KEEL_BIN, "breaker", (char *)verbs[i], "pay", "--bus",
                        n.bus,    NULL};
        ck_assert_int_eq (testutil_run_cmd (argv, &output), 0);
        ck_assert_ptr_nonnull (strstr (output, states[i]));
        free (output);
    }
    char *missing[] = {KEEL_BIN, "breaker", "show", "nope",
                       "--bus",  n.bus,     NULL};
    ck_assert_int_eq (testutil_run_cmd (missing, NULL), 1);
    char *usage[] = {KEEL_BIN, "breaker", "force-open", NULL};
    ck_assert_int_eq (testutil_run_cmd (usage, NULL), 2);
    s_node_stop (&n);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("breaker_actor");
    TCase *tc = tcase_create ("breaker_actor");
    tcase_set_timeout (tc, 60);
    tcase_add_loop_test (tc, test_transition_reaches_callers, 0, 2);
    tcase_add_test (tc, test_works_without_actor);
    tcase_add_test (tc, test_actor_stops);
    tcase_add_test (tc, test_bad_config);
    tcase_add_test (tc, test_cli);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
