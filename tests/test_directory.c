/*  test_directory.c - keel_directory: the table and loading it from config. */
#include "keel_directory.h"
#include "testutil.h"

static keel_config_t *
s_config (const char *text)
{
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "dir.cfg", &error);
    ck_assert_msg (config != NULL, "load failed: %s", error ? error : "?");
    return config;
}

START_TEST (test_set_get_replace_remove)
{
    keel_directory_t *dir = keel_directory_new ();
    ck_assert_ptr_nonnull (dir);
    ck_assert_uint_eq (keel_directory_size (dir), 0);
    ck_assert_ptr_null (keel_directory_endpoint (dir, "registry"));
    ck_assert_ptr_null (keel_directory_events (dir, "registry"));

    ck_assert_int_eq (
        keel_directory_set (dir, "registry", "tcp://10.0.0.2:7700", NULL), 0);
    ck_assert_int_eq (keel_directory_set (dir, "saga", "inproc://saga",
                                          "inproc://saga-events"),
                      0);
    ck_assert_uint_eq (keel_directory_size (dir), 2);
    ck_assert_str_eq (keel_directory_endpoint (dir, "registry"),
                      "tcp://10.0.0.2:7700");
    ck_assert_ptr_null (keel_directory_events (dir, "registry"));
    ck_assert_str_eq (keel_directory_endpoint (dir, "saga"), "inproc://saga");
    ck_assert_str_eq (keel_directory_events (dir, "saga"),
                      "inproc://saga-events");

    //  Strings are copied
    char endpoint[] = "ipc:///tmp/breaker";
    ck_assert_int_eq (keel_directory_set (dir, "breaker", endpoint, NULL), 0);
    endpoint[0] = 'X';
    ck_assert_str_eq (keel_directory_endpoint (dir, "breaker"),
                      "ipc:///tmp/breaker");

    //  Replace, including dropping the events endpoint
    ck_assert_int_eq (keel_directory_set (dir, "saga", "tcp://10.0.0.3:7700",
                                          "tcp://10.0.0.3:7701"),
                      0);
    ck_assert_str_eq (keel_directory_endpoint (dir, "saga"),
                      "tcp://10.0.0.3:7700");
    ck_assert_str_eq (keel_directory_events (dir, "saga"),
                      "tcp://10.0.0.3:7701");
    ck_assert_int_eq (
        keel_directory_set (dir, "saga", "tcp://10.0.0.4:7700", NULL), 0);
    ck_assert_ptr_null (keel_directory_events (dir, "saga"));
    ck_assert_uint_eq (keel_directory_size (dir), 3);

    //  Remove
    ck_assert_int_eq (keel_directory_remove (dir, "saga"), 0);
    ck_assert_ptr_null (keel_directory_endpoint (dir, "saga"));
    ck_assert_int_eq (keel_directory_remove (dir, "saga"), -1);
    ck_assert_int_eq (keel_directory_remove (dir, "never"), -1);
    ck_assert_int_eq (keel_directory_remove (dir, NULL), -1);
    ck_assert_uint_eq (keel_directory_size (dir), 2);
    ck_assert_ptr_null (keel_directory_endpoint (dir, NULL));

    keel_directory_destroy (&dir);
    ck_assert_ptr_null (dir);
    keel_directory_destroy (&dir);
    keel_directory_destroy (NULL);
}
END_TEST

START_TEST (test_set_rejects)
{
    keel_directory_t *dir = keel_directory_new ();
    char name[KEEL_DIRECTORY_MAX_NAME + 2];
    memset (name, 'n', KEEL_DIRECTORY_MAX_NAME);
    name[KEEL_DIRECTORY_MAX_NAME] = 0;
    ck_assert_int_eq (keel_directory_set (dir, name, "inproc://a", NULL), 0);
    strcat (name, "n");
    ck_assert_int_eq (keel_directory_set (dir, name, "inproc://a", NULL), -1);
    ck_assert_int_eq (keel_directory_set (dir, "", "inproc://a", NULL), -1);
    ck_assert_int_eq (keel_directory_set (dir, NULL, "inproc://a", NULL), -1);
    ck_assert_int_eq (keel_directory_set (dir, "a", NULL, NULL), -1);
    ck_assert_int_eq (keel_directory_set (dir, "a", "", NULL), -1);
    ck_assert_int_eq (keel_directory_set (dir, "a", "tcp://host", NULL), -1);
    ck_assert_int_eq (keel_directory_set (dir, "a", "http://x:80", NULL), -1);
    ck_assert_int_eq (keel_directory_set (dir, "a", "inproc://a", ""), -1);
    ck_assert_int_eq (
        keel_directory_set (dir, "a", "inproc://a", "tcp://*:99999"), -1);
    ck_assert_uint_eq (keel_directory_size (dir), 1);

    //  A rejected replacement leaves the old entry alone
    ck_assert_int_eq (keel_directory_set (dir, "b", "inproc://b", NULL), 0);
    ck_assert_int_eq (keel_directory_set (dir, "b", "bogus", NULL), -1);
    ck_assert_str_eq (keel_directory_endpoint (dir, "b"), "inproc://b");
    keel_directory_destroy (&dir);
}
END_TEST

START_TEST (test_names_sorted)
{
    keel_directory_t *dir = keel_directory_new ();
    zlistx_t *names = keel_directory_names (dir);
    ck_assert_ptr_nonnull (names);
    ck_assert_uint_eq (zlistx_size (names), 0);
    zlistx_destroy (&names);

    const char *input[] = {"saga",    "breaker", "registry", "Zeta",
                           "gateway", "alpha",   "registry2"};
    const char *sorted[] = {"Zeta",     "alpha",     "breaker", "gateway",
                            "registry", "registry2", "saga"};
    for (size_t i = 0; i < 7; i++)
        ck_assert_int_eq (
            keel_directory_set (dir, input[i], "inproc://x", NULL), 0);
    names = keel_directory_names (dir);
    ck_assert_uint_eq (zlistx_size (names), 7);
    size_t i = 0;
    for (const char *name = (const char *)zlistx_first (names); name;
         name = (const char *)zlistx_next (names))
        ck_assert_str_eq (name, sorted[i++]);
    ck_assert_uint_eq (i, 7);

    //  The list is the caller's: it outlives changes to the directory
    keel_directory_remove (dir, "saga");
    keel_directory_destroy (&dir);
    ck_assert_str_eq ((const char *)zlistx_last (names), "saga");
    zlistx_destroy (&names);
}
END_TEST

START_TEST (test_load_both_forms)
{
    keel_config_t *config =
        s_config ("node\n"
                  "    name = alpha\n"
                  "directory\n"
                  "    registry = tcp://10.0.0.2:7700\n"
                  "    saga\n"
                  "        endpoint = tcp://10.0.0.3:7700\n"
                  "        events = tcp://10.0.0.3:7701\n"
                  "    # a comment between entries\n"
                  "    breaker\n"
                  "        endpoint = 'inproc://breaker'\n"
                  "    gateway = ipc:///run/keel/gateway   # trailing\n");
    keel_directory_t *dir = keel_directory_new ();
    //  Existing entries stay unless replaced
    keel_directory_set (dir, "registry", "inproc://old", "inproc://old-ev");
    keel_directory_set (dir, "local", "inproc://local", NULL);

    ck_assert_int_eq (keel_directory_load (dir, config, "directory"), 0);
    ck_assert_uint_eq (keel_directory_size (dir), 5);
    ck_assert_str_eq (keel_directory_endpoint (dir, "registry"),
                      "tcp://10.0.0.2:7700");
    ck_assert_ptr_null (keel_directory_events (dir, "registry"));
    ck_assert_str_eq (keel_directory_endpoint (dir, "saga"),
                      "tcp://10.0.0.3:7700");
    ck_assert_str_eq (keel_directory_events (dir, "saga"),
                      "tcp://10.0.0.3:7701");
    ck_assert_str_eq (keel_directory_endpoint (dir, "breaker"),
                      "inproc://breaker");
    ck_assert_ptr_null (keel_directory_events (dir, "breaker"));
    ck_assert_str_eq (keel_directory_endpoint (dir, "gateway"),
                      "ipc:///run/keel/gateway");
    ck_assert_str_eq (keel_directory_endpoint (dir, "local"), "inproc://local");

    //  An absent section adds nothing and is not an error
    ck_assert_int_eq (keel_directory_load (dir, config, "nowhere"), 0);
    ck_assert_uint_eq (keel_directory_size (dir), 5);
    keel_directory_destroy (&dir);
    keel_config_destroy (&config);

    //  The root as the section
    config = s_config ("a = inproc://a\nb\n    endpoint = inproc://b\n");
    dir = keel_directory_new ();
    ck_assert_int_eq (keel_directory_load (dir, config, ""), 0);
    ck_assert_uint_eq (keel_directory_size (dir), 2);
    ck_assert_str_eq (keel_directory_endpoint (dir, "b"), "inproc://b");
    keel_directory_destroy (&dir);
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_load_errors)
{
    struct {
        const char *text;
        const char *error;
    } cases[] = {
        {"directory\n"
         "    registry = tcp://10.0.0.2:7700\n"
         "    saga = tcp://10.0.0.3\n",
         "dir.cfg:3: key 'directory/saga': invalid endpoint "
         "'tcp://10.0.0.3' (expected inproc://NAME, ipc://PATH or "
         "tcp://HOST:PORT)"},
        {"directory\n"
         "    saga\n"
         "        endpoint = tcp://10.0.0.3:7700\n"
         "        event = tcp://10.0.0.3:7701\n",
         "dir.cfg:4: key 'directory/saga/event': unknown key (expected one "
         "of: endpoint, events, key)"},
        {"directory\n"
         "    saga\n"
         "        events = tcp://10.0.0.3:7701\n",
         "dir.cfg:2: key 'directory/saga': missing 'endpoint'"},
        {"directory\n"
         "    saga\n"
         "        endpoint = tcp://10.0.0.3:7700\n"
         "        events = tcp://10.0.0.3:77010\n",
         "dir.cfg:4: key 'directory/saga/events': invalid endpoint "
         "'tcp://10.0.0.3:77010' (expected inproc://NAME, ipc://PATH or "
         "tcp://HOST:PORT)"},
        {"directory\n"
         "    saga\n"
         "        endpoint = bogus\n",
         "dir.cfg:3: key 'directory/saga/endpoint': invalid endpoint 'bogus' "
         "(expected inproc://NAME, ipc://PATH or tcp://HOST:PORT)"},
        {"directory\n"
         "    registry\n",
         "dir.cfg:2: key 'directory/registry': no endpoint (give 'name = "
         "ENDPOINT', or a section with 'endpoint' and optionally 'events')"},
        {"directory\n"
         "    saga = inproc://saga\n"
         "        events = inproc://saga-events\n",
         "dir.cfg:2: key 'directory/saga': has both a value and a section "
         "(give one or the other)"},
        {"directory\n"
         "    saga = inproc://a\n"
         "    registry = inproc://r\n"
         "    saga = inproc://b\n",
         "dir.cfg:4: key 'directory/saga': name given twice (first at line "
         "2)"},
        {"directory\n"
         "    saga\n"
         "        endpoint = inproc://a\n"
         "        endpoint = inproc://b\n",
         "dir.cfg:4: key 'directory/saga/endpoint': given twice (first at "
         "line 3)"},
        {"directory\n"
         "    saga\n"
         "        endpoint\n"
         "            host = x\n",
         "dir.cfg:3: key 'directory/saga/endpoint': expected an endpoint, "
         "found a section"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        keel_config_t *config = s_config (cases[i].text);
        keel_directory_t *dir = keel_directory_new ();
        keel_directory_set (dir, "keep", "inproc://keep", NULL);
        ck_assert_msg (keel_directory_load (dir, config, "directory") == -1,
                       "case %zu loaded", i);
        ck_assert_msg (streq (keel_config_error (config), cases[i].error),
                       "case %zu: got '%s'", i, keel_config_error (config));
        //  All or nothing: the good entries before the bad one are not added
        ck_assert_uint_eq (keel_directory_size (dir), 1);
        ck_assert_str_eq (keel_directory_endpoint (dir, "keep"),
                          "inproc://keep");
        keel_directory_destroy (&dir);
        keel_config_destroy (&config);
    }
}
END_TEST

START_TEST (test_load_long_name)
{
    char name[KEEL_DIRECTORY_MAX_NAME + 2];
    memset (name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    char *text = zsys_sprintf ("directory\n    %s = inproc://x\n", name);
    keel_config_t *config = s_config (text);
    keel_directory_t *dir = keel_directory_new ();
    ck_assert_int_eq (keel_directory_load (dir, config, "directory"), -1);
    char *expected = zsys_sprintf (
        "dir.cfg:2: key 'directory/%s': name longer than 128 characters", name);
    ck_assert_str_eq (keel_config_error (config), expected);
    free (expected);
    free (text);
    keel_directory_destroy (&dir);
    keel_config_destroy (&config);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("keel_directory");
    TCase *tc = tcase_create ("table");
    tcase_add_test (tc, test_set_get_replace_remove);
    tcase_add_test (tc, test_set_rejects);
    tcase_add_test (tc, test_names_sorted);
    suite_add_tcase (suite, tc);
    tc = tcase_create ("load");
    tcase_add_test (tc, test_load_both_forms);
    tcase_add_test (tc, test_load_errors);
    tcase_add_test (tc, test_load_long_name);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
