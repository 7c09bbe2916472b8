/*  test_config.c - keel_config: loading, line index, accessors, errors,
    endpoint validation. */
#include "keel_config.h"
#include "testutil.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

//  Load `text` as "test.cfg"; the test fails if it does not load.
static keel_config_t *
s_load (const char *text)
{
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "test.cfg", &error);
    ck_assert_msg (config != NULL, "load failed: %s", error ? error : "?");
    ck_assert_ptr_null (error);
    return config;
}

//  Load `text`, expect a failure and return the message (caller frees).
static char *
s_load_error (const char *text)
{
    char *error = NULL;
    keel_config_t *config = keel_config_load_string (text, "test.cfg", &error);
    ck_assert_msg (config == NULL, "loaded but should not: %s", text);
    ck_assert_ptr_nonnull (error);
    return error;
}

static const char *s_node_text = "#   A keel node\n"                //  1
                                 "\n"                               //  2
                                 "node\n"                           //  3
                                 "    name = alpha     # comment\n" //  4
                                 "    bus = tcp://*:7700\n"         //  5
                                 "    # indented comment\n"         //  6
                                 "    actors\n"                     //  7
                                 "        echo\n"                   //  8
                                 "            workers = 4\n"        //  9
                                 "        saga\n"                   // 10
                                 "            timeout = 2s\n"       // 11
                                 "    events = inproc://events\n"   // 12
                                 "limits\n"                         // 13
                                 "    max_msg = 1M\n"               // 14
                                 "    title = \"two  words\"\n"     // 15
                                 "    empty =\n"                    // 16
                                 "    single = 'it'\n";             // 17

// ---------------------------------------------------------------------------
//  Loading and line numbers

START_TEST (test_lines)
{
    keel_config_t *config = s_load (s_node_text);
    ck_assert_str_eq (keel_config_name (config), "test.cfg");
    ck_assert_ptr_nonnull (keel_config_root (config));
    ck_assert_ptr_null (keel_config_error (config));

    ck_assert_int_eq (keel_config_line (config, "node"), 3);
    ck_assert_int_eq (keel_config_line (config, "node/name"), 4);
    ck_assert_int_eq (keel_config_line (config, "node/bus"), 5);
    ck_assert_int_eq (keel_config_line (config, "node/actors"), 7);
    ck_assert_int_eq (keel_config_line (config, "node/actors/echo"), 8);
    ck_assert_int_eq (keel_config_line (config, "node/actors/echo/workers"), 9);
    ck_assert_int_eq (keel_config_line (config, "node/actors/saga"), 10);
    ck_assert_int_eq (keel_config_line (config, "node/actors/saga/timeout"),
                      11);
    ck_assert_int_eq (keel_config_line (config, "node/events"), 12);
    ck_assert_int_eq (keel_config_line (config, "limits"), 13);
    ck_assert_int_eq (keel_config_line (config, "limits/single"), 17);
    ck_assert_int_eq (keel_config_line (config, "/node/bus"), 5);
    ck_assert_int_eq (keel_config_line (config, "node/nope"), 0);
    ck_assert_int_eq (keel_config_line (config, ""), 0);
    keel_config_destroy (&config);
    ck_assert_ptr_null (config);
    keel_config_destroy (&config); //  Twice is fine
    keel_config_destroy (NULL);
}
END_TEST

START_TEST (test_lines_crlf_and_no_final_newline)
{
    keel_config_t *config = s_load ("a\r\n    b = 1\r\n\r\nc = 2");
    ck_assert_int_eq (keel_config_line (config, "a/b"), 2);
    ck_assert_int_eq (keel_config_line (config, "c"), 4);
    const char *value;
    ck_assert_int_eq (keel_config_string (config, "a/b", NULL, &value), 0);
    ck_assert_str_eq (value, "1");
    keel_config_destroy (&config);

    config = s_load ("");
    ck_assert_ptr_null (zconfig_child (keel_config_root (config)));
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_repeated_keys)
{
    //  Paths see the first of repeated keys, as zconfig does; nodes tell
    //  them apart.
    keel_config_t *config = s_load ("routes\n"
                                    "    route\n"
                                    "        path = /a\n"
                                    "    route\n"
                                    "        path = /b\n");
    ck_assert_int_eq (keel_config_line (config, "routes/route"), 2);
    zconfig_t *first =
        zconfig_locate (keel_config_root (config), "routes/route");
    zconfig_t *second = zconfig_next (first);
    ck_assert_int_eq (keel_config_node_line (config, second), 4);
    ck_assert_int_eq (keel_config_node_line (config, zconfig_child (second)),
                      5);
    ck_assert_int_eq (keel_config_fail_node (config, second, "bad %s", "route"),
                      -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:4: key 'routes/route': bad route");
    ck_assert_int_eq (keel_config_node_line (config, NULL), 0);
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_load_file)
{
    char *path = testutil_write_temp (s_node_text);
    char *error = (char *)"not touched";
    keel_config_t *config = keel_config_load (path, &error);
    ck_assert_ptr_nonnull (config);
    ck_assert_ptr_null (error);
    ck_assert_str_eq (keel_config_name (config), path);
    ck_assert_int_eq (keel_config_line (config, "node/actors/saga/timeout"),
                      11);
    int64_t ms;
    ck_assert_int_eq (
        keel_config_duration_ms (config, "node/actors/saga/bogus", 7, &ms), 0);
    ck_assert_int_eq (ms, 7);
    const char *name;
    ck_assert_int_eq (keel_config_string (config, "node/name", NULL, &name), 0);
    ck_assert_str_eq (name, "alpha");
    //  A failure message names the real file
    int64_t workers;
    ck_assert_int_eq (keel_config_int (config, "node/actors/echo/workers", 8,
                                       16, 0, &workers),
                      -1);
    char *expected =
        zsys_sprintf ("%s:9: key 'node/actors/echo/workers': 4 is out of "
                      "range (8 to 16)",
                      path);
    ck_assert_str_eq (keel_config_error (config), expected);
    free (expected);
    keel_config_destroy (&config);
    unlink (path);
    free (path);
}
END_TEST

START_TEST (test_load_file_errors)
{
    char *error = NULL;
    keel_config_t *config =
        keel_config_load ("/nonexistent/keel/missing.cfg", &error);
    ck_assert_ptr_null (config);
    ck_assert_str_eq (error, "/nonexistent/keel/missing.cfg: cannot read: No "
                             "such file or directory");
    free (error);

    //  A directory opens but does not read
    config = keel_config_load ("/tmp", &error);
    ck_assert_ptr_null (config);
    ck_assert_str_eq (error, "/tmp: cannot read: Is a directory");
    free (error);

    //  error_p may be NULL
    ck_assert_ptr_null (keel_config_load ("/nonexistent/x.cfg", NULL));
    ck_assert_ptr_null (keel_config_load_string ("  x", "s", NULL));

    //  A syntax error in a file gives its path and line
    char *path = testutil_write_temp ("a\n    b = 1\n      c = 2\n");
    config = keel_config_load (path, &error);
    ck_assert_ptr_null (config);
    char *expected = zsys_sprintf (
        "%s:3: syntax error: indentation of 6 spaces (indent by 4 spaces per "
        "level)",
        path);
    ck_assert_str_eq (error, expected);
    free (expected);
    free (error);
    unlink (path);
    free (path);

    //  An empty file is an empty config
    path = testutil_write_temp ("");
    config = keel_config_load (path, &error);
    ck_assert_ptr_nonnull (config);
    keel_config_destroy (&config);
    unlink (path);
    free (path);
}
END_TEST

START_TEST (test_nul_byte_in_file)
{
    char *path = testutil_write_temp ("a = 1\nb = x");
    FILE *file = fopen (path, "ab");
    ck_assert_ptr_nonnull (file);
    fwrite ("\0y\n", 1, 3, file);
    fclose (file);
    char *error = NULL;
    keel_config_t *config = keel_config_load (path, &error);
    ck_assert_ptr_null (config);
    char *expected =
        zsys_sprintf ("%s:2: syntax error: NUL byte in line", path);
    ck_assert_str_eq (error, expected);
    free (expected);
    free (error);
    unlink (path);
    free (path);
}
END_TEST

// ---------------------------------------------------------------------------
//  Syntax errors

START_TEST (test_syntax_errors)
{
    struct {
        const char *text;
        const char *error;
    } cases[] = {
        {"a\n   b = 1\n",
         "test.cfg:2: syntax error: indentation of 3 spaces (indent by 4 "
         "spaces per level)"},
        {"a\n    b\n            c = 1\n",
         "test.cfg:3: syntax error: 'c' is nested too deep (at most one level "
         "below the key before it)"},
        {"    a = 1\n",
         "test.cfg:1: syntax error: 'a' is nested too deep (at most one level "
         "below the key before it)"},
        {"a\n\tb = 1\n",
         "test.cfg:2: syntax error: tab in indentation (indent by 4 spaces)"},
        {"# ok\na = \"open\n",
         "test.cfg:2: syntax error: missing closing \" in value of 'a'"},
        {"a = 'x' y\n", "test.cfg:1: syntax error: unexpected text after "
                        "quoted value of 'a': y"},
        {"a\nb value\n",
         "test.cfg:2: syntax error: unexpected 'v' after name 'b' (expected "
         "'=' or the end of the line)"},
        {"a: 1\n", "test.cfg:1: syntax error: unexpected ':' after name 'a' "
                   "(expected '=' or the end of the line)"},
        {"a = 1\n= 2\n", "test.cfg:2: syntax error: '=' without a name "
                         "before it"},
        {"a\n    /b = 1\n",
         "test.cfg:2: syntax error: name '/b' starts or ends with '/'"},
        {"a\n    \"b\" = 1\n", "test.cfg:2: syntax error: '\"' cannot start a "
                               "name (use letters, digits and $-_@.&+/)"},
        {"\xEF\xBB\xBF"
         "a = 1\n",
         "test.cfg:1: syntax error: byte order mark (save without a BOM)"},
        {"a\n  # comment indented 2\n",
         "test.cfg:2: syntax error: indentation of 2 spaces (indent by 4 "
         "spaces per level)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *error = s_load_error (cases[i].text);
        ck_assert_msg (streq (error, cases[i].error), "case %zu: got '%s'", i,
                       error);
        free (error);
    }
}
END_TEST

START_TEST (test_syntax_accepted)
{
    //  What zconfig accepts, the loader accepts, with line numbers
    keel_config_t *config = s_load ("\t# tab before a comment is fine\n"
                                    "a = x # trailing comment\n"
                                    "b=1\n"
                                    "c\n"
                                    "    d\n"
                                    "        e = 'q' # c\n"
                                    "f\n"
                                    "   \n"
                                    "g.h-i_j$k@l&m+n = 2\n");
    const char *value;
    ck_assert_int_eq (keel_config_string (config, "a", NULL, &value), 0);
    ck_assert_str_eq (value, "x");
    ck_assert_int_eq (keel_config_line (config, "b"), 3);
    ck_assert_int_eq (keel_config_line (config, "c/d/e"), 6);
    ck_assert_int_eq (keel_config_line (config, "f"), 7);
    ck_assert_int_eq (keel_config_line (config, "g.h-i_j$k@l&m+n"), 9);
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_long_line)
{
    //  Refused on every CZMQ version, since some cut long lines short
    char *text = (char *)malloc (3000);
    strcpy (text, "a = 1\nb = ");
    memset (text + 10, 'x', 2000);
    strcpy (text + 2010, "\nc = 3\n");
    char *error = s_load_error (text);
    ck_assert_str_eq (error,
                      "test.cfg:2: syntax error: line longer than 1024 bytes");
    free (error);

    //  1024 bytes is still fine
    memset (text, 0, 3000);
    strcpy (text, "b = ");
    memset (text + 4, 'x', 1020);
    strcat (text, "\n");
    keel_config_t *config = s_load (text);
    const char *value;
    ck_assert_int_eq (keel_config_string (config, "b", NULL, &value), 0);
    ck_assert_uint_eq (strlen (value), 1020);
    keel_config_destroy (&config);
    free (text);
}
END_TEST

//  Random ZPL-like texts: the loader must accept exactly what zconfig
//  accepts, index every key it accepts, and give a line for every error.
START_TEST (test_scan_agrees_with_zconfig)
{
    static const char *indents[] = {"",    "",   "    ", "    ", "        ",
                                    "   ", "  ", "\t",   "     "};
    static const char *names[] = {"a",  "b_c", "x.y", "d/e",   "/f",
                                  "g/", "#",   "",    "\"h\"", "$k@l"};
    static const char *rests[] = {
        "",    " = 1",     "=2", " = 'q'", " = \"q",  " = 'q' z", " # c", " v",
        ": 1", " = a # b", " =", "\t= t",  " = \"\"", " = 'a'#",  "  ",   "\r"};
    //  zconfig logs each rejection on stdout: keep the test output readable
    fflush (stdout);
    int saved = dup (STDOUT_FILENO);
    int devnull = open ("/dev/null", O_WRONLY);
    ck_assert_int_ge (devnull, 0);
    dup2 (devnull, STDOUT_FILENO);
    unsigned seed = 12345;
    int accepted = 0, rejected = 0;
    for (int round = 0; round < 4000; round++) {
        char text[1024] = "";
        int lines = 1 + rand_r (&seed) % 6;
        for (int i = 0; i < lines; i++) {
            strcat (text, indents[rand_r (&seed) % 9]);
            strcat (text, names[rand_r (&seed) % 10]);
            strcat (text, rests[rand_r (&seed) % 16]);
            strcat (text, "\n");
        }
        zconfig_t *reference = zconfig_str_load (text);
        char *error = NULL;
        keel_config_t *config = keel_config_load_string (text, "r", &error);
        ck_assert_msg (
            (reference != NULL) == (config != NULL),
            "zconfig %s, keel %s: [%s] %s", reference ? "accepts" : "rejects",
            config ? "accepts" : "rejects", text, error ? error : "");
        if (config) {
            accepted++;
            zconfig_t *root = keel_config_root (config);
            if (zconfig_child (root))
                ck_assert_msg (
                    keel_config_node_line (config, zconfig_child (root)) > 0,
                    "no line index: [%s]", text);
        } else {
            rejected++;
            ck_assert_msg (strncmp (error, "r:", 2) == 0 &&
                               strstr (error, ": syntax error: "),
                           "no line: %s [%s]", error, text);
        }
        zconfig_destroy (&reference);
        keel_config_destroy (&config);
        free (error);
    }
    fflush (stdout);
    dup2 (saved, STDOUT_FILENO);
    close (saved);
    close (devnull);
    //  Both outcomes were exercised
    ck_assert_int_gt (accepted, 100);
    ck_assert_int_gt (rejected, 100);
}
END_TEST

// ---------------------------------------------------------------------------
//  Accessors

START_TEST (test_string)
{
    keel_config_t *config = s_load (s_node_text);
    const char *value = "unset";
    ck_assert_int_eq (keel_config_string (config, "node/name", "d", &value), 0);
    ck_assert_str_eq (value, "alpha");
    ck_assert_int_eq (keel_config_string (config, "limits/title", NULL, &value),
                      0);
    ck_assert_str_eq (value, "two  words");
    ck_assert_int_eq (
        keel_config_string (config, "limits/single", NULL, &value), 0);
    ck_assert_str_eq (value, "it");
    ck_assert_int_eq (keel_config_string (config, "limits/empty", "d", &value),
                      0);
    ck_assert_str_eq (value, "");
    //  Absent
    ck_assert_int_eq (keel_config_string (config, "node/nope", "dflt", &value),
                      0);
    ck_assert_str_eq (value, "dflt");
    ck_assert_int_eq (keel_config_string (config, "node/nope", NULL, &value),
                      0);
    ck_assert_ptr_null (value);
    //  A section is not a string
    value = "unset";
    ck_assert_int_eq (keel_config_string (config, "node/actors", NULL, &value),
                      -1);
    ck_assert_str_eq (value, "unset");
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:7: key 'node/actors': expected a value, found "
                      "a section");
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_int)
{
    keel_config_t *config = s_load ("n\n"
                                    "    a = 42\n"
                                    "    b = -7\n"
                                    "    c = +3\n"
                                    "    d = 12abc\n"
                                    "    e = 99999999999999999999\n"
                                    "    f = \" 5\"\n"
                                    "    g =\n"
                                    "    h = 9223372036854775807\n"
                                    "    i = -9223372036854775808\n"
                                    "    j = 0x10\n"
                                    "    k = 1.5\n");
    int64_t v = 123;
    ck_assert_int_eq (keel_config_int (config, "n/a", 0, 100, 5, &v), 0);
    ck_assert_int_eq (v, 42);
    ck_assert_int_eq (keel_config_int (config, "n/b", -10, 10, 5, &v), 0);
    ck_assert_int_eq (v, -7);
    ck_assert_int_eq (keel_config_int (config, "n/c", 0, 10, 5, &v), 0);
    ck_assert_int_eq (v, 3);
    ck_assert_int_eq (
        keel_config_int (config, "n/h", INT64_MIN, INT64_MAX, 0, &v), 0);
    ck_assert_int_eq (v, INT64_MAX);
    ck_assert_int_eq (
        keel_config_int (config, "n/i", INT64_MIN, INT64_MAX, 0, &v), 0);
    ck_assert_int_eq (v, INT64_MIN);
    //  Absent gives the default
    ck_assert_int_eq (keel_config_int (config, "n/zz", 0, 10, 5, &v), 0);
    ck_assert_int_eq (v, 5);
    ck_assert_int_eq (keel_config_int (config, "zz/zz", 0, 10, -1, &v), 0);
    ck_assert_int_eq (v, -1);

    //  Invalid: -1, value untouched, message names line and key
    v = 123;
    ck_assert_int_eq (keel_config_int (config, "n/a", 0, 41, 5, &v), -1);
    ck_assert_int_eq (v, 123);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:2: key 'n/a': 42 is out of range (0 to 41)");
    ck_assert_int_eq (keel_config_int (config, "n/b", 0, 10, 5, &v), -1);
    ck_assert_int_eq (keel_config_int (config, "n/d", 0, 100, 5, &v), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:5: key 'n/d': expected an integer, got "
                      "'12abc'");
    ck_assert_int_eq (
        keel_config_int (config, "n/e", INT64_MIN, INT64_MAX, 5, &v), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:6: key 'n/e': 99999999999999999999 is out of "
                      "range (-9223372036854775808 to 9223372036854775807)");
    ck_assert_int_eq (keel_config_int (config, "n/f", 0, 100, 5, &v), -1);
    ck_assert_int_eq (keel_config_int (config, "n/g", 0, 100, 5, &v), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:8: key 'n/g': expected an integer, got ''");
    ck_assert_int_eq (keel_config_int (config, "n/j", 0, 100, 5, &v), -1);
    ck_assert_int_eq (keel_config_int (config, "n/k", 0, 100, 5, &v), -1);
    ck_assert_int_eq (keel_config_int (config, "n", 0, 100, 5, &v), -1);
    ck_assert_int_eq (v, 123);
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_bool)
{
    keel_config_t *config = s_load ("t1 = true\nt2 = YES\nt3 = On\nt4 = 1\n"
                                    "f1 = false\nf2 = no\nf3 = OFF\nf4 = 0\n"
                                    "bad = maybe\nbad2 = 2\nempty =\n");
    const char *yes[] = {"t1", "t2", "t3", "t4"};
    const char *no[] = {"f1", "f2", "f3", "f4"};
    for (int i = 0; i < 4; i++) {
        bool value = false;
        ck_assert_int_eq (keel_config_bool (config, yes[i], false, &value), 0);
        ck_assert_msg (value, "%s", yes[i]);
        ck_assert_int_eq (keel_config_bool (config, no[i], true, &value), 0);
        ck_assert_msg (!value, "%s", no[i]);
    }
    bool value = false;
    ck_assert_int_eq (keel_config_bool (config, "absent", true, &value), 0);
    ck_assert (value);
    ck_assert_int_eq (keel_config_bool (config, "absent", false, &value), 0);
    ck_assert (!value);
    ck_assert_int_eq (keel_config_bool (config, "bad", false, &value), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:9: key 'bad': expected true/false, yes/no, "
                      "on/off or 1/0, got 'maybe'");
    ck_assert_int_eq (keel_config_bool (config, "bad2", false, &value), -1);
    ck_assert_int_eq (keel_config_bool (config, "empty", false, &value), -1);
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_duration)
{
    keel_config_t *config = s_load ("d\n"
                                    "    ms = 250ms\n"
                                    "    s = 2s\n"
                                    "    m = 5m\n"
                                    "    h = 1h\n"
                                    "    bare = 1500\n"
                                    "    zero = 0\n"
                                    "    max = 9223372036854775807\n"
                                    "    maxh = 2562047788015h\n"
                                    "    big = 99999999999999999999s\n"
                                    "    bigh = 2562047788016h\n"
                                    "    bigs = 9223372036854776s\n"
                                    "    neg = -5s\n"
                                    "    unit = 5x\n"
                                    "    nonum = s\n"
                                    "    space = \"5 s\"\n"
                                    "    frac = 1.5s\n"
                                    "    upper = 5S\n");
    struct {
        const char *key;
        int64_t ms;
    } good[] = {
        {"d/ms", 250},        {"d/s", 2000},
        {"d/m", 300000},      {"d/h", 3600000},
        {"d/bare", 1500},     {"d/zero", 0},
        {"d/max", INT64_MAX}, {"d/maxh", INT64_C (2562047788015) * 3600000},
        {"d/absent", 42},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t value = -1;
        ck_assert_int_eq (
            keel_config_duration_ms (config, good[i].key, 42, &value), 0);
        ck_assert_msg (value == good[i].ms, "%s: %" PRId64, good[i].key, value);
    }
    const char *bad[] = {"d/big",   "d/bigh",  "d/bigs", "d/neg",   "d/unit",
                         "d/nonum", "d/space", "d/frac", "d/upper", "d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t value = -1;
        ck_assert_msg (keel_config_duration_ms (config, bad[i], 42, &value) ==
                           -1,
                       "%s", bad[i]);
        ck_assert_int_eq (value, -1);
    }
    int64_t value;
    ck_assert_int_eq (keel_config_duration_ms (config, "d/big", 0, &value), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:10: key 'd/big': duration "
                      "'99999999999999999999s' is too large");
    ck_assert_int_eq (keel_config_duration_ms (config, "d/neg", 0, &value), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:13: key 'd/neg': duration must not be "
                      "negative, got '-5s'");
    ck_assert_int_eq (keel_config_duration_ms (config, "d/unit", 0, &value),
                      -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:14: key 'd/unit': expected a duration such as "
                      "250ms, 2s, 5m or 1h (bare number = ms), got '5x'");
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_size)
{
    keel_config_t *config = s_load ("s\n"
                                    "    bytes = 1048576\n"
                                    "    k = 64K\n"
                                    "    m = 1M\n"
                                    "    g = 2G\n"
                                    "    lower = 3k\n"
                                    "    zero = 0\n"
                                    "    maxg = 8589934591G\n"
                                    "    bigg = 8589934592G\n"
                                    "    big = 99999999999999999999\n"
                                    "    neg = -1\n"
                                    "    t = 1T\n"
                                    "    kb = 1KB\n"
                                    "    frac = 1.5M\n"
                                    "    empty =\n");
    struct {
        const char *key;
        int64_t bytes;
    } good[] = {
        {"s/bytes", 1048576},
        {"s/k", 65536},
        {"s/m", 1048576},
        {"s/g", INT64_C (2147483648)},
        {"s/lower", 3072},
        {"s/zero", 0},
        {"s/maxg", INT64_C (8589934591) * 1024 * 1024 * 1024},
        {"s/absent", 99},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t value = -1;
        ck_assert_int_eq (keel_config_size (config, good[i].key, 99, &value),
                          0);
        ck_assert_msg (value == good[i].bytes, "%s: %" PRId64, good[i].key,
                       value);
    }
    const char *bad[] = {"s/bigg", "s/big",  "s/neg",   "s/t",
                         "s/kb",   "s/frac", "s/empty", "s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t value = -1;
        ck_assert_msg (keel_config_size (config, bad[i], 99, &value) == -1,
                       "%s", bad[i]);
        ck_assert_int_eq (value, -1);
    }
    int64_t value;
    ck_assert_int_eq (keel_config_size (config, "s/bigg", 0, &value), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:9: key 's/bigg': size '8589934592G' is too "
                      "large");
    ck_assert_int_eq (keel_config_size (config, "s/t", 0, &value), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:12: key 's/t': expected a size such as "
                      "1048576, 64K, 1M or 2G, got '1T'");
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_endpoint_accessor)
{
    keel_config_t *config = s_load ("bus = tcp://*:7700\n"
                                    "bad = tcp://host\n"
                                    "quoted = ' inproc://x'\n");
    const char *value = NULL;
    ck_assert_int_eq (keel_config_endpoint (config, "bus", NULL, &value), 0);
    ck_assert_str_eq (value, "tcp://*:7700");
    ck_assert_int_eq (
        keel_config_endpoint (config, "absent", "inproc://d", &value), 0);
    ck_assert_str_eq (value, "inproc://d");
    ck_assert_int_eq (keel_config_endpoint (config, "absent", NULL, &value), 0);
    ck_assert_ptr_null (value);
    value = "unset";
    ck_assert_int_eq (keel_config_endpoint (config, "bad", NULL, &value), -1);
    ck_assert_str_eq (value, "unset");
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:2: key 'bad': invalid endpoint 'tcp://host' "
                      "(expected inproc://NAME, ipc://PATH or "
                      "tcp://HOST:PORT)");
    ck_assert_int_eq (keel_config_endpoint (config, "quoted", NULL, &value),
                      -1);
    keel_config_destroy (&config);
}
END_TEST

// ---------------------------------------------------------------------------
//  Errors and key checks

START_TEST (test_fail)
{
    keel_config_t *config = s_load (s_node_text);
    ck_assert_int_eq (keel_config_fail (config, "node/actors/echo",
                                        "no actor called '%s'", "echo"),
                      -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:8: key 'node/actors/echo': no actor called "
                      "'echo'");
    //  Unknown path: no line
    keel_config_fail (config, "node/missing", "required");
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg: key 'node/missing': required");
    //  The root: no key
    keel_config_fail (config, "", "empty config");
    ck_assert_str_eq (keel_config_error (config), "test.cfg: empty config");
    keel_config_destroy (&config);
}
END_TEST

START_TEST (test_check_keys)
{
    keel_config_t *config = s_load ("node\n"                //  1
                                    "    name = a\n"        //  2
                                    "    bus = tcp://*:1\n" //  3
                                    "    actors\n"          //  4
                                    "        echo\n"        //  5
                                    "    # comment\n"       //  6
                                    "    bsu = typo\n"      //  7
                                    "other = 1\n");         //  8
    const char *node_keys[] = {"name", "bus", "events", "actors", NULL};
    const char *root_keys[] = {"node", "other", NULL};
    const char *root_only[] = {"node", NULL};
    const char *none[] = {NULL};

    ck_assert_int_eq (keel_config_check_keys (config, "", root_keys), 0);
    ck_assert_ptr_null (keel_config_error (config));
    ck_assert_int_eq (keel_config_check_keys (config, "node", node_keys), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:7: key 'node/bsu': unknown key (expected one "
                      "of: name, bus, events, actors)");
    ck_assert_int_eq (keel_config_check_keys (config, "", root_only), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:8: key 'other': unknown key (expected one of: "
                      "node)");
    ck_assert_int_eq (keel_config_check_keys (config, "node/actors", none), -1);
    ck_assert_str_eq (keel_config_error (config),
                      "test.cfg:5: key 'node/actors/echo': unknown key (none "
                      "are allowed here)");
    //  No children, or no such section: nothing to complain about
    ck_assert_int_eq (keel_config_check_keys (config, "node/name", none), 0);
    ck_assert_int_eq (keel_config_check_keys (config, "absent", none), 0);
    keel_config_destroy (&config);
}
END_TEST

// ---------------------------------------------------------------------------
//  Endpoints

START_TEST (test_endpoint_valid)
{
    char long_inproc[220], too_long_inproc[220], long_ipc[120],
        too_long_ipc[120];
    strcpy (long_inproc, "inproc://");
    memset (long_inproc + 9, 'n', 200);
    long_inproc[209] = 0;
    strcpy (too_long_inproc, long_inproc);
    strcat (too_long_inproc, "n");
    strcpy (long_ipc, "ipc://");
    memset (long_ipc + 6, 'p', 107);
    long_ipc[113] = 0;
    strcpy (too_long_ipc, long_ipc);
    strcat (too_long_ipc, "p");
    //  Host names: 253 characters at most, labels of 63 at most
    char max_host[300], long_host[300], long_label[100];
    strcpy (max_host, "tcp://");
    for (int i = 0; i < 4; i++) {
        size_t at = strlen (max_host);
        memset (max_host + at, 'a', i < 3 ? 63 : 61);
        strcpy (max_host + at + (i < 3 ? 63 : 61), i < 3 ? "." : ":1");
    }
    ck_assert_uint_eq (strlen (max_host), 6 + 253 + 2);
    strcpy (long_host, max_host);
    strcpy (long_host + strlen (long_host) - 2, "a:1");
    strcpy (long_label, "tcp://");
    memset (long_label + 6, 'b', 64);
    strcpy (long_label + 70, ".com:1");

    const char *good[] = {
        "inproc://x",
        "inproc://keel-registry.requests",
        long_inproc,
        max_host,
        "ipc:///tmp/keel.sock",
        "ipc://@abstract",
        "ipc://*",
        long_ipc,
        "tcp://localhost:5555",
        "tcp://10.0.0.2:7700",
        "tcp://0.0.0.0:1",
        "tcp://255.255.255.255:65535",
        "tcp://*:7700",
        "tcp://*:*",
        "tcp://*:0",
        "tcp://[::1]:5555",
        "tcp://[fe80::1%eth0]:5555",
        "tcp://[2001:db8::a:b]:*",
        "tcp://registry.keel.internal:7700",
        "tcp://my_service:80",
        "tcp://eth0:5555",
        "tcp://a-b.c-d:1",
    };
    const char *bad[] = {
        NULL,
        "",
        "inproc://",
        too_long_inproc,
        "inproc://has space",
        "inproc://tab\there",
        "ipc://",
        too_long_ipc,
        "tcp://",
        "tcp://host",
        "tcp://host:",
        "tcp://:5555",
        "tcp://host:65536",
        "tcp://host:99999",
        "tcp://host:-1",
        "tcp://host:080",
        "tcp://host:12ab",
        "tcp://host:1:2",
        "tcp://::1:5555",
        "tcp://[::1:5555",
        "tcp://[::1]5555",
        "tcp://[]:5555",
        "tcp://[not-v6]:5555",
        "tcp://[::1%]:5555",
        "tcp://256.0.0.1:5555",
        "tcp://1.2.3:5555",
        "tcp://1.2.3.4.5:5555",
        "tcp://01.2.3.4:5555",
        "tcp://1..3.4:5555",
        "tcp://1234:5555",
        "tcp://-host:1",
        "tcp://host-:1",
        "tcp://ho st:1",
        "tcp://a..b:1",
        "tcp://.a:1",
        "tcp://a.:1",
        "tcp://h\xC3\xA9:1",
        "tcp://eth0;host:1",
        long_host,
        long_label,
        " tcp://*:1",
        "tcp://*:1 ",
        "TCP://host:1",
        "udp://host:1",
        "pgm://eth0;239.192.1.1:5555",
        "ws://host:80",
        "inproc:/x",
        "tcp:host:1",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg (keel_endpoint_valid (good[i]), "should be valid: %s",
                       good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg (!keel_endpoint_valid (bad[i]), "should be invalid: %s",
                       bad[i] ? bad[i] : "NULL");
}
END_TEST

START_TEST (test_scope)
{
    keel_config_t *config = s_load ("saga\n"
                                    "    definition\n"
                                    "        name = a\n"
                                    "        version = 2\n"
                                    "    definition\n"
                                    "        name = b\n"
                                    "        version = x\n"
                                    "        extra = 1\n");
    zconfig_t *first = zconfig_locate (keel_config_root (config), "saga");
    first = zconfig_child (first);
    zconfig_t *second = zconfig_next (first);
    const char *name = NULL;
    int64_t version = 0;
    //  Under the first repeated section.
    ck_assert_ptr_null (keel_config_scope (config, first));
    ck_assert_int_eq (keel_config_string (config, "name", NULL, &name), 0);
    ck_assert_str_eq (name, "a");
    ck_assert_int_eq (keel_config_int (config, "version", 1, 9, 1, &version),
                      0);
    ck_assert_int_eq (version, 2);
    //  Under the second: errors name the full path and its own line.
    ck_assert_ptr_eq (keel_config_scope (config, second), first);
    ck_assert_int_eq (keel_config_string (config, "name", NULL, &name), 0);
    ck_assert_str_eq (name, "b");
    ck_assert_int_eq (keel_config_int (config, "version", 1, 9, 1, &version),
                      -1);
    ck_assert_ptr_nonnull (strstr (keel_config_error (config),
                                   ":7: key 'saga/definition/version'"));
    static const char *keys[] = {"name", "version", NULL};
    ck_assert_int_eq (keel_config_check_keys (config, "", keys), -1);
    ck_assert_ptr_nonnull (strstr (keel_config_error (config), ":8:"));
    ck_assert_int_eq (keel_config_fail (config, "name", "bad"), -1);
    ck_assert_ptr_nonnull (strstr (keel_config_error (config),
                                   ":6: key 'saga/definition/name': bad"));
    //  Back to the root.
    ck_assert_ptr_eq (keel_config_scope (config, NULL), second);
    ck_assert_int_eq (keel_config_string (config, "name", "none", &name), 0);
    ck_assert_str_eq (name, "none");
    keel_config_destroy (&config);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("keel_config");
    TCase *tc = tcase_create ("load");
    tcase_add_test (tc, test_lines);
    tcase_add_test (tc, test_lines_crlf_and_no_final_newline);
    tcase_add_test (tc, test_repeated_keys);
    tcase_add_test (tc, test_load_file);
    tcase_add_test (tc, test_load_file_errors);
    tcase_add_test (tc, test_nul_byte_in_file);
    tcase_add_test (tc, test_syntax_errors);
    tcase_add_test (tc, test_syntax_accepted);
    tcase_add_test (tc, test_long_line);
    tcase_add_test (tc, test_scan_agrees_with_zconfig);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("accessors");
    tcase_add_test (tc, test_string);
    tcase_add_test (tc, test_int);
    tcase_add_test (tc, test_bool);
    tcase_add_test (tc, test_duration);
    tcase_add_test (tc, test_size);
    tcase_add_test (tc, test_endpoint_accessor);
    tcase_add_test (tc, test_fail);
    tcase_add_test (tc, test_check_keys);
    tcase_add_test (tc, test_scope);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("endpoints");
    tcase_add_test (tc, test_endpoint_valid);
    suite_add_tcase (suite, tc);
    return testutil_run (suite);
}
