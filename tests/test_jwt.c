/*  test_jwt.c - the gateway's authentication core: base64url, the PyJWT
    test vectors of tests/data/jwt (every verdict and reason), leeway
    boundaries, the cache (hits, expiry, LRU bound), API keys, route checks,
    minting (and PyJWT verifying what keel mints), config loading good and
    bad, and garbage that must give 401 without a crash. Time is injected. */
#include "jwt.h"
#include "testutil.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DATA_DIR KEEL_SOURCE_DIR "/tests/data/jwt"

//  The vectors' clock and setup (tests/data/jwt/make_vectors.py).
#define NOW    1700000000
#define LEEWAY 30
#define SECRET "keel-test-secret-0123456789abcdef"

// ---------------------------------------------------------------------------
//  Helpers

//  Read a file of the vector folder. Caller frees.
static char *
s_read_data (const char *name)
{
    char *path = zsys_sprintf ("%s/%s", DATA_DIR, name);
    FILE *file = fopen (path, "rb");
    ck_assert_msg (file != NULL, "cannot open %s", path);
    char *text = (char *)calloc (1, 1 << 16);
    size_t size = fread (text, 1, (1 << 16) - 1, file);
    ck_assert_int_gt (size, 0);
    fclose (file);
    free (path);
    return text;
}

//  Add a key, expecting success.
static void
s_add_key (keel_auth_t *auth, const char *kid, keel_jwt_alg_t alg,
           const char *secret, const char *pem_file, const char *iss,
           const char *aud)
{
    char *pem = pem_file ? s_read_data (pem_file) : NULL;
    keel_auth_key_t key = {kid, alg, secret, secret ? strlen (secret) : 0,
                           pem, iss, aud};
    const char *error = "not set";
    int rc = keel_auth_add_key (auth, &key, &error);
    ck_assert_msg (rc == 0, "add_key %s: %s", kid ? kid : "-", error);
    ck_assert_ptr_null (error);
    free (pem);
}

//  The verifier the vectors expect, built through the API.
static keel_auth_t *
s_vector_auth (void)
{
    keel_auth_t *auth = keel_auth_new ();
    ck_assert_ptr_nonnull (auth);
    keel_auth_set_leeway (auth, LEEWAY);
    s_add_key (auth, "hs", KEEL_JWT_HS256, SECRET, NULL, "keel-test", NULL);
    s_add_key (auth, "rsa", KEEL_JWT_RS256, NULL, "rsa_public.pem", NULL,
               "api");
    s_add_key (auth, "ec", KEEL_JWT_ES256, NULL, "ec_public.pem", NULL, NULL);
    return auth;
}

//  Load a config file, expecting success.
static keel_config_t *
s_config_file (const char *path)
{
    char *error = NULL;
    keel_config_t *config = keel_config_load (path, &error);
    ck_assert_msg (config != NULL, "load %s: %s", path, error ? error : "?");
    return config;
}

//  Load config text as "test.cfg", expecting it to parse.
static keel_config_t *
s_config (const char *text)
{
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "test.cfg", &error);
    ck_assert_msg (config != NULL, "parse: %s", error ? error : "?");
    return config;
}

//  Check "Bearer TOKEN"; return the reason, asserting status and reason
//  agree and that a refusal leaves the identity empty.
static keel_auth_reason_t
s_check (keel_auth_t *auth, const char *token, int64_t now,
         keel_identity_t *identity)
{
    char *header = zsys_sprintf ("Bearer %s", token);
    keel_auth_reason_t reason = KEEL_AUTH_REASON_COUNT;
    int status = keel_auth_check_bearer (auth, header, now, identity, &reason);
    free (header);
    ck_assert_int_lt (reason, KEEL_AUTH_REASON_COUNT);
    ck_assert_int_eq (status, reason == KEEL_AUTH_OK ? 0 : 401);
    if (status) {
        ck_assert_ptr_null (identity->sub);
        ck_assert_ptr_null (identity->block_);
    }
    return reason;
}

//  Same, with a throwaway identity.
static keel_auth_reason_t
s_reason (keel_auth_t *auth, const char *token, int64_t now)
{
    keel_identity_t identity = {0};
    keel_auth_reason_t reason = s_check (auth, token, now, &identity);
    keel_identity_clear (&identity);
    return reason;
}

//  Check a raw header value; return the reason.
static keel_auth_reason_t
s_header_reason (keel_auth_t *auth, const char *header, int64_t now)
{
    keel_identity_t identity = {0};
    keel_auth_reason_t reason = KEEL_AUTH_REASON_COUNT;
    int status = keel_auth_check_bearer (auth, header, now, &identity, &reason);
    ck_assert_int_eq (status, reason == KEEL_AUTH_OK ? 0 : 401);
    keel_identity_clear (&identity);
    return reason;
}

#define ck_reason(got, want)                                                   \
    ck_assert_msg ((got) == (want), "reason %s, expected %s",                  \
                   keel_auth_reason_name (got), keel_auth_reason_name (want))

//  Compare a NULL-terminated list with a JSON array of strings.
static void
s_list_eq (const char *what, const char *const *list, size_t count,
           json_t *expected)
{
    ck_assert_ptr_nonnull (list);
    ck_assert_msg (count == json_array_size (expected), "%s: %zu, expected %zu",
                   what, count, json_array_size (expected));
    for (size_t i = 0; i < count; i++)
        ck_assert_str_eq (list[i],
                          json_string_value (json_array_get (expected, i)));
    ck_assert_ptr_null (list[count]);
}

//  Run every vector against `auth` at the vectors' clock: verdict, reason
//  and, when accepted, the identity. Returns the number accepted; if
//  `cacheable` is not NULL, *cacheable gets how many of those the cache may
//  keep (exp after NOW: inside the leeway only a full check accepts).
static int
s_run_vectors (keel_auth_t *auth, int *cacheable)
{
    json_error_t error;
    json_t *root = json_load_file (DATA_DIR "/vectors.json", 0, &error);
    ck_assert_msg (root != NULL, "vectors.json: %s", error.text);
    ck_assert_int_eq (json_integer_value (json_object_get (root, "now")), NOW);
    ck_assert_int_eq (json_integer_value (json_object_get (root, "leeway")),
                      LEEWAY);
    ck_assert_str_eq (json_string_value (json_object_get (root, "secret")),
                      SECRET);
    json_t *vectors = json_object_get (root, "vectors");
    ck_assert_int_ge (json_array_size (vectors), 60);
    int accepted = 0;
    if (cacheable)
        *cacheable = 0;
    size_t index;
    json_t *vector;
    json_array_foreach (vectors, index, vector)
    {
        const char *name = json_string_value (json_object_get (vector, "name"));
        const char *token =
            json_string_value (json_object_get (vector, "token"));
        int expect = keel_auth_reason_parse (
            json_string_value (json_object_get (vector, "expect")));
        ck_assert_msg (expect >= 0, "%s: unknown expected reason", name);
        keel_identity_t identity = {0};
        keel_auth_reason_t reason = s_check (auth, token, NOW, &identity);
        ck_assert_msg ((int)reason == expect, "%s: %s, expected %s", name,
                       keel_auth_reason_name (reason),
                       keel_auth_reason_name (expect));
        if (reason == KEEL_AUTH_OK) {
            accepted++;
            ck_assert_str_eq (identity.sub, json_string_value (json_object_get (
                                                vector, "sub")));
            s_list_eq (name, identity.scopes, identity.scope_count,
                       json_object_get (vector, "scopes"));
            s_list_eq (name, identity.roles, identity.role_count,
                       json_object_get (vector, "roles"));
            ck_assert (!identity.api_key);
            ck_assert_int_gt (identity.expires_s, NOW - LEEWAY);
            if (cacheable && identity.expires_s > NOW)
                (*cacheable)++;
        }
        keel_identity_clear (&identity);
    }
    json_decref (root);
    return accepted;
}

//  A token minted with SECRET, kid "hs", iss keel-test, for cache tests.
static char *
s_mint (const char *sub, int64_t lifetime, int64_t now)
{
    const char *scopes[] = {"orders:read", NULL};
    char *token = keel_jwt_mint_hs256 (SECRET, "hs", sub, scopes, "keel-test",
                                       NULL, lifetime, now);
    ck_assert_ptr_nonnull (token);
    return token;
}

//  A token signed with `secret` over raw header and claims JSON texts.
static char *
s_sign_hs (const char *header_json, const char *claims_json, const char *secret)
{
    char *header = keel_base64url_encode (header_json, strlen (header_json));
    char *claims = keel_base64url_encode (claims_json, strlen (claims_json));
    char *input = zsys_sprintf ("%s.%s", header, claims);
    unsigned char mac[32];
    size_t mac_size = 0;
    ck_assert_ptr_nonnull (
        EVP_Q_mac (NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen (secret),
                   (const unsigned char *)input, strlen (input), mac,
                   sizeof mac, &mac_size));
    char *signature = keel_base64url_encode (mac, mac_size);
    char *token = zsys_sprintf ("%s.%s", input, signature);
    free (signature);
    free (input);
    free (claims);
    free (header);
    return token;
}

static keel_auth_stats_t
s_stats (keel_auth_t *auth)
{
    keel_auth_stats_t stats;
    keel_auth_stats (auth, &stats);
    return stats;
}

// ---------------------------------------------------------------------------
//  base64url

START_TEST (test_base64url)
{
    //  RFC 4648 section 10, without padding.
    static const char *plain[] = {"",     "f",     "fo",    "foo",
                                  "foob", "fooba", "foobar"};
    static const char *coded[] = {"",       "Zg",      "Zm8",     "Zm9v",
                                  "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    unsigned char out[64];
    size_t size;
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        ck_assert_int_eq (keel_base64url_decode (coded[i], strlen (coded[i]),
                                                 out, sizeof out, &size),
                          0);
        ck_assert_uint_eq (size, strlen (plain[i]));
        ck_assert (memcmp (out, plain[i], size) == 0);
        char *text = keel_base64url_encode (plain[i], strlen (plain[i]));
        ck_assert_str_eq (text, coded[i]);
        free (text);
    }
    //  The two characters that differ from standard base64.
    const unsigned char high[] = {0xfb, 0xff, 0xbf};
    char *text = keel_base64url_encode (high, 3);
    ck_assert_str_eq (text, "-_-_");
    free (text);
    ck_assert_int_eq (keel_base64url_decode ("-_-_", 4, out, sizeof out, &size),
                      0);
    ck_assert_uint_eq (size, 3);
    ck_assert (memcmp (out, high, 3) == 0);

    //  Refused: standard base64's characters, padding, spaces, 4n+1
    //  lengths, non-zero unused bits, a NUL, a too small buffer.
    static const char *bad[] = {
        "+_-_", "-/-_", "Zg==",  "Zg=", "Zm 9v", "Zm9vY",
        "Zh",   "Zm9",  "Zm8\n", "Z",   "Zm9v*"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg (keel_base64url_decode (bad[i], strlen (bad[i]), out,
                                              sizeof out, &size) == -1,
                       "'%s' decoded", bad[i]);
    ck_assert_int_eq (
        keel_base64url_decode ("Zm\0v", 4, out, sizeof out, &size), -1);
    ck_assert_int_eq (keel_base64url_decode ("Zm9vYmFy", 8, out, 5, &size), -1);
    ck_assert_int_eq (keel_base64url_decode ("Zm9vYmFy", 8, out, 6, &size), 0);
    ck_assert_int_eq (keel_base64url_decode ("", 0, NULL, 0, &size), 0);
    ck_assert_uint_eq (size, 0);

    //  Round trip of every length up to 100, all byte values.
    unsigned char data[100];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof data; n++) {
        char *coded_n = keel_base64url_encode (data, n);
        ck_assert_uint_eq (strlen (coded_n), (n * 4 + 2) / 3);
        unsigned char back[100];
        ck_assert_uint_ge (KEEL_BASE64URL_DECODED_MAX (strlen (coded_n)), n);
        ck_assert_int_eq (
            keel_base64url_decode (coded_n, strlen (coded_n), back, n, &size),
            0);
        ck_assert_uint_eq (size, n);
        ck_assert (memcmp (back, data, n) == 0);
        free (coded_n);
    }
}
END_TEST

// ---------------------------------------------------------------------------
//  The vectors

START_TEST (test_vectors)
{
    keel_auth_t *auth = s_vector_auth ();
    int cacheable = 0;
    int accepted = s_run_vectors (auth, &cacheable);
    ck_assert_int_ge (accepted, 10);
    ck_assert_int_eq (cacheable, accepted - 2); //  exp_now_minus_leeway_plus_1,
                                                //  exp_fraction
    keel_auth_stats_t stats = s_stats (auth);
    ck_assert_uint_eq (stats.accepted, (uint64_t)accepted);
    ck_assert_uint_eq (stats.cache_hits, 0);
    ck_assert_uint_ge (stats.by_reason[KEEL_AUTH_BAD_SIGNATURE], 10);
    ck_assert_uint_ge (stats.by_reason[KEEL_AUTH_ALG_NONE], 3);
    uint64_t checks = stats.signature_checks;

    //  Again: every verdict the same, the accepted ones from the cache.
    ck_assert_int_eq (s_run_vectors (auth, NULL), accepted);
    stats = s_stats (auth);
    ck_assert_uint_eq (stats.cache_hits, (uint64_t)cacheable);
    ck_assert_uint_eq (stats.accepted, 2 * (uint64_t)accepted);
    ck_assert_uint_eq (stats.signature_checks - checks,
                       checks - (uint64_t)cacheable);

    //  And with no cache at all.
    keel_auth_set_cache (auth, 0, 60);
    ck_assert_int_eq (s_run_vectors (auth, NULL), accepted);
    ck_assert_uint_eq (s_stats (auth).cache_hits, (uint64_t)cacheable);
    ck_assert_uint_eq (s_stats (auth).cache_entries, 0);
    keel_auth_destroy (&auth);
    keel_auth_destroy (&auth);
}
END_TEST

//  The same verifier, from tests/data/jwt/auth.cfg (relative PEM paths).
START_TEST (test_vectors_from_config)
{
    keel_config_t *config = s_config_file (DATA_DIR "/auth.cfg");
    keel_auth_t *auth = keel_auth_new ();
    int rc = keel_auth_load (auth, config, "gateway/auth");
    ck_assert_msg (rc == 0, "%s", keel_config_error (config));
    ck_assert_int_ge (s_run_vectors (auth, NULL), 10);

    keel_identity_t identity = {0};
    keel_auth_reason_t reason;
    ck_assert_int_eq (
        keel_auth_check_api_key (auth, "k-123", &identity, &reason), 0);
    ck_assert_str_eq (identity.sub, "ci");
    ck_assert (keel_identity_has_scope (&identity, "orders:write"));
    ck_assert (keel_identity_has_role (&identity, "robot"));
    keel_identity_clear (&identity);
    keel_auth_destroy (&auth);
    keel_config_destroy (&config);
}
END_TEST

//  "BEGIN RSA PUBLIC KEY" (PKCS#1) works as well as SPKI.
START_TEST (test_pkcs1_public_key)
{
    keel_auth_t *auth = keel_auth_new ();
    s_add_key (auth, "rsa", KEEL_JWT_RS256, NULL, "rsa_public_pkcs1.pem", NULL,
               NULL);
    json_t *root = json_load_file (DATA_DIR "/vectors.json", 0, NULL);
    json_t *vector;
    size_t index;
    int checked = 0;
    json_array_foreach (json_object_get (root, "vectors"), index, vector)
    {
        const char *name = json_string_value (json_object_get (vector, "name"));
        if (streq (name, "rs256_ok") || streq (name, "rs256_no_kid")) {
            ck_reason (
                s_reason (auth,
                          json_string_value (json_object_get (vector, "token")),
                          NOW),
                KEEL_AUTH_OK);
            checked++;
        }
    }
    ck_assert_int_eq (checked, 2);
    json_decref (root);
    keel_auth_destroy (&auth);
}
END_TEST

// ---------------------------------------------------------------------------
//  Time

START_TEST (test_leeway_boundaries)
{
    keel_auth_t *auth = keel_auth_new ();
    s_add_key (auth, "hs", KEEL_JWT_HS256, SECRET, NULL, NULL, NULL);
    keel_auth_set_cache (auth, 0, 0); //  every check in full
    const int64_t t0 = 1000000;
    char *token = s_mint ("alice", 100, t0); //  exp = t0 + 100
    const int64_t exp = t0 + 100;

    keel_auth_set_leeway (auth, 0);
    ck_reason (s_reason (auth, token, t0), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, token, exp - 1), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, token, exp), KEEL_AUTH_EXPIRED);
    ck_reason (s_reason (auth, token, exp + 1), KEEL_AUTH_EXPIRED);

    keel_auth_set_leeway (auth, 30);
    ck_reason (s_reason (auth, token, exp), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, token, exp + 29), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, token, exp + 30), KEEL_AUTH_EXPIRED);
    free (token);

    //  nbf from the vectors: nbf = NOW + 30.
    keel_auth_t *vectors = s_vector_auth ();
    keel_auth_set_cache (vectors, 0, 0);
    json_t *root = json_load_file (DATA_DIR "/vectors.json", 0, NULL);
    const char *nbf_token = NULL;
    json_t *vector;
    size_t index;
    json_array_foreach (
        json_object_get (root, "vectors"), index,
        vector) if (streq (json_string_value (json_object_get (vector, "name")),
                           "nbf_now_plus_leeway")) nbf_token =
        json_string_value (json_object_get (vector, "token"));
    ck_assert_ptr_nonnull (nbf_token);
    ck_reason (s_reason (vectors, nbf_token, NOW - 1), KEEL_AUTH_NOT_YET_VALID);
    ck_reason (s_reason (vectors, nbf_token, NOW), KEEL_AUTH_OK);
    keel_auth_set_leeway (vectors, 0);
    ck_reason (s_reason (vectors, nbf_token, NOW + 29),
               KEEL_AUTH_NOT_YET_VALID);
    ck_reason (s_reason (vectors, nbf_token, NOW + 30), KEEL_AUTH_OK);
    json_decref (root);
    keel_auth_destroy (&vectors);

    //  Tokens without exp: refused by default, accepted when allowed.
    token = s_sign_hs ("{\"alg\":\"HS256\",\"kid\":\"hs\"}", "{\"sub\":\"x\"}",
                       SECRET);
    ck_reason (s_reason (auth, token, t0), KEEL_AUTH_MISSING_EXP);
    keel_auth_set_require_exp (auth, false);
    keel_identity_t identity = {0};
    ck_reason (s_check (auth, token, t0, &identity), KEEL_AUTH_OK);
    ck_assert_int_eq (identity.expires_s, 0);
    keel_identity_clear (&identity);
    //  ...and cached for the max age only.
    keel_auth_set_cache (auth, 10, 60);
    ck_reason (s_reason (auth, token, t0), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, token, t0 + 59), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).cache_hits, 1);
    ck_reason (s_reason (auth, token, t0 + 60), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).cache_hits, 1);
    free (token);
    keel_auth_destroy (&auth);
}
END_TEST

// ---------------------------------------------------------------------------
//  The cache

START_TEST (test_cache_hits)
{
    keel_auth_t *auth = keel_auth_new ();
    s_add_key (auth, "hs", KEEL_JWT_HS256, SECRET, NULL, "keel-test", NULL);
    char *token = s_mint ("alice", 3600, NOW);
    keel_identity_t identity = {0};
    ck_reason (s_check (auth, token, NOW, &identity), KEEL_AUTH_OK);
    keel_auth_stats_t stats = s_stats (auth);
    ck_assert_uint_eq (stats.signature_checks, 1);
    ck_assert_uint_eq (stats.verified, 1);
    ck_assert_uint_eq (stats.cache_misses, 1);
    ck_assert_uint_eq (stats.cache_entries, 1);

    //  Same token, other spelling of the header: from the cache, same
    //  identity (the earlier one is cleared by the call).
    char *header = zsys_sprintf ("  bEaReR \t%s  ", token);
    keel_auth_reason_t reason;
    ck_assert_int_eq (
        keel_auth_check_bearer (auth, header, NOW + 10, &identity, &reason), 0);
    free (header);
    ck_reason (reason, KEEL_AUTH_OK);
    ck_assert_str_eq (identity.sub, "alice");
    ck_assert_str_eq (identity.key_id, "hs");
    ck_assert_int_eq (identity.expires_s, NOW + 3600);
    ck_assert_uint_eq (identity.scope_count, 1);
    ck_assert_str_eq (identity.scopes[0], "orders:read");
    ck_assert_ptr_null (identity.scopes[1]);
    ck_assert_uint_eq (identity.role_count, 0);
    ck_assert_ptr_null (identity.roles[0]);
    stats = s_stats (auth);
    ck_assert_uint_eq (stats.signature_checks, 1);
    ck_assert_uint_eq (stats.cache_hits, 1);
    ck_assert_uint_eq (stats.accepted, 2);

    //  keel_auth_check_token takes the bare token, same cache.
    ck_assert_int_eq (
        keel_auth_check_token (auth, token, NOW + 20, &identity, &reason), 0);
    ck_assert_uint_eq (s_stats (auth).cache_hits, 2);

    //  Refusals are never cached: each costs a verification.
    char *other = keel_jwt_mint_hs256 ("wrong", "hs", "x", NULL, "keel-test",
                                       NULL, 3600, NOW);
    ck_reason (s_reason (auth, other, NOW), KEEL_AUTH_BAD_SIGNATURE);
    ck_reason (s_reason (auth, other, NOW), KEEL_AUTH_BAD_SIGNATURE);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 3);
    ck_assert_uint_eq (s_stats (auth).cache_entries, 1);
    free (other);

    //  Changing a setting empties the cache.
    keel_auth_set_leeway (auth, 0);
    ck_assert_uint_eq (s_stats (auth).cache_entries, 0);
    ck_reason (s_reason (auth, token, NOW), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 4);
    keel_auth_cache_clear (auth);
    ck_assert_uint_eq (s_stats (auth).cache_entries, 0);

    keel_identity_clear (&identity);
    free (token);
    keel_auth_destroy (&auth);
}
END_TEST

START_TEST (test_cache_expiry)
{
    keel_auth_t *auth = keel_auth_new ();
    s_add_key (auth, "hs", KEEL_JWT_HS256, SECRET, NULL, NULL, NULL);
    keel_auth_set_leeway (auth, 30);
    keel_auth_set_cache (auth, 100, 60);
    const int64_t t0 = 5000;
    char *token = s_mint ("alice", 100, t0); //  exp = t0 + 100

    ck_reason (s_reason (auth, token, t0), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 1);
    //  Max age: a hit until t0 + 60, a new verification at t0 + 60.
    ck_reason (s_reason (auth, token, t0 + 59), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 1);
    ck_reason (s_reason (auth, token, t0 + 60), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 2);
    //  Cached again, now until exp (t0 + 100 < t0 + 120).
    ck_reason (s_reason (auth, token, t0 + 99), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 2);
    ck_assert_uint_eq (s_stats (auth).cache_hits, 2);
    //  At exp the cache lets go; the leeway still accepts, in full, and
    //  nothing is cached past exp.
    ck_reason (s_reason (auth, token, t0 + 100), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 3);
    ck_assert_uint_eq (s_stats (auth).cache_entries, 0);
    ck_reason (s_reason (auth, token, t0 + 129), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 4);
    ck_reason (s_reason (auth, token, t0 + 130), KEEL_AUTH_EXPIRED);
    ck_assert_uint_eq (s_stats (auth).cache_hits, 2);
    free (token);
    keel_auth_destroy (&auth);
}
END_TEST

START_TEST (test_cache_lru)
{
    keel_auth_t *auth = keel_auth_new ();
    s_add_key (auth, "hs", KEEL_JWT_HS256, SECRET, NULL, NULL, NULL);
    keel_auth_set_cache (auth, 3, 600);
    char *t[5];
    for (int i = 0; i < 5; i++) {
        char sub[8];
        snprintf (sub, sizeof sub, "u%d", i);
        t[i] = s_mint (sub, 3600, NOW);
    }
    for (int i = 0; i < 3; i++)
        ck_reason (s_reason (auth, t[i], NOW), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).cache_entries, 3);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 3);

    //  Touch t0: LRU order (old to new) t1, t2, t0. t3 evicts t1.
    ck_reason (s_reason (auth, t[0], NOW), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, t[3], NOW), KEEL_AUTH_OK);
    keel_auth_stats_t stats = s_stats (auth);
    ck_assert_uint_eq (stats.cache_evictions, 1);
    ck_assert_uint_eq (stats.cache_entries, 3);
    ck_assert_uint_eq (stats.signature_checks, 4);
    //  t0, t2, t3 are hits; t1 is verified again (and evicts t0, the LRU).
    ck_reason (s_reason (auth, t[0], NOW), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, t[2], NOW), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, t[3], NOW), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 4);
    ck_reason (s_reason (auth, t[1], NOW), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 5);
    ck_assert_uint_eq (s_stats (auth).cache_evictions, 2);
    ck_reason (s_reason (auth, t[0], NOW), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, 6);

    //  Many more tokens than entries: bounded, every one still accepted.
    keel_auth_set_cache (auth, 50, 600);
    for (int i = 0; i < 500; i++) {
        char sub[16];
        snprintf (sub, sizeof sub, "many%d", i);
        char *token = s_mint (sub, 3600, NOW);
        keel_identity_t identity = {0};
        ck_reason (s_check (auth, token, NOW, &identity), KEEL_AUTH_OK);
        ck_assert_str_eq (identity.sub, sub);
        keel_identity_clear (&identity);
        free (token);
        ck_assert_uint_le (s_stats (auth).cache_entries, 50);
    }
    ck_assert_uint_eq (s_stats (auth).cache_entries, 50);
    for (int i = 0; i < 5; i++)
        free (t[i]);
    keel_auth_destroy (&auth);
}
END_TEST

// ---------------------------------------------------------------------------
//  API keys and route checks

START_TEST (test_api_keys)
{
    keel_auth_t *auth = keel_auth_new ();
    const char *error = NULL;
    ck_assert_int_eq (keel_auth_add_api_key (auth, "ci", "k-123",
                                             "orders:read, orders:write", NULL,
                                             &error),
                      0);
    ck_assert_int_eq (
        keel_auth_add_api_key (auth, "ops", "k-456", NULL, "admin ops", &error),
        0);
    ck_assert_int_eq (
        keel_auth_add_api_key (auth, "ci", "other", NULL, NULL, &error), -1);
    ck_assert_str_eq (error, "API key name given twice");
    ck_assert_int_eq (
        keel_auth_add_api_key (auth, "x", "k-123", NULL, NULL, &error), -1);
    ck_assert_str_eq (error, "API key value given twice");
    ck_assert_int_eq (keel_auth_add_api_key (auth, "", "v", NULL, NULL, &error),
                      -1);
    ck_assert_int_eq (keel_auth_add_api_key (auth, "y", "", NULL, NULL, NULL),
                      -1);

    keel_identity_t identity = {0};
    keel_auth_reason_t reason;
    ck_assert_int_eq (
        keel_auth_check_api_key (auth, "k-123", &identity, &reason), 0);
    ck_reason (reason, KEEL_AUTH_OK);
    ck_assert_str_eq (identity.sub, "ci");
    ck_assert_str_eq (identity.key_id, "ci");
    ck_assert (identity.api_key);
    ck_assert_uint_eq (identity.scope_count, 2);
    ck_assert_str_eq (identity.scopes[0], "orders:read");
    ck_assert_str_eq (identity.scopes[1], "orders:write");
    ck_assert_uint_eq (identity.role_count, 0);
    ck_assert_int_eq (
        keel_auth_check_api_key (auth, "k-456", &identity, &reason), 0);
    ck_assert_str_eq (identity.sub, "ops");
    ck_assert_uint_eq (identity.role_count, 2);
    ck_assert (keel_identity_has_role (&identity, "ops"));

    static const char *bad[] = {"k-12", "k-1234", "K-123", "k-123 ",
                                "Bearer k-123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq (
            keel_auth_check_api_key (auth, bad[i], &identity, &reason), 401);
        ck_reason (reason, KEEL_AUTH_BAD_API_KEY);
        ck_assert_ptr_null (identity.sub);
    }
    ck_assert_int_eq (keel_auth_check_api_key (auth, "", &identity, &reason),
                      401);
    ck_reason (reason, KEEL_AUTH_NO_CREDENTIALS);
    ck_assert_int_eq (keel_auth_check_api_key (auth, NULL, &identity, NULL),
                      401);
    keel_auth_stats_t stats = s_stats (auth);
    ck_assert_uint_eq (stats.api_keys_accepted, 2);
    ck_assert_uint_eq (stats.by_reason[KEEL_AUTH_BAD_API_KEY], 5);
    ck_assert_uint_eq (stats.by_reason[KEEL_AUTH_NO_CREDENTIALS], 2);
    ck_assert_uint_eq (stats.refused, 7);
    ck_assert_str_eq (keel_auth_challenge (auth, KEEL_AUTH_BAD_API_KEY),
                      "Bearer realm=\"keel\"");
    keel_auth_destroy (&auth);
}
END_TEST

START_TEST (test_allowed)
{
    keel_auth_t *auth = keel_auth_new ();
    ck_assert_int_eq (keel_auth_add_api_key (auth, "svc", "v", "a:read a:write",
                                             "ops billing", NULL),
                      0);
    keel_identity_t identity = {0};
    ck_assert_int_eq (keel_auth_check_api_key (auth, "v", &identity, NULL), 0);

    const char *missing = "unset";
    const char *none[] = {NULL};
    const char *read[] = {"a:read", NULL};
    const char *both[] = {"a:read", "a:write", NULL};
    const char *admin[] = {"a:read", "a:admin", NULL};
    const char *ops[] = {"root", "ops", NULL};
    const char *root[] = {"root", NULL};
    ck_assert_int_eq (keel_auth_allowed (&identity, NULL, NULL, &missing), 0);
    ck_assert_ptr_null (missing);
    ck_assert_int_eq (keel_auth_allowed (&identity, none, none, NULL), 0);
    ck_assert_int_eq (keel_auth_allowed (&identity, read, NULL, NULL), 0);
    ck_assert_int_eq (keel_auth_allowed (&identity, both, ops, NULL), 0);
    ck_assert_int_eq (keel_auth_allowed (&identity, admin, NULL, &missing),
                      403);
    ck_assert_str_eq (missing, "a:admin");
    ck_assert_int_eq (keel_auth_allowed (&identity, NULL, ops, &missing), 0);
    ck_assert_int_eq (keel_auth_allowed (&identity, both, root, &missing), 403);
    ck_assert_ptr_null (missing);

    char *challenge = keel_auth_forbidden_challenge (auth, "a:admin");
    ck_assert_str_eq (challenge, "Bearer realm=\"keel\", "
                                 "error=\"insufficient_scope\", "
                                 "scope=\"a:admin\"");
    free (challenge);
    challenge = keel_auth_forbidden_challenge (auth, "bad\"scope");
    ck_assert_str_eq (challenge,
                      "Bearer realm=\"keel\", error=\"insufficient_scope\"");
    free (challenge);

    //  A cleared identity has nothing.
    keel_identity_t empty = {0};
    ck_assert_int_eq (keel_auth_allowed (&empty, read, NULL, NULL), 403);
    ck_assert_int_eq (keel_auth_allowed (&empty, NULL, ops, NULL), 403);
    ck_assert_int_eq (keel_auth_allowed (&empty, NULL, NULL, NULL), 0);

    //  Copies are independent of the original.
    keel_identity_t copy = {0};
    ck_assert_int_eq (keel_identity_copy (&copy, &identity), 0);
    keel_identity_clear (&identity);
    ck_assert_str_eq (copy.sub, "svc");
    ck_assert (keel_identity_has_scope (&copy, "a:write"));
    ck_assert (keel_identity_has_role (&copy, "billing"));
    ck_assert (!keel_identity_has_role (&copy, "a:write"));
    ck_assert_int_eq (keel_identity_copy (&identity, &empty), 0);
    ck_assert_ptr_null (identity.sub);
    keel_identity_clear (&copy);
    keel_identity_clear (&copy);
    keel_auth_destroy (&auth);
}
END_TEST

// ---------------------------------------------------------------------------
//  Minting

//  True if /usr/bin/python3 can import jwt.
static bool
s_have_pyjwt (void)
{
    if (access ("/usr/bin/python3", X_OK) != 0)
        return false;
    char *argv[] = {"/usr/bin/python3", "-c", "import jwt", NULL};
    return testutil_run_cmd (argv, NULL) == 0;
}

START_TEST (test_mint)
{
    keel_auth_t *auth = keel_auth_new ();
    s_add_key (auth, "dev", KEEL_JWT_HS256, SECRET, NULL, "keel-dev", "api");
    const char *scopes[] = {"orders:read", "orders:write", NULL};
    char *token = keel_jwt_mint_hs256 (SECRET, "dev", "alice", scopes,
                                       "keel-dev", "api", 300, NOW);
    ck_assert_ptr_nonnull (token);
    keel_identity_t identity = {0};
    ck_reason (s_check (auth, token, NOW, &identity), KEEL_AUTH_OK);
    ck_assert_str_eq (identity.sub, "alice");
    ck_assert_str_eq (identity.key_id, "dev");
    ck_assert_int_eq (identity.expires_s, NOW + 300);
    ck_assert_uint_eq (identity.scope_count, 2);
    ck_assert_str_eq (identity.scopes[1], "orders:write");
    ck_assert_int_eq (keel_auth_allowed (&identity, scopes, NULL, NULL), 0);
    ck_reason (s_check (auth, token, NOW + 300 + 30, &identity),
               KEEL_AUTH_EXPIRED);
    free (token);

    //  The claims are what the header says.
    token =
        keel_jwt_mint_hs256 (SECRET, NULL, "bob", NULL, NULL, NULL, 60, NOW);
    char *dot = strchr (token, '.');
    unsigned char json[256];
    size_t size;
    ck_assert_int_eq (
        keel_base64url_decode (token, (size_t)(dot - token), json, 255, &size),
        0);
    json[size] = 0;
    ck_assert_str_eq ((char *)json, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    char *dot2 = strchr (dot + 1, '.');
    ck_assert_int_eq (keel_base64url_decode (dot + 1, (size_t)(dot2 - dot - 1),
                                             json, 255, &size),
                      0);
    json[size] = 0;
    ck_assert_str_eq (
        (char *)json,
        "{\"sub\":\"bob\",\"iat\":1700000000,\"exp\":1700000060}");
    //  No iss: the dev key requires one.
    ck_reason (s_reason (auth, token, NOW), KEEL_AUTH_WRONG_ISSUER);
    free (token);

    //  keel_auth_mint uses the key's secret, kid, iss and aud.
    token = keel_auth_mint (auth, NULL, "carol", scopes, 60, NOW);
    ck_assert_ptr_nonnull (token);
    ck_reason (s_check (auth, token, NOW, &identity), KEEL_AUTH_OK);
    ck_assert_str_eq (identity.sub, "carol");
    ck_assert_str_eq (identity.key_id, "dev");
    free (token);
    token = keel_auth_mint (auth, "dev", "carol", NULL, 60, NOW);
    ck_assert_ptr_nonnull (token);
    free (token);
    ck_assert_ptr_null (keel_auth_mint (auth, "nope", "carol", NULL, 60, NOW));

    //  Bad arguments.
    const char *spaced[] = {"a b", NULL};
    const char *empty[] = {"", NULL};
    ck_assert_ptr_null (
        keel_jwt_mint_hs256 ("", NULL, "x", NULL, NULL, NULL, 60, NOW));
    ck_assert_ptr_null (
        keel_jwt_mint_hs256 (NULL, NULL, "x", NULL, NULL, NULL, 60, NOW));
    ck_assert_ptr_null (
        keel_jwt_mint_hs256 (SECRET, NULL, NULL, NULL, NULL, NULL, 60, NOW));
    ck_assert_ptr_null (
        keel_jwt_mint_hs256 (SECRET, NULL, "", NULL, NULL, NULL, 60, NOW));
    ck_assert_ptr_null (
        keel_jwt_mint_hs256 (SECRET, NULL, "x", NULL, NULL, NULL, 0, NOW));
    ck_assert_ptr_null (
        keel_jwt_mint_hs256 (SECRET, "", "x", NULL, NULL, NULL, 60, NOW));
    ck_assert_ptr_null (
        keel_jwt_mint_hs256 (SECRET, NULL, "x", spaced, NULL, NULL, 60, NOW));
    ck_assert_ptr_null (
        keel_jwt_mint_hs256 (SECRET, NULL, "x", empty, NULL, NULL, 60, NOW));
    ck_assert_ptr_null (keel_jwt_mint_hs256 (SECRET, NULL, "x", NULL, NULL,
                                             NULL, INT64_MAX, NOW));
    keel_identity_clear (&identity);

    //  An auth without HS256 keys cannot mint.
    keel_auth_t *rsa = keel_auth_new ();
    s_add_key (rsa, "rsa", KEEL_JWT_RS256, NULL, "rsa_public.pem", NULL, NULL);
    ck_assert_ptr_null (keel_auth_mint (rsa, NULL, "x", NULL, 60, NOW));
    ck_assert_ptr_null (keel_auth_mint (rsa, "rsa", "x", NULL, 60, NOW));
    keel_auth_destroy (&rsa);
    keel_auth_destroy (&auth);
}
END_TEST

//  PyJWT, an independent implementation, accepts what keel mints.
START_TEST (test_mint_pyjwt)
{
    if (!s_have_pyjwt ()) {
        fprintf (stderr, "test_mint_pyjwt: no PyJWT in /usr/bin/python3, "
                         "skipped\n");
        return;
    }
    const char *scopes[] = {"orders:read", "orders:write", NULL};
    //  PyJWT reads the real clock, so mint at the real time.
    char *token = keel_jwt_mint_hs256 (SECRET, "dev", "alice", scopes,
                                       "keel-dev", "api", 600, time (NULL));
    char *argv[] = {"/usr/bin/python3",
                    "-c",
                    "import sys, jwt\n"
                    "c = jwt.decode(sys.argv[1], sys.argv[2], "
                    "algorithms=['HS256'], audience='api', issuer='keel-dev')\n"
                    "h = jwt.get_unverified_header(sys.argv[1])\n"
                    "print('sub=%s scope=%s kid=%s' % (c['sub'], c['scope'], "
                    "h['kid']))\n",
                    token,
                    SECRET,
                    NULL};
    char *output = NULL;
    int status = testutil_run_cmd (argv, &output);
    ck_assert_msg (status == 0, "PyJWT refused: %s", output);
    ck_assert_ptr_nonnull (
        strstr (output, "sub=alice scope=orders:read orders:write kid=dev"));
    free (output);

    //  And refuses it with another secret (the check above means something).
    argv[4] = "not-the-secret";
    ck_assert_int_ne (testutil_run_cmd (argv, NULL), 0);
    free (token);
}
END_TEST

// ---------------------------------------------------------------------------
//  Keys

//  A public key PEM of a fresh key: RSA of `bits`, or EC on `curve`.
static char *
s_fresh_pem (int bits, const char *curve)
{
    EVP_PKEY *pkey =
        curve ? EVP_EC_gen (curve) : EVP_RSA_gen ((unsigned int)bits);
    ck_assert_ptr_nonnull (pkey);
    BIO *bio = BIO_new (BIO_s_mem ());
    ck_assert_int_eq (PEM_write_bio_PUBKEY (bio, pkey), 1);
    char *data = NULL;
    long size = BIO_get_mem_data (bio, &data);
    char *pem = strndup (data, (size_t)size);
    BIO_free (bio);
    EVP_PKEY_free (pkey);
    return pem;
}

START_TEST (test_key_errors)
{
    keel_auth_t *auth = keel_auth_new ();
    char *rsa_pem = s_read_data ("rsa_public.pem");
    char *ec_pem = s_read_data ("ec_public.pem");
    char *private_pem = s_read_data ("rsa_private.pem");
    char *rsa_1024 = s_fresh_pem (1024, NULL);
    char *p384 = s_fresh_pem (0, "secp384r1");
    struct {
        keel_auth_key_t key;
        const char *error;
    } cases[] = {
        {{"a", KEEL_JWT_HS256, "", 0, NULL, NULL, NULL},
         "HS256 needs a non-empty secret"},
        {{"a", KEEL_JWT_HS256, NULL, 5, NULL, NULL, NULL},
         "HS256 needs a non-empty secret"},
        {{"a", KEEL_JWT_HS256, rsa_pem, strlen (rsa_pem), NULL, NULL, NULL},
         "HS256 secret is a PEM key (HS256 needs a shared secret)"},
        {{"", KEEL_JWT_HS256, "s", 1, NULL, NULL, NULL}, "empty kid"},
        {{"a", (keel_jwt_alg_t)7, "s", 1, NULL, NULL, NULL}, "unknown alg"},
        {{"a", KEEL_JWT_RS256, NULL, 0, NULL, NULL, NULL}, "no public key"},
        {{"a", KEEL_JWT_RS256, NULL, 0, "garbage", NULL, NULL},
         "not a PEM public key"},
        {{"a", KEEL_JWT_RS256, NULL, 0, private_pem, NULL, NULL},
         "is a private key (the gateway needs only the public key)"},
        {{"a", KEEL_JWT_RS256, NULL, 0, ec_pem, NULL, NULL},
         "RS256 needs an RSA public key"},
        {{"a", KEEL_JWT_RS256, NULL, 0, rsa_1024, NULL, NULL},
         "RSA key shorter than 2048 bits"},
        {{"a", KEEL_JWT_ES256, NULL, 0, rsa_pem, NULL, NULL},
         "ES256 needs an EC public key on P-256"},
        {{"a", KEEL_JWT_ES256, NULL, 0, p384, NULL, NULL},
         "ES256 needs an EC public key on P-256"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *error = NULL;
        ck_assert_int_eq (keel_auth_add_key (auth, &cases[i].key, &error), -1);
        ck_assert_msg (error && streq (error, cases[i].error),
                       "case %zu: '%s', expected '%s'", i, error,
                       cases[i].error);
    }
    //  The same kid twice.
    keel_auth_key_t key = {"k", KEEL_JWT_ES256, NULL, 0, ec_pem, NULL, NULL};
    ck_assert_int_eq (keel_auth_add_key (auth, &key, NULL), 0);
    const char *error = NULL;
    ck_assert_int_eq (keel_auth_add_key (auth, &key, &error), -1);
    ck_assert_str_eq (error, "kid given twice");
    //  Without kid, any number of keys.
    key.kid = NULL;
    ck_assert_int_eq (keel_auth_add_key (auth, &key, NULL), 0);
    ck_assert_int_eq (keel_auth_add_key (auth, &key, NULL), 0);

    free (rsa_pem);
    free (ec_pem);
    free (private_pem);
    free (rsa_1024);
    free (p384);
    keel_auth_destroy (&auth);
}
END_TEST

//  Without a kid a token is tried against at most KEEL_JWT_MAX_TRIES keys
//  of its alg; its own key further down is not reached.
START_TEST (test_key_selection)
{
    keel_auth_t *auth = keel_auth_new ();
    for (int i = 0; i < KEEL_JWT_MAX_TRIES; i++) {
        char secret[32];
        snprintf (secret, sizeof secret, "other-secret-%d", i);
        s_add_key (auth, NULL, KEEL_JWT_HS256, secret, NULL, NULL, NULL);
    }
    s_add_key (auth, "last", KEEL_JWT_HS256, SECRET, NULL, NULL, NULL);
    char *no_kid =
        keel_jwt_mint_hs256 (SECRET, NULL, "a", NULL, NULL, NULL, 60, NOW);
    char *with_kid =
        keel_jwt_mint_hs256 (SECRET, "last", "a", NULL, NULL, NULL, 60, NOW);
    ck_reason (s_reason (auth, no_kid, NOW), KEEL_AUTH_BAD_SIGNATURE);
    ck_assert_uint_eq (s_stats (auth).signature_checks, KEEL_JWT_MAX_TRIES);
    ck_reason (s_reason (auth, with_kid, NOW), KEEL_AUTH_OK);
    ck_assert_uint_eq (s_stats (auth).signature_checks, KEEL_JWT_MAX_TRIES + 1);

    //  The second of two HS256 keys is found without a kid.
    keel_auth_t *two = keel_auth_new ();
    s_add_key (two, "a", KEEL_JWT_HS256, "first-secret", NULL, NULL, NULL);
    s_add_key (two, "b", KEEL_JWT_HS256, SECRET, NULL, NULL, NULL);
    keel_identity_t identity = {0};
    ck_reason (s_check (two, no_kid, NOW, &identity), KEEL_AUTH_OK);
    ck_assert_str_eq (identity.key_id, "b");
    keel_identity_clear (&identity);
    ck_assert_uint_eq (s_stats (two).signature_checks, 2);

    //  No key of the alg at all.
    keel_auth_t *none = keel_auth_new ();
    ck_reason (s_reason (none, no_kid, NOW), KEEL_AUTH_NO_KEY);
    ck_reason (s_reason (none, with_kid, NOW), KEEL_AUTH_UNKNOWN_KID);
    keel_auth_destroy (&none);
    keel_auth_destroy (&two);
    free (no_kid);
    free (with_kid);
    keel_auth_destroy (&auth);
}
END_TEST

// ---------------------------------------------------------------------------
//  Config

START_TEST (test_config_good)
{
    char *text =
        zsys_sprintf ("gateway\n"
                      "    auth\n"
                      "        leeway = 5s\n"
                      "        cache_max_age = 2m\n"
                      "        cache_size = 7\n"
                      "        realm = api.example\n"
                      "        require_exp = no\n"
                      "        iss = keel-dev\n"
                      "        key\n"
                      "            kid = dev\n"
                      "            alg = HS256\n"
                      "            secret = \"dev-secret-change-me\"\n"
                      "        key\n"
                      "            kid = prod-rsa\n"
                      "            alg = RS256\n"
                      "            public_key_file = %s/rsa_public.pem\n"
                      "            aud = api\n"
                      "        api_key\n"
                      "            name = ci\n"
                      "            value = \"k-123\"\n"
                      "            scopes = \"orders:read orders:write\"\n",
                      DATA_DIR);
    keel_config_t *config = s_config (text);
    free (text);
    keel_auth_t *auth = keel_auth_new ();
    ck_assert_msg (keel_auth_load (auth, config, "/gateway/auth") == 0, "%s",
                   keel_config_error (config));

    //  Settings took effect: leeway 5, auth-wide iss, realm, no exp needed.
    char *token = keel_auth_mint (auth, "dev", "alice", NULL, 100, NOW);
    ck_assert_ptr_nonnull (token);
    ck_reason (s_reason (auth, token, NOW + 104), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, token, NOW + 105), KEEL_AUTH_EXPIRED);
    free (token);
    token = keel_jwt_mint_hs256 ("dev-secret-change-me", "dev", "alice", NULL,
                                 "other", NULL, 100, NOW);
    ck_reason (s_reason (auth, token, NOW), KEEL_AUTH_WRONG_ISSUER);
    free (token);
    ck_assert_str_eq (keel_auth_challenge (auth, KEEL_AUTH_EXPIRED),
                      "Bearer realm=\"api.example\", error=\"invalid_token\", "
                      "error_description=\"token expired\"");
    //  A cache of 7 entries.
    for (int i = 0; i < 10; i++) {
        char sub[8];
        snprintf (sub, sizeof sub, "s%d", i);
        token = keel_auth_mint (auth, NULL, sub, NULL, 100, NOW);
        ck_reason (s_reason (auth, token, NOW), KEEL_AUTH_OK);
        free (token);
    }
    ck_assert_uint_eq (s_stats (auth).cache_entries, 7);
    keel_identity_t identity = {0};
    ck_assert_int_eq (keel_auth_check_api_key (auth, "k-123", &identity, NULL),
                      0);
    keel_identity_clear (&identity);

    //  An absent section changes nothing; a failed load changes nothing.
    ck_assert_int_eq (keel_auth_load (auth, config, "gateway/other"), 0);
    keel_config_t *bad = s_config ("gateway\n"
                                   "    auth\n"
                                   "        key\n"
                                   "            alg = HS256\n");
    ck_assert_int_eq (keel_auth_load (auth, bad, "gateway/auth"), -1);
    keel_config_destroy (&bad);
    ck_assert_int_eq (keel_auth_check_api_key (auth, "k-123", &identity, NULL),
                      0);
    keel_identity_clear (&identity);
    token = keel_auth_mint (auth, "dev", "alice", NULL, 100, NOW);
    ck_reason (s_reason (auth, token, NOW + 104), KEEL_AUTH_OK);
    free (token);

    //  A second load replaces everything: defaults are back.
    keel_config_t *other = s_config ("gateway\n"
                                     "    auth\n"
                                     "        key\n"
                                     "            alg = HS256\n"
                                     "            secret = s2\n");
    ck_assert_int_eq (keel_auth_load (auth, other, "gateway/auth"), 0);
    keel_config_destroy (&other);
    ck_assert_int_eq (keel_auth_check_api_key (auth, "k-123", &identity, NULL),
                      401);
    ck_assert_ptr_null (keel_auth_mint (auth, "dev", "x", NULL, 100, NOW));
    token = keel_auth_mint (auth, NULL, "x", NULL, 100, NOW);
    ck_reason (s_reason (auth, token, NOW + 129), KEEL_AUTH_OK);
    ck_reason (s_reason (auth, token, NOW + 130), KEEL_AUTH_EXPIRED);
    free (token);
    ck_assert_str_eq (keel_auth_challenge (auth, KEEL_AUTH_NO_CREDENTIALS),
                      "Bearer realm=\"keel\"");

    keel_auth_destroy (&auth);
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_config_bad)
{
    //  Files the cases point at.
    char *garbage = testutil_write_temp ("not a key\n");
    const char *rsa = DATA_DIR "/rsa_public.pem";
    const char *ec = DATA_DIR "/ec_public.pem";
    const char *private_key = DATA_DIR "/rsa_private.pem";
    struct {
        const char *body; //  lines under "gateway/auth", from line 3
        const char *error;
    } cases[] = {
        {"key\n    alg = HS512\n    secret = x\n",
         "test.cfg:4: key 'gateway/auth/key/alg': unknown alg 'HS512' "
         "(expected HS256, RS256 or ES256)"},
        {"key\n    kid = a\n",
         "test.cfg:3: key 'gateway/auth/key': missing 'alg' (HS256, RS256 or "
         "ES256)"},
        {"key\n    alg = HS256\n    secret = \"\"\n",
         "test.cfg:5: key 'gateway/auth/key/secret': empty (leave the key "
         "out instead)"},
        {"key\n    alg = HS256\n",
         "test.cfg:3: key 'gateway/auth/key': HS256 needs a 'secret'"},
        {"key\n    alg = HS256\n    secret = s\n    public_key_file = %R\n",
         "test.cfg:6: key 'gateway/auth/key/public_key_file': HS256 takes a "
         "secret, not a public key"},
        {"key\n    alg = RS256\n    public_key_file = %G\n",
         "test.cfg:5: key 'gateway/auth/key/public_key_file': not a PEM "
         "public key"},
        {"key\n    alg = RS256\n    public_key_file = /nonexistent/k.pem\n",
         "test.cfg:5: key 'gateway/auth/key/public_key_file': cannot read "
         "'/nonexistent/k.pem': No such file or directory"},
        {"key\n    alg = RS256\n    public_key_file = %P\n",
         "test.cfg:5: key 'gateway/auth/key/public_key_file': is a private "
         "key"},
        {"key\n    alg = RS256\n    public_key_file = %E\n",
         "test.cfg:5: key 'gateway/auth/key/public_key_file': RS256 needs an "
         "RSA public key"},
        {"key\n    alg = ES256\n    public_key_file = %R\n",
         "test.cfg:5: key 'gateway/auth/key/public_key_file': ES256 needs an "
         "EC public key on P-256"},
        {"key\n    alg = ES256\n",
         "test.cfg:3: key 'gateway/auth/key': ES256 needs a 'public_key_file'"},
        {"key\n    alg = ES256\n    secret = s\n",
         "test.cfg:5: key 'gateway/auth/key/secret': ES256 takes a "
         "public_key_file, not a secret"},
        {"key\n    alg = HS256\n    secret = \"-----BEGIN PUBLIC KEY-----\"\n",
         "test.cfg:5: key 'gateway/auth/key/secret': HS256 secret is a PEM "
         "key"},
        {"key\n    kid = a\n    alg = HS256\n    secret = s\n"
         "key\n    kid = a\n    alg = HS256\n    secret = t\n",
         "test.cfg:8: key 'gateway/auth/key/kid': kid given twice"},
        {"key\n    alg = HS256\n    alg = RS256\n",
         "test.cfg:5: key 'gateway/auth/key/alg': given twice (first at line "
         "4)"},
        {"key\n    alg = HS256\n    secert = s\n",
         "test.cfg:5: key 'gateway/auth/key/secert': unknown key (expected "
         "one of: kid, alg, secret, public_key_file, iss, aud)"},
        {"key = HS256\n",
         "test.cfg:3: key 'gateway/auth/key': expected a section"},
        {"leeway = 1500ms\n",
         "test.cfg:3: key 'gateway/auth/leeway': must be whole seconds"},
        {"leeway = 2d\n", "test.cfg:3: key 'gateway/auth/leeway'"},
        {"cache_max_age = 48h\n",
         "test.cfg:3: key 'gateway/auth/cache_max_age': longer than 86400 s"},
        {"cache_size = -1\n", "test.cfg:3: key 'gateway/auth/cache_size'"},
        {"realm = 'a\"b'\n", "test.cfg:3: key 'gateway/auth/realm'"},
        {"require_exp = maybe\n", "test.cfg:3: key 'gateway/auth/require_exp'"},
        {"iss = \"\"\n", "test.cfg:3: key 'gateway/auth/iss': empty"},
        {"keys\n    alg = HS256\n",
         "test.cfg:3: key 'gateway/auth/keys': unknown key (expected one of: "
         "leeway, cache_size, cache_max_age, realm, require_exp, iss, aud, "
         "key, api_key)"},
        {"api_key\n    name = ci\n",
         "test.cfg:3: key 'gateway/auth/api_key': API key needs a non-empty "
         "value"},
        {"api_key\n    value = v\n",
         "test.cfg:3: key 'gateway/auth/api_key': API key needs a non-empty "
         "name"},
        {"api_key\n    name = ci\n    value = v\n"
         "api_key\n    name = ci\n    value = w\n",
         "test.cfg:7: key 'gateway/auth/api_key/name': API key name given "
         "twice"},
        {"api_key\n    name = a\n    value = v\n"
         "api_key\n    name = b\n    value = v\n",
         "test.cfg:8: key 'gateway/auth/api_key/value': API key value given "
         "twice"},
        {"api_key\n    name = a\n    value = v\n    scope = x\n",
         "test.cfg:6: key 'gateway/auth/api_key/scope': unknown key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        //  Indent the body under gateway/auth, expanding %R %E %P %G.
        char text[2048] = "gateway\n    auth\n";
        const char *line = cases[i].body;
        while (*line) {
            strcat (text, "        ");
            const char *end = strchr (line, '\n');
            for (const char *p = line; p < end; p++) {
                if (*p == '%') {
                    p++;
                    strcat (text, *p == 'R'   ? rsa
                                  : *p == 'E' ? ec
                                  : *p == 'P' ? private_key
                                              : garbage);
                } else
                    strncat (text, p, 1);
            }
            strcat (text, "\n");
            line = end + 1;
        }
        keel_config_t *config = s_config (text);
        keel_auth_t *auth = keel_auth_new ();
        ck_assert_msg (keel_auth_load (auth, config, "gateway/auth") == -1,
                       "case %zu loaded:\n%s", i, text);
        const char *error = keel_config_error (config);
        ck_assert_ptr_nonnull (error);
        ck_assert_msg (
            strncmp (error, cases[i].error, strlen (cases[i].error)) == 0,
            "case %zu: '%s', expected '%s...'", i, error, cases[i].error);
        keel_auth_destroy (&auth);
        keel_config_destroy (&config);
    }
    unlink (garbage);
    free (garbage);
}
END_TEST

// ---------------------------------------------------------------------------
//  Garbage

//  "Bearer " and a header.claims.signature made of raw JSON texts.
static char *
s_token_of (const char *header_json, const char *claims_json)
{
    char *header = keel_base64url_encode (header_json, strlen (header_json));
    char *claims = keel_base64url_encode (claims_json, strlen (claims_json));
    char *token = zsys_sprintf ("%s.%s.c2ln", header, claims);
    free (header);
    free (claims);
    return token;
}

START_TEST (test_garbage)
{
    keel_auth_t *auth = s_vector_auth ();
    struct {
        const char *header;
        keel_auth_reason_t reason;
    } cases[] = {
        {NULL, KEEL_AUTH_NO_CREDENTIALS},
        {"", KEEL_AUTH_NO_CREDENTIALS},
        {"   \t ", KEEL_AUTH_NO_CREDENTIALS},
        {"Bearer", KEEL_AUTH_MALFORMED_HEADER},
        {"Bearer   ", KEEL_AUTH_MALFORMED_HEADER},
        {"Basic x", KEEL_AUTH_BAD_SCHEME},
        {"Basic", KEEL_AUTH_BAD_SCHEME},
        {"Bearerx a.b.c", KEEL_AUTH_BAD_SCHEME},
        {"Bear a.b.c", KEEL_AUTH_BAD_SCHEME},
        {"Bearer a b", KEEL_AUTH_MALFORMED_HEADER},
        {"Bearer a\x01.b.c", KEEL_AUTH_MALFORMED_HEADER},
        {"Bearer a\xc3\xa9.b.c", KEEL_AUTH_MALFORMED_HEADER},
        {"Bearer ...", KEEL_AUTH_MALFORMED_TOKEN},
        {"Bearer ..", KEEL_AUTH_MALFORMED_TOKEN},
        {"Bearer .", KEEL_AUTH_MALFORMED_TOKEN},
        {"Bearer a", KEEL_AUTH_MALFORMED_TOKEN},
        {"Bearer a..", KEEL_AUTH_MALFORMED_TOKEN},
        {"Bearer a.b.c.d", KEEL_AUTH_MALFORMED_TOKEN},
        {"Bearer a.b.c", KEEL_AUTH_BAD_BASE64},
        {"Bearer ab.cd.e", KEEL_AUTH_BAD_BASE64},
        {"Bearer e30.e30.", KEEL_AUTH_ALG_MISSING},   //  {}.{}.
        {"Bearer bnVsbA.e30.", KEEL_AUTH_BAD_HEADER}, //  null
        {"Bearer W10.e30.", KEEL_AUTH_BAD_HEADER},    //  []
        {"Bearer eyI.e30.", KEEL_AUTH_BAD_HEADER},    //  {"
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        keel_auth_reason_t reason =
            s_header_reason (auth, cases[i].header, NOW);
        ck_assert_msg (reason == cases[i].reason,
                       "case %zu '%s': %s, expected %s", i,
                       cases[i].header ? cases[i].header : "(null)",
                       keel_auth_reason_name (reason),
                       keel_auth_reason_name (cases[i].reason));
    }

    //  10 KiB token; exactly the limit is not "too large".
    char *big = (char *)malloc (10 * 1024 + 16);
    strcpy (big, "Bearer ");
    memset (big + 7, 'A', 10 * 1024);
    big[7 + 10 * 1024] = 0;
    ck_reason (s_header_reason (auth, big, NOW), KEEL_AUTH_TOO_LARGE);
    ck_reason (s_reason (auth, big + 7, NOW), KEEL_AUTH_TOO_LARGE);
    keel_identity_t identity = {0};
    keel_auth_reason_t reason;
    ck_assert_int_eq (
        keel_auth_check_token (auth, big + 7, NOW, &identity, &reason), 401);
    ck_reason (reason, KEEL_AUTH_TOO_LARGE);
    big[7 + KEEL_JWT_MAX_TOKEN] = 0;
    big[7 + 10] = '.';
    big[7 + 21] = '.';
    ck_reason (s_header_reason (auth, big, NOW), KEEL_AUTH_BAD_HEADER);
    ck_assert_int_eq (keel_auth_check_token (auth, NULL, NOW, &identity, NULL),
                      401);
    ck_assert_int_eq (keel_auth_check_token (auth, "", NOW, &identity, &reason),
                      401);
    ck_reason (reason, KEEL_AUTH_NO_CREDENTIALS);
    free (big);

    //  Deep JSON: 10000 levels is too large; 3000 fits in 8 KiB and is too
    //  deep; 16 is fine, 17 is not, in the header and in the claims.
    size_t depths[] = {10000, 3000, 17, 16};
    keel_auth_reason_t want[] = {KEEL_AUTH_TOO_LARGE, KEEL_AUTH_TOO_DEEP,
                                 KEEL_AUTH_TOO_DEEP, KEEL_AUTH_ALG_MISSING};
    for (size_t i = 0; i < 4; i++) {
        size_t depth = depths[i];
        char *json = (char *)calloc (1, 2 * depth + 1);
        memset (json, '[', depth);
        memset (json + depth, ']', depth);
        json[0] = '{';
        json[2 * depth - 1] = '}';
        //  {[[...]]} is not an object with keys: make it {"x":[[...]]}.
        char *header =
            zsys_sprintf ("{\"x\":%.*s}", (int)(2 * depth - 2), json + 1);
        char *token = s_token_of (header, "{}");
        ck_reason (s_reason (auth, token, NOW), want[i]);
        free (token);
        free (header);
        free (json);
    }
    char *deep_claims = (char *)calloc (1, 200);
    strcpy (deep_claims, "{\"sub\":\"alice\",\"iss\":\"keel-test\",\"exp\":"
                         "4102444800,\"x\":");
    size_t length = strlen (deep_claims);
    memset (deep_claims + length, '[', 16);
    memset (deep_claims + length + 16, ']', 16);
    strcat (deep_claims, "}");
    //  Signed properly: only the depth can refuse it (17 deep).
    char *token =
        s_sign_hs ("{\"alg\":\"HS256\",\"kid\":\"hs\"}", deep_claims, SECRET);
    ck_reason (s_reason (auth, token, NOW), KEEL_AUTH_TOO_DEEP);
    free (token);
    deep_claims[length] = ' '; //  16 deep: accepted
    deep_claims[length + 31] = ' ';
    token =
        s_sign_hs ("{\"alg\":\"HS256\",\"kid\":\"hs\"}", deep_claims, SECRET);
    ck_reason (s_reason (auth, token, NOW), KEEL_AUTH_OK);
    free (token);
    free (deep_claims);

    //  Mutations of a good token: 401 or accepted, never a crash. A
    //  deterministic generator, so a failure repeats.
    char *good = s_mint ("alice", 3600, NOW);
    size_t size = strlen (good);
    uint32_t seed = 12345;
    char *mutant = (char *)malloc (size + 8);
    for (int round = 0; round < 3000; round++) {
        memcpy (mutant, good, size + 1);
        int edits = 1 + round % 4;
        for (int e = 0; e < edits; e++) {
            seed = seed * 1103515245 + 12345;
            size_t at = (seed >> 8) % size;
            seed = seed * 1103515245 + 12345;
            mutant[at] = (char)(1 + (seed >> 8) % 255);
        }
        keel_auth_check_bearer (auth, mutant, NOW, &identity, &reason);
        ck_assert (reason < KEEL_AUTH_REASON_COUNT);
        char *bearer = zsys_sprintf ("Bearer %s", mutant);
        keel_auth_check_bearer (auth, bearer, NOW, &identity, &reason);
        ck_assert (reason == KEEL_AUTH_OK || identity.sub == NULL);
        free (bearer);
    }
    free (mutant);
    free (good);
    keel_identity_clear (&identity);
    keel_auth_destroy (&auth);
}
END_TEST

// ---------------------------------------------------------------------------
//  Names and challenges

START_TEST (test_names)
{
    for (int reason = 0; reason < KEEL_AUTH_REASON_COUNT; reason++) {
        const char *name = keel_auth_reason_name (reason);
        ck_assert_str_ne (name, "UNKNOWN");
        ck_assert_int_eq (keel_auth_reason_parse (name), reason);
        ck_assert_str_ne (keel_auth_reason_text (reason), "unknown reason");
    }
    ck_assert_str_eq (keel_auth_reason_name (-1), "UNKNOWN");
    ck_assert_str_eq (keel_auth_reason_name (KEEL_AUTH_REASON_COUNT),
                      "UNKNOWN");
    ck_assert_str_eq (keel_auth_reason_text (99), "unknown reason");
    ck_assert_int_eq (keel_auth_reason_parse ("expired"), -1);
    ck_assert_int_eq (keel_auth_reason_parse (NULL), -1);

    ck_assert_str_eq (keel_jwt_alg_name (KEEL_JWT_ES256), "ES256");
    ck_assert_str_eq (keel_jwt_alg_name (3), "UNKNOWN");
    ck_assert_int_eq (keel_jwt_alg_parse ("RS256"), KEEL_JWT_RS256);
    ck_assert_int_eq (keel_jwt_alg_parse ("rs256"), -1);
    ck_assert_int_eq (keel_jwt_alg_parse ("none"), -1);
    ck_assert_int_eq (keel_jwt_alg_parse (NULL), -1);

    keel_auth_t *auth = keel_auth_new ();
    ck_assert_str_eq (keel_auth_challenge (auth, KEEL_AUTH_NO_CREDENTIALS),
                      "Bearer realm=\"keel\"");
    ck_assert_str_eq (keel_auth_challenge (auth, KEEL_AUTH_BAD_SCHEME),
                      "Bearer realm=\"keel\"");
    ck_assert_str_eq (keel_auth_challenge (auth, KEEL_AUTH_MALFORMED_HEADER),
                      "Bearer realm=\"keel\", error=\"invalid_request\", "
                      "error_description=\"malformed Authorization header\"");
    ck_assert_str_eq (keel_auth_challenge (auth, KEEL_AUTH_ALG_NONE),
                      "Bearer realm=\"keel\", error=\"invalid_token\", "
                      "error_description=\"unsigned tokens are not "
                      "accepted\"");
    for (int reason = 0; reason < KEEL_AUTH_REASON_COUNT; reason++) {
        const char *challenge = keel_auth_challenge (auth, reason);
        ck_assert_ptr_nonnull (challenge);
        ck_assert_ptr_nonnull (strstr (challenge, "realm=\"keel\""));
    }
    ck_assert_int_eq (keel_auth_set_realm (auth, "a\"b"), -1);
    ck_assert_int_eq (keel_auth_set_realm (auth, "a\\b"), -1);
    ck_assert_int_eq (keel_auth_set_realm (auth, "a\nb"), -1);
    ck_assert_int_eq (keel_auth_set_realm (auth, NULL), -1);
    ck_assert_int_eq (keel_auth_set_realm (auth, "shop"), 0);
    ck_assert_str_eq (keel_auth_challenge (auth, KEEL_AUTH_NO_CREDENTIALS),
                      "Bearer realm=\"shop\"");
    ck_assert_str_eq (keel_auth_challenge (auth, KEEL_AUTH_REASON_COUNT),
                      "Bearer realm=\"shop\"");
    ck_assert_int_eq (keel_auth_set_issuer (auth, "i"), 0);
    ck_assert_int_eq (keel_auth_set_audience (auth, "a"), 0);
    ck_assert_int_eq (keel_auth_set_issuer (auth, NULL), 0);
    keel_auth_destroy (&auth);
}
END_TEST

//  Auth-wide iss and aud apply to keys that name none; a key's own win.
START_TEST (test_issuer_audience)
{
    keel_auth_t *auth = keel_auth_new ();
    s_add_key (auth, "plain", KEEL_JWT_HS256, SECRET, NULL, NULL, NULL);
    s_add_key (auth, "own", KEEL_JWT_HS256, "own-secret", NULL, "own-iss",
               "own-aud");
    ck_assert_int_eq (keel_auth_set_issuer (auth, "global-iss"), 0);
    ck_assert_int_eq (keel_auth_set_audience (auth, "global-aud"), 0);
    struct {
        const char *secret, *kid, *iss, *aud;
        keel_auth_reason_t reason;
    } cases[] = {
        {SECRET, "plain", "global-iss", "global-aud", KEEL_AUTH_OK},
        {SECRET, "plain", NULL, "global-aud", KEEL_AUTH_WRONG_ISSUER},
        {SECRET, "plain", "global-iss", NULL, KEEL_AUTH_WRONG_AUDIENCE},
        {SECRET, "plain", "own-iss", "global-aud", KEEL_AUTH_WRONG_ISSUER},
        {"own-secret", "own", "own-iss", "own-aud", KEEL_AUTH_OK},
        {"own-secret", "own", "global-iss", "own-aud", KEEL_AUTH_WRONG_ISSUER},
        {"own-secret", "own", "own-iss", "global-aud",
         KEEL_AUTH_WRONG_AUDIENCE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *token =
            keel_jwt_mint_hs256 (cases[i].secret, cases[i].kid, "s", NULL,
                                 cases[i].iss, cases[i].aud, 60, NOW);
        keel_auth_reason_t reason = s_reason (auth, token, NOW);
        ck_assert_msg (reason == cases[i].reason, "case %zu: %s", i,
                       keel_auth_reason_name (reason));
        free (token);
    }
    //  Without requirements, iss and aud are free (but typed).
    ck_assert_int_eq (keel_auth_set_issuer (auth, NULL), 0);
    ck_assert_int_eq (keel_auth_set_audience (auth, ""), 0);
    char *token = keel_jwt_mint_hs256 (SECRET, "plain", "s", NULL, "any",
                                       "thing", 60, NOW);
    ck_reason (s_reason (auth, token, NOW), KEEL_AUTH_OK);
    free (token);
    keel_auth_destroy (&auth);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("jwt");
    TCase *tc = tcase_create ("core");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_base64url);
    tcase_add_test (tc, test_vectors);
    tcase_add_test (tc, test_vectors_from_config);
    tcase_add_test (tc, test_pkcs1_public_key);
    tcase_add_test (tc, test_leeway_boundaries);
    tcase_add_test (tc, test_cache_hits);
    tcase_add_test (tc, test_cache_expiry);
    tcase_add_test (tc, test_cache_lru);
    tcase_add_test (tc, test_api_keys);
    tcase_add_test (tc, test_allowed);
    tcase_add_test (tc, test_mint);
    tcase_add_test (tc, test_mint_pyjwt);
    tcase_add_test (tc, test_key_errors);
    tcase_add_test (tc, test_key_selection);
    tcase_add_test (tc, test_config_good);
    tcase_add_test (tc, test_config_bad);
    tcase_add_test (tc, test_garbage);
    tcase_add_test (tc, test_names);
    tcase_add_test (tc, test_issuer_audience);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
