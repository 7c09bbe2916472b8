/*  keel_security.c - the process-wide CURVE context. See keel_security.h.

    One static context, guarded by a mutex: set once before the sockets
    that read it exist, read by every thread that makes a socket (making
    sockets is not on any hot path, so a mutex costs nothing that shows).

    Why per bind / per connect: libzmq copies a socket's options when a
    bind or connect starts, so a socket can have a CURVE tcp listener and a
    plain ipc one, or connect to two servers with different keys, as long
    as the options are set right before each call.
*/
#include "keel_security.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  The context
static struct {
    zcert_t *cert;    //  this process's keypair, or NULL (no context)
    char *allow;      //  directory of allowed public certificates, or NULL
    bool require;     //  tcp must be CURVE
    zactor_t *auth;   //  zauth (ZAP handler) while require is set
    zactor_t *watch;  //  counts refused handshakes while require is set
    unsigned watched; //  monitors started (their inproc names)
} s_ctx;

//  Refused handshakes on CURVE servers, since the process started.
static atomic_uint_fast64_t s_refused_auth;      //  ZAP said no (key)
static atomic_uint_fast64_t s_refused_handshake; //  plain text, garbage

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

static const char s_suffix[] = ";curve=";
#define S_SUFFIX_LEN (sizeof s_suffix - 1)

// ---------------------------------------------------------------------------
//  Endpoints and keys

bool
keel_curve_key_valid (const char *text)
{
    static const char z85[] =
        "0123456789abcdefghijklmnopqrstuvwxyz"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    if (!text || strlen (text) != KEEL_CURVE_KEY_LEN)
        return false;
    for (const char *c = text; *c; c++)
        if (!strchr (z85, *c))
            return false;
    uint8_t key[32];
    //  Z85 groups of 5 characters must not overflow 32 bits.
    return zmq_z85_decode (key, text) != NULL;
}

int
keel_endpoint_key (const char *endpoint, char *key)
{
    if (!endpoint)
        return -1;
    const char *suffix = strchr (endpoint, ';');
    if (!suffix)
        return 0;
    if (strncmp (endpoint, "tcp://", 6) != 0 ||
        strncmp (suffix, s_suffix, S_SUFFIX_LEN) != 0 ||
        !keel_curve_key_valid (suffix + S_SUFFIX_LEN))
        return -1;
    if (key) {
        memcpy (key, suffix + S_SUFFIX_LEN, KEEL_CURVE_KEY_LEN);
        key[KEEL_CURVE_KEY_LEN] = 0;
    }
    return 1;
}

int
keel_endpoint_transport (const char *endpoint, char *out, size_t size)
{
    assert (endpoint);
    const char *suffix = strchr (endpoint, ';');
    size_t length = suffix ? (size_t)(suffix - endpoint) : strlen (endpoint);
    if (length >= size)
        return -1;
    memcpy (out, endpoint, length);
    out[length] = 0;
    return 0;
}

char *
keel_endpoint_with_key (const char *endpoint, const char *key)
{
    if (!endpoint)
        return NULL;
    if (!key || strncmp (endpoint, "tcp://", 6) != 0 || strchr (endpoint, ';'))
        return strdup (endpoint);
    return zsys_sprintf ("%s%s%s", endpoint, s_suffix, key);
}

// ---------------------------------------------------------------------------
//  The context

//  Clear the context. Caller holds the lock.
static void
s_clear (void)
{
    zactor_destroy (&s_ctx.watch);
    zactor_destroy (&s_ctx.auth);
    zcert_destroy (&s_ctx.cert);
    free (s_ctx.allow);
    s_ctx.allow = NULL;
    s_ctx.require = false;
}

static int s_error (char **error_p, const char *format, ...) CHECK_PRINTF (2);

static int
s_error (char **error_p, const char *format, ...)
{
    if (error_p) {
        va_list args;
        va_start (args, format);
        *error_p = zsys_vprintf (format, args);
        va_end (args);
    }
    return -1;
}

//  Load a keypair from FILE (and FILE_secret). Returns it, or NULL with
//  *error_p set.
static zcert_t *
s_load_cert (const char *path, char **error_p)
{
    char *secret = zsys_sprintf ("%s_secret", path);
    if (!secret) {
        s_error (error_p, "out of memory");
        return NULL;
    }
    //  Say which file is missing: zcert_load only says NULL.
    const char *missing = access (path, R_OK) != 0     ? path
                          : access (secret, R_OK) != 0 ? secret
                                                       : NULL;
    if (missing) {
        s_error (error_p, "cannot read certificate '%s': %s", missing,
                 strerror (errno));
        zstr_free (&secret);
        return NULL;
    }
    zstr_free (&secret);
    zcert_t *cert = zcert_load (path);
    if (!cert) {
        s_error (error_p,
                 "'%s' is not a certificate (write one with `keel "
                 "keygen -o FILE`)",
                 path);
        return NULL;
    }
    static const char zeroes[] = "0000000000000000000000000000000000000000";
    if (streq (zcert_secret_txt (cert), zeroes) ||
        !keel_curve_key_valid (zcert_public_txt (cert))) {
        zcert_destroy (&cert);
        s_error (error_p, "'%s_secret' holds no secret key", path);
        return NULL;
    }
    return cert;
}

//  Check that `path` is a directory. Returns 0, or -1 with *error_p set.
static int
s_check_dir (const char *path, char **error_p)
{
    struct stat info;
    if (stat (path, &info) != 0)
        return s_error (error_p, "cannot use directory '%s': %s", path,
                        strerror (errno));
    if (!S_ISDIR (info.st_mode))
        return s_error (error_p, "'%s' is not a directory", path);
    return 0;
}

// ---------------------------------------------------------------------------
//  Refused handshakes: each CURVE server socket gets a libzmq monitor
//  (zmq_socket_monitor: failed handshakes only); this actor reads them all,
//  counts and logs (rate-limited). Command: WATCH inproc-name.

typedef struct {
    zloop_t *loop;
    zlistx_t *socks; //  zsock_t: the monitors' PAIR ends (owned)
    int64_t last_ms; //  last log line
    uint64_t quiet;  //  refusals not logged since
} s_watch_t;

static int
s_on_watch_event (zloop_t *loop, zsock_t *sock, void *arg)
{
    s_watch_t *self = (s_watch_t *)arg;
    //  [uint16 event, uint32 value][local endpoint]
    zmsg_t *msg = zmsg_recv (sock);
    zframe_t *head = msg ? zmsg_first (msg) : NULL;
    if (!head || zframe_size (head) < 6) {
        zmsg_destroy (&msg);
        return 0;
    }
    uint16_t event;
    memcpy (&event, zframe_data (head), sizeof event);
    zframe_t *address = zmsg_next (msg);
    char *where = address ? zframe_strdup (address) : NULL;
    if (event == ZMQ_EVENT_MONITOR_STOPPED) {
        //  Its socket is gone (or monitored by someone else now).
        zloop_reader_end (loop, sock);
        void *handle = zlistx_find (self->socks, sock);
        if (handle)
            zlistx_delete (self->socks, handle); //  destroys it
    } else {
        bool auth = event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
        atomic_fetch_add (auth ? &s_refused_auth : &s_refused_handshake, 1);
        int64_t now = zclock_mono ();
        if (now - self->last_ms >= 1000) {
            char more[64] = "";
            if (self->quiet)
                snprintf (more, sizeof more,
                          " (and %" PRIu64 " more since the last line)",
                          self->quiet);
            zsys_warning ("security: %s refused a peer: %s%s",
                          where ? where : "?",
                          auth ? "its key is not allowed"
                               : "its handshake failed (plain text, garbage "
                                 "or a wrong server key)",
                          more);
            self->last_ms = now;
            self->quiet = 0;
        } else
            self->quiet++;
    }
    zstr_free (&where);
    zmsg_destroy (&msg);
    return 0;
}

static int
s_on_watch_command (zloop_t *loop, zsock_t *pipe, void *arg)
{
    s_watch_t *self = (s_watch_t *)arg;
    zmsg_t *msg = zmsg_recv (pipe);
    if (!msg)
        return -1;
    char *command = zmsg_popstr (msg);
    char *name = zmsg_popstr (msg);
    int rc = 0;
    if (!command || streq (command, "$TERM"))
        rc = -1;
    else if (streq (command, "WATCH") && name) {
        zsock_t *sock = zsock_new (ZMQ_PAIR);
        if (sock && zsock_connect (sock, "%s", name) == 0 &&
            zlistx_add_end (self->socks, sock)) {
            if (zloop_reader (loop, sock, s_on_watch_event, self) == 0)
                zloop_reader_set_tolerant (loop, sock);
        } else
            zsock_destroy (&sock);
    }
    zstr_free (&command);
    zstr_free (&name);
    zmsg_destroy (&msg);
    return rc;
}

static void
s_sock_free (void **item)
{
    zsock_destroy ((zsock_t **)item);
}

static void
s_watch_actor (zsock_t *pipe, void *args)
{
    (void)args;
    s_watch_t self = {zloop_new (), zlistx_new (), 0, 0};
    zsock_signal (pipe, 0);
    if (self.loop && self.socks) {
        zlistx_set_destructor (self.socks, s_sock_free);
        zloop_reader (self.loop, pipe, s_on_watch_command, &self);
        zloop_start (self.loop);
    }
    zloop_destroy (&self.loop);
    zlistx_destroy (&self.socks);
}

//  Count the refused handshakes of `sock` (a CURVE server). Caller holds
//  the lock. Without the watcher (or if libzmq refuses), nothing is counted.
static void
s_watch (zsock_t *sock)
{
    if (!s_ctx.watch)
        return;
    char name[64];
    snprintf (name, sizeof name, "inproc://keel-security-watch-%u",
              ++s_ctx.watched);
    if (zmq_socket_monitor (zsock_resolve (sock), name,
                            ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                ZMQ_EVENT_MONITOR_STOPPED) == 0)
        zstr_sendx (s_ctx.watch, "WATCH", name, NULL);
}

void
keel_security_refusals (uint64_t *auth, uint64_t *handshake)
{
    if (auth)
        *auth = atomic_load (&s_refused_auth);
    if (handshake)
        *handshake = atomic_load (&s_refused_handshake);
}

int
keel_security_set (const char *certificate, const char *allow, bool require,
                   char **error_p)
{
    if (error_p)
        *error_p = NULL;
    if (!certificate || !*certificate)
        return s_error (error_p, "no certificate given");
    if (require && (!allow || !*allow))
        return s_error (error_p, "require = true needs an allow directory");
    if (allow && *allow && s_check_dir (allow, error_p) == -1)
        return -1;
    zcert_t *cert = s_load_cert (certificate, error_p);
    if (!cert)
        return -1;
    zactor_t *auth = NULL;
    if (require) {
        auth = zactor_new (zauth, NULL);
        if (!auth) {
            zcert_destroy (&cert);
            return s_error (error_p, "cannot start zauth");
        }
        if (getenv ("KEEL_ZAUTH_VERBOSE")) {
            zstr_send (auth, "VERBOSE");
            zsock_wait (auth);
        }
        zstr_sendx (auth, "CURVE", allow, NULL);
        zsock_wait (auth);
    }
    zactor_t *watch = require ? zactor_new (s_watch_actor, NULL) : NULL;
    pthread_mutex_lock (&s_lock);
    s_clear ();
    s_ctx.cert = cert;
    s_ctx.allow = allow && *allow ? strdup (allow) : NULL;
    s_ctx.require = require;
    s_ctx.auth = auth;
    s_ctx.watch = watch;
    pthread_mutex_unlock (&s_lock);
    return 0;
}

int
keel_security_configure (keel_config_t *config, char **error_p)
{
    assert (config);
    if (error_p)
        *error_p = NULL;
    if (!zconfig_locate (keel_config_root (config), "security"))
        return 0;
    static const char *keys[] = {"certificate", "allow", "require", NULL};
    const char *certificate = NULL, *allow = NULL;
    bool require = true;
    char *why = NULL;
    int rc = 0;
    if (keel_config_check_keys (config, "security", keys) == -1 ||
        keel_config_string (config, "security/certificate", NULL,
                            &certificate) == -1 ||
        keel_config_string (config, "security/allow", NULL, &allow) == -1 ||
        keel_config_bool (config, "security/require", true, &require) == -1)
        rc = -1;
    else if (!certificate || !*certificate)
        rc = keel_config_fail (config, "security/certificate",
                               "missing (this node's certificate FILE, as "
                               "written by `keel keygen -o FILE`)");
    else if (require && (!allow || !*allow))
        rc = keel_config_fail (config, "security/allow",
                               "missing (a directory of the public "
                               "certificates allowed to connect)");
    else if (allow && *allow && s_check_dir (allow, &why) == -1)
        rc = keel_config_fail (config, "security/allow", "%s", why);
    else if (keel_security_set (certificate, allow, require, &why) == -1)
        rc = keel_config_fail (config, "security/certificate", "%s",
                               why ? why : "error");
    else
        rc = 1;
    zstr_free (&why);
    if (rc == -1 && error_p)
        *error_p = strdup (keel_config_error (config));
    return rc;
}

void
keel_security_reset (void)
{
    pthread_mutex_lock (&s_lock);
    s_clear ();
    pthread_mutex_unlock (&s_lock);
}

void
keel_security_reload (void)
{
    pthread_mutex_lock (&s_lock);
    if (s_ctx.auth && s_ctx.allow) {
        //  A new certstore: reads the directory from scratch.
        zstr_sendx (s_ctx.auth, "CURVE", s_ctx.allow, NULL);
        zsock_wait (s_ctx.auth);
    }
    pthread_mutex_unlock (&s_lock);
}

bool
keel_security_enabled (void)
{
    pthread_mutex_lock (&s_lock);
    bool enabled = s_ctx.cert != NULL;
    pthread_mutex_unlock (&s_lock);
    return enabled;
}

bool
keel_security_required (void)
{
    pthread_mutex_lock (&s_lock);
    bool required = s_ctx.cert && s_ctx.require;
    pthread_mutex_unlock (&s_lock);
    return required;
}

int
keel_security_public_key (char *key)
{
    assert (key);
    pthread_mutex_lock (&s_lock);
    int rc = -1;
    if (s_ctx.cert) {
        snprintf (key, KEEL_CURVE_KEY_LEN + 1, "%s",
                  zcert_public_txt (s_ctx.cert));
        rc = 0;
    }
    pthread_mutex_unlock (&s_lock);
    return rc;
}

// ---------------------------------------------------------------------------
//  Sockets

static bool
s_is_tcp (const char *endpoint)
{
    return strncmp (endpoint, "tcp://", 6) == 0;
}

//  Back to plain text for the next bind/connect, if an earlier one of this
//  socket set CURVE.
static void
s_plain (zsock_t *sock)
{
    if (zsock_mechanism (sock) == ZMQ_CURVE) {
        zsock_set_curve_server (sock, 0);
        //  zsock_set_zap_domain refuses "": ask libzmq itself.
        zmq_setsockopt (zsock_resolve (sock), ZMQ_ZAP_DOMAIN, "", 0);
        zsock_set_zap_enforce_domain (sock, 0);
    }
}

int
keel_security_server (zsock_t *sock, const char *endpoint)
{
    assert (sock);
    assert (endpoint);
    if (keel_endpoint_key (endpoint, NULL) == -1) {
        zsys_error ("security: malformed key suffix in '%s'", endpoint);
        return -1;
    }
    pthread_mutex_lock (&s_lock);
    if (s_is_tcp (endpoint) && s_ctx.cert && s_ctx.require) {
        zcert_apply (s_ctx.cert, sock);
        zsock_set_curve_server (sock, 1);
        zsock_set_zap_domain (sock, KEEL_ZAP_DOMAIN);
        zsock_set_zap_enforce_domain (sock, 1);
        s_watch (sock);
    } else
        s_plain (sock);
    pthread_mutex_unlock (&s_lock);
    return 0;
}

int
keel_security_client (zsock_t *sock, const char *endpoint)
{
    assert (sock);
    assert (endpoint);
    char key[KEEL_CURVE_KEY_LEN + 1];
    int has_key = keel_endpoint_key (endpoint, key);
    if (has_key == -1) {
        zsys_error ("security: malformed key suffix in '%s'", endpoint);
        return -1;
    }
    int rc = 0;
    pthread_mutex_lock (&s_lock);
    if (!s_is_tcp (endpoint))
        s_plain (sock);
    else if (has_key && !s_ctx.cert) {
        zsys_error ("security: '%s' requires CURVE but this process has no "
                    "certificate (config `security`, or KEEL_CERT)",
                    endpoint);
        rc = -1;
    } else if (has_key) {
        zcert_apply (s_ctx.cert, sock);
        zsock_set_curve_serverkey (sock, key);
    } else if (s_ctx.cert && s_ctx.require) {
        zsys_error ("security: refusing plain text to '%s': CURVE is "
                    "required and the endpoint names no server key "
                    "(tcp://HOST:PORT;curve=KEY)",
                    endpoint);
        rc = -1;
    } else
        s_plain (sock);
    pthread_mutex_unlock (&s_lock);
    return rc;
}

char *
keel_security_advertise (const char *endpoint)
{
    if (!endpoint)
        return NULL;
    char key[KEEL_CURVE_KEY_LEN + 1];
    pthread_mutex_lock (&s_lock);
    bool annotate = s_ctx.cert && s_ctx.require;
    if (annotate)
        snprintf (key, sizeof key, "%s", zcert_public_txt (s_ctx.cert));
    pthread_mutex_unlock (&s_lock);
    return keel_endpoint_with_key (endpoint, annotate ? key : NULL);
}

//  Longest endpoint handed to libzmq (a tcp host name is at most 253).
#define S_MAX_ENDPOINT 512

int
keel_security_bind (zsock_t *sock, const char *endpoint)
{
    char transport[S_MAX_ENDPOINT];
    if (keel_endpoint_transport (endpoint, transport, sizeof transport) == -1 ||
        keel_security_server (sock, endpoint) == -1) {
        errno = EINVAL;
        return -1;
    }
    return zsock_bind (sock, "%s", transport);
}

int
keel_security_connect (zsock_t *sock, const char *endpoint)
{
    char transport[S_MAX_ENDPOINT];
    if (keel_endpoint_transport (endpoint, transport, sizeof transport) == -1 ||
        keel_security_client (sock, endpoint) == -1) {
        errno = EINVAL;
        return -1;
    }
    return zsock_connect (sock, "%s", transport);
}
