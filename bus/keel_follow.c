/*  keel_follow.c - follow services in the registry. See keel_follow.h.

    services (zhashx name -> s_service_t)
        items[]: Keel__Instance copies, sorted by id, healthy only (but
                 a discover answer is kept whole if keep_discovered)
        index:   registry index the list is current to; events at or below
                 it are already in the list
        discover_id: a discover in flight; events meanwhile mark it dirty
                 (then it discovers again when the answer comes)

    Each change applied (a discover answer, an event) is then told to the
    on_change callback, if any: RESET, UPSERT or REMOVE.
*/
#include "keel_follow.h"
#include "keel_codec.h"
#include "keel_client.h"
#include "keel_common.h"
#include "keel_events.h"

#include <string.h>

typedef struct {
    keel_follow_t *owner;   //  the follower
    char *name;             //  service name
    Keel__Instance **items; //  healthy instances, sorted by id
    size_t n;               //  how many
    size_t cap;             //  allocated
    uint64_t discover_id;   //  discover in flight, or 0
    bool discovered;        //  a discover answer was applied
    bool dirty;             //  events came during a discover
    uint64_t index;         //  registry index the list is current to
    int64_t retry_at;       //  discover again then (keel_now_ms), 0 = no
    int64_t asked_at;       //  last discover sent (keel_now_ms)
} s_service_t;

struct _keel_follow_t {
    char *sender;               //  our name, for the log
    keel_client_t *client;      //  registry requests
    keel_subscriber_t *sub;     //  registry events, or NULL
    zhashx_t *services;         //  name -> s_service_t
    zloop_t *loop;              //  attached to, or NULL
    int timer_id;               //  retry timer
    keel_follow_fn *on_change;  //  told of each change, or NULL
    void *on_change_arg;        //  its argument
    bool keep_discovered;       //  keep discover answers whole
    keel_ratelimit_t log_limit; //  discover failures
};

static void
s_items_clear (s_service_t *service)
{
    for (size_t i = 0; i < service->n; i++)
        keel__instance__free_unpacked (service->items[i], NULL);
    service->n = 0;
}

static void
s_service_free (void **item)
{
    s_service_t *service = (s_service_t *)*item;
    s_items_clear (service);
    free (service->items);
    free (service->name);
    free (service);
    *item = NULL;
}

//  A deep copy of an instance (malloc-owned).
static Keel__Instance *
s_copy (const Keel__Instance *inst)
{
    return (Keel__Instance *)keel_codec_copy (&inst->base);
}

static bool
s_healthy (const Keel__Instance *inst)
{
    int status =
        inst->health ? (int)inst->health->status : KEEL__HEALTH_STATUS__PASSING;
    return status == KEEL__HEALTH_STATUS__PASSING ||
           status == KEEL__HEALTH_STATUS__WARNING;
}

//  Position of `id` in items, or where it would go (*found false).
static size_t
s_find (s_service_t *service, const char *id, bool *found)
{
    size_t lo = 0, hi = service->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp (service->items[mid]->id, id);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void
s_remove (s_service_t *service, const char *id)
{
    bool found;
    size_t at = s_find (service, id, &found);
    if (!found)
        return;
    keel__instance__free_unpacked (service->items[at], NULL);
    memmove (service->items + at, service->items + at + 1,
             (service->n - at - 1) * sizeof (Keel__Instance *));
    service->n--;
}

//  Returns 0, or -1 if out of memory (the list is as it was).
static int
s_upsert (s_service_t *service, const Keel__Instance *inst)
{
    Keel__Instance *copy = s_copy (inst);
    if (!copy)
        return -1;
    bool found;
    size_t at = s_find (service, inst->id, &found);
    if (found) {
        keel__instance__free_unpacked (service->items[at], NULL);
        service->items[at] = copy;
        return 0;
    }
    if (service->n == service->cap) {
        size_t cap = service->cap ? 2 * service->cap : 8;
        Keel__Instance **items = (Keel__Instance **)realloc (
            service->items, cap * sizeof (Keel__Instance *));
        if (!items) {
            keel__instance__free_unpacked (copy, NULL);
            return -1;
        }
        service->items = items;
        service->cap = cap;
    }
    memmove (service->items + at + 1, service->items + at,
             (service->n - at) * sizeof (Keel__Instance *));
    service->items[at] = copy;
    service->n++;
    return 0;
}

static void s_discover (keel_follow_t *self, s_service_t *service);

//  Tell the caller of a change applied; `ok` false: it was not applied
//  whole (out of memory). Either failing, discover again in a second.
static void
s_changed (s_service_t *service, keel_follow_change_t change,
           const Keel__Instance *inst, bool ok)
{
    keel_follow_t *self = service->owner;
    if (ok && self->on_change &&
        self->on_change (self, service->name, change, inst,
                         self->on_change_arg) == -1)
        ok = false;
    if (!ok && !service->discover_id)
        service->retry_at = keel_now_ms () + 1000;
}

static void
s_on_discover (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_service_t *service = (s_service_t *)arg;
    keel_follow_t *self = service->owner;
    service->discover_id = 0;
    Keel__InstanceList *list =
        reply->code == KEEL_OK
            ? keel__instance_list__unpack (NULL, reply->size, reply->data)
            : NULL;
    if (!list) {
        keel_log_limited (
            &self->log_limit, keel_now_ms (), "%s: cannot discover %s: %s",
            self->sender, service->name,
            reply->code ? keel_strerror (reply->code) : "malformed reply");
        service->retry_at = keel_now_ms () + 1000;
        return;
    }
    s_items_clear (service);
    bool ok = true;
    for (size_t i = 0; i < list->n_instances; i++)
        if (self->keep_discovered || s_healthy (list->instances[i]))
            if (s_upsert (service, list->instances[i]) == -1)
                ok = false;
    service->index = list->index;
    service->discovered = true;
    keel__instance_list__free_unpacked (list, NULL);
    s_changed (service, KEEL_FOLLOW_RESET, NULL, ok);
    if (service->dirty) {
        service->dirty = false;
        s_discover (service->owner, service);
    }
}

static void
s_discover (keel_follow_t *self, s_service_t *service)
{
    if (service->discover_id)
        return;
    Keel__DiscoverRequest req = KEEL__DISCOVER_REQUEST__INIT;
    req.service = service->name;
    service->asked_at = keel_now_ms ();
    keel_call_opts_t opts = {.timeout_ms = 2000, .idempotent = true};
    service->discover_id =
        keel_client_request (self->client, "registry.discover", &req.base,
                             &opts, s_on_discover, service);
    service->retry_at = service->discover_id ? 0 : keel_now_ms () + 1000;
}

keel_follow_t *
keel_follow_new (const char *sender, const char *endpoint, const char *registry,
                 const char *events)
{
    keel_follow_t *self = (keel_follow_t *)zmalloc (sizeof (keel_follow_t));
    self->sender = strdup (sender);
    self->client =
        keel_client_new (sender, endpoint, registry ? registry : "registry");
    self->services = zhashx_new ();
    if (events) {
        self->sub = keel_subscriber_new ();
        if (self->sub && keel_subscriber_connect (self->sub, events) == 0)
            keel_subscriber_subscribe (self->sub, "registry.");
        else
            keel_subscriber_destroy (&self->sub);
    }
    if (!self->sender || !self->client || !self->services ||
        (events && !self->sub)) {
        keel_follow_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->services, s_service_free);
    return self;
}

void
keel_follow_destroy (keel_follow_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keel_follow_t *self = *self_p;
    if (self->loop) {
        if (self->sub)
            zloop_reader_end (self->loop, keel_subscriber_sock (self->sub));
        zloop_timer_end (self->loop, self->timer_id);
    }
    keel_client_destroy (&self->client);
    keel_subscriber_destroy (&self->sub);
    zhashx_destroy (&self->services);
    free (self->sender);
    free (self);
    *self_p = NULL;
}

static void
s_apply (keel_follow_t *self, const char *type, const Keel__RegistryEvent *ev)
{
    const Keel__Instance *inst = ev->instance;
    if (!inst || !inst->service || !inst->id)
        return;
    s_service_t *service =
        (s_service_t *)zhashx_lookup (self->services, inst->service);
    if (!service)
        return;
    if (service->discover_id) {
        service->dirty = true;
        return;
    }
    if (ev->index <= service->index)
        return;
    service->index = ev->index;
    if (streq (type, "registry.deregistered") || !s_healthy (inst)) {
        s_remove (service, inst->id);
        s_changed (service, KEEL_FOLLOW_REMOVE, inst, true);
    } else
        s_changed (service, KEEL_FOLLOW_UPSERT, inst,
                   s_upsert (service, inst) == 0);
}

static void
s_rediscover_all (keel_follow_t *self)
{
    s_service_t *service = (s_service_t *)zhashx_first (self->services);
    for (; service; service = (s_service_t *)zhashx_next (self->services)) {
        if (service->discover_id)
            service->dirty = true;
        else
            s_discover (self, service);
    }
}

static int
s_on_event (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    (void)sock;
    keel_follow_t *self = (keel_follow_t *)arg;
    const keel_event_t *event;
    int budget = 1000;
    while (budget-- > 0 && (event = keel_subscriber_recv (self->sub, 0))) {
        if (event->gap || event->reset) {
            s_rediscover_all (self);
            continue;
        }
        const Keel__Envelope *env = event->envelope;
        Keel__RegistryEvent *ev = keel__registry_event__unpack (
            NULL, env->payload.len, env->payload.data);
        if (!ev)
            continue;
        s_apply (self, env->type, ev);
        keel__registry_event__free_unpacked (ev, NULL);
    }
    return 0;
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    keel_follow_t *self = (keel_follow_t *)arg;
    int64_t now = keel_now_ms ();
    s_service_t *service = (s_service_t *)zhashx_first (self->services);
    for (; service; service = (s_service_t *)zhashx_next (self->services))
        if (service->retry_at && now >= service->retry_at)
            s_discover (self, service);
    return 0;
}

void
keel_follow_on_change (keel_follow_t *self, keel_follow_fn *fn, void *arg)
{
    self->on_change = fn;
    self->on_change_arg = arg;
}

void
keel_follow_set_keep_discovered (keel_follow_t *self, bool keep)
{
    self->keep_discovered = keep;
}

void
keel_follow_set_max_msg_size (keel_follow_t *self, size_t max_size)
{
    keel_client_set_max_msg_size (self->client, max_size);
    if (self->sub)
        keel_subscriber_set_max_msg_size (self->sub, max_size);
}

int
keel_follow_attach (keel_follow_t *self, zloop_t *loop)
{
    self->loop = loop;
    if (keel_client_attach (self->client, loop) == -1)
        return -1;
    if (self->sub && zloop_reader (loop, keel_subscriber_sock (self->sub),
                                   s_on_event, self) == -1)
        return -1;
    self->timer_id = zloop_timer (loop, 250, 0, s_on_timer, self);
    return self->timer_id == -1 ? -1 : 0;
}

int
keel_follow_watch (keel_follow_t *self, const char *service_name)
{
    if (zhashx_lookup (self->services, service_name))
        return 0;
    s_service_t *service = (s_service_t *)zmalloc (sizeof (s_service_t));
    service->owner = self;
    service->name = strdup (service_name);
    if (!service->name) {
        free (service);
        return -1;
    }
    zhashx_insert (self->services, service_name, service);
    s_discover (self, service);
    return 0;
}

size_t
keel_follow_instances (keel_follow_t *self, const char *name,
                       const Keel__Instance *const **instances_p)
{
    s_service_t *service = (s_service_t *)zhashx_lookup (self->services, name);
    if (instances_p)
        *instances_p =
            service ? (const Keel__Instance *const *)service->items : NULL;
    return service ? service->n : 0;
}

int
keel_follow_refresh (keel_follow_t *self, const char *name,
                     int64_t min_interval_ms)
{
    s_service_t *service = (s_service_t *)zhashx_lookup (self->services, name);
    if (!service)
        return -1;
    if (service->discover_id)
        service->dirty = true; //  once more when this answer comes
    else if (keel_now_ms () - service->asked_at >= min_interval_ms)
        s_discover (self, service);
    return 0;
}

bool
keel_follow_ready (keel_follow_t *self, const char *name)
{
    s_service_t *service = (s_service_t *)zhashx_lookup (self->services, name);
    return service && service->discovered;
}
