/*  embed.c - keel inside your own program: a node with the registry, the
    saga coordinator and the demo shop, started in this process, and two
    sagas run through it.

    usage: example_embed

        this process
        +----------------------------------------------------------------+
        |  main thread            node "embed" (a zactor)                 |
        |  keel_client  --inproc-->  front door --> saga --> orders       |
        |  "saga.start"              (no tcp)        |   --> inventory    |
        |                                            v   --> payments     |
        |                                         registry   (shop actor) |
        +----------------------------------------------------------------+

    What it shows, in order:
      1. a node config written in code (keel_config_load_string): the same
         ZPL text `keel node -c FILE` reads, so what works here works there;
      2. your own table of actors (keel_actor_def_t): a program links only
         the actors it names, and may add its own;
      3. the node started as a zactor, and its start-up status read;
      4. a client on the node's inproc front door (keel_node_bus_endpoint):
         the same request the CLI sends over tcp;
      5. a saga that completes, and one whose payment is declined, so the
         steps done before it are compensated (undone) in reverse order;
      6. a clean stop: every actor stopped, every socket closed.

    Exit status: 0 when the first saga ended COMPLETED and the second
    COMPENSATED, 1 otherwise.

    Build it outside this tree with pkg-config:
        cc embed.c $(pkg-config --cflags --libs keel) -o embed
*/
#include "keel_client.h"
#include "keel_node.h"
#include "registry.pb-c.h"
#include "registry_actor.h"
#include "saga.pb-c.h"
#include "saga_actor.h"
#include "saga_machine.h" //  keel_saga_state_name, for printing
#include "shop_actor.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

//  The actors this program can run, by the names its config uses. The node
//  starts those its `node/actors` list names. A table ends with {NULL}.
static const keel_actor_def_t s_actors[] = {
    {"registry", keel_registry_actor, "where the participants are found"},
    {"saga", keel_saga_actor, "the saga coordinator"},
    {"shop", keel_shop_actor, "demo participants: orders, inventory, payments"},
    {NULL, NULL, NULL},
};

//  The node's config. No `bus` or `events` key: this node talks over inproc
//  only, inside this process (add `bus = tcp://127.0.0.1:7700` and the
//  `keel` CLI can reach it too). The saga log path is filled in below.
//
//  The `order` saga: create the order, reserve the stock, charge the
//  payment. Each step names its participant (a registry name), the action
//  and the compensation that undoes it. CONFLICT is a business refusal
//  ("payment declined"): retrying it cannot help, so it fails at once.
static const char *s_config_format = "node\n"
                                     "    name = embed\n"
                                     "    actors\n"
                                     "        registry\n"
                                     "        saga\n"
                                     "        shop\n"
                                     "saga\n"
                                     "    log = \"%s\"\n"
                                     "    definition\n"
                                     "        name = order\n"
                                     "        step\n"
                                     "            name = create\n"
                                     "            service = orders\n"
                                     "            action = create\n"
                                     "            compensation = cancel\n"
                                     "            non_retryable = CONFLICT\n"
                                     "        step\n"
                                     "            name = reserve\n"
                                     "            service = inventory\n"
                                     "            action = reserve\n"
                                     "            compensation = release\n"
                                     "            non_retryable = CONFLICT\n"
                                     "        step\n"
                                     "            name = charge\n"
                                     "            service = payments\n"
                                     "            action = charge\n"
                                     "            compensation = refund\n"
                                     "            non_retryable = CONFLICT\n"
                                     "shop\n"
                                     "    stock = 100\n";

//  The shop's services register with the registry as they start, a moment
//  after the node is up. A saga started before that would find no instance
//  for its first step (and retry). Ask the registry until all three are
//  there, for at most `timeout_ms`. Returns 0, or -1 on timeout.
static int
s_wait_participants (const char *bus, int timeout_ms)
{
    keel_client_t *registry = keel_client_new ("embed", bus, "registry");
    if (!registry)
        return -1;
    const char *services[] = {"orders", "inventory", "payments"};
    int64_t deadline = zclock_mono () + timeout_ms;
    int found = 0;
    while (found < 3 && zclock_mono () < deadline) {
        Keel__DiscoverRequest req = KEEL__DISCOVER_REQUEST__INIT;
        req.service = (char *)services[found];
        Keel__InstanceList *list = NULL;
        int rc = keel_client_call (registry, "registry.discover", &req.base,
                                   NULL, &keel__instance_list__descriptor,
                                   (ProtobufCMessage **)&list, NULL);
        if (rc == KEEL_OK && list->n_instances > 0)
            found++; //  this one is there: ask about the next
        else
            zclock_sleep (20);
        if (list)
            protobuf_c_message_free_unpacked (&list->base, NULL);
    }
    keel_client_destroy (&registry);
    return found == 3 ? 0 : -1;
}

//  Start one `order` saga with `input` (JSON) and wait for its end. Prints
//  the outcome and returns the saga's final state, or -1 if the call failed.
static int
s_run_order (keel_client_t *saga, const char *title, const char *input)
{
    Keel__StartRequest req = KEEL__START_REQUEST__INIT;
    req.definition = "order";
    req.input.data = (uint8_t *)input; //  every step receives it
    req.input.len = strlen (input);
    req.wait = true;     //  answer when the saga has ended ...
    req.wait_ms = 10000; //  ... or after 10 s, whichever comes first

    //  saga.start is not idempotent (each call starts a saga), so the client
    //  must not resend it. To make it safe to resend, set
    //  req.idempotency_key: the same key again returns the same saga.
    keel_call_opts_t opts = {.timeout_ms = 15000, .retries = KEEL_NO_RETRY};
    Keel__SagaStatus *status = NULL;
    char *error = NULL;
    int rc = keel_client_call (saga, "saga.start", &req.base, &opts,
                               &keel__saga_status__descriptor,
                               (ProtobufCMessage **)&status, &error);
    if (rc != KEEL_OK) {
        printf ("%s: saga.start failed: %s (%s)\n", title, keel_strerror (rc),
                error ? error : "");
        free (error);
        return -1;
    }
    //  The reply is the saga's status: its state, and every step's.
    printf ("%s\n  input %s\n  saga %s: %s\n", title, input, status->id,
            keel_saga_state_name ((int)status->state));
    for (size_t i = 0; i < status->n_steps; i++) {
        const Keel__StepStatus *step = status->steps[i];
        printf ("    %-8s %-12s", step->name,
                keel_saga_step_state_name ((int)step->state));
        if (*step->last_error)
            printf ("  %s", step->last_error); //  e.g. "CONFLICT: ..."
        else if (step->output.len) //  the participant's reply (JSON)
            printf ("  %.*s", (int)step->output.len,
                    (const char *)step->output.data);
        printf ("\n");
    }
    int state = (int)status->state;
    protobuf_c_message_free_unpacked (&status->base, NULL);
    return state;
}

int
main (void)
{
    //  The saga log is a SQLite file: every saga change is written there
    //  before it takes effect, so a restarted node resumes what was running.
    //  A fresh directory keeps this run's log apart (":memory:" also works,
    //  without durability).
    char dir[] = "/tmp/keel-embed-XXXXXX";
    if (!mkdtemp (dir)) {
        perror ("mkdtemp");
        return 1;
    }
    char *log_path = zsys_sprintf ("%s/saga.db", dir);
    char *text = zsys_sprintf (s_config_format, log_path);

    //  1. The config: parsed and checked as a file would be. A mistake is
    //  reported as "<embed>:LINE: key '...': ...".
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "<embed>", &error);
    zstr_free (&text);
    if (!config) {
        fprintf (stderr, "embed: %s\n", error);
        free (error);
        return 1;
    }

    //  2, 3. The node: it starts the actors the config lists, from our
    //  table. `args` must outlive the node (it is on main's stack: fine).
    keel_node_args_t args = {config, s_actors};
    zactor_t *node = zactor_new (keel_node_actor, &args);
    error = node ? keel_actor_status (node) : strdup ("cannot start");
    if (error) {
        fprintf (stderr, "embed: the node did not start: %s\n", error);
        free (error);
        zactor_destroy (&node);
        keel_config_destroy (&config);
        return 1;
    }
    printf ("embed: node 'embed' running registry, saga and shop in this "
            "process; saga log %s\n",
            log_path);

    //  4. The front door, over inproc: requests name the actor they are
    //  for (here "saga"), as they would over tcp from another machine.
    char *bus = keel_node_bus_endpoint ("embed");
    keel_client_t *saga = keel_client_new ("embed", bus, "saga");
    int ok = 0;
    if (s_wait_participants (bus, 10000) == -1)
        fprintf (stderr, "embed: the shop never registered\n");
    else {
        //  5. Two sagas. The shop's demo services fail on demand: "fail"
        //  names the one that refuses.
        int first = s_run_order (saga, "order 1: everything goes through",
                                 "{\"item\":\"apple\",\"qty\":2,"
                                 "\"amount\":30}");
        int second = s_run_order (saga,
                                  "order 2: the payment is declined, so the "
                                  "stock and the order are undone",
                                  "{\"item\":\"apple\",\"qty\":1,"
                                  "\"amount\":999,\"fail\":\"payments\"}");
        ok = first == KEEL__SAGA_STATE__SAGA_COMPLETED &&
             second == KEEL__SAGA_STATE__SAGA_COMPENSATED;
    }
    zstr_free (&bus);

    //  6. Stop: the client first (it belongs to this thread), then the node,
    //  which stops every actor and closes every socket, then the config the
    //  actors were reading.
    keel_client_destroy (&saga);
    zactor_destroy (&node);
    keel_config_destroy (&config);
    printf ("embed: node stopped; %s\n", ok ? "both sagas ended as expected"
                                            : "a saga did not end as expected");

    //  The log and its SQLite companions (WAL, shared memory), if left.
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char *path = zsys_sprintf ("%s%s", log_path, suffixes[i]);
        unlink (path);
        zstr_free (&path);
    }
    rmdir (dir);
    zstr_free (&log_path);
    return ok ? 0 : 1;
}
