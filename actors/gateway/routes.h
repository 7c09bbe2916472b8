//  routes.h - the gateway's route table (pure core): routes loaded from
//  config, matched by host, method and path. No sockets, no threads, no
//  clock. A table is immutable once loaded: build a new one, then swap it
//  in (the actor owns the swap and the lifetime of the old table).
//
//  Config (repeated `route` sections under one section, "gateway" here):
//
//      gateway
//          route
//              name = users                  required, unique: [A-Za-z0-9_.-]
//              host = api.example.com        optional: NAME or *.SUFFIX
//              path = /users/{id}            required, see "Paths"
//              methods = "GET PUT"           optional, default all
//              target = bus:users            bus: http: saga: saga-status:
//              policy = p2c                  round_robin (default) weighted
//                                            least_conn p2c
//              timeout = 2s                  duration, default 15s, > 0
//              retries = 2                   0..10, default 0
//              retry_budget = 20             percent 0..100, default 20
//              auth = jwt                    none (default) jwt api_key any
//              scopes = "users:read"         all required
//              roles = "admin support"       any one suffices
//              priority = 10                 -1000000..1000000, default 0
//
//  Paths (as written in config; segments are what lies between slashes):
//      /a/b        exact: every segment literal
//      /a/{id}     template: a {name} segment matches one non-empty
//                  request segment; names [A-Za-z_][A-Za-z0-9_]*, unique
//                  in the route; a parameter is a whole segment
//      /a/*        prefix: matches /a/ followed by anything, including
//                  nothing ("/a/" and "/a/b/c", not "/a"); may follow
//                  template segments ("/users/{id}/files/*")
//      "/" is the exact root; "/a/" (trailing slash) is a different path
//      from "/a". Empty segments ("//"), "." and ".." are refused, and so
//      are '?', '#', spaces, control characters and bad % escapes.
//      At most KEEL_ROUTES_MAX_SEGMENTS segments and KEEL_ROUTES_MAX_PARAMS
//      parameters.
//
//  Methods: GET HEAD POST PUT DELETE PATCH OPTIONS TRACE CONNECT (any case
//  in config, exact case in requests, as RFC 9110 says), separated by
//  spaces or commas. A route that allows GET also allows HEAD. Absent =
//  all of them. A request method outside the list matches no route (the
//  gateway may answer 501 when keel_routes_method_parse returns 0).
//
//  Targets: bus:SERVICE and http:SERVICE name a registry service (1..128
//  printable ASCII characters, no spaces); saga:NAME starts saga NAME and
//  allows only POST (the default for it); saga-status:NAME reads the
//  status of one saga of NAME, whose id is the route's required {id}
//  parameter, and allows only GET and HEAD (the default). `policy`,
//  `retries` and `retry_budget` apply to bus: and http: targets only.
//
//  Auth: `none` is the default, so a route is public unless it says
//  otherwise. `scopes` or `roles` with auth none is a config error (they
//  would protect nothing). `any` accepts either a JWT or an API key.
//  Scopes and roles are separated by spaces (or commas).
//
//  Hosts: matched case-insensitively against the request's Host, without
//  its port ("api.example.com:8080" matches api.example.com) and without a
//  trailing dot. "*.example.com" matches any host ending in ".example.com"
//  with at least one label before it ("a.example.com", "a.b.example.com",
//  not "example.com"). A route without a host matches every request, with
//  or without a Host. Config hosts carry no port.
//
//  Priority: of the routes whose host, path and method match a request,
//  the first by these rules wins:
//      1. higher `priority`
//      2. exact path over template over prefix
//      3. more literal segments
//      4. longer prefix (prefix routes: more segments before the '*')
//      5. route with a host over a wildcard host (a longer suffix first)
//         over no host
//      6. earlier in the config
//  Two routes with the same host, the same path (parameter names aside),
//  the same priority and a method in common are a config error: only the
//  config order would tell them apart.
//
//  Request paths: the raw path without the query string (the caller
//  splits at '?'). Matching compares raw segments after the normalisation
//  of RFC 3986 6.2.2: %XX of an unreserved character equals the character
//  ("%7Euser" = "~user"), hex digits compare in any case, and a byte above
//  0x7F equals its escape. Reserved escapes stay escaped: "%2F" never
//  splits a segment. Parameter values are fully decoded ("a%2Fb" gives
//  "a/b"; '+' stays '+'). A path that is not '/'-prefixed, has a "." or
//  ".." segment (also escaped, "%2e%2E"), a NUL (raw or %00), a control
//  character, a space, '?' or '#', or a bad % escape is BAD_PATH (400);
//  longer than KEEL_ROUTES_MAX_PATH is TOO_LONG (414).
//
//  Speed: routes sit in a segment trie per host (one hash of all edges,
//  one parameter child per node, prefix routes on the node their prefix
//  ends at). Matching walks the tries of the request's host, of each of
//  its wildcard suffixes and of "no host": O(path segments), independent
//  of the number of routes except for parameter branches that overlap
//  literals. It allocates nothing: parameter values are written into the
//  match (keel_route_match_t), which the caller provides. Loading is
//  O(n log n) here, but CZMQ's ZPL parser is quadratic in the keys of one
//  section: parsing 10k routes takes about 2 s, so a shell that reloads
//  big tables may want to load them off its main loop.
//
//  Threads: a loaded table is never changed and no function writes to it
//  (keel_routes_find included), so any number of threads may use one at
//  once; only keel_routes_destroy needs them all done.
#ifndef KEEL_ROUTES_H_INCLUDED
#define KEEL_ROUTES_H_INCLUDED

#include "keel_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Longest request path matched, in bytes; longer is TOO_LONG.
#define KEEL_ROUTES_MAX_PATH 8192
//  Most segments in a route's path (the '*' not counted).
#define KEEL_ROUTES_MAX_SEGMENTS 32
//  Most parameters in a route's path.
#define KEEL_ROUTES_MAX_PARAMS 16
//  Bytes of an Allow list of every method, with its NUL.
#define KEEL_ROUTES_ALLOW_MAX 72

//  HTTP methods, as bits of a set.
#define KEEL_ROUTE_GET     (1u << 0)
#define KEEL_ROUTE_HEAD    (1u << 1)
#define KEEL_ROUTE_POST    (1u << 2)
#define KEEL_ROUTE_PUT     (1u << 3)
#define KEEL_ROUTE_DELETE  (1u << 4)
#define KEEL_ROUTE_PATCH   (1u << 5)
#define KEEL_ROUTE_OPTIONS (1u << 6)
#define KEEL_ROUTE_TRACE   (1u << 7)
#define KEEL_ROUTE_CONNECT (1u << 8)
#define KEEL_ROUTE_METHODS (0x1FFu) //  all of them

typedef enum {
    KEEL_ROUTE_EXACT = 0,
    KEEL_ROUTE_TEMPLATE = 1,
    KEEL_ROUTE_PREFIX = 2,
} keel_route_kind_t;

typedef enum {
    KEEL_ROUTE_TARGET_BUS = 0,         //  bus:SERVICE, HttpRequest over the bus
    KEEL_ROUTE_TARGET_HTTP = 1,        //  http:SERVICE, proxied
    KEEL_ROUTE_TARGET_SAGA = 2,        //  saga:NAME, POST starts one
    KEEL_ROUTE_TARGET_SAGA_STATUS = 3, //  saga-status:NAME, GET reads one
} keel_route_target_t;

typedef enum {
    KEEL_ROUTE_POLICY_ROUND_ROBIN = 0,
    KEEL_ROUTE_POLICY_WEIGHTED = 1,
    KEEL_ROUTE_POLICY_LEAST_CONN = 2,
    KEEL_ROUTE_POLICY_P2C = 3,
} keel_route_policy_t;

typedef enum {
    KEEL_ROUTE_AUTH_NONE = 0,
    KEEL_ROUTE_AUTH_JWT = 1,
    KEEL_ROUTE_AUTH_API_KEY = 2,
    KEEL_ROUTE_AUTH_ANY = 3, //  a JWT or an API key
} keel_route_auth_t;

//  What keel_routes_match found; the HTTP status the gateway answers with.
typedef enum {
    KEEL_ROUTES_FOUND = 0,              //  match->route is set
    KEEL_ROUTES_NO_ROUTE = 1,           //  404
    KEEL_ROUTES_METHOD_NOT_ALLOWED = 2, //  405, match->allow is set
    KEEL_ROUTES_BAD_PATH = 3,           //  400
    KEEL_ROUTES_TOO_LONG = 4,           //  414
} keel_routes_result_t;

typedef struct _keel_routes_t keel_routes_t;
typedef struct _keel_route_t keel_route_t;

//  One parameter of a match.
typedef struct {
    const char *name;  //  as in the route's path; borrowed from the table
    const char *value; //  decoded, NUL-terminated; held by the match
} keel_route_param_t;

//  The result of a match. The caller provides it (it is large: put it on
//  the stack or in a long-lived struct, ~17 KB) and reads the fields.
//  Parameter values live in the match itself; names and the route are
//  borrowed from the table, so a match must not outlive its table.
typedef struct {
    const keel_route_t *route; //  FOUND: the route; else NULL
    size_t param_count;        //  FOUND: its parameters, in path order
    keel_route_param_t params[KEEL_ROUTES_MAX_PARAMS];
    //  FOUND on a prefix route: the raw rest of the path from the slash
    //  after the prefix ("/b/c" for /a/* and "/a/b/c"; "/" for "/a/");
    //  NULL for other routes. Held by the match.
    const char *rest;
    //  METHOD_NOT_ALLOWED: the methods the routes that matched host and
    //  path allow, as a set and as an Allow header value ("GET, HEAD").
    unsigned allow;
    char allow_text[KEEL_ROUTES_ALLOW_MAX];
    //  Private: storage for values and rest.
    char buffer_[2 * KEEL_ROUTES_MAX_PATH + KEEL_ROUTES_MAX_PARAMS + 2];
} keel_route_match_t;

// ---------------------------------------------------------------------------
//  The table

//  Load the routes of the `route` sections directly under `path` ("gateway";
//  "" is the root). Other keys of that section are not looked at: they
//  belong to the caller, which checks them (allowing "route"). An absent
//  section gives an empty table. Returns a new table (caller owns it and
//  destroys it with keel_routes_destroy), or NULL with keel_config_error
//  set ("FILE:LINE: key 'gateway/route/path': ..."), also when out of
//  memory. The table copies what it needs: the config may go first.
keel_routes_t *keel_routes_load (keel_config_t *config, const char *path);

//  Destroy a table and its routes; nulls *self_p. Accepts NULL and a
//  pointer to NULL.
void keel_routes_destroy (keel_routes_t **self_p);

//  Number of routes.
size_t keel_routes_size (const keel_routes_t *self);

//  The route named `name`, or NULL. Borrowed: valid while self lives.
const keel_route_t *keel_routes_find (const keel_routes_t *self,
                                      const char *name);

//  The route at `index` (0 .. size-1) in priority order, as matching ranks
//  them (the rule above; host classes compared as if every host matched).
//  Borrowed. Asserts that index is in range.
const keel_route_t *keel_routes_at (const keel_routes_t *self, size_t index);

//  Call `fn` on every route in priority order until it returns non-zero.
//  Returns that value, or 0 when all were visited.
typedef int (keel_routes_each_fn) (const keel_route_t *route, void *arg);
int keel_routes_each (const keel_routes_t *self, keel_routes_each_fn *fn,
                      void *arg);

//  Match a request. `host` is the Host header as received (NULL or "" when
//  absent), `method` the request method ("GET"), `path` the raw path
//  without the query string, NUL-terminated. Fills *match (any previous
//  content is overwritten; no clear needed before) and returns:
//    FOUND               match->route, params, rest set
//    NO_ROUTE            no route matched host and path
//    METHOD_NOT_ALLOWED  some did, none allows the method: match->allow
//    BAD_PATH, TOO_LONG  the path cannot be matched (see above)
//  Allocates nothing; uses about 26 KB of stack.
keel_routes_result_t keel_routes_match (const keel_routes_t *self,
                                        const char *host, const char *method,
                                        const char *path,
                                        keel_route_match_t *match);

//  Same, with a path of `size` bytes that need not be NUL-terminated (a raw
//  NUL inside it is BAD_PATH).
keel_routes_result_t keel_routes_match_n (const keel_routes_t *self,
                                          const char *host, const char *method,
                                          const char *path, size_t size,
                                          keel_route_match_t *match);

//  Forget a match's result (route NULL, no parameters). A match holds no
//  heap memory, so this frees nothing; it is there so code reads the same
//  whichever way values are stored.
void keel_route_match_clear (keel_route_match_t *match);

//  The decoded value of parameter `name` of a match, or NULL. Borrowed
//  from the match.
const char *keel_route_match_param (const keel_route_match_t *match,
                                    const char *name);

// ---------------------------------------------------------------------------
//  One route (all strings borrowed from the table)

const char *keel_route_name (const keel_route_t *self);
//  Lower case, "*.example.com" for a wildcard; NULL if the route has none.
const char *keel_route_host (const keel_route_t *self);
//  As written in config ("/users/{id}").
const char *keel_route_path (const keel_route_t *self);
keel_route_kind_t keel_route_kind (const keel_route_t *self);
//  The set of methods allowed (KEEL_ROUTE_GET | ...), HEAD added to GET.
unsigned keel_route_methods (const keel_route_t *self);
keel_route_target_t keel_route_target (const keel_route_t *self);
//  The service or saga name after "bus:", "http:", "saga:", "saga-status:".
const char *keel_route_target_name (const keel_route_t *self);
keel_route_policy_t keel_route_policy (const keel_route_t *self);
int64_t keel_route_timeout_ms (const keel_route_t *self);
int keel_route_retries (const keel_route_t *self);
//  Retries may add at most this percentage to a route's requests.
int keel_route_retry_budget (const keel_route_t *self);
keel_route_auth_t keel_route_auth (const keel_route_t *self);
//  NULL-terminated lists, empty when not configured. A request needs every
//  scope and, when roles are given, at least one of the roles.
const char *const *keel_route_scopes (const keel_route_t *self);
const char *const *keel_route_roles (const keel_route_t *self);
int64_t keel_route_priority (const keel_route_t *self);
//  Number of {name} parameters, and the name of the i-th (in path order).
size_t keel_route_param_count (const keel_route_t *self);
const char *keel_route_param_name (const keel_route_t *self, size_t index);
//  Line of the `route` key in the config it came from; 0 if unknown.
int keel_route_line (const keel_route_t *self);
//  Position in priority order (keel_routes_at (table, index) is self).
size_t keel_route_index (const keel_route_t *self);

// ---------------------------------------------------------------------------
//  Names

//  The bit of a request method ("GET" -> KEEL_ROUTE_GET), exact case; 0 if
//  not one of the nine above.
unsigned keel_routes_method_parse (const char *method);

//  Write a set of methods as an Allow header value: "GET, HEAD, POST", in
//  the order of the bits; "" for none. Writes at most `size` bytes with the
//  NUL (KEEL_ROUTES_ALLOW_MAX always suffices). Returns buffer.
char *keel_routes_methods_format (unsigned methods, char *buffer, size_t size);

//  Static names, as in config: "exact", "bus", "round_robin", "jwt"; and
//  the result's ("found", "no route", "method not allowed", "bad path",
//  "too long"). Never NULL ("?" when out of range).
const char *keel_route_kind_name (keel_route_kind_t kind);
const char *keel_route_target_type_name (keel_route_target_t target);
const char *keel_route_policy_name (keel_route_policy_t policy);
const char *keel_route_auth_name (keel_route_auth_t auth);
const char *keel_routes_result_name (keel_routes_result_t result);

#ifdef __cplusplus
}
#endif

#endif
