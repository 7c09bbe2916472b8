/*  keel_server.c - ROUTER side of the bus. See keel_server.h.

    A request as it arrives on the ROUTER:

        [route 1] ... [route n] [envelope]
         ^ identities pushed by each ROUTER on the way (n <= ROUTE_MAX)

    The route is kept verbatim and sent back in front of the reply.
*/
#include "keel_server.h"
#include "keel_security.h"
#include "node.pb-c.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define ROUTE_MAX       8   //  routing frames a request may carry
#define ROUTE_FRAME_MAX 255 //  bytes in one routing frame (ZeroMQ's limit)

struct _keel_request_t {
    uint8_t route[ROUTE_MAX][ROUTE_FRAME_MAX]; //  routing frames, verbatim
    uint8_t route_len[ROUTE_MAX];              //  length of each frame
    size_t route_count;                        //  frames in route
    Keel__Envelope *env;                       //  decoded envelope
    keel_arena_t *arena;                       //  where env and payloads live
    const void *raw;                           //  envelope bytes as received
    size_t raw_size;                           //  (during the handler only)
    bool owns_arena;                           //  true for deferred copies
    int64_t deadline_ms;                       //  keel_now_ms deadline, or 0
    bool answered;                             //  a reply went out
    bool deferred;                             //  a copy will answer
};

typedef struct {
    keel_handler_fn *fn; //  handler
    void *arg;           //  its argument
} s_handler_t;

struct _keel_server_t {
    char *name;                            //  sender name and served service
    zsock_t *sock;                         //  ROUTER
    void *handle;                          //  libzmq handle of sock
    char *endpoint;                        //  last endpoint bound, resolved
    size_t max_msg_size;                   //  frame limit, 0 = none
    zhashx_t *handlers;                    //  type -> s_handler_t
    keel_handler_fn *forward_fn;           //  requests for other services
    void *forward_arg;                     //  its argument
    keel_server_stats_fn *stats_fn;        //  the owner's counters
    void *stats_arg;                       //  its argument
    char last_type[KEEL_MAX_NAME_LEN + 1]; //  type of the last dispatch
    s_handler_t *last_handler;             //  its handler (NULL = cache empty)
    keel_reply_hook_fn *hook_fn;           //  reply observer
    void *hook_arg;                        //  its argument
    keel_request_t current;                //  request being handled (reused)
    keel_server_stats_t stats;             //  counters
    int64_t started_ms;                    //  for keel.ping uptime
    keel_ratelimit_t log_bad;              //  malformed / too large
    keel_ratelimit_t log_kind;             //  wrong kind, unknown type/service
    keel_ratelimit_t log_send;             //  undeliverable replies
};

static int s_ping (keel_server_t *self, keel_request_t *req, void *arg);
static int s_stats (keel_server_t *self, keel_request_t *req, void *arg);

static void
s_handler_free (void **item)
{
    free (*item);
    *item = NULL;
}

keel_server_t *
keel_server_new (const char *name)
{
    if (!name || !*name || strlen (name) > KEEL_MAX_NAME_LEN)
        return NULL;
    keel_server_t *self = (keel_server_t *)calloc (1, sizeof (keel_server_t));
    if (!self)
        return NULL;
    self->name = strdup (name);
    self->sock = zsock_new (ZMQ_ROUTER);
    self->handlers = zhashx_new ();
    self->current.arena = keel_arena_new ();
    if (!self->name || !self->sock || !self->handlers || !self->current.arena) {
        keel_server_destroy (&self);
        return NULL;
    }
    self->handle = zsock_resolve (self->sock);
    zhashx_set_destructor (self->handlers, s_handler_free);
    zsock_set_router_mandatory (self->sock, 1);
    keel_server_set_max_msg_size (self, KEEL_DEFAULT_MAX_MSG_SIZE);
    self->started_ms = keel_now_ms ();
    keel_server_on (self, "keel.ping", s_ping, NULL);
    keel_server_on (self, "keel.stats", s_stats, NULL);
    return self;
}

void
keel_server_destroy (keel_server_t **self_p)
{
    assert (self_p);
    keel_server_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->sock);
    zhashx_destroy (&self->handlers);
    keel_arena_destroy (&self->current.arena);
    free (self->endpoint);
    free (self->name);
    free (self);
    *self_p = NULL;
}

void
keel_server_set_max_msg_size (keel_server_t *self, size_t max_size)
{
    self->max_msg_size = max_size;
    keel_codec_socket_setup (self->sock, max_size);
}

int
keel_server_bind (keel_server_t *self, const char *endpoint)
{
    int rc = keel_security_bind (self->sock, endpoint);
    if (rc == -1)
        return -1;
    char *last = zsock_last_endpoint (self->sock);
    free (self->endpoint);
    self->endpoint = last ? last : strdup (endpoint);
    return rc;
}

const char *
keel_server_endpoint (keel_server_t *self)
{
    return self->endpoint;
}

const char *
keel_server_name (keel_server_t *self)
{
    return self->name;
}

zsock_t *
keel_server_sock (keel_server_t *self)
{
    return self->sock;
}

int
keel_server_on (keel_server_t *self, const char *type, keel_handler_fn *fn,
                void *arg)
{
    assert (fn);
    if (!keel_codec_type_ok (type))
        return -1;
    s_handler_t *handler = (s_handler_t *)malloc (sizeof (s_handler_t));
    if (!handler)
        return -1;
    handler->fn = fn;
    handler->arg = arg;
    zhashx_update (self->handlers, type, handler);
    self->last_handler = NULL;
    return 0;
}

void
keel_server_set_forwarder (keel_server_t *self, keel_handler_fn *fn, void *arg)
{
    self->forward_fn = fn;
    self->forward_arg = arg;
}

size_t
keel_stats_fill (keel_stat_t *rows, size_t max, const keel_stat_t *mine,
                 size_t n)
{
    n = n < max ? n : max;
    if (n)
        memcpy (rows, mine, n * sizeof *rows);
    return n;
}

void
keel_server_set_stats_fn (keel_server_t *self, keel_server_stats_fn *fn,
                          void *arg)
{
    assert (self);
    self->stats_fn = fn;
    self->stats_arg = arg;
}

const keel_server_stats_t *
keel_server_stats (keel_server_t *self)
{
    return &self->stats;
}

// ---------------------------------------------------------------------------
//  Replies

//  Send [route...][envelope] without blocking. Counts and logs failures.
static int
s_send (keel_server_t *self, const keel_request_t *req,
        const Keel__Envelope *env, const ProtobufCMessage *payload)
{
    for (size_t i = 0; i < req->route_count; i++) {
        if (zmq_send (self->handle, req->route[i], req->route_len[i],
                      ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
            goto failed;
    }
    if (keel_codec_send (self->handle, env, payload, ZMQ_DONTWAIT) == 0) {
        self->stats.replies++;
        if (env->error_code)
            self->stats.errors++;
        return 0;
    }
failed:
    self->stats.send_failed++;
    keel_log_limited (&self->log_send, keel_now_ms (),
                      "keel: %s: reply not delivered: %s", self->name,
                      zmq_strerror (errno));
    return -1;
}

static void
s_reply_init (keel_server_t *self, const keel_request_t *req,
              Keel__Envelope *env)
{
    keel__envelope__init (env);
    env->version = KEEL_WIRE_VERSION;
    env->kind = KEEL__KIND__REPLY;
    env->sender = self->name;
    if (req->env) {
        env->type = req->env->type;
        env->correlation_id = req->env->correlation_id;
        env->trace_id = req->env->trace_id;
    } else
        env->type = "keel.error";
}

//  Common path of every reply. Returns -1 for a request already answered.
static int
s_reply (keel_server_t *self, keel_request_t *req, int code, const char *text,
         const ProtobufCMessage *payload, const void *data, size_t size)
{
    if (req->answered)
        return -1;
    req->answered = true;
    uint8_t *packed = NULL;
    if (self->hook_fn && req->env) {
        if (payload && keel_codec_pack (payload, &packed, &size) == 0)
            data = packed;
        self->hook_fn (self, req, code, text ? text : "", (const uint8_t *)data,
                       data ? size : 0, self->hook_arg);
    }
    if (req->env && req->env->kind == KEEL__KIND__ONEWAY) {
        free (packed);
        return 0;
    }
    Keel__Envelope env;
    s_reply_init (self, req, &env);
    env.error_code = (Keel__ErrorCode)code;
    if (text)
        env.error_text = (char *)text;
    env.payload.data = (uint8_t *)data;
    env.payload.len = data ? size : 0;
    int rc = s_send (self, req, &env, packed ? NULL : payload);
    free (packed);
    return rc;
}

int
keel_server_reply_raw (keel_server_t *self, keel_request_t *request, int code,
                       const char *text, const void *data, size_t size)
{
    return s_reply (self, request, code, text, NULL, data, size);
}

void
keel_server_set_reply_hook (keel_server_t *self, keel_reply_hook_fn *fn,
                            void *arg)
{
    self->hook_fn = fn;
    self->hook_arg = arg;
}

int
keel_server_reply (keel_server_t *self, keel_request_t *request,
                   const ProtobufCMessage *payload)
{
    return s_reply (self, request, KEEL_OK, NULL, payload, NULL, 0);
}

int
keel_server_reply_bytes (keel_server_t *self, keel_request_t *request,
                         const void *data, size_t size)
{
    return s_reply (self, request, KEEL_OK, NULL, NULL, data, size);
}

int
keel_server_reply_error (keel_server_t *self, keel_request_t *request,
                         keel_err_t code, const char *format, ...)
{
    char text[512];
    if (format) {
        va_list args;
        va_start (args, format);
        vsnprintf (text, sizeof text, format, args);
        va_end (args);
    } else
        snprintf (text, sizeof text, "%s", keel_strerror (code));
    //  Counted here, so a forwarder that finds no one to forward to (the
    //  node's front door) counts it as the server itself does.
    if (code == KEEL_ERR_UNKNOWN_SERVICE)
        self->stats.unknown_service++;
    return s_reply (self, request, code, text, NULL, NULL, 0);
}

// ---------------------------------------------------------------------------
//  Relaying (broker support)

int
keel_server_relay (keel_server_t *self, keel_request_t *request, void *handle)
{
    if (!request->raw || request->answered)
        return -1;
    self->stats.forwarded++;
    for (size_t i = 0; i < request->route_count; i++)
        if (zmq_send (handle, request->route[i], request->route_len[i],
                      ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
            return -1; //  the first frame failing sends nothing
    if (zmq_send (handle, request->raw, request->raw_size, ZMQ_DONTWAIT) == -1)
        return -1;
    request->answered = true;
    return 0;
}

int
keel_server_relay_back (keel_server_t *self, void *handle)
{
    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, handle, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&part);
        return errno == EAGAIN ? 0 : -1;
    }
    bool sending = true;
    while (true) {
        bool more = zmq_msg_more (&part);
        if (sending &&
            zmq_msg_send (&part, self->handle,
                          (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) == -1) {
            //  Client gone or queue full: drop the rest of this reply.
            sending = false;
            self->stats.send_failed++;
            keel_log_limited (&self->log_send, keel_now_ms (),
                              "keel: %s: relayed reply not delivered: %s",
                              self->name, zmq_strerror (errno));
        }
        if (!more)
            break;
        if (zmq_msg_recv (&part, handle, 0) == -1)
            break;
    }
    if (sending)
        self->stats.replies++;
    zmq_msg_close (&part);
    return 1;
}

// ---------------------------------------------------------------------------
//  Requests

keel_request_t *
keel_server_defer (keel_server_t *self, keel_request_t *request)
{
    (void)self;
    assert (request->env);
    keel_request_t *copy = (keel_request_t *)malloc (sizeof (keel_request_t));
    if (!copy)
        return NULL;
    memcpy (copy, request, sizeof (keel_request_t));
    copy->arena = keel_arena_new ();
    copy->owns_arena = true;
    copy->raw = NULL; //  the received frame is gone after the handler
    copy->raw_size = 0;
    copy->env = NULL;
    //  Re-home the envelope in the copy's own arena.
    size_t size = keel__envelope__get_packed_size (request->env);
    uint8_t *buffer = (uint8_t *)malloc (size ? size : 1);
    if (copy->arena && buffer) {
        keel__envelope__pack (request->env, buffer);
        copy->env = keel__envelope__unpack (keel_arena_allocator (copy->arena),
                                            size, buffer);
    }
    free (buffer);
    if (!copy->env) {
        keel_request_destroy (&copy);
        return NULL;
    }
    request->deferred = true;
    return copy;
}

void
keel_request_destroy (keel_request_t **self_p)
{
    assert (self_p);
    keel_request_t *self = *self_p;
    if (!self)
        return;
    assert (self->owns_arena);
    keel_arena_destroy (&self->arena);
    free (self);
    *self_p = NULL;
}

const Keel__Envelope *
keel_request_envelope (const keel_request_t *self)
{
    return self->env;
}

const char *
keel_request_type (const keel_request_t *self)
{
    return self->env->type;
}

ProtobufCMessage *
keel_request_payload (keel_request_t *self,
                      const ProtobufCMessageDescriptor *desc)
{
    return keel_codec_payload (self->env, desc,
                               keel_arena_allocator (self->arena));
}

int64_t
keel_request_deadline (const keel_request_t *self)
{
    return self->deadline_ms;
}

bool
keel_request_oneway (const keel_request_t *self)
{
    return self->env && self->env->kind == KEEL__KIND__ONEWAY;
}

// ---------------------------------------------------------------------------
//  Dispatch

static void
s_invoke (keel_server_t *self, keel_request_t *req, keel_handler_fn *fn,
          void *arg)
{
    int rc = fn (self, req, arg);
    if (req->answered || req->deferred)
        return;
    if (req->env->kind == KEEL__KIND__ONEWAY) {
        req->answered = true; //  nobody waits for an answer
        return;
    }
    if (rc != KEEL_OK)
        keel_server_reply_error (self, req, (keel_err_t)rc, NULL);
    else
        keel_server_reply_error (self, req, KEEL_ERR_INTERNAL,
                                 "handler for %s did not reply",
                                 req->env->type);
}

static void
s_handle (keel_server_t *self, keel_request_t *req, const void *data,
          size_t size)
{
    req->raw = data;
    req->raw_size = size;
    const char *why = NULL;
    uint64_t correlation = 0;
    keel_err_t rc = keel_codec_decode (data, size, self->max_msg_size,
                                       keel_arena_allocator (req->arena),
                                       &req->env, &why, &correlation);
    if (rc != KEEL_OK) {
        if (rc == KEEL_ERR_TOO_LARGE)
            self->stats.too_large++;
        else
            self->stats.malformed++;
        keel_log_limited (&self->log_bad, keel_now_ms (),
                          "keel: %s: rejected a %zu-byte frame: %s", self->name,
                          size, why);
        //  Answer so the sender is not left waiting; it may be unable to
        //  match the reply, which it then counts as stale.
        Keel__Envelope env;
        s_reply_init (self, req, &env);
        env.correlation_id = correlation;
        env.error_code = (Keel__ErrorCode)rc;
        env.error_text = (char *)why;
        req->answered = true;
        s_send (self, req, &env, NULL);
        return;
    }
    Keel__Envelope *env = req->env;
    if (env->kind == KEEL__KIND__REPLY || env->kind == KEEL__KIND__EVENT) {
        self->stats.wrong_kind++;
        keel_log_limited (&self->log_kind, keel_now_ms (),
                          "keel: %s: dropped a %s sent as a request",
                          self->name,
                          env->kind == KEEL__KIND__REPLY ? "reply" : "event");
        return;
    }
    if (env->kind == KEEL__KIND__ONEWAY)
        self->stats.oneway++;
    else
        self->stats.requests++;
    req->deadline_ms = env->timeout_ms ? keel_now_ms () + env->timeout_ms : 0;

    if (env->service && *env->service && strcmp (env->service, self->name)) {
        if (self->forward_fn) {
            s_invoke (self, req, self->forward_fn, self->forward_arg);
            return;
        }
        keel_log_limited (&self->log_kind, keel_now_ms (),
                          "keel: %s: request for unknown service '%.64s'",
                          self->name, env->service);
        keel_server_reply_error (self, req, KEEL_ERR_UNKNOWN_SERVICE,
                                 "no service '%s' at %s", env->service,
                                 self->name);
        return;
    }
    //  Traffic comes in runs of one type: remember the last lookup.
    s_handler_t *handler = self->last_handler;
    if (!handler || strcmp (self->last_type, env->type) != 0) {
        handler = (s_handler_t *)zhashx_lookup (self->handlers, env->type);
        if (handler) {
            //  type_ok bounds it to KEEL_MAX_NAME_LEN.
            strcpy (self->last_type, env->type);
            self->last_handler = handler;
        }
    }
    if (!handler) {
        self->stats.unknown_type++;
        keel_log_limited (&self->log_kind, keel_now_ms (),
                          "keel: %s: unknown message type '%s'", self->name,
                          env->type);
        keel_server_reply_error (self, req, KEEL_ERR_UNKNOWN_TYPE,
                                 "%s does not handle '%s'", self->name,
                                 env->type);
        return;
    }
    s_invoke (self, req, handler->fn, handler->arg);
}

//  Receive one message if one is waiting. 1 handled, 0 none, -1 failure.
static int
s_receive_one (keel_server_t *self)
{
    keel_request_t *req = &self->current;
    req->route_count = 0;
    req->env = NULL;
    req->answered = false;
    req->deferred = false;
    req->deadline_ms = 0;
    bool route_ok = true;

    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, self->handle, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&part);
        return errno == EAGAIN ? 0 : -1;
    }
    while (zmq_msg_more (&part)) {
        size_t len = zmq_msg_size (&part);
        if (req->route_count < ROUTE_MAX && len <= ROUTE_FRAME_MAX) {
            memcpy (req->route[req->route_count], zmq_msg_data (&part), len);
            req->route_len[req->route_count++] = (uint8_t)len;
        } else
            route_ok = false;
        //  The rest of a multipart message is already here.
        if (zmq_msg_recv (&part, self->handle, 0) == -1) {
            zmq_msg_close (&part);
            return -1;
        }
    }
    self->stats.received++;
    if (route_ok && req->route_count > 0)
        s_handle (self, req, zmq_msg_data (&part), zmq_msg_size (&part));
    else {
        self->stats.malformed++;
        keel_log_limited (&self->log_bad, keel_now_ms (),
                          "keel: %s: dropped a message with a bad route",
                          self->name);
    }
    zmq_msg_close (&part);
    keel_arena_reset (req->arena);
    return 1;
}

int
keel_server_dispatch (keel_server_t *self, int max)
{
    int handled = 0;
    while (handled < max) {
        int rc = s_receive_one (self);
        if (rc == -1)
            return handled ? handled : -1;
        if (rc == 0)
            break;
        handled++;
    }
    return handled;
}

int
keel_server_reader (zloop_t *loop, zsock_t *sock, void *server)
{
    (void)loop;
    (void)sock;
    return keel_server_dispatch ((keel_server_t *)server, 100) == -1 ? -1 : 0;
}

// ---------------------------------------------------------------------------
//  Built-in handlers

static int
s_ping (keel_server_t *self, keel_request_t *req, void *arg)
{
    (void)arg;
    Keel__Pong pong = KEEL__PONG__INIT;
    pong.name = self->name;
    pong.uptime_ms = (uint64_t)(keel_now_ms () - self->started_ms);
    keel_server_reply (self, req, &pong.base);
    return KEEL_OK;
}

static int
s_stats (keel_server_t *self, keel_request_t *req, void *arg)
{
    (void)arg;
    const keel_server_stats_t *s = &self->stats;
    keel_stat_t rows[12 + KEEL_SERVER_MAX_EXTRA_STATS] = {
        {"received", s->received},
        {"requests", s->requests},
        {"oneway", s->oneway},
        {"replies", s->replies},
        {"errors", s->errors},
        {"malformed", s->malformed},
        {"too_large", s->too_large},
        {"unknown_type", s->unknown_type},
        {"unknown_service", s->unknown_service},
        {"wrong_kind", s->wrong_kind},
        {"forwarded", s->forwarded},
        {"send_failed", s->send_failed},
    };
    size_t n = 12;
    if (self->stats_fn) {
        size_t extra = self->stats_fn (self->stats_arg, rows + n,
                                       KEEL_SERVER_MAX_EXTRA_STATS);
        n += extra < KEEL_SERVER_MAX_EXTRA_STATS ? extra
                                                 : KEEL_SERVER_MAX_EXTRA_STATS;
    }
    Keel__Counter counters[12 + KEEL_SERVER_MAX_EXTRA_STATS];
    Keel__Counter *pointers[12 + KEEL_SERVER_MAX_EXTRA_STATS];
    for (size_t i = 0; i < n; i++) {
        keel__counter__init (&counters[i]);
        counters[i].name = (char *)rows[i].name;
        counters[i].value = rows[i].value;
        pointers[i] = &counters[i];
    }
    Keel__Stats stats = KEEL__STATS__INIT;
    stats.name = self->name;
    stats.n_counters = n;
    stats.counters = pointers;
    keel_server_reply (self, req, &stats.base);
    return KEEL_OK;
}
