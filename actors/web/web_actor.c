/*  web_actor.c - the web demo service's shell. See web_actor.h.

    One thread, one zloop:

        pipe ($TERM) ----------------------------.
        bus server (keel.ping, keel.stats) -------\
        evloop fd (listener, client connections) --> zloop
        registry client (register, get) ----------/
        1 s timer (registration) ----------------'

    Registration, driven by the timer and the replies:

        UNREGISTERED --tick--> register --OK--> REGISTERED --5 ticks--> get
             ^                    |                 ^                    |
             `-- error/timeout ---'                 `------ OK ----------+
             `---------------------------- NOT_FOUND: register now ------'
*/
#include "web_actor.h"
#include "evloop.h"
#include "http_server.h"
#include "keel_client.h"
#include "keel_node.h"
#include "keel_server.h"
#include "registry.pb-c.h"
#include "web_pages.h"

#include <errno.h>
#include <string.h>

#define S_TICK_MS       1000  //  registration timer
#define S_CHECK_TICKS   5     //  ticks between "registry.get" checks
#define S_CHECK_MS      1000  //  the registry's HTTP check interval
#define S_DEREGISTER_MS 10000 //  critical that long: the registry removes it

typedef struct {
    keel_actor_args_t *args;      //  what the node gave
    zloop_t *loop;                //  everything runs here
    keel_server_t *server;        //  the bus endpoint: keel.ping, keel.stats
    keel_evloop_t *ev;            //  HTTP sockets and timers
    keel_http_server_t *http;     //  the HTTP service
    const char *service;          //  registry service name
    const char *instance;         //  instance id
    char *default_instance;       //  NODE-ACTOR (owned)
    char *endpoint;               //  http://HOST:PORT advertised (owned)
    keel_client_t *registry;      //  the registry, or NULL: do not register
    bool registered;              //  the registry acknowledged the instance
    bool asking;                  //  a register or get request is in flight
    int ticks;                    //  timer ticks since the last check
    keel_ratelimit_t log_refused; //  registration refused
} self_t;

// ---------------------------------------------------------------------------
//  HTTP

static void
s_on_request (keel_http_server_t *server, keel_http_exchange_t *exchange,
              void *arg)
{
    (void)server;
    self_t *self = (self_t *)arg;
    keel_http_request_t *req = keel_http_exchange_request (exchange);
    keel_web_request_t in = {
        keel_http_request_method (req),
        keel_http_request_path (req),
        keel_http_request_header (req, "X-Request-Id"),
        keel_http_request_header (req, "X-Forwarded-For"),
        self->instance,
    };
    keel_web_reply_t out;
    if (keel_web_answer (&in, &out) == -1) {
        keel_http_exchange_error (exchange, 500, "internal", "out of memory",
                                  in.request_id, NULL, 0);
        return;
    }
    keel_http_header_t headers[] = {
        {"Content-Type", "application/json"},
        {"X-Web-Instance", self->instance},
        {"Allow", out.allow},
    };
    keel_http_exchange_respond (exchange, out.status, headers,
                                out.allow ? 3 : 2, out.body, strlen (out.body),
                                false);
    free (out.body);
}

static int
s_on_evloop (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    self_t *self = (self_t *)arg;
    keel_evloop_run (self->ev, 0);
    return 0;
}

// ---------------------------------------------------------------------------
//  Registration

static void s_register (self_t *self);

static void
s_registered (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    self_t *self = (self_t *)arg;
    self->asking = false;
    self->registered = reply->code == KEEL_OK;
    self->ticks = 0;
    //  No registry yet (TIMEOUT, UNAVAILABLE) is expected at start and is
    //  retried quietly; a refusal is a mistake worth a line.
    if (reply->code != KEEL_OK && reply->code != KEEL_ERR_TIMEOUT &&
        reply->code != KEEL_ERR_UNAVAILABLE)
        keel_log_limited (&self->log_refused, keel_now_ms (),
                          "%s: the registry refused %s: %s (%s)",
                          self->args->name, self->instance,
                          keel_errname (reply->code), reply->text);
}

static void
s_checked (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    self_t *self = (self_t *)arg;
    self->asking = false;
    if (reply->code == KEEL_ERR_NOT_FOUND) {
        self->registered = false;
        s_register (self);
    }
}

static void
s_register (self_t *self)
{
    Keel__HealthCheck check = KEEL__HEALTH_CHECK__INIT;
    check.http_path = "/health";
    check.interval_ms = S_CHECK_MS;
    check.deregister_critical_after_ms = S_DEREGISTER_MS;
    Keel__Instance instance = KEEL__INSTANCE__INIT;
    instance.id = (char *)self->instance;
    instance.service = (char *)self->service;
    instance.endpoint = self->endpoint;
    instance.weight = 1;
    instance.check = &check;
    Keel__RegisterRequest req = KEEL__REGISTER_REQUEST__INIT;
    req.instance = &instance;
    keel_call_opts_t opts = {.timeout_ms = S_TICK_MS,
                             .attempt_timeout_ms = S_TICK_MS / 2,
                             .idempotent = true};
    if (keel_client_request (self->registry, "registry.register", &req.base,
                             &opts, s_registered, self))
        self->asking = true;
}

static void
s_check (self_t *self)
{
    Keel__GetRequest req = KEEL__GET_REQUEST__INIT;
    req.id = (char *)self->instance;
    keel_call_opts_t opts = {.timeout_ms = S_TICK_MS,
                             .attempt_timeout_ms = S_TICK_MS / 2,
                             .idempotent = true};
    if (keel_client_request (self->registry, "registry.get", &req.base, &opts,
                             s_checked, self))
        self->asking = true;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = (self_t *)arg;
    if (self->asking)
        return 0;
    if (!self->registered)
        s_register (self);
    else if (++self->ticks >= S_CHECK_TICKS) {
        self->ticks = 0;
        s_check (self);
    }
    return 0;
}

// ---------------------------------------------------------------------------
//  Set-up and tear-down

//  http://HOST:PORT for `listen` ("HOST:PORT") and the port bound; a
//  wildcard host becomes the loopback. Caller frees.
static char *
s_advertised (const char *listen, int port)
{
    const char *colon = strrchr (listen, ':');
    int len = colon ? (int)(colon - listen) : 0;
    const char *host = listen;
    if (len == 0 || (len == 1 && *listen == '*') ||
        (len == 7 && strncmp (listen, "0.0.0.0", 7) == 0)) {
        host = "127.0.0.1";
        len = 9;
    } else if (len == 4 && strncmp (listen, "[::]", 4) == 0) {
        host = "[::1]";
        len = 5;
    }
    return zsys_sprintf ("http://%.*s:%d", len, host, port);
}

static const char *
s_self_init (self_t *self)
{
    keel_actor_args_t *args = self->args;
    keel_config_t *config = args->config;
    static const char *keys[] = {"listen",   "service", "instance",
                                 "registry", "bind",    NULL};
    char path[4][160];
    snprintf (path[0], sizeof path[0], "%s/listen", args->name);
    snprintf (path[1], sizeof path[1], "%s/service", args->name);
    snprintf (path[2], sizeof path[2], "%s/instance", args->name);
    snprintf (path[3], sizeof path[3], "%s/registry", args->name);
    const char *listen = NULL, *registry_name = NULL;
    self->default_instance = zsys_sprintf ("%s-%s", args->node, args->name);
    if (!self->default_instance)
        return "out of memory";
    if (keel_config_check_keys (config, args->name, keys) == -1 ||
        keel_config_string (config, path[0], "127.0.0.1:8081", &listen) == -1 ||
        keel_config_string (config, path[1], args->name, &self->service) ==
            -1 ||
        keel_config_string (config, path[2], self->default_instance,
                            &self->instance) == -1 ||
        keel_config_string (config, path[3], "registry", &registry_name) == -1)
        return keel_config_error (config);
    if (!*self->service || !*self->instance) {
        keel_config_fail (config, *self->service ? path[2] : path[1],
                          "must not be empty");
        return keel_config_error (config);
    }

    self->loop = zloop_new ();
    self->server = keel_server_new (args->name);
    self->ev = keel_evloop_new ();
    if (!self->loop || !self->server || !self->ev)
        return "out of memory";
    self->http =
        keel_http_server_new (self->ev, NULL, s_on_request, NULL, NULL, self);
    if (!self->http)
        return "out of memory";
    if (keel_http_server_listen (self->http, listen) == -1) {
        keel_config_fail (config, path[0], "cannot listen on %s: %s", listen,
                          strerror (errno));
        return keel_config_error (config);
    }
    self->endpoint = s_advertised (listen, keel_http_server_port (self->http));
    if (!self->endpoint)
        return "out of memory";
    if (keel_actor_bind (args, self->server, NULL) == -1)
        return "cannot bind its endpoints";

    const char *registry =
        *registry_name
            ? keel_directory_endpoint (args->directory, registry_name)
            : NULL;
    if (registry) {
        self->registry =
            keel_client_new (self->instance, registry, registry_name);
        if (!self->registry || keel_client_attach (self->registry, self->loop))
            return "cannot reach the registry";
        s_register (self);
        zloop_timer (self->loop, S_TICK_MS, 0, s_on_tick, self);
    }
    zloop_reader (self->loop, keel_server_sock (self->server),
                  keel_server_reader, self->server);
    zmq_pollitem_t item = {NULL, keel_evloop_fd (self->ev), ZMQ_POLLIN, 0};
    zloop_poller (self->loop, &item, s_on_evloop, self);
    zloop_set_nonstop (self->loop, true);
    return NULL;
}

static void
s_self_destroy (self_t *self)
{
    if (self->registry && (self->registered || self->asking)) {
        //  Best effort (a register in flight may have been applied): the
        //  registry's check and S_DEREGISTER_MS cover a lost goodbye.
        Keel__DeregisterRequest req = KEEL__DEREGISTER_REQUEST__INIT;
        req.id = (char *)self->instance;
        keel_client_notify (self->registry, "registry.deregister", &req.base,
                            NULL);
    }
    keel_client_destroy (&self->registry);
    keel_http_server_destroy (&self->http);
    keel_evloop_destroy (&self->ev);
    keel_server_destroy (&self->server);
    zloop_destroy (&self->loop);
    zstr_free (&self->endpoint);
    zstr_free (&self->default_instance);
}

void
keel_web_actor (zsock_t *pipe, void *args)
{
    self_t self = {0};
    self.args = (keel_actor_args_t *)args;
    const char *error = s_self_init (&self);
    keel_actor_ready (pipe, error);
    if (!error) {
        zloop_reader (self.loop, pipe, keel_actor_on_pipe, NULL);
        zloop_start (self.loop);
    }
    s_self_destroy (&self);
}
