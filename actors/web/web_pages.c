/*  web_pages.c - what the web demo service answers. See web_pages.h. */
#include "web_pages.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *id;
    const char *name;
    int price; //  per unit
} s_products[] = {
    {"apple", "Apple", 15},
    {"pear", "Pear", 12},
    {"widget", "Widget", 10},
};

#define S_PRODUCTS (sizeof s_products / sizeof s_products[0])

//  Put `doc` (stolen) as compact text in reply->body with `status`.
static int
s_reply (keel_web_reply_t *reply, int status, json_t *doc)
{
    reply->body = doc ? json_dumps (doc, JSON_COMPACT) : NULL;
    json_decref (doc);
    reply->status = reply->body ? status : 500;
    return reply->body ? 0 : -1;
}

static int
s_error (keel_web_reply_t *reply, const keel_web_request_t *request, int status,
         const char *code, const char *message)
{
    json_t *doc = json_pack ("{s:s, s:s, s:i}", "error", code, "message",
                             message, "status", status);
    if (doc && request->request_id &&
        json_object_set_new (doc, "request_id",
                             json_string (request->request_id)) == -1) {
        json_decref (doc);
        doc = NULL;
    }
    return s_reply (reply, status, doc);
}

static json_t *
s_product (size_t i)
{
    return json_pack ("{s:s, s:s, s:i}", "id", s_products[i].id, "name",
                      s_products[i].name, "price", s_products[i].price);
}

static int
s_catalog (keel_web_reply_t *reply, const keel_web_request_t *request)
{
    json_t *products = json_array ();
    for (size_t i = 0; products && i < S_PRODUCTS; i++)
        if (json_array_append_new (products, s_product (i)) == -1) {
            json_decref (products);
            products = NULL;
        }
    //  "s?": null when the header was absent.
    json_t *doc = products ? json_pack ("{s:o, s:s, s:s?, s:s?}", "products",
                                        products, "instance", request->instance,
                                        "request_id", request->request_id,
                                        "forwarded_for", request->forwarded_for)
                           : NULL;
    return s_reply (reply, 200, doc);
}

//  Does `path` (without trailing slashes, `len` bytes) equal `page`?
static bool
s_is (const char *path, size_t len, const char *page)
{
    return strlen (page) == len && strncmp (path, page, len) == 0;
}

int
keel_web_answer (const keel_web_request_t *request, keel_web_reply_t *reply)
{
    memset (reply, 0, sizeof *reply);
    const char *path = request->path ? request->path : "";
    const char *method = request->method ? request->method : "";
    size_t len = strlen (path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    //  Which page, if any: 0 none, 1 health, 2 catalog, 3 a product.
    int page = 0;
    size_t product = S_PRODUCTS;
    if (s_is (path, len, "/health"))
        page = 1;
    else if (s_is (path, len, "/products"))
        page = 2;
    else if (len > 10 && strncmp (path, "/products/", 10) == 0 &&
             !memchr (path + 10, '/', len - 10)) {
        page = 3;
        for (size_t i = 0; i < S_PRODUCTS; i++)
            if (s_is (path + 10, len - 10, s_products[i].id))
                product = i;
    }
    char message[160];
    if (page == 0) {
        snprintf (message, sizeof message, "no page at %.100s", path);
        return s_error (reply, request, 404, "not_found", message);
    }
    if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0) {
        reply->allow = "GET, HEAD";
        snprintf (message, sizeof message, "%.100s takes GET and HEAD", path);
        return s_error (reply, request, 405, "method_not_allowed", message);
    }
    if (page == 1)
        return s_reply (reply, 200, json_pack ("{s:s}", "status", "ok"));
    if (page == 2)
        return s_catalog (reply, request);
    if (product == S_PRODUCTS) {
        snprintf (message, sizeof message, "no product %.*s",
                  (int)(len - 10 < 60 ? len - 10 : 60), path + 10);
        return s_error (reply, request, 404, "not_found", message);
    }
    return s_reply (reply, 200, s_product (product));
}
