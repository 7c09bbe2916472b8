/*  test_cluster.c - three keel nodes, three processes, one cluster.

    Each node is a `keel node -c FILE` process. With network namespaces
    (root, `ip netns`), each node runs in its own namespace, the three joined
    by veth pairs to a bridge in a fourth namespace, so they share no
    loopback; the test itself reaches them from the root namespace over one
    more veth pair on the same bridge. Without namespaces the same scenario
    runs on loopback, a cut link played by SIGSTOP/SIGCONT.

        node a: registry, saga (the order saga)     10.S.0.1
        node b: registry, shop (orders, inventory)  10.S.0.2
        node c: registry, shop (payments)           10.S.0.3
        test:   clients and the keel CLI            10.S.0.254

    Every tcp socket speaks CURVE: each node has its own certificate, and
    the allow directory holds the public certificates of a, b, c and the
    test (whose clients and `keel` runs use KEEL_CERT).

    Scenario: the registries replicate (discovery across nodes, delay
    printed); a stranger is refused (a keypair on no allow-list, and plain
    text), a member is answered; a saga runs with its participants on two other
   nodes; node c is killed (its instances leave every registry by lease; a saga
   started meanwhile waits, and completes when c is back); node b is cut off and
    healed (every registry converges, time printed); node a is killed
    while a saga runs, and resumes it from its log when restarted.
*/
#include "testutil.h"
#include "keel_client.h"
#include "keel_security.h"
#include "registry.pb-c.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NODES 3

typedef struct {
    char name[8];
    char ip[32];
    char bus[128]; //  with ";curve=KEY": clients need the server's key
    char events[128];
    char cert[160]; //  its certificate (and cert_secret)
    char conf[160];
    char log[160];
    pid_t pid;
} s_node_t;

typedef struct {
    bool netns;
    s_node_t node[NODES];
    char dir[64];
    char allow[96];     //  public certificates of the cluster: a, b, c, tester
    char tester[160];   //  the test's own certificate
    char intruder[160]; //  a keypair on no allow-list
} s_cluster_t;

//  Names of namespaces and links: "kt" + a tag unique to this run (set in
//  the runner process, so its teardown finds what a failed test left).
static char s_tag[16];
static int s_subnet;

// ---------------------------------------------------------------------------
//  Shell commands (ip), bounded by testutil_run_cmd

static int
s_sh (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *command = zsys_vprintf (format, args);
    va_end (args);
    char *argv[] = {"/bin/sh", "-c", command, NULL};
    char *output = NULL;
    int rc = testutil_run_cmd (argv, &output);
    if (rc != 0)
        fprintf (stderr, "test_cluster: '%s' -> %d: %s\n", command, rc,
                 output ? output : "");
    free (output);
    free (command);
    return rc;
}

//  Run `command` with /bin/sh; its exit status.
static int
s_sh_quiet (const char *command)
{
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    return testutil_run_cmd (argv, NULL);
}

static void
s_netns_cleanup (void)
{
    //  Deleting a namespace deletes the veth ends in it, and their peers.
    char *argv[] = {
        "/bin/sh", "-c",
        zsys_sprintf ("for n in a b c hub; do ip netns del %s-$n 2>/dev/null; "
                      "done; ip link del %sr 2>/dev/null; true",
                      s_tag, s_tag),
        NULL};
    testutil_run_cmd (argv, NULL);
    free (argv[2]);
}

//  Build the namespaces; false (and nothing left behind) if this machine
//  cannot.
static bool
s_netns_setup (void)
{
    if (geteuid () != 0 || access ("/usr/sbin/ip", X_OK) != 0 ||
        getenv ("KEEL_TEST_NO_NETNS"))
        return false;
    const char *t = s_tag;
    int S = s_subnet;
    if (s_sh ("ip netns add %s-hub && ip -n %s-hub link add br0 type bridge "
              "&& ip -n %s-hub link set br0 up && ip -n %s-hub link set lo up",
              t, t, t, t) != 0) {
        s_netns_cleanup ();
        return false;
    }
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < NODES; i++) {
        const char *n = names[i];
        if (s_sh ("ip netns add %s-%s && "
                  "ip link add %s%s type veth peer name %s%sh && "
                  "ip link set %s%s netns %s-%s && "
                  "ip link set %s%sh netns %s-hub && "
                  "ip -n %s-hub link set %s%sh master br0 up && "
                  "ip -n %s-%s addr add 10.%d.0.%d/24 dev %s%s && "
                  "ip -n %s-%s link set %s%s up && "
                  "ip -n %s-%s link set lo up",
                  t, n, t, n, t, n, t, n, t, n, t, n, t, t, t, n, t, n, S,
                  i + 1, t, n, t, n, t, n, t, n) != 0) {
            s_netns_cleanup ();
            return false;
        }
    }
    //  The test's own way in, from the root namespace.
    if (s_sh ("ip link add %sr type veth peer name %srh && "
              "ip link set %srh netns %s-hub && "
              "ip -n %s-hub link set %srh master br0 up && "
              "ip addr add 10.%d.0.254/24 dev %sr && ip link set %sr up",
              t, t, t, t, t, t, S, t, t) != 0) {
        s_netns_cleanup ();
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------
//  Nodes

static void
s_write_config (s_cluster_t *cl, int i)
{
    s_node_t *node = &cl->node[i];
    const char *actors[] = {"        registry\n        saga\n",
                            "        registry\n        shop\n",
                            "        registry\n        shop\n"};
    char *peers = strdup ("");
    for (int j = 0; j < NODES; j++) {
        if (j == i)
            continue;
        char *more = zsys_sprintf ("%s    peer\n"
                                   "        name = %s\n"
                                   "        endpoint = \"%s\"\n"
                                   "        events = \"%s\"\n",
                                   peers, cl->node[j].name, cl->node[j].bus,
                                   cl->node[j].events);
        free (peers);
        peers = more;
    }
    char *role = NULL;
    if (i == 0) {
        char *order = testutil_order_definition (NULL);
        role =
            zsys_sprintf ("saga\n    log = \"%s/saga.db\"\n%s", cl->dir, order);
        zstr_free (&order);
    } else
        role =
            zsys_sprintf ("shop\n    bind = \"tcp://%s:*\"\n"
                          "    services = %s\n",
                          node->ip, i == 1 ? "orders inventory" : "payments");
    char *text = zsys_sprintf ("security\n"
                               "    certificate = \"%s\"\n"
                               "    allow = \"%s\"\n"
                               "node\n"
                               "    name = %s\n"
                               "    bus = \"%s\"\n"
                               "    events = \"%s\"\n"
                               "    actors\n%s"
                               "registry\n"
                               "    anti_entropy = 200ms\n"
                               "    replica_lease = 1500ms\n"
                               "%s%s",
                               node->cert, cl->allow, node->name, node->bus,
                               node->events, actors[i], peers, role);
    FILE *file = fopen (node->conf, "w");
    ck_assert_ptr_nonnull (file);
    fputs (text, file);
    fclose (file);
    free (text);
    free (role);
    free (peers);
}

static void
s_node_start (s_cluster_t *cl, int i)
{
    s_node_t *node = &cl->node[i];
    unlink (node->log);
    pid_t parent = getpid ();
    node->pid = fork ();
    ck_assert_int_ge (node->pid, 0);
    if (node->pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent)
            _exit (127);
        int fd = open (node->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2 (fd, STDOUT_FILENO);
        dup2 (fd, STDERR_FILENO);
        close (fd);
        if (cl->netns) {
            char ns[32];
            snprintf (ns, sizeof ns, "%s-%s", s_tag, node->name);
            char *argv[] = {"/usr/sbin/ip", "netns", "exec",     ns,  KEEL_BIN,
                            "node",         "-c",    node->conf, NULL};
            execv (argv[0], argv);
        } else {
            char *argv[] = {KEEL_BIN, "node", "-c", node->conf, NULL};
            execv (argv[0], argv);
        }
        _exit (127);
    }
    //  Wait (bounded) for "running" in its log.
    int64_t deadline = zclock_mono () + testutil_slack (10000);
    while (true) {
        char *text = NULL;
        FILE *file = fopen (node->log, "r");
        if (file) {
            text = (char *)calloc (1, 65536);
            size_t n = fread (text, 1, 65535, file);
            text[n] = 0;
            fclose (file);
        }
        bool running = text && strstr (text, "running");
        if (!running && zclock_mono () > deadline)
            ck_abort_msg ("node %s did not start:\n%s", node->name,
                          text ? text : "(no output)");
        free (text);
        if (running)
            break;
        int status;
        ck_assert_msg (waitpid (node->pid, &status, WNOHANG) == 0,
                       "node %s exited at start", node->name);
        zclock_sleep (20); //  polling its log file, bounded
    }
}

static void
s_node_kill (s_cluster_t *cl, int i)
{
    s_node_t *node = &cl->node[i];
    if (node->pid <= 0)
        return;
    kill (node->pid, SIGKILL);
    testutil_reap (node->pid, 5000);
    node->pid = 0;
}

//  Stop as a user would: SIGTERM, and it must exit 0.
static void
s_node_stop (s_cluster_t *cl, int i)
{
    s_node_t *node = &cl->node[i];
    if (node->pid <= 0)
        return;
    kill (node->pid, SIGCONT); //  in case it was stopped
    kill (node->pid, SIGTERM);
    int status = testutil_reap (node->pid, testutil_slack (10000));
    node->pid = 0;
    ck_assert_msg (status == 0, "node %s exited %d", node->name, status);
}

//  Cut a node off the others, or connect it again.
static void
s_link (s_cluster_t *cl, int i, bool up)
{
    if (cl->netns)
        ck_assert_int_eq (s_sh ("ip -n %s-hub link set %s%sh %s", s_tag, s_tag,
                                cl->node[i].name, up ? "up" : "down"),
                          0);
    else
        kill (cl->node[i].pid, up ? SIGCONT : SIGSTOP);
}

//  Write a new certificate to `path` (and path_secret) and its public key
//  to `key`; with `cl`, allow it in the cluster (its public certificate in
//  the allow directory).
static void
s_keypair (s_cluster_t *cl, const char *path, char *key)
{
    zcert_t *cert = zcert_new ();
    ck_assert_ptr_nonnull (cert);
    ck_assert_int_eq (zcert_save (cert, path), 0);
    if (cl) {
        char *allowed =
            zsys_sprintf ("%s/%s", cl->allow, strrchr (path, '/') + 1);
        ck_assert_int_eq (zcert_save_public (cert, allowed), 0);
        free (allowed);
    }
    snprintf (key, 41, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
}

static void
s_cluster_start (s_cluster_t *cl, bool netns)
{
    memset (cl, 0, sizeof *cl);
    cl->netns = netns;
    snprintf (cl->dir, sizeof cl->dir, "/tmp/keel-cluster-XXXXXX");
    ck_assert_ptr_nonnull (mkdtemp (cl->dir));
    snprintf (cl->allow, sizeof cl->allow, "%s/allow", cl->dir);
    ck_assert_int_eq (mkdir (cl->allow, 0700), 0);
    char key[41];
    snprintf (cl->tester, sizeof cl->tester, "%s/tester.cert", cl->dir);
    s_keypair (cl, cl->tester, key);
    snprintf (cl->intruder, sizeof cl->intruder, "%s/intruder.cert", cl->dir);
    s_keypair (NULL, cl->intruder, key);
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < NODES; i++) {
        s_node_t *node = &cl->node[i];
        //  Formatted in locals first: one struct as both source and
        //  destination of snprintf upsets -Wrestrict.
        char ip[32], bus[128], events[128], conf[160], log[160];
        char cert[160];
        if (netns) {
            snprintf (ip, sizeof ip, "10.%d.0.%d", s_subnet, i + 1);
            snprintf (bus, sizeof bus, "tcp://%s:7700", ip);
            snprintf (events, sizeof events, "tcp://%s:7701", ip);
        } else {
            snprintf (ip, sizeof ip, "127.0.0.1");
            snprintf (bus, sizeof bus, "tcp://127.0.0.1:%d",
                      testutil_free_port ());
            snprintf (events, sizeof events, "tcp://127.0.0.1:%d",
                      testutil_free_port ());
        }
        snprintf (cert, sizeof cert, "%s/%s.cert", cl->dir, names[i]);
        char key[41];
        s_keypair (cl, cert, key);
        //  Every tcp endpoint of the node carries its key.
        size_t len = strlen (bus);
        snprintf (bus + len, sizeof bus - len, ";curve=%s", key);
        len = strlen (events);
        snprintf (events + len, sizeof events - len, ";curve=%s", key);
        snprintf (conf, sizeof conf, "%s/%s.conf", cl->dir, names[i]);
        snprintf (log, sizeof log, "%s/%s.log", cl->dir, names[i]);
        snprintf (node->name, sizeof node->name, "%s", names[i]);
        memcpy (node->ip, ip, sizeof ip);
        memcpy (node->bus, bus, sizeof bus);
        memcpy (node->events, events, sizeof events);
        memcpy (node->conf, conf, sizeof conf);
        memcpy (node->log, log, sizeof log);
        memcpy (node->cert, cert, sizeof cert);
    }
    //  The test's clients and CLI runs are a member of the cluster too.
    ck_assert_int_eq (keel_security_set (cl->tester, cl->allow, true, NULL), 0);
    setenv ("KEEL_CERT", cl->tester, 1);
    for (int i = 0; i < NODES; i++)
        s_write_config (cl, i);
    for (int i = 0; i < NODES; i++)
        s_node_start (cl, i);
}

static void
s_cluster_stop (s_cluster_t *cl)
{
    for (int i = 0; i < NODES; i++)
        s_node_stop (cl, i);
    keel_security_reset ();
    unsetenv ("KEEL_CERT");
    s_sh ("rm -rf %s", cl->dir);
}

// ---------------------------------------------------------------------------
//  The registry of one node, from outside

//  Instances of `service` that node i's registry offers, or -1 if it did
//  not answer.
static int
s_discover (s_cluster_t *cl, int i, const char *service)
{
    keel_client_t *client =
        keel_client_new ("tester", cl->node[i].bus, "registry");
    ck_assert_ptr_nonnull (client);
    keel_client_set_defaults (client, 500, 500, 0);
    Keel__DiscoverRequest req = KEEL__DISCOVER_REQUEST__INIT;
    req.service = (char *)service;
    Keel__InstanceList *list = NULL;
    int rc = keel_client_call (client, "registry.discover", &req.base, NULL,
                               &keel__instance_list__descriptor,
                               (ProtobufCMessage **)&list, NULL);
    int n = rc == KEEL_OK ? (int)list->n_instances : -1;
    if (list)
        protobuf_c_message_free_unpacked (&list->base, NULL);
    keel_client_destroy (&client);
    return n;
}

//  Wait (bounded) until node i offers `want` instances of `service`;
//  returns the milliseconds it took, or -1.
static int64_t
s_wait_count (s_cluster_t *cl, int i, const char *service, int want,
              int timeout_ms)
{
    int64_t start = zclock_mono ();
    while (zclock_mono () - start < timeout_ms) {
        if (s_discover (cl, i, service) == want)
            return zclock_mono () - start;
        zclock_sleep (10); //  polling the registry, bounded
    }
    return -1;
}

static void
s_register (s_cluster_t *cl, int i, const char *id, const char *service)
{
    keel_client_t *client =
        keel_client_new ("tester", cl->node[i].bus, "registry");
    Keel__Instance inst = KEEL__INSTANCE__INIT;
    inst.id = (char *)id;
    inst.service = (char *)service;
    inst.endpoint = "tcp://127.0.0.1:9";
    Keel__RegisterRequest req = KEEL__REGISTER_REQUEST__INIT;
    req.instance = &inst;
    ck_assert_int_eq (keel_client_call (client, "registry.register", &req.base,
                                        NULL, NULL, NULL, NULL),
                      KEEL_OK);
    keel_client_destroy (&client);
}

// ---------------------------------------------------------------------------
//  Sagas, through the CLI

static char *
s_keel (s_cluster_t *cl, const char *verb, const char *arg1, const char *arg2,
        const char *arg3, const char *arg4)
{
    char *argv[12] = {KEEL_BIN, (char *)verb};
    int n = 2;
    const char *args[] = {arg1, arg2, arg3, arg4};
    for (int i = 0; i < 4 && args[i]; i++)
        argv[n++] = (char *)args[i];
    argv[n++] = "--json";
    argv[n++] = "--bus";
    argv[n++] = cl->node[0].bus;
    argv[n] = NULL;
    return testutil_cmd_output (argv);
}

//  Wait (bounded) until saga `id` is in `state`.
static bool
s_wait_saga (s_cluster_t *cl, const char *id, const char *state, int timeout_ms)
{
    char *needle = zsys_sprintf ("\"state\":\"SAGA_%s\"", state);
    int64_t deadline = zclock_mono () + timeout_ms;
    bool found = false;
    while (!found && zclock_mono () < deadline) {
        char *out = s_keel (cl, "saga", "status", id, NULL, NULL);
        //  The saga's own state comes first, before its steps'.
        char *at = out ? strstr (out, "\"state\":\"") : NULL;
        found = at && strncmp (at, needle, strlen (needle)) == 0;
        free (out);
        if (!found)
            zclock_sleep (50); //  polling the coordinator, bounded
    }
    free (needle);
    return found;
}

//  Counter `name` of node a's keel.stats (`keel stats --json`), 0 when
//  absent (JSON leaves zero values out).
static uint64_t
s_counter (s_cluster_t *cl, const char *name)
{
    char *out = s_keel (cl, "stats", NULL, NULL, NULL, NULL);
    ck_assert_ptr_nonnull (out);
    char *needle = zsys_sprintf ("\"%s\"", name);
    const char *at = strstr (out, needle);
    uint64_t value = 0;
    if (at) {
        const char *end = strchr (at, '}');
        const char *v = strstr (at, "\"value\":");
        if (v && (!end || v < end)) {
            v += 8;
            while (*v == ' ' || *v == '"')
                v++;
            value = strtoull (v, NULL, 10);
        }
    }
    free (needle);
    free (out);
    return value;
}

//  The id in a `saga start --json` answer; caller frees.
static char *
s_saga_id (const char *out)
{
    const char *at = out ? strstr (out, "\"id\":\"") : NULL;
    ck_assert_msg (at, "no saga id in: %s", out ? out : "(nothing)");
    at += 6;
    return strndup (at, strcspn (at, "\""));
}

// ---------------------------------------------------------------------------
//  The scenario

static void
s_scenario (bool netns)
{
    s_cluster_t cl;
    s_cluster_start (&cl, netns);
    const char *where = netns ? "netns" : "loopback";
    int slack = testutil_slack (10000);

    //  Discovery across nodes: a's registry learns b's and c's services.
    ck_assert_int_ge (s_wait_count (&cl, 0, "orders", 1, slack), 0);
    ck_assert_int_ge (s_wait_count (&cl, 0, "payments", 1, slack), 0);
    ck_assert_int_ge (s_wait_count (&cl, 2, "inventory", 1, slack), 0);
    //  Replication delay: written on a, visible on c.
    s_register (&cl, 0, "probe-1", "probe");
    int64_t delay = s_wait_count (&cl, 2, "probe", 1, slack);
    ck_assert_int_ge (delay, 0);
    printf ("cluster (%s): a write on a visible on c in %" PRId64 " ms "
            "(target 100 ms)\n",
            where, delay);

    //  Strangers are refused: a keypair on no allow-list, and plain text.
    //  (`keel ping` exits 3: no answer.)
    const char *a_plain_end = strchr (cl.node[0].bus, ';');
    char *a_plain =
        strndup (cl.node[0].bus, (size_t)(a_plain_end - cl.node[0].bus));
    char *intruder =
        zsys_sprintf ("KEEL_CERT=%s %s ping --timeout 500 --bus '%s'",
                      cl.intruder, KEEL_BIN, cl.node[0].bus);
    char *plain = zsys_sprintf ("KEEL_CERT= %s ping --timeout 500 --bus '%s'",
                                KEEL_BIN, a_plain);
    char *member = zsys_sprintf ("%s ping --timeout 2000 --bus '%s'", KEEL_BIN,
                                 cl.node[0].bus);
    ck_assert_int_eq (s_sh_quiet (intruder), 3);
    ck_assert_int_eq (s_sh_quiet (plain), 3);
    ck_assert_int_eq (s_sh_quiet (member), 0);
    //  ...and counted by the node that refused them.
    int64_t counted_by = zclock_mono () + slack;
    while (s_counter (&cl, "security_refused_key") < 1 ||
           s_counter (&cl, "security_refused_handshake") < 1) {
        ck_assert_msg (zclock_mono () < counted_by, "refusals not counted");
        zclock_sleep (50); //  polling the node, bounded
    }
    free (intruder);
    free (plain);
    free (member);
    free (a_plain);

    //  A saga on a, its participants on b and c.
    char *out = s_keel (&cl, "saga", "start", "order", "--input",
                        "{\"item\":\"fig\",\"qty\":1,\"amount\":5}");
    char *id = s_saga_id (out);
    free (out);
    ck_assert_msg (s_wait_saga (&cl, id, "COMPLETED", slack),
                   "saga %s did not complete", id);
    free (id);

    //  Node c dies: its payments instance leaves a's and b's registries
    //  (lease); a saga started meanwhile waits for a payments instance,
    //  and completes when c is back.
    s_node_kill (&cl, 2);
    ck_assert_int_ge (s_wait_count (&cl, 0, "payments", 0, slack), 0);
    ck_assert_int_ge (s_wait_count (&cl, 1, "payments", 0, slack), 0);
    ck_assert_int_eq (s_discover (&cl, 1, "orders"), 1); //  b still serves
    out = s_keel (&cl, "saga", "start", "order", "--input",
                  "{\"item\":\"fig\",\"qty\":1,\"amount\":6}");
    id = s_saga_id (out);
    free (out);
    s_node_start (&cl, 2);
    ck_assert_msg (s_wait_saga (&cl, id, "COMPLETED", slack),
                   "saga %s did not complete after c came back", id);
    free (id);

    //  Node b is cut off: a's replicas of its instances lapse; a write on
    //  a during the cut reaches b once the link is back.
    ck_assert_int_ge (s_wait_count (&cl, 1, "payments", 1, slack), 0);
    s_link (&cl, 1, false);
    ck_assert_int_ge (s_wait_count (&cl, 0, "orders", 0, slack), 0);
    s_register (&cl, 0, "probe-2", "probe2");
    ck_assert_int_ge (s_wait_count (&cl, 2, "probe2", 1, slack), 0);
    s_link (&cl, 1, true);
    int64_t start = zclock_mono ();
    ck_assert_int_ge (s_wait_count (&cl, 1, "probe2", 1, slack), 0);
    ck_assert_int_ge (s_wait_count (&cl, 0, "orders", 1, slack), 0);
    ck_assert_int_ge (s_wait_count (&cl, 2, "orders", 1, slack), 0);
    int64_t converged = zclock_mono () - start;
    printf ("cluster (%s): converged %" PRId64 " ms after the link came "
            "back (target 2000 ms)\n",
            where, converged);
    //  And the cluster works as before.
    out = s_keel (&cl, "saga", "start", "order", "--input",
                  "{\"item\":\"fig\",\"qty\":1,\"amount\":7}");
    id = s_saga_id (out);
    free (out);
    ck_assert_msg (s_wait_saga (&cl, id, "COMPLETED", slack),
                   "saga %s did not complete after the heal", id);
    free (id);

    //  The coordinator's node dies while a saga waits on a slow payment;
    //  restarted, it resumes the saga from its log.
    out = s_keel (&cl, "saga", "start", "order", "--input",
                  "{\"item\":\"fig\",\"qty\":1,\"amount\":8,"
                  "\"delay_ms\":500,\"slow\":\"payments\"}");
    id = s_saga_id (out);
    free (out);
    s_node_kill (&cl, 0);
    s_node_start (&cl, 0);
    ck_assert_msg (s_wait_saga (&cl, id, "COMPLETED", slack),
                   "saga %s did not resume after a restart", id);
    free (id);
    fflush (stdout);
    s_cluster_stop (&cl);
}

START_TEST (test_loopback)
{
    s_scenario (false);
}
END_TEST

START_TEST (test_netns)
{
    if (!s_netns_setup ()) {
        printf ("test_cluster: no network namespaces here (needs root and "
                "ip netns); the loopback scenario covers it\n");
        return;
    }
    s_scenario (true);
    s_netns_cleanup ();
}
END_TEST

static void
s_setup (void)
{
    snprintf (s_tag, sizeof s_tag, "kt%d", (int)getpid () % 100000);
    s_subnet = 100 + (int)getpid () % 100;
}

static void
s_teardown (void)
{
    s_netns_cleanup ();
}

int
main (void)
{
    Suite *suite = suite_create ("cluster");
    TCase *tc = tcase_create ("cluster");
    tcase_add_unchecked_fixture (tc, s_setup, s_teardown);
    tcase_set_timeout (tc, 180);
    tcase_add_test (tc, test_loopback);
    tcase_add_test (tc, test_netns);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
