/* The simulator's feed for the dashboard (kagi/serve.h, docs/dashboard.md):
 * JSON documents of what a network looks like (topology), how it stands
 * now (state), how it stood at a recorded sample (for replay) and the
 * time series of one item. Counts and rates only: the simulator holds no
 * key material, and nothing here invents any.
 *
 * Per-link and per-demand figures go out as columns (one array per
 * figure, indexed like the scenario's links and demands) so that a state
 * of the 1,000-node benchmark network stays a few hundred kB. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/orbit.h"
#include "kagi/serve.h"
#include "sim_internal.h"

#define KAGI__ROUTES_MAX 200   /* demands whose route goes out with each state */
#define KAGI__PASSES_MAX 2000  /* passes listed in the topology (the first) */
#define KAGI__EVENTS_MAX 200   /* latest events in a state */

struct kagi_live {
    const kagi_sim *s;
    kagi_sat **sat;           /* one SGP4 object per satellite (NULL if it failed) */
    size_t nsat;
    uint8_t *up, *cut, *eve;  /* scratch: states replayed from the event log */
};

int kagi_live_new(const kagi_sim *s, kagi_live **out)
{
    *out = NULL;
    const kagi_scenario *sc = s->sc;
    kagi_live *l = calloc(1, sizeof *l);
    KAGI__FAIL_IF(!l, KAGI_ERR_NOMEM, "dashboard: out of memory");
    l->s = s;
    l->nsat = sc->nsatellites;
    l->sat = calloc(l->nsat + 1, sizeof *l->sat);
    l->up = malloc(s->nn + 1);
    l->cut = malloc(s->nl + 1);
    l->eve = malloc(s->nl + 1);
    if (!l->sat || !l->up || !l->cut || !l->eve) {
        kagi_live_free(l);
        return kagi__err(KAGI_ERR_NOMEM, "dashboard: out of memory");
    }
    /* a satellite SGP4 cannot set up is shown without a position */
    for (size_t k = 0; k < l->nsat; k++)
        if (kagi_sat_new(&sc->satellites[k].tle, &l->sat[k]) != KAGI_OK) l->sat[k] = NULL;
    *out = l;
    return KAGI_OK;
}

void kagi_live_free(kagi_live *l)
{
    if (!l) return;
    for (size_t k = 0; l->sat && k < l->nsat; k++) kagi_sat_free(l->sat[k]);
    free(l->sat);
    free(l->up);
    free(l->cut);
    free(l->eve);
    free(l);
}

/* ---- JSON writers into a kagi_buf ------------------------------------------ */

static void kagi__s(kagi_buf *b, const char *s)
{
    kagi_buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') kagi_buf_printf(b, "\\%c", c);
        else if (c < 0x20) kagi_buf_printf(b, "\\u%04x", c);
        else kagi_buf_put(b, s, 1);
    }
    kagi_buf_put(b, "\"", 1);
}

/* A number, or null when not finite (JSON has no infinity). */
static void kagi__n(kagi_buf *b, double v)
{
    if (isfinite(v)) kagi_buf_printf(b, "%.6g", v);
    else kagi_buf_put(b, "null", 4);
}

static void kagi__u(kagi_buf *b, uint64_t v) { kagi_buf_printf(b, "%llu", (unsigned long long)v); }

static int kagi__done(kagi_buf *b)
{
    return b->err ? b->err : KAGI_OK;
}

static const char *kagi__item(const kagi_scenario *sc, kagi_sc_event_kind k, size_t target)
{
    int node = k == KAGI_SC_NODE_DOWN || k == KAGI_SC_NODE_UP;
    return node ? sc->nodes[target].name : sc->links[target].name;
}

/* ---- topology ---------------------------------------------------------------- */

int kagi_live_topology(kagi_live *l, const char *mode, kagi_buf *b)
{
    const kagi_sim *s = l->s;
    const kagi_scenario *sc = s->sc;
    char when[KAGI_UTC_STRLEN] = "";
    if (isfinite(sc->start_utc) && kagi_utc_format(sc->start_utc, 0, when, sizeof when) != KAGI_OK)
        when[0] = 0;
    kagi_buf_printf(b, "{\"mode\": ");
    kagi__s(b, mode);
    kagi_buf_printf(b, ", \"name\": ");
    kagi__s(b, sc->name);
    kagi_buf_printf(b, ", \"source\": ");
    kagi__s(b, sc->origin);
    kagi_buf_printf(b, ", \"start_utc\": ");
    if (when[0]) kagi__s(b, when);
    else kagi_buf_printf(b, "null");
    kagi_buf_printf(b, ", \"end_s\": ");
    kagi__n(b, s->end);
    kagi_buf_printf(b, ", \"sample_s\": ");
    kagi__n(b, s->sample_s);
    kagi_buf_printf(b, ", \"mac_bits\": %llu,\n\"nodes\": [", (unsigned long long)sc->mac_bits);
    for (size_t i = 0; i < s->nn; i++) {
        const kagi_sc_node *n = &sc->nodes[i];
        const char *role = "node";
        for (size_t g = 0; g < sc->nstations; g++)
            if (sc->stations[g].node == i) role = "station";
        for (size_t k = 0; k < sc->nsatellites; k++)
            if (sc->satellites[k].node == i) role = "satellite";
        kagi_buf_printf(b, "%s{\"name\": ", i ? ",\n" : "");
        kagi__s(b, n->name);
        kagi_buf_printf(b, ", \"lat\": %.5f, \"lon\": %.5f, \"role\": \"%s\", \"trusted\": %s, "
                "\"capacity_bits\": ", n->lat_deg, n->lon_deg, role,
                n->trusted ? "true" : "false");
        kagi__u(b, n->capacity_bits);
        kagi_buf_printf(b, "}");
    }
    kagi_buf_printf(b, "],\n\"links\": [");
    for (size_t i = 0; i < s->nl; i++) {
        const kagi_sc_link *k = &sc->links[i];
        kagi_sim_link_stats st;
        kagi_sim_link(s, i, &st);
        kagi_buf_printf(b, "%s{\"name\": ", i ? ",\n" : "");
        kagi__s(b, k->name);
        kagi_buf_printf(b, ", \"a\": %zu, \"b\": %zu, \"kind\": \"%s\", \"satellite\": %s, "
                "\"length_km\": ", k->a, k->b,
                kagi__kind_name(k->kind),
                k->sat ? "true" : "false");
        kagi__n(b, st.length_km);
        kagi_buf_printf(b, ", \"rate_bps\": ");
        kagi__n(b, st.rate_bps);
        kagi_buf_printf(b, ", \"qber\": ");
        kagi__n(b, s->lk[i].qber_model);
        kagi_buf_printf(b, ", \"capacity_bits\": ");
        kagi__u(b, st.pool_capacity_bits);
        kagi_buf_printf(b, "}");
    }
    kagi_buf_printf(b, "],\n\"demands\": [");
    for (size_t i = 0; i < s->nd; i++) {
        const kagi_sc_demand *d = &sc->demands[i];
        kagi_buf_printf(b, "%s{\"name\": ", i ? ",\n" : "");
        kagi__s(b, d->name);
        kagi_buf_printf(b, ", \"from\": %zu, \"to\": %zu, \"key_bits\": %llu, \"policy\": \"%s\", "
                "\"split\": %u}", d->src, d->dst, (unsigned long long)d->key_bits,
                d->policy == KAGI_SC_BLOCK ? "block" : "wait", d->split);
    }
    kagi_buf_printf(b, "],\n\"satellites\": [");
    for (size_t k = 0; k < sc->nsatellites; k++) {
        kagi_buf_printf(b, "%s{\"name\": ", k ? ", " : "");
        kagi__s(b, sc->nodes[sc->satellites[k].node].name);
        kagi_buf_printf(b, ", \"node\": %zu, \"period_s\": ", sc->satellites[k].node);
        kagi__n(b, l->sat[k] ? kagi_sat_period_min(l->sat[k]) * 60 : NAN);
        kagi_buf_printf(b, "}");
    }
    kagi_buf_printf(b, "],\n\"passes\": [");
    for (size_t j = 0; j < s->npass && j < KAGI__PASSES_MAX; j++) {
        const kagi_sim_pass *p = &s->pass[j];
        kagi_buf_printf(b, "%s{\"link\": %zu, \"aos_s\": %.1f, \"los_s\": %.1f, \"max_el_deg\": %.1f, "
                "\"key_bits\": %llu}", j ? ",\n" : "", p->link, p->aos_s, p->los_s,
                p->max_el_deg, (unsigned long long)p->key_bits);
    }
    kagi_buf_printf(b, "],\n\"planned_events\": [");
    for (size_t i = 0; i < sc->nevents; i++) {
        const kagi_sc_event *e = &sc->events[i];
        kagi_buf_printf(b, "%s{\"at_s\": ", i ? ",\n" : "");
        kagi__n(b, e->at_s);
        kagi_buf_printf(b, ", \"kind\": \"%s\", \"target\": %zu, \"name\": ", kagi__event_name(e->kind),
                e->target);
        kagi__s(b, kagi__item(sc, e->kind, e->target));
        kagi_buf_printf(b, "}");
    }
    kagi_buf_printf(b, "]}\n");
    return kagi__done(b);
}

/* ---- pieces shared by state and sample ------------------------------------- */

/* Satellites at simulated time t: sub-point and the ground track from
 * half an orbit before to half after, every minute, as [lon, lat, ...]. */
static void kagi__sats(kagi_live *l, double t, kagi_buf *b)
{
    const kagi_scenario *sc = l->s->sc;
    kagi_buf_printf(b, ",\n\"satellites\": [");
    for (size_t k = 0; k < l->nsat; k++) {
        kagi_buf_printf(b, "%s{", k ? ",\n" : "");
        double r[3], re[3], la, lo, alt;
        double t0 = sc->start_utc + t;
        if (!l->sat[k] || !isfinite(t0) || kagi_sat_at(l->sat[k], t0, r, NULL) != KAGI_OK) {
            kagi_buf_printf(b, "\"lat\": null, \"lon\": null, \"track\": []}");
            continue;
        }
        kagi_teme_to_ecef(t0, r, NULL, re, NULL);
        kagi_ecef_to_geodetic(re, &la, &lo, &alt);
        if (lo > 180) lo -= 360;
        kagi_buf_printf(b, "\"lat\": %.3f, \"lon\": %.3f, \"alt_km\": %.1f, \"track\": [", la, lo, alt);
        double half = kagi_sat_period_min(l->sat[k]) * 30;
        int first = 1;
        for (double u = -half; u <= half + 1e-9; u += 60) {
            if (kagi_sat_at(l->sat[k], t0 + u, r, NULL) != KAGI_OK) break;
            kagi_teme_to_ecef(t0 + u, r, NULL, re, NULL);
            kagi_ecef_to_geodetic(re, &la, &lo, &alt);
            if (lo > 180) lo -= 360;
            kagi_buf_printf(b, "%s%.2f,%.2f", first ? "" : ",", lo, la);
            first = 0;
        }
        kagi_buf_printf(b, "]}");
    }
    kagi_buf_printf(b, "],\n\"passes_now\": [");
    int first = 1;
    for (size_t j = 0; j < l->s->npass; j++) {
        const kagi_sim_pass *p = &l->s->pass[j];
        if (p->aos_s <= t && t < p->los_s) {
            kagi_buf_printf(b, "%s%zu", first ? "" : ",", p->link);
            first = 0;
        }
    }
    kagi_buf_printf(b, "]");
}

/* The events applied up to t (the latest KAGI__EVENTS_MAX). */
static void kagi__events(const kagi_sim *s, double t, kagi_buf *b)
{
    size_t n = 0;
    while (n < s->nlog && s->log[n].at_s <= t) n++;
    size_t from = n > KAGI__EVENTS_MAX ? n - KAGI__EVENTS_MAX : 0;
    kagi_buf_printf(b, ",\n\"events_applied\": %zu, \"events\": [", n);
    for (size_t i = from; i < n; i++) {
        const kagi_sim_log *e = &s->log[i];
        kagi_buf_printf(b, "%s{\"at_s\": ", i > from ? ",\n" : "");
        kagi__n(b, e->at_s);
        kagi_buf_printf(b, ", \"kind\": \"%s\", \"target\": %zu, \"name\": ", kagi__event_name(e->kind),
                e->target);
        kagi__s(b, kagi__item(s->sc, e->kind, e->target));
        kagi_buf_printf(b, "}");
    }
    kagi_buf_printf(b, "]");
}

/* A column of n unsigned values. */
#define KAGI__COL(b, key, n, expr)                                                               \
    do {                                                                                         \
        kagi_buf_printf(b, "%s\"%s\": [", first_col ? "" : ",\n", key);                                  \
        first_col = 0;                                                                           \
        for (size_t i = 0; i < (n); i++) {                                                       \
            if (i) kagi_buf_put(b, ",", 1);                                                      \
            kagi__u(b, (uint64_t)(expr));                                                        \
        }                                                                                        \
        kagi_buf_put(b, "]", 1);                                                                 \
    } while (0)

/* ---- state now ------------------------------------------------------------------ */

int kagi_live_state(kagi_live *l, uint64_t seq, double speed, int done, kagi_buf *b)
{
    const kagi_sim *s = l->s;
    kagi_sim_link_stats *ls = malloc((s->nl + 1) * sizeof *ls);
    kagi_sim_demand_stats *ds = malloc((s->nd + 1) * sizeof *ds);
    if (!ls || !ds) {
        free(ls);
        free(ds);
        return kagi__err(KAGI_ERR_NOMEM, "dashboard: out of memory");
    }
    for (size_t i = 0; i < s->nl; i++) kagi_sim_link(s, i, &ls[i]);
    for (size_t i = 0; i < s->nd; i++) kagi_sim_demand(s, i, &ds[i]);
    kagi_sim_totals t;
    kagi_sim_get_totals(s, &t);
    kagi_buf_printf(b, "{\"seq\": %llu, \"t_s\": ", (unsigned long long)seq);
    kagi__n(b, t.now_s);
    kagi_buf_printf(b, ", \"end_s\": ");
    kagi__n(b, t.end_s);
    kagi_buf_printf(b, ", \"speed\": ");
    kagi__n(b, speed);
    kagi_buf_printf(b, ", \"done\": %s, \"samples\": %zu,\n\"links\": {", done ? "true" : "false",
            kagi_sim_samples(s));
    int first_col = 1;
    uint64_t mac = s->sc->mac_bits;
    KAGI__COL(b, "pool_bits", s->nl, ls[i].pool_bits);
    KAGI__COL(b, "generated_bits", s->nl, ls[i].generated_bits);
    KAGI__COL(b, "consumed_bits", s->nl, ls[i].consumed_bits);
    KAGI__COL(b, "relay_bits", s->nl, ls[i].relay_payload_bits + ls[i].relay_messages * mac);
    KAGI__COL(b, "direct_bits", s->nl, ls[i].direct_bits);
    KAGI__COL(b, "discarded_bits", s->nl, ls[i].discarded_bits);
    KAGI__COL(b, "state", s->nl, ls[i].state);
    kagi_buf_printf(b, ",\n\"qber\": [");
    for (size_t i = 0; i < s->nl; i++) {
        if (i) kagi_buf_put(b, ",", 1);
        kagi__n(b, ls[i].qber);
    }
    kagi_buf_printf(b, "]},\n\"nodes\": {");
    first_col = 1;
    KAGI__COL(b, "up", s->nn, kagi_sim_node_up(s, i) ? 1 : 0);
    kagi_buf_printf(b, "},\n\"demands\": {");
    first_col = 1;
    KAGI__COL(b, "requests", s->nd, ds[i].requests);
    KAGI__COL(b, "served", s->nd, ds[i].served);
    KAGI__COL(b, "blocked", s->nd, ds[i].blocked);
    KAGI__COL(b, "timed_out", s->nd, ds[i].timed_out);
    KAGI__COL(b, "waiting", s->nd, ds[i].waiting);
    KAGI__COL(b, "served_bits", s->nd, ds[i].served_bits);
    /* the route a demand last used (or tried): its links from its source,
     * paths of a split demand one after another */
    kagi_buf_printf(b, ",\n\"route\": [");
    for (size_t i = 0; i < s->nd && i < KAGI__ROUTES_MAX; i++) {
        const kagi__dm *m = &s->dm[i];
        kagi_buf_printf(b, "%s[", i ? "," : "");
        size_t n = 0;
        for (uint32_t k = 0; k < m->npaths; k++) n += m->plen[k];
        for (size_t k = 0; k < n; k++) kagi_buf_printf(b, "%s%u", k ? "," : "", m->path[k]);
        kagi_buf_put(b, "]", 1);
    }
    kagi_buf_printf(b, "]}");
    free(ls);
    free(ds);
    kagi__sats(l, t.now_s, b);
    kagi__events(s, t.now_s, b);
    kagi_buf_printf(b, ",\n\"totals\": {\"requests\": %llu, \"served\": %llu, \"blocked\": %llu, "
            "\"timed_out\": %llu, \"waiting\": %llu, \"generated_bits\": %llu, "
            "\"consumed_bits\": %llu, \"discarded_bits\": %llu}}\n",
            (unsigned long long)t.requests, (unsigned long long)t.served,
            (unsigned long long)t.blocked, (unsigned long long)t.timed_out,
            (unsigned long long)t.waiting, (unsigned long long)t.generated_bits,
            (unsigned long long)t.consumed_bits, (unsigned long long)t.discarded_bits);
    return kagi__done(b);
}

/* ---- replay of a recorded sample ------------------------------------------------- */

/* Link states and nodes up at time t, replayed from the event log (the
 * simulator's own states: kagi_sim_link). */
static void kagi__states_at(kagi_live *l, double t)
{
    const kagi_sim *s = l->s;
    memset(l->up, 1, s->nn);
    memset(l->cut, 0, s->nl);
    memset(l->eve, 0, s->nl);
    for (size_t i = 0; i < s->nlog && s->log[i].at_s <= t; i++) {
        const kagi_sim_log *e = &s->log[i];
        switch (e->kind) {
        case KAGI_SC_CUT: l->cut[e->target] = 1; break;
        case KAGI_SC_REPAIR: l->cut[e->target] = l->eve[e->target] = 0; break;
        case KAGI_SC_EAVESDROP: l->eve[e->target] = 1; break;
        case KAGI_SC_NODE_DOWN: l->up[e->target] = 0; break;
        case KAGI_SC_NODE_UP: l->up[e->target] = 1; break;
        }
    }
}

static int kagi__link_state(const kagi_live *l, size_t i)
{
    const kagi_sc_link *k = &l->s->sc->links[i];
    if (l->cut[i]) return KAGI_SIM_CUT;
    if (!l->up[k->a] || !l->up[k->b]) return KAGI_SIM_NODE_DOWN;
    if (l->eve[i]) return KAGI_SIM_EAVESDROPPED;
    return KAGI_SIM_UP;
}

int kagi_live_sample(kagi_live *l, size_t k, kagi_buf *b)
{
    const kagi_sim *s = l->s;
    size_t ns = kagi_sim_samples(s);
    KAGI__FAIL_IF(k >= ns, KAGI_ERR_ARG, "sample %zu: there are %zu samples", k, ns);
    double t = kagi_sim_sample_time(s, k);
    kagi__states_at(l, t);
    kagi_buf_printf(b, "{\"sample\": %zu, \"t_s\": ", k);
    kagi__n(b, t);
    kagi_buf_printf(b, ", \"end_s\": ");
    kagi__n(b, s->end);
    kagi_buf_printf(b, ", \"samples\": %zu,\n\"links\": {", ns);
    int first_col = 1;
    KAGI__COL(b, "pool_bits", s->nl, kagi_sim_link_sample(s, k, i, KAGI_SIM_POOL));
    KAGI__COL(b, "generated_bits", s->nl, kagi_sim_link_sample(s, k, i, KAGI_SIM_GENERATED));
    KAGI__COL(b, "consumed_bits", s->nl, kagi_sim_link_sample(s, k, i, KAGI_SIM_CONSUMED));
    KAGI__COL(b, "state", s->nl, kagi__link_state(l, i));
    kagi_buf_printf(b, "},\n\"nodes\": {");
    first_col = 1;
    KAGI__COL(b, "up", s->nn, l->up[i]);
    kagi_buf_printf(b, "},\n\"demands\": {");
    first_col = 1;
    KAGI__COL(b, "served", s->nd, kagi_sim_demand_sample(s, k, i, KAGI_SIM_SERVED));
    KAGI__COL(b, "blocked", s->nd, kagi_sim_demand_sample(s, k, i, KAGI_SIM_BLOCKED));
    KAGI__COL(b, "timed_out", s->nd, kagi_sim_demand_sample(s, k, i, KAGI_SIM_TIMED_OUT));
    KAGI__COL(b, "waiting", s->nd, kagi_sim_demand_sample(s, k, i, KAGI_SIM_WAITING));
    kagi_buf_printf(b, "}");
    kagi__sats(l, t, b);
    kagi__events(s, t, b);
    kagi_buf_printf(b, "}\n");
    return kagi__done(b);
}

/* ---- time series -------------------------------------------------------------------- */

/* One column of a series: the sample values of item i. */
static void kagi__series_col(const kagi_sim *s, kagi_buf *b, const char *key, char what, size_t i,
                             int fig)
{
    size_t ns = kagi_sim_samples(s);
    kagi_buf_printf(b, ",\n\"%s\": [", key);
    for (size_t k = 0; k < ns; k++) {
        uint64_t v = 0;
        if (what == 'l') {
            v = kagi_sim_link_sample(s, k, i, fig);
        } else if (what == 'd') {
            v = kagi_sim_demand_sample(s, k, i, fig);
        } else { /* a node: the pools of its links */
            for (uint32_t j = s->adj_off[i]; j < s->adj_off[i + 1]; j++)
                v += kagi_sim_link_sample(s, k, s->adj[j], fig);
        }
        if (k) kagi_buf_put(b, ",", 1);
        kagi__u(b, v);
    }
    kagi_buf_put(b, "]", 1);
}

int kagi_live_series(kagi_live *l, char what, size_t i, kagi_buf *b)
{
    const kagi_sim *s = l->s;
    size_t ns = kagi_sim_samples(s);
    size_t lim = what == 'l' ? s->nl : what == 'n' ? s->nn : what == 'd' ? s->nd : 0;
    KAGI__FAIL_IF(i >= lim, KAGI_ERR_ARG, "series: %c%zu is out of range", what, i);
    kagi_buf_printf(b, "{\"samples\": %zu, \"t_s\": [", ns);
    for (size_t k = 0; k < ns; k++) {
        if (k) kagi_buf_put(b, ",", 1);
        kagi__n(b, kagi_sim_sample_time(s, k));
    }
    kagi_buf_put(b, "]", 1);
    if (what == 'd') {
        kagi__series_col(s, b, "served", what, i, KAGI_SIM_SERVED);
        kagi__series_col(s, b, "blocked", what, i, KAGI_SIM_BLOCKED);
        kagi__series_col(s, b, "timed_out", what, i, KAGI_SIM_TIMED_OUT);
        kagi__series_col(s, b, "waiting", what, i, KAGI_SIM_WAITING);
    } else {
        kagi__series_col(s, b, "pool_bits", what, i, KAGI_SIM_POOL);
        kagi__series_col(s, b, "generated_bits", what, i, KAGI_SIM_GENERATED);
        kagi__series_col(s, b, "consumed_bits", what, i, KAGI_SIM_CONSUMED);
    }
    kagi_buf_printf(b, "}\n");
    return kagi__done(b);
}
