/* The satellite segment of the simulator: every pass of every satellite
 * over every ground station in the run (kagi_passes), the key of each pass
 * or block of passes by the free-space model (kagi_fso_pass_run,
 * kagi_fso_key_of), and the windows of the satellite links that carry it.
 * Computed once, when the simulation is set up. Work shared between a
 * satellite's stations: one kagi_sat, and a coarse track of its direction
 * (every minute or so) that tells, for each station, the stretches of the
 * run when the satellite cannot be in view, so that kagi_passes scans
 * only the others. A pass that night_only leaves out is not modelled at
 * all (its AOS or LOS is not at night, so the model's every-sample night
 * test would fail). */
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

/* ---- Coarse track: where passes cannot be ------------------------------- */

#define KAGI__PI 3.14159265358979323846
#define KAGI__MU 398600.8              /* km^3/s^2, WGS-72 as SGP4 */
#define KAGI__RE 6378.135              /* km, WGS-72 */
#define KAGI__OMEGA_E 7.292115146706979e-5

/* The satellite's Earth-fixed unit direction every h seconds over the run,
 * and bounds: the largest orbit radius and the fastest angular rate of
 * that direction (the orbit's at perigee plus the Earth's), from the mean
 * elements with wide margins (SGP4's perturbations move the radius by a
 * few percent at most over a run). ok = 0: no track (the scans then cover
 * the whole run). */
typedef struct kagi__track {
    double *u;       /* 3 per sample */
    size_t n;
    double t0, t1, h, rmax, omega;
    int ok;
} kagi__track;

static void kagi__track_make(kagi__track *tr, kagi_sat *sat, const kagi_tle *tle, double t0,
                             double t1)
{
    tr->ok = 0;
    double n = tle->mean_motion * 2 * KAGI__PI / 86400; /* rad/s */
    double a = cbrt(KAGI__MU / (n * n)), e = tle->ecc;
    double rp = a * (1 - e), ra = a * (1 + e), rmin = 0.9 * rp;
    tr->rmax = 1.1 * ra + 50;
    tr->omega = 1.25 * sqrt(KAGI__MU * a * (1 - e * e)) / (rmin * rmin) + KAGI__OMEGA_E;
    tr->h = fmin(60, 2 * KAGI__PI / n / 100);
    tr->t0 = t0;
    tr->t1 = t1;
    if (!(rmin > KAGI__RE * 0.5) || !(tr->h > 0.1)) return;
    double span = (t1 - t0) / tr->h;
    if (!(span < 5e7)) return;
    size_t cnt = (size_t)ceil(span) + 1;
    if (cnt > tr->n) {
        double *u = realloc(tr->u, 3 * cnt * sizeof *u);
        if (!u) return;
        tr->u = u;
    }
    tr->n = cnt;
    for (size_t k = 0; k < cnt; k++) {
        double t = fmin(t0 + (double)k * tr->h, t1), r[3], re[3];
        if (kagi_sat_at(sat, t, r, NULL) != KAGI_OK) return; /* kagi_passes will say */
        kagi_teme_to_ecef(t, r, NULL, re, NULL);
        double m = sqrt(re[0] * re[0] + re[1] * re[1] + re[2] * re[2]);
        if (!(m > 0)) return;
        for (int c = 0; c < 3; c++) tr->u[3 * k + c] = re[c] / m;
    }
    tr->ok = 1;
}

/* Every pass of sat over st in the run: kagi_passes over the stretches
 * the track leaves possible. Between two samples the direction's angle
 * to the station, theta, changes at most omega per second, so an
 * interval whose ends satisfy (theta_a + theta_b - omega h) / 2 >
 * theta_lim (the angle beyond which the satellite, as high as rmax, is
 * below the minimum elevation less a 1.5 degree margin for the geodetic
 * vertical) holds no pass. The others, widened by two intervals on each
 * side and merged, begin and end where the satellite is out of view (or
 * at the run's ends, as a scan of the whole run would), so the scans find
 * the passes a scan of the whole run finds, to kagi_passes' refinement
 * tolerance. */
static int kagi__find_passes(const kagi__track *tr, kagi_sat *sat, const kagi_station *st,
                             double min_el, kagi_pass **out, size_t *count)
{
    if (!tr->ok) return kagi_passes(sat, st, tr->t0, tr->t1, min_el, out, count);
    *out = NULL;
    *count = 0;
    const double *g = st->ecef_km;
    double gr = sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
    double eb = (min_el - 1.5) * KAGI__PI / 180, c = gr * cos(eb) / tr->rmax;
    double lim = acos(c > 1 ? 1 : c) - eb;
    kagi_pass *all = NULL;
    size_t n = 0, cap = 0;
    double prev = 0, ra = 0, rb = -1; /* the range being gathered */
    int rc = KAGI_OK;
    for (size_t k = 0; k <= tr->n && !rc; k++) {
        int cand = 0;
        double th = 0;
        if (k < tr->n) {
            const double *u = &tr->u[3 * k];
            double d = (u[0] * g[0] + u[1] * g[1] + u[2] * g[2]) / gr;
            th = acos(d > 1 ? 1 : d < -1 ? -1 : d);
            if (k > 0) {
                double dt = fmin(tr->t0 + (double)k * tr->h, tr->t1) -
                            (tr->t0 + (double)(k - 1) * tr->h);
                cand = (prev + th - tr->omega * dt) / 2 <= lim;
            }
            prev = th;
        }
        if (cand) {
            double a = fmax(tr->t0 + ((double)k - 3) * tr->h, tr->t0);
            double b = fmin(tr->t0 + ((double)k + 2) * tr->h, tr->t1);
            if (rb >= ra && a <= rb) { /* overlaps the range: grow it */
                rb = b;
                continue;
            }
            if (rb < ra) {
                ra = a;
                rb = b;
                continue;
            }
        } else if (k < tr->n || rb < ra) {
            continue;
        }
        /* scan the finished range [ra, rb]; a candidate starts the next */
        kagi_pass *ps = NULL;
        size_t np = 0;
        rc = kagi_passes(sat, st, ra, rb, min_el, &ps, &np);
        if (!rc && np) {
            if (n + np > cap) {
                size_t nc = (n + np) * 2;
                kagi_pass *q = realloc(all, nc * sizeof *q);
                if (!q) rc = kagi__err(KAGI_ERR_NOMEM, "sim: out of memory (passes)");
                else all = q, cap = nc;
            }
            if (!rc) memcpy(all + n, ps, np * sizeof *ps);
            if (!rc) n += np;
        }
        kagi_passes_free(ps);
        if (cand) {
            ra = fmax(tr->t0 + ((double)k - 3) * tr->h, tr->t0);
            rb = fmin(tr->t0 + ((double)k + 2) * tr->h, tr->t1);
        } else {
            rb = ra - 1;
        }
    }
    if (rc) {
        free(all);
        return rc;
    }
    *out = all;
    *count = n;
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
static int kagi__pair(kagi_sim *s, kagi_sat *sat, const kagi__track *tr, size_t k, size_t g,
                      size_t li, size_t *cap)
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
    int rc = kagi__find_passes(tr, sat, &st, gs->min_el_deg, &ps, &np);
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
    kagi__track tr;
    memset(&tr, 0, sizeof tr);
    for (size_t k = 0; k < sc->nsatellites && !rc; k++) {
        n = 0;
        for (size_t i = 0; i < s->nl; i++)
            if (sc->links[i].sat == k + 1) order[n++] = i;
        if (!n) continue;
        kagi_sat *sat = NULL;
        rc = kagi_sat_new(&sc->satellites[k].tle, &sat);
        if (!rc)
            kagi__track_make(&tr, sat, &sc->satellites[k].tle, sc->start_utc,
                             sc->start_utc + s->end);
        for (size_t j = 0; j < n && !rc; j++)
            rc = kagi__pair(s, sat, &tr, k, sc->links[order[j]].gs - 1, order[j], &cap);
        kagi_sat_free(sat);
    }
    free(tr.u);
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
