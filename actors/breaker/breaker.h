/*  breaker.h - the circuit breaker's pure core: one breaker per key, with
    the semantics of Resilience4j (a superset of the classic three states).
    No sockets, no threads, no clock: time comes in as `now_us`.

        CLOSED --failure rate or slow rate >= threshold--> OPEN
          (judged once the window holds minimum_calls calls)
        OPEN --wait (grows x multiplier per consecutive open, capped)-->
   HALF_OPEN HALF_OPEN: exactly half_open_calls trial calls are permitted; when
          all have reported: rates below thresholds -> CLOSED, else -> OPEN;
          no verdict within max_half_open_us -> OPEN
        DISABLED: everything permitted, nothing recorded
        FORCED_OPEN: everything refused
        METRICS_ONLY: everything permitted and recorded, never trips

    Windows: COUNT (the last window_size calls, a ring of outcomes) or TIME
    (the last window_size seconds, one bucket per second). Both keep running
    totals, so record() is O(1) (a TIME window also drops the buckets that
    aged out, at most window_size per call).

    "N consecutive failures" is COUNT window N, minimum_calls N, failure
    threshold 100%.

    Fast path: keel_breaker_acquire + keel_breaker_record touch only the
    breaker itself: no allocation, no lock. A breaker belongs to one thread.
*/
#ifndef KEEL_BREAKER_H_INCLUDED
#define KEEL_BREAKER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    KEEL_BREAKER_CLOSED = 0,
    KEEL_BREAKER_OPEN = 1,
    KEEL_BREAKER_HALF_OPEN = 2,
    KEEL_BREAKER_DISABLED = 3,
    KEEL_BREAKER_FORCED_OPEN = 4,
    KEEL_BREAKER_METRICS_ONLY = 5,
} keel_breaker_state_t;

typedef enum {
    KEEL_WINDOW_COUNT = 0,
    KEEL_WINDOW_TIME = 1,
} keel_window_kind_t;

//  What a call's result counts as.
typedef enum {
    KEEL_OUTCOME_SUCCESS = 0,
    KEEL_OUTCOME_FAILURE = 1,
    KEEL_OUTCOME_IGNORED = 2, //  neither: not counted at all
} keel_outcome_t;

//  A breaker's settings. keel_breaker_config_default fills Resilience4j's
//  defaults; every field may then be changed.
typedef struct {
    keel_window_kind_t window;   //  COUNT
    uint32_t window_size;        //  calls (COUNT) or seconds (TIME): 100
    uint32_t minimum_calls;      //  before any rate is judged: 100
    double failure_threshold;    //  percent, 0 < x <= 100: 50
    double slow_threshold;       //  percent, 0 < x <= 100: 100
    uint64_t slow_call_us;       //  a call slower than this is slow: 60 s
    uint64_t open_wait_us;       //  first OPEN wait: 60 s
    double open_wait_multiplier; //  >= 1; each consecutive open: 1 (fixed)
    uint64_t open_wait_max_us;   //  cap of the growing wait: 60 s
    uint32_t half_open_calls;    //  trial calls permitted: 10
    uint64_t max_half_open_us;   //  0 = wait for all trials forever: 0
} keel_breaker_config_t;

//  Counters and rates of one breaker.
typedef struct {
    keel_breaker_state_t state;
    uint64_t state_since_us;    //  when it entered the state
    uint32_t window_calls;      //  calls in the window now
    uint32_t window_failures;   //  of which failures
    uint32_t window_slow;       //  of which slow
    double failure_rate;        //  percent; -1 below minimum_calls
    double slow_rate;           //  percent; -1 below minimum_calls
    uint64_t calls;             //  recorded since creation
    uint64_t failures;          //  recorded failures
    uint64_t slow_calls;        //  recorded slow calls
    uint64_t refused;           //  acquires refused
    uint64_t transitions;       //  state changes
    uint32_t consecutive_opens; //  opens since the last close
} keel_breaker_stats_t;

typedef struct _keel_breaker_t keel_breaker_t;

//  Called on every state change, after it happened. `reason` is static text
//  ("failure rate >= threshold", "open wait over", "trial calls passed",
//  "forced"...); keel_breaker_stats gives the figures behind it.
typedef void (keel_breaker_transition_fn) (keel_breaker_t *breaker,
                                           keel_breaker_state_t from,
                                           keel_breaker_state_t to,
                                           const char *reason, uint64_t now_us,
                                           void *arg);

//  Fill `config` with the defaults above.
void keel_breaker_config_default (keel_breaker_config_t *config);

//  Check a config. Returns NULL if usable, or a static reason.
const char *keel_breaker_config_check (const keel_breaker_config_t *config);

//  Create a CLOSED breaker for `key` (copied) at `now_us`. Returns NULL on
//  an invalid config (keel_breaker_config_check) or out of memory. Caller
//  owns it. All memory is allocated here, none later.
keel_breaker_t *keel_breaker_new (const char *key,
                                  const keel_breaker_config_t *config,
                                  uint64_t now_us);

//  Destroy; nulls *self_p.
void keel_breaker_destroy (keel_breaker_t **self_p);

//  Receive state changes (NULL = none).
void keel_breaker_set_listener (keel_breaker_t *self,
                                keel_breaker_transition_fn *fn, void *arg);

//  The breaker's key. Borrowed.
const char *keel_breaker_key (keel_breaker_t *self);

//  Ask to make a call. Returns true (permitted: the caller must later
//  record its outcome, even IGNORED) or false (refused; if not NULL,
//  *retry_after_us gets how long until a call may be permitted, 0 when
//  unknown). An OPEN breaker whose wait is over moves to HALF_OPEN here.
bool keel_breaker_acquire (keel_breaker_t *self, uint64_t now_us,
                           uint64_t *retry_after_us);

//  Record the outcome of a permitted call that took `duration_us`. May
//  change the state (and call the listener).
void keel_breaker_record (keel_breaker_t *self, keel_outcome_t outcome,
                          uint64_t duration_us, uint64_t now_us);

//  Move time on without a call: a HALF_OPEN breaker past max_half_open_us
//  opens, an OPEN breaker past its wait stays OPEN until the next acquire
//  (as in Resilience4j) but reports the earliest permit time. Returns the
//  next time at which calling tick could change something, or 0 if never.
uint64_t keel_breaker_tick (keel_breaker_t *self, uint64_t now_us);

//  Manual control: DISABLED, FORCED_OPEN, METRICS_ONLY, or back to CLOSED
//  (a reset: the window is emptied, the open wait returns to its first
//  value). Any state may be set; the listener hears it with reason "forced"
//  (or "reset" for CLOSED).
void keel_breaker_force (keel_breaker_t *self, keel_breaker_state_t state,
                         uint64_t now_us);

//  Follow a remote breaker's state (a local mirror applying the breaker
//  actor's events): set the state as is, with its open wait ending at
//  `open_until_us` when OPEN; the window is left alone. The listener is
//  not called (the change did not happen here).
void keel_breaker_mirror (keel_breaker_t *self, keel_breaker_state_t state,
                          uint64_t open_until_us, uint64_t now_us);

//  Current state and counters (rates computed over the window at now_us).
keel_breaker_stats_t keel_breaker_stats (keel_breaker_t *self, uint64_t now_us);

//  Static names: "CLOSED", "OPEN", "HALF_OPEN", "DISABLED", "FORCED_OPEN",
//  "METRICS_ONLY"; "UNKNOWN" otherwise. And the reverse (-1 if unknown,
//  case-insensitive, '-' and '_' alike).
const char *keel_breaker_state_name (int state);
int keel_breaker_state_parse (const char *name);

// ---------------------------------------------------------------------------
//  Classification: which results count as failures. The caller says.

typedef struct {
    bool server_errors_fail; //  HTTP 5xx / keel INTERNAL, UNAVAILABLE: true
    bool client_errors_fail; //  HTTP 4xx / keel BAD_REQUEST, NOT_FOUND,
                             //  INVALID_ARGUMENT, CONFLICT...: false
                             //  (IGNORED: the upstream is fine)
    bool timeouts_fail;      //  no answer in time: true
    bool refused_fail;       //  connection refused / unreachable: true
} keel_classifier_t;

//  Defaults as commented above.
void keel_classifier_default (keel_classifier_t *classifier);

//  An HTTP status (0 = transport error / refused, -1 = timeout).
keel_outcome_t keel_classify_http (const keel_classifier_t *classifier,
                                   int status);

//  A keel_err_t from a bus call (KEEL_OK = success; TIMEOUT; UNAVAILABLE
//  counts as refused; INTERNAL as a server error; the rest as client
//  errors).
keel_outcome_t keel_classify_bus (const keel_classifier_t *classifier,
                                  int code);

#ifdef __cplusplus
}
#endif

#endif
