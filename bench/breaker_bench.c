/*  breaker_bench.c - the cost of one circuit-breaker call, beside its
    anchor in the same run.

    The figure: nanoseconds per keel_breaker_acquire + keel_breaker_record
    pair on one thread, for a CLOSED breaker that stays CLOSED:

      - COUNT window of 100 calls (the defaults: minimum 100, failure
        threshold 50%), and
      - TIME window of 10 seconds (minimum 100), its buckets aging in real
        time,

    each fed one failure in four (25%, never trips) with durations spread
    so that about half the calls are slow (slow threshold 100%, never
    trips): every record moves the window sums and judges both rates.

    The anchor: an empty function, not inlined (called through a volatile
    function pointer), with the same arguments, in the same loop. Each loop
    reads the monotonic clock once per 1024 iterations and passes that
    slowly advancing now_us, as a caller with a coarse clock would; the
    clock's cost is in both figures.

    Each round runs the anchor, then COUNT, then TIME; the medians over the
    rounds are reported, with the difference (breaker minus anchor) and the
    ratio. Target: <= 50 ns per pair (Resilience4j's, on the JVM: about
    300 ns; quoted, not measured here).

    Usage: breaker_bench [-n N] [-r ROUNDS] [-q] [--json]
*/
#include "breaker.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ROUNDS   15
#define TARGET_NS    50.0
#define R4J_NS       300.0 //  Resilience4j, quoted for scale
#define DEFAULT_N    50000000L
#define QUICK_N      2000000L
#define CLOCK_EVERY  1024 //  iterations per clock read (a power of two)
#define SLOW_CALL_US 1000

//  What one round measured, ns per iteration.
typedef struct {
    double empty; //  anchor: an empty call
    double count; //  acquire + record, COUNT window
    double time;  //  acquire + record, TIME window
} s_round_t;

//  Medians over the rounds.
typedef struct {
    double empty, count, time;
} s_summary_t;

static uint64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
s_now_us (void)
{
    return s_now_ns () / 1000;
}

// ---------------------------------------------------------------------------
//  The anchor

static void __attribute__ ((noinline))
s_empty (keel_breaker_t *breaker, uint64_t now_us)
{
    (void)breaker, (void)now_us;
}

//  Volatile: the compiler must load it and call through it every time.
static void (*volatile s_empty_fn) (keel_breaker_t *, uint64_t) = s_empty;

static double
s_run_empty (long n)
{
    uint64_t start = s_now_ns ();
    uint64_t now_us = 0;
    for (long i = 0; i < n; i++) {
        if ((i & (CLOCK_EVERY - 1)) == 0)
            now_us = s_now_us ();
        s_empty_fn (NULL, now_us);
    }
    return (double)(s_now_ns () - start) / (double)n;
}

// ---------------------------------------------------------------------------
//  The breaker

static keel_breaker_t *
s_breaker_new (keel_window_kind_t window)
{
    keel_breaker_config_t config;
    keel_breaker_config_default (&config);
    config.window = window;
    config.window_size = window == KEEL_WINDOW_COUNT ? 100 : 10;
    config.slow_call_us = SLOW_CALL_US;
    keel_breaker_t *breaker = keel_breaker_new ("bench", &config, s_now_us ());
    if (!breaker) {
        fprintf (stderr, "breaker_bench: cannot create a breaker\n");
        exit (1);
    }
    return breaker;
}

//  ns per acquire + record pair over `n` iterations of a new breaker.
static double
s_run_breaker (keel_window_kind_t window, long n)
{
    keel_breaker_t *breaker = s_breaker_new (window);
    uint64_t start = s_now_ns ();
    uint64_t now_us = 0;
    for (long i = 0; i < n; i++) {
        if ((i & (CLOCK_EVERY - 1)) == 0)
            now_us = s_now_us ();
        if (keel_breaker_acquire (breaker, now_us, NULL))
            keel_breaker_record (breaker,
                                 (i & 3) == 3 ? KEEL_OUTCOME_FAILURE
                                              : KEEL_OUTCOME_SUCCESS,
                                 (uint64_t)(i * 37) & 2047, now_us);
    }
    double ns = (double)(s_now_ns () - start) / (double)n;
    //  The figure only counts if the breaker did what it should: stayed
    //  CLOSED and recorded every call.
    keel_breaker_stats_t stats = keel_breaker_stats (breaker, now_us);
    if (stats.state != KEEL_BREAKER_CLOSED || stats.refused != 0 ||
        stats.calls != (uint64_t)n) {
        fprintf (stderr,
                 "breaker_bench: %s window: state %s, %llu refused, %llu of "
                 "%ld calls recorded\n",
                 window == KEEL_WINDOW_COUNT ? "COUNT" : "TIME",
                 keel_breaker_state_name (stats.state),
                 (unsigned long long)stats.refused,
                 (unsigned long long)stats.calls, n);
        exit (1);
    }
    keel_breaker_destroy (&breaker);
    return ns;
}

// ---------------------------------------------------------------------------
//  Reporting

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
s_median (const s_round_t *rounds, int count, size_t offset)
{
    double values[MAX_ROUNDS];
    for (int r = 0; r < count; r++)
        values[r] = *(const double *)((const char *)&rounds[r] + offset);
    qsort (values, (size_t)count, sizeof values[0], s_compare);
    return count % 2 ? values[count / 2]
                     : (values[count / 2 - 1] + values[count / 2]) / 2;
}

static const char *
s_ok (bool ok)
{
    return ok ? "ok" : "MISSED";
}

static void
s_print_table (FILE *out, const s_round_t *rounds, int count, long n,
               const s_summary_t *s)
{
    fprintf (out,
             "breaker_bench: %ld iterations per figure, %d round%s, clock "
             "read every %d iterations\n",
             n, count, count == 1 ? "" : "s", CLOCK_EVERY);
    fprintf (out, "  %-6s %14s %14s %14s\n", "round", "empty call",
             "COUNT pair", "TIME pair");
    for (int r = 0; r < count; r++)
        fprintf (out, "  %-6d %11.2f ns %11.2f ns %11.2f ns\n", r + 1,
                 rounds[r].empty, rounds[r].count, rounds[r].time);
    fprintf (out, "  median %11.2f ns %11.2f ns %11.2f ns\n", s->empty,
             s->count, s->time);
    const char *names[] = {"COUNT window 100", "TIME window 10 s"};
    double figures[] = {s->count, s->time};
    for (int i = 0; i < 2; i++)
        fprintf (out,
                 "  %s: %.2f ns per acquire+record, %.2f ns over the empty "
                 "call (x%.1f); target <= %.0f ns %s (Resilience4j ~%.0f "
                 "ns)\n",
                 names[i], figures[i], figures[i] - s->empty,
                 figures[i] / s->empty, TARGET_NS,
                 s_ok (figures[i] <= TARGET_NS), R4J_NS);
}

static void
s_json_rounds (const s_round_t *rounds, int count, size_t offset)
{
    printf ("[");
    for (int r = 0; r < count; r++)
        printf ("%s%.3f", r ? "," : "",
                *(const double *)((const char *)&rounds[r] + offset));
    printf ("]");
}

static void
s_print_json (const s_round_t *rounds, int count, long n, const s_summary_t *s)
{
    printf ("{\"bench\":\"breaker_bench\",\"iterations\":%ld,\"rounds\":%d,"
            "\"clock_every\":%d,\"target_ns\":%.0f,\"empty_call_ns\":%.3f,"
            "\"rounds_empty_ns\":",
            n, count, CLOCK_EVERY, TARGET_NS, s->empty);
    s_json_rounds (rounds, count, offsetof (s_round_t, empty));
    const char *names[] = {"count", "time"};
    double figures[] = {s->count, s->time};
    size_t offsets[] = {offsetof (s_round_t, count),
                        offsetof (s_round_t, time)};
    for (int i = 0; i < 2; i++) {
        printf (",\"%s\":{\"pair_ns\":%.3f,\"minus_empty_ns\":%.3f,"
                "\"ratio_to_empty\":%.3f,\"ok\":%s,\"rounds_ns\":",
                names[i], figures[i], figures[i] - s->empty,
                figures[i] / s->empty,
                figures[i] <= TARGET_NS ? "true" : "false");
        s_json_rounds (rounds, count, offsets[i]);
        printf ("}");
    }
    printf ("}\n");
}

// ---------------------------------------------------------------------------

static void
s_usage (FILE *out)
{
    fprintf (out,
             "usage: breaker_bench [-n N] [-r ROUNDS] [-q] [--json]\n"
             "  -n N      iterations per figure (default %ld)\n"
             "  -r R      rounds; medians are reported (default 5, max %d)\n"
             "  -q        quick: N=%ld (under 2 s)\n"
             "  --json    one JSON object on stdout; the table goes to "
             "stderr\n",
             DEFAULT_N, MAX_ROUNDS, QUICK_N);
}

static long
s_arg_long (const char *option, const char *value, long min, long max)
{
    char *end = NULL;
    long v = value ? strtol (value, &end, 10) : 0;
    if (!value || *end || v < min || v > max) {
        fprintf (stderr, "breaker_bench: %s needs a number in %ld..%ld\n",
                 option, min, max);
        s_usage (stderr);
        exit (2);
    }
    return v;
}

int
main (int argc, char *argv[])
{
    long n = -1;
    int rounds = 5;
    bool json = false, quick = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp (arg, "-n") == 0)
            n = s_arg_long (arg, value, CLOCK_EVERY, 2000000000L), i++;
        else if (strcmp (arg, "-r") == 0)
            rounds = (int)s_arg_long (arg, value, 1, MAX_ROUNDS), i++;
        else if (strcmp (arg, "-q") == 0)
            quick = true;
        else if (strcmp (arg, "--json") == 0)
            json = true;
        else if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
            s_usage (stdout);
            return 0;
        } else {
            s_usage (stderr);
            return 2;
        }
    }
    if (n == -1)
        n = quick ? QUICK_N : DEFAULT_N;

    //  Warm up: caches, branch predictors, the CPU's clock.
    s_run_empty (n / 10);
    s_run_breaker (KEEL_WINDOW_COUNT, n / 10);
    s_run_breaker (KEEL_WINDOW_TIME, n / 10);

    s_round_t results[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        results[r].empty = s_run_empty (n);
        results[r].count = s_run_breaker (KEEL_WINDOW_COUNT, n);
        results[r].time = s_run_breaker (KEEL_WINDOW_TIME, n);
    }
    s_summary_t summary = {
        s_median (results, rounds, offsetof (s_round_t, empty)),
        s_median (results, rounds, offsetof (s_round_t, count)),
        s_median (results, rounds, offsetof (s_round_t, time)),
    };
    s_print_table (json ? stderr : stdout, results, rounds, n, &summary);
    if (json)
        s_print_json (results, rounds, n, &summary);
    return 0; //  a missed target is reported, not an error
}
