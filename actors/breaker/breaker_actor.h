/*  breaker_actor.h - the cluster-wide circuit breaker actor.

    Callers report call outcomes in batches, fire and forget
    ("breaker.report", keel.ReportBatch, one-way); the actor runs one
    breaker per key over every caller's reports and publishes each state
    change ("breaker.transition", keel.BreakerTransition). Every process that
    calls upstreams keeps a local mirror (breaker_mirror.h) that follows
    those events and decides locally, without a round trip; if the actor is
    unreachable the mirrors' own breakers keep deciding.

    A reported call counts as a permitted call of the central breaker when
    that breaker would have permitted it (so an OPEN breaker whose wait is
    over takes the first reports as its half-open trials); reports of calls
    it would have refused only count in its totals.

    Requests: "breaker.control" (ControlRequest -> BreakerInfo),
    "breaker.get" (BreakerKey -> BreakerInfo), "breaker.list" (-> BreakerList,
    with the event sequence it is current to).

    Config section `breaker` (all optional; applies to every key):
        breaker
            window = count            count | time
            window_size = 100         calls, or seconds for a time window
            minimum_calls = 100
            failure_threshold = 50    percent
            slow_threshold = 100      percent
            slow_call = 60s
            open_wait = 60s
            open_wait_multiplier = 1  growth per consecutive open (>= 1)
            open_wait_max = 60s
            half_open_calls = 10
            max_half_open = 0         0 = wait for every trial call
*/
#ifndef KEEL_BREAKER_ACTOR_H_INCLUDED
#define KEEL_BREAKER_ACTOR_H_INCLUDED

#include "breaker.h"

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The actor; args is a keel_actor_args_t (see keel_node.h).
void keel_breaker_actor (zsock_t *pipe, void *args);

//  Read the breaker settings under config path `section` ("breaker") into
//  `config`, starting from the defaults. Returns 0, or -1 with
//  keel_config_error set. (Shared by the actor and the mirror's users.)
typedef struct _keel_config_t keel_config_t;
int keel_breaker_config_load (keel_config_t *config, const char *section,
                              keel_breaker_config_t *out);

#ifdef __cplusplus
}
#endif

#endif
