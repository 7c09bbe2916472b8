/*  keel_hash.h - keyed string hashing for tables whose keys come from
    clients (instance ids, idempotency keys): libsodium's SipHash-2-4 with
    a random key per table, so nobody can craft keys that collide. */
#ifndef KEEL_HASH_H_INCLUDED
#define KEEL_HASH_H_INCLUDED

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  A table's secret hash key.
typedef struct {
    unsigned char bytes[16];
} keel_hash_key_t;

//  Fill `key` with fresh random bytes. Returns 0, or -1 if libsodium cannot
//  start (then the key is still filled from a weaker source).
int keel_hash_key_init (keel_hash_key_t *key);

//  Hash a NUL-terminated string under `key`.
uint64_t keel_hash_string (const keel_hash_key_t *key, const char *string);

//  What a keyed zhashx table takes as keys: the string and the table's
//  secret key. Entries keep one (pointing into their own storage) and
//  lookups pass one on the stack; both are borrowed by the table.
typedef struct {
    const keel_hash_key_t *key; //  the table's secret key
    const char *str;            //  the key text, NUL-terminated
} keel_hash_ref_t;

//  Make `table` take keel_hash_ref_t keys: hashed with keel_hash_string,
//  compared with strcmp, neither copied nor freed.
void keel_hash_table_setup (zhashx_t *table);

#ifdef __cplusplus
}
#endif

#endif
