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
        registry.digest      DigestRequest     -> DigestReply (replication)
        registry.fetch       FetchRequest      -> InstanceList (replication)
        keel.stats           (empty)           -> Stats: the server's
                                                  counters, then the
                                                  registry's own
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
            anti_entropy = 500ms      digest round period per peer
            replica_lease = 3s        replicas not confirmed this long are
                                      removed (>= 2 x anti_entropy)
            warmup = 1s               after a start, registry.discover
                                      answers wait at most this long for
                                      each peer's first digest round
                                      (default 2 x anti_entropy; 0 = no)
            peer                      repeated: another node's registry
                name = b              that node's name (the origin it owns)
                endpoint = tcp://...  its node front door
                events = tcp://...    its node events endpoint (optional)

    Replication (see README, "Replication"): what is registered here is
    owned here (origin = this node's name); peers' instances are held as
    replicas, pushed from their events and repaired by digests; a peer not
    heard from for replica_lease loses its replicas here. A deregister of
    a replica is passed on to its owner (never twice) and answered with
    the owner's answer.
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
