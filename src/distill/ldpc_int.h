/* Internals shared by ldpc.c and ldpc_dec.c (not installed). */
#ifndef KAGI_LDPC_INT_H
#define KAGI_LDPC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/buf.h"
#include "kagi/channel.h"
#include "kagi/ldpc.h"

/* LLRs are quantised as round(6 ln P0/P1); 127 marks a known bit, kept so
 * by the decoder; every other value stays within [-126, 126]. */
#define KAGI__LDPC_LLR_SCALE 6.0
#define KAGI__LDPC_PIN 127
/* Most circulants in a base row (the AVX2 kernel's stack arrays). */
#define KAGI__LDPC_DCMAX 64

enum { KAGI__LDPC_KEY = 0, KAGI__LDPC_PUNCT = 1, KAGI__LDPC_SHORT = 2 };

struct kagi_ldpc_code {
    uint32_t z, zw, nb, mb;       /* lifting factor, words per block, base size */
    size_t n, m, ncirc;
    unsigned rate_pct, dc_max;
    uint64_t seed, checksum;
    size_t cycles4, cycles6;
    uint32_t *row_ptr;            /* mb + 1: circulants of row i are [row_ptr[i], row_ptr[i+1]) */
    uint32_t *col, *shift, *erow; /* per circulant, row-major */
    uint32_t *col_ptr, *col_edge; /* per column: its circulants' indices */
};

struct kagi_ldpc_plan {
    const kagi_ldpc_code *c;
    size_t n, m, n_key, punctured, shortened, nreveal;
    double qber, f_target;
    int8_t llr;
    uint8_t *kind;      /* n: KAGI__LDPC_KEY / PUNCT / SHORT */
    uint32_t *key_pos;  /* n_key: positions of the key bits, ascending */
    uint32_t *key_idx;  /* n: index among key bits, UINT32_MAX if none */
    uint32_t *reveal;   /* nreveal: punctured (in choice order), then key bits */
    /* Runs of consecutive key positions: key bits [kidx, kidx + len) sit
     * at frame positions [pos, pos + len). */
    size_t nruns;
    uint32_t *run_pos, *run_kidx, *run_len;
    /* The same map word by word: kmask[w] marks the key positions of frame
     * word w, kpre[w] is the key index of its first one (n / 64 each). */
    uint64_t *kmask;
    uint32_t *kpre;
    int8_t *llr0;       /* n: Bob's starting LLRs (key, 0 punctured, 127 shortened) */
};

/* x86-64 kernels (AVX2 decoder, BMI2 key moves), chosen at run time. */
#if defined(__x86_64__) && defined(__GNUC__)
#define KAGI__LDPC_X86 1
#else
#define KAGI__LDPC_X86 0
#endif
enum { KAGI__LDPC_CPU_AVX2 = 1, KAGI__LDPC_CPU_BMI2 = 2 };
/* This CPU's KAGI__LDPC_CPU_* features (asked once; 0 off x86-64). */
unsigned kagi__ldpc_cpu(void);

/* Key bits [0, nbits) of a frame, at key offset off, between the key and
 * the frame: dir 0 writes the whole frame (ckey -> frame, zero off the key
 * positions), dir 1 writes key bits [off, off + nbits) (frame -> key, the
 * key's other bits kept). words: 1 word by word with BMI2's pdep/pext
 * (returns -1 if this CPU has no BMI2), 0 run by run (any CPU). */
int kagi__ldpc_move_key(const kagi_ldpc_plan *p, uint64_t *frame, uint64_t *key,
                        const uint64_t *ckey, size_t off, size_t nbits, int dir, int words);

/* Defaults of kagi_ldpc_params (f_step 0.02, 20 rounds, 100 and 40
 * iterations, 2 threads, z_max 8192) filled in where 0; f_start 0 stays
 * (automatic: kagi_ldpc_f_auto_for). */
void kagi__ldpc_params_resolve(kagi_ldpc_params *p);

/* s ^= x rotated by sh (one circulant, z = 64 zw bits): bit r of the
 * result is bit (r + sh) mod z of x. */
void kagi__ldpc_rot_xor(uint64_t *s, const uint64_t *x, size_t zw, uint32_t sh);

/* LDPC reconciliation over ch (ldpc_wire.c, docs/ldpc.md "Wire format"):
 * Alice's key is read, Bob's corrected in place, frame by frame. qber (in
 * (0, 0.11]) and the params must be the same on both sides. st gets this
 * side's account: the leak counted from the bits this side sent (Alice)
 * or received (Bob). Frames Bob could not decode after max_rounds reveals
 * are left as they were and counted in st->failed_frames; the call still
 * returns KAGI_OK, so that the exchange can be authenticated first. */
int kagi__ldpc_wire_alice(kagi_channel *ch, const kagi_bits *key, double qber,
                          const kagi_ldpc_params *p, kagi_buf *in, kagi_buf *out,
                          kagi_ldpc_stats *st);
int kagi__ldpc_wire_bob(kagi_channel *ch, kagi_bits *key, double qber, const kagi_ldpc_params *p,
                        kagi_buf *in, kagi_buf *out, kagi_ldpc_stats *st);

#endif
