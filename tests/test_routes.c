/*  test_routes.c - the gateway's route table: loading and every config
    error with its line, exact / prefix / template matching, parameter
    decoding, each priority tie-breaker, 405 with Allow, hosts, bad paths,
    10k routes, and a seeded randomized cross-check against a brute-force
    linear matcher written here from the rules in routes.h. */
#include "routes.h"
#include "testutil.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define FOUND       KEEL_ROUTES_FOUND
#define NO_ROUTE    KEEL_ROUTES_NO_ROUTE
#define NOT_ALLOWED KEEL_ROUTES_METHOD_NOT_ALLOWED
#define BAD_PATH    KEEL_ROUTES_BAD_PATH
#define TOO_LONG    KEEL_ROUTES_TOO_LONG

// ---------------------------------------------------------------------------
//  Helpers

//  A growing string.
typedef struct {
    char *text;
    size_t len, cap;
} s_text_t;

static void
s_append (s_text_t *buf, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *line = zsys_vprintf (format, args);
    va_end (args);
    ck_assert_ptr_nonnull (line);
    size_t n = strlen (line);
    if (buf->len + n + 1 > buf->cap) {
        buf->cap = (buf->len + n + 1) * 2;
        buf->text = (char *)realloc (buf->text, buf->cap);
        ck_assert_ptr_nonnull (buf->text);
    }
    memcpy (buf->text + buf->len, line, n + 1);
    buf->len += n;
    free (line);
}

//  Load `text` as "test.cfg" and its routes under "gateway"; the test fails
//  if either fails. *config_p gets the config (caller destroys).
static keel_routes_t *
s_load_with (const char *text, keel_config_t **config_p)
{
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "test.cfg", &error);
    ck_assert_msg (config != NULL, "config: %s", error ? error : "?");
    keel_routes_t *routes = keel_routes_load (config, "gateway");
    ck_assert_msg (routes != NULL, "routes: %s",
                   keel_config_error (config) ? keel_config_error (config)
                                              : "?");
    *config_p = config;
    return routes;
}

//  Same, destroying the config at once (the table must not need it).
static keel_routes_t *
s_load (const char *text)
{
    keel_config_t *config;
    keel_routes_t *routes = s_load_with (text, &config);
    keel_config_destroy (&config);
    return routes;
}

//  Load `text`, expect the routes to fail with exactly `expected`.
static void
s_expect_error (const char *text, const char *expected)
{
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "test.cfg", &error);
    ck_assert_msg (config != NULL, "config: %s", error ? error : "?");
    keel_routes_t *routes = keel_routes_load (config, "gateway");
    ck_assert_msg (routes == NULL, "loaded, expected: %s", expected);
    const char *got = keel_config_error (config);
    ck_assert_ptr_nonnull (got);
    ck_assert_msg (streq (got, expected), "\n got: %s\nwant: %s", got,
                   expected);
    keel_config_destroy (&config);
}

//  Match and check the result and, when FOUND, the route's name.
static keel_route_match_t s_match; //  large: not on the stack of each test

static void
s_expect (keel_routes_t *routes, const char *host, const char *method,
          const char *path, keel_routes_result_t result, const char *name)
{
    keel_routes_result_t got =
        keel_routes_match (routes, host, method, path, &s_match);
    ck_assert_msg (got == result, "%s %s (host %s): got %s, want %s", method,
                   path, host ? host : "-", keel_routes_result_name (got),
                   keel_routes_result_name (result));
    if (result == FOUND)
        ck_assert_msg (streq (keel_route_name (s_match.route), name),
                       "%s %s (host %s): got route %s, want %s", method, path,
                       host ? host : "-", keel_route_name (s_match.route),
                       name);
    else
        ck_assert_ptr_null (s_match.route);
}

//  A one-route config: "gateway / route" with the given key lines.
static char *
s_one_route (const char *keys)
{
    return zsys_sprintf ("gateway\n    route\n%s", keys);
}

// ---------------------------------------------------------------------------
//  Loading

START_TEST (test_load_fields)
{
    const char *text = "gateway\n"                         //  1
                       "    listen = tcp://*:8080\n"       //  2 (not ours)
                       "    route\n"                       //  3
                       "        name = users\n"            //  4
                       "        host = API.Example.com.\n" //  5
                       "        path = /users/{id}\n"      //  6
                       "        methods = \"get, PUT\"\n"  //  7
                       "        target = bus:users\n"      //  8
                       "        policy = p2c\n"            //  9
                       "        timeout = 2s\n"            // 10
                       "        retries = 2\n"             // 11
                       "        retry_budget = 10%\n"      // 12
                       "        scopes = \"users:read users:write\"\n" // 13
                       "        roles = \"admin,support\"\n"           // 14
                       "        auth = jwt\n"                          // 15
                       "        priority = -3\n"                       // 16
                       "    route\n"                                   // 17
                       "        name = defaults\n"                     // 18
                       "        path = /static/*\n"                    // 19
                       "        target = http:files\n"                 // 20
                       "    route\n"                                   // 21
                       "        name = order-start\n"                  // 22
                       "        path = /orders\n"                      // 23
                       "        target = saga:order\n"                 // 24
                       "        auth = any\n"                          // 25
                       "        roles = buyer\n"                       // 26
                       "    route\n"                                   // 27
                       "        name = order.status\n"                 // 28
                       "        path = /orders/{id}/status\n"          // 29
                       "        target = saga-status:order\n"          // 30
                       "        auth = api_key\n";                     // 31
    keel_routes_t *routes = s_load (text);
    ck_assert_uint_eq (keel_routes_size (routes), 4);

    const keel_route_t *r = keel_routes_find (routes, "users");
    ck_assert_ptr_nonnull (r);
    ck_assert_str_eq (keel_route_name (r), "users");
    ck_assert_str_eq (keel_route_host (r), "api.example.com");
    ck_assert_str_eq (keel_route_path (r), "/users/{id}");
    ck_assert_int_eq (keel_route_kind (r), KEEL_ROUTE_TEMPLATE);
    ck_assert_uint_eq (keel_route_methods (r),
                       KEEL_ROUTE_GET | KEEL_ROUTE_HEAD | KEEL_ROUTE_PUT);
    ck_assert_int_eq (keel_route_target (r), KEEL_ROUTE_TARGET_BUS);
    ck_assert_str_eq (keel_route_target_name (r), "users");
    ck_assert_int_eq (keel_route_policy (r), KEEL_ROUTE_POLICY_P2C);
    ck_assert_int_eq (keel_route_timeout_ms (r), 2000);
    ck_assert_int_eq (keel_route_retries (r), 2);
    ck_assert_int_eq (keel_route_retry_budget (r), 10);
    ck_assert_int_eq (keel_route_auth (r), KEEL_ROUTE_AUTH_JWT);
    const char *const *scopes = keel_route_scopes (r);
    ck_assert_str_eq (scopes[0], "users:read");
    ck_assert_str_eq (scopes[1], "users:write");
    ck_assert_ptr_null (scopes[2]);
    const char *const *roles = keel_route_roles (r);
    ck_assert_str_eq (roles[0], "admin");
    ck_assert_str_eq (roles[1], "support");
    ck_assert_ptr_null (roles[2]);
    ck_assert_int_eq (keel_route_priority (r), -3);
    ck_assert_uint_eq (keel_route_param_count (r), 1);
    ck_assert_str_eq (keel_route_param_name (r, 0), "id");
    ck_assert_int_eq (keel_route_line (r), 3);

    r = keel_routes_find (routes, "defaults");
    ck_assert_ptr_null (keel_route_host (r));
    ck_assert_int_eq (keel_route_kind (r), KEEL_ROUTE_PREFIX);
    ck_assert_uint_eq (keel_route_methods (r), KEEL_ROUTE_METHODS);
    ck_assert_int_eq (keel_route_target (r), KEEL_ROUTE_TARGET_HTTP);
    ck_assert_int_eq (keel_route_policy (r), KEEL_ROUTE_POLICY_ROUND_ROBIN);
    ck_assert_int_eq (keel_route_timeout_ms (r), 15000);
    ck_assert_int_eq (keel_route_retries (r), 0);
    ck_assert_int_eq (keel_route_retry_budget (r), 20);
    ck_assert_int_eq (keel_route_auth (r), KEEL_ROUTE_AUTH_NONE);
    ck_assert_ptr_null (keel_route_scopes (r)[0]);
    ck_assert_ptr_null (keel_route_roles (r)[0]);
    ck_assert_int_eq (keel_route_priority (r), 0);
    ck_assert_uint_eq (keel_route_param_count (r), 0);
    ck_assert_int_eq (keel_route_line (r), 17);

    r = keel_routes_find (routes, "order-start");
    ck_assert_int_eq (keel_route_kind (r), KEEL_ROUTE_EXACT);
    ck_assert_int_eq (keel_route_target (r), KEEL_ROUTE_TARGET_SAGA);
    ck_assert_str_eq (keel_route_target_name (r), "order");
    ck_assert_uint_eq (keel_route_methods (r), KEEL_ROUTE_POST);
    ck_assert_int_eq (keel_route_auth (r), KEEL_ROUTE_AUTH_ANY);

    r = keel_routes_find (routes, "order.status");
    ck_assert_int_eq (keel_route_target (r), KEEL_ROUTE_TARGET_SAGA_STATUS);
    ck_assert_uint_eq (keel_route_methods (r),
                       KEEL_ROUTE_GET | KEEL_ROUTE_HEAD);
    ck_assert_int_eq (keel_route_auth (r), KEEL_ROUTE_AUTH_API_KEY);

    ck_assert_ptr_null (keel_routes_find (routes, "nope"));
    ck_assert_ptr_null (keel_routes_find (routes, NULL));
    keel_routes_destroy (&routes);
    ck_assert_ptr_null (routes);
    keel_routes_destroy (&routes);
    keel_routes_destroy (NULL);
}
END_TEST

START_TEST (test_load_empty)
{
    //  No section, a section without routes, the root as the section
    keel_routes_t *routes = s_load ("other\n    x = 1\n");
    ck_assert_uint_eq (keel_routes_size (routes), 0);
    s_expect (routes, "h", "GET", "/", NO_ROUTE, NULL);
    s_expect (routes, "h", "GET", "/..", BAD_PATH, NULL);
    keel_routes_destroy (&routes);

    routes = s_load ("gateway\n    listen = x\n");
    ck_assert_uint_eq (keel_routes_size (routes), 0);
    keel_routes_destroy (&routes);

    keel_config_t *config = keel_config_load_string (
        "route\n    name = r\n    path = /\n    target = bus:s\n", "t", NULL);
    routes = keel_routes_load (config, "");
    ck_assert_uint_eq (keel_routes_size (routes), 1);
    keel_routes_destroy (&routes);
    routes = keel_routes_load (config, "/");
    ck_assert_uint_eq (keel_routes_size (routes), 1);
    keel_routes_destroy (&routes);
    keel_config_destroy (&config);
}
END_TEST

//  One broken key in an otherwise fine route: the key's line is 6.
static void
s_expect_key_error (const char *key_line, const char *expected)
{
    char *text = zsys_sprintf ("gateway\n"                //  1
                               "    route\n"              //  2
                               "        name = r\n"       //  3
                               "        path = /a/{id}\n" //  4
                               "        target = bus:s\n" //  5
                               "%s\n",                    //  6
                               key_line);
    s_expect_error (text, expected);
    free (text);
}

//  One route with the given path (line 4) and target.
static void
s_expect_path_error (const char *path, const char *expected)
{
    char *text = zsys_sprintf ("gateway\n"
                               "    route\n"
                               "        name = r\n"
                               "        path = %s\n"
                               "        target = bus:s\n",
                               path);
    char *want = zsys_sprintf (
        "test.cfg:4: key 'gateway/route/path': path '%s'%s", path, expected);
    s_expect_error (text, want);
    free (text);
    free (want);
}

START_TEST (test_config_errors)
{
    //  Missing keys: the error names the route section's line
    char *text = s_one_route ("        name = r\n        target = bus:s\n");
    s_expect_error (text, "test.cfg:2: key 'gateway/route': missing 'path'");
    free (text);
    text = s_one_route ("        name = r\n        path = /\n");
    s_expect_error (text, "test.cfg:2: key 'gateway/route': missing 'target'");
    free (text);
    text = s_one_route ("        path = /\n        target = bus:s\n");
    s_expect_error (text, "test.cfg:2: key 'gateway/route': missing 'name'");
    free (text);
    s_expect_error ("gateway\n    route = x\n        name = r\n",
                    "test.cfg:2: key 'gateway/route': expected a section "
                    "(give the route's keys on the lines below)");

    //  The second route is the broken one: its own line, not the first's
    s_expect_error ("gateway\n"
                    "    route\n"
                    "        name = a\n"
                    "        path = /a\n"
                    "        target = bus:s\n"
                    "    route\n"
                    "        name = b\n"
                    "        path = /b\n"
                    "        target = bus:s\n"
                    "        policy = fastest\n",
                    "test.cfg:10: key 'gateway/route/policy': unknown policy "
                    "'fastest' (expected round_robin, weighted, least_conn "
                    "or p2c)");

    //  Keys
    s_expect_key_error ("        colour = red",
                        "test.cfg:6: key 'gateway/route/colour': unknown key "
                        "(expected one of: name, host, path, methods, target, "
                        "policy, timeout, retries, retry_budget, auth, "
                        "scopes, roles, priority)");
    s_expect_key_error ("        path = /b",
                        "test.cfg:6: key 'gateway/route/path': given twice "
                        "(first at line 4)");
    s_expect_key_error ("        auth\n            x = 1",
                        "test.cfg:6: key 'gateway/route/auth': expected a "
                        "value, found a section");
    s_expect_key_error ("        methods = GET FETCH",
                        "test.cfg:6: key 'gateway/route/methods': unknown "
                        "method 'FETCH' (expected GET, HEAD, POST, PUT, "
                        "DELETE, PATCH, OPTIONS, TRACE or CONNECT)");
    s_expect_key_error ("        methods = \" , \"",
                        "test.cfg:6: key 'gateway/route/methods': no methods "
                        "(leave 'methods' out to allow all)");
    s_expect_key_error ("        auth = oauth",
                        "test.cfg:6: key 'gateway/route/auth': unknown auth "
                        "'oauth' (expected none, jwt, api_key or any)");
    s_expect_key_error ("        policy = random",
                        "test.cfg:6: key 'gateway/route/policy': unknown "
                        "policy 'random' (expected round_robin, weighted, "
                        "least_conn or p2c)");
    s_expect_key_error ("        timeout = soon",
                        "test.cfg:6: key 'gateway/route/timeout': expected a "
                        "duration such as 250ms, 2s, 5m or 1h (bare number = "
                        "ms), got 'soon'");
    s_expect_key_error ("        timeout = 2d",
                        "test.cfg:6: key 'gateway/route/timeout': expected a "
                        "duration such as 250ms, 2s, 5m or 1h (bare number = "
                        "ms), got '2d'");
    s_expect_key_error ("        timeout = -1s",
                        "test.cfg:6: key 'gateway/route/timeout': duration "
                        "must not be negative, got '-1s'");
    s_expect_key_error ("        timeout = 0",
                        "test.cfg:6: key 'gateway/route/timeout': timeout "
                        "must be more than 0");
    s_expect_key_error ("        timeout = 99999999999999999999h",
                        "test.cfg:6: key 'gateway/route/timeout': duration "
                        "'99999999999999999999h' is too large");
    s_expect_key_error ("        retries = 11",
                        "test.cfg:6: key 'gateway/route/retries': 11 is out "
                        "of range (0 to 10)");
    s_expect_key_error ("        retries = two",
                        "test.cfg:6: key 'gateway/route/retries': expected an "
                        "integer, got 'two'");
    s_expect_key_error ("        retry_budget = 101%",
                        "test.cfg:6: key 'gateway/route/retry_budget': "
                        "expected a percentage 0..100 (\"20%\"), got '101%'");
    s_expect_key_error ("        retry_budget = -1",
                        "test.cfg:6: key 'gateway/route/retry_budget': "
                        "expected a percentage 0..100 (\"20%\"), got '-1'");
    s_expect_key_error ("        priority = 1000001",
                        "test.cfg:6: key 'gateway/route/priority': 1000001 is "
                        "out of range (-1000000 to 1000000)");
    s_expect_key_error ("        priority = 1.5",
                        "test.cfg:6: key 'gateway/route/priority': expected "
                        "an integer, got '1.5'");
    s_expect_key_error ("        scopes = users:read",
                        "test.cfg:6: key 'gateway/route/scopes': scopes need "
                        "auth = jwt, api_key or any (auth is none by "
                        "default)");
    s_expect_key_error ("        auth = none\n        roles = admin",
                        "test.cfg:7: key 'gateway/route/roles': roles need "
                        "auth = jwt, api_key or any (auth is none)");

    //  Names and targets
    text = s_one_route ("        name = a b\n"
                        "        path = /\n"
                        "        target = bus:s\n");
    s_expect_error (text, "test.cfg:3: key 'gateway/route/name': invalid "
                          "route name 'a b' (1..64 of A-Z a-z 0-9 _ . -)");
    free (text);
    const char *bad_targets[] = {
        "users", "grpc:users", "bus:", "bus:a b", "saga-status", ""};
    for (size_t i = 0; i < sizeof bad_targets / sizeof bad_targets[0]; i++) {
        text = zsys_sprintf ("gateway\n    route\n        name = r\n"
                             "        path = /\n"
                             "        target = \"%s\"\n",
                             bad_targets[i]);
        char *want = zsys_sprintf (
            "test.cfg:5: key 'gateway/route/target': expected bus:SERVICE, "
            "http:SERVICE, saga:NAME or saga-status:NAME (a name is 1..128 "
            "characters, no spaces), got '%s'",
            bad_targets[i]);
        s_expect_error (text, want);
        free (text);
        free (want);
    }
    s_expect_error ("gateway\n"
                    "    route\n"
                    "        name = r\n"
                    "        path = /a\n"
                    "        target = bus:s\n"
                    "    route\n"
                    "        name = q\n"
                    "        path = /q\n"
                    "        target = bus:s\n"
                    "    route\n"
                    "        name = r\n"
                    "        path = /b\n"
                    "        target = bus:s\n",
                    "test.cfg:11: key 'gateway/route/name': route name 'r' "
                    "given twice (first at line 3)");

    //  Saga targets
    text = s_one_route ("        name = r\n"
                        "        path = /orders\n"
                        "        target = saga:order\n"
                        "        methods = POST PUT\n");
    s_expect_error (text, "test.cfg:6: key 'gateway/route/methods': a saga: "
                          "target allows only POST");
    free (text);
    text = s_one_route ("        name = r\n"
                        "        path = /orders/{id}\n"
                        "        target = saga-status:order\n"
                        "        methods = POST\n");
    s_expect_error (text, "test.cfg:6: key 'gateway/route/methods': a "
                          "saga-status: target allows only GET and HEAD");
    free (text);
    text = s_one_route ("        name = r\n"
                        "        path = /orders/{order}\n"
                        "        target = saga-status:order\n");
    s_expect_error (text, "test.cfg:4: key 'gateway/route/path': a "
                          "saga-status: route needs an {id} parameter (the "
                          "saga's id)");
    free (text);
    const char *saga_free[] = {"policy = p2c", "retries = 1",
                               "retry_budget = 5"};
    for (size_t i = 0; i < 3; i++) {
        text = zsys_sprintf ("gateway\n    route\n        name = r\n"
                             "        path = /o\n"
                             "        target = saga:o\n"
                             "        %s\n",
                             saga_free[i]);
        char *key = strdup (saga_free[i]);
        *strchr (key, ' ') = 0;
        char *want = zsys_sprintf ("test.cfg:6: key 'gateway/route/%s': "
                                   "applies only to bus: and http: targets",
                                   key);
        s_expect_error (text, want);
        free (text);
        free (key);
        free (want);
    }

    //  Hosts
    const char *bad_hosts[][2] = {
        {"api.example.com:8080",
         "a host has no port here (ports are ignored when matching)"},
        {"*", "'*' alone: leave 'host' out to match any host"},
        {"a.*.com", "'*' is allowed only as the first label"},
        {"*example.com", "a wildcard host is '*.' followed by a domain"},
        {"a..com", "empty label in host"},
        {"a/b", "invalid character in host"},
        {"[::1", "expected an IPv6 address in brackets"},
        {"\"\"", "empty host (leave 'host' out to match any host)"},
    };
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        text = zsys_sprintf ("gateway\n    route\n        name = r\n"
                             "        path = /\n"
                             "        target = bus:s\n"
                             "        host = %s\n",
                             bad_hosts[i][0]);
        char *want = zsys_sprintf (
            "test.cfg:6: key 'gateway/route/host': %s: '%s'", bad_hosts[i][1],
            streq (bad_hosts[i][0], "\"\"") ? "" : bad_hosts[i][0]);
        s_expect_error (text, want);
        free (text);
        free (want);
    }
}
END_TEST

START_TEST (test_path_errors)
{
    s_expect_path_error ("users", " must start with '/'");
    s_expect_path_error ("/users/{id", ": unbalanced braces in segment 2");
    s_expect_path_error ("/users/id}", ": unbalanced braces in segment 2");
    s_expect_path_error ("/users/}id{", ": unbalanced braces in segment 2");
    s_expect_path_error ("/users/{{id}}", ": unbalanced braces in segment 2");
    s_expect_path_error ("/users/{}", ": empty parameter name '{}' in "
                                      "segment 2");
    s_expect_path_error ("/{a}/x/{a}", ": parameter 'a' given twice");
    s_expect_path_error ("/*/x", ": '*' must be the last segment");
    s_expect_path_error ("/a/*/*", ": '*' must be the last segment");
    s_expect_path_error ("/a/b*", ": '*' must be a whole segment, and the "
                                  "last");
    s_expect_path_error ("/a/**", ": '*' must be a whole segment, and the "
                                  "last");
    s_expect_path_error ("/user-{id}", ": a parameter must be a whole "
                                       "segment ('{name}') in segment 1");
    s_expect_path_error ("/{a}{b}", ": a parameter must be a whole segment "
                                    "('{name}') in segment 1");
    s_expect_path_error ("/{1d}", ": parameter name '1d' is not "
                                  "[A-Za-z_][A-Za-z0-9_]* (at most 64 "
                                  "characters)");
    s_expect_path_error ("/{a-b}", ": parameter name 'a-b' is not "
                                   "[A-Za-z_][A-Za-z0-9_]* (at most 64 "
                                   "characters)");
    s_expect_path_error ("/a//b", ": empty segment 2 ('//')");
    s_expect_path_error ("//", ": empty segment 1 ('//')");
    s_expect_path_error ("/a/../b", ": segment 2 is '.' or '..', which no "
                                    "request may contain");
    s_expect_path_error ("/a/%2E", ": segment 2 is '.' or '..', which no "
                                   "request may contain");
    s_expect_path_error ("/a%zz", ": bad % escape in segment 1 (expected %XX "
                                  "with two hex digits, not %00)");
    s_expect_path_error ("/a%2", ": bad % escape in segment 1 (expected %XX "
                                 "with two hex digits, not %00)");
    s_expect_path_error ("/a%00", ": bad % escape in segment 1 (expected %XX "
                                  "with two hex digits, not %00)");
    //  Limits
    s_text_t deep = {0};
    for (int i = 0; i < KEEL_ROUTES_MAX_SEGMENTS + 1; i++)
        s_append (&deep, "/s");
    s_expect_path_error (deep.text, " has more than 32 segments");
    free (deep.text);
    s_text_t params = {0};
    for (int i = 0; i < KEEL_ROUTES_MAX_PARAMS + 1; i++)
        s_append (&params, "/{p%d}", i);
    s_expect_path_error (params.text, " has more than 16 parameters");
    free (params.text);
}
END_TEST

START_TEST (test_path_space)
{
    //  A quoted path with a space: refused with its own message
    s_expect_error ("gateway\n    route\n        name = r\n"
                    "        path = \"/a b\"\n        target = bus:s\n",
                    "test.cfg:4: key 'gateway/route/path': path '/a b': "
                    "space, control character, '?' or '#' in segment 1");
}
END_TEST

START_TEST (test_conflicts)
{
    //  Same host, same shape (parameter names aside), same priority,
    //  overlapping methods: an error at the later route's path
    s_expect_error ("gateway\n"
                    "    route\n"
                    "        name = a\n"
                    "        path = /users/{id}\n"
                    "        methods = GET POST\n"
                    "        target = bus:s\n"
                    "    route\n"
                    "        name = b\n"
                    "        path = /users/{uid}\n"
                    "        methods = HEAD\n"
                    "        target = bus:t\n",
                    "test.cfg:9: key 'gateway/route/path': route 'b' has the "
                    "same host, path and priority as route 'a' (line 2) and "
                    "methods in common (HEAD): give one a priority, or tell "
                    "them apart");
    s_expect_error ("gateway\n"
                    "    route\n"
                    "        name = a\n"
                    "        host = X.com\n"
                    "        path = /files/*\n"
                    "        target = bus:s\n"
                    "    route\n"
                    "        name = b\n"
                    "        host = x.com.\n"
                    "        path = /files/*\n"
                    "        target = bus:t\n",
                    "test.cfg:10: key 'gateway/route/path': route 'b' has the "
                    "same host, path and priority as route 'a' (line 2) and "
                    "methods in common (GET, HEAD, POST, PUT, DELETE, PATCH, "
                    "OPTIONS, TRACE, CONNECT): give one a priority, or tell "
                    "them apart");
    //  Escapes that canonicalise alike are the same path
    s_expect_error ("gateway\n"
                    "    route\n"
                    "        name = a\n"
                    "        path = /~u/%2f\n"
                    "        target = bus:s\n"
                    "    route\n"
                    "        name = b\n"
                    "        path = /%7Eu/%2F\n"
                    "        target = bus:t\n",
                    "test.cfg:8: key 'gateway/route/path': route 'b' has the "
                    "same host, path and priority as route 'a' (line 2) and "
                    "methods in common (GET, HEAD, POST, PUT, DELETE, PATCH, "
                    "OPTIONS, TRACE, CONNECT): give one a priority, or tell "
                    "them apart");
    //  The first conflict in config order is the one reported
    s_expect_error ("gateway\n"
                    "    route\n"
                    "        name = a\n"
                    "        path = /z\n"
                    "        target = bus:s\n"
                    "    route\n"
                    "        name = b\n"
                    "        path = /y\n"
                    "        target = bus:s\n"
                    "    route\n"
                    "        name = c\n"
                    "        path = /y\n"
                    "        target = bus:s\n"
                    "    route\n"
                    "        name = d\n"
                    "        path = /z\n"
                    "        target = bus:s\n",
                    "test.cfg:12: key 'gateway/route/path': route 'c' has the "
                    "same host, path and priority as route 'b' (line 6) and "
                    "methods in common (GET, HEAD, POST, PUT, DELETE, PATCH, "
                    "OPTIONS, TRACE, CONNECT): give one a priority, or tell "
                    "them apart");

    //  Not conflicts: other methods, other priority, other host, other
    //  kind, a wildcard next to a host
    keel_routes_t *routes = s_load ("gateway\n"
                                    "    route\n"
                                    "        name = get\n"
                                    "        path = /users\n"
                                    "        methods = GET\n"
                                    "        target = bus:read\n"
                                    "    route\n"
                                    "        name = post\n"
                                    "        path = /users\n"
                                    "        methods = POST\n"
                                    "        target = bus:write\n"
                                    "    route\n"
                                    "        name = high\n"
                                    "        path = /users\n"
                                    "        priority = 1\n"
                                    "        target = bus:write\n"
                                    "    route\n"
                                    "        name = host\n"
                                    "        host = a.com\n"
                                    "        path = /users\n"
                                    "        target = bus:write\n"
                                    "    route\n"
                                    "        name = wild\n"
                                    "        host = *.a.com\n"
                                    "        path = /users\n"
                                    "        target = bus:write\n"
                                    "    route\n"
                                    "        name = slash\n"
                                    "        path = /users/\n"
                                    "        target = bus:write\n"
                                    "    route\n"
                                    "        name = prefix\n"
                                    "        path = /users/*\n"
                                    "        target = bus:write\n");
    ck_assert_uint_eq (keel_routes_size (routes), 7);
    s_expect (routes, NULL, "GET", "/users", FOUND, "high");
    s_expect (routes, "a.com", "GET", "/users", FOUND, "high");
    keel_routes_destroy (&routes);
}
END_TEST

// ---------------------------------------------------------------------------
//  Matching

static const char *s_kinds_text = "gateway\n"
                                  "    route\n"
                                  "        name = root\n"
                                  "        path = /\n"
                                  "        target = bus:root\n"
                                  "    route\n"
                                  "        name = users\n"
                                  "        path = /users\n"
                                  "        target = bus:users\n"
                                  "    route\n"
                                  "        name = users-slash\n"
                                  "        path = /users/\n"
                                  "        target = bus:users\n"
                                  "    route\n"
                                  "        name = user\n"
                                  "        path = /users/{id}\n"
                                  "        target = bus:users\n"
                                  "    route\n"
                                  "        name = me\n"
                                  "        path = /users/me\n"
                                  "        target = bus:users\n"
                                  "    route\n"
                                  "        name = post\n"
                                  "        path = /users/{uid}/posts/{pid}\n"
                                  "        target = bus:posts\n"
                                  "    route\n"
                                  "        name = files\n"
                                  "        path = /users/{uid}/files/*\n"
                                  "        target = http:files\n"
                                  "    route\n"
                                  "        name = static\n"
                                  "        path = /static/*\n"
                                  "        target = http:static\n";

START_TEST (test_exact_template_prefix)
{
    keel_routes_t *routes = s_load (s_kinds_text);
    s_expect (routes, NULL, "GET", "/", FOUND, "root");
    s_expect (routes, NULL, "GET", "/users", FOUND, "users");
    ck_assert_uint_eq (s_match.param_count, 0);
    ck_assert_ptr_null (s_match.rest);
    s_expect (routes, NULL, "GET", "/users/", FOUND, "users-slash");
    s_expect (routes, NULL, "GET", "/users/42", FOUND, "user");
    ck_assert_uint_eq (s_match.param_count, 1);
    ck_assert_str_eq (s_match.params[0].name, "id");
    ck_assert_str_eq (s_match.params[0].value, "42");
    ck_assert_str_eq (keel_route_match_param (&s_match, "id"), "42");
    ck_assert_ptr_null (keel_route_match_param (&s_match, "uid"));
    s_expect (routes, NULL, "GET", "/users/me", FOUND, "me");
    ck_assert_uint_eq (s_match.param_count, 0);
    s_expect (routes, NULL, "GET", "/users/7/posts/9", FOUND, "post");
    ck_assert_uint_eq (s_match.param_count, 2);
    ck_assert_str_eq (s_match.params[0].name, "uid");
    ck_assert_str_eq (s_match.params[0].value, "7");
    ck_assert_str_eq (s_match.params[1].name, "pid");
    ck_assert_str_eq (s_match.params[1].value, "9");
    //  A parameter matches exactly one non-empty segment
    s_expect (routes, NULL, "GET", "/users/7/posts/", NO_ROUTE, NULL);
    s_expect (routes, NULL, "GET", "/users/7/posts", NO_ROUTE, NULL);
    s_expect (routes, NULL, "GET", "/users/7/posts/9/x", NO_ROUTE, NULL);
    s_expect (routes, NULL, "GET", "/users//posts/9", NO_ROUTE, NULL);
    s_expect (routes, NULL, "GET", "/users/me/posts/9", FOUND, "post");
    ck_assert_str_eq (keel_route_match_param (&s_match, "uid"), "me");
    //  Prefix: at least one more segment; rest is raw, from the slash
    s_expect (routes, NULL, "GET", "/static", NO_ROUTE, NULL);
    s_expect (routes, NULL, "GET", "/static/", FOUND, "static");
    ck_assert_str_eq (s_match.rest, "/");
    s_expect (routes, NULL, "GET", "/static/css/a%20b.css", FOUND, "static");
    ck_assert_str_eq (s_match.rest, "/css/a%20b.css");
    ck_assert_uint_eq (s_match.param_count, 0);
    s_expect (routes, NULL, "GET", "/static//x", FOUND, "static");
    ck_assert_str_eq (s_match.rest, "//x");
    s_expect (routes, NULL, "GET", "/users/5/files/a/b", FOUND, "files");
    ck_assert_str_eq (keel_route_match_param (&s_match, "uid"), "5");
    ck_assert_str_eq (s_match.rest, "/a/b");
    s_expect (routes, NULL, "GET", "/users/5/files", NO_ROUTE, NULL);
    //  Case matters in paths; nothing matches these
    s_expect (routes, NULL, "GET", "/Users", NO_ROUTE, NULL);
    s_expect (routes, NULL, "GET", "/nope", NO_ROUTE, NULL);
    s_expect (routes, NULL, "GET", "//", NO_ROUTE, NULL);
    //  Deeper than any route
    s_expect (routes, NULL, "GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s",
              NO_ROUTE, NULL);
    s_expect (routes, NULL, "GET", "/static/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p",
              FOUND, "static");
    ck_assert_str_eq (s_match.rest, "/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p");

    //  clear forgets the result
    keel_route_match_clear (&s_match);
    ck_assert_ptr_null (s_match.route);
    ck_assert_uint_eq (s_match.param_count, 0);
    ck_assert_ptr_null (s_match.rest);

    //  match_n: a path that is not NUL-terminated
    const char *buffer = "/users/42?x=1";
    ck_assert_int_eq (
        keel_routes_match_n (routes, NULL, "GET", buffer, 9, &s_match), FOUND);
    ck_assert_str_eq (keel_route_name (s_match.route), "user");
    ck_assert_str_eq (s_match.params[0].value, "42");
    ck_assert_int_eq (
        keel_routes_match_n (routes, NULL, "GET", "/static/ab", 9, &s_match),
        FOUND);
    ck_assert_str_eq (s_match.rest, "/a");
    keel_routes_destroy (&routes);
}
END_TEST

START_TEST (test_params_decoding)
{
    keel_routes_t *routes = s_load (s_kinds_text);
    struct {
        const char *path, *value;
    } cases[] = {
        {"/users/a%20b", "a b"},
        {"/users/a%2Fb", "a/b"}, //  an escaped slash stays in its segment
        {"/users/a%2fb", "a/b"},
        {"/users/caf%C3%A9", "caf\xC3\xA9"},
        {"/users/caf\xC3\xA9", "caf\xC3\xA9"}, //  raw UTF-8 passes through
        {"/users/a+b", "a+b"},                 //  '+' is not a space here
        {"/users/%7E%7e", "~~"},
        {"/users/%25", "%"},
        {"/users/%2e%2E%2e", "..."}, //  three dots is not a dot segment
        {"/users/..a", "..a"},
        {"/users/a..b", "a..b"},
        {"/users/%3F%23", "?#"},
        {"/users/*", "*"},
        {"/users/{x}", "{x}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_expect (routes, NULL, "GET", cases[i].path, FOUND, "user");
        ck_assert_str_eq (keel_route_match_param (&s_match, "id"),
                          cases[i].value);
    }
    //  Escapes of unreserved characters match literals; others do not
    s_expect (routes, NULL, "GET", "/%75sers/me", FOUND, "me");
    s_expect (routes, NULL, "GET", "/users/%6De", FOUND, "me");
    s_expect (routes, NULL, "GET", "/%73tatic/x", FOUND, "static");
    s_expect (routes, NULL, "GET", "/users%2Fme", NO_ROUTE, NULL);
    //  Values longer than the path's other parts, many of them
    s_expect (routes, NULL, "GET", "/users/%41%42%43/posts/%44", FOUND, "post");
    ck_assert_str_eq (s_match.params[0].value, "ABC");
    ck_assert_str_eq (s_match.params[1].value, "D");
    keel_routes_destroy (&routes);

    //  Config literals are canonicalised the same way
    routes = s_load ("gateway\n"
                     "    route\n"
                     "        name = tilde\n"
                     "        path = /%7euser/a%2fb/caf\xC3\xA9/x%3a\n"
                     "        target = bus:s\n");
    s_expect (routes, NULL, "GET", "/~user/a%2Fb/caf%c3%a9/x%3A", FOUND,
              "tilde");
    s_expect (routes, NULL, "GET", "/%7Euser/a%2fb/caf\xC3\xA9/x%3a", FOUND,
              "tilde");
    //  A reserved character and its escape differ (RFC 3986 6.2.2.2)
    s_expect (routes, NULL, "GET", "/~user/a%2Fb/caf%C3%A9/x:", NO_ROUTE, NULL);
    s_expect (routes, NULL, "GET", "/~user/a/b/caf%C3%A9/x%3A", NO_ROUTE, NULL);
    keel_routes_destroy (&routes);

    //  Many parameters, each value as long as can be
    s_text_t path = {0}, request = {0};
    for (int i = 0; i < KEEL_ROUTES_MAX_PARAMS; i++) {
        s_append (&path, "/{p%d}", i);
        s_append (&request, "/");
        for (int j = 0; j < KEEL_ROUTES_MAX_PATH / KEEL_ROUTES_MAX_PARAMS - 2;
             j++)
            s_append (&request, "%c", 'a' + i);
    }
    s_append (&request, "/");
    while (request.len < KEEL_ROUTES_MAX_PATH)
        s_append (&request, "r");
    char *text = zsys_sprintf ("gateway\n    route\n        name = many\n"
                               "        path = %s/*\n"
                               "        target = bus:s\n",
                               path.text);
    routes = s_load (text);
    ck_assert_int_eq (strlen (request.text), KEEL_ROUTES_MAX_PATH);
    ck_assert_int_eq (
        keel_routes_match (routes, NULL, "GET", request.text, &s_match), FOUND);
    ck_assert_uint_eq (s_match.param_count, KEEL_ROUTES_MAX_PARAMS);
    ck_assert_uint_eq (strlen (s_match.params[15].value),
                       KEEL_ROUTES_MAX_PATH / KEEL_ROUTES_MAX_PARAMS - 2);
    ck_assert_int_eq (s_match.params[15].value[0], 'a' + 15);
    ck_assert_uint_eq (strlen (s_match.rest), 16);
    s_append (&request, "r");
    ck_assert_int_eq (
        keel_routes_match (routes, NULL, "GET", request.text, &s_match),
        TOO_LONG);
    keel_routes_destroy (&routes);
    free (text);
    free (path.text);
    free (request.text);
}
END_TEST

START_TEST (test_bad_paths)
{
    keel_routes_t *routes = s_load (s_kinds_text);
    const char *bad[] = {
        "",           "users",       "*",           "/..",
        "/.",         "/users/..",   "/users/./me", "/static/a/../b",
        "/%2e%2E/x",  "/static/%2E", "/users/a%00", "/users/%",
        "/users/%4",  "/users/%zz",  "/users/%g0",  "/users?x",
        "/users#top", "/users/a b",  "/users/\t",   "/users/\x7f",
        "/users/\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_match.route = (const keel_route_t *)1; //  overwritten
        s_expect (routes, NULL, "GET", bad[i], BAD_PATH, NULL);
    }
    //  A raw NUL, which only match_n can see
    ck_assert_int_eq (
        keel_routes_match_n (routes, NULL, "GET", "/users/a\0b", 10, &s_match),
        BAD_PATH);
    ck_assert_int_eq (
        keel_routes_match_n (routes, NULL, "GET", "/users", 0, &s_match),
        BAD_PATH);
    //  Length: up to KEEL_ROUTES_MAX_PATH bytes
    char *longest = (char *)malloc (KEEL_ROUTES_MAX_PATH + 2);
    memset (longest, 'x', KEEL_ROUTES_MAX_PATH + 1);
    memcpy (longest, "/static/", 8);
    longest[KEEL_ROUTES_MAX_PATH] = 0;
    s_expect (routes, NULL, "GET", longest, FOUND, "static");
    ck_assert_uint_eq (strlen (s_match.rest), KEEL_ROUTES_MAX_PATH - 7);
    longest[KEEL_ROUTES_MAX_PATH] = 'x';
    longest[KEEL_ROUTES_MAX_PATH + 1] = 0;
    s_expect (routes, NULL, "GET", longest, TOO_LONG, NULL);
    //  The longest canonical form: every byte escaped
    for (size_t i = 8; i < KEEL_ROUTES_MAX_PATH; i++)
        longest[i] = (char)0xFF;
    longest[KEEL_ROUTES_MAX_PATH] = 0;
    s_expect (routes, NULL, "GET", longest, FOUND, "static");
    free (longest);
    keel_routes_destroy (&routes);
}
END_TEST

// ---------------------------------------------------------------------------
//  Priority: each rule of routes.h, with the earlier rules tied

//  Load routes from "name path [key=value ...]" lines.
static keel_routes_t *
s_load_lines (const char **lines, size_t count)
{
    s_text_t text = {0};
    s_append (&text, "gateway\n");
    for (size_t i = 0; i < count; i++) {
        char *copy = strdup (lines[i]);
        char *save = NULL;
        char *name = strtok_r (copy, " ", &save);
        char *path = strtok_r (NULL, " ", &save);
        s_append (&text, "    route\n        name = %s\n        path = %s\n",
                  name, path);
        bool target = false;
        for (char *kv = strtok_r (NULL, " ", &save); kv;
             kv = strtok_r (NULL, " ", &save)) {
            char *eq = strchr (kv, '=');
            *eq = 0;
            s_append (&text, "        %s = \"%s\"\n", kv, eq + 1);
            target = target || streq (kv, "target");
        }
        if (!target)
            s_append (&text, "        target = bus:s\n");
        free (copy);
    }
    keel_routes_t *routes = s_load (text.text);
    free (text.text);
    return routes;
}

START_TEST (test_priority_explicit)
{
    const char *lines[] = {"exact /a/b", "prefix /a/* priority=1",
                           "low /x/b/c priority=-1", "any /{x}/{y}/{z}"};
    keel_routes_t *routes = s_load_lines (lines, 4);
    s_expect (routes, NULL, "GET", "/a/b", FOUND, "prefix");
    s_expect (routes, NULL, "GET", "/a/b/c", FOUND, "prefix");
    //  -1 loses to the default 0, even to a less specific route
    s_expect (routes, NULL, "GET", "/x/b/c", FOUND, "any");
    s_expect (routes, NULL, "GET", "/q/b/c", FOUND, "any");
    ck_assert_str_eq (keel_route_name (keel_routes_at (routes, 0)), "prefix");
    ck_assert_str_eq (keel_route_name (keel_routes_at (routes, 3)), "low");
    keel_routes_destroy (&routes);
}
END_TEST

START_TEST (test_priority_kind)
{
    //  Config order against the rule: prefix first, exact last
    const char *lines[] = {"prefix /a/*", "template /a/{x}", "exact /a/b"};
    keel_routes_t *routes = s_load_lines (lines, 3);
    s_expect (routes, NULL, "GET", "/a/b", FOUND, "exact");
    s_expect (routes, NULL, "GET", "/a/c", FOUND, "template");
    s_expect (routes, NULL, "GET", "/a/c/d", FOUND, "prefix");
    ck_assert_str_eq (keel_route_name (keel_routes_at (routes, 0)), "exact");
    ck_assert_str_eq (keel_route_name (keel_routes_at (routes, 1)), "template");
    ck_assert_str_eq (keel_route_name (keel_routes_at (routes, 2)), "prefix");
    keel_routes_destroy (&routes);
    //  A template beats a prefix with more literals
    const char *more[] = {"prefix /a/b/c/*", "template /a/{x}/c/d"};
    routes = s_load_lines (more, 2);
    s_expect (routes, NULL, "GET", "/a/b/c/d", FOUND, "template");
    keel_routes_destroy (&routes);
}
END_TEST

START_TEST (test_priority_literals)
{
    const char *lines[] = {"none /{a}/{b}/{c}", "one /{a}/{b}/c",
                           "two /x/{b}/c", "early /x/{b}/{c}"};
    keel_routes_t *routes = s_load_lines (lines, 4);
    s_expect (routes, NULL, "GET", "/x/y/c", FOUND, "two");
    s_expect (routes, NULL, "GET", "/q/y/c", FOUND, "one");
    s_expect (routes, NULL, "GET", "/x/y/z", FOUND, "early");
    s_expect (routes, NULL, "GET", "/q/y/z", FOUND, "none");
    keel_routes_destroy (&routes);
    //  The same among prefixes
    const char *prefixes[] = {"p0 /{a}/{b}/*", "p1 /{a}/b/*", "p2 /a/b/*"};
    routes = s_load_lines (prefixes, 3);
    s_expect (routes, NULL, "GET", "/a/b/c", FOUND, "p2");
    s_expect (routes, NULL, "GET", "/x/b/c", FOUND, "p1");
    s_expect (routes, NULL, "GET", "/x/y/c", FOUND, "p0");
    keel_routes_destroy (&routes);
}
END_TEST

START_TEST (test_priority_prefix_length)
{
    //  Equal literals (one each): the longer prefix wins
    const char *lines[] = {"short /a/*", "long /{x}/b/*",
                           "longer /{x}/{y}/c/*"};
    keel_routes_t *routes = s_load_lines (lines, 3);
    s_expect (routes, NULL, "GET", "/a/b/c/d", FOUND, "longer");
    s_expect (routes, NULL, "GET", "/a/b/x", FOUND, "long");
    s_expect (routes, NULL, "GET", "/a/x/x", FOUND, "short");
    s_expect (routes, NULL, "GET", "/a/", FOUND, "short");
    keel_routes_destroy (&routes);
    const char *plain[] = {"root /*", "api /api/*", "v1 /api/v1/*"};
    routes = s_load_lines (plain, 3);
    s_expect (routes, NULL, "GET", "/api/v1/x", FOUND, "v1");
    s_expect (routes, NULL, "GET", "/api/v2/x", FOUND, "api");
    s_expect (routes, NULL, "GET", "/", FOUND, "root");
    ck_assert_str_eq (s_match.rest, "/");
    s_expect (routes, NULL, "GET", "/other", FOUND, "root");
    ck_assert_str_eq (s_match.rest, "/other");
    keel_routes_destroy (&routes);
}
END_TEST

START_TEST (test_priority_host)
{
    const char *lines[] = {"none /a",
                           "wild /a host=*.example.com",
                           "host /a host=api.example.com",
                           "deeper /a host=*.eu.example.com",
                           "t-none /t/{x}",
                           "t-wild /t/{x} host=*.example.com"};
    keel_routes_t *routes = s_load_lines (lines, 6);
    s_expect (routes, "api.example.com", "GET", "/a", FOUND, "host");
    s_expect (routes, "web.example.com", "GET", "/a", FOUND, "wild");
    s_expect (routes, "a.eu.example.com", "GET", "/a", FOUND, "deeper");
    s_expect (routes, "eu.example.com", "GET", "/a", FOUND, "wild");
    s_expect (routes, "example.com", "GET", "/a", FOUND, "none");
    s_expect (routes, "other.org", "GET", "/a", FOUND, "none");
    s_expect (routes, NULL, "GET", "/a", FOUND, "none");
    s_expect (routes, "", "GET", "/a", FOUND, "none");
    s_expect (routes, "x.example.com", "GET", "/t/1", FOUND, "t-wild");
    s_expect (routes, "x.example.org", "GET", "/t/1", FOUND, "t-none");
    keel_routes_destroy (&routes);
    //  Path rules come before host rules: an exact path without a host
    //  beats a template for the host
    const char *path_first[] = {"host /{x} host=api.example.com", "exact /a"};
    routes = s_load_lines (path_first, 2);
    s_expect (routes, "api.example.com", "GET", "/a", FOUND, "exact");
    s_expect (routes, "api.example.com", "GET", "/b", FOUND, "host");
    keel_routes_destroy (&routes);
}
END_TEST

START_TEST (test_priority_config_order)
{
    const char *lines[] = {"first /a/{x}", "second /{x}/b"};
    keel_routes_t *routes = s_load_lines (lines, 2);
    s_expect (routes, NULL, "GET", "/a/b", FOUND, "first");
    keel_routes_destroy (&routes);
    const char *swapped[] = {"second /{x}/b", "first /a/{x}"};
    routes = s_load_lines (swapped, 2);
    s_expect (routes, NULL, "GET", "/a/b", FOUND, "second");
    keel_routes_destroy (&routes);
    //  Two wildcards of the same length, by config order
    const char *wild[] = {"x /p host=*.x.com", "y /p host=*.y.com"};
    routes = s_load_lines (wild, 2);
    ck_assert_str_eq (keel_route_name (keel_routes_at (routes, 0)), "x");
    keel_routes_destroy (&routes);
}
END_TEST

// ---------------------------------------------------------------------------
//  405 and methods

START_TEST (test_method_not_allowed)
{
    const char *lines[] = {
        "read /items/{id} methods=GET",
        "write /items/{id} methods=PUT,DELETE",
        "create /items methods=post",
        "host-only /items methods=PATCH host=a.com",
        "saga /orders target=saga:order",
        "any /open",
    };
    keel_routes_t *routes = s_load_lines (lines, 6);
    s_expect (routes, NULL, "GET", "/items/1", FOUND, "read");
    s_expect (routes, NULL, "HEAD", "/items/1", FOUND, "read");
    s_expect (routes, NULL, "DELETE", "/items/1", FOUND, "write");
    s_expect (routes, NULL, "POST", "/items/1", NOT_ALLOWED, NULL);
    ck_assert_uint_eq (s_match.allow, KEEL_ROUTE_GET | KEEL_ROUTE_HEAD |
                                          KEEL_ROUTE_PUT | KEEL_ROUTE_DELETE);
    ck_assert_str_eq (s_match.allow_text, "GET, HEAD, PUT, DELETE");
    //  Methods are case-sensitive in requests; unknown ones match nothing
    s_expect (routes, NULL, "get", "/items/1", NOT_ALLOWED, NULL);
    s_expect (routes, NULL, "PROPFIND", "/items/1", NOT_ALLOWED, NULL);
    s_expect (routes, NULL, NULL, "/items/1", NOT_ALLOWED, NULL);
    //  The Allow list counts the routes whose host matched
    s_expect (routes, NULL, "GET", "/items", NOT_ALLOWED, NULL);
    ck_assert_str_eq (s_match.allow_text, "POST");
    s_expect (routes, "A.com:443", "GET", "/items", NOT_ALLOWED, NULL);
    ck_assert_str_eq (s_match.allow_text, "POST, PATCH");
    s_expect (routes, "a.com", "PATCH", "/items", FOUND, "host-only");
    s_expect (routes, NULL, "PATCH", "/items", NOT_ALLOWED, NULL);
    //  A path no route matches is 404 whatever the method
    s_expect (routes, NULL, "POST", "/nothing", NO_ROUTE, NULL);
    ck_assert_uint_eq (s_match.allow, 0);
    ck_assert_str_eq (s_match.allow_text, "");
    //  Saga routes take POST only
    s_expect (routes, NULL, "POST", "/orders", FOUND, "saga");
    s_expect (routes, NULL, "GET", "/orders", NOT_ALLOWED, NULL);
    ck_assert_str_eq (s_match.allow_text, "POST");
    //  No methods given: all nine, and nothing else
    s_expect (routes, NULL, "CONNECT", "/open", FOUND, "any");
    s_expect (routes, NULL, "BREW", "/open", NOT_ALLOWED, NULL);
    ck_assert_str_eq (s_match.allow_text, "GET, HEAD, POST, PUT, DELETE, "
                                          "PATCH, OPTIONS, TRACE, CONNECT");
    ck_assert_uint_lt (strlen (s_match.allow_text), KEEL_ROUTES_ALLOW_MAX);
    keel_routes_destroy (&routes);

    //  A method mismatch on the better route falls through to a worse one
    //  that allows the method; 405 only when none does
    const char *fall[] = {"exact /a/b methods=GET", "prefix /a/* methods=POST"};
    routes = s_load_lines (fall, 2);
    s_expect (routes, NULL, "POST", "/a/b", FOUND, "prefix");
    s_expect (routes, NULL, "GET", "/a/b", FOUND, "exact");
    s_expect (routes, NULL, "PUT", "/a/b", NOT_ALLOWED, NULL);
    ck_assert_str_eq (s_match.allow_text, "GET, HEAD, POST");
    keel_routes_destroy (&routes);
}
END_TEST

// ---------------------------------------------------------------------------
//  Hosts

START_TEST (test_hosts)
{
    const char *lines[] = {"api /h host=api.example.com",
                           "wild /h host=*.example.com", "v6 /h host=[::1]",
                           "v4 /h host=10.0.0.1"};
    keel_routes_t *routes = s_load_lines (lines, 4);
    s_expect (routes, "api.example.com", "GET", "/h", FOUND, "api");
    s_expect (routes, "api.example.com:8080", "GET", "/h", FOUND, "api");
    s_expect (routes, "API.Example.COM", "GET", "/h", FOUND, "api");
    s_expect (routes, "api.example.com.", "GET", "/h", FOUND, "api");
    s_expect (routes, "api.example.com.:80", "GET", "/h", FOUND, "api");
    s_expect (routes, "api.example.com:", "GET", "/h", FOUND, "api");
    s_expect (routes, "x.api.example.com", "GET", "/h", FOUND, "wild");
    s_expect (routes, "a.b.c.example.com:1", "GET", "/h", FOUND, "wild");
    s_expect (routes, "[::1]:8080", "GET", "/h", FOUND, "v6");
    s_expect (routes, "[::1]", "GET", "/h", FOUND, "v6");
    s_expect (routes, "10.0.0.1:80", "GET", "/h", FOUND, "v4");
    //  Not matched: apex, other domains, suffix without a dot, junk
    const char *misses[] = {"example.com",
                            "xexample.com",
                            "example.com.evil.org",
                            ".example.com",
                            "*.example.com",
                            "api.example.com:80x",
                            "api.example.com/x",
                            "api example.com",
                            "[::1",
                            "[::1]x",
                            "[::g]",
                            NULL,
                            ""};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++)
        s_expect (routes, misses[i], "GET", "/h", NO_ROUTE, NULL);
    keel_routes_destroy (&routes);

    //  A host of 253 characters is fine, one more is not a host
    char host[300];
    memset (host, 'a', sizeof host);
    for (size_t i = 63; i < 253; i += 64)
        host[i] = '.';
    host[253] = 0;
    char *text = zsys_sprintf ("gateway\n    route\n        name = long\n"
                               "        host = %s\n"
                               "        path = /\n        target = bus:s\n",
                               host);
    routes = s_load (text);
    s_expect (routes, host, "GET", "/", FOUND, "long");
    keel_routes_destroy (&routes);
    free (text);
    host[253] = 'a';
    host[254] = 0;
    text = zsys_sprintf ("gateway\n    route\n        name = long\n"
                         "        host = %s\n"
                         "        path = /\n        target = bus:s\n",
                         host);
    char *want = zsys_sprintf ("test.cfg:4: key 'gateway/route/host': host "
                               "longer than 253 characters: '%s'",
                               host);
    s_expect_error (text, want);
    free (text);
    free (want);
}
END_TEST

// ---------------------------------------------------------------------------
//  Iteration and names

static int
s_collect (const keel_route_t *route, void *arg)
{
    s_text_t *names = (s_text_t *)arg;
    s_append (names, "%s ", keel_route_name (route));
    return streq (keel_route_name (route), "stop") ? 7 : 0;
}

START_TEST (test_each)
{
    const char *lines[] = {"c /c/*", "b /b/{x}", "a /a", "top /z/* priority=5"};
    keel_routes_t *routes = s_load_lines (lines, 4);
    s_text_t names = {0};
    s_append (&names, "");
    ck_assert_int_eq (keel_routes_each (routes, s_collect, &names), 0);
    ck_assert_str_eq (names.text, "top a b c ");
    for (size_t i = 0; i < keel_routes_size (routes); i++)
        ck_assert_uint_eq (keel_route_index (keel_routes_at (routes, i)), i);
    keel_routes_destroy (&routes);
    free (names.text);

    const char *stop[] = {"a /a", "stop /b", "c /c"};
    routes = s_load_lines (stop, 3);
    names = (s_text_t){0};
    s_append (&names, "");
    ck_assert_int_eq (keel_routes_each (routes, s_collect, &names), 7);
    ck_assert_str_eq (names.text, "a stop ");
    keel_routes_destroy (&routes);
    free (names.text);
}
END_TEST

START_TEST (test_names)
{
    ck_assert_uint_eq (keel_routes_method_parse ("GET"), KEEL_ROUTE_GET);
    ck_assert_uint_eq (keel_routes_method_parse ("CONNECT"),
                       KEEL_ROUTE_CONNECT);
    ck_assert_uint_eq (keel_routes_method_parse ("get"), 0);
    ck_assert_uint_eq (keel_routes_method_parse (""), 0);
    ck_assert_uint_eq (keel_routes_method_parse (NULL), 0);
    char buffer[KEEL_ROUTES_ALLOW_MAX];
    ck_assert_str_eq (keel_routes_methods_format (0, buffer, sizeof buffer),
                      "");
    ck_assert_str_eq (
        keel_routes_methods_format (KEEL_ROUTE_POST | KEEL_ROUTE_GET, buffer,
                                    sizeof buffer),
        "GET, POST");
    ck_assert_str_eq (
        keel_routes_methods_format (KEEL_ROUTE_METHODS, buffer, sizeof buffer),
        "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, "
        "CONNECT");
    //  Too small: cut at a whole method
    ck_assert_str_eq (
        keel_routes_methods_format (KEEL_ROUTE_METHODS, buffer, 12),
        "GET, HEAD");
    ck_assert_str_eq (keel_route_kind_name (KEEL_ROUTE_TEMPLATE), "template");
    ck_assert_str_eq (keel_route_kind_name ((keel_route_kind_t)9), "?");
    ck_assert_str_eq (
        keel_route_target_type_name (KEEL_ROUTE_TARGET_SAGA_STATUS),
        "saga-status");
    ck_assert_str_eq (keel_route_policy_name (KEEL_ROUTE_POLICY_LEAST_CONN),
                      "least_conn");
    ck_assert_str_eq (keel_route_auth_name (KEEL_ROUTE_AUTH_API_KEY),
                      "api_key");
    ck_assert_str_eq (keel_routes_result_name (KEEL_ROUTES_TOO_LONG),
                      "too long");
    ck_assert_str_eq (keel_routes_result_name ((keel_routes_result_t)-1), "?");
}
END_TEST

// ---------------------------------------------------------------------------
//  Scale: 10k routes

#define S_BIG 10000

START_TEST (test_ten_thousand)
{
    s_text_t text = {0};
    s_append (&text, "gateway\n");
    for (int i = 0; i < S_BIG; i++) {
        s_append (&text, "    route\n        name = r%d\n", i);
        switch (i % 5) {
        case 0:
            s_append (&text, "        path = /s%d/health\n", i);
            break;
        case 1:
            s_append (&text, "        path = /s%d/items/{id}\n", i);
            break;
        case 2:
            s_append (&text, "        path = /s%d/static/*\n", i);
            break;
        case 3:
            s_append (&text,
                      "        path = /\n        host = h%d.example.com\n", i);
            break;
        case 4:
            s_append (&text,
                      "        path = /v/{id}\n"
                      "        host = *.w%d.example.com\n",
                      i);
            break;
        }
        s_append (&text, "        target = bus:svc%d\n", i);
    }
    //  One catch-all at the end, which everything else beats
    s_append (&text, "    route\n        name = all\n        path = /*\n"
                     "        target = bus:all\n");
    keel_routes_t *routes = s_load (text.text);
    free (text.text);
    ck_assert_uint_eq (keel_routes_size (routes), S_BIG + 1);

    char path[64], host[64], name[32];
    for (int i = 0; i < S_BIG; i++) {
        snprintf (name, sizeof name, "r%d", i);
        const char *h = NULL;
        switch (i % 5) {
        case 0:
            snprintf (path, sizeof path, "/s%d/health", i);
            break;
        case 1:
            snprintf (path, sizeof path, "/s%d/items/%d", i, i * 7);
            break;
        case 2:
            snprintf (path, sizeof path, "/s%d/static/a/b", i);
            break;
        case 3:
            snprintf (path, sizeof path, "/");
            snprintf (host, sizeof host, "h%d.example.com:443", i);
            h = host;
            break;
        case 4:
            snprintf (path, sizeof path, "/v/x%d", i);
            snprintf (host, sizeof host, "a.b.w%d.example.com", i);
            h = host;
            break;
        }
        s_expect (routes, h, "GET", path, FOUND, name);
        ck_assert_ptr_eq (keel_routes_find (routes, name), s_match.route);
        if (i % 5 == 1) {
            char want[32];
            snprintf (want, sizeof want, "%d", i * 7);
            ck_assert_str_eq (s_match.params[0].value, want);
        }
        if (i % 5 == 4)
            ck_assert_str_eq (s_match.params[0].value, path + 3);
        //  Near misses fall to the catch-all
        snprintf (path, sizeof path, "/s%d/healthz", i);
        s_expect (routes, NULL, "GET", path, FOUND, "all");
    }
    s_expect (routes, "h3.example.com", "GET", "/x", FOUND, "all");
    s_expect (routes, "w4.example.com", "GET", "/v/1", FOUND, "all");
    s_expect (routes, "h4.example.com", "GET", "/", FOUND, "all");
    keel_routes_destroy (&routes);
}
END_TEST

// ---------------------------------------------------------------------------
//  Randomized cross-check against a brute-force matcher

//  A small xorshift generator, so the run is the same everywhere.
static uint64_t s_seed;
static uint32_t
s_rand (uint32_t n)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return (uint32_t)(s_seed % n);
}

//  One generated route, as the brute-force matcher sees it.
typedef struct {
    char name[16];
    const char *host;   //  NULL, exact or "*.x"
    char *segs[8];      //  literal text, or NULL for a parameter
    char params[8][16]; //  parameter names
    int nseg;
    bool prefix;
    unsigned methods; //  0 = all
    int priority;
    char shape[128]; //  host|path with parameters blanked|priority
} s_gen_t;

static const char *s_gen_hosts[] = {NULL,      NULL,        "x.com", "*.x.com",
                                    "a.x.com", "*.a.x.com", "y.org"};
static const char *s_gen_literals[] = {"a", "b", "c", "%62"};
static const char *s_gen_segments[] = {"a",   "b",   "c", "d",
                                       "%61", "%62", "",  "e"};
static const char *s_gen_request_hosts[] = {
    NULL,          "x.com",  "X.com:80", "a.x.com",   "b.a.x.com",
    "c.b.a.x.com", "y.org.", "z.net",    "x.com:8080"};
static const char *s_gen_methods[] = {"GET", "HEAD",   "POST",
                                      "PUT", "DELETE", "FOO"};

//  Decode a generated segment the way canonicalisation does for the
//  escapes the generator uses (%61 = a, %62 = b: unreserved).
static void
s_gen_canon (const char *raw, char *out)
{
    if (streq (raw, "%61"))
        strcpy (out, "a");
    else if (streq (raw, "%62"))
        strcpy (out, "b");
    else
        strcpy (out, raw);
}

static bool
s_gen_host_matches (const s_gen_t *route, const char *host)
{
    if (!route->host)
        return true;
    if (!host)
        return false;
    char h[64];
    size_t len = strcspn (host, ":");
    memcpy (h, host, len);
    h[len] = 0;
    if (len && h[len - 1] == '.')
        h[--len] = 0;
    for (char *c = h; *c; c++)
        *c = (char)tolower ((unsigned char)*c);
    if (route->host[0] == '*') {
        const char *suffix = route->host + 1; //  ".x.com"
        size_t sl = strlen (suffix);
        return len > sl && streq (h + len - sl, suffix);
    }
    return streq (h, route->host);
}

//  Expected outcome of one request.
typedef struct {
    keel_routes_result_t result;
    const s_gen_t *route;
    unsigned allow;
} s_outcome_t;

//  Try every route in `ordered` (priority order, as the table ranks
//  them: keel_routes_at) and take the first that matches.
static s_outcome_t
s_brute_force (s_gen_t **ordered, size_t count, const char *host,
               const char *method, char **segs, int nseg)
{
    s_outcome_t outcome = {NO_ROUTE, NULL, 0};
    unsigned bit = keel_routes_method_parse (method);
    for (size_t i = 0; i < count; i++) {
        const s_gen_t *route = ordered[i];
        if (!s_gen_host_matches (route, host))
            continue;
        if (route->prefix ? nseg <= route->nseg : nseg != route->nseg)
            continue;
        bool ok = true;
        for (int s = 0; s < route->nseg && ok; s++) {
            char canon[8];
            s_gen_canon (segs[s], canon);
            if (route->segs[s]) {
                char want[8];
                s_gen_canon (route->segs[s], want);
                ok = streq (canon, want);
            } else
                ok = *canon != 0;
        }
        if (!ok)
            continue;
        unsigned methods = route->methods ? route->methods : KEEL_ROUTE_METHODS;
        if (methods & KEEL_ROUTE_GET)
            methods |= KEEL_ROUTE_HEAD;
        if (methods & bit) {
            outcome.result = FOUND;
            outcome.route = route;
            return outcome;
        }
        outcome.result = NOT_ALLOWED;
        outcome.allow |= methods;
    }
    return outcome;
}

static void
s_generate_route (s_gen_t *gen, int index)
{
    memset (gen, 0, sizeof *gen);
    snprintf (gen->name, sizeof gen->name, "g%d", index);
    gen->host = s_gen_hosts[s_rand (7)];
    gen->nseg = (int)s_rand (4) + (s_rand (6) == 0 ? 0 : 1);
    gen->prefix = s_rand (4) == 0;
    if (gen->nseg == 0 && !gen->prefix)
        gen->nseg = 1;
    for (int s = 0; s < gen->nseg; s++)
        if (s_rand (3) == 0) {
            gen->segs[s] = NULL;
            snprintf (gen->params[s], sizeof gen->params[s], "p%d", s);
        } else
            gen->segs[s] = (char *)s_gen_literals[s_rand (4)];
    gen->methods = 0;
    if (s_rand (2))
        gen->methods = (1u << s_rand (5)) | (s_rand (2) ? 1u << s_rand (5) : 0);
    static const int priorities[] = {0, 0, 0, 0, 1, -1};
    gen->priority = priorities[s_rand (6)];
    //  The shape that makes two routes conflict
    char *p = gen->shape;
    p += sprintf (p, "%s|", gen->host ? gen->host : "");
    for (int s = 0; s < gen->nseg; s++) {
        char canon[8];
        s_gen_canon (gen->segs[s] ? gen->segs[s] : "{}", canon);
        p += sprintf (p, "/%s", canon);
    }
    sprintf (p, "%s|%d", gen->prefix ? "/*" : "", gen->priority);
}

START_TEST (test_randomized)
{
    s_seed = 0x9E3779B97F4A7C15ULL;
    //  How often each outcome came up, so the check is known to bite
    int outcomes[5] = {0}, prefixes = 0, params = 0, wildcards = 0;
    for (int round = 0; round < 20; round++) {
        //  Routes, skipping those that would conflict
        size_t count = 0, wanted = 20 + s_rand (200);
        s_gen_t *gens = (s_gen_t *)calloc (wanted, sizeof (s_gen_t));
        s_text_t text = {0};
        s_append (&text, "gateway\n");
        for (size_t i = 0; i < wanted; i++) {
            s_gen_t *gen = &gens[count];
            s_generate_route (gen, (int)i);
            unsigned mine = gen->methods ? gen->methods : KEEL_ROUTE_METHODS;
            if (mine & KEEL_ROUTE_GET)
                mine |= KEEL_ROUTE_HEAD;
            bool conflict = false;
            for (size_t j = 0; j < count && !conflict; j++) {
                unsigned theirs =
                    gens[j].methods ? gens[j].methods : KEEL_ROUTE_METHODS;
                if (theirs & KEEL_ROUTE_GET)
                    theirs |= KEEL_ROUTE_HEAD;
                conflict = streq (gens[j].shape, gen->shape) && (mine & theirs);
            }
            if (conflict)
                continue;
            count++;
            s_append (&text, "    route\n        name = %s\n        path = ",
                      gen->name);
            for (int s = 0; s < gen->nseg; s++)
                s_append (&text, "/%s%s%s", gen->segs[s] ? "" : "{",
                          gen->segs[s] ? gen->segs[s] : gen->params[s],
                          gen->segs[s] ? "" : "}");
            s_append (&text, "%s\n", gen->prefix ? "/*" : "");
            if (gen->host)
                s_append (&text, "        host = %s\n", gen->host);
            if (gen->methods) {
                char methods[KEEL_ROUTES_ALLOW_MAX];
                s_append (&text, "        methods = \"%s\"\n",
                          keel_routes_methods_format (gen->methods, methods,
                                                      sizeof methods));
            }
            s_append (&text, "        priority = %d\n", gen->priority);
            s_append (&text, "        target = bus:s\n");
        }
        keel_routes_t *routes = s_load (text.text);
        free (text.text);
        ck_assert_uint_eq (keel_routes_size (routes), count);
        s_gen_t **ordered = (s_gen_t **)calloc (count, sizeof (s_gen_t *));
        for (size_t i = 0; i < count; i++) {
            const char *name = keel_route_name (keel_routes_at (routes, i));
            for (size_t j = 0; j < count && !ordered[i]; j++)
                if (streq (gens[j].name, name))
                    ordered[i] = &gens[j];
            ck_assert_ptr_nonnull (ordered[i]);
        }

        //  Requests
        for (int r = 0; r < 500; r++) {
            char *segs[8];
            int nseg = 1 + (int)s_rand (6);
            char path[128] = "";
            for (int s = 0; s < nseg; s++) {
                segs[s] = (char *)s_gen_segments[s_rand (8)];
                strcat (path, "/");
                strcat (path, segs[s]);
            }
            const char *host = s_gen_request_hosts[s_rand (9)];
            const char *method = s_gen_methods[s_rand (6)];
            s_outcome_t want =
                s_brute_force (ordered, count, host, method, segs, nseg);
            keel_routes_result_t got =
                keel_routes_match (routes, host, method, path, &s_match);
            ck_assert_msg (got == want.result,
                           "round %d: %s %s host %s: got %s, want %s", round,
                           method, path, host ? host : "-",
                           keel_routes_result_name (got),
                           keel_routes_result_name (want.result));
            outcomes[got]++;
            if (got == NOT_ALLOWED)
                ck_assert_uint_eq (s_match.allow, want.allow);
            if (got != FOUND)
                continue;
            const s_gen_t *gen = want.route;
            prefixes += gen->prefix;
            params += s_match.param_count > 0;
            wildcards += gen->host && gen->host[0] == '*';
            ck_assert_msg (streq (keel_route_name (s_match.route), gen->name),
                           "round %d: %s %s host %s: got %s (%s), want %s",
                           round, method, path, host ? host : "-",
                           keel_route_name (s_match.route),
                           keel_route_path (s_match.route), gen->name);
            //  Parameters, decoded, in path order
            size_t p = 0;
            for (int s = 0; s < gen->nseg; s++) {
                if (gen->segs[s])
                    continue;
                char value[8];
                s_gen_canon (segs[s], value);
                ck_assert_uint_lt (p, s_match.param_count);
                ck_assert_str_eq (s_match.params[p].name, gen->params[s]);
                ck_assert_str_eq (s_match.params[p].value, value);
                p++;
            }
            ck_assert_uint_eq (p, s_match.param_count);
            //  Rest: raw, from the slash after the prefix
            if (gen->prefix) {
                const char *rest = path;
                for (int s = 0; s < gen->nseg; s++)
                    rest = strchr (rest + 1, '/');
                ck_assert_str_eq (s_match.rest, rest);
            } else
                ck_assert_ptr_null (s_match.rest);
        }
        keel_routes_destroy (&routes);
        free (ordered);
        free (gens);
    }
    ck_assert_int_gt (outcomes[FOUND], 2000);
    ck_assert_int_gt (outcomes[NO_ROUTE], 500);
    ck_assert_int_gt (outcomes[NOT_ALLOWED], 200);
    ck_assert_int_gt (prefixes, 200);
    ck_assert_int_gt (params, 200);
    ck_assert_int_gt (wildcards, 100);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_routes");
    TCase *tc = tcase_create ("core");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_load_fields);
    tcase_add_test (tc, test_load_empty);
    tcase_add_test (tc, test_config_errors);
    tcase_add_test (tc, test_path_errors);
    tcase_add_test (tc, test_path_space);
    tcase_add_test (tc, test_conflicts);
    tcase_add_test (tc, test_exact_template_prefix);
    tcase_add_test (tc, test_params_decoding);
    tcase_add_test (tc, test_bad_paths);
    tcase_add_test (tc, test_priority_explicit);
    tcase_add_test (tc, test_priority_kind);
    tcase_add_test (tc, test_priority_literals);
    tcase_add_test (tc, test_priority_prefix_length);
    tcase_add_test (tc, test_priority_host);
    tcase_add_test (tc, test_priority_config_order);
    tcase_add_test (tc, test_method_not_allowed);
    tcase_add_test (tc, test_hosts);
    tcase_add_test (tc, test_each);
    tcase_add_test (tc, test_names);
    tcase_add_test (tc, test_ten_thousand);
    tcase_add_test (tc, test_randomized);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
