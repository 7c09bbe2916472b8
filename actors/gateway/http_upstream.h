/*  http_upstream.h - the gateway's HTTP client side: one connection pool
    per upstream instance (an http://HOST:PORT endpoint), on a keel_evloop.
    Calls go out over idle keep-alive connections when there are some, over
    new connections otherwise (non-blocking connect), and wait in a FIFO
    queue when the pool is at max_connections. Responses are read with
    libhttp-parser (Content-Length, chunked, or until close; none for HEAD,
    1xx, 204, 304) into one buffer, bounded by the limits, and handed to the
    caller whole.

        call --> idle conn? --yes--> write request --> read response --> fn
                    | no                                                 |
                    v                                     keep-alive? -> idle
                 open < max? --yes--> connect --> write ...
                    | no
                    v
                 queue (until a conn frees up or the deadline)

    A connection that was idle and fails before the first response byte
    (the upstream closed it meanwhile) is not the call's fault: the call is
    sent again once on a new connection when it is `retry_safe`.

    Thread: a pool belongs to the thread that runs its evloop.
*/
#ifndef KEEL_HTTP_UPSTREAM_H_INCLUDED
#define KEEL_HTTP_UPSTREAM_H_INCLUDED

#include "evloop.h"
#include "http_server.h" //  keel_http_header_t

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  How a call ended.
typedef enum {
    KEEL_UPSTREAM_OK = 0,        //  a response arrived (any status)
    KEEL_UPSTREAM_CONNECT,       //  connect failed or refused     -> 502
    KEEL_UPSTREAM_RESET,         //  closed or reset before the response
                                 //  was complete                  -> 502
    KEEL_UPSTREAM_TIMEOUT,       //  deadline passed (queued, connecting,
                                 //  writing or reading)           -> 504
    KEEL_UPSTREAM_BAD_RESPONSE,  //  not HTTP, or broken framing   -> 502
    KEEL_UPSTREAM_TOO_LARGE,     //  response over the limits      -> 502
    KEEL_UPSTREAM_CLOSED,        //  the pool was closed           -> 502
    KEEL_UPSTREAM_NO_MEMORY,     //                                -> 500
} keel_upstream_error_t;

//  Settings. A zero field takes the default shown.
typedef struct {
    size_t max_connections;      //  open at once (default 64)
    size_t max_idle;             //  idle kept (default 32)
    int64_t idle_timeout_ms;     //  idle conn closed after (default 30000)
    int64_t connect_timeout_ms;  //  (default 2000; the call's deadline
                                 //  still applies if earlier)
    size_t max_queue;            //  calls waiting (default 1024; beyond:
                                 //  the call fails at once, CLOSED)
    size_t max_response_headers; //  header bytes (default 65536)
    size_t max_response_body;    //  body bytes (default 8 MiB)
} keel_upstream_config_t;

//  One request to send. Borrowed for the keel_http_pool_call only (the
//  pool formats it into its own buffer at once).
typedef struct {
    const char *method;               //  "GET"
    const char *target;               //  "/path?query", as sent
    const keel_http_header_t *headers; //  sent as given, in order: the
    size_t n_headers;                 //  caller removed hop-by-hop ones and
                                      //  set Host, X-Forwarded-For...; any
                                      //  Content-Length, Transfer-Encoding
                                      //  or Connection given is skipped
    const void *body;                 //  Content-Length is written when
    size_t body_size;                 //  body_size > 0 or the method is
                                      //  POST, PUT or PATCH
    int64_t deadline_ms;              //  keel_now_ms clock; required
    bool retry_safe;                  //  may be sent twice (see above)
} keel_upstream_request_t;

//  What came back. Borrowed for the callback only.
typedef struct {
    keel_upstream_error_t error;  //  OK: the fields below are set
    const char *detail;           //  error: a short static text
    int status;                   //  100..599
    const keel_http_header_t *headers; //  as received, in order,
    size_t n_headers;             //  NUL-terminated names and values
                                  //  (hop-by-hop ones included: the caller
                                  //  strips them)
    const void *body;             //  de-chunked; NULL when body_size is 0
    size_t body_size;
    bool reused;                  //  went over a kept-alive connection
} keel_upstream_response_t;

typedef struct _keel_http_pool_t keel_http_pool_t;
typedef struct _keel_http_call_t keel_http_call_t;

//  A call ended (exactly once per call, unless it was cancelled). The call
//  handle is invalid once this returns. The callback may start new calls
//  (on this pool or others) and may close this pool.
typedef void (keel_upstream_fn) (keel_http_call_t *call,
                                 const keel_upstream_response_t *response,
                                 void *arg);

//  Counters of one pool.
typedef struct {
    uint64_t calls;        //  calls started
    uint64_t ok;           //  ended with a response
    uint64_t failed;       //  ended with an error (any kind)
    uint64_t timeouts;     //  of which TIMEOUT
    uint64_t connects;     //  connections opened
    uint64_t reused;       //  calls sent over an idle connection
    uint64_t resent;       //  calls sent again after a stale connection
    uint64_t open;         //  connections open now
    uint64_t idle;         //  of which idle now
    uint64_t queued;       //  calls waiting now
} keel_upstream_stats_t;

//  Parse an endpoint "http://HOST:PORT" (HOST a name or an IPv4/IPv6
//  literal in brackets; PORT 1..65535, default 80; a trailing "/" allowed,
//  no other path). Returns 0, or -1 if it is not one.
int keel_upstream_endpoint_parse (const char *endpoint, char *host,
                                  size_t host_size, int *port);

//  Create a pool for `endpoint` on `loop` (borrowed; it must outlive the
//  pool). The host is resolved now (getaddrinfo, numeric or /etc/hosts:
//  called when a registry event arrives, not per request). `config` may
//  be NULL (defaults); copied. Returns NULL on a bad endpoint, a name that
//  does not resolve, or out of memory. Caller owns it: close it with
//  keel_http_pool_close.
keel_http_pool_t *keel_http_pool_new (keel_evloop_t *loop,
                                      const char *endpoint,
                                      const keel_upstream_config_t *config);

//  Close the pool: no new calls; calls in flight finish normally (their
//  callbacks run), then the pool frees itself. Idle connections close now.
//  Nulls *self_p. Accepts NULL.
void keel_http_pool_close (keel_http_pool_t **self_p);

//  Destroy the pool now: in-flight calls end with CLOSED (callbacks run
//  before this returns), every connection closes. Nulls *self_p.
void keel_http_pool_destroy (keel_http_pool_t **self_p);

//  Start a call. Returns its handle (valid until its callback returns or
//  it is cancelled), or NULL if the pool is closed, the queue is full or
//  out of memory (the callback is then not called).
keel_http_call_t *keel_http_pool_call (keel_http_pool_t *self,
                                       const keel_upstream_request_t *request,
                                       keel_upstream_fn *fn, void *arg);

//  Cancel a call: its callback will not run. Its connection is closed if
//  the request was (partly) sent.
void keel_http_call_cancel (keel_http_call_t *call);

//  The pool's endpoint, as given.
const char *keel_http_pool_endpoint (keel_http_pool_t *self);

//  Counters.
keel_upstream_stats_t keel_http_pool_stats (keel_http_pool_t *self);

//  A short constant name of an error ("connect", "timeout"...).
const char *keel_upstream_error_str (keel_upstream_error_t error);

#ifdef __cplusplus
}
#endif

#endif
