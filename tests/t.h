/* Minimal test harness: each test is a function; the binary runs them all
 * and ends with the line "N passed, N failed" that tests/run.sh sums. */
#ifndef KAGI_T_H
#define KAGI_T_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t__failed_checks;

#define T_FAIL(...)                                                        \
    do {                                                                   \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                  \
        fprintf(stderr, __VA_ARGS__);                                      \
        fputc('\n', stderr);                                               \
        t__failed_checks++;                                                \
    } while (0)

#define ASSERT_TRUE(c)                                                     \
    do { if (!(c)) T_FAIL("expected %s", #c); } while (0)
#define ASSERT_EQ(a, b)                                                    \
    do {                                                                   \
        long long t__a = (long long)(a), t__b = (long long)(b);            \
        if (t__a != t__b) T_FAIL("%s == %s: %lld != %lld", #a, #b, t__a, t__b); \
    } while (0)
#define ASSERT_NEAR(a, b, tol)                                             \
    do {                                                                   \
        double t__a = (double)(a), t__b = (double)(b);                     \
        if (!(fabs(t__a - t__b) <= (tol)))                                 \
            T_FAIL("%s ~ %s: %.12g vs %.12g (tol %g)", #a, #b, t__a, t__b, (double)(tol)); \
    } while (0)
#define ASSERT_OK(expr)                                                    \
    do {                                                                   \
        int t__rc = (expr);                                                \
        if (t__rc != 0) T_FAIL("%s returned %d (%s)", #expr, t__rc, kagi_errdetail()); \
    } while (0)

typedef void (*t_fn)(void);
typedef struct { const char *name; t_fn fn; } t_case;

static inline int t_run(const t_case *cases, int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (const t_case *c = cases; c->name; c++) {
        if (argc > 1 && !strstr(c->name, argv[1])) continue;
        int before = t__failed_checks;
        c->fn();
        if (t__failed_checks == before) {
            passed++;
            printf("ok   %s\n", c->name);
        } else {
            failed++;
            printf("FAIL %s\n", c->name);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#define T_MAIN(...)                                                        \
    int main(int argc, char **argv)                                        \
    {                                                                      \
        static const t_case cases[] = {__VA_ARGS__, {NULL, NULL}};         \
        return t_run(cases, argc, argv);                                   \
    }
#define T(fn) {#fn, fn}

#endif
