/*  test_token.c - `keel token`: a token minted by the CLI verifies with
    keel's own authentication core and with an independent implementation
    (PyJWT, when /usr/bin/python3 has it). */
#include "jwt.h"
#include "testutil.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEV_SECRET "keel-dev-secret-not-for-production"

static char *
s_mint (const char *extra_scope)
{
    char *output = NULL;
    char *argv[] = {KEEL_BIN,  "token",       "--sub",   "alice",
                    "--scope", "orders:read", "--scope", (char *)extra_scope,
                    NULL};
    ck_assert_int_eq (testutil_run_cmd (argv, &output), 0);
    //  One line: the token.
    char *newline = strchr (output, '\n');
    ck_assert_ptr_nonnull (newline);
    *newline = 0;
    return output;
}

START_TEST (test_token_verifies)
{
    char *token = s_mint ("orders:write");
    keel_auth_t *auth = keel_auth_new ();
    keel_auth_key_t key = {0};
    key.kid = "dev";
    key.alg = KEEL_JWT_HS256;
    key.secret = (const unsigned char *)DEV_SECRET;
    key.secret_size = strlen (DEV_SECRET);
    key.iss = "keel-dev";
    const char *error = NULL;
    ck_assert_msg (keel_auth_add_key (auth, &key, &error) == 0, "%s", error);
    keel_identity_t identity = {0};
    keel_auth_reason_t reason = KEEL_AUTH_OK;
    int rc = keel_auth_check_token (auth, token, (int64_t)time (NULL),
                                    &identity, &reason);
    ck_assert_msg (rc == 0, "refused: %s", keel_auth_reason_name (reason));
    ck_assert_str_eq (identity.sub, "alice");
    ck_assert (keel_identity_has_scope (&identity, "orders:read"));
    ck_assert (keel_identity_has_scope (&identity, "orders:write"));
    keel_identity_clear (&identity);
    keel_auth_destroy (&auth);

    //  An independent implementation agrees, when it is installed.
    if (access ("/usr/bin/python3", X_OK) == 0) {
        char *script = zsys_sprintf (
            "import sys\ntry:\n    import jwt\nexcept ImportError:\n"
            "    print('skip'); sys.exit(0)\n"
            "c = jwt.decode('%s', '%s', algorithms=['HS256'], "
            "issuer='keel-dev')\nprint(c['sub'], c['scope'])\n",
            token, DEV_SECRET);
        char *argv[] = {"/usr/bin/python3", "-c", script, NULL};
        char *output = NULL;
        ck_assert_int_eq (testutil_run_cmd (argv, &output), 0);
        ck_assert_msg (strstr (output, "skip") ||
                           strstr (output, "alice orders:read orders:write"),
                       "%s", output);
        free (output);
        free (script);
    }
    free (token);
}
END_TEST

START_TEST (test_token_usage)
{
    char *output = NULL;
    char *no_sub[] = {KEEL_BIN, "token", NULL};
    ck_assert_int_eq (testutil_run_cmd (no_sub, &output), 2);
    ck_assert_ptr_nonnull (strstr (output, "--sub"));
    free (output);
    char *bad_ttl[] = {KEEL_BIN, "token", "--sub", "a", "--ttl", "x", NULL};
    ck_assert_int_eq (testutil_run_cmd (bad_ttl, NULL), 2);
    char *help[] = {KEEL_BIN, "token", "--help", NULL};
    ck_assert_int_eq (testutil_run_cmd (help, &output), 0);
    ck_assert_ptr_nonnull (strstr (output, "usage: keel token"));
    free (output);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("token");
    TCase *tc = tcase_create ("token");
    tcase_set_timeout (tc, 30);
    tcase_add_test (tc, test_token_verifies);
    tcase_add_test (tc, test_token_usage);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
