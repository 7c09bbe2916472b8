/*  balancer.h - the gateway's load balancer: one per upstream service, a
    pure core. No sockets, no threads, no clock; its only randomness is a
    PRNG seeded at creation, so a seed replays the same choices.

    The gateway feeds it the service's healthy instances as the registry
    reports them: a snapshot (keel_balancer_reset) after discovery, then one
    change at a time (keel_balancer_upsert / keel_balancer_remove) as watch
    events arrive. An instance that stays keeps its state through both: its
    in-flight count, its smooth-WRR current weight, its place in the round,
    its user slot.

    A request then asks for an instance:

        up = keel_balancer_pick (lb, may_call, breakers, NULL);
        if (!up) -> 503
        ... send to up->endpoint ...
        keel_balancer_done (lb, id, serial);    // id, serial copied from up

    Policies:
      ROUND_ROBIN   each instance once per round, in the balancer's order.
                    O(1) per pick; O(n) only while skipping refused ones.
      WEIGHTED      smooth weighted round robin, as nginx: every candidate's
                    current weight grows by its weight, the largest is
                    picked and loses the candidates' total. Weights 5,1,1
                    give a a b a c a a. O(n) per pick.
      LEAST_CONN    fewest in flight; ties go round robin (the scan starts
                    after the last pick). Weights are not used. O(n).
      P2C           power of two choices: two distinct candidates drawn at
                    random, the one with fewer in flight wins (the first
                    drawn on a tie). Weights are not used. O(1) unless most
                    instances are refused (then two O(n) passes).

    Refused and excluded instances are not candidates: they take no turn
    and (WEIGHTED) their current weight does not move.
*/
#ifndef KEEL_BALANCER_H_INCLUDED
#define KEEL_BALANCER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    KEEL_BALANCER_ROUND_ROBIN = 0,
    KEEL_BALANCER_WEIGHTED = 1,
    KEEL_BALANCER_LEAST_CONN = 2,
    KEEL_BALANCER_P2C = 3,
} keel_balancer_policy_t;

//  An instance as the balancer holds it. Read-only for the caller (change
//  it through the functions below). A pointer to it stays valid until the
//  instance is removed (remove, reset, destroy); `endpoint` and `tags`
//  only until the next upsert of the same id.
typedef struct {
    const char *id;          //  unique instance id; never changes
    const char *endpoint;    //  where requests go
    const char *const *tags; //  n_tags tags, then NULL
    size_t n_tags;           //  number of tags
    uint32_t weight;         //  >= 1 (the registry's 0 means 1)
    uint32_t in_flight;      //  picked and not yet done
    uint64_t picks;          //  times picked since it was added
    uint64_t serial;         //  tells this instance from an earlier one
                             //  with the same id (removed, added again)
    void *user;              //  the caller's slot (keel_balancer_set_user);
                             //  NULL until set
} keel_upstream_t;

//  An instance to add or update: what the registry says about it. All
//  borrowed for the duration of the call; the balancer copies.
typedef struct {
    const char *id;          //  required, not ""
    const char *endpoint;    //  required, not ""
    uint32_t weight;         //  0 means 1
    const char *const *tags; //  n_tags strings (none NULL); may be NULL
                             //  when n_tags is 0. From a Keel__Instance:
                             //  (const char *const *) inst->tags
    size_t n_tags;           //  number of tags
} keel_upstream_spec_t;

//  Counters of one balancer.
typedef struct {
    size_t instances;     //  instances held now
    uint64_t picks;       //  picks that returned an instance
    uint64_t no_instance; //  picks that returned NULL (every instance
                          //  refused or excluded, or none at all)
    uint64_t in_flight;   //  sum of the instances' in_flight
} keel_balancer_stats_t;

typedef struct _keel_balancer_t keel_balancer_t;

//  May `upstream` be called now? (e.g. its circuit breaker is not open).
//  Called during keel_balancer_pick, at most once per instance per pick,
//  also for candidates that end up not picked: it must not have effects
//  that assume the instance will be called, and must not call into the
//  balancer.
typedef bool (keel_balancer_allowed_fn) (const keel_upstream_t *upstream,
                                         void *arg);

//  Frees a user slot. Called exactly once for every non-NULL slot the
//  balancer drops: when its instance is removed (remove, reset, destroy),
//  when an upsert changes the instance's endpoint (a connection pool to
//  the old endpoint is stale), or when keel_balancer_set_user replaces it.
//  `upstream` is the instance as it was (old endpoint). Must not call into
//  the balancer.
typedef void (keel_balancer_user_free_fn) (const keel_upstream_t *upstream,
                                           void *user, void *arg);

//  Create an empty balancer with `policy`. `seed` drives P2C's PRNG and
//  keys the id hash table: pass a random seed in production (ids come
//  from registrants), a fixed one in tests. Returns NULL on an unknown
//  policy or out of memory. Caller owns it and must destroy it.
keel_balancer_t *keel_balancer_new (keel_balancer_policy_t policy,
                                    uint64_t seed);

//  Destroy: frees every user slot (see keel_balancer_user_free_fn); nulls
//  *self_p. Accepts NULL and *self_p NULL.
void keel_balancer_destroy (keel_balancer_t **self_p);

//  The balancer's policy.
keel_balancer_policy_t keel_balancer_policy (keel_balancer_t *self);

//  Set who frees user slots (NULL = nobody: the caller frees them). Set it
//  before the first keel_balancer_set_user.
void keel_balancer_set_user_free (keel_balancer_t *self,
                                  keel_balancer_user_free_fn *fn, void *arg);

//  Add an instance, or update the one with the same id: endpoint, weight,
//  tags are replaced; in_flight, picks, serial, the WRR current weight and
//  the place in the round are kept; the user slot is kept unless the
//  endpoint changed (then it is freed and NULL). Returns 0, or -1 on bad
//  input (NULL or "" id or endpoint, a NULL tag) or out of memory; nothing
//  changes on error. O(1) (amortized; plus the strings' length).
int keel_balancer_upsert (keel_balancer_t *self,
                          const keel_upstream_spec_t *spec);

//  Remove the instance with `id`, freeing its user slot. Requests still in
//  flight to it may call keel_balancer_done: it ignores them. Returns 0,
//  or -1 if no instance has that id. O(1).
int keel_balancer_remove (keel_balancer_t *self, const char *id);

//  Make the instances exactly `specs` (n of them; specs may be NULL when n
//  is 0), as a registry snapshot: instances absent from it are removed,
//  the others upserted (keeping their state as upsert does), new ones
//  added in the snapshot's order. A repeated id: the last wins. Returns 0;
//  -1 on bad input in any spec (nothing changes) or out of memory (the
//  instances absent from the snapshot are gone, but some of the snapshot
//  may be missing: reset again). O(n + instances held).
int keel_balancer_reset (keel_balancer_t *self,
                         const keel_upstream_spec_t *specs, size_t n);

//  Pick an instance for one request, among those `allowed` accepts (NULL
//  = all) other than the one with id `exclude_id` (NULL = none; an
//  unknown id excludes nothing), e.g. the instance a retry is moving away
//  from. The pick counts: picks + 1, in_flight + 1 (until
//  keel_balancer_done). Returns the instance (borrowed, see
//  keel_upstream_t), or NULL when no instance may be picked, counted in
//  stats.no_instance.
const keel_upstream_t *keel_balancer_pick (keel_balancer_t *self,
                                           keel_balancer_allowed_fn *allowed,
                                           void *arg, const char *exclude_id);

//  A request sent to the instance with `id` and `serial` (as pick returned
//  them) finished, however it ended: in_flight - 1. Returns 0, or -1 and
//  changes nothing when that instance is gone (removed, perhaps added again
//  under the same id: a new serial) or has nothing in flight.
int keel_balancer_done (keel_balancer_t *self, const char *id, uint64_t serial);

//  Set the user slot of the instance with `id`. A different non-NULL slot
//  there before is freed first. Returns 0, or -1 if no instance has that
//  id (`user` is then not taken: the caller still owns it).
int keel_balancer_set_user (keel_balancer_t *self, const char *id, void *user);

//  The instance with `id`, or NULL. Borrowed, see keel_upstream_t.
const keel_upstream_t *keel_balancer_get (keel_balancer_t *self,
                                          const char *id);

//  Number of instances held.
size_t keel_balancer_size (keel_balancer_t *self);

//  The instance at `index` (< keel_balancer_size) in the balancer's own
//  order (round robin's; it changes as instances come and go), to list
//  them. Borrowed, see keel_upstream_t.
const keel_upstream_t *keel_balancer_at (keel_balancer_t *self, size_t index);

//  Does the instance carry `tag`?
bool keel_upstream_has_tag (const keel_upstream_t *upstream, const char *tag);

//  Counters.
keel_balancer_stats_t keel_balancer_stats (keel_balancer_t *self);

//  Check the internal invariants (for tests): NULL if they hold, else a
//  static description of the first one broken. O(instances held).
const char *keel_balancer_verify (keel_balancer_t *self);

//  Static names: "ROUND_ROBIN", "WEIGHTED", "LEAST_CONN", "P2C"; "UNKNOWN"
//  otherwise. And the reverse (-1 if unknown; case-insensitive, '-' and
//  '_' alike).
const char *keel_balancer_policy_name (int policy);
int keel_balancer_policy_parse (const char *name);

#ifdef __cplusplus
}
#endif

#endif
