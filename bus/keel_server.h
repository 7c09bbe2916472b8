/*  keel_server.h - the serving side of the bus: a ROUTER that decodes
    requests, dispatches them by message type to handlers, and replies.

    Every actor and every service answers requests through a keel_server. It
    owns the bad-input policy so no actor has to repeat it:

      frame over the size limit   -> TOO_LARGE reply, counted
      not a keel envelope         -> BAD_REQUEST reply, counted
      envelope fails the checks   -> BAD_REQUEST reply, counted
      REPLY or EVENT sent here    -> dropped, counted (never answered: no loops)
      type nobody handles         -> UNKNOWN_TYPE reply, counted
      envelope.service not ours   -> forwarded if a forwarder is set, else
                                     UNKNOWN_SERVICE reply, counted
    Each is logged at most once a second per kind. The server keeps serving.

    Every server answers "keel.ping" (payload keel.Pong) and "keel.stats"
    (payload keel.Stats) by itself.

    Thread: a server belongs to the thread that created it.
*/
#ifndef KEEL_SERVER_H_INCLUDED
#define KEEL_SERVER_H_INCLUDED

#include "keel_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_server_t keel_server_t;
typedef struct _keel_request_t keel_request_t;

//  A request handler. Called with a request that is valid until the handler
//  returns (unless deferred with keel_server_defer). The handler replies with
//  keel_server_reply / keel_server_reply_error, or defers. If it returns a
//  keel_err_t other than KEEL_OK without replying, the server replies with
//  that error. If it returns KEEL_OK without replying or deferring, the
//  server replies INTERNAL ("handler did not reply").
typedef int (keel_handler_fn) (keel_server_t *server, keel_request_t *request,
                               void *arg);

//  Counters of one server; all grow monotonically.
typedef struct {
    uint64_t received;        //  frames received (valid or not)
    uint64_t requests;        //  valid requests dispatched
    uint64_t oneway;          //  valid one-way messages dispatched
    uint64_t replies;         //  replies sent (including errors)
    uint64_t errors;          //  error replies sent
    uint64_t malformed;       //  frames that did not decode or check
    uint64_t too_large;       //  frames over the size limit
    uint64_t unknown_type;    //  requests no handler takes
    uint64_t unknown_service; //  requests for a service not served here
    uint64_t wrong_kind;      //  replies or events sent to this server
    uint64_t forwarded;       //  requests relayed to another server
    uint64_t send_failed;     //  replies libzmq could not deliver
} keel_server_stats_t;

//  Create a server named `name` (the envelope sender of its replies and the
//  service name it answers). Not bound yet. Caller owns it. Returns NULL if
//  out of memory or name is empty.
keel_server_t *keel_server_new (const char *name);

//  Destroy a server; nulls *self_p. Pending deferred requests stay valid and
//  must still be destroyed by their owners.
void keel_server_destroy (keel_server_t **self_p);

//  Largest frame accepted, in bytes (0 = no limit). Also sets ZMQ_MAXMSGSIZE
//  on the socket. Default KEEL_DEFAULT_MAX_MSG_SIZE. Call before bind.
void keel_server_set_max_msg_size (keel_server_t *self, size_t max_size);

//  Bind to an endpoint (inproc://, tcp://, ipc://); may be called several
//  times. "tcp://127.0.0.1:*" binds an ephemeral port. Returns the tcp port
//  bound, 0 for other transports, or -1 on error (errno set). A tcp bind is
//  a CURVE server when the security context requires it (keel_security.h);
//  keel_server_endpoint then names it without the key (see
//  keel_security_advertise).
int keel_server_bind (keel_server_t *self, const char *endpoint);

//  The last endpoint bound, resolved ("tcp://127.0.0.1:43120"). Borrowed;
//  NULL before any bind.
const char *keel_server_endpoint (keel_server_t *self);

//  The server's name. Borrowed.
const char *keel_server_name (keel_server_t *self);

//  The socket to poll for input (zpoller, zloop). Borrowed.
zsock_t *keel_server_sock (keel_server_t *self);

//  Route requests of `type` to `fn`. Replaces any earlier handler of the
//  type. Returns 0, or -1 if type is not a valid message type.
int keel_server_on (keel_server_t *self, const char *type, keel_handler_fn *fn,
                    void *arg);

//  A named counter an owner adds to the server's "keel.stats" answer.
typedef struct {
    const char *name; //  borrowed until the function returns
    uint64_t value;
} keel_stat_t;

//  Fill at most `max` rows with the owner's counters; return how many.
typedef size_t (keel_server_stats_fn) (void *arg, keel_stat_t *rows,
                                       size_t max);

//  For a keel_server_stats_fn: copy the first `n` of `mine` into `rows`,
//  at most `max`. Returns how many were copied.
size_t keel_stats_fill (keel_stat_t *rows, size_t max, const keel_stat_t *mine,
                        size_t n);

//  Add the owner's counters (at most KEEL_SERVER_MAX_EXTRA_STATS) after the
//  server's own in its "keel.stats" answers. A later call replaces `fn`;
//  NULL removes it.
#define KEEL_SERVER_MAX_EXTRA_STATS 64
void keel_server_set_stats_fn (keel_server_t *self, keel_server_stats_fn *fn,
                               void *arg);

//  Handle requests whose envelope.service names another service: `fn` gets
//  them instead of an UNKNOWN_SERVICE reply (the node front door forwards
//  them to local actors). NULL removes the forwarder.
void keel_server_set_forwarder (keel_server_t *self, keel_handler_fn *fn,
                                void *arg);

//  Receive and handle up to `max` waiting messages without blocking. Returns
//  the number handled (valid or not), 0 if none was waiting, or -1 if the
//  socket failed (context terminated, interrupted).
int keel_server_dispatch (keel_server_t *self, int max);

//  A zloop reader for a server's socket: dispatches up to 100 waiting
//  messages; returns -1 (ending the loop) if the socket failed. Register
//  with zloop_reader (loop, keel_server_sock (server), keel_server_reader,
//  server).
int keel_server_reader (zloop_t *loop, zsock_t *sock, void *server);

//  Counters. Borrowed; updated in place.
const keel_server_stats_t *keel_server_stats (keel_server_t *self);

//  Reply to `request` with a payload message (NULL = empty payload).
//  Returns 0, or -1 if the reply could not be queued (counted) or the
//  request was already answered. One-way requests are never answered:
//  replying to one returns 0 and sends nothing.
int keel_server_reply (keel_server_t *self, keel_request_t *request,
                       const ProtobufCMessage *payload);

//  Reply with raw payload bytes (copied). Same returns as keel_server_reply.
int keel_server_reply_bytes (keel_server_t *self, keel_request_t *request,
                             const void *data, size_t size);

//  Reply with an error code and a formatted reason (NULL = keel_strerror).
//  Same returns as keel_server_reply.
int keel_server_reply_error (keel_server_t *self, keel_request_t *request,
                             keel_err_t code, const char *format, ...)
    CHECK_PRINTF (4);

//  Reply with everything spelled out: code (KEEL_OK or an error), text
//  (NULL = none), raw payload bytes (copied). Used by forwarders that relay
//  another server's reply. Same returns as keel_server_reply.
int keel_server_reply_raw (keel_server_t *self, keel_request_t *request,
                           int code, const char *text, const void *data,
                           size_t size);

//  Observe every reply this server sends (after any handler, deferred or
//  not): the payload arrives packed. For the service SDK's dedupe. NULL
//  removes the hook. Setting a hook costs one extra pack per reply.
typedef void (keel_reply_hook_fn) (keel_server_t *server,
                                   const keel_request_t *request, int code,
                                   const char *text, const uint8_t *data,
                                   size_t size, void *arg);
void keel_server_set_reply_hook (keel_server_t *self, keel_reply_hook_fn *fn,
                                 void *arg);

//  Broker support. Relay `request` exactly as it arrived (routing frames
//  and envelope bytes, no re-encoding) on `handle`, a libzmq DEALER socket
//  connected to another keel server; that server's reply arrives on the
//  DEALER and goes back with keel_server_relay_back. Only inside a handler
//  or forwarder. Returns 0 (the request counts as answered), or -1 if the
//  DEALER refused it (nothing sent; the caller should reply an error).
int keel_server_relay (keel_server_t *self, keel_request_t *request,
                       void *handle);

//  Read one whole message waiting on the relay DEALER `handle`
//  ([route...][reply]) and send it out of this server's socket. Returns 1
//  if a message was passed back, 0 if none was waiting, -1 if the socket
//  failed. A reply whose client is gone is dropped and counted.
int keel_server_relay_back (keel_server_t *self, void *handle);

//  Keep a request to answer later (after the handler returned). Returns an
//  owned copy (destroy with keel_request_destroy after replying), or NULL if
//  out of memory. The server will not answer the original itself.
keel_request_t *keel_server_defer (keel_server_t *self,
                                   keel_request_t *request);

//  Destroy a deferred request; nulls *self_p.
void keel_request_destroy (keel_request_t **self_p);

//  The request's envelope: type, sender, trace_id, payload... Borrowed.
const Keel__Envelope *keel_request_envelope (const keel_request_t *self);

//  The request's message type. Borrowed.
const char *keel_request_type (const keel_request_t *self);

//  Decode the request's payload as `desc` (e.g.
//  &keel__echo_request__descriptor). The result lives as long as the request
//  (do not free it). Returns NULL if the payload does not decode.
ProtobufCMessage *keel_request_payload (keel_request_t *self,
                                        const ProtobufCMessageDescriptor *desc);

//  Monotonic time (keel_now_ms) by which the caller wants an answer, or 0
//  when the request carried no deadline.
int64_t keel_request_deadline (const keel_request_t *self);

//  True for a one-way message (no reply is sent).
bool keel_request_oneway (const keel_request_t *self);

#ifdef __cplusplus
}
#endif

#endif
