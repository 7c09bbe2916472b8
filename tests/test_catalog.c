/*  test_catalog.c - the registry core: instances, health, index, discovery,
    deadlines. Time is injected: every test drives its own clock. */
#include "catalog.h"
#include "keel_common.h"
#include "testutil.h"

#include <string.h>

#define PASSING  KEEL__HEALTH_STATUS__PASSING
#define WARNING  KEEL__HEALTH_STATUS__WARNING
#define CRITICAL KEEL__HEALTH_STATUS__CRITICAL
#define UNKNOWN  KEEL__HEALTH_STATUS__HEALTH_UNKNOWN

// ---------------------------------------------------------------------------
//  Building registrations

//  A registration and the storage it points into.
typedef struct {
    Keel__Instance inst;
    Keel__HealthCheck check;
    Keel__Health health;
    char *tags[80];
    Keel__Instance__MetaEntry meta_pairs[80];
    Keel__Instance__MetaEntry *meta[80];
} spec_t;

static void
s_spec (spec_t *spec, const char *id, const char *service)
{
    memset (spec, 0, sizeof *spec);
    keel__instance__init (&spec->inst);
    keel__health_check__init (&spec->check);
    keel__health__init (&spec->health);
    spec->inst.id = (char *)id;
    spec->inst.service = (char *)service;
    spec->inst.endpoint = "tcp://127.0.0.1:5555";
    spec->inst.tags = spec->tags;
    spec->inst.meta = spec->meta;
}

//  The check, attached; returns it for the caller to fill.
static Keel__HealthCheck *
s_spec_check (spec_t *spec)
{
    spec->inst.check = &spec->check;
    return &spec->check;
}

static void
s_spec_ttl (spec_t *spec, uint32_t ttl_ms)
{
    s_spec_check (spec)->ttl_ms = ttl_ms;
}

static void
s_spec_tag (spec_t *spec, const char *tag)
{
    ck_assert_uint_lt (spec->inst.n_tags, 80);
    spec->tags[spec->inst.n_tags++] = (char *)tag;
}

static void
s_spec_meta (spec_t *spec, const char *key, const char *value)
{
    size_t n = spec->inst.n_meta;
    ck_assert_uint_lt (n, 80);
    keel__instance__meta_entry__init (&spec->meta_pairs[n]);
    spec->meta_pairs[n].key = (char *)key;
    spec->meta_pairs[n].value = (char *)value;
    spec->meta[n] = &spec->meta_pairs[n];
    spec->inst.n_meta++;
}

static int
s_register (keel_catalog_t *cat, spec_t *spec, int64_t now)
{
    const char *error = NULL;
    uint64_t index = 0;
    int rc = keel_catalog_register (cat, &spec->inst, now, &index, &error);
    if (rc == KEEL_OK) {
        ck_assert_ptr_null (error);
        ck_assert_uint_eq (index, keel_catalog_index (cat));
    } else
        ck_assert_ptr_nonnull (error);
    return rc;
}

//  Register a plain instance (no check) that must be accepted.
static void
s_add_plain (keel_catalog_t *cat, const char *id, const char *service,
             int64_t now)
{
    spec_t spec;
    s_spec (&spec, id, service);
    ck_assert_int_eq (s_register (cat, &spec, now), KEEL_OK);
}

static Keel__HealthStatus
s_status (keel_catalog_t *cat, const char *id, int64_t now)
{
    const Keel__Instance *inst = keel_catalog_get (cat, id, now);
    ck_assert_ptr_nonnull (inst);
    ck_assert_ptr_nonnull (inst->health);
    return inst->health->status;
}

// ---------------------------------------------------------------------------
//  Recording events

typedef struct {
    char type[32];
    char id[64];
    char reason[64];
    Keel__HealthStatus status;
    Keel__HealthStatus previous;
    uint64_t index;
    uint64_t modify_index;
    uint64_t age_ms;
} event_t;

typedef struct {
    size_t count;        //  events seen
    uint64_t last_index; //  index of the last one
    bool broken;         //  an index did not follow its predecessor by one,
                         //  or modify_index differed from it
    event_t log[64];     //  the first 64
} events_t;

static events_t s_events;

static void
s_on_event (const char *type, const Keel__RegistryEvent *event, void *arg)
{
    events_t *events = (events_t *)arg;
    if (event->index != events->last_index + 1 || !event->instance ||
        event->instance->modify_index != event->index ||
        !event->instance->health)
        events->broken = true;
    events->last_index = event->index;
    if (events->count < 64) {
        event_t *e = &events->log[events->count];
        snprintf (e->type, sizeof e->type, "%s", type);
        snprintf (e->id, sizeof e->id, "%s", event->instance->id);
        snprintf (e->reason, sizeof e->reason, "%s", event->reason);
        e->status = event->instance->health->status;
        e->previous = event->previous;
        e->index = event->index;
        e->modify_index = event->instance->modify_index;
        e->age_ms = event->instance->health->last_check_age_ms;
    }
    events->count++;
}

//  A catalog with the recorder listening.
static keel_catalog_t *
s_catalog (const keel_catalog_limits_t *limits)
{
    memset (&s_events, 0, sizeof s_events);
    keel_catalog_t *cat = keel_catalog_new (limits);
    ck_assert_ptr_nonnull (cat);
    keel_catalog_set_listener (cat, s_on_event, &s_events);
    return cat;
}

static const event_t *
s_last_event (void)
{
    ck_assert_uint_gt (s_events.count, 0);
    ck_assert_uint_le (s_events.count, 64);
    return &s_events.log[s_events.count - 1];
}

static void
s_done (keel_catalog_t **cat_p)
{
    ck_assert (!s_events.broken);
    ck_assert_uint_eq (s_events.count, keel_catalog_index (*cat_p));
    keel_catalog_destroy (cat_p);
    ck_assert_ptr_null (*cat_p);
}

// ---------------------------------------------------------------------------
//  Basics

START_TEST (test_new_destroy)
{
    keel_catalog_t *cat = keel_catalog_new (NULL);
    ck_assert_ptr_nonnull (cat);
    ck_assert_uint_eq (keel_catalog_index (cat), 0);
    ck_assert_uint_eq (keel_catalog_size (cat), 0);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), -1);
    ck_assert_ptr_null (keel_catalog_next_check (cat, 0));
    ck_assert_ptr_null (keel_catalog_get (cat, "nobody", 0));
    ck_assert_ptr_null (keel_catalog_get (cat, NULL, 0));
    Keel__Instance **list = NULL;
    ck_assert_uint_eq (keel_catalog_list (cat, NULL, 0, &list), 0);
    ck_assert_ptr_nonnull (list);
    keel_catalog_tick (cat, 1000000);
    keel_catalog_destroy (&cat);
    ck_assert_ptr_null (cat);
    keel_catalog_destroy (&cat);

    //  Events without a listener still count.
    cat = keel_catalog_new (NULL);
    s_add_plain (cat, "a", "svc", 0);
    ck_assert_uint_eq (keel_catalog_index (cat), 1);
    keel_catalog_destroy (&cat);
}
END_TEST

START_TEST (test_register_get)
{
    keel_catalog_t *cat = s_catalog (NULL);
    char id[] = "web-1";
    char tag[] = "blue";
    spec_t spec;
    s_spec (&spec, id, "web");
    spec.inst.endpoint = "http://10.0.0.1:8080";
    spec.inst.weight = 7;
    s_spec_tag (&spec, tag);
    s_spec_tag (&spec, "v2");
    s_spec_meta (&spec, "zone", "eu-1");
    //  Health and modify_index in the request are ignored.
    spec.health.status = CRITICAL;
    spec.health.output = "lies";
    spec.inst.health = &spec.health;
    spec.inst.modify_index = 99;

    ck_assert_int_eq (s_register (cat, &spec, 100), KEEL_OK);
    ck_assert_uint_eq (keel_catalog_index (cat), 1);
    ck_assert_uint_eq (keel_catalog_size (cat), 1);
    ck_assert_uint_eq (s_events.count, 1);
    const event_t *ev = s_last_event ();
    ck_assert_str_eq (ev->type, "registry.registered");
    ck_assert_str_eq (ev->id, "web-1");
    ck_assert_uint_eq (ev->index, 1);
    ck_assert_int_eq (ev->status, PASSING);

    //  A deep copy: the caller's buffers are its own.
    id[0] = 'X';
    tag[0] = 'X';
    const Keel__Instance *got = keel_catalog_get (cat, "web-1", 150);
    ck_assert_ptr_nonnull (got);
    ck_assert_ptr_ne (got, &spec.inst);
    ck_assert_str_eq (got->id, "web-1");
    ck_assert_str_eq (got->service, "web");
    ck_assert_str_eq (got->endpoint, "http://10.0.0.1:8080");
    ck_assert_uint_eq (got->weight, 7);
    ck_assert_uint_eq (got->n_tags, 2);
    ck_assert_str_eq (got->tags[0], "blue");
    ck_assert_str_eq (got->tags[1], "v2");
    ck_assert_uint_eq (got->n_meta, 1);
    ck_assert_str_eq (got->meta[0]->key, "zone");
    ck_assert_str_eq (got->meta[0]->value, "eu-1");
    ck_assert_uint_eq (got->modify_index, 1);
    ck_assert_ptr_nonnull (got->health);
    ck_assert_int_eq (got->health->status, PASSING);
    ck_assert_str_eq (got->health->output, "");
    ck_assert_uint_eq (got->health->last_check_age_ms, 0);
    ck_assert_ptr_null (keel_catalog_get (cat, "Xeb-1", 150));

    //  No check: nothing is ever due.
    ck_assert_int_eq (keel_catalog_next_deadline (cat), -1);
    keel_catalog_tick (cat, 1000000000);
    ck_assert_ptr_null (keel_catalog_next_check (cat, 1000000000));
    ck_assert_int_eq (s_status (cat, "web-1", 1000000000), PASSING);
    ck_assert_uint_eq (keel_catalog_index (cat), 1);

    //  The stored copy packs like any message.
    size_t size = keel__instance__get_packed_size (got);
    uint8_t *buffer = (uint8_t *)malloc (size);
    keel__instance__pack (got, buffer);
    Keel__Instance *back = keel__instance__unpack (NULL, size, buffer);
    ck_assert_ptr_nonnull (back);
    ck_assert_str_eq (back->id, "web-1");
    ck_assert_int_eq (back->health->status, PASSING);
    keel__instance__free_unpacked (back, NULL);
    free (buffer);
    s_done (&cat);
}
END_TEST

START_TEST (test_update)
{
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "a-1", "alpha");
    s_spec_tag (&spec, "one");
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    s_add_plain (cat, "b-1", "alpha", 0);

    //  Same id again: an update, with a new index, even with equal content.
    ck_assert_int_eq (s_register (cat, &spec, 10), KEEL_OK);
    ck_assert_uint_eq (keel_catalog_index (cat), 3);
    ck_assert_str_eq (s_last_event ()->type, "registry.updated");
    ck_assert_str_eq (s_last_event ()->id, "a-1");
    ck_assert_int_eq (s_last_event ()->previous, PASSING);
    ck_assert_uint_eq (keel_catalog_size (cat), 2);
    ck_assert_uint_eq (keel_catalog_get (cat, "a-1", 10)->modify_index, 3);
    ck_assert_uint_eq (keel_catalog_get (cat, "b-1", 10)->modify_index, 2);

    //  New content replaces the old.
    spec.inst.n_tags = 0;
    s_spec_tag (&spec, "two");
    spec.inst.endpoint = "inproc://alpha-1";
    ck_assert_int_eq (s_register (cat, &spec, 20), KEEL_OK);
    const Keel__Instance *got = keel_catalog_get (cat, "a-1", 20);
    ck_assert_uint_eq (got->n_tags, 1);
    ck_assert_str_eq (got->tags[0], "two");
    ck_assert_str_eq (got->endpoint, "inproc://alpha-1");
    ck_assert_uint_eq (got->modify_index, 4);

    //  A new service name moves it.
    spec.inst.service = "beta";
    ck_assert_int_eq (s_register (cat, &spec, 30), KEEL_OK);
    Keel__Instance **list;
    ck_assert_uint_eq (keel_catalog_list (cat, "alpha", 30, &list), 1);
    ck_assert_str_eq (list[0]->id, "b-1");
    ck_assert_uint_eq (keel_catalog_list (cat, "beta", 30, &list), 1);
    ck_assert_str_eq (list[0]->id, "a-1");
    Keel__DiscoverRequest query = KEEL__DISCOVER_REQUEST__INIT;
    query.service = "beta";
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 30, &list, NULL), 1);
    query.service = "alpha";
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 30, &list, NULL), 1);
    ck_assert_str_eq (list[0]->id, "b-1");

    //  The last instance of a service leaves: the service is gone.
    spec.inst.service = "alpha";
    ck_assert_int_eq (s_register (cat, &spec, 40), KEEL_OK);
    ck_assert_uint_eq (keel_catalog_list (cat, "beta", 40, &list), 0);
    ck_assert_uint_eq (keel_catalog_list (cat, "alpha", 40, &list), 2);
    ck_assert_uint_eq (keel_catalog_index (cat), 6);
    s_done (&cat);
}
END_TEST

START_TEST (test_update_keeps_or_resets_health)
{
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "t-1", "svc");
    s_spec_ttl (&spec, 1000);
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    ck_assert_int_eq (
        keel_catalog_heartbeat (cat, "t-1", CRITICAL, "disk full", 100),
        KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t-1", 100), CRITICAL);

    //  Same check (defaults written out are the same check): health kept.
    s_spec_tag (&spec, "new-tag");
    spec.check.successes_before_passing = 1;
    spec.check.failures_before_critical = 1;
    ck_assert_int_eq (s_register (cat, &spec, 200), KEEL_OK);
    ck_assert_str_eq (s_last_event ()->type, "registry.updated");
    ck_assert_int_eq (s_last_event ()->status, CRITICAL);
    const Keel__Instance *got = keel_catalog_get (cat, "t-1", 200);
    ck_assert_int_eq (got->health->status, CRITICAL);
    ck_assert_str_eq (got->health->output, "disk full");
    ck_assert_uint_eq (got->health->last_check_age_ms, 100);
    //  The TTL check's silence was not restarted by the update either: it is
    //  critical already, so nothing is pending.
    ck_assert_int_eq (keel_catalog_next_deadline (cat), -1);

    //  A different check: health starts over, and the registration is the
    //  first heartbeat.
    spec.check.ttl_ms = 2000;
    ck_assert_int_eq (s_register (cat, &spec, 300), KEEL_OK);
    ck_assert_str_eq (s_last_event ()->type, "registry.updated");
    ck_assert_int_eq (s_last_event ()->previous, CRITICAL);
    ck_assert_int_eq (s_last_event ()->status, PASSING);
    got = keel_catalog_get (cat, "t-1", 300);
    ck_assert_int_eq (got->health->status, PASSING);
    ck_assert_str_eq (got->health->output, "");
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 2300);

    //  Dropping the check: PASSING, nothing pending.
    spec.inst.check = NULL;
    ck_assert_int_eq (s_register (cat, &spec, 400), KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t-1", 400), PASSING);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), -1);
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "t-1", PASSING, NULL, 400),
                      KEEL_ERR_INVALID_ARGUMENT);

    //  An active check added: UNKNOWN until it runs.
    s_spec_check (&spec)->bus_ping = true;
    spec.check.ttl_ms = 0;
    ck_assert_int_eq (s_register (cat, &spec, 500), KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t-1", 500), UNKNOWN);
    ck_assert_int_eq (s_last_event ()->previous, PASSING);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 500);
    s_done (&cat);
}
END_TEST

START_TEST (test_deregister)
{
    keel_catalog_t *cat = s_catalog (NULL);
    s_add_plain (cat, "a", "svc", 0);
    s_add_plain (cat, "b", "svc", 0);
    uint64_t index = 0;
    ck_assert_int_eq (keel_catalog_deregister (cat, "nobody", 5, &index),
                      KEEL_ERR_NOT_FOUND);
    ck_assert_int_eq (keel_catalog_deregister (cat, NULL, 5, NULL),
                      KEEL_ERR_NOT_FOUND);
    ck_assert_uint_eq (index, 0);
    ck_assert_uint_eq (keel_catalog_index (cat), 2);

    ck_assert_int_eq (keel_catalog_deregister (cat, "a", 10, &index), KEEL_OK);
    ck_assert_uint_eq (index, 3);
    const event_t *ev = s_last_event ();
    ck_assert_str_eq (ev->type, "registry.deregistered");
    ck_assert_str_eq (ev->id, "a");
    ck_assert_str_eq (ev->reason, "deregistered");
    ck_assert_int_eq (ev->status, PASSING); //  as it was
    ck_assert_uint_eq (ev->index, 3);
    ck_assert_ptr_null (keel_catalog_get (cat, "a", 10));
    ck_assert_uint_eq (keel_catalog_size (cat), 1);
    ck_assert_int_eq (keel_catalog_deregister (cat, "a", 10, NULL),
                      KEEL_ERR_NOT_FOUND);

    Keel__Instance **list;
    ck_assert_uint_eq (keel_catalog_list (cat, NULL, 10, &list), 1);
    ck_assert_str_eq (list[0]->id, "b");
    ck_assert_int_eq (keel_catalog_deregister (cat, "b", 10, NULL), KEEL_OK);
    ck_assert_uint_eq (keel_catalog_list (cat, "svc", 10, &list), 0);
    ck_assert_uint_eq (keel_catalog_list (cat, "", 10, &list), 0);

    //  The id can come back: a registration, not an update.
    s_add_plain (cat, "a", "svc", 20);
    ck_assert_str_eq (s_last_event ()->type, "registry.registered");
    ck_assert_uint_eq (keel_catalog_index (cat), 5);
    s_done (&cat);
}
END_TEST

// ---------------------------------------------------------------------------
//  Validation and limits

//  Register `spec`; it must fail with `code` and leave the catalog as it was.
static void
s_refused (keel_catalog_t *cat, spec_t *spec, int code, const char *what)
{
    uint64_t index_before = keel_catalog_index (cat);
    size_t size_before = keel_catalog_size (cat);
    size_t events_before = s_events.count;
    int64_t deadline_before = keel_catalog_next_deadline (cat);
    const char *error = NULL;
    uint64_t index = 12345;
    int rc = keel_catalog_register (cat, spec ? &spec->inst : NULL, 0, &index,
                                    &error);
    ck_assert_msg (rc == code, "%s: rc %d, expected %d", what, rc, code);
    ck_assert_msg (error && *error, "%s: no reason", what);
    ck_assert_uint_eq (index, 12345);
    ck_assert_uint_eq (keel_catalog_index (cat), index_before);
    ck_assert_uint_eq (keel_catalog_size (cat), size_before);
    ck_assert_uint_eq (s_events.count, events_before);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), deadline_before);
    //  error_p and index_p may be NULL.
    if (spec)
        ck_assert_int_eq (
            keel_catalog_register (cat, &spec->inst, 0, NULL, NULL), code);
}

//  A tcp endpoint may carry its server's CURVE key, and nothing else.
START_TEST (test_endpoint_key)
{
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "sec-1", "sec");
    spec.inst.endpoint =
        "tcp://10.0.0.1:7700;curve=rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    ck_assert_int_eq (s_register (cat, &spec, 100), KEEL_OK);
    const char *bad[] = {
        "tcp://10.0.0.1:7700;curve=short",
        "tcp://10.0.0.1:7700;curve=rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7x",
        "tcp://10.0.0.1:7700;key=rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
        "tcp://10.0.0.1:7700;",
        "http://10.0.0.1:80;curve=rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_spec (&spec, "sec-2", "sec");
        spec.inst.endpoint = (char *)bad[i];
        s_refused (cat, &spec, KEEL_ERR_INVALID_ARGUMENT, bad[i]);
    }
    keel_catalog_destroy (&cat);
}
END_TEST

START_TEST (test_validation)
{
    keel_catalog_limits_t limits = {
        .max_tags = 3, .max_meta = 2, .max_string = 16, .max_endpoint = 40};
    keel_catalog_t *cat = s_catalog (&limits);
    //  Something in it, so "unchanged" means something.
    spec_t spec;
    s_spec (&spec, "keep", "svc");
    s_spec_ttl (&spec, 500);
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);

    s_refused (cat, NULL, KEEL_ERR_INVALID_ARGUMENT, "NULL instance");

    struct {
        const char *id;
        const char *service;
        const char *endpoint;
    } names[] = {
        {"", "svc", "tcp://h:1"},
        {NULL, "svc", "tcp://h:1"},
        {"x", "", "tcp://h:1"},
        {"x", NULL, "tcp://h:1"},
        {"0123456789abcdefX", "svc", "tcp://h:1"}, //  17 > max_string
        {"x", "0123456789abcdefX", "tcp://h:1"},
        {"a b", "svc", "tcp://h:1"},
        {"a/b", "svc", "tcp://h:1"},
        {"x", "s*v", "tcp://h:1"},
        {"x", "s\xc3\xa9", "tcp://h:1"},
        {"x", "svc", ""},
        {"x", "svc", NULL},
        {"x", "svc", "tcp://h"},
        {"x", "svc", "tcp://h:"},
        {"x", "svc", "tcp://:80"},
        {"x", "svc", "tcp://h:0"},
        {"x", "svc", "tcp://h:65536"},
        {"x", "svc", "tcp://h:123456"},
        {"x", "svc", "tcp://h:80/x"},
        {"x", "svc", "tcp://h:8a"},
        {"x", "svc", "tcp://h:-1"},
        {"x", "svc", "tcp://[::1:80"},
        {"x", "svc", "tcp://[]:80"},
        {"x", "svc", "tcp://h h:80"},
        {"x", "svc", "inproc://"},
        {"x", "svc", "ipc://"},
        {"x", "svc", "http://h"},
        {"x", "svc", "http://h:80x"},
        {"x", "svc", "http://h:0/"},
        {"x", "svc", "udp://h:80"},
        {"x", "svc", "h:80"},
        {"x", "svc", "TCP://h:80"},
        {"x", "svc", "tcp://h:80\n"},
        {"x", "svc", "http://h:80/a b"},
        {"x", "svc", "tcp://01234567890123456789012345678901:80"}, //  41
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        spec_t bad;
        s_spec (&bad, names[i].id, names[i].service);
        bad.inst.endpoint = (char *)names[i].endpoint;
        char what[96];
        snprintf (what, sizeof what, "case %zu (%s)", i,
                  names[i].endpoint ? names[i].endpoint : "NULL");
        s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, what);
    }

    //  Tags and meta.
    spec_t bad;
    s_spec (&bad, "x", "svc");
    for (int i = 0; i < 4; i++)
        s_spec_tag (&bad, "t");
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "too many tags");
    s_spec (&bad, "x", "svc");
    s_spec_tag (&bad, "");
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "empty tag");
    s_spec (&bad, "x", "svc");
    s_spec_tag (&bad, NULL);
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "NULL tag");
    s_spec (&bad, "x", "svc");
    s_spec_tag (&bad, "0123456789abcdefX");
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "long tag");
    s_spec (&bad, "x", "svc");
    s_spec_meta (&bad, "a", "1");
    s_spec_meta (&bad, "b", "2");
    s_spec_meta (&bad, "c", "3");
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "too much meta");
    s_spec (&bad, "x", "svc");
    s_spec_meta (&bad, "", "1");
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "empty meta key");
    s_spec (&bad, "x", "svc");
    s_spec_meta (&bad, NULL, "1");
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "NULL meta key");
    s_spec (&bad, "x", "svc");
    s_spec_meta (&bad, "0123456789abcdefX", "1");
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "long meta key");
    s_spec (&bad, "x", "svc");
    s_spec_meta (&bad, "k", "0123456789abcdefX");
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "long meta value");
    s_spec (&bad, "x", "svc");
    s_spec_meta (&bad, "k", "1");
    bad.meta[0] = NULL;
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "NULL meta pair");

    //  Checks.
    uint32_t too_short[] = {1, 5, 9};
    for (size_t i = 0; i < 3; i++) {
        s_spec (&bad, "x", "svc");
        s_spec_ttl (&bad, too_short[i]);
        s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "ttl_ms 1..9");
        s_spec (&bad, "x", "svc");
        s_spec_check (&bad)->bus_ping = true;
        bad.check.interval_ms = too_short[i];
        s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "interval_ms 1..9");
    }
    s_spec (&bad, "x", "svc");
    s_spec_ttl (&bad, 100);
    bad.check.successes_before_passing = 101;
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "successes > 100");
    s_spec (&bad, "x", "svc");
    s_spec_ttl (&bad, 100);
    bad.check.failures_before_critical = 101;
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "failures > 100");
    s_spec (&bad, "x", "svc");
    s_spec_check (&bad)->http_path = "/health";
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "http_path on tcp://");
    s_spec (&bad, "x", "svc");
    bad.inst.endpoint = "http://h:80";
    s_spec_check (&bad)->http_path = "health";
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "http_path without /");
    s_spec (&bad, "x", "svc");
    bad.inst.endpoint = "http://h:80";
    s_spec_check (&bad)->http_path = "/he alth";
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "http_path with space");
    s_spec (&bad, "x", "svc");
    bad.inst.endpoint = "http://h:80";
    s_spec_check (&bad)->bus_ping = true;
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "bus_ping on http://");
    s_spec (&bad, "x", "svc");
    bad.inst.endpoint = "inproc://x";
    s_spec_check (&bad)->tcp_connect = true;
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "tcp_connect on inproc");
    s_spec (&bad, "x", "svc");
    bad.inst.endpoint = "ipc:///tmp/x";
    s_spec_check (&bad)->tcp_connect = true;
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "tcp_connect on ipc");

    //  A refused update leaves the old registration in place.
    s_spec (&bad, "keep", "svc");
    bad.inst.endpoint = "nope";
    s_refused (cat, &bad, KEEL_ERR_INVALID_ARGUMENT, "bad update");
    ck_assert_str_eq (keel_catalog_get (cat, "keep", 0)->endpoint,
                      "tcp://127.0.0.1:5555");

    //  What is accepted, at the edges.
    const char *good[] = {
        "tcp://h:1",
        "tcp://h:65535",
        "tcp://10.1.2.3:5555",
        "tcp://[::1]:5555",
        "tcp://[fe80::1%eth0]:80",
        "tcp://my-host_1.example.com:9",
        "inproc://x",
        "ipc:///tmp/keel.sock",
        "http://h:8080",
        "http://h:8080/",
        "http://h:8080/a/b?c=d",
        "tcp://0123456789012345678901234567890:80", //  40 = max_endpoint
    };
    size_t size = keel_catalog_size (cat);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char id[16];
        snprintf (id, sizeof id, "good-%zu", i);
        spec_t ok;
        s_spec (&ok, id, "Svc.v1_x:y-z");
        ok.inst.endpoint = (char *)good[i];
        ck_assert_msg (s_register (cat, &ok, 0) == KEEL_OK, "%s", good[i]);
    }
    ck_assert_uint_eq (keel_catalog_size (cat), size + 12);
    spec_t ok;
    s_spec (&ok, "0123456789abcdef", "0123456789abcdef"); //  16 = max_string
    s_spec_tag (&ok, "0123456789abcdef");
    s_spec_tag (&ok, "t2");
    s_spec_tag (&ok, "t3");
    s_spec_meta (&ok, "0123456789abcdef", "0123456789abcdef");
    s_spec_meta (&ok, "empty", "");
    s_spec_meta (&ok, "null", NULL);
    ok.inst.n_meta = 2; //  max_meta; the NULL value is checked below
    ok.inst.endpoint = "http://h:80";
    s_spec_check (&ok)->http_path = "/health";
    ok.check.tcp_connect = true;
    ok.check.successes_before_passing = 100;
    ok.check.failures_before_critical = 100;
    ok.check.ttl_ms = 10;
    ok.check.interval_ms = 10;
    ck_assert_int_eq (s_register (cat, &ok, 0), KEEL_OK);
    s_spec (&ok, "nullvalue", "svc");
    s_spec_meta (&ok, "k", NULL);
    ck_assert_int_eq (s_register (cat, &ok, 0), KEEL_OK);
    ck_assert_str_eq (keel_catalog_get (cat, "nullvalue", 0)->meta[0]->value,
                      "");
    s_spec (&ok, "ping-ipc", "svc");
    ok.inst.endpoint = "ipc:///tmp/x";
    s_spec_check (&ok)->bus_ping = true;
    ck_assert_int_eq (s_register (cat, &ok, 0), KEEL_OK);
    s_done (&cat);
}
END_TEST

START_TEST (test_limits)
{
    keel_catalog_limits_t limits = {.max_instances = 3};
    keel_catalog_t *cat = s_catalog (&limits);
    s_add_plain (cat, "a", "svc", 0);
    s_add_plain (cat, "b", "svc", 0);
    s_add_plain (cat, "c", "svc", 0);
    spec_t spec;
    s_spec (&spec, "d", "svc");
    s_refused (cat, &spec, KEEL_ERR_CONFLICT, "max_instances");
    //  Updates of known ids are fine when full.
    s_add_plain (cat, "b", "other", 0);
    ck_assert_str_eq (s_last_event ()->type, "registry.updated");
    //  Room again after a deregistration.
    ck_assert_int_eq (keel_catalog_deregister (cat, "a", 0, NULL), KEEL_OK);
    s_add_plain (cat, "d", "svc", 0);
    ck_assert_uint_eq (keel_catalog_size (cat), 3);
    s_done (&cat);

    //  Defaults: 64 tags and 64 meta pairs, 256-byte strings, 512-byte
    //  endpoints.
    cat = s_catalog (NULL);
    s_spec (&spec, "x", "svc");
    for (int i = 0; i < 64; i++)
        s_spec_tag (&spec, "t");
    for (int i = 0; i < 64; i++)
        s_spec_meta (&spec, "k", "v");
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    s_spec_tag (&spec, "t");
    s_refused (cat, &spec, KEEL_ERR_INVALID_ARGUMENT, "65 tags");
    spec.inst.n_tags = 64;
    s_spec_meta (&spec, "k", "v");
    s_refused (cat, &spec, KEEL_ERR_INVALID_ARGUMENT, "65 meta");

    char long_id[258];
    memset (long_id, 'i', 256);
    long_id[256] = 0;
    s_spec (&spec, long_id, "svc");
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    long_id[256] = 'i';
    long_id[257] = 0;
    s_spec (&spec, long_id, "svc");
    s_refused (cat, &spec, KEEL_ERR_INVALID_ARGUMENT, "257-byte id");

    char endpoint[600];
    strcpy (endpoint, "inproc://");
    memset (endpoint + 9, 'e', 503);
    endpoint[512] = 0;
    s_spec (&spec, "y", "svc");
    spec.inst.endpoint = endpoint;
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    endpoint[512] = 'e';
    endpoint[513] = 0;
    s_spec (&spec, "z", "svc");
    spec.inst.endpoint = endpoint;
    s_refused (cat, &spec, KEEL_ERR_INVALID_ARGUMENT, "513-byte endpoint");
    s_done (&cat);
}
END_TEST

// ---------------------------------------------------------------------------
//  TTL checks

START_TEST (test_ttl_expiry)
{
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "t", "svc");
    s_spec_ttl (&spec, 1000);
    ck_assert_int_eq (s_register (cat, &spec, 5000), KEEL_OK);
    //  Registration is a heartbeat: PASSING at once.
    ck_assert_int_eq (s_status (cat, "t", 5000), PASSING);
    ck_assert_str_eq (s_last_event ()->type, "registry.registered");
    ck_assert_int_eq (s_last_event ()->status, PASSING);
    const Keel__Instance *got = keel_catalog_get (cat, "t", 5400);
    ck_assert_uint_eq (got->health->last_check_age_ms, 400);
    ck_assert_uint_eq (got->health->consecutive_successes, 1);
    //  Defaults written into the stored check.
    ck_assert_uint_eq (got->check->successes_before_passing, 1);
    ck_assert_uint_eq (got->check->failures_before_critical, 1);

    ck_assert_int_eq (keel_catalog_next_deadline (cat), 6000);
    keel_catalog_tick (cat, 5999);
    ck_assert_int_eq (s_status (cat, "t", 5999), PASSING);
    ck_assert_uint_eq (keel_catalog_index (cat), 1);
    keel_catalog_tick (cat, 6000);
    ck_assert_int_eq (s_status (cat, "t", 6000), CRITICAL);
    ck_assert_uint_eq (keel_catalog_index (cat), 2);
    const event_t *ev = s_last_event ();
    ck_assert_str_eq (ev->type, "registry.health");
    ck_assert_str_eq (ev->reason, "ttl expired");
    ck_assert_int_eq (ev->previous, PASSING);
    ck_assert_int_eq (ev->status, CRITICAL);
    ck_assert_uint_eq (ev->age_ms, 0);
    got = keel_catalog_get (cat, "t", 6000);
    ck_assert_str_eq (got->health->output, "ttl expired");
    ck_assert_uint_eq (got->health->consecutive_failures, 1);
    ck_assert_uint_eq (got->modify_index, 2);
    //  Critical with nothing to break: nothing pending, no more events.
    ck_assert_int_eq (keel_catalog_next_deadline (cat), -1);
    keel_catalog_tick (cat, 100000);
    ck_assert_uint_eq (keel_catalog_index (cat), 2);

    //  A heartbeat brings it back and restarts the clock.
    ck_assert_int_eq (
        keel_catalog_heartbeat (cat, "t", PASSING, "all good", 100500),
        KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t", 100500), PASSING);
    ev = s_last_event ();
    ck_assert_str_eq (ev->type, "registry.health");
    ck_assert_str_eq (ev->reason, "all good");
    ck_assert_int_eq (ev->previous, CRITICAL);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 101500);
    //  Heartbeats that change nothing are not events.
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "t", UNKNOWN, NULL, 101000),
                      KEEL_OK);
    ck_assert_uint_eq (keel_catalog_index (cat), 3);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 102000);
    ck_assert_str_eq (keel_catalog_get (cat, "t", 101000)->health->output, "");
    keel_catalog_tick (cat, 101999);
    ck_assert_int_eq (s_status (cat, "t", 101999), PASSING);
    keel_catalog_tick (cat, 102000);
    ck_assert_int_eq (s_status (cat, "t", 102000), CRITICAL);
    s_done (&cat);
}
END_TEST

START_TEST (test_heartbeat_status)
{
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "t", "svc");
    s_spec_ttl (&spec, 1000);
    spec.check.successes_before_passing = 3;
    spec.check.failures_before_critical = 3;
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t", 0), UNKNOWN);
    s_add_plain (cat, "plain", "svc", 0);

    ck_assert_int_eq (keel_catalog_heartbeat (cat, "nobody", PASSING, NULL, 0),
                      KEEL_ERR_NOT_FOUND);
    ck_assert_int_eq (keel_catalog_heartbeat (cat, NULL, PASSING, NULL, 0),
                      KEEL_ERR_NOT_FOUND);
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "plain", PASSING, NULL, 0),
                      KEEL_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq (
        keel_catalog_heartbeat (cat, "t", (Keel__HealthStatus)7, NULL, 0),
        KEEL_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq (keel_catalog_index (cat), 2);

    //  WARNING is believed at once, and discoverable.
    ck_assert_int_eq (
        keel_catalog_heartbeat (cat, "t", WARNING, "queue deep", 100), KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t", 100), WARNING);
    ck_assert_str_eq (s_last_event ()->reason, "queue deep");
    ck_assert_int_eq (s_last_event ()->previous, UNKNOWN);
    Keel__DiscoverRequest query = KEEL__DISCOVER_REQUEST__INIT;
    query.service = "svc";
    Keel__Instance **list;
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 100, &list, NULL),
                       2);
    //  WARNING -> PASSING on the service's word, no streak needed.
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "t", PASSING, NULL, 200),
                      KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t", 200), PASSING);
    ck_assert_str_eq (s_last_event ()->reason, "heartbeat: passing");

    //  CRITICAL is believed at once, despite failures_before_critical 3.
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "t", CRITICAL, NULL, 300),
                      KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t", 300), CRITICAL);
    ck_assert_str_eq (s_last_event ()->reason, "heartbeat: critical");
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 300, &list, NULL),
                       1);
    ck_assert_str_eq (list[0]->id, "plain");
    //  ...and leaving CRITICAL takes the full streak of 3.
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "t", PASSING, NULL, 400),
                      KEEL_OK);
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "t", PASSING, NULL, 500),
                      KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t", 500), CRITICAL);
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "t", PASSING, NULL, 600),
                      KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t", 600), PASSING);
    //  WARNING from CRITICAL is believed at once too.
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "t", CRITICAL, NULL, 700),
                      KEEL_OK);
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "t", WARNING, NULL, 800),
                      KEEL_OK);
    ck_assert_int_eq (s_status (cat, "t", 800), WARNING);
    ck_assert_str_eq (s_last_event ()->reason, "heartbeat: warning");
    //  Silence counts against WARNING too.
    keel_catalog_tick (cat, 3800);
    ck_assert_int_eq (s_status (cat, "t", 3800), CRITICAL);
    s_done (&cat);
}
END_TEST

START_TEST (test_ttl_antiflap)
{
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "t", "svc");
    s_spec_ttl (&spec, 100);
    spec.check.successes_before_passing = 3;
    spec.check.failures_before_critical = 3;
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK); //  success 1
    ck_assert_int_eq (s_status (cat, "t", 0), UNKNOWN);
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 50); //  2
    ck_assert_int_eq (s_status (cat, "t", 50), UNKNOWN);
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 90); //  3
    ck_assert_int_eq (s_status (cat, "t", 90), PASSING);
    ck_assert_uint_eq (keel_catalog_index (cat), 2);

    //  Two missed periods keep it PASSING; the third makes it CRITICAL.
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 190);
    keel_catalog_tick (cat, 190);
    ck_assert_int_eq (s_status (cat, "t", 190), PASSING);
    ck_assert_uint_eq (
        keel_catalog_get (cat, "t", 190)->health->consecutive_failures, 1);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 290);
    keel_catalog_tick (cat, 290);
    ck_assert_int_eq (s_status (cat, "t", 290), PASSING);
    keel_catalog_tick (cat, 389);
    ck_assert_int_eq (s_status (cat, "t", 389), PASSING);
    ck_assert_uint_eq (keel_catalog_index (cat), 2);
    keel_catalog_tick (cat, 390);
    ck_assert_int_eq (s_status (cat, "t", 390), CRITICAL);
    ck_assert_uint_eq (
        keel_catalog_get (cat, "t", 390)->health->consecutive_failures, 3);
    ck_assert_uint_eq (keel_catalog_index (cat), 3);

    //  Recovery: two heartbeats keep it CRITICAL, the third passes.
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 400);
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 410);
    ck_assert_int_eq (s_status (cat, "t", 410), CRITICAL);
    ck_assert_uint_eq (
        keel_catalog_get (cat, "t", 410)->health->consecutive_successes, 2);
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 420);
    ck_assert_int_eq (s_status (cat, "t", 420), PASSING);
    ck_assert_uint_eq (keel_catalog_index (cat), 4);

    //  A failure in between breaks a streak: fail to CRITICAL, then two
    //  successes, a missed period, two successes: still CRITICAL.
    keel_catalog_tick (cat, 720);
    ck_assert_int_eq (s_status (cat, "t", 720), CRITICAL);
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 730);
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 740);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 840);
    keel_catalog_tick (cat, 840); //  the silence breaks the streak
    ck_assert_int_eq (keel_catalog_next_deadline (cat), -1);
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 850);
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 860);
    ck_assert_int_eq (s_status (cat, "t", 860), CRITICAL);
    keel_catalog_heartbeat (cat, "t", PASSING, NULL, 870);
    ck_assert_int_eq (s_status (cat, "t", 870), PASSING);
    s_done (&cat);
}
END_TEST

START_TEST (test_deregister_critical_after)
{
    keel_catalog_t *cat = s_catalog (NULL);
    //  Never heard from after registering: removed at ttl + after.
    spec_t spec;
    s_spec (&spec, "silent", "svc");
    s_spec_ttl (&spec, 1000);
    spec.check.deregister_critical_after_ms = 5000;
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    //  Recovers in time: stays.
    s_spec (&spec, "back", "svc");
    s_spec_ttl (&spec, 1000);
    spec.check.deregister_critical_after_ms = 5000;
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);

    ck_assert_int_eq (keel_catalog_next_deadline (cat), 1000);
    keel_catalog_tick (cat, 1000);
    ck_assert_int_eq (s_status (cat, "silent", 1000), CRITICAL);
    ck_assert_int_eq (s_status (cat, "back", 1000), CRITICAL);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 6000);
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "back", PASSING, NULL, 5999),
                      KEEL_OK);
    keel_catalog_tick (cat, 5999);
    ck_assert_uint_eq (keel_catalog_size (cat), 2);
    uint64_t index = keel_catalog_index (cat);
    keel_catalog_tick (cat, 6000);
    ck_assert_uint_eq (keel_catalog_size (cat), 1);
    ck_assert_ptr_null (keel_catalog_get (cat, "silent", 6000));
    ck_assert_int_eq (s_status (cat, "back", 6000), PASSING);
    ck_assert_uint_eq (keel_catalog_index (cat), index + 1);
    const event_t *ev = s_last_event ();
    ck_assert_str_eq (ev->type, "registry.deregistered");
    ck_assert_str_eq (ev->id, "silent");
    ck_assert_str_eq (ev->reason, "critical too long");
    ck_assert_int_eq (ev->status, CRITICAL);
    ck_assert_int_eq (keel_catalog_deregister (cat, "silent", 6000, NULL),
                      KEEL_ERR_NOT_FOUND);
    //  "back" is pending its ttl only.
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 6999);
    s_done (&cat);
}
END_TEST

START_TEST (test_late_tick)
{
    //  One tick long after everything was due does it all, in order, at the
    //  times it was due.
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "t", "svc");
    s_spec_ttl (&spec, 100);
    spec.check.failures_before_critical = 3;
    spec.check.deregister_critical_after_ms = 1000;
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    s_spec (&spec, "u", "svc");
    s_spec_ttl (&spec, 500);
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    keel_catalog_tick (cat, 1000000);
    //  t: critical at 300, removed at 1300; u: critical at 500.
    ck_assert_uint_eq (s_events.count, 5);
    ck_assert_str_eq (s_events.log[2].id, "t");
    ck_assert_str_eq (s_events.log[2].type, "registry.health");
    ck_assert_str_eq (s_events.log[3].id, "u");
    ck_assert_str_eq (s_events.log[3].type, "registry.health");
    ck_assert_str_eq (s_events.log[4].id, "t");
    ck_assert_str_eq (s_events.log[4].type, "registry.deregistered");
    ck_assert_uint_eq (s_events.log[4].age_ms, 1000); //  last check at 300
    //  u's last check was the expiry at 500.
    ck_assert_uint_eq (
        keel_catalog_get (cat, "u", 1000000)->health->last_check_age_ms,
        999500);
    ck_assert_uint_eq (keel_catalog_size (cat), 1);
    s_done (&cat);
}
END_TEST

START_TEST (test_kill_scenario)
{
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "svc-1", "orders");
    s_spec_ttl (&spec, 3000);
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    s_add_plain (cat, "svc-2", "orders", 0);
    Keel__DiscoverRequest query = KEEL__DISCOVER_REQUEST__INIT;
    query.service = "orders";
    Keel__Instance **list;

    //  The shell's loop: tick at the deadline, heartbeats every second.
    int64_t last_beat = 0;
    for (int64_t now = 0; now <= 20000; now += 10) {
        int64_t deadline = keel_catalog_next_deadline (cat);
        ck_assert (deadline == -1 || deadline >= now); //  never overdue
        if (deadline == now)
            keel_catalog_tick (cat, now);
        if (now % 1000 == 0 && now <= 10000) {
            ck_assert_int_eq (
                keel_catalog_heartbeat (cat, "svc-1", PASSING, NULL, now),
                KEEL_OK);
            last_beat = now;
        }
        size_t found = keel_catalog_discover (cat, &query, now, &list, NULL);
        if (now < last_beat + 3000) {
            ck_assert_int_eq (s_status (cat, "svc-1", now), PASSING);
            ck_assert_uint_eq (found, 2);
        } else {
            ck_assert_int_eq (s_status (cat, "svc-1", now), CRITICAL);
            ck_assert_uint_eq (found, 1);
            ck_assert_str_eq (list[0]->id, "svc-2");
        }
    }
    ck_assert_int_eq (last_beat, 10000);
    //  One change only: the death, at 13000.
    ck_assert_uint_eq (keel_catalog_index (cat), 3);
    ck_assert_str_eq (s_last_event ()->type, "registry.health");
    ck_assert_uint_eq (
        keel_catalog_get (cat, "svc-1", 20000)->health->last_check_age_ms,
        7000);
    s_done (&cat);
}
END_TEST

START_TEST (test_output_truncated)
{
    keel_catalog_limits_t limits = {.max_string = 8};
    keel_catalog_t *cat = s_catalog (&limits);
    spec_t spec;
    s_spec (&spec, "t", "svc");
    s_spec_ttl (&spec, 100);
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    keel_catalog_heartbeat (cat, "t", WARNING, "0123456789", 1);
    ck_assert_str_eq (keel_catalog_get (cat, "t", 1)->health->output,
                      "01234567");
    ck_assert_str_eq (s_last_event ()->reason, "01234567");
    //  Not in the middle of a UTF-8 character: "abcdef" + e-acute (2 bytes)
    //  would end at byte 8 mid-character; the cut falls before it.
    keel_catalog_heartbeat (cat, "t", WARNING, "abcdefg\xc3\xa9z", 2);
    ck_assert_str_eq (keel_catalog_get (cat, "t", 2)->health->output,
                      "abcdefg");
    keel_catalog_heartbeat (cat, "t", WARNING, "abcdef\xc3\xa9z", 3);
    ck_assert_str_eq (keel_catalog_get (cat, "t", 3)->health->output,
                      "abcdef\xc3\xa9");
    s_done (&cat);
}
END_TEST

// ---------------------------------------------------------------------------
//  Active checks

START_TEST (test_active_check)
{
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "a", "svc");
    s_spec_check (&spec)->bus_ping = true;
    ck_assert_int_eq (s_register (cat, &spec, 1000), KEEL_OK);
    ck_assert_int_eq (s_status (cat, "a", 1000), UNKNOWN);
    //  Defaults written into the stored check, for the shell to read.
    const Keel__Instance *got = keel_catalog_get (cat, "a", 1000);
    ck_assert_uint_eq (got->check->interval_ms, 1000);
    ck_assert_uint_eq (got->check->timeout_ms, 500);
    ck_assert_uint_eq (got->health->last_check_age_ms, 0);

    //  Due at once, handed out once.
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 1000);
    ck_assert_ptr_null (keel_catalog_next_check (cat, 999));
    got = keel_catalog_next_check (cat, 1000);
    ck_assert_ptr_nonnull (got);
    ck_assert_str_eq (got->id, "a");
    ck_assert_ptr_null (keel_catalog_next_check (cat, 1000));
    ck_assert_ptr_null (keel_catalog_next_check (cat, 1400));
    //  Now pending: its timeout.
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 1500);
    ck_assert_uint_eq (keel_catalog_index (cat), 1);

    ck_assert_int_eq (
        keel_catalog_check_result (cat, "a", true, 1234, "pong", 1100),
        KEEL_OK);
    got = keel_catalog_get (cat, "a", 1300);
    ck_assert_int_eq (got->health->status, PASSING);
    ck_assert_uint_eq (got->health->response_time_us, 1234);
    ck_assert_str_eq (got->health->output, "pong");
    ck_assert_uint_eq (got->health->last_check_age_ms, 200);
    ck_assert_str_eq (s_last_event ()->type, "registry.health");
    ck_assert_str_eq (s_last_event ()->reason, "pong");
    //  Next one a full interval after the last one started.
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 2000);
    ck_assert_ptr_null (keel_catalog_next_check (cat, 1999));
    ck_assert_ptr_nonnull (keel_catalog_next_check (cat, 2000));
    ck_assert_int_eq (
        keel_catalog_check_result (cat, "a", false, 10, NULL, 2010), KEEL_OK);
    ck_assert_int_eq (s_status (cat, "a", 2010), CRITICAL);
    ck_assert_str_eq (s_last_event ()->reason, "check failed");
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 3000);

    //  A timeout is a failure, at the timeout.
    ck_assert_ptr_nonnull (keel_catalog_next_check (cat, 3000));
    ck_assert_int_eq (
        keel_catalog_check_result (cat, "a", true, 10, NULL, 3010), KEEL_OK);
    ck_assert_int_eq (s_status (cat, "a", 3010), PASSING);
    ck_assert_str_eq (s_last_event ()->reason, "check passed");
    ck_assert_ptr_nonnull (keel_catalog_next_check (cat, 4000));
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 4500);
    keel_catalog_tick (cat, 4499);
    ck_assert_int_eq (s_status (cat, "a", 4499), PASSING);
    keel_catalog_tick (cat, 4500);
    got = keel_catalog_get (cat, "a", 4500);
    ck_assert_int_eq (got->health->status, CRITICAL);
    ck_assert_str_eq (got->health->output, "check timed out");
    ck_assert_uint_eq (got->health->response_time_us, 500000);
    ck_assert_uint_eq (got->health->consecutive_failures, 1);
    ck_assert_str_eq (s_last_event ()->reason, "check timed out");
    //  The late result is ignored.
    uint64_t index = keel_catalog_index (cat);
    ck_assert_int_eq (
        keel_catalog_check_result (cat, "a", true, 10, "late", 4600), KEEL_OK);
    ck_assert_int_eq (s_status (cat, "a", 4600), CRITICAL);
    ck_assert_uint_eq (keel_catalog_index (cat), index);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 5000);

    ck_assert_int_eq (
        keel_catalog_check_result (cat, "nobody", true, 1, NULL, 4600),
        KEEL_ERR_NOT_FOUND);
    //  Heartbeats are for TTL checks.
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "a", PASSING, NULL, 4600),
                      KEEL_ERR_INVALID_ARGUMENT);
    //  Removed while running: the result finds nothing.
    ck_assert_ptr_nonnull (keel_catalog_next_check (cat, 5000));
    ck_assert_int_eq (keel_catalog_deregister (cat, "a", 5001, NULL), KEEL_OK);
    ck_assert_int_eq (keel_catalog_check_result (cat, "a", true, 1, NULL, 5002),
                      KEEL_ERR_NOT_FOUND);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), -1);
    s_done (&cat);
}
END_TEST

START_TEST (test_active_antiflap)
{
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "h", "svc");
    spec.inst.endpoint = "http://127.0.0.1:8080";
    s_spec_check (&spec)->http_path = "/health";
    spec.check.interval_ms = 100;
    spec.check.timeout_ms = 30;
    spec.check.successes_before_passing = 3;
    spec.check.failures_before_critical = 3;
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);

    bool script[] = {true, true, true, false, false, false,
                     true, true, true, false, true,  false};
    Keel__HealthStatus expect[] = {UNKNOWN, UNKNOWN,  PASSING,  PASSING,
                                   PASSING, CRITICAL, CRITICAL, CRITICAL,
                                   PASSING, PASSING,  PASSING,  PASSING};
    for (int i = 0; i < 12; i++) {
        int64_t now = i * 100;
        ck_assert_int_eq (keel_catalog_next_deadline (cat), now);
        keel_catalog_tick (cat, now);
        const Keel__Instance *due = keel_catalog_next_check (cat, now);
        ck_assert_ptr_nonnull (due);
        ck_assert_str_eq (due->check->http_path, "/health");
        ck_assert_ptr_null (keel_catalog_next_check (cat, now));
        ck_assert_int_eq (
            keel_catalog_check_result (cat, "h", script[i], 5, NULL, now + 5),
            KEEL_OK);
        ck_assert_msg (s_status (cat, "h", now + 5) == expect[i], "step %d", i);
    }
    //  Registered, passing, critical, passing.
    ck_assert_uint_eq (keel_catalog_index (cat), 4);
    s_done (&cat);
}
END_TEST

START_TEST (test_active_interval)
{
    //  A result that arrives after the next check was due makes it due at
    //  once; a timeout longer than the interval delays the next check.
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "c", "svc");
    s_spec_check (&spec)->tcp_connect = true;
    spec.check.interval_ms = 100;
    spec.check.timeout_ms = 250;
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    ck_assert_ptr_nonnull (keel_catalog_next_check (cat, 0));
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 250);
    ck_assert_ptr_null (keel_catalog_next_check (cat, 200));
    ck_assert_int_eq (keel_catalog_check_result (cat, "c", true, 1, NULL, 180),
                      KEEL_OK);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 100);
    ck_assert_ptr_nonnull (keel_catalog_next_check (cat, 180));
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 430);
    //  A timeout, late: the next check is due right away.
    keel_catalog_tick (cat, 500);
    ck_assert_int_eq (s_status (cat, "c", 500), CRITICAL);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 280);
    ck_assert_ptr_nonnull (keel_catalog_next_check (cat, 500));
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 750);

    //  A TTL and an active check together: the status is the worst, and
    //  the deadline the earliest of both.
    s_spec (&spec, "both", "svc");
    s_spec_ttl (&spec, 300);
    spec.check.bus_ping = true;
    spec.check.interval_ms = 1000;
    ck_assert_int_eq (s_register (cat, &spec, 600), KEEL_OK);
    ck_assert_int_eq (s_status (cat, "both", 600), UNKNOWN);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 600);
    const Keel__Instance *due = keel_catalog_next_check (cat, 600);
    ck_assert_str_eq (due->id, "both");
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 750);
    keel_catalog_check_result (cat, "both", true, 1, NULL, 610);
    ck_assert_int_eq (s_status (cat, "both", 610), PASSING);
    keel_catalog_tick (cat, 750); //  c timed out again: its next is overdue
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 600);
    ck_assert_str_eq (keel_catalog_next_check (cat, 750)->id, "c");
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 900); //  both's ttl
    keel_catalog_tick (cat, 900);
    ck_assert_int_eq (s_status (cat, "both", 900), CRITICAL);
    keel_catalog_heartbeat (cat, "both", WARNING, NULL, 950);
    ck_assert_int_eq (s_status (cat, "both", 950), WARNING);
    s_done (&cat);
}
END_TEST

// ---------------------------------------------------------------------------
//  Discovery and listing

START_TEST (test_discover)
{
    keel_catalog_t *cat = s_catalog (NULL);
    //  Registered out of order; answers come ordered by id.
    const char *ids[] = {"w-5", "w-1", "w-4", "w-2", "w-3", "w-0"};
    for (int i = 0; i < 6; i++) {
        spec_t spec;
        s_spec (&spec, ids[i], "web");
        s_spec_ttl (&spec, 1000);
        s_spec_tag (&spec, "http");
        if (i % 2 == 0)
            s_spec_tag (&spec, "blue");
        s_spec_meta (&spec, "zone", i < 3 ? "a" : "b");
        s_spec_meta (&spec, "zone", i < 3 ? "a" : "c"); //  last one wins
        ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    }
    s_add_plain (cat, "other-1", "db", 0);
    keel_catalog_heartbeat (cat, "w-4", CRITICAL, NULL, 10);
    keel_catalog_heartbeat (cat, "w-3", WARNING, NULL, 10);

    Keel__DiscoverRequest query = KEEL__DISCOVER_REQUEST__INIT;
    query.service = "web";
    Keel__Instance **list = NULL;
    bool protect = true;
    size_t n = keel_catalog_discover (cat, &query, 20, &list, &protect);
    ck_assert (!protect);
    ck_assert_uint_eq (n, 5);
    const char *healthy[] = {"w-0", "w-1", "w-2", "w-3", "w-5"};
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq (list[i]->id, healthy[i]);
        ck_assert_uint_eq (list[i]->health->last_check_age_ms,
                           i == 3 ? 10 : 20);
    }

    query.include_unhealthy = true;
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 20, &list, NULL), 6);
    ck_assert_str_eq (list[4]->id, "w-4");
    ck_assert_int_eq (list[4]->health->status, CRITICAL);
    query.include_unhealthy = false;

    //  Tags: all must be present.
    char *tags[] = {"blue", "http"};
    query.tags = tags;
    query.n_tags = 2;
    n = keel_catalog_discover (cat, &query, 20, &list, NULL);
    ck_assert_uint_eq (n, 2); //  blue: w-5, w-4 (critical), w-3
    ck_assert_str_eq (list[0]->id, "w-3");
    ck_assert_str_eq (list[1]->id, "w-5");
    char *nope[] = {"blue", "grpc"};
    query.tags = nope;
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 20, &list, NULL), 0);
    query.n_tags = 0;

    //  Meta: every pair must be equal.
    Keel__DiscoverRequest__MetaEntry pair =
        KEEL__DISCOVER_REQUEST__META_ENTRY__INIT;
    Keel__DiscoverRequest__MetaEntry *pairs[] = {&pair};
    pair.key = "zone";
    pair.value = "c";
    query.meta = pairs;
    query.n_meta = 1;
    n = keel_catalog_discover (cat, &query, 20, &list, NULL);
    ck_assert_uint_eq (n, 3);
    ck_assert_str_eq (list[0]->id, "w-0");
    ck_assert_str_eq (list[1]->id, "w-2");
    ck_assert_str_eq (list[2]->id, "w-3");
    pair.value = "b"; //  overridden by the later pair
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 20, &list, NULL), 0);
    pair.key = "missing";
    pair.value = "";
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 20, &list, NULL), 0);
    query.n_meta = 0;

    //  Unknown, empty or missing service.
    query.service = "nope";
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 20, &list, NULL), 0);
    query.service = "";
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 20, &list, NULL), 0);
    ck_assert_uint_eq (keel_catalog_discover (cat, NULL, 20, &list, NULL), 0);
    ck_assert_ptr_nonnull (list);
    query.service = "db";
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 20, &list, NULL), 1);
    ck_assert_str_eq (list[0]->id, "other-1");

    //  Order holds after removals and additions.
    keel_catalog_deregister (cat, "w-1", 30, NULL);
    s_add_plain (cat, "w-00", "web", 30);
    query.service = "web";
    query.include_unhealthy = true;
    n = keel_catalog_discover (cat, &query, 30, &list, NULL);
    const char *all[] = {"w-0", "w-00", "w-2", "w-3", "w-4", "w-5"};
    ck_assert_uint_eq (n, 6);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq (list[i]->id, all[i]);
    s_done (&cat);
}
END_TEST

START_TEST (test_protect_threshold)
{
    keel_catalog_limits_t limits = {.protect_threshold = 0.5};
    keel_catalog_t *cat = s_catalog (&limits);
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf (id, sizeof id, "p-%d", i);
        spec_t spec;
        s_spec (&spec, id, "pay");
        s_spec_ttl (&spec, 1000);
        ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    }
    Keel__DiscoverRequest query = KEEL__DISCOVER_REQUEST__INIT;
    query.service = "pay";
    Keel__Instance **list;
    bool protect = true;
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 0, &list, &protect),
                       4);
    ck_assert (!protect);

    //  2 of 4 healthy: exactly the threshold, not below it.
    keel_catalog_heartbeat (cat, "p-0", CRITICAL, NULL, 1);
    keel_catalog_heartbeat (cat, "p-1", CRITICAL, NULL, 1);
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 1, &list, &protect),
                       2);
    ck_assert (!protect);
    ck_assert_str_eq (list[0]->id, "p-2");

    //  1 of 4: below; everything comes back, flagged.
    keel_catalog_heartbeat (cat, "p-2", CRITICAL, NULL, 2);
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 2, &list, &protect),
                       4);
    ck_assert (protect);
    ck_assert_str_eq (list[0]->id, "p-0");
    //  Filters still apply.
    char *tags[] = {"none"};
    query.tags = tags;
    query.n_tags = 1;
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 2, &list, &protect),
                       0);
    ck_assert (protect);
    query.n_tags = 0;
    //  Asking for everything is not protection.
    query.include_unhealthy = true;
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 2, &list, &protect),
                       4);
    ck_assert (!protect);
    query.include_unhealthy = false;
    //  protect_p may be NULL.
    ck_assert_uint_eq (keel_catalog_discover (cat, &query, 2, &list, NULL), 4);

    //  All dead: still everything.
    keel_catalog_tick (cat, 1000);
    ck_assert_uint_eq (
        keel_catalog_discover (cat, &query, 1000, &list, &protect), 4);
    ck_assert (protect);
    //  Recovery: back to healthy only.
    keel_catalog_heartbeat (cat, "p-0", PASSING, NULL, 1001);
    keel_catalog_heartbeat (cat, "p-1", PASSING, NULL, 1001);
    ck_assert_uint_eq (
        keel_catalog_discover (cat, &query, 1001, &list, &protect), 2);
    ck_assert (!protect);
    s_done (&cat);

    //  Off (the default): only the healthy one, ever.
    cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "q-0", "pay");
    s_spec_ttl (&spec, 1000);
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    s_add_plain (cat, "q-1", "pay", 0);
    keel_catalog_tick (cat, 1000);
    ck_assert_uint_eq (
        keel_catalog_discover (cat, &query, 1000, &list, &protect), 1);
    ck_assert (!protect);
    ck_assert_str_eq (list[0]->id, "q-1");
    s_done (&cat);
}
END_TEST

START_TEST (test_list)
{
    keel_catalog_t *cat = s_catalog (NULL);
    s_add_plain (cat, "c", "s2", 0);
    s_add_plain (cat, "a", "s1", 0);
    spec_t spec;
    s_spec (&spec, "b", "s1");
    s_spec_ttl (&spec, 100);
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    keel_catalog_tick (cat, 100); //  b critical: listed all the same
    Keel__Instance **list = NULL;
    ck_assert_uint_eq (keel_catalog_list (cat, NULL, 150, &list), 3);
    ck_assert_str_eq (list[0]->id, "a");
    ck_assert_str_eq (list[1]->id, "b");
    ck_assert_str_eq (list[2]->id, "c");
    ck_assert_uint_eq (list[1]->health->last_check_age_ms, 50);
    ck_assert_uint_eq (keel_catalog_list (cat, "", 150, &list), 3);
    ck_assert_uint_eq (keel_catalog_list (cat, "s1", 150, &list), 2);
    ck_assert_str_eq (list[0]->id, "a");
    ck_assert_str_eq (list[1]->id, "b");
    ck_assert_int_eq (list[1]->health->status, CRITICAL);
    ck_assert_uint_eq (keel_catalog_list (cat, "s3", 150, &list), 0);
    ck_assert_ptr_nonnull (list);
    s_done (&cat);
}
END_TEST

START_TEST (test_large)
{
    //  100k instances in 10k services of 10; lookups and discovery touch
    //  only what they need.
    keel_catalog_t *cat = keel_catalog_new (NULL);
    char id[32], service[32];
    int64_t start = zclock_mono ();
    spec_t spec;
    s_spec (&spec, "", "");
    s_spec_tag (&spec, "http");
    for (int i = 0; i < 100000; i++) {
        snprintf (id, sizeof id, "inst-%06d", (i * 7919) % 100000);
        snprintf (service, sizeof service, "svc-%05d",
                  ((i * 7919) % 100000) / 10);
        spec.inst.id = id;
        spec.inst.service = service;
        //  Expiries from 10000 up to 999 + 10999.
        s_spec_ttl (&spec, 10000 + (uint32_t)(i % 1000));
        if (keel_catalog_register (cat, &spec.inst, i / 100, NULL, NULL))
            ck_abort_msg ("register %s refused", id);
    }
    int64_t registered = zclock_mono ();
    ck_assert_uint_eq (keel_catalog_size (cat), 100000);
    ck_assert_uint_eq (keel_catalog_index (cat), 100000);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 10000);

    Keel__DiscoverRequest query = KEEL__DISCOVER_REQUEST__INIT;
    query.service = "svc-04242";
    Keel__Instance **list;
    size_t found = 0;
    for (int round = 0; round < 1000; round++)
        found += keel_catalog_discover (cat, &query, 1000, &list, NULL);
    ck_assert_uint_eq (found, 10000);
    ck_assert_str_eq (list[0]->id, "inst-042420");
    ck_assert_str_eq (list[9]->id, "inst-042429");
    ck_assert_ptr_nonnull (keel_catalog_get (cat, "inst-099999", 1000));
    int64_t discovered = zclock_mono ();

    //  Heartbeats move deadlines; ticks at the deadline do only what is due.
    for (int i = 0; i < 100000; i += 2) {
        snprintf (id, sizeof id, "inst-%06d", i);
        if (keel_catalog_heartbeat (cat, id, PASSING, NULL, 5000))
            ck_abort_msg ("heartbeat %s refused", id);
    }
    keel_catalog_tick (cat, 12000);
    ck_assert_uint_eq (keel_catalog_index (cat), 100000 + 50000);
    //  Left: the even ids, heard from at 5000; the first (ttl 10000) is
    //  inst-000000.
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 15000);
    ck_assert_uint_eq (keel_catalog_list (cat, NULL, 12000, &list), 100000);
    ck_assert_str_eq (list[0]->id, "inst-000000");
    ck_assert_str_eq (list[99999]->id, "inst-099999");
    ck_assert_int_eq (list[1]->health->status, CRITICAL);
    ck_assert_int_eq (list[2]->health->status, PASSING);
    printf ("test_large: 100k registrations %d ms, 1000 discovers %d ms\n",
            (int)(registered - start), (int)(discovered - registered));
    keel_catalog_destroy (&cat);
}
END_TEST

START_TEST (test_event_order)
{
    //  Every change is one event, its index one more than the last; the
    //  index a call returns is its event's.
    keel_catalog_t *cat = s_catalog (NULL);
    spec_t spec;
    s_spec (&spec, "x", "svc");
    s_spec_ttl (&spec, 100);
    spec.check.deregister_critical_after_ms = 100;
    uint64_t index;
    ck_assert_int_eq (keel_catalog_register (cat, &spec.inst, 0, &index, NULL),
                      KEEL_OK);
    ck_assert_uint_eq (index, 1);
    ck_assert_int_eq (keel_catalog_register (cat, &spec.inst, 1, &index, NULL),
                      KEEL_OK);
    ck_assert_uint_eq (index, 2);
    keel_catalog_tick (cat, 101); //  critical (3)
    keel_catalog_tick (cat, 201); //  removed (4)
    s_add_plain (cat, "y", "svc", 300);
    ck_assert_int_eq (keel_catalog_deregister (cat, "y", 300, &index), KEEL_OK);
    ck_assert_uint_eq (index, 6);
    const char *types[] = {"registry.registered", "registry.updated",
                           "registry.health",     "registry.deregistered",
                           "registry.registered", "registry.deregistered"};
    ck_assert_uint_eq (s_events.count, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert_str_eq (s_events.log[i].type, types[i]);
        ck_assert_uint_eq (s_events.log[i].index, (uint64_t)i + 1);
        ck_assert_uint_eq (s_events.log[i].modify_index, (uint64_t)i + 1);
    }
    ck_assert_str_eq (s_events.log[3].reason, "critical too long");
    //  Removing the listener: changes still count.
    keel_catalog_set_listener (cat, NULL, NULL);
    s_add_plain (cat, "z", "svc", 400);
    ck_assert_uint_eq (keel_catalog_index (cat), 7);
    ck_assert_uint_eq (s_events.count, 6);
    keel_catalog_destroy (&cat);
}
END_TEST

// ---------------------------------------------------------------------------
//  A randomized run against a brute-force model

#define M_IDS   16
#define M_NEVER INT64_MAX

typedef struct {
    Keel__HealthStatus status;
    uint32_t successes;
    uint32_t failures;
} m_check_t;

//  What the model knows of one id.
typedef struct {
    bool present;
    //  the check as registered (raw), and in force (defaults filled)
    uint32_t raw_ttl, raw_interval, raw_timeout, raw_sbp, raw_fbc, raw_dca;
    bool raw_active;
    uint32_t norm[7]; //  the stored check: ttl, active, interval, timeout,
                      //  successes, failures, dca
    uint32_t ttl, interval, timeout, sbp, fbc, dca; //  in force
    bool active;
    char service[8];
    m_check_t tc; //  TTL check
    m_check_t ac; //  active check
    Keel__HealthStatus status;
    int64_t ttl_expiry;
    int64_t critical_since;
    bool running;
    int64_t running_deadline;
    int64_t next_due;
    uint32_t h_successes; //  health's streaks: of the last check result
    uint32_t h_failures;
    int64_t last_check; //  -1 = never
} m_inst_t;

typedef struct {
    m_inst_t inst[M_IDS];
    uint64_t changes; //  expected events
    uint64_t rng;     //  xorshift64 state
} model_t;

static uint64_t
s_rand (model_t *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return m->rng;
}

static uint32_t
s_pick (model_t *m, uint32_t n)
{
    return (uint32_t)(s_rand (m) % n);
}

static int
s_m_severity (Keel__HealthStatus status)
{
    return status == PASSING    ? 0
           : status == WARNING  ? 1
           : status == CRITICAL ? 3
                                : 2;
}

static Keel__HealthStatus
s_m_worst (const m_inst_t *mi)
{
    Keel__HealthStatus worst = PASSING;
    if (mi->ttl && s_m_severity (mi->tc.status) > s_m_severity (worst))
        worst = mi->tc.status;
    if (mi->active && s_m_severity (mi->ac.status) > s_m_severity (worst))
        worst = mi->ac.status;
    return worst;
}

static void
s_m_success (m_check_t *c, uint32_t sbp)
{
    c->successes++;
    c->failures = 0;
    if (c->status == WARNING || c->successes >= sbp)
        c->status = PASSING;
}

static void
s_m_failure (m_check_t *c, uint32_t fbc)
{
    c->failures++;
    c->successes = 0;
    if (c->failures >= fbc)
        c->status = CRITICAL;
}

//  After a result of `c` at `at`: the health's streaks and time, and the
//  status, counting a change.
static void
s_m_settle (model_t *m, m_inst_t *mi, const m_check_t *c, int64_t at)
{
    mi->h_successes = c->successes;
    mi->h_failures = c->failures;
    mi->last_check = at;
    Keel__HealthStatus status = s_m_worst (mi);
    if (status == mi->status)
        return;
    if (status == CRITICAL)
        mi->critical_since = at;
    mi->status = status;
    m->changes++;
}

static bool
s_m_ttl_armed (const m_inst_t *mi)
{
    return mi->ttl && (mi->tc.status != CRITICAL || mi->tc.successes > 0);
}

static int64_t
s_m_removal (const m_inst_t *mi)
{
    return mi->dca && mi->status == CRITICAL ? mi->critical_since + mi->dca
                                             : M_NEVER;
}

//  The earliest pending time over everything, by brute force.
static int64_t
s_m_deadline (const model_t *m)
{
    int64_t best = M_NEVER;
    for (int i = 0; i < M_IDS; i++) {
        const m_inst_t *mi = &m->inst[i];
        if (!mi->present)
            continue;
        if (s_m_ttl_armed (mi) && mi->ttl_expiry < best)
            best = mi->ttl_expiry;
        if (s_m_removal (mi) < best)
            best = s_m_removal (mi);
        if (mi->running && mi->running_deadline < best)
            best = mi->running_deadline;
        if (mi->active && !mi->running && mi->next_due < best)
            best = mi->next_due;
    }
    return best == M_NEVER ? -1 : best;
}

static void
s_m_tick (model_t *m, int64_t now)
{
    for (int i = 0; i < M_IDS; i++) {
        m_inst_t *mi = &m->inst[i];
        while (mi->present) {
            int64_t timeout = mi->running ? mi->running_deadline : M_NEVER;
            int64_t expiry = s_m_ttl_armed (mi) ? mi->ttl_expiry : M_NEVER;
            int64_t removal = s_m_removal (mi);
            int64_t at = timeout < expiry ? timeout : expiry;
            at = removal < at ? removal : at;
            if (at > now)
                break;
            if (timeout == at) {
                mi->running = false;
                s_m_failure (&mi->ac, mi->fbc);
                s_m_settle (m, mi, &mi->ac, at);
            } else if (expiry == at) {
                s_m_failure (&mi->tc, mi->fbc);
                mi->ttl_expiry = at + mi->ttl;
                s_m_settle (m, mi, &mi->tc, at);
            } else {
                mi->present = false;
                m->changes++;
            }
        }
    }
}

static void
s_m_reset (m_inst_t *mi, int64_t now)
{
    mi->tc = (m_check_t){UNKNOWN, 0, 0};
    mi->ac = mi->tc;
    mi->running = false;
    mi->h_successes = mi->h_failures = 0;
    mi->last_check = -1;
    if (mi->ttl) {
        s_m_success (&mi->tc, mi->sbp);
        mi->ttl_expiry = now + mi->ttl;
        mi->h_successes = 1;
        mi->last_check = now;
    }
    mi->next_due = now;
}

//  A random registration of id `i`: same check or a new one.
static void
s_m_register (model_t *m, keel_catalog_t *cat, int i, int64_t now)
{
    m_inst_t *mi = &m->inst[i];
    bool same = mi->present && s_pick (m, 2) == 0;
    if (!same) {
        mi->raw_ttl = s_pick (m, 3) ? 10 + s_pick (m, 600) : 0;
        mi->raw_active = s_pick (m, 2);
        mi->raw_interval = s_pick (m, 8) ? 10 + s_pick (m, 300) : 0;
        mi->raw_timeout = s_pick (m, 8) ? 5 + s_pick (m, 400) : 0;
        mi->raw_sbp = s_pick (m, 4);
        mi->raw_fbc = s_pick (m, 4);
        mi->raw_dca = s_pick (m, 3) ? 0 : 10 + s_pick (m, 500);
    }
    char id[16];
    snprintf (id, sizeof id, "id-%02d", i);
    char service[8];
    snprintf (service, sizeof service, "s%u", s_pick (m, 4));
    spec_t spec;
    s_spec (&spec, id, service);
    Keel__HealthCheck *check = s_spec_check (&spec);
    check->ttl_ms = mi->raw_ttl;
    check->bus_ping = mi->raw_active;
    check->interval_ms = mi->raw_interval;
    check->timeout_ms = mi->raw_timeout;
    check->successes_before_passing = mi->raw_sbp;
    check->failures_before_critical = mi->raw_fbc;
    check->deregister_critical_after_ms = mi->raw_dca;
    ck_assert_int_eq (s_register (cat, &spec, now), KEEL_OK);
    m->changes++;

    //  What the catalog should make of it: the check as stored, defaults
    //  filled in when there is a check at all, decides "unchanged".
    bool any = mi->raw_ttl || mi->raw_active;
    uint32_t norm[7] = {mi->raw_ttl,     mi->raw_active, mi->raw_interval,
                        mi->raw_timeout, mi->raw_sbp,    mi->raw_fbc,
                        mi->raw_dca};
    if (any) {
        norm[4] = norm[4] ? norm[4] : 1;
        norm[5] = norm[5] ? norm[5] : 1;
    }
    if (mi->raw_active) {
        norm[2] = norm[2] ? norm[2] : 1000;
        norm[3] = norm[3] ? norm[3] : norm[2] / 2;
    }
    bool unchanged = mi->present && memcmp (norm, mi->norm, sizeof norm) == 0;
    ck_assert (!same || unchanged);
    m_inst_t next = *mi;
    memcpy (next.norm, norm, sizeof norm);
    next.ttl = norm[0];
    next.active = norm[1];
    next.interval = norm[2];
    next.timeout = norm[3];
    next.sbp = norm[4];
    next.fbc = norm[5];
    next.dca = any ? norm[6] : 0;
    snprintf (next.service, sizeof next.service, "%s", service);
    if (!mi->present) {
        next.present = true;
        next.status = UNKNOWN;
        next.critical_since = -1;
        s_m_reset (&next, now);
        next.status = s_m_worst (&next);
    } else if (!unchanged) {
        s_m_reset (&next, now);
        next.status = s_m_worst (&next);
    }
    *mi = next;
}

//  The catalog against the model. Plain comparisons, one ck_abort on a
//  difference: every passing ck_assert records its location, which costs
//  when a loop makes hundreds of thousands of them.
static void
s_m_compare (model_t *m, keel_catalog_t *cat, int64_t now, int step)
{
    size_t present = 0;
    for (int i = 0; i < M_IDS; i++) {
        char id[16];
        snprintf (id, sizeof id, "id-%02d", i);
        const Keel__Instance *inst = keel_catalog_get (cat, id, now);
        const m_inst_t *mi = &m->inst[i];
        if ((inst != NULL) != mi->present)
            ck_abort_msg ("step %d: %s presence %d, model %d", step, id,
                          inst != NULL, mi->present);
        if (!inst)
            continue;
        present++;
        const Keel__Health *h = inst->health;
        uint64_t age =
            mi->last_check < 0 ? 0 : (uint64_t)(now - mi->last_check);
        if (h->status != mi->status || strcmp (inst->service, mi->service) ||
            h->consecutive_successes != mi->h_successes ||
            h->consecutive_failures != mi->h_failures ||
            h->last_check_age_ms != age)
            ck_abort_msg ("step %d: %s status %d service %s streaks %u/%u age "
                          "%llu; model %d %s %u/%u %llu",
                          step, id, h->status, inst->service,
                          h->consecutive_successes, h->consecutive_failures,
                          (unsigned long long)h->last_check_age_ms, mi->status,
                          mi->service, mi->h_successes, mi->h_failures,
                          (unsigned long long)age);
    }
    int64_t deadline = keel_catalog_next_deadline (cat);
    if (keel_catalog_size (cat) != present || deadline != s_m_deadline (m) ||
        keel_catalog_index (cat) != m->changes ||
        s_events.count != m->changes || s_events.broken)
        ck_abort_msg ("step %d: size %zu/%zu deadline %lld/%lld index "
                      "%llu/%llu events %zu broken %d",
                      step, keel_catalog_size (cat), present,
                      (long long)deadline, (long long)s_m_deadline (m),
                      (unsigned long long)keel_catalog_index (cat),
                      (unsigned long long)m->changes, s_events.count,
                      s_events.broken);
}

START_TEST (test_randomized)
{
    keel_catalog_t *cat = s_catalog (NULL);
    model_t *m = (model_t *)calloc (1, sizeof (model_t));
    m->rng = 0x9e3779b97f4a7c15ULL;
    int64_t now = 1000;
    for (int step = 0; step < 5000; step++) {
        int i = (int)s_pick (m, M_IDS);
        m_inst_t *mi = &m->inst[i];
        char id[16];
        snprintf (id, sizeof id, "id-%02d", i);
        uint32_t op = s_pick (m, 100);
        if (op < 20)
            s_m_register (m, cat, i, now);
        else if (op < 25) {
            int rc = keel_catalog_deregister (cat, id, now, NULL);
            ck_assert_int_eq (rc, mi->present ? KEEL_OK : KEEL_ERR_NOT_FOUND);
            if (mi->present)
                m->changes++;
            mi->present = false;
        } else if (op < 45) {
            Keel__HealthStatus status = (Keel__HealthStatus)s_pick (m, 4);
            if (s_pick (m, 2))
                status = PASSING;
            int rc = keel_catalog_heartbeat (cat, id, status, "hb", now);
            int expect = !mi->present ? KEEL_ERR_NOT_FOUND
                         : !mi->ttl   ? KEEL_ERR_INVALID_ARGUMENT
                                      : KEEL_OK;
            ck_assert_int_eq (rc, expect);
            if (rc == KEEL_OK) {
                if (status == WARNING)
                    mi->tc = (m_check_t){WARNING, 0, 0};
                else if (status == CRITICAL) {
                    mi->tc.failures++;
                    mi->tc.successes = 0;
                    mi->tc.status = CRITICAL;
                } else
                    s_m_success (&mi->tc, mi->sbp);
                mi->ttl_expiry = now + mi->ttl;
                s_m_settle (m, mi, &mi->tc, now);
            }
        } else if (op < 62) {
            //  A result for a running check, if any (else for this id).
            for (int j = 0; j < M_IDS; j++) {
                int k = (i + j) % M_IDS;
                if (m->inst[k].present && m->inst[k].running) {
                    i = k;
                    mi = &m->inst[k];
                    snprintf (id, sizeof id, "id-%02d", i);
                    break;
                }
            }
            bool passed = s_pick (m, 3) != 0;
            int rc = keel_catalog_check_result (cat, id, passed, 7, NULL, now);
            ck_assert_int_eq (rc, mi->present ? KEEL_OK : KEEL_ERR_NOT_FOUND);
            if (mi->present && mi->running) {
                mi->running = false;
                if (passed)
                    s_m_success (&mi->ac, mi->sbp);
                else
                    s_m_failure (&mi->ac, mi->fbc);
                s_m_settle (m, mi, &mi->ac, now);
            }
        } else {
            //  Time passes: sometimes to the deadline exactly, sometimes
            //  past it, sometimes not at all.
            int64_t deadline = keel_catalog_next_deadline (cat);
            uint32_t how = s_pick (m, 4);
            if (how == 0 && deadline >= now)
                now = deadline;
            else if (how == 1 && deadline > now)
                now = deadline - 1;
            else
                now += s_pick (m, 60);
            keel_catalog_tick (cat, now);
            s_m_tick (m, now);
            const Keel__Instance *due;
            while ((due = keel_catalog_next_check (cat, now))) {
                int k = atoi (due->id + 3);
                m_inst_t *mk = &m->inst[k];
                ck_assert (mk->present && mk->active && !mk->running);
                ck_assert_int_le (mk->next_due, now);
                mk->running = true;
                mk->running_deadline = now + mk->timeout;
                mk->next_due = now + mk->interval;
            }
            for (int k = 0; k < M_IDS; k++) {
                const m_inst_t *mk = &m->inst[k];
                if (mk->present && mk->active && !mk->running &&
                    mk->next_due <= now)
                    ck_abort_msg ("step %d: id-%02d due but not handed out",
                                  step, k);
            }
        }
        s_m_compare (m, cat, now, step);
    }
    ck_assert_uint_gt (m->changes, 1000);
    free (m);
    s_done (&cat);
}
END_TEST

// ---------------------------------------------------------------------------
//  Replication

//  A replica as owner `origin` would publish it, at `version`, `status`.
static void
s_spec_replica (spec_t *spec, const char *id, const char *service,
                const char *origin, uint64_t version, Keel__HealthStatus status)
{
    s_spec (spec, id, service);
    spec->inst.origin = (char *)origin;
    spec->inst.version = version;
    spec->health.status = status;
    spec->inst.health = &spec->health;
}

static int
s_apply (keel_catalog_t *cat, spec_t *spec, int64_t now, bool *applied)
{
    const char *error = NULL;
    int rc = keel_catalog_apply (cat, &spec->inst, now, applied, &error);
    if (rc != KEEL_OK)
        ck_assert_ptr_nonnull (error);
    return rc;
}

START_TEST (test_replica_apply)
{
    keel_catalog_limits_t limits = {.replica_lease_ms = 1000};
    keel_catalog_t *cat = s_catalog (&limits);
    ck_assert_int_eq (keel_catalog_set_origin (cat, "a"), 0);
    ck_assert_str_eq (keel_catalog_origin (cat), "a");
    keel_catalog_set_wall_ms (cat, 1000);
    //  Owned: origin and a wall-clock based version.
    s_add_plain (cat, "own-1", "svc", 0);
    const Keel__Instance *own = keel_catalog_get (cat, "own-1", 0);
    ck_assert_str_eq (own->origin, "a");
    ck_assert_uint_eq (own->version, 1000ULL << 16);
    //  The origin cannot be changed once something is held.
    ck_assert_int_eq (keel_catalog_set_origin (cat, "z"), -1);

    spec_t spec;
    bool applied = false;
    s_spec_replica (&spec, "r-1", "svc", "b", 50, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 10, &applied), KEEL_OK);
    ck_assert (applied);
    ck_assert_str_eq (s_events.log[1].type, "registry.registered");
    ck_assert_uint_eq (keel_catalog_replicas (cat), 1);
    const Keel__Instance *got = keel_catalog_get (cat, "r-1", 10);
    ck_assert_str_eq (got->origin, "b");
    ck_assert_uint_eq (got->version, 50);
    ck_assert_int_eq (got->health->status, PASSING);
    ck_assert_uint_eq (got->modify_index, keel_catalog_index (cat));

    //  Older: ignored. Same version, same origin: ignored.
    s_spec_replica (&spec, "r-1", "svc", "b", 40, CRITICAL);
    ck_assert_int_eq (s_apply (cat, &spec, 20, &applied), KEEL_OK);
    ck_assert (!applied);
    s_spec_replica (&spec, "r-1", "svc", "b", 50, CRITICAL);
    ck_assert_int_eq (s_apply (cat, &spec, 20, &applied), KEEL_OK);
    ck_assert (!applied);
    ck_assert_int_eq (s_status (cat, "r-1", 20), PASSING);
    ck_assert_uint_eq (s_events.count, 2);

    //  Newer, only health changed: a health event.
    s_spec_replica (&spec, "r-1", "svc", "b", 60, CRITICAL);
    spec.health.output = "ttl expired";
    ck_assert_int_eq (s_apply (cat, &spec, 30, &applied), KEEL_OK);
    ck_assert (applied);
    ck_assert_str_eq (s_events.log[2].type, "registry.health");
    ck_assert_int_eq (s_events.log[2].previous, PASSING);
    ck_assert_int_eq (s_status (cat, "r-1", 30), CRITICAL);

    //  Tie on version: the greater origin name wins.
    s_spec_replica (&spec, "r-1", "svc", "a0", 60, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 40, &applied), KEEL_OK);
    ck_assert (!applied); //  "a0" < "b"
    s_spec_replica (&spec, "r-1", "svc", "c", 60, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 40, &applied), KEEL_OK);
    ck_assert (applied);
    ck_assert_str_eq (keel_catalog_get (cat, "r-1", 40)->origin, "c");
    ck_assert_str_eq (s_events.log[3].type, "registry.health");

    //  Bad input: no origin, this catalog's origin, invalid instance.
    s_spec_replica (&spec, "r-2", "svc", "", 1, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 40, NULL),
                      KEEL_ERR_INVALID_ARGUMENT);
    s_spec_replica (&spec, "r-2", "svc", "a", 1, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 40, NULL),
                      KEEL_ERR_INVALID_ARGUMENT);
    s_spec_replica (&spec, "r-2", "", "b", 1, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 40, NULL),
                      KEEL_ERR_INVALID_ARGUMENT);

    //  The version clock moved past what was applied: a new owned version
    //  beats the replica's, and taking the id over makes it owned.
    keel_catalog_set_wall_ms (cat, 0);
    s_spec_replica (&spec, "r-3", "svc", "b", 5000ULL << 16, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 50, &applied), KEEL_OK);
    ck_assert_uint_ge (keel_catalog_clock (cat), 5000ULL << 16);
    s_add_plain (cat, "r-3", "svc", 50);
    got = keel_catalog_get (cat, "r-3", 50);
    ck_assert_str_eq (got->origin, "a");
    ck_assert_uint_gt (got->version, 5000ULL << 16);
    //  And an owned entry superseded by a newer version becomes a replica.
    s_spec_replica (&spec, "own-1", "svc", "b", UINT64_MAX - 1, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 60, &applied), KEEL_OK);
    ck_assert (applied);
    ck_assert_str_eq (keel_catalog_get (cat, "own-1", 60)->origin, "b");
    //  Only owners take heartbeats and deregistrations.
    ck_assert_int_eq (keel_catalog_deregister (cat, "own-1", 60, NULL),
                      KEEL_ERR_CONFLICT);
    ck_assert_int_eq (keel_catalog_heartbeat (cat, "own-1", PASSING, NULL, 60),
                      KEEL_ERR_NOT_FOUND);
    ck_assert (!s_events.broken);
    keel_catalog_destroy (&cat);
}
END_TEST

START_TEST (test_replica_removal)
{
    keel_catalog_t *cat = s_catalog (NULL);
    ck_assert_int_eq (keel_catalog_set_origin (cat, "a"), 0);
    spec_t spec;
    s_spec_replica (&spec, "r-1", "svc", "b", 10, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 0, NULL), KEEL_OK);
    //  A removal from another origin, or older than held: not applied.
    s_spec_replica (&spec, "r-1", "svc", "c", 20, PASSING);
    ck_assert_int_eq (keel_catalog_apply_removal (cat, &spec.inst, NULL, 1),
                      KEEL_ERR_NOT_FOUND);
    s_spec_replica (&spec, "r-1", "svc", "b", 9, PASSING);
    ck_assert_int_eq (keel_catalog_apply_removal (cat, &spec.inst, NULL, 1),
                      KEEL_ERR_NOT_FOUND);
    s_spec_replica (&spec, "r-1", "svc", "b", 11, PASSING);
    ck_assert_int_eq (
        keel_catalog_apply_removal (cat, &spec.inst, "expired", 1), KEEL_OK);
    ck_assert_ptr_null (keel_catalog_get (cat, "r-1", 1));
    ck_assert_str_eq (s_events.log[1].type, "registry.deregistered");
    ck_assert_str_eq (s_events.log[1].reason, "expired");
    //  Owned entries are never removed that way.
    s_add_plain (cat, "own-1", "svc", 2);
    s_spec_replica (&spec, "own-1", "svc", "a", UINT64_MAX, PASSING);
    ck_assert_int_eq (keel_catalog_apply_removal (cat, &spec.inst, NULL, 3),
                      KEEL_ERR_NOT_FOUND);
    ck_assert_uint_eq (keel_catalog_size (cat), 1);
    keel_catalog_destroy (&cat);
}
END_TEST

START_TEST (test_digest)
{
    keel_catalog_t *a = keel_catalog_new (NULL);
    keel_catalog_t *b = keel_catalog_new (NULL);
    ck_assert_int_eq (keel_catalog_set_origin (a, "a"), 0);
    ck_assert_int_eq (keel_catalog_set_origin (b, "b"), 0);
    //  Nothing on either side: equal.
    ck_assert_uint_eq (keel_catalog_digest (a, "a"),
                       keel_catalog_digest (b, "a"));
    //  b replicates what a owns, in another order: equal.
    const char *ids[] = {"z-1", "m-1", "a-1"};
    for (int k = 0; k < 3; k++) {
        spec_t spec;
        s_spec (&spec, ids[k], "svc");
        ck_assert_int_eq (keel_catalog_register (a, &spec.inst, 0, NULL, NULL),
                          KEEL_OK);
    }
    for (int k = 2; k >= 0; k--) {
        const Keel__Instance *owned = keel_catalog_get (a, ids[k], 0);
        ck_assert_int_eq (keel_catalog_apply (b, owned, 0, NULL, NULL),
                          KEEL_OK);
    }
    ck_assert_uint_eq (keel_catalog_digest (a, "a"),
                       keel_catalog_digest (b, "a"));
    //  A's own digest ignores its replicas; b's digest of "b" is empty.
    ck_assert_uint_eq (keel_catalog_digest (b, "b"),
                       keel_catalog_digest (a, "nobody"));
    //  A new version on a: different.
    spec_t spec;
    s_spec (&spec, "m-1", "svc");
    spec.inst.weight = 3;
    ck_assert_int_eq (keel_catalog_register (a, &spec.inst, 1, NULL, NULL),
                      KEEL_OK);
    ck_assert_uint_ne (keel_catalog_digest (a, "a"),
                       keel_catalog_digest (b, "a"));
    keel_catalog_destroy (&a);
    keel_catalog_destroy (&b);
}
END_TEST

START_TEST (test_reconcile)
{
    keel_catalog_t *cat = s_catalog (NULL);
    ck_assert_int_eq (keel_catalog_set_origin (cat, "a"), 0);
    spec_t spec;
    s_spec_replica (&spec, "keep", "svc", "b", 10, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 0, NULL), KEEL_OK);
    s_spec_replica (&spec, "old", "svc", "b", 10, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 0, NULL), KEEL_OK);
    s_spec_replica (&spec, "gone", "svc", "b", 10, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 0, NULL), KEEL_OK);
    s_spec_replica (&spec, "fresh", "svc", "b", 99, PASSING); //  pushed late
    ck_assert_int_eq (s_apply (cat, &spec, 0, NULL), KEEL_OK);
    s_spec_replica (&spec, "other", "svc", "c", 10, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 0, NULL), KEEL_OK);
    s_add_plain (cat, "mine", "svc", 0);

    //  b says it owns: keep@10, old@20, new@15 (clock 50).
    Keel__DigestEntry e[3];
    Keel__DigestEntry *entries[3] = {&e[0], &e[1], &e[2]};
    const char *names[] = {"new", "old", "keep"};
    uint64_t versions[] = {15, 20, 10};
    for (int k = 0; k < 3; k++) {
        keel__digest_entry__init (&e[k]);
        e[k].id = (char *)names[k];
        e[k].version = versions[k];
    }
    const char *need[3];
    size_t count = keel_catalog_reconcile (cat, "b", entries, 3, 50, 5, need);
    ck_assert_uint_eq (count, 2);
    ck_assert_str_eq (need[0], "new");
    ck_assert_str_eq (need[1], "old");
    //  "gone" removed; "fresh" (above the clock) kept; "other" and "mine"
    //  untouched.
    ck_assert_ptr_null (keel_catalog_get (cat, "gone", 5));
    ck_assert_ptr_nonnull (keel_catalog_get (cat, "fresh", 5));
    ck_assert_ptr_nonnull (keel_catalog_get (cat, "other", 5));
    ck_assert_ptr_nonnull (keel_catalog_get (cat, "mine", 5));
    ck_assert_ptr_nonnull (keel_catalog_get (cat, "keep", 5));
    ck_assert_str_eq (s_events.log[s_events.count - 1].reason,
                      "no longer owned by its origin");
    //  Reconciling this catalog's own origin does nothing.
    ck_assert_uint_eq (
        keel_catalog_reconcile (cat, "a", entries, 0, 0, 5, need), 0);
    ck_assert_ptr_nonnull (keel_catalog_get (cat, "mine", 5));
    keel_catalog_destroy (&cat);
}
END_TEST

START_TEST (test_replica_lease)
{
    keel_catalog_limits_t limits = {.replica_lease_ms = 3000};
    keel_catalog_t *cat = s_catalog (&limits);
    ck_assert_int_eq (keel_catalog_set_origin (cat, "a"), 0);
    //  An owned TTL instance and replicas from b (with a TTL check they do
    //  not run) and c.
    spec_t spec;
    s_spec (&spec, "own", "svc");
    s_spec_ttl (&spec, 100000);
    ck_assert_int_eq (s_register (cat, &spec, 0), KEEL_OK);
    s_spec_replica (&spec, "b-1", "svc", "b", 1, PASSING);
    s_spec_ttl (&spec, 100);
    spec.check.bus_ping = true;
    ck_assert_int_eq (s_apply (cat, &spec, 0, NULL), KEEL_OK);
    s_spec_replica (&spec, "b-2", "svc", "b", 2, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 0, NULL), KEEL_OK);
    s_spec_replica (&spec, "c-1", "svc", "c", 1, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 1000, NULL), KEEL_OK);
    //  Replicas never produce checks and never expire by TTL.
    ck_assert_ptr_null (keel_catalog_next_check (cat, 0));
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 3000);
    keel_catalog_tick (cat, 2000);
    ck_assert_int_eq (s_status (cat, "b-1", 2000), PASSING);
    ck_assert_ptr_null (keel_catalog_next_check (cat, 2000));
    //  b renewed at 2500: its replicas live until 5500; c's end at 4000.
    keel_catalog_renew (cat, "b", 2500);
    keel_catalog_tick (cat, 3999);
    ck_assert_uint_eq (keel_catalog_size (cat), 4);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 4000);
    keel_catalog_tick (cat, 4000);
    ck_assert_ptr_null (keel_catalog_get (cat, "c-1", 4000));
    ck_assert_str_eq (s_events.log[s_events.count - 1].reason,
                      "origin unreachable");
    keel_catalog_tick (cat, 5500);
    ck_assert_uint_eq (keel_catalog_size (cat), 1);
    ck_assert_uint_eq (keel_catalog_replicas (cat), 0);
    //  The owned one is untouched and its own TTL still runs.
    ck_assert_int_eq (s_status (cat, "own", 5500), PASSING);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 100000);
    keel_catalog_tick (cat, 100000);
    ck_assert_int_eq (s_status (cat, "own", 100000), CRITICAL);
    //  No replicas: no lease deadline; a new one from b starts a new lease.
    s_spec_replica (&spec, "b-3", "svc", "b", 3, PASSING);
    ck_assert_int_eq (s_apply (cat, &spec, 200000, NULL), KEEL_OK);
    ck_assert_int_eq (keel_catalog_next_deadline (cat), 200000 + 3000);
    ck_assert (!s_events.broken);
    keel_catalog_destroy (&cat);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_catalog");
    TCase *tc = tcase_create ("core");
    tcase_add_test (tc, test_new_destroy);
    tcase_add_test (tc, test_register_get);
    tcase_add_test (tc, test_update);
    tcase_add_test (tc, test_endpoint_key);
    tcase_add_test (tc, test_update_keeps_or_resets_health);
    tcase_add_test (tc, test_deregister);
    tcase_add_test (tc, test_validation);
    tcase_add_test (tc, test_limits);
    tcase_add_test (tc, test_ttl_expiry);
    tcase_add_test (tc, test_heartbeat_status);
    tcase_add_test (tc, test_ttl_antiflap);
    tcase_add_test (tc, test_deregister_critical_after);
    tcase_add_test (tc, test_late_tick);
    tcase_add_test (tc, test_kill_scenario);
    tcase_add_test (tc, test_output_truncated);
    tcase_add_test (tc, test_active_check);
    tcase_add_test (tc, test_active_antiflap);
    tcase_add_test (tc, test_active_interval);
    tcase_add_test (tc, test_discover);
    tcase_add_test (tc, test_protect_threshold);
    tcase_add_test (tc, test_list);
    tcase_add_test (tc, test_event_order);
    tcase_add_test (tc, test_randomized);
    tcase_add_test (tc, test_large);
    tcase_add_test (tc, test_replica_apply);
    tcase_add_test (tc, test_replica_removal);
    tcase_add_test (tc, test_digest);
    tcase_add_test (tc, test_reconcile);
    tcase_add_test (tc, test_replica_lease);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
