/*  keel_dedupe.h - remember replies by idempotency key, replay them on retry.

    Commands may arrive more than once: a saga coordinator retries, a client
    retries an idempotent call. A participant looks the command's idempotency
    key up first; on a hit it sends the remembered reply again instead of
    applying the effect twice, and on a miss it applies the effect and stores
    the reply it sent.

    Memory is bounded: at most `capacity` entries and at most `max_bytes` bytes
    of keys, error texts and payloads. Storing past either bound evicts the
    least recently used entries. An entry also expires `ttl_ms` after it was
    stored: it is expired when now_ms - stored_ms >= ttl_ms (ttl_ms 0 =
    never). Lookup and store are O(1) on average.

    A pure core: no sockets, no threads, no clock; time comes in as now_ms
    (use keel_now_ms in the shell). Not thread-safe; one owner at a time.
*/
#ifndef KEEL_DEDUPE_H_INCLUDED
#define KEEL_DEDUPE_H_INCLUDED

#include "keel_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_dedupe_t keel_dedupe_t;

//  A remembered reply. All fields are borrowed from the dedupe and stay valid
//  until the next keel_dedupe_lookup, _store, _forget or _destroy on it.
typedef struct {
    int code;            //  keel_err_t the original reply carried (0 = OK)
    const char *text;    //  error text ("" when none); never NULL
    const uint8_t *data; //  reply payload bytes (NULL when size is 0)
    size_t size;         //  payload size in bytes
    int64_t stored_ms;   //  now_ms of the store that made this entry
} keel_dedupe_entry_t;

//  Counters since creation.
typedef struct {
    uint64_t hits;        //  lookups that returned an entry
    uint64_t misses;      //  lookups that returned NULL (unknown or expired)
    uint64_t stores;      //  successful stores, replacements included
    uint64_t evictions;   //  entries dropped to stay within the bounds
    uint64_t expirations; //  entries dropped because their ttl had passed
} keel_dedupe_stats_t;

//  Create an empty dedupe holding at most `capacity` entries (>= 1) and at
//  most `max_bytes` bytes (>= 1) of keys, texts and payloads, each entry
//  living `ttl_ms` ms after it was stored (>= 0; 0 = until evicted).
//  Caller owns the return value and destroys it with keel_dedupe_destroy.
//  Returns NULL on bad arguments or when out of memory.
keel_dedupe_t *keel_dedupe_new (size_t capacity, size_t max_bytes,
                                int64_t ttl_ms);

//  Destroy a dedupe and every entry in it; nulls *self_p. Accepts a NULL
//  *self_p.
void keel_dedupe_destroy (keel_dedupe_t **self_p);

//  Look `key` up at time `now_ms`. Returns the remembered reply and marks it
//  most recently used, or NULL when the key is unknown, empty or NULL, or
//  when its entry has expired (the expired entry is then removed). The entry
//  is borrowed; see keel_dedupe_entry_t for how long it stays valid. May also
//  remove other expired entries.
const keel_dedupe_entry_t *keel_dedupe_lookup (keel_dedupe_t *self,
                                               const char *key, int64_t now_ms);

//  Remember the reply for `key` at time `now_ms`: error `code`, error `text`
//  (NULL = "") and `size` bytes of `data` (may be NULL when size is 0). Copies
//  key, text and data; the caller keeps ownership of its arguments. Replaces
//  any entry for the same key, and makes the new one most recently used.
//  Removes expired entries, then evicts least recently used ones until the
//  new entry fits within both bounds.
//  Returns 0 on success, or -1 with nothing changed when the key is NULL or
//  empty, data is NULL with size > 0, or the entry by itself (strlen (key) +
//  strlen (text) + size) is larger than max_bytes. Also returns -1 when out
//  of memory; any previous entry for the key may then be gone.
int keel_dedupe_store (keel_dedupe_t *self, const char *key, int code,
                       const char *text, const void *data, size_t size,
                       int64_t now_ms);

//  Forget the entry for `key`, expired or not. Returns 0, or -1 if no entry
//  for `key` is held.
int keel_dedupe_forget (keel_dedupe_t *self, const char *key);

//  Return the number of entries held, expired ones not yet removed included.
size_t keel_dedupe_size (keel_dedupe_t *self);

//  Return the bytes held: the sum over entries of key, text and payload
//  lengths (terminating NULs and bookkeeping not counted). Never more than
//  max_bytes.
size_t keel_dedupe_bytes (keel_dedupe_t *self);

//  Return the counters since creation, by value.
keel_dedupe_stats_t keel_dedupe_stats (keel_dedupe_t *self);

#ifdef __cplusplus
}
#endif

#endif
