/*  registry.c - `keel registry ...`: register, deregister, get, list,
    watch. */
#include "cli.h"
#include "keel_events.h"
#include "keel_json.h"
#include "node.pb-c.h"
#include "registry.pb-c.h"

#include <string.h>

static const char *s_help =
    "usage: keel registry register NAME --id ID --endpoint EP [--tag T]...\n"
    "                     [--meta K=V]... [--ttl SECONDS] [--weight N]\n"
    "                     [--http-check PATH | --tcp-check | --ping-check]\n"
    "                     [--interval MS]\n"
    "       keel registry deregister ID\n"
    "       keel registry get ID\n"
    "       keel registry list [NAME] [--healthy] [--tag T]...\n"
    "       keel registry watch [--count N]\n\n"
    "Options: --bus EP (or KEEL_BUS), --timeout MS, --json, --help\n";

static const char *
s_status_name (Keel__HealthStatus status)
{
    switch (status) {
    case KEEL__HEALTH_STATUS__PASSING:
        return "passing";
    case KEEL__HEALTH_STATUS__WARNING:
        return "warning";
    case KEEL__HEALTH_STATUS__CRITICAL:
        return "critical";
    default:
        return "unknown";
    }
}

static void
s_print_instance_row (const Keel__Instance *instance, int id_w, int ep_w)
{
    char tags[128] = "";
    for (size_t i = 0; i < instance->n_tags; i++) {
        size_t used = strlen (tags);
        snprintf (tags + used, sizeof tags - used, "%s%s", i ? "," : "",
                  instance->tags[i]);
    }
    const Keel__Health *health = instance->health;
    printf ("%-*s %-14s %-*s %-9s %-8s %-16s %s\n", id_w, instance->id,
            instance->service, ep_w, instance->endpoint,
            s_status_name (health ? health->status : 0),
            instance->origin && *instance->origin ? instance->origin : "-",
            tags, health && health->output ? health->output : "");
}

//  Parse "--opt VALUE" at argv[*i]; returns the value or NULL (usage).
static const char *
s_value (int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        return NULL;
    const char *value = argv[*i + 1];
    *i += 2;
    return value;
}

static int
s_register (cli_t *cli, int argc, char **argv)
{
    const char *name = NULL, *id = NULL, *endpoint = NULL, *http = NULL;
    long ttl = 0, weight = 1, interval = 0;
    bool tcp = false, ping = false;
    zlistx_t *tags = zlistx_new ();
    zlistx_t *meta = zlistx_new ();
    int rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK;) {
        int common = cli_common_option (cli, argc, argv, &i);
        if (common == -1)
            rc = CLI_USAGE;
        else if (common == 1)
            continue;
        else if (streq (argv[i], "--id"))
            id = s_value (argc, argv, &i), rc = id ? rc : CLI_USAGE;
        else if (streq (argv[i], "--endpoint"))
            endpoint = s_value (argc, argv, &i), rc = endpoint ? rc : CLI_USAGE;
        else if (streq (argv[i], "--tag")) {
            const char *tag = s_value (argc, argv, &i);
            if (tag)
                zlistx_add_end (tags, (void *)tag);
            else
                rc = CLI_USAGE;
        } else if (streq (argv[i], "--meta")) {
            const char *pair = s_value (argc, argv, &i);
            if (pair && strchr (pair, '=') && pair[0] != '=')
                zlistx_add_end (meta, (void *)pair);
            else
                rc = cli_usage_error ("registry", "--meta wants KEY=VALUE");
        } else if (streq (argv[i], "--ttl") || streq (argv[i], "--weight") ||
                   streq (argv[i], "--interval")) {
            const char *option = argv[i];
            const char *text = s_value (argc, argv, &i);
            char *end = NULL;
            long value = text ? strtol (text, &end, 10) : -1;
            if (!text || *end || value < 0 || value > 86400000)
                rc = cli_usage_error ("registry", "%s wants a number", option);
            else if (streq (option, "--ttl"))
                ttl = value;
            else if (streq (option, "--weight"))
                weight = value;
            else
                interval = value;
        } else if (streq (argv[i], "--http-check"))
            http = s_value (argc, argv, &i), rc = http ? rc : CLI_USAGE;
        else if (streq (argv[i], "--tcp-check"))
            tcp = true, i++;
        else if (streq (argv[i], "--ping-check"))
            ping = true, i++;
        else if (argv[i][0] == '-')
            rc = cli_usage_error ("registry", "unknown option '%s'", argv[i]);
        else if (name)
            rc = cli_usage_error ("registry", "one NAME only");
        else
            name = argv[i++];
    }
    if (rc == CLI_OK && (!name || !id || !endpoint))
        rc = cli_usage_error ("registry", "register needs NAME, --id and "
                                          "--endpoint");
    if (rc != CLI_OK) {
        zlistx_destroy (&tags);
        zlistx_destroy (&meta);
        return rc;
    }
    Keel__HealthCheck check = KEEL__HEALTH_CHECK__INIT;
    check.ttl_ms = (uint32_t)ttl * 1000;
    check.http_path = (char *)(http ? http : "");
    check.tcp_connect = tcp;
    check.bus_ping = ping;
    check.interval_ms = (uint32_t)interval;
    Keel__Instance instance = KEEL__INSTANCE__INIT;
    instance.id = (char *)id;
    instance.service = (char *)name;
    instance.endpoint = (char *)endpoint;
    instance.weight = (uint32_t)weight;
    instance.check = &check;
    size_t n_tags = zlistx_size (tags), n_meta = zlistx_size (meta);
    char **tag_array = (char **)calloc (n_tags + 1, sizeof (char *));
    Keel__Instance__MetaEntry *entries =
        (Keel__Instance__MetaEntry *)calloc (n_meta + 1, sizeof (*entries));
    Keel__Instance__MetaEntry **entry_ptrs =
        (Keel__Instance__MetaEntry **)calloc (n_meta + 1, sizeof (*entry_ptrs));
    char **copies = (char **)calloc (n_meta + 1, sizeof (char *));
    size_t i = 0;
    for (char *tag = (char *)zlistx_first (tags); tag;
         tag = (char *)zlistx_next (tags))
        tag_array[i++] = tag;
    i = 0;
    for (char *pair = (char *)zlistx_first (meta); pair;
         pair = (char *)zlistx_next (meta), i++) {
        copies[i] = strdup (pair);
        char *eq = strchr (copies[i], '=');
        *eq = 0;
        keel__instance__meta_entry__init (&entries[i]);
        entries[i].key = copies[i];
        entries[i].value = eq + 1;
        entry_ptrs[i] = &entries[i];
    }
    instance.n_tags = n_tags;
    instance.tags = tag_array;
    instance.n_meta = n_meta;
    instance.meta = entry_ptrs;
    Keel__RegisterRequest req = KEEL__REGISTER_REQUEST__INIT;
    req.instance = &instance;
    Keel__IndexReply *reply = NULL;
    rc = cli_call (cli, "registry", "registry.register", &req.base, true,
                   &keel__index_reply__descriptor, (ProtobufCMessage **)&reply);
    if (rc == CLI_OK) {
        if (cli->json)
            cli_print_json (&reply->base);
        else
            printf ("registered %s (%s) at index %" PRIu64 "\n", id, name,
                    reply->index);
        protobuf_c_message_free_unpacked (&reply->base, NULL);
    }
    for (i = 0; i < n_meta; i++)
        free (copies[i]);
    free (copies);
    free (tag_array);
    free (entries);
    free (entry_ptrs);
    zlistx_destroy (&tags);
    zlistx_destroy (&meta);
    return rc;
}

static int
s_by_id (cli_t *cli, int argc, char **argv, bool deregister)
{
    const char *id = NULL;
    for (int i = 1; i < argc;) {
        int common = cli_common_option (cli, argc, argv, &i);
        if (common == -1)
            return CLI_USAGE;
        if (common == 1)
            continue;
        if (argv[i][0] == '-' || id)
            return cli_usage_error ("registry", "unexpected '%s'", argv[i]);
        id = argv[i++];
    }
    if (!id)
        return cli_usage_error ("registry", "%s needs an ID", argv[0]);
    if (deregister) {
        Keel__DeregisterRequest req = KEEL__DEREGISTER_REQUEST__INIT;
        req.id = (char *)id;
        Keel__IndexReply *reply = NULL;
        int rc = cli_call (cli, "registry", "registry.deregister", &req.base,
                           true, &keel__index_reply__descriptor,
                           (ProtobufCMessage **)&reply);
        if (rc != CLI_OK)
            return rc;
        if (cli->json)
            cli_print_json (&reply->base);
        else
            printf ("deregistered %s at index %" PRIu64 "\n", id, reply->index);
        protobuf_c_message_free_unpacked (&reply->base, NULL);
        return CLI_OK;
    }
    Keel__GetRequest req = KEEL__GET_REQUEST__INIT;
    req.id = (char *)id;
    Keel__Instance *instance = NULL;
    int rc =
        cli_call (cli, "registry", "registry.get", &req.base, true,
                  &keel__instance__descriptor, (ProtobufCMessage **)&instance);
    if (rc != CLI_OK)
        return rc;
    char *text =
        keel_json_encode (&instance->base, cli->json ? 0 : KEEL_JSON_PRETTY);
    printf ("%s\n", text ? text : "{}");
    free (text);
    protobuf_c_message_free_unpacked (&instance->base, NULL);
    return CLI_OK;
}

static bool
s_has_tags (const Keel__Instance *instance, zlistx_t *tags)
{
    for (char *tag = (char *)zlistx_first (tags); tag;
         tag = (char *)zlistx_next (tags)) {
        bool found = false;
        for (size_t i = 0; i < instance->n_tags && !found; i++)
            found = streq (instance->tags[i], tag);
        if (!found)
            return false;
    }
    return true;
}

static int
s_list (cli_t *cli, int argc, char **argv)
{
    const char *name = NULL;
    bool healthy = false;
    zlistx_t *tags = zlistx_new ();
    int rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK;) {
        int common = cli_common_option (cli, argc, argv, &i);
        if (common == -1)
            rc = CLI_USAGE;
        else if (common == 1)
            continue;
        else if (streq (argv[i], "--healthy"))
            healthy = true, i++;
        else if (streq (argv[i], "--tag")) {
            const char *tag = s_value (argc, argv, &i);
            if (tag)
                zlistx_add_end (tags, (void *)tag);
            else
                rc = CLI_USAGE;
        } else if (argv[i][0] == '-' || name)
            rc = cli_usage_error ("registry", "unexpected '%s'", argv[i]);
        else
            name = argv[i++];
    }
    if (rc != CLI_OK) {
        zlistx_destroy (&tags);
        return rc;
    }
    Keel__InstanceList *list = NULL;
    if (name && (healthy || zlistx_size (tags))) {
        //  Discovery proper: the registry filters.
        Keel__DiscoverRequest req = KEEL__DISCOVER_REQUEST__INIT;
        req.service = (char *)name;
        req.include_unhealthy = !healthy;
        size_t n = zlistx_size (tags), i = 0;
        char **array = (char **)calloc (n + 1, sizeof (char *));
        for (char *tag = (char *)zlistx_first (tags); tag;
             tag = (char *)zlistx_next (tags))
            array[i++] = tag;
        req.n_tags = n;
        req.tags = array;
        rc = cli_call (cli, "registry", "registry.discover", &req.base, true,
                       &keel__instance_list__descriptor,
                       (ProtobufCMessage **)&list);
        free (array);
    } else {
        Keel__ListRequest req = KEEL__LIST_REQUEST__INIT;
        req.service = (char *)(name ? name : "");
        rc = cli_call (cli, "registry", "registry.list", &req.base, true,
                       &keel__instance_list__descriptor,
                       (ProtobufCMessage **)&list);
    }
    if (rc == CLI_OK) {
        //  Without a name, --healthy and --tag filter here.
        size_t kept = 0;
        for (size_t i = 0; i < list->n_instances; i++) {
            Keel__Instance *instance = list->instances[i];
            Keel__HealthStatus status =
                instance->health ? instance->health->status : 0;
            bool ok =
                name || ((!healthy || status == KEEL__HEALTH_STATUS__PASSING ||
                          status == KEEL__HEALTH_STATUS__WARNING) &&
                         s_has_tags (instance, tags));
            if (ok)
                list->instances[kept++] = instance;
            else
                protobuf_c_message_free_unpacked (&instance->base, NULL);
        }
        list->n_instances = kept;
        if (cli->json)
            cli_print_json (&list->base);
        else {
            //  Columns as wide as their widest value (at least 20, 30).
            int id_w = 20, ep_w = 30;
            for (size_t i = 0; i < list->n_instances; i++) {
                int id = (int)strlen (list->instances[i]->id);
                int ep = (int)strlen (list->instances[i]->endpoint);
                id_w = id > id_w ? id : id_w;
                ep_w = ep > ep_w ? ep : ep_w;
            }
            printf ("%-*s %-14s %-*s %-9s %-8s %-16s %s\n", id_w, "ID",
                    "SERVICE", ep_w, "ENDPOINT", "STATUS", "ORIGIN", "TAGS",
                    "OUTPUT");
            for (size_t i = 0; i < list->n_instances; i++)
                s_print_instance_row (list->instances[i], id_w, ep_w);
            printf ("(%zu instance%s, index %" PRIu64 "%s)\n",
                    list->n_instances, list->n_instances == 1 ? "" : "s",
                    list->index,
                    list->protect_applied ? ", protect threshold applied" : "");
        }
        protobuf_c_message_free_unpacked (&list->base, NULL);
    }
    zlistx_destroy (&tags);
    return rc;
}

static void
s_print_change (cli_t *cli, const void *raw, bool first, void *arg)
{
    (void)first;
    (void)arg;
    const Keel__Envelope *env = ((const keel_event_t *)raw)->envelope;
    Keel__RegistryEvent *change = (Keel__RegistryEvent *)keel_codec_payload (
        env, &keel__registry_event__descriptor, NULL);
    if (!change)
        return;
    if (cli->json)
        cli_print_json (&change->base);
    else {
        const char *kind = env->type + strlen ("registry.");
        const Keel__Instance *instance = change->instance;
        printf ("%-8" PRIu64 " %-13s %-20s %-14s %-9s %s\n", change->index,
                kind, instance ? instance->id : "",
                instance ? instance->service : "",
                instance && instance->health
                    ? s_status_name (instance->health->status)
                    : "",
                change->reason);
    }
    protobuf_c_message_free_unpacked (&change->base, NULL);
}

static int
s_watch (cli_t *cli, int argc, char **argv)
{
    long limit = 0;
    for (int i = 1; i < argc;) {
        int common = cli_common_option (cli, argc, argv, &i);
        if (common == -1)
            return CLI_USAGE;
        if (common == 1)
            continue;
        if (streq (argv[i], "--count") && i + 1 < argc) {
            char *end;
            limit = strtol (argv[i + 1], &end, 10);
            if (*end || limit <= 0)
                return cli_usage_error ("registry", "--count wants N > 0");
            i += 2;
        } else
            return cli_usage_error ("registry", "unexpected '%s'", argv[i]);
    }
    return cli_watch (cli, "registry.", limit, s_print_change, NULL);
}

int
cli_registry (cli_t *cli, int argc, char **argv)
{
    int help = cli_group_help (argc, argv, s_help);
    if (help != -1)
        return help;
    const char *verb = argv[1];
    if (streq (verb, "register"))
        return s_register (cli, argc - 1, argv + 1);
    if (streq (verb, "deregister"))
        return s_by_id (cli, argc - 1, argv + 1, true);
    if (streq (verb, "get"))
        return s_by_id (cli, argc - 1, argv + 1, false);
    if (streq (verb, "list"))
        return s_list (cli, argc - 1, argv + 1);
    if (streq (verb, "watch"))
        return s_watch (cli, argc - 1, argv + 1);
    return cli_usage_error ("registry", "unknown verb '%s'", verb);
}
