/* Secret key rate of a fibre link: decoy-state BB84 (asymptotic with
 * infinitely many decoys or with vacuum + weak decoy, and the finite-key
 * bound of Lim et al. 2014) and sending-or-not-sending TF-QKD, with a
 * bounded, deterministic Nelder-Mead search over the source parameters.
 * Formulas and sources: docs/keyrate.md and include/kagi/keyrate.h. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "kagi/keyrate.h"
#include "phys_internal.h"

#define KAGI__LN2 0.69314718055994530942

/* a / b, 0 when nothing was detected (b = 0, e.g. Y0 = 0 past the point
 * where the transmittance underflows). */
static double kagi__ratio(double a, double b)
{
    return b > 0 ? a / b : 0.0;
}

int kagi_protocol_parse(const char *s, kagi_protocol *out)
{
    if (!strcmp(s, "bb84-decoy")) *out = KAGI_PROTO_BB84_DECOY;
    else if (!strcmp(s, "tf-qkd")) *out = KAGI_PROTO_TF_QKD;
    else return kagi__err(KAGI_ERR_ARG, "'%s' is not bb84-decoy or tf-qkd", s);
    return KAGI_OK;
}

const char *kagi_protocol_name(kagi_protocol p)
{
    return p == KAGI_PROTO_TF_QKD ? "tf-qkd" : "bb84-decoy";
}

int kagi_afterpulse_model_parse(const char *s, kagi_afterpulse_model *out)
{
    if (!strcmp(s, "gate")) *out = KAGI_AFTERPULSE_GATE;
    else if (!strcmp(s, "lim")) *out = KAGI_AFTERPULSE_LIM;
    else return kagi__err(KAGI_ERR_ARG, "'%s' is not gate or lim", s);
    return KAGI_OK;
}

void kagi_link_defaults(kagi_link *l)
{
    memset(l, 0, sizeof *l);
    /* Source: intensities a Lim et al. style optimisation picks at 50-100
     * km (they optimise mu1, mu2 and fix mu3 = 2e-4). */
    /* Lim et al.'s system; intensities and probabilities within ~3% of the
     * optimum for a 10^7-bit block at 0-150 km (docs/keyrate.md). */
    l->mu[0] = 0.45;
    l->mu[1] = 0.2;
    l->mu[2] = 2e-4;
    l->p_mu[0] = 0.4;
    l->p_mu[1] = 0.4;
    l->p_mu[2] = 0.2;
    l->p_x = 0.85;
    l->send_prob = 0.05;
    l->clock_hz = 1e9;
    l->distance_km = 0;
    l->fiber_loss_db_km = 0.2;
    l->extra_loss_db = 0;
    l->misalignment = 5e-3;
    l->det_eff = 0.10;
    l->dark_count = 1.2e-6; /* 2 detectors x 6e-7 */
    l->afterpulse = 0.04;
    l->dead_time_s = 0;
    l->f_ec = 1.16;
    l->eps_sec = 1e-10;
    l->eps_cor = 1e-15;
}

/* Field checks: each names the field and the value. */
#define KAGI__CHECK(cond, ...) KAGI__FAIL_IF(!(cond), KAGI_ERR_ARG, __VA_ARGS__)

static const char *const kagi__mu_name[3] = {"signal", "decoy", "vacuum"};

int kagi_link_check(const kagi_link *l, kagi_decoys decoys)
{
    KAGI__CHECK(decoys == KAGI_DECOYS_INFINITE || decoys == KAGI_DECOYS_TWO,
                "decoys %d is not a known decoy setting", (int)decoys);
    KAGI__CHECK(isfinite(l->mu[0]) && l->mu[0] > 0 && l->mu[0] <= 100,
                "mu[0] (signal intensity) %g is not in (0, 100]", l->mu[0]);
    KAGI__CHECK(isfinite(l->p_x) && l->p_x > 0 && l->p_x <= 1,
                "p_x (key basis probability) %g is not in (0, 1]", l->p_x);
    KAGI__CHECK(isfinite(l->send_prob) && l->send_prob > 0 && l->send_prob < 1,
                "send_prob (TF-QKD sending probability) %g is not in (0, 1)", l->send_prob);
    KAGI__CHECK(isfinite(l->clock_hz) && l->clock_hz > 0, "clock_hz %g is not a positive rate",
                l->clock_hz);
    KAGI__CHECK(isfinite(l->distance_km) && l->distance_km >= 0,
                "distance_km %g is negative or not finite", l->distance_km);
    KAGI__CHECK(isfinite(l->fiber_loss_db_km) && l->fiber_loss_db_km >= 0,
                "fiber_loss_db_km %g is negative or not finite", l->fiber_loss_db_km);
    KAGI__CHECK(isfinite(l->extra_loss_db) && l->extra_loss_db >= 0,
                "extra_loss_db %g is negative or not finite", l->extra_loss_db);
    KAGI__CHECK(isfinite(l->misalignment) && l->misalignment >= 0 && l->misalignment <= 0.5,
                "misalignment %g is not in [0, 0.5]", l->misalignment);
    KAGI__CHECK(isfinite(l->det_eff) && l->det_eff > 0 && l->det_eff <= 1,
                "det_eff (detector efficiency) %g is not in (0, 1]", l->det_eff);
    KAGI__CHECK(isfinite(l->dark_count) && l->dark_count >= 0 && l->dark_count < 1,
                "dark_count (Y0) %g is not in [0, 1)", l->dark_count);
    KAGI__CHECK(isfinite(l->afterpulse) && l->afterpulse >= 0 && l->afterpulse < 1,
                "afterpulse %g is not in [0, 1)", l->afterpulse);
    KAGI__CHECK(isfinite(l->dead_time_s) && l->dead_time_s >= 0,
                "dead_time_s %g is negative or not finite", l->dead_time_s);
    KAGI__CHECK(isfinite(l->f_ec) && l->f_ec >= 1 && l->f_ec <= 10,
                "f_ec (reconciliation efficiency) %g is not in [1, 10]", l->f_ec);
    KAGI__CHECK(isfinite(l->eps_sec) && l->eps_sec > 0 && l->eps_sec < 1,
                "eps_sec %g is not in (0, 1)", l->eps_sec);
    KAGI__CHECK(isfinite(l->eps_cor) && l->eps_cor > 0 && l->eps_cor < 1,
                "eps_cor %g is not in (0, 1)", l->eps_cor);
    if (decoys != KAGI_DECOYS_TWO) return KAGI_OK;
    double sum = 0;
    for (int k = 0; k < 3; k++) {
        KAGI__CHECK(isfinite(l->p_mu[k]) && l->p_mu[k] > 0 && l->p_mu[k] < 1,
                    "p_mu[%d] (%s probability) %g is not in (0, 1)", k, kagi__mu_name[k],
                    l->p_mu[k]);
        sum += l->p_mu[k];
    }
    KAGI__CHECK(fabs(sum - 1) <= 1e-9, "p_mu[0..2] sum to %.12g, not 1", sum);
    KAGI__CHECK(isfinite(l->mu[2]) && l->mu[2] >= 0,
                "mu[2] (vacuum intensity) %g is negative or not finite", l->mu[2]);
    KAGI__CHECK(isfinite(l->mu[1]) && l->mu[1] > l->mu[2],
                "mu[1] (decoy intensity) %g is not above the vacuum %g", l->mu[1], l->mu[2]);
    KAGI__CHECK(l->mu[1] < l->mu[0], "mu[1] (decoy intensity) %g is not below the signal %g",
                l->mu[1], l->mu[0]);
    KAGI__CHECK(l->mu[0] > l->mu[1] + l->mu[2],
                "mu[0] (signal intensity) %g is not above mu[1] + mu[2] = %g", l->mu[0],
                l->mu[1] + l->mu[2]);
    return KAGI_OK;
}

double kagi_link_eta(const kagi_link *l)
{
    double db = l->fiber_loss_db_km * l->distance_km + l->extra_loss_db;
    return pow(10.0, -db / 10.0) * l->det_eff;
}

double kagi_plob(double eta)
{
    if (!(eta > 0)) return 0.0;
    if (eta >= 1) return INFINITY;
    return -log1p(-eta) / KAGI__LN2;
}

/* ---- Detection model ------------------------------------------------ */

/* After-pulses, two models (docs/keyrate.md):
 *  - gate (default): an after-pulse fires in a later gate, whatever was
 *    sent then, so it acts on every pulse as an extra dark yield with a
 *    random bit, y_ap = ap D / (1 - ap) for a mean click probability D
 *    per pulse (after-pulses after-pulse too). kagi link simulate draws
 *    this model.
 *  - lim: Lim et al. 2014 add ap D_k to the clicks of each class k, as if
 *    the after-pulse belonged to the pulse that caused it; kept to
 *    reproduce their figures. */
typedef struct kagi__det {
    double eta, y0, ed, ap, yap;
    int lim;
} kagi__det;

/* D_k = 1 - (1 - Y0) e^{-eta k}, without cancellation when eta k is tiny. */
static double kagi__dark_or_photon(double eta, double y0, double k)
{
    return y0 + (1 - y0) * -expm1(-eta * k);
}

/* The model at mean click probability dbar per pulse. */
static kagi__det kagi__det_at(const kagi_link *l, double eta, double dbar)
{
    kagi__det d = {eta, l->dark_count, l->misalignment, l->afterpulse,
                   l->afterpulse * dbar / (1 - l->afterpulse),
                   l->afterpulse_model == KAGI_AFTERPULSE_LIM};
    return d;
}

/* mix: average the clicks over the three classes (p_mu), else over the
 * signal alone (infinite decoys: decoys are a vanishing share). */
static kagi__det kagi__det_of(const kagi_link *l, double eta, int mix)
{
    double dbar = 0;
    for (int k = 0; k < (mix ? 3 : 1); k++)
        dbar += (mix ? l->p_mu[k] : 1) * kagi__dark_or_photon(eta, l->dark_count, l->mu[k]);
    return kagi__det_at(l, eta, dbar);
}

/* Clicks of a pulse whose dark-or-photon click probability is c. */
static double kagi__with_ap(const kagi__det *d, double c)
{
    return d->lim ? c * (1 + d->ap) : c + d->yap - c * d->yap; /* 1-(1-c)(1-y) */
}

/* R_k: click probability of a pulse of intensity k. */
static double kagi__gain(const kagi__det *d, double k)
{
    return kagi__with_ap(d, kagi__dark_or_photon(d->eta, d->y0, k));
}

/* Error probability per pulse of intensity k: e0 Y0 + e_d (1 - e^{-eta k})
 * as in Lo-Ma-Chen, plus half the after-pulse clicks (random bits). */
static double kagi__errp(const kagi__det *d, double k)
{
    double c = kagi__dark_or_photon(d->eta, d->y0, k);
    return 0.5 * d->y0 + d->ed * -expm1(-d->eta * k) + 0.5 * (kagi__with_ap(d, c) - c);
}

/* kagi__det_of, kagi__gain and kagi__errp of the three classes, each
 * class's photon click probability computed once (the free-space model
 * calls this 65 times a sample): the same values, bit for bit. */
void kagi__detect(const kagi_link *l, double eta, double gain[3], double err[3])
{
    double s[3], c[3], dbar = 0;
    for (int k = 0; k < 3; k++) {
        s[k] = -expm1(-eta * l->mu[k]);
        c[k] = l->dark_count + (1 - l->dark_count) * s[k]; /* kagi__dark_or_photon */
        dbar += l->p_mu[k] * c[k];
    }
    kagi__det d = kagi__det_at(l, eta, dbar);
    for (int k = 0; k < 3; k++) {
        double a = kagi__with_ap(&d, c[k]);
        gain[k] = a;
        err[k] = 0.5 * d.y0 + d.ed * s[k] + 0.5 * (a - c[k]);
    }
}

/* Key per second at click probability pclick per pulse: a non-paralysable
 * detector registers R/(1 + R tau) of R clicks per second. */
static double kagi__bps(const kagi_link *l, double per_pulse, double pclick)
{
    double r = l->clock_hz * pclick;
    return per_pulse * l->clock_hz / (1 + r * l->dead_time_s);
}

/* An asymptotic result: rate clamped at 0, the bounds it came from. */
static void kagi__asym_out(const kagi_link *l, kagi_rate *r, double raw, double gain, double qber,
                           double y1, double e1)
{
    r->per_pulse = raw > 0 ? raw : 0;
    r->qber = qber;
    r->gain = gain;
    r->y1_lower = y1;
    r->e1_upper = e1 < 0.5 ? e1 : 0.5;
    r->block_pulses = 0;
    r->bps = kagi__bps(l, r->per_pulse, gain);
}

/* ---- Asymptotic decoy BB84 -------------------------------------------- */

/* raw: the rate before clamping at 0 (the optimiser follows it through
 * negative values). */
static void kagi__bb84_asym(kagi_decoys decoys, const kagi_link *l, kagi_rate *r, double *raw)
{
    kagi__det d = kagi__det_of(l, kagi_link_eta(l), decoys == KAGI_DECOYS_TWO);
    double mu = l->mu[0], q = l->p_x * l->p_x;
    double Q = kagi__gain(&d, mu), E = kagi__ratio(kagi__errp(&d, mu), Q);
    double y1, e1;
    if (decoys == KAGI_DECOYS_INFINITE) {
        /* Lo, Ma, Chen 2005: Y1 = Y0 + eta - Y0 eta, e1 = (e0 Y0 + e_d eta)/Y1,
         * with the after-pulses of the model above as a further dark yield. */
        double c1 = d.y0 + d.eta - d.y0 * d.eta;
        y1 = kagi__with_ap(&d, c1);
        e1 = kagi__ratio(0.5 * d.y0 + d.ed * d.eta + 0.5 * (y1 - c1), y1);
    } else {
        /* Ma, Qi, Zhao, Lo 2005, two decoys nu1 > nu2 >= 0 (nu2 = 0 is their
         * vacuum + weak decoy): lower bound on Y0 and Y1, upper on e1. */
        double n1 = l->mu[1], n2 = l->mu[2];
        double Q1 = kagi__gain(&d, n1), Q2 = kagi__gain(&d, n2);
        double EQ1 = kagi__errp(&d, n1), EQ2 = kagi__errp(&d, n2);
        double y0 = (n1 * Q2 * exp(n2) - n2 * Q1 * exp(n1)) / (n1 - n2);
        if (y0 < 0) y0 = 0;
        y1 = mu / (mu * n1 - mu * n2 - n1 * n1 + n2 * n2) *
             (Q1 * exp(n1) - Q2 * exp(n2) - (n1 * n1 - n2 * n2) / (mu * mu) * (Q * exp(mu) - y0));
        e1 = y1 > 0 ? (EQ1 * exp(n1) - EQ2 * exp(n2)) / ((n1 - n2) * y1) : 0.5;
        if (y1 < 0) y1 = 0;
        if (e1 < 0) e1 = 0;
    }
    double q1 = y1 * mu * exp(-mu);
    *raw = q * (q1 * (1 - kagi__h(e1)) - l->f_ec * Q * kagi__h(E));
    kagi__asym_out(l, r, *raw, Q, E, y1, e1);
}

/* ---- Lim et al. 2014 finite-key bound --------------------------------- */

static double kagi__gamma(double a, double b, double c, double d)
{
    if (!(b > 0)) return 0.0; /* the limit of (1-b) b log(1/b) at 0 */
    double arg = (c + d) / (c * d * (1 - b) * b) * (21.0 * 21.0) / (a * a);
    if (!(arg > 1)) return 0.0;
    return sqrt((c + d) * (1 - b) * b / (c * d * KAGI__LN2) * log2(arg));
}

/* tau_n for n = 0, 1: probability that a pulse holds n photons. */
static double kagi__tau(const kagi_decoy_counts *c, int n)
{
    double t = 0;
    for (int k = 0; k < 3; k++) t += c->p_mu[k] * exp(-c->mu[k]) * (n ? c->mu[k] : 1);
    return t;
}

/* Eqs. (2) and (3) for one basis from the per-class counts cnt[k] and the
 * Hoeffding deviation dev. */
static void kagi__s0_s1(const kagi_decoy_counts *c, const double *cnt, double dev, double tau0,
                        double tau1, double *s0, double *s1)
{
    double m1 = c->mu[0], m2 = c->mu[1], m3 = c->mu[2];
    double np[3], nm[3];
    for (int k = 0; k < 3; k++) {
        double w = exp(c->mu[k]) / c->p_mu[k];
        np[k] = w * (cnt[k] + dev);
        nm[k] = w * (cnt[k] - dev);
    }
    double v = tau0 * (m2 * nm[2] - m3 * np[1]) / (m2 - m3);
    *s0 = v > 0 ? v : 0;
    double s = tau1 * m1 *
               (nm[1] - np[2] - (m2 * m2 - m3 * m3) / (m1 * m1) * (np[0] - *s0 / tau0)) /
               (m1 * (m2 - m3) - m2 * m2 + m3 * m3);
    *s1 = s > 0 ? s : 0;
}

int kagi_decoy_bound_lim(const kagi_decoy_counts *c, double eps_sec, double eps_cor,
                         kagi_decoy_bound *out)
{
    memset(out, 0, sizeof *out);
    KAGI__CHECK(isfinite(eps_sec) && eps_sec > 0 && eps_sec < 1, "eps_sec %g is not in (0, 1)",
                eps_sec);
    KAGI__CHECK(isfinite(eps_cor) && eps_cor > 0 && eps_cor < 1, "eps_cor %g is not in (0, 1)",
                eps_cor);
    for (int k = 0; k < 3; k++) {
        KAGI__CHECK(isfinite(c->p_mu[k]) && c->p_mu[k] > 0 && c->p_mu[k] <= 1,
                    "p_mu[%d] %g is not in (0, 1]", k, c->p_mu[k]);
        KAGI__CHECK(isfinite(c->n_x[k]) && c->n_x[k] >= 0, "n_x[%d] %g is not a count", k,
                    c->n_x[k]);
        KAGI__CHECK(isfinite(c->n_z[k]) && c->n_z[k] >= 0, "n_z[%d] %g is not a count", k,
                    c->n_z[k]);
        KAGI__CHECK(isfinite(c->m_z[k]) && c->m_z[k] >= 0 && c->m_z[k] <= c->n_z[k],
                    "m_z[%d] %g is not a count of errors among n_z[%d] = %g", k, c->m_z[k], k,
                    c->n_z[k]);
    }
    KAGI__CHECK(isfinite(c->mu[2]) && c->mu[2] >= 0 && isfinite(c->mu[1]) &&
                    c->mu[1] > c->mu[2] && isfinite(c->mu[0]) && c->mu[0] <= 100 &&
                    c->mu[0] > c->mu[1] + c->mu[2],
                "intensities mu %g, %g, %g break mu1 > mu2 + mu3, mu2 > mu3 >= 0", c->mu[0],
                c->mu[1], c->mu[2]);

    double lnf = log(21.0 / eps_sec);
    double nX = c->n_x[0] + c->n_x[1] + c->n_x[2];
    double nZ = c->n_z[0] + c->n_z[1] + c->n_z[2];
    double mZ = c->m_z[0] + c->m_z[1] + c->m_z[2];
    double tau0 = kagi__tau(c, 0), tau1 = kagi__tau(c, 1);

    double sx0, sx1, sz0, sz1;
    kagi__s0_s1(c, c->n_x, sqrt(nX / 2 * lnf), tau0, tau1, &sx0, &sx1);
    kagi__s0_s1(c, c->n_z, sqrt(nZ / 2 * lnf), tau0, tau1, &sz0, &sz1);

    /* Eq. (4): errors of the single-photon test bits. */
    double dm = sqrt(mZ / 2 * lnf);
    double mp2 = exp(c->mu[1]) / c->p_mu[1] * (c->m_z[1] + dm);
    double mm3 = exp(c->mu[2]) / c->p_mu[2] * (c->m_z[2] - dm);
    double vz1 = tau1 * (mp2 - mm3) / (c->mu[1] - c->mu[2]);
    if (vz1 < 0) vz1 = 0;

    /* Eq. (5): phase error rate of the single-photon key bits. */
    double phi = 0.5;
    if (sz1 > 0 && sx1 > 0) {
        double b = vz1 / sz1;
        if (b < 0.5) phi = b + kagi__gamma(eps_sec, b, sz1, sx1);
        if (!(phi < 0.5)) phi = 0.5;
    }
    out->s_x0 = sx0;
    out->s_x1 = sx1;
    out->s_z1 = sz1;
    out->v_z1 = vz1;
    out->phi_x = phi;
    out->length_before_ec =
        sx0 + sx1 * (1 - kagi__h(phi)) - 6 * log2(21.0 / eps_sec) - log2(2.0 / eps_cor);
    return KAGI_OK;
}

/* Finite key for a block of n_block X-basis detections: expected counts
 * into kagi_decoy_bound_lim. */
static int kagi__bb84_finite(const kagi_link *l, double n_block, kagi_rate *r, double *raw)
{
    kagi__det d = kagi__det_of(l, kagi_link_eta(l), 1);
    double qx = l->p_x * l->p_x, qz = (1 - l->p_x) * (1 - l->p_x);
    double px = 0, pclick = 0, gk[3], ek[3];
    for (int k = 0; k < 3; k++) {
        gk[k] = kagi__gain(&d, l->mu[k]);
        ek[k] = kagi__errp(&d, l->mu[k]);
        px += qx * l->p_mu[k] * gk[k];
        pclick += l->p_mu[k] * gk[k];
    }
    if (!(px > 0)) { /* nothing is ever detected: the block never fills */
        *raw = 0;
        r->block_pulses = INFINITY;
        return KAGI_OK;
    }
    double N = n_block / px;
    kagi_decoy_counts c;
    double mx = 0;
    for (int k = 0; k < 3; k++) {
        c.mu[k] = l->mu[k];
        c.p_mu[k] = l->p_mu[k];
        c.n_x[k] = N * qx * l->p_mu[k] * gk[k];
        c.n_z[k] = N * qz * l->p_mu[k] * gk[k];
        c.m_z[k] = N * qz * l->p_mu[k] * ek[k];
        mx += N * qx * l->p_mu[k] * ek[k];
    }
    kagi_decoy_bound b;
    KAGI__TRY(kagi_decoy_bound_lim(&c, l->eps_sec, l->eps_cor, &b));
    double ex = mx / n_block;
    double len = b.length_before_ec - l->f_ec * n_block * kagi__h(ex);
    *raw = len / N;
    r->per_pulse = len >= 1 ? floor(len) / N : 0;
    r->qber = kagi__ratio(ek[0], gk[0]);
    r->gain = gk[0];
    double tau1 = 0;
    for (int k = 0; k < 3; k++) tau1 += l->p_mu[k] * exp(-l->mu[k]) * l->mu[k];
    r->y1_lower = b.s_x1 / (N * qx * tau1);
    r->e1_upper = b.phi_x;
    r->block_pulses = N;
    r->bps = kagi__bps(l, r->per_pulse, pclick);
    return KAGI_OK;
}

/* ---- Sending-or-not-sending TF-QKD (Wang, Yu, Hu 2018) ----------------- */

/* e^{-x} I0(x), I0 the modified Bessel function: the phase average of
 * e^{-x} e^{x cos t}. Series; x <= 100 here. */
static double kagi__ei0(double x)
{
    double t = exp(-x), s = t, q = x * x / 4;
    for (int k = 1; k < 2000; k++) {
        t *= q / ((double)k * k);
        s += t;
        if (t < s * 1e-17 && k > x) break;
    }
    return s;
}

static void kagi__tf(const kagi_link *l, kagi_rate *r, double *raw)
{
    double db = l->fiber_loss_db_km * l->distance_km / 2 + l->extra_loss_db;
    double eta = pow(10.0, -db / 10.0) * l->det_eff; /* one arm, to Charlie */
    double pd = l->dark_count / 2;                    /* per detector */
    double mu = l->mu[0], e = l->send_prob, ap = l->afterpulse, x = eta * mu;
    /* One-detector events in a key window: nobody sends, one sends (the
     * pulse splits evenly), both send (phase-averaged interference). */
    double a0 = 2 * pd * (1 - pd);
    double c = 1 - (1 - pd) * exp(-x / 2);
    double a1 = 2 * c * (1 - c);
    double a2 = 2 * ((1 - pd) * kagi__ei0(x) - (1 - pd) * (1 - pd) * exp(-2 * x));
    double S = (1 - e) * (1 - e) * a0 + 2 * e * (1 - e) * a1 + e * e * a2;
    double ES = (1 - e) * (1 - e) * a0 + e * e * a2; /* both or neither sent */
    /* Infinite decoys: yield and phase-flip rate of single photons. */
    double s1 = eta * (1 - pd) + 2 * (1 - eta) * pd * (1 - pd);
    double es1 = eta * l->misalignment * (1 - pd) + (1 - eta) * pd * (1 - pd);
    /* After-pulses as for BB84: (1 + ap) clicks, the extra ones random. */
    double S2 = S * (1 + ap), E = kagi__ratio(ES + 0.5 * ap * S, S2);
    double s12 = s1 * (1 + ap), e1 = kagi__ratio(es1 + 0.5 * ap * s1, s12);
    double q = l->p_x * l->p_x;
    *raw = q * (2 * e * (1 - e) * mu * exp(-mu) * s12 * (1 - kagi__h(e1)) -
                l->f_ec * S2 * kagi__h(E));
    kagi__asym_out(l, r, *raw, S2, E, s12, e1);
}

/* ---- Entry points ----------------------------------------------------- */

static int kagi__args(kagi_protocol proto, kagi_decoys decoys, const kagi_link *l,
                      double n_block)
{
    KAGI__CHECK(proto == KAGI_PROTO_BB84_DECOY || proto == KAGI_PROTO_TF_QKD,
                "protocol %d is not a known protocol", (int)proto);
    KAGI__CHECK(isfinite(n_block) && n_block >= 0,
                "n_block %g is not a block size (0 for asymptotic)", n_block);
    if (proto == KAGI_PROTO_TF_QKD) {
        KAGI__CHECK(decoys == KAGI_DECOYS_INFINITE,
                    "decoys: TF-QKD is modelled with infinite decoys only");
        KAGI__CHECK(n_block == 0, "n_block: TF-QKD is modelled asymptotically only");
        return kagi_link_check(l, KAGI_DECOYS_INFINITE);
    }
    KAGI__TRY(kagi_link_check(l, decoys));
    if (n_block > 0) {
        KAGI__CHECK(decoys == KAGI_DECOYS_TWO,
                    "n_block: finite keys need two decoys (Lim et al. 2014)");
        KAGI__CHECK(n_block >= 1, "n_block %g is below one detection", n_block);
        KAGI__CHECK(l->p_x < 1, "p_x %g leaves no test basis for a finite key", l->p_x);
    }
    return KAGI_OK;
}

static int kagi__eval(kagi_protocol proto, kagi_decoys decoys, const kagi_link *l,
                      double n_block, kagi_rate *out, double *raw)
{
    memset(out, 0, sizeof *out);
    if (proto == KAGI_PROTO_TF_QKD)
        kagi__tf(l, out, raw);
    else if (n_block > 0)
        KAGI__TRY(kagi__bb84_finite(l, n_block, out, raw));
    else
        kagi__bb84_asym(decoys, l, out, raw);
    out->plob_per_pulse = kagi_plob(kagi_link_eta(l));
    if (!isfinite(*raw)) *raw = -INFINITY;
    if (!(out->per_pulse > 0) || !isfinite(out->per_pulse)) out->per_pulse = 0;
    if (!(out->bps > 0) || !isfinite(out->bps)) out->bps = 0;
    return KAGI_OK;
}

int kagi_keyrate(kagi_protocol proto, kagi_decoys decoys, const kagi_link *l, double n_block,
                 kagi_rate *out)
{
    memset(out, 0, sizeof *out);
    KAGI__TRY(kagi__args(proto, decoys, l, n_block));
    double raw;
    return kagi__eval(proto, decoys, l, n_block, out, &raw);
}

/* ---- Optimisation ----------------------------------------------------- */

#define KAGI__DIM 5

/* The free parameters as a point u of the unit cube [0,1]^dim. */
typedef struct kagi__opt {
    kagi_protocol proto;
    kagi_decoys decoys;
    double n_block;
    kagi_link base; /* fixed parameters */
    int dim;
    double lo, hi;  /* range of mu[0] (finite: mu1), log-spaced */
} kagi__opt;

static double kagi__lerp_log(double lo, double hi, double u)
{
    return exp(log(lo) + u * (log(hi) - log(lo)));
}

static double kagi__unlerp_log(double lo, double hi, double v)
{
    double u = (log(v) - log(lo)) / (log(hi) - log(lo));
    return u < 0 ? 0 : u > 1 ? 1 : u;
}

static double kagi__clamp01(double u)
{
    return u < 0 ? 0 : u > 1 ? 1 : u;
}

static void kagi__to_link(const kagi__opt *o, const double *u, kagi_link *l)
{
    *l = o->base;
    l->mu[0] = kagi__lerp_log(o->lo, o->hi, u[0]);
    if (o->proto == KAGI_PROTO_TF_QKD) {
        l->send_prob = kagi__lerp_log(1e-4, 0.5, u[1]);
    } else if (o->dim == KAGI__DIM) {
        double m3 = l->mu[2];
        l->mu[1] = m3 + (0.01 + 0.97 * u[1]) * (l->mu[0] - 2 * m3);
        l->p_mu[0] = 0.02 + 0.96 * u[2];
        l->p_mu[1] = (1 - l->p_mu[0]) * (0.02 + 0.96 * u[3]);
        l->p_mu[2] = 1 - l->p_mu[0] - l->p_mu[1];
        l->p_x = 0.02 + 0.978 * u[4];
    }
}

static void kagi__from_link(const kagi__opt *o, const kagi_link *l, double *u)
{
    u[0] = kagi__unlerp_log(o->lo, o->hi, l->mu[0]);
    if (o->proto == KAGI_PROTO_TF_QKD) {
        u[1] = kagi__unlerp_log(1e-4, 0.5, l->send_prob);
    } else if (o->dim == KAGI__DIM) {
        double m1 = kagi__lerp_log(o->lo, o->hi, u[0]), m3 = o->base.mu[2];
        u[1] = kagi__clamp01(((l->mu[1] - m3) / (m1 - 2 * m3) - 0.01) / 0.97);
        u[2] = kagi__clamp01((l->p_mu[0] - 0.02) / 0.96);
        u[3] = kagi__clamp01((l->p_mu[1] / (1 - l->p_mu[0]) - 0.02) / 0.96);
        u[4] = kagi__clamp01((l->p_x - 0.02) / 0.978);
    }
}

/* The raw (unclamped) rate at u; -inf where the model is undefined. */
static double kagi__objective(const kagi__opt *o, const double *u)
{
    kagi_link l;
    kagi_rate r;
    double raw = -INFINITY;
    kagi__to_link(o, u, &l);
    if (kagi__eval(o->proto, o->decoys, &l, o->n_block, &r, &raw) != KAGI_OK) return -INFINITY;
    return raw;
}

/* Nelder-Mead maximisation in the unit cube (points are clamped into it),
 * from u with initial step 0.15; u receives the best point, the return
 * value its objective. */
static double kagi__nelder_mead(const kagi__opt *o, double *u, int max_evals)
{
    int d = o->dim, n = d + 1, evals = 0;
    double p[KAGI__DIM + 1][KAGI__DIM], f[KAGI__DIM + 1];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) p[i][j] = u[j];
        if (i > 0) p[i][i - 1] += u[i - 1] + 0.15 <= 1 ? 0.15 : -0.15;
        f[i] = kagi__objective(o, p[i]);
        evals++;
    }
    while (evals < max_evals) {
        /* Order: best first. */
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && f[j] > f[j - 1]; j--) {
                double t = f[j];
                f[j] = f[j - 1];
                f[j - 1] = t;
                for (int k = 0; k < d; k++) {
                    t = p[j][k];
                    p[j][k] = p[j - 1][k];
                    p[j - 1][k] = t;
                }
            }
        double size = 0;
        for (int i = 1; i < n; i++)
            for (int k = 0; k < d; k++) size = fmax(size, fabs(p[i][k] - p[0][k]));
        if (size < 1e-7) break;
        if (isfinite(f[0]) && isfinite(f[d]) && f[0] - f[d] <= 1e-10 * fabs(f[0]) && size < 1e-4)
            break;
        double c[KAGI__DIM] = {0}, xr[KAGI__DIM], xe[KAGI__DIM], xc[KAGI__DIM];
        for (int i = 0; i < d; i++)
            for (int k = 0; k < d; k++) c[k] += p[i][k] / d;
        for (int k = 0; k < d; k++) xr[k] = kagi__clamp01(c[k] + (c[k] - p[d][k]));
        double fr = kagi__objective(o, xr);
        evals++;
        if (fr > f[0]) {
            for (int k = 0; k < d; k++) xe[k] = kagi__clamp01(c[k] + 2 * (c[k] - p[d][k]));
            double fe = kagi__objective(o, xe);
            evals++;
            if (fe > fr) {
                memcpy(p[d], xe, sizeof xe);
                f[d] = fe;
            } else {
                memcpy(p[d], xr, sizeof xr);
                f[d] = fr;
            }
            continue;
        }
        if (fr > f[d - 1]) {
            memcpy(p[d], xr, sizeof xr);
            f[d] = fr;
            continue;
        }
        /* Contract towards the better of the worst point and its reflection. */
        const double *w = fr > f[d] ? xr : p[d];
        for (int k = 0; k < d; k++) xc[k] = c[k] + 0.5 * (w[k] - c[k]);
        double fc = kagi__objective(o, xc);
        evals++;
        if (fc > fmax(f[d], fr)) {
            memcpy(p[d], xc, sizeof xc);
            f[d] = fc;
            continue;
        }
        for (int i = 1; i < n; i++) { /* shrink towards the best */
            for (int k = 0; k < d; k++) p[i][k] = p[0][k] + 0.5 * (p[i][k] - p[0][k]);
            f[i] = kagi__objective(o, p[i]);
            evals++;
        }
    }
    int best = 0;
    for (int i = 1; i < n; i++)
        if (f[i] > f[best]) best = i;
    memcpy(u, p[best], (size_t)d * sizeof *u);
    return f[best];
}

int kagi_keyrate_optimize(kagi_protocol proto, kagi_decoys decoys, kagi_link *l, double n_block,
                          kagi_rate *out)
{
    memset(out, 0, sizeof *out);
    KAGI__TRY(kagi__args(proto, decoys, l, n_block));
    kagi__opt o = {proto, decoys, n_block, *l, 1, 1e-3, 1.5};
    if (proto == KAGI_PROTO_TF_QKD) {
        o.dim = 2;
        o.lo = 1e-4;
        o.hi = 1.0;
    } else if (n_block > 0) {
        o.dim = KAGI__DIM;
        o.lo = fmax(0.01, 4 * l->mu[2]);
        o.hi = fmax(1.2, 2 * o.lo);
    } else if (decoys == KAGI_DECOYS_TWO) {
        o.lo = (l->mu[1] + l->mu[2]) * (1 + 1e-6) + 1e-9;
        o.hi = fmax(1.5, 2 * o.lo);
    }
    /* Starts: the caller's values, then fixed points spread over the cube. */
    static const double starts[][KAGI__DIM] = {
        {0.5, 0.3, 0.6, 0.5, 0.8}, {0.3, 0.15, 0.3, 0.3, 0.5}, {0.75, 0.5, 0.8, 0.6, 0.95},
        {0.6, 0.2, 0.5, 0.2, 0.7}, {0.2, 0.6, 0.4, 0.7, 0.3},
    };
    double best[KAGI__DIM], fbest = -INFINITY;
    kagi__from_link(&o, l, best);
    int nstart = 1 + (int)(sizeof starts / sizeof *starts);
    for (int s = 0; s < nstart; s++) {
        double u[KAGI__DIM];
        if (s == 0)
            kagi__from_link(&o, l, u);
        else
            memcpy(u, starts[s - 1], sizeof u);
        double f = kagi__nelder_mead(&o, u, 400 * o.dim);
        f = kagi__nelder_mead(&o, u, 200 * o.dim); /* restart: re-spread the simplex */
        if (f > fbest) {
            fbest = f;
            memcpy(best, u, sizeof best);
        }
    }
    /* No point gives key: keep the caller's parameters (the best of a
     * negative objective is an arbitrary corner, not a setting to report). */
    if (!(fbest > 0)) return kagi_keyrate(proto, decoys, l, n_block, out);
    kagi_link tuned;
    kagi__to_link(&o, best, &tuned);
    KAGI__TRY(kagi_keyrate(proto, decoys, &tuned, n_block, out));
    if (!(out->per_pulse > 0)) return kagi_keyrate(proto, decoys, l, n_block, out);
    *l = tuned;
    return KAGI_OK;
}
