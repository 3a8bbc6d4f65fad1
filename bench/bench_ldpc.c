/* LDPC reconciliation with 1,048,576-bit frames (z = 8192): throughput of
 * corrected key, efficiency after the fallback, frame error rate, mean
 * iterations and messages, at QBER 1, 2, 5 and 8 %, on 1 and 2 threads;
 * then the AVX2 decoder against the scalar one on the same frame, and
 * the decoder alone in ns per edge per iteration.
 *
 * Both parties run in this process; times cover Alice's syndromes, Bob's
 * decoding and reveals (the plan, made once per QBER, is timed apart).
 * Mbit/s counts key bits reconciled per second of wall time. FER counts
 * frames that failed after all reveals plus frames whose result differs
 * from Alice's key (what verification would catch). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kagi/estimate.h"
#include "kagi/error.h"
#include "kagi/ldpc.h"
#include "internal.h" /* kagi__now */

/* A pair through a BSC (kagi_bits_bsc_pair); the number of flips. */
static size_t make_pair(kagi_rng *r, size_t n, double q, kagi_bits **a, kagi_bits **b)
{
    size_t e = 0;
    if (kagi_bits_bsc_pair(r, n, q, a, b, &e) != KAGI_OK) abort();
    return e;
}

typedef struct {
    double mbps, f, fer, iters, msgs;
    size_t frames, bad;
} row;

static row run(const kagi_ldpc_plan *pl, kagi_rng *r, double q, size_t frames, unsigned threads,
               int impl, const kagi_ldpc_params *base)
{
    kagi_ldpc_plan_info pi;
    kagi_ldpc_plan_get_info(pl, &pi);
    size_t n = frames * pi.n_key;
    kagi_bits *a, *b;
    size_t e = make_pair(r, n, q, &a, &b);
    kagi_ldpc_params p = *base;
    p.threads = threads;
    p.impl = impl;
    kagi_ldpc_stats st;
    double t0 = kagi__now();
    int rc = kagi_ldpc_reconcile_plan(pl, a, b, &p, &st);
    double t = kagi__now() - t0;
    if (rc && rc != KAGI_ERR_RECONCILE) {
        fprintf(stderr, "ldpc: %s\n", kagi_errdetail());
        exit(1);
    }
    row o = {.frames = st.frames};
    /* Frames whose key differs from Alice's: failed ones and any
     * mis-correction the decoder accepted. */
    for (size_t f = 0; f < st.frames; f++) o.bad += kagi_bits_hamming_at(a->w, b->w, f * pi.n_key, pi.n_key) != 0;
    o.mbps = (double)n / t / 1e6;
    o.f = (double)st.leak_bits / ((double)n * kagi_h2((double)e / (double)n));
    o.fer = (double)o.bad / (double)st.frames;
    o.iters = (double)st.iterations / (double)st.frames;
    o.msgs = (double)st.messages / (double)st.frames;
    kagi_bits_free(a);
    kagi_bits_free(b);
    return o;
}

int main(int argc, char **argv)
{
    static const double qs[] = {0.01, 0.02, 0.05, 0.08};
    /* Three operating points, each with 60 + 40 iterations (the library's
     * default first attempt is 100): "auto" starts at the pipeline's
     * default, kagi_ldpc_f_auto: 0.02 over the code's threshold;
     * "balanced" starts at 1.22, in fewer iterations; "fast" at 1.30,
     * where one attempt decodes in few iterations. (Starting below the
     * threshold, as an earlier "efficient" row did, leans on reveals of
     * key bits, which a shortened code turns into f badly: docs/ldpc.md.) */
    static const struct {
        const char *name;
        double f_start, f_step;
        unsigned iter_first, iter_round, max_rounds;
    } modes[] = {{"auto", 0, 0.02, 60, 40, 20},
                 {"balanced", 1.22, 0.02, 60, 40, 20},
                 {"fast", 1.30, 0.02, 60, 20, 20}};
    const size_t nmodes = sizeof modes / sizeof modes[0];
    const size_t frames = argc > 1 ? (size_t)atol(argv[1]) : 6;
    /* bench_ldpc FRAMES QBER%: only that QBER's rows (quicker A/B runs). */
    const double only = argc > 2 ? atof(argv[2]) / 100 : 0;
    const uint32_t z = 8192;
    kagi_rng r;
    kagi_rng_seed(&r, 1);
    printf("kagi LDPC, frames of %u bits (z = %u), %zu frames per row, wall time of "
           "Alice + Bob\n",
           128 * z, z, frames);
    printf("%5s %-9s %4s %4s %8s %7s %8s %8s %8s %6s %7s\n", "QBER", "mode", "rate", "thr",
           "Mbit/s", "f", "f_plan", "FER", "iter", "msgs", "punct/short");
    kagi_ldpc_code *codes[9] = {0}; /* by (rate - 50) / 5 */
    for (size_t k = 0; k < 4; k++) {
        if (only > 0 && fabs(qs[k] - only) > 1e-9) continue;
        for (size_t md = 0; md < nmodes; md++) {
            double f_start = modes[md].f_start > 0 ? modes[md].f_start : kagi_ldpc_f_auto(qs[k]);
            unsigned rate = kagi_ldpc_rate_for(qs[k], f_start);
            size_t ri = (rate - 50) / 5;
            if (!codes[ri]) {
                double t0 = kagi__now();
                if (kagi_ldpc_code_new(&codes[ri], rate, z, 1)) return 1;
                printf("  (code rate %u%%: built in %.3f s)\n", rate, kagi__now() - t0);
            }
            double t0 = kagi__now();
            kagi_ldpc_plan *pl;
            if (kagi_ldpc_plan_new(&pl, codes[ri], qs[k], f_start, 7)) {
                fprintf(stderr, "plan: %s\n", kagi_errdetail());
                return 1;
            }
            double tplan = kagi__now() - t0;
            kagi_ldpc_plan_info pi;
            kagi_ldpc_plan_get_info(pl, &pi);
            kagi_ldpc_params p = {.f_step = modes[md].f_step, .max_rounds = modes[md].max_rounds,
                                  .iter_first = modes[md].iter_first,
                                  .iter_round = modes[md].iter_round};
            for (unsigned th = 1; th <= 2; th++) {
                row o = run(pl, &r, qs[k], frames, th, KAGI_LDPC_IMPL_AUTO, &p);
                printf("%4.0f%% %-9s %3u%% %4u %8.1f %7.4f %8.4f %4zu/%-3zu %8.1f %6.1f %zu/%zu%s\n",
                       100 * qs[k], modes[md].name, rate, th, o.mbps, o.f, pi.f_plan, o.bad,
                       o.frames, o.iters, o.msgs, pi.punctured, pi.shortened,
                       th == 1 ? "" : "");
                fflush(stdout);
            }
            if (md == 0) printf("  (plan for 10^6-bit frames: %.3f s)\n", tplan);
            kagi_ldpc_plan_free(pl);
        }
    }

    if (!codes[6] && kagi_ldpc_code_new(&codes[6], 80, z, 1)) return 1; /* rows below */
    /* AVX2 against scalar (the naive, portable kernel): the same frame. */
    printf("\ndecoder kernels, one frame at QBER 2%%, 1 thread, fast mode\n");
    {
        unsigned rate = kagi_ldpc_rate_for(0.02, 1.3);
        size_t ri = (rate - 50) / 5;
        kagi_ldpc_plan *pl;
        if (!codes[ri] && kagi_ldpc_code_new(&codes[ri], rate, z, 1)) return 1;
        if (kagi_ldpc_plan_new(&pl, codes[ri], 0.02, 1.3, 7)) return 1;
        kagi_ldpc_params p = {.max_rounds = 20};
        for (int impl = KAGI_LDPC_IMPL_SCALAR; impl <= KAGI_LDPC_IMPL_AVX2; impl++) {
            kagi_rng r2;
            kagi_rng_seed(&r2, 99);
            row o = run(pl, &r2, 0.02, 1, 1, impl, &p);
            printf("  %-6s %8.2f Mbit/s, %.1f iterations, %zu/%zu frames bad\n",
                   impl == KAGI_LDPC_IMPL_SCALAR ? "scalar" : "avx2", o.mbps, o.iters, o.bad,
                   o.frames);
        }
        kagi_ldpc_plan_free(pl);
    }
    /* The decoder alone: ns per edge (one of H) per iteration, on a frame
     * it cannot decode (QBER ~3 % on rate 80, no reveals), so every run
     * does all its iterations including the early-termination checks;
     * best of 5 runs (this VM is noisy). */
    {
        kagi_ldpc_code_info ci;
        kagi_ldpc_code_get_info(codes[6], &ci);
        int8_t *llr = malloc(ci.n);
        uint64_t *syn = calloc(ci.m / 64, 8), *out = malloc(ci.n / 8);
        if (!llr || !syn || !out) return 1;
        for (size_t v = 0; v < ci.n; v++) llr[v] = kagi_rng_below(&r, 100) < 3 ? -21 : 21;
        printf("\ndecoder alone, rate 80, n = %zu, %zu edges:", ci.n, ci.ones);
        for (int impl = KAGI_LDPC_IMPL_SCALAR; impl <= KAGI_LDPC_IMPL_AVX2; impl++) {
            kagi_ldpc_decoder *d;
            if (kagi_ldpc_decoder_new(&d, codes[6], impl, 0)) continue;
            unsigned iters = impl == KAGI_LDPC_IMPL_SCALAR ? 2 : 20, reps = impl == KAGI_LDPC_IMPL_SCALAR ? 1 : 5;
            double best = 1e30;
            for (unsigned k = 0; k < reps; k++) {
                unsigned it = 0;
                kagi_ldpc_decoder_start(d, llr, syn);
                double t0 = kagi__now();
                int rc = kagi_ldpc_decoder_run(d, iters, out, &it);
                double t = kagi__now() - t0;
                if (rc != KAGI_ERR_RECONCILE || it != iters) return 1;
                if (t < best) best = t;
            }
            printf(" %s %.3f ns/edge/iteration", impl == KAGI_LDPC_IMPL_SCALAR ? "scalar" : "avx2",
                   best * 1e9 / ((double)ci.ones * iters));
            kagi_ldpc_decoder_free(d);
        }
        printf("\n");
        free(llr);
        free(syn);
        free(out);
    }
    /* Alice's side alone: syndromes of 10^6-bit frames (rate 80). */
    {
        kagi_ldpc_code_info ci;
        kagi_ldpc_code_get_info(codes[6], &ci);
        uint64_t *x = malloc(ci.n / 8), *s = malloc(ci.m / 8);
        if (!x || !s) return 1;
        for (size_t w = 0; w < ci.n / 64; w++) x[w] = kagi_rng_next(&r);
        const int reps = 50;
        double t0 = kagi__now();
        for (int i = 0; i < reps; i++) kagi_ldpc_syndrome(codes[6], x, s);
        double t = kagi__now() - t0;
        printf("\nsyndrome, rate 80, n = %zu: %.3f ms per frame, %.0f Mbit/s of frame\n", ci.n,
               1e3 * t / reps, (double)ci.n * reps / t / 1e6);
        free(x);
        free(s);
    }
    for (size_t i = 0; i < 9; i++) kagi_ldpc_code_free(codes[i]);
    return 0;
}
