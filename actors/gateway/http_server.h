/*  http_server.h - the gateway's HTTP/1.1 front door: a listening socket
    and its client connections on a keel_evloop. It reads requests with
    keel_http_reader (keep-alive, pipelining), hands each complete request
    to the application as an exchange, and writes the application's
    response, in order, one request at a time per connection (pipelined
    requests wait in the connection's buffer until the one before was
    answered, as HTTP/1.1 requires).

        accept --> conn --read--> keel_http_reader --REQUEST--> on_request
                    ^                                              |
                    |   (now, or later from any callback)          v
                    +------ write <------ keel_http_exchange_respond

    What the server answers itself, with a JSON body and Connection: close
    (each counted in the stats and reported to on_error):
      400 413 414 431 501   the reader's verdict on a malformed request
      408                   a request begun but not complete within
                            header_timeout_ms (also the time to send a
                            whole body)
      503                   a connection beyond max_connections (accepted,
                            answered, closed)
    An idle keep-alive connection (no bytes of a next request) is closed
    silently after idle_timeout_ms.

    Thread: one server belongs to the thread that runs its evloop.
*/
#ifndef KEEL_HTTP_SERVER_H_INCLUDED
#define KEEL_HTTP_SERVER_H_INCLUDED

#include "evloop.h"
#include "http_request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  A header to write. Both strings NUL-terminated, borrowed for the call.
typedef struct {
    const char *name;
    const char *value;
} keel_http_header_t;

//  Settings. A zero field takes the default shown.
typedef struct {
    size_t max_connections;     //  open client connections (default 10000)
    int64_t header_timeout_ms;  //  408 after this (default 10000)
    int64_t idle_timeout_ms;    //  keep-alive idle close (default 60000)
    size_t max_requests;        //  per connection, then Connection: close
                                //  (default 0 = unlimited)
    keel_http_limits_t limits;  //  reader limits (see http_request.h)
    size_t read_buffer;         //  bytes read per read() (default 16384)
} keel_http_server_config_t;

//  Counters since creation.
typedef struct {
    uint64_t accepted;        //  connections accepted
    uint64_t refused;         //  answered 503: over max_connections
    uint64_t open;            //  connections open now
    uint64_t requests;        //  requests handed to on_request
    uint64_t responses;       //  responses written (all statuses)
    uint64_t bad_requests;    //  answered by the server: 400/413/414/431/501
    uint64_t timeouts;        //  answered 408
    uint64_t idle_closed;     //  idle keep-alive connections closed
    uint64_t aborted;         //  exchanges ended by the client going away
    uint64_t read_errors;     //  read() or write() failed (ECONNRESET...)
} keel_http_server_stats_t;

typedef struct _keel_http_server_t keel_http_server_t;
typedef struct _keel_http_exchange_t keel_http_exchange_t;

//  A complete request arrived. The exchange is valid until it is answered
//  (keel_http_exchange_respond) or aborted (on_abort): answer it now or
//  later, exactly once. Store your own state in its user slot.
typedef void (keel_http_request_fn) (keel_http_server_t *server,
                                     keel_http_exchange_t *exchange,
                                     void *arg);

//  The client went away (closed, reset, or the server is being destroyed)
//  before `exchange` was answered. Forget it: after this callback returns,
//  the exchange is freed. Do not respond to it.
typedef void (keel_http_abort_fn) (keel_http_server_t *server,
                                   keel_http_exchange_t *exchange, void *arg);

//  The server answered `status` by itself (400, 408, 413, 414, 431, 501,
//  503; see above). `reason` is a short constant name ("url-too-long",
//  "header-timeout", "max-connections"). For metrics and logs.
typedef void (keel_http_error_fn) (keel_http_server_t *server, int status,
                                   const char *reason, const char *peer,
                                   void *arg);

//  Create a server on `loop` (borrowed; it must outlive the server).
//  `config` may be NULL (defaults); it is copied. `on_request` is required;
//  `on_abort` and `on_error` may be NULL. Returns NULL if out of memory.
//  Caller owns it and destroys it.
keel_http_server_t *keel_http_server_new (keel_evloop_t *loop,
                                          const keel_http_server_config_t *config,
                                          keel_http_request_fn *on_request,
                                          keel_http_abort_fn *on_abort,
                                          keel_http_error_fn *on_error,
                                          void *arg);

//  Close the listener and every connection; exchanges not answered get
//  on_abort first. Nulls *self_p. Accepts NULL.
void keel_http_server_destroy (keel_http_server_t **self_p);

//  Listen on `address`: "HOST:PORT" ("127.0.0.1:8080", "0.0.0.0:8080",
//  "[::1]:8080", "*:8080" = all IPv4 addresses); port 0 picks a free port.
//  SO_REUSEADDR, backlog 1024. At most one listener per server. Returns 0,
//  or -1 with errno set (EINVAL for a bad address, bind's errors).
int keel_http_server_listen (keel_http_server_t *self, const char *address);

//  The port listened on (useful after port 0), or 0 before listen.
int keel_http_server_port (keel_http_server_t *self);

//  Stop accepting (close the listener) and answer every later request on
//  open connections with Connection: close; connections close once their
//  current exchange is answered, idle ones at once. For a graceful stop.
void keel_http_server_drain (keel_http_server_t *self);

//  Counters.
keel_http_server_stats_t keel_http_server_stats (keel_http_server_t *self);

// ---------------------------------------------------------------------------
//  One exchange: a request and, once given, its response.

//  The request (reader-owned; valid for the exchange's life).
keel_http_request_t *keel_http_exchange_request (keel_http_exchange_t *self);

//  The client's address: "127.0.0.1" (no port), "::1". Valid for the
//  exchange's life.
const char *keel_http_exchange_peer (keel_http_exchange_t *self);

//  A number unique to this exchange within the server (starts at 1).
uint64_t keel_http_exchange_id (keel_http_exchange_t *self);

//  When the request was complete (keel_now_ms clock).
int64_t keel_http_exchange_started_ms (keel_http_exchange_t *self);

//  User slot: NULL until set.
void keel_http_exchange_set_user (keel_http_exchange_t *self, void *user);
void *keel_http_exchange_user (keel_http_exchange_t *self);

//  Answer the exchange: status line ("HTTP/1.1 200 OK", the reason phrase
//  from the status; HTTP/1.0 for a 1.0 client), `headers` (n of them; may
//  be NULL when n is 0; names Content-Length, Transfer-Encoding and
//  Connection are skipped: the server writes its own), Content-Length of
//  `size`, Connection: keep-alive or close, then `body` (not for HEAD
//  requests, nor for 1xx/204/304 statuses). All borrowed for the call:
//  the bytes are copied into the connection's output. Writes at once when
//  the socket takes it. The exchange is freed: do not use it afterwards.
//  `close` forces Connection: close. Returns 0, or -1 if out of memory
//  (the connection is then closed; the exchange is freed all the same).
int keel_http_exchange_respond (keel_http_exchange_t *self, int status,
                                const keel_http_header_t *headers, size_t n,
                                const void *body, size_t size, bool close);

//  Answer with the JSON error body every keel error uses:
//      {"error":"CODE","message":"MESSAGE","status":STATUS}
//  (plus ,"request_id":"ID" when request_id is not NULL), Content-Type
//  application/json, the extra `headers`. `code` is a short token
//  ("not_found"); message is escaped as JSON. Same return as respond.
int keel_http_exchange_error (keel_http_exchange_t *self, int status,
                              const char *code, const char *message,
                              const char *request_id,
                              const keel_http_header_t *headers, size_t n);

//  Format that JSON error body into `buffer` (size bytes, NUL-terminated,
//  truncated if too small). Returns the length it needed (like snprintf).
size_t keel_http_error_body (char *buffer, size_t size, int status,
                             const char *code, const char *message,
                             const char *request_id);

//  The reason phrase of an HTTP status ("Not Found"); "Unknown" for codes
//  it does not know.
const char *keel_http_status_text (int status);

#ifdef __cplusplus
}
#endif

#endif
