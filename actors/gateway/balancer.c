/*  balancer.c - the gateway's load balancer. See balancer.h.

    Instances are entries reachable two ways:

      by_id (zhashx)                 items (dense array, the round's order)
      id -> entry                    +-----+-----+-----+-----+-----+
           |                         |  e0 |  e1 |  e2 |  e3 |     |
           v                         +-----+-----+-----+-----+-----+
      +------------------------+        visited    ^cursor   ^size
      | pub    keel_upstream_t |        this round  next to try
      |        (handed out)    |
      | endpoint, tags  owned  |   entry->pos is its index in items, so a
      | pos    index in items  |   removal is O(1): the hole is filled by
      | current  WRR weight    |   moving one or two entries (below).
      | seen_gen, seen_ok      |
      | id[]   the key, inline |
      +------------------------+

    The round. Round robin and least-conn walk items from `cursor`; the
    entries before it had their turn this round, those from it on have
    not. A removal keeps that split, so nobody loses or gains a turn:
      - hole at or after the cursor: the last entry (not visited) fills it;
      - hole before it: the last visited entry (at cursor - 1) fills it,
        the last entry takes the last visited one's place, which is now the
        first unvisited one, and the cursor steps back by one.
    A new entry is appended: not visited, it gets its turn this round.

    Allowed. The caller's predicate is asked at most once per entry per
    pick: its answer is cached in the entry under the pick's generation
    number (`gen`), so a policy may look at an entry twice (P2C's fallback
    pass) without asking twice.

    Ids come from registrants, so the table hashes with SipHash-2-4 under a
    key derived from the seed (zhashx's own hash is unkeyed and it grows
    its table on every lookup that walks a long chain; see catalog.c).
*/
#include "balancer.h"
#include "keel_hash.h"

#include <czmq.h>

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

//  P2C: random draws for each candidate before the one exact pass.
#define S_P2C_DRAWS 4

typedef struct _entry_t entry_t;

// ---------------------------------------------------------------------------
//  Structures

//  A key as the hash tables see it (see keel_hash.h).
typedef keel_hash_ref_t hkey_t;

struct _entry_t {
    keel_upstream_t pub; //  what pick hands out; its strings point here
    hkey_t hkey;         //  by_id's key; points at id
    char *endpoint;      //  owned
    char **tags;         //  one block: n_tags + 1 pointers, then the
                         //  strings; owned; NULL when there are no tags
    size_t pos;          //  index in items
    int64_t current;     //  smooth WRR current weight
    uint64_t seen_gen;   //  pick generation seen_ok answers for
    bool seen_ok;        //  the predicate's answer in that pick
    bool marked;         //  reset: in the snapshot (false between calls)
    char id[];           //  the instance id
};

struct _keel_balancer_t {
    keel_balancer_policy_t policy;         //  how pick chooses
    zhashx_t *by_id;                       //  hkey_t * -> entry_t *; keys
                                           //  borrowed from the entries
    entry_t **items;                       //  every entry; owned array and
                                           //  entries
    size_t size;                           //  entries held
    size_t cap;                            //  room in items
    size_t cursor;                         //  round: next position to try;
                                           //  always <= size
    uint64_t rng;                          //  splitmix64 state (P2C)
    keel_hash_key_t hash_key;              //  key of by_id's hash
    uint64_t last_serial;                  //  serial of the newest entry
    uint64_t gen;                          //  pick generation (seen_gen)
    keel_balancer_user_free_fn *user_free; //  frees user slots, or NULL
    void *user_free_arg;                   //  its argument
    bool in_callback;                      //  a caller's callback is running
    uint64_t picks;                        //  picks that found an instance
    uint64_t no_instance;                  //  picks that did not
    uint64_t in_flight;                    //  sum of entries' in_flight
};

//  tags of an instance without tags.
static const char *const s_no_tags[1] = {NULL};

static const char *s_policy_names[] = {"ROUND_ROBIN", "WEIGHTED", "LEAST_CONN",
                                       "P2C"};

// ---------------------------------------------------------------------------
//  Randomness: splitmix64, any seed (0 too) is a good one.

static uint64_t
s_splitmix (uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

//  Uniform in [0, bound), bound > 0: reject the few values that would
//  favour the low end.
static size_t
s_below (keel_balancer_t *self, size_t bound)
{
    assert (bound > 0);
    uint64_t limit = (0 - (uint64_t)bound) % (uint64_t)bound;
    uint64_t r;
    do
        r = s_splitmix (&self->rng);
    while (r < limit);
    return (size_t)(r % (uint64_t)bound);
}

// ---------------------------------------------------------------------------
//  The id table

static entry_t *
s_lookup (keel_balancer_t *self, const char *id)
{
    hkey_t hkey = {&self->hash_key, id};
    return (entry_t *)zhashx_lookup (self->by_id, &hkey);
}

// ---------------------------------------------------------------------------
//  Entries

static bool
s_spec_valid (const keel_upstream_spec_t *spec)
{
    if (!spec || !spec->id || !*spec->id || !spec->endpoint || !*spec->endpoint)
        return false;
    if (spec->n_tags && !spec->tags)
        return false;
    for (size_t i = 0; i < spec->n_tags; i++)
        if (!spec->tags[i])
            return false;
    return true;
}

//  Copy tags into one block (NULL when there are none). Returns 0 or -1
//  (out of memory).
static int
s_tags_copy (const keel_upstream_spec_t *spec, char ***tags_p)
{
    *tags_p = NULL;
    if (spec->n_tags == 0)
        return 0;
    size_t bytes = (spec->n_tags + 1) * sizeof (char *);
    for (size_t i = 0; i < spec->n_tags; i++)
        bytes += strlen (spec->tags[i]) + 1;
    char **tags = (char **)malloc (bytes);
    if (!tags)
        return -1;
    char *text = (char *)(tags + spec->n_tags + 1);
    for (size_t i = 0; i < spec->n_tags; i++) {
        size_t len = strlen (spec->tags[i]) + 1;
        memcpy (text, spec->tags[i], len);
        tags[i] = text;
        text += len;
    }
    tags[spec->n_tags] = NULL;
    *tags_p = tags;
    return 0;
}

//  Take new tags (a block from s_tags_copy) in place of the old ones.
static void
s_tags_set (entry_t *entry, char **tags, size_t n_tags)
{
    free (entry->tags);
    entry->tags = tags;
    entry->pub.tags = tags ? (const char *const *)tags : s_no_tags;
    entry->pub.n_tags = n_tags;
}

static uint32_t
s_weight (uint32_t weight)
{
    return weight ? weight : 1;
}

//  Free the entry's user slot, if any, through the caller's destructor.
static void
s_user_free (keel_balancer_t *self, entry_t *entry)
{
    void *user = entry->pub.user;
    if (!user)
        return;
    entry->pub.user = NULL;
    if (self->user_free) {
        self->in_callback = true;
        self->user_free (&entry->pub, user, self->user_free_arg);
        self->in_callback = false;
    }
}

//  Free an entry no longer in items or by_id (its user slot already freed).
static void
s_entry_free (entry_t *entry)
{
    free (entry->endpoint);
    free (entry->tags);
    free (entry);
}

// ---------------------------------------------------------------------------
//  The dense array

//  Room for `need` entries in items. Returns 0 or -1 (out of memory).
static int
s_reserve (keel_balancer_t *self, size_t need)
{
    if (need <= self->cap)
        return 0;
    size_t grown = self->cap ? self->cap : 8;
    while (grown < need)
        grown *= 2;
    entry_t **items =
        (entry_t **)realloc (self->items, grown * sizeof (entry_t *));
    if (!items)
        return -1;
    self->items = items;
    self->cap = grown;
    return 0;
}

//  Move the entry at `from` to `to` (the slot at `to` is a hole or the
//  same entry).
static void
s_move (keel_balancer_t *self, size_t from, size_t to)
{
    if (from == to)
        return;
    self->items[to] = self->items[from];
    self->items[to]->pos = to;
}

//  Take an entry out of items, keeping the round's split (see the top).
static void
s_detach (keel_balancer_t *self, entry_t *entry)
{
    size_t size = self->size, cursor = self->cursor, pos = entry->pos;
    assert (pos < size && self->items[pos] == entry);
    if (pos < cursor) {
        s_move (self, cursor - 1, pos);
        s_move (self, size - 1, cursor - 1);
        self->cursor = cursor - 1;
    } else
        s_move (self, size - 1, pos);
    self->size = size - 1;
}

//  Remove an entry: out of items and by_id, user slot freed, freed.
static void
s_remove (keel_balancer_t *self, entry_t *entry)
{
    s_detach (self, entry);
    zhashx_delete (self->by_id, &entry->hkey);
    self->in_flight -= entry->pub.in_flight;
    s_user_free (self, entry);
    s_entry_free (entry);
}

//  Upsert one valid spec. Returns 0 or -1 (out of memory; nothing
//  changed).
static int
s_upsert (keel_balancer_t *self, const keel_upstream_spec_t *spec)
{
    char **tags;
    entry_t *entry = s_lookup (self, spec->id);
    if (entry) {
        bool moved = strcmp (entry->endpoint, spec->endpoint) != 0;
        char *endpoint = moved ? strdup (spec->endpoint) : NULL;
        if ((moved && !endpoint) || s_tags_copy (spec, &tags)) {
            free (endpoint);
            return -1;
        }
        if (moved) {
            //  The slot (a connection pool, say) served the old endpoint.
            s_user_free (self, entry);
            free (entry->endpoint);
            entry->endpoint = endpoint;
            entry->pub.endpoint = endpoint;
        }
        s_tags_set (entry, tags, spec->n_tags);
        entry->pub.weight = s_weight (spec->weight);
        return 0;
    }
    if (s_reserve (self, self->size + 1))
        return -1;
    size_t id_len = strlen (spec->id) + 1;
    entry = (entry_t *)calloc (1, sizeof (entry_t) + id_len);
    if (!entry)
        return -1;
    entry->endpoint = strdup (spec->endpoint);
    if (!entry->endpoint || s_tags_copy (spec, &tags)) {
        s_entry_free (entry);
        return -1;
    }
    memcpy (entry->id, spec->id, id_len);
    entry->pub.id = entry->id;
    entry->pub.endpoint = entry->endpoint;
    entry->pub.weight = s_weight (spec->weight);
    entry->pub.serial = ++self->last_serial;
    s_tags_set (entry, tags, spec->n_tags);
    entry->hkey.key = &self->hash_key;
    entry->hkey.str = entry->id;
    entry->pos = self->size;
    self->items[self->size++] = entry;
    int rc = zhashx_insert (self->by_id, &entry->hkey, entry);
    assert (rc == 0); //  the id was looked up just above
    (void)rc;
    return 0;
}

// ---------------------------------------------------------------------------
//  Lifecycle

keel_balancer_t *
keel_balancer_new (keel_balancer_policy_t policy, uint64_t seed)
{
    if ((int)policy < KEEL_BALANCER_ROUND_ROBIN ||
        (int)policy > KEEL_BALANCER_P2C)
        return NULL;
    keel_balancer_t *self = (keel_balancer_t *)calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->policy = policy;
    self->rng = seed;
    //  The hash key from its own stream of the seed ("keel-lb!").
    uint64_t state = seed ^ 0x6b65656c2d6c6221ULL;
    uint64_t words[2] = {s_splitmix (&state), s_splitmix (&state)};
    memcpy (self->hash_key.bytes, words, sizeof self->hash_key.bytes);
    self->by_id = zhashx_new ();
    if (!self->by_id) {
        free (self);
        return NULL;
    }
    keel_hash_table_setup (self->by_id);
    return self;
}

void
keel_balancer_destroy (keel_balancer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keel_balancer_t *self = *self_p;
    assert (!self->in_callback);
    for (size_t i = 0; i < self->size; i++) {
        s_user_free (self, self->items[i]);
        s_entry_free (self->items[i]);
    }
    zhashx_destroy (&self->by_id);
    free (self->items);
    free (self);
    *self_p = NULL;
}

keel_balancer_policy_t
keel_balancer_policy (keel_balancer_t *self)
{
    assert (self);
    return self->policy;
}

void
keel_balancer_set_user_free (keel_balancer_t *self,
                             keel_balancer_user_free_fn *fn, void *arg)
{
    assert (self);
    self->user_free = fn;
    self->user_free_arg = arg;
}

// ---------------------------------------------------------------------------
//  Updates

int
keel_balancer_upsert (keel_balancer_t *self, const keel_upstream_spec_t *spec)
{
    assert (self);
    assert (!self->in_callback);
    if (!s_spec_valid (spec))
        return -1;
    return s_upsert (self, spec);
}

int
keel_balancer_remove (keel_balancer_t *self, const char *id)
{
    assert (self);
    assert (!self->in_callback);
    entry_t *entry = id ? s_lookup (self, id) : NULL;
    if (!entry)
        return -1;
    s_remove (self, entry);
    return 0;
}

int
keel_balancer_reset (keel_balancer_t *self, const keel_upstream_spec_t *specs,
                     size_t n)
{
    assert (self);
    assert (!self->in_callback);
    if (n && !specs)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!s_spec_valid (&specs[i]))
            return -1;
    //  Remove first, so the new instances keep the snapshot's order. The
    //  pass re-reads a position after a removal: what fills the hole comes
    //  from further on, never from the part already read.
    for (size_t i = 0; i < n; i++) {
        entry_t *entry = s_lookup (self, specs[i].id);
        if (entry)
            entry->marked = true;
    }
    for (size_t pos = 0; pos < self->size;) {
        entry_t *entry = self->items[pos];
        if (entry->marked) {
            entry->marked = false;
            pos++;
        } else
            s_remove (self, entry);
    }
    for (size_t i = 0; i < n; i++)
        if (s_upsert (self, &specs[i]))
            return -1;
    return 0;
}

// ---------------------------------------------------------------------------
//  Picking

//  May `entry` be picked in this pick? Asks the caller once per pick.
static bool
s_allowed (keel_balancer_t *self, entry_t *entry,
           keel_balancer_allowed_fn *allowed, void *arg, entry_t *excluded)
{
    if (entry == excluded)
        return false;
    if (!allowed)
        return true;
    if (entry->seen_gen != self->gen) {
        self->in_callback = true;
        entry->seen_ok = allowed (&entry->pub, arg);
        self->in_callback = false;
        entry->seen_gen = self->gen;
    }
    return entry->seen_ok;
}

//  The first allowed entry from the cursor on, wrapping.
static entry_t *
s_pick_round_robin (keel_balancer_t *self, keel_balancer_allowed_fn *allowed,
                    void *arg, entry_t *excluded)
{
    size_t size = self->size;
    if (self->cursor >= size)
        self->cursor = 0; //  a new round
    size_t pos = self->cursor;
    for (size_t k = 0; k < size; k++) {
        entry_t *entry = self->items[pos];
        if (s_allowed (self, entry, allowed, arg, excluded)) {
            self->cursor = pos + 1;
            return entry;
        }
        if (++pos == size)
            pos = 0;
    }
    return NULL;
}

//  The allowed entry with the fewest in flight; of equals, the first from
//  the cursor on, so ties take turns.
static entry_t *
s_pick_least_conn (keel_balancer_t *self, keel_balancer_allowed_fn *allowed,
                   void *arg, entry_t *excluded)
{
    size_t size = self->size;
    if (self->cursor >= size)
        self->cursor = 0;
    size_t pos = self->cursor;
    entry_t *best = NULL;
    for (size_t k = 0; k < size; k++) {
        entry_t *entry = self->items[pos];
        if (s_allowed (self, entry, allowed, arg, excluded) &&
            (!best || entry->pub.in_flight < best->pub.in_flight)) {
            best = entry;
            if (best->pub.in_flight == 0)
                break; //  nobody beats it
        }
        if (++pos == size)
            pos = 0;
    }
    if (best)
        self->cursor = best->pos + 1;
    return best;
}

//  Smooth weighted round robin (nginx's ngx_http_upstream_get_peer).
static entry_t *
s_pick_weighted (keel_balancer_t *self, keel_balancer_allowed_fn *allowed,
                 void *arg, entry_t *excluded)
{
    entry_t *best = NULL;
    int64_t total = 0;
    for (size_t pos = 0; pos < self->size; pos++) {
        entry_t *entry = self->items[pos];
        if (!s_allowed (self, entry, allowed, arg, excluded))
            continue;
        entry->current += entry->pub.weight;
        total += entry->pub.weight;
        if (!best || entry->current > best->current)
            best = entry;
    }
    if (best)
        best->current -= total;
    return best;
}

//  Draw an allowed entry other than `other`: a few random draws.
static entry_t *
s_draw (keel_balancer_t *self, keel_balancer_allowed_fn *allowed, void *arg,
        entry_t *excluded, entry_t *other)
{
    size_t size = self->size - (other ? 1 : 0);
    if (size == 0)
        return NULL;
    for (int draw = 0; draw < S_P2C_DRAWS; draw++) {
        size_t pos = s_below (self, size);
        if (other && pos >= other->pos)
            pos++; //  skip over `other`: uniform among the rest
        entry_t *entry = self->items[pos];
        if (s_allowed (self, entry, allowed, arg, excluded))
            return entry;
    }
    return NULL;
}

//  Power of two choices. Random draws find the two candidates unless most
//  entries are refused; then one pass counts the allowed ones and a second
//  takes two of them at random. Either way both are uniform among the
//  allowed entries, and the less loaded one wins.
static entry_t *
s_pick_p2c (keel_balancer_t *self, keel_balancer_allowed_fn *allowed, void *arg,
            entry_t *excluded)
{
    entry_t *first = s_draw (self, allowed, arg, excluded, NULL);
    entry_t *second =
        first ? s_draw (self, allowed, arg, excluded, first) : NULL;
    if (!second) {
        size_t count = 0;
        entry_t *last = NULL;
        for (size_t pos = 0; pos < self->size; pos++)
            if (s_allowed (self, self->items[pos], allowed, arg, excluded)) {
                count++;
                last = self->items[pos];
            }
        if (count < 2)
            return last;
        size_t want_first = s_below (self, count);
        size_t want_second = s_below (self, count - 1);
        if (want_second >= want_first)
            want_second++;
        size_t seen = 0;
        for (size_t pos = 0; pos < self->size; pos++) {
            entry_t *entry = self->items[pos];
            if (!s_allowed (self, entry, allowed, arg, excluded))
                continue;
            if (seen == want_first)
                first = entry;
            if (seen == want_second)
                second = entry;
            seen++;
        }
    }
    assert (first && second && first != second);
    return second->pub.in_flight < first->pub.in_flight ? second : first;
}

const keel_upstream_t *
keel_balancer_pick (keel_balancer_t *self, keel_balancer_allowed_fn *allowed,
                    void *arg, const char *exclude_id)
{
    assert (self);
    assert (!self->in_callback);
    self->gen++;
    entry_t *excluded = exclude_id ? s_lookup (self, exclude_id) : NULL;
    entry_t *entry = NULL;
    if (self->size > 0) {
        switch (self->policy) {
        case KEEL_BALANCER_ROUND_ROBIN:
            entry = s_pick_round_robin (self, allowed, arg, excluded);
            break;
        case KEEL_BALANCER_WEIGHTED:
            entry = s_pick_weighted (self, allowed, arg, excluded);
            break;
        case KEEL_BALANCER_LEAST_CONN:
            entry = s_pick_least_conn (self, allowed, arg, excluded);
            break;
        case KEEL_BALANCER_P2C:
            entry = s_pick_p2c (self, allowed, arg, excluded);
            break;
        }
    }
    if (!entry) {
        self->no_instance++;
        return NULL;
    }
    self->picks++;
    entry->pub.picks++;
    if (entry->pub.in_flight < UINT32_MAX) {
        entry->pub.in_flight++;
        self->in_flight++;
    }
    return &entry->pub;
}

int
keel_balancer_done (keel_balancer_t *self, const char *id, uint64_t serial)
{
    assert (self);
    entry_t *entry = id ? s_lookup (self, id) : NULL;
    if (!entry || entry->pub.serial != serial || entry->pub.in_flight == 0)
        return -1;
    entry->pub.in_flight--;
    self->in_flight--;
    return 0;
}

// ---------------------------------------------------------------------------
//  The user slot, reading

int
keel_balancer_set_user (keel_balancer_t *self, const char *id, void *user)
{
    assert (self);
    assert (!self->in_callback);
    entry_t *entry = id ? s_lookup (self, id) : NULL;
    if (!entry)
        return -1;
    if (entry->pub.user != user)
        s_user_free (self, entry);
    entry->pub.user = user;
    return 0;
}

const keel_upstream_t *
keel_balancer_get (keel_balancer_t *self, const char *id)
{
    assert (self);
    entry_t *entry = id ? s_lookup (self, id) : NULL;
    return entry ? &entry->pub : NULL;
}

size_t
keel_balancer_size (keel_balancer_t *self)
{
    assert (self);
    return self->size;
}

const keel_upstream_t *
keel_balancer_at (keel_balancer_t *self, size_t index)
{
    assert (self);
    assert (index < self->size);
    return &self->items[index]->pub;
}

bool
keel_upstream_has_tag (const keel_upstream_t *upstream, const char *tag)
{
    assert (upstream);
    if (!tag)
        return false;
    for (size_t i = 0; i < upstream->n_tags; i++)
        if (streq (upstream->tags[i], tag))
            return true;
    return false;
}

keel_balancer_stats_t
keel_balancer_stats (keel_balancer_t *self)
{
    assert (self);
    keel_balancer_stats_t stats = {self->size, self->picks, self->no_instance,
                                   self->in_flight};
    return stats;
}

const char *
keel_balancer_verify (keel_balancer_t *self)
{
    assert (self);
    if (self->size > self->cap)
        return "size > cap";
    if (self->cursor > self->size)
        return "cursor > size";
    if (zhashx_size (self->by_id) != self->size)
        return "table and items differ in size";
    uint64_t in_flight = 0;
    for (size_t pos = 0; pos < self->size; pos++) {
        entry_t *entry = self->items[pos];
        if (!entry || entry->pos != pos)
            return "entry position wrong";
        if (entry->pub.id != entry->id || entry->hkey.str != entry->id ||
            entry->hkey.key != &self->hash_key)
            return "entry id pointers wrong";
        if (s_lookup (self, entry->id) != entry)
            return "id does not find its entry";
        if (entry->pub.endpoint != entry->endpoint || !entry->endpoint ||
            !*entry->endpoint)
            return "endpoint wrong";
        if (entry->pub.weight == 0)
            return "weight 0";
        if (entry->pub.serial == 0 || entry->pub.serial > self->last_serial)
            return "serial out of range";
        if (entry->marked)
            return "reset mark left";
        if ((entry->tags == NULL) != (entry->pub.n_tags == 0) ||
            entry->pub.tags[entry->pub.n_tags] != NULL)
            return "tags wrong";
        for (size_t i = 0; i < entry->pub.n_tags; i++)
            if (!entry->pub.tags[i])
                return "tag NULL";
        in_flight += entry->pub.in_flight;
    }
    if (in_flight != self->in_flight)
        return "in-flight total differs from the sum";
    return NULL;
}

// ---------------------------------------------------------------------------
//  Names

const char *
keel_balancer_policy_name (int policy)
{
    if (policy < KEEL_BALANCER_ROUND_ROBIN || policy > KEEL_BALANCER_P2C)
        return "UNKNOWN";
    return s_policy_names[policy];
}

int
keel_balancer_policy_parse (const char *name)
{
    if (!name)
        return -1;
    for (int policy = 0; policy <= KEEL_BALANCER_P2C; policy++) {
        const char *a = name, *b = s_policy_names[policy];
        while (*a && *b) {
            char ca = *a == '-' ? '_' : (char)toupper ((unsigned char)*a);
            if (ca != *b)
                break;
            a++, b++;
        }
        if (!*a && !*b)
            return policy;
    }
    return -1;
}
