/*  test_fuzz_corpus.c - the fuzz corpus as a regression test: every file of
    fuzz/corpus/NAME/ goes through fuzz target NAME (fuzz/fuzz_NAME.c,
    compiled in with KEEL_FUZZ_REPLAY, see fuzz/fuzz.h). A target aborts or
    crashes on a broken invariant; under the sanitizer build (KEEL_SANITIZE)
    memory errors and leaks fail it too. Also: every target has a seed
    corpus, and every corpus a target. */
#include "testutil.h"

#include "fuzz.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#define FUZZ_DIR KEEL_SOURCE_DIR "/fuzz"

//  Fewest seeds a target's corpus may have.
#define MIN_SEEDS 10

typedef int (s_entry_fn) (const uint8_t *data, size_t size);

static const struct {
    const char *name;
    s_entry_fn *entry;
} s_targets[] = {
    {"envelope", keel_fuzz_envelope}, {"http_request", keel_fuzz_http_request},
    {"jwt", keel_fuzz_jwt},           {"config", keel_fuzz_config},
    {"saga_def", keel_fuzz_saga_def},
};
#define TARGETS ((int)(sizeof s_targets / sizeof s_targets[0]))

static int
s_compare (const void *a, const void *b)
{
    return strcmp (*(char *const *)a, *(char *const *)b);
}

//  The names in `dir` (no dot files), sorted; *count_p gets how many.
//  Caller frees the array and each name. NULL if the folder is missing.
static char **
s_list (const char *dir, size_t *count_p)
{
    DIR *handle = opendir (dir);
    if (!handle)
        return NULL;
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        if (entry->d_name[0] == '.')
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            names = (char **)realloc (names, cap * sizeof (char *));
            ck_assert_ptr_nonnull (names);
        }
        names[count++] = strdup (entry->d_name);
    }
    closedir (handle);
    qsort (names, count, sizeof (char *), s_compare);
    *count_p = count;
    return names;
}

static void
s_free_list (char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free (names[i]);
    free (names);
}

//  The whole file, in a buffer of exactly its size (so that a read past
//  the end is caught by the sanitizers). *size_p gets the size.
static uint8_t *
s_read (const char *path, size_t *size_p)
{
    FILE *file = fopen (path, "rb");
    ck_assert_msg (file != NULL, "cannot open %s", path);
    struct stat info;
    ck_assert_int_eq (fstat (fileno (file), &info), 0);
    size_t size = (size_t)info.st_size;
    uint8_t *data = (uint8_t *)malloc (size ? size : 1);
    ck_assert_ptr_nonnull (data);
    ck_assert_uint_eq (fread (data, 1, size, file), size);
    fclose (file);
    *size_p = size;
    return data;
}

START_TEST (test_replay)
{
    const char *name = s_targets[_i].name;
    char *dir = zsys_sprintf ("%s/corpus/%s", FUZZ_DIR, name);
    size_t count = 0;
    char **files = s_list (dir, &count);
    ck_assert_msg (files != NULL, "no corpus %s", dir);
    ck_assert_msg (count >= MIN_SEEDS, "%s: %zu seeds, want >= %d", dir, count,
                   MIN_SEEDS);
    for (size_t i = 0; i < count; i++) {
        char *path = zsys_sprintf ("%s/%s", dir, files[i]);
        size_t size = 0;
        uint8_t *data = s_read (path, &size);
        //  Named before the call: a crash leaves this as the last line.
        fprintf (stderr, "replay %s/%s (%zu bytes)\n", name, files[i], size);
        ck_assert_int_eq (s_targets[_i].entry (data, size), 0);
        free (data);
        free (path);
    }
    s_free_list (files, count);
    free (dir);
}
END_TEST

//  The smallest inputs, and every prefix of nothing at all.
START_TEST (test_edges)
{
    static const uint8_t bytes[] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t size = 0; size <= sizeof bytes; size++) {
        uint8_t *copy = (uint8_t *)malloc (size ? size : 1);
        memcpy (copy, bytes, size);
        ck_assert_int_eq (s_targets[_i].entry (copy, size), 0);
        memset (copy, 0xFF, size);
        ck_assert_int_eq (s_targets[_i].entry (copy, size), 0);
        free (copy);
    }
}
END_TEST

//  fuzz/fuzz_NAME.c and fuzz/corpus/NAME/ come in pairs, all in the table.
START_TEST (test_every_target_replayed)
{
    size_t count = 0;
    char **files = s_list (FUZZ_DIR, &count);
    ck_assert_ptr_nonnull (files);
    int sources = 0;
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen (files[i]);
        if (strncmp (files[i], "fuzz_", 5) || len < 7 ||
            strcmp (files[i] + len - 2, ".c"))
            continue;
        sources++;
        bool known = false;
        for (int t = 0; t < TARGETS; t++)
            known |= strlen (s_targets[t].name) == len - 7 &&
                     !strncmp (files[i] + 5, s_targets[t].name, len - 7);
        ck_assert_msg (known, "fuzz/%s is not replayed by this test", files[i]);
    }
    ck_assert_int_eq (sources, TARGETS);
    s_free_list (files, count);

    char **corpora = s_list (FUZZ_DIR "/corpus", &count);
    ck_assert_ptr_nonnull (corpora);
    for (size_t i = 0; i < count; i++) {
        bool known = false;
        for (int t = 0; t < TARGETS; t++)
            known |= !strcmp (corpora[i], s_targets[t].name);
        ck_assert_msg (known, "fuzz/corpus/%s has no target", corpora[i]);
    }
    s_free_list (corpora, count);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("keel_fuzz_corpus");
    TCase *tc = tcase_create ("core");
    tcase_add_loop_test (tc, test_replay, 0, TARGETS);
    tcase_add_loop_test (tc, test_edges, 0, TARGETS);
    tcase_add_test (tc, test_every_target_replayed);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    return testutil_run (s_suite ());
}
