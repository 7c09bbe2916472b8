/*  test_http_upstream.c - the gateway's HTTP client pools against a small
    scripted HTTP server that runs on the same evloop: framing (length,
    chunked, until close, HEAD, 1xx/204/304), keep-alive reuse, stale
    connections resent, idle connections closed by the upstream, limits,
    garbage, refused and silent upstreams, the queue, cancel, close and
    destroy with calls in flight, callbacks that start calls or end the
    pool, and endpoint parsing. */
#include "http_upstream.h"
#include "keel_common.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
//  A scripted HTTP server on the test's evloop

#define S_MAX_SCONNS 32

typedef struct _tserver_t tserver_t;

typedef struct {
    tserver_t *server;    //  owner
    int fd;               //  -1 when the slot is free
    char in[65536];       //  request bytes not consumed yet
    size_t in_size;       //
    char *out;            //  response bytes to write
    size_t out_size;      //
    size_t out_sent;      //
    int requests;         //  requests read on this connection
    bool close_when_sent; //  close once out is written
    keel_evtimer_t timer; //  paces split writes
} sconn_t;

struct _tserver_t {
    keel_evloop_t *loop;     //  borrowed
    int fd;                  //  listener
    int port;                //  its port
    int accepts;             //  connections accepted
    int requests;            //  requests read
    int eofs;                //  connections the client closed
    const char *response;    //  answer to send; NULL: echo the target
    size_t response_size;    //
    bool silent;             //  read requests, never answer
    bool close_after;        //  close each connection after answering
    int drop_nth;            //  close (no answer) on a connection's nth
                             //  request; 0: never; -1: every request
    size_t split;            //  > 0: write this many bytes per 2 ms
    char last_request[8192]; //  the last request, raw, NUL-terminated
    char targets[1024];      //  targets of all requests, space-separated
    sconn_t conns[S_MAX_SCONNS];
};

static void s_sconn_flush (sconn_t *conn);

static void
s_sconn_close (sconn_t *conn)
{
    if (conn->fd == -1)
        return;
    keel_evloop_timer_stop (conn->server->loop, &conn->timer);
    keel_evloop_del (conn->server->loop, conn->fd);
    close (conn->fd);
    conn->fd = -1;
    free (conn->out);
    conn->out = NULL;
    conn->out_size = conn->out_sent = 0;
    conn->in_size = 0;
}

static void
s_sconn_on_timer (keel_evloop_t *loop, keel_evtimer_t *timer, void *arg)
{
    (void)loop;
    (void)timer;
    s_sconn_flush ((sconn_t *)arg);
}

static void
s_sconn_flush (sconn_t *conn)
{
    tserver_t *server = conn->server;
    while (conn->out_sent < conn->out_size) {
        size_t size = conn->out_size - conn->out_sent;
        if (server->split && size > server->split)
            size = server->split;
        ssize_t n = write (conn->fd, conn->out + conn->out_sent, size);
        if (n < 0 && errno == EAGAIN) {
            keel_evloop_mod (server->loop, conn->fd, EPOLLIN | EPOLLOUT);
            return;
        }
        if (n <= 0) {
            s_sconn_close (conn);
            return;
        }
        conn->out_sent += (size_t)n;
        if (server->split && conn->out_sent < conn->out_size) {
            keel_evloop_timer_start (server->loop, &conn->timer,
                                     keel_now_ms () + 2, s_sconn_on_timer,
                                     conn);
            return;
        }
    }
    keel_evloop_mod (server->loop, conn->fd, EPOLLIN);
    free (conn->out);
    conn->out = NULL;
    conn->out_size = conn->out_sent = 0;
    if (conn->close_when_sent)
        s_sconn_close (conn);
}

static void
s_sconn_send (sconn_t *conn, const char *data, size_t size)
{
    conn->out = (char *)realloc (conn->out, conn->out_size + size);
    ck_assert_ptr_nonnull (conn->out);
    memcpy (conn->out + conn->out_size, data, size);
    conn->out_size += size;
    if (!keel_evtimer_active (&conn->timer))
        s_sconn_flush (conn);
}

//  Content-Length of the request whose headers are in [text, end).
static size_t
s_request_length (const char *text, const char *end)
{
    for (const char *p = text; p + 15 < end; p++)
        if (strncasecmp (p, "\ncontent-length:", 16) == 0)
            return (size_t)strtoul (p + 16, NULL, 10);
    return 0;
}

//  Handle the complete requests in conn->in.
static void
s_sconn_process (sconn_t *conn)
{
    tserver_t *server = conn->server;
    for (;;) {
        char *end = (char *)memmem (conn->in, conn->in_size, "\r\n\r\n", 4);
        if (!end)
            return;
        size_t head = (size_t)(end - conn->in) + 4;
        size_t total = head + s_request_length (conn->in, end);
        if (conn->in_size < total)
            return;
        server->requests++;
        conn->requests++;
        size_t copy = total < sizeof server->last_request - 1
                          ? total
                          : sizeof server->last_request - 1;
        memcpy (server->last_request, conn->in, copy);
        server->last_request[copy] = '\0';
        char target[256] = "";
        sscanf (conn->in, "%*s %255s", target);
        size_t used = strlen (server->targets);
        snprintf (server->targets + used, sizeof server->targets - used, "%s%s",
                  used ? " " : "", target);
        memmove (conn->in, conn->in + total, conn->in_size - total);
        conn->in_size -= total;

        if (server->drop_nth &&
            (server->drop_nth < 0 || conn->requests == server->drop_nth)) {
            s_sconn_close (conn);
            return;
        }
        if (server->silent)
            continue;
        if (server->close_after)
            conn->close_when_sent = true;
        if (server->response)
            s_sconn_send (conn, server->response, server->response_size);
        else {
            char response[512];
            int len =
                snprintf (response, sizeof response,
                          "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
                          "X-Conn: %d\r\n\r\n%s",
                          strlen (target), (int)(conn - server->conns), target);
            s_sconn_send (conn, response, (size_t)len);
        }
        if (conn->fd == -1)
            return;
    }
}

static void
s_sconn_on_event (keel_evloop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)fd;
    sconn_t *conn = (sconn_t *)arg;
    if ((events & EPOLLOUT) && !keel_evtimer_active (&conn->timer)) {
        s_sconn_flush (conn);
        if (conn->fd == -1)
            return;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    ssize_t n = read (conn->fd, conn->in + conn->in_size,
                      sizeof conn->in - conn->in_size);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        conn->server->eofs++;
        s_sconn_close (conn);
        return;
    }
    conn->in_size += (size_t)n;
    s_sconn_process (conn);
}

static void
s_server_on_accept (keel_evloop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)events;
    tserver_t *server = (tserver_t *)arg;
    int client = accept4 (fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client == -1)
        return;
    server->accepts++;
    for (int i = 0; i < S_MAX_SCONNS; i++) {
        sconn_t *conn = &server->conns[i];
        if (conn->fd != -1)
            continue;
        memset (conn, 0, sizeof (*conn));
        conn->server = server;
        conn->fd = client;
        ck_assert_int_eq (
            keel_evloop_add (loop, client, EPOLLIN, s_sconn_on_event, conn), 0);
        return;
    }
    ck_abort_msg ("test server: too many connections");
}

static tserver_t *
s_server_new (keel_evloop_t *loop)
{
    tserver_t *server = (tserver_t *)calloc (1, sizeof (*server));
    ck_assert_ptr_nonnull (server);
    server->loop = loop;
    for (int i = 0; i < S_MAX_SCONNS; i++)
        server->conns[i].fd = -1;
    server->fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge (server->fd, 0);
    int one = 1;
    setsockopt (server->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    ck_assert_int_eq (bind (server->fd, (struct sockaddr *)&addr, sizeof addr),
                      0);
    ck_assert_int_eq (listen (server->fd, 64), 0);
    socklen_t len = sizeof addr;
    getsockname (server->fd, (struct sockaddr *)&addr, &len);
    server->port = ntohs (addr.sin_port);
    ck_assert_int_eq (
        keel_evloop_add (loop, server->fd, EPOLLIN, s_server_on_accept, server),
        0);
    return server;
}

static void
s_server_destroy (tserver_t **server_p)
{
    tserver_t *server = *server_p;
    for (int i = 0; i < S_MAX_SCONNS; i++)
        s_sconn_close (&server->conns[i]);
    keel_evloop_del (server->loop, server->fd);
    close (server->fd);
    free (server);
    *server_p = NULL;
}

//  Answer every request with `text` (a string literal or longer-lived).
static void
s_server_answer (tserver_t *server, const char *text)
{
    server->response = text;
    server->response_size = text ? strlen (text) : 0;
}

//  Client connections the server has open now.
static int
s_server_open (tserver_t *server)
{
    int open = 0;
    for (int i = 0; i < S_MAX_SCONNS; i++)
        open += server->conns[i].fd != -1;
    return open;
}

// ---------------------------------------------------------------------------
//  Client side helpers

//  Run the loop until `expr` holds or `ms` (times the valgrind slack)
//  pass; fail the test on timeout.
#define WAIT_UNTIL(loop, expr, ms)                                             \
    do {                                                                       \
        int64_t until_ = keel_now_ms () + testutil_slack (ms);                 \
        while (!(expr) && keel_now_ms () < until_)                             \
            keel_evloop_run ((loop), 10);                                      \
        ck_assert_msg ((expr), "timed out waiting for %s", #expr);             \
    } while (0)

//  Run the loop for `ms` whatever happens (to see that nothing more
//  does).
static void
s_run_for (keel_evloop_t *loop, int ms)
{
    int64_t until = keel_now_ms () + ms;
    while (keel_now_ms () < until)
        keel_evloop_run (loop, 5);
}

//  What one call's callback saw.
typedef struct {
    int done;                    //  callbacks run (must end at 1)
    keel_upstream_error_t error; //  response fields, copied
    const char *detail;          //
    int status;                  //
    bool reused;                 //
    char *body;                  //  copy, NUL-terminated; NULL if none
    size_t body_size;            //
    char headers[4096];          //  "name=value\n" per header
    int *seq;                    //  if set: shared counter of endings
    int seq_at;                  //  its value when this one ended
} result_t;

static void
s_on_response (keel_http_call_t *call, const keel_upstream_response_t *r,
               void *arg)
{
    ck_assert_ptr_nonnull (call);
    result_t *result = (result_t *)arg;
    result->done++;
    result->error = r->error;
    result->detail = r->detail;
    if (result->seq)
        result->seq_at = ++*result->seq;
    if (r->error != KEEL_UPSTREAM_OK) {
        ck_assert_ptr_nonnull (r->detail);
        return;
    }
    result->status = r->status;
    result->reused = r->reused;
    free (result->body);
    result->body = NULL;
    result->body_size = r->body_size;
    if (r->body_size) {
        result->body = (char *)malloc (r->body_size + 1);
        memcpy (result->body, r->body, r->body_size);
        result->body[r->body_size] = '\0';
    } else
        ck_assert_ptr_null (r->body);
    result->headers[0] = '\0';
    for (size_t i = 0; i < r->n_headers; i++) {
        size_t used = strlen (result->headers);
        snprintf (result->headers + used, sizeof result->headers - used,
                  "%s=%s\n", r->headers[i].name, r->headers[i].value);
    }
}

static void
s_result_clear (result_t *result)
{
    free (result->body);
    memset (result, 0, sizeof (*result));
}

static keel_upstream_request_t
s_request (const char *method, const char *target)
{
    static const keel_http_header_t host = {"Host", "upstream"};
    keel_upstream_request_t request = {
        .method = method,
        .target = target,
        .headers = &host,
        .n_headers = 1,
        .deadline_ms = keel_now_ms () + testutil_slack (5000),
        .retry_safe = true,
    };
    return request;
}

static keel_http_pool_t *
s_pool (keel_evloop_t *loop, int port, const keel_upstream_config_t *config)
{
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
    keel_http_pool_t *pool = keel_http_pool_new (loop, endpoint, config);
    ck_assert_ptr_nonnull (pool);
    return pool;
}

//  Make one call and wait for its end; the result is in *result.
static void
s_call_wait (keel_evloop_t *loop, keel_http_pool_t *pool, const char *method,
             const char *target, bool retry_safe, result_t *result)
{
    s_result_clear (result);
    keel_upstream_request_t request = s_request (method, target);
    request.retry_safe = retry_safe;
    ck_assert_ptr_nonnull (
        keel_http_pool_call (pool, &request, s_on_response, result));
    ck_assert_int_eq (result->done, 0); //  never from inside the call
    WAIT_UNTIL (loop, result->done == 1, 5000);
}

//  Everything a test made is torn down: no fd or timer left on the loop.
static void
s_teardown (keel_evloop_t **loop_p, tserver_t **server_p)
{
    if (server_p && *server_p)
        s_server_destroy (server_p);
    ck_assert_uint_eq (keel_evloop_fds (*loop_p), 0);
    ck_assert_uint_eq (keel_evloop_timers (*loop_p), 0);
    keel_evloop_destroy (loop_p);
}

// ---------------------------------------------------------------------------
//  Endpoints

START_TEST (test_endpoint_parse)
{
    static const struct {
        const char *endpoint;
        int ok;
        const char *host;
        int port;
    } cases[] = {
        {"http://127.0.0.1:8080", 1, "127.0.0.1", 8080},
        {"http://127.0.0.1:8080/", 1, "127.0.0.1", 8080},
        {"http://localhost", 1, "localhost", 80},
        {"http://localhost/", 1, "localhost", 80},
        {"HTTP://Svc-1.example_x.internal:1", 1, "Svc-1.example_x.internal", 1},
        {"http://[::1]:9000", 1, "::1", 9000},
        {"http://[2001:db8::7]", 1, "2001:db8::7", 80},
        {"http://host:65535", 1, "host", 65535},
        {"http://host:00080", 1, "host", 80},
        {"http://host:0", 0, NULL, 0},
        {"http://host:65536", 0, NULL, 0},
        {"http://host:99999999999", 0, NULL, 0},
        {"http://host:", 0, NULL, 0},
        {"http://host:8x", 0, NULL, 0},
        {"http://host:80/path", 0, NULL, 0},
        {"http://host//", 0, NULL, 0},
        {"http://host?x", 0, NULL, 0},
        {"http://", 0, NULL, 0},
        {"http://:80", 0, NULL, 0},
        {"https://host:443", 0, NULL, 0},
        {"tcp://host:80", 0, NULL, 0},
        {"host:80", 0, NULL, 0},
        {"", 0, NULL, 0},
        {"http://::1:80", 0, NULL, 0},
        {"http://[::1", 0, NULL, 0},
        {"http://[]:80", 0, NULL, 0},
        {"http://[not-v6]:80", 0, NULL, 0},
        {"http://[127.0.0.1]:80", 0, NULL, 0},
        {"http://[::1]x", 0, NULL, 0},
        {"http://user@host:80", 0, NULL, 0},
        {"http://ho st:80", 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[64] = "unchanged";
        int port = -1;
        int rc = keel_upstream_endpoint_parse (cases[i].endpoint, host,
                                               sizeof host, &port);
        ck_assert_msg (rc == (cases[i].ok ? 0 : -1), "%s: rc %d",
                       cases[i].endpoint, rc);
        if (cases[i].ok) {
            ck_assert_str_eq (host, cases[i].host);
            ck_assert_int_eq (port, cases[i].port);
        }
    }
    char tiny[4];
    int port;
    ck_assert_int_eq (keel_upstream_endpoint_parse ("http://abcd:80", tiny,
                                                    sizeof tiny, &port),
                      -1);
    ck_assert_int_eq (keel_upstream_endpoint_parse ("http://abc:80", tiny,
                                                    sizeof tiny, &port),
                      0);
    ck_assert_int_eq (keel_upstream_endpoint_parse (NULL, tiny, 4, &port), -1);
}
END_TEST

START_TEST (test_pool_new)
{
    keel_evloop_t *loop = keel_evloop_new ();
    ck_assert_ptr_null (keel_http_pool_new (loop, "tcp://127.0.0.1:80", NULL));
    ck_assert_ptr_null (keel_http_pool_new (loop, "http://[::1", NULL));
    keel_http_pool_t *pool =
        keel_http_pool_new (loop, "http://127.0.0.1:8080/", NULL);
    ck_assert_ptr_nonnull (pool);
    ck_assert_str_eq (keel_http_pool_endpoint (pool), "http://127.0.0.1:8080/");
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.calls + stats.open + stats.connects, 0);
    keel_http_pool_close (&pool);
    ck_assert_ptr_null (pool);
    keel_http_pool_close (&pool); //  NULL accepted
    keel_http_pool_destroy (&pool);
    pool = keel_http_pool_new (loop, "http://localhost:8080", NULL);
    ck_assert_ptr_nonnull (pool);
    keel_http_pool_destroy (&pool);
    ck_assert_ptr_null (pool);
    ck_assert_str_eq (keel_upstream_error_str (KEEL_UPSTREAM_CONNECT),
                      "connect");
    ck_assert_str_eq (keel_upstream_error_str (KEEL_UPSTREAM_TIMEOUT),
                      "timeout");
    ck_assert_str_eq (keel_upstream_error_str (KEEL_UPSTREAM_OK), "ok");
    s_teardown (&loop, NULL);
}
END_TEST

// ---------------------------------------------------------------------------
//  Framing and keep-alive

START_TEST (test_keep_alive)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    char target[32];
    for (int i = 0; i < 5; i++) {
        snprintf (target, sizeof target, "/call/%d", i);
        s_call_wait (loop, pool, "GET", target, true, &result);
        ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
        ck_assert_int_eq (result.status, 200);
        ck_assert_str_eq (result.body, target);
        ck_assert (result.reused == (i > 0));
    }
    ck_assert_int_eq (server->accepts, 1);
    ck_assert_int_eq (server->requests, 5);
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.calls, 5);
    ck_assert_uint_eq (stats.ok, 5);
    ck_assert_uint_eq (stats.failed, 0);
    ck_assert_uint_eq (stats.connects, 1);
    ck_assert_uint_eq (stats.reused, 4);
    ck_assert_uint_eq (stats.open, 1);
    ck_assert_uint_eq (stats.idle, 1);
    ck_assert_uint_eq (stats.queued, 0);
    keel_http_pool_close (&pool);
    WAIT_UNTIL (loop, server->eofs == 1, 2000);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_request_format)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};

    keel_http_header_t headers[] = {
        {"Host", "api.example"},
        {"content-length", "999"},
        {"X-A", "1"},
        {"Connection", "close"},
        {"TRANSFER-ENCODING", "chunked"},
        {"X-Evil", "a\r\nX-Injected: 1"},
        {"X-B", "two words"},
    };
    keel_upstream_request_t request = s_request ("POST", "/p?q=1");
    request.headers = headers;
    request.n_headers = sizeof headers / sizeof headers[0];
    request.body = "hello";
    request.body_size = 5;
    ck_assert_ptr_nonnull (
        keel_http_pool_call (pool, &request, s_on_response, &result));
    WAIT_UNTIL (loop, result.done == 1, 5000);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_str_eq (server->last_request, "POST /p?q=1 HTTP/1.1\r\n"
                                            "Host: api.example\r\n"
                                            "X-A: 1\r\n"
                                            "X-B: two words\r\n"
                                            "Content-Length: 5\r\n"
                                            "\r\n"
                                            "hello");

    //  POST without a body still says how long it is; GET does not.
    s_result_clear (&result);
    request = s_request ("PUT", "/empty");
    ck_assert_ptr_nonnull (
        keel_http_pool_call (pool, &request, s_on_response, &result));
    WAIT_UNTIL (loop, result.done == 1, 5000);
    ck_assert_str_eq (server->last_request, "PUT /empty HTTP/1.1\r\n"
                                            "Host: upstream\r\n"
                                            "Content-Length: 0\r\n\r\n");
    s_call_wait (loop, pool, "GET", "/g", true, &result);
    ck_assert_str_eq (server->last_request,
                      "GET /g HTTP/1.1\r\nHost: upstream\r\n\r\n");
    //  A DELETE with a body gets its length too.
    s_result_clear (&result);
    request = s_request ("DELETE", "/d");
    request.n_headers = 0;
    request.headers = NULL;
    request.body = "xy";
    request.body_size = 2;
    ck_assert_ptr_nonnull (
        keel_http_pool_call (pool, &request, s_on_response, &result));
    WAIT_UNTIL (loop, result.done == 1, 5000);
    ck_assert_str_eq (server->last_request,
                      "DELETE /d HTTP/1.1\r\nContent-Length: 2\r\n\r\nxy");
    ck_assert_int_eq (server->accepts, 1);

    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_response_headers)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    s_server_answer (server, "HTTP/1.1 201 Created\r\n"
                             "Content-Type: text/plain\r\n"
                             "X-Trail:   spaced   \r\n"
                             "X-Empty:\r\n"
                             "Set-Cookie: a=1\r\n"
                             "Set-Cookie: b=2\r\n"
                             "Content-Length: 3\r\n"
                             "\r\n"
                             "abc");
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_int_eq (result.status, 201);
    ck_assert_str_eq (result.body, "abc");
    ck_assert_str_eq (result.headers, "Content-Type=text/plain\n"
                                      "X-Trail=spaced\n"
                                      "X-Empty=\n"
                                      "Set-Cookie=a=1\n"
                                      "Set-Cookie=b=2\n"
                                      "Content-Length=3\n");
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_chunked)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    s_server_answer (server, "HTTP/1.1 200 OK\r\n"
                             "Transfer-Encoding: chunked\r\n"
                             "X-Before: 1\r\n"
                             "\r\n"
                             "5\r\nhello\r\n"
                             "1;ext=1\r\n,\r\n"
                             "6\r\n world\r\n"
                             "0\r\n"
                             "X-Trailer: t\r\n"
                             "\r\n");
    for (int i = 0; i < 2; i++) {
        s_call_wait (loop, pool, "GET", "/c", true, &result);
        ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
        ck_assert_str_eq (result.body, "hello, world");
        ck_assert_uint_eq (result.body_size, 12);
        ck_assert_str_eq (result.headers,
                          "Transfer-Encoding=chunked\nX-Before=1\n");
        ck_assert (result.reused == (i == 1));
    }
    ck_assert_int_eq (server->accepts, 1);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_until_close)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    s_server_answer (server, "HTTP/1.1 200 OK\r\n"
                             "Content-Type: text/plain\r\n"
                             "\r\n"
                             "all of it until the end");
    server->close_after = true;
    for (int i = 0; i < 2; i++) {
        s_call_wait (loop, pool, "GET", "/u", true, &result);
        ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
        ck_assert_str_eq (result.body, "all of it until the end");
        ck_assert (!result.reused);
        ck_assert_uint_eq (keel_http_pool_stats (pool).open, 0);
    }
    ck_assert_int_eq (server->accepts, 2);

    //  A response cut short is a reset, not a response.
    s_server_answer (server, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
                             "short");
    s_call_wait (loop, pool, "GET", "/u", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_RESET);
    s_server_answer (server, "HTTP/1.1 200 OK\r\nContent-Len");
    s_call_wait (loop, pool, "GET", "/u", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_RESET);
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.ok, 2);
    ck_assert_uint_eq (stats.failed, 2);
    ck_assert_uint_eq (stats.resent, 0);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

//  The response arrives a few bytes at a time: headers and body span many
//  reads (the header buffer grows and moves in between).
START_TEST (test_split_response)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    char response[4096];
    size_t len =
        (size_t)snprintf (response, sizeof response, "HTTP/1.1 200 OK\r\n");
    char expect[4096] = "";
    for (int i = 0; i < 30; i++) {
        len += (size_t)snprintf (response + len, sizeof response - len,
                                 "X-Header-Number-%02d: value-%02d-padding\r\n",
                                 i, i);
        size_t used = strlen (expect);
        snprintf (expect + used, sizeof expect - used,
                  "X-Header-Number-%02d=value-%02d-padding\n", i, i);
    }
    len += (size_t)snprintf (response + len, sizeof response - len,
                             "Content-Length: 26\r\n\r\n"
                             "abcdefghijklmnopqrstuvwxyz");
    strcat (expect, "Content-Length=26\n");
    s_server_answer (server, response);
    server->split = 97;
    s_call_wait (loop, pool, "GET", "/s", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_str_eq (result.headers, expect);
    ck_assert_str_eq (result.body, "abcdefghijklmnopqrstuvwxyz");

    //  Chunked, in 3-byte pieces.
    s_server_answer (server, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                             "\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n");
    server->split = 3;
    s_call_wait (loop, pool, "GET", "/s", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_str_eq (result.body, "abcdefg");
    ck_assert (result.reused);
    ck_assert_int_eq (server->accepts, 1);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

//  Bodies larger than one read, by length and chunked.
START_TEST (test_big_body)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    size_t body_size = 300000;
    char *response = (char *)malloc (body_size + 200);
    int head =
        snprintf (response, 200,
                  "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body_size);
    for (size_t i = 0; i < body_size; i++)
        response[head + i] = (char)('a' + i % 26);
    response[head + body_size] = '\0';
    s_server_answer (server, response);
    s_call_wait (loop, pool, "GET", "/big", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_uint_eq (result.body_size, body_size);
    ck_assert (memcmp (result.body, response + head, body_size) == 0);

    //  The same bytes in 1000-byte chunks.
    size_t chunked_cap = body_size * 2;
    char *chunked = (char *)malloc (chunked_cap);
    size_t len = (size_t)snprintf (
        chunked, chunked_cap,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (size_t at = 0; at < body_size; at += 1000) {
        len += (size_t)snprintf (chunked + len, chunked_cap - len, "3e8\r\n");
        memcpy (chunked + len, response + head + at, 1000);
        len += 1000;
        memcpy (chunked + len, "\r\n", 2);
        len += 2;
    }
    len += (size_t)snprintf (chunked + len, chunked_cap - len, "0\r\n\r\n");
    s_server_answer (server, chunked);
    s_call_wait (loop, pool, "GET", "/big", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_uint_eq (result.body_size, body_size);
    ck_assert (memcmp (result.body, response + head, body_size) == 0);
    ck_assert (result.reused);
    ck_assert_int_eq (server->accepts, 1);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
    free (response);
    free (chunked);
}
END_TEST

//  HEAD, 1xx, 204 and 304 have no body whatever the headers say; the
//  connection stays usable after each.
START_TEST (test_no_body)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};

    s_server_answer (server, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    s_call_wait (loop, pool, "HEAD", "/h", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_int_eq (result.status, 200);
    ck_assert_uint_eq (result.body_size, 0);
    ck_assert_str_eq (result.headers, "Content-Length=1234\n");

    s_server_answer (server, "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
    s_call_wait (loop, pool, "DELETE", "/x", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_int_eq (result.status, 204);
    ck_assert_uint_eq (result.body_size, 0);
    ck_assert (result.reused);

    s_server_answer (server, "HTTP/1.1 304 Not Modified\r\n"
                             "Content-Length: 50\r\nETag: \"e\"\r\n\r\n");
    s_call_wait (loop, pool, "GET", "/x", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_int_eq (result.status, 304);
    ck_assert_uint_eq (result.body_size, 0);
    ck_assert (result.reused);

    //  An interim 100 Continue is skipped: the final response is handed out.
    s_server_answer (server, "HTTP/1.1 100 Continue\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    s_call_wait (loop, pool, "POST", "/x", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_int_eq (result.status, 200);
    ck_assert_str_eq (result.body, "ok");
    ck_assert_str_eq (result.headers, "Content-Length=2\n");

    s_server_answer (server, NULL);
    s_call_wait (loop, pool, "GET", "/after", true, &result);
    ck_assert_str_eq (result.body, "/after");
    ck_assert (result.reused);
    ck_assert_int_eq (server->accepts, 1);
    ck_assert_uint_eq (keel_http_pool_stats (pool).reused, 4);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

//  HTTP/1.0 and Connection: close responses end the connection.
START_TEST (test_not_kept_alive)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    s_server_answer (server, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 0);
    s_server_answer (server, "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                             "Content-Length: 2\r\n\r\nok");
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 0);
    //  Bytes after the response: not ours, the connection is not trusted.
    s_server_answer (server, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                             "HTTP/1.1 200 OK\r\n");
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_str_eq (result.body, "ok");
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 0);
    s_server_answer (server, NULL);
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert (!result.reused);
    ck_assert_int_eq (server->accepts, 4);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

// ---------------------------------------------------------------------------
//  Stale and idle connections

//  The upstream closes a kept-alive connection as the next request
//  arrives: a retry-safe call is sent again on a new connection, others
//  end with RESET.
START_TEST (test_stale_resend)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};

    //  A new connection closed before the response: RESET, not resent.
    server->drop_nth = 1;
    s_call_wait (loop, pool, "GET", "/0", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_RESET);
    ck_assert_uint_eq (keel_http_pool_stats (pool).resent, 0);

    //  A kept-alive one: sent again on a new connection.
    server->drop_nth = 2;
    s_call_wait (loop, pool, "GET", "/1", true, &result);
    ck_assert_str_eq (result.body, "/1");
    s_call_wait (loop, pool, "GET", "/2", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_str_eq (result.body, "/2");
    ck_assert (!result.reused);
    ck_assert_int_eq (server->accepts, 3);
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.resent, 1);
    ck_assert_uint_eq (stats.reused, 1);
    ck_assert_uint_eq (stats.connects, 3);
    ck_assert_uint_eq (stats.ok, 2);

    //  Not retry-safe: the same situation fails.
    s_call_wait (loop, pool, "POST", "/3", false, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_RESET);
    ck_assert_int_eq (server->accepts, 3);
    stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.resent, 1);
    ck_assert_uint_eq (stats.failed, 2);
    ck_assert_uint_eq (stats.open, 0);

    //  Part of a response came: not stale, RESET.
    server->drop_nth = 0;
    s_call_wait (loop, pool, "GET", "/4", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    s_server_answer (server, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
                             "short");
    server->close_after = true;
    s_call_wait (loop, pool, "GET", "/5", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_RESET);
    s_server_answer (server, NULL);
    server->close_after = false;

    //  Sent twice at most: when the new connection fails too, RESET.
    s_call_wait (loop, pool, "GET", "/6", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    server->drop_nth = -1;
    s_call_wait (loop, pool, "GET", "/7", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_RESET);
    ck_assert_str_eq (server->targets, "/0 /1 /2 /2 /3 /4 /5 /6 /7 /7");
    stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.resent, 2);
    ck_assert_uint_eq (stats.failed, 4);
    ck_assert_uint_eq (stats.ok, 4);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

//  The upstream closes idle connections: the pool notices and drops them.
START_TEST (test_idle_closed_by_upstream)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    server->close_after = true; //  says keep-alive, closes anyway
    s_call_wait (loop, pool, "GET", "/1", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    WAIT_UNTIL (loop, keel_http_pool_stats (pool).open == 0, 2000);
    ck_assert_uint_eq (keel_http_pool_stats (pool).idle, 0);
    s_call_wait (loop, pool, "GET", "/2", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert (!result.reused);
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.connects, 2);
    ck_assert_uint_eq (stats.resent, 0);
    ck_assert_uint_eq (stats.reused, 0);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

//  The connection used last is used first.
static int
s_conn_of (const result_t *result)
{
    const char *at = strstr (result->headers, "X-Conn=");
    ck_assert_ptr_nonnull (at);
    return atoi (at + 7);
}

START_TEST (test_idle_lifo)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    for (int round = 0; round < 3; round++) {
        result_t results[2] = {{0}};
        int seq = 0;
        for (int i = 0; i < 2; i++) {
            results[i].seq = &seq;
            keel_upstream_request_t request = s_request ("GET", "/x");
            ck_assert_ptr_nonnull (keel_http_pool_call (
                pool, &request, s_on_response, &results[i]));
        }
        WAIT_UNTIL (loop, seq == 2, 5000);
        ck_assert_int_ne (s_conn_of (&results[0]), s_conn_of (&results[1]));
        int last = s_conn_of (&results[results[0].seq_at == 2 ? 0 : 1]);
        result_t next = {0};
        s_call_wait (loop, pool, "GET", "/next", true, &next);
        ck_assert_int_eq (s_conn_of (&next), last);
        ck_assert (next.reused);
        s_result_clear (&next);
        s_result_clear (&results[0]);
        s_result_clear (&results[1]);
    }
    ck_assert_int_eq (server->accepts, 2);
    keel_http_pool_destroy (&pool);
    s_teardown (&loop, &server);
}
END_TEST

//  max_idle and idle_timeout_ms: extra idle connections close, the rest
//  close after the timeout; the most recently used is reused first.
START_TEST (test_idle_limits)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_upstream_config_t config = {.max_idle = 2, .idle_timeout_ms = 150};
    keel_http_pool_t *pool = s_pool (loop, server->port, &config);
    result_t results[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        keel_upstream_request_t request = s_request ("GET", "/i");
        ck_assert_ptr_nonnull (
            keel_http_pool_call (pool, &request, s_on_response, &results[i]));
    }
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 3);
    WAIT_UNTIL (loop, results[0].done && results[1].done && results[2].done,
                5000);
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.open, 2);
    ck_assert_uint_eq (stats.idle, 2);
    WAIT_UNTIL (loop, server->eofs == 1, 2000);
    //  The other two close after the idle timeout.
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 2);
    WAIT_UNTIL (loop, keel_http_pool_stats (pool).open == 0, 2000);
    WAIT_UNTIL (loop, server->eofs == 3, 2000);
    for (int i = 0; i < 3; i++)
        s_result_clear (&results[i]);
    keel_http_pool_close (&pool);
    s_teardown (&loop, &server);
}
END_TEST

// ---------------------------------------------------------------------------
//  Failures

START_TEST (test_timeout)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    server->silent = true;
    keel_upstream_request_t request = s_request ("GET", "/slow");
    int64_t started = keel_now_ms ();
    request.deadline_ms = started + 100;
    ck_assert_ptr_nonnull (
        keel_http_pool_call (pool, &request, s_on_response, &result));
    WAIT_UNTIL (loop, result.done == 1, 3000);
    ck_assert_int_ge (keel_now_ms () - started, 100);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_TIMEOUT);
    ck_assert_int_eq (server->requests, 1);
    //  That connection is closed, not reused.
    WAIT_UNTIL (loop, server->eofs == 1, 2000);
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 0);
    server->silent = false;
    s_call_wait (loop, pool, "GET", "/fast", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_str_eq (result.body, "/fast");
    ck_assert (!result.reused);
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.timeouts, 1);
    ck_assert_uint_eq (stats.failed, 1);
    ck_assert_uint_eq (stats.ok, 1);
    ck_assert_int_eq (server->accepts, 2);

    //  A deadline already past fails on the next loop turn.
    s_result_clear (&result);
    request = s_request ("GET", "/late");
    request.deadline_ms = keel_now_ms () - 1;
    ck_assert_ptr_nonnull (
        keel_http_pool_call (pool, &request, s_on_response, &result));
    ck_assert_int_eq (result.done, 0);
    WAIT_UNTIL (loop, result.done == 1, 1000);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_TIMEOUT);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_bad_response)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    result_t result = {0};
    static const char *garbage[] = {
        "garbage\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        s_server_answer (server, garbage[i]);
        s_call_wait (loop, pool, "GET", "/g", true, &result);
        ck_assert_msg (result.error == KEEL_UPSTREAM_BAD_RESPONSE,
                       "case %zu: %s", i,
                       keel_upstream_error_str (result.error));
        ck_assert_uint_eq (keel_http_pool_stats (pool).open, 0);
    }
    ck_assert_int_eq (server->accepts, 5);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_too_large)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_upstream_config_t config = {.max_response_headers = 512,
                                     .max_response_body = 1000};
    keel_http_pool_t *pool = s_pool (loop, server->port, &config);
    result_t result = {0};

    //  Announced too large: fails at the headers.
    s_server_answer (server,
                     "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_TOO_LARGE);
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 0);

    //  Chunked past the limit; until close past the limit.
    static char chunked[4096];
    size_t len = (size_t)snprintf (
        chunked, sizeof chunked,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 11; i++) {
        len += (size_t)snprintf (chunked + len, sizeof chunked - len,
                                 "64\r\n%0100d\r\n", i);
    }
    snprintf (chunked + len, sizeof chunked - len, "0\r\n\r\n");
    s_server_answer (server, chunked);
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_TOO_LARGE);
    static char until_close[2048];
    snprintf (until_close, sizeof until_close, "HTTP/1.1 200 OK\r\n\r\n%01200d",
              7);
    s_server_answer (server, until_close);
    server->close_after = true;
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_TOO_LARGE);
    server->close_after = false;

    //  Exactly at the limit is fine.
    static char exact[2048];
    snprintf (exact, sizeof exact,
              "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n%01000d", 5);
    s_server_answer (server, exact);
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    ck_assert_uint_eq (result.body_size, 1000);

    //  Headers past their limit.
    static char headers[2048];
    snprintf (headers, sizeof headers,
              "HTTP/1.1 200 OK\r\nX-Big: %0600d\r\nContent-Length: 0\r\n\r\n",
              1);
    s_server_answer (server, headers);
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_TOO_LARGE);
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 0);
    ck_assert_uint_eq (keel_http_pool_stats (pool).failed, 4);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_refused)
{
    keel_evloop_t *loop = keel_evloop_new ();
    keel_http_pool_t *pool = s_pool (loop, testutil_free_port (), NULL);
    result_t result = {0};
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_CONNECT);
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.failed, 1);
    ck_assert_uint_eq (stats.open, 0);
    ck_assert_uint_ge (stats.connects, 1);
    keel_http_pool_destroy (&pool);
    s_teardown (&loop, NULL);
}
END_TEST

//  A name that resolves to several addresses ("localhost": ::1 and
//  127.0.0.1) works with a server on one of them.
START_TEST (test_localhost)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "http://localhost:%d/", server->port);
    keel_http_pool_t *pool = keel_http_pool_new (loop, endpoint, NULL);
    ck_assert_ptr_nonnull (pool);
    result_t result = {0};
    for (int i = 0; i < 3; i++) {
        s_call_wait (loop, pool, "GET", "/l", true, &result);
        ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    }
    ck_assert_int_eq (server->accepts, 1);
    keel_http_pool_destroy (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

//  connect_timeout_ms: a listener whose accept queue is full never
//  completes the handshake.
START_TEST (test_connect_timeout)
{
    keel_evloop_t *loop = keel_evloop_new ();
    int listener = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    ck_assert_int_eq (bind (listener, (struct sockaddr *)&addr, sizeof addr),
                      0);
    ck_assert_int_eq (listen (listener, 0), 0);
    socklen_t len = sizeof addr;
    getsockname (listener, (struct sockaddr *)&addr, &len);
    //  Fill the accept queue.
    int fillers[4];
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect (fillers[i], (struct sockaddr *)&addr, sizeof addr);
    }
    keel_upstream_config_t config = {.connect_timeout_ms = 100};
    keel_http_pool_t *pool = s_pool (loop, ntohs (addr.sin_port), &config);
    result_t result = {0};
    int64_t started = keel_now_ms ();
    s_call_wait (loop, pool, "GET", "/", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_TIMEOUT);
    ck_assert_str_eq (result.detail, "connect timeout");
    ck_assert_int_ge (keel_now_ms () - started, 100);
    ck_assert_int_lt (keel_now_ms () - started, testutil_slack (2000));
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 0);
    keel_http_pool_destroy (&pool);
    for (int i = 0; i < 4; i++)
        close (fillers[i]);
    close (listener);
    s_teardown (&loop, NULL);
}
END_TEST

// ---------------------------------------------------------------------------
//  The queue

START_TEST (test_queue_order)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_upstream_config_t config = {.max_connections = 1};
    keel_http_pool_t *pool = s_pool (loop, server->port, &config);
    result_t results[3] = {{0}};
    int seq = 0;
    const char *targets[] = {"/a", "/b", "/c"};
    for (int i = 0; i < 3; i++) {
        results[i].seq = &seq;
        keel_upstream_request_t request = s_request ("GET", targets[i]);
        ck_assert_ptr_nonnull (
            keel_http_pool_call (pool, &request, s_on_response, &results[i]));
    }
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.queued, 2);
    ck_assert_uint_eq (stats.open, 1);
    WAIT_UNTIL (loop, seq == 3, 5000);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq (results[i].error, KEEL_UPSTREAM_OK);
        ck_assert_int_eq (results[i].seq_at, i + 1);
        ck_assert_str_eq (results[i].body, targets[i]);
        ck_assert (results[i].reused == (i > 0));
        s_result_clear (&results[i]);
    }
    ck_assert_str_eq (server->targets, "/a /b /c");
    ck_assert_int_eq (server->accepts, 1);
    stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.queued, 0);
    ck_assert_uint_eq (stats.reused, 2);
    keel_http_pool_destroy (&pool);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_queue_timeout_and_full)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    server->silent = true;
    keel_upstream_config_t config = {.max_connections = 1, .max_queue = 1};
    keel_http_pool_t *pool = s_pool (loop, server->port, &config);
    result_t first = {0}, second = {0}, third = {0};
    keel_upstream_request_t request = s_request ("GET", "/1");
    keel_http_call_t *call1 =
        keel_http_pool_call (pool, &request, s_on_response, &first);
    ck_assert_ptr_nonnull (call1);
    request = s_request ("GET", "/2");
    request.deadline_ms = keel_now_ms () + 100;
    ck_assert_ptr_nonnull (
        keel_http_pool_call (pool, &request, s_on_response, &second));
    //  The queue is full: refused at once, no callback.
    request = s_request ("GET", "/3");
    ck_assert_ptr_null (
        keel_http_pool_call (pool, &request, s_on_response, &third));
    ck_assert_uint_eq (keel_http_pool_stats (pool).queued, 1);
    WAIT_UNTIL (loop, second.done == 1, 3000);
    ck_assert_int_eq (second.error, KEEL_UPSTREAM_TIMEOUT);
    ck_assert_int_eq (first.done, 0);
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.queued, 0);
    ck_assert_uint_eq (stats.calls, 2);
    ck_assert_uint_eq (stats.timeouts, 1);
    keel_http_call_cancel (call1);
    WAIT_UNTIL (loop, server->eofs == 1, 2000);
    s_run_for (loop, 20);
    ck_assert_int_eq (first.done, 0);
    ck_assert_int_eq (third.done, 0);
    ck_assert_str_eq (server->targets, "/1");
    keel_http_pool_close (&pool);
    s_teardown (&loop, &server);
}
END_TEST

// ---------------------------------------------------------------------------
//  Cancel, close, destroy, callbacks

START_TEST (test_cancel)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    server->silent = true;
    keel_upstream_config_t config = {.max_connections = 2};
    keel_http_pool_t *pool = s_pool (loop, server->port, &config);
    result_t results[4] = {{0}};
    keel_http_call_t *calls[4];
    for (int i = 0; i < 4; i++) {
        keel_upstream_request_t request = s_request ("GET", "/c");
        calls[i] =
            keel_http_pool_call (pool, &request, s_on_response, &results[i]);
        ck_assert_ptr_nonnull (calls[i]);
    }
    //  0: connecting; 3: queued.
    keel_http_call_cancel (calls[0]);
    keel_http_call_cancel (calls[3]);
    //  The queued call 2 takes the freed slot.
    ck_assert_uint_eq (keel_http_pool_stats (pool).queued, 0);
    WAIT_UNTIL (loop, server->requests == 2, 2000);
    //  1: sent, waiting for the response. (The server may or may not
    //  have seen the connection of 0 before it closed.)
    keel_http_call_cancel (calls[1]);
    ck_assert_uint_eq (keel_http_pool_stats (pool).open, 1);
    WAIT_UNTIL (loop, s_server_open (server) == 1, 2000);
    server->silent = false;
    keel_http_call_cancel (calls[2]);
    WAIT_UNTIL (loop, s_server_open (server) == 0, 2000);
    ck_assert_int_eq (server->requests, 2);
    s_run_for (loop, 20);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq (results[i].done, 0);
    keel_upstream_stats_t stats = keel_http_pool_stats (pool);
    ck_assert_uint_eq (stats.open, 0);
    ck_assert_uint_eq (stats.ok + stats.failed, 0);
    //  The pool still works.
    result_t result = {0};
    s_call_wait (loop, pool, "GET", "/ok", true, &result);
    ck_assert_int_eq (result.error, KEEL_UPSTREAM_OK);
    keel_http_pool_close (&pool);
    s_result_clear (&result);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_close_in_flight)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_upstream_config_t config = {.max_connections = 1};
    keel_http_pool_t *pool = s_pool (loop, server->port, &config);
    result_t results[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        keel_upstream_request_t request = s_request ("GET", "/f");
        ck_assert_ptr_nonnull (
            keel_http_pool_call (pool, &request, s_on_response, &results[i]));
    }
    keel_http_pool_close (&pool);
    ck_assert_ptr_null (pool);
    //  The calls in flight (and queued) finish normally.
    WAIT_UNTIL (loop, results[0].done && results[1].done && results[2].done,
                5000);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq (results[i].error, KEEL_UPSTREAM_OK);
        ck_assert_str_eq (results[i].body, "/f");
        s_result_clear (&results[i]);
    }
    //  Then the pool freed itself (valgrind: no leak) and closed its
    //  connection.
    WAIT_UNTIL (loop, server->eofs == 1, 2000);
    s_teardown (&loop, &server);
}
END_TEST

START_TEST (test_destroy_in_flight)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    server->silent = true;
    keel_upstream_config_t config = {.max_connections = 2};
    keel_http_pool_t *pool = s_pool (loop, server->port, &config);
    result_t results[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        keel_upstream_request_t request = s_request ("GET", "/d");
        ck_assert_ptr_nonnull (
            keel_http_pool_call (pool, &request, s_on_response, &results[i]));
    }
    WAIT_UNTIL (loop, server->requests == 2, 2000);
    keel_http_pool_destroy (&pool);
    ck_assert_ptr_null (pool);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq (results[i].done, 1);
        ck_assert_int_eq (results[i].error, KEEL_UPSTREAM_CLOSED);
    }
    WAIT_UNTIL (loop, server->eofs == 2, 2000);
    s_teardown (&loop, &server);
}
END_TEST

//  A callback that starts the next call, until `left` runs out.
typedef struct {
    keel_http_pool_t *pool;
    int left;
    int ok;
    int reused;
} chain_t;

static void
s_on_chain (keel_http_call_t *call, const keel_upstream_response_t *r,
            void *arg)
{
    (void)call;
    chain_t *chain = (chain_t *)arg;
    if (r->error == KEEL_UPSTREAM_OK && r->body_size == 6 &&
        memcmp (r->body, "/chain", 6) == 0)
        chain->ok++;
    chain->reused += r->reused;
    if (--chain->left > 0) {
        keel_upstream_request_t request = s_request ("GET", "/chain");
        ck_assert_ptr_nonnull (
            keel_http_pool_call (chain->pool, &request, s_on_chain, chain));
    }
}

START_TEST (test_callback_starts_call)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    keel_upstream_config_t config = {.max_connections = 1};
    keel_http_pool_t *pool = s_pool (loop, server->port, &config);
    chain_t chain = {pool, 6, 0, 0};
    keel_upstream_request_t request = s_request ("GET", "/chain");
    ck_assert_ptr_nonnull (
        keel_http_pool_call (pool, &request, s_on_chain, &chain));
    WAIT_UNTIL (loop, chain.left == 0, 5000);
    ck_assert_int_eq (chain.ok, 6);
    //  With one connection allowed, each next call waits in the queue for
    //  the connection the callback is returning: all reuse it.
    ck_assert_int_eq (chain.reused, 5);
    ck_assert_int_eq (server->accepts, 1);
    keel_http_pool_close (&pool);
    WAIT_UNTIL (loop, server->eofs == 1, 2000);
    s_teardown (&loop, &server);
}
END_TEST

//  A callback that closes or destroys the pool it was called from.
typedef struct {
    keel_http_pool_t *pool;            //  the pool, to end
    bool destroy;                      //  destroy rather than close
    int calls;                         //  callbacks run
    int ok;                            //  of which OK
    int closed;                        //  of which CLOSED
    keel_upstream_error_t first_error; //  what the first one saw
    char first_body[16];               //  its body, read after the end
} ender_t;

static void
s_on_end_pool (keel_http_call_t *call, const keel_upstream_response_t *r,
               void *arg)
{
    (void)call;
    ender_t *ender = (ender_t *)arg;
    ender->calls++;
    ender->ok += r->error == KEEL_UPSTREAM_OK;
    ender->closed += r->error == KEEL_UPSTREAM_CLOSED;
    if (ender->pool) {
        keel_http_pool_t *pool = ender->pool;
        if (ender->destroy)
            keel_http_pool_destroy (&ender->pool);
        else
            keel_http_pool_close (&ender->pool);
        ck_assert_ptr_null (ender->pool);
        //  The pool is closed (it lives on until this callback returns):
        //  no new calls.
        keel_upstream_request_t request = s_request ("GET", "/no");
        ck_assert_ptr_null (
            keel_http_pool_call (pool, &request, s_on_end_pool, ender));
        //  The response stays readable until this callback returns.
        ender->first_error = r->error;
        if (r->error == KEEL_UPSTREAM_OK)
            snprintf (ender->first_body, sizeof ender->first_body, "%.*s",
                      (int)r->body_size, (const char *)r->body);
    }
}

START_TEST (test_callback_ends_pool)
{
    for (int destroy = 0; destroy < 2; destroy++) {
        keel_evloop_t *loop = keel_evloop_new ();
        tserver_t *server = s_server_new (loop);
        keel_upstream_config_t config = {.max_connections = 2};
        keel_http_pool_t *pool = s_pool (loop, server->port, &config);
        ender_t ender = {pool, destroy == 1, 0, 0, 0, 0, ""};
        keel_upstream_request_t request = s_request ("GET", "/first");
        ck_assert_ptr_nonnull (
            keel_http_pool_call (pool, &request, s_on_end_pool, &ender));
        WAIT_UNTIL (loop, server->requests == 1, 2000);
        //  Two more: one on a second connection that never answers, one
        //  queued.
        server->silent = true;
        request = s_request ("GET", "/second");
        request.deadline_ms = keel_now_ms () + 300;
        ck_assert_ptr_nonnull (
            keel_http_pool_call (pool, &request, s_on_end_pool, &ender));
        request = s_request ("GET", "/third");
        request.deadline_ms = keel_now_ms () + 300;
        ck_assert_ptr_nonnull (
            keel_http_pool_call (pool, &request, s_on_end_pool, &ender));
        //  The first response ends the pool from its callback.
        WAIT_UNTIL (loop, ender.calls >= 1, 2000);
        ck_assert_int_eq (ender.first_error, KEEL_UPSTREAM_OK);
        ck_assert_str_eq (ender.first_body, "/first");
        if (destroy) {
            //  Destroyed: the others ended with CLOSED, inside it.
            ck_assert_int_eq (ender.calls, 3);
            ck_assert_int_eq (ender.closed, 2);
        } else {
            //  Closed: the others finish on their own (timeouts here).
            ck_assert_int_eq (ender.calls, 1);
            WAIT_UNTIL (loop, ender.calls == 3, 8000);
            ck_assert_int_eq (ender.closed, 0);
        }
        ck_assert_int_eq (ender.ok, 1);
        WAIT_UNTIL (loop, s_server_open (server) == 0, 2000);
        s_teardown (&loop, &server);
    }
}
END_TEST

//  The same from an error's callback (connection refused).
START_TEST (test_error_callback_ends_pool)
{
    for (int destroy = 0; destroy < 2; destroy++) {
        keel_evloop_t *loop = keel_evloop_new ();
        keel_http_pool_t *pool = s_pool (loop, testutil_free_port (), NULL);
        ender_t ender = {pool, destroy == 1, 0, 0, 0, 0, ""};
        for (int i = 0; i < 2; i++) {
            keel_upstream_request_t request = s_request ("GET", "/r");
            ck_assert_ptr_nonnull (
                keel_http_pool_call (pool, &request, s_on_end_pool, &ender));
        }
        WAIT_UNTIL (loop, ender.calls >= 1, 2000);
        ck_assert_int_eq (ender.first_error, KEEL_UPSTREAM_CONNECT);
        if (destroy) {
            ck_assert_int_eq (ender.calls, 2);
            ck_assert_int_eq (ender.closed, 1);
        } else {
            WAIT_UNTIL (loop, ender.calls == 2, 2000);
            ck_assert_int_eq (ender.closed, 0);
        }
        s_teardown (&loop, NULL);
    }
}
END_TEST

//  A callback may cancel another call: the first of two to end cancels
//  the other.
typedef struct {
    keel_http_call_t *calls[2]; //  the two calls
    int ended;                  //  callbacks run
} canceller_t;

static void
s_on_cancel_other (keel_http_call_t *call, const keel_upstream_response_t *r,
                   void *arg)
{
    ck_assert_int_eq (r->error, KEEL_UPSTREAM_CLOSED);
    canceller_t *canceller = (canceller_t *)arg;
    canceller->ended++;
    for (int i = 0; i < 2; i++)
        if (canceller->calls[i] != call)
            keel_http_call_cancel (canceller->calls[i]);
    canceller->calls[0] = canceller->calls[1] = NULL;
}

START_TEST (test_callback_cancels_other)
{
    keel_evloop_t *loop = keel_evloop_new ();
    tserver_t *server = s_server_new (loop);
    server->silent = true;
    keel_http_pool_t *pool = s_pool (loop, server->port, NULL);
    canceller_t canceller = {{NULL, NULL}, 0};
    for (int i = 0; i < 2; i++) {
        keel_upstream_request_t request = s_request ("GET", "/a");
        canceller.calls[i] =
            keel_http_pool_call (pool, &request, s_on_cancel_other, &canceller);
        ck_assert_ptr_nonnull (canceller.calls[i]);
    }
    WAIT_UNTIL (loop, server->requests == 2, 2000);
    //  Destroy: the first CLOSED callback cancels the other call.
    keel_http_pool_destroy (&pool);
    ck_assert_int_eq (canceller.ended, 1);
    WAIT_UNTIL (loop, s_server_open (server) == 0, 2000);
    s_teardown (&loop, &server);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("http_upstream");
    TCase *tc = tcase_create ("core");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_endpoint_parse);
    tcase_add_test (tc, test_pool_new);
    tcase_add_test (tc, test_keep_alive);
    tcase_add_test (tc, test_request_format);
    tcase_add_test (tc, test_response_headers);
    tcase_add_test (tc, test_chunked);
    tcase_add_test (tc, test_until_close);
    tcase_add_test (tc, test_split_response);
    tcase_add_test (tc, test_big_body);
    tcase_add_test (tc, test_no_body);
    tcase_add_test (tc, test_not_kept_alive);
    tcase_add_test (tc, test_stale_resend);
    tcase_add_test (tc, test_idle_closed_by_upstream);
    tcase_add_test (tc, test_idle_lifo);
    tcase_add_test (tc, test_idle_limits);
    tcase_add_test (tc, test_timeout);
    tcase_add_test (tc, test_bad_response);
    tcase_add_test (tc, test_too_large);
    tcase_add_test (tc, test_refused);
    tcase_add_test (tc, test_localhost);
    tcase_add_test (tc, test_connect_timeout);
    tcase_add_test (tc, test_queue_order);
    tcase_add_test (tc, test_queue_timeout_and_full);
    tcase_add_test (tc, test_cancel);
    tcase_add_test (tc, test_close_in_flight);
    tcase_add_test (tc, test_destroy_in_flight);
    tcase_add_test (tc, test_callback_starts_call);
    tcase_add_test (tc, test_callback_ends_pool);
    tcase_add_test (tc, test_error_callback_ends_pool);
    tcase_add_test (tc, test_callback_cancels_other);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
