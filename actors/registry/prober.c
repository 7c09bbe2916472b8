/*  prober.c - active health checks on a libcurl multi handle. See prober.h.

    Two threads and two sockets between them:

        owner (keel_prober_t)                    prober thread (s_self_t)
        zactor pipe  ---- "$TERM" only ------->  pipe
        PAIR, bound  ---- CHECK -------------->  PAIR, connected
                     <--- RESULT --------------

    Checks and results travel on a PAIR of their own, with no high-water
    mark, instead of the zactor pipe: the owner bounds what is in flight
    (KEEL_PROBER_MAX_PENDING), so neither side ever blocks on it, and the
    pipe carries nothing but $TERM and signals, so zactor_destroy's $TERM
    and the thread's exit signal always fit, however many results the owner
    has left unread.

    The thread sleeps in curl_multi_poll on curl's sockets plus the ZMQ_FD
    of its two sockets, so a check or a $TERM wakes it at once. ZMQ_FD is
    edge-triggered (it turns readable only for news since the last look),
    so the loop reads ZMQ_EVENTS of both sockets just before it sleeps and
    does not sleep while either has a message waiting.

    Frames:
        CHECK   kind (1 byte) | id | url | timeout_ms (4 bytes, host order)
        RESULT  id | passed (1 byte) | response_time_us (4 bytes) | output
*/
#include "prober.h"
#include "keel_common.h"
#include "keel_node.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

//  Longest sleep in curl_multi_poll: a backstop only, every wake-up that
//  matters comes through a file descriptor.
#define POLL_BACKSTOP_MS 1000
//  Checks read from the owner per loop turn, so a flood of submissions
//  does not starve running transfers.
#define READ_BATCH 256

// ---------------------------------------------------------------------------
//  libcurl's process-wide state: initialised once, never cleaned up, since
//  other parts of the process may use it too.

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static CURLcode s_curl_status = CURLE_FAILED_INIT;

static void
s_curl_global_init (void)
{
    s_curl_status = curl_global_init (CURL_GLOBAL_DEFAULT);
}

// ---------------------------------------------------------------------------
//  Targets

//  True if text[0..size) is host[:port]: host a name or an [IPv6] literal,
//  port 1-65535 (required when port_required).
static bool
s_authority_valid (const char *text, size_t size, bool port_required)
{
    const char *end = text + size;
    const char *host_end;
    if (size > 0 && text[0] == '[') {
        const char *close = (const char *)memchr (text, ']', size);
        if (!close || close == text + 1)
            return false;
        for (const char *p = text + 1; p < close; p++)
            if (!isxdigit ((unsigned char)*p) && *p != ':' && *p != '.')
                return false;
        host_end = close + 1;
    } else {
        host_end = (const char *)memchr (text, ':', size);
        if (!host_end)
            host_end = end;
        if (host_end == text)
            return false;
        for (const char *p = text; p < host_end; p++)
            if (!isalnum ((unsigned char)*p) && !strchr ("-._", *p))
                return false;
    }
    if (host_end == end)
        return !port_required;
    if (*host_end != ':')
        return false;
    const char *digits = host_end + 1;
    if (end - digits < 1 || end - digits > 5)
        return false;
    unsigned port = 0;
    for (const char *p = digits; p < end; p++) {
        if (!isdigit ((unsigned char)*p))
            return false;
        port = port * 10 + (unsigned)(*p - '0');
    }
    return port >= 1 && port <= 65535;
}

//  The URL curl uses for a check, or NULL if the target has the wrong
//  shape. Caller frees.
static char *
s_check_url (keel_probe_kind_t kind, const char *target)
{
    size_t len = strnlen (target, KEEL_PROBER_MAX_TARGET + 1);
    if (len == 0 || len > KEEL_PROBER_MAX_TARGET)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)target[i] <= ' ' || target[i] == 0x7f)
            return NULL;
    if (kind == KEEL_PROBE_HTTP) {
        if (strncasecmp (target, "http://", 7) != 0)
            return NULL;
        const char *authority = target + 7;
        if (!s_authority_valid (authority, strcspn (authority, "/?#"), false))
            return NULL;
        return strdup (target);
    }
    if (!s_authority_valid (target, len, true))
        return NULL;
    return zsys_sprintf ("http://%s/", target);
}

// ---------------------------------------------------------------------------
//  One check, inside the prober thread

typedef struct {
    char *id;                    //  caller's key, echoed in the result
    keel_probe_kind_t kind;      //  HTTP or TCP
    char *url;                   //  what curl fetches or connects to
    uint32_t timeout_ms;         //  bound on the whole check
    CURL *easy;                  //  its transfer, while running
    void *handle;                //  its place in s_self_t.running
    size_t body_bytes;           //  body bytes read and thrown away
    bool body_capped;            //  stopped reading at KEEL_PROBER_MAX_BODY
    char error[CURL_ERROR_SIZE]; //  curl's words for a failure
} s_check_t;

//  Free a check; its transfer must be out of the multi handle already.
static void
s_check_destroy (s_check_t **self_p)
{
    s_check_t *self = *self_p;
    if (self) {
        if (self->easy)
            curl_easy_cleanup (self->easy);
        free (self->id);
        free (self->url);
        free (self);
        *self_p = NULL;
    }
}

static void
s_check_free (void **item)
{
    s_check_destroy ((s_check_t **)item);
}

//  Decode a CHECK message, or NULL if it is not one.
static s_check_t *
s_check_decode (zmsg_t *msg)
{
    if (zmsg_size (msg) != 4)
        return NULL;
    zframe_t *kind = zmsg_first (msg);
    zframe_t *id = zmsg_next (msg);
    zframe_t *url = zmsg_next (msg);
    zframe_t *timeout = zmsg_next (msg);
    if (zframe_size (kind) != 1 || zframe_size (timeout) != 4)
        return NULL;
    s_check_t *self = (s_check_t *)calloc (1, sizeof (s_check_t));
    if (!self)
        return NULL;
    self->kind = (keel_probe_kind_t)zframe_data (kind)[0];
    self->id = zframe_strdup (id);
    self->url = zframe_strdup (url);
    memcpy (&self->timeout_ms, zframe_data (timeout), 4);
    if (!self->id || !self->url)
        s_check_destroy (&self);
    return self;
}

//  curl's body sink: count and drop, stop past KEEL_PROBER_MAX_BODY.
static size_t
s_discard (char *data, size_t size, size_t nmemb, void *arg)
{
    (void)data;
    s_check_t *self = (s_check_t *)arg;
    self->body_bytes += size * nmemb;
    if (self->body_bytes > KEEL_PROBER_MAX_BODY) {
        self->body_capped = true;
        return 0; //  aborts the transfer with CURLE_WRITE_ERROR
    }
    return size * nmemb;
}

//  Make the check's transfer. Returns 0, or -1 if curl refused.
static int
s_check_prepare (s_check_t *self)
{
    self->easy = curl_easy_init ();
    if (!self->easy)
        return -1;
    CURL *easy = self->easy;
    self->error[0] = 0;
    if (curl_easy_setopt (easy, CURLOPT_URL, self->url) != CURLE_OK ||
        curl_easy_setopt (easy, CURLOPT_PRIVATE, self) != CURLE_OK ||
        curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, self->error) != CURLE_OK ||
        curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, (long)self->timeout_ms) !=
            CURLE_OK ||
        curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http") != CURLE_OK ||
        curl_easy_setopt (easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        //  A health check goes to the instance itself, never a proxy from
        //  the environment, and opens a connection of its own.
        curl_easy_setopt (easy, CURLOPT_PROXY, "") != CURLE_OK ||
        curl_easy_setopt (easy, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK ||
        curl_easy_setopt (easy, CURLOPT_USERAGENT, "keel-prober") != CURLE_OK)
        return -1;
#if LIBCURL_VERSION_NUM >= 0x075700
    //  A check that ends while its name is still being resolved (timeout,
    //  destroy) would otherwise wait here, stalling every other check, for
    //  getaddrinfo to return; this lets the resolver thread finish alone.
    if (curl_easy_setopt (easy, CURLOPT_QUICK_EXIT, 1L) != CURLE_OK)
        return -1;
#endif
    if (self->kind == KEEL_PROBE_TCP)
        return curl_easy_setopt (easy, CURLOPT_CONNECT_ONLY, 1L) == CURLE_OK
                   ? 0
                   : -1;
    if (curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_discard) != CURLE_OK ||
        curl_easy_setopt (easy, CURLOPT_WRITEDATA, self) != CURLE_OK)
        return -1;
    return 0;
}

// ---------------------------------------------------------------------------
//  The prober thread

typedef struct {
    zsock_t *pipe;                //  actor pipe: $TERM only
    zsock_t *sock;                //  PAIR to the owner: checks in, results out
    CURLM *multi;                 //  transfers of the running checks
    zlistx_t *queued;             //  s_check_t waiting for a slot, oldest first
    zlistx_t *running;            //  s_check_t whose transfer is in multi
    bool terminated;              //  $TERM received
    keel_ratelimit_t poll_failed; //  curl_multi_poll errors logged
    keel_ratelimit_t send_failed; //  results that could not be sent
} s_self_t;

static void
s_self_destroy (s_self_t **self_p)
{
    s_self_t *self = *self_p;
    if (self) {
        //  Abandon what runs: out of the multi handle, then freed
        s_check_t *check;
        while (self->running &&
               (check = (s_check_t *)zlistx_detach (self->running, NULL))) {
            curl_multi_remove_handle (self->multi, check->easy);
            s_check_destroy (&check);
        }
        zlistx_destroy (&self->running);
        zlistx_destroy (&self->queued);
        if (self->multi)
            curl_multi_cleanup (self->multi);
        zsock_destroy (&self->sock);
        free (self);
        *self_p = NULL;
    }
}

//  Returns NULL with *error_p set if the thread cannot run.
static s_self_t *
s_self_new (zsock_t *pipe, const char *endpoint, const char **error_p)
{
    s_self_t *self = (s_self_t *)calloc (1, sizeof (s_self_t));
    if (!self) {
        *error_p = "out of memory";
        return NULL;
    }
    self->pipe = pipe;
    self->queued = zlistx_new ();
    self->running = zlistx_new ();
    self->multi = curl_multi_init ();
    self->sock = zsock_new (ZMQ_PAIR);
    if (!self->queued || !self->running || !self->multi || !self->sock) {
        *error_p = "out of memory";
        s_self_destroy (&self);
        return NULL;
    }
    zlistx_set_destructor (self->queued, s_check_free);
    //  No high-water mark (the owner bounds what is in flight) and no
    //  waiting: a receive with nothing there returns at once.
    zsock_set_sndhwm (self->sock, 0);
    zsock_set_rcvhwm (self->sock, 0);
    zsock_set_sndtimeo (self->sock, 0);
    zsock_set_rcvtimeo (self->sock, 0);
    if (zsock_connect (self->sock, "%s", endpoint) == -1) {
        *error_p = "cannot connect to the owner";
        s_self_destroy (&self);
        return NULL;
    }
    return self;
}

static void
s_send_result (s_self_t *self, s_check_t *check, bool passed,
               uint32_t response_time_us, const char *output)
{
    zmsg_t *msg = zmsg_new ();
    uint8_t passed_byte = passed ? 1 : 0;
    zmsg_addstr (msg, check->id);
    zmsg_addmem (msg, &passed_byte, 1);
    zmsg_addmem (msg, &response_time_us, 4);
    zmsg_addstr (msg, output);
    if (zmsg_send (&msg, self->sock) == -1) {
        //  Only when the owner is going away (ETERM) or out of memory
        keel_log_limited (&self->send_failed, keel_now_ms (),
                          "prober: cannot send a result: %s",
                          zmq_strerror (zmq_errno ()));
        zmsg_destroy (&msg);
    }
}

//  Turn a finished transfer into a result and send it.
static void
s_report (s_self_t *self, s_check_t *check, CURLcode code)
{
    curl_off_t time_us = 0;
    curl_easy_getinfo (check->easy, CURLINFO_TOTAL_TIME_T, &time_us);
    if (time_us <= 0)
        curl_easy_getinfo (check->easy, CURLINFO_CONNECT_TIME_T, &time_us);
    uint32_t response_time_us = time_us <= 0           ? 0
                                : time_us > UINT32_MAX ? UINT32_MAX
                                                       : (uint32_t)time_us;
    char output[CURL_ERROR_SIZE + 64];
    bool passed = false;
    //  A body cut short by us still had a status line: judge by it
    if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && check->body_capped)) {
        if (check->kind == KEEL_PROBE_TCP) {
            passed = true;
            snprintf (output, sizeof output, "connected");
        } else {
            long status = 0;
            curl_easy_getinfo (check->easy, CURLINFO_RESPONSE_CODE, &status);
            passed = status >= 200 && status <= 299;
            snprintf (output, sizeof output, "HTTP %ld", status);
        }
    } else if (code == CURLE_OPERATION_TIMEDOUT)
        snprintf (output, sizeof output, "timeout after %u ms",
                  (unsigned)check->timeout_ms);
    else if (code == CURLE_COULDNT_CONNECT) {
        //  curl's message names no cause; the socket error does
        long os_errno = 0;
        char text[128];
        curl_easy_getinfo (check->easy, CURLINFO_OS_ERRNO, &os_errno);
        snprintf (output, sizeof output, "connect: %s",
                  os_errno ? strerror_r ((int)os_errno, text, sizeof text)
                  : check->error[0] ? check->error
                                    : curl_easy_strerror (code));
    } else
        snprintf (output, sizeof output, "%s",
                  check->error[0] ? check->error : curl_easy_strerror (code));
    s_send_result (self, check, passed, response_time_us, output);
}

//  Read $TERM (and ignore anything else) from the actor pipe.
static void
s_read_pipe (s_self_t *self)
{
    while (!self->terminated && (zsock_events (self->pipe) & ZMQ_POLLIN)) {
        char *command = zstr_recv (self->pipe);
        if (!command || streq (command, "$TERM"))
            self->terminated = true;
        zstr_free (&command);
    }
}

//  Queue what the owner submitted, a batch at a time.
static void
s_read_checks (s_self_t *self)
{
    for (int i = 0; i < READ_BATCH; i++) {
        zmsg_t *msg = zmsg_recv (self->sock);
        if (!msg)
            break; //  nothing more (the socket never waits)
        s_check_t *check = s_check_decode (msg);
        zmsg_destroy (&msg);
        if (check)
            zlistx_add_end (self->queued, check);
        else {
            //  Only keel_prober_submit writes here: this is a bug, or
            //  memory ran out. Still one reply per submission, so the
            //  owner's count stays true (keel_prober_recv returns -1).
            zsys_error ("prober: cannot decode a check");
            zstr_send (self->sock, "");
        }
    }
}

//  Start queued checks while slots are free.
static void
s_start_queued (s_self_t *self)
{
    while (zlistx_size (self->running) < KEEL_PROBER_MAX_RUNNING &&
           zlistx_size (self->queued) > 0) {
        s_check_t *check = (s_check_t *)zlistx_detach (self->queued, NULL);
        if (s_check_prepare (check) == 0 &&
            curl_multi_add_handle (self->multi, check->easy) == CURLM_OK)
            check->handle = zlistx_add_end (self->running, check);
        else {
            s_send_result (self, check, false, 0, "cannot start the check");
            s_check_destroy (&check);
        }
    }
}

//  Report and free the checks curl has finished.
static void
s_collect (s_self_t *self)
{
    CURLMsg *info;
    int left;
    while ((info = curl_multi_info_read (self->multi, &left))) {
        if (info->msg != CURLMSG_DONE)
            continue;
        CURL *easy = info->easy_handle;
        CURLcode code = info->data.result; //  info dies with remove_handle
        char *private_data = NULL;
        curl_easy_getinfo (easy, CURLINFO_PRIVATE, &private_data);
        s_check_t *check = (s_check_t *)private_data;
        s_report (self, check, code);
        curl_multi_remove_handle (self->multi, easy);
        zlistx_detach (self->running, check->handle);
        s_check_destroy (&check);
    }
}

//  How long curl_multi_poll may sleep.
static int
s_poll_timeout (s_self_t *self)
{
    //  ZMQ_EVENTS last, right before the sleep: see the top of the file
    if ((zsock_events (self->pipe) & ZMQ_POLLIN) ||
        (zsock_events (self->sock) & ZMQ_POLLIN))
        return 0;
    long timeout = -1;
    curl_multi_timeout (self->multi, &timeout);
    if (timeout < 0 || timeout > POLL_BACKSTOP_MS)
        timeout = POLL_BACKSTOP_MS;
    return (int)timeout;
}

static void
s_prober_actor (zsock_t *pipe, void *args)
{
    const char *error = NULL;
    s_self_t *self = s_self_new (pipe, (const char *)args, &error);
    keel_actor_ready (pipe, error);
    if (!self)
        return;
    struct curl_waitfd extra[2] = {
        {(curl_socket_t)zsock_fd (self->pipe), CURL_WAIT_POLLIN, 0},
        {(curl_socket_t)zsock_fd (self->sock), CURL_WAIT_POLLIN, 0},
    };
    while (true) {
        s_read_pipe (self);
        if (self->terminated)
            break;
        s_read_checks (self);
        s_start_queued (self);
        int still_running = 0;
        curl_multi_perform (self->multi, &still_running);
        s_collect (self);
        s_start_queued (self); //  into the slots just freed
        int timeout = s_poll_timeout (self);
        extra[0].revents = extra[1].revents = 0;
        CURLMcode rc = curl_multi_poll (self->multi, extra, 2, timeout, NULL);
        if (rc != CURLM_OK)
            keel_log_limited (&self->poll_failed, keel_now_ms (),
                              "prober: curl_multi_poll: %s",
                              curl_multi_strerror (rc));
    }
    s_self_destroy (&self);
    //  curl's TLS left per-thread state in libcrypto; free it now, while
    //  we own it, rather than in the thread's exit destructor, which could
    //  race with OpenSSL's atexit cleanup in the owner's process.
    OPENSSL_thread_stop ();
}

// ---------------------------------------------------------------------------
//  The owner's side

struct _keel_prober_t {
    zactor_t *actor;  //  the prober thread
    zsock_t *sock;    //  PAIR: checks out, results in
    char *endpoint;   //  where sock is bound (the thread reads it at start)
    size_t submitted; //  checks accepted
    size_t received;  //  results received
};

keel_prober_t *
keel_prober_new (void)
{
    static atomic_uint counter = 0;
    pthread_once (&s_curl_once, s_curl_global_init);
    if (s_curl_status != CURLE_OK) {
        zsys_error ("prober: curl_global_init: %s",
                    curl_easy_strerror (s_curl_status));
        return NULL;
    }
    keel_prober_t *self = (keel_prober_t *)calloc (1, sizeof (keel_prober_t));
    if (!self)
        return NULL;
    //  A fresh name each time: an inproc name is not free again at once
    self->endpoint = zsys_sprintf ("inproc://keel-prober-%u",
                                   atomic_fetch_add (&counter, 1));
    self->sock = zsock_new (ZMQ_PAIR);
    if (!self->endpoint || !self->sock) {
        keel_prober_destroy (&self);
        return NULL;
    }
    zsock_set_sndhwm (self->sock, 0);
    zsock_set_rcvhwm (self->sock, 0);
    zsock_set_sndtimeo (self->sock, 0);
    zsock_set_rcvtimeo (self->sock, 0);
    if (zsock_bind (self->sock, "%s", self->endpoint) == -1) {
        zsys_error ("prober: cannot bind %s", self->endpoint);
        keel_prober_destroy (&self);
        return NULL;
    }
    self->actor = zactor_new (s_prober_actor, self->endpoint);
    char *error = self->actor ? keel_actor_status (self->actor)
                              : strdup ("cannot start the thread");
    if (error) {
        zsys_error ("prober: %s", error);
        free (error);
        keel_prober_destroy (&self);
    }
    return self;
}

void
keel_prober_destroy (keel_prober_t **self_p)
{
    if (self_p && *self_p) {
        keel_prober_t *self = *self_p;
        //  $TERM wakes the thread through its pipe's ZMQ_FD; this returns
        //  once the thread has let go of every transfer.
        zactor_destroy (&self->actor);
        zsock_destroy (&self->sock);
        zstr_free (&self->endpoint);
        free (self);
        *self_p = NULL;
    }
    //  curl's initialisation (keel_prober_new, in this thread) left this
    //  thread's libcrypto error state: free it now, not in the thread's
    //  exit destructor, which may run after the process has begun to exit
    //  (CZMQ actor threads are detached).
    OPENSSL_thread_stop ();
}

zsock_t *
keel_prober_sock (keel_prober_t *self)
{
    assert (self);
    return self->sock;
}

int
keel_prober_submit (keel_prober_t *self, keel_probe_kind_t kind, const char *id,
                    const char *target, uint32_t timeout_ms)
{
    assert (self);
    if ((kind != KEEL_PROBE_HTTP && kind != KEEL_PROBE_TCP) || !id ||
        strnlen (id, KEEL_PROBER_MAX_ID + 1) > KEEL_PROBER_MAX_ID || !target ||
        timeout_ms == 0) {
        errno = EINVAL;
        return -1;
    }
    if (self->submitted - self->received >= KEEL_PROBER_MAX_PENDING) {
        errno = EAGAIN;
        return -1;
    }
    char *url = s_check_url (kind, target);
    if (!url) {
        errno = EINVAL;
        return -1;
    }
    zmsg_t *msg = zmsg_new ();
    uint8_t kind_byte = (uint8_t)kind;
    zmsg_addmem (msg, &kind_byte, 1);
    zmsg_addstr (msg, id);
    zmsg_addstr (msg, url);
    zmsg_addmem (msg, &timeout_ms, 4);
    free (url);
    if (zmsg_send (&msg, self->sock) == -1) {
        int error = zmq_errno ();
        zmsg_destroy (&msg);
        errno = error;
        return -1;
    }
    self->submitted++;
    return 0;
}

int
keel_prober_recv (keel_prober_t *self, keel_probe_result_t *result)
{
    assert (self);
    assert (result);
    memset (result, 0, sizeof *result);
    zmsg_t *msg = zmsg_recv (self->sock);
    if (!msg)
        return -1;
    //  Every message the thread sends is one check's result
    self->received++;
    int rc = -1;
    if (zmsg_size (msg) == 4) {
        zframe_t *id = zmsg_first (msg);
        zframe_t *passed = zmsg_next (msg);
        zframe_t *time_us = zmsg_next (msg);
        zframe_t *output = zmsg_next (msg);
        if (zframe_size (id) <= KEEL_PROBER_MAX_ID &&
            zframe_size (passed) == 1 && zframe_size (time_us) == 4) {
            result->id = zframe_strdup (id);
            result->output = zframe_strdup (output);
            result->passed = zframe_data (passed)[0] != 0;
            memcpy (&result->response_time_us, zframe_data (time_us), 4);
            rc = result->id && result->output ? 0 : -1;
        }
    }
    zmsg_destroy (&msg);
    if (rc == -1)
        keel_probe_result_clear (result);
    return rc;
}

void
keel_probe_result_clear (keel_probe_result_t *result)
{
    if (result) {
        free (result->id);
        free (result->output);
        memset (result, 0, sizeof *result);
    }
}

size_t
keel_prober_running (keel_prober_t *self)
{
    assert (self);
    return self->submitted - self->received;
}
