/*  keel_security.h - CURVE on every tcp socket: one process-wide security
    context that every socket factory of the bus asks before it binds or
    connects.

        config (section `security`)          keel_security_set
                 |                                   |
                 v                                   v
        [ this node's keypair | allow dir | require ] --> zauth actor (ZAP)
                 |                       |
      keel_security_server        keel_security_client
      (ROUTER, PUB/XPUB bind)     (DEALER, SUB connect)

    A node's keypair is a CZMQ certificate (zcert_save: FILE public, FILE
    _secret secret; `keel keygen` writes one). Its allow-list is a directory
    of peers' public certificates, checked by CZMQ's zauth (`CURVE DIR`) on
    every handshake; zcertstore reads the directory again whenever the
    number of files, their total size or their latest mtime changes, so a
    certificate added or removed is seen by the next handshake, without a
    restart.

    A server's public key travels with its endpoint:

        tcp://10.0.0.2:7700;curve=rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
                            `---------- 40-character Z85 key -------'

    (';' is not in the Z85 alphabet.) Only tcp endpoints carry a key;
    keel_endpoint_transport strips it before zmq_bind / zmq_connect.

    What each side does, for a tcp endpoint:

                        no context     require = false      require = true
        bind            plain          plain                CURVE server, ZAP
        connect, key    refused (-1)   CURVE client         CURVE client
        connect, none   plain          plain                refused (-1)

    inproc is never encrypted (no handshake: it never leaves the process);
    ipc stays plain text too (a local socket file, guarded by its
    permissions).

    Thread: set the context (keel_security_set / _configure) before any
    socket uses it, from one thread; after that every thread may read it.
    keel_security_reset is for tests and owners that stop everything first.
*/
#ifndef KEEL_SECURITY_H_INCLUDED
#define KEEL_SECURITY_H_INCLUDED

#include "keel_config.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Length of a Z85 CURVE key, without the terminating NUL.
#define KEEL_CURVE_KEY_LEN 40

//  The ZAP domain keel's CURVE servers ask zauth about.
#define KEEL_ZAP_DOMAIN "keel"

//  Set the process-wide context: `certificate` is this process's secret
//  certificate (FILE as given to zcert_save; its FILE_secret is read),
//  `allow` the directory of public certificates allowed to connect (NULL:
//  none, only valid with require = false), `require` whether tcp sockets
//  must use CURVE (servers CURVE, connections without a server key
//  refused). Starts the zauth actor when require is set. Replaces any
//  earlier context. Returns 0, or -1 with *error_p (if not NULL) set to a
//  message the caller frees.
int keel_security_set (const char *certificate, const char *allow, bool require,
                       char **error_p);

//  Set the context from `config`'s section `security`:
//      security
//          certificate = /etc/keel/node.cert   (this node's FILE; FILE_secret)
//          allow = /etc/keel/peers             (allowed public certificates)
//          require = true                      (default true)
//  No section: nothing changes, returns 0. A bad section (unknown key,
//  missing or unreadable file, missing directory) returns -1 with
//  keel_config_error (config) naming file, line and key; *error_p (if not
//  NULL) gets a copy the caller frees. Returns 1 if the section was there
//  and the context is now set.
int keel_security_configure (keel_config_t *config, char **error_p);

//  Clear the context: stop zauth, forget the keypair. Sockets already
//  bound or connected keep the settings they were given.
void keel_security_reset (void);

//  Make zauth read the allow directory again now, whatever changed in it.
//  (It already does so by itself whenever the number of files, their total
//  size or their latest mtime changes; a file replaced by another of the
//  same size within the same second is only seen after this.) The node
//  calls it on RELOAD (SIGHUP). No-op without zauth.
void keel_security_reload (void);

//  Handshakes refused by this process's CURVE servers since it started
//  (counted while require is set; a log line each, at most one a second):
//  *auth those whose key ZAP did not allow, *handshake those that were not
//  a CURVE handshake at all (plain text, garbage). Either pointer may be
//  NULL.
void keel_security_refusals (uint64_t *auth, uint64_t *handshake);

//  True when a keypair is set (require or not).
bool keel_security_enabled (void);

//  True when tcp sockets must use CURVE.
bool keel_security_required (void);

//  Copy this process's public key (Z85) into `key` (41 bytes). Returns 0,
//  or -1 if no keypair is set.
int keel_security_public_key (char *key);

//  Prepare `sock` to bind `endpoint` (which may carry a key suffix, then
//  ignored): for tcp with require set, a CURVE server with this keypair,
//  ZAP domain KEEL_ZAP_DOMAIN, ZAP enforced; otherwise plain text. Call
//  right before each bind (libzmq takes the settings at bind time). A CURVE
//  server also gets a libzmq socket monitor that counts its refused
//  handshakes (keel_security_refusals); a socket has one monitor, so one
//  the owner starts after the bind replaces it (that socket's refusals
//  are then not counted).
//  Returns 0, or -1 (logged) if the endpoint asks for what cannot be done.
int keel_security_server (zsock_t *sock, const char *endpoint);

//  Prepare `sock` to connect to `endpoint`: for tcp with a key suffix, a
//  CURVE client with this keypair and that server key; for tcp without a
//  key, plain text unless require is set. Call right before each connect.
//  Returns 0, or -1 (logged: why) when the connection must not be made: a
//  key suffix with no keypair set, or no key while CURVE is required.
int keel_security_client (zsock_t *sock, const char *endpoint);

//  Bind / connect `sock` to `endpoint` the keel way: keel_security_server
//  (or _client), then zsock_bind (zsock_connect) to the endpoint without
//  its key suffix. Same returns as zsock_bind / zsock_connect (-1 with
//  errno EINVAL when security refuses the endpoint). Every bus socket
//  binds and connects through these.
int keel_security_bind (zsock_t *sock, const char *endpoint);
int keel_security_connect (zsock_t *sock, const char *endpoint);

//  The endpoint as others should name it: with this process's key appended
//  (";curve=KEY") when CURVE is required and `endpoint` is tcp without a
//  key; otherwise a copy. Caller frees. NULL if endpoint is NULL or out of
//  memory.
char *keel_security_advertise (const char *endpoint);

//  Annotate `endpoint` with `key` (a Z85 public key) when it is tcp and has
//  no key yet; otherwise a copy. Caller frees.
char *keel_endpoint_with_key (const char *endpoint, const char *key);

//  The server key an endpoint carries: copies the 40 characters into `key`
//  (41 bytes) and returns 1; returns 0 when there is no suffix, -1 when the
//  suffix is malformed (not tcp, not ";curve=" + 40 Z85 characters).
int keel_endpoint_key (const char *endpoint, char *key);

//  Write into `out` (`size` bytes) what to hand zmq_bind / zmq_connect:
//  the endpoint without its key suffix. Returns 0, or -1 if it does not
//  fit.
int keel_endpoint_transport (const char *endpoint, char *out, size_t size);

//  True if `text` is 40 characters of the Z85 alphabet whose decoding is a
//  32-byte key.
bool keel_curve_key_valid (const char *text);

#ifdef __cplusplus
}
#endif

#endif
