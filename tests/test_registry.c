/*  test_registry.c - the registry actor on real sockets, inside a node: the
    same scenario over an inproc-only node and a tcp node; watch with
    snapshot resync; active checks; a service process killed with SIGKILL
    leaving healthy discovery; bad input. */
#include "keel_client.h"
#include "keel_events.h"
#include "keel_node.h"
#include "registry.pb-c.h"
#include "registry_actor.h"
#include "testutil.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {NULL, NULL, NULL},
};

typedef struct {
    char *name;            //  node name
    keel_config_t *config; //  its config
    keel_node_args_t args; //  what the node actor reads, for its life
    zactor_t *node;        //  the node
    char *bus;             //  front door (inproc or tcp)
    char *events;          //  event endpoint
    keel_client_t *client; //  to the registry through the front door
} s_node_t;

//  transport 0: inproc-only node; 1: tcp front door and events.
static void
s_node_start (s_node_t *n, int transport, const char *extra)
{
    static int counter = 0;
    n->name = zsys_sprintf ("r%d-%d", (int)getpid (), ++counter);
    char *text;
    if (transport == 0) {
        n->bus = keel_node_bus_endpoint (n->name);
        n->events = keel_node_events_endpoint (n->name);
        text = zsys_sprintf (
            "node\n    name = %s\n    actors\n        registry\n%s", n->name,
            extra ? extra : "");
    } else {
        n->bus = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
        n->events = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
        text =
            zsys_sprintf ("node\n    name = %s\n    bus = %s\n"
                          "    events = %s\n    actors\n        registry\n%s",
                          n->name, n->bus, n->events, extra ? extra : "");
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
    n->client = keel_client_new ("tester", n->bus, "registry");
}

static void
s_node_stop (s_node_t *n)
{
    keel_client_destroy (&n->client);
    zactor_destroy (&n->node);
    keel_config_destroy (&n->config);
    free (n->name);
    free (n->bus);
    free (n->events);
}

static keel_err_t
s_register (s_node_t *n, const char *id, const char *service,
            const char *endpoint, const char *tag,
            const Keel__HealthCheck *check, char **error_p)
{
    Keel__Instance instance = KEEL__INSTANCE__INIT;
    instance.id = (char *)id;
    instance.service = (char *)service;
    instance.endpoint = (char *)endpoint;
    char *tags[] = {(char *)tag};
    if (tag) {
        instance.n_tags = 1;
        instance.tags = tags;
    }
    instance.check = (Keel__HealthCheck *)check;
    Keel__RegisterRequest req = KEEL__REGISTER_REQUEST__INIT;
    req.instance = &instance;
    return keel_client_call (n->client, "registry.register", &req.base, NULL,
                             NULL, NULL, error_p);
}

//  Discover `service` (healthy only unless `all`): returns the list (caller
//  frees) and asserts the call worked.
static Keel__InstanceList *
s_discover (s_node_t *n, const char *service, const char *tag, bool all)
{
    Keel__DiscoverRequest req = KEEL__DISCOVER_REQUEST__INIT;
    req.service = (char *)service;
    char *tags[] = {(char *)tag};
    if (tag) {
        req.n_tags = 1;
        req.tags = tags;
    }
    req.include_unhealthy = all;
    Keel__InstanceList *list = NULL;
    char *error = NULL;
    keel_err_t rc = keel_client_call (n->client, "registry.discover", &req.base,
                                      NULL, &keel__instance_list__descriptor,
                                      (ProtobufCMessage **)&list, &error);
    ck_assert_msg (rc == KEEL_OK, "discover: %s", error);
    return list;
}

static size_t
s_count (s_node_t *n, const char *service, bool all)
{
    Keel__InstanceList *list = s_discover (n, service, NULL, all);
    size_t count = list->n_instances;
    protobuf_c_message_free_unpacked (&list->base, NULL);
    return count;
}

// ---------------------------------------------------------------------------

START_TEST (test_register_discover)
{
    s_node_t n = {0};
    s_node_start (&n, _i, NULL);
    ck_assert_int_eq (s_register (&n, "a-1", "alpha", "tcp://127.0.0.1:9001",
                                  "blue", NULL, NULL),
                      KEEL_OK);
    ck_assert_int_eq (s_register (&n, "a-2", "alpha", "tcp://127.0.0.1:9002",
                                  "green", NULL, NULL),
                      KEEL_OK);
    ck_assert_int_eq (s_register (&n, "b-1", "beta", "http://127.0.0.1:9003",
                                  NULL, NULL, NULL),
                      KEEL_OK);
    //  No check: passing at once, discoverable, ordered by id.
    Keel__InstanceList *list = s_discover (&n, "alpha", NULL, false);
    ck_assert_uint_eq (list->n_instances, 2);
    ck_assert_str_eq (list->instances[0]->id, "a-1");
    ck_assert_str_eq (list->instances[1]->id, "a-2");
    ck_assert_int_eq (list->instances[0]->health->status,
                      KEEL__HEALTH_STATUS__PASSING);
    ck_assert_uint_eq (list->index, 3);
    protobuf_c_message_free_unpacked (&list->base, NULL);
    list = s_discover (&n, "alpha", "green", false);
    ck_assert_uint_eq (list->n_instances, 1);
    ck_assert_str_eq (list->instances[0]->id, "a-2");
    protobuf_c_message_free_unpacked (&list->base, NULL);

    //  get, list, deregister.
    Keel__GetRequest get = KEEL__GET_REQUEST__INIT;
    get.id = "b-1";
    Keel__Instance *instance = NULL;
    ck_assert_int_eq (keel_client_call (n.client, "registry.get", &get.base,
                                        NULL, &keel__instance__descriptor,
                                        (ProtobufCMessage **)&instance, NULL),
                      KEEL_OK);
    ck_assert_str_eq (instance->endpoint, "http://127.0.0.1:9003");
    protobuf_c_message_free_unpacked (&instance->base, NULL);
    Keel__DeregisterRequest dereg = KEEL__DEREGISTER_REQUEST__INIT;
    dereg.id = "a-1";
    ck_assert_int_eq (keel_client_call (n.client, "registry.deregister",
                                        &dereg.base, NULL, NULL, NULL, NULL),
                      KEEL_OK);
    ck_assert_uint_eq (s_count (&n, "alpha", true), 1);
    //  Unknown id.
    ck_assert_int_eq (keel_client_call (n.client, "registry.deregister",
                                        &dereg.base, NULL, NULL, NULL, NULL),
                      KEEL_ERR_NOT_FOUND);
    get.id = "nope";
    ck_assert_int_eq (keel_client_call (n.client, "registry.get", &get.base,
                                        NULL, NULL, NULL, NULL),
                      KEEL_ERR_NOT_FOUND);
    s_node_stop (&n);
}
END_TEST

START_TEST (test_bad_input)
{
    s_node_t n = {0};
    s_node_start (&n, _i, NULL);
    char *error = NULL;
    const char *bad[][3] = {
        {"", "svc", "tcp://127.0.0.1:1"},  //  empty id
        {"x-1", "", "tcp://127.0.0.1:1"},  //  empty service
        {"x-1", "svc", "ftp://nowhere"},   //  invalid endpoint
        {"x-1", "svc", "tcp://127.0.0.1"}, //  no port
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq (s_register (&n, bad[i][0], bad[i][1], bad[i][2], NULL,
                                      NULL, &error),
                          KEEL_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull (error);
        free (error);
    }
    //  Oversized tags.
    char big[1024];
    memset (big, 't', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ck_assert_int_eq (
        s_register (&n, "x-1", "svc", "tcp://127.0.0.1:1", big, NULL, NULL),
        KEEL_ERR_INVALID_ARGUMENT);
    //  Missing payload.
    ck_assert_int_eq (keel_client_call (n.client, "registry.register", NULL,
                                        NULL, NULL, NULL, NULL),
                      KEEL_ERR_BAD_REQUEST);
    //  Heartbeat for an unknown id: NOT_FOUND, the SDK's cue.
    Keel__HeartbeatRequest hb = KEEL__HEARTBEAT_REQUEST__INIT;
    hb.id = "ghost";
    ck_assert_int_eq (keel_client_call (n.client, "registry.heartbeat",
                                        &hb.base, NULL, NULL, NULL, NULL),
                      KEEL_ERR_NOT_FOUND);
    //  Nothing changed.
    Keel__InstanceList *list = NULL;
    Keel__ListRequest all = KEEL__LIST_REQUEST__INIT;
    ck_assert_int_eq (keel_client_call (n.client, "registry.list", &all.base,
                                        NULL, &keel__instance_list__descriptor,
                                        (ProtobufCMessage **)&list, NULL),
                      KEEL_OK);
    ck_assert_uint_eq (list->n_instances, 0);
    ck_assert_uint_eq (list->index, 0);
    protobuf_c_message_free_unpacked (&list->base, NULL);
    s_node_stop (&n);
}
END_TEST

//  Watch: a late subscriber takes a snapshot, skips what it covers, and
//  then sees every change in order, no polling.
START_TEST (test_watch_snapshot)
{
    s_node_t n = {0};
    s_node_start (&n, _i, NULL);
    ck_assert_int_eq (
        s_register (&n, "w-1", "web", "tcp://127.0.0.1:9101", NULL, NULL, NULL),
        KEEL_OK);
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_subscriber_connect (sub, n.events);
    keel_subscriber_subscribe (sub, "registry.");
    //  The subscription must reach the proxy before changes count: make
    //  changes until one is seen (bounded), as any late joiner would.
    const keel_event_t *event = NULL;
    char id[32];
    for (int i = 0; i < 200 && !event; i++) {
        snprintf (id, sizeof id, "probe-%d", i);
        s_register (&n, id, "probe", "tcp://127.0.0.1:9100", NULL, NULL, NULL);
        event = keel_subscriber_recv (sub, 20);
    }
    ck_assert_ptr_nonnull (event);
    //  Snapshot: everything, current to an index.
    Keel__InstanceList *snap = NULL;
    ck_assert_int_eq (keel_client_call (n.client, "registry.snapshot", NULL,
                                        NULL, &keel__instance_list__descriptor,
                                        (ProtobufCMessage **)&snap, NULL),
                      KEEL_OK);
    ck_assert_uint_ge (snap->n_instances, 2);
    keel_subscriber_expect (sub, "registry", snap->index);
    uint64_t base = snap->index;
    protobuf_c_message_free_unpacked (&snap->base, NULL);
    //  Changes after the snapshot arrive in order, each index + 1.
    ck_assert_int_eq (
        s_register (&n, "w-2", "web", "tcp://127.0.0.1:9102", NULL, NULL, NULL),
        KEEL_OK);
    Keel__DeregisterRequest dereg = KEEL__DEREGISTER_REQUEST__INIT;
    dereg.id = "w-1";
    ck_assert_int_eq (keel_client_call (n.client, "registry.deregister",
                                        &dereg.base, NULL, NULL, NULL, NULL),
                      KEEL_OK);
    const char *expect[] = {"registry.registered", "registry.deregistered"};
    for (int i = 0; i < 2; i++) {
        event = keel_subscriber_recv (sub, 2000);
        ck_assert_ptr_nonnull (event);
        ck_assert (!event->gap);
        ck_assert_str_eq (event->envelope->type, expect[i]);
        ck_assert_uint_eq (event->envelope->sequence, base + 1 + i);
        Keel__RegistryEvent *change =
            (Keel__RegistryEvent *)keel_codec_payload (
                event->envelope, &keel__registry_event__descriptor, NULL);
        ck_assert_ptr_nonnull (change);
        ck_assert_uint_eq (change->index, base + 1 + i);
        ck_assert_str_eq (change->instance->id, i == 0 ? "w-2" : "w-1");
        protobuf_c_message_free_unpacked (&change->base, NULL);
    }
    keel_subscriber_destroy (&sub);
    s_node_stop (&n);
}
END_TEST

//  Heartbeats: TTL checks go critical and leave healthy discovery when
//  heartbeats stop; an active TCP check finds a closed port critical.
START_TEST (test_health)
{
    s_node_t n = {0};
    s_node_start (&n, _i, NULL);
    Keel__HealthCheck ttl = KEEL__HEALTH_CHECK__INIT;
    ttl.ttl_ms = 200;
    ck_assert_int_eq (
        s_register (&n, "t-1", "ttl", "tcp://127.0.0.1:9201", NULL, &ttl, NULL),
        KEEL_OK);
    //  Registering counts as a heartbeat.
    ck_assert_uint_eq (s_count (&n, "ttl", false), 1);
    //  Watch for the change rather than sleep.
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_subscriber_connect (sub, n.events);
    keel_subscriber_subscribe (sub, "registry.health");
    int64_t start = keel_now_ms ();
    const keel_event_t *event = keel_subscriber_recv (sub, 3000);
    ck_assert_ptr_nonnull (event);
    ck_assert_int_ge (keel_now_ms () - start, 100);
    ck_assert_uint_eq (s_count (&n, "ttl", false), 0);
    ck_assert_uint_eq (s_count (&n, "ttl", true), 1);
    //  A heartbeat brings it back.
    Keel__HeartbeatRequest hb = KEEL__HEARTBEAT_REQUEST__INIT;
    hb.id = "t-1";
    ck_assert_int_eq (keel_client_call (n.client, "registry.heartbeat",
                                        &hb.base, NULL, NULL, NULL, NULL),
                      KEEL_OK);
    ck_assert_uint_eq (s_count (&n, "ttl", false), 1);

    //  Active TCP check against a closed port.
    Keel__HealthCheck tcp = KEEL__HEALTH_CHECK__INIT;
    tcp.tcp_connect = true;
    tcp.interval_ms = 50;
    char *closed = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
    ck_assert_int_eq (
        s_register (&n, "c-1", "closed", closed, NULL, &tcp, NULL), KEEL_OK);
    bool critical = false;
    for (int i = 0; i < 100 && !critical; i++) {
        event = keel_subscriber_recv (sub, 100);
        critical = s_count (&n, "closed", true) == 1 &&
                   s_count (&n, "closed", false) == 0 && event;
    }
    ck_assert (critical);
    free (closed);
    keel_subscriber_destroy (&sub);
    s_node_stop (&n);
}
END_TEST

//  A service process registered through the SDK, killed with SIGKILL,
//  leaves healthy discovery within 3 heartbeat intervals (1 s each).
START_TEST (test_kill_nine)
{
    s_node_t n = {0};
    s_node_start (&n, 1, NULL);
    char *svc_ep = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
    char *argv[] = {KEEL_BUILD_DIR "/example_greeter", svc_ep, n.bus, NULL};
    int out;
    pid_t pid = testutil_spawn (argv, &out);
    char *seen = testutil_wait_for (out, "ready", 5000);
    ck_assert_ptr_nonnull (seen);
    free (seen);
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_subscriber_connect (sub, n.events);
    keel_subscriber_subscribe (sub, "registry.");
    //  Registered (an event, or already there).
    bool up = false;
    for (int i = 0; i < 50 && !up; i++) {
        up = s_count (&n, "greeter", false) == 1;
        if (!up)
            keel_subscriber_recv (sub, 100);
    }
    ck_assert (up);
    kill (pid, SIGKILL);
    int64_t killed = keel_now_ms ();
    ck_assert_int_eq (testutil_reap (pid, 5000), -1);
    close (out);
    //  The health event arrives; then discovery no longer has it.
    const keel_event_t *event = NULL;
    while (keel_now_ms () - killed < 6000) {
        event = keel_subscriber_recv (sub, 500);
        if (event && streq (event->envelope->type, "registry.health"))
            break;
        event = NULL;
    }
    ck_assert_ptr_nonnull (event);
    int64_t gone = keel_now_ms () - killed;
    ck_assert_uint_eq (s_count (&n, "greeter", false), 0);
    //  Within three heartbeat intervals, no slack (more under valgrind).
    ck_assert_msg (gone <= 3 * 1000 + testutil_slack (100) - 100, "took %d ms",
                   (int)gone);
    keel_subscriber_destroy (&sub);
    free (svc_ep);
    s_node_stop (&n);
}
END_TEST

//  An active bus ping: the registry pings the instance's endpoint over the
//  bus; a live keel server passes, a dead endpoint goes critical.
START_TEST (test_bus_ping)
{
    s_node_t n = {0};
    s_node_start (&n, _i, NULL);
    Keel__HealthCheck ping = KEEL__HEALTH_CHECK__INIT;
    ping.bus_ping = true;
    ping.interval_ms = 50;
    //  The node's own front door answers keel.ping for service "registry".
    ck_assert_int_eq (
        s_register (&n, "live-1", "registry", n.bus, NULL, &ping, NULL),
        KEEL_OK);
    char *dead = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
    ck_assert_int_eq (
        s_register (&n, "dead-1", "dead", dead, NULL, &ping, NULL), KEEL_OK);
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_subscriber_connect (sub, n.events);
    keel_subscriber_subscribe (sub, "registry.health");
    bool settled = false;
    for (int i = 0; i < 100 && !settled; i++) {
        settled = s_count (&n, "registry", false) == 1 &&
                  s_count (&n, "dead", true) == 1 &&
                  s_count (&n, "dead", false) == 0;
        if (!settled)
            keel_subscriber_recv (sub, 100);
    }
    ck_assert (settled);
    Keel__GetRequest get = KEEL__GET_REQUEST__INIT;
    get.id = "live-1";
    Keel__Instance *instance = NULL;
    ck_assert_int_eq (keel_client_call (n.client, "registry.get", &get.base,
                                        NULL, &keel__instance__descriptor,
                                        (ProtobufCMessage **)&instance, NULL),
                      KEEL_OK);
    ck_assert_str_eq (instance->health->output, "pong");
    ck_assert_uint_gt (instance->health->response_time_us, 0);
    protobuf_c_message_free_unpacked (&instance->base, NULL);
    keel_subscriber_destroy (&sub);
    free (dead);
    s_node_stop (&n);
}
END_TEST

//  A restarted registry learns a live service again within two heartbeat
//  intervals: the SDK registers again when a heartbeat gets NOT_FOUND.
START_TEST (test_registry_restart)
{
    s_node_t n = {0};
    s_node_start (&n, 1, NULL);
    char *svc_ep = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
    char *argv[] = {KEEL_BUILD_DIR "/example_greeter", svc_ep, n.bus, NULL};
    int out;
    pid_t pid = testutil_spawn (argv, &out);
    char *seen = testutil_wait_for (out, "ready", 5000);
    ck_assert_ptr_nonnull (seen);
    free (seen);
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_subscriber_connect (sub, n.events);
    keel_subscriber_subscribe (sub, "registry.");
    bool up = false;
    for (int i = 0; i < 100 && !up; i++) {
        up = s_count (&n, "greeter", false) == 1;
        if (!up)
            keel_subscriber_recv (sub, 50); //  a change, or 50 ms
    }
    ck_assert (up);
    keel_subscriber_destroy (&sub);

    //  Restart the node (and its registry) on the same endpoints: empty.
    char *bus = strdup (n.bus), *events = strdup (n.events);
    //  A new node name: the old inproc names are released asynchronously.
    char *again = zsys_sprintf ("%s-again", n.name);
    keel_client_destroy (&n.client);
    zactor_destroy (&n.node);
    keel_config_destroy (&n.config);
    char *text =
        zsys_sprintf ("node\n    name = %s\n    bus = %s\n"
                      "    events = %s\n    actors\n        registry\n",
                      again, bus, events);
    char *error = NULL;
    n.config = keel_config_load_string (text, "test", &error);
    ck_assert_ptr_nonnull (n.config);
    n.args.config = n.config;
    //  The old node's tcp ports close asynchronously: retry the bind,
    //  bounded.
    for (int i = 0; i < 100; i++) {
        n.node = zactor_new (keel_node_actor, &n.args);
        error = keel_actor_status (n.node);
        if (!error)
            break;
        zstr_free (&error);
        zactor_destroy (&n.node);
        zclock_sleep (20);
    }
    ck_assert_ptr_nonnull (n.node);
    int64_t back = keel_now_ms ();
    n.client = keel_client_new ("tester", n.bus, "registry");
    sub = keel_subscriber_new ();
    keel_subscriber_connect (sub, n.events);
    keel_subscriber_subscribe (sub, "registry.");
    up = false;
    while (!up && keel_now_ms () - back < 5000) {
        up = s_count (&n, "greeter", false) == 1;
        if (!up)
            keel_subscriber_recv (sub, 50); //  a change, or 50 ms
    }
    keel_subscriber_destroy (&sub);
    int64_t took = keel_now_ms () - back;
    ck_assert (up);
    ck_assert_msg (took <= 2 * 1000 + testutil_slack (300), "took %d ms",
                   (int)took);
    kill (pid, SIGTERM);
    ck_assert_int_eq (testutil_reap (pid, 5000), 0);
    close (out);
    free (text);
    free (bus);
    free (events);
    free (again);
    free (svc_ep);
    s_node_stop (&n);
}
END_TEST

//  The keel registry verbs, as a user types them, against a tcp node.
START_TEST (test_cli)
{
    s_node_t n = {0};
    s_node_start (&n, 1, NULL);
    char *output = NULL;
    char *reg[] = {KEEL_BIN, "registry", "register",   "web",
                   "--id",   "web-1",    "--endpoint", "http://127.0.0.1:8081",
                   "--tag",  "blue",     "--meta",     "zone=a",
                   "--ttl",  "30",       "--bus",      n.bus,
                   NULL};
    ck_assert_int_eq (testutil_run_cmd (reg, &output), 0);
    ck_assert_ptr_nonnull (strstr (output, "registered web-1"));
    free (output);
    char *list[] = {KEEL_BIN, "registry", "list",  "web", "--healthy", "--tag",
                    "blue",   "--json",   "--bus", n.bus, NULL};
    ck_assert_int_eq (testutil_run_cmd (list, &output), 0);
    ck_assert_ptr_nonnull (strstr (output, "\"id\":\"web-1\""));
    ck_assert_ptr_nonnull (strstr (output, "\"zone\":\"a\""));
    free (output);
    char *table[] = {KEEL_BIN, "registry", "list", "--bus", n.bus, NULL};
    ck_assert_int_eq (testutil_run_cmd (table, &output), 0);
    ck_assert_ptr_nonnull (strstr (output, "passing"));
    free (output);
    char *bad[] = {KEEL_BIN,     "registry", "register", "web", "--id", "x",
                   "--endpoint", "nope://",  "--bus",    n.bus, NULL};
    ck_assert_int_eq (testutil_run_cmd (bad, &output), 1);
    ck_assert_ptr_nonnull (strstr (output, "INVALID_ARGUMENT"));
    free (output);
    char *usage[] = {KEEL_BIN, "registry", "register", "web", NULL};
    ck_assert_int_eq (testutil_run_cmd (usage, NULL), 2);
    char *dereg[] = {KEEL_BIN, "registry", "deregister", "web-1",
                     "--bus",  n.bus,      NULL};
    ck_assert_int_eq (testutil_run_cmd (dereg, NULL), 0);
    ck_assert_int_eq (testutil_run_cmd (dereg, &output), 1);
    ck_assert_ptr_nonnull (strstr (output, "NOT_FOUND"));
    free (output);
    s_node_stop (&n);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("registry");
    TCase *tc = tcase_create ("registry");
    tcase_set_timeout (tc, 60);
    tcase_add_loop_test (tc, test_register_discover, 0, 2);
    tcase_add_loop_test (tc, test_bad_input, 0, 2);
    tcase_add_loop_test (tc, test_watch_snapshot, 0, 2);
    tcase_add_loop_test (tc, test_health, 0, 2);
    tcase_add_test (tc, test_kill_nine);
    tcase_add_loop_test (tc, test_bus_ping, 0, 2);
    tcase_add_test (tc, test_registry_restart);
    tcase_add_test (tc, test_cli);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
