/* Link simulator speed: the gap sampler (kagi_linksim_run) against the
 * per-pulse reference at 10, 50 and 100 km with the default link
 * (kagi_link_defaults: Lim et al. 2014's system, 1 GHz), both writing
 * their raw files. Run: build/bench/bench_linksim [DIR] (files go to DIR,
 * default /tmp; each run's are removed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kagi/error.h"
#include "kagi/keyrate.h"
#include "kagi/linksim.h"

int kagi__linksim_run_naive(const kagi_linksim *p, const char *alice_path, const char *bob_path,
                            kagi_linksim_stats *st);

static char pa[512], pb[512];

/* Best of reps runs (by wall time of the whole call). */
static kagi_linksim_stats bench(const kagi_linksim *s, int naive, int reps)
{
    kagi_linksim_stats best;
    memset(&best, 0, sizeof best);
    for (int i = 0; i < reps; i++) {
        kagi_linksim_stats st;
        int rc = naive ? kagi__linksim_run_naive(s, pa, pb, &st) : kagi_linksim_run(s, pa, pb, &st);
        unlink(pa);
        unlink(pb);
        if (rc) {
            fprintf(stderr, "bench_linksim: %s\n", kagi_errdetail());
            exit(1);
        }
        if (!i || st.seconds < best.seconds) best = st;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    snprintf(pa, sizeof pa, "%s/bench-linksim-%d-a.raw", dir, (int)getpid());
    snprintf(pb, sizeof pb, "%s/bench-linksim-%d-b.raw", dir, (int)getpid());
    printf("default link (Lim et al. 2014, 1 GHz, after-pulses 4%%), files in %s; best of 3\n\n", dir);
    printf("%6s  %-9s %9s %11s %12s %12s %10s %9s %8s\n", "km", "sampler", "pulses", "detections",
           "pulses/s", "(sampling)", "det/s", "ns/det", "B/rec");
    const double km[3] = {10, 50, 100};
    for (int d = 0; d < 3; d++) {
        kagi_linksim s;
        memset(&s, 0, sizeof s);
        kagi_link_defaults(&s.link);
        s.link.distance_km = km[d];
        s.seed = 1;
        /* About 4e7 detections for the gap sampler, 2e7 pulses per-pulse. */
        double p = s.link.mu[0] * kagi_link_eta(&s.link) * s.link.p_mu[0];
        s.pulses = (uint64_t)(4e7 / p);
        kagi_linksim_stats f = bench(&s, 0, 3);
        s.pulses = 20000000;
        kagi_linksim_stats n = bench(&s, 1, 1);
        const kagi_linksim_stats *r[2] = {&f, &n};
        for (int i = 0; i < 2; i++)
            printf("%6.0f  %-9s %9.3g %11.4g %12.3g %12.3g %10.3g %9.1f %8.2f\n", km[d],
                   i ? "per-pulse" : "gap", (double)r[i]->pulses, (double)r[i]->detections,
                   (double)r[i]->pulses / r[i]->seconds, (double)r[i]->pulses / r[i]->sample_seconds,
                   (double)r[i]->detections / r[i]->seconds,
                   r[i]->sample_seconds * 1e9 / (double)r[i]->detections,
                   (double)(r[i]->alice_bytes + r[i]->bob_bytes) / (2.0 * (double)r[i]->detections));
        printf("%6s  gap sampler: %.0fx the pulses/s of the per-pulse loop\n", "",
               ((double)f.pulses / f.seconds) / ((double)n.pulses / n.seconds));
    }
    printf("\npulses/s: whole call (sampling, writing, fsync, rename); (sampling): the\n"
           "sampling loop with its buffered writes only; ns/det: sampling time per detection\n");
    return 0;
}
