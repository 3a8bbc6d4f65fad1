/* kagi sim: simulate a QKD network described by a scenario file, print a
 * summary, and write metrics, time series and an HTML report. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kagi/error.h"
#include "kagi/orbit.h"
#include "kagi/scenario.h"
#include "kagi/sim.h"

static kagi_cli_opt kagi__opts[] = {
    {"scenario", "SCENARIO", "the network, in YAML (docs/scenario.md)", KAGI_CLI_POSITIONAL,
     NULL},
    {"until", "DURATION", "simulate this long instead of the scenario's duration (30d, 2h, 90s)",
     0, NULL},
    {"seed", "K", "random seed instead of the scenario's", 0, NULL},
    {"out", "DIR", "write metrics.json, links.csv, demands.csv, passes.csv and report.html there",
     0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

static double kagi__wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void kagi__progress(void *ctx, double now, double end)
{
    (void)ctx;
    const int w = 30;
    double f = end > 0 ? now / end : 1;
    if (f > 1) f = 1;
    int k = (int)(f * w + 0.5);
    char a[32], b[32];
    kagi_duration_format(floor(now), a, sizeof a);
    kagi_duration_format(end, b, sizeof b);
    fprintf(stderr, "\r  [%.*s%.*s] %3.0f%%  %s of %s simulated   ", k,
            "##############################", w - k, "..............................", 100 * f, a,
            b);
    fflush(stderr);
}

static const char *kagi__state(int st)
{
    static const char *const n[] = {"up", "cut", "eavesdropped", "node down"};
    return st >= 0 && st <= 3 ? n[st] : "?";
}

/* Satellite passes: one line per satellite link, then the totals. */
static void kagi__passes_summary(const kagi_sim *s, const kagi_sim_totals *t)
{
    const kagi_scenario *sc = kagi_sim_scenario(s);
    const kagi_sim_pass *ps;
    size_t np = kagi_sim_passes(s, &ps), cap = 40, shown = 0, nlinks = 0;
    char start[KAGI_UTC_STRLEN] = "?";
    if (kagi_utc_format(sc->start_utc, 0, start, sizeof start) != KAGI_OK) start[0] = 0;
    printf("\n%-28s %7s %7s %7s %9s %14s  %-20s\n", "satellite link", "passes", "night", "used",
           "with key", "pass key", "first key (UTC)");
    printf("%-28s %7s %7s %7s %9s %14s\n", "", "", "", "", "", "(bits)");
    for (size_t j = 0; j < np;) {
        size_t li = ps[j].link, n = 0, night = 0, used = 0, with = 0;
        unsigned long long key = 0;
        double first = INFINITY;
        for (; j < np && ps[j].link == li; j++) {
            n++;
            night += ps[j].light == KAGI_SIM_NIGHT;
            used += ps[j].used != 0;
            with += ps[j].used && ps[j].pass_key_bits > 0;
            key += ps[j].key_bits;
            if (ps[j].key_bits && ps[j].los_s < first) first = ps[j].los_s;
        }
        nlinks++;
        if (shown++ >= cap) continue;
        char when[KAGI_UTC_STRLEN] = "none";
        if (isfinite(first) && kagi_utc_format(sc->start_utc + first, 0, when, sizeof when))
            when[0] = 0;
        printf("%-28.28s %7zu %7zu %7zu %9zu %14llu  %s\n", sc->links[li].name, n, night, used,
               with, key, when);
    }
    if (nlinks > cap) printf("  ... %zu more satellite links\n", nlinks - cap);
    printf("%zu satellite%s over %zu ground station%s from %s: %llu passes, %llu at night, %llu "
           "used, %llu giving key; %llu bits in their windows\n", sc->nsatellites,
           sc->nsatellites == 1 ? "" : "s", sc->nstations, sc->nstations == 1 ? "" : "s", start,
           (unsigned long long)t->passes, (unsigned long long)t->passes_night,
           (unsigned long long)t->passes_used, (unsigned long long)t->passes_with_key,
           (unsigned long long)t->pass_key_bits);
}

static void kagi__summary(const kagi_sim *s, double wall)
{
    const kagi_scenario *sc = kagi_sim_scenario(s);
    kagi_sim_totals t;
    kagi_sim_get_totals(s, &t);
    char dur[48];
    kagi_duration_format(t.now_s, dur, sizeof dur);
    printf("%s%s%s: %zu nodes, %zu links, %zu demands; simulated %s, seed %llu\n",
           sc->name[0] ? sc->name : "scenario", sc->origin[0] ? " " : "", sc->origin,
           sc->nnodes, sc->nlinks, sc->ndemands, dur, (unsigned long long)t.seed);
    const size_t cap = 40;
    printf("\n%-28s %9s %9s %9s %9s %9s %14s %10s\n", "demand", "requests", "served", "blocked",
           "timed out", "waiting", "key served", "mean wait");
    printf("%-28s %9s %9s %9s %9s %9s %14s %10s\n", "", "", "", "", "", "", "(bits)", "(s)");
    for (size_t i = 0; i < sc->ndemands && i < cap; i++) {
        kagi_sim_demand_stats d;
        kagi_sim_demand(s, i, &d);
        printf("%-28.28s %9llu %9llu %9llu %9llu %9llu %14llu %10.3g\n", sc->demands[i].name,
               (unsigned long long)d.requests, (unsigned long long)d.served,
               (unsigned long long)d.blocked, (unsigned long long)d.timed_out,
               (unsigned long long)d.waiting, (unsigned long long)d.served_bits,
               d.served ? d.wait_total_s / (double)d.served : 0.0);
    }
    if (sc->ndemands > cap) printf("  ... %zu more demands\n", sc->ndemands - cap);
    printf("%-28s %9llu %9llu %9llu %9llu %9llu\n", "all", (unsigned long long)t.requests,
           (unsigned long long)t.served, (unsigned long long)t.blocked,
           (unsigned long long)t.timed_out, (unsigned long long)t.waiting);
    printf("\n%-28s %8s %11s %14s %14s %14s %13s\n", "link", "length", "rate", "generated",
           "consumed", "pool at end", "state");
    printf("%-28s %8s %11s %14s %14s %14s %13s\n", "", "(km)", "(bit/s)", "(bits)", "(bits)",
           "(bits)", "");
    for (size_t i = 0; i < sc->nlinks && i < cap; i++) {
        kagi_sim_link_stats l;
        kagi_sim_link(s, i, &l);
        char len[32];
        if (isfinite(l.length_km))
            snprintf(len, sizeof len, "%8.1f", l.length_km);
        else
            snprintf(len, sizeof len, "%8s", "-");
        printf("%-28.28s %s %11.4g %14llu %14llu %14llu %13s\n", sc->links[i].name, len,
               l.rate_bps, (unsigned long long)l.generated_bits,
               (unsigned long long)l.consumed_bits, (unsigned long long)l.pool_bits,
               kagi__state(l.state));
    }
    if (sc->nlinks > cap) printf("  ... %zu more links\n", sc->nlinks - cap);
    printf("%-28s %8s %11s %14llu %14llu\n", "all", "", "", (unsigned long long)t.generated_bits,
           (unsigned long long)t.consumed_bits);
    if (t.discarded_bits)
        printf("(%llu bits discarded: pools were full)\n", (unsigned long long)t.discarded_bits);
    if (sc->nsatellites) kagi__passes_summary(s, &t);
    printf("\n%llu events, %llu route computations in %.2f s (%.3g events/s); invariants hold\n",
           (unsigned long long)t.events, (unsigned long long)t.routes, wall,
           wall > 0 ? (double)t.events / wall : 0.0);
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    const char *path = kagi_cli_get(cmd, "scenario");
    kagi_sim_opts o;
    memset(&o, 0, sizeof o);
    const char *until = kagi_cli_get(cmd, "until");
    if (until) {
        if (kagi_duration_parse(until, &o.until_s) != KAGI_OK || !(o.until_s > 0))
            return kagi_cli_usage_error(cmd, "--until: '%s' is not a positive duration (like 30d, "
                                        "2h, 90s)", until);
    }
    const char *seed = kagi_cli_get(cmd, "seed");
    if (seed) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(seed, &end, 10);
        if (end == seed || *end || errno == ERANGE || seed[0] == '-')
            return kagi_cli_usage_error(cmd, "--seed: '%s' is not a whole number", seed);
        o.has_seed = 1;
        o.seed = v;
    }
    const char *out = kagi_cli_get(cmd, "out");
    kagi_scenario *sc = NULL;
    int rc = kagi_scenario_load(path, &sc);
    if (rc != KAGI_OK) {
        fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
        return rc == KAGI_ERR_IO || rc == KAGI_ERR_NOMEM ? KAGI_EXIT_FAIL : KAGI_EXIT_USAGE;
    }
    int tty = isatty(2);
    if (tty) o.progress = kagi__progress;
    kagi_sim *s = NULL;
    rc = kagi_sim_new(sc, &o, &s);
    if (rc != KAGI_OK) {
        kagi_scenario_free(sc);
        fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
        return rc == KAGI_ERR_ARG || rc == KAGI_ERR_FORMAT ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
    }
    double t0 = kagi__wall();
    rc = kagi_sim_run(s);
    double wall = kagi__wall() - t0;
    if (tty) fputc('\n', stderr);
    if (rc == KAGI_OK) {
        kagi__summary(s, wall);
        if (out) {
            rc = kagi_sim_write(s, out);
            if (rc == KAGI_OK) printf("wrote %s/{metrics.json,links.csv,demands.csv,passes.csv,report.html}\n",
                                  out);
        }
    }
    if (rc != KAGI_OK) fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
    kagi_sim_free(s);
    kagi_scenario_free(sc);
    return rc == KAGI_OK ? KAGI_EXIT_OK : KAGI_EXIT_FAIL;
}

kagi_cli_cmd kagi_cmd_sim = {
    "sim", "simulate a QKD network: key pools, trusted relay, routing, demands",
    "SCENARIO [--until DURATION] [--seed K] [--out DIR]",
    "Reads a network from a YAML scenario (nodes, fibre links with their device\n"
    "models or measured rates, ground stations, satellites, demands, events;\n"
    "docs/scenario.md) and simulates it: each fibre link fills a key pool in\n"
    "finite blocks at the rate kagi keyrate gives; a satellite fills its pool\n"
    "with each ground station at the end of each pass (kagi pass's model);\n"
    "keys between distant nodes are relayed hop by hop over trusted nodes and\n"
    "satellites (one-time pad plus a Wegman-Carter tag per hop) along routes\n"
    "that avoid cut links and empty pools. Prints a summary; --out writes\n"
    "metrics.json, CSV time series, passes.csv and report.html (docs/sim.md).\n"
    "A scenario error names the file, line and key, exits 2 and writes nothing.",
    kagi__opts, kagi__run};
