/*  keel_node.h - the node runtime: runs the actors a config lists, gives
    them a directory of names, and opens the node's two doors.

        clients, CLI, other languages
              |  requests (envelope.service = actor name)     events
              v                                                 ^
        [front door ROUTER] --forward--> actor A (inproc)       |
         node.info, keel.ping            actor B (inproc) --> [XSUB|XPUB proxy]

    Front door: one endpoint per node (the `bus` key, e.g.
    tcp://127.0.0.1:7700; always also inproc://keel/NODE/bus). A request
    whose envelope.service names a local actor is relayed to it and its reply
    relayed back, deadline and trace id kept. Requests with no service, or
    service = the node name, are for the node itself: "node.info" (payload
    keel.NodeInfo), "keel.ping", "keel.stats" (the front door's counters,
    then security_refused_key and security_refused_handshake: handshakes
    the process's CURVE servers refused).

    Events: every local actor's events are proxied onto the node's events
    endpoint (the `events` key; always also inproc://keel/NODE/events).

    Actors inside one node reach each other over inproc; actors elsewhere
    through the `directory` section of the config. No actor code knows which
    transport it is on.

    Config (ZPL), every key:

        node
            name = dev                     node name (default "keel")
            bus = tcp://127.0.0.1:7700     front door (optional)
            events = tcp://127.0.0.1:7701  event endpoint (optional)
            max_message_size = 1M          frame limit on every socket
            actors                         actors this node runs
                echo
        echo                               one section per actor: its keys
            bind = tcp://127.0.0.1:7710    extra endpoint for this actor
        directory                          names that live elsewhere
            registry = tcp://10.0.0.2:7700
        security                           CURVE on tcp (keel_security.h)
            certificate = /etc/keel/n1.cert
            allow = /etc/keel/peers

    With a security section the node sets the process's security context
    before any actor starts (and clears it when it stops), and names its
    tcp doors in node.info with its key (tcp://HOST:PORT;curve=KEY).
    RELOAD also makes zauth read the allow directory again.
*/
#ifndef KEEL_NODE_H_INCLUDED
#define KEEL_NODE_H_INCLUDED

#include "keel_config.h"
#include "keel_directory.h"
#include "keel_events.h"
#include "keel_server.h"

#ifdef __cplusplus
extern "C" {
#endif

//  What an actor function receives as its `args` (borrowed; valid for the
//  actor's whole life).
typedef struct {
    const char *name;            //  actor name: its service and server name
    const char *node;            //  node name
    const char *endpoint;        //  inproc endpoint to bind for requests
    const char *events;          //  inproc endpoint to bind for events
    const char *bind;            //  extra endpoint from config, or NULL
    keel_config_t *config;       //  the node's config (read only)
    keel_directory_t *directory; //  where every name lives (read only)
    size_t max_msg_size;         //  frame limit for its sockets
} keel_actor_args_t;

//  An actor the node knows how to start: a zactor function taking a
//  keel_actor_args_t. The CLI hands the node a table of these, ending with
//  a {NULL} entry.
typedef struct {
    const char *name;    //  name used in config and directory
    zactor_fn *fn;       //  the actor
    const char *summary; //  one line for help output
} keel_actor_def_t;

//  Every actor's start-up handshake, after zactor_new returned: call
//  keel_actor_ready once the actor has bound its sockets, with NULL, or with
//  the reason it cannot start (then return from the actor function).
//  It sends zsock_signal (the one zactor_new waits for) and a status string.
void keel_actor_ready (zsock_t *pipe, const char *error);

//  Bind an actor's doors as the node gave them: `server` (after setting its
//  frame limit) on args->endpoint and on args->bind when set, and
//  `publisher` (may be NULL) on args->events. Returns 0, or -1 if a bind
//  failed.
int keel_actor_bind (const keel_actor_args_t *args, keel_server_t *server,
                     keel_publisher_t *publisher);

//  A zloop reader for an actor's pipe: returns -1 (ending zloop_start) on
//  "$TERM" or when the pipe fails, and ignores any other command. Register
//  with zloop_reader (loop, pipe, keel_actor_on_pipe, NULL).
int keel_actor_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg);

//  Read an actor's start-up status after zactor_new. Returns NULL if it
//  started, or the reason it did not (caller frees).
char *keel_actor_status (zactor_t *actor);

//  What the node actor receives as args (borrowed for its whole life).
typedef struct {
    keel_config_t *config;        //  node config
    const keel_actor_def_t *defs; //  actors it may run, {NULL}-terminated
} keel_node_args_t;

//  The node itself, as a zactor:
//      zactor_t *node = zactor_new (keel_node_actor, &args);
//      char *error = keel_actor_status (node);  // NULL = running
//  It stops every actor and closes every socket on $TERM (zactor_destroy).
//  It ignores SIGINT itself: the owner decides when to stop it.
void keel_node_actor (zsock_t *pipe, void *args);

//  The built-in config of `keel node --dev`: every actor in `defs`, front
//  door `bus`, events `events`. Caller frees.
char *keel_node_dev_config (const keel_actor_def_t *defs, const char *bus,
                            const char *events);

//  The inproc endpoints the node gives actor `name` on node `node`, and the
//  node's own. Caller frees.
char *keel_node_actor_endpoint (const char *node, const char *name);
char *keel_node_actor_events (const char *node, const char *name);
char *keel_node_bus_endpoint (const char *node);
char *keel_node_events_endpoint (const char *node);

#ifdef __cplusplus
}
#endif

#endif
