/*  test_fault_alloc.c - decoding under allocation failure, for every message
    type in schemas/: the Nth allocation fails, for N = 1, 2, ... until the
    decode succeeds; each failure must be a clean error (NULL, BAD_REQUEST)
    with every allocated byte given back, never a crash or a leak.

    Three decoders: protobuf-c's own unpack with a counting allocator,
    keel_codec_decode + keel_codec_payload (counting allocator and the
    arena), and keel_json_decode (its own fault hook).

    Examples are built from the descriptors: every field set (strings, bytes,
    enums at a non-zero value, two elements in every repeated field and map,
    nested messages filled in turn), so a field added to a schema is covered
    without code of its own. A message type added to a schema must be added
    to s_descriptors: the test reads the generated headers and fails
    otherwise. */
#include "keel_codec.h"
#include "keel_json.h"
#include "testutil.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

//  The table of every message type of schemas/*.proto, map entries
//  included: the names are read from the generated headers (KEEL_BUILD_DIR
//  /gen/*.pb-c.h) and their descriptors found in the shared libkeel, so a
//  message added to a schema is covered with no change here.
#define S_MAX_DESCRIPTORS 512
static const ProtobufCMessageDescriptor *s_descriptors[S_MAX_DESCRIPTORS];
static size_t s_n_descriptors;
static void *s_libkeel;

static void
s_load_descriptors (void)
{
    s_libkeel = dlopen (KEEL_BUILD_DIR "/libkeel.so", RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg (s_libkeel, "%s", dlerror ());
    const char *gen = KEEL_BUILD_DIR "/gen";
    DIR *dir = opendir (gen);
    ck_assert_ptr_nonnull (dir);
    s_n_descriptors = 0;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        size_t len = strlen (entry->d_name);
        if (len < 7 || strcmp (entry->d_name + len - 7, ".pb-c.h") != 0)
            continue;
        char *path = zsys_sprintf ("%s/%s", gen, entry->d_name);
        FILE *file = fopen (path, "r");
        ck_assert_ptr_nonnull (file);
        free (path);
        char line[512];
        const char *prefix = "extern const ProtobufCMessageDescriptor ";
        while (fgets (line, sizeof line, file)) {
            if (strncmp (line, prefix, strlen (prefix)) != 0)
                continue;
            char name[256];
            ck_assert_int_eq (
                sscanf (line + strlen (prefix), "%255[A-Za-z0-9_]", name), 1);
            const ProtobufCMessageDescriptor *desc =
                (const ProtobufCMessageDescriptor *)dlsym (s_libkeel, name);
            ck_assert_msg (desc, "%s (%s) not in libkeel.so", name,
                           entry->d_name);
            ck_assert_uint_eq (desc->magic,
                               PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
            ck_assert_uint_lt (s_n_descriptors, S_MAX_DESCRIPTORS);
            s_descriptors[s_n_descriptors++] = desc;
        }
        fclose (file);
    }
    closedir (dir);
}

static void
s_unload_descriptors (void)
{
    if (s_libkeel)
        dlclose (s_libkeel);
    s_libkeel = NULL;
    s_n_descriptors = 0;
}

#define S_N_DESCRIPTORS s_n_descriptors

// ---------------------------------------------------------------------------
//  A counting allocator that fails the Nth call

typedef struct {
    size_t fail_at;    //  fail this call (1-based); 0 = never
    size_t calls;      //  alloc calls so far
    size_t live;       //  blocks allocated and not freed
    size_t live_bytes; //  their bytes
    size_t bad_frees;  //  frees of pointers this allocator never gave
} s_counter_t;

#define S_MAGIC 0x6b65656cUL

typedef struct {
    size_t size;
    size_t magic;
} s_header_t;

static void *
s_count_alloc (void *data, size_t size)
{
    s_counter_t *self = (s_counter_t *)data;
    if (++self->calls == self->fail_at)
        return NULL;
    s_header_t *header = (s_header_t *)malloc (sizeof (s_header_t) + size);
    if (!header)
        return NULL;
    header->size = size;
    header->magic = S_MAGIC;
    self->live++;
    self->live_bytes += size;
    return header + 1;
}

static void
s_count_free (void *data, void *ptr)
{
    s_counter_t *self = (s_counter_t *)data;
    if (!ptr)
        return;
    s_header_t *header = (s_header_t *)ptr - 1;
    if (header->magic != S_MAGIC || self->live == 0) {
        self->bad_frees++;
        return;
    }
    header->magic = 0;
    self->live--;
    self->live_bytes -= header->size;
    free (header);
}

static ProtobufCAllocator
s_counting (s_counter_t *counter, size_t fail_at)
{
    counter->fail_at = fail_at;
    counter->calls = 0;
    ProtobufCAllocator alloc = {s_count_alloc, s_count_free, counter};
    return alloc;
}

// ---------------------------------------------------------------------------
//  Fully populated examples, from the descriptors

static size_t s_bytes_len = 24; //  length of every bytes field

//  Every string is distinct, so map entries have distinct keys.
static char *
s_text (const ProtobufCFieldDescriptor *field, size_t i)
{
    static unsigned counter = 0;
    return zsys_sprintf ("%s-%zu.value-%u", field->name, i, ++counter);
}

static void s_populate (ProtobufCMessage *msg, int depth);

//  Allocate a message of `desc` with malloc and fill every field.
static ProtobufCMessage *
s_example_of (const ProtobufCMessageDescriptor *desc, int depth)
{
    ProtobufCMessage *msg = (ProtobufCMessage *)malloc (desc->sizeof_message);
    ck_assert_ptr_nonnull (msg);
    protobuf_c_message_init (desc, msg);
    s_populate (msg, depth);
    return msg;
}

//  Write one value of `field` (element i) at `slot`.
static void
s_value (const ProtobufCFieldDescriptor *field, void *slot, size_t i, int depth)
{
    int sign = i % 2 ? -1 : 1;
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        *(int32_t *)slot = sign * (int32_t)(70000 + field->id + i);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)slot = 70000 + field->id + (uint32_t)i;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        *(int64_t *)slot = sign * (int64_t)(5000000000LL + field->id + i);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        *(uint64_t *)slot = 5000000000ULL + field->id + i;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        *(float *)slot = 1.5f + (float)i;
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)slot = 2.25 + (double)i;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)slot = 1;
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e =
            (const ProtobufCEnumDescriptor *)field->descriptor;
        *(int *)slot = e->values[e->n_values - 1 - i % e->n_values].value;
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        *(char **)slot = s_text (field, i);
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bin = (ProtobufCBinaryData *)slot;
        bin->len = s_bytes_len;
        bin->data = (uint8_t *)malloc (s_bytes_len);
        for (size_t b = 0; b < s_bytes_len; b++)
            bin->data[b] = (uint8_t)(b * 37 + i + field->id);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)slot = s_example_of (
            (const ProtobufCMessageDescriptor *)field->descriptor, depth + 1);
        break;
    }
}

static size_t
s_type_size (ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof (protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof (void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof (ProtobufCBinaryData);
    }
    return 0;
}

static void
s_populate (ProtobufCMessage *msg, int depth)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    ck_assert_int_lt (depth, 8); //  no recursive types on the wire
    for (unsigned f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[f];
        char *base = (char *)msg;
        if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            //  One member per oneof: the first seen.
            uint32_t *which = (uint32_t *)(base + field->quantifier_offset);
            if (*which)
                continue;
            *which = field->id;
        }
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            //  Two elements (map entries get distinct keys: the value
            //  written depends on the element's index).
            size_t n = 2, size = s_type_size (field->type);
            void *array = calloc (n, size);
            for (size_t i = 0; i < n; i++)
                s_value (field, (char *)array + i * size, i, depth);
            *(size_t *)(base + field->quantifier_offset) = n;
            *(void **)(base + field->offset) = array;
            continue;
        }
        if (field->label == PROTOBUF_C_LABEL_OPTIONAL &&
            !(field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            field->type != PROTOBUF_C_TYPE_STRING &&
            field->type != PROTOBUF_C_TYPE_MESSAGE)
            *(protobuf_c_boolean *)(base + field->quantifier_offset) = 1;
        s_value (field, base + field->offset, 0, depth);
    }
}

//  A packed example of `desc`; caller frees *data_p.
static void
s_packed_example (const ProtobufCMessageDescriptor *desc, uint8_t **data_p,
                  size_t *size_p)
{
    ProtobufCMessage *msg = s_example_of (desc, 0);
    ck_assert_int_eq (keel_codec_pack (msg, data_p, size_p), 0);
    protobuf_c_message_free_unpacked (msg, NULL);
}

//  Pack `msg` and compare with `data`.
static void
s_assert_packs_to (const ProtobufCMessage *msg, const uint8_t *data,
                   size_t size)
{
    uint8_t *again = NULL;
    size_t again_size = 0;
    ck_assert_int_eq (keel_codec_pack (msg, &again, &again_size), 0);
    ck_assert_msg (again_size == size && memcmp (again, data, size) == 0,
                   "%s: decoded message packs differently",
                   msg->descriptor->name);
    free (again);
}

// ---------------------------------------------------------------------------
//  The tests

//  The table holds every schema's messages, the envelope among them.
START_TEST (test_table)
{
    ck_assert_uint_ge (s_n_descriptors, 50);
    const char *want[] = {"keel.Envelope",    "keel.Instance.MetaEntry",
                          "keel.HttpRequest", "keel.SagaRecord",
                          "keel.BreakerList", "keel.NodeInfo",
                          "keel.EchoRequest"};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        bool found = false;
        for (size_t d = 0; d < s_n_descriptors; d++)
            found = found || streq (s_descriptors[d]->name, want[w]);
        ck_assert_msg (found, "%s missing", want[w]);
    }
    s_unload_descriptors ();
}
END_TEST

//  protobuf-c's unpack, every type, the Nth allocation failing.
START_TEST (test_unpack_every_type)
{
    for (size_t d = 0; d < S_N_DESCRIPTORS; d++) {
        const ProtobufCMessageDescriptor *desc = s_descriptors[d];
        uint8_t *data;
        size_t size;
        s_packed_example (desc, &data, &size);
        ck_assert_uint_gt (size, 0);
        s_counter_t counter = {0};
        size_t n;
        for (n = 1; n < 10000; n++) {
            ProtobufCAllocator alloc = s_counting (&counter, n);
            ProtobufCMessage *msg =
                protobuf_c_message_unpack (desc, &alloc, size, data);
            if (msg) {
                ck_assert_msg (counter.calls < n,
                               "%s: decoded though alloc %zu "
                               "failed",
                               desc->name, n);
                s_assert_packs_to (msg, data, size);
                protobuf_c_message_free_unpacked (msg, &alloc);
                ck_assert_uint_eq (counter.live, 0);
                break;
            }
            ck_assert_msg (counter.calls >= n, "%s: failed without a fault",
                           desc->name);
            ck_assert_msg (counter.live == 0 && counter.live_bytes == 0,
                           "%s: fault at %zu leaves %zu blocks (%zu bytes)",
                           desc->name, n, counter.live, counter.live_bytes);
        }
        ck_assert_uint_eq (counter.bad_frees, 0);
        //  The message itself failed once at least.
        ck_assert_msg (n >= 2, "%s: only %zu allocations", desc->name, n - 1);
        free (data);
    }
}
END_TEST

//  A REQUEST envelope with every field, carrying `payload`.
static zframe_t *
s_request_frame (const uint8_t *payload, size_t size, uint32_t version)
{
    Keel__Envelope env = KEEL__ENVELOPE__INIT;
    env.version = version;
    env.kind = KEEL__KIND__REQUEST;
    env.type = (char *)"registry.register";
    env.correlation_id = 0xC0FFEE;
    env.sender = (char *)"client-7";
    env.service = (char *)"registry";
    env.timeout_ms = 2500;
    env.trace_id = (char *)"trace-0123456789abcdef";
    env.idempotency_key = (char *)"order-42:charge";
    env.payload.data = (uint8_t *)payload;
    env.payload.len = size;
    zframe_t *frame = keel_codec_frame (&env, NULL);
    ck_assert_ptr_nonnull (frame);
    return frame;
}

//  keel_codec_decode and keel_codec_payload with the counting allocator:
//  every failure point of the envelope, then of the payload, gives back
//  every byte; a frame that parses but fails the checks is freed too.
START_TEST (test_codec_counting)
{
    for (size_t d = 0; d < S_N_DESCRIPTORS; d++) {
        const ProtobufCMessageDescriptor *desc = s_descriptors[d];
        uint8_t *data;
        size_t size;
        s_packed_example (desc, &data, &size);
        zframe_t *frame = s_request_frame (data, size, KEEL_WIRE_VERSION);
        s_counter_t counter = {0};
        Keel__Envelope *env = NULL;
        size_t n;
        for (n = 1; n < 1000; n++) {
            ProtobufCAllocator alloc = s_counting (&counter, n);
            const char *why = NULL;
            uint64_t corr = 7;
            keel_err_t rc =
                keel_codec_decode (zframe_data (frame), zframe_size (frame), 0,
                                   &alloc, &env, &why, &corr);
            if (rc == KEEL_OK)
                break;
            ck_assert_int_eq (rc, KEEL_ERR_BAD_REQUEST);
            ck_assert_ptr_null (env);
            ck_assert_ptr_nonnull (why);
            ck_assert (corr == 0); //  nothing parsed: nothing to answer
            ck_assert_uint_eq (counter.live, 0);
        }
        ck_assert_ptr_nonnull (env);
        ck_assert_uint_ge (n, 7); //  envelope, 5 strings, payload
        size_t env_live = counter.live;
        ProtobufCAllocator alloc = s_counting (&counter, 0);
        for (n = 1; n < 10000; n++) {
            alloc = s_counting (&counter, n);
            ProtobufCMessage *msg = keel_codec_payload (env, desc, &alloc);
            if (msg) {
                s_assert_packs_to (msg, data, size);
                protobuf_c_message_free_unpacked (msg, &alloc);
                ck_assert_uint_eq (counter.live, env_live);
                break;
            }
            ck_assert_msg (counter.live == env_live,
                           "%s: payload fault at %zu leaks %zu blocks",
                           desc->name, n, counter.live - env_live);
        }
        ck_assert_uint_lt (n, 10000);
        keel__envelope__free_unpacked (env, &alloc);
        ck_assert_uint_eq (counter.live, 0);
        zframe_destroy (&frame);

        //  Parses, fails the checks (version): freed at every fault point,
        //  and answered with its correlation id once it parsed.
        frame = s_request_frame (data, size, 99);
        for (n = 1; n < 1000; n++) {
            alloc = s_counting (&counter, n);
            const char *why = NULL;
            uint64_t corr = 7;
            keel_err_t rc =
                keel_codec_decode (zframe_data (frame), zframe_size (frame), 0,
                                   &alloc, &env, &why, &corr);
            ck_assert_int_eq (rc, KEEL_ERR_BAD_REQUEST);
            ck_assert_ptr_null (env);
            ck_assert_uint_eq (counter.live, 0);
            if (counter.calls < n) {
                ck_assert_str_eq (why, "unsupported envelope version");
                ck_assert (corr == 0xC0FFEE);
                break;
            }
            ck_assert (corr == 0);
        }
        ck_assert_uint_lt (n, 1000);
        ck_assert_uint_eq (counter.bad_frees, 0);
        zframe_destroy (&frame);
        free (data);
    }
}
END_TEST

//  The same through the arena (the path servers take), with small payloads
//  and with bytes fields big enough to spill out of the arena's block.
START_TEST (test_codec_arena)
{
    keel_arena_t *arena = keel_arena_new ();
    ProtobufCAllocator *alloc = keel_arena_allocator (arena);
    size_t lens[] = {24, 20000};
    for (size_t l = 0; l < 2; l++) {
        s_bytes_len = lens[l];
        for (size_t d = 0; d < S_N_DESCRIPTORS; d++) {
            const ProtobufCMessageDescriptor *desc = s_descriptors[d];
            uint8_t *data;
            size_t size;
            s_packed_example (desc, &data, &size);
            zframe_t *frame = s_request_frame (data, size, KEEL_WIRE_VERSION);
            int n, m = 0;
            for (n = 1; n < 1000; n++) {
                keel_arena_fail_after (arena, n);
                Keel__Envelope *env = NULL;
                const char *why = NULL;
                keel_err_t rc = keel_codec_decode (
                    zframe_data (frame), zframe_size (frame),
                    KEEL_DEFAULT_MAX_MSG_SIZE, alloc, &env, &why, NULL);
                if (rc != KEEL_OK) {
                    ck_assert_int_eq (rc, KEEL_ERR_BAD_REQUEST);
                    ck_assert_ptr_null (env);
                    keel_arena_reset (arena);
                    continue;
                }
                //  Envelope decoded: now fail the payload's allocations.
                for (m = 1; m < 10000; m++) {
                    keel_arena_fail_after (arena, m);
                    ProtobufCMessage *msg =
                        keel_codec_payload (env, desc, alloc);
                    if (msg) {
                        s_assert_packs_to (msg, data, size);
                        break;
                    }
                }
                keel_arena_fail_after (arena, 0);
                keel_arena_reset (arena);
                break;
            }
            ck_assert_int_lt (n, 1000);
            ck_assert_int_ge (m, 2);
            ck_assert_int_lt (m, 10000);
            zframe_destroy (&frame);
            free (data);
        }
    }
    s_bytes_len = 24;
    keel_arena_destroy (&arena);
}
END_TEST

//  Decode `text` with keel_json's Nth allocation failing, N = 1, 2, ...
//  until it succeeds and packs to `data`. Returns that N, or -1 with
//  s_json_why set.
static char s_json_why[256];

static int
s_json_faults (const ProtobufCMessageDescriptor *desc, const char *text,
               const uint8_t *data, size_t size)
{
    for (int n = 1; n < 10000; n++) {
        keel_json_fail_after (n);
        char *error = NULL;
        ProtobufCMessage *msg = keel_json_decode (desc, text, &error);
        keel_json_fail_after (0);
        if (msg) {
            uint8_t *again = NULL;
            size_t again_size = 0;
            bool same = keel_codec_pack (msg, &again, &again_size) == 0 &&
                        again_size == size && !memcmp (again, data, size);
            free (again);
            protobuf_c_message_free_unpacked (msg, NULL);
            if (error || !same) {
                snprintf (s_json_why, sizeof s_json_why,
                          "%s: decoded at fault %d %s", desc->name, n,
                          error ? "with an error" : "differently");
                free (error);
                return -1;
            }
            return n;
        }
        size_t len = error ? strlen (error) : 0;
        if (error && (len < 13 || !streq (error + len - 13, "out of memory"))) {
            snprintf (s_json_why, sizeof s_json_why, "%s: fault %d: %s",
                      desc->name, n, error);
            free (error);
            return -1;
        }
        free (error);
    }
    snprintf (s_json_why, sizeof s_json_why, "%s: never decoded", desc->name);
    return -1;
}

//  keel_json_decode of every type, keel_json's Nth allocation failing: NULL
//  with "... out of memory" (or no text at all), nothing kept.
START_TEST (test_json_every_type)
{
    for (size_t d = 0; d < S_N_DESCRIPTORS; d++) {
        const ProtobufCMessageDescriptor *desc = s_descriptors[d];
        ProtobufCMessage *example = s_example_of (desc, 0);
        uint8_t *data;
        size_t size;
        ck_assert_int_eq (keel_codec_pack (example, &data, &size), 0);
        char *text = keel_json_encode (example, 0);
        ck_assert_ptr_nonnull (text);
        protobuf_c_message_free_unpacked (example, NULL);
        //  keel_json allocates with malloc, not through an allocator of
        //  ours: a leak on a failure path is for valgrind and LeakSanitizer
        //  to see (both run this suite). mallinfo2 is no help: in Check's
        //  fork mode the heap moves by a few chunks from run to run.
        int n = s_json_faults (desc, text, data, size);
        ck_assert_msg (n >= 2, "%s", s_json_why);
        free (text);
        free (data);
    }
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("fault_alloc");
    TCase *tc = tcase_create ("alloc");
    tcase_add_checked_fixture (tc, s_load_descriptors, s_unload_descriptors);
    tcase_add_test (tc, test_table);
    tcase_add_test (tc, test_unpack_every_type);
    tcase_add_test (tc, test_codec_counting);
    tcase_add_test (tc, test_codec_arena);
    tcase_add_test (tc, test_json_every_type);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
