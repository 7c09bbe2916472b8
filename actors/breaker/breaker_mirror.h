/*  breaker_mirror.h - what a process that calls upstreams uses: local
    breakers that decide at once (no round trip), follow the breaker actor's
    transitions, and report outcomes to it in batches.

        acquire/record ---> local breaker (decides now)
              |                   ^
              v                   | "breaker.transition" events (mirror)
        batch of outcomes --one-way--> breaker actor (cluster-wide view)

    If the actor is unreachable, reports are lost (fire and forget) and the
    local breakers go on deciding by themselves: the actor is never a single
    point of failure. On start, and whenever events were missed, the mirror
    reads the actor's breaker list (a snapshot) and applies it.

    Thread: a mirror belongs to the thread that created it; drive it from a
    zloop (keel_breaker_mirror_attach).
*/
#ifndef KEEL_BREAKER_MIRROR_H_INCLUDED
#define KEEL_BREAKER_MIRROR_H_INCLUDED

#include "breaker.h"

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_breaker_mirror_t keel_breaker_mirror_t;

//  Create a mirror sending as `sender`, reporting to the breaker actor at
//  `endpoint` (service name `service`, e.g. "breaker") and following its
//  events at `events` (either may be NULL: local breakers only). New local
//  breakers use `config` (copied; NULL = defaults). Caller owns it. Returns
//  NULL on bad arguments or out of memory.
keel_breaker_mirror_t *
keel_breaker_mirror_new (const char *sender, const char *endpoint,
                         const char *service, const char *events,
                         const keel_breaker_config_t *config);

//  Destroy; flushes pending reports (one-way, best effort). Nulls *self_p.
void keel_breaker_mirror_destroy (keel_breaker_mirror_t **self_p);

//  Drive the mirror from `loop`: events, the snapshot reply, and a flush
//  timer (reports leave within `flush_ms`, default 10). Returns 0 or -1.
int keel_breaker_mirror_attach (keel_breaker_mirror_t *self, zloop_t *loop);

//  May a call to `key` go ahead now? true: make the call, then record it.
//  false: do not; *retry_after_us (if not NULL) says for how long.
bool keel_breaker_mirror_acquire (keel_breaker_mirror_t *self, const char *key,
                                  uint64_t *retry_after_us);

//  Record a permitted call's outcome: into the local breaker, and into the
//  next report batch.
void keel_breaker_mirror_record (keel_breaker_mirror_t *self, const char *key,
                                 keel_outcome_t outcome, uint64_t duration_us);

//  The local breaker's state for `key` (CLOSED if unknown).
keel_breaker_state_t keel_breaker_mirror_state (keel_breaker_mirror_t *self,
                                                const char *key);

//  Send the pending batch now. Returns the number of reports sent.
size_t keel_breaker_mirror_flush (keel_breaker_mirror_t *self);

//  Hear every state the mirror takes over from the actor (an event or a
//  snapshot entry), after it was applied. NULL = none.
typedef void (keel_breaker_mirror_fn) (const char *key,
                                       keel_breaker_state_t state, void *arg);
void keel_breaker_mirror_set_listener (keel_breaker_mirror_t *self,
                                       keel_breaker_mirror_fn *fn, void *arg);

//  Counters: transitions applied from events, reports sent, reports lost
//  (send refused), snapshots applied.
typedef struct {
    uint64_t applied, reported, lost, snapshots;
} keel_breaker_mirror_stats_t;
const keel_breaker_mirror_stats_t *
keel_breaker_mirror_stats (keel_breaker_mirror_t *self);

#ifdef __cplusplus
}
#endif

#endif
