/*  test_gateway.c - the gateway actor in a real node, driven over HTTP by
    libcurl, raw sockets and Python clients, in front of a real bus service
    (echo) and real HTTP upstreams (tests/data/http_upstream.py). */
#include "testutil.h"
#include "breaker_actor.h"
#include "echo_actor.h"
#include "gateway_actor.h"
#include "registry_actor.h"
#include "saga_actor.h"
#include "shop_actor.h"
#include "keel_client.h"
#include "keel_node.h"
#include "registry.pb-c.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
//  A node with registry, breaker, echo and gateway

static const keel_actor_def_t s_defs[] = {
    {"registry", keel_registry_actor, "registry"},
    {"breaker", keel_breaker_actor, "breaker"},
    {"echo", keel_echo_actor, "echo"},
    {"gateway", keel_gateway_actor, "gateway"},
    {"saga", keel_saga_actor, "saga"},
    {"shop", keel_shop_actor, "shop"},
    {NULL, NULL, NULL},
};

typedef struct {
    char *config_path; //  the config file
    keel_config_t *config;
    zactor_t *node;
    int http_port; //  gateway
    int bus_port;  //  node front door
    char bus[64];  //  tcp://127.0.0.1:PORT
    char base[64]; //  http://127.0.0.1:PORT
} s_node_t;

static char *
s_config_text (int bus_port, int http_port, const char *extra_gateway,
               const char *extra_routes)
{
    return zsys_sprintf (
        "node\n"
        "    name = gw%d\n"
        "    bus = tcp://127.0.0.1:%d\n"
        "    actors\n"
        "        registry\n"
        "        breaker\n"
        "        echo\n"
        "        gateway\n"
        "breaker\n"
        "    minimum_calls = 4\n"
        "    window_size = 4\n"
        "gateway\n"
        "    listen = 127.0.0.1:%d\n"
        "%s"
        "    auth\n"
        "        iss = keel-dev\n"
        "        key\n"
        "            kid = dev\n"
        "            alg = HS256\n"
        "            secret = keel-dev-secret-not-for-production\n"
        "        key\n"
        "            kid = rsa\n"
        "            alg = RS256\n"
        "            public_key_file = " KEEL_SOURCE_DIR
        "/tests/data/jwt/rsa_public.pem\n"
        "        api_key\n"
        "            name = robot\n"
        "            value = robot-key-0123456789\n"
        "            scopes = \"echo:read\"\n"
        "    route\n"
        "        name = echo\n"
        "        path = /echo/*\n"
        "        target = bus:echo\n"
        "    route\n"
        "        name = item\n"
        "        path = /items/{id}\n"
        "        methods = \"GET PUT\"\n"
        "        target = bus:echo\n"
        "    route\n"
        "        name = secure\n"
        "        path = /secure/*\n"
        "        target = bus:echo\n"
        "        auth = any\n"
        "        scopes = \"echo:read\"\n"
        "    route\n"
        "        name = admin\n"
        "        path = /admin/*\n"
        "        target = bus:echo\n"
        "        auth = jwt\n"
        "        roles = admin\n"
        "    route\n"
        "        name = nobody\n"
        "        path = /nobody/*\n"
        "        target = bus:nobody\n"
        "%s",
        http_port, bus_port, http_port, extra_gateway ? extra_gateway : "",
        extra_routes ? extra_routes : "");
}

static void
s_node_start (s_node_t *n, const char *extra_gateway, const char *extra_routes)
{
    memset (n, 0, sizeof *n);
    n->http_port = testutil_free_port ();
    n->bus_port = testutil_free_port ();
    snprintf (n->bus, sizeof n->bus, "tcp://127.0.0.1:%d", n->bus_port);
    snprintf (n->base, sizeof n->base, "http://127.0.0.1:%d", n->http_port);
    char *text =
        s_config_text (n->bus_port, n->http_port, extra_gateway, extra_routes);
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
}

static void
s_node_stop (s_node_t *n)
{
    zactor_destroy (&n->node);
    keel_config_destroy (&n->config);
    unlink (n->config_path);
    zstr_free (&n->config_path);
}

// ---------------------------------------------------------------------------
//  HTTP with libcurl

typedef struct {
    long status;
    char *body; //  NUL-terminated
    size_t size;
    char *headers; //  raw response headers
    size_t headers_size;
} s_resp_t;

static size_t
s_collect (char *data, size_t size, size_t n, void *arg)
{
    char **buf = (char **)arg;
    size_t *len = (size_t *)(buf + 1);
    size_t add = size * n;
    *buf = (char *)realloc (*buf, *len + add + 1);
    memcpy (*buf + *len, data, add);
    *len += add;
    (*buf)[*len] = 0;
    return add;
}

//  One request; headers NULL-terminated "Name: value" strings.
static void
s_http (const char *method, const char *url, const char *const *headers,
        const char *body, s_resp_t *resp)
{
    memset (resp, 0, sizeof *resp);
    CURL *curl = curl_easy_init ();
    ck_assert_ptr_nonnull (curl);
    struct curl_slist *list = NULL;
    for (const char *const *h = headers; h && *h; h++)
        list = curl_slist_append (list, *h);
    struct {
        char *buf;
        size_t len;
    } out = {NULL, 0}, hdr = {NULL, 0};
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
    resp->size = out.len;
    resp->headers = hdr.buf ? hdr.buf : strdup ("");
    resp->headers_size = hdr.len;
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
    const char *p = resp->headers;
    while (p && *p) {
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

static json_t *
s_json (const s_resp_t *resp)
{
    json_error_t error;
    json_t *doc = json_loads (resp->body, 0, &error);
    ck_assert_msg (doc, "not JSON (%s): %s", error.text, resp->body);
    return doc;
}

static const char *
s_jstr (json_t *doc, const char *key)
{
    json_t *v = json_object_get (doc, key);
    return v && json_is_string (v) ? json_string_value (v) : NULL;
}

//  GET `path` until it answers `status` (a service being discovered), at
//  most a few seconds. Returns the last status.
static long
s_wait_status (s_node_t *n, const char *path, long status)
{
    char url[256];
    snprintf (url, sizeof url, "%s%s", n->base, path);
    int64_t deadline = zclock_mono () + testutil_slack (5000);
    long last = 0;
    while (zclock_mono () < deadline) {
        s_resp_t r;
        s_http ("GET", url, NULL, NULL, &r);
        last = r.status;
        s_resp_free (&r);
        if (last == status)
            break;
        zclock_sleep (20); //  polling an outside condition, bounded
    }
    return last;
}

static char *
s_url (s_node_t *n, const char *path)
{
    return zsys_sprintf ("%s%s", n->base, path);
}

// ---------------------------------------------------------------------------
//  Raw sockets, for what curl will not send

static int
s_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons ((uint16_t)port)};
    inet_pton (AF_INET, "127.0.0.1", &addr.sin_addr);
    ck_assert_int_eq (connect (fd, (struct sockaddr *)&addr, sizeof addr), 0);
    struct timeval tv = {testutil_slack (5000) / 1000, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

//  Send `request`, read until the peer closes or `until` appears `count`
//  times. Returns what was read (caller frees).
static char *
s_raw (int port, const char *request, const char *until, int count)
{
    int fd = s_connect (port);
    ck_assert_int_eq (write (fd, request, strlen (request)),
                      (ssize_t)strlen (request));
    size_t cap = 65536, len = 0;
    char *buf = (char *)calloc (1, cap);
    for (;;) {
        ssize_t got = read (fd, buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
        buf[len] = 0;
        if (until) {
            int seen = 0;
            for (const char *p = strstr (buf, until); p;
                 p = strstr (p + 1, until))
                seen++;
            if (seen >= count)
                break;
        }
        if (len + 1 >= cap)
            break;
    }
    close (fd);
    return buf;
}

// ---------------------------------------------------------------------------
//  HTTP upstreams (Python)

typedef struct {
    pid_t pid;
    int fd;
    int port;
} s_upstream_t;

static void
s_upstream_start (s_upstream_t *up, const char *name)
{
    char script[512];
    snprintf (script, sizeof script, "%s/tests/data/http_upstream.py",
              KEEL_SOURCE_DIR);
    char *argv[] = {"/usr/bin/python3", script, "0", (char *)name, NULL};
    up->pid = testutil_spawn (argv, &up->fd);
    char *text = testutil_wait_for (up->fd, "\n", testutil_slack (10000));
    ck_assert_msg (text && strstr (text, "port "), "upstream did not start");
    up->port = atoi (strstr (text, "port ") + 5);
    free (text);
}

static void
s_upstream_stop (s_upstream_t *up)
{
    kill (up->pid, SIGTERM);
    testutil_reap (up->pid, 5000);
    close (up->fd);
}

//  Register an instance in the node's registry.
static void
s_register (s_node_t *n, const char *service, const char *id,
            const char *endpoint)
{
    char *argv[] = {KEEL_BIN, "registry", "register",   (char *)service,
                    "--id",   (char *)id, "--endpoint", (char *)endpoint,
                    "--bus",  n->bus,     NULL};
    char *out = NULL;
    int rc = testutil_run_cmd (argv, &out);
    ck_assert_msg (rc == 0, "register: %s", out);
    free (out);
}

static void
s_deregister (s_node_t *n, const char *id)
{
    char *argv[] = {KEEL_BIN, "registry", "deregister", (char *)id,
                    "--bus",  n->bus,     NULL};
    char *out = NULL;
    int rc = testutil_run_cmd (argv, &out);
    ck_assert_msg (rc == 0, "deregister: %s", out);
    free (out);
}

static char *
s_token (s_node_t *n, const char *sub, const char *scope)
{
    char *argv[] = {KEEL_BIN,  "token",       "--sub", (char *)sub,
                    "--scope", (char *)scope, NULL};
    (void)n;
    char *out = NULL;
    int rc = testutil_run_cmd (argv, &out);
    ck_assert_msg (rc == 0, "token: %s", out);
    char *nl = strchr (out, '\n');
    if (nl)
        *nl = 0;
    return out;
}

// ---------------------------------------------------------------------------
//  Tests

START_TEST (test_bus_route)
{
    s_node_t n;
    s_node_start (&n, NULL, NULL);
    ck_assert_int_eq (s_wait_status (&n, "/echo/ready", 200), 200);

    //  Template route: parameters, query, request id, hop-by-hop removed.
    char *url = s_url (&n, "/items/42?x=1");
    const char *headers[] = {"X-Request-Id: test-id-1",
                             "Connection: keep-alive, X-Private",
                             "X-Private: secret", "X-Public: shown", NULL};
    s_resp_t r;
    s_http ("GET", url, headers, NULL, &r);
    ck_assert_int_eq (r.status, 200);
    json_t *doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "path"), "/items/42");
    ck_assert_str_eq (s_jstr (doc, "query"), "x=1");
    ck_assert_str_eq (s_jstr (doc, "route"), "item");
    ck_assert_str_eq (s_jstr (doc, "request_id"), "test-id-1");
    ck_assert_str_eq (s_jstr (doc, "remote_addr"), "127.0.0.1");
    json_t *params = json_object_get (doc, "params");
    ck_assert_str_eq (json_string_value (json_object_get (params, "id")), "42");
    json_t *hdrs = json_object_get (doc, "headers");
    ck_assert_ptr_nonnull (json_object_get (hdrs, "X-Public"));
    ck_assert_ptr_null (json_object_get (hdrs, "X-Private"));
    ck_assert_ptr_null (json_object_get (hdrs, "Connection"));
    char *rid = s_header (&r, "X-Request-Id");
    ck_assert_str_eq (rid, "test-id-1");
    free (rid);
    char *ct = s_header (&r, "Content-Type");
    ck_assert_str_eq (ct, "application/json");
    free (ct);
    json_decref (doc);
    s_resp_free (&r);
    zstr_free (&url);

    //  POST with a body; a request id is made when none comes.
    url = s_url (&n, "/echo/post");
    s_http ("POST", url, NULL, "{\"a\":1}", &r);
    ck_assert_int_eq (r.status, 200);
    doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "body"), "{\"a\":1}");
    ck_assert_str_eq (s_jstr (doc, "method"), "POST");
    ck_assert_int_ge (strlen (s_jstr (doc, "request_id")), 16);
    rid = s_header (&r, "X-Request-Id");
    ck_assert_str_eq (rid, s_jstr (doc, "request_id"));
    free (rid);
    json_decref (doc);
    s_resp_free (&r);
    zstr_free (&url);

    //  Expect: 100-continue is answered (curl would wait a second).
    const char *expect[] = {"Expect: 100-continue", NULL};
    url = s_url (&n, "/echo/expect");
    int64_t sent = zclock_mono ();
    s_http ("POST", url, expect, "0123456789", &r);
    ck_assert_int_eq (r.status, 200);
    ck_assert_int_lt (zclock_mono () - sent, testutil_slack (900));
    s_resp_free (&r);
    zstr_free (&url);

    //  The service picks the status; a bus error becomes 502.
    url = s_url (&n, "/echo/x?status=201");
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 201);
    s_resp_free (&r);
    zstr_free (&url);
    url = s_url (&n, "/echo/x?fail=1");
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 502);
    doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "error"), "bad_gateway");
    ck_assert_ptr_nonnull (strstr (s_jstr (doc, "message"), "asked to fail"));
    json_decref (doc);
    s_resp_free (&r);
    zstr_free (&url);

    //  HEAD: headers, no body.
    url = s_url (&n, "/items/7");
    s_http ("HEAD", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 200);
    ck_assert_uint_eq (r.size, 0);
    char *cl = s_header (&r, "Content-Length");
    ck_assert_int_gt (atoi (cl), 10);
    free (cl);
    s_resp_free (&r);
    zstr_free (&url);
    s_node_stop (&n);
}
END_TEST

START_TEST (test_errors)
{
    s_node_t n;
    s_node_start (&n, "    header_timeout = 300ms\n    max_body = 1K\n", NULL);
    s_resp_t r;
    char *url = s_url (&n, "/nothing/here");
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 404);
    json_t *doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "error"), "not_found");
    ck_assert_int_eq (json_integer_value (json_object_get (doc, "status")),
                      404);
    ck_assert_ptr_nonnull (s_jstr (doc, "request_id"));
    json_decref (doc);
    s_resp_free (&r);
    zstr_free (&url);

    url = s_url (&n, "/items/1");
    s_http ("DELETE", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 405);
    char *allow = s_header (&r, "Allow");
    ck_assert_str_eq (allow, "GET, HEAD, PUT");
    free (allow);
    s_resp_free (&r);
    zstr_free (&url);

    //  No instance: 503 with Retry-After.
    url = s_url (&n, "/nobody/x");
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 503);
    char *after = s_header (&r, "Retry-After");
    ck_assert_ptr_nonnull (after);
    free (after);
    doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "error"), "no_instance");
    json_decref (doc);
    s_resp_free (&r);
    zstr_free (&url);

    //  Body too large.
    char big[2048];
    memset (big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    url = s_url (&n, "/echo/big");
    s_http ("POST", url, NULL, big, &r);
    ck_assert_int_eq (r.status, 413);
    s_resp_free (&r);
    zstr_free (&url);

    //  Malformed, URL too long, headers too large: raw.
    char *out =
        s_raw (n.http_port, "GET / HTTP/1.1\r\nHost x\r\n\r\n", NULL, 0);
    ck_assert_msg (strncmp (out, "HTTP/1.1 400", 12) == 0, "%s", out);
    ck_assert_ptr_nonnull (strstr (out, "Connection: close"));
    free (out);
    size_t long_size = 10000;
    char *req = (char *)malloc (long_size + 64);
    strcpy (req, "GET /");
    memset (req + 5, 'a', long_size);
    strcpy (req + 5 + long_size, " HTTP/1.1\r\nHost: x\r\n\r\n");
    out = s_raw (n.http_port, req, NULL, 0);
    ck_assert_msg (strncmp (out, "HTTP/1.1 414", 12) == 0, "%.100s", out);
    free (out);
    //  Four headers of ~9.9 KB: over the 32 KB header limit.
    char *value = (char *)malloc (9901);
    memset (value, 'b', 9900);
    value[9900] = 0;
    char *big_headers =
        zsys_sprintf ("GET / HTTP/1.1\r\nHost: x\r\nX-B1: %s\r\nX-B2: %s\r\n"
                      "X-B3: %s\r\nX-B4: %s\r\n\r\n",
                      value, value, value, value);
    out = s_raw (n.http_port, big_headers, NULL, 0);
    ck_assert_msg (strncmp (out, "HTTP/1.1 431", 12) == 0, "%.100s", out);
    free (out);
    zstr_free (&big_headers);
    free (value);
    free (req);

    //  Too slow to send the headers: 408.
    int64_t start = zclock_mono ();
    out = s_raw (n.http_port, "GET /echo/x HTTP/1.1\r\nHost: x\r\n", NULL, 0);
    ck_assert_msg (strncmp (out, "HTTP/1.1 408", 12) == 0, "%s", out);
    ck_assert_int_ge (zclock_mono () - start, 250);
    free (out);
    s_node_stop (&n);
}
END_TEST

START_TEST (test_pipelining)
{
    s_node_t n;
    s_node_start (&n, NULL, NULL);
    ck_assert_int_eq (s_wait_status (&n, "/echo/ready", 200), 200);
    const char *three = "GET /items/1 HTTP/1.1\r\nHost: a\r\n\r\n"
                        "GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n"
                        "GET /items/3 HTTP/1.1\r\nHost: a\r\n\r\n";
    char *out = s_raw (n.http_port, three, "HTTP/1.1 ", 3);
    char *first = strstr (out, "HTTP/1.1 200");
    char *second = strstr (out, "HTTP/1.1 404");
    ck_assert_ptr_nonnull (first);
    ck_assert_ptr_nonnull (second);
    ck_assert_ptr_nonnull (strstr (second + 1, "HTTP/1.1 200"));
    ck_assert (first < second);
    ck_assert_ptr_nonnull (strstr (first, "\"/items/1\""));
    ck_assert_ptr_nonnull (strstr (second, "\"/items/3\""));
    free (out);
    s_node_stop (&n);
}
END_TEST

START_TEST (test_http_upstream)
{
    s_upstream_t a, b;
    s_upstream_start (&a, "a");
    s_upstream_start (&b, "b");
    s_node_t n;
    s_node_start (&n, NULL,
                  "    route\n"
                  "        name = web\n"
                  "        path = /web/*\n"
                  "        target = http:web\n"
                  "        timeout = 500ms\n"
                  "        retries = 1\n");
    char ep[64];
    snprintf (ep, sizeof ep, "http://127.0.0.1:%d", a.port);
    s_register (&n, "web", "web-a", ep);
    ck_assert_int_eq (s_wait_status (&n, "/web/ready", 200), 200);
    snprintf (ep, sizeof ep, "http://127.0.0.1:%d", b.port);
    s_register (&n, "web", "web-b", ep);

    //  Round robin reaches both, headers as a proxy sets them.
    char *url = s_url (&n, "/web/hello?q=1");
    const char *headers[] = {
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "X-Forwarded-For: 10.0.0.1", "Connection: X-Hop", "X-Hop: 1", NULL};
    int seen_a = 0, seen_b = 0;
    int64_t deadline = zclock_mono () + testutil_slack (5000);
    while ((!seen_a || !seen_b) && zclock_mono () < deadline) {
        s_resp_t r;
        s_http ("GET", url, headers, NULL, &r);
        ck_assert_int_eq (r.status, 200);
        json_t *doc = s_json (&r);
        ck_assert_str_eq (s_jstr (doc, "path"), "/web/hello?q=1");
        const char *server = s_jstr (doc, "server");
        seen_a += streq (server, "a");
        seen_b += streq (server, "b");
        json_t *hs = json_object_get (doc, "headers");
        bool xff = false, trace = false, rid = false, hop = false;
        size_t i;
        json_t *pair;
        json_array_foreach (hs, i, pair)
        {
            const char *k = json_string_value (json_array_get (pair, 0));
            const char *v = json_string_value (json_array_get (pair, 1));
            if (strcasecmp (k, "X-Forwarded-For") == 0)
                xff = streq (v, "10.0.0.1, 127.0.0.1");
            if (strcasecmp (k, "traceparent") == 0)
                trace = strstr (v, "0af7651916cd43dd8448eb211c80319c") != NULL;
            if (strcasecmp (k, "X-Request-Id") == 0)
                rid = strlen (v) >= 16;
            if (strcasecmp (k, "X-Hop") == 0 ||
                strcasecmp (k, "Connection") == 0)
                hop = true;
        }
        ck_assert (xff && trace && rid && !hop);
        char *up = s_header (&r, "X-Upstream");
        ck_assert_str_eq (up, server);
        free (up);
        char *ka = s_header (&r, "Keep-Alive");
        ck_assert_ptr_null (ka); //  hop-by-hop, removed
        json_decref (doc);
        s_resp_free (&r);
    }
    ck_assert (seen_a && seen_b);
    zstr_free (&url);

    //  Upstream status passes through; too slow: 504.
    url = s_url (&n, "/web/status/418");
    s_resp_t r;
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 418);
    s_resp_free (&r);
    zstr_free (&url);
    url = s_url (&n, "/web/slow/2000");
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 504);
    s_resp_free (&r);
    zstr_free (&url);

    //  One instance dies: GETs are retried on the other; a POST is not.
    s_upstream_stop (&b);
    url = s_url (&n, "/web/again");
    for (int i = 0; i < 6; i++) {
        s_http ("GET", url, NULL, NULL, &r);
        ck_assert_int_eq (r.status, 200);
        s_resp_free (&r);
    }
    int failed = 0;
    for (int i = 0; i < 6; i++) {
        s_http ("POST", url, NULL, "x", &r);
        ck_assert (r.status == 200 || r.status == 502 || r.status == 503);
        failed += r.status != 200;
        s_resp_free (&r);
    }
    //  b's breaker opens after a few failures, so not every POST fails;
    //  but the ones that went to b did.
    (void)failed;

    //  Deregistered: the gateway stops using it at once.
    s_deregister (&n, "web-a");
    ck_assert_int_eq (s_wait_status (&n, "/web/x", 503), 503);
    zstr_free (&url);
    s_node_stop (&n);
    s_upstream_stop (&a);
}
END_TEST

START_TEST (test_auth)
{
    s_node_t n;
    s_node_start (&n, NULL, NULL);
    ck_assert_int_eq (s_wait_status (&n, "/echo/ready", 200), 200);
    char *url = s_url (&n, "/secure/x");
    s_resp_t r;
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 401);
    char *www = s_header (&r, "WWW-Authenticate");
    ck_assert_ptr_nonnull (www);
    ck_assert_ptr_nonnull (strstr (www, "Bearer realm=\"keel\""));
    free (www);
    s_resp_free (&r);

    char *token = s_token (&n, "alice", "echo:read");
    char *auth = zsys_sprintf ("Authorization: Bearer %s", token);
    const char *h1[] = {auth, NULL};
    s_http ("GET", url, h1, NULL, &r);
    ck_assert_int_eq (r.status, 200);
    json_t *doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "subject"), "alice");
    json_decref (doc);
    s_resp_free (&r);

    //  Valid token, wrong scope: 403.
    char *token2 = s_token (&n, "bob", "other");
    char *auth2 = zsys_sprintf ("Authorization: Bearer %s", token2);
    const char *h2[] = {auth2, NULL};
    s_http ("GET", url, h2, NULL, &r);
    ck_assert_int_eq (r.status, 403);
    doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "error"), "forbidden");
    json_decref (doc);
    s_resp_free (&r);

    //  Role missing: 403 too.
    char *admin = s_url (&n, "/admin/x");
    s_http ("GET", admin, h1, NULL, &r);
    ck_assert_int_eq (r.status, 403);
    s_resp_free (&r);

    //  API keys.
    const char *h3[] = {"X-API-Key: robot-key-0123456789", NULL};
    s_http ("GET", url, h3, NULL, &r);
    ck_assert_int_eq (r.status, 200);
    s_resp_free (&r);
    const char *h4[] = {"X-API-Key: robot-key-0123456788", NULL};
    s_http ("GET", url, h4, NULL, &r);
    ck_assert_int_eq (r.status, 401);
    s_resp_free (&r);

    //  Attacks with tokens made by PyJWT.
    char script[512];
    snprintf (script, sizeof script, "%s/tests/data/jwt_attacks.py",
              KEEL_SOURCE_DIR);
    char *argv[] = {"/usr/bin/python3", script, url, NULL};
    char *out = NULL;
    int rc = testutil_run_cmd (argv, &out);
    ck_assert_msg (rc == 0, "jwt attacks: %s", out);
    ck_assert_ptr_nonnull (strstr (out, "attacks refused:"));
    free (out);

    zstr_free (&admin);
    zstr_free (&auth);
    zstr_free (&auth2);
    free (token);
    free (token2);
    zstr_free (&url);
    s_node_stop (&n);
}
END_TEST

START_TEST (test_admin_and_cli)
{
    char *log_path = testutil_write_temp ("");
    char *extra = zsys_sprintf ("    access_log = %s\n", log_path);
    s_node_t n;
    s_node_start (&n, extra, NULL);
    ck_assert_int_eq (s_wait_status (&n, "/echo/ready", 200), 200);
    s_resp_t r;
    char *url = s_url (&n, "/healthz");
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 200);
    s_resp_free (&r);
    zstr_free (&url);
    url = s_url (&n, "/metrics");
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 200);
    ck_assert_ptr_nonnull (strstr (
        r.body, "keel_gateway_requests_total{route=\"echo\",code=\"200\"}"));
    ck_assert_ptr_nonnull (strstr (r.body, "keel_gateway_open_connections"));
    ck_assert_ptr_nonnull (
        strstr (r.body, "keel_gateway_request_duration_seconds_bucket"));
    ck_assert_ptr_nonnull (strstr (r.body, "keel_gateway_breaker_state{"));
    s_resp_free (&r);
    zstr_free (&url);

    //  keel gateway routes
    char *argv[] = {KEEL_BIN, "gateway", "routes", "--bus", n.bus, NULL};
    char *out = NULL;
    ck_assert_int_eq (testutil_run_cmd (argv, &out), 0);
    ck_assert_ptr_nonnull (strstr (out, "/items/{id}"));
    ck_assert_ptr_nonnull (strstr (out, "bus:echo"));
    free (out);

    //  Reload a changed file; a broken one is refused, routes kept.
    FILE *f = fopen (n.config_path, "a");
    fprintf (f, "    route\n        name = added\n        path = /added\n"
                "        target = bus:echo\n");
    fclose (f);
    char *reload[] = {KEEL_BIN, "gateway", "reload", "--bus", n.bus, NULL};
    ck_assert_int_eq (testutil_run_cmd (reload, &out), 0);
    ck_assert_ptr_nonnull (strstr (out, "/added"));
    free (out);
    url = s_url (&n, "/added");
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 200);
    s_resp_free (&r);
    f = fopen (n.config_path, "a");
    fprintf (f, "    route\n        name = broken\n        path = nope\n");
    fclose (f);
    ck_assert_int_ne (testutil_run_cmd (reload, &out), 0);
    ck_assert_msg (strstr (out, "gateway/route"), "%s", out);
    free (out);
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 200);
    s_resp_free (&r);
    zstr_free (&url);
    s_node_stop (&n);

    //  The access log has a line per request.
    char *text = NULL;
    char *cat[] = {"/bin/cat", log_path, NULL};
    testutil_run_cmd (cat, &text);
    ck_assert_ptr_nonnull (strstr (text, "\"GET /added HTTP/1.1\" 200"));
    ck_assert_ptr_nonnull (strstr (text, "route=added"));
    free (text);
    unlink (log_path);
    free (log_path);
    zstr_free (&extra);
}
END_TEST

START_TEST (test_breaker_open)
{
    s_node_t n;
    s_node_start (&n, NULL, NULL);
    ck_assert_int_eq (s_wait_status (&n, "/echo/ready", 200), 200);
    char *argv[] = {KEEL_BIN, "breaker", "force-open", "bus:echo",
                    "--bus",  n.bus,     NULL};
    char *out = NULL;
    ck_assert_int_eq (testutil_run_cmd (argv, &out), 0);
    free (out);
    ck_assert_int_eq (s_wait_status (&n, "/echo/x", 503), 503);
    s_resp_t r;
    char *url = s_url (&n, "/echo/x");
    s_http ("GET", url, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 503);
    char *after = s_header (&r, "Retry-After");
    ck_assert_ptr_nonnull (after);
    free (after);
    json_t *doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "error"), "circuit_open");
    json_decref (doc);
    s_resp_free (&r);
    char *close_argv[] = {KEEL_BIN, "breaker", "force-close", "bus:echo",
                          "--bus",  n.bus,     NULL};
    ck_assert_int_eq (testutil_run_cmd (close_argv, &out), 0);
    free (out);
    ck_assert_int_eq (s_wait_status (&n, "/echo/x", 200), 200);
    zstr_free (&url);
    s_node_stop (&n);
}
END_TEST

START_TEST (test_max_connections)
{
    s_node_t n;
    s_node_start (&n, "    max_connections = 2\n", NULL);
    int a = s_connect (n.http_port);
    int b = s_connect (n.http_port);
    //  Make sure both are accepted before the third comes.
    const char *ping = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[4096];
    ck_assert_int_gt (write (a, ping, strlen (ping)), 0);
    ck_assert_int_gt (read (a, buf, sizeof buf), 0);
    ck_assert_int_gt (write (b, ping, strlen (ping)), 0);
    ck_assert_int_gt (read (b, buf, sizeof buf), 0);
    char *out = s_raw (n.http_port, ping, NULL, 0);
    ck_assert_msg (strncmp (out, "HTTP/1.1 503", 12) == 0, "%s", out);
    free (out);
    close (a);
    close (b);
    s_node_stop (&n);
}
END_TEST

START_TEST (test_sighup_reload)
{
    int http_port = testutil_free_port ();
    int bus_port = testutil_free_port ();
    char *text = s_config_text (bus_port, http_port, NULL, NULL);
    char *path = testutil_write_temp (text);
    zstr_free (&text);
    char *argv[] = {KEEL_BIN, "node", "-c", path, NULL};
    int fd;
    pid_t pid = testutil_spawn (argv, &fd);
    char *out = testutil_wait_for (fd, "running", testutil_slack (10000));
    ck_assert_ptr_nonnull (out);
    free (out);
    s_node_t n = {.http_port = http_port};
    snprintf (n.base, sizeof n.base, "http://127.0.0.1:%d", http_port);
    ck_assert_int_eq (s_wait_status (&n, "/later", 404), 404);
    FILE *f = fopen (path, "a");
    fprintf (f, "    route\n        name = later\n        path = /later\n"
                "        target = bus:echo\n");
    fclose (f);
    kill (pid, SIGHUP);
    ck_assert_int_eq (s_wait_status (&n, "/later", 200), 200);
    kill (pid, SIGTERM);
    ck_assert_int_eq (testutil_reap (pid, 10000), 0);
    close (fd);
    unlink (path);
    free (path);
}
END_TEST

START_TEST (test_saga_routes)
{
    s_node_t n;
    memset (&n, 0, sizeof n);
    n.http_port = testutil_free_port ();
    snprintf (n.base, sizeof n.base, "http://127.0.0.1:%d", n.http_port);
    char *text = zsys_sprintf (
        "node\n    name = gwsaga%d\n    actors\n        registry\n"
        "        saga\n        shop\n        gateway\n"
        "saga\n    log = \":memory:\"\n    definition\n        name = order\n"
        "        step\n            name = create\n            service = "
        "orders\n"
        "            action = create\n            compensation = cancel\n"
        "            non_retryable = CONFLICT\n"
        "        step\n            name = charge\n"
        "            service = payments\n            action = charge\n"
        "            compensation = refund\n            non_retryable = "
        "CONFLICT\n"
        "gateway\n    listen = 127.0.0.1:%d\n    breaker = \"\"\n"
        "    route\n        name = orders\n        path = /orders\n"
        "        target = saga:order\n"
        "    route\n        name = order\n        path = /orders/{id}\n"
        "        target = saga-status:order\n",
        n.http_port, n.http_port);
    char *error = NULL;
    n.config = keel_config_load_string (text, "saga.cfg", &error);
    zstr_free (&text);
    ck_assert_msg (n.config, "%s", error);
    keel_node_args_t args = {n.config, s_defs};
    n.node = zactor_new (keel_node_actor, &args);
    error = keel_actor_status (n.node);
    ck_assert_msg (!error, "%s", error);

    //  Wait for the end: 200 with the final state (the first may need the
    //  participants to register: retried inside the saga).
    char *url = s_url (&n, "/orders");
    const char *wait[] = {"Prefer: wait=5", "Idempotency-Key: k-1", NULL};
    s_resp_t r;
    s_http ("POST", url, wait, "{\"qty\":1,\"amount\":5}", &r);
    ck_assert_int_eq (r.status, 200);
    json_t *doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "state"), "COMPLETED");
    char *id = strdup (s_jstr (doc, "id"));
    ck_assert_int_eq (json_integer_value (json_object_get (
                          json_object_get (doc, "input"), "amount")),
                      5);
    json_decref (doc);
    s_resp_free (&r);
    //  The same key: the same saga.
    s_http ("POST", url, wait, "{\"qty\":1,\"amount\":5}", &r);
    doc = s_json (&r);
    ck_assert_str_eq (s_jstr (doc, "id"), id);
    json_decref (doc);
    s_resp_free (&r);

    //  Without waiting: 202, Location, then the status route.
    s_http ("POST", url, NULL, "{\"fail\":\"payments\"}", &r);
    ck_assert_int_eq (r.status, 202);
    char *location = s_header (&r, "Location");
    ck_assert_ptr_nonnull (location);
    ck_assert_int_eq (strncmp (location, "/orders/", 8), 0);
    s_resp_free (&r);
    char *status_url = s_url (&n, location);
    int64_t deadline = zclock_mono () + testutil_slack (5000);
    const char *state = NULL;
    do {
        s_http ("GET", status_url, NULL, NULL, &r);
        ck_assert_int_eq (r.status, 200);
        doc = s_json (&r);
        state = s_jstr (doc, "state");
        bool done = streq (state, "COMPENSATED");
        json_decref (doc);
        s_resp_free (&r);
        if (done)
            break;
        zclock_sleep (20); //  polling an outside condition, bounded
    } while (zclock_mono () < deadline);
    ck_assert (zclock_mono () < deadline);
    char *missing = s_url (&n, "/orders/nope");
    s_http ("GET", missing, NULL, NULL, &r);
    ck_assert_int_eq (r.status, 404);
    s_resp_free (&r);
    zstr_free (&missing);
    zstr_free (&status_url);
    free (location);
    free (id);
    zstr_free (&url);
    zactor_destroy (&n.node);
    keel_config_destroy (&n.config);
}
END_TEST

int
main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create ("gateway");
    TCase *tc = tcase_create ("gateway");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_bus_route);
    tcase_add_test (tc, test_errors);
    tcase_add_test (tc, test_pipelining);
    tcase_add_test (tc, test_http_upstream);
    tcase_add_test (tc, test_auth);
    tcase_add_test (tc, test_admin_and_cli);
    tcase_add_test (tc, test_breaker_open);
    tcase_add_test (tc, test_max_connections);
    tcase_add_test (tc, test_sighup_reload);
    tcase_add_test (tc, test_saga_routes);
    suite_add_tcase (s, tc);
    int rc = testutil_run (s);
    curl_global_cleanup ();
    return rc;
}
