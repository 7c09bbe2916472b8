/*  prober.h - the registry's active health checks: HTTP GET and TCP connect,
    many at once, on a thread of their own so the registry's loop never
    waits on the network.

        owner thread (registry)              prober thread
        keel_prober_submit --- check ---->  [PAIR] FIFO -> curl multi
                                                   (<= 1024 at once)
        zloop reader on    <--- result ---  [PAIR] one per check
        keel_prober_sock

    HTTP: GET "http://host:port/path"; a 2xx status passes, anything else
    (3xx included: redirects are not followed) or a transport error fails.
    The body is read and discarded; past 64 KiB the transfer stops and the
    status decides. TCP: connects to "host:port" and passes once the
    connection is established. Only http:// is ever spoken; proxies from the
    environment are ignored; every check opens a fresh connection.

    Every accepted check yields exactly one result, unless the prober is
    destroyed first. A check's timeout runs from when it starts, not from
    when it was submitted; checks beyond the 1024 that run at once wait in
    FIFO order.

    Each check uses one file descriptor while it runs: a process that runs
    1024 checks at once needs RLIMIT_NOFILE well above 1024.
*/
#ifndef KEEL_PROBER_H_INCLUDED
#define KEEL_PROBER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Checks that run at once; the rest wait in FIFO order.
#define KEEL_PROBER_MAX_RUNNING 1024
//  Checks accepted and not yet received by the owner (running, queued, or
//  result unread); keel_prober_submit refuses more with EAGAIN.
#define KEEL_PROBER_MAX_PENDING 8192
//  Longest id, in bytes.
#define KEEL_PROBER_MAX_ID 256
//  Longest target, in bytes.
#define KEEL_PROBER_MAX_TARGET 2048
//  Body bytes read from an HTTP check before it stops reading.
#define KEEL_PROBER_MAX_BODY (64 * 1024)

typedef struct _keel_prober_t keel_prober_t;

typedef enum { KEEL_PROBE_HTTP = 1, KEEL_PROBE_TCP = 2 } keel_probe_kind_t;

//  One check's outcome. `id` and `output` are owned by the result: free
//  them with keel_probe_result_clear. `output` is one line for people:
//  "HTTP 200", "HTTP 503", "connected", "connect: Connection refused",
//  "timeout after 500 ms", or curl's own message for other failures.
typedef struct {
    char *id;                  //  the id given to keel_prober_submit
    bool passed;               //  the check passed
    uint32_t response_time_us; //  from start to outcome (saturates)
    char *output;              //  what happened
} keel_probe_result_t;

//  Start the prober thread. Returns NULL on failure (libcurl could not be
//  initialised, or the thread did not start). Caller owns the return value
//  and must destroy it. Initialises libcurl once per process and never
//  cleans it up (the state is process-wide).
keel_prober_t *keel_prober_new (void);

//  Stop the prober thread and free everything: checks still running or
//  queued are abandoned and their results never delivered; results not yet
//  received are dropped. Returns once the thread has finished with every
//  connection. Also frees the calling thread's libcrypto state (curl's
//  initialisation leaves some in the thread that called keel_prober_new):
//  call it from that thread. Nulls *self_p; accepts NULL and a NULL
//  *self_p.
void keel_prober_destroy (keel_prober_t **self_p);

//  The socket results arrive on: poll it, or register it as a zloop reader
//  and call keel_prober_recv when it is readable. Borrowed: valid until
//  keel_prober_destroy; read it only through keel_prober_recv.
zsock_t *keel_prober_sock (keel_prober_t *self);

//  Submit a check. `id` is the caller's key, copied and echoed in the
//  result (at most KEEL_PROBER_MAX_ID bytes). `target` is
//  "http://host[:port][/path]" for KEEL_PROBE_HTTP and "host:port" for
//  KEEL_PROBE_TCP (host may be an [IPv6] literal); it is copied.
//  `timeout_ms` >= 1 bounds the whole check. Never blocks. Returns 0 when
//  the check was accepted, or -1 with errno EINVAL (bad kind, id, target or
//  timeout) or EAGAIN (KEEL_PROBER_MAX_PENDING checks already pending:
//  receive results, then submit again).
int keel_prober_submit (keel_prober_t *self, keel_probe_kind_t kind,
                        const char *id, const char *target,
                        uint32_t timeout_ms);

//  Receive one result. Never blocks. Returns 0 and fills *result (the
//  caller owns its strings: keel_probe_result_clear), or -1 if no result
//  was waiting or what arrived was not a result; *result is then zeroed.
int keel_prober_recv (keel_prober_t *self, keel_probe_result_t *result);

//  Free a result's strings and zero it. Accepts NULL and a zeroed result.
void keel_probe_result_clear (keel_probe_result_t *result);

//  Checks accepted and not yet received through keel_prober_recv: running,
//  queued, or finished with the result still unread.
size_t keel_prober_running (keel_prober_t *self);

#ifdef __cplusplus
}
#endif

#endif
