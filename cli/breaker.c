/*  breaker.c - `keel breaker ...`: list, show, force-open, force-close,
    disable, reset, watch. */
#include "cli.h"
#include "breaker.h"
#include "breaker.pb-c.h"
#include "keel_events.h"
#include "keel_json.h"
#include "node.pb-c.h"

#include <string.h>

static const char *s_help =
    "usage: keel breaker list\n"
    "       keel breaker show KEY\n"
    "       keel breaker force-open KEY | force-close KEY | disable KEY |\n"
    "                    reset KEY\n"
    "       keel breaker watch [--count N]\n\n"
    "Options: --bus EP (or KEEL_BUS), --timeout MS, --json, --help\n";

static void
s_rate (char *out, size_t size, double rate)
{
    if (rate < 0)
        snprintf (out, size, "-");
    else
        snprintf (out, size, "%.1f%%", rate);
}

static void
s_print_row (const Keel__BreakerInfo *info, int width)
{
    char failure[16], slow[16];
    s_rate (failure, sizeof failure, info->failure_rate);
    s_rate (slow, sizeof slow, info->slow_rate);
    printf ("%-*s %-12s %8s %8s %8" PRIu64 " %8" PRIu64 "s\n", width, info->key,
            keel_breaker_state_name ((int)info->state), failure, slow,
            info->calls, info->time_in_state_ms / 1000);
}

//  Parse common options and one optional positional into *key_p.
static int
s_parse (cli_t *cli, int argc, char **argv, const char **key_p, long *count_p)
{
    for (int i = 1; i < argc;) {
        int common = cli_common_option (cli, argc, argv, &i);
        if (common == -1)
            return CLI_USAGE;
        if (common == 1)
            continue;
        if (count_p && streq (argv[i], "--count") && i + 1 < argc) {
            char *end;
            *count_p = strtol (argv[i + 1], &end, 10);
            if (*end || *count_p <= 0)
                return cli_usage_error ("breaker", "--count wants N > 0");
            i += 2;
        } else if (argv[i][0] == '-' || !key_p || *key_p)
            return cli_usage_error ("breaker", "unexpected '%s'", argv[i]);
        else
            *key_p = argv[i++];
    }
    return CLI_OK;
}

static int
s_list (cli_t *cli, int argc, char **argv)
{
    int rc = s_parse (cli, argc, argv, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    Keel__BreakerList *list = NULL;
    rc = cli_call (cli, "breaker", "breaker.list", NULL, true,
                   &keel__breaker_list__descriptor, (ProtobufCMessage **)&list);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_print_json (&list->base);
    else {
        //  The key column as wide as the widest key (at least 20).
        int width = 20;
        for (size_t i = 0; i < list->n_breakers; i++)
            if ((int)strlen (list->breakers[i]->key) > width)
                width = (int)strlen (list->breakers[i]->key);
        printf ("%-*s %-12s %8s %8s %8s %9s\n", width, "KEY", "STATE",
                "FAILURES", "SLOW", "CALLS", "IN STATE");
        for (size_t i = 0; i < list->n_breakers; i++)
            s_print_row (list->breakers[i], width);
        printf ("(%zu breaker%s)\n", list->n_breakers,
                list->n_breakers == 1 ? "" : "s");
    }
    protobuf_c_message_free_unpacked (&list->base, NULL);
    return CLI_OK;
}

static void
s_print_info (cli_t *cli, Keel__BreakerInfo *info)
{
    char *text =
        keel_json_encode (&info->base, cli->json ? 0 : KEEL_JSON_PRETTY);
    printf ("%s\n", text ? text : "{}");
    free (text);
}

static int
s_show (cli_t *cli, int argc, char **argv)
{
    const char *key = NULL;
    int rc = s_parse (cli, argc, argv, &key, NULL);
    if (rc != CLI_OK)
        return rc;
    if (!key)
        return cli_usage_error ("breaker", "show needs a KEY");
    Keel__BreakerKey req = KEEL__BREAKER_KEY__INIT;
    req.key = (char *)key;
    Keel__BreakerInfo *info = NULL;
    rc = cli_call (cli, "breaker", "breaker.get", &req.base, true,
                   &keel__breaker_info__descriptor, (ProtobufCMessage **)&info);
    if (rc != CLI_OK)
        return rc;
    s_print_info (cli, info);
    protobuf_c_message_free_unpacked (&info->base, NULL);
    return CLI_OK;
}

static int
s_control (cli_t *cli, int argc, char **argv,
           Keel__ControlRequest__Action action)
{
    const char *key = NULL;
    int rc = s_parse (cli, argc, argv, &key, NULL);
    if (rc != CLI_OK)
        return rc;
    if (!key)
        return cli_usage_error ("breaker", "%s needs a KEY", argv[0]);
    Keel__ControlRequest req = KEEL__CONTROL_REQUEST__INIT;
    req.key = (char *)key;
    req.action = action;
    Keel__BreakerInfo *info = NULL;
    rc = cli_call (cli, "breaker", "breaker.control", &req.base, true,
                   &keel__breaker_info__descriptor, (ProtobufCMessage **)&info);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_print_json (&info->base);
    else
        printf ("%s is now %s\n", info->key,
                keel_breaker_state_name ((int)info->state));
    protobuf_c_message_free_unpacked (&info->base, NULL);
    return CLI_OK;
}

static void
s_print_transition (cli_t *cli, const void *raw, bool first, void *arg)
{
    (void)first;
    (void)arg;
    const Keel__Envelope *env = ((const keel_event_t *)raw)->envelope;
    Keel__BreakerTransition *change =
        (Keel__BreakerTransition *)keel_codec_payload (
            env, &keel__breaker_transition__descriptor, NULL);
    if (!change)
        return;
    if (cli->json)
        cli_print_json (&change->base);
    else
        printf ("%-28s %-12s -> %-12s %s\n", change->key,
                keel_breaker_state_name ((int)change->from),
                keel_breaker_state_name ((int)change->to), change->reason);
    protobuf_c_message_free_unpacked (&change->base, NULL);
}

static int
s_watch (cli_t *cli, int argc, char **argv)
{
    long limit = 0;
    int rc = s_parse (cli, argc, argv, NULL, &limit);
    if (rc != CLI_OK)
        return rc;
    return cli_watch (cli, "breaker.transition", limit, s_print_transition,
                      NULL);
}

int
cli_breaker (cli_t *cli, int argc, char **argv)
{
    int help = cli_group_help (argc, argv, s_help);
    if (help != -1)
        return help;
    const char *verb = argv[1];
    if (streq (verb, "list"))
        return s_list (cli, argc - 1, argv + 1);
    if (streq (verb, "show"))
        return s_show (cli, argc - 1, argv + 1);
    if (streq (verb, "force-open"))
        return s_control (cli, argc - 1, argv + 1,
                          KEEL__CONTROL_REQUEST__ACTION__FORCE_OPEN);
    if (streq (verb, "force-close"))
        return s_control (cli, argc - 1, argv + 1,
                          KEEL__CONTROL_REQUEST__ACTION__FORCE_CLOSE);
    if (streq (verb, "disable"))
        return s_control (cli, argc - 1, argv + 1,
                          KEEL__CONTROL_REQUEST__ACTION__DISABLE);
    if (streq (verb, "reset"))
        return s_control (cli, argc - 1, argv + 1,
                          KEEL__CONTROL_REQUEST__ACTION__RESET);
    if (streq (verb, "watch"))
        return s_watch (cli, argc - 1, argv + 1);
    return cli_usage_error ("breaker", "unknown verb '%s'", verb);
}
