/*  test_metrics.c - the Prometheus registry core: declaration checks,
    counter, gauge and histogram semantics, label lookup, 10k series,
    reset, escaping, number formatting and the exact exposition text. */
#include "metrics.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNTER   KEEL_METRIC_COUNTER
#define GAUGE     KEEL_METRIC_GAUGE
#define HISTOGRAM KEEL_METRIC_HISTOGRAM

//  ck_assert records a mark point on every call; loops of thousands of
//  checks use this instead.
#define FAST_ASSERT(expr)                                                      \
    do {                                                                       \
        if (!(expr))                                                           \
            ck_abort_msg ("Assertion '%s' failed", #expr);                     \
    } while (0)

// ---------------------------------------------------------------------------
//  Helpers

static keel_metrics_t *
s_new (void)
{
    keel_metrics_t *metrics = keel_metrics_new ();
    ck_assert_ptr_nonnull (metrics);
    return metrics;
}

//  Render and return the text (caller frees); checks the size reported.
static char *
s_render (keel_metrics_t *metrics)
{
    size_t size = (size_t)-1;
    char *text = keel_metrics_render (metrics, &size);
    ck_assert_ptr_nonnull (text);
    ck_assert_uint_eq (size, strlen (text));
    return text;
}

//  A no-label series of `family`.
static keel_metric_t *
s_series0 (keel_metric_family_t *family)
{
    keel_metric_t *series = keel_metric_series (family, NULL);
    ck_assert_ptr_nonnull (series);
    return series;
}

//  A one-label series of `family`.
static keel_metric_t *
s_series1 (keel_metric_family_t *family, const char *value)
{
    const char *values[] = {value};
    keel_metric_t *series = keel_metric_series (family, values);
    ck_assert_ptr_nonnull (series);
    return series;
}

//  Render a registry holding one no-label gauge set to `value` and return
//  the sample's value text.
static void
s_expect_number (double value, const char *expect)
{
    keel_metrics_t *metrics = s_new ();
    keel_metric_family_t *family =
        keel_metrics_family (metrics, "g", "h", GAUGE, NULL, 0, NULL, 0);
    ck_assert_ptr_nonnull (family);
    keel_metric_set (s_series0 (family), value);
    char *text = s_render (metrics);
    const char *line = strstr (text, "\ng ");
    ck_assert_ptr_nonnull (line);
    char got[64];
    ck_assert_int_eq (sscanf (line + 3, "%63s", got), 1);
    ck_assert_msg (strcmp (got, expect) == 0, "%.17g printed as %s, not %s",
                   value, got, expect);
    free (text);
    keel_metrics_destroy (&metrics);
}

// ---------------------------------------------------------------------------
//  Declarations

START_TEST (test_new_destroy)
{
    keel_metrics_t *metrics = s_new ();
    char *text = s_render (metrics);
    ck_assert_str_eq (text, "");
    free (text);
    keel_metrics_destroy (&metrics);
    ck_assert_ptr_null (metrics);
    keel_metrics_destroy (&metrics); //  NULL is fine
    ck_assert_uint_eq (keel_metrics_latency_bucket_count, 14);
    ck_assert (keel_metrics_latency_buckets[0] == 0.0005);
    ck_assert (keel_metrics_latency_buckets[13] == 10);
    for (size_t i = 1; i < keel_metrics_latency_bucket_count; i++)
        ck_assert (keel_metrics_latency_buckets[i] >
                   keel_metrics_latency_buckets[i - 1]);
}
END_TEST

START_TEST (test_bad_names)
{
    keel_metrics_t *metrics = s_new ();
    const char *bad[] = {"", "1abc", "a-b", "a b", "é", "a.b", "a{", NULL};
    for (size_t i = 0; bad[i]; i++)
        ck_assert_msg (keel_metrics_family (metrics, bad[i], "h", COUNTER, NULL,
                                            0, NULL, 0) == NULL,
                       "accepted name '%s'", bad[i]);
    ck_assert_ptr_null (
        keel_metrics_family (metrics, NULL, "h", COUNTER, NULL, 0, NULL, 0));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "ok", NULL, COUNTER, NULL, 0, NULL, 0));
    ck_assert_ptr_null (keel_metrics_family (
        metrics, "ok", "h", (keel_metric_type_t)7, NULL, 0, NULL, 0));
    const char *good[] = {"a", "_", ":", "a:b_c9", "A_Z", "ns:sub:name_total",
                          NULL};
    for (size_t i = 0; good[i]; i++)
        ck_assert_msg (keel_metrics_family (metrics, good[i], "h", GAUGE, NULL,
                                            0, NULL, 0) != NULL,
                       "refused name '%s'", good[i]);
    keel_metrics_destroy (&metrics);
}
END_TEST

START_TEST (test_bad_labels)
{
    keel_metrics_t *metrics = s_new ();
    const char *bad[] = {"", "9a", "a:b", "a-b", "le", "__name", NULL};
    for (size_t i = 0; bad[i]; i++) {
        const char *labels[] = {"route", bad[i]};
        ck_assert_msg (keel_metrics_family (metrics, "m", "h", COUNTER, labels,
                                            2, NULL, 0) == NULL,
                       "accepted label '%s'", bad[i]);
    }
    //  "le" for every type.
    const char *le[] = {"le"};
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "m", "h", GAUGE, le, 1, NULL, 0));
    double one[] = {1};
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "m", "h", HISTOGRAM, le, 1, one, 1));
    //  Duplicates.
    const char *dup[] = {"a", "b", "a"};
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "m", "h", COUNTER, dup, 3, NULL, 0));
    //  NULL label, NULL array.
    const char *null_label[] = {"a", NULL};
    ck_assert_ptr_null (keel_metrics_family (metrics, "m", "h", COUNTER,
                                             null_label, 2, NULL, 0));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "m", "h", COUNTER, NULL, 1, NULL, 0));
    //  Too many, and the most allowed.
    const char *nine[] = {"l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9"};
    ck_assert_ptr_null (keel_metrics_family (metrics, "m", "h", COUNTER, nine,
                                             KEEL_METRICS_MAX_LABELS + 1, NULL,
                                             0));
    keel_metric_family_t *family = keel_metrics_family (
        metrics, "m", "h", COUNTER, nine, KEEL_METRICS_MAX_LABELS, NULL, 0);
    ck_assert_ptr_nonnull (family);
    const char *values[] = {"1", "2", "3", "4", "5", "6", "7", "8"};
    keel_metric_inc (keel_metric_series (family, values));
    char *text = s_render (metrics);
    ck_assert_ptr_nonnull (strstr (
        text,
        "m{l1=\"1\",l2=\"2\",l3=\"3\",l4=\"4\",l5=\"5\",l6=\"6\",l7=\"7\","
        "l8=\"8\"} 1\n"));
    free (text);
    keel_metrics_destroy (&metrics);
}
END_TEST

START_TEST (test_duplicate_family)
{
    keel_metrics_t *metrics = s_new ();
    ck_assert_ptr_nonnull (
        keel_metrics_family (metrics, "x", "h", COUNTER, NULL, 0, NULL, 0));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "x", "other", GAUGE, NULL, 0, NULL, 0));
    double one[] = {1};
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "x", "h", HISTOGRAM, NULL, 0, one, 1));
    //  Sample names that would clash with a histogram's.
    ck_assert_ptr_nonnull (
        keel_metrics_family (metrics, "d", "h", HISTOGRAM, NULL, 0, one, 1));
    ck_assert_ptr_null (keel_metrics_family (metrics, "d_count", "h", COUNTER,
                                             NULL, 0, NULL, 0));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "d_sum", "h", GAUGE, NULL, 0, NULL, 0));
    ck_assert_ptr_null (keel_metrics_family (metrics, "d_bucket", "h", GAUGE,
                                             NULL, 0, NULL, 0));
    ck_assert_ptr_nonnull (
        keel_metrics_family (metrics, "d_total", "h", GAUGE, NULL, 0, NULL, 0));
    //  ... and the other way round.
    ck_assert_ptr_nonnull (
        keel_metrics_family (metrics, "e_sum", "h", GAUGE, NULL, 0, NULL, 0));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "e", "h", HISTOGRAM, NULL, 0, one, 1));
    keel_metrics_destroy (&metrics);
}
END_TEST

START_TEST (test_bad_buckets)
{
    keel_metrics_t *metrics = s_new ();
    double equal[] = {1, 1};
    double down[] = {2, 1};
    double nan[] = {1, NAN};
    double inf[] = {1, INFINITY};
    double ninf[] = {-INFINITY, 1};
    double one[] = {1};
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "h", "h", HISTOGRAM, NULL, 0, equal, 2));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "h", "h", HISTOGRAM, NULL, 0, down, 2));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "h", "h", HISTOGRAM, NULL, 0, nan, 2));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "h", "h", HISTOGRAM, NULL, 0, inf, 2));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "h", "h", HISTOGRAM, NULL, 0, ninf, 2));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "h", "h", HISTOGRAM, NULL, 0, NULL, 0));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "h", "h", HISTOGRAM, NULL, 0, NULL, 1));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "h", "h", HISTOGRAM, NULL, 0, one, 0));
    //  Buckets on other types.
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "c", "h", COUNTER, NULL, 0, one, 1));
    ck_assert_ptr_null (
        keel_metrics_family (metrics, "c", "h", GAUGE, NULL, 0, NULL, 1));
    //  Too many, and the most allowed.
    double many[KEEL_METRICS_MAX_BUCKETS + 1];
    for (size_t i = 0; i <= KEEL_METRICS_MAX_BUCKETS; i++)
        many[i] = (double)i - 3;
    ck_assert_ptr_null (keel_metrics_family (metrics, "h", "h", HISTOGRAM, NULL,
                                             0, many,
                                             KEEL_METRICS_MAX_BUCKETS + 1));
    keel_metric_family_t *family = keel_metrics_family (
        metrics, "h", "h", HISTOGRAM, NULL, 0, many, KEEL_METRICS_MAX_BUCKETS);
    ck_assert_ptr_nonnull (family);
    keel_metric_t *series = s_series0 (family);
    keel_metric_observe (series, 1000);
    keel_metric_observe (series, -3);
    char *text = s_render (metrics);
    ck_assert_ptr_nonnull (strstr (text, "h_bucket{le=\"-3\"} 1\n"));
    ck_assert_ptr_nonnull (strstr (text, "h_bucket{le=\"28\"} 1\n"));
    ck_assert_ptr_nonnull (strstr (text, "h_bucket{le=\"+Inf\"} 2\n"));
    free (text);
    //  The failed declarations left nothing behind.
    ck_assert_ptr_nonnull (
        keel_metrics_family (metrics, "c", "h", COUNTER, NULL, 0, NULL, 0));
    keel_metrics_destroy (&metrics);
}
END_TEST

// ---------------------------------------------------------------------------
//  Semantics

START_TEST (test_counter)
{
    keel_metrics_t *metrics = s_new ();
    const char *labels[] = {"code"};
    keel_metric_family_t *family = keel_metrics_family (
        metrics, "requests_total", "Requests.", COUNTER, labels, 1, NULL, 0);
    ck_assert_ptr_nonnull (family);
    keel_metric_t *ok = s_series1 (family, "200");
    ck_assert (keel_metric_value (ok) == 0);
    ck_assert_uint_eq (keel_metric_count (ok), 0);
    keel_metric_inc (ok);
    keel_metric_inc (ok);
    keel_metric_add (ok, 2.5);
    ck_assert (keel_metric_value (ok) == 4.5);
    //  A negative add or a NaN is ignored: a counter only goes up.
    keel_metric_add (ok, -1);
    keel_metric_add (ok, -INFINITY);
    keel_metric_add (ok, NAN);
    ck_assert (keel_metric_value (ok) == 4.5);
    keel_metric_add (ok, 0);
    ck_assert (keel_metric_value (ok) == 4.5);
    ck_assert_uint_eq (keel_metric_count (ok), 5); //  rounded
    keel_metric_add (ok, 0.25);
    ck_assert_uint_eq (keel_metric_count (ok), 5);
    ck_assert_uint_eq (keel_metric_family_size (family), 1);
    keel_metrics_destroy (&metrics);
}
END_TEST

START_TEST (test_gauge)
{
    keel_metrics_t *metrics = s_new ();
    keel_metric_family_t *family =
        keel_metrics_family (metrics, "temp", "T.", GAUGE, NULL, 0, NULL, 0);
    keel_metric_t *gauge = s_series0 (family);
    keel_metric_set (gauge, 10);
    keel_metric_inc (gauge);
    ck_assert (keel_metric_value (gauge) == 11);
    keel_metric_add (gauge, -20); //  a gauge goes down too
    ck_assert (keel_metric_value (gauge) == -9);
    ck_assert_uint_eq (keel_metric_count (gauge), 0); //  negative: 0
    keel_metric_set (gauge, 1e30);
    ck_assert_uint_eq (keel_metric_count (gauge), UINT64_MAX);
    keel_metric_set (gauge, NAN);
    ck_assert (isnan (keel_metric_value (gauge)));
    ck_assert_uint_eq (keel_metric_count (gauge), 0);
    keel_metric_set (gauge, 2.5);
    ck_assert_uint_eq (keel_metric_count (gauge), 3);
    //  The no-label series is one series.
    ck_assert_ptr_eq (s_series0 (family), gauge);
    ck_assert_uint_eq (keel_metric_family_size (family), 1);
    keel_metrics_destroy (&metrics);
}
END_TEST

START_TEST (test_histogram)
{
    keel_metrics_t *metrics = s_new ();
    double bounds[] = {0.1, 0.5, 1, 2.5};
    keel_metric_family_t *family =
        keel_metrics_family (metrics, "d", "D.", HISTOGRAM, NULL, 0, bounds, 4);
    ck_assert_ptr_nonnull (family);
    keel_metric_t *series = s_series0 (family);
    //  On a bound counts in that bucket (le is "less or equal").
    double observations[] = {0.05, 0.1, 0.3, 0.5, 0.7, 2.5, 3, 100, -1};
    double sum = 0;
    for (size_t i = 0; i < sizeof observations / sizeof observations[0]; i++) {
        keel_metric_observe (series, observations[i]);
        sum += observations[i];
    }
    ck_assert_uint_eq (keel_metric_count (series), 9);
    ck_assert (keel_metric_value (series) == sum);
    char *text = s_render (metrics);
    const char *expect = "# HELP d D.\n"
                         "# TYPE d histogram\n"
                         "d_bucket{le=\"0.1\"} 3\n"
                         "d_bucket{le=\"0.5\"} 5\n"
                         "d_bucket{le=\"1\"} 6\n"
                         "d_bucket{le=\"2.5\"} 7\n"
                         "d_bucket{le=\"+Inf\"} 9\n"
                         "d_sum 106.15\n"
                         "d_count 9\n";
    ck_assert_str_eq (text, expect);
    free (text);
    keel_metrics_destroy (&metrics);
}
END_TEST

//  Every bucket of the latency buckets catches its bound and what lies
//  just above the bound before it; NaN and above-all land in +Inf.
START_TEST (test_histogram_latency_buckets)
{
    keel_metrics_t *metrics = s_new ();
    const char *labels[] = {"route"};
    keel_metric_family_t *family = keel_metrics_family (
        metrics, "lat", "L.", HISTOGRAM, labels, 1,
        keel_metrics_latency_buckets, keel_metrics_latency_bucket_count);
    ck_assert_ptr_nonnull (family);
    keel_metric_t *series = s_series1 (family, "users");
    size_t n = keel_metrics_latency_bucket_count;
    for (size_t i = 0; i < n; i++) {
        keel_metric_observe (series, keel_metrics_latency_buckets[i]);
        keel_metric_observe (series, nextafter (keel_metrics_latency_buckets[i],
                                                0)); //  same bucket
    }
    keel_metric_observe (series, 10.5);
    keel_metric_observe (series, NAN);
    char *text = s_render (metrics);
    const char *les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                         "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                         "1",      "2.5",   "5",      "10",    "+Inf"};
    for (size_t i = 0; i <= n; i++) {
        char line[128];
        snprintf (line, sizeof line,
                  "lat_bucket{route=\"users\",le=\"%s\"} %zu\n", les[i],
                  i < n ? 2 * (i + 1) : 2 * n + 2);
        ck_assert_msg (strstr (text, line), "missing %s in\n%s", line, text);
    }
    ck_assert_ptr_nonnull (strstr (text, "lat_sum{route=\"users\"} NaN\n"));
    ck_assert_ptr_nonnull (strstr (text, "lat_count{route=\"users\"} 30\n"));
    free (text);
    keel_metrics_destroy (&metrics);
}
END_TEST

// ---------------------------------------------------------------------------
//  Series lookup

START_TEST (test_label_lookup)
{
    keel_metrics_t *metrics = s_new ();
    const char *labels[] = {"a", "b"};
    keel_metric_family_t *family =
        keel_metrics_family (metrics, "m", "h", COUNTER, labels, 2, NULL, 0);
    const char *v1[] = {"ab", "c"};
    const char *v2[] = {"a", "bc"}; //  same bytes joined, other split
    const char *v3[] = {"", "abc"};
    const char *v4[] = {"abc", ""};
    keel_metric_t *s1 = keel_metric_series (family, v1);
    keel_metric_t *s2 = keel_metric_series (family, v2);
    keel_metric_t *s3 = keel_metric_series (family, v3);
    keel_metric_t *s4 = keel_metric_series (family, v4);
    ck_assert_ptr_nonnull (s1);
    ck_assert_ptr_ne (s1, s2);
    ck_assert_ptr_ne (s3, s4);
    ck_assert_ptr_ne (s1, s3);
    ck_assert_uint_eq (keel_metric_family_size (family), 4);
    //  Found again from other buffers with the same bytes.
    char x[] = "ab", y[] = "c";
    const char *again[] = {x, y};
    ck_assert_ptr_eq (keel_metric_series (family, again), s1);
    ck_assert_ptr_eq (keel_metric_series (family, v2), s2);
    ck_assert_ptr_eq (keel_metric_series (family, v4), s4);
    ck_assert_uint_eq (keel_metric_family_size (family), 4);
    //  The values were copied.
    x[0] = 'z';
    keel_metric_inc (s1);
    char *text = s_render (metrics);
    ck_assert_ptr_nonnull (strstr (text, "m{a=\"ab\",b=\"c\"} 1\n"));
    free (text);
    //  A NULL value is refused.
    const char *null_value[] = {"a", NULL};
    ck_assert_ptr_null (keel_metric_series (family, null_value));
    ck_assert_ptr_null (keel_metric_series (family, NULL));
    keel_metrics_destroy (&metrics);
}
END_TEST

START_TEST (test_many_series)
{
    enum { N = 10000 };
    keel_metrics_t *metrics = s_new ();
    const char *labels[] = {"route", "code"};
    keel_metric_family_t *family =
        keel_metrics_family (metrics, "m", "h", COUNTER, labels, 2, NULL, 0);
    keel_metric_t **handles = (keel_metric_t **)calloc (N, sizeof *handles);
    char route[32], code[32];
    for (int i = 0; i < N; i++) {
        snprintf (route, sizeof route, "r%d", i / 10);
        snprintf (code, sizeof code, "%d", i % 10);
        const char *values[] = {route, code};
        handles[i] = keel_metric_series (family, values);
        FAST_ASSERT (handles[i] != NULL);
        keel_metric_add (handles[i], (double)i);
    }
    ck_assert_uint_eq (keel_metric_family_size (family), N);
    //  Every one found again, in another order; all distinct.
    for (int i = N - 1; i >= 0; i--) {
        snprintf (route, sizeof route, "r%d", i / 10);
        snprintf (code, sizeof code, "%d", i % 10);
        const char *values[] = {route, code};
        FAST_ASSERT (keel_metric_series (family, values) == handles[i]);
        FAST_ASSERT (keel_metric_value (handles[i]) == (double)i);
    }
    ck_assert_uint_eq (keel_metric_family_size (family), N);
    //  Rendered in creation order.
    char *text = s_render (metrics);
    const char *at = text;
    for (int i = 0; i < N; i++) {
        char line[64];
        snprintf (line, sizeof line, "m{route=\"r%d\",code=\"%d\"} %d\n",
                  i / 10, i % 10, i);
        const char *found = strstr (at, line);
        FAST_ASSERT (found != NULL);
        at = found + strlen (line);
    }
    ck_assert_str_eq (at, "");
    free (text);
    free (handles);
    keel_metrics_destroy (&metrics);
}
END_TEST

START_TEST (test_reset)
{
    keel_metrics_t *metrics = s_new ();
    const char *labels[] = {"k"};
    keel_metric_family_t *family =
        keel_metrics_family (metrics, "g", "G.", GAUGE, labels, 1, NULL, 0);
    keel_metric_family_t *other =
        keel_metrics_family (metrics, "o", "O.", GAUGE, NULL, 0, NULL, 0);
    keel_metric_set (s_series0 (other), 7);
    char value[16];
    for (int i = 0; i < 100; i++) {
        snprintf (value, sizeof value, "v%d", i);
        keel_metric_set (s_series1 (family, value), i);
    }
    ck_assert_uint_eq (keel_metric_family_size (family), 100);
    keel_metric_family_reset (family);
    ck_assert_uint_eq (keel_metric_family_size (family), 0);
    char *text = s_render (metrics);
    ck_assert_str_eq (text, "# HELP g G.\n# TYPE g gauge\n"
                            "# HELP o O.\n# TYPE o gauge\no 7\n");
    free (text);
    //  Usable again, series start at zero.
    keel_metric_t *fresh = s_series1 (family, "v5");
    ck_assert (keel_metric_value (fresh) == 0);
    keel_metric_set (fresh, 3);
    ck_assert_ptr_eq (s_series1 (family, "v5"), fresh);
    ck_assert_uint_eq (keel_metric_family_size (family), 1);
    text = s_render (metrics);
    ck_assert_str_eq (text, "# HELP g G.\n# TYPE g gauge\ng{k=\"v5\"} 3\n"
                            "# HELP o O.\n# TYPE o gauge\no 7\n");
    free (text);
    //  A reset of an empty family is fine.
    keel_metric_family_reset (family);
    keel_metric_family_reset (family);
    ck_assert_uint_eq (keel_metric_family_size (family), 0);
    keel_metrics_destroy (&metrics);
}
END_TEST

// ---------------------------------------------------------------------------
//  Text

START_TEST (test_escaping)
{
    keel_metrics_t *metrics = s_new ();
    const char *labels[] = {"path"};
    keel_metric_family_t *family =
        keel_metrics_family (metrics, "m", "Say \"hi\" to C:\\dir\nand more",
                             COUNTER, labels, 1, NULL, 0);
    ck_assert_ptr_nonnull (family);
    keel_metric_inc (s_series1 (family, "a\"b\\c\nd"));
    keel_metric_inc (s_series1 (family, "\xc3\xa9t\xc3\xa9 {x=\"y\"},"));
    keel_metric_inc (s_series1 (family, ""));
    char *text = s_render (metrics);
    ck_assert_str_eq (text, "# HELP m Say \"hi\" to C:\\\\dir\\nand more\n"
                            "# TYPE m counter\n"
                            "m{path=\"a\\\"b\\\\c\\nd\"} 1\n"
                            "m{path=\"\xc3\xa9t\xc3\xa9 {x=\\\"y\\\"},\"} 1\n"
                            "m{path=\"\"} 1\n");
    free (text);
    keel_metrics_destroy (&metrics);
}
END_TEST

START_TEST (test_number_format)
{
    s_expect_number (0, "0");
    s_expect_number (-0.0, "0");
    s_expect_number (42, "42");
    s_expect_number (-42, "-42");
    s_expect_number (1234567, "1234567");
    s_expect_number (9007199254740992.0, "9007199254740992");
    s_expect_number (1e20, "1e+20");
    s_expect_number (0.1, "0.1");
    s_expect_number (0.0005, "0.0005");
    s_expect_number (2.5, "2.5");
    s_expect_number (1.0 / 3, "0.3333333333333333");
    s_expect_number (0.1 + 0.2, "0.30000000000000004");
    s_expect_number (1e-7, "1e-07");
    s_expect_number (123.456, "123.456");
    s_expect_number (NAN, "NaN");
    s_expect_number (INFINITY, "+Inf");
    s_expect_number (-INFINITY, "-Inf");
}
END_TEST

//  The whole exposition of a small registry, byte for byte.
START_TEST (test_render_exact)
{
    keel_metrics_t *metrics = s_new ();
    const char *route_code[] = {"route", "code"};
    const char *route[] = {"route"};
    keel_metric_family_t *requests = keel_metrics_family (
        metrics, "keel_gateway_requests_total", "Requests served.", COUNTER,
        route_code, 2, NULL, 0);
    keel_metric_family_t *up = keel_metrics_family (
        metrics, "keel_gateway_up", "1 when serving.", GAUGE, NULL, 0, NULL, 0);
    double bounds[] = {0.005, 0.1, 1};
    keel_metric_family_t *duration = keel_metrics_family (
        metrics, "keel_gateway_request_duration_seconds", "Request latency.",
        HISTOGRAM, route, 1, bounds, 3);
    keel_metric_family_t *empty =
        keel_metrics_family (metrics, "keel_gateway_empty", "Nothing yet.",
                             GAUGE, route, 1, NULL, 0);
    ck_assert_ptr_nonnull (requests);
    ck_assert_ptr_nonnull (up);
    ck_assert_ptr_nonnull (duration);
    ck_assert_ptr_nonnull (empty);

    const char *users_200[] = {"users", "200"};
    const char *users_404[] = {"users", "404"};
    const char *orders_200[] = {"orders", "200"};
    keel_metric_add (keel_metric_series (requests, users_200), 41);
    keel_metric_inc (keel_metric_series (requests, users_404));
    keel_metric_inc (keel_metric_series (requests, orders_200));
    keel_metric_inc (keel_metric_series (requests, users_200));
    keel_metric_set (s_series0 (up), 1);
    keel_metric_t *users = s_series1 (duration, "users");
    keel_metric_observe (users, 0.004);
    keel_metric_observe (users, 0.05);
    keel_metric_observe (users, 2);
    s_series1 (duration, "orders");

    const char *expect =
        "# HELP keel_gateway_requests_total Requests served.\n"
        "# TYPE keel_gateway_requests_total counter\n"
        "keel_gateway_requests_total{route=\"users\",code=\"200\"} 42\n"
        "keel_gateway_requests_total{route=\"users\",code=\"404\"} 1\n"
        "keel_gateway_requests_total{route=\"orders\",code=\"200\"} 1\n"
        "# HELP keel_gateway_up 1 when serving.\n"
        "# TYPE keel_gateway_up gauge\n"
        "keel_gateway_up 1\n"
        "# HELP keel_gateway_request_duration_seconds Request latency.\n"
        "# TYPE keel_gateway_request_duration_seconds histogram\n"
        "keel_gateway_request_duration_seconds_bucket{route=\"users\","
        "le=\"0.005\"} 1\n"
        "keel_gateway_request_duration_seconds_bucket{route=\"users\","
        "le=\"0.1\"} 2\n"
        "keel_gateway_request_duration_seconds_bucket{route=\"users\","
        "le=\"1\"} 2\n"
        "keel_gateway_request_duration_seconds_bucket{route=\"users\","
        "le=\"+Inf\"} 3\n"
        "keel_gateway_request_duration_seconds_sum{route=\"users\"} 2.054\n"
        "keel_gateway_request_duration_seconds_count{route=\"users\"} 3\n"
        "keel_gateway_request_duration_seconds_bucket{route=\"orders\","
        "le=\"0.005\"} 0\n"
        "keel_gateway_request_duration_seconds_bucket{route=\"orders\","
        "le=\"0.1\"} 0\n"
        "keel_gateway_request_duration_seconds_bucket{route=\"orders\","
        "le=\"1\"} 0\n"
        "keel_gateway_request_duration_seconds_bucket{route=\"orders\","
        "le=\"+Inf\"} 0\n"
        "keel_gateway_request_duration_seconds_sum{route=\"orders\"} 0\n"
        "keel_gateway_request_duration_seconds_count{route=\"orders\"} 0\n"
        "# HELP keel_gateway_empty Nothing yet.\n"
        "# TYPE keel_gateway_empty gauge\n";
    size_t size = 0;
    char *text = keel_metrics_render (metrics, &size);
    ck_assert_ptr_nonnull (text);
    ck_assert_str_eq (text, expect);
    ck_assert_uint_eq (size, strlen (expect));
    free (text);
    //  size_p is optional.
    text = keel_metrics_render (metrics, NULL);
    ck_assert_str_eq (text, expect);
    free (text);
    keel_metrics_destroy (&metrics);
}
END_TEST

// ---------------------------------------------------------------------------

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_metrics");
    TCase *tc = tcase_create ("core");
    tcase_add_test (tc, test_new_destroy);
    tcase_add_test (tc, test_bad_names);
    tcase_add_test (tc, test_bad_labels);
    tcase_add_test (tc, test_duplicate_family);
    tcase_add_test (tc, test_bad_buckets);
    tcase_add_test (tc, test_counter);
    tcase_add_test (tc, test_gauge);
    tcase_add_test (tc, test_histogram);
    tcase_add_test (tc, test_histogram_latency_buckets);
    tcase_add_test (tc, test_label_lookup);
    tcase_add_test (tc, test_many_series);
    tcase_add_test (tc, test_reset);
    tcase_add_test (tc, test_escaping);
    tcase_add_test (tc, test_number_format);
    tcase_add_test (tc, test_render_exact);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
