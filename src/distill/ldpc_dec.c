/* Layered lambda-min (or normalised min-sum) decoder for the
 * quasi-cyclic codes of ldpc.c: int8 posteriors, int8 messages,
 * saturating arithmetic.
 *
 * A layer is one block row of H: z checks, each meeting exactly one bit of
 * every block column in the row, so the z checks are updated side by side
 * (32 lanes per AVX2 step): lane r of circulant (i, j, s) reads bit
 * j*z + (r + s) % z. Per lane and circulant k (sat = clamp to [-128, 127]):
 *   q_k = sat(L - R_k)
 *   m1 <= m2 <= m3 = three smallest |q_k| (|-128| counts as 127),
 *            sign = xor of the signs of q_k and of the check's syndrome bit
 *   lambda-min (alpha16 = 0, the default): |R_k'| = 15/16 of the exact
 *            check rule [+] over the three, leaving out the edge's own:
 *            m2 [+] m3 where |q_k| == m1, m1 [+] m3 where it is m2, else
 *            m1 [+] m2 [+] m3, with a [+] b = min(a, b) + g(a + b) -
 *            g(|a - b|), g(x) = ln(1 + e^-x) from a 16-entry table
 *   min-sum (alpha16 = 1..16): |R_k'| = (|q_k| == m1 ? m2 : m1) * alpha16 >> 4
 *   L' = sat(q_k + R_k'), then the stored message is L' - q_k
 * Storing what was really added (L' - q_k, smaller than R_k' where L'
 * saturated) keeps L = channel + sum of the stored messages, so removing a
 * message later never overshoots: storing R_k' instead made a saturated
 * posterior flip sign when one of its checks turned against it, and frames
 * near convergence blew up (docs/ldpc.md, "Decoder"). Where several q_k
 * share the minimum, m2 == m1, so which of them takes m2 does not matter
 * (likewise for lambda-min's three).
 * Lambda-min over min-sum: thresholds 0.01-0.02 lower in f, and 20-40 %
 * fewer iterations, for ~2 more operations per edge (docs/ldpc.md).
 * A known bit's messages are -128 (which no update produces) and stay so:
 * its q_k = sat(L + 128) is always 127, the largest magnitude there is.
 * L starts at 3/4 of the channel LLR (room above it before saturation).
 * The scalar and AVX2 kernels do exactly this integer arithmetic, so they
 * agree bit for bit (tests/test_ldpc.c checks it). After every iteration the syndrome of
 * the hard decision is checked block row by block row, stopping at the
 * first row that differs. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/ldpc.h"
#include "ldpc_int.h"

#if KAGI__LDPC_X86
#include <immintrin.h>
#define KAGI__T_AVX2 __attribute__((target("avx2")))
#endif

struct kagi_ldpc_decoder {
    const kagi_ldpc_code *c;
    int impl;
    unsigned alpha;
    int8_t *L;      /* n posteriors */
    size_t npin;    /* bits made known; 0: the AVX2 kernel skips their test */
    int8_t *R;      /* ncirc * z check-to-bit messages */
    int8_t *S8;     /* m: -128 where the target syndrome bit is 1 */
    uint64_t *syn;  /* target syndrome, m bits */
    uint64_t *chk;  /* syndrome of the hard decision */
};

/* Asked once under a lock (decoders are made in several threads at a
 * time). */
unsigned kagi__ldpc_cpu(void)
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
            v = (__builtin_cpu_supports("avx2") ? KAGI__LDPC_CPU_AVX2 : 0) |
                (__builtin_cpu_supports("bmi2") ? KAGI__LDPC_CPU_BMI2 : 0);
            atomic_store(&cached, v);
        }
        pthread_mutex_unlock(&mu);
    }
    return (unsigned)v;
#else
    return 0;
#endif
}

static int kagi__has_avx2(void) { return (kagi__ldpc_cpu() & KAGI__LDPC_CPU_AVX2) != 0; }

void kagi_ldpc_decoder_free(kagi_ldpc_decoder *d)
{
    if (!d) return;
    /* Posteriors and messages say much about Bob's key: wipe them. */
    if (d->L) kagi__wipe(d->L, d->c->n);
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
    d->alpha = alpha16; /* 0: lambda-min */
    d->L = kagi__amalloc(c->n);
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

/* Index in R of the message of circulant e (in block row i) to lane r:
 * chunk-major, 32 lanes of each circulant of the row in turn (the order in
 * which the AVX2 kernel reads them). */
static size_t kagi__ridx(const kagi_ldpc_code *c, uint32_t i, uint32_t e, uint32_t r)
{
    uint32_t e0 = c->row_ptr[i], dc = c->row_ptr[i + 1] - e0;
    return (size_t)e0 * c->z + (size_t)(r / 32) * dc * 32 + (size_t)(e - e0) * 32 + r % 32;
}

/* Bit v becomes known (e = 0): its messages are set to -128, which no
 * check update produces (|R| <= 127) and which the kernels keep, so its
 * q = sat(L + 128) is 127 whatever its L does (L' = sat(127 + R') >= 0,
 * so it also reads 0). flip: its value differed, the target syndrome
 * changes. */
static void kagi__pin(kagi_ldpc_decoder *d, size_t v, int flip)
{
    const kagi_ldpc_code *c = d->c;
    uint32_t j = (uint32_t)(v / c->z), t = (uint32_t)(v % c->z);
    d->L[v] = 127;
    d->npin++;
    for (uint32_t k = c->col_ptr[j]; k < c->col_ptr[j + 1]; k++) {
        uint32_t e = c->col_edge[k], sh = c->shift[e], i = c->erow[e];
        uint32_t r = t >= sh ? t - sh : t + c->z - sh;
        d->R[kagi__ridx(c, i, e, r)] = -128;
        if (flip) {
            size_t ch = (size_t)i * c->z + r;
            d->syn[ch >> 6] ^= (uint64_t)1 << (ch & 63);
            d->S8[ch] = (int8_t)(d->S8[ch] ^ -128);
        }
    }
}

/* Known bits (a shortened plan has ~10 % of them) get messages of -128
 * as kagi__pin gives them, but written in R's own order: lane r of
 * circulant e holds bit col z + (r + shift) mod z, a run of 32 bits per
 * chunk (two after the wrap at z). Pinning bit by bit scattered ~5 writes
 * per bit over megabytes: a sixth of a shortened frame's decoding. */
static void kagi__pins_run(int8_t *dst, const int8_t *src, uint32_t len)
{
    for (uint32_t l = 0; l < len; l++) dst[l] = (int8_t)(src[l] == KAGI__LDPC_PIN ? -128 : 0);
}

#if KAGI__LDPC_X86
KAGI__T_AVX2 static void kagi__pins32_avx2(int8_t *dst, const int8_t *src)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)src);
    __m256i m = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(KAGI__LDPC_PIN));
    _mm256_storeu_si256((__m256i *)dst, _mm256_and_si256(m, _mm256_set1_epi8(-128)));
}
#endif

static void kagi__pins_fill(kagi_ldpc_decoder *d, const int8_t *llr)
{
    const kagi_ldpc_code *c = d->c;
#if KAGI__LDPC_X86
    int avx = d->impl == KAGI_LDPC_IMPL_AVX2;
#endif
    for (uint32_t i = 0; i < c->mb; i++) {
        uint32_t e0 = c->row_ptr[i], dc = c->row_ptr[i + 1] - e0;
        int8_t *dst = d->R + (size_t)e0 * c->z;
        for (uint32_t ch = 0; ch < c->z / 32; ch++)
            for (uint32_t e = e0; e < e0 + dc; e++, dst += 32) {
                const int8_t *col = llr + (size_t)c->col[e] * c->z;
                uint32_t t = (32 * ch + c->shift[e]) % c->z, a = c->z - t < 32 ? c->z - t : 32;
#if KAGI__LDPC_X86
                if (avx && a == 32) {
                    kagi__pins32_avx2(dst, col + t);
                    continue;
                }
#endif
                kagi__pins_run(dst, col + t, a);
                kagi__pins_run(dst + a, col, 32 - a);
            }
    }
}

#if KAGI__LDPC_X86
/* The posteriors' start as in kagi_ldpc_decoder_start, 32 bits at a time:
 * (6 x +- 4) / 8 truncated is (6 x + 4 - [x < 0]) >> 3 arithmetically.
 * Returns how many bits it did (whole chunks of 32). */
KAGI__T_AVX2 static size_t kagi__llr_start_avx2(kagi_ldpc_decoder *d, const int8_t *llr)
{
    const size_t n = d->c->n & ~(size_t)31;
    const __m256i pin = _mm256_set1_epi8(KAGI__LDPC_PIN), six = _mm256_set1_epi16(6),
                  four = _mm256_set1_epi16(4);
    for (size_t v = 0; v < n; v += 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(llr + v));
        __m256i known = _mm256_cmpeq_epi8(x, pin);
        d->npin += (size_t)__builtin_popcount((unsigned)_mm256_movemask_epi8(known));
        __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x));
        __m256i hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(x, 1));
        lo = _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(_mm256_mullo_epi16(lo, six), four),
                                                _mm256_srai_epi16(lo, 15)), 3);
        hi = _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(_mm256_mullo_epi16(hi, six), four),
                                                _mm256_srai_epi16(hi, 15)), 3);
        __m256i y = _mm256_permute4x64_epi64(_mm256_packs_epi16(lo, hi), 0xd8);
        _mm256_storeu_si256((__m256i *)(d->L + v), _mm256_blendv_epi8(y, pin, known));
    }
    return n;
}
#endif

void kagi_ldpc_decoder_start(kagi_ldpc_decoder *d, const int8_t *llr, const uint64_t *syn)
{
    const kagi_ldpc_code *c = d->c;
    memcpy(d->syn, syn, KAGI_WORDS(c->m) * 8);
    for (size_t i = 0; i < c->m; i++) d->S8[i] = (syn[i >> 6] >> (i & 63)) & 1 ? -128 : 0;
    d->npin = 0;
    size_t v0 = 0;
#if KAGI__LDPC_X86
    if (d->impl == KAGI_LDPC_IMPL_AVX2) v0 = kagi__llr_start_avx2(d, llr);
#endif
    for (size_t v = v0; v < c->n; v++) {
        /* 3/4 of the channel LLR (rounded half away from 0): room above
         * it before the int8 posterior saturates. At scale 1 one frame of
         * twelve (QBER 8 %, f_start 1.16) stayed undecoded after all 20
         * reveals where the int16 decoder needed 3; at 3/4 f and
         * iterations match the int16 decoder's (docs/ldpc.md). */
        if (llr[v] == KAGI__LDPC_PIN) {
            d->L[v] = 127;
            d->npin++;
        } else {
            d->L[v] = (int8_t)((llr[v] * 6 + (llr[v] < 0 ? -4 : 4)) / 8);
        }
    }
    if (!d->npin) {
        memset(d->R, 0, c->ncirc * c->z);
        return;
    }
    kagi__pins_fill(d, llr);
}

int kagi_ldpc_decoder_fix(kagi_ldpc_decoder *d, size_t v, int flip)
{
    KAGI__FAIL_IF(v >= d->c->n, KAGI_ERR_ARG, "ldpc: bit %zu of a %zu-bit frame", v, d->c->n);
    kagi__pin(d, v, flip);
    return KAGI_OK;
}

/* ------------------------------------------------------ scalar kernel */

static inline int kagi__sat8(int x) { return x > 127 ? 127 : x < -128 ? -128 : x; }

/* The lambda-min magnitudes are scaled by 15/16: three inputs leave out
 * the rest of a check's edges (up to ~50 at rate 0.9), each of which would
 * lower the exact value. */
#define KAGI__LMIN_BETA 15
/* ln(1 + e^-x) in the posteriors' unit (4.5 per nat: the channel's 6 per
 * nat times the 3/4 start scaling), for x = 0..15 units; 0 beyond. The
 * correction terms of the exact two-input check rule (boxplus). */
static const int8_t kagi__lmin_g[16] = {3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0};

/* |a [+] b| for magnitudes a, b in [0, 127]: min(a, b) + g(a + b) -
 * g(|a - b|), within [0, 127]. */
static inline int kagi__bplus(int a, int b)
{
    int m = a < b ? a : b, s = a + b, d = a > b ? a - b : b - a;
    int v = m + kagi__lmin_g[s < 15 ? s : 15] - kagi__lmin_g[d < 15 ? d : 15];
    return v < 0 ? 0 : v > 127 ? 127 : v;
}

static void kagi__layer_scalar(kagi_ldpc_decoder *d, uint32_t i)
{
    const kagi_ldpc_code *c = d->c;
    const uint32_t z = c->z, e0 = c->row_ptr[i], dc = c->row_ptr[i + 1] - e0;
    const int alpha = (int)d->alpha;
    int8_t *L = d->L;
    for (uint32_t r = 0; r < z; r++) {
        int m1 = 255, m2 = 255, m3 = 255;
        int sg = d->S8[(size_t)i * z + r];
        /* Messages of a layer are stored chunk by chunk: 32 lanes of
         * circulant 0, 32 of circulant 1, ... (as the AVX2 kernel reads them). */
        int8_t *Rc = d->R + (size_t)e0 * z + (size_t)(r / 32) * dc * 32 + (r % 32);
        for (uint32_t k = 0; k < dc; k++) {
            uint32_t e = e0 + k, p = r + c->shift[e];
            if (p >= z) p -= z;
            int q = kagi__sat8(L[(size_t)c->col[e] * z + p] - Rc[k * 32]);
            int a = q < 0 ? -q : q;
            sg ^= q;
            if (a < m1) {
                m3 = m2;
                m2 = m1;
                m1 = a;
            } else if (a < m2) {
                m3 = m2;
                m2 = a;
            } else if (a < m3) {
                m3 = a;
            }
        }
        /* Magnitudes for the edge holding m1, the one holding m2, and the
         * others. */
        int c1 = m1 < 127 ? m1 : 127, c2 = m2 < 127 ? m2 : 127, c3 = m3 < 127 ? m3 : 127;
        int s1, s2, s3;
        if (alpha) {
            s1 = (c2 * alpha) >> 4;
            s2 = s3 = (c1 * alpha) >> 4;
        } else {
            s1 = (kagi__bplus(c2, c3) * KAGI__LMIN_BETA) >> 4;
            s2 = (kagi__bplus(c1, c3) * KAGI__LMIN_BETA) >> 4;
            s3 = (kagi__bplus(kagi__bplus(c1, c2), c3) * KAGI__LMIN_BETA) >> 4;
        }
        for (uint32_t k = 0; k < dc; k++) {
            uint32_t e = e0 + k, p = r + c->shift[e];
            if (p >= z) p -= z;
            size_t v = (size_t)c->col[e] * z + p;
            int8_t *Rp = &Rc[k * 32];
            int q = kagi__sat8(L[v] - *Rp), a = q < 0 ? -q : q;
            int mag = a == m1 ? s1 : a == m2 ? s2 : s3;
            int l = kagi__sat8(q + ((sg ^ q) & 0x80 ? -mag : mag));
            if (*Rp != -128) *Rp = (int8_t)(l - q); /* -128: a known bit's */
            L[v] = (int8_t)l;
        }
    }
}

/* Hard decision: bit v is 1 where L[v] < 0. */
static void kagi__hard_scalar(const int8_t *L, size_t n, uint64_t *out)
{
    for (size_t w = 0; w < n / 64; w++) {
        uint64_t b = 0;
        for (unsigned t = 0; t < 64; t++) b |= (uint64_t)(L[w * 64 + t] < 0) << t;
        out[w] = b;
    }
}

/* -------------------------------------------------------- AVX2 kernel */

#if KAGI__LDPC_X86
/* The rare chunk that wraps at z: 32 posteriors of block base from lane p
 * on through a small buffer, out of line (keeps the hot loop free of
 * spills). */
KAGI__T_AVX2 __attribute__((noinline)) static __m256i kagi__ld8w(const int8_t *base, uint32_t p, uint32_t z)
{
    int8_t t[32];
    uint32_t n1 = z - p;
    memcpy(t, base + p, n1);
    memcpy(t + n1, base, 32 - n1);
    return _mm256_loadu_si256((const __m256i *)t);
}

KAGI__T_AVX2 __attribute__((noinline)) static void kagi__st8w(int8_t *base, uint32_t p, uint32_t z, __m256i a)
{
    int8_t t[32];
    uint32_t n1 = z - p;
    _mm256_storeu_si256((__m256i *)t, a);
    memcpy(base + p, t, n1);
    memcpy(base, t + n1, 32 - n1);
}

/* (m * alpha) >> 4 per byte, m in [0, 127]. */
KAGI__T_AVX2 static inline __m256i kagi__scale(__m256i m, __m256i alpha)
{
    __m256i zero = _mm256_setzero_si256();
    __m256i lo = _mm256_srli_epi16(_mm256_mullo_epi16(_mm256_unpacklo_epi8(m, zero), alpha), 4);
    __m256i hi = _mm256_srli_epi16(_mm256_mullo_epi16(_mm256_unpackhi_epi8(m, zero), alpha), 4);
    return _mm256_packus_epi16(lo, hi);
}

/* |a [+] b| per byte for a, b in [0, 127], as kagi__bplus. */
KAGI__T_AVX2 static inline __m256i kagi__bplus8(__m256i a, __m256i b, __m256i g, __m256i fifteen)
{
    __m256i m = _mm256_min_epu8(a, b), d = _mm256_sub_epi8(_mm256_max_epu8(a, b), m);
    __m256i gs = _mm256_shuffle_epi8(g, _mm256_min_epu8(_mm256_adds_epu8(a, b), fifteen));
    __m256i gd = _mm256_shuffle_epi8(g, _mm256_min_epu8(d, fifteen));
    return _mm256_min_epu8(_mm256_subs_epu8(_mm256_adds_epu8(m, gs), gd), _mm256_set1_epi8(127));
}

/* pinned: some bits are known (messages -128, kept); lmin: the lambda-min
 * rule instead of normalised min-sum. Constants in the instances below, so
 * the common case does not test for them. */
KAGI__T_AVX2 static inline __attribute__((always_inline)) void kagi__layer_avx2_t(kagi_ldpc_decoder *d, uint32_t i,
                                                                                 const int pinned, const int lmin)
{
    const kagi_ldpc_code *c = d->c;
    const uint32_t z = c->z, e0 = c->row_ptr[i], dc = c->row_ptr[i + 1] - e0;
    int8_t *base[KAGI__LDPC_DCMAX];
    /* Lane 0 of the current chunk reads base[k][off[k]]; advanced by 32
     * (mod z) per chunk, so the hot loops do no index arithmetic. */
    uint32_t off[KAGI__LDPC_DCMAX];
    __m256i q8[KAGI__LDPC_DCMAX]; /* per circulant of the chunk: q = L - R */
    for (uint32_t k = 0; k < dc; k++) {
        base[k] = d->L + (size_t)c->col[e0 + k] * z;
        off[k] = c->shift[e0 + k];
    }
    const __m256i ones = _mm256_set1_epi8(-1), big = _mm256_set1_epi8(127), lo = _mm256_set1_epi8(-128),
                  zero = _mm256_setzero_si256(), alpha = _mm256_set1_epi16((short)d->alpha),
                  fifteen = _mm256_set1_epi8(15), beta = _mm256_set1_epi16(KAGI__LMIN_BETA),
                  g = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kagi__lmin_g));
    const int8_t *S8 = d->S8 + (size_t)i * z;
    int8_t *Rr = d->R + (size_t)e0 * z;
    for (uint32_t r = 0; r < z; r += 32) {
        /* |q| is unsigned (|-128| = 128): unsigned minima, clamped to 127
         * after the loop (the clamp commutes with the minimum). */
        __m256i m1 = ones, m2 = ones, m3 = ones;
        __m256i sg = _mm256_loadu_si256((const __m256i *)(S8 + r));
        for (uint32_t k = 0; k < dc; k++) {
            uint32_t p = off[k];
            __m256i l;
            /* 8 chunks ahead (may run past the block: a prefetch never
             * faults); 3-25 % faster on the shared test VM (memory-bound). */
            _mm_prefetch((const char *)((uintptr_t)(base[k] + p) + 256), _MM_HINT_T0);
            if (__builtin_expect(p <= z - 32, 1)) l = _mm256_loadu_si256((const __m256i *)(base[k] + p));
            else l = kagi__ld8w(base[k], p, z);
            __m256i q = _mm256_subs_epi8(l, _mm256_load_si256((const __m256i *)(Rr + (size_t)k * 32)));
            q8[k] = q;
            __m256i a = _mm256_abs_epi8(q);
            sg = _mm256_xor_si256(sg, q);
            __m256i t1 = _mm256_max_epu8(m1, a);
            m1 = _mm256_min_epu8(m1, a);
            if (lmin) m3 = _mm256_min_epu8(m3, _mm256_max_epu8(m2, t1));
            m2 = _mm256_min_epu8(m2, t1);
        }
        /* Magnitudes for the edge holding m1 (s1), the one holding m2 (s2)
         * and the others (s3), as in the scalar kernel. */
        __m256i c1 = _mm256_min_epu8(m1, big), c2 = _mm256_min_epu8(m2, big), s1, s2, s3;
        if (lmin) {
            __m256i c3 = _mm256_min_epu8(m3, big);
            s1 = kagi__scale(kagi__bplus8(c2, c3, g, fifteen), beta);
            s2 = kagi__scale(kagi__bplus8(c1, c3, g, fifteen), beta);
            s3 = kagi__scale(kagi__bplus8(kagi__bplus8(c1, c2, g, fifteen), c3, g, fifteen), beta);
        } else {
            s1 = kagi__scale(c2, alpha);
            s2 = s3 = kagi__scale(c1, alpha);
        }
        for (uint32_t k = 0; k < dc; k++) {
            __m256i q = q8[k];
            __m256i aq = _mm256_abs_epi8(q);
            __m256i mag = s3; /* min-sum: s2 == s3 */
            if (lmin) mag = _mm256_blendv_epi8(s3, s2, _mm256_cmpeq_epi8(aq, m2));
            mag = _mm256_blendv_epi8(mag, s1, _mm256_cmpeq_epi8(aq, m1));
            __m256i rn = _mm256_blendv_epi8(mag, _mm256_sub_epi8(zero, mag), _mm256_xor_si256(sg, q));
            __m256i l = _mm256_adds_epi8(q, rn);
            uint32_t p = off[k];
            if (__builtin_expect(p <= z - 32, 1)) _mm256_storeu_si256((__m256i *)(base[k] + p), l);
            else kagi__st8w(base[k], p, z, l);
            __m256i rs = _mm256_sub_epi8(l, q);
            if (pinned) {
                /* Known bits keep their -128 (still in L1 from pass 1). */
                __m256i ro = _mm256_load_si256((const __m256i *)(Rr + (size_t)k * 32));
                rs = _mm256_blendv_epi8(rs, ro, _mm256_cmpeq_epi8(ro, lo));
            }
            _mm256_store_si256((__m256i *)(Rr + (size_t)k * 32), rs);
            p += 32;
            off[k] = p >= z ? p - z : p;
        }
        Rr += (size_t)dc * 32;
    }
}

KAGI__T_AVX2 static void kagi__layer_avx2(kagi_ldpc_decoder *d, uint32_t i) { kagi__layer_avx2_t(d, i, 0, 0); }
KAGI__T_AVX2 static void kagi__layer_avx2_pin(kagi_ldpc_decoder *d, uint32_t i) { kagi__layer_avx2_t(d, i, 1, 0); }
KAGI__T_AVX2 static void kagi__layer_avx2_l(kagi_ldpc_decoder *d, uint32_t i) { kagi__layer_avx2_t(d, i, 0, 1); }
KAGI__T_AVX2 static void kagi__layer_avx2_lpin(kagi_ldpc_decoder *d, uint32_t i) { kagi__layer_avx2_t(d, i, 1, 1); }

KAGI__T_AVX2 static void kagi__hard_avx2(const int8_t *L, size_t n, uint64_t *out)
{
    for (size_t w = 0; w < n / 64; w++) {
        const __m256i *p = (const __m256i *)(L + w * 64);
        out[w] = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_load_si256(p)) |
                 (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_load_si256(p + 1)) << 32;
    }
}
#endif

/* ------------------------------------------------------------- driver */

/* Hard decision of block column j into out (z bits). */
static void kagi__hard_col(const kagi_ldpc_decoder *d, uint32_t j, uint64_t *out)
{
    const kagi_ldpc_code *c = d->c;
    const int8_t *L = d->L + (size_t)j * c->z;
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
            if (d->impl == KAGI_LDPC_IMPL_AVX2) {
                if (!d->alpha) {
                    if (d->npin) kagi__layer_avx2_lpin(d, i);
                    else kagi__layer_avx2_l(d, i);
                } else if (d->npin) kagi__layer_avx2_pin(d, i);
                else kagi__layer_avx2(d, i);
            } else
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
