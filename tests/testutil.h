/*  testutil.h - helpers shared by keel's Check suites. */
#ifndef KEEL_TESTUTIL_H_INCLUDED
#define KEEL_TESTUTIL_H_INCLUDED

#include "keel_client.h"

#include <check.h>
#include <czmq.h>
#include <stdint.h>
#include <sys/types.h>

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

//  Start `argv` (argv[0] a path) as a child process with stdout and stderr
//  on a pipe; *out_fd gets the read end. Returns the pid.
pid_t testutil_spawn (char *const argv[], int *out_fd);

//  Read from `fd` until the text read contains `needle` or `timeout_ms`
//  passes. Returns the text read so far (caller frees) or NULL on timeout.
char *testutil_wait_for (int fd, const char *needle, int timeout_ms);

//  Wait up to `timeout_ms` for a child to exit; SIGKILL it after that.
//  Returns its exit status (0..255), or -1 if it had to be killed or died
//  from a signal.
int testutil_reap (pid_t pid, int timeout_ms);

//  Run `argv` to completion (bounded: 20 s) and return its exit status;
//  *output_p (if not NULL) gets stdout+stderr (caller frees).
int testutil_run_cmd (char *const argv[], char **output_p);

//  Run `argv` as testutil_run_cmd does and return its stdout+stderr (caller
//  frees), whatever its exit status; NULL if it could not be run.
char *testutil_cmd_output (char *const argv[]);

//  Slack for a timing assertion: `ms` normally, ten times that under
//  valgrind (KEEL_TEST_MEMCHECK set by the valgrind target).
int testutil_slack (int ms);

//  Wait until `registry` (a client of a registry service) discovers at least
//  one instance of each of the `n` names in `services`, polling
//  registry.discover every 20 ms. Fails the test ("X never registered") if
//  one is still missing `timeout_ms` after the call. The caller keeps the
//  client.
void testutil_wait_discovered (keel_client_t *registry,
                               const char *const *services, size_t n,
                               int timeout_ms);

//  The value of counter `name` in the keel.stats of the service `client`
//  talks to. Fails the test if the call fails or there is no such counter.
uint64_t testutil_stat (keel_client_t *client, const char *name);

//  The demo "order" saga as the body of a `saga` section (indented 4):
//  create (orders) -> reserve (inventory) -> charge (payments), undone by
//  cancel, release, refund; CONFLICT is not retried. `step_extra` (NULL for
//  none): lines indented 12 that each step gets before its non_retryable
//  line. Returns the text; caller frees.
char *testutil_order_definition (const char *step_extra);

#endif
