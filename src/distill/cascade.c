/* Cascade reconciliation: Alice answers parity queries, Bob searches.
 *
 * Each frame is seen through several "trees", one per way of cutting it:
 *   tree 0        pass 1, contiguous blocks of k1 bits;
 *   tree t < B    pass t+1, blocks of k1*4^t bits of a pseudo-random
 *                 permutation of the frame (B block passes in all);
 *   tree B+2j     extra pass j, the random half S_j (one block);
 *   tree B+2j+1   extra pass j, the complement of S_j (one block).
 * A tree is a binary tree of dyadic intervals over [0, T), T a power of two,
 * addressed by heap index (root 1, children 2h and 2h+1). A node's parity
 * is the parity of the tree's member bits inside it, so Alice's answer to
 * "parity of node h of tree t" is one bit that both sides can name with no
 * extra state. Bob keeps every parity he has learnt, so later searches
 * descend through known nodes without asking again.
 *
 * The pass-2 permutation is built from word moves and 64x64 bit transposes
 * (about 0.1 ns per bit instead of ~1.7 ns for a table-driven bit gather),
 * and it is the same for every frame of a session, like the random halves. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "internal.h"
#include "kagi/cascade.h"

#define KAGI__CASCADE_VERSION 1u
#define KAGI__TILE 4096u                 /* bits per transpose tile */
#define KAGI__MAX_FRAME ((size_t)1 << 30)
#define KAGI__MAX_EXTRA 64u
#define KAGI__MAX_BLOCK_PASSES 4u
#define KAGI__INFLIGHT 16u               /* frames open at once */
#define KAGI__MSG_CAP ((size_t)256 << 20)
#define KAGI__EARLY 64u    /* next block wave starts when 1/64 of this one is left */

enum { KAGI__MSG_BEGIN = 1, KAGI__MSG_ROUND = 2, KAGI__MSG_END = 3 };

/* ---------- bit helpers ---------- */

static size_t kagi__popcount_range(const uint64_t *w, size_t lo, size_t hi)
{
    if (lo >= hi) return 0;
    size_t a = lo >> 6, b = (hi - 1) >> 6;
    uint64_t mlo = ~(uint64_t)0 << (lo & 63);
    uint64_t mhi = ~(uint64_t)0 >> (63 - ((hi - 1) & 63));
    if (a == b) return (size_t)__builtin_popcountll(w[a] & mlo & mhi);
    size_t c = (size_t)__builtin_popcountll(w[a] & mlo) + (size_t)__builtin_popcountll(w[b] & mhi);
    for (size_t i = a + 1; i < b; i++) c += (size_t)__builtin_popcountll(w[i]);
    return c;
}

/* The low 2^sh bits of a word, sh = 0 .. 6. */
static const uint64_t kagi__lowmask[7] = {0x1, 0x3, 0xf, 0xff, 0xffff, 0xffffffff, ~(uint64_t)0};

/* Word whose parity is that of the aligned range [lo, lo + 2^sh) of w. */
static inline uint64_t kagi__span_xor(const uint64_t *w, size_t lo, unsigned sh)
{
    if (sh <= 6) return w[lo >> 6] & (kagi__lowmask[sh] << (lo & 63));
    const uint64_t *p = w + (lo >> 6);
    uint64_t acc = 0;
    /* Two words a turn: sh > 6 makes the count even. */
    for (size_t i = 0, n = (size_t)1 << (sh - 6); i < n; i += 2) acc ^= p[i] ^ p[i + 1];
    return acc;
}

static inline size_t kagi__span_pop(const uint64_t *w, size_t lo, unsigned sh)
{
    if (sh <= 6) return (size_t)__builtin_popcountll(w[lo >> 6] & (kagi__lowmask[sh] << (lo & 63)));
    const uint64_t *p = w + (lo >> 6);
    size_t c = 0;
    for (size_t i = 0, n = (size_t)1 << (sh - 6); i < n; i += 2)
        c += (size_t)(__builtin_popcountll(p[i]) + __builtin_popcountll(p[i + 1]));
    return c;
}

/* First set bit of w in [lo, hi); hi if none. */
static size_t kagi__first_set(const uint64_t *w, size_t lo, size_t hi)
{
    for (size_t i = lo >> 6; (i << 6) < hi; i++) {
        uint64_t v = w[i];
        if ((i << 6) < lo) v &= ~(uint64_t)0 << (lo & 63);
        if (v) {
            size_t p = (i << 6) + (size_t)__builtin_ctzll(v);
            return p < hi ? p : hi;
        }
    }
    return hi;
}

/* In-place transpose of a 64x64 bit matrix: bit c of a[r] <-> bit r of a[c].
 * Six rounds; round j swaps, for each pair of rows (k, k + j) with bit j
 * of k clear, the high j-bit groups of row k with the low ones of row k + j. */
#if defined(__AVX2__)
/* Rows k and k + j (j >= 4) sit in different vectors of four rows. */
#define KAGI__TROUND(a, b, j, m)                                                     \
    do {                                                                               \
        __m256i t_ = _mm256_and_si256(_mm256_xor_si256(_mm256_srli_epi64(a, j), b), m); \
        a = _mm256_xor_si256(a, _mm256_slli_epi64(t_, j));                            \
        b = _mm256_xor_si256(b, t_);                                                   \
    } while (0)

/* AVX2: the 64 rows in 16 registers, about 500 instructions instead of
 * ~3,000 for the compiler's vectorisation of the scalar rounds. Rounds 2
 * and 1 pair rows inside a vector: a lane swap brings the partner row
 * alongside, and the mask keeps the low row of each pair. */
static void kagi__transpose64(uint64_t *a)
{
    __m256i v[16];
    for (unsigned i = 0; i < 16; i++) v[i] = _mm256_loadu_si256((const __m256i *)(a + 4 * i));
    const __m256i m32 = _mm256_set1_epi64x(0x00000000FFFFFFFFll);
    const __m256i m16 = _mm256_set1_epi64x(0x0000FFFF0000FFFFll);
    const __m256i m8 = _mm256_set1_epi64x(0x00FF00FF00FF00FFll);
    const __m256i m4 = _mm256_set1_epi64x(0x0F0F0F0F0F0F0F0Fll);
    for (unsigned i = 0; i < 8; i++) KAGI__TROUND(v[i], v[i + 8], 32, m32);
    for (unsigned i = 0; i < 16; i++)
        if (!(i & 4)) KAGI__TROUND(v[i], v[i + 4], 16, m16);
    for (unsigned i = 0; i < 16; i++)
        if (!(i & 2)) KAGI__TROUND(v[i], v[i + 2], 8, m8);
    for (unsigned i = 0; i < 16; i += 2) KAGI__TROUND(v[i], v[i + 1], 4, m4);
    const __m256i m2 = _mm256_set_epi64x(0, 0, 0x3333333333333333ll, 0x3333333333333333ll);
    const __m256i m1 = _mm256_set_epi64x(0, 0x5555555555555555ll, 0, 0x5555555555555555ll);
    for (unsigned i = 0; i < 16; i++) {
        __m256i x = v[i];
        __m256i t = _mm256_and_si256(
            _mm256_xor_si256(_mm256_srli_epi64(x, 2), _mm256_permute4x64_epi64(x, 0x4E)), m2);
        x = _mm256_xor_si256(x, _mm256_or_si256(_mm256_slli_epi64(t, 2),
                                                _mm256_permute4x64_epi64(t, 0x4E)));
        t = _mm256_and_si256(
            _mm256_xor_si256(_mm256_srli_epi64(x, 1), _mm256_shuffle_epi32(x, 0x4E)), m1);
        x = _mm256_xor_si256(x, _mm256_or_si256(_mm256_slli_epi64(t, 1),
                                                _mm256_shuffle_epi32(t, 0x4E)));
        _mm256_storeu_si256((__m256i *)(a + 4 * i), x);
    }
}
#undef KAGI__TROUND
#else
static inline void kagi__transpose_round(uint64_t *a, unsigned j, uint64_t m)
{
    for (unsigned k0 = 0; k0 < 64; k0 += 2 * j)
        for (unsigned k = k0; k < k0 + j; k++) {
            uint64_t t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k] ^= t << j;
            a[k + j] ^= t;
        }
}

/* Rounds with constant strides: the compiler unrolls and vectorises them. */
static void kagi__transpose64(uint64_t *a)
{
    kagi__transpose_round(a, 32, 0x00000000FFFFFFFFull);
    kagi__transpose_round(a, 16, 0x0000FFFF0000FFFFull);
    kagi__transpose_round(a, 8, 0x00FF00FF00FF00FFull);
    kagi__transpose_round(a, 4, 0x0F0F0F0F0F0F0F0Full);
    kagi__transpose_round(a, 2, 0x3333333333333333ull);
    kagi__transpose_round(a, 1, 0x5555555555555555ull);
}
#endif

/* Fisher-Yates shuffle of 0 .. n-1 drawing j = kagi_rng_below(r, i).
 * The generator is inlined on a copy of the state: the same xoshiro256**
 * and Lemire multiply-shift with rejection as src/core/bits.c, so the
 * same numbers (the permutations are functions of the seed, and the
 * golden counts of tests/test_cascade.c depend on them); the calls were
 * 2.1 M of the 5 M instructions of a session's set-up. */
static void kagi__shuffle32(uint32_t *p, uint32_t n, kagi_rng *r)
{
    uint64_t s0 = r->s[0], s1 = r->s[1], s2 = r->s[2], s3 = r->s[3];
    for (uint32_t i = 0; i < n; i++) p[i] = i;
    for (uint64_t i = n; i > 1; i--) {
        uint64_t hi, lo;
        for (;;) {
            uint64_t x = s1 * 5, t = s1 << 17;
            x = ((x << 7) | (x >> 57)) * 9;
            s2 ^= s0;
            s3 ^= s1;
            s1 ^= s2;
            s0 ^= s3;
            s2 ^= t;
            s3 = (s3 << 45) | (s3 >> 19);
            unsigned __int128 m = (unsigned __int128)x * i;
            hi = (uint64_t)(m >> 64);
            lo = (uint64_t)m;
            /* Rejects the biased low zone: lo < (2^64 - i) % i, which
             * implies lo < i, the test bits.c makes first. */
            if (lo >= i || lo >= (0 - i) % i) break;
        }
        uint32_t t = p[i - 1];
        p[i - 1] = p[hi];
        p[hi] = t;
    }
    r->s[0] = s0;
    r->s[1] = s1;
    r->s[2] = s2;
    r->s[3] = s3;
}

/* ---------- layout: everything that depends only on frame length ---------- */

/* Flags of a search (kagi__search.flags); a block's starting ones are
 * part of the layout (kagi__layout.sflags). */
enum {
    KAGI__FAST = 1,    /* block tree, block inside [0, Nv): the kagi__step_* paths */
    KAGI__FULL = 2,    /* every bit of the node is a member: no counting */
    KAGI__DEAD = 4,    /* ended (kagi__end_search) */
    KAGI__WORDFULL = 8 /* FAST, FULL and a node of <= 64 bits: kagi__resume_full */
};

typedef struct kagi__layout {
    size_t L;             /* key bits in the frame */
    size_t Nv, W;         /* view bits (multiple of KAGI__TILE) and words */
    uint64_t T;           /* tree span, power of two >= Nv */
    unsigned logT;
    uint32_t nbt;         /* block trees: pass 1 plus the permuted passes */
    unsigned bl[KAGI__MAX_BLOCK_PASSES];     /* log2 of each block size */
    size_t nblocks[KAGI__MAX_BLOCK_PASSES];
    uint32_t ntrees, extra;
    /* Word shuffles of each permuted pass (index 0 unused). */
    uint32_t *s1[KAGI__MAX_BLOCK_PASSES], *s2[KAGI__MAX_BLOCK_PASSES];
    uint32_t *s1i[KAGI__MAX_BLOCK_PASSES], *s2i[KAGI__MAX_BLOCK_PASSES];
    uint64_t *real[KAGI__MAX_BLOCK_PASSES]; /* member bits of each block tree */
    /* Per block, the flags a search on it starts with (KAGI__FAST,
     * KAGI__FULL, KAGI__WORDFULL): one load when it starts. */
    uint8_t *sflags[KAGI__MAX_BLOCK_PASSES];
    size_t top_leak;      /* top-level parities that hold key bits */
    uint64_t hkey;        /* the halves S_j are made from this (kagi__half_word) */
} kagi__layout;

static void kagi__layout_free(kagi__layout *l)
{
    if (!l) return;
    for (unsigned t = 0; t < KAGI__MAX_BLOCK_PASSES; t++) {
        free(l->s1[t]);
        free(l->s2[t]);
        free(l->s1i[t]);
        free(l->s2i[t]);
        free(l->real[t]);
        free(l->sflags[t]);
    }
    free(l);
}

/* Pass-2 view of x (W words) into out: word shuffle, tile transposes,
 * word shuffle. Bit (w, b) lands at word s2[(s1[w] & ~63) | b], bit s1[w] & 63.
 * One tile at a time through a buffer on the stack (gather, transpose,
 * scatter): no W-word temporary, whose fresh pages cost more than the work. */
static void kagi__permute(const kagi__layout *l, unsigned t, const uint64_t *x, uint64_t *out)
{
    const uint32_t *s1i = l->s1i[t], *s2 = l->s2[t];
    uint64_t a[64];
    for (size_t k = 0; k < l->W; k += 64) {
        for (unsigned r = 0; r < 64; r++) a[r] = x[s1i[k + r]];
        kagi__transpose64(a);
        for (unsigned r = 0; r < 64; r++) out[s2[k + r]] = a[r];
    }
    kagi__wipe(a, sizeof a);
}

/* Word i of the half S_j: splitmix64 of a counter, within the key bits.
 * Computed where it is used rather than stored: 14 stored halves are
 * 1.75 MB per 2^20-bit frame, mostly page faults, and only their parities
 * over the whole frame (kagi__half_parity) are needed unless an extra
 * pass finds an error. */
static inline uint64_t kagi__half_word(const kagi__layout *l, uint32_t j, size_t i)
{
    uint64_t z = l->hkey + (j * l->W + i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) & l->real[0][i];
}

/* Parity of x & S_j over the whole frame, x zero outside the key bits
 * (so S_j needs no & real[0] here). Four words at a time in GCC vector
 * types: compilers do not vectorise the 64-bit multiplies of the scalar
 * loop, and this runs over every word, 14 times per frame and side. The
 * counters are a vector stepped by 4g (a scalar counter broadcast each
 * time cost 3 more instructions per 4 words). */
typedef uint64_t kagi__u64x4 __attribute__((vector_size(32)));

static int kagi__half_parity(const kagi__layout *l, uint32_t j, const uint64_t *x)
{
    const uint64_t g = 0x9e3779b97f4a7c15ull, base = l->hkey + (j * l->W + 1) * g;
    const size_t W = l->W; /* a multiple of 64 */
    kagi__u64x4 c = {base, base + g, base + 2 * g, base + 3 * g}, acc = {0, 0, 0, 0};
    const kagi__u64x4 step = {4 * g, 4 * g, 4 * g, 4 * g};
    for (size_t i = 0; i < W; i += 4, c += step) {
        kagi__u64x4 z = c, xv;
        memcpy(&xv, x + i, sizeof xv);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        acc ^= xv & (z ^ (z >> 31));
    }
    return __builtin_parityll(acc[0] ^ acc[1] ^ acc[2] ^ acc[3]);
}

/* Parity of the n words of x, n a multiple of 4 (-O2 does not vectorise
 * the scalar loop). */
static int kagi__xor_parity(const uint64_t *x, size_t n)
{
    kagi__u64x4 acc = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i += 4) {
        kagi__u64x4 xv;
        memcpy(&xv, x + i, sizeof xv);
        acc ^= xv;
    }
    return __builtin_parityll(acc[0] ^ acc[1] ^ acc[2] ^ acc[3]);
}

/* Position of frame bit i in the view of block tree t, and back. */
static inline size_t kagi__fwd(const kagi__layout *l, unsigned t, size_t i)
{
    if (t == 0) return i;
    uint32_t w1 = l->s1[t][i >> 6];
    size_t w2 = (w1 & ~(size_t)63) | (i & 63);
    return ((size_t)l->s2[t][w2] << 6) | (w1 & 63);
}

static inline size_t kagi__inv(const kagi__layout *l, unsigned t, size_t v)
{
    if (t == 0) return v;
    uint32_t w2 = l->s2i[t][v >> 6];
    size_t w1 = (w2 & ~(size_t)63) | (v & 63);
    return ((size_t)l->s1i[t][w1] << 6) | (w2 & 63);
}

static int kagi__layout_new(kagi__layout **out, size_t L, const kagi_cascade_params *p)
{
    kagi__layout *l = calloc(1, sizeof *l);
    KAGI__FAIL_IF(!l, KAGI_ERR_NOMEM, "out of memory");
    l->L = L;
    l->Nv = (L + KAGI__TILE - 1) / KAGI__TILE * KAGI__TILE;
    l->W = l->Nv / 64;
    l->T = 1;
    l->logT = 0;
    while (l->T < l->Nv) {
        l->T <<= 1;
        l->logT++;
    }
    l->extra = p->extra_passes;
    l->nbt = p->block_passes;
    l->ntrees = l->nbt + 2 * p->extra_passes;
    for (unsigned t = 0; t < l->nbt; t++) {
        unsigned b = 0;
        while ((1u << b) < p->k1) b++;
        b += 2 * t; /* each block pass has 4x the blocks of the one before */
        if (b > l->logT) b = l->logT;
        l->bl[t] = b;
        l->nblocks[t] = (l->Nv + ((size_t)1 << b) - 1) >> b;
    }
    size_t W = l->W;
    int bad = 0;
    for (unsigned t = 0; t < l->nbt; t++) {
        l->real[t] = t ? malloc(W * 8) : calloc(W, 8);
        l->sflags[t] = malloc(l->nblocks[t]);
        bad |= !l->real[t] || !l->sflags[t];
        if (t == 0) continue;
        l->s1[t] = malloc(W * sizeof(uint32_t));
        l->s2[t] = malloc(W * sizeof(uint32_t));
        l->s1i[t] = malloc(W * sizeof(uint32_t));
        l->s2i[t] = malloc(W * sizeof(uint32_t));
        bad |= !l->s1[t] || !l->s2[t] || !l->s1i[t] || !l->s2i[t];
    }
    if (bad) {
        kagi__layout_free(l);
        return kagi__err(KAGI_ERR_NOMEM, "out of memory for a %zu-bit frame", L);
    }
    kagi_rng r;
    kagi_rng_seed(&r, p->seed ^ ((uint64_t)L * 0x9e3779b97f4a7c15ull));
    for (size_t i = 0; i < L / 64; i++) l->real[0][i] = ~(uint64_t)0;
    if (L & 63) l->real[0][L / 64] = ((uint64_t)1 << (L & 63)) - 1;
    for (unsigned t = 1; t < l->nbt; t++) {
        kagi__shuffle32(l->s1[t], (uint32_t)W, &r);
        kagi__shuffle32(l->s2[t], (uint32_t)W, &r);
        for (uint32_t i = 0; i < W; i++) {
            l->s1i[t][l->s1[t][i]] = i;
            l->s2i[t][l->s2[t][i]] = i;
        }
        /* real[t] is real[0] permuted: all ones but the padding bits. */
        memset(l->real[t], 0xff, W * 8);
        for (size_t i = L; i < l->Nv; i++) {
            size_t v = kagi__fwd(l, t, i);
            l->real[t][v >> 6] &= ~((uint64_t)1 << (v & 63));
        }
    }
    l->top_leak = l->extra;
    for (unsigned t = 0; t < l->nbt; t++) {
        size_t k = (size_t)1 << l->bl[t];
        for (size_t b = 0; b < l->nblocks[t]; b++) {
            size_t lo = b * k, hi = lo + k > l->Nv ? l->Nv : lo + k;
            size_t m = hi - lo == k ? kagi__span_pop(l->real[t], lo, l->bl[t])
                                    : kagi__popcount_range(l->real[t], lo, hi);
            l->top_leak += m != 0;
            /* Blocks inside [0, Nv) are FAST; FULL ones skip member counting. */
            uint8_t f = hi - lo == k ? KAGI__FAST : 0;
            if (m == k) f |= KAGI__FULL | (k <= 64 ? KAGI__WORDFULL : 0);
            l->sflags[t][b] = f;
        }
    }
    l->hkey = kagi_rng_next(&r);
    *out = l;
    return KAGI_OK;
}

/* Test hook (tests/test_cascade.c): checks every structured permutation of
 * the layout of an L-bit frame against a naive position map: kagi__fwd is
 * a bijection of [0, Nv), kagi__inv undoes it, and kagi__permute moves bit
 * i of a random vector to kagi__fwd(i). Returns the number of faults. */
size_t kagi__cascade_check_perm(size_t L, uint32_t k1, uint64_t seed);
size_t kagi__cascade_check_perm(size_t L, uint32_t k1, uint64_t seed)
{
    kagi_cascade_params p = {.qber = 0.02, .k1 = k1, .seed = seed};
    kagi__layout *l = NULL;
    if (kagi_cascade_params_resolve(&p) || kagi__layout_new(&l, L, &p)) return 1;
    size_t bad = 0, W = l->W;
    uint64_t *x = malloc(W * 8), *y = malloc(W * 8), *seen = calloc(W, 8);
    if (!x || !y || !seen) bad = 1;
    kagi_rng r;
    kagi_rng_seed(&r, seed + 1);
    for (unsigned t = 1; !bad && t < l->nbt; t++) {
        memset(seen, 0, W * 8);
        for (size_t i = 0; i < W; i++) x[i] = kagi_rng_next(&r);
        kagi__permute(l, t, x, y);
        for (size_t i = 0; i < l->Nv; i++) {
            size_t v = kagi__fwd(l, t, i);
            if (v >= l->Nv || ((seen[v >> 6] >> (v & 63)) & 1) || kagi__inv(l, t, v) != i) {
                bad++;
                continue;
            }
            seen[v >> 6] |= (uint64_t)1 << (v & 63);
            bad += ((x[i >> 6] >> (i & 63)) & 1) != ((y[v >> 6] >> (v & 63)) & 1);
        }
    }
    free(x);
    free(y);
    free(seen);
    kagi__layout_free(l);
    return bad;
}

/* ---------- views of one frame (same code for Alice and Bob) ---------- */

typedef struct kagi__views {
    uint64_t *x;   /* tree 0: the frame itself, padded with zeros */
    uint64_t *pv[KAGI__MAX_BLOCK_PASSES]; /* block tree t's view; pv[0] == x */
} kagi__views;

static void kagi__views_free(kagi__views *v, const kagi__layout *l)
{
    size_t W = l->W;
    kagi__wipe(v->x, W * 8);
    for (unsigned t = 1; t < l->nbt; t++) {
        kagi__wipe(v->pv[t], W * 8);
        free(v->pv[t]);
    }
    free(v->x);
    memset(v, 0, sizeof *v);
}

/* Alice fills every block view at once (full); Bob fills only x and
 * builds the others when their pass starts, so corrections made before
 * then touch one view instead of all of them. The halves S_j get no view:
 * their parities are taken from x and the mask on the fly (few queries).
 * Views already allocated for this layout (a closed frame's) are reused:
 * every word is rewritten, and fresh pages would cost a fault each. */
static int kagi__views_build(kagi__views *v, const kagi__layout *l, const kagi_bits *key, size_t off,
                             int full)
{
    size_t W = l->W;
    if (!v->x) {
        v->x = malloc(W * 8);
        v->pv[0] = v->x;
        int bad = !v->x;
        for (unsigned t = 1; t < l->nbt; t++) bad |= !(v->pv[t] = malloc(W * 8));
        if (bad) {
            kagi__views_free(v, l);
            return kagi__err(KAGI_ERR_NOMEM, "out of memory for frame views");
        }
    }
    /* Frames start on word boundaries (frame_bits is a multiple of 4096). */
    size_t kw = KAGI_WORDS(l->L);
    memcpy(v->x, key->w + off / 64, kw * 8);
    memset(v->x + kw, 0, (W - kw) * 8);
    for (size_t i = 0; i < kw; i++) v->x[i] &= l->real[0][i];
    for (unsigned t = 1; full && t < l->nbt; t++) kagi__permute(l, t, v->x, v->pv[t]);
    return KAGI_OK;
}

static inline void kagi__node_range(const kagi__layout *l, uint64_t h, size_t *lo, size_t *hi)
{
    unsigned lev = 63u - (unsigned)__builtin_clzll(h);
    uint64_t size = l->T >> lev;
    uint64_t a = (h - ((uint64_t)1 << lev)) * size, b = a + size;
    if (a > l->Nv) a = l->Nv;
    if (b > l->Nv) b = l->Nv;
    *lo = (size_t)a;
    *hi = (size_t)b;
}

/* Word i of the members of extra tree e: S_{e/2}, or its complement in
 * the key bits when e is odd. */
static inline uint64_t kagi__xmember_word(const kagi__layout *l, uint32_t e, size_t i)
{
    uint64_t m = kagi__half_word(l, e / 2, i);
    return (e & 1) ? m ^ l->real[0][i] : m;
}

/* Over bits [lo, hi) of extra tree e's members: the parity of x's bits
 * there, or with x NULL their number. */
static size_t kagi__xrange(const kagi__layout *l, uint32_t e, const uint64_t *x, size_t lo, size_t hi)
{
    if (lo >= hi) return 0;
    size_t a = lo >> 6, b = (hi - 1) >> 6, c = 0;
    uint64_t acc = 0;
    for (size_t i = a; i <= b; i++) {
        uint64_t m = kagi__xmember_word(l, e, i);
        if (i == a) m &= ~(uint64_t)0 << (lo & 63);
        if (i == b) m &= ~(uint64_t)0 >> (63 - ((hi - 1) & 63));
        if (x) acc ^= x[i] & m;
        else c += (size_t)__builtin_popcountll(m);
    }
    return x ? (size_t)__builtin_parityll(acc) : c;
}

/* First member of extra tree e in [lo, hi); hi if none. */
static size_t kagi__xfirst(const kagi__layout *l, uint32_t e, size_t lo, size_t hi)
{
    for (size_t i = lo >> 6; (i << 6) < hi; i++) {
        uint64_t m = kagi__xmember_word(l, e, i);
        if ((i << 6) < lo) m &= ~(uint64_t)0 << (lo & 63);
        if (m) {
            size_t p = (i << 6) + (size_t)__builtin_ctzll(m);
            return p < hi ? p : hi;
        }
    }
    return hi;
}

static int kagi__view_parity(const kagi__layout *l, const kagi__views *v, uint32_t t, size_t lo,
                             size_t hi)
{
    if (t < l->nbt) return kagi_parity_range(v->pv[t], lo, hi);
    return (int)kagi__xrange(l, t - l->nbt, v->x, lo, hi);
}

static size_t kagi__real_in(const kagi__layout *l, size_t lo, size_t hi)
{
    if (hi > l->L) hi = l->L;
    return hi > lo ? hi - lo : 0;
}

static size_t kagi__members(const kagi__layout *l, uint32_t t, size_t lo, size_t hi)
{
    if (t == 0) return kagi__real_in(l, lo, hi);
    if (t < l->nbt) return kagi__popcount_range(l->real[t], lo, hi);
    return kagi__xrange(l, t - l->nbt, NULL, lo, hi);
}

/* Number of top-level parities Alice sends for a frame: every block of
 * trees 0 and 1, and S_j of each extra pass (its complement follows from
 * the frame's total parity). */
static size_t kagi__top_count(const kagi__layout *l)
{
    size_t n = l->extra;
    for (unsigned t = 0; t < l->nbt; t++) n += l->nblocks[t];
    return n;
}

static void kagi__top_parities(const kagi__layout *l, const kagi__views *v, uint8_t *out)
{
    size_t n = kagi__top_count(l), i = 0;
    memset(out, 0, (n + 7) / 8);
    for (uint32_t t = 0; t < l->nbt; t++) {
        size_t k = (size_t)1 << l->bl[t];
        for (size_t b = 0; b < l->nblocks[t]; b++, i++) {
            size_t lo = b * k, hi = lo + k > l->Nv ? l->Nv : lo + k;
            int par = hi - lo == k ? __builtin_parityll(kagi__span_xor(v->pv[t], lo, l->bl[t]))
                                   : kagi__view_parity(l, v, t, lo, hi);
            out[i >> 3] |= (uint8_t)(par << (i & 7));
        }
    }
    for (uint32_t j = 0; j < l->extra; j++, i++)
        out[i >> 3] |= (uint8_t)(kagi__half_parity(l, j, v->x) << (i & 7));
}

/* ---------- parameters ---------- */

int kagi_cascade_params_resolve(kagi_cascade_params *p)
{
    KAGI__FAIL_IF(!(p->qber > 0 && p->qber < 0.5), KAGI_ERR_ARG,
                  "cascade: QBER %g is outside (0, 0.5)", p->qber);
    if (p->frame_bits == 0) p->frame_bits = (size_t)1 << 20;
    KAGI__FAIL_IF(p->frame_bits % KAGI__TILE || p->frame_bits > KAGI__MAX_FRAME, KAGI_ERR_ARG,
                  "cascade: frame size %zu must be a multiple of %u and at most 2^30",
                  p->frame_bits, KAGI__TILE);
    if (p->k1 == 0) {
        /* 2^ceil(log2(1/Q)), after Martinez-Mateo et al. 2015. */
        uint32_t k = 2;
        while (k < 1.0 / p->qber && k < (1u << 16)) k <<= 1;
        p->k1 = k;
    }
    KAGI__FAIL_IF((p->k1 & (p->k1 - 1)) || p->k1 < 2, KAGI_ERR_ARG,
                  "cascade: block size %u must be a power of two >= 2", p->k1);
    if (p->block_passes == 0) p->block_passes = 3;
    KAGI__FAIL_IF(p->block_passes > KAGI__MAX_BLOCK_PASSES, KAGI_ERR_ARG,
                  "cascade: at most %u block passes", KAGI__MAX_BLOCK_PASSES);
    if (p->extra_passes == 0) p->extra_passes = 14;
    KAGI__FAIL_IF(p->extra_passes > KAGI__MAX_EXTRA, KAGI_ERR_ARG,
                  "cascade: at most %u extra passes", KAGI__MAX_EXTRA);
    if (p->waves == 0) p->waves = 2;
    return KAGI_OK;
}

static void kagi__put_params(kagi_buf *b, const kagi_cascade_params *p, size_t n)
{
    kagi_buf_u32(b, KAGI__CASCADE_VERSION);
    kagi_buf_u64(b, n);
    kagi_buf_u64(b, p->frame_bits);
    kagi_buf_u32(b, p->k1);
    kagi_buf_u32(b, p->block_passes);
    kagi_buf_u32(b, p->extra_passes);
    kagi_buf_u64(b, p->seed);
}

/* Shared by both sides: the layouts of full frames and of the last one. */
typedef struct kagi__session {
    kagi_cascade_params p;
    size_t n, nframes;
    kagi__layout *full, *last;
    int borrowed;   /* layouts belong to another session (kagi_cascade_run) */
} kagi__session;

static void kagi__session_clear(kagi__session *s)
{
    if (s->borrowed) {
        s->full = s->last = NULL;
        return;
    }
    if (s->last != s->full) kagi__layout_free(s->last);
    kagi__layout_free(s->full);
    s->full = s->last = NULL;
}

static int kagi__session_init(kagi__session *s, const kagi_cascade_params *p, size_t n)
{
    s->p = *p;
    s->n = n;
    s->nframes = (n + p->frame_bits - 1) / p->frame_bits;
    size_t first = n < p->frame_bits ? n : p->frame_bits;
    KAGI__TRY(kagi__layout_new(&s->full, first, p));
    size_t tail = n - (s->nframes - 1) * p->frame_bits;
    if (tail == first) {
        s->last = s->full;
        return KAGI_OK;
    }
    int rc = kagi__layout_new(&s->last, tail, p);
    if (rc) kagi__session_clear(s);
    return rc;
}

static const kagi__layout *kagi__frame_layout(const kagi__session *s, size_t f)
{
    return f + 1 == s->nframes ? s->last : s->full;
}

/* ---------- Alice ---------- */

struct kagi_cascade_alice {
    const kagi_bits *key;
    kagi__session s;
    const kagi__session *peer; /* Bob's, when both run here: reuse its layouts */
    int begun, finished;
    kagi__views *views;  /* per frame; x == NULL when not open */
    /* Views of closed frames, kept for the next frames of the same layout. */
    kagi__views spare[KAGI__INFLIGHT];
    const kagi__layout *spare_l[KAGI__INFLIGHT];
    size_t nspare;
    size_t leak;
};

int kagi_cascade_alice_new(kagi_cascade_alice **out, const kagi_bits *key)
{
    *out = calloc(1, sizeof **out);
    KAGI__FAIL_IF(!*out, KAGI_ERR_NOMEM, "out of memory");
    (*out)->key = key;
    return KAGI_OK;
}

void kagi_cascade_alice_free(kagi_cascade_alice *a)
{
    if (!a) return;
    if (a->views)
        for (size_t f = 0; f < a->s.nframes; f++)
            if (a->views[f].x) kagi__views_free(&a->views[f], kagi__frame_layout(&a->s, f));
    free(a->views);
    for (size_t i = 0; i < a->nspare; i++) kagi__views_free(&a->spare[i], a->spare_l[i]);
    kagi__session_clear(&a->s);
    free(a);
}

static int kagi__alice_begin(kagi_cascade_alice *a, kagi_rd *r)
{
    kagi_cascade_params p = {0};
    uint32_t ver = kagi_rd_u32(r);
    uint64_t n = kagi_rd_u64(r);
    p.frame_bits = (size_t)kagi_rd_u64(r);
    p.k1 = kagi_rd_u32(r);
    p.block_passes = kagi_rd_u32(r);
    p.extra_passes = kagi_rd_u32(r);
    p.seed = kagi_rd_u64(r);
    p.qber = 0.25; /* not used by Alice; only makes resolve() accept */
    KAGI__FAIL_IF(r->err, KAGI_ERR_PROTO, "cascade: truncated BEGIN message");
    KAGI__FAIL_IF(ver != KAGI__CASCADE_VERSION, KAGI_ERR_PROTO,
                  "cascade: peer speaks version %u, this is version %u", ver,
                  KAGI__CASCADE_VERSION);
    KAGI__FAIL_IF(n != a->key->n, KAGI_ERR_PROTO,
                  "cascade: Bob reconciles %llu bits but Alice holds %zu",
                  (unsigned long long)n, a->key->n);
    KAGI__FAIL_IF(p.frame_bits == 0 || p.k1 == 0 || p.block_passes == 0 || p.extra_passes == 0,
                  KAGI_ERR_PROTO, "cascade: BEGIN carries zero parameters");
    KAGI__TRY(kagi_cascade_params_resolve(&p));
    const kagi__session *o = a->peer;
    if (o && o->n == a->key->n && o->p.frame_bits == p.frame_bits && o->p.k1 == p.k1 &&
        o->p.block_passes == p.block_passes && o->p.extra_passes == p.extra_passes &&
        o->p.seed == p.seed) {
        a->s = *o; /* layouts depend only on these: building them again is waste */
        a->s.borrowed = 1;
    } else {
        KAGI__TRY(kagi__session_init(&a->s, &p, a->key->n));
    }
    a->views = calloc(a->s.nframes, sizeof *a->views);
    KAGI__FAIL_IF(!a->views, KAGI_ERR_NOMEM, "out of memory");
    a->begun = 1;
    return KAGI_OK;
}

/* The queries Alice's fast path leaves (extra trees, blocks cut by Nv)
 * and malformed ones. Returns the parity, or -1 (error set) for a bad
 * query. */
static int kagi__alice_slow(const kagi__layout *l, const kagi__views *v, const uint8_t *e,
                            uint32_t f, size_t q)
{
    uint32_t t = e[0];
    uint64_t h = (uint32_t)e[1] | (uint32_t)e[2] << 8 | (uint32_t)e[3] << 16 | (uint32_t)e[4] << 24;
    if (t >= l->ntrees || h - 1 >= 2 * l->T - 1) { /* nodes are 1 .. 2T-1 */
        (void)kagi__err(KAGI_ERR_PROTO, "cascade: bad query %zu of frame %u", q, f);
        return -1;
    }
    size_t lo, hi;
    kagi__node_range(l, h, &lo, &hi);
    return kagi__view_parity(l, v, t, lo, hi);
}

/* Answers nq queries (5 bytes each: tree u8, node u32 LE) about frame f
 * into dst, one bit each. A block-tree node inside [0, Nv), nearly every
 * query, is an aligned run of the view: part of one word up to 64 bits,
 * whole words above. The random view lines load in parallel without help
 * (only the answer bit depends on them), so there is no prefetch. The
 * other queries are marked and answered after each batch of 64: a call
 * inside the loop made the compiler spill its constants. Out of line for
 * the same reason. */
__attribute__((noinline)) static int kagi__alice_answer(const kagi_cascade_alice *a, uint32_t f,
                                                        const kagi__layout *l, const uint8_t *qb,
                                                        uint32_t nq, uint8_t *dst)
{
    const kagi__views *v = &a->views[f];
    const uint32_t nbt = l->nbt;
    const unsigned lz = 63u - l->logT; /* a node's size is 2^(clz(h) - lz) */
    const uint64_t T = l->T, T2m1 = 2 * T - 1;
    const size_t Nv = l->Nv;
    const uint64_t *pv[KAGI__MAX_BLOCK_PASSES];
    memcpy(pv, v->pv, sizeof pv);
    for (uint32_t q0 = 0; q0 < nq; q0 += 64) {
        const uint32_t n = nq - q0 < 64 ? nq - q0 : 64;
        const uint8_t *e = qb + 5 * (size_t)q0;
        uint64_t bits = 0, slow = 0;
        for (uint32_t q = 0; q < n; q++, e += 5) {
            uint32_t t = e[0];
            uint64_t h = (uint32_t)e[1] | (uint32_t)e[2] << 8 | (uint32_t)e[3] << 16 |
                         (uint32_t)e[4] << 24; /* one load */
            if (t < nbt && h - 1 < T2m1) {
                unsigned sh = (unsigned)__builtin_clzll(h) - lz;
                size_t lo = (size_t)((h << sh) - T), size = (size_t)1 << sh;
                if (lo + size <= Nv) {
                    const uint64_t *p = pv[t] + (lo >> 6);
                    /* The node's bits at the top of w (all 64 from 64 bits up). */
                    uint64_t w = (p[0] >> (lo & 63)) << ((0 - size) & 63);
                    if (sh > 6)
                        for (size_t i = 1; i < size >> 6; i++) w ^= p[i];
                    bits |= (uint64_t)__builtin_parityll(w) << q;
                    continue;
                }
            }
            slow |= (uint64_t)1 << q;
        }
        for (; slow; slow &= slow - 1) {
            unsigned q = (unsigned)__builtin_ctzll(slow);
            int bit = kagi__alice_slow(l, v, qb + 5 * ((size_t)q0 + q), f, q0 + q);
            if (bit < 0) return KAGI_ERR_PROTO;
            bits |= (uint64_t)bit << q;
        }
        for (uint32_t k = 0; k < (n + 7) / 8; k++) dst[q0 / 8 + k] = (uint8_t)(bits >> (8 * k));
    }
    return KAGI_OK;
}

int kagi_cascade_alice_handle(kagi_cascade_alice *a, const uint8_t *msg, size_t len, kagi_buf *out,
                              int *finished)
{
    kagi_rd r;
    kagi_rd_init(&r, msg, len);
    kagi_buf_reset(out);
    *finished = 0;
    KAGI__FAIL_IF(a->finished, KAGI_ERR_PROTO, "cascade: message after END");
    uint8_t type = kagi_rd_u8(&r);
    if (type == KAGI__MSG_BEGIN) {
        KAGI__FAIL_IF(a->begun, KAGI_ERR_PROTO, "cascade: second BEGIN");
        KAGI__TRY(kagi__alice_begin(a, &r));
    } else if (type == KAGI__MSG_END) {
        KAGI__FAIL_IF(!a->begun, KAGI_ERR_PROTO, "cascade: END before BEGIN");
        a->finished = 1;
        *finished = 1;
        return KAGI_OK;
    } else {
        KAGI__FAIL_IF(type != KAGI__MSG_ROUND, KAGI_ERR_PROTO,
                      "cascade: unknown message type %u", type);
        KAGI__FAIL_IF(!a->begun, KAGI_ERR_PROTO, "cascade: ROUND before BEGIN");
    }
    /* Frames to open: answer with their top-level parities. */
    uint32_t nopen = kagi_rd_u32(&r);
    for (uint32_t i = 0; i < nopen && !r.err; i++) {
        uint32_t f = kagi_rd_u32(&r);
        KAGI__FAIL_IF(r.err || f >= a->s.nframes || a->views[f].x, KAGI_ERR_PROTO,
                      "cascade: bad frame %u to open", f);
        const kagi__layout *l = kagi__frame_layout(&a->s, f);
        for (size_t k = 0; k < a->nspare; k++)
            if (a->spare_l[k] == l) {
                a->views[f] = a->spare[k];
                a->nspare--;
                a->spare[k] = a->spare[a->nspare];
                a->spare_l[k] = a->spare_l[a->nspare];
                break;
            }
        KAGI__TRY(kagi__views_build(&a->views[f], l, a->key, (size_t)f * a->s.p.frame_bits, 1));
        size_t nt = kagi__top_count(l);
        uint8_t *dst = kagi_buf_grow(out, (nt + 7) / 8);
        if (!dst) return out->err;
        kagi__top_parities(l, &a->views[f], dst);
        a->leak += nt;
    }
    /* Queries: one parity bit each. */
    uint32_t nsec = kagi_rd_u32(&r);
    for (uint32_t i = 0; i < nsec && !r.err; i++) {
        uint32_t f = kagi_rd_u32(&r), nq = kagi_rd_u32(&r);
        KAGI__FAIL_IF(r.err || f >= a->s.nframes || !a->views[f].x, KAGI_ERR_PROTO,
                      "cascade: query for frame %u that is not open", f);
        KAGI__FAIL_IF(nq > r.len - r.off, KAGI_ERR_PROTO, "cascade: truncated query list");
        const kagi__layout *l = kagi__frame_layout(&a->s, f);
        uint8_t *dst = kagi_buf_grow(out, ((size_t)nq + 7) / 8);
        if (!dst) return out->err;
        KAGI__FAIL_IF(nq > (r.len - r.off) / 5, KAGI_ERR_PROTO, "cascade: truncated query list");
        const uint8_t *qb = kagi_rd_take(&r, (size_t)nq * 5);
        KAGI__TRY(kagi__alice_answer(a, f, l, qb, nq, dst));
        a->leak += nq;
    }
    uint32_t nclose = kagi_rd_u32(&r);
    for (uint32_t i = 0; i < nclose && !r.err; i++) {
        uint32_t f = kagi_rd_u32(&r);
        KAGI__FAIL_IF(r.err || f >= a->s.nframes || !a->views[f].x, KAGI_ERR_PROTO,
                      "cascade: bad frame %u to close", f);
        const kagi__layout *l = kagi__frame_layout(&a->s, f);
        if (a->nspare < KAGI__INFLIGHT) {
            a->spare_l[a->nspare] = l;
            a->spare[a->nspare++] = a->views[f];
            memset(&a->views[f], 0, sizeof a->views[f]);
        } else {
            kagi__views_free(&a->views[f], l);
        }
    }
    KAGI__FAIL_IF(r.err || r.off != r.len, KAGI_ERR_PROTO,
                  "cascade: malformed message from Bob (%zu of %zu bytes parsed)", r.off, r.len);
    return out->err;
}

/* ---------- Bob ---------- */

/* A search walks one block down from its root. While it waits for an
 * answer it has split its node and asked for the parity of its left child.
 * The node is kept as its range [lo, lo + 2^sh) and, in block trees, its
 * heap index u inside the block and its bit i in the tree's known map
 * (kagi__kv_index; a child's is i + u or i + u + 1): the search step needs
 * those, and the heap index in the tree is (T + lo) >> sh
 * (kagi__search_node). m and ml are the member counts of a node of more
 * than 64 bits and of its left child (smaller nodes recount them from one
 * word). The block is lo >> bl (0 in the extra trees). 24 bytes. */
typedef struct kagi__search {
    uint32_t lo, i, u;
    uint32_t m, ml;
    uint8_t sh, apar;
    uint8_t tree, flags; /* KAGI__FAST, KAGI__FULL, KAGI__DEAD, KAGI__WORDFULL */
} kagi__search;
/* A waiting search keeps tree and flags: the step copies them as one. */
_Static_assert(offsetof(kagi__search, flags) == offsetof(kagi__search, tree) + 1,
               "tree and flags must be adjacent");

static inline uint64_t kagi__search_node(const kagi__layout *l, const kagi__search *s)
{
    return (l->T + s->lo) >> s->sh;
}

/* Moves a search of the generic loop (kagi__advance) to node h. */
static inline void kagi__search_goto(const kagi__layout *l, kagi__search *s, uint64_t h)
{
    unsigned lev = 63u - (unsigned)__builtin_clzll(h);
    s->sh = (uint8_t)(l->logT - lev);
    s->lo = (uint32_t)((h - ((uint64_t)1 << lev)) << s->sh);
}

/* Known parities of the extra passes' trees, few and deep: a small hash. */
typedef struct kagi__pmap {
    uint64_t *slot; /* (key << 1 | parity) + 2, 0 empty */
    size_t cap, used;
} kagi__pmap;

/* Block state bits (kagi__bframe.bst). KAGI__KVSET: the block's part of
 * the known map has been cleared for this frame. */
enum { KAGI__ERR = 1, KAGI__ACTIVE = 2, KAGI__APAR = 4, KAGI__KVSET = 8 };

typedef struct kagi__bframe {
    const kagi__layout *l;
    kagi__views v;
    /* Block trees: what Alice said about the left child of each internal
     * node, a known bit and a value bit (kv_index). A right child's parity
     * is never stored: a search reaches it through its parent, whose
     * parity it carries, and the left sibling's. */
    uint64_t *kv[KAGI__MAX_BLOCK_PASSES];
    /* Per block of each block tree: KAGI__ERR (Alice's parity xor Bob's),
     * KAGI__ACTIVE (a search runs on it), KAGI__APAR (Alice's parity of
     * the block), KAGI__KVSET (its part of kv is cleared). One byte a
     * block: 16 KB for a 2^20-bit frame at k1 = 64. */
    uint8_t *bst[KAGI__MAX_BLOCK_PASSES];
    kagi__pmap pm;
    uint8_t *xerr, *xact;        /* per extra tree */
    uint32_t nbs, nxs;           /* block and extra passes started (in order) */
    /* Live searches. After each step every one of them waits for an
     * answer, in order: query i is the left child of s[i].node. */
    kagi__search *s;
    size_t ns, cap, nq;
    const uint8_t *ans;          /* Alice's answers to the nq queries */
    uint32_t pass, wave;         /* next wave to release */
    size_t corrected;
    size_t wave_size;            /* searches started by the last release */
    int open, done;
} kagi__bframe;

struct kagi_cascade_bob {
    kagi_bits *key;
    kagi__session s;
    kagi__bframe *fr;
    size_t next_open, nopen_now;
    uint32_t *opening; /* frames opened by the last message, in order */
    size_t nopening;
    /* Closed frames whose buffers wait for the next frame of their layout:
     * clearing them costs less than faulting in fresh pages. */
    kagi__bframe spare[KAGI__INFLIGHT];
    size_t nspare;
    int state;  /* 0 new, 1 running, 2 done */
    kagi_cascade_stats st;
};

static int kagi__pmap_get(const kagi__pmap *m, uint64_t key, int *val)
{
    if (!m->cap) return 0;
    size_t i = (size_t)(key * 0x9e3779b97f4a7c15ull) & (m->cap - 1);
    for (;;) {
        uint64_t e = m->slot[i];
        if (!e) return 0;
        if (((e - 2) >> 1) == key) {
            *val = (int)((e - 2) & 1);
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
}

static int kagi__pmap_put(kagi__pmap *m, uint64_t key, int val)
{
    if (2 * (m->used + 1) > m->cap) {
        size_t nc = m->cap ? 2 * m->cap : 1024;
        uint64_t *ns = calloc(nc, 8);
        KAGI__FAIL_IF(!ns, KAGI_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < m->cap; i++) {
            uint64_t e = m->slot[i];
            if (!e) continue;
            size_t j = (size_t)(((e - 2) >> 1) * 0x9e3779b97f4a7c15ull) & (nc - 1);
            while (ns[j]) j = (j + 1) & (nc - 1);
            ns[j] = e;
        }
        free(m->slot);
        m->slot = ns;
        m->cap = nc;
    }
    size_t i = (size_t)(key * 0x9e3779b97f4a7c15ull) & (m->cap - 1);
    while (m->slot[i] && ((m->slot[i] - 2) >> 1) != key) i = (i + 1) & (m->cap - 1);
    if (!m->slot[i]) m->used++;
    m->slot[i] = ((key << 1) | (uint64_t)(val & 1)) + 2;
    return KAGI_OK;
}

/* Bit index, in its tree's known map, of internal node h of block tree t:
 * block b owns bits [b * k, (b + 1) * k), indexed by the node's heap index
 * inside the block (1 .. k-1), so a search stays in few cache lines (one
 * for k <= 256 with the map aligned to lines). */
static inline size_t kagi__kv_index(const kagi__layout *l, uint32_t t, uint64_t h)
{
    unsigned lev = 63u - (unsigned)__builtin_clzll(h), lb = l->logT - l->bl[t];
    unsigned d = lev - lb;
    uint64_t b = (h >> d) - ((uint64_t)1 << lb);
    uint64_t local = ((uint64_t)1 << d) | (h & (((uint64_t)1 << d) - 1));
    return (size_t)((b << l->bl[t]) | local);
}

/* Alice's parity of node h of tree t, if Bob knows it. In block trees a
 * right child reads as unknown: searches never ask for it (they derive it
 * from the parent and the left child, which is known whenever it is). */
static inline int kagi__known(const kagi__bframe *F, uint32_t t, uint64_t h, int *val)
{
    const kagi__layout *l = F->l;
    if (t < l->nbt) {
        unsigned lev = 63u - (unsigned)__builtin_clzll(h), lb = l->logT - l->bl[t];
        if (lev == lb) {
            *val = (F->bst[t][h - ((uint64_t)1 << lb)] & KAGI__APAR) != 0;
            return 1;
        }
        if (h & 1) return 0;
        size_t i = kagi__kv_index(l, t, h >> 1);
        const uint64_t *w = F->kv[t] + 2 * (i >> 6); /* known word, then value word */
        if (!((w[0] >> (i & 63)) & 1)) return 0;
        *val = (int)((w[1] >> (i & 63)) & 1);
        return 1;
    }
    return kagi__pmap_get(&F->pm, (uint64_t)t << 40 | h, val);
}

static inline int kagi__learn(kagi__bframe *F, uint32_t t, uint64_t h, int val)
{
    const kagi__layout *l = F->l;
    if (t < l->nbt) {
        unsigned lev = 63u - (unsigned)__builtin_clzll(h), lb = l->logT - l->bl[t];
        if (lev == lb) {
            uint8_t *st = &F->bst[t][h - ((uint64_t)1 << lb)];
            *st = (uint8_t)((*st & ~KAGI__APAR) | (val ? KAGI__APAR : 0));
            return KAGI_OK;
        }
        if (h & 1) return KAGI_OK; /* follows from the parent and the left child */
        size_t i = kagi__kv_index(l, t, h >> 1);
        uint64_t *w = F->kv[t] + 2 * (i >> 6);
        w[0] |= (uint64_t)1 << (i & 63);
        w[1] |= (uint64_t)(val & 1) << (i & 63);
        return KAGI_OK;
    }
    return kagi__pmap_put(&F->pm, (uint64_t)t << 40 | h, val);
}

/* Clears block b's part of tree t's known map when a search first starts
 * on it (only searches on block b read it). Clearing every map when the
 * frame opened wrote 750 KB per 10^6 bits, a third of it never read (at
 * 2 %, searches visit 72 % of pass 1's blocks, 95 % of pass 2's, 18 % of
 * pass 3's), and the lines it wrote were cold again by their first use;
 * now the search that needs a line finds it in the cache. */
static void kagi__kv_clear(kagi__bframe *F, uint32_t t, size_t b)
{
    unsigned bl = F->l->bl[t];
    size_t lo = b << bl;
    uint64_t *w = F->kv[t] + 2 * (lo >> 6);
    if (bl == 6) { /* the usual pass-1 block: no call for two words */
        w[0] = w[1] = 0;
        return;
    }
    if (bl > 6) {
        memset(w, 0, ((size_t)2 << (bl - 6)) * 8);
        return;
    }
    uint64_t m = ~((((uint64_t)1 << (1u << bl)) - 1) << (lo & 63));
    w[0] &= m;
    w[1] &= m;
}

static int kagi__start_search(kagi__bframe *F, uint32_t t, size_t b)
{
    if (F->ns == F->cap) {
        size_t nc = F->cap ? 2 * F->cap : 256;
        kagi__search *ns = realloc(F->s, nc * sizeof *ns);
        KAGI__FAIL_IF(!ns, KAGI_ERR_NOMEM, "out of memory");
        F->s = ns;
        F->cap = nc;
    }
    const kagi__layout *l = F->l;
    kagi__search *s = &F->s[F->ns++];
    if (t < l->nbt) {
        uint8_t st = F->bst[t][b];
        if (!(st & KAGI__KVSET)) kagi__kv_clear(F, t, b);
        F->bst[t][b] = (uint8_t)(st | KAGI__ACTIVE | KAGI__KVSET);
        unsigned bl = l->bl[t];
        uint32_t lo = (uint32_t)(b << bl);
        /* i: kagi__kv_index of the block's root. */
        *s = (kagi__search){.lo = lo, .i = lo | 1, .u = 1, .sh = (uint8_t)bl,
                            .apar = (uint8_t)((st & KAGI__APAR) != 0), .tree = (uint8_t)t,
                            .flags = l->sflags[t][b]};
        return KAGI_OK;
    }
    int ap = 0;
    (void)kagi__known(F, t, 1, &ap); /* top-level parities are always known */
    F->xact[t - l->nbt] = 1;
    *s = (kagi__search){.u = 1, .sh = (uint8_t)l->logT, .tree = (uint8_t)t, .apar = (uint8_t)ap};
    return KAGI_OK;
}

/* Flip bit i of the frame in every view; blocks whose error parity turns
 * odd in a started pass get a search (the cascade). The search that found
 * the bit passes its position v0 in its own tree t0 (t0 >= nbt: none),
 * which spares two dependent loads from random lines of the word tables. */
static int kagi__correct(kagi__bframe *F, size_t i, uint32_t t0, size_t v0)
{
    const kagi__layout *l = F->l;
    /* Every correction of a consistent run removes one error, so more
     * than L of them means answers that contradict each other (a bug or a
     * forged message not yet caught by its tag): stop before looping. */
    KAGI__FAIL_IF(++F->corrected > l->L, KAGI_ERR_RECONCILE,
                  "cascade: more corrections than bits in a frame; the parities disagree");
    for (uint32_t t = 0, nb = F->nbs; t < nb; t++) {
        size_t v = t == t0 ? v0 : kagi__fwd(l, t, i), b = v >> l->bl[t];
        F->v.pv[t][v >> 6] ^= (uint64_t)1 << (v & 63);
        uint8_t st = F->bst[t][b] ^= KAGI__ERR;
        if ((st & (KAGI__ERR | KAGI__ACTIVE)) == KAGI__ERR) KAGI__TRY(kagi__start_search(F, t, b));
    }
    for (uint32_t j = 0, nx = F->nxs; j < nx; j++) {
        int in = (int)((kagi__half_word(l, j, i >> 6) >> (i & 63)) & 1);
        uint32_t e = 2 * j + (in ? 0 : 1);
        F->xerr[e] ^= 1;
        if (F->xerr[e] && !F->xact[e])
            KAGI__TRY(kagi__start_search(F, l->nbt + e, 0));
    }
    return KAGI_OK;
}

/* Ends search si; restarts it from the top if its block is still odd. */
static int kagi__end_search(kagi__bframe *F, size_t si)
{
    kagi__search *s = &F->s[si];
    s->flags |= KAGI__DEAD;
    const kagi__layout *l = F->l;
    uint32_t t = s->tree, b = t < l->nbt ? s->lo >> l->bl[t] : 0;
    if (t < l->nbt) {
        F->bst[t][b] &= (uint8_t)~KAGI__ACTIVE;
        if (F->bst[t][b] & KAGI__ERR) return kagi__start_search(F, t, b);
        return KAGI_OK;
    }
    F->xact[t - l->nbt] = 0;
    if (F->xerr[t - l->nbt]) return kagi__start_search(F, t, b);
    return KAGI_OK;
}

/* Members of the aligned range [lo, lo + 2^sh) of block tree t. Tree 0's
 * members are the bits below L; full blocks need no count at all. */
static inline size_t kagi__span_members(const kagi__layout *l, uint32_t t, int full, size_t lo,
                                        unsigned sh)
{
    size_t size = (size_t)1 << sh;
    if (full) return size;
    if (t == 0) return lo >= l->L ? 0 : l->L - lo < size ? l->L - lo : size;
    return kagi__span_pop(l->real[t], lo, sh);
}

/* Learns Alice's answer a for the left child of a block-tree node whose
 * known-map bit is i; even if the search ends on this step, later
 * searches use it. */
static inline void kagi__learn_left(uint64_t *kv, size_t i, unsigned a)
{
    uint64_t *kw = kv + 2 * (i >> 6);
    kw[0] |= (uint64_t)1 << (i & 63);
    kw[1] |= (uint64_t)a << (i & 63);
}

/* Moves a one-word step to its left (right = 0) or right child at level
 * c: the known-map bit i and local index u follow the heap order, and the
 * node's bits stay at the bottom of n and r. */
static inline void kagi__word_child(unsigned right, unsigned c, size_t *i, size_t *u,
                                    unsigned *off, uint64_t *n, uint64_t *r, unsigned *sh)
{
    unsigned w = right << c;
    *i += *u + right;
    *u = 2 * *u + right;
    *off += w;
    *n >>= w;
    *r >>= w;
    *sh = c;
}

/* Outcome of a block-tree search step. */
enum { KAGI__WAITS, KAGI__EVEN, KAGI__FOUND };

/* Search steps in a block tree whose block lies inside [0, Nv), so no
 * range is clipped: the same decisions as the generic loop
 * (kagi__advance), with the node's range and known-map bit carried from
 * step to step. The node's own parity is checked only on entry (a child
 * chosen below always differs from Alice). No calls and no allocation: a
 * search that waits again is written to d (which may be s) and the step
 * returns KAGI__WAITS; one whose node turns out even returns KAGI__EVEN,
 * one that has narrowed its error to a single member KAGI__FOUND with
 * that member's position in s->lo and s->sh = 0. kagi__finish_block does
 * the rest of those two, rare next to the waits. */

/* Nodes of 64 bits or fewer: the node is the low 2^sh bits of n, the
 * view word shifted right by off, its members those of the member word r
 * (all ones in full blocks), so parities and member counts are a mask and
 * a popcount. pl
 * is Alice's parity of the node's left child if known (a resumed search:
 * the answer), else -1; check asks for the node's own parity to be
 * checked (on entry, not after a descent). */
static inline int kagi__step_word(const kagi__bframe *F, kagi__search *s, kagi__search *d, int pl,
                                  int check)
{
    size_t lo = s->lo, i = s->i, u = s->u;
    unsigned sh = s->sh, apar = s->apar;
    const uint32_t t = s->tree;
    const uint8_t flags = s->flags;
    const size_t base = lo & ~(size_t)63;
    unsigned off = (unsigned)(lo & 63);
    uint64_t n = F->v.pv[t][lo >> 6] >> off;
    uint64_t r = flags & KAGI__FULL ? ~(uint64_t)0 : F->l->real[t][lo >> 6] >> off;
    const uint64_t *kv = F->kv[t];
    if (check && !((unsigned)__builtin_parityll(n & kagi__lowmask[sh]) ^ apar)) return KAGI__EVEN;
    for (;;) {
        unsigned c;
        if (pl < 0) {
            unsigned m = (unsigned)__builtin_popcountll(r & kagi__lowmask[sh]);
            if (m == 1) {
                s->lo = (uint32_t)(base + off + (unsigned)__builtin_ctzll(r));
                s->sh = 0;
                return KAGI__FOUND;
            }
            c = sh - 1;
            unsigned ml = (unsigned)__builtin_popcountll(r & kagi__lowmask[c]);
            if (ml == 0 || ml == m) { /* all members on one side: same parity */
                kagi__word_child(ml == 0, c, &i, &u, &off, &n, &r, &sh);
                continue;
            }
            const uint64_t *kw = kv + 2 * (i >> 6);
            if (!((kw[0] >> (i & 63)) & 1)) {
                /* Waits for the left child's parity. */
                d->lo = (uint32_t)(base + off);
                d->i = (uint32_t)i;
                d->u = (uint32_t)u;
                d->sh = (uint8_t)sh;
                d->apar = (uint8_t)apar;
                d->tree = (uint8_t)t;
                /* A node whose bits are all members stays so below: its
                 * resumes take kagi__resume_full. */
                d->flags = (uint8_t)(flags | ((r & kagi__lowmask[sh]) == kagi__lowmask[sh]
                                                  ? KAGI__FULL | KAGI__WORDFULL : 0));
                return KAGI__WAITS;
            }
            pl = (int)((kw[1] >> (i & 63)) & 1);
        } else {
            c = sh - 1;
        }
        /* Into the child that differs from Alice; the choice is a coin
         * flip, so no branch. */
        unsigned right = (unsigned)__builtin_parityll(n & kagi__lowmask[c]) ^ (unsigned)pl ^ 1u;
        apar = (unsigned)pl ^ (apar & right);
        kagi__word_child(right, c, &i, &u, &off, &n, &r, &sh);
        pl = -1;
    }
}

/* Steps that start at a node of more than 64 bits (the top two levels of
 * pass-2 blocks at 2 %, three of pass 3): runs of whole words, member
 * counts carried in the search. At a block's root the node's parity
 * check reads the block's error bit (the root's parity xor Alice's, kept
 * by every correction) instead of xoring the block's words, and a
 * resumed root xors only its left half. A search that reaches a node of
 * 64 bits or fewer goes on in kagi__step_word, its node known to differ.
 * ans as for kagi__step_word's pl, already learnt. */
__attribute__((noinline)) static int kagi__step_wide(const kagi__bframe *F, kagi__search *s, int ans,
                                                     kagi__search *d)
{
    const uint32_t t = s->tree;
    const uint64_t *v = F->v.pv[t];
    size_t lo = s->lo, u = s->u, i = s->i, m = s->m, ml = s->ml;
    unsigned sh = s->sh, apar = s->apar, pl, pb = 0;
    int split = ans >= 0;
    if (u == 1) {
        if (!(F->bst[t][lo >> sh] & KAGI__ERR)) return KAGI__EVEN;
        if (split) {
            sh--;
            pb = (unsigned)__builtin_parityll(kagi__span_xor(v, lo, sh));
        } else {
            m = kagi__span_members(F->l, t, (s->flags & KAGI__FULL) != 0, lo, sh);
        }
    } else {
        /* Below the root a search is always a resumed one (new ones start
         * at the root): the node's parity and its left child's in one pass. */
        const uint64_t *p = v + (lo >> 6);
        uint64_t xl = 0, xr = 0;
        sh--;
        for (size_t k = 0, n = (size_t)1 << (sh - 6); k < n; k++) {
            xl ^= p[k];
            xr ^= p[n + k];
        }
        if (!((unsigned)__builtin_parityll(xl ^ xr) ^ apar)) return KAGI__EVEN;
        pb = (unsigned)__builtin_parityll(xl);
    }
    pl = (unsigned)ans; /* Alice's parity of the left child, if split */
    for (;; split = 0) {
        if (!split) {
            if (sh <= 6) {
                s->lo = (uint32_t)lo;
                s->i = (uint32_t)i;
                s->u = (uint32_t)u;
                s->sh = (uint8_t)sh;
                s->apar = (uint8_t)apar;
                return kagi__step_word(F, s, d, -1, 0);
            }
            sh--;
            ml = kagi__span_members(F->l, t, (s->flags & KAGI__FULL) != 0, lo, sh);
            if (ml == 0) { /* all members on the right: same parity, same count */
                i += u + 1;
                u = 2 * u + 1;
                lo += (size_t)1 << sh;
                continue;
            }
            if (ml == m) {
                i += u;
                u = 2 * u;
                continue;
            }
            const uint64_t *w = F->kv[t] + 2 * (i >> 6);
            if (!((w[0] >> (i & 63)) & 1)) {
                /* Waits for the left child's parity; field by field (GCC
                 * packed a compound literal through vector inserts). */
                uint16_t tf;
                memcpy(&tf, &s->tree, 2); /* tree and flags, unchanged */
                d->lo = (uint32_t)lo;
                d->i = (uint32_t)i;
                d->u = (uint32_t)u;
                d->m = (uint32_t)m;
                d->ml = (uint32_t)ml;
                d->sh = (uint8_t)(sh + 1);
                d->apar = (uint8_t)apar;
                memcpy(&d->tree, &tf, 2);
                return KAGI__WAITS;
            }
            pl = (unsigned)(w[1] >> (i & 63)) & 1;
            pb = (unsigned)__builtin_parityll(kagi__span_xor(v, lo, sh));
        }
        if (pb ^ pl) {
            i += u;
            u = 2 * u;
            apar = pl;
            m = ml;
        } else {
            i += u + 1;
            u = 2 * u + 1;
            lo += (size_t)1 << sh;
            apar ^= pl;
            m -= ml;
        }
    }
}

/* Steps at nodes of 64 bits or fewer that hold non-members (or new
 * pass-1 searches in such blocks). Out of line, so that the sweep's hot
 * loop keeps its registers. ans as for kagi__step_word's pl, already
 * learnt. */
__attribute__((noinline)) static int kagi__step_slow(const kagi__bframe *F, kagi__search *s, int ans,
                                                     kagi__search *d)
{
    return kagi__step_word(F, s, d, ans, 1);
}

/* The common step (80 % of them at 2 %): a search at a node of 64 bits
 * or fewer whose bits are all members, so there are no members to
 * count: every node of 2 bits or more splits and asks. pl is Alice's
 * answer (learnt here), or -1 for a new search, which first looks up
 * its left child. kagi__step_word with the member tests taken out, for
 * few live values. */
static inline int kagi__resume_full(const kagi__bframe *F, kagi__search *s, int pl,
                                    kagi__search *d)
{
    const uint32_t t = s->tree;
    size_t lo = s->lo, i = s->i, u = s->u;
    unsigned sh = s->sh, apar = s->apar;
    /* The node's bits at the bottom of x; lo moves with them, so the
     * node needs no separate word offset (one live value fewer). */
    uint64_t x = F->v.pv[t][lo >> 6] >> (lo & 63);
    uint64_t *kv = F->kv[t];
    if (pl >= 0) kagi__learn_left(kv, i, (unsigned)pl);
    if (!((unsigned)__builtin_parityll(x & kagi__lowmask[sh]) ^ apar)) return KAGI__EVEN;
    if (pl < 0) {
        if (sh == 0) return KAGI__FOUND; /* s->lo is the bit */
        const uint64_t *kw = kv + 2 * (i >> 6);
        if (!((kw[0] >> (i & 63)) & 1)) {
            *d = *s;
            return KAGI__WAITS;
        }
        pl = (int)((kw[1] >> (i & 63)) & 1);
    }
    for (;;) {
        unsigned c = sh - 1;
        /* Into the child that differs from Alice; the choice is a coin
         * flip, so no branch. */
        unsigned p = (unsigned)pl;
        /* c <= 5: the left child's mask without the table (BMI2's bzhi),
         * which kept a register for its address. */
        uint64_t xl = x & (((uint64_t)1 << (1u << c)) - 1);
        unsigned right = (unsigned)__builtin_parityll(xl) ^ p ^ 1u;
        unsigned w = right << c;
        apar = p ^ (apar & right);
        i += u + right;
        u = 2 * u + right;
        lo += w;
        x >>= w;
        sh = c;
        if (sh == 0) {
            s->lo = (uint32_t)lo;
            s->sh = 0;
            return KAGI__FOUND;
        }
        const uint64_t *kw = kv + 2 * (i >> 6);
        if (!((kw[0] >> (i & 63)) & 1)) {
            d->lo = (uint32_t)lo;
            d->i = (uint32_t)i;
            d->u = (uint32_t)u;
            d->sh = (uint8_t)sh;
            d->apar = (uint8_t)apar;
            memcpy(&d->tree, &s->tree, 2); /* tree and flags, unchanged */
            return KAGI__WAITS;
        }
        pl = (int)((kw[1] >> (i & 63)) & 1);
    }
}

/* The ends of a block-tree search step other than a wait: correct the
 * bit it found (KAGI__FOUND), then end it. */
static int kagi__finish_block(kagi__bframe *F, size_t si, int how)
{
    if (how == KAGI__FOUND) {
        const kagi__layout *l = F->l;
        const kagi__search *s = &F->s[si];
        uint32_t t = s->tree;
        size_t lo = s->lo;
        size_t at = s->sh && t ? kagi__first_set(l->real[t], lo, lo + ((size_t)1 << s->sh)) : lo;
        KAGI__TRY(kagi__correct(F, kagi__inv(l, t, at), t, at));
    }
    return kagi__end_search(F, si);
}

/* Descend as far as known parities allow; stop at a query or the end.
 * ans as for kagi__step_word; the step functions take the searches marked
 * KAGI__FAST; this loop the rest (random halves, blocks cut by Nv). */
static int kagi__advance(kagi__bframe *F, size_t si, int ans)
{
    const kagi__layout *l = F->l;
    if (ans >= 0) {
        const kagi__search *s = &F->s[si];
        KAGI__TRY(kagi__learn(F, s->tree, 2 * kagi__search_node(l, s), ans));
    }
    for (;;) {
        kagi__search *s = &F->s[si];
        uint32_t t = s->tree;
        const uint64_t h = kagi__search_node(l, s);
        size_t lo, hi;
        kagi__node_range(l, h, &lo, &hi);
        int bp = kagi__view_parity(l, &F->v, t, lo, hi);
        if (!(bp ^ s->apar)) return kagi__end_search(F, si);
        size_t m = kagi__members(l, t, lo, hi);
        if (m == 1) {
            if (t < l->nbt) {
                size_t at = t ? kagi__first_set(l->real[t], lo, hi) : lo;
                KAGI__TRY(kagi__correct(F, kagi__inv(l, t, at), t, at));
            } else {
                KAGI__TRY(kagi__correct(F, kagi__xfirst(l, t - l->nbt, lo, hi), t, 0));
            }
            return kagi__end_search(F, si);
        }
        uint64_t L = 2 * h, R = L + 1;
        size_t llo, lhi;
        kagi__node_range(l, L, &llo, &lhi);
        size_t ml = kagi__members(l, t, llo, lhi);
        if (ml == 0) {
            kagi__search_goto(l, s, R);
            continue;
        }
        if (ml == m) {
            kagi__search_goto(l, s, L);
            continue;
        }
        int pl, pr;
        if (!kagi__known(F, t, L, &pl)) {
            if (kagi__known(F, t, R, &pr)) {
                pl = s->apar ^ pr;
                KAGI__TRY(kagi__learn(F, t, L, pl));
            } else {
                return KAGI_OK; /* waits for the parity of L */
            }
        }
        if (kagi__view_parity(l, &F->v, t, llo, lhi) ^ pl) {
            kagi__search_goto(l, s, L);
            s->apar = (uint8_t)pl;
        } else {
            kagi__search_goto(l, s, R);
            s->apar = (uint8_t)(s->apar ^ pl);
            KAGI__TRY(kagi__learn(F, t, R, s->apar));
        }
    }
}

/* Forget a frame's state but keep what its report and layout need. */
static void kagi__bframe_reset(kagi__bframe *F)
{
    const kagi__layout *l = F->l;
    size_t corrected = F->corrected;
    int done = F->done;
    memset(F, 0, sizeof *F);
    F->l = l;
    F->corrected = corrected;
    F->done = done;
}

static void kagi__bframe_free(kagi__bframe *F)
{
    if (F->l && F->v.x) kagi__views_free(&F->v, F->l);
    for (unsigned t = 0; t < KAGI__MAX_BLOCK_PASSES; t++) {
        free(F->kv[t]);
        free(F->bst[t]);
    }
    free(F->pm.slot);
    free(F->xerr);
    free(F->xact);
    free(F->s);
    kagi__bframe_reset(F);
}

static int kagi__bframe_open(kagi_cascade_bob *B, size_t f)
{
    kagi__bframe *F = &B->fr[f];
    const kagi__layout *l = kagi__frame_layout(&B->s, f);
    for (size_t k = 0; k < B->nspare; k++)
        if (B->spare[k].l == l) {
            size_t corrected = F->corrected;
            *F = B->spare[k];
            F->corrected = corrected;
            B->spare[k] = B->spare[--B->nspare];
            break;
        }
    F->l = l;
    KAGI__TRY(kagi__views_build(&F->v, l, B->key, f * B->s.p.frame_bits, 0));
    for (unsigned t = 0; t < l->nbt; t++) {
        /* Line-aligned, so that a block of up to 256 bits has its map in
         * one line. */
        size_t bytes = (((l->nblocks[t] << l->bl[t]) + 63) / 64 * 16 + 63) & ~(size_t)63;
        if (!F->kv[t]) F->kv[t] = aligned_alloc(64, bytes);
        if (!F->bst[t]) F->bst[t] = malloc(l->nblocks[t]);
        if (!F->kv[t] || !F->bst[t])
            return kagi__err(KAGI_ERR_NOMEM, "out of memory");
        /* bst is written whole when Alice's block parities arrive; kv is
         * cleared a block at a time (kagi__kv_clear), its first touch a
         * write, so a fresh page faults once, not twice as calloc'd
         * memory read first would. */
    }
    if (!F->xerr) F->xerr = malloc(2 * l->extra + 1);
    if (!F->xact) F->xact = malloc(2 * l->extra + 1);
    KAGI__FAIL_IF(!F->xerr || !F->xact, KAGI_ERR_NOMEM, "out of memory");
    memset(F->xerr, 0, 2 * l->extra + 1);
    memset(F->xact, 0, 2 * l->extra + 1);
    F->nbs = F->nxs = 0;
    if (F->pm.slot) memset(F->pm.slot, 0, F->pm.cap * 8);
    F->pm.used = 0;
    F->ns = F->nq = 0;
    F->pass = F->wave = 0;
    F->wave_size = 0;
    F->done = 0;
    F->ans = NULL;
    F->open = 1;
    return KAGI_OK;
}

/* A closed frame's buffers go to the spares (or are freed); F keeps only
 * its layout, count and done flag. */
static void kagi__bframe_park(kagi_cascade_bob *B, kagi__bframe *F)
{
    if (B->nspare == KAGI__INFLIGHT) {
        kagi__bframe_free(F);
        return;
    }
    kagi__bframe *S = &B->spare[B->nspare++];
    *S = *F;
    S->open = 0;
    kagi__bframe_reset(F);
}

/* Alice's top-level parities arrive: learn them, set error parities. */
static int kagi__bframe_top(kagi__bframe *F, const uint8_t *bits, size_t *leak)
{
    const kagi__layout *l = F->l;
    size_t i = 0;
    int total = 0;
    for (uint32_t t = 0; t < l->nbt; t++) {
        uint8_t *st = F->bst[t];
        for (size_t b = 0; b < l->nblocks[t]; b++, i++) {
            int ap = (bits[i >> 3] >> (i & 7)) & 1;
            if (t == 0) total ^= ap;
            st[b] = ap ? KAGI__APAR : 0;
        }
    }
    *leak += l->top_leak; /* padding-only blocks are not counted */
    for (uint32_t j = 0; j < l->extra; j++, i++) {
        int ap = (bits[i >> 3] >> (i & 7)) & 1;
        uint32_t t = l->nbt + 2 * j;
        KAGI__TRY(kagi__learn(F, t, 1, ap));
        KAGI__TRY(kagi__learn(F, t + 1, 1, ap ^ total));
    }
    return KAGI_OK;
}

/* A pass starts: build Bob's views for it from his current key and set
 * the error parity of each of its blocks. */
static int kagi__begin_pass(kagi__bframe *F, uint32_t p)
{
    const kagi__layout *l = F->l;
    if (p < l->nbt) {
        F->nbs = p + 1;
        if (p > 0) kagi__permute(l, p, F->v.x, F->v.pv[p]);
        size_t k = (size_t)1 << l->bl[p];
        uint8_t *st = F->bst[p];
        for (size_t b = 0; b < l->nblocks[p]; b++) {
            size_t lo = b * k, hi = lo + k > l->Nv ? l->Nv : lo + k;
            int bp = hi - lo == k ? __builtin_parityll(kagi__span_xor(F->v.pv[p], lo, l->bl[p]))
                                  : kagi_parity_range(F->v.pv[p], lo, hi);
            int e = ((st[b] & KAGI__APAR) != 0) ^ bp;
            st[b] = (uint8_t)((st[b] & ~KAGI__ERR) | (e ? KAGI__ERR : 0));
        }
        return KAGI_OK;
    }
    uint32_t j = p - l->nbt, t = l->nbt + 2 * j;
    F->nxs = j + 1;
    int ps = kagi__half_parity(l, j, F->v.x), pc = ps ^ kagi__xor_parity(F->v.x, l->W);
    int as = 0, ac = 0;
    (void)kagi__known(F, t, 1, &as);
    (void)kagi__known(F, t + 1, 1, &ac);
    F->xerr[2 * j] = (uint8_t)(as ^ ps);
    F->xerr[2 * j + 1] = (uint8_t)(ac ^ pc);
    return KAGI_OK;
}

/* Starts the next wave of searches. Pass 1 is one wave; pass 2 is
 * p.waves waves of its blocks (so a pair of errors left by pass 1 is
 * rarely chased from both ends at once); an extra pass is two waves, S_j
 * then its complement. Returns 1 if a wave was released, 0 when all
 * passes are done. */
static int kagi__release(kagi__bframe *F, uint32_t waves, int *rc)
{
    const kagi__layout *l = F->l;
    uint32_t npass = l->nbt + l->extra;
    while (F->pass < npass) {
        uint32_t p = F->pass, nw = p == 0 ? 1 : p < l->nbt ? waves : 2;
        uint32_t w = F->wave;
        if (p >= F->nbs + F->nxs) {
            *rc = kagi__begin_pass(F, p);
            if (*rc) return 0;
        }
        if (++F->wave >= nw) {
            F->pass++;
            F->wave = 0;
        }
        size_t before = F->ns;
        if (p < l->nbt) {
            size_t nb = l->nblocks[p], per = (nb + nw - 1) / nw;
            size_t b0 = (size_t)w * per, b1 = b0 + per > nb ? nb : b0 + per;
            for (size_t b = b0; b < b1; b++)
                if ((F->bst[p][b] & (KAGI__ERR | KAGI__ACTIVE)) == KAGI__ERR) {
                    *rc = kagi__start_search(F, p, b);
                    if (*rc) return 0;
                }
        } else {
            uint32_t t = l->nbt + 2 * (p - l->nbt) + w;
            if (F->xerr[t - l->nbt] && !F->xact[t - l->nbt]) {
                *rc = kagi__start_search(F, t, 0);
                if (*rc) return 0;
            }
        }
        if (F->ns > before) return 1;
    }
    return 0;
}

/* One search of the sweep (kagi__sweep): the search at *sp, answer a (-1
 * for a new search). A search that waits again is written to *dp, which
 * advances; both pointers are rebuilt after the calls that may append
 * (and so move the array). The search's index is taken only there. */
__attribute__((always_inline)) static inline int kagi__sweep_one(kagi__bframe *F, kagi__search **sp,
                                                                 kagi__search **dp, int a)
{
    kagi__search *s = *sp;
    size_t si, di; /* *sp and *dp as indices, across the calls */
    if (s->flags & KAGI__FAST) {
        int how;
        if (s->flags & KAGI__WORDFULL) {
            how = kagi__resume_full(F, s, a, *dp);
        } else {
            if (a >= 0) kagi__learn_left(F->kv[s->tree], s->i, (unsigned)a);
            how = s->sh > 6 ? kagi__step_wide(F, s, a, *dp) : kagi__step_slow(F, s, a, *dp);
        }
        if (how == KAGI__WAITS) {
            ++*dp;
            return KAGI_OK;
        }
        si = (size_t)(s - F->s);
        di = (size_t)(*dp - F->s);
        KAGI__TRY(kagi__finish_block(F, si, how));
    } else {
        si = (size_t)(s - F->s);
        di = (size_t)(*dp - F->s);
        KAGI__TRY(kagi__advance(F, si, a));
    }
    kagi__search *S = F->s;
    *sp = S + si;
    *dp = S + di;
    if (!(S[si].flags & KAGI__DEAD)) *(*dp)++ = S[si];
    return KAGI_OK;
}

/* Runs searches from .. F->ns once (the ones that corrections start
 * meanwhile are appended and run in the same sweep); answer si goes to
 * search si for si < nans, and from is 0 whenever nans > 0
 * (kagi__bframe_step). The live ones are packed to the front as it goes
 * (d <= s), in order: the k-th waits for answer k next round. The
 * answered searches and the new ones run in two loops, so that neither
 * tests which it is; the searches are walked by pointer, rebuilt only
 * after a call that may move them. Answers are taken 56 at a time (7
 * bytes) with a stop bit above them, a shift per search: a byte load and
 * two shifts each, or a counter, cost registers and instructions. Kept
 * out of kagi__bframe_step so that the hot loop has registers to itself. */
__attribute__((noinline)) static int kagi__sweep(kagi__bframe *F, size_t from, const uint8_t *ans,
                                                 size_t nans)
{
    if (from >= F->ns) return KAGI_OK; /* none to run (F->s may be NULL) */
    kagi__search *s = F->s + from, *d = s;
    for (size_t q0 = 0; q0 < nans; q0 += 56) {
        size_t n = nans - q0 < 56 ? nans - q0 : 56;
        uint64_t bits = 0;
        for (size_t k = 0; k < (n + 7) / 8; k++) bits |= (uint64_t)ans[q0 / 8 + k] << (8 * k);
        /* Drop the last byte's padding (from the network: any value), then
         * a stop bit above the answers ends the chunk. */
        bits = (bits & (((uint64_t)1 << n) - 1)) | (uint64_t)1 << n;
        for (; bits != 1; s++, bits >>= 1) KAGI__TRY(kagi__sweep_one(F, &s, &d, (int)(bits & 1)));
    }
    for (size_t si = (size_t)(s - F->s); si < F->ns; si++, s++)
        KAGI__TRY(kagi__sweep_one(F, &s, &d, -1));
    F->ns = (size_t)(d - F->s);
    return KAGI_OK;
}

/* Runs every search of a frame until each waits for an answer or the
 * frame is done. ans holds Alice's answers to the frame's nq queries
 * (NULL when there are none): answer i goes straight to search i. */
static int kagi__bframe_step(kagi__bframe *F, uint32_t waves, const uint8_t *ans)
{
    size_t nans = ans ? F->nq : 0, from = 0;
    F->nq = 0;
    for (;;) {
        KAGI__TRY(kagi__sweep(F, from, ans, nans));
        nans = 0;
        from = F->ns;
        /* Chains of cascaded corrections leave a long tail of rounds with
         * a handful of searches: start the next block-pass wave then. */
        if (F->ns && F->pass > 0 && F->pass < F->l->nbt && F->ns * KAGI__EARLY <= F->wave_size) {
            int rc = KAGI_OK;
            size_t before = F->ns;
            if (!kagi__release(F, waves, &rc) && rc) return rc;
            F->wave_size = F->ns - before;
            continue;
        }
        if (F->ns) {
            F->nq = F->ns; /* every live search waits, in order */
            return KAGI_OK;
        }
        int rc = KAGI_OK;
        if (!kagi__release(F, waves, &rc)) {
            if (rc) return rc;
            F->done = 1;
            return KAGI_OK;
        }
        F->wave_size = F->ns;
        from = 0;
    }
}

int kagi_cascade_bob_new(kagi_cascade_bob **out, kagi_bits *key, const kagi_cascade_params *p)
{
    *out = NULL;
    KAGI__FAIL_IF(key->n == 0, KAGI_ERR_ARG, "cascade: empty key");
    kagi_cascade_params q = *p;
    KAGI__TRY(kagi_cascade_params_resolve(&q));
    kagi_cascade_bob *B = calloc(1, sizeof *B);
    KAGI__FAIL_IF(!B, KAGI_ERR_NOMEM, "out of memory");
    B->key = key;
    int rc = kagi__session_init(&B->s, &q, key->n);
    if (!rc) {
        B->fr = calloc(B->s.nframes, sizeof *B->fr);
        B->opening = calloc(B->s.nframes, sizeof *B->opening);
        if (!B->fr || !B->opening) rc = kagi__err(KAGI_ERR_NOMEM, "out of memory");
    }
    if (rc) {
        kagi_cascade_bob_free(B);
        return rc;
    }
    B->st.bits = key->n;
    B->st.frames = B->s.nframes;
    B->st.k1 = q.k1;
    B->st.block_passes = q.block_passes;
    B->st.extra_passes = q.extra_passes;
    *out = B;
    return KAGI_OK;
}

void kagi_cascade_bob_free(kagi_cascade_bob *B)
{
    if (!B) return;
    if (B->fr)
        for (size_t f = 0; f < B->s.nframes; f++) kagi__bframe_free(&B->fr[f]);
    for (size_t i = 0; i < B->nspare; i++) kagi__bframe_free(&B->spare[i]);
    free(B->fr);
    free(B->opening);
    kagi__session_clear(&B->s);
    free(B);
}

/* Writes Bob's next message: frames to open, queries, frames to close. */
static int kagi__bob_emit(kagi_cascade_bob *B, kagi_buf *out, int *done)
{
    kagi__session *S = &B->s;
    /* Close finished frames: copy the corrected bits back into the key. */
    size_t nclose = 0;
    kagi_buf tmpc;
    kagi_buf_init(&tmpc, KAGI__MSG_CAP);
    for (size_t f = 0; f < S->nframes; f++) {
        kagi__bframe *F = &B->fr[f];
        if (!F->open || !F->done) continue;
        const kagi__layout *l = F->l;
        uint64_t *dst = B->key->w + f * (S->p.frame_bits / 64);
        size_t full = l->L / 64;
        memcpy(dst, F->v.x, full * 8);
        if (l->L & 63) {
            uint64_t m = ((uint64_t)1 << (l->L & 63)) - 1;
            dst[full] = (dst[full] & ~m) | (F->v.x[full] & m);
        }
        B->st.corrected += F->corrected;
        kagi__bframe_park(B, F);
        B->nopen_now--;
        kagi_buf_u32(&tmpc, (uint32_t)f);
        nclose++;
    }
    /* Open new frames while there is room. */
    B->nopening = 0;
    while (B->next_open < S->nframes && B->nopen_now < KAGI__INFLIGHT) {
        size_t f = B->next_open++;
        int rc = kagi__bframe_open(B, f);
        if (rc) {
            kagi_buf_free(&tmpc);
            return rc;
        }
        B->opening[B->nopening++] = (uint32_t)f;
        B->nopen_now++;
    }
    int all_done = B->nopen_now == 0 && B->next_open == S->nframes;
    if (all_done) {
        kagi_buf_free(&tmpc);
        *done = 1;
        return KAGI_OK;
    }
    kagi_buf_u32(out, (uint32_t)B->nopening);
    for (size_t i = 0; i < B->nopening; i++) kagi_buf_u32(out, B->opening[i]);
    uint32_t nsec = 0;
    for (size_t f = 0; f < S->nframes; f++)
        if (B->fr[f].open && B->fr[f].nq) nsec++;
    kagi_buf_u32(out, nsec);
    for (size_t f = 0; f < S->nframes; f++) {
        kagi__bframe *F = &B->fr[f];
        if (!F->open || !F->nq) continue;
        kagi_buf_u32(out, (uint32_t)f);
        kagi_buf_u32(out, (uint32_t)F->nq);
        uint8_t *d = kagi_buf_grow(out, 5 * F->nq);
        if (!d) break;
        /* Locals: stores through d may alias F's fields. */
        const kagi__search *sq = F->s;
        const uint64_t T = F->l->T;
        size_t q = 0, nq = F->nq;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* One 8-byte store per query instead of five: its last 3 bytes
         * are overwritten by the next query, so the last one is left to
         * the loop below. */
        for (; q + 1 < nq; q++, d += 5) {
            uint64_t e = sq[q].tree | (2 * ((T + sq[q].lo) >> sq[q].sh)) << 8;
            memcpy(d, &e, 8);
        }
#endif
        for (; q < nq; q++, d += 5) {
            uint64_t h = 2 * ((T + sq[q].lo) >> sq[q].sh);
            d[0] = sq[q].tree;
            d[1] = (uint8_t)h;
            d[2] = (uint8_t)(h >> 8);
            d[3] = (uint8_t)(h >> 16);
            d[4] = (uint8_t)(h >> 24);
        }
    }
    kagi_buf_u32(out, (uint32_t)nclose);
    kagi_buf_put(out, tmpc.p, tmpc.len);
    kagi_buf_free(&tmpc);
    *done = 0;
    return out->err;
}

int kagi_cascade_bob_start(kagi_cascade_bob *B, kagi_buf *out)
{
    KAGI__FAIL_IF(B->state != 0, KAGI_ERR_PROTO, "cascade: Bob already started");
    kagi_buf_reset(out);
    kagi_buf_u8(out, KAGI__MSG_BEGIN);
    kagi__put_params(out, &B->s.p, B->s.n);
    B->state = 1;
    int done = 0;
    KAGI__TRY(kagi__bob_emit(B, out, &done));
    B->st.bytes_bob += out->len;
    return KAGI_OK;
}

int kagi_cascade_bob_handle(kagi_cascade_bob *B, const uint8_t *msg, size_t len, kagi_buf *out,
                            int *done)
{
    *done = 0;
    KAGI__FAIL_IF(B->state != 1, KAGI_ERR_PROTO, "cascade: Bob is not expecting an answer");
    kagi__session *S = &B->s;
    kagi_rd r;
    kagi_rd_init(&r, msg, len);
    B->st.bytes_alice += len;
    B->st.channel_uses++;
    for (size_t i = 0; i < B->nopening; i++) {
        kagi__bframe *F = &B->fr[B->opening[i]];
        size_t nt = kagi__top_count(F->l);
        const uint8_t *bits = kagi_rd_take(&r, (nt + 7) / 8);
        KAGI__FAIL_IF(!bits, KAGI_ERR_PROTO, "cascade: truncated answer from Alice");
        KAGI__TRY(kagi__bframe_top(F, bits, &B->st.leak_bits));
    }
    for (size_t f = 0; f < S->nframes; f++) {
        kagi__bframe *F = &B->fr[f];
        F->ans = NULL;
        if (!F->open || !F->nq) continue;
        F->ans = kagi_rd_take(&r, (F->nq + 7) / 8);
        KAGI__FAIL_IF(!F->ans, KAGI_ERR_PROTO, "cascade: truncated answer from Alice");
        B->st.leak_bits += F->nq;
    }
    KAGI__FAIL_IF(r.off != r.len, KAGI_ERR_PROTO, "cascade: answer from Alice has %zu extra bytes",
                  r.len - r.off);
    for (size_t f = 0; f < S->nframes; f++) {
        kagi__bframe *F = &B->fr[f];
        if (!F->open || F->done) continue;
        KAGI__TRY(kagi__bframe_step(F, S->p.waves, F->ans));
        /* A frame that cannot stop is a sign of inconsistent answers. */
        KAGI__FAIL_IF(F->corrected > F->l->L, KAGI_ERR_RECONCILE,
                      "cascade: frame %zu does not converge", f);
    }
    kagi_buf_reset(out);
    kagi_buf_u8(out, KAGI__MSG_ROUND);
    KAGI__TRY(kagi__bob_emit(B, out, done));
    if (*done) {
        kagi_buf_reset(out);
        kagi_buf_u8(out, KAGI__MSG_END);
        B->state = 2;
    }
    B->st.bytes_bob += out->len;
    return out->err;
}

void kagi_cascade_bob_stats(const kagi_cascade_bob *B, kagi_cascade_stats *s) { *s = B->st; }

int kagi_cascade_run(const kagi_bits *alice, kagi_bits *bob, const kagi_cascade_params *p,
                     kagi_cascade_stats *stats)
{
    KAGI__FAIL_IF(alice->n != bob->n, KAGI_ERR_ARG, "cascade: keys of %zu and %zu bits", alice->n,
                  bob->n);
    kagi_cascade_alice *A = NULL;
    kagi_cascade_bob *B = NULL;
    kagi_buf mb, ma;
    kagi_buf_init(&mb, KAGI__MSG_CAP);
    kagi_buf_init(&ma, KAGI__MSG_CAP);
    int rc = kagi_cascade_alice_new(&A, alice);
    if (!rc) rc = kagi_cascade_bob_new(&B, bob, p);
    if (!rc) A->peer = &B->s;
    if (!rc) rc = kagi_cascade_bob_start(B, &mb);
    int done = 0, fin = 0;
    while (!rc) {
        rc = kagi_cascade_alice_handle(A, mb.p, mb.len, &ma, &fin);
        if (rc || fin) break;
        rc = kagi_cascade_bob_handle(B, ma.p, ma.len, &mb, &done);
    }
    if (!rc && stats) kagi_cascade_bob_stats(B, stats);
    kagi_cascade_alice_free(A); /* first: she may borrow Bob's layouts */
    kagi_cascade_bob_free(B);
    kagi_buf_free(&mb);
    kagi_buf_free(&ma);
    return rc;
}
