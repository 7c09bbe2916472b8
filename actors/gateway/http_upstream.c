/*  http_upstream.c - the gateway's HTTP client: connection pools on a
    keel_evloop. See http_upstream.h.

    A pool keeps its connections and the calls that have none in lists:

        idle   conn <-> conn <-> conn       LIFO: head = most recently used;
                                            watched for EPOLLIN, so an
                                            upstream closing one is noticed
        busy   conn(call) <-> conn(call)    connecting, writing, reading
        queue  call <-> call <-> call       FIFO: waiting for a connection
        later  call <-> call                failed while being started: the
                                            callback runs on the next loop
                                            turn (never from inside
                                            keel_http_pool_call)

    A connection keeps its buffers from call to call (no allocation per call
    once they have grown):

        out    "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"  the request, kept
               until the response begins (to resend it on a stale conn)
        hdrs   "Content-Type\0text/plain\0Date\0...\0"
        offs   [{name_off, value_off}]  -> headers [{name, value}]:
               pointers fixed up at headers-complete, when hdrs has
               stopped growing (trailers are counted, not stored)
        body   de-chunked body, only when it spans several reads: a body
               that arrives in one read is handed out from the pool's read
               buffer without a copy

    Fast path of a call on a kept-alive connection: format into `out`, one
    send(), one read(), parse, callback; the fd stays watched for EPOLLIN
    throughout, so no epoll_ctl. EPOLLOUT is watched only while connecting
    or after a partial write.

    Lifetime: a callback may start calls, cancel calls, close or destroy the
    pool. The pool counts the callbacks running (depth) and frees itself
    only when none is; the connection whose response is being handed out is
    pinned (in no list, freed by whoever pinned it) so its buffers outlive
    the callback even if the pool is destroyed from it.
*/
#include "http_upstream.h"
#include "keel_common.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_DEFAULT_MAX_CONNECTIONS      64
#define S_DEFAULT_MAX_IDLE             32
#define S_DEFAULT_IDLE_TIMEOUT_MS      30000
#define S_DEFAULT_CONNECT_TIMEOUT_MS   2000
#define S_DEFAULT_MAX_QUEUE            1024
#define S_DEFAULT_MAX_RESPONSE_HEADERS 65536
#define S_DEFAULT_MAX_RESPONSE_BODY    (8 * 1024 * 1024)

#define S_READ_SIZE   32768 //  bytes per read()
#define S_MAX_ADDRS   4     //  addresses kept from getaddrinfo
#define S_KEEP_BUFFER 65536 //  a buffer larger than this is freed after use
#define S_FREE_CALLS  64    //  call structs kept for reuse

// ---------------------------------------------------------------------------
//  Growable byte buffer

typedef struct {
    char *data;  //  owned; NULL until first growth
    size_t size; //  bytes in use
    size_t cap;  //  bytes allocated
} s_buf_t;

static int
s_buf_reserve (s_buf_t *buf, size_t more)
{
    if (buf->cap - buf->size >= more)
        return 0;
    if (more > SIZE_MAX / 2 - buf->size)
        return -1;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap - buf->size < more)
        cap *= 2;
    char *data = (char *)realloc (buf->data, cap);
    if (!data)
        return -1;
    buf->data = data;
    buf->cap = cap;
    return 0;
}

static int
s_buf_append (s_buf_t *buf, const void *data, size_t size)
{
    if (s_buf_reserve (buf, size))
        return -1;
    if (size)
        memcpy (buf->data + buf->size, data, size);
    buf->size += size;
    return 0;
}

static void
s_buf_free (s_buf_t *buf)
{
    free (buf->data);
    buf->data = NULL;
    buf->size = buf->cap = 0;
}

//  Empty the buffer; give its memory back if it grew large.
static void
s_buf_trim (s_buf_t *buf)
{
    buf->size = 0;
    if (buf->cap > S_KEEP_BUFFER)
        s_buf_free (buf);
}

static void
s_buf_swap (s_buf_t *a, s_buf_t *b)
{
    s_buf_t tmp = *a;
    *a = *b;
    *b = tmp;
}

// ---------------------------------------------------------------------------
//  Structures

typedef enum {
    S_CONN_LOOSE,      //  in no list (being set up or torn down)
    S_CONN_CONNECTING, //  busy list: non-blocking connect in progress
    S_CONN_BUSY,       //  busy list: writing the request, reading
    S_CONN_IDLE,       //  idle list: kept alive, no call
    S_CONN_PINNED,     //  in no list: its response is in a callback (only
                       //  s_conn_deliver holds it; nothing else frees it)
} s_conn_state_t;

typedef enum {
    S_HDR_NONE,  //  no header piece yet
    S_HDR_FIELD, //  last piece was (part of) a name
    S_HDR_VALUE, //  last piece was (part of) a value
} s_hdr_state_t;

typedef enum {
    S_CALL_FREE,   //  on the free list
    S_CALL_QUEUED, //  in the queue, request in call->request
    S_CALL_LATER,  //  in the later list, error to deliver
    S_CALL_CONN,   //  carried by call->conn
    S_CALL_ENDING, //  its callback is running
} s_call_state_t;

typedef struct _s_conn_t s_conn_t;

//  Offsets of one response header in conn->hdrs while they may move.
typedef struct {
    size_t name_off;  //  name, NUL-terminated
    size_t value_off; //  value, NUL-terminated
} s_hoff_t;

struct _s_conn_t {
    keel_http_pool_t *pool;      //  owner
    int fd;                      //  socket; -1 when closed
    s_conn_state_t state;        //  which list it is in
    s_conn_t *prev;              //  previous in that list
    s_conn_t *next;              //  next in that list
    keel_http_call_t *call;      //  call carried; NULL when idle
    size_t addr_tries;           //  addresses tried for this connect
    size_t addr_index;           //  address being connected to
    int64_t idle_since_ms;       //  when it went idle
    bool reused;                 //  this call went over a kept-alive conn
    bool head;                   //  this call is a HEAD request
    bool got_bytes;              //  a response byte arrived for this call
    bool complete;               //  the (final) response is complete
    bool headers_done;           //  header pointers are fixed up
    bool body_owned;             //  body is in conn->body, not borrowed
    s_hdr_state_t hdr_state;     //  where the header pieces are
    keel_upstream_error_t error; //  set by a parser callback (OK: none)
    const char *error_detail;    //  its text
    size_t header_bytes;         //  header bytes counted (names, values and
                                 //  4 per line; trailers included)
    http_parser parser;          //  one per conn, re-initialised per call
    s_buf_t out;                 //  the request
    size_t out_sent;             //  bytes of out written
    s_buf_t hdrs;                //  header names and values, NUL-terminated
    s_hoff_t *offs;              //  header offsets, headers_cap of them
    keel_http_header_t *headers; //  header pointers, headers_cap of them
    size_t n_headers;            //  headers in use
    size_t headers_cap;          //  entries allocated in offs and headers
    s_buf_t body;                //  body when owned
    const char *body_ptr;        //  body: borrowed, or body.data
    size_t body_size;            //  body bytes so far
};

struct _keel_http_call_t {
    keel_http_pool_t *pool;            //  owner
    s_call_state_t state;              //  where it is
    keel_http_call_t *prev;            //  previous in queue or later
    keel_http_call_t *next;            //  next in queue, later or free list
    s_conn_t *conn;                    //  carrying it (state CONN)
    keel_evtimer_t timer;              //  deadline (or connect timeout, or
                                       //  "now" for a later error)
    int64_t deadline_ms;               //  the caller's deadline
    int64_t timer_ms;                  //  when the timer is due (while
                                       //  connecting: maybe sooner)
    keel_upstream_fn *fn;              //  callback
    void *arg;                         //  its argument
    bool retry_safe;                   //  may be sent twice
    bool resent;                       //  was sent again already
    bool head;                         //  a HEAD request
    keel_upstream_error_t later_error; //  state LATER: what to deliver
    const char *later_detail;          //  and its text
    s_buf_t request;                   //  state QUEUED: the formatted request
};

typedef struct {
    s_conn_t *head;
    s_conn_t *tail;
    size_t count;
} s_conn_list_t;

typedef struct {
    keel_http_call_t *head;
    keel_http_call_t *tail;
    size_t count;
} s_call_list_t;

struct _keel_http_pool_t {
    keel_evloop_t *loop;                        //  borrowed
    char *endpoint;                             //  as given
    keel_upstream_config_t config;              //  defaults applied
    struct sockaddr_storage addrs[S_MAX_ADDRS]; //  resolved at creation
    socklen_t addr_lens[S_MAX_ADDRS];           //  their lengths
    size_t n_addrs;                             //  >= 1
    size_t addr_good;                           //  index that last connected
    s_conn_list_t idle;                         //  idle conns, LIFO
    s_conn_list_t busy;                         //  conns carrying a call
    s_call_list_t queue;                        //  calls waiting, FIFO
    s_call_list_t later;                        //  calls with an error due
    keel_http_call_t *free_calls;               //  recycled call structs
    size_t free_count;                          //  how many
    size_t open;                                //  sockets open
    size_t active;                              //  calls not yet ended
    int depth;                                  //  callbacks running
    bool closing;                               //  close or destroy called
    bool destroyed;                             //  destroy called
    keel_evtimer_t idle_timer;                  //  sweeps expired idle conns
    char *rbuf;                                 //  read buffer, S_READ_SIZE
    keel_upstream_stats_t stats;                //  counters (open, idle and
                                                //  queued filled on demand)
};

// ---------------------------------------------------------------------------
//  Lists

static void
s_conn_list_push (s_conn_list_t *list, s_conn_t *conn)
{
    conn->prev = NULL;
    conn->next = list->head;
    if (list->head)
        list->head->prev = conn;
    else
        list->tail = conn;
    list->head = conn;
    list->count++;
}

static void
s_conn_list_remove (s_conn_list_t *list, s_conn_t *conn)
{
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        list->head = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    else
        list->tail = conn->prev;
    conn->prev = conn->next = NULL;
    list->count--;
}

static void
s_call_list_append (s_call_list_t *list, keel_http_call_t *call)
{
    call->next = NULL;
    call->prev = list->tail;
    if (list->tail)
        list->tail->next = call;
    else
        list->head = call;
    list->tail = call;
    list->count++;
}

static void
s_call_list_remove (s_call_list_t *list, keel_http_call_t *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        list->head = call->next;
    if (call->next)
        call->next->prev = call->prev;
    else
        list->tail = call->prev;
    call->prev = call->next = NULL;
    list->count--;
}

// ---------------------------------------------------------------------------
//  Endpoint

static bool
s_is_host_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

int
keel_upstream_endpoint_parse (const char *endpoint, char *host,
                              size_t host_size, int *port)
{
    if (!endpoint || !host || host_size == 0 || !port)
        return -1;
    if (strncasecmp (endpoint, "http://", 7) != 0)
        return -1;
    const char *p = endpoint + 7;
    const char *start, *end;
    if (*p == '[') {
        start = p + 1;
        end = strchr (start, ']');
        if (!end)
            return -1;
        char literal[INET6_ADDRSTRLEN];
        size_t len = (size_t)(end - start);
        if (len == 0 || len >= sizeof literal)
            return -1;
        memcpy (literal, start, len);
        literal[len] = '\0';
        struct in6_addr addr;
        if (inet_pton (AF_INET6, literal, &addr) != 1)
            return -1;
        p = end + 1;
    } else {
        start = p;
        while (s_is_host_char (*p))
            p++;
        end = p;
        if (end == start)
            return -1;
    }
    int value = 80;
    if (*p == ':') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        value = 0;
        while (*p >= '0' && *p <= '9') {
            value = value * 10 + (*p - '0');
            if (value > 65535)
                return -1;
            p++;
        }
        if (value == 0)
            return -1;
    }
    if (*p == '/')
        p++;
    if (*p)
        return -1;
    size_t len = (size_t)(end - start);
    if (len >= host_size)
        return -1;
    memcpy (host, start, len);
    host[len] = '\0';
    *port = value;
    return 0;
}

// ---------------------------------------------------------------------------
//  Request formatting

static bool
s_is_framing_header (const char *name)
{
    return strcasecmp (name, "Content-Length") == 0 ||
           strcasecmp (name, "Transfer-Encoding") == 0 ||
           strcasecmp (name, "Connection") == 0;
}

//  Format `request` into `out` (emptied first). Returns 0, or -1 if out of
//  memory. A header whose name or value holds CR or LF is not sent: it
//  would split the request.
static int
s_format (s_buf_t *out, const keel_upstream_request_t *request)
{
    out->size = 0;
    size_t method_len = strlen (request->method);
    size_t target_len = strlen (request->target);
    //  A guess that usually avoids growing twice.
    if (s_buf_reserve (out, method_len + target_len + 64 +
                                64 * request->n_headers + request->body_size))
        return -1;
    int rc = 0;
    rc |= s_buf_append (out, request->method, method_len);
    rc |= s_buf_append (out, " ", 1);
    rc |= s_buf_append (out, request->target, target_len);
    rc |= s_buf_append (out, " HTTP/1.1\r\n", 11);
    for (size_t i = 0; i < request->n_headers; i++) {
        const char *name = request->headers[i].name;
        const char *value = request->headers[i].value;
        size_t name_len = strcspn (name, "\r\n");
        size_t value_len = strcspn (value, "\r\n");
        if (name[name_len] || value[value_len] || name_len == 0 ||
            s_is_framing_header (name))
            continue;
        rc |= s_buf_append (out, name, name_len);
        rc |= s_buf_append (out, ": ", 2);
        rc |= s_buf_append (out, value, value_len);
        rc |= s_buf_append (out, "\r\n", 2);
    }
    const char *m = request->method;
    if (request->body_size > 0 || strcmp (m, "POST") == 0 ||
        strcmp (m, "PUT") == 0 || strcmp (m, "PATCH") == 0) {
        char digits[24];
        size_t at = sizeof digits;
        size_t size = request->body_size;
        do {
            digits[--at] = (char)('0' + size % 10);
            size /= 10;
        } while (size);
        rc |= s_buf_append (out, "Content-Length: ", 16);
        rc |= s_buf_append (out, digits + at, sizeof digits - at);
        rc |= s_buf_append (out, "\r\n", 2);
    }
    rc |= s_buf_append (out, "\r\n", 2);
    rc |= s_buf_append (out, request->body, request->body_size);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------------------
//  Response parsing (http-parser callbacks; parser->data is the conn)

static int
s_parse_fail (s_conn_t *conn, keel_upstream_error_t error, const char *detail)
{
    if (!conn->error) {
        conn->error = error;
        conn->error_detail = detail;
    }
    return -1;
}

static int
s_on_message_begin (http_parser *parser)
{
    s_conn_t *conn = (s_conn_t *)parser->data;
    conn->hdrs.size = 0;
    conn->n_headers = 0;
    conn->hdr_state = S_HDR_NONE;
    conn->headers_done = false;
    conn->header_bytes = 0;
    conn->body.size = 0;
    conn->body_ptr = NULL;
    conn->body_size = 0;
    conn->body_owned = false;
    return 0;
}

//  Count `length` header bytes against the limit.
static int
s_count_header_bytes (s_conn_t *conn, size_t length)
{
    size_t max = conn->pool->config.max_response_headers;
    if (length > max - conn->header_bytes)
        return s_parse_fail (conn, KEEL_UPSTREAM_TOO_LARGE,
                             "response headers too large");
    conn->header_bytes += length;
    return 0;
}

static int
s_hdrs_append (s_conn_t *conn, const char *data, size_t length)
{
    if (s_buf_append (&conn->hdrs, data, length))
        return s_parse_fail (conn, KEEL_UPSTREAM_NO_MEMORY, "out of memory");
    return 0;
}

//  Start a new header entry at the end of hdrs.
static int
s_header_new (s_conn_t *conn)
{
    if (conn->n_headers == conn->headers_cap) {
        size_t cap = conn->headers_cap ? 2 * conn->headers_cap : 16;
        s_hoff_t *offs = (s_hoff_t *)realloc (conn->offs, cap * sizeof *offs);
        if (!offs)
            return s_parse_fail (conn, KEEL_UPSTREAM_NO_MEMORY,
                                 "out of memory");
        conn->offs = offs;
        keel_http_header_t *headers = (keel_http_header_t *)realloc (
            conn->headers, cap * sizeof *headers);
        if (!headers)
            return s_parse_fail (conn, KEEL_UPSTREAM_NO_MEMORY,
                                 "out of memory");
        conn->headers = headers;
        conn->headers_cap = cap;
    }
    conn->offs[conn->n_headers].name_off = conn->hdrs.size;
    conn->offs[conn->n_headers].value_off = conn->hdrs.size;
    conn->n_headers++;
    return 0;
}

static int
s_on_header_field (http_parser *parser, const char *at, size_t length)
{
    s_conn_t *conn = (s_conn_t *)parser->data;
    if (conn->hdr_state != S_HDR_FIELD) {
        if (s_count_header_bytes (conn, 4))
            return -1;
        if (!conn->headers_done) {
            if (conn->hdr_state == S_HDR_VALUE && s_hdrs_append (conn, "", 1))
                return -1;
            if (s_header_new (conn))
                return -1;
        }
        conn->hdr_state = S_HDR_FIELD;
    }
    if (s_count_header_bytes (conn, length))
        return -1;
    //  Trailers (after the chunked body) are counted, not stored: the
    //  header pointers are already handed out.
    return conn->headers_done ? 0 : s_hdrs_append (conn, at, length);
}

static int
s_on_header_value (http_parser *parser, const char *at, size_t length)
{
    s_conn_t *conn = (s_conn_t *)parser->data;
    if (conn->hdr_state != S_HDR_VALUE) {
        if (!conn->headers_done) {
            if (conn->n_headers == 0)
                return s_parse_fail (conn, KEEL_UPSTREAM_BAD_RESPONSE,
                                     "header value without a name");
            if (s_hdrs_append (conn, "", 1))
                return -1;
            conn->offs[conn->n_headers - 1].value_off = conn->hdrs.size;
        }
        conn->hdr_state = S_HDR_VALUE;
    }
    if (s_count_header_bytes (conn, length))
        return -1;
    return conn->headers_done ? 0 : s_hdrs_append (conn, at, length);
}

static bool
s_no_body_status (int status)
{
    return status / 100 == 1 || status == 204 || status == 304;
}

static int
s_on_headers_complete (http_parser *parser)
{
    s_conn_t *conn = (s_conn_t *)parser->data;
    if (conn->hdr_state == S_HDR_FIELD) {
        //  A name without a value: give it an empty one.
        if (s_hdrs_append (conn, "", 1))
            return -1;
        conn->offs[conn->n_headers - 1].value_off = conn->hdrs.size;
    }
    if (conn->hdr_state != S_HDR_NONE && s_hdrs_append (conn, "", 1))
        return -1;
    //  hdrs stops growing here: point into it, trimming value ends.
    for (size_t i = 0; i < conn->n_headers; i++) {
        char *name = conn->hdrs.data + conn->offs[i].name_off;
        char *value = conn->hdrs.data + conn->offs[i].value_off;
        size_t len = strlen (value);
        while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
            value[--len] = '\0';
        conn->headers[i].name = name;
        conn->headers[i].value = value;
    }
    conn->headers_done = true;
    conn->hdr_state = S_HDR_NONE;
    if (conn->head || s_no_body_status ((int)parser->status_code))
        return 1; //  no body, whatever Content-Length says
    if (parser->content_length != UINT64_MAX &&
        parser->content_length > conn->pool->config.max_response_body)
        return s_parse_fail (conn, KEEL_UPSTREAM_TOO_LARGE,
                             "response body too large");
    return 0;
}

static int
s_on_body (http_parser *parser, const char *at, size_t length)
{
    s_conn_t *conn = (s_conn_t *)parser->data;
    if (length > conn->pool->config.max_response_body - conn->body_size)
        return s_parse_fail (conn, KEEL_UPSTREAM_TOO_LARGE,
                             "response body too large");
    if (conn->body_size == 0 && !conn->body_owned) {
        //  Borrow from the read buffer; copied if the response is not
        //  complete by the end of this read.
        conn->body_ptr = at;
        conn->body_size = length;
        return 0;
    }
    if (!conn->body_owned) {
        conn->body.size = 0;
        if (s_buf_append (&conn->body, conn->body_ptr, conn->body_size))
            return s_parse_fail (conn, KEEL_UPSTREAM_NO_MEMORY,
                                 "out of memory");
        conn->body_owned = true;
    }
    if (s_buf_append (&conn->body, at, length))
        return s_parse_fail (conn, KEEL_UPSTREAM_NO_MEMORY, "out of memory");
    conn->body_ptr = conn->body.data;
    conn->body_size = conn->body.size;
    return 0;
}

static int
s_on_message_complete (http_parser *parser)
{
    s_conn_t *conn = (s_conn_t *)parser->data;
    int status = (int)parser->status_code;
    if (status / 100 == 1 && status != 101)
        return 0; //  interim (100 Continue, 103 Early Hints): read on
    conn->complete = true;
    //  Stop at the end of this response: bytes after it are not ours.
    http_parser_pause (parser, 1);
    return 0;
}

static const http_parser_settings s_settings = {
    .on_message_begin = s_on_message_begin,
    .on_header_field = s_on_header_field,
    .on_header_value = s_on_header_value,
    .on_headers_complete = s_on_headers_complete,
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

// ---------------------------------------------------------------------------
//  Connections and calls: lifecycle

static void s_conn_on_event (keel_evloop_t *loop, int fd, uint32_t events,
                             void *arg);
static void s_call_on_timer (keel_evloop_t *loop, keel_evtimer_t *timer,
                             void *arg);
static void s_conn_start_new (s_conn_t *conn, keel_http_call_t *call, bool now);
static void s_conn_reuse (s_conn_t *conn, keel_http_call_t *call, bool now);

static s_conn_t *
s_conn_new (keel_http_pool_t *pool)
{
    s_conn_t *conn = (s_conn_t *)calloc (1, sizeof (*conn));
    if (!conn)
        return NULL;
    conn->pool = pool;
    conn->fd = -1;
    conn->state = S_CONN_LOOSE;
    return conn;
}

static void
s_conn_free (s_conn_t *conn)
{
    s_buf_free (&conn->out);
    s_buf_free (&conn->hdrs);
    s_buf_free (&conn->body);
    free (conn->offs);
    free (conn->headers);
    free (conn);
}

static void
s_conn_close_fd (s_conn_t *conn)
{
    if (conn->fd == -1)
        return;
    keel_evloop_del (conn->pool->loop, conn->fd);
    close (conn->fd);
    conn->fd = -1;
    conn->pool->open--;
}

//  Take `conn` out of its list, close its socket and free it. It carries
//  no call. (A pinned conn is in no list, so nothing else closes it.)
static void
s_conn_close (s_conn_t *conn)
{
    keel_http_pool_t *pool = conn->pool;
    assert (!conn->call && conn->state != S_CONN_PINNED);
    if (conn->state == S_CONN_IDLE)
        s_conn_list_remove (&pool->idle, conn);
    else if (conn->state == S_CONN_CONNECTING || conn->state == S_CONN_BUSY)
        s_conn_list_remove (&pool->busy, conn);
    s_conn_close_fd (conn);
    s_conn_free (conn);
}

//  Separate a conn and its call (the call's state is the caller's to set).
static void
s_conn_detach (s_conn_t *conn)
{
    conn->call->conn = NULL;
    conn->call = NULL;
}

//  Bind `call` to `conn` (not in a list) for a new attempt.
static void
s_conn_attach (s_conn_t *conn, keel_http_call_t *call, s_conn_state_t state)
{
    keel_http_pool_t *pool = conn->pool;
    conn->call = call;
    call->conn = conn;
    call->state = S_CALL_CONN;
    conn->state = state;
    s_conn_list_push (&pool->busy, conn);
    conn->head = call->head;
    conn->out_sent = 0;
    conn->got_bytes = false;
    conn->complete = false;
    conn->error = KEEL_UPSTREAM_OK;
    conn->error_detail = NULL;
    http_parser_init (&conn->parser, HTTP_RESPONSE);
    conn->parser.data = conn;
    s_on_message_begin (&conn->parser);
}

static keel_http_call_t *
s_call_new (keel_http_pool_t *pool)
{
    keel_http_call_t *call = pool->free_calls;
    if (call) {
        pool->free_calls = call->next;
        pool->free_count--;
        s_buf_t request = call->request;
        memset (call, 0, sizeof (*call));
        call->request = request;
    } else {
        call = (keel_http_call_t *)calloc (1, sizeof (*call));
        if (!call)
            return NULL;
    }
    call->pool = pool;
    keel_evtimer_init (&call->timer);
    return call;
}

static void
s_call_recycle (keel_http_pool_t *pool, keel_http_call_t *call)
{
    assert (!keel_evtimer_active (&call->timer));
    call->state = S_CALL_FREE;
    s_buf_trim (&call->request);
    if (pool->free_count < S_FREE_CALLS) {
        call->next = pool->free_calls;
        pool->free_calls = call;
        pool->free_count++;
    } else {
        s_buf_free (&call->request);
        free (call);
    }
}

//  Free the pool if it is finished: destroyed, or closed with no call left,
//  and no callback running. Returns true if it was freed.
static bool
s_pool_maybe_free (keel_http_pool_t *pool)
{
    if (pool->depth > 0 || !pool->closing)
        return false;
    if (!pool->destroyed && pool->active > 0)
        return false;
    //  Every call has ended: no conn is busy, no call waits.
    assert (pool->active == 0 && !pool->busy.head);
    assert (!pool->queue.head && !pool->later.head);
    while (pool->idle.head)
        s_conn_close (pool->idle.head);
    keel_evloop_timer_stop (pool->loop, &pool->idle_timer);
    while (pool->free_calls) {
        keel_http_call_t *call = pool->free_calls;
        pool->free_calls = call->next;
        s_buf_free (&call->request);
        free (call);
    }
    free (pool->rbuf);
    free (pool->endpoint);
    free (pool);
    return true;
}

//  End `call`: counters, then its callback. The call is in no list and
//  has no conn. The pool stays allocated until the caller's
//  s_pool_maybe_free.
static void
s_call_end (keel_http_call_t *call, const keel_upstream_response_t *response)
{
    keel_http_pool_t *pool = call->pool;
    keel_evloop_timer_stop (pool->loop, &call->timer);
    pool->active--;
    if (response->error == KEEL_UPSTREAM_OK)
        pool->stats.ok++;
    else {
        pool->stats.failed++;
        if (response->error == KEEL_UPSTREAM_TIMEOUT)
            pool->stats.timeouts++;
    }
    call->state = S_CALL_ENDING;
    pool->depth++;
    call->fn (call, response, call->arg);
    pool->depth--;
    s_call_recycle (pool, call);
}

//  End `call` with an error: now (from an event), or on the next loop turn
//  (`now` false: while starting it, where no callback may run). The call is
//  in no list and has no conn. After a `now`, the pool may be gone.
static void
s_call_fail (keel_http_call_t *call, keel_upstream_error_t error,
             const char *detail, bool now)
{
    keel_http_pool_t *pool = call->pool;
    if (!now) {
        call->state = S_CALL_LATER;
        call->later_error = error;
        call->later_detail = detail;
        s_call_list_append (&pool->later, call);
        keel_evloop_timer_start (pool->loop, &call->timer, 0, s_call_on_timer,
                                 call);
        return;
    }
    keel_upstream_response_t response = {.error = error, .detail = detail};
    s_call_end (call, &response);
    s_pool_maybe_free (pool);
}

//  Give waiting calls the idle connections, and new ones up to the limit.
//  Runs no callback.
static void
s_pool_dispatch (keel_http_pool_t *pool)
{
    while (pool->queue.head) {
        s_conn_t *conn = pool->idle.head;
        if (conn)
            s_conn_list_remove (&pool->idle, conn);
        else if (pool->open < pool->config.max_connections) {
            conn = s_conn_new (pool);
            if (!conn)
                return; //  the deadline will end them
        } else
            return;
        keel_http_call_t *call = pool->queue.head;
        s_call_list_remove (&pool->queue, call);
        s_buf_swap (&conn->out, &call->request);
        if (conn->state == S_CONN_IDLE)
            s_conn_reuse (conn, call, false);
        else
            s_conn_start_new (conn, call, false);
    }
}

//  End `conn`'s call with an error: close the conn, hand its slot on, then
//  the callback (see s_call_fail for `now`).
static void
s_conn_fail (s_conn_t *conn, keel_upstream_error_t error, const char *detail,
             bool now)
{
    keel_http_pool_t *pool = conn->pool;
    keel_http_call_t *call = conn->call;
    s_conn_detach (conn);
    s_conn_close (conn);
    s_pool_dispatch (pool);
    s_call_fail (call, error, detail, now);
}

// ---------------------------------------------------------------------------
//  Connections: I/O

//  Write what is left of the request. Returns 1 when all is written, 0 when
//  the socket is full, -1 on error.
static int
s_conn_flush (s_conn_t *conn)
{
    while (conn->out_sent < conn->out.size) {
        ssize_t n = send (conn->fd, conn->out.data + conn->out_sent,
                          conn->out.size - conn->out_sent, MSG_NOSIGNAL);
        if (n > 0)
            conn->out_sent += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    return 1;
}

static void
s_conn_watch (s_conn_t *conn, uint32_t events)
{
    //  Fails only for an fd not watched: cannot happen here.
    keel_evloop_mod (conn->pool->loop, conn->fd, events);
}

//  The connection broke (EOF, reset, write error) before the response was
//  complete. If no response byte came over a reused connection, the
//  upstream closed it while it was idle: send the call once more on a new
//  connection when it is retry-safe.
static void
s_conn_lost (s_conn_t *conn, const char *detail, bool now)
{
    keel_http_pool_t *pool = conn->pool;
    keel_http_call_t *call = conn->call;
    if (conn->got_bytes || !conn->reused || !call->retry_safe || call->resent) {
        s_conn_fail (conn, KEEL_UPSTREAM_RESET, detail, now);
        return;
    }
    s_conn_t *fresh = s_conn_new (pool);
    if (!fresh) {
        s_conn_fail (conn, KEEL_UPSTREAM_NO_MEMORY, "out of memory", now);
        return;
    }
    s_buf_swap (&fresh->out, &conn->out);
    s_conn_detach (conn);
    s_conn_close (conn);
    call->resent = true;
    pool->stats.resent++;
    s_conn_start_new (fresh, call, now);
}

//  Send the request of a call just attached to a connected conn.
static void
s_conn_send_first (s_conn_t *conn, bool now)
{
    int rc = s_conn_flush (conn);
    if (rc < 0)
        s_conn_lost (conn, "write failed", now);
    else
        s_conn_watch (conn, rc ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

//  Send `call` (its request in conn->out) over the idle `conn` (in no
//  list now). The call's deadline timer is running.
static void
s_conn_reuse (s_conn_t *conn, keel_http_call_t *call, bool now)
{
    s_conn_attach (conn, call, S_CONN_BUSY);
    conn->reused = true;
    conn->pool->stats.reused++;
    s_conn_send_first (conn, now);
}

//  Open a socket to the address after the ones tried and start
//  connecting. Returns 0 (connecting: EPOLLOUT will tell), or -1 when no
//  address is left to try.
static int
s_conn_dial (s_conn_t *conn)
{
    keel_http_pool_t *pool = conn->pool;
    while (conn->addr_tries < pool->n_addrs) {
        size_t index = (pool->addr_good + conn->addr_tries) % pool->n_addrs;
        conn->addr_tries++;
        conn->addr_index = index;
        const struct sockaddr *addr =
            (const struct sockaddr *)&pool->addrs[index];
        int fd = socket (addr->sa_family,
                         SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1)
            continue;
        int one = 1;
        setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pool->stats.connects++;
        pool->open++;
        conn->fd = fd;
        //  Even an immediate success is reported through EPOLLOUT, which
        //  keeps one path (and is rare for TCP).
        if ((connect (fd, addr, pool->addr_lens[index]) == 0 ||
             errno == EINPROGRESS) &&
            keel_evloop_add (pool->loop, fd, EPOLLOUT, s_conn_on_event, conn) ==
                0)
            return 0;
        s_conn_close_fd (conn);
    }
    return -1;
}

//  Start `call` (its request in conn->out) on the new `conn`.
static void
s_conn_start_new (s_conn_t *conn, keel_http_call_t *call, bool now)
{
    keel_http_pool_t *pool = conn->pool;
    s_conn_attach (conn, call, S_CONN_CONNECTING);
    conn->reused = false;
    int64_t connect_by = keel_now_ms () + pool->config.connect_timeout_ms;
    call->timer_ms =
        connect_by < call->deadline_ms ? connect_by : call->deadline_ms;
    keel_evloop_timer_start (pool->loop, &call->timer, call->timer_ms,
                             s_call_on_timer, call);
    conn->addr_tries = 0;
    if (s_conn_dial (conn))
        s_conn_fail (conn, KEEL_UPSTREAM_CONNECT, "connect failed", now);
}

static void
s_conn_on_connect (s_conn_t *conn, uint32_t events)
{
    keel_http_pool_t *pool = conn->pool;
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt (conn->fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
        error = errno;
    if (!error && !(events & EPOLLOUT))
        error = ECONNRESET;
    if (error) {
        s_conn_close_fd (conn);
        if (s_conn_dial (conn) == 0)
            return; //  trying the next address
        s_conn_fail (conn, KEEL_UPSTREAM_CONNECT,
                     error == ECONNREFUSED ? "connection refused"
                                           : "connect failed",
                     true);
        return;
    }
    pool->addr_good = conn->addr_index;
    conn->state = S_CONN_BUSY;
    keel_http_call_t *call = conn->call;
    if (call->timer_ms != call->deadline_ms) {
        call->timer_ms = call->deadline_ms;
        keel_evloop_timer_start (pool->loop, &call->timer, call->deadline_ms,
                                 s_call_on_timer, call);
    }
    s_conn_send_first (conn, true);
}

//  Sweep idle connections past their idle timeout (oldest at the tail).
static void
s_pool_on_idle_timer (keel_evloop_t *loop, keel_evtimer_t *timer, void *arg)
{
    keel_http_pool_t *pool = (keel_http_pool_t *)arg;
    int64_t now = keel_now_ms ();
    int64_t timeout = pool->config.idle_timeout_ms;
    while (pool->idle.tail && pool->idle.tail->idle_since_ms + timeout <= now)
        s_conn_close (pool->idle.tail);
    if (pool->idle.tail)
        keel_evloop_timer_start (loop, timer,
                                 pool->idle.tail->idle_since_ms + timeout,
                                 s_pool_on_idle_timer, pool);
}

//  A kept-alive `conn` (in no list, no call) is free again: give it to the
//  first waiting call, or keep it idle, or close it.
static void
s_conn_release (s_conn_t *conn)
{
    keel_http_pool_t *pool = conn->pool;
    if (pool->queue.head) {
        keel_http_call_t *call = pool->queue.head;
        s_call_list_remove (&pool->queue, call);
        s_buf_swap (&conn->out, &call->request);
        s_conn_reuse (conn, call, false);
        return;
    }
    conn->state = S_CONN_LOOSE;
    if (pool->closing) {
        s_conn_close (conn);
        return;
    }
    if (pool->idle.count >= pool->config.max_idle)
        s_conn_close (pool->idle.tail);
    conn->state = S_CONN_IDLE;
    conn->idle_since_ms = keel_now_ms ();
    s_conn_list_push (&pool->idle, conn);
    if (!keel_evtimer_active (&pool->idle_timer))
        keel_evloop_timer_start (pool->loop, &pool->idle_timer,
                                 conn->idle_since_ms +
                                     pool->config.idle_timeout_ms,
                                 s_pool_on_idle_timer, pool);
}

//  The response on `conn` is complete: hand it to the callback, then keep
//  the connection alive (`clean`: nothing after the response, no EOF)
//  when HTTP allows it.
static void
s_conn_deliver (s_conn_t *conn, bool clean)
{
    keel_http_pool_t *pool = conn->pool;
    keel_http_call_t *call = conn->call;
    bool keep = clean && !conn->parser.upgrade &&
                http_should_keep_alive (&conn->parser) &&
                conn->out_sent == conn->out.size;
    keel_upstream_response_t response = {
        .error = KEEL_UPSTREAM_OK,
        .status = (int)conn->parser.status_code,
        .headers = conn->n_headers ? conn->headers : NULL,
        .n_headers = conn->n_headers,
        .body = conn->body_size ? conn->body_ptr : NULL,
        .body_size = conn->body_size,
        .reused = conn->reused,
    };
    s_conn_detach (conn);
    s_conn_list_remove (&pool->busy, conn);
    conn->state = S_CONN_PINNED;
    pool->depth++;
    s_call_end (call, &response);
    conn->body_ptr = NULL;
    conn->body_size = 0;
    s_buf_trim (&conn->out);
    s_buf_trim (&conn->hdrs);
    s_buf_trim (&conn->body);
    if (keep && !pool->destroyed)
        s_conn_release (conn);
    else {
        conn->state = S_CONN_LOOSE;
        s_conn_close (conn);
        s_pool_dispatch (pool);
    }
    pool->depth--;
    s_pool_maybe_free (pool);
}

//  A parse failed: the parser callbacks' error, or http-parser's.
static void
s_conn_parse_failed (s_conn_t *conn)
{
    if (conn->error) {
        s_conn_fail (conn, conn->error, conn->error_detail, true);
        return;
    }
    enum http_errno error = HTTP_PARSER_ERRNO (&conn->parser);
    if (error == HPE_HEADER_OVERFLOW)
        s_conn_fail (conn, KEEL_UPSTREAM_TOO_LARGE,
                     "response headers too large", true);
    else
        s_conn_fail (conn, KEEL_UPSTREAM_BAD_RESPONSE,
                     http_errno_description (error), true);
}

static void
s_conn_on_eof (s_conn_t *conn)
{
    if (!conn->got_bytes) {
        s_conn_lost (conn, "closed before the response", true);
        return;
    }
    //  A response without Content-Length ends here.
    http_parser_execute (&conn->parser, &s_settings, NULL, 0);
    if (conn->complete)
        s_conn_deliver (conn, false);
    else if (conn->error)
        s_conn_parse_failed (conn);
    else
        s_conn_fail (conn, KEEL_UPSTREAM_RESET,
                     "closed before the response was complete", true);
}

static void
s_conn_on_read (s_conn_t *conn)
{
    keel_http_pool_t *pool = conn->pool;
    ssize_t n = read (conn->fd, pool->rbuf, S_READ_SIZE);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        s_conn_lost (conn, "connection reset", true);
        return;
    }
    if (n == 0) {
        s_conn_on_eof (conn);
        return;
    }
    conn->got_bytes = true;
    size_t parsed =
        http_parser_execute (&conn->parser, &s_settings, pool->rbuf, (size_t)n);
    if (conn->complete && !conn->error) {
        s_conn_deliver (conn, parsed == (size_t)n);
        return;
    }
    if (conn->error || HTTP_PARSER_ERRNO (&conn->parser) != HPE_OK ||
        parsed != (size_t)n) {
        s_conn_parse_failed (conn);
        return;
    }
    if (conn->body_size && !conn->body_owned) {
        //  The read buffer is reused by the next read: keep the body.
        conn->body.size = 0;
        if (s_buf_append (&conn->body, conn->body_ptr, conn->body_size)) {
            s_conn_fail (conn, KEEL_UPSTREAM_NO_MEMORY, "out of memory", true);
            return;
        }
        conn->body_owned = true;
        conn->body_ptr = conn->body.data;
    }
}

//  An idle conn is readable: the upstream closed it (or sent bytes nobody
//  asked for). Either way it is done.
static void
s_conn_on_idle_event (s_conn_t *conn)
{
    ssize_t n = read (conn->fd, conn->pool->rbuf, S_READ_SIZE);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    s_conn_close (conn);
}

static void
s_conn_on_event (keel_evloop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)fd;
    s_conn_t *conn = (s_conn_t *)arg;
    switch (conn->state) {
    case S_CONN_CONNECTING:
        s_conn_on_connect (conn, events);
        return;
    case S_CONN_IDLE:
        s_conn_on_idle_event (conn);
        return;
    case S_CONN_BUSY:
        if (conn->out_sent < conn->out.size &&
            (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            int rc = s_conn_flush (conn);
            if (rc < 0) {
                s_conn_lost (conn, "write failed", true);
                return;
            }
            if (rc == 1)
                s_conn_watch (conn, EPOLLIN);
        }
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            s_conn_on_read (conn);
        return;
    default:
        return;
    }
}

//  A call's timer: its deadline (or connect timeout), or an error to
//  deliver now that it can be.
static void
s_call_on_timer (keel_evloop_t *loop, keel_evtimer_t *timer, void *arg)
{
    (void)loop;
    (void)timer;
    keel_http_call_t *call = (keel_http_call_t *)arg;
    keel_http_pool_t *pool = call->pool;
    switch (call->state) {
    case S_CALL_LATER:
        s_call_list_remove (&pool->later, call);
        s_call_fail (call, call->later_error, call->later_detail, true);
        return;
    case S_CALL_QUEUED:
        s_call_list_remove (&pool->queue, call);
        s_call_fail (call, KEEL_UPSTREAM_TIMEOUT,
                     "no connection free before the deadline", true);
        return;
    case S_CALL_CONN: {
        s_conn_t *conn = call->conn;
        const char *detail = "no response before the deadline";
        if (conn->state == S_CONN_CONNECTING)
            detail = keel_now_ms () < call->deadline_ms
                         ? "connect timeout"
                         : "not connected before the deadline";
        s_conn_fail (conn, KEEL_UPSTREAM_TIMEOUT, detail, true);
        return;
    }
    default:
        return;
    }
}

// ---------------------------------------------------------------------------
//  Public API

keel_http_pool_t *
keel_http_pool_new (keel_evloop_t *loop, const char *endpoint,
                    const keel_upstream_config_t *config)
{
    assert (loop);
    char host[256];
    int port;
    if (keel_upstream_endpoint_parse (endpoint, host, sizeof host, &port))
        return NULL;
    char service[8];
    snprintf (service, sizeof service, "%d", port);
    struct addrinfo hints;
    memset (&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *found = NULL;
    if (getaddrinfo (host, service, &hints, &found) != 0)
        return NULL;
    keel_http_pool_t *self = (keel_http_pool_t *)calloc (1, sizeof (*self));
    if (!self) {
        freeaddrinfo (found);
        return NULL;
    }
    for (struct addrinfo *ai = found; ai && self->n_addrs < S_MAX_ADDRS;
         ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof (struct sockaddr_storage))
            continue;
        memcpy (&self->addrs[self->n_addrs], ai->ai_addr, ai->ai_addrlen);
        self->addr_lens[self->n_addrs++] = ai->ai_addrlen;
    }
    freeaddrinfo (found);
    self->loop = loop;
    self->endpoint = strdup (endpoint);
    self->rbuf = (char *)malloc (S_READ_SIZE);
    if (self->n_addrs == 0 || !self->endpoint || !self->rbuf) {
        free (self->endpoint);
        free (self->rbuf);
        free (self);
        return NULL;
    }
    if (config)
        self->config = *config;
    keel_upstream_config_t *c = &self->config;
    if (!c->max_connections)
        c->max_connections = S_DEFAULT_MAX_CONNECTIONS;
    if (!c->max_idle)
        c->max_idle = S_DEFAULT_MAX_IDLE;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = S_DEFAULT_IDLE_TIMEOUT_MS;
    if (!c->connect_timeout_ms)
        c->connect_timeout_ms = S_DEFAULT_CONNECT_TIMEOUT_MS;
    if (!c->max_queue)
        c->max_queue = S_DEFAULT_MAX_QUEUE;
    if (!c->max_response_headers)
        c->max_response_headers = S_DEFAULT_MAX_RESPONSE_HEADERS;
    if (!c->max_response_body)
        c->max_response_body = S_DEFAULT_MAX_RESPONSE_BODY;
    keel_evtimer_init (&self->idle_timer);
    return self;
}

void
keel_http_pool_close (keel_http_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keel_http_pool_t *self = *self_p;
    *self_p = NULL;
    if (self->closing)
        return;
    self->closing = true;
    while (self->idle.head)
        s_conn_close (self->idle.head);
    s_pool_maybe_free (self);
}

void
keel_http_pool_destroy (keel_http_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keel_http_pool_t *self = *self_p;
    *self_p = NULL;
    if (self->destroyed)
        return;
    self->closing = true;
    self->destroyed = true;
    keel_upstream_response_t response = {.error = KEEL_UPSTREAM_CLOSED,
                                         .detail = "pool destroyed"};
    self->depth++;
    //  Callbacks may cancel other calls: take the first one left each time.
    for (;;) {
        keel_http_call_t *call = self->queue.head;
        if (call)
            s_call_list_remove (&self->queue, call);
        else if ((call = self->later.head))
            s_call_list_remove (&self->later, call);
        else if (self->busy.head) {
            s_conn_t *conn = self->busy.head;
            call = conn->call;
            s_conn_detach (conn);
            s_conn_close (conn);
        } else
            break;
        s_call_end (call, &response);
    }
    while (self->idle.head)
        s_conn_close (self->idle.head);
    self->depth--;
    s_pool_maybe_free (self);
}

keel_http_call_t *
keel_http_pool_call (keel_http_pool_t *self,
                     const keel_upstream_request_t *request,
                     keel_upstream_fn *fn, void *arg)
{
    assert (self);
    assert (request && request->method && request->target && fn);
    assert (request->n_headers == 0 || request->headers);
    assert (request->body_size == 0 || request->body);
    if (self->closing)
        return NULL;
    s_conn_t *conn = self->idle.head;
    bool queue = !conn && self->open >= self->config.max_connections;
    if (queue && self->queue.count >= self->config.max_queue)
        return NULL;
    keel_http_call_t *call = s_call_new (self);
    if (!call)
        return NULL;
    call->deadline_ms = request->deadline_ms;
    call->fn = fn;
    call->arg = arg;
    call->retry_safe = request->retry_safe;
    call->head = strcmp (request->method, "HEAD") == 0;
    if (queue) {
        if (s_format (&call->request, request)) {
            s_call_recycle (self, call);
            return NULL;
        }
        call->state = S_CALL_QUEUED;
        s_call_list_append (&self->queue, call);
        keel_evloop_timer_start (self->loop, &call->timer, call->deadline_ms,
                                 s_call_on_timer, call);
    } else if (conn) {
        if (s_format (&conn->out, request)) {
            s_call_recycle (self, call);
            return NULL;
        }
        s_conn_list_remove (&self->idle, conn);
        keel_evloop_timer_start (self->loop, &call->timer, call->deadline_ms,
                                 s_call_on_timer, call);
        self->active++;
        self->stats.calls++;
        s_conn_reuse (conn, call, false);
        return call;
    } else {
        conn = s_conn_new (self);
        if (!conn || s_format (&conn->out, request)) {
            if (conn)
                s_conn_free (conn);
            s_call_recycle (self, call);
            return NULL;
        }
        self->active++;
        self->stats.calls++;
        s_conn_start_new (conn, call, false);
        return call;
    }
    self->active++;
    self->stats.calls++;
    return call;
}

void
keel_http_call_cancel (keel_http_call_t *call)
{
    if (!call)
        return;
    keel_http_pool_t *pool = call->pool;
    switch (call->state) {
    case S_CALL_QUEUED:
        s_call_list_remove (&pool->queue, call);
        break;
    case S_CALL_LATER:
        s_call_list_remove (&pool->later, call);
        break;
    case S_CALL_CONN: {
        //  Whatever was sent, the response would be read by nobody.
        s_conn_t *conn = call->conn;
        s_conn_detach (conn);
        s_conn_close (conn);
        s_pool_dispatch (pool);
        break;
    }
    default:
        return; //  ending (its callback is running) or already free
    }
    keel_evloop_timer_stop (pool->loop, &call->timer);
    pool->active--;
    s_call_recycle (pool, call);
    s_pool_maybe_free (pool);
}

const char *
keel_http_pool_endpoint (keel_http_pool_t *self)
{
    assert (self);
    return self->endpoint;
}

keel_upstream_stats_t
keel_http_pool_stats (keel_http_pool_t *self)
{
    assert (self);
    keel_upstream_stats_t stats = self->stats;
    stats.open = self->open;
    stats.idle = self->idle.count;
    stats.queued = self->queue.count;
    return stats;
}

const char *
keel_upstream_error_str (keel_upstream_error_t error)
{
    switch (error) {
    case KEEL_UPSTREAM_OK:
        return "ok";
    case KEEL_UPSTREAM_CONNECT:
        return "connect";
    case KEEL_UPSTREAM_RESET:
        return "reset";
    case KEEL_UPSTREAM_TIMEOUT:
        return "timeout";
    case KEEL_UPSTREAM_BAD_RESPONSE:
        return "bad-response";
    case KEEL_UPSTREAM_TOO_LARGE:
        return "too-large";
    case KEEL_UPSTREAM_CLOSED:
        return "closed";
    case KEEL_UPSTREAM_NO_MEMORY:
        return "no-memory";
    }
    return "unknown";
}
