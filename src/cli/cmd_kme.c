/* kagi kme: the key-management entity daemon (ETSI GS QKD 014 over mutual
 * TLS), and its two helpers: a new at-rest key, a throwaway PKI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kagi/error.h"
#include "kagi/kme.h"

static kagi_cli_opt kagi__opts[] = {
    {"config", "FILE", "run the KME configured in FILE (docs/kme.md) until SIGTERM or SIGINT", 0, NULL},
    {"check", NULL, "with --config: check the file and print a summary, do not start", 0, NULL},
    {"new-store-key", "FILE", "write a new random at-rest key to FILE (mode 0600) and exit", 0, NULL},
    {"make-pki", "DIR", "write a test CA (unless DIR has one) and certificates for --names", 0, NULL},
    {"names", "ID,ID,...", "with --make-pki: the CNs (SAE and KME ids) to certify", 0, NULL},
    {"ca-name", "NAME", "with --make-pki: the CA's CN (default kagi-test-ca)", 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

static int kagi__make_pki(kagi_cli_cmd *cmd)
{
    const char *dir = kagi_cli_get(cmd, "make-pki"), *list = kagi_cli_get(cmd, "names");
    const char *ca = kagi_cli_get(cmd, "ca-name");
    char *copy = strdup(list ? list : "");
    const char *names[256];
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && n < 256; t = strtok_r(NULL, ",", &save))
        names[n++] = t;
    int e = kagi_pki_make(dir, ca ? ca : "kagi-test-ca", names, n);
    free(copy);
    if (e) return kagi_cli_fail(cmd, e);
    fprintf(stderr, "kagi kme: PKI in %s: ca.pem and %zu certificate%s\n", dir, n, n == 1 ? "" : "s");
    return KAGI_EXIT_OK;
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    const char *cfg = kagi_cli_get(cmd, "config"), *nk = kagi_cli_get(cmd, "new-store-key");
    const char *pki = kagi_cli_get(cmd, "make-pki");
    if ((cfg != NULL) + (nk != NULL) + (pki != NULL) != 1)
        return kagi_cli_usage_error(cmd, "give exactly one of --config, --new-store-key, --make-pki");
    if (kagi_cli_get(cmd, "names") && !pki) return kagi_cli_usage_error(cmd, "--names goes with --make-pki");
    if (kagi_cli_flag(cmd, "check") && !cfg) return kagi_cli_usage_error(cmd, "--check goes with --config");
    if (nk) {
        int e = kagi_store_key_new(nk);
        if (e) return kagi_cli_fail(cmd, e);
        fprintf(stderr, "kagi kme: wrote a new at-rest key to %s (mode 0600)\n", nk);
        return KAGI_EXIT_OK;
    }
    if (pki) return kagi__make_pki(cmd);
    kagi_kme_config *c = NULL;
    int e = kagi_kme_config_load(cfg, &c);
    if (e) {
        fprintf(stderr, "kagi kme: %s\n", kagi_errdetail());
        return KAGI_EXIT_USAGE;
    }
    if (kagi_cli_flag(cmd, "check")) {
        printf("KME %s on %s:%u: %zu SAEs, %zu links, key_size %u bits (%u..%u), store %s\n", c->kme_id,
               c->listen_host, c->port, c->n_saes, c->n_links, c->key_size, c->min_key_size,
               c->max_key_size, c->store);
        for (size_t i = 0; i < c->n_links; i++) {
            double bps = 0;
            const kagi_kme_link_cfg *l = &c->links[i];
            if (l->source == KAGI_SOURCE_SIM && kagi_kme_link_rate(l, &bps) == KAGI_OK)
                printf("link %s to %s: simulated device, %.6g bit/s x %g\n", l->name, l->peer, bps, l->speedup);
            else
                printf("link %s to %s: %s\n", l->name, l->peer,
                       l->source == KAGI_SOURCE_DIR ? "directory device" : "no source");
        }
        kagi_kme_config_free(c);
        return KAGI_EXIT_OK;
    }
    e = kagi_kme_run(c);
    kagi_kme_config_free(c);
    if (e) {
        /* Whatever stopped it (a refused key file, a port in use, a store
           that does not open): a runtime failure, exit 1. */
        fprintf(stderr, "kagi kme: %s\n", kagi_errdetail());
        return KAGI_EXIT_FAIL;
    }
    return KAGI_EXIT_OK;
}

kagi_cli_cmd kagi_cmd_kme = {
    "kme", "key-management entity: ETSI GS QKD 014 key delivery over mutual TLS",
    "--config FILE [--check] | --new-store-key FILE | --make-pki DIR --names ID,...",
    "Runs a KME: keys from the links' devices (simulated or a spool folder of\n"
    "block files) go into a durable, encrypted store and are served to the SAEs\n"
    "attached here through the ETSI GS QKD 014 REST API over HTTPS with client\n"
    "certificates (the SAE is the certificate's CN). SIGTERM or SIGINT stops it\n"
    "cleanly. The at-rest key file must be 0600 and owned by this user. See\n"
    "docs/kme.md and docs/etsi014.md.",
    kagi__opts, kagi__run};
