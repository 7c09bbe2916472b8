/*  metrics.h - a Prometheus metrics registry (pure core): counters,
    gauges and histograms with labels, rendered in the Prometheus text
    exposition format (version 0.0.4). No sockets, no threads, no clock.

        registry --> family "keel_gateway_requests_total" (counter,
          |                 labels route, code)
          |            --> series {route="users",code="200"} = 42
          |            --> series {route="users",code="404"} = 1
          +--> family "keel_gateway_request_duration_seconds" (histogram)
                       --> series {route="users"}: buckets, sum, count

    Families are declared once; series are created on first use and found
    again by their label values (a hash lookup). A series handle stays
    valid until its family is reset or the registry destroyed, so hot code
    keeps handles and skips the lookup.

    Rendering sorts nothing: families in declaration order, series in
    creation order. Label values are escaped (\\ \" \n) as the format says.

    Thread: one registry belongs to one thread.
*/
#ifndef KEEL_METRICS_H_INCLUDED
#define KEEL_METRICS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Most labels a family may have.
#define KEEL_METRICS_MAX_LABELS 8
//  Most buckets a histogram may have (+Inf not counted).
#define KEEL_METRICS_MAX_BUCKETS 32

typedef enum {
    KEEL_METRIC_COUNTER = 0,
    KEEL_METRIC_GAUGE = 1,
    KEEL_METRIC_HISTOGRAM = 2,
} keel_metric_type_t;

typedef struct _keel_metrics_t keel_metrics_t;
typedef struct _keel_metric_family_t keel_metric_family_t;
typedef struct _keel_metric_t keel_metric_t;

//  Latency buckets in seconds, 0.5 ms to 10 s (14 of them), for
//  histograms of request durations.
extern const double keel_metrics_latency_buckets[];
extern const size_t keel_metrics_latency_bucket_count;

//  Create an empty registry. Returns NULL if out of memory. Caller owns it.
keel_metrics_t *keel_metrics_new (void);

//  Destroy the registry, its families and series. Nulls *self_p.
void keel_metrics_destroy (keel_metrics_t **self_p);

//  Declare a family. `name` must match [a-zA-Z_:][a-zA-Z0-9_:]* and be new
//  in the registry; `help` is one line (escaped on output); `labels` are
//  n_labels names matching [a-zA-Z_][a-zA-Z0-9_]* (not "le"; at most
//  KEEL_METRICS_MAX_LABELS). Histograms take n_buckets strictly increasing
//  finite upper bounds (at most KEEL_METRICS_MAX_BUCKETS; +Inf is added);
//  other types pass NULL, 0. All strings copied. Returns the family
//  (owned by the registry), or NULL on a bad argument or out of memory.
keel_metric_family_t *
keel_metrics_family (keel_metrics_t *self, const char *name, const char *help,
                     keel_metric_type_t type, const char *const *labels,
                     size_t n_labels, const double *buckets, size_t n_buckets);

//  The series of `family` with these label values (n_labels of them, in
//  the family's label order; any bytes, NUL-terminated), created at zero
//  on first use. Returns it (owned by the family; valid until the family
//  is reset or the registry destroyed), or NULL if out of memory.
keel_metric_t *keel_metric_series (keel_metric_family_t *family,
                                   const char *const *values);

//  Forget every series of `family` (their handles become invalid), e.g.
//  before setting gauges afresh. The family stays declared.
void keel_metric_family_reset (keel_metric_family_t *family);

//  Number of series in `family`.
size_t keel_metric_family_size (keel_metric_family_t *family);

//  Counter: add `value` (>= 0; a negative value is ignored).
void keel_metric_add (keel_metric_t *self, double value);

//  Counter or gauge: add 1.
void keel_metric_inc (keel_metric_t *self);

//  Gauge: set to `value`.
void keel_metric_set (keel_metric_t *self, double value);

//  Histogram: count one observation of `value`.
void keel_metric_observe (keel_metric_t *self, double value);

//  The value of a counter or gauge; a histogram's sum.
double keel_metric_value (keel_metric_t *self);

//  A histogram's count of observations; a counter or gauge's value
//  rounded.
uint64_t keel_metric_count (keel_metric_t *self);

//  Render every family in the text format: "# HELP", "# TYPE", one line
//  per series (histograms: _bucket{le=...} cumulative, _sum, _count). A
//  family without series prints HELP and TYPE only. Returns a new
//  NUL-terminated buffer (caller frees with free) and its length in
//  *size_p (if not NULL), or NULL if out of memory.
char *keel_metrics_render (keel_metrics_t *self, size_t *size_p);

#ifdef __cplusplus
}
#endif

#endif
