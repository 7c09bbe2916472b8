/*  make_corpus.c - writes the seed corpora of fuzz/corpus/NAME/ from real
    inputs: envelopes packed by keel's own codec, HTTP requests as clients
    send them (pipelined, chunked, malformed), the JWTs of
    tests/data/jwt/vectors.json, configs as the tests write them, and saga
    definitions packed by protobuf-c with scripts that drive them.

        cmake --build build --target make_fuzz_corpus
        build/make_fuzz_corpus fuzz/corpus

    Run it again after a schema or a format changes; the files it writes
    are committed. Inputs that the fuzzer found and that are kept as
    regressions go in the same folders, under other names.
*/
#include "keel_codec.h"

#include "breaker.pb-c.h"
#include "echo.pb-c.h"
#include "gateway.pb-c.h"
#include "registry.pb-c.h"
#include "saga.pb-c.h"

#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

static const char *s_root; //  fuzz/corpus
static int s_written;

static void
s_write (const char *target, const char *name, const void *data, size_t size)
{
    char *dir = zsys_sprintf ("%s/%s", s_root, target);
    mkdir (dir, 0755);
    char *path = zsys_sprintf ("%s/%s", dir, name);
    FILE *file = fopen (path, "wb");
    if (!file || fwrite (data, 1, size, file) != size) {
        fprintf (stderr, "make_corpus: cannot write %s\n", path);
        exit (1);
    }
    fclose (file);
    s_written++;
    free (path);
    free (dir);
}

// ---------------------------------------------------------------------------
//  envelope: frames as keel_codec_frame packs them

static void
s_frame (const char *name, const Keel__Envelope *env,
         const ProtobufCMessage *payload)
{
    zframe_t *frame = keel_codec_frame (env, payload);
    assert (frame);
    s_write ("envelope", name, zframe_data (frame), zframe_size (frame));
    zframe_destroy (&frame);
}

static Keel__Envelope
s_env (Keel__Kind kind, const char *type)
{
    Keel__Envelope env = KEEL__ENVELOPE__INIT;
    env.version = KEEL_WIRE_VERSION;
    env.kind = kind;
    env.type = (char *)type;
    env.correlation_id = 0x1122334455667788ULL;
    env.sender = "client-1";
    env.timeout_ms = 2000;
    env.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    return env;
}

static void
s_envelopes (void)
{
    //  registry
    Keel__HealthCheck check = KEEL__HEALTH_CHECK__INIT;
    check.ttl_ms = 5000;
    check.failures_before_critical = 2;
    check.deregister_critical_after_ms = 60000;
    char *tags[] = {"v2", "eu-west"};
    Keel__Instance__MetaEntry meta = KEEL__INSTANCE__META_ENTRY__INIT;
    meta.key = "zone";
    meta.value = "a";
    Keel__Instance__MetaEntry *metas[] = {&meta};
    Keel__Instance instance = KEEL__INSTANCE__INIT;
    instance.id = "users-1";
    instance.service = "users";
    instance.endpoint = "tcp://10.0.0.7:7001";
    instance.n_tags = 2;
    instance.tags = tags;
    instance.n_meta = 1;
    instance.meta = metas;
    instance.weight = 3;
    instance.check = &check;
    Keel__RegisterRequest reg = KEEL__REGISTER_REQUEST__INIT;
    reg.instance = &instance;
    Keel__Envelope env = s_env (KEEL__KIND__REQUEST, "registry.register");
    env.service = "registry";
    env.idempotency_key = "register-users-1";
    s_frame ("registry-register", &env, &reg.base);

    Keel__HealthCheck http_check = KEEL__HEALTH_CHECK__INIT;
    http_check.http_path = "/health";
    http_check.interval_ms = 1000;
    http_check.timeout_ms = 500;
    Keel__Instance web = KEEL__INSTANCE__INIT;
    web.id = "web-1";
    web.service = "web";
    web.endpoint = "http://127.0.0.1:8081";
    web.check = &http_check;
    reg.instance = &web;
    s_frame ("registry-register-http", &env, &reg.base);

    Keel__HeartbeatRequest beat = KEEL__HEARTBEAT_REQUEST__INIT;
    beat.id = "seed-1";
    beat.status = KEEL__HEALTH_STATUS__WARNING;
    beat.output = "disk 91%";
    env = s_env (KEEL__KIND__ONEWAY, "registry.heartbeat");
    s_frame ("registry-heartbeat", &env, &beat.base);

    Keel__DeregisterRequest dereg = KEEL__DEREGISTER_REQUEST__INIT;
    dereg.id = "seed-1";
    env = s_env (KEEL__KIND__REQUEST, "registry.deregister");
    s_frame ("registry-deregister", &env, &dereg.base);

    Keel__GetRequest get = KEEL__GET_REQUEST__INIT;
    get.id = "seed-1";
    env = s_env (KEEL__KIND__REQUEST, "registry.get");
    s_frame ("registry-get", &env, &get.base);

    Keel__DiscoverRequest__MetaEntry want =
        KEEL__DISCOVER_REQUEST__META_ENTRY__INIT;
    want.key = "zone";
    want.value = "a";
    Keel__DiscoverRequest__MetaEntry *wants[] = {&want};
    Keel__DiscoverRequest discover = KEEL__DISCOVER_REQUEST__INIT;
    discover.service = "seed";
    discover.n_tags = 1;
    discover.tags = tags;
    discover.n_meta = 1;
    discover.meta = wants;
    discover.include_unhealthy = 1;
    env = s_env (KEEL__KIND__REQUEST, "registry.discover");
    s_frame ("registry-discover", &env, &discover.base);

    Keel__ListRequest list = KEEL__LIST_REQUEST__INIT;
    list.service = "";
    env = s_env (KEEL__KIND__REQUEST, "registry.list");
    s_frame ("registry-list", &env, &list.base);

    Keel__RegistryEvent change = KEEL__REGISTRY_EVENT__INIT;
    change.index = 7;
    change.instance = &instance;
    change.reason = "registered";
    env = s_env (KEEL__KIND__EVENT, "registry.registered");
    env.sequence = 7;
    s_frame ("registry-event", &env, &change.base);

    //  Replication between registries: a peer's own change, digests, fetch.
    instance.origin = "peer";
    instance.version = (uint64_t)1795736385852 << 16;
    s_frame ("registry-event-peer", &env, &change.base);
    instance.origin = "";
    instance.version = 0;
    Keel__DigestRequest digest = KEEL__DIGEST_REQUEST__INIT;
    digest.origin = "me";
    digest.hash = 0xcbf29ce484222325ULL;
    env = s_env (KEEL__KIND__REQUEST, "registry.digest");
    s_frame ("registry-digest", &env, &digest.base);
    Keel__DigestEntry entries[2] = {KEEL__DIGEST_ENTRY__INIT,
                                    KEEL__DIGEST_ENTRY__INIT};
    entries[0].id = "users-1";
    entries[0].version = 5;
    entries[1].id = "web-1";
    entries[1].version = 9;
    Keel__DigestEntry *entry_list[] = {&entries[0], &entries[1]};
    Keel__DigestReply digest_reply = KEEL__DIGEST_REPLY__INIT;
    digest_reply.n_entries = 2;
    digest_reply.entries = entry_list;
    digest_reply.clock = 9;
    env = s_env (KEEL__KIND__REPLY, "registry.digest");
    s_frame ("registry-digest-reply", &env, &digest_reply.base);
    char *fetch_ids[] = {"users-1", "seed-1"};
    Keel__FetchRequest fetch = KEEL__FETCH_REQUEST__INIT;
    fetch.n_ids = 2;
    fetch.ids = fetch_ids;
    env = s_env (KEEL__KIND__REQUEST, "registry.fetch");
    s_frame ("registry-fetch", &env, &fetch.base);

    //  breaker
    Keel__OutcomeReport reports[3] = {KEEL__OUTCOME_REPORT__INIT,
                                      KEEL__OUTCOME_REPORT__INIT,
                                      KEEL__OUTCOME_REPORT__INIT};
    reports[0].key = "users";
    reports[0].outcome = KEEL__CALL_OUTCOME__FAILURE;
    reports[0].duration_us = 1500;
    reports[1].key = "users/users-1";
    reports[1].outcome = KEEL__CALL_OUTCOME__SUCCESS;
    reports[1].duration_us = 250000;
    reports[2].key = "payments";
    reports[2].outcome = KEEL__CALL_OUTCOME__IGNORED;
    Keel__OutcomeReport *report_list[] = {&reports[0], &reports[1],
                                          &reports[2]};
    Keel__ReportBatch batch = KEEL__REPORT_BATCH__INIT;
    batch.n_reports = 3;
    batch.reports = report_list;
    env = s_env (KEEL__KIND__ONEWAY, "breaker.report");
    s_frame ("breaker-report", &env, &batch.base);

    Keel__ControlRequest control = KEEL__CONTROL_REQUEST__INIT;
    control.key = "users";
    control.action = KEEL__CONTROL_REQUEST__ACTION__METRICS_ONLY;
    env = s_env (KEEL__KIND__REQUEST, "breaker.control");
    s_frame ("breaker-control", &env, &control.base);

    Keel__BreakerKey key = KEEL__BREAKER_KEY__INIT;
    key.key = "users";
    env = s_env (KEEL__KIND__REQUEST, "breaker.get");
    s_frame ("breaker-get", &env, &key.base);

    Keel__BreakerTransition transition = KEEL__BREAKER_TRANSITION__INIT;
    transition.key = "users";
    transition.from = KEEL__BREAKER_STATE__CLOSED;
    transition.to = KEEL__BREAKER_STATE__OPEN;
    transition.reason = "failure rate >= threshold";
    transition.open_remaining_ms = 60000;
    env = s_env (KEEL__KIND__EVENT, "breaker.transition");
    env.sequence = 3;
    s_frame ("breaker-transition", &env, &transition.base);

    //  saga
    Keel__RetryPolicy retry = KEEL__RETRY_POLICY__INIT;
    retry.max_attempts = 4;
    retry.initial_interval_ms = 50;
    retry.backoff = 1.5;
    retry.max_interval_ms = 1000;
    char *non_retryable[] = {"CONFLICT", "BAD_REQUEST"};
    retry.n_non_retryable = 2;
    retry.non_retryable = non_retryable;
    Keel__SagaStep steps[2] = {KEEL__SAGA_STEP__INIT, KEEL__SAGA_STEP__INIT};
    steps[0].name = "reserve";
    steps[0].service = "inventory";
    steps[0].action = "reserve";
    steps[0].compensation = "release";
    steps[0].timeout_ms = 2000;
    steps[0].retry = &retry;
    steps[1].name = "charge";
    steps[1].service = "payments";
    steps[1].action = "charge";
    steps[1].compensation = "refund";
    steps[1].pivot = 1;
    Keel__SagaStep *step_list[] = {&steps[0], &steps[1]};
    Keel__SagaDefinition def = KEEL__SAGA_DEFINITION__INIT;
    def.name = "create-order";
    def.version = 2;
    def.n_steps = 2;
    def.steps = step_list;
    env = s_env (KEEL__KIND__REQUEST, "saga.define");
    s_frame ("saga-define", &env, &def.base);

    Keel__StartRequest start = KEEL__START_REQUEST__INIT;
    start.definition = "create-order";
    start.input.data = (uint8_t *)"{\"sku\":\"a-1\",\"qty\":2}";
    start.input.len = strlen ((char *)start.input.data);
    start.idempotency_key = "order-77";
    start.wait = 1;
    start.wait_ms = 1500;
    env = s_env (KEEL__KIND__REQUEST, "saga.start");
    s_frame ("saga-start", &env, &start.base);

    Keel__SagaRef ref = KEEL__SAGA_REF__INIT;
    ref.id = "01HZX3J2Q4R5S6T7V8W9XYZABC";
    env = s_env (KEEL__KIND__REQUEST, "saga.status");
    s_frame ("saga-status", &env, &ref.base);

    Keel__ResolveRequest resolve = KEEL__RESOLVE_REQUEST__INIT;
    resolve.id = ref.id;
    resolve.action = KEEL__RESOLVE_REQUEST__ACTION__SKIP;
    env = s_env (KEEL__KIND__REQUEST, "saga.resolve");
    s_frame ("saga-resolve", &env, &resolve.base);

    Keel__ListSagasRequest sagas = KEEL__LIST_SAGAS_REQUEST__INIT;
    sagas.state = KEEL__SAGA_STATE__SAGA_STUCK;
    sagas.limit = 10;
    env = s_env (KEEL__KIND__REQUEST, "saga.list");
    s_frame ("saga-list", &env, &sagas.base);

    Keel__SagaStepRequest step = KEEL__SAGA_STEP_REQUEST__INIT;
    step.saga_id = ref.id;
    step.definition = "create-order";
    step.step = "charge";
    step.compensate = 1;
    step.input = start.input;
    step.output.data = (uint8_t *)"paid";
    step.output.len = 4;
    step.attempt = 2;
    env = s_env (KEEL__KIND__REQUEST, "payments.refund");
    env.service = "payments";
    env.idempotency_key = "01HZX3J2Q4R5S6T7V8W9XYZABC/charge/c";
    s_frame ("saga-step-request", &env, &step.base);

    //  gateway: a bus route's request
    Keel__HttpHeader header = KEEL__HTTP_HEADER__INIT;
    header.name = "Accept";
    header.value = "application/json";
    Keel__HttpHeader *headers[] = {&header};
    Keel__HttpRequest__ParamsEntry param =
        KEEL__HTTP_REQUEST__PARAMS_ENTRY__INIT;
    param.key = "id";
    param.value = "42";
    Keel__HttpRequest__ParamsEntry *params[] = {&param};
    Keel__HttpRequest http = KEEL__HTTP_REQUEST__INIT;
    http.method = "GET";
    http.path = "/users/42";
    http.query = "fields=name";
    http.n_headers = 1;
    http.headers = headers;
    http.route = "users";
    http.n_params = 1;
    http.params = params;
    http.remote_addr = "127.0.0.1:50312";
    http.request_id = "r-1";
    http.subject = "alice";
    env = s_env (KEEL__KIND__REQUEST, "users.http");
    s_frame ("gateway-http-request", &env, &http.base);

    //  echo, ping, replies
    Keel__EchoRequest echo = KEEL__ECHO_REQUEST__INIT;
    echo.text = "hello";
    env = s_env (KEEL__KIND__REQUEST, "echo.echo");
    s_frame ("echo", &env, &echo.base);
    env = s_env (KEEL__KIND__REQUEST, "keel.ping");
    env.timeout_ms = 0;
    s_frame ("ping", &env, NULL);
    Keel__IndexReply index = KEEL__INDEX_REPLY__INIT;
    index.index = 12;
    env = s_env (KEEL__KIND__REPLY, "registry.register");
    s_frame ("reply-index", &env, &index.base);
    env = s_env (KEEL__KIND__REPLY, "registry.get");
    env.error_code = KEEL__ERROR_CODE__NOT_FOUND;
    env.error_text = "no instance 'x'";
    s_frame ("reply-error", &env, NULL);

    //  refused by the checks (but well-formed protobuf)
    env = s_env (KEEL__KIND__REQUEST, "registry.get");
    env.version = 2;
    s_frame ("bad-version", &env, &get.base);
    env = s_env (KEEL__KIND__REQUEST, "registry get");
    s_frame ("bad-type", &env, &get.base);
    env = s_env (KEEL__KIND__REQUEST, "registry.get");
    env.error_code = KEEL__ERROR_CODE__INTERNAL;
    s_frame ("bad-error-outside-reply", &env, NULL);
    env = s_env ((Keel__Kind)9, "registry.get");
    s_frame ("bad-kind", &env, NULL);
    //  NUL inside the type: packed by hand (protobuf-c packs C strings)
    static const uint8_t nul_type[] = {0x08, 0x01, 0x10, 0x01, 0x1A, 0x05,
                                       'a',  '.',  'b',  0x00, 'c'};
    s_write ("envelope", "bad-nul-in-type", nul_type, sizeof nul_type);
    //  a frame cut short
    env = s_env (KEEL__KIND__REQUEST, "registry.register");
    reg.instance = &instance;
    zframe_t *frame = keel_codec_frame (&env, &reg.base);
    s_write ("envelope", "bad-truncated", zframe_data (frame),
             zframe_size (frame) - 5);
    zframe_destroy (&frame);
}

// ---------------------------------------------------------------------------
//  http_request: 4 control bytes (fuzz_http_request.c) + the connection

static void
s_http (const char *name, uint8_t limits, uint8_t split1, uint8_t split2,
        uint8_t flags, const char *text)
{
    size_t size = strlen (text);
    uint8_t *data = (uint8_t *)malloc (size + 4);
    data[0] = limits;
    data[1] = split1;
    data[2] = split2;
    data[3] = flags;
    memcpy (data + 4, text, size);
    s_write ("http_request", name, data, size + 4);
    free (data);
}

static void
s_http_requests (void)
{
    s_http ("get", 0, 0, 0, 0,
            "GET /users/42?fields=name HTTP/1.1\r\n"
            "Host: api.example.com\r\n"
            "Accept: application/json\r\n"
            "Authorization: Bearer abc.def.ghi\r\n\r\n");
    s_http ("get-split", 0, 40, 90, 0,
            "GET /users/%7Ebob HTTP/1.1\r\nHost: api.example.com:8080\r\n"
            "User-Agent: curl/8.0\r\n\r\n");
    s_http ("get-bytewise", 0, 10, 200, 1,
            "GET /files/alice/a/b.txt HTTP/1.1\r\nHost: a.example.com\r\n"
            "X-Request-Id: r-77\r\n\r\n");
    s_http ("post-body", 0, 128, 200, 0,
            "POST /orders HTTP/1.1\r\nHost: shop\r\n"
            "Content-Type: application/json\r\nContent-Length: 21\r\n"
            "Idempotency-Key: k-1\r\nPrefer: wait=2\r\n\r\n"
            "{\"sku\":\"a-1\",\"n\":2}\r\n");
    s_http ("post-chunked", 0, 60, 120, 0,
            "POST /orders HTTP/1.1\r\nHost: shop\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    s_http ("pipelined", 0, 0, 0, 0,
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
            "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
            "DELETE /users/7 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    s_http ("pipelined-split", 0, 30, 31, 0,
            "GET /users/1 HTTP/1.1\r\nHost: h\r\n\r\n"
            "PUT /users/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            "GET /static/x.css HTTP/1.1\r\nHost: h\r\n\r\n");
    s_http ("http10-keepalive", 0, 0, 0, 0,
            "GET / HTTP/1.0\r\nHost: api.example.com\r\n"
            "Connection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    s_http ("expect-continue", 0, 100, 100, 0,
            "PUT /users/9 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
            "Content-Length: 4\r\n\r\nbody");
    s_http ("hop-by-hop", 0, 0, 0, 0,
            "GET /users/3 HTTP/1.1\r\nHost: h\r\n"
            "Connection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n"
            "X-Secret: s\r\nTE: trailers\r\nProxy-Connection: x\r\n"
            "Upgrade-Insecure-Requests: 1\r\nX-Kept: k\r\n\r\n");
    s_http ("upgrade", 0, 0, 0, 0,
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x05");
    s_http ("connect", 0, 0, 0, 0,
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    s_http ("absolute-form", 0, 0, 0, 0,
            "GET http://api.example.com/users/5?x=1 HTTP/1.1\r\n"
            "Host: api.example.com\r\n\r\n");
    s_http ("options-star", 0, 0, 0, 0,
            "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    s_http ("obs-fold", 0, 0, 0, 0,
            "GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n  b\r\n\r\n");
    s_http ("bad-header-name", 0, 0, 0, 0,
            "GET / HTTP/1.1\r\nHo st: h\r\n\r\n");
    s_http ("bad-dot-segments", 0, 0, 0, 0,
            "GET /static/../etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n");
    s_http (
        "smuggle-cl-te", 0, 0, 0, 0,
        "POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n");
    s_http ("duplicate-content-length", 0, 0, 0, 0,
            "POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
            "Content-Length: 5\r\n\r\nabcde");
    s_http ("bad-chunk-size", 0, 0, 0, 0,
            "POST /orders HTTP/1.1\r\nHost: h\r\n"
            "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n");
    s_http ("small-limits-url", 0x02, 0, 0, 0,
            "GET /users/0123456789012345678901234567890123456789 HTTP/1.1\r\n"
            "Host: h\r\n\r\n");
    s_http ("small-limits-headers", 0x28, 0, 0, 0,
            "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"
            "E: 5\r\n\r\n");
    s_http ("small-limits-body", 0x80, 50, 60, 1,
            "POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\n\r\n"
            "0123456789012345678901234567890123456789");
    s_http ("small-limits-chunked-body", 0xC0, 0, 0, 0,
            "POST /orders HTTP/1.1\r\nHost: h\r\n"
            "Transfer-Encoding: "
            "chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n");
    s_http ("trace-method", 0, 0, 0, 0, "TRACE / HTTP/1.1\r\nHost: h\r\n\r\n");
    s_http ("not-http", 0, 0, 0, 0, "\x16\x03\x01\x02\xfc\x03\x03");
    s_http ("lf-only", 0, 0, 0, 0, "GET /users/8 HTTP/1.1\nHost: h\n\n");
    s_http ("incomplete-headers", 0, 0, 0, 0, "GET / HTTP/1.1\r\nX: a");
}

// ---------------------------------------------------------------------------
//  jwt: a flags byte (fuzz_jwt.c) + the header value, token or API key

static void
s_jwt (const char *name, uint8_t flags, const char *prefix, const char *text)
{
    char *value = zsys_sprintf ("%c%s%s", (char)flags, prefix, text);
    //  A flags byte of 0 would end the string: write it separately.
    size_t size = strlen (prefix) + strlen (text) + 1;
    value[0] = (char)flags;
    s_write ("jwt", name, value, size);
    free (value);
}

static void
s_jwts (void)
{
    char *path =
        zsys_sprintf ("%s/tests/data/jwt/vectors.json", KEEL_SOURCE_DIR);
    json_error_t error;
    json_t *root = json_load_file (path, 0, &error);
    if (!root) {
        fprintf (stderr, "make_corpus: %s: %s\n", path, error.text);
        exit (1);
    }
    free (path);
    //  A spread of the vectors: each alg accepted, each kind of refusal.
    static const char *picks[] = {"hs256_ok",
                                  "rs256_ok",
                                  "es256_ok",
                                  "rs256_aud_array",
                                  "es256_no_kid",
                                  "hs256_expired",
                                  "nbf_now_plus_leeway",
                                  "exp_fraction",
                                  "exp_missing",
                                  "roles_mixed",
                                  "alg_none_signed",
                                  "alg_hs512",
                                  "confusion_rs_to_hs",
                                  "rs256_with_ec_kid",
                                  "wrong_kid",
                                  "crit",
                                  "es256_der_signature",
                                  "es256_signature_65",
                                  "rs256_signature_truncated",
                                  "bad_base64_length",
                                  "base64_padding",
                                  "four_segments",
                                  "header_duplicate_alg",
                                  "claims_too_deep",
                                  "scp_string",
                                  "wrong_aud_array",
                                  "kid_number"};
    size_t index;
    json_t *vector;
    json_array_foreach (json_object_get (root, "vectors"), index, vector)
    {
        const char *name = json_string_value (json_object_get (vector, "name"));
        const char *token =
            json_string_value (json_object_get (vector, "token"));
        for (size_t i = 0; name && token && i < sizeof picks / sizeof *picks;
             i++) {
            if (strcmp (picks[i], name))
                continue;
            //  Bearer header, cache on, twice; every third as a bare token.
            uint8_t flags = i % 3 == 2 ? 0x01 : 0x07;
            s_jwt (name, flags, i % 3 == 2 ? "" : "Bearer ", token);
        }
    }
    json_decref (root);
    s_jwt ("api-key", 0x02, "", "k-123");
    s_jwt ("api-key-wrong", 0x02, "", "k-124");
    s_jwt ("basic-scheme", 0x00, "", "Basic YWxpY2U6c2VjcmV0");
    s_jwt ("bearer-alone", 0x00, "", "Bearer");
    s_jwt ("bearer-lowercase-spaces", 0x00, "", "bearer   a.b.c");
    s_jwt ("no-exp-required", 0x21, "",
           "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.");
}

// ---------------------------------------------------------------------------
//  config: ZPL as the tests and the examples write it

static void
s_configs (void)
{
    char *path = zsys_sprintf ("%s/tests/data/jwt/auth.cfg", KEEL_SOURCE_DIR);
    FILE *file = fopen (path, "rb");
    char auth[8192];
    size_t size = file ? fread (auth, 1, sizeof auth, file) : 0;
    if (file)
        fclose (file);
    if (!size) {
        fprintf (stderr, "make_corpus: cannot read %s\n", path);
        exit (1);
    }
    free (path);
    s_write ("config", "auth.cfg", auth, size);

    static const struct {
        const char *name;
        const char *text;
    } configs[] = {
        {"routes.cfg", "gateway\n"
                       "    listen = 127.0.0.1:8080\n"
                       "    route\n"
                       "        name = users\n"
                       "        host = api.example.com\n"
                       "        path = /users/{id}\n"
                       "        methods = \"GET PUT\"\n"
                       "        target = bus:users\n"
                       "        policy = p2c\n"
                       "        timeout = 2s\n"
                       "        retries = 2\n"
                       "        retry_budget = 20\n"
                       "        auth = jwt\n"
                       "        scopes = \"users:read\"\n"
                       "        roles = \"admin support\"\n"
                       "        priority = 10\n"
                       "    route\n"
                       "        name = files\n"
                       "        host = *.example.com\n"
                       "        path = /files/{owner}/*\n"
                       "        target = http:files\n"
                       "        policy = least_conn\n"
                       "        auth = any\n"
                       "    route\n"
                       "        name = orders\n"
                       "        path = /orders\n"
                       "        target = saga:create-order\n"
                       "    route\n"
                       "        name = order\n"
                       "        path = /orders/{id}\n"
                       "        target = saga-status:create-order\n"},
        {"routes-conflict.cfg", "gateway\n"
                                "    route\n"
                                "        name = a\n"
                                "        path = /x/{id}\n"
                                "        target = bus:a\n"
                                "    route\n"
                                "        name = b\n"
                                "        path = /x/{other}\n"
                                "        target = bus:b\n"},
        {"routes-bad-path.cfg", "gateway\n"
                                "    route\n"
                                "        name = a\n"
                                "        path = /a/../b/%zz\n"
                                "        target = bus:a\n"},
        {"routes-scopes-no-auth.cfg", "gateway\n"
                                      "    route\n"
                                      "        name = a\n"
                                      "        path = /a\n"
                                      "        target = bus:a\n"
                                      "        scopes = x\n"},
        {"saga.cfg", "saga\n"
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
                     "            action = go\n"},
        {"saga-bad.cfg", "saga\n"
                         "    definition\n"
                         "        name = bad name\n"
                         "        step\n"
                         "            name = a\n"
                         "            service = s\n"
                         "            action = a\n"
                         "            backoff = 0.5\n"
                         "            jitter = 2\n"},
        {"node.cfg", "node\n"
                     "    name = n1\n"
                     "    bus = tcp://127.0.0.1:7700\n"
                     "    events = tcp://127.0.0.1:7701\n"
                     "directory\n"
                     "    registry = tcp://10.0.0.2:7700\n"
                     "    local = inproc://local\n"
                     "    saga\n"
                     "        endpoint = tcp://[::1]:7702\n"
                     "        events = ipc:///tmp/keel-saga-events\n"},
        {"directory-bad.cfg", "directory\n"
                              "    a = tcp://host:99999\n"
                              "    b = udp://x:1\n"
                              "    a = inproc://again\n"},
        {"typed-values.cfg", "limits\n"
                             "    size = 64K\n"
                             "    big = 9223372036854775807\n"
                             "    over = 99999999999999999999G\n"
                             "    timeout = 250ms\n"
                             "    hours = 1h\n"
                             "    flag = yes\n"
                             "    negative = -5\n"
                             "    empty = \"\"\n"
                             "    quoted = 'single # not a comment'\n"},
        {"auth-inline.cfg", "gateway\n"
                            "    auth\n"
                            "        leeway = 5s\n"
                            "        realm = keel\n"
                            "        require_exp = false\n"
                            "        iss = me\n"
                            "        aud = api\n"
                            "        key\n"
                            "            alg = HS256\n"
                            "            secret = \"s3cret-s3cret-s3cret\"\n"
                            "        key\n"
                            "            kid = ec\n"
                            "            alg = ES256\n"
                            "            public_key_file = ec_public.pem\n"},
        {"auth-bad.cfg", "gateway\n"
                         "    auth\n"
                         "        key\n"
                         "            kid = a\n"
                         "            alg = none\n"
                         "        key\n"
                         "            alg = RS256\n"
                         "            public_key_file = missing.pem\n"},
        {"syntax-indent.cfg", "a\n   b = 1\n  c = 2\n"},
        {"syntax-quote.cfg", "a = \"unterminated\n"},
        {"comments.cfg", "#   a comment\n"
                         "a = 1 # trailing\n"
                         "b\n"
                         "    c = \"x\" # c\n"},
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        s_write ("config", configs[i].name, configs[i].text,
                 strlen (configs[i].text));
}

// ---------------------------------------------------------------------------
//  saga_def: length (LE16) + SagaDefinition + script (fuzz_saga_def.c)

static void
s_saga (const char *name, const Keel__SagaDefinition *def,
        const uint8_t *script, size_t script_size)
{
    size_t size = keel__saga_definition__get_packed_size (def);
    uint8_t *data = (uint8_t *)malloc (2 + size + script_size);
    data[0] = (uint8_t)(size & 0xFF);
    data[1] = (uint8_t)(size >> 8);
    keel__saga_definition__pack (def, data + 2);
    memcpy (data + 2 + size, script, script_size);
    s_write ("saga_def", name, data, 2 + size + script_size);
    free (data);
}

//  A definition of n steps "s0".."sN-1" (strings static; freed by caller:
//  the steps array and the steps).
static Keel__SagaDefinition *
s_def_new (const char *name, int n)
{
    static char names[64][8];
    Keel__SagaDefinition *def =
        (Keel__SagaDefinition *)calloc (1, sizeof (Keel__SagaDefinition));
    keel__saga_definition__init (def);
    def->name = (char *)name;
    def->version = 1;
    def->n_steps = (size_t)n;
    def->steps = (Keel__SagaStep **)calloc ((size_t)n, sizeof (void *));
    for (int i = 0; i < n; i++) {
        Keel__SagaStep *step =
            (Keel__SagaStep *)calloc (1, sizeof (Keel__SagaStep));
        keel__saga_step__init (step);
        snprintf (names[i], sizeof names[i], "s%d", i);
        step->name = names[i];
        step->service = "svc";
        step->action = "do";
        step->compensation = "undo";
        def->steps[i] = step;
    }
    return def;
}

static void
s_def_free (Keel__SagaDefinition *def)
{
    for (size_t i = 0; i < def->n_steps; i++)
        free (def->steps[i]);
    free (def->steps);
    free (def);
}

//  Scripts: (op, arg) pairs. 0 time, 1 ok, 2 fail, 3 late, 4 cancel,
//  5 resolve.
#define T(arg)       0, arg
#define OK(arg)      1, arg
#define FAIL(arg)    2, arg
#define LATE(arg)    3, arg
#define CANCEL       4, 0
#define RESOLVE(arg) 5, arg

static void
s_sagas (void)
{
    static const uint8_t all_ok[] = {OK (0), OK (1), OK (2), T (1), OK (3)};
    static const uint8_t fail_then_undo[] = {OK (0),      FAIL (0x41), T (20),
                                             FAIL (0x31), T (100),     OK (2),
                                             OK (3),      OK (4),      T (1)};
    static const uint8_t timeouts[] = {T (0xFF), T (0xFF), T (0xFF), T (0xFF),
                                       T (0xFF), T (0xFF), OK (0xFF)};
    static const uint8_t cancel[] = {OK (0), CANCEL, OK (1),      OK (2),
                                     T (5),  OK (3), LATE (0x25), LATE (0x42)};
    static const uint8_t stuck[] = {OK (0),      OK (1),      FAIL (0x21),
                                    T (0x85),    FAIL (0x21), T (0x85),
                                    FAIL (0x21), RESOLVE (0), T (1),
                                    FAIL (0x21), RESOLVE (1), OK (5)};

    Keel__SagaDefinition *one = s_def_new ("one", 1);
    s_saga ("one-step-ok", one, all_ok, sizeof all_ok);
    s_saga ("one-step-timeouts", one, timeouts, sizeof timeouts);
    s_def_free (one);

    Keel__SagaDefinition *three = s_def_new ("create-order", 3);
    three->version = 7;
    Keel__RetryPolicy retry = KEEL__RETRY_POLICY__INIT;
    retry.max_attempts = 3;
    retry.initial_interval_ms = 10;
    retry.backoff = 2;
    retry.max_interval_ms = 100;
    retry.jitter = 0.2;
    char *non_retryable[] = {"CONFLICT"};
    retry.n_non_retryable = 1;
    retry.non_retryable = non_retryable;
    three->steps[1]->retry = &retry;
    three->steps[2]->compensation = "";
    s_saga ("three-steps-ok", three, all_ok, sizeof all_ok);
    s_saga ("three-steps-fail-compensate", three, fail_then_undo,
            sizeof fail_then_undo);
    s_saga ("three-steps-cancel", three, cancel, sizeof cancel);
    Keel__RetryPolicy comp = KEEL__RETRY_POLICY__INIT;
    comp.max_attempts = 2;
    three->steps[0]->compensation_retry = &comp;
    s_saga ("three-steps-compensation-policy", three, fail_then_undo,
            sizeof fail_then_undo);

    //  pivot: after it, only forward (STUCK, resolve)
    three->steps[1]->pivot = 1;
    three->steps[1]->retry = NULL;
    s_saga ("pivot-stuck-resolve", three, stuck, sizeof stuck);
    s_saga ("pivot-cancel-refused", three, cancel, sizeof cancel);
    s_def_free (three);

    //  a parallel group in the middle
    Keel__SagaDefinition *group = s_def_new ("fan-out", 5);
    for (int i = 1; i <= 3; i++)
        group->steps[i]->group = "g";
    group->steps[1]->timeout_ms = 100;
    s_saga ("group-ok", group, all_ok, sizeof all_ok);
    s_saga ("group-fail", group, fail_then_undo, sizeof fail_then_undo);
    s_saga ("group-timeouts", group, timeouts, sizeof timeouts);
    s_def_free (group);

    //  the most steps allowed, and one too many
    Keel__SagaDefinition *many = s_def_new ("many", 64);
    s_saga ("sixty-four-steps", many, timeouts, sizeof timeouts);
    s_def_free (many);

    //  refused by the check
    Keel__SagaDefinition *bad = s_def_new ("bad name", 2);
    s_saga ("bad-name", bad, all_ok, sizeof all_ok);
    bad->name = "dup";
    bad->steps[1]->name = "s0";
    s_saga ("bad-duplicate-step", bad, all_ok, sizeof all_ok);
    bad->steps[1]->name = "s1";
    bad->steps[0]->pivot = bad->steps[1]->pivot = 1;
    s_saga ("bad-two-pivots", bad, all_ok, sizeof all_ok);
    bad->steps[0]->pivot = bad->steps[1]->pivot = 0;
    Keel__RetryPolicy silly = KEEL__RETRY_POLICY__INIT;
    silly.backoff = 0.5;
    silly.jitter = 3;
    char *unknown[] = {"NO_SUCH_ERROR"};
    silly.n_non_retryable = 1;
    silly.non_retryable = unknown;
    bad->steps[0]->retry = &silly;
    s_saga ("bad-retry-policy", bad, all_ok, sizeof all_ok);
    bad->steps[0]->retry = NULL;
    bad->version = 0;
    s_saga ("bad-version", bad, all_ok, sizeof all_ok);
    s_def_free (bad);
    static const uint8_t garbage[] = {0x05, 0x00, 0x0A, 0xFF, 0xFF, 0x01, 0x02};
    s_write ("saga_def", "bad-garbage", garbage, sizeof garbage);
}

int
main (int argc, char *argv[])
{
    if (argc != 2) {
        fprintf (stderr, "usage: %s fuzz/corpus\n", argv[0]);
        return 2;
    }
    s_root = argv[1];
    mkdir (s_root, 0755);
    s_envelopes ();
    s_http_requests ();
    s_jwts ();
    s_configs ();
    s_sagas ();
    printf ("make_corpus: %d files under %s\n", s_written, s_root);
    return 0;
}
