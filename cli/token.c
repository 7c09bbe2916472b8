/*  token.c - `keel token`: mint a JWT with the dev key, for trying out
    routes that require authentication. */
#include "cli.h"
#include "jwt.h"

#include <string.h>
#include <time.h>

static const char *s_help =
    "usage: keel token --sub NAME [--scope S]... [--ttl SECONDS]\n"
    "                  [--secret SECRET] [--kid KID] [--iss ISS] [--aud "
    "AUD]\n\n"
    "Print an HS256 token signed with the dev key (kid \"" CLI_DEV_KID "\",\n"
    "issuer \"" CLI_DEV_ISSUER "\"), or with --secret. Use it as\n"
    "  curl -H \"Authorization: Bearer $(keel token --sub me)\" ...\n"
    "The dev key is for trying keel out, never for production.\n";

int
cli_token (cli_t *cli, int argc, char **argv)
{
    const char *sub = NULL, *secret = CLI_DEV_SECRET, *kid = CLI_DEV_KID;
    const char *iss = CLI_DEV_ISSUER, *aud = NULL;
    long ttl = 3600;
    const char *scopes[65] = {NULL};
    int n_scopes = 0;
    for (int i = 1; i < argc;) {
        int common = cli_common_option (cli, argc, argv, &i);
        if (common == -1)
            return CLI_USAGE;
        if (common == 1)
            continue;
        const char *option = argv[i];
        if (i + 1 >= argc || option[0] != '-')
            return cli_usage_error ("token", "unexpected '%s'", option);
        const char *value = argv[i + 1];
        i += 2;
        if (streq (option, "--sub"))
            sub = value;
        else if (streq (option, "--scope")) {
            if (n_scopes == 64)
                return cli_usage_error ("token", "at most 64 scopes");
            scopes[n_scopes++] = value;
        } else if (streq (option, "--secret"))
            secret = value;
        else if (streq (option, "--kid"))
            kid = value;
        else if (streq (option, "--iss"))
            iss = value;
        else if (streq (option, "--aud"))
            aud = value;
        else if (streq (option, "--ttl")) {
            char *end = NULL;
            ttl = strtol (value, &end, 10);
            if (!*value || *end || ttl <= 0 || ttl > 365L * 86400)
                return cli_usage_error ("token", "--ttl wants seconds");
        } else
            return cli_usage_error ("token", "unknown option '%s'", option);
    }
    if (cli->help) {
        printf ("%s", s_help);
        return CLI_OK;
    }
    if (!sub || !*sub)
        return cli_usage_error ("token", "--sub NAME is required");
    if (!*secret)
        return cli_usage_error ("token", "--secret must not be empty");
    char *token = keel_jwt_mint_hs256 (secret, *kid ? kid : NULL, sub,
                                       n_scopes ? scopes : NULL, iss, aud, ttl,
                                       (int64_t)time (NULL));
    if (!token) {
        fprintf (stderr, "keel token: cannot mint a token\n");
        return CLI_ERROR;
    }
    printf ("%s\n", token);
    free (token);
    return CLI_OK;
}
