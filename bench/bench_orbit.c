/* Orbit speed: SGP4 at 1 s steps for a year (near-Earth and deep-space),
 * the same with look angles, and every pass of a LEO satellite over a
 * station in a year. Targets: a year of 1 s states under 10 s, a year of
 * passes under 1 s, each on one core. Run: build/bench/bench_orbit */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kagi/error.h"
#include "kagi/orbit.h"

/* Times are this thread's CPU seconds, so other work on a shared machine
 * does not inflate them; the wall clock is printed alongside. */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static kagi_sat *load(const char *l1, const char *l2)
{
    kagi_tle t;
    kagi_sat *s = NULL;
    if (kagi_tle_parse(l1, l2, 0, &t) || kagi_sat_new(&t, &s)) {
        fprintf(stderr, "bench_orbit: %s\n", kagi_errdetail());
        exit(1);
    }
    return s;
}

/* SGP4 states at 1 s steps over `days`, extrapolated to a year when
 * days < 365. */
static void bench_propagate(const char *what, kagi_sat *s, double days)
{
    double r[3], v[3], sink = 0;
    long n = (long)(days * 86400.0);
    double t0 = now(), w0 = wall();
    for (long k = 0; k < n; k++) {
        if (kagi_sat_propagate(s, (double)k / 60.0, r, v)) {
            fprintf(stderr, "bench_orbit: %s\n", kagi_errdetail());
            exit(1);
        }
        sink += r[0] + v[2];
    }
    double dt = now() - t0, dw = wall() - w0;
    printf("  %-36s %9ld states in %7.3f s CPU (%7.3f s wall): %6.1f ns/state;"
           " a year at 1 s steps %6.2f s%s\n",
           what, n, dt, dw, dt / (double)n * 1e9, dt / (double)n * 365.0 * 86400.0,
           days < 365 ? " (extrapolated)" : "");
    if (sink == 42.0) printf("!\n");
}

int main(void)
{
    /* A 500 km sun-synchronous LEO (examples/tle/micius-like.tle), the
     * ISS example, and a geostationary satellite of the verification set
     * (24 h resonance: the deep-space integrator). */
    kagi_sat *leo = load("1 99901U          24061.50000000  .00001000  00000-0  20000-4 0  1007",
                         "2 99901  97.4006  60.0000 0010000  90.0000 270.0000 15.21936487   108");
    kagi_sat *iss = load("1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927",
                         "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537");
    kagi_sat *geo = load("1 28626U 05008A   06176.46683397 -.00000205  00000-0  10000-3 0  2190",
                         "2 28626   0.0019 286.9433 0000335  13.7918  55.6504  1.00270176  4891");

    printf("SGP4 propagation, one core:\n");
    bench_propagate("LEO 500 km SSO, 365 days", leo, 365);
    bench_propagate("ISS, 30 days", iss, 30);
    bench_propagate("GEO (SDP4, 24 h resonance), 30 days", geo, 30);

    /* States plus Earth-fixed look angles and the Sun, as a link budget
     * sampling a pass would use them. */
    kagi_station st;
    if (kagi_station_init(&st, 37.378, 97.729, 3.15)) return 1;
    kagi_utc e = kagi_sat_tle(leo)->epoch;
    double t0 = now(), sink = 0;
    long n = 30L * 86400;
    for (long k = 0; k < n; k++) {
        kagi_look l;
        if (kagi_look_at(leo, &st, e + (double)k, &l)) return 1;
        sink += l.el_deg;
    }
    double dt = now() - t0;
    printf("  %-36s %9ld looks  in %7.3f s CPU: %6.1f ns/look (with the Sun's elevation)\n",
           "LEO look angles, 30 days", n, dt, dt / (double)n * 1e9);

    printf("Pass prediction, one year, one core:\n");
    const struct { const char *name; double lat, lon, alt; } sta[] = {
        {"Delingha (37.4N 97.7E)", 37.378, 97.729, 3.15},
        {"Graz (47.1N 15.5E)", 47.067, 15.493, 0.493},
        {"Svalbard (78.2N 15.4E)", 78.23, 15.4, 0.5},
    };
    const double mins[] = {0.0, 10.0};
    kagi_sat *sats[] = {leo, iss};
    const char *names[] = {"LEO 500 km SSO", "ISS"};
    double worst = 0;
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < sizeof sta / sizeof *sta; i++)
            for (int m = 0; m < 2; m++) {
                if (kagi_station_init(&st, sta[i].lat, sta[i].lon, sta[i].alt)) return 1;
                kagi_utc a = kagi_sat_tle(sats[k])->epoch;
                kagi_pass *p = NULL;
                size_t np = 0;
                t0 = now();
                double w0 = wall();
                if (kagi_passes(sats[k], &st, a, a + 365.0 * 86400, mins[m], &p, &np)) {
                    fprintf(stderr, "bench_orbit: %s\n", kagi_errdetail());
                    return 1;
                }
                dt = now() - t0;
                double dw = wall() - w0;
                if (dt > worst) worst = dt;
                printf("  %-15s over %-23s above %4.1f deg: %5zu passes in %6.3f s CPU"
                       " (%6.3f s wall)\n",
                       names[k], sta[i].name, mins[m], np, dt, dw);
                kagi_passes_free(p);
            }
    printf("  slowest year of passes: %.3f s CPU\n", worst);
    if (sink == 42.0) printf("!\n");
    kagi_sat_free(leo);
    kagi_sat_free(iss);
    kagi_sat_free(geo);
    return 0;
}
