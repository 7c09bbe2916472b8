/*  fuzz_jwt.c - an Authorization header (or a bare token, or an API key)
    checked as the gateway checks it, by an authenticator set up as the
    test vectors expect (tests/data/jwt: an HS256, an RS256 and an ES256
    key, and an API key), and the token's text through the strict
    base64url decoder.

        +----+----------------------------------------------------+
        | F  | header value / token / API key ...                 |
        +----+----------------------------------------------------+
        F  bits 0-1  0 check_bearer  1 check_token  2 check_api_key
                     3 check_bearer twice (the second from the cache)
           bit 2     cache on (else every check in full)
           bits 3-4  clock: the vectors' now, +1 day, -1 day, 0
           bit 5     exp not required

    The key files are read once, from $KEEL_SOURCE_DIR/tests/data/jwt (or
    the source tree the target was built from).
*/
#include "fuzz.h"

#include "jwt.h"

#include <string.h>

#define S_NOW    1700000000 //  the vectors' "now"
#define S_SECRET "keel-test-secret-0123456789abcdef"

static char *
s_read (const char *name)
{
    char path[4096];
    snprintf (path, sizeof path, "%s/tests/data/jwt/%s",
              keel_fuzz_source_dir (), name);
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = (char *)calloc (1, 65536);
    size_t size = text ? fread (text, 1, 65535, file) : 0;
    fclose (file);
    if (text && size == 0) {
        free (text);
        text = NULL;
    }
    return text;
}

static int
s_add (keel_auth_t *auth, const char *kid, keel_jwt_alg_t alg,
       const char *pem_file, const char *iss, const char *aud)
{
    keel_auth_key_t key = {.kid = kid, .alg = alg, .iss = iss, .aud = aud};
    char *pem = NULL;
    if (pem_file) {
        pem = s_read (pem_file);
        if (!pem) {
            fprintf (stderr,
                     "fuzz_jwt: cannot read %s/tests/data/jwt/%s "
                     "(set KEEL_SOURCE_DIR)\n",
                     keel_fuzz_source_dir (), pem_file);
            return -1;
        }
        key.public_key_pem = pem;
    } else {
        key.secret = S_SECRET;
        key.secret_size = strlen (S_SECRET);
    }
    const char *error = NULL;
    int rc = keel_auth_add_key (auth, &key, &error);
    if (rc)
        fprintf (stderr, "fuzz_jwt: key %s: %s\n", kid, error);
    free (pem);
    return rc;
}

//  The verifier of tests/test_jwt.c's vectors. Aborts if it cannot be
//  built: that is the setup failing, not the input.
static keel_auth_t *
s_auth (void)
{
    static keel_auth_t *auth;
    if (auth)
        return auth;
    auth = keel_auth_new ();
    if (!auth || keel_auth_set_realm (auth, "fuzz") ||
        s_add (auth, "hs", KEEL_JWT_HS256, NULL, "keel-test", NULL) ||
        s_add (auth, "rsa", KEEL_JWT_RS256, "rsa_public.pem", NULL, "api") ||
        s_add (auth, "ec", KEEL_JWT_ES256, "ec_public.pem", NULL, NULL) ||
        keel_auth_add_api_key (auth, "ci", "k-123", "orders:read orders:write",
                               "robot", NULL))
        abort ();
    keel_auth_set_leeway (auth, 30);
    return auth;
}

//  What the gateway does with an identity: the route's scope and role
//  check, the copy a call keeps.
static void
s_identity (keel_auth_t *auth, const keel_identity_t *identity)
{
    KEEL_FUZZ_CHECK (identity->sub != NULL);
    KEEL_FUZZ_CHECK (identity->scopes != NULL && identity->roles != NULL);
    for (size_t i = 0; i < identity->scope_count; i++)
        KEEL_FUZZ_CHECK (identity->scopes[i] != NULL);
    KEEL_FUZZ_CHECK (identity->scopes[identity->scope_count] == NULL);
    KEEL_FUZZ_CHECK (identity->roles[identity->role_count] == NULL);
    static const char *const scopes[] = {"orders:read", "orders:write", NULL};
    static const char *const roles[] = {"admin", "robot", NULL};
    const char *missing = NULL;
    if (keel_auth_allowed (identity, scopes, roles, &missing) == 403) {
        char *challenge = keel_auth_forbidden_challenge (auth, missing);
        free (challenge);
    }
    keel_identity_t copy = {0};
    if (keel_identity_copy (&copy, identity) == 0) {
        KEEL_FUZZ_CHECK (strcmp (copy.sub, identity->sub) == 0);
        KEEL_FUZZ_CHECK (copy.scope_count == identity->scope_count);
        if (copy.scope_count)
            KEEL_FUZZ_CHECK (keel_identity_has_scope (&copy, copy.scopes[0]));
        if (copy.role_count)
            KEEL_FUZZ_CHECK (keel_identity_has_role (&copy, copy.roles[0]));
    }
    keel_identity_clear (&copy);
}

static void
s_outcome (keel_auth_t *auth, int rc, keel_auth_reason_t reason,
           const keel_identity_t *identity)
{
    KEEL_FUZZ_CHECK (rc == 0 || rc == 401 || rc == 500);
    KEEL_FUZZ_CHECK ((rc == 0) == (reason == KEEL_AUTH_OK));
    KEEL_FUZZ_CHECK ((rc == 500) == (reason == KEEL_AUTH_INTERNAL));
    KEEL_FUZZ_CHECK ((unsigned)reason < KEEL_AUTH_REASON_COUNT);
    keel_auth_reason_name (reason);
    keel_auth_reason_text (reason);
    KEEL_FUZZ_CHECK (keel_auth_challenge (auth, reason) != NULL);
    if (rc == 0)
        s_identity (auth, identity);
    else
        KEEL_FUZZ_CHECK (identity->sub == NULL);
}

//  Strict base64url: what decodes encodes back to the same text.
static void
s_base64url (const char *text, size_t size)
{
    size_t out_max = KEEL_BASE64URL_DECODED_MAX (size);
    unsigned char *out = (unsigned char *)malloc (out_max ? out_max : 1);
    if (!out)
        return;
    size_t out_size = 0;
    if (keel_base64url_decode (text, size, out, out_max, &out_size) == 0) {
        KEEL_FUZZ_CHECK (out_size <= out_max);
        char *again = keel_base64url_encode (out, out_size);
        if (again) {
            KEEL_FUZZ_CHECK (strlen (again) == size);
            KEEL_FUZZ_CHECK (memcmp (again, text, size) == 0);
        }
        free (again);
        //  One byte less room than needed is refused, not overrun.
        if (out_size > 0)
            KEEL_FUZZ_CHECK (keel_base64url_decode (text, size, out,
                                                    out_size - 1,
                                                    &out_size) == -1);
    }
    free (out);
}

int
KEEL_FUZZ_ENTRY (jwt) (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    keel_auth_t *auth = s_auth ();
    unsigned flags = data[0];
    char *text = (char *)malloc (size);
    if (!text)
        return 0;
    memcpy (text, data + 1, size - 1);
    text[size - 1] = 0;

    static const int64_t clocks[] = {S_NOW, S_NOW + 86400, S_NOW - 86400, 0};
    int64_t now = clocks[(flags >> 3) & 3];
    if (flags & 4)
        keel_auth_set_cache (auth, 100, 60);
    else
        keel_auth_set_cache (auth, 0, 0);
    keel_auth_set_require_exp (auth, !(flags & 32));

    keel_identity_t identity = {0};
    keel_auth_reason_t reason = KEEL_AUTH_REASON_COUNT;
    int rc;
    switch (flags & 3) {
    case 1:
        rc = keel_auth_check_token (auth, text, now, &identity, &reason);
        break;
    case 2:
        rc = keel_auth_check_api_key (auth, text, &identity, &reason);
        break;
    default:
        rc = keel_auth_check_bearer (auth, text, now, &identity, &reason);
        break;
    }
    s_outcome (auth, rc, reason, &identity);
    if ((flags & 3) == 3) {
        //  The same header again gets the same answer (from the cache).
        keel_identity_t second = {0};
        keel_auth_reason_t reason2 = KEEL_AUTH_REASON_COUNT;
        int rc2 = keel_auth_check_bearer (auth, text, now, &second, &reason2);
        s_outcome (auth, rc2, reason2, &second);
        KEEL_FUZZ_CHECK (rc2 == rc && reason2 == reason);
        if (rc == 0)
            KEEL_FUZZ_CHECK (strcmp (second.sub, identity.sub) == 0);
        keel_identity_clear (&second);
    }
    keel_identity_clear (&identity);
    keel_auth_stats_t stats;
    keel_auth_stats (auth, &stats);

    //  The decoder on the whole text and on each segment of a token.
    size_t length = strlen (text);
    s_base64url (text, length);
    const char *start = text;
    for (const char *dot; (dot = strchr (start, '.')); start = dot + 1)
        s_base64url (start, (size_t)(dot - start));
    s_base64url (start, strlen (start));
    free (text);
    return 0;
}
