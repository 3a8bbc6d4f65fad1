/* Packed bit vectors, bit files and randomness. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "internal.h"
#include "kagi/bits.h"

void kagi__wipe(void *p, size_t n)
{
    if (p && n) OPENSSL_cleanse(p, n);
}
void kagi_wipe(void *p, size_t len) { kagi__wipe(p, len); }

int kagi_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

int kagi_bits_new(kagi_bits **out, size_t n)
{
    *out = NULL;
    kagi_bits *b = calloc(1, sizeof *b);
    size_t nw = KAGI_WORDS(n);
    /* One spare word lets word-at-a-time readers look one past the end. */
    uint64_t *w = calloc(nw + 1, sizeof *w);
    if (!b || !w) {
        free(b);
        free(w);
        return kagi__err(KAGI_ERR_NOMEM, "cannot allocate %zu bits", n);
    }
    b->w = w;
    b->n = n;
    *out = b;
    return KAGI_OK;
}

void kagi_bits_free(kagi_bits *b)
{
    if (!b) return;
    kagi__wipe(b->w, (KAGI_WORDS(b->n) + 1) * sizeof *b->w);
    free(b->w);
    free(b);
}

int kagi_bits_dup(kagi_bits **out, const kagi_bits *src)
{
    KAGI__TRY(kagi_bits_new(out, src->n));
    memcpy((*out)->w, src->w, KAGI_WORDS(src->n) * sizeof *src->w);
    return KAGI_OK;
}

size_t kagi_bits_hamming(const uint64_t *a, const uint64_t *b, size_t n)
{
    size_t full = n >> 6, d = 0;
    for (size_t i = 0; i < full; i++) d += (size_t)__builtin_popcountll(a[i] ^ b[i]);
    if (n & 63) {
        uint64_t m = ((uint64_t)1 << (n & 63)) - 1;
        d += (size_t)__builtin_popcountll((a[full] ^ b[full]) & m);
    }
    return d;
}

size_t kagi_bits_hamming_at(const uint64_t *a, const uint64_t *b, size_t off, size_t n)
{
    size_t d = 0;
    while (n) {
        size_t k = n < 64 ? n : 64;
        d += (size_t)__builtin_popcountll(kagi__get_bits(a, off, k) ^ kagi__get_bits(b, off, k));
        off += k;
        n -= k;
    }
    return d;
}

int kagi_bits_read_file(const char *path, size_t n, kagi_bits **out)
{
    *out = NULL;
    KAGI__FAIL_IF(n == 0, KAGI_ERR_ARG, "%s: bit count must be at least 1", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    KAGI__FAIL_IF(fd < 0, KAGI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kagi__err(KAGI_ERR_IO, "%s: not a regular file", path);
    }
    size_t need = (n + 7) / 8;
    if ((unsigned long long)st.st_size < need) {
        close(fd);
        if (st.st_size == 0)
            return kagi__err(KAGI_ERR_SHORT, "%s: file is empty, %zu bits needed", path, n);
        return kagi__err(KAGI_ERR_SHORT, "%s: file holds %lld bits, %zu bits needed",
                         path, (long long)st.st_size * 8, n);
    }
    kagi_bits *b;
    int rc = kagi_bits_new(&b, n);
    if (rc) {
        close(fd);
        return rc;
    }
    unsigned char *buf = (unsigned char *)b->w;
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    buf = malloc(need);
#endif
    size_t got = 0;
    while (got < need) {
        ssize_t r = read(fd, buf + got, need - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            kagi_bits_free(b);
            return kagi__err(r == 0 ? KAGI_ERR_SHORT : KAGI_ERR_IO,
                             "%s: read failed after %zu bytes: %s", path, got,
                             r == 0 ? "unexpected end of file" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    kagi__words_from_bytes(b->w, buf, need);
    kagi__wipe(buf, need);
    free(buf);
#endif
    /* Bits past n are not part of the key: keep them zero. */
    if (n & 63) b->w[n >> 6] &= ((uint64_t)1 << (n & 63)) - 1;
    *out = b;
    return KAGI_OK;
}

int kagi_bits_write_file(const char *path, const kagi_bits *b)
{
    kagi__afile f;
    KAGI__TRY(kagi__afile_open(&f, path, 0600, 0));
    size_t need = (b->n + 7) / 8;
    const unsigned char *p = (const unsigned char *)b->w;
    unsigned char *conv = NULL;
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    conv = malloc(need ? need : 1);
    if (!conv) return kagi__afile_close(&f, kagi__err(KAGI_ERR_NOMEM, "out of memory"));
    kagi__bytes_from_words(conv, b->w, need);
    p = conv;
#endif
    int rc = kagi__afile_write(&f, p, need);
    if (conv) {
        kagi__wipe(conv, need);
        free(conv);
    }
    return kagi__afile_close(&f, rc);
}

int kagi_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        KAGI__FAIL_IF(RAND_bytes(p, chunk) != 1, KAGI_ERR_IO,
                      "the system random generator failed");
        p += chunk;
        len -= (size_t)chunk;
    }
    return KAGI_OK;
}

int kagi_bits_random(kagi_bits *b)
{
    KAGI__TRY(kagi_random_bytes(b->w, KAGI_WORDS(b->n) * sizeof *b->w));
    if (b->n & 63) b->w[b->n >> 6] &= ((uint64_t)1 << (b->n & 63)) - 1;
    return KAGI_OK;
}

static uint64_t kagi__splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void kagi_rng_seed(kagi_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = kagi__splitmix(&seed);
}

static inline uint64_t kagi__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t kagi_rng_next(kagi_rng *r)
{
    uint64_t *s = r->s;
    uint64_t res = kagi__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = kagi__rotl(s[3], 45);
    return res;
}

uint64_t kagi_rng_below(kagi_rng *r, uint64_t bound)
{
    /* Lemire's multiply-shift with rejection of the biased low zone. */
    unsigned __int128 m = (unsigned __int128)kagi_rng_next(r) * bound;
    uint64_t lo = (uint64_t)m;
    if (lo < bound) {
        uint64_t thresh = -bound % bound;
        while (lo < thresh) {
            m = (unsigned __int128)kagi_rng_next(r) * bound;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double kagi_rng_uniform(kagi_rng *r)
{
    return (double)(kagi_rng_next(r) >> 11) * 0x1.0p-53;
}

int kagi_bits_bsc_pair(kagi_rng *r, size_t n, double q, kagi_bits **a, kagi_bits **b, size_t *errors)
{
    *a = *b = NULL;
    if (kagi_bits_new(a, n) != KAGI_OK || kagi_bits_new(b, n) != KAGI_OK) {
        kagi_bits_free(*a);
        *a = NULL;
        return KAGI_ERR_NOMEM;
    }
    for (size_t i = 0; i < KAGI_WORDS(n); i++) (*a)->w[i] = kagi_rng_next(r);
    if (n & 63) (*a)->w[n / 64] &= ((uint64_t)1 << (n & 63)) - 1;
    memcpy((*b)->w, (*a)->w, KAGI_WORDS(n) * 8);
    size_t e = 0;
    for (size_t i = 0; i < n; i++)
        if (kagi_rng_uniform(r) < q) {
            kagi_bits_flip(*b, i);
            e++;
        }
    if (errors) *errors = e;
    return KAGI_OK;
}

void kagi__copy_bits(uint64_t *dst, size_t dpos, const uint64_t *src, size_t spos, size_t len)
{
    while (len) {
        size_t nb = len < 64 ? len : 64;
        kagi__put_bits(dst, dpos, kagi__get_bits(src, spos, nb), nb);
        dpos += nb;
        spos += nb;
        len -= nb;
    }
}
