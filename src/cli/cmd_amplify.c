/* kagi amplify: privacy amplification of a key file by Toeplitz hashing. */
#include <stdio.h>
#include <time.h>

#include "cli.h"
#include "internal.h"
#include "kagi/amplify.h"
#include "kagi/bits.h"
#include "kagi/error.h"

static kagi_cli_opt kagi__opts[] = {
    {"seed", "FILE", "Toeplitz seed, at least N+M-1 bits (bit file)", 1, NULL},
    {"in", "FILE", "reconciled key, at least N bits (bit file)", 1, NULL},
    {"bits", "N", "number of key bits to hash", 1, NULL},
    {"out-bits", "M", "number of output bits, 1 <= M <= N", 1, NULL},
    {"out", "FILE", "write the M-bit key here (replaced atomically)", 1, NULL},
    {NULL, NULL, NULL, 0, NULL},
};


/* A file that cannot serve: name the option too, the detail already names
 * the path and the bits it has and needs. */
static int kagi__file_fail(const kagi_cli_cmd *cmd, const char *opt, int rc)
{
    fprintf(stderr, "kagi %s: --%s: %s\n", cmd->name, opt, kagi_errdetail());
    return rc == KAGI_ERR_ARG ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    size_t n = 0, m = 0;
    int rc;
    if ((rc = kagi_cli_size(cmd, "bits", 1, &n)) || (rc = kagi_cli_size(cmd, "out-bits", 1, &m)))
        return rc;
    if (m > n)
        return kagi_cli_usage_error(cmd, "--out-bits %zu exceeds --bits %zu: hashing cannot lengthen a key",
                                    m, n);
    kagi_bits *seed = NULL, *x = NULL, *y = NULL;
    int e = kagi_bits_read_file(kagi_cli_get(cmd, "seed"), n + m - 1, &seed);
    if (e) return kagi__file_fail(cmd, "seed", e);
    e = kagi_bits_read_file(kagi_cli_get(cmd, "in"), n, &x);
    if (e) {
        kagi_bits_free(seed);
        return kagi__file_fail(cmd, "in", e);
    }
    double t0 = kagi__now(), t1 = t0;
    e = kagi_bits_new(&y, m);
    if (!e) {
        e = kagi_toeplitz(seed->w, x->w, n, m, y->w);
        t1 = kagi__now();
    }
    /* The key is hashed: its input copy goes before anything is written. */
    kagi_bits_free(x);
    kagi_bits_free(seed);
    if (!e) e = kagi_bits_write_file(kagi_cli_get(cmd, "out"), y);
    kagi_bits_free(y);
    if (e) return kagi_cli_fail(cmd, e);
    double secs = t1 - t0;
    fprintf(stderr, "kagi amplify: %zu bits in, %zu bits out, %.3f ms, %.1f Mbit/s\n", n, m,
            secs * 1e3, secs > 0 ? (double)n / secs / 1e6 : 0.0);
    return KAGI_EXIT_OK;
}

kagi_cli_cmd kagi_cmd_amplify = {
    "amplify", "privacy amplification by Toeplitz hashing",
    "--seed S --in X --bits N --out-bits M --out Y",
    "Computes Y = T X over GF(2) with T[i][j] = S[i - j + N - 1], the Toeplitz\n"
    "matrix of the first N+M-1 seed bits, on the first N bits of X. Bit files\n"
    "are packed LSB first (bit j is bit j%8 of byte j/8). Y is written\n"
    "atomically and only on success; a one-line summary goes to stderr.\n"
    "See docs/amplify.md.",
    kagi__opts, kagi__run};
