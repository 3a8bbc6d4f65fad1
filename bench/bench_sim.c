/* Benchmark of kagi sim (docs/sim.md): a generated national network of
 * 1,000 trusted nodes and 3,000 fibre links (decoy-BB84 finite-key model,
 * 30-75 km each), 50 of the nodes ground stations under 20 Micius-like
 * satellites (500 km sun-synchronous orbits in 20 planes; every satellite
 * linked to every station, night passes only for half of them),
 * 10,000 demands between random node pairs (Poisson requests of 4 kbit
 * keys, every 15 minutes on average, wait up to 10 minutes), 200 fibre
 * cuts and repairs, 20 eavesdroppers and 20 node outages, simulated for
 * 30 days on one core. Target: under 60 s and 2 GiB. Prints events per
 * second, wall time, peak RSS and the passes computed.
 *
 *   build/bench/bench_sim [NODES LINKS DEMANDS DAYS [SATELLITES STATIONS]]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kagi/error.h"
#include "kagi/orbit.h"
#include "kagi/scenario.h"
#include "kagi/sim.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define CHECK(expr)                                                                          \
    do {                                                                                     \
        int rc_ = (expr);                                                                    \
        if (rc_ != KAGI_OK) {                                                                \
            fprintf(stderr, "bench_sim: %s: %s (%s)\n", #expr, kagi_strerror(rc_),           \
                    kagi_errdetail());                                                       \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    size_t nn = 1000, nl = 3000, nd = 10000, nsat = 20, ngs = 50;
    double days = 30;
    if (argc == 5 || argc == 7) {
        nn = strtoul(argv[1], NULL, 10);
        nl = strtoul(argv[2], NULL, 10);
        nd = strtoul(argv[3], NULL, 10);
        days = strtod(argv[4], NULL);
    }
    if (argc == 7) {
        nsat = strtoul(argv[5], NULL, 10);
        ngs = strtoul(argv[6], NULL, 10);
    }
    if (ngs > nn) ngs = nn;
    kagi_rng rng;
    kagi_rng_seed(&rng, 42);
    kagi_scenario *sc;
    CHECK(kagi_scenario_new(&sc));
    snprintf(sc->name, sizeof sc->name, "bench: %zu nodes, %zu links, %zu demands", nn, nl, nd);
    sc->duration_s = days * 86400;
    sc->sample_s = 6 * 3600;
    sc->seed = 1;
    /* Nodes on a jittered grid 45 km apart around 36 N 138 E. */
    size_t cols = (size_t)ceil(sqrt((double)nn * 1.6)), rows = (nn + cols - 1) / cols;
    const double km_lat = 1 / 111.2, km_lon = 1 / (111.2 * cos(36 * 3.14159265358979 / 180));
    for (size_t i = 0; i < nn; i++) {
        kagi_sc_node n = {.trusted = 1, .capacity_bits = 4000000000ull};
        snprintf(n.name, sizeof n.name, "n%zu", i);
        double x = (double)(i % cols) * 45 + (kagi_rng_uniform(&rng) - 0.5) * 12;
        double y = (double)(i / cols) * 45 + (kagi_rng_uniform(&rng) - 0.5) * 12;
        n.lat_deg = 36 - (double)rows * 45 * km_lat / 2 + y * km_lat;
        n.lon_deg = 138 - (double)cols * 45 * km_lon / 2 + x * km_lon;
        CHECK(kagi_scenario_add_node(sc, &n, NULL));
    }
    /* Links: the grid's horizontal and vertical neighbours, then random
     * diagonals until nl (a connected, planar-ish mesh like a national
     * fibre plant). */
    unsigned char *used = calloc(nn * 4, 1); /* right, down, diag, anti-diag */
    size_t made = 0;
    for (size_t i = 0; i < nn && made < nl; i++) {
        size_t c = i % cols, r = i / cols;
        size_t to[2] = {c + 1 < cols && i + 1 < nn ? i + 1 : SIZE_MAX,
                        r + 1 < rows && i + cols < nn ? i + cols : SIZE_MAX};
        for (int k = 0; k < 2 && made < nl; k++) {
            if (to[k] == SIZE_MAX) continue;
            kagi_sc_link l;
            kagi_sc_link_defaults(&l);
            l.a = i;
            l.b = to[k];
            l.route_factor = 1.3;
            snprintf(l.name, sizeof l.name, "l%zu", made);
            CHECK(kagi_scenario_add_link(sc, &l, NULL));
            used[i * 4 + (size_t)k] = 1;
            made++;
        }
    }
    for (size_t tries = 0; made < nl && tries < 100 * nl; tries++) {
        size_t i = kagi_rng_below(&rng, nn), c = i % cols, r = i / cols;
        int anti = (int)kagi_rng_below(&rng, 2);
        if (r + 1 >= rows || (anti ? c == 0 : c + 1 >= cols)) continue;
        size_t j = i + cols + (anti ? (size_t)-1 : 1);
        if (j >= nn || used[i * 4 + 2 + (size_t)anti]) continue;
        used[i * 4 + 2 + (size_t)anti] = 1;
        kagi_sc_link l;
        kagi_sc_link_defaults(&l);
        l.a = i;
        l.b = j;
        l.route_factor = 1.2;
        snprintf(l.name, sizeof l.name, "l%zu", made);
        CHECK(kagi_scenario_add_link(sc, &l, NULL));
        made++;
    }
    free(used);
    for (size_t i = 0; i < nd; i++) {
        kagi_sc_demand d;
        kagi_sc_demand_defaults(&d);
        snprintf(d.name, sizeof d.name, "d%zu", i);
        d.src = kagi_rng_below(&rng, nn);
        do d.dst = kagi_rng_below(&rng, nn); while (d.dst == d.src);
        d.key_bits = 4096;
        d.rate_bps = 4096.0 / 900; /* a key every 15 minutes on average */
        d.poisson = 1;
        d.timeout_s = 600;
        d.split = i % 50 == 0 ? 2 : 1;
        CHECK(kagi_scenario_add_demand(sc, &d, NULL));
    }
    for (size_t i = 0; i < 200; i++) {
        kagi_sc_event e = {.kind = KAGI_SC_CUT, .target = kagi_rng_below(&rng, made)};
        e.at_s = kagi_rng_uniform(&rng) * sc->duration_s;
        CHECK(kagi_scenario_add_event(sc, &e));
        e.kind = KAGI_SC_REPAIR;
        e.at_s += 3600 + kagi_rng_uniform(&rng) * 86400;
        CHECK(kagi_scenario_add_event(sc, &e));
    }
    for (size_t i = 0; i < 20; i++) {
        kagi_sc_event e = {.kind = KAGI_SC_EAVESDROP, .target = kagi_rng_below(&rng, made),
                           .qber = 0.25};
        e.at_s = kagi_rng_uniform(&rng) * sc->duration_s;
        CHECK(kagi_scenario_add_event(sc, &e));
        kagi_sc_event n = {.kind = KAGI_SC_NODE_DOWN, .target = kagi_rng_below(&rng, nn)};
        n.at_s = kagi_rng_uniform(&rng) * sc->duration_s;
        CHECK(kagi_scenario_add_event(sc, &n));
        n.kind = KAGI_SC_NODE_UP;
        n.at_s += 7200;
        CHECK(kagi_scenario_add_event(sc, &n));
    }
    /* Ground stations: every (nn / ngs)-th node. Satellites: the orbit
     * of examples/tle/micius-2016-like.tle in 20 planes 9 degrees apart,
     * each a different phase; the run starts at its epoch (December: long
     * nights over the network). */
    for (size_t g = 0; g < ngs; g++) {
        kagi_sc_station st;
        kagi_sc_station_defaults(&st);
        st.node = g * nn / ngs + (nn / ngs) / 2;
        st.alt_m = 100;
        CHECK(kagi_scenario_add_station(sc, &st, NULL));
    }
    kagi_tle base;
    CHECK(kagi_tle_parse("1 99902U          16354.50000000  .00001000  00000-0  20000-4 0  1004",
                         "2 99902  97.4006 266.3443 0010000  90.0000  44.8139 15.21936487   101",
                         0, &base));
    sc->start_utc = base.epoch;
    for (size_t k = 0; k < nsat; k++) {
        kagi_sc_node n = {.trusted = 1, .capacity_bits = 4000000000ull};
        snprintf(n.name, sizeof n.name, "sat%zu", k);
        kagi_sc_satellite sa;
        kagi_sc_satellite_defaults(&sa);
        CHECK(kagi_scenario_add_node(sc, &n, &sa.node));
        sa.tle = base;
        sa.tle.raan_deg = fmod(base.raan_deg + 9.0 * (double)k, 360);
        sa.tle.mean_anomaly_deg = fmod(base.mean_anomaly_deg + 37.0 * (double)k, 360);
        sa.night_only = (int)(k % 2);
        CHECK(kagi_scenario_add_satellite(sc, &sa, NULL));
    }
    CHECK(kagi_scenario_link_satellites(sc));
    CHECK(kagi_scenario_check(sc));
    double t0 = now_s();
    kagi_sim *s;
    CHECK(kagi_sim_new(sc, NULL, &s));
    double t1 = now_s();
    CHECK(kagi_sim_run(s));
    double t2 = now_s();
    kagi_sim_totals t;
    kagi_sim_get_totals(s, &t);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("network: %zu nodes, %zu fibre links, %zu satellites over %zu ground stations (%zu "
           "satellite links), %zu demands, %.0f days simulated\n", nn, made, nsat, ngs,
           sc->nlinks - made, nd, days);
    printf("set-up (key rates of every link, every satellite pass and its key): %.2f s\n",
           t1 - t0);
    printf("     %llu passes computed (%llu at night, %llu used, %llu giving key; %.3g bits)\n",
           (unsigned long long)t.passes, (unsigned long long)t.passes_night,
           (unsigned long long)t.passes_used, (unsigned long long)t.passes_with_key,
           (double)t.pass_key_bits);
    printf("run: %.2f s wall, %llu events (%.3g events/s), %llu requests (%.3g requests/s)\n",
           t2 - t1, (unsigned long long)t.events, (double)t.events / (t2 - t1),
           (unsigned long long)t.requests, (double)t.requests / (t2 - t1));
    printf("     %llu key blocks accounted lazily, %llu route computations, %llu retries\n",
           (unsigned long long)t.blocks, (unsigned long long)t.routes,
           (unsigned long long)t.retries);
    uint64_t sat_relay = 0, sat_gen = 0;
    for (size_t i = made; i < sc->nlinks; i++) {
        kagi_sim_link_stats ls;
        kagi_sim_link(s, i, &ls);
        sat_relay += ls.relay_messages;
        sat_gen += ls.generated_bits;
    }
    printf("     satellite links: %.3g bits generated, %llu relay hop messages\n", (double)sat_gen,
           (unsigned long long)sat_relay);
    printf("outcome: %llu served, %llu blocked, %llu timed out, %llu waiting; invariants hold\n",
           (unsigned long long)t.served, (unsigned long long)t.blocked,
           (unsigned long long)t.timed_out, (unsigned long long)t.waiting);
    printf("total wall time %.2f s (target < 60 s); peak RSS %.1f MiB (target < 2048 MiB)\n",
           t2 - t0, (double)ru.ru_maxrss / 1024);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
    return t2 - t0 < 60 && ru.ru_maxrss < 2 * 1024 * 1024 ? 0 : 1;
}
