/*  saga_client.c - start a saga on a keel node and follow it to the end.

    usage: example_saga_client NAME [--input JSON] [--key KEY]
                               [--bus EP] [--events EP] [--timeout MS]

    A program to copy: it uses nothing but the public libkeel API
    (keel_client for request/reply, keel_subscriber for events) and the C
    generated from schemas/saga.proto. What it does, in order:

        events SUB --subscribe "saga."--> node events  (tcp://...:7701)
           |  wait until connected: the subscription is then on its way
        keel_client --keel.ping--------> node front door (tcp://...:7700)
           |                             relayed to the actor "saga"
        keel_client --saga.start-------> saga: StartRequest -> SagaStatus
           |  the reply names the saga; its events were queued meanwhile
        SUB <--saga.started, saga.step_done create, ... saga.completed
           |  (only the events of this saga are printed)
        keel_client --saga.status------> the final SagaStatus, printed

    Why subscribe first: PUB/SUB drops every event published before the
    subscription reached the publisher (ZeroMQ's "slow joiner"). So the
    subscription is made, and known to be connected, before the saga
    starts; events that arrive before the start reply wait in the socket.
    Events are still at most once, so when nothing arrives for a second the
    program asks the coordinator (saga.status) whether the saga has ended,
    and never waits forever for an event that was lost.

    Exit codes: 0 the saga completed; 1 it compensated, got stuck, or the
    start was refused; 2 usage; 3 node unreachable, or the saga did not end
    within --timeout (default 30000 ms), or interrupted.

    Against `keel node --dev` (which runs the demo saga "order"):
        example_saga_client order --input '{"item":"apple","qty":2}'
*/
#include "keel_client.h"
#include "keel_events.h"
#include "saga.pb-c.h"

#include <jansson.h>
#include <string.h>

#define DEFAULT_BUS     "tcp://127.0.0.1:7700"
#define DEFAULT_EVENTS  "tcp://127.0.0.1:7701"
#define DEFAULT_TIMEOUT 30000 //  ms for the whole run
#define REQUEST_TIMEOUT 5000  //  ms at most per request
#define QUIET_MS        1000  //  no event for this long: ask saga.status

enum { EXIT_COMPLETED = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_AWAY = 3 };

typedef struct {
    const char *name;   //  saga definition to start
    const char *input;  //  JSON handed to every step
    const char *key;    //  idempotency key, or NULL
    const char *bus;    //  node front door
    const char *events; //  node event endpoint
    long timeout_ms;    //  budget for the whole run
} s_args_t;

static int
s_usage (const char *why)
{
    if (why)
        fprintf (stderr, "saga_client: %s\n", why);
    fprintf (stderr,
             "usage: example_saga_client NAME [--input JSON] [--key KEY]\n"
             "       [--bus EP] [--events EP] [--timeout MS]\n"
             "defaults: --input {} --bus %s --events %s --timeout %d\n",
             DEFAULT_BUS, DEFAULT_EVENTS, DEFAULT_TIMEOUT);
    return EXIT_USAGE;
}

//  Parse argv into *args. Returns -1 on a usage error (reported).
static int
s_parse (int argc, char **argv, s_args_t *args)
{
    *args = (s_args_t){NULL,        "{}",           NULL,
                       DEFAULT_BUS, DEFAULT_EVENTS, DEFAULT_TIMEOUT};
    const char *timeout = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **option = streq (arg, "--input")     ? &args->input
                              : streq (arg, "--key")     ? &args->key
                              : streq (arg, "--bus")     ? &args->bus
                              : streq (arg, "--events")  ? &args->events
                              : streq (arg, "--timeout") ? &timeout
                                                         : NULL;
        if (option && i + 1 == argc)
            return s_usage ("an option lacks its value"), -1;
        if (option)
            *option = argv[++i];
        else if (arg[0] == '-' || args->name)
            return s_usage ("unexpected argument"), -1;
        else
            args->name = arg;
    }
    if (!args->name)
        return s_usage ("which saga? give its NAME"), -1;
    if (timeout) {
        char *end;
        args->timeout_ms = strtol (timeout, &end, 10);
        if (*end || args->timeout_ms <= 0 || args->timeout_ms > 86400000)
            return s_usage ("--timeout takes milliseconds, 1..86400000"), -1;
    }
    //  The coordinator hands the input to participants as bytes; the demo
    //  participants expect a JSON object, so catch typos here.
    json_error_t error;
    json_t *doc = json_loads (args->input, JSON_DECODE_ANY, &error);
    if (!doc)
        return s_usage ("--input is not JSON"), -1;
    json_decref (doc);
    return 0;
}

//  An enum value's name as written in the .proto, without its prefix and in
//  lower case: SAGA_COMPLETED -> "completed", STEP_DONE -> "done".
static const char *
s_enum_name (const ProtobufCEnumDescriptor *desc, int value, char *buf,
             size_t size)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (desc, value);
    const char *name = v ? v->name : "unknown";
    const char *bare = strchr (name, '_');
    snprintf (buf, size, "%s", bare ? bare + 1 : name);
    for (char *c = buf; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    return buf;
}

static void
s_print_status (const Keel__SagaStatus *st)
{
    char state[32];
    s_enum_name (&keel__saga_state__descriptor, (int)st->state, state,
                 sizeof state);
    printf ("final state: %s%s%s\n", state, *st->last_error ? " -- " : "",
            st->last_error);
    for (size_t i = 0; i < st->n_steps; i++) {
        const Keel__StepStatus *step = st->steps[i];
        s_enum_name (&keel__step_state__descriptor, (int)step->state, state,
                     sizeof state);
        printf ("  %-10s %-12s attempts %u", step->name, state, step->attempts);
        if (step->compensation_attempts)
            printf (", compensations %u", step->compensation_attempts);
        printf ("\n");
    }
}

//  Print one event as it comes: "saga.step_done create", or with the
//  error of a failure "saga.step_failed charge: CONFLICT: ...". While the
//  saga compensates, "saga.step_done" reports compensations done.
static void
s_print_event (const char *type, const Keel__SagaEvent *ev)
{
    printf ("%s%s%s%s%s\n", type, *ev->step ? " " : "", ev->step,
            *ev->error ? ": " : "", ev->error);
    fflush (stdout); //  now, even into a pipe
}

static bool
s_final (Keel__SagaState state)
{
    return state == KEEL__SAGA_STATE__SAGA_COMPLETED ||
           state == KEEL__SAGA_STATE__SAGA_COMPENSATED ||
           state == KEEL__SAGA_STATE__SAGA_STUCK;
}

//  Milliseconds left before `deadline`, at most REQUEST_TIMEOUT, at least 1.
static uint32_t
s_left (int64_t deadline)
{
    int64_t left = deadline - zclock_mono ();
    return (uint32_t)(left < 1                 ? 1
                      : left > REQUEST_TIMEOUT ? REQUEST_TIMEOUT
                                               : left);
}

//  Wait until the subscriber has connected (its subscription then goes out
//  at once). Returns 0, or -1 if it did not within `timeout_ms`.
static int
s_wait_connected (zactor_t *monitor, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (monitor, NULL);
    int rc = -1;
    if (zpoller_wait (poller, timeout_ms) == monitor) {
        zmsg_t *event = zmsg_recv (monitor); //  [event][value][endpoint]
        char *name = event ? zmsg_popstr (event) : NULL;
        rc = name && streq (name, "HANDSHAKE_SUCCEEDED") ? 0 : -1;
        zstr_free (&name);
        zmsg_destroy (&event);
    }
    zpoller_destroy (&poller);
    return rc;
}

//  saga.status of `id`. Caller frees the result. NULL on failure (reported).
static Keel__SagaStatus *
s_status (keel_client_t *client, const char *id, int64_t deadline)
{
    Keel__SagaRef ref = KEEL__SAGA_REF__INIT;
    ref.id = (char *)id;
    //  A read: safe to send again, so the client retries lost attempts.
    keel_call_opts_t opts = {.timeout_ms = s_left (deadline),
                             .idempotent = true};
    Keel__SagaStatus *st = NULL;
    char *error = NULL;
    keel_err_t rc = keel_client_call (client, "saga.status", &ref.base, &opts,
                                      &keel__saga_status__descriptor,
                                      (ProtobufCMessage **)&st, &error);
    if (rc != KEEL_OK)
        fprintf (stderr, "saga_client: saga.status: %s: %s\n",
                 keel_errname (rc), error ? error : "");
    free (error);
    return st;
}

//  Follow the events of saga `id` until one says it ended. Returns 0, or
//  -1 if the deadline passed or the program was interrupted.
static int
s_follow (keel_subscriber_t *sub, keel_client_t *client, const char *id,
          int64_t deadline)
{
    while (zclock_mono () < deadline) {
        const keel_event_t *event = keel_subscriber_recv (sub, QUIET_MS);
        if (zsys_interrupted)
            return -1;
        if (!event) {
            //  Quiet: events are at most once, so ask the saga itself.
            Keel__SagaStatus *st = s_status (client, id, deadline);
            bool ended = st && s_final (st->state);
            if (st)
                protobuf_c_message_free_unpacked (&st->base, NULL);
            if (ended) {
                printf ("(the saga ended; its last events were missed)\n");
                return 0;
            }
            continue;
        }
        const Keel__Envelope *env = event->envelope;
        Keel__SagaEvent *ev = (Keel__SagaEvent *)keel_codec_payload (
            env, &keel__saga_event__descriptor, NULL);
        if (!ev)
            continue; //  not a SagaEvent: not ours to read
        bool ours = streq (ev->id, id);
        if (ours)
            s_print_event (env->type, ev);
        bool ended = ours && (streq (env->type, "saga.completed") ||
                              streq (env->type, "saga.compensated") ||
                              streq (env->type, "saga.stuck"));
        protobuf_c_message_free_unpacked (&ev->base, NULL);
        if (ended)
            return 0;
    }
    return -1;
}

//  Start the saga and follow it. Returns the exit code.
static int
s_run (const s_args_t *args, keel_subscriber_t *sub, zactor_t *monitor,
       keel_client_t *client)
{
    int64_t deadline = zclock_mono () + args->timeout_ms;

    //  1. The subscription is connected (or the events endpoint is away).
    if (s_wait_connected (monitor, (int)s_left (deadline)) == -1) {
        fprintf (stderr, "saga_client: no connection to events at %s\n",
                 args->events);
        return EXIT_AWAY;
    }
    //  2. The coordinator answers, through the node: a ping is safe to
    //  repeat, a start without a key is not, so find out before starting.
    keel_call_opts_t ping = {.timeout_ms = s_left (deadline),
                             .idempotent = true};
    char *error = NULL;
    keel_err_t rc =
        keel_client_call (client, "keel.ping", NULL, &ping, NULL, NULL, &error);
    if (rc != KEEL_OK) {
        fprintf (stderr, "saga_client: no saga coordinator at %s: %s: %s\n",
                 args->bus, keel_errname (rc), error ? error : "");
        free (error);
        return EXIT_AWAY;
    }
    //  3. Start. With an idempotency key the same request may be sent again
    //  (the coordinator answers with the same saga), so it may be retried.
    Keel__StartRequest req = KEEL__START_REQUEST__INIT;
    req.definition = (char *)args->name;
    req.input.data = (uint8_t *)args->input;
    req.input.len = strlen (args->input);
    req.idempotency_key = (char *)(args->key ? args->key : "");
    keel_call_opts_t start = {.timeout_ms = s_left (deadline),
                              .idempotent = args->key != NULL,
                              .idempotency_key = args->key};
    Keel__SagaStatus *st = NULL;
    rc = keel_client_call (client, "saga.start", &req.base, &start,
                           &keel__saga_status__descriptor,
                           (ProtobufCMessage **)&st, &error);
    if (rc != KEEL_OK) {
        fprintf (stderr, "saga_client: saga.start: %s: %s\n", keel_errname (rc),
                 error ? error : "");
        free (error);
        //  TIMEOUT/UNAVAILABLE: it may or may not have started.
        return rc == KEEL_ERR_TIMEOUT || rc == KEEL_ERR_UNAVAILABLE
                   ? EXIT_AWAY
                   : EXIT_FAILED;
    }
    char *id = strdup (st->id);
    printf ("saga %s started (%s v%u)\n", id, st->definition, st->version);
    fflush (stdout);
    //  4. Follow, unless it had already ended (the same key again).
    bool followed =
        s_final (st->state) || s_follow (sub, client, id, deadline) == 0;
    protobuf_c_message_free_unpacked (&st->base, NULL);
    if (!followed) {
        fprintf (stderr,
                 "saga_client: saga %s has not ended (yet); see it with "
                 "`keel saga status %s`\n",
                 id, id);
        free (id);
        return EXIT_AWAY;
    }
    //  5. The whole story, from the coordinator.
    st = s_status (client, id, zclock_mono () + REQUEST_TIMEOUT);
    free (id);
    if (!st)
        return EXIT_AWAY;
    s_print_status (st);
    int code = st->state == KEEL__SAGA_STATE__SAGA_COMPLETED ? EXIT_COMPLETED
                                                             : EXIT_FAILED;
    protobuf_c_message_free_unpacked (&st->base, NULL);
    return code;
}

int
main (int argc, char **argv)
{
    s_args_t args;
    if (s_parse (argc, argv, &args) == -1)
        return EXIT_USAGE;

    //  Subscribe before connecting, so the subscription goes out with the
    //  connection, and watch the socket to know when it is connected.
    keel_subscriber_t *sub = keel_subscriber_new ();
    keel_subscriber_subscribe (sub, "saga.");
    zactor_t *monitor = zactor_new (zmonitor, keel_subscriber_sock (sub));
    zstr_sendx (monitor, "LISTEN", "HANDSHAKE_SUCCEEDED", NULL);
    zstr_sendx (monitor, "START", NULL);
    zsock_wait (monitor);
    //  Requests to the actor "saga", through the node's front door.
    keel_client_t *client = keel_client_new ("saga-client", args.bus, "saga");
    int code = EXIT_USAGE;
    if (keel_subscriber_connect (sub, args.events) == -1)
        s_usage ("invalid --events endpoint");
    else if (!client)
        s_usage ("invalid --bus endpoint");
    else
        code = s_run (&args, sub, monitor, client);

    zactor_destroy (&monitor);
    keel_client_destroy (&client);
    keel_subscriber_destroy (&sub);
    return code;
}
