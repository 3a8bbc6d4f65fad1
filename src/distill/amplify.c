/* Privacy amplification: y = T x with the Toeplitz matrix
 * T[i][j] = s[i - j + n - 1], i.e. a middle product over GF(2)[z].
 *
 * Three levels of speed (docs/amplify.md has the measurements):
 *  - naive: the definition bit by bit, the test oracle;
 *  - words: one parity of a shifted seed window per output bit;
 *  - fast: Karatsuba on square Toeplitz blocks with carry-less multiply
 *    (PCLMUL, or VPCLMULQDQ on 256-bit vectors) for outputs up to about a
 *    thousand words, and above that a transposed additive FFT over
 *    GF(2^64). The FFT packs
 *    32 key bits per field element, so every product of two elements has
 *    degree < 63 and never wraps: the arithmetic is exact.
 * libgf2x was measured too: as packaged by Debian it is built without
 * PCLMUL and with untuned thresholds, 20 to 50 times slower here. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/amplify.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KAGI__X86 1
#define KAGI__T_PCL __attribute__((target("pclmul,sse4.1")))
#define KAGI__T_VEC __attribute__((target("avx2,pclmul,vpclmulqdq")))
#else
#define KAGI__X86 0
#endif

/* ---------------------------------------------------------------- checks */

/* Sizes only: the pointers are nonnull by declaration (a job in a batch
 * is checked for NULL separately). */
static int kagi__check(const char *fn, size_t n, size_t m)
{
    KAGI__FAIL_IF(m < 1 || m > n, KAGI_ERR_ARG,
                  "%s: output length m=%zu must lie in [1, n] with n=%zu input bits", fn, m, n);
    /* Keeps n + m and every bit index below far from overflow. */
    KAGI__FAIL_IF(n > ((size_t)1 << 58), KAGI_ERR_ARG, "%s: n=%zu is too large", fn, n);
    return KAGI_OK;
}

static inline int kagi__bit(const uint64_t *w, size_t i) { return (int)((w[i >> 6] >> (i & 63)) & 1); }

static void kagi__mask_tail(uint64_t *w, size_t bits)
{
    if (bits & 63) w[bits >> 6] &= ((uint64_t)1 << (bits & 63)) - 1;
}

/* Wipe and free a buffer of words (NULL ok). */
static void kagi__drop(uint64_t *p, size_t words)
{
    if (!p) return;
    kagi__wipe(p, words * sizeof *p);
    free(p);
}

/* 64 bits of w starting at bit p (which may be negative), reading only
 * bits in [0, nbits): everything outside counts as zero. */
static inline uint64_t kagi__get64(const uint64_t *w, size_t nbits, long long p)
{
    long long nb = (long long)nbits;
    if (p >= nb || p <= -64) return 0;
    uint64_t v;
    if (p < 0) {
        v = w[0] << (unsigned)(-p);
    } else {
        size_t k = (size_t)p >> 6;
        unsigned sh = (unsigned)p & 63;
        v = w[k] >> sh;
        if (sh && (long long)(k + 1) * 64 < nb) v |= w[k + 1] << (64 - sh);
    }
    long long room = nb - p; /* bits of v that lie inside [0, nbits) */
    if (room < 64) v &= ((uint64_t)1 << room) - 1;
    return v;
}

/* ----------------------------------------------------------------- naive */

int kagi_toeplitz_naive(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y)
{
    KAGI__TRY(kagi__check("kagi_toeplitz_naive", n, m));
    memset(y, 0, KAGI_WORDS(m) * sizeof *y);
    for (size_t i = 0; i < m; i++) {
        int acc = 0;
        for (size_t j = 0; j < n; j++) acc ^= kagi__bit(seed, i - j + n - 1) & kagi__bit(x, j);
        y[i >> 6] |= (uint64_t)acc << (i & 63);
    }
    return KAGI_OK;
}

/* ----------------------------------------------------------------- words */

static uint64_t kagi__rev64(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
    v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
    v = ((v >> 4) & 0x0f0f0f0f0f0f0f0full) | ((v & 0x0f0f0f0f0f0f0f0full) << 4);
    return __builtin_bswap64(v);
}

int kagi_toeplitz_words(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y)
{
    KAGI__TRY(kagi__check("kagi_toeplitz_words", n, m));
    size_t nw = KAGI_WORDS(n), sbits = n + m - 1, sw = KAGI_WORDS(sbits);
    /* Row i of T read left to right is seed bits i+n-1 down to i: with the
     * key reversed (xr[k] = x[n-1-k]) row i pairs seed bit i+k with xr[k]. */
    uint64_t *xr = calloc(nw + 1, sizeof *xr), *s = calloc(sw + 1, sizeof *s);
    if (!xr || !s) {
        kagi__drop(xr, nw + 1);
        kagi__drop(s, sw + 1);
        return kagi__err(KAGI_ERR_NOMEM, "kagi_toeplitz_words: cannot allocate %zu words", nw + sw);
    }
    memcpy(s, seed, sw * sizeof *s);
    kagi__mask_tail(s, sbits);
    /* Reverse 64*nw bits word by word, then drop the 64*nw - n pad bits. */
    for (size_t k = 0; k < nw; k++) xr[k] = kagi__rev64(x[nw - 1 - k]);
    unsigned d = (unsigned)(64 * nw - n);
    if (d)
        for (size_t k = 0; k < nw; k++) xr[k] = (xr[k] >> d) | (xr[k + 1] << (64 - d));
    kagi__mask_tail(xr, n);
    memset(y, 0, KAGI_WORDS(m) * sizeof *y);
    for (size_t i = 0; i < m; i++) {
        size_t w0 = i >> 6;
        unsigned sh = (unsigned)i & 63;
        uint64_t acc = 0;
        if (sh == 0) {
            for (size_t k = 0; k < nw; k++) acc ^= s[w0 + k] & xr[k];
        } else {
            /* s has a spare zero word, so w0 + k + 1 <= sw stays in bounds. */
            for (size_t k = 0; k < nw; k++)
                acc ^= ((s[w0 + k] >> sh) | (s[w0 + k + 1] << (64 - sh))) & xr[k];
        }
        y[w0] |= (uint64_t)__builtin_parityll(acc) << sh;
    }
    kagi__drop(xr, nw + 1);
    kagi__drop(s, sw + 1);
    return KAGI_OK;
}

/* --------------------------------------------- carry-less multiply kernels
 *
 * Word-level Toeplitz block: for an N x N block of words with seed words
 * S[0 .. 2N-1], R_I = sum_J clmul(S[I - J + N - 1], X[J]) (128 bits) for
 * I = 0..N, and output word I is bits 63..126 of R_I plus bits 0..62 of
 * R_{I+1} moved up by one: the seed window of row word I spans two seed
 * words. The top bit of S[2N-1] never reaches the output. */

static inline uint64_t kagi__clmul_c(uint64_t a, uint64_t b, uint64_t *hi)
{
    /* Portable fallback: 4-bit window table of multiples of a. */
    uint64_t t[16][2] = {{0, 0}};
    t[1][0] = a;
    for (int k = 2; k < 16; k++) {
        if (k & 1) {
            t[k][0] = t[k - 1][0] ^ a;
            t[k][1] = t[k - 1][1];
        } else {
            t[k][0] = t[k / 2][0] << 1;
            t[k][1] = (t[k / 2][1] << 1) | (t[k / 2][0] >> 63);
        }
    }
    uint64_t lo = 0, h = 0;
    for (int s = 60; s >= 0; s -= 4) {
        h = (h << 4) | (lo >> 60);
        lo <<= 4;
        unsigned nib = (unsigned)(b >> s) & 15;
        lo ^= t[nib][0];
        h ^= t[nib][1];
    }
    *hi = h;
    return lo;
}

static void kagi__base_c(size_t N, const uint64_t *S, const uint64_t *X, uint64_t *Y)
{
    uint64_t plo = 0, phi = 0;
    for (size_t I = 0; I <= N; I++) {
        uint64_t lo = 0, hi = 0;
        for (size_t J = 0; J < N; J++) {
            uint64_t h;
            lo ^= kagi__clmul_c(S[I - J + N - 1], X[J], &h);
            hi ^= h;
        }
        if (I) Y[I - 1] ^= (plo >> 63) ^ (phi << 1) ^ (lo << 1);
        plo = lo;
        phi = hi;
    }
}

#if KAGI__X86
static inline uint64_t kagi__comb(__m128i r, __m128i rn)
{
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(r);
    uint64_t hi = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(r, r));
    return (lo >> 63) ^ (hi << 1) ^ ((uint64_t)_mm_cvtsi128_si64(rn) << 1);
}

KAGI__T_PCL static void kagi__base_p(size_t N, const uint64_t *S, const uint64_t *X, uint64_t *Y)
{
    __m128i prev = _mm_setzero_si128();
    for (size_t I = 0; I <= N; I++) {
        __m128i r = _mm_setzero_si128();
        for (size_t J = 0; J < N; J++)
            r = _mm_xor_si128(r, _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)S[I - J + N - 1]),
                                                      _mm_cvtsi64_si128((long long)X[J]), 0));
        if (I) Y[I - 1] ^= kagi__comb(prev, r);
        prev = r;
    }
}

/* Four rows per step: one 256-bit load of seed words K..K+3 times a
 * broadcast key word gives R_I, R_I+2 (low halves) and R_I+1, R_I+3. */
KAGI__T_VEC static void kagi__base_v(size_t N, const uint64_t *S, const uint64_t *X, uint64_t *Y)
{
    __m128i R[2 * 16 + 2];
    size_t I = 0;
    for (; I + 3 <= N; I += 4) {
        __m256i e0 = _mm256_setzero_si256(), o0 = e0, e1 = e0, o1 = e0;
        size_t J = 0;
        for (; J + 2 <= N; J += 2) {
            __m256i s0 = _mm256_loadu_si256((const __m256i *)(S + N - 1 - J + I));
            __m256i s1 = _mm256_loadu_si256((const __m256i *)(S + N - 2 - J + I));
            __m256i x0 = _mm256_set1_epi64x((long long)X[J]);
            __m256i x1 = _mm256_set1_epi64x((long long)X[J + 1]);
            e0 ^= _mm256_clmulepi64_epi128(s0, x0, 0x00);
            o0 ^= _mm256_clmulepi64_epi128(s0, x0, 0x01);
            e1 ^= _mm256_clmulepi64_epi128(s1, x1, 0x00);
            o1 ^= _mm256_clmulepi64_epi128(s1, x1, 0x01);
        }
        if (J < N) {
            __m256i s0 = _mm256_loadu_si256((const __m256i *)(S + N - 1 - J + I));
            __m256i x0 = _mm256_set1_epi64x((long long)X[J]);
            e0 ^= _mm256_clmulepi64_epi128(s0, x0, 0x00);
            o0 ^= _mm256_clmulepi64_epi128(s0, x0, 0x01);
        }
        e0 ^= e1;
        o0 ^= o1;
        R[I] = _mm256_castsi256_si128(e0);
        R[I + 2] = _mm256_extracti128_si256(e0, 1);
        R[I + 1] = _mm256_castsi256_si128(o0);
        R[I + 3] = _mm256_extracti128_si256(o0, 1);
    }
    for (; I + 1 <= N; I += 2) {
        __m128i e = _mm_setzero_si128(), o = e;
        for (size_t J = 0; J < N; J++) {
            __m128i s = _mm_loadu_si128((const __m128i *)(S + N - 1 - J + I));
            __m128i x = _mm_cvtsi64_si128((long long)X[J]);
            e ^= _mm_clmulepi64_si128(s, x, 0x00);
            o ^= _mm_clmulepi64_si128(s, x, 0x01);
        }
        R[I] = e;
        R[I + 1] = o;
    }
    if (I == N) {
        __m128i e = _mm_setzero_si128();
        for (size_t J = 0; J < N; J++)
            e ^= _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)S[N - 1 - J + I]),
                                      _mm_cvtsi64_si128((long long)X[J]), 0);
        R[I] = e;
    }
    for (I = 0; I < N; I++) Y[I] ^= kagi__comb(R[I], R[I + 1]);
}
#endif

/* Which kernels this CPU runs: 0 portable, 1 PCLMUL, 2 VPCLMULQDQ+AVX2. */
int kagi__cpu_level(void);
int kagi__cpu_level(void)
{
#if KAGI__X86
    static atomic_int level = -1;
    int l = atomic_load(&level);
    if (l < 0) {
        __builtin_cpu_init();
        l = 0;
        if (__builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1")) l = 1;
        if (l && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("vpclmulqdq")) l = 2;
        atomic_store(&level, l);
    }
    return l;
#else
    return 0;
#endif
}

/* ------------------------------------------- Karatsuba on Toeplitz blocks
 *
 * Split an N x N block (N = 2h words) into h x h blocks: T = [[A, B], [C, A]]
 * with seeds A = S+h, B = S, C = S+2h. Then y0 = A(x0+x1) + (B+A)x1 and
 * y1 = A(x0+x1) + (C+A)x0: three half-size products instead of four. */

enum { KAGI__KBASE = 16 };

typedef struct kagi__kctx {
    void (*base)(size_t, const uint64_t *, const uint64_t *, uint64_t *);
} kagi__kctx;

static inline void kagi__xor3(uint64_t *restrict d, const uint64_t *restrict a, const uint64_t *restrict b,
                       size_t n)
{
    size_t i = 0;
#if defined(__AVX2__)
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_si256((__m256i *)(d + i), _mm256_loadu_si256((const __m256i *)(a + i)) ^
                                                    _mm256_loadu_si256((const __m256i *)(b + i)));
#endif
    for (; i < n; i++) d[i] = a[i] ^ b[i];
}

static inline void kagi__xor2(uint64_t *restrict d, const uint64_t *restrict a, size_t n)
{
    size_t i = 0;
#if defined(__AVX2__)
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_si256((__m256i *)(d + i), _mm256_loadu_si256((const __m256i *)(d + i)) ^
                                                    _mm256_loadu_si256((const __m256i *)(a + i)));
#endif
    for (; i < n; i++) d[i] ^= a[i];
}

/* Scratch words kagi__tmvp needs for any size up to N: as if every level
 * were odd (padded copies 4N+4, then halves 2N+2), which also covers the
 * smaller squares kagi__rect cuts later. */
static size_t kagi__tmvp_scratch(size_t N)
{
    size_t s = 16;
    for (; N > KAGI__KBASE; N = N / 2 + 1) s += 6 * N + 8;
    return s;
}

/* Y ^= T X for an N x N word block with seed words S[0 .. 2N-1]. */
static void kagi__tmvp(const kagi__kctx *k, size_t N, const uint64_t *S, const uint64_t *X,
                       uint64_t *Y, uint64_t *scr)
{
    if (N <= KAGI__KBASE) {
        k->base(N, S, X, Y);
        return;
    }
    if (N & 1) {
        /* Odd: pad with a zero key word and a discarded output word; the
         * seed moves up one word so the old block keeps its entries. */
        uint64_t *s2 = scr, *x2 = s2 + 2 * N + 2, *y2 = x2 + N + 1;
        s2[0] = 0;
        memcpy(s2 + 1, S, 2 * N * sizeof *S);
        s2[2 * N + 1] = 0;
        memcpy(x2, X, N * sizeof *X);
        x2[N] = 0;
        memset(y2, 0, (N + 1) * sizeof *y2);
        kagi__tmvp(k, N + 1, s2, x2, y2, y2 + N + 1);
        kagi__xor2(Y, y2, N);
        return;
    }
    size_t h = N / 2;
    uint64_t *ts = scr, *tx = ts + 2 * h, *ty = tx + h, *rest = ty + h;
    const uint64_t *A = S + h, *B = S, *C = S + 2 * h;
    kagi__xor3(tx, X, X + h, h);
    memset(ty, 0, h * sizeof *ty);
    kagi__tmvp(k, h, A, tx, ty, rest);
    kagi__xor2(Y, ty, h);
    kagi__xor2(Y + h, ty, h);
    kagi__xor3(ts, B, A, 2 * h);
    kagi__tmvp(k, h, ts, X + h, Y, rest);
    kagi__xor3(ts, C, A, 2 * h);
    kagi__tmvp(k, h, ts, X, Y + h, rest);
}

/* Y ^= T X for an R x C word block (seed words S[0 .. R+C-1]), cut into
 * square blocks like Euclid's algorithm. */
static void kagi__rect(const kagi__kctx *k, size_t R, size_t C, const uint64_t *S,
                       const uint64_t *X, uint64_t *Y, uint64_t *scr)
{
    while (R && C) {
        if (R <= C) {
            kagi__tmvp(k, R, S + (C - R), X, Y, scr);
            X += R;
            C -= R;
        } else {
            kagi__tmvp(k, C, S, X, Y, scr);
            Y += C;
            S += C;
            R -= C;
        }
    }
}

/* Internal entry points, also called by tests/test_amplify.c to cover
 * every kernel: level is 0 (portable), 1 (PCLMUL) or 2 (VPCLMULQDQ) and
 * must not exceed kagi__cpu_level(). */
int kagi__toeplitz_kara(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                        int level);
int kagi__toeplitz_fft(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                       int level);

int kagi__toeplitz_kara(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                        int level)
{
    size_t nw = KAGI_WORDS(n), mw = KAGI_WORDS(m), sw = nw + mw;
    size_t scrw = kagi__tmvp_scratch(nw < mw ? nw : mw);
    /* x padded to 64*nw bits with zeros at the top: the seed moves up by
     * the pad d so that word-aligned blocks line up with the matrix. */
    size_t d = 64 * nw - n, total = sw + nw + mw + scrw;
    uint64_t *buf = calloc(total, sizeof *buf);
    KAGI__FAIL_IF(!buf, KAGI_ERR_NOMEM, "kagi_toeplitz: cannot allocate %zu words", total);
    uint64_t *S = buf, *X = S + sw, *Y = X + nw, *scr = Y + mw;
    for (size_t w = 0; w < sw; w++) S[w] = kagi__get64(seed, n + m - 1, (long long)(64 * w) - (long long)d);
    memcpy(X, x, nw * sizeof *X);
    kagi__mask_tail(X, n);
    kagi__kctx k = {kagi__base_c};
#if KAGI__X86
    if (level == 1) k.base = kagi__base_p;
    if (level == 2) k.base = kagi__base_v;
#endif
    kagi__rect(&k, mw, nw, S, X, Y, scr);
    memcpy(y, Y, mw * sizeof *y);
    kagi__mask_tail(y, m);
    kagi__drop(buf, total);
    return KAGI_OK;
}

/* ------------------------------------------- additive FFT over GF(2^64)
 *
 * Field GF(2)[t]/(t^64 + t^4 + t^3 + t + 1). Cantor basis v_0 = 1,
 * v_i^2 + v_i = v_(i-1); the points are w_u = sum of v_i over the bits of
 * u. With this basis the subspace polynomials s_i(X) (zero on the span of
 * v_0..v_(i-1)) are s_i = sum over j with (j & i) == j of X^(2^j): their
 * coefficients are 0 or 1, so dividing by them is only XOR, and s_i maps
 * v_r to v_(r-i). The forward transform (Gao-Mateer style, von zur Gathen-
 * Gerhard): for layer i = L-1 .. 0, divide each block of 2^(i+1)
 * coefficients by s_i (f = q s_i + r) and replace (r, q) by
 * (r + c q, r + c q + q) with c = s_i(block offset) = w_(2t): the first
 * half is then f on the lower coset, the second on the upper one.
 *
 * The middle product is the transpose of multiplication by the key
 * polynomial (Tellegen's principle): MP = fwd^T(fwd(key) * inv^T(seed)).
 * So the transform only has to cover the seed, not seed + key. */

static uint64_t kagi__cantor[64];
static uint64_t kagi__om[3][4096]; /* w_u = om[0][u & 4095] ^ om[1][..] ^ om[2][..] */
static pthread_once_t kagi__fft_once = PTHREAD_ONCE_INIT;

static inline uint64_t kagi__gf_red(uint64_t lo, uint64_t hi)
{
    /* t^64 = t^4 + t^3 + t + 1; the bits of hi * (t^4+t^3+t+1) above 63
     * are folded in first (they are at most 4 bits, so no second wrap). */
    uint64_t h = hi ^ (hi >> 63) ^ (hi >> 61) ^ (hi >> 60);
    return lo ^ h ^ (h << 1) ^ (h << 3) ^ (h << 4);
}

static uint64_t kagi__gf_mul_c(uint64_t a, uint64_t b)
{
    uint64_t hi, lo = kagi__clmul_c(a, b, &hi);
    return kagi__gf_red(lo, hi);
}

static inline uint64_t kagi__omega(size_t u)
{
    return kagi__om[0][u & 4095] ^ kagi__om[1][(u >> 12) & 4095] ^ kagi__om[2][(u >> 24) & 4095];
}

static void kagi__fft_init(void)
{
    /* Solve x^2 + x = v_(i-1) by Gaussian elimination on the GF(2)-linear
     * map x -> x^2 + x; one of the two roots is taken. */
    uint64_t col[64];
    for (int b = 0; b < 64; b++) {
        uint64_t e = (uint64_t)1 << b;
        col[b] = kagi__gf_mul_c(e, e) ^ e;
    }
    kagi__cantor[0] = 1;
    for (int i = 1; i < 64; i++) {
        uint64_t A[64], rhs[64];
        int piv[64], rank = 0;
        for (int r = 0; r < 64; r++) {
            A[r] = 0;
            for (int b = 0; b < 64; b++) A[r] |= ((col[b] >> r) & 1) << b;
            rhs[r] = (kagi__cantor[i - 1] >> r) & 1;
        }
        for (int b = 0; b < 64 && rank < 64; b++) {
            int r = rank;
            while (r < 64 && !((A[r] >> b) & 1)) r++;
            if (r == 64) continue;
            uint64_t t = A[r];
            A[r] = A[rank];
            A[rank] = t;
            t = rhs[r];
            rhs[r] = rhs[rank];
            rhs[rank] = t;
            for (int q = 0; q < 64; q++)
                if (q != rank && ((A[q] >> b) & 1)) {
                    A[q] ^= A[rank];
                    rhs[q] ^= rhs[rank];
                }
            piv[rank++] = b;
        }
        uint64_t v = 0;
        for (int r = 0; r < rank; r++)
            if (rhs[r]) v |= (uint64_t)1 << piv[r];
        kagi__cantor[i] = v; /* solvable for i < 64: Cantor's theorem */
    }
    for (size_t u = 0; u < 4096; u++)
        for (int t = 0; t < 3; t++) {
            uint64_t a = 0;
            for (int k = 0; k < 12; k++)
                if ((u >> k) & 1) a ^= kagi__cantor[12 * t + k];
            kagi__om[t][u] = a;
        }
}

/* Division by s_i of a block of 2^(i+1) coefficients, in place: for each
 * lower term X^(2^j) of s_i, coefficient d feeds d - (2^i - 2^j). The lag
 * is at least half of 2^i, so each half of the top half is one pass.
 * mode 0: divide (top quarter first, f[d-lag] ^= f[d]);
 * mode 1: its transpose (other quarter first, f[d] ^= f[d-lag]);
 * mode 2: transpose of the inverse, multiplying back by s_i (which runs
 *         the lower quarter first): top quarter first, f[d] ^= f[d-lag]. */
static void kagi__divide(uint64_t *f, int i, int mode)
{
    if (i == 0) return;
    size_t h = (size_t)1 << i, half = h >> 1;
    for (int pass = 0; pass < 2; pass++) {
        size_t c0 = (pass == 0) == (mode != 1) ? h + half : h;
        for (unsigned j = 0; j < (unsigned)i; j++) {
            if ((j & (unsigned)i) != j) continue;
            size_t lag = h - ((size_t)1 << j);
            uint64_t *hi = f + c0, *lo = f + c0 - lag;
            if (mode == 0)
                kagi__xor2(lo, hi, half);
            else
                kagi__xor2(hi, lo, half);
        }
    }
}

/* Portable transforms, one butterfly layer at a time down to single
 * elements. The fast path below does the same arithmetic on vectors. */
typedef uint64_t (*kagi__mulfn)(uint64_t, uint64_t);

static void kagi__fwd_s(kagi__mulfn mul, uint64_t *f, int i, size_t t)
{
    size_t h = (size_t)1 << i;
    uint64_t c = kagi__omega(2 * t);
    kagi__divide(f, i, 0);
    for (size_t k = 0; k < h; k++) {
        f[k] ^= mul(f[h + k], c);
        f[h + k] ^= f[k];
    }
    if (i > 0) {
        kagi__fwd_s(mul, f, i - 1, 2 * t);
        kagi__fwd_s(mul, f + h, i - 1, 2 * t + 1);
    }
}

/* Transpose of fwd: children first, butterflies and division transposed. */
static void kagi__fwdT_s(kagi__mulfn mul, uint64_t *f, int i, size_t t)
{
    size_t h = (size_t)1 << i;
    uint64_t c = kagi__omega(2 * t);
    if (i > 0) {
        kagi__fwdT_s(mul, f, i - 1, 2 * t);
        kagi__fwdT_s(mul, f + h, i - 1, 2 * t + 1);
    }
    for (size_t k = 0; k < h; k++) {
        f[k] ^= f[h + k];
        f[h + k] ^= mul(f[k], c);
    }
    kagi__divide(f, i, 1);
}

/* Transpose of the inverse transform (inverse: children, then b ^= a,
 * a ^= c b, then multiply back by s_i). */
static void kagi__invT_s(kagi__mulfn mul, uint64_t *f, int i, size_t t)
{
    size_t h = (size_t)1 << i;
    uint64_t c = kagi__omega(2 * t);
    kagi__divide(f, i, 2);
    for (size_t k = 0; k < h; k++) {
        f[h + k] ^= mul(f[k], c);
        f[k] ^= f[h + k];
    }
    if (i > 0) {
        kagi__invT_s(mul, f, i - 1, 2 * t);
        kagi__invT_s(mul, f + h, i - 1, 2 * t + 1);
    }
}

#if KAGI__X86
KAGI__T_PCL static uint64_t kagi__gf_mul_p(uint64_t a, uint64_t b)
{
    __m128i p = _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)a), _mm_cvtsi64_si128((long long)b), 0);
    return kagi__gf_red((uint64_t)_mm_cvtsi128_si64(p), (uint64_t)_mm_extract_epi64(p, 1));
}

#define KAGI__LD(p) _mm256_loadu_si256((const __m256i *)(p))
#define KAGI__ST(p, v) _mm256_storeu_si256((__m256i *)(p), (v))

KAGI__T_VEC static inline __m256i kagi__vred(__m256i lo, __m256i hi)
{
    __m256i h = hi ^ _mm256_srli_epi64(hi, 63) ^ _mm256_srli_epi64(hi, 61) ^ _mm256_srli_epi64(hi, 60);
    return lo ^ h ^ _mm256_slli_epi64(h, 1) ^ _mm256_slli_epi64(h, 3) ^ _mm256_slli_epi64(h, 4);
}

/* Four products a_k * b_k. */
KAGI__T_VEC static inline __m256i kagi__vmul(__m256i a, __m256i b)
{
    __m256i p0 = _mm256_clmulepi64_epi128(a, b, 0x00), p1 = _mm256_clmulepi64_epi128(a, b, 0x11);
    return kagi__vred(_mm256_unpacklo_epi64(p0, p1), _mm256_unpackhi_epi64(p0, p1));
}

/* Four products a_k * c with c broadcast: one operand half suffices. */
KAGI__T_VEC static inline __m256i kagi__vmulc(__m256i a, __m256i c)
{
    __m256i p0 = _mm256_clmulepi64_epi128(a, c, 0x00), p1 = _mm256_clmulepi64_epi128(a, c, 0x01);
    return kagi__vred(_mm256_unpacklo_epi64(p0, p1), _mm256_unpackhi_epi64(p0, p1));
}

KAGI__T_VEC static inline void kagi__tr4(__m256i *r0, __m256i *r1, __m256i *r2, __m256i *r3)
{
    __m256i t0 = _mm256_unpacklo_epi64(*r0, *r1), t1 = _mm256_unpackhi_epi64(*r0, *r1);
    __m256i t2 = _mm256_unpacklo_epi64(*r2, *r3), t3 = _mm256_unpackhi_epi64(*r2, *r3);
    *r0 = _mm256_permute2x128_si256(t0, t2, 0x20);
    *r2 = _mm256_permute2x128_si256(t0, t2, 0x31);
    *r1 = _mm256_permute2x128_si256(t1, t3, 0x20);
    *r3 = _mm256_permute2x128_si256(t1, t3, 0x31);
}

/* Butterflies of layer i over a block at index t. kind 0: fwd
 * (a ^= c b, b ^= a); 1: fwd^T (a ^= b, b ^= c a); 2: inv^T (b ^= c a,
 * a ^= b). */
KAGI__T_VEC static void kagi__bfly_v(uint64_t *f, int i, size_t t, int kind)
{
    size_t h = (size_t)1 << i;
    __m256i c = _mm256_set1_epi64x((long long)kagi__omega(2 * t));
    for (size_t k = 0; k < h; k += 4) {
        __m256i a = KAGI__LD(f + k), b = KAGI__LD(f + h + k);
        if (kind == 0) {
            a ^= kagi__vmulc(b, c);
            b ^= a;
        } else if (kind == 1) {
            a ^= b;
            b ^= kagi__vmulc(a, c);
        } else {
            b ^= kagi__vmulc(a, c);
            a ^= b;
        }
        KAGI__ST(f + k, a);
        KAGI__ST(f + h + k, b);
    }
}

/* Layers 2, 1, 0 of four consecutive blocks of 8 (32 elements; t is the
 * index of the enclosing layer-4 block), transposed into registers so that
 * lane q holds block q. Twiddles: layer 2 block q: w_(8t+2q); layer 1:
 * w_(16t+4q+2r); layer 0: w_(32t+8q+4r+2e), all linear in the index. */
typedef struct kagi__tw {
    __m256i c2, c1a, c1b, c00, c01, c10, c11;
} kagi__tw;

KAGI__T_VEC static inline void kagi__twiddles(kagi__tw *w, size_t t)
{
    const uint64_t *v = kagi__cantor;
#define KAGI__LANES(a, b) _mm256_set_epi64x((long long)((a) ^ (b)), (long long)(b), (long long)(a), 0)
    w->c2 = _mm256_set1_epi64x((long long)kagi__omega(8 * t)) ^ KAGI__LANES(v[1], v[2]);
    w->c1a = _mm256_set1_epi64x((long long)kagi__omega(16 * t)) ^ KAGI__LANES(v[2], v[3]);
    w->c00 = _mm256_set1_epi64x((long long)kagi__omega(32 * t)) ^ KAGI__LANES(v[3], v[4]);
#undef KAGI__LANES
    __m256i v1 = _mm256_set1_epi64x((long long)v[1]), v2 = _mm256_set1_epi64x((long long)v[2]);
    w->c1b = w->c1a ^ v1;
    w->c01 = w->c00 ^ v1;
    w->c10 = w->c00 ^ v2;
    w->c11 = w->c01 ^ v2;
}

#define KAGI__LOAD8                                                                  \
    __m256i e0 = KAGI__LD(f), e4 = KAGI__LD(f + 4), e1 = KAGI__LD(f + 8), e5 = KAGI__LD(f + 12), \
            e2 = KAGI__LD(f + 16), e6 = KAGI__LD(f + 20), e3 = KAGI__LD(f + 24),              \
            e7 = KAGI__LD(f + 28);                                                    \
    kagi__tr4(&e0, &e1, &e2, &e3);                                                    \
    kagi__tr4(&e4, &e5, &e6, &e7)
#define KAGI__STORE8                                                                 \
    kagi__tr4(&e0, &e1, &e2, &e3);                                                    \
    kagi__tr4(&e4, &e5, &e6, &e7);                                                    \
    KAGI__ST(f, e0);                                                                  \
    KAGI__ST(f + 4, e4);                                                              \
    KAGI__ST(f + 8, e1);                                                              \
    KAGI__ST(f + 12, e5);                                                             \
    KAGI__ST(f + 16, e2);                                                             \
    KAGI__ST(f + 20, e6);                                                             \
    KAGI__ST(f + 24, e3);                                                             \
    KAGI__ST(f + 28, e7)

KAGI__T_VEC static void kagi__bottom_fwd(uint64_t *f, size_t t)
{
    kagi__tw w;
    kagi__twiddles(&w, t);
    KAGI__LOAD8;
    /* layer 2: divide by X^4 + X, butterflies */
    e4 ^= e7; e3 ^= e6; e2 ^= e5; e1 ^= e4;
    e0 ^= kagi__vmul(e4, w.c2); e1 ^= kagi__vmul(e5, w.c2);
    e2 ^= kagi__vmul(e6, w.c2); e3 ^= kagi__vmul(e7, w.c2);
    e4 ^= e0; e5 ^= e1; e6 ^= e2; e7 ^= e3;
    /* layer 1: divide by X^2 + X, butterflies */
    e2 ^= e3; e1 ^= e2; e6 ^= e7; e5 ^= e6;
    e0 ^= kagi__vmul(e2, w.c1a); e1 ^= kagi__vmul(e3, w.c1a); e2 ^= e0; e3 ^= e1;
    e4 ^= kagi__vmul(e6, w.c1b); e5 ^= kagi__vmul(e7, w.c1b); e6 ^= e4; e7 ^= e5;
    /* layer 0 */
    e0 ^= kagi__vmul(e1, w.c00); e1 ^= e0;
    e2 ^= kagi__vmul(e3, w.c01); e3 ^= e2;
    e4 ^= kagi__vmul(e5, w.c10); e5 ^= e4;
    e6 ^= kagi__vmul(e7, w.c11); e7 ^= e6;
    KAGI__STORE8;
}

/* The same steps in reverse order, each transposed. */
KAGI__T_VEC static void kagi__bottom_fwdT(uint64_t *f, size_t t)
{
    kagi__tw w;
    kagi__twiddles(&w, t);
    KAGI__LOAD8;
    e6 ^= e7; e7 ^= kagi__vmul(e6, w.c11);
    e4 ^= e5; e5 ^= kagi__vmul(e4, w.c10);
    e2 ^= e3; e3 ^= kagi__vmul(e2, w.c01);
    e0 ^= e1; e1 ^= kagi__vmul(e0, w.c00);
    e5 ^= e7; e4 ^= e6; e7 ^= kagi__vmul(e5, w.c1b); e6 ^= kagi__vmul(e4, w.c1b);
    e1 ^= e3; e0 ^= e2; e3 ^= kagi__vmul(e1, w.c1a); e2 ^= kagi__vmul(e0, w.c1a);
    e6 ^= e5; e7 ^= e6; e2 ^= e1; e3 ^= e2;
    e0 ^= e4; e1 ^= e5; e2 ^= e6; e3 ^= e7;
    e4 ^= kagi__vmul(e0, w.c2); e5 ^= kagi__vmul(e1, w.c2);
    e6 ^= kagi__vmul(e2, w.c2); e7 ^= kagi__vmul(e3, w.c2);
    e4 ^= e1; e5 ^= e2; e6 ^= e3; e7 ^= e4;
    KAGI__STORE8;
}

/* Transpose of the inverse's bottom layers: the inverse runs layer 0, 1,
 * 2 (b ^= a; a ^= c b; then multiply back), so this runs 2, 1, 0. */
KAGI__T_VEC static void kagi__bottom_invT(uint64_t *f, size_t t)
{
    kagi__tw w;
    kagi__twiddles(&w, t);
    KAGI__LOAD8;
    e7 ^= e4; e6 ^= e3; e5 ^= e2; e4 ^= e1;
    e4 ^= kagi__vmul(e0, w.c2); e5 ^= kagi__vmul(e1, w.c2);
    e6 ^= kagi__vmul(e2, w.c2); e7 ^= kagi__vmul(e3, w.c2);
    e0 ^= e4; e1 ^= e5; e2 ^= e6; e3 ^= e7;
    e7 ^= e6; e6 ^= e5; e3 ^= e2; e2 ^= e1;
    e7 ^= kagi__vmul(e5, w.c1b); e6 ^= kagi__vmul(e4, w.c1b); e5 ^= e7; e4 ^= e6;
    e3 ^= kagi__vmul(e1, w.c1a); e2 ^= kagi__vmul(e0, w.c1a); e1 ^= e3; e0 ^= e2;
    e7 ^= kagi__vmul(e6, w.c11); e6 ^= e7;
    e5 ^= kagi__vmul(e4, w.c10); e4 ^= e5;
    e3 ^= kagi__vmul(e2, w.c01); e2 ^= e3;
    e1 ^= kagi__vmul(e0, w.c00); e0 ^= e1;
    KAGI__STORE8;
}

/* Vector transforms for layers i >= 4 (blocks of 32 and more). Only the
 * first nz inputs of fwd may be non-zero: while nz fits in the lower half,
 * the division has nothing to move and the butterflies copy it up. */
KAGI__T_VEC static void kagi__fwd_v(uint64_t *f, int i, size_t t, size_t nz)
{
    size_t h = (size_t)1 << i;
    if (i > 4 && nz <= h) {
        memcpy(f + h, f, h * sizeof *f);
        kagi__fwd_v(f, i - 1, 2 * t, nz);
        kagi__fwd_v(f + h, i - 1, 2 * t + 1, nz);
        return;
    }
    kagi__divide(f, i, 0);
    kagi__bfly_v(f, i, t, 0);
    if (i == 4) {
        kagi__divide(f, 3, 0);
        kagi__bfly_v(f, 3, 2 * t, 0);
        kagi__divide(f + 16, 3, 0);
        kagi__bfly_v(f + 16, 3, 2 * t + 1, 0);
        kagi__bottom_fwd(f, t);
        return;
    }
    kagi__fwd_v(f, i - 1, 2 * t, nz);
    kagi__fwd_v(f + h, i - 1, 2 * t + 1, nz);
}

/* Only the first need outputs of fwd^T are wanted: while they lie in the
 * lower half, the last butterfly step and the division touch only the
 * upper half and are skipped, and each child owes only need outputs. */
KAGI__T_VEC static void kagi__fwdT_v(uint64_t *f, int i, size_t t, size_t need)
{
    size_t h = (size_t)1 << i;
    if (i > 4 && need <= h) {
        kagi__fwdT_v(f, i - 1, 2 * t, need);
        kagi__fwdT_v(f + h, i - 1, 2 * t + 1, need);
        kagi__xor2(f, f + h, need);
        return;
    }
    if (i == 4) {
        kagi__bottom_fwdT(f, t);
        kagi__bfly_v(f + 16, 3, 2 * t + 1, 1);
        kagi__divide(f + 16, 3, 1);
        kagi__bfly_v(f, 3, 2 * t, 1);
        kagi__divide(f, 3, 1);
    } else {
        kagi__fwdT_v(f, i - 1, 2 * t, need);
        kagi__fwdT_v(f + h, i - 1, 2 * t + 1, need);
    }
    kagi__bfly_v(f, i, t, 1);
    kagi__divide(f, i, 1);
}

KAGI__T_VEC static void kagi__invT_v(uint64_t *f, int i, size_t t)
{
    kagi__divide(f, i, 2);
    kagi__bfly_v(f, i, t, 2);
    if (i == 4) {
        kagi__divide(f + 16, 3, 2);
        kagi__bfly_v(f + 16, 3, 2 * t + 1, 2);
        kagi__divide(f, 3, 2);
        kagi__bfly_v(f, 3, 2 * t, 2);
        kagi__bottom_invT(f, t);
        return;
    }
    size_t h = (size_t)1 << i;
    kagi__invT_v(f, i - 1, 2 * t);
    kagi__invT_v(f + h, i - 1, 2 * t + 1);
}

KAGI__T_VEC static void kagi__pmul_acc_v(uint64_t *acc, const uint64_t *a, const uint64_t *b, size_t n)
{
    for (size_t k = 0; k < n; k += 4)
        KAGI__ST(acc + k, KAGI__LD(acc + k) ^ kagi__vmul(KAGI__LD(a + k), KAGI__LD(b + k)));
}

/* One block on several threads: a transform's top layer runs on one
 * thread, then its two halves, independent from there down, on two
 * (depth d splits d levels: 2^d threads). Same arithmetic, same order
 * within each half, so the result is bit for bit that of one thread. */
enum { KAGI__T_FWD, KAGI__T_INVT, KAGI__T_FWDT, KAGI__T_PMUL };

typedef struct kagi__ftask {
    int kind, i, depth;
    uint64_t *f;
    const uint64_t *a, *b; /* PMUL: acc f ^= a b over arg elements */
    size_t t, arg;         /* FWD: nz; FWDT: need; PMUL: count */
} kagi__ftask;

static void kagi__ftask_run(const kagi__ftask *x);

typedef struct kagi__fpair {
    kagi__ftask task[2];
    atomic_int next;
} kagi__fpair;

static void *kagi__fpair_worker(void *arg)
{
    kagi__fpair *p = arg;
    for (int k; (k = atomic_fetch_add(&p->next, 1)) < 2;) kagi__ftask_run(&p->task[k]);
    return NULL;
}

/* Both tasks on two threads (the caller's takes whichever the other has
 * not started; it does both if no thread could be started). */
static void kagi__par2(kagi__ftask a, kagi__ftask b)
{
    kagi__fpair p = {.task = {a, b}};
    atomic_init(&p.next, 0);
    kagi__run_threads(2, kagi__fpair_worker, &p);
}

static void kagi__ftask_run(const kagi__ftask *x)
{
    uint64_t *f = x->f;
    int i = x->i;
    size_t t = x->t, h = (size_t)1 << i;
    if (x->kind == KAGI__T_PMUL) {
        if (x->depth <= 0 || x->arg < 4096) {
            kagi__pmul_acc_v(f, x->a, x->b, x->arg);
            return;
        }
        /* halves of the element range, a multiple of 4 each */
        size_t half = x->arg / 8 * 4;
        kagi__ftask lo = *x, hi = *x;
        lo.depth = hi.depth = x->depth - 1;
        lo.arg = half;
        hi.arg = x->arg - half;
        hi.f += half;
        hi.a += half;
        hi.b += half;
        kagi__par2(lo, hi);
        return;
    }
    /* small blocks, or no split left: the one-thread kernels */
    if (x->depth <= 0 || i <= 8) {
        if (x->kind == KAGI__T_FWD) kagi__fwd_v(f, i, t, x->arg);
        else if (x->kind == KAGI__T_INVT) kagi__invT_v(f, i, t);
        else kagi__fwdT_v(f, i, t, x->arg);
        return;
    }
    /* as kagi__fwd_v, kagi__invT_v and kagi__fwdT_v, the halves on two threads */
    kagi__ftask lo = {x->kind, i - 1, x->depth - 1, f, NULL, NULL, 2 * t, x->arg}, hi = lo;
    hi.f = f + h;
    hi.t = 2 * t + 1;
    if (x->kind == KAGI__T_FWD) {
        if (x->arg <= h) {
            memcpy(f + h, f, h * sizeof *f);
        } else {
            kagi__divide(f, i, 0);
            kagi__bfly_v(f, i, t, 0);
        }
        kagi__par2(lo, hi);
    } else if (x->kind == KAGI__T_INVT) {
        kagi__divide(f, i, 2);
        kagi__bfly_v(f, i, t, 2);
        kagi__par2(lo, hi);
    } else {
        kagi__par2(lo, hi);
        if (x->arg <= h) {
            kagi__xor2(f, f + h, x->arg);
        } else {
            kagi__bfly_v(f, i, t, 1);
            kagi__divide(f, i, 1);
        }
    }
}
#endif

/* Smallest transform this code runs (the vector kernels need blocks of 32). */
enum { KAGI__FFT_MINL = 5, KAGI__FFT_MAXL = 36 };

typedef struct kagi__plan {
    size_t k, B, nx, ns; /* key pieces, bits per piece, 32-bit chunks of a piece and its seed slice */
    int L;
} kagi__plan;

/* The key is cut into k pieces of B bits (a multiple of 32); piece c meets
 * the seed slice starting at bit n - (c+1)B. Each piece costs a forward
 * transform and a transposed inverse one, plus one final transform: cost
 * about (2k+1) L 2^L with 2^L >= (B + m) / 32 elements. */
static kagi__plan kagi__plan_fft(size_t n, size_t m)
{
    kagi__plan best = {0, 0, 0, 0, 0};
    double best_cost = 0;
    for (size_t k = 1; k <= 64 && k <= n; k++) {
        size_t B = ((n + k - 1) / k + 31) / 32 * 32;
        size_t ns = (B + m + 31) / 32;
        int L = KAGI__FFT_MINL;
        while (((size_t)1 << L) < ns) L++;
        double cost = (double)(2 * k + 1) * L * (double)((size_t)1 << L);
        if (L <= KAGI__FFT_MAXL && (best.k == 0 || cost < best_cost)) {
            best = (kagi__plan){k, B, B / 32, ns, L};
            best_cost = cost;
        }
    }
    return best;
}

static int kagi__toeplitz_fft_mt(const uint64_t *seed, const uint64_t *x, size_t n, size_t m,
                                 uint64_t *y, int level, int depth);

int kagi__toeplitz_fft(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                       int level)
{
    return kagi__toeplitz_fft_mt(seed, x, n, m, y, level, 0);
}

/* depth: split each transform over 2^depth threads (vector level only). */
static int kagi__toeplitz_fft_mt(const uint64_t *seed, const uint64_t *x, size_t n, size_t m,
                                 uint64_t *y, int level, int depth)
{
    pthread_once(&kagi__fft_once, kagi__fft_init);
    kagi__plan p = kagi__plan_fft(n, m);
    KAGI__FAIL_IF(p.k == 0, KAGI_ERR_ARG, "kagi_toeplitz: n=%zu is too large for the transform", n);
    size_t N = (size_t)1 << p.L, total = 3 * N;
    uint64_t *buf = malloc(total * sizeof *buf);
    KAGI__FAIL_IF(!buf, KAGI_ERR_NOMEM, "kagi_toeplitz: cannot allocate %zu MB of transform space",
                  total * sizeof *buf >> 20);
    uint64_t *acc = buf, *tx = acc + N, *ts = tx + N;
    memset(acc, 0, N * sizeof *acc);
    size_t sbits = n + m - 1;
    kagi__mulfn mul = kagi__gf_mul_c;
#if KAGI__X86
    if (level >= 1) mul = kagi__gf_mul_p;
#endif
    for (size_t c = 0; c < p.k; c++) {
        /* Key piece c as a polynomial in Z = z^32, chunks reversed so that
         * the transposed product yields the key-times-seed coefficients. */
        long long x0 = (long long)(c * p.B);
        memset(tx, 0, N * sizeof *tx);
        for (size_t j = 0; j < p.nx; j++)
            tx[j] = kagi__get64(x, n, x0 + 32 * (long long)(p.nx - 1 - j)) & 0xffffffffu;
        /* Seed slice moved up one bit, so that output bit 0 falls on a
         * chunk boundary (bit B of the slice-times-piece product). */
        long long s0 = (long long)n - (long long)((c + 1) * p.B) - 1;
        memset(ts, 0, N * sizeof *ts);
        for (size_t q = 0; q < p.ns; q++)
            ts[q] = kagi__get64(seed, sbits, s0 + 32 * (long long)q) & 0xffffffffu;
#if KAGI__X86
        if (level == 2) {
            kagi__ftask f1 = {KAGI__T_FWD, p.L - 1, depth, tx, NULL, NULL, 0, p.nx},
                        f2 = {KAGI__T_INVT, p.L - 1, depth, ts, NULL, NULL, 0, 0},
                        f3 = {KAGI__T_PMUL, 0, depth, acc, tx, ts, 0, N};
            kagi__ftask_run(&f1);
            kagi__ftask_run(&f2);
            kagi__ftask_run(&f3);
            continue;
        }
#endif
        kagi__fwd_s(mul, tx, p.L - 1, 0);
        kagi__invT_s(mul, ts, p.L - 1, 0);
        for (size_t u = 0; u < N; u++) acc[u] ^= mul(tx[u], ts[u]);
    }
#if KAGI__X86
    if (level == 2) {
        kagi__ftask f4 = {KAGI__T_FWDT, p.L - 1, depth, acc, NULL, NULL, 0, p.ns - p.nx + 1};
        kagi__ftask_run(&f4);
    } else
#endif
        kagi__fwdT_s(mul, acc, p.L - 1, 0);
    /* acc[i] is coefficient i + nx - 1 of the chunk product; output bit
     * 32w + r is bit r of acc[w + 1] plus bit r + 32 of acc[w]. */
    size_t mw = KAGI_WORDS(m);
    memset(y, 0, mw * sizeof *y);
    for (size_t w = 0; 32 * w < m; w++) {
        uint64_t v = (acc[w + 1] & 0xffffffffu) ^ (acc[w] >> 32);
        y[w >> 1] |= v << (32 * (w & 1));
    }
    kagi__mask_tail(y, m);
    kagi__drop(buf, total);
    return KAGI_OK;
}

/* ------------------------------------------------------------------ fast */

/* Karatsuba costs about (n/m) m^1.58, the FFT about n log n, so the FFT
 * wins for long outputs, and for shorter ones when the key is much longer.
 * Crossovers measured on an AMD EPYC with VPCLMULQDQ (docs/amplify.md). */
static int kagi__use_fft(size_t n, size_t m)
{
    size_t mw = KAGI_WORDS(m);
    return mw >= 1024 || (mw >= 384 && n >= 4 * m);
}

int kagi_toeplitz(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y)
{
    KAGI__TRY(kagi__check("kagi_toeplitz", n, m));
    int level = kagi__cpu_level();
    if (kagi__use_fft(n, m)) return kagi__toeplitz_fft(seed, x, n, m, y, level);
    return kagi__toeplitz_kara(seed, x, n, m, y, level);
}

int kagi_toeplitz_mt(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                     int threads)
{
    KAGI__TRY(kagi__check("kagi_toeplitz_mt", n, m));
    int level = kagi__cpu_level(), depth = 0;
    while (depth < 6 && (2 << depth) <= threads) depth++;
    /* the split needs the vector kernels; small blocks gain nothing */
    if (level < 2 || depth == 0 || !kagi__use_fft(n, m) || n < ((size_t)1 << 20))
        return kagi_toeplitz(seed, x, n, m, y);
    return kagi__toeplitz_fft_mt(seed, x, n, m, y, level, depth);
}

/* ----------------------------------------------------------------- batch */

typedef struct kagi__batch {
    kagi_toeplitz_job *jobs;
    size_t count;
    atomic_size_t next;
    pthread_mutex_t mu;
    size_t first_bad;            /* lowest failed index, count if none */
    char detail[256];            /* its detail: details are per thread */
} kagi__batch;

static void *kagi__worker(void *arg)
{
    kagi__batch *b = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&b->next, 1);
        if (i >= b->count) break;
        kagi_toeplitz_job *j = &b->jobs[i];
        j->rc = kagi_toeplitz(j->seed, j->x, j->n, j->m, j->y);
        if (j->rc != KAGI_OK) {
            pthread_mutex_lock(&b->mu);
            if (i < b->first_bad) {
                b->first_bad = i;
                snprintf(b->detail, sizeof b->detail, "%s", kagi_errdetail());
            }
            pthread_mutex_unlock(&b->mu);
        }
    }
    return NULL;
}

int kagi_toeplitz_batch(kagi_toeplitz_job *jobs, size_t count, int threads)
{
    KAGI__FAIL_IF(!jobs && count, KAGI_ERR_ARG, "kagi_toeplitz_batch: jobs is NULL but count=%zu", count);
    for (size_t i = 0; i < count; i++) {
        kagi_toeplitz_job *j = &jobs[i];
        char fn[64];
        snprintf(fn, sizeof fn, "kagi_toeplitz_batch: job %zu", i);
        int rc = !j->seed || !j->x || !j->y
                     ? kagi__err(KAGI_ERR_ARG, "%s: seed, x and y must not be NULL", fn)
                     : kagi__check(fn, j->n, j->m);
        if (rc != KAGI_OK) {
            for (size_t q = 0; q < count; q++) jobs[q].rc = rc;
            return rc;
        }
    }
    if (count == 0) return KAGI_OK;
    if (threads <= 0) threads = (int)kagi__cpus(1024);
    if ((size_t)threads > count) threads = (int)count;
    kagi__batch b = {.jobs = jobs, .count = count, .first_bad = count};
    atomic_init(&b.next, 0);
    pthread_mutex_init(&b.mu, NULL);
    kagi__run_threads((unsigned)threads, kagi__worker, &b);
    pthread_mutex_destroy(&b.mu);
    if (b.first_bad < count)
        return kagi__err(jobs[b.first_bad].rc, "kagi_toeplitz_batch: job %zu: %s", b.first_bad, b.detail);
    return KAGI_OK;
}
