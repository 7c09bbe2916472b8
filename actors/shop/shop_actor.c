/*  shop_actor.c - the demo saga participants. See shop_actor.h.

    One thread, one zloop:

        pipe ($TERM) ---------------------------.
        shop server (args->endpoint):            \
            shop.effects, shop.heal               >-- zloop
        orders    service (SDK) -orders, tcp base /
        inventory service (SDK) -inventory, +1   /
        payments  service (SDK) -payments, +2   /
        delay timers (one per delayed action) -'

    Each service keeps one record per saga (s_rec_t): what its action
    applied (so a compensation undoes exactly that) and how often each
    effect was applied (the counts tests check). The shop keeps the
    journal: per saga, every effect of the three services in order.
*/
#include "shop_actor.h"
#include "keel_node.h"
#include "keel_service.h"
#include "saga.pb-c.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct _self_t self_t;

//  What tells the three services apart.
typedef struct {
    const char *name;         //  service name
    const char *action;       //  method of the action
    const char *compensation; //  method of its undo
    const char *done;         //  record state after the action
    const char *undone;       //  record state after the compensation
    const char *refusal;      //  CONFLICT text when asked to fail
} s_kind_t;

enum { S_ORDERS, S_INVENTORY, S_PAYMENTS, S_SERVICES };

static const s_kind_t s_kinds[S_SERVICES] = {
    {"orders", "create", "cancel", "CREATED", "CANCELLED", "order rejected"},
    {"inventory", "reserve", "release", "RESERVED", "RELEASED", "out of stock"},
    {"payments", "charge", "refund", "CHARGED", "REFUNDED", "payment declined"},
};

//  One saga as one service knows it.
typedef struct {
    char *id;          //  saga id
    uint32_t applied;  //  times the action took effect
    uint32_t undone;   //  times the compensation was applied
    const char *state; //  "NONE", kind->done or kind->undone (static)
    char *name;        //  order name (orders), item (inventory), or NULL
    int64_t qty;       //  units reserved (inventory), amount (payments)
    bool healed;       //  fail_compensation no longer honoured
} s_rec_t;

//  One service.
typedef struct {
    self_t *self;            //  the shop
    const s_kind_t *kind;    //  what it is
    keel_service_t *service; //  the SDK instance
    char *instance;          //  instance id
    zhashx_t *recs;          //  saga id -> s_rec_t (owned via `ages`)
    zlistx_t *ages;          //  s_rec_t, oldest first (owns them)
    uint64_t requests;       //  step requests that reached a handler
} s_svc_t;

//  A delayed action waiting for its timer.
typedef struct {
    s_svc_t *svc;            //  its service
    keel_request_t *request; //  deferred
    void *handle;            //  in self->pending
} s_pending_t;

//  The saga input, parsed. Strings are borrowed from the JSON document.
typedef struct {
    const char *order, *item;
    json_int_t qty, amount;
    const char *fail, *flaky, *slow, *fail_compensation;
    json_int_t fail_times, delay_ms, delay_times;
} s_input_t;

struct _self_t {
    keel_actor_args_t *args;      //  what the node gave
    zloop_t *loop;                //  everything runs here
    keel_server_t *server;        //  shop.effects, shop.heal
    s_svc_t svcs[S_SERVICES];     //  orders, inventory, payments
    zhashx_t *stock;              //  item -> int64_t units left
    int64_t initial_stock;        //  units of an item not seen yet
    int64_t charged, refunded;    //  payments' sums
    json_t *journal;              //  saga id -> array of "svc.method"
    zlistx_t *journal_ages;       //  saga ids (owned), oldest first
    zlistx_t *pending;            //  s_pending_t: delayed actions
    size_t max_sagas;             //  records kept per service
    const char *instance;         //  instance id base
    char *default_instance;       //  NODE-ACTOR (owned)
    const char *bind;             //  tcp base, or NULL
    const char *advertise;        //  advertised base, or NULL
    char *endpoints[S_SERVICES];  //  tcp endpoints bound (owned), or NULL
    char *advertised[S_SERVICES]; //  what each advertises (owned), or NULL
    bool enabled[S_SERVICES];     //  the services this actor runs
};

// ---------------------------------------------------------------------------
//  Records

static void
s_rec_free (void **item)
{
    s_rec_t *rec = (s_rec_t *)*item;
    if (!rec)
        return;
    free (rec->id);
    free (rec->name);
    free (rec);
    *item = NULL;
}

//  The record of saga `id`, made if new (the oldest goes when over the
//  bound). NULL if out of memory.
static s_rec_t *
s_rec_get (s_svc_t *svc, const char *id)
{
    s_rec_t *rec = (s_rec_t *)zhashx_lookup (svc->recs, id);
    if (rec)
        return rec;
    rec = (s_rec_t *)calloc (1, sizeof (s_rec_t));
    if (!rec || !(rec->id = strdup (id))) {
        free (rec);
        return NULL;
    }
    rec->state = "NONE";
    while (zlistx_size (svc->ages) >= svc->self->max_sagas) {
        s_rec_t *old = (s_rec_t *)zlistx_first (svc->ages);
        zhashx_delete (svc->recs, old->id);
        zlistx_delete (svc->ages, zlistx_cursor (svc->ages));
    }
    zhashx_insert (svc->recs, id, rec);
    zlistx_add_end (svc->ages, rec);
    return rec;
}

//  Note in the journal that `svc`'s `method` took effect for saga `id`.
static void
s_journal_add (self_t *self, const char *id, const s_kind_t *kind,
               const char *method)
{
    json_t *list = json_object_get (self->journal, id);
    if (!list) {
        while (zlistx_size (self->journal_ages) >= self->max_sagas) {
            char *old = (char *)zlistx_first (self->journal_ages);
            json_object_del (self->journal, old);
            zlistx_delete (self->journal_ages,
                           zlistx_cursor (self->journal_ages));
        }
        list = json_array ();
        if (!list || json_object_set_new (self->journal, id, list) == -1)
            return;
        zlistx_add_end (self->journal_ages, strdup (id));
    }
    char entry[64];
    snprintf (entry, sizeof entry, "%s.%s", kind->name, method);
    json_array_append_new (list, json_string (entry));
}

// ---------------------------------------------------------------------------
//  Input

//  A string value of `key`, or NULL; false if present and not a string.
static bool
s_string (json_t *doc, const char *key, const char **value_p)
{
    json_t *value = json_object_get (doc, key);
    *value_p = value ? json_string_value (value) : NULL;
    return !value || json_is_string (value);
}

//  An integer value of `key` in [min, max], or `dflt`; false if present and
//  not such an integer.
static bool
s_integer (json_t *doc, const char *key, json_int_t min, json_int_t max,
           json_int_t dflt, json_int_t *value_p)
{
    json_t *value = json_object_get (doc, key);
    *value_p = value ? json_integer_value (value) : dflt;
    return !value ||
           (json_is_integer (value) && *value_p >= min && *value_p <= max);
}

//  Parse the saga input of `req` into *in. Returns the document (caller
//  decrefs; *in borrows from it), or NULL with *error_p (static) set.
static json_t *
s_input_parse (const Keel__SagaStepRequest *req, s_input_t *in,
               const char **error_p)
{
    json_error_t jerr;
    json_t *doc = req->input.len ? json_loadb ((const char *)req->input.data,
                                               req->input.len, 0, &jerr)
                                 : json_object ();
    if (!doc || !json_is_object (doc)) {
        json_decref (doc);
        *error_p = "the saga input is not a JSON object";
        return NULL;
    }
    memset (in, 0, sizeof *in);
    const char *bad = NULL;
    if (!s_string (doc, "order", &in->order))
        bad = "input: order must be a string";
    else if (!s_string (doc, "item", &in->item))
        bad = "input: item must be a string";
    else if (!s_integer (doc, "qty", 1, 1000000000, 1, &in->qty))
        bad = "input: qty must be an integer in 1..1000000000";
    else if (!s_integer (doc, "amount", 0, 1000000000000LL, 0, &in->amount))
        bad = "input: amount must be an integer in 0..1000000000000";
    else if (!s_string (doc, "fail", &in->fail) ||
             !s_string (doc, "flaky", &in->flaky) ||
             !s_string (doc, "slow", &in->slow) ||
             !s_string (doc, "fail_compensation", &in->fail_compensation))
        bad = "input: fail, flaky, slow and fail_compensation must be "
              "service names";
    else if (!s_integer (doc, "fail_times", 0, 1000000, 0, &in->fail_times) ||
             !s_integer (doc, "delay_ms", 0, 3600000, 0, &in->delay_ms) ||
             !s_integer (doc, "delay_times", 0, 1000000, 0, &in->delay_times))
        bad = "input: fail_times, delay_ms (<= 3600000) and delay_times "
              "must be integers >= 0";
    if (bad) {
        json_decref (doc);
        *error_p = bad;
        return NULL;
    }
    if (!in->item)
        in->item = "widget";
    return doc;
}

//  Does an option naming a service (NULL = every service) apply to `svc`?
static bool
s_applies (const char *option, const s_svc_t *svc)
{
    return !option || streq (option, svc->kind->name);
}

// ---------------------------------------------------------------------------
//  Replies

//  Reply with a JSON document (stolen) as the payload bytes.
static void
s_reply_json (keel_server_t *server, keel_request_t *request, json_t *doc)
{
    char *text = doc ? json_dumps (doc, JSON_COMPACT) : NULL;
    json_decref (doc);
    if (text)
        keel_server_reply_bytes (server, request, text, strlen (text));
    else
        keel_server_reply_error (server, request, KEEL_ERR_INTERNAL,
                                 "out of memory");
    free (text);
}

static int64_t *
s_stock (self_t *self, const char *item)
{
    int64_t *units = (int64_t *)zhashx_lookup (self->stock, item);
    if (!units) {
        units = (int64_t *)malloc (sizeof (int64_t));
        if (!units)
            return NULL;
        *units = self->initial_stock;
        zhashx_insert (self->stock, item, units);
    }
    return units;
}

// ---------------------------------------------------------------------------
//  Actions

//  Run the action of `svc` for `req` now: refuse it or apply it, reply.
static void
s_run_action (s_svc_t *svc, keel_request_t *request,
              const Keel__SagaStepRequest *req, const s_input_t *in)
{
    self_t *self = svc->self;
    keel_server_t *server = keel_service_server (svc->service);
    s_rec_t *rec = s_rec_get (svc, req->saga_id);
    if (!rec) {
        keel_server_reply_error (server, request, KEEL_ERR_INTERNAL,
                                 "out of memory");
        return;
    }
    int code = KEEL_OK;
    char text[256] = "";
    json_t *doc = NULL;
    int kind = (int)(svc->kind - s_kinds);
    if (in->fail && streq (in->fail, svc->kind->name)) {
        code = KEEL_ERR_CONFLICT;
        snprintf (text, sizeof text, "%s (asked to fail)", svc->kind->refusal);
    } else if (kind == S_ORDERS) {
        const char *order = in->order ? in->order : req->saga_id;
        free (rec->name);
        rec->name = strdup (order);
        doc =
            json_pack ("{s:s, s:s}", "order", order, "state", svc->kind->done);
    } else if (kind == S_INVENTORY) {
        int64_t *units = s_stock (self, in->item);
        if (!units) {
            code = KEEL_ERR_INTERNAL;
            snprintf (text, sizeof text, "out of memory");
        } else if (*units < in->qty) {
            code = KEEL_ERR_CONFLICT;
            snprintf (text, sizeof text,
                      "out of stock: %.100s has %lld, %lld asked", in->item,
                      (long long)*units, (long long)in->qty);
        } else {
            *units -= in->qty;
            free (rec->name);
            rec->name = strdup (in->item);
            rec->qty = in->qty;
            doc = json_pack ("{s:s, s:I, s:I}", "item", in->item, "qty",
                             (json_int_t)in->qty, "stock", (json_int_t)*units);
        }
    } else {
        self->charged += in->amount;
        rec->qty = in->amount;
        doc = json_pack ("{s:s, s:I, s:s}", "saga", req->saga_id, "amount",
                         (json_int_t)in->amount, "state", svc->kind->done);
    }
    if (code == KEEL_OK) {
        rec->applied++;
        rec->state = svc->kind->done;
        s_journal_add (self, req->saga_id, svc->kind, svc->kind->action);
        s_reply_json (server, request, doc);
    } else {
        json_decref (doc);
        keel_server_reply_error (server, request, (keel_err_t)code, "%s", text);
    }
}

static int
s_on_delay (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_pending_t *pending = (s_pending_t *)arg;
    s_svc_t *svc = pending->svc;
    zlistx_delete (svc->self->pending, pending->handle);
    keel_request_t *request = pending->request;
    free (pending);
    keel_server_t *server = keel_service_server (svc->service);
    int64_t deadline = keel_request_deadline (request);
    if (deadline && keel_now_ms () >= deadline)
        //  Nobody waits for it any more: drop the work.
        keel_server_reply_error (server, request, KEEL_ERR_TIMEOUT,
                                 "%s: the caller's deadline passed during the "
                                 "delay: not applied",
                                 svc->kind->name);
    else {
        Keel__SagaStepRequest *req =
            (Keel__SagaStepRequest *)keel_request_payload (
                request, &keel__saga_step_request__descriptor);
        s_input_t in;
        const char *error = NULL;
        json_t *doc = req ? s_input_parse (req, &in, &error) : NULL;
        if (doc)
            s_run_action (svc, request, req, &in);
        else
            keel_server_reply_error (server, request, KEEL_ERR_INTERNAL,
                                     "delayed request lost its payload");
        json_decref (doc);
    }
    keel_request_destroy (&request);
    return 0;
}

static int
s_on_action (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_svc_t *svc = (s_svc_t *)arg;
    Keel__SagaStepRequest *req = (Keel__SagaStepRequest *)keel_request_payload (
        request, &keel__saga_step_request__descriptor);
    if (!req || !*req->saga_id)
        return KEEL_ERR_BAD_REQUEST;
    svc->requests++;
    s_input_t in;
    const char *error = NULL;
    json_t *doc = s_input_parse (req, &in, &error);
    if (!doc) {
        keel_server_reply_error (server, request, KEEL_ERR_BAD_REQUEST, "%s",
                                 error);
        return KEEL_OK;
    }
    if (in.fail_times && s_applies (in.flaky, svc) &&
        req->attempt <= in.fail_times)
        keel_server_reply_error (server, request, KEEL_ERR_UNAVAILABLE,
                                 "%s.%s: attempt %u of %lld fails on purpose",
                                 svc->kind->name, svc->kind->action,
                                 req->attempt, (long long)in.fail_times);
    else if (in.delay_ms && s_applies (in.slow, svc) &&
             (!in.delay_times || req->attempt <= in.delay_times)) {
        s_pending_t *pending = (s_pending_t *)calloc (1, sizeof *pending);
        keel_request_t *deferred =
            pending ? keel_server_defer (server, request) : NULL;
        if (!deferred) {
            free (pending);
            json_decref (doc);
            return KEEL_ERR_INTERNAL;
        }
        pending->svc = svc;
        pending->request = deferred;
        if (zloop_timer (svc->self->loop, (size_t)in.delay_ms, 1, s_on_delay,
                         pending) == -1) {
            keel_server_reply_error (server, deferred, KEEL_ERR_INTERNAL,
                                     "cannot set a timer");
            keel_request_destroy (&deferred);
            free (pending);
        } else
            pending->handle = zlistx_add_end (svc->self->pending, pending);
    } else
        s_run_action (svc, request, req, &in);
    json_decref (doc);
    return KEEL_OK;
}

// ---------------------------------------------------------------------------
//  Compensations

static int
s_on_compensation (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_svc_t *svc = (s_svc_t *)arg;
    self_t *self = svc->self;
    Keel__SagaStepRequest *req = (Keel__SagaStepRequest *)keel_request_payload (
        request, &keel__saga_step_request__descriptor);
    if (!req || !*req->saga_id)
        return KEEL_ERR_BAD_REQUEST;
    svc->requests++;
    s_input_t in;
    const char *error = NULL;
    json_t *input = s_input_parse (req, &in, &error);
    if (!input) {
        keel_server_reply_error (server, request, KEEL_ERR_BAD_REQUEST, "%s",
                                 error);
        return KEEL_OK;
    }
    s_rec_t *rec = s_rec_get (svc, req->saga_id);
    if (!rec) {
        json_decref (input);
        return KEEL_ERR_INTERNAL;
    }
    if (in.fail_compensation && streq (in.fail_compensation, svc->kind->name) &&
        !rec->healed) {
        keel_server_reply_error (
            server, request, KEEL_ERR_UNAVAILABLE,
            "%s.%s of saga %s fails until healed (%s.heal)", svc->kind->name,
            svc->kind->compensation, req->saga_id, svc->kind->name);
        json_decref (input);
        return KEEL_OK;
    }
    json_decref (input);
    rec->undone++;
    s_journal_add (self, req->saga_id, svc->kind, svc->kind->compensation);
    //  Undo what the action applied, once per application.
    bool undo = rec->applied >= rec->undone;
    int kind = (int)(svc->kind - s_kinds);
    json_t *doc = NULL;
    if (kind == S_ORDERS)
        doc = json_pack ("{s:s}", "order", rec->name ? rec->name : "");
    else if (kind == S_INVENTORY) {
        int64_t *units = rec->name ? s_stock (self, rec->name) : NULL;
        if (undo && units)
            *units += rec->qty;
        doc = json_pack ("{s:s, s:I, s:I}", "item", rec->name ? rec->name : "",
                         "qty", (json_int_t)rec->qty, "stock",
                         (json_int_t)(units ? *units : 0));
    } else {
        if (undo)
            self->refunded += rec->qty;
        doc = json_pack ("{s:s, s:I}", "saga", req->saga_id, "amount",
                         (json_int_t)rec->qty);
    }
    if (undo)
        rec->state = svc->kind->undone;
    if (doc)
        json_object_set_new (doc, "state", json_string (rec->state));
    s_reply_json (server, request, doc);
    return KEEL_OK;
}

// ---------------------------------------------------------------------------
//  Effects and heal

static json_t *
s_svc_effects (s_svc_t *svc)
{
    self_t *self = svc->self;
    const keel_service_stats_t *stats = keel_service_stats (svc->service);
    size_t pending = 0;
    for (s_pending_t *p = (s_pending_t *)zlistx_first (self->pending); p;
         p = (s_pending_t *)zlistx_next (self->pending))
        pending += p->svc == svc;
    json_t *sagas = json_object ();
    for (s_rec_t *rec = (s_rec_t *)zlistx_first (svc->ages); rec;
         rec = (s_rec_t *)zlistx_next (svc->ages)) {
        json_t *item = json_object ();
        json_object_set_new (item, svc->kind->action,
                             json_integer (rec->applied));
        json_object_set_new (item, svc->kind->compensation,
                             json_integer (rec->undone));
        json_object_set_new (item, "state", json_string (rec->state));
        if (svc->kind == &s_kinds[S_ORDERS] && rec->name)
            json_object_set_new (item, "order", json_string (rec->name));
        else if (svc->kind == &s_kinds[S_INVENTORY] && rec->name) {
            json_object_set_new (item, "item", json_string (rec->name));
            json_object_set_new (item, "qty", json_integer (rec->qty));
        } else if (svc->kind == &s_kinds[S_PAYMENTS])
            json_object_set_new (item, "amount", json_integer (rec->qty));
        json_object_set_new (sagas, rec->id, item);
    }
    json_t *doc = json_pack ("{s:s, s:s, s:I, s:I, s:I, s:o}", "service",
                             svc->kind->name, "instance", svc->instance,
                             "requests", (json_int_t)svc->requests,
                             "dedupe_hits", (json_int_t)stats->dedupe_hits,
                             "pending", (json_int_t)pending, "sagas", sagas);
    if (doc && svc->kind == &s_kinds[S_INVENTORY]) {
        json_t *stock = json_object ();
        for (int64_t *units = (int64_t *)zhashx_first (self->stock); units;
             units = (int64_t *)zhashx_next (self->stock))
            json_object_set_new (stock,
                                 (const char *)zhashx_cursor (self->stock),
                                 json_integer (*units));
        json_object_set_new (doc, "stock", stock);
    } else if (doc && svc->kind == &s_kinds[S_PAYMENTS]) {
        json_object_set_new (doc, "charged", json_integer (self->charged));
        json_object_set_new (doc, "refunded", json_integer (self->refunded));
    }
    return doc;
}

//  Reply with `doc` (stolen) unless it is larger than a message may be.
static void
s_reply_effects (self_t *self, keel_server_t *server, keel_request_t *request,
                 json_t *doc)
{
    char *text = doc ? json_dumps (doc, JSON_COMPACT) : NULL;
    json_decref (doc);
    if (!text)
        keel_server_reply_error (server, request, KEEL_ERR_INTERNAL,
                                 "out of memory");
    else if (self->args->max_msg_size &&
             strlen (text) + 1024 > self->args->max_msg_size)
        keel_server_reply_error (server, request, KEEL_ERR_TOO_LARGE,
                                 "the effects take %zu bytes, over the "
                                 "message limit",
                                 strlen (text));
    else
        keel_server_reply_bytes (server, request, text, strlen (text));
    free (text);
}

static int
s_on_effects (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_svc_t *svc = (s_svc_t *)arg;
    s_reply_effects (svc->self, server, request, s_svc_effects (svc));
    return KEEL_OK;
}

static size_t
s_heal (s_svc_t *svc)
{
    size_t healed = 0;
    for (s_rec_t *rec = (s_rec_t *)zlistx_first (svc->ages); rec;
         rec = (s_rec_t *)zlistx_next (svc->ages))
        if (!rec->healed) {
            rec->healed = true;
            healed++;
        }
    return healed;
}

static int
s_on_heal (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_reply_json (server, request,
                  json_pack ("{s:I}", "healed", (json_int_t)s_heal (arg)));
    return KEEL_OK;
}

static int
s_on_shop_effects (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    json_t *doc = json_object ();
    for (int i = 0; i < S_SERVICES; i++)
        if (self->enabled[i])
            json_object_set_new (doc, s_kinds[i].name,
                                 s_svc_effects (&self->svcs[i]));
    json_object_set (doc, "journal", self->journal);
    s_reply_effects (self, server, request, doc);
    return KEEL_OK;
}

static int
s_on_shop_heal (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    size_t healed = 0;
    for (int i = 0; i < S_SERVICES; i++)
        healed += s_heal (&self->svcs[i]);
    s_reply_json (server, request,
                  json_pack ("{s:I}", "healed", (json_int_t)healed));
    return KEEL_OK;
}

// ---------------------------------------------------------------------------
//  Set-up

//  Split "tcp://HOST:PORT" into host and port text. false if not tcp.
static bool
s_tcp_split (const char *endpoint, char *host, size_t host_size, char *port,
             size_t port_size)
{
    if (!endpoint || strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *colon = strrchr (endpoint + 6, ':');
    if (!colon)
        return false;
    size_t len = (size_t)(colon - endpoint - 6);
    if (len >= host_size || strlen (colon + 1) >= port_size)
        return false;
    memcpy (host, endpoint + 6, len);
    host[len] = 0;
    strcpy (port, colon + 1);
    return true;
}

//  Port text + k, or "*" for an ephemeral base (or one too high for
//  three ports: then each gets any free port).
static void
s_port_plus (const char *port, int k, char *out, size_t size)
{
    long base = strtol (port, NULL, 10);
    if (streq (port, "*") || base <= 0 || base > 65535 - 2)
        snprintf (out, size, "*");
    else
        snprintf (out, size, "%d", (int)base + k);
}

//  Bind service i's extra endpoint from `shop/bind` and work out what it
//  advertises. Returns 0 or -1.
static int
s_bind_extra (self_t *self, int i)
{
    s_svc_t *svc = &self->svcs[i];
    char host[256], port[16], out[16];
    if (!s_tcp_split (self->bind, host, sizeof host, port, sizeof port)) {
        //  ipc:// or inproc://: a suffix, as for the actor's own endpoint.
        char *endpoint = zsys_sprintf ("%s-%s", self->bind, svc->kind->name);
        int rc = keel_service_bind (svc->service, endpoint);
        self->endpoints[i] = endpoint;
        return rc == -1 ? -1 : 0;
    }
    s_port_plus (port, i, out, sizeof out);
    self->endpoints[i] = zsys_sprintf ("tcp://%s:%s", host, out);
    int bound = keel_service_bind (svc->service, self->endpoints[i]);
    if (bound <= 0)
        return -1;
    //  What others connect to: the advertise base (or the bind host, a
    //  wildcard made loopback) and the port bound.
    char ahost[256], aport[16];
    if (self->advertise && s_tcp_split (self->advertise, ahost, sizeof ahost,
                                        aport, sizeof aport)) {
        s_port_plus (aport, i, out, sizeof out);
        if (streq (out, "*"))
            snprintf (out, sizeof out, "%d", bound);
    } else {
        snprintf (ahost, sizeof ahost, "%s",
                  streq (host, "*") || streq (host, "0.0.0.0") ? "127.0.0.1"
                                                               : host);
        snprintf (out, sizeof out, "%d", bound);
    }
    self->advertised[i] = zsys_sprintf ("tcp://%s:%s", ahost, out);
    keel_service_set_advertise (svc->service, self->advertised[i]);
    return 0;
}

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static const char *
s_self_init (self_t *self)
{
    keel_actor_args_t *args = self->args;
    keel_config_t *config = args->config;
    static const char *keys[] = {"bind",      "advertise", "stock", "instance",
                                 "max_sagas", "services",  NULL};
    char path[5][160];
    snprintf (path[0], sizeof path[0], "%s/stock", args->name);
    snprintf (path[1], sizeof path[1], "%s/instance", args->name);
    snprintf (path[2], sizeof path[2], "%s/max_sagas", args->name);
    snprintf (path[3], sizeof path[3], "%s/advertise", args->name);
    int64_t max_sagas = 0;
    self->default_instance = zsys_sprintf ("%s-%s", args->node, args->name);
    if (keel_config_check_keys (config, args->name, keys) == -1 ||
        keel_config_int (config, path[0], 0, INT64_MAX / 4, 1000,
                         &self->initial_stock) == -1 ||
        keel_config_string (config, path[1], self->default_instance,
                            &self->instance) == -1 ||
        keel_config_int (config, path[2], 1, 100000000, 100000, &max_sagas) ==
            -1 ||
        keel_config_endpoint (config, path[3], NULL, &self->advertise) == -1)
        return keel_config_error (config);
    self->max_sagas = (size_t)max_sagas;
    //  Which of the three to run: all by default.
    snprintf (path[4], sizeof path[4], "%s/services", args->name);
    const char *services = NULL;
    if (keel_config_string (config, path[4], "orders inventory payments",
                            &services) == -1)
        return keel_config_error (config);
    char *list = strdup (services), *save = NULL;
    if (!list)
        return "out of memory";
    for (char *word = strtok_r (list, " ,", &save); word;
         word = strtok_r (NULL, " ,", &save)) {
        int found = -1;
        for (int i = 0; i < S_SERVICES; i++)
            if (streq (word, s_kinds[i].name))
                found = i;
        if (found < 0) {
            free (list);
            keel_config_fail (config, path[4],
                              "expected orders, inventory and/or payments");
            return keel_config_error (config);
        }
        self->enabled[found] = true;
    }
    free (list);
    self->bind = args->bind;
    if (self->advertise && strncmp (self->advertise, "tcp://", 6) != 0) {
        keel_config_fail (config, path[3], "expected a tcp endpoint");
        return keel_config_error (config);
    }
    self->loop = zloop_new ();
    self->server = keel_server_new (args->name);
    self->stock = zhashx_new ();
    self->journal = json_object ();
    self->journal_ages = zlistx_new ();
    self->pending = zlistx_new ();
    if (!self->loop || !self->server || !self->stock || !self->journal ||
        !self->journal_ages || !self->pending)
        return "out of memory";
    zhashx_set_destructor (self->stock, s_free_item);
    zlistx_set_destructor (self->journal_ages, s_free_item);
    const char *registry =
        keel_directory_endpoint (args->directory, "registry");
    for (int i = 0; i < S_SERVICES; i++) {
        s_svc_t *svc = &self->svcs[i];
        svc->self = self;
        svc->kind = &s_kinds[i];
        svc->instance = zsys_sprintf ("%s-%s", self->instance, s_kinds[i].name);
        svc->recs = zhashx_new ();
        svc->ages = zlistx_new ();
        if (!svc->instance || !svc->recs || !svc->ages)
            return "out of memory";
        zlistx_set_destructor (svc->ages, s_rec_free);
        if (!self->enabled[i])
            continue;
        if (!(svc->service = keel_service_new (s_kinds[i].name, svc->instance)))
            return "out of memory";
        keel_server_set_max_msg_size (keel_service_server (svc->service),
                                      args->max_msg_size);
        char *endpoint =
            zsys_sprintf ("%s-%s", args->endpoint, s_kinds[i].name);
        int rc = keel_service_bind (svc->service, endpoint);
        zstr_free (&endpoint);
        if (rc == -1 || (self->bind && s_bind_extra (self, i) == -1))
            return "cannot bind its endpoints";
        char method[128];
        snprintf (method, sizeof method, "%s.%s", s_kinds[i].name,
                  s_kinds[i].action);
        keel_service_on (svc->service, method, s_on_action, svc);
        snprintf (method, sizeof method, "%s.%s", s_kinds[i].name,
                  s_kinds[i].compensation);
        keel_service_on (svc->service, method, s_on_compensation, svc);
        snprintf (method, sizeof method, "%s.effects", s_kinds[i].name);
        keel_service_on (svc->service, method, s_on_effects, svc);
        snprintf (method, sizeof method, "%s.heal", s_kinds[i].name);
        keel_service_on (svc->service, method, s_on_heal, svc);
        if (registry)
            keel_service_set_registry (svc->service, registry, 1000);
        if (keel_service_attach (svc->service, self->loop) == -1)
            return "cannot attach to its loop";
    }
    keel_server_set_max_msg_size (self->server, args->max_msg_size);
    if (keel_server_bind (self->server, args->endpoint) == -1)
        return "cannot bind its endpoint";
    keel_server_on (self->server, "shop.effects", s_on_shop_effects, self);
    keel_server_on (self->server, "shop.heal", s_on_shop_heal, self);
    zloop_reader (self->loop, keel_server_sock (self->server),
                  keel_server_reader, self->server);
    zloop_set_nonstop (self->loop, true);
    return NULL;
}

static void
s_self_destroy (self_t *self)
{
    //  Delayed actions never answered: their callers time out.
    if (self->pending) {
        for (s_pending_t *p = (s_pending_t *)zlistx_first (self->pending); p;
             p = (s_pending_t *)zlistx_next (self->pending)) {
            keel_request_destroy (&p->request);
            free (p);
        }
        zlistx_destroy (&self->pending);
    }
    for (int i = 0; i < S_SERVICES; i++) {
        s_svc_t *svc = &self->svcs[i];
        keel_service_destroy (&svc->service);
        zhashx_destroy (&svc->recs);
        zlistx_destroy (&svc->ages);
        free (svc->instance);
        free (self->endpoints[i]);
        free (self->advertised[i]);
    }
    keel_server_destroy (&self->server);
    zloop_destroy (&self->loop);
    zhashx_destroy (&self->stock);
    json_decref (self->journal);
    zlistx_destroy (&self->journal_ages);
    free (self->default_instance);
}

void
keel_shop_actor (zsock_t *pipe, void *args)
{
    self_t self;
    memset (&self, 0, sizeof self);
    self.args = (keel_actor_args_t *)args;
    const char *error = s_self_init (&self);
    keel_actor_ready (pipe, error);
    if (!error) {
        zloop_reader (self.loop, pipe, keel_actor_on_pipe, NULL);
        zloop_start (self.loop);
    }
    s_self_destroy (&self);
}
