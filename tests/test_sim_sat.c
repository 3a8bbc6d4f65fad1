/* Tests of the simulator's satellite segment (kagi/sim.h, kagi/scenario.h:
 * ground stations, satellites, passes). Oracles: kagi_passes over the run
 * for each (satellite, station) pair, computed here from the same element
 * set and station, and the free-space model's key for each pass
 * (kagi_fso_pass_run) or block of passes (kagi_fso_key_of), with the link
 * put together here from the micius preset and the scenario's overrides;
 * the served time of a satellite-relayed key worked out from those passes;
 * file:line:column of broken scenarios counted by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kagi/error.h"
#include "kagi/freespace.h"
#include "kagi/orbit.h"
#include "kagi/scenario.h"
#include "kagi/sim.h"
#include "t.h"

/* examples/tle/micius-2016-like.tle: a night pass over Xinglong on 19 Dec
 * 2016 near 16:45 UTC (docs/freespace.md). */
#define TLE1 "1 99902U          16354.50000000  .00001000  00000-0  20000-4 0  1004"
#define TLE2 "2 99902  97.4006 266.3443 0010000  90.0000  44.8139 15.21936487   101"
#define START "2016-12-19T12:00:00Z"

static kagi_scenario *load(const char *yaml)
{
    kagi_scenario *sc = NULL;
    int rc = kagi_scenario_parse(yaml, strlen(yaml), "t.yaml", &sc);
    if (rc != KAGI_OK) T_FAIL("scenario did not load: %s", kagi_errdetail());
    return sc;
}

static kagi_sim *run(const kagi_scenario *sc)
{
    kagi_sim_opts o;
    memset(&o, 0, sizeof o);
    o.check_each_sample = 1;
    kagi_sim *s = NULL;
    if (!sc || kagi_sim_new(sc, &o, &s) != KAGI_OK) {
        T_FAIL("kagi_sim_new: %s", kagi_errdetail());
        return NULL;
    }
    if (kagi_sim_run(s) != KAGI_OK) T_FAIL("kagi_sim_run: %s", kagi_errdetail());
    return s;
}

/* The oracle's side: the satellite, a station and the pair's link. */
typedef struct oracle {
    kagi_sat *sat;
    kagi_station st;
    kagi_fso_link link;
    kagi_pass *ps;
    size_t np;
    double t0;
} oracle;

static int oracle_new(oracle *o, double lat, double lon, double alt_m, double min_el,
                      double hours)
{
    memset(o, 0, sizeof o[0]);
    kagi_tle t;
    if (kagi_tle_parse(TLE1, TLE2, 0, &t) || kagi_sat_new(&t, &o->sat) ||
        kagi_station_init(&o->st, lat, lon, alt_m / 1000) || kagi_utc_parse(START, &o->t0) ||
        kagi_fso_preset("micius", &o->link) ||
        kagi_passes(o->sat, &o->st, o->t0, o->t0 + hours * 3600, min_el, &o->ps, &o->np)) {
        T_FAIL("oracle: %s", kagi_errdetail());
        return -1;
    }
    return 0;
}

static void oracle_free(oracle *o)
{
    kagi_passes_free(o->ps);
    kagi_sat_free(o->sat);
}

/* The key of pass j alone, and its counts. */
static double pass_key(oracle *o, size_t j, double step, kagi_fso_counts *c, int *night)
{
    kagi_fso_pass fp;
    if (kagi_fso_pass_run(o->sat, &o->st, &o->ps[j], &o->link, step, &fp)) {
        T_FAIL("kagi_fso_pass_run: %s", kagi_errdetail());
        return -1;
    }
    if (c) *c = fp.counts;
    if (night) *night = fp.night;
    double k = fp.key.key_bits;
    kagi_fso_pass_clear(&fp);
    return k;
}

/* Passes of link li among the simulator's. */
static size_t passes_of(const kagi_sim *s, size_t li, const kagi_sim_pass **first)
{
    const kagi_sim_pass *ps;
    size_t n = kagi_sim_passes(s, &ps), k = 0;
    *first = NULL;
    for (size_t j = 0; j < n; j++)
        if (ps[j].link == li) {
            if (!k) *first = &ps[j];
            k++;
        }
    return k;
}

#define TWO_STATIONS(gs_extra, sat_extra, duration)                                          \
    "start: " START "\nduration: " duration "\nsample: 1h\n"                                \
    "ground_stations:\n"                                                                     \
    "  - {name: Xinglong, lat: 40.3955, lon: 117.5775, alt_m: 890" gs_extra "}\n"            \
    "  - {name: Graz, lat: 47.0674, lon: 15.4934, alt_m: 495, min_elevation: 15}\n"          \
    "satellites:\n"                                                                          \
    "  - name: Micius\n"                                                                     \
    "    tle:\n"                                                                             \
    "      - " TLE1 "\n"                                                                     \
    "      - " TLE2 "\n" sat_extra

/* Windows of each satellite link = kagi_passes' passes for that pair over
 * the run (count and times), key per window = the free-space model's key
 * of that pass, with the link made of the station's and the satellite's
 * values (here an override on each side). */
static void test_satellite_link_windows_are_the_passes_with_their_model_key(void)
{
    kagi_scenario *sc = load(TWO_STATIONS(", rx_aperture: 1.2", "    divergence: 12e-6\n", "3d"));
    if (!sc) return;
    ASSERT_EQ(sc->nsatellites, 1);
    ASSERT_EQ(sc->nstations, 2);
    ASSERT_EQ(sc->nlinks, 2);
    kagi_sim *s = run(sc);
    if (!s) return;
    const double lat[2] = {40.3955, 47.0674}, lon[2] = {117.5775, 15.4934};
    const double alt[2] = {890, 495}, minel[2] = {10, 15};
    size_t total = 0, keyed = 0, zero = 0;
    for (size_t g = 0; g < 2; g++) {
        long li = kagi_scenario_link(sc, g == 0 ? "Micius-Xinglong" : "Micius-Graz");
        ASSERT_TRUE(li >= 0);
        if (li < 0) continue;
        oracle o;
        if (oracle_new(&o, lat[g], lon[g], alt[g], minel[g], 72)) continue;
        if (g == 0) o.link.fso.rx_aperture_m = 1.2; /* Xinglong's override */
        o.link.fso.divergence_rad = 12e-6; /* the satellite's */
        const kagi_sim_pass *p;
        size_t n = passes_of(s, (size_t)li, &p);
        const kagi_sc_window *w;
        size_t nw = kagi_sim_link_windows(s, (size_t)li, &w);
        ASSERT_EQ(n, o.np);
        ASSERT_TRUE(n >= 5);
        size_t k = 0;
        for (size_t j = 0; j < n && j < o.np; j++) {
            ASSERT_NEAR(p[j].aos_s, o.ps[j].aos - o.t0, 1e-6);
            ASSERT_NEAR(p[j].tca_s, o.ps[j].tca - o.t0, 1e-6);
            ASSERT_NEAR(p[j].los_s, o.ps[j].los - o.t0, 1e-6);
            ASSERT_NEAR(p[j].max_el_deg, o.ps[j].max_el_deg, 1e-9);
            double key = pass_key(&o, j, 10, NULL, NULL);
            ASSERT_EQ(p[j].pass_key_bits, (uint64_t)key);
            if (o.ps[j].ends_after) { /* its key would come after the run */
                ASSERT_TRUE(!p[j].used);
                continue;
            }
            ASSERT_TRUE(p[j].used);
            ASSERT_EQ(p[j].key_bits, (uint64_t)key);
            ASSERT_TRUE(k < nw);
            if (k < nw) {
                ASSERT_NEAR(w[k].t0_s, o.ps[j].aos - o.t0, 1e-6);
                ASSERT_NEAR(w[k].t1_s, o.ps[j].los - o.t0, 1e-6);
                ASSERT_EQ(w[k].bits, (uint64_t)key);
            }
            k++;
            keyed += key > 0;
            zero += key == 0;
        }
        ASSERT_EQ(nw, k);
        total += n;
        /* the link generated exactly the key of its windows (no event) */
        kagi_sim_link_stats ls;
        kagi_sim_link(s, (size_t)li, &ls);
        uint64_t sum = 0;
        for (size_t j = 0; j < nw; j++) sum += w[j].bits;
        ASSERT_EQ(ls.generated_bits, sum);
        oracle_free(&o);
    }
    /* night passes give key, day passes none */
    ASSERT_TRUE(keyed >= 2 && zero >= 2);
    kagi_sim_totals t;
    kagi_sim_get_totals(s, &t);
    ASSERT_EQ(t.passes, total);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* night_only keeps the passes wholly at night; passes_per_block 2 makes a
 * window of every two of them, [first AOS, second LOS), carrying the key
 * of their summed counts; an incomplete last block gives nothing. */
static void test_night_only_blocks_of_two_passes_carry_the_blocks_key(void)
{
    kagi_scenario *sc = load(TWO_STATIONS("", "    night_only: true\n    passes_per_block: 2\n"
                                              "    pass_step: 5s\n", "4d"));
    if (!sc) return;
    kagi_sim *s = run(sc);
    if (!s) return;
    long li = kagi_scenario_link(sc, "Micius-Xinglong");
    oracle o;
    if (li < 0) T_FAIL("no link Micius-Xinglong");
    if (li < 0 || oracle_new(&o, 40.3955, 117.5775, 890, 10, 96)) return;
    size_t night[64], nn = 0;
    kagi_fso_counts cn[64];
    for (size_t j = 0; j < o.np && nn < 64; j++) {
        kagi_fso_counts c;
        int is_night;
        pass_key(&o, j, 5, &c, &is_night);
        if (is_night && !o.ps[j].ends_after) {
            cn[nn] = c;
            night[nn++] = j;
        }
    }
    ASSERT_TRUE(nn >= 3);
    const kagi_sc_window *w;
    size_t nw = kagi_sim_link_windows(s, (size_t)li, &w);
    ASSERT_EQ(nw, nn / 2);
    for (size_t b = 0; b < nw && 2 * b + 1 < nn; b++) {
        kagi_fso_counts acc;
        memset(&acc, 0, sizeof acc);
        kagi_fso_counts_add(&acc, &cn[2 * b]);
        kagi_fso_counts_add(&acc, &cn[2 * b + 1]);
        kagi_fso_key key;
        ASSERT_OK(kagi_fso_key_of(&o.link, &acc, &key));
        ASSERT_NEAR(w[b].t0_s, o.ps[night[2 * b]].aos - o.t0, 1e-6);
        ASSERT_NEAR(w[b].t1_s, o.ps[night[2 * b + 1]].los - o.t0, 1e-6);
        ASSERT_EQ(w[b].bits, (uint64_t)key.key_bits);
    }
    /* the simulator's records agree: used = night, blocks numbered */
    const kagi_sim_pass *p;
    size_t n = passes_of(s, (size_t)li, &p), used = 0;
    for (size_t j = 0; j < n; j++) {
        used += p[j].used != 0;
        ASSERT_EQ(p[j].used != 0, p[j].light == KAGI_SIM_NIGHT && !o.ps[j].ends_after);
        if (p[j].used) ASSERT_EQ(p[j].block, (used + 1) / 2);
    }
    ASSERT_EQ(used, nn);
    oracle_free(&o);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* First LOS (run seconds) by which the windows of passes (each its own
 * block) carried at least need bits. */
static double ready_at(oracle *o, uint64_t need)
{
    uint64_t got = 0;
    for (size_t j = 0; j < o->np; j++) {
        if (o->ps[j].ends_after) break;
        got += (uint64_t)pass_key(o, j, 10, NULL, NULL);
        if (got >= need) return o->ps[j].los - o->t0;
    }
    return INFINITY;
}

/* A and B hang on the two ground stations by fibre; no other path joins
 * them. Keys requested at 0, 1 and 2 min are relayed A - Xinglong -
 * satellite - Graz - B, and exist only once both stations have had a pass
 * whose key covers a hop (size + MAC): at the later of those two LOS. */
static void test_relay_via_satellite_is_served_only_after_both_passes(void)
{
    kagi_scenario *sc = load(TWO_STATIONS("", "", "2d")
                             "nodes:\n  - {name: A, lat: 40.0, lon: 117.0}\n"
                             "  - {name: B, lat: 47.5, lon: 15.0}\n"
                             "links:\n  - {ends: [A, Xinglong], key_rate: 10 kbit/s}\n"
                             "  - {ends: [Graz, B], key_rate: 10 kbit/s}\n"
                             "demands:\n  - {name: ab, from: A, to: B, timeout: never, "
                             "schedule: [{at: 0s, bits: 1000, count: 3, every: 1m}]}\n");
    if (!sc) return;
    oracle x, g;
    if (oracle_new(&x, 40.3955, 117.5775, 890, 10, 48) || oracle_new(&g, 47.0674, 15.4934, 495, 15, 48))
        return;
    const uint64_t need = 1000 + 256;
    double tx = ready_at(&x, need), tg = ready_at(&g, need), T = fmax(tx, tg);
    ASSERT_TRUE(isfinite(T) && T > 3600 && tx != tg);
    kagi_sim_opts o;
    memset(&o, 0, sizeof o);
    o.check_each_sample = 1;
    kagi_sim *s = NULL;
    ASSERT_OK(kagi_sim_new(sc, &o, &s));
    if (!s) return;
    /* after the earlier pass, before the later one: still waiting */
    ASSERT_OK(kagi_sim_run_until(s, T - 1e-3));
    kagi_sim_demand_stats d;
    kagi_sim_demand(s, 0, &d);
    ASSERT_EQ(d.served, 0);
    ASSERT_EQ(d.waiting, 3);
    kagi_sim_link_stats early, late;
    kagi_sim_link(s, (size_t)kagi_scenario_link(sc, tx < tg ? "Micius-Xinglong" : "Micius-Graz"),
                  &early);
    kagi_sim_link(s, (size_t)kagi_scenario_link(sc, tx < tg ? "Micius-Graz" : "Micius-Xinglong"),
                  &late);
    ASSERT_TRUE(early.pool_bits >= need);
    ASSERT_TRUE(late.pool_bits < need);
    /* at the later LOS all three are served at once */
    ASSERT_OK(kagi_sim_run(s));
    kagi_sim_demand(s, 0, &d);
    ASSERT_EQ(d.served, 3);
    ASSERT_NEAR(d.wait_max_s, T, 1e-6);
    ASSERT_NEAR(d.wait_total_s, 3 * T - 60 - 120, 1e-6);
    ASSERT_EQ(d.hop_messages, 3 * 4);
    static const char *const hops[] = {"A-Xinglong", "Micius-Xinglong", "Micius-Graz", "Graz-B"};
    for (int h = 0; h < 4; h++) {
        kagi_sim_link_stats ls;
        kagi_sim_link(s, (size_t)kagi_scenario_link(sc, hops[h]), &ls);
        ASSERT_EQ(ls.consumed_bits, 3 * need);
        ASSERT_EQ(ls.relay_messages, 3);
    }
    oracle_free(&x);
    oracle_free(&g);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* The shipped intercontinental example: the Tokyo-Vienna demand has no
 * fibre path, gets key only via the satellite, and not before both ground
 * stations have had a pass with key. */
static void test_intercontinental_example_delivers_key_via_the_satellite(void)
{
    kagi_scenario *sc = NULL;
    ASSERT_OK(kagi_scenario_load("examples/intercontinental.yaml", &sc));
    if (!sc) return;
    kagi_sim_opts o;
    memset(&o, 0, sizeof o);
    o.until_s = 2 * 86400;
    o.check_each_sample = 1;
    kagi_sim *s = NULL;
    ASSERT_OK(kagi_sim_new(sc, &o, &s));
    if (!s) return;
    ASSERT_OK(kagi_sim_run(s));
    long di = -1;
    for (size_t i = 0; i < sc->ndemands; i++)
        if (!strcmp(sc->demands[i].name, "tokyo-vienna")) di = (long)i;
    ASSERT_TRUE(di >= 0);
    kagi_sim_demand_stats d;
    kagi_sim_demand(s, (size_t)di, &d);
    ASSERT_TRUE(d.served > 100);
    /* first key: the later of the two stations' first LOS with key */
    const kagi_sim_pass *ps;
    size_t np = kagi_sim_passes(s, &ps);
    double first[2] = {INFINITY, INFINITY};
    for (size_t j = 0; j < np; j++)
        if (ps[j].key_bits >= 512 && ps[j].los_s < first[ps[j].gs]) first[ps[j].gs] = ps[j].los_s;
    double T = fmax(first[0], first[1]);
    ASSERT_TRUE(isfinite(T));
    /* the request at 0 s waited exactly until then */
    ASSERT_NEAR(d.wait_max_s, T, 1e-6);
    /* every used pass was at night (night_only) */
    for (size_t j = 0; j < np; j++)
        if (ps[j].used) ASSERT_EQ(ps[j].light, KAGI_SIM_NIGHT);
    kagi_sim_totals t;
    kagi_sim_get_totals(s, &t);
    ASSERT_TRUE(t.passes_with_key >= 2);
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(1 << 22);
    *len = b ? fread(b, 1, (1 << 22) - 1, f) : 0;
    if (b) b[*len] = 0;
    fclose(f);
    return b;
}

static void test_outputs_list_the_passes_and_draw_ground_tracks(void)
{
    kagi_scenario *sc = load(TWO_STATIONS("", "", "1d"));
    kagi_sim *s = run(sc);
    if (!s) return;
    char dir[] = "/tmp/kagi-sim-sat.XXXXXX";
    if (!mkdtemp(dir)) {
        T_FAIL("mkdtemp");
        return;
    }
    ASSERT_OK(kagi_sim_write(s, dir));
    char path[128];
    size_t n = 0;
    snprintf(path, sizeof path, "%s/passes.csv", dir);
    char *csv = slurp(path, &n);
    const kagi_sim_pass *ps;
    size_t np = kagi_sim_passes(s, &ps), rows = 0;
    ASSERT_TRUE(csv && np > 2);
    if (csv) {
        ASSERT_TRUE(!strncmp(csv, "satellite,station,aos_utc,los_utc,", 34));
        for (char *p = csv; *p; p++) rows += *p == '\n';
        ASSERT_EQ(rows, np + 1);
        ASSERT_TRUE(strstr(csv, "Micius,Xinglong,2016-12-19T16:41:2") != NULL);
    }
    free(csv);
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    char *m = slurp(path, &n);
    char want[64];
    snprintf(want, sizeof want, "\"passes\": %zu,", np);
    ASSERT_TRUE(m && strstr(m, want) && strstr(m, "\"start_utc\": \"2016-12-19T12:00:00Z\"") &&
                strstr(m, "\"satellites\": [") && strstr(m, "\"catalogue_number\": \"99902\""));
    free(m);
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *h = slurp(path, &n);
    ASSERT_TRUE(h && strstr(h, "ground track") && strstr(h, "<polyline") &&
                strstr(h, "Satellite passes") && strstr(h, "ground station"));
    free(h);
    static const char *const names[] = {"metrics.json", "links.csv", "demands.csv", "passes.csv",
                                        "report.html"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        ASSERT_TRUE(unlink(path) == 0);
    }
    ASSERT_TRUE(rmdir(dir) == 0); /* nothing else was left there */
    kagi_sim_free(s);
    kagi_scenario_free(sc);
}

/* ---- Errors: file, line, column and key; nothing loaded ------------------ */

/* Scenarios "loaded" from DIR/net.yaml, so that tle_file paths start in a
 * fresh temporary folder. */
static char dir[64];

static void expect_error(const char *yaml, const char *const *needles)
{
    char origin[128];
    snprintf(origin, sizeof origin, "%s/net.yaml", dir[0] ? dir : "tests/data");
    kagi_scenario *sc = (kagi_scenario *)1;
    int rc = kagi_scenario_parse(yaml, strlen(yaml), origin, &sc);
    ASSERT_EQ(rc, KAGI_ERR_FORMAT);
    ASSERT_TRUE(sc == NULL);
    for (; *needles; needles++) {
        char want[256];
        /* "@" stands for the folder */
        const char *at = strchr(*needles, '@');
        if (at)
            snprintf(want, sizeof want, "%.*s%s%s", (int)(at - *needles), *needles,
                     dir[0] ? dir : "tests/data", at + 1);
        else
            snprintf(want, sizeof want, "%s", *needles);
        if (!strstr(kagi_errdetail(), want))
            T_FAIL("detail '%s' lacks '%s'", kagi_errdetail(), want);
    }
}

#define HEAD                                                                                 \
    "start: " START "\nground_stations:\n  - {name: Graz, lat: 47.0674, lon: 15.4934}\n"    \
    "  - {name: Xinglong, lat: 40.3955, lon: 117.5775}\nsatellites:\n  - name: Micius\n"

static void write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        T_FAIL("cannot write %s", path);
        return;
    }
    fputs(text, f);
    fclose(f);
}

static void test_tle_errors_name_file_line_and_key(void)
{
    snprintf(dir, sizeof dir, "/tmp/kagi-sim-tle.XXXXXX");
    if (!mkdtemp(dir)) {
        T_FAIL("mkdtemp");
        dir[0] = 0;
        return;
    }
    /* a checksum off in an inline list: line 8, the item at column 9 */
    char bad[256];
    snprintf(bad, sizeof bad, "%s", TLE1);
    bad[68] = '5';
    char y[1024];
    snprintf(y, sizeof y, HEAD "    tle:\n      - %s\n      - " TLE2 "\n", bad);
    expect_error(y, (const char *const[]){"@/net.yaml:8:77:", "satellites[0].tle:",
                                          "TLE line 1, column 69", "checksum", NULL});
    /* a bad character in a block of text: line 10, column 6 + 10 */
    char l2[128];
    snprintf(l2, sizeof l2, "%s", TLE2);
    l2[9] = 'x';
    snprintf(y, sizeof y, HEAD "    tle: |\n      MICIUS\n      " TLE1 "\n      %s\n", l2);
    expect_error(y, (const char *const[]){"@/net.yaml:10:16:", "satellites[0].tle:",
                                          "TLE line 2, column 10", NULL});
    /* a quoted line: the column counts the quote */
    snprintf(y, sizeof y, HEAD "    tle: [\"%s\", \"" TLE2 "\"]\n", bad);
    expect_error(y, (const char *const[]){"@/net.yaml:7:80:", "TLE line 1, column 69", NULL});
    expect_error(HEAD "    tle: [\"" TLE1 "\"]\n",
                 (const char *const[]){"@/net.yaml:7:10:", "satellites[0].tle", "2 lines", NULL});
    /* files: relative to the scenario's folder; the file's own line */
    expect_error(HEAD "    tle_file: no-such.tle\n",
                 (const char *const[]){"@/net.yaml:7:15:", "satellites[0].tle_file",
                                       "@/no-such.tle", "cannot open", NULL});
    char text[512];
    snprintf(text, sizeof text, "GOOD\n%s\n%s\nBROKEN\n%s\n%s\n", TLE1, TLE2, TLE1, l2);
    write_file("bad.tle", text);
    expect_error(HEAD "    tle_file: bad.tle\n",
                 (const char *const[]){"@/net.yaml:7:15:", "satellites[0].tle_file",
                                       "@/bad.tle:6:10:", NULL});
    snprintf(text, sizeof text, "ONE\n%s\n%s\nTWO\n%s\n%s\n", TLE1, TLE2, TLE1, TLE2);
    write_file("two.tle", text);
    expect_error(HEAD "    tle_file: two.tle\n",
                 (const char *const[]){"@/net.yaml:7:15:", "holds 2 element sets", "tle_id",
                                       NULL});
    expect_error(HEAD "    tle_file: two.tle\n    tle_id: THREE\n",
                 (const char *const[]){"@/net.yaml:8:13:", "satellites[0].tle_id",
                                       "no element set", "THREE", NULL});
    /* the set picked by tle_id loads, and the satellite keeps its name */
    kagi_scenario *sc = NULL;
    char origin[128];
    snprintf(origin, sizeof origin, "%s/net.yaml", dir);
    const char *ok = HEAD "    tle_file: two.tle\n    tle_id: two\n";
    ASSERT_OK(kagi_scenario_parse(ok, strlen(ok), origin, &sc));
    if (sc) {
        ASSERT_TRUE(!strcmp(sc->satellites[0].tle.name, "TWO"));
        ASSERT_TRUE(!strcmp(sc->nodes[sc->satellites[0].node].name, "Micius"));
        ASSERT_EQ(sc->nlinks, 2);
    }
    kagi_scenario_free(sc);
    expect_error(HEAD "    tle_file: x.tle\n    tle: [a, b]\n",
                 (const char *const[]){"satellites[0]", "give the orbit once", NULL});
    expect_error(HEAD "    link: micius\n",
                 (const char *const[]){"@/net.yaml:6:5:", "satellites[0]", "missing key 'tle'",
                                       NULL});
    char path[128];
    snprintf(path, sizeof path, "%s/bad.tle", dir);
    ASSERT_TRUE(unlink(path) == 0);
    snprintf(path, sizeof path, "%s/two.tle", dir);
    ASSERT_TRUE(unlink(path) == 0);
    ASSERT_TRUE(rmdir(dir) == 0);
    dir[0] = 0;
}

static void test_space_errors_name_file_line_and_key(void)
{
    const char *sat = "    tle: [\"" TLE1 "\", \"" TLE2 "\"]\n";
    char y[2048];
    snprintf(y, sizeof y, HEAD "%s    rx_aperture: 2\n", sat);
    expect_error(y, (const char *const[]){"@/net.yaml:8:5:", "satellites[0].rx_aperture",
                                          "ground station", NULL});
    snprintf(y, sizeof y, HEAD "%s    nigth_only: true\n", sat);
    expect_error(y, (const char *const[]){"@/net.yaml:8:5:", "satellites[0].nigth_only",
                                          "did you mean night_only?", NULL});
    snprintf(y, sizeof y, HEAD "%s    passes_per_block: 0\n", sat);
    expect_error(y, (const char *const[]){"@/net.yaml:8:23:", "passes_per_block",
                                          "impossible", NULL});
    snprintf(y, sizeof y, HEAD "%s    mu: 0.05\n", sat);
    expect_error(y, (const char *const[]){"@/net.yaml:6:", "satellites[0]", "mu", NULL});
    snprintf(y, sizeof y, "start: " START "\nground_stations:\n  - {name: Graz, lat: 47.0674, lon: "
             "15.4934, link: micios}\n  - {name: X, lat: 40, lon: 117, min_elevation: 95}\n");
    expect_error(y, (const char *const[]){"@/net.yaml:3:52:", "ground_stations[0].link",
                                          "micios", "known: micius", NULL});
    snprintf(y, sizeof y, "ground_stations:\n  - {name: X, lat: 40, lon: 117, min_elevation: 95}\n"
             "  - {name: Y, lat: 40, lon: 118}\n");
    expect_error(y, (const char *const[]){"@/net.yaml:2:49:",
                                          "ground_stations[0].min_elevation", "95", NULL});
    snprintf(y, sizeof y, HEAD "%s    tx_aperture: 0.3\nlinks:\n  - {ends: [Graz, Micius], "
             "key_rate: 1000}\n", sat);
    expect_error(y, (const char *const[]){"@/net.yaml:10:", "links[0]",
                                          "Micius is a satellite", NULL});
    snprintf(y, sizeof y, "start: 2016-13-40\n" HEAD "%s", sat);
    expect_error(y, (const char *const[]){"@/net.yaml:1:8:", "start", "2016-13-40", NULL});
    snprintf(y, sizeof y, HEAD "%s" "satelites: []\n", sat);
    expect_error(y, (const char *const[]){"@/net.yaml:8:1:", "satelites",
                                          "did you mean satellites?", NULL});
    /* a satellite's name is a node's name: no twice */
    snprintf(y, sizeof y, HEAD "%s  - name: Graz\n%s", sat, sat);
    expect_error(y, (const char *const[]){"satellites[1]", "'Graz' is used twice", NULL});
}

/* Built in code: the checks of kagi_scenario_check hold there too. */
static void test_scenario_built_in_code_is_checked(void)
{
    kagi_scenario *sc;
    ASSERT_OK(kagi_scenario_new(&sc));
    kagi_sc_node n = {.trusted = 1, .capacity_bits = 1000000, .lat_deg = 47, .lon_deg = 15};
    size_t gn, sn;
    snprintf(n.name, sizeof n.name, "G");
    ASSERT_OK(kagi_scenario_add_node(sc, &n, &gn));
    snprintf(n.name, sizeof n.name, "S");
    ASSERT_OK(kagi_scenario_add_node(sc, &n, &sn));
    kagi_sc_station g;
    kagi_sc_station_defaults(&g);
    g.node = gn;
    ASSERT_OK(kagi_scenario_add_station(sc, &g, NULL));
    kagi_sc_satellite s;
    kagi_sc_satellite_defaults(&s);
    s.node = sn;
    ASSERT_OK(kagi_tle_parse(TLE1, TLE2, 0, &s.tle));
    ASSERT_OK(kagi_scenario_add_satellite(sc, &s, NULL));
    ASSERT_OK(kagi_scenario_link_satellites(sc));
    ASSERT_OK(kagi_scenario_link_satellites(sc)); /* idempotent */
    ASSERT_EQ(sc->nlinks, 1);
    ASSERT_TRUE(!strcmp(sc->links[0].name, "S-G"));
    /* no start */
    ASSERT_EQ(kagi_scenario_check(sc), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "start") != NULL);
    sc->start_utc = s.tle.epoch;
    ASSERT_OK(kagi_scenario_check(sc));
    /* a fibre to the satellite */
    kagi_sc_link l;
    kagi_sc_link_defaults(&l);
    l.a = gn;
    l.b = sn;
    l.kind = KAGI_SC_LINK_FIXED;
    l.key_rate_bps = 1000;
    snprintf(l.name, sizeof l.name, "fibre");
    ASSERT_OK(kagi_scenario_add_link(sc, &l, NULL));
    ASSERT_EQ(kagi_scenario_check(sc), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "S is a satellite") != NULL);
    sc->nlinks = 1;
    /* a bad pair: p_x 1 on the satellite */
    sc->satellites[0].link.qkd.p_x = 1;
    ASSERT_EQ(kagi_scenario_check(sc), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "satellites[0] (S)") != NULL);
    kagi_scenario_free(sc);
}

T_MAIN(T(test_satellite_link_windows_are_the_passes_with_their_model_key),
       T(test_night_only_blocks_of_two_passes_carry_the_blocks_key),
       T(test_relay_via_satellite_is_served_only_after_both_passes),
       T(test_intercontinental_example_delivers_key_via_the_satellite),
       T(test_outputs_list_the_passes_and_draw_ground_tracks),
       T(test_tle_errors_name_file_line_and_key), T(test_space_errors_name_file_line_and_key),
       T(test_scenario_built_in_code_is_checked))
