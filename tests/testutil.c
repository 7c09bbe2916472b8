/*  testutil.c - helpers shared by keel's Check suites. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int
testutil_run (Suite *suite)
{
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

char *
testutil_inproc (const char *tag)
{
    static int counter = 0;
    return zsys_sprintf ("inproc://t-%d-%d-%s", (int) getpid (), ++counter,
                         tag);
}

int
testutil_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge (fd, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    addr.sin_port = 0;
    ck_assert_int_eq (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    ck_assert_int_eq (getsockname (fd, (struct sockaddr *) &addr, &len), 0);
    close (fd);
    return ntohs (addr.sin_port);
}

char *
testutil_write_temp (const char *text)
{
    char *path = strdup ("/tmp/keel-test-XXXXXX");
    int fd = mkstemp (path);
    ck_assert_int_ge (fd, 0);
    size_t len = strlen (text);
    ck_assert_int_eq ((int) write (fd, text, len), (int) len);
    close (fd);
    return path;
}
