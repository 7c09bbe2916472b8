/*  breaker_mirror.c - local breakers following the breaker actor. See
    breaker_mirror.h. */
#include "breaker_mirror.h"
#include "breaker.pb-c.h"
#include "keel_client.h"
#include "keel_events.h"

#include <string.h>

#define BATCH_MAX 1000 //  reports per batch; a full batch leaves at once
#define FLUSH_MS  10   //  a report waits at most this long

struct _keel_breaker_mirror_t {
    char *service;                        //  the actor's name (event sender)
    keel_breaker_config_t config;         //  settings of new local breakers
    zhashx_t *breakers;                   //  key -> keel_breaker_t
    keel_client_t *client;                //  to the actor, or NULL
    keel_subscriber_t *sub;               //  its events, or NULL
    Keel__OutcomeReport batch[BATCH_MAX]; //  pending reports
    Keel__OutcomeReport *pointers[BATCH_MAX]; //  their addresses
    size_t pending;                           //  reports in batch
    zloop_t *loop;                            //  attached loop, or NULL
    int timer_id;                             //  flush timer, -1 = none
    bool snapshot_wanted;                     //  events were missed
    bool snapshot_in_flight;                  //  a breaker.list is on its way
    keel_breaker_mirror_stats_t stats;        //  counters
    keel_breaker_mirror_fn *listener_fn;      //  hears applied states
    void *listener_arg;                       //  its argument
};

static uint64_t
s_now_us (void)
{
    return (uint64_t)zclock_usecs ();
}

static void
s_breaker_free (void **item)
{
    keel_breaker_t *breaker = (keel_breaker_t *)*item;
    keel_breaker_destroy (&breaker);
    *item = NULL;
}

keel_breaker_mirror_t *
keel_breaker_mirror_new (const char *sender, const char *endpoint,
                         const char *service, const char *events,
                         const keel_breaker_config_t *config)
{
    keel_breaker_mirror_t *self =
        (keel_breaker_mirror_t *)calloc (1, sizeof (keel_breaker_mirror_t));
    if (!self)
        return NULL;
    if (config)
        self->config = *config;
    else
        keel_breaker_config_default (&self->config);
    self->timer_id = -1;
    self->service = strdup (service && *service ? service : "breaker");
    self->breakers = zhashx_new ();
    bool ok = self->service && self->breakers &&
              !keel_breaker_config_check (&self->config);
    if (ok && endpoint) {
        self->client = keel_client_new (sender, endpoint, self->service);
        ok = self->client != NULL;
    }
    if (ok && events) {
        self->sub = keel_subscriber_new ();
        ok = self->sub && keel_subscriber_connect (self->sub, events) == 0;
        if (ok)
            keel_subscriber_subscribe (self->sub, "breaker.transition");
    }
    if (!ok) {
        keel_breaker_mirror_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->breakers, s_breaker_free);
    for (size_t i = 0; i < BATCH_MAX; i++)
        self->pointers[i] = &self->batch[i];
    //  Learn the cluster's states before the first event.
    self->snapshot_wanted = self->client != NULL;
    return self;
}

void
keel_breaker_mirror_destroy (keel_breaker_mirror_t **self_p)
{
    assert (self_p);
    keel_breaker_mirror_t *self = *self_p;
    if (!self)
        return;
    keel_breaker_mirror_flush (self);
    if (self->loop) {
        if (self->sub)
            zloop_reader_end (self->loop, keel_subscriber_sock (self->sub));
        if (self->timer_id != -1)
            zloop_timer_end (self->loop, self->timer_id);
    }
    keel_client_destroy (&self->client);
    keel_subscriber_destroy (&self->sub);
    zhashx_destroy (&self->breakers);
    free (self->service);
    free (self);
    *self_p = NULL;
}

const keel_breaker_mirror_stats_t *
keel_breaker_mirror_stats (keel_breaker_mirror_t *self)
{
    return &self->stats;
}

//  The local breaker of `key`, created on first use; NULL for a bad key.
static keel_breaker_t *
s_breaker (keel_breaker_mirror_t *self, const char *key)
{
    keel_breaker_t *breaker =
        (keel_breaker_t *)zhashx_lookup (self->breakers, key);
    if (!breaker && key && *key && strlen (key) <= 256) {
        breaker = keel_breaker_new (key, &self->config, s_now_us ());
        if (breaker)
            zhashx_insert (self->breakers, key, breaker);
    }
    return breaker;
}

keel_breaker_state_t
keel_breaker_mirror_state (keel_breaker_mirror_t *self, const char *key)
{
    keel_breaker_t *breaker =
        (keel_breaker_t *)zhashx_lookup (self->breakers, key);
    return breaker ? keel_breaker_stats (breaker, s_now_us ()).state
                   : KEEL_BREAKER_CLOSED;
}

bool
keel_breaker_mirror_acquire (keel_breaker_mirror_t *self, const char *key,
                             uint64_t *retry_after_us)
{
    keel_breaker_t *breaker = s_breaker (self, key);
    if (!breaker) {
        //  Without a breaker (bad key, no memory) the call is not guarded.
        if (retry_after_us)
            *retry_after_us = 0;
        return true;
    }
    return keel_breaker_acquire (breaker, s_now_us (), retry_after_us);
}

// ---------------------------------------------------------------------------
//  Reports

static int s_on_flush (zloop_t *loop, int timer_id, void *arg);

size_t
keel_breaker_mirror_flush (keel_breaker_mirror_t *self)
{
    size_t count = self->pending;
    if (!count)
        return 0;
    self->pending = 0;
    if (!self->client)
        return 0;
    Keel__ReportBatch batch = KEEL__REPORT_BATCH__INIT;
    batch.reports = self->pointers;
    batch.n_reports = count;
    if (keel_client_notify (self->client, "breaker.report", &batch.base,
                            NULL) == 0)
        self->stats.reported += count;
    else
        self->stats.lost += count; //  fire and forget: the actor may be down
    return count;
}

void
keel_breaker_mirror_record (keel_breaker_mirror_t *self, const char *key,
                            keel_outcome_t outcome, uint64_t duration_us)
{
    keel_breaker_t *breaker =
        (keel_breaker_t *)zhashx_lookup (self->breakers, key);
    if (!breaker)
        return; //  never acquired: nothing to record
    keel_breaker_record (breaker, outcome, duration_us, s_now_us ());
    if (!self->client)
        return;
    Keel__OutcomeReport *report = &self->batch[self->pending++];
    keel__outcome_report__init (report);
    report->key = (char *)keel_breaker_key (breaker);
    report->outcome = (Keel__CallOutcome)outcome;
    report->duration_us = duration_us;
    if (self->pending == BATCH_MAX)
        keel_breaker_mirror_flush (self);
    else if (self->loop && self->timer_id == -1)
        self->timer_id =
            zloop_timer (self->loop, FLUSH_MS, 1, s_on_flush, self);
}

static int
s_on_flush (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    keel_breaker_mirror_t *self = (keel_breaker_mirror_t *)arg;
    self->timer_id = -1;
    keel_breaker_mirror_flush (self);
    return 0;
}

// ---------------------------------------------------------------------------
//  Following the actor

static void
s_apply (keel_breaker_mirror_t *self, const char *key, Keel__BreakerState state,
         uint64_t open_remaining_ms)
{
    if (state > KEEL__BREAKER_STATE__METRICS_ONLY)
        return;
    keel_breaker_t *breaker = s_breaker (self, key);
    if (!breaker)
        return;
    uint64_t now = s_now_us ();
    keel_breaker_mirror (breaker, (keel_breaker_state_t)state,
                         now + open_remaining_ms * 1000, now);
    self->stats.applied++;
    if (self->listener_fn)
        self->listener_fn (key, (keel_breaker_state_t)state,
                           self->listener_arg);
}

void
keel_breaker_mirror_set_listener (keel_breaker_mirror_t *self,
                                  keel_breaker_mirror_fn *fn, void *arg)
{
    self->listener_fn = fn;
    self->listener_arg = arg;
}

static void
s_on_snapshot (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    keel_breaker_mirror_t *self = (keel_breaker_mirror_t *)arg;
    self->snapshot_in_flight = false;
    if (reply->code != KEEL_OK) {
        self->snapshot_wanted = true; //  try again with the next event
        return;
    }
    Keel__BreakerList *list = (Keel__BreakerList *)protobuf_c_message_unpack (
        &keel__breaker_list__descriptor, NULL, reply->size, reply->data);
    if (!list)
        return;
    for (size_t i = 0; i < list->n_breakers; i++)
        s_apply (self, list->breakers[i]->key, list->breakers[i]->state,
                 list->breakers[i]->open_remaining_ms);
    if (self->sub)
        keel_subscriber_expect (self->sub, self->service, list->sequence);
    self->stats.snapshots++;
    protobuf_c_message_free_unpacked (&list->base, NULL);
}

static void
s_request_snapshot (keel_breaker_mirror_t *self)
{
    if (!self->client || self->snapshot_in_flight)
        return;
    keel_call_opts_t opts = {.timeout_ms = 2000, .idempotent = true};
    if (keel_client_request (self->client, "breaker.list", NULL, &opts,
                             s_on_snapshot, self)) {
        self->snapshot_in_flight = true;
        self->snapshot_wanted = false;
    }
}

static int
s_on_event (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    (void)sock;
    keel_breaker_mirror_t *self = (keel_breaker_mirror_t *)arg;
    const keel_event_t *event;
    for (int i = 0; i < 100 && (event = keel_subscriber_recv (self->sub, 0));
         i++) {
        Keel__BreakerTransition *change =
            (Keel__BreakerTransition *)keel_codec_payload (
                event->envelope, &keel__breaker_transition__descriptor, NULL);
        if (change) {
            s_apply (self, change->key, change->to, change->open_remaining_ms);
            protobuf_c_message_free_unpacked (&change->base, NULL);
        }
        if (event->gap || event->reset)
            self->snapshot_wanted = true;
    }
    if (self->snapshot_wanted)
        s_request_snapshot (self);
    return 0;
}

int
keel_breaker_mirror_attach (keel_breaker_mirror_t *self, zloop_t *loop)
{
    assert (!self->loop);
    self->loop = loop;
    if (self->client && keel_client_attach (self->client, loop) == -1)
        return -1;
    if (self->sub && zloop_reader (loop, keel_subscriber_sock (self->sub),
                                   s_on_event, self) == -1)
        return -1;
    if (self->snapshot_wanted)
        s_request_snapshot (self);
    return 0;
}
