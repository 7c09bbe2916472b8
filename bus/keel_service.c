/*  keel_service.c - the participant service SDK. See keel_service.h.

    Registration as a small state machine driven by the heartbeat timer:

        UNREGISTERED --tick--> send register --OK--> REGISTERED
        REGISTERED   --tick--> send heartbeat --NOT_FOUND--> UNREGISTERED,
                                                             register now
    Any other failure leaves the state alone; the next tick tries again.
*/
#include "keel_service.h"
#include "keel_client.h"
#include "keel_dedupe.h"
#include "keel_security.h"
#include "registry.pb-c.h"

#include <string.h>

typedef struct {
    keel_service_t *service; //  owner
    keel_handler_fn *fn;     //  user handler
    void *arg;               //  its argument
} s_method_t;

struct _keel_service_t {
    char *name;                    //  service name
    char *instance_id;             //  this instance
    keel_server_t *server;         //  requests in, replies out
    char *advertise;               //  endpoint given to the registry
    bool advertise_fixed;          //  set by keel_service_set_advertise
    zlistx_t *tags;                //  advertised tags (strings)
    zhashx_t *meta;                //  advertised metadata
    uint32_t weight;               //  advertised weight
    zlistx_t *methods;             //  s_method_t, owned
    keel_dedupe_t *dedupe;         //  replies by idempotency key
    uint32_t heartbeat_ms;         //  heartbeat interval
    keel_client_t *registry;       //  client to the registry
    bool registered;               //  registry acknowledged us
    bool registering;              //  a register request is in flight
    zloop_t *loop;                 //  loop driving us (attached or own)
    int timer_id;                  //  heartbeat timer, -1 = none
    bool stopping;                 //  keel_service_stop was called
    bool replaying;                //  answering from the dedupe
    keel_service_stats_t stats;    //  counters
    keel_ratelimit_t log_registry; //  registry trouble
};

static void s_method_free (void **item);
static void s_on_reply (keel_server_t *server, const keel_request_t *request,
                        int code, const char *text, const uint8_t *data,
                        size_t size, void *arg);

keel_service_t *
keel_service_new (const char *service, const char *instance_id)
{
    if (!service || !*service || !instance_id || !*instance_id)
        return NULL;
    keel_service_t *self = (keel_service_t *)calloc (1, sizeof (*self));
    if (!self)
        return NULL;
    self->name = strdup (service);
    self->instance_id = strdup (instance_id);
    self->server = keel_server_new (service);
    self->tags = zlistx_new ();
    self->meta = zhashx_new ();
    self->methods = zlistx_new ();
    self->dedupe = keel_dedupe_new (10000, 16 * 1024 * 1024, 600000);
    self->weight = 1;
    self->timer_id = -1;
    if (!self->name || !self->instance_id || !self->server || !self->tags ||
        !self->meta || !self->methods || !self->dedupe) {
        keel_service_destroy (&self);
        return NULL;
    }
    zlistx_set_duplicator (self->tags, (zlistx_duplicator_fn *)strdup);
    zlistx_set_destructor (self->tags, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_destructor (self->methods, s_method_free);
    zhashx_set_destructor (self->meta, (zhashx_destructor_fn *)zstr_free);
    keel_server_set_reply_hook (self->server, s_on_reply, self);
    return self;
}

static void
s_method_free (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_detach (keel_service_t *self)
{
    if (!self->loop)
        return;
    zloop_reader_end (self->loop, keel_server_sock (self->server));
    if (self->registry)
        keel_client_detach (self->registry);
    if (self->timer_id != -1)
        zloop_timer_end (self->loop, self->timer_id);
    self->timer_id = -1;
    self->loop = NULL;
}

void
keel_service_destroy (keel_service_t **self_p)
{
    assert (self_p);
    keel_service_t *self = *self_p;
    if (!self)
        return;
    if (self->registry && (self->registered || self->registering)) {
        //  Best effort (a registration in flight may have been applied);
        //  the registry's TTL covers a lost goodbye.
        Keel__DeregisterRequest req = KEEL__DEREGISTER_REQUEST__INIT;
        req.id = self->instance_id;
        keel_client_notify (self->registry, "registry.deregister", &req.base,
                            NULL);
    }
    s_detach (self);
    keel_client_destroy (&self->registry);
    keel_server_destroy (&self->server);
    zlistx_destroy (&self->tags);
    zhashx_destroy (&self->meta);
    zlistx_destroy (&self->methods);
    keel_dedupe_destroy (&self->dedupe);
    free (self->advertise);
    free (self->name);
    free (self->instance_id);
    free (self);
    *self_p = NULL;
}

int
keel_service_bind (keel_service_t *self, const char *endpoint)
{
    int rc = keel_server_bind (self->server, endpoint);
    if (rc == -1)
        return -1;
    const char *bound = keel_server_endpoint (self->server);
    bool is_tcp = strncmp (bound, "tcp://", 6) == 0;
    bool had_tcp =
        self->advertise && strncmp (self->advertise, "tcp://", 6) == 0;
    if (!self->advertise_fixed && (!self->advertise || (is_tcp && !had_tcp))) {
        free (self->advertise);
        //  With this node's CURVE key, when it has one.
        self->advertise = keel_security_advertise (bound);
    }
    return rc;
}

void
keel_service_set_advertise (keel_service_t *self, const char *endpoint)
{
    free (self->advertise);
    self->advertise = keel_security_advertise (endpoint);
    self->advertise_fixed = true;
}

const char *
keel_service_endpoint (keel_service_t *self)
{
    return self->advertise;
}

keel_server_t *
keel_service_server (keel_service_t *self)
{
    return self->server;
}

bool
keel_service_registered (keel_service_t *self)
{
    return self->registered;
}

const keel_service_stats_t *
keel_service_stats (keel_service_t *self)
{
    return &self->stats;
}

void
keel_service_add_tag (keel_service_t *self, const char *tag)
{
    zlistx_add_end (self->tags, (void *)tag);
}

void
keel_service_set_meta (keel_service_t *self, const char *key, const char *value)
{
    zhashx_update (self->meta, key, strdup (value));
}

void
keel_service_set_weight (keel_service_t *self, uint32_t weight)
{
    self->weight = weight ? weight : 1;
}

int
keel_service_set_dedupe (keel_service_t *self, size_t capacity,
                         size_t max_bytes, int64_t ttl_ms)
{
    keel_dedupe_t *dedupe = keel_dedupe_new (capacity, max_bytes, ttl_ms);
    if (!dedupe)
        return -1;
    keel_dedupe_destroy (&self->dedupe);
    self->dedupe = dedupe;
    return 0;
}

// ---------------------------------------------------------------------------
//  Dispatch with dedupe

//  The dedupe key: the method and the caller's idempotency key.
static char *
s_dedupe_key (const Keel__Envelope *env)
{
    if (!env->idempotency_key || !*env->idempotency_key)
        return NULL;
    return zsys_sprintf ("%s\n%s", env->type, env->idempotency_key);
}

static int
s_dispatch (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_method_t *method = (s_method_t *)arg;
    keel_service_t *self = method->service;
    char *key = s_dedupe_key (keel_request_envelope (request));
    if (key) {
        const keel_dedupe_entry_t *entry =
            keel_dedupe_lookup (self->dedupe, key, keel_now_ms ());
        free (key);
        if (entry) {
            self->stats.dedupe_hits++;
            //  The reply hook must not store the entry over itself.
            self->replaying = true;
            keel_server_reply_raw (server, request, entry->code, entry->text,
                                   entry->data, entry->size);
            self->replaying = false;
            return KEEL_OK;
        }
    }
    return method->fn (server, request, method->arg);
}

//  Remember every reply to a request with an idempotency key, except
//  transient failures that a retry should get another chance at.
static void
s_on_reply (keel_server_t *server, const keel_request_t *request, int code,
            const char *text, const uint8_t *data, size_t size, void *arg)
{
    (void)server;
    keel_service_t *self = (keel_service_t *)arg;
    if (self->replaying || code == KEEL_ERR_UNAVAILABLE ||
        code == KEEL_ERR_TIMEOUT || code == KEEL_ERR_INTERNAL)
        return;
    char *key = s_dedupe_key (keel_request_envelope (request));
    if (key) {
        keel_dedupe_store (self->dedupe, key, code, text, data, size,
                           keel_now_ms ());
        free (key);
    }
}

int
keel_service_on (keel_service_t *self, const char *method, keel_handler_fn *fn,
                 void *arg)
{
    if (!keel_codec_type_ok (method))
        return -1;
    s_method_t *entry = (s_method_t *)calloc (1, sizeof (s_method_t));
    if (!entry)
        return -1;
    entry->service = self;
    entry->fn = fn;
    entry->arg = arg;
    zlistx_add_end (self->methods, entry);
    return keel_server_on (self->server, method, s_dispatch, entry);
}

// ---------------------------------------------------------------------------
//  Registration

int
keel_service_set_registry (keel_service_t *self, const char *endpoint,
                           uint32_t heartbeat_ms)
{
    keel_client_t *client =
        keel_client_new (self->instance_id, endpoint, "registry");
    if (!client)
        return -1;
    keel_client_destroy (&self->registry);
    self->registry = client;
    self->heartbeat_ms = heartbeat_ms ? heartbeat_ms : 1000;
    self->registered = false;
    return 0;
}

static void
s_registered (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    keel_service_t *self = (keel_service_t *)arg;
    self->registering = false;
    if (reply->code == KEEL_OK) {
        self->registered = true;
        self->stats.registered++;
    } else
        keel_log_limited (&self->log_registry, keel_now_ms (),
                          "keel: %s: registration failed: %s (%s)",
                          self->instance_id, keel_errname (reply->code),
                          reply->text);
}

static void
s_register (keel_service_t *self)
{
    if (self->registering || !self->advertise)
        return;
    Keel__HealthCheck check = KEEL__HEALTH_CHECK__INIT;
    //  Just under three heartbeats: a dead instance is critical within
    //  three intervals of its last heartbeat, a live one never misses.
    check.ttl_ms = 3 * self->heartbeat_ms - self->heartbeat_ms / 10;
    Keel__Instance instance = KEEL__INSTANCE__INIT;
    instance.id = self->instance_id;
    instance.service = self->name;
    instance.endpoint = self->advertise;
    instance.weight = self->weight;
    instance.check = &check;

    size_t n_tags = zlistx_size (self->tags);
    char **tags = (char **)calloc (n_tags + 1, sizeof (char *));
    size_t n_meta = zhashx_size (self->meta);
    Keel__Instance__MetaEntry *entries =
        (Keel__Instance__MetaEntry *)calloc (n_meta + 1, sizeof (*entries));
    Keel__Instance__MetaEntry **meta =
        (Keel__Instance__MetaEntry **)calloc (n_meta + 1, sizeof (*meta));
    if (tags && entries && meta) {
        size_t i = 0;
        for (char *tag = (char *)zlistx_first (self->tags); tag;
             tag = (char *)zlistx_next (self->tags))
            tags[i++] = tag;
        instance.n_tags = n_tags;
        instance.tags = tags;
        i = 0;
        for (char *value = (char *)zhashx_first (self->meta); value;
             value = (char *)zhashx_next (self->meta), i++) {
            keel__instance__meta_entry__init (&entries[i]);
            entries[i].key = (char *)zhashx_cursor (self->meta);
            entries[i].value = value;
            meta[i] = &entries[i];
        }
        instance.n_meta = n_meta;
        instance.meta = meta;
        Keel__RegisterRequest req = KEEL__REGISTER_REQUEST__INIT;
        req.instance = &instance;
        keel_call_opts_t opts = {.timeout_ms = 2 * self->heartbeat_ms,
                                 .attempt_timeout_ms = self->heartbeat_ms / 2,
                                 .idempotent = true};
        if (keel_client_request (self->registry, "registry.register", &req.base,
                                 &opts, s_registered, self)) {
            self->registering = true;
            self->stats.registrations++;
        }
    }
    free (tags);
    free (entries);
    free (meta);
}

static void
s_heartbeat_done (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    keel_service_t *self = (keel_service_t *)arg;
    if (reply->code == KEEL_OK)
        return;
    self->stats.heartbeat_failures++;
    if (reply->code == KEEL_ERR_NOT_FOUND) {
        //  The registry forgot us (restart, expiry): register again now.
        self->registered = false;
        s_register (self);
    } else
        keel_log_limited (&self->log_registry, keel_now_ms (),
                          "keel: %s: heartbeat failed: %s (%s)",
                          self->instance_id, keel_errname (reply->code),
                          reply->text);
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    keel_service_t *self = (keel_service_t *)arg;
    if (!self->registered) {
        s_register (self);
        return 0;
    }
    Keel__HeartbeatRequest req = KEEL__HEARTBEAT_REQUEST__INIT;
    req.id = self->instance_id;
    keel_call_opts_t opts = {.timeout_ms = self->heartbeat_ms,
                             .retries = KEEL_NO_RETRY};
    if (keel_client_request (self->registry, "registry.heartbeat", &req.base,
                             &opts, s_heartbeat_done, self))
        self->stats.heartbeats++;
    return 0;
}

// ---------------------------------------------------------------------------
//  Loop

static int
s_on_request (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    (void)sock;
    keel_service_t *self = (keel_service_t *)arg;
    if (keel_server_dispatch (self->server, 100) == -1)
        return -1;
    return self->stopping ? -1 : 0;
}

int
keel_service_attach (keel_service_t *self, zloop_t *loop)
{
    assert (!self->loop);
    if (zloop_reader (loop, keel_server_sock (self->server), s_on_request,
                      self) == -1)
        return -1;
    self->loop = loop;
    if (self->registry) {
        if (keel_client_attach (self->registry, loop) == -1) {
            s_detach (self);
            return -1;
        }
        self->timer_id =
            zloop_timer (loop, self->heartbeat_ms, 0, s_on_tick, self);
        s_register (self);
    }
    return 0;
}

int
keel_service_run (keel_service_t *self)
{
    zloop_t *loop = zloop_new ();
    if (!loop || keel_service_attach (self, loop) == -1) {
        zloop_destroy (&loop);
        return -1;
    }
    zloop_start (loop);
    s_detach (self);
    zloop_destroy (&loop);
    return 0;
}

void
keel_service_stop (keel_service_t *self)
{
    self->stopping = true;
}
