/* kagi pair: a test pair of sifted keys with independent bit errors. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kagi/bits.h"
#include "kagi/error.h"

static kagi_cli_opt kagi__opts[] = {
    {"bits", "N", "number of sifted bits", 1, NULL},
    {"qber", "Q", "probability that Bob's bit differs, in [0, 0.5)", 1, NULL},
    {"seed", "K", "seed of the generator (default 1): same seed, same pair", 0, NULL},
    {"out-alice", "FILE", "Alice's bit file", 1, NULL},
    {"out-bob", "FILE", "Bob's bit file", 1, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

static int kagi__run(kagi_cli_cmd *cmd)
{
    size_t n = 0, seed = 1;
    double q = 0;
    int rc;
    if ((rc = kagi_cli_size(cmd, "bits", 1, &n)) || (rc = kagi_cli_size(cmd, "seed", 0, &seed)))
        return rc;
    if ((rc = kagi_cli_double_from(cmd, "qber", 0, 0.5, &q))) return rc;
    kagi_bits *a = NULL, *b = NULL;
    kagi_rng r;
    kagi_rng_seed(&r, seed);
    int e = kagi_bits_new(&a, n);
    if (!e) e = kagi_bits_new(&b, n);
    size_t errs = 0;
    if (!e) {
        for (size_t i = 0; i < KAGI_WORDS(n); i++) a->w[i] = kagi_rng_next(&r);
        if (n & 63) a->w[n >> 6] &= ((uint64_t)1 << (n & 63)) - 1;
        for (size_t i = 0; i < KAGI_WORDS(n); i++) b->w[i] = a->w[i];
        for (size_t i = 0; i < n; i++)
            if (kagi_rng_uniform(&r) < q) {
                kagi_bits_flip(b, i);
                errs++;
            }
        e = kagi_bits_write_file(kagi_cli_get(cmd, "out-alice"), a);
        if (!e) {
            e = kagi_bits_write_file(kagi_cli_get(cmd, "out-bob"), b);
            if (e) unlink(kagi_cli_get(cmd, "out-alice"));
        }
    }
    kagi_bits_free(a);
    kagi_bits_free(b);
    if (e) return kagi_cli_fail(cmd, e);
    fprintf(stderr, "kagi pair: %zu bits, %zu errors (QBER %.4f%%)\n", n, errs,
            n ? 100.0 * (double)errs / (double)n : 0.0);
    return KAGI_EXIT_OK;
}

kagi_cli_cmd kagi_cmd_pair = {
    "pair", "make a test pair of sifted keys with random bit errors",
    "--bits N --qber Q [--seed K] --out-alice FA --out-bob FB",
    "For tests and examples only: the bits come from a seeded generator, not\n"
    "from a quantum channel, and are not secret.",
    kagi__opts, kagi__run};
