/* What a simulation leaves behind: metrics.json (every figure, no wall-clock
 * time, so runs compare byte for byte), links.csv and demands.csv (time
 * series), and report.html (one self-contained page: summary, a map of the
 * network, charts drawn by kagi/plot.h embedded inline, tables). Every file
 * is written to a temporary name in the same folder, synced and renamed. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kagi/orbit.h"
#include "kagi/plot.h"
#include "kagi/sim.h"
#include "sim_internal.h"

/* mkdir -p */
static int kagi__mkdirs(const char *dir)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) return kagi__err(KAGI_ERR_IO, "%s: bad output folder", dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return kagi__err(KAGI_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
        p[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return kagi__err(KAGI_ERR_IO, "%s: not a folder", dir);
    return KAGI_OK;
}

/* ---- Small writers ----------------------------------------------------------- */

static const char *kagi__state_name(int st)
{
    static const char *const n[] = {"up", "cut", "eavesdropped", "node down"};
    return st >= 0 && st <= 3 ? n[st] : "?";
}

const char *kagi__event_name(kagi_sc_event_kind k)
{
    static const char *const n[] = {"cut", "repair", "node_down", "node_up", "eavesdrop"};
    return (unsigned)k <= KAGI_SC_EAVESDROP ? n[k] : "?";
}

const char *kagi__kind_name(kagi_sc_link_kind k)
{
    return k == KAGI_SC_LINK_FIXED ? "fixed" : k == KAGI_SC_LINK_SCHEDULED ? "scheduled" : "model";
}

/* JSON string (names hold no '"' or '\\', but escape anyway). */
static void kagi__jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void kagi__jnum(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

/* , "key": "s" and , "key": v (the fields after an object's first). */
static void kagi__jks(FILE *f, const char *key, const char *s)
{
    fprintf(f, ", \"%s\": ", key);
    kagi__jstr(f, s);
}

static void kagi__jkn(FILE *f, const char *key, double v)
{
    fprintf(f, ", \"%s\": ", key);
    kagi__jnum(f, v);
}

static void kagi__xml(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

#define KAGI__U(x) ((unsigned long long)(x))

static const char *kagi__light_name(kagi_sim_light l)
{
    return l == KAGI_SIM_NIGHT ? "night" : l == KAGI_SIM_TWILIGHT ? "twilight" : "day";
}

/* UTC of simulated time t ("2016-12-19T12:00:00Z"), "" without a start. */
static void kagi__utc_d(const kagi_sim *s, double t, int decimals, char buf[KAGI_UTC_STRLEN])
{
    buf[0] = 0;
    if (isfinite(s->sc->start_utc) &&
        kagi_utc_format(s->sc->start_utc + t, decimals, buf, KAGI_UTC_STRLEN) != KAGI_OK)
        buf[0] = 0;
}

static void kagi__utc(const kagi_sim *s, double t, char buf[KAGI_UTC_STRLEN])
{
    kagi__utc_d(s, t, 0, buf);
}

/* Pass counts of one satellite (sat >= 0), station (gs >= 0) or link. */
typedef struct kagi__pc {
    uint64_t passes, night, used, with_key, key_bits;
} kagi__pc;

typedef struct kagi__pcs {
    kagi__pc *link, *sat, *gs;
} kagi__pcs;

static void kagi__pc_add(kagi__pc *c, const kagi_sim_pass *p)
{
    c->passes++;
    c->night += p->light == KAGI_SIM_NIGHT;
    c->used += p->used != 0;
    c->with_key += p->used && p->pass_key_bits > 0;
    c->key_bits += p->key_bits;
}

/* The pass counts that close a link's, station's or satellite's object. */
static void kagi__jpc(FILE *f, const kagi__pc *c)
{
    fprintf(f, ", \"passes\": %llu, \"passes_night\": %llu, \"passes_used\": %llu, "
               "\"passes_with_key\": %llu, \"pass_key_bits\": %llu}",
            KAGI__U(c->passes), KAGI__U(c->night), KAGI__U(c->used), KAGI__U(c->with_key),
            KAGI__U(c->key_bits));
}

/* Pass counts per link, satellite and station; 0 or KAGI_ERR_NOMEM. */
static int kagi__counts(const kagi_sim *s, kagi__pcs *c)
{
    const kagi_scenario *sc = s->sc;
    c->link = calloc(s->nl + 1, sizeof *c->link);
    c->sat = calloc(sc->nsatellites + 1, sizeof *c->sat);
    c->gs = calloc(sc->nstations + 1, sizeof *c->gs);
    if (!c->link || !c->sat || !c->gs) {
        free(c->link);
        free(c->sat);
        free(c->gs);
        return kagi__err(KAGI_ERR_NOMEM, "report: out of memory");
    }
    for (size_t j = 0; j < s->npass; j++) {
        const kagi_sim_pass *p = &s->pass[j];
        kagi__pc_add(&c->link[p->link], p);
        kagi__pc_add(&c->sat[p->sat], p);
        kagi__pc_add(&c->gs[p->gs], p);
    }
    return KAGI_OK;
}

static void kagi__counts_free(kagi__pcs *c)
{
    free(c->link);
    free(c->sat);
    free(c->gs);
}

/* ---- metrics.json ------------------------------------------------------------- */

static int kagi__metrics(const kagi_sim *s, FILE *f)
{
    const kagi_scenario *sc = s->sc;
    kagi__pcs pc;
    KAGI__TRY(kagi__counts(s, &pc));
    kagi_sim_totals t;
    kagi_sim_get_totals(s, &t);
    fprintf(f, "{\n  \"scenario\": ");
    kagi__jstr(f, sc->name);
    fprintf(f, ",\n  \"source\": ");
    kagi__jstr(f, sc->origin);
    fprintf(f, ",\n  \"seed\": %llu,\n  \"simulated_s\": ", KAGI__U(t.seed));
    kagi__jnum(f, t.now_s);
    fprintf(f, ",\n  \"end_s\": ");
    kagi__jnum(f, t.end_s);
    fprintf(f, ",\n  \"sample_s\": ");
    kagi__jnum(f, s->sample_s);
    fprintf(f, ",\n  \"start_utc\": ");
    char when[KAGI_UTC_STRLEN];
    kagi__utc(s, 0, when);
    if (when[0]) kagi__jstr(f, when);
    else fputs("null", f);
    fprintf(f, ",\n  \"mac_bits\": %llu,\n  \"route_reserve\": ", KAGI__U(sc->mac_bits));
    kagi__jnum(f, sc->route_reserve);
    fprintf(f, ",\n  \"totals\": {\"requests\": %llu, \"served\": %llu, \"blocked\": %llu, "
               "\"timed_out\": %llu, \"waiting\": %llu, \"generated_bits\": %llu, "
               "\"consumed_bits\": %llu, \"discarded_bits\": %llu, \"events\": %llu, "
               "\"key_blocks\": %llu, \"route_computations\": %llu, \"retries\": %llu, "
               "\"passes\": %llu, \"passes_night\": %llu, \"passes_used\": %llu, "
               "\"passes_with_key\": %llu, \"pass_key_bits\": %llu},\n",
            KAGI__U(t.requests), KAGI__U(t.served), KAGI__U(t.blocked), KAGI__U(t.timed_out),
            KAGI__U(t.waiting), KAGI__U(t.generated_bits), KAGI__U(t.consumed_bits),
            KAGI__U(t.discarded_bits), KAGI__U(t.events), KAGI__U(t.blocks), KAGI__U(t.routes),
            KAGI__U(t.retries), KAGI__U(t.passes), KAGI__U(t.passes_night),
            KAGI__U(t.passes_used), KAGI__U(t.passes_with_key), KAGI__U(t.pass_key_bits));
    fprintf(f, "  \"nodes\": [");
    for (size_t i = 0; i < s->nn; i++) {
        const kagi_sc_node *n = &sc->nodes[i];
        uint64_t held = 0;
        for (uint32_t k = s->adj_off[i]; k < s->adj_off[i + 1]; k++) {
            kagi_sim_link_stats ls;
            kagi_sim_link(s, s->adj[k], &ls);
            held += ls.pool_bits;
        }
        fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
        kagi__jstr(f, n->name);
        kagi__jkn(f, "lat", n->lat_deg);
        kagi__jkn(f, "lon", n->lon_deg);
        fprintf(f, ", \"trusted\": %s, \"up\": %s, \"capacity_bits\": %llu, \"held_bits\": %llu}",
                n->trusted ? "true" : "false", s->up[i] ? "true" : "false",
                KAGI__U(n->capacity_bits), KAGI__U(held));
    }
    fprintf(f, "\n  ],\n  \"links\": [");
    for (size_t i = 0; i < s->nl; i++) {
        const kagi_sc_link *l = &sc->links[i];
        kagi_sim_link_stats ls;
        kagi_sim_link(s, i, &ls);
        fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
        kagi__jstr(f, l->name);
        kagi__jks(f, "a", sc->nodes[l->a].name);
        kagi__jks(f, "b", sc->nodes[l->b].name);
        fprintf(f, ", \"kind\": \"%s\", \"length_km\": ", kagi__kind_name(l->kind));
        kagi__jnum(f, ls.length_km);
        kagi__jkn(f, "rate_bps", ls.rate_bps);
        kagi__jkn(f, "qber", ls.qber);
        fprintf(f, ", \"block_bits\": %llu, \"block_s\": ", KAGI__U(ls.block_bits));
        kagi__jnum(f, ls.block_s);
        fprintf(f, ", \"pool_capacity_bits\": %llu, \"state\": \"%s\", \"generated_bits\": %llu, "
                   "\"stored_bits\": %llu, \"discarded_bits\": %llu, \"consumed_bits\": %llu, "
                   "\"pool_bits\": %llu, \"relay_messages\": %llu, \"relay_payload_bits\": %llu, "
                   "\"direct_keys\": %llu, \"direct_bits\": %llu",
                KAGI__U(ls.pool_capacity_bits), kagi__state_name(ls.state),
                KAGI__U(ls.generated_bits), KAGI__U(ls.stored_bits), KAGI__U(ls.discarded_bits),
                KAGI__U(ls.consumed_bits), KAGI__U(ls.pool_bits), KAGI__U(ls.relay_messages),
                KAGI__U(ls.relay_payload_bits), KAGI__U(ls.direct_keys), KAGI__U(ls.direct_bits));
        if (!l->sat) {
            fputc('}', f);
        } else {
            kagi__jks(f, "satellite", sc->nodes[sc->satellites[l->sat - 1].node].name);
            kagi__jks(f, "station", sc->nodes[sc->stations[l->gs - 1].node].name);
            kagi__jpc(f, &pc.link[i]);
        }
    }
    fprintf(f, "\n  ],\n  \"ground_stations\": [");
    for (size_t g = 0; g < sc->nstations; g++) {
        const kagi_sc_station *gs = &sc->stations[g];
        fprintf(f, "%s\n    {\"name\": ", g ? "," : "");
        kagi__jstr(f, sc->nodes[gs->node].name);
        kagi__jkn(f, "alt_m", gs->alt_m);
        kagi__jkn(f, "min_elevation_deg", gs->min_el_deg);
        kagi__jks(f, "link", gs->preset);
        kagi__jpc(f, &pc.gs[g]);
    }
    fprintf(f, "%s],\n  \"satellites\": [", sc->nstations ? "\n  " : "");
    for (size_t k = 0; k < sc->nsatellites; k++) {
        const kagi_sc_satellite *sa = &sc->satellites[k];
        char ep[KAGI_UTC_STRLEN];
        if (kagi_utc_format(sa->tle.epoch, 3, ep, sizeof ep) != KAGI_OK) ep[0] = 0;
        fprintf(f, "%s\n    {\"name\": ", k ? "," : "");
        kagi__jstr(f, sc->nodes[sa->node].name);
        kagi__jks(f, "catalogue_number", sa->tle.satnum);
        kagi__jks(f, "tle_epoch_utc", ep);
        kagi__jkn(f, "mean_motion_rev_per_day", sa->tle.mean_motion);
        kagi__jkn(f, "inclination_deg", sa->tle.incl_deg);
        kagi__jks(f, "link", sa->preset);
        fprintf(f, ", \"passes_per_block\": %u, \"night_only\": %s, \"pass_step_s\": ",
                sa->passes_per_block, sa->night_only ? "true" : "false");
        kagi__jnum(f, sa->step_s);
        kagi__jpc(f, &pc.sat[k]);
    }
    fprintf(f, "%s],\n  \"demands\": [", sc->nsatellites ? "\n  " : "");
    for (size_t i = 0; i < s->nd; i++) {
        const kagi_sc_demand *d = &sc->demands[i];
        kagi_sim_demand_stats ds;
        kagi_sim_demand(s, i, &ds);
        fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
        kagi__jstr(f, d->name);
        kagi__jks(f, "from", sc->nodes[d->src].name);
        kagi__jks(f, "to", sc->nodes[d->dst].name);
        fprintf(f, ", \"policy\": \"%s\", \"split\": %u, \"requests\": %llu, \"served\": %llu, "
                   "\"blocked\": %llu, \"timed_out\": %llu, \"waiting\": %llu, "
                   "\"served_bits\": %llu, \"drawn_bits\": %llu, \"hop_messages\": %llu, "
                   "\"route_computations\": %llu, \"wait_mean_s\": ",
                d->policy == KAGI_SC_BLOCK ? "block" : "wait", d->split, KAGI__U(ds.requests),
                KAGI__U(ds.served), KAGI__U(ds.blocked), KAGI__U(ds.timed_out),
                KAGI__U(ds.waiting), KAGI__U(ds.served_bits), KAGI__U(ds.drawn_bits),
                KAGI__U(ds.hop_messages), KAGI__U(ds.routes));
        kagi__jnum(f, ds.served ? ds.wait_total_s / (double)ds.served : 0);
        kagi__jkn(f, "wait_max_s", ds.wait_max_s);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"events\": [");
    for (size_t i = 0; i < s->nlog; i++) {
        const kagi_sim_log *e = &s->log[i];
        int node = e->kind == KAGI_SC_NODE_DOWN || e->kind == KAGI_SC_NODE_UP;
        fprintf(f, "%s\n    {\"at_s\": ", i ? "," : "");
        kagi__jnum(f, e->at_s);
        fprintf(f, ", \"kind\": \"%s\", \"%s\": ", kagi__event_name(e->kind),
                node ? "node" : "link");
        kagi__jstr(f, node ? sc->nodes[e->target].name : sc->links[e->target].name);
        fprintf(f, "}");
    }
    fprintf(f, "%s]\n}\n", s->nlog ? "\n  " : "");
    kagi__counts_free(&pc);
    return KAGI_OK;
}

int kagi_sim_write_metrics(const kagi_sim *s, const char *path)
{
    kagi__afile w;
    KAGI__TRY(kagi__afile_open(&w, path, 0644, 1));
    return kagi__afile_close(&w, kagi__metrics(s, w.f));
}

/* ---- CSV ------------------------------------------------------------------------- */

static int kagi__write_csv(const kagi_sim *s, const char *path, int links)
{
    kagi__afile w;
    KAGI__TRY(kagi__afile_open(&w, path, 0644, 1));
    FILE *f = w.f;
    const kagi_scenario *sc = s->sc;
    if (links)
        fputs("time_s,link,pool_bits,generated_bits,consumed_bits\n", f);
    else
        fputs("time_s,demand,served,blocked,timed_out,waiting\n", f);
    for (size_t k = 0; k < s->ns; k++) {
        double t = s->st[k];
        if (links)
            for (size_t i = 0; i < s->nl; i++)
                fprintf(f, "%.10g,%s,%llu,%llu,%llu\n", t, sc->links[i].name,
                        KAGI__U(kagi_sim_link_sample(s, k, i, KAGI_SIM_POOL)),
                        KAGI__U(kagi_sim_link_sample(s, k, i, KAGI_SIM_GENERATED)),
                        KAGI__U(kagi_sim_link_sample(s, k, i, KAGI_SIM_CONSUMED)));
        else
            for (size_t i = 0; i < s->nd; i++)
                fprintf(f, "%.10g,%s,%llu,%llu,%llu,%llu\n", t, sc->demands[i].name,
                        KAGI__U(kagi_sim_demand_sample(s, k, i, KAGI_SIM_SERVED)),
                        KAGI__U(kagi_sim_demand_sample(s, k, i, KAGI_SIM_BLOCKED)),
                        KAGI__U(kagi_sim_demand_sample(s, k, i, KAGI_SIM_TIMED_OUT)),
                        KAGI__U(kagi_sim_demand_sample(s, k, i, KAGI_SIM_WAITING)));
    }
    return kagi__afile_close(&w, KAGI_OK);
}

/* passes.csv: one row per pass of a satellite over a ground station. */
static int kagi__write_passes(const kagi_sim *s, const char *path)
{
    kagi__afile w;
    KAGI__TRY(kagi__afile_open(&w, path, 0644, 1));
    FILE *f = w.f;
    const kagi_scenario *sc = s->sc;
    fputs("satellite,station,aos_utc,los_utc,aos_s,tca_s,los_s,max_elevation_deg,light,used,"
          "block,pass_key_bits,key_bits\n", f);
    for (size_t j = 0; j < s->npass; j++) {
        const kagi_sim_pass *p = &s->pass[j];
        char a[KAGI_UTC_STRLEN], b[KAGI_UTC_STRLEN];
        kagi__utc_d(s, p->aos_s, 2, a);
        kagi__utc_d(s, p->los_s, 2, b);
        fprintf(f, "%s,%s,%s,%s,%.3f,%.3f,%.3f,%.3f,%s,%d,%u,%llu,%llu\n",
                sc->nodes[sc->satellites[p->sat].node].name, sc->nodes[sc->stations[p->gs].node].name,
                a, b, p->aos_s, p->tca_s, p->los_s, p->max_el_deg, kagi__light_name(p->light),
                p->used ? 1 : 0, p->block, KAGI__U(p->pass_key_bits), KAGI__U(p->key_bits));
    }
    return kagi__afile_close(&w, KAGI_OK);
}

/* ---- report.html ---------------------------------------------------------------- */

/* Sub-satellite point of sat at UTC t; 0 on success. */
static int kagi__subpoint(kagi_sat *sat, double t, double *lat, double *lon)
{
    double r[3], re[3], alt;
    if (kagi_sat_at(sat, t, r, NULL) != KAGI_OK) return -1;
    kagi_teme_to_ecef(t, r, NULL, re, NULL);
    kagi_ecef_to_geodetic(re, lat, lon, &alt);
    if (*lon > 180) *lon -= 360;
    return 0;
}

/* The map's projection: equirectangular, x shrunk by cos(mid latitude). */
typedef struct kagi__proj {
    double lo0, la1, kx, scale, ox, oy;
} kagi__proj;

static double kagi__px(const kagi__proj *p, double lon) { return p->ox + (lon - p->lo0) * p->kx * p->scale; }
static double kagi__py(const kagi__proj *p, double lat) { return p->oy + (p->la1 - lat) * p->scale; }

/* A ground track from UTC t0 to t1 every step seconds, as polylines broken
 * where it wraps around the antimeridian. */
static void kagi__track(FILE *f, const kagi__proj *pj, kagi_sat *sat, double t0, double t1,
                        double step, const char *style)
{
    double plon = 0;
    int open = 0;
    for (double t = t0;; t += step) {
        if (t > t1) t = t1;
        double la, lo;
        if (kagi__subpoint(sat, t, &la, &lo) != 0) break;
        if (open && fabs(lo - plon) > 180) {
            fputs("\"/>\n", f);
            open = 0;
        }
        if (!open) {
            fprintf(f, "<polyline fill=\"none\" %s points=\"", style);
            open = 1;
        }
        fprintf(f, "%.1f,%.1f ", kagi__px(pj, lo), kagi__py(pj, la));
        plon = lo;
        if (t >= t1) break;
    }
    if (open) fputs("\"/>\n", f);
}

/* The map: nodes at (lon, lat), links between them coloured by their state
 * at the end and as wide as the key they carried; ground stations as
 * triangles; satellites as their ground tracks (two orbits from the start,
 * faint) and the arcs of the passes that gave key, in their colour. */
static int kagi__map(const kagi_sim *s, FILE *f)
{
    const kagi_scenario *sc = s->sc;
    static const char *const pal[] = {"#CC79A7", "#009E73", "#E69F00", "#56B4E9", "#D55E00",
                                      "#0072B2", "#F0E442", "#999999"};
    const double W = 720, H = 450, M = 40, MR = s->nn <= 60 ? 120 : 40; /* room for labels */
    long *role = calloc(s->nn + 1, sizeof *role); /* 1 + station, -(1 + satellite) */
    if (!role) return kagi__err(KAGI_ERR_NOMEM, "report: out of memory");
    for (size_t g = 0; g < sc->nstations; g++) role[sc->stations[g].node] = (long)g + 1;
    for (size_t k = 0; k < sc->nsatellites; k++) role[sc->satellites[k].node] = -(long)k - 1;
    double la0 = 90, la1 = -90, lo0 = 180, lo1 = -180;
    size_t placed = 0;
    for (size_t i = 0; i < s->nn; i++) {
        const kagi_sc_node *n = &sc->nodes[i];
        if (role[i] < 0) continue; /* a satellite has no fixed place */
        placed++;
        if (n->lat_deg < la0) la0 = n->lat_deg;
        if (n->lat_deg > la1) la1 = n->lat_deg;
        if (n->lon_deg < lo0) lo0 = n->lon_deg;
        if (n->lon_deg > lo1) lo1 = n->lon_deg;
    }
    if (!placed) la0 = -60, la1 = 60, lo0 = -180, lo1 = 180;
    /* room for the passes: a ground station sees a satellite of orbit
     * radius a above elevation e within the Earth-central angle
     * acos(R cos e / a) - e of it */
    double amax = 0;
    for (size_t k = 0; k < sc->nsatellites; k++) {
        double n = sc->satellites[k].tle.mean_motion * 2 * 3.14159265358979323846 / 86400;
        double a = cbrt(398600.4418 / (n * n));
        if (a > amax) amax = a;
    }
    for (size_t g = 0; g < sc->nstations && amax > 6378.137; g++) {
        const kagi_sc_node *n = &sc->nodes[sc->stations[g].node];
        double e = sc->stations[g].min_el_deg * 3.14159265358979323846 / 180;
        double lam = (acos(6378.137 * cos(e) / amax) - e) * 180 / 3.14159265358979323846;
        double dl = fmin(lam / fmax(cos(n->lat_deg * 3.14159265358979323846 / 180), 0.2), 180);
        la0 = fmax(fmin(la0, n->lat_deg - lam), -85);
        la1 = fmin(fmax(la1, n->lat_deg + lam), 85);
        lo0 = fmax(fmin(lo0, n->lon_deg - dl), -180);
        lo1 = fmin(fmax(lo1, n->lon_deg + dl), 180);
    }
    kagi__proj pj;
    pj.kx = cos((la0 + la1) / 2 * 3.14159265358979323846 / 180);
    double sx = (lo1 - lo0) * pj.kx, sy = la1 - la0;
    if (sx < 1e-3) sx = 1e-3;
    if (sy < 1e-3) sy = 1e-3;
    pj.scale = fmin((W - M - MR) / sx, (H - 2 * M) / sy);
    pj.ox = M + (W - M - MR - sx * pj.scale) / 2;
    pj.oy = (H - sy * pj.scale) / 2;
    pj.lo0 = lo0;
    pj.la1 = la1;
#define KAGI__X(n) kagi__px(&pj, (n)->lon_deg)
#define KAGI__Y(n) kagi__py(&pj, (n)->lat_deg)
    uint64_t maxc = 1;
    for (size_t i = 0; i < s->nl; i++) {
        kagi_sim_link_stats ls;
        kagi_sim_link(s, i, &ls);
        if (ls.consumed_bits > maxc && !sc->links[i].sat) maxc = ls.consumed_bits;
    }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 720 450\" width=\"720\" "
               "height=\"450\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\">\n"
               "<title>Network map</title>\n<rect width=\"720\" height=\"450\" fill=\"#f7f9fb\"/>\n");
    if (sc->nsatellites) {
        /* ground tracks, clipped to the map above the legend */
        fputs("<defs><clipPath id=\"kagi-map\"><rect width=\"720\" height=\"424\"/></clipPath>"
              "</defs>\n<g clip-path=\"url(#kagi-map)\" stroke-linecap=\"round\" "
              "stroke-linejoin=\"round\">\n", f);
        size_t arcs = 0;
        const size_t max_tracks = 40, max_arcs = 400;
        for (size_t k = 0; k < sc->nsatellites && k < max_tracks; k++) {
            const kagi_sc_satellite *sa = &sc->satellites[k];
            kagi_sat *sat = NULL;
            if (kagi_sat_new(&sa->tle, &sat) != KAGI_OK) continue;
            const char *col = pal[k % 8];
            char style[160];
            double period = kagi_sat_period_min(sat) * 60, t0 = sc->start_utc;
            double span = fmin(2 * period, s->end);
            fprintf(f, "<g><title>");
            kagi__xml(f, sc->nodes[sa->node].name);
            fprintf(f, ": ground track, %s from the start</title>\n",
                    span < s->end ? "two orbits" : "the whole run");
            snprintf(style, sizeof style, "stroke=\"%s\" stroke-width=\"1\" stroke-opacity=\"0.45\" "
                     "stroke-dasharray=\"4 3\"", col);
            kagi__track(f, &pj, sat, t0, t0 + span, 60, style);
            fputs("</g>\n", f);
            snprintf(style, sizeof style, "stroke=\"%s\" stroke-width=\"3\"", col);
            for (size_t j = 0; j < s->npass && arcs < max_arcs; j++) {
                const kagi_sim_pass *p = &s->pass[j];
                if (p->sat != k || !p->used || !p->pass_key_bits) continue;
                char a[KAGI_UTC_STRLEN];
                kagi__utc(s, p->aos_s, a);
                fprintf(f, "<g><title>");
                kagi__xml(f, sc->nodes[sa->node].name);
                fputs(" over ", f);
                kagi__xml(f, sc->nodes[sc->stations[p->gs].node].name);
                fprintf(f, ", AOS %s, %.0f s, max elevation %.1f deg, key %llu bits</title>\n", a,
                        p->los_s - p->aos_s, p->max_el_deg, KAGI__U(p->pass_key_bits));
                kagi__track(f, &pj, sat, t0 + p->aos_s, t0 + p->los_s, 20, style);
                fputs("</g>\n", f);
                arcs++;
            }
            kagi_sat_free(sat);
        }
        fputs("</g>\n<g font-size=\"10\" fill=\"#444444\">\n", f);
        for (size_t k = 0; k < sc->nsatellites && k < 8; k++) {
            fprintf(f, "<line x1=\"12\" y1=\"%zu\" x2=\"32\" y2=\"%zu\" stroke=\"%s\" "
                       "stroke-width=\"3\"/><text x=\"36\" y=\"%zu\">", 14 + 14 * k, 14 + 14 * k,
                    pal[k % 8], 18 + 14 * k);
            kagi__xml(f, sc->nodes[sc->satellites[k].node].name);
            fputs(k == 0 ? ": passes with key (ground track dashed)</text>\n" : "</text>\n", f);
        }
        if (sc->nsatellites > 8)
            fprintf(f, "<text x=\"12\" y=\"%d\">... %zu satellites in all</text>\n", 18 + 14 * 8,
                    sc->nsatellites);
        fputs("</g>\n", f);
    }
    for (size_t i = 0; i < s->nl; i++) {
        const kagi_sc_link *l = &sc->links[i];
        if (l->sat) continue; /* drawn as ground tracks */
        kagi_sim_link_stats ls;
        kagi_sim_link(s, i, &ls);
        const kagi_sc_node *a = &sc->nodes[l->a], *b = &sc->nodes[l->b];
        const char *col = ls.state == KAGI_SIM_CUT ? "#D55E00"
                        : ls.state == KAGI_SIM_EAVESDROPPED ? "#E69F00"
                        : ls.state == KAGI_SIM_NODE_DOWN ? "#999999" : "#0072B2";
        const char *dash = ls.state == KAGI_SIM_CUT ? " stroke-dasharray=\"6 4\""
                         : ls.state == KAGI_SIM_EAVESDROPPED ? " stroke-dasharray=\"2 3\"" : "";
        double wdt = 1 + 4 * (double)ls.consumed_bits / (double)maxc;
        /* parallel links bow apart: the k-th of n between the same two
         * nodes bends by (k - (n - 1) / 2) * 14 px (small maps only) */
        size_t k = 0, n = 1;
        if (s->nl <= 2000)
            for (size_t j = 0; j < s->nl; j++) {
                const kagi_sc_link *o = &sc->links[j];
                if (j == i || !((o->a == l->a && o->b == l->b) || (o->a == l->b && o->b == l->a)))
                    continue;
                n++;
                if (j < i) k++;
            }
        double x1 = KAGI__X(a), y1 = KAGI__Y(a), x2 = KAGI__X(b), y2 = KAGI__Y(b);
        if (l->a > l->b) { /* one orientation for the bend, whatever the order of the ends */
            double tx = x1, ty = y1;
            x1 = x2, y1 = y2, x2 = tx, y2 = ty;
        }
        double len = hypot(x2 - x1, y2 - y1), off = ((double)k - (double)(n - 1) / 2) * 14;
        double cx = (x1 + x2) / 2 + (len > 0 ? -(y2 - y1) / len * off * 2 : 0);
        double cy = (y1 + y2) / 2 + (len > 0 ? (x2 - x1) / len * off * 2 : 0);
        fprintf(f, "<path d=\"M%.1f %.1f Q%.1f %.1f %.1f %.1f\" fill=\"none\" stroke=\"%s\" "
                   "stroke-width=\"%.1f\"%s stroke-linecap=\"round\"><title>",
                x1, y1, cx, cy, x2, y2, col, wdt, dash);
        kagi__xml(f, l->name);
        fprintf(f, ": %.1f km, %.4g bit/s, %s; generated %llu bits, consumed %llu bits, pool "
                   "%llu bits</title>", ls.length_km, ls.rate_bps,
                kagi__state_name(ls.state), KAGI__U(ls.generated_bits),
                KAGI__U(ls.consumed_bits), KAGI__U(ls.pool_bits));
        fputs("</path>\n", f);
    }
    double r = s->nn > 200 ? 2 : 5;
    /* labels: ground stations first, then the others where they do not
     * cover one already placed (a wide map squeezes a city's nodes) */
    double *lx = malloc((s->nn + 1) * 2 * sizeof *lx);
    size_t nlab = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < s->nn; i++) {
            const kagi_sc_node *n = &sc->nodes[i];
            if (role[i] < 0 || (pass == 0) != (role[i] > 0)) continue;
            double x = KAGI__X(n), y = KAGI__Y(n);
            const char *fill = !s->up[i] ? "#D55E00" : n->trusted ? "#222222" : "#ffffff";
            const char *stroke = !s->up[i] ? "#D55E00" : "#222222";
            if (role[i] > 0) {
                const kagi_sc_station *gs = &sc->stations[role[i] - 1];
                fprintf(f, "<path d=\"M%.1f %.1f l%.1f %.1f h%.1f z\" fill=\"%s\" stroke=\"%s\" "
                           "stroke-width=\"1.5\"><title>", x, y - 1.6 * r, 1.4 * r, 2.5 * r,
                        -2.8 * r, fill, stroke);
                kagi__xml(f, n->name);
                fprintf(f, ": ground station (%.4f, %.4f, %.0f m), passes above %g deg%s%s</title>"
                           "</path>\n", n->lat_deg, n->lon_deg, gs->alt_m, gs->min_el_deg,
                        n->trusted ? ", trusted" : ", not trusted", s->up[i] ? "" : ", down");
            } else {
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%g\" fill=\"%s\" stroke=\"%s\" "
                           "stroke-width=\"1.5\"><title>", x, y, r, fill, stroke);
                kagi__xml(f, n->name);
                fprintf(f, " (%.4f, %.4f)%s%s</title></circle>\n", n->lat_deg, n->lon_deg,
                        n->trusted ? ", trusted" : ", not trusted", s->up[i] ? "" : ", down");
            }
            if (s->nn > 60) continue;
            double tx = x + 7, ty = y - 6;
            int clash = 0;
            for (size_t q = 0; lx && q < nlab && !clash; q++)
                clash = fabs(lx[2 * q + 1] - ty) < 11 && fabs(lx[2 * q] - tx) < 70;
            if (clash && role[i] == 0) continue;
            if (lx) {
                lx[2 * nlab] = tx;
                lx[2 * nlab + 1] = ty;
                nlab++;
            }
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#222222\" stroke=\"#f7f9fb\" "
                       "stroke-width=\"3\" paint-order=\"stroke\">", tx, ty);
            kagi__xml(f, n->name);
            fputs("</text>\n", f);
        }
    free(lx);
#undef KAGI__X
#undef KAGI__Y
    fputs("<g font-size=\"10\" fill=\"#444444\">"
          "<line x1=\"12\" y1=\"436\" x2=\"32\" y2=\"436\" stroke=\"#0072B2\" stroke-width=\"3\"/>"
          "<text x=\"36\" y=\"440\">up (width: key consumed)</text>"
          "<line x1=\"170\" y1=\"436\" x2=\"190\" y2=\"436\" stroke=\"#D55E00\" stroke-width=\"3\" "
          "stroke-dasharray=\"6 4\"/><text x=\"194\" y=\"440\">cut</text>"
          "<line x1=\"230\" y1=\"436\" x2=\"250\" y2=\"436\" stroke=\"#E69F00\" stroke-width=\"3\" "
          "stroke-dasharray=\"2 3\"/><text x=\"254\" y=\"440\">eavesdropped</text>"
          "<circle cx=\"340\" cy=\"436\" r=\"4\" fill=\"#222222\"/><text x=\"348\" y=\"440\">"
          "trusted node</text><circle cx=\"430\" cy=\"436\" r=\"4\" fill=\"#ffffff\" "
          "stroke=\"#222222\"/><text x=\"438\" y=\"440\">untrusted</text>", f);
    if (sc->nsatellites)
        fprintf(f, "<path d=\"M506 430 l5 8 h-10 z\" fill=\"#222222\"/><text x=\"516\" y=\"440\">"
                   "ground station</text><line x1=\"598\" y1=\"436\" x2=\"618\" y2=\"436\" "
                   "stroke=\"%s\" stroke-width=\"3\"/><text x=\"622\" y=\"440\">pass with key"
                   "</text>", pal[0]);
    else
        fputs("<text x=\"708\" y=\"440\" text-anchor=\"end\">state at the end; equirectangular"
              "</text>", f);
    fputs("</g>\n</svg>\n", f);
    free(role);
    return KAGI_OK;
}

/* Time axis: a unit that suits the run. */
static double kagi__tunit(double end, const char **label)
{
    if (end <= 3 * 3600) {
        *label = "time (min)";
        return 60;
    }
    if (end <= 3 * 86400) {
        *label = "time (h)";
        return 3600;
    }
    *label = "time (days)";
    return 86400;
}

static double kagi__bunit(double maxv, const char **unit)
{
    if (maxv >= 1e9) return *unit = "Gbit", 1e9;
    if (maxv >= 1e6) return *unit = "Mbit", 1e6;
    if (maxv >= 1e3) return *unit = "kbit", 1e3;
    *unit = "bit";
    return 1;
}

/* Draw a chart with kagi/plot.h and copy its SVG (less the XML
 * declaration) into f. The chart goes through a temporary file in dir,
 * removed afterwards. */
static int kagi__embed(kagi_plot *p, const char *dir, FILE *f)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/.kagi-chart-XXXXXX", dir) >= (int)sizeof path)
        return kagi__err(KAGI_ERR_IO, "%s: path too long", dir);
    int fd = mkstemp(path);
    if (fd < 0) return kagi__err(KAGI_ERR_IO, "%s: cannot create a chart: %s", dir, strerror(errno));
    close(fd);
    int rc = kagi_plot_write(p, path);
    FILE *in = rc == KAGI_OK ? fopen(path, "r") : NULL;
    if (rc == KAGI_OK && !in) rc = kagi__err(KAGI_ERR_IO, "%s: cannot read back: %s", path, strerror(errno));
    if (in) {
        char line[8192];
        int first = 1;
        while (fgets(line, sizeof line, in)) {
            if (first && !strncmp(line, "<?xml", 5)) {
                first = 0;
                continue;
            }
            first = 0;
            fputs(line, f);
        }
        fclose(in);
    }
    unlink(path);
    return rc;
}

typedef struct kagi__rank {
    uint64_t v;
    size_t i;
} kagi__rank;

static int kagi__rank_cmp(const void *a, const void *b)
{
    const kagi__rank *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* A chart of the pool levels of the (up to) 8 links of rk[0..m) with the
 * largest v, scaled to one byte unit; rk is sorted in place. */
static int kagi__pool_chart(const kagi_sim *s, const char *dir, FILE *f, kagi__rank *rk, size_t m,
                            const double *x, double *y, const char *tl, const char *title,
                            const char *subtitle)
{
    const kagi_scenario *sc = s->sc;
    size_t ns = s->ns;
    uint64_t maxv = 1;
    const char *bu;
    char ylab[96];
    qsort(rk, m, sizeof *rk, kagi__rank_cmp);
    if (m > 8) m = 8;
    for (size_t j = 0; j < m; j++)
        for (size_t k = 0; k < ns; k++) {
            uint64_t v = kagi_sim_link_sample(s, k, rk[j].i, KAGI_SIM_POOL);
            if (v > maxv) maxv = v;
        }
    double bs = kagi__bunit((double)maxv, &bu);
    snprintf(ylab, sizeof ylab, "key in pool (%s)", bu);
    kagi_plot *p = NULL;
    int rc = kagi_plot_new(&p, title, tl, ylab, KAGI_PLOT_LINEAR);
    if (!rc && subtitle) rc = kagi_plot_subtitle(p, subtitle);
    for (size_t j = 0; j < m && !rc; j++) {
        for (size_t k = 0; k < ns; k++)
            y[k] = (double)kagi_sim_link_sample(s, k, rk[j].i, KAGI_SIM_POOL) / bs;
        rc = kagi_plot_series(p, sc->links[rk[j].i].name, x, y, ns, KAGI_PLOT_SOLID, 0);
    }
    if (!rc) {
        fputs("<figure>", f);
        rc = kagi__embed(p, dir, f);
        fputs("</figure>\n", f);
    }
    kagi_plot_free(p);
    return rc;
}

static int kagi__charts(const kagi_sim *s, const char *dir, FILE *f)
{
    const kagi_scenario *sc = s->sc;
    size_t ns = s->ns;
    if (ns == 0) return KAGI_OK;
    const char *tl, *bu;
    double tu = kagi__tunit(s->end, &tl);
    double *x = malloc(ns * sizeof *x), *y = malloc(ns * sizeof *y), *y2 = malloc(ns * sizeof *y2);
    kagi__rank *rk = malloc((s->nl > s->nd ? s->nl : s->nd) * sizeof *rk + sizeof *rk);
    int rc = x && y && y2 && rk ? KAGI_OK : kagi__err(KAGI_ERR_NOMEM, "report: out of memory");
    for (size_t k = 0; k < ns && !rc; k++) x[k] = s->st[k] / tu;
    char ylab[96];
    kagi_plot *p = NULL;
    /* 1: pool levels of the busiest links */
    if (!rc && s->nl) {
        size_t m = 0;
        for (size_t i = 0; i < s->nl; i++) {
            rk[m].v = s->lk[i].consumed;
            rk[m++].i = i;
        }
        rc = kagi__pool_chart(s, dir, f, rk, m, x, y, tl, "Key pools of the busiest links",
                              s->nl > 8 ? "the 8 links that consumed the most key" : NULL);
    }
    /* 1b: the satellite links' pools: they fill at passes and are far
     * smaller than fibre pools, so they get a chart of their own */
    size_t nsat_links = 0;
    for (size_t i = 0; i < s->nl; i++) nsat_links += sc->links[i].sat != 0;
    if (!rc && nsat_links) {
        size_t m = 0;
        for (size_t i = 0; i < s->nl; i++)
            if (sc->links[i].sat) {
                rk[m].v = s->lk[i].generated;
                rk[m++].i = i;
            }
        rc = kagi__pool_chart(s, dir, f, rk, m, x, y, tl, "Key pools of the satellite links",
                              nsat_links > 8 ? "the 8 that generated the most key; each pass's "
                                               "key lands at its LOS"
                                             : "each pass's key lands at its LOS");
    }
    /* 2: key generated and consumed, whole network */
    if (!rc && s->nl) {
        double maxv = 1;
        for (size_t k = 0; k < ns; k++) {
            double g = 0, c = 0;
            for (size_t i = 0; i < s->nl; i++) {
                g += (double)kagi_sim_link_sample(s, k, i, KAGI_SIM_GENERATED);
                c += (double)kagi_sim_link_sample(s, k, i, KAGI_SIM_CONSUMED);
            }
            y[k] = g;
            y2[k] = c;
            if (g > maxv) maxv = g;
        }
        double bs = kagi__bunit(maxv, &bu);
        for (size_t k = 0; k < ns; k++) {
            y[k] /= bs;
            y2[k] /= bs;
        }
        snprintf(ylab, sizeof ylab, "key since the start (%s)", bu);
        rc = kagi_plot_new(&p, "Key generated and consumed, all links", tl, ylab,
                           KAGI_PLOT_LINEAR);
        if (!rc) rc = kagi_plot_series(p, "generated", x, y, ns, KAGI_PLOT_SOLID, 0);
        if (!rc) rc = kagi_plot_series(p, "consumed (relay hops and direct keys)", x, y2, ns,
                                       KAGI_PLOT_DASHED, 0);
        if (!rc) {
            fputs("<figure>", f);
            rc = kagi__embed(p, dir, f);
            fputs("</figure>\n", f);
        }
        kagi_plot_free(p);
        p = NULL;
    }
    /* 3: requests served, blocked, timed out, waiting: all demands */
    if (!rc && s->nd) {
        static const char *const nm[] = {"served", "blocked", "timed out", "waiting"};
        rc = kagi_plot_new(&p, "Key requests, all demands", tl, "requests since the start",
                           KAGI_PLOT_LINEAR);
        if (!rc) rc = kagi_plot_subtitle(p, "waiting: requests in the queues at that time");
        for (int w = 0; w < 4 && !rc; w++) {
            for (size_t k = 0; k < ns; k++) {
                double v = 0;
                for (size_t i = 0; i < s->nd; i++) v += (double)kagi_sim_demand_sample(s, k, i, w);
                y[k] = v;
            }
            rc = kagi_plot_series(p, nm[w], x, y, ns, w == 3 ? KAGI_PLOT_DOTTED : KAGI_PLOT_SOLID,
                                  0);
        }
        if (!rc) {
            fputs("<figure>", f);
            rc = kagi__embed(p, dir, f);
            fputs("</figure>\n", f);
        }
        kagi_plot_free(p);
        p = NULL;
    }
    free(x);
    free(y);
    free(y2);
    free(rk);
    return rc;
}

static void kagi__td_u(FILE *f, uint64_t v) { fprintf(f, "<td class=\"n\">%llu</td>", KAGI__U(v)); }

static void kagi__td_s(FILE *f, const char *s)
{
    fputs("<td>", f);
    kagi__xml(f, s);
    fputs("</td>", f);
}

static int kagi__report(const kagi_sim *s, const char *dir, FILE *f)
{
    const kagi_scenario *sc = s->sc;
    kagi_sim_totals t;
    kagi_sim_get_totals(s, &t);
    char dur[48], smp[48];
    kagi_duration_format(t.now_s, dur, sizeof dur);
    kagi_duration_format(s->sample_s, smp, sizeof smp);
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>kagi sim: ", f);
    kagi__xml(f, sc->name[0] ? sc->name : sc->origin);
    fputs("</title>\n<style>\nbody{font-family:sans-serif;margin:2em auto;max-width:960px;"
          "color:#222;padding:0 1em}\ntable{border-collapse:collapse;margin:1em 0;font-size:13px}"
          "\nth,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}\n"
          "td.n{text-align:right;font-variant-numeric:tabular-nums}\nfigure{margin:1em 0}\n"
          "svg{max-width:100%;height:auto}\n.note{color:#666;font-size:13px}\n</style>\n"
          "</head>\n<body>\n<h1>", f);
    kagi__xml(f, sc->name[0] ? sc->name : "QKD network simulation");
    fprintf(f, "</h1>\n<p class=\"note\">Scenario ");
    kagi__xml(f, sc->origin[0] ? sc->origin : "(built in code)");
    fprintf(f, ", %zu nodes, %zu links, %zu demands; simulated %s, seed %llu, samples every %s. "
               "Key material is counted, not simulated bit by bit; relayed keys cost their size "
               "plus %llu bits of authentication key on every hop.</p>\n",
            s->nn, s->nl, s->nd, dur, KAGI__U(t.seed), smp, KAGI__U(sc->mac_bits));
    fprintf(f, "<h2>Summary</h2>\n<table>\n<tr><th>requests</th><th>served</th><th>blocked</th>"
               "<th>timed out</th><th>waiting at the end</th><th>key generated (bits)</th>"
               "<th>key consumed (bits)</th><th>discarded, pools full (bits)</th></tr>\n<tr>");
    kagi__td_u(f, t.requests);
    kagi__td_u(f, t.served);
    kagi__td_u(f, t.blocked);
    kagi__td_u(f, t.timed_out);
    kagi__td_u(f, t.waiting);
    kagi__td_u(f, t.generated_bits);
    kagi__td_u(f, t.consumed_bits);
    kagi__td_u(f, t.discarded_bits);
    fputs("</tr>\n</table>\n", f);
    if (sc->nsatellites) {
        char st[KAGI_UTC_STRLEN];
        kagi__utc(s, 0, st);
        fprintf(f, "<p>%zu satellite%s over %zu ground station%s from %s: %llu passes, %llu of "
                   "them at night; %llu used for key, %llu giving key on their own; %llu bits of "
                   "key in their windows.</p>\n", sc->nsatellites, sc->nsatellites == 1 ? "" : "s",
                sc->nstations, sc->nstations == 1 ? "" : "s", st, KAGI__U(t.passes),
                KAGI__U(t.passes_night), KAGI__U(t.passes_used), KAGI__U(t.passes_with_key),
                KAGI__U(t.pass_key_bits));
    }
    fputs("<h2>Network</h2>\n", f);
    KAGI__TRY(kagi__map(s, f));
    fputs("<h2>Time series</h2>\n", f);
    KAGI__TRY(kagi__charts(s, dir, f));
    const size_t cap = 300;
    fputs("<h2>Links</h2>\n<table>\n<tr><th>link</th><th>ends</th><th>kind</th>"
          "<th>length (km)</th><th>rate (bit/s)</th><th>QBER</th><th>state</th>"
          "<th>generated (bits)</th><th>consumed (bits)</th><th>pool (bits)</th>"
          "<th>discarded (bits)</th><th>relay messages</th></tr>\n", f);
    for (size_t i = 0; i < s->nl && i < cap; i++) {
        const kagi_sc_link *l = &sc->links[i];
        kagi_sim_link_stats ls;
        kagi_sim_link(s, i, &ls);
        fputs("<tr>", f);
        kagi__td_s(f, l->name);
        fputs("<td>", f);
        kagi__xml(f, sc->nodes[l->a].name);
        fputs(" &ndash; ", f);
        kagi__xml(f, sc->nodes[l->b].name);
        char len[32], qb[32];
        snprintf(len, sizeof len, isfinite(ls.length_km) ? "%.1f" : "-", ls.length_km);
        snprintf(qb, sizeof qb, isfinite(ls.qber) ? "%.2f%%" : "-", 100 * ls.qber);
        fprintf(f, "</td><td>%s</td><td class=\"n\">%s</td><td class=\"n\">%.4g</td>"
                   "<td class=\"n\">%s</td><td>%s</td>",
                l->sat ? "satellite" : kagi__kind_name(l->kind), len, ls.rate_bps, qb,
                kagi__state_name(ls.state));
        kagi__td_u(f, ls.generated_bits);
        kagi__td_u(f, ls.consumed_bits);
        kagi__td_u(f, ls.pool_bits);
        kagi__td_u(f, ls.discarded_bits);
        kagi__td_u(f, ls.relay_messages);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    if (s->nl > cap)
        fprintf(f, "<p class=\"note\">First %zu of %zu links; metrics.json has them all.</p>\n",
                cap, s->nl);
    fputs("<h2>Demands</h2>\n<table>\n<tr><th>demand</th><th>from</th><th>to</th>"
          "<th>policy</th><th>requests</th><th>served</th><th>blocked</th><th>timed out</th>"
          "<th>waiting</th><th>key served (bits)</th><th>mean wait (s)</th>"
          "<th>longest wait (s)</th></tr>\n", f);
    for (size_t i = 0; i < s->nd && i < cap; i++) {
        const kagi_sc_demand *d = &sc->demands[i];
        kagi_sim_demand_stats ds;
        kagi_sim_demand(s, i, &ds);
        fputs("<tr>", f);
        kagi__td_s(f, d->name);
        kagi__td_s(f, sc->nodes[d->src].name);
        kagi__td_s(f, sc->nodes[d->dst].name);
        fprintf(f, "<td>%s%s</td>", d->policy == KAGI_SC_BLOCK ? "block" : "wait",
                d->split > 1 ? ", split" : "");
        kagi__td_u(f, ds.requests);
        kagi__td_u(f, ds.served);
        kagi__td_u(f, ds.blocked);
        kagi__td_u(f, ds.timed_out);
        kagi__td_u(f, ds.waiting);
        kagi__td_u(f, ds.served_bits);
        fprintf(f, "<td class=\"n\">%.3g</td><td class=\"n\">%.3g</td></tr>\n",
                ds.served ? ds.wait_total_s / (double)ds.served : 0.0, ds.wait_max_s);
    }
    fputs("</table>\n", f);
    if (s->nd > cap)
        fprintf(f, "<p class=\"note\">First %zu of %zu demands; metrics.json has them all.</p>\n",
                cap, s->nd);
    if (s->npass) {
        fputs("<h2>Satellite passes</h2>\n<table>\n<tr><th>satellite</th><th>station</th>"
              "<th>AOS (UTC)</th><th>duration (s)</th><th>max elevation (deg)</th><th>light</th>"
              "<th>used</th><th>pass key (bits)</th><th>key at LOS (bits)</th></tr>\n", f);
        /* the passes that gave key first, then the rest, in time order each */
        size_t shown = 0;
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < s->npass && shown < cap; j++) {
                const kagi_sim_pass *p = &s->pass[j];
                if ((pass == 0) != (p->key_bits > 0)) continue;
                char a[KAGI_UTC_STRLEN];
                kagi__utc(s, p->aos_s, a);
                fputs("<tr>", f);
                kagi__td_s(f, sc->nodes[sc->satellites[p->sat].node].name);
                kagi__td_s(f, sc->nodes[sc->stations[p->gs].node].name);
                fprintf(f, "<td>%s</td><td class=\"n\">%.0f</td><td class=\"n\">%.1f</td>"
                           "<td>%s</td><td>%s</td>", a, p->los_s - p->aos_s, p->max_el_deg,
                        kagi__light_name(p->light), p->used ? "yes" : "no");
                kagi__td_u(f, p->pass_key_bits);
                kagi__td_u(f, p->key_bits);
                fputs("</tr>\n", f);
                shown++;
            }
        fputs("</table>\n", f);
        fprintf(f, "<p class=\"note\">%s%zu passes; passes.csv has them all. The key of a pass "
                   "reaches its satellite link's pool at its LOS (with passes_per_block above 1, "
                   "a block's key at its last pass's LOS).</p>\n",
                s->npass > cap ? "The passes that gave key first; " : "", s->npass);
    }
    if (s->nlog) {
        fputs("<h2>Events</h2>\n<table>\n<tr><th>at</th><th>event</th><th>on</th></tr>\n", f);
        for (size_t i = 0; i < s->nlog && i < cap; i++) {
            const kagi_sim_log *e = &s->log[i];
            char at[48];
            kagi_duration_format(e->at_s, at, sizeof at);
            int node = e->kind == KAGI_SC_NODE_DOWN || e->kind == KAGI_SC_NODE_UP;
            fprintf(f, "<tr><td>%s</td><td>%s</td>", at, kagi__event_name(e->kind));
            kagi__td_s(f, node ? sc->nodes[e->target].name : sc->links[e->target].name);
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    fputs("<p class=\"note\">Made by kagi sim. The figures are in metrics.json, the time series "
          "in links.csv and demands.csv, the satellite passes in passes.csv beside this page."
          "</p>\n</body>\n</html>\n", f);
    return KAGI_OK;
}

int kagi_sim_write(const kagi_sim *s, const char *dir)
{
    KAGI__TRY(kagi__mkdirs(dir));
    char path[4096];
    static const char *const names[] = {"metrics.json", "links.csv", "demands.csv", "passes.csv",
                                        "report.html"};
    for (int k = 0; k < 5; k++) {
        if (snprintf(path, sizeof path, "%s/%s", dir, names[k]) >= (int)sizeof path)
            return kagi__err(KAGI_ERR_IO, "%s: path too long", dir);
        if (k == 0) {
            KAGI__TRY(kagi_sim_write_metrics(s, path));
        } else if (k < 3) {
            KAGI__TRY(kagi__write_csv(s, path, k == 1));
        } else if (k == 3) {
            KAGI__TRY(kagi__write_passes(s, path));
        } else {
            kagi__afile w;
            KAGI__TRY(kagi__afile_open(&w, path, 0644, 1));
            int rc = kagi__report(s, dir, w.f);
            KAGI__TRY(kagi__afile_close(&w, rc));
        }
    }
    return KAGI_OK;
}
