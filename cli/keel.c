/*  keel.c - the `keel` command-line program: runs a node, and talks to one.

        keel node --dev | -c FILE      run a node (every actor, or the config's)
        keel ping [SERVICE]            round trip to the node or a service
        keel info                      what the node runs and where
        keel stats [SERVICE]           counters of the node or a service
        keel echo TEXT [--fail]        call the echo demo service
        keel watch [PREFIX]            print events as they arrive
*/
#include "cli.h"
#include "keel_events.h"
#include "keel_json.h"
#include "keel_security.h"
#include "echo.pb-c.h"
#include "node.pb-c.h"

#include <signal.h>
#include <string.h>

static int s_usage (FILE *out);

//  How this program was invoked (argv[0]), for hints it prints.
static const char *s_program = "keel";

// ---------------------------------------------------------------------------
//  keel node

static volatile sig_atomic_t s_reload_asked = 0;

//  The dev node's settings: the saga log, the demo saga (create order ->
//  reserve inventory -> charge payment), and the gateway's routes: echo
//  (public and JWT-protected) and orders (a saga per POST), tokens from
//  `keel token` (the dev key).
static const char *s_dev_settings = "saga\n"
                                    "    log = /tmp/keel-dev-saga.db\n"
                                    "    definition\n"
                                    "        name = order\n"
                                    "        step\n"
                                    "            name = create\n"
                                    "            service = orders\n"
                                    "            action = create\n"
                                    "            compensation = cancel\n"
                                    "            non_retryable = CONFLICT\n"
                                    "        step\n"
                                    "            name = reserve\n"
                                    "            service = inventory\n"
                                    "            action = reserve\n"
                                    "            compensation = release\n"
                                    "            non_retryable = CONFLICT\n"
                                    "        step\n"
                                    "            name = charge\n"
                                    "            service = payments\n"
                                    "            action = charge\n"
                                    "            compensation = refund\n"
                                    "            non_retryable = CONFLICT\n"
                                    "gateway\n"
                                    "    listen = 127.0.0.1:8080\n"
                                    "    auth\n"
                                    "        iss = " CLI_DEV_ISSUER "\n"
                                    "        key\n"
                                    "            kid = " CLI_DEV_KID "\n"
                                    "            alg = HS256\n"
                                    "            secret = " CLI_DEV_SECRET "\n"
                                    "    circuit\n"
                                    "        window_size = 10\n"
                                    "        minimum_calls = 5\n"
                                    "        open_wait = 10s\n"
                                    "    route\n"
                                    "        name = users\n"
                                    "        path = /users\n"
                                    "        target = bus:users\n"
                                    "        auth = jwt\n"
                                    "        scopes = users:read\n"
                                    "    route\n"
                                    "        name = user\n"
                                    "        path = /users/{id}\n"
                                    "        target = bus:users\n"
                                    "        auth = jwt\n"
                                    "        scopes = users:read\n"
                                    "    route\n"
                                    "        name = products\n"
                                    "        path = /products\n"
                                    "        target = http:web\n"
                                    "        retries = 2\n"
                                    "    route\n"
                                    "        name = product\n"
                                    "        path = /products/*\n"
                                    "        target = http:web\n"
                                    "        retries = 2\n"
                                    "    route\n"
                                    "        name = echo\n"
                                    "        path = /echo/*\n"
                                    "        target = bus:echo\n"
                                    "    route\n"
                                    "        name = secure-echo\n"
                                    "        path = /secure/echo/*\n"
                                    "        target = bus:echo\n"
                                    "        auth = jwt\n"
                                    "        scopes = echo:read\n"
                                    "    route\n"
                                    "        name = orders\n"
                                    "        path = /orders\n"
                                    "        target = saga:order\n"
                                    "        auth = jwt\n"
                                    "        scopes = orders:write\n"
                                    "    route\n"
                                    "        name = order-status\n"
                                    "        path = /orders/{id}\n"
                                    "        target = saga-status:order\n"
                                    "        auth = jwt\n"
                                    "        scopes = orders:write\n"
                                    "breaker\n"
                                    "    window_size = 10\n"
                                    "    minimum_calls = 5\n"
                                    "    open_wait = 10s\n"
                                    "web\n"
                                    "    listen = 127.0.0.1:8081\n";

static void
s_on_sighup (int signal)
{
    (void)signal;
    s_reload_asked = 1;
}

static int
s_node (cli_t *cli, int argc, char **argv)
{
    const char *file = NULL, *bus = NULL, *events = NULL;
    bool dev = false;
    for (int i = 1; i < argc;) {
        if (streq (argv[i], "--dev"))
            dev = true, i++;
        else if ((streq (argv[i], "-c") || streq (argv[i], "--config")) &&
                 i + 1 < argc)
            file = argv[i + 1], i += 2;
        else if (streq (argv[i], "--events") && i + 1 < argc)
            events = argv[i + 1], i += 2;
        else if (streq (argv[i], "--bus") && i + 1 < argc)
            bus = argv[i + 1], i += 2;
        else if (streq (argv[i], "-h") || streq (argv[i], "--help"))
            cli->help = true, i++;
        else
            return cli_usage_error ("node", "unexpected argument '%s'",
                                    argv[i]);
    }
    if (cli->help) {
        printf ("usage: keel node --dev [--bus EP] [--events EP]\n"
                "       keel node -c FILE\n\n"
                "Run a node. --dev runs every actor in one process on inproc,\n"
                "with the front door on %s and events on %s\n"
                "(override with --bus/--events). -c runs what FILE lists.\n"
                "Stops cleanly on SIGINT or SIGTERM.\n\nActors:\n",
                CLI_DEFAULT_BUS, CLI_DEFAULT_EVENTS);
        for (const keel_actor_def_t *def = cli_actors; def->name; def++)
            printf ("  %-10s %s\n", def->name, def->summary);
        return CLI_OK;
    }
    if (dev == (file != NULL))
        return cli_usage_error ("node", "give either --dev or -c FILE");
    if (file && (bus || events))
        return cli_usage_error ("node", "--bus/--events go in the config file");
    if ((bus && !keel_endpoint_valid (bus)) ||
        (events && !keel_endpoint_valid (events)))
        return cli_usage_error ("node", "invalid endpoint");

    char *error = NULL;
    keel_config_t *config = NULL;
    if (dev) {
        char *text =
            keel_node_dev_config (cli_actors, bus ? bus : CLI_DEFAULT_BUS,
                                  events ? events : CLI_DEFAULT_EVENTS);
        char *full = text ? zsys_sprintf ("%s%s", text, s_dev_settings) : NULL;
        config = keel_config_load_string (full, "<dev>", &error);
        zstr_free (&text);
        zstr_free (&full);
    } else
        config = keel_config_load (file, &error);
    if (!config) {
        fprintf (stderr, "keel: %s\n", error);
        free (error);
        return CLI_ERROR;
    }
    keel_node_args_t args = {config, cli_actors};
    zactor_t *node = zactor_new (keel_node_actor, &args);
    error = node ? keel_actor_status (node) : strdup ("cannot start");
    if (error) {
        fprintf (stderr, "keel: %s\n", error);
        free (error);
        zactor_destroy (&node);
        keel_config_destroy (&config);
        return CLI_ERROR;
    }
    //  Say where everything is (from the node itself).
    const char *name = NULL, *bus_ep = NULL, *events_ep = NULL;
    keel_config_string (config, "node/name", "keel", &name);
    keel_config_string (config, "node/bus", NULL, &bus_ep);
    keel_config_string (config, "node/events", NULL, &events_ep);
    printf ("keel node '%s' running (pid %d)\n", name, (int)getpid ());
    printf ("  bus     %s\n", bus_ep ? bus_ep : "(inproc only)");
    printf ("  events  %s\n", events_ep ? events_ep : "(inproc only)");
    printf ("  actors ");
    zconfig_t *list = zconfig_locate (keel_config_root (config), "node/actors");
    for (zconfig_t *item = list ? zconfig_child (list) : NULL; item;
         item = zconfig_next (item))
        printf (" %s", zconfig_name (item));
    printf ("\n");
    const char *listen = NULL;
    if (zconfig_locate (keel_config_root (config), "node/actors/gateway") &&
        keel_config_string (config, "gateway/listen", "127.0.0.1:8080",
                            &listen) == 0)
        printf ("  http    http://%s\n", listen);
    if (dev)
        printf ("Try, in another terminal:\n"
                "  TOKEN=$(%s token --sub me --scope users:read "
                "--scope orders:write)\n"
                "  curl -H \"Authorization: Bearer $TOKEN\" "
                "http://%s/users/1\n"
                "  curl http://%s/products\n"
                "  curl -H \"Authorization: Bearer $TOKEN\" "
                "-H 'Prefer: wait=5' \\\n"
                "       -d '{\"item\":\"apple\",\"qty\":2,"
                "\"amount\":30}' http://%s/orders\n"
                "  %s saga list\n",
                s_program, listen, listen, listen, s_program);
    fflush (stdout);

    //  SIGINT/SIGTERM set zsys_interrupted (CZMQ's handler) in whichever
    //  thread gets them, so look at the flag at least every 100 ms.
    //  SIGHUP asks the actors to reload their settings (the gateway its
    //  routes) from the config file.
    struct sigaction hup = {.sa_handler = s_on_sighup};
    sigemptyset (&hup.sa_mask);
    sigaction (SIGHUP, &hup, NULL);
    zpoller_t *poller = zpoller_new (node, NULL);
    while (!zsys_interrupted) {
        if (zpoller_wait (poller, 100) == node)
            break; //  the node stopped by itself
        if (s_reload_asked) {
            s_reload_asked = 0;
            zstr_send (node, "RELOAD");
        }
    }
    zpoller_destroy (&poller);
    zactor_destroy (&node);
    printf ("keel node '%s' stopped\n", name);
    keel_config_destroy (&config);
    return CLI_OK;
}

// ---------------------------------------------------------------------------
//  Verbs that talk to a node

//  Parse common options and up to `max_positional` positionals into `pos`.
static int
s_parse (cli_t *cli, int argc, char **argv, const char **pos,
         int max_positional, int *count_p)
{
    int count = 0;
    for (int i = 1; i < argc;) {
        int rc = cli_common_option (cli, argc, argv, &i);
        if (rc == -1)
            return CLI_USAGE;
        if (rc == 1)
            continue;
        if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error (argv[0], "unknown option '%s'", argv[i]);
        if (count == max_positional)
            return cli_usage_error (argv[0], "unexpected argument '%s'",
                                    argv[i]);
        pos[count++] = argv[i++];
    }
    *count_p = count;
    return CLI_OK;
}

static const char *s_common_help =
    "Options: --bus EP (or KEEL_BUS; default " CLI_DEFAULT_BUS "),\n"
    "         --timeout MS (default 3000), --json, --help\n"
    "CURVE: KEEL_CERT=FILE (a certificate from `keel keygen`) for a bus\n"
    "       written tcp://HOST:PORT;curve=KEY\n";

static int
s_ping (cli_t *cli, int argc, char **argv)
{
    const char *service = NULL;
    int count;
    int rc = s_parse (cli, argc, argv, &service, 1, &count);
    if (rc != CLI_OK)
        return rc;
    if (cli->help) {
        printf ("usage: keel ping [SERVICE]\n\nRound trip to the node, or to "
                "SERVICE through it.\n%s",
                s_common_help);
        return CLI_OK;
    }
    Keel__Pong *pong = NULL;
    int64_t start = zclock_usecs ();
    rc = cli_call (cli, service, "keel.ping", NULL, true,
                   &keel__pong__descriptor, (ProtobufCMessage **)&pong);
    if (rc != CLI_OK)
        return rc;
    double ms = (zclock_usecs () - start) / 1000.0;
    if (cli->json)
        cli_print_json (&pong->base);
    else
        printf ("pong from %s in %.2f ms (up %" PRIu64 " s)\n", pong->name, ms,
                pong->uptime_ms / 1000);
    protobuf_c_message_free_unpacked (&pong->base, NULL);
    return CLI_OK;
}

static int
s_info (cli_t *cli, int argc, char **argv)
{
    const char *unused;
    int count;
    int rc = s_parse (cli, argc, argv, &unused, 0, &count);
    if (rc != CLI_OK)
        return rc;
    if (cli->help) {
        printf ("usage: keel info\n\nWhat the node runs and where.\n%s",
                s_common_help);
        return CLI_OK;
    }
    Keel__NodeInfo *info = NULL;
    rc = cli_call (cli, NULL, "node.info", NULL, true,
                   &keel__node_info__descriptor, (ProtobufCMessage **)&info);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_print_json (&info->base);
    else {
        printf ("node    %s (up %" PRIu64 " s)\nbus     %s\nevents  %s\n",
                info->name, info->uptime_ms / 1000, info->bus, info->events);
        printf ("%-12s %-32s %s\n", "ACTOR", "ENDPOINT", "EVENTS");
        for (size_t i = 0; i < info->n_actors; i++)
            printf ("%-12s %-32s %s\n", info->actors[i]->name,
                    info->actors[i]->endpoint, info->actors[i]->events);
    }
    protobuf_c_message_free_unpacked (&info->base, NULL);
    return CLI_OK;
}

static int
s_stats (cli_t *cli, int argc, char **argv)
{
    const char *service = NULL;
    int count;
    int rc = s_parse (cli, argc, argv, &service, 1, &count);
    if (rc != CLI_OK)
        return rc;
    if (cli->help) {
        printf ("usage: keel stats [SERVICE]\n\nRequest counters of the node's "
                "front door, or of SERVICE.\n%s",
                s_common_help);
        return CLI_OK;
    }
    Keel__Stats *stats = NULL;
    rc = cli_call (cli, service, "keel.stats", NULL, true,
                   &keel__stats__descriptor, (ProtobufCMessage **)&stats);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_print_json (&stats->base);
    else {
        printf ("%s\n", stats->name);
        for (size_t i = 0; i < stats->n_counters; i++)
            printf ("  %-16s %" PRIu64 "\n", stats->counters[i]->name,
                    stats->counters[i]->value);
    }
    protobuf_c_message_free_unpacked (&stats->base, NULL);
    return CLI_OK;
}

static int
s_echo (cli_t *cli, int argc, char **argv)
{
    bool fail = false;
    const char *text = NULL;
    for (int i = 1; i < argc;) {
        int rc = cli_common_option (cli, argc, argv, &i);
        if (rc == -1)
            return CLI_USAGE;
        if (rc == 1)
            continue;
        if (streq (argv[i], "--fail"))
            fail = true, i++;
        else if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error ("echo", "unknown option '%s'", argv[i]);
        else if (text)
            return cli_usage_error ("echo", "one TEXT only (quote it)");
        else
            text = argv[i++];
    }
    if (cli->help) {
        printf ("usage: keel echo TEXT [--fail]\n\nCall the echo demo service "
                "(echo.say); --fail makes it answer an error.\n%s",
                s_common_help);
        return CLI_OK;
    }
    if (!text)
        return cli_usage_error ("echo", "TEXT is missing");
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = (char *)text;
    req.fail = fail;
    Keel__EchoReply *reply = NULL;
    int rc =
        cli_call (cli, "echo", "echo.say", &req.base, false,
                  &keel__echo_reply__descriptor, (ProtobufCMessage **)&reply);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_print_json (&reply->base);
    else
        printf ("%s  (from %s, #%" PRIu64 ")\n", reply->text, reply->instance,
                reply->count);
    protobuf_c_message_free_unpacked (&reply->base, NULL);
    return CLI_OK;
}

//  `first`: the first event seen; a late joiner always misses earlier ones,
//  so only later gaps are worth showing.
static void
s_print_event (cli_t *cli, const void *raw, bool first, void *arg)
{
    (void)arg;
    const keel_event_t *event = (const keel_event_t *)raw;
    const Keel__Envelope *env = event->envelope;
    bool gap = event->gap && !first;
    const ProtobufCMessageDescriptor *desc = cli_payload_type (env->type);
    ProtobufCMessage *payload =
        desc ? keel_codec_payload (env, desc, NULL) : NULL;
    char *body = payload ? keel_json_encode (payload, 0) : NULL;
    if (cli->json) {
        json_t *out = json_pack ("{s:s, s:s, s:I, s:b}", "type", env->type,
                                 "sender", env->sender, "sequence",
                                 (json_int_t)env->sequence, "gap", gap);
        json_t *parsed = body ? json_loads (body, 0, NULL) : NULL;
        if (parsed)
            json_object_set_new (out, "payload", parsed);
        else
            json_object_set_new (out, "payload_bytes",
                                 json_integer ((json_int_t)env->payload.len));
        char *text = json_dumps (out, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf ("%s\n", text ? text : "{}");
        free (text);
        json_decref (out);
    } else
        printf ("%-8" PRIu64 " %-20s %-12s %s%s\n", env->sequence, env->type,
                env->sender, body ? body : "", gap ? "  (missed events)" : "");
    fflush (stdout);
    free (body);
    if (payload)
        protobuf_c_message_free_unpacked (payload, NULL);
}

static int
s_watch (cli_t *cli, int argc, char **argv)
{
    const char *prefix = "";
    long limit = 0;
    bool have_prefix = false;
    for (int i = 1; i < argc;) {
        int rc = cli_common_option (cli, argc, argv, &i);
        if (rc == -1)
            return CLI_USAGE;
        if (rc == 1)
            continue;
        if (streq (argv[i], "--count") && i + 1 < argc) {
            char *end;
            limit = strtol (argv[i + 1], &end, 10);
            if (*end || limit <= 0)
                return cli_usage_error ("watch", "--count wants a number > 0");
            i += 2;
        } else if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error ("watch", "unknown option '%s'", argv[i]);
        else if (have_prefix)
            return cli_usage_error ("watch", "one PREFIX only");
        else
            prefix = argv[i++], have_prefix = true;
    }
    if (cli->help) {
        printf ("usage: keel watch [PREFIX] [--count N]\n\nPrint the node's "
                "events whose type starts with PREFIX, as they\narrive, until "
                "interrupted (or after N events).\n%s",
                s_common_help);
        return CLI_OK;
    }
    return cli_watch (cli, prefix, limit, s_print_event, NULL);
}

// ---------------------------------------------------------------------------

static const cli_verb_t s_verbs[] = {
    {"node", s_node, "run a node (--dev: everything in one process)"},
    {"ping", s_ping, "round trip to the node or a service"},
    {"info", s_info, "what the node runs and where"},
    {"stats", s_stats, "request counters of the node or a service"},
    {"echo", s_echo, "call the echo demo service"},
    {"registry", cli_registry, "register, list, watch service instances"},
    {"breaker", cli_breaker, "list, show, force, reset, watch breakers"},
    {"gateway", cli_gateway, "list the gateway's routes, reload them"},
    {"saga", cli_saga, "start, follow, cancel, resolve sagas"},
    {"token", cli_token, "mint a JWT with the dev key, for trying routes"},
    {"keygen", cli_keygen, "make a CURVE keypair (a node's certificate)"},
    {"watch", s_watch, "print events as they arrive"},
    {NULL, NULL, NULL},
};

static int
s_usage (FILE *out)
{
    fprintf (out, "usage: keel VERB [OPTIONS]\n\nVerbs:\n");
    for (const cli_verb_t *verb = s_verbs; verb->name; verb++)
        fprintf (out, "  %-8s %s\n", verb->name, verb->summary);
    fprintf (out,
             "\n%sExit codes: 0 ok, 1 error reply, 2 usage, "
             "3 unreachable or timed out.\n'keel VERB --help' for more.\n",
             s_common_help);
    return out == stdout ? CLI_OK : CLI_USAGE;
}

int
main (int argc, char **argv)
{
    //  Logs go to stderr; stdout is for results.
    zsys_set_logstream (stderr);
    s_program = argv[0];
    cli_t cli = {0};
    cli.bus = getenv ("KEEL_BUS") ? getenv ("KEEL_BUS") : CLI_DEFAULT_BUS;
    cli.timeout_ms = 3000;
    if (argc < 2)
        return s_usage (stderr);
    if (streq (argv[1], "-h") || streq (argv[1], "--help") ||
        streq (argv[1], "help"))
        return s_usage (stdout);
    if (streq (argv[1], "--version") || streq (argv[1], "version")) {
        printf ("keel 0.1.0\n");
        return CLI_OK;
    }
    if (!keel_endpoint_valid (cli.bus)) {
        fprintf (stderr, "keel: KEEL_BUS: invalid endpoint '%s'\n", cli.bus);
        return CLI_USAGE;
    }
    //  A client's keypair, for nodes that require CURVE (a node takes its
    //  own from its config).
    const char *cert = getenv ("KEEL_CERT");
    if (cert && *cert && !streq (argv[1], "node")) {
        char *error = NULL;
        if (keel_security_set (cert, NULL, false, &error) == -1) {
            fprintf (stderr, "keel: KEEL_CERT: %s\n", error);
            free (error);
            return CLI_USAGE;
        }
    }
    for (const cli_verb_t *verb = s_verbs; verb->name; verb++)
        if (streq (verb->name, argv[1])) {
            int rc = verb->fn (&cli, argc - 1, argv + 1);
            keel_security_reset ();
            return rc;
        }
    keel_security_reset ();
    fprintf (stderr, "keel: unknown verb '%s'\n\n", argv[1]);
    return s_usage (stderr);
}
