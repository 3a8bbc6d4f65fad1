/* kagi/distill.h: the whole key-distillation pipeline on a sifted pair.
 *
 * Stages, in order, over an authenticated kagi_channel:
 *   1. parameter estimation: Alice picks a public random sample and
 *      discloses her bits there; Bob counts the errors; both drop the
 *      sample. No key can come out when even a perfect reconciliation
 *      would leave nothing (kagi_finite_key_bb84): both stop, KAGI_ERR_NOKEY.
 *      In decoy-state mode (below) the estimate comes from the test basis
 *      instead and this stage only checks that key can come out.
 *   2. reconciliation, Bob correcting: by Cascade (kagi/cascade.h), or by
 *      LDPC syndromes with blind reveals (kagi/ldpc.h, docs/ldpc.md); an
 *      LDPC frame still undecoded after its reveals fails the whole run
 *      with KAGI_ERR_RECONCILE (after the exchange is authenticated);
 *   3. verification: Alice sends a random hash key and her tag; a mismatch
 *      aborts both with KAGI_ERR_VERIFY;
 *   4. final length from the finite-key bound with the leak actually
 *      disclosed (Cascade parities, or LDPC syndrome bits minus punctured
 *      bits plus revealed bits; plus the verification tag);
 *   5. privacy amplification by Toeplitz hashing with a fresh public seed.
 * The parties write nothing on failure; on success each holds final_bits
 * identical bits. */
#ifndef KAGI_DISTILL_H
#define KAGI_DISTILL_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"
#include "kagi/cascade.h"
#include "kagi/channel.h"
#include "kagi/ldpc.h"

#define KAGI_EPS_SEC_DEFAULT 1e-10
#define KAGI_EPS_COR_DEFAULT 1e-15

/* Reconciliation methods. */
enum { KAGI_RECONCILE_CASCADE = 0, KAGI_RECONCILE_LDPC = 1 };

typedef struct kagi_distill_params {
    double eps_sec;       /* secrecy; 0: KAGI_EPS_SEC_DEFAULT */
    double eps_cor;       /* correctness; 0: KAGI_EPS_COR_DEFAULT */
    size_t sample_bits;   /* 0: kagi_sample_size_default(n) */
    int method;           /* KAGI_RECONCILE_*; both parties must agree */
    kagi_cascade_params cascade; /* qber is set from the estimate */
    /* LDPC: qber is set by the pipeline (the estimate, clamped to
     * [0.001, 0.11]). f_start (0: kagi_ldpc_f_auto of that), f_step, max_rounds, seed (of
     * the public punctured positions) and z_max must be the same on both
     * sides (Bob checks Alice's setup); iter_first, iter_round, threads,
     * impl and alpha16 are Bob's alone. */
    kagi_ldpc_params ldpc;
    /* Decoy-state mode, for a key sifted from raw detections (kagi/sift.h):
     * no sample is drawn (sample_bits must be 0); the secrecy comes from
     * the test basis through kagi_decoy_bound_lim, and the final length is
     * floor(decoy_length - leak - verification tag bits). qber_hint, the
     * test-basis error rate, sizes Cascade's blocks and the early no-key
     * check. Both parties must pass the same values. */
    int decoy;
    double decoy_length;  /* length_before_ec of kagi_decoy_bound */
    double qber_hint;     /* in [0, 0.5) */
    /* Threads for this party's privacy amplification of the block
     * (kagi_toeplitz_mt); 0: the CPUs online (at most 64), but half of
     * them per party in kagi_distill_local, whose two parties share the
     * machine. This party's alone. */
    unsigned amplify_threads;
} kagi_distill_params;

typedef struct kagi_distill_report {
    size_t sifted_bits, sample_bits, sample_errors;
    double qber, qber_upper;  /* sample estimate and its bound */
    size_t reconciled_bits;   /* sifted minus sample */
    int method;               /* KAGI_RECONCILE_* */
    kagi_cascade_stats cascade; /* method CASCADE */
    kagi_ldpc_stats ldpc;     /* method LDPC: leak_bits counted by this party from the
                                 bits it sent or received (and checked equal to the other's);
                                 iterations, iter_max and corrected are Bob's */
    size_t leak_bits;         /* reconciliation leak used for the final length */
    double efficiency;        /* leak / (reconciled * h(qber)), qber of the corrected errors */
    int verify_ok;
    unsigned verify_tag_bits;
    double eps_cor;           /* achieved by the tag */
    size_t auth_bits_consumed;/* secret bits spent on message tags, both ways */
    size_t messages;          /* sent by this party */
    size_t final_bits;
    double seconds[4];        /* estimate, reconcile, verify, amplify */
    double cpu_seconds[4];    /* CPU time of this process (all its threads) in each stage;
                                 kagi_distill_local: both parties' */
} kagi_distill_report;

/* One party each; both need the same params. *final is set on success. */
int kagi_distill_alice(kagi_channel *ch, const kagi_bits *sifted, const kagi_distill_params *p,
                       kagi_bits **final, kagi_distill_report *r) KAGI_NODISCARD;
int kagi_distill_bob(kagi_channel *ch, const kagi_bits *sifted, const kagi_distill_params *p,
                     kagi_bits **final, kagi_distill_report *r) KAGI_NODISCARD;

/* Both parties in one process (two threads, in-memory queue), with a fresh
 * random authentication key. On success fa and fb hold the final keys. ra
 * is Alice's report, rb Bob's (either may be NULL). */
int kagi_distill_local(const kagi_bits *alice, const kagi_bits *bob, const kagi_distill_params *p,
                       kagi_bits **fa, kagi_bits **fb, kagi_distill_report *ra,
                       kagi_distill_report *rb) KAGI_NODISCARD;

/* Secret bits one direction of a session may spend on tags (128 each) for
 * a sifted key of n bits: what kagi_distill_local draws per direction. */
size_t kagi_distill_auth_budget(size_t n);

#endif
