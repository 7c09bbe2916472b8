/*  echo_actor.c - the echo demo service. See echo_actor.h. */
#include "echo_actor.h"
#include "keel_events.h"
#include "keel_node.h"
#include "keel_service.h"
#include "echo.pb-c.h"

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
