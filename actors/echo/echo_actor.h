/*  echo_actor.h - the echo demo service, written with the service SDK.

    "echo.say" (keel.EchoRequest) answers keel.EchoReply with the same text,
    the instance id and how many requests this instance has answered; with
    `fail` set it answers INTERNAL instead. Every answer is also published
    as an "echo.said" event (payload keel.EchoReply), so the event path can
    be watched end to end (`keel watch echo.`).

    "echo.http" (keel.HttpRequest, what the gateway sends for a bus:echo
    route) answers keel.HttpResponse: 200 with a JSON description of the
    request as the service got it (method, path, query, route, params,
    headers, remote_addr, request_id, subject, scopes, body, instance,
    count). `?status=NNN` (200..599) picks the status; `?fail=1` answers
    the bus error INTERNAL instead (the gateway turns it into a 502).

    Config section `echo` (all optional):
        echo
            bind = tcp://127.0.0.1:7710    extra endpoint
            instance = echo-1              instance id (default NODE-echo)
    When the directory names a `registry`, the instance registers there.
*/
#ifndef KEEL_ECHO_ACTOR_H_INCLUDED
#define KEEL_ECHO_ACTOR_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The actor; args is a keel_actor_args_t (see keel_node.h).
void keel_echo_actor (zsock_t *pipe, void *args);

#ifdef __cplusplus
}
#endif

#endif
