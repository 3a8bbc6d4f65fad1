/* Free-space optical channel of a satellite link (Gaussian-beam
 * diffraction, pointing jitter, air-mass atmosphere, optional turbulence,
 * receiver optics, day/night background) and the expected counts and
 * finite key of a pass, through the detection model of keyrate.c
 * (kagi__detect) and the Lim et al. 2014 bound (kagi_decoy_bound_lim).
 * Formulas and sources: docs/freespace.md and include/kagi/freespace.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/freespace.h"
#include "phys_internal.h"

#define KAGI__PI 3.14159265358979323846
#define KAGI__DEG (KAGI__PI / 180.0)
#define KAGI__H_PLANCK 6.62607015e-34 /* J s (exact, SI 2019) */
#define KAGI__C_LIGHT 299792458.0     /* m/s (exact) */
#define KAGI__NIGHT_SUN_DEG (-18.0)   /* astronomical night below */
#define KAGI__DAY_SUN_DEG 0.0         /* full day background above */
#define KAGI__ASYM_SCALE 1e12         /* counts scale for the asymptotic key */

/* ---- Presets ------------------------------------------------------------- */

/* Micius to Xinglong, Liao et al., Nature 549, 43 (2017); docs/freespace.md
 * section 4 gives the source of each value and which are fitted. */
static void kagi__preset_micius(kagi_fso_link *l)
{
    memset(l, 0, sizeof *l);
    kagi_fso *f = &l->fso;
    f->direction = KAGI_FSO_DOWNLINK;
    f->wavelength_m = 848.6e-9;    /* "848.6 nm, 100 MHz, 0.2 ns" */
    f->tx_aperture_m = 0.300;      /* "300-mm aperture Cassegrain telescope" */
    f->divergence_rad = 10e-6;     /* "~10 urad", read as FWHM (docs) */
    f->rx_aperture_m = 1.0;        /* "Ritchey-Chretien telescope ... 1 m" */
    f->pointing_jitter_rad = 1.2e-6; /* "tracking accuracy of ~1.2 urad" */
    f->zenith_transmittance = 0.55;  /* fitted: 7.6 dB at 1200 km (3-8 dB) */
    f->rx_efficiency = 0.16;       /* "overall optical efficiency ... ~16%" */
    f->background_night = 1.7e-6;  /* fitted: QBER 1.1% within 1200 km */
    /* Day: 0.01 W m^-2 sr^-1 nm^-1 of sky into a 100 urad field of view,
     * 1 m aperture, 1 nm filter, 2 ns window, 0.16 x 0.5: 0.0422 photons
     * per gate, 1 - e^-0.0422 clicks (docs). */
    f->background_day = 0.0413;
    kagi_link *q = &l->qkd;
    kagi_link_defaults(q);
    q->mu[0] = 0.8; /* "mu_s = 0.8, mu_1 = 0.1, mu_2 = 0" */
    q->mu[1] = 0.1;
    q->mu[2] = 0.0;
    q->p_mu[0] = 0.5; /* "50%, 25% and 25%" */
    q->p_mu[1] = 0.25;
    q->p_mu[2] = 0.25;
    q->p_x = 0.5;          /* BB84, passive basis choice at Bob */
    q->clock_hz = 100e6;   /* 100 MHz */
    q->distance_km = 0;
    q->fiber_loss_db_km = 0;
    q->extra_loss_db = 0;
    q->misalignment = 0.0036; /* polarisation contrast 280:1 -> 1/281 */
    q->det_eff = 0.50;        /* "efficiency 50%" */
    q->dark_count = 2e-7;     /* 4 detectors x 25 Hz x 2 ns window */
    q->afterpulse = 0;        /* not published */
    q->dead_time_s = 0;       /* not published */
    q->f_ec = 1.16;           /* kagi's default; a Hamming code, f not published */
    q->eps_sec = 1e-9;        /* "failure probability ... 10^-9" */
    q->eps_cor = 1e-15;
}

typedef struct kagi__preset {
    const char *name, *summary;
    void (*fill)(kagi_fso_link *l);
} kagi__preset;

static const kagi__preset kagi__presets[] = {
    {"micius",
     "Micius-like downlink at 848.6 nm: 0.3 m transmitter, 10 urad, 1 m ground telescope, "
     "100 MHz decoy BB84 (Liao et al. 2017)",
     kagi__preset_micius},
};
#define KAGI__NPRESETS (sizeof kagi__presets / sizeof kagi__presets[0])

const char *const *kagi_fso_preset_names(void)
{
    static const char *names[KAGI__NPRESETS + 1];
    for (size_t i = 0; i < KAGI__NPRESETS; i++) names[i] = kagi__presets[i].name;
    names[KAGI__NPRESETS] = NULL;
    return names;
}

const char *kagi_fso_preset_summary(const char *name)
{
    for (size_t i = 0; i < KAGI__NPRESETS; i++)
        if (!strcmp(kagi__presets[i].name, name)) return kagi__presets[i].summary;
    return NULL;
}

int kagi_fso_preset(const char *name, kagi_fso_link *out)
{
    for (size_t i = 0; i < KAGI__NPRESETS; i++)
        if (!strcmp(kagi__presets[i].name, name)) {
            kagi__presets[i].fill(out);
            return KAGI_OK;
        }
    char known[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < KAGI__NPRESETS && used < sizeof known; i++) {
        int n = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                         kagi__presets[i].name);
        if (n > 0) used += (size_t)n;
    }
    return kagi__err(KAGI_ERR_ARG, "link '%.64s' is not a known preset (known: %s)", name, known);
}

/* ---- Checks --------------------------------------------------------------- */

#define KAGI__CHECK(cond, ...) KAGI__FAIL_IF(!(cond), KAGI_ERR_ARG, __VA_ARGS__)

static int kagi__fso_check(const kagi_fso *f)
{
    KAGI__CHECK(f->direction == KAGI_FSO_DOWNLINK || f->direction == KAGI_FSO_UPLINK,
                "direction %d is neither downlink nor uplink", (int)f->direction);
    KAGI__CHECK(isfinite(f->wavelength_m) && f->wavelength_m >= 1e-7 && f->wavelength_m <= 1e-4,
                "wavelength_m %g is not in [1e-7, 1e-4] m", f->wavelength_m);
    KAGI__CHECK(isfinite(f->tx_aperture_m) && f->tx_aperture_m > 0 && f->tx_aperture_m <= 100,
                "tx_aperture_m %g is not in (0, 100] m", f->tx_aperture_m);
    KAGI__CHECK(isfinite(f->rx_aperture_m) && f->rx_aperture_m > 0 && f->rx_aperture_m <= 100,
                "rx_aperture_m %g is not in (0, 100] m", f->rx_aperture_m);
    KAGI__CHECK(isfinite(f->divergence_rad) && f->divergence_rad >= 0 && f->divergence_rad <= 0.1,
                "divergence_rad %g is not in [0, 0.1] rad (0: diffraction-limited)",
                f->divergence_rad);
    KAGI__CHECK(isfinite(f->pointing_jitter_rad) && f->pointing_jitter_rad >= 0 &&
                    f->pointing_jitter_rad <= 0.1,
                "pointing_jitter_rad %g is not in [0, 0.1] rad", f->pointing_jitter_rad);
    KAGI__CHECK(isfinite(f->zenith_transmittance) && f->zenith_transmittance > 0 &&
                    f->zenith_transmittance <= 1,
                "zenith_transmittance %g is not in (0, 1]", f->zenith_transmittance);
    KAGI__CHECK(isfinite(f->r0_zenith_m) && f->r0_zenith_m >= 0 && f->r0_zenith_m <= 100,
                "r0_zenith_m %g is not in [0, 100] m (0: no turbulence)", f->r0_zenith_m);
    KAGI__CHECK(isfinite(f->rx_fov_rad) && f->rx_fov_rad >= 0 && f->rx_fov_rad <= 1,
                "rx_fov_rad %g is not in [0, 1] rad (0: unlimited)", f->rx_fov_rad);
    KAGI__CHECK(isfinite(f->scintillation_index) && f->scintillation_index >= 0 &&
                    f->scintillation_index <= 10,
                "scintillation_index %g is not in [0, 10]", f->scintillation_index);
    KAGI__CHECK(isfinite(f->rx_efficiency) && f->rx_efficiency > 0 && f->rx_efficiency <= 1,
                "rx_efficiency %g is not in (0, 1]", f->rx_efficiency);
    KAGI__CHECK(isfinite(f->background_night) && f->background_night >= 0 &&
                    f->background_night < 1,
                "background_night %g is not a click probability in [0, 1)", f->background_night);
    KAGI__CHECK(isfinite(f->background_day) && f->background_day >= 0 && f->background_day < 1,
                "background_day %g is not a click probability in [0, 1)", f->background_day);
    return KAGI_OK;
}

int kagi_fso_check(const kagi_fso_link *l)
{
    KAGI__TRY(kagi__fso_check(&l->fso));
    KAGI__TRY(kagi_link_check(&l->qkd, KAGI_DECOYS_TWO));
    KAGI__CHECK(l->qkd.p_x < 1, "p_x %g leaves no test basis for a finite key", l->qkd.p_x);
    double y = l->qkd.dark_count + fmax(l->fso.background_night, l->fso.background_day);
    KAGI__CHECK(y < 1, "dark_count %g plus background %g reach 1 click per pulse",
                l->qkd.dark_count, fmax(l->fso.background_night, l->fso.background_day));
    return KAGI_OK;
}

/* ---- The channel ------------------------------------------------------------ */

double kagi_air_mass(double el_deg)
{
    double e = el_deg < -6 ? -6 : el_deg > 90 ? 90 : el_deg;
    return 1.0 / (sin(e * KAGI__DEG) + 0.50572 * pow(e + 6.07995, -1.6364));
}

double kagi_beam_radius(double w0_m, double theta_rad, double range_m)
{
    return hypot(w0_m, theta_rad * range_m);
}

double kagi_aperture_fraction(double a_m, double w_m)
{
    if (!(w_m > 0)) return 1.0;
    return -expm1(-2 * a_m * a_m / (w_m * w_m));
}

double kagi_fso_theta(const kagi_fso *f)
{
    if (f->divergence_rad > 0) return f->divergence_rad / sqrt(2 * log(2.0));
    return f->wavelength_m / (KAGI__PI * f->tx_aperture_m / 2);
}

double kagi_sky_background(double radiance, double fov_rad, double aperture_m, double filter_nm,
                           double gate_s, double wavelength_m, double efficiency)
{
    double solid = KAGI__PI * fov_rad * fov_rad / 4;
    double area = KAGI__PI * aperture_m * aperture_m / 4;
    double watts = radiance * solid * area * filter_nm;
    return watts * gate_s * efficiency * wavelength_m / (KAGI__H_PLANCK * KAGI__C_LIGHT);
}

/* Far-field 1/e^2 half-angle of turbulence with coherence radius rho0 in the
 * quadratic approximation of the mutual coherence function: 2 sqrt2 /
 * (k rho0) (docs/freespace.md, section 2.4). */
static double kagi__turb_angle(double wavelength_m, double r0_m)
{
    double k = 2 * KAGI__PI / wavelength_m, rho0 = r0_m / 2.1;
    return 2 * sqrt(2.0) / (k * rho0);
}

/* Fried parameter along the slant path: r0 sec(zenith)^(-3/5). */
static double kagi__r0_at(const kagi_fso *f, double el_deg)
{
    return f->r0_zenith_m * pow(sin(el_deg * KAGI__DEG), 0.6);
}

/* Farid & Hranilovic 2007: equivalent beam width for a circular aperture
 * of radius a in a Gaussian beam of radius w offset by r,
 * T(r) ~ T(0) exp(-2 r^2 / w_eq^2). */
static double kagi__w_eq2(double a, double w)
{
    double v = sqrt(KAGI__PI) * a / (sqrt(2.0) * w);
    if (v < 1e-6) return w * w;
    return w * w * sqrt(KAGI__PI) * erf(v) / (2 * v * exp(-v * v));
}

int kagi_fso_budget_at(const kagi_fso *f, double range_km, double el_deg, kagi_fso_budget *out)
{
    memset(out, 0, sizeof *out);
    KAGI__TRY(kagi__fso_check(f));
    KAGI__CHECK(isfinite(range_km) && range_km > 0 && range_km <= 1e6,
                "range %g km is not in (0, 1e6]", range_km);
    KAGI__CHECK(isfinite(el_deg) && el_deg > 0 && el_deg <= 90,
                "elevation %g deg is not in (0, 90]", el_deg);
    double L = range_km * 1e3, w0 = f->tx_aperture_m / 2, a = f->rx_aperture_m / 2;
    double theta = kagi_fso_theta(f);
    double w = kagi_beam_radius(w0, theta, L);
    int turb = f->r0_zenith_m > 0;
    double r0 = turb ? kagi__r0_at(f, el_deg) : 0;
    if (turb && f->direction == KAGI_FSO_UPLINK) { /* long-term broadening */
        double bt = kagi__turb_angle(f->wavelength_m, r0) * L;
        w = hypot(w, bt);
    }
    out->beam_radius_m = w;
    out->air_mass = kagi_air_mass(el_deg);
    out->t_diffraction = kagi_aperture_fraction(a, w);
    double sj = f->pointing_jitter_rad * L;
    out->t_pointing = 1.0 / (1.0 + 4 * sj * sj / kagi__w_eq2(a, w));
    out->t_atmosphere = pow(f->zenith_transmittance, out->air_mass);
    out->t_fov = 1.0;
    if (f->rx_fov_rad > 0) { /* the focal spot against the field stop */
        double td = f->wavelength_m / (KAGI__PI * a); /* receiving aperture's own */
        double tt = turb && f->direction == KAGI_FSO_DOWNLINK
                        ? kagi__turb_angle(f->wavelength_m, r0)
                        : 0;
        double spot2 = td * td + tt * tt, half = f->rx_fov_rad / 2;
        out->t_fov = -expm1(-2 * half * half / spot2);
    }
    out->t_receiver = f->rx_efficiency;
    out->transmittance = out->t_diffraction * out->t_pointing * out->t_atmosphere *
                         out->t_fov * out->t_receiver;
    out->loss_db = -10 * log10(out->transmittance);
    return KAGI_OK;
}

double kagi_fso_background(const kagi_fso *f, double sun_el_deg)
{
    double n = f->background_night, d = f->background_day;
    if (!(sun_el_deg > KAGI__NIGHT_SUN_DEG)) return n;
    if (sun_el_deg >= KAGI__DAY_SUN_DEG) return d;
    double u = (sun_el_deg - KAGI__NIGHT_SUN_DEG) / (KAGI__DAY_SUN_DEG - KAGI__NIGHT_SUN_DEG);
    if (n > 0 && d > 0) return exp(log(n) + u * (log(d) - log(n)));
    return n + u * (d - n);
}

/* ---- Counts ------------------------------------------------------------------ */

/* Click and error probabilities per class at mean transmittance eta,
 * averaged over a log-normal fading of unit mean and scintillation index
 * si (ln X ~ N(-s^2/2, s^2), s^2 = ln(1 + si)): trapezoid rule on the
 * standard normal over [-8, 8] in steps of 1/4, exact to double precision
 * for integrands as smooth as these. */
static void kagi__detect_faded(const kagi_link *q, double eta, double si, double gain[3],
                               double err[3])
{
    if (!(si > 0)) {
        kagi__detect(q, eta, gain, err);
        return;
    }
    double s = sqrt(log1p(si)), wsum = 0;
    double g[3], e[3];
    for (int k = 0; k < 3; k++) gain[k] = err[k] = 0;
    for (int i = -32; i <= 32; i++) {
        double z = i * 0.25, w = exp(-0.5 * z * z);
        double x = exp(s * z - 0.5 * s * s);
        double ex = eta * x;
        kagi__detect(q, ex < 1 ? ex : 1, g, e);
        for (int k = 0; k < 3; k++) {
            gain[k] += w * g[k];
            err[k] += w * e[k];
        }
        wsum += w;
    }
    for (int k = 0; k < 3; k++) {
        gain[k] /= wsum;
        err[k] /= wsum;
    }
}

int kagi_fso_accumulate(const kagi_fso_link *l, const kagi_look *look, double weight_s,
                        kagi_fso_counts *c, kagi_fso_point *pt)
{
    KAGI__CHECK(isfinite(weight_s) && weight_s >= 0, "sample weight %g s is not a duration",
                weight_s);
    kagi_fso_budget b;
    KAGI__TRY(kagi_fso_budget_at(&l->fso, look->range_km, look->el_deg, &b));
    kagi_link q = l->qkd;
    double bg = kagi_fso_background(&l->fso, look->sun_el_deg);
    q.dark_count = l->qkd.dark_count + bg - l->qkd.dark_count * bg; /* either clicks */
    double eta = b.transmittance * l->qkd.det_eff;
    double gain[3], err[3];
    kagi__detect_faded(&q, eta, l->fso.scintillation_index, gain, err);
    double click = 0;
    for (int k = 0; k < 3; k++) click += q.p_mu[k] * gain[k];
    /* Non-paralysable dead time: R / (1 + R tau) of R clicks register. */
    double rate = q.clock_hz * click, keep = 1.0 / (1.0 + rate * q.dead_time_s);
    double n = q.clock_hz * weight_s * keep;
    double qx = q.p_x * q.p_x, qz = (1 - q.p_x) * (1 - q.p_x);
    for (int k = 0; k < 3; k++) {
        c->n_x[k] += n * qx * q.p_mu[k] * gain[k];
        c->n_z[k] += n * qz * q.p_mu[k] * gain[k];
        c->m_x[k] += n * qx * q.p_mu[k] * err[k];
        c->m_z[k] += n * qz * q.p_mu[k] * err[k];
        c->detections += n * q.p_mu[k] * gain[k];
    }
    c->pulses += q.clock_hz * weight_s;
    c->seconds += weight_s;
    if (pt) {
        pt->t = look->t;
        pt->el_deg = look->el_deg;
        pt->az_deg = look->az_deg;
        pt->range_km = look->range_km;
        pt->sun_el_deg = look->sun_el_deg;
        pt->loss_db = b.loss_db;
        pt->background = bg;
        pt->night = !(look->sun_el_deg > KAGI__NIGHT_SUN_DEG);
        pt->weight_s = weight_s;
        pt->clicks_per_s = rate * keep;
        pt->qber = gain[0] > 0 ? err[0] / gain[0] : 0;
    }
    return KAGI_OK;
}

void kagi_fso_counts_add(kagi_fso_counts *acc, const kagi_fso_counts *c)
{
    acc->pulses += c->pulses;
    acc->seconds += c->seconds;
    acc->detections += c->detections;
    for (int k = 0; k < 3; k++) {
        acc->n_x[k] += c->n_x[k];
        acc->n_z[k] += c->n_z[k];
        acc->m_x[k] += c->m_x[k];
        acc->m_z[k] += c->m_z[k];
    }
}

/* ---- Key ----------------------------------------------------------------------- */

/* length_before_ec - f n_X h(E_X) of the counts scaled by s. */
static int kagi__length(const kagi_fso_link *l, const kagi_fso_counts *c, double s,
                        kagi_decoy_bound *b, double *lambda, double *len)
{
    kagi_decoy_counts d;
    double nx = 0, mx = 0;
    for (int k = 0; k < 3; k++) {
        d.mu[k] = l->qkd.mu[k];
        d.p_mu[k] = l->qkd.p_mu[k];
        d.n_x[k] = s * c->n_x[k];
        d.n_z[k] = s * c->n_z[k];
        d.m_z[k] = s * c->m_z[k];
        if (d.m_z[k] > d.n_z[k]) d.m_z[k] = d.n_z[k]; /* rounding only */
        nx += s * c->n_x[k];
        mx += s * c->m_x[k];
    }
    KAGI__TRY(kagi_decoy_bound_lim(&d, l->qkd.eps_sec, l->qkd.eps_cor, b));
    *lambda = nx > 0 ? l->qkd.f_ec * nx * kagi__h(mx / nx) : 0;
    *len = b->length_before_ec - *lambda;
    return KAGI_OK;
}

int kagi_fso_key_of(const kagi_fso_link *l, const kagi_fso_counts *c, kagi_fso_key *out)
{
    memset(out, 0, sizeof *out);
    double nx = 0, nz = 0, mx = 0, mz = 0;
    for (int k = 0; k < 3; k++) {
        nx += c->n_x[k];
        nz += c->n_z[k];
        mx += c->m_x[k];
        mz += c->m_z[k];
    }
    out->detections = c->detections;
    out->sifted_bits = nx + nz;
    out->n_x = nx;
    out->qber_x = nx > 0 ? mx / nx : 0;
    out->qber = nx + nz > 0 ? (mx + mz) / (nx + nz) : 0;
    if (!(nx > 0)) return KAGI_OK; /* nothing detected: no key */
    double lambda, len;
    KAGI__TRY(kagi__length(l, c, 1.0, &out->bound, &lambda, &len));
    out->lambda_ec = lambda;
    out->key_bits = len >= 1 ? floor(len) : 0;
    kagi_decoy_bound ab;
    KAGI__TRY(kagi__length(l, c, KAGI__ASYM_SCALE, &ab, &lambda, &len));
    out->asymptotic_bits = len > 0 ? len / KAGI__ASYM_SCALE : 0;
    return KAGI_OK;
}

/* ---- A pass ------------------------------------------------------------------------ */

void kagi_fso_pass_clear(kagi_fso_pass *p)
{
    if (!p) return;
    free(p->points);
    memset(p, 0, sizeof *p);
}

int kagi_fso_pass_run(kagi_sat *s, const kagi_station *st, const kagi_pass *p,
                      const kagi_fso_link *l, double step_s, kagi_fso_pass *out)
{
    memset(out, 0, sizeof *out);
    KAGI__TRY(kagi_fso_check(l));
    kagi_look *looks = NULL;
    size_t n = 0;
    KAGI__TRY(kagi_pass_sample(s, st, p, step_s, &looks, &n));
    kagi_fso_point *pts = n ? calloc(n, sizeof *pts) : NULL;
    if (n && !pts) {
        kagi_looks_free(looks);
        return kagi__err(KAGI_ERR_NOMEM, "pass of %zu samples: out of memory", n);
    }
    kagi_fso_counts c;
    memset(&c, 0, sizeof c);
    int e = KAGI_OK, night = n > 0;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n && !e; i++) {
        /* Trapezoid rule: half the interval on either side. */
        double w = 0;
        if (i > 0) w += 0.5 * (looks[i].t - looks[i - 1].t);
        if (i + 1 < n) w += 0.5 * (looks[i + 1].t - looks[i].t);
        kagi_look lk = looks[i];
        /* aos and los sit on the minimum elevation, which may be 0 or
         * below: the channel is defined above the horizon only. */
        if (!(lk.el_deg > 0.01)) lk.el_deg = 0.01;
        e = kagi_fso_accumulate(l, &lk, w, &c, &pts[i]);
        pts[i].el_deg = looks[i].el_deg;
        if (!e) {
            lo = fmin(lo, pts[i].loss_db);
            hi = fmax(hi, pts[i].loss_db);
            night &= pts[i].night;
        }
    }
    kagi_looks_free(looks);
    if (!e) e = kagi_fso_key_of(l, &c, &out->key);
    if (e) {
        free(pts);
        memset(out, 0, sizeof *out);
        return e;
    }
    out->pass = *p;
    out->points = pts;
    out->npoints = n;
    out->counts = c;
    out->night = night;
    out->min_loss_db = n ? lo : 0;
    out->max_loss_db = n ? hi : 0;
    return KAGI_OK;
}
