/*  registry_actor.c - the registry's shell: decodes requests, calls the
    catalog, encodes replies, publishes the catalog's events, runs the
    active checks the catalog says are due, and replicates with the
    registries of peer nodes. See registry_actor.h.

    Replication, per peer (all on the actor's one zloop, nothing blocks):

        peer's events --SUB "registry."--> apply if instance.origin == peer
                                           (its own; never what it holds as
                                           a replica of someone else)
        every anti_entropy, or at once after a gap in its events:
            registry.digest (hash of my replicas of peer) --> DigestReply
              same:      lease renewed
              different: reconcile (drop what it no longer owns, renew)
                         --> registry.fetch (what is missing or older,
                             at most S_FETCH_MAX ids) --> apply each

    One digest or fetch per peer is in flight at a time; a digest that gets
    no answer within anti_entropy simply fails, and the lease (the catalog's)
    runs on. */
#include "registry_actor.h"
#include "catalog.h"
#include "keel_client.h"
#include "keel_codec.h"
#include "keel_events.h"
#include "keel_node.h"
#include "keel_server.h"
#include "node.pb-c.h"
#include "prober.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>

//  A bus-ping check line to one instance.
typedef struct {
    struct _self_t *self;  //  owner
    char *id;              //  instance id
    keel_client_t *client; //  to its endpoint
    int64_t started_us;    //  when the ping went out
} s_pinger_t;

//  Ids fetched per registry.fetch; the next round fetches the rest.
#define S_FETCH_MAX 1000

//  Another node's registry.
typedef struct {
    struct _self_t *self;   //  owner
    char *name;             //  its node name: the origin it owns
    const char *endpoint;   //  its node front door (borrowed from config)
    const char *events;     //  its node events endpoint, or NULL
    keel_client_t *client;  //  digests and fetches, to service "registry"
    keel_subscriber_t *sub; //  its registry events, or NULL
    bool busy;              //  a digest or fetch is in flight
    bool warm;              //  its first digest round is over
} s_peer_t;

//  A deregister sent on to the instance's owner, waiting for its answer.
typedef struct {
    struct _self_t *self;    //  owner
    keel_request_t *request; //  the caller's, deferred; owned
    char *id;                //  the instance
    void *handle;            //  in self->forwards
} s_forward_t;

//  Replication counters, in keel.stats after the server's.
typedef struct {
    uint64_t applied;           //  pushed or fetched changes applied
    uint64_t ignored;           //  pushed changes not newer than held
    uint64_t forwarded;         //  deregisters sent on to their owner
    uint64_t held;              //  discovers held while warming up
    uint64_t rejected;          //  pushed or fetched entries that failed
    uint64_t digests_sent;      //  registry.digest requests sent
    uint64_t digests_same;      //  answered: same
    uint64_t digests_different; //  answered: different
    uint64_t digests_failed;    //  no answer, or an error
    uint64_t fetched;           //  entries received by registry.fetch
    uint64_t replicas_expired;  //  replicas removed when a lease ran out
    uint64_t event_gaps;        //  gaps in a peer's events (repaired)
} s_repl_stats_t;

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
    const char *node;            //  node name: the origin of what it owns
    s_peer_t **peers;            //  peer registries; owned
    size_t n_peers;              //  peers held
    int64_t anti_entropy_ms;     //  digest round period
    s_repl_stats_t repl;         //  replication counters
    zlistx_t *forwards;          //  s_forward_t in flight
    int64_t warmup_ms;           //  longest wait for the first round
    bool warm;                   //  every peer's first round is over
    zlistx_t *held;              //  keel_request_t: discovers held till warm
    int held_timer;              //  answers held ones near their deadline
} self_t;

static void s_rearm (self_t *self);

// ---------------------------------------------------------------------------
//  Events: every catalog change goes out as it happens.

static void
s_on_change (const char *type, const Keel__RegistryEvent *event, void *arg)
{
    self_t *self = (self_t *)arg;
    keel_publisher_publish (self->publisher, type, &event->base);
    bool removed = streq (type, "registry.deregistered");
    //  Not now: this may run inside a pinger's own reply callback. An
    //  instance now owned elsewhere loses its ping line too.
    if (removed || !streq (event->instance->origin, self->node))
        self->sweep = true;
    if (removed && streq (event->reason, "origin unreachable"))
        self->repl.replicas_expired++;
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
        const Keel__Instance *instance =
            keel_catalog_get (self->catalog, id, keel_now_ms ());
        if (!instance || !streq (instance->origin, self->node))
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

// ---------------------------------------------------------------------------
//  Deregistering a replica: sent on to the node that owns it

static void
s_forward_free (s_forward_t **forward_p)
{
    s_forward_t *forward = *forward_p;
    if (forward) {
        keel_request_destroy (&forward->request);
        free (forward->id);
        free (forward);
        *forward_p = NULL;
    }
}

static void
s_on_forwarded (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_forward_t *forward = (s_forward_t *)arg;
    self_t *self = forward->self;
    zlistx_detach (self->forwards, forward->handle);
    if (reply->code == KEEL_OK) {
        //  Read-your-writes here: the replica goes now, not when the
        //  owner's push arrives (which then finds nothing to remove).
        const Keel__Instance *instance =
            keel_catalog_get (self->catalog, forward->id, keel_now_ms ());
        if (instance) {
            //  A copy: the removal frees the catalog's own.
            Keel__Instance *copy =
                (Keel__Instance *)keel_codec_copy (&instance->base);
            if (copy) {
                keel_catalog_apply_removal (self->catalog, copy, NULL,
                                            keel_now_ms ());
                keel__instance__free_unpacked (copy, NULL);
            }
        }
        s_rearm (self);
    }
    if (reply->envelope || reply->code == KEEL_OK)
        keel_server_reply_raw (self->server, forward->request, reply->code,
                               reply->text, reply->data, reply->size);
    else
        keel_server_reply_error (self->server, forward->request, reply->code,
                                 "instance '%s' is owned by a node that did "
                                 "not answer: %s",
                                 forward->id, reply->text);
    s_forward_free (&forward);
}

//  Send a deregister of `instance` (a replica) to the peer that owns it; the
//  caller's request is answered with the owner's answer. Returns 0, or -1 if
//  it cannot be sent (no such peer, out of memory): the caller answers.
static int
s_forward_deregister (self_t *self, keel_request_t *req,
                      const Keel__DeregisterRequest *r,
                      const Keel__Instance *instance)
{
    s_peer_t *peer = NULL;
    for (size_t i = 0; i < self->n_peers && !peer; i++)
        if (streq (self->peers[i]->name, instance->origin))
            peer = self->peers[i];
    if (!peer || !peer->client)
        return -1;
    s_forward_t *forward = (s_forward_t *)calloc (1, sizeof *forward);
    if (!forward || !(forward->id = strdup (r->id))) {
        free (forward);
        return -1;
    }
    forward->self = self;
    forward->handle = zlistx_add_end (self->forwards, forward);
    forward->request =
        forward->handle ? keel_server_defer (self->server, req) : NULL;
    //  Within the caller's deadline, so the answer still finds it waiting.
    int64_t wait = 2000;
    int64_t deadline = keel_request_deadline (req);
    if (deadline && deadline - keel_now_ms () - 100 < wait)
        wait = deadline - keel_now_ms () - 100;
    if (wait < 100)
        wait = 100;
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)wait,
                             .retries = KEEL_NO_RETRY};
    if (!forward->request ||
        !keel_client_request (peer->client, "registry.deregister", &r->base,
                              &opts, s_on_forwarded, forward)) {
        if (forward->handle)
            zlistx_detach (self->forwards, forward->handle);
        keel_request_t *deferred = forward->request;
        forward->request = NULL;
        s_forward_free (&forward);
        if (deferred) {
            //  Deferred already: answer it here.
            keel_server_reply_error (self->server, deferred,
                                     KEEL_ERR_UNAVAILABLE,
                                     "instance '%s' is owned by node '%s', "
                                     "which cannot be reached",
                                     r->id, instance->origin);
            keel_request_destroy (&deferred);
            return 0;
        }
        return -1;
    }
    self->repl.forwarded++;
    return 0;
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
    int rc =
        keel_catalog_deregister (self->catalog, r->id, keel_now_ms (), &index);
    if (rc == KEEL_ERR_CONFLICT) {
        const Keel__Instance *instance =
            keel_catalog_get (self->catalog, r->id, keel_now_ms ());
        //  A replica: its owner removes it (then pushes the removal). Not
        //  again for a deregister a peer sent on: two registries that each
        //  believe the other owns it (a takeover in flight) must not bounce
        //  it between them.
        const Keel__Envelope *envelope = keel_request_envelope (req);
        bool from_peer = envelope && envelope->sender &&
                         streq (envelope->sender, self->name);
        if (instance && !from_peer &&
            s_forward_deregister (self, req, r, instance) == 0)
            return KEEL_OK;
        keel_server_reply_error (server, req, KEEL_ERR_CONFLICT,
                                 "instance '%s' is owned by node '%s': "
                                 "deregister it there",
                                 r->id, instance ? instance->origin : "?");
        return KEEL_OK;
    }
    if (rc != KEEL_OK) {
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

//  Warming up: a registry with peers holds discovery answers until it has
//  heard from each peer once (a digest round: the same, fetched, or no
//  answer) or warmup has passed, so a node that has just started does not
//  answer "no instance" for what its peers hold.
#define S_HELD_MAX       10000 //  discovers held at most; more are answered
#define S_HELD_MARGIN_MS 250   //  answered this long before their deadline

static int s_answer_discover (self_t *self, keel_request_t *req);

static int
s_discover (keel_server_t *server, keel_request_t *req, void *arg)
{
    (void)server;
    self_t *self = (self_t *)arg;
    if (!self->warm && zlistx_size (self->held) < S_HELD_MAX) {
        keel_request_t *deferred = keel_server_defer (self->server, req);
        if (deferred && zlistx_add_end (self->held, deferred)) {
            self->repl.held++;
            return KEEL_OK;
        }
        keel_request_destroy (&deferred); //  out of memory: answer now
    }
    return s_answer_discover (self, req);
}

static int
s_answer_discover (self_t *self, keel_request_t *req)
{
    keel_server_t *server = self->server;
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
    keel_catalog_set_wall_ms (self->catalog, zclock_time ());
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
    keel_catalog_set_wall_ms (self->catalog, zclock_time ());
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
    keel_catalog_set_wall_ms (self->catalog, zclock_time ());
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
    keel_catalog_set_wall_ms (self->catalog, zclock_time ());
    int rc = keel_server_dispatch (self->server, 100);
    s_sweep (self);
    return rc == -1 ? -1 : 0;
}

// ---------------------------------------------------------------------------
//  Replication: answering peers

static int
s_digest (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__DigestRequest *r = (Keel__DigestRequest *)keel_request_payload (
        req, &keel__digest_request__descriptor);
    if (!r)
        return KEEL_ERR_BAD_REQUEST;
    if (!streq (r->origin, self->node)) {
        keel_server_reply_error (server, req, KEEL_ERR_INVALID_ARGUMENT,
                                 "this is the registry of node '%s', not '%s'",
                                 self->node, r->origin);
        return KEEL_OK;
    }
    Keel__DigestReply reply = KEEL__DIGEST_REPLY__INIT;
    reply.clock = keel_catalog_clock (self->catalog);
    if (keel_catalog_digest (self->catalog, self->node) == r->hash) {
        reply.same = true;
        keel_server_reply (server, req, &reply.base);
        return KEEL_OK;
    }
    Keel__Instance **list = NULL;
    size_t count =
        keel_catalog_list_origin (self->catalog, self->node, 0, &list);
    Keel__DigestEntry *entries =
        (Keel__DigestEntry *)calloc (count + 1, sizeof (Keel__DigestEntry));
    Keel__DigestEntry **pointers =
        (Keel__DigestEntry **)calloc (count + 1, sizeof (Keel__DigestEntry *));
    if (!entries || !pointers) {
        free (entries);
        free (pointers);
        return KEEL_ERR_INTERNAL;
    }
    for (size_t i = 0; i < count; i++) {
        keel__digest_entry__init (&entries[i]);
        entries[i].id = list[i]->id;
        entries[i].version = list[i]->version;
        pointers[i] = &entries[i];
    }
    reply.n_entries = count;
    reply.entries = pointers;
    keel_server_reply (server, req, &reply.base);
    free (entries);
    free (pointers);
    return KEEL_OK;
}

static int
s_fetch (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__FetchRequest *r = (Keel__FetchRequest *)keel_request_payload (
        req, &keel__fetch_request__descriptor);
    if (!r || r->n_ids > S_FETCH_MAX)
        return KEEL_ERR_BAD_REQUEST;
    Keel__Instance **list =
        (Keel__Instance **)calloc (r->n_ids + 1, sizeof (Keel__Instance *));
    if (!list)
        return KEEL_ERR_INTERNAL;
    size_t count = 0;
    int64_t now = keel_now_ms ();
    for (size_t i = 0; i < r->n_ids; i++) {
        const Keel__Instance *instance =
            keel_catalog_get (self->catalog, r->ids[i], now);
        if (instance && streq (instance->origin, self->node))
            list[count++] = (Keel__Instance *)instance;
    }
    s_reply_list (server, req, self, list, count, false);
    free (list);
    return KEEL_OK;
}

//  keel.stats: after the server's counters, the registry's own.
static size_t
s_stats (void *arg, keel_stat_t *rows, size_t max)
{
    self_t *self = (self_t *)arg;
    const s_repl_stats_t *r = &self->repl;
    const keel_stat_t mine[] = {
        {"instances", keel_catalog_size (self->catalog)},
        {"replicas", keel_catalog_replicas (self->catalog)},
        {"probe_refused", self->probe_refused},
        {"replication_applied", r->applied},
        {"replication_ignored", r->ignored},
        {"deregisters_forwarded", r->forwarded},
        {"discovers_held", r->held},
        {"replication_rejected", r->rejected},
        {"replication_event_gaps", r->event_gaps},
        {"digests_sent", r->digests_sent},
        {"digests_same", r->digests_same},
        {"digests_different", r->digests_different},
        {"digests_failed", r->digests_failed},
        {"fetched", r->fetched},
        {"replicas_expired", r->replicas_expired},
    };
    return keel_stats_fill (rows, max, mine, sizeof mine / sizeof mine[0]);
}

// ---------------------------------------------------------------------------
//  Replication: asking peers

//  Apply one entry from `peer`: only what the peer itself owns.
static void
s_apply (self_t *self, s_peer_t *peer, const char *type,
         const Keel__RegistryEvent *event, const Keel__Instance *instance)
{
    if (!instance || !streq (instance->origin, peer->name)) {
        if (instance && !*instance->origin)
            self->repl.rejected++; //  from a registry that has no name
        return;
    }
    int64_t now = keel_now_ms ();
    if (type && streq (type, "registry.deregistered")) {
        if (keel_catalog_apply_removal (self->catalog, instance, event->reason,
                                        now) == KEEL_OK)
            self->repl.applied++;
        else
            self->repl.ignored++;
        keel_catalog_renew (self->catalog, peer->name, now);
        return;
    }
    bool applied = false;
    if (keel_catalog_apply (self->catalog, instance, now, &applied, NULL) !=
        KEEL_OK)
        self->repl.rejected++;
    else if (applied)
        self->repl.applied++;
    else
        self->repl.ignored++;
}

static void s_ask_digest (self_t *self, s_peer_t *peer);

//  Warm once every peer's first round is over, or warmup has passed; the
//  held discovers are answered then.
static void
s_check_warm (self_t *self)
{
    if (self->warm)
        return;
    bool all = true;
    for (size_t i = 0; i < self->n_peers && all; i++)
        all = self->peers[i]->warm;
    if (!all)
        return;
    self->warm = true;
    if (self->held_timer != -1)
        zloop_timer_end (self->loop, self->held_timer);
    self->held_timer = -1;
    keel_request_t *req;
    while ((req = (keel_request_t *)zlistx_detach (self->held, NULL))) {
        s_answer_discover (self, req);
        keel_request_destroy (&req);
    }
}

static void
s_peer_round_over (s_peer_t *peer)
{
    if (peer->warm)
        return;
    peer->warm = true;
    s_check_warm (peer->self);
}

//  A held discover is answered with what is known shortly before its
//  caller gives up (a peer that is down must not make it time out).
static int
s_on_held_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    int64_t now = keel_now_ms ();
    keel_request_t *req = (keel_request_t *)zlistx_first (self->held);
    while (req) {
        int64_t deadline = keel_request_deadline (req);
        if (deadline && now >= deadline - S_HELD_MARGIN_MS) {
            zlistx_delete (self->held, zlistx_cursor (self->held));
            s_answer_discover (self, req);
            keel_request_destroy (&req);
            req = (keel_request_t *)zlistx_first (self->held);
            continue;
        }
        req = (keel_request_t *)zlistx_next (self->held);
    }
    return 0;
}

static int
s_on_warmup_over (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    for (size_t i = 0; i < self->n_peers; i++)
        self->peers[i]->warm = true; //  unheard ones too: stop waiting
    s_check_warm (self);
    return 0;
}

static void
s_on_fetched (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_peer_t *peer = (s_peer_t *)arg;
    self_t *self = peer->self;
    peer->busy = false;
    Keel__InstanceList *list =
        reply->code == KEEL_OK
            ? keel__instance_list__unpack (NULL, reply->size, reply->data)
            : NULL;
    if (!list) {
        s_peer_round_over (peer);
        return;
    }
    keel_catalog_set_wall_ms (self->catalog, zclock_time ());
    for (size_t i = 0; i < list->n_instances; i++) {
        self->repl.fetched++;
        s_apply (self, peer, NULL, NULL, list->instances[i]);
    }
    keel__instance_list__free_unpacked (list, NULL);
    s_rearm (self);
    s_peer_round_over (peer);
}

static void
s_on_digest (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    s_peer_t *peer = (s_peer_t *)arg;
    self_t *self = peer->self;
    peer->busy = false;
    Keel__DigestReply *digest =
        reply->code == KEEL_OK
            ? keel__digest_reply__unpack (NULL, reply->size, reply->data)
            : NULL;
    if (!digest) {
        self->repl.digests_failed++;
        s_peer_round_over (peer);
        return;
    }
    int64_t now = keel_now_ms ();
    keel_catalog_set_wall_ms (self->catalog, zclock_time ());
    if (digest->same) {
        self->repl.digests_same++;
        keel_catalog_renew (self->catalog, peer->name, now);
    } else {
        self->repl.digests_different++;
        const char **need = (const char **)calloc (digest->n_entries + 1,
                                                   sizeof (const char *));
        size_t count = need ? keel_catalog_reconcile (
                                  self->catalog, peer->name, digest->entries,
                                  digest->n_entries, digest->clock, now, need)
                            : 0;
        if (count > S_FETCH_MAX)
            count = S_FETCH_MAX;
        if (count > 0) {
            Keel__FetchRequest fetch = KEEL__FETCH_REQUEST__INIT;
            fetch.n_ids = count;
            fetch.ids = (char **)need;
            keel_call_opts_t opts = {.timeout_ms =
                                         (uint32_t)self->anti_entropy_ms * 2,
                                     .retries = KEEL_NO_RETRY,
                                     .idempotent = true};
            if (keel_client_request (client, "registry.fetch", &fetch.base,
                                     &opts, s_on_fetched, peer))
                peer->busy = true;
        }
        free (need);
    }
    keel__digest_reply__free_unpacked (digest, NULL);
    s_rearm (self);
    if (!peer->busy) //  else: when the fetch is answered
        s_peer_round_over (peer);
}

static void
s_ask_digest (self_t *self, s_peer_t *peer)
{
    if (peer->busy)
        return;
    Keel__DigestRequest req = KEEL__DIGEST_REQUEST__INIT;
    req.origin = peer->name;
    req.hash = keel_catalog_digest (self->catalog, peer->name);
    //  The first round may take the whole warmup: a busy peer is worth
    //  waiting for then (a dead one holds discovery that long at most).
    int64_t timeout = self->anti_entropy_ms;
    if (!peer->warm && self->warmup_ms > timeout)
        timeout = self->warmup_ms;
    keel_call_opts_t opts = {.timeout_ms = (uint32_t)timeout,
                             .retries = KEEL_NO_RETRY,
                             .idempotent = true};
    self->repl.digests_sent++;
    if (keel_client_request (peer->client, "registry.digest", &req.base, &opts,
                             s_on_digest, peer))
        peer->busy = true;
    else {
        self->repl.digests_failed++;
        s_peer_round_over (peer);
    }
}

static int
s_on_anti_entropy (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    s_sweep (self);
    for (size_t i = 0; i < self->n_peers; i++)
        s_ask_digest (self, self->peers[i]);
    return 0;
}

static int
s_on_peer_events (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    (void)sock;
    s_peer_t *peer = (s_peer_t *)arg;
    self_t *self = peer->self;
    keel_catalog_set_wall_ms (self->catalog, zclock_time ());
    bool repair = false;
    for (int n = 0; n < 100; n++) {
        const keel_event_t *event = keel_subscriber_recv (peer->sub, 0);
        if (!event)
            break;
        if (event->gap || event->reset) {
            self->repl.event_gaps++;
            repair = true;
        }
        const Keel__Envelope *env = event->envelope;
        Keel__RegistryEvent *change = keel__registry_event__unpack (
            NULL, env->payload.len, env->payload.data);
        if (!change) {
            self->repl.rejected++;
            continue;
        }
        s_apply (self, peer, env->type, change, change->instance);
        keel__registry_event__free_unpacked (change, NULL);
    }
    if (repair) //  missed events: repair now rather than next round
        s_ask_digest (self, peer);
    s_sweep (self);
    s_rearm (self);
    return 0;
}

static void
s_peer_destroy (s_peer_t **peer_p)
{
    s_peer_t *peer = *peer_p;
    if (peer) {
        keel_client_destroy (&peer->client);
        keel_subscriber_destroy (&peer->sub);
        free (peer->name);
        free (peer);
        *peer_p = NULL;
    }
}

//  Connect to every configured peer. Returns NULL or the reason not.
static const char *
s_peers_start (self_t *self, size_t max_msg_size)
{
    for (size_t i = 0; i < self->n_peers; i++) {
        s_peer_t *peer = self->peers[i];
        peer->self = self;
        peer->client = keel_client_new (self->name, peer->endpoint, "registry");
        if (!peer->client)
            return "cannot open a client to a peer";
        keel_client_set_max_msg_size (peer->client, max_msg_size);
        if (keel_client_attach (peer->client, self->loop) == -1)
            return "out of memory";
        if (peer->events) {
            peer->sub = keel_subscriber_new ();
            if (!peer->sub)
                return "out of memory";
            keel_subscriber_set_max_msg_size (peer->sub, max_msg_size);
            if (keel_subscriber_connect (peer->sub, peer->events) == -1)
                return "cannot connect to a peer's events";
            keel_subscriber_subscribe (peer->sub, "registry.");
            zloop_reader (self->loop, keel_subscriber_sock (peer->sub),
                          s_on_peer_events, peer);
        }
    }
    if (self->n_peers > 0 &&
        zloop_timer (self->loop, (size_t)self->anti_entropy_ms, 0,
                     s_on_anti_entropy, self) == -1)
        return "out of memory";
    //  The first round now, not one period from now; warm without peers
    //  or without a warmup.
    self->warm = self->n_peers == 0 || self->warmup_ms == 0;
    if (!self->warm) {
        self->held_timer =
            zloop_timer (self->loop, 20, 0, s_on_held_tick, self);
        if (self->held_timer == -1 ||
            zloop_timer (self->loop, (size_t)self->warmup_ms, 1,
                         s_on_warmup_over, self) == -1)
            return "out of memory";
        s_on_anti_entropy (self->loop, -1, self);
    }
    return NULL;
}

// ---------------------------------------------------------------------------

//  A node name as config gives it: [A-Za-z0-9._-], 1..200 characters.
static bool
s_node_name_valid (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > 200)
        return false;
    for (const char *c = name; *c; c++)
        if (!isalnum ((unsigned char)*c) && *c != '.' && *c != '_' && *c != '-')
            return false;
    return true;
}

//  One `peer` section into self->peers. Returns 0 or -1 (config error set).
static int
s_configure_peer (keel_config_t *config, zconfig_t *section, self_t *self)
{
    static const char *keys[] = {"name", "endpoint", "events", NULL};
    zconfig_t *previous = keel_config_scope (config, section);
    const char *name = NULL, *endpoint = NULL, *events = NULL;
    int rc = 0;
    if (keel_config_check_keys (config, "", keys) == -1 ||
        keel_config_string (config, "name", NULL, &name) == -1 ||
        keel_config_endpoint (config, "endpoint", NULL, &endpoint) == -1 ||
        keel_config_endpoint (config, "events", NULL, &events) == -1)
        rc = -1;
    else if (!name || !endpoint)
        rc = keel_config_fail_node (config, section,
                                    "a peer needs a name and an endpoint");
    else if (!s_node_name_valid (name))
        rc = keel_config_fail_node (config, section,
                                    "peer name '%s' is not a node name "
                                    "([A-Za-z0-9._-])",
                                    name);
    else if (streq (name, self->node))
        rc = keel_config_fail_node (config, section, "peer '%s' is this node",
                                    name);
    for (size_t i = 0; rc == 0 && i < self->n_peers; i++)
        if (streq (self->peers[i]->name, name))
            rc = keel_config_fail_node (config, section,
                                        "peer '%s' is listed twice", name);
    keel_config_scope (config, previous);
    if (rc == -1)
        return -1;
    s_peer_t *peer = (s_peer_t *)calloc (1, sizeof (s_peer_t));
    s_peer_t **peers = (s_peer_t **)realloc (
        self->peers, (self->n_peers + 1) * sizeof (s_peer_t *));
    if (peers)
        self->peers = peers;
    if (!peer || !peers || !(peer->name = strdup (name))) {
        free (peer);
        return keel_config_fail_node (config, section, "out of memory");
    }
    peer->endpoint = endpoint;
    peer->events = events;
    self->peers[self->n_peers++] = peer;
    return 0;
}

static const char *
s_configure (keel_actor_args_t *args, keel_catalog_limits_t *limits,
             self_t *self)
{
    static const char *keys[] = {"bind",          "protect_threshold",
                                 "max_instances", "anti_entropy",
                                 "replica_lease", "warmup",
                                 "peer",          NULL};
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
    if (error)
        return error;

    //  Replication
    char *ae_path = zsys_sprintf ("%s/anti_entropy", args->name);
    char *lease_path = zsys_sprintf ("%s/replica_lease", args->name);
    int64_t anti_entropy = 0, lease = 0;
    if (keel_config_duration_ms (config, ae_path, 500, &anti_entropy) == -1 ||
        keel_config_duration_ms (config, lease_path, 3000, &lease) == -1)
        error = keel_config_error (config);
    else if (anti_entropy < 10 || anti_entropy > 3600000) {
        keel_config_fail (config, ae_path, "expected 10ms..1h");
        error = keel_config_error (config);
    } else if (lease < 2 * anti_entropy || lease > 86400000) {
        keel_config_fail (config, lease_path,
                          "expected at least twice anti_entropy (%" PRId64
                          "ms), at most 24h",
                          anti_entropy);
        error = keel_config_error (config);
    }
    self->anti_entropy_ms = anti_entropy;
    limits->replica_lease_ms = lease;
    zstr_free (&ae_path);
    zstr_free (&lease_path);
    if (!error) {
        char *warm_path = zsys_sprintf ("%s/warmup", args->name);
        int64_t warmup = 0;
        if (keel_config_duration_ms (config, warm_path, 2 * anti_entropy,
                                     &warmup) == -1)
            error = keel_config_error (config);
        else if (warmup < 0 || warmup > 600000) {
            keel_config_fail (config, warm_path, "expected 0..10min");
            error = keel_config_error (config);
        }
        self->warmup_ms = warmup;
        zstr_free (&warm_path);
    }
    zconfig_t *section = zconfig_locate (keel_config_root (config), args->name);
    for (zconfig_t *c = section ? zconfig_child (section) : NULL; c && !error;
         c = zconfig_next (c))
        if (streq (zconfig_name (c), "peer") &&
            s_configure_peer (config, c, self) == -1)
            error = keel_config_error (config);
    return error;
}

void
keel_registry_actor (zsock_t *pipe, void *args)
{
    keel_actor_args_t *actor = (keel_actor_args_t *)args;
    self_t self = {0};
    self.name = actor->name;
    self.node = actor->node;
    self.timer_id = -1;
    keel_catalog_limits_t limits = {0};
    const char *error = s_configure (actor, &limits, &self);
    if (!error) {
        self.server = keel_server_new (actor->name);
        self.publisher = keel_publisher_new (actor->name);
        self.catalog = keel_catalog_new (&limits);
        self.prober = keel_prober_new ();
        self.pingers = zhashx_new ();
        self.forwards = zlistx_new ();
        self.held = zlistx_new ();
        self.held_timer = -1;
        self.loop = zloop_new ();
        if (!self.server || !self.publisher || !self.catalog || !self.prober ||
            !self.pingers || !self.forwards || !self.held || !self.loop)
            error = "out of memory";
        else if (keel_catalog_set_origin (self.catalog, self.node) == -1)
            error = "the node name cannot name an origin";
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
        keel_server_on (self.server, "registry.digest", s_digest, &self);
        keel_server_on (self.server, "registry.fetch", s_fetch, &self);
        keel_server_set_stats_fn (self.server, s_stats, &self);
        zloop_reader (self.loop, keel_server_sock (self.server), s_on_request,
                      &self);
        zloop_reader (self.loop, keel_prober_sock (self.prober), s_on_probe,
                      &self);
        zloop_reader (self.loop, pipe, keel_actor_on_pipe, NULL);
        zloop_set_nonstop (self.loop, true);
        error = s_peers_start (&self, actor->max_msg_size);
    }
    keel_actor_ready (pipe, error);
    if (!error)
        zloop_start (self.loop);
    zhashx_destroy (&self.pingers); //  clients first: they sit on the loop
    //  Deregisters still waiting for their owner: the peers' clients go
    //  below without calling back.
    s_forward_t *forward;
    while (self.forwards &&
           (forward = (s_forward_t *)zlistx_detach (self.forwards, NULL))) {
        keel_server_reply_error (self.server, forward->request,
                                 KEEL_ERR_UNAVAILABLE,
                                 "the registry is stopping");
        s_forward_free (&forward);
    }
    zlistx_destroy (&self.forwards);
    keel_request_t *held;
    while (self.held &&
           (held = (keel_request_t *)zlistx_detach (self.held, NULL))) {
        keel_server_reply_error (self.server, held, KEEL_ERR_UNAVAILABLE,
                                 "the registry is stopping");
        keel_request_destroy (&held);
    }
    zlistx_destroy (&self.held);
    for (size_t i = 0; i < self.n_peers; i++)
        s_peer_destroy (&self.peers[i]);
    free (self.peers);
    zloop_destroy (&self.loop);
    keel_prober_destroy (&self.prober);
    keel_catalog_destroy (&self.catalog);
    keel_publisher_destroy (&self.publisher);
    keel_server_destroy (&self.server);
}
