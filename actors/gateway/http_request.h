//  http_request.h - the gateway's HTTP/1.1 request reader (pure core).
//
//  One reader per client connection. The connection code feeds it the
//  bytes it read; the reader yields complete requests in order (keep-alive
//  and pipelining: several requests in one buffer, one request split over
//  many buffers) or a precise error that the gateway maps to a status.
//  Parsing is libhttp-parser's; this class adds limits, URL checks,
//  header-name checks, obs-fold rejection and request storage.
//  No sockets, no threads, no clock.
//
//      bytes --> feed --> NEED_MORE (all consumed, call again with more)
//                    \--> REQUEST   (request ready; *consumed bytes used,
//                    |               feed the rest of the buffer next)
//                    \--> UPGRADE   (terminal: request ready, then stop)
//                    \--> error     (terminal: 400 413 414 431 501 500)
//
//  Memory is bounded by the limits: the url, header and body buffers grow
//  up to their limits and are reused (cleared, not freed) per request.
#ifndef KEEL_HTTP_REQUEST_H_INCLUDED
#define KEEL_HTTP_REQUEST_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Limits for one reader. A zero field takes the default shown.
typedef struct {
    size_t max_url;          //  request-target bytes (default 8192)
    size_t max_headers;      //  sum of (name + value + 4) per header line
                             //  (value as received, without leading blanks;
                             //  4 for ": " and CRLF; default 32768)
    size_t max_header_count; //  header lines (default 100)
                             //  (both count chunked trailers too, which
                             //  are checked but not stored; http-parser's
                             //  own 80 KiB header cap also gives 431)
    size_t max_body;         //  de-chunked body bytes (default 1 MiB)
} keel_http_limits_t;

//  Results of keel_http_reader_feed. Errors and UPGRADE are terminal: the
//  reader returns the same result, consuming nothing, on every later call.
typedef enum {
    KEEL_HTTP_NEED_MORE = 0,          //  everything consumed, no request yet
    KEEL_HTTP_REQUEST,                //  a complete request is available
    KEEL_HTTP_UPGRADE,                //  an Upgrade (request available)
    KEEL_HTTP_BAD_REQUEST,            //  400 malformed
    KEEL_HTTP_BODY_TOO_LARGE,         //  413
    KEEL_HTTP_URL_TOO_LONG,           //  414
    KEEL_HTTP_HEADERS_TOO_LARGE,      //  431 (bytes or count)
    KEEL_HTTP_METHOD_NOT_IMPLEMENTED, //  501 CONNECT, TRACE
    KEEL_HTTP_VERSION_NOT_SUPPORTED,  //  505 a version other than 1.x
    KEEL_HTTP_NO_MEMORY               //  500 allocation failed
} keel_http_result_t;

typedef struct _keel_http_reader_t keel_http_reader_t;
typedef struct _keel_http_request_t keel_http_request_t;

//  The HTTP status the gateway answers for a result: 0 for NEED_MORE and
//  REQUEST, 501 for UPGRADE (not served yet), else the error's status.
int keel_http_result_status (keel_http_result_t result);

//  A short constant name for a result ("need-more", "url-too-long", ...).
const char *keel_http_result_str (keel_http_result_t result);

//  Create a reader. `limits` may be NULL (all defaults); it is copied.
//  Caller owns return value and must destroy it. NULL if out of memory.
keel_http_reader_t *keel_http_reader_new (const keel_http_limits_t *limits);

//  Destroy a reader and the request it holds; sets *self_p to NULL.
//  Accepts NULL and a pointer to NULL.
void keel_http_reader_destroy (keel_http_reader_t **self_p);

//  Parse `size` bytes of `data` (borrowed for the call only). *consumed
//  gets the number of bytes used: all of them for NEED_MORE; up to the end
//  of the request for REQUEST and UPGRADE (call again with the rest); for
//  errors, where parsing stopped. size 0 returns NEED_MORE (end of stream
//  is the connection's business). Calling feed again invalidates the
//  request from the previous REQUEST.
keel_http_result_t keel_http_reader_feed (keel_http_reader_t *self,
                                          const void *data, size_t size,
                                          size_t *consumed);

//  The request after REQUEST or UPGRADE, else NULL. Owned by the reader and
//  valid until the next feed or destroy; strings returned by the accessors
//  below are borrowed for the same span.
keel_http_request_t *keel_http_reader_request (keel_http_reader_t *self);

//  True once per request whose headers (now complete, body still to come)
//  carry "Expect: 100-continue" from an HTTP/1.1 client: the caller should
//  send "HTTP/1.1 100 Continue" so the client sends its body. Clears the
//  flag. A body over the limit gives BODY_TOO_LARGE before this is set.
int keel_http_reader_take_continue (keel_http_reader_t *self);

//  Method name as http-parser spells it ("GET").
const char *keel_http_request_method (const keel_http_request_t *self);

//  Raw request-target as received ("/a?b=1", "http://h/a", "*").
const char *keel_http_request_url (const keel_http_request_t *self);

//  Path of the target ("/a"; "*" for OPTIONS *). An absolute-form target
//  keeps only its path ("/" if it had none) and query.
const char *keel_http_request_path (const keel_http_request_t *self);

//  Query without the '?' ("" when absent).
const char *keel_http_request_query (const keel_http_request_t *self);

//  HTTP version numbers (1 and 1 for HTTP/1.1).
int keel_http_request_version_major (const keel_http_request_t *self);
int keel_http_request_version_minor (const keel_http_request_t *self);

//  True if the connection may carry another request (http_should_keep_alive).
int keel_http_request_keep_alive (const keel_http_request_t *self);

//  Number of headers, and the name and value (trimmed) of header `index`
//  in arrival order; NULL if index is out of range.
size_t keel_http_request_header_count (const keel_http_request_t *self);
const char *keel_http_request_header_name (const keel_http_request_t *self,
                                           size_t index);
const char *keel_http_request_header_value (const keel_http_request_t *self,
                                            size_t index);

//  Value of the first header called `name` (ASCII case-insensitive), or
//  NULL if there is none.
const char *keel_http_request_header (const keel_http_request_t *self,
                                      const char *name);

//  The Host header's value, or NULL.
const char *keel_http_request_host (const keel_http_request_t *self);

//  Body bytes (de-chunked) and their size. The pointer is NULL when the
//  size is 0.
const void *keel_http_request_body (const keel_http_request_t *self);
size_t keel_http_request_body_size (const keel_http_request_t *self);

//  Remove hop-by-hop headers in place, before proxying: Connection,
//  Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
//  and every header named in a Connection header. Order of the rest is
//  kept. Returns the number of headers removed.
size_t keel_http_request_strip_hop_by_hop (keel_http_request_t *self);

#ifdef __cplusplus
}
#endif

#endif
