/*  saga_bench.c - durable 3-step sagas per second, and their start-to-end
    latency, beside the raw fdatasync rate of the same disk.

    One process: a node with the registry, the saga coordinator (its log a
    file in DIR, synchronous = full by default: every commit fsynced) and
    the shop (orders, inventory, payments: in-process participants over
    inproc). A client keeps WINDOW sagas in flight, each started with
    wait = true, so the reply is the end: latency = reply time - send time.
    Anchor, same run, same directory: 4 KB pwrite + fdatasync in a loop for
    one second.

    usage: saga_bench [-n SAGAS] [-w WINDOW] [-d DIR] [--sync full|normal]
*/
#include "keel_client.h"
#include "keel_node.h"
#include "registry_actor.h"
#include "saga.pb-c.h"
#include "saga_actor.h"
#include "shop_actor.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <string.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {"saga", keel_saga_actor, "saga"},
    {"shop", keel_shop_actor, "shop"},
    {NULL, NULL, NULL},
};

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

//  fdatasync per second of 4 KB writes in `dir`, for about a second.
static double
s_fdatasync_rate (const char *dir)
{
    char path[512];
    snprintf (path, sizeof path, "%s/fdatasync.probe", dir);
    int fd = open (path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) {
        perror (path);
        return 0;
    }
    char block[4096];
    memset (block, 'k', sizeof block);
    int64_t start = zclock_usecs ();
    long count = 0;
    while (zclock_usecs () - start < 1000000) {
        if (pwrite (fd, block, sizeof block, (off_t)(count % 16) * 4096) < 0 ||
            fdatasync (fd) != 0) {
            perror ("fdatasync");
            break;
        }
        count++;
    }
    double seconds = (double)(zclock_usecs () - start) / 1e6;
    close (fd);
    unlink (path);
    return count / seconds;
}

typedef struct {
    int64_t sent_us;
    int state;
} s_slot_t;

static void
s_on_reply (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_slot_t *slot = (s_slot_t *)arg;
    slot->state = -1;
    if (reply->code == KEEL_OK) {
        Keel__SagaStatus *st =
            keel__saga_status__unpack (NULL, reply->size, reply->data);
        if (st) {
            slot->state = (int)st->state;
            keel__saga_status__free_unpacked (st, NULL);
        }
    }
    slot->sent_us = zclock_usecs () - slot->sent_us; //  now the latency
}

int
main (int argc, char **argv)
{
    size_t n = 20000, window = 500;
    const char *dir = NULL, *sync = "full";
    for (int i = 1; i < argc; i++) {
        if (streq (argv[i], "-n") && i + 1 < argc)
            n = (size_t)atol (argv[++i]);
        else if (streq (argv[i], "-w") && i + 1 < argc)
            window = (size_t)atol (argv[++i]);
        else if (streq (argv[i], "-d") && i + 1 < argc)
            dir = argv[++i];
        else if (streq (argv[i], "--sync") && i + 1 < argc)
            sync = argv[++i];
        else {
            fprintf (stderr, "usage: saga_bench [-n SAGAS] [-w WINDOW] "
                             "[-d DIR] [--sync full|normal]\n");
            return 2;
        }
    }
    if (n == 0 || window == 0)
        return 2;
    char tmp[] = "/tmp/keel-saga-bench-XXXXXX";
    if (!dir) {
        dir = mkdtemp (tmp);
        if (!dir) {
            perror ("mkdtemp");
            return 1;
        }
    }
    zsys_init ();
    zsys_set_logstream (NULL);
    double fsyncs = s_fdatasync_rate (dir);

    char *config_text = zsys_sprintf (
        "node\n    name = sagabench\n    actors\n        registry\n"
        "        saga\n        shop\n"
        "shop\n    stock = 1000000000\n"
        "saga\n    log = \"%s/saga.db\"\n    sync = %s\n"
        "    definition\n        name = order\n"
        "        step\n            name = create\n"
        "            service = orders\n            action = create\n"
        "            compensation = cancel\n"
        "        step\n            name = reserve\n"
        "            service = inventory\n            action = reserve\n"
        "            compensation = release\n"
        "        step\n            name = charge\n"
        "            service = payments\n            action = charge\n"
        "            compensation = refund\n",
        dir, sync);
    char *error = NULL;
    keel_config_t *config =
        keel_config_load_string (config_text, "<bench>", &error);
    zstr_free (&config_text);
    if (!config) {
        fprintf (stderr, "saga_bench: %s\n", error);
        return 1;
    }
    keel_node_args_t args = {config, s_defs};
    zactor_t *node = zactor_new (keel_node_actor, &args);
    error = keel_actor_status (node);
    if (error) {
        fprintf (stderr, "saga_bench: %s\n", error);
        return 1;
    }
    char *bus = keel_node_bus_endpoint ("sagabench");
    keel_client_t *client = keel_client_new ("bench", bus, "saga");
    zstr_free (&bus);
    keel_client_set_defaults (client, 60000, 60000, 0);

    //  Warm up: one saga through, so the participants are registered and
    //  discovered.
    Keel__StartRequest req = KEEL__START_REQUEST__INIT;
    req.definition = "order";
    req.input.data = (uint8_t *)"{\"qty\":1,\"amount\":5}";
    req.input.len = strlen ((char *)req.input.data);
    req.wait = true;
    req.wait_ms = 10000;
    for (int i = 0; i < 50; i++) {
        Keel__SagaStatus *st = NULL;
        keel_call_opts_t opts = {.timeout_ms = 15000, .retries = KEEL_NO_RETRY};
        if (keel_client_call (client, "saga.start", &req.base, &opts,
                              &keel__saga_status__descriptor,
                              (ProtobufCMessage **)&st, NULL) == KEEL_OK &&
            st) {
            bool ok = st->state == KEEL__SAGA_STATE__SAGA_COMPLETED &&
                      st->steps[0]->attempts == 1;
            keel__saga_status__free_unpacked (st, NULL);
            if (ok)
                break;
        }
    }

    struct rusage usage0, usage1;
    getrusage (RUSAGE_SELF, &usage0);
    s_slot_t *slots = (s_slot_t *)calloc (n, sizeof (s_slot_t));
    size_t sent = 0, done = 0;
    int64_t start = zclock_usecs ();
    keel_call_opts_t opts = {.timeout_ms = 60000, .retries = KEEL_NO_RETRY};
    zpoller_t *poller = zpoller_new (keel_client_sock (client), NULL);
    while (done < n) {
        while (sent < n && sent - done < window) {
            slots[sent].sent_us = zclock_usecs ();
            slots[sent].state = -2; //  in flight
            if (!keel_client_request (client, "saga.start", &req.base, &opts,
                                      s_on_reply, &slots[sent])) {
                fprintf (stderr, "saga_bench: cannot send\n");
                return 1;
            }
            sent++;
        }
        zpoller_destroy (&poller);
        poller = zpoller_new (keel_client_sock (client), NULL);
        int64_t wait = keel_client_timeout (client);
        zpoller_wait (poller, wait < 0 || wait > 100 ? 100 : (int)wait);
        int got = keel_client_process (client);
        if (got < 0)
            break;
        done = 0;
        for (size_t i = 0; i < sent; i++)
            done += slots[i].state != -2;
        if (zsys_interrupted)
            break;
    }
    double seconds = (double)(zclock_usecs () - start) / 1e6;
    getrusage (RUSAGE_SELF, &usage1);
    double cpu_us =
        (double)(usage1.ru_utime.tv_sec - usage0.ru_utime.tv_sec +
                 usage1.ru_stime.tv_sec - usage0.ru_stime.tv_sec) *
            1e6 +
        (double)(usage1.ru_utime.tv_usec - usage0.ru_utime.tv_usec +
                 usage1.ru_stime.tv_usec - usage0.ru_stime.tv_usec);
    zpoller_destroy (&poller);
    double *lat = (double *)calloc (n, sizeof (double));
    size_t completed = 0, other = 0;
    for (size_t i = 0; i < done; i++) {
        lat[i] = (double)slots[i].sent_us / 1000.0;
        if (slots[i].state == KEEL__SAGA_STATE__SAGA_COMPLETED)
            completed++;
        else
            other++;
    }
    qsort (lat, done, sizeof (double), s_compare);
    double rate = completed / seconds;
    printf ("saga_bench: %zu durable 3-step sagas, %zu in flight, log %s/"
            "saga.db (synchronous = %s)\n",
            n, window, dir, sync);
    printf ("  completed      %zu (other outcomes: %zu) in %.2f s\n", completed,
            other, seconds);
    printf ("  throughput     %.0f sagas/s\n", rate);
    printf ("  latency        p50 %.2f ms   p99 %.2f ms   (start to end)\n",
            done ? lat[done / 2] : 0, done ? lat[(size_t)(done * 0.99)] : 0);
    printf ("  cpu            %.0f us per saga (every thread: coordinator, "
            "participants, client)\n",
            done ? cpu_us / (double)done : 0);
    printf ("  anchor         %.0f fdatasync/s on the same disk (4 KB)\n",
            fsyncs);
    printf ("  ratio          %.1f sagas per fdatasync-second\n",
            fsyncs > 0 ? rate / fsyncs : 0);
    printf ("  target >= 10000 sagas/s: %s\n", rate >= 10000 ? "PASS" : "MISS");
    free (lat);
    free (slots);
    keel_client_destroy (&client);
    zactor_destroy (&node);
    keel_config_destroy (&config);
    if (dir == tmp) {
        char cmd[600];
        snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system (cmd) != 0)
            fprintf (stderr, "saga_bench: cannot remove %s\n", dir);
    }
    return completed == n ? 0 : 1;
}
