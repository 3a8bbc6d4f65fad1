/* Internals shared by the src/phys modules (not installed). */
#ifndef KAGI_PHYS_INTERNAL_H
#define KAGI_PHYS_INTERNAL_H

#include "kagi/estimate.h"
#include "kagi/keyrate.h"

/* The detection model of kagi/keyrate.h at total transmittance eta
 * (channel, receiver optics and detector efficiency together), for the
 * three intensity classes of l (l->dark_count is Y0 for all detectors,
 * after-pulses by l->afterpulse_model, the gate model averaging the clicks
 * over the classes with l->p_mu): gain[k] is R_k, the click probability
 * of a pulse of intensity mu[k], err[k] the probability that it clicks
 * with the wrong bit. This is the model kagi_keyrate's finite key uses;
 * the free-space pass model (src/phys/freespace.c) calls it sample by
 * sample. */
void kagi__detect(const kagi_link *l, double eta, double gain[3], double err[3]);

/* Binary entropy (kagi_h2) clamped for bounds: 0 at or below 0, 1 from 1/2
 * up (an error-rate bound at 1/2 or beyond leaves no secrecy). The key
 * formulas of keyrate.c and freespace.c both take it so. */
static inline double kagi__h(double p)
{
    if (!(p > 0)) return 0.0;
    if (p >= 0.5) return 1.0;
    return kagi_h2(p);
}

#endif
