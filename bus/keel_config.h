/*  keel_config.h - the one config loader: ZPL files, typed accessors, and
    errors that name the file, the line and the key.

    Config files are ZPL (rfc.zeromq.org/spec:4), parsed by CZMQ's zconfig.
    zconfig keeps no line numbers, so the loader also indexes the text: every
    line that defines a key is matched to the zconfig node it produced, and
    each error reads

        FILE:LINE: key 'node/actors/echo': message

    Paths are zconfig paths without a leading slash ("node/bus"); "" is the
    root. When a key appears twice, accessors see the first (as zconfig does).

    Accessors share one contract: they return 0 and set *value_p (to the
    default when the key is absent), or return -1, leave *value_p alone and
    set keel_config_error when the key is present but its value is invalid.
    A key that is a section (has children) is not a valid scalar.
*/
#ifndef KEEL_CONFIG_H_INCLUDED
#define KEEL_CONFIG_H_INCLUDED

#include "keel_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_config_t keel_config_t;

//  Longest line the loader accepts, in bytes. Some CZMQ versions cut longer
//  lines short without a word, so keel refuses them on every version.
#define KEEL_CONFIG_MAX_LINE 1024

//  Load a ZPL file. Returns a new config (caller owns it and destroys it
//  with keel_config_destroy), or NULL on failure. On failure, if error_p is
//  not NULL, *error_p is set to a new string the caller frees:
//  "FILE:LINE: syntax error: ..." or "FILE: cannot read: strerror".
//  On success *error_p is set to NULL.
keel_config_t *keel_config_load (const char *path, char **error_p);

//  Same as keel_config_load, from the text of a file in memory. `name`
//  stands for the file name in messages (NULL means "<string>").
keel_config_t *keel_config_load_string (const char *text, const char *name,
                                        char **error_p);

//  Destroy a config and everything borrowed from it; nulls *self_p.
//  Accepts NULL and a pointer to NULL.
void keel_config_destroy (keel_config_t **self_p);

//  The file name used in messages. Borrowed; valid while self lives.
const char *keel_config_name (keel_config_t *self);

//  The parsed tree, for walking sections (zconfig_child / zconfig_next).
//  Borrowed: do not destroy it or change its shape.
zconfig_t *keel_config_root (keel_config_t *self);

//  Look paths up under `section` (a node of keel_config_root's tree, such
//  as one of several repeated sections met while walking it) instead of
//  the root: every accessor below and keel_config_check_keys, until
//  keel_config_scope (self, NULL). Errors still name the full path and
//  line of the key. Returns the previous scope (NULL = the root).
zconfig_t *keel_config_scope (keel_config_t *self, zconfig_t *section);

//  The line that defines `path` ("node/bus"), counting from 1; 0 if the key
//  is absent or its line is unknown. "" (the root) is 0.
int keel_config_line (keel_config_t *self, const char *path);

//  The message set by the last failing accessor, check or keel_config_fail
//  ("FILE:LINE: key 'node/bus': ..."), or NULL if none failed yet.
//  Borrowed; valid until the next failure or destroy.
const char *keel_config_error (keel_config_t *self);

//  Record an error about `path`, formatted as "FILE:LINE: key 'path': "
//  followed by the printf-style message. The line is left out when unknown
//  (an absent key), the key when `path` is "" or NULL ("FILE: message").
//  Returns -1, so callers can `return keel_config_fail (...)`.
int keel_config_fail (keel_config_t *self, const char *path, const char *format,
                      ...) CHECK_PRINTF (3);

//  The line that defines `node` (a node of keel_config_root's tree), 0 if
//  unknown. Unlike a path, a node tells apart keys that repeat.
int keel_config_node_line (keel_config_t *self, zconfig_t *node);

//  Same as keel_config_fail, about a node of keel_config_root's tree: for
//  code that walks sections with zconfig_child / zconfig_next, where a path
//  would name the first of several keys with the same name. The message
//  gives the node's full path and line. Returns -1.
int keel_config_fail_node (keel_config_t *self, zconfig_t *node,
                           const char *format, ...) CHECK_PRINTF (3);

//  The message, as a format taking the endpoint, for an invalid endpoint.
#define KEEL_CONFIG_BAD_ENDPOINT                                               \
    "invalid endpoint '%s' (expected inproc://NAME, ipc://PATH or "            \
    "tcp://HOST:PORT)"

//  A string value. *value_p is borrowed from the config (valid while self
//  lives); an absent key gives default_value, which may be NULL. A present
//  key with an empty value gives "".
int keel_config_string (keel_config_t *self, const char *path,
                        const char *default_value, const char **value_p);

//  A decimal integer in [min, max] (optional sign, no spaces, no suffix).
int keel_config_int (keel_config_t *self, const char *path, int64_t min,
                     int64_t max, int64_t default_value, int64_t *value_p);

//  A boolean: true/yes/on/1 or false/no/off/0, any case.
int keel_config_bool (keel_config_t *self, const char *path, bool default_value,
                      bool *value_p);

//  A duration in milliseconds: "250ms", "2s", "5m", "1h", or a bare number
//  of milliseconds. Never negative; a result beyond INT64_MAX ms is an
//  error, not a wrap.
int keel_config_duration_ms (keel_config_t *self, const char *path,
                             int64_t default_value, int64_t *value_p);

//  A size in bytes: "1048576", or with a suffix K, M or G (either case;
//  powers of 1024): "64K", "1M", "2G". Never negative; overflow is an error.
int keel_config_size (keel_config_t *self, const char *path,
                      int64_t default_value, int64_t *value_p);

//  An endpoint that passes keel_endpoint_valid. *value_p is borrowed as in
//  keel_config_string; default_value is returned unchecked and may be NULL.
int keel_config_endpoint (keel_config_t *self, const char *path,
                          const char *default_value, const char **value_p);

//  Require that every child of `path` ("" = the root) is named in the
//  NULL-terminated list `allowed`. The first child that is not is an error
//  naming its line: "FILE:7: key 'node/bsu': unknown key (expected one of:
//  name, bus, events)". An absent `path` has no children and passes.
//  Returns 0 or -1.
int keel_config_check_keys (keel_config_t *self, const char *path,
                            const char **allowed);

//  True if `endpoint` is one keel can bind or connect:
//    inproc://NAME     NAME 1..200 characters
//    ipc://PATH        PATH 1..107 characters (a socket path's limit)
//    tcp://HOST:PORT   HOST a name ([A-Za-z0-9_-] labels joined by dots, at
//                      most 253 characters), a dotted IPv4 address, an IPv6
//                      address in brackets (optionally with a %zone), or *;
//                      PORT 1..65535, or * or 0 to bind any port.
//  A tcp endpoint may end with its server's CURVE key, ";curve=KEY" (40
//  Z85 characters; see keel_security.h); no other endpoint may.
//  No endpoint may contain spaces or control characters. Other transports
//  and libzmq's "source;address" form are not accepted. NULL is not valid.
bool keel_endpoint_valid (const char *endpoint);

#ifdef __cplusplus
}
#endif

#endif
