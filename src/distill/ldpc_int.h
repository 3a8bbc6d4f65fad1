/* Internals shared by ldpc.c and ldpc_dec.c (not installed). */
#ifndef KAGI_LDPC_INT_H
#define KAGI_LDPC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/ldpc.h"

/* LLRs are quantised as round(6 ln P0/P1); 127 marks a known bit, kept so
 * by the decoder; every other value stays within [-126, 126]. */
#define KAGI__LDPC_LLR_SCALE 6.0
#define KAGI__LDPC_PIN 127
/* Inside the decoder a known bit's posterior (int16). */
#define KAGI__LDPC_PIN16 16384
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
    int8_t *llr0;       /* n: Bob's starting LLRs (key, 0 punctured, 127 shortened) */
};

unsigned kagi__ldpc_default_alpha(unsigned rate);

#endif
