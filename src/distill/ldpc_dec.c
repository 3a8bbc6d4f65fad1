/* Layered normalised min-sum decoder for the quasi-cyclic codes of
 * ldpc.c: int16 posteriors, int8 messages.
 *
 * A layer is one block row of H: z checks, each meeting exactly one bit of
 * every block column in the row, so the z checks are updated side by side
 * (32 lanes per AVX2 step): lane r of circulant (i, j, s) reads bit
 * j*z + (r + s) % z. Per lane and circulant k:
 *   q_k = L - R_k (int16, exact); c_k = q_k clamped to [-127, 127]
 *   m1, m2 = two smallest |c_k|, idx = first k reaching m1, sign = xor of
 *            the signs and of the check's syndrome bit
 *   R_k' = +-((k == idx ? m2 : m1) * alpha16 >> 4)       (int8)
 *   L' = q_k + R_k'                                     (int16, exact)
 * L = channel + sum of the current R of the bit is never saturated
 * (|L| <= 126 + 64 * 127), so no information is lost between layers; a
 * known bit starts at 16384 and stays far above every threshold. The
 * scalar and AVX2 kernels do exactly this integer arithmetic, so they agree
 * bit for bit (tests/test_ldpc.c checks it). After every iteration the
 * syndrome of the hard decision is checked block row by block row,
 * stopping at the first row that differs (docs/ldpc.md, "Decoder"). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/ldpc.h"
#include "ldpc_int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KAGI__LDPC_X86 1
#define KAGI__T_AVX2 __attribute__((target("avx2")))
#else
#define KAGI__LDPC_X86 0
#endif

struct kagi_ldpc_decoder {
    const kagi_ldpc_code *c;
    int impl;
    unsigned alpha;
    int16_t *L;     /* n posteriors */
    int8_t *R;      /* ncirc * z check-to-bit messages */
    int8_t *S8;     /* m: -128 where the target syndrome bit is 1 */
    uint64_t *syn;  /* target syndrome, m bits */
    uint64_t *chk;  /* syndrome of the hard decision */
};

/* Whether this CPU runs the AVX2 kernel; asked once (decoders are made in
 * several threads at a time). */
static int kagi__has_avx2(void)
{
#if KAGI__LDPC_X86
    static atomic_int cached = -1;
    int v = atomic_load(&cached);
    if (v < 0) {
        static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&mu);
        v = atomic_load(&cached);
        if (v < 0) {
            __builtin_cpu_init();
            v = __builtin_cpu_supports("avx2") ? 1 : 0;
            atomic_store(&cached, v);
        }
        pthread_mutex_unlock(&mu);
    }
    return v;
#else
    return 0;
#endif
}

void kagi_ldpc_decoder_free(kagi_ldpc_decoder *d)
{
    if (!d) return;
    /* Posteriors and messages say much about Bob's key: wipe them. */
    if (d->L) kagi__wipe(d->L, d->c->n * sizeof *d->L);
    if (d->R) kagi__wipe(d->R, d->c->ncirc * d->c->z);
    free(d->L);
    free(d->R);
    free(d->S8);
    free(d->syn);
    free(d->chk);
    free(d);
}

/* 64-byte aligned, size rounded up to 64. */
static void *kagi__amalloc(size_t n) { return aligned_alloc(64, (n + 63) & ~(size_t)63); }

int kagi_ldpc_decoder_new(kagi_ldpc_decoder **out, const kagi_ldpc_code *c, int impl, unsigned alpha16)
{
    *out = NULL;
    KAGI__FAIL_IF(impl < KAGI_LDPC_IMPL_AUTO || impl > KAGI_LDPC_IMPL_AVX2, KAGI_ERR_ARG,
                  "ldpc: decoder kind %d", impl);
    KAGI__FAIL_IF(alpha16 > 16, KAGI_ERR_ARG, "ldpc: normalisation %u/16 above 1", alpha16);
    KAGI__FAIL_IF(c->nb > 128, KAGI_ERR_ARG, "ldpc: %u block columns (at most 128)", c->nb);
    if (impl == KAGI_LDPC_IMPL_AUTO) impl = kagi__has_avx2() ? KAGI_LDPC_IMPL_AVX2 : KAGI_LDPC_IMPL_SCALAR;
    KAGI__FAIL_IF(impl == KAGI_LDPC_IMPL_AVX2 && !kagi__has_avx2(), KAGI_ERR_ARG,
                  "ldpc: this CPU has no AVX2");
    kagi_ldpc_decoder *d = calloc(1, sizeof *d);
    if (!d) return kagi__err(KAGI_ERR_NOMEM, "ldpc: decoder");
    d->c = c;
    d->impl = impl;
    d->alpha = alpha16 ? alpha16 : kagi__ldpc_default_alpha(c->rate_pct);
    d->L = kagi__amalloc(c->n * sizeof *d->L);
    d->R = kagi__amalloc(c->ncirc * c->z);
    d->S8 = kagi__amalloc(c->m);
    d->syn = calloc(KAGI_WORDS(c->m), 8);
    d->chk = calloc(KAGI_WORDS(c->m), 8);
    if (!d->L || !d->R || !d->S8 || !d->syn || !d->chk) {
        kagi_ldpc_decoder_free(d);
        return kagi__err(KAGI_ERR_NOMEM, "ldpc: decoder for %zu bits", c->n);
    }
    *out = d;
    return KAGI_OK;
}

int kagi_ldpc_decoder_impl(const kagi_ldpc_decoder *d) { return d->impl; }

void kagi_ldpc_decoder_start(kagi_ldpc_decoder *d, const int8_t *llr, const uint64_t *syn)
{
    const kagi_ldpc_code *c = d->c;
    for (size_t v = 0; v < c->n; v++) d->L[v] = llr[v] == KAGI__LDPC_PIN ? KAGI__LDPC_PIN16 : llr[v];
    memset(d->R, 0, c->ncirc * c->z);
    memcpy(d->syn, syn, KAGI_WORDS(c->m) * 8);
    for (size_t i = 0; i < c->m; i++) d->S8[i] = (syn[i >> 6] >> (i & 63)) & 1 ? -128 : 0;
}

int kagi_ldpc_decoder_fix(kagi_ldpc_decoder *d, size_t v, int flip)
{
    const kagi_ldpc_code *c = d->c;
    KAGI__FAIL_IF(v >= c->n, KAGI_ERR_ARG, "ldpc: bit %zu of a %zu-bit frame", v, c->n);
    d->L[v] = KAGI__LDPC_PIN16;
    if (!flip) return KAGI_OK;
    uint32_t j = (uint32_t)(v / c->z), t = (uint32_t)(v % c->z);
    for (uint32_t k = c->col_ptr[j]; k < c->col_ptr[j + 1]; k++) {
        uint32_t e = c->col_edge[k], sh = c->shift[e];
        size_t ch = (size_t)c->erow[e] * c->z + (t >= sh ? t - sh : t + c->z - sh);
        d->syn[ch >> 6] ^= (uint64_t)1 << (ch & 63);
        d->S8[ch] = (int8_t)(d->S8[ch] ^ -128);
    }
    return KAGI_OK;
}

/* ------------------------------------------------------ scalar kernel */

static void kagi__layer_scalar(kagi_ldpc_decoder *d, uint32_t i)
{
    const kagi_ldpc_code *c = d->c;
    const uint32_t z = c->z, e0 = c->row_ptr[i], dc = c->row_ptr[i + 1] - e0;
    const int alpha = (int)d->alpha;
    int16_t *L = d->L;
    for (uint32_t r = 0; r < z; r++) {
        int m1 = 127, m2 = 127, idx = 0;
        int sg = d->S8[(size_t)i * z + r];
        /* Messages of a layer are stored chunk by chunk: 32 lanes of
         * circulant 0, 32 of circulant 1, ... (as the AVX2 kernel reads them). */
        int8_t *Rc = d->R + (size_t)e0 * z + (size_t)(r / 32) * dc * 32 + (r % 32);
        for (uint32_t k = 0; k < dc; k++) {
            uint32_t e = e0 + k, p = r + c->shift[e];
            if (p >= z) p -= z;
            int q = L[(size_t)c->col[e] * z + p] - Rc[k * 32];
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            int a = q < 0 ? -q : q;
            sg ^= q;
            if (a < m1) {
                m2 = m1;
                m1 = a;
                idx = (int)k;
            } else if (a < m2) {
                m2 = a;
            }
        }
        int s1 = (m1 * alpha) >> 4, s2 = (m2 * alpha) >> 4;
        for (uint32_t k = 0; k < dc; k++) {
            uint32_t e = e0 + k, p = r + c->shift[e];
            if (p >= z) p -= z;
            int16_t *Lp = &L[(size_t)c->col[e] * z + p];
            int8_t *Rp = &Rc[k * 32];
            int q = *Lp - *Rp, qc = q > 127 ? 127 : q < -127 ? -127 : q;
            int mag = (int)k == idx ? s2 : s1;
            int rn = (sg ^ qc) & 0x80 ? -mag : mag;
            *Rp = (int8_t)rn;
            *Lp = (int16_t)(q + rn);
        }
    }
}

/* Hard decision: bit v is 1 where L[v] < 0. */
static void kagi__hard_scalar(const int16_t *L, size_t n, uint64_t *out)
{
    for (size_t w = 0; w < n / 64; w++) {
        uint64_t b = 0;
        for (unsigned t = 0; t < 64; t++) b |= (uint64_t)(L[w * 64 + t] < 0) << t;
        out[w] = b;
    }
}

/* -------------------------------------------------------- AVX2 kernel */

#if KAGI__LDPC_X86
/* 32 posteriors of block base from lane p on, wrapping at z. */
KAGI__T_AVX2 static inline void kagi__ld16(const int16_t *base, uint32_t p, uint32_t z, __m256i *a, __m256i *b)
{
    if (p + 32 <= z) {
        *a = _mm256_loadu_si256((const __m256i *)(base + p));
        *b = _mm256_loadu_si256((const __m256i *)(base + p + 16));
        return;
    }
    int16_t t[32];
    uint32_t n1 = z - p;
    memcpy(t, base + p, n1 * 2);
    memcpy(t + n1, base, (32 - n1) * 2);
    *a = _mm256_loadu_si256((const __m256i *)t);
    *b = _mm256_loadu_si256((const __m256i *)(t + 16));
}

KAGI__T_AVX2 static inline void kagi__st16(int16_t *base, uint32_t p, uint32_t z, __m256i a, __m256i b)
{
    if (p + 32 <= z) {
        _mm256_storeu_si256((__m256i *)(base + p), a);
        _mm256_storeu_si256((__m256i *)(base + p + 16), b);
        return;
    }
    int16_t t[32];
    uint32_t n1 = z - p;
    _mm256_storeu_si256((__m256i *)t, a);
    _mm256_storeu_si256((__m256i *)(t + 16), b);
    memcpy(base + p, t, n1 * 2);
    memcpy(base, t + n1, (32 - n1) * 2);
}

/* (m * alpha) >> 4 per byte, m in [0, 127]. */
KAGI__T_AVX2 static inline __m256i kagi__scale(__m256i m, __m256i alpha)
{
    __m256i zero = _mm256_setzero_si256();
    __m256i lo = _mm256_srli_epi16(_mm256_mullo_epi16(_mm256_unpacklo_epi8(m, zero), alpha), 4);
    __m256i hi = _mm256_srli_epi16(_mm256_mullo_epi16(_mm256_unpackhi_epi8(m, zero), alpha), 4);
    return _mm256_packus_epi16(lo, hi);
}

/* The rare chunk that wraps at z: 32 posteriors through a small buffer. */
KAGI__T_AVX2 __attribute__((noinline)) static void kagi__ld16w(const int16_t *base, uint32_t p, uint32_t z,
                                                                 __m256i *a, __m256i *b)
{
    kagi__ld16(base, p, z, a, b);
}

KAGI__T_AVX2 __attribute__((noinline)) static void kagi__st16w(int16_t *base, uint32_t p, uint32_t z,
                                                                 __m256i a, __m256i b)
{
    kagi__st16(base, p, z, a, b);
}

KAGI__T_AVX2 static void kagi__layer_avx2(kagi_ldpc_decoder *d, uint32_t i)
{
    const kagi_ldpc_code *c = d->c;
    const uint32_t z = c->z, e0 = c->row_ptr[i], dc = c->row_ptr[i + 1] - e0;
    int16_t *base[KAGI__LDPC_DCMAX];
    /* Lane 0 of the current chunk reads base[k][off[k]]; advanced by 32
     * (mod z) per chunk, so the hot loops do no index arithmetic. */
    uint32_t off[KAGI__LDPC_DCMAX];
    /* Per circulant of the chunk: q as int16 (two vectors) and clamped int8. */
    __m256i q16[2 * KAGI__LDPC_DCMAX], q8[KAGI__LDPC_DCMAX];
    for (uint32_t k = 0; k < dc; k++) {
        base[k] = d->L + (size_t)c->col[e0 + k] * z;
        off[k] = c->shift[e0 + k];
    }
    const __m256i lo = _mm256_set1_epi8(-127), big = _mm256_set1_epi8(127),
                  zero = _mm256_setzero_si256(), one = _mm256_set1_epi8(1),
                  alpha = _mm256_set1_epi16((short)d->alpha);
    const int8_t *S8 = d->S8 + (size_t)i * z;
    int8_t *Rr = d->R + (size_t)e0 * z;
    for (uint32_t r = 0; r < z; r += 32) {
        __m256i m1 = big, m2 = big, idx = zero, kv = zero;
        __m256i sg = _mm256_loadu_si256((const __m256i *)(S8 + r));
        for (uint32_t k = 0; k < dc; k++) {
            uint32_t p = off[k];
            __m256i l0, l1;
            if (__builtin_expect(p <= z - 32, 1)) {
                l0 = _mm256_loadu_si256((const __m256i *)(base[k] + p));
                l1 = _mm256_loadu_si256((const __m256i *)(base[k] + p + 16));
            } else {
                kagi__ld16w(base[k], p, z, &l0, &l1);
            }
            /* Sign-extending loads of the old messages (no shuffles). */
            __m256i a0 = _mm256_sub_epi16(l0, _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(Rr + (size_t)k * 32))));
            __m256i a1 = _mm256_sub_epi16(l1, _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(Rr + (size_t)k * 32 + 16))));
            q16[2 * k] = a0;
            q16[2 * k + 1] = a1;
            __m256i q = _mm256_permute4x64_epi64(_mm256_packs_epi16(a0, a1), 0xd8);
            q = _mm256_max_epi8(q, lo);
            q8[k] = q;
            __m256i a = _mm256_abs_epi8(q);
            sg = _mm256_xor_si256(sg, q);
            __m256i lt = _mm256_cmpgt_epi8(m1, a);
            m2 = _mm256_min_epi8(m2, _mm256_max_epi8(m1, a));
            m1 = _mm256_min_epi8(m1, a);
            idx = _mm256_blendv_epi8(idx, kv, lt);
            kv = _mm256_add_epi8(kv, one);
        }
        __m256i s1 = kagi__scale(m1, alpha), s2 = kagi__scale(m2, alpha);
        kv = zero;
        for (uint32_t k = 0; k < dc; k++) {
            __m256i mag = _mm256_blendv_epi8(s1, s2, _mm256_cmpeq_epi8(idx, kv));
            kv = _mm256_add_epi8(kv, one);
            __m256i rn = _mm256_blendv_epi8(mag, _mm256_sub_epi8(zero, mag), _mm256_xor_si256(sg, q8[k]));
            _mm256_store_si256((__m256i *)(Rr + (size_t)k * 32), rn);
            __m256i l0 = _mm256_add_epi16(q16[2 * k], _mm256_cvtepi8_epi16(_mm256_castsi256_si128(rn)));
            __m256i l1 = _mm256_add_epi16(q16[2 * k + 1], _mm256_cvtepi8_epi16(_mm256_extracti128_si256(rn, 1)));
            uint32_t p = off[k];
            if (__builtin_expect(p <= z - 32, 1)) {
                _mm256_storeu_si256((__m256i *)(base[k] + p), l0);
                _mm256_storeu_si256((__m256i *)(base[k] + p + 16), l1);
                p += 32;
            } else {
                kagi__st16w(base[k], p, z, l0, l1);
                p += 32;
            }
            off[k] = p >= z ? p - z : p;
        }
        Rr += (size_t)dc * 32;
    }
}

KAGI__T_AVX2 static void kagi__hard_avx2(const int16_t *L, size_t n, uint64_t *out)
{
    for (size_t w = 0; w < n / 64; w++) {
        const __m256i *p = (const __m256i *)(L + w * 64);
        __m256i a = _mm256_permute4x64_epi64(_mm256_packs_epi16(_mm256_load_si256(p), _mm256_load_si256(p + 1)), 0xd8);
        __m256i b = _mm256_permute4x64_epi64(_mm256_packs_epi16(_mm256_load_si256(p + 2), _mm256_load_si256(p + 3)), 0xd8);
        out[w] = (uint64_t)(uint32_t)_mm256_movemask_epi8(a) | (uint64_t)(uint32_t)_mm256_movemask_epi8(b) << 32;
    }
}
#endif

/* ------------------------------------------------------------- driver */

/* Hard decision of block column j into out (z bits). */
static void kagi__hard_col(const kagi_ldpc_decoder *d, uint32_t j, uint64_t *out)
{
    const kagi_ldpc_code *c = d->c;
    const int16_t *L = d->L + (size_t)j * c->z;
    uint64_t *o = out + (size_t)j * c->zw;
#if KAGI__LDPC_X86
    if (d->impl == KAGI_LDPC_IMPL_AVX2) kagi__hard_avx2(L, c->z, o);
    else
#endif
        kagi__hard_scalar(L, c->z, o);
}

/* Whether the hard decision meets the target syndrome. Block row by block
 * row, stopping at the first row that differs, and deciding only the block
 * columns the rows checked so far need: far from convergence this costs
 * ~1/mb of a whole hard decision and syndrome. When it returns 1, out holds
 * the whole hard decision. */
static int kagi__met(kagi_ldpc_decoder *d, uint64_t *out)
{
    const kagi_ldpc_code *c = d->c;
    const size_t zw = c->zw;
    uint64_t *s = d->chk;
    uint8_t done[128] = {0}; /* nb <= 128 (checked in decoder_new) */
    for (uint32_t i = 0; i < c->mb; i++) {
        memset(s, 0, zw * sizeof *s);
        for (uint32_t e = c->row_ptr[i]; e < c->row_ptr[i + 1]; e++) {
            uint32_t j = c->col[e];
            if (!done[j]) {
                kagi__hard_col(d, j, out);
                done[j] = 1;
            }
            kagi__ldpc_rot_xor(s, out + (size_t)j * zw, zw, c->shift[e]);
        }
        if (memcmp(s, d->syn + (size_t)i * zw, zw * sizeof *s) != 0) return 0;
    }
    for (uint32_t j = 0; j < c->nb; j++)
        if (!done[j]) kagi__hard_col(d, j, out);
    return 1;
}

int kagi_ldpc_decoder_run(kagi_ldpc_decoder *d, unsigned max_iter, uint64_t *out, unsigned *iters)
{
    const kagi_ldpc_code *c = d->c;
    if (kagi__met(d, out)) return KAGI_OK;
    for (unsigned it = 0; it < max_iter; it++) {
        for (uint32_t i = 0; i < c->mb; i++) {
#if KAGI__LDPC_X86
            if (d->impl == KAGI_LDPC_IMPL_AVX2) kagi__layer_avx2(d, i);
            else
#endif
                kagi__layer_scalar(d, i);
        }
        (*iters)++;
        if (kagi__met(d, out)) return KAGI_OK;
    }
    /* kagi__met may have stopped early: the whole last hard decision. */
    for (uint32_t j = 0; j < c->nb; j++) kagi__hard_col(d, j, out);
    return KAGI_ERR_RECONCILE;
}
