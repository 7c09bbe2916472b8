/*  keel_follow.h - follow services in the registry: the healthy instances
    of each service a caller watches, kept current by the registry's watch
    events (one "registry.discover" per service, then events; a missed event
    makes it discover again). For callers that pick an instance per call
    (the saga coordinator), and for callers that keep their own view of the
    instances and are told of each change (the gateway's balancers:
    keel_follow_on_change).

        keel_follow_t *follow =
            keel_follow_new ("saga", reg_ep, "registry", reg_events);
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

//  What changed in a followed service's instances.
typedef enum {
    KEEL_FOLLOW_RESET,  //  a discover answer replaced them all: read them
                        //  with keel_follow_instances; `instance` is NULL
    KEEL_FOLLOW_UPSERT, //  `instance` joined, or changed (endpoint,
                        //  weight, tags, health: still healthy)
    KEEL_FOLLOW_REMOVE, //  `instance` left: deregistered, or no longer
                        //  healthy (it may not have been known)
} keel_follow_change_t;

//  Told of one change to `service`, after the follower applied it (so
//  keel_follow_instances already shows it). `instance` is borrowed for the
//  call. It may call any keel_follow function but keel_follow_destroy.
//  Returns 0, or -1 when it could not apply the change (out of memory, an
//  instance it refuses): the follower then discovers the service again in
//  a second, and tells it RESET.
typedef int (keel_follow_fn) (keel_follow_t *follow, const char *service,
                              keel_follow_change_t change,
                              const Keel__Instance *instance, void *arg);

//  Create a follower sending as `sender` to the registry at `endpoint`
//  (its request endpoint), addressing its requests to the service
//  `registry` (the registry actor's name; NULL = "registry"), and
//  listening to its events at `events` (NULL: no events, discover only).
//  Returns NULL on a bad endpoint or out of memory. Caller owns it.
keel_follow_t *keel_follow_new (const char *sender, const char *endpoint,
                                const char *registry, const char *events);

//  Destroy; nulls *self_p. Detaches from its loop.
void keel_follow_destroy (keel_follow_t **self_p);

//  Call `fn` with `arg` for each change to a followed service (NULL: no
//  calls), from the loop (never from inside another keel_follow call).
void keel_follow_on_change (keel_follow_t *self, keel_follow_fn *fn, void *arg);

//  Keep a discover answer whole instead of only its healthy instances.
//  They differ when the registry's protect threshold trips (too few
//  healthy instances: discovery returns them all, so the load spreads
//  rather than crushes the healthy few). Events still remove an instance
//  that turns unhealthy. Default false.
void keel_follow_set_keep_discovered (keel_follow_t *self, bool keep);

//  Largest frame sent to or accepted from the registry, events included
//  (0 = no limit). Default KEEL_DEFAULT_MAX_MSG_SIZE.
void keel_follow_set_max_msg_size (keel_follow_t *self, size_t max_size);

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
