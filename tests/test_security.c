/*  test_security.c - CURVE on tcp sockets: endpoints with a server key,
    allowed, unlisted and plain-text peers, a wrong server key, events,
    `keel keygen`, the node's `security` section, and a key added to the
    allow directory while the server runs.

    The server runs in this process (an actor); the peers with another
    keypair are `keel ping` processes (KEEL_CERT), since the security
    context is one per process. Refusals are observed on the server's
    socket monitor (handshake failed events), never by sleeping. */
#include "keel_client.h"
#include "keel_directory.h"
#include "keel_events.h"
#include "keel_node.h"
#include "keel_security.h"
#include "echo.pb-c.h"
#include "echo_actor.h"
#include "node.pb-c.h"
#include "testutil.h"

#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
//  Fixture: a directory with certificates

typedef struct {
    char *dir;       //  temporary directory
    char *allow;     //  dir/allow: the allow-list
    char *node_cert; //  dir/node.cert (+ _secret): the server's keypair
    char node_key[KEEL_CURVE_KEY_LEN + 1]; //  its public key
} s_keys_t;

//  Write a new certificate to `path`; copy its public key into `key`.
static void
s_make_cert (const char *path, char *key)
{
    zcert_t *cert = zcert_new ();
    ck_assert_ptr_nonnull (cert);
    ck_assert_int_eq (zcert_save (cert, path), 0);
    if (key)
        snprintf (key, KEEL_CURVE_KEY_LEN + 1, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
}

//  Copy the public certificate `from` into the allow directory as `name`.
static void
s_allow (s_keys_t *keys, const char *from, const char *name)
{
    zcert_t *cert = zcert_load (from);
    ck_assert_ptr_nonnull (cert);
    char *path = zsys_sprintf ("%s/%s", keys->allow, name);
    ck_assert_int_eq (zcert_save_public (cert, path), 0);
    zstr_free (&path);
    zcert_destroy (&cert);
}

static void
s_keys_new (s_keys_t *keys)
{
    memset (keys, 0, sizeof *keys);
    char template[] = "/tmp/keel-security-XXXXXX";
    ck_assert_ptr_nonnull (mkdtemp (template));
    keys->dir = strdup (template);
    keys->allow = zsys_sprintf ("%s/allow", keys->dir);
    ck_assert_int_eq (zsys_dir_create ("%s", keys->allow), 0);
    keys->node_cert = zsys_sprintf ("%s/node.cert", keys->dir);
    s_make_cert (keys->node_cert, keys->node_key);
    //  A node allows itself (it may reach its own tcp endpoints).
    s_allow (keys, keys->node_cert, "node.cert");
}

static void
s_keys_destroy (s_keys_t *keys)
{
    zdir_t *dir = zdir_new (keys->dir, NULL);
    if (dir) {
        zdir_remove (dir, true);
        zdir_destroy (&dir);
    }
    free (keys->dir);
    free (keys->allow);
    free (keys->node_cert);
}

// ---------------------------------------------------------------------------
//  A keel_server in an actor, with a monitor on its socket

static int
s_echo (keel_server_t *server, keel_request_t *req, void *arg)
{
    (void)arg;
    const Keel__Envelope *env = keel_request_envelope (req);
    keel_server_reply_bytes (server, req, env->payload.data, env->payload.len);
    return KEEL_OK;
}

//  args: endpoint to bind. Sends back the advertised endpoint and the
//  monitor actor (the caller owns it from then on), then serves until $TERM.
static void
s_server_actor (zsock_t *pipe, void *args)
{
    keel_server_t *server = keel_server_new ("svc");
    keel_server_on (server, "test.echo", s_echo, NULL);
    int rc = keel_server_bind (server, (const char *)args);
    //  After the bind: keel's own monitor of a CURVE server (which counts
    //  refusals) is started there, and a socket has one monitor, the last.
    zactor_t *monitor = zactor_new (zmonitor, keel_server_sock (server));
    zstr_sendx (monitor, "LISTEN", "HANDSHAKE_FAILED_AUTH",
                "HANDSHAKE_FAILED_PROTOCOL", "HANDSHAKE_SUCCEEDED", NULL);
    zstr_send (monitor, "START");
    zsock_wait (monitor);
    char *advertised =
        rc == -1 ? strdup ("")
                 : keel_security_advertise (keel_server_endpoint (server));
    zsock_signal (pipe, 0);
    zsock_send (pipe, "sp", advertised, monitor);
    free (advertised);
    zpoller_t *poller = zpoller_new (pipe, keel_server_sock (server), NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe || !which) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            free (command);
            if (term)
                break;
        } else
            keel_server_dispatch (server, 100);
    }
    zpoller_destroy (&poller);
    keel_server_destroy (&server);
}

typedef struct {
    zactor_t *actor;   //  the server
    zactor_t *monitor; //  zmonitor of its socket
    char *endpoint;    //  advertised (with the key when CURVE is on)
} s_server_t;

static void
s_server_start (s_server_t *server)
{
    server->actor = zactor_new (s_server_actor, "tcp://127.0.0.1:*");
    ck_assert_ptr_nonnull (server->actor);
    void *monitor = NULL;
    ck_assert_int_eq (
        zsock_recv (server->actor, "sp", &server->endpoint, &monitor), 0);
    server->monitor = (zactor_t *)monitor;
    ck_assert_msg (*server->endpoint, "bind failed");
}

static void
s_server_stop (s_server_t *server)
{
    zactor_destroy (&server->monitor);
    zactor_destroy (&server->actor);
    zstr_free (&server->endpoint);
}

//  Wait for event `name` with value `value` (-1: any) from the monitor
//  `monitor` or, when not NULL, `also`; other events are skipped. True if
//  seen within timeout_ms.
static bool
s_wait_either (zactor_t *monitor, zactor_t *also, const char *name, long value,
               int timeout_ms)
{
    int64_t deadline = zclock_mono () + testutil_slack (timeout_ms);
    zpoller_t *poller = zpoller_new (monitor, also, NULL);
    bool seen = false;
    while (!seen && zclock_mono () < deadline) {
        zactor_t *which =
            (zactor_t *)zpoller_wait (poller, (int)(deadline - zclock_mono ()));
        if (!which)
            continue;
        //  [event name][value][peer address]
        zmsg_t *msg = zmsg_recv (which);
        char *event = msg ? zmsg_popstr (msg) : NULL;
        char *number = msg ? zmsg_popstr (msg) : NULL;
        seen = event && streq (event, name) &&
               (value == -1 || (number && atol (number) == value));
        if (!seen) //  what came instead, should the wait fail
            fprintf (stderr, "monitor: %s %s (waiting for %s %ld)\n",
                     event ? event : "?", number ? number : "?", name, value);
        zstr_free (&event);
        zstr_free (&number);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    return seen;
}

static bool
s_wait_event (s_server_t *server, const char *name, long value, int timeout_ms)
{
    return s_wait_either (server->monitor, NULL, name, value, timeout_ms);
}

//  A monitor of `sock`'s failed handshakes.
static zactor_t *
s_monitor (zsock_t *sock)
{
    zactor_t *monitor = zactor_new (zmonitor, sock);
    zstr_sendx (monitor, "LISTEN", "HANDSHAKE_FAILED_PROTOCOL", NULL);
    zstr_send (monitor, "START");
    zsock_wait (monitor);
    return monitor;
}

//  Forget the events seen so far, so that the next wait is about what
//  comes next.
static void
s_drain (s_server_t *server)
{
    zsock_set_rcvtimeo (server->monitor, 0);
    zmsg_t *msg;
    while ((msg = zmsg_recv (server->monitor)))
        zmsg_destroy (&msg);
    zsock_set_rcvtimeo (server->monitor, -1);
}

//  Run `keel ping --bus endpoint` with KEEL_CERT = cert (NULL: none).
//  Returns its exit code.
static int
s_ping (const char *endpoint, const char *cert)
{
    if (cert)
        setenv ("KEEL_CERT", cert, 1);
    else
        unsetenv ("KEEL_CERT");
    char timeout[16];
    snprintf (timeout, sizeof timeout, "%d", testutil_slack (1000));
    char *argv[] = {KEEL_BIN,    "ping",  "--bus", (char *)endpoint,
                    "--timeout", timeout, NULL};
    char *output = NULL;
    int rc = testutil_run_cmd (argv, &output);
    unsetenv ("KEEL_CERT");
    if (rc != 0 && rc != 3)
        fprintf (stderr, "keel ping exit %d: %s\n", rc, output);
    free (output);
    return rc;
}

// ---------------------------------------------------------------------------

START_TEST (test_endpoint_key)
{
    char key[KEEL_CURVE_KEY_LEN + 1], out[128];
    zcert_t *cert = zcert_new ();
    const char *good = zcert_public_txt (cert);
    char *with = zsys_sprintf ("tcp://127.0.0.1:7700;curve=%s", good);
    ck_assert (keel_curve_key_valid (good));
    ck_assert (keel_endpoint_valid (with));
    ck_assert_int_eq (keel_endpoint_key (with, key), 1);
    ck_assert_str_eq (key, good);
    ck_assert_int_eq (keel_endpoint_transport (with, out, sizeof out), 0);
    ck_assert_str_eq (out, "tcp://127.0.0.1:7700");
    ck_assert_int_eq (keel_endpoint_transport (with, out, 10), -1);
    ck_assert_int_eq (keel_endpoint_key ("tcp://127.0.0.1:7700", key), 0);
    ck_assert_int_eq (keel_endpoint_transport ("inproc://x", out, sizeof out),
                      0);
    ck_assert_str_eq (out, "inproc://x");

    //  Annotating: only tcp, only once.
    char *annotated = keel_endpoint_with_key ("tcp://h:1", good);
    char *expected = zsys_sprintf ("tcp://h:1;curve=%s", good);
    ck_assert_str_eq (annotated, expected);
    zstr_free (&annotated);
    zstr_free (&expected);
    annotated = keel_endpoint_with_key (with, good);
    ck_assert_str_eq (annotated, with);
    zstr_free (&annotated);
    annotated = keel_endpoint_with_key ("inproc://x", good);
    ck_assert_str_eq (annotated, "inproc://x");
    zstr_free (&annotated);
    //  No context: advertising adds nothing.
    annotated = keel_security_advertise ("tcp://h:1");
    ck_assert_str_eq (annotated, "tcp://h:1");
    zstr_free (&annotated);

    //  Refused: short key, bad characters, key on inproc/ipc, other
    //  suffixes, a bad address before a good key.
    char *bad[] = {
        zsys_sprintf ("tcp://127.0.0.1:7700;curve=%.39s", good),
        zsys_sprintf ("tcp://127.0.0.1:7700;curve=%s0", good),
        zsys_sprintf ("tcp://127.0.0.1:7700;curve=%.39s\"", good),
        zsys_sprintf ("tcp://127.0.0.1:7700;curve=%.39s~", good),
        zsys_sprintf ("inproc://x;curve=%s", good),
        zsys_sprintf ("ipc:///tmp/x;curve=%s", good),
        zsys_sprintf ("tcp://127.0.0.1:7700;key=%s", good),
        zsys_sprintf ("tcp://127.0.0.1:7700;curve=%s;curve=%s", good, good),
        zsys_sprintf ("tcp://127.0.0.1;curve=%s", good),
        zsys_sprintf ("tcp://127.0.0.1:7700;"),
        //  40 Z85 characters that decode past 32 bits per group.
        zsys_sprintf ("tcp://127.0.0.1:7700;curve=%s",
                      "################################"
                      "########"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg (!keel_endpoint_valid (bad[i]), "accepted %s", bad[i]);
        zstr_free (&bad[i]);
    }
    ck_assert (!keel_curve_key_valid ("short"));
    ck_assert (!keel_curve_key_valid (NULL));
    zstr_free (&with);
    zcert_destroy (&cert);
}
END_TEST

START_TEST (test_configure_errors)
{
    s_keys_t keys;
    s_keys_new (&keys);
    struct {
        const char *body; //  the security section's keys (%s = dir)
        const char *want; //  in the error
    } cases[] = {
        {"    certificate = %s/missing.cert\n    allow = %s/allow\n",
         "key 'security/certificate': cannot read certificate"},
        {"    certificate = %s/node.cert\n    allow = %s/nowhere\n",
         "key 'security/allow': cannot use directory"},
        {"    certificate = %s/node.cert\n    allow = %s/node.cert\n",
         "key 'security/allow':"},
        {"    allow = %s/allow\n", "key 'security/certificate': missing"},
        {"    certificate = %s/node.cert\n", "key 'security/allow': missing"},
        {"    certificate = %s/node.cert\n    allow = %s/allow\n"
         "    requre = true\n",
         "test:6: key 'security/requre': unknown key"},
        {"    certificate = %s/node.cert\n    allow = %s/allow\n"
         "    require = perhaps\n",
         "key 'security/require': expected true/false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *body = zsys_sprintf (cases[i].body, keys.dir, keys.dir);
        char *text = zsys_sprintf ("node\n    name = n\nsecurity\n%s", body);
        keel_config_t *config = keel_config_load_string (text, "test", NULL);
        ck_assert_ptr_nonnull (config);
        char *error = NULL;
        ck_assert_int_eq (keel_security_configure (config, &error), -1);
        ck_assert_msg (error && strstr (error, cases[i].want),
                       "case %zu: '%s' lacks '%s'", i, error, cases[i].want);
        ck_assert (!keel_security_enabled ());
        free (error);
        keel_config_destroy (&config);
        zstr_free (&body);
        zstr_free (&text);
    }
    //  No section: nothing set. require = false needs no allow directory.
    keel_config_t *config = keel_config_load_string ("node\n", "test", NULL);
    ck_assert_int_eq (keel_security_configure (config, NULL), 0);
    keel_config_destroy (&config);
    char *text = zsys_sprintf (
        "security\n    certificate = \"%s\"\n    require = false\n",
        keys.node_cert);
    config = keel_config_load_string (text, "test", NULL);
    ck_assert_int_eq (keel_security_configure (config, NULL), 1);
    ck_assert (keel_security_enabled ());
    ck_assert (!keel_security_required ());
    char key[KEEL_CURVE_KEY_LEN + 1];
    ck_assert_int_eq (keel_security_public_key (key), 0);
    ck_assert_str_eq (key, keys.node_key);
    keel_security_reset ();
    ck_assert (!keel_security_enabled ());
    ck_assert_int_eq (keel_security_public_key (key), -1);
    keel_config_destroy (&config);
    zstr_free (&text);
    s_keys_destroy (&keys);
}
END_TEST

//  An allowed peer gets answers; a plain-text peer, an unlisted keypair
//  and a wrong server key are refused; a tcp endpoint without a key is not
//  connected in plain text.
START_TEST (test_curve_request)
{
    s_keys_t keys;
    s_keys_new (&keys);
    char *error = NULL;
    ck_assert_msg (
        keel_security_set (keys.node_cert, keys.allow, true, &error) == 0, "%s",
        error);
    s_server_t server = {0};
    s_server_start (&server);
    char *expected = zsys_sprintf (";curve=%s", keys.node_key);
    ck_assert_msg (strstr (server.endpoint, expected), "%s", server.endpoint);
    zstr_free (&expected);

    //  Allowed (this process's own keypair is in the allow directory).
    keel_client_t *client = keel_client_new ("tester", server.endpoint, NULL);
    ck_assert_ptr_nonnull (client);
    char *text = NULL;
    ck_assert_int_eq (
        keel_client_call (client, "keel.ping", NULL, NULL, NULL, NULL, &text),
        KEEL_OK);
    keel_client_destroy (&client);
    ck_assert (s_wait_event (&server, "HANDSHAKE_SUCCEEDED", -1, 2000));

    //  A tcp endpoint without a key: refused here, never plain text.
    char transport[128];
    keel_endpoint_transport (server.endpoint, transport, sizeof transport);
    ck_assert_ptr_null (keel_client_new ("tester", transport, NULL));
    keel_subscriber_t *sub = keel_subscriber_new ();
    ck_assert_int_eq (keel_subscriber_connect (sub, transport), -1);
    keel_subscriber_destroy (&sub);

    //  A plain-text peer: refused. Both ends send their greeting at once
    //  and the first to read the other's closes the connection, so the
    //  mechanism mismatch shows on one of the two monitors.
    s_drain (&server);
    zsock_t *plain = zsock_new (ZMQ_DEALER);
    zactor_t *plain_monitor = s_monitor (plain);
    ck_assert_int_eq (zsock_connect (plain, "%s", transport), 0);
    ck_assert (s_wait_either (
        server.monitor, plain_monitor, "HANDSHAKE_FAILED_PROTOCOL",
        ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, 3000));
    zactor_destroy (&plain_monitor);
    zsock_destroy (&plain);
    //  The same from another process (no certificate): no answer.
    ck_assert_int_eq (s_ping (transport, NULL), 3);

    //  A keypair that is not on the list: refused by zauth.
    char *other = zsys_sprintf ("%s/other.cert", keys.dir);
    s_make_cert (other, NULL);
    s_drain (&server);
    ck_assert_int_eq (s_ping (server.endpoint, other), 3);
    ck_assert (s_wait_event (&server, "HANDSHAKE_FAILED_AUTH", 400, 3000));

    //  The right keypair with a wrong server key: no connection.
    char wrong_key[KEEL_CURVE_KEY_LEN + 1];
    char *wrong_cert = zsys_sprintf ("%s/wrong.cert", keys.dir);
    s_make_cert (wrong_cert, wrong_key);
    char *wrong = zsys_sprintf ("%s;curve=%s", transport, wrong_key);
    s_drain (&server);
    ck_assert_int_eq (s_ping (wrong, keys.node_cert), 3);
    ck_assert (s_wait_event (&server, "HANDSHAKE_FAILED_PROTOCOL",
                             ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC, 3000));

    //  The same keypair, the right key: through, from another process.
    ck_assert_int_eq (s_ping (server.endpoint, keys.node_cert), 0);

    s_server_stop (&server);
    keel_security_reset ();
    zstr_free (&other);
    zstr_free (&wrong_cert);
    zstr_free (&wrong);
    zstr_free (&text);
    s_keys_destroy (&keys);
}
END_TEST

//  Refused handshakes are counted (and logged): a key not on the list, and
//  a handshake that fails (a wrong server key), each from another process.
START_TEST (test_refusals_counted)
{
    s_keys_t keys;
    s_keys_new (&keys);
    char *error = NULL;
    ck_assert_msg (
        keel_security_set (keys.node_cert, keys.allow, true, &error) == 0, "%s",
        error);
    keel_server_t *server = keel_server_new ("svc");
    ck_assert_int_ne (keel_server_bind (server, "tcp://127.0.0.1:*"), -1);
    char *endpoint = keel_security_advertise (keel_server_endpoint (server));
    uint64_t auth = 1, handshake = 1;
    keel_security_refusals (&auth, &handshake);
    ck_assert_uint_eq (auth, 0);
    ck_assert_uint_eq (handshake, 0);

    char *other = zsys_sprintf ("%s/other.cert", keys.dir);
    s_make_cert (other, NULL);
    ck_assert_int_eq (s_ping (endpoint, other), 3);
    char transport[128];
    keel_endpoint_transport (endpoint, transport, sizeof transport);
    char wrong_key[KEEL_CURVE_KEY_LEN + 1];
    char *wrong_cert = zsys_sprintf ("%s/wrong.cert", keys.dir);
    s_make_cert (wrong_cert, wrong_key);
    char *wrong = zsys_sprintf ("%s;curve=%s", transport, wrong_key);
    ck_assert_int_eq (s_ping (wrong, keys.node_cert), 3);
    //  The events travel through the monitor: wait for them, bounded.
    int64_t deadline = zclock_mono () + testutil_slack (5000);
    do {
        keel_security_refusals (&auth, &handshake);
        if (auth >= 1 && handshake >= 1)
            break;
        zclock_sleep (10); //  polling a counter, bounded
    } while (zclock_mono () < deadline);
    ck_assert_uint_ge (auth, 1);
    ck_assert_uint_ge (handshake, 1);

    keel_server_destroy (&server);
    keel_security_reset ();
    zstr_free (&endpoint);
    zstr_free (&other);
    zstr_free (&wrong_cert);
    zstr_free (&wrong);
    s_keys_destroy (&keys);
}
END_TEST

//  Rotation: a certificate added to the allow directory while the server
//  runs is let in by the next handshake; one removed is refused.
START_TEST (test_allow_dir_live)
{
    s_keys_t keys;
    s_keys_new (&keys);
    ck_assert_int_eq (
        keel_security_set (keys.node_cert, keys.allow, true, NULL), 0);
    s_server_t server = {0};
    s_server_start (&server);
    char *fresh = zsys_sprintf ("%s/fresh.cert", keys.dir);
    s_make_cert (fresh, NULL);
    s_drain (&server);
    ck_assert_int_eq (s_ping (server.endpoint, fresh), 3);
    ck_assert (s_wait_event (&server, "HANDSHAKE_FAILED_AUTH", 400, 3000));

    s_allow (&keys, fresh, "fresh.cert");
    ck_assert_int_eq (s_ping (server.endpoint, fresh), 0);

    char *path = zsys_sprintf ("%s/fresh.cert", keys.allow);
    ck_assert_int_eq (unlink (path), 0);
    s_drain (&server);
    ck_assert_int_eq (s_ping (server.endpoint, fresh), 3);
    ck_assert (s_wait_event (&server, "HANDSHAKE_FAILED_AUTH", 400, 3000));

    //  RELOAD (what the node does on SIGHUP) reads the directory afresh.
    s_allow (&keys, fresh, "fresh.cert");
    keel_security_reload ();
    ck_assert_int_eq (s_ping (server.endpoint, fresh), 0);

    s_server_stop (&server);
    keel_security_reset ();
    zstr_free (&path);
    zstr_free (&fresh);
    s_keys_destroy (&keys);
}
END_TEST

//  Events over CURVE: the publisher binds as a CURVE server, the
//  subscriber connects to the advertised endpoint.
START_TEST (test_curve_events)
{
    s_keys_t keys;
    s_keys_new (&keys);
    ck_assert_int_eq (
        keel_security_set (keys.node_cert, keys.allow, true, NULL), 0);
    keel_publisher_t *pub = keel_publisher_new ("pub");
    ck_assert_int_gt (keel_publisher_bind (pub, "tcp://127.0.0.1:*"), 0);
    char *endpoint = keel_security_advertise (keel_publisher_endpoint (pub));
    ck_assert (strstr (endpoint, ";curve="));
    keel_subscriber_t *sub = keel_subscriber_new ();
    ck_assert_int_eq (keel_subscriber_connect (sub, endpoint), 0);
    keel_subscriber_subscribe (sub, "test.");
    Keel__EchoRequest msg = KEEL__ECHO_REQUEST__INIT;
    msg.text = "hello";
    const keel_event_t *event = NULL;
    //  Slow joiner: publish until the subscription has arrived, bounded.
    for (int i = 0; i < 500 && !event; i++) {
        keel_publisher_publish (pub, "test.said", &msg.base);
        event = keel_subscriber_recv (sub, 10);
    }
    ck_assert_ptr_nonnull (event);
    ck_assert_str_eq (event->envelope->type, "test.said");
    keel_subscriber_destroy (&sub);
    keel_publisher_destroy (&pub);
    zstr_free (&endpoint);
    keel_security_reset ();
    s_keys_destroy (&keys);
}
END_TEST

//  A socket may bind tcp (CURVE) and ipc (plain) in any order.
START_TEST (test_ipc_stays_plain)
{
    s_keys_t keys;
    s_keys_new (&keys);
    ck_assert_int_eq (
        keel_security_set (keys.node_cert, keys.allow, true, NULL), 0);
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    ck_assert_int_eq (keel_security_server (sock, "tcp://127.0.0.1:*"), 0);
    ck_assert_int_eq (zsock_mechanism (sock), ZMQ_CURVE);
    ck_assert_int_eq (zsock_curve_server (sock), 1);
    ck_assert_int_eq (keel_security_server (sock, "ipc:///tmp/x"), 0);
    ck_assert_int_eq (zsock_mechanism (sock), ZMQ_NULL);
    ck_assert_int_eq (keel_security_client (sock, "inproc://x"), 0);
    ck_assert_int_eq (zsock_mechanism (sock), ZMQ_NULL);
    zsock_destroy (&sock);
    keel_security_reset ();
    s_keys_destroy (&keys);
}
END_TEST

START_TEST (test_keygen_cli)
{
    s_keys_t keys;
    s_keys_new (&keys);
    char *file = zsys_sprintf ("%s/made.cert", keys.dir);
    char *argv[] = {KEEL_BIN, "keygen", "-o",     file,
                    "--name", "node-a", "--json", NULL};
    char *output = NULL;
    ck_assert_int_eq (testutil_run_cmd (argv, &output), 0);
    zcert_t *cert = zcert_load (file);
    ck_assert_ptr_nonnull (cert);
    ck_assert_str_eq (zcert_meta (cert, "name"), "node-a");
    char *want =
        zsys_sprintf ("{\"public_key\":\"%s\"", zcert_public_txt (cert));
    ck_assert_msg (strstr (output, want), "%s", output);
    //  The pair loads as a node's certificate.
    ck_assert_int_eq (keel_security_set (file, keys.allow, true, NULL), 0);
    char key[KEEL_CURVE_KEY_LEN + 1];
    keel_security_public_key (key);
    ck_assert_str_eq (key, zcert_public_txt (cert));
    keel_security_reset ();
    //  Plain output: the public key alone. Without -o: usage.
    free (output);
    char *plain[] = {KEEL_BIN, "keygen", "-o", file, NULL};
    ck_assert_int_eq (testutil_run_cmd (plain, &output), 0);
    ck_assert_uint_eq (strlen (output), KEEL_CURVE_KEY_LEN + 1);
    free (output);
    char *usage[] = {KEEL_BIN, "keygen", NULL};
    ck_assert_int_eq (testutil_run_cmd (usage, NULL), 2);
    zcert_destroy (&cert);
    zstr_free (&want);
    zstr_free (&file);
    s_keys_destroy (&keys);
}
END_TEST

//  `keel node -c` with a bad security section exits 1 naming the key.
START_TEST (test_node_bad_security)
{
    s_keys_t keys;
    s_keys_new (&keys);
    char *text = zsys_sprintf (
        "node\n    name = sec\nsecurity\n    certificate = %s/gone.cert\n"
        "    allow = %s\n",
        keys.dir, keys.allow);
    char *path = testutil_write_temp (text);
    char *argv[] = {KEEL_BIN, "node", "-c", path, NULL};
    char *output = NULL;
    ck_assert_int_eq (testutil_run_cmd (argv, &output), 1);
    ck_assert_msg (strstr (output, ":4: key 'security/certificate'"), "%s",
                   output);
    free (output);
    unlink (path);
    free (path);
    zstr_free (&text);
    s_keys_destroy (&keys);
}
END_TEST

static const keel_actor_def_t s_defs[] = {
    {"echo", keel_echo_actor, "echo"},
    {NULL, NULL, NULL},
};

//  A node with a security section: its tcp doors are CURVE, node.info
//  names them with the key, the directory's `key` annotates entries.
START_TEST (test_node_secured)
{
    s_keys_t keys;
    s_keys_new (&keys);
    char *name = zsys_sprintf ("sec%d", (int)getpid ());
    char *text = zsys_sprintf (
        "node\n    name = %s\n    bus = tcp://127.0.0.1:*\n"
        "    events = tcp://127.0.0.1:*\n    actors\n        echo\n"
        "security\n    certificate = \"%s\"\n    allow = \"%s\"\n"
        "directory\n    far\n        endpoint = tcp://10.0.0.9:7700\n"
        "        events = inproc://far\n        key = \"%s\"\n",
        name, keys.node_cert, keys.allow, keys.node_cert);
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "test", &error);
    ck_assert_msg (config, "%s", error);
    keel_node_args_t args = {config, s_defs};
    zactor_t *node = zactor_new (keel_node_actor, &args);
    error = keel_actor_status (node);
    ck_assert_msg (!error, "%s", error);
    ck_assert (keel_security_required ());

    //  Ask over inproc (plain: it never leaves the process).
    char *inproc = keel_node_bus_endpoint (name);
    keel_client_t *client = keel_client_new ("tester", inproc, NULL);
    Keel__NodeInfo *info = NULL;
    ck_assert_int_eq (keel_client_call (client, "node.info", NULL, NULL,
                                        &keel__node_info__descriptor,
                                        (ProtobufCMessage **)&info, NULL),
                      KEEL_OK);
    keel_client_destroy (&client);
    char *suffix = zsys_sprintf (";curve=%s", keys.node_key);
    ck_assert_msg (strstr (info->bus, suffix), "%s", info->bus);
    ck_assert_msg (strstr (info->events, suffix), "%s", info->events);

    //  Over tcp, CURVE, through the front door to the echo actor.
    client = keel_client_new ("tester", info->bus, "echo");
    ck_assert_ptr_nonnull (client);
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = "hi";
    Keel__EchoReply *reply = NULL;
    ck_assert_int_eq (keel_client_call (client, "echo.say", &req.base, NULL,
                                        &keel__echo_reply__descriptor,
                                        (ProtobufCMessage **)&reply, NULL),
                      KEEL_OK);
    ck_assert_str_eq (reply->text, "hi");
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    keel_client_destroy (&client);

    //  Another process without a certificate is refused.
    char transport[128];
    keel_endpoint_transport (info->bus, transport, sizeof transport);
    ck_assert_int_eq (s_ping (transport, NULL), 3);
    protobuf_c_message_free_unpacked (&info->base, NULL);

    //  The directory: `key` annotates tcp endpoints only.
    keel_directory_t *directory = keel_directory_new ();
    ck_assert_int_eq (keel_directory_load (directory, config, "directory"), 0);
    char *want = zsys_sprintf ("tcp://10.0.0.9:7700%s", suffix);
    ck_assert_str_eq (keel_directory_endpoint (directory, "far"), want);
    ck_assert_str_eq (keel_directory_events (directory, "far"), "inproc://far");
    keel_directory_destroy (&directory);

    zactor_destroy (&node);
    //  The node set the context; stopping it clears it.
    ck_assert (!keel_security_enabled ());
    keel_config_destroy (&config);
    zstr_free (&want);
    zstr_free (&suffix);
    zstr_free (&inproc);
    zstr_free (&text);
    zstr_free (&name);
    s_keys_destroy (&keys);
}
END_TEST

START_TEST (test_directory_key_errors)
{
    zcert_t *cert = zcert_new ();
    zcert_t *other = zcert_new ();
    struct {
        char *text;
        const char *want;
    } cases[] = {
        {zsys_sprintf ("directory\n    a\n        endpoint = tcp://h:1\n"
                       "        key = nonsense\n"),
         "test:4: key 'directory/a/key': 'nonsense' is neither"},
        {zsys_sprintf ("directory\n    a\n        endpoint = "
                       "\"tcp://h:1;curve=%s\"\n        key = \"%s\"\n",
                       zcert_public_txt (other), zcert_public_txt (cert)),
         "test:3: key 'directory/a/endpoint': names another key"},
        {zsys_sprintf ("directory\n    a = \"inproc://a;curve=%s\"\n",
                       zcert_public_txt (cert)),
         "test:2: key 'directory/a': invalid endpoint"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        keel_config_t *config =
            keel_config_load_string (cases[i].text, "test", NULL);
        ck_assert_ptr_nonnull (config);
        keel_directory_t *directory = keel_directory_new ();
        ck_assert_int_eq (keel_directory_load (directory, config, "directory"),
                          -1);
        const char *error = keel_config_error (config);
        ck_assert_msg (strstr (error, cases[i].want), "case %zu: %s", i, error);
        keel_directory_destroy (&directory);
        keel_config_destroy (&config);
        zstr_free (&cases[i].text);
    }
    //  A key given inline, and an endpoint that already names the same key.
    char *text = zsys_sprintf (
        "directory\n    a\n        endpoint = \"tcp://h:1;curve=%s\"\n"
        "        key = \"%s\"\n    b = \"tcp://h:2;curve=%s\"\n",
        zcert_public_txt (cert), zcert_public_txt (cert),
        zcert_public_txt (other));
    keel_config_t *config = keel_config_load_string (text, "test", NULL);
    keel_directory_t *directory = keel_directory_new ();
    ck_assert_int_eq (keel_directory_load (directory, config, "directory"), 0);
    char *want = zsys_sprintf ("tcp://h:1;curve=%s", zcert_public_txt (cert));
    ck_assert_str_eq (keel_directory_endpoint (directory, "a"), want);
    zstr_free (&want);
    want = zsys_sprintf ("tcp://h:2;curve=%s", zcert_public_txt (other));
    ck_assert_str_eq (keel_directory_endpoint (directory, "b"), want);
    zstr_free (&want);
    keel_directory_destroy (&directory);
    keel_config_destroy (&config);
    zstr_free (&text);
    zcert_destroy (&cert);
    zcert_destroy (&other);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("security");
    TCase *tc = tcase_create ("curve");
    //  Each refused `keel ping` waits out its own deadline.
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_endpoint_key);
    tcase_add_test (tc, test_configure_errors);
    tcase_add_test (tc, test_curve_request);
    tcase_add_test (tc, test_refusals_counted);
    tcase_add_test (tc, test_allow_dir_live);
    tcase_add_test (tc, test_curve_events);
    tcase_add_test (tc, test_ipc_stays_plain);
    tcase_add_test (tc, test_keygen_cli);
    tcase_add_test (tc, test_node_bad_security);
    tcase_add_test (tc, test_node_secured);
    tcase_add_test (tc, test_directory_key_errors);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
