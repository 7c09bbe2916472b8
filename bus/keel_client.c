/*  keel_client.c - DEALER side of the bus. See keel_client.h.

    Pending requests live in two structures:

        by id:   zhashx  correlation id -> s_pending_t
        by time: binary min-heap on `due` (each pending knows its index),
                 so the next timer is O(1) and every update O(log n).

    `due` is the next moment something must happen to a request: its attempt
    timeout, the end of its backoff wait, or its deadline.
*/
#include "keel_client.h"
#include "keel_security.h"
#include "keel_directory.h"

#include <errno.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS         5000
#define DEFAULT_ATTEMPT_TIMEOUT_MS 1000
#define DEFAULT_RETRIES            3

typedef struct {
    uint64_t id;              //  correlation id (hash key points here)
    keel_reply_fn *fn;        //  outcome callback
    void *arg;                //  its argument
    int64_t deadline;         //  overall deadline (keel_now_ms)
    uint32_t timeout;         //  the caller's timeout, ms
    int64_t due;              //  next timer
    int64_t sent_ms;          //  when the current attempt went out
    uint64_t socket_gen;      //  socket generation it went out on
    uint32_t attempt_timeout; //  per attempt, ms
    int attempts;             //  sent so far
    int max_attempts;         //  1 + retries
    bool idempotent;          //  may be sent again
    bool backing_off;         //  waiting before the next attempt
    int64_t backoff_ms;       //  the wait before the next attempt
    uint8_t *frame;           //  packed envelope, kept for resends
    size_t frame_size;        //  its size
    size_t heap_index;        //  position in the heap
} s_pending_t;

struct _keel_client_t {
    char *sender;                //  envelope.sender
    char *endpoint;              //  where the server is
    char *service;               //  envelope.service, NULL = none
    zsock_t *sock;               //  DEALER (replaced by resets)
    void *handle;                //  libzmq handle of sock
    zsock_t *retired;            //  previous socket, destroyed later
    uint64_t socket_gen;         //  bumped by each reset
    size_t max_msg_size;         //  frame limit
    uint32_t timeout_ms;         //  default deadline
    uint32_t attempt_timeout_ms; //  default attempt timeout
    int retries;                 //  default retries
    uint32_t backoff_initial_ms; //  first backoff
    double backoff_factor;       //  growth
    uint32_t backoff_max_ms;     //  cap
    uint64_t next_id;            //  next correlation id
    unsigned int seed;           //  jitter random state
    zhashx_t *pending;           //  id -> s_pending_t
    s_pending_t **heap;          //  min-heap on due
    size_t heap_size;            //  entries in heap
    size_t heap_cap;             //  capacity of heap
    int64_t last_reply_ms;       //  when anything last arrived
    int64_t last_reset_ms;       //  when the socket was last reset
    keel_arena_t *arena;         //  decode arena
    keel_client_stats_t stats;   //  counters
    zloop_t *loop;               //  attached loop, or NULL
    int timer_id;                //  armed zloop timer, or -1
    int64_t timer_due;           //  when it fires
    keel_ratelimit_t log_bad;    //  malformed replies
};

// ---------------------------------------------------------------------------
//  Heap on due

static bool
s_heap_less (keel_client_t *self, size_t a, size_t b)
{
    return self->heap[a]->due < self->heap[b]->due;
}

static void
s_heap_swap (keel_client_t *self, size_t a, size_t b)
{
    s_pending_t *tmp = self->heap[a];
    self->heap[a] = self->heap[b];
    self->heap[b] = tmp;
    self->heap[a]->heap_index = a;
    self->heap[b]->heap_index = b;
}

static void
s_heap_up (keel_client_t *self, size_t i)
{
    while (i > 0 && s_heap_less (self, i, (i - 1) / 2)) {
        s_heap_swap (self, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void
s_heap_down (keel_client_t *self, size_t i)
{
    while (true) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < self->heap_size && s_heap_less (self, l, m))
            m = l;
        if (r < self->heap_size && s_heap_less (self, r, m))
            m = r;
        if (m == i)
            return;
        s_heap_swap (self, i, m);
        i = m;
    }
}

static int
s_heap_push (keel_client_t *self, s_pending_t *p)
{
    if (self->heap_size == self->heap_cap) {
        size_t cap = self->heap_cap ? self->heap_cap * 2 : 64;
        s_pending_t **heap =
            (s_pending_t **)realloc (self->heap, cap * sizeof (*heap));
        if (!heap)
            return -1;
        self->heap = heap;
        self->heap_cap = cap;
    }
    p->heap_index = self->heap_size;
    self->heap[self->heap_size++] = p;
    s_heap_up (self, p->heap_index);
    return 0;
}

static void
s_heap_remove (keel_client_t *self, s_pending_t *p)
{
    size_t i = p->heap_index;
    assert (i < self->heap_size && self->heap[i] == p);
    self->heap_size--;
    if (i != self->heap_size) {
        self->heap[i] = self->heap[self->heap_size];
        self->heap[i]->heap_index = i;
        s_heap_down (self, i);
        s_heap_up (self, i);
    }
}

static void
s_heap_update (keel_client_t *self, s_pending_t *p)
{
    s_heap_down (self, p->heap_index);
    s_heap_up (self, p->heap_index);
}

// ---------------------------------------------------------------------------
//  Hash keyed by the 64-bit id stored inside each pending request

static size_t
s_id_hash (const void *key)
{
    uint64_t x = *(const uint64_t *)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static int
s_id_compare (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void
s_pending_free (s_pending_t **p_p)
{
    if (*p_p) {
        free ((*p_p)->frame);
        free (*p_p);
        *p_p = NULL;
    }
}

// ---------------------------------------------------------------------------
//  Socket

static int
s_socket_open (keel_client_t *self)
{
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock)
        return -1;
    keel_codec_socket_setup (self->sock, self->max_msg_size);
    if (keel_security_connect (self->sock, self->endpoint) == -1) {
        zsock_destroy (&self->sock);
        return -1;
    }
    self->handle = zsock_resolve (self->sock);
    self->socket_gen++;
    return 0;
}

static int s_on_readable (zloop_t *loop, zsock_t *sock, void *arg);

//  Lazy Pirate: drop the socket (and everything queued on it) and connect
//  a fresh one. Requests that may not be resent fail now.
static void s_complete_local (keel_client_t *self, s_pending_t *p, int code,
                              const char *text);

static void
s_socket_reset (keel_client_t *self)
{
    if (self->loop)
        zloop_reader_end (self->loop, self->sock);
    //  A zloop may still be iterating over the old socket: destroy it later.
    zsock_destroy (&self->retired);
    self->retired = self->sock;
    self->sock = NULL;
    if (s_socket_open (self) == -1) {
        //  Keep the old socket rather than none at all.
        self->sock = self->retired;
        self->retired = NULL;
        self->handle = zsock_resolve (self->sock);
    }
    if (self->loop)
        zloop_reader (self->loop, self->sock, s_on_readable, self);
    self->stats.resets++;
    self->last_reset_ms = keel_now_ms ();

    //  Collect first: completing changes the heap.
    s_pending_t **doomed = NULL;
    size_t count = 0;
    for (size_t i = 0; i < self->heap_size; i++)
        if (!self->heap[i]->idempotent)
            count++;
    if (count && (doomed = (s_pending_t **)malloc (count * sizeof (*doomed)))) {
        size_t n = 0;
        for (size_t i = 0; i < self->heap_size; i++)
            if (!self->heap[i]->idempotent)
                doomed[n++] = self->heap[i];
        for (size_t i = 0; i < n; i++)
            s_complete_local (self, doomed[i], KEEL_ERR_UNAVAILABLE,
                              "connection reset before the reply; the "
                              "request may or may not have been applied");
        free (doomed);
    }
}

// ---------------------------------------------------------------------------

keel_client_t *
keel_client_new (const char *sender, const char *endpoint, const char *service)
{
    assert (sender);
    if (!endpoint || !*endpoint)
        return NULL;
    keel_client_t *self = (keel_client_t *)calloc (1, sizeof (keel_client_t));
    if (!self)
        return NULL;
    self->sender = strdup (sender);
    self->endpoint = strdup (endpoint);
    self->service = service && *service ? strdup (service) : NULL;
    self->pending = zhashx_new ();
    self->arena = keel_arena_new ();
    self->max_msg_size = KEEL_DEFAULT_MAX_MSG_SIZE;
    self->timeout_ms = DEFAULT_TIMEOUT_MS;
    self->attempt_timeout_ms = DEFAULT_ATTEMPT_TIMEOUT_MS;
    self->retries = DEFAULT_RETRIES;
    self->backoff_initial_ms = 25;
    self->backoff_factor = 2.0;
    self->backoff_max_ms = 1000;
    self->timer_id = -1;
    self->seed = (unsigned int)(keel_now_ms () ^ (intptr_t)self);
    //  Ids start at a random point so a restarted client does not collide
    //  with replies meant for its previous life.
    self->next_id = ((uint64_t)randof (0x7fffffff) << 20) + 1;
    if (!self->sender || !self->endpoint ||
        (service && *service && !self->service) || !self->pending ||
        !self->arena || s_socket_open (self) == -1) {
        keel_client_destroy (&self);
        return NULL;
    }
    zhashx_set_key_hasher (self->pending, s_id_hash);
    zhashx_set_key_comparator (self->pending, s_id_compare);
    zhashx_set_key_duplicator (self->pending, NULL);
    zhashx_set_key_destructor (self->pending, NULL);
    return self;
}

keel_client_t *
keel_client_new_named (const char *sender, keel_directory_t *directory,
                       const char *service)
{
    const char *endpoint = keel_directory_endpoint (directory, service);
    if (!endpoint) {
        errno = ENOENT;
        return NULL;
    }
    return keel_client_new (sender, endpoint, service);
}

void
keel_client_destroy (keel_client_t **self_p)
{
    assert (self_p);
    keel_client_t *self = *self_p;
    if (!self)
        return;
    keel_client_detach (self);
    for (size_t i = 0; i < self->heap_size; i++)
        s_pending_free (&self->heap[i]);
    free (self->heap);
    zhashx_destroy (&self->pending);
    zsock_destroy (&self->sock);
    zsock_destroy (&self->retired);
    keel_arena_destroy (&self->arena);
    free (self->sender);
    free (self->endpoint);
    free (self->service);
    free (self);
    *self_p = NULL;
}

void
keel_client_set_defaults (keel_client_t *self, uint32_t timeout_ms,
                          uint32_t attempt_timeout_ms, int retries)
{
    if (timeout_ms)
        self->timeout_ms = timeout_ms;
    if (attempt_timeout_ms)
        self->attempt_timeout_ms = attempt_timeout_ms;
    if (retries >= 0)
        self->retries = retries;
}

void
keel_client_set_backoff (keel_client_t *self, uint32_t initial_ms,
                         double factor, uint32_t max_ms)
{
    self->backoff_initial_ms = initial_ms;
    self->backoff_factor = factor >= 1.0 ? factor : 1.0;
    self->backoff_max_ms = max_ms >= initial_ms ? max_ms : initial_ms;
}

void
keel_client_set_max_msg_size (keel_client_t *self, size_t max_size)
{
    self->max_msg_size = max_size;
    keel_codec_socket_setup (self->sock, max_size);
}

zsock_t *
keel_client_sock (keel_client_t *self)
{
    return self->sock;
}

size_t
keel_client_pending (keel_client_t *self)
{
    return self->heap_size;
}

const keel_client_stats_t *
keel_client_stats (keel_client_t *self)
{
    return &self->stats;
}

// ---------------------------------------------------------------------------
//  zloop integration: one reader, one one-shot timer for the earliest due.

static int s_on_timer (zloop_t *loop, int timer_id, void *arg);

static void
s_arm (keel_client_t *self)
{
    if (!self->loop)
        return;
    int64_t due = self->heap_size ? self->heap[0]->due : -1;
    if (self->timer_id != -1 && due != -1 && self->timer_due <= due)
        return; //  the armed timer fires first; it re-arms then
    if (self->timer_id != -1 && due == -1)
        return; //  harmless early wake-up
    if (self->timer_id != -1)
        zloop_timer_end (self->loop, self->timer_id);
    self->timer_id = -1;
    if (due == -1)
        return;
    int64_t delay = due - keel_now_ms ();
    if (delay < 1)
        delay = 1;
    self->timer_id =
        zloop_timer (self->loop, (size_t)delay, 1, s_on_timer, self);
    self->timer_due = due;
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    keel_client_t *self = (keel_client_t *)arg;
    self->timer_id = -1;
    keel_client_process (self);
    return 0;
}

static int
s_on_readable (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    (void)sock;
    keel_client_process ((keel_client_t *)arg);
    return 0;
}

int
keel_client_attach (keel_client_t *self, zloop_t *loop)
{
    assert (!self->loop);
    self->loop = loop;
    if (zloop_reader (loop, self->sock, s_on_readable, self) == -1) {
        self->loop = NULL;
        return -1;
    }
    s_arm (self);
    return 0;
}

void
keel_client_detach (keel_client_t *self)
{
    if (!self->loop)
        return;
    if (self->sock)
        zloop_reader_end (self->loop, self->sock);
    if (self->timer_id != -1)
        zloop_timer_end (self->loop, self->timer_id);
    self->timer_id = -1;
    self->loop = NULL;
    zsock_destroy (&self->retired);
}

// ---------------------------------------------------------------------------
//  Sending

static void
s_envelope_init (keel_client_t *self, Keel__Envelope *env, const char *type,
                 const keel_call_opts_t *opts, Keel__Kind kind)
{
    keel__envelope__init (env);
    env->version = KEEL_WIRE_VERSION;
    env->kind = kind;
    env->type = (char *)type;
    env->sender = self->sender;
    if (self->service)
        env->service = self->service;
    if (opts && opts->trace_id)
        env->trace_id = (char *)opts->trace_id;
    if (opts && opts->idempotency_key)
        env->idempotency_key = (char *)opts->idempotency_key;
}

//  True when no request that may not be resent is waiting on the current
//  socket: a reset would then lose nothing.
static bool
s_reset_is_free (keel_client_t *self)
{
    for (size_t i = 0; i < self->heap_size; i++)
        if (!self->heap[i]->idempotent &&
            self->heap[i]->socket_gen == self->socket_gen)
            return false;
    return true;
}

//  Send a message without blocking; on success it is consumed. libzmq
//  refuses (EAGAIN) when the queue is full or there is no peer at all (a
//  vanished inproc server never comes back on the same socket): if a reset
//  loses nothing, reset and try once more. On failure the caller still owns
//  msg.
static int
s_send_msg (keel_client_t *self, zmq_msg_t *msg)
{
    for (int tries = 0; tries < 2; tries++) {
        if (zmq_msg_send (msg, self->handle, ZMQ_DONTWAIT) != -1) {
            self->stats.sent++;
            return 0;
        }
        if (errno != EAGAIN || tries > 0 || !s_reset_is_free (self))
            break;
        s_socket_reset (self);
    }
    self->stats.send_failed++;
    return -1;
}

//  Same with bytes that stay the caller's.
static int
s_send_frame (keel_client_t *self, const uint8_t *data, size_t size)
{
    zmq_msg_t msg;
    if (zmq_msg_init_size (&msg, size) != 0)
        return -1;
    memcpy (zmq_msg_data (&msg), data, size);
    int rc = s_send_msg (self, &msg);
    if (rc == -1)
        zmq_msg_close (&msg);
    return rc;
}

static uint64_t
s_request (keel_client_t *self, const char *type,
           const ProtobufCMessage *payload, const void *data, size_t size,
           const keel_call_opts_t *opts, keel_reply_fn *fn, void *arg)
{
    assert (fn);
    if (!keel_codec_type_ok (type)) {
        errno = EINVAL;
        return 0;
    }
    keel_call_opts_t none = {0};
    if (!opts)
        opts = &none;
    uint32_t timeout = opts->timeout_ms ? opts->timeout_ms : self->timeout_ms;
    int retries = opts->retries > 0                ? opts->retries
                  : opts->retries == KEEL_NO_RETRY ? 0
                                                   : self->retries;

    Keel__Envelope env;
    s_envelope_init (self, &env, type, opts, KEEL__KIND__REQUEST);
    env.correlation_id = self->next_id;
    env.timeout_ms = timeout;
    env.payload.data = (uint8_t *)data;
    env.payload.len = data ? size : 0;
    zmq_msg_t msg;
    if (keel_codec_msg (&msg, &env, payload, self->max_msg_size) == -1)
        return 0; //  errno: EMSGSIZE or ENOMEM
    s_pending_t *p = (s_pending_t *)calloc (1, sizeof (s_pending_t));
    if (!p) {
        zmq_msg_close (&msg);
        errno = ENOMEM;
        return 0;
    }
    int64_t now = keel_now_ms ();
    p->id = self->next_id++;
    p->fn = fn;
    p->arg = arg;
    p->deadline = now + timeout;
    p->timeout = timeout;
    p->idempotent = opts->idempotent;
    p->max_attempts = p->idempotent ? 1 + retries : 1;
    p->attempt_timeout =
        p->idempotent ? (opts->attempt_timeout_ms ? opts->attempt_timeout_ms
                                                  : self->attempt_timeout_ms)
                      : timeout;
    p->backoff_ms = self->backoff_initial_ms;
    if (p->idempotent) {
        //  Keep the frame to send it again.
        p->frame_size = zmq_msg_size (&msg);
        p->frame = (uint8_t *)malloc (p->frame_size);
        if (p->frame)
            memcpy (p->frame, zmq_msg_data (&msg), p->frame_size);
        else
            p->max_attempts = 1;
    }
    if (s_send_msg (self, &msg) == -1) {
        zmq_msg_close (&msg);
        if (!p->idempotent) {
            //  Never sent, so nothing happened: tell the caller now.
            s_pending_free (&p);
            errno = EHOSTUNREACH;
            return 0;
        }
        //  An idempotent request is retried by its timer.
    }
    p->attempts = 1;
    p->sent_ms = now;
    p->socket_gen = self->socket_gen;
    int64_t attempt_end = now + p->attempt_timeout;
    p->due = attempt_end < p->deadline ? attempt_end : p->deadline;
    if (s_heap_push (self, p) == -1) {
        s_pending_free (&p);
        errno = ENOMEM;
        return 0;
    }
    zhashx_insert (self->pending, &p->id, p);
    self->stats.requests++;
    s_arm (self);
    return p->id;
}

uint64_t
keel_client_request (keel_client_t *self, const char *type,
                     const ProtobufCMessage *payload,
                     const keel_call_opts_t *opts, keel_reply_fn *fn, void *arg)
{
    return s_request (self, type, payload, NULL, 0, opts, fn, arg);
}

uint64_t
keel_client_request_bytes (keel_client_t *self, const char *type,
                           const void *data, size_t size,
                           const keel_call_opts_t *opts, keel_reply_fn *fn,
                           void *arg)
{
    return s_request (self, type, NULL, data, size, opts, fn, arg);
}

static int
s_notify (keel_client_t *self, const char *type,
          const ProtobufCMessage *payload, const void *data, size_t size,
          const keel_call_opts_t *opts)
{
    if (!keel_codec_type_ok (type)) {
        errno = EINVAL;
        return -1;
    }
    Keel__Envelope env;
    s_envelope_init (self, &env, type, opts, KEEL__KIND__ONEWAY);
    env.payload.data = (uint8_t *)data;
    env.payload.len = data ? size : 0;
    if (keel_codec_send_limited (self->handle, &env, payload,
                                 self->max_msg_size, ZMQ_DONTWAIT) == -1) {
        if (errno != EMSGSIZE)
            self->stats.send_failed++;
        return -1;
    }
    self->stats.sent++;
    self->stats.notifies++;
    return 0;
}

int
keel_client_notify (keel_client_t *self, const char *type,
                    const ProtobufCMessage *payload,
                    const keel_call_opts_t *opts)
{
    return s_notify (self, type, payload, NULL, 0, opts);
}

int
keel_client_notify_bytes (keel_client_t *self, const char *type,
                          const void *data, size_t size,
                          const keel_call_opts_t *opts)
{
    return s_notify (self, type, NULL, data, size, opts);
}

int
keel_client_cancel (keel_client_t *self, uint64_t id)
{
    s_pending_t *p = (s_pending_t *)zhashx_lookup (self->pending, &id);
    if (!p)
        return -1;
    zhashx_delete (self->pending, &id);
    s_heap_remove (self, p);
    s_pending_free (&p);
    return 0;
}

// ---------------------------------------------------------------------------
//  Outcomes

//  Remove a pending request and call its callback.
static void
s_complete (keel_client_t *self, s_pending_t *p, keel_reply_t *reply)
{
    zhashx_delete (self->pending, &p->id);
    s_heap_remove (self, p);
    reply->id = p->id;
    reply->attempts = p->attempts;
    keel_reply_fn *fn = p->fn;
    void *arg = p->arg;
    s_pending_free (&p);
    fn (self, reply, arg);
}

static void
s_complete_local (keel_client_t *self, s_pending_t *p, int code,
                  const char *text)
{
    keel_reply_t reply = {0};
    reply.code = code;
    reply.text = text;
    s_complete (self, p, &reply);
}

//  Send the next attempt of an idempotent request.
static void
s_resend (keel_client_t *self, s_pending_t *p, int64_t now)
{
    //  Tell the server how much time is really left.
    Keel__Envelope *env =
        keel__envelope__unpack (NULL, p->frame_size, p->frame);
    if (env) {
        env->timeout_ms = (uint32_t)(p->deadline - now);
        size_t size = keel__envelope__get_packed_size (env);
        uint8_t *frame = (uint8_t *)malloc (size);
        if (frame) {
            keel__envelope__pack (env, frame);
            free (p->frame);
            p->frame = frame;
            p->frame_size = size;
        }
        keel__envelope__free_unpacked (env, NULL);
    }
    s_send_frame (self, p->frame, p->frame_size);
    p->attempts++;
    p->sent_ms = now;
    p->socket_gen = self->socket_gen;
    p->backing_off = false;
    self->stats.retries++;
    int64_t attempt_end = now + p->attempt_timeout;
    p->due = attempt_end < p->deadline ? attempt_end : p->deadline;
    s_heap_update (self, p);
}

//  The earliest request is due: decide what happens to it.
static int
s_expire (keel_client_t *self, s_pending_t *p, int64_t now)
{
    if (now >= p->deadline) {
        self->stats.timeouts++;
        char text[128];
        snprintf (text, sizeof text, "no reply within %u ms (%d attempt%s)",
                  p->timeout, p->attempts, p->attempts == 1 ? "" : "s");
        s_complete_local (self, p, KEEL_ERR_TIMEOUT, text);
        return 1;
    }
    if (p->backing_off) {
        s_resend (self, p, now);
        return 0;
    }
    //  An attempt timed out.
    if (p->attempts >= p->max_attempts) {
        p->due = p->deadline; //  no more attempts: wait out the deadline
        s_heap_update (self, p);
        return 0;
    }
    //  Nothing came back since it went out on the current socket: the
    //  connection is suspect (server gone or restarted). Lazy Pirate.
    if (p->socket_gen == self->socket_gen && self->last_reply_ms < p->sent_ms)
        s_socket_reset (self);
    int64_t jitter = p->backoff_ms / 4;
    int64_t wait = p->backoff_ms;
    if (jitter > 0)
        wait += (int64_t)(rand_r (&self->seed) % (2 * jitter + 1)) - jitter;
    p->backoff_ms = (int64_t)(p->backoff_ms * self->backoff_factor);
    if (p->backoff_ms > self->backoff_max_ms)
        p->backoff_ms = self->backoff_max_ms;
    p->backing_off = true;
    p->due = now + wait < p->deadline ? now + wait : p->deadline;
    s_heap_update (self, p);
    return 0;
}

//  One frame from the socket. Returns 1 if a callback ran.
static int
s_on_frame (keel_client_t *self, const void *data, size_t size, bool more)
{
    Keel__Envelope *env = NULL;
    const char *why = NULL;
    keel_err_t rc = more
                        ? KEEL_ERR_BAD_REQUEST
                        : keel_codec_decode (data, size, self->max_msg_size,
                                             keel_arena_allocator (self->arena),
                                             &env, &why, NULL);
    if (rc == KEEL_OK && env->kind != KEEL__KIND__REPLY) {
        rc = KEEL_ERR_BAD_REQUEST;
        why = "not a reply";
    }
    if (rc != KEEL_OK) {
        self->stats.malformed++;
        keel_log_limited (&self->log_bad, keel_now_ms (),
                          "keel: client %s: dropped a frame from %s: %s",
                          self->sender, self->endpoint,
                          why ? why : "multipart reply");
        return 0;
    }
    uint64_t id = env->correlation_id;
    s_pending_t *p = (s_pending_t *)zhashx_lookup (self->pending, &id);
    if (!p) {
        self->stats.stale++;
        return 0;
    }
    self->stats.replies++;
    keel_reply_t reply = {0};
    reply.code = env->error_code;
    reply.text = env->error_text ? env->error_text : "";
    reply.data = env->payload.data;
    reply.size = env->payload.len;
    reply.envelope = env;
    s_complete (self, p, &reply);
    return 1;
}

int
keel_client_process (keel_client_t *self)
{
    int calls = 0;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    //  Bounded so a flood of replies cannot starve the timers.
    for (int i = 0; i < 1000; i++) {
        if (zmq_msg_recv (&msg, self->handle, ZMQ_DONTWAIT) == -1) {
            if (errno != EAGAIN) {
                zmq_msg_close (&msg);
                return -1;
            }
            break;
        }
        self->last_reply_ms = keel_now_ms ();
        bool more = zmq_msg_more (&msg);
        calls +=
            s_on_frame (self, zmq_msg_data (&msg), zmq_msg_size (&msg), more);
        keel_arena_reset (self->arena);
        while (more) { //  drain the rest of a bad multipart message
            if (zmq_msg_recv (&msg, self->handle, 0) == -1)
                break;
            more = zmq_msg_more (&msg);
        }
    }
    zmq_msg_close (&msg);

    int64_t now = keel_now_ms ();
    while (self->heap_size && self->heap[0]->due <= now)
        calls += s_expire (self, self->heap[0], now);
    if (self->retired && !self->loop)
        zsock_destroy (&self->retired);
    s_arm (self);
    return calls;
}

int64_t
keel_client_timeout (keel_client_t *self)
{
    if (!self->heap_size)
        return -1;
    int64_t wait = self->heap[0]->due - keel_now_ms ();
    return wait > 0 ? wait : 0;
}

// ---------------------------------------------------------------------------
//  Blocking helper

typedef struct {
    bool done;                              //  outcome arrived
    int code;                               //  its code
    char *text;                             //  its error text
    const ProtobufCMessageDescriptor *desc; //  reply payload type
    ProtobufCMessage *msg;                  //  decoded payload
} s_call_t;

static void
s_call_done (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_call_t *call = (s_call_t *)arg;
    call->done = true;
    call->code = reply->code;
    if (reply->code != KEEL_OK)
        call->text = strdup (reply->text);
    else if (call->desc) {
        call->msg = protobuf_c_message_unpack (call->desc, NULL, reply->size,
                                               reply->data);
        if (!call->msg) {
            call->code = KEEL_ERR_BAD_REQUEST;
            call->text = strdup ("reply payload does not decode");
        }
    }
}

keel_err_t
keel_client_call (keel_client_t *self, const char *type,
                  const ProtobufCMessage *payload, const keel_call_opts_t *opts,
                  const ProtobufCMessageDescriptor *reply_desc,
                  ProtobufCMessage **reply_p, char **error_p)
{
    s_call_t call = {0};
    call.desc = reply_p ? reply_desc : NULL;
    if (reply_p)
        *reply_p = NULL;
    if (error_p)
        *error_p = NULL;
    uint64_t id =
        keel_client_request (self, type, payload, opts, s_call_done, &call);
    if (!id) {
        keel_err_t code = errno == EMSGSIZE ? KEEL_ERR_TOO_LARGE
                          : errno == EINVAL ? KEEL_ERR_INVALID_ARGUMENT
                                            : KEEL_ERR_UNAVAILABLE;
        if (error_p)
            *error_p = strdup (strerror (errno));
        return code;
    }
    while (!call.done) {
        zmq_pollitem_t item = {zsock_resolve (self->sock), 0, ZMQ_POLLIN, 0};
        int64_t wait = keel_client_timeout (self);
        int rc = zmq_poll (&item, 1, (long)wait);
        if (rc == -1 && (errno != EINTR || zsys_interrupted)) {
            keel_client_cancel (self, id);
            call.code = KEEL_ERR_UNAVAILABLE;
            call.text = strdup ("interrupted");
            break;
        }
        if (keel_client_process (self) == -1 && !call.done) {
            keel_client_cancel (self, id);
            call.code = KEEL_ERR_UNAVAILABLE;
            call.text = strdup ("socket closed");
            break;
        }
    }
    if (reply_p)
        *reply_p = call.msg;
    else if (call.msg)
        protobuf_c_message_free_unpacked (call.msg, NULL);
    if (error_p)
        *error_p = call.text;
    else
        free (call.text);
    return (keel_err_t)call.code;
}
