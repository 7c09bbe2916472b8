/*  saga.c - `keel saga ...`: start, status, list, cancel, resolve, watch,
    definitions. */
#include "cli.h"
#include "keel_events.h"
#include "saga.pb-c.h"
#include "saga_machine.h"

#include <jansson.h>
#include <string.h>

static const char *s_help =
    "usage: keel saga start NAME [--input JSON] [--key K] [--version N]\n"
    "                       [--wait]\n"
    "       keel saga status ID\n"
    "       keel saga list [--state S] [--limit N]\n"
    "       keel saga cancel ID\n"
    "       keel saga resolve ID --retry | --skip\n"
    "       keel saga watch [--count N]\n"
    "       keel saga definitions\n\n"
    "States: running, compensating, completed, compensated, stuck.\n"
    "Options: --bus EP (or KEEL_BUS), --timeout MS, --json, --help\n";

typedef struct {
    const char *pos;   //  the positional (NAME or ID)
    const char *input; //  --input
    const char *key;   //  --key
    const char *state; //  --state
    long version;      //  --version
    long limit;        //  --limit
    long count;        //  --count
    bool wait;         //  --wait
    bool retry, skip;  //  resolve
} s_opts_t;

static int
s_number (const char *verb, const char *text, long *value_p)
{
    char *end;
    long value = strtol (text, &end, 10);
    if (*end || value <= 0)
        return cli_usage_error (verb, "expected a number > 0, got '%s'", text);
    *value_p = value;
    return CLI_OK;
}

static int
s_parse (cli_t *cli, int argc, char **argv, s_opts_t *o)
{
    memset (o, 0, sizeof *o);
    for (int i = 1; i < argc;) {
        int common = cli_common_option (cli, argc, argv, &i);
        if (common == -1)
            return CLI_USAGE;
        if (common == 1)
            continue;
        const char *arg = argv[i];
        bool has_value = i + 1 < argc;
        int rc = CLI_OK;
        if (streq (arg, "--input") && has_value)
            o->input = argv[i + 1], i += 2;
        else if (streq (arg, "--key") && has_value)
            o->key = argv[i + 1], i += 2;
        else if (streq (arg, "--state") && has_value)
            o->state = argv[i + 1], i += 2;
        else if (streq (arg, "--version") && has_value)
            rc = s_number ("saga", argv[i + 1], &o->version), i += 2;
        else if (streq (arg, "--limit") && has_value)
            rc = s_number ("saga", argv[i + 1], &o->limit), i += 2;
        else if (streq (arg, "--count") && has_value)
            rc = s_number ("saga", argv[i + 1], &o->count), i += 2;
        else if (streq (arg, "--wait"))
            o->wait = true, i++;
        else if (streq (arg, "--retry"))
            o->retry = true, i++;
        else if (streq (arg, "--skip"))
            o->skip = true, i++;
        else if (arg[0] == '-' || o->pos)
            return cli_usage_error ("saga", "unexpected '%s'", arg);
        else
            o->pos = argv[i++];
        if (rc != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

static void
s_print_status (const Keel__SagaStatus *st)
{
    printf ("saga %s  %s v%u  %s%s\n", st->id, st->definition, st->version,
            keel_saga_state_name ((int)st->state),
            st->cancel_requested ? "  (cancel requested)" : "");
    if (*st->last_error)
        printf ("  last error: %s\n", st->last_error);
    for (size_t i = 0; i < st->n_steps; i++) {
        const Keel__StepStatus *step = st->steps[i];
        printf ("  %-20s %-12s attempts %u", step->name,
                keel_saga_step_state_name ((int)step->state), step->attempts);
        if (step->compensation_attempts)
            printf (", compensations %u", step->compensation_attempts);
        if (*step->last_error)
            printf ("  (%s)", step->last_error);
        printf ("\n");
    }
}

//  Call `type` with `payload`, print the SagaStatus reply. Exit code.
static int
s_status_call (cli_t *cli, const char *type, const ProtobufCMessage *payload,
               bool idempotent)
{
    Keel__SagaStatus *st = NULL;
    int rc =
        cli_call (cli, "saga", type, payload, idempotent,
                  &keel__saga_status__descriptor, (ProtobufCMessage **)&st);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_print_json (&st->base);
    else
        s_print_status (st);
    //  A saga that ended badly is an error for scripts that waited on it.
    bool bad = st->state == KEEL__SAGA_STATE__SAGA_STUCK ||
               (streq (type, "saga.start") &&
                st->state == KEEL__SAGA_STATE__SAGA_COMPENSATED);
    protobuf_c_message_free_unpacked (&st->base, NULL);
    return bad ? CLI_ERROR : CLI_OK;
}

static int
s_start (cli_t *cli, int argc, char **argv)
{
    s_opts_t o;
    int rc = s_parse (cli, argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    if (!o.pos)
        return cli_usage_error ("saga", "start needs a saga NAME");
    if (o.input) {
        json_error_t error;
        json_t *doc = json_loads (o.input, JSON_DECODE_ANY, &error);
        if (!doc)
            return cli_usage_error ("saga", "--input is not JSON: %s",
                                    error.text);
        json_decref (doc);
    }
    Keel__StartRequest req = KEEL__START_REQUEST__INIT;
    req.definition = (char *)o.pos;
    req.version = (uint32_t)o.version;
    req.input.data = (uint8_t *)(o.input ? o.input : "{}");
    req.input.len = strlen ((const char *)req.input.data);
    req.idempotency_key = (char *)(o.key ? o.key : "");
    req.wait = o.wait;
    if (o.wait && cli->timeout_ms > 200)
        req.wait_ms = cli->timeout_ms - 100;
    //  With a key, a start may be sent again safely.
    return s_status_call (cli, "saga.start", &req.base, o.key != NULL);
}

static int
s_by_id (cli_t *cli, int argc, char **argv, const char *type)
{
    s_opts_t o;
    int rc = s_parse (cli, argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    if (!o.pos)
        return cli_usage_error ("saga", "%s needs a saga ID", argv[0]);
    if (streq (type, "saga.resolve")) {
        if (o.retry == o.skip)
            return cli_usage_error ("saga", "resolve needs --retry or --skip");
        Keel__ResolveRequest req = KEEL__RESOLVE_REQUEST__INIT;
        req.id = (char *)o.pos;
        req.action = o.skip ? KEEL__RESOLVE_REQUEST__ACTION__SKIP
                            : KEEL__RESOLVE_REQUEST__ACTION__RETRY;
        return s_status_call (cli, type, &req.base, false);
    }
    Keel__SagaRef ref = KEEL__SAGA_REF__INIT;
    ref.id = (char *)o.pos;
    return s_status_call (cli, type, &ref.base, true);
}

static int
s_list (cli_t *cli, int argc, char **argv)
{
    s_opts_t o;
    int rc = s_parse (cli, argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    if (o.pos)
        return cli_usage_error ("saga", "unexpected '%s'", o.pos);
    Keel__ListSagasRequest req = KEEL__LIST_SAGAS_REQUEST__INIT;
    req.any_state = o.state == NULL;
    if (o.state) {
        int state = keel_saga_state_parse (o.state);
        if (state < 0)
            return cli_usage_error ("saga", "unknown state '%s'", o.state);
        req.state = (Keel__SagaState)state;
    }
    req.limit = (uint32_t)o.limit;
    Keel__SagaList *list = NULL;
    rc = cli_call (cli, "saga", "saga.list", &req.base, true,
                   &keel__saga_list__descriptor, (ProtobufCMessage **)&list);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_print_json (&list->base);
    else {
        printf ("%-22s %-20s %-13s %s\n", "ID", "SAGA", "STATE", "LAST ERROR");
        for (size_t i = 0; i < list->n_sagas; i++) {
            const Keel__SagaStatus *st = list->sagas[i];
            char name[64];
            snprintf (name, sizeof name, "%s v%u", st->definition, st->version);
            printf ("%-22s %-20s %-13s %s\n", st->id, name,
                    keel_saga_state_name ((int)st->state), st->last_error);
        }
    }
    protobuf_c_message_free_unpacked (&list->base, NULL);
    return CLI_OK;
}

static int
s_definitions (cli_t *cli, int argc, char **argv)
{
    s_opts_t o;
    int rc = s_parse (cli, argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    Keel__DefinitionList *list = NULL;
    rc = cli_call (cli, "saga", "saga.definitions", NULL, true,
                   &keel__definition_list__descriptor,
                   (ProtobufCMessage **)&list);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_print_json (&list->base);
    else
        for (size_t i = 0; i < list->n_definitions; i++) {
            const Keel__SagaDefinition *def = list->definitions[i];
            printf ("%s v%u:", def->name, def->version);
            for (size_t s = 0; s < def->n_steps; s++)
                printf (" %s%s(%s.%s)", s ? "-> " : "", def->steps[s]->name,
                        def->steps[s]->service, def->steps[s]->action);
            printf ("\n");
        }
    protobuf_c_message_free_unpacked (&list->base, NULL);
    return CLI_OK;
}

static void
s_print_event (cli_t *cli, const void *raw, bool first, void *arg)
{
    (void)first;
    (void)arg;
    const Keel__Envelope *env = ((const keel_event_t *)raw)->envelope;
    Keel__SagaEvent *ev = (Keel__SagaEvent *)keel_codec_payload (
        env, &keel__saga_event__descriptor, NULL);
    if (!ev)
        return;
    if (cli->json)
        cli_print_json (&ev->base);
    else
        printf ("%-18s %s %s%s%s%s%s\n", env->type, ev->id, ev->definition,
                *ev->step ? " step " : "", ev->step, *ev->error ? "  " : "",
                ev->error);
    protobuf_c_message_free_unpacked (&ev->base, NULL);
}

static int
s_watch (cli_t *cli, int argc, char **argv)
{
    s_opts_t o;
    int rc = s_parse (cli, argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    return cli_watch (cli, "saga.", o.count, s_print_event, NULL);
}

int
cli_saga (cli_t *cli, int argc, char **argv)
{
    int help = cli_group_help (argc, argv, s_help);
    if (help != -1)
        return help;
    const char *verb = argv[1];
    if (streq (verb, "start"))
        return s_start (cli, argc - 1, argv + 1);
    if (streq (verb, "status"))
        return s_by_id (cli, argc - 1, argv + 1, "saga.status");
    if (streq (verb, "cancel"))
        return s_by_id (cli, argc - 1, argv + 1, "saga.cancel");
    if (streq (verb, "resolve"))
        return s_by_id (cli, argc - 1, argv + 1, "saga.resolve");
    if (streq (verb, "list"))
        return s_list (cli, argc - 1, argv + 1);
    if (streq (verb, "watch"))
        return s_watch (cli, argc - 1, argv + 1);
    if (streq (verb, "definitions"))
        return s_definitions (cli, argc - 1, argv + 1);
    return cli_usage_error ("saga", "unknown verb '%s'", verb);
}
