/*  test_bus.c - request/reply and events over real sockets: the same tests
    run over inproc and over tcp, with the same code. */
#include "keel_client.h"
#include "keel_events.h"
#include "keel_server.h"
#include "echo.pb-c.h"
#include "node.pb-c.h"
#include "testutil.h"

#include <string.h>

// ---------------------------------------------------------------------------
//  A test server running in an actor

typedef struct {
    zhashx_t *seen; //  correlation id (as string) -> attempts seen
    int drop_first; //  test.flaky: attempts dropped before replying
} s_state_t;

static int
s_echo (keel_server_t *server, keel_request_t *req, void *arg)
{
    (void)arg;
    const Keel__Envelope *env = keel_request_envelope (req);
    keel_server_reply_bytes (server, req, env->payload.data, env->payload.len);
    return KEEL_OK;
}

static int
s_fail (keel_server_t *server, keel_request_t *req, void *arg)
{
    (void)server;
    (void)req;
    (void)arg;
    return KEEL_ERR_CONFLICT;
}

static int
s_never (keel_server_t *server, keel_request_t *req, void *arg)
{
    (void)arg;
    //  Take the request and never answer it.
    keel_request_t *kept = keel_server_defer (server, req);
    keel_request_destroy (&kept);
    return KEEL_OK;
}

static int
s_flaky (keel_server_t *server, keel_request_t *req, void *arg)
{
    s_state_t *state = (s_state_t *)arg;
    char key[32];
    snprintf (key, sizeof key, "%" PRIu64,
              keel_request_envelope (req)->correlation_id);
    uintptr_t seen = (uintptr_t)zhashx_lookup (state->seen, key) + 1;
    zhashx_update (state->seen, key, (void *)seen);
    if ((int)seen <= state->drop_first)
        return s_never (server, req, NULL);
    Keel__EchoReply reply = KEEL__ECHO_REPLY__INIT;
    reply.count = seen;
    keel_server_reply (server, req, &reply.base);
    return KEEL_OK;
}

//  args: endpoint to bind. Sends back the resolved endpoint, then serves
//  until $TERM.
static void
s_server_actor (zsock_t *pipe, void *args)
{
    s_state_t state = {zhashx_new (), 2};
    zhashx_set_destructor (state.seen, NULL);
    zhashx_set_duplicator (state.seen, NULL);
    keel_server_t *server = keel_server_new ("test");
    keel_server_set_max_msg_size (server, 64 * 1024);
    keel_server_on (server, "test.echo", s_echo, NULL);
    keel_server_on (server, "test.fail", s_fail, NULL);
    keel_server_on (server, "test.never", s_never, NULL);
    keel_server_on (server, "test.flaky", s_flaky, &state);
    int rc = keel_server_bind (server, (const char *)args);
    zsock_signal (pipe, 0);
    zstr_send (pipe, rc == -1 ? "" : keel_server_endpoint (server));
    zpoller_t *poller = zpoller_new (pipe, keel_server_sock (server), NULL);
    zpoller_set_nonstop (poller, true);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            if (command && streq (command, "STATS")) {
                const keel_server_stats_t *s = keel_server_stats (server);
                zsock_send (pipe, "8888", s->malformed, s->too_large,
                            s->unknown_type, s->wrong_kind);
            }
            free (command);
            if (term)
                break;
        } else if (which)
            keel_server_dispatch (server, 100);
    }
    zpoller_destroy (&poller);
    keel_server_destroy (&server);
    zhashx_destroy (&state.seen);
}

//  Start a test server on `endpoint`; *bound_p gets the resolved endpoint.
static zactor_t *
s_server_start (const char *endpoint, char **bound_p)
{
    zactor_t *actor = zactor_new (s_server_actor, (void *)endpoint);
    ck_assert_ptr_nonnull (actor);
    char *bound = zstr_recv (actor);
    ck_assert_ptr_nonnull (bound);
    ck_assert_msg (*bound, "bind %s failed", endpoint);
    *bound_p = bound;
    return actor;
}

//  The transport of each test run: _i = 0 inproc, 1 tcp.
static char *
s_endpoint (int transport)
{
    if (transport == 0)
        return testutil_inproc ("bus");
    return zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
}

// ---------------------------------------------------------------------------

START_TEST (test_round_trip)
{
    char *endpoint = s_endpoint (_i), *bound;
    zactor_t *server = s_server_start (endpoint, &bound);
    keel_client_t *client = keel_client_new ("tester", bound, NULL);
    ck_assert_ptr_nonnull (client);

    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = "hello";
    Keel__EchoRequest *back = NULL;
    char *error = NULL;
    keel_err_t rc = keel_client_call (client, "test.echo", &req.base, NULL,
                                      &keel__echo_request__descriptor,
                                      (ProtobufCMessage **)&back, &error);
    ck_assert_int_eq (rc, KEEL_OK);
    ck_assert_ptr_null (error);
    ck_assert_str_eq (back->text, "hello");
    protobuf_c_message_free_unpacked (&back->base, NULL);

    //  An error reply carries code and text.
    rc = keel_client_call (client, "test.fail", NULL, NULL, NULL, NULL, &error);
    ck_assert_int_eq (rc, KEEL_ERR_CONFLICT);
    ck_assert_str_eq (error, "conflict");
    free (error);

    //  Unknown type.
    rc = keel_client_call (client, "test.nothing", NULL, NULL, NULL, NULL,
                           &error);
    ck_assert_int_eq (rc, KEEL_ERR_UNKNOWN_TYPE);
    ck_assert_ptr_nonnull (strstr (error, "test.nothing"));
    free (error);

    //  Built-ins.
    Keel__Pong *pong = NULL;
    rc = keel_client_call (client, "keel.ping", NULL, NULL,
                           &keel__pong__descriptor, (ProtobufCMessage **)&pong,
                           NULL);
    ck_assert_int_eq (rc, KEEL_OK);
    ck_assert_str_eq (pong->name, "test");
    protobuf_c_message_free_unpacked (&pong->base, NULL);
    Keel__Stats *stats = NULL;
    rc = keel_client_call (client, "keel.stats", NULL, NULL,
                           &keel__stats__descriptor,
                           (ProtobufCMessage **)&stats, NULL);
    ck_assert_int_eq (rc, KEEL_OK);
    ck_assert_int_ge (stats->n_counters, 10);
    ck_assert_str_eq (stats->counters[1]->name, "requests");
    ck_assert_int_eq (stats->counters[1]->value, 5);
    protobuf_c_message_free_unpacked (&stats->base, NULL);

    //  A wrong service name is refused.
    keel_client_t *other = keel_client_new ("tester", bound, "elsewhere");
    rc = keel_client_call (other, "test.echo", NULL, NULL, NULL, NULL, &error);
    ck_assert_int_eq (rc, KEEL_ERR_UNKNOWN_SERVICE);
    free (error);
    keel_client_destroy (&other);

    keel_client_destroy (&client);
    zactor_destroy (&server);
    free (bound);
    free (endpoint);
}
END_TEST

typedef struct {
    int done;
    int ok;
    int codes[KEEL_ERR_MAX_KNOWN + 1];
    int attempts;
} s_tally_t;

static void
s_count (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_tally_t *tally = (s_tally_t *)arg;
    tally->done++;
    if (reply->code == KEEL_OK)
        tally->ok++;
    if (reply->code >= 0 && reply->code <= KEEL_ERR_MAX_KNOWN)
        tally->codes[reply->code]++;
    tally->attempts = reply->attempts;
}

//  Drive a client until `tally` has `count` outcomes (bounded: 10 s).
static void
s_drive (keel_client_t *client, s_tally_t *tally, int count)
{
    int64_t give_up = keel_now_ms () + 10000;
    while (tally->done < count && keel_now_ms () < give_up) {
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (client)), 0,
                               ZMQ_POLLIN, 0};
        int64_t wait = keel_client_timeout (client);
        zmq_poll (&item, 1, wait < 0 || wait > 100 ? 100 : wait);
        keel_client_process (client);
    }
    ck_assert_int_eq (tally->done, count);
}

START_TEST (test_many_in_flight)
{
    char *endpoint = s_endpoint (_i), *bound;
    zactor_t *server = s_server_start (endpoint, &bound);
    keel_client_t *client = keel_client_new ("tester", bound, NULL);
    s_tally_t tally = {0};
    for (int i = 0; i < 2000; i++) {
        char text[16];
        snprintf (text, sizeof text, "%d", i);
        uint64_t id = keel_client_request_bytes (
            client, "test.echo", text, strlen (text), NULL, s_count, &tally);
        ck_assert_uint_gt (id, 0);
    }
    ck_assert_uint_eq (keel_client_pending (client), 2000);
    s_drive (client, &tally, 2000);
    ck_assert_int_eq (tally.ok, 2000);
    ck_assert_uint_eq (keel_client_pending (client), 0);
    keel_client_destroy (&client);
    zactor_destroy (&server);
    free (bound);
    free (endpoint);
}
END_TEST

START_TEST (test_deadline)
{
    char *endpoint = s_endpoint (_i), *bound;
    zactor_t *server = s_server_start (endpoint, &bound);
    keel_client_t *client = keel_client_new ("tester", bound, NULL);
    keel_call_opts_t opts = {.timeout_ms = 150};
    int64_t start = keel_now_ms ();
    char *error = NULL;
    keel_err_t rc = keel_client_call (client, "test.never", NULL, &opts, NULL,
                                      NULL, &error);
    int64_t took = keel_now_ms () - start;
    ck_assert_int_eq (rc, KEEL_ERR_TIMEOUT);
    ck_assert_ptr_nonnull (strstr (error, "150 ms"));
    free (error);
    //  The deadline is honoured: not early, not much later.
    ck_assert_int_ge (took, 150);
    ck_assert_int_lt (took, 150 + testutil_slack (850));
    ck_assert_uint_eq (keel_client_stats (client)->timeouts, 1);
    //  Not idempotent: sent once only.
    ck_assert_uint_eq (keel_client_stats (client)->sent, 1);
    //  The client still works afterwards.
    rc = keel_client_call (client, "test.echo", NULL, NULL, NULL, NULL, NULL);
    ck_assert_int_eq (rc, KEEL_OK);
    keel_client_destroy (&client);
    zactor_destroy (&server);
    free (bound);
    free (endpoint);
}
END_TEST

START_TEST (test_retries)
{
    char *endpoint = s_endpoint (_i), *bound;
    zactor_t *server = s_server_start (endpoint, &bound);
    keel_client_t *client = keel_client_new ("tester", bound, NULL);
    keel_client_set_backoff (client, 5, 2.0, 20);
    //  The server drops the first two attempts of each request.
    keel_call_opts_t opts = {.timeout_ms = 3000,
                             .attempt_timeout_ms = 100,
                             .retries = 3,
                             .idempotent = true};
    s_tally_t tally = {0};
    ck_assert_uint_gt (keel_client_request (client, "test.flaky", NULL, &opts,
                                            s_count, &tally),
                       0);
    s_drive (client, &tally, 1);
    ck_assert_int_eq (tally.ok, 1);
    ck_assert_int_eq (tally.attempts, 3);
    ck_assert_uint_eq (keel_client_stats (client)->retries, 2);

    //  Not enough retries: a timeout after exactly 1 + retries attempts.
    opts.retries = 1;
    opts.timeout_ms = 600;
    memset (&tally, 0, sizeof tally);
    keel_client_request (client, "test.flaky", NULL, &opts, s_count, &tally);
    s_drive (client, &tally, 1);
    ck_assert_int_eq (tally.codes[KEEL_ERR_TIMEOUT], 1);
    ck_assert_int_eq (tally.attempts, 2);
    keel_client_destroy (&client);
    zactor_destroy (&server);
    free (bound);
    free (endpoint);
}
END_TEST

START_TEST (test_server_restart)
{
    char *endpoint = s_endpoint (_i), *bound;
    zactor_t *server = s_server_start (endpoint, &bound);
    keel_client_t *client = keel_client_new ("tester", bound, NULL);
    keel_client_set_backoff (client, 5, 2.0, 50);
    ck_assert_int_eq (
        keel_client_call (client, "test.echo", NULL, NULL, NULL, NULL, NULL),
        KEEL_OK);
    zactor_destroy (&server);

    //  While the server is down, a non-idempotent call fails (timeout or
    //  unavailable), an idempotent one keeps trying...
    keel_call_opts_t once = {.timeout_ms = 200};
    keel_err_t rc =
        keel_client_call (client, "test.echo", NULL, &once, NULL, NULL, NULL);
    ck_assert (rc == KEEL_ERR_TIMEOUT || rc == KEEL_ERR_UNAVAILABLE);

    keel_call_opts_t retry = {.timeout_ms = 5000,
                              .attempt_timeout_ms = 100,
                              .retries = 40,
                              .idempotent = true};
    s_tally_t tally = {0};
    keel_client_request (client, "test.echo", NULL, &retry, s_count, &tally);
    //  ...and succeeds once the server is back on the same endpoint. inproc
    //  unbinds asynchronously: retry the bind until the name is free.
    char *again = NULL;
    zactor_t *restarted = NULL;
    for (int i = 0; i < 100 && !restarted; i++) {
        keel_client_process (client);
        restarted = zactor_new (s_server_actor, (void *)bound);
        again = zstr_recv (restarted);
        if (!*again) {
            zactor_destroy (&restarted);
            zstr_free (&again);
            zclock_sleep (10); //  bounded wait for the old bind to go away
        }
    }
    ck_assert_ptr_nonnull (restarted);
    s_drive (client, &tally, 1);
    ck_assert_int_eq (tally.ok, 1);
    //  inproc never reconnects by itself: the client had to reset.
    if (_i == 0)
        ck_assert_uint_ge (keel_client_stats (client)->resets, 1);
    //  Plain calls work again too.
    ck_assert_int_eq (
        keel_client_call (client, "test.echo", NULL, NULL, NULL, NULL, NULL),
        KEEL_OK);
    keel_client_destroy (&client);
    zactor_destroy (&restarted);
    zstr_free (&again);
    free (bound);
    free (endpoint);
}
END_TEST

//  Lazy Pirate: an idempotent attempt that times out with nothing at all
//  received since it went out resets the socket; a request that may not be
//  resent and was waiting on the old socket fails UNAVAILABLE right away.
START_TEST (test_lazy_pirate_reset)
{
    char *endpoint = s_endpoint (_i), *bound;
    zactor_t *server = s_server_start (endpoint, &bound);
    keel_client_t *client = keel_client_new ("tester", bound, NULL);
    s_tally_t plain = {0}, retried = {0};
    keel_call_opts_t once = {.timeout_ms = 5000};
    keel_client_request (client, "test.never", NULL, &once, s_count, &plain);
    keel_call_opts_t idem = {.timeout_ms = 400,
                             .attempt_timeout_ms = 50,
                             .retries = 2,
                             .idempotent = true};
    keel_client_request (client, "test.never", NULL, &idem, s_count, &retried);
    s_drive (client, &plain, 1);
    ck_assert_int_eq (plain.codes[KEEL_ERR_UNAVAILABLE], 1);
    ck_assert_uint_ge (keel_client_stats (client)->resets, 1);
    s_drive (client, &retried, 1);
    ck_assert_int_eq (retried.codes[KEEL_ERR_TIMEOUT], 1);
    ck_assert_int_eq (retried.attempts, 3);
    //  The new socket works.
    ck_assert_int_eq (
        keel_client_call (client, "test.echo", NULL, NULL, NULL, NULL, NULL),
        KEEL_OK);
    keel_client_destroy (&client);
    zactor_destroy (&server);
    free (bound);
    free (endpoint);
}
END_TEST

//  Send raw frames with a DEALER and read the reply envelope.
static Keel__Envelope *
s_raw_exchange (zsock_t *dealer, const void *data, size_t size)
{
    zmq_send (zsock_resolve (dealer), data, size, 0);
    zframe_t *frame = zframe_recv (dealer);
    ck_assert_ptr_nonnull (frame);
    Keel__Envelope *env = NULL;
    const char *why;
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, NULL, &env,
                                         &why, NULL),
                      KEEL_OK);
    zframe_destroy (&frame);
    ck_assert_int_eq (env->kind, KEEL__KIND__REPLY);
    return env;
}

START_TEST (test_bad_input)
{
    char *endpoint = s_endpoint (_i), *bound;
    zactor_t *server = s_server_start (endpoint, &bound);
    zsock_t *dealer = zsock_new_dealer (bound);
    zsock_set_rcvtimeo (dealer, 5000);

    //  Garbage.
    Keel__Envelope *env = s_raw_exchange (dealer, "\xff\xff\xff garbage", 12);
    ck_assert_int_eq (env->error_code, KEEL_ERR_BAD_REQUEST);
    keel__envelope__free_unpacked (env, NULL);

    //  Empty frame.
    env = s_raw_exchange (dealer, "", 0);
    ck_assert_int_eq (env->error_code, KEEL_ERR_BAD_REQUEST);
    keel__envelope__free_unpacked (env, NULL);

    //  A well-formed envelope with a bad type: answered with its id.
    Keel__Envelope bad = KEEL__ENVELOPE__INIT;
    bad.version = KEEL_WIRE_VERSION;
    bad.kind = KEEL__KIND__REQUEST;
    bad.type = "no spaces allowed";
    bad.correlation_id = 77;
    zframe_t *frame = keel_codec_frame (&bad, NULL);
    env = s_raw_exchange (dealer, zframe_data (frame), zframe_size (frame));
    zframe_destroy (&frame);
    ck_assert_int_eq (env->error_code, KEEL_ERR_BAD_REQUEST);
    ck_assert_uint_eq (env->correlation_id, 77);
    keel__envelope__free_unpacked (env, NULL);

    //  Over the 64 KiB limit of the test server (inproc: checked by keel;
    //  tcp: ZMQ_MAXMSGSIZE drops the connection, so no answer there).
    if (_i == 0) {
        size_t size = 100 * 1024;
        char *big = (char *)calloc (1, size);
        env = s_raw_exchange (dealer, big, size);
        ck_assert_int_eq (env->error_code, KEEL_ERR_TOO_LARGE);
        keel__envelope__free_unpacked (env, NULL);
        free (big);
    }

    //  A reply sent to a server is dropped, not answered (no loops).
    bad.kind = KEEL__KIND__REPLY;
    bad.type = "test.echo";
    keel_codec_send (zsock_resolve (dealer), &bad, NULL, 0);

    //  Multipart from a DEALER: route + 2 frames; the extra frame is treated
    //  as routing, so the reply still reaches us; the body is garbage.
    zstr_sendm (dealer, "part one");
    zstr_send (dealer, "part two");
    frame = zframe_recv (dealer);
    ck_assert_ptr_nonnull (frame); //  routed back: [part one][reply]
    zframe_destroy (&frame);
    frame = zframe_recv (dealer);
    zframe_destroy (&frame);

    //  The server still serves.
    keel_client_t *client = keel_client_new ("tester", bound, NULL);
    ck_assert_int_eq (
        keel_client_call (client, "test.echo", NULL, NULL, NULL, NULL, NULL),
        KEEL_OK);
    keel_client_destroy (&client);

    uint64_t malformed, too_large, unknown_type, wrong_kind;
    zstr_send (server, "STATS");
    zsock_recv (server, "8888", &malformed, &too_large, &unknown_type,
                &wrong_kind);
    ck_assert_uint_eq (malformed, 4);
    ck_assert_uint_eq (too_large, _i == 0 ? 1 : 0);
    ck_assert_uint_eq (wrong_kind, 1);

    zsock_destroy (&dealer);
    zactor_destroy (&server);
    free (bound);
    free (endpoint);
}
END_TEST

START_TEST (test_client_limits)
{
    char *endpoint = s_endpoint (_i), *bound;
    zactor_t *server = s_server_start (endpoint, &bound);
    keel_client_t *client = keel_client_new ("tester", bound, NULL);
    keel_client_set_max_msg_size (client, 1024);
    char big[2048] = {0};
    s_tally_t tally = {0};
    ck_assert_uint_eq (keel_client_request_bytes (client, "test.echo", big,
                                                  sizeof big, NULL, s_count,
                                                  &tally),
                       0);
    ck_assert_int_eq (errno, EMSGSIZE);
    ck_assert_uint_eq (
        keel_client_request (client, "bad type", NULL, NULL, s_count, &tally),
        0);
    ck_assert_int_eq (errno, EINVAL);
    ck_assert_int_eq (tally.done, 0);
    //  Cancel: no callback.
    uint64_t id =
        keel_client_request (client, "test.never", NULL, NULL, s_count, &tally);
    ck_assert_int_eq (keel_client_cancel (client, id), 0);
    ck_assert_int_eq (keel_client_cancel (client, id), -1);
    ck_assert_int_eq (keel_client_timeout (client), -1);
    //  A reply from a server to a late request is stale, not a crash.
    keel_client_destroy (&client);
    zactor_destroy (&server);
    free (bound);
    free (endpoint);
}
END_TEST

START_TEST (test_events)
{
    char *endpoint = s_endpoint (_i);
    keel_publisher_t *pub = keel_publisher_new ("pubber");
    ck_assert_int_ge (keel_publisher_bind (pub, endpoint), 0);
    keel_subscriber_t *sub = keel_subscriber_new ();
    ck_assert_int_eq (
        keel_subscriber_connect (sub, keel_publisher_endpoint (pub)), 0);
    keel_subscriber_subscribe (sub, "test.");

    //  Slow joiner: publish until the subscription is live (bounded).
    Keel__EchoRequest msg = KEEL__ECHO_REQUEST__INIT;
    msg.text = "probe";
    const keel_event_t *event = NULL;
    for (int i = 0; i < 500 && !event; i++) {
        keel_publisher_publish (pub, "test.probe", &msg.base);
        event = keel_subscriber_recv (sub, 10);
    }
    ck_assert_ptr_nonnull (event);
    //  Resync as after a snapshot current to the publisher's sequence.
    keel_subscriber_expect (sub, "pubber", keel_publisher_sequence (pub));
    while (keel_subscriber_recv (sub, 50))
        ; //  drain probes still in flight: all stale now
    uint64_t base = keel_publisher_sequence (pub);

    //  Filtered by prefix.
    keel_publisher_publish (pub, "other.thing", NULL);
    msg.text = "one";
    ck_assert_uint_eq (keel_publisher_publish (pub, "test.one", &msg.base),
                       base + 2);
    event = keel_subscriber_recv (sub, 1000);
    ck_assert_ptr_nonnull (event);
    ck_assert_str_eq (event->envelope->type, "test.one");
    ck_assert_uint_eq (event->envelope->sequence, base + 2);
    //  The filtered event is a gap for this subscriber: it saw base, then
    //  base + 2. A subscriber that filters resyncs per topic via snapshots.
    ck_assert (event->gap);
    Keel__EchoRequest *got = (Keel__EchoRequest *)keel_codec_payload (
        event->envelope, &keel__echo_request__descriptor, NULL);
    ck_assert_str_eq (got->text, "one");
    protobuf_c_message_free_unpacked (&got->base, NULL);

    keel_publisher_publish (pub, "test.two", NULL);
    event = keel_subscriber_recv (sub, 1000);
    ck_assert_ptr_nonnull (event);
    ck_assert (!event->gap);

    //  Events already covered by a snapshot are skipped.
    keel_subscriber_expect (sub, "pubber", base + 10);
    keel_publisher_publish (pub, "test.three", NULL); //  base + 4: stale
    ck_assert_ptr_null (keel_subscriber_recv (sub, 100));
    ck_assert_uint_ge (keel_subscriber_stats (sub)->stale, 1);

    keel_subscriber_destroy (&sub);
    keel_publisher_destroy (&pub);
    free (endpoint);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("bus");
    TCase *tc = tcase_create ("inproc+tcp");
    tcase_set_timeout (tc, 60);
    //  Loop index 0 = inproc, 1 = tcp: the same test, both transports.
    tcase_add_loop_test (tc, test_round_trip, 0, 2);
    tcase_add_loop_test (tc, test_many_in_flight, 0, 2);
    tcase_add_loop_test (tc, test_deadline, 0, 2);
    tcase_add_loop_test (tc, test_retries, 0, 2);
    tcase_add_loop_test (tc, test_server_restart, 0, 2);
    tcase_add_loop_test (tc, test_lazy_pirate_reset, 0, 2);
    tcase_add_loop_test (tc, test_bad_input, 0, 2);
    tcase_add_loop_test (tc, test_client_limits, 0, 2);
    tcase_add_loop_test (tc, test_events, 0, 2);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
