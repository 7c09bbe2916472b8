/*  greeter.c - a participant service written with keel's service SDK.

    usage: example_greeter ENDPOINT [REGISTRY_ENDPOINT]

    Binds ENDPOINT (e.g. tcp://127.0.0.1:7710), answers "greeter.hello"
    (payload keel.EchoRequest, reply keel.EchoReply "hello, TEXT"), registers
    and heartbeats with the registry when one is given, and stops cleanly on
    SIGINT/SIGTERM. Call it with any keel client, for instance:

        keel_client_t *c = keel_client_new ("me", "tcp://127.0.0.1:7710",
                                            "greeter");
        keel_client_call (c, "greeter.hello", &req.base, NULL,
                          &keel__echo_reply__descriptor, &reply, &error);
*/
#include "keel_service.h"
#include "echo.pb-c.h"

static int
s_hello (keel_server_t *server, keel_request_t *request, void *arg)
{
    uint64_t *count = (uint64_t *)arg;
    //  The payload lives as long as the request: no free.
    Keel__EchoRequest *req = (Keel__EchoRequest *)keel_request_payload (
        request, &keel__echo_request__descriptor);
    if (!req)
        return KEEL_ERR_BAD_REQUEST; //  the SDK answers with this code
    if (!*req->text) {
        keel_server_reply_error (server, request, KEEL_ERR_INVALID_ARGUMENT,
                                 "say who to greet");
        return KEEL_OK;
    }
    char *text = zsys_sprintf ("hello, %s", req->text);
    Keel__EchoReply reply = KEEL__ECHO_REPLY__INIT;
    reply.text = text;
    reply.instance = "greeter-1";
    reply.count = ++*count;
    keel_server_reply (server, request, &reply.base);
    zstr_free (&text);
    return KEEL_OK;
}

int
main (int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf (stderr, "usage: %s ENDPOINT [REGISTRY_ENDPOINT]\n", argv[0]);
        return 2;
    }
    uint64_t count = 0;
    keel_service_t *service = keel_service_new ("greeter", "greeter-1");
    keel_service_on (service, "greeter.hello", s_hello, &count);
    if (keel_service_bind (service, argv[1]) == -1) {
        fprintf (stderr, "greeter: cannot bind %s\n", argv[1]);
        keel_service_destroy (&service);
        return 1;
    }
    if (argc == 3 && keel_service_set_registry (service, argv[2], 1000) == -1) {
        fprintf (stderr, "greeter: invalid registry endpoint %s\n", argv[2]);
        keel_service_destroy (&service);
        return 2;
    }
    printf ("greeter ready on %s\n", keel_service_endpoint (service));
    fflush (stdout);
    keel_service_run (service); //  until SIGINT/SIGTERM
    printf ("greeter stopped after %" PRIu64 " greetings\n", count);
    keel_service_destroy (&service);
    return 0;
}
