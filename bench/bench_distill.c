/* The whole pipeline, both parties in one process (two threads): per-stage
 * throughput in Mbit/s of sifted (estimate) or reconciled bits (the rest),
 * efficiency, round trips, authentication cost and final key length. */
#include <stdio.h>
#include <stdlib.h>

#include "kagi/distill.h"
#include "kagi/error.h"

static void pair(size_t n, double q, uint64_t seed, kagi_bits **a, kagi_bits **b)
{
    kagi_rng r;
    kagi_rng_seed(&r, seed);
    if (kagi_bits_new(a, n) || kagi_bits_new(b, n)) exit(1);
    for (size_t i = 0; i < KAGI_WORDS(n); i++) (*a)->w[i] = kagi_rng_next(&r);
    if (n & 63) (*a)->w[n >> 6] &= ((uint64_t)1 << (n & 63)) - 1;
    for (size_t i = 0; i < KAGI_WORDS(n); i++) (*b)->w[i] = (*a)->w[i];
    for (size_t i = 0; i < n; i++)
        if (kagi_rng_uniform(&r) < q) kagi_bits_flip(*b, i);
}

int main(void)
{
    size_t ns[] = {1000000, 10000000};
    double qs[] = {0.01, 0.02, 0.05};
    printf("%10s %6s | %9s %9s %9s %9s | %6s %6s %9s %10s %9s\n", "sifted", "QBER", "est Mb/s",
           "rec Mb/s", "ver Mb/s", "PA Mb/s", "f", "trips", "auth bits", "final bits", "total s");
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            kagi_bits *a, *b, *fa = NULL, *fb = NULL;
            pair(ns[i], qs[j], 1 + (uint64_t)j, &a, &b);
            kagi_distill_params p = {0};
            kagi_distill_report r;
            int rc = kagi_distill_local(a, b, &p, &fa, &fb, &r, NULL);
            if (rc) {
                printf("failed: %s\n", kagi_errdetail());
                return 1;
            }
            double t = r.seconds[0] + r.seconds[1] + r.seconds[2] + r.seconds[3];
            printf("%10zu %5.1f%% | %9.1f %9.1f %9.1f %9.1f | %6.3f %6zu %9zu %10zu %9.3f\n",
                   r.sifted_bits, 100 * qs[j], r.sifted_bits / r.seconds[0] / 1e6,
                   r.reconciled_bits / r.seconds[1] / 1e6, r.reconciled_bits / r.seconds[2] / 1e6,
                   r.reconciled_bits / r.seconds[3] / 1e6, r.efficiency, r.cascade.channel_uses,
                   r.auth_bits_consumed, r.final_bits, t);
            kagi_bits_free(a);
            kagi_bits_free(b);
            kagi_bits_free(fa);
            kagi_bits_free(fb);
        }
    return 0;
}
