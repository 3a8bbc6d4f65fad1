/* kagi/keyrate.h: models of a fibre QKD link and its secret key rate.
 *
 * A link is a weak coherent source (phase-randomised, up to three
 * intensities), a fibre, and Bob's detection (one efficiency for his whole
 * transmittance and detectors, a dark-count yield Y0 per pulse, after-pulses
 * and a dead time). The formulas, their sources and the tests that pin them
 * to published curves are in docs/keyrate.md. Rates are per pulse sent and
 * never negative or NaN: where no key can be made the rate is 0.
 *
 * Detection model (Lim et al. 2014, Sec. IV, with Y0 for all detectors
 * together): a pulse of intensity k clicks with probability
 *     D_k = 1 - (1 - Y0) e^{-eta k},      R_k = D_k (1 + afterpulse)
 * and gives an error with probability
 *     Y0/2 + e_d (1 - e^{-eta k}) + afterpulse D_k / 2,
 * eta = kagi_link_eta(). An after-pulse adds a click with a random bit. */
#ifndef KAGI_KEYRATE_H
#define KAGI_KEYRATE_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"

typedef enum kagi_protocol {
    KAGI_PROTO_BB84_DECOY = 0, /* efficient BB84 with decoy states */
    KAGI_PROTO_TF_QKD,         /* twin-field, sending-or-not-sending */
} kagi_protocol;

typedef enum kagi_decoys {
    KAGI_DECOYS_INFINITE = 0, /* asymptotic, Y1 and e1 known exactly (GLLP) */
    KAGI_DECOYS_TWO,          /* signal mu[0], decoy mu[1] and a (weak)
                                 vacuum mu[2] */
} kagi_decoys;

/* Every field in SI-like units named in the field; kagi_link_defaults fills
 * the values of docs/keyrate.md (Lim et al. 2014's example system). */
/* How after-pulses enter the rate (docs/keyrate.md). */
typedef enum kagi_afterpulse_model {
    KAGI_AFTERPULSE_GATE = 0, /* a later gate, any class: what a detector does
                                 and kagi link simulate draws */
    KAGI_AFTERPULSE_LIM,      /* counted with the pulse that caused it, as in
                                 Lim et al. 2014 (to reproduce their figures) */
} kagi_afterpulse_model;

/* The names files and command lines use: "bb84-decoy", "tf-qkd"; "gate",
 * "lim". Parsing fails with KAGI_ERR_ARG, the detail naming the choices. */
int kagi_protocol_parse(const char *s, kagi_protocol *out) KAGI_NODISCARD KAGI_NONNULL(1, 2);
const char *kagi_protocol_name(kagi_protocol p);
int kagi_afterpulse_model_parse(const char *s, kagi_afterpulse_model *out) KAGI_NODISCARD KAGI_NONNULL(1, 2);

typedef struct kagi_link {
    /* source */
    double mu[3];         /* intensities: signal mu1 > decoy mu2 > mu3 >= 0,
                             with mu1 > mu2 + mu3 (photons per pulse) */
    double p_mu[3];       /* their probabilities, summing to 1 */
    double p_x;           /* probability of the X (key) basis, both sides;
                             for TF-QKD of the key (Z) windows */
    double send_prob;     /* TF-QKD only: probability epsilon of sending in
                             a key window (sending-or-not-sending) */
    double clock_hz;      /* pulse rate */
    /* channel */
    double distance_km;   /* Alice-Bob; for TF-QKD the total, Charlie in
                             the middle */
    double fiber_loss_db_km;
    double extra_loss_db; /* insertion losses before Bob (TF-QKD: before
                             Charlie, on each arm) */
    double misalignment;  /* e_d: probability a detected photon flips */
    /* detection (Bob) */
    double det_eff;       /* Bob's transmittance times detector efficiency */
    double dark_count;    /* Y0: click probability per pulse with no photon,
                             all detectors together */
    double afterpulse;    /* probability a click brings an extra random click */
    kagi_afterpulse_model afterpulse_model;
    double dead_time_s;   /* detector dead time after each click */
    /* post-processing */
    double f_ec;          /* reconciliation efficiency (leak / n h(Q)) */
    double eps_sec, eps_cor;
} kagi_link;

void kagi_link_defaults(kagi_link *l) KAGI_NONNULL(1);

/* KAGI_ERR_ARG naming the field ("mu[1] (decoy intensity) 0.6 is not below
 * the signal 0.5") for values no device has: negative loss or distance,
 * efficiencies or probabilities outside [0, 1], decoy above signal, ...
 * The decoy intensities and class probabilities are checked only for
 * KAGI_DECOYS_TWO (they are unused otherwise). */
int kagi_link_check(const kagi_link *l, kagi_decoys decoys) KAGI_NODISCARD KAGI_NONNULL(1);

/* Transmittance of channel and Bob together: 10^(-(a L + extra)/10) det_eff. */
double kagi_link_eta(const kagi_link *l) KAGI_NONNULL(1);

/* What a model predicts for one set of parameters. */
typedef struct kagi_rate {
    double per_pulse;      /* secret bits per pulse sent, >= 0 */
    double bps;            /* per second, at clock_hz with the dead-time cap */
    double qber;           /* of the signal intensity in the key basis
                              (TF-QKD: of the key windows, E_Z) */
    double gain;           /* click probability per signal pulse (TF-QKD:
                              effective events per key window, S_Z) */
    double y1_lower, e1_upper; /* single-photon yield and (phase) error bounds;
                              finite keys: s_X1 / (N p_x^2 tau_1) and phi_X */
    double block_pulses;   /* finite key: pulses sent to fill the block
                              (+infinity if nothing is ever detected); else 0 */
    double plob_per_pulse; /* -log2(1 - eta_channel) with eta of fibre, extra
                              loss and det_eff (kagi_link_eta) */
} kagi_rate;

/* Asymptotic rate (n_block 0) or finite-key rate for a block of n_block
 * key-basis detections (Lim, Curty, Walenta, Xu, Zbinden 2014). Finite keys
 * need bb84-decoy with decoys == KAGI_DECOYS_TWO and p_x < 1; TF-QKD is
 * asymptotic with infinite decoys only. KAGI_ERR_ARG for bad parameters. */
int kagi_keyrate(kagi_protocol proto, kagi_decoys decoys, const kagi_link *l, double n_block,
                 kagi_rate *out) KAGI_NODISCARD KAGI_NONNULL(3, 5);

/* Choose the free parameters to maximise the rate at l->distance_km,
 * starting from l's values and a few fixed points (deterministic, bounded
 * Nelder-Mead); l is updated in place with the best values, out holds
 * their rate. Which parameters are free:
 *   finite key (bb84, two decoys): mu[0], mu[1], p_mu[0..2] and p_x, with
 *     mu[2] kept (a vacuum cannot be made perfectly; Lim et al. fix it);
 *   asymptotic bb84: mu[0] only (the rate grows as p_x -> 1 and as the
 *     decoys -> 0 and the decoy share -> 0, so those have no optimum and
 *     keep the given values);
 *   TF-QKD: mu[0] and send_prob.
 * Where no setting gives key, l is left as it was and out holds its (zero)
 * rate. About 10^4 rate evaluations: well under a millisecond asymptotic,
 * a few milliseconds for a finite key. */
int kagi_keyrate_optimize(kagi_protocol proto, kagi_decoys decoys, kagi_link *l, double n_block,
                          kagi_rate *out) KAGI_NODISCARD KAGI_NONNULL(3, 5);

/* PLOB bound, secret bits per channel use, for transmittance eta:
 * -log2(1 - eta); 0 for eta <= 0, +infinity for eta >= 1. */
double kagi_plob(double eta);

/* The finite-key length of Lim et al. 2014 from observed counts: the one
 * formula that kagi_keyrate (with expected counts) and the distillation of
 * raw records (with measured counts) share. Index k = intensity class
 * (mu[0] > mu[1] + mu[2], mu[1] > mu[2] >= 0, every p_mu[k] > 0).
 *
 * With n_X = sum n_x[k], n_Z = sum n_z[k], m_Z = sum m_z[k], L = ln(21/eps_sec),
 * tau_n = sum_k p_k e^{-mu_k} mu_k^n / n!:
 *   n^{+-}_{X,k} = e^{mu_k}/p_k (n_x[k] +- sqrt(n_X L / 2))  (Z alike with n_Z)
 *   m^{+-}_{Z,k} = e^{mu_k}/p_k (m_z[k] +- sqrt(m_Z L / 2))
 *   s_0 >= tau_0 (mu2 n^-_3 - mu3 n^+_2) / (mu2 - mu3)                  Eq. (2)
 *   s_1 >= tau_1 mu1 [n^-_2 - n^+_3 - (mu2^2 - mu3^2)/mu1^2 (n^+_1 - s_0/tau_0)]
 *          / (mu1 (mu2 - mu3) - mu2^2 + mu3^2)                            Eq. (3)
 *   v_Z1 <= tau_1 (m^+_{Z,2} - m^-_{Z,3}) / (mu2 - mu3)                  Eq. (4)
 *   phi_X <= v_Z1/s_Z1 + gamma(eps_sec, v_Z1/s_Z1, s_Z1, s_X1)           Eq. (5)
 *   gamma(a,b,c,d) = sqrt((c+d)(1-b)b/(c d ln 2) log2((c+d)/(c d (1-b) b) 21^2/a^2))
 *   length_before_ec = s_X0 + s_X1 (1 - h(phi_X)) - 6 log2(21/eps_sec)
 *                      - log2(2/eps_cor)                                 Eq. (1)
 * (mu1..3 = mu[0..2]). The key length is floor(length_before_ec - lambda_EC)
 * when positive. Guards, which only make the bound safer: the lower bounds
 * s_0, s_1 are taken as max(., 0) (s_0 enters Eq. (3) so clamped); v_Z1 as
 * max(., 0); phi_X = 1/2 when s_Z1 or s_X1 is 0 or the bound reaches 1/2,
 * and h(phi_X) is then 1. KAGI_ERR_ARG for negative or non-finite counts,
 * m_z[k] > n_z[k], intensities or probabilities out of range, or an eps
 * outside (0, 1). */
typedef struct kagi_decoy_counts {
    double mu[3], p_mu[3];
    double n_x[3];      /* key-basis detections per class */
    double n_z[3];      /* test-basis detections per class */
    double m_z[3];      /* errors among them */
} kagi_decoy_counts;

typedef struct kagi_decoy_bound {
    double s_x0, s_x1;  /* lower bounds: vacuum and single-photon key bits */
    double s_z1, v_z1;  /* single-photon test bits (lower) and their errors
                           (upper) */
    double phi_x;       /* phase error rate bound of the single-photon bits */
    double length_before_ec; /* s_x0 + s_x1 (1 - h(phi_x)) - 6 log2(21/eps_sec)
                                - log2(2/eps_cor); subtract lambda_EC */
} kagi_decoy_bound;

int kagi_decoy_bound_lim(const kagi_decoy_counts *c, double eps_sec, double eps_cor,
                         kagi_decoy_bound *out) KAGI_NODISCARD KAGI_NONNULL(1, 4);

#endif
