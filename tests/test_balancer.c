/*  test_balancer.c - the gateway's load balancer core: every policy's
    order and distribution, the allowed predicate, exclusion, updates that
    keep state, resets, the user slot, and a seeded 10k-instance churn
    checked against a model and the internal invariants. */
#include "balancer.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RR   KEEL_BALANCER_ROUND_ROBIN
#define WRR  KEEL_BALANCER_WEIGHTED
#define LC   KEEL_BALANCER_LEAST_CONN
#define P2C  KEEL_BALANCER_P2C
#define SEED 0x5eedULL

// ---------------------------------------------------------------------------
//  Helpers

//  ck_assert records a mark point on every call (a message to Check's log);
//  loops of thousands of checks use this instead, which costs nothing
//  until it fails.
#define FAST_ASSERT(expr)                                                      \
    do {                                                                       \
        if (!(expr))                                                           \
            ck_abort_msg ("Assertion '%s' failed", #expr);                     \
    } while (0)

static void
s_verify (keel_balancer_t *lb)
{
    const char *broken = keel_balancer_verify (lb);
    ck_assert_msg (broken == NULL, "invariant broken: %s", broken);
}

//  Add or update `id` with endpoint tcp://<id>:<port> and `weight`.
static int
s_put (keel_balancer_t *lb, const char *id, uint32_t weight, int port)
{
    char endpoint[512];
    snprintf (endpoint, sizeof endpoint, "tcp://%.400s:%d", id, port);
    keel_upstream_spec_t spec = {id, endpoint, weight, NULL, 0};
    return keel_balancer_upsert (lb, &spec);
}

static void
s_add (keel_balancer_t *lb, const char *id, uint32_t weight)
{
    ck_assert_int_eq (s_put (lb, id, weight, 80), 0);
}

//  Pick (no predicate, no exclusion) and finish at once; returns the id.
static const char *
s_next (keel_balancer_t *lb)
{
    const keel_upstream_t *up = keel_balancer_pick (lb, NULL, NULL, NULL);
    FAST_ASSERT (up != NULL);
    FAST_ASSERT (keel_balancer_done (lb, up->id, up->serial) == 0);
    return up->id;
}

//  Pick `count` times, finishing each, and check the ids against `expect`:
//  one letter per pick, instance ids being single letters.
static void
s_expect (keel_balancer_t *lb, const char *expect)
{
    char got[256] = "";
    size_t len = strlen (expect);
    FAST_ASSERT (len < sizeof got);
    for (size_t i = 0; i < len; i++)
        got[i] = s_next (lb)[0];
    got[len] = 0;
    ck_assert_str_eq (got, expect);
}

//  Make `id`'s in_flight `load` more: picks allowing only it.
static bool
s_only (const keel_upstream_t *up, void *arg)
{
    return streq (up->id, (const char *)arg);
}

static void
s_load (keel_balancer_t *lb, const char *id, int load)
{
    for (int i = 0; i < load; i++) {
        const keel_upstream_t *up =
            keel_balancer_pick (lb, s_only, (void *)id, NULL);
        FAST_ASSERT (up != NULL && streq (up->id, id));
    }
}

//  Refuse the ids listed in a NULL-terminated array.
static bool
s_refuse_listed (const keel_upstream_t *up, void *arg)
{
    for (const char **id = (const char **)arg; *id; id++)
        if (streq (up->id, *id))
            return false;
    return true;
}

static bool
s_refuse_all (const keel_upstream_t *up, void *arg)
{
    (void)up;
    (void)arg;
    return false;
}

// ---------------------------------------------------------------------------
//  Basics

START_TEST (test_new_destroy)
{
    for (int policy = RR; policy <= P2C; policy++) {
        keel_balancer_t *lb =
            keel_balancer_new ((keel_balancer_policy_t)policy, SEED);
        ck_assert_ptr_nonnull (lb);
        ck_assert_int_eq (keel_balancer_policy (lb), policy);
        ck_assert_uint_eq (keel_balancer_size (lb), 0);
        //  Nothing to pick: NULL, counted.
        ck_assert_ptr_null (keel_balancer_pick (lb, NULL, NULL, NULL));
        keel_balancer_stats_t stats = keel_balancer_stats (lb);
        ck_assert_uint_eq (stats.no_instance, 1);
        ck_assert_uint_eq (stats.picks, 0);
        s_verify (lb);
        keel_balancer_destroy (&lb);
        ck_assert_ptr_null (lb);
    }
    ck_assert_ptr_null (keel_balancer_new ((keel_balancer_policy_t)4, 1));
    ck_assert_ptr_null (keel_balancer_new ((keel_balancer_policy_t)-1, 1));
    keel_balancer_t *none = NULL;
    keel_balancer_destroy (&none);
    keel_balancer_destroy (NULL);
}
END_TEST

START_TEST (test_names)
{
    ck_assert_str_eq (keel_balancer_policy_name (RR), "ROUND_ROBIN");
    ck_assert_str_eq (keel_balancer_policy_name (WRR), "WEIGHTED");
    ck_assert_str_eq (keel_balancer_policy_name (LC), "LEAST_CONN");
    ck_assert_str_eq (keel_balancer_policy_name (P2C), "P2C");
    ck_assert_str_eq (keel_balancer_policy_name (4), "UNKNOWN");
    ck_assert_str_eq (keel_balancer_policy_name (-1), "UNKNOWN");
    ck_assert_int_eq (keel_balancer_policy_parse ("round-robin"), RR);
    ck_assert_int_eq (keel_balancer_policy_parse ("Weighted"), WRR);
    ck_assert_int_eq (keel_balancer_policy_parse ("least_conn"), LC);
    ck_assert_int_eq (keel_balancer_policy_parse ("p2c"), P2C);
    ck_assert_int_eq (keel_balancer_policy_parse ("p2"), -1);
    ck_assert_int_eq (keel_balancer_policy_parse ("p2cx"), -1);
    ck_assert_int_eq (keel_balancer_policy_parse (""), -1);
    ck_assert_int_eq (keel_balancer_policy_parse (NULL), -1);
}
END_TEST

START_TEST (test_upsert_input)
{
    keel_balancer_t *lb = keel_balancer_new (RR, SEED);
    const char *tags[] = {"blue", "v2"};
    keel_upstream_spec_t bad[] = {
        {NULL, "tcp://h:1", 1, NULL, 0}, {"", "tcp://h:1", 1, NULL, 0},
        {"a", NULL, 1, NULL, 0},         {"a", "", 1, NULL, 0},
        {"a", "tcp://h:1", 1, NULL, 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq (keel_balancer_upsert (lb, &bad[i]), -1);
    const char *null_tag[] = {"x", NULL};
    keel_upstream_spec_t with_null = {"a", "tcp://h:1", 1, null_tag, 2};
    ck_assert_int_eq (keel_balancer_upsert (lb, &with_null), -1);
    ck_assert_int_eq (keel_balancer_upsert (lb, NULL), -1);
    ck_assert_uint_eq (keel_balancer_size (lb), 0);

    //  Strings are copied.
    char id[8] = "a", endpoint[32] = "tcp://h:1", tag[8] = "blue";
    const char *one_tag[] = {tag, tags[1]};
    keel_upstream_spec_t spec = {id, endpoint, 0, one_tag, 2};
    ck_assert_int_eq (keel_balancer_upsert (lb, &spec), 0);
    strcpy (id, "zz");
    strcpy (endpoint, "tcp://x:2");
    strcpy (tag, "red");
    const keel_upstream_t *a = keel_balancer_get (lb, "a");
    ck_assert_ptr_nonnull (a);
    ck_assert_str_eq (a->id, "a");
    ck_assert_str_eq (a->endpoint, "tcp://h:1");
    ck_assert_uint_eq (a->weight, 1); //  0 means 1
    ck_assert_uint_eq (a->n_tags, 2);
    ck_assert_str_eq (a->tags[0], "blue");
    ck_assert_str_eq (a->tags[1], "v2");
    ck_assert_ptr_null (a->tags[2]);
    ck_assert (keel_upstream_has_tag (a, "blue"));
    ck_assert (keel_upstream_has_tag (a, "v2"));
    ck_assert (!keel_upstream_has_tag (a, "red"));
    ck_assert (!keel_upstream_has_tag (a, NULL));
    ck_assert_ptr_null (a->user);
    ck_assert_uint_eq (a->in_flight, 0);
    ck_assert_uint_eq (a->picks, 0);
    ck_assert_uint_ne (a->serial, 0);
    ck_assert_ptr_null (keel_balancer_get (lb, "zz"));
    ck_assert_ptr_null (keel_balancer_get (lb, NULL));

    //  A bad update changes nothing.
    keel_upstream_spec_t bad_update = {"a", "", 3, NULL, 0};
    ck_assert_int_eq (keel_balancer_upsert (lb, &bad_update), -1);
    ck_assert_str_eq (a->endpoint, "tcp://h:1");
    ck_assert_uint_eq (a->weight, 1);

    //  An update replaces endpoint, weight and tags (none now).
    keel_upstream_spec_t update = {"a", "tcp://h:9", 7, NULL, 0};
    ck_assert_int_eq (keel_balancer_upsert (lb, &update), 0);
    ck_assert_ptr_eq (keel_balancer_get (lb, "a"), a);
    ck_assert_str_eq (a->endpoint, "tcp://h:9");
    ck_assert_uint_eq (a->weight, 7);
    ck_assert_uint_eq (a->n_tags, 0);
    ck_assert_ptr_nonnull (a->tags);
    ck_assert_ptr_null (a->tags[0]);
    ck_assert (!keel_upstream_has_tag (a, "blue"));
    ck_assert_uint_eq (keel_balancer_size (lb), 1);
    ck_assert_ptr_eq (keel_balancer_at (lb, 0), a);

    ck_assert_int_eq (keel_balancer_remove (lb, "a"), 0);
    ck_assert_int_eq (keel_balancer_remove (lb, "a"), -1);
    ck_assert_int_eq (keel_balancer_remove (lb, NULL), -1);
    ck_assert_uint_eq (keel_balancer_size (lb), 0);
    s_verify (lb);
    keel_balancer_destroy (&lb);
}
END_TEST

// ---------------------------------------------------------------------------
//  Round robin

START_TEST (test_round_robin_order)
{
    keel_balancer_t *lb = keel_balancer_new (RR, SEED);
    s_add (lb, "a", 1);
    s_add (lb, "b", 9); //  weights do not matter here
    s_add (lb, "c", 1);
    s_expect (lb, "abcabcabc");

    //  A new instance joins the round in progress, at its end.
    s_expect (lb, "a");
    s_add (lb, "d", 1);
    s_expect (lb, "bcd"
                  "abcd");

    //  Removing one that had its turn this round: nobody else loses or
    //  gains one. a b | remove a | then d and c complete the round.
    keel_balancer_destroy (&lb);
    lb = keel_balancer_new (RR, SEED);
    s_add (lb, "a", 1);
    s_add (lb, "b", 1);
    s_add (lb, "c", 1);
    s_add (lb, "d", 1);
    s_expect (lb, "ab");
    ck_assert_int_eq (keel_balancer_remove (lb, "a"), 0);
    s_verify (lb);
    s_expect (lb, "dc"
                  "bdc"
                  "bdc");

    //  Removing one still to come this round: the others keep theirs.
    s_expect (lb, "b");
    ck_assert_int_eq (keel_balancer_remove (lb, "c"), 0);
    s_expect (lb, "d"
                  "bd");

    //  Removing the one just picked, then adding: the round goes on.
    s_add (lb, "e", 1);
    s_expect (lb, "eb");
    ck_assert_int_eq (keel_balancer_remove (lb, "e"), 0);
    s_add (lb, "f", 1);
    s_expect (lb, "dfbdf");

    //  Updates keep the place in the round.
    s_expect (lb, "b");
    ck_assert_int_eq (s_put (lb, "b", 3, 81), 0);
    ck_assert_int_eq (s_put (lb, "d", 3, 81), 0);
    s_expect (lb, "df"
                  "bdf");
    s_verify (lb);
    keel_balancer_destroy (&lb);
}
END_TEST

//  Randomized churn between picks. The first STABLE instances stay all
//  along (updated now and then): counted from the first pick, they were
//  picked within 1 of each other at every moment (once per round). Over
//  any stretch, instances present all along were picked within 2 of each
//  other (plus the partial rounds at both ends).
START_TEST (test_round_robin_churn_fair)
{
    enum { IDS = 40, STABLE = 8, EPOCH = 300, EPOCHS = 100 };
    keel_balancer_t *lb = keel_balancer_new (RR, SEED);
    bool present[IDS] = {false};
    bool whole[IDS];      //  present since the epoch began
    int counts[IDS];      //  picks this epoch
    int total[IDS] = {0}; //  picks since the start
    char ids[IDS][8];
    uint64_t rng = 12345;
    for (int i = 0; i < IDS; i++)
        snprintf (ids[i], sizeof ids[i], "i%02d", i);
    //  The stable ones last: a removal has them fill holes.
    for (int i = STABLE; i < IDS / 2; i++) {
        s_add (lb, ids[i], 1);
        present[i] = true;
    }
    for (int i = 0; i < STABLE; i++) {
        s_add (lb, ids[i], 1);
        present[i] = true;
    }
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        for (int i = 0; i < IDS; i++) {
            whole[i] = present[i];
            counts[i] = 0;
        }
        for (int op = 0; op < EPOCH; op++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            int roll = (int)((rng >> 33) % 100);
            int i = (int)((rng >> 17) % IDS);
            if (roll < 10 && i < STABLE)
                FAST_ASSERT (s_put (lb, ids[i], (uint32_t)roll, 80 + roll) ==
                             0);
            else if (roll < 10 && !present[i]) {
                s_add (lb, ids[i], 1);
                present[i] = true;
            } else if (roll < 20 && present[i] && i >= STABLE) {
                FAST_ASSERT (keel_balancer_remove (lb, ids[i]) == 0);
                present[i] = false;
                whole[i] = false;
            } else {
                int picked = atoi (s_next (lb) + 1);
                counts[picked]++;
                total[picked]++;
                int lo = total[0], hi = total[0];
                for (int k = 1; k < STABLE; k++) {
                    lo = total[k] < lo ? total[k] : lo;
                    hi = total[k] > hi ? total[k] : hi;
                }
                if (hi - lo > 1)
                    ck_abort_msg ("epoch %d op %d: stable picks %d..%d", epoch,
                                  op, lo, hi);
            }
        }
        int lo = 1 << 30, hi = -1;
        for (int i = 0; i < IDS; i++)
            if (whole[i]) {
                lo = counts[i] < lo ? counts[i] : lo;
                hi = counts[i] > hi ? counts[i] : hi;
            }
        ck_assert_msg (hi - lo <= 2, "epoch %d: picks %d..%d", epoch, lo, hi);
        s_verify (lb);
    }
    keel_balancer_destroy (&lb);
}
END_TEST

// ---------------------------------------------------------------------------
//  Smooth weighted round robin

START_TEST (test_weighted_sequence)
{
    keel_balancer_t *lb = keel_balancer_new (WRR, SEED);
    s_add (lb, "a", 5);
    s_add (lb, "b", 1);
    s_add (lb, "c", 1);
    //  nginx's documented sequence, period 7, over and over.
    for (int round = 0; round < 20; round++)
        s_expect (lb, "aabacaa");
    ck_assert_uint_eq (keel_balancer_get (lb, "a")->picks, 100);
    ck_assert_uint_eq (keel_balancer_get (lb, "b")->picks, 20);
    ck_assert_uint_eq (keel_balancer_get (lb, "c")->picks, 20);
    keel_balancer_destroy (&lb);

    //  Weight 0 counts as 1.
    lb = keel_balancer_new (WRR, SEED);
    s_add (lb, "a", 0);
    s_add (lb, "b", 0);
    s_expect (lb, "abababab");
    keel_balancer_destroy (&lb);
    lb = keel_balancer_new (WRR, SEED);
    s_add (lb, "a", 0);
    s_add (lb, "b", 2);
    s_expect (lb, "bab"
                  "bab"
                  "bab");

    //  Smoothness with weights 3,2,1 (nginx: a b a c b a).
    keel_balancer_destroy (&lb);
    lb = keel_balancer_new (WRR, SEED);
    s_add (lb, "a", 3);
    s_add (lb, "b", 2);
    s_add (lb, "c", 1);
    s_expect (lb, "abacba"
                  "abacba");
    keel_balancer_destroy (&lb);
}
END_TEST

//  Updates and resets keep the current weights: the sequence goes on as if
//  nothing happened.
START_TEST (test_weighted_keeps_state)
{
    keel_balancer_t *lb = keel_balancer_new (WRR, SEED);
    s_add (lb, "a", 5);
    s_add (lb, "b", 1);
    s_add (lb, "c", 1);
    s_expect (lb, "aab");
    ck_assert_int_eq (s_put (lb, "a", 5, 8080), 0); //  new endpoint
    ck_assert_int_eq (s_put (lb, "c", 1, 80), 0);   //  same
    s_expect (lb, "ac");
    keel_upstream_spec_t snapshot[] = {
        {"c", "tcp://c:80", 1, NULL, 0},
        {"a", "tcp://a:80", 5, NULL, 0},
        {"b", "tcp://b:80", 1, NULL, 0},
    };
    ck_assert_int_eq (keel_balancer_reset (lb, snapshot, 3), 0);
    s_expect (lb, "aa"
                  "aabacaa");
    //  A refused instance sits out: its current weight does not move, the
    //  others share the turns.
    const char *no_a[] = {"a", NULL};
    for (int i = 0; i < 4; i++) {
        const keel_upstream_t *up =
            keel_balancer_pick (lb, s_refuse_listed, no_a, NULL);
        ck_assert_str_eq (up->id, i % 2 ? "c" : "b");
        keel_balancer_done (lb, up->id, up->serial);
    }
    s_expect (lb, "aabacaa");
    s_verify (lb);
    keel_balancer_destroy (&lb);
}
END_TEST

// ---------------------------------------------------------------------------
//  Least connections

START_TEST (test_least_conn)
{
    keel_balancer_t *lb = keel_balancer_new (LC, SEED);
    s_add (lb, "a", 1);
    s_add (lb, "b", 1);
    s_add (lb, "c", 1);
    //  All idle: ties take turns, not always the first.
    s_expect (lb, "abcabcab");

    //  Loaded: a 3, b 1, c 2. The least loaded is picked, whatever the
    //  turn; of the least loaded, the next in turn.
    s_load (lb, "a", 3);
    s_load (lb, "b", 1);
    s_load (lb, "c", 2);
    char got[8] = "";
    for (int i = 0; i < 6; i++)
        got[i] = keel_balancer_pick (lb, NULL, NULL, NULL)->id[0];
    //  b(1) | b2 c2: c | a3 b2 c3: b | all 3: c, a, b
    ck_assert_str_eq (got, "bcbcab");

    //  Uneven finishing: every pick takes one of the least loaded.
    uint64_t rng = 99;
    for (int i = 0; i < 500; i++) {
        uint32_t least = UINT32_MAX;
        for (size_t k = 0; k < keel_balancer_size (lb); k++) {
            uint32_t load = keel_balancer_at (lb, k)->in_flight;
            least = load < least ? load : least;
        }
        const keel_upstream_t *up = keel_balancer_pick (lb, NULL, NULL, NULL);
        FAST_ASSERT (up->in_flight == least + 1);
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        const keel_upstream_t *finish =
            keel_balancer_at (lb, (size_t)(rng >> 33) % 3);
        if ((rng >> 20) % 3 && finish->in_flight > 0)
            keel_balancer_done (lb, finish->id, finish->serial);
    }
    s_verify (lb);
    keel_balancer_destroy (&lb);
}
END_TEST

// ---------------------------------------------------------------------------
//  Power of two choices

//  Pick `picks` times, finishing each, counting picks per instance of ids
//  "pNN" in counts[NN].
static void
s_tally (keel_balancer_t *lb, keel_balancer_allowed_fn *allowed, void *arg,
         int picks, int *counts)
{
    for (int i = 0; i < picks; i++) {
        const keel_upstream_t *up = keel_balancer_pick (lb, allowed, arg, NULL);
        FAST_ASSERT (up != NULL);
        counts[atoi (up->id + 1)]++;
        FAST_ASSERT (keel_balancer_done (lb, up->id, up->serial) == 0);
    }
}

START_TEST (test_p2c_distribution)
{
    //  Loads 0..9. Of two distinct candidates the less loaded wins, so the
    //  instance of rank k (0 = least loaded) wins 2 (n-1-k) / (n (n-1)) of
    //  the picks, and the most loaded never.
    enum { N = 10, PICKS = 45000 };
    keel_balancer_t *lb = keel_balancer_new (P2C, SEED);
    char id[8];
    for (int k = 0; k < N; k++) {
        snprintf (id, sizeof id, "p%d", k);
        s_add (lb, id, 1);
    }
    for (int k = 0; k < N; k++) {
        snprintf (id, sizeof id, "p%d", k);
        s_load (lb, id, k);
    }
    int counts[N] = {0};
    s_tally (lb, NULL, NULL, PICKS, counts);
    ck_assert_int_eq (counts[N - 1], 0);
    for (int k = 0; k < N - 1; k++) {
        int expect = PICKS * 2 * (N - 1 - k) / (N * (N - 1));
        ck_assert_msg (abs (counts[k] - expect) <= expect / 10,
                       "rank %d: %d picks, expected about %d", k, counts[k],
                       expect);
    }
    keel_balancer_destroy (&lb);
}
END_TEST

//  The same seed replays the same choices; another seed makes others.
static void
s_p2c_run (uint64_t seed, char *got, int picks)
{
    keel_balancer_t *lb = keel_balancer_new (P2C, seed);
    char id[8];
    for (int k = 0; k < 26; k++) {
        snprintf (id, sizeof id, "%c", 'a' + k);
        s_add (lb, id, 1);
    }
    for (int i = 0; i < picks; i++) {
        const keel_upstream_t *up = keel_balancer_pick (lb, NULL, NULL, NULL);
        got[i] = up->id[0];
        if (i % 3) //  leave some in flight: loads differ
            keel_balancer_done (lb, up->id, up->serial);
    }
    got[picks] = 0;
    keel_balancer_destroy (&lb);
}

START_TEST (test_p2c_seeded)
{
    char one[301], two[301], other[301];
    s_p2c_run (42, one, 300);
    s_p2c_run (42, two, 300);
    s_p2c_run (43, other, 300);
    ck_assert_str_eq (one, two);
    ck_assert_str_ne (one, other);
}
END_TEST

//  Allow only the ids in a NULL-terminated array.
static bool
s_allow_listed (const keel_upstream_t *up, void *arg)
{
    return !s_refuse_listed (up, arg);
}

START_TEST (test_p2c_mostly_refused)
{
    //  97 of 100 refused: random draws mostly miss, the exact pass still
    //  draws uniformly among the 3 and never picks the most loaded.
    keel_balancer_t *lb = keel_balancer_new (P2C, SEED);
    char id[8];
    for (int k = 0; k < 100; k++) {
        snprintf (id, sizeof id, "p%02d", k);
        s_add (lb, id, 1);
    }
    s_load (lb, "p50", 1);
    s_load (lb, "p97", 2);
    const char *three[] = {"p03", "p50", "p97", NULL};
    int counts[100] = {0};
    s_tally (lb, s_allow_listed, three, 3000, counts);
    ck_assert_int_eq (counts[3] + counts[50], 3000);
    ck_assert_int_eq (counts[97], 0);
    ck_assert_int_gt (counts[3], 1800); //  2/3
    ck_assert_int_lt (counts[3], 2200);

    //  One allowed: it, however loaded. None: NULL.
    const char *one[] = {"p97", NULL};
    memset (counts, 0, sizeof counts);
    s_tally (lb, s_allow_listed, one, 50, counts);
    ck_assert_int_eq (counts[97], 50);
    const char *none[] = {NULL};
    ck_assert_ptr_null (keel_balancer_pick (lb, s_allow_listed, none, NULL));
    keel_balancer_destroy (&lb);
}
END_TEST

// ---------------------------------------------------------------------------
//  Allowed and exclude, every policy

//  Counts the predicate's calls per instance (by serial), refusing those
//  listed.
typedef struct {
    const char **listed; //  NULL-terminated ids
    bool allow;          //  allow the listed (else refuse them)
    int calls[256];      //  calls per serial in this pick
} counter_t;

static bool
s_counting (const keel_upstream_t *up, void *arg)
{
    counter_t *counter = (counter_t *)arg;
    ck_assert_uint_lt (up->serial, 256);
    counter->calls[up->serial]++;
    bool listed = !s_refuse_listed (up, counter->listed);
    return counter->allow ? listed : !listed;
}

START_TEST (test_allowed)
{
    keel_balancer_policy_t policy = (keel_balancer_policy_t)_i;
    keel_balancer_t *lb = keel_balancer_new (policy, SEED);
    s_add (lb, "a", 2);
    s_add (lb, "b", 1);
    s_add (lb, "c", 1);
    s_add (lb, "d", 1);
    s_add (lb, "e", 1);
    const char *refused[] = {"b", "d", NULL};
    counter_t counter = {refused, false, {0}};
    int picked[256] = {0};
    for (int i = 0; i < 300; i++) {
        memset (counter.calls, 0, sizeof counter.calls);
        const keel_upstream_t *up =
            keel_balancer_pick (lb, s_counting, &counter, NULL);
        FAST_ASSERT (up != NULL);
        FAST_ASSERT (s_refuse_listed (up, refused));
        picked[(unsigned char)up->id[0]]++;
        for (int s = 0; s < 256; s++)
            FAST_ASSERT (counter.calls[s] <= 1); //  once per pick at most
        keel_balancer_done (lb, up->id, up->serial);
    }
    ck_assert_int_eq (picked['b'] + picked['d'], 0);
    ck_assert_int_gt (picked['a'], 0);
    ck_assert_int_gt (picked['c'], 0);
    ck_assert_int_gt (picked['e'], 0);
    if (policy == RR || policy == LC)
        ck_assert (picked['a'] == 100 && picked['c'] == 100);
    if (policy == WRR)
        ck_assert (picked['a'] == 150 && picked['c'] == 75);

    //  Everything refused: NULL, counted, nothing in flight.
    keel_balancer_stats_t before = keel_balancer_stats (lb);
    ck_assert_ptr_null (keel_balancer_pick (lb, s_refuse_all, NULL, NULL));
    const char *all[] = {"a", "b", "c", "d", "e", NULL};
    counter.listed = all;
    memset (counter.calls, 0, sizeof counter.calls);
    ck_assert_ptr_null (keel_balancer_pick (lb, s_counting, &counter, NULL));
    for (int s = 0; s < 256; s++)
        ck_assert_int_le (counter.calls[s], 1);
    keel_balancer_stats_t after = keel_balancer_stats (lb);
    ck_assert_uint_eq (after.no_instance, before.no_instance + 2);
    ck_assert_uint_eq (after.picks, before.picks);
    ck_assert_uint_eq (after.in_flight, 0);
    s_verify (lb);

    //  The predicate sees instances at most once per pick with many
    //  refused too (P2C's exact pass).
    for (int k = 0; k < 100; k++) {
        char id[8];
        snprintf (id, sizeof id, "z%02d", k);
        s_add (lb, id, 1);
    }
    const char *two[] = {"e", "z77", NULL};
    counter.listed = two;
    counter.allow = true;
    for (int i = 0; i < 100; i++) {
        memset (counter.calls, 0, sizeof counter.calls);
        const keel_upstream_t *up =
            keel_balancer_pick (lb, s_counting, &counter, NULL);
        FAST_ASSERT (up != NULL);
        FAST_ASSERT (streq (up->id, "e") || streq (up->id, "z77"));
        for (int s = 0; s < 256; s++)
            FAST_ASSERT (counter.calls[s] <= 1);
        keel_balancer_done (lb, up->id, up->serial);
    }
    s_verify (lb);
    keel_balancer_destroy (&lb);
}
END_TEST

START_TEST (test_exclude)
{
    keel_balancer_policy_t policy = (keel_balancer_policy_t)_i;
    keel_balancer_t *lb = keel_balancer_new (policy, SEED);
    s_add (lb, "a", 5);
    s_add (lb, "b", 1);
    for (int i = 0; i < 20; i++) {
        const keel_upstream_t *up = keel_balancer_pick (lb, NULL, NULL, "a");
        ck_assert_str_eq (up->id, "b");
        keel_balancer_done (lb, up->id, up->serial);
        up = keel_balancer_pick (lb, NULL, NULL, "b");
        ck_assert_str_eq (up->id, "a");
        keel_balancer_done (lb, up->id, up->serial);
    }
    //  An unknown id excludes nothing.
    int seen_a = 0, seen_b = 0;
    for (int i = 0; i < 40; i++) {
        const keel_upstream_t *up = keel_balancer_pick (lb, NULL, NULL, "x");
        seen_a += streq (up->id, "a");
        seen_b += streq (up->id, "b");
        keel_balancer_done (lb, up->id, up->serial);
    }
    ck_assert (seen_a > 0 && seen_b > 0);
    //  Excluded plus refused: nothing left.
    const char *no_b[] = {"b", NULL};
    ck_assert_ptr_null (keel_balancer_pick (lb, s_refuse_listed, no_b, "a"));
    ck_assert_int_eq (keel_balancer_remove (lb, "b"), 0);
    ck_assert_ptr_null (keel_balancer_pick (lb, NULL, NULL, "a"));
    ck_assert_uint_eq (keel_balancer_stats (lb).no_instance, 2);
    ck_assert_uint_eq (keel_balancer_stats (lb).in_flight, 0);
    s_verify (lb);
    keel_balancer_destroy (&lb);
}
END_TEST

// ---------------------------------------------------------------------------
//  In flight, updates, removal

START_TEST (test_upsert_keeps_in_flight)
{
    keel_balancer_t *lb = keel_balancer_new (LC, SEED);
    s_add (lb, "a", 1);
    s_add (lb, "b", 1);
    const keel_upstream_t *a = keel_balancer_pick (lb, NULL, NULL, NULL);
    ck_assert_str_eq (a->id, "a");
    keel_balancer_pick (lb, NULL, NULL, "b");
    uint64_t serial = a->serial;
    ck_assert_uint_eq (a->in_flight, 2);
    ck_assert_uint_eq (a->picks, 2);

    const char *tags[] = {"canary"};
    keel_upstream_spec_t spec = {"a", "tcp://elsewhere:1", 4, tags, 1};
    ck_assert_int_eq (keel_balancer_upsert (lb, &spec), 0);
    ck_assert_ptr_eq (keel_balancer_get (lb, "a"), a);
    ck_assert_uint_eq (a->in_flight, 2);
    ck_assert_uint_eq (a->picks, 2);
    ck_assert_uint_eq (a->serial, serial);
    ck_assert_uint_eq (a->weight, 4);
    ck_assert (keel_upstream_has_tag (a, "canary"));
    //  Still loaded: least-conn goes to b.
    const keel_upstream_t *up = keel_balancer_pick (lb, NULL, NULL, NULL);
    ck_assert_str_eq (up->id, "b");
    ck_assert_uint_eq (keel_balancer_stats (lb).in_flight, 3);

    ck_assert_int_eq (keel_balancer_done (lb, "a", serial + 100), -1);
    ck_assert_int_eq (keel_balancer_done (lb, "a", serial), 0);
    ck_assert_int_eq (keel_balancer_done (lb, "a", serial), 0);
    ck_assert_int_eq (keel_balancer_done (lb, "a", serial), -1); //  none
    ck_assert_uint_eq (a->in_flight, 0);
    ck_assert_uint_eq (keel_balancer_stats (lb).in_flight, 1);
    s_verify (lb);
    keel_balancer_destroy (&lb);
}
END_TEST

START_TEST (test_remove_in_flight)
{
    keel_balancer_t *lb = keel_balancer_new (RR, SEED);
    s_add (lb, "a", 1);
    s_add (lb, "b", 1);
    const keel_upstream_t *up = keel_balancer_pick (lb, NULL, NULL, NULL);
    ck_assert_str_eq (up->id, "a");
    uint64_t old_serial = up->serial;
    ck_assert_uint_eq (keel_balancer_stats (lb).in_flight, 1);
    ck_assert_int_eq (keel_balancer_remove (lb, "a"), 0);
    ck_assert_uint_eq (keel_balancer_stats (lb).in_flight, 0);
    //  The answer comes back after the removal: ignored.
    ck_assert_int_eq (keel_balancer_done (lb, "a", old_serial), -1);
    ck_assert_int_eq (keel_balancer_done (lb, "nobody", 1), -1);
    ck_assert_int_eq (keel_balancer_done (lb, NULL, 1), -1);
    s_verify (lb);

    //  Added again under the same id: a new instance, which the old
    //  request's done does not touch.
    s_add (lb, "a", 1);
    const keel_upstream_t *again = keel_balancer_get (lb, "a");
    ck_assert_uint_ne (again->serial, old_serial);
    const char *only_a[] = {"b", NULL};
    up = keel_balancer_pick (lb, s_refuse_listed, only_a, NULL);
    ck_assert_ptr_eq (up, again);
    ck_assert_int_eq (keel_balancer_done (lb, "a", old_serial), -1);
    ck_assert_uint_eq (again->in_flight, 1);
    ck_assert_int_eq (keel_balancer_done (lb, "a", again->serial), 0);
    ck_assert_uint_eq (keel_balancer_stats (lb).in_flight, 0);
    s_verify (lb);
    keel_balancer_destroy (&lb);
}
END_TEST

// ---------------------------------------------------------------------------
//  Reset

static void
s_expect_order (keel_balancer_t *lb, const char *order)
{
    ck_assert_uint_eq (keel_balancer_size (lb), strlen (order));
    for (size_t i = 0; i < strlen (order); i++)
        ck_assert_int_eq (keel_balancer_at (lb, i)->id[0], order[i]);
}

START_TEST (test_reset)
{
    keel_balancer_t *lb = keel_balancer_new (RR, SEED);
    keel_upstream_spec_t first[] = {
        {"a", "tcp://a:1", 1, NULL, 0},
        {"b", "tcp://b:1", 1, NULL, 0},
        {"c", "tcp://c:1", 1, NULL, 0},
    };
    ck_assert_int_eq (keel_balancer_reset (lb, first, 3), 0);
    s_expect_order (lb, "abc");
    const keel_upstream_t *a = keel_balancer_pick (lb, NULL, NULL, NULL);
    ck_assert_str_eq (a->id, "a"); //  stays in flight
    uint64_t a_serial = a->serial;
    s_expect (lb, "b");

    //  b leaves, d and e join (in the snapshot's order), a and c stay with
    //  their state and new details.
    const char *tags[] = {"x"};
    keel_upstream_spec_t second[] = {
        {"d", "tcp://d:1", 1, NULL, 0},
        {"c", "tcp://c:1", 3, tags, 1},
        {"a", "tcp://a:2", 1, NULL, 0},
        {"e", "tcp://e:1", 1, NULL, 0},
    };
    ck_assert_int_eq (keel_balancer_reset (lb, second, 4), 0);
    s_verify (lb);
    s_expect_order (lb, "acde");
    ck_assert_ptr_eq (keel_balancer_get (lb, "a"), a);
    ck_assert_uint_eq (a->in_flight, 1);
    ck_assert_uint_eq (a->serial, a_serial);
    ck_assert_str_eq (a->endpoint, "tcp://a:2");
    ck_assert_uint_eq (keel_balancer_get (lb, "c")->weight, 3);
    ck_assert (keel_upstream_has_tag (keel_balancer_get (lb, "c"), "x"));
    ck_assert_ptr_null (keel_balancer_get (lb, "b"));
    //  The round goes on: a had its turn, c d e have not.
    s_expect (lb, "cde"
                  "acde");

    //  Bad input anywhere: nothing changes.
    keel_upstream_spec_t bad[] = {
        {"f", "tcp://f:1", 1, NULL, 0},
        {"g", "", 1, NULL, 0},
    };
    ck_assert_int_eq (keel_balancer_reset (lb, bad, 2), -1);
    ck_assert_int_eq (keel_balancer_reset (lb, NULL, 2), -1);
    s_expect_order (lb, "acde");

    //  A repeated id: the last wins.
    keel_upstream_spec_t twice[] = {
        {"x", "tcp://x:1", 1, NULL, 0},
        {"a", "tcp://a:2", 1, NULL, 0},
        {"x", "tcp://x:2", 2, NULL, 0},
    };
    ck_assert_int_eq (keel_balancer_reset (lb, twice, 3), 0);
    s_expect_order (lb, "ax");
    ck_assert_str_eq (keel_balancer_get (lb, "x")->endpoint, "tcp://x:2");
    ck_assert_uint_eq (keel_balancer_get (lb, "x")->weight, 2);
    ck_assert_uint_eq (keel_balancer_stats (lb).in_flight, 1);
    s_verify (lb);

    //  An empty snapshot empties it.
    ck_assert_int_eq (keel_balancer_reset (lb, NULL, 0), 0);
    ck_assert_uint_eq (keel_balancer_size (lb), 0);
    ck_assert_uint_eq (keel_balancer_stats (lb).in_flight, 0);
    ck_assert_int_eq (keel_balancer_done (lb, "a", a_serial), -1);
    s_verify (lb);
    keel_balancer_destroy (&lb);
}
END_TEST

// ---------------------------------------------------------------------------
//  The user slot

typedef struct {
    int frees;             //  destructor calls
    void *freed[16];       //  what they freed
    char endpoint[16][32]; //  the instance's endpoint then
} free_log_t;

static void
s_user_free (const keel_upstream_t *upstream, void *user, void *arg)
{
    free_log_t *log = (free_log_t *)arg;
    ck_assert_int_lt (log->frees, 16);
    for (int i = 0; i < log->frees; i++)
        ck_assert_ptr_ne (log->freed[i], user); //  never twice
    ck_assert_ptr_null (upstream->user);
    log->freed[log->frees] = user;
    snprintf (log->endpoint[log->frees], sizeof log->endpoint[0], "%s",
              upstream->endpoint);
    log->frees++;
    free (user);
}

START_TEST (test_user_slot)
{
    free_log_t log = {0};
    keel_balancer_t *lb = keel_balancer_new (RR, SEED);
    keel_balancer_set_user_free (lb, s_user_free, &log);
    const char *ids[] = {"a", "b", "c", "d", "e"};
    void *user[5];
    for (int i = 0; i < 5; i++) {
        s_add (lb, ids[i], 1);
        user[i] = malloc (8);
        ck_assert_int_eq (keel_balancer_set_user (lb, ids[i], user[i]), 0);
        ck_assert_ptr_eq (keel_balancer_get (lb, ids[i])->user, user[i]);
    }
    //  Unknown id: not taken.
    void *stray = malloc (8);
    ck_assert_int_eq (keel_balancer_set_user (lb, "zz", stray), -1);
    free (stray);
    //  The same slot again: kept. Another: the old one is freed.
    ck_assert_int_eq (keel_balancer_set_user (lb, "a", user[0]), 0);
    ck_assert_int_eq (log.frees, 0);
    void *a2 = malloc (8);
    ck_assert_int_eq (keel_balancer_set_user (lb, "a", a2), 0);
    ck_assert_int_eq (log.frees, 1);
    ck_assert_ptr_eq (log.freed[0], user[0]);

    //  Removed.
    ck_assert_int_eq (keel_balancer_remove (lb, "b"), 0);
    ck_assert_int_eq (log.frees, 2);
    ck_assert_ptr_eq (log.freed[1], user[1]);

    //  Updated, same endpoint: kept. New endpoint: freed (it served the
    //  old one), and the destructor saw the old endpoint.
    ck_assert_int_eq (s_put (lb, "c", 9, 80), 0);
    ck_assert_int_eq (log.frees, 2);
    ck_assert_ptr_eq (keel_balancer_get (lb, "c")->user, user[2]);
    ck_assert_int_eq (s_put (lb, "c", 9, 81), 0);
    ck_assert_int_eq (log.frees, 3);
    ck_assert_ptr_eq (log.freed[2], user[2]);
    ck_assert_str_eq (log.endpoint[2], "tcp://c:80");
    ck_assert_ptr_null (keel_balancer_get (lb, "c")->user);

    //  Reset: e leaves (freed); a, c, d stay (c has no slot now).
    keel_upstream_spec_t snapshot[] = {
        {"a", "tcp://a:80", 1, NULL, 0},
        {"c", "tcp://c:81", 1, NULL, 0},
        {"d", "tcp://d:80", 1, NULL, 0},
    };
    ck_assert_int_eq (keel_balancer_reset (lb, snapshot, 3), 0);
    ck_assert_int_eq (log.frees, 4);
    ck_assert_ptr_eq (log.freed[3], user[4]);
    ck_assert_ptr_eq (keel_balancer_get (lb, "d")->user, user[3]);

    //  Clearing by hand frees it as well.
    ck_assert_int_eq (keel_balancer_set_user (lb, "d", NULL), 0);
    ck_assert_int_eq (log.frees, 5);
    ck_assert_ptr_eq (log.freed[4], user[3]);

    //  Destroy: what is left (a's).
    keel_balancer_destroy (&lb);
    ck_assert_int_eq (log.frees, 6);
    ck_assert_ptr_eq (log.freed[5], a2);

    //  No destructor: the caller keeps ownership.
    int mine = 0;
    lb = keel_balancer_new (P2C, SEED);
    s_add (lb, "a", 1);
    ck_assert_int_eq (keel_balancer_set_user (lb, "a", &mine), 0);
    ck_assert_int_eq (keel_balancer_remove (lb, "a"), 0);
    keel_balancer_destroy (&lb);
}
END_TEST

// ---------------------------------------------------------------------------
//  Churn: 10k instances, against a model

#define CHURN_SLOTS 20000

typedef struct {
    bool present;
    uint64_t serial;
    uint32_t in_flight;
    uint32_t weight; //  as given (0 possible)
    int port;
    void *user;
} model_t;

typedef struct {
    int slot;
    uint64_t serial;
} outstanding_t;

static uint64_t s_churn_rng;
static int s_users_alive;

static uint32_t
s_rand (uint32_t bound)
{
    s_churn_rng = s_churn_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((s_churn_rng >> 33) % bound);
}

static void
s_churn_free (const keel_upstream_t *upstream, void *user, void *arg)
{
    (void)upstream;
    (void)arg;
    free (user);
    s_users_alive--;
}

//  Refuse serials in one residue class.
static bool
s_churn_allowed (const keel_upstream_t *up, void *arg)
{
    return up->serial % 4 != *(uint64_t *)arg;
}

static void
s_churn_spec (int slot, model_t *m, char *id, char *endpoint,
              keel_upstream_spec_t *spec)
{
    static const char *tags[] = {"t0", "t1"};
    snprintf (id, 16, "n%05d", slot);
    m->weight = s_rand (4);
    m->port = 80 + (int)s_rand (2);
    snprintf (endpoint, 48, "tcp://host%05d:%d", slot, m->port);
    spec->id = id;
    spec->endpoint = endpoint;
    spec->weight = m->weight;
    spec->tags = tags;
    spec->n_tags = s_rand (3);
}

//  After an upsert/reset: the model follows the balancer's rules.
static void
s_churn_applied (keel_balancer_t *lb, int slot, model_t *m, int old_port,
                 bool was_present, uint64_t *last_serial)
{
    char id[16];
    snprintf (id, sizeof id, "n%05d", slot);
    const keel_upstream_t *up = keel_balancer_get (lb, id);
    FAST_ASSERT (up != NULL);
    if (!was_present) {
        FAST_ASSERT (up->serial > *last_serial);
        *last_serial = up->serial;
        m->serial = up->serial;
        m->in_flight = 0;
        m->user = NULL;
    } else if (old_port != m->port)
        m->user = NULL; //  freed by the balancer
    m->present = true;
}

static void
s_churn_compare (keel_balancer_t *lb, model_t *model)
{
    size_t count = 0;
    uint64_t in_flight = 0;
    char id[16], endpoint[48];
    for (int slot = 0; slot < CHURN_SLOTS; slot++) {
        model_t *m = &model[slot];
        snprintf (id, sizeof id, "n%05d", slot);
        const keel_upstream_t *up = keel_balancer_get (lb, id);
        if (!m->present) {
            FAST_ASSERT (up == NULL);
            continue;
        }
        FAST_ASSERT (up != NULL);
        count++;
        in_flight += m->in_flight;
        snprintf (endpoint, sizeof endpoint, "tcp://host%05d:%d", slot,
                  m->port);
        FAST_ASSERT (streq (up->endpoint, endpoint));
        FAST_ASSERT (up->serial == m->serial);
        FAST_ASSERT (up->in_flight == m->in_flight);
        FAST_ASSERT (up->weight == (m->weight ? m->weight : 1));
        FAST_ASSERT (up->user == m->user);
    }
    FAST_ASSERT (keel_balancer_size (lb) == count);
    FAST_ASSERT (keel_balancer_stats (lb).in_flight == in_flight);
}

START_TEST (test_churn)
{
    keel_balancer_policy_t policy = (keel_balancer_policy_t)_i;
    //  O(n) policies pick less often, to keep the test short.
    int pick_share = policy == RR || policy == P2C ? 30 : 4;
    enum { OPS = 40000 };
    s_churn_rng = 0xc0ffee + (uint64_t)_i;
    s_users_alive = 0;
    model_t *model = (model_t *)calloc (CHURN_SLOTS, sizeof (model_t));
    keel_upstream_spec_t *specs =
        (keel_upstream_spec_t *)calloc (CHURN_SLOTS, sizeof *specs);
    char (*ids)[16] = (char (*)[16])calloc (CHURN_SLOTS, 16);
    char (*endpoints)[48] = (char (*)[48])calloc (CHURN_SLOTS, 48);
    bool *in_snapshot = (bool *)calloc (CHURN_SLOTS, sizeof (bool));
    int *old_port = (int *)calloc (CHURN_SLOTS, sizeof (int));
    size_t out_cap = OPS, out_size = 0;
    outstanding_t *out = (outstanding_t *)calloc (out_cap, sizeof *out);
    uint64_t last_serial = 0;

    keel_balancer_t *lb = keel_balancer_new (policy, 7 + (uint64_t)_i);
    keel_balancer_set_user_free (lb, s_churn_free, NULL);

    for (int op = 0; op < OPS; op++) {
        if (op % 8000 == 0) {
            //  A snapshot: most present ones stay, some absent ones come.
            size_t n = 0;
            for (int slot = 0; slot < CHURN_SLOTS; slot++) {
                model_t *m = &model[slot];
                in_snapshot[slot] =
                    m->present ? s_rand (4) != 0 : s_rand (2) == 0;
                if (!in_snapshot[slot])
                    continue;
                old_port[slot] = m->port;
                s_churn_spec (slot, m, ids[n], endpoints[n], &specs[n]);
                n++;
            }
            FAST_ASSERT (keel_balancer_reset (lb, specs, n) == 0);
            for (int slot = 0; slot < CHURN_SLOTS; slot++) {
                model_t *m = &model[slot];
                if (in_snapshot[slot])
                    s_churn_applied (lb, slot, m, old_port[slot], m->present,
                                     &last_serial);
                else {
                    m->present = false;
                    m->in_flight = 0;
                    m->user = NULL;
                }
            }
            s_verify (lb);
            s_churn_compare (lb, model);
            continue;
        }
        int roll = (int)s_rand (100);
        int slot = (int)s_rand (CHURN_SLOTS);
        model_t *m = &model[slot];
        char id[16], endpoint[48];
        snprintf (id, sizeof id, "n%05d", slot);
        if (roll < 25) {
            keel_upstream_spec_t spec;
            int before = m->port;
            s_churn_spec (slot, m, id, endpoint, &spec);
            FAST_ASSERT (keel_balancer_upsert (lb, &spec) == 0);
            s_churn_applied (lb, slot, m, before, m->present, &last_serial);
        } else if (roll < 45) {
            FAST_ASSERT (keel_balancer_remove (lb, id) ==
                         (m->present ? 0 : -1));
            m->present = false;
            m->in_flight = 0;
            m->user = NULL;
        } else if (roll < 50) {
            if (m->present) {
                void *user = malloc (4);
                s_users_alive++;
                FAST_ASSERT (keel_balancer_set_user (lb, id, user) == 0);
                m->user = user;
            } else
                FAST_ASSERT (keel_balancer_set_user (lb, id, NULL) == -1);
        } else if (roll < 50 + pick_share) {
            uint64_t salt = (uint64_t)op % 4;
            const char *exclude = s_rand (4) == 0 ? id : NULL;
            const keel_upstream_t *up =
                keel_balancer_pick (lb, s_churn_allowed, &salt, exclude);
            if (!up) {
                //  Only when nothing could be picked.
                for (size_t k = 0; k < keel_balancer_size (lb); k++) {
                    const keel_upstream_t *other = keel_balancer_at (lb, k);
                    FAST_ASSERT (!s_churn_allowed (other, &salt) ||
                                 (exclude && streq (other->id, exclude)));
                }
                continue;
            }
            FAST_ASSERT (s_churn_allowed (up, &salt));
            FAST_ASSERT (!exclude || !streq (up->id, exclude));
            model_t *picked = &model[atoi (up->id + 1)];
            FAST_ASSERT (picked->present);
            FAST_ASSERT (up->serial == picked->serial);
            picked->in_flight++;
            FAST_ASSERT (up->in_flight == picked->in_flight);
            FAST_ASSERT (out_size < out_cap);
            out[out_size].slot = atoi (up->id + 1);
            out[out_size].serial = up->serial;
            out_size++;
        } else if (out_size > 0) {
            size_t k = s_rand ((uint32_t)out_size);
            outstanding_t done = out[k];
            out[k] = out[--out_size];
            model_t *d = &model[done.slot];
            snprintf (id, sizeof id, "n%05d", done.slot);
            bool counts = d->present && d->serial == done.serial;
            FAST_ASSERT (keel_balancer_done (lb, id, done.serial) ==
                         (counts ? 0 : -1));
            if (counts)
                d->in_flight--;
        }
        if (op % 997 == 0)
            s_verify (lb);
    }
    s_verify (lb);
    s_churn_compare (lb, model);
    ck_assert_uint_gt (keel_balancer_size (lb), 9000);
    keel_balancer_stats_t stats = keel_balancer_stats (lb);
    ck_assert_uint_gt (stats.picks, 1000);
    keel_balancer_destroy (&lb);
    ck_assert_int_eq (s_users_alive, 0);
    free (model);
    free (specs);
    free (ids);
    free (endpoints);
    free (in_snapshot);
    free (old_port);
    free (out);
}
END_TEST

// ---------------------------------------------------------------------------

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_balancer");
    TCase *tc = tcase_create ("core");
    tcase_add_test (tc, test_new_destroy);
    tcase_add_test (tc, test_names);
    tcase_add_test (tc, test_upsert_input);
    tcase_add_test (tc, test_round_robin_order);
    tcase_add_test (tc, test_round_robin_churn_fair);
    tcase_add_test (tc, test_weighted_sequence);
    tcase_add_test (tc, test_weighted_keeps_state);
    tcase_add_test (tc, test_least_conn);
    tcase_add_test (tc, test_p2c_distribution);
    tcase_add_test (tc, test_p2c_seeded);
    tcase_add_test (tc, test_p2c_mostly_refused);
    tcase_add_loop_test (tc, test_allowed, RR, P2C + 1);
    tcase_add_loop_test (tc, test_exclude, RR, P2C + 1);
    tcase_add_test (tc, test_upsert_keeps_in_flight);
    tcase_add_test (tc, test_remove_in_flight);
    tcase_add_test (tc, test_reset);
    tcase_add_test (tc, test_user_slot);
    tcase_add_loop_test (tc, test_churn, RR, P2C + 1);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
