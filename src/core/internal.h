/* Internal helpers shared by kagi's modules (not installed). */
#ifndef KAGI_INTERNAL_H
#define KAGI_INTERNAL_H

#include <stddef.h>
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

/* Wipe memory the compiler may not elide. */
void kagi__wipe(void *p, size_t n);

#endif
