/*  cli.c - helpers shared by every `keel` verb. See cli.h. */
#include "cli.h"
#include "keel_events.h"
#include "keel_json.h"
#include "echo.pb-c.h"
#include "echo_actor.h"
#include "registry_actor.h"
#include "breaker_actor.h"
#include "gateway_actor.h"
#include "saga_actor.h"
#include "shop_actor.h"
#include "users_actor.h"
#include "web_actor.h"
#include "breaker.pb-c.h"
#include "registry.pb-c.h"
#include "node.pb-c.h"
#include "saga.pb-c.h"

#include <stdarg.h>
#include <string.h>

const keel_actor_def_t cli_actors[] = {
    {"registry", keel_registry_actor,
     "service registry: registration, discovery, health, watch"},
    {"breaker", keel_breaker_actor,
     "circuit breakers for the cluster: reports in, transitions out"},
    {"echo", keel_echo_actor, "demo service: echo.say, echo.said events"},
    {"users", keel_users_actor,
     "demo service: users over the bus (users.http: REST, JSON)"},
    {"web", keel_web_actor,
     "demo HTTP service on :8081 (/products, /health), registers itself"},
    {"saga", keel_saga_actor,
     "saga coordinator: durable orchestration with compensation"},
    {"shop", keel_shop_actor,
     "demo shop: orders, inventory, payments (saga participants)"},
    {"gateway", keel_gateway_actor,
     "API gateway: HTTP routes to bus and HTTP services, JWT, breakers"},
    {NULL, NULL, NULL},
};

int
cli_common_option (cli_t *cli, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    if (streq (arg, "--json")) {
        cli->json = true;
        (*i)++;
        return 1;
    }
    if (streq (arg, "-h") || streq (arg, "--help")) {
        cli->help = true;
        (*i)++;
        return 1;
    }
    if (streq (arg, "--bus") || streq (arg, "--timeout")) {
        if (*i + 1 >= argc) {
            fprintf (stderr, "keel: %s needs a value\n", arg);
            return -1;
        }
        const char *value = argv[*i + 1];
        if (streq (arg, "--bus")) {
            if (!keel_endpoint_valid (value)) {
                fprintf (stderr, "keel: --bus: invalid endpoint '%s'\n", value);
                return -1;
            }
            cli->bus = value;
        } else {
            char *end = NULL;
            long ms = strtol (value, &end, 10);
            if (!*value || *end || ms <= 0 || ms > 3600000) {
                fprintf (stderr,
                         "keel: --timeout: expected milliseconds in "
                         "1..3600000, got '%s'\n",
                         value);
                return -1;
            }
            cli->timeout_ms = (uint32_t)ms;
        }
        *i += 2;
        return 1;
    }
    return 0;
}

int
cli_usage_error (const char *verb, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "keel %s: ", verb);
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n(see 'keel %s --help')\n", verb);
    va_end (args);
    return CLI_USAGE;
}

int
cli_group_help (int argc, char **argv, const char *help)
{
    bool asked = argc < 2;
    for (int i = 1; i < argc && !asked; i++)
        asked = streq (argv[i], "--help") || streq (argv[i], "-h");
    if (!asked)
        return -1;
    printf ("%s", help);
    return argc < 2 ? CLI_USAGE : CLI_OK;
}

int
cli_exit_code (int code)
{
    if (code == KEEL_OK)
        return CLI_OK;
    if (code == KEEL_ERR_TIMEOUT || code == KEEL_ERR_UNAVAILABLE)
        return CLI_UNREACHABLE;
    return CLI_ERROR;
}

void
cli_print_json (const ProtobufCMessage *msg)
{
    char *text = keel_json_encode (msg, 0);
    printf ("%s\n", text ? text : "{}");
    free (text);
}

int
cli_call (cli_t *cli, const char *service, const char *type,
          const ProtobufCMessage *payload, bool idempotent,
          const ProtobufCMessageDescriptor *reply_desc,
          ProtobufCMessage **reply_p)
{
    keel_client_t *client = keel_client_new ("keel-cli", cli->bus, service);
    if (!client) {
        fprintf (stderr, "keel: cannot reach %s\n", cli->bus);
        return CLI_UNREACHABLE;
    }
    keel_call_opts_t opts = {.timeout_ms = cli->timeout_ms,
                             .attempt_timeout_ms = cli->timeout_ms / 3 + 1,
                             .idempotent = idempotent};
    char *error = NULL;
    keel_err_t rc = keel_client_call (client, type, payload, &opts, reply_desc,
                                      reply_p, &error);
    keel_client_destroy (&client);
    if (rc == KEEL_OK)
        return CLI_OK;
    if (cli->json) {
        json_t *out = json_pack ("{s:s, s:s, s:s}", "error", keel_errname (rc),
                                 "text", error ? error : "", "bus", cli->bus);
        char *text = json_dumps (out, JSON_COMPACT);
        printf ("%s\n", text ? text : "{}");
        free (text);
        json_decref (out);
    } else if (rc == KEEL_ERR_TIMEOUT)
        fprintf (stderr, "keel: no answer from %s within %u ms (%s)\n",
                 cli->bus, cli->timeout_ms, error ? error : "");
    else
        fprintf (stderr, "keel: %s: %s\n", keel_errname (rc),
                 error ? error : keel_strerror (rc));
    free (error);
    return cli_exit_code (rc);
}

int
cli_watch (cli_t *cli, const char *prefix, long limit, cli_event_fn *fn,
           void *arg)
{
    Keel__NodeInfo *info = NULL;
    int rc =
        cli_call (cli, NULL, "node.info", NULL, true,
                  &keel__node_info__descriptor, (ProtobufCMessage **)&info);
    if (rc != CLI_OK)
        return rc;
    if (!*info->events) {
        fprintf (stderr, "keel: node %s publishes no tcp event endpoint\n",
                 info->name);
        protobuf_c_message_free_unpacked (&info->base, NULL);
        return CLI_ERROR;
    }
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_subscriber_connect (sub, info->events);
    keel_subscriber_subscribe (sub, prefix);
    if (!cli->json)
        fprintf (stderr, "watching %s for '%s*' (Ctrl-C to stop)\n",
                 info->events, prefix);
    protobuf_c_message_free_unpacked (&info->base, NULL);
    long seen = 0;
    while (!zsys_interrupted && (limit == 0 || seen < limit)) {
        const keel_event_t *event = keel_subscriber_recv (sub, 200);
        if (event) {
            fn (cli, event, seen == 0, arg);
            fflush (stdout);
            seen++;
        }
    }
    keel_subscriber_destroy (&sub);
    return CLI_OK;
}

const ProtobufCMessageDescriptor *
cli_payload_type (const char *type)
{
    static const struct {
        const char *type;
        const ProtobufCMessageDescriptor *desc;
    } known[] = {
        {"echo.said", &keel__echo_reply__descriptor},
        {"echo.say", &keel__echo_reply__descriptor},
        {"keel.ping", &keel__pong__descriptor},
        {"keel.stats", &keel__stats__descriptor},
        {"node.info", &keel__node_info__descriptor},
        {"registry.registered", &keel__registry_event__descriptor},
        {"registry.updated", &keel__registry_event__descriptor},
        {"registry.deregistered", &keel__registry_event__descriptor},
        {"registry.health", &keel__registry_event__descriptor},
        {"breaker.transition", &keel__breaker_transition__descriptor},
        {"saga.started", &keel__saga_event__descriptor},
        {"saga.step_done", &keel__saga_event__descriptor},
        {"saga.step_failed", &keel__saga_event__descriptor},
        {"saga.compensating", &keel__saga_event__descriptor},
        {"saga.completed", &keel__saga_event__descriptor},
        {"saga.compensated", &keel__saga_event__descriptor},
        {"saga.stuck", &keel__saga_event__descriptor},
        {"saga.resolved", &keel__saga_event__descriptor},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (streq (known[i].type, type))
            return known[i].desc;
    return NULL;
}
