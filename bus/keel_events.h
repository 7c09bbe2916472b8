/*  keel_events.h - publish/subscribe on the bus, with sequence numbers so a
    subscriber can tell when it missed something.

    Frames: [type][envelope(kind EVENT, sequence, sender, payload)]. The type
    frame is the topic, so a subscriber filters by type prefix
    ("registry." = every registry event).

    Catching up (the Clone pattern). PUB/SUB drops whatever was published
    before a subscription reached the publisher, and drops at the high-water
    mark. So every publisher numbers its events 1, 2, 3... and a subscriber
    that needs the full state does:

      1. subscribe (events start queueing locally);
      2. ask the actor for a snapshot over request/reply; the snapshot says
         the sequence number it is current to, S;
      3. call keel_subscriber_expect (sub, sender, S): events with sequence
         <= S are already in the snapshot and are skipped;
      4. apply events in order. An event further ahead than last + 1 is
         reported with gap = true: events were lost; go to 2.

    A publisher that restarts begins again at 1; subscribers see the drop in
    sequence as a gap and resynchronise.
*/
#ifndef KEEL_EVENTS_H_INCLUDED
#define KEEL_EVENTS_H_INCLUDED

#include "keel_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _keel_publisher_t keel_publisher_t;
typedef struct _keel_subscriber_t keel_subscriber_t;

//  Create a publisher that sends as `sender`. Caller owns it. Returns NULL if
//  out of memory.
keel_publisher_t *keel_publisher_new (const char *sender);

//  Destroy; nulls *self_p.
void keel_publisher_destroy (keel_publisher_t **self_p);

//  Bind (publishers bind, subscribers connect); tcp binds are CURVE when
//  the security context requires it (keel_security.h). Returns the tcp
//  port, 0 for other transports, -1 on error.
int keel_publisher_bind (keel_publisher_t *self, const char *endpoint);

//  Connect instead (to a node's event proxy). Returns 0 or -1.
int keel_publisher_connect (keel_publisher_t *self, const char *endpoint);

//  The last endpoint bound, resolved. Borrowed; NULL before bind.
const char *keel_publisher_endpoint (keel_publisher_t *self);

//  Publish an event of `type` with `payload` (NULL = empty). Never blocks:
//  at the high-water mark the event is dropped by ZeroMQ (subscribers see
//  the gap). Returns the event's sequence number, or 0 on error.
uint64_t keel_publisher_publish (keel_publisher_t *self, const char *type,
                                 const ProtobufCMessage *payload);

//  The sequence number of the last event published (0 = none yet); a
//  snapshot taken now is current to this number.
uint64_t keel_publisher_sequence (keel_publisher_t *self);

//  A received event. Borrowed: valid until the next receive.
typedef struct {
    const Keel__Envelope *envelope; //  type, sender, sequence, payload
    bool gap;   //  events from this sender were missed before this one
    bool reset; //  sender restarted (sequence went backwards)
} keel_event_t;

//  Create a subscriber. Caller owns it. Returns NULL if out of memory.
keel_subscriber_t *keel_subscriber_new (void);

//  Destroy; nulls *self_p.
void keel_subscriber_destroy (keel_subscriber_t **self_p);

//  Connect to a publisher or proxy endpoint (a tcp one may carry its CURVE
//  key: ";curve=KEY"). Returns 0, or -1 (also when the security context
//  refuses the endpoint; logged).
int keel_subscriber_connect (keel_subscriber_t *self, const char *endpoint);

//  Receive events whose type starts with `prefix` ("" = all).
void keel_subscriber_subscribe (keel_subscriber_t *self, const char *prefix);

//  Largest frame accepted (0 = none). Default KEEL_DEFAULT_MAX_MSG_SIZE.
void keel_subscriber_set_max_msg_size (keel_subscriber_t *self,
                                       size_t max_size);

//  After a snapshot current to `sequence` from `sender`: skip its events up
//  to that number and expect sequence + 1 next.
void keel_subscriber_expect (keel_subscriber_t *self, const char *sender,
                             uint64_t sequence);

//  The socket to poll. Borrowed.
zsock_t *keel_subscriber_sock (keel_subscriber_t *self);

//  Receive the next event, waiting at most `timeout_ms` (0 = do not wait,
//  -1 = forever). Malformed frames and events already covered by a snapshot
//  are skipped (and counted). Returns the event, or NULL on timeout,
//  interrupt or error.
const keel_event_t *keel_subscriber_recv (keel_subscriber_t *self,
                                          int timeout_ms);

//  Counters: events delivered, malformed frames dropped, stale (already
//  covered) events skipped, gaps seen.
typedef struct {
    uint64_t delivered, malformed, stale, gaps;
} keel_subscriber_stats_t;
const keel_subscriber_stats_t *keel_subscriber_stats (keel_subscriber_t *self);

#ifdef __cplusplus
}
#endif

#endif
