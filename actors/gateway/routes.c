/*  routes.c - the gateway's route table (see routes.h).

    A table, everything allocated by keel_routes_load and never changed:

      routes[]  route pointers in priority order; route->index is the
                position, so "better" is "smaller index"
      by_name[] route pointers sorted by name (binary search: a zhashx
                lookup writes to the hash, and a table is shared read-only)
      nodes[]   trie nodes; node 0 is the super-root, whose children are
                one trie root per host key:
                    ""               routes without a host
                    "api.x.com"      routes for that host
                    "*.x.com"        routes for that wildcard
      edges     one open-addressing hash of every literal edge of every
                trie: (parent node, canonical segment) -> child node
      lists[]   route indices; each node owns two runs of it, both sorted
                by index: the routes whose path ends at the node (exact or
                template) and the prefix routes whose prefix ends there

        super-root --"api.x.com"--> root --"users"--> n1 --{param}--> n2
                                                       |             [users]
                                                       +--"me"--> n3 [me]
                                                       (prefix run of n1:
                                                        "/users/" + '*')

    A node has any number of literal children (in the edge hash) and at
    most one parameter child: parameter names do not matter to the shape,
    so /users/{id} and /users/{uid} end at the same node (and conflict).

    Matching canonicalises the request path once into a stack buffer (the
    normalisation of routes.h: unreserved escapes decoded, other escapes in
    upper case, bytes that must be escaped escaped), then walks the tries
    of the request's host, of every wildcard suffix of it and of "no host".
    At each node it follows the literal edge and the parameter child, and
    looks at the node's runs: the first route in a run that allows the
    method is the node's best; the best over all nodes wins. Routes that
    match the path but not the method add to the Allow set, which is only
    reported when nothing matched.

    Config literals go through the same canonicalisation, so a route and a
    request that differ only in how they escape compare equal.
*/
#include "routes.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_NONE               UINT32_MAX
#define S_DEFAULT_TIMEOUT_MS 15000
#define S_MAX_RETRIES        10
#define S_MAX_PRIORITY       1000000
#define S_MAX_ROUTE_NAME     64
#define S_MAX_TARGET_NAME    128
#define S_MAX_HOST           253
#define S_MAX_PARAM_NAME     64

// ---------------------------------------------------------------------------
//  Structures

//  One segment of a route's path.
typedef struct {
    char *text; //  literal: canonical form; parameter: its name
    size_t len; //  bytes of text
    bool param; //  a {name} segment
} s_seg_t;

struct _keel_route_t {
    char *name;                 //  unique in the table
    char *host;                 //  lower case, "*.x" for wildcards; or NULL
    char *path;                 //  as written in config
    char *target_name;          //  after "bus:" etc.
    keel_route_kind_t kind;     //  exact, template or prefix
    keel_route_target_t target; //  what the route reaches
    keel_route_policy_t policy; //  load balancing
    keel_route_auth_t auth;     //  credentials required
    unsigned methods;           //  allowed, HEAD added to GET
    int64_t timeout_ms;         //  per request
    int retries;                //  for idempotent requests
    int retry_budget;           //  percent
    int64_t priority;           //  explicit, higher wins
    char **scopes;              //  NULL-terminated
    char **roles;               //  NULL-terminated
    s_seg_t *segs;              //  path segments, '*' not included
    size_t seg_count;           //  of segs
    size_t literal_count;       //  literal segments
    const char *param_names[KEEL_ROUTES_MAX_PARAMS]; //  into segs
    size_t param_count;                              //  of param_names
    int host_class;      //  0 host, 1 wildcard, 2 none
    int line;            //  of the `route` key, 0 if unknown
    size_t config_index; //  position in the config
    size_t index;        //  position in priority order
    uint32_t node;       //  trie node the path (or prefix) ends at
};

//  A trie node.
typedef struct {
    uint32_t param;        //  parameter child, or S_NONE
    uint32_t first;        //  run of routes ending here, in lists[]
    uint32_t count;        //  its length
    uint32_t prefix_first; //  run of prefix routes whose prefix ends here
    uint32_t prefix_count; //  its length
} s_node_t;

//  A literal edge; child 0 marks an empty slot (node 0 is nobody's child).
typedef struct {
    const char *key; //  canonical segment or host key, borrowed from a route
    uint32_t len;    //  of key
    uint32_t hash;   //  of (parent, key)
    uint32_t parent; //  node
    uint32_t child;  //  node
} s_edge_t;

struct _keel_routes_t {
    keel_route_t **routes;  //  in priority order
    size_t count;           //  of routes
    keel_route_t **by_name; //  the same routes, sorted by name
    s_node_t *nodes;        //  trie nodes, 0 the super-root
    size_t node_count;      //  of nodes
    size_t node_cap;        //  allocated
    s_edge_t *edges;        //  open addressing, capacity a power of 2
    size_t edge_count;      //  edges in use
    size_t edge_mask;       //  capacity - 1
    uint32_t *lists;        //  runs of route indices
    size_t max_depth;       //  most segments of any route
    bool wildcards;         //  some route has a wildcard host
};

// ---------------------------------------------------------------------------
//  ASCII classes: the <ctype.h> ones follow the locale, and a byte above
//  0x7F must never pass for a letter here

static bool
s_alpha (int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
s_alnum (int c)
{
    return s_alpha (c) || (c >= '0' && c <= '9');
}

static char
s_lower (int c)
{
    return (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

static char
s_upper (int c)
{
    return (char)(c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c);
}

// ---------------------------------------------------------------------------
//  Names

static const char *s_method_names[] = {"GET",     "HEAD",   "POST",
                                       "PUT",     "DELETE", "PATCH",
                                       "OPTIONS", "TRACE",  "CONNECT"};
#define S_METHOD_COUNT (sizeof s_method_names / sizeof s_method_names[0])

static const char *s_kind_names[] = {"exact", "template", "prefix"};
static const char *s_target_names[] = {"bus", "http", "saga", "saga-status"};
static const char *s_policy_names[] = {"round_robin", "weighted", "least_conn",
                                       "p2c"};
static const char *s_auth_names[] = {"none", "jwt", "api_key", "any"};
static const char *s_result_names[] = {
    "found", "no route", "method not allowed", "bad path", "too long"};

#define S_NAME_OF(table, i)                                                    \
    ((size_t)(i) < sizeof table / sizeof table[0] ? table[i] : "?")

unsigned
keel_routes_method_parse (const char *method)
{
    if (!method)
        return 0;
    for (size_t i = 0; i < S_METHOD_COUNT; i++)
        if (streq (method, s_method_names[i]))
            return 1u << i;
    return 0;
}

char *
keel_routes_methods_format (unsigned methods, char *buffer, size_t size)
{
    assert (buffer);
    assert (size > 0);
    size_t used = 0;
    buffer[0] = 0;
    for (size_t i = 0; i < S_METHOD_COUNT; i++) {
        if (!(methods & (1u << i)))
            continue;
        int n = snprintf (buffer + used, size - used, "%s%s", used ? ", " : "",
                          s_method_names[i]);
        if (n < 0 || (size_t)n >= size - used) {
            buffer[used] = 0; //  whole methods only; ALLOW_MAX always fits
            break;
        }
        used += (size_t)n;
    }
    return buffer;
}

const char *
keel_route_kind_name (keel_route_kind_t kind)
{
    return S_NAME_OF (s_kind_names, kind);
}

const char *
keel_route_target_type_name (keel_route_target_t target)
{
    return S_NAME_OF (s_target_names, target);
}

const char *
keel_route_policy_name (keel_route_policy_t policy)
{
    return S_NAME_OF (s_policy_names, policy);
}

const char *
keel_route_auth_name (keel_route_auth_t auth)
{
    return S_NAME_OF (s_auth_names, auth);
}

const char *
keel_routes_result_name (keel_routes_result_t result)
{
    return S_NAME_OF (s_result_names, result);
}

// ---------------------------------------------------------------------------
//  Path canonicalisation, shared by config literals and requests

typedef enum {
    S_SEG_OK = 0,
    S_SEG_BAD_ESCAPE, //  '%' without two hex digits
    S_SEG_NUL,        //  %00
    S_SEG_BAD_CHAR,   //  control, space, '?', '#'
} s_seg_rc_t;

static int
s_hex (unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)s_lower (c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool
s_unreserved (unsigned char c)
{
    return s_alnum (c) || c == '-' || c == '.' || c == '_' || c == '~';
}

//  Characters that stand for themselves in a canonical segment: unreserved,
//  sub-delims, ':' and '@' (RFC 3986 pchar without pct-encoded).
static bool
s_pchar (unsigned char c)
{
    return s_unreserved (c) || (c && strchr ("!$&'()*+,;=:@", c) != NULL);
}

//  Write the canonical form of the raw segment [raw, raw + len) to `out`
//  (room for 3 * len bytes); *out_len gets its length. Stops at the first
//  problem.
static s_seg_rc_t
s_canonical (const char *raw, size_t len, char *out, size_t *out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '%') {
            int h = i + 2 < len ? s_hex ((unsigned char)raw[i + 1]) : -1;
            int l = i + 2 < len ? s_hex ((unsigned char)raw[i + 2]) : -1;
            if (h < 0 || l < 0)
                return S_SEG_BAD_ESCAPE;
            unsigned char v = (unsigned char)(h * 16 + l);
            if (v == 0)
                return S_SEG_NUL;
            if (s_unreserved (v))
                out[o++] = (char)v;
            else {
                out[o++] = '%';
                out[o++] = hex[v >> 4];
                out[o++] = hex[v & 15];
            }
            i += 2;
        } else if (c == 0)
            return S_SEG_NUL;
        else if (c < 0x20 || c == 0x7F || c == ' ' || c == '?' || c == '#')
            return S_SEG_BAD_CHAR;
        else if (s_pchar (c))
            out[o++] = (char)c;
        else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    *out_len = o;
    return S_SEG_OK;
}

//  True for "." and "..", the segments a server may resolve away.
static bool
s_dot_segment (const char *canonical, size_t len)
{
    return (len == 1 && canonical[0] == '.') ||
           (len == 2 && canonical[0] == '.' && canonical[1] == '.');
}

//  Decode every %XX of [raw, raw + len) into `out`, NUL-terminated.
//  The segment was validated by s_canonical. Returns bytes written, NUL
//  excluded.
static size_t
s_decode (const char *raw, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        if (raw[i] == '%' && i + 2 < len) {
            out[o++] = (char)(s_hex ((unsigned char)raw[i + 1]) * 16 +
                              s_hex ((unsigned char)raw[i + 2]));
            i += 2;
        } else
            out[o++] = raw[i];
    out[o] = 0;
    return o;
}

// ---------------------------------------------------------------------------
//  Hosts

static bool
s_host_char (unsigned char c)
{
    return s_alnum (c) || c == '-' || c == '_' || c == '.';
}

//  The host of a Host header, lower case, without port or trailing dot,
//  into out[S_MAX_HOST + 1]. Returns its length; 0 when absent or when it
//  cannot be any configured host (then only routes without a host match).
static size_t
s_request_host (const char *host, char *out)
{
    if (!host || !*host)
        return 0;
    size_t len;
    const char *port;
    if (host[0] == '[') {
        const char *close = strchr (host, ']');
        if (!close)
            return 0;
        len = (size_t)(close - host) + 1;
        port = close + 1;
        for (size_t i = 1; i + 1 < len; i++)
            if (!isxdigit ((unsigned char)host[i]) && host[i] != ':' &&
                host[i] != '.')
                return 0;
    } else {
        len = strcspn (host, ":");
        port = host + len;
        for (size_t i = 0; i < len; i++)
            if (!s_host_char ((unsigned char)host[i]))
                return 0;
        if (len > 0 && host[len - 1] == '.')
            len--;
    }
    if (*port) {
        if (*port != ':')
            return 0;
        for (const char *p = port + 1; *p; p++)
            if (!isdigit ((unsigned char)*p))
                return 0;
    }
    if (len == 0 || len > S_MAX_HOST)
        return 0;
    for (size_t i = 0; i < len; i++)
        out[i] = s_lower ((unsigned char)host[i]);
    out[len] = 0;
    return len;
}

//  Check and normalise a configured host in place (lower case, trailing
//  dot dropped). Returns NULL if usable, or a static reason.
static const char *
s_config_host (char *host)
{
    size_t len = strlen (host);
    if (len > 0 && host[len - 1] == '.')
        host[--len] = 0;
    for (size_t i = 0; i < len; i++)
        host[i] = s_lower ((unsigned char)host[i]);
    if (len == 0)
        return "empty host (leave 'host' out to match any host)";
    if (len > S_MAX_HOST)
        return "host longer than 253 characters";
    if (host[0] == '[') {
        if (host[len - 1] != ']' || len < 3)
            return "expected an IPv6 address in brackets";
        for (size_t i = 1; i + 1 < len; i++)
            if (!isxdigit ((unsigned char)host[i]) && host[i] != ':' &&
                host[i] != '.')
                return "expected an IPv6 address in brackets";
        return NULL;
    }
    if (strchr (host, ':'))
        return "a host has no port here (ports are ignored when matching)";
    const char *p = host;
    if (streq (host, "*"))
        return "'*' alone: leave 'host' out to match any host";
    if (p[0] == '*') {
        if (p[1] != '.')
            return "a wildcard host is '*.' followed by a domain";
        p += 2;
    }
    //  Labels of [a-z0-9_-], joined by single dots
    size_t label = 0;
    for (; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return "empty label in host";
            label = 0;
        } else if (s_host_char ((unsigned char)*p))
            label++;
        else
            return *p == '*' ? "'*' is allowed only as the first label"
                             : "invalid character in host";
    }
    if (label == 0)
        return "empty label in host";
    return NULL;
}

// ---------------------------------------------------------------------------
//  The trie

static uint32_t
s_hash (uint32_t parent, const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ (parent * 0x9E3779B97F4A7C15ULL);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

//  The child of `parent` along the literal `key`, or S_NONE.
static uint32_t
s_edge_find (const keel_routes_t *self, uint32_t parent, const char *key,
             size_t len)
{
    if (!self->edges)
        return S_NONE;
    uint32_t hash = s_hash (parent, key, len);
    for (size_t i = hash & self->edge_mask; self->edges[i].child;
         i = (i + 1) & self->edge_mask) {
        const s_edge_t *edge = &self->edges[i];
        if (edge->hash == hash && edge->parent == parent && edge->len == len &&
            memcmp (edge->key, key, len) == 0)
            return edge->child;
    }
    return S_NONE;
}

static void
s_edge_put (s_edge_t *edges, size_t mask, const s_edge_t *edge)
{
    size_t i = edge->hash & mask;
    while (edges[i].child)
        i = (i + 1) & mask;
    edges[i] = *edge;
}

//  A new node. Returns its number, or S_NONE if out of memory.
static uint32_t
s_node_new (keel_routes_t *self)
{
    if (self->node_count == self->node_cap) {
        size_t cap = self->node_cap ? self->node_cap * 2 : 64;
        if (cap >= S_NONE)
            return S_NONE;
        s_node_t *nodes =
            (s_node_t *)realloc (self->nodes, cap * sizeof *nodes);
        if (!nodes)
            return S_NONE;
        self->nodes = nodes;
        self->node_cap = cap;
    }
    s_node_t *node = &self->nodes[self->node_count];
    memset (node, 0, sizeof *node);
    node->param = S_NONE;
    return (uint32_t)self->node_count++;
}

//  The child of `parent` along `key` (which must outlive the table),
//  created if absent. Returns S_NONE if out of memory.
static uint32_t
s_edge_child (keel_routes_t *self, uint32_t parent, const char *key, size_t len)
{
    uint32_t child = s_edge_find (self, parent, key, len);
    if (child != S_NONE)
        return child;
    //  Keep the load at most 1/2
    if ((self->edge_count + 1) * 2 > self->edge_mask + 1 || !self->edges) {
        size_t cap = self->edges ? (self->edge_mask + 1) * 2 : 64;
        s_edge_t *edges = (s_edge_t *)calloc (cap, sizeof *edges);
        if (!edges)
            return S_NONE;
        if (self->edges)
            for (size_t i = 0; i <= self->edge_mask; i++)
                if (self->edges[i].child)
                    s_edge_put (edges, cap - 1, &self->edges[i]);
        free (self->edges);
        self->edges = edges;
        self->edge_mask = cap - 1;
    }
    child = s_node_new (self);
    if (child == S_NONE)
        return S_NONE;
    s_edge_t edge = {key, (uint32_t)len, s_hash (parent, key, len), parent,
                     child};
    s_edge_put (self->edges, self->edge_mask, &edge);
    self->edge_count++;
    return child;
}

//  Put a route's path in the trie; sets route->node. Returns 0 or -1 if
//  out of memory.
static int
s_trie_insert (keel_routes_t *self, keel_route_t *route)
{
    const char *host = route->host ? route->host : "";
    uint32_t node = s_edge_child (self, 0, host, strlen (host));
    for (size_t i = 0; i < route->seg_count && node != S_NONE; i++) {
        s_seg_t *seg = &route->segs[i];
        if (seg->param) {
            if (self->nodes[node].param == S_NONE) {
                uint32_t child = s_node_new (self);
                if (child != S_NONE)
                    self->nodes[node].param = child;
            }
            node = self->nodes[node].param;
        } else
            node = s_edge_child (self, node, seg->text, seg->len);
    }
    route->node = node;
    return node == S_NONE ? -1 : 0;
}

//  Fill the runs of every node from routes[] (in priority order, so every
//  run is sorted). Returns 0 or -1 if out of memory.
static int
s_trie_lists (keel_routes_t *self)
{
    self->lists = (uint32_t *)malloc ((self->count + 1) * sizeof (uint32_t));
    if (!self->lists)
        return -1;
    for (size_t i = 0; i < self->count; i++) {
        s_node_t *node = &self->nodes[self->routes[i]->node];
        if (self->routes[i]->kind == KEEL_ROUTE_PREFIX)
            node->prefix_count++;
        else
            node->count++;
    }
    uint32_t next = 0;
    for (size_t n = 0; n < self->node_count; n++) {
        s_node_t *node = &self->nodes[n];
        node->first = next;
        next += node->count;
        node->prefix_first = next;
        next += node->prefix_count;
        node->count = node->prefix_count = 0;
    }
    for (size_t i = 0; i < self->count; i++) {
        s_node_t *node = &self->nodes[self->routes[i]->node];
        if (self->routes[i]->kind == KEEL_ROUTE_PREFIX)
            self->lists[node->prefix_first + node->prefix_count++] =
                (uint32_t)i;
        else
            self->lists[node->first + node->count++] = (uint32_t)i;
    }
    return 0;
}

// ---------------------------------------------------------------------------
//  Routes

static void
s_strings_destroy (char ***list_p)
{
    if (*list_p) {
        for (char **s = *list_p; *s; s++)
            free (*s);
        free (*list_p);
        *list_p = NULL;
    }
}

static void
s_route_destroy (keel_route_t **self_p)
{
    keel_route_t *self = *self_p;
    if (!self)
        return;
    free (self->name);
    free (self->host);
    free (self->path);
    free (self->target_name);
    s_strings_destroy (&self->scopes);
    s_strings_destroy (&self->roles);
    if (self->segs)
        for (size_t i = 0; i < self->seg_count; i++)
            free (self->segs[i].text);
    free (self->segs);
    free (self);
    *self_p = NULL;
}

//  Order of route pointers by name, for by_name.
static int
s_name_compare (const void *a_p, const void *b_p)
{
    return strcmp ((*(const keel_route_t *const *)a_p)->name,
                   (*(const keel_route_t *const *)b_p)->name);
}

//  Priority order (routes.h): negative when a comes first.
static int
s_rank_compare (const void *a_p, const void *b_p)
{
    const keel_route_t *a = *(const keel_route_t *const *)a_p;
    const keel_route_t *b = *(const keel_route_t *const *)b_p;
    if (a->priority != b->priority)
        return a->priority > b->priority ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->literal_count != b->literal_count)
        return a->literal_count > b->literal_count ? -1 : 1;
    if (a->kind == KEEL_ROUTE_PREFIX && a->seg_count != b->seg_count)
        return a->seg_count > b->seg_count ? -1 : 1;
    if (a->host_class != b->host_class)
        return a->host_class < b->host_class ? -1 : 1;
    if (a->host_class == 1) {
        size_t al = strlen (a->host), bl = strlen (b->host);
        if (al != bl)
            return al > bl ? -1 : 1;
    }
    return a->config_index < b->config_index ? -1 : 1;
}

// ---------------------------------------------------------------------------
//  Loading: the parser of one route

//  The keys of a route section, in the order of s_keys.
enum {
    K_NAME,
    K_HOST,
    K_PATH,
    K_METHODS,
    K_TARGET,
    K_POLICY,
    K_TIMEOUT,
    K_RETRIES,
    K_RETRY_BUDGET,
    K_AUTH,
    K_SCOPES,
    K_ROLES,
    K_PRIORITY,
    K_COUNT
};
static const char *s_keys[] = {"name",         "host",   "path",    "methods",
                               "target",       "policy", "timeout", "retries",
                               "retry_budget", "auth",   "scopes",  "roles",
                               "priority",     NULL};

//  A route being loaded: the config nodes behind it, for messages.
typedef struct {
    zconfig_t *section;        //  the `route` key
    zconfig_t *nodes[K_COUNT]; //  its keys, NULL when absent
} s_pending_t;

//  The value of a key node ("" when it has none).
static const char *
s_value (zconfig_t *node)
{
    return zconfig_value (node) ? zconfig_value (node) : "";
}

//  Parse a path (routes.h, "Paths") into route->segs and friends. Returns
//  0, or -1 with a reason in why[why_size].
static int
s_parse_path (keel_route_t *route, const char *text, char *why, size_t why_size)
{
    if (text[0] != '/') {
        snprintf (why, why_size, "path '%s' must start with '/'", text);
        return -1;
    }
    route->segs =
        (s_seg_t *)calloc (KEEL_ROUTES_MAX_SEGMENTS, sizeof (s_seg_t));
    if (!route->segs) {
        snprintf (why, why_size, "out of memory");
        return -1;
    }
    bool prefix = false;
    const char *p = text + 1;
    for (size_t number = 1;; number++) {
        size_t len = strcspn (p, "/");
        bool last = p[len] == 0;
        if (len == 1 && p[0] == '*') {
            if (!last) {
                snprintf (why, why_size,
                          "path '%s': '*' must be the last segment", text);
                return -1;
            }
            prefix = true;
            break;
        }
        if (route->seg_count == KEEL_ROUTES_MAX_SEGMENTS) {
            snprintf (why, why_size, "path '%s' has more than %d segments",
                      text, KEEL_ROUTES_MAX_SEGMENTS);
            return -1;
        }
        s_seg_t *seg = &route->segs[route->seg_count];
        if (memchr (p, '*', len)) {
            snprintf (why, why_size,
                      "path '%s': '*' must be a whole segment, and the last",
                      text);
            return -1;
        }
        //  Braces: balanced means alternating '{' '}' starting with '{'
        size_t braces = 0;
        bool balanced = true;
        for (size_t i = 0; i < len; i++)
            if (p[i] == '{' || p[i] == '}') {
                balanced = balanced && (p[i] == '{') == (braces % 2 == 0);
                braces++;
            }
        if (!balanced || braces % 2) {
            snprintf (why, why_size,
                      "path '%s': unbalanced braces in segment %zu", text,
                      number);
            return -1;
        }
        if (braces) {
            //  A parameter: exactly "{name}"
            const char *body = p + 1;
            size_t body_len = len - 2;
            if (braces > 2 || p[0] != '{' || p[len - 1] != '}') {
                snprintf (why, why_size,
                          "path '%s': a parameter must be a whole segment "
                          "('{name}') in segment %zu",
                          text, number);
                return -1;
            }
            if (body_len == 0) {
                snprintf (why, why_size,
                          "path '%s': empty parameter name '{}' in segment %zu",
                          text, number);
                return -1;
            }
            bool valid = body_len <= S_MAX_PARAM_NAME &&
                         (s_alpha ((unsigned char)body[0]) || body[0] == '_');
            for (size_t i = 0; valid && i < body_len; i++)
                valid = s_alnum ((unsigned char)body[i]) || body[i] == '_';
            if (!valid) {
                snprintf (why, why_size,
                          "path '%s': parameter name '%.*s' is not "
                          "[A-Za-z_][A-Za-z0-9_]* (at most %d characters)",
                          text, (int)body_len, body, S_MAX_PARAM_NAME);
                return -1;
            }
            for (size_t i = 0; i < route->param_count; i++)
                if (strlen (route->param_names[i]) == body_len &&
                    memcmp (route->param_names[i], body, body_len) == 0) {
                    snprintf (why, why_size,
                              "path '%s': parameter '%.*s' given twice", text,
                              (int)body_len, body);
                    return -1;
                }
            if (route->param_count == KEEL_ROUTES_MAX_PARAMS) {
                snprintf (why, why_size,
                          "path '%s' has more than %d parameters", text,
                          KEEL_ROUTES_MAX_PARAMS);
                return -1;
            }
            seg->param = true;
            seg->text = strndup (body, body_len);
            seg->len = body_len;
            if (!seg->text) {
                snprintf (why, why_size, "out of memory");
                return -1;
            }
            route->seg_count++; //  counted once allocated, for destroy
            route->param_names[route->param_count++] = seg->text;
        } else {
            //  A literal: empty only as the last ("/" or "/a/")
            if (len == 0 && !last) {
                snprintf (why, why_size, "path '%s': empty segment %zu ('//')",
                          text, number);
                return -1;
            }
            seg->text = (char *)malloc (3 * len + 1);
            if (!seg->text) {
                snprintf (why, why_size, "out of memory");
                return -1;
            }
            route->seg_count++;
            s_seg_rc_t rc = s_canonical (p, len, seg->text, &seg->len);
            if (rc == S_SEG_OK)
                seg->text[seg->len] = 0;
            if (rc == S_SEG_BAD_ESCAPE || rc == S_SEG_NUL) {
                snprintf (why, why_size,
                          "path '%s': bad %% escape in segment %zu (expected "
                          "%%XX with two hex digits, not %%00)",
                          text, number);
                return -1;
            }
            if (rc == S_SEG_BAD_CHAR) {
                snprintf (why, why_size,
                          "path '%s': space, control character, '?' or '#' "
                          "in segment %zu",
                          text, number);
                return -1;
            }
            if (s_dot_segment (seg->text, seg->len)) {
                snprintf (why, why_size,
                          "path '%s': segment %zu is '.' or '..', which no "
                          "request may contain",
                          text, number);
                return -1;
            }
            route->literal_count++;
        }
        if (last)
            break;
        p += len + 1;
    }
    if (route->seg_count) {
        //  Give back the unused slots (param_names point at the texts)
        s_seg_t *segs = (s_seg_t *)realloc (route->segs, route->seg_count *
                                                             sizeof (s_seg_t));
        if (segs)
            route->segs = segs;
    }
    route->kind = prefix               ? KEEL_ROUTE_PREFIX
                  : route->param_count ? KEEL_ROUTE_TEMPLATE
                                       : KEEL_ROUTE_EXACT;
    return 0;
}

//  Split a list value at spaces and commas into a new NULL-terminated
//  array. Returns NULL if out of memory.
static char **
s_split (const char *text, size_t *count_p)
{
    static const char *separators = " \t,";
    size_t count = 0;
    for (const char *p = text; *p;) {
        p += strspn (p, separators);
        size_t len = strcspn (p, separators);
        if (len)
            count++;
        p += len;
    }
    char **list = (char **)calloc (count + 1, sizeof (char *));
    if (!list)
        return NULL;
    size_t i = 0;
    for (const char *p = text; *p;) {
        p += strspn (p, separators);
        size_t len = strcspn (p, separators);
        if (len && !(list[i++] = strndup (p, len))) {
            s_strings_destroy (&list);
            return NULL;
        }
        p += len;
    }
    *count_p = count;
    return list;
}

//  A decimal integer in [min, max], as keel_config_int reads one.
static int
s_int (keel_config_t *config, zconfig_t *node, int64_t min, int64_t max,
       int64_t *value_p)
{
    const char *text = s_value (node);
    const char *digits = text + (*text == '-' || *text == '+');
    if (!isdigit ((unsigned char)*digits))
        return keel_config_fail_node (config, node,
                                      "expected an integer, got '%s'", text);
    errno = 0;
    char *end;
    long long value = strtoll (text, &end, 10);
    if (*end)
        return keel_config_fail_node (config, node,
                                      "expected an integer, got '%s'", text);
    if (errno == ERANGE || value < min || value > max)
        return keel_config_fail_node (
            config, node, "%s is out of range (%" PRId64 " to %" PRId64 ")",
            text, min, max);
    *value_p = value;
    return 0;
}

//  A duration, as keel_config_duration_ms reads one ("250ms", "2s", "5m",
//  "1h", a bare number of ms). keel_config reads keys by path, which names
//  the first of repeated sections, so repeated routes parse their own.
static int
s_duration_ms (keel_config_t *config, zconfig_t *node, int64_t *value_p)
{
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *text = s_value (node);
    if (*text == '-')
        return keel_config_fail_node (
            config, node, "duration must not be negative, got '%s'", text);
    const char *p = text;
    int64_t number = 0;
    bool overflow = false;
    for (; isdigit ((unsigned char)*p); p++) {
        int digit = *p - '0';
        if (number > (INT64_MAX - digit) / 10)
            overflow = true;
        else
            number = number * 10 + digit;
    }
    for (size_t i = 0; p != text && i < sizeof units / sizeof units[0]; i++)
        if (streq (p, units[i].suffix)) {
            if (overflow || number > INT64_MAX / units[i].ms)
                return keel_config_fail_node (
                    config, node, "duration '%s' is too large", text);
            *value_p = number * units[i].ms;
            return 0;
        }
    return keel_config_fail_node (config, node,
                                  "expected a duration such as 250ms, 2s, 5m "
                                  "or 1h (bare number = ms), got '%s'",
                                  text);
}

//  Find `text` in names[0..count-1]. Returns its index or -1.
static int
s_lookup_name (const char *text, const char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (streq (text, names[i]))
            return (int)i;
    return -1;
}

//  Collect the keys of a route section into pending->nodes. Returns 0 or -1.
static int
s_collect_keys (keel_config_t *config, s_pending_t *pending)
{
    if (*s_value (pending->section))
        return keel_config_fail_node (
            config, pending->section,
            "expected a section (give the route's keys on the lines below)");
    for (zconfig_t *child = zconfig_child (pending->section); child;
         child = zconfig_next (child)) {
        const char *name = zconfig_name (child) ? zconfig_name (child) : "";
        int key = -1;
        for (int k = 0; k < K_COUNT && key < 0; k++)
            if (streq (name, s_keys[k]))
                key = k;
        if (key < 0)
            return keel_config_fail_node (
                config, child,
                "unknown key (expected one of: name, host, path, methods, "
                "target, policy, timeout, retries, retry_budget, auth, "
                "scopes, roles, priority)");
        if (pending->nodes[key])
            return keel_config_fail_node (
                config, child, "given twice (first at line %d)",
                keel_config_node_line (config, pending->nodes[key]));
        if (zconfig_child (child))
            return keel_config_fail_node (config, child,
                                          "expected a value, found a section");
        pending->nodes[key] = child;
    }
    return 0;
}

//  True if `name` is a usable route name.
static bool
s_route_name_valid (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > S_MAX_ROUTE_NAME)
        return false;
    for (const char *p = name; *p; p++)
        if (!s_alnum ((unsigned char)*p) && !strchr ("_.-", *p))
            return false;
    return true;
}

//  True if `name` is a usable service or saga name: 1..128 printable ASCII
//  characters, no spaces.
static bool
s_target_name_valid (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > S_MAX_TARGET_NAME)
        return false;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p == 0x7F || (unsigned char)*p > 0x7F)
            return false;
    return true;
}

//  Parse the methods value. Returns 0 or -1.
static int
s_parse_methods (keel_config_t *config, zconfig_t *node, unsigned *methods_p)
{
    size_t count = 0;
    char **tokens = s_split (s_value (node), &count);
    if (!tokens)
        return keel_config_fail_node (config, node, "out of memory");
    unsigned methods = 0;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        for (char *c = tokens[i]; *c; c++)
            *c = s_upper ((unsigned char)*c);
        unsigned bit = keel_routes_method_parse (tokens[i]);
        if (!bit)
            rc = keel_config_fail_node (
                config, node,
                "unknown method '%s' (expected GET, HEAD, POST, PUT, DELETE, "
                "PATCH, OPTIONS, TRACE or CONNECT)",
                tokens[i]);
        methods |= bit;
    }
    s_strings_destroy (&tokens);
    if (rc == 0 && methods == 0)
        rc = keel_config_fail_node (
            config, node, "no methods (leave 'methods' out to allow all)");
    if (methods & KEEL_ROUTE_GET)
        methods |= KEEL_ROUTE_HEAD;
    *methods_p = methods;
    return rc;
}

//  Parse one route section into a new route. Returns it, or NULL with the
//  config's error set.
static keel_route_t *
s_route_load (keel_config_t *config, s_pending_t *pending)
{
    zconfig_t **nodes = pending->nodes;
    char why[512];
    if (s_collect_keys (config, pending))
        return NULL;
    if (!nodes[K_NAME]) {
        keel_config_fail_node (config, pending->section, "missing 'name'");
        return NULL;
    }
    if (!nodes[K_PATH]) {
        keel_config_fail_node (config, pending->section, "missing 'path'");
        return NULL;
    }
    if (!nodes[K_TARGET]) {
        keel_config_fail_node (config, pending->section, "missing 'target'");
        return NULL;
    }
    keel_route_t *route = (keel_route_t *)zmalloc (sizeof *route);
    if (!route) {
        keel_config_fail_node (config, pending->section, "out of memory");
        return NULL;
    }
    route->line = keel_config_node_line (config, pending->section);
    route->timeout_ms = S_DEFAULT_TIMEOUT_MS;
    route->retry_budget = 20;
    route->host_class = 2;

    //  Name
    const char *name = s_value (nodes[K_NAME]);
    if (!s_route_name_valid (name)) {
        keel_config_fail_node (config, nodes[K_NAME],
                               "invalid route name '%s' (1..%d of "
                               "A-Z a-z 0-9 _ . -)",
                               name, S_MAX_ROUTE_NAME);
        goto fail;
    }
    route->name = strdup (name);
    route->path = strdup (s_value (nodes[K_PATH]));
    if (!route->name || !route->path)
        goto oom;

    //  Host
    if (nodes[K_HOST]) {
        route->host = strdup (s_value (nodes[K_HOST]));
        if (!route->host)
            goto oom;
        const char *problem = s_config_host (route->host);
        if (problem) {
            keel_config_fail_node (config, nodes[K_HOST], "%s: '%s'", problem,
                                   s_value (nodes[K_HOST]));
            goto fail;
        }
        route->host_class = route->host[0] == '*' ? 1 : 0;
    }

    //  Path
    if (s_parse_path (route, route->path, why, sizeof why)) {
        keel_config_fail_node (config, nodes[K_PATH], "%s", why);
        goto fail;
    }

    //  Target
    const char *target = s_value (nodes[K_TARGET]);
    const char *colon = strchr (target, ':');
    int type = -1;
    if (colon)
        for (size_t i = 0; i < sizeof s_target_names / sizeof s_target_names[0];
             i++)
            if (strlen (s_target_names[i]) == (size_t)(colon - target) &&
                memcmp (s_target_names[i], target, (size_t)(colon - target)) ==
                    0)
                type = (int)i;
    if (type < 0 || !s_target_name_valid (colon + 1)) {
        keel_config_fail_node (
            config, nodes[K_TARGET],
            "expected bus:SERVICE, http:SERVICE, saga:NAME or "
            "saga-status:NAME (a name is 1..%d characters, no spaces), "
            "got '%s'",
            S_MAX_TARGET_NAME, target);
        goto fail;
    }
    route->target = (keel_route_target_t)type;
    route->target_name = strdup (colon + 1);
    if (!route->target_name)
        goto oom;
    bool saga = route->target == KEEL_ROUTE_TARGET_SAGA ||
                route->target == KEEL_ROUTE_TARGET_SAGA_STATUS;

    //  Methods
    unsigned only = route->target == KEEL_ROUTE_TARGET_SAGA ? KEEL_ROUTE_POST
                    : route->target == KEEL_ROUTE_TARGET_SAGA_STATUS
                        ? KEEL_ROUTE_GET | KEEL_ROUTE_HEAD
                        : KEEL_ROUTE_METHODS;
    route->methods = only;
    if (nodes[K_METHODS]) {
        if (s_parse_methods (config, nodes[K_METHODS], &route->methods))
            goto fail;
        if (route->methods & ~only) {
            keel_config_fail_node (
                config, nodes[K_METHODS], "a %s: target allows only %s",
                s_target_names[route->target],
                only == KEEL_ROUTE_POST ? "POST" : "GET and HEAD");
            goto fail;
        }
    }
    if (route->target == KEEL_ROUTE_TARGET_SAGA_STATUS) {
        bool has_id = false;
        for (size_t i = 0; i < route->param_count; i++)
            has_id = has_id || streq (route->param_names[i], "id");
        if (!has_id) {
            keel_config_fail_node (config, nodes[K_PATH],
                                   "a saga-status: route needs an {id} "
                                   "parameter (the saga's id)");
            goto fail;
        }
    }

    //  Balancing and retries: bus: and http: only
    static const int saga_free[] = {K_POLICY, K_RETRIES, K_RETRY_BUDGET};
    for (size_t i = 0; saga && i < sizeof saga_free / sizeof saga_free[0]; i++)
        if (nodes[saga_free[i]]) {
            keel_config_fail_node (config, nodes[saga_free[i]],
                                   "applies only to bus: and http: targets");
            goto fail;
        }
    if (nodes[K_POLICY]) {
        const char *text = s_value (nodes[K_POLICY]);
        int policy =
            s_lookup_name (text, s_policy_names,
                           sizeof s_policy_names / sizeof s_policy_names[0]);
        if (policy < 0) {
            keel_config_fail_node (config, nodes[K_POLICY],
                                   "unknown policy '%s' (expected round_robin, "
                                   "weighted, least_conn or p2c)",
                                   text);
            goto fail;
        }
        route->policy = (keel_route_policy_t)policy;
    }
    int64_t value;
    if (nodes[K_TIMEOUT]) {
        if (s_duration_ms (config, nodes[K_TIMEOUT], &route->timeout_ms))
            goto fail;
        if (route->timeout_ms == 0) {
            keel_config_fail_node (config, nodes[K_TIMEOUT],
                                   "timeout must be more than 0");
            goto fail;
        }
    }
    if (nodes[K_RETRIES]) {
        if (s_int (config, nodes[K_RETRIES], 0, S_MAX_RETRIES, &value))
            goto fail;
        route->retries = (int)value;
    }
    if (nodes[K_RETRY_BUDGET]) {
        //  "20" or "20%"
        zconfig_t *node = nodes[K_RETRY_BUDGET];
        const char *text = s_value (node);
        size_t len = strlen (text);
        char number[32];
        if (len > 0 && len < sizeof number && text[len - 1] == '%')
            len--;
        snprintf (number, sizeof number, "%.*s", (int)len, text);
        char *end;
        errno = 0;
        long budget = strtol (number, &end, 10);
        if (!isdigit ((unsigned char)number[0]) || *end || errno ||
            budget > 100 || len >= sizeof number) {
            keel_config_fail_node (
                config, node,
                "expected a percentage 0..100 (\"20%%\"), got '%s'", text);
            goto fail;
        }
        route->retry_budget = (int)budget;
    }

    //  Auth
    if (nodes[K_AUTH]) {
        const char *text = s_value (nodes[K_AUTH]);
        int auth = s_lookup_name (text, s_auth_names,
                                  sizeof s_auth_names / sizeof s_auth_names[0]);
        if (auth < 0) {
            keel_config_fail_node (config, nodes[K_AUTH],
                                   "unknown auth '%s' (expected none, jwt, "
                                   "api_key or any)",
                                   text);
            goto fail;
        }
        route->auth = (keel_route_auth_t)auth;
    }
    size_t scope_count = 0, role_count = 0;
    route->scopes = s_split (nodes[K_SCOPES] ? s_value (nodes[K_SCOPES]) : "",
                             &scope_count);
    route->roles =
        s_split (nodes[K_ROLES] ? s_value (nodes[K_ROLES]) : "", &role_count);
    if (!route->scopes || !route->roles)
        goto oom;
    if ((scope_count || role_count) && route->auth == KEEL_ROUTE_AUTH_NONE) {
        keel_config_fail_node (
            config, scope_count ? nodes[K_SCOPES] : nodes[K_ROLES],
            "%s need auth = jwt, api_key or any (auth is %s)",
            scope_count ? "scopes" : "roles",
            nodes[K_AUTH] ? "none" : "none by default");
        goto fail;
    }

    //  Priority
    if (nodes[K_PRIORITY]) {
        if (s_int (config, nodes[K_PRIORITY], -S_MAX_PRIORITY, S_MAX_PRIORITY,
                   &route->priority))
            goto fail;
    }
    return route;

oom:
    keel_config_fail_node (config, pending->section, "out of memory");
fail:
    s_route_destroy (&route);
    return NULL;
}

// ---------------------------------------------------------------------------
//  Loading: the table

//  Find two routes only the config order tells apart: same trie node (so
//  same host and path shape) and kind, same priority, a method in common.
//  Reports the pair whose later route comes first in the config. Returns 0
//  or -1.
static int
s_check_conflicts (keel_routes_t *self, keel_config_t *config,
                   s_pending_t *pending)
{
    const keel_route_t *worst = NULL, *other = NULL;
    for (size_t n = 0; n < self->node_count; n++) {
        const s_node_t *node = &self->nodes[n];
        const uint32_t runs[2][2] = {{node->first, node->count},
                                     {node->prefix_first, node->prefix_count}};
        for (int r = 0; r < 2; r++)
            for (uint32_t i = 1; i < runs[r][1]; i++) {
                const keel_route_t *b =
                    self->routes[self->lists[runs[r][0] + i]];
                //  Same priority means adjacent in the run
                for (uint32_t j = i; j-- > 0;) {
                    const keel_route_t *a =
                        self->routes[self->lists[runs[r][0] + j]];
                    if (a->priority != b->priority)
                        break;
                    if ((a->methods & b->methods) &&
                        (!worst || b->config_index < worst->config_index)) {
                        worst = b;
                        other = a;
                    }
                }
            }
    }
    if (!worst)
        return 0;
    char methods[KEEL_ROUTES_ALLOW_MAX];
    keel_routes_methods_format (worst->methods & other->methods, methods,
                                sizeof methods);
    return keel_config_fail_node (
        config, pending[worst->config_index].nodes[K_PATH],
        "route '%s' has the same host, path and priority as route '%s' "
        "(line %d) and methods in common (%s): give one a priority, or "
        "tell them apart",
        worst->name, other->name, other->line, methods);
}

keel_routes_t *
keel_routes_load (keel_config_t *config, const char *path)
{
    assert (config);
    assert (path);
    if (*path == '/')
        path++;
    zconfig_t *root = keel_config_root (config);
    zconfig_t *section = *path ? zconfig_locate (root, path) : root;

    keel_routes_t *self = (keel_routes_t *)zmalloc (sizeof *self);
    size_t capacity = 0;
    for (zconfig_t *item = section ? zconfig_child (section) : NULL; item;
         item = zconfig_next (item))
        if (zconfig_name (item) && streq (zconfig_name (item), "route"))
            capacity++;
    s_pending_t *pending =
        (s_pending_t *)calloc (capacity + 1, sizeof (s_pending_t));
    zhashx_t *seen = zhashx_new (); //  name -> route, for names given twice
    if (self) {
        self->routes =
            (keel_route_t **)calloc (capacity + 1, sizeof (keel_route_t *));
        self->by_name =
            (keel_route_t **)calloc (capacity + 1, sizeof (keel_route_t *));
    }
    if (!self || !pending || !seen || !self->routes || !self->by_name ||
        s_node_new (self) != 0) {
        keel_config_fail (config, path, "out of memory");
        goto fail;
    }
    //  Parse every route, in config order
    for (zconfig_t *item = section ? zconfig_child (section) : NULL; item;
         item = zconfig_next (item)) {
        if (!zconfig_name (item) || !streq (zconfig_name (item), "route"))
            continue;
        s_pending_t *slot = &pending[self->count];
        slot->section = item;
        keel_route_t *route = s_route_load (config, slot);
        if (!route)
            goto fail;
        route->config_index = self->count;
        self->routes[self->count++] = route;
        const keel_route_t *first =
            (const keel_route_t *)zhashx_lookup (seen, route->name);
        if (first) {
            keel_config_fail_node (
                config, slot->nodes[K_NAME],
                "route name '%s' given twice (first at line %d)", route->name,
                keel_config_node_line (
                    config, pending[first->config_index].nodes[K_NAME]));
            goto fail;
        }
        if (zhashx_insert (seen, route->name, route)) {
            keel_config_fail_node (config, item, "out of memory");
            goto fail;
        }
    }
    //  Rank, then build the tries and their runs
    if (self->count) {
        memcpy (self->by_name, self->routes,
                self->count * sizeof (keel_route_t *));
        qsort (self->by_name, self->count, sizeof (keel_route_t *),
               s_name_compare);
        qsort (self->routes, self->count, sizeof (keel_route_t *),
               s_rank_compare);
    }
    for (size_t i = 0; i < self->count; i++) {
        keel_route_t *route = self->routes[i];
        route->index = i;
        if (route->seg_count > self->max_depth)
            self->max_depth = route->seg_count;
        if (route->host_class == 1)
            self->wildcards = true;
        if (s_trie_insert (self, route)) {
            keel_config_fail (config, path, "out of memory");
            goto fail;
        }
    }
    if (s_trie_lists (self)) {
        keel_config_fail (config, path, "out of memory");
        goto fail;
    }
    if (s_check_conflicts (self, config, pending))
        goto fail;
    free (pending);
    zhashx_destroy (&seen);
    return self;

fail:
    free (pending);
    zhashx_destroy (&seen);
    keel_routes_destroy (&self);
    return NULL;
}

void
keel_routes_destroy (keel_routes_t **self_p)
{
    if (self_p && *self_p) {
        keel_routes_t *self = *self_p;
        if (self->routes)
            for (size_t i = 0; i < self->count; i++)
                s_route_destroy (&self->routes[i]);
        free (self->routes);
        free (self->by_name);
        free (self->nodes);
        free (self->edges);
        free (self->lists);
        free (self);
        *self_p = NULL;
    }
}

size_t
keel_routes_size (const keel_routes_t *self)
{
    assert (self);
    return self->count;
}

const keel_route_t *
keel_routes_find (const keel_routes_t *self, const char *name)
{
    assert (self);
    if (!name || !self->count)
        return NULL;
    keel_route_t key_route = {0};
    key_route.name = (char *)name;
    const keel_route_t *key = &key_route;
    keel_route_t **found =
        (keel_route_t **)bsearch (&key, self->by_name, self->count,
                                  sizeof (keel_route_t *), s_name_compare);
    return found ? *found : NULL;
}

const keel_route_t *
keel_routes_at (const keel_routes_t *self, size_t index)
{
    assert (self);
    assert (index < self->count);
    return self->routes[index];
}

int
keel_routes_each (const keel_routes_t *self, keel_routes_each_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    for (size_t i = 0; i < self->count; i++) {
        int rc = fn (self->routes[i], arg);
        if (rc)
            return rc;
    }
    return 0;
}

// ---------------------------------------------------------------------------
//  Matching

//  The state of one match.
typedef struct {
    const keel_routes_t *table;
    const char *canon;        //  canonical segments, back to back
    const uint32_t *coff;     //  offset of segment i in canon
    const uint32_t *clen;     //  its length
    size_t nseg;              //  segments in the request path
    unsigned method;          //  the request's, 0 if unknown
    const keel_route_t *best; //  best route so far
    unsigned allow;           //  methods of routes that matched the path only
    bool path_matched;        //  some route matched host and path
} s_walk_t;

//  Look at a run of routes (sorted by index) that match the path.
static void
s_visit (s_walk_t *walk, uint32_t first, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        const keel_route_t *route =
            walk->table->routes[walk->table->lists[first + i]];
        walk->path_matched = true;
        if (route->methods & walk->method) {
            if (!walk->best || route->index < walk->best->index)
                walk->best = route;
            return;
        }
        walk->allow |= route->methods;
    }
}

//  Match segments depth.. of the request below `node_id`.
static void
s_walk (s_walk_t *walk, uint32_t node_id, size_t depth)
{
    const s_node_t *node = &walk->table->nodes[node_id];
    if (node->prefix_count && depth < walk->nseg)
        s_visit (walk, node->prefix_first, node->prefix_count);
    if (depth == walk->nseg) {
        s_visit (walk, node->first, node->count);
        return;
    }
    if (depth >= walk->table->max_depth)
        return; //  no route is deeper
    uint32_t child =
        s_edge_find (walk->table, node_id, walk->canon + walk->coff[depth],
                     walk->clen[depth]);
    if (child != S_NONE)
        s_walk (walk, child, depth + 1);
    if (node->param != S_NONE && walk->clen[depth] > 0)
        s_walk (walk, node->param, depth + 1);
}

//  Walk the trie of host key `key`, if there is one.
static void
s_walk_host (s_walk_t *walk, const char *key, size_t len)
{
    uint32_t root = s_edge_find (walk->table, 0, key, len);
    if (root != S_NONE)
        s_walk (walk, root, 0);
}

keel_routes_result_t
keel_routes_match_n (const keel_routes_t *self, const char *host,
                     const char *method, const char *path, size_t size,
                     keel_route_match_t *match)
{
    assert (self);
    assert (path || size == 0);
    assert (match);
    keel_route_match_clear (match);
    if (size > KEEL_ROUTES_MAX_PATH)
        return KEEL_ROUTES_TOO_LONG;
    if (size == 0 || path[0] != '/')
        return KEEL_ROUTES_BAD_PATH;

    //  Split and canonicalise; keep where the first segments start (raw)
    //  and lie (canonical), as deep as any route goes and one more
    char canon[3 * KEEL_ROUTES_MAX_PATH];
    uint32_t coff[KEEL_ROUTES_MAX_SEGMENTS + 1];
    uint32_t clen[KEEL_ROUTES_MAX_SEGMENTS + 1];
    uint32_t roff[KEEL_ROUTES_MAX_SEGMENTS + 1];
    uint32_t rlen[KEEL_ROUTES_MAX_SEGMENTS + 1];
    size_t nseg = 0, used = 0;
    for (size_t start = 1;;) {
        const char *slash =
            (const char *)memchr (path + start, '/', size - start);
        size_t end = slash ? (size_t)(slash - path) : size;
        size_t len;
        if (s_canonical (path + start, end - start, canon + used, &len))
            return KEEL_ROUTES_BAD_PATH;
        if (s_dot_segment (canon + used, len))
            return KEEL_ROUTES_BAD_PATH;
        if (nseg <= KEEL_ROUTES_MAX_SEGMENTS) {
            coff[nseg] = (uint32_t)used;
            clen[nseg] = (uint32_t)len;
            roff[nseg] = (uint32_t)start;
            rlen[nseg] = (uint32_t)(end - start);
            used += len;
        }
        nseg++;
        if (!slash)
            break;
        start = end + 1;
    }

    s_walk_t walk = {.table = self,
                     .canon = canon,
                     .coff = coff,
                     .clen = clen,
                     .nseg = nseg,
                     .method = keel_routes_method_parse (method)};
    char name[S_MAX_HOST + 1];
    size_t name_len = s_request_host (host, name);
    if (name_len) {
        s_walk_host (&walk, name, name_len);
        if (self->wildcards) {
            //  "*.b.c" then "*.c" for "a.b.c"
            char key[S_MAX_HOST + 2];
            for (size_t i = 1; i + 1 < name_len; i++)
                if (name[i] == '.') {
                    key[0] = '*';
                    memcpy (key + 1, name + i, name_len - i);
                    s_walk_host (&walk, key, name_len - i + 1);
                }
        }
    }
    s_walk_host (&walk, "", 0);

    if (!walk.best) {
        if (!walk.path_matched)
            return KEEL_ROUTES_NO_ROUTE;
        match->allow = walk.allow;
        keel_routes_methods_format (walk.allow, match->allow_text,
                                    sizeof match->allow_text);
        return KEEL_ROUTES_METHOD_NOT_ALLOWED;
    }
    const keel_route_t *route = walk.best;
    match->route = route;
    char *out = match->buffer_;
    for (size_t i = 0; i < route->seg_count; i++)
        if (route->segs[i].param) {
            keel_route_param_t *param = &match->params[match->param_count++];
            param->name = route->segs[i].text;
            param->value = out;
            out += s_decode (path + roff[i], rlen[i], out) + 1;
        }
    if (route->kind == KEEL_ROUTE_PREFIX) {
        //  From the slash before the first segment past the prefix
        size_t from = roff[route->seg_count] - 1;
        memcpy (out, path + from, size - from);
        out[size - from] = 0;
        match->rest = out;
    }
    return KEEL_ROUTES_FOUND;
}

keel_routes_result_t
keel_routes_match (const keel_routes_t *self, const char *host,
                   const char *method, const char *path,
                   keel_route_match_t *match)
{
    assert (path);
    return keel_routes_match_n (self, host, method, path, strlen (path), match);
}

void
keel_route_match_clear (keel_route_match_t *match)
{
    assert (match);
    match->route = NULL;
    match->param_count = 0;
    match->rest = NULL;
    match->allow = 0;
    match->allow_text[0] = 0;
}

const char *
keel_route_match_param (const keel_route_match_t *match, const char *name)
{
    assert (match);
    assert (name);
    for (size_t i = 0; i < match->param_count; i++)
        if (streq (match->params[i].name, name))
            return match->params[i].value;
    return NULL;
}

// ---------------------------------------------------------------------------
//  Accessors

const char *
keel_route_name (const keel_route_t *self)
{
    assert (self);
    return self->name;
}

const char *
keel_route_host (const keel_route_t *self)
{
    assert (self);
    return self->host;
}

const char *
keel_route_path (const keel_route_t *self)
{
    assert (self);
    return self->path;
}

keel_route_kind_t
keel_route_kind (const keel_route_t *self)
{
    assert (self);
    return self->kind;
}

unsigned
keel_route_methods (const keel_route_t *self)
{
    assert (self);
    return self->methods;
}

keel_route_target_t
keel_route_target (const keel_route_t *self)
{
    assert (self);
    return self->target;
}

const char *
keel_route_target_name (const keel_route_t *self)
{
    assert (self);
    return self->target_name;
}

keel_route_policy_t
keel_route_policy (const keel_route_t *self)
{
    assert (self);
    return self->policy;
}

int64_t
keel_route_timeout_ms (const keel_route_t *self)
{
    assert (self);
    return self->timeout_ms;
}

int
keel_route_retries (const keel_route_t *self)
{
    assert (self);
    return self->retries;
}

int
keel_route_retry_budget (const keel_route_t *self)
{
    assert (self);
    return self->retry_budget;
}

keel_route_auth_t
keel_route_auth (const keel_route_t *self)
{
    assert (self);
    return self->auth;
}

const char *const *
keel_route_scopes (const keel_route_t *self)
{
    assert (self);
    return (const char *const *)self->scopes;
}

const char *const *
keel_route_roles (const keel_route_t *self)
{
    assert (self);
    return (const char *const *)self->roles;
}

int64_t
keel_route_priority (const keel_route_t *self)
{
    assert (self);
    return self->priority;
}

size_t
keel_route_param_count (const keel_route_t *self)
{
    assert (self);
    return self->param_count;
}

const char *
keel_route_param_name (const keel_route_t *self, size_t index)
{
    assert (self);
    assert (index < self->param_count);
    return self->param_names[index];
}

int
keel_route_line (const keel_route_t *self)
{
    assert (self);
    return self->line;
}

size_t
keel_route_index (const keel_route_t *self)
{
    assert (self);
    return self->index;
}
