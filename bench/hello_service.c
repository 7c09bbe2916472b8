/*  hello_service.c - the bus backend of bench/gateway_bench.sh: a keel SDK
    service `hello` that answers every "hello.http" with 200 "hello".

    usage: hello_service --bind EP [--registry EP] [--id ID]

        gateway --"hello.http" HttpRequest--> hello_service
                <--HttpResponse 200, text/plain, "hello"--

    It is the bus twin of the bench's nginx backend (`return 200 "hello"`),
    so it does as little as nginx does: the reply is packed once at start and
    sent as bytes, and the request payload is not decoded (the gateway's
    cost is what the bench measures, not this process's). Registers and
    heartbeats with the registry when one is given, prints "ready" once
    bound, and stops cleanly on SIGINT/SIGTERM.
*/
#include "keel_service.h"
#include "gateway.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The one reply, packed once.
typedef struct {
    uint8_t *data;  //  packed keel.HttpResponse
    size_t size;    //  its size
    uint64_t count; //  requests answered
} s_hello_t;

static int
s_on_http (keel_server_t *server, keel_request_t *request, void *arg)
{
    s_hello_t *hello = (s_hello_t *)arg;
    hello->count++;
    keel_server_reply_bytes (server, request, hello->data, hello->size);
    return KEEL_OK;
}

//  Pack HttpResponse {200, Content-Type: text/plain, "hello"}.
static int
s_hello_pack (s_hello_t *hello)
{
    Keel__HttpHeader header = KEEL__HTTP_HEADER__INIT;
    header.name = "Content-Type";
    header.value = "text/plain";
    Keel__HttpHeader *headers[] = {&header};
    Keel__HttpResponse response = KEEL__HTTP_RESPONSE__INIT;
    response.status = 200;
    response.n_headers = 1;
    response.headers = headers;
    response.body.data = (uint8_t *)"hello";
    response.body.len = 5;
    hello->size = keel__http_response__get_packed_size (&response);
    hello->data = (uint8_t *)malloc (hello->size);
    if (!hello->data)
        return -1;
    keel__http_response__pack (&response, hello->data);
    return 0;
}

static int
s_usage (const char *program)
{
    fprintf (stderr, "usage: %s --bind EP [--registry EP] [--id ID]\n",
             program);
    return 2;
}

int
main (int argc, char **argv)
{
    const char *bind = NULL, *registry = NULL, *id = "hello-1";
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return s_usage (argv[0]);
        if (streq (argv[i], "--bind"))
            bind = argv[i + 1];
        else if (streq (argv[i], "--registry"))
            registry = argv[i + 1];
        else if (streq (argv[i], "--id"))
            id = argv[i + 1];
        else
            return s_usage (argv[0]);
    }
    if (!bind)
        return s_usage (argv[0]);

    s_hello_t hello = {NULL, 0, 0};
    if (s_hello_pack (&hello) == -1) {
        fprintf (stderr, "hello_service: out of memory\n");
        return 1;
    }
    int rc = 1;
    keel_service_t *service = keel_service_new ("hello", id);
    if (!service)
        fprintf (stderr, "hello_service: cannot create the service\n");
    else if (keel_service_on (service, "hello.http", s_on_http, &hello) == -1)
        fprintf (stderr, "hello_service: cannot handle hello.http\n");
    else if (keel_service_bind (service, bind) == -1)
        fprintf (stderr, "hello_service: cannot bind %s\n", bind);
    else if (registry &&
             keel_service_set_registry (service, registry, 1000) == -1)
        fprintf (stderr, "hello_service: invalid registry endpoint %s\n",
                 registry);
    else {
        printf ("hello_service %s ready on %s\n", id,
                keel_service_endpoint (service));
        fflush (stdout);
        rc = keel_service_run (service) == 0 ? 0 : 1;
        printf ("hello_service %s stopped after %" PRIu64 " requests\n", id,
                hello.count);
    }
    keel_service_destroy (&service);
    free (hello.data);
    return rc;
}
