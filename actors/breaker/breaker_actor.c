/*  breaker_actor.c - the breaker actor's shell: reports in, transitions out.
    See breaker_actor.h. */
#include "breaker_actor.h"
#include "breaker.pb-c.h"
#include "keel_config.h"
#include "keel_events.h"
#include "keel_node.h"
#include "keel_server.h"

#include <string.h>

typedef struct {
    keel_server_t *server;        //  requests and reports
    keel_publisher_t *publisher;  //  transitions
    zhashx_t *breakers;           //  key -> keel_breaker_t
    keel_breaker_config_t config; //  settings of every new breaker
    zloop_t *loop;                //  everything runs here
    uint64_t unpermitted;         //  reports of calls the breaker refused
    uint64_t rejected;            //  report entries with a bad key
} self_t;

static uint64_t
s_now_us (void)
{
    return (uint64_t)zclock_usecs ();
}

// ---------------------------------------------------------------------------
//  Settings

int
keel_breaker_config_load (keel_config_t *config, const char *section,
                          keel_breaker_config_t *out)
{
    static const char *keys[] = {"bind",
                                 "window",
                                 "window_size",
                                 "minimum_calls",
                                 "failure_threshold",
                                 "slow_threshold",
                                 "slow_call",
                                 "open_wait",
                                 "open_wait_multiplier",
                                 "open_wait_max",
                                 "half_open_calls",
                                 "max_half_open",
                                 NULL};
    keel_breaker_config_default (out);
    if (keel_config_check_keys (config, section, keys) == -1)
        return -1;
    char path[160];
#define S_PATH(key) (snprintf (path, sizeof path, "%s/%s", section, key), path)
    const char *window = NULL;
    if (keel_config_string (config, S_PATH ("window"), "count", &window) == -1)
        return -1;
    if (streq (window, "count"))
        out->window = KEEL_WINDOW_COUNT;
    else if (streq (window, "time"))
        out->window = KEEL_WINDOW_TIME;
    else
        return keel_config_fail (config, path, "expected count or time");
    int64_t v;
    struct {
        const char *key;
        int64_t min, max;
        uint32_t *field;
    } ints[] = {
        {"window_size", 1, 100000, &out->window_size},
        {"minimum_calls", 1, 100000, &out->minimum_calls},
        {"half_open_calls", 1, 100000, &out->half_open_calls},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (keel_config_int (config, S_PATH (ints[i].key), ints[i].min,
                             ints[i].max, *ints[i].field, &v) == -1)
            return -1;
        *ints[i].field = (uint32_t)v;
    }
    struct {
        const char *key;
        uint64_t *field;
    } durations[] = {
        {"slow_call", &out->slow_call_us},
        {"open_wait", &out->open_wait_us},
        {"open_wait_max", &out->open_wait_max_us},
        {"max_half_open", &out->max_half_open_us},
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        if (keel_config_duration_ms (config, S_PATH (durations[i].key),
                                     (int64_t)(*durations[i].field / 1000),
                                     &v) == -1)
            return -1;
        *durations[i].field = (uint64_t)v * 1000;
    }
    struct {
        const char *key;
        double min, max;
        double *field;
    } reals[] = {
        {"failure_threshold", 0.001, 100, &out->failure_threshold},
        {"slow_threshold", 0.001, 100, &out->slow_threshold},
        {"open_wait_multiplier", 1, 1000, &out->open_wait_multiplier},
    };
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        const char *text = NULL;
        if (keel_config_string (config, S_PATH (reals[i].key), NULL, &text) ==
            -1)
            return -1;
        if (!text)
            continue;
        char *end = NULL;
        double value = strtod (text, &end);
        if (!*text || *end || value < reals[i].min || value > reals[i].max)
            return keel_config_fail (config, path,
                                     "expected a number in %g..%g",
                                     reals[i].min, reals[i].max);
        *reals[i].field = value;
    }
#undef S_PATH
    const char *why = keel_breaker_config_check (out);
    if (why)
        return keel_config_fail (config, section, "%s", why);
    return 0;
}

// ---------------------------------------------------------------------------
//  Breakers

static void
s_on_transition (keel_breaker_t *breaker, keel_breaker_state_t from,
                 keel_breaker_state_t to, const char *reason, uint64_t now_us,
                 void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__BreakerTransition event = KEEL__BREAKER_TRANSITION__INIT;
    event.key = (char *)keel_breaker_key (breaker);
    event.from = (Keel__BreakerState)from;
    event.to = (Keel__BreakerState)to;
    event.reason = (char *)reason;
    if (to == KEEL_BREAKER_OPEN) {
        //  For an OPEN breaker, tick tells when its wait ends.
        uint64_t until = keel_breaker_tick (breaker, now_us);
        event.open_remaining_ms = until > now_us ? (until - now_us) / 1000 : 0;
    }
    keel_publisher_publish (self->publisher, "breaker.transition", &event.base);
}

static void
s_breaker_free (void **item)
{
    keel_breaker_t *breaker = (keel_breaker_t *)*item;
    keel_breaker_destroy (&breaker);
    *item = NULL;
}

//  The breaker of `key`, created on first use. NULL for a bad key.
static keel_breaker_t *
s_breaker (self_t *self, const char *key)
{
    if (!key || !*key || strlen (key) > 256)
        return NULL;
    keel_breaker_t *breaker =
        (keel_breaker_t *)zhashx_lookup (self->breakers, key);
    if (!breaker) {
        breaker = keel_breaker_new (key, &self->config, s_now_us ());
        if (!breaker)
            return NULL;
        keel_breaker_set_listener (breaker, s_on_transition, self);
        zhashx_insert (self->breakers, key, breaker);
    }
    return breaker;
}

static void
s_info (keel_breaker_t *breaker, uint64_t now_us, Keel__BreakerInfo *info)
{
    keel_breaker_stats_t stats = keel_breaker_stats (breaker, now_us);
    keel__breaker_info__init (info);
    info->key = (char *)keel_breaker_key (breaker);
    info->state = (Keel__BreakerState)stats.state;
    info->failure_rate = stats.failure_rate;
    info->slow_rate = stats.slow_rate;
    info->window_calls = stats.window_calls;
    info->calls = stats.calls;
    info->failures = stats.failures;
    info->slow_calls = stats.slow_calls;
    info->transitions = stats.transitions;
    info->time_in_state_ms = (now_us - stats.state_since_us) / 1000;
    if (stats.state == KEEL_BREAKER_OPEN) {
        //  Peek without side effects: tick reports the end of the wait.
        uint64_t until = keel_breaker_tick (breaker, now_us);
        info->open_remaining_ms = until > now_us ? (until - now_us) / 1000 : 0;
    }
}

// ---------------------------------------------------------------------------
//  Requests

static int
s_report (keel_server_t *server, keel_request_t *req, void *arg)
{
    (void)server;
    self_t *self = (self_t *)arg;
    Keel__ReportBatch *batch = (Keel__ReportBatch *)keel_request_payload (
        req, &keel__report_batch__descriptor);
    if (!batch)
        return KEEL_ERR_BAD_REQUEST;
    uint64_t now = s_now_us ();
    for (size_t i = 0; i < batch->n_reports; i++) {
        const Keel__OutcomeReport *report = batch->reports[i];
        keel_breaker_t *breaker = s_breaker (self, report->key);
        if (!breaker || report->outcome > KEEL__CALL_OUTCOME__IGNORED) {
            self->rejected++;
            continue;
        }
        if (keel_breaker_acquire (breaker, now, NULL))
            keel_breaker_record (breaker, (keel_outcome_t)report->outcome,
                                 report->duration_us, now);
        else
            self->unpermitted++;
    }
    if (!keel_request_oneway (req))
        keel_server_reply (server, req, NULL);
    return KEEL_OK;
}

static int
s_control (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__ControlRequest *control =
        (Keel__ControlRequest *)keel_request_payload (
            req, &keel__control_request__descriptor);
    if (!control)
        return KEEL_ERR_BAD_REQUEST;
    keel_breaker_t *breaker = s_breaker (self, control->key);
    if (!breaker) {
        keel_server_reply_error (server, req, KEEL_ERR_INVALID_ARGUMENT,
                                 "a breaker key is 1..256 bytes");
        return KEEL_OK;
    }
    keel_breaker_state_t state;
    switch (control->action) {
    case KEEL__CONTROL_REQUEST__ACTION__FORCE_OPEN:
        state = KEEL_BREAKER_FORCED_OPEN;
        break;
    case KEEL__CONTROL_REQUEST__ACTION__DISABLE:
        state = KEEL_BREAKER_DISABLED;
        break;
    case KEEL__CONTROL_REQUEST__ACTION__METRICS_ONLY:
        state = KEEL_BREAKER_METRICS_ONLY;
        break;
    case KEEL__CONTROL_REQUEST__ACTION__FORCE_CLOSE:
    case KEEL__CONTROL_REQUEST__ACTION__RESET:
        state = KEEL_BREAKER_CLOSED;
        break;
    default:
        keel_server_reply_error (server, req, KEEL_ERR_INVALID_ARGUMENT,
                                 "unknown action %d", (int)control->action);
        return KEEL_OK;
    }
    uint64_t now = s_now_us ();
    keel_breaker_force (breaker, state, now);
    Keel__BreakerInfo info;
    s_info (breaker, now, &info);
    keel_server_reply (server, req, &info.base);
    return KEEL_OK;
}

static int
s_get (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__BreakerKey *key = (Keel__BreakerKey *)keel_request_payload (
        req, &keel__breaker_key__descriptor);
    if (!key)
        return KEEL_ERR_BAD_REQUEST;
    keel_breaker_t *breaker =
        (keel_breaker_t *)zhashx_lookup (self->breakers, key->key);
    if (!breaker) {
        keel_server_reply_error (server, req, KEEL_ERR_NOT_FOUND,
                                 "no breaker '%s'", key->key);
        return KEEL_OK;
    }
    Keel__BreakerInfo info;
    s_info (breaker, s_now_us (), &info);
    keel_server_reply (server, req, &info.base);
    return KEEL_OK;
}

static int
s_compare_keys (const void *a, const void *b)
{
    return strcmp ((*(Keel__BreakerInfo *const *)a)->key,
                   (*(Keel__BreakerInfo *const *)b)->key);
}

static int
s_list (keel_server_t *server, keel_request_t *req, void *arg)
{
    self_t *self = (self_t *)arg;
    size_t count = zhashx_size (self->breakers);
    Keel__BreakerInfo *infos =
        (Keel__BreakerInfo *)calloc (count + 1, sizeof (*infos));
    Keel__BreakerInfo **pointers =
        (Keel__BreakerInfo **)calloc (count + 1, sizeof (*pointers));
    if (!infos || !pointers) {
        free (infos);
        free (pointers);
        return KEEL_ERR_INTERNAL;
    }
    uint64_t now = s_now_us ();
    size_t i = 0;
    for (keel_breaker_t *breaker =
             (keel_breaker_t *)zhashx_first (self->breakers);
         breaker; breaker = (keel_breaker_t *)zhashx_next (self->breakers)) {
        s_info (breaker, now, &infos[i]);
        pointers[i] = &infos[i];
        i++;
    }
    qsort (pointers, count, sizeof (*pointers), s_compare_keys);
    Keel__BreakerList list = KEEL__BREAKER_LIST__INIT;
    list.breakers = pointers;
    list.n_breakers = count;
    list.sequence = keel_publisher_sequence (self->publisher);
    keel_server_reply (server, req, &list.base);
    free (infos);
    free (pointers);
    return KEEL_OK;
}

// ---------------------------------------------------------------------------

//  Half-open breakers may time out without any report arriving.
static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    uint64_t now = s_now_us ();
    for (keel_breaker_t *breaker =
             (keel_breaker_t *)zhashx_first (self->breakers);
         breaker; breaker = (keel_breaker_t *)zhashx_next (self->breakers))
        keel_breaker_tick (breaker, now);
    return 0;
}

void
keel_breaker_actor (zsock_t *pipe, void *args)
{
    keel_actor_args_t *actor = (keel_actor_args_t *)args;
    self_t self = {0};
    const char *error = NULL;
    if (keel_breaker_config_load (actor->config, actor->name, &self.config) ==
        -1)
        error = keel_config_error (actor->config);
    else {
        self.server = keel_server_new (actor->name);
        self.publisher = keel_publisher_new (actor->name);
        self.breakers = zhashx_new ();
        self.loop = zloop_new ();
        if (!self.server || !self.publisher || !self.breakers || !self.loop)
            error = "out of memory";
    }
    if (!error) {
        if (keel_actor_bind (actor, self.server, self.publisher) == -1)
            error = "cannot bind its endpoints";
    }
    if (!error) {
        zhashx_set_destructor (self.breakers, s_breaker_free);
        keel_server_on (self.server, "breaker.report", s_report, &self);
        keel_server_on (self.server, "breaker.control", s_control, &self);
        keel_server_on (self.server, "breaker.get", s_get, &self);
        keel_server_on (self.server, "breaker.list", s_list, &self);
        zloop_reader (self.loop, keel_server_sock (self.server),
                      keel_server_reader, self.server);
        zloop_reader (self.loop, pipe, keel_actor_on_pipe, NULL);
        zloop_timer (self.loop, 100, 0, s_on_tick, &self);
        zloop_set_nonstop (self.loop, true);
    }
    keel_actor_ready (pipe, error);
    if (!error)
        zloop_start (self.loop);
    zloop_destroy (&self.loop);
    zhashx_destroy (&self.breakers);
    keel_publisher_destroy (&self.publisher);
    keel_server_destroy (&self.server);
}
