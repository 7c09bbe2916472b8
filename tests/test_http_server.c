/*  test_http_server.c - the gateway's HTTP/1.1 front door, driven over
    real loopback sockets. Each test runs the evloop itself and talks to the
    server through plain non-blocking client sockets. */
#include "http_server.h"
#include "keel_common.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

//  How the test application answers.
typedef enum {
    MODE_ECHO = 0, //  at once: 200, a body describing the request
    MODE_DEFER,    //  later, from a timer (`delay_ms`), in arrival order
    MODE_HOLD,     //  not at all: the test answers
    MODE_ERROR,    //  at once, with keel_http_exchange_error
    MODE_HEADERS,  //  at once, status `status`, headers the server skips
    MODE_BIG,      //  at once, a `big_size` byte body
} mode_t_;

#define MAX_PENDING 64

typedef struct {
    keel_evloop_t *loop;
    keel_http_server_t *server;
    mode_t_ mode;
    int status;                                 //  MODE_HEADERS status
    size_t big_size;                            //  MODE_BIG body size
    char *big;                                  //  MODE_BIG body
    bool respond_close;                         //  pass close = true
    int64_t delay_ms;                           //  MODE_DEFER delay
    keel_evtimer_t timer;                       //  MODE_DEFER responder
    keel_http_exchange_t *pending[MAX_PENDING]; //  FIFO of held exchanges
    size_t npending;
    int requests;             //  on_request calls
    int aborts;               //  on_abort calls
    int errors;               //  on_error calls
    int error_status;         //  last on_error status
    char error_reason[64];    //  last on_error reason
    char error_peer[64];      //  last on_error peer
    uint64_t last_id;         //  last exchange id seen
    int64_t started_ms;       //  last exchange's started_ms
    size_t timers_while_held; //  evloop timers seen while one is held
} ctx_t;

typedef struct {
    int fd;
    char *buf; //  bytes received
    size_t len;
    size_t pos; //  parsed up to
    size_t cap;
    bool eof;
    bool reset;
} client_t;

typedef struct {
    int status;
    char version[16];
    char head[4096]; //  status line and headers
    char *body;      //  NUL-terminated copy (freed by resp_free)
    size_t body_size;
} resp_t;

static int64_t
s_deadline (int ms)
{
    return keel_now_ms () + testutil_slack (ms);
}

// ---------------------------------------------------------------------------
//  The application

static void
s_hold (ctx_t *t, keel_http_exchange_t *exchange)
{
    ck_assert_uint_lt (t->npending, MAX_PENDING);
    t->pending[t->npending++] = exchange;
}

static keel_http_exchange_t *
s_pop (ctx_t *t)
{
    ck_assert_uint_gt (t->npending, 0);
    keel_http_exchange_t *exchange = t->pending[0];
    memmove (t->pending, t->pending + 1,
             (t->npending - 1) * sizeof (t->pending[0]));
    t->npending--;
    return exchange;
}

//  Answer with a body describing the request.
static void
s_echo (ctx_t *t, keel_http_exchange_t *exchange)
{
    keel_http_request_t *req = keel_http_exchange_request (exchange);
    char body[8192];
    int len = snprintf (
        body, sizeof body, "%s %s q=%s v=%d.%d body=%.*s",
        keel_http_request_method (req), keel_http_request_path (req),
        keel_http_request_query (req), keel_http_request_version_major (req),
        keel_http_request_version_minor (req),
        (int)keel_http_request_body_size (req),
        keel_http_request_body_size (req)
            ? (const char *)keel_http_request_body (req)
            : "");
    char id[32];
    snprintf (id, sizeof id, "%llu",
              (unsigned long long)keel_http_exchange_id (exchange));
    keel_http_header_t headers[] = {
        {"Content-Type", "text/plain"},
        {"X-Id", id},
        {"X-Peer", keel_http_exchange_peer (exchange)},
    };
    ck_assert_int_eq (keel_http_exchange_respond (exchange, 200, headers, 3,
                                                  body, (size_t)len,
                                                  t->respond_close),
                      0);
}

static void
s_on_timer (keel_evloop_t *loop, keel_evtimer_t *timer, void *arg)
{
    (void)loop;
    (void)timer;
    ctx_t *t = arg;
    //  Those held now; answering one may hand out the next pipelined one
    size_t count = t->npending;
    for (size_t i = 0; i < count; i++)
        s_echo (t, s_pop (t));
    if (t->npending)
        keel_evloop_timer_start (t->loop, &t->timer,
                                 keel_now_ms () + t->delay_ms, s_on_timer, t);
}

static void
s_on_request (keel_http_server_t *server, keel_http_exchange_t *exchange,
              void *arg)
{
    ctx_t *t = arg;
    ck_assert_ptr_eq (server, t->server);
    ck_assert_ptr_null (keel_http_exchange_user (exchange));
    keel_http_exchange_set_user (exchange, t);
    ck_assert_ptr_eq (keel_http_exchange_user (exchange), t);
    ck_assert_uint_gt (keel_http_exchange_id (exchange), t->last_id);
    t->last_id = keel_http_exchange_id (exchange);
    t->started_ms = keel_http_exchange_started_ms (exchange);
    t->requests++;
    switch (t->mode) {
    case MODE_ECHO:
        s_echo (t, exchange);
        break;
    case MODE_DEFER:
        s_hold (t, exchange);
        if (!keel_evtimer_active (&t->timer))
            keel_evloop_timer_start (t->loop, &t->timer,
                                     keel_now_ms () + t->delay_ms, s_on_timer,
                                     t);
        break;
    case MODE_HOLD:
        s_hold (t, exchange);
        break;
    case MODE_ERROR: {
        keel_http_header_t headers[] = {{"X-A", "b"},
                                        {"content-type", "text/evil"}};
        ck_assert_int_eq (keel_http_exchange_error (exchange, 404, "not_found",
                                                    "no \"route\"\n for \\x",
                                                    "req-1", headers, 1),
                          0);
        break;
    }
    case MODE_HEADERS: {
        keel_http_header_t headers[] = {
            {"Content-Length", "999"},
            {"connection", "keep-alive"},
            {"TRANSFER-ENCODING", "chunked"},
            {"X-Ok", "1"},
            {"X-Bad", "a\r\nInjected: 1"},
            {"Bad:Name", "v"},
            {"", "empty"},
        };
        ck_assert_int_eq (keel_http_exchange_respond (exchange, t->status,
                                                      headers, 7, "hello", 5,
                                                      t->respond_close),
                          0);
        break;
    }
    case MODE_BIG:
        ck_assert_int_eq (keel_http_exchange_respond (exchange, 200, NULL, 0,
                                                      t->big, t->big_size,
                                                      false),
                          0);
        break;
    }
}

static void
s_on_abort (keel_http_server_t *server, keel_http_exchange_t *exchange,
            void *arg)
{
    ctx_t *t = arg;
    ck_assert_ptr_eq (server, t->server);
    ck_assert_ptr_eq (keel_http_exchange_user (exchange), t);
    t->aborts++;
    //  Forget it: it must never be answered
    size_t kept = 0;
    for (size_t i = 0; i < t->npending; i++)
        if (t->pending[i] != exchange)
            t->pending[kept++] = t->pending[i];
    ck_assert_uint_eq (kept + 1, t->npending);
    t->npending = kept;
}

static void
s_on_error (keel_http_server_t *server, int status, const char *reason,
            const char *peer, void *arg)
{
    ctx_t *t = arg;
    ck_assert_ptr_eq (server, t->server);
    t->errors++;
    t->error_status = status;
    snprintf (t->error_reason, sizeof t->error_reason, "%s", reason);
    snprintf (t->error_peer, sizeof t->error_peer, "%s", peer);
}

static ctx_t *
s_ctx_new (const keel_http_server_config_t *config, mode_t_ mode)
{
    ctx_t *t = calloc (1, sizeof (*t));
    ck_assert_ptr_nonnull (t);
    t->mode = mode;
    t->delay_ms = 20;
    t->status = 200;
    t->loop = keel_evloop_new ();
    ck_assert_ptr_nonnull (t->loop);
    t->server = keel_http_server_new (t->loop, config, s_on_request, s_on_abort,
                                      s_on_error, t);
    ck_assert_ptr_nonnull (t->server);
    ck_assert_int_eq (keel_http_server_port (t->server), 0);
    ck_assert_int_eq (keel_http_server_listen (t->server, "127.0.0.1:0"), 0);
    ck_assert_int_gt (keel_http_server_port (t->server), 0);
    return t;
}

static void
s_ctx_destroy (ctx_t **t_p)
{
    ctx_t *t = *t_p;
    keel_evloop_timer_stop (t->loop, &t->timer);
    keel_http_server_destroy (&t->server);
    ck_assert_ptr_null (t->server);
    keel_http_server_destroy (&t->server); //  NULL is fine
    ck_assert_uint_eq (keel_evloop_fds (t->loop), 0);
    ck_assert_uint_eq (keel_evloop_timers (t->loop), 0);
    keel_evloop_destroy (&t->loop);
    free (t->big);
    free (t);
    *t_p = NULL;
}

static keel_http_server_stats_t
s_stats (ctx_t *t)
{
    return keel_http_server_stats (t->server);
}

//  Run the loop until `*counter` reaches `value` (bounded).
static void
s_run_until_int (ctx_t *t, const int *counter, int value)
{
    int64_t deadline = s_deadline (5000);
    while (*counter < value && keel_now_ms () < deadline)
        keel_evloop_run (t->loop, 10);
    ck_assert_int_ge (*counter, value);
}

//  Run the loop until the server has `open` connections open.
static void
s_run_until_open (ctx_t *t, uint64_t open)
{
    int64_t deadline = s_deadline (5000);
    while (s_stats (t).open != open && keel_now_ms () < deadline)
        keel_evloop_run (t->loop, 10);
    ck_assert_uint_eq (s_stats (t).open, open);
}

//  Run the loop for about `ms` (to see that something does NOT happen).
static void
s_run_for (ctx_t *t, int ms)
{
    int64_t end = keel_now_ms () + ms;
    while (keel_now_ms () < end)
        keel_evloop_run (t->loop, 5);
}

// ---------------------------------------------------------------------------
//  The client

static client_t *
s_client_new_buf (ctx_t *t, int rcvbuf)
{
    client_t *c = calloc (1, sizeof (*c));
    ck_assert_ptr_nonnull (c);
    c->cap = 1 << 16;
    c->buf = malloc (c->cap);
    ck_assert_ptr_nonnull (c->buf);
    c->buf[0] = '\0';
    c->fd = socket (AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge (c->fd, 0);
    if (rcvbuf)
        setsockopt (c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    addr.sin_port = htons ((uint16_t)keel_http_server_port (t->server));
    //  The kernel completes the handshake from the backlog: no loop needed
    ck_assert_int_eq (connect (c->fd, (struct sockaddr *)&addr, sizeof addr),
                      0);
    fcntl (c->fd, F_SETFL, fcntl (c->fd, F_GETFL) | O_NONBLOCK);
    return c;
}

static client_t *
s_client_new (ctx_t *t)
{
    return s_client_new_buf (t, 0);
}

static void
s_client_destroy (client_t **c_p)
{
    client_t *c = *c_p;
    if (c->fd >= 0)
        close (c->fd);
    free (c->buf);
    free (c);
    *c_p = NULL;
}

//  Close with a reset (SO_LINGER 0) rather than a FIN.
static void
s_client_reset (client_t *c)
{
    struct linger lin = {1, 0};
    setsockopt (c->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    close (c->fd);
    c->fd = -1;
}

static void
s_send (client_t *c, const char *data, size_t size)
{
    size_t sent = 0;
    int64_t deadline = s_deadline (5000);
    while (sent < size && keel_now_ms () < deadline) {
        ssize_t n = send (c->fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        else
            ck_assert (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    ck_assert_uint_eq (sent, size);
}

static void
s_send_str (client_t *c, const char *text)
{
    s_send (c, text, strlen (text));
}

//  Run the loop once and take what the client can read.
static void
s_client_pump (ctx_t *t, client_t *c)
{
    keel_evloop_run (t->loop, 5);
    while (!c->eof) {
        if (c->cap - c->len < 65536) {
            c->cap *= 2;
            c->buf = realloc (c->buf, c->cap);
            ck_assert_ptr_nonnull (c->buf);
        }
        ssize_t n = recv (c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n > 0)
            c->len += (size_t)n;
        else if (n == 0)
            c->eof = true;
        else if (errno == ECONNRESET) {
            c->eof = c->reset = true;
        } else {
            ck_assert (errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
    }
    c->buf[c->len] = '\0';
}

//  Value of header `name` in a response head, or NULL; copied into value.
static const char *
s_header (const resp_t *r, const char *name, char *value, size_t size)
{
    char needle[128];
    snprintf (needle, sizeof needle, "\r\n%s:", name);
    const char *at = strcasestr (r->head, needle);
    if (!at)
        return NULL;
    at += strlen (needle);
    while (*at == ' ')
        at++;
    size_t len = strcspn (at, "\r\n");
    ck_assert_uint_lt (len, size);
    memcpy (value, at, len);
    value[len] = '\0';
    return value;
}

//  Parse the next response the client holds; true if it was complete.
static bool
s_parse (client_t *c, bool head_request, resp_t *r)
{
    const char *start = c->buf + c->pos;
    const char *end = strstr (start, "\r\n\r\n");
    if (!end)
        return false;
    size_t head_len = (size_t)(end - start) + 2;
    ck_assert_uint_lt (head_len, sizeof r->head);
    memset (r, 0, sizeof (*r));
    memcpy (r->head, start, head_len);
    ck_assert_int_eq (sscanf (r->head, "%15s %d", r->version, &r->status), 2);
    char value[64];
    size_t length = 0;
    if (s_header (r, "Content-Length", value, sizeof value))
        length = strtoull (value, NULL, 10);
    bool bodiless =
        head_request || r->status < 200 || r->status == 204 || r->status == 304;
    if (bodiless)
        length = 0;
    size_t total = head_len + 2 + length;
    if (c->len - c->pos < total)
        return false;
    r->body = malloc (length + 1);
    memcpy (r->body, start + head_len + 2, length);
    r->body[length] = '\0';
    r->body_size = length;
    c->pos += total;
    return true;
}

static void
s_resp_free (resp_t *r)
{
    free (r->body);
    r->body = NULL;
}

//  Wait for the next complete response.
static void
s_response (ctx_t *t, client_t *c, bool head_request, resp_t *r)
{
    int64_t deadline = s_deadline (5000);
    while (!s_parse (c, head_request, r)) {
        ck_assert_msg (!c->eof, "connection closed; got: %s", c->buf + c->pos);
        ck_assert_msg (keel_now_ms () < deadline, "no response; got: %s",
                       c->buf + c->pos);
        s_client_pump (t, c);
    }
}

//  Wait until the server closes the connection; no more bytes may come.
static void
s_wait_eof (ctx_t *t, client_t *c)
{
    int64_t deadline = s_deadline (5000);
    while (!c->eof && keel_now_ms () < deadline)
        s_client_pump (t, c);
    ck_assert (c->eof);
    ck_assert_msg (c->pos == c->len, "unexpected bytes: %s", c->buf + c->pos);
}

static void
s_assert_header (const resp_t *r, const char *name, const char *expected)
{
    char value[256];
    const char *got = s_header (r, name, value, sizeof value);
    if (!expected)
        ck_assert_msg (!got, "%s present in %s", name, r->head);
    else {
        ck_assert_msg (got != NULL, "%s missing in %s", name, r->head);
        ck_assert_str_eq (got, expected);
    }
}

//  Expect a server error: status, exact JSON body, Connection: close, EOF.
static void
s_expect_error (ctx_t *t, client_t *c, int status, const char *body,
                const char *reason)
{
    resp_t r;
    s_response (t, c, false, &r);
    ck_assert_int_eq (r.status, status);
    ck_assert_str_eq (r.body, body);
    s_assert_header (&r, "Content-Type", "application/json");
    s_assert_header (&r, "Connection", "close");
    s_resp_free (&r);
    s_wait_eof (t, c);
    ck_assert_int_eq (t->errors, 1);
    ck_assert_int_eq (t->error_status, status);
    ck_assert_str_eq (t->error_reason, reason);
    ck_assert_str_eq (t->error_peer, "127.0.0.1");
}

// ---------------------------------------------------------------------------
//  Tests

START_TEST (test_get_keep_alive)
{
    ctx_t *t = s_ctx_new (NULL, MODE_ECHO);
    client_t *c = s_client_new (t);
    resp_t r;
    int64_t before = keel_now_ms ();
    s_send_str (c, "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    ck_assert_str_eq (r.version, "HTTP/1.1");
    ck_assert_int_eq (r.status, 200);
    ck_assert (strncmp (r.head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    ck_assert_str_eq (r.body, "GET /a q=x=1 v=1.1 body=");
    s_assert_header (&r, "Connection", "keep-alive");
    s_assert_header (&r, "X-Id", "1");
    s_assert_header (&r, "X-Peer", "127.0.0.1");
    s_assert_header (&r, "Content-Type", "text/plain");
    s_assert_header (&r, "Content-Length", "24");
    s_resp_free (&r);
    ck_assert_int_ge (t->started_ms, before);
    ck_assert_int_le (t->started_ms, keel_now_ms ());

    s_send_str (c, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    ck_assert_int_eq (r.status, 200);
    ck_assert_str_eq (r.body, "GET /b q= v=1.1 body=");
    s_assert_header (&r, "X-Id", "2");
    s_resp_free (&r);
    ck_assert (!c->eof);

    keel_http_server_stats_t stats = s_stats (t);
    ck_assert_uint_eq (stats.accepted, 1);
    ck_assert_uint_eq (stats.open, 1);
    ck_assert_uint_eq (stats.requests, 2);
    ck_assert_uint_eq (stats.responses, 2);
    ck_assert_int_eq (t->requests, 2);

    //  The client leaves: the server closes its side, nothing aborted
    s_client_destroy (&c);
    s_run_until_open (t, 0);
    ck_assert_uint_eq (s_stats (t).aborted, 0);
    ck_assert_int_eq (t->aborts, 0);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_pipelining)
{
    ctx_t *t = s_ctx_new (NULL, MODE_ECHO);
    client_t *c = s_client_new (t);
    s_send_str (c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                   "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
                   "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    for (int i = 1; i <= 3; i++) {
        resp_t r;
        char expected[64];
        s_response (t, c, false, &r);
        snprintf (expected, sizeof expected, "GET /%d q= v=1.1 body=", i);
        ck_assert_str_eq (r.body, expected);
        s_resp_free (&r);
    }
    ck_assert_int_eq (t->requests, 3);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_pipelining_deferred)
{
    ctx_t *t = s_ctx_new (NULL, MODE_DEFER);
    t->delay_ms = 10;
    client_t *c = s_client_new (t);
    s_send_str (c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                   "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                   "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    //  Only the first is handed out: the others wait for its answer
    s_run_until_int (t, &t->requests, 1);
    ck_assert_int_eq (t->requests, 1);
    ck_assert_uint_eq (t->npending, 1);
    const char *expected[] = {
        "GET /1 q= v=1.1 body=", "POST /2 q= v=1.1 body=abc",
        "GET /3 q= v=1.1 body="};
    for (int i = 0; i < 3; i++) {
        resp_t r;
        s_response (t, c, false, &r);
        ck_assert_str_eq (r.body, expected[i]);
        s_resp_free (&r);
        ck_assert_int_le (t->requests, i + 2);
    }
    ck_assert_int_eq (t->requests, 3);
    ck_assert_uint_eq (s_stats (t).responses, 3);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

//  Pipelined requests beyond the connection's input buffer wait in the
//  socket while the exchange is out; all are served in order.
START_TEST (test_pipelining_backlog)
{
    keel_http_server_config_t config = {0};
    config.read_buffer = 256;
    ctx_t *t = s_ctx_new (&config, MODE_DEFER);
    t->delay_ms = 1;
    client_t *c = s_client_new (t);
    char text[8192] = "";
    for (int i = 0; i < 60; i++) {
        size_t len = strlen (text);
        snprintf (text + len, sizeof text - len,
                  "GET /%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
    }
    s_send_str (c, text);
    for (int i = 0; i < 60; i++) {
        resp_t r;
        char expected[64];
        s_response (t, c, false, &r);
        snprintf (expected, sizeof expected, "GET /%d q= v=1.1 body=", i);
        ck_assert_str_eq (r.body, expected);
        s_resp_free (&r);
    }
    ck_assert_int_eq (t->requests, 60);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_post_bodies)
{
    ctx_t *t = s_ctx_new (NULL, MODE_ECHO);
    client_t *c = s_client_new (t);
    resp_t r;
    s_send_str (c, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
                   "hello world");
    s_response (t, c, false, &r);
    ck_assert_str_eq (r.body, "POST /p q= v=1.1 body=hello world");
    s_resp_free (&r);
    //  Chunked, sent in two pieces
    s_send_str (c, "PUT /c HTTP/1.1\r\nHost: h\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    for (int i = 0; i < 5; i++)
        s_client_pump (t, c);
    ck_assert_uint_eq (c->len, c->pos); //  nothing yet
    s_send_str (c, "6\r\n world\r\n0\r\n\r\n");
    s_response (t, c, false, &r);
    ck_assert_str_eq (r.body, "PUT /c q= v=1.1 body=hello world");
    s_resp_free (&r);
    ck_assert_int_eq (t->requests, 2);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_head)
{
    ctx_t *t = s_ctx_new (NULL, MODE_ECHO);
    client_t *c = s_client_new (t);
    resp_t r;
    s_send_str (c, "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, true, &r);
    ck_assert_int_eq (r.status, 200);
    //  The length a GET would have, no body bytes
    s_assert_header (&r, "Content-Length", "22");
    s_resp_free (&r);
    //  The next response starts right after the head
    s_send_str (c, "GET /g HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    ck_assert (strncmp (r.head, "HTTP/1.1 200 OK", 15) == 0);
    ck_assert_str_eq (r.body, "GET /g q= v=1.1 body=");
    s_resp_free (&r);
    ck_assert_uint_eq (c->pos, c->len);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_http10)
{
    ctx_t *t = s_ctx_new (NULL, MODE_ECHO);
    resp_t r;
    //  Without keep-alive: 1.0 status line, close
    client_t *c = s_client_new (t);
    s_send_str (c, "GET /old HTTP/1.0\r\n\r\n");
    s_response (t, c, false, &r);
    ck_assert (strncmp (r.head, "HTTP/1.0 200 OK\r\n", 17) == 0);
    ck_assert_str_eq (r.body, "GET /old q= v=1.0 body=");
    s_assert_header (&r, "Connection", "close");
    s_resp_free (&r);
    s_wait_eof (t, c);
    s_client_destroy (&c);
    s_run_until_open (t, 0);

    //  With keep-alive: two requests on one connection
    c = s_client_new (t);
    for (int i = 0; i < 2; i++) {
        s_send_str (c, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        s_response (t, c, false, &r);
        ck_assert_str_eq (r.version, "HTTP/1.0");
        s_assert_header (&r, "Connection", "keep-alive");
        s_resp_free (&r);
    }
    ck_assert (!c->eof);
    ck_assert_uint_eq (s_stats (t).open, 1);
    s_client_destroy (&c);
    ck_assert_int_eq (t->requests, 3);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_malformed)
{
    ctx_t *t = s_ctx_new (NULL, MODE_ECHO);
    client_t *c = s_client_new (t);
    s_send_str (c, "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"
                   "GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
    s_expect_error (
        t, c, 400,
        "{\"error\":\"bad_request\",\"message\":\"malformed request\","
        "\"status\":400}",
        "bad-request");
    ck_assert_int_eq (t->requests, 0); //  nothing after the bad one
    keel_http_server_stats_t stats = s_stats (t);
    ck_assert_uint_eq (stats.bad_requests, 1);
    ck_assert_uint_eq (stats.responses, 1);
    ck_assert_uint_eq (stats.requests, 0);
    s_client_destroy (&c);
    s_run_until_open (t, 0);

    //  Not HTTP at all
    c = s_client_new (t);
    s_send_str (c,
                "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n");
    t->errors = 0;
    s_expect_error (
        t, c, 400,
        "{\"error\":\"bad_request\",\"message\":\"malformed request\","
        "\"status\":400}",
        "bad-request");
    ck_assert_uint_eq (s_stats (t).bad_requests, 2);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_url_too_long)
{
    keel_http_server_config_t config = {0};
    config.limits.max_url = 100;
    ctx_t *t = s_ctx_new (&config, MODE_ECHO);
    client_t *c = s_client_new (t);
    char request[1024];
    char url[501];
    memset (url, 'a', 500);
    url[0] = '/';
    url[500] = '\0';
    snprintf (request, sizeof request, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n",
              url);
    s_send_str (c, request);
    s_expect_error (t, c, 414,
                    "{\"error\":\"url_too_long\",\"message\":\"request URL "
                    "too long\",\"status\":414}",
                    "url-too-long");
    ck_assert_uint_eq (s_stats (t).bad_requests, 1);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_headers_too_large)
{
    keel_http_server_config_t config = {0};
    config.limits.max_headers = 200;
    ctx_t *t = s_ctx_new (&config, MODE_ECHO);
    client_t *c = s_client_new (t);
    char request[1024];
    char value[301];
    memset (value, 'v', 300);
    value[300] = '\0';
    snprintf (request, sizeof request,
              "GET / HTTP/1.1\r\nHost: h\r\nX-Big: %s\r\n\r\n", value);
    s_send_str (c, request);
    s_expect_error (t, c, 431,
                    "{\"error\":\"headers_too_large\",\"message\":\"request "
                    "headers too large\",\"status\":431}",
                    "headers-too-large");
    ck_assert_uint_eq (s_stats (t).bad_requests, 1);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_body_too_large)
{
    keel_http_server_config_t config = {0};
    config.limits.max_body = 10;
    ctx_t *t = s_ctx_new (&config, MODE_ECHO);
    const char *body = "{\"error\":\"body_too_large\",\"message\":\"request "
                       "body too large\",\"status\":413}";
    //  Declared too large: answered before the body is read
    client_t *c = s_client_new (t);
    s_send_str (c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n");
    s_expect_error (t, c, 413, body, "body-too-large");
    s_client_destroy (&c);
    //  Chunked, found too large on the way (the rest still in flight)
    t->errors = 0;
    c = s_client_new (t);
    s_send_str (c, "POST / HTTP/1.1\r\nHost: h\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"
                   "8\r\n12345678\r\n8\r\n12345678\r\n8\r\n12345678\r\n");
    s_expect_error (t, c, 413, body, "body-too-large");
    s_client_destroy (&c);
    ck_assert_uint_eq (s_stats (t).bad_requests, 2);
    ck_assert_int_eq (t->requests, 0);
    s_run_until_open (t, 0);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_upgrade_not_implemented)
{
    ctx_t *t = s_ctx_new (NULL, MODE_ECHO);
    client_t *c = s_client_new (t);
    s_send_str (c, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                   "Upgrade: websocket\r\n\r\n");
    s_expect_error (t, c, 501,
                    "{\"error\":\"not_implemented\",\"message\":\"method or "
                    "upgrade not implemented\",\"status\":501}",
                    "upgrade");
    ck_assert_int_eq (t->requests, 0);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

//  Only HTTP/1.x is served: another major version (or 0.9) gets 505.
START_TEST (test_version_not_supported)
{
    const char *requests[] = {"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
                              "GET / HTTP/9.9\r\n\r\n",
                              "GET / HTTP/0.9\r\n\r\n"};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        ctx_t *t = s_ctx_new (NULL, MODE_ECHO);
        client_t *c = s_client_new (t);
        s_send_str (c, requests[i]);
        s_expect_error (t, c, 505,
                        "{\"error\":\"version_not_supported\",\"message\":"
                        "\"only HTTP/1.0 and HTTP/1.1 are served\","
                        "\"status\":505}",
                        "version-not-supported");
        ck_assert_int_eq (t->requests, 0);
        s_client_destroy (&c);
        s_ctx_destroy (&t);
    }
}
END_TEST

START_TEST (test_header_timeout)
{
    keel_http_server_config_t config = {0};
    config.header_timeout_ms = testutil_slack (100);
    config.idle_timeout_ms = 60000;
    ctx_t *t = s_ctx_new (&config, MODE_HOLD);
    client_t *c = s_client_new (t);

    //  An outstanding exchange has no timer: the application owns the time
    s_send_str (c, "GET /slow-app HTTP/1.1\r\nHost: h\r\n\r\n");
    s_run_until_int (t, &t->requests, 1);
    ck_assert_uint_eq (keel_evloop_timers (t->loop), 0);
    s_run_for (t, (int)config.header_timeout_ms * 2);
    ck_assert_uint_eq (s_stats (t).timeouts, 0);
    s_echo (t, s_pop (t));
    resp_t r;
    s_response (t, c, false, &r);
    ck_assert_int_eq (r.status, 200);
    s_resp_free (&r);
    //  Idle between requests: the idle timer, not the header timer
    s_run_for (t, (int)config.header_timeout_ms * 2);
    ck_assert (!c->eof);
    ck_assert_uint_eq (s_stats (t).timeouts, 0);

    //  A request begun and never finished
    int64_t begun = keel_now_ms ();
    s_send_str (c, "GET /never HTTP/1.1\r\nHost: h\r\n");
    s_expect_error (t, c, 408,
                    "{\"error\":\"request_timeout\",\"message\":\"request "
                    "not received in time\",\"status\":408}",
                    "header-timeout");
    ck_assert_int_ge (keel_now_ms () - begun, config.header_timeout_ms);
    keel_http_server_stats_t stats = s_stats (t);
    ck_assert_uint_eq (stats.timeouts, 1);
    ck_assert_uint_eq (stats.bad_requests, 0);
    ck_assert_uint_eq (stats.idle_closed, 0);
    ck_assert_int_eq (t->requests, 1);
    s_client_destroy (&c);
    s_run_until_open (t, 0);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_idle_timeout)
{
    keel_http_server_config_t config = {0};
    config.idle_timeout_ms = testutil_slack (100);
    ctx_t *t = s_ctx_new (&config, MODE_ECHO);
    client_t *c = s_client_new (t);
    resp_t r;
    s_send_str (c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    s_resp_free (&r);
    int64_t answered = keel_now_ms ();
    //  Keep-alive requests within the timeout push it back
    for (int i = 0; i < 3; i++) {
        s_run_for (t, (int)config.idle_timeout_ms / 2);
        s_send_str (c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        s_response (t, c, false, &r);
        s_resp_free (&r);
        answered = keel_now_ms ();
    }
    ck_assert (!c->eof);
    s_wait_eof (t, c); //  silently: no bytes
    ck_assert_int_ge (keel_now_ms () - answered, config.idle_timeout_ms / 2);
    ck_assert_uint_eq (s_stats (t).idle_closed, 1);
    ck_assert_uint_eq (s_stats (t).open, 0);
    ck_assert_int_eq (t->errors, 0);
    s_client_destroy (&c);

    //  A connection that never sends anything
    c = s_client_new (t);
    s_wait_eof (t, c);
    ck_assert_uint_eq (s_stats (t).idle_closed, 2);
    ck_assert_uint_eq (s_stats (t).timeouts, 0);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_max_connections)
{
    keel_http_server_config_t config = {0};
    config.max_connections = 2;
    ctx_t *t = s_ctx_new (&config, MODE_ECHO);
    client_t *a = s_client_new (t);
    client_t *b = s_client_new (t);
    s_run_until_open (t, 2);
    client_t *extra = s_client_new (t);
    s_expect_error (t, extra, 503,
                    "{\"error\":\"unavailable\",\"message\":\"too many "
                    "connections\",\"status\":503}",
                    "max-connections");
    keel_http_server_stats_t stats = s_stats (t);
    ck_assert_uint_eq (stats.refused, 1);
    ck_assert_uint_eq (stats.accepted, 3);
    ck_assert_uint_eq (stats.open, 2);
    ck_assert_uint_eq (stats.responses, 1);
    //  The two still work; once one leaves, a new one is served
    resp_t r;
    s_send_str (a, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, a, false, &r);
    ck_assert_int_eq (r.status, 200);
    s_resp_free (&r);
    s_client_destroy (&b);
    s_run_until_open (t, 1);
    client_t *d = s_client_new (t);
    s_send_str (d, "GET /d HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, d, false, &r);
    ck_assert_int_eq (r.status, 200);
    s_resp_free (&r);
    ck_assert_uint_eq (s_stats (t).refused, 1);
    s_client_destroy (&a);
    s_client_destroy (&d);
    s_client_destroy (&extra);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_client_closes_outstanding)
{
    ctx_t *t = s_ctx_new (NULL, MODE_HOLD);
    //  Closed with a FIN
    client_t *c = s_client_new (t);
    s_send_str (c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    s_run_until_int (t, &t->requests, 1);
    s_client_destroy (&c);
    s_run_until_int (t, &t->aborts, 1);
    ck_assert_uint_eq (t->npending, 0);
    s_run_until_open (t, 0);
    //  Closed with a reset, pipelined bytes waiting
    c = s_client_new (t);
    s_send_str (c, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                   "GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
    s_run_until_int (t, &t->requests, 2);
    s_client_reset (c);
    s_run_until_int (t, &t->aborts, 2);
    s_run_until_open (t, 0);
    s_run_for (t, 50);
    ck_assert_int_eq (t->aborts, 2);
    ck_assert_int_eq (t->requests, 2);
    keel_http_server_stats_t stats = s_stats (t);
    ck_assert_uint_eq (stats.aborted, 2);
    ck_assert_uint_eq (stats.responses, 0);
    ck_assert_uint_eq (stats.read_errors, 1); //  the reset
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_drain)
{
    ctx_t *t = s_ctx_new (NULL, MODE_HOLD);
    client_t *idle = s_client_new (t);
    client_t *busy = s_client_new (t);
    s_send_str (idle, "GET /i HTTP/1.1\r\nHost: h\r\n\r\n");
    s_run_until_int (t, &t->requests, 1);
    s_echo (t, s_pop (t));
    resp_t r;
    s_response (t, idle, false, &r);
    s_assert_header (&r, "Connection", "keep-alive");
    s_resp_free (&r);
    s_send_str (busy, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                      "GET /b2 HTTP/1.1\r\nHost: h\r\n\r\n");
    s_run_until_int (t, &t->requests, 2);

    keel_http_server_drain (t->server);
    //  No listener any more
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    addr.sin_port = htons ((uint16_t)keel_http_server_port (t->server));
    ck_assert_int_eq (connect (fd, (struct sockaddr *)&addr, sizeof addr), -1);
    ck_assert_int_eq (errno, ECONNREFUSED);
    close (fd);
    //  The idle one closes at once, the busy one after its answer
    s_wait_eof (t, idle);
    ck_assert_uint_eq (s_stats (t).open, 1);
    ck_assert (!busy->eof);
    s_echo (t, s_pop (t));
    s_response (t, busy, false, &r);
    ck_assert_str_eq (r.body, "GET /b q= v=1.1 body=");
    s_assert_header (&r, "Connection", "close");
    s_resp_free (&r);
    s_wait_eof (t, busy);
    ck_assert_int_eq (t->requests, 2); //  /b2 never handed out
    s_client_destroy (&busy);
    s_run_until_open (t, 0);
    ck_assert_int_eq (keel_http_server_listen (t->server, "127.0.0.1:0"), -1);
    ck_assert_int_eq (errno, EINVAL);
    s_client_destroy (&idle);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_destroy_outstanding)
{
    ctx_t *t = s_ctx_new (NULL, MODE_HOLD);
    client_t *c = s_client_new (t);
    client_t *quiet = s_client_new (t);
    s_send_str (c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    s_run_until_int (t, &t->requests, 1);
    s_run_until_open (t, 2);
    keel_http_server_destroy (&t->server);
    ck_assert_int_eq (t->aborts, 1);
    ck_assert_uint_eq (t->npending, 0);
    ck_assert_uint_eq (keel_evloop_fds (t->loop), 0);
    ck_assert_uint_eq (keel_evloop_timers (t->loop), 0);
    //  Both see the connection closed, with no bytes
    char byte;
    fcntl (c->fd, F_SETFL, fcntl (c->fd, F_GETFL) & ~O_NONBLOCK);
    ck_assert_int_le (recv (c->fd, &byte, 1, 0), 0);
    fcntl (quiet->fd, F_SETFL, fcntl (quiet->fd, F_GETFL) & ~O_NONBLOCK);
    ck_assert_int_le (recv (quiet->fd, &byte, 1, 0), 0);
    s_client_destroy (&c);
    s_client_destroy (&quiet);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_error_body)
{
    char buf[256];
    size_t len = keel_http_error_body (buf, sizeof buf, 404, "not_found",
                                       "no such route", NULL);
    ck_assert_str_eq (buf, "{\"error\":\"not_found\",\"message\":\"no such "
                           "route\",\"status\":404}");
    ck_assert_uint_eq (len, strlen (buf));
    //  Quotes, backslash, control characters, UTF-8 kept, bad bytes replaced
    len = keel_http_error_body (buf, sizeof buf, 400, "a\"b",
                                "q\"\\ \n\t\x01\x1f\x7f caf\xc3\xa9 \xff\xc3 "
                                "\xed\xa0\x80 \xf0\x9f\x98\x80",
                                "id\"1");
    ck_assert_str_eq (
        buf, "{\"error\":\"a\\\"b\",\"message\":\"q\\\"\\\\ \\u000a\\u0009"
             "\\u0001\\u001f\\u007f caf\xc3\xa9 \\ufffd\\ufffd "
             "\\ufffd\\ufffd\\ufffd \xf0\x9f\x98\x80\",\"status\":400,"
             "\"request_id\":\"id\\\"1\"}");
    ck_assert_uint_eq (len, strlen (buf));
    //  Truncated like snprintf: the length needed, a terminated prefix
    char small[10];
    len = keel_http_error_body (small, sizeof small, 500, "x", "y", NULL);
    ck_assert_uint_eq (len, strlen ("{\"error\":\"x\",\"message\":\"y\","
                                    "\"status\":500}"));
    ck_assert_str_eq (small, "{\"error\":");
    ck_assert_uint_eq (keel_http_error_body (NULL, 0, 500, "x", "y", NULL),
                       len);
    //  Reason phrases
    ck_assert_str_eq (keel_http_status_text (200), "OK");
    ck_assert_str_eq (keel_http_status_text (404), "Not Found");
    ck_assert_str_eq (keel_http_status_text (100), "Continue");
    ck_assert_str_eq (keel_http_status_text (511),
                      "Network Authentication Required");
    ck_assert_str_eq (keel_http_status_text (431),
                      "Request Header Fields Too Large");
    ck_assert_str_eq (keel_http_status_text (418), "Unknown");
    ck_assert_str_eq (keel_http_status_text (599), "Unknown");
    ck_assert_str_eq (keel_http_status_text (99), "Unknown");
    ck_assert_str_eq (keel_http_status_text (-1), "Unknown");
    ck_assert_str_eq (keel_http_status_text (1000), "Unknown");
}
END_TEST

START_TEST (test_exchange_error)
{
    ctx_t *t = s_ctx_new (NULL, MODE_ERROR);
    client_t *c = s_client_new (t);
    resp_t r;
    s_send_str (c, "GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    ck_assert (strncmp (r.head, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    ck_assert_str_eq (r.body,
                      "{\"error\":\"not_found\",\"message\":\"no \\\"route\\\""
                      "\\u000a for \\\\x\",\"status\":404,"
                      "\"request_id\":\"req-1\"}");
    s_assert_header (&r, "Content-Type", "application/json");
    s_assert_header (&r, "X-A", "b");
    s_assert_header (&r, "Connection", "keep-alive");
    s_resp_free (&r);
    ck_assert_int_eq (t->errors, 0); //  on_error is for the server's own
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_response_headers)
{
    ctx_t *t = s_ctx_new (NULL, MODE_HEADERS);
    client_t *c = s_client_new (t);
    resp_t r;
    s_send_str (c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    ck_assert_str_eq (r.head, "HTTP/1.1 200 OK\r\nX-Ok: 1\r\n"
                              "Content-Length: 5\r\n"
                              "Connection: keep-alive\r\n");
    ck_assert_str_eq (r.body, "hello");
    s_resp_free (&r);
    //  204 and 304: no body, no Content-Length
    int statuses[] = {204, 304};
    for (int i = 0; i < 2; i++) {
        t->status = statuses[i];
        s_send_str (c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        s_response (t, c, false, &r);
        ck_assert_int_eq (r.status, statuses[i]);
        s_assert_header (&r, "Content-Length", NULL);
        s_resp_free (&r);
    }
    //  An unknown status keeps its number
    t->status = 299;
    s_send_str (c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    ck_assert (strncmp (r.head, "HTTP/1.1 299 Unknown\r\n", 22) == 0);
    s_resp_free (&r);
    //  close = true
    t->status = 200;
    t->respond_close = true;
    s_send_str (c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    s_assert_header (&r, "Connection", "close");
    ck_assert_str_eq (r.body, "hello");
    s_resp_free (&r);
    s_wait_eof (t, c);
    ck_assert_uint_eq (c->pos, c->len);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_max_requests)
{
    keel_http_server_config_t config = {0};
    config.max_requests = 2;
    ctx_t *t = s_ctx_new (&config, MODE_ECHO);
    client_t *c = s_client_new (t);
    resp_t r;
    s_send_str (c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    s_assert_header (&r, "Connection", "keep-alive");
    s_resp_free (&r);
    //  The second is the last; the third, pipelined, is not served
    s_send_str (c, "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
                   "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    s_response (t, c, false, &r);
    s_assert_header (&r, "Connection", "close");
    ck_assert_str_eq (r.body, "GET /2 q= v=1.1 body=");
    s_resp_free (&r);
    s_wait_eof (t, c);
    ck_assert_int_eq (t->requests, 2);
    s_client_destroy (&c);
    s_run_until_open (t, 0);
    s_ctx_destroy (&t);
}
END_TEST

//  Responses larger than the socket takes: sent as the client reads, in
//  order, intact.
START_TEST (test_large_responses)
{
    ctx_t *t = s_ctx_new (NULL, MODE_BIG);
    t->big_size = 3 * 1024 * 1024 + 7;
    t->big = malloc (t->big_size);
    for (size_t i = 0; i < t->big_size; i++)
        t->big[i] = (char)('a' + i * 7 % 26);
    client_t *c = s_client_new_buf (t, 4096);
    s_send_str (c, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                   "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    for (int i = 0; i < 2; i++) {
        resp_t r;
        s_response (t, c, false, &r);
        ck_assert_int_eq (r.status, 200);
        ck_assert_uint_eq (r.body_size, t->big_size);
        ck_assert (memcmp (r.body, t->big, t->big_size) == 0);
        s_resp_free (&r);
    }
    //  Many small pipelined responses beyond the output high-water mark
    t->big_size = 5000;
    char text[16384] = "";
    for (int i = 0; i < 200; i++)
        strcat (text, "GET / HTTP/1.1\r\n\r\n");
    s_send_str (c, text);
    for (int i = 0; i < 200; i++) {
        resp_t r;
        s_response (t, c, false, &r);
        ck_assert_uint_eq (r.body_size, 5000);
        ck_assert (memcmp (r.body, t->big, 5000) == 0);
        s_resp_free (&r);
    }
    ck_assert_int_eq (t->requests, 202);
    s_client_destroy (&c);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_listen_addresses)
{
    keel_evloop_t *loop = keel_evloop_new ();
    ctx_t dummy = {0};
    keel_http_server_t *server =
        keel_http_server_new (loop, NULL, s_on_request, NULL, NULL, &dummy);
    const char *bad[] = {"",           "8080",        "127.0.0.1",
                         "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:65536",
                         "::1:80",     "[::1:80",     ":80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        ck_assert_msg (keel_http_server_listen (server, bad[i]) == -1, "%s",
                       bad[i]);
        ck_assert_int_eq (errno, EINVAL);
    }
    ck_assert_int_eq (keel_http_server_port (server), 0);
    ck_assert_int_eq (keel_http_server_listen (server, "*:0"), 0);
    ck_assert_int_gt (keel_http_server_port (server), 0);
    //  One listener per server
    ck_assert_int_eq (keel_http_server_listen (server, "127.0.0.1:0"), -1);
    keel_http_server_destroy (&server);

    //  Bind errors come back as they are
    server = keel_http_server_new (loop, NULL, s_on_request, NULL, NULL, NULL);
    ck_assert_int_eq (keel_http_server_listen (server, "192.0.2.1:0"), -1);
    ck_assert_int_eq (errno, EADDRNOTAVAIL);
    keel_http_server_destroy (&server);

    //  IPv6, when the machine has it
    server = keel_http_server_new (loop, NULL, s_on_request, NULL, NULL, NULL);
    int fd6 = socket (AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {0};
    a6.sin6_family = AF_INET6;
    a6.sin6_addr = in6addr_loopback;
    bool has_v6 =
        fd6 >= 0 && bind (fd6, (struct sockaddr *)&a6, sizeof a6) == 0;
    if (fd6 >= 0)
        close (fd6);
    if (has_v6) {
        ck_assert_int_eq (keel_http_server_listen (server, "[::1]:0"), 0);
        ck_assert_int_gt (keel_http_server_port (server), 0);
    }
    keel_http_server_destroy (&server);
    keel_evloop_destroy (&loop);
}
END_TEST

//  IPv6 clients are served and their address is given without a port.
START_TEST (test_ipv6_peer)
{
    keel_evloop_t *loop = keel_evloop_new ();
    ctx_t *t = calloc (1, sizeof (*t));
    t->loop = loop;
    t->mode = MODE_ECHO;
    t->server = keel_http_server_new (loop, NULL, s_on_request, s_on_abort,
                                      s_on_error, t);
    if (keel_http_server_listen (t->server, "[::1]:0") == 0) {
        int fd = socket (AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 a6 = {0};
        a6.sin6_family = AF_INET6;
        a6.sin6_addr = in6addr_loopback;
        a6.sin6_port = htons ((uint16_t)keel_http_server_port (t->server));
        ck_assert_int_eq (connect (fd, (struct sockaddr *)&a6, sizeof a6), 0);
        fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);
        client_t *c = calloc (1, sizeof (*c));
        c->fd = fd;
        c->cap = 1 << 16;
        c->buf = calloc (1, c->cap);
        s_send_str (c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        resp_t r;
        s_response (t, c, false, &r);
        s_assert_header (&r, "X-Peer", "::1");
        s_resp_free (&r);
        s_client_destroy (&c);
    }
    s_ctx_destroy (&t);
}
END_TEST

//  Byte-at-a-time requests, and garbage of every kind, never crash.
START_TEST (test_split_and_garbage)
{
    ctx_t *t = s_ctx_new (NULL, MODE_ECHO);
    client_t *c = s_client_new (t);
    const char *text =
        "POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n"
        "abcd";
    for (size_t i = 0; text[i]; i++) {
        s_send (c, text + i, 1);
        s_client_pump (t, c);
    }
    resp_t r;
    s_response (t, c, false, &r);
    ck_assert_str_eq (r.body, "POST /s q= v=1.1 body=abcd");
    s_resp_free (&r);
    s_client_destroy (&c);

    unsigned int seed = 12345;
    for (int round = 0; round < 30; round++) {
        c = s_client_new (t);
        char junk[512];
        size_t n = 1 + (size_t)(rand_r (&seed) % (int)sizeof junk);
        for (size_t i = 0; i < n; i++)
            junk[i] = (char)(rand_r (&seed) & 0xff);
        if (round % 2)
            memcpy (junk, "GET /", n < 5 ? n : 5);
        s_send (c, junk, n);
        for (int i = 0; i < 5; i++)
            s_client_pump (t, c);
        s_client_destroy (&c);
    }
    s_run_until_open (t, 0);
    keel_http_server_stats_t stats = s_stats (t);
    ck_assert_uint_eq (stats.accepted, 31);
    ck_assert_uint_ge (stats.bad_requests, 10);
    s_ctx_destroy (&t);
}
END_TEST

START_TEST (test_stats)
{
    keel_http_server_config_t config = {0};
    config.max_connections = 3;
    config.header_timeout_ms = testutil_slack (100);
    ctx_t *t = s_ctx_new (&config, MODE_ECHO);
    keel_http_server_stats_t zero = s_stats (t);
    ck_assert_uint_eq (zero.accepted + zero.refused + zero.open +
                           zero.requests + zero.responses + zero.bad_requests +
                           zero.timeouts + zero.idle_closed + zero.aborted +
                           zero.read_errors,
                       0);
    client_t *good = s_client_new (t);
    client_t *bad = s_client_new (t);
    client_t *slow = s_client_new (t);
    s_run_until_open (t, 3);
    client_t *refused = s_client_new (t);
    s_run_until_int (t, &t->errors, 1); //  the 503
    s_send_str (good, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                      "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    s_send_str (bad, "GET / HTTP/9.9.9\r\n\r\n");
    s_send_str (slow, "GET / HTTP/1.1\r\n");
    resp_t r;
    for (int i = 0; i < 2; i++) {
        s_response (t, good, false, &r);
        s_resp_free (&r);
    }
    s_response (t, bad, false, &r);
    ck_assert_int_eq (r.status, 400);
    s_resp_free (&r);
    s_response (t, slow, false, &r);
    ck_assert_int_eq (r.status, 408);
    s_resp_free (&r);
    s_response (t, refused, false, &r);
    ck_assert_int_eq (r.status, 503);
    s_resp_free (&r);
    s_client_destroy (&bad);
    s_client_destroy (&slow);
    s_client_destroy (&refused);
    s_run_until_open (t, 1);
    keel_http_server_drain (t->server); //  good is idle: closed
    s_wait_eof (t, good);
    keel_http_server_stats_t stats = s_stats (t);
    ck_assert_uint_eq (stats.accepted, 4);
    ck_assert_uint_eq (stats.refused, 1);
    ck_assert_uint_eq (stats.open, 0);
    ck_assert_uint_eq (stats.requests, 2);
    ck_assert_uint_eq (stats.responses, 5);
    ck_assert_uint_eq (stats.bad_requests, 1);
    ck_assert_uint_eq (stats.timeouts, 1);
    ck_assert_uint_eq (stats.idle_closed, 1);
    ck_assert_uint_eq (stats.aborted, 0);
    ck_assert_uint_eq (stats.read_errors, 0);
    ck_assert_int_eq (t->errors, 3);
    s_client_destroy (&good);
    s_ctx_destroy (&t);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("http_server");
    TCase *tc = tcase_create ("core");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_get_keep_alive);
    tcase_add_test (tc, test_pipelining);
    tcase_add_test (tc, test_pipelining_deferred);
    tcase_add_test (tc, test_pipelining_backlog);
    tcase_add_test (tc, test_post_bodies);
    tcase_add_test (tc, test_head);
    tcase_add_test (tc, test_http10);
    tcase_add_test (tc, test_malformed);
    tcase_add_test (tc, test_url_too_long);
    tcase_add_test (tc, test_headers_too_large);
    tcase_add_test (tc, test_body_too_large);
    tcase_add_test (tc, test_upgrade_not_implemented);
    tcase_add_test (tc, test_version_not_supported);
    tcase_add_test (tc, test_header_timeout);
    tcase_add_test (tc, test_idle_timeout);
    tcase_add_test (tc, test_max_connections);
    tcase_add_test (tc, test_client_closes_outstanding);
    tcase_add_test (tc, test_drain);
    tcase_add_test (tc, test_destroy_outstanding);
    tcase_add_test (tc, test_error_body);
    tcase_add_test (tc, test_exchange_error);
    tcase_add_test (tc, test_response_headers);
    tcase_add_test (tc, test_max_requests);
    tcase_add_test (tc, test_large_responses);
    tcase_add_test (tc, test_listen_addresses);
    tcase_add_test (tc, test_ipv6_peer);
    tcase_add_test (tc, test_split_and_garbage);
    tcase_add_test (tc, test_stats);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
