/*  echo_actor.c - the echo demo service. See echo_actor.h. */
#include "echo_actor.h"
#include "keel_events.h"
#include "keel_node.h"
#include "keel_service.h"
#include "echo.pb-c.h"
#include "gateway.pb-c.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *instance;        //  instance id
    uint64_t count;              //  requests answered
    keel_publisher_t *publisher; //  echo.said events
} s_echo_t;

static int
s_say (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_echo_t *echo = (s_echo_t *)arg;
    Keel__EchoRequest *req = (Keel__EchoRequest *)keel_request_payload (
        request, &keel__echo_request__descriptor);
    if (!req)
        return KEEL_ERR_BAD_REQUEST;
    if (req->fail) {
        keel_server_reply_error (server, request, KEEL_ERR_INTERNAL,
                                 "echo %s was asked to fail", echo->instance);
        return KEEL_OK;
    }
    Keel__EchoReply reply = KEEL__ECHO_REPLY__INIT;
    reply.text = req->text;
    reply.instance = (char *)echo->instance;
    reply.count = ++echo->count;
    keel_server_reply (server, request, &reply.base);
    keel_publisher_publish (echo->publisher, "echo.said", &reply.base);
    return KEEL_OK;
}

//  The value of `name` in a query string ("a=1&status=404"), copied into
//  out; false if absent.
static bool
s_query_param (const char *query, const char *name, char *out, size_t size)
{
    size_t len = strlen (name);
    for (const char *p = query; p && *p;) {
        const char *end = strchr (p, '&');
        size_t item = end ? (size_t)(end - p) : strlen (p);
        if (item > len && strncmp (p, name, len) == 0 && p[len] == '=') {
            size_t value = item - len - 1;
            if (value >= size)
                value = size - 1;
            memcpy (out, p + len + 1, value);
            out[value] = 0;
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

//  "echo.http": what the gateway forwards from a bus:echo route. Answers a
//  JSON description of the request it got; ?status=NNN picks the HTTP
//  status, ?fail=1 answers a bus error (INTERNAL) instead.
static int
s_http (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_echo_t *echo = (s_echo_t *)arg;
    Keel__HttpRequest *req = (Keel__HttpRequest *)keel_request_payload (
        request, &keel__http_request__descriptor);
    if (!req)
        return KEEL_ERR_BAD_REQUEST;
    char value[16];
    if (s_query_param (req->query, "fail", value, sizeof value) &&
        streq (value, "1")) {
        keel_server_reply_error (server, request, KEEL_ERR_INTERNAL,
                                 "echo %s was asked to fail", echo->instance);
        return KEEL_OK;
    }
    uint32_t status = 200;
    if (s_query_param (req->query, "status", value, sizeof value)) {
        long v = strtol (value, NULL, 10);
        if (v >= 200 && v <= 599)
            status = (uint32_t)v;
    }
    json_t *doc = json_object ();
    json_t *headers = json_object ();
    json_t *params = json_object ();
    json_t *scopes = json_array ();
    for (size_t i = 0; i < req->n_headers; i++)
        json_object_set_new (headers, req->headers[i]->name,
                             json_string (req->headers[i]->value));
    for (size_t i = 0; i < req->n_params; i++)
        json_object_set_new (params, req->params[i]->key,
                             json_string (req->params[i]->value));
    for (size_t i = 0; i < req->n_scopes; i++)
        json_array_append_new (scopes, json_string (req->scopes[i]));
    json_object_set_new (doc, "instance", json_string (echo->instance));
    json_object_set_new (doc, "method", json_string (req->method));
    json_object_set_new (doc, "path", json_string (req->path));
    json_object_set_new (doc, "query", json_string (req->query));
    json_object_set_new (doc, "route", json_string (req->route));
    json_object_set_new (doc, "params", params);
    json_object_set_new (doc, "headers", headers);
    json_object_set_new (doc, "remote_addr", json_string (req->remote_addr));
    json_object_set_new (doc, "request_id", json_string (req->request_id));
    json_object_set_new (doc, "subject", json_string (req->subject));
    json_object_set_new (doc, "scopes", scopes);
    json_object_set_new (doc, "body", json_stringn ((const char *)req->body.data,
                                                    req->body.len));
    json_object_set_new (doc, "count", json_integer ((json_int_t)++echo->count));
    char *text = json_dumps (doc, JSON_COMPACT);
    json_decref (doc);
    if (!text)
        return KEEL_ERR_INTERNAL;
    Keel__HttpHeader ct = KEEL__HTTP_HEADER__INIT;
    ct.name = "Content-Type";
    ct.value = "application/json";
    Keel__HttpHeader inst = KEEL__HTTP_HEADER__INIT;
    inst.name = "X-Echo-Instance";
    inst.value = (char *)echo->instance;
    Keel__HttpHeader *hdrs[] = {&ct, &inst};
    Keel__HttpResponse resp = KEEL__HTTP_RESPONSE__INIT;
    resp.status = status;
    resp.n_headers = 2;
    resp.headers = hdrs;
    resp.body.data = (uint8_t *)text;
    resp.body.len = strlen (text);
    keel_server_reply (server, request, &resp.base);
    free (text);
    return KEEL_OK;
}

void
keel_echo_actor (zsock_t *pipe, void *args)
{
    keel_actor_args_t *actor = (keel_actor_args_t *)args;
    static const char *keys[] = {"bind", "instance", NULL};
    char *default_id = zsys_sprintf ("%s-%s", actor->node, actor->name);
    s_echo_t echo = {default_id, 0, keel_publisher_new (actor->name)};
    keel_service_t *service = NULL;
    zloop_t *loop = zloop_new ();
    const char *error = NULL;
    const char *registry =
        keel_directory_endpoint (actor->directory, "registry");
    if (keel_config_check_keys (actor->config, actor->name, keys) == -1 ||
        keel_config_string (actor->config, "echo/instance", default_id,
                            &echo.instance) == -1)
        error = keel_config_error (actor->config);
    else if (!echo.publisher || !loop ||
             !(service = keel_service_new (actor->name, echo.instance)))
        error = "out of memory";
    else if (keel_service_bind (service, actor->endpoint) == -1 ||
             (actor->bind && keel_service_bind (service, actor->bind) == -1) ||
             keel_publisher_bind (echo.publisher, actor->events) == -1)
        error = "cannot bind its endpoints";
    else {
        keel_server_set_max_msg_size (keel_service_server (service),
                                      actor->max_msg_size);
        keel_service_on (service, "echo.say", s_say, &echo);
        keel_service_on (service, "echo.http", s_http, &echo);
        if (registry)
            keel_service_set_registry (service, registry, 1000);
        if (keel_service_attach (service, loop) == -1)
            error = "cannot attach to its loop";
    }
    keel_actor_ready (pipe, error);
    if (!error) {
        zloop_reader (loop, pipe, keel_actor_on_pipe, NULL);
        zloop_set_nonstop (loop, true);
        zloop_start (loop);
    }
    keel_service_destroy (&service);
    zloop_destroy (&loop);
    keel_publisher_destroy (&echo.publisher);
    zstr_free (&default_id);
}
