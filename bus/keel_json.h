/*  keel_json.h - the one JSON mapping of keel's protobuf messages.

    Used for the CLI's --json output and for JSON input (saga inputs, CLI
    arguments). Driven entirely by protobuf-c descriptors, so every message in
    schemas/ maps without code of its own. The mapping follows proto3's JSON
    mapping where that is cheap:

        proto                         JSON
        ----------------------------  -------------------------------------
        message                       object, keys = field names as written
                                      in the .proto ("correlation_id")
        enum                          value name ("REQUEST"); the number when
                                      the value has no name. In: name or number
        int32 uint32 sint32 fixed32   number. In: number or decimal string
        sfixed32
        int64 uint64 sint64 fixed64   number when |value| <= 2^53, else a
        sfixed64                      decimal string. In: number or string
        float double                  number; "NaN", "Infinity", "-Infinity"
        bool                          true / false
        string                        string; invalid UTF-8 becomes U+FFFD
        bytes                         standard base64 with padding. In: also
                                      URL-safe and unpadded
        repeated T                    array
        map<K, V>                     object keyed by the key as text
        null (input only)             the field's default

    Output omits fields at their default value (0, "", false, empty) unless
    KEEL_JSON_DEFAULTS; fields with presence (messages, oneof members, proto2
    optional) appear exactly when set, as on the wire. Input rejects unknown
    keys, wrong JSON types, out-of-range numbers, invalid base64 and unknown
    enum names, with a message naming the field path.
*/
#ifndef KEEL_JSON_H_INCLUDED
#define KEEL_JSON_H_INCLUDED

#include "keel_common.h"

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Flags for keel_json_from_message and keel_json_encode.
#define KEEL_JSON_PRETTY   1 //  indent 2, for humans (encode only)
#define KEEL_JSON_DEFAULTS 2 //  include fields at default values

//  Largest JSON text keel_json_decode accepts, in bytes (1 MiB).
#define KEEL_JSON_MAX_TEXT KEEL_DEFAULT_MAX_MSG_SIZE

//  Deepest nesting of messages keel_json_to_message accepts.
#define KEEL_JSON_MAX_DEPTH 64

//  Convert `msg` to a new JSON object. Caller owns the return value (a new
//  reference) and releases it with json_decref. Returns NULL only if out of
//  memory.
json_t *keel_json_from_message (const ProtobufCMessage *msg, int flags);

//  Convert `msg` to JSON text: compact (no spaces, field order) or, with
//  KEEL_JSON_PRETTY, indented by 2. Caller owns the return value and frees
//  it with free(). Returns NULL if out of memory.
char *keel_json_encode (const ProtobufCMessage *msg, int flags);

//  Build a message of type `desc` from the JSON object `json` (borrowed).
//  The message is allocated with protobuf-c's default allocator: caller owns
//  it and frees it with protobuf_c_message_free_unpacked (msg, NULL).
//  On error returns NULL and, if `error_p` is not NULL, sets *error_p to a
//  message naming the field path ("instance.meta: expected an object");
//  caller frees it with free(). *error_p is NULL on success, and may be NULL
//  on error if even the message could not be allocated.
ProtobufCMessage *keel_json_to_message (const ProtobufCMessageDescriptor *desc,
                                        json_t *json, char **error_p);

//  Parse JSON `text` (a NUL-terminated string of at most KEEL_JSON_MAX_TEXT
//  bytes) and build a message of type `desc`, as keel_json_to_message. A
//  syntax error gives "line L column C: <reason>"; duplicate keys are an
//  error. Same ownership and error rules as keel_json_to_message.
ProtobufCMessage *keel_json_decode (const ProtobufCMessageDescriptor *desc,
                                    const char *text, char **error_p);

//  Make the Nth allocation keel_json makes from now on in this thread fail
//  (1 = the next one); 0 disables. For tests of allocation failure; fail
//  jansson's own allocations with json_set_alloc_funcs.
void keel_json_fail_after (int n);

#ifdef __cplusplus
}
#endif

#endif
