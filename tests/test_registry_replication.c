/*  test_registry_replication.c - three registries, one per node, in this
    process, on tcp loopback: a write on one reaches the others (push), a
    push that was missed is repaired (anti-entropy), a dead node's instances
    expire by lease everywhere else, and a node restarted after a partition
    converges. Every wait polls with a deadline; nothing asserts on time. */
#include "keel_client.h"
#include "keel_node.h"
#include "node.pb-c.h"
#include "registry.pb-c.h"
#include "registry_actor.h"
#include "testutil.h"

#include <string.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {NULL, NULL, NULL},
};

enum { NODES = 3 };

//  Longest any wait may take before the test fails.
#define S_DEADLINE_MS 10000
#define S_WARMUP_MS   2000 //  registry/warmup

typedef struct {
    char *name[NODES];            //  node names
    char *bus[NODES];             //  front doors (tcp, probed ports)
    char *events[NODES];          //  event endpoints
    keel_config_t *config[NODES]; //  running configs
    keel_node_args_t args[NODES]; //  what each node actor reads
    zactor_t *node[NODES];        //  NULL = stopped
    keel_client_t *client[NODES]; //  to each registry
} s_cluster_t;

static void
s_cluster_init (s_cluster_t *cl)
{
    static int counter = 0;
    memset (cl, 0, sizeof *cl);
    counter++;
    for (int i = 0; i < NODES; i++) {
        cl->name[i] =
            zsys_sprintf ("n%c-%d-%d", 'a' + i, (int)getpid (), counter);
        cl->bus[i] = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
        cl->events[i] =
            zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
    }
}

//  Start node i with the other two as peers. The same config every time,
//  so a restart is the same node coming back.
static void
s_start (s_cluster_t *cl, int i)
{
    char *peers = strdup ("");
    for (int j = 0; j < NODES; j++) {
        if (j == i)
            continue;
        char *more =
            zsys_sprintf ("%s    peer\n        name = %s\n"
                          "        endpoint = %s\n"
                          "        events = %s\n",
                          peers, cl->name[j], cl->bus[j], cl->events[j]);
        free (peers);
        peers = more;
    }
    //  The lease is 20 anti-entropy rounds: a node starved of CPU for a
    //  moment (a loaded CI machine) must not see live replicas expire.
    char *text = zsys_sprintf (
        "node\n    name = %s\n    bus = %s\n    events = %s\n"
        "    actors\n        registry\n"
        "registry\n    anti_entropy = 100ms\n    replica_lease = %dms\n"
        "    warmup = %dms\n%s",
        cl->name[i], cl->bus[i], cl->events[i], testutil_slack (2000),
        testutil_slack (S_WARMUP_MS), peers);
    free (peers);
    char *error = NULL;
    cl->config[i] = keel_config_load_string (text, "test", &error);
    ck_assert_msg (cl->config[i], "%s", error);
    free (text);
    cl->args[i].config = cl->config[i];
    cl->args[i].defs = s_defs;
    //  A restart may find its inproc names not yet released: retry a while.
    for (int attempt = 0; attempt < 100; attempt++) {
        cl->node[i] = zactor_new (keel_node_actor, &cl->args[i]);
        error = keel_actor_status (cl->node[i]);
        if (!error)
            break;
        zactor_destroy (&cl->node[i]);
        zclock_sleep (20);
        if (attempt == 99)
            ck_abort_msg ("node %d: %s", i, error);
        free (error);
    }
    cl->client[i] = keel_client_new ("tester", cl->bus[i], "registry");
    ck_assert_ptr_nonnull (cl->client[i]);
}

static void
s_stop (s_cluster_t *cl, int i)
{
    keel_client_destroy (&cl->client[i]);
    zactor_destroy (&cl->node[i]);
    keel_config_destroy (&cl->config[i]);
}

static void
s_cluster_destroy (s_cluster_t *cl)
{
    for (int i = 0; i < NODES; i++) {
        if (cl->node[i])
            s_stop (cl, i);
        free (cl->name[i]);
        free (cl->bus[i]);
        free (cl->events[i]);
    }
}

static keel_err_t
s_register (s_cluster_t *cl, int i, const char *id, const char *service,
            uint32_t ttl_ms)
{
    Keel__Instance instance = KEEL__INSTANCE__INIT;
    instance.id = (char *)id;
    instance.service = (char *)service;
    instance.endpoint = "tcp://127.0.0.1:9";
    Keel__HealthCheck check = KEEL__HEALTH_CHECK__INIT;
    check.ttl_ms = ttl_ms;
    if (ttl_ms)
        instance.check = &check;
    Keel__RegisterRequest req = KEEL__REGISTER_REQUEST__INIT;
    req.instance = &instance;
    return keel_client_call (cl->client[i], "registry.register", &req.base,
                             NULL, NULL, NULL, NULL);
}

static keel_err_t
s_deregister (s_cluster_t *cl, int i, const char *id)
{
    Keel__DeregisterRequest req = KEEL__DEREGISTER_REQUEST__INIT;
    req.id = (char *)id;
    return keel_client_call (cl->client[i], "registry.deregister", &req.base,
                             NULL, NULL, NULL, NULL);
}

//  Every instance of `service` on node i (healthy or not); caller frees.
static Keel__InstanceList *
s_list (s_cluster_t *cl, int i, const char *service)
{
    Keel__DiscoverRequest req = KEEL__DISCOVER_REQUEST__INIT;
    req.service = (char *)service;
    req.include_unhealthy = true;
    Keel__InstanceList *list = NULL;
    char *error = NULL;
    keel_err_t rc = keel_client_call (
        cl->client[i], "registry.discover", &req.base, NULL,
        &keel__instance_list__descriptor, (ProtobufCMessage **)&list, &error);
    ck_assert_msg (rc == KEEL_OK, "discover: %s", error);
    return list;
}

//  "id@version,id@version..." of `service` on node i, for comparisons.
static char *
s_state (s_cluster_t *cl, int i, const char *service)
{
    Keel__InstanceList *list = s_list (cl, i, service);
    char *state = strdup ("");
    for (size_t k = 0; k < list->n_instances; k++) {
        char *more = zsys_sprintf (
            "%s%s@%" PRIu64 "/%s/%d,", state, list->instances[k]->id,
            list->instances[k]->version, list->instances[k]->origin,
            (int)list->instances[k]->health->status);
        free (state);
        state = more;
    }
    keel__instance_list__free_unpacked (list, NULL);
    return state;
}

static size_t
s_count (s_cluster_t *cl, int i, const char *service)
{
    Keel__InstanceList *list = s_list (cl, i, service);
    size_t count = list->n_instances;
    keel__instance_list__free_unpacked (list, NULL);
    return count;
}

//  Poll node i until `service` has `expected` instances; fail at the
//  deadline.
static void
s_wait_count (s_cluster_t *cl, int i, const char *service, size_t expected)
{
    int64_t deadline = zclock_mono () + testutil_slack (S_DEADLINE_MS);
    size_t count;
    while ((count = s_count (cl, i, service)) != expected) {
        ck_assert_msg (zclock_mono () < deadline,
                       "node %d: %zu instances of %s, expected %zu", i, count,
                       service, expected);
        zclock_sleep (10);
    }
}

//  Poll until node i's view of `service` equals node j's.
static void
s_wait_same (s_cluster_t *cl, int i, int j, const char *service)
{
    int64_t deadline = zclock_mono () + testutil_slack (S_DEADLINE_MS);
    while (true) {
        char *a = s_state (cl, i, service);
        char *b = s_state (cl, j, service);
        bool same = streq (a, b);
        if (!same && zclock_mono () >= deadline)
            ck_abort_msg ("node %d: %s\nnode %d: %s", i, a, j, b);
        free (a);
        free (b);
        if (same)
            return;
        zclock_sleep (10);
    }
}

static Keel__Instance *
s_get (s_cluster_t *cl, int i, const char *id)
{
    Keel__GetRequest req = KEEL__GET_REQUEST__INIT;
    req.id = (char *)id;
    Keel__Instance *instance = NULL;
    keel_err_t rc = keel_client_call (cl->client[i], "registry.get", &req.base,
                                      NULL, &keel__instance__descriptor,
                                      (ProtobufCMessage **)&instance, NULL);
    return rc == KEEL_OK ? instance : NULL;
}

//  Poll until counter `name` of node i reaches `at_least`.
static void
s_wait_counter (s_cluster_t *cl, int i, const char *name, uint64_t at_least)
{
    int64_t deadline = zclock_mono () + testutil_slack (S_DEADLINE_MS);
    while (testutil_stat (cl->client[i], name) < at_least) {
        ck_assert_msg (zclock_mono () < deadline, "node %d: %s", i, name);
        zclock_sleep (10);
    }
}

// ---------------------------------------------------------------------------

START_TEST (test_register_deregister_replicate)
{
    s_cluster_t cl;
    s_cluster_init (&cl);
    for (int i = 0; i < NODES; i++)
        s_start (&cl, i);
    ck_assert_int_eq (s_register (&cl, 0, "web-1", "web", 0), KEEL_OK);
    s_wait_count (&cl, 1, "web", 1);
    s_wait_count (&cl, 2, "web", 1);
    //  The replica says who owns it and at which version.
    Keel__Instance *owned = s_get (&cl, 0, "web-1");
    Keel__Instance *replica = s_get (&cl, 2, "web-1");
    ck_assert_ptr_nonnull (owned);
    ck_assert_ptr_nonnull (replica);
    ck_assert_str_eq (owned->origin, cl.name[0]);
    ck_assert_str_eq (replica->origin, cl.name[0]);
    ck_assert_uint_eq (replica->version, owned->version);
    ck_assert_uint_gt (owned->version, 0);
    ck_assert_int_eq (replica->health->status, KEEL__HEALTH_STATUS__PASSING);
    keel__instance__free_unpacked (owned, NULL);
    keel__instance__free_unpacked (replica, NULL);
    //  Only the owner removes it: a deregister sent to a replica's node
    //  goes on to the owner, and that node reads its own write at once.
    ck_assert_int_eq (s_deregister (&cl, 1, "web-1"), KEEL_OK);
    ck_assert_ptr_null (s_get (&cl, 1, "web-1"));
    s_wait_count (&cl, 0, "web", 0);
    s_wait_count (&cl, 2, "web", 0);
    ck_assert_int_eq (s_deregister (&cl, 0, "web-1"), KEEL_ERR_NOT_FOUND);
    ck_assert_uint_gt (testutil_stat (cl.client[2], "replication_applied"), 0);
    //  Anti-entropy runs, and finds the replicas right.
    s_wait_counter (&cl, 2, "digests_same", 1);
    s_cluster_destroy (&cl);
}
END_TEST

START_TEST (test_health_replicates)
{
    s_cluster_t cl;
    s_cluster_init (&cl);
    for (int i = 0; i < NODES; i++)
        s_start (&cl, i);
    ck_assert_int_eq (s_register (&cl, 0, "api-1", "api", 60000), KEEL_OK);
    s_wait_count (&cl, 2, "api", 1);
    Keel__HeartbeatRequest hb = KEEL__HEARTBEAT_REQUEST__INIT;
    hb.id = "api-1";
    hb.status = KEEL__HEALTH_STATUS__WARNING;
    hb.output = "disk 91%";
    ck_assert_int_eq (keel_client_call (cl.client[0], "registry.heartbeat",
                                        &hb.base, NULL, NULL, NULL, NULL),
                      KEEL_OK);
    //  A heartbeat to a node that holds only a replica: not here.
    ck_assert_int_eq (keel_client_call (cl.client[2], "registry.heartbeat",
                                        &hb.base, NULL, NULL, NULL, NULL),
                      KEEL_ERR_NOT_FOUND);
    int64_t deadline = zclock_mono () + testutil_slack (S_DEADLINE_MS);
    while (true) {
        Keel__Instance *replica = s_get (&cl, 2, "api-1");
        ck_assert_ptr_nonnull (replica);
        bool warned = replica->health->status == KEEL__HEALTH_STATUS__WARNING &&
                      streq (replica->health->output, "disk 91%");
        keel__instance__free_unpacked (replica, NULL);
        if (warned)
            break;
        ck_assert_msg (zclock_mono () < deadline, "health not replicated");
        zclock_sleep (10);
    }
    s_cluster_destroy (&cl);
}
END_TEST

START_TEST (test_dead_node_expires)
{
    s_cluster_t cl;
    s_cluster_init (&cl);
    for (int i = 0; i < NODES; i++)
        s_start (&cl, i);
    ck_assert_int_eq (s_register (&cl, 0, "a-1", "svc", 0), KEEL_OK);
    ck_assert_int_eq (s_register (&cl, 1, "b-1", "svc", 0), KEEL_OK);
    s_wait_count (&cl, 1, "svc", 2);
    s_wait_count (&cl, 2, "svc", 2);
    s_stop (&cl, 0);
    //  A's instance goes when its lease runs out; B's stays.
    s_wait_count (&cl, 1, "svc", 1);
    s_wait_count (&cl, 2, "svc", 1);
    Keel__Instance *left = s_get (&cl, 2, "b-1");
    ck_assert_ptr_nonnull (left);
    keel__instance__free_unpacked (left, NULL);
    ck_assert_uint_ge (testutil_stat (cl.client[2], "replicas_expired"), 1);
    s_cluster_destroy (&cl);
}
END_TEST

//  C starts after A's registration was published: it never saw the push,
//  and anti-entropy brings it.
START_TEST (test_lost_push_repaired)
{
    s_cluster_t cl;
    s_cluster_init (&cl);
    s_start (&cl, 0);
    s_start (&cl, 1);
    for (int k = 0; k < 5; k++) {
        char id[16];
        snprintf (id, sizeof id, "early-%d", k);
        ck_assert_int_eq (s_register (&cl, 0, id, "early", 0), KEEL_OK);
    }
    s_wait_count (&cl, 1, "early", 5);
    s_start (&cl, 2);
    s_wait_count (&cl, 2, "early", 5);
    s_wait_same (&cl, 0, 2, "early");
    ck_assert_uint_gt (testutil_stat (cl.client[2], "fetched"), 0);
    s_cluster_destroy (&cl);
}
END_TEST

//  C goes away and comes back (the same name and config): writes made
//  meanwhile on A reach it, and what C owned before is gone everywhere.
START_TEST (test_partition_heals)
{
    s_cluster_t cl;
    s_cluster_init (&cl);
    for (int i = 0; i < NODES; i++)
        s_start (&cl, i);
    ck_assert_int_eq (s_register (&cl, 0, "x-1", "x", 0), KEEL_OK);
    ck_assert_int_eq (s_register (&cl, 2, "x-c", "x", 0), KEEL_OK);
    s_wait_count (&cl, 1, "x", 2);
    s_wait_count (&cl, 2, "x", 2);
    s_stop (&cl, 2);
    ck_assert_int_eq (s_register (&cl, 0, "x-2", "x", 0), KEEL_OK);
    ck_assert_int_eq (s_register (&cl, 0, "x-3", "x", 0), KEEL_OK);
    ck_assert_int_eq (s_deregister (&cl, 0, "x-1"), KEEL_OK);
    s_start (&cl, 2);
    //  Every registry agrees: x-2, x-3 (A's); x-c went with C's old life.
    s_wait_same (&cl, 2, 0, "x");
    s_wait_same (&cl, 1, 0, "x");
    ck_assert_uint_eq (s_count (&cl, 2, "x"), 2);
    s_cluster_destroy (&cl);
}
END_TEST

//  The same id registered again through another node wins by version.
START_TEST (test_takeover)
{
    s_cluster_t cl;
    s_cluster_init (&cl);
    for (int i = 0; i < NODES; i++)
        s_start (&cl, i);
    ck_assert_int_eq (s_register (&cl, 0, "m-1", "m", 0), KEEL_OK);
    s_wait_count (&cl, 1, "m", 1);
    ck_assert_int_eq (s_register (&cl, 1, "m-1", "m", 0), KEEL_OK);
    int64_t deadline = zclock_mono () + testutil_slack (S_DEADLINE_MS);
    for (int i = 0; i < NODES; i++) {
        while (true) {
            Keel__Instance *instance = s_get (&cl, i, "m-1");
            ck_assert_ptr_nonnull (instance);
            bool moved = streq (instance->origin, cl.name[1]);
            keel__instance__free_unpacked (instance, NULL);
            if (moved)
                break;
            ck_assert_msg (zclock_mono () < deadline, "node %d", i);
            zclock_sleep (10);
        }
    }
    //  A no longer owns it: a deregister there goes on to B, and A reads
    //  its own write at once.
    ck_assert_int_eq (s_deregister (&cl, 0, "m-1"), KEEL_OK);
    Keel__Instance *gone = s_get (&cl, 0, "m-1");
    ck_assert_ptr_null (gone);
    ck_assert_uint_eq (testutil_stat (cl.client[0], "deregisters_forwarded"),
                       1);
    for (int i = 0; i < NODES; i++)
        s_wait_count (&cl, i, "m", 0);
    //  Gone everywhere: again is NOT_FOUND.
    ck_assert_int_eq (s_deregister (&cl, 0, "m-1"), KEEL_ERR_NOT_FOUND);
    s_cluster_destroy (&cl);
}
END_TEST

//  A deregister of a replica whose owner is down: a clear error, not a
//  silent success, and the replica stays until its lease runs out.
START_TEST (test_deregister_owner_down)
{
    s_cluster_t cl;
    s_cluster_init (&cl);
    for (int i = 0; i < NODES; i++)
        s_start (&cl, i);
    ck_assert_int_eq (s_register (&cl, 1, "x-1", "x", 0), KEEL_OK);
    s_wait_count (&cl, 0, "x", 1);
    s_stop (&cl, 1);
    Keel__DeregisterRequest req = KEEL__DEREGISTER_REQUEST__INIT;
    req.id = "x-1";
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)testutil_slack (5000),
                             .retries = KEEL_NO_RETRY};
    char *text = NULL;
    keel_err_t rc = keel_client_call (cl.client[0], "registry.deregister",
                                      &req.base, &opts, NULL, NULL, &text);
    ck_assert_msg (rc == KEEL_ERR_TIMEOUT || rc == KEEL_ERR_UNAVAILABLE,
                   "code %d: %s", rc, text ? text : "");
    ck_assert_ptr_nonnull (text);
    ck_assert_msg (strstr (text, "did not answer"), "%s", text);
    free (text);
    s_cluster_destroy (&cl);
}
END_TEST

//  A node that has just started answers discovery with what its peers hold,
//  on the first call: it holds the answer until it has heard from each peer
//  (or a peer did not answer).
START_TEST (test_fresh_node_warms_up)
{
    s_cluster_t cl;
    s_cluster_init (&cl);
    s_start (&cl, 0);
    s_start (&cl, 1);
    for (int k = 0; k < 20; k++) {
        char id[16];
        snprintf (id, sizeof id, "w-%d", k);
        ck_assert_int_eq (s_register (&cl, 0, id, "w", 0), KEEL_OK);
    }
    s_wait_count (&cl, 1, "w", 20);
    s_start (&cl, 2);
    Keel__InstanceList *list = s_list (&cl, 2, "w");
    ck_assert_ptr_nonnull (list);
    ck_assert_uint_eq (list->n_instances, 20);
    keel__instance_list__free_unpacked (list, NULL);
    //  (Usually the discover came first and was held — discovers_held —
    //  unless the first round was over already; either way: all 20.)

    //  A peer that is down keeps it waiting no longer than warmup: node 2
    //  again, with node 1 gone.
    s_stop (&cl, 1);
    s_stop (&cl, 2);
    int64_t started = zclock_mono ();
    s_start (&cl, 2);
    list = s_list (&cl, 2, "w");
    int64_t took = zclock_mono () - started;
    ck_assert_ptr_nonnull (list);
    ck_assert_uint_eq (list->n_instances, 20);
    keel__instance_list__free_unpacked (list, NULL);
    ck_assert_msg (took < testutil_slack (S_WARMUP_MS + 2000),
                   "first answer after %lld ms", (long long)took);
    //  That answer was held: node 1 could not have answered yet.
    ck_assert_uint_ge (testutil_stat (cl.client[2], "discovers_held"), 1);
    s_cluster_destroy (&cl);
}
END_TEST

START_TEST (test_bad_config)
{
    const char *bad[] = {
        //  lease below twice the anti-entropy period
        "registry\n    anti_entropy = 1s\n    replica_lease = 1500ms\n",
        //  a peer that is this node
        "registry\n    peer\n        name = self\n"
        "        endpoint = tcp://127.0.0.1:1\n",
        //  a peer with no endpoint
        "registry\n    peer\n        name = other\n",
        //  an unknown key in a peer
        "registry\n    peer\n        name = other\n"
        "        endpoint = tcp://127.0.0.1:1\n        colour = red\n",
        //  the same peer twice
        "registry\n    peer\n        name = o\n"
        "        endpoint = tcp://127.0.0.1:1\n"
        "    peer\n        name = o\n        endpoint = tcp://127.0.0.1:2\n",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *text = zsys_sprintf (
            "node\n    name = self\n    actors\n        registry\n%s", bad[k]);
        char *error = NULL;
        keel_config_t *config = keel_config_load_string (text, "bad", &error);
        ck_assert_msg (config, "%s", error);
        keel_node_args_t args = {config, s_defs};
        zactor_t *node = zactor_new (keel_node_actor, &args);
        error = keel_actor_status (node);
        ck_assert_msg (error, "config %zu accepted", k);
        free (error);
        zactor_destroy (&node);
        keel_config_destroy (&config);
        free (text);
    }
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("registry_replication");
    TCase *tc = tcase_create ("replication");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_register_deregister_replicate);
    tcase_add_test (tc, test_health_replicates);
    tcase_add_test (tc, test_dead_node_expires);
    tcase_add_test (tc, test_lost_push_repaired);
    tcase_add_test (tc, test_partition_heals);
    tcase_add_test (tc, test_takeover);
    tcase_add_test (tc, test_deregister_owner_down);
    tcase_add_test (tc, test_bad_config);
    suite_add_tcase (suite, tc);
    TCase *warm = tcase_create ("warmup");
    tcase_set_timeout (warm, 60);
    tcase_add_test (warm, test_fresh_node_warms_up);
    suite_add_tcase (suite, warm);
    return testutil_run (suite);
}
