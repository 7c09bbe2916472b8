/*  test_codec.c - keel_codec: envelope round trip, typed payloads, sockets,
    malformed input, allocation failure, the arena, error names, log limiter.
    Public API only. */
#include "keel_codec.h"
#include "echo.pb-c.h"
#include "testutil.h"

#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define CORRELATION_ID 0xF00DFACEDEADBEEFULL

// ---------------------------------------------------------------------------
//  Helpers

//  A string of `len` copies of `c`; caller frees.
static char *
s_repeat (char c, size_t len)
{
    char *s = (char *)malloc (len + 1);
    ck_assert_ptr_nonnull (s);
    memset (s, c, len);
    s[len] = '\0';
    return s;
}

//  Fill `env` with every field a REQUEST may carry. The strings are static.
static void
s_full_request (Keel__Envelope *env, const uint8_t *payload, size_t size)
{
    keel__envelope__init (env);
    env->version = KEEL_WIRE_VERSION;
    env->kind = KEEL__KIND__REQUEST;
    env->type = (char *)"echo.say";
    env->correlation_id = CORRELATION_ID;
    env->sender = (char *)"client-7";
    env->service = (char *)"echo";
    env->timeout_ms = 2500;
    env->trace_id = (char *)"trace-0123456789abcdef";
    env->idempotency_key = (char *)"order-42:charge";
    env->payload.data = (uint8_t *)payload;
    env->payload.len = size;
}

//  A minimal valid REQUEST.
static void
s_min_request (Keel__Envelope *env)
{
    keel__envelope__init (env);
    env->version = KEEL_WIRE_VERSION;
    env->kind = KEEL__KIND__REQUEST;
    env->type = (char *)"echo.say";
    env->correlation_id = CORRELATION_ID;
}

static void
s_assert_envelope_eq (const Keel__Envelope *got, const Keel__Envelope *want)
{
    ck_assert_uint_eq (got->version, want->version);
    ck_assert_int_eq (got->kind, want->kind);
    ck_assert_str_eq (got->type, want->type);
    ck_assert (got->correlation_id == want->correlation_id);
    ck_assert_str_eq (got->sender, want->sender);
    ck_assert_str_eq (got->service, want->service);
    ck_assert_uint_eq (got->timeout_ms, want->timeout_ms);
    ck_assert_str_eq (got->trace_id, want->trace_id);
    ck_assert_str_eq (got->idempotency_key, want->idempotency_key);
    ck_assert (got->sequence == want->sequence);
    ck_assert_int_eq (got->error_code, want->error_code);
    ck_assert_str_eq (got->error_text, want->error_text);
    ck_assert_uint_eq (got->payload.len, want->payload.len);
    if (want->payload.len)
        ck_assert_mem_eq (got->payload.data, want->payload.data,
                          want->payload.len);
}

//  What keel_codec_decode promises about every envelope it accepts.
static void
s_assert_meaningful (const Keel__Envelope *env)
{
    ck_assert_ptr_nonnull (env);
    ck_assert_uint_eq (env->version, KEEL_WIRE_VERSION);
    ck_assert_int_ge (env->kind, KEEL__KIND__REQUEST);
    ck_assert_int_le (env->kind, KEEL__KIND__ONEWAY);
    ck_assert (keel_codec_type_ok (env->type));
    ck_assert_uint_le (strlen (env->sender), KEEL_MAX_NAME_LEN);
    ck_assert_uint_le (strlen (env->service), KEEL_MAX_NAME_LEN);
    ck_assert_uint_le (strlen (env->trace_id), KEEL_MAX_NAME_LEN);
    ck_assert_uint_le (strlen (env->idempotency_key), KEEL_MAX_KEY_LEN);
    ck_assert_uint_le (strlen (env->error_text), KEEL_MAX_TEXT_LEN);
    if (env->kind != KEEL__KIND__REPLY)
        ck_assert_int_eq (env->error_code, 0);
}

//  Decode `data` from an arena, and check the outcome is consistent: OK with
//  a meaningful envelope, or an error with no envelope and a reason.
//  Returns the code; resets the arena.
static keel_err_t
s_decode_checked (keel_arena_t *arena, const void *data, size_t size)
{
    Keel__Envelope *env = (Keel__Envelope *)&env; //  poison
    const char *why = "poison";
    uint64_t corr = 1;
    keel_err_t rc = keel_codec_decode (
        data, size, 0, keel_arena_allocator (arena), &env, &why, &corr);
    if (rc == KEEL_OK) {
        s_assert_meaningful (env);
        ck_assert_ptr_null (why);
    } else {
        ck_assert_int_eq (rc, KEEL_ERR_BAD_REQUEST);
        ck_assert_ptr_null (env);
        ck_assert_ptr_nonnull (why);
    }
    keel_arena_reset (arena);
    return rc;
}

//  Pack `env` and expect decode to reject it with `code`; returns the frame's
//  reported correlation id.
static uint64_t
s_expect_rejected (const Keel__Envelope *env, keel_err_t code,
                   const char *why_want)
{
    zframe_t *frame = keel_codec_frame (env, NULL);
    ck_assert_ptr_nonnull (frame);
    Keel__Envelope *out = (Keel__Envelope *)&out; //  poison
    const char *why = NULL;
    uint64_t corr = 12345;
    keel_err_t rc = keel_codec_decode (zframe_data (frame), zframe_size (frame),
                                       0, NULL, &out, &why, &corr);
    ck_assert_int_eq (rc, code);
    ck_assert_ptr_null (out);
    ck_assert_ptr_nonnull (why);
    if (why_want)
        ck_assert_str_eq (why, why_want);

    //  The same through an arena, and with no correlation_p at all.
    keel_arena_t *arena = keel_arena_new ();
    ck_assert_ptr_nonnull (arena);
    why = NULL;
    rc = keel_codec_decode (zframe_data (frame), zframe_size (frame), 0,
                            keel_arena_allocator (arena), &out, &why, NULL);
    ck_assert_int_eq (rc, code);
    ck_assert_ptr_null (out);
    ck_assert_ptr_nonnull (why);
    keel_arena_destroy (&arena);
    zframe_destroy (&frame);
    return corr;
}

// ---------------------------------------------------------------------------
//  Round trip

START_TEST (test_round_trip_arena)
{
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7);
    Keel__Envelope env;
    s_full_request (&env, payload, sizeof payload);
    zframe_t *frame = keel_codec_frame (&env, NULL);
    ck_assert_ptr_nonnull (frame);
    ck_assert_uint_eq (zframe_size (frame),
                       keel__envelope__get_packed_size (&env));

    keel_arena_t *arena = keel_arena_new ();
    ck_assert_ptr_nonnull (arena);
    for (int round = 0; round < 3; round++) {
        Keel__Envelope *out = NULL;
        const char *why = "poison";
        uint64_t corr = 1;
        keel_err_t rc = keel_codec_decode (
            zframe_data (frame), zframe_size (frame), KEEL_DEFAULT_MAX_MSG_SIZE,
            keel_arena_allocator (arena), &out, &why, &corr);
        ck_assert_int_eq (rc, KEEL_OK);
        ck_assert_ptr_null (why);
        ck_assert (corr == 0);
        ck_assert_ptr_nonnull (out);
        s_assert_envelope_eq (out, &env);
        keel_arena_reset (arena);
    }
    keel_arena_destroy (&arena);
    ck_assert_ptr_null (arena);
    keel_arena_destroy (&arena);
    zframe_destroy (&frame);
}
END_TEST

START_TEST (test_round_trip_malloc)
{
    const uint8_t payload[] = {0, 1, 2, 0xff, 0x80, 0};
    Keel__Envelope env;
    s_full_request (&env, payload, sizeof payload);
    zframe_t *frame = keel_codec_frame (&env, NULL);
    ck_assert_ptr_nonnull (frame);
    Keel__Envelope *out = NULL;
    const char *why = NULL;
    keel_err_t rc = keel_codec_decode (zframe_data (frame), zframe_size (frame),
                                       0, NULL, &out, &why, NULL);
    ck_assert_int_eq (rc, KEEL_OK);
    ck_assert_ptr_nonnull (out);
    s_assert_envelope_eq (out, &env);
    keel__envelope__free_unpacked (out, NULL);
    zframe_destroy (&frame);
}
END_TEST

START_TEST (test_round_trip_reply_and_event)
{
    //  The fields a REQUEST may not carry: error code and text on a REPLY,
    //  sequence on an EVENT.
    Keel__Envelope env;
    s_full_request (&env, NULL, 0);
    env.kind = KEEL__KIND__REPLY;
    env.error_code = KEEL__ERROR_CODE__CONFLICT;
    env.error_text = (char *)"already shipped";
    zframe_t *frame = keel_codec_frame (&env, NULL);
    Keel__Envelope *out = NULL;
    const char *why = NULL;
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, NULL, &out,
                                         &why, NULL),
                      KEEL_OK);
    s_assert_envelope_eq (out, &env);
    keel__envelope__free_unpacked (out, NULL);
    zframe_destroy (&frame);

    s_full_request (&env, NULL, 0);
    env.kind = KEEL__KIND__EVENT;
    env.sequence = UINT64_MAX;
    frame = keel_codec_frame (&env, NULL);
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, NULL, &out,
                                         &why, NULL),
                      KEEL_OK);
    s_assert_envelope_eq (out, &env);
    keel__envelope__free_unpacked (out, NULL);
    zframe_destroy (&frame);

    //  A REPLY with an error code this version does not know still decodes.
    s_min_request (&env);
    env.kind = KEEL__KIND__REPLY;
    env.error_code = (Keel__ErrorCode)99;
    frame = keel_codec_frame (&env, NULL);
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, NULL, &out,
                                         &why, NULL),
                      KEEL_OK);
    ck_assert_int_eq (out->error_code, 99);
    keel__envelope__free_unpacked (out, NULL);
    zframe_destroy (&frame);
}
END_TEST

// ---------------------------------------------------------------------------
//  Typed payloads

START_TEST (test_typed_payload_frame)
{
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = (char *)"hello, keel";
    req.fail = true;
    Keel__Envelope env;
    s_full_request (&env, NULL, 0);
    zframe_t *frame = keel_codec_frame (&env, &req.base);
    ck_assert_ptr_nonnull (frame);

    //  Same bytes as packing the payload first and embedding it.
    uint8_t *packed = NULL;
    size_t packed_size = 0;
    ck_assert_int_eq (keel_codec_pack (&req.base, &packed, &packed_size), 0);
    ck_assert_uint_eq (packed_size, keel__echo_request__get_packed_size (&req));
    Keel__Envelope copy = env;
    copy.payload.data = packed;
    copy.payload.len = packed_size;
    zframe_t *expect = keel_codec_frame (&copy, NULL);
    ck_assert (zframe_eq (frame, expect));
    zframe_destroy (&expect);

    keel_arena_t *arena = keel_arena_new ();
    ProtobufCAllocator *alloc = keel_arena_allocator (arena);
    Keel__Envelope *out = NULL;
    const char *why = NULL;
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, alloc, &out,
                                         &why, NULL),
                      KEEL_OK);
    s_assert_envelope_eq (out, &copy);
    Keel__EchoRequest *got = (Keel__EchoRequest *)keel_codec_payload (
        out, &keel__echo_request__descriptor, alloc);
    ck_assert_ptr_nonnull (got);
    ck_assert_str_eq (got->text, "hello, keel");
    ck_assert (got->fail);
    keel_arena_reset (arena);

    //  And with the malloc allocator.
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, NULL, &out,
                                         &why, NULL),
                      KEEL_OK);
    got = (Keel__EchoRequest *)keel_codec_payload (
        out, &keel__echo_request__descriptor, NULL);
    ck_assert_ptr_nonnull (got);
    ck_assert_str_eq (got->text, "hello, keel");
    ck_assert (got->fail);
    keel__echo_request__free_unpacked (got, NULL);
    keel__envelope__free_unpacked (out, NULL);

    free (packed);
    keel_arena_destroy (&arena);
    zframe_destroy (&frame);
}
END_TEST

START_TEST (test_typed_payload_edge_cases)
{
    keel_arena_t *arena = keel_arena_new ();
    ProtobufCAllocator *alloc = keel_arena_allocator (arena);
    Keel__Envelope env;
    s_min_request (&env);
    Keel__Envelope *out = NULL;
    const char *why = NULL;

    //  An empty payload message: an empty payload field, an empty message.
    Keel__EchoRequest empty = KEEL__ECHO_REQUEST__INIT;
    zframe_t *frame = keel_codec_frame (&env, &empty.base);
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, alloc, &out,
                                         &why, NULL),
                      KEEL_OK);
    ck_assert_uint_eq (out->payload.len, 0);
    Keel__EchoRequest *got = (Keel__EchoRequest *)keel_codec_payload (
        out, &keel__echo_request__descriptor, alloc);
    ck_assert_ptr_nonnull (got);
    ck_assert_str_eq (got->text, "");
    ck_assert (!got->fail);
    keel_arena_reset (arena);
    zframe_destroy (&frame);

    //  A payload whose length needs a multi-byte varint (> 127, > 16383).
    size_t sizes[] = {127, 128, 16383, 16384, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *text = s_repeat ('t', sizes[i]);
        Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
        req.text = text;
        frame = keel_codec_frame (&env, &req.base);
        ck_assert_ptr_nonnull (frame);
        ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                             zframe_size (frame), 0, alloc,
                                             &out, &why, NULL),
                          KEEL_OK);
        ck_assert_uint_eq (out->payload.len,
                           keel__echo_request__get_packed_size (&req));
        got = (Keel__EchoRequest *)keel_codec_payload (
            out, &keel__echo_request__descriptor, alloc);
        ck_assert_ptr_nonnull (got);
        ck_assert_str_eq (got->text, text);
        keel_arena_reset (arena);
        zframe_destroy (&frame);
        free (text);
    }

    //  A payload that is not the message asked for decodes to NULL.
    const uint8_t junk[] = {0x0a, 0x50, 'x'}; //  text: length 80, 1 byte
    env.payload.data = (uint8_t *)junk;
    env.payload.len = sizeof junk;
    frame = keel_codec_frame (&env, NULL);
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, alloc, &out,
                                         &why, NULL),
                      KEEL_OK);
    ck_assert_ptr_null (
        keel_codec_payload (out, &keel__echo_request__descriptor, alloc));
    ck_assert_ptr_null (
        keel_codec_payload (out, &keel__echo_request__descriptor, NULL));
    zframe_destroy (&frame);
    keel_arena_destroy (&arena);
}
END_TEST

START_TEST (test_socket_pair)
{
    char *endpoint = testutil_inproc ("codec");
    zsock_t *sender = zsock_new (ZMQ_PAIR);
    zsock_t *receiver = zsock_new (ZMQ_PAIR);
    ck_assert_ptr_nonnull (sender);
    ck_assert_ptr_nonnull (receiver);
    keel_codec_socket_setup (sender, KEEL_DEFAULT_MAX_MSG_SIZE);
    keel_codec_socket_setup (receiver, KEEL_DEFAULT_MAX_MSG_SIZE);
    ck_assert_int_eq (zsock_bind (receiver, "%s", endpoint), 0);
    ck_assert_int_eq (zsock_connect (sender, "%s", endpoint), 0);
    zsock_set_rcvtimeo (receiver, 5000);

    keel_arena_t *arena = keel_arena_new ();
    ProtobufCAllocator *alloc = keel_arena_allocator (arena);
    Keel__Envelope env;
    s_full_request (&env, NULL, 0);

    for (int i = 0; i < 50; i++) {
        char text[32];
        snprintf (text, sizeof text, "message %d", i);
        Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
        req.text = text;
        req.fail = (i % 2) == 1;
        env.correlation_id = CORRELATION_ID + (uint64_t)i;
        //  Every other one as [type][envelope], like an event.
        bool two_part = (i % 2) == 0;
        if (two_part)
            ck_assert_int_eq (
                zmq_send (zsock_resolve (sender), "echo.say", 8, ZMQ_SNDMORE),
                8);
        ck_assert_int_eq (
            keel_codec_send (zsock_resolve (sender), &env, &req.base, 0), 0);

        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (two_part) {
            ck_assert_int_eq (zmq_msg_recv (&msg, zsock_resolve (receiver), 0),
                              8);
            ck_assert_mem_eq (zmq_msg_data (&msg), "echo.say", 8);
            ck_assert (zmq_msg_more (&msg));
        }
        ck_assert_int_ge (zmq_msg_recv (&msg, zsock_resolve (receiver), 0), 0);
        ck_assert (!zmq_msg_more (&msg));
        Keel__Envelope *out = NULL;
        const char *why = NULL;
        ck_assert_int_eq (keel_codec_decode (zmq_msg_data (&msg),
                                             zmq_msg_size (&msg),
                                             KEEL_DEFAULT_MAX_MSG_SIZE, alloc,
                                             &out, &why, NULL),
                          KEEL_OK);
        ck_assert (out->correlation_id == CORRELATION_ID + (uint64_t)i);
        ck_assert_str_eq (out->type, "echo.say");
        ck_assert_str_eq (out->sender, "client-7");
        ck_assert_str_eq (out->idempotency_key, "order-42:charge");
        Keel__EchoRequest *got = (Keel__EchoRequest *)keel_codec_payload (
            out, &keel__echo_request__descriptor, alloc);
        ck_assert_ptr_nonnull (got);
        ck_assert_str_eq (got->text, text);
        ck_assert_int_eq (got->fail, req.fail);
        zmq_msg_close (&msg);
        keel_arena_reset (arena);
    }
    keel_arena_destroy (&arena);
    zsock_destroy (&sender);
    zsock_destroy (&receiver);
    zstr_free (&endpoint);
}
END_TEST

START_TEST (test_send_failure)
{
    //  A PAIR with no peer cannot send; DONTWAIT makes that -1/EAGAIN and
    //  the frame is released (valgrind checks).
    zsock_t *lonely = zsock_new (ZMQ_PAIR);
    ck_assert_ptr_nonnull (lonely);
    Keel__Envelope env;
    s_full_request (&env, NULL, 0);
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = (char *)"nobody listens";
    errno = 0;
    ck_assert_int_eq (
        keel_codec_send (zsock_resolve (lonely), &env, &req.base, ZMQ_DONTWAIT),
        -1);
    ck_assert_int_eq (errno, EAGAIN);
    errno = 0;
    ck_assert_int_eq (
        keel_codec_send (zsock_resolve (lonely), &env, NULL, ZMQ_DONTWAIT), -1);
    ck_assert_int_eq (errno, EAGAIN);
    zsock_destroy (&lonely);
}
END_TEST

// ---------------------------------------------------------------------------
//  Malformed input

START_TEST (test_reject_empty_frame)
{
    Keel__Envelope *out = (Keel__Envelope *)&out;
    const char *why = NULL;
    uint64_t corr = 99;
    const uint8_t byte = 0;
    ck_assert_int_eq (keel_codec_decode (&byte, 0, 0, NULL, &out, &why, &corr),
                      KEEL_ERR_BAD_REQUEST);
    ck_assert_ptr_null (out);
    ck_assert_ptr_nonnull (why);
    ck_assert (corr == 0);

    keel_arena_t *arena = keel_arena_new ();
    why = NULL;
    corr = 99;
    ck_assert_int_eq (keel_codec_decode (NULL, 0, 100,
                                         keel_arena_allocator (arena), &out,
                                         &why, &corr),
                      KEEL_ERR_BAD_REQUEST);
    ck_assert_ptr_null (out);
    ck_assert_ptr_nonnull (why);
    ck_assert (corr == 0);
    keel_arena_destroy (&arena);
}
END_TEST

START_TEST (test_reject_random_bytes)
{
    keel_arena_t *arena = keel_arena_new ();
    srand (20240611);
    uint8_t buffer[200];
    int accepted = 0;
    for (int i = 0; i < 10000; i++) {
        size_t size = 1 + (size_t)(rand () % 200);
        for (size_t j = 0; j < size; j++)
            buffer[j] = (uint8_t)rand ();
        if (s_decode_checked (arena, buffer, size) == KEEL_OK)
            accepted++;
    }
    //  Random bytes almost never make a version 1 envelope.
    ck_assert_int_lt (accepted, 100);

    //  Random tails after a valid head: exercises the checks on envelopes
    //  that parse.
    Keel__Envelope env;
    s_min_request (&env);
    size_t head = keel__envelope__get_packed_size (&env);
    ck_assert_uint_lt (head, 64);
    keel__envelope__pack (&env, buffer);
    accepted = 0;
    for (int i = 0; i < 10000; i++) {
        size_t tail = (size_t)(rand () % 100);
        for (size_t j = 0; j < tail; j++)
            buffer[head + j] = (uint8_t)rand ();
        if (s_decode_checked (arena, buffer, head + tail) == KEEL_OK)
            accepted++;
    }
    ck_assert_int_gt (accepted, 0);

    //  The same random buffers through the malloc allocator: no leaks.
    srand (7);
    for (int i = 0; i < 2000; i++) {
        size_t size = 1 + (size_t)(rand () % 200);
        for (size_t j = 0; j < size; j++)
            buffer[j] = (uint8_t)rand ();
        Keel__Envelope *out = NULL;
        const char *why = NULL;
        if (keel_codec_decode (buffer, size, 0, NULL, &out, &why, NULL) ==
            KEEL_OK) {
            s_assert_meaningful (out);
            keel__envelope__free_unpacked (out, NULL);
        } else
            ck_assert_ptr_nonnull (why);
    }
    keel_arena_destroy (&arena);
}
END_TEST

START_TEST (test_reject_truncations)
{
    Keel__Envelope env;
    s_full_request (&env, NULL, 0);
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = (char *)"truncate me at every length";
    zframe_t *frame = keel_codec_frame (&env, &req.base);
    const uint8_t *data = zframe_data (frame);
    size_t size = zframe_size (frame);

    keel_arena_t *arena = keel_arena_new ();
    int accepted = 0;
    for (size_t len = 0; len < size; len++) {
        //  A heap copy of exactly `len` bytes, so valgrind sees over-reads.
        uint8_t *copy = (uint8_t *)malloc (len ? len : 1);
        memcpy (copy, data, len);
        if (s_decode_checked (arena, copy, len) == KEEL_OK)
            accepted++;
        Keel__Envelope *out = NULL;
        const char *why = NULL;
        if (keel_codec_decode (copy, len, 0, NULL, &out, &why, NULL) ==
            KEEL_OK) {
            s_assert_meaningful (out);
            keel__envelope__free_unpacked (out, NULL);
        }
        free (copy);
    }
    //  Cut on a field boundary after the type: still a valid envelope.
    ck_assert_int_gt (accepted, 0);
    ck_assert_int_eq (s_decode_checked (arena, data, size), KEEL_OK);
    keel_arena_destroy (&arena);
    zframe_destroy (&frame);
}
END_TEST

START_TEST (test_reject_version)
{
    Keel__Envelope env;
    s_min_request (&env);
    env.version = 0;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "unsupported envelope version") ==
               CORRELATION_ID);
    env.version = 2;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "unsupported envelope version") ==
               CORRELATION_ID);
}
END_TEST

START_TEST (test_reject_kind)
{
    Keel__Envelope env;
    s_min_request (&env);
    env.kind = KEEL__KIND__KIND_UNSPECIFIED;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "invalid envelope kind") == CORRELATION_ID);
    env.kind = (Keel__Kind)99;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "invalid envelope kind") == CORRELATION_ID);
    env.kind = (Keel__Kind)-1;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "invalid envelope kind") == CORRELATION_ID);
}
END_TEST

START_TEST (test_reject_type)
{
    Keel__Envelope env;
    s_min_request (&env);
    env.type = (char *)"";
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "invalid message type") == CORRELATION_ID);
    env.type = (char *)"echo say";
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "invalid message type") == CORRELATION_ID);
    char *longer = s_repeat ('a', KEEL_MAX_NAME_LEN + 1);
    env.type = longer;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "invalid message type") == CORRELATION_ID);
    free (longer);
}
END_TEST

START_TEST (test_reject_long_fields)
{
    Keel__Envelope env;
    char *name = s_repeat ('n', KEEL_MAX_NAME_LEN + 1);
    char *key = s_repeat ('k', KEEL_MAX_KEY_LEN + 1);
    char *text = s_repeat ('e', KEEL_MAX_TEXT_LEN + 1);

    s_min_request (&env);
    env.sender = name;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "name field too long") == CORRELATION_ID);
    s_min_request (&env);
    env.service = name;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "name field too long") == CORRELATION_ID);
    s_min_request (&env);
    env.trace_id = name;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "name field too long") == CORRELATION_ID);
    s_min_request (&env);
    env.idempotency_key = key;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "idempotency key too long") ==
               CORRELATION_ID);
    s_min_request (&env);
    env.kind = KEEL__KIND__REPLY;
    env.error_text = text;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                  "error text too long") == CORRELATION_ID);

    //  At the limits exactly: accepted.
    name[KEEL_MAX_NAME_LEN] = '\0';
    key[KEEL_MAX_KEY_LEN] = '\0';
    text[KEEL_MAX_TEXT_LEN] = '\0';
    s_min_request (&env);
    env.kind = KEEL__KIND__REPLY;
    env.type = name;
    env.sender = name;
    env.service = name;
    env.trace_id = name;
    env.idempotency_key = key;
    env.error_text = text;
    zframe_t *frame = keel_codec_frame (&env, NULL);
    Keel__Envelope *out = NULL;
    const char *why = NULL;
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, NULL, &out,
                                         &why, NULL),
                      KEEL_OK);
    s_assert_envelope_eq (out, &env);
    keel__envelope__free_unpacked (out, NULL);
    zframe_destroy (&frame);
    free (name);
    free (key);
    free (text);
}
END_TEST

START_TEST (test_reject_error_code_outside_reply)
{
    Keel__Envelope env;
    Keel__Kind kinds[] = {KEEL__KIND__REQUEST, KEEL__KIND__EVENT,
                          KEEL__KIND__ONEWAY};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        s_min_request (&env);
        env.kind = kinds[i];
        env.error_code = KEEL__ERROR_CODE__INTERNAL;
        ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST,
                                      "error code outside a reply") ==
                   CORRELATION_ID);
    }
}
END_TEST

START_TEST (test_reject_too_large)
{
    Keel__Envelope env;
    s_full_request (&env, NULL, 0);
    zframe_t *frame = keel_codec_frame (&env, NULL);
    size_t size = zframe_size (frame);
    Keel__Envelope *out = (Keel__Envelope *)&out;
    const char *why = NULL;
    uint64_t corr = 77;
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame), size, size - 1,
                                         NULL, &out, &why, &corr),
                      KEEL_ERR_TOO_LARGE);
    ck_assert_ptr_null (out);
    ck_assert_ptr_nonnull (why);
    ck_assert (corr == 0); //  never parsed: no correlation id

    //  Exactly max_size is fine; 0 means no limit.
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame), size, size, NULL,
                                         &out, &why, &corr),
                      KEEL_OK);
    keel__envelope__free_unpacked (out, NULL);
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame), size, 0, NULL,
                                         &out, &why, &corr),
                      KEEL_OK);
    keel__envelope__free_unpacked (out, NULL);

    //  The size check comes before parsing: garbage over the limit is
    //  TOO_LARGE, not BAD_REQUEST.
    uint8_t garbage[64];
    memset (garbage, 0xff, sizeof garbage);
    ck_assert_int_eq (keel_codec_decode (garbage, sizeof garbage, 16, NULL,
                                         &out, &why, &corr),
                      KEEL_ERR_TOO_LARGE);
    zframe_destroy (&frame);
}
END_TEST

START_TEST (test_correlation_reporting)
{
    //  Parsed but failed the checks: the correlation id comes back, also
    //  one with every bit set.
    Keel__Envelope env;
    s_min_request (&env);
    env.version = 2;
    env.correlation_id = UINT64_MAX;
    ck_assert (s_expect_rejected (&env, KEEL_ERR_BAD_REQUEST, NULL) ==
               UINT64_MAX);

    //  Not parsed: reported as 0.
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    Keel__Envelope *out = NULL;
    const char *why = NULL;
    uint64_t corr = 5;
    ck_assert_int_eq (
        keel_codec_decode (junk, sizeof junk, 0, NULL, &out, &why, &corr),
        KEEL_ERR_BAD_REQUEST);
    ck_assert_ptr_nonnull (why);
    ck_assert (corr == 0);

    //  Accepted: reported as 0 too (the envelope carries the id).
    s_min_request (&env);
    zframe_t *frame = keel_codec_frame (&env, NULL);
    corr = 5;
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, NULL, &out,
                                         &why, &corr),
                      KEEL_OK);
    ck_assert (corr == 0);
    ck_assert (out->correlation_id == CORRELATION_ID);
    keel__envelope__free_unpacked (out, NULL);
    zframe_destroy (&frame);
}
END_TEST

// ---------------------------------------------------------------------------
//  keel_codec_type_ok

START_TEST (test_type_ok_table)
{
    char *max = s_repeat ('x', KEEL_MAX_NAME_LEN);
    char *over = s_repeat ('x', KEEL_MAX_NAME_LEN + 1);
    struct {
        const char *type;
        bool ok;
    } table[] = {
        {"echo.say", true},
        {"registry.register", true},
        {"a", true},
        {"0", true},
        {"A-Z_a-z.0-9", true},
        {"...", true},
        {"node_1.health-check", true},
        {max, true},
        {NULL, false},
        {"", false},
        {" ", false},
        {"echo say", false},
        {" echo.say", false},
        {"echo.say ", false},
        {"echo\tsay", false},
        {"echo\nsay", false},
        {"echo/say", false},
        {"echo:say", false},
        {"echo*", false},
        {"\xc3\xa9"
         "cho",
         false},
        {"\x7f", false},
        {over, false},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        ck_assert_msg (keel_codec_type_ok (table[i].type) == table[i].ok,
                       "type_ok (\"%s\") should be %s",
                       table[i].type ? table[i].type : "(null)",
                       table[i].ok ? "true" : "false");
    free (max);
    free (over);
}
END_TEST

// ---------------------------------------------------------------------------
//  Allocation failure

//  Decode `frame` with the Nth allocation failing, for N = 1, 2, ...: every
//  run fails cleanly until one succeeds. Returns the N that succeeded.
static int
s_fail_until_success (keel_arena_t *arena, zframe_t *frame,
                      const Keel__Envelope *want)
{
    ProtobufCAllocator *alloc = keel_arena_allocator (arena);
    for (int n = 1; n < 1000; n++) {
        keel_arena_fail_after (arena, n);
        Keel__Envelope *out = (Keel__Envelope *)&out;
        const char *why = NULL;
        uint64_t corr = 3;
        keel_err_t rc =
            keel_codec_decode (zframe_data (frame), zframe_size (frame), 0,
                               alloc, &out, &why, &corr);
        if (rc == KEEL_OK) {
            keel_arena_fail_after (arena, 0);
            ck_assert_ptr_nonnull (out);
            s_assert_envelope_eq (out, want);
            keel_arena_reset (arena);
            return n;
        }
        ck_assert_int_eq (rc, KEEL_ERR_BAD_REQUEST);
        ck_assert_ptr_null (out);
        ck_assert_ptr_nonnull (why);
        keel_arena_reset (arena);
    }
    ck_abort_msg ("decode never succeeded");
    return -1;
}

START_TEST (test_allocation_failure)
{
    //  Every string field set plus a payload: several allocations.
    const uint8_t payload[] = {1, 2, 3, 4, 5, 6, 7, 8};
    Keel__Envelope env;
    s_full_request (&env, payload, sizeof payload);
    zframe_t *frame = keel_codec_frame (&env, NULL);
    keel_arena_t *arena = keel_arena_new ();
    int n = s_fail_until_success (arena, frame, &env);
    //  The envelope, 5 non-empty strings and the payload: 7 allocations, so
    //  the first N that succeeds is at least 8.
    ck_assert_int_ge (n, 8);
    zframe_destroy (&frame);

    //  A payload that spills out of the inline block.
    size_t big = 100 * 1024;
    uint8_t *data = (uint8_t *)malloc (big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i ^ (i >> 8));
    s_full_request (&env, data, big);
    frame = keel_codec_frame (&env, NULL);
    ck_assert_int_ge (s_fail_until_success (arena, frame, &env), 8);
    zframe_destroy (&frame);
    free (data);

    //  Fresh arena for each run, destroyed straight after a failure.
    s_full_request (&env, payload, sizeof payload);
    frame = keel_codec_frame (&env, NULL);
    for (int i = 1; i <= n; i++) {
        keel_arena_t *fresh = keel_arena_new ();
        keel_arena_fail_after (fresh, i);
        Keel__Envelope *out = NULL;
        const char *why = NULL;
        keel_err_t rc =
            keel_codec_decode (zframe_data (frame), zframe_size (frame), 0,
                               keel_arena_allocator (fresh), &out, &why, NULL);
        ck_assert_int_eq (rc, i < n ? KEEL_ERR_BAD_REQUEST : KEEL_OK);
        keel_arena_destroy (&fresh);
    }
    zframe_destroy (&frame);

    //  The payload decode fails cleanly too.
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = (char *)"allocate me";
    s_min_request (&env);
    frame = keel_codec_frame (&env, &req.base);
    ProtobufCAllocator *alloc = keel_arena_allocator (arena);
    for (int i = 1;; i++) {
        ck_assert_int_lt (i, 100);
        Keel__Envelope *out = NULL;
        const char *why = NULL;
        ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                             zframe_size (frame), 0, alloc,
                                             &out, &why, NULL),
                          KEEL_OK);
        keel_arena_fail_after (arena, i);
        Keel__EchoRequest *got = (Keel__EchoRequest *)keel_codec_payload (
            out, &keel__echo_request__descriptor, alloc);
        keel_arena_fail_after (arena, 0);
        keel_arena_reset (arena);
        if (got) {
            ck_assert_int_ge (i, 2);
            break;
        }
    }
    zframe_destroy (&frame);
    keel_arena_destroy (&arena);
}
END_TEST

// ---------------------------------------------------------------------------
//  Arena

START_TEST (test_arena_reuse)
{
    Keel__Envelope env;
    s_full_request (&env, (const uint8_t *)"abc", 3);
    zframe_t *frame = keel_codec_frame (&env, NULL);
    keel_arena_t *arena = keel_arena_new ();
    ProtobufCAllocator *alloc = keel_arena_allocator (arena);
    ck_assert_ptr_eq (alloc, keel_arena_allocator (arena));

    Keel__Envelope *first = NULL;
    const char *why = NULL;
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, alloc, &first,
                                         &why, NULL),
                      KEEL_OK);
    char *first_type = first->type;
    uint8_t *first_payload = first->payload.data;
    keel_arena_reset (arena);

    //  After each reset the same memory comes back: no growth.
    for (int i = 0; i < 10000; i++) {
        Keel__Envelope *out = NULL;
        ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                             zframe_size (frame), 0, alloc,
                                             &out, &why, NULL),
                          KEEL_OK);
        ck_assert_ptr_eq (out, first);
        ck_assert_ptr_eq (out->type, first_type);
        ck_assert_ptr_eq (out->payload.data, first_payload);
        s_assert_envelope_eq (out, &env);
        keel_arena_reset (arena);
    }

    //  Without a reset, decodes stack up in the block then spill.
    Keel__Envelope *prev = NULL;
    for (int i = 0; i < 100; i++) {
        Keel__Envelope *out = NULL;
        ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                             zframe_size (frame), 0, alloc,
                                             &out, &why, NULL),
                          KEEL_OK);
        ck_assert_ptr_ne (out, prev);
        s_assert_envelope_eq (out, &env);
        prev = out;
    }
    keel_arena_reset (arena);
    Keel__Envelope *out = NULL;
    ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                         zframe_size (frame), 0, alloc, &out,
                                         &why, NULL),
                      KEEL_OK);
    ck_assert_ptr_eq (out, first);
    keel_arena_destroy (&arena);
    zframe_destroy (&frame);
}
END_TEST

START_TEST (test_arena_spill)
{
    size_t big = 100 * 1024;
    uint8_t *data = (uint8_t *)malloc (big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 10));
    Keel__Envelope env;
    s_full_request (&env, data, big);
    zframe_t *frame = keel_codec_frame (&env, NULL);
    ck_assert_uint_gt (zframe_size (frame), big);

    keel_arena_t *arena = keel_arena_new ();
    ProtobufCAllocator *alloc = keel_arena_allocator (arena);
    const char *why = NULL;
    struct mallinfo2 before = {0};
    for (int i = 0; i < 200; i++) {
        if (i == 10)
            before = mallinfo2 ();
        Keel__Envelope *out = NULL;
        ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                             zframe_size (frame),
                                             KEEL_DEFAULT_MAX_MSG_SIZE, alloc,
                                             &out, &why, NULL),
                          KEEL_OK);
        s_assert_envelope_eq (out, &env);
        keel_arena_reset (arena);
    }
    //  Spills are freed by each reset: the heap does not grow.
    struct mallinfo2 after = mallinfo2 ();
    ck_assert_uint_eq (after.uordblks, before.uordblks);

    //  Many spills in one go (more than the spill list's first capacity),
    //  mixed with small decodes, all intact until the reset.
    Keel__Envelope *outs[20];
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq (keel_codec_decode (zframe_data (frame),
                                             zframe_size (frame), 0, alloc,
                                             &outs[i], &why, NULL),
                          KEEL_OK);
    }
    for (int i = 0; i < 20; i++)
        s_assert_envelope_eq (outs[i], &env);
    keel_arena_reset (arena);

    //  The same big payload as a typed message.
    char *text = s_repeat ('z', big);
    Keel__EchoRequest req = KEEL__ECHO_REQUEST__INIT;
    req.text = text;
    s_min_request (&env);
    zframe_t *typed = keel_codec_frame (&env, &req.base);
    Keel__Envelope *out = NULL;
    ck_assert_int_eq (keel_codec_decode (zframe_data (typed),
                                         zframe_size (typed), 0, alloc, &out,
                                         &why, NULL),
                      KEEL_OK);
    Keel__EchoRequest *got = (Keel__EchoRequest *)keel_codec_payload (
        out, &keel__echo_request__descriptor, alloc);
    ck_assert_ptr_nonnull (got);
    ck_assert_str_eq (got->text, text);

    //  Destroy with spills outstanding: valgrind checks they are freed.
    keel_arena_destroy (&arena);
    zframe_destroy (&typed);
    zframe_destroy (&frame);
    free (text);
    free (data);
}
END_TEST

// ---------------------------------------------------------------------------
//  Error names and the log limiter

START_TEST (test_error_names)
{
    const char *names[] = {
        "OK",        "BAD_REQUEST",     "UNKNOWN_TYPE",     "TOO_LARGE",
        "NOT_FOUND", "TIMEOUT",         "UNAVAILABLE",      "INTERNAL",
        "CONFLICT",  "UNKNOWN_SERVICE", "INVALID_ARGUMENT",
    };
    ck_assert_int_eq (sizeof names / sizeof names[0], KEEL_ERR_MAX_KNOWN + 1);
    for (int code = 0; code <= KEEL_ERR_MAX_KNOWN; code++) {
        const char *text = keel_strerror (code);
        ck_assert_ptr_nonnull (text);
        ck_assert_uint_gt (strlen (text), 0);
        ck_assert_str_ne (text, "unknown error");
        ck_assert_str_eq (keel_errname (code), names[code]);
        //  The C codes are the wire codes.
        const ProtobufCEnumValue *value = protobuf_c_enum_descriptor_get_value (
            &keel__error_code__descriptor, code);
        ck_assert_ptr_nonnull (value);
        ck_assert_str_eq (value->name, names[code]);
    }
    ck_assert_str_eq (keel_strerror (KEEL_OK), "ok");
    ck_assert_str_eq (keel_strerror (KEEL_ERR_TIMEOUT), "timeout");
    int out_of_range[] = {-1, KEEL_ERR_MAX_KNOWN + 1, 99, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; i++) {
        ck_assert_str_eq (keel_strerror (out_of_range[i]), "unknown error");
        ck_assert_str_eq (keel_errname (out_of_range[i]), "UNKNOWN");
    }
}
END_TEST

START_TEST (test_log_limited)
{
    keel_ratelimit_t rl = {0};
    int64_t t0 = 1000000;
    ck_assert (keel_log_limited (&rl, t0, "test line %d", 1));
    ck_assert (!keel_log_limited (&rl, t0, "test line %d", 2));
    ck_assert (!keel_log_limited (&rl, t0 + 999, "test line %d", 3));
    ck_assert_uint_eq (rl.suppressed, 2);
    ck_assert (keel_log_limited (&rl, t0 + 1000, "test line %d", 4));
    ck_assert_uint_eq (rl.suppressed, 0);
    ck_assert (!keel_log_limited (&rl, t0 + 1500, "test line %d", 5));
    ck_assert (keel_log_limited (&rl, t0 + 5000, "test line %d", 6));

    //  Separate limiters do not interfere.
    keel_ratelimit_t other = {0};
    ck_assert (keel_log_limited (&other, t0 + 5001, "other line"));

    //  With the real clock.
    keel_ratelimit_t real = {0};
    int64_t now = keel_now_ms ();
    ck_assert_int_gt (now, 0);
    ck_assert (keel_log_limited (&real, now, "real clock"));
    ck_assert (!keel_log_limited (&real, keel_now_ms (), "real clock"));
    ck_assert (keel_log_limited (&real, now + 1000, "real clock"));
}
END_TEST

//  A NUL inside a string field would make C see a shorter string than the
//  wire holds ("k\0a" and "k\0b" alike): refused, with either allocator.
START_TEST (test_nul_in_string)
{
    const char *fields[] = {"type", "sender", "key"};
    for (size_t f = 0; f < 3; f++) {
        Keel__Envelope env = KEEL__ENVELOPE__INIT;
        env.version = KEEL_WIRE_VERSION;
        env.kind = KEEL__KIND__REQUEST;
        env.type = "a.b";
        env.sender = "me";
        env.idempotency_key = "k-0000";
        zframe_t *frame = keel_codec_frame (&env, NULL);
        //  Overwrite the '-' of the field's value with a NUL.
        const char *needle = f == 0 ? "a.b" : f == 1 ? "me" : "k-0000";
        size_t len = strlen (needle);
        byte *data = zframe_data (frame);
        byte *at = NULL;
        for (size_t i = 0; i + len <= zframe_size (frame); i++)
            if (memcmp (data + i, needle, len) == 0)
                at = data + i;
        ck_assert_ptr_nonnull (at);
        at[1] = 0;
        keel_arena_t *arena = keel_arena_new ();
        ProtobufCAllocator *allocs[] = {keel_arena_allocator (arena), NULL};
        for (int a = 0; a < 2; a++) {
            Keel__Envelope *out = NULL;
            const char *why = NULL;
            ck_assert_msg (keel_codec_decode (data, zframe_size (frame), 0,
                                              allocs[a], &out, &why,
                                              NULL) == KEEL_ERR_BAD_REQUEST,
                           "field %s allocator %d", fields[f], a);
            ck_assert_ptr_null (out);
            ck_assert_ptr_nonnull (why);
        }
        keel_arena_destroy (&arena);
        zframe_destroy (&frame);
    }
}
END_TEST

//  Field number 0 (an overlong tag, 0x81 0x00) is no field at all: a frame
//  carrying it is refused, in the envelope and in a payload, so nothing
//  downstream re-encodes it into a frame that no longer decodes.
START_TEST (test_reject_field_zero)
{
    static const byte frame[] = {0x08, 0x01, 0x10, 0x01, 0x1a, 0x08, 's',  'v',
                                 'c',  '.',  'w',  'a',  'i',  't',  0x81, 0x00,
                                 1,    2,    3,    4,    5,    6,    7,    8};
    keel_arena_t *arena = keel_arena_new ();
    ProtobufCAllocator *allocs[] = {keel_arena_allocator (arena), NULL};
    for (int a = 0; a < 2; a++) {
        Keel__Envelope *out = NULL;
        const char *why = NULL;
        ck_assert_int_eq (keel_codec_decode (frame, sizeof frame, 0, allocs[a],
                                             &out, &why, NULL),
                          KEEL_ERR_BAD_REQUEST);
        ck_assert_ptr_null (out);
        ck_assert_str_eq (why, "field number 0");
    }
    //  The same field in a payload: the payload does not decode.
    static const byte payload[] = {0x81, 0x00, 1, 2, 3, 4, 5, 6, 7, 8};
    Keel__Envelope env = KEEL__ENVELOPE__INIT;
    env.version = KEEL_WIRE_VERSION;
    env.kind = KEEL__KIND__REQUEST;
    env.type = "a.b";
    env.payload.data = (uint8_t *)payload;
    env.payload.len = sizeof payload;
    ck_assert_ptr_null (
        keel_codec_payload (&env, &keel__envelope__descriptor, NULL));
    //  The same bytes without the bad field decode.
    env.payload.len = 0;
    ProtobufCMessage *msg =
        keel_codec_payload (&env, &keel__envelope__descriptor, NULL);
    ck_assert_ptr_nonnull (msg);
    protobuf_c_message_free_unpacked (msg, NULL);
    keel_arena_destroy (&arena);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_codec");
    TCase *tc = tcase_create ("codec");
    tcase_add_test (tc, test_round_trip_arena);
    tcase_add_test (tc, test_round_trip_malloc);
    tcase_add_test (tc, test_round_trip_reply_and_event);
    tcase_add_test (tc, test_typed_payload_frame);
    tcase_add_test (tc, test_typed_payload_edge_cases);
    tcase_add_test (tc, test_socket_pair);
    tcase_add_test (tc, test_send_failure);
    tcase_add_test (tc, test_reject_empty_frame);
    tcase_add_test (tc, test_reject_random_bytes);
    tcase_add_test (tc, test_reject_truncations);
    tcase_add_test (tc, test_reject_version);
    tcase_add_test (tc, test_reject_kind);
    tcase_add_test (tc, test_reject_type);
    tcase_add_test (tc, test_reject_long_fields);
    tcase_add_test (tc, test_reject_error_code_outside_reply);
    tcase_add_test (tc, test_reject_too_large);
    tcase_add_test (tc, test_correlation_reporting);
    tcase_add_test (tc, test_type_ok_table);
    tcase_add_test (tc, test_allocation_failure);
    tcase_add_test (tc, test_arena_reuse);
    tcase_add_test (tc, test_arena_spill);
    tcase_add_test (tc, test_error_names);
    tcase_add_test (tc, test_log_limited);
    tcase_add_test (tc, test_nul_in_string);
    tcase_add_test (tc, test_reject_field_zero);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
