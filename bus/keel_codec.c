/*  keel_codec.c - envelope encode/decode, arena allocator. See keel_codec.h. */
#include "keel_codec.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

// ---------------------------------------------------------------------------
//  Arena: one inline block for the common case, heap spills for big payloads.

#define ARENA_BLOCK 8192

struct _keel_arena_t {
    ProtobufCAllocator allocator; //  allocator_data points back here
    size_t used;                  //  bytes of block handed out
    void **spills;                //  heap allocations too big for the block
    size_t spill_count;           //  used entries in spills
    size_t spill_cap;             //  capacity of spills
    int fail_after;               //  fault injection: fail the Nth alloc
    _Alignas(16) unsigned char block[ARENA_BLOCK];
};

//  Every allocation is preceded by a 16-byte header holding its size, so
//  the decoder can tell a string's wire length from its C length.
#define ARENA_HEADER 16

static void *
s_arena_alloc (void *data, size_t size)
{
    keel_arena_t *self = (keel_arena_t *)data;
    if (self->fail_after > 0 && --self->fail_after == 0)
        return NULL;
    size_t rounded = (size + ARENA_HEADER + 15) & ~(size_t)15;
    if (rounded > size && rounded <= ARENA_BLOCK - self->used) {
        unsigned char *ptr = self->block + self->used;
        self->used += rounded;
        *(size_t *)ptr = size;
        return ptr + ARENA_HEADER;
    }
    if (self->spill_count == self->spill_cap) {
        size_t cap = self->spill_cap ? self->spill_cap * 2 : 8;
        void **spills = (void **)realloc (self->spills, cap * sizeof (void *));
        if (!spills)
            return NULL;
        self->spills = spills;
        self->spill_cap = cap;
    }
    if (size > SIZE_MAX - ARENA_HEADER)
        return NULL;
    unsigned char *ptr = (unsigned char *)malloc (size + ARENA_HEADER);
    if (!ptr)
        return NULL;
    self->spills[self->spill_count++] = ptr;
    *(size_t *)ptr = size;
    return ptr + ARENA_HEADER;
}

//  Size asked for when `ptr` was allocated from an arena.
static size_t
s_arena_size_of (const void *ptr)
{
    return *(const size_t *)((const unsigned char *)ptr - ARENA_HEADER);
}

static void
s_arena_free (void *data, void *ptr)
{
    //  Memory returns all at once with keel_arena_reset.
    (void)data;
    (void)ptr;
}

keel_arena_t *
keel_arena_new (void)
{
    keel_arena_t *self = (keel_arena_t *)calloc (1, sizeof (keel_arena_t));
    if (!self)
        return NULL;
    self->allocator.alloc = s_arena_alloc;
    self->allocator.free = s_arena_free;
    self->allocator.allocator_data = self;
    return self;
}

void
keel_arena_destroy (keel_arena_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        keel_arena_reset (*self_p);
        free ((*self_p)->spills);
        free (*self_p);
        *self_p = NULL;
    }
}

void
keel_arena_reset (keel_arena_t *self)
{
    for (size_t i = 0; i < self->spill_count; i++)
        free (self->spills[i]);
    self->spill_count = 0;
    self->used = 0;
}

ProtobufCAllocator *
keel_arena_allocator (keel_arena_t *self)
{
    return &self->allocator;
}

void
keel_arena_fail_after (keel_arena_t *self, int n)
{
    self->fail_after = n;
}

// ---------------------------------------------------------------------------
//  Decode

bool
keel_codec_type_ok (const char *type)
{
    if (!type || !*type)
        return false;
    size_t len = 0;
    for (const char *c = type; *c; c++, len++) {
        if (len >= KEEL_MAX_NAME_LEN)
            return false;
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
                  *c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool
s_len_ok (const char *s, size_t max)
{
    return s == NULL || strnlen (s, max + 1) <= max;
}

//  protobuf-c keeps a string's bytes after an embedded NUL, which C never
//  sees: "a\0b" and "a\0c" would look alike. It allocates len + 1 bytes per
//  string, so from an arena the wire length is known and compared cheaply;
//  from another allocator, packing again (which uses strlen) tells.
static bool
s_strings_whole (const Keel__Envelope *env, ProtobufCAllocator *alloc,
                 size_t size)
{
    if (!alloc || alloc->alloc != s_arena_alloc)
        return keel__envelope__get_packed_size (env) == size;
    const char *strings[] = {
        env->type,     env->sender,          env->service,
        env->trace_id, env->idempotency_key, env->error_text};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        const char *str = strings[i];
        if (!str || str == protobuf_c_empty_string)
            continue;
        size_t wire = s_arena_size_of (str) - 1;
        if (strnlen (str, wire) != wire)
            return false;
    }
    return true;
}

//  protobuf-c keeps unknown fields to write them back as they came, but it
//  accepts field number 0, which no encoder may write: an overlong tag
//  decodes to it, and the message it re-encodes to is refused on the next
//  decode. Refuse it at the first.
static bool
s_unknown_ok (const ProtobufCMessage *msg)
{
    for (unsigned i = 0; i < msg->n_unknown_fields; i++)
        if (msg->unknown_fields[i].tag == 0)
            return false;
    return true;
}

keel_err_t
keel_codec_decode (const void *data, size_t size, size_t max_size,
                   ProtobufCAllocator *alloc, Keel__Envelope **env_p,
                   const char **why_p, uint64_t *correlation_p)
{
    if (correlation_p)
        *correlation_p = 0;
    assert (env_p);
    assert (why_p);
    *env_p = NULL;
    *why_p = NULL;
    if (max_size && size > max_size) {
        *why_p = "frame over the size limit";
        return KEEL_ERR_TOO_LARGE;
    }
    if (size == 0) {
        //  protobuf-c decodes an empty buffer as an empty message.
        *why_p = "empty frame";
        return KEEL_ERR_BAD_REQUEST;
    }
    Keel__Envelope *env =
        keel__envelope__unpack (alloc, size, (const uint8_t *)data);
    if (!env) {
        *why_p = "frame is not a keel envelope";
        return KEEL_ERR_BAD_REQUEST;
    }
    const char *why = NULL;
    if (!s_unknown_ok (&env->base))
        why = "field number 0";
    else if (!s_strings_whole (env, alloc, size))
        why = "NUL inside a string field";
    else if (env->version != KEEL_WIRE_VERSION)
        why = "unsupported envelope version";
    else if (env->kind < KEEL__KIND__REQUEST || env->kind > KEEL__KIND__ONEWAY)
        why = "invalid envelope kind";
    else if (!keel_codec_type_ok (env->type))
        why = "invalid message type";
    else if (!s_len_ok (env->sender, KEEL_MAX_NAME_LEN) ||
             !s_len_ok (env->service, KEEL_MAX_NAME_LEN) ||
             !s_len_ok (env->trace_id, KEEL_MAX_NAME_LEN))
        why = "name field too long";
    else if (!s_len_ok (env->idempotency_key, KEEL_MAX_KEY_LEN))
        why = "idempotency key too long";
    else if (!s_len_ok (env->error_text, KEEL_MAX_TEXT_LEN))
        why = "error text too long";
    else if (env->kind != KEEL__KIND__REPLY && env->error_code != 0)
        why = "error code outside a reply";
    if (why) {
        if (correlation_p)
            *correlation_p = env->correlation_id;
        keel__envelope__free_unpacked (env, alloc);
        *why_p = why;
        return KEEL_ERR_BAD_REQUEST;
    }
    *env_p = env;
    return KEEL_OK;
}

ProtobufCMessage *
keel_codec_payload (const Keel__Envelope *env,
                    const ProtobufCMessageDescriptor *desc,
                    ProtobufCAllocator *alloc)
{
    assert (env);
    assert (desc);
    ProtobufCMessage *msg = protobuf_c_message_unpack (
        desc, alloc, env->payload.len, env->payload.data);
    if (msg && !s_unknown_ok (msg)) {
        protobuf_c_message_free_unpacked (msg, alloc);
        msg = NULL;
    }
    return msg;
}

// ---------------------------------------------------------------------------
//  Encode

//  Field 15, wire type 2 (length-delimited): (15 << 3) | 2.
#define PAYLOAD_TAG 0x7A

static size_t
s_varint_size (size_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t
s_varint_put (uint8_t *out, size_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static size_t
s_total_size (const Keel__Envelope *env, const ProtobufCMessage *payload,
              size_t *payload_size_p)
{
    size_t size = keel__envelope__get_packed_size (env);
    *payload_size_p = 0;
    if (payload) {
        assert (env->payload.len == 0);
        *payload_size_p = protobuf_c_message_get_packed_size (payload);
        //  An empty payload is omitted, as proto3 omits empty bytes.
        if (*payload_size_p)
            size += 1 + s_varint_size (*payload_size_p) + *payload_size_p;
    }
    return size;
}

static void
s_pack_into (const Keel__Envelope *env, const ProtobufCMessage *payload,
             size_t payload_size, uint8_t *out)
{
    size_t n = keel__envelope__pack (env, out);
    if (payload && payload_size) {
        out[n++] = PAYLOAD_TAG;
        n += s_varint_put (out + n, payload_size);
        protobuf_c_message_pack (payload, out + n);
    }
}

int
keel_codec_send (void *handle, const Keel__Envelope *env,
                 const ProtobufCMessage *payload, int flags)
{
    return keel_codec_send_limited (handle, env, payload, 0, flags);
}

int
keel_codec_msg (zmq_msg_t *msg, const Keel__Envelope *env,
                const ProtobufCMessage *payload, size_t max_size)
{
    assert (env);
    size_t payload_size;
    size_t size = s_total_size (env, payload, &payload_size);
    if (max_size && size > max_size) {
        errno = EMSGSIZE;
        return -1;
    }
    if (zmq_msg_init_size (msg, size) != 0)
        return -1;
    s_pack_into (env, payload, payload_size, (uint8_t *)zmq_msg_data (msg));
    return 0;
}

int
keel_codec_send_limited (void *handle, const Keel__Envelope *env,
                         const ProtobufCMessage *payload, size_t max_size,
                         int flags)
{
    assert (handle);
    zmq_msg_t msg;
    if (keel_codec_msg (&msg, env, payload, max_size) == -1)
        return -1;
    if (zmq_msg_send (&msg, handle, flags) == -1) {
        int err = errno;
        zmq_msg_close (&msg);
        errno = err;
        return -1;
    }
    return 0;
}

zframe_t *
keel_codec_frame (const Keel__Envelope *env, const ProtobufCMessage *payload)
{
    size_t payload_size;
    size_t size = s_total_size (env, payload, &payload_size);
    zframe_t *frame = zframe_new (NULL, size);
    if (frame)
        s_pack_into (env, payload, payload_size, zframe_data (frame));
    return frame;
}

int
keel_codec_pack (const ProtobufCMessage *msg, uint8_t **data_p, size_t *size_p)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    uint8_t *data = (uint8_t *)malloc (size ? size : 1);
    if (!data)
        return -1;
    protobuf_c_message_pack (msg, data);
    *data_p = data;
    *size_p = size;
    return 0;
}

ProtobufCMessage *
keel_codec_copy (const ProtobufCMessage *msg)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (keel_codec_pack (msg, &data, &size) == -1)
        return NULL;
    ProtobufCMessage *copy =
        protobuf_c_message_unpack (msg->descriptor, NULL, size, data);
    free (data);
    return copy;
}

void
keel_codec_socket_setup (zsock_t *sock, size_t max_size)
{
    zsock_set_maxmsgsize (sock,
                          max_size && max_size <= INT_MAX ? (int)max_size : -1);
    //  Requests in flight and replies owed are bounded by the callers'
    //  deadlines, not by ZeroMQ's default of 1000 queued messages.
    zsock_set_sndhwm (sock, KEEL_SOCKET_HWM);
    zsock_set_rcvhwm (sock, KEEL_SOCKET_HWM);
    //  Short linger: a reply or one-way message sent just before a close is
    //  still delivered, yet shutdown never hangs on a dead peer.
    zsock_set_linger (sock, 100);
}
