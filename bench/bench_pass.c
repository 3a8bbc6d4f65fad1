/* Pass-key speed: a year of passes of a Micius-like satellite over
 * Xinglong, each sampled every second and modelled (channel, detection
 * model, Lim et al. bound), with and without scintillation averaging.
 * Run: build/bench/bench_pass */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kagi/error.h"
#include "kagi/freespace.h"
#include "kagi/orbit.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(void)
{
    fprintf(stderr, "bench_pass: %s\n", kagi_errdetail());
    exit(1);
}

static void year(kagi_sat *s, const kagi_station *st, const kagi_fso_link *l, const char *what)
{
    kagi_utc t0 = kagi_utc_from_civil(2016, 12, 1, 0, 0, 0);
    kagi_pass *ps = NULL;
    size_t np = 0, samples = 0;
    double key = 0, a = now();
    if (kagi_passes(s, st, t0, t0 + 365.25 * 86400, 10, &ps, &np)) die();
    double b = now();
    for (size_t i = 0; i < np; i++) {
        kagi_fso_pass fp;
        if (kagi_fso_pass_run(s, st, &ps[i], l, 1.0, &fp)) die();
        samples += fp.npoints;
        key += fp.key.key_bits;
        kagi_fso_pass_clear(&fp);
    }
    double c = now();
    printf("%-28s %4zu passes, %7zu samples: passes %.3f s, link and key %.3f s "
           "(%.2f us/sample), key %.3g bit/year\n",
           what, np, samples, b - a, c - b, 1e6 * (c - b) / (double)samples, key);
    kagi_passes_free(ps);
}

int main(void)
{
    kagi_tle t;
    kagi_sat *s = NULL;
    if (kagi_tle_parse("1 99902U          16354.50000000  .00001000  00000-0  20000-4 0  1004",
                       "2 99902  97.4006 266.3443 0010000  90.0000  44.8139 15.21936487   101", 0,
                       &t) ||
        kagi_sat_new(&t, &s))
        die();
    kagi_station st;
    if (kagi_station_init(&st, 40.3955, 117.5775, 0.890)) die();
    kagi_fso_link l;
    if (kagi_fso_preset("micius", &l)) die();
    year(s, &st, &l, "micius, 1 s steps");
    l.fso.scintillation_index = 0.3;
    year(s, &st, &l, "with scintillation 0.3");
    kagi_sat_free(s);
    return 0;
}
