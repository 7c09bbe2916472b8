/*  fuzz.h - what keel's fuzz targets share.

    Each fuzz/fuzz_NAME.c is one libFuzzer target. It defines its entry
    point with KEEL_FUZZ_ENTRY (NAME), which is LLVMFuzzerTestOneInput in a
    fuzzer build (KEEL_FUZZ=ON, clang) and keel_fuzz_NAME when compiled
    with KEEL_FUZZ_REPLAY, so that tests/test_fuzz_corpus.c can link every
    target into one program and replay fuzz/corpus/NAME/ through it.

        fuzz/fuzz_NAME.c  --clang -fsanitize=fuzzer-->  fuzz_NAME (libFuzzer)
                          --cc -DKEEL_FUZZ_REPLAY-->    keel_fuzz_NAME ()
                                                        in test_fuzz_corpus

    A target returns 0 on every input. Bad input must never crash, abort,
    exit or leak; a target aborts only when an invariant of keel's own
    output breaks (then that is the bug it found).
*/
#ifndef KEEL_FUZZ_H_INCLUDED
#define KEEL_FUZZ_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef KEEL_FUZZ_REPLAY
#define KEEL_FUZZ_ENTRY(name) keel_fuzz_##name
#else
#define KEEL_FUZZ_ENTRY(name) LLVMFuzzerTestOneInput
#endif

//  The entry point of every target (one per fuzz/fuzz_NAME.c). Returns 0.
int KEEL_FUZZ_ENTRY (envelope) (const uint8_t *data, size_t size);
int KEEL_FUZZ_ENTRY (http_request) (const uint8_t *data, size_t size);
int KEEL_FUZZ_ENTRY (jwt) (const uint8_t *data, size_t size);
int KEEL_FUZZ_ENTRY (config) (const uint8_t *data, size_t size);
int KEEL_FUZZ_ENTRY (saga_def) (const uint8_t *data, size_t size);

//  The keel source tree, for the test data a target reads at start-up:
//  $KEEL_SOURCE_DIR if set, else the tree the target was built from.
static inline const char *
keel_fuzz_source_dir (void)
{
    const char *dir = getenv ("KEEL_SOURCE_DIR");
#ifdef KEEL_SOURCE_DIR
    if (!dir || !*dir)
        dir = KEEL_SOURCE_DIR;
#endif
    return dir && *dir ? dir : ".";
}

//  A broken invariant: say which and abort (the fuzzer saves the input).
#define KEEL_FUZZ_CHECK(cond)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf (stderr, "%s:%d: invariant broken: %s\n", __FILE__,        \
                     __LINE__, #cond);                                         \
            abort ();                                                          \
        }                                                                      \
    } while (0)

#endif
