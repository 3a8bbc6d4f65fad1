/* Internal helpers shared by kagi's modules (not installed). */
#ifndef KAGI_INTERNAL_H
#define KAGI_INTERNAL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "kagi/error.h"

#if defined(__GNUC__)
#define KAGI__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KAGI__PRINTF(a, b)
#endif

/* Record a failure detail and return code (so: return kagi__err(...)). */
int kagi__err(int code, const char *fmt, ...) KAGI__PRINTF(2, 3);

/* Fail with code and detail if cond holds. */
#define KAGI__FAIL_IF(cond, code, ...)                                     \
    do {                                                                   \
        if (cond) return kagi__err((code), __VA_ARGS__);                   \
    } while (0)

/* Propagate a non-zero code unchanged (detail already recorded). */
#define KAGI__TRY(expr)                                                    \
    do {                                                                   \
        int kagi__rc = (expr);                                             \
        if (kagi__rc != KAGI_OK) return kagi__rc;                          \
    } while (0)

/* A file that appears whole or not at all (src/core/afile.c): open
 * creates path.tmp.XXXXXX with the given mode (and a FILE *f on it when
 * stdio); close, given the caller's rc, syncs and renames it over path on
 * KAGI_OK, else removes it, and returns the first failure. Key bytes go
 * through kagi__afile_write (no stdio buffer left holding them). */
typedef struct kagi__afile {
    FILE *f;
    int fd;
    char *tmp;
    const char *path;
} kagi__afile;
int kagi__afile_open(kagi__afile *a, const char *path, unsigned mode, int stdio);
int kagi__afile_write(kagi__afile *a, const void *p, size_t n);
int kagi__afile_close(kagi__afile *a, int rc);

/* Wipe memory the compiler may not elide. */
void kagi__wipe(void *p, size_t n);

/* Run fn(arg) on n threads at once: the calling thread and n - 1 more
 * (at most 63; a thread that cannot start only costs parallelism), and
 * return when all are done. The callers share work through arg (an
 * atomic counter of the next item). */
void kagi__run_threads(unsigned n, void *(*fn)(void *), void *arg);

/* The CPUs online, within [1, max]: the default thread count. */
unsigned kagi__cpus(unsigned max);

/* nb (1..64) bits of w from bit off; reads only the words holding them. */
static inline uint64_t kagi__get_bits(const uint64_t *w, size_t off, size_t nb)
{
    size_t i = off >> 6;
    unsigned sh = (unsigned)(off & 63);
    uint64_t v = w[i] >> sh;
    if (sh && sh + nb > 64) v |= w[i + 1] << (64 - sh);
    return nb == 64 ? v : v & (((uint64_t)1 << nb) - 1);
}

/* Write the nb (1..64) bits of v (none set above nb) at bit off of w, its
 * other bits kept; touches only the words holding them. */
static inline void kagi__put_bits(uint64_t *w, size_t off, uint64_t v, size_t nb)
{
    size_t i = off >> 6;
    unsigned sh = (unsigned)(off & 63);
    uint64_t m = nb == 64 ? ~(uint64_t)0 : ((uint64_t)1 << nb) - 1;
    w[i] = (w[i] & ~(m << sh)) | (v << sh);
    if (sh && sh + nb > 64) w[i + 1] = (w[i + 1] & ~(m >> (64 - sh))) | (v >> (64 - sh));
}

/* Copy len bits of src from bit spos to dst at bit dpos, 64 at a time;
 * dst's other bits kept. */
void kagi__copy_bits(uint64_t *dst, size_t dpos, const uint64_t *src, size_t spos, size_t len);

/* Bit files and messages carry the words' bytes in little-endian order
 * (bit j in byte j/8): these convert, a plain copy on little-endian hosts.
 * words_from_bytes expects w zeroed past the bytes it fills. */
static inline void kagi__bytes_from_words(uint8_t *d, const uint64_t *w, size_t nbytes)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(d, w, nbytes);
#else
    for (size_t i = 0; i < nbytes; i++) d[i] = (uint8_t)(w[i >> 3] >> (8 * (i & 7)));
#endif
}

static inline void kagi__words_from_bytes(uint64_t *w, const uint8_t *s, size_t nbytes)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(w, s, nbytes);
#else
    for (size_t i = 0; i < nbytes; i++) w[i >> 3] |= (uint64_t)s[i] << (8 * (i & 7));
#endif
}

/* Monotonic clock in seconds, for throughput figures. */
static inline double kagi__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU time of the whole process (all threads) in seconds: with kagi__now
 * it tells how many cores a stage kept busy. */
static inline double kagi__cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#endif
