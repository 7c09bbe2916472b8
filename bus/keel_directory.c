/*  keel_directory.c - names to endpoints.

    A hash table from name to entry; the table owns its keys and entries.

        "registry" -> { endpoint "tcp://10.0.0.2:7700", events NULL }
        "saga"     -> { endpoint "tcp://10.0.0.3:7700",
                        events   "tcp://10.0.0.3:7701" }
*/
#include "keel_directory.h"
#include "keel_security.h"

//  One name's endpoints
typedef struct {
    char *endpoint; //  where requests go, never NULL
    char *events;   //  where events are published, or NULL
} s_entry_t;

struct _keel_directory_t {
    zhashx_t *entries; //  name -> s_entry_t *
};

static void
s_entry_destroy (void **item_p)
{
    s_entry_t *entry = (s_entry_t *)*item_p;
    if (entry) {
        free (entry->endpoint);
        free (entry->events);
        free (entry);
        *item_p = NULL;
    }
}

keel_directory_t *
keel_directory_new (void)
{
    keel_directory_t *self = (keel_directory_t *)zmalloc (sizeof *self);
    if (!self)
        return NULL;
    self->entries = zhashx_new ();
    if (!self->entries) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->entries, s_entry_destroy);
    return self;
}

void
keel_directory_destroy (keel_directory_t **self_p)
{
    if (self_p && *self_p) {
        keel_directory_t *self = *self_p;
        zhashx_destroy (&self->entries);
        free (self);
        *self_p = NULL;
    }
}

static bool
s_name_valid (const char *name)
{
    return name && *name &&
           strnlen (name, KEEL_DIRECTORY_MAX_NAME + 1) <=
               KEEL_DIRECTORY_MAX_NAME;
}

int
keel_directory_set (keel_directory_t *self, const char *name,
                    const char *endpoint, const char *events)
{
    assert (self);
    if (!s_name_valid (name) || !keel_endpoint_valid (endpoint) ||
        (events && !keel_endpoint_valid (events)))
        return -1;
    s_entry_t *entry = (s_entry_t *)zmalloc (sizeof *entry);
    if (!entry)
        return -1;
    entry->endpoint = strdup (endpoint);
    entry->events = events ? strdup (events) : NULL;
    if (!entry->endpoint || (events && !entry->events)) {
        s_entry_destroy ((void **)&entry);
        return -1;
    }
    //  Update destroys the entry it replaces
    zhashx_update (self->entries, name, entry);
    return 0;
}

int
keel_directory_remove (keel_directory_t *self, const char *name)
{
    assert (self);
    if (!name || !zhashx_lookup (self->entries, name))
        return -1;
    zhashx_delete (self->entries, name);
    return 0;
}

const char *
keel_directory_endpoint (keel_directory_t *self, const char *name)
{
    assert (self);
    s_entry_t *entry =
        name ? (s_entry_t *)zhashx_lookup (self->entries, name) : NULL;
    return entry ? entry->endpoint : NULL;
}

const char *
keel_directory_events (keel_directory_t *self, const char *name)
{
    assert (self);
    s_entry_t *entry =
        name ? (s_entry_t *)zhashx_lookup (self->entries, name) : NULL;
    return entry ? entry->events : NULL;
}

size_t
keel_directory_size (keel_directory_t *self)
{
    assert (self);
    return zhashx_size (self->entries);
}

static void *
s_string_dup (const void *item)
{
    return strdup ((const char *)item);
}

static void
s_string_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

static int
s_string_compare (const void *a, const void *b)
{
    return strcmp ((const char *)a, (const char *)b);
}

zlistx_t *
keel_directory_names (keel_directory_t *self)
{
    assert (self);
    zlistx_t *names = zlistx_new ();
    if (!names)
        return NULL;
    zlistx_set_duplicator (names, s_string_dup);
    zlistx_set_destructor (names, s_string_free);
    zlistx_set_comparator (names, s_string_compare);
    for (void *entry = zhashx_first (self->entries); entry;
         entry = zhashx_next (self->entries))
        if (!zlistx_add_end (names, (void *)zhashx_cursor (self->entries))) {
            zlistx_destroy (&names);
            return NULL;
        }
    zlistx_sort (names);
    return names;
}

// ---------------------------------------------------------------------------
//  Loading from a config

//  Check one endpoint node (a leaf with a valid endpoint). Returns its
//  value, or NULL with the config's error set.
static const char *
s_endpoint_node (keel_config_t *config, zconfig_t *node)
{
    if (zconfig_child (node)) {
        keel_config_fail_node (config, node,
                               "expected an endpoint, found a section");
        return NULL;
    }
    const char *value = zconfig_value (node) ? zconfig_value (node) : "";
    if (!keel_endpoint_valid (value)) {
        keel_config_fail_node (config, node, KEEL_CONFIG_BAD_ENDPOINT, value);
        return NULL;
    }
    return value;
}

//  Read a `key` node: a Z85 public key, or the file of a public
//  certificate. Copies the key into `key` (41 bytes). Returns 0, or -1 with
//  the config's error set.
static int
s_key_node (keel_config_t *config, zconfig_t *node, char *key)
{
    const char *value = zconfig_value (node) ? zconfig_value (node) : "";
    if (zconfig_child (node))
        return keel_config_fail_node (config, node,
                                      "expected a key, found a section");
    if (keel_curve_key_valid (value)) {
        snprintf (key, KEEL_CURVE_KEY_LEN + 1, "%s", value);
        return 0;
    }
    zcert_t *cert = *value ? zcert_load (value) : NULL;
    if (!cert)
        return keel_config_fail_node (
            config, node,
            "'%s' is neither a CURVE public key (40 Z85 characters) nor a "
            "readable certificate file",
            value);
    snprintf (key, KEEL_CURVE_KEY_LEN + 1, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return 0;
}

//  Read one entry: `name = ENDPOINT`, or a section with `endpoint`,
//  `events` and `key`. Returns 0 and sets the endpoints (borrowed from the
//  config) and *key (40 characters, or "" when none), or -1 with the
//  config's error set.
static int
s_load_entry (keel_config_t *config, zconfig_t *item, const char **endpoint_p,
              const char **events_p, char *key)
{
    const char *value = zconfig_value (item) ? zconfig_value (item) : "";
    zconfig_t *child = zconfig_child (item);
    *endpoint_p = NULL;
    *events_p = NULL;
    *key = 0;
    if (!child) {
        if (!*value)
            return keel_config_fail_node (
                config, item,
                "no endpoint (give 'name = ENDPOINT', or a section with "
                "'endpoint' and optionally 'events')");
        *endpoint_p = s_endpoint_node (config, item);
        return *endpoint_p ? 0 : -1;
    }
    if (*value)
        return keel_config_fail_node (
            config, item,
            "has both a value and a section (give one or the other)");
    zconfig_t *endpoint = NULL, *events = NULL, *key_node = NULL;
    for (; child; child = zconfig_next (child)) {
        const char *name = zconfig_name (child) ? zconfig_name (child) : "";
        zconfig_t **slot = streq (name, "endpoint") ? &endpoint
                           : streq (name, "events") ? &events
                           : streq (name, "key")    ? &key_node
                                                    : NULL;
        if (!slot)
            return keel_config_fail_node (
                config, child,
                "unknown key (expected one of: endpoint, "
                "events, key)");
        if (*slot)
            return keel_config_fail_node (
                config, child, "given twice (first at line %d)",
                keel_config_node_line (config, *slot));
        *slot = child;
    }
    if (!endpoint)
        return keel_config_fail_node (config, item, "missing 'endpoint'");
    *endpoint_p = s_endpoint_node (config, endpoint);
    if (!*endpoint_p)
        return -1;
    if (events) {
        *events_p = s_endpoint_node (config, events);
        if (!*events_p)
            return -1;
    }
    if (key_node) {
        if (s_key_node (config, key_node, key) == -1)
            return -1;
        //  An endpoint that names a key itself must name this one.
        char named[KEEL_CURVE_KEY_LEN + 1];
        zconfig_t *nodes[] = {endpoint, events};
        for (int i = 0; i < 2; i++)
            if (nodes[i] &&
                keel_endpoint_key (zconfig_value (nodes[i]), named) == 1 &&
                !streq (named, key))
                return keel_config_fail_node (config, nodes[i],
                                              "names another key than 'key'");
    }
    return 0;
}

//  Copy every entry of `from` into `to`. Returns 0, or -1 if out of memory.
static int
s_copy_entries (keel_directory_t *to, keel_directory_t *from)
{
    for (s_entry_t *entry = (s_entry_t *)zhashx_first (from->entries); entry;
         entry = (s_entry_t *)zhashx_next (from->entries)) {
        const char *name = (const char *)zhashx_cursor (from->entries);
        if (keel_directory_set (to, name, entry->endpoint, entry->events))
            return -1;
    }
    return 0;
}

int
keel_directory_load (keel_directory_t *self, keel_config_t *config,
                     const char *path)
{
    assert (self);
    assert (config);
    assert (path);
    if (*path == '/')
        path++;
    zconfig_t *root = keel_config_root (config);
    zconfig_t *section = *path ? zconfig_locate (root, path) : root;
    if (!section)
        return 0;

    //  Check every entry before changing anything; `seen` maps each name to
    //  its node, to report a name given twice.
    keel_directory_t *loaded = keel_directory_new ();
    zhashx_t *seen = zhashx_new ();
    int rc = loaded && seen ? 0 : -1;
    if (rc)
        keel_config_fail (config, path, "out of memory");
    for (zconfig_t *item = zconfig_child (section); item && rc == 0;
         item = zconfig_next (item)) {
        const char *name = zconfig_name (item) ? zconfig_name (item) : "";
        zconfig_t *first = (zconfig_t *)zhashx_lookup (seen, name);
        const char *endpoint = NULL, *events = NULL;
        char key[KEEL_CURVE_KEY_LEN + 1] = "";
        if (first)
            rc = keel_config_fail_node (config, item,
                                        "name given twice (first at line %d)",
                                        keel_config_node_line (config, first));
        else if (!s_name_valid (name))
            rc = keel_config_fail_node (config, item,
                                        "name longer than %d characters",
                                        KEEL_DIRECTORY_MAX_NAME);
        else
            rc = s_load_entry (config, item, &endpoint, &events, key);
        if (rc == 0) {
            zhashx_insert (seen, name, item);
            //  `key` annotates the entry's tcp endpoints.
            char *with_key =
                keel_endpoint_with_key (endpoint, *key ? key : NULL);
            char *events_key =
                events ? keel_endpoint_with_key (events, *key ? key : NULL)
                       : NULL;
            if (!with_key || (events && !events_key) ||
                keel_directory_set (loaded, name, with_key, events_key))
                rc = keel_config_fail_node (config, item, "out of memory");
            free (with_key);
            free (events_key);
        }
    }
    //  All checked: build the new table aside, then swap it in, so running
    //  out of memory half way leaves self as it was.
    keel_directory_t *merged = rc == 0 ? keel_directory_new () : NULL;
    if (rc == 0 && !merged)
        rc = keel_config_fail (config, path, "out of memory");
    if (rc == 0 &&
        (s_copy_entries (merged, self) || s_copy_entries (merged, loaded)))
        rc = keel_config_fail (config, path, "out of memory");
    if (rc == 0) {
        zhashx_t *entries = self->entries;
        self->entries = merged->entries;
        merged->entries = entries;
    }
    keel_directory_destroy (&merged);
    zhashx_destroy (&seen);
    keel_directory_destroy (&loaded);
    return rc;
}
