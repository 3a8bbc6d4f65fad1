/* kagi/keyrate.h: models of a fibre QKD link and its secret key rate.
 *
 * A link is a weak coherent source (phase-randomised, up to three
 * intensities), a fibre, and Bob's detection (one efficiency for his whole
 * transmittance and detectors, a dark-count yield Y0 per pulse, after-pulses
 * and a dead time). The formulas, their sources and the tests that pin them
 * to published curves are in docs/keyrate.md. Rates are per pulse sent and
 * never negative or NaN: where no key can be made the rate is 0. */
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
    KAGI_DECOYS_TWO,          /* signal, one weak decoy and vacuum */
} kagi_decoys;

/* Every field in SI-like units named in the field; kagi_link_defaults fills
 * the values of docs/keyrate.md (Lim et al. 2014's example system). */
typedef struct kagi_link {
    /* source */
    double mu[3];         /* intensities: signal mu1 > decoy mu2 > mu3 >= 0 */
    double p_mu[3];       /* their probabilities, summing to 1 */
    double p_x;           /* probability of the X (key) basis, both sides */
    double clock_hz;      /* pulse rate */
    /* channel */
    double distance_km;
    double fiber_loss_db_km;
    double extra_loss_db; /* insertion losses before Bob */
    double misalignment;  /* e_d: probability a detected photon flips */
    /* detection (Bob) */
    double det_eff;       /* Bob's transmittance times detector efficiency */
    double dark_count;    /* Y0: click probability per pulse with no photon,
                             all detectors together */
    double afterpulse;    /* probability a click brings an extra random click */
    double dead_time_s;   /* detector dead time after each click */
    /* post-processing */
    double f_ec;          /* reconciliation efficiency (leak / n h(Q)) */
    double eps_sec, eps_cor;
} kagi_link;

void kagi_link_defaults(kagi_link *l);

/* KAGI_ERR_ARG naming the field ("mu[1] (decoy intensity) 0.6 is not below
 * the signal 0.5") for values no device has: negative loss or distance,
 * efficiencies or probabilities outside [0, 1], decoy above signal, ... */
int kagi_link_check(const kagi_link *l, kagi_decoys decoys) KAGI_NODISCARD;

/* Transmittance of channel and Bob together: 10^(-(a L + extra)/10) det_eff. */
double kagi_link_eta(const kagi_link *l);

/* What a model predicts for one set of parameters. */
typedef struct kagi_rate {
    double per_pulse;      /* secret bits per pulse sent, >= 0 */
    double bps;            /* per second, at clock_hz with the dead-time cap */
    double qber;           /* of the signal intensity in the key basis */
    double gain;           /* click probability per signal pulse */
    double y1_lower, e1_upper; /* single-photon yield and (phase) error bounds */
    double block_pulses;   /* finite key: pulses sent to fill the block; else 0 */
    double plob_per_pulse; /* -log2(1 - eta_channel) with eta of fibre, extra
                              loss and det_eff */
} kagi_rate;

/* Asymptotic rate (n_block 0) or finite-key rate for a block of n_block
 * key-basis detections (Lim, Curty, Walenta, Xu, Zbinden 2014). Finite keys
 * need decoys == KAGI_DECOYS_TWO. KAGI_ERR_ARG for bad parameters. */
int kagi_keyrate(kagi_protocol proto, kagi_decoys decoys, const kagi_link *l, double n_block,
                 kagi_rate *out) KAGI_NODISCARD KAGI_NONNULL(3, 5);

/* Choose mu[0..1], p_mu[0..2] and p_x (and for TF-QKD the sending
 * probability and intensity) to maximise the rate at l->distance_km; l is
 * updated in place with the best values, out holds their rate. */
int kagi_keyrate_optimize(kagi_protocol proto, kagi_decoys decoys, kagi_link *l, double n_block,
                          kagi_rate *out) KAGI_NODISCARD KAGI_NONNULL(3, 5);

/* PLOB bound, secret bits per channel use, for transmittance eta. */
double kagi_plob(double eta);

/* The finite-key length of Lim et al. 2014 from observed counts: the one
 * formula that kagi_keyrate (with expected counts) and the distillation of
 * raw records (with measured counts) share. Index k = intensity class. */
typedef struct kagi_decoy_counts {
    double mu[3], p_mu[3];
    double n_x[3];      /* key-basis detections per class */
    double n_z[3];      /* test-basis detections per class */
    double m_z[3];      /* errors among them */
} kagi_decoy_counts;

typedef struct kagi_decoy_bound {
    double s_x0, s_x1;  /* lower bounds: vacuum and single-photon key bits */
    double s_z1, v_z1;  /* single-photon test bits and errors (upper) */
    double phi_x;       /* phase error rate bound of the single-photon bits */
    double length_before_ec; /* s_x0 + s_x1 (1 - h(phi_x)) - 6 log2(21/eps_sec)
                                - log2(2/eps_cor); subtract lambda_EC */
} kagi_decoy_bound;

int kagi_decoy_bound_lim(const kagi_decoy_counts *c, double eps_sec, double eps_cor,
                         kagi_decoy_bound *out) KAGI_NODISCARD KAGI_NONNULL(1, 4);

#endif
