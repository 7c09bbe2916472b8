/*  keel_common.h - error codes, limits and small helpers shared by all of keel.

    One error convention across the tree: functions return 0 on success and -1
    on failure, or a keel_err_t where the caller must tell failures apart.
    keel_err_t numbers are the wire's ErrorCode (schemas/envelope.proto).
*/
#ifndef KEEL_COMMON_H_INCLUDED
#define KEEL_COMMON_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    KEEL_OK = 0,
    KEEL_ERR_BAD_REQUEST = 1,
    KEEL_ERR_UNKNOWN_TYPE = 2,
    KEEL_ERR_TOO_LARGE = 3,
    KEEL_ERR_NOT_FOUND = 4,
    KEEL_ERR_TIMEOUT = 5,
    KEEL_ERR_UNAVAILABLE = 6,
    KEEL_ERR_INTERNAL = 7,
    KEEL_ERR_CONFLICT = 8,
    KEEL_ERR_UNKNOWN_SERVICE = 9,
    KEEL_ERR_INVALID_ARGUMENT = 10,
} keel_err_t;

//  Highest error code this version knows; higher codes from a newer peer
//  are reported as they are, with keel_strerror saying "unknown error".
#define KEEL_ERR_MAX_KNOWN KEEL_ERR_INVALID_ARGUMENT

//  Default largest message a keel socket accepts, in bytes (1 MiB).
#define KEEL_DEFAULT_MAX_MSG_SIZE (1024 * 1024)

//  Return a static, human-readable name for an error code ("timeout").
//  Never NULL.
const char *keel_strerror (int code);

//  Return the stable symbolic name of an error code ("TIMEOUT"), as in the
//  schema. Never NULL.
const char *keel_errname (int code);

//  Monotonic clock in milliseconds. The only clock the actor shells read;
//  pure cores take time as an argument.
int64_t keel_now_ms (void);

//  A log limiter: at most one line per `interval_ms` for one kind of
//  event, with the number suppressed since the last line. Embed one per
//  kind of noisy event; zero-initialise it.
typedef struct {
    bool logged;         //  a line was written at least once
    int64_t last_ms;     //  when the last line was written
    uint64_t suppressed; //  events not logged since then
} keel_ratelimit_t;

//  Log a warning through zsys_warning unless one was logged through the same
//  limiter less than 1 s before `now_ms`. Returns true when it logged.
bool keel_log_limited (keel_ratelimit_t *rl, int64_t now_ms, const char *format,
                       ...) CHECK_PRINTF (3);

#ifdef __cplusplus
}
#endif

#endif
