/*  test_hostile.c - hostile input to every socket of a node: random bytes,
    multi-frame garbage, envelopes with unknown types, garbage payloads, bad
    versions, replies and events sent to servers, oversized frames; garbage
    subscriptions and raw TCP to the event endpoint; garbage HTTP to the
    gateway. Then every actor must still answer correct requests correctly,
    and the error counters must have moved.

    One node over tcp on free ports runs registry, breaker, saga (with the
    shop), echo, users and gateway; each actor also binds its own tcp
    endpoint. Raw DEALER sockets do the attacking. */
#include "breaker.pb-c.h"
#include "breaker_actor.h"
#include "echo.pb-c.h"
#include "echo_actor.h"
#include "gateway_actor.h"
#include "keel_client.h"
#include "keel_events.h"
#include "keel_node.h"
#include "node.pb-c.h"
#include "registry.pb-c.h"
#include "registry_actor.h"
#include "saga.pb-c.h"
#include "saga_actor.h"
#include "shop_actor.h"
#include "testutil.h"
#include "users_actor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {"breaker", keel_breaker_actor, "breaker"},
    {"saga", keel_saga_actor, "saga"},
    {"shop", keel_shop_actor, "shop"},
    {"echo", keel_echo_actor, "echo"},
    {"users", keel_users_actor, "users"},
    {"gateway", keel_gateway_actor, "gateway"},
    {NULL, NULL, NULL},
};

#define S_MAX_MSG (64 * 1024) //  node/max_message_size

//  Random frames per endpoint (fewer under valgrind).
static int
s_rounds (void)
{
    return getenv ("KEEL_TEST_MEMCHECK") ? 200 : 2000;
}

// ---------------------------------------------------------------------------
//  Raw envelopes

static uint32_t s_seed = 12345;

static uint32_t
s_rand (void)
{
    //  xorshift32: the same garbage every run.
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 17;
    s_seed ^= s_seed << 5;
    return s_seed;
}

static void
s_send_env (zsock_t *sock, Keel__Kind kind, uint32_t version, const char *type,
            const char *service, uint64_t corr, const uint8_t *payload,
            size_t size)
{
    Keel__Envelope env = KEEL__ENVELOPE__INIT;
    env.version = version;
    env.kind = kind;
    env.type = (char *)type;
    env.service = (char *)service;
    env.correlation_id = corr;
    env.sender = (char *)"hostile";
    env.timeout_ms = 5000;
    if (kind == KEEL__KIND__EVENT)
        env.sequence = 1;
    env.payload.data = (uint8_t *)payload;
    env.payload.len = size;
    ck_assert_int_eq (keel_codec_send (zsock_resolve (sock), &env, NULL, 0), 0);
}

//  The next reply (caller frees with keel__envelope__free_unpacked), or
//  NULL after `timeout_ms`.
static Keel__Envelope *
s_recv_env (zsock_t *sock, int timeout_ms)
{
    zmq_pollitem_t item = {zsock_resolve (sock), 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&item, 1, timeout_ms) <= 0)
        return NULL;
    //  A server keeps the frames before the last as the route (relays add
    //  theirs) and sends them back in front of the reply: multi-frame
    //  garbage comes back as [garbage...][reply].
    zmsg_t *msg = zmsg_recv (sock);
    ck_assert_ptr_nonnull (msg);
    zframe_t *frame = zmsg_last (msg);
    Keel__Envelope *env = NULL;
    const char *why = NULL;
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, NULL, &env,
                                         &why, NULL),
                      KEEL_OK);
    zmsg_destroy (&msg);
    ck_assert_int_eq (env->kind, KEEL__KIND__REPLY);
    return env;
}

//  Receive replies until the one with `corr`; every other one must be an
//  error (the answers to garbage). Returns the error code of that reply and
//  the number of others in *others_p.
static int
s_expect (zsock_t *sock, uint64_t corr, int *others_p)
{
    int others = 0;
    int64_t deadline = zclock_mono () + testutil_slack (10000);
    while (true) {
        int64_t left = deadline - zclock_mono ();
        ck_assert_msg (left > 0, "no reply to %llx", (unsigned long long)corr);
        Keel__Envelope *env = s_recv_env (sock, (int)left);
        ck_assert_msg (env, "no reply to %llx", (unsigned long long)corr);
        if (env->correlation_id == corr) {
            int code = env->error_code;
            keel__envelope__free_unpacked (env, NULL);
            if (others_p)
                *others_p = others;
            return code;
        }
        ck_assert_msg (env->error_code != 0, "garbage answered OK");
        others++;
        keel__envelope__free_unpacked (env, NULL);
    }
}

// ---------------------------------------------------------------------------
//  Attacks on one request endpoint

typedef struct {
    const char *name;    //  actor (service name)
    const char *type;    //  a request type it takes, with a payload
    const char *bind;    //  its own endpoint (tcp), or NULL
    bool payload_needed; //  garbage payload must be an error
} s_target_t;

//  Send everything hostile to `endpoint`, addressed to `service` ("" for
//  the node door itself), and check the answers that must come.
static void
s_attack (const char *endpoint, const char *service, const char *type,
          bool payload_needed)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    ck_assert_int_eq (zsock_connect (dealer, "%s", endpoint), 0);
    uint64_t corr = 0x5000;

    //  Random single frames and multi-frame messages.
    uint8_t buf[512];
    for (int i = 0; i < s_rounds (); i++) {
        int frames = i % 10 == 9 ? 2 + (int)(s_rand () % 3) : 1;
        for (int f = 0; f < frames; f++) {
            size_t len = s_rand () % sizeof buf;
            for (size_t b = 0; b < len; b++)
                buf[b] = (uint8_t)s_rand ();
            ck_assert_int_ge (zmq_send (zsock_resolve (dealer), buf, len,
                                        f + 1 < frames ? ZMQ_SNDMORE : 0),
                              0);
        }
    }
    //  A ping after the garbage: the server still serves.
    s_send_env (dealer, KEEL__KIND__REQUEST, 1, "keel.ping", service, ++corr,
                NULL, 0);
    int others = 0;
    ck_assert_int_eq (s_expect (dealer, corr, &others), 0);
    ck_assert_int_gt (others, 0); //  garbage is answered BAD_REQUEST

    //  Unknown type: UNKNOWN_TYPE, with the correlation id.
    s_send_env (dealer, KEEL__KIND__REQUEST, 1, "nosuch.verb", service, ++corr,
                NULL, 0);
    ck_assert_int_eq (s_expect (dealer, corr, NULL), KEEL_ERR_UNKNOWN_TYPE);

    //  A known type with a payload that does not decode.
    const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff};
    s_send_env (dealer, KEEL__KIND__REQUEST, 1, type, service, ++corr, garbage,
                sizeof garbage);
    int code = s_expect (dealer, corr, NULL);
    if (payload_needed)
        ck_assert_msg (code == KEEL_ERR_BAD_REQUEST, "%s %s: %s", endpoint,
                       type, keel_errname (code));

    //  An envelope that parses but fails the checks: BAD_REQUEST, answered
    //  with its correlation id.
    s_send_env (dealer, KEEL__KIND__REQUEST, 7, type, service, ++corr, NULL, 0);
    ck_assert_int_eq (s_expect (dealer, corr, NULL), KEEL_ERR_BAD_REQUEST);
    s_send_env (dealer, KEEL__KIND__REQUEST, 1, "bad type!", service, ++corr,
                NULL, 0);
    ck_assert_int_eq (s_expect (dealer, corr, NULL), KEEL_ERR_BAD_REQUEST);

    //  Replies and events sent to a server: dropped, never answered; the
    //  ping after them is the next answer.
    s_send_env (dealer, KEEL__KIND__REPLY, 1, "keel.ping", service, ++corr,
                NULL, 0);
    s_send_env (dealer, KEEL__KIND__EVENT, 1, "keel.ping", service, ++corr,
                NULL, 0);
    s_send_env (dealer, KEEL__KIND__REQUEST, 1, "keel.ping", service, ++corr,
                NULL, 0);
    Keel__Envelope *env = s_recv_env (dealer, testutil_slack (5000));
    ck_assert_ptr_nonnull (env);
    ck_assert (env->correlation_id == corr);
    ck_assert_int_eq (env->error_code, 0);
    keel__envelope__free_unpacked (env, NULL);

    //  A frame over the size limit, on a socket of its own (libzmq drops
    //  the connection that sent it).
    zsock_t *big = zsock_new (ZMQ_DEALER);
    ck_assert_int_eq (zsock_connect (big, "%s", endpoint), 0);
    size_t size = S_MAX_MSG + 1;
    uint8_t *data = (uint8_t *)calloc (1, size);
    ck_assert_int_eq (zmq_send (zsock_resolve (big), data, size, 0), (int)size);
    //  And a valid envelope whose payload takes it over the limit.
    s_send_env (big, KEEL__KIND__REQUEST, 1, type, service, ++corr, data, size);
    free (data);
    zsock_destroy (&big);

    //  Still serving.
    s_send_env (dealer, KEEL__KIND__REQUEST, 1, "keel.ping", service, ++corr,
                NULL, 0);
    ck_assert_int_eq (s_expect (dealer, corr, NULL), 0);
    zsock_destroy (&dealer);
}

// ---------------------------------------------------------------------------
//  Raw TCP

static int
s_tcp_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge (fd, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    addr.sin_port = htons ((uint16_t)port);
    ck_assert_int_eq (connect (fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

//  Write what can be written (the peer may close early).
static void
s_tcp_write (int fd, const void *data, size_t size)
{
    const uint8_t *p = (const uint8_t *)data;
    while (size) {
        ssize_t n = send (fd, p, size, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p += n;
        size -= (size_t)n;
    }
}

//  Read until the peer closes or `timeout_ms` of silence; returns what was
//  read (caller frees).
static char *
s_tcp_read (int fd, int timeout_ms)
{
    size_t cap = 65536, len = 0;
    char *text = (char *)calloc (1, cap + 1);
    while (len < cap) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll (&pfd, 1, timeout_ms) <= 0)
            break;
        ssize_t n = recv (fd, text + len, cap - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        //  One response is enough.
        if (strstr (text, "\r\n\r\n"))
            break;
    }
    return text;
}

//  The answer to `request` on a new connection: "" (closed, nothing said)
//  or an HTTP response, which must then be 4xx.
static void
s_http_hostile (int port, const void *request, size_t size, bool close_write)
{
    int fd = s_tcp_connect (port);
    s_tcp_write (fd, request, size);
    if (close_write)
        shutdown (fd, SHUT_WR);
    char *answer = s_tcp_read (fd, testutil_slack (2000));
    if (*answer)
        ck_assert_msg (strncmp (answer, "HTTP/1.1 4", 10) == 0,
                       "hostile HTTP %.40s answered: %.60s",
                       (const char *)request, answer);
    free (answer);
    close (fd);
}

// ---------------------------------------------------------------------------

START_TEST (test_hostile_everything)
{
    int bus_port = testutil_free_port ();
    int events_port = testutil_free_port ();
    int http_port = testutil_free_port ();
    s_target_t targets[] = {
        {"registry", "registry.register", NULL, true},
        {"breaker", "breaker.control", NULL, true},
        {"saga", "saga.start", NULL, true},
        {"echo", "echo.say", NULL, true},
        {"users", "users.http", NULL, true},
        {"gateway", "gateway.routes", NULL, false},
    };
    size_t n_targets = sizeof targets / sizeof targets[0];
    char *binds[8];
    char *sections = strdup ("");
    for (size_t t = 0; t < n_targets; t++) {
        binds[t] = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
        targets[t].bind = binds[t];
        if (streq (targets[t].name, "gateway") ||
            streq (targets[t].name, "saga"))
            continue; //  their sections come below
        char *more = zsys_sprintf ("%s%s\n    bind = %s\n", sections,
                                   targets[t].name, binds[t]);
        free (sections);
        sections = more;
    }
    int shop_port = testutil_free_port ();
    //  The shop takes three ports from its base: find three free in a row.
    char *text = zsys_sprintf (
        "node\n    name = hostile%d\n"
        "    bus = tcp://127.0.0.1:%d\n    events = tcp://127.0.0.1:%d\n"
        "    max_message_size = %d\n"
        "    actors\n        registry\n        breaker\n        saga\n"
        "        shop\n        echo\n        users\n        gateway\n"
        "%s"
        "saga\n    bind = %s\n    log = \":memory:\"\n"
        "    definition\n        name = order\n"
        "        step\n            name = create\n"
        "            service = orders\n            action = create\n"
        "            compensation = cancel\n"
        "        step\n            name = charge\n"
        "            service = payments\n            action = charge\n"
        "            compensation = refund\n"
        "shop\n    stock = 1000\n"
        "gateway\n    bind = %s\n    listen = 127.0.0.1:%d\n"
        "    route\n        name = echo\n        path = /echo/*\n"
        "        target = bus:echo\n",
        (int)getpid (), bus_port, events_port, S_MAX_MSG, sections, binds[2],
        binds[5], http_port);
    (void)shop_port;
    free (sections);
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "hostile", &error);
    ck_assert_msg (config, "%s", error);
    keel_node_args_t args = {config, s_defs};
    zactor_t *node = zactor_new (keel_node_actor, &args);
    error = keel_actor_status (node);
    ck_assert_msg (error == NULL, "%s", error);
    char *bus = zsys_sprintf ("tcp://127.0.0.1:%d", bus_port);
    char *events = zsys_sprintf ("tcp://127.0.0.1:%d", events_port);

    //  Every actor, through the door and on its own endpoint.
    for (size_t t = 0; t < n_targets; t++) {
        s_attack (bus, targets[t].name, targets[t].type,
                  targets[t].payload_needed);
        s_attack (targets[t].bind, targets[t].name, targets[t].type,
                  targets[t].payload_needed);
        //  Addressed to nobody in particular on its own endpoint.
        s_attack (targets[t].bind, "", targets[t].type,
                  targets[t].payload_needed);
    }
    //  The door itself, and a service nobody runs.
    s_attack (bus, "", "node.info", false);
    {
        zsock_t *dealer = zsock_new (ZMQ_DEALER);
        ck_assert_int_eq (zsock_connect (dealer, "%s", bus), 0);
        s_send_env (dealer, KEEL__KIND__REQUEST, 1, "keel.ping", "nobody", 77,
                    NULL, 0);
        ck_assert_int_eq (s_expect (dealer, 77, NULL),
                          KEEL_ERR_UNKNOWN_SERVICE);
        zsock_destroy (&dealer);
    }

    //  The event endpoint: garbage subscriptions, raw TCP garbage.
    zsock_t *xsub = zsock_new (ZMQ_XSUB);
    ck_assert_int_eq (zsock_connect (xsub, "%s", events), 0);
    uint8_t buf[300];
    for (int i = 0; i < s_rounds (); i++) {
        size_t len = s_rand () % sizeof buf;
        for (size_t b = 0; b < len; b++)
            buf[b] = (uint8_t)s_rand ();
        zmq_send (zsock_resolve (xsub), buf, len, ZMQ_DONTWAIT);
    }
    for (int i = 0; i < 20; i++) {
        int fd = s_tcp_connect (events_port);
        size_t len = 1 + s_rand () % sizeof buf;
        for (size_t b = 0; b < len; b++)
            buf[b] = (uint8_t)s_rand ();
        s_tcp_write (fd, buf, len);
        close (fd);
    }
    //  The door and actors over raw TCP too.
    for (int i = 0; i < 20; i++) {
        int fd = s_tcp_connect (bus_port);
        size_t len = 1 + s_rand () % sizeof buf;
        for (size_t b = 0; b < len; b++)
            buf[b] = (uint8_t)s_rand ();
        s_tcp_write (fd, buf, len);
        close (fd);
    }

    //  The gateway's HTTP port.
    for (int i = 0; i < 50; i++) {
        size_t len = 1 + s_rand () % sizeof buf;
        for (size_t b = 0; b < len; b++)
            buf[b] = (uint8_t)s_rand ();
        s_http_hostile (http_port, buf, len, true);
    }
    const char *truncated[] = {
        "GET /echo/x HTTP/1.1\r\nHost: a\r\n",
        "GET /echo/x HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc",
        "POST /echo/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "G\x00T / HTTP/1.1\r\n\r\n",
        "GET /echo/x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GET /echo/x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof truncated / sizeof truncated[0]; i++)
        s_http_hostile (http_port, truncated[i], strlen (truncated[i]), true);
    //  A version it does not serve: 505, never routed.
    int fd = s_tcp_connect (http_port);
    const char *v99 = "GET /echo/x HTTP/9.9\r\n\r\n";
    s_tcp_write (fd, v99, strlen (v99));
    char *answer = s_tcp_read (fd, testutil_slack (2000));
    ck_assert_msg (strncmp (answer, "HTTP/1.1 505", 12) == 0,
                   "HTTP/9.9 answered: %.60s", answer);
    free (answer);
    close (fd);
    size_t huge = 256 * 1024;
    char *header = (char *)malloc (huge + 64);
    int n = snprintf (header, 64, "GET /echo/x HTTP/1.1\r\nX-Big: ");
    memset (header + n, 'a', huge);
    memcpy (header + n + huge, "\r\n\r\n", 4);
    s_http_hostile (http_port, header, n + huge + 4, false);
    free (header);
    zsock_destroy (&xsub);

    // ---- every actor still answers correctly ---------------------------
    keel_client_t *door = keel_client_new ("tester", bus, NULL);
    ck_assert_ptr_nonnull (door);
    for (size_t t = 0; t < n_targets; t++) {
        keel_client_t *client =
            keel_client_new ("tester", bus, targets[t].name);
        Keel__Pong *pong = NULL;
        ck_assert_int_eq (keel_client_call (client, "keel.ping", NULL, NULL,
                                            &keel__pong__descriptor,
                                            (ProtobufCMessage **)&pong, NULL),
                          KEEL_OK);
        protobuf_c_message_free_unpacked (&pong->base, NULL);
        //  Its counters moved: garbage payloads, bad checks, wrong kinds.
        ck_assert_uint_gt (testutil_stat (client, "unknown_type"), 0);
        ck_assert_uint_gt (testutil_stat (client, "malformed"), 0);
        ck_assert_uint_gt (testutil_stat (client, "wrong_kind"), 0);
        keel_client_destroy (&client);
    }
    ck_assert_uint_gt (testutil_stat (door, "malformed"), 0);
    ck_assert_uint_gt (testutil_stat (door, "wrong_kind"), 0);
    //  A request for a service the node does not run: answered
    //  UNKNOWN_SERVICE by the node's forwarder, and counted as such.
    ck_assert_uint_gt (testutil_stat (door, "errors"), 0);
    ck_assert_uint_gt (testutil_stat (door, "unknown_service"), 0);

    //  Registry: register and discover.
    keel_client_t *registry = keel_client_new ("tester", bus, "registry");
    Keel__Instance inst = KEEL__INSTANCE__INIT;
    inst.id = (char *)"after-1";
    inst.service = (char *)"after";
    inst.endpoint = (char *)"tcp://127.0.0.1:9";
    Keel__RegisterRequest reg = KEEL__REGISTER_REQUEST__INIT;
    reg.instance = &inst;
    ck_assert_int_eq (keel_client_call (registry, "registry.register",
                                        &reg.base, NULL, NULL, NULL, NULL),
                      KEEL_OK);
    Keel__DiscoverRequest disc = KEEL__DISCOVER_REQUEST__INIT;
    disc.service = (char *)"after";
    Keel__InstanceList *list = NULL;
    ck_assert_int_eq (keel_client_call (registry, "registry.discover",
                                        &disc.base, NULL,
                                        &keel__instance_list__descriptor,
                                        (ProtobufCMessage **)&list, NULL),
                      KEEL_OK);
    ck_assert_uint_eq (list->n_instances, 1);
    ck_assert_str_eq (list->instances[0]->id, "after-1");
    protobuf_c_message_free_unpacked (&list->base, NULL);
    keel_client_destroy (&registry);

    //  Breaker: list.
    keel_client_t *breaker = keel_client_new ("tester", bus, "breaker");
    Keel__BreakerList *blist = NULL;
    ck_assert_int_eq (keel_client_call (breaker, "breaker.list", NULL, NULL,
                                        &keel__breaker_list__descriptor,
                                        (ProtobufCMessage **)&blist, NULL),
                      KEEL_OK);
    protobuf_c_message_free_unpacked (&blist->base, NULL);
    keel_client_destroy (&breaker);

    //  Echo: say.
    keel_client_t *echo = keel_client_new ("tester", bus, "echo");
    Keel__EchoRequest say = KEEL__ECHO_REQUEST__INIT;
    say.text = (char *)"still here";
    Keel__EchoReply *said = NULL;
    ck_assert_int_eq (keel_client_call (echo, "echo.say", &say.base, NULL,
                                        &keel__echo_reply__descriptor,
                                        (ProtobufCMessage **)&said, NULL),
                      KEEL_OK);
    ck_assert_str_eq (said->text, "still here");
    protobuf_c_message_free_unpacked (&said->base, NULL);

    //  Events still flow (after the garbage subscriptions).
    keel_subscriber_t *sub = keel_subscriber_new ();
    ck_assert_int_eq (keel_subscriber_connect (sub, events), 0);
    keel_subscriber_subscribe (sub, "echo.");
    bool got = false;
    for (int i = 0; i < 100 && !got; i++) {
        said = NULL;
        ck_assert_int_eq (keel_client_call (echo, "echo.say", &say.base, NULL,
                                            &keel__echo_reply__descriptor,
                                            (ProtobufCMessage **)&said, NULL),
                          KEEL_OK);
        protobuf_c_message_free_unpacked (&said->base, NULL);
        got = keel_subscriber_recv (sub, 50) != NULL;
    }
    ck_assert (got);
    keel_subscriber_destroy (&sub);
    keel_client_destroy (&echo);

    //  Saga: one that completes (waiting until the shop is registered).
    keel_client_t *saga = keel_client_new ("tester", bus, "saga");
    Keel__StartRequest start = KEEL__START_REQUEST__INIT;
    start.definition = (char *)"order";
    start.input.data = (uint8_t *)"{\"item\":\"apple\"}";
    start.input.len = strlen ((char *)start.input.data);
    start.wait = true;
    start.wait_ms = (uint32_t)testutil_slack (10000);
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)testutil_slack (15000)};
    Keel__SagaStatus *st = NULL;
    error = NULL;
    ck_assert_int_eq (keel_client_call (saga, "saga.start", &start.base, &opts,
                                        &keel__saga_status__descriptor,
                                        (ProtobufCMessage **)&st, &error),
                      KEEL_OK);
    ck_assert_int_eq (st->state, KEEL__SAGA_STATE__SAGA_COMPLETED);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    keel_client_destroy (&saga);

    //  Gateway: an HTTP request through a route (echo registers itself;
    //  bounded retry until the gateway has seen it).
    int64_t deadline = zclock_mono () + testutil_slack (10000);
    while (true) {
        int fd = s_tcp_connect (http_port);
        const char *req = "GET /echo/hello HTTP/1.1\r\nHost: t\r\n"
                          "Connection: close\r\n\r\n";
        s_tcp_write (fd, req, strlen (req));
        char *answer = s_tcp_read (fd, testutil_slack (5000));
        close (fd);
        bool ok = strncmp (answer, "HTTP/1.1 200", 12) == 0;
        if (!ok)
            ck_assert_msg (zclock_mono () < deadline, "gateway: %.80s", answer);
        free (answer);
        if (ok)
            break;
        zclock_sleep (50); //  bounded: waiting for echo's registration
    }

    keel_client_destroy (&door);
    zactor_destroy (&node);
    keel_config_destroy (&config);
    for (size_t t = 0; t < n_targets; t++)
        free (binds[t]);
    free (bus);
    free (events);
    free (text);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("hostile");
    TCase *tc = tcase_create ("hostile");
    tcase_set_timeout (tc, getenv ("KEEL_TEST_MEMCHECK") ? 600 : 60);
    tcase_add_test (tc, test_hostile_everything);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
