/* The whole pipeline, both parties in one process (two threads): per-stage
 * throughput in Mbit/s of sifted (estimate) or reconciled bits (the rest),
 * efficiency, round trips, authentication cost and final key length, with
 * Cascade and with LDPC reconciliation (for LDPC also the frames, frames
 * failed, mean and largest decoder iterations and the LDPC messages).
 *
 *   bench_distill [cascade|ldpc|both] [N ...]   (default: both, 10^6 and 10^7)
 *   KAGI_LDPC_F=1.22 bench_distill ldpc 10000000   (LDPC's first efficiency)
 * LDPC decodes on one thread per CPU online and each party amplifies on
 * half of them (as kagi distill does); KAGI_THREADS=N to choose. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kagi/distill.h"
#include "kagi/error.h"
#include "internal.h" /* kagi__cpus */

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

int main(int argc, char **argv)
{
    size_t ns[16] = {1000000, 10000000};
    int nn = 2, lo = 0, hi = 1;
    int a1 = 1;
    if (argc > 1 && strcmp(argv[1], "cascade") == 0) hi = 0, a1 = 2;
    else if (argc > 1 && strcmp(argv[1], "ldpc") == 0) lo = 1, a1 = 2;
    else if (argc > 1 && strcmp(argv[1], "both") == 0) a1 = 2;
    if (argc > a1) {
        nn = 0;
        for (int i = a1; i < argc && nn < 16; i++) ns[nn++] = (size_t)strtod(argv[i], NULL);
    }
    const char *fe = getenv("KAGI_LDPC_F");
    /* 0: the library's defaults (decoding on every CPU online, each party
     * amplifying on half) */
    unsigned nt = getenv("KAGI_THREADS") ? (unsigned)atoi(getenv("KAGI_THREADS")) : 0;
    printf("%u threads\n", nt ? nt : kagi__cpus(64));
    double qs[] = {0.01, 0.02, 0.05};
    printf("%-7s %10s %6s | %9s %9s %9s %9s | %6s %6s %9s %10s %8s | %s\n", "method", "sifted",
           "QBER", "est Mb/s", "rec Mb/s", "ver Mb/s", "PA Mb/s", "f", "trips", "auth bits",
           "final bits", "total s", "LDPC frames/failed, iterations mean/max, messages");
    for (int m = lo; m <= hi; m++)
        for (int i = 0; i < nn; i++)
            for (int j = 0; j < 3; j++) {
                kagi_bits *a, *b, *fa = NULL, *fb = NULL;
                pair(ns[i], qs[j], 1 + (uint64_t)j, &a, &b);
                kagi_distill_params p = {0};
                p.method = m ? KAGI_RECONCILE_LDPC : KAGI_RECONCILE_CASCADE;
                if (fe) p.ldpc.f_start = strtod(fe, NULL);
                p.ldpc.threads = nt;
                p.amplify_threads = (nt + 1) / 2;
                kagi_distill_report r;
                int rc = kagi_distill_local(a, b, &p, &fa, &fb, &r, NULL);
                if (rc) {
                    printf("failed: %s\n", kagi_errdetail());
                    return 1;
                }
                double t = r.seconds[0] + r.seconds[1] + r.seconds[2] + r.seconds[3];
                size_t trips = m ? r.ldpc.round_trips : r.cascade.channel_uses;
                printf("%-7s %10zu %5.1f%% | %9.1f %9.1f %9.1f %9.1f | %6.3f %6zu %9zu %10zu %8.3f",
                       m ? "ldpc" : "cascade", r.sifted_bits, 100 * qs[j],
                       r.sifted_bits / r.seconds[0] / 1e6, r.reconciled_bits / r.seconds[1] / 1e6,
                       r.reconciled_bits / r.seconds[2] / 1e6,
                       r.reconciled_bits / r.seconds[3] / 1e6, r.efficiency, trips,
                       r.auth_bits_consumed, r.final_bits, t);
                if (m)
                    printf(" | %zu/%zu, %.1f/%u, %zu", r.ldpc.frames, r.ldpc.failed_frames,
                           (double)r.ldpc.iterations / (double)r.ldpc.frames, r.ldpc.iter_max,
                           r.ldpc.messages);
                printf("\n");
                /* where the cores went: CPU seconds of both parties per stage */
                printf("        cpu s (cores busy): est %.3f (%.2f), rec %.3f (%.2f), ver %.3f (%.2f), "
                       "PA %.3f (%.2f)\n",
                       r.cpu_seconds[0], r.cpu_seconds[0] / r.seconds[0], r.cpu_seconds[1],
                       r.cpu_seconds[1] / r.seconds[1], r.cpu_seconds[2], r.cpu_seconds[2] / r.seconds[2],
                       r.cpu_seconds[3], r.cpu_seconds[3] / r.seconds[3]);
                fflush(stdout);
                kagi_bits_free(a);
                kagi_bits_free(b);
                kagi_bits_free(fa);
                kagi_bits_free(fb);
            }
    return 0;
}
