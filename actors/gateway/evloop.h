/*  evloop.h - the gateway's socket event loop: one epoll instance with
    per-fd handlers, and timers in a binary heap driven by one timerfd. It
    carries the HTTP connections (clients and upstream pools); the actor's
    zloop polls keel_evloop_fd and calls keel_evloop_run when it is
    readable, so ZeroMQ sockets and plain sockets share one thread.

        zloop (pipe, bus sockets, ...)
          |  poller on keel_evloop_fd (level-triggered epoll fd)
          v
        keel_evloop_run -> epoll_wait(0) -> handler (fd, events, arg)
                                         -> timerfd -> due timers

    Handlers are level-triggered. A handler may add, change or delete any
    fd (its own included) and start or stop any timer: an event for an fd
    deleted earlier in the same batch is not dispatched, even when the fd
    number was reused by then.

    Timers are intrusive (keel_evtimer_t lives in the caller's struct):
    starting and stopping allocate nothing. O(log n) each.

    Thread: one loop belongs to one thread.
*/
#ifndef KEEL_EVLOOP_H_INCLUDED
#define KEEL_EVLOOP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_evloop_t keel_evloop_t;

//  Called when `fd` is ready; `events` are epoll bits (EPOLLIN, EPOLLOUT,
//  EPOLLERR, EPOLLHUP, EPOLLRDHUP).
typedef void (keel_evloop_fn) (keel_evloop_t *loop, int fd, uint32_t events,
                               void *arg);

//  Called when a timer is due. The timer is already stopped: restart it
//  from the callback to repeat it.
typedef struct keel_evtimer keel_evtimer_t;
typedef void (keel_evtimer_fn) (keel_evloop_t *loop, keel_evtimer_t *timer,
                                void *arg);

//  A timer. Zero-initialise it (or keel_evtimer_init) before first use;
//  the fields are private.
struct keel_evtimer {
    int64_t deadline_ms_; //  when due (keel_now_ms clock)
    size_t index_;        //  heap slot + 1; 0 = not started
    keel_evtimer_fn *fn_;
    void *arg_;
};

//  Create a loop. Returns NULL if epoll or timerfd cannot be created (or
//  out of memory). Caller owns it and destroys it.
keel_evloop_t *keel_evloop_new (void);

//  Destroy the loop; nulls *self_p. Fds still registered are not closed
//  (they belong to the caller); timers still started are forgotten.
void keel_evloop_destroy (keel_evloop_t **self_p);

//  The epoll fd: readable when keel_evloop_run has work.
int keel_evloop_fd (keel_evloop_t *self);

//  Watch `fd` for `events` (EPOLLIN, EPOLLOUT, EPOLLRDHUP; EPOLLERR and
//  EPOLLHUP always), calling `fn (loop, fd, events, arg)`. Returns 0, or -1
//  with errno set (fd already watched: EEXIST; epoll_ctl's errors).
int keel_evloop_add (keel_evloop_t *self, int fd, uint32_t events,
                     keel_evloop_fn *fn, void *arg);

//  Change the events watched for `fd`. No system call when they are the
//  same as before. Returns 0, or -1 (fd not watched: ENOENT).
int keel_evloop_mod (keel_evloop_t *self, int fd, uint32_t events);

//  Stop watching `fd` (call it before closing the fd). Returns 0, or -1
//  if it was not watched.
int keel_evloop_del (keel_evloop_t *self, int fd);

//  Wait up to `timeout_ms` (0 = do not wait, -1 = until something happens)
//  and dispatch ready fds (at most 256 per call) and due timers. Returns
//  the number of handlers and timers called, or -1 if epoll_wait failed
//  (EINTR gives 0).
int keel_evloop_run (keel_evloop_t *self, int timeout_ms);

//  Initialise a timer (zeroes it).
void keel_evtimer_init (keel_evtimer_t *timer);

//  Start (or restart) `timer` to call `fn (loop, timer, arg)` at
//  `deadline_ms` (keel_now_ms clock; a past deadline fires on the next
//  run). O(log n).
void keel_evloop_timer_start (keel_evloop_t *self, keel_evtimer_t *timer,
                              int64_t deadline_ms, keel_evtimer_fn *fn,
                              void *arg);

//  Stop `timer` if it is started; a stopped timer is left alone. O(log n).
void keel_evloop_timer_stop (keel_evloop_t *self, keel_evtimer_t *timer);

//  Is `timer` started?
bool keel_evtimer_active (const keel_evtimer_t *timer);

//  Number of fds watched and timers started.
size_t keel_evloop_fds (keel_evloop_t *self);
size_t keel_evloop_timers (keel_evloop_t *self);

#ifdef __cplusplus
}
#endif

#endif
