/*  keel_events.c - sequenced publish/subscribe. See keel_events.h. */
#include "keel_events.h"
#include "keel_security.h"

#include <errno.h>
#include <string.h>

struct _keel_publisher_t {
    char *sender;      //  envelope.sender
    zsock_t *sock;     //  PUB
    void *handle;      //  its libzmq handle
    char *endpoint;    //  last bound endpoint, resolved
    uint64_t sequence; //  last sequence published
};

keel_publisher_t *
keel_publisher_new (const char *sender)
{
    assert (sender);
    keel_publisher_t *self =
        (keel_publisher_t *)calloc (1, sizeof (keel_publisher_t));
    if (!self)
        return NULL;
    self->sender = strdup (sender);
    self->sock = zsock_new (ZMQ_PUB);
    if (!self->sender || !self->sock) {
        keel_publisher_destroy (&self);
        return NULL;
    }
    keel_codec_socket_setup (self->sock, 0);
    self->handle = zsock_resolve (self->sock);
    return self;
}

void
keel_publisher_destroy (keel_publisher_t **self_p)
{
    assert (self_p);
    keel_publisher_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->sock);
    free (self->sender);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

int
keel_publisher_bind (keel_publisher_t *self, const char *endpoint)
{
    int rc = keel_security_bind (self->sock, endpoint);
    if (rc == -1)
        return -1;
    free (self->endpoint);
    char *last = zsock_last_endpoint (self->sock);
    self->endpoint = last ? last : strdup (endpoint);
    return rc;
}

int
keel_publisher_connect (keel_publisher_t *self, const char *endpoint)
{
    return keel_security_connect (self->sock, endpoint);
}

const char *
keel_publisher_endpoint (keel_publisher_t *self)
{
    return self->endpoint;
}

uint64_t
keel_publisher_sequence (keel_publisher_t *self)
{
    return self->sequence;
}

uint64_t
keel_publisher_publish (keel_publisher_t *self, const char *type,
                        const ProtobufCMessage *payload)
{
    if (!keel_codec_type_ok (type))
        return 0;
    Keel__Envelope env;
    keel__envelope__init (&env);
    env.version = KEEL_WIRE_VERSION;
    env.kind = KEEL__KIND__EVENT;
    env.type = (char *)type;
    env.sender = self->sender;
    env.sequence = self->sequence + 1;
    //  PUB never blocks; at the high-water mark ZeroMQ drops and the
    //  sequence numbers let subscribers notice.
    if (zmq_send (self->handle, type, strlen (type), ZMQ_SNDMORE) == -1 ||
        keel_codec_send (self->handle, &env, payload, 0) == -1)
        return 0;
    return ++self->sequence;
}

// ---------------------------------------------------------------------------

struct _keel_subscriber_t {
    zsock_t *sock;                 //  SUB
    void *handle;                  //  its libzmq handle
    size_t max_msg_size;           //  frame limit
    zhashx_t *last;                //  sender -> last sequence + 1 (as ptr)
    keel_arena_t *arena;           //  decode arena
    keel_event_t event;            //  last event returned
    keel_subscriber_stats_t stats; //  counters
    keel_ratelimit_t log_bad;      //  malformed frames
};

keel_subscriber_t *
keel_subscriber_new (void)
{
    keel_subscriber_t *self =
        (keel_subscriber_t *)calloc (1, sizeof (keel_subscriber_t));
    if (!self)
        return NULL;
    self->sock = zsock_new (ZMQ_SUB);
    self->last = zhashx_new ();
    self->arena = keel_arena_new ();
    if (!self->sock || !self->last || !self->arena) {
        keel_subscriber_destroy (&self);
        return NULL;
    }
    self->handle = zsock_resolve (self->sock);
    keel_subscriber_set_max_msg_size (self, KEEL_DEFAULT_MAX_MSG_SIZE);
    return self;
}

void
keel_subscriber_destroy (keel_subscriber_t **self_p)
{
    assert (self_p);
    keel_subscriber_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->sock);
    zhashx_destroy (&self->last);
    keel_arena_destroy (&self->arena);
    free (self);
    *self_p = NULL;
}

int
keel_subscriber_connect (keel_subscriber_t *self, const char *endpoint)
{
    return keel_security_connect (self->sock, endpoint);
}

void
keel_subscriber_subscribe (keel_subscriber_t *self, const char *prefix)
{
    zsock_set_subscribe (self->sock, prefix ? prefix : "");
}

void
keel_subscriber_set_max_msg_size (keel_subscriber_t *self, size_t max_size)
{
    self->max_msg_size = max_size;
    keel_codec_socket_setup (self->sock, max_size);
}

void
keel_subscriber_expect (keel_subscriber_t *self, const char *sender,
                        uint64_t sequence)
{
    zhashx_update (self->last, sender, (void *)(uintptr_t)(sequence + 1));
}

zsock_t *
keel_subscriber_sock (keel_subscriber_t *self)
{
    return self->sock;
}

const keel_subscriber_stats_t *
keel_subscriber_stats (keel_subscriber_t *self)
{
    return &self->stats;
}

//  Read one whole message: [topic][envelope]. Returns the envelope decoded
//  into the arena, NULL for a malformed message, and sets *failed when the
//  socket itself failed or nothing came in time.
static Keel__Envelope *
s_read (keel_subscriber_t *self, int timeout_ms, bool *failed)
{
    *failed = false;
    if (timeout_ms != 0) {
        zmq_pollitem_t item = {self->handle, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, timeout_ms) <= 0) {
            *failed = true;
            return NULL;
        }
    }
    zmq_msg_t topic, body;
    zmq_msg_init (&topic);
    zmq_msg_init (&body);
    Keel__Envelope *env = NULL;
    if (zmq_msg_recv (&topic, self->handle, ZMQ_DONTWAIT) == -1) {
        *failed = true;
        goto done;
    }
    bool shape_ok = zmq_msg_more (&topic);
    if (shape_ok) {
        if (zmq_msg_recv (&body, self->handle, 0) == -1) {
            *failed = true;
            goto done;
        }
        shape_ok = !zmq_msg_more (&body);
        while (zmq_msg_more (&body))
            if (zmq_msg_recv (&body, self->handle, 0) == -1)
                break;
    }
    const char *why = "not [type][envelope]";
    if (shape_ok && keel_codec_decode (zmq_msg_data (&body),
                                       zmq_msg_size (&body), self->max_msg_size,
                                       keel_arena_allocator (self->arena), &env,
                                       &why, NULL) == KEEL_OK) {
        size_t topic_len = zmq_msg_size (&topic);
        if (env->kind != KEEL__KIND__EVENT || !env->sender || !*env->sender ||
            strlen (env->type) != topic_len ||
            memcmp (env->type, zmq_msg_data (&topic), topic_len) != 0) {
            why = "topic and envelope disagree";
            env = NULL;
        }
    }
    if (!env) {
        self->stats.malformed++;
        keel_log_limited (&self->log_bad, keel_now_ms (),
                          "keel: subscriber dropped a malformed event: %s",
                          why);
    }
done:
    zmq_msg_close (&topic);
    zmq_msg_close (&body);
    return env;
}

const keel_event_t *
keel_subscriber_recv (keel_subscriber_t *self, int timeout_ms)
{
    int64_t deadline = timeout_ms > 0 ? keel_now_ms () + timeout_ms : 0;
    while (true) {
        keel_arena_reset (self->arena);
        bool failed;
        Keel__Envelope *env = s_read (self, timeout_ms, &failed);
        if (failed)
            return NULL;
        if (env) {
            uintptr_t stored =
                (uintptr_t)zhashx_lookup (self->last, env->sender);
            uint64_t last = stored ? stored - 1 : 0;
            bool known = stored != 0;
            self->event.gap = false;
            self->event.reset = false;
            if (known && env->sequence <= last && env->sequence != 1)
                self->stats.stale++;
            else {
                if (known && env->sequence <= last)
                    self->event.reset = true;
                else if (known && env->sequence > last + 1)
                    self->event.gap = true;
                else if (!known && env->sequence > 1)
                    self->event.gap = true; //  joined late: state missing
                if (self->event.gap)
                    self->stats.gaps++;
                zhashx_update (self->last, env->sender,
                               (void *)(uintptr_t)(env->sequence + 1));
                self->stats.delivered++;
                self->event.envelope = env;
                return &self->event;
            }
        }
        if (timeout_ms > 0) {
            timeout_ms = (int)(deadline - keel_now_ms ());
            if (timeout_ms <= 0)
                return NULL;
        }
    }
}
