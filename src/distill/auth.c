/* Wegman-Carter authentication, key pools and key verification: GF(2^128)
 * and GF(2^64) arithmetic (PCLMUL) and the polynomial hash over them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__PCLMUL__)
#include <immintrin.h>
#endif

#include "internal.h"
#include "kagi/auth.h"

/* ---- Carry-less arithmetic ------------------------------------------------ */

/* 64x64 -> 128-bit carry-less product. */
static inline void kagi__clmul(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi)
{
#if defined(__PCLMUL__)
    __m128i p = _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)a),
                                     _mm_cvtsi64_si128((long long)b), 0x00);
    *lo = (uint64_t)_mm_cvtsi128_si64(p);
    *hi = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(p, p));
#else
    /* Portable fallback for ARCH= builds without PCLMUL. */
    uint64_t l = 0, h = 0;
    for (int i = 0; i < 64; i++) {
        uint64_t m = -((b >> i) & 1);
        l ^= (a << i) & m;
        if (i) h ^= (a >> (64 - i)) & m;
    }
    *lo = l;
    *hi = h;
#endif
}

void kagi_gf128_mul(uint64_t r[2], const uint64_t a[2], const uint64_t b[2])
{
    uint64_t p0l, p0h, p1l, p1h, pml, pmh, tl, th;
    /* Karatsuba: three products instead of four. */
    kagi__clmul(a[0], b[0], &p0l, &p0h);
    kagi__clmul(a[1], b[1], &p1l, &p1h);
    kagi__clmul(a[0] ^ a[1], b[0] ^ b[1], &pml, &pmh);
    pml ^= p0l ^ p1l;
    pmh ^= p0h ^ p1h;
    uint64_t r0 = p0l, r1 = p0h ^ pml, r2 = p1l ^ pmh, r3 = p1h;
    /* x^128 = x^7 + x^2 + x + 1 (0x87): fold word 3, then word 2. */
    kagi__clmul(r3, 0x87, &tl, &th);
    r1 ^= tl;
    r2 ^= th;
    kagi__clmul(r2, 0x87, &tl, &th);
    r0 ^= tl;
    r1 ^= th;
    r[0] = r0;
    r[1] = r1;
}

void kagi_gf128_mul_ref(uint64_t r[2], const uint64_t a[2], const uint64_t b[2])
{
    uint64_t x0 = a[0], x1 = a[1], b0 = b[0], b1 = b[1], z0 = 0, z1 = 0;
    for (int i = 0; i < 128; i++) {
        uint64_t m = -(((i < 64 ? b0 >> i : b1 >> (i - 64))) & 1);
        z0 ^= x0 & m;
        z1 ^= x1 & m;
        uint64_t carry = x1 >> 63; /* x * x^127 leaves the field: reduce */
        x1 = (x1 << 1) | (x0 >> 63);
        x0 = (x0 << 1) ^ (0x87 & -carry);
    }
    r[0] = z0;
    r[1] = z1;
}

uint64_t kagi_gf64_mul(uint64_t a, uint64_t b)
{
    uint64_t lo, hi, tl, th, ul, uh;
    kagi__clmul(a, b, &lo, &hi);
    /* x^64 = x^4 + x^3 + x + 1 (0x1b); th has at most 4 bits, so the
     * second fold fits in one word. */
    kagi__clmul(hi, 0x1b, &tl, &th);
    kagi__clmul(th, 0x1b, &ul, &uh);
    (void)uh;
    return lo ^ tl ^ ul;
}

uint64_t kagi_gf64_mul_ref(uint64_t a, uint64_t b)
{
    uint64_t z = 0;
    for (int i = 0; i < 64; i++) {
        z ^= a & -((b >> i) & 1);
        uint64_t carry = a >> 63;
        a = (a << 1) ^ (0x1b & -carry);
    }
    return z;
}

/* ---- Polynomial hash ------------------------------------------------------ */

static inline uint64_t kagi__le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline void kagi__st64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* acc = (acc + block) * H: one Horner step. */
static inline void kagi__horner128(uint64_t acc[2], const uint64_t h[2], uint64_t b0, uint64_t b1)
{
    acc[0] ^= b0;
    acc[1] ^= b1;
    kagi_gf128_mul(acc, acc, h);
}

/* Horner steps over msg's 16-byte blocks (the last one zero-padded). */
static void kagi__absorb_blocks(uint64_t acc[2], const uint64_t h[2], const void *msg, size_t len)
{
    const uint8_t *p = msg;
    size_t full = len / 16, tail = len % 16;
    for (size_t i = 0; i < full; i++, p += 16)
        kagi__horner128(acc, h, kagi__le64(p), kagi__le64(p + 8));
    if (tail) {
        uint8_t buf[16] = {0};
        memcpy(buf, p, tail);
        kagi__horner128(acc, h, kagi__le64(buf), kagi__le64(buf + 8));
        kagi__wipe(buf, sizeof buf);
    }
}

void kagi_polyhash128(const uint64_t h[2], const void *msg, size_t len, uint64_t out[2])
{
    uint64_t acc[2] = {0, 0};
    kagi__absorb_blocks(acc, h, msg, len);
    /* Length in bits as a 128-bit number, so len * 8 cannot wrap. */
    kagi__horner128(acc, h, (uint64_t)len << 3, (uint64_t)len >> 61);
    out[0] = acc[0];
    out[1] = acc[1];
    kagi__wipe(acc, sizeof acc);
}

/* Word i of the first nbits bits of w, zero past the end. */
static inline uint64_t kagi__word(const uint64_t *w, size_t nbits, size_t i)
{
    size_t nw = KAGI_WORDS(nbits);
    if (i >= nw) return 0;
    if (i == nw - 1 && (nbits & 63)) return w[i] & (((uint64_t)1 << (nbits & 63)) - 1);
    return w[i];
}

void kagi_polyhash128_bits(const uint64_t h[2], const uint64_t *w, size_t nbits, uint64_t out[2])
{
    uint64_t acc[2] = {0, 0};
    size_t nblocks = (nbits + 127) / 128;
    for (size_t i = 0; i < nblocks; i++)
        kagi__horner128(acc, h, kagi__word(w, nbits, 2 * i), kagi__word(w, nbits, 2 * i + 1));
    kagi__horner128(acc, h, (uint64_t)nbits, 0);
    out[0] = acc[0];
    out[1] = acc[1];
    kagi__wipe(acc, sizeof acc);
}

uint64_t kagi_polyhash64_bits(uint64_t h, const uint64_t *w, size_t nbits)
{
    uint64_t acc = 0;
    size_t nw = KAGI_WORDS(nbits);
    for (size_t i = 0; i < nw; i++) acc = kagi_gf64_mul(acc ^ kagi__word(w, nbits, i), h);
    return kagi_gf64_mul(acc ^ (uint64_t)nbits, h);
}

double kagi_polyhash_bound(size_t nbits, unsigned field_bits)
{
    if (field_bits != 64 && field_bits != 128) return 1.0;
    double blocks = (double)(nbits / field_bits) + (nbits % field_bits ? 1.0 : 0.0) + 1.0;
    return ldexp(blocks, -(int)field_bits);
}

/* ---- Key pool ------------------------------------------------------------- */

struct kagi_keypool {
    uint64_t *w; /* KAGI_WORDS(n) words; taken bits are zeroed */
    size_t n;    /* bits in the pool */
    size_t pos;  /* bits taken */
};


/* Zero bits [off, off + len) of w. */
static void kagi__clear_bits(uint64_t *w, size_t off, size_t len)
{
    while (len) {
        size_t i = off >> 6;
        unsigned sh = (unsigned)(off & 63);
        size_t nb = 64 - sh < len ? 64 - sh : len;
        uint64_t m = nb == 64 ? ~(uint64_t)0 : (((uint64_t)1 << nb) - 1) << sh;
        w[i] &= ~m;
        off += nb;
        len -= nb;
    }
}

int kagi_keypool_new(kagi_keypool **out, const uint64_t *bits, size_t nbits)
{
    *out = NULL;
    KAGI__FAIL_IF(nbits > SIZE_MAX - 64, KAGI_ERR_ARG, "key pool: %zu bits is too many", nbits);
    size_t nw = KAGI_WORDS(nbits);
    kagi_keypool *p = calloc(1, sizeof *p);
    uint64_t *w = calloc(nw ? nw : 1, sizeof *w);
    if (!p || !w) {
        free(p);
        free(w);
        return kagi__err(KAGI_ERR_NOMEM, "key pool: cannot allocate %zu bits", nbits);
    }
    if (nw) memcpy(w, bits, nw * sizeof *w);
    if (nbits & 63) w[nw - 1] &= ((uint64_t)1 << (nbits & 63)) - 1;
    p->w = w;
    p->n = nbits;
    *out = p;
    return KAGI_OK;
}

void kagi_keypool_free(kagi_keypool *p)
{
    if (!p) return;
    kagi__wipe(p->w, (KAGI_WORDS(p->n) ? KAGI_WORDS(p->n) : 1) * sizeof *p->w);
    free(p->w);
    kagi__wipe(p, sizeof *p);
    free(p);
}

int kagi_keypool_take(kagi_keypool *p, void *out, size_t nbits)
{
    size_t left = p->n - p->pos;
    KAGI__FAIL_IF(nbits > left, KAGI_ERR_EXHAUSTED,
                  "key pool: %zu bits needed, %zu left (%zu of %zu used)", nbits, left,
                  p->pos, p->n);
    uint8_t *o = out;
    for (size_t i = 0; i < nbits; i += 64) {
        size_t nb = nbits - i < 64 ? nbits - i : 64;
        uint64_t v = kagi__get_bits(p->w, p->pos + i, nb);
        for (size_t b = 0; b < (nb + 7) / 8; b++) o[i / 8 + b] = (uint8_t)(v >> (8 * b));
        kagi__wipe(&v, sizeof v);
    }
    /* Bits handed out are gone from the pool: no later call sees them. */
    kagi__clear_bits(p->w, p->pos, nbits);
    p->pos += nbits;
    return KAGI_OK;
}

size_t kagi_keypool_used(const kagi_keypool *p) { return p->pos; }
size_t kagi_keypool_left(const kagi_keypool *p) { return p->n - p->pos; }

int kagi_keypool_remainder(const kagi_keypool *p, kagi_bits **out)
{
    size_t left = p->n - p->pos;
    KAGI__TRY(kagi_bits_new(out, left));
    for (size_t i = 0; i < left; i += 64) {
        size_t nb = left - i < 64 ? left - i : 64;
        (*out)->w[i >> 6] = kagi__get_bits(p->w, p->pos + i, nb);
    }
    return KAGI_OK;
}

/* ---- Wegman-Carter MAC ------------------------------------------------------ */

struct kagi_mac {
    kagi_keypool *pool; /* borrowed */
    uint64_t h[2];      /* hash key H, secret */
    uint64_t msgs;      /* messages seen, tagged or absorbed (for error details) */
    uint64_t tags;      /* tags made or checked, each with its own pad */
    uint64_t acc[2];    /* hash state over messages absorbed since the last tag */
    size_t absorbed;    /* how many */
};

int kagi_mac_new(kagi_mac **out, kagi_keypool *pool)
{
    *out = NULL;
    uint8_t hk[16];
    int rc = kagi_keypool_take(pool, hk, 128);
    if (rc != KAGI_OK)
        return kagi__err(rc, "mac: no 128-bit hash key: %zu bits left in the pool",
                         kagi_keypool_left(pool));
    kagi_mac *m = calloc(1, sizeof *m);
    if (!m) {
        kagi__wipe(hk, sizeof hk);
        return kagi__err(KAGI_ERR_NOMEM, "mac: out of memory");
    }
    m->pool = pool;
    m->h[0] = kagi__le64(hk);
    m->h[1] = kagi__le64(hk + 8);
    kagi__wipe(hk, sizeof hk);
    *out = m;
    return KAGI_OK;
}

void kagi_mac_free(kagi_mac *m)
{
    if (!m) return;
    kagi__wipe(m, sizeof *m);
    free(m);
}

/* The tag message m->msgs + 1 should carry: poly_H(msg) XOR the next pad. */
static int kagi__mac_compute(kagi_mac *m, const void *msg, size_t len, uint8_t want[16])
{
    uint8_t pad[16];
    if (kagi_keypool_take(m->pool, pad, 128) != KAGI_OK)
        return kagi__err(KAGI_ERR_EXHAUSTED,
                         "mac: message %llu: 128 pad bits needed, %zu left in the pool",
                         (unsigned long long)m->msgs + 1, kagi_keypool_left(m->pool));
    m->msgs++;
    m->tags++;
    /* Absorbed messages come first: blocks then a marked length block
     * each, then this one as in kagi_polyhash128. With nothing absorbed
     * the tag is exactly poly_H(msg). */
    uint64_t hv[2] = {m->acc[0], m->acc[1]};
    kagi_wipe(m->acc, sizeof m->acc);
    m->absorbed = 0;
    kagi__absorb_blocks(hv, m->h, msg, len);
    kagi__horner128(hv, m->h, (uint64_t)len << 3, (uint64_t)len >> 61);
    kagi__st64(want, hv[0]);
    kagi__st64(want + 8, hv[1]);
    for (int i = 0; i < 16; i++) want[i] ^= pad[i];
    kagi__wipe(hv, sizeof hv);
    kagi__wipe(pad, sizeof pad);
    return KAGI_OK;
}

int kagi_mac_absorb(kagi_mac *m, const void *msg, size_t len)
{
    kagi__absorb_blocks(m->acc, m->h, msg, len);
    /* The top bit marks an absorbed message's length block, which keeps
     * the encoding of a transcript unambiguous (an empty message still adds
     * a non-zero block, and the final, unmarked one ends the parse). */
    kagi__horner128(m->acc, m->h, (uint64_t)len << 3, ((uint64_t)len >> 61) | ((uint64_t)1 << 63));
    m->absorbed++;
    m->msgs++;
    return KAGI_OK;
}

int kagi_mac_tag(kagi_mac *m, const void *msg, size_t len, uint8_t tag[16])
{
    return kagi__mac_compute(m, msg, len, tag);
}

int kagi_mac_check(kagi_mac *m, const void *msg, size_t len, const uint8_t tag[16])
{
    uint8_t want[16];
    KAGI__TRY(kagi__mac_compute(m, msg, len, want));
    int ok = kagi_ct_equal(want, tag, sizeof want);
    kagi__wipe(want, sizeof want);
    KAGI__FAIL_IF(!ok, KAGI_ERR_AUTH, "message %llu: tag mismatch", (unsigned long long)m->msgs);
    return KAGI_OK;
}

size_t kagi_mac_bits_consumed(const kagi_mac *m) { return 128 + 128 * (size_t)m->tags; }

double kagi_mac_epsilon(size_t len)
{
    /* Bytes to bits without overflow: the bound only needs the block count. */
    double blocks = (double)(len / 16) + (len % 16 ? 1.0 : 0.0) + 1.0;
    return ldexp(blocks, -128);
}

/* ---- Key verification ------------------------------------------------------- */

int kagi_verify_tag(const uint64_t *key, size_t nbits, const uint8_t hkey[16],
                    unsigned tag_bits, uint8_t tag[16])
{
    KAGI__FAIL_IF(tag_bits != 64 && tag_bits != 128, KAGI_ERR_ARG,
                  "key verification: tag of %u bits; 64 or 128 supported", tag_bits);
    KAGI__FAIL_IF(nbits == 0, KAGI_ERR_ARG, "key verification: the key is empty");
    if (tag_bits == 128) {
        uint64_t h[2] = {kagi__le64(hkey), kagi__le64(hkey + 8)}, v[2];
        kagi_polyhash128_bits(h, key, nbits, v);
        kagi__st64(tag, v[0]);
        kagi__st64(tag + 8, v[1]);
        kagi__wipe(v, sizeof v);
    } else {
        uint64_t v = kagi_polyhash64_bits(kagi__le64(hkey), key, nbits);
        kagi__st64(tag, v);
        memset(tag + 8, 0, 8);
        kagi__wipe(&v, sizeof v);
    }
    return KAGI_OK;
}

double kagi_verify_epsilon(size_t nbits, unsigned tag_bits)
{
    return kagi_polyhash_bound(nbits, tag_bits);
}

unsigned kagi_verify_tag_bits_for(size_t nbits, double eps_cor)
{
    if (kagi_verify_epsilon(nbits, 64) <= eps_cor) return 64;
    if (kagi_verify_epsilon(nbits, 128) <= eps_cor) return 128;
    return 0;
}
