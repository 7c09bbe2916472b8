/*  soak_driver.c - constant-rate load for bench/soak: HTTP requests to the
    gateway, or sagas through the bus.

    usage: soak_driver http --port PORT --path PATH [--path PATH]...
                            [--header "Name: value"] [--host ADDR]
                            [--connections N] (--rate R | --max)
                            [--duration S] [--report MS]
           soak_driver saga --bus ENDPOINT [--definition NAME]
                            [--window N] (--rate R | --max)
                            [--duration S] [--report MS]

    http: N keep-alive connections (default 32), one request in flight on
    each; GETs of the paths in turn. Open loop: request k is due at
    start + k/R, whatever the answers do; a due request waits for a free
    connection (its wait is counted in "backlog"), so a server that slows
    down shows as a rate below R and a growing backlog, not as a quietly
    lower load. Only 2xx answers count as ok; any other status, a reset,
    or no answer within 10 s is an error.

    saga: one keel_client to the node's front door, saga.start requests
    (wait = true: the reply is the saga's end) due at start + k/R, at most
    WINDOW in flight (default 2000). Only a saga that ends COMPLETED is ok:
    the input never asks for a failure, so COMPENSATED, STUCK, an error
    reply or a timeout is an error.

    --max: keep every connection (http) or WINDOW sagas (saga) busy, for
    calibration. Every --report ms (default 1000) and at the end, one line
    on stdout of cumulative counters:

        t=SECONDS sent=N ok=N err=N inflight=N backlog=N p50_ms=X p99_ms=Y
        [errors by kind: err_KIND=N ...]

    (p50/p99 over the interval since the previous line), then "done" last.
    Exit 0 when every request ended ok, 1 otherwise, 2 on usage errors.
*/
#include "keel_client.h"
#include "saga.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PATHS     16
#define MAX_HEADERS   8
#define HTTP_TIMEOUT  10000000 //  us without an answer: error
#define SAGA_WAIT_MS  10000    //  saga.start waits this long for the end
#define SAGA_TIMEOUT  15000    //  ms for the request as a whole
#define LAT_BUCKETS   256      //  latency histogram: 8 buckets per octave
#define MAX_ERR_KINDS 16

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal (int sig)
{
    (void)sig;
    s_stop = 1;
}

static int64_t
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

// ---------------------------------------------------------------------------
//  Counters shared by both modes

typedef struct {
    const char *name;
    uint64_t count;
} s_err_kind_t;

typedef struct {
    uint64_t sent, ok, err;
    uint64_t inflight, backlog;
    uint64_t lat[LAT_BUCKETS]; //  since the last report
    s_err_kind_t kinds[MAX_ERR_KINDS];
    int64_t start_us;
    int64_t next_report_us;
    int64_t report_us;
} s_stats_t;

static void
s_latency (s_stats_t *st, int64_t us)
{
    int bucket = us <= 1 ? 0 : (int)(log2 ((double)us) * 8.0);
    st->lat[bucket < LAT_BUCKETS ? bucket : LAT_BUCKETS - 1]++;
}

//  Upper edge of the bucket holding quantile q, in ms (0 when empty).
static double
s_quantile (const s_stats_t *st, double q)
{
    uint64_t total = 0, seen = 0;
    for (int i = 0; i < LAT_BUCKETS; i++)
        total += st->lat[i];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil (q * (double)total);
    for (int i = 0; i < LAT_BUCKETS; i++) {
        seen += st->lat[i];
        if (seen >= rank)
            return pow (2.0, (double)(i + 1) / 8.0) / 1000.0;
    }
    return 0;
}

//  Count an error of `kind` (a string constant, or one of the few error
//  names; kinds beyond MAX_ERR_KINDS go to the last).
static void
s_error (s_stats_t *st, const char *kind)
{
    st->err++;
    int i;
    for (i = 0; i < MAX_ERR_KINDS - 1 && st->kinds[i].name; i++)
        if (streq (st->kinds[i].name, kind))
            break;
    if (!st->kinds[i].name)
        st->kinds[i].name = i < MAX_ERR_KINDS - 1 ? kind : "other";
    st->kinds[i].count++;
}

static void
s_report (s_stats_t *st, int64_t now, bool last)
{
    printf ("t=%.3f sent=%" PRIu64 " ok=%" PRIu64 " err=%" PRIu64
            " inflight=%" PRIu64 " backlog=%" PRIu64 " p50_ms=%.3f p99_ms=%.3f",
            (double)(now - st->start_us) / 1e6, st->sent, st->ok, st->err,
            st->inflight, st->backlog, s_quantile (st, 0.5),
            s_quantile (st, 0.99));
    for (int i = 0; i < MAX_ERR_KINDS && st->kinds[i].name; i++)
        printf (" err_%s=%" PRIu64, st->kinds[i].name, st->kinds[i].count);
    printf ("\n%s", last ? "done\n" : "");
    fflush (stdout);
    memset (st->lat, 0, sizeof st->lat);
    st->next_report_us += st->report_us;
}

//  Requests due by `now` at `rate` per second since start, not yet issued
//  (sent or waiting). With rate <= 0 (--max): none by schedule.
static uint64_t
s_due (const s_stats_t *st, double rate, int64_t now, uint64_t issued)
{
    if (rate <= 0)
        return 0;
    double due = (double)(now - st->start_us) * rate / 1e6;
    return due > (double)issued ? (uint64_t)due - issued : 0;
}

// ---------------------------------------------------------------------------
//  HTTP mode

typedef struct {
    int fd;
    bool busy;
    bool connecting;
    int64_t sent_us;
    char buf[65536];
    size_t len;
    size_t want; //  bytes of the whole response once known, else 0
    int status;
} s_conn_t;

typedef struct {
    struct sockaddr_in addr;
    char *requests[MAX_PATHS];
    size_t lengths[MAX_PATHS];
    int n_requests;
    int next;
    int epfd;
    s_conn_t *conns;
    int n_conns;
    s_stats_t st;
} s_http_t;

static int
s_connect (s_http_t *h, s_conn_t *c)
{
    c->fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect (c->fd, (struct sockaddr *)&h->addr, sizeof h->addr) == -1 &&
        errno != EINPROGRESS) {
        close (c->fd);
        c->fd = -1;
        return -1;
    }
    c->connecting = true;
    c->busy = false;
    c->len = c->want = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl (h->epfd, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void
s_reconnect (s_http_t *h, s_conn_t *c, const char *why)
{
    if (c->busy) {
        h->st.inflight--;
        s_error (&h->st, why);
    }
    if (c->fd >= 0) {
        epoll_ctl (h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close (c->fd);
    }
    c->fd = -1;
    c->busy = false;
    if (s_connect (h, c) == -1)
        fprintf (stderr, "soak_driver: connect: %s\n", strerror (errno));
}

static bool
s_send (s_http_t *h, s_conn_t *c)
{
    const char *req = h->requests[h->next];
    size_t len = h->lengths[h->next];
    h->next = (h->next + 1) % h->n_requests;
    c->busy = true;
    c->len = c->want = 0;
    c->sent_us = s_now_us ();
    h->st.sent++;
    h->st.inflight++;
    //  Small requests on an idle keep-alive socket: one write suffices.
    ssize_t n = send (c->fd, req, len, MSG_NOSIGNAL);
    if (n != (ssize_t)len) {
        s_reconnect (h, c, n < 0 ? "send" : "short_send");
        return false;
    }
    return true;
}

//  Parse what c->buf holds. Returns 1 when a whole response is in, 0 when
//  more is needed, -1 on something this driver does not read.
static int
s_parse (s_conn_t *c)
{
    if (!c->want) {
        char *end = memmem (c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            return c->len == sizeof c->buf ? -1 : 0;
        size_t head = (size_t)(end - c->buf) + 4;
        if (c->len < 12 || memcmp (c->buf, "HTTP/1.1 ", 9) != 0)
            return -1;
        c->status = atoi (c->buf + 9);
        long length = -1;
        for (char *line = strstr (c->buf, "\r\n"); line && line < end;
             line = strstr (line + 2, "\r\n")) {
            if (strncasecmp (line + 2, "content-length:", 15) == 0)
                length = atol (line + 17);
            else if (strncasecmp (line + 2, "transfer-encoding:", 18) == 0)
                return -1; //  chunked: not spoken here
        }
        if (length < 0 || head + (size_t)length > sizeof c->buf)
            return -1;
        c->want = head + (size_t)length;
    }
    return c->len >= c->want ? 1 : 0;
}

static void
s_on_readable (s_http_t *h, s_conn_t *c)
{
    while (true) {
        ssize_t n = recv (c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n == 0) {
            s_reconnect (h, c, "closed");
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                s_reconnect (h, c, "recv");
            return;
        }
        if (!c->busy) { //  bytes nobody asked for
            s_reconnect (h, c, "unexpected");
            return;
        }
        c->len += (size_t)n;
        int rc = s_parse (c);
        if (rc == -1) {
            s_reconnect (h, c, "protocol");
            return;
        }
        if (rc == 1) {
            if (c->len != c->want) {
                s_reconnect (h, c, "protocol");
                return;
            }
            c->busy = false;
            h->st.inflight--;
            s_latency (&h->st, s_now_us () - c->sent_us);
            if (c->status >= 200 && c->status < 300)
                h->st.ok++;
            else {
                //  kinds must outlive us: the few statuses worth naming
                static const char *names[] = {"http_4xx", "http_5xx",
                                              "http_other"};
                s_error (&h->st, names[c->status >= 500   ? 1
                                       : c->status >= 400 ? 0
                                                          : 2]);
            }
            return;
        }
    }
}

static int
s_http_main (int argc, char **argv)
{
    s_http_t h = {0};
    const char *host = "127.0.0.1", *paths[MAX_PATHS], *headers[MAX_HEADERS];
    int n_paths = 0, n_headers = 0, port = 0;
    double rate = 0, duration = 10;
    bool max = false;
    h.n_conns = 32;
    h.st.report_us = 1000000;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (streq (a, "--max")) {
            max = true;
            continue;
        }
        if (!v)
            goto usage;
        i++;
        if (streq (a, "--port"))
            port = atoi (v);
        else if (streq (a, "--host"))
            host = v;
        else if (streq (a, "--path") && n_paths < MAX_PATHS)
            paths[n_paths++] = v;
        else if (streq (a, "--header") && n_headers < MAX_HEADERS)
            headers[n_headers++] = v;
        else if (streq (a, "--connections"))
            h.n_conns = atoi (v);
        else if (streq (a, "--rate"))
            rate = atof (v);
        else if (streq (a, "--duration"))
            duration = atof (v);
        else if (streq (a, "--report"))
            h.st.report_us = atoll (v) * 1000;
        else
            goto usage;
    }
    if (port <= 0 || port > 65535 || n_paths == 0 || h.n_conns <= 0 ||
        h.n_conns > 4096 || duration <= 0 || h.st.report_us <= 0 ||
        (max == (rate > 0)))
        goto usage;
    h.addr.sin_family = AF_INET;
    h.addr.sin_port = htons ((uint16_t)port);
    if (inet_pton (AF_INET, host, &h.addr.sin_addr) != 1)
        goto usage;
    for (int i = 0; i < n_paths; i++) {
        char extra[1024] = "";
        size_t used = 0;
        for (int j = 0; j < n_headers; j++)
            used += (size_t)snprintf (extra + used, sizeof extra - used,
                                      "%s\r\n", headers[j]);
        h.requests[i] = zsys_sprintf ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
                                      "User-Agent: keel-soak\r\n%s\r\n",
                                      paths[i], host, port, extra);
        h.lengths[i] = strlen (h.requests[i]);
    }
    h.n_requests = n_paths;
    h.epfd = epoll_create1 (EPOLL_CLOEXEC);
    h.conns = (s_conn_t *)calloc ((size_t)h.n_conns, sizeof (s_conn_t));
    for (int i = 0; i < h.n_conns; i++)
        if (s_connect (&h, &h.conns[i]) == -1) {
            fprintf (stderr, "soak_driver: connect: %s\n", strerror (errno));
            return 1;
        }
    h.st.start_us = s_now_us ();
    h.st.next_report_us = h.st.start_us + h.st.report_us;
    int64_t end_us = h.st.start_us + (int64_t)(duration * 1e6);
    struct epoll_event events[256];
    while (!s_stop) {
        int64_t now = s_now_us ();
        if (now >= end_us)
            break;
        //  Due requests join the backlog; the backlog goes out on every
        //  idle connection (--max: every idle connection, always).
        h.st.backlog += s_due (&h.st, rate, now, h.st.sent + h.st.backlog);
        for (int i = 0; i < h.n_conns; i++) {
            s_conn_t *c = &h.conns[i];
            if (c->fd < 0)
                s_reconnect (&h, c, "connect");
            else if (c->busy && now - c->sent_us > HTTP_TIMEOUT)
                s_reconnect (&h, c, "timeout");
            else if (!c->busy && !c->connecting && (max || h.st.backlog > 0)) {
                if (!max)
                    h.st.backlog--;
                s_send (&h, c);
            }
        }
        if (now >= h.st.next_report_us)
            s_report (&h.st, now, false);
        int n = epoll_wait (h.epfd, events, 256, 1);
        for (int i = 0; i < n; i++) {
            s_conn_t *c = (s_conn_t *)events[i].data.ptr;
            if (c->connecting) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    s_reconnect (&h, c, "connect");
                    continue;
                }
                c->connecting = false;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl (h.epfd, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                s_on_readable (&h, c);
            //  Send the next one at once on this connection.
            if (!c->busy && c->fd >= 0 && !c->connecting &&
                (max || h.st.backlog > 0)) {
                if (!max)
                    h.st.backlog--;
                s_send (&h, c);
            }
        }
    }
    //  Answers still on their way get up to 2 s (none when interrupted);
    //  then they are errors.
    int64_t grace = s_now_us () + 2000000;
    while (h.st.inflight > 0 && s_now_us () < grace && !s_stop) {
        int n = epoll_wait (h.epfd, events, 256, 10);
        for (int i = 0; i < n; i++) {
            s_conn_t *c = (s_conn_t *)events[i].data.ptr;
            if (!c->connecting)
                s_on_readable (&h, c);
        }
    }
    for (int i = 0; i < h.n_conns; i++) {
        if (h.conns[i].busy)
            s_error (&h.st, "unanswered");
        if (h.conns[i].fd >= 0)
            close (h.conns[i].fd);
    }
    h.st.inflight = 0;
    s_report (&h.st, s_now_us (), true);
    for (int i = 0; i < h.n_requests; i++)
        zstr_free (&h.requests[i]);
    free (h.conns);
    close (h.epfd);
    return h.st.err ? 1 : 0;
usage:
    fprintf (stderr, "usage: soak_driver http --port PORT --path PATH... "
                     "(--rate R | --max) [--header H]... [--host ADDR] "
                     "[--connections N] [--duration S] [--report MS]\n");
    return 2;
}

// ---------------------------------------------------------------------------
//  Saga mode

typedef struct {
    s_stats_t st;
} s_saga_t;

typedef struct {
    s_saga_t *run;
    int64_t sent_us;
} s_pending_t;

static void
s_on_saga (keel_client_t *client, const keel_reply_t *reply, void *arg)
{
    (void)client;
    s_pending_t *p = (s_pending_t *)arg;
    s_stats_t *st = &p->run->st;
    st->inflight--;
    s_latency (st, s_now_us () - p->sent_us);
    if (reply->code != KEEL_OK)
        s_error (st, keel_errname (reply->code));
    else {
        Keel__SagaStatus *status =
            keel__saga_status__unpack (NULL, reply->size, reply->data);
        if (!status)
            s_error (st, "undecodable");
        else if (status->state == KEEL__SAGA_STATE__SAGA_COMPLETED)
            st->ok++;
        else {
            s_error (st, status->state == KEEL__SAGA_STATE__SAGA_COMPENSATED
                             ? "compensated"
                         : status->state == KEEL__SAGA_STATE__SAGA_STUCK
                             ? "stuck"
                             : "not_finished");
            if (st->err <= 5)
                fprintf (stderr, "soak_driver: saga %s ended %d: %s\n",
                         status->id, (int)status->state, status->last_error);
        }
        if (status)
            keel__saga_status__free_unpacked (status, NULL);
    }
    free (p);
}

static int
s_saga_main (int argc, char **argv)
{
    s_saga_t run = {0};
    const char *bus = NULL, *definition = "order";
    double rate = 0, duration = 10;
    bool max = false;
    uint64_t window = 2000;
    run.st.report_us = 1000000;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (streq (a, "--max")) {
            max = true;
            continue;
        }
        if (!v)
            goto usage;
        i++;
        if (streq (a, "--bus"))
            bus = v;
        else if (streq (a, "--definition"))
            definition = v;
        else if (streq (a, "--window"))
            window = (uint64_t)atoll (v);
        else if (streq (a, "--rate"))
            rate = atof (v);
        else if (streq (a, "--duration"))
            duration = atof (v);
        else if (streq (a, "--report"))
            run.st.report_us = atoll (v) * 1000;
        else
            goto usage;
    }
    if (!bus || window == 0 || duration <= 0 || run.st.report_us <= 0 ||
        (max == (rate > 0)))
        goto usage;
    keel_client_t *client = keel_client_new ("soak", bus, "saga");
    if (!client) {
        fprintf (stderr, "soak_driver: bad endpoint %s\n", bus);
        return 2;
    }
    //  Many items, one unit each: stock is set high in the soak config, so
    //  no reservation is refused; nothing asks a participant to fail.
    Keel__StartRequest req = KEEL__START_REQUEST__INIT;
    req.definition = (char *)definition;
    req.wait = true;
    req.wait_ms = SAGA_WAIT_MS;
    keel_call_opts_t opts = {.timeout_ms = SAGA_TIMEOUT,
                             .retries = KEEL_NO_RETRY};
    char input[128];
    static const char *items[] = {"apple", "pear", "widget", "plum"};

    //  One saga through first (not counted): the front door is connected
    //  and the participants are discovered. Bounded: 10 tries.
    snprintf (input, sizeof input, "{\"item\":\"apple\",\"qty\":1}");
    req.input.data = (uint8_t *)input;
    req.input.len = strlen (input);
    bool ready = false;
    for (int i = 0; i < 10 && !ready && !s_stop; i++) {
        Keel__SagaStatus *status = NULL;
        keel_call_opts_t once = {.timeout_ms = 2000, .retries = KEEL_NO_RETRY};
        if (keel_client_call (client, "saga.start", &req.base, &once,
                              &keel__saga_status__descriptor,
                              (ProtobufCMessage **)&status, NULL) == KEEL_OK)
            ready = status->state == KEEL__SAGA_STATE__SAGA_COMPLETED;
        if (status)
            keel__saga_status__free_unpacked (status, NULL);
    }
    if (!ready) {
        fprintf (stderr, "soak_driver: no saga completes through %s\n", bus);
        keel_client_destroy (&client);
        return 1;
    }
    run.st.start_us = s_now_us ();
    run.st.next_report_us = run.st.start_us + run.st.report_us;
    int64_t end_us = run.st.start_us + (int64_t)(duration * 1e6);
    while (!s_stop) {
        int64_t now = s_now_us ();
        if (now >= end_us)
            break;
        run.st.backlog +=
            s_due (&run.st, rate, now, run.st.sent + run.st.backlog);
        while ((max || run.st.backlog > 0) && run.st.inflight < window) {
            s_pending_t *p = (s_pending_t *)calloc (1, sizeof *p);
            p->run = &run;
            p->sent_us = s_now_us ();
            snprintf (input, sizeof input,
                      "{\"item\":\"%s\",\"qty\":1,\"amount\":%d}",
                      items[run.st.sent % 4], (int)(run.st.sent % 97) + 1);
            req.input.data = (uint8_t *)input;
            req.input.len = strlen (input);
            run.st.sent++;
            if (!max)
                run.st.backlog--;
            if (!keel_client_request (client, "saga.start", &req.base, &opts,
                                      s_on_saga, p)) {
                s_error (&run.st, "send");
                free (p);
                break; //  try again after the poll below
            }
            run.st.inflight++;
        }
        if (now >= run.st.next_report_us)
            s_report (&run.st, now, false);
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (client)), 0,
                               ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 1) == -1 && errno != EINTR)
            break;
        if (keel_client_process (client) < 0)
            break;
    }
    //  Sagas in flight may finish (their own deadline bounds this; not
    //  when interrupted).
    int64_t grace = s_now_us () + (int64_t)(SAGA_TIMEOUT + 1000) * 1000;
    while (run.st.inflight > 0 && s_now_us () < grace && !s_stop) {
        zmq_pollitem_t item = {zsock_resolve (keel_client_sock (client)), 0,
                               ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, 10);
        if (keel_client_process (client) < 0)
            break;
    }
    for (uint64_t i = 0; i < run.st.inflight; i++)
        s_error (&run.st, "unanswered");
    run.st.inflight = 0;
    s_report (&run.st, s_now_us (), true);
    keel_client_destroy (&client); //  drops (frees nothing of) the rest
    return run.st.err ? 1 : 0;
usage:
    fprintf (stderr, "usage: soak_driver saga --bus ENDPOINT (--rate R | "
                     "--max) [--definition NAME] [--window N] "
                     "[--duration S] [--report MS]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    zsys_init ();
    zsys_handler_set (NULL); //  our own handler: stop, report, exit
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
    if (argc >= 2 && streq (argv[1], "http"))
        return s_http_main (argc, argv);
    if (argc >= 2 && streq (argv[1], "saga"))
        return s_saga_main (argc, argv);
    fprintf (stderr, "usage: soak_driver http|saga ... (see the source)\n");
    return 2;
}
