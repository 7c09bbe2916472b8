/*  test_saga_config.c - saga definitions from config files. */
#include "testutil.h"
#include "saga_config.h"
#include "saga_machine.h"

static keel_config_t *
s_load (const char *text)
{
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "s.cfg", &error);
    ck_assert_msg (config != NULL, "%s", error ? error : "?");
    return config;
}

static void
s_free (Keel__SagaDefinition **defs, int n)
{
    for (int i = 0; i < n; i++)
        keel__saga_definition__free_unpacked (defs[i], NULL);
    free (defs);
}

START_TEST (test_load)
{
    keel_config_t *config =
        s_load ("saga\n"
                "    log = x.db\n"
                "    definition\n"
                "        name = order\n"
                "        version = 3\n"
                "        step\n"
                "            name = create\n"
                "            service = orders\n"
                "            action = create\n"
                "            compensation = cancel\n"
                "            timeout = 2s\n"
                "            max_attempts = 4\n"
                "            initial_interval = 50ms\n"
                "            backoff = 1.5\n"
                "            max_interval = 1s\n"
                "            jitter = 0\n"
                "            non_retryable = \"CONFLICT, BAD_REQUEST\"\n"
                "            compensation_attempts = 7\n"
                "        step\n"
                "            name = a\n"
                "            service = s\n"
                "            action = a\n"
                "            group = g\n"
                "            pivot = true\n"
                "        step\n"
                "            name = b\n"
                "            service = s\n"
                "            action = b\n"
                "            group = g\n"
                "    definition\n"
                "        name = other\n"
                "        step\n"
                "            name = only\n"
                "            service = x\n"
                "            action = go\n");
    Keel__SagaDefinition **defs = NULL;
    int n = keel_saga_config_load (config, "saga", &defs);
    ck_assert_msg (n == 2, "%s", keel_config_error (config));
    Keel__SagaDefinition *d = defs[0];
    ck_assert_str_eq (d->name, "order");
    ck_assert_uint_eq (d->version, 3);
    ck_assert_uint_eq (d->n_steps, 3);
    Keel__SagaStep *s = d->steps[0];
    ck_assert_str_eq (s->service, "orders");
    ck_assert_str_eq (s->compensation, "cancel");
    ck_assert_uint_eq (s->timeout_ms, 2000);
    ck_assert_uint_eq (s->retry->max_attempts, 4);
    ck_assert_uint_eq (s->retry->initial_interval_ms, 50);
    ck_assert (s->retry->backoff == 1.5);
    ck_assert_uint_eq (s->retry->max_interval_ms, 1000);
    ck_assert (s->retry->jitter < 1e-6); //  none
    ck_assert_uint_eq (s->retry->n_non_retryable, 2);
    ck_assert_str_eq (s->retry->non_retryable[0], "CONFLICT");
    ck_assert_str_eq (s->retry->non_retryable[1], "BAD_REQUEST");
    ck_assert_uint_eq (s->compensation_retry->max_attempts, 7);
    ck_assert (d->steps[1]->pivot);
    ck_assert_str_eq (d->steps[2]->group, "g");
    //  Defaults.
    ck_assert_str_eq (defs[1]->name, "other");
    ck_assert_uint_eq (defs[1]->version, 1);
    ck_assert_uint_eq (defs[1]->steps[0]->timeout_ms, 5000);
    ck_assert_uint_eq (defs[1]->steps[0]->retry->max_attempts, 3);
    ck_assert_ptr_null (keel_saga_def_check (defs[1]));
    s_free (defs, n);
    keel_config_destroy (&config);

    //  No definitions at all.
    config = s_load ("saga\n    log = x.db\n");
    ck_assert_int_eq (keel_saga_config_load (config, "saga", &defs), 0);
    ck_assert_ptr_null (defs);
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_errors)
{
    struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"saga\n    definition\n        name = a\n", ":2:"},
        {"saga\n    definition\n        step\n            name = x\n"
         "            service = s\n            action = a\n",
         "missing 'name'"},
        {"saga\n    definition\n        name = a\n        step\n"
         "            name = x\n            action = a\n",
         "needs a name, a service and an action"},
        {"saga\n    definition\n        name = a\n        step\n"
         "            name = x\n            service = s\n"
         "            action = a\n            colour = red\n",
         ":8: key 'saga/definition/step/colour'"},
        {"saga\n    definition\n        name = a\n        step\n"
         "            name = x\n            service = s\n"
         "            action = a\n            backoff = 0.5\n",
         ":8: key 'saga/definition/step/backoff'"},
        {"saga\n    definition\n        name = a\n        step\n"
         "            name = x\n            service = s\n"
         "            action = a\n        step\n            name = x\n"
         "            service = s\n            action = b\n",
         "s.cfg:2:"},
        {"saga\n    definition\n        name = a\n        step\n"
         "            name = x\n            service = s\n"
         "            action = a\n    definition\n        name = a\n"
         "        step\n            name = y\n            service = s\n"
         "            action = a\n",
         "defined twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        keel_config_t *config = s_load (cases[i].text);
        Keel__SagaDefinition **defs = NULL;
        ck_assert_int_eq (keel_saga_config_load (config, "saga", &defs), -1);
        ck_assert_ptr_null (defs);
        const char *error = keel_config_error (config);
        ck_assert_msg (error && strstr (error, cases[i].expect),
                       "case %zu: '%s' lacks '%s'", i, error ? error : "",
                       cases[i].expect);
        keel_config_destroy (&config);
    }
}
END_TEST

int
main (void)
{
    Suite *s = suite_create ("saga_config");
    TCase *tc = tcase_create ("core");
    tcase_add_test (tc, test_load);
    tcase_add_test (tc, test_errors);
    suite_add_tcase (s, tc);
    return testutil_run (s);
}
