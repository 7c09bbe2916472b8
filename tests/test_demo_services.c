/*  test_demo_services.c - the demo services of `keel node --dev`: users (a
    bus service behind bus: routes) and web (a plain HTTP service that
    registers itself, behind http: routes). Their pure cores first
    (users_store.h, web_pages.h), then both in a real node with a registry
    and a gateway, driven over HTTP by libcurl and over the bus. */
#include "testutil.h"
#include "gateway_actor.h"
#include "jwt.h"
#include "keel_client.h"
#include "keel_node.h"
#include "registry_actor.h"
#include "users_actor.h"
#include "users_store.h"
#include "web_actor.h"
#include "web_pages.h"
#include "gateway.pb-c.h"
#include "registry.pb-c.h"

#include <curl/curl.h>
#include <jansson.h>
#include <time.h>
#include <unistd.h>

#define S_SECRET "demo-test-secret"

// ---------------------------------------------------------------------------
//  JSON helpers

static json_t *
s_parse (const char *text)
{
    json_error_t error;
    json_t *doc = json_loads (text, 0, &error);
    ck_assert_msg (doc, "not JSON (%s): %s", error.text, text);
    return doc;
}

static const char *
s_jstr (json_t *doc, const char *key)
{
    json_t *v = json_object_get (doc, key);
    return v && json_is_string (v) ? json_string_value (v) : NULL;
}

// ---------------------------------------------------------------------------
//  The users store (pure core)

//  Answer one request; the reply is checked for `status` and returned.
static void
s_users (keel_users_t *users, const char *method, const char *path,
         const char *id, const char *body, int status, keel_users_reply_t *out)
{
    keel_users_request_t in = {method, path, id, body, body ? strlen (body) : 0,
                               "rid-1"};
    ck_assert_int_eq (keel_users_answer (users, &in, out), 0);
    ck_assert_msg (out->status == status, "%s %s: %d, not %d (%s)", method,
                   path, out->status, status, out->body ? out->body : "");
}

START_TEST (test_users_store)
{
    keel_users_t *users = keel_users_new ();
    ck_assert_ptr_nonnull (users);
    ck_assert_uint_eq (keel_users_size (users), 3);
    keel_users_reply_t r;

    //  The collection, however it is spelled.
    const char *lists[] = {"/users", "/users/", "/api/users", "/"};
    for (size_t i = 0; i < 4; i++) {
        s_users (users, "GET", lists[i], NULL, NULL, 200, &r);
        json_t *doc = s_parse (r.body);
        json_t *list = json_object_get (doc, "users");
        ck_assert_uint_eq (json_array_size (list), 3);
        json_t *ada = json_array_get (list, 0);
        ck_assert_str_eq (s_jstr (ada, "id"), "1");
        ck_assert_str_eq (s_jstr (ada, "name"), "Ada Lovelace");
        ck_assert_str_eq (s_jstr (ada, "email"), "ada@example.com");
        json_decref (doc);
        keel_users_reply_free (&r);
    }
    s_users (users, "HEAD", "/users", NULL, NULL, 200, &r);
    keel_users_reply_free (&r);

    //  One user: by the path's last segment, or by the {id} parameter,
    //  which wins.
    s_users (users, "GET", "/users/2", NULL, NULL, 200, &r);
    json_t *doc = s_parse (r.body);
    ck_assert_str_eq (s_jstr (doc, "name"), "Alan Turing");
    json_decref (doc);
    keel_users_reply_free (&r);
    s_users (users, "GET", "/people/3/profile", "3", NULL, 200, &r);
    doc = s_parse (r.body);
    ck_assert_str_eq (s_jstr (doc, "name"), "Grace Hopper");
    json_decref (doc);
    keel_users_reply_free (&r);
    const char *unknown[] = {"/users/9",   "/users/01",
                             "/users/+1",  "/users/x",
                             "/users/1/x", "/users/99999999999999999999"};
    for (size_t i = 0; i < 6; i++) {
        s_users (users, "GET", unknown[i], NULL, NULL, 404, &r);
        doc = s_parse (r.body);
        ck_assert_str_eq (s_jstr (doc, "error"), "not_found");
        ck_assert_str_eq (s_jstr (doc, "request_id"), "rid-1");
        ck_assert_int_eq (json_integer_value (json_object_get (doc, "status")),
                          404);
        json_decref (doc);
        keel_users_reply_free (&r);
    }

    //  Create: 201, the user, its Location; ids count up.
    s_users (users, "POST", "/users/", NULL,
             "{\"name\":\"Edsger Dijkstra\",\"email\":\"ed@example.com\","
             "\"extra\":1}",
             201, &r);
    ck_assert_str_eq (r.location, "/users/4");
    doc = s_parse (r.body);
    ck_assert_str_eq (s_jstr (doc, "id"), "4");
    ck_assert_str_eq (s_jstr (doc, "email"), "ed@example.com");
    json_decref (doc);
    keel_users_reply_free (&r);
    ck_assert_uint_eq (keel_users_size (users), 4);

    //  Bad bodies: 400, nothing created.
    const char *bad[] = {
        NULL,
        "",
        "{",
        "[1]",
        "{\"name\":\"x\"}",
        "{\"email\":\"x@y\"}",
        "{\"name\":\"\",\"email\":\"x@y\"}",
        "{\"name\":1,\"email\":\"x@y\"}",
        "{\"name\":\"x\",\"email\":\"nope\"}",
        "{\"name\":\"x\",\"email\":\"@y\"}",
        "{\"name\":\"x\",\"email\":\"x@\"}",
        "{\"name\":\"x\",\"name\":\"y\",\"email\":\"x@y\"}",
        "{\"name\":\"a\\u0000b\",\"email\":\"x@y\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_users (users, "POST", "/users", NULL, bad[i], 400, &r);
        doc = s_parse (r.body);
        ck_assert_str_eq (s_jstr (doc, "error"), "bad_request");
        json_decref (doc);
        keel_users_reply_free (&r);
    }
    s_users (users, "POST", "/users", NULL, "{\"name\":\"x\"}", 400, &r);
    ck_assert_ptr_nonnull (strstr (r.body, "\\\"email\\\" is missing"));
    keel_users_reply_free (&r);
    char big[KEEL_USERS_MAX_NAME + 64];
    snprintf (big, sizeof big, "{\"name\":\"%0*d\",\"email\":\"x@y\"}",
              KEEL_USERS_MAX_NAME + 1, 0);
    s_users (users, "POST", "/users", NULL, big, 400, &r);
    keel_users_reply_free (&r);
    ck_assert_uint_eq (keel_users_size (users), 4);

    //  Delete: 204 without a body, then 404; ids are not reused.
    s_users (users, "DELETE", "/users/4", NULL, NULL, 204, &r);
    ck_assert_ptr_null (r.body);
    keel_users_reply_free (&r);
    s_users (users, "DELETE", "/users/4", NULL, NULL, 404, &r);
    keel_users_reply_free (&r);
    s_users (users, "DELETE", "/users/2", NULL, NULL, 204, &r);
    keel_users_reply_free (&r);
    s_users (users, "GET", "/users/3", NULL, NULL, 200, &r);
    keel_users_reply_free (&r);
    s_users (users, "POST", "/users", NULL,
             "{\"name\":\"Barbara Liskov\",\"email\":\"b@example.com\"}", 201,
             &r);
    ck_assert_str_eq (r.location, "/users/5");
    keel_users_reply_free (&r);

    //  Methods: 405 with Allow.
    s_users (users, "PUT", "/users/1", NULL, "{}", 405, &r);
    ck_assert_str_eq (r.allow, "GET, HEAD, DELETE");
    keel_users_reply_free (&r);
    s_users (users, "DELETE", "/users", NULL, NULL, 405, &r);
    ck_assert_str_eq (r.allow, "GET, HEAD, POST");
    keel_users_reply_free (&r);

    //  The bound: full is 409.
    while (keel_users_size (users) < KEEL_USERS_MAX) {
        s_users (users, "POST", "/users", NULL,
                 "{\"name\":\"n\",\"email\":\"n@e\"}", 201, &r);
        keel_users_reply_free (&r);
    }
    s_users (users, "POST", "/users", NULL,
             "{\"name\":\"n\",\"email\":\"n@e\"}", 409, &r);
    keel_users_reply_free (&r);
    ck_assert_uint_eq (keel_users_size (users), KEEL_USERS_MAX);
    keel_users_destroy (&users);
    keel_users_destroy (&users);
}
END_TEST

// ---------------------------------------------------------------------------
//  The web pages (pure core)

static json_t *
s_web (const char *method, const char *path, const char *request_id,
       const char *forwarded_for, int status, const char *allow)
{
    keel_web_request_t in = {method, path, request_id, forwarded_for, "w-1"};
    keel_web_reply_t out;
    ck_assert_int_eq (keel_web_answer (&in, &out), 0);
    ck_assert_msg (out.status == status, "%s %s: %d, not %d", method, path,
                   out.status, status);
    if (allow)
        ck_assert_str_eq (out.allow, allow);
    else
        ck_assert_ptr_null (out.allow);
    json_t *doc = s_parse (out.body);
    free (out.body);
    return doc;
}

START_TEST (test_web_pages)
{
    json_t *doc = s_web ("GET", "/health", NULL, NULL, 200, NULL);
    ck_assert_str_eq (s_jstr (doc, "status"), "ok");
    json_decref (doc);
    json_decref (s_web ("HEAD", "/health/", NULL, NULL, 200, NULL));

    doc = s_web ("GET", "/products", "r-7", "10.0.0.1, 127.0.0.1", 200, NULL);
    ck_assert_uint_eq (json_array_size (json_object_get (doc, "products")), 3);
    ck_assert_str_eq (s_jstr (doc, "instance"), "w-1");
    ck_assert_str_eq (s_jstr (doc, "request_id"), "r-7");
    ck_assert_str_eq (s_jstr (doc, "forwarded_for"), "10.0.0.1, 127.0.0.1");
    json_decref (doc);
    doc = s_web ("GET", "/products/", NULL, NULL, 200, NULL);
    ck_assert (json_is_null (json_object_get (doc, "request_id")));
    ck_assert (json_is_null (json_object_get (doc, "forwarded_for")));
    json_decref (doc);

    doc = s_web ("GET", "/products/pear", NULL, NULL, 200, NULL);
    ck_assert_str_eq (s_jstr (doc, "name"), "Pear");
    ck_assert_int_eq (json_integer_value (json_object_get (doc, "price")), 12);
    json_decref (doc);

    const char *missing[] = {
        "/", "/products/kiwi", "/products/apple/x", "/productsx", "/healthz",
        "",  "/products/appl"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        doc = s_web ("GET", missing[i], "r-8", NULL, 404, NULL);
        ck_assert_str_eq (s_jstr (doc, "error"), "not_found");
        ck_assert_str_eq (s_jstr (doc, "request_id"), "r-8");
        json_decref (doc);
    }
    doc = s_web ("POST", "/products", NULL, NULL, 405, "GET, HEAD");
    ck_assert_ptr_null (json_object_get (doc, "request_id"));
    json_decref (doc);
    json_decref (
        s_web ("DELETE", "/products/apple", NULL, NULL, 405, "GET, HEAD"));
}
END_TEST

// ---------------------------------------------------------------------------
//  A node: registry, users, web, gateway

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {"users", keel_users_actor, "users"},
    {"web", keel_web_actor, "web"},
    {"gateway", keel_gateway_actor, "gateway"},
    {NULL, NULL, NULL},
};

typedef struct {
    char *config_path;
    keel_config_t *config;
    zactor_t *node;
    char name[32];           //  node name
    char bus[64];            //  tcp://127.0.0.1:PORT (front door)
    char base[64];           //  http://127.0.0.1:PORT (gateway)
    char web[64];            //  http://127.0.0.1:PORT (web, direct)
    keel_client_t *registry; //  registry requests through the front door
} s_node_t;

static void
s_node_start (s_node_t *n)
{
    memset (n, 0, sizeof *n);
    int bus = testutil_free_port ();
    int http = testutil_free_port ();
    int web = testutil_free_port ();
    snprintf (n->name, sizeof n->name, "demo%d", bus);
    snprintf (n->bus, sizeof n->bus, "tcp://127.0.0.1:%d", bus);
    snprintf (n->base, sizeof n->base, "http://127.0.0.1:%d", http);
    snprintf (n->web, sizeof n->web, "http://127.0.0.1:%d", web);
    char *text = zsys_sprintf ("node\n"
                               "    name = %s\n"
                               "    bus = %s\n"
                               "    actors\n"
                               "        registry\n"
                               "        users\n"
                               "        web\n"
                               "        gateway\n"
                               "web\n"
                               "    listen = 127.0.0.1:%d\n"
                               "gateway\n"
                               "    listen = 127.0.0.1:%d\n"
                               "    auth\n"
                               "        key\n"
                               "            kid = dev\n"
                               "            alg = HS256\n"
                               "            secret = " S_SECRET "\n"
                               "    route\n"
                               "        name = users\n"
                               "        path = /users\n"
                               "        target = bus:users\n"
                               "    route\n"
                               "        name = user\n"
                               "        path = /users/*\n"
                               "        target = bus:users\n"
                               "    route\n"
                               "        name = profile\n"
                               "        path = /people/{id}/profile\n"
                               "        target = bus:users\n"
                               "        auth = jwt\n"
                               "    route\n"
                               "        name = products\n"
                               "        path = /products\n"
                               "        target = http:web\n"
                               "    route\n"
                               "        name = product\n"
                               "        path = /products/*\n"
                               "        target = http:web\n",
                               n->name, n->bus, web, http);
    n->config_path = testutil_write_temp (text);
    zstr_free (&text);
    char *error = NULL;
    n->config = keel_config_load (n->config_path, &error);
    ck_assert_msg (n->config, "config: %s", error);
    keel_node_args_t args = {n->config, s_defs};
    n->node = zactor_new (keel_node_actor, &args);
    ck_assert_ptr_nonnull (n->node);
    error = keel_actor_status (n->node);
    ck_assert_msg (!error, "node: %s", error);
    n->registry = keel_client_new ("test", n->bus, "registry");
    ck_assert_ptr_nonnull (n->registry);
}

static void
s_node_stop (s_node_t *n)
{
    keel_client_destroy (&n->registry);
    zactor_destroy (&n->node);
    keel_config_destroy (&n->config);
    unlink (n->config_path);
    zstr_free (&n->config_path);
}

// ---------------------------------------------------------------------------
//  HTTP with libcurl

typedef struct {
    long status;
    char *body;    //  NUL-terminated
    char *headers; //  raw response headers
} s_resp_t;

typedef struct {
    char *buf;
    size_t len;
} s_buf_t;

static size_t
s_collect (char *data, size_t size, size_t n, void *arg)
{
    s_buf_t *b = (s_buf_t *)arg;
    size_t add = size * n;
    char *buf = (char *)realloc (b->buf, b->len + add + 1);
    ck_assert_ptr_nonnull (buf);
    b->buf = buf;
    memcpy (b->buf + b->len, data, add);
    b->len += add;
    b->buf[b->len] = 0;
    return add;
}

//  One request; `header` is one "Name: value" line or NULL.
static void
s_http (const char *method, const char *url, const char *header,
        const char *body, s_resp_t *resp)
{
    memset (resp, 0, sizeof *resp);
    CURL *curl = curl_easy_init ();
    ck_assert_ptr_nonnull (curl);
    struct curl_slist *list = header ? curl_slist_append (NULL, header) : NULL;
    s_buf_t out = {NULL, 0}, hdr = {NULL, 0};
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
    if (streq (method, "HEAD"))
        curl_easy_setopt (curl, CURLOPT_NOBODY, 1L);
    if (body)
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_collect);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, &hdr);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long)testutil_slack (10000));
    CURLcode rc = curl_easy_perform (curl);
    ck_assert_msg (rc == CURLE_OK, "%s %s: %s", method, url,
                   curl_easy_strerror (rc));
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->body = out.buf ? out.buf : strdup ("");
    resp->headers = hdr.buf ? hdr.buf : strdup ("");
    curl_slist_free_all (list);
    curl_easy_cleanup (curl);
}

static void
s_resp_free (s_resp_t *resp)
{
    free (resp->body);
    free (resp->headers);
}

//  The value of a response header (case-insensitive), copied; NULL if none.
static char *
s_header (const s_resp_t *resp, const char *name)
{
    size_t len = strlen (name);
    for (const char *p = resp->headers; p && *p;) {
        const char *eol = strstr (p, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > len + 1 && strncasecmp (p, name, len) == 0 &&
            p[len] == ':') {
            const char *v = p + len + 1;
            while (*v == ' ')
                v++;
            return strndup (v, (size_t)(eol - v));
        }
        p = eol + 2;
    }
    return NULL;
}

//  Assert that header `name` is `value` (NULL: absent).
static void
s_assert_header (const s_resp_t *resp, const char *name, const char *value)
{
    char *got = s_header (resp, name);
    if (value)
        ck_assert_msg (got && streq (got, value), "%s: '%s', not '%s'", name,
                       got ? got : "(none)", value);
    else
        ck_assert_msg (!got, "%s: '%s', expected none", name, got);
    free (got);
}

//  `method` `base``path`, asserting the status; returns the parsed body
//  (caller decrefs), or NULL for an empty body. *resp_p, if not NULL, gets
//  the response (caller frees it).
static json_t *
s_call (const char *base, const char *method, const char *path,
        const char *header, const char *body, long status, s_resp_t *resp_p)
{
    char url[256];
    snprintf (url, sizeof url, "%s%s", base, path);
    s_resp_t r;
    s_http (method, url, header, body, &r);
    ck_assert_msg (r.status == status, "%s %s: %ld, not %ld: %s", method, url,
                   r.status, status, r.body);
    json_t *doc = *r.body ? s_parse (r.body) : NULL;
    if (*r.body)
        s_assert_header (&r, "Content-Type", "application/json");
    if (resp_p)
        *resp_p = r;
    else
        s_resp_free (&r);
    return doc;
}

//  GET `base``path` until it answers `status` (a service being found),
//  within a few seconds.
static void
s_wait_status (const char *base, const char *path, long status)
{
    char url[256];
    snprintf (url, sizeof url, "%s%s", base, path);
    int64_t deadline = zclock_mono () + testutil_slack (5000);
    long last = 0;
    while (zclock_mono () < deadline) {
        s_resp_t r;
        s_http ("GET", url, NULL, NULL, &r);
        last = r.status;
        s_resp_free (&r);
        if (last == status)
            return;
        zclock_sleep (20); //  polling an outside condition, bounded
    }
    ck_abort_msg ("GET %s: %ld, never %ld", url, last, status);
}

//  The registry's view of instance `id` (caller frees), or NULL with *code
//  set.
static Keel__Instance *
s_registry_get (s_node_t *n, const char *id, int *code)
{
    Keel__GetRequest req = KEEL__GET_REQUEST__INIT;
    req.id = (char *)id;
    ProtobufCMessage *reply = NULL;
    *code = keel_client_call (n->registry, "registry.get", &req.base, NULL,
                              &keel__instance__descriptor, &reply, NULL);
    return (Keel__Instance *)reply;
}

//  Wait until the registry has instance `id` passing; return it.
static Keel__Instance *
s_wait_passing (s_node_t *n, const char *id)
{
    int64_t deadline = zclock_mono () + testutil_slack (5000);
    while (zclock_mono () < deadline) {
        int code;
        Keel__Instance *inst = s_registry_get (n, id, &code);
        if (inst && inst->health &&
            inst->health->status == KEEL__HEALTH_STATUS__PASSING)
            return inst;
        if (inst)
            protobuf_c_message_free_unpacked (&inst->base, NULL);
        zclock_sleep (20); //  the registry's prober runs every second
    }
    ck_abort_msg ("%s never passing", id);
    return NULL;
}

// ---------------------------------------------------------------------------
//  The services in a node

START_TEST (test_users_through_gateway)
{
    s_node_t n;
    s_node_start (&n);
    char instance[64];
    snprintf (instance, sizeof instance, "%s-users", n.name);
    s_wait_status (n.base, "/users", 200);

    //  List.
    s_resp_t r;
    json_t *doc = s_call (n.base, "GET", "/users", NULL, NULL, 200, &r);
    ck_assert_uint_eq (json_array_size (json_object_get (doc, "users")), 3);
    s_assert_header (&r, "X-Users-Instance", instance);
    s_assert_header (&r, "X-Served-For", NULL);
    s_resp_free (&r);
    json_decref (doc);

    //  Get.
    doc = s_call (n.base, "GET", "/users/2", NULL, NULL, 200, NULL);
    ck_assert_str_eq (s_jstr (doc, "name"), "Alan Turing");
    json_decref (doc);

    //  Create, read it back, delete it.
    doc = s_call (n.base, "POST", "/users", "Content-Type: application/json",
                  "{\"name\":\"Edsger Dijkstra\",\"email\":\"ed@example.com\"}",
                  201, &r);
    ck_assert_str_eq (s_jstr (doc, "id"), "4");
    s_assert_header (&r, "Location", "/users/4");
    s_resp_free (&r);
    json_decref (doc);
    doc = s_call (n.base, "GET", "/users/4", NULL, NULL, 200, NULL);
    ck_assert_str_eq (s_jstr (doc, "email"), "ed@example.com");
    json_decref (doc);
    doc = s_call (n.base, "GET", "/users", NULL, NULL, 200, NULL);
    ck_assert_uint_eq (json_array_size (json_object_get (doc, "users")), 4);
    json_decref (doc);
    ck_assert_ptr_null (
        s_call (n.base, "DELETE", "/users/4", NULL, NULL, 204, NULL));

    //  Errors: JSON, with the gateway's request id.
    doc = s_call (n.base, "GET", "/users/4", "X-Request-Id: find-4", NULL, 404,
                  NULL);
    ck_assert_str_eq (s_jstr (doc, "error"), "not_found");
    ck_assert_str_eq (s_jstr (doc, "request_id"), "find-4");
    json_decref (doc);
    json_decref (s_call (n.base, "DELETE", "/users/99", NULL, NULL, 404, NULL));
    json_decref (s_call (n.base, "POST", "/users", NULL, "{", 400, NULL));
    doc =
        s_call (n.base, "POST", "/users", NULL, "{\"name\":\"x\"}", 400, NULL);
    ck_assert_ptr_nonnull (strstr (s_jstr (doc, "message"), "email"));
    json_decref (doc);
    json_decref (s_call (n.base, "PUT", "/users/1", NULL, "{}", 405, &r));
    s_assert_header (&r, "Allow", "GET, HEAD, DELETE");
    s_resp_free (&r);

    //  A template route with a token: the id comes from params (the path
    //  ends in "profile"), the subject comes back in X-Served-For.
    json_decref (
        s_call (n.base, "GET", "/people/1/profile", NULL, NULL, 401, NULL));
    char *token = keel_jwt_mint_hs256 (S_SECRET, "dev", "alice", NULL, NULL,
                                       NULL, 300, (int64_t)time (NULL));
    ck_assert_ptr_nonnull (token);
    char *auth = zsys_sprintf ("Authorization: Bearer %s", token);
    doc = s_call (n.base, "GET", "/people/1/profile", auth, NULL, 200, &r);
    ck_assert_str_eq (s_jstr (doc, "name"), "Ada Lovelace");
    s_assert_header (&r, "X-Served-For", "alice");
    s_assert_header (&r, "X-Users-Instance", instance);
    s_resp_free (&r);
    json_decref (doc);
    free (token);
    zstr_free (&auth);

    //  The same service over the bus, as the gateway calls it.
    keel_client_t *client = keel_client_new ("test", n.bus, "users");
    Keel__HttpRequest__ParamsEntry param =
        KEEL__HTTP_REQUEST__PARAMS_ENTRY__INIT;
    param.key = "id";
    param.value = "3";
    Keel__HttpRequest__ParamsEntry *params[] = {&param};
    Keel__HttpRequest req = KEEL__HTTP_REQUEST__INIT;
    req.method = "GET";
    req.path = "/anything";
    req.n_params = 1;
    req.params = params;
    req.subject = "bob";
    ProtobufCMessage *reply = NULL;
    ck_assert_int_eq (keel_client_call (client, "users.http", &req.base, NULL,
                                        &keel__http_response__descriptor,
                                        &reply, NULL),
                      KEEL_OK);
    Keel__HttpResponse *resp = (Keel__HttpResponse *)reply;
    ck_assert_uint_eq (resp->status, 200);
    ck_assert_ptr_nonnull (
        strstr ((const char *)resp->body.data, "\"Grace Hopper\""));
    bool served = false;
    for (size_t i = 0; i < resp->n_headers; i++)
        served |= streq (resp->headers[i]->name, "X-Served-For") &&
                  streq (resp->headers[i]->value, "bob");
    ck_assert (served);
    protobuf_c_message_free_unpacked (reply, NULL);
    keel_client_destroy (&client);

    //  The instance is in the registry, passing (heartbeats).
    Keel__Instance *inst = s_wait_passing (&n, instance);
    ck_assert_str_eq (inst->service, "users");
    protobuf_c_message_free_unpacked (&inst->base, NULL);
    s_node_stop (&n);
}
END_TEST

START_TEST (test_web_through_gateway)
{
    s_node_t n;
    s_node_start (&n);
    char instance[64];
    snprintf (instance, sizeof instance, "%s-web", n.name);

    //  Directly: health, the catalog without a gateway's headers, a 404.
    s_resp_t r;
    json_t *doc = s_call (n.web, "GET", "/health", NULL, NULL, 200, &r);
    ck_assert_str_eq (s_jstr (doc, "status"), "ok");
    s_assert_header (&r, "X-Web-Instance", instance);
    s_resp_free (&r);
    json_decref (doc);
    doc = s_call (n.web, "GET", "/products", NULL, NULL, 200, NULL);
    ck_assert_uint_eq (json_array_size (json_object_get (doc, "products")), 3);
    ck_assert_str_eq (s_jstr (doc, "instance"), instance);
    ck_assert (json_is_null (json_object_get (doc, "forwarded_for")));
    ck_assert (json_is_null (json_object_get (doc, "request_id")));
    json_decref (doc);
    doc = s_call (n.web, "GET", "/products/apple", NULL, NULL, 200, NULL);
    ck_assert_str_eq (s_jstr (doc, "name"), "Apple");
    json_decref (doc);
    doc = s_call (n.web, "GET", "/nowhere", NULL, NULL, 404, &r);
    ck_assert_str_eq (s_jstr (doc, "error"), "not_found");
    s_assert_header (&r, "X-Web-Instance", instance);
    s_resp_free (&r);
    json_decref (doc);
    json_decref (s_call (n.web, "POST", "/products", NULL, "{}", 405, &r));
    s_assert_header (&r, "Allow", "GET, HEAD");
    s_resp_free (&r);

    //  In the registry: its http endpoint, passing its HTTP check.
    Keel__Instance *inst = s_wait_passing (&n, instance);
    ck_assert_str_eq (inst->service, "web");
    ck_assert_str_eq (inst->endpoint, n.web);
    ck_assert_str_eq (inst->check->http_path, "/health");
    ck_assert_uint_eq (inst->check->interval_ms, 1000);
    protobuf_c_message_free_unpacked (&inst->base, NULL);
    //  ...and discoverable.
    Keel__DiscoverRequest dreq = KEEL__DISCOVER_REQUEST__INIT;
    dreq.service = "web";
    ProtobufCMessage *reply = NULL;
    ck_assert_int_eq (
        keel_client_call (n.registry, "registry.discover", &dreq.base, NULL,
                          &keel__instance_list__descriptor, &reply, NULL),
        KEEL_OK);
    Keel__InstanceList *list = (Keel__InstanceList *)reply;
    ck_assert_uint_eq (list->n_instances, 1);
    ck_assert_str_eq (list->instances[0]->id, instance);
    protobuf_c_message_free_unpacked (reply, NULL);

    //  Through the gateway: what it added shows in the body.
    s_wait_status (n.base, "/products", 200);
    doc = s_call (n.base, "GET", "/products", "X-Request-Id: look-1", NULL, 200,
                  &r);
    ck_assert_str_eq (s_jstr (doc, "request_id"), "look-1");
    ck_assert_str_eq (s_jstr (doc, "forwarded_for"), "127.0.0.1");
    ck_assert_str_eq (s_jstr (doc, "instance"), instance);
    s_assert_header (&r, "X-Web-Instance", instance);
    s_resp_free (&r);
    json_decref (doc);
    doc = s_call (n.base, "GET", "/products", NULL, NULL, 200, &r);
    char *rid = s_header (&r, "X-Request-Id");
    ck_assert_ptr_nonnull (rid);
    ck_assert_str_eq (s_jstr (doc, "request_id"), rid);
    free (rid);
    s_resp_free (&r);
    json_decref (doc);
    doc = s_call (n.base, "GET", "/products/widget", NULL, NULL, 200, NULL);
    ck_assert_int_eq (json_integer_value (json_object_get (doc, "price")), 10);
    json_decref (doc);
    //  A 404 from web, passed through; and the gateway's own (no route).
    doc = s_call (n.base, "GET", "/products/kiwi", NULL, NULL, 404, &r);
    ck_assert_str_eq (s_jstr (doc, "message"), "no product kiwi");
    s_assert_header (&r, "X-Web-Instance", instance);
    s_resp_free (&r);
    json_decref (doc);
    doc = s_call (n.base, "GET", "/nowhere", NULL, NULL, 404, &r);
    ck_assert_str_eq (s_jstr (doc, "error"), "not_found");
    s_assert_header (&r, "X-Web-Instance", NULL);
    s_resp_free (&r);
    json_decref (doc);

    //  The actor's bus endpoint answers keel.ping.
    keel_client_t *client = keel_client_new ("test", n.bus, "web");
    ck_assert_int_eq (
        keel_client_call (client, "keel.ping", NULL, NULL, NULL, NULL, NULL),
        KEEL_OK);
    keel_client_destroy (&client);
    s_node_stop (&n);
}
END_TEST

//  A web actor of its own (port 0), registering with a node's registry over
//  tcp as a second process would, and deregistering when it stops.
START_TEST (test_web_register_deregister)
{
    s_node_t n;
    s_node_start (&n);
    char *text = zsys_sprintf ("web\n"
                               "    listen = 127.0.0.1:0\n"
                               "    instance = web-solo\n"
                               "directory\n"
                               "    registry = %s\n",
                               n.bus);
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "solo.cfg", &error);
    ck_assert_msg (config, "%s", error);
    zstr_free (&text);
    keel_directory_t *directory = keel_directory_new ();
    ck_assert_int_eq (keel_directory_load (directory, config, "directory"), 0);
    char *endpoint = testutil_inproc ("web-solo");
    char *events = testutil_inproc ("web-solo-events");
    keel_actor_args_t args = {
        "web", "solo", endpoint,  events,
        NULL,  config, directory, KEEL_DEFAULT_MAX_MSG_SIZE};
    zactor_t *web = zactor_new (keel_web_actor, &args);
    error = keel_actor_status (web);
    ck_assert_msg (!error, "web: %s", error);

    Keel__Instance *inst = s_wait_passing (&n, "web-solo");
    ck_assert_str_eq (inst->service, "web");
    ck_assert (strncmp (inst->endpoint, "http://127.0.0.1:", 17) == 0);
    ck_assert_int_gt (atoi (inst->endpoint + 17), 0);
    //  The endpoint it advertised is where it answers.
    json_decref (
        s_call (inst->endpoint, "GET", "/health", NULL, NULL, 200, NULL));
    protobuf_c_message_free_unpacked (&inst->base, NULL);

    zactor_destroy (&web);
    int64_t deadline = zclock_mono () + testutil_slack (3000);
    int code = KEEL_OK;
    while (zclock_mono () < deadline) {
        inst = s_registry_get (&n, "web-solo", &code);
        if (inst)
            protobuf_c_message_free_unpacked (&inst->base, NULL);
        if (code == KEEL_ERR_NOT_FOUND)
            break;
        zclock_sleep (20);
    }
    ck_assert_int_eq (code, KEEL_ERR_NOT_FOUND);

    //  A bad config is refused with its line.
    keel_config_t *bad = keel_config_load_string ("web\n    listen = nowhere\n",
                                                  "bad.cfg", &error);
    ck_assert_ptr_nonnull (bad);
    args.config = bad;
    web = zactor_new (keel_web_actor, &args);
    error = keel_actor_status (web);
    ck_assert_ptr_nonnull (error);
    ck_assert_msg (strstr (error, "bad.cfg:2") && strstr (error, "listen"),
                   "%s", error);
    free (error);
    zactor_destroy (&web);
    keel_config_destroy (&bad);

    zstr_free (&endpoint);
    zstr_free (&events);
    keel_directory_destroy (&directory);
    keel_config_destroy (&config);
    s_node_stop (&n);
}
END_TEST

int
main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create ("demo_services");
    TCase *tc = tcase_create ("demo_services");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_users_store);
    tcase_add_test (tc, test_web_pages);
    tcase_add_test (tc, test_users_through_gateway);
    tcase_add_test (tc, test_web_through_gateway);
    tcase_add_test (tc, test_web_register_deregister);
    suite_add_tcase (s, tc);
    int rc = testutil_run (s);
    curl_global_cleanup ();
    return rc;
}
