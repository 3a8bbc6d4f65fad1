/* Toeplitz hashing speed: the fast path against the word-parallel version
 * it replaced, its two algorithms separately, libgf2x's full product, and
 * the batch on 1 and 2 threads. Run: build/bench/bench_amplify */
#include <gf2x.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kagi/amplify.h"
#include "kagi/bits.h"
#include "kagi/error.h"

/* Internal entry points of src/distill/amplify.c (see tests/test_amplify.c). */
int kagi__cpu_level(void);
int kagi__toeplitz_kara(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                        int level);
int kagi__toeplitz_fft(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                       int level);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int level;
static int run_kara(const uint64_t *s, const uint64_t *x, size_t n, size_t m, uint64_t *y)
{
    return kagi__toeplitz_kara(s, x, n, m, y, level);
}
static int run_fft(const uint64_t *s, const uint64_t *x, size_t n, size_t m, uint64_t *y)
{
    return kagi__toeplitz_fft(s, x, n, m, y, level);
}

static int run_mt2(const uint64_t *s, const uint64_t *x, size_t n, size_t m, uint64_t *y)
{
    return kagi_toeplitz_mt(s, x, n, m, y, 2);
}

/* libgf2x: the whole product S X, then bits n-1 .. n+m-2 of it. */
static int run_gf2x(const uint64_t *s, const uint64_t *x, size_t n, size_t m, uint64_t *y)
{
    size_t sw = KAGI_WORDS(n + m - 1), xw = KAGI_WORDS(n);
    _Static_assert(sizeof(unsigned long) == sizeof(uint64_t), "gf2x words are 64 bits");
    /* Copies with the bits past the ends cleared: gf2x multiplies them. */
    unsigned long *p = malloc((2 * (sw + xw)) * sizeof *p), *sa = p + sw + xw, *xa = sa + sw;
    if (!p) return KAGI_ERR_NOMEM;
    memcpy(sa, s, sw * sizeof *sa);
    memcpy(xa, x, xw * sizeof *xa);
    if ((n + m - 1) & 63) sa[sw - 1] &= (1ul << ((n + m - 1) & 63)) - 1;
    if (n & 63) xa[xw - 1] &= (1ul << (n & 63)) - 1;
    gf2x_mul(p, sa, sw, xa, xw);
    for (size_t w = 0; w < KAGI_WORDS(m); w++) {
        size_t b = n - 1 + 64 * w;
        uint64_t v = p[b >> 6] >> (b & 63);
        if (b & 63) v |= (uint64_t)p[(b >> 6) + 1] << (64 - (b & 63));
        y[w] = v;
    }
    if (m & 63) y[m >> 6] &= ((uint64_t)1 << (m & 63)) - 1;
    kagi_wipe(p, 2 * (sw + xw) * sizeof *p);
    free(p);
    return KAGI_OK;
}

typedef int (*impl)(const uint64_t *, const uint64_t *, size_t, size_t, uint64_t *);

/* Best of repeated runs (at least one, up to ~0.3 s), in seconds. */
static double time_impl(impl f, const uint64_t *s, const uint64_t *x, size_t n, size_t m, uint64_t *y)
{
    double best = 1e30, start = now();
    do {
        double t0 = now();
        if (f(s, x, n, m, y) != KAGI_OK) {
            fprintf(stderr, "bench_amplify: failed: %s\n", kagi_errdetail());
            exit(1);
        }
        double t = now() - t0;
        if (t < best) best = t;
    } while (now() - start < 0.3);
    return best;
}

static uint64_t *random_words(kagi_rng *r, size_t bits)
{
    size_t w = KAGI_WORDS(bits);
    uint64_t *p = malloc(w * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_amplify: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < w; i++) p[i] = kagi_rng_next(r);
    return p;
}

static void row(size_t n, size_t m, const char *alg, double secs)
{
    printf("%11zu %11zu  %-22s %12.3f %10.1f\n", n, m, alg, secs * 1e3, (double)n / secs / 1e6);
}

static void skip(size_t n, size_t m, const char *alg, const char *why)
{
    printf("%11zu %11zu  %-22s %12s %10s   (skipped: %s)\n", n, m, alg, "-", "-", why);
}

int main(void)
{
    level = kagi__cpu_level();
    printf("Toeplitz hashing y = T x, m = n/2; kernels: %s\n",
           level == 2 ? "VPCLMULQDQ+AVX2" : level == 1 ? "PCLMUL" : "portable C");
    printf("%11s %11s  %-22s %12s %10s\n", "n (bits)", "m (bits)", "algorithm", "time (ms)",
           "Mbit/s in");
    kagi_rng r;
    kagi_rng_seed(&r, 2026);
    double words_rate = 0; /* word-version cost per n*m, to predict its time */
    for (size_t n = 10000; n <= 100000000; n *= 10) {
        size_t m = n / 2;
        uint64_t *s = random_words(&r, n + m - 1), *x = random_words(&r, n);
        uint64_t *y = malloc(KAGI_WORDS(m) * sizeof *y), *ref = malloc(KAGI_WORDS(m) * sizeof *ref);
        row(n, m, "fast (kagi_toeplitz)", time_impl(kagi_toeplitz, s, x, n, m, ref));
        row(n, m, "fast, 2 threads (_mt)", time_impl(run_mt2, s, x, n, m, y));
        if (memcmp(y, ref, KAGI_WORDS(m) * sizeof *y)) printf("  MISMATCH 2 threads vs fast\n");
        double predicted = words_rate * (double)n * (double)m;
        if (words_rate == 0 || predicted < 15) { /* ~10 s, with slack for noise */
            double t = time_impl(kagi_toeplitz_words, s, x, n, m, y);
            words_rate = t / ((double)n * (double)m);
            row(n, m, "words (O(nm/64))", t);
            if (memcmp(y, ref, KAGI_WORDS(m) * sizeof *y)) printf("  MISMATCH words vs fast\n");
        } else {
            char why[64];
            snprintf(why, sizeof why, "would take ~%.0f s", predicted);
            skip(n, m, "words (O(nm/64))", why);
        }
        if (n <= 10000000) {
            row(n, m, "karatsuba only", time_impl(run_kara, s, x, n, m, y));
            if (memcmp(y, ref, KAGI_WORDS(m) * sizeof *y)) printf("  MISMATCH karatsuba vs fast\n");
        } else {
            skip(n, m, "karatsuba only", "~10 s, n^1.58");
        }
        row(n, m, "fft only", time_impl(run_fft, s, x, n, m, y));
        if (memcmp(y, ref, KAGI_WORDS(m) * sizeof *y)) printf("  MISMATCH fft vs fast\n");
        if (n <= 10000000) {
            row(n, m, "libgf2x full product", time_impl(run_gf2x, s, x, n, m, y));
            if (memcmp(y, ref, KAGI_WORDS(m) * sizeof *y)) printf("  MISMATCH gf2x vs fast\n");
        } else {
            skip(n, m, "libgf2x full product", "~60 s");
        }
        free(s);
        free(x);
        free(y);
        free(ref);
    }

    /* Batch: 16 blocks of n = 10^6 on 1 and 2 threads. */
    enum { JOBS = 16 };
    size_t n = 1000000, m = n / 2;
    kagi_toeplitz_job jobs[JOBS];
    for (int i = 0; i < JOBS; i++)
        jobs[i] = (kagi_toeplitz_job){random_words(&r, n + m - 1), random_words(&r, n), n, m,
                                      malloc(KAGI_WORDS(m) * sizeof(uint64_t)), 0};
    printf("\nbatch: %d blocks of n = %zu, m = %zu\n", JOBS, n, m);
    printf("%8s %12s %14s %9s\n", "threads", "time (ms)", "Mbit/s total", "speedup");
    double base = 0;
    for (int threads = 1; threads <= 2; threads++) {
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            if (kagi_toeplitz_batch(jobs, JOBS, threads) != KAGI_OK) {
                fprintf(stderr, "bench_amplify: batch failed: %s\n", kagi_errdetail());
                return 1;
            }
            double t = now() - t0;
            if (t < best) best = t;
        }
        if (threads == 1) base = best;
        printf("%8d %12.1f %14.1f %8.2fx\n", threads, best * 1e3, JOBS * (double)n / best / 1e6,
               base / best);
    }
    for (int i = 0; i < JOBS; i++) {
        free((void *)jobs[i].seed);
        free((void *)jobs[i].x);
        free(jobs[i].y);
    }
    return 0;
}
