/* Shared start-up of the dashboard for kagi sim --serve and kagi testbed
 * --serve (docs/dashboard.md). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "dash.h"
#include "kagi/error.h"

int kagi_cli_dash_start(const kagi_cli_cmd *cmd, kagi_serve_api_fn api, void *ctx,
                        kagi_serve **out)
{
    char web[PATH_MAX];
    *out = NULL;
    if (kagi_serve_find_web(kagi_cli_get(cmd, "web"), web, sizeof web) != KAGI_OK) {
        fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
        return KAGI_EXIT_USAGE;
    }
    kagi_serve_opts o;
    memset(&o, 0, sizeof o);
    /* --serve ADDR:PORT, or --serve with --listen ADDR:PORT */
    const char *serve = kagi_cli_get(cmd, "serve"), *listen = kagi_cli_get(cmd, "listen");
    if (serve && serve[0] && listen) {
        fprintf(stderr, "kagi %s: give the address once: --serve %s or --listen %s\n", cmd->name, serve, listen);
        return KAGI_EXIT_USAGE;
    }
    o.listen = serve && serve[0] ? serve : listen;
    o.web_dir = web;
    o.api = api;
    o.api_ctx = ctx;
    int rc = kagi_serve_new(&o, out);
    if (rc != KAGI_OK) {
        fprintf(stderr, "kagi %s: --listen: %s\n", cmd->name, kagi_errdetail());
        return rc == KAGI_ERR_ARG ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
    }
    if (!kagi_serve_loopback(*out))
        fprintf(stderr, "kagi %s: warning: the dashboard listens on %s, not a loopback address: "
                "anyone who reaches it sees the network's state (no key material)\n", cmd->name,
                kagi_serve_url(*out));
    printf("dashboard: %s (files from %s)\n", kagi_serve_url(*out), web);
    fflush(stdout);
    return KAGI_EXIT_OK;
}

int kagi_cli_query_size(const char *q, size_t len, const char *key, size_t *out)
{
    size_t kl = strlen(key), i = 0;
    while (q && i < len) {
        size_t j = i;
        while (j < len && q[j] != '&') j++;
        if (j - i > kl + 1 && !memcmp(q + i, key, kl) && q[i + kl] == '=') {
            size_t v = 0, k = i + kl + 1;
            if (j - k > 12) return -1;
            for (; k < j; k++) {
                if (q[k] < '0' || q[k] > '9') return -1;
                v = v * 10 + (size_t)(q[k] - '0');
            }
            *out = v;
            return 0;
        }
        i = j + 1;
    }
    return -1;
}
