/*  evloop.c - epoll + timer heap. See evloop.h.

    Fds live in a table indexed by fd number. Each slot has a generation
    that grows when the fd is deleted; epoll carries (generation << 32 | fd)
    so an event queued for an fd that was deleted (and maybe reused) in the
    same batch is recognised as stale and skipped.

        slots[fd] = { fn, arg, events, generation, watched }

    Timers: a binary min-heap of keel_evtimer_t pointers ordered by
    deadline; each timer knows its slot (index_ - 1). One timerfd, in the
    epoll set, is armed for the earliest deadline. It is re-armed only when
    a new earliest deadline comes before the armed one, or after it fired:
    stopping the earliest timer leaves it armed (a spurious wake-up then
    re-arms it), which saves a system call per request.
*/
#include "evloop.h"
#include "keel_common.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define S_MAX_EVENTS 256

typedef struct {
    keel_evloop_fn *fn;  //  handler
    void *arg;           //  its argument
    uint32_t events;     //  events watched
    uint32_t generation; //  bumped on delete
    bool watched;        //  in the epoll set
} s_slot_t;

struct _keel_evloop_t {
    int epoll_fd;          //  the epoll instance
    int timer_fd;          //  timerfd for the heap's earliest deadline
    s_slot_t *slots;       //  indexed by fd
    size_t slot_count;     //  size of slots
    size_t fd_count;       //  fds watched
    keel_evtimer_t **heap; //  min-heap by deadline
    size_t heap_size;      //  timers started
    size_t heap_capacity;  //  allocated slots
    int64_t armed_ms;      //  deadline the timerfd is armed for; 0 none
};

keel_evloop_t *
keel_evloop_new (void)
{
    keel_evloop_t *self = (keel_evloop_t *)calloc (1, sizeof (*self));
    if (!self)
        return NULL;
    self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    self->timer_fd =
        timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (self->epoll_fd == -1 || self->timer_fd == -1) {
        keel_evloop_destroy (&self);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, self->timer_fd, &ev) == -1) {
        keel_evloop_destroy (&self);
        return NULL;
    }
    return self;
}

void
keel_evloop_destroy (keel_evloop_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keel_evloop_t *self = *self_p;
    if (self->epoll_fd != -1)
        close (self->epoll_fd);
    if (self->timer_fd != -1)
        close (self->timer_fd);
    for (size_t i = 0; i < self->heap_size; i++)
        self->heap[i]->index_ = 0;
    free (self->heap);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

int
keel_evloop_fd (keel_evloop_t *self)
{
    return self->epoll_fd;
}

static s_slot_t *
s_slot (keel_evloop_t *self, int fd, bool grow)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= self->slot_count) {
        if (!grow)
            return NULL;
        size_t count = self->slot_count ? self->slot_count : 64;
        while (count <= (size_t)fd)
            count *= 2;
        s_slot_t *slots =
            (s_slot_t *)realloc (self->slots, count * sizeof (s_slot_t));
        if (!slots)
            return NULL;
        memset (slots + self->slot_count, 0,
                (count - self->slot_count) * sizeof (s_slot_t));
        self->slots = slots;
        self->slot_count = count;
    }
    return &self->slots[fd];
}

static uint64_t
s_token (const s_slot_t *slot, int fd)
{
    return ((uint64_t)slot->generation << 32) | (uint32_t)fd;
}

int
keel_evloop_add (keel_evloop_t *self, int fd, uint32_t events,
                 keel_evloop_fn *fn, void *arg)
{
    assert (fn);
    s_slot_t *slot = s_slot (self, fd, true);
    if (!slot) {
        errno = fd < 0 ? EBADF : ENOMEM;
        return -1;
    }
    if (slot->watched) {
        errno = EEXIST;
        return -1;
    }
    struct epoll_event ev = {.events = events, .data.u64 = s_token (slot, fd)};
    if (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == -1)
        return -1;
    slot->fn = fn;
    slot->arg = arg;
    slot->events = events;
    slot->watched = true;
    self->fd_count++;
    return 0;
}

int
keel_evloop_mod (keel_evloop_t *self, int fd, uint32_t events)
{
    s_slot_t *slot = s_slot (self, fd, false);
    if (!slot || !slot->watched) {
        errno = ENOENT;
        return -1;
    }
    if (slot->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.u64 = s_token (slot, fd)};
    if (epoll_ctl (self->epoll_fd, EPOLL_CTL_MOD, fd, &ev) == -1)
        return -1;
    slot->events = events;
    return 0;
}

int
keel_evloop_del (keel_evloop_t *self, int fd)
{
    s_slot_t *slot = s_slot (self, fd, false);
    if (!slot || !slot->watched) {
        errno = ENOENT;
        return -1;
    }
    //  The fd may already be closed (then the kernel dropped it): ignore
    //  the error, forget the slot all the same.
    epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    slot->watched = false;
    slot->generation++;
    slot->fn = NULL;
    slot->arg = NULL;
    self->fd_count--;
    return 0;
}

// ---------------------------------------------------------------------------
//  Timer heap

static void
s_heap_set (keel_evloop_t *self, size_t index, keel_evtimer_t *timer)
{
    self->heap[index] = timer;
    timer->index_ = index + 1;
}

static void
s_heap_up (keel_evloop_t *self, size_t index)
{
    keel_evtimer_t *timer = self->heap[index];
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (self->heap[parent]->deadline_ms_ <= timer->deadline_ms_)
            break;
        s_heap_set (self, index, self->heap[parent]);
        index = parent;
    }
    s_heap_set (self, index, timer);
}

static void
s_heap_down (keel_evloop_t *self, size_t index)
{
    keel_evtimer_t *timer = self->heap[index];
    for (;;) {
        size_t child = 2 * index + 1;
        if (child >= self->heap_size)
            break;
        if (child + 1 < self->heap_size && self->heap[child + 1]->deadline_ms_ <
                                               self->heap[child]->deadline_ms_)
            child++;
        if (self->heap[child]->deadline_ms_ >= timer->deadline_ms_)
            break;
        s_heap_set (self, index, self->heap[child]);
        index = child;
    }
    s_heap_set (self, index, timer);
}

static void
s_heap_remove (keel_evloop_t *self, keel_evtimer_t *timer)
{
    size_t index = timer->index_ - 1;
    timer->index_ = 0;
    self->heap_size--;
    if (index == self->heap_size)
        return;
    s_heap_set (self, index, self->heap[self->heap_size]);
    if (index > 0 && self->heap[(index - 1) / 2]->deadline_ms_ >
                         self->heap[index]->deadline_ms_)
        s_heap_up (self, index);
    else
        s_heap_down (self, index);
}

//  Arm the timerfd for the earliest deadline if it is not armed for it or
//  earlier.
static void
s_arm (keel_evloop_t *self)
{
    if (self->heap_size == 0)
        return;
    int64_t deadline = self->heap[0]->deadline_ms_;
    if (self->armed_ms && self->armed_ms <= deadline)
        return;
    if (deadline < 1)
        deadline = 1; //  0 would disarm
    struct itimerspec spec = {{0, 0}, {0, 0}};
    spec.it_value.tv_sec = deadline / 1000;
    spec.it_value.tv_nsec = (long)(deadline % 1000) * 1000000L;
    //  keel_now_ms is CLOCK_MONOTONIC in ms: an absolute monotonic time.
    if (timerfd_settime (self->timer_fd, TFD_TIMER_ABSTIME, &spec, NULL) == 0)
        self->armed_ms = deadline;
}

void
keel_evtimer_init (keel_evtimer_t *timer)
{
    memset (timer, 0, sizeof (*timer));
}

bool
keel_evtimer_active (const keel_evtimer_t *timer)
{
    return timer->index_ != 0;
}

void
keel_evloop_timer_start (keel_evloop_t *self, keel_evtimer_t *timer,
                         int64_t deadline_ms, keel_evtimer_fn *fn, void *arg)
{
    assert (fn);
    timer->fn_ = fn;
    timer->arg_ = arg;
    if (timer->index_) {
        int64_t old = timer->deadline_ms_;
        timer->deadline_ms_ = deadline_ms;
        if (deadline_ms < old)
            s_heap_up (self, timer->index_ - 1);
        else if (deadline_ms > old)
            s_heap_down (self, timer->index_ - 1);
    } else {
        if (self->heap_size == self->heap_capacity) {
            size_t capacity =
                self->heap_capacity ? 2 * self->heap_capacity : 64;
            keel_evtimer_t **heap = (keel_evtimer_t **)realloc (
                self->heap, capacity * sizeof (keel_evtimer_t *));
            assert (heap); //  out of memory for a few pointers: give up
            self->heap = heap;
            self->heap_capacity = capacity;
        }
        timer->deadline_ms_ = deadline_ms;
        self->heap[self->heap_size++] = timer;
        s_heap_up (self, self->heap_size - 1);
    }
    s_arm (self);
}

void
keel_evloop_timer_stop (keel_evloop_t *self, keel_evtimer_t *timer)
{
    if (timer->index_)
        s_heap_remove (self, timer);
}

size_t
keel_evloop_fds (keel_evloop_t *self)
{
    return self->fd_count;
}

size_t
keel_evloop_timers (keel_evloop_t *self)
{
    return self->heap_size;
}

static int
s_run_timers (keel_evloop_t *self)
{
    uint64_t expirations;
    if (read (self->timer_fd, &expirations, sizeof (expirations)) < 0 &&
        errno != EAGAIN)
        return 0;
    self->armed_ms = 0;
    int64_t now = keel_now_ms ();
    int called = 0;
    //  Only timers due now: one started by a callback for "now" waits for
    //  the next run, so a timer that restarts itself cannot spin here.
    size_t budget = self->heap_size;
    while (self->heap_size && budget-- && self->heap[0]->deadline_ms_ <= now) {
        keel_evtimer_t *timer = self->heap[0];
        s_heap_remove (self, timer);
        timer->fn_ (self, timer, timer->arg_);
        called++;
    }
    s_arm (self);
    return called;
}

int
keel_evloop_run (keel_evloop_t *self, int timeout_ms)
{
    struct epoll_event events[S_MAX_EVENTS];
    int count = epoll_wait (self->epoll_fd, events, S_MAX_EVENTS, timeout_ms);
    if (count == -1)
        return errno == EINTR ? 0 : -1;
    int called = 0;
    bool timers = false;
    for (int i = 0; i < count; i++) {
        uint64_t token = events[i].data.u64;
        if (token == UINT64_MAX) {
            timers = true;
            continue;
        }
        int fd = (int)(uint32_t)token;
        s_slot_t *slot = s_slot (self, fd, false);
        if (!slot || !slot->watched || s_token (slot, fd) != token)
            continue; //  deleted earlier in this batch
        slot->fn (self, fd, events[i].events, slot->arg);
        called++;
    }
    if (timers)
        called += s_run_timers (self);
    return called;
}
