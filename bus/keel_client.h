/*  keel_client.h - the requesting side of the bus: one DEALER to one named
    target, many requests in flight, a deadline per request, retries with
    backoff for idempotent calls (Lazy Pirate), and a blocking helper.

    Life of a request:

        request() --send--> [in flight] --reply--------------> callback(OK/err)
                               |  attempt timeout, idempotent,
                               |  attempts left:  wait backoff, send again
                               |  deadline passed: ----------> callback(TIMEOUT)
                               `  socket reset (not idempotent)>
   callback(UNAVAILABLE)

    Lazy Pirate: when an attempt times out and nothing at all came back on
    the socket since it was sent, the client closes the socket and opens a
    new one (a restarted server on inproc is only reached that way; on tcp it
    also flushes a dead connection). Requests that are not idempotent and
    were in flight on the old socket fail with UNAVAILABLE: their outcome is
    unknown, and only the caller may decide to send them again.

    A retried request keeps its correlation id and idempotency key, so the
    server side (keel_dedupe) can recognise it.

    Thread: a client belongs to the thread that created it. Callbacks run
    inside keel_client_process (or keel_client_call); a callback may send new
    requests but must not destroy the client.
*/
#ifndef KEEL_CLIENT_H_INCLUDED
#define KEEL_CLIENT_H_INCLUDED

#include "keel_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_client_t keel_client_t;

//  Per-call options. Zero-initialise; zero fields take the client defaults.
typedef struct {
    uint32_t timeout_ms; //  overall deadline (default 5000)
    uint32_t
        attempt_timeout_ms; //  per attempt, idempotent calls (default 1000)
    int retries;            //  extra attempts, idempotent calls: 0 =
                            //  default (3), KEEL_NO_RETRY = none
    bool idempotent;        //  safe to deliver more than once
    const char *trace_id;   //  propagated; NULL = none
    const char *idempotency_key; //  for the server's dedupe; NULL = none
} keel_call_opts_t;

#define KEEL_NO_RETRY (-1)

//  Outcome of a request, as the callback sees it. Borrowed: valid during
//  the callback only.
typedef struct {
    uint64_t id;                    //  the id keel_client_request returned
    int code;                       //  KEEL_OK or a keel_err_t
    const char *text;               //  error text, "" when none
    const uint8_t *data;            //  reply payload bytes
    size_t size;                    //  payload size
    const Keel__Envelope *envelope; //  the reply; NULL for local outcomes
                                    //  (TIMEOUT, UNAVAILABLE)
    int attempts;                   //  times the request was sent
} keel_reply_t;

typedef void (keel_reply_fn) (keel_client_t *client, const keel_reply_t *reply,
                              void *arg);

//  Counters of one client.
typedef struct {
    uint64_t requests;    //  requests accepted by keel_client_request
    uint64_t notifies;    //  one-way messages sent
    uint64_t sent;        //  frames sent (attempts, notifies)
    uint64_t retries;     //  attempts after the first
    uint64_t replies;     //  replies matched to a request
    uint64_t timeouts;    //  requests that ended in TIMEOUT
    uint64_t stale;       //  replies for no pending request (late, dupes)
    uint64_t malformed;   //  frames that did not decode as a reply
    uint64_t resets;      //  socket resets (Lazy Pirate)
    uint64_t send_failed; //  sends libzmq refused (no peer, queue full)
} keel_client_stats_t;

//  Create a client that sends as `sender` to the server at `endpoint`,
//  addressing requests to `service` (envelope.service; NULL or "" = the
//  server itself). Connects at once; the server need not be up yet. Caller
//  owns it. A tcp endpoint may carry the server's CURVE key
//  (";curve=KEY", keel_security.h). Returns NULL on an invalid endpoint,
//  one the security context refuses (logged), or out of memory.
keel_client_t *keel_client_new (const char *sender, const char *endpoint,
                                const char *service);

//  Create a client for the name `service` as the directory maps it (the
//  transport is whatever the directory says). Returns NULL with errno ENOENT
//  when the directory does not know the name, or as keel_client_new.
typedef struct _keel_directory_t keel_directory_t;
keel_client_t *keel_client_new_named (const char *sender,
                                      keel_directory_t *directory,
                                      const char *service);

//  Destroy a client; nulls *self_p. Pending requests are dropped without
//  their callbacks.
void keel_client_destroy (keel_client_t **self_p);

//  Defaults for calls that leave options at zero (retries: >= 0).
void keel_client_set_defaults (keel_client_t *self, uint32_t timeout_ms,
                               uint32_t attempt_timeout_ms, int retries);

//  Backoff between attempts: first wait, growth factor, cap (ms). Each wait
//  is jittered by +/-25%. Defaults 25 ms, x2, 1000 ms.
void keel_client_set_backoff (keel_client_t *self, uint32_t initial_ms,
                              double factor, uint32_t max_ms);

//  Largest frame sent or accepted (0 = none). Default
//  KEEL_DEFAULT_MAX_MSG_SIZE.
void keel_client_set_max_msg_size (keel_client_t *self, size_t max_size);

//  Send a request of `type` with `payload` (NULL = empty). Returns its id
//  (> 0); `fn` is then called exactly once with the outcome. Returns 0 if it
//  could not be sent at all (errno EMSGSIZE: over the size limit; EINVAL:
//  bad type; EHOSTUNREACH: no route to the server and not idempotent; ENOMEM)
//  and `fn` is never called.
uint64_t keel_client_request (keel_client_t *self, const char *type,
                              const ProtobufCMessage *payload,
                              const keel_call_opts_t *opts, keel_reply_fn *fn,
                              void *arg);

//  Same with raw payload bytes (copied).
uint64_t keel_client_request_bytes (keel_client_t *self, const char *type,
                                    const void *data, size_t size,
                                    const keel_call_opts_t *opts,
                                    keel_reply_fn *fn, void *arg);

//  Send a one-way message (never answered). Returns 0, or -1 with errno as
//  for keel_client_request (EAGAIN: queue full, dropped and counted).
int keel_client_notify (keel_client_t *self, const char *type,
                        const ProtobufCMessage *payload,
                        const keel_call_opts_t *opts);

//  Same with raw payload bytes (copied).
int keel_client_notify_bytes (keel_client_t *self, const char *type,
                              const void *data, size_t size,
                              const keel_call_opts_t *opts);

//  Forget a pending request: its callback will not be called. Returns 0, or
//  -1 if no such request is pending.
int keel_client_cancel (keel_client_t *self, uint64_t id);

//  Receive every waiting reply and run every timer that is due; callbacks
//  run here. Returns the number of callbacks made, or -1 if the socket failed
//  (context terminated).
int keel_client_process (keel_client_t *self);

//  Milliseconds until the next timer is due (0 = now), or -1 if nothing is
//  pending. Poll the socket at most this long before keel_client_process.
int64_t keel_client_timeout (keel_client_t *self);

//  The socket to poll for replies. Borrowed. It changes when the client
//  resets it: read it again after every keel_client_process, or use
//  keel_client_attach, which follows the changes itself.
zsock_t *keel_client_sock (keel_client_t *self);

//  Let a zloop drive the client: a reader on its socket and a timer for its
//  deadlines, both kept up to date across socket resets. Returns 0 or -1.
int keel_client_attach (keel_client_t *self, zloop_t *loop);

//  Take the client off its zloop (before the loop is destroyed, if the
//  client lives on). No-op when not attached.
void keel_client_detach (keel_client_t *self);

//  Requests waiting for an outcome.
size_t keel_client_pending (keel_client_t *self);

//  Counters. Borrowed; updated in place.
const keel_client_stats_t *keel_client_stats (keel_client_t *self);

//  Blocking call for the CLI and simple programs: send, wait for the outcome,
//  decode the reply payload as `reply_desc` into *reply_p (caller frees it
//  with protobuf_c_message_free_unpacked (msg, NULL); pass NULL desc/reply_p
//  to ignore the payload). On failure *error_p (if not NULL) gets the error
//  text (caller frees). Returns KEEL_OK or the error code; BAD_REQUEST if the
//  reply payload does not decode; UNAVAILABLE if interrupted by a signal.
keel_err_t keel_client_call (keel_client_t *self, const char *type,
                             const ProtobufCMessage *payload,
                             const keel_call_opts_t *opts,
                             const ProtobufCMessageDescriptor *reply_desc,
                             ProtobufCMessage **reply_p, char **error_p);

#ifdef __cplusplus
}
#endif

#endif
