/* The satellite segment of the simulator: every pass of every satellite
 * over every ground station in the run (kagi_passes), the key of each pass
 * or block of passes by the free-space model (kagi_fso_pass_run,
 * kagi_fso_key_of), and the windows of the satellite links that carry it.
 * Computed once, when the simulation is set up: a satellite is propagated
 * by one kagi_sat for all its stations, and a pass that night_only leaves
 * out is not modelled at all (its AOS or LOS is not at night, so the
 * model's every-sample night test would fail). (A coarse track shared by
 * a satellite's stations, to scan only where passes can be, was tried:
 * kagi_passes already skips those stretches cheaply, and the cost is in
 * refining each pass, so it saved under 10%.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/freespace.h"
#include "kagi/orbit.h"
#include "kagi/sim.h"
#include "sim_internal.h"

#define KAGI__NIGHT_DEG (-18.0) /* as kagi/freespace.h: night is the Sun at or below */

/* Light of a pass from the Sun's elevation at some of its instants. */
static kagi_sim_light kagi__light_of(const double *sun, size_t n)
{
    int night = n > 0, below = 0;
    for (size_t i = 0; i < n; i++) {
        if (sun[i] > KAGI__NIGHT_DEG) night = 0;
        if (sun[i] < 0) below = 1;
    }
    return night ? KAGI_SIM_NIGHT : below ? KAGI_SIM_TWILIGHT : KAGI_SIM_DAY;
}

static int kagi__push_pass(kagi_sim *s, const kagi_sim_pass *p, size_t *cap)
{
    if (s->npass == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        kagi_sim_pass *q = realloc(s->pass, nc * sizeof *q);
        if (!q) return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory (passes)");
        s->pass = q;
        *cap = nc;
    }
    s->pass[s->npass++] = *p;
    return KAGI_OK;
}

/* "FILE:LINE: satellites[k] (NAME) over STATION: " into buf. */
static void kagi__who(const kagi_sim *s, size_t k, size_t g, char *buf, size_t len)
{
    const kagi_scenario *sc = s->sc;
    const kagi_sc_satellite *sa = &sc->satellites[k];
    if (sc->origin[0] && sa->line)
        snprintf(buf, len, "%s:%zu: satellites[%zu] (%s) over %s", sc->origin, sa->line, k,
                 sc->nodes[sa->node].name, sc->nodes[sc->stations[g].node].name);
    else
        snprintf(buf, len, "satellites[%zu] (%s) over %s", k, sc->nodes[sa->node].name,
                 sc->nodes[sc->stations[g].node].name);
}

/* The passes of satellite k (propagated by sat) over station g, joined by
 * link li: records in s->pass, windows in s->pwin[li]. */
static int kagi__pair(kagi_sim *s, kagi_sat *sat, size_t k, size_t g, size_t li,
                      size_t *cap)
{
    const kagi_scenario *sc = s->sc;
    const kagi_sc_satellite *sa = &sc->satellites[k];
    const kagi_sc_station *gs = &sc->stations[g];
    const kagi_sc_node *nd = &sc->nodes[gs->node];
    char who[640];
    kagi_station st;
    if (kagi_station_init(&st, nd->lat_deg, nd->lon_deg, gs->alt_m / 1000.0) != KAGI_OK) {
        kagi__who(s, k, g, who, sizeof who);
        return kagi__err(KAGI_ERR_ARG, "%s: %s", who, kagi_errdetail());
    }
    kagi_fso_link link;
    kagi_sc_pair_link(sc, k, g, &link);
    const double t0 = sc->start_utc;
    kagi_pass *ps = NULL;
    size_t np = 0;
    int rc = kagi_passes(sat, &st, t0, t0 + s->end, gs->min_el_deg, &ps, &np);
    if (rc != KAGI_OK) {
        char d[400];
        snprintf(d, sizeof d, "%s", kagi_errdetail());
        kagi__who(s, k, g, who, sizeof who);
        return kagi__err(rc, "%s: %s", who, d);
    }
    const unsigned per = sa->passes_per_block;
    kagi_fso_counts *cnt = per > 1 && np ? calloc(np, sizeof *cnt) : NULL;
    kagi_sc_window *w = np ? malloc(np * sizeof *w) : NULL;
    size_t nw = 0, first = s->npass;
    if (np && (!w || (per > 1 && !cnt))) {
        rc = kagi__err(KAGI_ERR_NOMEM, "sim: out of memory (passes)");
        goto done;
    }
    for (size_t j = 0; j < np && !rc; j++) {
        const kagi_pass *p = &ps[j];
        kagi_sim_pass r;
        memset(&r, 0, sizeof r);
        r.link = li;
        r.sat = k;
        r.gs = g;
        r.aos_s = p->aos - t0;
        r.tca_s = p->tca - t0;
        r.los_s = p->los - t0;
        r.max_el_deg = p->max_el_deg;
        double sun[3] = {kagi_sun_elevation(&st, p->aos), kagi_sun_elevation(&st, p->tca),
                         kagi_sun_elevation(&st, p->los)};
        int model = !(sa->night_only && (sun[0] > KAGI__NIGHT_DEG || sun[2] > KAGI__NIGHT_DEG));
        r.light = kagi__light_of(sun, 3);
        if (model) {
            kagi_fso_pass fp;
            rc = kagi_fso_pass_run(sat, &st, p, &link, sa->step_s, &fp);
            if (rc != KAGI_OK) {
                char d[400];
                snprintf(d, sizeof d, "%s", kagi_errdetail());
                kagi__who(s, k, g, who, sizeof who);
                rc = kagi__err(rc, "%s: %s", who, d);
                break;
            }
            int night = fp.npoints > 0, below = 0;
            for (size_t i = 0; i < fp.npoints; i++) {
                if (!fp.points[i].night) night = 0;
                if (fp.points[i].sun_el_deg < 0) below = 1;
            }
            r.light = night ? KAGI_SIM_NIGHT : below ? KAGI_SIM_TWILIGHT : KAGI_SIM_DAY;
            r.pass_key_bits = fp.key.key_bits > 0 ? (uint64_t)fp.key.key_bits : 0;
            if (cnt) cnt[j] = fp.counts;
            kagi_fso_pass_clear(&fp);
        }
        r.used = model && !p->ends_after && (!sa->night_only || r.light == KAGI_SIM_NIGHT) &&
                 p->los > p->aos;
        rc = kagi__push_pass(s, &r, cap);
    }
    if (rc) goto done;
    /* Blocks of per consecutive used passes; the key of each at its last
     * LOS. A block the run ends before completing gives nothing. */
    {
        unsigned in = 0, nb = 0;
        size_t start = 0;
        kagi_fso_counts acc;
        memset(&acc, 0, sizeof acc);
        for (size_t j = first; j < s->npass && !rc; j++) {
            kagi_sim_pass *r = &s->pass[j];
            if (!r->used) continue;
            if (in == 0) {
                start = j;
                nb++;
                memset(&acc, 0, sizeof acc);
            }
            r->block = nb;
            in++;
            if (per > 1) kagi_fso_counts_add(&acc, &cnt[j - first]);
            if (in < per) continue;
            uint64_t bits = r->pass_key_bits;
            if (per > 1) {
                kagi_fso_key key;
                rc = kagi_fso_key_of(&link, &acc, &key);
                if (rc) break;
                bits = key.key_bits > 0 ? (uint64_t)key.key_bits : 0;
            }
            r->key_bits = bits;
            w[nw++] = (kagi_sc_window){s->pass[start].aos_s, r->los_s, bits};
            in = 0;
        }
    }
done:
    kagi_passes_free(ps);
    free(cnt);
    if (rc) {
        free(w);
        return rc;
    }
    s->pwin[li] = w;
    s->npwin[li] = nw;
    return KAGI_OK;
}

int kagi__passes_compute(kagi_sim *s)
{
    const kagi_scenario *sc = s->sc;
    s->pwin = calloc(s->nl + 1, sizeof *s->pwin);
    s->npwin = calloc(s->nl + 1, sizeof *s->npwin);
    if (!s->pwin || !s->npwin) return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory");
    if (!sc->nsatellites) return KAGI_OK;
    /* the links of each satellite, in link order */
    size_t *order = malloc((s->nl + 1) * sizeof *order), n = 0, cap = 0;
    if (!order) return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory");
    int rc = KAGI_OK;
    for (size_t k = 0; k < sc->nsatellites && !rc; k++) {
        n = 0;
        for (size_t i = 0; i < s->nl; i++)
            if (sc->links[i].sat == k + 1) order[n++] = i;
        if (!n) continue;
        kagi_sat *sat = NULL;
        rc = kagi_sat_new(&sc->satellites[k].tle, &sat);
        for (size_t j = 0; j < n && !rc; j++)
            rc = kagi__pair(s, sat, k, sc->links[order[j]].gs - 1, order[j], &cap);
        kagi_sat_free(sat);
    }
    free(order);
    if (rc) return rc;
    /* group by link (a stable sort: the pairs were done satellite by
     * satellite, each pair's passes in time order) */
    if (s->npass > 1) {
        size_t *cnt = calloc(s->nl + 1, sizeof *cnt);
        kagi_sim_pass *sorted = malloc(s->npass * sizeof *sorted);
        if (!cnt || !sorted) {
            free(cnt);
            free(sorted);
            return kagi__err(KAGI_ERR_NOMEM, "sim: out of memory (passes)");
        }
        for (size_t j = 0; j < s->npass; j++) cnt[s->pass[j].link + 1]++;
        for (size_t i = 0; i < s->nl; i++) cnt[i + 1] += cnt[i];
        for (size_t j = 0; j < s->npass; j++) sorted[cnt[s->pass[j].link]++] = s->pass[j];
        free(s->pass);
        s->pass = sorted;
        free(cnt);
    }
    return KAGI_OK;
}

size_t kagi_sim_passes(const kagi_sim *s, const kagi_sim_pass **out)
{
    *out = s->pass;
    return s->npass;
}

size_t kagi_sim_link_windows(const kagi_sim *s, size_t i, const kagi_sc_window **out)
{
    *out = NULL;
    if (i >= s->nl || s->lk[i].kind != KAGI_SC_LINK_SCHEDULED) return 0;
    *out = s->lk[i].win;
    return s->lk[i].nwin;
}
