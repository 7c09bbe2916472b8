/*  keel_node.c - the node runtime. See keel_node.h. */
#include "keel_node.h"
#include "keel_security.h"
#include "keel_server.h"
#include "node.pb-c.h"

#include <string.h>

typedef struct {
    const keel_actor_def_t *def; //  what it is
    keel_actor_args_t args;      //  what it was given
    char *endpoint;              //  its inproc request endpoint
    char *events;                //  its inproc event endpoint
    zactor_t *actor;             //  the running actor
    zsock_t *relay;              //  DEALER: the front door's line to it
} s_actor_t;

typedef struct _self_t self_t;

struct _self_t {
    zsock_t *pipe;                //  to the owner
    keel_config_t *config;        //  node config (borrowed)
    const keel_actor_def_t *defs; //  actors we may run (borrowed)
    const char *name;             //  node name (in config)
    const char *bus;              //  configured front door, or NULL
    const char *events;           //  configured event endpoint, or NULL
    int64_t max_msg_size;         //  frame limit
    keel_directory_t *directory;  //  names -> endpoints
    zlistx_t *actors;             //  s_actor_t, in start order
    keel_server_t *front;         //  front door
    char *bus_bound;              //  front door tcp endpoint, resolved
    zsock_t *xsub;                //  event proxy, actor side
    zsock_t *xpub;                //  event proxy, subscriber side
    char *events_bound;           //  event endpoint, resolved
    zloop_t *loop;                //  everything runs here
    int64_t started_ms;           //  for uptime
    bool secured;                 //  we set the security context
};

// ---------------------------------------------------------------------------

char *
keel_node_actor_endpoint (const char *node, const char *name)
{
    return zsys_sprintf ("inproc://keel/%s/%s", node, name);
}

char *
keel_node_actor_events (const char *node, const char *name)
{
    return zsys_sprintf ("inproc://keel/%s/%s/events", node, name);
}

char *
keel_node_bus_endpoint (const char *node)
{
    return zsys_sprintf ("inproc://keel/%s/bus", node);
}

char *
keel_node_events_endpoint (const char *node)
{
    return zsys_sprintf ("inproc://keel/%s/events", node);
}

void
keel_actor_ready (zsock_t *pipe, const char *error)
{
    zsock_signal (pipe, 0);
    zstr_send (pipe, error ? error : "");
}

char *
keel_actor_status (zactor_t *actor)
{
    char *status = zstr_recv (actor);
    if (!status)
        return strdup ("actor stopped before reporting its status");
    if (!*status) {
        zstr_free (&status);
        return NULL;
    }
    return status;
}

char *
keel_node_dev_config (const keel_actor_def_t *defs, const char *bus,
                      const char *events)
{
    char *text = zsys_sprintf ("node\n    name = dev\n    bus = \"%s\"\n"
                               "    events = \"%s\"\n    actors\n",
                               bus, events);
    for (const keel_actor_def_t *def = defs; text && def->name; def++) {
        char *more = zsys_sprintf ("%s        %s\n", text, def->name);
        zstr_free (&text);
        text = more;
    }
    return text;
}

// ---------------------------------------------------------------------------
//  Relaying requests to local actors: a broker. The request goes on as it
//  came (routing frames and envelope bytes) over a DEALER to the actor; the
//  actor's ROUTER answers along the same route, and the reply goes back out
//  of the front door untouched. The caller's own deadline covers an actor
//  that never answers.

static s_actor_t *
s_find_actor (self_t *self, const char *name)
{
    for (s_actor_t *actor = (s_actor_t *)zlistx_first (self->actors); actor;
         actor = (s_actor_t *)zlistx_next (self->actors))
        if (streq (actor->def->name, name))
            return actor;
    return NULL;
}

static int
s_forward (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    const Keel__Envelope *env = keel_request_envelope (request);
    s_actor_t *actor = s_find_actor (self, env->service);
    if (!actor) {
        keel_server_reply_error (server, request, KEEL_ERR_UNKNOWN_SERVICE,
                                 "node %s runs no actor '%s'", self->name,
                                 env->service);
        return KEEL_OK;
    }
    if (keel_server_relay (server, request, zsock_resolve (actor->relay)) == -1)
        keel_server_reply_error (server, request, KEEL_ERR_UNAVAILABLE,
                                 "actor %s is not accepting requests",
                                 env->service);
    return KEEL_OK;
}

static int
s_on_relay (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    self_t *self = (self_t *)arg;
    //  Bounded, so one busy actor cannot starve the rest of the loop.
    for (int i = 0; i < 100; i++) {
        int rc = keel_server_relay_back (self->front, zsock_resolve (sock));
        if (rc == -1)
            return -1;
        if (rc == 0)
            break;
    }
    return 0;
}

static int
s_node_info (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    size_t count = zlistx_size (self->actors);
    Keel__ActorInfo *infos =
        (Keel__ActorInfo *)calloc (count + 1, sizeof (*infos));
    Keel__ActorInfo **pointers =
        (Keel__ActorInfo **)calloc (count + 1, sizeof (*pointers));
    if (!infos || !pointers) {
        free (infos);
        free (pointers);
        return KEEL_ERR_INTERNAL;
    }
    size_t i = 0;
    for (s_actor_t *actor = (s_actor_t *)zlistx_first (self->actors); actor;
         actor = (s_actor_t *)zlistx_next (self->actors), i++) {
        keel__actor_info__init (&infos[i]);
        infos[i].name = (char *)actor->def->name;
        infos[i].endpoint = actor->endpoint;
        infos[i].events = actor->events;
        pointers[i] = &infos[i];
    }
    Keel__NodeInfo info = KEEL__NODE_INFO__INIT;
    info.name = (char *)self->name;
    info.bus = self->bus_bound ? self->bus_bound : "";
    info.events = self->events_bound ? self->events_bound : "";
    info.n_actors = count;
    info.actors = pointers;
    info.uptime_ms = (uint64_t)(keel_now_ms () - self->started_ms);
    keel_server_reply (server, request, &info.base);
    free (infos);
    free (pointers);
    return KEEL_OK;
}

// ---------------------------------------------------------------------------
//  Event proxy: data flows XSUB -> XPUB, subscriptions XPUB -> XSUB.

static int
s_pass (zsock_t *from, zsock_t *to)
{
    void *in = zsock_resolve (from), *out = zsock_resolve (to);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    for (int i = 0; i < 1000; i++) {
        if (zmq_msg_recv (&msg, in, ZMQ_DONTWAIT) == -1)
            break;
        bool more;
        do {
            more = zmq_msg_more (&msg);
            zmq_msg_send (&msg, out, more ? ZMQ_SNDMORE : 0);
            if (more && zmq_msg_recv (&msg, in, 0) == -1)
                break;
        } while (more);
    }
    zmq_msg_close (&msg);
    return 0;
}

static int
s_on_events (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    self_t *self = (self_t *)arg;
    return sock == self->xsub ? s_pass (self->xsub, self->xpub)
                              : s_pass (self->xpub, self->xsub);
}

int
keel_actor_bind (const keel_actor_args_t *args, keel_server_t *server,
                 keel_publisher_t *publisher)
{
    keel_server_set_max_msg_size (server, args->max_msg_size);
    if (keel_server_bind (server, args->endpoint) == -1 ||
        (args->bind && keel_server_bind (server, args->bind) == -1) ||
        (publisher && keel_publisher_bind (publisher, args->events) == -1))
        return -1;
    return 0;
}

int
keel_actor_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void)loop;
    (void)arg;
    char *command = zstr_recv (pipe);
    bool term = !command || streq (command, "$TERM");
    zstr_free (&command);
    return term ? -1 : 0;
}

//  The node's own pipe: "$TERM" stops it; "RELOAD" is passed to every
//  actor (those that reload their settings act on it, the rest ignore it).
static int
s_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void)loop;
    self_t *self = (self_t *)arg;
    char *command = zstr_recv (pipe);
    bool term = !command || streq (command, "$TERM");
    if (command && streq (command, "RELOAD")) {
        if (self->secured)
            keel_security_reload ();
        s_actor_t *actor = (s_actor_t *)zlistx_first (self->actors);
        for (; actor; actor = (s_actor_t *)zlistx_next (self->actors))
            if (actor->actor)
                zstr_send (actor->actor, "RELOAD");
    }
    zstr_free (&command);
    return term ? -1 : 0;
}

// ---------------------------------------------------------------------------
//  Start and stop

static void
s_actor_free (void **item)
{
    s_actor_t *actor = (s_actor_t *)*item;
    if (actor) {
        zsock_destroy (&actor->relay);
        zactor_destroy (&actor->actor);
        free (actor->endpoint);
        free (actor->events);
        free (actor);
        *item = NULL;
    }
}

static void
s_self_destroy (self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    //  Actors stop in reverse start order.
    if (self->actors)
        while (zlistx_size (self->actors)) {
            zlistx_last (self->actors);
            zlistx_delete (self->actors, zlistx_cursor (self->actors));
        }
    zlistx_destroy (&self->actors);
    zloop_destroy (&self->loop);
    keel_server_destroy (&self->front);
    zsock_destroy (&self->xsub);
    zsock_destroy (&self->xpub);
    keel_directory_destroy (&self->directory);
    if (self->secured)
        keel_security_reset ();
    free (self->bus_bound);
    free (self->events_bound);
    free (self);
    *self_p = NULL;
}

static const keel_actor_def_t *
s_find_def (self_t *self, const char *name)
{
    for (const keel_actor_def_t *def = self->defs; def->name; def++)
        if (streq (def->name, name))
            return def;
    return NULL;
}

//  Read and check the config. Returns 0 or -1 (error in the config).
static int
s_configure (self_t *self)
{
    keel_config_t *config = self->config;
    //  Top level: node, directory, and one section per known actor.
    const char *top[64];
    size_t n = 0;
    top[n++] = "node";
    top[n++] = "directory";
    top[n++] = "security";
    for (const keel_actor_def_t *def = self->defs; def->name && n < 62; def++)
        top[n++] = def->name;
    top[n] = NULL;
    static const char *node_keys[] = {
        "name", "bus", "events", "max_message_size", "actors", NULL};
    if (keel_config_check_keys (config, "", top) == -1 ||
        keel_config_check_keys (config, "node", node_keys) == -1 ||
        keel_config_string (config, "node/name", "keel", &self->name) == -1 ||
        keel_config_endpoint (config, "node/bus", NULL, &self->bus) == -1 ||
        keel_config_endpoint (config, "node/events", NULL, &self->events) ==
            -1 ||
        keel_config_size (config, "node/max_message_size",
                          KEEL_DEFAULT_MAX_MSG_SIZE, &self->max_msg_size) == -1)
        return -1;
    if (!keel_codec_type_ok (self->name) || strchr (self->name, '/'))
        return keel_config_fail (config, "node/name",
                                 "a node name is 1..128 of [A-Za-z0-9._-]");
    if (self->max_msg_size < 1024)
        return keel_config_fail (config, "node/max_message_size",
                                 "must be at least 1K");
    //  Before any socket exists: every tcp socket reads it.
    int secured = keel_security_configure (config, NULL);
    if (secured == -1)
        return -1;
    self->secured = secured == 1;
    self->directory = keel_directory_new ();
    if (!self->directory ||
        keel_directory_load (self->directory, config, "directory") == -1)
        return -1;
    zconfig_t *list = zconfig_locate (keel_config_root (config), "node/actors");
    for (zconfig_t *item = list ? zconfig_child (list) : NULL; item;
         item = zconfig_next (item)) {
        const char *name = zconfig_name (item);
        const keel_actor_def_t *def = s_find_def (self, name);
        if (!def)
            return keel_config_fail_node (config, item, "no actor named '%s'",
                                          name);
        if (s_find_actor (self, name))
            return keel_config_fail_node (config, item, "listed twice");
        s_actor_t *actor = (s_actor_t *)calloc (1, sizeof (s_actor_t));
        if (!actor)
            return keel_config_fail_node (config, item, "out of memory");
        zlistx_add_end (self->actors, actor);
        actor->def = def;
        actor->endpoint = keel_node_actor_endpoint (self->name, name);
        actor->events = keel_node_actor_events (self->name, name);
        char *path = zsys_sprintf ("%s/bind", name);
        int rc = keel_config_endpoint (config, path, NULL, &actor->args.bind);
        zstr_free (&path);
        if (rc == -1)
            return -1;
        actor->args.name = def->name;
        actor->args.node = self->name;
        actor->args.endpoint = actor->endpoint;
        actor->args.events = actor->events;
        actor->args.config = config;
        actor->args.directory = self->directory;
        actor->args.max_msg_size = (size_t)self->max_msg_size;
        //  Local actors are reached over inproc, wherever the directory
        //  section says others live.
        keel_directory_set (self->directory, name, actor->endpoint,
                            actor->events);
    }
    return 0;
}

//  keel.stats of the front door: after the server's counters, the
//  process's refused handshakes (CURVE servers).
static size_t
s_stats (void *arg, keel_stat_t *rows, size_t max)
{
    (void)arg;
    uint64_t auth = 0, handshake = 0;
    keel_security_refusals (&auth, &handshake);
    const keel_stat_t mine[] = {
        {"security_refused_key", auth},
        {"security_refused_handshake", handshake},
    };
    return keel_stats_fill (rows, max, mine, sizeof mine / sizeof mine[0]);
}

//  Bind the doors and start the actors. Returns NULL or an error (freed by
//  caller).
static char *
s_start (self_t *self)
{
    self->front = keel_server_new (self->name);
    if (self->front)
        keel_server_set_stats_fn (self->front, s_stats, NULL);
    self->xsub = zsock_new (ZMQ_XSUB);
    self->xpub = zsock_new (ZMQ_XPUB);
    self->loop = zloop_new ();
    if (!self->front || !self->xsub || !self->xpub || !self->loop)
        return strdup ("out of memory");
    keel_server_set_max_msg_size (self->front, (size_t)self->max_msg_size);
    keel_codec_socket_setup (self->xsub, (size_t)self->max_msg_size);
    keel_codec_socket_setup (self->xpub, 0);

    char *inproc = keel_node_bus_endpoint (self->name);
    int rc = keel_server_bind (self->front, inproc);
    zstr_free (&inproc);
    if (rc == -1)
        return zsys_sprintf ("node '%s' already runs in this process",
                             self->name);
    if (self->bus) {
        if (keel_server_bind (self->front, self->bus) == -1)
            return zsys_sprintf ("cannot bind bus %s: %s", self->bus,
                                 zmq_strerror (zmq_errno ()));
        self->bus_bound =
            keel_security_advertise (keel_server_endpoint (self->front));
    }
    inproc = keel_node_events_endpoint (self->name);
    rc = zsock_bind (self->xpub, "%s", inproc);
    zstr_free (&inproc);
    if (rc == -1)
        return strdup ("cannot bind the node's inproc event endpoint");
    if (self->events) {
        if (keel_security_bind (self->xpub, self->events) == -1)
            return zsys_sprintf ("cannot bind events %s: %s", self->events,
                                 zmq_strerror (zmq_errno ()));
        char *bound = zsock_last_endpoint (self->xpub);
        self->events_bound = keel_security_advertise (bound);
        zstr_free (&bound);
    }
    keel_server_on (self->front, "node.info", s_node_info, self);
    keel_server_set_forwarder (self->front, s_forward, self);

    for (s_actor_t *actor = (s_actor_t *)zlistx_first (self->actors); actor;
         actor = (s_actor_t *)zlistx_next (self->actors)) {
        actor->actor = zactor_new (actor->def->fn, &actor->args);
        char *error = actor->actor ? keel_actor_status (actor->actor)
                                   : strdup ("cannot start thread");
        if (error) {
            char *message =
                zsys_sprintf ("actor %s: %s", actor->def->name, error);
            zstr_free (&error);
            return message;
        }
        actor->relay = zsock_new (ZMQ_DEALER);
        if (!actor->relay)
            return strdup ("out of memory");
        keel_codec_socket_setup (actor->relay, (size_t)self->max_msg_size);
        if (zsock_connect (actor->relay, "%s", actor->endpoint) == -1)
            return zsys_sprintf ("cannot connect to actor %s",
                                 actor->def->name);
        zloop_reader (self->loop, actor->relay, s_on_relay, self);
        zsock_connect (self->xsub, "%s", actor->events);
    }
    zloop_reader (self->loop, self->pipe, s_on_pipe, self);
    zloop_reader (self->loop, keel_server_sock (self->front),
                  keel_server_reader, self->front);
    zloop_reader (self->loop, self->xsub, s_on_events, self);
    zloop_reader (self->loop, self->xpub, s_on_events, self);
    //  Only $TERM stops the node; the owner handles signals.
    zloop_set_nonstop (self->loop, true);
    return NULL;
}

void
keel_node_actor (zsock_t *pipe, void *args)
{
    keel_node_args_t *node_args = (keel_node_args_t *)args;
    self_t *self = (self_t *)calloc (1, sizeof (self_t));
    char *error = NULL;
    if (self) {
        self->pipe = pipe;
        self->config = node_args->config;
        self->defs = node_args->defs;
        self->started_ms = keel_now_ms ();
        self->actors = zlistx_new ();
        if (!self->actors)
            error = strdup ("out of memory");
        else {
            zlistx_set_destructor (self->actors, s_actor_free);
            if (s_configure (self) == -1)
                error = strdup (keel_config_error (self->config));
            else
                error = s_start (self);
        }
    } else
        error = strdup ("out of memory");
    keel_actor_ready (pipe, error);
    if (!error)
        zloop_start (self->loop);
    zstr_free (&error);
    s_self_destroy (&self);
}
