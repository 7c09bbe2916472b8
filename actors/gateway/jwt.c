/*  jwt.c - JWT / API-key authentication core. See jwt.h.

    A token goes through these steps, cheapest first; the first that fails
    names the reason:

        shape     size <= 8 KiB, exactly two dots, non-empty header and claims
        cache     the full text seen and verified before, still in its window
        decode    three strict base64url segments
        header    JSON object (depth-limited, duplicate keys refused): alg,
                  crit, kid
        key       by kid (alg must match), or up to KEEL_JWT_MAX_TRIES keys
                  of the token's alg
        verify    HMAC-SHA256 / RSA PKCS#1 v1.5 / ECDSA P-256 (r||s -> DER)
        claims    JSON object: exp, nbf, iss, aud, sub, scope/scp, roles

    The cache of verified tokens:

        buckets[hash & mask] -> entry -> entry ...   (chained: bucket_next)
        lru_head (most recent) <-> ... <-> lru_tail  (the next to evict)

    An entry holds the token's full text (compared on lookup, so a hash
    collision cannot authenticate another token), the identity it verified
    to, and the window [valid_from, valid_until) in which the verdict stands
    without a new check: from nbf - leeway until the earliest of exp and
    insertion + max age. Past exp but inside the leeway a token is checked
    in full again, so the cache never changes a verdict, only its cost.

    An identity is one allocation, relocatable by its copy function:

        [scopes[0..n], NULL][roles[0..m], NULL]["sub\0"]["kid\0"]["scope\0"...]
*/
#include "jwt.h"
#include "keel_hash.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  Longest PEM file read, in bytes.
#define S_MAX_PEM_FILE (64 * 1024)
//  Largest leeway and cache max age accepted from config, in seconds.
#define S_MAX_LEEWAY_S (24 * 3600)
#define S_MAX_CACHE_S  (24 * 3600)
//  Largest cache accepted from config, in entries.
#define S_MAX_CACHE_SIZE 1000000

// ---------------------------------------------------------------------------
//  Names

static const struct {
    const char *name;
    const char *text;
} s_reasons[KEEL_AUTH_REASON_COUNT] = {
    [KEEL_AUTH_OK] = {"OK", "authenticated"},
    [KEEL_AUTH_NO_CREDENTIALS] = {"NO_CREDENTIALS", "no credentials"},
    [KEEL_AUTH_BAD_SCHEME] = {"BAD_SCHEME",
                              "authorization scheme is not Bearer"},
    [KEEL_AUTH_MALFORMED_HEADER] = {"MALFORMED_HEADER",
                                    "malformed Authorization header"},
    [KEEL_AUTH_TOO_LARGE] = {"TOO_LARGE", "token too large"},
    [KEEL_AUTH_MALFORMED_TOKEN] = {"MALFORMED_TOKEN",
                                   "token is not header.claims.signature"},
    [KEEL_AUTH_BAD_BASE64] = {"BAD_BASE64", "token is not valid base64url"},
    [KEEL_AUTH_TOO_DEEP] = {"TOO_DEEP", "token JSON nested too deeply"},
    [KEEL_AUTH_BAD_HEADER] = {"BAD_HEADER", "token header is not valid"},
    [KEEL_AUTH_ALG_MISSING] = {"ALG_MISSING", "token header has no alg"},
    [KEEL_AUTH_ALG_NONE] = {"ALG_NONE", "unsigned tokens are not accepted"},
    [KEEL_AUTH_ALG_UNSUPPORTED] = {"ALG_UNSUPPORTED",
                                   "token alg is not supported"},
    [KEEL_AUTH_UNSUPPORTED_CRIT] = {"UNSUPPORTED_CRIT",
                                    "token header has critical extensions"},
    [KEEL_AUTH_UNKNOWN_KID] = {"UNKNOWN_KID", "unknown key id"},
    [KEEL_AUTH_ALG_MISMATCH] = {"ALG_MISMATCH",
                                "token alg does not match its key"},
    [KEEL_AUTH_NO_KEY] = {"NO_KEY", "no key for the token alg"},
    [KEEL_AUTH_BAD_SIGNATURE] = {"BAD_SIGNATURE", "invalid signature"},
    [KEEL_AUTH_BAD_CLAIMS] = {"BAD_CLAIMS", "token claims are not valid"},
    [KEEL_AUTH_BAD_CLAIM] = {"BAD_CLAIM", "a token claim has the wrong type"},
    [KEEL_AUTH_MISSING_EXP] = {"MISSING_EXP", "token has no expiry"},
    [KEEL_AUTH_EXPIRED] = {"EXPIRED", "token expired"},
    [KEEL_AUTH_NOT_YET_VALID] = {"NOT_YET_VALID", "token not valid yet"},
    [KEEL_AUTH_WRONG_ISSUER] = {"WRONG_ISSUER", "issuer not accepted"},
    [KEEL_AUTH_WRONG_AUDIENCE] = {"WRONG_AUDIENCE", "audience not accepted"},
    [KEEL_AUTH_MISSING_SUB] = {"MISSING_SUB", "token has no subject"},
    [KEEL_AUTH_BAD_API_KEY] = {"BAD_API_KEY", "unknown API key"},
    [KEEL_AUTH_INTERNAL] = {"INTERNAL", "out of memory"},
};

const char *
keel_auth_reason_name (int reason)
{
    return reason >= 0 && reason < KEEL_AUTH_REASON_COUNT
               ? s_reasons[reason].name
               : "UNKNOWN";
}

const char *
keel_auth_reason_text (int reason)
{
    return reason >= 0 && reason < KEEL_AUTH_REASON_COUNT
               ? s_reasons[reason].text
               : "unknown reason";
}

int
keel_auth_reason_parse (const char *name)
{
    if (name)
        for (int reason = 0; reason < KEEL_AUTH_REASON_COUNT; reason++)
            if (streq (name, s_reasons[reason].name))
                return reason;
    return -1;
}

static const char *s_algs[] = {"HS256", "RS256", "ES256"};
#define S_ALG_COUNT ((int)(sizeof s_algs / sizeof s_algs[0]))

const char *
keel_jwt_alg_name (int alg)
{
    return alg >= 0 && alg < S_ALG_COUNT ? s_algs[alg] : "UNKNOWN";
}

int
keel_jwt_alg_parse (const char *name)
{
    if (name)
        for (int alg = 0; alg < S_ALG_COUNT; alg++)
            if (streq (name, s_algs[alg]))
                return alg;
    return -1;
}

//  The HTTP status of a reason.
static int
s_status (keel_auth_reason_t reason)
{
    return reason == KEEL_AUTH_OK         ? 0
           : reason == KEEL_AUTH_INTERNAL ? 500
                                          : 401;
}

// ---------------------------------------------------------------------------
//  base64url

static int
s_b64_value (unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int
keel_base64url_decode (const char *text, size_t size, unsigned char *out,
                       size_t out_max, size_t *out_size)
{
    assert (text || size == 0);
    assert (out || out_max == 0);
    assert (out_size);
    //  4n+1 characters carry 6 bits past the last whole byte: never valid.
    if (size % 4 == 1)
        return -1;
    size_t need = size / 4 * 3 + (size % 4 ? size % 4 - 1 : 0);
    if (need > out_max)
        return -1;
    uint32_t bits = 0; //  pending bits, in the low `count` bits
    int count = 0;
    size_t n = 0;
    for (size_t i = 0; i < size; i++) {
        int value = s_b64_value ((unsigned char)text[i]);
        if (value < 0)
            return -1;
        bits = (bits << 6) | (uint32_t)value;
        count += 6;
        if (count >= 8) {
            count -= 8;
            out[n++] = (unsigned char)(bits >> count);
            bits &= (1u << count) - 1;
        }
    }
    //  The last character's unused bits must be zero: one encoding each.
    if (bits != 0)
        return -1;
    assert (n == need);
    *out_size = n;
    return 0;
}

char *
keel_base64url_encode (const void *data, size_t size)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert (data || size == 0);
    const unsigned char *in = (const unsigned char *)data;
    char *text = (char *)malloc (size / 3 * 4 + 4);
    if (!text)
        return NULL;
    char *p = text;
    size_t i = 0;
    for (; i + 3 <= size; i += 3) {
        uint32_t v =
            (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
        *p++ = alphabet[(v >> 6) & 63];
        *p++ = alphabet[v & 63];
    }
    if (size - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
    } else if (size - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
        *p++ = alphabet[(v >> 6) & 63];
    }
    *p = 0;
    return text;
}

// ---------------------------------------------------------------------------
//  String lists: (pointer, length) pairs borrowed from a JSON value or a
//  space-separated string, until an identity copies them.

typedef struct {
    const char *s;
    size_t n;
} s_str_t;

typedef struct {
    s_str_t *items;
    size_t count;
    size_t cap;
} s_strs_t;

static int
s_strs_push (s_strs_t *list, const char *s, size_t n)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        s_str_t *items =
            (s_str_t *)realloc (list->items, cap * sizeof (s_str_t));
        if (!items)
            return -1;
        list->items = items;
        list->cap = cap;
    }
    list->items[list->count].s = s;
    list->items[list->count].n = n;
    list->count++;
    return 0;
}

static void
s_strs_free (s_strs_t *list)
{
    free (list->items);
    memset (list, 0, sizeof *list);
}

//  Split `text` at any of `separators`, skipping empty words.
static int
s_strs_split (s_strs_t *list, const char *text, const char *separators)
{
    while (text && *text) {
        size_t skip = strspn (text, separators);
        text += skip;
        size_t n = strcspn (text, separators);
        if (n && s_strs_push (list, text, n))
            return -1;
        text += n;
    }
    return 0;
}

// ---------------------------------------------------------------------------
//  Identity

void
keel_identity_clear (keel_identity_t *identity)
{
    assert (identity);
    free (identity->block_);
    memset (identity, 0, sizeof *identity);
}

//  Fill a cleared identity, copying every string into one block.
static int
s_identity_build (keel_identity_t *identity, s_str_t sub, const char *key_id,
                  const s_strs_t *scopes, const s_strs_t *roles,
                  int64_t expires_s, bool api_key)
{
    size_t pointers = (scopes->count + 1 + roles->count + 1) * sizeof (char *);
    size_t size = pointers + sub.n + 1 + (key_id ? strlen (key_id) + 1 : 0);
    for (size_t i = 0; i < scopes->count; i++)
        size += scopes->items[i].n + 1;
    for (size_t i = 0; i < roles->count; i++)
        size += roles->items[i].n + 1;
    char *block = (char *)malloc (size);
    if (!block)
        return -1;
    const char **scope_array = (const char **)block;
    const char **role_array = scope_array + scopes->count + 1;
    char *p = block + pointers;
#define S_COPY(dest, str, len)                                                 \
    do {                                                                       \
        memcpy (p, (str), (len));                                              \
        p[len] = 0;                                                            \
        (dest) = p;                                                            \
        p += (len) + 1;                                                        \
    } while (0)
    S_COPY (identity->sub, sub.s, sub.n);
    identity->key_id = NULL;
    if (key_id)
        S_COPY (identity->key_id, key_id, strlen (key_id));
    for (size_t i = 0; i < scopes->count; i++)
        S_COPY (scope_array[i], scopes->items[i].s, scopes->items[i].n);
    scope_array[scopes->count] = NULL;
    for (size_t i = 0; i < roles->count; i++)
        S_COPY (role_array[i], roles->items[i].s, roles->items[i].n);
    role_array[roles->count] = NULL;
#undef S_COPY
    assert (p == block + size);
    identity->scopes = scope_array;
    identity->scope_count = scopes->count;
    identity->roles = role_array;
    identity->role_count = roles->count;
    identity->expires_s = expires_s;
    identity->api_key = api_key;
    identity->block_ = block;
    identity->block_size_ = size;
    return 0;
}

int
keel_identity_copy (keel_identity_t *dest, const keel_identity_t *source)
{
    assert (dest);
    assert (source);
    assert (dest != source);
    keel_identity_clear (dest);
    if (!source->block_)
        return 0;
    char *block = (char *)malloc (source->block_size_);
    if (!block)
        return -1;
    memcpy (block, source->block_, source->block_size_);
    //  Every pointer points into the block: move them by the same offset.
    const char *old = (const char *)source->block_;
#define S_MOVE(ptr) ((ptr) ? block + ((const char *)(ptr)-old) : NULL)
    *dest = *source;
    dest->block_ = block;
    dest->sub = S_MOVE (source->sub);
    dest->key_id = S_MOVE (source->key_id);
    const char **scopes = (const char **)S_MOVE (source->scopes);
    const char **roles = (const char **)S_MOVE (source->roles);
    for (size_t i = 0; i < source->scope_count; i++)
        scopes[i] = S_MOVE (source->scopes[i]);
    for (size_t i = 0; i < source->role_count; i++)
        roles[i] = S_MOVE (source->roles[i]);
#undef S_MOVE
    dest->scopes = scopes;
    dest->roles = roles;
    return 0;
}

static bool
s_in_list (const char *const *list, const char *item)
{
    for (; list && *list; list++)
        if (streq (*list, item))
            return true;
    return false;
}

bool
keel_identity_has_scope (const keel_identity_t *identity, const char *scope)
{
    assert (identity);
    return scope && s_in_list (identity->scopes, scope);
}

bool
keel_identity_has_role (const keel_identity_t *identity, const char *role)
{
    assert (identity);
    return role && s_in_list (identity->roles, role);
}

int
keel_auth_allowed (const keel_identity_t *identity,
                   const char *const *required_scopes,
                   const char *const *required_roles, const char **missing_p)
{
    assert (identity);
    if (missing_p)
        *missing_p = NULL;
    for (const char *const *scope = required_scopes; scope && *scope; scope++)
        if (!keel_identity_has_scope (identity, *scope)) {
            if (missing_p)
                *missing_p = *scope;
            return 403;
        }
    if (!required_roles || !*required_roles)
        return 0;
    for (const char *const *role = required_roles; *role; role++)
        if (keel_identity_has_role (identity, *role))
            return 0;
    return 403;
}

// ---------------------------------------------------------------------------
//  Keys

typedef struct {
    char *kid;             //  NULL = none
    keel_jwt_alg_t alg;    //  pinned
    unsigned char *secret; //  HS256
    size_t secret_size;    //
    EVP_PKEY *pkey;        //  RS256 / ES256
    size_t signature_size; //  what a valid signature's length must be
    char *iss;             //  required issuer, NULL = the auth's
    char *aud;             //  required audience, NULL = the auth's
} s_key_t;

//  Which field of keel_auth_key_t a key error is about (for config lines).
typedef enum {
    S_FIELD_KEY,
    S_FIELD_KID,
    S_FIELD_SECRET,
    S_FIELD_PEM
} s_field_t;

static void
s_key_destroy (s_key_t **self_p)
{
    assert (self_p);
    s_key_t *self = *self_p;
    if (self) {
        free (self->kid);
        if (self->secret)
            OPENSSL_cleanse (self->secret, self->secret_size);
        free (self->secret);
        EVP_PKEY_free (self->pkey);
        free (self->iss);
        free (self->aud);
        free (self);
        *self_p = NULL;
    }
}

//  strdup that keeps NULL. Sets *failed when it runs out of memory.
static char *
s_strdup_opt (const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *copy = strdup (s);
    if (!copy)
        *failed = true;
    return copy;
}

//  Decode a PEM public key. Returns the key or NULL with *error_p set.
static EVP_PKEY *
s_pem_public_key (const char *pem, const char **error_p)
{
    if (!pem || !*pem) {
        *error_p = "no public key";
        return NULL;
    }
    if (strstr (pem, "PRIVATE KEY")) {
        *error_p = "is a private key (the gateway needs only the public key)";
        return NULL;
    }
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *decoder = OSSL_DECODER_CTX_new_for_pkey (
        &pkey, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
    const unsigned char *data = (const unsigned char *)pem;
    size_t size = strlen (pem);
    if (!decoder || !OSSL_DECODER_from_data (decoder, &data, &size)) {
        EVP_PKEY_free (pkey);
        pkey = NULL;
        *error_p = "not a PEM public key";
    }
    OSSL_DECODER_CTX_free (decoder);
    ERR_clear_error ();
    return pkey;
}

//  Check that `pkey` suits `alg`; sets the key's signature size.
static int
s_key_check_pkey (s_key_t *key, const char **error_p)
{
    if (key->alg == KEEL_JWT_RS256) {
        if (!EVP_PKEY_is_a (key->pkey, "RSA")) {
            *error_p = "RS256 needs an RSA public key";
            return -1;
        }
        if (EVP_PKEY_get_bits (key->pkey) < 2048) {
            *error_p = "RSA key shorter than 2048 bits";
            return -1;
        }
        key->signature_size = (size_t)EVP_PKEY_get_size (key->pkey);
        return 0;
    }
    char group[64] = "";
    if (!EVP_PKEY_is_a (key->pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param (key->pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                         group, sizeof group, NULL) ||
        !streq (group, "prime256v1")) {
        ERR_clear_error ();
        *error_p = "ES256 needs an EC public key on P-256";
        return -1;
    }
    key->signature_size = 64;
    return 0;
}

//  Make a key. Returns it, or NULL with *error_p and *field_p set.
static s_key_t *
s_key_new (const keel_auth_key_t *spec, const char **error_p,
           s_field_t *field_p)
{
    *field_p = S_FIELD_KEY;
    if (spec->alg != KEEL_JWT_HS256 && spec->alg != KEEL_JWT_RS256 &&
        spec->alg != KEEL_JWT_ES256) {
        *error_p = "unknown alg";
        return NULL;
    }
    if (spec->kid && !*spec->kid) {
        *field_p = S_FIELD_KID;
        *error_p = "empty kid";
        return NULL;
    }
    s_key_t *self = (s_key_t *)calloc (1, sizeof (s_key_t));
    bool failed = !self;
    if (failed) {
        *error_p = "out of memory";
        return NULL;
    }
    self->alg = spec->alg;
    self->kid = s_strdup_opt (spec->kid, &failed);
    self->iss =
        s_strdup_opt (spec->iss && *spec->iss ? spec->iss : NULL, &failed);
    self->aud =
        s_strdup_opt (spec->aud && *spec->aud ? spec->aud : NULL, &failed);
    if (failed) {
        *error_p = "out of memory";
        s_key_destroy (&self);
        return NULL;
    }
    if (spec->alg == KEEL_JWT_HS256) {
        *field_p = S_FIELD_SECRET;
        if (!spec->secret || spec->secret_size == 0) {
            *error_p = "HS256 needs a non-empty secret";
            s_key_destroy (&self);
            return NULL;
        }
        //  A public key used as an HMAC secret is the alg-confusion attack
        //  waiting to happen: refuse it here too.
        if (spec->secret_size >= 10 &&
            memmem (spec->secret, spec->secret_size, "-----BEGIN", 10)) {
            *error_p = "HS256 secret is a PEM key (HS256 needs a shared "
                       "secret)";
            s_key_destroy (&self);
            return NULL;
        }
        self->secret = (unsigned char *)malloc (spec->secret_size);
        if (!self->secret) {
            *field_p = S_FIELD_KEY;
            *error_p = "out of memory";
            s_key_destroy (&self);
            return NULL;
        }
        memcpy (self->secret, spec->secret, spec->secret_size);
        self->secret_size = spec->secret_size;
        self->signature_size = 32;
        return self;
    }
    *field_p = S_FIELD_PEM;
    self->pkey = s_pem_public_key (spec->public_key_pem, error_p);
    if (!self->pkey || s_key_check_pkey (self, error_p)) {
        s_key_destroy (&self);
        return NULL;
    }
    return self;
}

//  Does `signature` sign `input` under `key`?
static bool
s_key_verify (s_key_t *key, const char *input, size_t input_size,
              const unsigned char *signature, size_t signature_size)
{
    if (signature_size != key->signature_size)
        return false;
    if (key->alg == KEEL_JWT_HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_size = 0;
        if (!HMAC (EVP_sha256 (), key->secret, (int)key->secret_size,
                   (const unsigned char *)input, input_size, mac, &mac_size) ||
            mac_size != 32) {
            ERR_clear_error ();
            return false;
        }
        return CRYPTO_memcmp (mac, signature, 32) == 0;
    }
    unsigned char *der = NULL;
    int der_size = 0;
    if (key->alg == KEEL_JWT_ES256) {
        //  JWS carries r||s, 32 bytes each; OpenSSL verifies DER.
        ECDSA_SIG *sig = ECDSA_SIG_new ();
        BIGNUM *r = BN_bin2bn (signature, 32, NULL);
        BIGNUM *s = BN_bin2bn (signature + 32, 32, NULL);
        if (sig && r && s && ECDSA_SIG_set0 (sig, r, s)) {
            r = s = NULL; //  owned by sig now
            der_size = i2d_ECDSA_SIG (sig, &der);
        }
        BN_free (r);
        BN_free (s);
        ECDSA_SIG_free (sig);
        if (der_size <= 0) {
            ERR_clear_error ();
            return false;
        }
        signature = der;
        signature_size = (size_t)der_size;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
    bool valid =
        ctx &&
        EVP_DigestVerifyInit (ctx, NULL, EVP_sha256 (), NULL, key->pkey) == 1 &&
        EVP_DigestVerify (ctx, signature, signature_size,
                          (const unsigned char *)input, input_size) == 1;
    EVP_MD_CTX_free (ctx);
    OPENSSL_free (der);
    if (!valid)
        ERR_clear_error ();
    return valid;
}

// ---------------------------------------------------------------------------
//  API keys

typedef struct {
    char *name;               //  the identity's sub
    unsigned char digest[32]; //  SHA-256 of the value
    keel_identity_t identity; //  what a match authenticates as
} s_api_key_t;

static void
s_api_key_destroy (s_api_key_t **self_p)
{
    assert (self_p);
    s_api_key_t *self = *self_p;
    if (self) {
        free (self->name);
        keel_identity_clear (&self->identity);
        free (self);
        *self_p = NULL;
    }
}

static int
s_sha256 (const void *data, size_t size, unsigned char digest[32])
{
    unsigned int digest_size = 0;
    if (!EVP_Digest (data, size, digest, &digest_size, EVP_sha256 (), NULL) ||
        digest_size != 32) {
        ERR_clear_error ();
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------
//  The authenticator

//  Everything configuration sets; keel_auth_load builds one aside and swaps
//  it in.
typedef struct {
    int64_t leeway_s;    //  skew allowed on exp and nbf
    size_t cache_size;   //  entries; 0 = no cache
    int64_t cache_max_s; //  longest an entry lives; 0 = no cache
    bool require_exp;    //  refuse tokens without exp
    char *iss;           //  issuer required when a key names none
    char *aud;           //  audience required when a key names none
    char *realm;         //  WWW-Authenticate realm
    char *challenges[KEEL_AUTH_REASON_COUNT]; //  per reason, from realm
    s_key_t **keys;                           //  in the order added
    size_t key_count;                         //
    s_api_key_t **api_keys;                   //  in the order added
    size_t api_key_count;                     //
} s_policy_t;

typedef struct s_entry_t {
    struct s_entry_t *bucket_next; //  next in the same bucket
    struct s_entry_t *lru_prev;    //  more recently used
    struct s_entry_t *lru_next;    //  less recently used
    uint64_t hash;                 //  keel_hash_string of the token
    int64_t valid_from;            //  the verdict stands in
    int64_t valid_until;           //  [valid_from, valid_until)
    keel_identity_t identity;      //  what the token verified to
    size_t size;                   //  of token
    char token[];                  //  the full text, NUL-terminated
} s_entry_t;

struct _keel_auth_t {
    s_policy_t policy;        //  settings, keys, API keys
    keel_hash_key_t hash_key; //  for the cache's hash
    s_entry_t **buckets;      //  NULL until the first insert
    size_t bucket_count;      //  a power of two
    s_entry_t *lru_head;      //  most recently used
    s_entry_t *lru_tail;      //  least recently used: evicted first
    keel_auth_stats_t stats;  //  counters; cache_entries kept live
};

static void
s_policy_destroy (s_policy_t *policy)
{
    free (policy->iss);
    free (policy->aud);
    free (policy->realm);
    for (int i = 0; i < KEEL_AUTH_REASON_COUNT; i++)
        free (policy->challenges[i]);
    for (size_t i = 0; i < policy->key_count; i++)
        s_key_destroy (&policy->keys[i]);
    free (policy->keys);
    for (size_t i = 0; i < policy->api_key_count; i++)
        s_api_key_destroy (&policy->api_keys[i]);
    free (policy->api_keys);
    memset (policy, 0, sizeof *policy);
}

//  Realms go inside a quoted string: no quotes, backslashes or controls.
static bool
s_realm_valid (const char *realm)
{
    for (const char *p = realm; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ||
            (unsigned char)*p == 0x7f)
            return false;
    return true;
}

//  (Re)build the WWW-Authenticate values for a realm. Returns 0 or -1.
static int
s_policy_set_realm (s_policy_t *policy, const char *realm)
{
    char *copy = strdup (realm);
    char *challenges[KEEL_AUTH_REASON_COUNT] = {NULL};
    int rc = copy ? 0 : -1;
    for (int reason = 0; reason < KEEL_AUTH_REASON_COUNT && rc == 0; reason++) {
        if (reason == KEEL_AUTH_OK || reason == KEEL_AUTH_NO_CREDENTIALS ||
            reason == KEEL_AUTH_BAD_SCHEME || reason == KEEL_AUTH_BAD_API_KEY ||
            reason == KEEL_AUTH_INTERNAL)
            challenges[reason] = zsys_sprintf ("Bearer realm=\"%s\"", realm);
        else
            challenges[reason] = zsys_sprintf (
                "Bearer realm=\"%s\", error=\"%s\", error_description=\"%s\"",
                realm,
                reason == KEEL_AUTH_MALFORMED_HEADER ? "invalid_request"
                                                     : "invalid_token",
                s_reasons[reason].text);
        if (!challenges[reason])
            rc = -1;
    }
    if (rc) {
        free (copy);
        for (int i = 0; i < KEEL_AUTH_REASON_COUNT; i++)
            free (challenges[i]);
        return -1;
    }
    free (policy->realm);
    policy->realm = copy;
    for (int i = 0; i < KEEL_AUTH_REASON_COUNT; i++) {
        free (policy->challenges[i]);
        policy->challenges[i] = challenges[i];
    }
    return 0;
}

static int
s_policy_init (s_policy_t *policy)
{
    memset (policy, 0, sizeof *policy);
    policy->leeway_s = KEEL_AUTH_DEFAULT_LEEWAY_S;
    policy->cache_size = KEEL_AUTH_DEFAULT_CACHE_SIZE;
    policy->cache_max_s = KEEL_AUTH_DEFAULT_CACHE_MAX_S;
    policy->require_exp = true;
    return s_policy_set_realm (policy, KEEL_AUTH_DEFAULT_REALM);
}

static s_key_t *
s_policy_find_kid (s_policy_t *policy, const char *kid)
{
    for (size_t i = 0; i < policy->key_count; i++)
        if (policy->keys[i]->kid && streq (policy->keys[i]->kid, kid))
            return policy->keys[i];
    return NULL;
}

static int
s_policy_add_key (s_policy_t *policy, const keel_auth_key_t *spec,
                  const char **error_p, s_field_t *field_p)
{
    if (spec->kid && s_policy_find_kid (policy, spec->kid)) {
        *field_p = S_FIELD_KID;
        *error_p = "kid given twice";
        return -1;
    }
    s_key_t *key = s_key_new (spec, error_p, field_p);
    if (!key)
        return -1;
    s_key_t **keys = (s_key_t **)realloc (
        policy->keys, (policy->key_count + 1) * sizeof (s_key_t *));
    if (!keys) {
        *field_p = S_FIELD_KEY;
        *error_p = "out of memory";
        s_key_destroy (&key);
        return -1;
    }
    policy->keys = keys;
    policy->keys[policy->key_count++] = key;
    return 0;
}

//  Which field of an API key an error is about.
typedef enum { S_API_NAME, S_API_VALUE, S_API_OTHER } s_api_field_t;

static int
s_policy_add_api_key (s_policy_t *policy, const char *name, const char *value,
                      const char *scopes, const char *roles,
                      const char **error_p, s_api_field_t *field_p)
{
    *field_p = S_API_OTHER;
    if (!name || !*name) {
        *field_p = S_API_NAME;
        *error_p = "API key needs a non-empty name";
        return -1;
    }
    if (!value || !*value) {
        *field_p = S_API_VALUE;
        *error_p = "API key needs a non-empty value";
        return -1;
    }
    unsigned char digest[32];
    if (s_sha256 (value, strlen (value), digest)) {
        *error_p = "cannot hash the value";
        return -1;
    }
    for (size_t i = 0; i < policy->api_key_count; i++) {
        if (streq (policy->api_keys[i]->name, name)) {
            *field_p = S_API_NAME;
            *error_p = "API key name given twice";
            return -1;
        }
        if (CRYPTO_memcmp (policy->api_keys[i]->digest, digest, 32) == 0) {
            *field_p = S_API_VALUE;
            *error_p = "API key value given twice";
            return -1;
        }
    }
    s_api_key_t *key = (s_api_key_t *)calloc (1, sizeof (s_api_key_t));
    s_strs_t scope_list = {0}, role_list = {0};
    int rc = key ? 0 : -1;
    if (rc == 0) {
        memcpy (key->digest, digest, 32);
        key->name = strdup (name);
        s_str_t sub = {name, strlen (name)};
        rc = !key->name || s_strs_split (&scope_list, scopes, " ,") ||
                     s_strs_split (&role_list, roles, " ,") ||
                     s_identity_build (&key->identity, sub, name, &scope_list,
                                       &role_list, 0, true)
                 ? -1
                 : 0;
    }
    s_api_key_t **keys = NULL;
    if (rc == 0) {
        keys = (s_api_key_t **)realloc (policy->api_keys,
                                        (policy->api_key_count + 1) *
                                            sizeof (s_api_key_t *));
        rc = keys ? 0 : -1;
    }
    s_strs_free (&scope_list);
    s_strs_free (&role_list);
    OPENSSL_cleanse (digest, sizeof digest);
    if (rc) {
        s_api_key_destroy (&key);
        *error_p = "out of memory";
        return -1;
    }
    policy->api_keys = keys;
    policy->api_keys[policy->api_key_count++] = key;
    return 0;
}

keel_auth_t *
keel_auth_new (void)
{
    keel_auth_t *self = (keel_auth_t *)calloc (1, sizeof (keel_auth_t));
    if (!self)
        return NULL;
    if (s_policy_init (&self->policy)) {
        s_policy_destroy (&self->policy);
        free (self);
        return NULL;
    }
    keel_hash_key_init (&self->hash_key);
    return self;
}

void
keel_auth_destroy (keel_auth_t **self_p)
{
    assert (self_p);
    keel_auth_t *self = *self_p;
    if (self) {
        keel_auth_cache_clear (self);
        s_policy_destroy (&self->policy);
        free (self);
        *self_p = NULL;
    }
}

// ---------------------------------------------------------------------------
//  The cache

static bool
s_cache_enabled (keel_auth_t *self)
{
    return self->policy.cache_size > 0 && self->policy.cache_max_s > 0;
}

static void
s_lru_unlink (keel_auth_t *self, s_entry_t *entry)
{
    if (entry->lru_prev)
        entry->lru_prev->lru_next = entry->lru_next;
    else
        self->lru_head = entry->lru_next;
    if (entry->lru_next)
        entry->lru_next->lru_prev = entry->lru_prev;
    else
        self->lru_tail = entry->lru_prev;
    entry->lru_prev = entry->lru_next = NULL;
}

static void
s_lru_push_front (keel_auth_t *self, s_entry_t *entry)
{
    entry->lru_prev = NULL;
    entry->lru_next = self->lru_head;
    if (self->lru_head)
        self->lru_head->lru_prev = entry;
    self->lru_head = entry;
    if (!self->lru_tail)
        self->lru_tail = entry;
}

static void
s_cache_remove (keel_auth_t *self, s_entry_t *entry)
{
    s_entry_t **link = &self->buckets[entry->hash & (self->bucket_count - 1)];
    while (*link != entry)
        link = &(*link)->bucket_next;
    *link = entry->bucket_next;
    s_lru_unlink (self, entry);
    keel_identity_clear (&entry->identity);
    free (entry);
    self->stats.cache_entries--;
}

static s_entry_t *
s_cache_find (keel_auth_t *self, uint64_t hash, const char *token, size_t size)
{
    if (!self->buckets)
        return NULL;
    for (s_entry_t *entry = self->buckets[hash & (self->bucket_count - 1)];
         entry; entry = entry->bucket_next)
        if (entry->hash == hash && entry->size == size &&
            CRYPTO_memcmp (entry->token, token, size) == 0)
            return entry;
    return NULL;
}

//  Remember a verified token. Out of memory only means no caching.
static void
s_cache_put (keel_auth_t *self, uint64_t hash, const char *token, size_t size,
             const keel_identity_t *identity, int64_t valid_from,
             int64_t valid_until)
{
    if (!self->buckets) {
        size_t count = 8;
        while (count < self->policy.cache_size && count < ((size_t)1 << 20))
            count *= 2;
        self->buckets = (s_entry_t **)calloc (count, sizeof (s_entry_t *));
        if (!self->buckets)
            return;
        self->bucket_count = count;
    }
    s_entry_t *entry = (s_entry_t *)calloc (1, sizeof (s_entry_t) + size + 1);
    if (!entry)
        return;
    if (keel_identity_copy (&entry->identity, identity)) {
        free (entry);
        return;
    }
    while (self->stats.cache_entries >= self->policy.cache_size) {
        s_cache_remove (self, self->lru_tail);
        self->stats.cache_evictions++;
    }
    entry->hash = hash;
    entry->valid_from = valid_from;
    entry->valid_until = valid_until;
    entry->size = size;
    memcpy (entry->token, token, size);
    s_entry_t **bucket = &self->buckets[hash & (self->bucket_count - 1)];
    entry->bucket_next = *bucket;
    *bucket = entry;
    s_lru_push_front (self, entry);
    self->stats.cache_entries++;
}

void
keel_auth_cache_clear (keel_auth_t *self)
{
    assert (self);
    while (self->lru_head)
        s_cache_remove (self, self->lru_head);
    free (self->buckets);
    self->buckets = NULL;
    self->bucket_count = 0;
}

// ---------------------------------------------------------------------------
//  Settings

void
keel_auth_set_leeway (keel_auth_t *self, int64_t leeway_s)
{
    assert (self);
    assert (leeway_s >= 0);
    self->policy.leeway_s = leeway_s;
    keel_auth_cache_clear (self);
}

void
keel_auth_set_cache (keel_auth_t *self, size_t entries, int64_t max_age_s)
{
    assert (self);
    assert (max_age_s >= 0);
    self->policy.cache_size = entries;
    self->policy.cache_max_s = max_age_s;
    keel_auth_cache_clear (self);
}

void
keel_auth_set_require_exp (keel_auth_t *self, bool require_exp)
{
    assert (self);
    self->policy.require_exp = require_exp;
    keel_auth_cache_clear (self);
}

static int
s_replace_string (char **slot, const char *value)
{
    char *copy = NULL;
    if (value && *value && !(copy = strdup (value)))
        return -1;
    free (*slot);
    *slot = copy;
    return 0;
}

int
keel_auth_set_issuer (keel_auth_t *self, const char *iss)
{
    assert (self);
    keel_auth_cache_clear (self);
    return s_replace_string (&self->policy.iss, iss);
}

int
keel_auth_set_audience (keel_auth_t *self, const char *aud)
{
    assert (self);
    keel_auth_cache_clear (self);
    return s_replace_string (&self->policy.aud, aud);
}

int
keel_auth_set_realm (keel_auth_t *self, const char *realm)
{
    assert (self);
    if (!realm || !s_realm_valid (realm))
        return -1;
    return s_policy_set_realm (&self->policy, realm);
}

int
keel_auth_add_key (keel_auth_t *self, const keel_auth_key_t *key,
                   const char **error_p)
{
    assert (self);
    assert (key);
    const char *error = NULL;
    s_field_t field;
    keel_auth_cache_clear (self);
    int rc = s_policy_add_key (&self->policy, key, &error, &field);
    if (error_p)
        *error_p = error;
    return rc;
}

int
keel_auth_add_api_key (keel_auth_t *self, const char *name, const char *value,
                       const char *scopes, const char *roles,
                       const char **error_p)
{
    assert (self);
    const char *error = NULL;
    s_api_field_t field;
    int rc = s_policy_add_api_key (&self->policy, name, value, scopes, roles,
                                   &error, &field);
    if (error_p)
        *error_p = error;
    return rc;
}

const char *
keel_auth_challenge (keel_auth_t *self, keel_auth_reason_t reason)
{
    assert (self);
    if ((int)reason < 0 || reason >= KEEL_AUTH_REASON_COUNT)
        reason = KEEL_AUTH_NO_CREDENTIALS;
    return self->policy.challenges[reason];
}

char *
keel_auth_forbidden_challenge (keel_auth_t *self, const char *scope)
{
    assert (self);
    //  A scope-token never holds '"' or '\\' (RFC 6749 3.3); leave out one
    //  that does rather than break the header.
    if (scope && (!*scope || !s_realm_valid (scope) || strchr (scope, ' ')))
        scope = NULL;
    if (scope)
        return zsys_sprintf (
            "Bearer realm=\"%s\", error=\"insufficient_scope\", scope=\"%s\"",
            self->policy.realm, scope);
    return zsys_sprintf ("Bearer realm=\"%s\", error=\"insufficient_scope\"",
                         self->policy.realm);
}

void
keel_auth_stats (keel_auth_t *self, keel_auth_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = self->stats;
}

// ---------------------------------------------------------------------------
//  Checking a token

//  Is the JSON text nested at most `max` deep? Counts brackets outside
//  strings; runs before the (recursive) parser sees the text.
static bool
s_json_depth_ok (const unsigned char *text, size_t size, int max)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < size; i++) {
        unsigned char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"')
            in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if (c == ']' || c == '}')
            depth--;
    }
    return true;
}

//  Parse a JSON object strictly. Returns it (caller owns) or NULL.
static json_t *
s_json_object (const unsigned char *text, size_t size)
{
    json_error_t error;
    json_t *value =
        json_loadb ((const char *)text, size, JSON_REJECT_DUPLICATES, &error);
    if (value && !json_is_object (value)) {
        json_decref (value);
        value = NULL;
    }
    return value;
}

//  A NumericDate: a number, possibly fractional. Rounds up (now is whole
//  seconds: now < x exactly when now < ceil (x)). Returns 0 or -1.
static int
s_numeric_date (json_t *value, int64_t *date_p)
{
    if (json_is_integer (value)) {
        *date_p = (int64_t)json_integer_value (value);
        return 0;
    }
    if (json_is_real (value)) {
        double date = ceil (json_real_value (value));
        if (!isfinite (date) || date > 1e15 || date < -1e15)
            return -1;
        *date_p = (int64_t)date;
        return 0;
    }
    return -1;
}

//  a + b, saturated.
static int64_t
s_add (int64_t a, int64_t b)
{
    int64_t sum;
    if (__builtin_add_overflow (a, b, &sum))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return sum;
}

//  Append a claim's strings: a JSON string split at spaces (`split`), or an
//  array of strings. Returns 0, -1 on a wrong type, -2 if out of memory.
static int
s_claim_strings (json_t *value, bool split, s_strs_t *list)
{
    if (!value)
        return 0;
    if (json_is_string (value) && split) {
        const char *text = json_string_value (value);
        size_t size = json_string_length (value);
        for (size_t i = 0; i < size;) {
            while (i < size && text[i] == ' ')
                i++;
            size_t start = i;
            while (i < size && text[i] != ' ')
                i++;
            if (i > start && s_strs_push (list, text + start, i - start))
                return -2;
        }
        return 0;
    }
    if (!json_is_array (value))
        return -1;
    size_t index;
    json_t *item;
    json_array_foreach (value, index, item)
    {
        if (!json_is_string (item))
            return -1;
        if (json_string_length (item) &&
            s_strs_push (list, json_string_value (item),
                         json_string_length (item)))
            return -2;
    }
    return 0;
}

//  Does the aud claim (a string or an array of strings) hold `aud`?
//  Returns 1, 0, or -1 on a wrong type.
static int
s_audience_has (json_t *value, const char *aud)
{
    if (json_is_string (value))
        return streq (json_string_value (value), aud);
    if (!json_is_array (value))
        return -1;
    int found = 0;
    size_t index;
    json_t *item;
    json_array_foreach (value, index, item)
    {
        if (!json_is_string (item))
            return -1;
        if (streq (json_string_value (item), aud))
            found = 1;
    }
    return found;
}

//  Check the claims of a token `key` verified, at `now_s`; fill *identity
//  and the window of the cache's verdict.
static keel_auth_reason_t
s_check_claims (keel_auth_t *self, s_key_t *key, json_t *claims, int64_t now_s,
                keel_identity_t *identity, int64_t *valid_from_p,
                int64_t *valid_until_p)
{
    const s_policy_t *policy = &self->policy;
    int64_t exp = INT64_MAX, nbf = INT64_MIN;
    json_t *value = json_object_get (claims, "exp");
    if (value && s_numeric_date (value, &exp))
        return KEEL_AUTH_BAD_CLAIM;
    if (!value && policy->require_exp)
        return KEEL_AUTH_MISSING_EXP;
    value = json_object_get (claims, "nbf");
    if (value && s_numeric_date (value, &nbf))
        return KEEL_AUTH_BAD_CLAIM;
    if (now_s >= s_add (exp, policy->leeway_s))
        return KEEL_AUTH_EXPIRED;
    if (now_s < s_add (nbf, -policy->leeway_s))
        return KEEL_AUTH_NOT_YET_VALID;

    const char *iss = key->iss ? key->iss : policy->iss;
    value = json_object_get (claims, "iss");
    if (value && !json_is_string (value))
        return KEEL_AUTH_BAD_CLAIM;
    if (iss && (!value || !streq (json_string_value (value), iss)))
        return KEEL_AUTH_WRONG_ISSUER;

    const char *aud = key->aud ? key->aud : policy->aud;
    value = json_object_get (claims, "aud");
    int has = value ? s_audience_has (value, aud ? aud : "") : 0;
    if (has < 0)
        return KEEL_AUTH_BAD_CLAIM;
    if (aud && !has)
        return KEEL_AUTH_WRONG_AUDIENCE;

    value = json_object_get (claims, "sub");
    if (value && !json_is_string (value))
        return KEEL_AUTH_BAD_CLAIM;
    if (!value || json_string_length (value) == 0)
        return KEEL_AUTH_MISSING_SUB;
    s_str_t sub = {json_string_value (value), json_string_length (value)};

    s_strs_t scopes = {0}, roles = {0};
    //  "scope" is a string (RFC 8693), "scp" an array or a string; both
    //  are taken in either form.
    int rc = s_claim_strings (json_object_get (claims, "scope"), true, &scopes);
    if (rc == 0)
        rc = s_claim_strings (json_object_get (claims, "scp"), true, &scopes);
    if (rc == 0)
        rc = s_claim_strings (json_object_get (claims, "roles"), false, &roles);
    if (rc == 0 && s_identity_build (identity, sub, key->kid, &scopes, &roles,
                                     exp == INT64_MAX ? 0 : exp, false))
        rc = -2;
    s_strs_free (&scopes);
    s_strs_free (&roles);
    if (rc)
        return rc == -1 ? KEEL_AUTH_BAD_CLAIM : KEEL_AUTH_INTERNAL;

    *valid_from_p = s_add (nbf, -policy->leeway_s);
    *valid_until_p = exp < s_add (now_s, policy->cache_max_s)
                         ? exp
                         : s_add (now_s, policy->cache_max_s);
    return KEEL_AUTH_OK;
}

//  Pick the keys to try: by kid, or the first few of the token's alg.
static keel_auth_reason_t
s_select_keys (keel_auth_t *self, json_t *header, keel_jwt_alg_t alg,
               s_key_t **candidates, size_t *count_p)
{
    json_t *kid = json_object_get (header, "kid");
    *count_p = 0;
    if (kid) {
        if (!json_is_string (kid))
            return KEEL_AUTH_BAD_HEADER;
        s_key_t *key =
            s_policy_find_kid (&self->policy, json_string_value (kid));
        if (!key)
            return KEEL_AUTH_UNKNOWN_KID;
        if (key->alg != alg)
            return KEEL_AUTH_ALG_MISMATCH;
        candidates[(*count_p)++] = key;
        return KEEL_AUTH_OK;
    }
    for (size_t i = 0;
         i < self->policy.key_count && *count_p < KEEL_JWT_MAX_TRIES; i++)
        if (self->policy.keys[i]->alg == alg)
            candidates[(*count_p)++] = self->policy.keys[i];
    return *count_p ? KEEL_AUTH_OK : KEEL_AUTH_NO_KEY;
}

//  Read alg and crit from a parsed header.
static keel_auth_reason_t
s_header_alg (json_t *header, keel_jwt_alg_t *alg_p)
{
    json_t *alg = json_object_get (header, "alg");
    if (!alg)
        return KEEL_AUTH_ALG_MISSING;
    if (!json_is_string (alg))
        return KEEL_AUTH_ALG_UNSUPPORTED;
    if (strcasecmp (json_string_value (alg), "none") == 0)
        return KEEL_AUTH_ALG_NONE;
    int parsed = keel_jwt_alg_parse (json_string_value (alg));
    if (parsed < 0)
        return KEEL_AUTH_ALG_UNSUPPORTED;
    //  RFC 7515 4.1.11: a recipient that understands none of the listed
    //  extensions must refuse the token; keel understands none.
    if (json_object_get (header, "crit"))
        return KEEL_AUTH_UNSUPPORTED_CRIT;
    *alg_p = (keel_jwt_alg_t)parsed;
    return KEEL_AUTH_OK;
}

//  The whole check of a token of `size` bytes (not NUL-terminated).
static keel_auth_reason_t
s_check (keel_auth_t *self, const char *token, size_t size, int64_t now_s,
         keel_identity_t *identity)
{
    if (size > KEEL_JWT_MAX_TOKEN)
        return KEEL_AUTH_TOO_LARGE;
    char text[KEEL_JWT_MAX_TOKEN + 1];
    memcpy (text, token, size);
    text[size] = 0;

    //  Shape: HEADER.CLAIMS.SIGNATURE, the signature may be empty.
    const char *dot1 = (const char *)memchr (text, '.', size);
    const char *dot2 =
        dot1 ? (const char *)memchr (dot1 + 1, '.',
                                     size - (size_t)(dot1 + 1 - text))
             : NULL;
    if (!dot2 || dot1 == text || dot2 == dot1 + 1 ||
        memchr (dot2 + 1, '.', size - (size_t)(dot2 + 1 - text)))
        return KEEL_AUTH_MALFORMED_TOKEN;

    //  Seen and verified before?
    uint64_t hash = 0;
    bool caching = s_cache_enabled (self);
    if (caching) {
        hash = keel_hash_string (&self->hash_key, text);
        s_entry_t *entry = s_cache_find (self, hash, text, size);
        if (entry && now_s >= entry->valid_from && now_s < entry->valid_until) {
            if (keel_identity_copy (identity, &entry->identity))
                return KEEL_AUTH_INTERNAL;
            s_lru_unlink (self, entry);
            s_lru_push_front (self, entry);
            self->stats.cache_hits++;
            return KEEL_AUTH_OK;
        }
        if (entry)
            s_cache_remove (self, entry);
        self->stats.cache_misses++;
    }

    //  Decode the three segments into one buffer.
    unsigned char raw[KEEL_JWT_MAX_TOKEN];
    size_t header_size, claims_size, signature_size;
    unsigned char *header_raw = raw;
    if (keel_base64url_decode (text, (size_t)(dot1 - text), header_raw,
                               sizeof raw, &header_size))
        return KEEL_AUTH_BAD_BASE64;
    unsigned char *claims_raw = header_raw + header_size;
    if (keel_base64url_decode (dot1 + 1, (size_t)(dot2 - dot1 - 1), claims_raw,
                               sizeof raw - header_size, &claims_size))
        return KEEL_AUTH_BAD_BASE64;
    unsigned char *signature = claims_raw + claims_size;
    if (keel_base64url_decode (
            dot2 + 1, size - (size_t)(dot2 + 1 - text), signature,
            sizeof raw - header_size - claims_size, &signature_size))
        return KEEL_AUTH_BAD_BASE64;

    //  Header, key, signature.
    if (!s_json_depth_ok (header_raw, header_size, KEEL_JWT_MAX_DEPTH))
        return KEEL_AUTH_TOO_DEEP;
    json_t *header = s_json_object (header_raw, header_size);
    if (!header)
        return KEEL_AUTH_BAD_HEADER;
    keel_jwt_alg_t alg = KEEL_JWT_HS256;
    s_key_t *candidates[KEEL_JWT_MAX_TRIES];
    size_t count = 0;
    keel_auth_reason_t reason = s_header_alg (header, &alg);
    if (reason == KEEL_AUTH_OK)
        reason = s_select_keys (self, header, alg, candidates, &count);
    json_decref (header);
    if (reason != KEEL_AUTH_OK)
        return reason;
    s_key_t *key = NULL;
    for (size_t i = 0; i < count && !key; i++) {
        self->stats.signature_checks++;
        if (s_key_verify (candidates[i], text, (size_t)(dot2 - text), signature,
                          signature_size))
            key = candidates[i];
    }
    if (!key)
        return KEEL_AUTH_BAD_SIGNATURE;
    self->stats.verified++;

    //  Claims.
    if (!s_json_depth_ok (claims_raw, claims_size, KEEL_JWT_MAX_DEPTH))
        return KEEL_AUTH_TOO_DEEP;
    json_t *claims = s_json_object (claims_raw, claims_size);
    if (!claims)
        return KEEL_AUTH_BAD_CLAIMS;
    int64_t valid_from = 0, valid_until = 0;
    reason = s_check_claims (self, key, claims, now_s, identity, &valid_from,
                             &valid_until);
    json_decref (claims);
    if (reason == KEEL_AUTH_OK && caching && now_s < valid_until)
        s_cache_put (self, hash, text, size, identity, valid_from, valid_until);
    return reason;
}

//  Count a verdict and turn it into the caller's status.
static int
s_verdict (keel_auth_t *self, keel_auth_reason_t reason, bool api_key,
           keel_identity_t *identity, keel_auth_reason_t *reason_p)
{
    if (reason == KEEL_AUTH_OK) {
        if (api_key)
            self->stats.api_keys_accepted++;
        else
            self->stats.accepted++;
    } else {
        keel_identity_clear (identity);
        self->stats.refused++;
        self->stats.by_reason[reason]++;
    }
    if (reason_p)
        *reason_p = reason;
    return s_status (reason);
}

int
keel_auth_check_token (keel_auth_t *self, const char *token, int64_t now_s,
                       keel_identity_t *identity, keel_auth_reason_t *reason_p)
{
    assert (self);
    assert (identity);
    keel_identity_clear (identity);
    keel_auth_reason_t reason = KEEL_AUTH_NO_CREDENTIALS;
    if (token && *token)
        reason = s_check (self, token, strnlen (token, KEEL_JWT_MAX_TOKEN + 1),
                          now_s, identity);
    return s_verdict (self, reason, false, identity, reason_p);
}

//  Find the token in "Bearer TOKEN" (RFC 6750 2.1; the scheme in any case,
//  spaces around it tolerated). Returns OK with the token's start and size.
static keel_auth_reason_t
s_bearer_token (const char *header, const char **token_p, size_t *size_p)
{
    const char *p = header;
    if (!p)
        return KEEL_AUTH_NO_CREDENTIALS;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p)
        return KEEL_AUTH_NO_CREDENTIALS;
    const char *scheme = p;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    if (p - scheme != 6 || strncasecmp (scheme, "Bearer", 6) != 0)
        return KEEL_AUTH_BAD_SCHEME;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *token = p;
    //  Visible ASCII only; what is not base64url fails later, precisely.
    while ((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f) {
        if (p - token == KEEL_JWT_MAX_TOKEN)
            return KEEL_AUTH_TOO_LARGE;
        p++;
    }
    size_t size = (size_t)(p - token);
    while (*p == ' ' || *p == '\t')
        p++;
    if (size == 0 || *p)
        return KEEL_AUTH_MALFORMED_HEADER;
    *token_p = token;
    *size_p = size;
    return KEEL_AUTH_OK;
}

int
keel_auth_check_bearer (keel_auth_t *self, const char *header_value,
                        int64_t now_s, keel_identity_t *identity,
                        keel_auth_reason_t *reason_p)
{
    assert (self);
    assert (identity);
    keel_identity_clear (identity);
    const char *token = NULL;
    size_t size = 0;
    keel_auth_reason_t reason = s_bearer_token (header_value, &token, &size);
    if (reason == KEEL_AUTH_OK)
        reason = s_check (self, token, size, now_s, identity);
    return s_verdict (self, reason, false, identity, reason_p);
}

int
keel_auth_check_api_key (keel_auth_t *self, const char *value,
                         keel_identity_t *identity,
                         keel_auth_reason_t *reason_p)
{
    assert (self);
    assert (identity);
    keel_identity_clear (identity);
    keel_auth_reason_t reason = KEEL_AUTH_NO_CREDENTIALS;
    if (value && *value) {
        //  Compare digests, all of them: the time taken says nothing about
        //  any configured value.
        unsigned char digest[32];
        s_api_key_t *match = NULL;
        reason = KEEL_AUTH_INTERNAL;
        if (s_sha256 (value, strlen (value), digest) == 0) {
            for (size_t i = 0; i < self->policy.api_key_count; i++) {
                s_api_key_t *key = self->policy.api_keys[i];
                if (CRYPTO_memcmp (key->digest, digest, 32) == 0)
                    match = key;
            }
            reason = !match ? KEEL_AUTH_BAD_API_KEY
                     : keel_identity_copy (identity, &match->identity)
                         ? KEEL_AUTH_INTERNAL
                         : KEEL_AUTH_OK;
        }
    }
    return s_verdict (self, reason, true, identity, reason_p);
}

// ---------------------------------------------------------------------------
//  Minting

//  Mint with a secret of `secret_size` bytes.
static char *
s_mint (const void *secret, size_t secret_size, const char *kid,
        const char *sub, const char *const *scopes, const char *iss,
        const char *aud, int64_t lifetime_s, int64_t now_s)
{
    if (!secret || !secret_size || !sub || !*sub || lifetime_s <= 0 ||
        (kid && !*kid))
        return NULL;
    int64_t exp;
    if (__builtin_add_overflow (now_s, lifetime_s, &exp))
        return NULL;
    char *scope = NULL;
    if (scopes && *scopes) {
        size_t size = 1;
        for (const char *const *s = scopes; *s; s++) {
            if (!**s || strchr (*s, ' '))
                return NULL;
            size += strlen (*s) + 1;
        }
        scope = (char *)calloc (1, size);
        if (!scope)
            return NULL;
        for (const char *const *s = scopes; *s; s++) {
            if (s != scopes)
                strcat (scope, " ");
            strcat (scope, *s);
        }
    }
    json_t *header = json_object ();
    json_t *claims = json_object ();
    int rc = header && claims ? 0 : -1;
    if (rc == 0)
        rc = json_object_set_new (header, "alg", json_string ("HS256")) ||
             json_object_set_new (header, "typ", json_string ("JWT")) ||
             (kid && json_object_set_new (header, "kid", json_string (kid))) ||
             json_object_set_new (claims, "sub", json_string (sub)) ||
             (iss && json_object_set_new (claims, "iss", json_string (iss))) ||
             (aud && json_object_set_new (claims, "aud", json_string (aud))) ||
             (scope &&
              json_object_set_new (claims, "scope", json_string (scope))) ||
             json_object_set_new (claims, "iat", json_integer (now_s)) ||
             json_object_set_new (claims, "exp", json_integer (exp));
    free (scope);
    char *header_json = rc == 0 ? json_dumps (header, JSON_COMPACT) : NULL;
    char *claims_json = rc == 0 ? json_dumps (claims, JSON_COMPACT) : NULL;
    json_decref (header);
    json_decref (claims);
    char *header_b64 =
        header_json ? keel_base64url_encode (header_json, strlen (header_json))
                    : NULL;
    char *claims_b64 =
        claims_json ? keel_base64url_encode (claims_json, strlen (claims_json))
                    : NULL;
    free (header_json);
    free (claims_json);
    char *input = header_b64 && claims_b64
                      ? zsys_sprintf ("%s.%s", header_b64, claims_b64)
                      : NULL;
    free (header_b64);
    free (claims_b64);
    if (!input)
        return NULL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_size = 0;
    char *signature = NULL;
    if (HMAC (EVP_sha256 (), secret, (int)secret_size,
              (const unsigned char *)input, strlen (input), mac, &mac_size))
        signature = keel_base64url_encode (mac, mac_size);
    ERR_clear_error ();
    char *token = signature ? zsys_sprintf ("%s.%s", input, signature) : NULL;
    free (input);
    free (signature);
    return token;
}

char *
keel_jwt_mint_hs256 (const char *secret, const char *kid, const char *sub,
                     const char *const *scopes, const char *iss,
                     const char *aud, int64_t lifetime_s, int64_t now_s)
{
    return s_mint (secret, secret ? strlen (secret) : 0, kid, sub, scopes, iss,
                   aud, lifetime_s, now_s);
}

char *
keel_auth_mint (keel_auth_t *self, const char *kid, const char *sub,
                const char *const *scopes, int64_t lifetime_s, int64_t now_s)
{
    assert (self);
    s_key_t *key = NULL;
    if (kid)
        key = s_policy_find_kid (&self->policy, kid);
    else
        for (size_t i = 0; i < self->policy.key_count && !key; i++)
            if (self->policy.keys[i]->alg == KEEL_JWT_HS256)
                key = self->policy.keys[i];
    if (!key || key->alg != KEEL_JWT_HS256)
        return NULL;
    return s_mint (key->secret, key->secret_size, key->kid, sub, scopes,
                   key->iss ? key->iss : self->policy.iss,
                   key->aud ? key->aud : self->policy.aud, lifetime_s, now_s);
}

// ---------------------------------------------------------------------------
//  Loading from a config

//  Read a whole (small) file. Returns the text (caller frees) or NULL with
//  errno set.
static char *
s_read_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = (char *)malloc (S_MAX_PEM_FILE + 1);
    size_t size = text ? fread (text, 1, S_MAX_PEM_FILE + 1, file) : 0;
    int error = ferror (file) ? EIO : !text ? ENOMEM : 0;
    if (!error && size > S_MAX_PEM_FILE)
        error = EFBIG;
    fclose (file);
    if (error) {
        free (text);
        errno = error;
        return NULL;
    }
    text[size] = 0;
    return text;
}

//  `path` as given, or relative to the config file's folder. Caller frees.
static char *
s_resolve (keel_config_t *config, const char *path)
{
    const char *name = keel_config_name (config);
    const char *slash = name ? strrchr (name, '/') : NULL;
    if (*path == '/' || !slash)
        return strdup (path);
    return zsys_sprintf ("%.*s/%s", (int)(slash - name), name, path);
}

//  The children of a section, by name, each at most once. `nodes` gets one
//  slot per name of `names` (NULL-terminated). Returns 0 or -1 (error set).
static int
s_section_fields (keel_config_t *config, zconfig_t *section,
                  const char *const *names, zconfig_t **nodes)
{
    size_t count = 0;
    while (names[count])
        count++;
    memset (nodes, 0, count * sizeof (zconfig_t *));
    const char *value = zconfig_value (section);
    if (value && *value)
        return keel_config_fail_node (
            config, section, "expected a section, found a value '%s'", value);
    for (zconfig_t *child = zconfig_child (section); child;
         child = zconfig_next (child)) {
        const char *name = zconfig_name (child) ? zconfig_name (child) : "";
        size_t i = 0;
        while (i < count && !streq (name, names[i]))
            i++;
        if (i == count) {
            char list[256] = "";
            for (size_t j = 0; j < count; j++) {
                if (j)
                    strncat (list, ", ", sizeof list - strlen (list) - 1);
                strncat (list, names[j], sizeof list - strlen (list) - 1);
            }
            return keel_config_fail_node (
                config, child, "unknown key (expected one of: %s)", list);
        }
        if (nodes[i])
            return keel_config_fail_node (
                config, child, "given twice (first at line %d)",
                keel_config_node_line (config, nodes[i]));
        if (zconfig_child (child))
            return keel_config_fail_node (config, child,
                                          "expected a value, found a section");
        nodes[i] = child;
    }
    return 0;
}

//  A field's value; NULL if the field is absent or empty.
static const char *
s_node_value (zconfig_t *node)
{
    const char *value = node ? zconfig_value (node) : NULL;
    return value && *value ? value : NULL;
}

//  Load one `key` section into `policy`.
static int
s_load_key (keel_config_t *config, zconfig_t *section, s_policy_t *policy)
{
    enum { KID, ALG, SECRET, PEM_FILE, ISS, AUD, FIELDS };
    static const char *names[] = {"kid", "alg", "secret", "public_key_file",
                                  "iss", "aud", NULL};
    zconfig_t *nodes[FIELDS];
    if (s_section_fields (config, section, names, nodes))
        return -1;
    if (!nodes[ALG])
        return keel_config_fail_node (config, section,
                                      "missing 'alg' (HS256, RS256 or ES256)");
    const char *alg_name = s_node_value (nodes[ALG]);
    int alg = keel_jwt_alg_parse (alg_name);
    if (alg < 0)
        return keel_config_fail_node (
            config, nodes[ALG],
            "unknown alg '%s' (expected HS256, RS256 or ES256)",
            alg_name ? alg_name : "");
    for (int i = KID; i < FIELDS; i++)
        if (i != ALG && nodes[i] && !s_node_value (nodes[i]))
            return keel_config_fail_node (config, nodes[i],
                                          "empty (leave the key out instead)");
    keel_auth_key_t spec = {0};
    spec.kid = s_node_value (nodes[KID]);
    spec.alg = (keel_jwt_alg_t)alg;
    spec.iss = s_node_value (nodes[ISS]);
    spec.aud = s_node_value (nodes[AUD]);
    char *pem = NULL;
    if (alg == KEEL_JWT_HS256) {
        if (nodes[PEM_FILE])
            return keel_config_fail_node (
                config, nodes[PEM_FILE],
                "HS256 takes a secret, not a public key");
        if (!nodes[SECRET])
            return keel_config_fail_node (config, section,
                                          "HS256 needs a 'secret'");
        spec.secret = s_node_value (nodes[SECRET]);
        spec.secret_size = strlen (spec.secret);
    } else {
        if (nodes[SECRET])
            return keel_config_fail_node (
                config, nodes[SECRET],
                "%s takes a public_key_file, not a secret",
                keel_jwt_alg_name (alg));
        if (!nodes[PEM_FILE])
            return keel_config_fail_node (config, section,
                                          "%s needs a 'public_key_file'",
                                          keel_jwt_alg_name (alg));
        char *path = s_resolve (config, s_node_value (nodes[PEM_FILE]));
        pem = path ? s_read_file (path) : NULL;
        if (!pem) {
            int error = path ? errno : ENOMEM;
            keel_config_fail_node (config, nodes[PEM_FILE],
                                   "cannot read '%s': %s", path ? path : "?",
                                   strerror (error));
            free (path);
            return -1;
        }
        free (path);
        spec.public_key_pem = pem;
    }
    const char *error = NULL;
    s_field_t field = S_FIELD_KEY;
    int rc = s_policy_add_key (policy, &spec, &error, &field);
    free (pem);
    if (rc) {
        zconfig_t *node = field == S_FIELD_KID      ? nodes[KID]
                          : field == S_FIELD_SECRET ? nodes[SECRET]
                          : field == S_FIELD_PEM    ? nodes[PEM_FILE]
                                                    : NULL;
        return keel_config_fail_node (config, node ? node : section, "%s",
                                      error);
    }
    return 0;
}

//  Load one `api_key` section into `policy`.
static int
s_load_api_key (keel_config_t *config, zconfig_t *section, s_policy_t *policy)
{
    enum { NAME, VALUE, SCOPES, ROLES, FIELDS };
    static const char *names[] = {"name", "value", "scopes", "roles", NULL};
    zconfig_t *nodes[FIELDS];
    if (s_section_fields (config, section, names, nodes))
        return -1;
    const char *error = NULL;
    s_api_field_t field;
    if (s_policy_add_api_key (policy, s_node_value (nodes[NAME]),
                              s_node_value (nodes[VALUE]),
                              s_node_value (nodes[SCOPES]),
                              s_node_value (nodes[ROLES]), &error, &field)) {
        zconfig_t *node = field == S_API_NAME    ? nodes[NAME]
                          : field == S_API_VALUE ? nodes[VALUE]
                                                 : NULL;
        return keel_config_fail_node (config, node ? node : section, "%s",
                                      error);
    }
    return 0;
}

//  A duration in whole seconds, at most `max_s`.
static int
s_load_seconds (keel_config_t *config, const char *path, int64_t default_s,
                int64_t max_s, int64_t *value_p)
{
    int64_t ms;
    if (keel_config_duration_ms (config, path, default_s * 1000, &ms))
        return -1;
    if (ms % 1000)
        return keel_config_fail (config, path, "must be whole seconds");
    if (ms / 1000 > max_s)
        return keel_config_fail (config, path, "longer than %" PRId64 " s",
                                 max_s);
    *value_p = ms / 1000;
    return 0;
}

//  "PATH/NAME" in `buffer` (a config path is short: PATH was located).
static const char *
s_key_path (char *buffer, size_t size, const char *path, const char *name)
{
    snprintf (buffer, size, "%s/%s", path, name);
    return buffer;
}

//  Read the settings of the section at `path` into `policy`.
static int
s_load_policy (keel_config_t *config, const char *path, zconfig_t *section,
               s_policy_t *policy)
{
    static const char *allowed[] = {
        "leeway", "cache_size", "cache_max_age", "realm",   "require_exp",
        "iss",    "aud",        "key",           "api_key", NULL};
    if (keel_config_check_keys (config, path, allowed))
        return -1;
    if (strlen (path) > 400)
        return keel_config_fail (config, path, "path too long");
    char key[512];
#define S_KEY(name) s_key_path (key, sizeof key, path, name)
    int64_t cache_size = 0;
    const char *realm = NULL, *iss = NULL, *aud = NULL;
    if (s_load_seconds (config, S_KEY ("leeway"), KEEL_AUTH_DEFAULT_LEEWAY_S,
                        S_MAX_LEEWAY_S, &policy->leeway_s) ||
        s_load_seconds (config, S_KEY ("cache_max_age"),
                        KEEL_AUTH_DEFAULT_CACHE_MAX_S, S_MAX_CACHE_S,
                        &policy->cache_max_s) ||
        keel_config_int (config, S_KEY ("cache_size"), 0, S_MAX_CACHE_SIZE,
                         KEEL_AUTH_DEFAULT_CACHE_SIZE, &cache_size) ||
        keel_config_bool (config, S_KEY ("require_exp"), true,
                          &policy->require_exp) ||
        keel_config_string (config, S_KEY ("realm"), KEEL_AUTH_DEFAULT_REALM,
                            &realm) ||
        keel_config_string (config, S_KEY ("iss"), NULL, &iss) ||
        keel_config_string (config, S_KEY ("aud"), NULL, &aud))
        return -1;
    if (!*realm || !s_realm_valid (realm))
        return keel_config_fail (config, S_KEY ("realm"),
                                 "must be non-empty, without quotes, "
                                 "backslashes or control characters");
    if (iss && !*iss)
        return keel_config_fail (config, S_KEY ("iss"),
                                 "empty (leave the key out instead)");
    if (aud && !*aud)
        return keel_config_fail (config, S_KEY ("aud"),
                                 "empty (leave the key out instead)");
#undef S_KEY
    policy->cache_size = (size_t)cache_size;
    if (s_policy_set_realm (policy, realm) ||
        s_replace_string (&policy->iss, iss) ||
        s_replace_string (&policy->aud, aud))
        return keel_config_fail (config, path, "out of memory");

    for (zconfig_t *child = zconfig_child (section); child;
         child = zconfig_next (child)) {
        const char *name = zconfig_name (child) ? zconfig_name (child) : "";
        if (streq (name, "key") && s_load_key (config, child, policy))
            return -1;
        if (streq (name, "api_key") && s_load_api_key (config, child, policy))
            return -1;
    }
    return 0;
}

int
keel_auth_load (keel_auth_t *self, keel_config_t *config, const char *path)
{
    assert (self);
    assert (config);
    assert (path);
    if (*path == '/')
        path++;
    zconfig_t *root = keel_config_root (config);
    zconfig_t *section = *path ? zconfig_locate (root, path) : root;
    if (!section)
        return 0;
    s_policy_t staged;
    int rc = s_policy_init (&staged);
    if (rc)
        keel_config_fail (config, path, "out of memory");
    else
        rc = s_load_policy (config, path, section, &staged);
    if (rc == 0) {
        s_policy_t old = self->policy;
        self->policy = staged;
        staged = old;
        keel_auth_cache_clear (self);
    }
    s_policy_destroy (&staged);
    return rc;
}
