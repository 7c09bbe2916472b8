/*  test_example_cluster.c - examples/cluster/cluster.sh: three `keel node`
    processes on loopback tcp (A: registry, breaker, gateway; B: saga;
    C: shop, echo), started, demonstrated and stopped by the script, on
    ports and a run directory of the test's choosing.

    Checks that the demo's saga ran across nodes (the coordinator on B says
    COMPLETED; the participants on C applied exactly its three effects, and
    the compensations of the declined one), that HTTP through A's gateway
    reached the saga on B and echo on C, and that stop leaves no process
    and no file behind.

    Skipped under KEEL_TEST_MEMCHECK: it runs processes (the same code runs
    in-process under valgrind in test_saga, test_gateway, test_node). */
#include "keel_client.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_SCRIPT  KEEL_SOURCE_DIR "/examples/cluster/cluster.sh"
#define S_PORTS   11 //  the script uses BASE+0 .. BASE+10
#define S_NODES   3
#define S_PATIENT 20000

//  The cluster under test.
typedef struct {
    int base;            //  first port
    char dir[64];        //  run directory
    char base_arg[16];   //  base as text
    pid_t pids[S_NODES]; //  node processes, once started (0 = unknown)
} s_cluster_t;

//  True if nothing listens on 127.0.0.1:port (with SO_REUSEADDR, as libzmq
//  binds: connections closing in TIME_WAIT do not count).
static bool
s_port_free (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    int on = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    addr.sin_port = htons ((uint16_t)port);
    bool ok = bind (fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close (fd);
    return ok;
}

//  A first port with S_PORTS free ports from it, below the kernel's
//  ephemeral range (where testutil_free_port's ports come from), starting
//  from a place that depends on the pid so parallel runs spread out.
static int
s_free_base (void)
{
    int span = 30000 - 20000;
    int start = 20000 + (int)(getpid () * 37 % span);
    for (int i = 0; i < span; i += S_PORTS) {
        int base = 20000 + (start - 20000 + i) % (span - S_PORTS);
        int port = base;
        while (port < base + S_PORTS && s_port_free (port))
            port++;
        if (port == base + S_PORTS)
            return base;
    }
    ck_abort_msg ("no %d consecutive free ports in 20000..30000", S_PORTS);
    return -1;
}

//  True while pid is a process that has not exited (a zombie has).
static bool
s_alive (pid_t pid)
{
    char path[64], stat[512];
    snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return false;
    size_t n = fread (stat, 1, sizeof stat - 1, file);
    fclose (file);
    stat[n] = 0;
    const char *end = strrchr (stat, ')'); //  "PID (COMM) STATE ..."
    return end && end[1] == ' ' && end[2] != 'Z';
}

//  Run `cluster.sh COMMAND` on this cluster. Returns its exit status;
//  *output_p gets what it printed (caller frees).
static int
s_script (s_cluster_t *self, const char *command, char **output_p)
{
    char *argv[] = {
        "/bin/bash",    S_SCRIPT,    "--keel",  KEEL_BIN,        "--base-port",
        self->base_arg, "--run-dir", self->dir, (char *)command, NULL};
    return testutil_run_cmd (argv, output_p);
}

//  Stop everything, whatever state the test left it in: the script's stop,
//  then SIGKILL for any node still there (a failed test must not leave
//  processes behind).
static void
s_cleanup (s_cluster_t *self)
{
    char *output = NULL;
    s_script (self, "stop", &output);
    free (output);
    for (int i = 0; i < S_NODES; i++)
        if (self->pids[i] > 0 && s_alive (self->pids[i]))
            kill (self->pids[i], SIGKILL);
    rmdir (self->dir);
}

//  An assertion that cleans up first: ck_assert ends the test at once.
#define S_CHECK(self, cond, ...)                                               \
    do {                                                                       \
        if (!(cond)) {                                                         \
            s_cleanup (self);                                                  \
            ck_abort_msg (__VA_ARGS__);                                        \
        }                                                                      \
    } while (0)

//  Read the node pids the script wrote. Returns how many it found.
static int
s_read_pids (s_cluster_t *self)
{
    const char *names[S_NODES] = {"a", "b", "c"};
    int found = 0;
    for (int i = 0; i < S_NODES; i++) {
        char path[128];
        snprintf (path, sizeof path, "%s/node-%s.pid", self->dir, names[i]);
        FILE *file = fopen (path, "r");
        int pid = 0;
        if (file) {
            if (fscanf (file, "%d", &pid) == 1 && pid > 0)
                found++;
            fclose (file);
        }
        self->pids[i] = pid;
    }
    return found;
}

typedef struct {
    bool done;
    int code;
    char *data;
} s_raw_t;

static void
s_on_raw (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_raw_t *raw = (s_raw_t *)arg;
    raw->done = true;
    raw->code = reply->code;
    raw->data = strndup ((const char *)reply->data, reply->size);
}

//  The shop's effects as node C's shop reports them (JSON text, caller
//  frees), or NULL if the call failed.
static char *
s_shop_effects (s_cluster_t *self)
{
    char *bus = zsys_sprintf ("tcp://127.0.0.1:%d", self->base + 4);
    keel_client_t *client = keel_client_new ("test", bus, "shop");
    zstr_free (&bus);
    s_raw_t raw = {false, 0, NULL};
    keel_call_opts_t opts = {.timeout_ms = 5000};
    if (client && keel_client_request_bytes (client, "shop.effects", NULL, 0,
                                             &opts, s_on_raw, &raw)) {
        zpoller_t *poller = zpoller_new (NULL);
        while (!raw.done) {
            zpoller_destroy (&poller);
            poller = zpoller_new (keel_client_sock (client), NULL);
            zpoller_wait (poller, 50);
            if (keel_client_process (client) < 0)
                break;
        }
        zpoller_destroy (&poller);
    }
    keel_client_destroy (&client);
    if (raw.code != KEEL_OK)
        zstr_free (&raw.data);
    return raw.data;
}

//  The journal of saga `id` in `effects` as "a,b,c" ("" if none). Caller
//  frees.
static char *
s_journal (const char *effects, const char *id)
{
    json_t *doc = json_loads (effects, 0, NULL);
    json_t *list = json_object_get (json_object_get (doc, "journal"), id);
    char *text = strdup ("");
    for (size_t i = 0; i < json_array_size (list); i++) {
        char *more =
            zsys_sprintf ("%s%s%s", text, i ? "," : "",
                          json_string_value (json_array_get (list, i)));
        free (text);
        text = more;
    }
    json_decref (doc);
    return text;
}

//  The id in the first "saga ID  order v1  STATE" line after `after`, or
//  "" (a static buffer, overwritten by the next call).
static const char *
s_saga_id (const char *output, const char *after)
{
    static char id[64];
    id[0] = 0;
    const char *at = strstr (output, after);
    at = at ? strstr (at, "\nsaga ") : NULL;
    if (at && sscanf (at, "\nsaga %63s", id) != 1)
        id[0] = 0;
    return id;
}

START_TEST (test_cluster)
{
    if (getenv ("KEEL_TEST_MEMCHECK")) {
        printf ("test_example_cluster: skipped under valgrind (it runs "
                "processes; test_saga, test_gateway and test_node cover the "
                "same code in-process)\n");
        return;
    }
    s_cluster_t cluster = {0}, *self = &cluster;
    snprintf (self->dir, sizeof self->dir, "/tmp/keel-cluster-test-XXXXXX");
    ck_assert_ptr_nonnull (mkdtemp (self->dir));
    self->base = s_free_base ();
    snprintf (self->base_arg, sizeof self->base_arg, "%d", self->base);

    //  start: three processes, each said it runs.
    char *output = NULL;
    int rc = s_script (self, "start", &output);
    s_read_pids (self);
    S_CHECK (self, rc == 0, "start exited %d:\n%s", rc, output);
    S_CHECK (self, s_read_pids (self) == S_NODES, "pids missing:\n%s", output);
    for (int i = 0; i < S_NODES; i++)
        S_CHECK (self, s_alive (self->pids[i]), "node %d not running:\n%s", i,
                 output);
    S_CHECK (self, strstr (output, "actors registry breaker gateway"), "%s",
             output);
    S_CHECK (self, strstr (output, "actors registry saga"), "%s", output);
    S_CHECK (self, strstr (output, "actors registry shop echo"), "%s", output);
    free (output);

    //  A second start refuses: it is running.
    rc = s_script (self, "start", &output);
    S_CHECK (self, rc == 1 && strstr (output, "already running"), "%d:\n%s", rc,
             output);
    free (output);

    //  status: every node answers a ping through its front door.
    rc = s_script (self, "status", &output);
    S_CHECK (self, rc == 0, "status exited %d:\n%s", rc, output);
    S_CHECK (self, strstr (output, "pong from node-a"), "%s", output);
    S_CHECK (self, strstr (output, "pong from node-b"), "%s", output);
    S_CHECK (self, strstr (output, "pong from node-c"), "%s", output);
    free (output);

    //  demo: every result as the script expects.
    rc = s_script (self, "demo", &output);
    S_CHECK (self, rc == 0, "demo exited %d:\n%s", rc, output);
    S_CHECK (self, strstr (output, "demo: every result as expected"), "%s",
             output);

    //  1. The saga the CLI started on B completed...
    char *completed = strdup (s_saga_id (output, "== 1."));
    S_CHECK (self, *completed, "no saga id in:\n%s", output);
    char *line = zsys_sprintf ("saga %s  order v1  COMPLETED", completed);
    S_CHECK (self, strstr (output, line), "%s", output);
    zstr_free (&line);
    //  2. ... the declined one was compensated ...
    char *compensated = strdup (s_saga_id (output, "== 2."));
    line = zsys_sprintf ("saga %s  order v1  COMPENSATED", compensated);
    S_CHECK (self, strstr (output, line), "%s", output);
    zstr_free (&line);
    //  3, 4. ... HTTP on A started one on B and read it back ...
    S_CHECK (self,
             strstr (output, "== 3.") &&
                 strstr (strstr (output, "== 3."), "HTTP 200 {\"id\":\""),
             "%s", output);
    S_CHECK (self, strstr (output, "-> read"), "%s", output);
    //  5. ... and echo on C answered through A's gateway.
    S_CHECK (self, strstr (output, "\"instance\":\"node-c-echo\""), "%s",
             output);
    S_CHECK (self, strstr (output, "-> answered by node-c-echo"), "%s", output);
    free (output);

    //  Across nodes: the participants on C applied each effect once, in
    //  order, for the saga the coordinator on B ran; the declined one's
    //  charge took no effect and the two before it were undone.
    char *effects = s_shop_effects (self);
    S_CHECK (self, effects, "shop.effects on node C failed");
    char *journal = s_journal (effects, completed);
    S_CHECK (self,
             streq (journal, "orders.create,inventory.reserve,"
                             "payments.charge"),
             "journal of %s: %s", completed, journal);
    free (journal);
    journal = s_journal (effects, compensated);
    S_CHECK (self,
             streq (journal, "orders.create,inventory.reserve,"
                             "inventory.release,orders.cancel"),
             "journal of %s: %s", compensated, journal);
    free (journal);
    free (effects);

    //  The coordinator's own record, asked on B by another process.
    char *bus_b = zsys_sprintf ("tcp://127.0.0.1:%d", self->base + 2);
    char *status_argv[] = {KEEL_BIN, "saga", "status", completed,
                           "--bus",  bus_b,  NULL};
    rc = testutil_run_cmd (status_argv, &output);
    S_CHECK (self, rc == 0 && strstr (output, "COMPLETED"), "%d:\n%s", rc,
             output);
    free (output);
    zstr_free (&bus_b);
    free (completed);
    free (compensated);

    //  stop: no process left, no file left.
    rc = s_script (self, "stop", &output);
    S_CHECK (self, rc == 0, "stop exited %d:\n%s", rc, output);
    S_CHECK (self, strstr (output, "stopped 3 node(s)"), "%s", output);
    free (output);
    for (int i = 0; i < S_NODES; i++) {
        //  Gone, or a zombie until init reaps it: it has exited either way.
        int64_t deadline = zclock_mono () + 2000;
        while (s_alive (self->pids[i]) && zclock_mono () < deadline)
            zclock_sleep (20); //  polling another parent's child: no fd
        S_CHECK (self, !s_alive (self->pids[i]), "node pid %d still runs",
                 (int)self->pids[i]);
    }
    S_CHECK (self, access (self->dir, F_OK) == -1 && errno == ENOENT,
             "%s left behind", self->dir);
    for (int port = self->base; port < self->base + S_PORTS; port++)
        S_CHECK (self, s_port_free (port), "port %d still bound", port);

    //  Stopped: status says so; stop again is harmless.
    rc = s_script (self, "status", &output);
    S_CHECK (self, rc == 1 && strstr (output, "node a  not running"), "%d:\n%s",
             rc, output);
    free (output);
    rc = s_script (self, "stop", &output);
    S_CHECK (self, rc == 0, "second stop exited %d:\n%s", rc, output);
    free (output);
    s_cleanup (self);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("example_cluster");
    TCase *tc = tcase_create ("cluster");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_cluster);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
