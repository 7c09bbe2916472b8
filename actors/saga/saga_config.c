/*  saga_config.c - saga definitions from config. See saga_config.h. */
#include "saga_config.h"
#include "saga_machine.h"

#include <czmq.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *
s_dup (const char *text)
{
    return strdup (text ? text : "");
}

//  A number with a fraction ("2", "0.25") in [min, max].
static int
s_double (keel_config_t *config, const char *key, double min, double max,
          double default_value, double *value_p)
{
    const char *text = NULL;
    if (keel_config_string (config, key, NULL, &text) == -1)
        return -1;
    if (!text) {
        *value_p = default_value;
        return 0;
    }
    char *end = NULL;
    double value = strtod (text, &end);
    if (!*text || *end || !isfinite (value) || value < min || value > max)
        return keel_config_fail (config, key, "expected a number from %g to %g",
                                 min, max);
    *value_p = value;
    return 0;
}

//  Split "A B,C" into policy->non_retryable.
static int
s_names (const char *text, Keel__RetryPolicy *policy)
{
    char *copy = strdup (text);
    if (!copy)
        return -1;
    size_t cap = strlen (text) / 2 + 2;
    policy->non_retryable = (char **)calloc (cap, sizeof (char *));
    if (!policy->non_retryable) {
        free (copy);
        return -1;
    }
    char *save = NULL;
    for (char *tok = strtok_r (copy, " ,", &save); tok;
         tok = strtok_r (NULL, " ,", &save))
        policy->non_retryable[policy->n_non_retryable++] = strdup (tok);
    free (copy);
    return 0;
}

static Keel__RetryPolicy *
s_policy_new (void)
{
    Keel__RetryPolicy *policy =
        (Keel__RetryPolicy *)malloc (sizeof (Keel__RetryPolicy));
    if (policy)
        keel__retry_policy__init (policy);
    return policy;
}

static int
s_step_load (keel_config_t *config, zconfig_t *node, Keel__SagaStep *step)
{
    static const char *keys[] = {"name",
                                 "service",
                                 "action",
                                 "compensation",
                                 "timeout",
                                 "pivot",
                                 "group",
                                 "max_attempts",
                                 "initial_interval",
                                 "backoff",
                                 "max_interval",
                                 "jitter",
                                 "non_retryable",
                                 "compensation_attempts",
                                 NULL};
    keel_config_scope (config, node);
    if (keel_config_check_keys (config, "", keys) == -1)
        return -1;
    const char *name, *service, *action, *compensation, *group, *names;
    if (keel_config_string (config, "name", NULL, &name) == -1 ||
        keel_config_string (config, "service", NULL, &service) == -1 ||
        keel_config_string (config, "action", NULL, &action) == -1 ||
        keel_config_string (config, "compensation", "", &compensation) == -1 ||
        keel_config_string (config, "group", "", &group) == -1 ||
        keel_config_string (config, "non_retryable", "", &names) == -1)
        return -1;
    if (!name || !service || !action)
        return keel_config_fail_node (
            config, node, "a step needs a name, a service and an action");
    step->name = s_dup (name);
    step->service = s_dup (service);
    step->action = s_dup (action);
    step->compensation = s_dup (compensation);
    step->group = s_dup (group);
    int64_t v;
    bool pivot;
    if (keel_config_duration_ms (config, "timeout", 5000, &v) == -1)
        return -1;
    if (v < 1 || v > 86400000)
        return keel_config_fail (config, "timeout", "expected 1ms to 24h");
    step->timeout_ms = (uint32_t)v;
    if (keel_config_bool (config, "pivot", false, &pivot) == -1)
        return -1;
    step->pivot = pivot;
    step->retry = s_policy_new ();
    step->compensation_retry = s_policy_new ();
    if (!step->retry || !step->compensation_retry)
        return keel_config_fail_node (config, node, "out of memory");
    Keel__RetryPolicy *r = step->retry;
    if (keel_config_int (config, "max_attempts", 1, 1000, 3, &v) == -1)
        return -1;
    r->max_attempts = (uint32_t)v;
    if (keel_config_duration_ms (config, "initial_interval", 100, &v) == -1)
        return -1;
    r->initial_interval_ms = (uint32_t)(v > 86400000 ? 86400000 : v);
    if (keel_config_duration_ms (config, "max_interval", 10000, &v) == -1)
        return -1;
    r->max_interval_ms = (uint32_t)(v > 86400000 ? 86400000 : v);
    if (s_double (config, "backoff", 1, 100, 2, &r->backoff) == -1 ||
        s_double (config, "jitter", 0, 1, 0.2, &r->jitter) == -1)
        return -1;
    //  On the wire 0 means "the default"; none at all is a jitter too small
    //  to matter.
    if (r->jitter == 0)
        r->jitter = 1e-9;
    if (*names && s_names (names, r) == -1)
        return keel_config_fail_node (config, node, "out of memory");
    Keel__RetryPolicy *c = step->compensation_retry;
    if (keel_config_int (config, "compensation_attempts", 1, 1000, 5, &v) == -1)
        return -1;
    c->max_attempts = (uint32_t)v;
    c->initial_interval_ms = r->initial_interval_ms;
    c->max_interval_ms = r->max_interval_ms;
    c->backoff = r->backoff;
    c->jitter = r->jitter;
    return 0;
}

static int
s_definition_load (keel_config_t *config, zconfig_t *node,
                   Keel__SagaDefinition *def)
{
    static const char *keys[] = {"name", "version", "step", NULL};
    keel_config_scope (config, node);
    if (keel_config_check_keys (config, "", keys) == -1)
        return -1;
    const char *name;
    int64_t version;
    if (keel_config_string (config, "name", NULL, &name) == -1 ||
        keel_config_int (config, "version", 1, 1000000, 1, &version) == -1)
        return -1;
    if (!name)
        return keel_config_fail_node (config, node, "missing 'name'");
    def->name = s_dup (name);
    def->version = (uint32_t)version;
    size_t n = 0;
    for (zconfig_t *c = zconfig_child (node); c; c = zconfig_next (c))
        n += streq (zconfig_name (c), "step");
    if (n == 0)
        return keel_config_fail_node (config, node, "a saga needs a step");
    if (n > KEEL_SAGA_MAX_STEPS)
        return keel_config_fail_node (config, node, "more than %d steps",
                                      KEEL_SAGA_MAX_STEPS);
    def->steps = (Keel__SagaStep **)calloc (n, sizeof (Keel__SagaStep *));
    if (!def->steps)
        return keel_config_fail_node (config, node, "out of memory");
    for (zconfig_t *c = zconfig_child (node); c; c = zconfig_next (c)) {
        if (!streq (zconfig_name (c), "step"))
            continue;
        Keel__SagaStep *step = (Keel__SagaStep *)malloc (sizeof *step);
        if (!step)
            return keel_config_fail_node (config, c, "out of memory");
        keel__saga_step__init (step);
        def->steps[def->n_steps++] = step;
        if (s_step_load (config, c, step) == -1)
            return -1;
    }
    const char *why = keel_saga_def_check (def);
    if (why)
        return keel_config_fail_node (config, node, "%s", why);
    if (keel_saga_def_defaults (def) == -1)
        return keel_config_fail_node (config, node, "out of memory");
    return 0;
}

int
keel_saga_config_load (keel_config_t *config, const char *section,
                       Keel__SagaDefinition ***defs_p)
{
    *defs_p = NULL;
    zconfig_t *root = zconfig_locate (keel_config_root (config), section);
    size_t n = 0;
    for (zconfig_t *c = root ? zconfig_child (root) : NULL; c;
         c = zconfig_next (c))
        n += streq (zconfig_name (c), "definition");
    if (n == 0)
        return 0;
    Keel__SagaDefinition **defs =
        (Keel__SagaDefinition **)calloc (n, sizeof (Keel__SagaDefinition *));
    if (!defs)
        return keel_config_fail_node (config, root, "out of memory");
    size_t count = 0;
    int rc = 0;
    zconfig_t *previous = keel_config_scope (config, NULL);
    for (zconfig_t *c = zconfig_child (root); c && rc == 0;
         c = zconfig_next (c)) {
        if (!streq (zconfig_name (c), "definition"))
            continue;
        Keel__SagaDefinition *def =
            (Keel__SagaDefinition *)malloc (sizeof (Keel__SagaDefinition));
        if (!def) {
            rc = keel_config_fail_node (config, c, "out of memory");
            break;
        }
        keel__saga_definition__init (def);
        defs[count++] = def;
        rc = s_definition_load (config, c, def);
        for (size_t i = 0; rc == 0 && i + 1 < count; i++)
            if (streq (defs[i]->name, def->name) &&
                defs[i]->version == def->version)
                rc = keel_config_fail_node (config, c,
                                            "saga '%s' version %u is defined "
                                            "twice",
                                            def->name, def->version);
    }
    keel_config_scope (config, previous);
    if (rc == -1) {
        for (size_t i = 0; i < count; i++)
            keel__saga_definition__free_unpacked (defs[i], NULL);
        free (defs);
        return -1;
    }
    *defs_p = defs;
    return (int)count;
}
