/* Cascade throughput, efficiency and round trips, next to a textbook
 * Cascade (the baseline this engine replaced). Both parties run in this
 * thread; times are end to end, session set-up included. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kagi/estimate.h"
#include "kagi/cascade.h"
#include "kagi/error.h"

/* A pair through a BSC (kagi_bits_bsc_pair); the number of flips. */
static size_t make_pair(kagi_rng *r, size_t n, double q, kagi_bits **a, kagi_bits **b)
{
    size_t e = 0;
    if (kagi_bits_bsc_pair(r, n, q, a, b, &e) != KAGI_OK) abort();
    return e;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}


/* ---- textbook Cascade: 4 passes, k1 = 0.73/Q, k_i = 2 k_{i-1}, random
 * permutation tables, bit-by-bit parities, binary search without reuse of
 * parities; a correction re-checks the blocks of earlier passes. ---- */
typedef struct {
    const uint8_t *a;
    uint8_t *b;
    size_t n, leak;
    uint32_t *perm[4], *inv[4];
    size_t k[4];
    int npass;
} naive;

static int np_par(const uint8_t *x, const uint32_t *pm, size_t lo, size_t hi)
{
    int p = 0;
    for (size_t i = lo; i < hi; i++) p ^= x[pm[i]];
    return p;
}

/* Binary search in [lo, hi) of pass t's order; returns the corrected index. */
static size_t np_search(naive *c, int t, size_t lo, size_t hi)
{
    const uint32_t *pm = c->perm[t];
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        c->leak++; /* Alice's parity of the left half */
        if (np_par(c->a, pm, lo, mid) != np_par(c->b, pm, lo, mid)) hi = mid;
        else lo = mid;
    }
    c->b[pm[lo]] ^= 1;
    return pm[lo];
}

static void np_fix(naive *c, int t, size_t blk)
{
    size_t lo = blk * c->k[t], hi = lo + c->k[t] > c->n ? c->n : lo + c->k[t];
    size_t flipped = np_search(c, t, lo, hi);
    /* The cascade: the block of each other started pass holding the bit
     * flips parity; search it (its Alice parity was disclosed already). */
    for (int u = 0; u < c->npass; u++) {
        if (u == t) continue;
        size_t pos = c->inv[u][flipped];
        size_t bl = pos / c->k[u], l2 = bl * c->k[u], h2_ = l2 + c->k[u] > c->n ? c->n : l2 + c->k[u];
        if (np_par(c->a, c->perm[u], l2, h2_) != np_par(c->b, c->perm[u], l2, h2_)) np_fix(c, u, bl);
    }
}

static void naive_cascade(const uint8_t *a, uint8_t *b, size_t n, double q, kagi_rng *r, size_t *leak)
{
    naive c = {.a = a, .b = b, .n = n};
    size_t k = (size_t)(0.73 / q);
    for (int t = 0; t < 4; t++, k *= 2) {
        c.k[t] = k;
        c.perm[t] = malloc(n * sizeof(uint32_t));
        for (size_t i = 0; i < n; i++) c.perm[t][i] = (uint32_t)i;
        for (size_t i = n; t > 0 && i > 1; i--) {
            size_t j = (size_t)kagi_rng_below(r, i);
            uint32_t x = c.perm[t][i - 1];
            c.perm[t][i - 1] = c.perm[t][j];
            c.perm[t][j] = x;
        }
        c.inv[t] = malloc(n * sizeof(uint32_t));
        for (size_t i = 0; i < n; i++) c.inv[t][c.perm[t][i]] = (uint32_t)i;
        c.npass = t + 1;
        size_t nb = (n + k - 1) / k;
        c.leak += nb;
        for (size_t blk = 0; blk < nb; blk++) {
            size_t lo = blk * k, hi = lo + k > n ? n : lo + k;
            if (np_par(a, c.perm[t], lo, hi) != np_par(b, c.perm[t], lo, hi)) np_fix(&c, t, blk);
        }
    }
    for (int t = 0; t < 4; t++) {
        free(c.perm[t]);
        free(c.inv[t]);
    }
    *leak = c.leak;
}

int main(void)
{
    static const double qs[] = {0.005, 0.01, 0.02, 0.05, 0.08};
    const size_t n = 1000000;
    kagi_rng r;
    kagi_rng_seed(&r, 1);
    printf("kagi Cascade, n = %zu bits, one thread (Alice + Bob), set-up included\n", n);
    printf("%6s %9s %7s %7s %11s %11s %8s\n", "QBER", "Mbit/s", "f", "rounds", "bytes B->A",
           "bytes A->B", "residual");
    for (size_t k = 0; k < 5; k++) {
        const int reps = 5;
        double t = 0, f = 0;
        kagi_cascade_stats st = {0};
        size_t resid = 0;
        for (int i = 0; i < reps; i++) {
            kagi_bits *a, *b;
            size_t e = make_pair(&r, n, qs[k], &a, &b);
            kagi_cascade_params p = {.qber = qs[k], .seed = (uint64_t)i};
            double t0 = now();
            if (kagi_cascade_run(a, b, &p, &st)) {
                fprintf(stderr, "cascade: %s\n", kagi_errdetail());
                return 1;
            }
            t += now() - t0;
            f += (double)st.leak_bits / ((double)n * kagi_h2((double)e / (double)n));
            resid += kagi_bits_hamming(a->w, b->w, n) != 0;
            kagi_bits_free(a);
            kagi_bits_free(b);
        }
        printf("%5.1f%% %9.1f %7.4f %7zu %11zu %11zu %5zu/%d\n", 100 * qs[k],
               (double)n * reps / t / 1e6, f / reps, st.channel_uses, st.bytes_bob,
               st.bytes_alice, resid, reps);
    }

    /* Many frames in flight: 16 x 2^20 bits at 2%. */
    {
        size_t nn = (size_t)16 << 20;
        kagi_bits *a, *b;
        size_t e = make_pair(&r, nn, 0.02, &a, &b);
        kagi_cascade_params p = {.qber = 0.02, .seed = 7};
        kagi_cascade_stats st;
        double t0 = now();
        if (kagi_cascade_run(a, b, &p, &st)) return 1;
        double t = now() - t0;
        printf("\n16 frames x 2^20 bits, QBER 2%%: %.1f Mbit/s, f %.4f, %zu rounds, "
               "%zu/%zu bytes, residual %zu bits\n",
               (double)nn / t / 1e6, (double)st.leak_bits / ((double)nn * kagi_h2((double)e / (double)nn)),
               st.channel_uses, st.bytes_bob, st.bytes_alice, kagi_bits_hamming(a->w, b->w, nn));
        kagi_bits_free(a);
        kagi_bits_free(b);
    }

    /* Baseline: textbook Cascade on 10^5 bits (it is slow), QBER 2% and 5%. */
    printf("\ntextbook Cascade (4 passes, k1 = 0.73/Q, tables, no parity reuse) vs kagi, n = 100000\n");
    printf("%6s %14s %9s %14s %9s\n", "QBER", "naive Mbit/s", "naive f", "kagi Mbit/s", "kagi f");
    for (size_t k = 2; k < 4; k++) {
        size_t m = 100000;
        kagi_bits *a, *b;
        size_t e = make_pair(&r, m, qs[k], &a, &b);
        uint8_t *ab = malloc(m), *bb = malloc(m);
        for (size_t i = 0; i < m; i++) {
            ab[i] = (uint8_t)kagi_bits_get(a, i);
            bb[i] = (uint8_t)kagi_bits_get(b, i);
        }
        size_t leak;
        double t0 = now();
        naive_cascade(ab, bb, m, qs[k], &r, &leak);
        double tn = now() - t0;
        double hq = (double)m * kagi_h2((double)e / (double)m);
        kagi_cascade_params p = {.qber = qs[k], .seed = 5};
        kagi_cascade_stats st;
        t0 = now();
        if (kagi_cascade_run(a, b, &p, &st)) return 1;
        double tk = now() - t0;
        printf("%5.1f%% %14.2f %9.4f %14.1f %9.4f\n", 100 * qs[k], (double)m / tn / 1e6,
               (double)leak / hq, (double)m / tk / 1e6, (double)st.leak_bits / hq);
        free(ab);
        free(bb);
        kagi_bits_free(a);
        kagi_bits_free(b);
    }
    return 0;
}
