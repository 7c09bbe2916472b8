/*  catalog.c - the registry's pure core: instances, their health, the index.

    One entry per instance, reachable four ways:

      by_id (zhashx)        by_service (zhashx)
      id -> entry           name -> service { entries (vec), healthy count }
           |                                   |
           v                                   v
      +---------------------------------------------------------+
      | entry:  inst    deep copy of the registration; its       |
      |                 `health` points at the entry's own       |
      |         cfg     the check, defaults filled in            |
      |         ttl, active   per-check status and streaks       |
      |         times   last check, ttl expiry, critical since,  |
      |                 running deadline, next check due         |
      |         all_pos, svc_pos, heap_pos[2]  back-pointers     |
      +---------------------------------------------------------+
           ^                                   ^
      all (vec): every entry            heaps[2]: binary min-heaps
      origins: one group per origin     (see below)
        (own first), each a vec of
        its entries and a lease
                                          TICK:  earliest of ttl expiry,
                                                 running check's timeout,
                                                 removal (critical too long)
                                          CHECK: next active check due
                                                 (entries not running)

    - Lookups by id and by service are O(1); discover and list touch only
      what they return (a service's entries, or all of them).
    - The vecs are sorted by id on demand: removing swaps the last entry into
      the hole and an out-of-order append clears `sorted`; the next read sorts
      once. Ids never change, so updates keep the order.
    - Every pending time of an entry is in a heap under the earliest of them,
      so next_deadline is O(1), tick pops only what is due, and a change
      re-keys one entry in O(log n). Tick handles an entry's work in time
      order at the time it was due, not at `now_ms`: a late tick gives the
      same result as a punctual one.
    - Room in the vecs, heaps and result array is reserved before a
      registration commits, so a change never fails half-way.
    - Ids and service names come from clients, so both tables hash with
      SipHash-2-4 (libsodium) under a per-catalog random key: zhashx's own hash
   is unkeyed, and zhashx grows its table on every lookup that walks a long
      chain, so colliding names could make it grow without bound.

    Origins. origins[0] is this catalog's own group: what it owns, checks
    and versions. Every other group holds the replicas of one peer: their
    cfg is empty (no check, nothing in HEAP_CHECK), their health is the
    owner's as last applied, and the group's one lease stands for all of
    them (groups are few: one per peer, so next_deadline and tick scan
    them). An entry moves between groups when a newer version from another
    origin replaces it. Digests sort a group's vec and hash it.

    Health of one check (TTL, or the active check the shell runs):

      success:  streak of successes +1, failures 0; PASSING once the streak
                reaches successes_before_passing (at once from WARNING)
      failure:  streak of failures +1, successes 0; CRITICAL once the streak
                reaches failures_before_critical
      heartbeat WARNING:  WARNING at once, both streaks 0
      heartbeat CRITICAL: CRITICAL at once, a failure for the streaks

    A TTL check stops counting expiries once it is CRITICAL with no success
    streak to break: further silence would change nothing, and a dead
    instance then costs no timer.
*/
#include "catalog.h"
#include "keel_codec.h"
#include "keel_hash.h"
#include "keel_common.h"
#include "keel_security.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  No deadline.
#define S_NEVER INT64_MAX
//  Largest anti-flap count a check may ask for.
#define S_MAX_STREAK 100

enum { HEAP_TICK = 0, HEAP_CHECK = 1, HEAPS = 2 };

typedef struct _entry_t entry_t;

// ---------------------------------------------------------------------------
//  Structures

//  A key as the hash tables see it (see keel_hash.h).
typedef keel_hash_ref_t hkey_t;

//  An array of entries, each knowing its position in it.
typedef struct {
    entry_t **items;   //  the entries; owned array, borrowed entries
    size_t size;       //  entries held
    size_t cap;        //  room in items
    size_t pos_offset; //  offsetof (entry_t, <its size_t position field>)
    bool sorted;       //  items are in id order
} vec_t;

//  A binary min-heap of entries on entry->heap_key[which].
typedef struct {
    entry_t **items; //  the heap; owned array, borrowed entries
    size_t size;     //  entries held
    size_t cap;      //  room in items
    int which;       //  HEAP_TICK or HEAP_CHECK
} heap_t;

//  A check as the state machine uses it: the registration's, with defaults.
typedef struct {
    uint32_t ttl_ms;         //  TTL check period; 0 = no TTL check
    bool active;             //  the shell runs an active check
    uint32_t interval_ms;    //  active: period
    uint32_t timeout_ms;     //  active: a running check fails after this
    uint32_t successes;      //  successes_before_passing
    uint32_t failures;       //  failures_before_critical
    uint32_t dereg_after_ms; //  remove after CRITICAL this long; 0 = never
} cfg_t;

//  The state of one check.
typedef struct {
    Keel__HealthStatus status; //  this check's verdict
    uint32_t successes;        //  consecutive successes
    uint32_t failures;         //  consecutive failures
} check_t;

//  The instances one node owns: this catalog's own, or a peer's replicas.
typedef struct {
    char *name;       //  node name; owned
    vec_t entries;    //  its instances
    int64_t lease_ms; //  replicas expire at this time; S_NEVER for own
} origin_t;

//  The instances of one service.
typedef struct {
    char *name;     //  service name; owned
    hkey_t hkey;    //  by_service's key for it; points at name
    vec_t entries;  //  its instances
    size_t healthy; //  of those, PASSING or WARNING
} service_t;

struct _entry_t {
    Keel__Instance *inst;        //  deep copy (protobuf-c default allocator);
                                 //  inst->health points at `health`
    Keel__Health health;         //  instance health as handed out
    char *output;                //  health.output when not ""; owned
    hkey_t hkey;                 //  by_id's key; points at inst->id
    service_t *service;          //  the service it is listed under
    origin_t *origin;            //  its owner's group (catalog->origins[0]:
                                 //  owned; else a replica)
    cfg_t cfg;                   //  its check
    check_t ttl;                 //  TTL check state (cfg.ttl_ms != 0)
    check_t active;              //  active check state (cfg.active)
    int64_t last_check_ms;       //  time of the last check result; -1 = never
    int64_t ttl_expiry_ms;       //  when silence next counts as a failure
    int64_t critical_since_ms;   //  when the instance became CRITICAL; -1
    bool running;                //  an active check is out with the shell
    int64_t running_deadline_ms; //  it counts as failed at this time
    int64_t next_due_ms;         //  next active check is due at this time
    size_t all_pos;              //  position in catalog->all
    size_t svc_pos;              //  position in service->entries
    size_t origin_pos;           //  position in origin->entries
    size_t heap_pos[HEAPS];      //  position in each heap; SIZE_MAX = absent
    int64_t heap_key[HEAPS];     //  key in each heap
};

struct _keel_catalog_t {
    keel_catalog_limits_t limits; //  with defaults filled in
    zhashx_t *by_id;              //  hkey_t * -> entry_t *; keys borrowed
    zhashx_t *by_service;         //  hkey_t * -> service_t *; keys borrowed
    vec_t all;                    //  every entry
    heap_t heaps[HEAPS];          //  pending times, see the diagram
    uint64_t index;               //  index of the last change
    keel_catalog_event_fn *fn;    //  listener, or NULL
    void *fn_arg;                 //  its argument
    bool in_event;                //  the listener is running
    Keel__Instance **result;      //  discover/list answer; owned array
    size_t result_cap;            //  room in result
    keel_hash_key_t hash_key;     //  secret key of the hash tables
    origin_t **origins;           //  [0] own, then one per peer seen
    size_t n_origins;             //  groups held
    size_t replicas;              //  entries outside origins[0]
    uint64_t clock;               //  last version stamped or applied
    int64_t wall_ms;              //  versions are at least wall_ms << 16
};

// ---------------------------------------------------------------------------
//  Small helpers

static int64_t
s_add (int64_t t, int64_t ms)
{
    return t > S_NEVER - ms ? S_NEVER : t + ms;
}

static int64_t
s_min (int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static uint32_t
s_inc (uint32_t n)
{
    return n == UINT32_MAX ? n : n + 1;
}

//  What an array of `cap` elements grows to so it holds `need`.
static size_t
s_grown (size_t cap, size_t need)
{
    size_t grown = cap ? cap : 16;
    while (grown < need)
        grown *= 2;
    return grown;
}

//  Room for `need` pointers in an array of entries.
static int
s_reserve (entry_t ***items_p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t grown = s_grown (*cap, need);
    entry_t **items =
        (entry_t **)realloc (*items_p, grown * sizeof (entry_t *));
    if (!items)
        return -1;
    *items_p = items;
    *cap = grown;
    return 0;
}

static bool
s_healthy (Keel__HealthStatus status)
{
    return status == KEEL__HEALTH_STATUS__PASSING ||
           status == KEEL__HEALTH_STATUS__WARNING;
}

//  How bad a status is, for "the worst of its checks".
static int
s_severity (Keel__HealthStatus status)
{
    switch (status) {
    case KEEL__HEALTH_STATUS__PASSING:
        return 0;
    case KEEL__HEALTH_STATUS__WARNING:
        return 1;
    case KEEL__HEALTH_STATUS__CRITICAL:
        return 3;
    default:
        return 2; //  unknown is worse than warning: nothing vouches for it
    }
}

// ---------------------------------------------------------------------------
//  Keyed hashing (keel_hash: libsodium SipHash, random key per table)

static zhashx_t *
s_table_new (void)
{
    zhashx_t *table = zhashx_new ();
    if (!table)
        return NULL;
    keel_hash_table_setup (table);
    return table;
}

// ---------------------------------------------------------------------------
//  Vecs: arrays of entries that know their positions

#define s_vec_pos(vec, entry) (*(size_t *)((char *)(entry) + (vec)->pos_offset))

static int
s_entry_compare (const void *a, const void *b)
{
    return strcmp ((*(entry_t *const *)a)->inst->id,
                   (*(entry_t *const *)b)->inst->id);
}

//  Append; room must have been reserved.
static void
s_vec_push (vec_t *vec, entry_t *entry)
{
    assert (vec->size < vec->cap);
    if (vec->size > 0 &&
        strcmp (vec->items[vec->size - 1]->inst->id, entry->inst->id) > 0)
        vec->sorted = false;
    vec->items[vec->size] = entry;
    s_vec_pos (vec, entry) = vec->size++;
}

static void
s_vec_remove (vec_t *vec, entry_t *entry)
{
    size_t pos = s_vec_pos (vec, entry);
    assert (pos < vec->size && vec->items[pos] == entry);
    entry_t *last = vec->items[--vec->size];
    if (last != entry) {
        vec->items[pos] = last;
        s_vec_pos (vec, last) = pos;
        vec->sorted = false;
    }
}

static void
s_vec_sort (vec_t *vec)
{
    if (vec->sorted)
        return;
    qsort (vec->items, vec->size, sizeof (entry_t *), s_entry_compare);
    for (size_t pos = 0; pos < vec->size; pos++)
        s_vec_pos (vec, vec->items[pos]) = pos;
    vec->sorted = true;
}

// ---------------------------------------------------------------------------
//  Heaps

static void
s_heap_place (heap_t *heap, size_t pos, entry_t *entry)
{
    heap->items[pos] = entry;
    entry->heap_pos[heap->which] = pos;
}

static void
s_heap_up (heap_t *heap, size_t pos)
{
    int w = heap->which;
    entry_t *entry = heap->items[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (heap->items[parent]->heap_key[w] <= entry->heap_key[w])
            break;
        s_heap_place (heap, pos, heap->items[parent]);
        pos = parent;
    }
    s_heap_place (heap, pos, entry);
}

static void
s_heap_down (heap_t *heap, size_t pos)
{
    int w = heap->which;
    entry_t *entry = heap->items[pos];
    while (true) {
        size_t child = 2 * pos + 1;
        if (child >= heap->size)
            break;
        if (child + 1 < heap->size && heap->items[child + 1]->heap_key[w] <
                                          heap->items[child]->heap_key[w])
            child++;
        if (heap->items[child]->heap_key[w] >= entry->heap_key[w])
            break;
        s_heap_place (heap, pos, heap->items[child]);
        pos = child;
    }
    s_heap_place (heap, pos, entry);
}

//  Put `entry` in the heap under `key`, move it there, or take it out
//  (key S_NEVER). Room must have been reserved.
static void
s_heap_set (heap_t *heap, entry_t *entry, int64_t key)
{
    int w = heap->which;
    size_t pos = entry->heap_pos[w];
    int64_t old = entry->heap_key[w];
    entry->heap_key[w] = key;
    if (pos == SIZE_MAX) {
        if (key == S_NEVER)
            return;
        assert (heap->size < heap->cap);
        s_heap_place (heap, heap->size++, entry);
        s_heap_up (heap, heap->size - 1);
    } else if (key == S_NEVER) {
        entry->heap_pos[w] = SIZE_MAX;
        entry_t *last = heap->items[--heap->size];
        if (last != entry) {
            s_heap_place (heap, pos, last);
            s_heap_up (heap, pos);
            s_heap_down (heap, last->heap_pos[w]);
        }
    } else if (key < old)
        s_heap_up (heap, pos);
    else if (key > old)
        s_heap_down (heap, pos);
}

static int64_t
s_heap_top (heap_t *heap)
{
    return heap->size ? heap->items[0]->heap_key[heap->which] : S_NEVER;
}

// ---------------------------------------------------------------------------
//  Validation: a static reason, or NULL when fine

typedef enum { S_TCP, S_INPROC, S_IPC, S_HTTP } scheme_t;

static bool
s_alnum (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

static bool
s_name_char (char c)
{
    return s_alnum (c) || c == '.' || c == '_' || c == ':' || c == '-';
}

//  A space, a control character or DEL: never part of an endpoint or path.
static bool
s_has_blank (const char *str)
{
    for (; *str; str++)
        if ((unsigned char)*str <= ' ' || *str == 0x7f)
            return true;
    return false;
}

static bool
s_starts (const char *str, const char *prefix)
{
    return strncmp (str, prefix, strlen (prefix)) == 0;
}

//  "id" / "service": non-empty, within max_string, [A-Za-z0-9._:-].
static const char *
s_check_name (const char *name, size_t max, const char *empty,
              const char *too_long, const char *bad_char)
{
    if (!name || !*name)
        return empty;
    size_t len = 0;
    for (; name[len]; len++) {
        if (len == max)
            return too_long;
        if (!s_name_char (name[len]))
            return bad_char;
    }
    return NULL;
}

//  HOST:PORT after "scheme://"; *rest_p gets what follows the port.
static const char *
s_check_host_port (const char *at, const char **rest_p)
{
    if (*at == '[') { //  IPv6 literal, maybe with a zone
        const char *end = at + 1;
        while (s_alnum (*end) || *end == ':' || *end == '.' || *end == '%')
            end++;
        if (*end != ']' || end == at + 1)
            return "endpoint has a bad [IPv6] host";
        at = end + 1;
    } else {
        const char *end = at;
        while (s_alnum (*end) || *end == '.' || *end == '-' || *end == '_')
            end++;
        if (end == at)
            return "endpoint has no host or a bad one";
        at = end;
    }
    if (*at != ':')
        return "endpoint has no :PORT";
    at++;
    long port = 0;
    int digits = 0;
    while (*at >= '0' && *at <= '9' && digits < 6) {
        port = port * 10 + (*at++ - '0');
        digits++;
    }
    if (digits == 0 || digits > 5 || port < 1 || port > 65535)
        return "endpoint port is not 1..65535";
    *rest_p = at;
    return NULL;
}

static const char *
s_check_endpoint (const char *endpoint, size_t max, scheme_t *scheme_p)
{
    if (!endpoint || !*endpoint)
        return "endpoint is empty";
    if (strlen (endpoint) > max)
        return "endpoint is longer than max_endpoint";
    if (s_has_blank (endpoint))
        return "endpoint has a space or control character";
    const char *rest;
    const char *error;
    if (s_starts (endpoint, "tcp://")) {
        *scheme_p = S_TCP;
        if ((error = s_check_host_port (endpoint + 6, &rest)))
            return error;
        //  The one suffix a tcp endpoint may carry: its server's CURVE key.
        char key[KEEL_CURVE_KEY_LEN + 1];
        if (*rest && (*rest != ';' || keel_endpoint_key (endpoint, key) != 1))
            return "tcp endpoint has text after the port (other than "
                   "\";curve=KEY\")";
    } else if (s_starts (endpoint, "http://")) {
        *scheme_p = S_HTTP;
        if ((error = s_check_host_port (endpoint + 7, &rest)))
            return error;
        if (*rest && *rest != '/')
            return "http endpoint has text after the port that is not a path";
    } else if (s_starts (endpoint, "inproc://")) {
        *scheme_p = S_INPROC;
        if (!endpoint[9])
            return "inproc endpoint has no name";
    } else if (s_starts (endpoint, "ipc://")) {
        *scheme_p = S_IPC;
        if (!endpoint[6])
            return "ipc endpoint has no path";
    } else
        return "endpoint is not tcp://, inproc://, ipc:// or http://";
    return NULL;
}

static const char *
s_check_check (const Keel__HealthCheck *check, scheme_t scheme,
               size_t max_endpoint)
{
    if (!check)
        return NULL;
    if (check->ttl_ms > 0 && check->ttl_ms < 10)
        return "check ttl_ms is not 0 or at least 10";
    if (check->interval_ms > 0 && check->interval_ms < 10)
        return "check interval_ms is not 0 or at least 10";
    if (check->successes_before_passing > S_MAX_STREAK)
        return "check successes_before_passing is above 100";
    if (check->failures_before_critical > S_MAX_STREAK)
        return "check failures_before_critical is above 100";
    const char *path = check->http_path ? check->http_path : "";
    if (*path) {
        if (*path != '/')
            return "check http_path does not start with '/'";
        if (scheme != S_HTTP)
            return "check http_path needs an http:// endpoint";
        if (strlen (path) > max_endpoint)
            return "check http_path is longer than max_endpoint";
        if (s_has_blank (path))
            return "check http_path has a space or control character";
    }
    if (check->bus_ping && scheme == S_HTTP)
        return "check bus_ping needs a tcp://, inproc:// or ipc:// endpoint";
    if (check->tcp_connect && (scheme == S_INPROC || scheme == S_IPC))
        return "check tcp_connect needs a tcp:// or http:// endpoint";
    return NULL;
}

static const char *
s_check_instance (keel_catalog_t *self, const Keel__Instance *inst)
{
    const keel_catalog_limits_t *lim = &self->limits;
    if (!inst)
        return "instance is missing";
    const char *error;
    if ((error = s_check_name (inst->id, lim->max_string, "id is empty",
                               "id is longer than max_string",
                               "id has a character outside [A-Za-z0-9._:-]")))
        return error;
    if ((error =
             s_check_name (inst->service, lim->max_string, "service is empty",
                           "service is longer than max_string",
                           "service has a character outside [A-Za-z0-9._:-]")))
        return error;
    scheme_t scheme;
    if ((error = s_check_endpoint (inst->endpoint, lim->max_endpoint, &scheme)))
        return error;
    if (inst->n_tags > lim->max_tags)
        return "more tags than max_tags";
    for (size_t i = 0; i < inst->n_tags; i++) {
        if (!inst->tags[i] || !*inst->tags[i])
            return "a tag is empty";
        if (strlen (inst->tags[i]) > lim->max_string)
            return "a tag is longer than max_string";
    }
    if (inst->n_meta > lim->max_meta)
        return "more meta pairs than max_meta";
    for (size_t i = 0; i < inst->n_meta; i++) {
        const Keel__Instance__MetaEntry *pair = inst->meta[i];
        if (!pair || !pair->key || !*pair->key)
            return "a meta key is empty";
        if (strlen (pair->key) > lim->max_string)
            return "a meta key is longer than max_string";
        if (pair->value && strlen (pair->value) > lim->max_string)
            return "a meta value is longer than max_string";
    }
    return s_check_check (inst->check, scheme, lim->max_endpoint);
}

// ---------------------------------------------------------------------------
//  Instances: copies and their checks

static bool
s_active (const Keel__HealthCheck *check)
{
    return check->bus_ping || check->tcp_connect ||
           (check->http_path && *check->http_path);
}

//  Fill in the defaults, so the stored check says what is in force (the
//  shell reads interval_ms and timeout_ms from it).
static void
s_normalize (Keel__HealthCheck *check)
{
    if (!check || (check->ttl_ms == 0 && !s_active (check)))
        return;
    check->bus_ping = check->bus_ping ? 1 : 0;
    check->tcp_connect = check->tcp_connect ? 1 : 0;
    if (check->successes_before_passing == 0)
        check->successes_before_passing = 1;
    if (check->failures_before_critical == 0)
        check->failures_before_critical = 1;
    if (s_active (check)) {
        if (check->interval_ms == 0)
            check->interval_ms = 1000;
        if (check->timeout_ms == 0)
            check->timeout_ms = check->interval_ms / 2;
    }
}

static cfg_t
s_cfg_of (const Keel__HealthCheck *check)
{
    cfg_t cfg = {0};
    if (!check || (check->ttl_ms == 0 && !s_active (check)))
        return cfg;
    cfg.ttl_ms = check->ttl_ms;
    cfg.active = s_active (check);
    cfg.interval_ms = check->interval_ms;
    cfg.timeout_ms = check->timeout_ms;
    cfg.successes = check->successes_before_passing;
    cfg.failures = check->failures_before_critical;
    cfg.dereg_after_ms = check->deregister_critical_after_ms;
    return cfg;
}

//  Whether two normalized checks are the same check (NULL = none).
static bool
s_check_equal (const Keel__HealthCheck *a, const Keel__HealthCheck *b)
{
    Keel__HealthCheck none = KEEL__HEALTH_CHECK__INIT;
    a = a ? a : &none;
    b = b ? b : &none;
    return a->ttl_ms == b->ttl_ms && a->bus_ping == b->bus_ping &&
           strcmp (a->http_path, b->http_path) == 0 &&
           a->tcp_connect == b->tcp_connect &&
           a->interval_ms == b->interval_ms && a->timeout_ms == b->timeout_ms &&
           a->successes_before_passing == b->successes_before_passing &&
           a->failures_before_critical == b->failures_before_critical &&
           a->deregister_critical_after_ms == b->deregister_critical_after_ms;
}

//  A deep copy through the wire format, health and modify_index dropped,
//  origin replaced when `origin` is not NULL, and the check normalized.
//  Free with keel__instance__free_unpacked (.., NULL).
static Keel__Instance *
s_instance_copy (const Keel__Instance *src, const char *origin)
{
    Keel__Instance tmp = *src;
    tmp.health = NULL;
    tmp.modify_index = 0;
    if (origin)
        tmp.origin = (char *)origin;
    Keel__Instance *copy = (Keel__Instance *)keel_codec_copy (&tmp.base);
    if (copy)
        s_normalize (copy->check);
    return copy;
}

// ---------------------------------------------------------------------------
//  Entries

static void
s_entry_destroy (entry_t **entry_p)
{
    entry_t *entry = *entry_p;
    if (!entry)
        return;
    if (entry->inst) {
        entry->inst->health = NULL; //  the entry's own, not the copy's
        keel__instance__free_unpacked (entry->inst, NULL);
    }
    free (entry->output);
    free (entry);
    *entry_p = NULL;
}

//  Set health.output, cut to max_string bytes on a UTF-8 boundary. An
//  allocation failure leaves the output empty rather than failing a check.
static void
s_set_output (keel_catalog_t *self, entry_t *entry, const char *output)
{
    free (entry->output);
    entry->output = NULL;
    entry->health.output = (char *)protobuf_c_empty_string;
    if (!output || !*output)
        return;
    size_t len = strnlen (output, self->limits.max_string + 1);
    if (len > self->limits.max_string) {
        len = self->limits.max_string;
        while (len > 0 && ((unsigned char)output[len] & 0xc0) == 0x80)
            len--;
    }
    entry->output = strndup (output, len);
    if (entry->output)
        entry->health.output = entry->output;
}

//  The instance's status: the worst of its checks; PASSING with none.
static Keel__HealthStatus
s_worst (const entry_t *entry)
{
    Keel__HealthStatus worst = KEEL__HEALTH_STATUS__PASSING;
    if (entry->cfg.ttl_ms &&
        s_severity (entry->ttl.status) > s_severity (worst))
        worst = entry->ttl.status;
    if (entry->cfg.active &&
        s_severity (entry->active.status) > s_severity (worst))
        worst = entry->active.status;
    return worst;
}

static void
s_success (check_t *check, uint32_t successes_before_passing)
{
    check->successes = s_inc (check->successes);
    check->failures = 0;
    if (check->status == KEEL__HEALTH_STATUS__WARNING ||
        check->successes >= successes_before_passing)
        check->status = KEEL__HEALTH_STATUS__PASSING;
}

static void
s_failure (check_t *check, uint32_t failures_before_critical)
{
    check->failures = s_inc (check->failures);
    check->successes = 0;
    if (check->failures >= failures_before_critical)
        check->status = KEEL__HEALTH_STATUS__CRITICAL;
}

//  Record a check result's streaks and time in the instance's health.
static void
s_note_result (entry_t *entry, const check_t *check, int64_t at_ms)
{
    entry->health.consecutive_successes = check->successes;
    entry->health.consecutive_failures = check->failures;
    entry->last_check_ms = at_ms;
}

//  Whether silence still counts against the TTL check (see the top).
static bool
s_ttl_armed (const entry_t *entry)
{
    return entry->cfg.ttl_ms &&
           (entry->ttl.status != KEEL__HEALTH_STATUS__CRITICAL ||
            entry->ttl.successes > 0);
}

static int64_t
s_removal_at (const entry_t *entry)
{
    if (entry->cfg.dereg_after_ms == 0 ||
        entry->health.status != KEEL__HEALTH_STATUS__CRITICAL)
        return S_NEVER;
    return s_add (entry->critical_since_ms, entry->cfg.dereg_after_ms);
}

//  Re-key the entry in both heaps after any change to its times or state.
static void
s_reschedule (keel_catalog_t *self, entry_t *entry)
{
    int64_t tick = s_removal_at (entry);
    if (entry->running)
        tick = s_min (tick, entry->running_deadline_ms);
    if (s_ttl_armed (entry))
        tick = s_min (tick, entry->ttl_expiry_ms);
    s_heap_set (&self->heaps[HEAP_TICK], entry, tick);
    s_heap_set (&self->heaps[HEAP_CHECK], entry,
                entry->cfg.active && !entry->running ? entry->next_due_ms
                                                     : S_NEVER);
}

//  Set the instance status, keeping the service's healthy count and the
//  critical-since time right.
static void
s_set_status (entry_t *entry, Keel__HealthStatus status, int64_t at_ms)
{
    Keel__HealthStatus old = entry->health.status;
    if (entry->service && s_healthy (old) && !s_healthy (status))
        entry->service->healthy--;
    else if (entry->service && !s_healthy (old) && s_healthy (status))
        entry->service->healthy++;
    if (status == KEEL__HEALTH_STATUS__CRITICAL &&
        old != KEEL__HEALTH_STATUS__CRITICAL)
        entry->critical_since_ms = at_ms;
    else if (status != KEEL__HEALTH_STATUS__CRITICAL)
        entry->critical_since_ms = -1;
    entry->health.status = status;
}

//  Health as a fresh registration has it: every check starts UNKNOWN and
//  the registration itself is the TTL check's first heartbeat.
static void
s_reset_health (entry_t *entry, int64_t now_ms)
{
    entry->ttl = (check_t){KEEL__HEALTH_STATUS__HEALTH_UNKNOWN, 0, 0};
    entry->active = entry->ttl;
    entry->running = false;
    entry->last_check_ms = -1;
    entry->health.response_time_us = 0;
    entry->health.consecutive_successes = 0;
    entry->health.consecutive_failures = 0;
    if (entry->cfg.ttl_ms) {
        s_success (&entry->ttl, entry->cfg.successes);
        s_note_result (entry, &entry->ttl, now_ms);
        entry->ttl_expiry_ms = s_add (now_ms, entry->cfg.ttl_ms);
    }
    entry->next_due_ms = now_ms;
}

static void
s_fill_age (entry_t *entry, int64_t now_ms)
{
    entry->health.last_check_age_ms =
        entry->last_check_ms == -1 || now_ms <= entry->last_check_ms
            ? 0
            : (uint64_t)now_ms - (uint64_t)entry->last_check_ms;
}

// ---------------------------------------------------------------------------
//  Services

static service_t *
s_service_require (keel_catalog_t *self, const char *name)
{
    hkey_t hkey = {&self->hash_key, name};
    service_t *service = (service_t *)zhashx_lookup (self->by_service, &hkey);
    if (service)
        return service;
    service = (service_t *)calloc (1, sizeof (service_t));
    if (!service || !(service->name = strdup (name))) {
        free (service);
        return NULL;
    }
    service->hkey = (hkey_t){&self->hash_key, service->name};
    service->entries.pos_offset = offsetof (entry_t, svc_pos);
    service->entries.sorted = true;
    zhashx_insert (self->by_service, &service->hkey, service);
    return service;
}

static void
s_service_drop_if_empty (keel_catalog_t *self, service_t *service)
{
    if (service->entries.size > 0)
        return;
    zhashx_delete (self->by_service, &service->hkey);
    free (service->entries.items);
    free (service->name);
    free (service);
}

static void
s_service_add (service_t *service, entry_t *entry)
{
    s_vec_push (&service->entries, entry);
    entry->service = service;
    if (s_healthy (entry->health.status))
        service->healthy++;
}

static void
s_service_remove (service_t *service, entry_t *entry)
{
    s_vec_remove (&service->entries, entry);
    entry->service = NULL;
    if (s_healthy (entry->health.status))
        service->healthy--;
}

// ---------------------------------------------------------------------------
//  Origins

static origin_t *
s_origin_find (keel_catalog_t *self, const char *name)
{
    for (size_t i = 0; i < self->n_origins; i++)
        if (strcmp (self->origins[i]->name, name) == 0)
            return self->origins[i];
    return NULL;
}

static void
s_origin_destroy (origin_t **origin_p)
{
    origin_t *origin = *origin_p;
    if (origin) {
        free (origin->entries.items);
        free (origin->name);
        free (origin);
        *origin_p = NULL;
    }
}

//  The group of `name`, created (lease S_NEVER until renewed) if new.
static origin_t *
s_origin_require (keel_catalog_t *self, const char *name)
{
    origin_t *origin = s_origin_find (self, name);
    if (origin)
        return origin;
    origin_t **origins = (origin_t **)realloc (
        self->origins, (self->n_origins + 1) * sizeof (origin_t *));
    if (!origins)
        return NULL;
    self->origins = origins;
    origin = (origin_t *)calloc (1, sizeof (origin_t));
    if (!origin || !(origin->name = strdup (name))) {
        free (origin);
        return NULL;
    }
    origin->entries.pos_offset = offsetof (entry_t, origin_pos);
    origin->entries.sorted = true;
    origin->lease_ms = S_NEVER;
    self->origins[self->n_origins++] = origin;
    return origin;
}

//  Move `entry` to the group `origin` (room reserved), keeping count.
static void
s_origin_move (keel_catalog_t *self, entry_t *entry, origin_t *origin)
{
    if (entry->origin == origin)
        return;
    if (entry->origin) {
        s_vec_remove (&entry->origin->entries, entry);
        if (entry->origin != self->origins[0])
            self->replicas--;
    }
    s_vec_push (&origin->entries, entry);
    entry->origin = origin;
    if (origin != self->origins[0])
        self->replicas++;
}

//  Whether (version a, origin a) is newer than (version b, origin b).
static bool
s_newer (uint64_t version_a, const char *origin_a, uint64_t version_b,
         const char *origin_b)
{
    return version_a > version_b ||
           (version_a == version_b && strcmp (origin_a, origin_b) > 0);
}

// ---------------------------------------------------------------------------
//  Events

//  A change to `entry` at `at_ms`: next index, the entry's modify_index, and
//  the listener told. The listener may read the catalog but not change it
//  (asserted): tick may be part-way through its work.
static void
s_emit (keel_catalog_t *self, const char *type, entry_t *entry,
        const char *reason, Keel__HealthStatus previous, int64_t at_ms)
{
    self->index++;
    entry->inst->modify_index = self->index;
    if (entry->origin == self->origins[0]) {
        //  An owned change: a new version, wall-clock based when it can be.
        uint64_t floor = self->wall_ms > 0 ? (uint64_t)self->wall_ms << 16 : 0;
        self->clock = self->clock + 1 > floor ? self->clock + 1 : floor;
        entry->inst->version = self->clock;
    }
    if (!self->fn)
        return;
    s_fill_age (entry, at_ms);
    Keel__RegistryEvent event = KEEL__REGISTRY_EVENT__INIT;
    event.index = self->index;
    event.instance = entry->inst;
    event.reason = (char *)reason;
    event.previous = previous;
    self->in_event = true;
    self->fn (type, &event, self->fn_arg);
    self->in_event = false;
}

//  After a check result: recompute the instance status and re-key the
//  entry; a new status is a "registry.health" event.
static void
s_update_status (keel_catalog_t *self, entry_t *entry, const char *reason,
                 int64_t at_ms)
{
    Keel__HealthStatus previous = entry->health.status;
    Keel__HealthStatus status = s_worst (entry);
    if (status != previous)
        s_set_status (entry, status, at_ms);
    s_reschedule (self, entry);
    if (status != previous)
        s_emit (self, "registry.health", entry, reason, previous, at_ms);
}

//  Take `entry` out of every index, report it, and free it.
static void
s_remove (keel_catalog_t *self, entry_t *entry, const char *reason,
          int64_t at_ms)
{
    hkey_t hkey = {&self->hash_key, entry->inst->id};
    zhashx_delete (self->by_id, &hkey);
    service_t *service = entry->service;
    s_service_remove (service, entry);
    s_service_drop_if_empty (self, service);
    s_vec_remove (&self->all, entry);
    s_vec_remove (&entry->origin->entries, entry);
    if (entry->origin != self->origins[0])
        self->replicas--;
    s_heap_set (&self->heaps[HEAP_TICK], entry, S_NEVER);
    s_heap_set (&self->heaps[HEAP_CHECK], entry, S_NEVER);
    s_emit (self, "registry.deregistered", entry, reason, entry->health.status,
            at_ms);
    s_entry_destroy (&entry);
}

static int
s_reserve_result (keel_catalog_t *self, size_t need)
{
    if (need <= self->result_cap)
        return 0;
    size_t grown = s_grown (self->result_cap, need);
    Keel__Instance **result = (Keel__Instance **)realloc (
        self->result, grown * sizeof (Keel__Instance *));
    if (!result)
        return -1;
    self->result = result;
    self->result_cap = grown;
    return 0;
}

//  Room for a registration of `entry` (NULL = a new one) under `service`
//  and `origin` in every array it may join.
static int
s_reserve_for (keel_catalog_t *self, service_t *service, origin_t *origin,
               entry_t *entry)
{
    size_t total = self->all.size + (entry ? 0 : 1);
    vec_t *members = &service->entries;
    if (service != (entry ? entry->service : NULL) &&
        s_reserve (&members->items, &members->cap, members->size + 1))
        return -1;
    vec_t *owned = &origin->entries;
    if (origin != (entry ? entry->origin : NULL) &&
        s_reserve (&owned->items, &owned->cap, owned->size + 1))
        return -1;
    for (int w = 0; w < HEAPS; w++)
        if (s_reserve (&self->heaps[w].items, &self->heaps[w].cap, total))
            return -1;
    if (s_reserve (&self->all.items, &self->all.cap, total) ||
        s_reserve_result (self, total))
        return -1;
    return 0;
}

static entry_t *
s_lookup (keel_catalog_t *self, const char *id)
{
    if (!id)
        return NULL;
    hkey_t hkey = {&self->hash_key, id};
    return (entry_t *)zhashx_lookup (self->by_id, &hkey);
}

// ---------------------------------------------------------------------------
//  Public API

keel_catalog_t *
keel_catalog_new (const keel_catalog_limits_t *limits)
{
    keel_catalog_t *self = (keel_catalog_t *)calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (limits)
        self->limits = *limits;
    keel_catalog_limits_t *lim = &self->limits;
    lim->max_instances = lim->max_instances ? lim->max_instances : 1000000;
    lim->max_tags = lim->max_tags ? lim->max_tags : 64;
    lim->max_meta = lim->max_meta ? lim->max_meta : 64;
    lim->max_string = lim->max_string ? lim->max_string : 256;
    lim->max_endpoint = lim->max_endpoint ? lim->max_endpoint : 512;
    if (!(lim->protect_threshold > 0)) //  also NaN
        lim->protect_threshold = 0;
    if (lim->replica_lease_ms <= 0)
        lim->replica_lease_ms = 3000;

    keel_hash_key_init (&self->hash_key);

    self->by_id = s_table_new ();
    self->by_service = s_table_new ();
    self->all.pos_offset = offsetof (entry_t, all_pos);
    self->all.sorted = true;
    self->heaps[HEAP_TICK].which = HEAP_TICK;
    self->heaps[HEAP_CHECK].which = HEAP_CHECK;
    if (!self->by_id || !self->by_service || s_reserve_result (self, 16) ||
        !s_origin_require (self, "")) {
        keel_catalog_destroy (&self);
        return NULL;
    }
    return self;
}

void
keel_catalog_destroy (keel_catalog_t **self_p)
{
    assert (self_p);
    keel_catalog_t *self = *self_p;
    if (!self)
        return;
    assert (!self->in_event);
    for (size_t pos = 0; pos < self->all.size; pos++)
        s_entry_destroy (&self->all.items[pos]);
    if (self->by_service) {
        service_t *service = (service_t *)zhashx_first (self->by_service);
        while (service) {
            free (service->entries.items);
            free (service->name);
            free (service);
            service = (service_t *)zhashx_next (self->by_service);
        }
    }
    zhashx_destroy (&self->by_id);
    zhashx_destroy (&self->by_service);
    for (size_t i = 0; i < self->n_origins; i++)
        s_origin_destroy (&self->origins[i]);
    free (self->origins);
    free (self->all.items);
    for (int w = 0; w < HEAPS; w++)
        free (self->heaps[w].items);
    free (self->result);
    free (self);
    *self_p = NULL;
}

void
keel_catalog_set_listener (keel_catalog_t *self, keel_catalog_event_fn *fn,
                           void *arg)
{
    assert (self);
    self->fn = fn;
    self->fn_arg = arg;
}

int
keel_catalog_register (keel_catalog_t *self, const Keel__Instance *instance,
                       int64_t now_ms, uint64_t *index_p, const char **error_p)
{
    assert (self);
    assert (!self->in_event);
    const char *error_local;
    const char **error = error_p ? error_p : &error_local;
    if ((*error = s_check_instance (self, instance)))
        return KEEL_ERR_INVALID_ARGUMENT;
    entry_t *entry = s_lookup (self, instance->id);
    if (!entry && self->all.size >= self->limits.max_instances) {
        *error = "the catalog holds max_instances";
        return KEEL_ERR_CONFLICT;
    }

    //  Everything that can fail, before anything changes.
    *error = "out of memory";
    origin_t *own = self->origins[0];
    Keel__Instance *copy = s_instance_copy (instance, own->name);
    if (!copy)
        return KEEL_ERR_INTERNAL;
    copy->version = entry ? entry->inst->version : 0; //  s_emit stamps it
    entry_t *fresh = NULL;
    service_t *service = s_service_require (self, copy->service);
    if (!service ||
        (!entry && !(fresh = (entry_t *)calloc (1, sizeof (entry_t)))) ||
        s_reserve_for (self, service, own, entry)) {
        keel__instance__free_unpacked (copy, NULL);
        free (fresh);
        if (service)
            s_service_drop_if_empty (self, service);
        return KEEL_ERR_INTERNAL;
    }
    *error = NULL;

    if (fresh) {
        entry = fresh;
        Keel__Health health = KEEL__HEALTH__INIT;
        entry->health = health;
        entry->inst = copy;
        entry->inst->health = &entry->health;
        entry->hkey = (hkey_t){&self->hash_key, copy->id};
        entry->cfg = s_cfg_of (copy->check);
        entry->critical_since_ms = -1;
        entry->heap_pos[HEAP_TICK] = entry->heap_pos[HEAP_CHECK] = SIZE_MAX;
        entry->heap_key[HEAP_TICK] = entry->heap_key[HEAP_CHECK] = S_NEVER;
        s_reset_health (entry, now_ms);
        entry->health.status = s_worst (entry);
        zhashx_insert (self->by_id, &entry->hkey, entry);
        s_vec_push (&self->all, entry);
        s_service_add (service, entry);
        s_origin_move (self, entry, own);
        s_reschedule (self, entry);
        s_emit (self, "registry.registered", entry, "registered",
                KEEL__HEALTH_STATUS__HEALTH_UNKNOWN, now_ms);
    } else {
        Keel__HealthStatus previous = entry->health.status;
        //  A replica taken over starts its checks afresh.
        bool same_check = entry->origin == own &&
                          s_check_equal (entry->inst->check, copy->check);
        s_origin_move (self, entry, own);
        entry->inst->health = NULL;
        keel__instance__free_unpacked (entry->inst, NULL);
        entry->inst = copy;
        entry->inst->health = &entry->health;
        entry->hkey.str = copy->id; //  same text, new storage
        if (service != entry->service) {
            service_t *old = entry->service;
            s_service_remove (old, entry);
            s_service_drop_if_empty (self, old);
            s_service_add (service, entry);
        }
        if (!same_check) {
            entry->cfg = s_cfg_of (copy->check);
            s_set_output (self, entry, NULL);
            s_reset_health (entry, now_ms);
            s_set_status (entry, s_worst (entry), now_ms);
        }
        s_reschedule (self, entry);
        s_emit (self, "registry.updated", entry, "updated", previous, now_ms);
    }
    if (index_p)
        *index_p = self->index;
    return KEEL_OK;
}

int
keel_catalog_deregister (keel_catalog_t *self, const char *id, int64_t now_ms,
                         uint64_t *index_p)
{
    assert (self);
    assert (!self->in_event);
    entry_t *entry = s_lookup (self, id);
    if (!entry)
        return KEEL_ERR_NOT_FOUND;
    if (entry->origin != self->origins[0])
        return KEEL_ERR_CONFLICT;
    s_remove (self, entry, "deregistered", now_ms);
    if (index_p)
        *index_p = self->index;
    return KEEL_OK;
}

int
keel_catalog_heartbeat (keel_catalog_t *self, const char *id,
                        Keel__HealthStatus status, const char *output,
                        int64_t now_ms)
{
    assert (self);
    assert (!self->in_event);
    entry_t *entry = s_lookup (self, id);
    if (!entry || entry->origin != self->origins[0])
        return KEEL_ERR_NOT_FOUND;
    if (!entry->cfg.ttl_ms)
        return KEEL_ERR_INVALID_ARGUMENT;
    const char *reason;
    switch (status) {
    case KEEL__HEALTH_STATUS__HEALTH_UNKNOWN:
    case KEEL__HEALTH_STATUS__PASSING:
        s_success (&entry->ttl, entry->cfg.successes);
        reason = "heartbeat: passing";
        break;
    case KEEL__HEALTH_STATUS__WARNING:
        entry->ttl = (check_t){KEEL__HEALTH_STATUS__WARNING, 0, 0};
        reason = "heartbeat: warning";
        break;
    case KEEL__HEALTH_STATUS__CRITICAL:
        entry->ttl.failures = s_inc (entry->ttl.failures);
        entry->ttl.successes = 0;
        entry->ttl.status = KEEL__HEALTH_STATUS__CRITICAL;
        reason = "heartbeat: critical";
        break;
    default:
        return KEEL_ERR_INVALID_ARGUMENT;
    }
    entry->ttl_expiry_ms = s_add (now_ms, entry->cfg.ttl_ms);
    s_note_result (entry, &entry->ttl, now_ms);
    s_set_output (self, entry, output);
    if (*entry->health.output)
        reason = entry->health.output;
    s_update_status (self, entry, reason, now_ms);
    return KEEL_OK;
}

int
keel_catalog_check_result (keel_catalog_t *self, const char *id, bool passed,
                           uint32_t response_time_us, const char *output,
                           int64_t now_ms)
{
    assert (self);
    assert (!self->in_event);
    entry_t *entry = s_lookup (self, id);
    if (!entry)
        return KEEL_ERR_NOT_FOUND;
    if (!entry->running)
        return KEEL_OK; //  late (timed out already) or never asked for
    entry->running = false;
    if (passed)
        s_success (&entry->active, entry->cfg.successes);
    else
        s_failure (&entry->active, entry->cfg.failures);
    s_note_result (entry, &entry->active, now_ms);
    entry->health.response_time_us = response_time_us;
    s_set_output (self, entry, output);
    const char *reason = *entry->health.output ? entry->health.output
                         : passed              ? "check passed"
                                               : "check failed";
    s_update_status (self, entry, reason, now_ms);
    return KEEL_OK;
}

void
keel_catalog_tick (keel_catalog_t *self, int64_t now_ms)
{
    assert (self);
    assert (!self->in_event);
    heap_t *heap = &self->heaps[HEAP_TICK];
    while (heap->size > 0 && s_heap_top (heap) <= now_ms) {
        entry_t *entry = heap->items[0];
        int64_t at = s_heap_top (heap);
        if (entry->running && entry->running_deadline_ms <= at) {
            entry->running = false;
            s_failure (&entry->active, entry->cfg.failures);
            s_note_result (entry, &entry->active, at);
            entry->health.response_time_us =
                entry->cfg.timeout_ms > UINT32_MAX / 1000
                    ? UINT32_MAX
                    : entry->cfg.timeout_ms * 1000;
            s_set_output (self, entry, "check timed out");
            s_update_status (self, entry, "check timed out", at);
        } else if (s_ttl_armed (entry) && entry->ttl_expiry_ms <= at) {
            s_failure (&entry->ttl, entry->cfg.failures);
            s_note_result (entry, &entry->ttl, at);
            entry->ttl_expiry_ms = s_add (at, entry->cfg.ttl_ms);
            s_set_output (self, entry, "ttl expired");
            s_update_status (self, entry, "ttl expired", at);
        } else {
            assert (s_removal_at (entry) <= at);
            s_remove (self, entry, "critical too long", at);
        }
    }
    //  Leases: an origin not heard from for replica_lease_ms loses them all.
    for (size_t i = 1; i < self->n_origins; i++) {
        origin_t *origin = self->origins[i];
        if (origin->lease_ms > now_ms)
            continue;
        int64_t at = origin->lease_ms;
        while (origin->entries.size > 0)
            s_remove (self, origin->entries.items[origin->entries.size - 1],
                      "origin unreachable", at);
        origin->lease_ms = S_NEVER;
    }
}

int64_t
keel_catalog_next_deadline (keel_catalog_t *self)
{
    assert (self);
    int64_t next = s_min (s_heap_top (&self->heaps[HEAP_TICK]),
                          s_heap_top (&self->heaps[HEAP_CHECK]));
    for (size_t i = 1; i < self->n_origins; i++)
        if (self->origins[i]->entries.size > 0)
            next = s_min (next, self->origins[i]->lease_ms);
    return next == S_NEVER ? -1 : next;
}

const Keel__Instance *
keel_catalog_next_check (keel_catalog_t *self, int64_t now_ms)
{
    assert (self);
    assert (!self->in_event);
    heap_t *heap = &self->heaps[HEAP_CHECK];
    if (heap->size == 0 || s_heap_top (heap) > now_ms)
        return NULL;
    entry_t *entry = heap->items[0];
    entry->running = true;
    entry->running_deadline_ms = s_add (now_ms, entry->cfg.timeout_ms);
    entry->next_due_ms = s_add (now_ms, entry->cfg.interval_ms);
    s_reschedule (self, entry);
    s_fill_age (entry, now_ms);
    return entry->inst;
}

const Keel__Instance *
keel_catalog_get (keel_catalog_t *self, const char *id, int64_t now_ms)
{
    assert (self);
    entry_t *entry = s_lookup (self, id);
    if (!entry)
        return NULL;
    s_fill_age (entry, now_ms);
    return entry->inst;
}

static bool
s_has_tag (const Keel__Instance *inst, const char *tag)
{
    for (size_t i = 0; i < inst->n_tags; i++)
        if (strcmp (inst->tags[i], tag) == 0)
            return true;
    return false;
}

//  The value of `key` in the instance's meta (the last pair wins, as on the
//  wire), or NULL.
static const char *
s_meta_value (const Keel__Instance *inst, const char *key)
{
    for (size_t i = inst->n_meta; i > 0; i--)
        if (strcmp (inst->meta[i - 1]->key, key) == 0)
            return inst->meta[i - 1]->value;
    return NULL;
}

static bool
s_matches (const Keel__Instance *inst, const Keel__DiscoverRequest *query)
{
    for (size_t i = 0; i < query->n_tags; i++)
        if (query->tags[i] && !s_has_tag (inst, query->tags[i]))
            return false;
    for (size_t i = 0; i < query->n_meta; i++) {
        const Keel__DiscoverRequest__MetaEntry *pair = query->meta[i];
        if (!pair || !pair->key)
            continue;
        const char *value = s_meta_value (inst, pair->key);
        if (!value || strcmp (value, pair->value ? pair->value : "") != 0)
            return false;
    }
    return true;
}

size_t
keel_catalog_discover (keel_catalog_t *self, const Keel__DiscoverRequest *query,
                       int64_t now_ms, Keel__Instance ***list_p,
                       bool *protect_p)
{
    assert (self);
    assert (list_p);
    *list_p = self->result;
    if (protect_p)
        *protect_p = false;
    if (!query || !query->service || !*query->service)
        return 0;
    hkey_t hkey = {&self->hash_key, query->service};
    service_t *service = (service_t *)zhashx_lookup (self->by_service, &hkey);
    if (!service)
        return 0;
    bool all = query->include_unhealthy;
    if (!all && self->limits.protect_threshold > 0 &&
        (double)service->healthy <
            self->limits.protect_threshold * (double)service->entries.size) {
        all = true;
        if (protect_p)
            *protect_p = true;
    }
    s_vec_sort (&service->entries);
    size_t count = 0;
    for (size_t pos = 0; pos < service->entries.size; pos++) {
        entry_t *entry = service->entries.items[pos];
        if ((all || s_healthy (entry->health.status)) &&
            s_matches (entry->inst, query)) {
            s_fill_age (entry, now_ms);
            self->result[count++] = entry->inst;
        }
    }
    return count;
}

size_t
keel_catalog_list (keel_catalog_t *self, const char *service_name,
                   int64_t now_ms, Keel__Instance ***list_p)
{
    assert (self);
    assert (list_p);
    *list_p = self->result;
    vec_t *vec = &self->all;
    if (service_name && *service_name) {
        hkey_t hkey = {&self->hash_key, service_name};
        service_t *service =
            (service_t *)zhashx_lookup (self->by_service, &hkey);
        if (!service)
            return 0;
        vec = &service->entries;
    }
    s_vec_sort (vec);
    for (size_t pos = 0; pos < vec->size; pos++) {
        s_fill_age (vec->items[pos], now_ms);
        self->result[pos] = vec->items[pos]->inst;
    }
    return vec->size;
}

uint64_t
keel_catalog_index (keel_catalog_t *self)
{
    assert (self);
    return self->index;
}

size_t
keel_catalog_size (keel_catalog_t *self)
{
    assert (self);
    return self->all.size;
}

// ---------------------------------------------------------------------------
//  Replication

int
keel_catalog_set_origin (keel_catalog_t *self, const char *origin)
{
    assert (self);
    if (self->all.size > 0 ||
        s_check_name (origin, self->limits.max_string, "", "", ""))
        return -1;
    char *name = strdup (origin);
    if (!name)
        return -1;
    free (self->origins[0]->name);
    self->origins[0]->name = name;
    return 0;
}

const char *
keel_catalog_origin (keel_catalog_t *self)
{
    assert (self);
    return self->origins[0]->name;
}

void
keel_catalog_set_wall_ms (keel_catalog_t *self, int64_t wall_ms)
{
    assert (self);
    self->wall_ms = wall_ms;
}

uint64_t
keel_catalog_clock (keel_catalog_t *self)
{
    assert (self);
    return self->clock;
}

size_t
keel_catalog_replicas (keel_catalog_t *self)
{
    assert (self);
    return self->replicas;
}

//  Whether two instances say the same apart from health, indexes, origin
//  and version: the owner changed only their health.
static bool
s_same_body (const Keel__Instance *a, const Keel__Instance *b)
{
    if (strcmp (a->service, b->service) || strcmp (a->endpoint, b->endpoint) ||
        a->weight != b->weight || a->n_tags != b->n_tags ||
        a->n_meta != b->n_meta || !s_check_equal (a->check, b->check))
        return false;
    for (size_t i = 0; i < a->n_tags; i++)
        if (strcmp (a->tags[i], b->tags[i]))
            return false;
    for (size_t i = 0; i < a->n_meta; i++)
        if (strcmp (a->meta[i]->key, b->meta[i]->key) ||
            strcmp (a->meta[i]->value, b->meta[i]->value))
            return false;
    return true;
}

//  A replica's health: the owner's, with its age made local.
static void
s_replica_health (keel_catalog_t *self, entry_t *entry,
                  const Keel__Health *health, int64_t now_ms)
{
    Keel__Health none = KEEL__HEALTH__INIT;
    health = health ? health : &none;
    Keel__HealthStatus status = health->status;
    if (status != KEEL__HEALTH_STATUS__PASSING &&
        status != KEEL__HEALTH_STATUS__WARNING &&
        status != KEEL__HEALTH_STATUS__CRITICAL)
        status = KEEL__HEALTH_STATUS__HEALTH_UNKNOWN;
    s_set_status (entry, status, now_ms);
    entry->health.response_time_us = health->response_time_us;
    entry->health.consecutive_successes = health->consecutive_successes;
    entry->health.consecutive_failures = health->consecutive_failures;
    //  Ages beyond a year are capped: no overflow on nonsense input.
    uint64_t age = health->last_check_age_ms;
    const uint64_t year = 366ULL * 24 * 3600 * 1000;
    entry->last_check_ms =
        age == 0 ? -1 : now_ms - (int64_t)(age > year ? year : age);
    s_set_output (self, entry, health->output);
}

int
keel_catalog_apply (keel_catalog_t *self, const Keel__Instance *instance,
                    int64_t now_ms, bool *applied_p, const char **error_p)
{
    assert (self);
    assert (!self->in_event);
    const char *error_local;
    const char **error = error_p ? error_p : &error_local;
    bool applied_local;
    bool *applied = applied_p ? applied_p : &applied_local;
    *applied = false;
    if ((*error = s_check_instance (self, instance)))
        return KEEL_ERR_INVALID_ARGUMENT;
    if ((*error = s_check_name (instance->origin, self->limits.max_string,
                                "origin is empty",
                                "origin is longer than max_string",
                                "origin has a character outside "
                                "[A-Za-z0-9._:-]")))
        return KEEL_ERR_INVALID_ARGUMENT;
    if (strcmp (instance->origin, self->origins[0]->name) == 0) {
        *error = "origin is this registry";
        return KEEL_ERR_INVALID_ARGUMENT;
    }
    if (instance->version > self->clock)
        self->clock = instance->version;
    entry_t *entry = s_lookup (self, instance->id);
    if (entry && !s_newer (instance->version, instance->origin,
                           entry->inst->version, entry->origin->name)) {
        keel_catalog_renew (self, instance->origin, now_ms);
        return KEEL_OK;
    }
    if (!entry && self->all.size >= self->limits.max_instances) {
        *error = "the catalog holds max_instances";
        return KEEL_ERR_CONFLICT;
    }

    //  Everything that can fail, before anything changes.
    *error = "out of memory";
    Keel__Instance *copy = s_instance_copy (instance, NULL);
    if (!copy)
        return KEEL_ERR_INTERNAL;
    copy->version = instance->version;
    entry_t *fresh = NULL;
    origin_t *origin = s_origin_require (self, instance->origin);
    service_t *service =
        origin ? s_service_require (self, copy->service) : NULL;
    if (!service ||
        (!entry && !(fresh = (entry_t *)calloc (1, sizeof (entry_t)))) ||
        s_reserve_for (self, service, origin, entry)) {
        keel__instance__free_unpacked (copy, NULL);
        free (fresh);
        if (service)
            s_service_drop_if_empty (self, service);
        return KEEL_ERR_INTERNAL;
    }
    *error = NULL;
    *applied = true;
    origin->lease_ms = s_add (now_ms, self->limits.replica_lease_ms);

    const char *type = "registry.updated";
    const char *reason = "updated";
    Keel__HealthStatus previous = KEEL__HEALTH_STATUS__HEALTH_UNKNOWN;
    if (fresh) {
        entry = fresh;
        Keel__Health health = KEEL__HEALTH__INIT;
        entry->health = health;
        entry->health.output = (char *)protobuf_c_empty_string;
        entry->inst = copy;
        entry->inst->health = &entry->health;
        entry->hkey = (hkey_t){&self->hash_key, copy->id};
        entry->critical_since_ms = -1;
        entry->heap_pos[HEAP_TICK] = entry->heap_pos[HEAP_CHECK] = SIZE_MAX;
        entry->heap_key[HEAP_TICK] = entry->heap_key[HEAP_CHECK] = S_NEVER;
        s_replica_health (self, entry, instance->health, now_ms);
        zhashx_insert (self->by_id, &entry->hkey, entry);
        s_vec_push (&self->all, entry);
        s_service_add (service, entry);
        type = "registry.registered";
        reason = "registered";
    } else {
        previous = entry->health.status;
        bool same_body = s_same_body (entry->inst, copy);
        entry->inst->health = NULL;
        keel__instance__free_unpacked (entry->inst, NULL);
        entry->inst = copy;
        entry->inst->health = &entry->health;
        entry->hkey.str = copy->id;
        if (service != entry->service) {
            service_t *old = entry->service;
            s_service_remove (old, entry);
            s_service_drop_if_empty (self, old);
            s_service_add (service, entry);
        }
        s_replica_health (self, entry, instance->health, now_ms);
        if (same_body && previous != entry->health.status) {
            type = "registry.health";
            reason = *entry->health.output ? entry->health.output : "health";
        }
    }
    //  A replica: no checks of its own (an owned entry taken over loses its).
    entry->cfg = (cfg_t){0};
    entry->running = false;
    s_origin_move (self, entry, origin);
    s_reschedule (self, entry);
    s_emit (self, type, entry, reason, previous, now_ms);
    return KEEL_OK;
}

int
keel_catalog_apply_removal (keel_catalog_t *self,
                            const Keel__Instance *instance, const char *reason,
                            int64_t now_ms)
{
    assert (self);
    assert (!self->in_event);
    if (!instance || !instance->origin)
        return KEEL_ERR_NOT_FOUND;
    entry_t *entry = s_lookup (self, instance->id);
    if (!entry || entry->origin == self->origins[0] ||
        strcmp (entry->origin->name, instance->origin) != 0 ||
        entry->inst->version > instance->version)
        return KEEL_ERR_NOT_FOUND;
    if (instance->version > self->clock)
        self->clock = instance->version;
    keel_catalog_renew (self, instance->origin, now_ms);
    s_remove (self, entry, reason && *reason ? reason : "deregistered", now_ms);
    return KEEL_OK;
}

void
keel_catalog_renew (keel_catalog_t *self, const char *origin, int64_t now_ms)
{
    assert (self);
    origin_t *group = origin ? s_origin_find (self, origin) : NULL;
    if (group && group != self->origins[0])
        group->lease_ms = s_add (now_ms, self->limits.replica_lease_ms);
}

#define S_FNV_BASIS 0xcbf29ce484222325ULL
#define S_FNV_PRIME 0x100000001b3ULL

static uint64_t
s_fnv (uint64_t hash, const void *data, size_t size)
{
    const unsigned char *bytes = (const unsigned char *)data;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ bytes[i]) * S_FNV_PRIME;
    return hash;
}

uint64_t
keel_catalog_digest (keel_catalog_t *self, const char *origin)
{
    assert (self);
    origin_t *group = s_origin_find (self, origin ? origin : "");
    uint64_t hash = S_FNV_BASIS;
    if (!group)
        return hash;
    s_vec_sort (&group->entries);
    for (size_t pos = 0; pos < group->entries.size; pos++) {
        const Keel__Instance *inst = group->entries.items[pos]->inst;
        hash = s_fnv (hash, inst->id, strlen (inst->id) + 1);
        unsigned char version[8];
        for (int i = 0; i < 8; i++)
            version[i] = (unsigned char)(inst->version >> (8 * i));
        hash = s_fnv (hash, version, sizeof version);
    }
    return hash;
}

size_t
keel_catalog_list_origin (keel_catalog_t *self, const char *origin,
                          int64_t now_ms, Keel__Instance ***list_p)
{
    assert (self);
    assert (list_p);
    *list_p = self->result;
    origin_t *group = s_origin_find (self, origin ? origin : "");
    if (!group)
        return 0;
    s_vec_sort (&group->entries);
    for (size_t pos = 0; pos < group->entries.size; pos++) {
        s_fill_age (group->entries.items[pos], now_ms);
        self->result[pos] = group->entries.items[pos]->inst;
    }
    return group->entries.size;
}

static int
s_digest_entry_compare (const void *a, const void *b)
{
    return strcmp ((*(Keel__DigestEntry *const *)a)->id,
                   (*(Keel__DigestEntry *const *)b)->id);
}

size_t
keel_catalog_reconcile (keel_catalog_t *self, const char *origin,
                        Keel__DigestEntry *const *entries, size_t count,
                        uint64_t clock, int64_t now_ms, const char **need)
{
    assert (self);
    assert (!self->in_event);
    if (!origin || strcmp (origin, self->origins[0]->name) == 0)
        return 0;
    keel_catalog_renew (self, origin, now_ms);
    if (clock > self->clock)
        self->clock = clock;
    //  What to fetch: listed, and missing here or older here.
    size_t needed = 0;
    for (size_t i = 0; i < count; i++) {
        const Keel__DigestEntry *listed = entries[i];
        if (!listed || !listed->id || !*listed->id)
            continue;
        entry_t *entry = s_lookup (self, listed->id);
        if (!entry || s_newer (listed->version, origin, entry->inst->version,
                               entry->origin->name))
            need[needed++] = listed->id;
    }
    //  What to drop: replicas of origin it no longer lists.
    origin_t *group = s_origin_find (self, origin);
    if (!group || group->entries.size == 0)
        return needed;
    Keel__DigestEntry **sorted = (Keel__DigestEntry **)malloc (
        (count ? count : 1) * sizeof (Keel__DigestEntry *));
    if (!sorted)
        return needed; //  the next round drops them
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (entries[i] && entries[i]->id)
            sorted[n++] = entries[i];
    qsort (sorted, n, sizeof *sorted, s_digest_entry_compare);
    //  Backwards: a removal swaps in the last item, already visited.
    for (size_t pos = group->entries.size; pos > 0; pos--) {
        if (pos > group->entries.size)
            continue;
        entry_t *entry = group->entries.items[pos - 1];
        Keel__DigestEntry key = KEEL__DIGEST_ENTRY__INIT;
        key.id = entry->inst->id;
        Keel__DigestEntry *keyp = &key;
        if (entry->inst->version <= clock &&
            !bsearch (&keyp, sorted, n, sizeof *sorted, s_digest_entry_compare))
            s_remove (self, entry, "no longer owned by its origin", now_ms);
    }
    free (sorted);
    return needed;
}
