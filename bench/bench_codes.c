/* Thresholds of the LDPC mother codes with kagi's decoder, for choosing
 * degree profiles (docs/ldpc.md "Codes").
 *
 *   bench_codes mother RATE Z FRAMES ITERS F1 F2 ...
 *     the mother code alone (no puncturing): for each efficiency f, the
 *     QBER Q with (m/n) = f h(Q); FRAMES error patterns of exactly
 *     round(Q n) errors, decoded from their syndromes with at most ITERS
 *     iterations; prints frames decoded and mean iterations of those.
 *   bench_codes adapt Z FRAMES F_START Q1 Q2 ...
 *     the whole protocol (rate choice, plan, fallback with the pipeline's
 *     defaults: reveals of 0.02 n_key h per round, 60 + 40 iterations):
 *     f after the fallback, iterations and failed frames per QBER.
 * Frames are checked against the true error pattern (the oracle); each
 * point has its own seed, so runs repeat exactly.
 *
 * Environment: KAGI_PROBE_VERBOSE=1 prints the wrong bits left in each
 * failed frame (a few: stuck; about half the errors: below threshold);
 * KAGI_PROBE_RATE=r makes adapt use mother rate r instead of
 * kagi_ldpc_rate_for's; KAGI_PROBE_PUNCT=k (mother) punctures the first k
 * base columns (LLR 0, random bits, not counted as key: f = (m - k z) /
 * ((n - k z) h)), the "punctured high-degree columns" experiment of
 * docs/ldpc.md. To try a profile without editing the table, build with
 * the profile hook: make CFLAGS="-O2 -DKAGI_LDPC_PROFILE_SEARCH"
 * BUILD=/tmp/kagi-search /tmp/kagi-search/bench/bench_codes, then
 * KAGI_LDPC_PROFILE="80 26 20:12 10:6 78:3 20:2" (rate, mb,
 * count:degree groups in column order). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kagi/estimate.h"
#include "kagi/error.h"
#include "kagi/ldpc.h"

static double h2(double p) { return -p * log2(p) - (1 - p) * log2(1 - p); }

/* Q in (0, 0.5) with h(Q) = t. */
static double h2inv(double t)
{
    double lo = 1e-9, hi = 0.5;
    for (int k = 0; k < 100; k++) {
        double mid = (lo + hi) / 2;
        if (h2(mid) < t) lo = mid;
        else hi = mid;
    }
    return (lo + hi) / 2;
}

static int mother(int argc, char **argv)
{
    if (argc < 6) return 2;
    unsigned rate = (unsigned)atoi(argv[2]);
    uint32_t z = (uint32_t)atoi(argv[3]);
    unsigned frames = (unsigned)atoi(argv[4]), iters = (unsigned)atoi(argv[5]);
    kagi_ldpc_code *c;
    if (kagi_ldpc_code_new(&c, rate, z, 1)) {
        fprintf(stderr, "%s\n", kagi_errdetail());
        return 1;
    }
    kagi_ldpc_code_info ci;
    kagi_ldpc_code_get_info(c, &ci);
    printf("rate %u z %u n %zu m %zu circulants %zu 6-cycles %zu checksum %016" PRIx64 "\n", rate,
           z, ci.n, ci.m, ci.circulants, ci.cycles6, ci.checksum);
    kagi_ldpc_decoder *d;
    if (kagi_ldpc_decoder_new(&d, c, KAGI_LDPC_IMPL_AUTO, 0)) return 1;
    int8_t *llr = malloc(ci.n);
    uint64_t *e = calloc(ci.n / 64, 8), *syn = calloc(ci.m / 64, 8), *out = calloc(ci.n / 64, 8);
    uint32_t *perm = malloc(ci.n * sizeof *perm);
    if (!llr || !e || !syn || !out || !perm) return 1;
    for (int a = 6; a < argc; a++) {
        double f = atof(argv[a]);
        /* KAGI_PROBE_PUNCT: the first k base columns punctured. */
        const char *pe = getenv("KAGI_PROBE_PUNCT");
        size_t np = pe ? (size_t)atoi(pe) * z : 0, nk = ci.n - np;
        double q = h2inv((double)(ci.m - np) / (double)nk / f);
        size_t w = (size_t)llround(q * (double)nk);
        int l = (int)lround(6.0 * log((1 - q) / q));
        memset(llr, l < 1 ? 1 : l > 126 ? 126 : l, ci.n);
        kagi_rng r;
        kagi_rng_seed(&r, 1000 + (uint64_t)(f * 1e4));
        unsigned ok = 0, itsum = 0, itmax = 0;
        for (unsigned fr = 0; fr < frames; fr++) {
            /* Exactly w errors: a partial Fisher-Yates shuffle. */
            for (size_t i = 0; i < nk; i++) perm[i] = (uint32_t)(np + i);
            memset(e, 0, ci.n / 8);
            for (size_t v = 0; v < np; v++) {
                llr[v] = 0;
                if (kagi_rng_next(&r) >> 63) e[v >> 6] |= (uint64_t)1 << (v & 63);
            }
            for (size_t i = 0; i < w; i++) {
                size_t k = i + (size_t)kagi_rng_below(&r, nk - i);
                uint32_t t = perm[i];
                perm[i] = perm[k];
                perm[k] = t;
                e[perm[i] >> 6] |= (uint64_t)1 << (perm[i] & 63);
            }
            kagi_ldpc_syndrome(c, e, syn);
            kagi_ldpc_decoder_start(d, llr, syn);
            unsigned it = 0;
            int same = kagi_ldpc_decoder_run(d, iters, out, &it) == KAGI_OK &&
                       !memcmp(out, e, ci.n / 8);
            if (!same && getenv("KAGI_PROBE_VERBOSE")) {
                size_t wrong = 0;
                for (size_t k = 0; k < ci.n / 64; k++) wrong += (size_t)__builtin_popcountll(out[k] ^ e[k]);
                printf("  frame %u: %zu of %zu bits wrong after %u iterations\n", fr, wrong, w, it);
            }
            if (same) {
                ok++;
                itsum += it;
                if (it > itmax) itmax = it;
            }
        }
        printf("f %.4f Q %.5f llr %d: %u/%u decoded, iterations mean %.1f max %u\n", f, q, l, ok,
               frames, ok ? (double)itsum / ok : 0.0, itmax);
        fflush(stdout);
    }
    kagi_ldpc_decoder_free(d);
    kagi_ldpc_code_free(c);
    free(llr);
    free(e);
    free(syn);
    free(out);
    free(perm);
    return 0;
}

static int adapt(int argc, char **argv)
{
    if (argc < 6) return 2;
    uint32_t z = (uint32_t)atoi(argv[2]);
    unsigned frames = (unsigned)atoi(argv[3]);
    double f0 = atof(argv[4]);
    for (int a = 5; a < argc; a++) {
        double q = atof(argv[a]);
        unsigned rate = getenv("KAGI_PROBE_RATE") ? (unsigned)atoi(getenv("KAGI_PROBE_RATE"))
                                                  : kagi_ldpc_rate_for(q, f0);
        kagi_ldpc_code *c;
        kagi_ldpc_plan *pl;
        if (kagi_ldpc_code_new(&c, rate, z, 1) || kagi_ldpc_plan_new(&pl, c, q, f0, 7)) {
            fprintf(stderr, "%s\n", kagi_errdetail());
            return 1;
        }
        kagi_ldpc_plan_info pi;
        kagi_ldpc_plan_get_info(pl, &pi);
        kagi_rng r;
        kagi_rng_seed(&r, 5 + (uint64_t)(q * 1e4));
        size_t n = frames * pi.n_key, err = 0;
        kagi_bits *x, *y;
        if (kagi_bits_bsc_pair(&r, n, q, &x, &y, &err)) return 1;
        kagi_ldpc_params p = {.threads = 1};
        kagi_ldpc_stats st;
        int rc = kagi_ldpc_reconcile_plan(pl, x, y, &p, &st);
        if (rc && rc != KAGI_ERR_RECONCILE) return 1;
        size_t bad = 0;
        for (size_t fr = 0; fr < frames; fr++) bad += kagi_bits_hamming_at(x->w, y->w, fr * pi.n_key, pi.n_key) != 0;
        double f = (double)st.leak_bits / ((double)n * h2((double)err / (double)n));
        printf("Q %.3f f_start %.3f rate %u p %zu s %zu: f %.4f, iterations %.1f, messages %.2f, "
               "bad %zu/%u\n",
               q, f0, rate, pi.punctured, pi.shortened, f, (double)st.iterations / frames,
               (double)st.messages / frames, bad, frames);
        fflush(stdout);
        kagi_bits_free(x);
        kagi_bits_free(y);
        kagi_ldpc_plan_free(pl);
        kagi_ldpc_code_free(c);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc > 1 && !strcmp(argv[1], "mother")) rc = mother(argc, argv);
    else if (argc > 1 && !strcmp(argv[1], "adapt")) rc = adapt(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: bench_codes mother RATE Z FRAMES ITERS [F...]\n"
                        "       bench_codes adapt Z FRAMES F_START QBER...\n");
    return rc;
}
