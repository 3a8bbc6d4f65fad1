/* kagi/ldpc.h: one-way reconciliation with rate-adaptive quasi-cyclic LDPC
 * codes (syndrome coding, puncturing and shortening, blind fallback).
 *
 * Alice sends the syndrome s = H x of her frame x; Bob, holding y = x + e,
 * decodes the error pattern e from H e = s + H y with a layered normalised
 * min-sum decoder (int8 messages and posteriors; AVX2 or scalar, chosen
 * at run time, bit for bit the same). A frame of n bits holds n_key key bits, p punctured
 * bits (Alice's private random bits, unknown to Bob) and s shortened bits
 * (zero, known to both): n_key + p + s = n. When decoding fails Alice
 * reveals more bits (punctured first), each counted in the leak.
 * docs/ldpc.md gives the construction, the formulas and measured figures. */
#ifndef KAGI_LDPC_H
#define KAGI_LDPC_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"

/* Base matrices have 128 columns; the lifting factor z (a multiple of 64)
 * sets the frame length n = 128 z: z = 256 gives 32,768 bits, z = 8192
 * gives 1,048,576. */
#define KAGI_LDPC_NB 128u

typedef struct kagi_ldpc_code kagi_ldpc_code;

/* Build the code of mother rate rate_pct/100 (50, 60, 70, 75, 80, 85 or 90) with
 * lifting factor z (64..65536, a multiple of 64) from seed. The same
 * arguments give the same code on every machine (docs/ldpc.md; its
 * checksum is in the info). *out is freed with kagi_ldpc_code_free. */
int kagi_ldpc_code_new(kagi_ldpc_code **out, unsigned rate_pct, uint32_t z, uint64_t seed)
    KAGI_NODISCARD KAGI_NONNULL(1);
void kagi_ldpc_code_free(kagi_ldpc_code *c);

typedef struct kagi_ldpc_code_info {
    size_t n, m;          /* frame bits, parity checks (syndrome bits) */
    uint32_t z, nb, mb;   /* lifting factor, base columns, base rows */
    size_t circulants;    /* nonzero entries of the base matrix */
    size_t ones;          /* ones in H (circulants * z) */
    unsigned rate_pct;
    uint64_t seed;
    uint64_t checksum;    /* FNV-1a of (nb, mb, z, every circulant) */
    size_t cycles4;       /* circulants whose shift had to close 4-cycles */
    size_t cycles6;       /* ... or 6-cycles (no choice avoided them) */
} kagi_ldpc_code_info;
void kagi_ldpc_code_get_info(const kagi_ldpc_code *c, kagi_ldpc_code_info *out) KAGI_NONNULL(1, 2);

/* Circulant e (0 <= e < circulants, row-major): block row, block column
 * and shift. Check row*z + r holds bit col*z + (r + shift) % z. */
int kagi_ldpc_code_circulant(const kagi_ldpc_code *c, size_t e, uint32_t *row, uint32_t *col,
                             uint32_t *shift) KAGI_NODISCARD KAGI_NONNULL(1, 3, 4, 5);

/* s = H x: x holds n bits, s receives m bits (n and m are multiples of 64). */
void kagi_ldpc_syndrome(const kagi_ldpc_code *c, const uint64_t *x, uint64_t *s) KAGI_NONNULL(1, 2, 3);

/* ---- decoder ---- */
enum { KAGI_LDPC_IMPL_AUTO = 0, KAGI_LDPC_IMPL_SCALAR = 1, KAGI_LDPC_IMPL_AVX2 = 2 };

typedef struct kagi_ldpc_decoder kagi_ldpc_decoder;
/* A decoder for code c (c must outlive it). impl AUTO picks AVX2 when the
 * CPU has it; asking for AVX2 on a CPU without it fails with KAGI_ERR_ARG.
 * alpha16 picks the check-node rule: 0, the default, is lambda-min
 * (the three least reliable inputs combined exactly, scaled by 15/16);
 * 1-16 is min-sum normalised by alpha16/16 (cheaper, ~0.01-0.02 worse in
 * f and 20-40 % more iterations; docs/ldpc.md "Decoder"). */
int kagi_ldpc_decoder_new(kagi_ldpc_decoder **out, const kagi_ldpc_code *c, int impl,
                          unsigned alpha16) KAGI_NODISCARD KAGI_NONNULL(1, 2);
void kagi_ldpc_decoder_free(kagi_ldpc_decoder *d);
int kagi_ldpc_decoder_impl(const kagi_ldpc_decoder *d) KAGI_NONNULL(1);
/* Start on a new error pattern: llr holds n channel values for e (log
 * P(e=0)/P(e=1), quantised; 0 unknown, 127 known zero and kept so), syn
 * the m syndrome bits H e must reach. Clears the messages. */
void kagi_ldpc_decoder_start(kagi_ldpc_decoder *d, const int8_t *llr, const uint64_t *syn)
    KAGI_NONNULL(1, 2, 3);
/* Declare bit v known to be 0 from now on (a revealed bit); when
 * flip_syndrome, the target syndrome bits of v's checks flip too (Bob
 * learnt his bit was wrong). The messages are kept (warm restart).
 * KAGI_ERR_ARG when v >= n. */
int kagi_ldpc_decoder_fix(kagi_ldpc_decoder *d, size_t v, int flip_syndrome) KAGI_NODISCARD
    KAGI_NONNULL(1);
/* Up to max_iter more iterations, stopping when the hard decision meets
 * the syndrome: then KAGI_OK and the n bits of e in out. Otherwise
 * KAGI_ERR_RECONCILE (out holds the last hard decision). *iters grows by
 * the iterations run. */
int kagi_ldpc_decoder_run(kagi_ldpc_decoder *d, unsigned max_iter, uint64_t *out, unsigned *iters)
    KAGI_NODISCARD KAGI_NONNULL(1, 3, 4);

/* ---- rate adaption ---- */
typedef struct kagi_ldpc_plan kagi_ldpc_plan;
/* Puncture or shorten code c so that the syndrome leak per key bit is
 * f_target * h(qber): p punctured if the code's rate is too low, s
 * shortened if too high (never both). Punctured positions are chosen from
 * seed so each has a check of its own (no other punctured bit): the
 * punctured columns of H then have rank p and the syndrome discloses at
 * most m - p bits about the key, which is what is counted. p is capped
 * where no such position is left (about m/2); the info shows what was
 * reached. c must outlive the plan. */
int kagi_ldpc_plan_new(kagi_ldpc_plan **out, const kagi_ldpc_code *c, double qber, double f_target,
                       uint64_t seed) KAGI_NODISCARD KAGI_NONNULL(1, 2);
void kagi_ldpc_plan_free(kagi_ldpc_plan *p);

typedef struct kagi_ldpc_plan_info {
    size_t n, m, n_key, punctured, shortened;
    size_t leak_syndrome;  /* m - punctured: what the syndrome discloses */
    double qber, f_target;
    double f_plan;         /* leak_syndrome / (n_key h(qber)) */
    int8_t llr;            /* channel LLR of a key bit (quantised) */
} kagi_ldpc_plan_info;
void kagi_ldpc_plan_get_info(const kagi_ldpc_plan *p, kagi_ldpc_plan_info *out) KAGI_NONNULL(1, 2);

/* Mother rate (50, 60, 70, 75, 80, 85 or 90) to adapt for qber at efficiency
 * f, for frames of 2^20 bits: the lowest rate above the target when
 * shortening it takes at most a quarter of the frame and f is at least
 * that code's measured threshold (docs/ldpc.md); else the highest rate
 * below that needs at most 0.4 m punctured bits (so the fallback has bits
 * to reveal); else the one needing the fewest bits punctured or
 * shortened. kagi_ldpc_fit makes the same choice for its frame size, with
 * thresholds 0.0125 higher per halving of the frame below 2^20 bits. */
unsigned kagi_ldpc_rate_for(double qber, double f);

/* The first efficiency to aim at when none is given (f_start 0), for
 * frames of 2^20 bits: the lowest f in 1.10 .. 1.22 (steps of 0.01) at
 * which the rate choice shortens a code and f is at least 0.02 above that
 * code's threshold, or punctures at most 5 % of the frame and f is that
 * fraction higher again, so frames decode at the first attempt (QBER 1 %
 * gives 1.18, 2 % 1.14, 5 % 1.12, 8 % 1.11); else 1.22 (docs/ldpc.md).
 * kagi_ldpc_f_auto_for: the same for a key of nbits cut into frames of at
 * most 128 z_max bits (z_max 0: 8192), with the thresholds of those
 * frames; the pipeline, kagi reconcile and kagi_ldpc_reconcile use it. */
double kagi_ldpc_f_auto(double qber);
double kagi_ldpc_f_auto_for(double qber, size_t nbits, uint32_t z_max);

/* ---- one frame, each side ---- */
typedef struct kagi_ldpc_alice kagi_ldpc_alice;
typedef struct kagi_ldpc_bob kagi_ldpc_bob;

int kagi_ldpc_alice_new(kagi_ldpc_alice **out, const kagi_ldpc_plan *p) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Wipes Alice's frame (key and punctured bits). */
void kagi_ldpc_alice_free(kagi_ldpc_alice *a);
/* Fill a frame with key bits [off, off + nbits) of key (nbits <= n_key;
 * missing key positions are zero and count as shortened), fresh CSPRNG
 * bits at the punctured positions, and write its m-bit syndrome. */
int kagi_ldpc_alice_frame(kagi_ldpc_alice *a, const uint64_t *key, size_t off, size_t nbits,
                          uint64_t *syn) KAGI_NODISCARD KAGI_NONNULL(1, 2, 5);
/* Values of the next count bits of the reveal order (punctured bits, then
 * key bits, as Bob asks): vals gets count bits. Returns how many were
 * revealed (fewer when the frame has nothing left to reveal). */
size_t kagi_ldpc_alice_reveal(kagi_ldpc_alice *a, size_t count, uint64_t *vals) KAGI_NONNULL(1, 3);

/* Bob's side of a frame. impl and alpha16 as for the decoder. */
int kagi_ldpc_bob_new(kagi_ldpc_bob **out, const kagi_ldpc_plan *p, int impl, unsigned alpha16)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);
void kagi_ldpc_bob_free(kagi_ldpc_bob *b);
/* Start on key bits [off, off + nbits) of Bob's key and Alice's syndrome. */
int kagi_ldpc_bob_frame(kagi_ldpc_bob *b, const uint64_t *key, size_t off, size_t nbits,
                        const uint64_t *syn) KAGI_NODISCARD KAGI_NONNULL(1, 2, 5);
/* Decode with up to max_iter more iterations: KAGI_OK when the syndrome
 * is met, KAGI_ERR_RECONCILE if not (ask for a reveal and call again). */
int kagi_ldpc_bob_decode(kagi_ldpc_bob *b, unsigned max_iter) KAGI_NODISCARD KAGI_NONNULL(1);
/* Take the values of the next count bits of the reveal order. From the
 * 5th reveal of a frame on, the next decode starts afresh from the
 * channel and the bits known so far (docs/ldpc.md). */
void kagi_ldpc_bob_reveal(kagi_ldpc_bob *b, size_t count, const uint64_t *vals) KAGI_NONNULL(1, 3);
/* After a successful decode: write the corrected key bits back to key. */
void kagi_ldpc_bob_result(kagi_ldpc_bob *b, uint64_t *key, size_t off) KAGI_NONNULL(1, 2);

typedef struct kagi_ldpc_frame_stats {
    size_t key_bits;      /* key bits in the frame */
    size_t leak_bits;     /* syndrome leak (m - p) + revealed bits */
    size_t revealed_bits;
    unsigned iterations;
    unsigned rounds;      /* fallback rounds (reveals) so far */
} kagi_ldpc_frame_stats;
void kagi_ldpc_bob_stats(const kagi_ldpc_bob *b, kagi_ldpc_frame_stats *out) KAGI_NONNULL(1, 2);

/* ---- a whole key ---- */

/* Code and plan for a key of nbits bits at qber and first efficiency
 * f_start: the mother rate kagi_ldpc_rate_for would pick, with the
 * thresholds of the frame size expected for nbits (higher for short
 * frames), frames of at most 128 z_max bits (z_max 0: 8192, ~10^6 bits),
 * and for a key shorter than
 * the frames needed, the smallest lifting factor whose frames still cover
 * the key in as many frames (so a short key is not coded in a frame mostly
 * zero, which would disclose m - p bits for few key bits). The key is
 * spread evenly over the frames and the plan holds exactly each frame's
 * share, the room left punctured (leak f h per key bit) and shortened
 * (docs/ldpc.md, "Keys that do not fill their frames"). Deterministic:
 * both parties get the same code and plan from the same arguments. *code
 * and *plan are freed by the caller (plan first). */
int kagi_ldpc_fit(size_t nbits, double qber, double f_start, uint32_t z_max, uint64_t code_seed,
                  uint64_t plan_seed, kagi_ldpc_code **code, kagi_ldpc_plan **plan)
    KAGI_NODISCARD KAGI_NONNULL(7, 8);

/* ---- both parties in this process ---- */
typedef struct kagi_ldpc_params {
    double qber;            /* estimated QBER, (0, 0.11] (required) */
    double f_start;         /* first attempt's efficiency (0: kagi_ldpc_f_auto(qber)) */
    double f_step;          /* each reveal adds f_step n_key h(qber) bits (0: 0.02) */
    unsigned max_rounds;    /* reveals before a frame fails (0: 20) */
    unsigned iter_first;    /* iterations of the first attempt (0: 100) */
    unsigned iter_round;    /* iterations after each reveal (0: 40) */
    unsigned threads;       /* frames decoded in parallel (0: the CPUs online, at most 64) */
    int impl;               /* KAGI_LDPC_IMPL_* */
    unsigned alpha16;       /* 0: lambda-min; 1-16: min-sum (kagi_ldpc_decoder_new) */
    uint64_t seed;          /* public seed of the punctured positions */
    uint32_t z_max;         /* over a channel (kagi_distill): frames of at most
                               128 z_max bits, see kagi_ldpc_fit (0: 8192) */
} kagi_ldpc_params;

typedef struct kagi_ldpc_stats {
    size_t frames, failed_frames;
    size_t key_bits;        /* bits reconciled (the key's length) */
    size_t leak_bits;       /* syndrome leak + revealed bits, all frames */
    size_t syndrome_bits;   /* m per frame, sent */
    size_t revealed_bits;
    size_t messages;        /* kagi_ldpc_reconcile: Alice's, 1 syndrome + 1 per reveal
                               per frame; over a channel (kagi_distill): the LDPC
                               messages both ways (docs/ldpc.md, "Wire format") */
    size_t iterations;      /* decoder iterations, all frames */
    size_t punctured, shortened; /* per frame, from the plan */
    double efficiency;      /* leak / (key_bits h(qber)) */
    unsigned iter_max;      /* most iterations one frame took */
    unsigned rate_pct;      /* mother rate of the code */
    uint32_t z;             /* its lifting factor: frames of 128 z bits */
    size_t frame_key_bits;  /* key bits per frame (n_key of the plan) */
    size_t round_trips;     /* over a channel: reveal rounds (Bob asks, Alice answers) */
    size_t corrected;       /* bits Bob flipped (decoded frames only) */
} kagi_ldpc_stats;

/* Reconcile bob to alice frame by frame with code c (its rate from
 * kagi_ldpc_rate_for, say), planned for p->qber and p->f_start. A frame
 * that still fails after max_rounds reveals is left as Bob had it; the
 * call then returns KAGI_ERR_RECONCILE with the stats filled
 * (failed_frames says how many). */
int kagi_ldpc_reconcile(const kagi_ldpc_code *c, const kagi_bits *alice, kagi_bits *bob,
                        const kagi_ldpc_params *p, kagi_ldpc_stats *st) KAGI_NODISCARD
    KAGI_NONNULL(1, 2, 3, 4);
/* The same with a plan made beforehand (a plan serves any number of keys
 * at its QBER; making one for 10^6-bit frames takes tens of ms). p's
 * qber, f_start and seed are not used. */
int kagi_ldpc_reconcile_plan(const kagi_ldpc_plan *plan, const kagi_bits *alice, kagi_bits *bob,
                             const kagi_ldpc_params *p, kagi_ldpc_stats *st) KAGI_NODISCARD
    KAGI_NONNULL(1, 2, 3, 4);

#endif
