/*  breaker_fanout.c - how fast a breaker transition reaches N callers.

    A node runs the breaker actor in-process (front door and events on
    loopback tcp). N callers, each a thread with a local mirror, follow its
    events. Each round forces a breaker open (then closed) over the bus and
    times, from just before the request, until every caller has applied the
    new state. Anchor, in the same run: raw libzmq PUB -> N SUB threads over
    tcp, one message of the same size, timed until every SUB has it.

    usage: breaker_fanout [-n CALLERS] [-r ROUNDS] [-q] [--json]
*/
#include "breaker.pb-c.h"
#include "breaker_actor.h"
#include "breaker_mirror.h"
#include "keel_client.h"
#include "keel_node.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"breaker", keel_breaker_actor, "breaker"},
    {NULL, NULL, NULL},
};

static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind (fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname (fd, (struct sockaddr *)&addr, &len) != 0) {
        perror ("free port");
        exit (1);
    }
    close (fd);
    return ntohs (addr.sin_port);
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// ---------------------------------------------------------------------------
//  A caller: a mirror in a thread; says "APPLIED" on its pipe per state.

typedef struct {
    const char *bus;
    const char *events;
} s_args_t;

static void
s_applied (const char *key, keel_breaker_state_t state, void *arg)
{
    (void)key;
    zstr_sendf ((zsock_t *)arg, "%s", keel_breaker_state_name (state));
}

static void
s_caller (zsock_t *pipe, void *args)
{
    s_args_t *a = (s_args_t *)args;
    keel_breaker_mirror_t *mirror =
        keel_breaker_mirror_new ("bench", a->bus, "breaker", a->events, NULL);
    keel_breaker_mirror_set_listener (mirror, s_applied, pipe);
    zloop_t *loop = zloop_new ();
    keel_breaker_mirror_attach (mirror, loop);
    zloop_reader (loop, pipe, keel_actor_on_pipe, NULL);
    zloop_set_nonstop (loop, true);
    zsock_signal (pipe, 0);
    zloop_start (loop);
    keel_breaker_mirror_destroy (&mirror);
    zloop_destroy (&loop);
}

//  Wait until every caller said `state`; returns false after 5 s.
static bool
s_all_applied (zactor_t **callers, int n, const char *state)
{
    for (int i = 0; i < n; i++) {
        zsock_set_rcvtimeo (callers[i], 5000);
        while (true) {
            char *said = zstr_recv (callers[i]);
            if (!said)
                return false;
            bool match = streq (said, state);
            free (said);
            if (match)
                break;
        }
    }
    return true;
}

// ---------------------------------------------------------------------------
//  Raw anchor: PUB -> N SUB threads.

static void
s_sub (zsock_t *pipe, void *args)
{
    zsock_t *sub = zsock_new_sub ((const char *)args, "");
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, sub, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != sub)
            break;
        zframe_t *frame = zframe_recv (sub);
        zframe_destroy (&frame);
        zstr_send (pipe, "GOT");
    }
    zpoller_destroy (&poller);
    zsock_destroy (&sub);
}

int
main (int argc, char **argv)
{
    int n = 8, rounds = 50;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (streq (argv[i], "-n") && i + 1 < argc)
            n = atoi (argv[++i]);
        else if (streq (argv[i], "-r") && i + 1 < argc)
            rounds = atoi (argv[++i]);
        else if (streq (argv[i], "-q"))
            rounds = 10;
        else if (streq (argv[i], "--json"))
            json = true;
        else {
            fprintf (stderr,
                     "usage: breaker_fanout [-n CALLERS] [-r ROUNDS] [-q] "
                     "[--json]\n");
            return 2;
        }
    }
    if (n < 1 || n > 256 || rounds < 1 || rounds > 10000) {
        fprintf (stderr, "breaker_fanout: -n 1..256, -r 1..10000\n");
        return 2;
    }
    zsys_set_logstream (stderr);

    //  The node.
    char *bus = zsys_sprintf ("tcp://127.0.0.1:%d", s_free_port ());
    char *events = zsys_sprintf ("tcp://127.0.0.1:%d", s_free_port ());
    char *text = zsys_sprintf ("node\n    name = fanout\n    bus = %s\n"
                               "    events = %s\n    actors\n        breaker\n",
                               bus, events);
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "fanout", &error);
    keel_node_args_t node_args = {config, s_defs};
    zactor_t *node = zactor_new (keel_node_actor, &node_args);
    if (!config || (error = keel_actor_status (node))) {
        fprintf (stderr, "breaker_fanout: %s\n", error ? error : "config");
        return 1;
    }
    s_args_t args = {bus, events};
    zactor_t **callers = (zactor_t **)calloc (n, sizeof (zactor_t *));
    for (int i = 0; i < n; i++)
        callers[i] = zactor_new (s_caller, &args);
    keel_client_t *control = keel_client_new ("bench", bus, "breaker");
    Keel__ControlRequest req = KEEL__CONTROL_REQUEST__INIT;
    req.key = "fanout-key";

    //  Warm up: every caller's subscription live (late joiners).
    bool live = false;
    for (int i = 0; i < 100 && !live; i++) {
        req.action = i % 2 ? KEEL__CONTROL_REQUEST__ACTION__FORCE_CLOSE
                           : KEEL__CONTROL_REQUEST__ACTION__DISABLE;
        keel_client_call (control, "breaker.control", &req.base, NULL, NULL,
                          NULL, NULL);
        live = s_all_applied (callers, n, i % 2 ? "CLOSED" : "DISABLED");
    }
    if (!live) {
        fprintf (stderr, "breaker_fanout: callers never heard the actor\n");
        return 1;
    }
    double *keel_us = (double *)calloc (rounds, sizeof (double));
    for (int r = 0; r < rounds; r++) {
        req.action = r % 2 ? KEEL__CONTROL_REQUEST__ACTION__FORCE_CLOSE
                           : KEEL__CONTROL_REQUEST__ACTION__FORCE_OPEN;
        int64_t start = zclock_usecs ();
        keel_client_call (control, "breaker.control", &req.base, NULL, NULL,
                          NULL, NULL);
        if (!s_all_applied (callers, n, r % 2 ? "CLOSED" : "FORCED_OPEN")) {
            fprintf (stderr, "breaker_fanout: round %d lost\n", r);
            return 1;
        }
        keel_us[r] = (double)(zclock_usecs () - start);
    }
    keel_client_destroy (&control);
    for (int i = 0; i < n; i++)
        zactor_destroy (&callers[i]);
    zactor_destroy (&node);
    keel_config_destroy (&config);

    //  Anchor: the same fan-out with raw PUB/SUB.
    Keel__BreakerTransition event = KEEL__BREAKER_TRANSITION__INIT;
    event.key = "fanout-key";
    event.to = KEEL__BREAKER_STATE__FORCED_OPEN;
    event.reason = "forced";
    size_t size = keel__breaker_transition__get_packed_size (&event) + 40;
    char *raw_ep = zsys_sprintf ("tcp://127.0.0.1:%d", s_free_port ());
    zsock_t *pub = zsock_new_pub (raw_ep);
    zactor_t **subs = (zactor_t **)calloc (n, sizeof (zactor_t *));
    for (int i = 0; i < n; i++)
        subs[i] = zactor_new (s_sub, raw_ep);
    //  Warm up the same way: publish until every SUB has one.
    char *payload = (char *)calloc (1, size);
    for (int i = 0; i < n; i++) {
        zsock_set_rcvtimeo (subs[i], 20);
        char *got = NULL;
        for (int k = 0; k < 250 && !got; k++) {
            zsock_send (pub, "b", payload, size);
            got = zstr_recv (subs[i]);
        }
        free (got);
    }
    for (int i = 0; i < n; i++) { //  drain the warm-up copies
        zsock_set_rcvtimeo (subs[i], 50);
        char *got;
        while ((got = zstr_recv (subs[i])))
            free (got);
    }
    double *raw_us = (double *)calloc (rounds, sizeof (double));
    for (int r = 0; r < rounds; r++) {
        int64_t start = zclock_usecs ();
        zsock_send (pub, "b", payload, size);
        for (int i = 0; i < n; i++) {
            zsock_set_rcvtimeo (subs[i], 5000);
            char *got = zstr_recv (subs[i]);
            free (got);
        }
        raw_us[r] = (double)(zclock_usecs () - start);
    }
    for (int i = 0; i < n; i++)
        zactor_destroy (&subs[i]);
    zsock_destroy (&pub);

    qsort (keel_us, rounds, sizeof (double), s_compare);
    qsort (raw_us, rounds, sizeof (double), s_compare);
    double k50 = keel_us[rounds / 2], k99 = keel_us[rounds * 99 / 100];
    double r50 = raw_us[rounds / 2], r99 = raw_us[rounds * 99 / 100];
    if (json)
        printf ("{\"callers\":%d,\"rounds\":%d,\"keel_p50_us\":%.1f,"
                "\"keel_p99_us\":%.1f,\"raw_p50_us\":%.1f,\"raw_p99_us\":%.1f,"
                "\"ratio_p50\":%.2f}\n",
                n, rounds, k50, k99, r50, r99, k50 / r50);
    else {
        printf ("breaker transition to %d callers, %d rounds, tcp loopback\n",
                n, rounds);
        printf ("  keel control request -> all mirrors applied: p50 %8.1f us"
                "  p99 %8.1f us\n",
                k50, k99);
        printf ("  raw PUB -> all SUB threads (anchor):          p50 %8.1f us"
                "  p99 %8.1f us\n",
                r50, r99);
        printf ("  keel/raw p50 = %.2f (keel also includes the control round "
                "trip and the actor)\n",
                k50 / r50);
    }
    free (keel_us);
    free (raw_us);
    free (payload);
    free (callers);
    free (subs);
    free (raw_ep);
    free (bus);
    free (events);
    free (text);
    return 0;
}
