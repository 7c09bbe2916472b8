/*  http_server.c - the gateway's HTTP/1.1 front door. See http_server.h.

    One connection, its buffers, and the exchange it lends the application:

        socket --recv--> scratch (one per server, read_buffer bytes)
                            |  fed at once while no exchange is outstanding
                            v
        in (leftover) --> keel_http_reader --REQUEST--> exchange (embedded
          pipelined bytes                                 in the conn: no
          waiting for the                                 malloc per request)
          exchange before                                      |
                                                 respond (now or later)
                                                               v
        socket <--send--  out: status line, headers, small bodies
                          (large bodies go out by sendmsg from the caller's
                          memory; only what the socket refuses is copied)

    The common request costs one recv, one reader feed, one send, no
    epoll_ctl (a connection stays on EPOLLIN; EPOLLOUT only while output
    waits) and no malloc (buffers are kept per connection).

    Processing never recurses. `busy` marks a connection whose code is on
    the stack (an event, a timer, a late respond); a respond that finds it
    set only appends its bytes and the running loop sends them and feeds
    the next pipelined request. A connection closed while busy is closed at
    once (fd, timer, list) but freed when the outermost frame leaves.

    States of a connection (flags, not an enum: some combine):
        idle         no bytes of a request; idle timer
        in_request   bytes of a request fed, not complete; header timer
        outstanding  exchange with the application; no timer
        closing      last response written or being written; no reads
        lingering    closing, output sent, write side shut: input read and
                     thrown away until EOF (so a client still sending gets
                     our response rather than a reset); linger timer
        eof          the client shut its side; close when nothing is left

    The idle timer is lazy: a response moves conn->idle_deadline on; the
    heap is touched only when the timer fires early and starts again.
*/
#include "http_server.h"
#include "keel_common.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define S_DEFAULT_MAX_CONNECTIONS 10000
#define S_DEFAULT_HEADER_TIMEOUT  10000
#define S_DEFAULT_IDLE_TIMEOUT    60000
#define S_DEFAULT_READ_BUFFER     16384
#define S_BACKLOG                 1024
//  Bodies up to this size are copied into out (to be sent with the
//  headers, and batched with other pipelined responses); larger ones are
//  sent straight from the caller's memory.
#define S_COPY_BODY 16384
//  Output waiting beyond this stops the processing of pipelined requests
//  until the client has read it.
#define S_OUT_HIGH 65536
//  An output buffer grown beyond this is freed once drained.
#define S_OUT_KEEP 65536
//  Lingering close: at most this long, at most this many bytes thrown away.
#define S_LINGER_MS  2000
#define S_LINGER_MAX (1024 * 1024)
//  Accepting paused this long when out of file descriptors.
#define S_ACCEPT_PAUSE_MS 100
//  Room for a server error's JSON body.
#define S_ERROR_BODY 256

typedef struct _s_conn_t s_conn_t;

typedef enum {
    S_TIMER_NONE = 0, //  not started
    S_TIMER_HEADER,   //  request begun, not complete: 408
    S_TIMER_IDLE,     //  waiting for a request (lazy, see idle_deadline)
    S_TIMER_LINGER,   //  lingering close: close
} s_timer_kind_t;

struct _keel_http_exchange_t {
    s_conn_t *conn;               //  the connection that owns it
    keel_http_request_t *request; //  the reader's request
    uint64_t id;                  //  unique in the server, from 1
    int64_t started_ms;           //  when the request was complete
    void *user;                   //  application's slot
    bool v10;                     //  HTTP/1.0 client: 1.0 status line
    bool head;                    //  HEAD request: no body in the response
    bool keep_alive;              //  the client may send another request
};

struct _s_conn_t {
    keel_http_server_t *server;    //  the server it belongs to
    s_conn_t *prev;                //  open connections list
    s_conn_t *next;                //  open connections list
    int fd;                        //  client socket; -1 once closed
    uint32_t events;               //  events watched now
    keel_http_reader_t *reader;    //  request parser; owned
    keel_http_exchange_t exchange; //  the one exchange, reused per request
    char *in;             //  unparsed bytes (in_bound room), NULL until needed
    size_t in_start;      //  first unparsed byte in `in`
    size_t in_end;        //  end of unparsed bytes in `in`
    char *out;            //  output not yet sent; owned, NULL until needed
    size_t out_start;     //  first byte not yet sent
    size_t out_end;       //  end of output
    size_t out_cap;       //  bytes allocated at out
    keel_evtimer_t timer; //  header, idle or linger timer
    s_timer_kind_t timer_kind;   //  what the timer is for while started
    int64_t idle_deadline;       //  idle close due (lazy idle timer)
    size_t requests;             //  requests handed out on this connection
    size_t linger_bytes;         //  bytes thrown away while lingering
    bool busy;                   //  code for this connection is running
    bool dead;                   //  closed; freed when no longer busy
    bool outstanding;            //  exchange handed out, not answered
    bool in_request;             //  bytes of a request fed to the reader
    bool closing;                //  close after the output is sent
    bool linger;                 //  ... and linger (input may be unread)
    bool lingering;              //  write side shut, draining input
    bool eof;                    //  the client shut its write side
    char peer[INET6_ADDRSTRLEN]; //  client address, no port
};

struct _keel_http_server_t {
    keel_evloop_t *loop;              //  borrowed
    keel_http_server_config_t config; //  copy, defaults applied
    keel_http_request_fn *on_request; //  required
    keel_http_abort_fn *on_abort;     //  or NULL
    keel_http_error_fn *on_error;     //  or NULL
    void *arg;                        //  for the callbacks
    int listen_fd;                    //  listener, -1 if none
    int port;                         //  port listened on, 0 before
    keel_evtimer_t accept_timer;      //  resumes accepting after EMFILE
    s_conn_t *conns;                  //  open connections
    size_t open;                      //  how many
    size_t in_bound;                  //  room of a connection's `in`
    char *scratch;                    //  read buffer, read_buffer bytes
    uint64_t last_id;                 //  last exchange id given
    bool draining;                    //  drain called
    bool destroying;                  //  destroy running
    keel_http_server_stats_t stats;   //  counters (open kept in `open`)
    keel_ratelimit_t accept_log;      //  accept failures
};

static void s_conn_pump (s_conn_t *conn);

// ---------------------------------------------------------------------------
//  JSON error bodies and reason phrases

//  Bounded output, snprintf-like: counts every byte, stores what fits.
typedef struct {
    char *buf;   //  destination
    size_t room; //  bytes that may be stored (size - 1, or 0)
    size_t len;  //  bytes needed so far
} s_emit_t;

static void
s_emit (s_emit_t *e, const char *data, size_t n)
{
    if (e->len < e->room) {
        size_t fit = e->room - e->len < n ? e->room - e->len : n;
        memcpy (e->buf + e->len, data, fit);
    }
    e->len += n;
}

static void
s_emit_str (s_emit_t *e, const char *s)
{
    s_emit (e, s, strlen (s));
}

//  Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one
//  (bad lead, bad continuation, overlong, surrogate, beyond U+10FFFF).
static size_t
s_utf8_len (const unsigned char *s)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
            (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
            return 0;
        return 4;
    }
    return 0;
}

//  A JSON string with its quotes: ", \ and control characters escaped,
//  bytes that are not UTF-8 replaced by U+FFFD. (The NUL terminator stops
//  every continuation check above, so they never read past it.)
static void
s_emit_json (s_emit_t *e, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    s_emit (e, "\"", 1);
    while (*s) {
        const unsigned char *run = s;
        while (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\')
            s++;
        s_emit (e, (const char *)run, (size_t)(s - run));
        if (!*s)
            break;
        if (*s == '"' || *s == '\\') {
            char esc[2] = {'\\', (char)*s};
            s_emit (e, esc, 2);
            s++;
        } else if (*s < 0x80) {
            char esc[6] = {'\\', 'u', '0', '0', hex[*s >> 4], hex[*s & 15]};
            s_emit (e, esc, 6);
            s++;
        } else {
            size_t n = s_utf8_len (s);
            if (n)
                s_emit (e, (const char *)s, n);
            else
                s_emit (e, "\\ufffd", 6);
            s += n ? n : 1;
        }
    }
    s_emit (e, "\"", 1);
}

size_t
keel_http_error_body (char *buffer, size_t size, int status, const char *code,
                      const char *message, const char *request_id)
{
    s_emit_t e = {buffer, size ? size - 1 : 0, 0};
    char number[16];
    s_emit_str (&e, "{\"error\":");
    s_emit_json (&e, code ? code : "error");
    s_emit_str (&e, ",\"message\":");
    s_emit_json (&e, message ? message : keel_http_status_text (status));
    int n = snprintf (number, sizeof number, ",\"status\":%d", status);
    s_emit (&e, number, (size_t)n);
    if (request_id) {
        s_emit_str (&e, ",\"request_id\":");
        s_emit_json (&e, request_id);
    }
    s_emit (&e, "}", 1);
    if (size)
        buffer[e.len < e.room ? e.len : e.room] = '\0';
    return e.len;
}

//  Reason phrases by class (status / 100) and status % 100.
static const char *const s_1xx[] = {
    [0] = "Continue",
    [1] = "Switching Protocols",
    [2] = "Processing",
    [3] = "Early Hints",
};
static const char *const s_2xx[] = {
    [0] = "OK",
    [1] = "Created",
    [2] = "Accepted",
    [3] = "Non-Authoritative Information",
    [4] = "No Content",
    [5] = "Reset Content",
    [6] = "Partial Content",
    [7] = "Multi-Status",
    [8] = "Already Reported",
    [26] = "IM Used",
};
static const char *const s_3xx[] = {
    [0] = "Multiple Choices",   [1] = "Moved Permanently",  [2] = "Found",
    [3] = "See Other",          [4] = "Not Modified",       [5] = "Use Proxy",
    [7] = "Temporary Redirect", [8] = "Permanent Redirect",
};
static const char *const s_4xx[] = {
    [0] = "Bad Request",
    [1] = "Unauthorized",
    [2] = "Payment Required",
    [3] = "Forbidden",
    [4] = "Not Found",
    [5] = "Method Not Allowed",
    [6] = "Not Acceptable",
    [7] = "Proxy Authentication Required",
    [8] = "Request Timeout",
    [9] = "Conflict",
    [10] = "Gone",
    [11] = "Length Required",
    [12] = "Precondition Failed",
    [13] = "Content Too Large",
    [14] = "URI Too Long",
    [15] = "Unsupported Media Type",
    [16] = "Range Not Satisfiable",
    [17] = "Expectation Failed",
    [21] = "Misdirected Request",
    [22] = "Unprocessable Content",
    [23] = "Locked",
    [24] = "Failed Dependency",
    [25] = "Too Early",
    [26] = "Upgrade Required",
    [28] = "Precondition Required",
    [29] = "Too Many Requests",
    [31] = "Request Header Fields Too Large",
    [51] = "Unavailable For Legal Reasons",
};
static const char *const s_5xx[] = {
    [0] = "Internal Server Error",
    [1] = "Not Implemented",
    [2] = "Bad Gateway",
    [3] = "Service Unavailable",
    [4] = "Gateway Timeout",
    [5] = "HTTP Version Not Supported",
    [6] = "Variant Also Negotiates",
    [7] = "Insufficient Storage",
    [8] = "Loop Detected",
    [10] = "Not Extended",
    [11] = "Network Authentication Required",
};

const char *
keel_http_status_text (int status)
{
    static const struct {
        const char *const *texts;
        size_t count;
    } classes[] = {
        {NULL, 0},
        {s_1xx, sizeof s_1xx / sizeof *s_1xx},
        {s_2xx, sizeof s_2xx / sizeof *s_2xx},
        {s_3xx, sizeof s_3xx / sizeof *s_3xx},
        {s_4xx, sizeof s_4xx / sizeof *s_4xx},
        {s_5xx, sizeof s_5xx / sizeof *s_5xx},
    };
    if (status < 100 || status > 599)
        return "Unknown";
    size_t index = (size_t)(status % 100);
    const char *text = index < classes[status / 100].count
                           ? classes[status / 100].texts[index]
                           : NULL;
    return text ? text : "Unknown";
}

//  The code and message of an error the server answers itself.
static void
s_error_words (int status, const char **code, const char **message)
{
    switch (status) {
    case 400:
        *code = "bad_request";
        *message = "malformed request";
        break;
    case 408:
        *code = "request_timeout";
        *message = "request not received in time";
        break;
    case 413:
        *code = "body_too_large";
        *message = "request body too large";
        break;
    case 414:
        *code = "url_too_long";
        *message = "request URL too long";
        break;
    case 431:
        *code = "headers_too_large";
        *message = "request headers too large";
        break;
    case 501:
        *code = "not_implemented";
        *message = "method or upgrade not implemented";
        break;
    case 503:
        *code = "unavailable";
        *message = "too many connections";
        break;
    case 505:
        *code = "version_not_supported";
        *message = "only HTTP/1.0 and HTTP/1.1 are served";
        break;
    default:
        *code = "internal";
        *message = "internal error";
        break;
    }
}

// ---------------------------------------------------------------------------
//  Writing responses

//  Make room for `size` more bytes of output. Returns 0 or -1.
static int
s_out_reserve (s_conn_t *conn, size_t size)
{
    if (size <= conn->out_cap - conn->out_end)
        return 0;
    if (conn->out_start) {
        //  Sent bytes are dead: move the rest down first
        memmove (conn->out, conn->out + conn->out_start,
                 conn->out_end - conn->out_start);
        conn->out_end -= conn->out_start;
        conn->out_start = 0;
        if (size <= conn->out_cap - conn->out_end)
            return 0;
    }
    if (size > SIZE_MAX / 2 - conn->out_end)
        return -1;
    size_t cap = conn->out_cap ? conn->out_cap : 1024;
    while (cap < conn->out_end + size)
        cap *= 2;
    char *out = realloc (conn->out, cap);
    if (!out)
        return -1;
    conn->out = out;
    conn->out_cap = cap;
    return 0;
}

//  Append bytes; the room must have been reserved.
static inline char *
s_put (char *p, const void *data, size_t size)
{
    memcpy (p, data, size);
    return p + size;
}

//  Header names the server writes itself.
static bool
s_header_skipped (const char *name, size_t len)
{
    return (len == 14 && strcasecmp (name, "Content-Length") == 0) ||
           (len == 17 && strcasecmp (name, "Transfer-Encoding") == 0) ||
           (len == 10 && strcasecmp (name, "Connection") == 0);
}

//  Append "Name: value\r\n" unless skipped or unsafe (an empty name, or a
//  CR, LF or colon where it would split the header). Returns 0 or -1.
static int
s_out_header (s_conn_t *conn, const keel_http_header_t *header)
{
    if (!header->name || !header->value)
        return 0;
    size_t name_len = strcspn (header->name, ":\r\n");
    size_t value_len = strcspn (header->value, "\r\n");
    if (!name_len || header->name[name_len] || header->value[value_len] ||
        s_header_skipped (header->name, name_len))
        return 0;
    if (s_out_reserve (conn, name_len + value_len + 4))
        return -1;
    char *p = conn->out + conn->out_end;
    p = s_put (p, header->name, name_len);
    p = s_put (p, ": ", 2);
    p = s_put (p, header->value, value_len);
    p = s_put (p, "\r\n", 2);
    conn->out_end = (size_t)(p - conn->out);
    return 0;
}

//  Decimal digits of `value` at the end of buf[20]; returns the first.
static char *
s_utoa (char *end, uint64_t value)
{
    char *p = end;
    do
        *--p = (char)('0' + value % 10);
    while (value /= 10);
    return p;
}

static void s_conn_close (s_conn_t *conn);

//  Send what waits in out, then `body` (size bytes) with one sendmsg;
//  copy what the socket does not take. Returns 0, or -1 if out of memory.
//  A failed send closes the connection (and returns 0: the response was
//  given, the client is gone).
static int
s_conn_send_body (s_conn_t *conn, const void *body, size_t size)
{
    size_t pending = conn->out_end - conn->out_start;
    struct iovec iov[2] = {{conn->out + conn->out_start, pending},
                           {(void *)body, size}};
    struct msghdr msg = {0};
    msg.msg_iov = pending ? iov : iov + 1;
    msg.msg_iovlen = pending ? 2 : 1;
    ssize_t n;
    do
        n = sendmsg (conn->fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        conn->server->stats.read_errors++;
        s_conn_close (conn);
        return 0;
    }
    size_t sent = n > 0 ? (size_t)n : 0;
    if (sent >= pending) {
        conn->out_start = conn->out_end = 0;
        sent -= pending;
    } else {
        conn->out_start += sent;
        sent = 0;
    }
    if (sent == size)
        return 0;
    if (s_out_reserve (conn, size - sent))
        return -1;
    memcpy (conn->out + conn->out_end, (const char *)body + sent, size - sent);
    conn->out_end += size - sent;
    return 0;
}

//  Append a whole response to the connection's output (the body may be
//  sent at once, see S_COPY_BODY). `extra` is one more header or NULL.
//  Returns 0, or -1 if out of memory.
static int
s_conn_put_response (s_conn_t *conn, int status, bool v10, bool head,
                     bool keep_alive, const keel_http_header_t *extra,
                     const keel_http_header_t *headers, size_t n,
                     const void *body, size_t size)
{
    if (status < 100 || status > 999)
        status = 500;
    bool bodiless = status < 200 || status == 204 || status == 304;
    bool with_body = !head && !bodiless && size > 0;
    const char *reason = keel_http_status_text (status);
    size_t reason_len = strlen (reason);
    if (s_out_reserve (conn, 15 + reason_len))
        return -1;
    char *p = conn->out + conn->out_end;
    p = s_put (p, v10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    p = s_put (p, reason, reason_len);
    p = s_put (p, "\r\n", 2);
    conn->out_end = (size_t)(p - conn->out);
    if (extra && s_out_header (conn, extra))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (s_out_header (conn, &headers[i]))
            return -1;
    //  Content-Length (20 digits at most), Connection, blank line, body
    size_t tail = 16 + 20 + 2 + 24 + 2;
    if (with_body && size <= S_COPY_BODY)
        tail += size;
    if (s_out_reserve (conn, tail))
        return -1;
    p = conn->out + conn->out_end;
    if (!bodiless) {
        char digits[20];
        char *first = s_utoa (digits + sizeof digits, size);
        p = s_put (p, "Content-Length: ", 16);
        p = s_put (p, first, (size_t)(digits + sizeof digits - first));
        p = s_put (p, "\r\n", 2);
    }
    if (keep_alive)
        p = s_put (p, "Connection: keep-alive\r\n\r\n", 26);
    else
        p = s_put (p, "Connection: close\r\n\r\n", 21);
    if (with_body && size <= S_COPY_BODY)
        p = s_put (p, body, size);
    conn->out_end = (size_t)(p - conn->out);
    conn->server->stats.responses++;
    if (with_body && size > S_COPY_BODY)
        return s_conn_send_body (conn, body, size);
    return 0;
}

//  Append an error the server answers itself (JSON body, Connection:
//  close), mark the connection closing and tell on_error. A reader's
//  verdict may leave input unread: linger.
static void
s_conn_put_error (s_conn_t *conn, int status, const char *reason)
{
    assert (conn->busy); //  so conn outlives a close here
    keel_http_server_t *server = conn->server;
    const char *code, *message;
    s_error_words (status, &code, &message);
    char body[S_ERROR_BODY];
    size_t size =
        keel_http_error_body (body, sizeof body, status, code, message, NULL);
    assert (size < sizeof body);
    keel_http_header_t type = {"Content-Type", "application/json"};
    conn->in_request = false;
    conn->closing = true;
    conn->linger = true;
    if (s_conn_put_response (conn, status, false, false, false, &type, NULL, 0,
                             body, size))
        s_conn_close (conn);
    if (server->on_error)
        server->on_error (server, status, reason, conn->peer, server->arg);
}

// ---------------------------------------------------------------------------
//  Connections

//  Watch `events` (EPOLLIN, EPOLLOUT) if they changed.
static void
s_conn_watch (s_conn_t *conn, uint32_t events)
{
    if (conn->events == events)
        return;
    if (keel_evloop_mod (conn->server->loop, conn->fd, events) == 0)
        conn->events = events;
}

static void s_conn_on_timer (keel_evloop_t *loop, keel_evtimer_t *timer,
                             void *arg);

static void
s_conn_timer (s_conn_t *conn, s_timer_kind_t kind, int64_t deadline)
{
    conn->timer_kind = kind;
    keel_evloop_timer_start (conn->server->loop, &conn->timer, deadline,
                             s_conn_on_timer, conn);
}

static void
s_conn_timer_stop (s_conn_t *conn)
{
    if (conn->timer_kind != S_TIMER_NONE) {
        keel_evloop_timer_stop (conn->server->loop, &conn->timer);
        conn->timer_kind = S_TIMER_NONE;
    }
}

static void
s_conn_free (s_conn_t *conn)
{
    keel_http_reader_destroy (&conn->reader);
    free (conn->in);
    free (conn->out);
    free (conn);
}

//  Close the connection now: timer, fd, list. An exchange not answered is
//  aborted (on_abort). Freed at once unless busy (then by s_conn_leave).
static void
s_conn_close (s_conn_t *conn)
{
    if (conn->dead)
        return;
    keel_http_server_t *server = conn->server;
    conn->dead = true;
    s_conn_timer_stop (conn);
    keel_evloop_del (server->loop, conn->fd);
    close (conn->fd);
    conn->fd = -1;
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        server->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    server->open--;
    bool was_busy = conn->busy;
    if (conn->outstanding) {
        conn->outstanding = false;
        conn->busy = true; //  not freed under on_abort's feet
        server->stats.aborted++;
        if (server->on_abort)
            server->on_abort (server, &conn->exchange, server->arg);
        conn->busy = was_busy;
    }
    if (!conn->busy)
        s_conn_free (conn);
}

//  Leave a frame that set busy: free the connection if it was closed.
static void
s_conn_leave (s_conn_t *conn)
{
    conn->busy = false;
    if (conn->dead)
        s_conn_free (conn);
}

//  May the reader be fed now?
static bool
s_conn_ready (s_conn_t *conn)
{
    return !conn->dead && !conn->closing && !conn->outstanding &&
           !conn->server->destroying &&
           conn->out_end - conn->out_start <= S_OUT_HIGH;
}

static bool
s_conn_keep_alive (s_conn_t *conn, bool close)
{
    keel_http_server_t *server = conn->server;
    return !close && conn->exchange.keep_alive && !server->draining &&
           !conn->eof && !conn->closing &&
           !(server->config.max_requests &&
             conn->requests >= server->config.max_requests);
}

//  A complete request: lend the exchange to the application.
static void
s_conn_dispatch (s_conn_t *conn)
{
    keel_http_server_t *server = conn->server;
    keel_http_exchange_t *exchange = &conn->exchange;
    keel_http_request_t *request = keel_http_reader_request (conn->reader);
    int major = keel_http_request_version_major (request);
    int minor = keel_http_request_version_minor (request);
    conn->in_request = false;
    exchange->request = request;
    exchange->id = ++server->last_id;
    exchange->started_ms = keel_now_ms ();
    exchange->user = NULL;
    exchange->v10 = major < 1 || (major == 1 && minor == 0);
    exchange->head = strcmp (keel_http_request_method (request), "HEAD") == 0;
    exchange->keep_alive = keel_http_request_keep_alive (request) != 0;
    conn->requests++;
    conn->outstanding = true;
    server->stats.requests++;
    server->on_request (server, exchange, server->arg);
}

static int s_conn_flush (s_conn_t *conn);

//  Feed bytes to the reader while it may be fed, handing out each request.
//  Returns the bytes consumed (the rest waits for the exchange).
static size_t
s_conn_feed (s_conn_t *conn, const char *data, size_t size)
{
    size_t pos = 0;
    while (pos < size && s_conn_ready (conn)) {
        size_t used = 0;
        keel_http_result_t rc =
            keel_http_reader_feed (conn->reader, data + pos, size - pos, &used);
        pos += used;
        if (rc == KEEL_HTTP_REQUEST)
            s_conn_dispatch (conn);
        else if (rc == KEEL_HTTP_NEED_MORE) {
            //  A request has begun: its headers (and body) are due within
            //  header_timeout_ms of these bytes' arrival
            if (!conn->in_request) {
                conn->in_request = true;
                s_conn_timer (conn, S_TIMER_HEADER,
                              keel_now_ms () +
                                  conn->server->config.header_timeout_ms);
            }
            if (keel_http_reader_take_continue (conn->reader)) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (s_out_reserve (conn, sizeof cont - 1) == 0) {
                    memcpy (conn->out + conn->out_end, cont, sizeof cont - 1);
                    conn->out_end += sizeof cont - 1;
                    s_conn_flush (conn);
                }
            }
            break;
        } else {
            int status = keel_http_result_status (rc);
            if (status != 500)
                conn->server->stats.bad_requests++;
            s_conn_put_error (conn, status, keel_http_result_str (rc));
            break;
        }
    }
    return pos;
}

//  Send pending output. Returns 0, or -1 if the connection was closed.
static int
s_conn_flush (s_conn_t *conn)
{
    while (conn->out_start < conn->out_end) {
        ssize_t n = send (conn->fd, conn->out + conn->out_start,
                          conn->out_end - conn->out_start, MSG_NOSIGNAL);
        if (n >= 0)
            conn->out_start += (size_t)n;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        else if (errno != EINTR) {
            conn->server->stats.read_errors++;
            s_conn_close (conn);
            return -1;
        }
    }
    conn->out_start = conn->out_end = 0;
    if (conn->out_cap > S_OUT_KEEP) {
        free (conn->out);
        conn->out = NULL;
        conn->out_cap = 0;
    }
    return 0;
}

//  Output sent and the connection is closing: close, or shut the write
//  side and linger when the client may still be sending.
static void
s_conn_finish (s_conn_t *conn)
{
    if (!conn->linger && conn->in_end == conn->in_start) {
        s_conn_close (conn);
        return;
    }
    int64_t linger = conn->server->config.idle_timeout_ms < S_LINGER_MS
                         ? conn->server->config.idle_timeout_ms
                         : S_LINGER_MS;
    shutdown (conn->fd, SHUT_WR);
    conn->lingering = true;
    conn->in_start = conn->in_end = 0;
    s_conn_watch (conn, EPOLLIN);
    s_conn_timer (conn, S_TIMER_LINGER, keel_now_ms () + linger);
}

//  Is there room to read into?
static bool
s_conn_room (s_conn_t *conn)
{
    if (conn->in_end == conn->in_start && s_conn_ready (conn))
        return true; //  into scratch
    return conn->in_end - conn->in_start < conn->server->in_bound;
}

//  After work on a connection: close it if it is done, else pick what to
//  watch and which timer runs.
static void
s_conn_settle (s_conn_t *conn)
{
    keel_http_server_t *server = conn->server;
    if (conn->dead || conn->lingering)
        return;
    bool out_pending = conn->out_end > conn->out_start;
    if (!out_pending && !conn->outstanding) {
        if (conn->closing) {
            s_conn_finish (conn);
            return;
        }
        if (conn->eof) {
            s_conn_close (conn);
            return;
        }
        if (server->draining && !conn->in_request &&
            conn->in_end == conn->in_start) {
            server->stats.idle_closed++;
            s_conn_close (conn);
            return;
        }
    }
    uint32_t events = out_pending ? EPOLLOUT : 0;
    if (!conn->closing && !conn->eof && s_conn_room (conn))
        events |= EPOLLIN;
    s_conn_watch (conn, events);
    if (conn->outstanding)
        s_conn_timer_stop (conn); //  the application owns this time
    else if (!conn->in_request) {
        conn->idle_deadline = keel_now_ms () + server->config.idle_timeout_ms;
        if (conn->timer_kind != S_TIMER_IDLE)
            s_conn_timer (conn, S_TIMER_IDLE, conn->idle_deadline);
    }
}

//  Send output, feed buffered input while possible, then settle.
static void
s_conn_pump (s_conn_t *conn)
{
    while (!conn->dead) {
        if (conn->out_end > conn->out_start && s_conn_flush (conn))
            return;
        if (conn->in_end == conn->in_start || !s_conn_ready (conn))
            break;
        size_t used = s_conn_feed (conn, conn->in + conn->in_start,
                                   conn->in_end - conn->in_start);
        if (conn->dead)
            return;
        conn->in_start += used;
        if (conn->in_start == conn->in_end)
            conn->in_start = conn->in_end = 0;
        if (!used && conn->out_end == conn->out_start)
            break;
    }
    s_conn_settle (conn);
}

//  The client shut its side (read returned 0).
static void
s_conn_on_eof (s_conn_t *conn)
{
    if (conn->outstanding)
        s_conn_close (conn); //  aborts the exchange
    else
        conn->eof = true; //  answer what is buffered, then close
}

//  Read once: straight into scratch and the reader when it may be fed,
//  else into `in` to wait.
static void
s_conn_read (s_conn_t *conn)
{
    keel_http_server_t *server = conn->server;
    ssize_t n;
    if (conn->in_end == conn->in_start && s_conn_ready (conn)) {
        conn->in_start = conn->in_end = 0;
        n = recv (conn->fd, server->scratch, server->config.read_buffer, 0);
        if (n > 0) {
            size_t used = s_conn_feed (conn, server->scratch, (size_t)n);
            size_t left = (size_t)n - used;
            if (conn->dead || !left)
                return;
            if (conn->closing) {
                conn->linger = true; //  unread input: linger
                return;
            }
            if (!conn->in && !(conn->in = malloc (server->in_bound))) {
                s_conn_close (conn);
                return;
            }
            memcpy (conn->in, server->scratch + used, left);
            conn->in_end = left;
            return;
        }
    } else {
        size_t held = conn->in_end - conn->in_start;
        if (held >= server->in_bound)
            return; //  full: EPOLLIN is off (or HUP, handled by the caller)
        if (!conn->in && !(conn->in = malloc (server->in_bound))) {
            s_conn_close (conn);
            return;
        }
        if (conn->in_start) {
            memmove (conn->in, conn->in + conn->in_start, held);
            conn->in_start = 0;
            conn->in_end = held;
        }
        n = recv (conn->fd, conn->in + conn->in_end, server->in_bound - held,
                  0);
        if (n > 0) {
            conn->in_end += (size_t)n;
            return;
        }
    }
    if (n == 0)
        s_conn_on_eof (conn);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        server->stats.read_errors++;
        s_conn_close (conn);
    }
}

//  Lingering: throw input away until EOF, an error or too many bytes.
static void
s_conn_linger_read (s_conn_t *conn)
{
    keel_http_server_t *server = conn->server;
    ssize_t n = recv (conn->fd, server->scratch, server->config.read_buffer, 0);
    if (n > 0) {
        conn->linger_bytes += (size_t)n;
        if (conn->linger_bytes > S_LINGER_MAX)
            s_conn_close (conn);
    } else if (n == 0 ||
               (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        s_conn_close (conn);
}

static void
s_conn_on_event (keel_evloop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)fd;
    s_conn_t *conn = arg;
    assert (!conn->busy);
    conn->busy = true;
    if (conn->lingering)
        s_conn_linger_read (conn);
    else {
        bool gone = (events & (EPOLLERR | EPOLLHUP)) != 0;
        bool reading = !conn->closing && !conn->eof;
        if (((events & EPOLLIN) || gone) && reading && s_conn_room (conn))
            s_conn_read (conn);
        else if (gone) {
            //  Cannot read to learn more: the socket is dead either way.
            //  (Output still waiting fails on send and is counted there.)
            if (conn->out_end > conn->out_start)
                s_conn_flush (conn);
            s_conn_close (conn);
        }
        s_conn_pump (conn);
    }
    s_conn_leave (conn);
}

static void
s_conn_on_timer (keel_evloop_t *loop, keel_evtimer_t *timer, void *arg)
{
    (void)loop;
    (void)timer;
    s_conn_t *conn = arg;
    keel_http_server_t *server = conn->server;
    assert (!conn->busy);
    s_timer_kind_t kind = conn->timer_kind;
    conn->timer_kind = S_TIMER_NONE;
    conn->busy = true;
    if (kind == S_TIMER_IDLE) {
        if (keel_now_ms () < conn->idle_deadline)
            s_conn_timer (conn, S_TIMER_IDLE, conn->idle_deadline);
        else {
            if (!conn->closing)
                server->stats.idle_closed++;
            s_conn_close (conn);
        }
    } else if (kind == S_TIMER_HEADER) {
        if (conn->in_request && !conn->outstanding) {
            server->stats.timeouts++;
            s_conn_put_error (conn, 408, "header-timeout");
        }
        s_conn_pump (conn);
    } else
        s_conn_close (conn);
    s_conn_leave (conn);
}

//  Write the address of `addr` (no port) into peer; IPv4-mapped IPv6
//  addresses as IPv4.
static void
s_peer_string (const struct sockaddr_storage *addr, char *peer, size_t size)
{
    const void *src = NULL;
    int family = addr->ss_family;
    if (family == AF_INET)
        src = &((const struct sockaddr_in *)addr)->sin_addr;
    else if (family == AF_INET6) {
        const struct in6_addr *a6 =
            &((const struct sockaddr_in6 *)addr)->sin6_addr;
        src = a6;
        if (IN6_IS_ADDR_V4MAPPED (a6)) {
            family = AF_INET;
            src = a6->s6_addr + 12;
        }
    }
    if (!src || !inet_ntop (family, src, peer, (socklen_t)size))
        snprintf (peer, size, "unknown");
}

static void
s_conn_new (keel_http_server_t *server, int fd, const char *peer)
{
    s_conn_t *conn = calloc (1, sizeof (*conn));
    if (conn)
        conn->reader = keel_http_reader_new (&server->config.limits);
    if (!conn || !conn->reader ||
        keel_evloop_add (server->loop, fd, EPOLLIN, s_conn_on_event, conn)) {
        if (conn)
            keel_http_reader_destroy (&conn->reader);
        free (conn);
        close (fd);
        keel_log_limited (&server->accept_log, keel_now_ms (),
                          "http server: cannot set up a connection: %s",
                          strerror (errno));
        return;
    }
    conn->server = server;
    conn->fd = fd;
    conn->events = EPOLLIN;
    conn->exchange.conn = conn;
    snprintf (conn->peer, sizeof conn->peer, "%s", peer);
    conn->next = server->conns;
    if (server->conns)
        server->conns->prev = conn;
    server->conns = conn;
    server->open++;
    conn->idle_deadline = keel_now_ms () + server->config.idle_timeout_ms;
    s_conn_timer (conn, S_TIMER_IDLE, conn->idle_deadline);
}

// ---------------------------------------------------------------------------
//  The listener

//  Over max_connections: answer 503 (best effort), close. Reading what
//  already arrived before closing spares the client a reset that could
//  destroy the answer.
static void
s_server_refuse (keel_http_server_t *server, int fd, const char *peer)
{
    char response[512];
    char body[S_ERROR_BODY];
    const char *code, *message;
    s_error_words (503, &code, &message);
    size_t size =
        keel_http_error_body (body, sizeof body, 503, code, message, NULL);
    int len = snprintf (response, sizeof response,
                        "HTTP/1.1 503 Service Unavailable\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n"
                        "Connection: close\r\n\r\n%s",
                        size, body);
    assert (len > 0 && (size_t)len < sizeof response);
    if (send (fd, response, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
        server->stats.responses++;
    shutdown (fd, SHUT_WR);
    for (int i = 0; i < 4; i++)
        if (recv (fd, server->scratch, server->config.read_buffer,
                  MSG_DONTWAIT) <= 0)
            break;
    close (fd);
    server->stats.refused++;
    if (server->on_error)
        server->on_error (server, 503, "max-connections", peer, server->arg);
}

static void
s_server_close_listener (keel_http_server_t *server)
{
    keel_evloop_timer_stop (server->loop, &server->accept_timer);
    if (server->listen_fd >= 0) {
        keel_evloop_del (server->loop, server->listen_fd);
        close (server->listen_fd);
        server->listen_fd = -1;
    }
}

static void
s_server_resume_accept (keel_evloop_t *loop, keel_evtimer_t *timer, void *arg)
{
    (void)timer;
    keel_http_server_t *server = arg;
    if (server->listen_fd >= 0)
        keel_evloop_mod (loop, server->listen_fd, EPOLLIN);
}

static void
s_server_on_accept (keel_evloop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)events;
    keel_http_server_t *server = arg;
    while (server->listen_fd == fd) {
        struct sockaddr_storage addr;
        socklen_t addr_len = sizeof addr;
        int client = accept4 (fd, (struct sockaddr *)&addr, &addr_len,
                              SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            //  Out of descriptors or memory: the listener stays readable,
            //  so stop watching it for a while rather than spin
            keel_log_limited (&server->accept_log, keel_now_ms (),
                              "http server: accept: %s", strerror (errno));
            keel_evloop_mod (loop, fd, 0);
            keel_evloop_timer_start (loop, &server->accept_timer,
                                     keel_now_ms () + S_ACCEPT_PAUSE_MS,
                                     s_server_resume_accept, server);
            break;
        }
        char peer[INET6_ADDRSTRLEN];
        s_peer_string (&addr, peer, sizeof peer);
        server->stats.accepted++;
        if (server->open >= server->config.max_connections) {
            s_server_refuse (server, client, peer);
            continue;
        }
        int one = 1;
        setsockopt (client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        s_conn_new (server, client, peer);
    }
}

// ---------------------------------------------------------------------------
//  Public API: the server

keel_http_server_t *
keel_http_server_new (keel_evloop_t *loop,
                      const keel_http_server_config_t *config,
                      keel_http_request_fn *on_request,
                      keel_http_abort_fn *on_abort,
                      keel_http_error_fn *on_error, void *arg)
{
    assert (loop);
    assert (on_request);
    keel_http_server_t *self = calloc (1, sizeof (*self));
    if (!self)
        return NULL;
    if (config)
        self->config = *config;
    keel_http_server_config_t *c = &self->config;
    if (!c->max_connections)
        c->max_connections = S_DEFAULT_MAX_CONNECTIONS;
    if (c->header_timeout_ms <= 0)
        c->header_timeout_ms = S_DEFAULT_HEADER_TIMEOUT;
    if (c->idle_timeout_ms <= 0)
        c->idle_timeout_ms = S_DEFAULT_IDLE_TIMEOUT;
    if (!c->read_buffer)
        c->read_buffer = S_DEFAULT_READ_BUFFER;
    self->in_bound = c->read_buffer;
    self->scratch = malloc (c->read_buffer);
    if (!self->scratch) {
        free (self);
        return NULL;
    }
    self->loop = loop;
    self->on_request = on_request;
    self->on_abort = on_abort;
    self->on_error = on_error;
    self->arg = arg;
    self->listen_fd = -1;
    keel_evtimer_init (&self->accept_timer);
    return self;
}

void
keel_http_server_destroy (keel_http_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keel_http_server_t *self = *self_p;
    self->destroying = true;
    s_server_close_listener (self);
    while (self->conns)
        s_conn_close (self->conns);
    free (self->scratch);
    free (self);
    *self_p = NULL;
}

//  Split "HOST:PORT" ("[V6]:PORT", "*:PORT") into a host for getaddrinfo
//  (NULL = all IPv4 addresses) and a port. Returns 0 or -1.
static int
s_parse_address (const char *address, char *host, size_t host_size,
                 bool *bracketed, int *port)
{
    const char *colon = strrchr (address, ':');
    if (!colon || !colon[1] || strlen (colon + 1) > 5)
        return -1;
    long value = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
    }
    if (value > 65535)
        return -1;
    *port = (int)value;
    const char *start = address;
    size_t len = (size_t)(colon - address);
    *bracketed = len >= 2 && start[0] == '[' && start[len - 1] == ']';
    if (*bracketed) {
        start++;
        len -= 2;
    } else if (memchr (start, ':', len) || memchr (start, '[', len))
        return -1;
    if (len == 0 || len >= host_size)
        return -1;
    memcpy (host, start, len);
    host[len] = '\0';
    return 0;
}

int
keel_http_server_listen (keel_http_server_t *self, const char *address)
{
    assert (self);
    char host[256];
    bool bracketed = false;
    int port = 0;
    if (!address || self->listen_fd >= 0 || self->draining ||
        s_parse_address (address, host, sizeof host, &bracketed, &port)) {
        errno = EINVAL;
        return -1;
    }
    struct addrinfo hints = {0}, *found = NULL;
    hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | (bracketed ? AI_NUMERICHOST : 0);
    bool any = strcmp (host, "*") == 0;
    if (any)
        hints.ai_family = AF_INET;
    if (getaddrinfo (any ? NULL : host, "0", &hints, &found) || !found) {
        errno = EINVAL;
        return -1;
    }
    struct sockaddr_storage addr;
    socklen_t addr_len = (socklen_t)found->ai_addrlen;
    memcpy (&addr, found->ai_addr, found->ai_addrlen);
    freeaddrinfo (found);
    if (addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&addr)->sin_port = htons ((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons ((uint16_t)port);

    int fd =
        socket (addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind (fd, (struct sockaddr *)&addr, addr_len) ||
        listen (fd, S_BACKLOG) ||
        getsockname (fd, (struct sockaddr *)&addr, &addr_len) ||
        keel_evloop_add (self->loop, fd, EPOLLIN, s_server_on_accept, self)) {
        int saved = errno;
        close (fd);
        errno = saved;
        return -1;
    }
    self->listen_fd = fd;
    self->port = ntohs (addr.ss_family == AF_INET
                            ? ((struct sockaddr_in *)&addr)->sin_port
                            : ((struct sockaddr_in6 *)&addr)->sin6_port);
    return 0;
}

int
keel_http_server_port (keel_http_server_t *self)
{
    assert (self);
    return self->port;
}

void
keel_http_server_drain (keel_http_server_t *self)
{
    assert (self);
    self->draining = true;
    s_server_close_listener (self);
    s_conn_t *next;
    for (s_conn_t *conn = self->conns; conn; conn = next) {
        next = conn->next;
        if (conn->busy || conn->outstanding || conn->in_request ||
            conn->closing || conn->lingering ||
            conn->out_end > conn->out_start || conn->in_end > conn->in_start)
            continue; //  closes once its exchange is answered
        self->stats.idle_closed++;
        s_conn_close (conn);
    }
}

keel_http_server_stats_t
keel_http_server_stats (keel_http_server_t *self)
{
    assert (self);
    keel_http_server_stats_t stats = self->stats;
    stats.open = self->open;
    return stats;
}

// ---------------------------------------------------------------------------
//  Public API: exchanges

keel_http_request_t *
keel_http_exchange_request (keel_http_exchange_t *self)
{
    assert (self);
    return self->request;
}

const char *
keel_http_exchange_peer (keel_http_exchange_t *self)
{
    assert (self);
    return self->conn->peer;
}

uint64_t
keel_http_exchange_id (keel_http_exchange_t *self)
{
    assert (self);
    return self->id;
}

int64_t
keel_http_exchange_started_ms (keel_http_exchange_t *self)
{
    assert (self);
    return self->started_ms;
}

void
keel_http_exchange_set_user (keel_http_exchange_t *self, void *user)
{
    assert (self);
    self->user = user;
}

void *
keel_http_exchange_user (keel_http_exchange_t *self)
{
    assert (self);
    return self->user;
}

//  respond and error: write the response; when not called from inside
//  the connection's own loop, send it and serve pipelined requests.
static int
s_exchange_respond (keel_http_exchange_t *self, int status,
                    const keel_http_header_t *extra,
                    const keel_http_header_t *headers, size_t n,
                    const void *body, size_t size, bool close)
{
    assert (self);
    s_conn_t *conn = self->conn;
    assert (conn->outstanding && !conn->dead);
    assert (headers || n == 0);
    bool outer = !conn->busy;
    conn->busy = true;
    conn->outstanding = false;
    bool keep_alive = s_conn_keep_alive (conn, close);
    int rc = s_conn_put_response (conn, status, self->v10, self->head,
                                  keep_alive, extra, headers, n, body, size);
    if (rc)
        s_conn_close (conn);
    else if (!keep_alive)
        conn->closing = true;
    if (outer) {
        s_conn_pump (conn);
        s_conn_leave (conn);
    }
    return rc;
}

int
keel_http_exchange_respond (keel_http_exchange_t *self, int status,
                            const keel_http_header_t *headers, size_t n,
                            const void *body, size_t size, bool close)
{
    return s_exchange_respond (self, status, NULL, headers, n, body, size,
                               close);
}

int
keel_http_exchange_error (keel_http_exchange_t *self, int status,
                          const char *code, const char *message,
                          const char *request_id,
                          const keel_http_header_t *headers, size_t n)
{
    char small[512];
    char *body = small;
    size_t size = keel_http_error_body (small, sizeof small, status, code,
                                        message, request_id);
    if (size >= sizeof small) {
        body = malloc (size + 1);
        if (body)
            keel_http_error_body (body, size + 1, status, code, message,
                                  request_id);
    }
    keel_http_header_t type = {"Content-Type", "application/json"};
    int rc;
    if (body)
        rc = s_exchange_respond (self, status, &type, headers, n, body, size,
                                 false);
    else {
        //  Out of memory: the exchange ends and its connection closes
        s_conn_t *conn = self->conn;
        assert (conn->outstanding && !conn->dead);
        conn->outstanding = false;
        s_conn_close (conn);
        rc = -1;
    }
    if (body != small)
        free (body);
    return rc;
}
