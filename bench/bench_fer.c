/* Cascade's frame error rate before verification: the share of frames it
 * leaves with errors, which verification then discards. Usage:
 *   bench_fer [FRAME_BITS [FRAMES [QBER]]]   (default 65536 3000 0.02) */
#include <stdio.h>
#include <stdlib.h>

#include "kagi/cascade.h"
#include "kagi/error.h"
#include "kagi/estimate.h"

int main(int argc, char **argv)
{
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
    if (bad == 0) printf("  none seen: FER < %.2g at 95%% confidence (rule of three)\n", 3.0 / frames);
    else printf("  FER %.2g\n", (double)bad / frames);
    kagi_bits_free(a);
    kagi_bits_free(b);
    return 0;
}
