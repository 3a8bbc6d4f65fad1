/* Pass prediction: when a satellite is above a minimum elevation at a
 * station, and what it looks like along the way.
 *
 * The scan jumps over the stretches where the satellite cannot be in view:
 * seen from the Earth's centre the angle between the satellite and the
 * station changes no faster than the satellite's fastest angular rate plus
 * the Earth's, and above a geometric limit (from the orbit's highest
 * radius) the elevation is below the minimum. Near the station it steps
 * finely and watches both for crossings of the minimum (root finding) and
 * for elevation peaks below it (golden section: a short pass may fit
 * between two samples). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/orbit.h"
#include "orbit_internal.h"

#define KAGI__TIME_TOL 1e-3 /* seconds: refinement tolerance */

/* One evaluation: elevation and azimuth at t, and the geocentric angle
 * between satellite and station. */
typedef struct kagi__probe {
    kagi_utc t;
    double el, az, theta;
} kagi__probe;

typedef struct kagi__scan {
    kagi_sat *sat;
    const kagi_station *st;
    double min_el;
    double st_r; /* station's geocentric radius, km */
} kagi__scan;

static int kagi__eval(kagi__scan *sc, kagi_utc t, kagi__probe *p)
{
    double r[3], v[3], re[3];
    KAGI__TRY(kagi_sat_at(sc->sat, t, r, v));
    kagi_teme_to_ecef(t, r, NULL, re, NULL);
    kagi_look l;
    kagi_look_ecef(sc->st, re, NULL, &l);
    const double *g = sc->st->ecef_km;
    double c = (re[0] * g[0] + re[1] * g[1] + re[2] * g[2]) /
               (sqrt(re[0] * re[0] + re[1] * re[1] + re[2] * re[2]) * sc->st_r);
    p->t = t;
    p->el = l.el_deg;
    p->az = l.az_deg;
    p->theta = acos(c > 1 ? 1 : c < -1 ? -1 : c);
    return KAGI_OK;
}

/* Crossing of the minimum elevation between a (one side) and b (other
 * side), by bisection to KAGI__TIME_TOL; *out is the probe on the
 * above-minimum side. */
static int kagi__crossing(kagi__scan *sc, kagi__probe a, kagi__probe b, kagi__probe *out)
{
    int a_up = a.el >= sc->min_el;
    while (b.t - a.t > KAGI__TIME_TOL) {
        kagi__probe m;
        KAGI__TRY(kagi__eval(sc, 0.5 * (a.t + b.t), &m));
        if ((m.el >= sc->min_el) == a_up) a = m;
        else b = m;
    }
    *out = a_up ? a : b;
    return KAGI_OK;
}

/* Highest elevation in [lo, hi] by golden section (the elevation is taken
 * to have one peak there). */
static int kagi__peak(kagi__scan *sc, kagi_utc lo, kagi_utc hi, kagi__probe *out)
{
    const double g = 0.6180339887498949;
    kagi__probe c, d, ends[2];
    KAGI__TRY(kagi__eval(sc, hi - g * (hi - lo), &c));
    KAGI__TRY(kagi__eval(sc, lo + g * (hi - lo), &d));
    while (hi - lo > KAGI__TIME_TOL) {
        if (c.el >= d.el) {
            hi = d.t;
            d = c;
            KAGI__TRY(kagi__eval(sc, hi - g * (hi - lo), &c));
        } else {
            lo = c.t;
            c = d;
            KAGI__TRY(kagi__eval(sc, lo + g * (hi - lo), &d));
        }
    }
    *out = c.el >= d.el ? c : d;
    /* A peak at an end of the bracket: the ends themselves may be higher. */
    KAGI__TRY(kagi__eval(sc, lo, &ends[0]));
    KAGI__TRY(kagi__eval(sc, hi, &ends[1]));
    for (int i = 0; i < 2; i++)
        if (ends[i].el > out->el) *out = ends[i];
    return KAGI_OK;
}

typedef struct kagi__passes {
    kagi_pass *p;
    size_t n, cap;
} kagi__passes;

static int kagi__add(kagi__passes *l, const kagi_pass *p)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 64;
        kagi_pass *q = realloc(l->p, nc * sizeof *q);
        if (!q) return kagi__err(KAGI_ERR_NOMEM, "cannot allocate %zu passes", nc);
        l->p = q;
        l->cap = nc;
    }
    l->p[l->n++] = *p;
    return KAGI_OK;
}

/* A pass from aos to los; best is its highest sample (has_best 0 when
 * there is none between the two). */
static int kagi__finish(kagi__scan *sc, kagi__passes *l, kagi__probe aos, kagi__probe los,
                        kagi__probe best, int has_best, double step, int starts_before,
                        int ends_after)
{
    kagi__probe top;
    kagi_utc lo = aos.t, hi = los.t;
    if (has_best) {
        lo = fmax(lo, best.t - step);
        hi = fmin(hi, best.t + step);
    }
    KAGI__TRY(kagi__peak(sc, lo, hi, &top));
    kagi_pass p = {aos.t, top.t, los.t, top.el, aos.az, top.az, los.az, starts_before, ends_after};
    return kagi__add(l, &p);
}

static int kagi__scan_window(kagi__scan *sc, kagi_utc t0, kagi_utc t1, kagi__passes *l)
{
    double rmin, rmax, rate;
    kagi__sat_bounds(sc->sat, &rmin, &rmax, &rate);
    double period_s = kagi_sat_period_min(sc->sat) * 60.0;
    double step = fmin(period_s / 200.0, 120.0);
    /* Geocentric angle beyond which the elevation stays under the minimum
     * less a 1.5 deg margin (the geodetic vertical leans up to 0.2 deg off
     * the geocentric one), for a satellite as high as rmax. */
    double eb = (sc->min_el - 1.5) * KAGI__DEG;
    double c = sc->st_r * cos(eb) / rmax;
    double theta_lim = acos(c > 1 ? 1 : c) - eb;
    double omega = rate + KAGI__OMEGA_EARTH;
    /* A peak between samples can stand above them by at most what the
     * elevation climbs in half a step: speed over the least range. */
    double vmax = rate * rmin + KAGI__OMEGA_EARTH * rmax;
    double el_rate = vmax / fmax(rmin - sc->st_r, 100.0) / KAGI__DEG;
    double peak_margin = fmin(fmax(el_rate * step / 2.0, 3.0), 180.0);

    kagi__probe prev, cur, prev2 = {0}, aos = {0}, best = {0};
    int have_prev2 = 0, up, has_best = 0;
    KAGI__TRY(kagi__eval(sc, t0, &prev));
    up = prev.el >= sc->min_el;
    if (up) aos = prev;
    while (prev.t < t1) {
        double dt = step;
        int skipped = 0;
        if (!up && prev.theta > theta_lim) {
            double jump = (prev.theta - theta_lim) / omega;
            if (jump > dt) {
                dt = jump;
                skipped = 1;
            }
        }
        kagi_utc tn = prev.t + dt < t1 ? prev.t + dt : t1;
        KAGI__TRY(kagi__eval(sc, tn, &cur));
        int cur_up = cur.el >= sc->min_el;
        if (!up && cur_up) {
            KAGI__TRY(kagi__crossing(sc, prev, cur, &aos));
            up = 1;
            has_best = 0;
        } else if (up && !cur_up) {
            kagi__probe los;
            KAGI__TRY(kagi__crossing(sc, prev, cur, &los));
            KAGI__TRY(kagi__finish(sc, l, aos, los, best, has_best, step, aos.t == t0, 0));
            up = 0;
            has_best = 0;
        } else if (up) {
            if (!has_best || cur.el > best.el) best = cur;
            has_best = 1;
        } else if (have_prev2 && !skipped && prev.el > prev2.el && prev.el >= cur.el &&
                   prev.el > sc->min_el - peak_margin) {
            /* A peak below the minimum at the samples: it may still cross. */
            kagi__probe top;
            KAGI__TRY(kagi__peak(sc, prev2.t, cur.t, &top));
            if (top.el >= sc->min_el) {
                kagi__probe a, b;
                KAGI__TRY(kagi__crossing(sc, prev2, top, &a));
                KAGI__TRY(kagi__crossing(sc, top, cur, &b));
                kagi_pass p = {a.t, top.t, b.t, top.el, a.az, top.az, b.az, 0, 0};
                KAGI__TRY(kagi__add(l, &p));
            }
        }
        have_prev2 = !skipped;
        prev2 = prev;
        prev = cur;
    }
    if (up) KAGI__TRY(kagi__finish(sc, l, aos, prev, best, has_best, step, aos.t == t0, 1));
    return KAGI_OK;
}

int kagi_passes(kagi_sat *s, const kagi_station *st, kagi_utc t0, kagi_utc t1,
                double min_el_deg, kagi_pass **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    KAGI__FAIL_IF(!isfinite(t0) || !isfinite(t1) || t1 < t0, KAGI_ERR_ARG,
                  "pass window must have finite start <= end");
    KAGI__FAIL_IF(t1 - t0 > 20.0 * 366 * 86400, KAGI_ERR_ARG,
                  "pass window of %.0f days is longer than 20 years", (t1 - t0) / 86400);
    KAGI__FAIL_IF(!(min_el_deg >= -5.0 && min_el_deg <= 89.0), KAGI_ERR_ARG,
                  "minimum elevation %g deg outside [-5, 89]", min_el_deg);
    kagi__scan sc = {s, st, min_el_deg,
                     sqrt(st->ecef_km[0] * st->ecef_km[0] + st->ecef_km[1] * st->ecef_km[1] +
                          st->ecef_km[2] * st->ecef_km[2])};
    kagi__passes l = {NULL, 0, 0};
    int rc = kagi__scan_window(&sc, t0, t1, &l);
    if (rc) {
        free(l.p);
        return rc;
    }
    *out = l.p;
    *count = l.n;
    return KAGI_OK;
}

void kagi_passes_free(kagi_pass *list) { free(list); }

int kagi_pass_sample(kagi_sat *s, const kagi_station *st, const kagi_pass *p, double step_s,
                     kagi_look **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    KAGI__FAIL_IF(!(step_s >= 0.001 && step_s <= 86400.0), KAGI_ERR_ARG,
                  "sample step %g s outside [0.001, 86400]", step_s);
    KAGI__FAIL_IF(!isfinite(p->aos) || !isfinite(p->los) || p->los < p->aos, KAGI_ERR_ARG,
                  "pass has los before aos");
    double span = p->los - p->aos;
    KAGI__FAIL_IF(span / step_s > 1e7, KAGI_ERR_ARG,
                  "%.0f s at a %g s step is more than 10^7 samples", span, step_s);
    size_t n = (size_t)floor(span / step_s) + 1;
    int add_los = p->aos + (double)(n - 1) * step_s < p->los - 1e-9;
    kagi_look *v = malloc((n + (size_t)add_los) * sizeof *v);
    if (!v) return kagi__err(KAGI_ERR_NOMEM, "cannot allocate %zu samples", n + 1);
    for (size_t i = 0; i < n + (size_t)add_los; i++) {
        kagi_utc t = i < n ? p->aos + (double)i * step_s : p->los;
        int rc = kagi_look_at(s, st, t, &v[i]);
        if (rc) {
            free(v);
            return rc;
        }
    }
    *out = v;
    *count = n + (size_t)add_los;
    return KAGI_OK;
}

void kagi_looks_free(kagi_look *list) { free(list); }
