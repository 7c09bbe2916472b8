/*  metrics.c - a Prometheus metrics registry (see metrics.h).

    A registry is an array of families in declaration order. A family
    keeps its series two ways:

      items[]  series pointers in creation order (what render walks)
      slots[]  open-addressing hash (linear probing, power-of-two size,
               at most half full) of the same pointers, keyed by the
               label values; a slot is NULL or a series

    A series is one allocation:

      +--------------------------+---------------------+-----------+-------+
      | keel_metric_t            | counts[n_buckets+1] | values[n] | "v1\0 |
      | family, hash, value, ... | (histograms only)   | pointers  |  v2\0"|
      +--------------------------+---------------------+-----------+-------+

    The hash is FNV-1a over every value preceded by its length (so ("ab",
    "c") and ("a", "bc") differ), finished with a 64-bit mixer because the
    table uses the low bits. Lookup hashes the caller's values, probes,
    and compares the stored hash before the strings: a hit allocates
    nothing. Label values are expected from a bounded set (route names,
    status codes, methods), as Prometheus wants anyway, so the hash is not
    keyed.

    Histogram counts are stored per bucket (not cumulative): observe
    finds the bucket by binary search and bumps one counter; render sums
    as it goes. Each family keeps its bucket bounds already formatted for
    the `le` label.
*/
#include "metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Room for any number format_double writes, NUL included
//  ("-2.2250738585072014e-308" is 24 characters).
#define S_NUMBER_MAX 32
//  First size of a family's hash table (slots).
#define S_MIN_SLOTS 16
//  First size of the render buffer.
#define S_MIN_RENDER 4096

const double keel_metrics_latency_buckets[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t keel_metrics_latency_bucket_count =
    sizeof keel_metrics_latency_buckets /
    sizeof keel_metrics_latency_buckets[0];

// ---------------------------------------------------------------------------
//  Structures

struct _keel_metric_t {
    keel_metric_family_t *family; //  the family it belongs to
    uint64_t hash;                //  hash of the label values
    double value;                 //  counter or gauge value; histogram sum
    uint64_t count;               //  histogram: observations
    char **values;                //  n_labels label values; point into
                                  //  this allocation
    uint64_t counts[];            //  histogram: per bucket, not cumulative;
                                  //  n_buckets + 1 (the last is +Inf)
};

struct _keel_metric_family_t {
    char *name;                              //  owned
    char *help;                              //  owned, unescaped
    keel_metric_type_t type;                 //  counter, gauge or histogram
    size_t n_labels;                         //  label names held
    char *labels[KEEL_METRICS_MAX_LABELS];   //  owned
    size_t n_buckets;                        //  histogram: finite bounds
    double bounds[KEEL_METRICS_MAX_BUCKETS]; //  histogram: upper bounds
    char le[KEEL_METRICS_MAX_BUCKETS + 1][S_NUMBER_MAX]; //  bounds as `le`
                                                         //  prints them,
                                                         //  then "+Inf"
    keel_metric_t **items; //  series in creation order; owned array and
                           //  series
    size_t size;           //  series held
    size_t cap;            //  room in items
    keel_metric_t **slots; //  hash table of the series (borrowed); owned
                           //  array, NULL until the first series
    size_t n_slots;        //  power of two, or 0
};

struct _keel_metrics_t {
    keel_metric_family_t **families; //  in declaration order; owned
    size_t size;                     //  families held
    size_t cap;                      //  room in families
};

//  Names a histogram's samples append to its family name.
static const char *const s_histogram_suffixes[] = {"_bucket", "_sum", "_count"};
#define S_N_SUFFIXES 3

// ---------------------------------------------------------------------------
//  Number formatting

//  Write `value` into buffer (S_NUMBER_MAX bytes) as Prometheus clients
//  do: "NaN", "+Inf", "-Inf"; integers that a double holds exactly without
//  exponent or decimal point; anything else in the shortest %g form that
//  reads back as the same double. Returns the length.
static size_t
s_format_double (char *buffer, double value)
{
    int len;
    if (isnan (value))
        len = snprintf (buffer, S_NUMBER_MAX, "NaN");
    else if (isinf (value))
        len = snprintf (buffer, S_NUMBER_MAX, value > 0 ? "+Inf" : "-Inf");
    else if (value == 0)
        len = snprintf (buffer, S_NUMBER_MAX, "0"); //  -0 too
    else if (fabs (value) <= 9007199254740992.0 && value == trunc (value))
        len = snprintf (buffer, S_NUMBER_MAX, "%" PRId64, (int64_t)value);
    else {
        //  %.17g always reads back exactly; shorter forms first, so that
        //  0.1 prints as 0.1 and not 0.10000000000000001.
        for (int precision = 15; precision <= 17; precision++) {
            len = snprintf (buffer, S_NUMBER_MAX, "%.*g", precision, value);
            if (precision == 17 || strtod (buffer, NULL) == value)
                break;
        }
    }
    assert (len > 0 && len < S_NUMBER_MAX);
    return (size_t)len;
}

// ---------------------------------------------------------------------------
//  Validation

static bool
s_is_alpha_ (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
s_is_digit (char c)
{
    return c >= '0' && c <= '9';
}

//  A metric name: [a-zA-Z_:][a-zA-Z0-9_:]*
static bool
s_metric_name_valid (const char *name)
{
    if (!name || !*name || s_is_digit (*name))
        return false;
    for (const char *p = name; *p; p++)
        if (!s_is_alpha_ (*p) && !s_is_digit (*p) && *p != ':')
            return false;
    return true;
}

//  A label name: [a-zA-Z_][a-zA-Z0-9_]*, not "le" (the histogram's own),
//  not starting with "__" (reserved to Prometheus).
static bool
s_label_name_valid (const char *name)
{
    if (!name || !*name || s_is_digit (*name))
        return false;
    for (const char *p = name; *p; p++)
        if (!s_is_alpha_ (*p) && !s_is_digit (*p))
            return false;
    return strcmp (name, "le") != 0 && strncmp (name, "__", 2) != 0;
}

//  True if a1 + a2 and b1 + b2 are the same string.
static bool
s_concat_equal (const char *a1, const char *a2, const char *b1, const char *b2)
{
    size_t la1 = strlen (a1), la2 = strlen (a2);
    size_t lb1 = strlen (b1), lb2 = strlen (b2);
    if (la1 + la2 != lb1 + lb2)
        return false;
    //  Walk both pairs as one string each.
    for (size_t i = 0; i < la1 + la2; i++) {
        char a = i < la1 ? a1[i] : a2[i - la1];
        char b = i < lb1 ? b1[i] : b2[i - lb1];
        if (a != b)
            return false;
    }
    return true;
}

//  True if `family`'s samples include one named base + suffix.
static bool
s_family_produces (const keel_metric_family_t *family, const char *base,
                   const char *suffix)
{
    if (s_concat_equal (family->name, "", base, suffix))
        return true;
    if (family->type == KEEL_METRIC_HISTOGRAM)
        for (size_t i = 0; i < S_N_SUFFIXES; i++)
            if (s_concat_equal (family->name, s_histogram_suffixes[i], base,
                                suffix))
                return true;
    return false;
}

//  True if a new family `name` of `type` would print a sample name that
//  one already in the registry prints (e.g. counter "x_count" beside
//  histogram "x"), which would make the exposition ambiguous.
static bool
s_name_taken (keel_metrics_t *self, const char *name, keel_metric_type_t type)
{
    for (size_t f = 0; f < self->size; f++) {
        const keel_metric_family_t *family = self->families[f];
        if (s_family_produces (family, name, ""))
            return true;
        if (type == KEEL_METRIC_HISTOGRAM)
            for (size_t i = 0; i < S_N_SUFFIXES; i++)
                if (s_family_produces (family, name, s_histogram_suffixes[i]))
                    return true;
    }
    return false;
}

static bool
s_arguments_valid (keel_metrics_t *self, const char *name, const char *help,
                   keel_metric_type_t type, const char *const *labels,
                   size_t n_labels, const double *buckets, size_t n_buckets)
{
    if (!s_metric_name_valid (name) || !help)
        return false;
    if (type != KEEL_METRIC_COUNTER && type != KEEL_METRIC_GAUGE &&
        type != KEEL_METRIC_HISTOGRAM)
        return false;
    if (n_labels > KEEL_METRICS_MAX_LABELS || (n_labels > 0 && !labels))
        return false;
    for (size_t i = 0; i < n_labels; i++) {
        if (!s_label_name_valid (labels[i]))
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp (labels[i], labels[j]) == 0)
                return false;
    }
    if (type == KEEL_METRIC_HISTOGRAM) {
        if (n_buckets == 0 || n_buckets > KEEL_METRICS_MAX_BUCKETS || !buckets)
            return false;
        for (size_t i = 0; i < n_buckets; i++) {
            if (!isfinite (buckets[i]))
                return false;
            if (i > 0 && !(buckets[i] > buckets[i - 1]))
                return false;
        }
    } else if (buckets || n_buckets)
        return false;
    return !s_name_taken (self, name, type);
}

// ---------------------------------------------------------------------------
//  Series and the hash table

//  FNV-1a over each value's length (8 bytes) and then its bytes, so that
//  value boundaries count; lengths go to lengths[]. Finished with
//  murmur3's fmix64 so the low bits, which index the table, depend on
//  every input bit.
static uint64_t
s_hash_values (const char *const *values, size_t n_values, size_t *lengths)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n_values; i++) {
        size_t len = strlen (values[i]);
        lengths[i] = len;
        uint64_t prefix = (uint64_t)len;
        for (int b = 0; b < 8; b++) {
            hash ^= (prefix >> (8 * b)) & 0xff;
            hash *= 0x100000001b3ULL;
        }
        const unsigned char *p = (const unsigned char *)values[i];
        for (size_t j = 0; j < len; j++) {
            hash ^= p[j];
            hash *= 0x100000001b3ULL;
        }
    }
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdULL;
    hash ^= hash >> 33;
    hash *= 0xc4ceb9fe1a85ec53ULL;
    hash ^= hash >> 33;
    return hash;
}

static bool
s_series_matches (const keel_metric_t *series, uint64_t hash,
                  const char *const *values, size_t n_values)
{
    if (series->hash != hash)
        return false;
    for (size_t i = 0; i < n_values; i++)
        if (strcmp (series->values[i], values[i]) != 0)
            return false;
    return true;
}

//  Put `series` in the first free slot of its probe sequence.
static void
s_slots_insert (keel_metric_t **slots, size_t n_slots, keel_metric_t *series)
{
    size_t mask = n_slots - 1;
    size_t i = (size_t)series->hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = series;
}

//  Make room for one more series in items and slots. Returns 0, or -1 if
//  out of memory (nothing changed then).
static int
s_family_reserve (keel_metric_family_t *family)
{
    if (family->size == family->cap) {
        size_t cap = family->cap ? family->cap * 2 : S_MIN_SLOTS / 2;
        if (cap > SIZE_MAX / sizeof (keel_metric_t *))
            return -1;
        keel_metric_t **items = (keel_metric_t **)realloc (
            family->items, cap * sizeof (keel_metric_t *));
        if (!items)
            return -1;
        family->items = items;
        family->cap = cap;
    }
    //  At most half full, so probe sequences stay short.
    if ((family->size + 1) * 2 > family->n_slots) {
        size_t n_slots = family->n_slots ? family->n_slots * 2 : S_MIN_SLOTS;
        if (n_slots > SIZE_MAX / sizeof (keel_metric_t *))
            return -1;
        keel_metric_t **slots =
            (keel_metric_t **)calloc (n_slots, sizeof (keel_metric_t *));
        if (!slots)
            return -1;
        for (size_t i = 0; i < family->size; i++)
            s_slots_insert (slots, n_slots, family->items[i]);
        free (family->slots);
        family->slots = slots;
        family->n_slots = n_slots;
    }
    return 0;
}

//  A new series at zero with a copy of `values` (lengths known). Returns
//  NULL if out of memory.
static keel_metric_t *
s_series_new (keel_metric_family_t *family, uint64_t hash,
              const char *const *values, const size_t *lengths)
{
    _Static_assert(_Alignof(char *) <= _Alignof(uint64_t),
                   "values[] follows counts[] unpadded");
    size_t n_counts =
        family->type == KEEL_METRIC_HISTOGRAM ? family->n_buckets + 1 : 0;
    size_t size = sizeof (keel_metric_t) + n_counts * sizeof (uint64_t) +
                  family->n_labels * sizeof (char *);
    for (size_t i = 0; i < family->n_labels; i++) {
        if (lengths[i] >= SIZE_MAX - size)
            return NULL;
        size += lengths[i] + 1;
    }
    keel_metric_t *series = (keel_metric_t *)calloc (1, size);
    if (!series)
        return NULL;
    series->family = family;
    series->hash = hash;
    series->values = (char **)(series->counts + n_counts);
    char *text = (char *)(series->values + family->n_labels);
    for (size_t i = 0; i < family->n_labels; i++) {
        memcpy (text, values[i], lengths[i] + 1);
        series->values[i] = text;
        text += lengths[i] + 1;
    }
    return series;
}

static void
s_family_clear (keel_metric_family_t *family)
{
    for (size_t i = 0; i < family->size; i++)
        free (family->items[i]);
    family->size = 0;
    if (family->slots)
        memset (family->slots, 0, family->n_slots * sizeof (keel_metric_t *));
}

static void
s_family_destroy (keel_metric_family_t **family_p)
{
    keel_metric_family_t *family = *family_p;
    if (!family)
        return;
    s_family_clear (family);
    free (family->items);
    free (family->slots);
    for (size_t i = 0; i < family->n_labels; i++)
        free (family->labels[i]);
    free (family->name);
    free (family->help);
    free (family);
    *family_p = NULL;
}

// ---------------------------------------------------------------------------
//  Registry

keel_metrics_t *
keel_metrics_new (void)
{
    return (keel_metrics_t *)calloc (1, sizeof (keel_metrics_t));
}

void
keel_metrics_destroy (keel_metrics_t **self_p)
{
    assert (self_p);
    keel_metrics_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->size; i++)
        s_family_destroy (&self->families[i]);
    free (self->families);
    free (self);
    *self_p = NULL;
}

keel_metric_family_t *
keel_metrics_family (keel_metrics_t *self, const char *name, const char *help,
                     keel_metric_type_t type, const char *const *labels,
                     size_t n_labels, const double *buckets, size_t n_buckets)
{
    assert (self);
    if (!s_arguments_valid (self, name, help, type, labels, n_labels, buckets,
                            n_buckets))
        return NULL;
    if (self->size == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 8;
        keel_metric_family_t **families = (keel_metric_family_t **)realloc (
            self->families, cap * sizeof (keel_metric_family_t *));
        if (!families)
            return NULL;
        self->families = families;
        self->cap = cap;
    }
    keel_metric_family_t *family =
        (keel_metric_family_t *)calloc (1, sizeof (keel_metric_family_t));
    if (!family)
        return NULL;
    family->type = type;
    family->name = strdup (name);
    family->help = strdup (help);
    bool ok = family->name && family->help;
    for (size_t i = 0; i < n_labels; i++) {
        family->labels[i] = strdup (labels[i]);
        family->n_labels++;
        ok = ok && family->labels[i];
    }
    if (!ok) {
        s_family_destroy (&family);
        return NULL;
    }
    if (type == KEEL_METRIC_HISTOGRAM) {
        family->n_buckets = n_buckets;
        for (size_t i = 0; i < n_buckets; i++) {
            family->bounds[i] = buckets[i];
            s_format_double (family->le[i], buckets[i]);
        }
        s_format_double (family->le[n_buckets], INFINITY);
    }
    self->families[self->size++] = family;
    return family;
}

// ---------------------------------------------------------------------------
//  Families

keel_metric_t *
keel_metric_series (keel_metric_family_t *family, const char *const *values)
{
    assert (family);
    size_t n_labels = family->n_labels;
    if (n_labels > 0 && !values)
        return NULL;
    for (size_t i = 0; i < n_labels; i++)
        if (!values[i])
            return NULL;

    size_t lengths[KEEL_METRICS_MAX_LABELS];
    uint64_t hash = s_hash_values (values, n_labels, lengths);
    if (family->n_slots) {
        size_t mask = family->n_slots - 1;
        for (size_t i = (size_t)hash & mask; family->slots[i];
             i = (i + 1) & mask)
            if (s_series_matches (family->slots[i], hash, values, n_labels))
                return family->slots[i];
    }
    //  A miss: a new series.
    if (s_family_reserve (family))
        return NULL;
    keel_metric_t *series = s_series_new (family, hash, values, lengths);
    if (!series)
        return NULL;
    family->items[family->size++] = series;
    s_slots_insert (family->slots, family->n_slots, series);
    return series;
}

void
keel_metric_family_reset (keel_metric_family_t *family)
{
    assert (family);
    s_family_clear (family);
}

size_t
keel_metric_family_size (keel_metric_family_t *family)
{
    assert (family);
    return family->size;
}

// ---------------------------------------------------------------------------
//  Series. Using a series as another type is a programming error: it
//  asserts, and without assertions does nothing.

void
keel_metric_add (keel_metric_t *self, double value)
{
    assert (self);
    keel_metric_type_t type = self->family->type;
    assert (type != KEEL_METRIC_HISTOGRAM);
    if (type == KEEL_METRIC_GAUGE)
        self->value += value;
    else if (type == KEEL_METRIC_COUNTER && value >= 0) //  not NaN either
        self->value += value;
}

void
keel_metric_inc (keel_metric_t *self)
{
    assert (self);
    assert (self->family->type != KEEL_METRIC_HISTOGRAM);
    if (self->family->type != KEEL_METRIC_HISTOGRAM)
        self->value += 1;
}

void
keel_metric_set (keel_metric_t *self, double value)
{
    assert (self);
    assert (self->family->type == KEEL_METRIC_GAUGE);
    if (self->family->type == KEEL_METRIC_GAUGE)
        self->value = value;
}

void
keel_metric_observe (keel_metric_t *self, double value)
{
    assert (self);
    const keel_metric_family_t *family = self->family;
    assert (family->type == KEEL_METRIC_HISTOGRAM);
    if (family->type != KEEL_METRIC_HISTOGRAM)
        return;
    //  The first bucket whose bound is >= value; n_buckets (+Inf) if none,
    //  NaN included (it compares false), as Prometheus clients do.
    size_t low = 0, high = family->n_buckets;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (value <= family->bounds[mid])
            high = mid;
        else
            low = mid + 1;
    }
    self->counts[low]++;
    self->count++;
    self->value += value;
}

double
keel_metric_value (keel_metric_t *self)
{
    assert (self);
    return self->value;
}

uint64_t
keel_metric_count (keel_metric_t *self)
{
    assert (self);
    if (self->family->type == KEEL_METRIC_HISTOGRAM)
        return self->count;
    double value = round (self->value);
    if (!(value > 0)) //  negative, zero or NaN
        return 0;
    if (value >= 18446744073709551616.0) //  2^64
        return UINT64_MAX;
    return (uint64_t)value;
}

// ---------------------------------------------------------------------------
//  Rendering

//  A growing text buffer; after an allocation failure every append is a
//  no-op and `failed` is set.
typedef struct {
    char *data;  //  owned; NUL-terminated when not failed
    size_t size; //  bytes used, NUL not counted
    size_t cap;  //  bytes allocated
    bool failed; //  out of memory once
} buffer_t;

//  Room for `extra` more bytes and a NUL. Returns false on failure.
static bool
s_buffer_reserve (buffer_t *buffer, size_t extra)
{
    if (buffer->failed)
        return false;
    if (buffer->cap > buffer->size && extra < buffer->cap - buffer->size)
        return true;
    size_t cap = buffer->cap ? buffer->cap : S_MIN_RENDER;
    while (cap - buffer->size <= extra) {
        if (cap > SIZE_MAX / 2) {
            buffer->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *data = (char *)realloc (buffer->data, cap);
    if (!data) {
        buffer->failed = true;
        return false;
    }
    buffer->data = data;
    buffer->cap = cap;
    return true;
}

static void
s_buffer_append (buffer_t *buffer, const char *text, size_t len)
{
    if (s_buffer_reserve (buffer, len)) {
        memcpy (buffer->data + buffer->size, text, len);
        buffer->size += len;
        buffer->data[buffer->size] = 0;
    }
}

static void
s_buffer_puts (buffer_t *buffer, const char *text)
{
    s_buffer_append (buffer, text, strlen (text));
}

//  Append `text` with backslash and newline escaped, and double quote too
//  if `quote` (label values; HELP text leaves quotes alone).
static void
s_buffer_escaped (buffer_t *buffer, const char *text, bool quote)
{
    const char *run = text; //  start of the bytes not yet appended
    for (const char *p = text; *p; p++) {
        const char *escape = NULL;
        if (*p == '\\')
            escape = "\\\\";
        else if (*p == '\n')
            escape = "\\n";
        else if (*p == '"' && quote)
            escape = "\\\"";
        if (escape) {
            s_buffer_append (buffer, run, (size_t)(p - run));
            s_buffer_append (buffer, escape, 2);
            run = p + 1;
        }
    }
    s_buffer_puts (buffer, run);
}

static void
s_buffer_double (buffer_t *buffer, double value)
{
    char number[S_NUMBER_MAX];
    size_t len = s_format_double (number, value);
    s_buffer_append (buffer, number, len);
}

static void
s_buffer_uint (buffer_t *buffer, uint64_t value)
{
    char number[S_NUMBER_MAX];
    int len = snprintf (number, sizeof number, "%" PRIu64, value);
    s_buffer_append (buffer, number, (size_t)len);
}

//  One sample line: name+suffix, then {pairs} where pairs is the series'
//  escaped label pairs (may be empty) and `le` (may be NULL) appended;
//  the value is appended by the caller, then "\n".
static void
s_render_sample_head (buffer_t *out, const keel_metric_family_t *family,
                      const char *suffix, const buffer_t *pairs, const char *le)
{
    s_buffer_puts (out, family->name);
    s_buffer_puts (out, suffix);
    if (pairs->size || le) {
        s_buffer_append (out, "{", 1);
        s_buffer_append (out, pairs->data, pairs->size);
        if (le) {
            if (pairs->size)
                s_buffer_append (out, ",", 1);
            s_buffer_append (out, "le=\"", 4);
            s_buffer_puts (out, le);
            s_buffer_append (out, "\"", 1);
        }
        s_buffer_append (out, "}", 1);
    }
    s_buffer_append (out, " ", 1);
}

static void
s_render_series (buffer_t *out, buffer_t *pairs,
                 const keel_metric_family_t *family,
                 const keel_metric_t *series)
{
    //  The label pairs once per series: a histogram repeats them on
    //  every line.
    pairs->size = 0;
    for (size_t i = 0; i < family->n_labels; i++) {
        if (i > 0)
            s_buffer_append (pairs, ",", 1);
        s_buffer_puts (pairs, family->labels[i]);
        s_buffer_append (pairs, "=\"", 2);
        s_buffer_escaped (pairs, series->values[i], true);
        s_buffer_append (pairs, "\"", 1);
    }
    if (pairs->failed) {
        out->failed = true;
        return;
    }
    if (family->type != KEEL_METRIC_HISTOGRAM) {
        s_render_sample_head (out, family, "", pairs, NULL);
        s_buffer_double (out, series->value);
        s_buffer_append (out, "\n", 1);
        return;
    }
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= family->n_buckets; b++) {
        cumulative += series->counts[b];
        s_render_sample_head (out, family, "_bucket", pairs, family->le[b]);
        s_buffer_uint (out, cumulative);
        s_buffer_append (out, "\n", 1);
    }
    s_render_sample_head (out, family, "_sum", pairs, NULL);
    s_buffer_double (out, series->value);
    s_buffer_append (out, "\n", 1);
    s_render_sample_head (out, family, "_count", pairs, NULL);
    s_buffer_uint (out, series->count);
    s_buffer_append (out, "\n", 1);
}

char *
keel_metrics_render (keel_metrics_t *self, size_t *size_p)
{
    static const char *type_names[] = {"counter", "gauge", "histogram"};
    assert (self);
    buffer_t out = {NULL, 0, 0, false};
    buffer_t pairs = {NULL, 0, 0, false};
    s_buffer_reserve (&out, 0); //  "" for an empty registry
    s_buffer_reserve (&pairs, 0);
    for (size_t f = 0; f < self->size && !out.failed; f++) {
        const keel_metric_family_t *family = self->families[f];
        s_buffer_puts (&out, "# HELP ");
        s_buffer_puts (&out, family->name);
        s_buffer_append (&out, " ", 1);
        s_buffer_escaped (&out, family->help, false);
        s_buffer_puts (&out, "\n# TYPE ");
        s_buffer_puts (&out, family->name);
        s_buffer_append (&out, " ", 1);
        s_buffer_puts (&out, type_names[family->type]);
        s_buffer_append (&out, "\n", 1);
        for (size_t i = 0; i < family->size && !out.failed; i++)
            s_render_series (&out, &pairs, family, family->items[i]);
    }
    free (pairs.data);
    if (out.failed || pairs.failed) {
        free (out.data);
        return NULL;
    }
    out.data[out.size] = 0;
    if (size_p)
        *size_p = out.size;
    return out.data;
}
