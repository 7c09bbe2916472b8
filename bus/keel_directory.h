/*  keel_directory.h - names to endpoints.

    Actors and services are reached by name. The directory maps a name to
    the endpoint that takes its requests and, optionally, the endpoint that
    publishes its events. It is a plain table: no sockets, no threads; one
    thread owns it.

    In a config file, under any section:

        directory
            registry = tcp://10.0.0.2:7700
            saga
                endpoint = tcp://10.0.0.3:7700
                events = tcp://10.0.0.3:7701
                key = /etc/keel/peers/saga-node.cert   (or the 40-char key)

    `key` (CURVE, keel_security.h) is the public key of the node serving
    the name: a Z85 key or a public certificate file. It is appended to the
    entry's tcp endpoints (";curve=KEY"), as an endpoint may also carry it
    itself.
*/
#ifndef KEEL_DIRECTORY_H_INCLUDED
#define KEEL_DIRECTORY_H_INCLUDED

#include "keel_common.h"
#include "keel_config.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Longest name the directory holds, in bytes (an envelope's service field).
#define KEEL_DIRECTORY_MAX_NAME 128

typedef struct _keel_directory_t keel_directory_t;

//  Create an empty directory. Caller owns it and destroys it with
//  keel_directory_destroy. Returns NULL if out of memory.
keel_directory_t *keel_directory_new (void);

//  Destroy a directory and its entries; nulls *self_p. Accepts NULL and a
//  pointer to NULL.
void keel_directory_destroy (keel_directory_t **self_p);

//  Add an entry, or replace the entry with the same name. The strings are
//  copied; `events` may be NULL for none. Returns 0, or -1 (and changes
//  nothing) if name is NULL, empty or longer than KEEL_DIRECTORY_MAX_NAME,
//  if an endpoint fails keel_endpoint_valid, or if out of memory.
int keel_directory_set (keel_directory_t *self, const char *name,
                        const char *endpoint, const char *events);

//  Remove the entry for `name`. Returns 0, or -1 if there is none.
int keel_directory_remove (keel_directory_t *self, const char *name);

//  The request endpoint for `name`, or NULL if the name is unknown.
//  Borrowed: valid until the entry is replaced or removed.
const char *keel_directory_endpoint (keel_directory_t *self, const char *name);

//  The events endpoint for `name`, or NULL if the name is unknown or has
//  none. Borrowed, as keel_directory_endpoint.
const char *keel_directory_events (keel_directory_t *self, const char *name);

//  Number of entries.
size_t keel_directory_size (keel_directory_t *self);

//  The names, sorted by strcmp. Caller owns the list, which owns its
//  strings: destroy it with zlistx_destroy. Returns NULL if out of memory.
zlistx_t *keel_directory_names (keel_directory_t *self);

//  Add the entries given by the children of `path` ("" = the root) in
//  `config`. Each child is either `name = ENDPOINT`, or a section `name`
//  with the keys `endpoint` (required), `events` and `key` (optional); any
//  other key, a name given twice, or an invalid endpoint is an error. An absent
//  `path` adds nothing. All or nothing: returns 0, or -1 with the directory
//  unchanged and keel_config_error (config) naming the file, line and key.
int keel_directory_load (keel_directory_t *self, keel_config_t *config,
                         const char *path);

#ifdef __cplusplus
}
#endif

#endif
