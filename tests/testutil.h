/*  testutil.h - helpers shared by keel's Check suites. */
#ifndef KEEL_TESTUTIL_H_INCLUDED
#define KEEL_TESTUTIL_H_INCLUDED

#include <check.h>
#include <czmq.h>

//  Run a suite with Check and return the process exit code (0 = all passed).
int testutil_run (Suite *suite);

//  A fresh inproc endpoint name, unique in this process ("inproc://t-N-tag").
//  Caller frees.
char *testutil_inproc (const char *tag);

//  A free loopback tcp port (bound, read, released). Returns > 0.
int testutil_free_port (void);

//  Write `text` to a new temporary file; caller frees the returned path and
//  unlinks the file.
char *testutil_write_temp (const char *text);

#endif
