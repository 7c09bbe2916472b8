/*  test_node.c - the node runtime and the keel program: the same scenario
    over an inproc-only config and a tcp config; bad configs; two processes
    over tcp; clean shutdown on SIGTERM; CLI exit codes. */
#include "keel_client.h"
#include "keel_events.h"
#include "keel_node.h"
#include "echo.pb-c.h"
#include "echo_actor.h"
#include "node.pb-c.h"
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"echo", keel_echo_actor, "echo"},
    {NULL, NULL, NULL},
};

//  _i = 0: inproc only; 1: tcp front door and events.
static char *
s_config_text (int transport, char **node_p)
{
    static int counter = 0;
    *node_p = zsys_sprintf ("n%d-%d", (int)getpid (), ++counter);
    if (transport == 0)
        return zsys_sprintf ("node\n    name = %s\n    actors\n        echo\n",
                             *node_p);
    return zsys_sprintf (
        "node\n    name = %s\n    bus = tcp://127.0.0.1:%d\n"
        "    events = tcp://127.0.0.1:%d\n    actors\n        echo\n"
        "echo\n    instance = echo-x\n",
        *node_p, testutil_free_port (), testutil_free_port ());
}

START_TEST (test_node_serves)
{
    char *node_name;
    char *text = s_config_text (_i, &node_name);
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "test", &error);
    ck_assert_msg (config, "%s", error);
    keel_node_args_t args = {config, s_defs};
    zactor_t *node = zactor_new (keel_node_actor, &args);
    ck_assert_ptr_null (keel_actor_status (node));

    //  Where the node is: inproc, or the tcp bus it bound. Nothing below
    //  depends on which.
    const char *bus = NULL, *events = NULL;
    keel_config_string (config, "node/bus", NULL, &bus);
    keel_config_string (config, "node/events", NULL, &events);
    char *bus_ep = bus ? strdup (bus) : keel_node_bus_endpoint (node_name);
    char *events_ep =
        events ? strdup (events) : keel_node_events_endpoint (node_name);

    //  Node info.
    keel_client_t *to_node = keel_client_new ("tester", bus_ep, NULL);
    Keel__NodeInfo *info = NULL;
    ck_assert_int_eq (keel_client_call (to_node, "node.info", NULL, NULL,
                                        &keel__node_info__descriptor,
                                        (ProtobufCMessage **)&info, NULL),
                      KEEL_OK);
    ck_assert_str_eq (info->name, node_name);
    ck_assert_uint_eq (info->n_actors, 1);
    ck_assert_str_eq (info->actors[0]->name, "echo");
    protobuf_c_message_free_unpacked (&info->base, NULL);

    //  Events: subscribe first, then call.
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_subscriber_connect (sub, events_ep);
    keel_subscriber_subscribe (sub, "echo.");

    //  A request relayed through the front door to the echo actor.
    //  Reached by name: the directory says where "echo" is, whatever the
    //  transport.
    keel_directory_t *directory = keel_directory_new ();
    ck_assert_int_eq (keel_directory_set (directory, "echo", bus_ep, events_ep),
                      0);
    keel_client_t *to_echo =
        keel_client_new_named ("tester", directory, "echo");
    ck_assert_ptr_nonnull (to_echo);
    ck_assert_ptr_null (keel_client_new_named ("tester", directory, "nope"));
    ck_assert_int_eq (errno, ENOENT);
    keel_directory_destroy (&directory);
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = "hi";
    const keel_event_t *event = NULL;
    //  The subscription reaches the proxy asynchronously (slow joiner):
    //  call until an event shows up, bounded.
    for (int i = 0; i < 200 && !event; i++) {
        Keel__EchoReply *reply = NULL;
        ck_assert_int_eq (keel_client_call (to_echo, "echo.say", &req.base,
                                            NULL, &keel__echo_reply__descriptor,
                                            (ProtobufCMessage **)&reply, NULL),
                          KEEL_OK);
        ck_assert_str_eq (reply->text, "hi");
        char *instance = zsys_sprintf ("%s-echo", node_name);
        ck_assert_str_eq (reply->instance, _i == 0 ? instance : "echo-x");
        zstr_free (&instance);
        protobuf_c_message_free_unpacked (&reply->base, NULL);
        event = keel_subscriber_recv (sub, 20);
    }
    ck_assert_ptr_nonnull (event);
    ck_assert_str_eq (event->envelope->type, "echo.said");
    ck_assert_str_eq (event->envelope->sender, "echo");

    //  Errors relayed with their code.
    req.fail = true;
    char *text_error = NULL;
    ck_assert_int_eq (keel_client_call (to_echo, "echo.say", &req.base, NULL,
                                        NULL, NULL, &text_error),
                      KEEL_ERR_INTERNAL);
    ck_assert_ptr_nonnull (strstr (text_error, "asked to fail"));
    free (text_error);
    keel_client_destroy (&to_echo);

    //  A service the node does not run.
    keel_client_t *nowhere = keel_client_new ("tester", bus_ep, "nowhere");
    ck_assert_int_eq (
        keel_client_call (nowhere, "x.y", NULL, NULL, NULL, NULL, NULL),
        KEEL_ERR_UNKNOWN_SERVICE);
    keel_client_destroy (&nowhere);

    keel_subscriber_destroy (&sub);
    keel_client_destroy (&to_node);
    zactor_destroy (&node);
    keel_config_destroy (&config);
    free (bus_ep);
    free (events_ep);
    free (text);
    free (node_name);
}
END_TEST

//  Each bad config gives an error naming file, line and key.
START_TEST (test_bad_config)
{
    struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"node\n    name = a\n    bsu = tcp://127.0.0.1:1\n",
         "bad.cfg:3: key 'node/bsu': unknown key"},
        {"node\n    name = a\n    actors\n        nope\n",
         "bad.cfg:4: key 'node/actors/nope': no actor named 'nope'"},
        {"node\n    name = a\n    bus = tcp://nowhere\n", "bad.cfg:3"},
        {"node\n    max_message_size = 12\n", "bad.cfg:2"},
        {"node\n    name = a\necho\n    colour = red\n    \n"
         "    \nx = 1\n",
         "bad.cfg:7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *error = NULL;
        keel_config_t *config =
            keel_config_load_string (cases[i].text, "bad.cfg", &error);
        ck_assert_msg (config, "%s", error);
        keel_node_args_t args = {config, s_defs};
        zactor_t *node = zactor_new (keel_node_actor, &args);
        error = keel_actor_status (node);
        ck_assert_msg (error && strstr (error, cases[i].expect),
                       "case %zu: got '%s'", i, error ? error : "(none)");
        free (error);
        zactor_destroy (&node);
        keel_config_destroy (&config);
    }
}
END_TEST

//  Two processes over tcp: a node, and the CLI talking to it.
START_TEST (test_two_processes)
{
    int bus_port = testutil_free_port (), events_port = testutil_free_port ();
    char *text = zsys_sprintf (
        "# a one-actor node\nnode\n    name = proc\n"
        "    bus = tcp://127.0.0.1:%d\n    events = tcp://127.0.0.1:%d\n"
        "    actors\n        echo\n",
        bus_port, events_port);
    char *path = testutil_write_temp (text);
    char *bus = zsys_sprintf ("tcp://127.0.0.1:%d", bus_port);

    //  Under KEEL_TEST_MEMCHECK=1 (the valgrind target) the node itself runs in
    //  memcheck: a leak or error at shutdown fails its exit status.
    bool memcheck = getenv ("KEEL_TEST_MEMCHECK") != NULL;
    char *plain_argv[] = {KEEL_BIN, "node", "-c", path, NULL};
    char *memcheck_argv[] = {"/usr/bin/valgrind",
                             "-q",
                             "--leak-check=full",
                             "--errors-for-leak-kinds=definite,indirect",
                             "--error-exitcode=99",
                             KEEL_BIN,
                             "node",
                             "-c",
                             path,
                             NULL};
    int patience = memcheck ? 60000 : 10000;
    int node_out;
    pid_t node =
        testutil_spawn (memcheck ? memcheck_argv : plain_argv, &node_out);
    char *seen = testutil_wait_for (node_out, "running", patience);
    ck_assert_ptr_nonnull (seen);
    free (seen);

    char *output = NULL;
    char *echo_argv[] = {KEEL_BIN, "echo", "across processes",
                         "--bus",  bus,    NULL};
    ck_assert_int_eq (testutil_run_cmd (echo_argv, &output), 0);
    ck_assert_ptr_nonnull (strstr (output, "across processes"));
    free (output);

    char *json_argv[] = {KEEL_BIN, "ping", "echo", "--json",
                         "--bus",  bus,    NULL};
    ck_assert_int_eq (testutil_run_cmd (json_argv, &output), 0);
    ck_assert_ptr_nonnull (strstr (output, "\"name\":\"echo\""));
    free (output);

    //  An error reply exits 1.
    char *fail_argv[] = {KEEL_BIN, "echo", "x", "--fail", "--bus", bus, NULL};
    ck_assert_int_eq (testutil_run_cmd (fail_argv, &output), 1);
    ck_assert_ptr_nonnull (strstr (output, "INTERNAL"));
    free (output);

    //  watch sees an event published by the other process.
    char *watch_argv[] = {KEEL_BIN, "watch", "echo.",  "--count", "1",
                          "--bus",  bus,     "--json", NULL};
    int watch_out;
    pid_t watcher = testutil_spawn (watch_argv, &watch_out);
    char *said = NULL;
    for (int i = 0; i < 100 && !said; i++) {
        ck_assert_int_eq (testutil_run_cmd (echo_argv, NULL), 0);
        said = testutil_wait_for (watch_out, "echo.said", 100);
    }
    ck_assert_ptr_nonnull (said);
    free (said);
    ck_assert_int_eq (testutil_reap (watcher, 5000), 0);
    close (watch_out);

    //  SIGTERM: a clean stop, exit 0.
    kill (node, SIGTERM);
    seen = testutil_wait_for (node_out, "stopped", patience);
    ck_assert_ptr_nonnull (seen);
    free (seen);
    ck_assert_int_eq (testutil_reap (node, patience), 0);
    close (node_out);

    //  Now nobody is there: exit 3, quickly.
    char *ping_argv[] = {KEEL_BIN,    "ping", "--bus", bus,
                         "--timeout", "300",  NULL};
    ck_assert_int_eq (testutil_run_cmd (ping_argv, NULL), 3);

    unlink (path);
    free (path);
    free (bus);
    free (text);
}
END_TEST

START_TEST (test_cli_usage)
{
    char *output = NULL;
    char *bogus[] = {KEEL_BIN, "bogus", NULL};
    ck_assert_int_eq (testutil_run_cmd (bogus, &output), 2);
    free (output);
    char *none[] = {KEEL_BIN, NULL};
    ck_assert_int_eq (testutil_run_cmd (none, NULL), 2);
    char *bad_opt[] = {KEEL_BIN, "ping", "--nope", NULL};
    ck_assert_int_eq (testutil_run_cmd (bad_opt, NULL), 2);
    char *bad_timeout[] = {KEEL_BIN, "ping", "--timeout", "soon", NULL};
    ck_assert_int_eq (testutil_run_cmd (bad_timeout, NULL), 2);
    //  --help on every verb.
    const char *verbs[] = {"node", "ping", "info", "stats", "echo", "watch"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        char *help[] = {KEEL_BIN, (char *)verbs[i], "--help", NULL};
        ck_assert_int_eq (testutil_run_cmd (help, &output), 0);
        ck_assert_ptr_nonnull (strstr (output, "usage: keel"));
        free (output);
    }
    //  A bad config file: exit 1, file and line named.
    char *path = testutil_write_temp ("node\n    nmae = x\n");
    char *bad_cfg[] = {KEEL_BIN, "node", "-c", path, NULL};
    ck_assert_int_eq (testutil_run_cmd (bad_cfg, &output), 1);
    ck_assert_ptr_nonnull (strstr (output, ":2: key 'node/nmae'"));
    free (output);
    unlink (path);
    free (path);
    char *missing[] = {KEEL_BIN, "node", "-c", "/nonexistent/keel.cfg", NULL};
    ck_assert_int_eq (testutil_run_cmd (missing, &output), 1);
    ck_assert_ptr_nonnull (strstr (output, "/nonexistent/keel.cfg"));
    free (output);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("node");
    TCase *tc = tcase_create ("node");
    tcase_set_timeout (tc, 60);
    tcase_add_loop_test (tc, test_node_serves, 0, 2);
    tcase_add_test (tc, test_bad_config);
    tcase_add_test (tc, test_two_processes);
    tcase_add_test (tc, test_cli_usage);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
