/*  bus_bench.c - the keel bus against raw libzmq, measured in the same run.

    Per transport (inproc, and tcp://127.0.0.1 on an ephemeral port), each
    round runs the anchors first and keel next to them, so both see the same
    machine state:

        raw one-way   DEALER zmq_send N x 100 B   -> ROUTER thread, msg_recv
        keel one-way  keel_client_notify N times  -> keel_server thread
        raw rtt       DEALER send, recv M times  <-> ROUTER thread echoes
        keel rtt      keel_client_request + zmq_poll/keel_client_process
                                                 <-> keel_server_reply_bytes
        keel call     keel_client_call (information only: it adds per-call
                      work the event-loop path above does not have)

    Each figure is the median over the rounds: the target machine has two
    cores and is noisy. Targets: keel one-way >= 0.8x raw throughput, keel
    round trip <= 1.2x raw.

    The payload is 100 bytes everywhere. For keel it is an EchoRequest whose
    packed form is exactly 100 bytes; the envelope around it is keel's own
    cost and is reported as "wire" bytes.

    The main thread is the sender or client; the receiver or server runs in
    a thread of its own and creates its socket there (a socket belongs to
    one thread). They meet on a pthread barrier once the server is bound and
    its endpoint has been read back.

    Usage: bus_bench [-n N] [-m M] [-r ROUNDS] [-t inproc|tcp] [-q] [--json]
                     [--only raw-oneway|keel-oneway|raw-rtt|keel-rtt|keel-call]
    --only runs one measurement, so a profiler sees just that part.
*/
#include "keel_client.h"
#include "keel_server.h"
#include "echo.pb-c.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_SIZE 100
#define STALL_MS     10000 //  no progress for this long: fail, never hang
#define STOP_POLL_MS 100   //  an idle echo server looks at `stop` this often
#define MAX_ROUNDS   15
#define WARMUP_MAX   1000 //  unmeasured round trips before each rtt run

typedef enum {
    RAW_ONEWAY,
    KEEL_ONEWAY,
    RAW_RTT,
    KEEL_RTT,
    KEEL_CALL,
    KIND_COUNT
} s_kind_t;

static const char *s_kind_name[KIND_COUNT] = {
    "raw-oneway", "keel-oneway", "raw-rtt", "keel-rtt", "keel-call"};
static const char *s_kind_label[KIND_COUNT] = {
    "raw  one-way", "keel one-way", "raw  rtt", "keel rtt", "keel call rtt"};

//  One measurement.
typedef struct {
    double rate;      //  one-way: msg/s, receiver's first to last message
    double mean_us;   //  rtt: mean round trip
    double p50_us;    //  rtt: median
    double p99_us;    //  rtt: 99th percentile
    uint64_t eagain;  //  keel one-way: notifies refused (queue full)
    size_t wire;      //  keel: bytes of the frame the server received
    size_t wire_back; //  keel rtt: bytes of the reply frame
} s_result_t;

//  What the main thread and one server thread share.
typedef struct {
    char bind[64];           //  endpoint to bind
    char endpoint[256];      //  resolved endpoint, set before the barrier
    pthread_barrier_t ready; //  server bound (or failed)
    long expect;             //  one-way: count this many, then exit
    atomic_bool stop;        //  rtt: the client is done
    bool failed;             //  the server thread hit an error
    long received;           //  one-way: messages counted
    int64_t first_ns;        //  one-way: first message arrived
    int64_t last_ns;         //  one-way: last message arrived
    size_t wire;             //  keel: size of the first frame received
} s_peer_t;

//  CZMQ's context: raw sockets share it with keel's, so both get the same
//  I/O thread and inproc can reach between them.
static void *s_ctx;
static int s_inproc_seq;

static Keel__EchoRequest s_request;
static char s_text[PAYLOAD_SIZE];
static uint8_t s_raw_payload[PAYLOAD_SIZE];

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void s_fail (const char *format, ...) CHECK_PRINTF (1);

static void
s_fail (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "bus_bench: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
}

// ---------------------------------------------------------------------------
//  Server threads

static void
s_set_int (void *sock, int option, int value)
{
    zmq_setsockopt (sock, option, &value, sizeof value);
}

//  Bind a raw socket and read back the endpoint (the tcp port is chosen by
//  the kernel).
static int
s_raw_bind (void *sock, s_peer_t *peer)
{
    if (zmq_bind (sock, peer->bind) == -1)
        return -1;
    size_t size = sizeof peer->endpoint;
    return zmq_getsockopt (sock, ZMQ_LAST_ENDPOINT, peer->endpoint, &size);
}

//  Raw one-way receiver: [identity][body] until `expect` bodies arrived.
static void *
s_raw_sink (void *arg)
{
    s_peer_t *peer = (s_peer_t *)arg;
    void *sock = zmq_socket (s_ctx, ZMQ_ROUTER);
    if (!sock || s_raw_bind (sock, peer) == -1) {
        s_fail ("raw sink: bind %s: %s", peer->bind, zmq_strerror (errno));
        peer->failed = true;
    } else
        s_set_int (sock, ZMQ_RCVTIMEO, STALL_MS);
    pthread_barrier_wait (&peer->ready);
    zmq_msg_t id, body;
    zmq_msg_init (&id);
    zmq_msg_init (&body);
    while (!peer->failed && peer->received < peer->expect) {
        if (zmq_msg_recv (&id, sock, 0) == -1 || !zmq_msg_more (&id) ||
            zmq_msg_recv (&body, sock, 0) != PAYLOAD_SIZE) {
            s_fail ("raw sink: receive failed after %ld: %s", peer->received,
                    zmq_strerror (errno));
            peer->failed = true;
            break;
        }
        if (peer->received++ == 0)
            peer->first_ns = s_now_ns ();
    }
    peer->last_ns = s_now_ns ();
    zmq_msg_close (&id);
    zmq_msg_close (&body);
    if (sock) {
        s_set_int (sock, ZMQ_LINGER, 0);
        zmq_close (sock);
    }
    return NULL;
}

//  Raw echo: [identity][body] back as it came, until told to stop. The
//  receive timeout is only there to look at `stop` while idle.
static void *
s_raw_echo (void *arg)
{
    s_peer_t *peer = (s_peer_t *)arg;
    void *sock = zmq_socket (s_ctx, ZMQ_ROUTER);
    if (!sock || s_raw_bind (sock, peer) == -1) {
        s_fail ("raw echo: bind %s: %s", peer->bind, zmq_strerror (errno));
        peer->failed = true;
    } else {
        s_set_int (sock, ZMQ_RCVTIMEO, STOP_POLL_MS);
        //  As keel_server does: an unknown peer is an error, not a drop.
        s_set_int (sock, ZMQ_ROUTER_MANDATORY, 1);
    }
    pthread_barrier_wait (&peer->ready);
    zmq_msg_t id, body;
    zmq_msg_init (&id);
    zmq_msg_init (&body);
    while (!peer->failed && !atomic_load (&peer->stop)) {
        if (zmq_msg_recv (&id, sock, 0) == -1) {
            if (errno == EAGAIN)
                continue;
            peer->failed = true;
        } else if (!zmq_msg_more (&id) || zmq_msg_recv (&body, sock, 0) == -1 ||
                   zmq_msg_send (&id, sock, ZMQ_SNDMORE) == -1 ||
                   zmq_msg_send (&body, sock, 0) == -1)
            peer->failed = true;
        if (peer->failed)
            s_fail ("raw echo: %s", zmq_strerror (errno));
    }
    zmq_msg_close (&id);
    zmq_msg_close (&body);
    if (sock) {
        s_set_int (sock, ZMQ_LINGER, 0);
        zmq_close (sock);
    }
    return NULL;
}

//  "bench.push": count, and time the first and the last message. It does
//  not reply: that is what a one-way handler looks like.
static int
s_on_push (keel_server_t *server, keel_request_t *request, void *arg)
{
    (void)server;
    s_peer_t *peer = (s_peer_t *)arg;
    const Keel__Envelope *env = keel_request_envelope (request);
    if (env->payload.len != PAYLOAD_SIZE && !peer->failed) {
        s_fail ("keel sink: payload of %zu bytes", env->payload.len);
        peer->failed = true;
    }
    if (peer->received++ == 0) {
        peer->first_ns = s_now_ns ();
        peer->wire = keel__envelope__get_packed_size (env);
    }
    if (peer->received == peer->expect)
        peer->last_ns = s_now_ns ();
    return KEEL_OK;
}

//  "bench.echo": answer with the request's payload bytes.
static int
s_on_echo (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_peer_t *peer = (s_peer_t *)arg;
    const Keel__Envelope *env = keel_request_envelope (request);
    if (!peer->wire)
        peer->wire = keel__envelope__get_packed_size (env);
    return keel_server_reply_bytes (server, request, env->payload.data,
                                    env->payload.len) == 0
               ? KEEL_OK
               : KEEL_ERR_INTERNAL;
}

//  Create, route and bind a keel server; report the endpoint. NULL on
//  failure (peer->failed set).
static keel_server_t *
s_keel_server (s_peer_t *peer, const char *type, keel_handler_fn *fn)
{
    keel_server_t *server = keel_server_new ("bench");
    if (!server || keel_server_on (server, type, fn, peer) == -1 ||
        keel_server_bind (server, peer->bind) == -1) {
        s_fail ("keel server: bind %s: %s", peer->bind, zmq_strerror (errno));
        keel_server_destroy (&server);
        peer->failed = true;
        return NULL;
    }
    snprintf (peer->endpoint, sizeof peer->endpoint, "%s",
              keel_server_endpoint (server));
    return server;
}

//  Keel one-way receiver: poll + dispatch until `expect` were counted.
static void *
s_keel_sink (void *arg)
{
    s_peer_t *peer = (s_peer_t *)arg;
    keel_server_t *server = s_keel_server (peer, "bench.push", s_on_push);
    pthread_barrier_wait (&peer->ready);
    while (server && !peer->failed && peer->received < peer->expect) {
        zmq_pollitem_t item = {zsock_resolve (keel_server_sock (server)), 0,
                               ZMQ_POLLIN, 0};
        int rc = zmq_poll (&item, 1, STALL_MS);
        if (rc <= 0 || keel_server_dispatch (server, 1000) == -1) {
            //  A sender that died leaves us here after STALL_MS.
            s_fail ("keel sink: stalled after %ld: %s", peer->received,
                    rc == 0 ? "timeout" : zmq_strerror (errno));
            peer->failed = true;
        }
    }
    keel_server_destroy (&server);
    return NULL;
}

//  Keel echo server: poll + dispatch until told to stop.
static void *
s_keel_echo (void *arg)
{
    s_peer_t *peer = (s_peer_t *)arg;
    keel_server_t *server = s_keel_server (peer, "bench.echo", s_on_echo);
    pthread_barrier_wait (&peer->ready);
    while (server && !peer->failed && !atomic_load (&peer->stop)) {
        zmq_pollitem_t item = {zsock_resolve (keel_server_sock (server)), 0,
                               ZMQ_POLLIN, 0};
        int rc = zmq_poll (&item, 1, STOP_POLL_MS);
        if (rc == -1 || (rc > 0 && keel_server_dispatch (server, 1000) == -1)) {
            s_fail ("keel echo: %s", zmq_strerror (errno));
            peer->failed = true;
        }
    }
    keel_server_destroy (&server);
    return NULL;
}

//  Start a server thread and wait until it is bound. Each inproc run gets a
//  fresh name: closing an inproc endpoint is asynchronous, so re-binding the
//  previous name could fail with EADDRINUSE.
static int
s_peer_start (s_peer_t *peer, pthread_t *thread, void *(*fn) (void *),
              const char *transport, long expect)
{
    memset (peer, 0, sizeof *peer);
    if (streq (transport, "inproc"))
        snprintf (peer->bind, sizeof peer->bind, "inproc://bus-bench-%d",
                  ++s_inproc_seq);
    else
        snprintf (peer->bind, sizeof peer->bind, "tcp://127.0.0.1:*");
    peer->expect = expect;
    atomic_init (&peer->stop, false);
    pthread_barrier_init (&peer->ready, NULL, 2);
    if (pthread_create (thread, NULL, fn, peer) != 0) {
        s_fail ("pthread_create failed");
        pthread_barrier_destroy (&peer->ready);
        return -1;
    }
    pthread_barrier_wait (&peer->ready);
    if (peer->failed) {
        pthread_join (*thread, NULL);
        pthread_barrier_destroy (&peer->ready);
        return -1;
    }
    return 0;
}

//  Stop the server thread (if it has not ended by itself) and reap it.
static int
s_peer_finish (s_peer_t *peer, pthread_t thread)
{
    atomic_store (&peer->stop, true);
    pthread_join (thread, NULL);
    pthread_barrier_destroy (&peer->ready);
    return peer->failed ? -1 : 0;
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
s_latency (int64_t *samples, long m, s_result_t *result)
{
    double sum = 0;
    for (long i = 0; i < m; i++)
        sum += (double)samples[i];
    qsort (samples, (size_t)m, sizeof (int64_t), s_cmp_i64);
    result->mean_us = sum / (double)m / 1000.0;
    result->p50_us = (double)samples[(m - 1) / 2] / 1000.0;
    result->p99_us = (double)samples[(m * 99 + 99) / 100 - 1] / 1000.0;
}

static long
s_warmup (long m)
{
    return m / 10 < WARMUP_MAX ? m / 10 : WARMUP_MAX;
}

// ---------------------------------------------------------------------------
//  The five measurements

static void *
s_raw_dealer (const char *endpoint)
{
    void *sock = zmq_socket (s_ctx, ZMQ_DEALER);
    if (!sock)
        return NULL;
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

static int
s_raw_oneway (const char *transport, long n, s_result_t *result)
{
    s_peer_t peer;
    pthread_t thread;
    if (s_peer_start (&peer, &thread, s_raw_sink, transport, n) == -1)
        return -1;
    int rc = 0;
    void *sock = s_raw_dealer (peer.endpoint);
    //  A full queue blocks zmq_send: the same back-pressure keel's sender
    //  below waits out with zmq_poll.
    for (long i = 0; sock && i < n; i++)
        if (zmq_send (sock, s_raw_payload, PAYLOAD_SIZE, 0) != PAYLOAD_SIZE) {
            s_fail ("raw one-way: send %ld: %s", i, zmq_strerror (errno));
            rc = -1;
            break;
        }
    //  The sink ends by itself after the last message: close only then so
    //  linger 0 drops nothing.
    if (s_peer_finish (&peer, thread) == -1 || !sock)
        rc = -1;
    s_raw_close (sock);
    if (rc == 0)
        result->rate =
            (double)(n - 1) * 1e9 / (double)(peer.last_ns - peer.first_ns);
    return rc;
}

static int
s_keel_oneway (const char *transport, long n, s_result_t *result)
{
    s_peer_t peer;
    pthread_t thread;
    if (s_peer_start (&peer, &thread, s_keel_sink, transport, n) == -1)
        return -1;
    int rc = 0;
    keel_client_t *client = keel_client_new ("bench", peer.endpoint, NULL);
    for (long i = 0; client && i < n;) {
        if (keel_client_notify (client, "bench.push", &s_request.base, NULL) ==
            0) {
            i++;
            continue;
        }
        if (errno != EAGAIN) {
            s_fail ("keel one-way: notify %ld: %s", i, strerror (errno));
            rc = -1;
            break;
        }
        //  Queue full (notify never blocks): wait until libzmq takes more,
        //  as a blocking zmq_send would, then send the same message again.
        result->eagain++;
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (client)), 0,
                               ZMQ_POLLOUT, 0};
        if (zmq_poll (&item, 1, STALL_MS) <= 0) {
            s_fail ("keel one-way: never writable after %ld", i);
            rc = -1;
            break;
        }
    }
    if (s_peer_finish (&peer, thread) == -1 || !client)
        rc = -1;
    keel_client_destroy (&client);
    if (rc == 0) {
        result->rate =
            (double)(n - 1) * 1e9 / (double)(peer.last_ns - peer.first_ns);
        result->wire = peer.wire;
    }
    return rc;
}

static int
s_raw_rtt (const char *transport, long m, s_result_t *result)
{
    s_peer_t peer;
    pthread_t thread;
    if (s_peer_start (&peer, &thread, s_raw_echo, transport, 0) == -1)
        return -1;
    int rc = 0;
    int64_t *samples = (int64_t *)malloc ((size_t)m * sizeof (int64_t));
    void *sock = s_raw_dealer (peer.endpoint);
    uint8_t buffer[PAYLOAD_SIZE + 1];
    for (long i = -s_warmup (m); sock && samples && i < m; i++) {
        int64_t start = s_now_ns ();
        if (zmq_send (sock, s_raw_payload, PAYLOAD_SIZE, 0) != PAYLOAD_SIZE ||
            zmq_recv (sock, buffer, sizeof buffer, 0) != PAYLOAD_SIZE) {
            s_fail ("raw rtt: round trip %ld: %s", i, zmq_strerror (errno));
            rc = -1;
            break;
        }
        if (i >= 0)
            samples[i] = s_now_ns () - start;
    }
    if (s_peer_finish (&peer, thread) == -1 || !sock || !samples)
        rc = -1;
    s_raw_close (sock);
    if (rc == 0)
        s_latency (samples, m, result);
    free (samples);
    return rc;
}

typedef struct {
    bool done;   //  the callback ran
    int code;    //  its outcome
    size_t size; //  reply payload bytes
    size_t wire; //  reply frame bytes
} s_wait_t;

static void
s_on_reply (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_wait_t *wait = (s_wait_t *)arg;
    wait->done = true;
    wait->code = reply->code;
    wait->size = reply->size;
    if (reply->envelope && !wait->wire)
        wait->wire = keel__envelope__get_packed_size (reply->envelope);
}

//  One keel round trip the event-loop way: request, then poll the socket
//  and process until the callback has run.
static int
s_keel_request (keel_client_t *client, s_wait_t *wait)
{
    wait->done = false;
    if (!keel_client_request (client, "bench.echo", &s_request.base, NULL,
                              s_on_reply, wait))
        return -1;
    while (!wait->done) {
        //  The socket may change on a reset: resolve it every time.
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (client)), 0,
                               ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, (long)keel_client_timeout (client)) == -1 ||
            keel_client_process (client) == -1)
            return -1;
    }
    return wait->code == KEEL_OK && wait->size == PAYLOAD_SIZE ? 0 : -1;
}

static int
s_keel_rtt (const char *transport, long m, bool use_call, s_result_t *result)
{
    s_peer_t peer;
    pthread_t thread;
    if (s_peer_start (&peer, &thread, s_keel_echo, transport, 0) == -1)
        return -1;
    int rc = 0;
    int64_t *samples = (int64_t *)malloc ((size_t)m * sizeof (int64_t));
    keel_client_t *client = keel_client_new ("bench", peer.endpoint, NULL);
    s_wait_t wait = {0};
    for (long i = -s_warmup (m); client && samples && i < m; i++) {
        int64_t start = s_now_ns ();
        char *error = NULL;
        int code = 0;
        if (use_call)
            code = (int)keel_client_call (client, "bench.echo", &s_request.base,
                                          NULL, NULL, NULL, &error);
        else
            code = s_keel_request (client, &wait);
        if (code != 0) {
            s_fail ("keel %s: round trip %ld: %s (code %d)",
                    use_call ? "call" : "rtt", i, error ? error : "failed",
                    use_call ? code : wait.code);
            free (error);
            rc = -1;
            break;
        }
        if (i >= 0)
            samples[i] = s_now_ns () - start;
    }
    if (s_peer_finish (&peer, thread) == -1 || !client || !samples)
        rc = -1;
    keel_client_destroy (&client);
    if (rc == 0) {
        s_latency (samples, m, result);
        result->wire = peer.wire;
        result->wire_back = wait.wire;
    }
    free (samples);
    return rc;
}

static int
s_measure (s_kind_t kind, const char *transport, long n, long m,
           s_result_t *result)
{
    memset (result, 0, sizeof *result);
    switch (kind) {
    case RAW_ONEWAY:
        return s_raw_oneway (transport, n, result);
    case KEEL_ONEWAY:
        return s_keel_oneway (transport, n, result);
    case RAW_RTT:
        return s_raw_rtt (transport, m, result);
    case KEEL_RTT:
        return s_keel_rtt (transport, m, false, result);
    case KEEL_CALL:
        return s_keel_rtt (transport, m, true, result);
    default:
        return -1;
    }
}

// ---------------------------------------------------------------------------
//  Report

//  Medians over the rounds of one measurement.
typedef struct {
    s_result_t round[MAX_ROUNDS]; //  as measured
    s_result_t median;            //  field by field
    bool ran;                     //  measured at all
} s_series_t;

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
s_median (const s_result_t *rounds, int count, size_t offset)
{
    double values[MAX_ROUNDS];
    for (int i = 0; i < count; i++)
        values[i] = *(const double *)((const char *)&rounds[i] + offset);
    qsort (values, (size_t)count, sizeof (double), s_cmp_double);
    return count % 2 ? values[count / 2]
                     : (values[count / 2 - 1] + values[count / 2]) / 2;
}

static void
s_summarise (s_series_t *series, int rounds)
{
    s_result_t *med = &series->median;
    med->rate = s_median (series->round, rounds, offsetof (s_result_t, rate));
    med->mean_us =
        s_median (series->round, rounds, offsetof (s_result_t, mean_us));
    med->p50_us =
        s_median (series->round, rounds, offsetof (s_result_t, p50_us));
    med->p99_us =
        s_median (series->round, rounds, offsetof (s_result_t, p99_us));
    for (int i = 0; i < rounds; i++) {
        med->eagain += series->round[i].eagain;
        med->wire = series->round[i].wire;
        med->wire_back = series->round[i].wire_back;
    }
}

typedef struct {
    const char *name;              //  "inproc", "tcp"
    s_series_t series[KIND_COUNT]; //  by measurement
} s_transport_t;

static bool
s_is_oneway (s_kind_t kind)
{
    return kind == RAW_ONEWAY || kind == KEEL_ONEWAY;
}

//  A ratio, or 0 when either side was not measured.
static double
s_ratio (const s_transport_t *t, s_kind_t keel, s_kind_t raw)
{
    if (!t->series[keel].ran || !t->series[raw].ran)
        return 0;
    return s_is_oneway (keel)
               ? t->series[keel].median.rate / t->series[raw].median.rate
               : t->series[keel].median.mean_us / t->series[raw].median.mean_us;
}

//  The ratio of each round's keel figure to the anchor run right before it.
//  The machine drifts between rounds; a pair shares its state, so the
//  spread of these says how far the medians can be trusted.
static double
s_round_ratio (const s_transport_t *t, s_kind_t keel, s_kind_t raw, int r)
{
    const s_result_t *k = &t->series[keel].round[r];
    const s_result_t *a = &t->series[raw].round[r];
    return s_is_oneway (keel) ? k->rate / a->rate : k->mean_us / a->mean_us;
}

static void
s_round_ratios (const s_transport_t *t, s_kind_t keel, s_kind_t raw, int rounds,
                const char *format, char *text, size_t size)
{
    size_t used = 0;
    text[0] = 0;
    for (int r = 0; r < rounds && used < size; r++)
        used +=
            (size_t)snprintf (text + used, size - used, format, r ? "," : "",
                              s_round_ratio (t, keel, raw, r));
}

static void
s_print_table (FILE *out, const s_transport_t *transports, int count, long n,
               long m, int rounds)
{
    fprintf (out,
             "keel bus_bench: %d-byte payloads, N=%ld one-way, M=%ld round "
             "trips, median of %d round%s, %ld CPUs\n",
             PAYLOAD_SIZE, n, m, rounds, rounds == 1 ? "" : "s",
             sysconf (_SC_NPROCESSORS_ONLN));
    for (int t = 0; t < count; t++) {
        const s_transport_t *tr = &transports[t];
        fprintf (out, "\n%-8s %-14s %11s %8s %8s %8s  %s\n", tr->name,
                 "measurement", "msg/s|rt/s", "mean us", "p50 us", "p99 us",
                 "per round (msg/s | mean us); notes");
        for (int k = 0; k < KIND_COUNT; k++) {
            const s_series_t *s = &tr->series[k];
            if (!s->ran)
                continue;
            char rounds_text[256] = "";
            size_t used = 0;
            for (int r = 0; r < rounds && used < sizeof rounds_text; r++)
                used += (size_t)snprintf (
                    rounds_text + used, sizeof rounds_text - used,
                    s_is_oneway (k) ? "%s%.0f" : "%s%.2f", r ? " " : "",
                    s_is_oneway (k) ? s->round[r].rate : s->round[r].mean_us);
            if (s_is_oneway (k))
                fprintf (out, "%-8s %-14s %11.0f %8s %8s %8s  %s", "",
                         s_kind_label[k], s->median.rate, "-", "-", "-",
                         rounds_text);
            else
                fprintf (out, "%-8s %-14s %11.0f %8.2f %8.2f %8.2f  %s", "",
                         s_kind_label[k], 1e6 / s->median.mean_us,
                         s->median.mean_us, s->median.p50_us, s->median.p99_us,
                         rounds_text);
            if (k == KEEL_ONEWAY)
                fprintf (out, "; wire %zu B; EAGAIN waits %llu", s->median.wire,
                         (unsigned long long)s->median.eagain);
            else if (k == KEEL_RTT)
                fprintf (out, "; wire %zu B out, %zu B back", s->median.wire,
                         s->median.wire_back);
            else if (k == RAW_ONEWAY || k == RAW_RTT)
                fprintf (out, "; wire %d B", PAYLOAD_SIZE);
            fprintf (out, "\n");
        }
        double oneway = s_ratio (tr, KEEL_ONEWAY, RAW_ONEWAY);
        double rtt = s_ratio (tr, KEEL_RTT, RAW_RTT);
        char pairs[256];
        if (oneway > 0) {
            s_round_ratios (tr, KEEL_ONEWAY, RAW_ONEWAY, rounds, "%s%.2f",
                            pairs, sizeof pairs);
            fprintf (out,
                     "%-8s oneway keel/raw = %.2f (target >= 0.80) %s; "
                     "paired rounds %s\n",
                     tr->name, oneway, oneway >= 0.8 ? "ok" : "MISSED", pairs);
        }
        if (rtt > 0) {
            s_round_ratios (tr, KEEL_RTT, RAW_RTT, rounds, "%s%.2f", pairs,
                            sizeof pairs);
            fprintf (out,
                     "%-8s rtt keel/raw = %.2f (target <= 1.20) %s; "
                     "paired rounds %s\n",
                     tr->name, rtt, rtt <= 1.2 ? "ok" : "MISSED", pairs);
            fprintf (out, "%-8s rtt p50 keel/raw = %.2f (information)\n",
                     tr->name,
                     tr->series[KEEL_RTT].median.p50_us /
                         tr->series[RAW_RTT].median.p50_us);
        }
        if (tr->series[KEEL_CALL].ran && tr->series[RAW_RTT].ran)
            fprintf (out,
                     "%-8s rtt keel_client_call/raw = %.2f (information)\n",
                     tr->name,
                     tr->series[KEEL_CALL].median.mean_us /
                         tr->series[RAW_RTT].median.mean_us);
    }
}

static void
s_print_json (const s_transport_t *transports, int count, long n, long m,
              int rounds)
{
    printf ("{\"bench\":\"bus_bench\",\"payload_bytes\":%d,\"n\":%ld,"
            "\"m\":%ld,\"rounds\":%d,\"cpus\":%ld,\"transports\":{",
            PAYLOAD_SIZE, n, m, rounds, sysconf (_SC_NPROCESSORS_ONLN));
    for (int t = 0; t < count; t++) {
        const s_transport_t *tr = &transports[t];
        printf ("%s\"%s\":{", t ? "," : "", tr->name);
        bool first = true;
        for (int k = 0; k < KIND_COUNT; k++) {
            const s_series_t *s = &tr->series[k];
            if (!s->ran)
                continue;
            printf ("%s\"%s\":{", first ? "" : ",", s_kind_name[k]);
            first = false;
            if (s_is_oneway (k)) {
                printf ("\"msgs_per_s\":%.0f,\"rounds_msgs_per_s\":[",
                        s->median.rate);
                for (int r = 0; r < rounds; r++)
                    printf ("%s%.0f", r ? "," : "", s->round[r].rate);
                printf ("]");
                if (k == KEEL_ONEWAY)
                    printf (",\"eagain_waits\":%llu",
                            (unsigned long long)s->median.eagain);
            } else {
                printf ("\"mean_us\":%.3f,\"p50_us\":%.3f,\"p99_us\":%.3f,"
                        "\"rounds_mean_us\":[",
                        s->median.mean_us, s->median.p50_us, s->median.p99_us);
                for (int r = 0; r < rounds; r++)
                    printf ("%s%.3f", r ? "," : "", s->round[r].mean_us);
                printf ("]");
            }
            printf (",\"wire_bytes\":%zu}", k == RAW_ONEWAY || k == RAW_RTT
                                                ? (size_t)PAYLOAD_SIZE
                                                : s->median.wire);
        }
        double oneway = s_ratio (tr, KEEL_ONEWAY, RAW_ONEWAY);
        double rtt = s_ratio (tr, KEEL_RTT, RAW_RTT);
        char pairs[256];
        if (oneway > 0) {
            s_round_ratios (tr, KEEL_ONEWAY, RAW_ONEWAY, rounds, "%s%.3f",
                            pairs, sizeof pairs);
            printf ("%s\"oneway_ratio\":%.3f,\"oneway_target\":0.8,"
                    "\"oneway_ok\":%s,\"oneway_ratio_rounds\":[%s]",
                    first ? "" : ",", oneway, oneway >= 0.8 ? "true" : "false",
                    pairs);
            first = false;
        }
        if (rtt > 0) {
            s_round_ratios (tr, KEEL_RTT, RAW_RTT, rounds, "%s%.3f", pairs,
                            sizeof pairs);
            printf ("%s\"rtt_ratio\":%.3f,\"rtt_target\":1.2,\"rtt_ok\":%s,"
                    "\"rtt_ratio_rounds\":[%s]",
                    first ? "" : ",", rtt, rtt <= 1.2 ? "true" : "false",
                    pairs);
        }
        printf ("}");
    }
    printf ("}}\n");
}

// ---------------------------------------------------------------------------

static void
s_usage (FILE *out)
{
    fprintf (out,
             "usage: bus_bench [-n N] [-m M] [-r ROUNDS] [-t inproc|tcp] [-q] "
             "[--json]\n"
             "                 [--only raw-oneway|keel-oneway|raw-rtt|keel-rtt"
             "|keel-call]\n"
             "  -n N      one-way messages per run (default 1000000)\n"
             "  -m M      round trips per run (default 20000)\n"
             "  -r R      rounds; medians are reported (default 3, max %d)\n"
             "  -t T      one transport only (default: inproc and tcp)\n"
             "  -q        quick: N=200000, M=5000 (unless -n/-m given)\n"
             "  --json    one JSON object on stdout; the table goes to "
             "stderr\n"
             "  --only K  run one measurement (for profilers)\n",
             MAX_ROUNDS);
}

//  Parse a positive number or exit.
static long
s_arg_long (const char *option, const char *value, long min)
{
    char *end = NULL;
    long v = value ? strtol (value, &end, 10) : 0;
    if (!value || *end || v < min) {
        fprintf (stderr, "bus_bench: %s needs a number >= %ld\n", option, min);
        s_usage (stderr);
        exit (2);
    }
    return v;
}

int
main (int argc, char *argv[])
{
    long n = -1, m = -1;
    int rounds = 3;
    bool quick = false, json = false;
    const char *only_transport = NULL;
    int only = -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (streq (arg, "-n"))
            n = s_arg_long (arg, value, 2), i++;
        else if (streq (arg, "-m"))
            m = s_arg_long (arg, value, 1), i++;
        else if (streq (arg, "-r"))
            rounds = (int)s_arg_long (arg, value, 1), i++;
        else if (streq (arg, "-t") && value &&
                 (streq (value, "inproc") || streq (value, "tcp")))
            only_transport = argv[++i];
        else if (streq (arg, "--only") && value) {
            for (int k = 0; k < KIND_COUNT; k++)
                if (streq (value, s_kind_name[k]))
                    only = k;
            if (only == -1) {
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
    if (rounds > MAX_ROUNDS)
        rounds = MAX_ROUNDS;
    if (n == -1)
        n = quick ? 200000 : 1000000;
    if (m == -1)
        m = quick ? 5000 : 20000;

    //  Before any thread: the first zsys_init sets up the shared context.
    s_ctx = zsys_init ();
    if (!s_ctx) {
        s_fail ("cannot create the ZeroMQ context");
        return 1;
    }
    //  The payload: an EchoRequest that packs to exactly PAYLOAD_SIZE
    //  bytes (tag and length take two of them).
    memset (s_text, 'x', PAYLOAD_SIZE - 2);
    s_text[PAYLOAD_SIZE - 2] = 0;
    keel__echo_request__init (&s_request);
    s_request.text = s_text;
    if (protobuf_c_message_get_packed_size (&s_request.base) != PAYLOAD_SIZE) {
        s_fail ("payload is %zu bytes, not %d",
                protobuf_c_message_get_packed_size (&s_request.base),
                PAYLOAD_SIZE);
        return 1;
    }
    memset (s_raw_payload, 'x', sizeof s_raw_payload);

    s_transport_t transports[2] = {{.name = "inproc"}, {.name = "tcp"}};
    s_transport_t *run[2];
    int count = 0;
    for (int t = 0; t < 2; t++)
        if (!only_transport || streq (only_transport, transports[t].name))
            run[count++] = &transports[t];

    int rc = 0;
    for (int t = 0; t < count && rc == 0; t++)
        for (int r = 0; r < rounds && rc == 0; r++)
            for (int k = 0; k < KIND_COUNT && rc == 0; k++) {
                if (only != -1 && k != only)
                    continue;
                s_series_t *s = &run[t]->series[k];
                if (s_measure ((s_kind_t)k, run[t]->name, n, m, &s->round[r]) ==
                    -1) {
                    s_fail ("%s %s failed in round %d", run[t]->name,
                            s_kind_name[k], r + 1);
                    rc = 1;
                }
                s->ran = true;
            }
    if (rc != 0)
        return rc;

    s_transport_t results[2];
    for (int t = 0; t < count; t++) {
        results[t] = *run[t];
        for (int k = 0; k < KIND_COUNT; k++)
            if (results[t].series[k].ran)
                s_summarise (&results[t].series[k], rounds);
    }
    s_print_table (json ? stderr : stdout, results, count, n, m, rounds);
    if (json)
        s_print_json (results, count, n, m, rounds);
    return 0;
}
