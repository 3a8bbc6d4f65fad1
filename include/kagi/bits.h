/* kagi/bits.h: packed bit vectors, bit files, wiping and secure randomness.
 *
 * Bit j of a vector lives in word j/64 at position j%64, so the bytes of
 * the words in little-endian order are exactly the on-disk bit file format:
 * bit j is (byte[j>>3] >> (j&7)) & 1. Bits past n in the last word are kept
 * zero by every function here, so whole-word operations stay exact. */
#ifndef KAGI_BITS_H
#define KAGI_BITS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define KAGI_NODISCARD __attribute__((warn_unused_result))
#define KAGI_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#else
#define KAGI_NODISCARD
#define KAGI_NONNULL(...)
#endif

typedef struct kagi_bits {
    uint64_t *w;   /* ceil(n/64) words, owned */
    size_t n;      /* number of bits */
} kagi_bits;

#define KAGI_WORDS(n) (((n) + 63) / 64)

/* Allocate n zero bits (n may be 0). *out is freed with kagi_bits_free. */
int kagi_bits_new(kagi_bits **out, size_t n) KAGI_NODISCARD KAGI_NONNULL(1);
/* Wipe and free; accepts NULL. */
void kagi_bits_free(kagi_bits *b);
/* New copy of src. */
int kagi_bits_dup(kagi_bits **out, const kagi_bits *src) KAGI_NODISCARD KAGI_NONNULL(1, 2);

static inline int kagi_bits_get(const kagi_bits *b, size_t i)
{
    return (int)((b->w[i >> 6] >> (i & 63)) & 1u);
}
static inline void kagi_bits_set(kagi_bits *b, size_t i, int v)
{
    uint64_t m = (uint64_t)1 << (i & 63);
    b->w[i >> 6] = v ? (b->w[i >> 6] | m) : (b->w[i >> 6] & ~m);
}
static inline void kagi_bits_flip(kagi_bits *b, size_t i)
{
    b->w[i >> 6] ^= (uint64_t)1 << (i & 63);
}

/* Parity of bits [lo, hi) of a word array (0 when lo >= hi). Inline:
 * Cascade calls it on its hottest path. */
static inline int kagi_parity_range(const uint64_t *w, size_t lo, size_t hi)
{
    if (lo >= hi) return 0;
    size_t a = lo >> 6, b = (hi - 1) >> 6;
    uint64_t mlo = ~(uint64_t)0 << (lo & 63);
    uint64_t mhi = ~(uint64_t)0 >> (63 - ((hi - 1) & 63));
    if (a == b) return __builtin_parityll(w[a] & mlo & mhi);
    uint64_t acc = (w[a] & mlo) ^ (w[b] & mhi);
    for (size_t i = a + 1; i < b; i++) acc ^= w[i];
    return __builtin_parityll(acc);
}
/* Number of positions where a and b differ in their first n bits. */
size_t kagi_bits_hamming(const uint64_t *a, const uint64_t *b, size_t n);
/* The same over bits [off, off + n), 64 at a time (a frame of a longer
 * key, say). Reads only the words holding that range, so other threads
 * may write b's bits outside it meanwhile. */
size_t kagi_bits_hamming_at(const uint64_t *a, const uint64_t *b, size_t off, size_t n);

/* Read the first n bits of a bit file. Fails with KAGI_ERR_SHORT when the
 * file holds fewer than n bits, KAGI_ERR_ARG for n == 0, KAGI_ERR_IO when
 * it cannot be read; the detail names the path. */
int kagi_bits_read_file(const char *path, size_t n, kagi_bits **out)
    KAGI_NODISCARD KAGI_NONNULL(1, 3);
/* Write b as a bit file (ceil(n/8) bytes, mode 0600) atomically: a
 * temporary file in the same folder is synced and renamed, so the path
 * holds either nothing new or the whole key. */
int kagi_bits_write_file(const char *path, const kagi_bits *b)
    KAGI_NODISCARD KAGI_NONNULL(1, 2);

/* Fill with bits from the operating system's CSPRNG (for secrets, seeds). */
int kagi_random_bytes(void *buf, size_t len) KAGI_NODISCARD;
int kagi_bits_random(kagi_bits *b) KAGI_NODISCARD KAGI_NONNULL(1);

/* Wipe memory so the compiler cannot drop it. */
void kagi_wipe(void *p, size_t len);
/* Constant-time equality of two byte strings: 1 equal, 0 not. */
int kagi_ct_equal(const void *a, const void *b, size_t len);

/* Seeded, reproducible generator (xoshiro256**) for simulation, tests and
 * public protocol randomness derived from an agreed seed. Never for
 * secrets. */
typedef struct kagi_rng { uint64_t s[4]; } kagi_rng;
void kagi_rng_seed(kagi_rng *r, uint64_t seed);
uint64_t kagi_rng_next(kagi_rng *r);
/* Uniform in [0, bound), bound > 0, without modulo bias. */
uint64_t kagi_rng_below(kagi_rng *r, uint64_t bound);
/* Uniform double in [0, 1). */
double kagi_rng_uniform(kagi_rng *r);

/* Two n-bit strings for tests and benchmarks: *a uniform, *b = *a through
 * a binary symmetric channel (each bit flipped with probability q, one
 * uniform draw per bit, in order); *errors (may be NULL) counts the flips.
 * Free both with kagi_bits_free. */
int kagi_bits_bsc_pair(kagi_rng *r, size_t n, double q, kagi_bits **a, kagi_bits **b, size_t *errors)
    KAGI_NODISCARD KAGI_NONNULL(1, 4, 5);

#endif
