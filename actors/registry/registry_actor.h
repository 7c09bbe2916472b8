/*  registry_actor.h - the service registry as a keel actor.

    Requests (payloads in schemas/registry.proto):
        registry.register    RegisterRequest   -> IndexReply
        registry.heartbeat   HeartbeatRequest  -> empty (NOT_FOUND: register
                                                  again)
        registry.deregister  DeregisterRequest -> IndexReply
        registry.get         GetRequest        -> Instance
        registry.list        ListRequest       -> InstanceList
        registry.discover    DiscoverRequest   -> InstanceList
        registry.snapshot    (empty)           -> InstanceList (all, index)
    Events (payload RegistryEvent; envelope.sequence == event index):
        registry.registered, registry.updated, registry.deregistered,
        registry.health

    Health checks: TTL (heartbeats), and one active check per instance that
    the registry runs itself, by precedence: http_path (GET, 2xx passes),
    tcp_connect (TCP connect), bus_ping ("keel.ping" over the bus).

    Config section `registry` (all optional):
        registry
            protect_threshold = 0.5   healthy fraction below which discovery
                                      returns every instance (default off)
            max_instances = 1000000
*/
#ifndef KEEL_REGISTRY_ACTOR_H_INCLUDED
#define KEEL_REGISTRY_ACTOR_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The actor; args is a keel_actor_args_t (see keel_node.h).
void keel_registry_actor (zsock_t *pipe, void *args);

#ifdef __cplusplus
}
#endif

#endif
