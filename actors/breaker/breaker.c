/*  breaker.c - the circuit breaker's pure core (see breaker.h).

    One breaker, everything allocated by keel_breaker_new:

      +--------------------------------------------------------------+
      | state, state_since, open_until, half_open_deadline           |
      | window totals: w_calls  w_failures  w_slow   (running sums)  |
      | trial tally:   permits  trial_done  trial_calls/fails/slow   |
      | totals since creation, consecutive_opens, config, key        |
      +--------------------------------------------------------------+
              |                                   |
              v COUNT: ring of window_size bytes  v TIME: window_size buckets
      +---+---+---+---+---+---+             +-----------------------------+
      | o | o | o | o |   |   |             | sec | calls | fails | slow  |
      +---+---+---+---+---+---+             +-----------------------------+
            ^head: next slot to write;      bucket i holds the second s with
             the oldest once the ring is    s % window_size == i; cur_idx is
             full. A byte: bit 0 failure,   the current second's. A bucket
             bit 1 slow.                    counts iff its sec >= valid_from.

    COUNT. w_calls counts the filled slots. A record writes ring[head]; when
    the ring is full, the outcome there leaves the sums first. Emptying is
    O(1): head = 0, sums = 0 (slots past w_calls are never read).

    TIME. A call lands in the bucket of its second. Moving into a new second
    walks the seconds in between (at most window_size - 1 of them, usually
    one), taking each reused bucket's counts off the sums. A gap of
    window_size seconds or more empties the window at once: valid_from is
    set to the new second and stale buckets are skipped when reused. So
    emptying is O(1) too. now_us earlier than the current second (a late
    record) counts in the current second: the window never moves back.

    Rates are failures * 100 / calls, judged (and reported) only once the
    window holds minimum_calls calls. For a COUNT window minimum_calls is
    capped at window_size, as in Resilience4j: a window of 10 with the
    default minimum of 100 would otherwise never judge.

    States, beyond breaker.h:
      - The window survives OPEN and HALF_OPEN (stats show the calls that
        tripped it while OPEN) and is emptied on entering CLOSED.
      - HALF_OPEN counts its trials apart from the window; stats in
        HALF_OPEN report the trial tally as the window (as Resilience4j's
        half-open metrics). A record counts as a trial only while there are
        fewer trial records than permits given: an older call that reports
        late counts in the totals only. An IGNORED trial uses up its permit
        and counts neither way; the verdict is over the other trials, and
        all trials ignored closes.
      - A record in OPEN or FORCED_OPEN (permitted before the change) counts
        in the totals only; in DISABLED nothing counts; IGNORED never counts.
      - Forcing the state a breaker is already in changes nothing, except
        that forcing CLOSED always resets. Forcing OPEN counts as an open.
      - `transitions` counts the changes the listener hears: a mirror is
        neither heard nor counted.
*/
#include "breaker.h"
#include "keel_common.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

//  Largest window: a million calls (1 MB of ring) or seconds (~11 days).
#define S_MAX_WINDOW 1000000u
#define S_US_PER_SEC 1000000u

#define S_FAILED 1u //  ring byte: the call failed
#define S_SLOW   2u //  ring byte: the call was slow

// ---------------------------------------------------------------------------
//  Structures

//  One second of a TIME window.
typedef struct {
    uint64_t sec;      //  the second it holds (now_us / 1e6)
    uint32_t calls;    //  calls recorded in it
    uint32_t failures; //  of which failures
    uint32_t slow;     //  of which slow
} bucket_t;

struct _keel_breaker_t {
    keel_breaker_state_t state; //  current state
    uint32_t size;              //  config.window_size
    uint32_t min_calls;         //  minimum_calls, capped for COUNT
    uint32_t w_calls;           //  calls in the window
    uint32_t w_failures;        //  of which failures
    uint32_t w_slow;            //  of which slow
    uint64_t slow_call_us;      //  config.slow_call_us
    double failure_threshold;   //  config.failure_threshold
    double slow_threshold;      //  config.slow_threshold

    uint8_t *ring;       //  COUNT: size outcomes; owned
    uint32_t head;       //  COUNT: slot the next outcome goes to
    bucket_t *buckets;   //  TIME: size buckets; owned
    uint32_t cur_idx;    //  TIME: bucket of the current second
    uint64_t cur_sec;    //  TIME: the current second
    uint64_t cur_end;    //  TIME: first microsecond after it
    uint64_t valid_from; //  TIME: buckets of earlier seconds are stale

    uint32_t permits;            //  HALF_OPEN: trial permits given
    uint32_t trial_done;         //  HALF_OPEN: trial outcomes recorded
    uint32_t trial_calls;        //  HALF_OPEN: of which not ignored
    uint32_t trial_failures;     //  HALF_OPEN: of which failures
    uint32_t trial_slow;         //  HALF_OPEN: of which slow
    uint64_t half_open_deadline; //  HALF_OPEN: no verdict by then -> OPEN;
                                 //  0 = none

    uint64_t state_since;       //  when the state was entered
    uint64_t open_until;        //  OPEN: end of the wait
    uint32_t consecutive_opens; //  opens since the last close

    uint64_t calls;       //  recorded since creation
    uint64_t failures;    //  recorded failures
    uint64_t slow_calls;  //  recorded slow calls
    uint64_t refused;     //  acquires refused
    uint64_t transitions; //  state changes the listener heard

    keel_breaker_config_t config;   //  as given
    char *key;                      //  owned
    keel_breaker_transition_fn *fn; //  listener, or NULL
    void *fn_arg;                   //  its argument
    int in_listener;                //  listener calls running (nesting)
};

// ---------------------------------------------------------------------------
//  Small helpers

static uint64_t
s_add (uint64_t t, uint64_t us)
{
    return t > UINT64_MAX - us ? UINT64_MAX : t + us;
}

static uint32_t
s_inc (uint32_t n)
{
    return n == UINT32_MAX ? n : n + 1;
}

//  Percent of `part` in `whole` (> 0). The one formula for judging and
//  reporting, so a reported rate always agrees with the verdict.
static double
s_rate (uint32_t part, uint32_t whole)
{
    return (double)part * 100.0 / (double)whole;
}

static bool
s_state_valid (int state)
{
    return state >= KEEL_BREAKER_CLOSED && state <= KEEL_BREAKER_METRICS_ONLY;
}

//  The wait of the k-th consecutive open (k >= 1).
static uint64_t
s_open_wait (const keel_breaker_config_t *config, uint32_t k)
{
    double wait = (double)config->open_wait_us *
                  pow (config->open_wait_multiplier, (double)k - 1);
    if (!(wait < (double)config->open_wait_max_us)) //  also inf
        return config->open_wait_max_us;
    return (uint64_t)wait;
}

// ---------------------------------------------------------------------------
//  Windows

static void
s_window_clear (keel_breaker_t *self)
{
    self->w_calls = self->w_failures = self->w_slow = 0;
    self->head = 0;
    if (self->buckets) {
        bucket_t *bucket = &self->buckets[self->cur_idx];
        memset (bucket, 0, sizeof *bucket);
        bucket->sec = self->cur_sec;
        self->valid_from = self->cur_sec;
    }
}

//  TIME: make `sec` (a later second than cur_sec) the current one.
static void
s_time_move (keel_breaker_t *self, uint64_t sec)
{
    assert (sec > self->cur_sec);
    self->cur_end = sec >= UINT64_MAX / S_US_PER_SEC ? UINT64_MAX
                                                     : (sec + 1) * S_US_PER_SEC;
    if (sec - self->cur_sec >= self->size) {
        //  Every bucket aged out.
        self->cur_sec = sec;
        self->cur_idx = (uint32_t)(sec % self->size);
        s_window_clear (self);
        return;
    }
    while (self->cur_sec < sec) {
        self->cur_sec++;
        self->cur_idx = self->cur_idx + 1 == self->size ? 0 : self->cur_idx + 1;
        bucket_t *bucket = &self->buckets[self->cur_idx];
        if (bucket->sec >= self->valid_from) {
            self->w_calls -= bucket->calls;
            self->w_failures -= bucket->failures;
            self->w_slow -= bucket->slow;
        }
        memset (bucket, 0, sizeof *bucket);
        bucket->sec = self->cur_sec;
    }
}

//  TIME: age the window to `now_us`.
static inline void
s_time_advance (keel_breaker_t *self, uint64_t now_us)
{
    if (now_us >= self->cur_end)
        s_time_move (self, now_us / S_US_PER_SEC);
}

//  Add one call (`bits`: S_FAILED, S_SLOW) to the window at `now_us`.
static inline void
s_window_add (keel_breaker_t *self, unsigned bits, uint64_t now_us)
{
    unsigned failed = bits & S_FAILED, slow = (bits & S_SLOW) != 0;
    if (self->ring) {
        if (self->w_calls == self->size) {
            unsigned old = self->ring[self->head];
            self->w_failures -= old & S_FAILED;
            self->w_slow -= (old & S_SLOW) != 0;
        } else
            self->w_calls++;
        self->ring[self->head] = (uint8_t)bits;
        self->head = self->head + 1 == self->size ? 0 : self->head + 1;
    } else {
        s_time_advance (self, now_us);
        bucket_t *bucket = &self->buckets[self->cur_idx];
        bucket->calls++;
        bucket->failures += failed;
        bucket->slow += slow;
        self->w_calls++;
    }
    self->w_failures += failed;
    self->w_slow += slow;
}

// ---------------------------------------------------------------------------
//  Transitions

//  Enter `to` at `now_us`, then tell the listener. The caller must not
//  assume anything about the state afterwards: the listener may change it.
static void
s_transition (keel_breaker_t *self, keel_breaker_state_t to, const char *reason,
              uint64_t now_us)
{
    keel_breaker_state_t from = self->state;
    self->state = to;
    self->state_since = now_us;
    self->transitions++;
    switch (to) {
    case KEEL_BREAKER_CLOSED:
        s_window_clear (self);
        self->consecutive_opens = 0;
        break;
    case KEEL_BREAKER_OPEN:
        self->consecutive_opens = s_inc (self->consecutive_opens);
        self->open_until = s_add (
            now_us, s_open_wait (&self->config, self->consecutive_opens));
        break;
    case KEEL_BREAKER_HALF_OPEN:
        self->permits = self->trial_done = 0;
        self->trial_calls = self->trial_failures = self->trial_slow = 0;
        self->half_open_deadline =
            self->config.max_half_open_us
                ? s_add (now_us, self->config.max_half_open_us)
                : 0;
        break;
    default:
        break;
    }
    if (self->fn) {
        self->in_listener++;
        self->fn (self, from, to, reason, now_us, self->fn_arg);
        self->in_listener--;
    }
}

//  HALF_OPEN: open if no verdict came in time. Returns true if it opened.
static bool
s_half_open_expired (keel_breaker_t *self, uint64_t now_us)
{
    if (self->half_open_deadline == 0 || now_us < self->half_open_deadline)
        return false;
    s_transition (self, KEEL_BREAKER_OPEN, "no trial verdict in time", now_us);
    return true;
}

//  CLOSED: open if a rate reached its threshold.
static void
s_judge_window (keel_breaker_t *self, uint64_t now_us)
{
    if (self->w_calls < self->min_calls)
        return;
    if (self->w_failures &&
        s_rate (self->w_failures, self->w_calls) >= self->failure_threshold)
        s_transition (self, KEEL_BREAKER_OPEN, "failure rate >= threshold",
                      now_us);
    else if (self->w_slow &&
             s_rate (self->w_slow, self->w_calls) >= self->slow_threshold)
        s_transition (self, KEEL_BREAKER_OPEN, "slow call rate >= threshold",
                      now_us);
}

//  HALF_OPEN: once every permitted trial has reported, decide.
static void
s_judge_trials (keel_breaker_t *self, uint64_t now_us)
{
    if (self->trial_done < self->config.half_open_calls)
        return;
    if (self->trial_calls == 0)
        s_transition (self, KEEL_BREAKER_CLOSED, "trial calls all ignored",
                      now_us);
    else if (self->trial_failures &&
             s_rate (self->trial_failures, self->trial_calls) >=
                 self->failure_threshold)
        s_transition (self, KEEL_BREAKER_OPEN,
                      "trial failure rate >= threshold", now_us);
    else if (self->trial_slow && s_rate (self->trial_slow, self->trial_calls) >=
                                     self->slow_threshold)
        s_transition (self, KEEL_BREAKER_OPEN,
                      "trial slow call rate >= threshold", now_us);
    else
        s_transition (self, KEEL_BREAKER_CLOSED, "trial calls passed", now_us);
}

// ---------------------------------------------------------------------------
//  Config

void
keel_breaker_config_default (keel_breaker_config_t *config)
{
    assert (config);
    memset (config, 0, sizeof *config);
    config->window = KEEL_WINDOW_COUNT;
    config->window_size = 100;
    config->minimum_calls = 100;
    config->failure_threshold = 50;
    config->slow_threshold = 100;
    config->slow_call_us = 60 * (uint64_t)S_US_PER_SEC;
    config->open_wait_us = 60 * (uint64_t)S_US_PER_SEC;
    config->open_wait_multiplier = 1;
    config->open_wait_max_us = 60 * (uint64_t)S_US_PER_SEC;
    config->half_open_calls = 10;
    config->max_half_open_us = 0;
}

const char *
keel_breaker_config_check (const keel_breaker_config_t *config)
{
    if (!config)
        return "no config";
    if (config->window != KEEL_WINDOW_COUNT &&
        config->window != KEEL_WINDOW_TIME)
        return "window must be COUNT or TIME";
    if (config->window_size < 1 || config->window_size > S_MAX_WINDOW)
        return "window_size must be 1..1000000";
    if (config->minimum_calls < 1)
        return "minimum_calls must be at least 1";
    if (!(config->failure_threshold > 0 && config->failure_threshold <= 100))
        return "failure_threshold must be a percentage in (0, 100]";
    if (!(config->slow_threshold > 0 && config->slow_threshold <= 100))
        return "slow_threshold must be a percentage in (0, 100]";
    if (config->open_wait_us < 1)
        return "open_wait_us must be at least 1";
    if (!(config->open_wait_multiplier >= 1) ||
        isinf (config->open_wait_multiplier))
        return "open_wait_multiplier must be a number >= 1";
    if (config->open_wait_max_us < config->open_wait_us)
        return "open_wait_max_us must be at least open_wait_us";
    if (config->half_open_calls < 1)
        return "half_open_calls must be at least 1";
    return NULL;
}

// ---------------------------------------------------------------------------
//  Life cycle

keel_breaker_t *
keel_breaker_new (const char *key, const keel_breaker_config_t *config,
                  uint64_t now_us)
{
    assert (key);
    if (keel_breaker_config_check (config))
        return NULL;
    keel_breaker_t *self = (keel_breaker_t *)calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->key = strdup (key);
    self->size = config->window_size;
    self->min_calls = config->minimum_calls;
    if (config->window == KEEL_WINDOW_COUNT && self->min_calls > self->size)
        self->min_calls = self->size;
    self->slow_call_us = config->slow_call_us;
    self->failure_threshold = config->failure_threshold;
    self->slow_threshold = config->slow_threshold;
    if (config->window == KEEL_WINDOW_COUNT)
        self->ring = (uint8_t *)calloc (self->size, 1);
    else
        self->buckets = (bucket_t *)calloc (self->size, sizeof (bucket_t));
    if (!self->key || (!self->ring && !self->buckets)) {
        keel_breaker_destroy (&self);
        return NULL;
    }
    if (self->buckets) {
        self->cur_sec = now_us / S_US_PER_SEC;
        self->cur_idx = (uint32_t)(self->cur_sec % self->size);
        self->cur_end = self->cur_sec >= UINT64_MAX / S_US_PER_SEC
                            ? UINT64_MAX
                            : (self->cur_sec + 1) * S_US_PER_SEC;
    }
    s_window_clear (self);
    self->state = KEEL_BREAKER_CLOSED;
    self->state_since = now_us;
    return self;
}

void
keel_breaker_destroy (keel_breaker_t **self_p)
{
    assert (self_p);
    keel_breaker_t *self = *self_p;
    if (!self)
        return;
    assert (self->in_listener == 0); //  not from its own listener
    free (self->ring);
    free (self->buckets);
    free (self->key);
    free (self);
    *self_p = NULL;
}

void
keel_breaker_set_listener (keel_breaker_t *self, keel_breaker_transition_fn *fn,
                           void *arg)
{
    assert (self);
    self->fn = fn;
    self->fn_arg = fn ? arg : NULL;
}

const char *
keel_breaker_key (keel_breaker_t *self)
{
    assert (self);
    return self->key;
}

// ---------------------------------------------------------------------------
//  Calls

bool
keel_breaker_acquire (keel_breaker_t *self, uint64_t now_us,
                      uint64_t *retry_after_us)
{
    assert (self);
    //  Each transition below leads to a state that does not transition again
    //  at the same now_us (waits are >= 1 us), so this loops at most three
    //  times unless a listener keeps forcing states.
    while (true) {
        switch (self->state) {
        case KEEL_BREAKER_CLOSED:
        case KEEL_BREAKER_DISABLED:
        case KEEL_BREAKER_METRICS_ONLY:
            return true;
        case KEEL_BREAKER_OPEN:
            if (now_us >= self->open_until) {
                s_transition (self, KEEL_BREAKER_HALF_OPEN, "open wait over",
                              now_us);
                continue;
            }
            self->refused++;
            if (retry_after_us)
                *retry_after_us = self->open_until - now_us;
            return false;
        case KEEL_BREAKER_HALF_OPEN:
            if (s_half_open_expired (self, now_us))
                continue;
            if (self->permits < self->config.half_open_calls) {
                self->permits++;
                return true;
            }
            self->refused++;
            if (retry_after_us)
                *retry_after_us = 0; //  when the trials report: unknown
            return false;
        case KEEL_BREAKER_FORCED_OPEN:
            self->refused++;
            if (retry_after_us)
                *retry_after_us = 0;
            return false;
        }
        assert (false); //  state is always one of the above
        return false;
    }
}

void
keel_breaker_record (keel_breaker_t *self, keel_outcome_t outcome,
                     uint64_t duration_us, uint64_t now_us)
{
    assert (self);
    assert (outcome == KEEL_OUTCOME_SUCCESS ||
            outcome == KEEL_OUTCOME_FAILURE || outcome == KEEL_OUTCOME_IGNORED);
    keel_breaker_state_t state = self->state;
    if (state == KEEL_BREAKER_DISABLED)
        return;
    if (state == KEEL_BREAKER_HALF_OPEN && s_half_open_expired (self, now_us))
        state = self->state; //  this call reports too late to be a trial
    //  A trial: fewer trial outcomes than permits so far.
    bool trial =
        state == KEEL_BREAKER_HALF_OPEN && self->trial_done < self->permits;
    if (outcome == KEEL_OUTCOME_IGNORED) {
        if (trial) {
            self->trial_done++;
            s_judge_trials (self, now_us);
        }
        return;
    }
    unsigned failed = outcome == KEEL_OUTCOME_FAILURE;
    unsigned slow = duration_us > self->slow_call_us;
    self->calls++;
    self->failures += failed;
    self->slow_calls += slow;
    switch (state) {
    case KEEL_BREAKER_CLOSED:
        s_window_add (self, failed | (slow ? S_SLOW : 0), now_us);
        s_judge_window (self, now_us);
        break;
    case KEEL_BREAKER_METRICS_ONLY:
        s_window_add (self, failed | (slow ? S_SLOW : 0), now_us);
        break;
    case KEEL_BREAKER_HALF_OPEN:
        if (trial) {
            self->trial_done++;
            self->trial_calls++;
            self->trial_failures += failed;
            self->trial_slow += slow;
            s_judge_trials (self, now_us);
        }
        break;
    default: //  OPEN, FORCED_OPEN: permitted before; the totals only
        break;
    }
}

uint64_t
keel_breaker_tick (keel_breaker_t *self, uint64_t now_us)
{
    assert (self);
    if (self->state == KEEL_BREAKER_HALF_OPEN)
        s_half_open_expired (self, now_us);
    if (self->state == KEEL_BREAKER_OPEN)
        return self->open_until;
    if (self->state == KEEL_BREAKER_HALF_OPEN)
        return self->half_open_deadline; //  0 when none
    return 0;
}

// ---------------------------------------------------------------------------
//  Control

void
keel_breaker_force (keel_breaker_t *self, keel_breaker_state_t state,
                    uint64_t now_us)
{
    assert (self);
    assert (s_state_valid ((int)state));
    if (state == self->state) {
        if (state == KEEL_BREAKER_CLOSED) {
            s_window_clear (self);
            self->consecutive_opens = 0;
        }
        return;
    }
    s_transition (self, state,
                  state == KEEL_BREAKER_CLOSED ? "reset" : "forced", now_us);
}

void
keel_breaker_mirror (keel_breaker_t *self, keel_breaker_state_t state,
                     uint64_t open_until_us, uint64_t now_us)
{
    assert (self);
    assert (s_state_valid ((int)state));
    bool changed = state != self->state;
    self->state = state;
    if (changed)
        self->state_since = now_us;
    switch (state) {
    case KEEL_BREAKER_OPEN:
        self->open_until = open_until_us;
        break;
    case KEEL_BREAKER_HALF_OPEN:
        if (changed) {
            self->permits = self->trial_done = 0;
            self->trial_calls = self->trial_failures = self->trial_slow = 0;
            self->half_open_deadline =
                self->config.max_half_open_us
                    ? s_add (now_us, self->config.max_half_open_us)
                    : 0;
        }
        break;
    case KEEL_BREAKER_CLOSED:
        self->consecutive_opens = 0;
        break;
    default:
        break;
    }
}

keel_breaker_stats_t
keel_breaker_stats (keel_breaker_t *self, uint64_t now_us)
{
    assert (self);
    keel_breaker_stats_t stats;
    memset (&stats, 0, sizeof stats);
    stats.state = self->state;
    stats.state_since_us = self->state_since;
    uint32_t minimum;
    if (self->state == KEEL_BREAKER_HALF_OPEN) {
        stats.window_calls = self->trial_calls;
        stats.window_failures = self->trial_failures;
        stats.window_slow = self->trial_slow;
        minimum = self->config.half_open_calls;
    } else {
        if (self->buckets)
            s_time_advance (self, now_us);
        stats.window_calls = self->w_calls;
        stats.window_failures = self->w_failures;
        stats.window_slow = self->w_slow;
        minimum = self->min_calls;
    }
    if (stats.window_calls >= minimum && stats.window_calls > 0) {
        stats.failure_rate = s_rate (stats.window_failures, stats.window_calls);
        stats.slow_rate = s_rate (stats.window_slow, stats.window_calls);
    } else
        stats.failure_rate = stats.slow_rate = -1;
    stats.calls = self->calls;
    stats.failures = self->failures;
    stats.slow_calls = self->slow_calls;
    stats.refused = self->refused;
    stats.transitions = self->transitions;
    stats.consecutive_opens = self->consecutive_opens;
    return stats;
}

// ---------------------------------------------------------------------------
//  Names

static const char *s_state_names[] = {
    "CLOSED", "OPEN", "HALF_OPEN", "DISABLED", "FORCED_OPEN", "METRICS_ONLY",
};

const char *
keel_breaker_state_name (int state)
{
    return s_state_valid (state) ? s_state_names[state] : "UNKNOWN";
}

int
keel_breaker_state_parse (const char *name)
{
    if (!name)
        return -1;
    for (int state = 0; state <= KEEL_BREAKER_METRICS_ONLY; state++) {
        const char *a = name, *b = s_state_names[state];
        while (*a && *b) {
            char ca = *a == '-' ? '_' : (char)toupper ((unsigned char)*a);
            if (ca != *b)
                break;
            a++, b++;
        }
        if (!*a && !*b)
            return state;
    }
    return -1;
}

// ---------------------------------------------------------------------------
//  Classification

void
keel_classifier_default (keel_classifier_t *classifier)
{
    assert (classifier);
    classifier->server_errors_fail = true;
    classifier->client_errors_fail = false;
    classifier->timeouts_fail = true;
    classifier->refused_fail = true;
}

static keel_outcome_t
s_fails (bool fails)
{
    return fails ? KEEL_OUTCOME_FAILURE : KEEL_OUTCOME_IGNORED;
}

keel_outcome_t
keel_classify_http (const keel_classifier_t *classifier, int status)
{
    assert (classifier);
    if (status == -1)
        return s_fails (classifier->timeouts_fail);
    if (status == 0)
        return s_fails (classifier->refused_fail);
    if (status >= 100 && status <= 399)
        return KEEL_OUTCOME_SUCCESS;
    if (status >= 400 && status <= 499)
        return s_fails (classifier->client_errors_fail);
    //  5xx, and anything that is not an HTTP status: the upstream is broken
    return s_fails (classifier->server_errors_fail);
}

keel_outcome_t
keel_classify_bus (const keel_classifier_t *classifier, int code)
{
    assert (classifier);
    switch (code) {
    case KEEL_OK:
        return KEEL_OUTCOME_SUCCESS;
    case KEEL_ERR_TIMEOUT:
        return s_fails (classifier->timeouts_fail);
    case KEEL_ERR_UNAVAILABLE:
        return s_fails (classifier->refused_fail);
    case KEEL_ERR_INTERNAL:
        return s_fails (classifier->server_errors_fail);
    default:
        return s_fails (classifier->client_errors_fail);
    }
}
