/* kagi/estimate.h: parameter estimation and the finite-key length.
 *
 * Alice and Bob reveal k randomly chosen bits of a sifted block to measure
 * the QBER and keep the other bits; kagi_finite_key_bb84 then says how
 * many secret bits privacy amplification may extract from those. See
 * docs/security.md for the formula, its source and its assumptions. */
#ifndef KAGI_ESTIMATE_H
#define KAGI_ESTIMATE_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"

/* k distinct positions in [0, n), sorted ascending, uniform among all
 * k-subsets, derived from a public seed. Both parties must derive the same
 * positions, so the algorithm is part of the protocol: Robert Floyd's
 * sampler on kagi_rng seeded with seed, for j = n-k .. n-1 draw
 * t = kagi_rng_below(j + 1) and add t, or j if t is already in. pos holds k
 * entries (may be NULL when k is 0). KAGI_ERR_ARG if k > n. */
int kagi_sample_positions(uint64_t seed, size_t n, size_t k, size_t *pos) KAGI_NODISCARD;

/* Split in at the k strictly increasing positions pos (all < in->n): the
 * sampled bits in order go to *sample (k bits), all others in order to
 * *rest (n - k bits); both freed with kagi_bits_free. KAGI_ERR_ARG, with
 * both set to NULL, for unsorted, repeated or out-of-range positions. */
int kagi_split_sample(const kagi_bits *in, const size_t *pos, size_t k, kagi_bits **sample,
                      kagi_bits **rest) KAGI_NODISCARD KAGI_NONNULL(1, 4, 5);

/* Binary entropy -p log2 p - (1-p) log2 (1-p); 0 at 0 and 1, NaN outside
 * [0, 1]. */
double kagi_h2(double p);

/* Finite-key length of BB84 (Tomamichel, Lim, Gisin, Renner 2012):
 *     mu  = sqrt( (n+k)/(n k) * (k+1)/k * ln(4/eps_sec) )
 *     ell = floor( n (1 - h(Q + mu)) - leak_ec - log2(2 / (eps_sec^2 eps_cor)) )
 * with Q = errors / k measured on the sample. length is 0 when the
 * expression is <= 0 or Q + mu >= 1/2. leak_ec counts every bit published
 * about the n key bits beyond the log2(2/eps_cor) the verification hash is
 * allowed (docs/security.md). */
typedef struct kagi_fk_in {
    size_t n;        /* bits kept for the key (the sample removed) */
    size_t k;        /* bits sampled to estimate the error rate */
    size_t errors;   /* disagreements found among the k sampled bits */
    double leak_ec;  /* bits revealed by error correction */
    double eps_sec;  /* secrecy, in (0, 1) */
    double eps_cor;  /* correctness, in (0, 1) */
} kagi_fk_in;

typedef struct kagi_fk_out {
    double qber;        /* errors / k */
    double mu;          /* statistical margin on the error rate */
    double qber_upper;  /* qber + mu: bound on the phase error rate of the
                           n key bits, except with probability ~eps_sec */
    double length_real; /* the expression before flooring (may be < 0);
                           h taken as 1 when qber_upper >= 1/2 */
    size_t length;      /* secret key length, 0 if none */
} kagi_fk_out;

/* Fill out from in. KAGI_ERR_ARG for n or k zero, errors > k, an eps
 * outside (0, 1) or a negative or non-finite leak_ec. A zero length is a
 * result, not an error. */
int kagi_finite_key_bb84(const kagi_fk_in *in, kagi_fk_out *out) KAGI_NODISCARD KAGI_NONNULL(1, 2);

/* Sample size for a sifted block of n bits: ceil(7 n^(2/3)), at least
 * min(1000, n/2) and at most n/2. The k revealed bits cost k key bits,
 * while mu ~ sqrt(ln(4/eps_sec)/k) costs about n h'(Q) mu; balancing the
 * two gives k ~ n^(2/3). With the factor 7 the key is within 0.6% of the
 * best choice of k for n = 1e5..1e8 and QBER 1-5% (eps_sec = 1e-10; within
 * 7% at n = 1e4, where little key is left anyway); docs/security.md. */
size_t kagi_sample_size_default(size_t n);

#endif
