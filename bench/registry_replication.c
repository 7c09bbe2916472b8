/*  registry_replication.c - the replicated registry's figures: three nodes
    in this process (keel_node_actor, each running `registry` with the
    other two as peers), on tcp://127.0.0.1 with probed free ports.

      1. replication delay: register on A (blocking call), then wait for
         the registry.registered event of that id on C's node events
         endpoint (a replica made by C's registry, origin A). p50/p99 over
         N writes. Target: every write on every node within 100 ms.
      2. convergence after a partition heals: stop C's node, make M writes
         on A (registers and deregisters), start C again with the same
         config; time until C's discover of the service equals A's (polled
         every 5 ms). Target <= 2 s with anti_entropy = 500ms.
      3. write throughput with replicas: N registrations straight to A
         through its front door, `window` requests in flight, once with
         the 3-node cluster and once with a lone node (no peers) in the same
         run; the ratio is the cost of replication on the writer.

    Usage: registry_replication [-n N] [-m M] [-w WINDOW]
*/
#include "keel_client.h"
#include "keel_events.h"
#include "keel_node.h"
#include "registry.pb-c.h"
#include "registry_actor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {NULL, NULL, NULL},
};

enum { NODES = 3 };

typedef struct {
    int count;           //  nodes in this cluster (1 or 3)
    char *name[NODES];   //  node names
    char *bus[NODES];    //  front doors
    char *events[NODES]; //  event endpoints
    keel_config_t *config[NODES];
    keel_node_args_t args[NODES];
    zactor_t *node[NODES];
    keel_client_t *client[NODES];
} s_cluster_t;

//  A free loopback port: bound to 0 by the kernel, read, released.
//  (CZMQ's "*" scans from 49152 and so gives the same port again.)
static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd == -1 || bind (fd, (struct sockaddr *)&addr, sizeof addr) == -1 ||
        getsockname (fd, (struct sockaddr *)&addr, &len) == -1) {
        perror ("free port");
        exit (1);
    }
    close (fd);
    return ntohs (addr.sin_port);
}

static void
s_cluster_init (s_cluster_t *cl, int count, const char *tag)
{
    memset (cl, 0, sizeof *cl);
    cl->count = count;
    for (int i = 0; i < count; i++) {
        cl->name[i] = zsys_sprintf ("%s-%c", tag, 'a' + i);
        cl->bus[i] = zsys_sprintf ("tcp://127.0.0.1:%d", s_free_port ());
        cl->events[i] = zsys_sprintf ("tcp://127.0.0.1:%d", s_free_port ());
    }
}

static void
s_start (s_cluster_t *cl, int i)
{
    char *peers = strdup ("");
    for (int j = 0; j < cl->count; j++) {
        if (j == i)
            continue;
        char *more = zsys_sprintf (
            "%s    peer\n        name = %s\n        endpoint = %s\n"
            "        events = %s\n",
            peers, cl->name[j], cl->bus[j], cl->events[j]);
        free (peers);
        peers = more;
    }
    char *text = zsys_sprintf (
        "node\n    name = %s\n    bus = %s\n    events = %s\n"
        "    actors\n        registry\nregistry\n    anti_entropy = 500ms\n"
        "    replica_lease = 3s\n%s",
        cl->name[i], cl->bus[i], cl->events[i], peers);
    free (peers);
    char *error = NULL;
    cl->config[i] = keel_config_load_string (text, "bench", &error);
    free (text);
    if (!cl->config[i]) {
        fprintf (stderr, "config: %s\n", error);
        exit (1);
    }
    cl->args[i].config = cl->config[i];
    cl->args[i].defs = s_defs;
    for (int attempt = 0;; attempt++) {
        cl->node[i] = zactor_new (keel_node_actor, &cl->args[i]);
        error = keel_actor_status (cl->node[i]);
        if (!error)
            break;
        zactor_destroy (&cl->node[i]);
        if (attempt == 100) {
            fprintf (stderr, "node %s: %s\n", cl->name[i], error);
            exit (1);
        }
        free (error);
        zclock_sleep (20);
    }
    cl->client[i] = keel_client_new ("bench", cl->bus[i], "registry");
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
    for (int i = 0; i < cl->count; i++) {
        if (cl->node[i])
            s_stop (cl, i);
        free (cl->name[i]);
        free (cl->bus[i]);
        free (cl->events[i]);
    }
}

static void
s_instance (Keel__Instance *inst, const char *id, const char *service)
{
    keel__instance__init (inst);
    inst->id = (char *)id;
    inst->service = (char *)service;
    inst->endpoint = "tcp://127.0.0.1:9";
}

static int
s_register (keel_client_t *client, const char *id, const char *service)
{
    Keel__Instance inst;
    s_instance (&inst, id, service);
    Keel__RegisterRequest req = KEEL__REGISTER_REQUEST__INIT;
    req.instance = &inst;
    return keel_client_call (client, "registry.register", &req.base, NULL, NULL,
                             NULL, NULL);
}

//  "COUNT:HASH" of a service on node i: FNV-1a over each id and version
//  (a string per instance would make comparing 10k instances quadratic).
static char *
s_state (s_cluster_t *cl, int i, const char *service)
{
    Keel__DiscoverRequest req = KEEL__DISCOVER_REQUEST__INIT;
    req.service = (char *)service;
    req.include_unhealthy = true;
    Keel__InstanceList *list = NULL;
    if (keel_client_call (cl->client[i], "registry.discover", &req.base, NULL,
                          &keel__instance_list__descriptor,
                          (ProtobufCMessage **)&list, NULL) != KEEL_OK)
        return strdup ("?");
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t k = 0; k < list->n_instances; k++) {
        for (const char *c = list->instances[k]->id; *c; c++)
            hash = (hash ^ (unsigned char)*c) * 0x100000001b3ULL;
        hash = (hash ^ list->instances[k]->version) * 0x100000001b3ULL;
    }
    char *state = zsys_sprintf ("%zu:%" PRIx64, list->n_instances, hash);
    keel__instance_list__free_unpacked (list, NULL);
    return state;
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

//  Wait until every node holds `service` as node 0 does (or 10 s).
static void
s_wait_converged (s_cluster_t *cl, const char *service)
{
    int64_t deadline = zclock_mono () + 10000;
    for (int i = 1; i < cl->count; i++)
        while (zclock_mono () < deadline) {
            char *a = s_state (cl, 0, service);
            char *b = s_state (cl, i, service);
            bool same = streq (a, b);
            free (a);
            free (b);
            if (same)
                break;
            zclock_sleep (5);
        }
}

// ---------------------------------------------------------------------------

static void
s_delay (s_cluster_t *cl, int n)
{
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_subscriber_connect (sub, cl->events[2]);
    keel_subscriber_subscribe (sub, "registry.registered");
    //  Let the subscription reach C's proxy: warm up until one arrives.
    for (int k = 0; k < 200; k++) {
        char id[32];
        snprintf (id, sizeof id, "warm-%d", k);
        s_register (cl->client[0], id, "warm");
        if (keel_subscriber_recv (sub, 50))
            break;
    }
    while (keel_subscriber_recv (sub, 200))
        ;
    double *ms = (double *)calloc ((size_t)n, sizeof (double));
    int seen = 0, lost = 0;
    for (int k = 0; k < n; k++) {
        char id[32];
        snprintf (id, sizeof id, "d-%d", k);
        int64_t start = zclock_usecs ();
        s_register (cl->client[0], id, "delay");
        bool got = false;
        while (!got) {
            const keel_event_t *event = keel_subscriber_recv (sub, 1000);
            if (!event)
                break;
            Keel__RegistryEvent *change = keel__registry_event__unpack (
                NULL, event->envelope->payload.len,
                event->envelope->payload.data);
            if (change && change->instance &&
                streq (change->instance->id, id)) {
                ms[seen++] = (double)(zclock_usecs () - start) / 1000.0;
                got = true;
            }
            if (change)
                keel__registry_event__free_unpacked (change, NULL);
        }
        if (!got)
            lost++;
    }
    qsort (ms, (size_t)seen, sizeof (double), s_cmp_double);
    if (seen > 0)
        printf ("replication delay A -> C event (%d writes): p50 %.2f ms, "
                "p99 %.2f ms, max %.2f ms%s\n",
                seen, ms[seen / 2],
                ms[(seen * 99) / 100 < seen ? (seen * 99) / 100 : seen - 1],
                ms[seen - 1], lost ? " (some not seen in 1 s)" : "");
    if (lost)
        printf ("  %d writes not seen on C within 1 s\n", lost);
    free (ms);
    keel_subscriber_destroy (&sub);
}

static void
s_partition (s_cluster_t *cl, int m)
{
    s_stop (cl, 2);
    for (int k = 0; k < m; k++) {
        char id[32];
        snprintf (id, sizeof id, "p-%d", k);
        s_register (cl->client[0], id, "part");
    }
    for (int k = 0; k < m / 4; k++) {
        char id[32];
        snprintf (id, sizeof id, "d-%d", k);
        Keel__DeregisterRequest req = KEEL__DEREGISTER_REQUEST__INIT;
        req.id = id;
        keel_client_call (cl->client[0], "registry.deregister", &req.base, NULL,
                          NULL, NULL, NULL);
    }
    int64_t start = zclock_usecs ();
    s_start (cl, 2);
    double took = -1;
    while (zclock_usecs () - start < 10000000) {
        char *a = s_state (cl, 0, "part");
        char *c = s_state (cl, 2, "part");
        char *a2 = s_state (cl, 0, "delay");
        char *c2 = s_state (cl, 2, "delay");
        bool same = streq (a, c) && streq (a2, c2);
        free (a);
        free (c);
        free (a2);
        free (c2);
        if (same) {
            took = (double)(zclock_usecs () - start) / 1000.0;
            break;
        }
        zclock_sleep (5);
    }
    printf ("partition heal: C restarted after %d writes + %d deregisters on "
            "A: converged in %.0f ms (anti_entropy 500ms; includes node "
            "start)\n",
            m, m / 4, took);
}

typedef struct {
    int done;
    int failed;
} s_tally_t;

static void
s_on_reply (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_tally_t *tally = (s_tally_t *)arg;
    tally->done++;
    if (reply->code != KEEL_OK)
        tally->failed++;
}

//  Registrations/s to node 0 of `cl`, `window` in flight.
static double
s_throughput (s_cluster_t *cl, int n, int window, const char *prefix)
{
    keel_client_t *client = cl->client[0];
    s_tally_t tally = {0, 0};
    int sent = 0;
    char id[48];
    int64_t start = zclock_usecs ();
    while (tally.done < n) {
        while (sent < n && sent - tally.done < window) {
            snprintf (id, sizeof id, "%s-%d", prefix, sent);
            Keel__Instance inst;
            s_instance (&inst, id, "tput");
            Keel__RegisterRequest req = KEEL__REGISTER_REQUEST__INIT;
            req.instance = &inst;
            keel_call_opts_t opts = {.timeout_ms = 30000,
                                     .retries = KEEL_NO_RETRY};
            if (!keel_client_request (client, "registry.register", &req.base,
                                      &opts, s_on_reply, &tally))
                break;
            sent++;
        }
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (client)), 0,
                               ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, 100);
        keel_client_process (client);
    }
    double secs = (double)(zclock_usecs () - start) / 1e6;
    if (tally.failed)
        printf ("  %d registrations failed\n", tally.failed);
    return n / secs;
}

int
main (int argc, char *argv[])
{
    int n = 1000, m = 200, window = 100;
    for (int i = 1; i < argc; i++) {
        if (streq (argv[i], "-n") && i + 1 < argc)
            n = atoi (argv[++i]);
        else if (streq (argv[i], "-m") && i + 1 < argc)
            m = atoi (argv[++i]);
        else if (streq (argv[i], "-w") && i + 1 < argc)
            window = atoi (argv[++i]);
        else {
            fprintf (stderr, "usage: %s [-n N] [-m M] [-w WINDOW]\n", argv[0]);
            return 2;
        }
    }
    zsys_init ();
    char tag[32];
    snprintf (tag, sizeof tag, "rb%d", (int)getpid ());
    s_cluster_t cl;
    s_cluster_init (&cl, 3, tag);
    for (int i = 0; i < NODES; i++)
        s_start (&cl, i);
    s_delay (&cl, n < 1000 ? n : 1000);
    s_wait_converged (&cl, "delay");
    s_partition (&cl, m);

    //  Throughput: lone node first, then the cluster, then the lone node
    //  again; the anchor is the mean of the two lone runs.
    s_cluster_t lone;
    snprintf (tag, sizeof tag, "rl%d", (int)getpid ());
    s_cluster_init (&lone, 1, tag);
    s_start (&lone, 0);
    double one_a = s_throughput (&lone, n * 10, window, "l1");
    double three = s_throughput (&cl, n * 10, window, "c");
    double one_b = s_throughput (&lone, n * 10, window, "l2");
    double one = (one_a + one_b) / 2;
    printf ("registrations/s on A, window %d, %d each: 3 nodes %.0f/s, "
            "lone node %.0f/s (%.0f, %.0f): ratio %.2f\n",
            window, n * 10, three, one, one_a, one_b, three / one);
    int64_t start = zclock_usecs ();
    s_wait_converged (&cl, "tput");
    printf ("  replicas of those %d on B and C complete %.0f ms after the "
            "last reply\n",
            n * 10, (double)(zclock_usecs () - start) / 1000.0);
    s_cluster_destroy (&lone);
    s_cluster_destroy (&cl);
    return 0;
}
