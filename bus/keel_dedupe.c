/*  keel_dedupe.c - idempotency replies, bounded by count, bytes and age.

    One allocation per entry (a node), reachable three ways:

        index (zhashx)          lru ring (recency)        age ring (store order)
        key -> node             most recent first         oldest store first
      +-------------+           +------+                  +------+
      | "k1" ------------+      | head |<-+               | head |<-+
      | "k2" ---------+  |      +------+  |               +------+  |
      +-------------+ |  |         |      |                  |      |
                      v  v         v      |                  v      |
                   +--------+   +--------+   +--------+             |
        node:      | entry  |   |  ...   |   |  ...   | ... back to head
                   | hkey   |   +--------+   +--------+
                   | lru  <-+-> prev/next in the lru ring
                   | age  <-+-> prev/next in the age ring
                   | bytes  |
                   | buf: key \0 text \0 payload
                   +--------+

    - The index finds a node by key in O(1). Its keys are borrowed: each is a
      pointer to the node's hkey, which points into the node's buf, so a key is
      stored once and freed with its node.
    - The lru ring is in recency order; a hit moves the node to the front, and
      eviction takes from the back.
    - The age ring is in store order, so with one ttl the oldest store expires
      first: purging walks from the front and stops at the first live node,
      O(1) amortised. (If now_ms ever runs backwards the ring is only roughly
      sorted; a late expiry is still caught by lookup.)
    - Both rings are circular with a sentinel in the dedupe, so linking and
      unlinking never test for NULL.

    Keys come from clients, so the index hashes with SipHash-2-4 (libsodium)
   under a per-dedupe random key. zhashx's default hash is unkeyed and easy to
    collide, and zhashx grows its table on every lookup that walks a long
    chain: colliding keys could make it grow without bound.
*/
#include "keel_dedupe.h"
#include "keel_hash.h"

#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
//  Structures

typedef struct _link_t {
    struct _link_t *prev; //  toward the front of the ring
    struct _link_t *next; //  toward the back of the ring
} link_t;

//  A key as the hash tables see it (see keel_hash.h).
typedef keel_hash_ref_t hkey_t;

typedef struct {
    keel_dedupe_entry_t entry; //  what lookup hands out; points into buf
    hkey_t hkey;               //  the index's key for this node
    link_t lru;                //  place in the lru ring
    link_t age;                //  place in the age ring
    size_t bytes;              //  strlen (key) + strlen (text) + size
    char buf[];                //  key \0 text \0 payload
} node_t;

struct _keel_dedupe_t {
    zhashx_t *index;           //  hkey_t * -> node_t *; keys borrowed
    link_t lru;                //  sentinel: next = most recently used
    link_t age;                //  sentinel: next = oldest store
    size_t capacity;           //  most entries held
    size_t max_bytes;          //  most bytes held
    int64_t ttl_ms;            //  entry lifetime, 0 = no expiry
    size_t bytes;              //  bytes held now
    keel_hash_key_t hash_key;  //  secret key of the hash tables
    keel_dedupe_stats_t stats; //  counters since creation
};

#define s_node_of(link, field)                                                 \
    ((node_t *)((char *)(link)-offsetof (node_t, field)))

// ---------------------------------------------------------------------------
//  Rings

static void
s_ring_init (link_t *ring)
{
    ring->prev = ring;
    ring->next = ring;
}

static void
s_ring_unlink (link_t *link)
{
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link;
    link->next = link;
}

static void
s_ring_push_front (link_t *ring, link_t *link)
{
    link->prev = ring;
    link->next = ring->next;
    ring->next->prev = link;
    ring->next = link;
}

static void
s_ring_push_back (link_t *ring, link_t *link)
{
    link->next = ring;
    link->prev = ring->prev;
    ring->prev->next = link;
    ring->prev = link;
}

// ---------------------------------------------------------------------------
//  Keyed hashing (keel_hash: libsodium SipHash, random key per table)

// ---------------------------------------------------------------------------
//  Nodes

//  Whether `node` has lived its ttl at `now_ms`: now - stored >= ttl.
static bool
s_expired (keel_dedupe_t *self, node_t *node, int64_t now_ms)
{
    if (self->ttl_ms == 0 || now_ms < node->entry.stored_ms)
        return false;
    //  The difference of two int64 fits in a uint64 once it is >= 0.
    uint64_t age = (uint64_t)now_ms - (uint64_t)node->entry.stored_ms;
    return age >= (uint64_t)self->ttl_ms;
}

//  Take `node` out of the index and both rings, and free it.
static void
s_remove (keel_dedupe_t *self, node_t *node)
{
    zhashx_delete (self->index, &node->hkey);
    s_ring_unlink (&node->lru);
    s_ring_unlink (&node->age);
    assert (self->bytes >= node->bytes);
    self->bytes -= node->bytes;
    free (node);
}

//  Remove expired entries from the front of the age ring.
static void
s_purge_expired (keel_dedupe_t *self, int64_t now_ms)
{
    while (self->age.next != &self->age) {
        node_t *oldest = s_node_of (self->age.next, age);
        if (!s_expired (self, oldest, now_ms))
            break;
        s_remove (self, oldest);
        self->stats.expirations++;
    }
}

static node_t *
s_find (keel_dedupe_t *self, const char *key)
{
    hkey_t probe = {&self->hash_key, key};
    return (node_t *)zhashx_lookup (self->index, &probe);
}

// ---------------------------------------------------------------------------
//  Public API

keel_dedupe_t *
keel_dedupe_new (size_t capacity, size_t max_bytes, int64_t ttl_ms)
{
    if (capacity < 1 || max_bytes < 1 || ttl_ms < 0)
        return NULL;
    keel_dedupe_t *self = (keel_dedupe_t *)calloc (1, sizeof (keel_dedupe_t));
    if (!self)
        return NULL;
    self->index = zhashx_new ();
    if (!self->index) {
        free (self);
        return NULL;
    }
    //  The index neither copies nor frees keys: they live in the nodes.
    keel_hash_table_setup (self->index);
    s_ring_init (&self->lru);
    s_ring_init (&self->age);
    self->capacity = capacity;
    self->max_bytes = max_bytes;
    self->ttl_ms = ttl_ms;
    keel_hash_key_init (&self->hash_key);
    return self;
}

void
keel_dedupe_destroy (keel_dedupe_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        keel_dedupe_t *self = *self_p;
        zhashx_destroy (&self->index);
        link_t *link = self->lru.next;
        while (link != &self->lru) {
            link_t *next = link->next;
            free (s_node_of (link, lru));
            link = next;
        }
        free (self);
        *self_p = NULL;
    }
}

const keel_dedupe_entry_t *
keel_dedupe_lookup (keel_dedupe_t *self, const char *key, int64_t now_ms)
{
    assert (self);
    s_purge_expired (self, now_ms);
    node_t *node = (key && *key) ? s_find (self, key) : NULL;
    if (node && s_expired (self, node, now_ms)) {
        //  The purge stops at the first live node of the age ring; one behind
        //  it can still be expired if now_ms ran backwards between stores.
        s_remove (self, node);
        self->stats.expirations++;
        node = NULL;
    }
    if (!node) {
        self->stats.misses++;
        return NULL;
    }
    s_ring_unlink (&node->lru);
    s_ring_push_front (&self->lru, &node->lru);
    self->stats.hits++;
    return &node->entry;
}

int
keel_dedupe_store (keel_dedupe_t *self, const char *key, int code,
                   const char *text, const void *data, size_t size,
                   int64_t now_ms)
{
    assert (self);
    if (!key || !*key || (size > 0 && !data))
        return -1;
    if (!text)
        text = "";

    //  Add up the entry's bytes without overflowing: each step is checked
    //  against max_bytes, and the allocation size against SIZE_MAX.
    size_t key_len = strlen (key);
    size_t text_len = strlen (text);
    size_t bytes = key_len;
    if (bytes > self->max_bytes || text_len > self->max_bytes - bytes)
        return -1;
    bytes += text_len;
    if (size > self->max_bytes - bytes)
        return -1;
    bytes += size;
    if (bytes > SIZE_MAX - sizeof (node_t) - 2)
        return -1;

    node_t *node = (node_t *)malloc (sizeof (node_t) + bytes + 2);
    if (!node)
        return -1;
    char *key_copy = node->buf;
    char *text_copy = key_copy + key_len + 1;
    uint8_t *data_copy = (uint8_t *)text_copy + text_len + 1;
    memcpy (key_copy, key, key_len + 1);
    memcpy (text_copy, text, text_len + 1);
    if (size > 0)
        memcpy (data_copy, data, size);
    node->entry.code = code;
    node->entry.text = text_copy;
    node->entry.data = size > 0 ? data_copy : NULL;
    node->entry.size = size;
    node->entry.stored_ms = now_ms;
    node->hkey.key = &self->hash_key;
    node->hkey.str = key_copy;
    node->bytes = bytes;

    //  Everything is copied before anything is freed, so the caller may pass
    //  text or data borrowed from an entry this store replaces.
    s_purge_expired (self, now_ms);
    node_t *old = s_find (self, key_copy);
    if (old)
        s_remove (self, old);
    //  Room for one more entry of `bytes`; the ring cannot run dry because
    //  bytes <= max_bytes and capacity >= 1.
    while (zhashx_size (self->index) >= self->capacity ||
           bytes > self->max_bytes - self->bytes) {
        assert (self->lru.prev != &self->lru);
        s_remove (self, s_node_of (self->lru.prev, lru));
        self->stats.evictions++;
    }
    if (zhashx_insert (self->index, &node->hkey, node) != 0) {
        free (node);
        return -1;
    }
    s_ring_push_front (&self->lru, &node->lru);
    s_ring_push_back (&self->age, &node->age);
    self->bytes += bytes;
    self->stats.stores++;
    return 0;
}

int
keel_dedupe_forget (keel_dedupe_t *self, const char *key)
{
    assert (self);
    node_t *node = (key && *key) ? s_find (self, key) : NULL;
    if (!node)
        return -1;
    s_remove (self, node);
    return 0;
}

size_t
keel_dedupe_size (keel_dedupe_t *self)
{
    assert (self);
    return zhashx_size (self->index);
}

size_t
keel_dedupe_bytes (keel_dedupe_t *self)
{
    assert (self);
    return self->bytes;
}

keel_dedupe_stats_t
keel_dedupe_stats (keel_dedupe_t *self)
{
    assert (self);
    return self->stats;
}
