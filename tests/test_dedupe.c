/*  test_dedupe.c - keel_dedupe: replay by key, LRU and byte bounds, ttl. */
#include "keel_dedupe.h"
#include "testutil.h"

#include <string.h>

//  Store `key` with a payload of `size` bytes of 'x' and no text.
static int
s_store_sized (keel_dedupe_t *dd, const char *key, size_t size, int64_t now)
{
    char payload[256];
    ck_assert_uint_le (size, sizeof payload);
    memset (payload, 'x', size);
    return keel_dedupe_store (dd, key, 0, NULL, payload, size, now);
}

static bool
s_has (keel_dedupe_t *dd, const char *key, int64_t now)
{
    return keel_dedupe_lookup (dd, key, now) != NULL;
}

START_TEST (test_new_bad_arguments)
{
    ck_assert_ptr_null (keel_dedupe_new (0, 100, 0));
    ck_assert_ptr_null (keel_dedupe_new (10, 0, 0));
    ck_assert_ptr_null (keel_dedupe_new (10, 100, -1));
    keel_dedupe_t *dd = keel_dedupe_new (1, 1, 0);
    ck_assert_ptr_nonnull (dd);
    ck_assert_uint_eq (keel_dedupe_size (dd), 0);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 0);
    keel_dedupe_destroy (&dd);
    ck_assert_ptr_null (dd);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_round_trip)
{
    keel_dedupe_t *dd = keel_dedupe_new (8, 1024, 0);
    const uint8_t payload[] = {0, 1, 2, 0xff, 0};
    ck_assert_int_eq (keel_dedupe_store (dd, "order-1", KEEL_ERR_CONFLICT,
                                         "already shipped", payload,
                                         sizeof payload, 42),
                      0);
    const keel_dedupe_entry_t *e = keel_dedupe_lookup (dd, "order-1", 43);
    ck_assert_ptr_nonnull (e);
    ck_assert_int_eq (e->code, KEEL_ERR_CONFLICT);
    ck_assert_str_eq (e->text, "already shipped");
    ck_assert_uint_eq (e->size, sizeof payload);
    ck_assert_mem_eq (e->data, payload, sizeof payload);
    ck_assert_int_eq (e->stored_ms, 42);
    ck_assert_uint_eq (keel_dedupe_size (dd), 1);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), strlen ("order-1") +
                                                   strlen ("already shipped") +
                                                   sizeof payload);

    //  Copies were taken: the caller's buffers are its own.
    char key[] = "order-2";
    char text[] = "";
    uint8_t data[] = {7, 7};
    ck_assert_int_eq (
        keel_dedupe_store (dd, key, KEEL_OK, text, data, sizeof data, 50), 0);
    key[0] = 'X';
    data[0] = 0;
    e = keel_dedupe_lookup (dd, "order-2", 50);
    ck_assert_ptr_nonnull (e);
    ck_assert_int_eq (e->code, KEEL_OK);
    ck_assert_str_eq (e->text, "");
    ck_assert_uint_eq (e->data[0], 7);
    ck_assert_ptr_null (keel_dedupe_lookup (dd, key, 50));

    //  NULL text reads back as "".
    ck_assert_int_eq (keel_dedupe_store (dd, "order-3", 5, NULL, "r", 1, 60),
                      0);
    e = keel_dedupe_lookup (dd, "order-3", 60);
    ck_assert_ptr_nonnull (e);
    ck_assert_str_eq (e->text, "");
    ck_assert_int_eq (e->code, 5);

    ck_assert_ptr_null (keel_dedupe_lookup (dd, "unknown", 60));
    ck_assert_ptr_null (keel_dedupe_lookup (dd, "", 60));
    ck_assert_ptr_null (keel_dedupe_lookup (dd, NULL, 60));
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_bad_store)
{
    keel_dedupe_t *dd = keel_dedupe_new (8, 1024, 0);
    ck_assert_int_eq (keel_dedupe_store (dd, NULL, 0, "", "x", 1, 0), -1);
    ck_assert_int_eq (keel_dedupe_store (dd, "", 0, "", "x", 1, 0), -1);
    ck_assert_int_eq (keel_dedupe_store (dd, "k", 0, "", NULL, 1, 0), -1);
    ck_assert_uint_eq (keel_dedupe_size (dd), 0);
    ck_assert_uint_eq (keel_dedupe_stats (dd).stores, 0);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_replace)
{
    keel_dedupe_t *dd = keel_dedupe_new (2, 1024, 0);
    ck_assert_int_eq (keel_dedupe_store (dd, "a", 1, "first", "11", 2, 10), 0);
    ck_assert_int_eq (keel_dedupe_store (dd, "b", 0, NULL, "b", 1, 11), 0);
    //  Full, but replacing "a" must not evict "b".
    ck_assert_int_eq (keel_dedupe_store (dd, "a", 2, "second", "2", 1, 12), 0);
    ck_assert_uint_eq (keel_dedupe_size (dd), 2);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), (1 + 6 + 1) + (1 + 0 + 1));
    const keel_dedupe_entry_t *e = keel_dedupe_lookup (dd, "a", 13);
    ck_assert_ptr_nonnull (e);
    ck_assert_int_eq (e->code, 2);
    ck_assert_str_eq (e->text, "second");
    ck_assert_uint_eq (e->size, 1);
    ck_assert_mem_eq (e->data, "2", 1);
    ck_assert_int_eq (e->stored_ms, 12);
    ck_assert (s_has (dd, "b", 13));

    //  Replacing with text and data borrowed from the entry being replaced.
    e = keel_dedupe_lookup (dd, "a", 14);
    ck_assert_int_eq (
        keel_dedupe_store (dd, "a", 3, e->text, e->data, e->size, 14), 0);
    e = keel_dedupe_lookup (dd, "a", 14);
    ck_assert_str_eq (e->text, "second");
    ck_assert_mem_eq (e->data, "2", 1);
    keel_dedupe_stats_t stats = keel_dedupe_stats (dd);
    ck_assert_uint_eq (stats.stores, 4);
    ck_assert_uint_eq (stats.evictions, 0);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_lru_by_capacity)
{
    keel_dedupe_t *dd = keel_dedupe_new (3, 1024, 0);
    ck_assert_int_eq (s_store_sized (dd, "a", 1, 0), 0);
    ck_assert_int_eq (s_store_sized (dd, "b", 1, 1), 0);
    ck_assert_int_eq (s_store_sized (dd, "c", 1, 2), 0);
    //  Touch "a": "b" is now least recently used.
    ck_assert (s_has (dd, "a", 3));
    ck_assert_int_eq (s_store_sized (dd, "d", 1, 4), 0);
    ck_assert_uint_eq (keel_dedupe_size (dd), 3);
    ck_assert (!s_has (dd, "b", 5));
    //  Recency now, least first: c, a, d. A store refreshes too.
    ck_assert_int_eq (s_store_sized (dd, "c", 1, 6), 0);
    ck_assert_int_eq (s_store_sized (dd, "e", 1, 7), 0);
    ck_assert (!s_has (dd, "a", 8));
    ck_assert (s_has (dd, "c", 8));
    ck_assert (s_has (dd, "d", 8));
    ck_assert (s_has (dd, "e", 8));
    ck_assert_uint_eq (keel_dedupe_stats (dd).evictions, 2);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_lru_by_bytes)
{
    //  Each entry below is 2 (key) + 8 (payload) = 10 bytes.
    keel_dedupe_t *dd = keel_dedupe_new (100, 30, 0);
    ck_assert_int_eq (s_store_sized (dd, "k1", 8, 0), 0);
    ck_assert_int_eq (s_store_sized (dd, "k2", 8, 0), 0);
    ck_assert_int_eq (s_store_sized (dd, "k3", 8, 0), 0);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 30);
    ck_assert (s_has (dd, "k1", 1));
    ck_assert_int_eq (s_store_sized (dd, "k4", 8, 2), 0);
    ck_assert_uint_eq (keel_dedupe_size (dd), 3);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 30);
    ck_assert (!s_has (dd, "k2", 3));

    //  Recency, least first: k3, k1, k4. 2 + 16 = 18 bytes needs two gone.
    ck_assert_int_eq (s_store_sized (dd, "k5", 16, 4), 0);
    ck_assert_uint_eq (keel_dedupe_size (dd), 2);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 28);
    ck_assert (!s_has (dd, "k3", 5));
    ck_assert (!s_has (dd, "k1", 5));
    ck_assert (s_has (dd, "k4", 5));
    ck_assert (s_has (dd, "k5", 5));
    ck_assert_uint_eq (keel_dedupe_stats (dd).evictions, 3);

    //  Error text counts too: 2 + 8 + 0 = 10 forces out k4 (2 + 8).
    ck_assert_int_eq (keel_dedupe_store (dd, "k6", 1, "eight ch", NULL, 0, 6),
                      0);
    ck_assert (!s_has (dd, "k4", 7));
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 28);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_oversize_refused)
{
    keel_dedupe_t *dd = keel_dedupe_new (10, 10, 0);
    ck_assert_int_eq (s_store_sized (dd, "a", 4, 0), 0);
    ck_assert_int_eq (s_store_sized (dd, "b", 4, 0), 0);
    //  1 + 10 = 11 > 10: refused, and nothing is evicted for it.
    ck_assert_int_eq (s_store_sized (dd, "c", 10, 1), -1);
    ck_assert_int_eq (keel_dedupe_store (dd, "c", 0, "123456789", "x", 1, 1),
                      -1);
    ck_assert_int_eq (
        keel_dedupe_store (dd, "longer-than-ten", 0, NULL, NULL, 0, 1), -1);
    ck_assert_uint_eq (keel_dedupe_size (dd), 2);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 10);
    //  A refused replacement leaves the old entry in place.
    ck_assert_int_eq (s_store_sized (dd, "a", 10, 1), -1);
    const keel_dedupe_entry_t *e = keel_dedupe_lookup (dd, "a", 2);
    ck_assert_ptr_nonnull (e);
    ck_assert_uint_eq (e->size, 4);
    //  Exactly max_bytes fits, alone.
    ck_assert_int_eq (s_store_sized (dd, "c", 9, 3), 0);
    ck_assert_uint_eq (keel_dedupe_size (dd), 1);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 10);
    keel_dedupe_stats_t stats = keel_dedupe_stats (dd);
    ck_assert_uint_eq (stats.stores, 3);
    ck_assert_uint_eq (stats.evictions, 2);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_ttl_boundary)
{
    keel_dedupe_t *dd = keel_dedupe_new (10, 1024, 100);
    ck_assert_int_eq (s_store_sized (dd, "a", 1, 1000), 0);
    //  Live while now - stored < ttl; expired at now - stored == ttl.
    ck_assert (s_has (dd, "a", 1000));
    ck_assert (s_has (dd, "a", 1099));
    ck_assert_ptr_null (keel_dedupe_lookup (dd, "a", 1100));
    ck_assert_uint_eq (keel_dedupe_size (dd), 0);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 0);
    keel_dedupe_stats_t stats = keel_dedupe_stats (dd);
    ck_assert_uint_eq (stats.expirations, 1);
    ck_assert_uint_eq (stats.misses, 1);
    ck_assert_uint_eq (stats.hits, 2);

    //  A lookup does not extend the lifetime; a replacing store does.
    ck_assert_int_eq (s_store_sized (dd, "b", 1, 2000), 0);
    ck_assert (s_has (dd, "b", 2090));
    ck_assert_ptr_null (keel_dedupe_lookup (dd, "b", 2100));
    ck_assert_int_eq (s_store_sized (dd, "c", 1, 3000), 0);
    ck_assert_int_eq (s_store_sized (dd, "c", 1, 3050), 0);
    ck_assert (s_has (dd, "c", 3149));
    ck_assert (!s_has (dd, "c", 3150));
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_ttl_purge_on_store)
{
    keel_dedupe_t *dd = keel_dedupe_new (10, 1024, 100);
    ck_assert_int_eq (s_store_sized (dd, "a", 1, 0), 0);
    ck_assert_int_eq (s_store_sized (dd, "b", 1, 50), 0);
    ck_assert_int_eq (s_store_sized (dd, "c", 1, 99), 0);
    //  At 100, "a" has lived its ttl; a store removes it without a lookup.
    ck_assert_int_eq (s_store_sized (dd, "d", 1, 100), 0);
    ck_assert_uint_eq (keel_dedupe_size (dd), 3);
    ck_assert_uint_eq (keel_dedupe_stats (dd).expirations, 1);
    //  And a lookup of another key removes the rest that are due.
    ck_assert (s_has (dd, "d", 199));
    ck_assert_uint_eq (keel_dedupe_size (dd), 1);
    ck_assert_uint_eq (keel_dedupe_stats (dd).expirations, 3);
    ck_assert_uint_eq (keel_dedupe_stats (dd).evictions, 0);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_ttl_clock_backwards)
{
    keel_dedupe_t *dd = keel_dedupe_new (10, 1024, 100);
    ck_assert_int_eq (s_store_sized (dd, "a", 1, 1000), 0);
    ck_assert_int_eq (s_store_sized (dd, "b", 1, 500), 0);
    //  Before it was stored an entry is not expired.
    ck_assert (s_has (dd, "a", 550));
    ck_assert (s_has (dd, "b", 550));
    //  "b" sits behind a live "a" in store order; lookup still expires it.
    ck_assert (!s_has (dd, "b", 1050));
    ck_assert (s_has (dd, "a", 1050));
    ck_assert_uint_eq (keel_dedupe_stats (dd).expirations, 1);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_ttl_zero_never_expires)
{
    keel_dedupe_t *dd = keel_dedupe_new (10, 1024, 0);
    ck_assert_int_eq (s_store_sized (dd, "a", 1, INT64_MIN), 0);
    ck_assert (s_has (dd, "a", INT64_MAX));
    keel_dedupe_destroy (&dd);

    //  Extreme clocks do not overflow the age computation.
    dd = keel_dedupe_new (10, 1024, INT64_MAX);
    ck_assert_int_eq (s_store_sized (dd, "a", 1, 0), 0);
    ck_assert_int_eq (s_store_sized (dd, "b", 1, INT64_MIN), 0);
    ck_assert (s_has (dd, "b", -2));
    ck_assert (!s_has (dd, "b", -1));
    ck_assert (s_has (dd, "a", INT64_MAX - 1));
    ck_assert (!s_has (dd, "a", INT64_MAX));
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_forget)
{
    keel_dedupe_t *dd = keel_dedupe_new (10, 1024, 0);
    ck_assert_int_eq (s_store_sized (dd, "a", 3, 0), 0);
    ck_assert_int_eq (s_store_sized (dd, "b", 3, 0), 0);
    ck_assert_int_eq (keel_dedupe_forget (dd, "a"), 0);
    ck_assert_int_eq (keel_dedupe_forget (dd, "a"), -1);
    ck_assert_int_eq (keel_dedupe_forget (dd, "zz"), -1);
    ck_assert_int_eq (keel_dedupe_forget (dd, ""), -1);
    ck_assert_int_eq (keel_dedupe_forget (dd, NULL), -1);
    ck_assert_uint_eq (keel_dedupe_size (dd), 1);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 4);
    ck_assert (!s_has (dd, "a", 1));
    ck_assert (s_has (dd, "b", 1));
    //  A forgotten key can be stored again.
    ck_assert_int_eq (s_store_sized (dd, "a", 1, 2), 0);
    ck_assert (s_has (dd, "a", 3));
    keel_dedupe_stats_t stats = keel_dedupe_stats (dd);
    ck_assert_uint_eq (stats.evictions, 0);
    ck_assert_uint_eq (stats.expirations, 0);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_stats)
{
    keel_dedupe_t *dd = keel_dedupe_new (2, 1024, 10);
    keel_dedupe_stats_t stats = keel_dedupe_stats (dd);
    ck_assert_uint_eq (stats.hits, 0);
    ck_assert_uint_eq (stats.misses, 0);
    ck_assert_uint_eq (stats.stores, 0);
    ck_assert_uint_eq (stats.evictions, 0);
    ck_assert_uint_eq (stats.expirations, 0);

    ck_assert (!s_has (dd, "a", 0));                      //  miss
    ck_assert_int_eq (s_store_sized (dd, "a", 1, 0), 0);  //  store
    ck_assert (s_has (dd, "a", 1));                       //  hit
    ck_assert (s_has (dd, "a", 2));                       //  hit
    ck_assert_int_eq (s_store_sized (dd, "b", 1, 3), 0);  //  store
    ck_assert_int_eq (s_store_sized (dd, "c", 1, 4), 0);  //  store, evict a
    ck_assert (!s_has (dd, "a", 5));                      //  miss
    ck_assert (!s_has (dd, "b", 14));                     //  expire b, c; miss
    ck_assert_int_eq (s_store_sized (dd, "", 1, 13), -1); //  not counted
    stats = keel_dedupe_stats (dd);
    ck_assert_uint_eq (stats.hits, 2);
    ck_assert_uint_eq (stats.misses, 3);
    ck_assert_uint_eq (stats.stores, 3);
    ck_assert_uint_eq (stats.evictions, 1);
    ck_assert_uint_eq (stats.expirations, 2);
    ck_assert_uint_eq (keel_dedupe_size (dd), 0);
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_zero_size_payload)
{
    keel_dedupe_t *dd = keel_dedupe_new (10, 1024, 0);
    ck_assert_int_eq (keel_dedupe_store (dd, "a", KEEL_OK, NULL, NULL, 0, 0),
                      0);
    ck_assert_int_eq (keel_dedupe_store (dd, "b", KEEL_ERR_NOT_FOUND,
                                         "no such order", "ignored", 0, 0),
                      0);
    const keel_dedupe_entry_t *e = keel_dedupe_lookup (dd, "a", 1);
    ck_assert_ptr_nonnull (e);
    ck_assert_uint_eq (e->size, 0);
    ck_assert_ptr_null (e->data);
    ck_assert_str_eq (e->text, "");
    e = keel_dedupe_lookup (dd, "b", 1);
    ck_assert_ptr_nonnull (e);
    ck_assert_int_eq (e->code, KEEL_ERR_NOT_FOUND);
    ck_assert_str_eq (e->text, "no such order");
    ck_assert_uint_eq (e->size, 0);
    ck_assert_ptr_null (e->data);
    ck_assert_uint_eq (keel_dedupe_bytes (dd),
                       1 + 1 + strlen ("no such order"));
    keel_dedupe_destroy (&dd);
}
END_TEST

START_TEST (test_many_keys_bounded)
{
    const size_t capacity = 1000;
    const int total = 100000;
    keel_dedupe_t *dd = keel_dedupe_new (capacity, 1024 * 1024, 0);
    char key[32];
    for (int i = 0; i < total; i++) {
        snprintf (key, sizeof key, "key-%d", i);
        ck_assert_int_eq (s_store_sized (dd, key, (size_t)(i % 64), i), 0);
        ck_assert_uint_le (keel_dedupe_size (dd), capacity);
    }
    ck_assert_uint_eq (keel_dedupe_size (dd), capacity);
    //  At most capacity entries of "key-NNNNN" (9 bytes) + 63 bytes each.
    ck_assert_uint_le (keel_dedupe_bytes (dd), capacity * (9 + 63));
    //  The newest `capacity` keys are the ones held.
    snprintf (key, sizeof key, "key-%d", total - (int)capacity - 1);
    ck_assert (!s_has (dd, key, total));
    snprintf (key, sizeof key, "key-%d", total - (int)capacity);
    ck_assert (s_has (dd, key, total));
    ck_assert (s_has (dd, "key-99999", total));
    ck_assert (!s_has (dd, "key-0", total));
    keel_dedupe_stats_t stats = keel_dedupe_stats (dd);
    ck_assert_uint_eq (stats.stores, (uint64_t)total);
    ck_assert_uint_eq (stats.evictions, (uint64_t)(total - (int)capacity));
    keel_dedupe_destroy (&dd);

    //  The same with bytes the tighter bound: 100 entries of 9 + 63 bytes.
    dd = keel_dedupe_new (capacity, 7200, 0);
    for (int i = 0; i < total; i++) {
        snprintf (key, sizeof key, "key-%05d", i);
        ck_assert_int_eq (s_store_sized (dd, key, 63, i), 0);
        ck_assert_uint_le (keel_dedupe_bytes (dd), 7200);
    }
    ck_assert_uint_eq (keel_dedupe_size (dd), 100);
    ck_assert_uint_eq (keel_dedupe_bytes (dd), 7200);
    keel_dedupe_destroy (&dd);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_dedupe");
    TCase *tc = tcase_create ("core");
    tcase_add_test (tc, test_new_bad_arguments);
    tcase_add_test (tc, test_round_trip);
    tcase_add_test (tc, test_bad_store);
    tcase_add_test (tc, test_replace);
    tcase_add_test (tc, test_lru_by_capacity);
    tcase_add_test (tc, test_lru_by_bytes);
    tcase_add_test (tc, test_oversize_refused);
    tcase_add_test (tc, test_ttl_boundary);
    tcase_add_test (tc, test_ttl_purge_on_store);
    tcase_add_test (tc, test_ttl_clock_backwards);
    tcase_add_test (tc, test_ttl_zero_never_expires);
    tcase_add_test (tc, test_forget);
    tcase_add_test (tc, test_stats);
    tcase_add_test (tc, test_zero_size_payload);
    tcase_add_test (tc, test_many_keys_bounded);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
