/*  registry_actor.c - the registry's shell: decodes requests, calls the
    catalog, encodes replies, publishes the catalog's events, and runs the
    active checks the catalog says are due. See registry_actor.h. */
#include "registry_actor.h"
#include "catalog.h"
#include "keel_client.h"
#include "keel_events.h"
#include "keel_node.h"
#include "keel_server.h"
#include "prober.h"

#include <string.h>

//  A bus-ping check line to one instance.
typedef struct {
    struct _self_t *self;  //  owner
    char *id;              //  instance id
    keel_client_t *client; //  to its endpoint
    int64_t started_us;    //  when the ping went out
} s_pinger_t;

typedef struct _self_t {
    const char *name;            //  actor name
    keel_server_t *server;       //  requests
    keel_publisher_t *publisher; //  events
    keel_catalog_t *catalog;     //  the pure core
    keel_prober_t *prober;       //  http and tcp checks
    zhashx_t *pingers;           //  instance id -> s_pinger_t
    zloop_t *loop;               //  everything runs here
    int timer_id;                //  catalog deadline timer, -1 = none
    int64_t timer_due;           //  when it fires
    uint64_t probe_refused;      //  checks the prober could not take
    bool sweep;                  //  pingers of removed instances to drop
} self_t;

static void s_rearm (self_t *self);

// ---------------------------------------------------------------------------
//  Events: every catalog change goes out as it happens.

static void
s_on_change (const char *type, const Keel__RegistryEvent *event, void *arg)
{
    self_t *self = (self_t *)arg;
    keel_publisher_publish (self->publisher, type, &event->base);
    //  Not now: this may run inside a pinger's own reply callback.
    if (streq (type, "registry.deregistered"))
        self->sweep = true;
}

//  Drop the ping lines of instances no longer in the catalog. Called only
//  from loop handlers, never from inside a client callback.
static void
s_sweep (self_t *self)
{
    if (!self->sweep)
        return;
    self->sweep = false;
    zlistx_t *gone = zlistx_new ();
    for (void *item = zhashx_first (self->pingers); item;
         item = zhashx_next (self->pingers)) {
        const char *id = (const char *)zhashx_cursor (self->pingers);
        if (!keel_catalog_get (self->catalog, id, keel_now_ms ()))
            zlistx_add_end (gone, (void *)id);
    }
    for (const char *id = (const char *)zlistx_first (gone); id;
         id = (const char *)zlistx_next (gone))
        zhashx_delete (self->pingers, id);
    zlistx_destroy (&gone);
}

// ---------------------------------------------------------------------------
//  Requests

static int
s_reply_index (keel_server_t *server, keel_request_t *req, uint64_t index)
{
    Keel__IndexReply reply = KEEL__INDEX_REPLY__INIT;
    reply.index = index;
    keel_server_reply (server, req, &reply.base);
    return KEEL_OK;
}

static int
s_reply_list (keel_server_t *server, keel_request_t *req, self_t *self,
              Keel__Instance **list, size_t count, bool protect)
{
    Keel__InstanceList reply = KEEL__INSTANCE_LIST__INIT;
    reply.instances = list;
    reply.n_instances = count;
    reply.index = keel_catalog_index (self->catalog);
    reply.protect_applied = protect;
    keel_server_reply (server, req, &reply.base);
    return KEEL_OK;
}

static int
s_register (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__RegisterRequest *r = (Keel__RegisterRequest *)keel_request_payload (
        req, &keel__register_request__descriptor);
    if (!r || !r->instance) {
        keel_server_reply_error (server, req, KEEL_ERR_BAD_REQUEST,
                                 "registry.register needs an instance");
        return KEEL_OK;
    }
    uint64_t index = 0;
    const char *why = NULL;
    int rc = keel_catalog_register (self->catalog, r->instance, keel_now_ms (),
                                    &index, &why);
    if (rc != KEEL_OK) {
        keel_server_reply_error (server, req, (keel_err_t)rc, "%s",
                                 why ? why : keel_strerror (rc));
        return KEEL_OK;
    }
    s_rearm (self);
    return s_reply_index (server, req, index);
}

static int
s_heartbeat (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__HeartbeatRequest *r = (Keel__HeartbeatRequest *)keel_request_payload (
        req, &keel__heartbeat_request__descriptor);
    if (!r || !*r->id)
        return KEEL_ERR_BAD_REQUEST;
    int rc = keel_catalog_heartbeat (self->catalog, r->id, r->status, r->output,
                                     keel_now_ms ());
    if (rc == KEEL_ERR_NOT_FOUND) {
        keel_server_reply_error (server, req, KEEL_ERR_NOT_FOUND,
                                 "no instance '%s': register again", r->id);
        return KEEL_OK;
    }
    if (rc != KEEL_OK)
        return rc;
    s_rearm (self);
    keel_server_reply (server, req, NULL);
    return KEEL_OK;
}

static int
s_deregister (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__DeregisterRequest *r =
        (Keel__DeregisterRequest *)keel_request_payload (
            req, &keel__deregister_request__descriptor);
    if (!r || !*r->id)
        return KEEL_ERR_BAD_REQUEST;
    uint64_t index = 0;
    if (keel_catalog_deregister (self->catalog, r->id, keel_now_ms (),
                                 &index) != KEEL_OK) {
        keel_server_reply_error (server, req, KEEL_ERR_NOT_FOUND,
                                 "no instance '%s'", r->id);
        return KEEL_OK;
    }
    s_rearm (self);
    return s_reply_index (server, req, index);
}

static int
s_get (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__GetRequest *r = (Keel__GetRequest *)keel_request_payload (
        req, &keel__get_request__descriptor);
    if (!r || !*r->id)
        return KEEL_ERR_BAD_REQUEST;
    const Keel__Instance *instance =
        keel_catalog_get (self->catalog, r->id, keel_now_ms ());
    if (!instance) {
        keel_server_reply_error (server, req, KEEL_ERR_NOT_FOUND,
                                 "no instance '%s'", r->id);
        return KEEL_OK;
    }
    keel_server_reply (server, req, &instance->base);
    return KEEL_OK;
}

static int
s_list (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__ListRequest *r = (Keel__ListRequest *)keel_request_payload (
        req, &keel__list_request__descriptor);
    if (!r)
        return KEEL_ERR_BAD_REQUEST;
    Keel__Instance **list = NULL;
    size_t count =
        keel_catalog_list (self->catalog, r->service, keel_now_ms (), &list);
    return s_reply_list (server, req, self, list, count, false);
}

static int
s_snapshot (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__Instance **list = NULL;
    size_t count = keel_catalog_list (self->catalog, "", keel_now_ms (), &list);
    return s_reply_list (server, req, self, list, count, false);
}

static int
s_discover (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__DiscoverRequest *r = (Keel__DiscoverRequest *)keel_request_payload (
        req, &keel__discover_request__descriptor);
    if (!r || !*r->service) {
        keel_server_reply_error (server, req, KEEL_ERR_INVALID_ARGUMENT,
                                 "registry.discover needs a service name");
        return KEEL_OK;
    }
    Keel__Instance **list = NULL;
    bool protect = false;
    size_t count = keel_catalog_discover (self->catalog, r, keel_now_ms (),
                                          &list, &protect);
    return s_reply_list (server, req, self, list, count, protect);
}

// ---------------------------------------------------------------------------
//  Active checks

static void
s_pinger_free (void **item)
{
    s_pinger_t *pinger = (s_pinger_t *)*item;
    if (pinger) {
        keel_client_destroy (&pinger->client);
        free (pinger->id);
        free (pinger);
        *item = NULL;
    }
}

static void
s_pinged (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_pinger_t *pinger = (s_pinger_t *)arg;
    self_t *self = pinger->self;
    uint32_t took = (uint32_t)(zclock_usecs () - pinger->started_us);
    char output[160];
    if (reply->code == KEEL_OK)
        snprintf (output, sizeof output, "pong");
    else
        snprintf (output, sizeof output, "ping: %s %s",
                  keel_errname (reply->code), reply->text);
    keel_catalog_check_result (self->catalog, pinger->id,
                               reply->code == KEEL_OK, took, output,
                               keel_now_ms ());
    s_rearm (self);
}

static void
s_ping (self_t *self, const Keel__Instance *instance, uint32_t timeout)
{
    s_pinger_t *pinger =
        (s_pinger_t *)zhashx_lookup (self->pingers, instance->id);
    if (!pinger) {
        pinger = (s_pinger_t *)calloc (1, sizeof (s_pinger_t));
        if (!pinger)
            return;
        pinger->self = self;
        pinger->id = strdup (instance->id);
        pinger->client =
            keel_client_new (self->name, instance->endpoint, instance->service);
        if (!pinger->id || !pinger->client) {
            void *item = pinger;
            s_pinger_free (&item);
            return; //  the check's timeout counts it as failed
        }
        keel_client_attach (pinger->client, self->loop);
        zhashx_insert (self->pingers, instance->id, pinger);
    }
    keel_call_opts_t opts = {.timeout_ms = timeout, .retries = KEEL_NO_RETRY};
    pinger->started_us = zclock_usecs ();
    keel_client_request (pinger->client, "keel.ping", NULL, &opts, s_pinged,
                         pinger);
}

//  "http://host:port/base" -> "host:port" (caller frees).
static char *
s_host_port (const char *endpoint)
{
    const char *start = strstr (endpoint, "://");
    start = start ? start + 3 : endpoint;
    size_t len = strcspn (start, "/");
    return strndup (start, len);
}

static void
s_run_checks (self_t *self, int64_t now)
{
    const Keel__Instance *instance;
    while ((instance = keel_catalog_next_check (self->catalog, now))) {
        const Keel__HealthCheck *check = instance->check;
        uint32_t interval = check->interval_ms ? check->interval_ms : 1000;
        uint32_t timeout = check->timeout_ms ? check->timeout_ms : interval / 2;
        if (timeout == 0)
            timeout = 1;
        int rc = 0;
        if (check->http_path && *check->http_path) {
            size_t len = strlen (instance->endpoint);
            while (len && instance->endpoint[len - 1] == '/')
                len--;
            char *url = zsys_sprintf ("%.*s%s", (int)len, instance->endpoint,
                                      check->http_path);
            rc = keel_prober_submit (self->prober, KEEL_PROBE_HTTP,
                                     instance->id, url, timeout);
            zstr_free (&url);
        } else if (check->tcp_connect) {
            char *target = s_host_port (instance->endpoint);
            rc = keel_prober_submit (self->prober, KEEL_PROBE_TCP, instance->id,
                                     target, timeout);
            free (target);
        } else if (check->bus_ping)
            s_ping (self, instance, timeout);
        if (rc == -1)
            self->probe_refused++; //  its timeout counts it as failed
    }
}

static int
s_on_probe (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    (void)sock;
    self_t *self = (self_t *)arg;
    keel_probe_result_t result = {0};
    if (keel_prober_recv (self->prober, &result) == 0) {
        keel_catalog_check_result (self->catalog, result.id, result.passed,
                                   result.response_time_us, result.output,
                                   keel_now_ms ());
        keel_probe_result_clear (&result);
        s_sweep (self);
        s_rearm (self);
    }
    return 0;
}

// ---------------------------------------------------------------------------
//  Time: one timer, armed for the catalog's next deadline.

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    self->timer_id = -1;
    s_sweep (self);
    int64_t now = keel_now_ms ();
    keel_catalog_tick (self->catalog, now);
    s_run_checks (self, now);
    s_rearm (self);
    return 0;
}

static void
s_rearm (self_t *self)
{
    int64_t due = keel_catalog_next_deadline (self->catalog);
    if (self->timer_id != -1) {
        if (due != -1 && self->timer_due <= due)
            return; //  fires first; re-arms then
        zloop_timer_end (self->loop, self->timer_id);
        self->timer_id = -1;
    }
    if (due == -1)
        return;
    int64_t delay = due - keel_now_ms ();
    //  The kernel lets a long poll timeout run late by about 0.1%: wake a
    //  little early and re-arm for the rest, so a TTL expires on time.
    if (delay > 100)
        delay -= delay / 500 + 1;
    self->timer_id = zloop_timer (self->loop, delay > 1 ? (size_t)delay : 1, 1,
                                  s_on_timer, self);
    self->timer_due = due;
}

static int
s_on_request (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    (void)sock;
    self_t *self = (self_t *)arg;
    int rc = keel_server_dispatch (self->server, 100);
    s_sweep (self);
    return rc == -1 ? -1 : 0;
}

// ---------------------------------------------------------------------------

static const char *
s_configure (keel_actor_args_t *args, keel_catalog_limits_t *limits)
{
    static const char *keys[] = {"bind", "protect_threshold", "max_instances",
                                 NULL};
    keel_config_t *config = args->config;
    char *path = zsys_sprintf ("%s/protect_threshold", args->name);
    char *max_path = zsys_sprintf ("%s/max_instances", args->name);
    const char *text = NULL;
    int64_t max_instances = 0;
    const char *error = NULL;
    if (keel_config_check_keys (config, args->name, keys) == -1 ||
        keel_config_string (config, path, NULL, &text) == -1 ||
        keel_config_int (config, max_path, 1, 100000000, 1000000,
                         &max_instances) == -1)
        error = keel_config_error (config);
    else if (text) {
        char *end = NULL;
        double threshold = strtod (text, &end);
        if (!*text || *end || threshold < 0 || threshold > 1) {
            keel_config_fail (config, path, "expected a fraction in 0..1");
            error = keel_config_error (config);
        } else
            limits->protect_threshold = threshold;
    }
    limits->max_instances = (size_t)max_instances;
    zstr_free (&path);
    zstr_free (&max_path);
    return error;
}

void
keel_registry_actor (zsock_t *pipe, void *args)
{
    keel_actor_args_t *actor = (keel_actor_args_t *)args;
    self_t self = {0};
    self.name = actor->name;
    self.timer_id = -1;
    keel_catalog_limits_t limits = {0};
    const char *error = s_configure (actor, &limits);
    if (!error) {
        self.server = keel_server_new (actor->name);
        self.publisher = keel_publisher_new (actor->name);
        self.catalog = keel_catalog_new (&limits);
        self.prober = keel_prober_new ();
        self.pingers = zhashx_new ();
        self.loop = zloop_new ();
        if (!self.server || !self.publisher || !self.catalog || !self.prober ||
            !self.pingers || !self.loop)
            error = "out of memory";
    }
    if (!error) {
        if (keel_actor_bind (actor, self.server, self.publisher) == -1)
            error = "cannot bind its endpoints";
    }
    if (!error) {
        zhashx_set_destructor (self.pingers, s_pinger_free);
        keel_catalog_set_listener (self.catalog, s_on_change, &self);
        keel_server_on (self.server, "registry.register", s_register, &self);
        keel_server_on (self.server, "registry.heartbeat", s_heartbeat, &self);
        keel_server_on (self.server, "registry.deregister", s_deregister,
                        &self);
        keel_server_on (self.server, "registry.get", s_get, &self);
        keel_server_on (self.server, "registry.list", s_list, &self);
        keel_server_on (self.server, "registry.discover", s_discover, &self);
        keel_server_on (self.server, "registry.snapshot", s_snapshot, &self);
        zloop_reader (self.loop, keel_server_sock (self.server), s_on_request,
                      &self);
        zloop_reader (self.loop, keel_prober_sock (self.prober), s_on_probe,
                      &self);
        zloop_reader (self.loop, pipe, keel_actor_on_pipe, NULL);
        zloop_set_nonstop (self.loop, true);
    }
    keel_actor_ready (pipe, error);
    if (!error)
        zloop_start (self.loop);
    zhashx_destroy (&self.pingers); //  clients first: they sit on the loop
    zloop_destroy (&self.loop);
    keel_prober_destroy (&self.prober);
    keel_catalog_destroy (&self.catalog);
    keel_publisher_destroy (&self.publisher);
    keel_server_destroy (&self.server);
}
