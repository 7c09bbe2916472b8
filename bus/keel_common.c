/*  keel_common.c - error names, clock, rate-limited logging. */
#include "keel_common.h"
#include "envelope.pb-c.h"

#include <stdarg.h>
#include <time.h>

//  The C enum must stay equal to the wire enum.
_Static_assert((int)KEEL_ERR_BAD_REQUEST == (int)KEEL__ERROR_CODE__BAD_REQUEST,
               "enum");
_Static_assert((int)KEEL_ERR_TIMEOUT == (int)KEEL__ERROR_CODE__TIMEOUT, "enum");
_Static_assert((int)KEEL_ERR_INVALID_ARGUMENT ==
                   (int)KEEL__ERROR_CODE__INVALID_ARGUMENT,
               "enum");

static const char *s_messages[] = {
    "ok",        "bad request",     "unknown message type", "message too large",
    "not found", "timeout",         "unavailable",          "internal error",
    "conflict",  "unknown service", "invalid argument",
};

static const char *s_names[] = {
    "OK",        "BAD_REQUEST",     "UNKNOWN_TYPE",     "TOO_LARGE",
    "NOT_FOUND", "TIMEOUT",         "UNAVAILABLE",      "INTERNAL",
    "CONFLICT",  "UNKNOWN_SERVICE", "INVALID_ARGUMENT",
};

const char *
keel_strerror (int code)
{
    if (code < 0 || code > KEEL_ERR_MAX_KNOWN)
        return "unknown error";
    return s_messages[code];
}

const char *
keel_errname (int code)
{
    if (code < 0 || code > KEEL_ERR_MAX_KNOWN)
        return "UNKNOWN";
    return s_names[code];
}

int64_t
keel_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
keel_log_limited (keel_ratelimit_t *rl, int64_t now_ms, const char *format, ...)
{
    assert (rl);
    if (rl->logged && now_ms - rl->last_ms < 1000) {
        rl->suppressed++;
        return false;
    }
    char line[512];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    if (rl->suppressed)
        zsys_warning ("%s (%" PRIu64 " similar suppressed)", line,
                      rl->suppressed);
    else
        zsys_warning ("%s", line);
    rl->logged = true;
    rl->last_ms = now_ms;
    rl->suppressed = 0;
    return true;
}
