/*  catalog.h - the registry's pure core: instances, their health state
    machine, the change index, discovery. No sockets, no threads, no clock:
    every call that depends on time takes `now_ms` (monotonic milliseconds).

    Health, per instance. Each configured check (TTL, and the active check
    the shell runs) has its own status; the instance's status is the worst:

        UNKNOWN --result--> PASSING / CRITICAL   (first result decides,
                                                   subject to anti-flap)
        PASSING --failures_before_critical consecutive failures--> CRITICAL
        CRITICAL --successes_before_passing consecutive successes--> PASSING
        TTL: a heartbeat is a success (or the status it reports); no
             heartbeat for ttl_ms is a failure, counted once per ttl_ms.
             Registering counts as a first heartbeat: the service just
             spoke.
        CRITICAL for deregister_critical_after_ms --> removed ("critical too
             long"); a TTL instance never heard from counts from register.

    An instance with no check at all is PASSING from registration.

    Every change (register, update, deregister, status change, removal)
    increments the catalog index by one and is reported to the listener as
    a RegistryEvent carrying that index, in order.

    Replication. A catalog belongs to one node (keel_catalog_set_origin) and
    OWNS what is registered through it: it runs those instances' checks and
    stamps each of their changes with a new version. It also holds REPLICAS
    of what other nodes own (keel_catalog_apply): never checked, health as
    the owner last said, grouped by origin. Versions order the writes to one
    id whoever made them:

        newer = higher version, or the same version and a greater origin
                name (bytewise)

    Owned versions are max (last version + 1, wall_ms << 16), and the last
    version also moves up to every version applied, so a registration made
    after a node saw another's version wins over it. Each origin's replicas
    share one lease (limits.replica_lease_ms): renewed by keel_catalog_renew
    and by every entry applied from it; at expiry tick removes them all
    ("origin unreachable"). Replicas and owned entries alike are in the
    index, the listener's events, get, list and discover.
*/
#ifndef KEEL_CATALOG_H_INCLUDED
#define KEEL_CATALOG_H_INCLUDED

#include "registry.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_catalog_t keel_catalog_t;

//  Limits on what a registration may carry; 0 = the default in brackets.
typedef struct {
    size_t max_instances;     //  instances held [1000000]
    size_t max_tags;          //  tags per instance [64]
    size_t max_meta;          //  metadata pairs per instance [64]
    size_t max_string;        //  bytes in any one id/name/tag/key/value [256]
    size_t max_endpoint;      //  bytes in an endpoint [512]
    double protect_threshold; //  0 = off; else, when the passing+warning
                              //  fraction of a service's instances is below
                              //  this, discovery returns all of them
    int64_t replica_lease_ms; //  replicas of an origin not renewed for this
                              //  long are removed [3000]
} keel_catalog_limits_t;

//  Called for every change, in index order. `event` and everything in it
//  are borrowed for the duration of the call; `type` is the event type
//  ("registry.registered", "registry.updated", "registry.deregistered",
//  "registry.health").
typedef void (keel_catalog_event_fn) (const char *type,
                                      const Keel__RegistryEvent *event,
                                      void *arg);

//  Create an empty catalog (index 0). `limits` may be NULL (defaults).
//  Caller owns it. Returns NULL if out of memory.
keel_catalog_t *keel_catalog_new (const keel_catalog_limits_t *limits);

//  Destroy; nulls *self_p.
void keel_catalog_destroy (keel_catalog_t **self_p);

//  Receive every change (NULL = none).
void keel_catalog_set_listener (keel_catalog_t *self, keel_catalog_event_fn *fn,
                                void *arg);

//  Register or update an instance (deep-copied; `health` and `modify_index`
//  in the input are ignored). Validates: id, service non-empty and within
//  max_string; endpoint one of tcp://HOST:PORT, inproc://NAME, ipc://PATH,
//  http://HOST:PORT[/...]; tags and meta within limits; check intervals
//  sane (ttl_ms 0 or >= 10; interval_ms 0 or >= 10). An update keeps the
//  health state when the check is unchanged, and resets it (UNKNOWN, or
//  PASSING without checks) otherwise. Returns KEEL_OK (0) and sets *index_p
//  (may be NULL) to the change's index, or a keel_err_t (10 =
//  INVALID_ARGUMENT, 8 = CONFLICT when max_instances is reached) with
//  *error_p (may be NULL) a static reason; nothing changes on error.
int keel_catalog_register (keel_catalog_t *self, const Keel__Instance *instance,
                           int64_t now_ms, uint64_t *index_p,
                           const char **error_p);

//  Remove an instance. Returns 0 and *index_p, 4 (NOT_FOUND), or 8
//  (CONFLICT) for a replica: only its owner removes it.
int keel_catalog_deregister (keel_catalog_t *self, const char *id,
                             int64_t now_ms, uint64_t *index_p);

//  A heartbeat for the TTL check: `status` PASSING (or HEALTH_UNKNOWN, taken
//  as passing), WARNING or CRITICAL as the service reports it, with
//  `output` (may be NULL). Returns 0, 4 (NOT_FOUND) for an unknown id or a
//  replica (its owner takes its heartbeats; a service told NOT_FOUND
//  registers here, which makes this catalog the owner), or 10
//  (INVALID_ARGUMENT) when the instance has no TTL check.
int keel_catalog_heartbeat (keel_catalog_t *self, const char *id,
                            Keel__HealthStatus status, const char *output,
                            int64_t now_ms);

//  The result of an active check the shell ran for `id` (see
//  keel_catalog_next_check). Returns 0 or 4 (NOT_FOUND: removed since).
int keel_catalog_check_result (keel_catalog_t *self, const char *id,
                               bool passed, uint32_t response_time_us,
                               const char *output, int64_t now_ms);

//  Advance time: TTL expiries and removals of instances critical too long.
//  Call at keel_catalog_next_deadline at the latest.
void keel_catalog_tick (keel_catalog_t *self, int64_t now_ms);

//  The earliest time at which keel_catalog_tick or an active check has
//  work to do, or -1 if none. The shell arms one timer for it: no polling.
int64_t keel_catalog_next_deadline (keel_catalog_t *self);

//  The next active check due at `now_ms`: returns the instance (borrowed,
//  valid until the next catalog call that changes it) and marks the check
//  as running (it is not due again until its result arrives or its timeout
//  passes, which counts as a failure); NULL if none is due. The shell loops
//  on it after each tick.
const Keel__Instance *keel_catalog_next_check (keel_catalog_t *self,
                                               int64_t now_ms);

//  One instance, with its health as of now_ms (last_check_age_ms filled in).
//  Borrowed: valid until the next catalog call that changes it. NULL if
//  unknown.
const Keel__Instance *keel_catalog_get (keel_catalog_t *self, const char *id,
                                        int64_t now_ms);

//  Instances matching a query, ordered by id, written as borrowed pointers
//  (valid until the next catalog call that changes the catalog) to *list_p:
//  an array the catalog owns and reuses. Returns the count.
//    discover: service required; tags all present; meta pairs all equal;
//              healthy only (PASSING or WARNING) unless include_unhealthy,
//              or unless the protect threshold trips (*protect_p = true).
//    list:     `service` "" or NULL = every instance.
size_t keel_catalog_discover (keel_catalog_t *self,
                              const Keel__DiscoverRequest *query,
                              int64_t now_ms, Keel__Instance ***list_p,
                              bool *protect_p);
size_t keel_catalog_list (keel_catalog_t *self, const char *service,
                          int64_t now_ms, Keel__Instance ***list_p);

//  The index of the last change (0 = none yet).
uint64_t keel_catalog_index (keel_catalog_t *self);

//  Instances held.
size_t keel_catalog_size (keel_catalog_t *self);

// ---------------------------------------------------------------------------
//  Replication (see the top of this file)

//  Name the node this catalog belongs to: the origin of every instance
//  registered through it ("" until set). Returns 0, or -1 if the name is
//  not [A-Za-z0-9._:-]{1,max_string} or the catalog already holds
//  instances.
int keel_catalog_set_origin (keel_catalog_t *self, const char *origin);

//  The origin set (borrowed).
const char *keel_catalog_origin (keel_catalog_t *self);

//  The wall-clock time, ms since the epoch, that owned changes from now on
//  are versioned against (the shell passes it before each change; 0, the
//  default, gives plain counters).
void keel_catalog_set_wall_ms (keel_catalog_t *self, int64_t wall_ms);

//  The last version stamped or applied (the catalog's version clock).
uint64_t keel_catalog_clock (keel_catalog_t *self);

//  Apply an instance as its owner published it (a pushed event or a
//  fetched entry): instance->origin names the owner, which must not be this
//  catalog; instance->version and instance->health are the owner's. If it
//  is newer than what is held under its id (see the top), it replaces it
//  (an owned entry becomes a replica: ownership moved) and the listener
//  hears "registry.registered", "registry.updated" or "registry.health";
//  *applied_p (may be NULL) says whether it was. The origin's lease is
//  renewed either way. Returns 0; 10 (INVALID_ARGUMENT, *error_p a static
//  reason) for an instance that fails registration's checks or has no
//  origin or this catalog's; 8 (CONFLICT) when max_instances is reached; 7
//  (INTERNAL) out of memory. Nothing changes on error.
int keel_catalog_apply (keel_catalog_t *self, const Keel__Instance *instance,
                        int64_t now_ms, bool *applied_p, const char **error_p);

//  Apply an owner's removal of an instance (a pushed "registry.deregistered":
//  `instance` as it was, with the removal's version). Removes the replica
//  held under its id if it is of the same origin and not newer, with
//  `reason` (NULL = "deregistered"). Returns 0 if removed, 4 (NOT_FOUND)
//  otherwise.
int keel_catalog_apply_removal (keel_catalog_t *self,
                                const Keel__Instance *instance,
                                const char *reason, int64_t now_ms);

//  Renew the lease of `origin`'s replicas: they stay until now_ms +
//  replica_lease_ms at least. Unknown origins are ignored.
void keel_catalog_renew (keel_catalog_t *self, const char *origin,
                         int64_t now_ms);

//  The digest of what is held of `origin` (this catalog's own origin: what
//  it owns): FNV-1a 64 over its entries sorted by id, each the id's bytes,
//  a 0 byte and the version as 8 little-endian bytes. Nothing held gives
//  the FNV offset basis. Two catalogs agree on an origin iff (with
//  overwhelming odds) their digests of it are equal.
uint64_t keel_catalog_digest (keel_catalog_t *self, const char *origin);

//  The instances held of `origin` ("" = owned when no origin was set),
//  ordered by id, as keel_catalog_list returns them (borrowed, the
//  catalog's result array). Returns the count.
size_t keel_catalog_list_origin (keel_catalog_t *self, const char *origin,
                                 int64_t now_ms, Keel__Instance ***list_p);

//  After `origin` answered a digest with the full list of what it owns
//  (`entries`, any order) and its version clock then (`clock`): renews the
//  origin's lease; removes the replicas of origin it no longer lists,
//  unless their version is above `clock` (pushed after the answer),
//  reason "no longer owned by its origin"; and writes to `need` (room for
//  `count` pointers, borrowed from `entries`) the ids this catalog lacks
//  or holds at an older version: what to fetch. Returns how many it wrote.
size_t keel_catalog_reconcile (keel_catalog_t *self, const char *origin,
                               Keel__DigestEntry *const *entries, size_t count,
                               uint64_t clock, int64_t now_ms,
                               const char **need);

//  Instances held as replicas (the rest are owned).
size_t keel_catalog_replicas (keel_catalog_t *self);

#ifdef __cplusplus
}
#endif

#endif
