/*  keygen.c - `keel keygen`: make a node's CURVE keypair, as a CZMQ
    certificate (FILE: public, FILE_secret: secret). */
#include "cli.h"

#include <jansson.h>
#include <string.h>

static const char *s_help =
    "usage: keel keygen -o FILE [--name NAME] [--json]\n\n"
    "Write a new CURVE keypair as a CZMQ certificate: FILE holds the public\n"
    "key (copy it into the `allow` directory of every peer), FILE_secret the\n"
    "secret key (mode 0600; name FILE as `security/certificate` in this\n"
    "node's config). Prints the public key, the KEY of endpoints written\n"
    "tcp://HOST:PORT;curve=KEY.\n";

int
cli_keygen (cli_t *cli, int argc, char **argv)
{
    const char *file = NULL, *name = NULL;
    for (int i = 1; i < argc;) {
        int common = cli_common_option (cli, argc, argv, &i);
        if (common == -1)
            return CLI_USAGE;
        if (common == 1)
            continue;
        const char *option = argv[i];
        if (i + 1 >= argc || option[0] != '-')
            return cli_usage_error ("keygen", "unexpected '%s'", option);
        const char *value = argv[i + 1];
        i += 2;
        if (streq (option, "-o") || streq (option, "--output"))
            file = value;
        else if (streq (option, "--name"))
            name = value;
        else
            return cli_usage_error ("keygen", "unknown option '%s'", option);
    }
    if (cli->help) {
        printf ("%s", s_help);
        return CLI_OK;
    }
    if (!file || !*file)
        return cli_usage_error ("keygen", "-o FILE is required");
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "keel keygen: cannot make a keypair\n");
        return CLI_ERROR;
    }
    if (name && *name)
        zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "created-by", "keel keygen");
    //  zcert_save writes FILE and FILE_secret (the latter mode 0600).
    if (zcert_save (cert, file) == -1) {
        fprintf (stderr, "keel keygen: cannot write '%s' or '%s_secret'\n",
                 file, file);
        zcert_destroy (&cert);
        return CLI_ERROR;
    }
    if (cli->json) {
        json_t *out = json_pack ("{s:s,s:s}", "public_key",
                                 zcert_public_txt (cert), "file", file);
        char *text = out ? json_dumps (out, JSON_COMPACT) : NULL;
        printf ("%s\n", text ? text : "{}");
        free (text);
        json_decref (out);
    } else
        printf ("%s\n", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return CLI_OK;
}
