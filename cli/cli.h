/*  cli.h - what every `keel` verb shares: options, the client to the node,
    output, exit codes.

    Exit codes: 0 ok, 1 error reply, 2 usage, 3 unreachable or timed out.
*/
#ifndef KEEL_CLI_H_INCLUDED
#define KEEL_CLI_H_INCLUDED

#include "keel_client.h"
#include "keel_node.h"

#define CLI_OK          0
#define CLI_ERROR       1
#define CLI_USAGE       2
#define CLI_UNREACHABLE 3

#define CLI_DEFAULT_BUS    "tcp://127.0.0.1:7700"
#define CLI_DEFAULT_EVENTS "tcp://127.0.0.1:7701"

//  Options every verb takes.
typedef struct {
    const char *bus;     //  node front door (--bus, KEEL_BUS)
    uint32_t timeout_ms; //  per command (--timeout MS)
    bool json;           //  --json output
    bool help;           //  --help
} cli_t;

//  A verb: runs with argv[0] = the verb. Returns an exit code.
typedef struct {
    const char *name;
    int (*fn) (cli_t *cli, int argc, char **argv);
    const char *summary;
} cli_verb_t;

//  `keel registry ...` (cli/registry.c).
int cli_registry (cli_t *cli, int argc, char **argv);

//  The dev JWT key of `keel node --dev` and `keel token` (dev only).
#define CLI_DEV_KID    "dev"
#define CLI_DEV_SECRET "keel-dev-secret-not-for-production"
#define CLI_DEV_ISSUER "keel-dev"

//  `keel token ...` (cli/token.c).
int cli_token (cli_t *cli, int argc, char **argv);

//  `keel keygen ...` (cli/keygen.c).
int cli_keygen (cli_t *cli, int argc, char **argv);

//  `keel breaker ...` (cli/breaker.c).
int cli_breaker (cli_t *cli, int argc, char **argv);

//  `keel gateway ...` (cli/gateway.c).
int cli_gateway (cli_t *cli, int argc, char **argv);

//  `keel saga ...` (cli/saga.c).
int cli_saga (cli_t *cli, int argc, char **argv);

//  The actors `keel node` can run ({NULL}-terminated).
extern const keel_actor_def_t cli_actors[];

//  If argv[*i] is a common option, consume it (and its value), advance *i
//  and return 1; return 0 if it is not one; -1 (after printing why) if its
//  value is missing or bad.
int cli_common_option (cli_t *cli, int argc, char **argv, int *i);

//  Print a usage error about `verb` and return CLI_USAGE.
int cli_usage_error (const char *verb, const char *format, ...)
    CHECK_PRINTF (2);

//  For a verb with sub-verbs (`keel registry ...`): when argv asks for help
//  (no sub-verb, or -h/--help anywhere) print `help` and return the exit
//  code (2 without a sub-verb, else 0); return -1 when it does not.
int cli_group_help (int argc, char **argv, const char *help);

//  Exit code for a keel error code.
int cli_exit_code (int code);

//  Call `type` on `service` (NULL = the node itself) through the node front
//  door and decode the reply as `reply_desc` into *reply_p (caller frees with
//  protobuf_c_message_free_unpacked (msg, NULL)). On failure prints the error
//  to stderr (as JSON on stdout with --json) and returns the exit code;
//  returns CLI_OK on success.
int cli_call (cli_t *cli, const char *service, const char *type,
              const ProtobufCMessage *payload, bool idempotent,
              const ProtobufCMessageDescriptor *reply_desc,
              ProtobufCMessage **reply_p);

//  Called by cli_watch for each event; `first` is true for the first one
//  (a late joiner always misses what came before, so its gap means
//  nothing).
typedef void (cli_event_fn) (cli_t *cli, const void *event, bool first,
                             void *arg);

//  Follow the node's events whose type starts with `prefix` until
//  interrupted or `limit` events (0 = no limit), handing each to `fn`
//  (event is a const keel_event_t *). Returns an exit code.
int cli_watch (cli_t *cli, const char *prefix, long limit, cli_event_fn *fn,
               void *arg);

//  Print a message as one line of JSON on stdout.
void cli_print_json (const ProtobufCMessage *msg);

//  The payload type of an event or reply type we know how to print, or NULL.
const ProtobufCMessageDescriptor *cli_payload_type (const char *type);

#endif
