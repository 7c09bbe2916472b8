/*  gateway.c - `keel gateway ...`: routes, reload. */
#include "cli.h"
#include "gateway.pb-c.h"

#include <string.h>

static const char *s_help =
    "usage: keel gateway routes    the routes in use, in priority order\n"
    "       keel gateway reload    read the gateway's config file again\n\n"
    "Options: --bus EP (or KEEL_BUS), --timeout MS, --json, --help\n";

static void
s_print_routes (const Keel__RouteList *list)
{
    printf ("listen %s  generation %" PRIu64 "  source %s\n", list->listen,
            list->generation, list->source);
    printf ("%-16s %-8s %-24s %-16s %-20s %-8s %5s %9s\n", "NAME", "METHODS",
            "PATH", "HOST", "TARGET", "AUTH", "INST", "REQUESTS");
    for (size_t i = 0; i < list->n_routes; i++) {
        const Keel__RouteInfo *r = list->routes[i];
        char methods[80] = "";
        if (r->n_methods >= 9)
            snprintf (methods, sizeof methods, "*");
        else
            for (size_t m = 0; m < r->n_methods; m++) {
                size_t len = strlen (methods);
                snprintf (methods + len, sizeof methods - len, "%s%s",
                          m ? "," : "", r->methods[m]);
            }
        printf ("%-16s %-8s %-24s %-16s %-20s %-8s %5u %9" PRIu64 "\n", r->name,
                methods, r->path, *r->host ? r->host : "*", r->target, r->auth,
                r->instances, r->requests);
    }
}

static int
s_call (cli_t *cli, int argc, char **argv, const char *type)
{
    for (int i = 1; i < argc;) {
        int common = cli_common_option (cli, argc, argv, &i);
        if (common == -1)
            return CLI_USAGE;
        if (common == 0)
            return cli_usage_error ("gateway", "unexpected '%s'", argv[i]);
    }
    Keel__RouteList *list = NULL;
    int rc =
        cli_call (cli, "gateway", type, NULL, streq (type, "gateway.routes"),
                  &keel__route_list__descriptor, (ProtobufCMessage **)&list);
    if (rc != CLI_OK)
        return rc;
    if (cli->json)
        cli_print_json (&list->base);
    else {
        if (streq (type, "gateway.reload"))
            printf ("reloaded %zu routes\n", list->n_routes);
        s_print_routes (list);
    }
    keel__route_list__free_unpacked (list, NULL);
    return CLI_OK;
}

int
cli_gateway (cli_t *cli, int argc, char **argv)
{
    int help = cli_group_help (argc, argv, s_help);
    if (help != -1)
        return help;
    const char *verb = argv[1];
    if (streq (verb, "routes"))
        return s_call (cli, argc - 1, argv + 1, "gateway.routes");
    if (streq (verb, "reload"))
        return s_call (cli, argc - 1, argv + 1, "gateway.reload");
    return cli_usage_error ("gateway", "unknown verb '%s'", verb);
}
