/*  test_http_request.c - the gateway's HTTP/1.1 request reader. */
#include "http_request.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Feed `text` in pieces of `step` bytes (0 = all at once), appending a
//  summary of every request and the final result to `out`. Returns the
//  last result (NEED_MORE when all bytes were consumed without error).
static keel_http_result_t
s_run (const keel_http_limits_t *limits, const char *text, size_t size,
       size_t step, char *out, size_t out_size)
{
    keel_http_reader_t *reader = keel_http_reader_new (limits);
    ck_assert_ptr_nonnull (reader);
    size_t used = 0, pos = 0;
    out[0] = '\0';
    keel_http_result_t rc = KEEL_HTTP_NEED_MORE;
    while (pos < size) {
        size_t piece = step && size - pos > step ? step : size - pos;
        rc = keel_http_reader_feed (reader, text + pos, piece, &used);
        ck_assert_uint_le (used, piece);
        pos += used;
        if (rc == KEEL_HTTP_REQUEST || rc == KEEL_HTTP_UPGRADE) {
            keel_http_request_t *req = keel_http_reader_request (reader);
            ck_assert_ptr_nonnull (req);
            size_t len = strlen (out);
            len += snprintf (
                out + len, out_size - len, "[%s %s ? %s HTTP/%d.%d ka=%d",
                keel_http_request_method (req), keel_http_request_path (req),
                keel_http_request_query (req),
                keel_http_request_version_major (req),
                keel_http_request_version_minor (req),
                keel_http_request_keep_alive (req));
            for (size_t i = 0; i < keel_http_request_header_count (req); i++)
                len += snprintf (out + len, out_size - len, " {%s=%s}",
                                 keel_http_request_header_name (req, i),
                                 keel_http_request_header_value (req, i));
            len += snprintf (out + len, out_size - len, " body=%.*s]",
                             (int)keel_http_request_body_size (req),
                             keel_http_request_body_size (req)
                                 ? (const char *)keel_http_request_body (req)
                                 : "");
            if (rc == KEEL_HTTP_UPGRADE)
                break;
        } else if (rc != KEEL_HTTP_NEED_MORE)
            break;
        else
            ck_assert_uint_eq (used, piece);
    }
    //  Every byte consumed after a request: the reader waits for more
    if (rc == KEEL_HTTP_REQUEST)
        rc = KEEL_HTTP_NEED_MORE;
    size_t len = strlen (out);
    snprintf (out + len, out_size - len, "<%s>", keel_http_result_str (rc));
    keel_http_reader_destroy (&reader);
    ck_assert_ptr_null (reader);
    return rc;
}

//  Result of feeding `text` at once, checking that byte-at-a-time feeding
//  gives exactly the same requests and result.
static keel_http_result_t
s_parse (const keel_http_limits_t *limits, const char *text, char *out,
         size_t out_size)
{
    char *bytewise = malloc (out_size);
    keel_http_result_t rc =
        s_run (limits, text, strlen (text), 0, out, out_size);
    keel_http_result_t rc1 =
        s_run (limits, text, strlen (text), 1, bytewise, out_size);
    ck_assert_str_eq (out, bytewise);
    ck_assert_int_eq (rc, rc1);
    free (bytewise);
    return rc;
}

static keel_http_result_t
s_result (const keel_http_limits_t *limits, const char *text)
{
    char out[4096];
    return s_parse (limits, text, out, sizeof (out));
}

START_TEST (test_simple_get)
{
    char out[4096];
    keel_http_result_t rc =
        s_parse (NULL, "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: api.test\r\n\r\n",
                 out, sizeof (out));
    ck_assert_int_eq (rc, KEEL_HTTP_NEED_MORE);
    ck_assert_str_eq (out,
                      "[GET /a/b ? x=1&y=2 HTTP/1.1 ka=1 {Host=api.test} body=]"
                      "<need-more>");

    keel_http_reader_t *reader = keel_http_reader_new (NULL);
    const char *text = "GET /p HTTP/1.1\r\nHOST:  h.example \r\n"
                       "X-Empty:\r\n\r\nGET";
    size_t used;
    ck_assert_ptr_null (keel_http_reader_request (reader));
    ck_assert_int_eq (
        keel_http_reader_feed (reader, text, strlen (text), &used),
        KEEL_HTTP_REQUEST);
    ck_assert_uint_eq (used, strlen (text) - 3);
    keel_http_request_t *req = keel_http_reader_request (reader);
    ck_assert_str_eq (keel_http_request_url (req), "/p");
    ck_assert_str_eq (keel_http_request_query (req), "");
    ck_assert_str_eq (keel_http_request_host (req), "h.example");
    ck_assert_str_eq (keel_http_request_header (req, "host"), "h.example");
    ck_assert_str_eq (keel_http_request_header (req, "x-EMPTY"), "");
    ck_assert_ptr_null (keel_http_request_header (req, "Hos"));
    ck_assert_ptr_null (keel_http_request_header_name (req, 2));
    ck_assert_ptr_null (keel_http_request_header_value (req, 2));
    ck_assert_ptr_null (keel_http_request_body (req));
    ck_assert_int_eq (keel_http_reader_feed (reader, text + used, 3, &used),
                      KEEL_HTTP_NEED_MORE);
    ck_assert_uint_eq (used, 3);
    ck_assert_ptr_null (keel_http_reader_request (reader));
    ck_assert_int_eq (keel_http_reader_feed (reader, "", 0, &used),
                      KEEL_HTTP_NEED_MORE);
    keel_http_reader_destroy (&reader);
    keel_http_reader_destroy (&reader);
    keel_http_reader_destroy (NULL);
}
END_TEST

START_TEST (test_post_content_length)
{
    char out[4096];
    ck_assert_int_eq (
        s_parse (NULL,
                 "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"
                 "hello",
                 out, sizeof (out)),
        KEEL_HTTP_NEED_MORE);
    ck_assert_str_eq (out, "[POST /u ?  HTTP/1.1 ka=1 {Host=h} "
                           "{Content-Length=5} body=hello]<need-more>");
}
END_TEST

START_TEST (test_chunked)
{
    char out[4096];
    ck_assert_int_eq (
        s_parse (NULL,
                 "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n",
                 out, sizeof (out)),
        KEEL_HTTP_NEED_MORE);
    ck_assert_str_eq (out, "[PUT /c ?  HTTP/1.1 ka=1 "
                           "{Transfer-Encoding=chunked} body=abcdefg]"
                           "<need-more>");
    //  Bad chunk size
    ck_assert_int_eq (
        s_result (NULL, "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                        "\r\nzz\r\n"),
        KEEL_HTTP_BAD_REQUEST);
}
END_TEST

START_TEST (test_pipelined)
{
    char out[4096];
    ck_assert_int_eq (
        s_parse (NULL,
                 "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                 "POST /2?q HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                 "DELETE /3 HTTP/1.1\r\nConnection: close\r\n\r\n"
                 "GET /4 HTTP/1.1\r\n",
                 out, sizeof (out)),
        KEEL_HTTP_NEED_MORE);
    ck_assert_str_eq (out, "[GET /1 ?  HTTP/1.1 ka=1 {Host=a} body=]"
                           "[POST /2 ? q HTTP/1.1 ka=1 {Content-Length=2} "
                           "body=hi]"
                           "[DELETE /3 ?  HTTP/1.1 ka=0 {Connection=close} "
                           "body=]<need-more>");
}
END_TEST

START_TEST (test_http10)
{
    char out[4096];
    s_parse (NULL, "GET / HTTP/1.0\r\n\r\n", out, sizeof (out));
    ck_assert_str_eq (out, "[GET / ?  HTTP/1.0 ka=0 body=]<need-more>");
    s_parse (NULL, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", out,
             sizeof (out));
    ck_assert_str_eq (out, "[GET / ?  HTTP/1.0 ka=1 "
                           "{Connection=keep-alive} body=]<need-more>");
}
END_TEST

START_TEST (test_limits_url)
{
    keel_http_limits_t limits = {.max_url = 10};
    ck_assert_int_eq (s_result (&limits, "GET /123456789 HTTP/1.1\r\n\r\n"),
                      KEEL_HTTP_NEED_MORE);
    ck_assert_int_eq (s_result (&limits, "GET /1234567890 HTTP/1.1\r\n\r\n"),
                      KEEL_HTTP_URL_TOO_LONG);
    ck_assert_int_eq (keel_http_result_status (KEEL_HTTP_URL_TOO_LONG), 414);
}
END_TEST

START_TEST (test_limits_body)
{
    keel_http_limits_t limits = {.max_body = 4};
    ck_assert_int_eq (
        s_result (&limits, "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"),
        KEEL_HTTP_NEED_MORE);
    ck_assert_int_eq (
        s_result (&limits, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
        KEEL_HTTP_BODY_TOO_LARGE);
    const char *chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n";
    ck_assert_int_eq (s_result (&limits, chunked), KEEL_HTTP_NEED_MORE);
    const char *chunked5 = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                           "\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n";
    ck_assert_int_eq (s_result (&limits, chunked5), KEEL_HTTP_BODY_TOO_LARGE);
    ck_assert_int_eq (keel_http_result_status (KEEL_HTTP_BODY_TOO_LARGE), 413);
}
END_TEST

START_TEST (test_limits_headers)
{
    //  "A: 12345\r\n" + "B: 1\r\n" = 10 + 6 = 16 bytes
    keel_http_limits_t limits = {.max_headers = 16};
    ck_assert_int_eq (
        s_result (&limits, "GET / HTTP/1.1\r\nA: 12345\r\nB: 1\r\n\r\n"),
        KEEL_HTTP_NEED_MORE);
    ck_assert_int_eq (
        s_result (&limits, "GET / HTTP/1.1\r\nA: 123456\r\nB: 1\r\n\r\n"),
        KEEL_HTTP_HEADERS_TOO_LARGE);
    ck_assert_int_eq (
        s_result (&limits, "GET / HTTP/1.1\r\nA: 12345\r\nBB: 1\r\n\r\n"),
        KEEL_HTTP_HEADERS_TOO_LARGE);

    keel_http_limits_t count = {.max_header_count = 3};
    ck_assert_int_eq (
        s_result (&count, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
        KEEL_HTTP_NEED_MORE);
    ck_assert_int_eq (
        s_result (&count,
                  "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
        KEEL_HTTP_HEADERS_TOO_LARGE);
    ck_assert_int_eq (keel_http_result_status (KEEL_HTTP_HEADERS_TOO_LARGE),
                      431);
}
END_TEST

START_TEST (test_malformed)
{
    const char *bad[] = {
        "G(T / HTTP/1.1\r\n\r\n",
        "BREW / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.x\r\n\r\n",
        "GET / HTTP/1.1x\r\n\r\n",
        "GET / HTTP/\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
        "GET / HTTP/1.1\r\nBad(Name): v\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n",
        "GET / HTTP/1.1\r\nX:\r\n\tfolded\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET /a#frag HTTP/1.1\r\n\r\n",
        "GET a/b HTTP/1.1\r\n\r\n",
        "GET * HTTP/1.1\r\n\r\n",
        "GET ftp://h/x HTTP/1.1\r\n\r\n",
        "GET http://u@h/x HTTP/1.1\r\n\r\n",
        "\r\nGET\r\n",
        NULL};
    for (size_t i = 0; bad[i]; i++) {
        ck_assert_msg (s_result (NULL, bad[i]) == KEEL_HTTP_BAD_REQUEST,
                       "case %zu", i);
    }
    ck_assert_int_eq (keel_http_result_status (KEEL_HTTP_BAD_REQUEST), 400);

    //  Bare LF line ends: http-parser (non-strict) accepts them
    char out[4096];
    ck_assert_int_eq (
        s_parse (NULL, "GET /lf HTTP/1.1\nHost: h\n\n", out, sizeof (out)),
        KEEL_HTTP_NEED_MORE);
    ck_assert_str_eq (out, "[GET /lf ?  HTTP/1.1 ka=1 {Host=h} body=]"
                           "<need-more>");

    //  The error is sticky
    keel_http_reader_t *reader = keel_http_reader_new (NULL);
    size_t used;
    ck_assert_int_eq (keel_http_reader_feed (reader, "GET / HTTP/x", 12, &used),
                      KEEL_HTTP_BAD_REQUEST);
    ck_assert_int_eq (
        keel_http_reader_feed (reader, "GET / HTTP/1.1\r\n\r\n", 18, &used),
        KEEL_HTTP_BAD_REQUEST);
    ck_assert_uint_eq (used, 0);
    ck_assert_ptr_null (keel_http_reader_request (reader));
    keel_http_reader_destroy (&reader);
}
END_TEST

START_TEST (test_targets)
{
    char out[4096];
    s_parse (NULL, "OPTIONS * HTTP/1.1\r\n\r\n", out, sizeof (out));
    ck_assert_str_eq (out, "[OPTIONS * ?  HTTP/1.1 ka=1 body=]<need-more>");
    s_parse (NULL, "GET http://Host:8080/p/q?a=b&c HTTP/1.1\r\n\r\n", out,
             sizeof (out));
    ck_assert_str_eq (out, "[GET /p/q ? a=b&c HTTP/1.1 ka=1 body=]"
                           "<need-more>");
    s_parse (NULL, "GET https://host HTTP/1.1\r\n\r\n", out, sizeof (out));
    ck_assert_str_eq (out, "[GET / ?  HTTP/1.1 ka=1 body=]<need-more>");
    s_parse (NULL, "GET /x? HTTP/1.1\r\n\r\n", out, sizeof (out));
    ck_assert_str_eq (out, "[GET /x ?  HTTP/1.1 ka=1 body=]<need-more>");
    s_parse (NULL, "GET /x?a=1?b HTTP/1.1\r\n\r\n", out, sizeof (out));
    ck_assert_str_eq (out, "[GET /x ? a=1?b HTTP/1.1 ka=1 body=]<need-more>");
}
END_TEST

START_TEST (test_not_implemented)
{
    ck_assert_int_eq (
        s_result (NULL, "CONNECT host:443 HTTP/1.1\r\nHost: host\r\n\r\n"),
        KEEL_HTTP_METHOD_NOT_IMPLEMENTED);
    ck_assert_int_eq (s_result (NULL, "TRACE / HTTP/1.1\r\n\r\n"),
                      KEEL_HTTP_METHOD_NOT_IMPLEMENTED);
    ck_assert_int_eq (
        keel_http_result_status (KEEL_HTTP_METHOD_NOT_IMPLEMENTED), 501);
}
END_TEST

START_TEST (test_upgrade)
{
    char out[4096];
    const char *text = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\n\r\nFRAME";
    ck_assert_int_eq (s_parse (NULL, text, out, sizeof (out)),
                      KEEL_HTTP_UPGRADE);
    ck_assert_str_eq (out, "[GET /ws ?  HTTP/1.1 ka=1 {Host=h} "
                           "{Upgrade=websocket} {Connection=Upgrade} body=]"
                           "<upgrade>");
    keel_http_reader_t *reader = keel_http_reader_new (NULL);
    size_t used;
    ck_assert_int_eq (
        keel_http_reader_feed (reader, text, strlen (text), &used),
        KEEL_HTTP_UPGRADE);
    ck_assert_uint_eq (used, strlen (text) - 5);
    ck_assert_ptr_nonnull (keel_http_reader_request (reader));
    ck_assert_int_eq (keel_http_reader_feed (reader, "FRAME", 5, &used),
                      KEEL_HTTP_UPGRADE);
    ck_assert_uint_eq (used, 0);
    keel_http_reader_destroy (&reader);
    ck_assert_int_eq (keel_http_result_status (KEEL_HTTP_UPGRADE), 501);
}
END_TEST

START_TEST (test_hop_by_hop)
{
    keel_http_reader_t *reader = keel_http_reader_new (NULL);
    const char *text = "GET / HTTP/1.1\r\nHost: h\r\n"
                       "Connection: keep-alive, X-Private ,x-other\r\n"
                       "Keep-Alive: 5\r\nX-Private: secret\r\nTE: trailers\r\n"
                       "Accept: */*\r\nProxy-Connection: close\r\n"
                       "trailer: x\r\nX-OTHER: o\r\nUpgrade-Not: kept\r\n"
                       "Connection: X-Late\r\nX-Late: l\r\n\r\n";
    size_t used;
    ck_assert_int_eq (
        keel_http_reader_feed (reader, text, strlen (text), &used),
        KEEL_HTTP_REQUEST);
    keel_http_request_t *req = keel_http_reader_request (reader);
    ck_assert_uint_eq (keel_http_request_header_count (req), 12);
    ck_assert_uint_eq (keel_http_request_strip_hop_by_hop (req), 9);
    ck_assert_uint_eq (keel_http_request_header_count (req), 3);
    ck_assert_str_eq (keel_http_request_header_name (req, 0), "Host");
    ck_assert_str_eq (keel_http_request_header_name (req, 1), "Accept");
    ck_assert_str_eq (keel_http_request_header_value (req, 1), "*/*");
    ck_assert_str_eq (keel_http_request_header_name (req, 2), "Upgrade-Not");
    ck_assert_ptr_null (keel_http_request_header (req, "x-private"));
    ck_assert_uint_eq (keel_http_request_strip_hop_by_hop (req), 0);
    keel_http_reader_destroy (&reader);
}
END_TEST

START_TEST (test_reuse_across_requests)
{
    //  Many keep-alive requests on one reader: buffers are reused, and the
    //  fields of one request never leak into the next.
    keel_http_limits_t limits = {.max_body = 64};
    keel_http_reader_t *reader = keel_http_reader_new (&limits);
    for (int i = 0; i < 200; i++) {
        char text[256];
        int len = i % 2 ? snprintf (text, sizeof (text),
                                    "POST /p%d?i=%d HTTP/1.1\r\nX-N: %d\r\n"
                                    "Content-Length: 3\r\n\r\nb%02d",
                                    i, i, i, i % 100)
                        : snprintf (text, sizeof (text),
                                    "GET /g%d HTTP/1.1\r\n\r\n", i);
        size_t used;
        ck_assert_int_eq (
            keel_http_reader_feed (reader, text, (size_t)len, &used),
            KEEL_HTTP_REQUEST);
        ck_assert_uint_eq (used, (size_t)len);
        keel_http_request_t *req = keel_http_reader_request (reader);
        char path[32];
        snprintf (path, sizeof (path), i % 2 ? "/p%d" : "/g%d", i);
        ck_assert_str_eq (keel_http_request_path (req), path);
        ck_assert_uint_eq (keel_http_request_header_count (req), i % 2 ? 2 : 0);
        ck_assert_uint_eq (keel_http_request_body_size (req), i % 2 ? 3 : 0);
    }
    keel_http_reader_destroy (&reader);
}
END_TEST

START_TEST (test_random_bytes)
{
    srand (20261126);
    const char *prefix = "POST / HTTP/1.1\r\n";
    for (int i = 0; i < 10000; i++) {
        keel_http_limits_t limits = {.max_url = 64,
                                     .max_headers = 256,
                                     .max_header_count = 8,
                                     .max_body = 64};
        keel_http_reader_t *reader = keel_http_reader_new (&limits);
        unsigned char buf[512];
        size_t size = 1 + (size_t)rand () % sizeof (buf);
        size_t start = 0;
        if (i % 2) {
            //  Half the cases get past the request line
            memcpy (buf, prefix, strlen (prefix));
            start = strlen (prefix);
            if (size < start)
                size = start;
        }
        for (size_t b = start; b < size; b++) {
            unsigned char c = (unsigned char)rand ();
            //  Bias towards header-ish bytes
            buf[b] = i % 3 == 0 ? c : (unsigned char)" :\r\nAa0-\t"[c % 9];
        }
        size_t pos = 0, used;
        keel_http_result_t rc = KEEL_HTTP_NEED_MORE;
        while (pos < size) {
            size_t piece = 1 + (size_t)rand () % (size - pos);
            rc = keel_http_reader_feed (reader, buf + pos, piece, &used);
            pos += used;
            if (rc != KEEL_HTTP_REQUEST && rc != KEEL_HTTP_NEED_MORE)
                break;
        }
        //  Either every byte was consumed (the reader waits for more) or
        //  the reader stopped in a terminal state.
        if (rc == KEEL_HTTP_REQUEST || rc == KEEL_HTTP_NEED_MORE)
            ck_assert_uint_eq (pos, size);
        else
            ck_assert (rc == KEEL_HTTP_UPGRADE ||
                       keel_http_result_status (rc) >= 400);
        keel_http_reader_destroy (&reader);
    }
}
END_TEST

START_TEST (test_result_names)
{
    for (int r = KEEL_HTTP_NEED_MORE; r <= KEEL_HTTP_NO_MEMORY; r++)
        ck_assert_str_ne (keel_http_result_str ((keel_http_result_t)r),
                          "unknown");
    ck_assert_int_eq (keel_http_result_status (KEEL_HTTP_REQUEST), 0);
    ck_assert_int_eq (keel_http_result_status (KEEL_HTTP_NO_MEMORY), 500);
}
END_TEST

START_TEST (test_expect_continue)
{
    keel_http_reader_t *reader = keel_http_reader_new (NULL);
    const char *head = "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
                       "Content-Length: 3\r\n\r\n";
    size_t used = 0;
    ck_assert_int_eq (keel_http_reader_take_continue (reader), 0);
    ck_assert_int_eq (
        keel_http_reader_feed (reader, head, strlen (head), &used),
        KEEL_HTTP_NEED_MORE);
    ck_assert_int_eq (keel_http_reader_take_continue (reader), 1);
    ck_assert_int_eq (keel_http_reader_take_continue (reader), 0); //  once
    ck_assert_int_eq (keel_http_reader_feed (reader, "abc", 3, &used),
                      KEEL_HTTP_REQUEST);
    ck_assert_int_eq (keel_http_reader_take_continue (reader), 0);
    keel_http_reader_destroy (&reader);

    //  No body, HTTP/1.0, or another expectation: nothing to continue.
    const char *cases[] = {
        "POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        "POST /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        "POST /a HTTP/1.1\r\nExpect: something\r\nContent-Length: 3\r\n\r\n",
        "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reader = keel_http_reader_new (NULL);
        keel_http_reader_feed (reader, cases[i], strlen (cases[i]), &used);
        ck_assert_msg (keel_http_reader_take_continue (reader) == 0, "%s",
                       cases[i]);
        keel_http_reader_destroy (&reader);
    }
    //  Too large: 413 first, never a 100 Continue.
    keel_http_limits_t limits = {.max_body = 10};
    reader = keel_http_reader_new (&limits);
    const char *big = "POST /a HTTP/1.1\r\nExpect: 100-continue\r\n"
                      "Content-Length: 11\r\n\r\n";
    ck_assert_int_eq (keel_http_reader_feed (reader, big, strlen (big), &used),
                      KEEL_HTTP_BODY_TOO_LARGE);
    ck_assert_int_eq (keel_http_reader_take_continue (reader), 0);
    keel_http_reader_destroy (&reader);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("http_request");
    TCase *tc = tcase_create ("core");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_simple_get);
    tcase_add_test (tc, test_expect_continue);
    tcase_add_test (tc, test_post_content_length);
    tcase_add_test (tc, test_chunked);
    tcase_add_test (tc, test_pipelined);
    tcase_add_test (tc, test_http10);
    tcase_add_test (tc, test_limits_url);
    tcase_add_test (tc, test_limits_body);
    tcase_add_test (tc, test_limits_headers);
    tcase_add_test (tc, test_malformed);
    tcase_add_test (tc, test_targets);
    tcase_add_test (tc, test_not_implemented);
    tcase_add_test (tc, test_upgrade);
    tcase_add_test (tc, test_hop_by_hop);
    tcase_add_test (tc, test_reuse_across_requests);
    tcase_add_test (tc, test_random_bytes);
    tcase_add_test (tc, test_result_names);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
