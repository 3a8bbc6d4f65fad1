/* kagi/freespace.h: the free-space optical channel between a satellite and
 * a ground station, and the secret key that a pass (or a few passes) of
 * decoy-state BB84 yields over it. Formulas, presets and their sources,
 * and the figures the tests hold the code to: docs/freespace.md.
 *
 * The channel (downlink or uplink) at slant range L and elevation el:
 *
 *   T = T_diffraction * T_pointing * T_atmosphere * T_fov * rx_efficiency
 *
 *   - diffraction: a Gaussian beam of waist w0 = tx_aperture / 2 and far-field
 *     1/e^2 half-angle theta (from the FWHM divergence, or the diffraction
 *     limit lambda / (pi w0)) has radius w(L) = sqrt(w0^2 + (theta L)^2); a
 *     receiving aperture of radius a centred on it collects 1 - e^{-2 a^2 / w^2};
 *   - pointing: a Gaussian jitter of sigma rad per axis, averaged:
 *     1 / (1 + 4 sigma^2 L^2 / w_eq^2) (w_eq: Farid & Hranilovic 2007);
 *   - atmosphere: T_zenith ^ X(el), X the Kasten & Young (1989) air mass;
 *   - field of view (rx_fov > 0): the focal spot, lambda / (pi a) and on a
 *     downlink the seeing in quadrature, against the field stop;
 *   - turbulence (optional, r0 > 0): uplink, the beam broadens near the
 *     transmitter, w^2 += 8 L^2 / (k rho0)^2, rho0 = r0(el) / 2.1; downlink,
 *     the seeing 2 sqrt2 / (k rho0) widens the focal spot (above);
 *     r0(el) = r0_zenith sin(el)^(3/5); scintillation as a log-normal fading
 *     of unit mean, averaged in the detection model;
 *   - then the receiver optics. loss_db is -10 log10 T: from the
 *     transmitter's exit to the detectors' input, detector efficiency not
 *     included (as Liao et al. 2017 plot it); eta = T * qkd.det_eff is what
 *     the detection model of kagi/keyrate.h sees.
 *
 * Background: per pulse (gate), all detectors, added to the detectors' dark
 * count: background_night with the Sun below -18 degrees at the station,
 * background_day above 0 degrees, log-linear in the Sun's elevation between.
 *
 * A pass is sampled with kagi_pass_sample; each sample carries the pulses of
 * its trapezoid-rule share of the pass; the expected detections and errors
 * per intensity class and basis are summed, and the sums form one finite-key
 * block for kagi_decoy_bound_lim (Lim et al. 2014), lambda_EC = f n_X h(E_X).
 *
 * Fallible functions return KAGI_OK or a code of kagi/error.h with a
 * one-line detail in kagi_errdetail(). */
#ifndef KAGI_FREESPACE_H
#define KAGI_FREESPACE_H

#include <stddef.h>

#include "kagi/bits.h"
#include "kagi/keyrate.h"
#include "kagi/orbit.h"

typedef enum kagi_fso_dir {
    KAGI_FSO_DOWNLINK = 0, /* satellite transmits, ground station receives */
    KAGI_FSO_UPLINK,       /* ground station transmits, satellite receives */
} kagi_fso_dir;

/* The optical channel; SI units as named. */
typedef struct kagi_fso {
    kagi_fso_dir direction;
    double wavelength_m;
    double tx_aperture_m;        /* transmitter aperture diameter; waist w0 = D/2 */
    double divergence_rad;       /* far-field divergence, full angle at half
                                    maximum (FWHM) of intensity; 0: diffraction-
                                    limited, theta = lambda / (pi w0) */
    double rx_aperture_m;        /* receiving aperture diameter */
    double pointing_jitter_rad;  /* r.m.s. pointing error of the transmitter,
                                    per axis (0: none) */
    double zenith_transmittance; /* of the atmosphere at the station, (0, 1] */
    double r0_zenith_m;          /* Fried parameter at zenith at the link's
                                    wavelength (0: no turbulence) */
    double rx_fov_rad;           /* receiver field of view, full angle (0:
                                    unlimited); with r0, where a downlink
                                    loses light to turbulence */
    double scintillation_index;  /* sigma_I^2 of a log-normal fading of unit
                                    mean (0: none) */
    double rx_efficiency;        /* receiver optics, aperture to detectors */
    double background_night;     /* extra clicks per pulse, all detectors, Sun
                                    below -18 degrees */
    double background_day;       /* the same, Sun above 0 degrees */
} kagi_fso;

/* A satellite QKD link: the channel and, in qkd, the source (mu, p_mu,
 * p_x, clock_hz), the detectors (det_eff: detection efficiency alone;
 * dark_count: their dark clicks per pulse, background excluded;
 * misalignment, afterpulse, dead_time_s) and post-processing (f_ec,
 * eps_sec, eps_cor). qkd's distance_km, fiber_loss_db_km and extra_loss_db
 * are not used (the channel replaces them). */
typedef struct kagi_fso_link {
    kagi_fso fso;
    kagi_link qkd;
} kagi_fso_link;

/* ---- Presets ---------------------------------------------------------- */

/* NULL-terminated list of preset names ("micius", ...). */
const char *const *kagi_fso_preset_names(void);
/* One line saying what a preset is; NULL for an unknown name. */
const char *kagi_fso_preset_summary(const char *name) KAGI_NONNULL(1);
/* Fill *out with a preset (docs/freespace.md gives each value's source).
 * KAGI_ERR_ARG names the known presets when name is not one. */
int kagi_fso_preset(const char *name, kagi_fso_link *out) KAGI_NODISCARD KAGI_NONNULL(1, 2);

/* KAGI_ERR_ARG naming the field for values no device has (apertures,
 * wavelength or divergence not positive and finite, efficiencies and
 * transmittances outside (0, 1], negative jitter, r0, field of view,
 * scintillation or background, background of 1 or more), then
 * kagi_link_check of qkd with two decoys, p_x < 1 (a finite key needs a
 * test basis). */
int kagi_fso_check(const kagi_fso_link *l) KAGI_NODISCARD KAGI_NONNULL(1);

/* ---- The channel --------------------------------------------------------- */

/* Relative air mass at elevation el_deg (Kasten & Young 1989):
 * 1 / (sin el + 0.50572 (el + 6.07995)^-1.6364); 1 at zenith, about 38 at
 * the horizon; el below -6 degrees is taken as -6. */
double kagi_air_mass(double el_deg);
/* 1/e^2 radius (m) at range_m of a Gaussian beam of waist w0_m and far-field
 * 1/e^2 half-angle theta_rad: sqrt(w0^2 + (theta L)^2). */
double kagi_beam_radius(double w0_m, double theta_rad, double range_m);
/* Fraction of a Gaussian beam of 1/e^2 radius w_m that a centred circular
 * aperture of radius a_m collects: 1 - exp(-2 a^2 / w^2). */
double kagi_aperture_fraction(double a_m, double w_m);
/* Far-field 1/e^2 half-angle of the link's beam: divergence / sqrt(2 ln 2)
 * (FWHM to 1/e^2), or lambda / (pi w0) when divergence is 0. */
double kagi_fso_theta(const kagi_fso *f) KAGI_NONNULL(1);
/* Sky background in photons per gate reaching the detectors: radiance
 * (W m^-2 sr^-1 nm^-1) times the solid angle of a full-angle field of view
 * (pi fov^2 / 4), the aperture area, the filter width (nm), the gate (s)
 * and the efficiency, over the photon energy h c / lambda. */
double kagi_sky_background(double radiance, double fov_rad, double aperture_m, double filter_nm,
                           double gate_s, double wavelength_m, double efficiency);

/* Each factor of the channel at one geometry. */
typedef struct kagi_fso_budget {
    double beam_radius_m;  /* 1/e^2 radius at the receiver (long-term, with
                              uplink turbulence) */
    double air_mass;
    double t_diffraction;  /* collected fraction, beam centred */
    double t_pointing;     /* mean factor from the jitter */
    double t_atmosphere;   /* zenith_transmittance ^ air_mass */
    double t_fov;          /* focal spot within the field of view (1 when
                              the field of view is unlimited) */
    double t_receiver;     /* rx_efficiency */
    double transmittance;  /* their product */
    double loss_db;        /* -10 log10(transmittance) */
} kagi_fso_budget;

/* The channel at slant range range_km (> 0) and elevation el_deg (in
 * (0, 90]). KAGI_ERR_ARG for a range or elevation outside, or bad fso
 * fields. */
int kagi_fso_budget_at(const kagi_fso *f, double range_km, double el_deg, kagi_fso_budget *out)
    KAGI_NODISCARD KAGI_NONNULL(1, 4);

/* Background clicks per pulse (all detectors) at the Sun's elevation. */
double kagi_fso_background(const kagi_fso *f, double sun_el_deg) KAGI_NONNULL(1);

/* ---- Counts and key ------------------------------------------------------ */

/* Expected counts of a block, summed over samples. Index k = intensity
 * class (mu[k]); X is the key basis, Z the test basis (both parties chose
 * it: probabilities p_x^2 and (1 - p_x)^2). */
typedef struct kagi_fso_counts {
    double pulses;      /* sent */
    double seconds;     /* of link time */
    double n_x[3], n_z[3];  /* detections with both in X, both in Z */
    double m_x[3], m_z[3];  /* errors among them */
    double detections;  /* every click, bases matched or not */
} kagi_fso_counts;

/* One sample of a pass. */
typedef struct kagi_fso_point {
    kagi_utc t;
    double el_deg, az_deg, range_km, sun_el_deg;
    double loss_db;      /* channel, as kagi_fso_budget.loss_db */
    double background;   /* clicks per pulse from the sky */
    int night;           /* Sun below -18 degrees */
    double weight_s;     /* seconds of link this sample stands for */
    double clicks_per_s; /* detections per second, all classes, any basis */
    double qber;         /* of the signal class, key basis */
} kagi_fso_point;

/* Add to *c the expected counts of weight_s seconds at one geometry (the
 * range, elevation and Sun's elevation of look), and describe the sample in
 * *pt (may be NULL; it gets look's time). Clicks follow the detection model
 * of kagi/keyrate.h (the same code) at eta = T * det_eff, averaged over the
 * scintillation, with Y0 = 1 - (1 - dark_count)(1 - background), and a
 * non-paralysable dead time scaling every class alike. KAGI_ERR_ARG for a
 * negative weight or a geometry kagi_fso_budget_at refuses; l is not
 * checked (kagi_fso_check). */
int kagi_fso_accumulate(const kagi_fso_link *l, const kagi_look *look, double weight_s,
                        kagi_fso_counts *c, kagi_fso_point *pt) KAGI_NODISCARD
    KAGI_NONNULL(1, 2, 4);

/* The key of one block of counts. */
typedef struct kagi_fso_key {
    double detections;      /* all clicks */
    double sifted_bits;     /* bases matched: n_X + n_Z */
    double n_x;             /* key-basis detections */
    double qber_x;          /* E_X = m_X / n_X (0 without detections) */
    double qber;            /* (m_X + m_Z) / (n_X + n_Z) */
    kagi_decoy_bound bound; /* Lim et al. 2014 from the counts */
    double lambda_ec;       /* f n_X h(E_X) */
    double key_bits;        /* max(0, floor(length_before_ec - lambda_ec)) */
    double asymptotic_bits; /* the same counts without the statistical
                               terms: the bound of the counts scaled by
                               10^12, divided back (>= 0) */
} kagi_fso_key;

/* Lim et al.'s bound of the counts (eps_sec, eps_cor, f_ec of l->qkd).
 * A block without detections gives 0 bits. KAGI_ERR_ARG as
 * kagi_decoy_bound_lim. */
int kagi_fso_key_of(const kagi_fso_link *l, const kagi_fso_counts *c, kagi_fso_key *out)
    KAGI_NODISCARD KAGI_NONNULL(1, 2, 3);

/* A pass modelled whole. */
typedef struct kagi_fso_pass {
    kagi_pass pass;
    kagi_fso_point *points; /* every sample (owned; kagi_fso_pass_clear) */
    size_t npoints;
    kagi_fso_counts counts;
    kagi_fso_key key;       /* the pass as a block of its own */
    int night;              /* every sample at night */
    double min_loss_db, max_loss_db;
} kagi_fso_pass;

/* Sample p with kagi_pass_sample at step_s, accumulate the samples with the
 * trapezoid weights (the first and last carry half their interval) and
 * compute the pass's key. Checks l (kagi_fso_check). Fails as
 * kagi_pass_sample (step_s in [0.001, 86400]). On failure *out is empty. */
int kagi_fso_pass_run(kagi_sat *s, const kagi_station *st, const kagi_pass *p,
                      const kagi_fso_link *l, double step_s, kagi_fso_pass *out) KAGI_NODISCARD
    KAGI_NONNULL(1, 2, 3, 4, 6);
/* Free the samples; accepts an empty or zeroed pass. */
void kagi_fso_pass_clear(kagi_fso_pass *p);

/* Sum of counts: *acc += *c. */
void kagi_fso_counts_add(kagi_fso_counts *acc, const kagi_fso_counts *c) KAGI_NONNULL(1, 2);

#endif
