/* Parameter estimation: public random sampling of a sifted block, and the
 * finite-key length of BB84 after Tomamichel, Lim, Gisin and Renner. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/estimate.h"

/* ---- Sampling ---------------------------------------------------------- */

/* Membership for Floyd's sampler: a bitmap over [0, n) when that is no
 * bigger than a hash table of the k picks, else open addressing. Either
 * answers the same, so the positions do not depend on the choice. */
typedef struct kagi__pickset {
    uint64_t *bitmap; /* n bits, or NULL */
    size_t *slot;     /* cap entries, SIZE_MAX = empty, or NULL */
    size_t mask;
    unsigned shift;   /* 64 - log2(cap): the hash keeps the top bits */
} kagi__pickset;

static int kagi__pickset_init(kagi__pickset *s, size_t n, size_t k)
{
    memset(s, 0, sizeof *s);
    if (k >= n / 128) {
        s->bitmap = calloc(KAGI_WORDS(n) ? KAGI_WORDS(n) : 1, sizeof *s->bitmap);
        return s->bitmap ? KAGI_OK : KAGI_ERR_NOMEM;
    }
    size_t cap = 16;
    s->shift = 60;
    while (cap < 2 * k) { /* load <= 1/2 keeps probes short */
        cap <<= 1;
        s->shift--;
    }
    s->slot = malloc(cap * sizeof *s->slot);
    if (!s->slot) return KAGI_ERR_NOMEM;
    memset(s->slot, 0xff, cap * sizeof *s->slot);
    s->mask = cap - 1;
    return KAGI_OK;
}

/* Add v; returns 1 if it was new, 0 if already present. */
static int kagi__pickset_add(kagi__pickset *s, size_t v)
{
    if (s->bitmap) {
        uint64_t m = (uint64_t)1 << (v & 63);
        if (s->bitmap[v >> 6] & m) return 0;
        s->bitmap[v >> 6] |= m;
        return 1;
    }
    size_t i = (size_t)(((uint64_t)v * 0x9e3779b97f4a7c15ull) >> s->shift);
    while (s->slot[i] != SIZE_MAX) {
        if (s->slot[i] == v) return 0;
        i = (i + 1) & s->mask;
    }
    s->slot[i] = v;
    return 1;
}

static void kagi__pickset_free(kagi__pickset *s)
{
    free(s->bitmap);
    free(s->slot);
}

static int kagi__cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int kagi_sample_positions(uint64_t seed, size_t n, size_t k, size_t *pos)
{
    KAGI__FAIL_IF(k > n, KAGI_ERR_ARG, "sample: %zu positions asked from %zu bits", k, n);
    if (k == 0) return KAGI_OK;
    KAGI__FAIL_IF(!pos, KAGI_ERR_ARG, "sample: no room for %zu positions", k);
    kagi__pickset s;
    KAGI__FAIL_IF(kagi__pickset_init(&s, n, k) != KAGI_OK, KAGI_ERR_NOMEM,
                  "sample: cannot allocate a set for %zu of %zu positions", k, n);
    kagi_rng r;
    kagi_rng_seed(&r, seed);
    size_t got = 0;
    /* Floyd: after step j the picks are a uniform subset of [0, j]. The
     * draws depend on the random stream only: a chunk is drawn first and
     * each set word fetched some steps ahead (the same picks, without a
     * cache miss per step on a large bitmap). */
    enum { CH = 1024, AHEAD = 16 };
    size_t ts[CH];
    for (size_t j = n - k; j < n;) {
        size_t nt = n - j < CH ? n - j : CH;
        for (size_t q = 0; q < nt; q++) ts[q] = (size_t)kagi_rng_below(&r, (uint64_t)(j + q) + 1);
        for (size_t q = 0; q < nt; q++, j++) {
            if (s.bitmap && q + AHEAD < nt) __builtin_prefetch(&s.bitmap[ts[q + AHEAD] >> 6], 1);
            size_t t = ts[q];
            if (!kagi__pickset_add(&s, t)) {
                (void)kagi__pickset_add(&s, j);
                t = j;
            }
            if (!s.bitmap) pos[got] = t;
            got++;
        }
    }
    if (s.bitmap) {
        /* Reading the bitmap in order yields the positions sorted. */
        size_t i = 0;
        for (size_t w = 0; w < KAGI_WORDS(n); w++)
            for (uint64_t b = s.bitmap[w]; b; b &= b - 1)
                pos[i++] = w * 64 + (size_t)__builtin_ctzll(b);
    } else {
        qsort(pos, k, sizeof *pos, kagi__cmp_size);
    }
    kagi__pickset_free(&s);
    return KAGI_OK;
}

int kagi_split_sample(const kagi_bits *in, const size_t *pos, size_t k, kagi_bits **sample,
                      kagi_bits **rest)
{
    *sample = NULL;
    *rest = NULL;
    size_t n = in->n;
    KAGI__FAIL_IF(k > n, KAGI_ERR_ARG, "split: %zu positions for %zu bits", k, n);
    KAGI__FAIL_IF(k && !pos, KAGI_ERR_ARG, "split: %zu positions but no array", k);
    for (size_t i = 0; i < k; i++) {
        KAGI__FAIL_IF(pos[i] >= n, KAGI_ERR_ARG,
                      "split: position %zu (index %zu) is past the %zu bits", pos[i], i, n);
        KAGI__FAIL_IF(i && pos[i] <= pos[i - 1], KAGI_ERR_ARG,
                      "split: position %zu (index %zu) does not exceed the one before (%zu)",
                      pos[i], i, pos[i - 1]);
    }
    kagi_bits *s, *r;
    KAGI__TRY(kagi_bits_new(&s, k));
    int rc = kagi_bits_new(&r, n - k);
    if (rc) {
        kagi_bits_free(s);
        return rc;
    }
    size_t at = 0, prev = 0;
    for (size_t i = 0; i < k; i++) {
        kagi__copy_bits(r->w, at, in->w, prev, pos[i] - prev);
        at += pos[i] - prev;
        s->w[i >> 6] |= (uint64_t)kagi_bits_get(in, pos[i]) << (i & 63);
        prev = pos[i] + 1;
    }
    kagi__copy_bits(r->w, at, in->w, prev, n - prev);
    *sample = s;
    *rest = r;
    return KAGI_OK;
}

/* ---- Finite-key length ----------------------------------------------------- */

double kagi_h2(double p)
{
    if (!(p >= 0.0 && p <= 1.0)) return NAN;
    if (p == 0.0 || p == 1.0) return 0.0;
    return -p * log2(p) - (1.0 - p) * log2(1.0 - p);
}

/* Numerator of the logarithm in mu. The preprint text of Tomamichel et al.
 * we could check has ln(4/eps_sec) (smoothing eps_sec/4 in its Lemma 3);
 * other sources quote ln(2/eps_sec). 4 gives the larger mu, hence the
 * shorter and safe key under either reading (docs/security.md). */
#define KAGI__MU_LOG_NUM 4.0

int kagi_finite_key_bb84(const kagi_fk_in *in, kagi_fk_out *out)
{
    memset(out, 0, sizeof *out);
    KAGI__FAIL_IF(in->n == 0 || in->k == 0, KAGI_ERR_ARG,
                  "finite key: key bits n = %zu and sample bits k = %zu must both be positive",
                  in->n, in->k);
    KAGI__FAIL_IF(in->errors > in->k, KAGI_ERR_ARG,
                  "finite key: %zu errors in a sample of %zu bits", in->errors, in->k);
    KAGI__FAIL_IF(!(in->eps_sec > 0.0 && in->eps_sec < 1.0), KAGI_ERR_ARG,
                  "finite key: eps_sec = %g is outside (0, 1)", in->eps_sec);
    KAGI__FAIL_IF(!(in->eps_cor > 0.0 && in->eps_cor < 1.0), KAGI_ERR_ARG,
                  "finite key: eps_cor = %g is outside (0, 1)", in->eps_cor);
    KAGI__FAIL_IF(!(in->leak_ec >= 0.0 && isfinite(in->leak_ec)), KAGI_ERR_ARG,
                  "finite key: leak_ec = %g must be finite and >= 0", in->leak_ec);
    double n = (double)in->n, k = (double)in->k;
    out->qber = (double)in->errors / k;
    /* (n+k)/(nk) written as 1/n + 1/k so n*k cannot overflow. */
    out->mu = sqrt((1.0 / n + 1.0 / k) * ((k + 1.0) / k) * log(KAGI__MU_LOG_NUM / in->eps_sec));
    out->qber_upper = out->qber + out->mu;
    double hq = out->qber_upper >= 0.5 ? 1.0 : kagi_h2(out->qber_upper);
    /* log2(2 / (eps_sec^2 eps_cor)) term by term: eps^2 may underflow. */
    double pa = 1.0 - 2.0 * log2(in->eps_sec) - log2(in->eps_cor);
    out->length_real = n * (1.0 - hq) - in->leak_ec - pa;
    if (out->qber_upper < 0.5 && out->length_real >= 1.0)
        out->length = (size_t)floor(out->length_real);
    return KAGI_OK;
}

size_t kagi_sample_size_default(size_t n)
{
    size_t half = n / 2;
    double k = ceil(7.0 * cbrt((double)n) * cbrt((double)n));
    size_t floor_k = half < 1000 ? half : 1000;
    if (k >= (double)half) return half;
    return (size_t)k < floor_k ? floor_k : (size_t)k;
}
