/*  fuzz_config.c - a config file, loaded as keel loads one, and every
    section keel reads from it:

        text --keel_config_load_string--> config
                 +--> every key through every typed accessor
                 +--> keel_routes_load ("gateway")       route table
                 +--> keel_auth_load ("gateway/auth")    keys, API keys
                 +--> keel_saga_config_load ("saga")     saga definitions
                 +--> keel_directory_load ("directory")  names -> endpoints

    The file is named as if it sat in tests/data/jwt/, so that a
    `public_key_file = rsa_public.pem` finds the test keys there.
*/
#include "fuzz.h"

#include "jwt.h"
#include "keel_config.h"
#include "keel_directory.h"
#include "routes.h"
#include "saga_config.h"
#include "saga_machine.h"

#include <string.h>

#define S_NOW        1700000000
#define S_MAX_VISITS 4096 //  keys looked at per input
#define S_MAX_DEPTH  16

static keel_route_match_t s_match; //  large: one for the whole run

static void
s_key (keel_config_t *config, const char *path)
{
    const char *text = NULL;
    int64_t number = 0;
    bool flag = false;
    keel_config_line (config, path);
    if (keel_config_string (config, path, NULL, &text) == 0 && text)
        keel_endpoint_valid (text);
    keel_config_int (config, path, -1000, 1000, 0, &number);
    keel_config_int (config, path, INT64_MIN, INT64_MAX, 0, &number);
    keel_config_bool (config, path, false, &flag);
    keel_config_duration_ms (config, path, 0, &number);
    keel_config_size (config, path, 0, &number);
    keel_config_endpoint (config, path, NULL, &text);
}

//  Every key under `node`, by path and through a scope.
static void
s_walk (keel_config_t *config, zconfig_t *node, const char *path, int depth,
        int *visits)
{
    static const char *allowed[] = {"name", "bus", "events", "route",
                                    "auth", "key", "step",   NULL};
    if (depth > S_MAX_DEPTH)
        return;
    keel_config_check_keys (config, path, allowed);
    for (zconfig_t *child = zconfig_child (node);
         child && (*visits)++ < S_MAX_VISITS; child = zconfig_next (child)) {
        const char *name = zconfig_name (child);
        char *child_path = *path
                               ? zsys_sprintf ("%s/%s", path, name ? name : "")
                               : strdup (name ? name : "");
        if (!child_path)
            return;
        keel_config_node_line (config, child);
        s_key (config, child_path);
        zconfig_t *previous = keel_config_scope (config, node);
        s_key (config, name ? name : "");
        keel_config_scope (config, previous);
        if (zconfig_child (child))
            s_walk (config, child, child_path, depth + 1, visits);
        free (child_path);
    }
}

static int
s_route (const keel_route_t *route, void *arg)
{
    (void)arg;
    KEEL_FUZZ_CHECK (keel_route_name (route) && keel_route_path (route));
    keel_route_host (route);
    keel_route_kind_name (keel_route_kind (route));
    char allow[KEEL_ROUTES_ALLOW_MAX];
    keel_routes_methods_format (keel_route_methods (route), allow,
                                sizeof allow);
    keel_route_target_type_name (keel_route_target (route));
    keel_route_target_name (route);
    keel_route_policy_name (keel_route_policy (route));
    keel_route_timeout_ms (route);
    keel_route_retries (route);
    keel_route_retry_budget (route);
    keel_route_auth_name (keel_route_auth (route));
    const char *const *scopes = keel_route_scopes (route);
    const char *const *roles = keel_route_roles (route);
    KEEL_FUZZ_CHECK (scopes && roles);
    keel_route_priority (route);
    for (size_t i = 0; i < keel_route_param_count (route); i++)
        KEEL_FUZZ_CHECK (keel_route_param_name (route, i) != NULL);
    keel_route_line (route);
    return 0;
}

static void
s_routes (keel_config_t *config)
{
    keel_routes_t *routes = keel_routes_load (config, "gateway");
    if (!routes) {
        KEEL_FUZZ_CHECK (keel_config_error (config) != NULL);
        return;
    }
    keel_routes_each (routes, s_route, NULL);
    for (size_t i = 0; i < keel_routes_size (routes); i++) {
        const keel_route_t *route = keel_routes_at (routes, i);
        KEEL_FUZZ_CHECK (keel_route_index (route) == i);
        KEEL_FUZZ_CHECK (keel_routes_find (routes, keel_route_name (route)) ==
                         route);
    }
    static const char *const requests[][3] = {
        {NULL, "GET", "/"},
        {"api.example.com", "GET", "/users/42"},
        {"a.example.com:8080", "POST", "/orders"},
        {NULL, "PUT", "/a/b/c/d"},
        {"x", "DELETE", "/users/%7Ebob/files/x"},
        {NULL, "HEAD", "/static/"},
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++)
        keel_routes_match (routes, requests[i][0], requests[i][1],
                           requests[i][2], &s_match);
    keel_routes_destroy (&routes);
}

static void
s_auth (keel_config_t *config)
{
    keel_auth_t *auth = keel_auth_new ();
    if (!auth)
        return;
    if (keel_auth_load (auth, config, "gateway/auth") == 0) {
        //  A token minted with a loaded key verifies with the same keys.
        char *token = keel_auth_mint (auth, NULL, "fuzz", NULL, 60, S_NOW);
        if (token) {
            keel_identity_t identity = {0};
            keel_auth_reason_t reason = KEEL_AUTH_OK;
            keel_auth_check_token (auth, token, S_NOW, &identity, &reason);
            KEEL_FUZZ_CHECK (reason == KEEL_AUTH_OK ||
                             reason == KEEL_AUTH_INTERNAL);
            keel_identity_clear (&identity);
            free (token);
        }
        keel_identity_t identity = {0};
        keel_auth_check_api_key (auth, "k-123", &identity, NULL);
        keel_identity_clear (&identity);
    } else
        KEEL_FUZZ_CHECK (keel_config_error (config) != NULL);
    keel_auth_destroy (&auth);
}

static void
s_sagas (keel_config_t *config)
{
    Keel__SagaDefinition **defs = NULL;
    int n = keel_saga_config_load (config, "saga", &defs);
    if (n < 0) {
        KEEL_FUZZ_CHECK (keel_config_error (config) != NULL);
        return;
    }
    for (int i = 0; i < n; i++) {
        //  What the loader returns passed the check, defaults filled.
        KEEL_FUZZ_CHECK (keel_saga_def_check (defs[i]) == NULL);
        keel__saga_definition__free_unpacked (defs[i], NULL);
    }
    free (defs);
}

static void
s_directory (keel_config_t *config)
{
    keel_directory_t *directory = keel_directory_new ();
    if (!directory)
        return;
    if (keel_directory_load (directory, config, "directory") == 0) {
        zlistx_t *names = keel_directory_names (directory);
        for (const char *name = names ? (const char *)zlistx_first (names)
                                      : NULL;
             name; name = (const char *)zlistx_next (names)) {
            const char *endpoint = keel_directory_endpoint (directory, name);
            KEEL_FUZZ_CHECK (endpoint && keel_endpoint_valid (endpoint));
            keel_directory_events (directory, name);
        }
        zlistx_destroy (&names);
    } else
        KEEL_FUZZ_CHECK (keel_directory_size (directory) == 0);
    keel_directory_destroy (&directory);
}

int
KEEL_FUZZ_ENTRY (config) (const uint8_t *data, size_t size)
{
    static char name[4096];
    if (!*name)
        snprintf (name, sizeof name, "%s/tests/data/jwt/fuzz.cfg",
                  keel_fuzz_source_dir ());
    char *text = (char *)malloc (size + 1);
    if (!text)
        return 0;
    memcpy (text, data, size);
    text[size] = 0;
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, name, &error);
    free (text);
    KEEL_FUZZ_CHECK ((config == NULL) == (error != NULL));
    free (error);
    if (!config)
        return 0;
    KEEL_FUZZ_CHECK (keel_config_error (config) == NULL);
    int visits = 0;
    s_walk (config, keel_config_root (config), "", 0, &visits);
    s_routes (config);
    s_auth (config);
    s_sagas (config);
    s_directory (config);
    keel_config_destroy (&config);
    return 0;
}
