/*  keel_config.c - the one config loader: zconfig for parsing, plus a line
    index so that every error names FILE:LINE and the key.

    zconfig builds one node per line that defines a key, in document order,
    so a pre-order walk of the tree meets the nodes in the same order as a
    scan of the text meets the key lines. The scan records those lines; the
    walk pairs them up:

        line  text                  tree (pre-order)   index
        1     # keel node
        2     node                  node               node -> 2
        3         bus = tcp://...     bus              node/bus -> 3
        4
        5         actors              actors           node/actors -> 5
        6             echo              echo           node/actors/echo -> 6

    The scan mirrors zconfig_chunk_load's rules line by line (indentation
    of 4 spaces, ZPL name characters, '=' value, quotes, comments), which is
    also how a syntax error gets its line: zconfig only says the text is
    bad, the scan says where. zconfig remains the parser: the scan never
    accepts or rejects a file on its own, except for two inputs zconfig
    would take silently and wrongly: a NUL byte (zconfig_str_load stops
    reading there and drops the rest of the file) and a line longer than
    KEEL_CONFIG_MAX_LINE (CZMQ's git sources cut such lines at 1024 bytes;
    the 4.2.1 package does not, so refusing them keeps keel's behaviour the
    same on every CZMQ it builds with).
*/
#include "keel_config.h"
#include "keel_security.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>

//  Largest config file keel_config_load reads.
#define S_MAX_FILE_SIZE (16 * 1024 * 1024)

//  Where one key was defined
typedef struct {
    int line;   //  line number, from 1
    char *path; //  key path from the root ("node/actors/echo")
} s_origin_t;

struct _keel_config_t {
    char *name;      //  file name used in messages
    zconfig_t *root; //  the parsed tree
    zhashx_t *index; //  zconfig_t * -> s_origin_t *; empty if unknown
    char *error;     //  last error message, or NULL
    zconfig_t *scope; //  paths are looked up under this; NULL = root
};

// ---------------------------------------------------------------------------
//  The line scan

//  What the scan of a text found
typedef struct {
    int *key_lines;  //  line of each key, in document order
    size_t keys;     //  number of entries in key_lines
    int error_line;  //  first line zconfig would reject, 0 if none
    char error[200]; //  why that line is wrong
    bool unsafe;     //  text must not reach zconfig (long line, NUL)
} s_scan_t;

//  ZPL name characters, the same set zconfig accepts.
static bool
s_is_namechar (unsigned char c)
{
    return isalnum (c) || (c != 0 && strchr ("$-_@.&+/", c) != NULL);
}

//  Describe a character for a message: 'x', or 0xNN when not printable.
static void
s_describe_char (unsigned char c, char *buf, size_t size)
{
    if (isprint (c))
        snprintf (buf, size, "'%c'", c);
    else
        snprintf (buf, size, "0x%02X", c);
}

//  The rest of a line must be blank or a comment. Returns NULL if so, else
//  the first character that is not.
static const char *
s_junk_before_eoln (const char *p)
{
    while (isspace ((unsigned char)*p))
        p++;
    return (*p == 0 || *p == '#') ? NULL : p;
}

//  Check one line (trailing whitespace removed) by zconfig's rules. The line
//  may define a key at depth *level_p (0 = top), or nothing (*level_p = -1).
//  `last_level` is the depth of the previous key, -1 if none. Returns true
//  if zconfig accepts the line, else false with the reason in `why`.
static bool
s_check_line (const char *line, int last_level, int *level_p, char *why,
              size_t why_size)
{
    const char *p = line;
    while (*p == ' ')
        p++;
    size_t indent = (size_t)(p - line);
    *level_p = -1;
    if (indent % 4 != 0) {
        snprintf (why, why_size,
                  "indentation of %zu spaces (indent by 4 spaces per level)",
                  indent);
        return false;
    }
    const char *name = p;
    while (s_is_namechar ((unsigned char)*p))
        p++;
    size_t name_len = (size_t)(p - name);
    char what[8];
    if (name_len == 0) {
        //  Blank line or comment, or nothing zconfig can read
        const char *junk = s_junk_before_eoln (p);
        if (!junk)
            return true;
        if (memchr (name, '\t', (size_t)(junk - name)))
            snprintf (why, why_size, "tab in indentation (indent by 4 spaces)");
        else if ((unsigned char)junk[0] == 0xEF &&
                 (unsigned char)junk[1] == 0xBB &&
                 (unsigned char)junk[2] == 0xBF)
            snprintf (why, why_size, "byte order mark (save without a BOM)");
        else if (*junk == '=')
            snprintf (why, why_size, "'=' without a name before it");
        else {
            s_describe_char ((unsigned char)*junk, what, sizeof what);
            snprintf (why, why_size,
                      "%s cannot start a name (use letters, digits and "
                      "$-_@.&+/)",
                      what);
        }
        return false;
    }
    if (name[0] == '/' || name[name_len - 1] == '/') {
        snprintf (why, why_size, "name '%.*s' starts or ends with '/'",
                  (int)name_len, name);
        return false;
    }
    while (isspace ((unsigned char)*p))
        p++;
    if (*p == '=') {
        p++;
        while (isspace ((unsigned char)*p))
            p++;
        if (*p == '"' || *p == '\'') {
            const char *close = strchr (p + 1, *p);
            if (!close) {
                snprintf (why, why_size,
                          "missing closing %c in value of '%.*s'", *p,
                          (int)name_len, name);
                return false;
            }
            const char *junk = s_junk_before_eoln (close + 1);
            if (junk) {
                snprintf (why, why_size,
                          "unexpected text after quoted value of '%.*s': %s",
                          (int)name_len, name, junk);
                return false;
            }
        }
    } else {
        const char *junk = s_junk_before_eoln (p);
        if (junk) {
            s_describe_char ((unsigned char)*junk, what, sizeof what);
            snprintf (why, why_size,
                      "unexpected %s after name '%.*s' (expected '=' or the "
                      "end of the line)",
                      what, (int)name_len, name);
            return false;
        }
    }
    int level = (int)(indent / 4);
    if (level > last_level + 1) {
        snprintf (why, why_size,
                  "'%.*s' is nested too deep (at most one level below the key "
                  "before it)",
                  (int)name_len, name);
        return false;
    }
    *level_p = level;
    return true;
}

//  Record the first error of a scan.
static void
s_scan_error (s_scan_t *scan, int lineno, const char *why)
{
    if (scan->error_line == 0) {
        scan->error_line = lineno;
        snprintf (scan->error, sizeof scan->error, "%s", why);
    }
}

//  Scan `size` bytes of ZPL text: find the key lines, the first syntax error
//  and anything zconfig must not see. Lines split as zconfig splits them.
//  Returns 0, or -1 if out of memory.
static int
s_scan (const char *text, size_t size, s_scan_t *scan)
{
    memset (scan, 0, sizeof *scan);
    size_t capacity = 0;
    int last_level = -1;
    int lineno = 0;
    const char *cursor = text;
    const char *end = text + size;
    while (cursor < end) {
        const char *eoln = memchr (cursor, '\n', (size_t)(end - cursor));
        size_t length = (size_t)((eoln ? eoln : end) - cursor);
        const char *start = cursor;
        cursor = eoln ? eoln + 1 : end;
        lineno++;
        if (length > KEEL_CONFIG_MAX_LINE) {
            char why[80];
            snprintf (why, sizeof why, "line longer than %d bytes",
                      KEEL_CONFIG_MAX_LINE);
            s_scan_error (scan, lineno, why);
            scan->unsafe = true;
            continue;
        }
        if (memchr (start, 0, length)) {
            s_scan_error (scan, lineno, "NUL byte in line");
            scan->unsafe = true;
            continue;
        }
        if (scan->error_line)
            continue; //  Only look for unsafe lines after the first error

        char line[KEEL_CONFIG_MAX_LINE + 1];
        memcpy (line, start, length);
        while (length && isspace ((unsigned char)start[length - 1]))
            length--;
        line[length] = 0;

        int level;
        char why[sizeof scan->error];
        if (!s_check_line (line, last_level, &level, why, sizeof why)) {
            s_scan_error (scan, lineno, why);
            continue;
        }
        if (level < 0)
            continue; //  Blank or comment
        last_level = level;
        if (scan->keys == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            int *lines = realloc (scan->key_lines, capacity * sizeof (int));
            if (!lines)
                return -1;
            scan->key_lines = lines;
        }
        scan->key_lines[scan->keys++] = lineno;
    }
    return 0;
}

// ---------------------------------------------------------------------------
//  The index: zconfig node -> line and path

static size_t
s_pointer_hash (const void *key)
{
    uint64_t v = (uint64_t)(uintptr_t)key;
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdULL;
    v ^= v >> 33;
    return (size_t)v;
}

static int
s_pointer_compare (const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static void
s_origin_destroy (void **item_p)
{
    s_origin_t *origin = (s_origin_t *)*item_p;
    if (origin) {
        free (origin->path);
        free (origin);
        *item_p = NULL;
    }
}

//  Pair the children of `parent` (path `prefix`, NULL at the root) and their
//  descendants with the next key lines, in pre-order. Returns 0, or -1 if
//  the tree and the scan disagree or memory ran out.
static int
s_index_walk (keel_config_t *self, zconfig_t *parent, const char *prefix,
              const s_scan_t *scan, size_t *next)
{
    for (zconfig_t *node = zconfig_child (parent); node;
         node = zconfig_next (node)) {
        if (*next >= scan->keys)
            return -1;
        const char *name = zconfig_name (node) ? zconfig_name (node) : "";
        s_origin_t *origin = (s_origin_t *)zmalloc (sizeof *origin);
        if (!origin)
            return -1;
        origin->line = scan->key_lines[(*next)++];
        origin->path =
            prefix ? zsys_sprintf ("%s/%s", prefix, name) : strdup (name);
        if (!origin->path || zhashx_insert (self->index, node, origin)) {
            s_origin_destroy ((void **)&origin);
            return -1;
        }
        if (s_index_walk (self, node, origin->path, scan, next))
            return -1;
    }
    return 0;
}

//  Build the index. When it cannot be built it stays empty and messages
//  carry no line numbers; that is worse, never wrong.
static void
s_index_build (keel_config_t *self, const s_scan_t *scan)
{
    size_t next = 0;
    if (scan->error_line ||
        s_index_walk (self, self->root, NULL, scan, &next) ||
        next != scan->keys)
        zhashx_purge (self->index);
}

static s_origin_t *
s_origin (keel_config_t *self, zconfig_t *node)
{
    return node ? (s_origin_t *)zhashx_lookup (self->index, node) : NULL;
}

// ---------------------------------------------------------------------------
//  Loading

//  Build a config from `size` bytes of text (NUL-terminated at text[size]).
static keel_config_t *
s_load (const char *text, size_t size, const char *name, char **error_p)
{
    s_scan_t scan;
    char *error = NULL;
    keel_config_t *self = NULL;
    zconfig_t *root = NULL;
    if (s_scan (text, size, &scan)) {
        error = zsys_sprintf ("%s: out of memory", name);
        goto done;
    }
    if (!scan.unsafe)
        root = zconfig_str_load (text);
    if (!root) {
        if (scan.error_line)
            error = zsys_sprintf ("%s:%d: syntax error: %s", name,
                                  scan.error_line, scan.error);
        else
            error = zsys_sprintf ("%s: syntax error", name);
        goto done;
    }
    self = (keel_config_t *)zmalloc (sizeof *self);
    if (self) {
        self->root = root;
        self->name = strdup (name);
        self->index = zhashx_new ();
    }
    if (!self || !self->name || !self->index) {
        if (self)
            keel_config_destroy (&self);
        else
            zconfig_destroy (&root);
        error = zsys_sprintf ("%s: out of memory", name);
        goto done;
    }
    zhashx_set_key_hasher (self->index, s_pointer_hash);
    zhashx_set_key_comparator (self->index, s_pointer_compare);
    zhashx_set_key_duplicator (self->index, NULL);
    zhashx_set_key_destructor (self->index, NULL);
    zhashx_set_destructor (self->index, s_origin_destroy);
    s_index_build (self, &scan);

done:
    free (scan.key_lines);
    if (error_p)
        *error_p = error;
    else
        zstr_free (&error);
    return self;
}

keel_config_t *
keel_config_load_string (const char *text, const char *name, char **error_p)
{
    assert (text);
    return s_load (text, strlen (text), name ? name : "<string>", error_p);
}

keel_config_t *
keel_config_load (const char *path, char **error_p)
{
    assert (path);
    //  Read it ourselves: the scan and zconfig must see the same bytes, and
    //  a failure must say why (zconfig_load only returns NULL).
    FILE *file = fopen (path, "rb");
    char *text = NULL;
    size_t size = 0;
    int err = 0;
    if (!file)
        err = errno;
    else {
        size_t capacity = 0;
        while (!err) {
            if (capacity - size < 4096) {
                capacity = capacity ? capacity * 2 : 8192;
                char *bigger = realloc (text, capacity + 1);
                if (!bigger) {
                    err = ENOMEM;
                    break;
                }
                text = bigger;
            }
            size_t got = fread (text + size, 1, capacity - size, file);
            size += got;
            if (size > S_MAX_FILE_SIZE)
                err = EFBIG;
            else if (got == 0)
                break;
        }
        if (!err && ferror (file))
            err = errno ? errno : EIO;
        fclose (file);
    }
    keel_config_t *self = NULL;
    if (err) {
        if (error_p)
            *error_p =
                zsys_sprintf ("%s: cannot read: %s", path, strerror (err));
    } else {
        if (!text)
            text = strdup ("");
        if (text) {
            text[size] = 0;
            self = s_load (text, size, path, error_p);
        } else if (error_p)
            *error_p = zsys_sprintf ("%s: out of memory", path);
    }
    free (text);
    return self;
}

void
keel_config_destroy (keel_config_t **self_p)
{
    if (self_p && *self_p) {
        keel_config_t *self = *self_p;
        zhashx_destroy (&self->index);
        zconfig_destroy (&self->root);
        free (self->name);
        free (self->error);
        free (self);
        *self_p = NULL;
    }
}

const char *
keel_config_name (keel_config_t *self)
{
    assert (self);
    return self->name;
}

zconfig_t *
keel_config_root (keel_config_t *self)
{
    assert (self);
    return self->root;
}

// ---------------------------------------------------------------------------
//  Lines and errors

//  The node at `path`; "" and "/" are the root. NULL if absent.
static zconfig_t *
s_locate (keel_config_t *self, const char *path)
{
    assert (path);
    if (*path == '/')
        path++;
    zconfig_t *base = self->scope ? self->scope : self->root;
    return *path ? zconfig_locate (base, path) : base;
}

zconfig_t *
keel_config_scope (keel_config_t *self, zconfig_t *section)
{
    assert (self);
    zconfig_t *previous = self->scope;
    self->scope = section;
    return previous;
}

int
keel_config_line (keel_config_t *self, const char *path)
{
    assert (self);
    s_origin_t *origin = s_origin (self, s_locate (self, path));
    return origin ? origin->line : 0;
}

int
keel_config_node_line (keel_config_t *self, zconfig_t *node)
{
    assert (self);
    s_origin_t *origin = s_origin (self, node);
    return origin ? origin->line : 0;
}

const char *
keel_config_error (keel_config_t *self)
{
    assert (self);
    return self->error;
}

//  Set the error: "NAME:LINE: key 'PATH': message", leaving out the line
//  when 0 and the key when `path` is empty. Returns -1.
static int
s_vfail (keel_config_t *self, int line, const char *path, const char *format,
         va_list args)
{
    char *message = zsys_vprintf (format, args);
    char where[32] = "";
    if (line > 0)
        snprintf (where, sizeof where, ":%d", line);
    free (self->error);
    if (path && *path)
        self->error = zsys_sprintf ("%s%s: key '%s': %s", self->name, where,
                                    path, message ? message : "error");
    else
        self->error = zsys_sprintf ("%s%s: %s", self->name, where,
                                    message ? message : "error");
    free (message);
    return -1;
}

int
keel_config_fail (keel_config_t *self, const char *path, const char *format,
                  ...)
{
    assert (self);
    assert (format);
    if (!path)
        path = "";
    if (*path == '/')
        path++;
    va_list args;
    va_start (args, format);
    //  Under a scope, name the key by its full path.
    s_origin_t *origin = self->scope ? s_origin (self, s_locate (self, path))
                                     : NULL;
    if (origin)
        s_vfail (self, origin->line, origin->path, format, args);
    else
        s_vfail (self, keel_config_line (self, path), path, format, args);
    va_end (args);
    return -1;
}

int
keel_config_fail_node (keel_config_t *self, zconfig_t *node, const char *format,
                       ...)
{
    assert (self);
    assert (format);
    s_origin_t *origin = s_origin (self, node);
    const char *path = origin ? origin->path
                       : node && node != self->root && zconfig_name (node)
                           ? zconfig_name (node)
                           : "";
    va_list args;
    va_start (args, format);
    s_vfail (self, origin ? origin->line : 0, path, format, args);
    va_end (args);
    return -1;
}

// ---------------------------------------------------------------------------
//  Accessors

//  Find the scalar at `path`. Returns 1 with *node_p and *value_p set when
//  present, 0 when absent, -1 (error set) when it is a section.
static int
s_scalar (keel_config_t *self, const char *path, zconfig_t **node_p,
          const char **value_p)
{
    assert (self);
    assert (path);
    zconfig_t *node =
        *path && strcmp (path, "/") ? s_locate (self, path) : NULL;
    if (!node)
        return 0;
    if (zconfig_child (node))
        return keel_config_fail_node (self, node,
                                      "expected a value, found a section");
    *node_p = node;
    *value_p = zconfig_value (node) ? zconfig_value (node) : "";
    return 1;
}

int
keel_config_string (keel_config_t *self, const char *path,
                    const char *default_value, const char **value_p)
{
    assert (value_p);
    zconfig_t *node = NULL;
    const char *value = NULL;
    int rc = s_scalar (self, path, &node, &value);
    if (rc < 0)
        return -1;
    *value_p = rc ? value : default_value;
    return 0;
}

//  Parse a decimal integer with an optional sign, nothing else. Returns 0,
//  -1 if not a number, -2 if beyond int64_t.
static int
s_parse_int (const char *text, int64_t *value_p)
{
    const char *digits = text + (*text == '-' || *text == '+');
    if (!isdigit ((unsigned char)*digits))
        return -1;
    errno = 0;
    char *end;
    long long value = strtoll (text, &end, 10);
    if (*end)
        return -1;
    if (errno == ERANGE)
        return -2;
    *value_p = value;
    return 0;
}

int
keel_config_int (keel_config_t *self, const char *path, int64_t min,
                 int64_t max, int64_t default_value, int64_t *value_p)
{
    assert (value_p);
    assert (min <= max);
    zconfig_t *node = NULL;
    const char *text = NULL;
    int rc = s_scalar (self, path, &node, &text);
    if (rc <= 0) {
        if (rc == 0)
            *value_p = default_value;
        return rc;
    }
    int64_t value;
    rc = s_parse_int (text, &value);
    if (rc == -1)
        return keel_config_fail_node (self, node,
                                      "expected an integer, got '%s'", text);
    if (rc == -2 || value < min || value > max)
        return keel_config_fail_node (
            self, node, "%s is out of range (%" PRId64 " to %" PRId64 ")", text,
            min, max);
    *value_p = value;
    return 0;
}

int
keel_config_bool (keel_config_t *self, const char *path, bool default_value,
                  bool *value_p)
{
    assert (value_p);
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    zconfig_t *node = NULL;
    const char *text = NULL;
    int rc = s_scalar (self, path, &node, &text);
    if (rc <= 0) {
        if (rc == 0)
            *value_p = default_value;
        return rc;
    }
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp (text, yes[i]) == 0) {
            *value_p = true;
            return 0;
        }
        if (strcasecmp (text, no[i]) == 0) {
            *value_p = false;
            return 0;
        }
    }
    return keel_config_fail_node (
        self, node, "expected true/false, yes/no, on/off or 1/0, got '%s'",
        text);
}

//  Parse unsigned decimal digits at *text_p, advancing past them. Returns 0,
//  -1 if there are none, -2 if the number is beyond INT64_MAX.
static int
s_parse_digits (const char **text_p, int64_t *value_p)
{
    const char *p = *text_p;
    if (!isdigit ((unsigned char)*p))
        return -1;
    int64_t value = 0;
    bool overflow = false;
    for (; isdigit ((unsigned char)*p); p++) {
        int digit = *p - '0';
        if (value > (INT64_MAX - digit) / 10)
            overflow = true;
        else
            value = value * 10 + digit;
    }
    *text_p = p;
    *value_p = value;
    return overflow ? -2 : 0;
}

//  A number of units followed by one of `n_units` suffixes; *value_p gets
//  number * multiplier. Returns 0, -1 if malformed, -2 on overflow.
typedef struct {
    const char *suffix; //  "" for a bare number
    int64_t multiplier; //  value of one unit
} s_unit_t;

static int
s_parse_units (const char *text, const s_unit_t *units, size_t n_units,
               int64_t *value_p)
{
    int64_t number;
    int rc = s_parse_digits (&text, &number);
    if (rc == -1)
        return -1;
    for (size_t i = 0; i < n_units; i++)
        if (strcmp (text, units[i].suffix) == 0) {
            if (rc == -2 || number > INT64_MAX / units[i].multiplier)
                return -2;
            *value_p = number * units[i].multiplier;
            return 0;
        }
    return -1;
}

int
keel_config_duration_ms (keel_config_t *self, const char *path,
                         int64_t default_value, int64_t *value_p)
{
    assert (value_p);
    static const s_unit_t units[] = {{"", 1},
                                     {"ms", 1},
                                     {"s", 1000},
                                     {"m", 60 * 1000},
                                     {"h", 60 * 60 * 1000}};
    zconfig_t *node = NULL;
    const char *text = NULL;
    int rc = s_scalar (self, path, &node, &text);
    if (rc <= 0) {
        if (rc == 0)
            *value_p = default_value;
        return rc;
    }
    if (*text == '-')
        return keel_config_fail_node (
            self, node, "duration must not be negative, got '%s'", text);
    rc = s_parse_units (text, units, sizeof units / sizeof units[0], value_p);
    if (rc == -1)
        return keel_config_fail_node (self, node,
                                      "expected a duration such as 250ms, 2s, "
                                      "5m or 1h (bare number = ms), got '%s'",
                                      text);
    if (rc == -2)
        return keel_config_fail_node (self, node, "duration '%s' is too large",
                                      text);
    return 0;
}

int
keel_config_size (keel_config_t *self, const char *path, int64_t default_value,
                  int64_t *value_p)
{
    assert (value_p);
    static const s_unit_t units[] = {
        {"", 1},
        {"K", 1024},
        {"k", 1024},
        {"M", 1024 * 1024},
        {"m", 1024 * 1024},
        {"G", 1024 * 1024 * 1024},
        {"g", 1024 * 1024 * 1024},
    };
    zconfig_t *node = NULL;
    const char *text = NULL;
    int rc = s_scalar (self, path, &node, &text);
    if (rc <= 0) {
        if (rc == 0)
            *value_p = default_value;
        return rc;
    }
    if (*text == '-')
        return keel_config_fail_node (
            self, node, "size must not be negative, got '%s'", text);
    rc = s_parse_units (text, units, sizeof units / sizeof units[0], value_p);
    if (rc == -1)
        return keel_config_fail_node (
            self, node,
            "expected a size such as 1048576, 64K, 1M or 2G, got '%s'", text);
    if (rc == -2)
        return keel_config_fail_node (self, node, "size '%s' is too large",
                                      text);
    return 0;
}

int
keel_config_endpoint (keel_config_t *self, const char *path,
                      const char *default_value, const char **value_p)
{
    assert (value_p);
    zconfig_t *node = NULL;
    const char *text = NULL;
    int rc = s_scalar (self, path, &node, &text);
    if (rc <= 0) {
        if (rc == 0)
            *value_p = default_value;
        return rc;
    }
    if (!keel_endpoint_valid (text))
        return keel_config_fail_node (self, node, KEEL_CONFIG_BAD_ENDPOINT,
                                      text);
    *value_p = text;
    return 0;
}

int
keel_config_check_keys (keel_config_t *self, const char *path,
                        const char **allowed)
{
    assert (self);
    assert (path);
    assert (allowed);
    zconfig_t *section = s_locate (self, path);
    if (!section)
        return 0;
    for (zconfig_t *node = zconfig_child (section); node;
         node = zconfig_next (node)) {
        const char *name = zconfig_name (node) ? zconfig_name (node) : "";
        size_t i;
        for (i = 0; allowed[i]; i++)
            if (streq (name, allowed[i]))
                break;
        if (allowed[i])
            continue;
        if (!allowed[0])
            return keel_config_fail_node (
                self, node, "unknown key (none are allowed here)");
        //  "a, b, c"
        size_t length = 1;
        for (i = 0; allowed[i]; i++)
            length += strlen (allowed[i]) + 2;
        char *list = (char *)zmalloc (length);
        if (list)
            for (i = 0; allowed[i]; i++) {
                if (i)
                    strcat (list, ", ");
                strcat (list, allowed[i]);
            }
        keel_config_fail_node (self, node, "unknown key (expected one of: %s)",
                               list ? list : "?");
        free (list);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------
//  Endpoints

//  A dotted IPv4 address: four decimal parts 0..255, no leading zeros.
static bool
s_ipv4_valid (const char *host, size_t length)
{
    int parts = 0;
    size_t i = 0;
    while (i < length) {
        size_t start = i;
        int value = 0;
        while (i < length && isdigit ((unsigned char)host[i]) && i - start < 4)
            value = value * 10 + (host[i++] - '0');
        size_t digits = i - start;
        if (digits == 0 || digits > 3 || value > 255 ||
            (digits > 1 && host[start] == '0'))
            return false;
        parts++;
        if (i < length) {
            if (host[i] != '.' || i + 1 == length)
                return false;
            i++;
        }
    }
    return parts == 4;
}

//  A host name: labels of [A-Za-z0-9_-], 1..63 characters, not starting or
//  ending with '-', joined by dots; 253 characters at most. A name made only
//  of digits and dots is taken as an IPv4 address.
static bool
s_hostname_valid (const char *host, size_t length)
{
    if (length == 0 || length > 253)
        return false;
    if (strspn (host, "0123456789.") >= length)
        return s_ipv4_valid (host, length);
    size_t label = 0;
    for (size_t i = 0; i <= length; i++) {
        char c = i < length ? host[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || host[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum ((unsigned char)c) || c == '_' || c == '-') {
            if (label == 0 && c == '-')
                return false;
            label++;
        } else
            return false;
    }
    return true;
}

//  An IPv6 address as written inside brackets, with an optional %zone.
static bool
s_ipv6_valid (const char *host, size_t length)
{
    char address[INET6_ADDRSTRLEN + 1];
    const char *zone = memchr (host, '%', length);
    size_t address_len = zone ? (size_t)(zone - host) : length;
    if (address_len == 0 || address_len >= sizeof address)
        return false;
    if (zone) {
        size_t zone_len = length - address_len - 1;
        if (zone_len == 0 || zone_len >= IF_NAMESIZE)
            return false;
        for (size_t i = 1; i <= zone_len; i++)
            if (!isalnum ((unsigned char)zone[i]) && !strchr ("_.-", zone[i]))
                return false;
    }
    memcpy (address, host, address_len);
    address[address_len] = 0;
    struct in6_addr parsed;
    return inet_pton (AF_INET6, address, &parsed) == 1;
}

//  A port: 1..65535, or "*" or "0" to bind any.
static bool
s_port_valid (const char *port)
{
    if (streq (port, "*") || streq (port, "0"))
        return true;
    size_t length = strlen (port);
    if (length == 0 || length > 5 || port[0] == '0' ||
        strspn (port, "0123456789") != length)
        return false;
    return atoi (port) <= 65535;
}

static bool
s_tcp_valid (const char *address)
{
    const char *colon;
    bool host_ok;
    if (*address == '[') {
        const char *close = strchr (address, ']');
        if (!close || close[1] != ':')
            return false;
        host_ok = s_ipv6_valid (address + 1, (size_t)(close - address - 1));
        colon = close + 1;
    } else {
        colon = strchr (address, ':');
        if (!colon)
            return false;
        size_t length = (size_t)(colon - address);
        host_ok = (length == 1 && *address == '*') ||
                  s_hostname_valid (address, length);
    }
    return host_ok && s_port_valid (colon + 1);
}

bool
keel_endpoint_valid (const char *endpoint)
{
    if (!endpoint)
        return false;
    for (const unsigned char *c = (const unsigned char *)endpoint; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return false;
    if (strchr (endpoint, ';')) {
        //  tcp://HOST:PORT;curve=KEY: the server's CURVE key (keel_security.h)
        char transport[300];
        return keel_endpoint_key (endpoint, NULL) == 1 &&
               keel_endpoint_transport (endpoint, transport,
                                        sizeof transport) == 0 &&
               keel_endpoint_valid (transport);
    }
    if (strncmp (endpoint, "inproc://", 9) == 0) {
        size_t length = strlen (endpoint + 9);
        return length >= 1 && length <= 200;
    }
    if (strncmp (endpoint, "ipc://", 6) == 0) {
        size_t length = strlen (endpoint + 6);
        return length >= 1 && length <= 107;
    }
    if (strncmp (endpoint, "tcp://", 6) == 0)
        return s_tcp_valid (endpoint + 6);
    return false;
}
