//  http_request.c - the gateway's HTTP/1.1 request reader (pure core).
//
//  libhttp-parser does the parsing; its callbacks copy the pieces into
//  buffers owned by the reader and enforce the limits as bytes arrive, so
//  memory never exceeds the limits (plus slack for terminators):
//
//      url     "/a?b=1\0"                         <= max_url + 1
//      hdrs    "Host\0h\0X-A\0v\0"                <= max_headers
//      entries [{name_off value_off value_len}]   <= max_header_count
//      target  "/a\0b=1\0"                        (path, query)
//      body    de-chunked bytes                   <= max_body
//
//  The header text buffer only grows until headers-complete; the entry
//  pointers are fixed up then, so the request can hand out const char *.
//  A complete message pauses the parser, which makes http_parser_execute
//  return exactly the bytes of that request; the next feed unpauses it and
//  on_message_begin clears the buffers (keeping their capacity).
//
//  http-parser 2.9.4 (non-strict build) accepts obs-fold and spaces in
//  header names, so both are rejected here: a header value piece that
//  arrives after its value was already terminated inside a buffer is a
//  folded line, and so is a value whose first byte follows a line break
//  (an empty value continued on the next line); every header name byte
//  must be an RFC 9110 tchar.

#include "http_request.h"

#include <http_parser.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_MAX_URL          8192
#define S_DEFAULT_MAX_HEADERS      32768
#define S_DEFAULT_MAX_HEADER_COUNT 100
#define S_DEFAULT_MAX_BODY         (1024 * 1024)

//  A growable byte buffer; cleared by setting size to 0.
typedef struct {
    char *data;  //  owned, NULL until first growth
    size_t size; //  bytes in use
    size_t cap;  //  bytes allocated
} s_buf_t;

//  One header; offsets during parsing, pointers after headers-complete.
typedef struct {
    size_t name_off;   //  offset of name in hdrs
    size_t value_off;  //  offset of value in hdrs
    size_t value_len;  //  value bytes as received
    const char *name;  //  into hdrs, NUL-terminated
    const char *value; //  into hdrs, NUL-terminated, trimmed
} s_header_t;

struct _keel_http_request_t {
    const char *method;  //  static string from http-parser
    const char *url;     //  into reader's url buffer
    const char *path;    //  into reader's target buffer
    const char *query;   //  into reader's target buffer
    int major;           //  HTTP major version
    int minor;           //  HTTP minor version
    int keep_alive;      //  http_should_keep_alive at message end
    s_header_t *headers; //  into reader's entries buffer
    size_t header_count; //  headers in use (shrinks on strip)
    const char *body;    //  into reader's body buffer, NULL if empty
    size_t body_size;    //  body bytes
};

struct _keel_http_reader_t {
    http_parser parser;            //  http-parser state; data = self
    http_parser_settings settings; //  our callbacks
    keel_http_limits_t limits;     //  copy of the limits, defaults applied
    keel_http_request_t request;   //  the request being built / handed out
    s_buf_t url;                   //  raw request target
    s_buf_t hdrs;                  //  header names and values
    s_buf_t entries;               //  s_header_t array
    s_buf_t target;                //  path and query
    s_buf_t body;                  //  de-chunked body
    size_t header_lines;           //  header lines seen, trailers included
    size_t header_bytes;           //  sum of name + value + 4 per line
    int in_field;                  //  last piece was a header name
    int in_value;                  //  last piece was a header value
    int value_done;                //  current value ended inside a buffer
    int in_trailers;               //  headers complete: lines are trailers
    int complete;                  //  message complete in this feed
    int has_request;               //  request may be handed out
    int expect_continue;           //  headers asked for 100 Continue
    const char *buf_start;         //  start of the buffer being parsed
    const char *buf_end;           //  end of the buffer being parsed
    char last_byte;                //  last non-blank byte parsed before
    keel_http_result_t pending;    //  error found by a callback, or 0
    keel_http_result_t terminal;   //  sticky error / UPGRADE, or 0
};

static int
s_buf_append (s_buf_t *buf, const void *data, size_t size)
{
    if (size > SIZE_MAX - buf->size - 1)
        return -1;
    if (buf->size + size > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 64;
        while (cap < buf->size + size)
            cap = cap > SIZE_MAX / 2 ? buf->size + size : cap * 2;
        char *data_new = realloc (buf->data, cap);
        if (!data_new)
            return -1;
        buf->data = data_new;
        buf->cap = cap;
    }
    if (size)
        memcpy (buf->data + buf->size, data, size);
    buf->size += size;
    return 0;
}

static int
s_buf_putc (s_buf_t *buf, char c)
{
    return s_buf_append (buf, &c, 1);
}

static void
s_buf_free (s_buf_t *buf)
{
    free (buf->data);
    buf->data = NULL;
    buf->size = buf->cap = 0;
}

//  Record an error found in a callback; returns the value a callback
//  returns to stop http-parser.
static int
s_fail (keel_http_reader_t *self, keel_http_result_t result)
{
    if (!self->pending)
        self->pending = result;
    return -1;
}

static int
s_is_tchar (unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr ("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
s_ows (char c)
{
    return c == ' ' || c == '\t';
}

static int
s_on_message_begin (http_parser *parser)
{
    keel_http_reader_t *self = parser->data;
    self->url.size = self->hdrs.size = self->entries.size = 0;
    self->target.size = self->body.size = 0;
    self->header_lines = self->header_bytes = 0;
    self->in_field = self->in_value = self->value_done = 0;
    self->in_trailers = 0;
    memset (&self->request, 0, sizeof (self->request));
    return 0;
}

static int
s_on_url (http_parser *parser, const char *at, size_t length)
{
    keel_http_reader_t *self = parser->data;
    if (parser->method == HTTP_CONNECT || parser->method == HTTP_TRACE)
        return s_fail (self, KEEL_HTTP_METHOD_NOT_IMPLEMENTED);
    if (length > self->limits.max_url - self->url.size)
        return s_fail (self, KEEL_HTTP_URL_TOO_LONG);
    if (s_buf_append (&self->url, at, length))
        return s_fail (self, KEEL_HTTP_NO_MEMORY);
    return 0;
}

//  Count `length` header bytes against the limit.
static int
s_count_bytes (keel_http_reader_t *self, size_t length)
{
    if (length > self->limits.max_headers - self->header_bytes)
        return s_fail (self, KEEL_HTTP_HEADERS_TOO_LARGE);
    self->header_bytes += length;
    return 0;
}

static int
s_on_header_field (http_parser *parser, const char *at, size_t length)
{
    keel_http_reader_t *self = parser->data;
    if (!self->in_field) {
        //  A new header line
        self->in_field = 1;
        self->in_value = 0;
        if (++self->header_lines > self->limits.max_header_count)
            return s_fail (self, KEEL_HTTP_HEADERS_TOO_LARGE);
        if (s_count_bytes (self, 4))
            return -1;
        if (!self->in_trailers) {
            s_header_t entry = {self->hdrs.size, 0, 0, NULL, NULL};
            if ((self->entries.size && s_buf_putc (&self->hdrs, '\0')) ||
                s_buf_append (&self->entries, &entry, sizeof (entry)))
                return s_fail (self, KEEL_HTTP_NO_MEMORY);
            //  The name starts after the terminator just written
            s_header_t *last =
                (s_header_t *)(self->entries.data + self->entries.size) - 1;
            last->name_off = self->hdrs.size;
        }
    }
    if (s_count_bytes (self, length))
        return -1;
    for (size_t i = 0; i < length; i++)
        if (!s_is_tchar ((unsigned char)at[i]))
            return s_fail (self, KEEL_HTTP_BAD_REQUEST);
    if (!self->in_trailers && s_buf_append (&self->hdrs, at, length))
        return s_fail (self, KEEL_HTTP_NO_MEMORY);
    return 0;
}

//  True if the value starting at `at` follows a line break rather than
//  the colon: an empty value continued on a folded line. Looks back over
//  whitespace in this buffer, then at the last byte before it.
static int
s_folded_start (keel_http_reader_t *self, const char *at)
{
    const char *p = at;
    while (p > self->buf_start && s_ows (p[-1]))
        p--;
    char before = p > self->buf_start ? p[-1] : self->last_byte;
    return before == '\n' || before == '\r';
}

static int
s_on_header_value (http_parser *parser, const char *at, size_t length)
{
    keel_http_reader_t *self = parser->data;
    //  The entry being filled; trailers are counted but not stored
    s_header_t *last =
        self->in_trailers
            ? NULL
            : (s_header_t *)(self->entries.data + self->entries.size) - 1;
    if (!self->in_value) {
        self->in_value = 1;
        self->in_field = 0;
        self->value_done = 0;
        if (length && s_folded_start (self, at))
            return s_fail (self, KEEL_HTTP_BAD_REQUEST); //  obs-fold
        if (!self->in_trailers) {
            if (s_buf_putc (&self->hdrs, '\0'))
                return s_fail (self, KEEL_HTTP_NO_MEMORY);
            last->value_off = self->hdrs.size;
        }
    } else if (self->value_done)
        return s_fail (self, KEEL_HTTP_BAD_REQUEST); //  obs-fold
    if (s_count_bytes (self, length))
        return -1;
    if (!self->in_trailers) {
        if (s_buf_append (&self->hdrs, at, length))
            return s_fail (self, KEEL_HTTP_NO_MEMORY);
        last->value_len += length;
    }
    //  A piece that stops short of the buffer's end was ended by CR/LF
    self->value_done = at + length < self->buf_end;
    return 0;
}

//  Fix up header pointers and trim values; headers text is final now.
static int
s_finish_headers (keel_http_reader_t *self)
{
    size_t count = self->entries.size / sizeof (s_header_t);
    if (count && s_buf_putc (&self->hdrs, '\0'))
        return -1;
    s_header_t *headers = (s_header_t *)self->entries.data;
    for (size_t i = 0; i < count; i++) {
        char *value = self->hdrs.data + headers[i].value_off;
        size_t len = headers[i].value_len;
        while (len && s_ows (value[len - 1]))
            len--;
        value[len] = '\0';
        while (s_ows (*value))
            value++;
        headers[i].name = self->hdrs.data + headers[i].name_off;
        headers[i].value = value;
    }
    self->request.headers = headers;
    self->request.header_count = count;
    return 0;
}

//  Split the target into path and query. Returns 0 or an error result.
static keel_http_result_t
s_split_target (keel_http_reader_t *self, int method)
{
    if (s_buf_putc (&self->url, '\0'))
        return KEEL_HTTP_NO_MEMORY;
    const char *url = self->url.data;
    size_t url_len = self->url.size - 1;
    const char *path = "/", *query = "";
    size_t path_len = 1, query_len = 0;
    if (url_len == 1 && url[0] == '*') {
        if (method != HTTP_OPTIONS)
            return KEEL_HTTP_BAD_REQUEST;
        path = "*";
    } else {
        struct http_parser_url parts;
        http_parser_url_init (&parts);
        if (http_parser_parse_url (url, url_len, 0, &parts))
            return KEEL_HTTP_BAD_REQUEST;
        if (parts.field_set & ((1 << UF_FRAGMENT) | (1 << UF_USERINFO)))
            return KEEL_HTTP_BAD_REQUEST;
        if (url[0] != '/') {
            //  Absolute form: http(s)://host[:port][/path][?query]
            if (!(parts.field_set & (1 << UF_SCHEMA)) ||
                !(parts.field_set & (1 << UF_HOST)))
                return KEEL_HTTP_BAD_REQUEST;
            const char *schema = url + parts.field_data[UF_SCHEMA].off;
            size_t schema_len = parts.field_data[UF_SCHEMA].len;
            if (!(schema_len == 4 && strncasecmp (schema, "http", 4) == 0) &&
                !(schema_len == 5 && strncasecmp (schema, "https", 5) == 0))
                return KEEL_HTTP_BAD_REQUEST;
        }
        if (parts.field_set & (1 << UF_PATH)) {
            path = url + parts.field_data[UF_PATH].off;
            path_len = parts.field_data[UF_PATH].len;
        }
        if (parts.field_set & (1 << UF_QUERY)) {
            query = url + parts.field_data[UF_QUERY].off;
            query_len = parts.field_data[UF_QUERY].len;
        }
    }
    if (s_buf_append (&self->target, path, path_len) ||
        s_buf_putc (&self->target, '\0') ||
        s_buf_append (&self->target, query, query_len) ||
        s_buf_putc (&self->target, '\0'))
        return KEEL_HTTP_NO_MEMORY;
    self->request.url = url;
    self->request.path = self->target.data;
    self->request.query = self->target.data + path_len + 1;
    return 0;
}

static int
s_on_headers_complete (http_parser *parser)
{
    keel_http_reader_t *self = parser->data;
    self->in_field = self->in_value = 0;
    self->in_trailers = 1;
    if (s_finish_headers (self))
        return s_fail (self, KEEL_HTTP_NO_MEMORY);
    keel_http_result_t rc = s_split_target (self, parser->method);
    if (rc)
        return s_fail (self, rc);
    //  RFC 9112 2.6: HTTP/1.x only (the parser takes any digit.digit).
    if (parser->http_major != 1)
        return s_fail (self, KEEL_HTTP_VERSION_NOT_SUPPORTED);
    if (!(parser->flags & F_CHUNKED) && parser->content_length != ULLONG_MAX &&
        parser->content_length > self->limits.max_body)
        return s_fail (self, KEEL_HTTP_BODY_TOO_LARGE);
    self->request.method = http_method_str (parser->method);
    self->request.major = parser->http_major;
    self->request.minor = parser->http_minor;
    //  RFC 9110 10.1.1: an HTTP/1.1 client waits for 100 Continue before
    //  it sends a body it announced with Expect: 100-continue.
    const char *expect = keel_http_request_header (&self->request, "Expect");
    int has_body =
        (parser->flags & F_CHUNKED) ||
        (parser->content_length != ULLONG_MAX && parser->content_length > 0);
    self->expect_continue =
        expect && strcasecmp (expect, "100-continue") == 0 && has_body &&
        parser->http_major == 1 && parser->http_minor >= 1;
    return 0;
}

int
keel_http_reader_take_continue (keel_http_reader_t *self)
{
    int expect = self->expect_continue;
    self->expect_continue = 0;
    return expect;
}

static int
s_on_body (http_parser *parser, const char *at, size_t length)
{
    keel_http_reader_t *self = parser->data;
    if (length > self->limits.max_body - self->body.size)
        return s_fail (self, KEEL_HTTP_BODY_TOO_LARGE);
    if (s_buf_append (&self->body, at, length))
        return s_fail (self, KEEL_HTTP_NO_MEMORY);
    return 0;
}

static int
s_on_message_complete (http_parser *parser)
{
    keel_http_reader_t *self = parser->data;
    self->request.keep_alive = http_should_keep_alive (parser) != 0;
    self->request.body = self->body.size ? self->body.data : NULL;
    self->request.body_size = self->body.size;
    self->complete = 1;
    //  Stop right after this request so pipelined bytes stay unconsumed.
    //  An upgrade stops http-parser by itself (and pausing would make it
    //  report one byte less).
    if (!parser->upgrade)
        http_parser_pause (parser, 1);
    return 0;
}

int
keel_http_result_status (keel_http_result_t result)
{
    switch (result) {
    case KEEL_HTTP_NEED_MORE:
    case KEEL_HTTP_REQUEST:
        return 0;
    case KEEL_HTTP_UPGRADE:
    case KEEL_HTTP_METHOD_NOT_IMPLEMENTED:
        return 501;
    case KEEL_HTTP_BAD_REQUEST:
        return 400;
    case KEEL_HTTP_BODY_TOO_LARGE:
        return 413;
    case KEEL_HTTP_URL_TOO_LONG:
        return 414;
    case KEEL_HTTP_HEADERS_TOO_LARGE:
        return 431;
    case KEEL_HTTP_VERSION_NOT_SUPPORTED:
        return 505;
    case KEEL_HTTP_NO_MEMORY:
        return 500;
    }
    return 500;
}

const char *
keel_http_result_str (keel_http_result_t result)
{
    switch (result) {
    case KEEL_HTTP_NEED_MORE:
        return "need-more";
    case KEEL_HTTP_REQUEST:
        return "request";
    case KEEL_HTTP_UPGRADE:
        return "upgrade";
    case KEEL_HTTP_BAD_REQUEST:
        return "bad-request";
    case KEEL_HTTP_BODY_TOO_LARGE:
        return "body-too-large";
    case KEEL_HTTP_URL_TOO_LONG:
        return "url-too-long";
    case KEEL_HTTP_HEADERS_TOO_LARGE:
        return "headers-too-large";
    case KEEL_HTTP_METHOD_NOT_IMPLEMENTED:
        return "method-not-implemented";
    case KEEL_HTTP_VERSION_NOT_SUPPORTED:
        return "version-not-supported";
    case KEEL_HTTP_NO_MEMORY:
        return "no-memory";
    }
    return "unknown";
}

keel_http_reader_t *
keel_http_reader_new (const keel_http_limits_t *limits)
{
    keel_http_reader_t *self = calloc (1, sizeof (*self));
    if (!self)
        return NULL;
    if (limits)
        self->limits = *limits;
    if (!self->limits.max_url)
        self->limits.max_url = S_DEFAULT_MAX_URL;
    if (!self->limits.max_headers)
        self->limits.max_headers = S_DEFAULT_MAX_HEADERS;
    if (!self->limits.max_header_count)
        self->limits.max_header_count = S_DEFAULT_MAX_HEADER_COUNT;
    if (!self->limits.max_body)
        self->limits.max_body = S_DEFAULT_MAX_BODY;
    http_parser_init (&self->parser, HTTP_REQUEST);
    self->parser.data = self;
    http_parser_settings_init (&self->settings);
    self->settings.on_message_begin = s_on_message_begin;
    self->settings.on_url = s_on_url;
    self->settings.on_header_field = s_on_header_field;
    self->settings.on_header_value = s_on_header_value;
    self->settings.on_headers_complete = s_on_headers_complete;
    self->settings.on_body = s_on_body;
    self->settings.on_message_complete = s_on_message_complete;
    return self;
}

void
keel_http_reader_destroy (keel_http_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keel_http_reader_t *self = *self_p;
    s_buf_free (&self->url);
    s_buf_free (&self->hdrs);
    s_buf_free (&self->entries);
    s_buf_free (&self->target);
    s_buf_free (&self->body);
    free (self);
    *self_p = NULL;
}

keel_http_result_t
keel_http_reader_feed (keel_http_reader_t *self, const void *data, size_t size,
                       size_t *consumed)
{
    *consumed = 0;
    if (self->terminal)
        return self->terminal;
    self->has_request = 0;
    if (size == 0)
        return KEEL_HTTP_NEED_MORE;
    self->complete = 0;
    self->pending = 0;
    self->buf_start = data;
    self->buf_end = (const char *)data + size;
    size_t used =
        http_parser_execute (&self->parser, &self->settings, data, size);
    enum http_errno err = HTTP_PARSER_ERRNO (&self->parser);
    *consumed = used;
    for (size_t i = used; i > 0; i--)
        if (!s_ows (self->buf_start[i - 1])) {
            self->last_byte = self->buf_start[i - 1];
            break;
        }
    if (self->pending)
        return self->terminal = self->pending;
    if (err == HPE_PAUSED && self->complete) {
        http_parser_pause (&self->parser, 0);
        self->has_request = 1;
        return KEEL_HTTP_REQUEST;
    }
    if (err != HPE_OK)
        return self->terminal = err == HPE_HEADER_OVERFLOW
                                    ? KEEL_HTTP_HEADERS_TOO_LARGE
                                    : KEEL_HTTP_BAD_REQUEST;
    if (self->parser.upgrade && self->complete) {
        self->has_request = 1;
        return self->terminal = KEEL_HTTP_UPGRADE;
    }
    if (used != size)
        return self->terminal = KEEL_HTTP_BAD_REQUEST;
    return KEEL_HTTP_NEED_MORE;
}

keel_http_request_t *
keel_http_reader_request (keel_http_reader_t *self)
{
    return self->has_request ? &self->request : NULL;
}

const char *
keel_http_request_method (const keel_http_request_t *self)
{
    return self->method;
}

const char *
keel_http_request_url (const keel_http_request_t *self)
{
    return self->url;
}

const char *
keel_http_request_path (const keel_http_request_t *self)
{
    return self->path;
}

const char *
keel_http_request_query (const keel_http_request_t *self)
{
    return self->query;
}

int
keel_http_request_version_major (const keel_http_request_t *self)
{
    return self->major;
}

int
keel_http_request_version_minor (const keel_http_request_t *self)
{
    return self->minor;
}

int
keel_http_request_keep_alive (const keel_http_request_t *self)
{
    return self->keep_alive;
}

size_t
keel_http_request_header_count (const keel_http_request_t *self)
{
    return self->header_count;
}

const char *
keel_http_request_header_name (const keel_http_request_t *self, size_t index)
{
    return index < self->header_count ? self->headers[index].name : NULL;
}

const char *
keel_http_request_header_value (const keel_http_request_t *self, size_t index)
{
    return index < self->header_count ? self->headers[index].value : NULL;
}

const char *
keel_http_request_header (const keel_http_request_t *self, const char *name)
{
    for (size_t i = 0; i < self->header_count; i++)
        if (strcasecmp (self->headers[i].name, name) == 0)
            return self->headers[i].value;
    return NULL;
}

const char *
keel_http_request_host (const keel_http_request_t *self)
{
    return keel_http_request_header (self, "Host");
}

const void *
keel_http_request_body (const keel_http_request_t *self)
{
    return self->body;
}

size_t
keel_http_request_body_size (const keel_http_request_t *self)
{
    return self->body_size;
}

//  True if `name` is one of the comma-separated tokens of any Connection
//  header (tokens trimmed, compared case-insensitively).
static int
s_named_in_connection (const keel_http_request_t *self, const char *name)
{
    size_t name_len = strlen (name);
    for (size_t i = 0; i < self->header_count; i++) {
        if (strcasecmp (self->headers[i].name, "Connection") != 0)
            continue;
        const char *token = self->headers[i].value;
        while (*token) {
            while (*token == ',' || s_ows (*token))
                token++;
            const char *end = token;
            while (*end && *end != ',')
                end++;
            const char *last = end;
            while (last > token && s_ows (last[-1]))
                last--;
            if ((size_t)(last - token) == name_len && name_len &&
                strncasecmp (token, name, name_len) == 0)
                return 1;
            token = end;
        }
    }
    return 0;
}

static int
s_is_hop_by_hop (const keel_http_request_t *self, const char *name)
{
    static const char *fixed[] = {
        "Connection", "Keep-Alive", "Proxy-Connection",  "TE",
        "Trailer",    "Upgrade",    "Transfer-Encoding", NULL};
    for (size_t i = 0; fixed[i]; i++)
        if (strcasecmp (name, fixed[i]) == 0)
            return 1;
    return s_named_in_connection (self, name);
}

size_t
keel_http_request_strip_hop_by_hop (keel_http_request_t *self)
{
    //  Decide every header first: Connection itself goes too, and its
    //  list must be read before it is removed.
    size_t kept = 0;
    size_t count = self->header_count;
    for (size_t i = 0; i < count; i++) {
        //  name_off is unused after headers-complete: it holds the mark
        self->headers[i].name_off =
            s_is_hop_by_hop (self, self->headers[i].name);
    }
    for (size_t i = 0; i < count; i++)
        if (!self->headers[i].name_off)
            self->headers[kept++] = self->headers[i];
    self->header_count = kept;
    return count - kept;
}
