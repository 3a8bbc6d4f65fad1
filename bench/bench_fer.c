/* Frame error rates, with a one-sided 95 % upper bound.
 *
 * Cascade before verification: the share of frames it leaves with
 * errors, which verification then discards.
 *   bench_fer [FRAME_BITS [FRAMES [QBER]]]   (default 65536 3000 0.02)
 *
 * LDPC after the blind fallback, frames of 128 Z bits: frames that failed
 * after every reveal, and frames the decoder accepted but that differ
 * from Alice's key (what verification would catch), each against Alice's
 * key. A bound of 1e-4 needs about 30,000 frames without a failure.
 * Mbit/s: key bits over the time in kagi_ldpc_reconcile_plan (one thread
 * per CPU online, KAGI_THREADS=N to choose: Alice's syndromes and
 * reveals, Bob's decoding), without making the pairs.
 *   bench_fer ldpc [FRAMES [QBER [F_START [Z]]]]   (default 2000 0.02 1.22 8192) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kagi/cascade.h"
#include "kagi/error.h"
#include "kagi/estimate.h"
#include "kagi/ldpc.h"
#include "internal.h" /* kagi__now */

/* P(X <= k) for X ~ Binomial(n, p), 0 < p < 1. */
static double binom_cdf(size_t k, size_t n, double p)
{
    double s = 0, lp = log(p), lq = log1p(-p);
    for (size_t i = 0; i <= k; i++)
        s += exp(lgamma((double)n + 1) - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) +
                 (double)i * lp + (double)(n - i) * lq);
    return s;
}

/* Clopper-Pearson one-sided upper bound at 95 %: the p with
 * P(X <= k) = 0.05, by bisection (the CDF falls as p grows). */
static double fer_upper95(size_t k, size_t n)
{
    if (k >= n) return 1.0;
    double lo = (double)k / (double)n, hi = 1.0;
    for (int it = 0; it < 200; it++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= 0) mid = 1e-300;
        if (binom_cdf(k, n, mid) > 0.05) lo = mid;
        else hi = mid;
    }
    return hi;
}

static int ldpc_fer(int argc, char **argv)
{
    size_t frames = argc > 2 ? strtoull(argv[2], NULL, 10) : 2000;
    double q = argc > 3 ? atof(argv[3]) : 0.02, f0 = argc > 4 ? atof(argv[4]) : 1.22;
    uint32_t z = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : 8192;
    if (frames == 0 || !(q > 0 && q <= 0.11) || !(f0 > 1 && f0 < 2) || z == 0 || z % 64) {
        fprintf(stderr, "usage: bench_fer ldpc [FRAMES [QBER (0..0.11] [F_START (1..2) "
                        "[Z (multiple of 64)]]]]\n");
        return 2;
    }
    unsigned rate = kagi_ldpc_rate_for(q, f0);
    kagi_ldpc_code *c;
    kagi_ldpc_plan *pl;
    if (kagi_ldpc_code_new(&c, rate, z, 1) || kagi_ldpc_plan_new(&pl, c, q, f0, 7)) {
        fprintf(stderr, "bench_fer: %s\n", kagi_errdetail());
        return 1;
    }
    kagi_ldpc_plan_info pi;
    kagi_ldpc_plan_get_info(pl, &pi);
    /* 0: the library's default, one thread per CPU online */
    kagi_ldpc_params p = {.threads = getenv("KAGI_THREADS") ? (unsigned)atoi(getenv("KAGI_THREADS")) : 0};
    unsigned nthr = p.threads ? p.threads : kagi__cpus(64);
    kagi_rng r;
    kagi_rng_seed(&r, 99);
    size_t done = 0, failed = 0, wrong = 0, revealed_frames = 0, iters = 0, errors = 0;
    double leak = 0, trec = 0, t0 = kagi__now();
    while (done < frames) {
        size_t batch = frames - done < 8 ? frames - done : 8, n = batch * pi.n_key, e = 0;
        kagi_bits *a, *b;
        if (kagi_bits_bsc_pair(&r, n, q, &a, &b, &e) != KAGI_OK) return 1;
        kagi_ldpc_stats st;
        double t1 = kagi__now();
        int rc = kagi_ldpc_reconcile_plan(pl, a, b, &p, &st);
        trec += kagi__now() - t1;
        if (rc && rc != KAGI_ERR_RECONCILE) {
            fprintf(stderr, "bench_fer: %s\n", kagi_errdetail());
            return 1;
        }
        for (size_t f = 0; f < batch; f++) wrong += kagi_bits_hamming_at(a->w, b->w, f * pi.n_key, pi.n_key) != 0;
        failed += st.failed_frames;
        revealed_frames += st.messages - st.frames; /* reveals, one message each */
        iters += st.iterations;
        errors += e;
        leak += (double)st.leak_bits;
        done += batch;
        kagi_bits_free(a);
        kagi_bits_free(b);
    }
    double t = kagi__now() - t0, bits = (double)done * (double)pi.n_key;
    /* wrong counts failed frames too (Bob's bits left as they were) */
    printf("LDPC rate %u%%, frames of %zu bits (%zu key bits), QBER %.2f%%, f_start %.2f: "
           "%zu frames in %.1f s (%.1f Mbit/s reconciled on %u threads, making the pairs apart)\n",
           rate, pi.n, pi.n_key, 100 * q, f0, done, t, bits / trec / 1e6, nthr);
    printf("  failed after all reveals: %zu; accepted but wrong: %zu; reveals: %.3f per frame; "
           "iterations %.1f per frame; f %.4f\n", failed, wrong - failed,
           (double)revealed_frames / (double)done, (double)iters / (double)done,
           leak / (bits * kagi_h2((double)errors / bits)));
    printf("  FER %.3g, below %.3g at 95%% confidence (Clopper-Pearson)\n",
           (double)wrong / (double)done, fer_upper95(wrong, done));
    kagi_ldpc_plan_free(pl);
    kagi_ldpc_code_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "ldpc") == 0) return ldpc_fer(argc, argv);
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 65536;
    int frames = argc > 2 ? atoi(argv[2]) : 3000;
    double q = argc > 3 ? atof(argv[3]) : 0.02;
    kagi_rng r;
    kagi_rng_seed(&r, 99);
    kagi_bits *a, *b;
    if (n == 0 || n % 4096 || frames <= 0 || !(q > 0 && q < 0.5)) {
        fprintf(stderr, "usage: bench_fer [FRAME_BITS (multiple of 4096) [FRAMES [QBER]]]\n");
        return 2;
    }
    if (kagi_bits_new(&a, n) || kagi_bits_new(&b, n)) return 1;
    int bad = 0;
    double leak = 0, h = 0;
    for (int f = 0; f < frames; f++) {
        for (size_t i = 0; i < KAGI_WORDS(n); i++) a->w[i] = b->w[i] = kagi_rng_next(&r);
        size_t e = 0;
        for (size_t i = 0; i < n; i++)
            if (kagi_rng_uniform(&r) < q) {
                kagi_bits_flip(b, i);
                e++;
            }
        kagi_cascade_params p = {.qber = q, .seed = (uint64_t)f, .frame_bits = n};
        kagi_cascade_stats st;
        if (kagi_cascade_run(a, b, &p, &st)) {
            fprintf(stderr, "bench_fer: %s\n", kagi_errdetail());
            return 1;
        }
        bad += kagi_bits_hamming(a->w, b->w, n) != 0;
        leak += (double)st.leak_bits;
        h += (double)n * kagi_h2((double)e / (double)n);
    }
    printf("Cascade frame error rate: %d of %d frames of %zu bits at QBER %.2f%% kept errors, mean f %.4f\n",
           bad, frames, n, 100 * q, leak / h);
    printf("  FER %.3g, below %.3g at 95%% confidence (Clopper-Pearson)\n", (double)bad / frames,
           fer_upper95((size_t)bad, (size_t)frames));
    kagi_bits_free(a);
    kagi_bits_free(b);
    return 0;
}
