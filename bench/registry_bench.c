/*  registry_bench.c - the registry's figures, each next to its anchor in the
    same run.

    Every round starts a node in this process (keel_node_actor running the
    `registry` actor, front door and events on tcp://127.0.0.1, and the
    actor's own tcp endpoint from `registry/bind`), measures, and stops it.
    Anchors run right before the keel figure they belong to, so both see the
    same machine state:

      1. discover round trip. keel_client_call of registry.discover for a
         service of 10 instances, through the front door and straight to
         the actor's own endpoint (no front-door hop), reply decoded as a
         caller would. Anchor: raw REQ/REP over tcp whose REP thread answers
         with as many bytes as keel's reply payload (the packed InstanceList
         of those 10 instances). Target keel <= 1.2x raw (mean).
      2. registrations/s. N distinct instances (2 tags, 2 meta pairs, a TTL
         check each) registered straight to the actor, `window` requests in
         flight (keel_client_request with a callback, zmq_poll +
         keel_client_process). Anchor: raw DEALER -> ROUTER echo with the
         same window and messages of the request payload's size. Target
         >= 100k/s.
      3. heartbeats/s for those N instances, the same way and with its own
         anchor at the heartbeat payload's size.
      4. resident memory (round 1 only: a fresh process): RSS before the
         first node started and after its N registrations. No anchor: the
         before/after of this process is the figure. Target <= 150 MB for
         100k instances.
      5. kill -9 to removal. example_greeter (next to this program)
         registers through the front door and heartbeats every 1 s (TTL
         3 s). Once a registry event says it is healthy (discovery checked),
         SIGKILL; the time to the registry.health event, and to a discover
         (asked on that event) no longer listing it. Target within 3
         heartbeat intervals (3000 ms). The kill comes right after its
         registration, the registry's last word from it, so this is the
         worst case: TTL + the registry's lag, which is reported too
         ("lag past TTL": health event minus the event that said healthy,
         minus the TTL; their common path cancels). The node still holds
         the N instances of 2-3: detection under load.

    The N instances carry a 10-minute TTL so that none expires during a run.

    Threads: the main thread owns every client, subscriber and raw client
    socket. The node and its registry actor are zactors; each raw server is
    a zactor that creates its socket in its own thread and stops on $TERM
    (zactor_destroy), so nothing waits on a timer to stop. The greeter is a
    child process, always reaped.

    Usage: registry_bench [-n N] [-m M] [-r ROUNDS] [-w WINDOW] [-q] [--json]
                          [--only discover|rates|kill]
*/
#include "keel_client.h"
#include "keel_events.h"
#include "keel_node.h"
#include "registry.pb-c.h"
#include "registry_actor.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define STALL_MS       10000  //  no progress for this long: fail, never hang
#define MAX_ROUNDS     15     //  rounds kept for medians
#define WARMUP_MAX     1000   //  unmeasured round trips before each rtt run
#define DISCOVER_COUNT 10     //  instances of the discovered service
#define BENCH_TTL_MS   600000 //  TTL of bench instances: none expires
#define MAX_N          9999999
#define GREETER_ID     "greeter-1"
#define GREETER_HB_MS  1000 //  example_greeter's heartbeat interval
#define GREETER_TTL_MS                                                         \
    (3 * GREETER_HB_MS - GREETER_HB_MS / 10) //  the SDK's TTL
#define KILL_WAIT_MS  10000
#define RSS_INSTANCES 100000 //  the memory target is for this many

//  Targets.
#define TARGET_RTT_RATIO 1.2
#define TARGET_RATE      100000.0
#define TARGET_RSS_MB    150.0
#define TARGET_KILL_MS   (3.0 * GREETER_HB_MS)

enum { PHASE_DISCOVER = 1, PHASE_RATES = 2, PHASE_KILL = 4, PHASE_ALL = 7 };

typedef enum { OP_REGISTER, OP_HEARTBEAT } s_op_t;

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {NULL, NULL, NULL},
};

//  A latency series of one run.
typedef struct {
    double mean_us, p50_us, p99_us;
} s_lat_t;

//  One kill -9 round.
typedef struct {
    double up_ms;       //  spawn to healthy in discovery (information)
    double event_ms;    //  kill to the registry.health event
    double discover_ms; //  kill to discovery no longer listing it
    double lag_ms;      //  health event past the TTL counted from the
                        //  event that said it was healthy (its last word)
} s_kill_t;

//  Everything one round measured.
typedef struct {
    s_lat_t raw_rtt;     //  REQ/REP anchor
    s_lat_t keel_front;  //  discover through the front door
    s_lat_t keel_direct; //  discover to the actor's own endpoint
    double decode_us;    //  client-side unpack + free of one reply
    size_t reply_size;   //  packed InstanceList bytes
    size_t reply_wire;   //  keel reply frame bytes (envelope + payload)
    double raw_reg;      //  anchor, msg/s at register size
    double keel_reg;     //  registrations/s
    double raw_hb;       //  anchor, msg/s at heartbeat size
    double keel_hb;      //  heartbeats/s
    double rss_before;   //  MB, before the node started (round 1)
    double rss_pre_reg;  //  MB, right before the registrations
    double rss_after;    //  MB, after the registrations
    s_kill_t kill;       //  kill -9 figures
} s_round_t;

//  The node of one round.
typedef struct {
    char *name;            //  node name
    keel_config_t *config; //  its config
    keel_node_args_t args; //  what the node actor reads, for its life
    zactor_t *node;        //  the node
    char bus[64];          //  front door
    char events[64];       //  event endpoint
    char direct[64];       //  the registry actor's own endpoint
} s_node_t;

//  A raw libzmq server thread.
typedef struct {
    int type;           //  ZMQ_REP: fixed-size reply; ZMQ_ROUTER: echo
    size_t reply_size;  //  REP: bytes of every reply
    char endpoint[256]; //  bound and resolved before the handshake
    bool failed;        //  could not start, or failed while serving
} s_raw_t;

//  One registration, built in place (it points into itself).
typedef struct {
    char id[32];
    char service[32];
    char endpoint[64];
    char *tags[2];
    Keel__Instance__MetaEntry entries[2];
    Keel__Instance__MetaEntry *meta[2];
    Keel__HealthCheck check;
    Keel__Instance instance;
    Keel__RegisterRequest req;
} s_reg_t;

//  CZMQ's context: the raw sockets share it with keel's.
static void *s_ctx;
static FILE *s_out;
static Keel__DiscoverRequest s_discover_req;
static size_t s_discover_req_size;
static uint8_t s_discover_req_bytes[64];
static size_t s_reg_size;
static size_t s_hb_size;

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double
s_ms_since (int64_t start_ns)
{
    return (double)(s_now_ns () - start_ns) / 1e6;
}

static void s_fail (const char *format, ...) CHECK_PRINTF (1);

static void
s_fail (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "registry_bench: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
}

//  Resident set size of this process, MB.
static double
s_rss_mb (void)
{
    FILE *file = fopen ("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!file)
        return 0;
    if (fscanf (file, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose (file);
    return (double)resident * (double)sysconf (_SC_PAGESIZE) / 1048576.0;
}

//  `count` distinct free loopback tcp ports: all are held while choosing,
//  so none repeats. Returns 0 or -1.
static int
s_free_ports (int *ports, int count)
{
    int fds[4];
    int rc = 0, opened = 0;
    assert (count <= 4);
    for (; opened < count && rc == 0; opened++) {
        fds[opened] = socket (AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {0};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (fds[opened] == -1 ||
            bind (fds[opened], (struct sockaddr *)&addr, sizeof addr) == -1 ||
            getsockname (fds[opened], (struct sockaddr *)&addr, &len) == -1)
            rc = -1;
        else
            ports[opened] = ntohs (addr.sin_port);
    }
    for (int i = 0; i < opened; i++)
        if (fds[i] != -1)
            close (fds[i]);
    if (rc == -1)
        s_fail ("no free tcp port: %s", strerror (errno));
    return rc;
}

static bool
s_healthy (Keel__HealthStatus status)
{
    return status == KEEL__HEALTH_STATUS__PASSING ||
           status == KEEL__HEALTH_STATUS__WARNING;
}

// ---------------------------------------------------------------------------
//  Requests

//  Instance `i` of `service`: fixed-width strings, so every request packs
//  to the same size.
static void
s_reg_fill (s_reg_t *r, const char *prefix, const char *service, long i)
{
    snprintf (r->id, sizeof r->id, "%s%07ld", prefix, i);
    snprintf (r->service, sizeof r->service, "%s", service);
    snprintf (r->endpoint, sizeof r->endpoint, "tcp://host-%07ld.bench:8080",
              i);
    r->tags[0] = "bench";
    r->tags[1] = i % 2 ? "zone-a" : "zone-b";
    for (int k = 0; k < 2; k++) {
        keel__instance__meta_entry__init (&r->entries[k]);
        r->meta[k] = &r->entries[k];
    }
    r->entries[0].key = "version";
    r->entries[0].value = "1.2.3";
    r->entries[1].key = "zone";
    r->entries[1].value = i % 2 ? "eu-west-1a" : "eu-west-1b";
    keel__health_check__init (&r->check);
    r->check.ttl_ms = BENCH_TTL_MS;
    keel__instance__init (&r->instance);
    r->instance.id = r->id;
    r->instance.service = r->service;
    r->instance.endpoint = r->endpoint;
    r->instance.n_tags = 2;
    r->instance.tags = r->tags;
    r->instance.n_meta = 2;
    r->instance.meta = r->meta;
    r->instance.weight = 1;
    r->instance.check = &r->check;
    keel__register_request__init (&r->req);
    r->req.instance = &r->instance;
}

//  The N instances: 100 services, ids "inst-NNNNNNN".
static void
s_bench_instance (s_reg_t *r, long i)
{
    char service[32];
    snprintf (service, sizeof service, "bench-svc-%02ld", i % 100);
    s_reg_fill (r, "inst-", service, i);
}

//  What a blocking request saw.
typedef struct {
    bool done;
    int code;
    char text[160];
    uint8_t *data; //  reply payload, copied
    size_t size;
    size_t wire; //  reply frame bytes
} s_once_t;

static void
s_on_once (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_once_t *once = (s_once_t *)arg;
    once->done = true;
    once->code = reply->code;
    snprintf (once->text, sizeof once->text, "%s", reply->text);
    once->size = reply->size;
    once->data = (uint8_t *)malloc (reply->size ? reply->size : 1);
    if (once->data && reply->size)
        memcpy (once->data, reply->data, reply->size);
    if (reply->envelope)
        once->wire = keel__envelope__get_packed_size (reply->envelope);
}

//  One request, waited for the event-loop way; the reply bytes are kept
//  (caller frees once->data). Returns 0 if it came back OK.
static int
s_request_once (keel_client_t *client, const char *type,
                const ProtobufCMessage *payload, s_once_t *once)
{
    memset (once, 0, sizeof *once);
    keel_call_opts_t opts = {.timeout_ms = STALL_MS};
    if (!keel_client_request (client, type, payload, &opts, s_on_once, once)) {
        s_fail ("%s: cannot send: %s", type, strerror (errno));
        return -1;
    }
    while (!once->done) {
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (client)), 0,
                               ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, (long)keel_client_timeout (client)) == -1 ||
            keel_client_process (client) == -1) {
            s_fail ("%s: %s", type, zmq_strerror (errno));
            return -1;
        }
    }
    if (once->code != KEEL_OK || !once->data) {
        s_fail ("%s: %s (%s)", type, keel_errname (once->code), once->text);
        return -1;
    }
    return 0;
}

static int
s_call (keel_client_t *client, const char *type,
        const ProtobufCMessage *payload)
{
    keel_call_opts_t opts = {.timeout_ms = STALL_MS};
    char *error = NULL;
    keel_err_t rc =
        keel_client_call (client, type, payload, &opts, NULL, NULL, &error);
    if (rc != KEEL_OK)
        s_fail ("%s: %s (%s)", type, keel_errname (rc), error ? error : "");
    free (error);
    return rc == KEEL_OK ? 0 : -1;
}

// ---------------------------------------------------------------------------
//  The node

static int
s_node_start (s_node_t *n, long instances)
{
    static int counter = 0;
    memset (n, 0, sizeof *n);
    int ports[3];
    if (s_free_ports (ports, 3) == -1)
        return -1;
    n->name = zsys_sprintf ("rbench-%d-%d", (int)getpid (), ++counter);
    snprintf (n->bus, sizeof n->bus, "tcp://127.0.0.1:%d", ports[0]);
    snprintf (n->events, sizeof n->events, "tcp://127.0.0.1:%d", ports[1]);
    snprintf (n->direct, sizeof n->direct, "tcp://127.0.0.1:%d", ports[2]);
    char *text =
        zsys_sprintf ("node\n    name = %s\n    bus = %s\n    events = %s\n"
                      "    actors\n        registry\n"
                      "registry\n    bind = %s\n    max_instances = %ld\n",
                      n->name, n->bus, n->events, n->direct, instances + 1000);
    char *error = NULL;
    n->config = keel_config_load_string (text, "registry_bench", &error);
    zstr_free (&text);
    if (!n->config) {
        s_fail ("config: %s", error);
        free (error);
        return -1;
    }
    n->args.config = n->config;
    n->args.defs = s_defs;
    n->node = zactor_new (keel_node_actor, &n->args);
    error = n->node ? keel_actor_status (n->node)
                    : strdup ("cannot start the node thread");
    if (error) {
        s_fail ("node: %s", error);
        free (error);
        return -1;
    }
    return 0;
}

static void
s_node_stop (s_node_t *n)
{
    zactor_destroy (&n->node);
    keel_config_destroy (&n->config);
    zstr_free (&n->name);
}

// ---------------------------------------------------------------------------
//  Raw libzmq anchors

static void
s_set_int (void *sock, int option, int value)
{
    zmq_setsockopt (sock, option, &value, sizeof value);
}

//  As keel_codec_socket_setup does for keel's sockets.
static void
s_raw_setup (void *sock)
{
    s_set_int (sock, ZMQ_SNDHWM, KEEL_SOCKET_HWM);
    s_set_int (sock, ZMQ_RCVHWM, KEEL_SOCKET_HWM);
}

//  Answer what is waiting (bounded, then back to the poll). Returns -1 if
//  the socket failed.
static int
s_raw_serve (void *sock, const s_raw_t *raw, const uint8_t *reply,
             zmq_msg_t *id, zmq_msg_t *body)
{
    for (int i = 0; i < 1000; i++) {
        if (zmq_msg_recv (id, sock, ZMQ_DONTWAIT) == -1)
            return errno == EAGAIN ? 0 : -1;
        if (raw->type == ZMQ_REP) {
            if (zmq_send (sock, reply, raw->reply_size, 0) == -1)
                return -1;
        } else if (!zmq_msg_more (id) || zmq_msg_recv (body, sock, 0) == -1 ||
                   zmq_msg_send (id, sock, ZMQ_SNDMORE) == -1 ||
                   zmq_msg_send (body, sock, 0) == -1)
            return -1;
    }
    return 0;
}

//  A raw server as a zactor: binds an ephemeral tcp port in its own thread,
//  says so on the pipe, serves until $TERM.
static void
s_raw_server (zsock_t *pipe, void *arg)
{
    s_raw_t *raw = (s_raw_t *)arg;
    void *sock = zmq_socket (s_ctx, raw->type);
    uint8_t *reply = (uint8_t *)calloc (1, raw->reply_size + 1);
    size_t size = sizeof raw->endpoint;
    if (sock)
        s_raw_setup (sock);
    if (!sock || !reply || zmq_bind (sock, "tcp://127.0.0.1:*") == -1 ||
        zmq_getsockopt (sock, ZMQ_LAST_ENDPOINT, raw->endpoint, &size) == -1) {
        s_fail ("raw server: %s", zmq_strerror (errno));
        raw->failed = true;
    } else
        memset (reply, 'r', raw->reply_size);
    zsock_signal (pipe, 0);
    zmq_pollitem_t items[2] = {{zsock_resolve (pipe), 0, ZMQ_POLLIN, 0},
                               {sock, 0, ZMQ_POLLIN, 0}};
    zmq_msg_t id, body;
    zmq_msg_init (&id);
    zmq_msg_init (&body);
    while (!raw->failed) {
        if (zmq_poll (items, 2, -1) == -1) {
            if (errno == EINTR)
                continue;
            raw->failed = true;
        } else if (items[0].revents & ZMQ_POLLIN)
            break; //  $TERM, the only command
        else if ((items[1].revents & ZMQ_POLLIN) &&
                 s_raw_serve (sock, raw, reply, &id, &body) == -1)
            raw->failed = true;
        if (raw->failed)
            s_fail ("raw server: %s", zmq_strerror (errno));
    }
    zmq_msg_close (&id);
    zmq_msg_close (&body);
    if (sock) {
        s_set_int (sock, ZMQ_LINGER, 0);
        zmq_close (sock);
    }
    free (reply);
}

static zactor_t *
s_raw_start (s_raw_t *raw)
{
    zactor_t *server = zactor_new (s_raw_server, raw);
    if (server && raw->failed)
        zactor_destroy (&server);
    return server;
}

static void *
s_raw_client (int type, const char *endpoint)
{
    void *sock = zmq_socket (s_ctx, type);
    if (!sock)
        return NULL;
    s_raw_setup (sock);
    //  Blocking sends and receives, but never forever.
    s_set_int (sock, ZMQ_SNDTIMEO, STALL_MS);
    s_set_int (sock, ZMQ_RCVTIMEO, STALL_MS);
    if (zmq_connect (sock, endpoint) == -1) {
        zmq_close (sock);
        return NULL;
    }
    return sock;
}

static void
s_raw_close (void *sock)
{
    if (sock) {
        s_set_int (sock, ZMQ_LINGER, 0);
        zmq_close (sock);
    }
}

// ---------------------------------------------------------------------------
//  Latency figures

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void
s_latency (int64_t *samples, long m, s_lat_t *lat)
{
    double sum = 0;
    for (long i = 0; i < m; i++)
        sum += (double)samples[i];
    qsort (samples, (size_t)m, sizeof (int64_t), s_cmp_i64);
    lat->mean_us = sum / (double)m / 1000.0;
    lat->p50_us = (double)samples[(m - 1) / 2] / 1000.0;
    lat->p99_us = (double)samples[(m * 99 + 99) / 100 - 1] / 1000.0;
}

static long
s_warmup (long m)
{
    return m / 10 < WARMUP_MAX ? m / 10 : WARMUP_MAX;
}

// ---------------------------------------------------------------------------
//  1. discover round trip

//  Raw REQ -> REP over tcp: the request is the packed DiscoverRequest, the
//  reply `reply_size` bytes.
static int
s_raw_rtt (long m, size_t reply_size, s_lat_t *lat)
{
    s_raw_t raw = {.type = ZMQ_REP, .reply_size = reply_size};
    zactor_t *server = s_raw_start (&raw);
    if (!server)
        return -1;
    int rc = 0;
    int64_t *samples = (int64_t *)malloc ((size_t)m * sizeof (int64_t));
    uint8_t *buffer = (uint8_t *)malloc (reply_size + 1);
    void *sock = s_raw_client (ZMQ_REQ, raw.endpoint);
    if (!samples || !buffer || !sock)
        rc = -1;
    for (long i = -s_warmup (m); rc == 0 && i < m; i++) {
        int64_t start = s_now_ns ();
        if (zmq_send (sock, s_discover_req_bytes, s_discover_req_size, 0) !=
                (int)s_discover_req_size ||
            zmq_recv (sock, buffer, reply_size + 1, 0) != (int)reply_size) {
            s_fail ("raw rtt: round trip %ld: %s", i, zmq_strerror (errno));
            rc = -1;
        } else if (i >= 0)
            samples[i] = s_now_ns () - start;
    }
    s_raw_close (sock);
    zactor_destroy (&server);
    if (rc == 0)
        s_latency (samples, m, lat);
    free (samples);
    free (buffer);
    return rc;
}

//  keel_client_call of registry.discover, the reply decoded and checked.
static int
s_keel_discover (const char *endpoint, long m, s_lat_t *lat)
{
    keel_client_t *client = keel_client_new ("bench", endpoint, "registry");
    int64_t *samples = (int64_t *)malloc ((size_t)m * sizeof (int64_t));
    int rc = client && samples ? 0 : -1;
    keel_call_opts_t opts = {.timeout_ms = STALL_MS};
    for (long i = -s_warmup (m); rc == 0 && i < m; i++) {
        int64_t start = s_now_ns ();
        Keel__InstanceList *list = NULL;
        char *error = NULL;
        keel_err_t code =
            keel_client_call (client, "registry.discover", &s_discover_req.base,
                              &opts, &keel__instance_list__descriptor,
                              (ProtobufCMessage **)&list, &error);
        size_t count = list ? list->n_instances : 0;
        if (list)
            protobuf_c_message_free_unpacked (&list->base, NULL);
        if (code != KEEL_OK || count != DISCOVER_COUNT) {
            s_fail ("discover via %s: call %ld: %s (%s), %zu instances",
                    endpoint, i, keel_errname (code), error ? error : "",
                    count);
            rc = -1;
        } else if (i >= 0)
            samples[i] = s_now_ns () - start;
        free (error);
    }
    keel_client_destroy (&client);
    if (rc == 0)
        s_latency (samples, m, lat);
    free (samples);
    return rc;
}

//  What decoding the reply costs the caller (included in the keel figures).
static double
s_decode_us (const uint8_t *data, size_t size, long m)
{
    int64_t start = s_now_ns ();
    for (long i = 0; i < m; i++) {
        Keel__InstanceList *list =
            keel__instance_list__unpack (NULL, size, data);
        if (!list)
            return -1;
        keel__instance_list__free_unpacked (list, NULL);
    }
    return (double)(s_now_ns () - start) / 1000.0 / (double)m;
}

static int
s_round_discover (s_node_t *n, long m, s_round_t *round)
{
    keel_client_t *client = keel_client_new ("bench", n->bus, "registry");
    int rc = client ? 0 : -1;
    for (long i = 0; rc == 0 && i < DISCOVER_COUNT; i++) {
        s_reg_t r;
        s_reg_fill (&r, "disc-", "bench-discover", i);
        rc = s_call (client, "registry.register", &r.req.base);
    }
    //  The reply's size, as keel sends it.
    s_once_t once = {0};
    if (rc == 0 && s_request_once (client, "registry.discover",
                                   &s_discover_req.base, &once) == 0) {
        Keel__InstanceList *list =
            keel__instance_list__unpack (NULL, once.size, once.data);
        if (!list || list->n_instances != DISCOVER_COUNT) {
            s_fail ("discover: %zu instances, expected %d",
                    list ? list->n_instances : 0, DISCOVER_COUNT);
            rc = -1;
        }
        if (list)
            keel__instance_list__free_unpacked (list, NULL);
        round->reply_size = once.size;
        round->reply_wire = once.wire;
    } else
        rc = -1;
    keel_client_destroy (&client);
    if (rc == 0)
        round->decode_us = s_decode_us (once.data, once.size, m);
    free (once.data);
    if (rc == 0 && s_raw_rtt (m, round->reply_size, &round->raw_rtt) == -1)
        rc = -1;
    if (rc == 0 && s_keel_discover (n->bus, m, &round->keel_front) == -1)
        rc = -1;
    if (rc == 0 && s_keel_discover (n->direct, m, &round->keel_direct) == -1)
        rc = -1;
    return rc;
}

// ---------------------------------------------------------------------------
//  2, 3. registrations and heartbeats with a window in flight

//  Raw DEALER -> ROUTER echo: `window` messages of `size` bytes in flight,
//  n round trips. Returns 0 and the rate.
static int
s_raw_window (size_t size, long n, int window, double *rate)
{
    s_raw_t raw = {.type = ZMQ_ROUTER};
    zactor_t *server = s_raw_start (&raw);
    if (!server)
        return -1;
    uint8_t *out = (uint8_t *)malloc (size), *in = (uint8_t *)malloc (size + 1);
    void *sock = s_raw_client (ZMQ_DEALER, raw.endpoint);
    int rc = out && in && sock ? 0 : -1;
    if (rc == 0) {
        memset (out, 'x', size);
        //  Connected and answered once before the clock starts.
        if (zmq_send (sock, out, size, 0) != (int)size ||
            zmq_recv (sock, in, size + 1, 0) != (int)size) {
            s_fail ("raw window: first round trip: %s", zmq_strerror (errno));
            rc = -1;
        }
    }
    long sent = 0, done = 0;
    int64_t start = s_now_ns ();
    while (rc == 0 && done < n) {
        while (sent - done < window && sent < n) {
            if (zmq_send (sock, out, size, ZMQ_DONTWAIT) == (int)size)
                sent++;
            else if (errno == EAGAIN)
                break;
            else {
                s_fail ("raw window: send: %s", zmq_strerror (errno));
                rc = -1;
                break;
            }
        }
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (rc == 0 && zmq_poll (&item, 1, STALL_MS) <= 0) {
            s_fail ("raw window: stalled after %ld: %s", done,
                    zmq_strerror (errno));
            rc = -1;
        }
        for (int i = 0; rc == 0 && i < 1000; i++) {
            int got = zmq_recv (sock, in, size + 1, ZMQ_DONTWAIT);
            if (got == -1 && errno == EAGAIN)
                break;
            if (got != (int)size) {
                s_fail ("raw window: receive: %s", zmq_strerror (errno));
                rc = -1;
            } else
                done++;
        }
    }
    int64_t took = s_now_ns () - start;
    s_raw_close (sock);
    zactor_destroy (&server);
    free (out);
    free (in);
    if (rc == 0)
        *rate = (double)n * 1e9 / (double)took;
    return rc;
}

typedef struct {
    long done;      //  outcomes seen
    long failed;    //  of those, not OK
    int code;       //  first failure's code
    char text[160]; //  and text
} s_window_t;

static void
s_on_windowed (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_window_t *w = (s_window_t *)arg;
    w->done++;
    if (reply->code != KEEL_OK && w->failed++ == 0) {
        w->code = reply->code;
        snprintf (w->text, sizeof w->text, "%s", reply->text);
    }
}

static uint64_t
s_send_op (keel_client_t *client, s_op_t op, long i,
           const keel_call_opts_t *opts, s_window_t *w)
{
    if (op == OP_REGISTER) {
        s_reg_t r;
        s_bench_instance (&r, i);
        return keel_client_request (client, "registry.register", &r.req.base,
                                    opts, s_on_windowed, w);
    }
    char id[32];
    snprintf (id, sizeof id, "inst-%07ld", i);
    Keel__HeartbeatRequest hb = KEEL__HEARTBEAT_REQUEST__INIT;
    hb.id = id;
    return keel_client_request (client, "registry.heartbeat", &hb.base, opts,
                                s_on_windowed, w);
}

//  keel: n requests of `op` to the actor's own endpoint, `window` in
//  flight. Returns 0 and the rate.
static int
s_keel_window (const char *endpoint, s_op_t op, long n, int window,
               double *rate)
{
    const char *name = op == OP_REGISTER ? "register" : "heartbeat";
    keel_client_t *client = keel_client_new ("bench", endpoint, "registry");
    if (!client)
        return -1;
    keel_call_opts_t opts = {.timeout_ms = STALL_MS};
    //  Connected and answered once before the clock starts.
    int rc = s_call (client, "keel.ping", NULL);
    s_window_t w = {0};
    long sent = 0;
    int64_t start = s_now_ns ();
    while (rc == 0 && w.done < n) {
        while (sent - w.done < window && sent < n) {
            if (!s_send_op (client, op, sent, &opts, &w)) {
                s_fail ("keel %s: request %ld: %s", name, sent,
                        strerror (errno));
                rc = -1;
                break;
            }
            sent++;
        }
        //  The socket may change on a reset: resolve it every time.
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (client)), 0,
                               ZMQ_POLLIN, 0};
        if (rc == 0 &&
            (zmq_poll (&item, 1, (long)keel_client_timeout (client)) == -1 ||
             keel_client_process (client) == -1)) {
            s_fail ("keel %s: %s", name, zmq_strerror (errno));
            rc = -1;
        }
        if (rc == 0 && w.failed) {
            s_fail ("keel %s: %ld failed, first: %s (%s)", name, w.failed,
                    keel_errname (w.code), w.text);
            rc = -1;
        }
    }
    int64_t took = s_now_ns () - start;
    keel_client_destroy (&client);
    if (rc == 0)
        *rate = (double)n * 1e9 / (double)took;
    return rc;
}

static int
s_round_rates (s_node_t *n, long count, int window, s_round_t *round)
{
    round->rss_pre_reg = s_rss_mb ();
    if (s_raw_window (s_reg_size, count, window, &round->raw_reg) == -1 ||
        s_keel_window (n->direct, OP_REGISTER, count, window,
                       &round->keel_reg) == -1)
        return -1;
    round->rss_after = s_rss_mb ();
    if (s_raw_window (s_hb_size, count, window, &round->raw_hb) == -1 ||
        s_keel_window (n->direct, OP_HEARTBEAT, count, window,
                       &round->keel_hb) == -1)
        return -1;
    return 0;
}

// ---------------------------------------------------------------------------
//  5. kill -9 to removal

//  Whether healthy discovery of "greeter" lists GREETER_ID: 1, 0, or -1 on
//  error.
static int
s_greeter_listed (keel_client_t *client)
{
    Keel__DiscoverRequest req = KEEL__DISCOVER_REQUEST__INIT;
    req.service = "greeter";
    keel_call_opts_t opts = {.timeout_ms = STALL_MS};
    Keel__InstanceList *list = NULL;
    char *error = NULL;
    keel_err_t rc = keel_client_call (client, "registry.discover", &req.base,
                                      &opts, &keel__instance_list__descriptor,
                                      (ProtobufCMessage **)&list, &error);
    int listed = -1;
    if (rc == KEEL_OK) {
        listed = 0;
        for (size_t i = 0; i < list->n_instances; i++)
            if (streq (list->instances[i]->id, GREETER_ID))
                listed = 1;
    } else
        s_fail ("discover greeter: %s (%s)", keel_errname (rc),
                error ? error : "");
    if (list)
        protobuf_c_message_free_unpacked (&list->base, NULL);
    free (error);
    return listed;
}

//  Make the subscription reach the registry's publisher: change something
//  until its event comes back, as any late joiner must.
static int
s_subscription_live (keel_subscriber_t *sub, keel_client_t *client)
{
    for (int i = 0; i < 200; i++) {
        s_reg_t r;
        s_reg_fill (&r, "probe-", "bench-probe", 0);
        r.instance.weight = (uint32_t)i + 1;
        if (s_call (client, "registry.register", &r.req.base) == -1)
            return -1;
        if (keel_subscriber_recv (sub, 20))
            return 0;
    }
    s_fail ("kill: no registry event ever reached the subscriber");
    return -1;
}

//  Wait for an event about GREETER_ID saying it is healthy (`healthy`) or
//  that it left healthy discovery (a registry.health event to a status
//  that is not healthy, or deregistered); then check with discovery.
//  *event_ns gets the event's arrival. Returns 0, or -1 at `deadline_ns`.
static int
s_wait_greeter (keel_subscriber_t *sub, keel_client_t *client, bool healthy,
                int64_t deadline_ns, int64_t *event_ns)
{
    while (true) {
        int64_t left = (deadline_ns - s_now_ns ()) / 1000000;
        if (left <= 0) {
            s_fail ("kill: no event said %s %s in time", GREETER_ID,
                    healthy ? "is healthy" : "left healthy discovery");
            return -1;
        }
        const keel_event_t *event = keel_subscriber_recv (sub, (int)left);
        if (!event)
            continue;
        int64_t at = s_now_ns ();
        const char *type = event->envelope->type;
        Keel__RegistryEvent *change =
            (Keel__RegistryEvent *)keel_codec_payload (
                event->envelope, &keel__registry_event__descriptor, NULL);
        bool match = false;
        if (change && change->instance &&
            streq (change->instance->id, GREETER_ID)) {
            Keel__HealthStatus status =
                change->instance->health ? change->instance->health->status
                                         : KEEL__HEALTH_STATUS__HEALTH_UNKNOWN;
            if (healthy)
                match = !streq (type, "registry.deregistered") &&
                        s_healthy (status);
            else
                match =
                    streq (type, "registry.deregistered") ||
                    (streq (type, "registry.health") && !s_healthy (status));
        }
        if (change)
            protobuf_c_message_free_unpacked (&change->base, NULL);
        if (!match)
            continue;
        if (event_ns)
            *event_ns = at;
        int listed = s_greeter_listed (client);
        if (listed == -1)
            return -1;
        if (listed != healthy) {
            s_fail ("kill: an event said %s %s, discovery disagrees",
                    GREETER_ID, healthy ? "is healthy" : "is not");
            return -1;
        }
        return 0;
    }
}

static void
s_reap (pid_t *pid_p)
{
    if (*pid_p > 0) {
        kill (*pid_p, SIGKILL);
        int status;
        while (waitpid (*pid_p, &status, 0) == -1 && errno == EINTR)
            ;
        *pid_p = 0;
    }
}

static int
s_kill_round (s_node_t *n, const char *greeter, s_kill_t *out)
{
    int rc = -1;
    pid_t pid = 0;
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_client_t *client = keel_client_new ("bench", n->bus, "registry");
    int port;
    char endpoint[64];
    if (!sub || !client || keel_subscriber_connect (sub, n->events) == -1)
        goto done;
    keel_subscriber_subscribe (sub, "registry.");
    if (s_subscription_live (sub, client) == -1 || s_free_ports (&port, 1))
        goto done;
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    char *argv[] = {(char *)greeter, endpoint, n->bus, NULL};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    //  Its stdout is not ours (--json); its stderr is.
    posix_spawn_file_actions_addopen (&actions, STDOUT_FILENO, "/dev/null",
                                      O_WRONLY, 0);
    int64_t spawned = s_now_ns ();
    int err = posix_spawn (&pid, greeter, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    if (err != 0) {
        s_fail ("kill: cannot start %s: %s", greeter, strerror (err));
        pid = 0;
        goto done;
    }
    int64_t healthy_ns = 0;
    if (s_wait_greeter (sub, client, true,
                        spawned + (int64_t)KILL_WAIT_MS * 1000000, &healthy_ns))
        goto done;
    out->up_ms = s_ms_since (spawned);

    kill (pid, SIGKILL);
    int64_t killed = s_now_ns ();
    s_reap (&pid); //  SIGKILL cannot be caught: this returns at once
    int64_t event_ns = 0;
    if (s_wait_greeter (sub, client, false,
                        killed + (int64_t)KILL_WAIT_MS * 1000000, &event_ns))
        goto done;
    out->discover_ms = s_ms_since (killed);
    out->event_ms = (double)(event_ns - killed) / 1e6;
    //  Both events took the same path, so its latency cancels out.
    out->lag_ms = (double)(event_ns - healthy_ns) / 1e6 - GREETER_TTL_MS;
    rc = 0;
done:
    s_reap (&pid);
    keel_client_destroy (&client);
    keel_subscriber_destroy (&sub);
    return rc;
}

// ---------------------------------------------------------------------------
//  Report

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

//  Median over the rounds of the double at `offset` in s_round_t.
static double
s_median (const s_round_t *rounds, int count, size_t offset)
{
    double values[MAX_ROUNDS];
    for (int i = 0; i < count; i++)
        values[i] = *(const double *)((const char *)&rounds[i] + offset);
    qsort (values, (size_t)count, sizeof (double), s_cmp_double);
    return count % 2 ? values[count / 2]
                     : (values[count / 2 - 1] + values[count / 2]) / 2;
}

static double
s_max (const s_round_t *rounds, int count, size_t offset)
{
    double max = 0;
    for (int i = 0; i < count; i++) {
        double v = *(const double *)((const char *)&rounds[i] + offset);
        max = v > max ? v : max;
    }
    return max;
}

#define S_MED(field) s_median (rounds, count, offsetof (s_round_t, field))
#define S_MAX(field) s_max (rounds, count, offsetof (s_round_t, field))

//  "a b c" (or "a,b,c" for JSON) of one field per round.
static void
s_per_round (const s_round_t *rounds, int count, size_t offset,
             const char *format, const char *sep, char *text, size_t size)
{
    size_t used = 0;
    text[0] = 0;
    for (int r = 0; r < count && used < size; r++) {
        double v = *(const double *)((const char *)&rounds[r] + offset);
        used += (size_t)snprintf (text + used, size - used, "%s", r ? sep : "");
        if (used < size)
            used += (size_t)snprintf (text + used, size - used, format, v);
    }
}

//  Paired ratios keel/anchor per round.
static void
s_pairs (const s_round_t *rounds, int count, size_t keel, size_t anchor,
         const char *format, const char *sep, char *text, size_t size)
{
    size_t used = 0;
    text[0] = 0;
    for (int r = 0; r < count && used < size; r++) {
        double k = *(const double *)((const char *)&rounds[r] + keel);
        double a = *(const double *)((const char *)&rounds[r] + anchor);
        used += (size_t)snprintf (text + used, size - used, "%s", r ? sep : "");
        if (used < size)
            used += (size_t)snprintf (text + used, size - used, format,
                                      a > 0 ? k / a : 0);
    }
}

#define S_OFF(field) offsetof (s_round_t, field)

//  The summary both outputs print.
typedef struct {
    s_lat_t raw, front, direct;
    double front_ratio, direct_ratio, decode_us;
    double raw_reg, keel_reg, raw_hb, keel_hb;
    double rss_delta, rss_reg, bytes_per, rss_projected;
    double kill_event_med, kill_event_max, kill_disc_med, kill_disc_max;
} s_summary_t;

static void
s_summarise (const s_round_t *rounds, int count, long n, s_summary_t *s)
{
    memset (s, 0, sizeof *s);
    s->raw.mean_us = S_MED (raw_rtt.mean_us);
    s->raw.p50_us = S_MED (raw_rtt.p50_us);
    s->raw.p99_us = S_MED (raw_rtt.p99_us);
    s->front.mean_us = S_MED (keel_front.mean_us);
    s->front.p50_us = S_MED (keel_front.p50_us);
    s->front.p99_us = S_MED (keel_front.p99_us);
    s->direct.mean_us = S_MED (keel_direct.mean_us);
    s->direct.p50_us = S_MED (keel_direct.p50_us);
    s->direct.p99_us = S_MED (keel_direct.p99_us);
    s->decode_us = S_MED (decode_us);
    if (s->raw.mean_us > 0) {
        s->front_ratio = s->front.mean_us / s->raw.mean_us;
        s->direct_ratio = s->direct.mean_us / s->raw.mean_us;
    }
    s->raw_reg = S_MED (raw_reg);
    s->keel_reg = S_MED (keel_reg);
    s->raw_hb = S_MED (raw_hb);
    s->keel_hb = S_MED (keel_hb);
    const s_round_t *first = &rounds[0];
    s->rss_delta = first->rss_after - first->rss_before;
    s->rss_reg = first->rss_after - first->rss_pre_reg;
    s->bytes_per = s->rss_reg * 1048576.0 / (double)n;
    //  Fixed part as measured, per-instance part scaled to 100k.
    s->rss_projected = (first->rss_pre_reg - first->rss_before) +
                       s->rss_reg * (double)RSS_INSTANCES / (double)n;
    s->kill_event_med = S_MED (kill.event_ms);
    s->kill_event_max = S_MAX (kill.event_ms);
    s->kill_disc_med = S_MED (kill.discover_ms);
    s->kill_disc_max = S_MAX (kill.discover_ms);
}

static const char *
s_ok (bool ok)
{
    return ok ? "ok" : "MISSED";
}

static const char *
s_bool (bool ok)
{
    return ok ? "true" : "false";
}

static void
s_print_lat (FILE *out, const char *label, const s_lat_t *lat,
             const s_round_t *rounds, int count, size_t offset)
{
    char text[256];
    s_per_round (rounds, count, offset, "%.2f", " ", text, sizeof text);
    fprintf (out, "   %-30s %9.0f %8.2f %8.2f %8.2f  %s\n", label,
             1e6 / lat->mean_us, lat->mean_us, lat->p50_us, lat->p99_us, text);
}

static void
s_print_rate (FILE *out, const char *label, double rate,
              const s_round_t *rounds, int count, size_t offset)
{
    char text[256];
    s_per_round (rounds, count, offset, "%.0f", " ", text, sizeof text);
    fprintf (out, "   %-38s %10.0f  %s\n", label, rate, text);
}

static void
s_print_table (FILE *out, const s_round_t *rounds, int count, long n, long m,
               int window, int phases)
{
    s_summary_t s;
    s_summarise (rounds, count, n, &s);
    char text[256];
    fprintf (out,
             "keel registry_bench: N=%ld instances, M=%ld discover round "
             "trips, window %d, median of %d round%s, %ld CPUs\n",
             n, m, window, count, count == 1 ? "" : "s",
             sysconf (_SC_NPROCESSORS_ONLN));
    if (phases & PHASE_DISCOVER)
        fprintf (out,
                 "payloads: discover request %zu B, reply %zu B (packed "
                 "InstanceList of %d; keel frame %zu B); register %zu B; "
                 "heartbeat %zu B\n",
                 s_discover_req_size, rounds[0].reply_size, DISCOVER_COUNT,
                 rounds[0].reply_wire, s_reg_size, s_hb_size);
    else
        fprintf (out, "payloads: register %zu B; heartbeat %zu B\n", s_reg_size,
                 s_hb_size);

    if (phases & PHASE_DISCOVER) {
        fprintf (out,
                 "\n1. discover round trip, tcp        rt/s  mean us   p50 us"
                 "   p99 us  per round (mean us)\n");
        s_print_lat (out, "raw  REQ/REP (same sizes)", &s.raw, rounds, count,
                     S_OFF (raw_rtt.mean_us));
        s_print_lat (out, "keel call via front door", &s.front, rounds, count,
                     S_OFF (keel_front.mean_us));
        s_print_lat (out, "keel call direct to actor", &s.direct, rounds, count,
                     S_OFF (keel_direct.mean_us));
        s_pairs (rounds, count, S_OFF (keel_front.mean_us),
                 S_OFF (raw_rtt.mean_us), "%.2f", ",", text, sizeof text);
        fprintf (out,
                 "   front door keel/raw = %.2f (target <= %.2f) %s; paired "
                 "rounds %s\n",
                 s.front_ratio, TARGET_RTT_RATIO,
                 s_ok (s.front_ratio <= TARGET_RTT_RATIO), text);
        s_pairs (rounds, count, S_OFF (keel_direct.mean_us),
                 S_OFF (raw_rtt.mean_us), "%.2f", ",", text, sizeof text);
        fprintf (out,
                 "   direct     keel/raw = %.2f (target <= %.2f) %s; paired "
                 "rounds %s\n",
                 s.direct_ratio, TARGET_RTT_RATIO,
                 s_ok (s.direct_ratio <= TARGET_RTT_RATIO), text);
        fprintf (out,
                 "   p50 keel/raw: front door %.2f, direct %.2f; front-door "
                 "hop %.2f us (information)\n",
                 s.front.p50_us / s.raw.p50_us, s.direct.p50_us / s.raw.p50_us,
                 s.front.mean_us - s.direct.mean_us);
        fprintf (out,
                 "   decoding the reply (unpack + free, in the keel figures): "
                 "%.2f us (information)\n",
                 s.decode_us);
    }
    if (phases & PHASE_RATES) {
        fprintf (out,
                 "\n2. registrations, window %d, direct to actor        per s"
                 "  per round\n",
                 window);
        snprintf (text, sizeof text, "raw  DEALER/ROUTER echo, %zu B",
                  s_reg_size);
        s_print_rate (out, text, s.raw_reg, rounds, count, S_OFF (raw_reg));
        s_print_rate (out, "keel registry.register", s.keel_reg, rounds, count,
                      S_OFF (keel_reg));
        s_pairs (rounds, count, S_OFF (keel_reg), S_OFF (raw_reg), "%.2f", ",",
                 text, sizeof text);
        fprintf (out,
                 "   keel %.0f regs/s (target >= %.0f) %s; keel/raw = %.2f; "
                 "paired rounds %s\n",
                 s.keel_reg, TARGET_RATE, s_ok (s.keel_reg >= TARGET_RATE),
                 s.keel_reg / s.raw_reg, text);

        fprintf (out,
                 "\n3. heartbeats, window %d, direct to actor           per s"
                 "  per round\n",
                 window);
        snprintf (text, sizeof text, "raw  DEALER/ROUTER echo, %zu B",
                  s_hb_size);
        s_print_rate (out, text, s.raw_hb, rounds, count, S_OFF (raw_hb));
        s_print_rate (out, "keel registry.heartbeat", s.keel_hb, rounds, count,
                      S_OFF (keel_hb));
        s_pairs (rounds, count, S_OFF (keel_hb), S_OFF (raw_hb), "%.2f", ",",
                 text, sizeof text);
        fprintf (out,
                 "   keel %.0f hb/s (target >= %.0f) %s; keel/raw = %.2f; "
                 "paired rounds %s\n",
                 s.keel_hb, TARGET_RATE, s_ok (s.keel_hb >= TARGET_RATE),
                 s.keel_hb / s.raw_hb, text);

        const s_round_t *first = &rounds[0];
        fprintf (out,
                 "\n4. resident memory, %ld instances (2 tags, 2 meta pairs, "
                 "TTL check each), round 1\n",
                 n);
        fprintf (out,
                 "   RSS before the node %.1f MB, before registering %.1f MB, "
                 "after %.1f MB\n",
                 first->rss_before, first->rss_pre_reg, first->rss_after);
        fprintf (out,
                 "   registrations alone %.1f MB = %.0f B per instance "
                 "(information)\n",
                 s.rss_reg, s.bytes_per);
        if (n == RSS_INSTANCES)
            fprintf (out, "   delta %.1f MB (target <= %.0f MB) %s\n",
                     s.rss_delta, TARGET_RSS_MB,
                     s_ok (s.rss_delta <= TARGET_RSS_MB));
        else
            fprintf (out,
                     "   delta %.1f MB; projected to %d instances %.1f MB "
                     "(target <= %.0f MB) %s\n",
                     s.rss_delta, RSS_INSTANCES, s.rss_projected, TARGET_RSS_MB,
                     s_ok (s.rss_projected <= TARGET_RSS_MB));
        fprintf (out, "   anchor: none; the figure is this process's "
                      "before/after\n");
    }
    if (phases & PHASE_KILL) {
        fprintf (out,
                 "\n5. kill -9 to removal (example_greeter, heartbeat %d ms, "
                 "TTL %d ms)\n",
                 GREETER_HB_MS, GREETER_TTL_MS);
        fprintf (out, "   killed right after the registry last heard from it "
                      "(its registration): the worst case, TTL + lag\n");
        fprintf (out, "   %-6s %14s %17s %22s %18s\n", "round",
                 "spawn->healthy", "kill->health event", "kill->discovery gone",
                 "lag past TTL");
        for (int r = 0; r < count; r++)
            fprintf (out, "   %-6d %11.0f ms %15.0f ms %19.0f ms %15.1f ms\n",
                     r + 1, rounds[r].kill.up_ms, rounds[r].kill.event_ms,
                     rounds[r].kill.discover_ms, rounds[r].kill.lag_ms);
        fprintf (out,
                 "   health event median %.0f ms, worst %.0f ms; discovery "
                 "gone median %.0f ms, worst %.0f ms (target <= %.0f ms) %s\n",
                 s.kill_event_med, s.kill_event_max, s.kill_disc_med,
                 s.kill_disc_max, TARGET_KILL_MS,
                 s_ok (s.kill_disc_max <= TARGET_KILL_MS &&
                       s.kill_event_max <= TARGET_KILL_MS));
    }
}

static void
s_json_lat (const char *name, const s_lat_t *lat, const s_round_t *rounds,
            int count, size_t offset)
{
    char text[256];
    s_per_round (rounds, count, offset, "%.3f", ",", text, sizeof text);
    printf ("\"%s\":{\"mean_us\":%.3f,\"p50_us\":%.3f,\"p99_us\":%.3f,"
            "\"rounds_mean_us\":[%s]}",
            name, lat->mean_us, lat->p50_us, lat->p99_us, text);
}

static void
s_json_rate (const char *name, const s_round_t *rounds, int count, size_t keel,
             size_t raw, double keel_med, double raw_med, size_t bytes)
{
    char kt[256], rt[256], pt[256];
    s_per_round (rounds, count, keel, "%.0f", ",", kt, sizeof kt);
    s_per_round (rounds, count, raw, "%.0f", ",", rt, sizeof rt);
    s_pairs (rounds, count, keel, raw, "%.3f", ",", pt, sizeof pt);
    printf ("\"%s\":{\"keel_per_s\":%.0f,\"raw_per_s\":%.0f,"
            "\"raw_bytes\":%zu,\"ratio\":%.3f,\"target_per_s\":%.0f,"
            "\"ok\":%s,\"rounds_keel_per_s\":[%s],\"rounds_raw_per_s\":[%s],"
            "\"ratio_rounds\":[%s]}",
            name, keel_med, raw_med, bytes, keel_med / raw_med, TARGET_RATE,
            s_bool (keel_med >= TARGET_RATE), kt, rt, pt);
}

static void
s_print_json (const s_round_t *rounds, int count, long n, long m, int window,
              int phases)
{
    s_summary_t s;
    s_summarise (rounds, count, n, &s);
    char text[256];
    printf ("{\"bench\":\"registry_bench\",\"n\":%ld,\"m\":%ld,\"window\":%d,"
            "\"rounds\":%d,\"cpus\":%ld,\"payload_bytes\":{\"discover_"
            "request\":%zu,\"discover_reply\":%zu,\"discover_reply_wire\":%zu,"
            "\"register\":%zu,\"heartbeat\":%zu}",
            n, m, window, count, sysconf (_SC_NPROCESSORS_ONLN),
            s_discover_req_size, rounds[0].reply_size, rounds[0].reply_wire,
            s_reg_size, s_hb_size);
    if (phases & PHASE_DISCOVER) {
        printf (",\"discover\":{");
        s_json_lat ("raw_reqrep", &s.raw, rounds, count,
                    S_OFF (raw_rtt.mean_us));
        printf (",");
        s_json_lat ("keel_front_door", &s.front, rounds, count,
                    S_OFF (keel_front.mean_us));
        printf (",");
        s_json_lat ("keel_direct", &s.direct, rounds, count,
                    S_OFF (keel_direct.mean_us));
        printf (",\"decode_us\":%.3f,\"target_ratio\":%.2f", s.decode_us,
                TARGET_RTT_RATIO);
        s_pairs (rounds, count, S_OFF (keel_front.mean_us),
                 S_OFF (raw_rtt.mean_us), "%.3f", ",", text, sizeof text);
        printf (",\"front_door_ratio\":%.3f,\"front_door_ok\":%s,"
                "\"front_door_ratio_rounds\":[%s]",
                s.front_ratio, s_bool (s.front_ratio <= TARGET_RTT_RATIO),
                text);
        s_pairs (rounds, count, S_OFF (keel_direct.mean_us),
                 S_OFF (raw_rtt.mean_us), "%.3f", ",", text, sizeof text);
        printf (",\"direct_ratio\":%.3f,\"direct_ok\":%s,"
                "\"direct_ratio_rounds\":[%s]}",
                s.direct_ratio, s_bool (s.direct_ratio <= TARGET_RTT_RATIO),
                text);
    }
    if (phases & PHASE_RATES) {
        printf (",");
        s_json_rate ("register", rounds, count, S_OFF (keel_reg),
                     S_OFF (raw_reg), s.keel_reg, s.raw_reg, s_reg_size);
        printf (",");
        s_json_rate ("heartbeat", rounds, count, S_OFF (keel_hb),
                     S_OFF (raw_hb), s.keel_hb, s.raw_hb, s_hb_size);
        double judged = n == RSS_INSTANCES ? s.rss_delta : s.rss_projected;
        printf (",\"memory\":{\"instances\":%ld,\"rss_before_mb\":%.1f,"
                "\"rss_before_register_mb\":%.1f,\"rss_after_mb\":%.1f,"
                "\"delta_mb\":%.1f,\"register_delta_mb\":%.1f,"
                "\"bytes_per_instance\":%.0f,\"projected_100k_mb\":%.1f,"
                "\"target_mb\":%.0f,\"ok\":%s,\"anchor\":null}",
                n, rounds[0].rss_before, rounds[0].rss_pre_reg,
                rounds[0].rss_after, s.rss_delta, s.rss_reg, s.bytes_per,
                s.rss_projected, TARGET_RSS_MB,
                s_bool (judged <= TARGET_RSS_MB));
    }
    if (phases & PHASE_KILL) {
        char et[256], dt[256], ut[256], lt[256];
        s_per_round (rounds, count, S_OFF (kill.lag_ms), "%.1f", ",", lt,
                     sizeof lt);
        s_per_round (rounds, count, S_OFF (kill.event_ms), "%.1f", ",", et,
                     sizeof et);
        s_per_round (rounds, count, S_OFF (kill.discover_ms), "%.1f", ",", dt,
                     sizeof dt);
        s_per_round (rounds, count, S_OFF (kill.up_ms), "%.1f", ",", ut,
                     sizeof ut);
        printf (",\"kill\":{\"heartbeat_ms\":%d,\"ttl_ms\":%d,"
                "\"event_ms_median\":%.1f,\"event_ms_max\":%.1f,"
                "\"discover_ms_median\":%.1f,\"discover_ms_max\":%.1f,"
                "\"target_ms\":%.0f,\"ok\":%s,\"rounds_event_ms\":[%s],"
                "\"rounds_discover_ms\":[%s],\"rounds_up_ms\":[%s],"
                "\"rounds_lag_past_ttl_ms\":[%s]}",
                GREETER_HB_MS, GREETER_TTL_MS, s.kill_event_med,
                s.kill_event_max, s.kill_disc_med, s.kill_disc_max,
                TARGET_KILL_MS,
                s_bool (s.kill_disc_max <= TARGET_KILL_MS &&
                        s.kill_event_max <= TARGET_KILL_MS),
                et, dt, ut, lt);
    }
    printf ("}\n");
}

// ---------------------------------------------------------------------------

static void
s_usage (FILE *out)
{
    fprintf (out,
             "usage: registry_bench [-n N] [-m M] [-r ROUNDS] [-w WINDOW] [-q] "
             "[--json]\n"
             "                      [--only discover|rates|kill]\n"
             "  -n N      instances registered and heartbeated (default "
             "100000)\n"
             "  -m M      discover round trips per run (default 20000)\n"
             "  -r R      rounds; medians are reported (default 3, max %d)\n"
             "  -w W      requests in flight for registrations and heartbeats "
             "(default 1000)\n"
             "  -q        quick: N=20000, M=2000, 1 round (unless given)\n"
             "  --json    one JSON object on stdout; the table goes to "
             "stderr\n"
             "  --only P  one phase: discover (1), rates (2-4), kill (5)\n",
             MAX_ROUNDS);
}

static long
s_arg_long (const char *option, const char *value, long min, long max)
{
    char *end = NULL;
    long v = value ? strtol (value, &end, 10) : 0;
    if (!value || *end || v < min || v > max) {
        fprintf (stderr, "registry_bench: %s needs a number in %ld..%ld\n",
                 option, min, max);
        s_usage (stderr);
        exit (2);
    }
    return v;
}

//  example_greeter next to this program. Caller frees.
static char *
s_greeter_path (void)
{
    char exe[PATH_MAX];
    ssize_t len = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return NULL;
    exe[len] = 0;
    return zsys_sprintf ("%s/example_greeter", dirname (exe));
}

//  The requests' sizes, once.
static int
s_payloads (void)
{
    keel__discover_request__init (&s_discover_req);
    s_discover_req.service = "bench-discover";
    s_discover_req_size =
        keel__discover_request__get_packed_size (&s_discover_req);
    if (s_discover_req_size > sizeof s_discover_req_bytes)
        return -1;
    keel__discover_request__pack (&s_discover_req, s_discover_req_bytes);
    s_reg_t r;
    s_bench_instance (&r, 0);
    s_reg_size = keel__register_request__get_packed_size (&r.req);
    Keel__HeartbeatRequest hb = KEEL__HEARTBEAT_REQUEST__INIT;
    hb.id = r.id;
    s_hb_size = keel__heartbeat_request__get_packed_size (&hb);
    return 0;
}

int
main (int argc, char *argv[])
{
    long n = -1, m = -1;
    int rounds = -1, window = 1000, phases = PHASE_ALL;
    bool quick = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (streq (arg, "-n"))
            n = s_arg_long (arg, value, 1, MAX_N), i++;
        else if (streq (arg, "-m"))
            m = s_arg_long (arg, value, 1, 100000000), i++;
        else if (streq (arg, "-r"))
            rounds = (int)s_arg_long (arg, value, 1, MAX_ROUNDS), i++;
        else if (streq (arg, "-w"))
            window = (int)s_arg_long (arg, value, 1, 100000), i++;
        else if (streq (arg, "--only") && value) {
            phases = streq (value, "discover") ? PHASE_DISCOVER
                     : streq (value, "rates")  ? PHASE_RATES
                     : streq (value, "kill")   ? PHASE_KILL
                                               : 0;
            if (!phases) {
                s_usage (stderr);
                return 2;
            }
            i++;
        } else if (streq (arg, "-q"))
            quick = true;
        else if (streq (arg, "--json"))
            json = true;
        else if (streq (arg, "-h") || streq (arg, "--help")) {
            s_usage (stdout);
            return 0;
        } else {
            s_usage (stderr);
            return 2;
        }
    }
    if (n == -1)
        n = quick ? 20000 : RSS_INSTANCES;
    if (m == -1)
        m = quick ? 2000 : 20000;
    if (rounds == -1)
        rounds = quick ? 1 : 3;
    s_out = json ? stderr : stdout;

    char *greeter = s_greeter_path ();
    if ((phases & PHASE_KILL) && (!greeter || access (greeter, X_OK) != 0)) {
        s_fail ("%s not found: build the example_greeter target too",
                greeter ? greeter : "example_greeter");
        free (greeter);
        return 1;
    }
    if (s_payloads () == -1) {
        s_fail ("discover request too large");
        free (greeter);
        return 1;
    }
    //  Before any thread: the first zsys_init sets up the shared context.
    s_ctx = zsys_init ();
    if (!s_ctx) {
        s_fail ("cannot create the ZeroMQ context");
        free (greeter);
        return 1;
    }

    s_round_t results[MAX_ROUNDS];
    memset (results, 0, sizeof results);
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        s_round_t *round = &results[r];
        round->rss_before = s_rss_mb ();
        s_node_t node;
        if (s_node_start (&node, n) == -1)
            rc = 1;
        else {
            if ((phases & PHASE_DISCOVER) &&
                s_round_discover (&node, m, round) == -1)
                rc = 1;
            if (rc == 0 && (phases & PHASE_RATES) &&
                s_round_rates (&node, n, window, round) == -1)
                rc = 1;
            if (rc == 0 && (phases & PHASE_KILL) &&
                s_kill_round (&node, greeter, &round->kill) == -1)
                rc = 1;
        }
        s_node_stop (&node);
        if (rc != 0)
            s_fail ("round %d failed", r + 1);
    }
    free (greeter);
    if (rc != 0)
        return rc;
    s_print_table (s_out, results, rounds, n, m, window, phases);
    if (json)
        s_print_json (results, rounds, n, m, window, phases);
    return 0;
}
