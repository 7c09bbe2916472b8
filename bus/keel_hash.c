/*  keel_hash.c - keyed string hashing over libsodium. See keel_hash.h. */
#include "keel_hash.h"

#include <sodium.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof ((keel_hash_key_t *)0)->bytes ==
                   crypto_shorthash_siphash24_KEYBYTES,
               "key size");

int
keel_hash_key_init (keel_hash_key_t *key)
{
    //  sodium_init is safe to call more than once and from any thread.
    if (sodium_init () < 0) {
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        uint64_t mix[2] = {(uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)key,
                           (uint64_t)getpid () * 0x9e3779b97f4a7c15ULL};
        memcpy (key->bytes, mix, sizeof key->bytes);
        return -1;
    }
    randombytes_buf (key->bytes, sizeof key->bytes);
    return 0;
}

uint64_t
keel_hash_string (const keel_hash_key_t *key, const char *string)
{
    unsigned char out[crypto_shorthash_siphash24_BYTES];
    crypto_shorthash_siphash24 (out, (const unsigned char *)string,
                                strlen (string), key->bytes);
    uint64_t hash;
    memcpy (&hash, out, sizeof hash);
    return hash;
}

static size_t
s_ref_hash (const void *key)
{
    const keel_hash_ref_t *ref = (const keel_hash_ref_t *)key;
    return (size_t)keel_hash_string (ref->key, ref->str);
}

static int
s_ref_compare (const void *key1, const void *key2)
{
    return strcmp (((const keel_hash_ref_t *)key1)->str,
                   ((const keel_hash_ref_t *)key2)->str);
}

void
keel_hash_table_setup (zhashx_t *table)
{
    zhashx_set_key_hasher (table, s_ref_hash);
    zhashx_set_key_comparator (table, s_ref_compare);
    zhashx_set_key_duplicator (table, NULL);
    zhashx_set_key_destructor (table, NULL);
}
