/*  web_actor.h - the web demo service: a plain HTTP/1.1 service (not a bus
    service) that registers itself in the registry, so the gateway can
    route to it with a target http:web. It shows the other way into keel:
    any HTTP server that registers an http:// endpoint with an HTTP health
    check joins the cluster; the registry probes it, the gateway balances
    over its instances and proxies to them over keep-alive connections.

        curl --> gateway --http:web (pooled, X-Forwarded-For added)--> web
                                                                        ^
        registry --GET /health every second (its prober)-----------------'

    Pages (web_pages.h), JSON bodies:
        GET /health          200 {"status":"ok"}
        GET /products        200 {"products":[...],"instance":"dev-web",
                                  "request_id":...,"forwarded_for":...}
                             (the X-Request-Id and X-Forwarded-For it got,
                             null when absent: compare a request through
                             the gateway with one sent directly)
        GET /products/{id}   200 one product (apple, pear, widget); 404
        anything else        404 {"error":"not_found",...}
    Every response carries "X-Web-Instance: <instance id>".

    It runs on the gateway's own HTTP core: an epoll loop (evloop.h) that
    the actor's zloop polls, and its HTTP/1.1 server (http_server.h:
    keep-alive, pipelining, limits, timeouts). Its logs are quiet: it
    writes nothing per request, and about the registry only when the
    registry refuses the registration.

    Registration: at start it sends "registry.register" (to the directory
    name `web/registry`) for instance `web/instance` of service
    `web/service`, endpoint http://HOST:PORT (the port actually bound; a
    wildcard host is advertised as the loopback), with an HTTP check on
    /health every 1000 ms that is removed after 10 s critical. It retries
    every second until acknowledged, then asks every 5 s whether the
    registry still knows the instance ("registry.get") and registers again
    if not (a restarted registry, or an instance removed while critical).
    There are no heartbeats: the registry's own HTTP check judges it. On
    stop it deregisters (best effort: one-way; the check and its removal
    cover a lost goodbye).

    The actor also binds its bus endpoint with no methods but the server's
    own "keel.ping" and "keel.stats", so `keel ping web` answers.

    Config section `web` (all optional):
        web
            listen = 127.0.0.1:8081     HOST:PORT to listen on (port 0: any)
            service = web               registry service name
            instance = web-1            instance id (default NODE-web)
            registry = registry         directory name of the registry
                                        ("" = do not register)
            bind = tcp://127.0.0.1:7740 extra bus endpoint (keel.ping)
*/
#ifndef KEEL_WEB_ACTOR_H_INCLUDED
#define KEEL_WEB_ACTOR_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The actor; args is a keel_actor_args_t (see keel_node.h).
void keel_web_actor (zsock_t *pipe, void *args);

#ifdef __cplusplus
}
#endif

#endif
