/*  jwt.h - the API gateway's authentication core: JWT bearer tokens (JWS
    compact serialization, HS256 / RS256 / ES256) and API keys. Pure: no
    sockets, no threads, no clock; time comes in as `now_s` (seconds since
    the epoch). One keel_auth_t belongs to one thread (its cache and stats
    are not locked).

        Authorization: Bearer HHHH.PPPP.SSSS
              |
              v  scheme, size (8 KiB), exactly three segments
           cache (full token text -> identity, until exp, at most max age)
              | miss
              v  three strict base64url segments
           header JSON --alg--> must be HS256/RS256/ES256, never "none"
              |        --kid--> that key (its alg must equal the token's),
              |                 or without kid the first few keys of that alg
              v
           signature (HMAC / RSA PKCS#1 v1.5 / ECDSA P-256 raw r||s)
              v
           claims JSON: exp, nbf (+- leeway), iss, aud, sub, scope/scp, roles
              v
           keel_identity_t { sub, scopes, roles }  -> route check: 0 or 403

    A refusal is a keel_auth_reason_t: a precise reason with a stable name
    (for metrics and logs), a text (for the error_description) and a
    WWW-Authenticate value (RFC 6750). Every refusal of a credential is a
    401; 403 comes from keel_auth_allowed, once the route is known.
*/
#ifndef KEEL_JWT_H_INCLUDED
#define KEEL_JWT_H_INCLUDED

#include "keel_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Largest token accepted (the text after "Bearer "), in bytes.
#define KEEL_JWT_MAX_TOKEN 8192

//  Deepest nesting of arrays and objects accepted in a token's header or
//  claims ({"a":[1]} is 2 deep).
#define KEEL_JWT_MAX_DEPTH 16

//  Without a kid, a token is tried against at most this many keys of its
//  alg (in the order they were added).
#define KEEL_JWT_MAX_TRIES 4

//  Defaults of the settings below.
#define KEEL_AUTH_DEFAULT_LEEWAY_S    30
#define KEEL_AUTH_DEFAULT_CACHE_SIZE  10000
#define KEEL_AUTH_DEFAULT_CACHE_MAX_S 60
#define KEEL_AUTH_DEFAULT_REALM       "keel"

//  Signature algorithms. A key is pinned to one.
typedef enum {
    KEEL_JWT_HS256 = 0, //  HMAC SHA-256 with a shared secret
    KEEL_JWT_RS256 = 1, //  RSA PKCS#1 v1.5 SHA-256, public key >= 2048 bits
    KEEL_JWT_ES256 = 2, //  ECDSA P-256 SHA-256, signature raw r||s
} keel_jwt_alg_t;

//  Why a credential was refused. Every value but OK and INTERNAL means
//  HTTP 401.
typedef enum {
    KEEL_AUTH_OK = 0,
    KEEL_AUTH_NO_CREDENTIALS,   //  no header, or an empty one
    KEEL_AUTH_BAD_SCHEME,       //  not "Bearer ..." (e.g. Basic)
    KEEL_AUTH_MALFORMED_HEADER, //  "Bearer" alone, spaces, control characters
    KEEL_AUTH_TOO_LARGE,        //  token > KEEL_JWT_MAX_TOKEN bytes
    KEEL_AUTH_MALFORMED_TOKEN,  //  not HEADER.CLAIMS.SIGNATURE
    KEEL_AUTH_BAD_BASE64,       //  a segment is not strict base64url
    KEEL_AUTH_TOO_DEEP,         //  JSON nested > KEEL_JWT_MAX_DEPTH
    KEEL_AUTH_BAD_HEADER,       //  header not a JSON object, duplicate keys,
                                //  kid not a string
    KEEL_AUTH_ALG_MISSING,      //  header has no alg
    KEEL_AUTH_ALG_NONE,         //  alg "none": unsigned tokens are refused
    KEEL_AUTH_ALG_UNSUPPORTED,  //  alg not HS256, RS256 or ES256
    KEEL_AUTH_UNSUPPORTED_CRIT, //  header has "crit" (no extension known)
    KEEL_AUTH_UNKNOWN_KID,      //  no key with the token's kid
    KEEL_AUTH_ALG_MISMATCH,     //  the kid's key has another alg
    KEEL_AUTH_NO_KEY,           //  no kid, and no key of the token's alg
    KEEL_AUTH_BAD_SIGNATURE,    //  does not verify (or has the wrong length)
    KEEL_AUTH_BAD_CLAIMS,       //  claims not a JSON object, duplicate keys
    KEEL_AUTH_BAD_CLAIM,        //  exp/nbf not a number, sub/iss not a
                                //  string, scope/scp/roles of the wrong type
    KEEL_AUTH_MISSING_EXP,      //  no exp, and exp is required
    KEEL_AUTH_EXPIRED,          //  now >= exp + leeway
    KEEL_AUTH_NOT_YET_VALID,    //  now < nbf - leeway
    KEEL_AUTH_WRONG_ISSUER,     //  iss missing or not the required one
    KEEL_AUTH_WRONG_AUDIENCE,   //  aud missing or without the required one
    KEEL_AUTH_MISSING_SUB,      //  no sub
    KEEL_AUTH_BAD_API_KEY,      //  no configured API key has that value
    KEEL_AUTH_INTERNAL,         //  out of memory: HTTP 500, not 401
    KEEL_AUTH_REASON_COUNT
} keel_auth_reason_t;

//  Who made a request. Every string is owned by the identity (one block,
//  freed by keel_identity_clear); callers read them and copy what they
//  keep. Zero-initialise an identity before its first use.
typedef struct {
    const char *sub;           //  JWT sub, or the API key's name
    const char *const *scopes; //  NULL-terminated; never NULL once filled
    size_t scope_count;
    const char *const *roles; //  NULL-terminated; never NULL once filled
    size_t role_count;
    const char *key_id; //  kid of the key that verified the token
                        //  (NULL if it had none), or the API key name
    int64_t expires_s;  //  the token's exp, 0 if none or an API key
    bool api_key;       //  authenticated by an API key
    void *block_;       //  private: the allocation holding the above
    size_t block_size_; //  private: its size
} keel_identity_t;

//  A key to verify tokens with. Strings are copied by keel_auth_add_key.
typedef struct {
    const char *kid;    //  key id; NULL = none (tokens without a kid
                        //  may still select it by alg)
    keel_jwt_alg_t alg; //  pinned: the token's alg must equal it
    const void *secret; //  HS256: the shared secret, not empty
    size_t secret_size;
    const char *public_key_pem; //  RS256/ES256: a PEM public key (SPKI
                                //  "BEGIN PUBLIC KEY" or "BEGIN RSA PUBLIC
                                //  KEY"); RSA >= 2048 bits, EC on P-256
    const char *iss;            //  required issuer, or NULL (then the auth's)
    const char *aud;            //  required audience, or NULL (then the
                                //  auth's)
} keel_auth_key_t;

//  Counters since keel_auth_new.
typedef struct {
    uint64_t accepted;          //  bearer tokens accepted (cache or not)
    uint64_t api_keys_accepted; //  API keys accepted
    uint64_t refused;           //  credentials refused, all reasons
    uint64_t by_reason[KEEL_AUTH_REASON_COUNT]; //  refusals per reason
    uint64_t signature_checks; //  signature verifications attempted
    uint64_t verified;         //  of which verified
    uint64_t cache_hits;       //  accepted from the cache, no signature
    uint64_t cache_misses;     //  looked up and not found (or stale)
    uint64_t cache_evictions;  //  dropped because the cache was full
    uint64_t cache_entries;    //  entries now
} keel_auth_stats_t;

typedef struct _keel_auth_t keel_auth_t;

//  Create an authenticator with no keys (it refuses every token with
//  NO_KEY or UNKNOWN_KID, every API key with BAD_API_KEY) and the default
//  settings. Caller owns it and destroys it with keel_auth_destroy.
//  Returns NULL if out of memory.
keel_auth_t *keel_auth_new (void);

//  Destroy; nulls *self_p. Accepts NULL and a pointer to NULL.
void keel_auth_destroy (keel_auth_t **self_p);

//  Load the section at `path` ("gateway/auth") of `config`:
//
//      leeway = 30s            clock skew allowed on exp and nbf (whole s)
//      cache_size = 10000      verified tokens remembered (0 = no cache)
//      cache_max_age = 60s     longest a token is remembered (whole s)
//      realm = keel            WWW-Authenticate realm
//      require_exp = true      refuse tokens without exp
//      iss = ...               issuer required of keys that name none
//      aud = ...               audience required of keys that name none
//      key                     repeated: kid, alg (HS256 | RS256 | ES256),
//                              secret (HS256) or public_key_file (PEM;
//                              relative to the config file's folder), iss,
//                              aud
//      api_key                 repeated: name, value, scopes and roles
//                              (separated by spaces or commas)
//
//  Everything is checked before anything changes: on success the section
//  replaces self's settings, keys and API keys (the cache is emptied) and
//  0 is returned; on error self is unchanged, -1 is returned and
//  keel_config_error (config) says "FILE:LINE: key 'gateway/auth/key/alg':
//  ...". An absent section leaves self unchanged and returns 0. Reads the
//  PEM files it names (config time only).
int keel_auth_load (keel_auth_t *self, keel_config_t *config, const char *path);

//  Add a key (its strings and PEM are copied; the cache is emptied).
//  Returns 0, or -1 with *error_p (if not NULL) set to a static reason:
//  empty secret, secret that is a PEM key, bad PEM, wrong key type or
//  size, kid given twice, out of memory.
int keel_auth_add_key (keel_auth_t *self, const keel_auth_key_t *key,
                       const char **error_p);

//  Add an API key: `name` becomes the identity's sub, `value` is the
//  secret the client sends, `scopes` and `roles` are separated by spaces or
//  commas (NULL = none). All copied. Returns 0, or -1 with *error_p (if not
//  NULL) set to a static reason: empty name or value, name or value given
//  twice, out of memory.
int keel_auth_add_api_key (keel_auth_t *self, const char *name,
                           const char *value, const char *scopes,
                           const char *roles, const char **error_p);

//  Settings; each empties the cache. Leeway in seconds, >= 0.
void keel_auth_set_leeway (keel_auth_t *self, int64_t leeway_s);

//  Cache size in entries (0 disables the cache) and the longest an entry
//  lives, in seconds (>= 0; 0 disables the cache too).
void keel_auth_set_cache (keel_auth_t *self, size_t entries, int64_t max_age_s);

//  Refuse tokens without exp (true by default).
void keel_auth_set_require_exp (keel_auth_t *self, bool require_exp);

//  Issuer and audience required of tokens verified by keys that name none
//  (NULL = none required). Copied. Return 0, or -1 if out of memory.
int keel_auth_set_issuer (keel_auth_t *self, const char *iss);
int keel_auth_set_audience (keel_auth_t *self, const char *aud);

//  The realm named in WWW-Authenticate values ("keel"). Copied; must not
//  contain '"' or '\\' or control characters. Returns 0, or -1 (unchanged).
int keel_auth_set_realm (keel_auth_t *self, const char *realm);

//  Check an Authorization header value ("Bearer TOKEN"; the scheme in any
//  case; NULL or "" when the request had none) at `now_s`. Returns 0 and
//  fills *identity (cleared first), or returns 401 (500 if out of memory:
//  reason INTERNAL) with *identity cleared. *reason_p (if not NULL) gets
//  KEEL_AUTH_OK or why it was refused.
int keel_auth_check_bearer (keel_auth_t *self, const char *header_value,
                            int64_t now_s, keel_identity_t *identity,
                            keel_auth_reason_t *reason_p);

//  Same for a bare token (what follows "Bearer ").
int keel_auth_check_token (keel_auth_t *self, const char *token, int64_t now_s,
                           keel_identity_t *identity,
                           keel_auth_reason_t *reason_p);

//  Check an API key header value (the header's name is the caller's
//  business), in time independent of the configured values. Returns 0 and
//  fills *identity (sub = the key's name, api_key = true), or 401 with
//  NO_CREDENTIALS (NULL or "") or BAD_API_KEY (500 if out of memory).
int keel_auth_check_api_key (keel_auth_t *self, const char *value,
                             keel_identity_t *identity,
                             keel_auth_reason_t *reason_p);

//  May `identity` use a route that requires every scope of
//  `required_scopes` and any one role of `required_roles` (both
//  NULL-terminated; NULL or empty = no requirement)? Returns 0 (allowed) or
//  403. On 403, *missing_p (if not NULL) gets the first missing scope
//  (borrowed from required_scopes), or NULL when the roles failed.
int keel_auth_allowed (const keel_identity_t *identity,
                       const char *const *required_scopes,
                       const char *const *required_roles,
                       const char **missing_p);

//  The WWW-Authenticate value to send with a 401 for `reason`, as RFC 6750
//  puts it: 'Bearer realm="keel"' when no bearer credentials came (OK,
//  NO_CREDENTIALS, BAD_SCHEME, BAD_API_KEY), else with error="invalid_request"
//  (MALFORMED_HEADER) or error="invalid_token" and the reason's text as
//  error_description. Borrowed; valid until the realm changes or self is
//  destroyed.
const char *keel_auth_challenge (keel_auth_t *self, keel_auth_reason_t reason);

//  The WWW-Authenticate value to send with a 403 for a missing scope
//  (`scope` may be NULL: a role was missing). Caller frees. NULL if out of
//  memory.
char *keel_auth_forbidden_challenge (keel_auth_t *self, const char *scope);

//  Counters. Copied out.
void keel_auth_stats (keel_auth_t *self, keel_auth_stats_t *stats);

//  Forget every cached token.
void keel_auth_cache_clear (keel_auth_t *self);

//  Mint a token with a key of self (for `keel token`): the HS256 key with
//  kid `kid`, or the first HS256 key when `kid` is NULL; its iss and aud
//  (or the auth's) are put in the claims. See keel_jwt_mint_hs256. Returns
//  the token (caller frees) or NULL (no such HS256 key, bad arguments, out
//  of memory).
char *keel_auth_mint (keel_auth_t *self, const char *kid, const char *sub,
                      const char *const *scopes, int64_t lifetime_s,
                      int64_t now_s);

//  Free the identity's strings and zero it. Accepts an identity that is
//  zeroed already.
void keel_identity_clear (keel_identity_t *identity);

//  Copy `source` into `dest` (cleared first). Returns 0, or -1 if out of
//  memory (dest left cleared).
int keel_identity_copy (keel_identity_t *dest, const keel_identity_t *source);

//  True if the identity has that scope / role.
bool keel_identity_has_scope (const keel_identity_t *identity,
                              const char *scope);
bool keel_identity_has_role (const keel_identity_t *identity, const char *role);

//  Stable name ("EXPIRED"; "UNKNOWN" if out of range) and text ("token
//  expired") of a reason. Static. And the reverse of the name: -1 if
//  unknown.
const char *keel_auth_reason_name (int reason);
const char *keel_auth_reason_text (int reason);
int keel_auth_reason_parse (const char *name);

//  "HS256", "RS256", "ES256" ("UNKNOWN" if out of range). Static. And the
//  reverse, exact (JWS alg names are case-sensitive): -1 if unknown.
const char *keel_jwt_alg_name (int alg);
int keel_jwt_alg_parse (const char *name);

//  Mint an HS256 token: header {"alg":"HS256","typ":"JWT"[,"kid"]}, claims
//  {"sub", "iat": now_s, "exp": now_s + lifetime_s[, "iss"][, "aud"]
//  [, "scope": the scopes joined by spaces]}. `secret` is a non-empty
//  string; kid, iss, aud and scopes (NULL-terminated) may be NULL; sub is
//  required; lifetime_s > 0. Returns the compact token (caller frees) or
//  NULL on bad arguments or out of memory.
char *keel_jwt_mint_hs256 (const char *secret, const char *kid, const char *sub,
                           const char *const *scopes, const char *iss,
                           const char *aud, int64_t lifetime_s, int64_t now_s);

//  Strict base64url (RFC 4648 section 5) without padding: decode `size`
//  characters of `text` into `out` (room for `out_max` bytes). Refuses
//  characters outside [A-Za-z0-9_-] (so '=', '+', '/' and spaces), a length
//  of 4n+1 and non-zero unused bits in the last character (each byte string
//  has one encoding). Returns 0 and sets *out_size, or -1.
int keel_base64url_decode (const char *text, size_t size, unsigned char *out,
                           size_t out_max, size_t *out_size);

//  Bytes that decoding `size` characters can produce at most.
#define KEEL_BASE64URL_DECODED_MAX(size) (((size) / 4) * 3 + 2)

//  Encode `size` bytes as base64url without padding. Caller frees. NULL if
//  out of memory.
char *keel_base64url_encode (const void *data, size_t size);

#ifdef __cplusplus
}
#endif

#endif
