/*  test_example_embed.c - examples/embed/ does what its README says: it
    runs a node in its own process, one saga completes, one is compensated,
    the node stops, and it exits 0.

    Under KEEL_TEST_MEMCHECK (the valgrind target) the example itself runs
    in memcheck: it is what newcomers copy, so it must not leak. */
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#define S_EXAMPLE  KEEL_BUILD_DIR "/example_embed"
#define S_VALGRIND "/usr/bin/valgrind"

//  True if `text` has `needle` somewhere after `after` (both in order).
static bool
s_in_order (const char *text, const char *after, const char *needle)
{
    const char *at = strstr (text, after);
    return at && strstr (at + strlen (after), needle);
}

START_TEST (test_embed_runs)
{
    bool memcheck =
        getenv ("KEEL_TEST_MEMCHECK") && access (S_VALGRIND, X_OK) == 0;
    char *plain_argv[] = {S_EXAMPLE, NULL};
    char *memcheck_argv[] = {S_VALGRIND,
                             "-q",
                             "--leak-check=full",
                             "--errors-for-leak-kinds=definite,indirect",
                             "--error-exitcode=99",
                             "--suppressions=" KEEL_SOURCE_DIR
                             "/.ci/valgrind.supp",
                             S_EXAMPLE,
                             NULL};
    char *output = NULL;
    int rc = testutil_run_cmd (memcheck ? memcheck_argv : plain_argv, &output);
    ck_assert_msg (rc == 0, "example_embed exited %d:\n%s", rc, output);

    //  The node started, both sagas ran, the node stopped.
    ck_assert_msg (strstr (output, "node 'embed' running"), "%s", output);
    ck_assert_msg (strstr (output, "node stopped; both sagas ended as "
                                   "expected"),
                   "%s", output);

    //  Saga 1: every step done.
    ck_assert_msg (s_in_order (output, "order 1:", ": COMPLETED"), "%s",
                   output);
    ck_assert_msg (s_in_order (output, "order 1:", "charge   DONE"), "%s",
                   output);
    //  Saga 2: payment declined for good (CONFLICT, no retry), the two
    //  steps before it undone.
    const char *second = strstr (output, "order 2:");
    ck_assert_msg (second, "%s", output);
    ck_assert_ptr_nonnull (strstr (second, ": COMPENSATED"));
    ck_assert_ptr_nonnull (strstr (second, "create   COMPENSATED"));
    ck_assert_ptr_nonnull (strstr (second, "reserve  COMPENSATED"));
    ck_assert_ptr_nonnull (
        strstr (second, "charge   FAILED        CONFLICT: payment declined"));

    //  It cleans up after itself: its saga log's directory is gone.
    const char *log = strstr (output, "saga log ");
    ck_assert_msg (log, "%s", output);
    char dir[256];
    ck_assert_int_eq (sscanf (log, "saga log %255[^ \n]", dir), 1);
    ck_assert_msg (strstr (dir, "/saga.db"), "%s", dir);
    *strstr (dir, "/saga.db") = 0;
    ck_assert_msg (access (dir, F_OK) == -1, "%s left behind", dir);
    free (output);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("example_embed");
    TCase *tc = tcase_create ("embed");
    tcase_set_timeout (tc, getenv ("KEEL_TEST_MEMCHECK") ? 600 : 60);
    tcase_add_test (tc, test_embed_runs);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
