/*  fuzz_http_request.c - bytes from an HTTP client, read as the gateway
    reads them (http_server.c's s_conn_read loop over the request reader,
    then what gateway_actor.c does with each request).

        +----+----+----+----+---------------------------------------+
        | L  | S1 | S2 | F  | bytes of the connection ...           |
        +----+----+----+----+---------------------------------------+
        L   limits: 2 bits each for max_url, max_headers,
            max_header_count, max_body (0 = the default, else small)
        S1  the first read ends at S1/256 of the bytes, S2 the second
            (pipelined requests, a request split over reads)
        F   bit 0: feed one byte at a time after the first read

    Each request: every accessor, the Host and path matched against a
    small route table, the HttpRequest a bus: route sends packed and
    unpacked again, and hop-by-hop headers stripped.
*/
#include "fuzz.h"

#include "http_request.h"
#include "keel_config.h"
#include "routes.h"

#include "gateway.pb-c.h"

#include <string.h>

static const char s_routes_text[] = "gateway\n"
                                    "    route\n"
                                    "        name = users\n"
                                    "        path = /users/{id}\n"
                                    "        methods = \"GET PUT DELETE\"\n"
                                    "        target = bus:users\n"
                                    "    route\n"
                                    "        name = files\n"
                                    "        host = *.example.com\n"
                                    "        path = /files/{owner}/*\n"
                                    "        target = http:files\n"
                                    "    route\n"
                                    "        name = root\n"
                                    "        host = api.example.com\n"
                                    "        path = /\n"
                                    "        target = bus:root\n"
                                    "    route\n"
                                    "        name = orders\n"
                                    "        path = /orders\n"
                                    "        target = saga:order\n"
                                    "    route\n"
                                    "        name = order-status\n"
                                    "        path = /orders/{id}\n"
                                    "        target = saga-status:order\n"
                                    "    route\n"
                                    "        name = static\n"
                                    "        path = /static/*\n"
                                    "        target = http:web\n"
                                    "        priority = -1\n";

static keel_routes_t *
s_routes (void)
{
    static keel_routes_t *routes;
    static bool tried;
    if (!tried) {
        tried = true;
        keel_config_t *config =
            keel_config_load_string (s_routes_text, "fuzz-routes", NULL);
        if (config)
            routes = keel_routes_load (config, "gateway");
        keel_config_destroy (&config);
        if (!routes)
            fprintf (stderr, "fuzz_http_request: no route table\n");
    }
    return routes;
}

//  A route match is large (~17 KB): one for the whole run.
static keel_route_match_t s_match;

static size_t
s_limit (unsigned bits, size_t small, size_t smaller, size_t tiny)
{
    size_t values[] = {0, small, smaller, tiny};
    return values[bits & 3];
}

//  What the gateway reads of a request, and what a bus route sends on.
static void
s_request (keel_http_request_t *req)
{
    const char *method = keel_http_request_method (req);
    const char *url = keel_http_request_url (req);
    const char *path = keel_http_request_path (req);
    const char *query = keel_http_request_query (req);
    KEEL_FUZZ_CHECK (method && url && path && query);
    keel_http_request_version_major (req);
    keel_http_request_version_minor (req);
    keel_http_request_keep_alive (req);
    size_t count = keel_http_request_header_count (req);
    for (size_t i = 0; i < count; i++) {
        const char *name = keel_http_request_header_name (req, i);
        const char *value = keel_http_request_header_value (req, i);
        KEEL_FUZZ_CHECK (name && value);
        KEEL_FUZZ_CHECK (keel_http_request_header (req, name) != NULL);
    }
    KEEL_FUZZ_CHECK (keel_http_request_header_name (req, count) == NULL);
    KEEL_FUZZ_CHECK (keel_http_request_header_value (req, count) == NULL);
    const char *host = keel_http_request_host (req);
    keel_http_request_header (req, "authorization");
    keel_http_request_header (req, "x-request-id");
    keel_http_request_header (req, "idempotency-key");
    const void *body = keel_http_request_body (req);
    size_t body_size = keel_http_request_body_size (req);
    KEEL_FUZZ_CHECK ((body == NULL) == (body_size == 0));

    keel_routes_t *routes = s_routes ();
    if (routes) {
        keel_routes_method_parse (method);
        keel_routes_result_t found =
            keel_routes_match (routes, host, method, path, &s_match);
        KEEL_FUZZ_CHECK ((found == KEEL_ROUTES_FOUND) ==
                         (s_match.route != NULL));
        for (size_t i = 0;
             found == KEEL_ROUTES_FOUND && i < s_match.param_count; i++)
            KEEL_FUZZ_CHECK (keel_route_match_param (
                                 &s_match, s_match.params[i].name) != NULL);
    }

    size_t removed = keel_http_request_strip_hop_by_hop (req);
    KEEL_FUZZ_CHECK (removed <= count);
    KEEL_FUZZ_CHECK (keel_http_request_header_count (req) == count - removed);
    KEEL_FUZZ_CHECK (keel_http_request_header (req, "connection") == NULL);
    KEEL_FUZZ_CHECK (keel_http_request_header (req, "transfer-encoding") ==
                     NULL);

    //  As gateway_actor.c's s_send_bus builds it, and a service reads it.
    count = keel_http_request_header_count (req);
    Keel__HttpHeader *headers = (Keel__HttpHeader *)calloc (
        count ? count : 1, sizeof (Keel__HttpHeader));
    Keel__HttpHeader **pointers = (Keel__HttpHeader **)calloc (
        count ? count : 1, sizeof (Keel__HttpHeader *));
    if (headers && pointers) {
        Keel__HttpRequest msg = KEEL__HTTP_REQUEST__INIT;
        msg.method = (char *)method;
        msg.path = (char *)path;
        msg.query = (char *)query;
        for (size_t i = 0; i < count; i++) {
            keel__http_header__init (&headers[i]);
            headers[i].name = (char *)keel_http_request_header_name (req, i);
            headers[i].value = (char *)keel_http_request_header_value (req, i);
            pointers[i] = &headers[i];
        }
        msg.n_headers = count;
        msg.headers = pointers;
        msg.body.data = (uint8_t *)keel_http_request_body (req);
        msg.body.len = keel_http_request_body_size (req);
        size_t size = keel__http_request__get_packed_size (&msg);
        uint8_t *packed = (uint8_t *)malloc (size ? size : 1);
        if (packed) {
            keel__http_request__pack (&msg, packed);
            Keel__HttpRequest *back =
                keel__http_request__unpack (NULL, size, packed);
            KEEL_FUZZ_CHECK (back != NULL);
            KEEL_FUZZ_CHECK (back->n_headers == count);
            KEEL_FUZZ_CHECK (back->body.len == msg.body.len);
            keel__http_request__free_unpacked (back, NULL);
            free (packed);
        }
    }
    free (headers);
    free (pointers);
}

//  One read from the socket: feed until the bytes are used or the
//  connection ends. Returns false once the connection is over.
static bool
s_read (keel_http_reader_t *reader, const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        size_t used = 0;
        keel_http_result_t rc =
            keel_http_reader_feed (reader, data + pos, size - pos, &used);
        KEEL_FUZZ_CHECK (used <= size - pos);
        keel_http_result_status (rc);
        KEEL_FUZZ_CHECK (keel_http_result_str (rc) != NULL);
        pos += used;
        if (rc == KEEL_HTTP_REQUEST) {
            keel_http_request_t *req = keel_http_reader_request (reader);
            KEEL_FUZZ_CHECK (req != NULL);
            s_request (req);
        } else if (rc == KEEL_HTTP_NEED_MORE) {
            KEEL_FUZZ_CHECK (pos == size);
            keel_http_reader_take_continue (reader);
        } else {
            if (rc == KEEL_HTTP_UPGRADE) {
                keel_http_request_t *req = keel_http_reader_request (reader);
                KEEL_FUZZ_CHECK (req != NULL);
                s_request (req);
            }
            //  Terminal: the same answer, nothing consumed.
            if (pos < size) {
                size_t again = 1;
                KEEL_FUZZ_CHECK (keel_http_reader_feed (reader, data + pos,
                                                        size - pos,
                                                        &again) == rc);
                KEEL_FUZZ_CHECK (again == 0);
            }
            return false;
        }
    }
    return true;
}

int
KEEL_FUZZ_ENTRY (http_request) (const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    keel_http_limits_t limits = {
        .max_url = s_limit (data[0], 256, 32, 8),
        .max_headers = s_limit (data[0] >> 2, 1024, 128, 16),
        .max_header_count = s_limit (data[0] >> 4, 16, 4, 1),
        .max_body = s_limit (data[0] >> 6, 256, 16, 1),
    };
    size_t split1 = data[1], split2 = data[2];
    bool bytewise = data[3] & 1;
    data += 4;
    size -= 4;
    if (split1 > split2) {
        size_t swap = split1;
        split1 = split2;
        split2 = swap;
    }
    split1 = split1 * size / 256;
    split2 = split2 * size / 256;

    keel_http_reader_t *reader = keel_http_reader_new (&limits);
    if (!reader)
        return 0;
    bool open = s_read (reader, data, split1);
    if (open && bytewise)
        for (size_t i = split1; open && i < split2; i++)
            open = s_read (reader, data + i, 1);
    else if (open)
        open = s_read (reader, data + split1, split2 - split1);
    if (open)
        s_read (reader, data + split2, size - split2);
    keel_http_reader_destroy (&reader);
    return 0;
}
