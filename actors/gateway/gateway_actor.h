/*  gateway_actor.h - the API gateway as a keel actor: HTTP in, bus
    services and HTTP services out.

        HTTP client --> [listener] --> route --> auth --> breaker --> balancer
                                                             |
                        bus:SVC   "SVC.http" HttpRequest <---+---> http:SVC
                                  over a DEALER per instance       keep-alive
                                                                   pool per
                                                                   instance
    Instances come from the registry (discover once per service, then its
    watch events; a missed event means discover again). Every upstream call
    goes through two breakers of the gateway's breaker mirror: one per
    service ("bus:users") and one per instance ("bus:users/INSTANCE"),
    reported to the breaker actor when the directory names one.

    Config (section named after the actor, "gateway"):

        gateway
            listen = 127.0.0.1:8080     HTTP address ("HOST:PORT", port 0 =
                                        any free port)
            bind = tcp://...            extra bus endpoint (as every actor)
            max_connections = 10000     client connections; beyond: 503
            header_timeout = 10s        request not complete by then: 408
            idle_timeout = 60s          idle keep-alive connections closed
            max_body = 1M               request body; beyond: 413
            max_url = 8K                request target; beyond: 414
            max_headers = 32K           header bytes; beyond: 431
            max_header_count = 100      header lines; beyond: 431
            access_log = -              a line per request: "-" = stdout,
                                        or a file (appended; reopened on
                                        reload); absent = none
            registry = registry         directory name of the registry
            breaker = breaker           directory name of the breaker actor;
                                        "" = local breakers only
            health_path = /healthz      served by the gateway ("" = off)
            metrics_path = /metrics     Prometheus text ("" = off)
            upstream                    HTTP upstream pools, per instance:
                max_connections = 64
                max_idle = 32
                idle_timeout = 30s
                connect_timeout = 2s
                max_response_body = 8M
            circuit                     breaker settings, keys as in the
                                        breaker actor's section
            auth                        keys and API keys: see jwt.h
                                        (API keys come in X-API-Key)
            route                       repeated: see routes.h

    Requests (bus, payloads in schemas/gateway.proto):
        gateway.routes    (empty) -> RouteList
        gateway.reload    (empty) -> RouteList, or INVALID_ARGUMENT with
                          "FILE:LINE: ..." (the routes in use are kept)
    Pipe commands: "RELOAD" (as gateway.reload; `keel node` sends it on
    SIGHUP), "$TERM".

    Reload swaps the route table and the auth keys; requests in flight
    finish on the table they started with.
*/
#ifndef KEEL_GATEWAY_ACTOR_H_INCLUDED
#define KEEL_GATEWAY_ACTOR_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The actor function; args is a keel_actor_args_t (see keel_node.h).
void keel_gateway_actor (zsock_t *pipe, void *args);

#ifdef __cplusplus
}
#endif

#endif
