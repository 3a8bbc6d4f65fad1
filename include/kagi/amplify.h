/* kagi/amplify.h: privacy amplification by Toeplitz hashing.
 *
 * The seed s has n+m-1 bits and defines the m x n matrix
 *     T[i][j] = s[i - j + n - 1]        (0 <= i < m, 0 <= j < n)
 * and the hash of an n-bit key x is y = T x over GF(2). Equivalently y_i is
 * the coefficient of z^(i+n-1) in the carry-less product S(z) X(z), a
 * middle product. All vectors are word arrays packed as in kagi/bits.h:
 * bit j is (w[j >> 6] >> (j & 63)) & 1; each may hold exactly
 * ceil(bits / 64) words, and bits past the end of seed and x are ignored.
 *
 * Every function below needs 1 <= m <= n <= 2^58 (else KAGI_ERR_ARG with
 * a detail), leaves seed and x unchanged, writes ceil(m / 64) words of y with
 * the bits past m set to zero, and wipes every temporary buffer that held
 * key-dependent data before freeing it. docs/amplify.md explains the
 * algorithm and its measured speed. */
#ifndef KAGI_AMPLIFY_H
#define KAGI_AMPLIFY_H

#include <stddef.h>
#include <stdint.h>

#include "kagi/bits.h"

/* Bit-by-bit evaluation of the definition, O(n m): the oracle for tests.
 * Returns KAGI_OK or KAGI_ERR_ARG. */
int kagi_toeplitz_naive(const uint64_t *seed, const uint64_t *x, size_t n, size_t m,
                        uint64_t *y) KAGI_NODISCARD KAGI_NONNULL(1, 2, 5);

/* The straightforward word-parallel version, O(n m / 64): each output bit
 * is the parity of a shifted seed window AND the reversed key. Kept as the
 * baseline the benchmark compares against. KAGI_ERR_NOMEM possible. */
int kagi_toeplitz_words(const uint64_t *seed, const uint64_t *x, size_t n, size_t m,
                        uint64_t *y) KAGI_NODISCARD KAGI_NONNULL(1, 2, 5);

/* The fast exact version: Karatsuba on Toeplitz blocks with carry-less
 * multiply for small sizes, a transposed additive FFT over GF(2^64) for
 * large ones; same result as kagi_toeplitz_naive bit for bit. Single
 * threaded. KAGI_ERR_NOMEM possible (memory use is about 3 n bytes). */
int kagi_toeplitz(const uint64_t *seed, const uint64_t *x, size_t n, size_t m,
                  uint64_t *y) KAGI_NODISCARD KAGI_NONNULL(1, 2, 5);

/* kagi_toeplitz on one block with up to threads threads, the caller's
 * included (used: the largest power of two <= threads). Blocks of 2^20
 * bits and more with AVX2 and VPCLMULQDQ split each transform's halves
 * across the threads; others run as kagi_toeplitz. Same result bit for
 * bit. For many blocks, kagi_toeplitz_batch spreads whole blocks instead. */
int kagi_toeplitz_mt(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                     int threads) KAGI_NODISCARD KAGI_NONNULL(1, 2, 5);

/* One block of a batch; rc receives the result of kagi_toeplitz. */
typedef struct kagi_toeplitz_job {
    const uint64_t *seed;
    const uint64_t *x;
    size_t n, m;
    uint64_t *y;
    int rc;
} kagi_toeplitz_job;

/* Run kagi_toeplitz on count jobs with up to threads threads, the caller's
 * included (threads <= 0: one per online core); y buffers must not
 * overlap. Sets every job's rc; returns KAGI_OK or the code of the lowest
 * failed job with its detail. All arguments are checked first: if any job
 * is invalid, none runs and every rc is KAGI_ERR_ARG. */
int kagi_toeplitz_batch(kagi_toeplitz_job *jobs, size_t count, int threads) KAGI_NODISCARD;

#endif
