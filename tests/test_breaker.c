/*  test_breaker.c - the circuit breaker core: windows, rates, every
    transition, forced states, mirroring, classification. Time is injected:
    every test drives its own clock (microseconds). */
#include "breaker.h"
#include "keel_common.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define SEC(x) ((uint64_t)((x)*1000000.0 + 0.5))
#define MS(x)  ((uint64_t)(x)*1000)

#define CLOSED       KEEL_BREAKER_CLOSED
#define OPEN         KEEL_BREAKER_OPEN
#define HALF_OPEN    KEEL_BREAKER_HALF_OPEN
#define DISABLED     KEEL_BREAKER_DISABLED
#define FORCED_OPEN  KEEL_BREAKER_FORCED_OPEN
#define METRICS_ONLY KEEL_BREAKER_METRICS_ONLY

#define OK   KEEL_OUTCOME_SUCCESS
#define FAIL KEEL_OUTCOME_FAILURE
#define IGN  KEEL_OUTCOME_IGNORED

// ---------------------------------------------------------------------------
//  Helpers

//  Every transition a listener heard.
#define LOG_MAX 64
typedef struct {
    int count;
    struct {
        keel_breaker_state_t from, to;
        const char *reason;
        uint64_t now;
        keel_breaker_state_t seen; //  state as stats saw it in the call
    } ev[LOG_MAX];
} log_t;

static void
s_on_transition (keel_breaker_t *breaker, keel_breaker_state_t from,
                 keel_breaker_state_t to, const char *reason, uint64_t now_us,
                 void *arg)
{
    log_t *log = (log_t *)arg;
    ck_assert_int_lt (log->count, LOG_MAX);
    log->ev[log->count].from = from;
    log->ev[log->count].to = to;
    log->ev[log->count].reason = reason;
    log->ev[log->count].now = now_us;
    log->ev[log->count].seen = keel_breaker_stats (breaker, now_us).state;
    log->count++;
}

//  Check the n-th transition heard (0-based).
static void
s_ev (const log_t *log, int n, keel_breaker_state_t from,
      keel_breaker_state_t to, const char *reason, uint64_t now)
{
    ck_assert_int_gt (log->count, n);
    ck_assert_int_eq (log->ev[n].from, from);
    ck_assert_int_eq (log->ev[n].to, to);
    ck_assert_int_eq (log->ev[n].seen, to);
    ck_assert_str_eq (log->ev[n].reason, reason);
    ck_assert_uint_eq (log->ev[n].now, now);
}

//  A config: count or time window, size, minimum, failure threshold; the
//  rest default with short waits.
static keel_breaker_config_t
s_cfg (keel_window_kind_t window, uint32_t size, uint32_t minimum,
       double failure_threshold)
{
    keel_breaker_config_t config;
    keel_breaker_config_default (&config);
    config.window = window;
    config.window_size = size;
    config.minimum_calls = minimum;
    config.failure_threshold = failure_threshold;
    config.open_wait_us = SEC (10);
    config.open_wait_max_us = SEC (10);
    config.half_open_calls = 3;
    return config;
}

static keel_breaker_t *
s_new (const keel_breaker_config_t *config, uint64_t now, log_t *log)
{
    keel_breaker_t *b = keel_breaker_new ("svc", config, now);
    ck_assert_ptr_nonnull (b);
    if (log) {
        memset (log, 0, sizeof *log);
        keel_breaker_set_listener (b, s_on_transition, log);
    }
    return b;
}

static keel_breaker_state_t
s_state (keel_breaker_t *b, uint64_t now)
{
    return keel_breaker_stats (b, now).state;
}

//  One call: must be permitted; recorded with `duration`.
static void
s_call (keel_breaker_t *b, keel_outcome_t outcome, uint64_t duration,
        uint64_t now)
{
    uint64_t retry = 12345;
    ck_assert_msg (
        keel_breaker_acquire (b, now, &retry), "refused (state %s, retry %llu)",
        keel_breaker_state_name (s_state (b, now)), (unsigned long long)retry);
    keel_breaker_record (b, outcome, duration, now);
}

//  Must be refused with exactly `retry_after`.
static void
s_refused (keel_breaker_t *b, uint64_t now, uint64_t retry_after)
{
    uint64_t retry = 12345;
    ck_assert (!keel_breaker_acquire (b, now, &retry));
    ck_assert_uint_eq (retry, retry_after);
}

static void
s_window (keel_breaker_t *b, uint64_t now, uint32_t calls, uint32_t failures,
          uint32_t slow, double failure_rate, double slow_rate)
{
    keel_breaker_stats_t st = keel_breaker_stats (b, now);
    ck_assert_uint_eq (st.window_calls, calls);
    ck_assert_uint_eq (st.window_failures, failures);
    ck_assert_uint_eq (st.window_slow, slow);
    ck_assert_double_eq_tol (st.failure_rate, failure_rate, 1e-9);
    ck_assert_double_eq_tol (st.slow_rate, slow_rate, 1e-9);
}

//  Trip a CLOSED breaker built by s_cfg (size, minimum n) with n failures.
static void
s_trip (keel_breaker_t *b, uint32_t n, uint64_t now)
{
    for (uint32_t i = 0; i < n; i++)
        s_call (b, FAIL, 10, now);
    ck_assert_int_eq (s_state (b, now), OPEN);
}

// ---------------------------------------------------------------------------
//  Config, names, life cycle

START_TEST (test_config)
{
    keel_breaker_config_t c;
    keel_breaker_config_default (&c);
    ck_assert_int_eq (c.window, KEEL_WINDOW_COUNT);
    ck_assert_uint_eq (c.window_size, 100);
    ck_assert_uint_eq (c.minimum_calls, 100);
    ck_assert_double_eq (c.failure_threshold, 50);
    ck_assert_double_eq (c.slow_threshold, 100);
    ck_assert_uint_eq (c.slow_call_us, SEC (60));
    ck_assert_uint_eq (c.open_wait_us, SEC (60));
    ck_assert_double_eq (c.open_wait_multiplier, 1);
    ck_assert_uint_eq (c.open_wait_max_us, SEC (60));
    ck_assert_uint_eq (c.half_open_calls, 10);
    ck_assert_uint_eq (c.max_half_open_us, 0);
    ck_assert_ptr_null (keel_breaker_config_check (&c));
    ck_assert_ptr_nonnull (keel_breaker_config_check (NULL));

    //  Each bad field alone, then good edge values.
    keel_breaker_config_t v;
#define CHECK_BAD(stmt)                                                        \
    do {                                                                       \
        keel_breaker_config_default (&v);                                      \
        stmt;                                                                  \
        ck_assert_msg (keel_breaker_config_check (&v) != NULL, "accepted: %s", \
                       #stmt);                                                 \
        ck_assert_ptr_null (keel_breaker_new ("k", &v, 0));                    \
    } while (0)
#define CHECK_GOOD(stmt)                                                       \
    do {                                                                       \
        keel_breaker_config_default (&v);                                      \
        stmt;                                                                  \
        const char *why = keel_breaker_config_check (&v);                      \
        ck_assert_msg (why == NULL, "refused %s: %s", #stmt, why);             \
        keel_breaker_t *ok = keel_breaker_new ("k", &v, 0);                    \
        ck_assert_ptr_nonnull (ok);                                            \
        keel_breaker_destroy (&ok);                                            \
    } while (0)
    CHECK_BAD (v.window = (keel_window_kind_t)2);
    CHECK_BAD (v.window_size = 0);
    CHECK_BAD (v.window_size = 1000001);
    CHECK_BAD (v.minimum_calls = 0);
    CHECK_BAD (v.failure_threshold = 0);
    CHECK_BAD (v.failure_threshold = -5);
    CHECK_BAD (v.failure_threshold = 100.5);
    CHECK_BAD (v.failure_threshold = NAN);
    CHECK_BAD (v.slow_threshold = 0);
    CHECK_BAD (v.slow_threshold = 101);
    CHECK_BAD (v.slow_threshold = NAN);
    CHECK_BAD (v.open_wait_us = 0);
    CHECK_BAD (v.open_wait_multiplier = 0.5);
    CHECK_BAD (v.open_wait_multiplier = NAN);
    CHECK_BAD (v.open_wait_multiplier = INFINITY);
    CHECK_BAD (v.open_wait_max_us = v.open_wait_us - 1);
    CHECK_BAD (v.half_open_calls = 0);

    CHECK_GOOD (v.window = KEEL_WINDOW_TIME);
    CHECK_GOOD (v.window_size = 1);
    CHECK_GOOD (v.window_size = 1000000);
    CHECK_GOOD (v.window = KEEL_WINDOW_TIME; v.window_size = 1000000);
    CHECK_GOOD (v.minimum_calls = 1);
    CHECK_GOOD (v.minimum_calls = 1000); //  > window: capped for COUNT
    CHECK_GOOD (v.failure_threshold = 100);
    CHECK_GOOD (v.failure_threshold = 0.001);
    CHECK_GOOD (v.slow_threshold = 100);
    CHECK_GOOD (v.slow_call_us = 0);
    CHECK_GOOD (v.open_wait_us = 1; v.open_wait_max_us = 1);
    CHECK_GOOD (v.open_wait_multiplier = 1000);
    CHECK_GOOD (v.open_wait_max_us = UINT64_MAX);
    CHECK_GOOD (v.half_open_calls = 1);
    CHECK_GOOD (v.max_half_open_us = 1);
#undef CHECK_BAD
#undef CHECK_GOOD
}
END_TEST

START_TEST (test_new_destroy)
{
    keel_breaker_config_t c;
    keel_breaker_config_default (&c);
    char key[] = "orders";
    keel_breaker_t *b = keel_breaker_new (key, &c, SEC (5));
    ck_assert_ptr_nonnull (b);
    key[0] = 'X'; //  the key was copied
    ck_assert_str_eq (keel_breaker_key (b), "orders");
    keel_breaker_stats_t st = keel_breaker_stats (b, SEC (6));
    ck_assert_int_eq (st.state, CLOSED);
    ck_assert_uint_eq (st.state_since_us, SEC (5));
    ck_assert_uint_eq (st.window_calls, 0);
    ck_assert_double_eq (st.failure_rate, -1);
    ck_assert_double_eq (st.slow_rate, -1);
    ck_assert_uint_eq (st.calls + st.failures + st.slow_calls + st.refused +
                           st.transitions + st.consecutive_opens,
                       0);
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (7)), 0);
    keel_breaker_destroy (&b);
    ck_assert_ptr_null (b);
    keel_breaker_destroy (&b); //  NULL is fine
}
END_TEST

START_TEST (test_names)
{
    const char *names[] = {"CLOSED",   "OPEN",        "HALF_OPEN",
                           "DISABLED", "FORCED_OPEN", "METRICS_ONLY"};
    for (int s = 0; s < 6; s++) {
        ck_assert_str_eq (keel_breaker_state_name (s), names[s]);
        ck_assert_int_eq (keel_breaker_state_parse (names[s]), s);
    }
    ck_assert_str_eq (keel_breaker_state_name (-1), "UNKNOWN");
    ck_assert_str_eq (keel_breaker_state_name (6), "UNKNOWN");
    ck_assert_int_eq (keel_breaker_state_parse ("closed"), CLOSED);
    ck_assert_int_eq (keel_breaker_state_parse ("half-open"), HALF_OPEN);
    ck_assert_int_eq (keel_breaker_state_parse ("Half_Open"), HALF_OPEN);
    ck_assert_int_eq (keel_breaker_state_parse ("forced-open"), FORCED_OPEN);
    ck_assert_int_eq (keel_breaker_state_parse ("metrics-only"), METRICS_ONLY);
    ck_assert_int_eq (keel_breaker_state_parse ("disabled"), DISABLED);
    ck_assert_int_eq (keel_breaker_state_parse ("open"), OPEN);
    ck_assert_int_eq (keel_breaker_state_parse ("opened"), -1);
    ck_assert_int_eq (keel_breaker_state_parse ("ope"), -1);
    ck_assert_int_eq (keel_breaker_state_parse (""), -1);
    ck_assert_int_eq (keel_breaker_state_parse ("half open"), -1);
    ck_assert_int_eq (keel_breaker_state_parse ("UNKNOWN"), -1);
    ck_assert_int_eq (keel_breaker_state_parse (NULL), -1);
}
END_TEST

// ---------------------------------------------------------------------------
//  Windows

START_TEST (test_count_window_sliding)
{
    //  Window of 4, judged once full, trips only at 100%.
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 4, 4, 100);
    c.slow_call_us = 100;
    keel_breaker_t *b = s_new (&c, 0, NULL);
    //  Outcome, duration; then the window as it must be after it.
    struct {
        keel_outcome_t outcome;
        uint64_t duration;
        uint32_t calls, failures, slow;
    } steps[] = {
        {FAIL, 10, 1, 1, 0},  //  F
        {OK, 200, 2, 1, 1},   //  F s
        {OK, 10, 3, 1, 1},    //  F s .
        {FAIL, 101, 4, 2, 2}, //  F s . Fs
        {OK, 10, 4, 1, 2},    //  s . Fs .      (F left)
        {OK, 10, 4, 1, 1},    //  . Fs . .      (s left)
        {OK, 10, 4, 1, 1},    //  Fs . . .
        {OK, 10, 4, 0, 0},    //  . . . .       (Fs left)
        {FAIL, 10, 4, 1, 0},  //  . . . F
        {IGN, 999, 4, 1, 0},  //  ignored: nothing moves
        {FAIL, 10, 4, 2, 0},  //  . . F F
        {FAIL, 10, 4, 3, 0},  //  . F F F
    };
    uint64_t now = SEC (1);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        s_call (b, steps[i].outcome, steps[i].duration, now);
        bool judged = steps[i].calls >= 4;
        s_window (b, now, steps[i].calls, steps[i].failures, steps[i].slow,
                  judged ? steps[i].failures * 100.0 / steps[i].calls : -1,
                  judged ? steps[i].slow * 100.0 / steps[i].calls : -1);
        ck_assert_int_eq (s_state (b, now), CLOSED);
        now += MS (1);
    }
    keel_breaker_stats_t st = keel_breaker_stats (b, now);
    ck_assert_uint_eq (st.calls, 11); //  the ignored one is not a call
    ck_assert_uint_eq (st.failures, 5);
    ck_assert_uint_eq (st.slow_calls, 2);
    //  The fourth failure in a row fills the window: 100%.
    s_call (b, FAIL, 10, now);
    ck_assert_int_eq (s_state (b, now), OPEN);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_count_minimum_capped)
{
    //  minimum 100 over a window of 10 is judged at 10 (Resilience4j).
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 10, 100, 50);
    keel_breaker_t *b = s_new (&c, 0, NULL);
    for (int i = 0; i < 9; i++)
        s_call (b, FAIL, 10, 0);
    ck_assert_double_eq (keel_breaker_stats (b, 0).failure_rate, -1);
    ck_assert_int_eq (s_state (b, 0), CLOSED);
    s_call (b, FAIL, 10, 0);
    ck_assert_int_eq (s_state (b, 0), OPEN);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_time_window_sliding)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_TIME, 3, 1, 100);
    keel_breaker_t *b = s_new (&c, SEC (100), NULL);
    s_window (b, SEC (100), 0, 0, 0, -1, -1);
    s_call (b, OK, 10, SEC (100.2));
    s_call (b, FAIL, 10, SEC (100.5));
    s_window (b, SEC (100.5), 2, 1, 0, 50, 0);
    s_call (b, OK, 10, SEC (101.1));
    s_call (b, OK, 10, SEC (102.7));
    s_window (b, SEC (102.999999), 4, 1, 0, 25, 0);
    //  Second 100 ages out: seconds 101..103 remain.
    s_window (b, SEC (103), 2, 0, 0, 0, 0);
    s_call (b, FAIL, 10, SEC (103.5));
    s_window (b, SEC (103.5), 3, 1, 0, 100.0 / 3, 0);
    s_window (b, SEC (104), 2, 1, 0, 50, 0);  //  101 out
    s_window (b, SEC (105), 1, 1, 0, 100, 0); //  102 out
    s_window (b, SEC (106), 0, 0, 0, -1, -1); //  103 out: empty
    ck_assert_int_eq (s_state (b, SEC (106)), CLOSED);

    //  A late record (now before the current second) counts in the current
    //  second: the window never moves back.
    s_call (b, OK, 10, SEC (106.5));
    s_call (b, OK, 10, SEC (104));
    s_window (b, SEC (106.9), 2, 0, 0, 0, 0);
    s_window (b, SEC (109), 0, 0, 0, -1, -1);

    //  A gap longer than the window empties it at once.
    s_call (b, OK, 10, SEC (110.1));
    s_call (b, FAIL, 10, SEC (111.1));
    s_call (b, OK, 10, SEC (112.1));
    s_window (b, SEC (112.2), 3, 1, 0, 100.0 / 3, 0);
    s_call (b, OK, 10, SEC (500));
    s_window (b, SEC (500), 1, 0, 0, 0, 0);
    //  A gap of exactly the window: all three seconds out.
    s_call (b, OK, 10, SEC (501));
    s_call (b, OK, 10, SEC (502));
    s_window (b, SEC (502), 3, 0, 0, 0, 0);
    s_call (b, OK, 10, SEC (505));
    s_window (b, SEC (505), 1, 0, 0, 0, 0);

    //  Calls spread over seconds: one every 250 ms, every 4th a failure,
    //  over a 10 s window: steady at 40 calls, 10 failures.
    keel_breaker_destroy (&b);
    c = s_cfg (KEEL_WINDOW_TIME, 10, 1, 50);
    b = s_new (&c, 0, NULL);
    for (int i = 0; i < 200; i++) {
        uint64_t now = MS (250) * (uint64_t)i;
        s_call (b, i % 4 == 3 ? FAIL : OK, 10, now);
        keel_breaker_stats_t st = keel_breaker_stats (b, now);
        ck_assert_uint_eq (st.window_calls, i < 40 ? i + 1 : 37 + i % 4);
        if (i >= 40)
            ck_assert_uint_eq (st.window_failures, 9 + (i % 4 == 3));
    }
    ck_assert_int_eq (s_state (b, SEC (50)), CLOSED);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_time_window_trips)
{
    //  Aged-out failures do not count; the ones inside the window do.
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_TIME, 5, 4, 50);
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    s_call (b, FAIL, 10, SEC (0.1));
    s_call (b, FAIL, 10, SEC (0.2));
    s_call (b, FAIL, 10, SEC (0.3));
    s_call (b, OK, 10, SEC (6)); //  the failures aged out: 1 call
    s_call (b, OK, 10, SEC (6.1));
    s_call (b, FAIL, 10, SEC (7));
    ck_assert_int_eq (s_state (b, SEC (7)), CLOSED); //  3 calls < 4
    s_call (b, OK, 10, SEC (8));
    ck_assert_int_eq (s_state (b, SEC (8)), CLOSED); //  25%
    s_call (b, FAIL, 10, SEC (10.9));                //  2 of 5: 40%
    ck_assert_int_eq (s_state (b, SEC (10.9)), CLOSED);
    s_call (b, FAIL, 10, SEC (11.0)); //  second 6 out: F . F F, 3 of 4
    ck_assert_int_eq (s_state (b, SEC (11)), OPEN);
    s_ev (&log, 0, CLOSED, OPEN, "failure rate >= threshold", SEC (11));
    s_window (b, SEC (11), 4, 3, 0, 75, 0);
    keel_breaker_destroy (&b);
}
END_TEST

// ---------------------------------------------------------------------------
//  Rates and thresholds

START_TEST (test_minimum_calls)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 20, 5, 50);
    keel_breaker_t *b = s_new (&c, 0, NULL);
    for (int i = 0; i < 4; i++) {
        s_call (b, FAIL, 10, 0);
        ck_assert_int_eq (s_state (b, 0), CLOSED); //  100%, but too few
        s_window (b, 0, i + 1, i + 1, 0, -1, -1);
    }
    s_call (b, FAIL, 10, 0);
    ck_assert_int_eq (s_state (b, 0), OPEN);
    keel_breaker_destroy (&b);

    //  TIME window: the same minimum.
    c = s_cfg (KEEL_WINDOW_TIME, 20, 5, 50);
    b = s_new (&c, 0, NULL);
    for (int i = 0; i < 4; i++)
        s_call (b, FAIL, 10, SEC (i));
    ck_assert_int_eq (s_state (b, SEC (4)), CLOSED);
    s_call (b, FAIL, 10, SEC (4));
    ck_assert_int_eq (s_state (b, SEC (4)), OPEN);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_failure_threshold)
{
    //  4 of 10 (40%) stays closed; 5 of 10 (50%) opens: >=.
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 10, 10, 50);
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    for (int i = 0; i < 6; i++)
        s_call (b, OK, 10, 0);
    for (int i = 0; i < 4; i++)
        s_call (b, FAIL, 10, 0);
    s_window (b, 0, 10, 4, 0, 40, 0);
    ck_assert_int_eq (s_state (b, 0), CLOSED);
    s_call (b, FAIL, 10, SEC (1)); //  a success leaves, a failure enters
    ck_assert_int_eq (s_state (b, SEC (1)), OPEN);
    ck_assert_int_eq (log.count, 1);
    s_ev (&log, 0, CLOSED, OPEN, "failure rate >= threshold", SEC (1));
    //  Stats in OPEN show the window that tripped it.
    s_window (b, SEC (1), 10, 5, 0, 50, 0);
    keel_breaker_destroy (&b);

    //  A threshold that is not a whole number of calls: 3 of 5 = 60%.
    c = s_cfg (KEEL_WINDOW_COUNT, 5, 5, 60);
    b = s_new (&c, 0, NULL);
    s_call (b, OK, 10, 0);
    s_call (b, OK, 10, 0);
    s_call (b, FAIL, 10, 0);
    s_call (b, FAIL, 10, 0);
    s_call (b, OK, 10, 0);
    ck_assert_int_eq (s_state (b, 0), CLOSED); //  40%
    s_call (b, FAIL, 10, 0);                   //  O F F O F: 60%
    ck_assert_int_eq (s_state (b, 0), OPEN);
    keel_breaker_destroy (&b);

    c = s_cfg (KEEL_WINDOW_COUNT, 3, 3, 66.67);
    b = s_new (&c, 0, NULL);
    s_call (b, OK, 10, 0);
    s_call (b, FAIL, 10, 0);
    s_call (b, FAIL, 10, 0);
    ck_assert_int_eq (s_state (b, 0), CLOSED); //  66.666...% < 66.67
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_slow_rate)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 4, 4, 50);
    c.slow_call_us = 1000;
    c.slow_threshold = 50;
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    for (int i = 0; i < 4; i++)
        s_call (b, OK, 1000, 0); //  equal is not slow
    s_window (b, 0, 4, 0, 0, 0, 0);
    s_call (b, OK, 1001, 0);
    s_window (b, 0, 4, 0, 1, 0, 25);
    ck_assert_int_eq (s_state (b, 0), CLOSED);
    s_call (b, OK, 5000, SEC (1));
    ck_assert_int_eq (s_state (b, SEC (1)), OPEN);
    s_ev (&log, 0, CLOSED, OPEN, "slow call rate >= threshold", SEC (1));
    keel_breaker_stats_t st = keel_breaker_stats (b, SEC (1));
    ck_assert_uint_eq (st.slow_calls, 2);
    ck_assert_uint_eq (st.failures, 0);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_slow_failure)
{
    //  A slow failure counts as both; with both over, failure is the reason.
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 4, 4, 100);
    c.slow_call_us = 100;
    c.slow_threshold = 100;
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    s_call (b, FAIL, 101, 0);
    s_window (b, 0, 1, 1, 1, -1, -1);
    keel_breaker_stats_t st = keel_breaker_stats (b, 0);
    ck_assert_uint_eq (st.calls, 1);
    ck_assert_uint_eq (st.failures, 1);
    ck_assert_uint_eq (st.slow_calls, 1);
    s_call (b, FAIL, 101, 0);
    s_call (b, OK, 101, 0);
    s_window (b, 0, 3, 2, 3, -1, -1);
    s_call (b, FAIL, 101, 0);
    ck_assert_int_eq (s_state (b, 0), OPEN); //  slow 100%, failures 75%
    s_ev (&log, 0, CLOSED, OPEN, "slow call rate >= threshold", 0);
    keel_breaker_destroy (&b);

    b = s_new (&c, 0, &log);
    for (int i = 0; i < 4; i++)
        s_call (b, FAIL, 101, 0);
    s_ev (&log, 0, CLOSED, OPEN, "failure rate >= threshold", 0);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_consecutive_failures)
{
    //  "Open on the 5th consecutive failure": COUNT 5, minimum 5, 100%.
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 5, 5, 100);
    keel_breaker_t *b = s_new (&c, 0, NULL);
    for (int i = 0; i < 4; i++)
        s_call (b, FAIL, 10, 0);
    s_call (b, OK, 10, 0); //  resets the run
    for (int i = 0; i < 4; i++) {
        s_call (b, FAIL, 10, 0);
        ck_assert_int_eq (s_state (b, 0), CLOSED);
    }
    s_call (b, OK, 10, 0);
    s_call (b, IGN, 10, 0); //  an ignored call neither resets nor counts
    for (int i = 0; i < 4; i++) {
        s_call (b, FAIL, 10, 0);
        ck_assert_int_eq (s_state (b, 0), CLOSED);
    }
    s_call (b, IGN, 10, 0);
    ck_assert_int_eq (s_state (b, 0), CLOSED);
    s_call (b, FAIL, 10, 0); //  the 5th in a row
    ck_assert_int_eq (s_state (b, 0), OPEN);
    keel_breaker_destroy (&b);
}
END_TEST

// ---------------------------------------------------------------------------
//  OPEN and HALF_OPEN

START_TEST (test_open_wait)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 2, 2, 50);
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    s_trip (b, 2, SEC (100));
    keel_breaker_stats_t st = keel_breaker_stats (b, SEC (100));
    ck_assert_uint_eq (st.state_since_us, SEC (100));
    ck_assert_uint_eq (st.consecutive_opens, 1);
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (100)), SEC (110));
    s_refused (b, SEC (100), SEC (10));
    s_refused (b, SEC (101), SEC (9));
    ck_assert (!keel_breaker_acquire (b, SEC (102), NULL)); //  NULL is fine
    s_refused (b, SEC (110) - 1, 1);
    //  Past the wait, tick reports the permit time; the state stays OPEN
    //  until an acquire.
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (115)), SEC (110));
    ck_assert_int_eq (s_state (b, SEC (115)), OPEN);
    ck_assert_uint_eq (keel_breaker_stats (b, SEC (115)).refused, 4);
    ck_assert_int_eq (log.count, 1);
    ck_assert (keel_breaker_acquire (b, SEC (110), NULL));
    ck_assert_int_eq (s_state (b, SEC (110)), HALF_OPEN);
    s_ev (&log, 1, OPEN, HALF_OPEN, "open wait over", SEC (110));
    ck_assert_uint_eq (keel_breaker_stats (b, SEC (110)).state_since_us,
                       SEC (110));
    //  HALF_OPEN without max_half_open_us: nothing for tick to do.
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (110)), 0);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_half_open_close)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 4, 4, 50);
    c.half_open_calls = 3;
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    s_trip (b, 4, 0);
    uint64_t t = SEC (10);
    //  Exactly 3 permits; the 4th is refused (retry unknown: 0). Permits
    //  count, not records.
    for (int i = 0; i < 3; i++)
        ck_assert (keel_breaker_acquire (b, t, NULL));
    s_refused (b, t, 0);
    keel_breaker_record (b, OK, 10, t);
    keel_breaker_record (b, OK, 10, t);
    s_refused (b, t, 0); //  two of three reported: still no permit
    ck_assert_int_eq (s_state (b, t), HALF_OPEN);
    //  Stats in HALF_OPEN show the trials.
    keel_breaker_stats_t st = keel_breaker_stats (b, t);
    ck_assert_uint_eq (st.window_calls, 2);
    ck_assert_double_eq (st.failure_rate, -1);
    keel_breaker_record (b, FAIL, 10, t + 5); //  1 of 3: 33% < 50%
    ck_assert_int_eq (s_state (b, t + 5), CLOSED);
    s_ev (&log, 2, HALF_OPEN, CLOSED, "trial calls passed", t + 5);
    st = keel_breaker_stats (b, t + 5);
    ck_assert_uint_eq (st.window_calls, 0); //  window emptied
    ck_assert_uint_eq (st.consecutive_opens, 0);
    ck_assert_uint_eq (st.refused, 2);
    ck_assert_uint_eq (st.calls, 7);
    //  Closed again: a fresh window needs 4 calls.
    for (int i = 0; i < 3; i++)
        s_call (b, FAIL, 10, t + 6);
    ck_assert_int_eq (s_state (b, t + 6), CLOSED);
    s_call (b, FAIL, 10, t + 6);
    ck_assert_int_eq (s_state (b, t + 6), OPEN);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_half_open_reopen)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 4, 4, 50);
    c.half_open_calls = 4;
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    s_trip (b, 4, 0);
    uint64_t t = SEC (10);
    for (int i = 0; i < 4; i++)
        ck_assert (keel_breaker_acquire (b, t, NULL));
    keel_breaker_record (b, OK, 10, t);
    keel_breaker_record (b, FAIL, 10, t);
    keel_breaker_record (b, OK, 10, t);
    ck_assert_int_eq (s_state (b, t), HALF_OPEN);
    keel_breaker_record (b, FAIL, 10, t + 1); //  2 of 4: 50%
    ck_assert_int_eq (s_state (b, t + 1), OPEN);
    s_ev (&log, 2, HALF_OPEN, OPEN, "trial failure rate >= threshold", t + 1);
    ck_assert_uint_eq (keel_breaker_stats (b, t + 1).consecutive_opens, 2);
    s_refused (b, t + 1, SEC (10));
    keel_breaker_destroy (&b);

    //  Slow trials reopen too.
    c.slow_call_us = 100;
    c.slow_threshold = 50;
    b = s_new (&c, 0, &log);
    s_trip (b, 4, 0);
    for (int i = 0; i < 4; i++)
        ck_assert (keel_breaker_acquire (b, t, NULL));
    keel_breaker_record (b, OK, 101, t);
    keel_breaker_record (b, OK, 10, t);
    keel_breaker_record (b, OK, 101, t);
    keel_breaker_record (b, OK, 10, t);
    ck_assert_int_eq (s_state (b, t), OPEN);
    s_ev (&log, 2, HALF_OPEN, OPEN, "trial slow call rate >= threshold", t);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_half_open_ignored)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 2, 2, 50);
    c.half_open_calls = 3;
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    uint64_t t = 0;

    //  I I F: the verdict is over the one real trial: 100% -> OPEN.
    s_trip (b, 2, t);
    t += SEC (10);
    for (int i = 0; i < 3; i++)
        ck_assert (keel_breaker_acquire (b, t, NULL));
    s_refused (b, t, 0); //  ignored trials still use their permits
    keel_breaker_record (b, IGN, 10, t);
    keel_breaker_record (b, IGN, 10, t);
    ck_assert_int_eq (s_state (b, t), HALF_OPEN);
    s_refused (b, t, 0);
    keel_breaker_record (b, FAIL, 10, t);
    ck_assert_int_eq (s_state (b, t), OPEN);
    ck_assert_uint_eq (keel_breaker_stats (b, t).calls, 3); //  2 + 1

    //  I S I: 0% -> CLOSED.
    t += SEC (10);
    for (int i = 0; i < 3; i++)
        ck_assert (keel_breaker_acquire (b, t, NULL));
    keel_breaker_record (b, IGN, 10, t);
    keel_breaker_record (b, OK, 10, t);
    keel_breaker_record (b, IGN, 10, t);
    ck_assert_int_eq (s_state (b, t), CLOSED);
    s_ev (&log, log.count - 1, HALF_OPEN, CLOSED, "trial calls passed", t);

    //  I I I: nothing to judge -> CLOSED.
    s_trip (b, 2, t);
    t += SEC (10);
    for (int i = 0; i < 3; i++)
        ck_assert (keel_breaker_acquire (b, t, NULL));
    for (int i = 0; i < 3; i++)
        keel_breaker_record (b, IGN, 10, t);
    ck_assert_int_eq (s_state (b, t), CLOSED);
    s_ev (&log, log.count - 1, HALF_OPEN, CLOSED, "trial calls all ignored", t);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_late_records)
{
    //  Records of calls permitted before the state changed.
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 2, 2, 50);
    c.half_open_calls = 2;
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    //  Three calls out while CLOSED; two failures trip it.
    for (int i = 0; i < 3; i++)
        ck_assert (keel_breaker_acquire (b, 0, NULL));
    keel_breaker_record (b, FAIL, 10, 0);
    keel_breaker_record (b, FAIL, 10, 0);
    ck_assert_int_eq (s_state (b, 0), OPEN);
    //  The third reports in OPEN: totals only, no move.
    keel_breaker_record (b, OK, 10, 1);
    keel_breaker_stats_t st = keel_breaker_stats (b, 1);
    ck_assert_int_eq (st.state, OPEN);
    ck_assert_uint_eq (st.calls, 3);
    ck_assert_uint_eq (st.window_calls, 2);
    ck_assert_uint_eq (st.window_failures, 2);
    //  In HALF_OPEN, a record with no permit out is not a trial.
    ck_assert (keel_breaker_acquire (b, SEC (10), NULL));
    ck_assert_int_eq (s_state (b, SEC (10)), HALF_OPEN);
    keel_breaker_record (b, OK, 10, SEC (10)); //  the trial
    keel_breaker_record (b, OK, 10, SEC (10)); //  late, permitted in CLOSED
    ck_assert_int_eq (s_state (b, SEC (10)), HALF_OPEN);
    st = keel_breaker_stats (b, SEC (10));
    ck_assert_uint_eq (st.window_calls, 1);
    ck_assert_uint_eq (st.calls, 5);
    ck_assert (keel_breaker_acquire (b, SEC (10), NULL));
    keel_breaker_record (b, FAIL, 10, SEC (10)); //  1 of 2: 50%
    ck_assert_int_eq (s_state (b, SEC (10)), OPEN);
    ck_assert_int_eq (log.count, 3);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_wait_growth)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 1, 1, 50);
    c.open_wait_us = SEC (1);
    c.open_wait_multiplier = 2;
    c.open_wait_max_us = SEC (5);
    c.half_open_calls = 1;
    keel_breaker_t *b = s_new (&c, 0, NULL);
    uint64_t t = SEC (100);
    s_trip (b, 1, t);
    uint64_t waits[] = {SEC (1), SEC (2), SEC (4), SEC (5), SEC (5), SEC (5)};
    for (int k = 0; k < 6; k++) {
        ck_assert_uint_eq (keel_breaker_stats (b, t).consecutive_opens, k + 1);
        s_refused (b, t, waits[k]);
        ck_assert_uint_eq (keel_breaker_tick (b, t), t + waits[k]);
        s_refused (b, t + waits[k] - 1, 1);
        t += waits[k];
        s_call (b, FAIL, 10, t); //  the trial fails: OPEN again
        ck_assert_int_eq (s_state (b, t), OPEN);
    }
    //  A passing trial closes and resets the wait.
    t += SEC (5);
    s_call (b, OK, 10, t);
    ck_assert_int_eq (s_state (b, t), CLOSED);
    ck_assert_uint_eq (keel_breaker_stats (b, t).consecutive_opens, 0);
    s_trip (b, 1, t);
    s_refused (b, t, SEC (1));
    keel_breaker_destroy (&b);

    //  A fractional multiplier: 1 s, 1.5 s, 2.25 s, 3 s (cap).
    c.open_wait_multiplier = 1.5;
    c.open_wait_max_us = SEC (3);
    b = s_new (&c, 0, NULL);
    t = 0;
    s_trip (b, 1, t);
    uint64_t waits2[] = {SEC (1), SEC (1.5), SEC (2.25), SEC (3), SEC (3)};
    for (int k = 0; k < 5; k++) {
        s_refused (b, t, waits2[k]);
        t += waits2[k];
        s_call (b, FAIL, 10, t);
    }
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_max_half_open)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 1, 1, 50);
    c.half_open_calls = 2;
    c.max_half_open_us = SEC (3);
    c.open_wait_multiplier = 2;
    c.open_wait_max_us = SEC (100);
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);

    //  Through acquire: permits out, no verdict; at the deadline -> OPEN.
    s_trip (b, 1, 0);
    ck_assert (keel_breaker_acquire (b, SEC (10), NULL));
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (10)), SEC (13));
    keel_breaker_record (b, OK, 10, SEC (11));
    ck_assert (keel_breaker_acquire (b, SEC (12), NULL));
    s_refused (b, SEC (13) - 1, 0);
    s_refused (b, SEC (13), SEC (20)); //  OPEN, 2nd wait: 20 s
    s_ev (&log, 2, HALF_OPEN, OPEN, "no trial verdict in time", SEC (13));
    ck_assert_uint_eq (keel_breaker_stats (b, SEC (13)).consecutive_opens, 2);
    //  The late trial reports in OPEN: totals only.
    keel_breaker_record (b, OK, 10, SEC (14));
    ck_assert_int_eq (s_state (b, SEC (14)), OPEN);
    ck_assert_uint_eq (keel_breaker_stats (b, SEC (14)).calls, 3);

    //  Through record: the trial reports after the deadline.
    ck_assert (keel_breaker_acquire (b, SEC (33), NULL));
    ck_assert (keel_breaker_acquire (b, SEC (33), NULL));
    keel_breaker_record (b, OK, 10, SEC (33));
    keel_breaker_record (b, OK, 10, SEC (36));
    ck_assert_int_eq (s_state (b, SEC (36)), OPEN);
    s_ev (&log, 4, HALF_OPEN, OPEN, "no trial verdict in time", SEC (36));
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (36)), SEC (76));

    //  Through tick.
    ck_assert (keel_breaker_acquire (b, SEC (76), NULL));
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (78)), SEC (79));
    ck_assert_int_eq (s_state (b, SEC (78)), HALF_OPEN);
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (79)), SEC (79 + 80));
    ck_assert_int_eq (s_state (b, SEC (79)), OPEN);
    s_ev (&log, 6, HALF_OPEN, OPEN, "no trial verdict in time", SEC (79));
    ck_assert_int_eq (log.count, 7);

    //  A verdict in time closes as usual.
    ck_assert (keel_breaker_acquire (b, SEC (179), NULL));
    ck_assert (keel_breaker_acquire (b, SEC (179), NULL));
    keel_breaker_record (b, OK, 10, SEC (180));
    keel_breaker_record (b, OK, 10, SEC (182) - 1);
    ck_assert_int_eq (s_state (b, SEC (182)), CLOSED);
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (200)), 0);
    keel_breaker_destroy (&b);
}
END_TEST

// ---------------------------------------------------------------------------
//  Forced states and mirroring

START_TEST (test_forced_states)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 4, 4, 50);
    c.open_wait_multiplier = 2;
    c.open_wait_max_us = SEC (100);
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);

    //  DISABLED: everything permitted, nothing recorded, never trips.
    keel_breaker_force (b, DISABLED, SEC (1));
    s_ev (&log, 0, CLOSED, DISABLED, "forced", SEC (1));
    for (int i = 0; i < 100; i++)
        s_call (b, FAIL, SEC (100), SEC (2));
    keel_breaker_stats_t st = keel_breaker_stats (b, SEC (2));
    ck_assert_int_eq (st.state, DISABLED);
    ck_assert_uint_eq (st.calls + st.failures + st.slow_calls, 0);
    ck_assert_uint_eq (st.window_calls, 0);
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (2)), 0);

    //  FORCED_OPEN: everything refused, retry unknown.
    keel_breaker_force (b, FORCED_OPEN, SEC (3));
    s_ev (&log, 1, DISABLED, FORCED_OPEN, "forced", SEC (3));
    for (int i = 0; i < 10; i++)
        s_refused (b, SEC (3) + SEC (1000) * (uint64_t)i, 0);
    keel_breaker_record (b, FAIL, 10, SEC (4)); //  permitted earlier
    st = keel_breaker_stats (b, SEC (4));
    ck_assert_int_eq (st.state, FORCED_OPEN);
    ck_assert_uint_eq (st.refused, 10);
    ck_assert_uint_eq (st.calls, 1);
    ck_assert_uint_eq (st.window_calls, 0);
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (5)), 0);

    //  METRICS_ONLY: permitted and recorded, never trips.
    keel_breaker_force (b, METRICS_ONLY, SEC (5));
    for (int i = 0; i < 10; i++)
        s_call (b, FAIL, 10, SEC (6));
    st = keel_breaker_stats (b, SEC (6));
    ck_assert_int_eq (st.state, METRICS_ONLY);
    ck_assert_uint_eq (st.window_calls, 4);
    ck_assert_uint_eq (st.window_failures, 4);
    ck_assert_double_eq (st.failure_rate, 100);
    ck_assert_uint_eq (st.calls, 11);
    ck_assert_int_eq (log.count, 3);

    //  Forcing the state it is in: nothing heard.
    keel_breaker_force (b, METRICS_ONLY, SEC (7));
    ck_assert_int_eq (log.count, 3);
    ck_assert_uint_eq (keel_breaker_stats (b, SEC (7)).state_since_us, SEC (5));

    //  Forced OPEN (the state): an open like a trip, with its wait.
    keel_breaker_force (b, OPEN, SEC (8));
    s_ev (&log, 3, METRICS_ONLY, OPEN, "forced", SEC (8));
    s_refused (b, SEC (8), SEC (10));
    ck_assert (keel_breaker_acquire (b, SEC (18), NULL));
    keel_breaker_force (b, OPEN, SEC (18));
    s_refused (b, SEC (18), SEC (20)); //  second consecutive open
    //  Force CLOSED: a reset; window empty, wait back to its first value.
    keel_breaker_force (b, CLOSED, SEC (19));
    s_ev (&log, 6, OPEN, CLOSED, "reset", SEC (19));
    st = keel_breaker_stats (b, SEC (19));
    ck_assert_uint_eq (st.window_calls, 0);
    ck_assert_uint_eq (st.consecutive_opens, 0);
    ck_assert_double_eq (st.failure_rate, -1);
    ck_assert_uint_eq (st.transitions, 7);
    s_trip (b, 4, SEC (20));
    s_refused (b, SEC (20), SEC (10));

    //  Force CLOSED from CLOSED still resets, without a transition.
    keel_breaker_force (b, CLOSED, SEC (21));
    s_call (b, FAIL, 10, SEC (21));
    s_call (b, FAIL, 10, SEC (21));
    s_call (b, FAIL, 10, SEC (21));
    int heard = log.count;
    keel_breaker_force (b, CLOSED, SEC (22));
    ck_assert_int_eq (log.count, heard);
    s_window (b, SEC (22), 0, 0, 0, -1, -1);
    //  Forced HALF_OPEN: a fresh trial.
    keel_breaker_force (b, HALF_OPEN, SEC (23));
    ck_assert (keel_breaker_acquire (b, SEC (23), NULL));
    ck_assert (keel_breaker_acquire (b, SEC (23), NULL));
    ck_assert (keel_breaker_acquire (b, SEC (23), NULL));
    s_refused (b, SEC (23), 0);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_mirror)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 4, 4, 50);
    c.half_open_calls = 1;
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    s_call (b, FAIL, 10, 0);
    s_call (b, FAIL, 10, 0);

    keel_breaker_mirror (b, OPEN, SEC (30), SEC (10));
    ck_assert_int_eq (log.count, 0);
    keel_breaker_stats_t st = keel_breaker_stats (b, SEC (10));
    ck_assert_int_eq (st.state, OPEN);
    ck_assert_uint_eq (st.state_since_us, SEC (10));
    ck_assert_uint_eq (st.window_calls, 2); //  left alone
    ck_assert_uint_eq (st.transitions, 0);
    s_refused (b, SEC (10), SEC (20));
    s_refused (b, SEC (30) - 1, 1);
    ck_assert_uint_eq (keel_breaker_tick (b, SEC (11)), SEC (30));
    //  A new open_until while OPEN moves the end of the wait.
    keel_breaker_mirror (b, OPEN, SEC (40), SEC (12));
    ck_assert_uint_eq (keel_breaker_stats (b, SEC (12)).state_since_us,
                       SEC (10));
    s_refused (b, SEC (30), SEC (10));
    //  Its wait over, the local breaker goes on by itself.
    ck_assert (keel_breaker_acquire (b, SEC (40), NULL));
    s_ev (&log, 0, OPEN, HALF_OPEN, "open wait over", SEC (40));

    //  Every state, no listener.
    int heard = log.count;
    keel_breaker_mirror (b, FORCED_OPEN, 0, SEC (41));
    s_refused (b, SEC (41), 0);
    keel_breaker_mirror (b, DISABLED, 0, SEC (42));
    ck_assert (keel_breaker_acquire (b, SEC (42), NULL));
    keel_breaker_mirror (b, HALF_OPEN, 0, SEC (43));
    ck_assert (keel_breaker_acquire (b, SEC (43), NULL));
    s_refused (b, SEC (43), 0);
    keel_breaker_mirror (b, CLOSED, 0, SEC (44));
    ck_assert (keel_breaker_acquire (b, SEC (44), NULL));
    st = keel_breaker_stats (b, SEC (44));
    ck_assert_int_eq (st.state, CLOSED);
    ck_assert_uint_eq (st.window_calls, 2); //  still left alone
    ck_assert_int_eq (log.count, heard);
    keel_breaker_destroy (&b);
}
END_TEST

// ---------------------------------------------------------------------------
//  Listener

START_TEST (test_listener_sequence)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 2, 2, 50);
    c.half_open_calls = 1;
    c.max_half_open_us = SEC (5);
    log_t log;
    keel_breaker_t *b = s_new (&c, 0, &log);
    s_trip (b, 2, SEC (1));                               //  0: -> OPEN
    ck_assert (keel_breaker_acquire (b, SEC (11), NULL)); //  1: -> HALF_OPEN
    keel_breaker_record (b, FAIL, 10, SEC (12));          //  2: -> OPEN
    ck_assert (keel_breaker_acquire (b, SEC (22), NULL)); //  3: -> HALF_OPEN
    keel_breaker_tick (b, SEC (27)); //  4: -> OPEN (no verdict)
    ck_assert (keel_breaker_acquire (b, SEC (37), NULL)); //  5: -> HALF_OPEN
    keel_breaker_record (b, OK, 10, SEC (38));            //  6: -> CLOSED
    keel_breaker_force (b, FORCED_OPEN, SEC (39));        //  7
    keel_breaker_force (b, METRICS_ONLY, SEC (40));       //  8
    keel_breaker_force (b, DISABLED, SEC (41));           //  9
    keel_breaker_force (b, CLOSED, SEC (42));             //  10
    keel_breaker_mirror (b, OPEN, SEC (50), SEC (43));    //  not heard
    ck_assert_int_eq (log.count, 11);
    s_ev (&log, 0, CLOSED, OPEN, "failure rate >= threshold", SEC (1));
    s_ev (&log, 1, OPEN, HALF_OPEN, "open wait over", SEC (11));
    s_ev (&log, 2, HALF_OPEN, OPEN, "trial failure rate >= threshold",
          SEC (12));
    s_ev (&log, 3, OPEN, HALF_OPEN, "open wait over", SEC (22));
    s_ev (&log, 4, HALF_OPEN, OPEN, "no trial verdict in time", SEC (27));
    s_ev (&log, 5, OPEN, HALF_OPEN, "open wait over", SEC (37));
    s_ev (&log, 6, HALF_OPEN, CLOSED, "trial calls passed", SEC (38));
    s_ev (&log, 7, CLOSED, FORCED_OPEN, "forced", SEC (39));
    s_ev (&log, 8, FORCED_OPEN, METRICS_ONLY, "forced", SEC (40));
    s_ev (&log, 9, METRICS_ONLY, DISABLED, "forced", SEC (41));
    s_ev (&log, 10, DISABLED, CLOSED, "reset", SEC (42));
    ck_assert_uint_eq (keel_breaker_stats (b, SEC (43)).transitions, 11);

    //  Removing the listener.
    keel_breaker_set_listener (b, NULL, NULL);
    keel_breaker_force (b, DISABLED, SEC (44));
    ck_assert_int_eq (log.count, 11);
    keel_breaker_destroy (&b);
}
END_TEST

//  A listener that forces FORCED_OPEN whenever HALF_OPEN is entered.
static void
s_on_half_open_force (keel_breaker_t *breaker, keel_breaker_state_t from,
                      keel_breaker_state_t to, const char *reason,
                      uint64_t now_us, void *arg)
{
    (void)from, (void)reason;
    (*(int *)arg)++;
    if (to == HALF_OPEN)
        keel_breaker_force (breaker, FORCED_OPEN, now_us);
}

START_TEST (test_listener_reentry)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 1, 1, 50);
    keel_breaker_t *b = s_new (&c, 0, NULL);
    int calls = 0;
    keel_breaker_set_listener (b, s_on_half_open_force, &calls);
    s_trip (b, 1, 0);
    //  The acquire that ends the wait sees the listener's FORCED_OPEN.
    s_refused (b, SEC (10), 0);
    ck_assert_int_eq (s_state (b, SEC (10)), FORCED_OPEN);
    ck_assert_int_eq (calls, 3);
    keel_breaker_destroy (&b);
}
END_TEST

START_TEST (test_stats_counters)
{
    keel_breaker_config_t c = s_cfg (KEEL_WINDOW_COUNT, 10, 10, 50);
    c.slow_call_us = 500;
    c.half_open_calls = 2;
    keel_breaker_t *b = s_new (&c, SEC (1), NULL);
    for (int i = 0; i < 6; i++)
        s_call (b, OK, i < 3 ? 1000 : 10, SEC (2));
    for (int i = 0; i < 3; i++)
        s_call (b, FAIL, 10, SEC (2));
    s_call (b, IGN, 10, SEC (2));
    keel_breaker_stats_t st = keel_breaker_stats (b, SEC (2));
    ck_assert_uint_eq (st.calls, 9);
    ck_assert_uint_eq (st.failures, 3);
    ck_assert_uint_eq (st.slow_calls, 3);
    ck_assert_uint_eq (st.window_calls, 9);
    ck_assert_double_eq (st.failure_rate, -1); //  9 < 10
    s_call (b, FAIL, 10, SEC (3));             //  4 of 10
    st = keel_breaker_stats (b, SEC (3));
    ck_assert_double_eq (st.failure_rate, 40);
    ck_assert_double_eq (st.slow_rate, 30);
    ck_assert_int_eq (st.state, CLOSED);
    s_call (b, FAIL, 10, SEC (4)); //  slow success leaves: 5 of 10
    st = keel_breaker_stats (b, SEC (4));
    ck_assert_int_eq (st.state, OPEN);
    ck_assert_uint_eq (st.state_since_us, SEC (4));
    ck_assert_double_eq (st.failure_rate, 50);
    ck_assert_double_eq (st.slow_rate, 20);
    s_refused (b, SEC (5), SEC (9));
    s_refused (b, SEC (6), SEC (8));
    st = keel_breaker_stats (b, SEC (6));
    ck_assert_uint_eq (st.calls, 11);
    ck_assert_uint_eq (st.failures, 5);
    ck_assert_uint_eq (st.refused, 2);
    ck_assert_uint_eq (st.transitions, 1);
    ck_assert_uint_eq (st.consecutive_opens, 1);
    keel_breaker_destroy (&b);
}
END_TEST

// ---------------------------------------------------------------------------
//  Classification

START_TEST (test_classify_http)
{
    keel_classifier_t d;
    keel_classifier_default (&d);
    ck_assert (d.server_errors_fail && !d.client_errors_fail &&
               d.timeouts_fail && d.refused_fail);
    struct {
        int status;
        keel_outcome_t outcome;
    } table[] = {
        {200, OK},   {201, OK},   {204, OK},   {299, OK},   {100, OK},
        {301, OK},   {304, OK},   {400, IGN},  {401, IGN},  {404, IGN},
        {409, IGN},  {429, IGN},  {499, IGN},  {500, FAIL}, {502, FAIL},
        {503, FAIL}, {504, FAIL}, {599, FAIL}, {0, FAIL},   {-1, FAIL},
        {600, FAIL}, {42, FAIL},  {-7, FAIL},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        ck_assert_msg (keel_classify_http (&d, table[i].status) ==
                           table[i].outcome,
                       "status %d", table[i].status);
    //  Each flag flipped alone.
    keel_classifier_t f = d;
    f.client_errors_fail = true;
    ck_assert_int_eq (keel_classify_http (&f, 404), FAIL);
    ck_assert_int_eq (keel_classify_http (&f, 200), OK);
    ck_assert_int_eq (keel_classify_http (&f, 500), FAIL);
    f = d;
    f.server_errors_fail = false;
    ck_assert_int_eq (keel_classify_http (&f, 500), IGN);
    ck_assert_int_eq (keel_classify_http (&f, 503), IGN);
    ck_assert_int_eq (keel_classify_http (&f, 0), FAIL);
    ck_assert_int_eq (keel_classify_http (&f, -1), FAIL);
    f = d;
    f.timeouts_fail = false;
    ck_assert_int_eq (keel_classify_http (&f, -1), IGN);
    ck_assert_int_eq (keel_classify_http (&f, 0), FAIL);
    ck_assert_int_eq (keel_classify_http (&f, 504), FAIL);
    f = d;
    f.refused_fail = false;
    ck_assert_int_eq (keel_classify_http (&f, 0), IGN);
    ck_assert_int_eq (keel_classify_http (&f, -1), FAIL);
    ck_assert_int_eq (keel_classify_http (&f, 500), FAIL);
}
END_TEST

START_TEST (test_classify_bus)
{
    keel_classifier_t d;
    keel_classifier_default (&d);
    ck_assert_int_eq (keel_classify_bus (&d, KEEL_OK), OK);
    ck_assert_int_eq (keel_classify_bus (&d, KEEL_ERR_TIMEOUT), FAIL);
    ck_assert_int_eq (keel_classify_bus (&d, KEEL_ERR_UNAVAILABLE), FAIL);
    ck_assert_int_eq (keel_classify_bus (&d, KEEL_ERR_INTERNAL), FAIL);
    int client[] = {KEEL_ERR_BAD_REQUEST,      KEEL_ERR_UNKNOWN_TYPE,
                    KEEL_ERR_TOO_LARGE,        KEEL_ERR_NOT_FOUND,
                    KEEL_ERR_CONFLICT,         KEEL_ERR_UNKNOWN_SERVICE,
                    KEEL_ERR_INVALID_ARGUMENT, 99};
    for (size_t i = 0; i < sizeof client / sizeof client[0]; i++) {
        ck_assert_int_eq (keel_classify_bus (&d, client[i]), IGN);
        keel_classifier_t f = d;
        f.client_errors_fail = true;
        ck_assert_int_eq (keel_classify_bus (&f, client[i]), FAIL);
        ck_assert_int_eq (keel_classify_bus (&f, KEEL_OK), OK);
    }
    keel_classifier_t f = d;
    f.timeouts_fail = false;
    ck_assert_int_eq (keel_classify_bus (&f, KEEL_ERR_TIMEOUT), IGN);
    ck_assert_int_eq (keel_classify_bus (&f, KEEL_ERR_UNAVAILABLE), FAIL);
    f = d;
    f.refused_fail = false;
    ck_assert_int_eq (keel_classify_bus (&f, KEEL_ERR_UNAVAILABLE), IGN);
    ck_assert_int_eq (keel_classify_bus (&f, KEEL_ERR_INTERNAL), FAIL);
    f = d;
    f.server_errors_fail = false;
    ck_assert_int_eq (keel_classify_bus (&f, KEEL_ERR_INTERNAL), IGN);
    ck_assert_int_eq (keel_classify_bus (&f, KEEL_ERR_TIMEOUT), FAIL);
}
END_TEST

// ---------------------------------------------------------------------------
//  Randomized: invariants, and a reference model of the window

static uint64_t
s_rand (uint64_t *state)
{
    //  xorshift64*
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

//  Where the randomized test is, for a failure's message.
static int s_round, s_op;

//  Check's ck_assert reports to the parent process on every call (a pipe
//  write): too slow for 800k steps. This checks in the test's own process
//  and reports only a failure.
#define S_CHECK(cond)                                                          \
    do {                                                                       \
        if (!(cond))                                                           \
            ck_abort_msg ("round %d op %d: %s", s_round, s_op, #cond);         \
    } while (0)

#define M_CALLS 4096

//  What the randomized test's listener tracks.
typedef struct {
    keel_breaker_state_t state; //  as last heard or set
    uint32_t permits;           //  HALF_OPEN permits since it was entered
    uint64_t heard;             //  transitions heard
    //  The window as a list of the calls it counted, oldest first.
    uint64_t sec[M_CALLS]; //  second of each call
    uint8_t bits[M_CALLS]; //  bit 0 failed, bit 1 slow
    uint32_t n;            //  calls listed
} model_t;

static void
s_model_clear (model_t *m)
{
    m->n = 0;
}

//  What the window holds at `now`: the last window_size calls (COUNT) or
//  the calls of the last window_size seconds (TIME).
static void
s_model_window (const model_t *m, const keel_breaker_config_t *c, uint64_t now,
                uint32_t *calls, uint32_t *failures, uint32_t *slow)
{
    uint32_t first = 0;
    if (c->window == KEEL_WINDOW_COUNT)
        first = m->n > c->window_size ? m->n - c->window_size : 0;
    else
        while (first < m->n && m->sec[first] + c->window_size <= now / 1000000)
            first++;
    *calls = m->n - first;
    *failures = *slow = 0;
    for (uint32_t i = first; i < m->n; i++) {
        *failures += m->bits[i] & 1;
        *slow += m->bits[i] >> 1;
    }
}

//  A counted call: listed, after dropping what left the window.
static void
s_model_add (model_t *m, const keel_breaker_config_t *c, uint64_t now,
             unsigned bits)
{
    if (m->n == M_CALLS) {
        uint32_t calls, failures, slow;
        s_model_window (m, c, now, &calls, &failures, &slow);
        S_CHECK (calls < M_CALLS);
        memmove (m->sec, m->sec + m->n - calls, calls * sizeof m->sec[0]);
        memmove (m->bits, m->bits + m->n - calls, calls);
        m->n = calls;
    }
    m->sec[m->n] = now / 1000000;
    m->bits[m->n] = (uint8_t)bits;
    m->n++;
}

static void
s_on_random (keel_breaker_t *breaker, keel_breaker_state_t from,
             keel_breaker_state_t to, const char *reason, uint64_t now_us,
             void *arg)
{
    (void)breaker, (void)now_us;
    model_t *m = (model_t *)arg;
    S_CHECK (from == m->state);
    S_CHECK (from != to);
    S_CHECK (reason && *reason);
    m->state = to;
    m->heard++;
    if (to == HALF_OPEN)
        m->permits = 0;
    if (to == CLOSED)
        s_model_clear (m);
}

//  A random config; windows and waits small so that every state is visited.
static keel_breaker_config_t
s_random_config (uint64_t *rng, int round)
{
    keel_breaker_config_t c;
    keel_breaker_config_default (&c);
    c.window = round % 2 ? KEEL_WINDOW_TIME : KEEL_WINDOW_COUNT;
    c.window_size = 1 + (uint32_t)(s_rand (rng) % 20);
    c.minimum_calls = 1 + (uint32_t)(s_rand (rng) % 25);
    c.failure_threshold = 10 + (double)(s_rand (rng) % 91);
    c.slow_threshold = 10 + (double)(s_rand (rng) % 91);
    c.slow_call_us = MS (50);
    c.open_wait_us = MS (1 + s_rand (rng) % 500);
    c.open_wait_multiplier = 1 + (double)(s_rand (rng) % 3);
    c.open_wait_max_us = c.open_wait_us * 4;
    c.half_open_calls = 1 + (uint32_t)(s_rand (rng) % 5);
    c.max_half_open_us = round % 3 ? MS (s_rand (rng) % 2000) : 0;
    return c;
}

//  The verdict the window must give after a record in CLOSED.
static bool
s_model_trips (const model_t *m, const keel_breaker_config_t *c,
               uint32_t minimum, uint64_t now)
{
    uint32_t calls, f, s;
    s_model_window (m, c, now, &calls, &f, &s);
    return calls >= minimum && (f * 100.0 / calls >= c->failure_threshold ||
                                s * 100.0 / calls >= c->slow_threshold);
}

//  Invariants after every step.
static void
s_check_invariants (keel_breaker_t *b, const model_t *m,
                    const keel_breaker_config_t *c, uint32_t minimum,
                    uint64_t now)
{
    keel_breaker_stats_t st = keel_breaker_stats (b, now);
    S_CHECK (st.state == m->state);
    S_CHECK (st.transitions == m->heard);
    S_CHECK (st.failure_rate == -1 ||
             (st.failure_rate >= 0 && st.failure_rate <= 100));
    S_CHECK (st.slow_rate == -1 || (st.slow_rate >= 0 && st.slow_rate <= 100));
    S_CHECK (st.window_failures <= st.window_calls);
    S_CHECK (st.window_slow <= st.window_calls);
    S_CHECK (st.failures <= st.calls);
    S_CHECK (st.slow_calls <= st.calls);
    if (st.state == HALF_OPEN) {
        S_CHECK (m->permits <= c->half_open_calls);
        S_CHECK (st.window_calls <= m->permits);
        S_CHECK (st.failure_rate == -1);
    } else {
        S_CHECK ((st.failure_rate == -1) == (st.window_calls < minimum));
        S_CHECK ((st.slow_rate == -1) == (st.window_calls < minimum));
        uint32_t calls, failures, slow;
        s_model_window (m, c, now, &calls, &failures, &slow);
        S_CHECK (st.window_calls == calls);
        S_CHECK (st.window_failures == failures);
        S_CHECK (st.window_slow == slow);
        if (c->window == KEEL_WINDOW_COUNT)
            S_CHECK (st.window_calls <= c->window_size);
    }
}

START_TEST (test_randomized)
{
    const uint64_t seed = 0x6b65656c2d62726bULL; //  fixed: reproducible
    const int rounds = 8, ops = 100000 / 8;
    uint64_t rng = seed;
    uint64_t transitions = 0, permits = 0, refusals = 0;
    for (s_round = 0; s_round < rounds; s_round++) {
        keel_breaker_config_t c = s_random_config (&rng, s_round);
        uint32_t minimum = c.minimum_calls;
        bool count = c.window == KEEL_WINDOW_COUNT;
        if (count && minimum > c.window_size)
            minimum = c.window_size;
        uint64_t now = SEC (1000);
        keel_breaker_t *b = keel_breaker_new ("rnd", &c, now);
        ck_assert_ptr_nonnull (b);
        model_t m;
        memset (&m, 0, sizeof m);
        m.state = CLOSED;
        keel_breaker_set_listener (b, s_on_random, &m);
        uint32_t outstanding = 0; //  permitted calls not yet recorded
        for (s_op = 0; s_op < ops; s_op++) {
            uint64_t r = s_rand (&rng);
            now += r % 8 == 0 ? MS (r % 3000) : MS (r % 40);
            int what = (int)((r >> 16) % 1000);
            if (what < 450) {
                uint64_t retry = 7;
                if (keel_breaker_acquire (b, now, &retry)) {
                    permits++;
                    outstanding++;
                    if (m.state == HALF_OPEN)
                        m.permits++;
                } else {
                    refusals++;
                    S_CHECK (m.state == OPEN || m.state == HALF_OPEN ||
                             m.state == FORCED_OPEN);
                    S_CHECK (m.state == OPEN ? retry > 0 : retry == 0);
                }
            } else if (what < 900 && outstanding > 0) {
                outstanding--;
                uint64_t r2 = s_rand (&rng);
                keel_outcome_t outcome = r2 % 10 < 4   ? FAIL
                                         : r2 % 10 < 9 ? OK
                                                       : IGN;
                uint64_t duration = MS ((r2 >> 8) % 100);
                keel_breaker_state_t before = m.state;
                bool counted = outcome != IGN &&
                               (before == CLOSED || before == METRICS_ONLY);
                if (counted)
                    s_model_add (&m, &c, now,
                                 (outcome == FAIL) | (duration > c.slow_call_us)
                                                         << 1);
                keel_breaker_record (b, outcome, duration, now);
                if (counted && before == CLOSED)
                    S_CHECK (
                        m.state ==
                        (s_model_trips (&m, &c, minimum, now) ? OPEN : CLOSED));
                if (before == METRICS_ONLY || before == DISABLED ||
                    before == FORCED_OPEN)
                    S_CHECK (m.state == before); //  never trips
            } else if (what < 940) {
                uint64_t next = keel_breaker_tick (b, now);
                if (m.state == OPEN)
                    S_CHECK (next > 0);
                else if (m.state == HALF_OPEN)
                    S_CHECK (c.max_half_open_us ? next > now : next == 0);
                else
                    S_CHECK (next == 0);
            } else if (what < 950) {
                keel_breaker_state_t to =
                    (keel_breaker_state_t)(s_rand (&rng) % 6);
                keel_breaker_force (b, to, now);
                S_CHECK (m.state == to);
                if (to == CLOSED) //  a reset, even from CLOSED
                    s_model_clear (&m);
            } else if (what < 955) {
                keel_breaker_state_t to =
                    (keel_breaker_state_t)(s_rand (&rng) % 6);
                if (to == HALF_OPEN && m.state != HALF_OPEN)
                    m.permits = 0;
                uint64_t heard = m.heard;
                keel_breaker_mirror (b, to, now + MS (s_rand (&rng) % 1000),
                                     now);
                S_CHECK (m.heard == heard); //  a mirror is not heard
                m.state = to;
            }
            s_check_invariants (b, &m, &c, minimum, now);
        }
        transitions += m.heard;
        keel_breaker_destroy (&b);
    }
    //  The walk went everywhere.
    ck_assert_uint_gt (transitions, 1000);
    ck_assert_uint_gt (permits, 10000);
    ck_assert_uint_gt (refusals, 1000);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_breaker");
    TCase *tc = tcase_create ("core");
    tcase_add_test (tc, test_config);
    tcase_add_test (tc, test_new_destroy);
    tcase_add_test (tc, test_names);
    tcase_add_test (tc, test_count_window_sliding);
    tcase_add_test (tc, test_count_minimum_capped);
    tcase_add_test (tc, test_time_window_sliding);
    tcase_add_test (tc, test_time_window_trips);
    tcase_add_test (tc, test_minimum_calls);
    tcase_add_test (tc, test_failure_threshold);
    tcase_add_test (tc, test_slow_rate);
    tcase_add_test (tc, test_slow_failure);
    tcase_add_test (tc, test_consecutive_failures);
    tcase_add_test (tc, test_open_wait);
    tcase_add_test (tc, test_half_open_close);
    tcase_add_test (tc, test_half_open_reopen);
    tcase_add_test (tc, test_half_open_ignored);
    tcase_add_test (tc, test_late_records);
    tcase_add_test (tc, test_wait_growth);
    tcase_add_test (tc, test_max_half_open);
    tcase_add_test (tc, test_forced_states);
    tcase_add_test (tc, test_mirror);
    tcase_add_test (tc, test_listener_sequence);
    tcase_add_test (tc, test_listener_reentry);
    tcase_add_test (tc, test_stats_counters);
    tcase_add_test (tc, test_classify_http);
    tcase_add_test (tc, test_classify_bus);
    tcase_add_test (tc, test_randomized);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
