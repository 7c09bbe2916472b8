/*  test_prober.c - keel_prober: HTTP and TCP checks against a tiny HTTP
    server run by the test itself. */
#include "prober.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

//  Room for a slow machine or valgrind on every "promptly".
#define SLACK_MS 3000

// ---------------------------------------------------------------------------
//  Test scaffolding: a one-connection-at-a-time HTTP server on 127.0.0.1.
//      /ok 200   /fail 503   /redirect 302   /slow waits for the client
//      to give up (at most 5 s)   /big 200 with an endless body   else 404

typedef struct {
    int fd;           //  listening socket
    int port;         //  its port
    int stop[2];      //  write a byte to stop the thread
    pthread_t thread; //  serves connections
} s_server_t;

//  A listening socket on 127.0.0.1, any port; *port_p gets the port.
static int
s_listen (int *port_p)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge (fd, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    ck_assert_int_eq (bind (fd, (struct sockaddr *)&addr, sizeof addr), 0);
    ck_assert_int_eq (listen (fd, 4096), 0);
    socklen_t len = sizeof addr;
    ck_assert_int_eq (getsockname (fd, (struct sockaddr *)&addr, &len), 0);
    *port_p = ntohs (addr.sin_port);
    return fd;
}

//  Wait until the client sends more or closes, at most timeout_ms.
static void
s_wait_client (int fd, int timeout_ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    poll (&pfd, 1, timeout_ms);
}

static void
s_send_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t n = send (fd, data, size, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        size -= (size_t)n;
    }
}

static void
s_serve (int fd)
{
    char request[2048];
    size_t size = 0;
    request[0] = 0;
    while (!strstr (request, "\r\n\r\n")) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (size == sizeof request - 1 || poll (&pfd, 1, 5000) <= 0)
            return;
        ssize_t n = recv (fd, request + size, sizeof request - 1 - size, 0);
        if (n <= 0)
            return;
        size += (size_t)n;
        request[size] = 0;
    }
    const char *reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    if (strncmp (request, "GET /ok ", 8) == 0)
        reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    else if (strncmp (request, "GET /fail ", 10) == 0)
        reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    else if (strncmp (request, "GET /redirect ", 14) == 0)
        reply = "HTTP/1.1 302 Found\r\nLocation: /ok\r\n"
                "Content-Length: 0\r\n\r\n";
    else if (strncmp (request, "GET /slow ", 10) == 0) {
        s_wait_client (fd, 5000);
        reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    } else if (strncmp (request, "GET /big ", 9) == 0) {
        //  Promise 16 MiB, send 128 KiB, then wait: only a client that
        //  stops reading early finishes before its timeout.
        static char body[128 * 1024];
        memset (body, 'x', sizeof body);
        reply = "HTTP/1.1 200 OK\r\nContent-Length: 16777216\r\n\r\n";
        s_send_all (fd, reply, strlen (reply));
        s_send_all (fd, body, sizeof body);
        s_wait_client (fd, 5000);
        return;
    }
    s_send_all (fd, reply, strlen (reply));
}

static void *
s_server_run (void *arg)
{
    s_server_t *server = (s_server_t *)arg;
    while (true) {
        struct pollfd fds[2] = {{server->fd, POLLIN, 0},
                                {server->stop[0], POLLIN, 0}};
        if (poll (fds, 2, -1) < 0 && errno != EINTR)
            break;
        if (fds[1].revents)
            break;
        if (fds[0].revents & POLLIN) {
            int fd = accept (server->fd, NULL, NULL);
            if (fd >= 0) {
                s_serve (fd);
                close (fd);
            }
        }
    }
    return NULL;
}

static s_server_t *
s_server_start (void)
{
    s_server_t *server = (s_server_t *)calloc (1, sizeof (s_server_t));
    server->fd = s_listen (&server->port);
    ck_assert_int_eq (pipe (server->stop), 0);
    ck_assert_int_eq (
        pthread_create (&server->thread, NULL, s_server_run, server), 0);
    return server;
}

static void
s_server_stop (s_server_t **server_p)
{
    s_server_t *server = *server_p;
    ck_assert_int_eq (write (server->stop[1], "x", 1), 1);
    pthread_join (server->thread, NULL);
    close (server->fd);
    close (server->stop[0]);
    close (server->stop[1]);
    free (server);
    *server_p = NULL;
}

static char *
s_url (s_server_t *server, const char *path)
{
    return zsys_sprintf ("http://127.0.0.1:%d%s", server->port, path);
}

// ---------------------------------------------------------------------------
//  Helpers

//  Wait up to timeout_ms for a result. Returns 0 or -1 on timeout.
static int
s_wait_result (keel_prober_t *prober, keel_probe_result_t *result,
               int timeout_ms)
{
    zmq_pollitem_t item = {zsock_resolve (keel_prober_sock (prober)), 0,
                           ZMQ_POLLIN, 0};
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        if (keel_prober_recv (prober, result) == 0)
            return 0;
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return -1;
        zmq_poll (&item, 1, (long)left);
    }
}

//  Run one check to its result.
static void
s_probe (keel_prober_t *prober, keel_probe_kind_t kind, const char *target,
         uint32_t timeout_ms, keel_probe_result_t *result, int64_t *elapsed)
{
    int64_t start = zclock_mono ();
    ck_assert_int_eq (
        keel_prober_submit (prober, kind, "check-1", target, timeout_ms), 0);
    ck_assert_uint_eq (keel_prober_running (prober), 1);
    ck_assert_int_eq (s_wait_result (prober, result, timeout_ms + SLACK_MS), 0);
    if (elapsed)
        *elapsed = zclock_mono () - start;
    ck_assert_str_eq (result->id, "check-1");
    ck_assert_uint_eq (keel_prober_running (prober), 0);
}

//  Make sure the process may hold `wanted` descriptors; false if it cannot.
static bool
s_enough_fds (rlim_t wanted)
{
    struct rlimit limit;
    ck_assert_int_eq (getrlimit (RLIMIT_NOFILE, &limit), 0);
    if (limit.rlim_cur >= wanted)
        return true;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted)
        return false;
    limit.rlim_cur = wanted;
    return setrlimit (RLIMIT_NOFILE, &limit) == 0;
}

// ---------------------------------------------------------------------------
//  Tests

START_TEST (test_http_ok)
{
    s_server_t *server = s_server_start ();
    keel_prober_t *prober = keel_prober_new ();
    ck_assert_ptr_nonnull (prober);
    ck_assert_uint_eq (keel_prober_running (prober), 0);
    char *url = s_url (server, "/ok");
    keel_probe_result_t result;
    s_probe (prober, KEEL_PROBE_HTTP, url, 5000, &result, NULL);
    ck_assert (result.passed);
    ck_assert_str_eq (result.output, "HTTP 200");
    ck_assert_uint_gt (result.response_time_us, 0);
    keel_probe_result_clear (&result);
    ck_assert_ptr_null (result.id);
    ck_assert_ptr_null (result.output);
    keel_probe_result_clear (&result);
    keel_probe_result_clear (NULL);

    //  A check starts the moment it is submitted: the thread is woken, not
    //  polling (its backstop alone would make this take 20 s)
    int64_t start = zclock_mono ();
    for (int i = 0; i < 20; i++) {
        s_probe (prober, KEEL_PROBE_HTTP, url, 5000, &result, NULL);
        ck_assert (result.passed);
        keel_probe_result_clear (&result);
    }
    ck_assert_int_lt (zclock_mono () - start, SLACK_MS);

    //  Nothing else arrives
    ck_assert_int_eq (keel_prober_recv (prober, &result), -1);
    ck_assert_ptr_null (result.id);

    zstr_free (&url);
    keel_prober_destroy (&prober);
    ck_assert_ptr_null (prober);
    keel_prober_destroy (&prober);
    keel_prober_destroy (NULL);
    s_server_stop (&server);
}
END_TEST

START_TEST (test_http_fails)
{
    s_server_t *server = s_server_start ();
    keel_prober_t *prober = keel_prober_new ();
    const char *paths[] = {"/fail", "/redirect", "/missing"};
    const char *outputs[] = {"HTTP 503", "HTTP 302", "HTTP 404"};
    for (int i = 0; i < 3; i++) {
        char *url = s_url (server, paths[i]);
        keel_probe_result_t result;
        s_probe (prober, KEEL_PROBE_HTTP, url, 5000, &result, NULL);
        ck_assert (!result.passed);
        ck_assert_str_eq (result.output, outputs[i]);
        keel_probe_result_clear (&result);
        zstr_free (&url);
    }
    keel_prober_destroy (&prober);
    s_server_stop (&server);
}
END_TEST

START_TEST (test_http_timeout)
{
    s_server_t *server = s_server_start ();
    keel_prober_t *prober = keel_prober_new ();
    char *url = s_url (server, "/slow");
    keel_probe_result_t result;
    int64_t elapsed;
    s_probe (prober, KEEL_PROBE_HTTP, url, 300, &result, &elapsed);
    ck_assert (!result.passed);
    ck_assert_str_eq (result.output, "timeout after 300 ms");
    ck_assert_int_ge (elapsed, 290);
    ck_assert_int_lt (elapsed, 300 + SLACK_MS);
    ck_assert_uint_ge (result.response_time_us, 290000);
    keel_probe_result_clear (&result);
    zstr_free (&url);
    keel_prober_destroy (&prober);
    s_server_stop (&server);
}
END_TEST

START_TEST (test_http_big_body)
{
    //  The body is abandoned past 64 KiB; the status decides, long before
    //  the timeout.
    s_server_t *server = s_server_start ();
    keel_prober_t *prober = keel_prober_new ();
    char *url = s_url (server, "/big");
    keel_probe_result_t result;
    int64_t elapsed;
    s_probe (prober, KEEL_PROBE_HTTP, url, 10000, &result, &elapsed);
    ck_assert (result.passed);
    ck_assert_str_eq (result.output, "HTTP 200");
    ck_assert_int_lt (elapsed, SLACK_MS);
    keel_probe_result_clear (&result);
    zstr_free (&url);
    keel_prober_destroy (&prober);
    s_server_stop (&server);
}
END_TEST

START_TEST (test_tcp)
{
    s_server_t *server = s_server_start ();
    keel_prober_t *prober = keel_prober_new ();
    char *target = zsys_sprintf ("127.0.0.1:%d", server->port);
    keel_probe_result_t result;
    s_probe (prober, KEEL_PROBE_TCP, target, 5000, &result, NULL);
    ck_assert (result.passed);
    ck_assert_str_eq (result.output, "connected");
    ck_assert_uint_gt (result.response_time_us, 0);
    keel_probe_result_clear (&result);
    zstr_free (&target);

    //  A closed port fails at once
    target = zsys_sprintf ("127.0.0.1:%d", testutil_free_port ());
    int64_t elapsed;
    s_probe (prober, KEEL_PROBE_TCP, target, 10000, &result, &elapsed);
    ck_assert (!result.passed);
    ck_assert_msg (strstr (result.output, "refused"), "output: %s",
                   result.output);
    ck_assert_int_lt (elapsed, SLACK_MS);
    keel_probe_result_clear (&result);
    zstr_free (&target);

    //  So does HTTP to it
    char *url = zsys_sprintf ("http://127.0.0.1:%d/ok", testutil_free_port ());
    s_probe (prober, KEEL_PROBE_HTTP, url, 10000, &result, NULL);
    ck_assert (!result.passed);
    ck_assert_str_eq (result.output, "connect: Connection refused");
    keel_probe_result_clear (&result);
    zstr_free (&url);

    keel_prober_destroy (&prober);
    s_server_stop (&server);
}
END_TEST

START_TEST (test_many_at_once)
{
    s_server_t *server = s_server_start ();
    keel_prober_t *prober = keel_prober_new ();
    char *url = s_url (server, "/ok");
    enum { COUNT = 200 };
    bool seen[COUNT] = {false};
    for (int i = 0; i < COUNT; i++) {
        char id[16];
        snprintf (id, sizeof id, "c%d", i);
        ck_assert_int_eq (
            keel_prober_submit (prober, KEEL_PROBE_HTTP, id, url, 20000), 0);
    }
    ck_assert_uint_eq (keel_prober_running (prober), COUNT);
    for (int i = 0; i < COUNT; i++) {
        keel_probe_result_t result;
        ck_assert_int_eq (s_wait_result (prober, &result, 20000 + SLACK_MS), 0);
        ck_assert_msg (result.passed, "%s: %s", result.id, result.output);
        int n = atoi (result.id + 1);
        ck_assert (n >= 0 && n < COUNT && !seen[n]);
        seen[n] = true;
        keel_probe_result_clear (&result);
    }
    ck_assert_uint_eq (keel_prober_running (prober), 0);
    zstr_free (&url);
    keel_prober_destroy (&prober);
    s_server_stop (&server);
}
END_TEST

START_TEST (test_queue_beyond_running_limit)
{
    //  A listener that never accepts: every check times out. The checks
    //  past KEEL_PROBER_MAX_RUNNING wait for a slot, so they end a whole
    //  timeout later, each with its own full timeout.
    if (!s_enough_fds (KEEL_PROBER_MAX_RUNNING + 512)) {
        fprintf (stderr, "skipped: needs more file descriptors\n");
        return;
    }
    int port;
    int fd = s_listen (&port);
    char *url = zsys_sprintf ("http://127.0.0.1:%d/", port);
    keel_prober_t *prober = keel_prober_new ();
    enum { EXTRA = 10, COUNT = KEEL_PROBER_MAX_RUNNING + EXTRA };
    const uint32_t timeout = 500;
    int64_t start = zclock_mono ();
    for (int i = 0; i < COUNT; i++) {
        char id[16];
        snprintf (id, sizeof id, "q%d", i);
        ck_assert_int_eq (
            keel_prober_submit (prober, KEEL_PROBE_HTTP, id, url, timeout), 0);
    }
    int late = 0;
    for (int i = 0; i < COUNT; i++) {
        keel_probe_result_t result;
        ck_assert_int_eq (s_wait_result (prober, &result, 30000), 0);
        ck_assert (!result.passed);
        ck_assert_str_eq (result.output, "timeout after 500 ms");
        ck_assert_uint_ge (result.response_time_us, 490000);
        if (atoi (result.id + 1) >= KEEL_PROBER_MAX_RUNNING) {
            ck_assert_int_ge (zclock_mono () - start, 2 * timeout - 20);
            late++;
        }
        keel_probe_result_clear (&result);
    }
    ck_assert_int_eq (late, EXTRA);
    ck_assert_uint_eq (keel_prober_running (prober), 0);
    keel_prober_destroy (&prober);
    zstr_free (&url);
    close (fd);
}
END_TEST

START_TEST (test_pending_limit_and_destroy_in_flight)
{
    if (!s_enough_fds (KEEL_PROBER_MAX_RUNNING + 512)) {
        fprintf (stderr, "skipped: needs more file descriptors\n");
        return;
    }
    int port;
    int fd = s_listen (&port);
    char *url = zsys_sprintf ("http://127.0.0.1:%d/", port);
    keel_prober_t *prober = keel_prober_new ();
    size_t accepted = 0;
    while (keel_prober_submit (prober, KEEL_PROBE_HTTP, "p", url, 60000) == 0)
        accepted++;
    ck_assert_int_eq (errno, EAGAIN);
    ck_assert_uint_eq (accepted, KEEL_PROBER_MAX_PENDING);
    ck_assert_uint_eq (keel_prober_running (prober), KEEL_PROBER_MAX_PENDING);
    //  Let the thread start its share of them
    zclock_sleep (300);

    //  1024 connections open, the rest queued: destroy abandons them all
    int64_t start = zclock_mono ();
    keel_prober_destroy (&prober);
    ck_assert_int_lt (zclock_mono () - start, SLACK_MS);
    ck_assert_ptr_null (prober);
    zstr_free (&url);
    close (fd);
}
END_TEST

START_TEST (test_destroy_right_after_submit)
{
    s_server_t *server = s_server_start ();
    char *url = s_url (server, "/slow");
    //  Destroy wakes the thread at once, whether it is asleep in
    //  curl_multi_poll or not yet: 20 rounds take far less than 20 times
    //  the thread's 1 s backstop.
    int64_t start = zclock_mono ();
    for (int round = 0; round < 20; round++) {
        keel_prober_t *prober = keel_prober_new ();
        ck_assert_int_eq (
            keel_prober_submit (prober, KEEL_PROBE_HTTP, "s", url, 60000), 0);
        if (round % 2)
            zclock_sleep (5);
        keel_prober_destroy (&prober);
    }
    ck_assert_int_lt (zclock_mono () - start, SLACK_MS);
    zstr_free (&url);
    s_server_stop (&server);
}
END_TEST

START_TEST (test_submit_rejects)
{
    keel_prober_t *prober = keel_prober_new ();
    char long_id[KEEL_PROBER_MAX_ID + 2];
    memset (long_id, 'i', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    struct {
        int kind;
        const char *id;
        const char *target;
        uint32_t timeout;
    } bad[] = {
        {KEEL_PROBE_HTTP, "a", "http://127.0.0.1:80/", 0},
        {3, "a", "http://127.0.0.1:80/", 100},
        {0, "a", "127.0.0.1:80", 100},
        {KEEL_PROBE_HTTP, NULL, "http://127.0.0.1:80/", 100},
        {KEEL_PROBE_HTTP, long_id, "http://127.0.0.1:80/", 100},
        {KEEL_PROBE_HTTP, "a", NULL, 100},
        {KEEL_PROBE_HTTP, "a", "", 100},
        {KEEL_PROBE_HTTP, "a", "https://127.0.0.1:443/", 100},
        {KEEL_PROBE_HTTP, "a", "ftp://127.0.0.1:21/", 100},
        {KEEL_PROBE_HTTP, "a", "file:///etc/passwd", 100},
        {KEEL_PROBE_HTTP, "a", "127.0.0.1:80", 100},
        {KEEL_PROBE_HTTP, "a", "http://", 100},
        {KEEL_PROBE_HTTP, "a", "http:///path", 100},
        {KEEL_PROBE_HTTP, "a", "http://:80/", 100},
        {KEEL_PROBE_HTTP, "a", "http://host:0/", 100},
        {KEEL_PROBE_HTTP, "a", "http://host:65536/", 100},
        {KEEL_PROBE_HTTP, "a", "http://host:123456/", 100},
        {KEEL_PROBE_HTTP, "a", "http://host:/", 100},
        {KEEL_PROBE_HTTP, "a", "http://host:8x/", 100},
        {KEEL_PROBE_HTTP, "a", "http://user@host:80/", 100},
        {KEEL_PROBE_HTTP, "a", "http://host:80/a b", 100},
        {KEEL_PROBE_HTTP, "a", "http://[]:80/", 100},
        {KEEL_PROBE_HTTP, "a", "http://[::1:80/", 100},
        {KEEL_PROBE_HTTP, "a", "http://[::1]x/", 100},
        {KEEL_PROBE_TCP, "a", "127.0.0.1", 100},
        {KEEL_PROBE_TCP, "a", "127.0.0.1:", 100},
        {KEEL_PROBE_TCP, "a", ":80", 100},
        {KEEL_PROBE_TCP, "a", "http://127.0.0.1:80", 100},
        {KEEL_PROBE_TCP, "a", "127.0.0.1:80/path", 100},
        {KEEL_PROBE_TCP, "a", "[::1]", 100},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        ck_assert_msg (
            keel_prober_submit (prober, (keel_probe_kind_t)bad[i].kind,
                                bad[i].id, bad[i].target, bad[i].timeout) == -1,
            "accepted case %zu: %s", i,
            bad[i].target ? bad[i].target : "(null)");
        ck_assert_int_eq (errno, EINVAL);
    }
    ck_assert_uint_eq (keel_prober_running (prober), 0);

    //  A long target is refused; the longest id and these shapes are fine
    char *long_target = (char *)malloc (KEEL_PROBER_MAX_TARGET + 2);
    memcpy (long_target, "http://h/", 9);
    memset (long_target + 9, 'p', KEEL_PROBER_MAX_TARGET - 8);
    long_target[KEEL_PROBER_MAX_TARGET + 1] = 0;
    ck_assert_int_eq (
        keel_prober_submit (prober, KEEL_PROBE_HTTP, "a", long_target, 100),
        -1);
    free (long_target);
    long_id[KEEL_PROBER_MAX_ID] = 0;
    const char *good_http[] = {"http://127.0.0.1:1/", "HTTP://localhost:1",
                               "http://[::1]:1/health?x=1",
                               "http://my-host.example_1:1/a/b"};
    for (size_t i = 0; i < sizeof good_http / sizeof good_http[0]; i++)
        ck_assert_msg (keel_prober_submit (prober, KEEL_PROBE_HTTP, long_id,
                                           good_http[i], 100) == 0,
                       "refused %s", good_http[i]);
    ck_assert_int_eq (
        keel_prober_submit (prober, KEEL_PROBE_TCP, "", "[::1]:1", 100), 0);
    ck_assert_uint_eq (keel_prober_running (prober), 5);
    //  Pending checks are abandoned
    keel_prober_destroy (&prober);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("prober");
    TCase *tc = tcase_create ("core");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_http_ok);
    tcase_add_test (tc, test_http_fails);
    tcase_add_test (tc, test_http_timeout);
    tcase_add_test (tc, test_http_big_body);
    tcase_add_test (tc, test_tcp);
    tcase_add_test (tc, test_many_at_once);
    tcase_add_test (tc, test_queue_beyond_running_limit);
    tcase_add_test (tc, test_pending_limit_and_destroy_in_flight);
    tcase_add_test (tc, test_destroy_right_after_submit);
    tcase_add_test (tc, test_submit_rejects);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
