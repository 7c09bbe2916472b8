/*  users_store.c - the users demo service's state and answers. See
    users_store.h.

    The table is an array kept in id order (ids only grow, so appending
    keeps it sorted); it is small by construction (KEEL_USERS_MAX), and a
    linear search reads better than an index here.

        users[0]          users[1]          users[count - 1]
        +----------------+----------------+-----+
        | 1 Ada ...      | 2 Alan ...     | ... |   next_id = 4, 5, ...
        +----------------+----------------+-----+
*/
#include "users_store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t id; //  1, 2, ...
    char *name;  //  owned
    char *email; //  owned
} s_user_t;

struct _keel_users_t {
    s_user_t *users;  //  in id order
    size_t count;     //  users in the table
    size_t capacity;  //  slots allocated
    uint64_t next_id; //  id of the next user created
};

static const struct {
    const char *name;
    const char *email;
} s_seed[] = {
    {"Ada Lovelace", "ada@example.com"},
    {"Alan Turing", "alan@example.com"},
    {"Grace Hopper", "grace@example.com"},
};

#define S_COLLECTION_ALLOW "GET, HEAD, POST"
#define S_USER_ALLOW       "GET, HEAD, DELETE"

// ---------------------------------------------------------------------------
//  The table

//  Append a user with the next id. Returns it, or NULL if out of memory.
static s_user_t *
s_add (keel_users_t *self, const char *name, const char *email)
{
    if (self->count == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 8;
        s_user_t *users =
            (s_user_t *)realloc (self->users, capacity * sizeof (s_user_t));
        if (!users)
            return NULL;
        self->users = users;
        self->capacity = capacity;
    }
    s_user_t *user = &self->users[self->count];
    user->name = strdup (name);
    user->email = strdup (email);
    if (!user->name || !user->email) {
        free (user->name);
        free (user->email);
        return NULL;
    }
    user->id = self->next_id++;
    self->count++;
    return user;
}

//  The index of the user whose id is the text `id`, or -1. Only canonical
//  decimal ids match ("01" and "+1" name nobody).
static long
s_find (keel_users_t *self, const char *id)
{
    if (!id || !*id || *id == '0' || strlen (id) > 19)
        return -1;
    uint64_t value = 0;
    for (const char *p = id; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (uint64_t)(*p - '0');
    }
    for (size_t i = 0; i < self->count; i++)
        if (self->users[i].id == value)
            return (long)i;
    return -1;
}

keel_users_t *
keel_users_new (void)
{
    keel_users_t *self = (keel_users_t *)calloc (1, sizeof (keel_users_t));
    if (!self)
        return NULL;
    self->next_id = 1;
    for (size_t i = 0; i < sizeof s_seed / sizeof s_seed[0]; i++)
        if (!s_add (self, s_seed[i].name, s_seed[i].email)) {
            keel_users_destroy (&self);
            return NULL;
        }
    return self;
}

void
keel_users_destroy (keel_users_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keel_users_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        free (self->users[i].name);
        free (self->users[i].email);
    }
    free (self->users);
    free (self);
    *self_p = NULL;
}

size_t
keel_users_size (keel_users_t *self)
{
    return self->count;
}

// ---------------------------------------------------------------------------
//  Answers

//  The user as a JSON object (new reference), or NULL if out of memory.
static json_t *
s_user_json (const s_user_t *user)
{
    char id[24];
    snprintf (id, sizeof id, "%llu", (unsigned long long)user->id);
    return json_pack ("{s:s, s:s, s:s}", "id", id, "name", user->name, "email",
                      user->email);
}

//  Put `doc` (stolen) as compact text in reply->body with `status`.
//  Returns 0, or -1 if out of memory.
static int
s_reply_json (keel_users_reply_t *reply, int status, json_t *doc)
{
    reply->body = doc ? json_dumps (doc, JSON_COMPACT) : NULL;
    json_decref (doc);
    if (!reply->body)
        return -1;
    reply->status = status;
    return 0;
}

//  keel's error body: {"error":CODE,"message":...,"status":N[,"request_id"]}.
static int
s_reply_error (keel_users_reply_t *reply, const keel_users_request_t *request,
               int status, const char *code, const char *message)
{
    json_t *doc = json_pack ("{s:s, s:s, s:i}", "error", code, "message",
                             message, "status", status);
    if (doc && request->request_id && *request->request_id &&
        json_object_set_new (doc, "request_id",
                             json_string (request->request_id)) == -1) {
        json_decref (doc);
        doc = NULL;
    }
    return s_reply_json (reply, status, doc);
}

static int
s_list (keel_users_t *self, keel_users_reply_t *reply)
{
    json_t *users = json_array ();
    for (size_t i = 0; users && i < self->count; i++)
        if (json_array_append_new (users, s_user_json (&self->users[i])) ==
            -1) {
            json_decref (users);
            users = NULL;
        }
    return s_reply_json (reply, 200,
                         users ? json_pack ("{s:o}", "users", users) : NULL);
}

//  A required string field of a new user: non-empty, at most `max` bytes.
//  NULL if it is fine, else why not (static).
static const char *
s_field (json_t *doc, const char *key, size_t max, const char **value_p)
{
    json_t *value = json_object_get (doc, key);
    *value_p = json_string_value (value);
    if (!value)
        return "is missing";
    if (!json_is_string (value))
        return "is not a string";
    if (!**value_p)
        return "is empty";
    if (strlen (*value_p) > max) //  (jansson refuses \u0000 itself)
        return "is too long";
    return NULL;
}

static int
s_create (keel_users_t *self, const keel_users_request_t *request,
          keel_users_reply_t *reply)
{
    json_error_t jerr;
    json_t *doc = request->size
                      ? json_loadb ((const char *)request->body, request->size,
                                    JSON_REJECT_DUPLICATES, &jerr)
                      : NULL;
    if (!doc || !json_is_object (doc)) {
        json_decref (doc);
        return s_reply_error (reply, request, 400, "bad_request",
                              "the body is not a JSON object: expected "
                              "{\"name\":\"...\",\"email\":\"...\"}");
    }
    const char *name = NULL, *email = NULL, *key = "name";
    const char *why = s_field (doc, "name", KEEL_USERS_MAX_NAME, &name);
    if (!why) {
        key = "email";
        why = s_field (doc, "email", KEEL_USERS_MAX_EMAIL, &email);
    }
    char message[128];
    if (why) {
        snprintf (message, sizeof message, "\"%s\" %s", key, why);
        json_decref (doc);
        return s_reply_error (reply, request, 400, "bad_request", message);
    }
    const char *at = strchr (email, '@');
    if (!at || at == email || !at[1]) {
        json_decref (doc);
        return s_reply_error (reply, request, 400, "bad_request",
                              "\"email\" is not an address (name@domain)");
    }
    if (self->count >= KEEL_USERS_MAX) {
        json_decref (doc);
        snprintf (message, sizeof message,
                  "the demo keeps at most %d users: delete one first",
                  KEEL_USERS_MAX);
        return s_reply_error (reply, request, 409, "conflict", message);
    }
    s_user_t *user = s_add (self, name, email);
    json_decref (doc);
    if (!user)
        return -1;
    //  Location: the collection's path (as the client wrote it, so a
    //  mounted /api/users stays so) and the new id.
    size_t len = strlen (request->path);
    while (len && request->path[len - 1] == '/')
        len--;
    size_t size = len + 32;
    reply->location = (char *)malloc (size);
    if (reply->location)
        snprintf (reply->location, size, "%.*s/%llu", (int)len, request->path,
                  (unsigned long long)user->id);
    if (!reply->location || s_reply_json (reply, 201, s_user_json (user))) {
        //  Undo: the caller learns nothing was created.
        self->count--;
        self->next_id--;
        free (user->name);
        free (user->email);
        return -1;
    }
    return 0;
}

//  The id the request names: the route's {id}, else the path's last
//  segment (copied into buf); NULL for the collection.
static const char *
s_target_id (const keel_users_request_t *request, char *buf, size_t size)
{
    if (request->id && *request->id)
        return request->id;
    const char *path = request->path ? request->path : "";
    size_t end = strlen (path);
    while (end && path[end - 1] == '/')
        end--;
    size_t start = end;
    while (start && path[start - 1] != '/')
        start--;
    size_t len = end - start;
    if (len == 0 || (len == 5 && strncmp (path + start, "users", 5) == 0))
        return NULL;
    if (len >= size)
        len = size - 1; //  too long to be an id: names nobody all the same
    memcpy (buf, path + start, len);
    buf[len] = 0;
    return buf;
}

int
keel_users_answer (keel_users_t *self, const keel_users_request_t *request,
                   keel_users_reply_t *reply)
{
    memset (reply, 0, sizeof *reply);
    const char *method = request->method ? request->method : "";
    bool get = strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0;
    char buf[64];
    const char *id = s_target_id (request, buf, sizeof buf);
    int rc;
    if (!id) {
        if (get)
            rc = s_list (self, reply);
        else if (strcmp (method, "POST") == 0)
            rc = s_create (self, request, reply);
        else {
            reply->allow = S_COLLECTION_ALLOW;
            rc = s_reply_error (reply, request, 405, "method_not_allowed",
                                "the users collection takes GET and POST");
        }
    } else {
        long index = s_find (self, id);
        char message[128];
        snprintf (message, sizeof message, "no user %.60s", id);
        if (!get && strcmp (method, "DELETE") != 0) {
            reply->allow = S_USER_ALLOW;
            rc = s_reply_error (reply, request, 405, "method_not_allowed",
                                "a user takes GET and DELETE");
        } else if (index < 0)
            rc = s_reply_error (reply, request, 404, "not_found", message);
        else if (get)
            rc = s_reply_json (reply, 200, s_user_json (&self->users[index]));
        else {
            s_user_t *user = &self->users[index];
            free (user->name);
            free (user->email);
            memmove (user, user + 1,
                     (self->count - (size_t)index - 1) * sizeof (s_user_t));
            self->count--;
            reply->status = 204;
            rc = 0;
        }
    }
    if (rc == -1)
        keel_users_reply_free (reply);
    return rc;
}

void
keel_users_reply_free (keel_users_reply_t *reply)
{
    free (reply->body);
    free (reply->location);
    memset (reply, 0, sizeof *reply);
}
