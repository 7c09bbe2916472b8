/*  users_actor.h - the users demo service: a REST resource served over the
    bus, written with the service SDK (bus/keel_service.h). Behind a gateway
    route with target bus:users, it is what `keel node --dev` answers on
    http://127.0.0.1:8080/users.

        curl --> gateway --"users.http" (keel.HttpRequest)--> users actor
             <--        <-- keel.HttpResponse (JSON) -------  (in memory)

    The service is named after the actor ("users" in the node's actor
    table) and answers one method, "<name>.http": keel.HttpRequest in,
    keel.HttpResponse out (schemas/gateway.proto), the request being what
    the gateway forwards for a bus: route. The users live in memory
    (users_store.h: three seed users, Ada, Alan and Grace, ids 1..3):

        GET    /users         200 {"users":[{"id":"1","name":"Ada Lovelace",
                                             "email":"ada@example.com"},...]}
        GET    /users/{id}    200 the user; 404 unknown
        POST   /users         body {"name":"...","email":"..."}: 201 the new
                              user, Location /users/{id}; 400 bad JSON or a
                              field missing
        DELETE /users/{id}    204; 404 unknown
    A template route (/users/{id}) passes the id in HttpRequest.params;
    without one, the path's last segment is the id. Bodies are JSON
    (Content-Type application/json); errors read {"error":"not_found",
    "message":"no user 9","status":404,"request_id":"..."}.

    Every response carries "X-Users-Instance: <instance id>", and
    "X-Served-For: <subject>" when the gateway authenticated the caller
    (HttpRequest.subject not empty), so a caller sees which instance
    answered whom.

    Config section `users` (all optional):
        users
            bind = tcp://127.0.0.1:7730    extra endpoint (another process
                                           can then reach the service)
            instance = users-1             instance id (default NODE-users)
    When the directory names a `registry`, the instance registers there
    (and heartbeats; the SDK does both), which is how the gateway finds it.
*/
#ifndef KEEL_USERS_ACTOR_H_INCLUDED
#define KEEL_USERS_ACTOR_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The actor; args is a keel_actor_args_t (see keel_node.h).
void keel_users_actor (zsock_t *pipe, void *args);

#ifdef __cplusplus
}
#endif

#endif
