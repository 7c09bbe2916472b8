/*  gateway_actor.c - the API gateway's shell. See gateway_actor.h.

    One thread runs everything: a zloop with the actor's pipe, its bus
    server, the registry's events, the breaker mirror, a DEALER per bus
    instance, and the evloop's epoll fd (HTTP clients and upstream pools).

    A request's life (s_call_t):

        on_request -> admin path? -> route -> auth -> s_attempt
                                                        |
          breaker (service, instance) + balancer pick --+--> bus / http
                                                        |
          reply / response / error --> retry? --yes--> s_attempt (another
                                         | no             instance)
                                         v
                                      s_finish: respond, metrics, log

    Lifetimes: a route table is shared by the calls that started on it and
    freed with the last (reload swaps tables); an instance object (the
    balancer's user slot: bus client or HTTP pool) is held by the balancer
    and by each call in flight to it, and freed on a later tick (a client
    must not be destroyed inside its own callback).
*/
#include "gateway_actor.h"
#include "balancer.h"
#include "breaker.h"
#include "breaker_actor.h"
#include "breaker_mirror.h"
#include "evloop.h"
#include "gateway.pb-c.h"
#include "http_server.h"
#include "http_upstream.h"
#include "jwt.h"
#include "keel_client.h"
#include "keel_config.h"
#include "keel_follow.h"
#include "keel_node.h"
#include "keel_server.h"
#include "metrics.h"
#include "registry.pb-c.h"
#include "routes.h"
#include "saga.pb-c.h"

#include <jansson.h>
#include <openssl/crypto.h>

#include <sodium.h>
#include <string.h>
#include <time.h>

#define S_MAX_HEADERS 128 //  headers forwarded either way, at most
#define S_MAX_ID      128 //  longest X-Request-Id kept from a client
#define S_CODE_CACHE  8   //  statuses remembered per route

typedef struct _self_t self_t;
typedef struct _s_service_t s_service_t;

//  A route table in use, shared by the calls that started on it.
typedef struct {
    keel_routes_t *routes;      //  the table
    struct _s_route_state **rs; //  state of each route, by route index
    size_t refs;                //  self (while current) + calls
    uint64_t generation;        //  1, 2, ... per load
} s_table_t;

//  What lasts of a route across reloads (found by name).
typedef struct _s_route_state {
    char *name;              //  route name
    s_service_t *service;    //  bus/http target, or NULL
    double tokens;           //  retry budget (token bucket)
    uint64_t requests;       //  answered
    keel_metric_t *duration; //  request duration histogram
    keel_metric_t *retries;  //  retries counter
    struct {
        int status;            //  0 = empty
        keel_metric_t *metric; //  its requests_total series
    } codes[S_CODE_CACHE];     //  the last statuses answered
} s_route_state_t;

//  An upstream service as one balancing policy sees it.
struct _s_service_t {
    self_t *self;             //  the actor
    char *key;                //  "bus:users:p2c": the services table key
    char *target;             //  "bus:users" (breaker key, metrics label)
    char *name;               //  registry service name
    char *http_type;          //  "users.http": the type bus requests carry
    keel_route_target_t kind; //  BUS or HTTP
    keel_balancer_t *lb;      //  instances as self->follow has them
                              //  (those with this kind's endpoints)
    keel_metric_t *upstream;  //  upstream duration histogram
};

//  One instance's connection: the balancer's user slot.
typedef struct {
    self_t *self;           //  the actor
    s_service_t *service;   //  its service
    char *key;              //  breaker key "bus:users/INSTANCE"
    keel_client_t *client;  //  BUS: its DEALER, or NULL
    keel_http_pool_t *pool; //  HTTP: its pool, or NULL
    size_t refs;            //  balancer + calls in flight
} s_instance_t;

//  One HTTP request on its way.
typedef struct {
    self_t *self;                   //  the actor
    keel_http_exchange_t *exchange; //  the client's exchange
    s_table_t *table;               //  ref held
    const keel_route_t *route;      //  matched route
    s_route_state_t *rs;            //  its state
    s_service_t *service;           //  its service
    keel_route_match_t *match;      //  parameters (allocated once)
    keel_identity_t identity;       //  who (cleared when anonymous)
    char request_id[S_MAX_ID + 1];  //  X-Request-Id
    int64_t started_ms;             //  request complete
    int64_t deadline_ms;            //  route timeout ends
    int attempts;                   //  upstream attempts made
    s_instance_t *instance;         //  attempt in flight: ref held
    char *instance_id;              //  its id (for balancer_done)
    uint64_t instance_serial;       //  its serial
    bool service_permit;            //  service breaker acquired
    int64_t service_us;             //  when (zclock_usecs)
    int status;                     //  status answered (s_count)
    int64_t attempt_us;             //  attempt start (zclock_usecs)
    uint64_t bus_id;                //  bus request id, or 0
    bool saga_call;              //  bus_id is a request to the saga coordinator
    keel_http_call_t *http_call; //  HTTP call, or NULL
    const char *upstream_label;  //  instance id for the access log
    char upstream_buf[64];       //  copy of it
} s_call_t;

struct _self_t {
    keel_actor_args_t *args;                //  what the node gave
    const char *name;                       //  actor name
    zloop_t *loop;                          //  everything runs here
    keel_server_t *server;                  //  bus requests
    keel_evloop_t *ev;                      //  HTTP sockets and timers
    keel_http_server_t *http;               //  the front door
    char listen[128];                       //  address listened on
    keel_http_server_config_t http_config;  //  its settings
    keel_upstream_config_t upstream_config; //  pools' settings
    keel_auth_t *auth;                      //  credentials
    s_table_t *table;                       //  routes in use
    uint64_t generation;                    //  tables loaded
    zhashx_t *route_states;                 //  name -> s_route_state_t
    zhashx_t *services;                     //  key -> s_service_t
    zlistx_t *graveyard;                    //  s_instance_t to free on the tick
    keel_follow_t *follow;                  //  the registry, or NULL
    keel_client_t *saga;                    //  the saga coordinator, or NULL
    keel_breaker_mirror_t *mirror;          //  breakers
    keel_classifier_t classifier;           //  what counts as failure
    const char *health_path;                //  "" = off
    const char *metrics_path;               //  "" = off
    char *access_log_path;                  //  NULL = none
    FILE *access_log;                       //  open log, or NULL
    keel_metrics_t *metrics;                //  Prometheus registry
    keel_metric_family_t *m_requests;       //  by route, code
    keel_metric_family_t *m_duration;       //  by route
    keel_metric_family_t *m_upstream;       //  by service
    keel_metric_family_t *m_upstream_errors; //  by service, kind
    keel_metric_family_t *m_retries;         //  by route
    keel_metric_family_t *m_auth;            //  by reason
    keel_metric_family_t *m_breakers;        //  by key, state
    keel_metric_family_t *m_instances;       //  by service
    keel_metric_family_t *m_conns;           //  open connections
    keel_metric_family_t *m_conns_total;     //  accepted, refused...
    int64_t now_us;                          //  monotonic clock, read once per
                                             //  batch of events (s_clock)
    uint64_t id_seed;                        //  request id generator state
    uint64_t id_counter;
    uint64_t calls_open;     //  s_call_t alive
    zlistx_t *spare_calls;   //  freed s_call_t kept for reuse
    uint64_t reloads_failed; //  reloads refused
};

static void s_attempt (s_call_t *call);

//  Read the clock (monotonic, as keel_now_ms) for the events about to be
//  handled; the request path then uses self->now_us instead of a system
//  clock read per step. Durations are as fine as one batch of events.
static inline void
s_clock (self_t *self)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    self->now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#define S_NOW_MS(self) ((self)->now_us / 1000)
static void s_finish_error (s_call_t *call, int status, const char *code,
                            const char *message, const char *retry_after);

// ---------------------------------------------------------------------------
//  Small helpers

static bool
s_ieq (const char *a, const char *b)
{
    return strcasecmp (a, b) == 0;
}

static bool
s_hop_by_hop (const char *name)
{
    //  By length first: most headers are none of these, and strcasecmp per
    //  name per header shows in profiles.
    switch (strlen (name)) {
    case 2:
        return s_ieq (name, "te");
    case 7:
        return s_ieq (name, "trailer") || s_ieq (name, "upgrade");
    case 10:
        return s_ieq (name, "connection") || s_ieq (name, "keep-alive");
    case 14:
        return s_ieq (name, "content-length");
    case 16:
        return s_ieq (name, "proxy-connection");
    case 17:
        return s_ieq (name, "transfer-encoding");
    default:
        return false;
    }
}

//  Does a Connection header value name `name`?
static bool
s_named_in (const char *connection, const char *name)
{
    if (!connection)
        return false;
    size_t len = strlen (name);
    const char *p = connection;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == len && strncasecmp (start, name, len) == 0)
            return true;
    }
    return false;
}

static bool
s_request_id_ok (const char *id)
{
    size_t len = strlen (id);
    if (len == 0 || len > S_MAX_ID)
        return false;
    for (const char *p = id; *p; p++)
        if (*p <= ' ' || *p >= 127 || *p == '"' || *p == '\\')
            return false;
    return true;
}

static void
s_new_request_id (self_t *self, char *out)
{
    //  splitmix64 over a random seed and a counter: unique per process,
    //  unpredictable enough for correlation (not a secret).
    uint64_t z = self->id_seed + (++self->id_counter) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    static const char hex[] = "0123456789abcdef";
    uint32_t counter = (uint32_t)self->id_counter;
    for (int i = 0; i < 16; i++)
        out[i] = hex[(z >> (60 - 4 * i)) & 0xF];
    for (int i = 0; i < 8; i++)
        out[16 + i] = hex[(counter >> (28 - 4 * i)) & 0xF];
    out[24] = 0;
}

static bool
s_idempotent (const char *method)
{
    return streq (method, "GET") || streq (method, "HEAD") ||
           streq (method, "PUT") || streq (method, "DELETE") ||
           streq (method, "OPTIONS");
}

// ---------------------------------------------------------------------------
//  Route tables

static void
s_route_state_free (void **item)
{
    s_route_state_t *rs = (s_route_state_t *)*item;
    free (rs->name);
    free (rs);
    *item = NULL;
}

static void
s_table_unref (s_table_t **table_p)
{
    s_table_t *table = *table_p;
    *table_p = NULL;
    if (!table || --table->refs > 0)
        return;
    keel_routes_destroy (&table->routes);
    free (table->rs);
    free (table);
}

static int s_service_sync (self_t *self, s_service_t *service);
static void s_on_instance_dropped (const keel_upstream_t *upstream, void *user,
                                   void *arg);

static s_service_t *
s_service_get (self_t *self, const keel_route_t *route)
{
    keel_route_target_t kind = keel_route_target (route);
    char key[300];
    snprintf (key, sizeof key, "%s:%s:%s", keel_route_target_type_name (kind),
              keel_route_target_name (route),
              keel_route_policy_name (keel_route_policy (route)));
    s_service_t *service = (s_service_t *)zhashx_lookup (self->services, key);
    if (service)
        return service;
    service = (s_service_t *)zmalloc (sizeof (s_service_t));
    service->self = self;
    service->key = strdup (key);
    service->target = zsys_sprintf ("%s:%s", keel_route_target_type_name (kind),
                                    keel_route_target_name (route));
    service->name = strdup (keel_route_target_name (route));
    service->http_type =
        zsys_sprintf ("%s.http", keel_route_target_name (route));
    service->kind = kind;
    uint64_t seed;
    randombytes_buf (&seed, sizeof seed);
    service->lb = keel_balancer_new (
        (keel_balancer_policy_t)keel_route_policy (route), seed);
    if (service->lb)
        keel_balancer_set_user_free (service->lb, s_on_instance_dropped, NULL);
    const char *labels[] = {service->target};
    service->upstream = keel_metric_series (self->m_upstream, labels);
    if (!service->key || !service->target || !service->name ||
        !service->http_type || !service->lb) {
        free (service->http_type);
        keel_balancer_destroy (&service->lb);
        free (service->key);
        free (service->target);
        free (service->name);
        free (service);
        return NULL;
    }
    zhashx_insert (self->services, key, service);
    if (self->follow) {
        //  Another policy's route may have followed it already: start from
        //  what is known (nothing before its first discovery).
        keel_follow_watch (self->follow, service->name);
        s_service_sync (self, service);
    }
    return service;
}

//  Build a table from `config`; NULL with *error_p (static or config's).
static s_table_t *
s_table_load (self_t *self, keel_config_t *config, const char **error_p)
{
    keel_routes_t *routes = keel_routes_load (config, self->name);
    if (!routes) {
        *error_p = keel_config_error (config);
        return NULL;
    }
    s_table_t *table = (s_table_t *)zmalloc (sizeof (s_table_t));
    size_t n = keel_routes_size (routes);
    table->rs = (s_route_state_t **)calloc (n ? n : 1, sizeof (void *));
    table->routes = routes;
    table->refs = 1;
    table->generation = ++self->generation;
    for (size_t i = 0; i < n; i++) {
        const keel_route_t *route = keel_routes_at (routes, i);
        const char *name = keel_route_name (route);
        s_route_state_t *rs =
            (s_route_state_t *)zhashx_lookup (self->route_states, name);
        if (!rs) {
            rs = (s_route_state_t *)zmalloc (sizeof (s_route_state_t));
            rs->name = strdup (name);
            rs->tokens = 10;
            const char *labels[] = {name};
            rs->duration = keel_metric_series (self->m_duration, labels);
            rs->retries = keel_metric_series (self->m_retries, labels);
            zhashx_insert (self->route_states, name, rs);
        }
        keel_route_target_t kind = keel_route_target (route);
        rs->service =
            (kind == KEEL_ROUTE_TARGET_BUS || kind == KEEL_ROUTE_TARGET_HTTP)
                ? s_service_get (self, route)
                : NULL;
        table->rs[keel_route_index (route)] = rs;
    }
    return table;
}

// ---------------------------------------------------------------------------
//  Instances (balancer user slots)

static void
s_instance_unref (s_instance_t **instance_p)
{
    s_instance_t *instance = *instance_p;
    *instance_p = NULL;
    if (instance && --instance->refs == 0)
        //  Not now: we may be inside this client's callback.
        zlistx_add_end (instance->self->graveyard, instance);
}

static void
s_instance_free (s_instance_t *instance)
{
    if (instance->client) {
        keel_client_detach (instance->client);
        keel_client_destroy (&instance->client);
    }
    keel_http_pool_close (&instance->pool);
    free (instance->key);
    free (instance);
}

static void
s_graveyard_drain (self_t *self)
{
    s_instance_t *instance;
    while ((instance = (s_instance_t *)zlistx_detach (self->graveyard, NULL)))
        s_instance_free (instance);
}

//  The balancer dropped an instance (removed, or its endpoint changed).
static void
s_on_instance_dropped (const keel_upstream_t *upstream, void *user, void *arg)
{
    (void)upstream;
    (void)arg;
    s_instance_t *instance = (s_instance_t *)user;
    //  No new calls: an HTTP pool finishes its calls in flight, then goes.
    keel_http_pool_close (&instance->pool);
    s_instance_unref (&instance);
}

static s_instance_t *
s_instance_get (self_t *self, s_service_t *service,
                const keel_upstream_t *upstream)
{
    if (upstream->user)
        return (s_instance_t *)upstream->user;
    s_instance_t *instance = (s_instance_t *)zmalloc (sizeof (s_instance_t));
    instance->self = self;
    instance->service = service;
    instance->key = zsys_sprintf ("%s/%s", service->target, upstream->id);
    instance->refs = 1;
    if (service->kind == KEEL_ROUTE_TARGET_BUS) {
        instance->client =
            keel_client_new (self->name, upstream->endpoint, service->name);
        if (instance->client) {
            keel_client_set_max_msg_size (instance->client,
                                          self->args->max_msg_size);
            keel_client_attach (instance->client, self->loop);
        }
    } else
        instance->pool = keel_http_pool_new (self->ev, upstream->endpoint,
                                             &self->upstream_config);
    if (!instance->key || (!instance->client && !instance->pool)) {
        s_instance_free (instance);
        return NULL;
    }
    keel_balancer_set_user (service->lb, upstream->id, instance);
    return instance;
}

// ---------------------------------------------------------------------------
//  Following the registry

static bool
s_endpoint_fits (s_service_t *service, const char *endpoint)
{
    bool http = strncmp (endpoint, "http://", 7) == 0;
    return service->kind == KEEL_ROUTE_TARGET_HTTP ? http : !http;
}

//  Make the balancer the follower's instances of its service (after a
//  discovery). Returns 0, or -1 on an instance it refuses or out of memory.
static int
s_service_sync (self_t *self, s_service_t *service)
{
    const Keel__Instance *const *list;
    size_t count = keel_follow_instances (self->follow, service->name, &list);
    keel_upstream_spec_t *specs =
        (keel_upstream_spec_t *)calloc (count ? count : 1, sizeof *specs);
    if (!specs)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        const Keel__Instance *inst = list[i];
        if (!s_endpoint_fits (service, inst->endpoint))
            continue;
        specs[n].id = inst->id;
        specs[n].endpoint = inst->endpoint;
        specs[n].weight = inst->weight;
        specs[n].tags = (const char *const *)inst->tags;
        specs[n].n_tags = inst->n_tags;
        n++;
    }
    int rc = keel_balancer_reset (service->lb, specs, n);
    free (specs);
    return rc;
}

//  The follower's news of `name`: feed the balancer of each policy that
//  routes to it.
static int
s_on_follow (keel_follow_t *follow, const char *name,
             keel_follow_change_t change, const Keel__Instance *inst, void *arg)
{
    (void)follow;
    self_t *self = (self_t *)arg;
    int rc = 0;
    void *item = zhashx_first (self->services);
    for (; item; item = zhashx_next (self->services)) {
        s_service_t *service = (s_service_t *)item;
        if (!streq (service->name, name))
            continue;
        if (change == KEEL_FOLLOW_RESET) {
            if (s_service_sync (self, service) == -1)
                rc = -1;
        } else if (change == KEEL_FOLLOW_UPSERT &&
                   s_endpoint_fits (service, inst->endpoint)) {
            keel_upstream_spec_t spec = {inst->id, inst->endpoint, inst->weight,
                                         (const char *const *)inst->tags,
                                         inst->n_tags};
            keel_balancer_upsert (service->lb, &spec);
        } else
            keel_balancer_remove (service->lb, inst->id);
    }
    return rc;
}

// ---------------------------------------------------------------------------
//  Finishing a request

static void
s_access_log (s_call_t *call, int status, size_t bytes)
{
    self_t *self = call->self;
    if (!self->access_log || !call->exchange)
        return;
    keel_http_request_t *req = keel_http_exchange_request (call->exchange);
    char when[64];
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    fprintf (self->access_log,
             "%s - %s [%s] \"%s %s HTTP/%d.%d\" %d %zu %.3f route=%s "
             "upstream=%s attempts=%d id=%s\n",
             keel_http_exchange_peer (call->exchange),
             call->identity.sub ? call->identity.sub : "-", when,
             keel_http_request_method (req), keel_http_request_url (req),
             keel_http_request_version_major (req),
             keel_http_request_version_minor (req), status, bytes,
             (double)(S_NOW_MS (self) - call->started_ms) / 1000.0,
             call->route ? keel_route_name (call->route) : "-",
             call->upstream_label ? call->upstream_label : "-", call->attempts,
             call->request_id);
}

static void
s_count (s_call_t *call, int status)
{
    self_t *self = call->self;
    call->status = status;
    //  The route's last statuses remember their series: no lookup.
    keel_metric_t *m = NULL;
    s_route_state_t *rs = call->rs;
    size_t slot = (size_t)status % S_CODE_CACHE;
    if (rs && rs->codes[slot].status == status)
        m = rs->codes[slot].metric;
    else {
        char code[8] = {(char)('0' + status / 100 % 10),
                        (char)('0' + status / 10 % 10),
                        (char)('0' + status % 10), 0};
        const char *labels[] = {
            call->route ? keel_route_name (call->route) : "", code};
        m = keel_metric_series (self->m_requests, labels);
        if (rs && m) {
            rs->codes[slot].status = status;
            rs->codes[slot].metric = m;
        }
    }
    if (m)
        keel_metric_inc (m);
    double seconds = (double)(S_NOW_MS (self) - call->started_ms) / 1000.0;
    if (call->rs) {
        call->rs->requests++;
        if (call->rs->duration)
            keel_metric_observe (call->rs->duration, seconds);
    }
}

static void
s_call_free (s_call_t *call)
{
    self_t *self = call->self;
    if (call->service_permit) {
        //  The whole request's outcome, as the client saw it.
        keel_outcome_t outcome =
            call->status == 499 ? KEEL_OUTCOME_IGNORED
            : call->status == 504
                ? keel_classify_http (&self->classifier, -1)
                : keel_classify_http (&self->classifier, call->status);
        int64_t us = self->now_us - call->service_us;
        keel_breaker_mirror_record (self->mirror, call->service->target,
                                    outcome, (uint64_t)(us > 0 ? us : 0));
    }
    if (call->exchange)
        keel_http_exchange_set_user (call->exchange, NULL);
    s_instance_unref (&call->instance);
    free (call->instance_id);
    keel_identity_clear (&call->identity);
    s_table_unref (&call->table);
    self->calls_open--;
    //  Keep a few for the next requests: a call carries a 17 KB match.
    keel_route_match_t *match = call->match;
    memset (call, 0, sizeof *call);
    call->match = match;
    if (!match || zlistx_size (self->spare_calls) >= 256 ||
        !zlistx_add_end (self->spare_calls, call)) {
        free (match);
        free (call);
    }
}

static s_call_t *
s_call_new (self_t *self)
{
    s_call_t *call = (s_call_t *)zlistx_detach (self->spare_calls, NULL);
    if (!call) {
        call = (s_call_t *)zmalloc (sizeof (s_call_t));
        call->match =
            (keel_route_match_t *)malloc (sizeof (keel_route_match_t));
    }
    self->calls_open++;
    call->self = self;
    return call;
}

//  Answer with an upstream's response (headers filtered) and free the call.
static void
s_finish_response (s_call_t *call, int status,
                   const keel_http_header_t *headers, size_t n,
                   const void *body, size_t size)
{
    if (status < 100 || status > 599)
        status = 502;
    keel_http_header_t out[S_MAX_HEADERS + 1];
    size_t count = 0;
    const char *connection = NULL;
    bool has_id = false;
    for (size_t i = 0; i < n; i++)
        if (s_ieq (headers[i].name, "connection"))
            connection = headers[i].value;
    for (size_t i = 0; i < n && count < S_MAX_HEADERS; i++) {
        if (s_hop_by_hop (headers[i].name) ||
            s_named_in (connection, headers[i].name))
            continue;
        if (s_ieq (headers[i].name, "x-request-id"))
            has_id = true;
        out[count++] = headers[i];
    }
    if (!has_id)
        out[count++] = (keel_http_header_t){"X-Request-Id", call->request_id};
    s_count (call, status);
    s_access_log (call, status, size);
    if (call->exchange)
        keel_http_exchange_respond (call->exchange, status, out, count, body,
                                    size, false);
    call->exchange = NULL;
    s_call_free (call);
}

static void
s_finish_error (s_call_t *call, int status, const char *code,
                const char *message, const char *retry_after)
{
    keel_http_header_t extra[2];
    size_t n = 0;
    if (retry_after)
        extra[n++] = (keel_http_header_t){"Retry-After", retry_after};
    extra[n++] = (keel_http_header_t){"X-Request-Id", call->request_id};
    s_count (call, status);
    s_access_log (call, status, 0);
    if (call->exchange)
        keel_http_exchange_error (call->exchange, status, code, message,
                                  call->request_id, extra, n);
    call->exchange = NULL;
    s_call_free (call);
}

// ---------------------------------------------------------------------------
//  Upstream attempts

//  End the attempt in flight: balancer, breakers, metrics. `outcome` as
//  the breaker should see it.
static void
s_attempt_end (s_call_t *call, keel_outcome_t outcome)
{
    self_t *self = call->self;
    uint64_t duration = (uint64_t)(self->now_us - call->attempt_us > 0
                                       ? self->now_us - call->attempt_us
                                       : 0);
    if (call->instance) {
        keel_balancer_done (call->service->lb, call->instance_id,
                            call->instance_serial);
        keel_breaker_mirror_record (self->mirror, call->instance->key, outcome,
                                    duration);
        s_instance_unref (&call->instance);
    }
    if (call->service->upstream)
        keel_metric_observe (call->service->upstream, (double)duration / 1e6);
    call->bus_id = 0;
    call->http_call = NULL;
}

static void
s_upstream_error_count (s_call_t *call, const char *kind)
{
    const char *labels[] = {call->service->target, kind};
    keel_metric_t *m =
        keel_metric_series (call->self->m_upstream_errors, labels);
    if (m)
        keel_metric_inc (m);
}

//  May this call try again on another instance?
static bool
s_may_retry (s_call_t *call)
{
    if (call->attempts > keel_route_retries (call->route) || !call->exchange)
        return false;
    keel_http_request_t *req = keel_http_exchange_request (call->exchange);
    if (!s_idempotent (keel_http_request_method (req)))
        return false;
    if (S_NOW_MS (call->self) >= call->deadline_ms)
        return false;
    if (call->rs->tokens < 1.0)
        return false;
    call->rs->tokens -= 1.0;
    if (call->rs->retries)
        keel_metric_inc (call->rs->retries);
    return true;
}

static void
s_on_bus_reply (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_call_t *call = (s_call_t *)arg;
    s_clock (call->self);
    int code = reply->code;
    if (code != KEEL_OK)
        s_upstream_error_count (call, keel_errname (code));
    keel_outcome_t outcome = keel_classify_bus (&call->self->classifier, code);
    s_attempt_end (call, outcome);
    if (code == KEEL_OK) {
        Keel__HttpResponse *resp =
            keel__http_response__unpack (NULL, reply->size, reply->data);
        if (!resp) {
            s_finish_error (call, 502, "bad_gateway",
                            "the service's reply is not an HttpResponse", NULL);
            return;
        }
        keel_http_header_t headers[S_MAX_HEADERS];
        size_t n = 0;
        for (size_t i = 0; i < resp->n_headers && n < S_MAX_HEADERS; i++)
            headers[n++] = (keel_http_header_t){resp->headers[i]->name,
                                                resp->headers[i]->value};
        s_finish_response (call, resp->status ? (int)resp->status : 500,
                           headers, n, resp->body.data, resp->body.len);
        keel__http_response__free_unpacked (resp, NULL);
        return;
    }
    if ((code == KEEL_ERR_UNAVAILABLE || code == KEEL_ERR_UNKNOWN_SERVICE) &&
        s_may_retry (call)) {
        s_attempt (call);
        return;
    }
    //  The service answered with an error of its own: say it as HTTP.
    int status = 502;
    const char *name = "bad_gateway";
    switch (code) {
    case KEEL_ERR_TIMEOUT:
        status = 504, name = "gateway_timeout";
        break;
    case KEEL_ERR_BAD_REQUEST:
    case KEEL_ERR_INVALID_ARGUMENT:
        status = 400, name = "bad_request";
        break;
    case KEEL_ERR_NOT_FOUND:
        status = 404, name = "not_found";
        break;
    case KEEL_ERR_CONFLICT:
        status = 409, name = "conflict";
        break;
    case KEEL_ERR_TOO_LARGE:
        status = 413, name = "too_large";
        break;
    default:
        break;
    }
    char message[300];
    snprintf (message, sizeof message, "%s: %s", call->service->name,
              reply->text && *reply->text ? reply->text : keel_strerror (code));
    s_finish_error (call, status, name, message, NULL);
}

static void
s_on_http_reply (keel_http_call_t *http_call,
                 const keel_upstream_response_t *resp, void *arg)
{
    (void)http_call;
    s_call_t *call = (s_call_t *)arg;
    int status = resp->error == KEEL_UPSTREAM_OK        ? resp->status
                 : resp->error == KEEL_UPSTREAM_TIMEOUT ? -1
                                                        : 0;
    if (resp->error != KEEL_UPSTREAM_OK)
        s_upstream_error_count (call, keel_upstream_error_str (resp->error));
    s_attempt_end (call, keel_classify_http (&call->self->classifier, status));
    if (resp->error == KEEL_UPSTREAM_OK) {
        if ((status == 502 || status == 503 || status == 504) &&
            s_may_retry (call)) {
            s_attempt (call);
            return;
        }
        s_finish_response (call, status, resp->headers, resp->n_headers,
                           resp->body, resp->body_size);
        return;
    }
    if (resp->error != KEEL_UPSTREAM_TIMEOUT && s_may_retry (call)) {
        s_attempt (call);
        return;
    }
    char message[300];
    snprintf (message, sizeof message, "%s: %s", call->service->name,
              resp->detail ? resp->detail
                           : keel_upstream_error_str (resp->error));
    if (resp->error == KEEL_UPSTREAM_TIMEOUT)
        s_finish_error (call, 504, "gateway_timeout", message, NULL);
    else if (resp->error == KEEL_UPSTREAM_NO_MEMORY)
        s_finish_error (call, 500, "internal", message, NULL);
    else
        s_finish_error (call, 502, "bad_gateway", message, NULL);
}

static bool
s_allowed (const keel_upstream_t *upstream, void *arg)
{
    s_service_t *service = (s_service_t *)arg;
    char key[512];
    const char *k = upstream->user ? ((s_instance_t *)upstream->user)->key
                                   : (snprintf (key, sizeof key, "%s/%s",
                                                service->target, upstream->id),
                                      key);
    keel_breaker_state_t state =
        keel_breaker_mirror_state (service->self->mirror, k);
    return state != KEEL_BREAKER_OPEN && state != KEEL_BREAKER_FORCED_OPEN;
}

static void
s_retry_after (uint64_t us, char *out, size_t size)
{
    uint64_t s = (us + 999999) / 1000000;
    snprintf (out, size, "%llu", (unsigned long long)(s ? s : 1));
}

static int
s_send_bus (s_call_t *call)
{
    self_t *self = call->self;
    keel_http_request_t *req = keel_http_exchange_request (call->exchange);
    Keel__HttpRequest msg = KEEL__HTTP_REQUEST__INIT;
    msg.method = (char *)keel_http_request_method (req);
    msg.path = (char *)keel_http_request_path (req);
    msg.query = (char *)keel_http_request_query (req);
    size_t nh = keel_http_request_header_count (req);
    Keel__HttpHeader hbuf[S_MAX_HEADERS];
    Keel__HttpHeader *hptr[S_MAX_HEADERS];
    size_t count = 0;
    for (size_t i = 0; i < nh && count < S_MAX_HEADERS; i++) {
        keel__http_header__init (&hbuf[count]);
        hbuf[count].name = (char *)keel_http_request_header_name (req, i);
        hbuf[count].value = (char *)keel_http_request_header_value (req, i);
        hptr[count] = &hbuf[count];
        count++;
    }
    msg.n_headers = count;
    msg.headers = hptr;
    msg.body.data = (uint8_t *)keel_http_request_body (req);
    msg.body.len = keel_http_request_body_size (req);
    msg.route = (char *)keel_route_name (call->route);
    Keel__HttpRequest__ParamsEntry pbuf[KEEL_ROUTES_MAX_PARAMS];
    Keel__HttpRequest__ParamsEntry *pptr[KEEL_ROUTES_MAX_PARAMS];
    for (size_t i = 0; i < call->match->param_count; i++) {
        keel__http_request__params_entry__init (&pbuf[i]);
        pbuf[i].key = (char *)call->match->params[i].name;
        pbuf[i].value = (char *)call->match->params[i].value;
        pptr[i] = &pbuf[i];
    }
    msg.n_params = call->match->param_count;
    msg.params = pptr;
    msg.remote_addr = (char *)keel_http_exchange_peer (call->exchange);
    msg.request_id = call->request_id;
    msg.subject = (char *)(call->identity.sub ? call->identity.sub : "");
    msg.n_scopes = call->identity.scope_count;
    msg.scopes = (char **)call->identity.scopes;
    msg.n_roles = call->identity.role_count;
    msg.roles = (char **)call->identity.roles;
    int64_t left = call->deadline_ms - S_NOW_MS (self);
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)(left > 1 ? left : 1),
                             .retries = KEEL_NO_RETRY};
    const char *traceparent = keel_http_request_header (req, "traceparent");
    char trace[33];
    if (traceparent && strlen (traceparent) >= 55 && traceparent[2] == '-') {
        memcpy (trace, traceparent + 3, 32);
        trace[32] = 0;
        opts.trace_id = trace;
    }
    call->bus_id =
        keel_client_request (call->instance->client, call->service->http_type,
                             &msg.base, &opts, s_on_bus_reply, call);
    (void)self;
    return call->bus_id ? 0 : -1;
}

static int
s_send_http (s_call_t *call)
{
    keel_http_request_t *req = keel_http_exchange_request (call->exchange);
    size_t nh = keel_http_request_header_count (req);
    keel_http_header_t headers[S_MAX_HEADERS + 4];
    size_t count = 0;
    const char *xff = NULL;
    bool has_id = false;
    for (size_t i = 0; i < nh && count < S_MAX_HEADERS; i++) {
        const char *name = keel_http_request_header_name (req, i);
        if (s_ieq (name, "x-forwarded-for")) {
            xff = keel_http_request_header_value (req, i);
            continue;
        }
        if (s_ieq (name, "x-request-id"))
            has_id = true;
        headers[count++] =
            (keel_http_header_t){name, keel_http_request_header_value (req, i)};
    }
    const char *peer = keel_http_exchange_peer (call->exchange);
    char xff_buf[1024];
    if (xff && strlen (xff) + strlen (peer) + 3 < sizeof xff_buf) {
        snprintf (xff_buf, sizeof xff_buf, "%.900s, %.64s", xff, peer);
        headers[count++] = (keel_http_header_t){"X-Forwarded-For", xff_buf};
    } else
        headers[count++] = (keel_http_header_t){"X-Forwarded-For", peer};
    headers[count++] = (keel_http_header_t){"X-Forwarded-Proto", "http"};
    if (!has_id)
        headers[count++] =
            (keel_http_header_t){"X-Request-Id", call->request_id};
    keel_upstream_request_t up = {
        .method = keel_http_request_method (req),
        .target = keel_http_request_url (req),
        .headers = headers,
        .n_headers = count,
        .body = keel_http_request_body (req),
        .body_size = keel_http_request_body_size (req),
        .deadline_ms = call->deadline_ms,
        .retry_safe = s_idempotent (keel_http_request_method (req)),
    };
    //  An absolute-form target ("http://h/p") goes upstream as origin-form.
    char target[KEEL_ROUTES_MAX_PATH + 16];
    if (up.target[0] != '/') {
        const char *query = keel_http_request_query (req);
        snprintf (target, sizeof target, "%s%s%s", keel_http_request_path (req),
                  *query ? "?" : "", query);
        up.target = target;
    }
    call->http_call =
        keel_http_pool_call (call->instance->pool, &up, s_on_http_reply, call);
    return call->http_call ? 0 : -1;
}

//  Try an instance: breakers, balancer, send. Ends the call on failure.
static void
s_attempt (s_call_t *call)
{
    self_t *self = call->self;
    s_service_t *service = call->service;
    if (!call->exchange) {
        s_call_free (call);
        return;
    }
    if (S_NOW_MS (self) >= call->deadline_ms) {
        s_finish_error (call, 504, "gateway_timeout",
                        "the route's timeout passed", NULL);
        return;
    }
    //  The service's breaker judges whole requests (retries included), so
    //  one bad instance among good ones does not open it; the instance's
    //  breaker judges each attempt.
    uint64_t wait_us = 0;
    if (!call->service_permit && !keel_breaker_mirror_acquire (
                                     self->mirror, service->target, &wait_us)) {
        char after[32];
        s_retry_after (wait_us, after, sizeof after);
        char message[300];
        snprintf (message, sizeof message, "circuit breaker of %s is open",
                  service->target);
        s_finish_error (call, 503, "circuit_open", message, after);
        return;
    }
    if (!call->service_permit)
        call->service_us = self->now_us;
    call->service_permit = true;
    const char *exclude =
        call->instance_id && call->attempts > 0 ? call->instance_id : NULL;
    char *excluded = exclude ? strdup (exclude) : NULL;
    const keel_upstream_t *up = NULL;
    s_instance_t *instance = NULL;
    for (int tries = 0; tries < 3; tries++) {
        up = keel_balancer_pick (service->lb, s_allowed, service, excluded);
        if (!up && excluded) {
            //  Nothing else: the one we left may do (a retry on it beats a
            //  certain error).
            up = keel_balancer_pick (service->lb, s_allowed, service, NULL);
        }
        if (!up)
            break;
        instance = s_instance_get (self, service, up);
        if (instance &&
            keel_breaker_mirror_acquire (self->mirror, instance->key, &wait_us))
            break;
        keel_balancer_done (service->lb, up->id, up->serial);
        free (excluded);
        excluded = strdup (up->id);
        up = NULL;
        instance = NULL;
    }
    free (excluded);
    if (!up) {
        if (call->attempts == 0) {
            //  Nothing was called: nothing to judge the service by.
            call->service_permit = false;
            keel_breaker_mirror_record (self->mirror, service->target,
                                        KEEL_OUTCOME_IGNORED, 0);
        }
        char message[300];
        snprintf (message, sizeof message, "no healthy instance of %s",
                  service->target);
        //  Perhaps a registration's event was missed (a subscriber misses
        //  what is published before it is heard): ask the registry again,
        //  at most twice a second once it answered.
        if (self->follow)
            keel_follow_refresh (
                self->follow, service->name,
                keel_follow_ready (self->follow, service->name) ? 500 : 0);
        s_finish_error (call, 503, "no_instance", message, "1");
        return;
    }
    free (call->instance_id);
    call->instance_id = strdup (up->id);
    call->instance_serial = up->serial;
    call->instance = instance;
    instance->refs++;
    snprintf (call->upstream_buf, sizeof call->upstream_buf, "%s", up->id);
    call->upstream_label = call->upstream_buf;
    call->attempts++;
    call->attempt_us = self->now_us;
    int rc = service->kind == KEEL_ROUTE_TARGET_BUS ? s_send_bus (call)
                                                    : s_send_http (call);
    if (rc == -1) {
        s_attempt_end (call, KEEL_OUTCOME_FAILURE);
        s_upstream_error_count (call, "send");
        if (s_may_retry (call))
            s_attempt (call);
        else
            s_finish_error (call, 502, "bad_gateway",
                            "cannot send to the upstream", NULL);
    }
}

// ---------------------------------------------------------------------------
//  Saga targets: saga:NAME (POST starts one), saga-status:NAME (GET reads
//  one), answered with the saga's status as JSON.

//  A saga's bytes (input, output) as JSON when they are JSON, else a string.
static json_t *
s_bytes_json (const ProtobufCBinaryData *data)
{
    if (!data->len)
        return json_null ();
    json_t *doc =
        json_loadb ((const char *)data->data, data->len, JSON_DECODE_ANY, NULL);
    return doc ? doc : json_stringn ((const char *)data->data, data->len);
}

//  The path of the saga-status route of saga `name` for saga `id`, or NULL
//  (caller frees).
static char *
s_status_url (s_call_t *call, const char *name, const char *id)
{
    keel_routes_t *routes = call->table->routes;
    for (size_t i = 0; i < keel_routes_size (routes); i++) {
        const keel_route_t *route = keel_routes_at (routes, i);
        if (keel_route_target (route) != KEEL_ROUTE_TARGET_SAGA_STATUS ||
            !streq (keel_route_target_name (route), name))
            continue;
        const char *path = keel_route_path (route);
        const char *param = strstr (path, "{id}");
        if (!param)
            continue;
        return zsys_sprintf ("%.*s%s%s", (int)(param - path), path, id,
                             param + 4);
    }
    return NULL;
}

static const char *s_saga_states[] = {"RUNNING", "COMPENSATING", "COMPLETED",
                                      "COMPENSATED", "STUCK"};
static const char *s_step_states[] = {"PENDING", "RUNNING",      "DONE",
                                      "FAILED",  "COMPENSATING", "COMPENSATED",
                                      "SKIPPED"};

static char *
s_saga_json (const Keel__SagaStatus *st, const char *status_url)
{
    json_t *doc = json_object ();
    json_object_set_new (doc, "id", json_string (st->id));
    json_object_set_new (doc, "saga", json_string (st->definition));
    json_object_set_new (doc, "version", json_integer (st->version));
    json_object_set_new (doc, "state",
                         json_string ((size_t)st->state < 5
                                          ? s_saga_states[st->state]
                                          : "UNKNOWN"));
    if (*st->last_error)
        json_object_set_new (doc, "last_error", json_string (st->last_error));
    if (status_url)
        json_object_set_new (doc, "status_url", json_string (status_url));
    json_t *steps = json_array ();
    for (size_t i = 0; i < st->n_steps; i++) {
        const Keel__StepStatus *step = st->steps[i];
        json_t *s = json_object ();
        json_object_set_new (s, "name", json_string (step->name));
        json_object_set_new (s, "state",
                             json_string ((size_t)step->state < 7
                                              ? s_step_states[step->state]
                                              : "UNKNOWN"));
        json_object_set_new (s, "attempts", json_integer (step->attempts));
        if (step->compensation_attempts)
            json_object_set_new (s, "compensation_attempts",
                                 json_integer (step->compensation_attempts));
        if (*step->last_error)
            json_object_set_new (s, "last_error",
                                 json_string (step->last_error));
        if (step->output.len)
            json_object_set_new (s, "output", s_bytes_json (&step->output));
        json_array_append_new (steps, s);
    }
    json_object_set_new (doc, "steps", steps);
    json_object_set_new (doc, "input", s_bytes_json (&st->input));
    char *text = json_dumps (doc, JSON_COMPACT);
    json_decref (doc);
    return text;
}

static void
s_on_saga_reply (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_call_t *call = (s_call_t *)arg;
    s_clock (call->self);
    call->bus_id = 0;
    if (reply->code != KEEL_OK) {
        int status = reply->code == KEEL_ERR_NOT_FOUND     ? 404
                     : reply->code == KEEL_ERR_TIMEOUT     ? 504
                     : reply->code == KEEL_ERR_UNAVAILABLE ? 503
                     : reply->code == KEEL_ERR_CONFLICT    ? 409
                     : reply->code == KEEL_ERR_BAD_REQUEST ||
                             reply->code == KEEL_ERR_INVALID_ARGUMENT
                         ? 400
                         : 502;
        const char *code = status == 404   ? "not_found"
                           : status == 504 ? "gateway_timeout"
                           : status == 503 ? "unavailable"
                           : status == 409 ? "conflict"
                           : status == 400 ? "bad_request"
                                           : "bad_gateway";
        s_finish_error (call, status, code,
                        reply->text && *reply->text
                            ? reply->text
                            : keel_strerror (reply->code),
                        status == 503 ? "1" : NULL);
        return;
    }
    Keel__SagaStatus *st =
        keel__saga_status__unpack (NULL, reply->size, reply->data);
    if (!st) {
        s_finish_error (call, 502, "bad_gateway",
                        "the saga coordinator's reply is malformed", NULL);
        return;
    }
    bool start = keel_route_target (call->route) == KEEL_ROUTE_TARGET_SAGA;
    if (!start &&
        !streq (st->definition, keel_route_target_name (call->route))) {
        keel__saga_status__free_unpacked (st, NULL);
        s_finish_error (call, 404, "not_found", "no such saga here", NULL);
        return;
    }
    char *url = s_status_url (call, st->definition, st->id);
    char *body = s_saga_json (st, url);
    bool ended = st->state == KEEL__SAGA_STATE__SAGA_COMPLETED ||
                 st->state == KEEL__SAGA_STATE__SAGA_COMPENSATED ||
                 st->state == KEEL__SAGA_STATE__SAGA_STUCK;
    int status = start && !ended ? 202 : start ? 200 : 200;
    keel_http_header_t headers[3] = {{"Content-Type", "application/json"},
                                     {"X-Request-Id", call->request_id},
                                     {"Location", url ? url : ""}};
    size_t n = url && start ? 3 : 2;
    keel__saga_status__free_unpacked (st, NULL);
    if (body)
        s_finish_response (call, status, headers, n, body, strlen (body));
    else
        s_finish_error (call, 500, "internal", "out of memory", NULL);
    free (body);
    free (url);
}

//  The number of seconds in a "Prefer: wait=N" header (RFC 7240), or 0.
static int64_t
s_prefer_wait (const char *prefer)
{
    const char *wait = prefer ? strstr (prefer, "wait=") : NULL;
    if (!wait)
        return 0;
    long seconds = strtol (wait + 5, NULL, 10);
    return seconds > 0 ? (seconds > 3600 ? 3600 : seconds) : 0;
}

static void
s_saga_request (s_call_t *call, keel_http_request_t *req)
{
    self_t *self = call->self;
    if (!self->saga) {
        s_finish_error (call, 503, "unavailable",
                        "no saga coordinator is reachable from this gateway",
                        "1");
        return;
    }
    int64_t left = call->deadline_ms - S_NOW_MS (self);
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)(left > 1 ? left : 1),
                             .retries = KEEL_NO_RETRY};
    call->saga_call = true;
    if (keel_route_target (call->route) == KEEL_ROUTE_TARGET_SAGA) {
        Keel__StartRequest start = KEEL__START_REQUEST__INIT;
        start.definition = (char *)keel_route_target_name (call->route);
        start.input.data = (uint8_t *)keel_http_request_body (req);
        start.input.len = keel_http_request_body_size (req);
        const char *key = keel_http_request_header (req, "idempotency-key");
        start.idempotency_key = (char *)(key ? key : "");
        int64_t wait_s =
            s_prefer_wait (keel_http_request_header (req, "prefer"));
        if (wait_s) {
            //  Wait for the end, within the route's timeout.
            int64_t wait_ms = wait_s * 1000;
            if (wait_ms > left - 100)
                wait_ms = left - 100;
            start.wait = wait_ms > 0;
            start.wait_ms = (uint32_t)(wait_ms > 0 ? wait_ms : 0);
        }
        opts.idempotent = key != NULL;
        call->bus_id =
            keel_client_request (self->saga, "saga.start", &start.base, &opts,
                                 s_on_saga_reply, call);
    } else {
        Keel__SagaRef ref = KEEL__SAGA_REF__INIT;
        ref.id = (char *)keel_route_match_param (call->match, "id");
        if (!ref.id) {
            s_finish_error (call, 400, "bad_request", "no saga id", NULL);
            return;
        }
        opts.idempotent = true;
        call->bus_id = keel_client_request (
            self->saga, "saga.status", &ref.base, &opts, s_on_saga_reply, call);
    }
    if (!call->bus_id)
        s_finish_error (call, 503, "unavailable",
                        "cannot reach the saga coordinator", "1");
}

// ---------------------------------------------------------------------------
//  The front door

static void s_admin_metrics (self_t *self, keel_http_exchange_t *exchange);

static void
s_on_request (keel_http_server_t *server, keel_http_exchange_t *exchange,
              void *arg)
{
    (void)server;
    self_t *self = (self_t *)arg;
    keel_http_request_t *req = keel_http_exchange_request (exchange);
    const char *method = keel_http_request_method (req);
    const char *path = keel_http_request_path (req);
    bool get = streq (method, "GET") || streq (method, "HEAD");
    if (*self->health_path && streq (path, self->health_path) && get) {
        static const keel_http_header_t ct[] = {
            {"Content-Type", "application/json"}};
        const char *body = "{\"status\":\"ok\"}";
        keel_http_exchange_respond (exchange, 200, ct, 1, body, strlen (body),
                                    false);
        return;
    }
    if (*self->metrics_path && streq (path, self->metrics_path) && get) {
        s_admin_metrics (self, exchange);
        return;
    }
    s_call_t *call = s_call_new (self);
    call->exchange = exchange;
    call->started_ms = keel_http_exchange_started_ms (exchange);
    keel_http_exchange_set_user (exchange, call);
    const char *id = keel_http_request_header (req, "x-request-id");
    if (id && s_request_id_ok (id))
        snprintf (call->request_id, sizeof call->request_id, "%s", id);
    else
        s_new_request_id (self, call->request_id);
    call->table = self->table;
    call->table->refs++;
    if (!call->match) {
        s_finish_error (call, 500, "internal", "out of memory", NULL);
        return;
    }
    keel_routes_result_t found =
        keel_routes_match (call->table->routes, keel_http_request_host (req),
                           method, path, call->match);
    if (found != KEEL_ROUTES_FOUND) {
        char message[256];
        if (found == KEEL_ROUTES_METHOD_NOT_ALLOWED) {
            snprintf (message, sizeof message, "%s is not allowed here",
                      method);
            keel_http_header_t allow[2] = {{"Allow", call->match->allow_text},
                                           {"X-Request-Id", call->request_id}};
            s_count (call, 405);
            s_access_log (call, 405, 0);
            keel_http_exchange_error (exchange, 405, "method_not_allowed",
                                      message, call->request_id, allow, 2);
            call->exchange = NULL;
            s_call_free (call);
        } else if (found == KEEL_ROUTES_NO_ROUTE)
            s_finish_error (call, 404, "not_found", "no route for this path",
                            NULL);
        else if (found == KEEL_ROUTES_TOO_LONG)
            s_finish_error (call, 414, "uri_too_long", "path too long", NULL);
        else
            s_finish_error (call, 400, "bad_path", "malformed path", NULL);
        return;
    }
    call->route = call->match->route;
    keel_http_request_strip_hop_by_hop (req);
    call->rs = call->table->rs[keel_route_index (call->route)];
    call->deadline_ms = call->started_ms + keel_route_timeout_ms (call->route);

    //  Authentication, then authorization.
    keel_route_auth_t auth = keel_route_auth (call->route);
    if (auth != KEEL_ROUTE_AUTH_NONE) {
        const char *bearer = keel_http_request_header (req, "authorization");
        const char *api_key = keel_http_request_header (req, "x-api-key");
        keel_auth_reason_t reason = KEEL_AUTH_NO_CREDENTIALS;
        int rc = 401;
        int64_t now_s = (int64_t)time (NULL);
        if (auth == KEEL_ROUTE_AUTH_API_KEY ||
            (auth == KEEL_ROUTE_AUTH_ANY && api_key && !bearer))
            rc = keel_auth_check_api_key (self->auth, api_key, &call->identity,
                                          &reason);
        else
            rc = keel_auth_check_bearer (self->auth, bearer, now_s,
                                         &call->identity, &reason);
        if (rc != 0) {
            const char *labels[] = {keel_auth_reason_name (reason)};
            keel_metric_t *m = keel_metric_series (self->m_auth, labels);
            if (m)
                keel_metric_inc (m);
            if (rc == 401) {
                keel_http_header_t h[2] = {
                    {"WWW-Authenticate",
                     keel_auth_challenge (self->auth, reason)},
                    {"X-Request-Id", call->request_id}};
                s_count (call, 401);
                s_access_log (call, 401, 0);
                keel_http_exchange_error (exchange, 401, "unauthorized",
                                          keel_auth_reason_text (reason),
                                          call->request_id, h, 2);
                call->exchange = NULL;
                s_call_free (call);
            } else
                s_finish_error (call, 500, "internal", "out of memory", NULL);
            return;
        }
        const char *missing = NULL;
        if (keel_auth_allowed (&call->identity, keel_route_scopes (call->route),
                               keel_route_roles (call->route), &missing) != 0) {
            char *challenge =
                keel_auth_forbidden_challenge (self->auth, missing);
            char message[256];
            if (missing)
                snprintf (message, sizeof message, "scope %s is required",
                          missing);
            else
                snprintf (message, sizeof message,
                          "a required role is missing");
            keel_http_header_t h[2] = {
                {"WWW-Authenticate", challenge ? challenge : "Bearer"},
                {"X-Request-Id", call->request_id}};
            s_count (call, 403);
            s_access_log (call, 403, 0);
            keel_http_exchange_error (exchange, 403, "forbidden", message,
                                      call->request_id, h, 2);
            free (challenge);
            call->exchange = NULL;
            s_call_free (call);
            return;
        }
    }
    switch (keel_route_target (call->route)) {
    case KEEL_ROUTE_TARGET_BUS:
    case KEEL_ROUTE_TARGET_HTTP:
        call->service = call->rs->service;
        if (!call->service) {
            s_finish_error (call, 500, "internal", "out of memory", NULL);
            return;
        }
        //  Retry budget: every request earns a share of a retry.
        call->rs->tokens += keel_route_retry_budget (call->route) / 100.0;
        if (call->rs->tokens > 100)
            call->rs->tokens = 100;
        s_attempt (call);
        break;
    default:
        s_saga_request (call, req);
        break;
    }
}

static void
s_on_abort (keel_http_server_t *server, keel_http_exchange_t *exchange,
            void *arg)
{
    (void)server;
    (void)arg;
    s_call_t *call = (s_call_t *)keel_http_exchange_user (exchange);
    if (!call)
        return;
    call->exchange = NULL;
    if (call->http_call) {
        keel_http_call_cancel (call->http_call);
        s_attempt_end (call, KEEL_OUTCOME_IGNORED);
    } else if (call->bus_id && call->saga_call && call->self->saga) {
        keel_client_cancel (call->self->saga, call->bus_id);
        call->bus_id = 0;
    } else if (call->bus_id && call->instance && call->instance->client) {
        keel_client_cancel (call->instance->client, call->bus_id);
        s_attempt_end (call, KEEL_OUTCOME_IGNORED);
    }
    s_count (call, 499);
    s_call_free (call);
}

static void
s_on_http_error (keel_http_server_t *server, int status, const char *reason,
                 const char *peer, void *arg)
{
    (void)server;
    (void)peer;
    self_t *self = (self_t *)arg;
    char code[8];
    snprintf (code, sizeof code, "%d", status);
    const char *labels[] = {"", code};
    keel_metric_t *m = keel_metric_series (self->m_requests, labels);
    if (m)
        keel_metric_inc (m);
    if (self->access_log)
        fprintf (self->access_log, "%s - - [-] \"-\" %d 0 0.000 reason=%s\n",
                 peer ? peer : "-", status, reason);
}

// ---------------------------------------------------------------------------
//  /metrics

static void
s_breaker_gauge (self_t *self, const char *key)
{
    keel_breaker_state_t state = keel_breaker_mirror_state (self->mirror, key);
    const char *labels[] = {key, keel_breaker_state_name (state)};
    keel_metric_t *m = keel_metric_series (self->m_breakers, labels);
    if (m)
        keel_metric_set (m, 1);
}

static void
s_admin_metrics (self_t *self, keel_http_exchange_t *exchange)
{
    keel_http_server_stats_t hs = keel_http_server_stats (self->http);
    keel_metric_family_reset (self->m_conns);
    keel_metric_family_reset (self->m_conns_total);
    keel_metric_family_reset (self->m_breakers);
    keel_metric_family_reset (self->m_instances);
    keel_metric_t *m = keel_metric_series (self->m_conns, NULL);
    if (m)
        keel_metric_set (m, (double)hs.open);
    struct {
        const char *what;
        uint64_t value;
    } totals[] = {{"accepted", hs.accepted}, {"refused", hs.refused},
                  {"timeouts", hs.timeouts}, {"idle_closed", hs.idle_closed},
                  {"aborted", hs.aborted},   {"bad_requests", hs.bad_requests},
                  {"errors", hs.read_errors}};
    for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++) {
        const char *labels[] = {totals[i].what};
        m = keel_metric_series (self->m_conns_total, labels);
        if (m)
            keel_metric_add (m, (double)totals[i].value);
    }
    void *item = zhashx_first (self->services);
    for (; item; item = zhashx_next (self->services)) {
        s_service_t *service = (s_service_t *)item;
        const char *labels[] = {service->key};
        m = keel_metric_series (self->m_instances, labels);
        if (m)
            keel_metric_set (m, (double)keel_balancer_size (service->lb));
        s_breaker_gauge (self, service->target);
        for (size_t i = 0; i < keel_balancer_size (service->lb); i++) {
            const keel_upstream_t *up = keel_balancer_at (service->lb, i);
            char key[512];
            snprintf (key, sizeof key, "%s/%s", service->target, up->id);
            s_breaker_gauge (self, key);
        }
    }
    size_t size = 0;
    char *text = keel_metrics_render (self->metrics, &size);
    static const keel_http_header_t ct[] = {
        {"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}};
    if (text)
        keel_http_exchange_respond (exchange, 200, ct, 1, text, size, false);
    else
        keel_http_exchange_error (exchange, 500, "internal", "out of memory",
                                  NULL, NULL, 0);
    free (text);
}

// ---------------------------------------------------------------------------
//  Loading settings

static int
s_load_settings (self_t *self, keel_config_t *config)
{
    static const char *keys[] = {"listen",
                                 "bind",
                                 "max_connections",
                                 "header_timeout",
                                 "idle_timeout",
                                 "max_body",
                                 "max_url",
                                 "max_headers",
                                 "max_header_count",
                                 "access_log",
                                 "registry",
                                 "breaker",
                                 "health_path",
                                 "metrics_path",
                                 "upstream",
                                 "circuit",
                                 "auth",
                                 "route",
                                 NULL};
    static const char *upstream_keys[] = {
        "max_connections", "max_idle",          "idle_timeout",
        "connect_timeout", "max_response_body", NULL};
    char path[160];
    const char *section = self->name;
#define S_PATH(key) (snprintf (path, sizeof path, "%s/%s", section, key), path)
    if (keel_config_check_keys (config, section, keys) == -1 ||
        keel_config_check_keys (config, S_PATH ("upstream"), upstream_keys) ==
            -1)
        return -1;
    int64_t v;
    keel_http_server_config_t *hc = &self->http_config;
    if (keel_config_int (config, S_PATH ("max_connections"), 1, 1000000, 10000,
                         &v) == -1)
        return -1;
    hc->max_connections = (size_t)v;
    if (keel_config_duration_ms (config, S_PATH ("header_timeout"), 10000,
                                 &hc->header_timeout_ms) == -1 ||
        keel_config_duration_ms (config, S_PATH ("idle_timeout"), 60000,
                                 &hc->idle_timeout_ms) == -1)
        return -1;
    if (hc->header_timeout_ms < 1 || hc->idle_timeout_ms < 1)
        return keel_config_fail (config, path, "must be at least 1ms");
    //  A body travels to bus services in one frame: leave room for the rest.
    int64_t body_max = 1 << 20;
    if (self->args->max_msg_size &&
        (int64_t)self->args->max_msg_size - 65536 < body_max)
        body_max = (int64_t)self->args->max_msg_size - 65536;
    if (keel_config_size (config, S_PATH ("max_body"), body_max, &v) == -1)
        return -1;
    if (v > body_max && self->args->max_msg_size)
        return keel_config_fail (config, path,
                                 "must leave 64K under the node's "
                                 "max_message_size (%zu)",
                                 self->args->max_msg_size);
    hc->limits.max_body = (size_t)v;
    if (keel_config_size (config, S_PATH ("max_url"), 8192, &v) == -1)
        return -1;
    if (v < 16 || v > KEEL_ROUTES_MAX_PATH)
        return keel_config_fail (config, path, "expected 16 to %d",
                                 KEEL_ROUTES_MAX_PATH);
    hc->limits.max_url = (size_t)v;
    if (keel_config_size (config, S_PATH ("max_headers"), 32768, &v) == -1)
        return -1;
    if (v < 256)
        return keel_config_fail (config, path, "expected at least 256");
    hc->limits.max_headers = (size_t)v;
    if (keel_config_int (config, S_PATH ("max_header_count"), 1, 1000, 100,
                         &v) == -1)
        return -1;
    hc->limits.max_header_count = (size_t)v;

    keel_upstream_config_t *uc = &self->upstream_config;
    if (keel_config_int (config, S_PATH ("upstream/max_connections"), 1, 100000,
                         64, &v) == -1)
        return -1;
    uc->max_connections = (size_t)v;
    if (keel_config_int (config, S_PATH ("upstream/max_idle"), 0, 100000, 32,
                         &v) == -1)
        return -1;
    uc->max_idle = (size_t)v;
    if (keel_config_duration_ms (config, S_PATH ("upstream/idle_timeout"),
                                 30000, &uc->idle_timeout_ms) == -1 ||
        keel_config_duration_ms (config, S_PATH ("upstream/connect_timeout"),
                                 2000, &uc->connect_timeout_ms) == -1)
        return -1;
    if (keel_config_size (config, S_PATH ("upstream/max_response_body"),
                          8 << 20, &v) == -1)
        return -1;
    uc->max_response_body = (size_t)v;
    if (keel_config_string (config, S_PATH ("health_path"), "/healthz",
                            &self->health_path) == -1 ||
        keel_config_string (config, S_PATH ("metrics_path"), "/metrics",
                            &self->metrics_path) == -1)
        return -1;
    if ((*self->health_path && self->health_path[0] != '/') ||
        (*self->metrics_path && self->metrics_path[0] != '/'))
        return keel_config_fail (config, path, "a path starts with /");
    return 0;
#undef S_PATH
}

//  Open (or reopen) the access log named in `config`.
static int
s_open_access_log (self_t *self, keel_config_t *config)
{
    char path[160];
    snprintf (path, sizeof path, "%s/access_log", self->name);
    const char *file = NULL;
    if (keel_config_string (config, path, NULL, &file) == -1)
        return -1;
    if (self->access_log && self->access_log != stdout)
        fclose (self->access_log);
    else if (self->access_log)
        fflush (self->access_log);
    self->access_log = NULL;
    if (!file || !*file)
        return 0;
    if (streq (file, "-"))
        self->access_log = stdout;
    else {
        self->access_log = fopen (file, "a");
        if (!self->access_log)
            return keel_config_fail (config, path, "cannot open '%s': %s", file,
                                     strerror (errno));
    }
    return 0;
}

//  Load routes and auth from `config` and swap them in. Returns 0, or -1
//  with *error_p set (nothing changed).
static int
s_apply_config (self_t *self, keel_config_t *config, const char **error_p)
{
    char path[160];
    snprintf (path, sizeof path, "%s/auth", self->name);
    keel_auth_t *auth = keel_auth_new ();
    if (!auth) {
        *error_p = "out of memory";
        return -1;
    }
    if (keel_auth_load (auth, config, path) == -1) {
        *error_p = keel_config_error (config);
        keel_auth_destroy (&auth);
        return -1;
    }
    s_table_t *table = s_table_load (self, config, error_p);
    if (!table) {
        keel_auth_destroy (&auth);
        return -1;
    }
    keel_auth_destroy (&self->auth);
    self->auth = auth;
    s_table_unref (&self->table);
    self->table = table;
    return 0;
}

// ---------------------------------------------------------------------------
//  Bus commands

static void
s_route_info (self_t *self, const keel_route_t *route, Keel__RouteInfo *info,
              char **methods_buf)
{
    (void)methods_buf;
    keel__route_info__init (info);
    info->name = (char *)keel_route_name (route);
    info->host =
        (char *)(keel_route_host (route) ? keel_route_host (route) : "");
    info->path = (char *)keel_route_path (route);
    info->kind = (char *)keel_route_kind_name (keel_route_kind (route));
    info->policy = (char *)keel_route_policy_name (keel_route_policy (route));
    info->timeout_ms = (uint32_t)keel_route_timeout_ms (route);
    info->retries = (uint32_t)keel_route_retries (route);
    info->retry_budget = (uint32_t)keel_route_retry_budget (route);
    info->auth = (char *)keel_route_auth_name (keel_route_auth (route));
    info->priority = keel_route_priority (route);
    s_route_state_t *rs = self->table->rs[keel_route_index (route)];
    info->requests = rs ? rs->requests : 0;
    info->instances =
        rs && rs->service ? (uint32_t)keel_balancer_size (rs->service->lb) : 0;
    size_t n = 0;
    for (const char *const *s = keel_route_scopes (route); *s; s++)
        n++;
    info->n_scopes = n;
    info->scopes = (char **)keel_route_scopes (route);
    n = 0;
    for (const char *const *s = keel_route_roles (route); *s; s++)
        n++;
    info->n_roles = n;
    info->roles = (char **)keel_route_roles (route);
}

static void
s_reply_routes (self_t *self, keel_server_t *server, keel_request_t *request)
{
    size_t n = keel_routes_size (self->table->routes);
    Keel__RouteInfo *infos =
        (Keel__RouteInfo *)calloc (n ? n : 1, sizeof (Keel__RouteInfo));
    Keel__RouteInfo **ptrs =
        (Keel__RouteInfo **)calloc (n ? n : 1, sizeof (void *));
    char **targets = (char **)calloc (n ? n : 1, sizeof (char *));
    char ***methods = (char ***)calloc (n ? n : 1, sizeof (char **));
    if (!infos || !ptrs || !targets || !methods) {
        keel_server_reply_error (server, request, KEEL_ERR_INTERNAL,
                                 "out of memory");
        goto done;
    }
    static const char *names[] = {"GET",     "HEAD",   "POST",
                                  "PUT",     "DELETE", "PATCH",
                                  "OPTIONS", "TRACE",  "CONNECT"};
    for (size_t i = 0; i < n; i++) {
        const keel_route_t *route = keel_routes_at (self->table->routes, i);
        s_route_info (self, route, &infos[i], NULL);
        targets[i] = zsys_sprintf (
            "%s:%s", keel_route_target_type_name (keel_route_target (route)),
            keel_route_target_name (route));
        infos[i].target = targets[i];
        methods[i] = (char **)calloc (9, sizeof (char *));
        size_t m = 0;
        for (size_t b = 0; methods[i] && b < 9; b++)
            if (keel_route_methods (route) & (1u << b))
                methods[i][m++] = (char *)names[b];
        infos[i].n_methods = m;
        infos[i].methods = methods[i];
        ptrs[i] = &infos[i];
    }
    Keel__RouteList list = KEEL__ROUTE_LIST__INIT;
    list.n_routes = n;
    list.routes = ptrs;
    list.listen = self->listen;
    list.generation = self->table->generation;
    list.source = (char *)keel_config_name (self->args->config);
    keel_server_reply (server, request, &list.base);
done:
    for (size_t i = 0; targets && methods && i < n; i++) {
        zstr_free (&targets[i]);
        free (methods[i]);
    }
    free (infos);
    free (ptrs);
    free (targets);
    free (methods);
}

static int
s_handle_routes (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_reply_routes ((self_t *)arg, server, request);
    return KEEL_OK;
}

//  Read the config file again and swap routes and auth. Returns 0, or -1
//  with a message in *error_p (caller frees).
static int
s_reload (self_t *self, char **error_p)
{
    const char *file = keel_config_name (self->args->config);
    if (!file || *file == '<') {
        *error_p = zsys_sprintf ("the config did not come from a file (%s)",
                                 file ? file : "?");
        self->reloads_failed++;
        return -1;
    }
    char *load_error = NULL;
    keel_config_t *config = keel_config_load (file, &load_error);
    if (!config) {
        *error_p = load_error;
        self->reloads_failed++;
        return -1;
    }
    const char *error = NULL;
    int rc = s_apply_config (self, config, &error);
    if (rc == 0 && s_open_access_log (self, config) == -1)
        error = keel_config_error (config), rc = 0; //  routes are in
    if (rc == -1) {
        *error_p = strdup (error ? error : "cannot reload");
        self->reloads_failed++;
    } else {
        zsys_info ("%s: reloaded %zu routes from %s", self->name,
                   keel_routes_size (self->table->routes), file);
        if (error)
            zsys_warning ("%s: %s", self->name, error);
    }
    keel_config_destroy (&config);
    return rc;
}

static int
s_handle_reload (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    char *error = NULL;
    if (s_reload (self, &error) == -1) {
        keel_server_reply_error (server, request, KEEL_ERR_INVALID_ARGUMENT,
                                 "%s", error ? error : "cannot reload");
        free (error);
        return KEEL_OK;
    }
    s_reply_routes (self, server, request);
    return KEEL_OK;
}

// ---------------------------------------------------------------------------
//  Loop handlers

static int
s_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void)loop;
    self_t *self = (self_t *)arg;
    char *command = zstr_recv (pipe);
    if (!command || streq (command, "$TERM")) {
        zstr_free (&command);
        return -1;
    }
    if (streq (command, "RELOAD")) {
        char *error = NULL;
        if (s_reload (self, &error) == -1) {
            zsys_error ("%s: reload refused: %s", self->name, error);
            free (error);
        }
    }
    zstr_free (&command);
    return 0;
}

static int
s_on_evloop (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    self_t *self = (self_t *)arg;
    s_clock (self);
    keel_evloop_run (self->ev, 0);
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    s_graveyard_drain (self);
    if (self->access_log)
        fflush (self->access_log);
    s_clock (self);
    return 0;
}

// ---------------------------------------------------------------------------
//  Set-up and tear-down

static void
s_service_free (void **item)
{
    s_service_t *service = (s_service_t *)*item;
    keel_balancer_destroy (&service->lb);
    free (service->key);
    free (service->target);
    free (service->name);
    free (service->http_type);
    free (service);
    *item = NULL;
}

static keel_metric_family_t *
s_family (self_t *self, const char *name, const char *help,
          keel_metric_type_t type, const char *l1, const char *l2)
{
    const char *labels[] = {l1, l2};
    size_t n = l2 ? 2 : l1 ? 1 : 0;
    bool histogram = type == KEEL_METRIC_HISTOGRAM;
    return keel_metrics_family (
        self->metrics, name, help, type, n ? labels : NULL, n,
        histogram ? keel_metrics_latency_buckets : NULL,
        histogram ? keel_metrics_latency_bucket_count : 0);
}

static const char *
s_self_init (self_t *self)
{
    keel_actor_args_t *args = self->args;
    self->metrics = keel_metrics_new ();
    if (!self->metrics)
        return "out of memory";
    self->m_requests =
        s_family (self, "keel_gateway_requests_total",
                  "HTTP requests answered, by route and status code",
                  KEEL_METRIC_COUNTER, "route", "code");
    self->m_duration =
        s_family (self, "keel_gateway_request_duration_seconds",
                  "Time from a complete request to its answer, by route",
                  KEEL_METRIC_HISTOGRAM, "route", NULL);
    self->m_upstream = s_family (self, "keel_gateway_upstream_duration_seconds",
                                 "Time of each upstream attempt, by target",
                                 KEEL_METRIC_HISTOGRAM, "target", NULL);
    self->m_upstream_errors =
        s_family (self, "keel_gateway_upstream_errors_total",
                  "Upstream attempts that failed, by target and kind",
                  KEEL_METRIC_COUNTER, "target", "kind");
    self->m_retries = s_family (self, "keel_gateway_retries_total",
                                "Retries on another instance, by route",
                                KEEL_METRIC_COUNTER, "route", NULL);
    self->m_auth = s_family (self, "keel_gateway_auth_refused_total",
                             "Credentials refused, by reason",
                             KEEL_METRIC_COUNTER, "reason", NULL);
    self->m_breakers =
        s_family (self, "keel_gateway_breaker_state",
                  "Circuit breaker state (1 for the state it is in), by key",
                  KEEL_METRIC_GAUGE, "key", "state");
    self->m_instances = s_family (self, "keel_gateway_instances",
                                  "Healthy instances known, by service",
                                  KEEL_METRIC_GAUGE, "service", NULL);
    self->m_conns =
        s_family (self, "keel_gateway_open_connections",
                  "Client connections open", KEEL_METRIC_GAUGE, NULL, NULL);
    self->m_conns_total = s_family (self, "keel_gateway_connections_total",
                                    "Client connection events, by kind",
                                    KEEL_METRIC_COUNTER, "event", NULL);
    if (!self->m_requests || !self->m_duration || !self->m_upstream ||
        !self->m_upstream_errors || !self->m_retries || !self->m_auth ||
        !self->m_breakers || !self->m_instances || !self->m_conns ||
        !self->m_conns_total)
        return "out of memory";

    self->route_states = zhashx_new ();
    self->services = zhashx_new ();
    self->graveyard = zlistx_new ();
    self->spare_calls = zlistx_new ();
    self->loop = zloop_new ();
    self->server = keel_server_new (self->name);
    self->ev = keel_evloop_new ();
    if (!self->route_states || !self->services || !self->graveyard ||
        !self->spare_calls || !self->loop || !self->server || !self->ev)
        return "out of memory";
    zhashx_set_destructor (self->route_states, s_route_state_free);
    zhashx_set_destructor (self->services, s_service_free);
    randombytes_buf (&self->id_seed, sizeof self->id_seed);
    keel_classifier_default (&self->classifier);

    if (s_load_settings (self, args->config) == -1 ||
        s_open_access_log (self, args->config) == -1)
        return keel_config_error (args->config);

    //  Breakers: settings, and the breaker actor if there is one.
    char path[160];
    snprintf (path, sizeof path, "%s/circuit", self->name);
    keel_breaker_config_t bc;
    if (keel_breaker_config_load (args->config, path, &bc) == -1)
        return keel_config_error (args->config);
    snprintf (path, sizeof path, "%s/breaker", self->name);
    const char *breaker_name = NULL, *registry_name = NULL;
    if (keel_config_string (args->config, path, "breaker", &breaker_name) == -1)
        return keel_config_error (args->config);
    snprintf (path, sizeof path, "%s/registry", self->name);
    if (keel_config_string (args->config, path, "registry", &registry_name) ==
        -1)
        return keel_config_error (args->config);
    const char *b_ep =
        *breaker_name ? keel_directory_endpoint (args->directory, breaker_name)
                      : NULL;
    const char *b_ev =
        b_ep ? keel_directory_events (args->directory, breaker_name) : NULL;
    self->mirror =
        keel_breaker_mirror_new (self->name, b_ep, breaker_name, b_ev, &bc);
    if (!self->mirror || keel_breaker_mirror_attach (self->mirror, self->loop))
        return "cannot start its breaker mirror";

    //  The registry: requests and events.
    const char *r_ep =
        *registry_name
            ? keel_directory_endpoint (args->directory, registry_name)
            : NULL;
    const char *r_ev =
        r_ep ? keel_directory_events (args->directory, registry_name) : NULL;
    if (r_ep) {
        self->follow = keel_follow_new (self->name, r_ep, registry_name, r_ev);
        if (!self->follow)
            return "cannot follow the registry";
        keel_follow_set_max_msg_size (self->follow, args->max_msg_size);
        //  Discovery's answer as it is (all instances when the registry's
        //  protect threshold trips).
        keel_follow_set_keep_discovered (self->follow, true);
        keel_follow_on_change (self->follow, s_on_follow, self);
        if (keel_follow_attach (self->follow, self->loop) == -1)
            return "cannot follow the registry";
    } else
        zsys_warning ("%s: no registry in the directory: every route to a "
                      "service answers 503",
                      self->name);

    //  The saga coordinator, for saga routes.
    const char *s_ep = keel_directory_endpoint (args->directory, "saga");
    if (s_ep) {
        self->saga = keel_client_new (self->name, s_ep, "saga");
        if (!self->saga)
            return "cannot reach the saga coordinator";
        keel_client_attach (self->saga, self->loop);
    }

    //  Routes and auth.
    const char *error = NULL;
    if (s_apply_config (self, args->config, &error) == -1)
        return error;

    //  The front door.
    self->http =
        keel_http_server_new (self->ev, &self->http_config, s_on_request,
                              s_on_abort, s_on_http_error, self);
    if (!self->http)
        return "out of memory";
    const char *listen = NULL;
    snprintf (path, sizeof path, "%s/listen", self->name);
    if (keel_config_string (args->config, path, "127.0.0.1:8080", &listen) ==
        -1)
        return keel_config_error (args->config);
    if (keel_http_server_listen (self->http, listen) == -1) {
        keel_config_fail (args->config, path, "cannot listen on %s: %s", listen,
                          strerror (errno));
        return keel_config_error (args->config);
    }
    //  The address with the port it got.
    snprintf (self->listen, sizeof self->listen, "%s", listen);
    char *colon = strrchr (self->listen, ':');
    if (colon)
        snprintf (colon + 1,
                  sizeof self->listen - (size_t)(colon + 1 - self->listen),
                  "%d", keel_http_server_port (self->http));

    if (keel_actor_bind (args, self->server, NULL) == -1)
        return "cannot bind its endpoints";
    keel_server_on (self->server, "gateway.routes", s_handle_routes, self);
    keel_server_on (self->server, "gateway.reload", s_handle_reload, self);
    zloop_reader (self->loop, keel_server_sock (self->server),
                  keel_server_reader, self->server);
    zmq_pollitem_t item = {NULL, keel_evloop_fd (self->ev), ZMQ_POLLIN, 0};
    zloop_poller (self->loop, &item, s_on_evloop, self);
    zloop_timer (self->loop, 100, 0, s_on_tick, self);
    zloop_set_nonstop (self->loop, true);
    return NULL;
}

static void
s_self_destroy (self_t *self)
{
    //  Clients first: their aborts free the calls.
    keel_http_server_destroy (&self->http);
    //  Services: balancers drop their instances (pools close, clients go to
    //  the graveyard).
    zhashx_destroy (&self->services);
    s_graveyard_drain (self);
    keel_evloop_destroy (&self->ev);
    s_table_unref (&self->table);
    zhashx_destroy (&self->route_states);
    zlistx_destroy (&self->graveyard);
    s_call_t *spare;
    while (self->spare_calls &&
           (spare = (s_call_t *)zlistx_detach (self->spare_calls, NULL))) {
        free (spare->match);
        free (spare);
    }
    zlistx_destroy (&self->spare_calls);
    keel_breaker_mirror_destroy (&self->mirror);
    keel_follow_destroy (&self->follow);
    keel_client_destroy (&self->saga);
    keel_auth_destroy (&self->auth);
    keel_server_destroy (&self->server);
    zloop_destroy (&self->loop);
    keel_metrics_destroy (&self->metrics);
    if (self->access_log && self->access_log != stdout)
        fclose (self->access_log);
    else if (self->access_log)
        fflush (self->access_log);
}

void
keel_gateway_actor (zsock_t *pipe, void *args)
{
    self_t self = {0};
    self.args = (keel_actor_args_t *)args;
    self.name = self.args->name;
    const char *error = s_self_init (&self);
    if (!error)
        zloop_reader (self.loop, pipe, s_on_pipe, &self);
    keel_actor_ready (pipe, error);
    if (!error)
        zloop_start (self.loop);
    s_self_destroy (&self);
    //  Free this thread's libcrypto state (JWT verification) before the
    //  owner can return: left to the thread's exit destructor it races with
    //  OpenSSL's atexit cleanup when the owner's process ends.
    OPENSSL_thread_stop ();
}
