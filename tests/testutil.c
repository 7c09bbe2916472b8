/*  testutil.c - helpers shared by keel's Check suites. */
#include "testutil.h"
#include "node.pb-c.h"
#include "registry.pb-c.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int
testutil_run (Suite *suite)
{
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

char *
testutil_inproc (const char *tag)
{
    static int counter = 0;
    return zsys_sprintf ("inproc://t-%d-%d-%s", (int)getpid (), ++counter, tag);
}

int
testutil_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge (fd, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    addr.sin_port = 0;
    ck_assert_int_eq (bind (fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    ck_assert_int_eq (getsockname (fd, (struct sockaddr *)&addr, &len), 0);
    close (fd);
    return ntohs (addr.sin_port);
}

char *
testutil_write_temp (const char *text)
{
    char *path = strdup ("/tmp/keel-test-XXXXXX");
    int fd = mkstemp (path);
    ck_assert_int_ge (fd, 0);
    size_t len = strlen (text);
    ck_assert_int_eq ((int)write (fd, text, len), (int)len);
    close (fd);
    return path;
}

pid_t
testutil_spawn (char *const argv[], int *out_fd)
{
    int fds[2];
    ck_assert_int_eq (pipe (fds), 0);
    pid_t pid = fork ();
    ck_assert_int_ge (pid, 0);
    if (pid == 0) {
        dup2 (fds[1], STDOUT_FILENO);
        dup2 (fds[1], STDERR_FILENO);
        close (fds[0]);
        close (fds[1]);
        execv (argv[0], argv);
        _exit (127);
    }
    close (fds[1]);
    *out_fd = fds[0];
    return pid;
}

char *
testutil_wait_for (int fd, const char *needle, int timeout_ms)
{
    size_t size = 0, cap = 4096;
    char *text = (char *)calloc (1, cap);
    int64_t deadline = zclock_mono () + timeout_ms;
    while (!strstr (text, needle)) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0) {
            if (timeout_ms >= 1000) //  short waits are expected to miss
                fprintf (stderr, "testutil: no '%s' in:\n%s\n", needle, text);
            free (text);
            return NULL;
        }
        zmq_pollitem_t item = {NULL, fd, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, (long)left) <= 0)
            continue;
        if (size + 1024 >= cap) {
            cap *= 2;
            text = (char *)realloc (text, cap);
        }
        ssize_t n = read (fd, text + size, cap - size - 1);
        if (n <= 0) {
            fprintf (stderr, "testutil: eof before '%s' in:\n%s\n", needle,
                     text);
            free (text);
            return NULL;
        }
        size += (size_t)n;
        text[size] = 0;
    }
    return text;
}

int
testutil_reap (pid_t pid, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    int status = 0;
    while (true) {
        pid_t rc = waitpid (pid, &status, WNOHANG);
        if (rc == pid)
            break;
        if (zclock_mono () >= deadline) {
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            return -1;
        }
        zclock_sleep (10); //  polling a child's exit: no fd to wait on
    }
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

char *
testutil_cmd_output (char *const argv[])
{
    //  The output comes back through a heap slot: GCC 12 at -O3 reads a
    //  local's address passed here as escaping (-Wdangling-pointer).
    char **slot = (char **)calloc (1, sizeof (char *));
    if (!slot)
        return NULL;
    testutil_run_cmd (argv, slot);
    char *output = *slot;
    free (slot);
    return output;
}

int
testutil_run_cmd (char *const argv[], char **output_p)
{
    int fd;
    pid_t pid = testutil_spawn (argv, &fd);
    size_t size = 0, cap = 4096;
    char *text = (char *)calloc (1, cap);
    int64_t deadline = zclock_mono () + 20000;
    while (zclock_mono () < deadline) {
        zmq_pollitem_t item = {NULL, fd, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 100) <= 0)
            continue;
        if (size + 1024 >= cap) {
            cap *= 2;
            text = (char *)realloc (text, cap);
        }
        ssize_t n = read (fd, text + size, cap - size - 1);
        if (n <= 0)
            break;
        size += (size_t)n;
        text[size] = 0;
    }
    close (fd);
    int status = testutil_reap (pid, 1000);
    if (output_p)
        *output_p = text;
    else
        free (text);
    return status;
}

int
testutil_slack (int ms)
{
    return getenv ("KEEL_TEST_MEMCHECK") ? ms * 10 : ms;
}

void
testutil_wait_discovered (keel_client_t *registry, const char *const *services,
                          size_t n, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    for (size_t i = 0; i < n; i++) {
        while (true) {
            Keel__DiscoverRequest req = KEEL__DISCOVER_REQUEST__INIT;
            req.service = (char *)services[i];
            Keel__InstanceList *list = NULL;
            int rc = keel_client_call (registry, "registry.discover", &req.base,
                                       NULL, &keel__instance_list__descriptor,
                                       (ProtobufCMessage **)&list, NULL);
            size_t found = rc == KEEL_OK ? list->n_instances : 0;
            if (list)
                protobuf_c_message_free_unpacked (&list->base, NULL);
            if (found > 0)
                break;
            ck_assert_msg (zclock_mono () < deadline, "%s never registered",
                           services[i]);
            zclock_sleep (20); //  polling the registry, bounded
        }
    }
}

uint64_t
testutil_stat (keel_client_t *client, const char *name)
{
    Keel__Stats *stats = NULL;
    keel_err_t rc = keel_client_call (client, "keel.stats", NULL, NULL,
                                      &keel__stats__descriptor,
                                      (ProtobufCMessage **)&stats, NULL);
    ck_assert_int_eq (rc, KEEL_OK);
    uint64_t value = UINT64_MAX;
    for (size_t k = 0; k < stats->n_counters; k++)
        if (streq (stats->counters[k]->name, name))
            value = stats->counters[k]->value;
    keel__stats__free_unpacked (stats, NULL);
    ck_assert_msg (value != UINT64_MAX, "no counter %s", name);
    return value;
}

char *
testutil_order_definition (const char *step_extra)
{
    static const char *steps[3][4] = {
        {"create", "orders", "create", "cancel"},
        {"reserve", "inventory", "reserve", "release"},
        {"charge", "payments", "charge", "refund"}};
    char *text = strdup ("    definition\n"
                         "        name = order\n");
    for (int i = 0; i < 3; i++) {
        char *more = zsys_sprintf ("%s"
                                   "        step\n"
                                   "            name = %s\n"
                                   "            service = %s\n"
                                   "            action = %s\n"
                                   "            compensation = %s\n"
                                   "%s"
                                   "            non_retryable = CONFLICT\n",
                                   text, steps[i][0], steps[i][1], steps[i][2],
                                   steps[i][3], step_extra ? step_extra : "");
        free (text);
        text = more;
    }
    return text;
}
