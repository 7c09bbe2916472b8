/*  keel_codec.h - the one envelope codec: encode, send, receive, decode, check.

    Every keel socket carries keel.Envelope (schemas/envelope.proto). This is
    the only code that packs or unpacks one. Decoding goes through an arena
    (a bump allocator handed to protobuf-c) so the hot path does no malloc:
    reset the arena after each message is handled.

        +-------------------------- zmq_msg_t ---------------------------+
        | envelope fields 1..12 | tag 15 | varint len | payload message  |
        +----------------------------------------------------------------+
    keel_codec_send writes a typed payload straight into the frame, with
    no intermediate buffer; a reader sees an ordinary Envelope.
*/
#ifndef KEEL_CODEC_H_INCLUDED
#define KEEL_CODEC_H_INCLUDED

#include "keel_common.h"
#include "envelope.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Wire version this code speaks (Envelope.version).
#define KEEL_WIRE_VERSION 1

//  Bounds on envelope strings. Longer is BAD_REQUEST.
#define KEEL_MAX_NAME_LEN 128  //  type, sender, service, trace_id
#define KEEL_MAX_KEY_LEN  256  //  idempotency_key
#define KEEL_MAX_TEXT_LEN 4096 //  error_text

// ---------------------------------------------------------------------------
//  keel_arena: bump allocator for decoding

typedef struct _keel_arena_t keel_arena_t;

//  Create an arena. Caller owns it and destroys it with keel_arena_destroy.
//  Returns NULL if out of memory.
keel_arena_t *keel_arena_new (void);

//  Destroy an arena and everything allocated from it; nulls *self_p.
void keel_arena_destroy (keel_arena_t **self_p);

//  Forget every allocation at once; memory is reused by the next decode.
void keel_arena_reset (keel_arena_t *self);

//  The protobuf-c allocator view of the arena (borrowed).
ProtobufCAllocator *keel_arena_allocator (keel_arena_t *self);

//  Make the Nth allocation from now fail (1 = the next one); 0 disables.
//  For tests of allocation failure.
void keel_arena_fail_after (keel_arena_t *self, int n);

// ---------------------------------------------------------------------------
//  Decode and check

//  Decode `size` bytes into an envelope allocated from `alloc` (NULL =
//  protobuf-c's default malloc allocator; then free the result with
//  keel__envelope__free_unpacked). Checks meaning, not only syntax: version,
//  kind, type and string bounds, and no NUL inside a string (which C would
//  silently cut short). An allocation failure is reported as BAD_REQUEST
//  too. `max_size` 0 means no limit.
//  Returns KEEL_OK and sets *env_p, or an error (TOO_LARGE, BAD_REQUEST)
//  with *env_p NULL and *why_p a static reason. When the frame parsed but
//  failed the checks, *correlation_p (if not NULL) gets its correlation id
//  so the error can still be answered; otherwise it is set to 0.
keel_err_t keel_codec_decode (const void *data, size_t size, size_t max_size,
                              ProtobufCAllocator *alloc, Keel__Envelope **env_p,
                              const char **why_p, uint64_t *correlation_p);

//  Decode the payload of `env` as the message described by `desc`, from
//  `alloc`. Returns the message (owned by the allocator) or NULL when the
//  payload does not decode. Callers still validate the fields' meaning.
ProtobufCMessage *keel_codec_payload (const Keel__Envelope *env,
                                      const ProtobufCMessageDescriptor *desc,
                                      ProtobufCAllocator *alloc);

//  Return true if `type` is a well-formed message type: 1..KEEL_MAX_NAME_LEN
//  characters of [A-Za-z0-9._-].
bool keel_codec_type_ok (const char *type);

// ---------------------------------------------------------------------------
//  Encode and send

//  Pack `env` into one frame and send it on the libzmq socket `handle`
//  (zsock_resolve of a zsock_t). If `payload` is not NULL it is packed as
//  the envelope's payload field (env->payload must then be empty), without a
//  copy. `flags` are zmq_send flags (ZMQ_SNDMORE, ZMQ_DONTWAIT).
//  Returns 0, or -1 with errno set by libzmq.
int keel_codec_send (void *handle, const Keel__Envelope *env,
                     const ProtobufCMessage *payload, int flags);

//  Same, refusing (errno EMSGSIZE, nothing sent) a frame larger than
//  `max_size` bytes (0 = no limit). The size is computed once.
int keel_codec_send_limited (void *handle, const Keel__Envelope *env,
                             const ProtobufCMessage *payload, size_t max_size,
                             int flags);

//  Pack `env` (and `payload`) into `msg`, which must not be initialised yet;
//  on success the caller owns it (zmq_msg_send or zmq_msg_close). Returns 0,
//  or -1 with errno EMSGSIZE (over max_size, 0 = no limit) or ENOMEM, msg
//  then left uninitialised.
int keel_codec_msg (zmq_msg_t *msg, const Keel__Envelope *env,
                    const ProtobufCMessage *payload, size_t max_size);

//  Pack `env` (and `payload` as above) into a new frame. Caller owns the
//  result. Returns NULL if out of memory.
zframe_t *keel_codec_frame (const Keel__Envelope *env,
                            const ProtobufCMessage *payload);

//  Pack a payload message into a new heap buffer. Caller owns *data_p and
//  frees it with free(). Returns 0, or -1 if out of memory.
int keel_codec_pack (const ProtobufCMessage *msg, uint8_t **data_p,
                     size_t *size_p);

//  A deep copy of `msg` through the wire format (pack, then unpack with
//  its own descriptor). Caller frees it with protobuf_c_message_free_unpacked
//  (copy, NULL). NULL if out of memory.
ProtobufCMessage *keel_codec_copy (const ProtobufCMessage *msg);

//  Messages a keel socket queues per peer before refusing more.
#define KEEL_SOCKET_HWM 100000

//  Set the ZeroMQ options every keel socket that faces a peer needs:
//  ZMQ_MAXMSGSIZE (max_size, 0 = unlimited), high-water marks of
//  KEEL_SOCKET_HWM, and a linger of 100 ms.
void keel_codec_socket_setup (zsock_t *sock, size_t max_size);

#ifdef __cplusplus
}
#endif

#endif
