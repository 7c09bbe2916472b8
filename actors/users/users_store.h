/*  users_store.h - the users demo service's state and its HTTP answers (pure
    core): an in-memory table of users, and what each request on it
    answers, as JSON text. No sockets, no threads, no clock. The shell
    (users_actor.c) turns a keel.HttpRequest into a keel_users_request_t and
    the reply into a keel.HttpResponse.

        GET    /users       200 {"users":[{"id":"1","name":"Ada Lovelace",
                                           "email":"ada@example.com"}, ...]}
        GET    /users/ID    200 {"id":"1","name":...,"email":...}
                            404 unknown ID
        POST   /users       body {"name":"...","email":"..."} (other keys
                            ignored) -> 201 the new user, Location /users/ID;
                            400 not a JSON object, a field missing, empty,
                            not a string, too long, or an email without '@'
                            in its middle; 409 the table is full
        DELETE /users/ID    204; 404 unknown ID
        other methods       405 with Allow ("GET, HEAD, POST" on the
                            collection, "GET, HEAD, DELETE" on a user)
    HEAD answers as GET (the HTTP server drops the body). Every error body
    is keel's: {"error":"not_found","message":"no user 9","status":404
    [,"request_id":"..."]}.

    Which resource a request names: the user `id` when the request has one
    (a gateway template route such as /users/{id} passes it decoded),
    else the last segment of the path, unless that segment is "users" or
    the path has none ("/"): then the collection. So /users, /users/ and
    /api/users are the collection; /users/2 and /api/users/2 are user 2.

    The table starts with three users (ids 1, 2, 3); new ids count up from
    4 and are never reused. It holds at most KEEL_USERS_MAX users.
*/
#ifndef KEEL_USERS_STORE_H_INCLUDED
#define KEEL_USERS_STORE_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Most users the table holds; a POST beyond is 409.
#define KEEL_USERS_MAX 1000
//  Longest name and email accepted, in bytes.
#define KEEL_USERS_MAX_NAME  100
#define KEEL_USERS_MAX_EMAIL 254

typedef struct _keel_users_t keel_users_t;

//  One request, as the shell got it. Every pointer is borrowed for the call.
typedef struct {
    const char *method;     //  "GET", "POST", ...
    const char *path;       //  raw path, without the query ("/users/2")
    const char *id;         //  the route's decoded {id}, or NULL
    const void *body;       //  request body (may be NULL when size is 0)
    size_t size;            //  its size
    const char *request_id; //  put in error bodies; NULL or "" = none
} keel_users_request_t;

//  The answer. Release what it holds with keel_users_reply_free.
typedef struct {
    int status;        //  HTTP status
    char *body;        //  JSON text (NUL-terminated), or NULL (204)
    char *location;    //  201: path of the new user, else NULL
    const char *allow; //  405: the methods allowed (static), else NULL
} keel_users_reply_t;

//  Create a table holding the three seed users. Caller owns it and must
//  destroy it. NULL if out of memory.
keel_users_t *keel_users_new (void);

//  Destroy the table; nulls *self_p. Accepts NULL and a pointer to NULL.
void keel_users_destroy (keel_users_t **self_p);

//  Number of users in the table.
size_t keel_users_size (keel_users_t *self);

//  Answer `request` into *reply (overwritten; free it with
//  keel_users_reply_free even on failure). Returns 0, or -1 if out of
//  memory (then the table is unchanged and *reply is empty).
int keel_users_answer (keel_users_t *self, const keel_users_request_t *request,
                       keel_users_reply_t *reply);

//  Free what a reply holds and zero it.
void keel_users_reply_free (keel_users_reply_t *reply);

#ifdef __cplusplus
}
#endif

#endif
