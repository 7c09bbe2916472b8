/*  users_actor.c - the users demo service's shell. See users_actor.h.

    One thread, one zloop: the pipe ($TERM) and the SDK service (its server
    socket, heartbeat timer and registry client). Each "<name>.http" request
    is decoded, answered by the store (users_store.h), and encoded back.
*/
#include "users_actor.h"
#include "keel_node.h"
#include "keel_service.h"
#include "users_store.h"
#include "gateway.pb-c.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    keel_actor_args_t *args; //  what the node gave
    const char *instance;    //  instance id (borrowed from config or below)
    char *default_instance;  //  NODE-ACTOR (owned)
    keel_users_t *users;     //  the table
    keel_service_t *service; //  the SDK instance
    zloop_t *loop;           //  everything runs here
} self_t;

//  "<name>.http": a keel.HttpRequest from a gateway bus: route.
static int
s_on_http (keel_server_t *server, keel_request_t *request, void *arg)
{
    self_t *self = (self_t *)arg;
    Keel__HttpRequest *req = (Keel__HttpRequest *)keel_request_payload (
        request, &keel__http_request__descriptor);
    if (!req)
        return KEEL_ERR_BAD_REQUEST;
    keel_users_request_t in = {req->method,    req->path,     NULL,
                               req->body.data, req->body.len, req->request_id};
    for (size_t i = 0; i < req->n_params; i++)
        if (streq (req->params[i]->key, "id"))
            in.id = req->params[i]->value;
    keel_users_reply_t out;
    if (keel_users_answer (self->users, &in, &out) == -1) {
        keel_users_reply_free (&out);
        return KEEL_ERR_INTERNAL;
    }
    //  Content-Type, X-Users-Instance, X-Served-For, Location, Allow.
    Keel__HttpHeader headers[5];
    Keel__HttpHeader *pointers[5];
    size_t n = 0;
    const char *pairs[5][2] = {
        {"Content-Type", out.body ? "application/json" : NULL},
        {"X-Users-Instance", self->instance},
        {"X-Served-For", *req->subject ? req->subject : NULL},
        {"Location", out.location},
        {"Allow", out.allow},
    };
    for (size_t i = 0; i < 5; i++)
        if (pairs[i][1]) {
            keel__http_header__init (&headers[n]);
            headers[n].name = (char *)pairs[i][0];
            headers[n].value = (char *)pairs[i][1];
            pointers[n] = &headers[n];
            n++;
        }
    Keel__HttpResponse resp = KEEL__HTTP_RESPONSE__INIT;
    resp.status = (uint32_t)out.status;
    resp.n_headers = n;
    resp.headers = pointers;
    resp.body.data = (uint8_t *)out.body;
    resp.body.len = out.body ? strlen (out.body) : 0;
    keel_server_reply (server, request, &resp.base);
    keel_users_reply_free (&out);
    return KEEL_OK;
}

//  Read config, make the table and the service. NULL, or why it cannot
//  start.
static const char *
s_self_init (self_t *self)
{
    keel_actor_args_t *args = self->args;
    static const char *keys[] = {"bind", "instance", NULL};
    char path[160], method[160];
    snprintf (path, sizeof path, "%s/instance", args->name);
    snprintf (method, sizeof method, "%s.http", args->name);
    self->default_instance = zsys_sprintf ("%s-%s", args->node, args->name);
    if (!self->default_instance)
        return "out of memory";
    if (keel_config_check_keys (args->config, args->name, keys) == -1 ||
        keel_config_string (args->config, path, self->default_instance,
                            &self->instance) == -1)
        return keel_config_error (args->config);
    self->users = keel_users_new ();
    self->loop = zloop_new ();
    if (!self->users || !self->loop ||
        !(self->service = keel_service_new (args->name, self->instance)))
        return "out of memory";
    keel_server_set_max_msg_size (keel_service_server (self->service),
                                  args->max_msg_size);
    if (keel_service_bind (self->service, args->endpoint) == -1 ||
        (args->bind && keel_service_bind (self->service, args->bind) == -1))
        return "cannot bind its endpoints";
    if (keel_service_on (self->service, method, s_on_http, self) == -1)
        return "invalid actor name";
    const char *registry =
        keel_directory_endpoint (args->directory, "registry");
    if (registry && keel_service_set_registry (self->service, registry, 1000))
        return "invalid registry endpoint";
    if (keel_service_attach (self->service, self->loop) == -1)
        return "cannot attach to its loop";
    zloop_set_nonstop (self->loop, true);
    return NULL;
}

static void
s_self_destroy (self_t *self)
{
    keel_service_destroy (&self->service); //  deregisters
    zloop_destroy (&self->loop);
    keel_users_destroy (&self->users);
    zstr_free (&self->default_instance);
}

void
keel_users_actor (zsock_t *pipe, void *args)
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
