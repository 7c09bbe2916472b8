/*  web_pages.h - what the web demo service answers (pure core): a fixed
    product catalog and a health page, as JSON, from a request's method,
    path and two of its headers. No sockets, no threads, no clock; the
    shell (web_actor.c) owns the HTTP server.

        GET /health          200 {"status":"ok"}
        GET /products        200 {"products":[{"id":"apple","name":"Apple",
                                               "price":15}, ...],
                                  "instance":"dev-web",
                                  "request_id":"..." | null,
                                  "forwarded_for":"..." | null}
        GET /products/{id}   200 {"id":"apple","name":"Apple","price":15}
                             404 unknown id
        anything else        404 {"error":"not_found","message":"...",
                                  "status":404[,"request_id":"..."]}
    HEAD answers as GET (the server drops the body); another method on a
    page that exists is 405 with Allow "GET, HEAD". A trailing slash names
    the same page ("/products/" is the catalog).

    "request_id" and "forwarded_for" are the X-Request-Id and
    X-Forwarded-For headers the request came with (null when absent): a
    request through the gateway shows what the gateway added. The products
    are the items the shop's order saga sells (apple, pear, widget), priced
    per unit.
*/
#ifndef KEEL_WEB_PAGES_H_INCLUDED
#define KEEL_WEB_PAGES_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

//  One request. Every pointer is borrowed for the call.
typedef struct {
    const char *method;        //  "GET"
    const char *path;          //  raw path, without the query
    const char *request_id;    //  X-Request-Id received, or NULL
    const char *forwarded_for; //  X-Forwarded-For received, or NULL
    const char *instance;      //  this instance's id
} keel_web_request_t;

//  The answer: status, JSON body (caller frees it with free()), and for
//  405 the methods allowed (static), else NULL.
typedef struct {
    int status;
    char *body;
    const char *allow;
} keel_web_reply_t;

//  Answer `request` into *reply (overwritten). Returns 0, or -1 if out of
//  memory (then reply->body is NULL).
int keel_web_answer (const keel_web_request_t *request,
                     keel_web_reply_t *reply);

#ifdef __cplusplus
}
#endif

#endif
