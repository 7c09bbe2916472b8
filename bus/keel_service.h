/*  keel_service.h - the service SDK: how a user writes a participant service
    in C.

    A service binds its endpoint, dispatches requests by method name
    ("orders.create") to handler callbacks, and replies. When a registry is
    configured it registers itself, heartbeats, and registers again by
    itself whenever the registry answers a heartbeat with NOT_FOUND (the
    registry restarted or expired it). Requests that carry an idempotency key
    are deduplicated: the first reply is remembered (bounded memory, see
    keel_dedupe) and replayed to every later copy, so a command delivered
    more than once has its effect once.

        keel_service_t *svc = keel_service_new ("orders", "orders-1");
        keel_service_on (svc, "orders.create", s_create, &state);
        keel_service_bind (svc, "tcp://127.0.0.1:7710");
        keel_service_set_registry (svc, "tcp://10.0.0.2:7700", 1000);
        keel_service_run (svc);            //  until SIGINT/SIGTERM

    Inside an actor, attach it to the actor's zloop instead of running it.
    Thread: a service belongs to the thread that created it.
*/
#ifndef KEEL_SERVICE_H_INCLUDED
#define KEEL_SERVICE_H_INCLUDED

#include "keel_server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_service_t keel_service_t;

//  Counters of the SDK itself (the server's are in keel_service_server).
typedef struct {
    uint64_t registrations;      //  register requests sent
    uint64_t registered;         //  register requests acknowledged
    uint64_t heartbeats;         //  heartbeats sent
    uint64_t heartbeat_failures; //  heartbeats that got no OK answer
    uint64_t dedupe_hits;        //  requests answered from the dedupe
} keel_service_stats_t;

//  Create a service instance `instance_id` of service `service`. Caller
//  owns it. Returns NULL on empty names or out of memory.
keel_service_t *keel_service_new (const char *service, const char *instance_id);

//  Destroy; deregisters (best effort, one-way) when registered. Nulls
//  *self_p.
void keel_service_destroy (keel_service_t **self_p);

//  Bind an endpoint; may be called several times. The first tcp endpoint
//  bound (resolved) is what the service advertises unless
//  keel_service_set_advertise says otherwise; with no tcp endpoint, the
//  first endpoint bound. A tcp endpoint is advertised with this process's
//  CURVE key when CURVE is required (keel_security_advertise). Returns the
//  tcp port, 0, or -1.
int keel_service_bind (keel_service_t *self, const char *endpoint);

//  The endpoint registered with the registry (e.g. the address other hosts
//  reach when bound to tcp://*:PORT). Copied; a tcp endpoint without a key
//  gets this process's CURVE key when CURVE is required.
void keel_service_set_advertise (keel_service_t *self, const char *endpoint);

//  The advertised endpoint. Borrowed; NULL before bind.
const char *keel_service_endpoint (keel_service_t *self);

//  Handle requests of `method` ("service.verb"). Returns 0, or -1 on an
//  invalid method name.
int keel_service_on (keel_service_t *self, const char *method,
                     keel_handler_fn *fn, void *arg);

//  Add a tag / metadata pair advertised at registration (copied).
void keel_service_add_tag (keel_service_t *self, const char *tag);
void keel_service_set_meta (keel_service_t *self, const char *key,
                            const char *value);

//  Load-balancing weight advertised at registration (default 1).
void keel_service_set_weight (keel_service_t *self, uint32_t weight);

//  Register with the registry at `endpoint` and heartbeat every
//  `heartbeat_ms` (0 = 1000); the registry marks the instance critical when
//  no heartbeat came for 2.9 intervals (its TTL check), so a dead instance
//  leaves healthy discovery within 3 intervals. Takes effect when the service
//  is attached or run. Returns 0, or -1 on an invalid endpoint.
int keel_service_set_registry (keel_service_t *self, const char *endpoint,
                               uint32_t heartbeat_ms);

//  Bound the dedupe memory: entries, bytes, and how long a reply is kept
//  (defaults 10000 entries, 16 MiB, 10 minutes). Returns 0 or -1.
int keel_service_set_dedupe (keel_service_t *self, size_t capacity,
                             size_t max_bytes, int64_t ttl_ms);

//  Let a zloop drive the service: its socket, heartbeat timer and registry
//  client. Registration starts now. Returns 0 or -1.
int keel_service_attach (keel_service_t *self, zloop_t *loop);

//  Run the service in this thread until SIGINT/SIGTERM (zsys_interrupted)
//  or until a handler calls keel_service_stop. Returns 0, or -1 on failure.
int keel_service_run (keel_service_t *self);

//  Make keel_service_run return after the current message.
void keel_service_stop (keel_service_t *self);

//  The server underneath (its counters, keel_server_reply...). Borrowed.
keel_server_t *keel_service_server (keel_service_t *self);

//  True once the registry acknowledged the current registration.
bool keel_service_registered (keel_service_t *self);

//  Counters. Borrowed; updated in place.
const keel_service_stats_t *keel_service_stats (keel_service_t *self);

#ifdef __cplusplus
}
#endif

#endif
