/* The dashboard pieces kagi sim --serve and kagi testbed --serve share
 * (docs/dashboard.md): options, start-up, query parameters. */
#ifndef KAGI_CLI_DASH_H
#define KAGI_CLI_DASH_H

#include <stddef.h>

#include "cli.h"
#include "kagi/serve.h"

/* The option rows both commands add after --serve. */
#define KAGI_CLI_DASH_OPTS                                                                    \
    {"listen", "ADDR:PORT", "the dashboard's address with --serve (default 127.0.0.1:8080; "  \
     "port 0: any free port)", 0, NULL},                                                      \
    {"web", "DIR", "the dashboard's files (default: $KAGI_WEB, else web/ beside the build, "  \
     "else share/kagi/web of the install)", 0, NULL}

/* Find the web folder, bind --listen, print "dashboard: URL" on stdout
 * (a warning on stderr when the address is not loopback). Returns an
 * exit code: 0 with *out set. */
int kagi_cli_dash_start(const kagi_cli_cmd *cmd, kagi_serve_api_fn api, void *ctx,
                        kagi_serve **out);

/* The whole number of parameter key in a query ("k=12&x=1"); 0 if found. */
int kagi_cli_query_size(const char *q, size_t len, const char *key, size_t *out);

#endif
