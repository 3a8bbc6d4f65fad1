/* kagi sim: simulate a QKD network described by a scenario file, print a
 * summary, and write metrics, time series and an HTML report; with
 * --serve, run it paced on a live web dashboard (docs/dashboard.md). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dash.h"
#include "kagi/error.h"
#include "kagi/orbit.h"
#include "kagi/scenario.h"
#include "kagi/sim.h"
#include "internal.h" /* kagi__now */

static kagi_cli_opt kagi__opts[] = {
    {"scenario", "SCENARIO", "the network, in YAML (docs/scenario.md)", KAGI_CLI_POSITIONAL,
     NULL},
    {"until", "DURATION", "simulate this long instead of the scenario's duration (30d, 2h, 90s)",
     0, NULL},
    {"seed", "K", "random seed instead of the scenario's", 0, NULL},
    {"out", "DIR", "write metrics.json, links.csv, demands.csv, passes.csv and report.html there",
     0, NULL},
    {"serve", "[ADDR:PORT]", "show the run live on a web dashboard (docs/dashboard.md; default "
     "127.0.0.1:8080), paced for watching; after the end keep serving it for replay until ^C", 0, NULL},
    {"speed", "X", "with --serve: simulated seconds per wall second (default: the whole run in "
     "about a minute)", 0, NULL},
    KAGI_CLI_DASH_OPTS,
    {NULL, NULL, NULL, 0, NULL},
};

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

/* ---- --serve: the run paced for watching, on the dashboard ------------------ */

#define KAGI__TICK_MS 125 /* eight updates a second */

static volatile sig_atomic_t kagi__stop;
static void kagi__on_stop(int sig) { kagi__stop = sig; }

typedef struct kagi__dash {
    kagi_sim *s;
    kagi_live *live;
    kagi_buf topo;            /* built once */
    char *metrics;            /* metrics.json once the run has ended */
    size_t metrics_len;
} kagi__dash;

/* GET /api/...: topology, sample?k=K, series?link=I|node=I|demand=I, metrics. */
static void kagi__api(void *ctx, const char *path, size_t len, const char *q, size_t ql,
                      kagi_serve_reply *r)
{
    kagi__dash *d = ctx;
    size_t k;
#define KAGI__IS(lit) (len == strlen(lit) && !memcmp(path, lit, len))
    if (KAGI__IS("/api/topology")) {
        kagi_buf_put(&r->body, d->topo.p, d->topo.len);
        r->status = 200;
    } else if (KAGI__IS("/api/sample")) {
        if (kagi_cli_query_size(q, ql, "k", &k) != 0) {
            r->status = 400;
            return;
        }
        r->status = kagi_live_sample(d->live, k, &r->body) == KAGI_OK ? 200 : 404;
    } else if (KAGI__IS("/api/series")) {
        char what = 0;
        if (!kagi_cli_query_size(q, ql, "link", &k)) what = 'l';
        else if (!kagi_cli_query_size(q, ql, "node", &k)) what = 'n';
        else if (!kagi_cli_query_size(q, ql, "demand", &k)) what = 'd';
        if (!what) {
            r->status = 400;
            return;
        }
        r->status = kagi_live_series(d->live, what, k, &r->body) == KAGI_OK ? 200 : 404;
    } else if (KAGI__IS("/api/metrics")) {
        if (!d->metrics) {
            r->status = 503; /* only a finished run has its metrics */
            return;
        }
        kagi_buf_put(&r->body, d->metrics, d->metrics_len);
        r->status = 200;
    }
#undef KAGI__IS
    if (r->status != 200) kagi_buf_reset(&r->body);
}

/* metrics.json of the finished run, through a temporary file. */
static int kagi__metrics_mem(const kagi_sim *s, char **out, size_t *len)
{
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/kagi-metrics-%ld.json", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    int rc = kagi_sim_write_metrics(s, path);
    if (rc != KAGI_OK) return rc;
    FILE *f = fopen(path, "r");
    char *p = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = malloc((size_t)n + 1)) && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    if (f) fclose(f);
    unlink(path);
    if (!p) return KAGI_ERR_IO;
    *out = p;
    *len = (size_t)n;
    return KAGI_OK;
}

static int kagi__publish(kagi__dash *d, kagi_serve *srv, uint64_t seq, double speed, int done)
{
    kagi_buf b;
    kagi_buf_init(&b, (size_t)256 << 20);
    int rc = kagi_live_state(d->live, seq, speed, done, &b);
    if (rc == KAGI_OK) rc = kagi_serve_publish(srv, (const char *)b.p, b.len);
    kagi_buf_free(&b);
    return rc;
}

static int kagi__serve(kagi_cli_cmd *cmd, kagi_sim *s, const char *out)
{
    double speed = 0;
    kagi_sim_totals t0;
    kagi_sim_get_totals(s, &t0);
    double end = t0.end_s;
    int rc = kagi_cli_double(cmd, "speed", 0, INFINITY, &speed);
    if (rc) return rc;
    if (!(speed > 0)) speed = end / 60; /* the whole run in about a minute */
    kagi__dash d;
    memset(&d, 0, sizeof d);
    d.s = s;
    kagi_buf_init(&d.topo, (size_t)256 << 20);
    if (kagi_live_new(s, &d.live) != KAGI_OK ||
        kagi_live_topology(d.live, "sim", &d.topo) != KAGI_OK) {
        fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
        kagi_live_free(d.live);
        kagi_buf_free(&d.topo);
        return KAGI_EXIT_FAIL;
    }
    kagi_serve *srv = NULL;
    rc = kagi_cli_dash_start(cmd, kagi__api, &d, &srv);
    if (rc) {
        kagi_live_free(d.live);
        kagi_buf_free(&d.topo);
        return rc;
    }
    char dur[48];
    kagi_duration_format(end, dur, sizeof dur);
    printf("simulating %s at %.4g simulated seconds per second; ^C stops\n", dur, speed);
    fflush(stdout);
    kagi_cli_on_stop(kagi__on_stop);
    uint64_t seq = 0;
    int lib = KAGI_OK;
    double w0 = kagi__now();
    for (;;) {
        double tick = kagi__now();
        double target = fmin((tick - w0) * speed, end);
        /* in slices of 20 ms of wall time, answering requests in between,
         * so a busy stretch of the run does not stall the page; a run
         * slower than the speed asked for still publishes every tick */
        while (lib == KAGI_OK && !kagi__stop && kagi_sim_now(s) < target &&
               kagi__now() - tick < KAGI__TICK_MS / 1000.0) {
            lib = kagi_sim_run_until(s, fmin(target, kagi_sim_now(s) + speed * 0.02));
            if (lib == KAGI_OK) lib = kagi_serve_poll(srv, 0);
        }
        if (lib == KAGI_OK) lib = kagi__publish(&d, srv, ++seq, speed, 0);
        if (lib != KAGI_OK || kagi__stop || kagi_sim_now(s) >= end) break;
        int left = KAGI__TICK_MS - (int)((kagi__now() - tick) * 1000);
        lib = kagi_serve_poll(srv, left > 0 ? left : 0);
        if (lib != KAGI_OK || kagi__stop) break;
    }
    if (lib == KAGI_OK && !kagi__stop) {
        double wall = kagi__now() - w0;
        lib = kagi_sim_check(s);
        if (lib == KAGI_OK) kagi__summary(s, wall);
        if (lib == KAGI_OK && out) {
            lib = kagi_sim_write(s, out);
            if (lib == KAGI_OK)
                printf("wrote %s/{metrics.json,links.csv,demands.csv,passes.csv,report.html}\n",
                       out);
        }
        if (lib == KAGI_OK && kagi__metrics_mem(s, &d.metrics, &d.metrics_len) != KAGI_OK)
            fprintf(stderr, "kagi %s: warning: cannot make metrics.json for the dashboard "
                    "(%s): /api/metrics stays empty\n", cmd->name, kagi_errdetail());
        if (lib == KAGI_OK) lib = kagi__publish(&d, srv, ++seq, speed, 1);
        if (lib == KAGI_OK) {
            printf("finished; the dashboard stays at %s for replay: ^C stops\n",
                   kagi_serve_url(srv));
            fflush(stdout);
        }
        while (lib == KAGI_OK && !kagi__stop) lib = kagi_serve_poll(srv, 1000);
    }
    if (lib != KAGI_OK) fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
    else if (kagi__stop) printf("dashboard stopped (%s)\n", strsignal(kagi__stop));
    kagi_serve_free(srv);
    kagi_live_free(d.live);
    kagi_buf_free(&d.topo);
    free(d.metrics);
    return lib == KAGI_OK ? KAGI_EXIT_OK : KAGI_EXIT_FAIL;
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
    int serve = kagi_cli_flag(cmd, "serve");
    if (!serve && (kagi_cli_get(cmd, "speed") || kagi_cli_get(cmd, "listen") ||
                   kagi_cli_get(cmd, "web")))
        return kagi_cli_usage_error(cmd, "--speed, --listen and --web go with --serve");
    kagi_scenario *sc = NULL;
    int rc = kagi_scenario_load(path, &sc);
    if (rc != KAGI_OK) {
        fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
        return rc == KAGI_ERR_IO || rc == KAGI_ERR_NOMEM ? KAGI_EXIT_FAIL : KAGI_EXIT_USAGE;
    }
    int tty = isatty(2) && !serve;
    if (tty) o.progress = kagi__progress;
    kagi_sim *s = NULL;
    rc = kagi_sim_new(sc, &o, &s);
    if (rc != KAGI_OK) {
        kagi_scenario_free(sc);
        fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
        return rc == KAGI_ERR_ARG || rc == KAGI_ERR_FORMAT ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
    }
    if (serve) {
        rc = kagi__serve(cmd, s, out);
        kagi_sim_free(s);
        kagi_scenario_free(sc);
        return rc;
    }
    double t0 = kagi__now();
    rc = kagi_sim_run(s);
    double wall = kagi__now() - t0;
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
    "SCENARIO [--until DURATION] [--seed K] [--out DIR] [--serve [ADDR:PORT] "
    "[--speed X] [--web DIR]]",
    "Reads a network from a YAML scenario (nodes, fibre links with their device\n"
    "models or measured rates, ground stations, satellites, demands, events;\n"
    "docs/scenario.md) and simulates it: each fibre link fills a key pool in\n"
    "finite blocks at the rate kagi keyrate gives; a satellite fills its pool\n"
    "with each ground station at the end of each pass (kagi pass's model);\n"
    "keys between distant nodes are relayed hop by hop over trusted nodes and\n"
    "satellites (one-time pad plus a Wegman-Carter tag per hop) along routes\n"
    "that avoid cut links and empty pools. Prints a summary; --out writes\n"
    "metrics.json, CSV time series, passes.csv and report.html (docs/sim.md).\n"
    "A scenario error names the file, line and key, exits 2 and writes nothing.\n"
    "--serve shows the run on a live web dashboard (docs/dashboard.md).",
    kagi__opts, kagi__run};
