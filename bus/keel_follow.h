/*  keel_follow.h - follow services in the registry: the healthy instances
    of each service a caller watches, kept current by the registry's watch
    events (one "registry.discover" per service, then events; a missed event
    makes it discover again). For callers that pick an instance per call
    (the saga coordinator).

        keel_follow_t *follow = keel_follow_new ("saga", reg_ep, reg_events);
        keel_follow_attach (follow, loop);
        keel_follow_watch (follow, "payments");
        ...
        const Keel__Instance *const *list;
        size_t n = keel_follow_instances (follow, "payments", &list);

    Healthy means passing or warning, as registry discovery says.
    Thread: a follower belongs to the thread that drives its zloop.
*/
#ifndef KEEL_FOLLOW_H_INCLUDED
#define KEEL_FOLLOW_H_INCLUDED

#include "registry.pb-c.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_follow_t keel_follow_t;

//  Create a follower sending as `sender` to the registry at `endpoint`
//  (its request endpoint; service name "registry") and listening to its
//  events at `events` (NULL: no events, discover only). Returns NULL on a
//  bad endpoint or out of memory. Caller owns it.
keel_follow_t *keel_follow_new (const char *sender, const char *endpoint,
                                const char *events);

//  Destroy; nulls *self_p. Detaches from its loop.
void keel_follow_destroy (keel_follow_t **self_p);

//  Drive it from `loop` (events, discover replies, retries every second
//  while the registry does not answer). Returns 0 or -1.
int keel_follow_attach (keel_follow_t *self, zloop_t *loop);

//  Start following `service` (discovers it now). Following a service twice
//  is harmless. Returns 0, or -1 if out of memory.
int keel_follow_watch (keel_follow_t *self, const char *service);

//  The healthy instances of `service` known now, in the registry's order
//  (by id); *instances_p (if not NULL) gets a borrowed array valid until
//  the loop runs again. 0 for a service not followed or not discovered yet.
size_t keel_follow_instances (keel_follow_t *self, const char *service,
                              const Keel__Instance *const **instances_p);

//  Discover `service` again now, unless it was (or is being) discovered in
//  the last `min_interval_ms`: for a caller that found no instance, in case
//  a registration's event was missed (a subscriber misses what is
//  published before its subscription reaches the publisher). Returns 0, or
//  -1 if the service is not followed.
int keel_follow_refresh (keel_follow_t *self, const char *service,
                         int64_t min_interval_ms);

//  Has `service` been discovered at least once?
bool keel_follow_ready (keel_follow_t *self, const char *service);

#ifdef __cplusplus
}
#endif

#endif
