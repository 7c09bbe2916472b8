/*  keel_json.c - protobuf <-> JSON by descriptor reflection. See keel_json.h.

    Both directions walk ProtobufCMessageDescriptor.fields; nothing here knows
    a message type. How a field's C member is found:

        base + field->offset             the value (or array, for repeated)
        base + field->quantifier_offset  repeated: size_t count
                                         oneof:    uint32_t case (field id)
                                         proto2 optional scalar: has_ flag

    A map<K, V> is a repeated message field whose message is a generated
    "...Entry" with exactly key = 1 and value = 2 (protobuf-c does not keep
    the map_entry option, so the shape is the test).

    Building a message: every allocation is malloc (through s_malloc, which
    tests can make fail), the default allocator's, and a member is written
    only once it is complete, so at any failure
    protobuf_c_message_free_unpacked (msg, NULL) frees exactly what was built.
    Repeated arrays are allocated whole and their count grows element by
    element for the same reason.
*/
#include "keel_json.h"

#include <ctype.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Largest integer magnitude a JSON number carries without loss in a double.
#define S_SAFE_INTEGER (UINT64_C (1) << 53)

// ---------------------------------------------------------------------------
//  Allocation, with fault injection for tests

static _Thread_local int s_fail_after; //  fail the Nth allocation; 0 = never

void
keel_json_fail_after (int n)
{
    s_fail_after = n;
}

static bool
s_should_fail (void)
{
    return s_fail_after > 0 && --s_fail_after == 0;
}

static void *
s_malloc (size_t size)
{
    return s_should_fail () ? NULL : malloc (size);
}

static void *
s_calloc (size_t count, size_t size)
{
    return s_should_fail () ? NULL : calloc (count, size);
}

static void *
s_realloc (void *ptr, size_t size)
{
    return s_should_fail () ? NULL : realloc (ptr, size);
}

// ---------------------------------------------------------------------------
//  Small helpers shared by both directions

//  Address of a member of a message, by byte offset.
#define S_MEMBER(type, msg, offset) ((type *)((char *)(msg) + (offset)))
#define S_CMEMBER(type, msg, offset)                                           \
    ((const type *)((const char *)(msg) + (offset)))

//  Size of one element of a repeated field's array, as protobuf-c lays it out.
static size_t
s_element_size (ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof (float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof (double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof (protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof (char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof (ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof (ProtobufCMessage *);
    }
    return 0;
}

//  True if `field` is a map: repeated "...Entry" messages of key = 1 and
//  value = 2, with a key type proto allows for maps.
static bool
s_is_map (const ProtobufCFieldDescriptor *field)
{
    if (field->label != PROTOBUF_C_LABEL_REPEATED ||
        field->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *entry =
        (const ProtobufCMessageDescriptor *)field->descriptor;
    size_t len = strlen (entry->short_name);
    if (entry->n_fields != 2 || len < 5 ||
        strcmp (entry->short_name + len - 5, "Entry") != 0)
        return false;
    const ProtobufCFieldDescriptor *key = &entry->fields[0];
    const ProtobufCFieldDescriptor *value = &entry->fields[1];
    if (key->id != 1 || strcmp (key->name, "key") != 0 || value->id != 2 ||
        strcmp (value->name, "value") != 0 ||
        key->label == PROTOBUF_C_LABEL_REPEATED ||
        value->label == PROTOBUF_C_LABEL_REPEATED)
        return false;
    switch (key->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return false;
    default:
        return true;
    }
}

//  True if the field's member holds its type's zero value.
static bool
s_is_zero (const ProtobufCFieldDescriptor *field, const void *member)
{
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return *(const uint32_t *)member == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)member == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)member == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)member == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)member;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)member;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)member)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const void *const *)member == NULL;
    }
    return true;
}

//  True if the field is set in `msg`, by the rules protobuf-c's packer uses,
//  so that JSON and the wire agree on which fields are present.
static bool
s_is_present (const ProtobufCFieldDescriptor *field,
              const ProtobufCMessage *msg)
{
    const void *member = S_CMEMBER (void, msg, field->offset);
    bool pointer = field->type == PROTOBUF_C_TYPE_STRING ||
                   field->type == PROTOBUF_C_TYPE_MESSAGE;
    const void *ptr = pointer ? *(const void *const *)member : NULL;

    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        return *S_CMEMBER (size_t, msg, field->quantifier_offset) > 0;
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*S_CMEMBER (uint32_t, msg, field->quantifier_offset) != field->id)
            return false;
        return !pointer || (ptr && ptr != field->default_value);
    }
    if (field->label == PROTOBUF_C_LABEL_REQUIRED)
        return !pointer || ptr;
    if (field->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (pointer)
            return ptr && ptr != field->default_value;
        return *S_CMEMBER (protobuf_c_boolean, msg, field->quantifier_offset);
    }
    return !s_is_zero (field, member);
}

//  True if the field has explicit presence: it is then printed only when set,
//  even with KEEL_JSON_DEFAULTS.
static bool
s_has_presence (const ProtobufCFieldDescriptor *field)
{
    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        return false;
    return field->label == PROTOBUF_C_LABEL_OPTIONAL ||
           (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
           field->type == PROTOBUF_C_TYPE_MESSAGE;
}

// ---------------------------------------------------------------------------
//  UTF-8 and base64

//  Length of the valid UTF-8 sequence at s[0..len), or 0 if it is invalid
//  (overlong forms, surrogates and values above U+10FFFF are invalid).
static size_t
s_utf8_sequence (const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        cp = c & 0x07;
    } else
        return 0;
    if (len < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return need;
}

static bool
s_utf8_valid (const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t n = s_utf8_sequence (s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

//  Copy of text with each byte that starts no valid sequence replaced by
//  U+FFFD. Caller frees. Returns NULL if out of memory.
static char *
s_utf8_repair (const char *text, size_t len, size_t *len_p)
{
    const unsigned char *s = (const unsigned char *)text;
    char *out = (char *)s_malloc (len * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    size_t i = 0;
    while (i < len) {
        size_t n = s_utf8_sequence (s + i, len - i);
        if (n == 0) {
            memcpy (out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy (out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    *len_p = o;
    return out;
}

static const char s_base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

//  Standard base64 with padding of data[0..size). Caller frees. Returns NULL
//  if out of memory.
static char *
s_base64_encode (const uint8_t *data, size_t size, size_t *len_p)
{
    size_t len = (size + 2) / 3 * 4;
    char *text = (char *)s_malloc (len + 1);
    if (!text)
        return NULL;
    char *out = text;
    size_t i = 0;
    for (; i + 3 <= size; i += 3) {
        uint32_t v =
            (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *out++ = s_base64_alphabet[v >> 18];
        *out++ = s_base64_alphabet[(v >> 12) & 63];
        *out++ = s_base64_alphabet[(v >> 6) & 63];
        *out++ = s_base64_alphabet[v & 63];
    }
    if (i < size) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < size)
            v |= (uint32_t)data[i + 1] << 8;
        *out++ = s_base64_alphabet[v >> 18];
        *out++ = s_base64_alphabet[(v >> 12) & 63];
        *out++ = i + 1 < size ? s_base64_alphabet[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    *out = '\0';
    *len_p = len;
    return text;
}

//  Value of one base64 digit, standard or URL-safe alphabet; -1 if none.
static int
s_base64_digit (unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

//  Decode base64 (standard or URL-safe, padded or not) into a new buffer.
//  Bits left over after the last byte must be zero, so each byte string has
//  one spelling. Returns 0 with *data_p (caller frees; NULL when empty) and
//  *size_p, -1 if the text is not base64, -2 if out of memory.
static int
s_base64_decode (const char *text, size_t len, uint8_t **data_p, size_t *size_p)
{
    if (len % 4 == 0 && len > 0 && text[len - 1] == '=') {
        len--;
        if (text[len - 1] == '=')
            len--;
    }
    if (len % 4 == 1)
        return -1;
    size_t size = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    uint8_t *data = NULL;
    if (size > 0) {
        data = (uint8_t *)s_malloc (size);
        if (!data)
            return -2;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int digit = s_base64_digit ((unsigned char)text[i]);
        if (digit < 0) {
            free (data);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)digit;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            data[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        free (data);
        return -1;
    }
    *data_p = data;
    *size_p = size;
    return 0;
}

// ---------------------------------------------------------------------------
//  Message -> JSON

static json_t *s_message_to_json (const ProtobufCMessage *msg, int flags);

static json_t *
s_int64_to_json (int64_t value)
{
    if (value >= -(int64_t)S_SAFE_INTEGER && value <= (int64_t)S_SAFE_INTEGER)
        return json_integer ((json_int_t)value);
    char text[24];
    snprintf (text, sizeof text, "%" PRId64, value);
    return json_string_nocheck (text);
}

static json_t *
s_uint64_to_json (uint64_t value)
{
    if (value <= S_SAFE_INTEGER)
        return json_integer ((json_int_t)value);
    char text[24];
    snprintf (text, sizeof text, "%" PRIu64, value);
    return json_string_nocheck (text);
}

static json_t *
s_double_to_json (double value)
{
    if (isnan (value))
        return json_string_nocheck ("NaN");
    if (isinf (value))
        return json_string_nocheck (value > 0 ? "Infinity" : "-Infinity");
    return json_real (value);
}

static json_t *
s_string_to_json (const char *text)
{
    if (!text)
        return json_string_nocheck ("");
    size_t len = strlen (text);
    if (s_utf8_valid (text, len))
        return json_stringn_nocheck (text, len);
    size_t repaired_len;
    char *repaired = s_utf8_repair (text, len, &repaired_len);
    if (!repaired)
        return NULL;
    json_t *json = json_stringn_nocheck (repaired, repaired_len);
    free (repaired);
    return json;
}

static json_t *
s_bytes_to_json (const ProtobufCBinaryData *bytes)
{
    size_t len;
    char *text = s_base64_encode (bytes->data, bytes->len, &len);
    if (!text)
        return NULL;
    json_t *json = json_stringn_nocheck (text, len);
    free (text);
    return json;
}

//  One value of `field`'s type, read from `member` (a singular member or one
//  element of a repeated array).
static json_t *
s_value_to_json (const ProtobufCFieldDescriptor *field, const void *member,
                 int flags)
{
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer (*(const int32_t *)member);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer (*(const uint32_t *)member);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return s_int64_to_json (*(const int64_t *)member);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return s_uint64_to_json (*(const uint64_t *)member);
    case PROTOBUF_C_TYPE_FLOAT:
        return s_double_to_json (*(const float *)member);
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_double_to_json (*(const double *)member);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean (*(const protobuf_c_boolean *)member);
    case PROTOBUF_C_TYPE_ENUM: {
        int value = *(const int *)member;
        const ProtobufCEnumValue *known = protobuf_c_enum_descriptor_get_value (
            (const ProtobufCEnumDescriptor *)field->descriptor, value);
        //  An open enum may carry a number this build has no name for.
        return known ? json_string_nocheck (known->name) : json_integer (value);
    }
    case PROTOBUF_C_TYPE_STRING:
        return s_string_to_json (*(const char *const *)member);
    case PROTOBUF_C_TYPE_BYTES:
        return s_bytes_to_json ((const ProtobufCBinaryData *)member);
    case PROTOBUF_C_TYPE_MESSAGE:
        return s_message_to_json (*(const ProtobufCMessage *const *)member,
                                  flags);
    }
    return NULL;
}

//  Set object[key] to the text form of a map key read from `member`.
//  Steals `value` (released on failure). Returns 0, or -1 if out of memory.
static int
s_map_set (json_t *object, const ProtobufCFieldDescriptor *key_field,
           const void *member, json_t *value)
{
    char number[24];
    const char *key = number;
    size_t key_len;
    char *repaired = NULL;
    switch (key_field->type) {
    case PROTOBUF_C_TYPE_STRING:
        key = *(const char *const *)member;
        if (!key)
            key = "";
        key_len = strlen (key);
        if (!s_utf8_valid (key, key_len)) {
            key = repaired = s_utf8_repair (key, key_len, &key_len);
            if (!repaired) {
                json_decref (value);
                return -1;
            }
        }
        break;
    case PROTOBUF_C_TYPE_BOOL:
        key = *(const protobuf_c_boolean *)member ? "true" : "false";
        key_len = strlen (key);
        break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        key_len = (size_t)snprintf (number, sizeof number, "%" PRId32,
                                    *(const int32_t *)member);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        key_len = (size_t)snprintf (number, sizeof number, "%" PRIu32,
                                    *(const uint32_t *)member);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        key_len = (size_t)snprintf (number, sizeof number, "%" PRIu64,
                                    *(const uint64_t *)member);
        break;
    default: //  the signed 64-bit types; s_is_map admits no others
        key_len = (size_t)snprintf (number, sizeof number, "%" PRId64,
                                    *(const int64_t *)member);
        break;
    }
    int rc = json_object_setn_new_nocheck (object, key, key_len, value);
    free (repaired);
    return rc;
}

static json_t *
s_map_to_json (const ProtobufCFieldDescriptor *field,
               const ProtobufCMessage *const *entries, size_t count, int flags)
{
    const ProtobufCMessageDescriptor *entry_desc =
        (const ProtobufCMessageDescriptor *)field->descriptor;
    const ProtobufCFieldDescriptor *key_field = &entry_desc->fields[0];
    const ProtobufCFieldDescriptor *value_field = &entry_desc->fields[1];
    json_t *object = json_object ();
    if (!object)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        const ProtobufCMessage *entry = entries[i];
        if (!entry)
            continue;
        json_t *value = s_value_to_json (
            value_field, S_CMEMBER (void, entry, value_field->offset), flags);
        if (!value ||
            s_map_set (object, key_field,
                       S_CMEMBER (void, entry, key_field->offset), value)) {
            json_decref (object);
            return NULL;
        }
    }
    return object;
}

static json_t *
s_repeated_to_json (const ProtobufCFieldDescriptor *field,
                    const ProtobufCMessage *msg, int flags)
{
    size_t count = *S_CMEMBER (size_t, msg, field->quantifier_offset);
    const char *array = *S_CMEMBER (char *, msg, field->offset);
    if (!array)
        count = 0;
    if (s_is_map (field))
        return s_map_to_json (field, (const ProtobufCMessage *const *)array,
                              count, flags);
    json_t *json = json_array ();
    if (!json)
        return NULL;
    size_t size = s_element_size (field->type);
    for (size_t i = 0; i < count; i++) {
        if (json_array_append_new (
                json, s_value_to_json (field, array + i * size, flags))) {
            json_decref (json);
            return NULL;
        }
    }
    return json;
}

//  A NULL message (an unset map value) prints as the empty message.
static json_t *
s_message_to_json (const ProtobufCMessage *msg, int flags)
{
    json_t *object = json_object ();
    if (!object || !msg)
        return object;
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[i];
        if (!s_is_present (field, msg) &&
            (!(flags & KEEL_JSON_DEFAULTS) || s_has_presence (field)))
            continue;
        json_t *value =
            field->label == PROTOBUF_C_LABEL_REPEATED
                ? s_repeated_to_json (field, msg, flags)
                : s_value_to_json (field, S_CMEMBER (void, msg, field->offset),
                                   flags);
        if (json_object_set_new_nocheck (object, field->name, value)) {
            json_decref (object);
            return NULL;
        }
    }
    return object;
}

json_t *
keel_json_from_message (const ProtobufCMessage *msg, int flags)
{
    assert (msg);
    assert (msg->descriptor);
    return s_message_to_json (msg, flags);
}

//  Growing text buffer for json_dump_callback.
typedef struct {
    char *data;  //  NUL-terminated text so far; malloc'd
    size_t size; //  bytes of text
    size_t cap;  //  bytes allocated
    bool failed; //  an append ran out of memory
} s_text_t;

static int
s_text_append (const char *buffer, size_t size, void *data)
{
    s_text_t *text = (s_text_t *)data;
    if (text->failed)
        return -1;
    if (text->size + size + 1 > text->cap) {
        size_t cap = text->cap ? text->cap : 256;
        while (cap < text->size + size + 1)
            cap *= 2;
        char *grown = (char *)s_realloc (text->data, cap);
        if (!grown) {
            text->failed = true;
            return -1;
        }
        text->data = grown;
        text->cap = cap;
    }
    memcpy (text->data + text->size, buffer, size);
    text->size += size;
    text->data[text->size] = '\0';
    return 0;
}

char *
keel_json_encode (const ProtobufCMessage *msg, int flags)
{
    json_t *json = keel_json_from_message (msg, flags);
    if (!json)
        return NULL;
    //  Not json_dumps: jansson 2.14 ignores a failed append while writing an
    //  object key and returns the text without it. Our own buffer tells us.
    size_t format = (flags & KEEL_JSON_PRETTY) ? JSON_INDENT (2) : JSON_COMPACT;
    s_text_t text = {NULL, 0, 0, false};
    int rc = json_dump_callback (json, s_text_append, &text,
                                 format | JSON_PRESERVE_ORDER);
    json_decref (json);
    if (rc || text.failed) {
        free (text.data);
        return NULL;
    }
    return text.data;
}

// ---------------------------------------------------------------------------
//  JSON -> message

//  One step of the path to the value being decoded, for error messages.
typedef struct {
    const char *name; //  field name or map key; NULL for an array index
    size_t index;     //  array index when name is NULL
    bool key;         //  name is a map key
} s_step_t;

typedef struct {
    s_step_t path[2 * KEEL_JSON_MAX_DEPTH + 2]; //  field + index/key a level
    size_t steps;                               //  used entries in path
    int depth;                                  //  messages being built
    char *error;                                //  first error; malloc'd
} s_decoder_t;

#define S_SHOW_KEY 64 //  longest map key quoted in an error, in bytes

//  Append the path to buf[0..size), as "a.b[2].meta[key]".
static void
s_format_path (s_decoder_t *self, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < self->steps && used < size; i++) {
        const s_step_t *step = &self->path[i];
        int n;
        if (!step->name)
            n = snprintf (buf + used, size - used, "[%zu]", step->index);
        else if (step->key) {
            //  Cut long keys, at a character boundary.
            size_t len = strlen (step->name);
            if (len > S_SHOW_KEY) {
                len = S_SHOW_KEY;
                while (len > 0 &&
                       ((unsigned char)step->name[len] & 0xC0) == 0x80)
                    len--;
            }
            n = snprintf (buf + used, size - used, "[%.*s%s]", (int)len,
                          step->name, len < strlen (step->name) ? "..." : "");
        } else
            n = snprintf (buf + used, size - used, "%s%s", i ? "." : "",
                          step->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

//  Record the first error, prefixed by the current path. Returns -1.
static int s_fail (s_decoder_t *self, const char *format, ...) CHECK_PRINTF (2);

static int
s_fail (s_decoder_t *self, const char *format, ...)
{
    if (self->error)
        return -1;
    char path[512];
    s_format_path (self, path, sizeof path);
    char reason[256];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    size_t size = strlen (path) + strlen (reason) + 3;
    self->error = (char *)s_malloc (size);
    if (self->error)
        snprintf (self->error, size, "%s%s%s", path, *path ? ": " : "", reason);
    return -1;
}

static void
s_push (s_decoder_t *self, const char *name, size_t index, bool key)
{
    assert (self->steps < sizeof self->path / sizeof self->path[0]);
    s_step_t *step = &self->path[self->steps++];
    step->name = name;
    step->index = index;
    step->key = key;
}

static void
s_pop (s_decoder_t *self)
{
    assert (self->steps > 0);
    self->steps--;
}

//  Parse a decimal integer text[0..len): optional '-', then digits only.
//  Returns 0 with *negative_p and *magnitude_p, -1 if not a decimal
//  integer, -2 if its magnitude is over 2^64 - 1.
static int
s_parse_decimal (const char *text, size_t len, bool *negative_p,
                 uint64_t *magnitude_p)
{
    size_t i = 0;
    bool negative = len > 0 && text[0] == '-';
    if (negative)
        i++;
    if (i == len)
        return -1;
    uint64_t magnitude = 0;
    for (; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        unsigned digit = (unsigned)(text[i] - '0');
        if (magnitude > (UINT64_MAX - digit) / 10)
            return -2;
        magnitude = magnitude * 10 + digit;
    }
    *negative_p = negative;
    *magnitude_p = magnitude;
    return 0;
}

//  Check that -magnitude (if negative) or magnitude fits integer type
//  `type`, and store it in `member`. Returns 0 or -1 if out of range.
static int
s_store_integer (ProtobufCType type, bool negative, uint64_t magnitude,
                 void *member)
{
    uint64_t max_positive, max_negative;
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        max_positive = INT32_MAX;
        max_negative = (uint64_t)INT32_MAX + 1;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        max_positive = UINT32_MAX;
        max_negative = 0;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        max_positive = UINT64_MAX;
        max_negative = 0;
        break;
    default: //  the signed 64-bit types
        max_positive = INT64_MAX;
        max_negative = (uint64_t)INT64_MAX + 1;
        break;
    }
    if (magnitude > (negative ? max_negative : max_positive))
        return -1;
    int64_t value = negative && magnitude ? -(int64_t)(magnitude - 1) - 1
                                          : (int64_t)magnitude;
    switch (s_element_size (type)) {
    case 4:
        if (type == PROTOBUF_C_TYPE_UINT32 || type == PROTOBUF_C_TYPE_FIXED32)
            *(uint32_t *)member = (uint32_t)magnitude;
        else
            *(int32_t *)member = (int32_t)value;
        break;
    default:
        if (type == PROTOBUF_C_TYPE_UINT64 || type == PROTOBUF_C_TYPE_FIXED64)
            *(uint64_t *)member = magnitude;
        else
            *(int64_t *)member = value;
        break;
    }
    return 0;
}

//  An integer from a JSON number (integral) or, unless `numbers_only`, a
//  decimal string.
static int
s_integer_from_json (s_decoder_t *self, ProtobufCType type, json_t *json,
                     bool numbers_only, void *member)
{
    bool negative = false;
    uint64_t magnitude = 0;
    if (json_is_integer (json)) {
        json_int_t value = json_integer_value (json);
        negative = value < 0;
        magnitude = negative ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    } else if (json_is_real (json)) {
        double value = json_real_value (json);
        if (value != floor (value))
            return s_fail (self, "expected an integer, got %g", value);
        negative = value < 0;
        if (fabs (value) >= 18446744073709551616.0)
            return s_fail (self, "%g is out of range", value);
        magnitude = (uint64_t)fabs (value);
    } else if (json_is_string (json) && !numbers_only) {
        const char *text = json_string_value (json);
        int rc = s_parse_decimal (text, json_string_length (json), &negative,
                                  &magnitude);
        if (rc == -2)
            return s_fail (self, "%.40s is out of range", text);
        if (rc)
            return s_fail (self, "expected an integer, got \"%.40s\"", text);
    } else
        return s_fail (self, "expected an integer");
    if (s_store_integer (type, negative, magnitude, member))
        return s_fail (self, "%s%" PRIu64 " is out of range",
                       negative ? "-" : "", magnitude);
    return 0;
}

static int
s_float_from_json (s_decoder_t *self, ProtobufCType type, json_t *json,
                   void *member)
{
    double value;
    if (json_is_number (json))
        value = json_number_value (json);
    else if (json_is_string (json)) {
        const char *text = json_string_value (json);
        char *end = NULL;
        if (streq (text, "NaN"))
            value = NAN;
        else if (streq (text, "Infinity"))
            value = INFINITY;
        else if (streq (text, "-Infinity"))
            value = -INFINITY;
        else {
            //  A number in a string, as proto3 allows; strtod's own words
            //  ("inf", "nan", hex) are not JSON and are refused.
            value = strtod (text, &end);
            if (!*text || *end || strpbrk (text, "iInNxX") ||
                isspace ((unsigned char)*text))
                return s_fail (self, "expected a number, got \"%.40s\"", text);
            if (!isfinite (value))
                return s_fail (self, "%.40s is out of range", text);
        }
    } else
        return s_fail (self, "expected a number");
    if (type == PROTOBUF_C_TYPE_FLOAT) {
        if (isfinite (value) && fabs (value) > FLT_MAX)
            return s_fail (self, "%g is out of range for a float", value);
        *(float *)member = (float)value;
    } else
        *(double *)member = value;
    return 0;
}

static int
s_enum_from_json (s_decoder_t *self, const ProtobufCFieldDescriptor *field,
                  json_t *json, void *member)
{
    const ProtobufCEnumDescriptor *desc =
        (const ProtobufCEnumDescriptor *)field->descriptor;
    if (json_is_string (json)) {
        const ProtobufCEnumValue *value =
            protobuf_c_enum_descriptor_get_value_by_name (
                desc, json_string_value (json));
        if (!value || strlen (value->name) != json_string_length (json))
            return s_fail (self, "unknown %s value \"%.40s\"", desc->short_name,
                           json_string_value (json));
        *(int *)member = value->value;
        return 0;
    }
    if (json_is_number (json))
        return s_integer_from_json (self, PROTOBUF_C_TYPE_ENUM, json, true,
                                    member);
    return s_fail (self, "expected a name or number of enum %s",
                   desc->short_name);
}

static ProtobufCMessage *
s_message_from_json (s_decoder_t *self, const ProtobufCMessageDescriptor *desc,
                     json_t *json);

//  Decode one value of `field`'s type into `member` (a singular member or one
//  element of a repeated array). The member is written only on success.
static int
s_value_from_json (s_decoder_t *self, const ProtobufCFieldDescriptor *field,
                   json_t *json, void *member)
{
    switch (field->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_float_from_json (self, field->type, json, member);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean (json))
            return s_fail (self, "expected true or false");
        *(protobuf_c_boolean *)member = json_is_true (json);
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return s_enum_from_json (self, field, json, member);
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string (json))
            return s_fail (self, "expected a string");
        size_t len = json_string_length (json);
        const char *value = json_string_value (json);
        if (memchr (value, '\0', len))
            return s_fail (self, "string contains a NUL character");
        char *copy = (char *)s_malloc (len + 1);
        if (!copy)
            return s_fail (self, "out of memory");
        memcpy (copy, value, len + 1);
        *(char **)member = copy;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string (json))
            return s_fail (self, "expected a base64 string");
        ProtobufCBinaryData bytes = {0, NULL};
        int rc = s_base64_decode (json_string_value (json),
                                  json_string_length (json), &bytes.data,
                                  &bytes.len);
        if (rc == -2)
            return s_fail (self, "out of memory");
        if (rc)
            return s_fail (self, "invalid base64");
        *(ProtobufCBinaryData *)member = bytes;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *msg = s_message_from_json (
            self, (const ProtobufCMessageDescriptor *)field->descriptor, json);
        if (!msg)
            return -1;
        *(ProtobufCMessage **)member = msg;
        return 0;
    }
    default:
        return s_integer_from_json (self, field->type, json, false, member);
    }
}

//  Decode a map key from its text form into `member`.
static int
s_map_key_from_text (s_decoder_t *self, const ProtobufCFieldDescriptor *field,
                     const char *key, size_t key_len, void *member)
{
    if (field->type == PROTOBUF_C_TYPE_STRING) {
        if (memchr (key, '\0', key_len))
            return s_fail (self, "map key contains a NUL character");
        char *copy = (char *)s_malloc (key_len + 1);
        if (!copy)
            return s_fail (self, "out of memory");
        memcpy (copy, key, key_len);
        copy[key_len] = '\0';
        *(char **)member = copy;
        return 0;
    }
    if (field->type == PROTOBUF_C_TYPE_BOOL) {
        if (key_len == 4 && memcmp (key, "true", 4) == 0)
            *(protobuf_c_boolean *)member = 1;
        else if (key_len == 5 && memcmp (key, "false", 5) == 0)
            *(protobuf_c_boolean *)member = 0;
        else
            return s_fail (self, "map key must be true or false");
        return 0;
    }
    bool negative;
    uint64_t magnitude;
    int rc = s_parse_decimal (key, key_len, &negative, &magnitude);
    if (rc == 0 && s_store_integer (field->type, negative, magnitude, member))
        rc = -2;
    if (rc == -2)
        return s_fail (self, "map key is out of range");
    if (rc)
        return s_fail (self, "map key must be a decimal integer");
    return 0;
}

//  Start a repeated field of `count` elements: allocate its array, zeroed,
//  and attach it with a count of 0. Returns the array, or NULL (error set).
static char *
s_array_start (s_decoder_t *self, ProtobufCMessage *msg,
               const ProtobufCFieldDescriptor *field, size_t count)
{
    char *array = (char *)s_calloc (count, s_element_size (field->type));
    if (!array) {
        s_fail (self, "out of memory");
        return NULL;
    }
    *S_MEMBER (void *, msg, field->offset) = array;
    *S_MEMBER (size_t, msg, field->quantifier_offset) = 0;
    return array;
}

static int
s_map_from_json (s_decoder_t *self, ProtobufCMessage *msg,
                 const ProtobufCFieldDescriptor *field, json_t *json)
{
    if (!json_is_object (json))
        return s_fail (self, "expected an object");
    size_t count = json_object_size (json);
    if (count == 0)
        return 0;
    ProtobufCMessage **entries =
        (ProtobufCMessage **)s_array_start (self, msg, field, count);
    if (!entries)
        return -1;
    size_t *count_p = S_MEMBER (size_t, msg, field->quantifier_offset);
    const ProtobufCMessageDescriptor *entry_desc =
        (const ProtobufCMessageDescriptor *)field->descriptor;
    const ProtobufCFieldDescriptor *key_field = &entry_desc->fields[0];
    const ProtobufCFieldDescriptor *value_field = &entry_desc->fields[1];
    const char *key;
    size_t key_len;
    json_t *value;
    json_object_keylen_foreach (json, key, key_len, value)
    {
        s_push (self, key, 0, true);
        ProtobufCMessage *entry =
            (ProtobufCMessage *)s_malloc (entry_desc->sizeof_message);
        if (!entry) {
            s_fail (self, "out of memory");
            s_pop (self);
            return -1;
        }
        protobuf_c_message_init (entry_desc, entry);
        int rc =
            s_map_key_from_text (self, key_field, key, key_len,
                                 S_MEMBER (void, entry, key_field->offset));
        if (rc == 0)
            rc =
                s_value_from_json (self, value_field, value,
                                   S_MEMBER (void, entry, value_field->offset));
        s_pop (self);
        if (rc) {
            protobuf_c_message_free_unpacked (entry, NULL);
            return -1;
        }
        entries[(*count_p)++] = entry;
    }
    return 0;
}

static int
s_array_from_json (s_decoder_t *self, ProtobufCMessage *msg,
                   const ProtobufCFieldDescriptor *field, json_t *json)
{
    if (!json_is_array (json))
        return s_fail (self, "expected an array");
    size_t count = json_array_size (json);
    if (count == 0)
        return 0;
    char *array = s_array_start (self, msg, field, count);
    if (!array)
        return -1;
    size_t *count_p = S_MEMBER (size_t, msg, field->quantifier_offset);
    size_t size = s_element_size (field->type);
    for (size_t i = 0; i < count; i++) {
        s_push (self, NULL, i, false);
        int rc = s_value_from_json (self, field, json_array_get (json, i),
                                    array + i * size);
        s_pop (self);
        if (rc)
            return -1;
        (*count_p)++;
    }
    return 0;
}

//  Name of the field whose id is `id` in `desc`, for error messages.
static const char *
s_field_name (const ProtobufCMessageDescriptor *desc, uint32_t id)
{
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field (desc, (unsigned)id);
    return field ? field->name : "?";
}

static int
s_field_from_json (s_decoder_t *self, ProtobufCMessage *msg,
                   const ProtobufCFieldDescriptor *field, json_t *json)
{
    //  proto3: null stands for the default, i.e. the field is not set.
    if (json_is_null (json))
        return 0;
    uint32_t *oneof_case = NULL;
    if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        oneof_case = S_MEMBER (uint32_t, msg, field->quantifier_offset);
        if (*oneof_case != 0 && *oneof_case != field->id)
            return s_fail (self, "oneof already set by \"%s\"",
                           s_field_name (msg->descriptor, *oneof_case));
    }
    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        return s_is_map (field) ? s_map_from_json (self, msg, field, json)
                                : s_array_from_json (self, msg, field, json);
    if (s_value_from_json (self, field, json,
                           S_MEMBER (void, msg, field->offset)))
        return -1;
    if (oneof_case)
        *oneof_case = field->id;
    else if (field->label == PROTOBUF_C_LABEL_OPTIONAL &&
             field->type != PROTOBUF_C_TYPE_STRING &&
             field->type != PROTOBUF_C_TYPE_MESSAGE)
        *S_MEMBER (protobuf_c_boolean, msg, field->quantifier_offset) = 1;
    return 0;
}

static ProtobufCMessage *
s_message_from_json (s_decoder_t *self, const ProtobufCMessageDescriptor *desc,
                     json_t *json)
{
    if (!json_is_object (json)) {
        s_fail (self, "expected an object");
        return NULL;
    }
    if (self->depth == KEEL_JSON_MAX_DEPTH) {
        s_fail (self, "messages nested deeper than %d", KEEL_JSON_MAX_DEPTH);
        return NULL;
    }
    ProtobufCMessage *msg = (ProtobufCMessage *)s_malloc (desc->sizeof_message);
    if (!msg) {
        s_fail (self, "out of memory");
        return NULL;
    }
    protobuf_c_message_init (desc, msg);
    self->depth++;
    int rc = 0;
    const char *key;
    size_t key_len;
    json_t *value;
    json_object_keylen_foreach (json, key, key_len, value)
    {
        s_push (self, key, 0, false);
        const ProtobufCFieldDescriptor *field =
            protobuf_c_message_descriptor_get_field_by_name (desc, key);
        if (!field || strlen (key) != key_len)
            rc = s_fail (self, "unknown field");
        else
            rc = s_field_from_json (self, msg, field, value);
        s_pop (self);
        if (rc)
            break;
    }
    self->depth--;
    if (rc) {
        protobuf_c_message_free_unpacked (msg, NULL);
        return NULL;
    }
    return msg;
}

//  Hand the decoder's error to the caller, or drop it.
static void
s_give_error (s_decoder_t *self, char **error_p)
{
    if (error_p)
        *error_p = self->error;
    else
        free (self->error);
    self->error = NULL;
}

ProtobufCMessage *
keel_json_to_message (const ProtobufCMessageDescriptor *desc, json_t *json,
                      char **error_p)
{
    assert (desc);
    if (error_p)
        *error_p = NULL;
    s_decoder_t *self = (s_decoder_t *)s_calloc (1, sizeof (s_decoder_t));
    if (!self)
        return NULL;
    ProtobufCMessage *msg = s_message_from_json (self, desc, json);
    //  proto2 required fields are the only thing this check can still catch.
    if (msg && !protobuf_c_message_check (msg)) {
        s_fail (self, "a required field is missing");
        protobuf_c_message_free_unpacked (msg, NULL);
        msg = NULL;
    }
    s_give_error (self, error_p);
    free (self);
    return msg;
}

//  Set *error_p (if not NULL) to a new copy of the formatted text.
static void s_error (char **error_p, const char *format, ...) CHECK_PRINTF (2);

static void
s_error (char **error_p, const char *format, ...)
{
    if (!error_p)
        return;
    char text[300];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    *error_p = (char *)s_malloc (strlen (text) + 1);
    if (*error_p)
        strcpy (*error_p, text);
}

ProtobufCMessage *
keel_json_decode (const ProtobufCMessageDescriptor *desc, const char *text,
                  char **error_p)
{
    assert (desc);
    assert (text);
    if (error_p)
        *error_p = NULL;
    if (strnlen (text, KEEL_JSON_MAX_TEXT + 1) > KEEL_JSON_MAX_TEXT) {
        s_error (error_p, "JSON text is larger than %d bytes",
                 KEEL_JSON_MAX_TEXT);
        return NULL;
    }
    json_error_t parse_error;
    json_t *json = json_loads (text, JSON_REJECT_DUPLICATES, &parse_error);
    if (!json) {
        s_error (error_p, "line %d column %d: %s", parse_error.line,
                 parse_error.column, parse_error.text);
        return NULL;
    }
    ProtobufCMessage *msg = keel_json_to_message (desc, json, error_p);
    json_decref (json);
    return msg;
}
