/*  test_json.c - keel_json: exact JSON for the schema messages, round trips
    that pack to the same bytes, every field type through a hand-declared
    message, every input error with its field path, UTF-8 repair, base64,
    limits and allocation failure. Public API only. */
#include "keel_json.h"
#include "envelope.pb-c.h"
#include "node.pb-c.h"
#include "registry.pb-c.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BIG_CORRELATION 0xF00DFACEDEADBEEFULL //  > 2^53: a JSON string
#define SAFE_INTEGER    (UINT64_C (1) << 53)
#define REPLACEMENT     "\xEF\xBF\xBD" //  U+FFFD in UTF-8

// ---------------------------------------------------------------------------
//  keel.test.Every, declared by hand so that every field type, a oneof, maps
//  with non-string keys and proto2-style optional fields are covered without
//  a test-only .proto. The layout is the one protoc-c generates for:
//
//    message Every {
//      int32 i32 = 1;      int64 i64 = 2;      uint32 u32 = 3;
//      uint64 u64 = 4;     sint32 s32 = 5;     sint64 s64 = 6;
//      fixed32 f32 = 7;    fixed64 f64 = 8;    sfixed32 sf32 = 9;
//      sfixed64 sf64 = 10; float fl = 11;      double db = 12;
//      bool b = 13;        keel.ErrorCode code = 14;
//      string s = 15;      bytes by = 16;
//      repeated sint64 r_i64 = 17;  repeated keel.Kind r_kind = 18;
//      repeated bytes r_by = 19;    repeated double r_db = 20;
//      repeated bool r_b = 21;
//      map<int64, keel.HealthCheck> checks = 22;
//      map<bool, keel.Kind> flags = 23;
//      oneof choice { string c_text = 24; uint64 c_num = 25;
//                     keel.Instance c_inst = 26; }
//      optional sint32 opt = 27;                      // proto2: has_opt
//      optional string opt_s = 28 [default = "dflt"]; // proto2
//      Every child = 29;
//    }

typedef struct s_every_t s_every_t;

typedef struct {
    ProtobufCMessage base;
    int64_t key;
    Keel__HealthCheck *value;
} s_checks_entry_t;

typedef struct {
    ProtobufCMessage base;
    protobuf_c_boolean key;
    Keel__Kind value;
} s_flags_entry_t;

struct s_every_t {
    ProtobufCMessage base;
    int32_t i32;
    int64_t i64;
    uint32_t u32;
    uint64_t u64;
    int32_t s32;
    int64_t s64;
    uint32_t f32;
    uint64_t f64;
    int32_t sf32;
    int64_t sf64;
    float fl;
    double db;
    protobuf_c_boolean b;
    Keel__ErrorCode code;
    char *s;
    ProtobufCBinaryData by;
    size_t n_r_i64;
    int64_t *r_i64;
    size_t n_r_kind;
    Keel__Kind *r_kind;
    size_t n_r_by;
    ProtobufCBinaryData *r_by;
    size_t n_r_db;
    double *r_db;
    size_t n_r_b;
    protobuf_c_boolean *r_b;
    size_t n_checks;
    s_checks_entry_t **checks;
    size_t n_flags;
    s_flags_entry_t **flags;
    uint32_t choice_case;
    union {
        char *c_text;
        uint64_t c_num;
        Keel__Instance *c_inst;
    };
    protobuf_c_boolean has_opt;
    int32_t opt;
    char *opt_s;
    s_every_t *child;
};

static char s_opt_s_default[] = "dflt";
static const ProtobufCMessageDescriptor s_every_descriptor;
static const ProtobufCMessageDescriptor s_checks_entry_descriptor;
static const ProtobufCMessageDescriptor s_flags_entry_descriptor;

static void
s_every_init (ProtobufCMessage *msg)
{
    s_every_t *every = (s_every_t *)msg;
    memset (every, 0, sizeof *every);
    every->base.descriptor = &s_every_descriptor;
    every->s = (char *)protobuf_c_empty_string;
    every->opt_s = s_opt_s_default;
}

static void
s_checks_entry_init (ProtobufCMessage *msg)
{
    memset (msg, 0, sizeof (s_checks_entry_t));
    msg->descriptor = &s_checks_entry_descriptor;
}

static void
s_flags_entry_init (ProtobufCMessage *msg)
{
    memset (msg, 0, sizeof (s_flags_entry_t));
    msg->descriptor = &s_flags_entry_descriptor;
}

#define S_FIELD(s, name, id, label, type, quantifier, desc, deflt, flags)      \
    {                                                                          \
#name, id, PROTOBUF_C_LABEL_##label, PROTOBUF_C_TYPE_##type,           \
            quantifier, offsetof(s, name), desc, deflt, flags, 0, NULL, NULL   \
    }
#define S_PLAIN(name, id, type)                                                \
    S_FIELD (s_every_t, name, id, NONE, type, 0, NULL, NULL, 0)
#define S_REPEATED(name, id, type, desc)                                       \
    S_FIELD (s_every_t, name, id, REPEATED, type,                              \
             offsetof (s_every_t, n_##name), desc, NULL, 0)
#define S_ONEOF(name, id, type, desc, deflt)                                   \
    S_FIELD (s_every_t, name, id, NONE, type,                                  \
             offsetof (s_every_t, choice_case), desc, deflt,                   \
             PROTOBUF_C_FIELD_FLAG_ONEOF)

static const ProtobufCFieldDescriptor s_every_fields[] = {
    S_PLAIN (i32, 1, INT32),
    S_PLAIN (i64, 2, INT64),
    S_PLAIN (u32, 3, UINT32),
    S_PLAIN (u64, 4, UINT64),
    S_PLAIN (s32, 5, SINT32),
    S_PLAIN (s64, 6, SINT64),
    S_PLAIN (f32, 7, FIXED32),
    S_PLAIN (f64, 8, FIXED64),
    S_PLAIN (sf32, 9, SFIXED32),
    S_PLAIN (sf64, 10, SFIXED64),
    S_PLAIN (fl, 11, FLOAT),
    S_PLAIN (db, 12, DOUBLE),
    S_PLAIN (b, 13, BOOL),
    S_FIELD (s_every_t, code, 14, NONE, ENUM, 0, &keel__error_code__descriptor,
             NULL, 0),
    S_FIELD (s_every_t, s, 15, NONE, STRING, 0, NULL, &protobuf_c_empty_string,
             0),
    S_PLAIN (by, 16, BYTES),
    S_REPEATED (r_i64, 17, SINT64, NULL),
    S_REPEATED (r_kind, 18, ENUM, &keel__kind__descriptor),
    S_REPEATED (r_by, 19, BYTES, NULL),
    S_REPEATED (r_db, 20, DOUBLE, NULL),
    S_REPEATED (r_b, 21, BOOL, NULL),
    S_REPEATED (checks, 22, MESSAGE, &s_checks_entry_descriptor),
    S_REPEATED (flags, 23, MESSAGE, &s_flags_entry_descriptor),
    S_ONEOF (c_text, 24, STRING, NULL, &protobuf_c_empty_string),
    S_ONEOF (c_num, 25, UINT64, NULL, NULL),
    S_ONEOF (c_inst, 26, MESSAGE, &keel__instance__descriptor, NULL),
    S_FIELD (s_every_t, opt, 27, OPTIONAL, SINT32,
             offsetof (s_every_t, has_opt), NULL, NULL, 0),
    S_FIELD (s_every_t, opt_s, 28, OPTIONAL, STRING, 0, NULL, s_opt_s_default,
             0),
    S_FIELD (s_every_t, child, 29, NONE, MESSAGE, 0, &s_every_descriptor, NULL,
             0),
};
#define S_EVERY_FIELDS (sizeof s_every_fields / sizeof s_every_fields[0])

static const ProtobufCFieldDescriptor s_checks_entry_fields[] = {
    S_FIELD (s_checks_entry_t, key, 1, NONE, INT64, 0, NULL, NULL, 0),
    S_FIELD (s_checks_entry_t, value, 2, NONE, MESSAGE, 0,
             &keel__health_check__descriptor, NULL, 0),
};

static const ProtobufCFieldDescriptor s_flags_entry_fields[] = {
    S_FIELD (s_flags_entry_t, key, 1, NONE, BOOL, 0, NULL, NULL, 0),
    S_FIELD (s_flags_entry_t, value, 2, NONE, ENUM, 0, &keel__kind__descriptor,
             NULL, 0),
};

//  Field indices sorted by name; filled by s_every_setup.
static unsigned s_every_by_name[S_EVERY_FIELDS];
static const unsigned s_entry_by_name[] = {0, 1}; //  "key" < "value"
static const ProtobufCIntRange s_every_ranges[] = {{1, 0}, {0, S_EVERY_FIELDS}};
static const ProtobufCIntRange s_entry_ranges[] = {{1, 0}, {0, 2}};

static const ProtobufCMessageDescriptor s_every_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "keel.test.Every",
    "Every",
    "Every",
    "keel.test",
    sizeof (s_every_t),
    S_EVERY_FIELDS,
    s_every_fields,
    s_every_by_name,
    1,
    s_every_ranges,
    s_every_init,
    NULL,
    NULL,
    NULL};

static const ProtobufCMessageDescriptor s_checks_entry_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "keel.test.Every.ChecksEntry",
    "ChecksEntry",
    "ChecksEntry",
    "keel.test",
    sizeof (s_checks_entry_t),
    2,
    s_checks_entry_fields,
    s_entry_by_name,
    1,
    s_entry_ranges,
    s_checks_entry_init,
    NULL,
    NULL,
    NULL};

static const ProtobufCMessageDescriptor s_flags_entry_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "keel.test.Every.FlagsEntry",
    "FlagsEntry",
    "FlagsEntry",
    "keel.test",
    sizeof (s_flags_entry_t),
    2,
    s_flags_entry_fields,
    s_entry_by_name,
    1,
    s_entry_ranges,
    s_flags_entry_init,
    NULL,
    NULL,
    NULL};

static int
s_compare_names (const void *a, const void *b)
{
    return strcmp (s_every_fields[*(const unsigned *)a].name,
                   s_every_fields[*(const unsigned *)b].name);
}

static void
s_every_setup (void)
{
    for (unsigned i = 0; i < S_EVERY_FIELDS; i++)
        s_every_by_name[i] = i;
    qsort (s_every_by_name, S_EVERY_FIELDS, sizeof (unsigned), s_compare_names);
}

// ---------------------------------------------------------------------------
//  Helpers

//  Assert that two messages pack to the same bytes.
static void
s_assert_same_wire (const ProtobufCMessage *want, const ProtobufCMessage *got)
{
    size_t want_size = protobuf_c_message_get_packed_size (want);
    size_t got_size = protobuf_c_message_get_packed_size (got);
    ck_assert_uint_eq (got_size, want_size);
    uint8_t *want_data = (uint8_t *)malloc (want_size + 1);
    uint8_t *got_data = (uint8_t *)malloc (got_size + 1);
    ck_assert_ptr_nonnull (want_data);
    ck_assert_ptr_nonnull (got_data);
    protobuf_c_message_pack (want, want_data);
    protobuf_c_message_pack (got, got_data);
    ck_assert_mem_eq (got_data, want_data, want_size);
    free (want_data);
    free (got_data);
}

//  Decode `text` as `desc`; fail the test with the error if it does not.
static ProtobufCMessage *
s_decode_ok (const ProtobufCMessageDescriptor *desc, const char *text)
{
    char *error = NULL;
    ProtobufCMessage *msg = keel_json_decode (desc, text, &error);
    ck_assert_msg (msg != NULL, "decode %s: %s", text, error);
    ck_assert_ptr_null (error);
    return msg;
}

//  Assert that encode (msg, flags) gives exactly `want`, and that decoding
//  that text gives a message that packs to the same bytes as msg.
static void
s_assert_json (const ProtobufCMessage *msg, int flags, const char *want)
{
    char *text = keel_json_encode (msg, flags);
    ck_assert_ptr_nonnull (text);
    ck_assert_str_eq (text, want);
    ProtobufCMessage *back = s_decode_ok (msg->descriptor, text);
    s_assert_same_wire (msg, back);
    protobuf_c_message_free_unpacked (back, NULL);
    free (text);
}

//  Assert that decoding `text` as `desc` fails with exactly `want`.
static void
s_assert_error (const ProtobufCMessageDescriptor *desc, const char *text,
                const char *want)
{
    char *error = NULL;
    ProtobufCMessage *msg = keel_json_decode (desc, text, &error);
    ck_assert_msg (msg == NULL, "%s: decoded, expected '%s'", text, want);
    ck_assert_msg (error != NULL, "%s: no error text", text);
    ck_assert_msg (streq (error, want), "%s: got '%s', expected '%s'", text,
                   error, want);
    free (error);
    //  The error pointer is optional.
    ck_assert_ptr_null (keel_json_decode (desc, text, NULL));
}

//  Assert that decoding `text` as `desc` fails with an error that starts
//  with `prefix`.
static void
s_assert_error_prefix (const ProtobufCMessageDescriptor *desc, const char *text,
                       const char *prefix)
{
    char *error = NULL;
    ck_assert_ptr_null (keel_json_decode (desc, text, &error));
    ck_assert_ptr_nonnull (error);
    ck_assert_msg (strncmp (error, prefix, strlen (prefix)) == 0,
                   "%s: got '%s', expected '%s...'", text, error, prefix);
    free (error);
}

//  A deterministic generator for the randomized round trips.
static uint64_t
s_random (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

// ---------------------------------------------------------------------------
//  Schema messages: exact JSON and round trips

static const uint8_t s_payload[] = {0x00, 0x01, 0xFE, 0xFF, '"'};

static void
s_full_envelope (Keel__Envelope *env)
{
    keel__envelope__init (env);
    env->version = 1;
    env->kind = KEEL__KIND__REQUEST;
    env->type = (char *)"echo.say";
    env->correlation_id = BIG_CORRELATION;
    env->sender = (char *)"client-7";
    env->service = (char *)"echo";
    env->timeout_ms = 2500;
    env->trace_id = (char *)"trace-1";
    env->idempotency_key = (char *)"order-42:charge";
    env->sequence = 9;
    env->error_code = KEEL__ERROR_CODE__TIMEOUT;
    env->error_text = (char *)"no \"answer\"\n";
    env->payload.data = (uint8_t *)s_payload;
    env->payload.len = sizeof s_payload;
}

START_TEST (test_envelope_every_field)
{
    Keel__Envelope env;
    s_full_envelope (&env);
    s_assert_json (&env.base, 0,
                   "{\"version\":1,\"kind\":\"REQUEST\",\"type\":\"echo.say\","
                   "\"correlation_id\":\"17297757510206078703\","
                   "\"sender\":\"client-7\",\"service\":\"echo\","
                   "\"timeout_ms\":2500,\"trace_id\":\"trace-1\","
                   "\"idempotency_key\":\"order-42:charge\",\"sequence\":9,"
                   "\"error_code\":\"TIMEOUT\","
                   "\"error_text\":\"no \\\"answer\\\"\\n\","
                   "\"payload\":\"AAH+/yI=\"}");

    //  The tree has the JSON types the mapping promises.
    json_t *json = keel_json_from_message (&env.base, 0);
    ck_assert_ptr_nonnull (json);
    ck_assert (json_is_object (json));
    ck_assert_uint_eq (json_object_size (json), 13);
    ck_assert (json_is_integer (json_object_get (json, "version")));
    ck_assert (json_is_string (json_object_get (json, "correlation_id")));
    ck_assert_str_eq (json_string_value (json_object_get (json, "kind")),
                      "REQUEST");
    json_decref (json);
}
END_TEST

START_TEST (test_envelope_correlation_id)
{
    Keel__Envelope env;
    keel__envelope__init (&env);
    env.correlation_id = 42;
    s_assert_json (&env.base, 0, "{\"correlation_id\":42}");
    env.correlation_id = SAFE_INTEGER;
    s_assert_json (&env.base, 0, "{\"correlation_id\":9007199254740992}");
    env.correlation_id = SAFE_INTEGER + 1;
    s_assert_json (&env.base, 0, "{\"correlation_id\":\"9007199254740993\"}");
    env.correlation_id = UINT64_MAX;
    s_assert_json (&env.base, 0,
                   "{\"correlation_id\":\"18446744073709551615\"}");

    //  Input takes numbers and decimal strings for any value in range.
    const char *inputs[] = {
        "{\"correlation_id\":\"42\"}",
        "{\"correlation_id\":42}",
        "{\"correlation_id\":4.2e1}",
        "{\"correlation_id\":9007199254740993}",
        "{\"correlation_id\":\"18446744073709551615\"}",
    };
    const uint64_t values[] = {42, 42, 42, SAFE_INTEGER + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        Keel__Envelope *got = (Keel__Envelope *)s_decode_ok (
            &keel__envelope__descriptor, inputs[i]);
        ck_assert_uint_eq (got->correlation_id, values[i]);
        keel__envelope__free_unpacked (got, NULL);
    }
}
END_TEST

START_TEST (test_instance_tags_meta_check)
{
    char *tags[] = {(char *)"blue", (char *)"v2"};
    Keel__Instance__MetaEntry zone = KEEL__INSTANCE__META_ENTRY__INIT;
    zone.key = (char *)"zone";
    zone.value = (char *)"eu-1";
    Keel__Instance__MetaEntry owner = KEEL__INSTANCE__META_ENTRY__INIT;
    owner.key = (char *)"owner";
    owner.value = (char *)"ops";
    Keel__Instance__MetaEntry *meta[] = {&zone, &owner};
    Keel__HealthCheck check = KEEL__HEALTH_CHECK__INIT;
    check.ttl_ms = 5000;
    Keel__Instance instance = KEEL__INSTANCE__INIT;
    instance.id = (char *)"i-1";
    instance.service = (char *)"echo";
    instance.endpoint = (char *)"tcp://127.0.0.1:5555";
    instance.n_tags = 2;
    instance.tags = tags;
    instance.n_meta = 2;
    instance.meta = meta;
    instance.weight = 3;
    instance.check = &check;
    const char *want =
        "{\"id\":\"i-1\",\"service\":\"echo\","
        "\"endpoint\":\"tcp://127.0.0.1:5555\",\"tags\":[\"blue\",\"v2\"],"
        "\"meta\":{\"zone\":\"eu-1\",\"owner\":\"ops\"},\"weight\":3,"
        "\"check\":{\"ttl_ms\":5000}}";
    s_assert_json (&instance.base, 0, want);

    //  Nested one level down.
    Keel__RegisterRequest request = KEEL__REGISTER_REQUEST__INIT;
    request.instance = &instance;
    char *nested = zsys_sprintf ("{\"instance\":%s}", want);
    s_assert_json (&request.base, 0, nested);
    zstr_free (&nested);

    //  A set but empty sub-message is present: {} (and packs as present).
    check.ttl_ms = 0;
    instance.n_meta = 0;
    instance.n_tags = 0;
    s_assert_json (&instance.base, 0,
                   "{\"id\":\"i-1\",\"service\":\"echo\","
                   "\"endpoint\":\"tcp://127.0.0.1:5555\",\"weight\":3,"
                   "\"check\":{}}");

    //  Decoded fields hold what the JSON said.
    Keel__Instance *got = (Keel__Instance *)s_decode_ok (
        &keel__instance__descriptor,
        "{\"tags\":[\"a\",\"\"],\"meta\":{\"k\":\"v\",\"\":\"empty\"},"
        "\"check\":{}}");
    ck_assert_uint_eq (got->n_tags, 2);
    ck_assert_str_eq (got->tags[1], "");
    ck_assert_uint_eq (got->n_meta, 2);
    ck_assert_str_eq (got->meta[0]->key, "k");
    ck_assert_str_eq (got->meta[0]->value, "v");
    ck_assert_str_eq (got->meta[1]->key, "");
    ck_assert_ptr_nonnull (got->check);
    keel__instance__free_unpacked (got, NULL);
}
END_TEST

START_TEST (test_stats_and_node_info)
{
    Keel__Counter requests = KEEL__COUNTER__INIT;
    requests.name = (char *)"requests";
    requests.value = 12;
    Keel__Counter empty = KEEL__COUNTER__INIT;
    Keel__Counter errors = KEEL__COUNTER__INIT;
    errors.name = (char *)"errors";
    errors.value = UINT64_MAX - 1;
    Keel__Counter *counters[] = {&requests, &empty, &errors};
    Keel__Stats stats = KEEL__STATS__INIT;
    stats.name = (char *)"echo";
    stats.n_counters = 3;
    stats.counters = counters;
    s_assert_json (&stats.base, 0,
                   "{\"name\":\"echo\",\"counters\":["
                   "{\"name\":\"requests\",\"value\":12},{},"
                   "{\"name\":\"errors\",\"value\":\"18446744073709551614\"}"
                   "]}");

    Keel__ActorInfo echo = KEEL__ACTOR_INFO__INIT;
    echo.name = (char *)"echo";
    echo.endpoint = (char *)"inproc://echo";
    Keel__ActorInfo registry = KEEL__ACTOR_INFO__INIT;
    registry.name = (char *)"registry";
    registry.endpoint = (char *)"inproc://registry";
    registry.events = (char *)"inproc://registry-events";
    Keel__ActorInfo *actors[] = {&echo, &registry};
    Keel__NodeInfo info = KEEL__NODE_INFO__INIT;
    info.name = (char *)"node-1";
    info.bus = (char *)"tcp://*:7000";
    info.n_actors = 2;
    info.actors = actors;
    info.uptime_ms = 61000;
    s_assert_json (&info.base, 0,
                   "{\"name\":\"node-1\",\"bus\":\"tcp://*:7000\",\"actors\":["
                   "{\"name\":\"echo\",\"endpoint\":\"inproc://echo\"},"
                   "{\"name\":\"registry\",\"endpoint\":\"inproc://registry\","
                   "\"events\":\"inproc://registry-events\"}],"
                   "\"uptime_ms\":61000}");
}
END_TEST

START_TEST (test_empty_and_defaults)
{
    Keel__Envelope env;
    keel__envelope__init (&env);
    s_assert_json (&env.base, 0, "{}");
    s_assert_json (&env.base, KEEL_JSON_PRETTY, "{}");
    s_assert_json (
        &env.base, KEEL_JSON_DEFAULTS,
        "{\"version\":0,\"kind\":\"KIND_UNSPECIFIED\",\"type\":\"\","
        "\"correlation_id\":0,\"sender\":\"\",\"service\":\"\","
        "\"timeout_ms\":0,\"trace_id\":\"\",\"idempotency_key\":\"\","
        "\"sequence\":0,\"error_code\":\"OK\",\"error_text\":\"\","
        "\"payload\":\"\"}");

    //  Sub-messages have presence: an unset one stays out even with
    //  KEEL_JSON_DEFAULTS; repeated and map fields show as [] and {}.
    Keel__Instance instance = KEEL__INSTANCE__INIT;
    s_assert_json (&instance.base, 0, "{}");
    s_assert_json (&instance.base, KEEL_JSON_DEFAULTS,
                   "{\"id\":\"\",\"service\":\"\",\"endpoint\":\"\","
                   "\"tags\":[],\"meta\":{},\"weight\":0,"
                   "\"modify_index\":0,\"origin\":\"\",\"version\":0}");
    Keel__RegisterRequest request = KEEL__REGISTER_REQUEST__INIT;
    s_assert_json (&request.base, KEEL_JSON_DEFAULTS, "{}");
    request.instance = &instance;
    s_assert_json (&request.base, 0, "{\"instance\":{}}");

    //  Defaults given explicitly decode to the empty message.
    Keel__Envelope *got = (Keel__Envelope *)s_decode_ok (
        &keel__envelope__descriptor,
        "{\"version\":0,\"kind\":\"KIND_UNSPECIFIED\",\"type\":\"\","
        "\"payload\":\"\",\"sequence\":\"0\",\"error_code\":0}");
    ck_assert_uint_eq (protobuf_c_message_get_packed_size (&got->base), 0);
    keel__envelope__free_unpacked (got, NULL);

    //  null stands for the default.
    got = (Keel__Envelope *)s_decode_ok (
        &keel__envelope__descriptor,
        "{\"version\":null,\"type\":null,\"payload\":null,\"kind\":null}");
    ck_assert_uint_eq (protobuf_c_message_get_packed_size (&got->base), 0);
    keel__envelope__free_unpacked (got, NULL);
    Keel__Instance *inst = (Keel__Instance *)s_decode_ok (
        &keel__instance__descriptor,
        "{\"tags\":null,\"meta\":null,\"check\":null}");
    ck_assert_uint_eq (inst->n_tags, 0);
    ck_assert_ptr_null (inst->check);
    keel__instance__free_unpacked (inst, NULL);
}
END_TEST

START_TEST (test_pretty)
{
    Keel__Counter counter = KEEL__COUNTER__INIT;
    counter.name = (char *)"a";
    counter.value = 1;
    Keel__Counter *counters[] = {&counter};
    Keel__Stats stats = KEEL__STATS__INIT;
    stats.name = (char *)"s";
    stats.n_counters = 1;
    stats.counters = counters;
    s_assert_json (&stats.base, KEEL_JSON_PRETTY,
                   "{\n"
                   "  \"name\": \"s\",\n"
                   "  \"counters\": [\n"
                   "    {\n"
                   "      \"name\": \"a\",\n"
                   "      \"value\": 1\n"
                   "    }\n"
                   "  ]\n"
                   "}");
}
END_TEST

START_TEST (test_invalid_utf8_output)
{
    Keel__Envelope env;
    keel__envelope__init (&env);
    //  A bad byte, a truncated pair, a truncated triple, an overlong '/', a
    //  surrogate, a value over U+10FFFF; then good 2-, 3- and 4-byte forms.
    env.type = (char *)"ok\xFF"
                       "\xC3("
                       "\xE2\x82"
                       "\xC0\xAF"
                       "\xED\xA0\x80"
                       "\xF4\x90\x80\x80"
                       "end \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    char *text = keel_json_encode (&env.base, 0);
    ck_assert_ptr_nonnull (text);
    ck_assert_str_eq (text, "{\"type\":\"ok" REPLACEMENT REPLACEMENT
                            "(" REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT
                                REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT
                                    REPLACEMENT REPLACEMENT REPLACEMENT
                            "end \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"}");
    //  Valid JSON: it parses, and decodes to the repaired text.
    json_error_t error;
    json_t *json = json_loads (text, 0, &error);
    ck_assert_ptr_nonnull (json);
    json_decref (json);
    Keel__Envelope *got =
        (Keel__Envelope *)s_decode_ok (&keel__envelope__descriptor, text);
    ck_assert_str_eq (got->type,
                      "ok" REPLACEMENT REPLACEMENT
                      "(" REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT
                          REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT
                              REPLACEMENT REPLACEMENT REPLACEMENT
                      "end \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
    keel__envelope__free_unpacked (got, NULL);
    free (text);

    //  Map keys and repeated strings are repaired too.
    char *tags[] = {(char *)"\x80"};
    Keel__Instance__MetaEntry entry = KEEL__INSTANCE__META_ENTRY__INIT;
    entry.key = (char *)"k\xFF";
    entry.value = (char *)"\xFEv";
    Keel__Instance__MetaEntry *meta[] = {&entry};
    Keel__Instance instance = KEEL__INSTANCE__INIT;
    instance.n_tags = 1;
    instance.tags = tags;
    instance.n_meta = 1;
    instance.meta = meta;
    text = keel_json_encode (&instance.base, 0);
    ck_assert_ptr_nonnull (text);
    ck_assert_str_eq (text, "{\"tags\":[\"" REPLACEMENT
                            "\"],\"meta\":{\"k" REPLACEMENT "\":\"" REPLACEMENT
                            "v\"}}");
    free (text);
}
END_TEST

// ---------------------------------------------------------------------------
//  Base64

START_TEST (test_base64_vectors)
{
    //  RFC 4648 section 10, through Envelope.payload.
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                           "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 1; i < 7; i++) {
        Keel__Envelope env;
        keel__envelope__init (&env);
        env.payload.data = (uint8_t *)plain[i];
        env.payload.len = strlen (plain[i]);
        char *want = zsys_sprintf ("{\"payload\":\"%s\"}", coded[i]);
        s_assert_json (&env.base, 0, want);
        zstr_free (&want);
    }

    //  Every byte value, at every length mod 3.
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)(255 - i);
    for (size_t len = 250; len <= 256; len++) {
        Keel__Envelope env;
        keel__envelope__init (&env);
        env.payload.data = all;
        env.payload.len = len;
        char *text = keel_json_encode (&env.base, 0);
        ck_assert_ptr_nonnull (text);
        Keel__Envelope *got =
            (Keel__Envelope *)s_decode_ok (&keel__envelope__descriptor, text);
        ck_assert_uint_eq (got->payload.len, len);
        ck_assert_mem_eq (got->payload.data, all, len);
        keel__envelope__free_unpacked (got, NULL);
        free (text);
    }

    //  Input also takes the URL-safe alphabet and no padding.
    const char *inputs[] = {"Zm9vYg", "Zm9vYmE", "-_8=", "-_8", "AA==", "AA"};
    const char *outputs[] = {"foob", "fooba", "\xFB\xFF", "\xFB\xFF", "", ""};
    const size_t sizes[] = {4, 5, 2, 2, 1, 1};
    for (size_t i = 0; i < 6; i++) {
        char *text = zsys_sprintf ("{\"payload\":\"%s\"}", inputs[i]);
        Keel__Envelope *got =
            (Keel__Envelope *)s_decode_ok (&keel__envelope__descriptor, text);
        ck_assert_uint_eq (got->payload.len, sizes[i]);
        ck_assert_mem_eq (got->payload.data, outputs[i], sizes[i]);
        keel__envelope__free_unpacked (got, NULL);
        zstr_free (&text);
    }
}
END_TEST

START_TEST (test_base64_invalid)
{
    const char *inputs[] = {
        "A",         //  a lone digit carries no whole byte
        "Zg=",       //  padding without a multiple of 4
        "Z===",      //  too much padding
        "====",      //  padding only
        "Zg==Zg==",  //  padding inside
        "Zm9v Yg==", //  space
        "Zm9v\\n",   //  newline
        "Zh==",      //  leftover bits not zero: not canonical
        "Zm9=",      //  same, one pad
        "Zm9vYg=\\u00e9",
        "*AAA",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char *text = zsys_sprintf ("{\"payload\":\"%s\"}", inputs[i]);
        s_assert_error (&keel__envelope__descriptor, text,
                        "payload: invalid base64");
        zstr_free (&text);
    }
}
END_TEST

// ---------------------------------------------------------------------------
//  Input: what is accepted, what is refused

START_TEST (test_decode_accepts)
{
    Keel__Envelope *env = (Keel__Envelope *)s_decode_ok (
        &keel__envelope__descriptor,
        "{\"kind\":3,\"error_code\":\"UNKNOWN_SERVICE\",\"version\":\"7\","
        "\"timeout_ms\":4294967295,\"sequence\":1e3,\"type\":\"a\\u00e9\\n\"}");
    ck_assert_int_eq (env->kind, KEEL__KIND__EVENT);
    ck_assert_int_eq (env->error_code, KEEL__ERROR_CODE__UNKNOWN_SERVICE);
    ck_assert_uint_eq (env->version, 7);
    ck_assert_uint_eq (env->timeout_ms, UINT32_MAX);
    ck_assert_uint_eq (env->sequence, 1000);
    ck_assert_str_eq (env->type, "a\xC3\xA9\n");
    keel__envelope__free_unpacked (env, NULL);

    //  An enum number without a name (a newer peer's) is kept and printed
    //  back as a number.
    env = (Keel__Envelope *)s_decode_ok (&keel__envelope__descriptor,
                                         "{\"kind\":42,\"error_code\":-3}");
    ck_assert_int_eq (env->kind, 42);
    char *text = keel_json_encode (&env->base, 0);
    ck_assert_str_eq (text, "{\"kind\":42,\"error_code\":-3}");
    free (text);
    keel__envelope__free_unpacked (env, NULL);

    //  Whitespace and key order do not matter.
    Keel__Stats *stats = (Keel__Stats *)s_decode_ok (
        &keel__stats__descriptor,
        " {\n \"counters\" : [ { \"value\" : 2 , \"name\" : \"b\" } ] ,"
        " \"name\" : \"x\" }\n");
    ck_assert_str_eq (stats->name, "x");
    ck_assert_uint_eq (stats->n_counters, 1);
    ck_assert_str_eq (stats->counters[0]->name, "b");
    ck_assert_uint_eq (stats->counters[0]->value, 2);
    keel__stats__free_unpacked (stats, NULL);
}
END_TEST

START_TEST (test_decode_errors)
{
    const ProtobufCMessageDescriptor *env = &keel__envelope__descriptor;
    const ProtobufCMessageDescriptor *reg = &keel__register_request__descriptor;
    const ProtobufCMessageDescriptor *stats = &keel__stats__descriptor;
    struct {
        const ProtobufCMessageDescriptor *desc;
        const char *text;
        const char *error;
    } cases[] = {
        {env, "[]", "expected an object"},
        {env, "{\"bogus\":1}", "bogus: unknown field"},
        {env, "{\"Version\":1}", "Version: unknown field"},
        {env, "{\"timeoutMs\":1}", "timeoutMs: unknown field"},
        {env, "{\"version\":\"x\"}", "version: expected an integer, got \"x\""},
        {env, "{\"version\":\"\"}", "version: expected an integer, got \"\""},
        {env, "{\"version\":\" 1\"}",
         "version: expected an integer, got \" 1\""},
        {env, "{\"version\":-1}", "version: -1 is out of range"},
        {env, "{\"version\":4294967296}",
         "version: 4294967296 is out of range"},
        {env, "{\"version\":1.5}", "version: expected an integer, got 1.5"},
        {env, "{\"version\":true}", "version: expected an integer"},
        {env, "{\"version\":[1]}", "version: expected an integer"},
        {env, "{\"kind\":\"NOPE\"}", "kind: unknown Kind value \"NOPE\""},
        {env, "{\"kind\":\"request\"}", "kind: unknown Kind value \"request\""},
        {env, "{\"kind\":2147483648}", "kind: 2147483648 is out of range"},
        {env, "{\"kind\":true}",
         "kind: expected a name or number of enum Kind"},
        {env, "{\"error_code\":{}}",
         "error_code: expected a name or number of enum ErrorCode"},
        {env, "{\"type\":5}", "type: expected a string"},
        {env, "{\"payload\":5}", "payload: expected a base64 string"},
        {env, "{\"correlation_id\":\"-1\"}",
         "correlation_id: -1 is out of range"},
        {env, "{\"correlation_id\":-1}", "correlation_id: -1 is out of range"},
        {env, "{\"correlation_id\":\"18446744073709551616\"}",
         "correlation_id: 18446744073709551616 is out of range"},
        {env, "{\"correlation_id\":1.8446744073709552e19}",
         "correlation_id: 1.84467e+19 is out of range"},
        {env, "{\"correlation_id\":\"12a\"}",
         "correlation_id: expected an integer, got \"12a\""},
        {env, "{\"correlation_id\":\"+1\"}",
         "correlation_id: expected an integer, got \"+1\""},
        {env, "{\"correlation_id\":\"1e3\"}",
         "correlation_id: expected an integer, got \"1e3\""},
        {reg, "{\"instance\":[]}", "instance: expected an object"},
        {reg, "{\"instance\":{\"meta\":[]}}",
         "instance.meta: expected an object"},
        {reg, "{\"instance\":{\"meta\":{\"k\":1}}}",
         "instance.meta[k]: expected a string"},
        {reg, "{\"instance\":{\"meta\":{\"k\":null}}}",
         "instance.meta[k]: expected a string"},
        {reg, "{\"instance\":{\"tags\":\"a\"}}",
         "instance.tags: expected an array"},
        {reg, "{\"instance\":{\"tags\":[\"a\",1]}}",
         "instance.tags[1]: expected a string"},
        {reg, "{\"instance\":{\"tags\":[null]}}",
         "instance.tags[0]: expected a string"},
        {reg, "{\"instance\":{\"check\":{\"ttl_ms\":-5}}}",
         "instance.check.ttl_ms: -5 is out of range"},
        {reg, "{\"instance\":{\"check\":{\"nope\":1}}}",
         "instance.check.nope: unknown field"},
        {reg, "{\"instance\":{\"weight\":1,\"x\":2}}",
         "instance.x: unknown field"},
        {stats, "{\"counters\":[{\"value\":\"x\"}]}",
         "counters[0].value: expected an integer, got \"x\""},
        {stats, "{\"counters\":[{},null]}", "counters[1]: expected an object"},
        {stats, "{\"counters\":{}}", "counters: expected an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_assert_error (cases[i].desc, cases[i].text, cases[i].error);

    //  A long map key is cut in the error, at a character boundary.
    char *key = zsys_sprintf ("%063d\xC3\xA9tail", 0);
    char *text = zsys_sprintf ("{\"meta\":{\"%s\":2}}", key);
    char *want = zsys_sprintf ("meta[%063d...]: expected a string", 0);
    s_assert_error (&keel__instance__descriptor, text, want);
    zstr_free (&key);
    zstr_free (&text);
    zstr_free (&want);
}
END_TEST

START_TEST (test_decode_syntax_and_limits)
{
    const ProtobufCMessageDescriptor *env = &keel__envelope__descriptor;
    s_assert_error (env, "{\"version\":",
                    "line 1 column 11: unexpected token near end of file");
    s_assert_error (env, "{\"type\":\"a\",\n\"type\":\"b\"}",
                    "line 2 column 6: duplicate object key near '\"type\"'");
    s_assert_error_prefix (env, "", "line 1 column 0: ");
    s_assert_error_prefix (env, "5", "line 1 column 1: ");
    s_assert_error_prefix (env, "{} {}", "line 1 column 4: ");
    s_assert_error_prefix (env, "{\"type\":\"a\\u0000b\"}", "line 1 column ");
    s_assert_error_prefix (env, "{\"type\":\"\xFF\"}", "line 1 column ");
    s_assert_error_prefix (env, "{\"sequence\":99999999999999999999}",
                           "line 1 column ");

    //  Exactly the limit is fine; one byte more is refused unparsed.
    size_t limit = KEEL_JSON_MAX_TEXT;
    char *big = (char *)malloc (limit + 2);
    ck_assert_ptr_nonnull (big);
    memset (big, 'a', limit + 1);
    memcpy (big, "{\"error_text\":\"", 15);
    memcpy (big + limit - 2, "\"}", 3);
    Keel__Envelope *got = (Keel__Envelope *)s_decode_ok (env, big);
    ck_assert_uint_eq (strlen (got->error_text), limit - 17);
    keel__envelope__free_unpacked (got, NULL);
    memset (big + limit - 2, 'a', 3);
    memcpy (big + limit - 1, "\"}", 3);
    s_assert_error (env, big, "JSON text is larger than 1048576 bytes");
    free (big);
}
END_TEST

START_TEST (test_to_message_from_tree)
{
    char *error = NULL;
    ck_assert_ptr_null (
        keel_json_to_message (&keel__envelope__descriptor, NULL, &error));
    ck_assert_str_eq (error, "expected an object");
    free (error);

    //  Strings built in code may hold NUL, which a C string cannot.
    json_t *json = json_pack ("{s:s%}", "type", "a\0b", (size_t)3);
    ck_assert_ptr_nonnull (json);
    ck_assert_ptr_null (
        keel_json_to_message (&keel__envelope__descriptor, json, &error));
    ck_assert_str_eq (error, "type: string contains a NUL character");
    free (error);
    json_decref (json);

    json = json_object ();
    json_t *meta = json_object ();
    json_object_set_new (json, "meta", meta);
    json_object_setn_new (meta, "a\0b", 3, json_string ("v"));
    ck_assert_ptr_null (
        keel_json_to_message (&keel__instance__descriptor, json, &error));
    ck_assert_str_eq (error, "meta[a]: map key contains a NUL character");
    free (error);
    json_object_del (json, "meta");
    json_object_setn_new (json, "id\0x", 4, json_string ("v"));
    ck_assert_ptr_null (
        keel_json_to_message (&keel__instance__descriptor, json, &error));
    ck_assert_str_eq (error, "id: unknown field");
    free (error);
    json_decref (json);

    //  A tree from keel_json_from_message goes back unchanged.
    Keel__Envelope env;
    s_full_envelope (&env);
    json = keel_json_from_message (&env.base, KEEL_JSON_DEFAULTS);
    ck_assert_ptr_nonnull (json);
    ProtobufCMessage *back =
        keel_json_to_message (&keel__envelope__descriptor, json, &error);
    ck_assert_ptr_nonnull (back);
    ck_assert_ptr_null (error);
    s_assert_same_wire (&env.base, back);
    protobuf_c_message_free_unpacked (back, NULL);
    json_decref (json);
}
END_TEST

// ---------------------------------------------------------------------------
//  Every field type, through the hand-declared message

//  keel.test.Every with every field set, as test_every_type builds it.
static const char s_every_json[] =
    "{\"i32\":-5,\"i64\":\"-9007199254740993\",\"u32\":4294967295,"
    "\"u64\":\"18446744073709551615\",\"s32\":-2147483648,"
    "\"s64\":\"-9223372036854775808\",\"f32\":7,"
    "\"f64\":9007199254740992,\"sf32\":-1,\"sf64\":-9007199254740992,"
    "\"fl\":0.5,\"db\":\"-Infinity\",\"b\":true,\"code\":\"TIMEOUT\","
    "\"s\":\"h\xC3\xA9llo\",\"by\":\"AP8=\","
    "\"r_i64\":[1,-1,\"9223372036854775807\"],"
    "\"r_kind\":[\"REQUEST\",99],\"r_by\":[\"\",\"YQ==\"],"
    "\"r_db\":[1.5,\"NaN\",\"Infinity\",-0.0],\"r_b\":[true,false],"
    "\"checks\":{\"-3\":{\"ttl_ms\":10},\"1152921504606846976\":{}},"
    "\"flags\":{\"true\":\"EVENT\",\"false\":\"KIND_UNSPECIFIED\"},"
    "\"c_num\":0,\"opt\":0,\"child\":{\"i32\":1}}";

START_TEST (test_every_type)
{
    s_every_t child;
    s_every_init (&child.base);
    child.i32 = 1;
    Keel__HealthCheck ten = KEEL__HEALTH_CHECK__INIT;
    ten.ttl_ms = 10;
    Keel__HealthCheck none = KEEL__HEALTH_CHECK__INIT;
    s_checks_entry_t check_a, check_b;
    s_checks_entry_init (&check_a.base);
    s_checks_entry_init (&check_b.base);
    check_a.key = -3;
    check_a.value = &ten;
    check_b.key = INT64_C (1) << 60;
    check_b.value = &none;
    s_checks_entry_t *checks[] = {&check_a, &check_b};
    s_flags_entry_t flag_a, flag_b;
    s_flags_entry_init (&flag_a.base);
    s_flags_entry_init (&flag_b.base);
    flag_a.key = 1;
    flag_a.value = KEEL__KIND__EVENT;
    s_flags_entry_t *flags[] = {&flag_a, &flag_b};
    int64_t r_i64[] = {1, -1, INT64_MAX};
    Keel__Kind r_kind[] = {KEEL__KIND__REQUEST, (Keel__Kind)99};
    ProtobufCBinaryData r_by[] = {{0, NULL}, {1, (uint8_t *)"a"}};
    double r_db[] = {1.5, NAN, INFINITY, -0.0};
    protobuf_c_boolean r_b[] = {1, 0};
    uint8_t by[] = {0x00, 0xFF};

    s_every_t every;
    s_every_init (&every.base);
    every.i32 = -5;
    every.i64 = -(int64_t)SAFE_INTEGER - 1;
    every.u32 = UINT32_MAX;
    every.u64 = UINT64_MAX;
    every.s32 = INT32_MIN;
    every.s64 = INT64_MIN;
    every.f32 = 7;
    every.f64 = SAFE_INTEGER;
    every.sf32 = -1;
    every.sf64 = -(int64_t)SAFE_INTEGER;
    every.fl = 0.5f;
    every.db = -INFINITY;
    every.b = 1;
    every.code = KEEL__ERROR_CODE__TIMEOUT;
    every.s = (char *)"h\xC3\xA9llo";
    every.by.data = by;
    every.by.len = sizeof by;
    every.n_r_i64 = 3;
    every.r_i64 = r_i64;
    every.n_r_kind = 2;
    every.r_kind = r_kind;
    every.n_r_by = 2;
    every.r_by = r_by;
    every.n_r_db = 4;
    every.r_db = r_db;
    every.n_r_b = 2;
    every.r_b = r_b;
    every.n_checks = 2;
    every.checks = checks;
    every.n_flags = 2;
    every.flags = flags;
    every.choice_case = 25;
    every.c_num = 0;
    every.has_opt = 1;
    every.opt = 0;
    every.child = &child;
    s_assert_json (&every.base, 0, s_every_json);

    //  The other oneof members; a proto2 string away from its default.
    Keel__Instance inst = KEEL__INSTANCE__INIT;
    inst.id = (char *)"x";
    s_every_t other;
    s_every_init (&other.base);
    other.choice_case = 26;
    other.c_inst = &inst;
    other.opt_s = (char *)"";
    s_assert_json (&other.base, 0,
                   "{\"c_inst\":{\"id\":\"x\"},\"opt_s\":\"\"}");
    other.choice_case = 24;
    other.c_text = (char *)"t";
    s_assert_json (&other.base, 0, "{\"c_text\":\"t\",\"opt_s\":\"\"}");

    //  With defaults: fields without presence only.
    s_every_t empty;
    s_every_init (&empty.base);
    s_assert_json (&empty.base, 0, "{}");
    s_assert_json (&empty.base, KEEL_JSON_DEFAULTS,
                   "{\"i32\":0,\"i64\":0,\"u32\":0,\"u64\":0,\"s32\":0,"
                   "\"s64\":0,\"f32\":0,\"f64\":0,\"sf32\":0,\"sf64\":0,"
                   "\"fl\":0.0,\"db\":0.0,\"b\":false,\"code\":\"OK\","
                   "\"s\":\"\",\"by\":\"\",\"r_i64\":[],\"r_kind\":[],"
                   "\"r_by\":[],\"r_db\":[],\"r_b\":[],\"checks\":{},"
                   "\"flags\":{}}");
}
END_TEST

START_TEST (test_every_type_input)
{
    s_every_t *got = (s_every_t *)s_decode_ok (
        &s_every_descriptor,
        "{\"i32\":\"-7\",\"u32\":1e3,\"i64\":-0,\"code\":7,"
        "\"db\":\"1.25\",\"fl\":\"NaN\",\"r_db\":[\"-Infinity\",2,\"-3e2\"],"
        "\"s\":null,\"c_text\":null,\"c_num\":\"3\",\"by\":\"-_8\","
        "\"opt\":0,\"opt_s\":\"dflt\","
        "\"checks\":{\"-9223372036854775808\":{},\"5\":{\"ttl_ms\":1}},"
        "\"flags\":{\"false\":1,\"true\":\"ONEWAY\"},"
        "\"child\":{\"child\":{\"b\":true}}}");
    ck_assert_int_eq (got->i32, -7);
    ck_assert_uint_eq (got->u32, 1000);
    ck_assert_int_eq (got->i64, 0);
    ck_assert_int_eq (got->code, KEEL__ERROR_CODE__INTERNAL);
    ck_assert (got->db == 1.25);
    ck_assert (isnan (got->fl));
    ck_assert_uint_eq (got->n_r_db, 3);
    ck_assert (got->r_db[0] == -INFINITY);
    ck_assert (got->r_db[1] == 2);
    ck_assert (got->r_db[2] == -300);
    ck_assert_str_eq (got->s, "");
    ck_assert_uint_eq (got->choice_case, 25);
    ck_assert_uint_eq (got->c_num, 3);
    ck_assert_uint_eq (got->by.len, 2);
    ck_assert (got->has_opt);
    ck_assert_int_eq (got->opt, 0);
    ck_assert_str_eq (got->opt_s, "dflt");
    ck_assert_uint_eq (got->n_checks, 2);
    ck_assert_int_eq (got->checks[0]->key, INT64_MIN);
    ck_assert_uint_eq (got->checks[1]->value->ttl_ms, 1);
    ck_assert_uint_eq (got->n_flags, 2);
    ck_assert (!got->flags[0]->key);
    ck_assert_int_eq (got->flags[0]->value, KEEL__KIND__REQUEST);
    ck_assert_int_eq (got->flags[1]->value, KEEL__KIND__ONEWAY);
    ck_assert (got->child->child->b);
    protobuf_c_message_free_unpacked (&got->base, NULL);

    //  Messages nest to KEEL_JSON_MAX_DEPTH and no deeper.
    for (int levels = KEEL_JSON_MAX_DEPTH; levels <= KEEL_JSON_MAX_DEPTH + 1;
         levels++) {
        char *text = (char *)calloc (1, (size_t)levels * 12 + 8);
        ck_assert_ptr_nonnull (text);
        for (int i = 1; i < levels; i++)
            strcat (text, "{\"child\":");
        strcat (text, "{}");
        for (int i = 1; i < levels; i++)
            strcat (text, "}");
        char *error = NULL;
        ProtobufCMessage *msg =
            keel_json_decode (&s_every_descriptor, text, &error);
        if (levels == KEEL_JSON_MAX_DEPTH) {
            ck_assert_ptr_nonnull (msg);
            protobuf_c_message_free_unpacked (msg, NULL);
        } else {
            ck_assert_ptr_null (msg);
            ck_assert_ptr_nonnull (strstr (error, "child.child.child"));
            ck_assert_ptr_nonnull (
                strstr (error, ": messages nested deeper than 64"));
            free (error);
        }
        free (text);
    }
}
END_TEST

START_TEST (test_every_type_errors)
{
    const ProtobufCMessageDescriptor *desc = &s_every_descriptor;
    struct {
        const char *text;
        const char *error;
    } cases[] = {
        {"{\"i32\":2147483648}", "i32: 2147483648 is out of range"},
        {"{\"i32\":-2147483649}", "i32: -2147483649 is out of range"},
        {"{\"s32\":\"-2147483649\"}", "s32: -2147483649 is out of range"},
        {"{\"sf32\":1e10}", "sf32: 10000000000 is out of range"},
        {"{\"f32\":-1}", "f32: -1 is out of range"},
        {"{\"u64\":\"18446744073709551616\"}",
         "u64: 18446744073709551616 is out of range"},
        {"{\"u64\":-1}", "u64: -1 is out of range"},
        {"{\"s64\":\"-9223372036854775809\"}",
         "s64: -9223372036854775809 is out of range"},
        {"{\"sf64\":\"9223372036854775808\"}",
         "sf64: 9223372036854775808 is out of range"},
        {"{\"i64\":1.5}", "i64: expected an integer, got 1.5"},
        {"{\"i64\":1e300}", "i64: 1e+300 is out of range"},
        {"{\"fl\":1e39}", "fl: 1e+39 is out of range for a float"},
        {"{\"fl\":\"-1e39\"}", "fl: -1e+39 is out of range for a float"},
        {"{\"db\":\"abc\"}", "db: expected a number, got \"abc\""},
        {"{\"db\":\"inf\"}", "db: expected a number, got \"inf\""},
        {"{\"db\":\"nan\"}", "db: expected a number, got \"nan\""},
        {"{\"db\":\"0x10\"}", "db: expected a number, got \"0x10\""},
        {"{\"db\":\" 1\"}", "db: expected a number, got \" 1\""},
        {"{\"db\":\"\"}", "db: expected a number, got \"\""},
        {"{\"db\":\"1e999\"}", "db: 1e999 is out of range"},
        {"{\"db\":true}", "db: expected a number"},
        {"{\"b\":\"true\"}", "b: expected true or false"},
        {"{\"b\":1}", "b: expected true or false"},
        {"{\"code\":\"NOPE\"}", "code: unknown ErrorCode value \"NOPE\""},
        {"{\"code\":1.5}", "code: expected an integer, got 1.5"},
        {"{\"code\":\"7\"}", "code: unknown ErrorCode value \"7\""},
        {"{\"r_i64\":[1,\"x\"]}", "r_i64[1]: expected an integer, got \"x\""},
        {"{\"r_kind\":[\"REQUEST\",\"BAD\"]}",
         "r_kind[1]: unknown Kind value \"BAD\""},
        {"{\"r_by\":[\"!!\"]}", "r_by[0]: invalid base64"},
        {"{\"r_b\":[true,null]}", "r_b[1]: expected true or false"},
        {"{\"checks\":{\"x\":{}}}",
         "checks[x]: map key must be a decimal integer"},
        {"{\"checks\":{\"\":{}}}",
         "checks[]: map key must be a decimal integer"},
        {"{\"checks\":{\"9223372036854775808\":{}}}",
         "checks[9223372036854775808]: map key is out of range"},
        {"{\"checks\":{\"1\":{\"ttl_ms\":\"y\"}}}",
         "checks[1].ttl_ms: expected an integer, got \"y\""},
        {"{\"checks\":{\"1\":null}}", "checks[1]: expected an object"},
        {"{\"checks\":[]}", "checks: expected an object"},
        {"{\"flags\":{\"yes\":\"EVENT\"}}",
         "flags[yes]: map key must be true or false"},
        {"{\"flags\":{\"true\":\"OK\"}}",
         "flags[true]: unknown Kind value \"OK\""},
        {"{\"c_text\":\"a\",\"c_num\":1}",
         "c_num: oneof already set by \"c_text\""},
        {"{\"c_inst\":{},\"c_text\":\"\"}",
         "c_text: oneof already set by \"c_inst\""},
        {"{\"c_inst\":{\"tags\":[7]}}", "c_inst.tags[0]: expected a string"},
        {"{\"child\":{\"child\":{\"bogus\":1}}}",
         "child.child.bogus: unknown field"},
        {"{\"child\":{\"r_kind\":[\"REQUEST\",{}]}}",
         "child.r_kind[1]: expected a name or number of enum Kind"},
        {"{\"child\":[]}", "child: expected an object"},
        {"{\"opt\":2147483648}", "opt: 2147483648 is out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_assert_error (desc, cases[i].text, cases[i].error);
}
END_TEST

// ---------------------------------------------------------------------------
//  Randomized round trips: decode (encode (m)) packs to the bytes of m

//  A random string of valid UTF-8 (ASCII, JSON escapes, 2/3/4-byte forms).
static char *
s_random_string (uint64_t *state, size_t max)
{
    static const char *pieces[] = {"a",
                                   "Z",
                                   "0",
                                   " ",
                                   "\"",
                                   "\\",
                                   "\n",
                                   "\t",
                                   "\x01",
                                   "/",
                                   "\xC3\xA9",
                                   "\xE2\x82\xAC",
                                   "\xF0\x9F\x98\x80"};
    size_t count = s_random (state) % (max + 1);
    char *text = (char *)calloc (1, count * 4 + 1);
    ck_assert_ptr_nonnull (text);
    for (size_t i = 0; i < count; i++)
        strcat (text, pieces[s_random (state) % 13]);
    return text;
}

//  A random 64-bit value, biased towards the interesting edges.
static uint64_t
s_random_u64 (uint64_t *state)
{
    uint64_t r = s_random (state);
    switch (r % 5) {
    case 0:
        return 0;
    case 1:
        return SAFE_INTEGER + (r >> 60) - 8;
    case 2:
        return (uint64_t)0 - SAFE_INTEGER + (r >> 60) - 8;
    case 3:
        return r >> (r % 64);
    default:
        return s_random (state);
    }
}

static double
s_random_double (uint64_t *state)
{
    uint64_t bits = s_random (state);
    double value;
    memcpy (&value, &bits, sizeof value);
    //  NaN payloads do not survive JSON; every NaN comes back as NAN.
    return isnan (value) ? NAN : value;
}

START_TEST (test_random_round_trips)
{
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (int round = 0; round < 300; round++) {
        int flags = round % 4 == 0   ? KEEL_JSON_DEFAULTS
                    : round % 4 == 1 ? KEEL_JSON_PRETTY
                                     : 0;
        //  Envelope, with kinds and codes past the named ones.
        uint8_t payload[40];
        for (size_t i = 0; i < sizeof payload; i++)
            payload[i] = (uint8_t)s_random (&state);
        Keel__Envelope env;
        keel__envelope__init (&env);
        char *strings[6];
        for (int i = 0; i < 6; i++)
            strings[i] = s_random_string (&state, 8);
        env.version = (uint32_t)s_random (&state);
        env.kind = (Keel__Kind)(s_random (&state) % 7);
        env.type = strings[0];
        env.correlation_id = s_random_u64 (&state);
        env.sender = strings[1];
        env.service = strings[2];
        env.timeout_ms = (uint32_t)(s_random (&state) % 3);
        env.trace_id = strings[3];
        env.idempotency_key = strings[4];
        env.sequence = s_random_u64 (&state);
        env.error_code = (Keel__ErrorCode)(s_random (&state) % 13);
        env.error_text = strings[5];
        env.payload.data = payload;
        env.payload.len = s_random (&state) % (sizeof payload + 1);
        char *text = keel_json_encode (&env.base, flags);
        ck_assert_ptr_nonnull (text);
        ProtobufCMessage *back = s_decode_ok (env.base.descriptor, text);
        s_assert_same_wire (&env.base, back);
        protobuf_c_message_free_unpacked (back, NULL);
        free (text);
        for (int i = 0; i < 6; i++)
            free (strings[i]);

        //  Every: every scalar type, random bits.
        s_every_t every;
        s_every_init (&every.base);
        every.i32 = (int32_t)s_random (&state);
        every.i64 = (int64_t)s_random_u64 (&state);
        every.u32 = (uint32_t)s_random_u64 (&state);
        every.u64 = s_random_u64 (&state);
        every.s32 = (int32_t)s_random_u64 (&state);
        every.s64 = (int64_t)s_random_u64 (&state);
        every.f32 = (uint32_t)s_random (&state);
        every.f64 = s_random_u64 (&state);
        every.sf32 = (int32_t)s_random (&state);
        every.sf64 = (int64_t)s_random_u64 (&state);
        uint32_t fl_bits = (uint32_t)s_random (&state);
        memcpy (&every.fl, &fl_bits, sizeof every.fl);
        if (isnan (every.fl))
            every.fl = NAN;
        every.db = s_random_double (&state);
        every.b = (protobuf_c_boolean)(s_random (&state) & 1);
        every.code = (Keel__ErrorCode)(s_random (&state) % 12);
        double r_db[3] = {s_random_double (&state), s_random_double (&state),
                          s_random_double (&state)};
        every.n_r_db = s_random (&state) % 4;
        every.r_db = r_db;
        int64_t r_i64[2] = {(int64_t)s_random_u64 (&state),
                            (int64_t)s_random_u64 (&state)};
        every.n_r_i64 = s_random (&state) % 3;
        every.r_i64 = r_i64;
        text = keel_json_encode (&every.base, flags);
        ck_assert_ptr_nonnull (text);
        back = s_decode_ok (&s_every_descriptor, text);
        s_assert_same_wire (&every.base, back);
        protobuf_c_message_free_unpacked (back, NULL);
        free (text);
    }
}
END_TEST

// ---------------------------------------------------------------------------
//  Allocation failure: jansson's allocations fail one by one while encoding.
//  jansson 2.14's json_dumps drops an object key whose append failed and
//  still returns text; keel_json_encode must return NULL or the whole text.

static int s_fail_after; //  fail the Nth allocation from now; 0 = never

static void *
s_failing_malloc (size_t size)
{
    if (s_fail_after > 0 && --s_fail_after == 0)
        return NULL;
    return malloc (size);
}

START_TEST (test_allocation_failure)
{
    //  jansson's allocations, encoding.
    Keel__Envelope env;
    s_full_envelope (&env);
    char *want = keel_json_encode (&env.base, KEEL_JSON_PRETTY);
    ck_assert_ptr_nonnull (want);
    json_set_alloc_funcs (s_failing_malloc, free);
    int n;
    for (n = 1; n < 1000; n++) {
        s_fail_after = n;
        char *text = keel_json_encode (&env.base, KEEL_JSON_PRETTY);
        if (text) {
            ck_assert_str_eq (text, want);
            free (text);
            break;
        }
    }
    ck_assert_int_gt (n, 10);
    ck_assert_int_lt (n, 1000);
    //  Not the decode side: jansson 2.14's lexer ignores a failed append
    //  (akheron/jansson#362) and then reads past its buffer, so parsing under
    //  allocation failure is jansson's bug, not testable here.
    s_fail_after = 0;
    json_set_alloc_funcs (malloc, free);
    free (want);

    //  keel_json's own allocations, decoding: every failure point frees
    //  what was built (valgrind checks) and says so.
    const char *texts[] = {
        s_every_json,
        "{\"c_inst\":{\"id\":\"i\",\"tags\":[\"a\",\"b\"],"
        "\"meta\":{\"k\":\"v\",\"l\":\"w\"},\"check\":{\"ttl_ms\":1}},"
        "\"opt_s\":\"x\",\"r_by\":[\"AA==\",\"AAA=\"]}",
    };
    for (size_t t = 0; t < 2; t++) {
        for (n = 1; n < 1000; n++) {
            keel_json_fail_after (n);
            char *error = NULL;
            ProtobufCMessage *msg =
                keel_json_decode (&s_every_descriptor, texts[t], &error);
            if (msg) {
                keel_json_fail_after (0);
                ck_assert_ptr_null (error);
                //  Encoding, including a string to repair: every failure
                //  point gives NULL, then the whole text.
                s_every_t *every = (s_every_t *)msg;
                if (every->s != protobuf_c_empty_string)
                    free (every->s);
                every->s = strdup ("bad\xFF");
                char *full = keel_json_encode (msg, KEEL_JSON_DEFAULTS);
                ck_assert_ptr_nonnull (full);
                int m;
                for (m = 1; m < 1000; m++) {
                    keel_json_fail_after (m);
                    char *text = keel_json_encode (msg, KEEL_JSON_DEFAULTS);
                    if (text) {
                        ck_assert_str_eq (text, full);
                        free (text);
                        break;
                    }
                }
                keel_json_fail_after (0);
                ck_assert_int_gt (m, 3);
                ck_assert_int_lt (m, 1000);
                free (full);
                protobuf_c_message_free_unpacked (msg, NULL);
                break;
            }
            //  The error text is the last allocation that can fail.
            if (error) {
                size_t len = strlen (error);
                ck_assert_uint_ge (len, 13);
                ck_assert_str_eq (error + len - 13, "out of memory");
            }
            free (error);
        }
        keel_json_fail_after (0);
        ck_assert_int_gt (n, 10);
        ck_assert_int_lt (n, 1000);
    }
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_json");
    TCase *tc = tcase_create ("json");
    tcase_add_test (tc, test_envelope_every_field);
    tcase_add_test (tc, test_envelope_correlation_id);
    tcase_add_test (tc, test_instance_tags_meta_check);
    tcase_add_test (tc, test_stats_and_node_info);
    tcase_add_test (tc, test_empty_and_defaults);
    tcase_add_test (tc, test_pretty);
    tcase_add_test (tc, test_invalid_utf8_output);
    tcase_add_test (tc, test_base64_vectors);
    tcase_add_test (tc, test_base64_invalid);
    tcase_add_test (tc, test_decode_accepts);
    tcase_add_test (tc, test_decode_errors);
    tcase_add_test (tc, test_decode_syntax_and_limits);
    tcase_add_test (tc, test_to_message_from_tree);
    tcase_add_test (tc, test_every_type);
    tcase_add_test (tc, test_every_type_input);
    tcase_add_test (tc, test_every_type_errors);
    tcase_add_test (tc, test_random_round_trips);
    tcase_add_test (tc, test_allocation_failure);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    s_every_setup ();
    return testutil_run (s_suite ());
}
