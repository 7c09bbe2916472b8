/*  test_service.c - the service SDK against a stand-in registry that speaks
    schemas/registry.proto: registration, heartbeats, re-registration after
    the registry forgets or restarts, deregistration, dispatch, dedupe. */
#include "keel_client.h"
#include "keel_node.h"
#include "keel_service.h"
#include "registry.pb-c.h"
#include "echo.pb-c.h"
#include "testutil.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
//  Stand-in registry: reports every call on its pipe as "VERB id".

typedef struct {
    zsock_t *pipe;
    zhashx_t *known; //  instance id -> endpoint
} s_registry_t;

static int
s_reg_register (keel_server_t *server, keel_request_t *req, void *arg)
{
    s_registry_t *reg = (s_registry_t *)arg;
    Keel__RegisterRequest *r = (Keel__RegisterRequest *)keel_request_payload (
        req, &keel__register_request__descriptor);
    if (!r || !r->instance || !*r->instance->id)
        return KEEL_ERR_BAD_REQUEST;
    zhashx_update (reg->known, r->instance->id, r->instance->endpoint);
    zstr_sendf (reg->pipe, "REGISTERED %s %s ttl=%u tags=%zu meta=%zu",
                r->instance->id, r->instance->service,
                r->instance->check ? r->instance->check->ttl_ms : 0,
                r->instance->n_tags, r->instance->n_meta);
    keel_server_reply (server, req, NULL);
    return KEEL_OK;
}

static int
s_reg_heartbeat (keel_server_t *server, keel_request_t *req, void *arg)
{
    s_registry_t *reg = (s_registry_t *)arg;
    Keel__HeartbeatRequest *r = (Keel__HeartbeatRequest *)keel_request_payload (
        req, &keel__heartbeat_request__descriptor);
    if (!r)
        return KEEL_ERR_BAD_REQUEST;
    if (!zhashx_lookup (reg->known, r->id))
        return KEEL_ERR_NOT_FOUND;
    zstr_sendf (reg->pipe, "HEARTBEAT %s", r->id);
    keel_server_reply (server, req, NULL);
    return KEEL_OK;
}

static int
s_reg_deregister (keel_server_t *server, keel_request_t *req, void *arg)
{
    s_registry_t *reg = (s_registry_t *)arg;
    Keel__DeregisterRequest *r =
        (Keel__DeregisterRequest *)keel_request_payload (
            req, &keel__deregister_request__descriptor);
    if (!r)
        return KEEL_ERR_BAD_REQUEST;
    zhashx_delete (reg->known, r->id);
    zstr_sendf (reg->pipe, "DEREGISTERED %s", r->id);
    keel_server_reply (server, req, NULL);
    return KEEL_OK;
}

static void
s_registry_actor (zsock_t *pipe, void *args)
{
    s_registry_t reg = {pipe, zhashx_new ()};
    keel_server_t *server = keel_server_new ("registry");
    keel_server_on (server, "registry.register", s_reg_register, &reg);
    keel_server_on (server, "registry.heartbeat", s_reg_heartbeat, &reg);
    keel_server_on (server, "registry.deregister", s_reg_deregister, &reg);
    int rc = keel_server_bind (server, (const char *)args);
    zsock_signal (pipe, 0);
    zstr_send (pipe, rc == -1 ? "BIND-FAILED" : "READY");
    zpoller_t *poller = zpoller_new (pipe, keel_server_sock (server), NULL);
    zpoller_set_nonstop (poller, true);
    while (rc != -1) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            if (command && streq (command, "FORGET"))
                zhashx_purge (reg.known);
            free (command);
            if (term)
                break;
        } else if (which)
            keel_server_dispatch (server, 100);
    }
    zpoller_destroy (&poller);
    keel_server_destroy (&server);
    zhashx_destroy (&reg.known);
}

static zactor_t *
s_registry_start (const char *endpoint)
{
    for (int i = 0; i < 100; i++) {
        zactor_t *actor = zactor_new (s_registry_actor, (void *)endpoint);
        char *status = zstr_recv (actor);
        bool ready = streq (status, "READY");
        free (status);
        if (ready)
            return actor;
        zactor_destroy (&actor);
        zclock_sleep (10); //  bounded wait for an inproc name to be released
    }
    ck_abort_msg ("cannot bind %s", endpoint);
    return NULL;
}

//  Wait for a report starting with `prefix` from the registry (skipping
//  others), at most timeout_ms. Returns it (caller frees) or NULL.
static char *
s_expect (zactor_t *registry, const char *prefix, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        zsock_set_rcvtimeo (registry, (int)(deadline - zclock_mono ()) + 1);
        char *report = zstr_recv (registry);
        if (!report)
            return NULL;
        if (strncmp (report, prefix, strlen (prefix)) == 0)
            return report;
        free (report);
    }
    return NULL;
}

// ---------------------------------------------------------------------------
//  The service under test, in an actor.

typedef struct {
    const char *registry; //  registry endpoint
    const char *endpoint; //  where to bind
    int adds;             //  effects applied by svc.add
} s_svc_args_t;

static int
s_add (keel_server_t *server, keel_request_t *req, void *arg)
{
    s_svc_args_t *args = (s_svc_args_t *)arg;
    Keel__EchoRequest *r = (Keel__EchoRequest *)keel_request_payload (
        req, &keel__echo_request__descriptor);
    if (!r)
        return KEEL_ERR_BAD_REQUEST;
    if (r->fail)
        return KEEL_ERR_CONFLICT; //  a business error: remembered too
    Keel__EchoReply reply = KEEL__ECHO_REPLY__INIT;
    reply.count = (uint64_t)++args->adds;
    reply.text = r->text;
    keel_server_reply (server, req, &reply.base);
    return KEEL_OK;
}

static void
s_service_actor (zsock_t *pipe, void *args)
{
    s_svc_args_t *svc_args = (s_svc_args_t *)args;
    keel_service_t *svc = keel_service_new ("svc", "svc-1");
    keel_service_on (svc, "svc.add", s_add, svc_args);
    keel_service_add_tag (svc, "blue");
    keel_service_set_meta (svc, "zone", "a");
    ck_assert_int_ge (keel_service_bind (svc, svc_args->endpoint), 0);
    if (svc_args->registry)
        keel_service_set_registry (svc, svc_args->registry, 100);
    zloop_t *loop = zloop_new ();
    keel_service_attach (svc, loop);
    zloop_reader (loop, pipe, keel_actor_on_pipe, NULL);
    zloop_set_nonstop (loop, true);
    zsock_signal (pipe, 0);
    zloop_start (loop);
    keel_service_destroy (&svc);
    zloop_destroy (&loop);
}

// ---------------------------------------------------------------------------

START_TEST (test_registration)
{
    char *reg_ep = testutil_inproc ("registry");
    char *svc_ep = testutil_inproc ("svc");
    zactor_t *registry = s_registry_start (reg_ep);
    s_svc_args_t args = {reg_ep, svc_ep, 0};
    zactor_t *service = zactor_new (s_service_actor, &args);

    char *report = s_expect (registry, "REGISTERED", 2000);
    ck_assert_ptr_nonnull (report);
    //  TTL is just under three heartbeats; tags and metadata travel.
    ck_assert_ptr_nonnull (strstr (report, "svc-1 svc ttl=290 tags=1 meta=1"));
    free (report);
    report = s_expect (registry, "HEARTBEAT svc-1", 1000);
    ck_assert_ptr_nonnull (report);
    free (report);

    //  The registry forgets: the service registers again within two
    //  heartbeat intervals, by itself.
    zstr_send (registry, "FORGET");
    int64_t forgot = zclock_mono ();
    report = s_expect (registry, "REGISTERED svc-1", 1000);
    ck_assert_ptr_nonnull (report);
    free (report);
    ck_assert_int_le (zclock_mono () - forgot, 2 * 100 + testutil_slack (100));

    //  Stopping the service deregisters it.
    zactor_destroy (&service);
    report = s_expect (registry, "DEREGISTERED svc-1", 2000);
    ck_assert_ptr_nonnull (report);
    free (report);
    zactor_destroy (&registry);
    free (reg_ep);
    free (svc_ep);
}
END_TEST

START_TEST (test_registry_restart)
{
    char *reg_ep = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
    char *svc_ep = testutil_inproc ("svc");
    zactor_t *registry = s_registry_start (reg_ep);
    s_svc_args_t args = {reg_ep, svc_ep, 0};
    zactor_t *service = zactor_new (s_service_actor, &args);
    char *report = s_expect (registry, "REGISTERED svc-1", 2000);
    ck_assert_ptr_nonnull (report);
    free (report);

    //  The registry dies and comes back empty.
    zactor_destroy (&registry);
    registry = s_registry_start (reg_ep);
    int64_t back = zclock_mono ();
    report = s_expect (registry, "REGISTERED svc-1", 2000);
    ck_assert_ptr_nonnull (report);
    free (report);
    //  Two heartbeat intervals, plus tcp's reconnect interval (100 ms).
    ck_assert_int_le (zclock_mono () - back,
                      2 * 100 + 100 + testutil_slack (100));

    zactor_destroy (&service);
    zactor_destroy (&registry);
    free (reg_ep);
    free (svc_ep);
}
END_TEST

static keel_err_t
s_add_call (keel_client_t *client, const char *key, bool fail,
            uint64_t *count_p)
{
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = "x";
    req.fail = fail;
    keel_call_opts_t opts = {.idempotency_key = key};
    Keel__EchoReply *reply = NULL;
    keel_err_t rc = keel_client_call (client, "svc.add", &req.base, &opts,
                                      &keel__echo_reply__descriptor,
                                      (ProtobufCMessage **)&reply, NULL);
    if (reply) {
        *count_p = reply->count;
        protobuf_c_message_free_unpacked (&reply->base, NULL);
    }
    return rc;
}

START_TEST (test_dispatch_and_dedupe)
{
    char *svc_ep = testutil_inproc ("svc");
    s_svc_args_t args = {NULL, svc_ep, 0};
    zactor_t *service = zactor_new (s_service_actor, &args);
    keel_client_t *client = keel_client_new ("tester", svc_ep, "svc");
    uint64_t count = 0;

    //  The same key twice: one effect, the same answer.
    ck_assert_int_eq (s_add_call (client, "k1", false, &count), KEEL_OK);
    ck_assert_uint_eq (count, 1);
    ck_assert_int_eq (s_add_call (client, "k1", false, &count), KEEL_OK);
    ck_assert_uint_eq (count, 1);
    //  Another key: another effect.
    ck_assert_int_eq (s_add_call (client, "k2", false, &count), KEEL_OK);
    ck_assert_uint_eq (count, 2);
    //  No key: no dedupe.
    ck_assert_int_eq (s_add_call (client, NULL, false, &count), KEEL_OK);
    ck_assert_int_eq (s_add_call (client, NULL, false, &count), KEEL_OK);
    ck_assert_uint_eq (count, 4);
    //  A business error is remembered too: the replay says CONFLICT even
    //  when the retry would now succeed.
    ck_assert_int_eq (s_add_call (client, "k3", true, &count),
                      KEEL_ERR_CONFLICT);
    ck_assert_int_eq (s_add_call (client, "k3", false, &count),
                      KEEL_ERR_CONFLICT);
    //  The key is scoped by method: an unknown method is still unknown.
    keel_call_opts_t opts = {.idempotency_key = "k1"};
    ck_assert_int_eq (
        keel_client_call (client, "svc.other", NULL, &opts, NULL, NULL, NULL),
        KEEL_ERR_UNKNOWN_TYPE);
    keel_client_destroy (&client);
    zactor_destroy (&service);
    ck_assert_int_eq (args.adds, 4); //  k1, k2 and two without a key
    free (svc_ep);
}
END_TEST

//  The example service, as its own process, over tcp, with the registry.
START_TEST (test_example_process)
{
    char *reg_ep = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
    char *svc_ep = zsys_sprintf ("tcp://127.0.0.1:%d", testutil_free_port ());
    zactor_t *registry = s_registry_start (reg_ep);
    char *argv[] = {KEEL_BUILD_DIR "/example_greeter", svc_ep, reg_ep, NULL};
    int out;
    pid_t pid = testutil_spawn (argv, &out);
    char *seen = testutil_wait_for (out, "ready", 5000);
    ck_assert_ptr_nonnull (seen);
    free (seen);
    char *report = s_expect (registry, "REGISTERED greeter-1 greeter", 3000);
    ck_assert_ptr_nonnull (report);
    free (report);

    keel_client_t *client = keel_client_new ("tester", svc_ep, "greeter");
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = "keel";
    Keel__EchoReply *reply = NULL;
    ck_assert_int_eq (keel_client_call (client, "greeter.hello", &req.base,
                                        NULL, &keel__echo_reply__descriptor,
                                        (ProtobufCMessage **)&reply, NULL),
                      KEEL_OK);
    ck_assert_str_eq (reply->text, "hello, keel");
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    req.text = "";
    ck_assert_int_eq (keel_client_call (client, "greeter.hello", &req.base,
                                        NULL, NULL, NULL, NULL),
                      KEEL_ERR_INVALID_ARGUMENT);
    keel_client_destroy (&client);

    kill (pid, SIGTERM);
    seen = testutil_wait_for (out, "stopped after 1 greetings", 5000);
    ck_assert_ptr_nonnull (seen);
    free (seen);
    ck_assert_int_eq (testutil_reap (pid, 5000), 0);
    close (out);
    report = s_expect (registry, "DEREGISTERED greeter-1", 3000);
    ck_assert_ptr_nonnull (report);
    free (report);
    zactor_destroy (&registry);
    free (reg_ep);
    free (svc_ep);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("service");
    TCase *tc = tcase_create ("service");
    tcase_set_timeout (tc, 30);
    tcase_add_test (tc, test_registration);
    tcase_add_test (tc, test_registry_restart);
    tcase_add_test (tc, test_dispatch_and_dedupe);
    tcase_add_test (tc, test_example_process);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
