/* Toeplitz hashing: every implementation and kernel against the bit-by-bit
 * oracle, the oracle against a matrix worked out by hand. */
#include "kagi/amplify.h"
#include "kagi/bits.h"
#include "kagi/error.h"
#include "t.h"

/* Internal entry points of src/distill/amplify.c (no public header): the
 * Karatsuba and FFT paths at a chosen kernel level, 0 portable, 1 PCLMUL,
 * 2 VPCLMULQDQ, up to what this CPU has. */
int kagi__cpu_level(void);
int kagi__toeplitz_kara(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                        int level);
int kagi__toeplitz_fft(const uint64_t *seed, const uint64_t *x, size_t n, size_t m, uint64_t *y,
                       int level);

/* Arrays of exactly ceil(bits/64) words, so ASan sees any read past them;
 * the unused top bits are random, since callers need not clear them. */
static uint64_t *rand_words(kagi_rng *r, size_t bits)
{
    size_t w = KAGI_WORDS(bits);
    uint64_t *p = malloc(w * sizeof *p);
    for (size_t i = 0; i < w; i++) p[i] = kagi_rng_next(r);
    return p;
}

static uint64_t *out_words(size_t m)
{
    uint64_t *p = malloc(KAGI_WORDS(m) * sizeof *p);
    memset(p, 0xa5, KAGI_WORDS(m) * sizeof *p); /* stale content must be overwritten */
    return p;
}

static int same_words(const uint64_t *a, const uint64_t *b, size_t m)
{
    return memcmp(a, b, KAGI_WORDS(m) * sizeof *a) == 0;
}

static void oracle_matches_hand_worked_matrix(void)
{
    /* n = 4, m = 3, seed s0..s5 = 1 0 1 1 0 0 (word 0x0d). By the
     * definition T[i][j] = s[i - j + 3]:
     *     row 0: s3 s2 s1 s0 = 1 1 0 1
     *     row 1: s4 s3 s2 s1 = 0 1 1 0
     *     row 2: s5 s4 s3 s2 = 0 0 1 1
     * x = x0..x3 = 1 1 0 1 (word 0x0b):
     *     y0 = 1&1 ^ 1&1 ^ 0&0 ^ 1&1 = 1, y1 = 0 ^ 1 ^ 0 ^ 0 = 1,
     *     y2 = 0 ^ 0 ^ 0 ^ 1 = 1  ->  y = 0x7
     * x = 1 0 0 1 (word 0x09):
     *     y0 = 1 ^ 1 = 0, y1 = 0 ^ 0 = 0, y2 = 0 ^ 1 = 1  ->  y = 0x4
     * Cross-check of the second as a middle product: S(z) = 1 + z^2 + z^3,
     * X(z) = 1 + z^3, S X = 1 + z^2 + z^5 + z^6; coefficients of z^3, z^4,
     * z^5 are 0 0 1. (A Hankel reading s[i+j] would give y0 = 0 for the
     * first x, so the convention is pinned.) */
    const uint64_t seed = 0x0d, xa = 0x0b, xb = 0x09;
    uint64_t y = 0;
    ASSERT_OK(kagi_toeplitz_naive(&seed, &xa, 4, 3, &y));
    ASSERT_EQ(y, 0x7);
    ASSERT_OK(kagi_toeplitz_naive(&seed, &xb, 4, 3, &y));
    ASSERT_EQ(y, 0x4);
    ASSERT_OK(kagi_toeplitz(&seed, &xb, 4, 3, &y));
    ASSERT_EQ(y, 0x4);
    ASSERT_OK(kagi_toeplitz_words(&seed, &xb, 4, 3, &y));
    ASSERT_EQ(y, 0x4);
}

/* Runs every implementation on one size and compares with the oracle. */
static int check_size(kagi_rng *r, size_t n, size_t m, int with_portable)
{
    uint64_t *s = rand_words(r, n + m - 1), *x = rand_words(r, n);
    uint64_t *want = out_words(m), *got = out_words(m);
    int ok = 1, lv = kagi__cpu_level();
    if (kagi_toeplitz_naive(s, x, n, m, want) != KAGI_OK) ok = 0;
    if (m & 63) ok &= (want[m >> 6] >> (m & 63)) == 0;
    ASSERT_OK(kagi_toeplitz(s, x, n, m, got));
    if (!same_words(got, want, m)) { T_FAIL("kagi_toeplitz n=%zu m=%zu", n, m); ok = 0; }
    ASSERT_OK(kagi_toeplitz_words(s, x, n, m, got));
    if (!same_words(got, want, m)) { T_FAIL("kagi_toeplitz_words n=%zu m=%zu", n, m); ok = 0; }
    for (int l = with_portable ? 0 : 1; l <= lv; l++) {
        memset(got, 0x5a, KAGI_WORDS(m) * sizeof *got);
        ASSERT_OK(kagi__toeplitz_kara(s, x, n, m, got, l));
        if (!same_words(got, want, m)) { T_FAIL("karatsuba level %d n=%zu m=%zu", l, n, m); ok = 0; }
        memset(got, 0x5a, KAGI_WORDS(m) * sizeof *got);
        ASSERT_OK(kagi__toeplitz_fft(s, x, n, m, got, l));
        if (!same_words(got, want, m)) { T_FAIL("fft level %d n=%zu m=%zu", l, n, m); ok = 0; }
    }
    free(s); free(x); free(want); free(got);
    return ok;
}

static void all_paths_match_oracle_at_edge_sizes(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 11);
    static const size_t sizes[][2] = {
        {1, 1}, {2, 1}, {2, 2}, {3, 2}, {63, 1}, {63, 63}, {64, 1}, {64, 64}, {65, 1}, {65, 2},
        {65, 64}, {65, 65}, {127, 64}, {128, 1}, {128, 65}, {128, 128}, {129, 128}, {129, 129},
        {191, 1}, {192, 192}, {193, 130}, {1000, 1}, {1000, 999}, {1000, 1000}, {1024, 512},
        {1087, 1087}, {1089, 33}, {2048, 2048}, {2113, 1057},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (!check_size(&r, sizes[i][0], sizes[i][1], 1)) break;
}

static void all_paths_match_oracle_at_random_sizes(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 12);
    for (int t = 0; t < 150; t++) {
        size_t n = 1 + kagi_rng_below(&r, t < 100 ? 300 : 3000);
        size_t m = 1 + kagi_rng_below(&r, n);
        if (!check_size(&r, n, m, t < 60)) break;
    }
}

/* Sizes where kagi_toeplitz takes the FFT with one and several key
 * pieces; the word version (checked against the oracle above) is the
 * reference, and the Karatsuba path must agree with the FFT. */
static void large_sizes_agree_across_algorithms(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 13);
    static const size_t sizes[][2] = {
        {140001, 70001}, {100003, 99999}, {300007, 65601}, {70000, 65536},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i][0], m = sizes[i][1];
        uint64_t *s = rand_words(&r, n + m - 1), *x = rand_words(&r, n);
        uint64_t *want = out_words(m), *got = out_words(m);
        ASSERT_OK(kagi_toeplitz_words(s, x, n, m, want));
        ASSERT_OK(kagi_toeplitz(s, x, n, m, got));
        if (!same_words(got, want, m)) T_FAIL("fast vs words n=%zu m=%zu", n, m);
        ASSERT_OK(kagi__toeplitz_kara(s, x, n, m, got, kagi__cpu_level()));
        if (!same_words(got, want, m)) T_FAIL("karatsuba vs words n=%zu m=%zu", n, m);
        free(s); free(x); free(want); free(got);
    }
    /* Too big for the word version: the two fast algorithms check each
     * other (they share no code but the bit packing). */
    static const size_t big[][2] = {{1000003, 500001}, {1500017, 200003}, {900001, 899999}};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        size_t n = big[i][0], m = big[i][1];
        uint64_t *s = rand_words(&r, n + m - 1), *x = rand_words(&r, n);
        uint64_t *a = out_words(m), *b = out_words(m);
        ASSERT_OK(kagi__toeplitz_fft(s, x, n, m, a, kagi__cpu_level()));
        ASSERT_OK(kagi__toeplitz_kara(s, x, n, m, b, kagi__cpu_level()));
        if (!same_words(a, b, m)) T_FAIL("fft vs karatsuba n=%zu m=%zu", n, m);
        free(s); free(x); free(a); free(b);
    }
}

static void inputs_unchanged_and_tail_bits_ignored(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 14);
    size_t sizes[][2] = {{777, 333}, {200000, 100000}};
    for (int i = 0; i < 2; i++) {
        size_t n = sizes[i][0], m = sizes[i][1], sw = KAGI_WORDS(n + m - 1), xw = KAGI_WORDS(n);
        uint64_t *s = rand_words(&r, n + m - 1), *x = rand_words(&r, n);
        uint64_t *s0 = malloc(sw * 8), *x0 = malloc(xw * 8), *a = out_words(m), *b = out_words(m);
        memcpy(s0, s, sw * 8);
        memcpy(x0, x, xw * 8);
        ASSERT_OK(kagi_toeplitz(s, x, n, m, a));
        ASSERT_TRUE(memcmp(s, s0, sw * 8) == 0 && memcmp(x, x0, xw * 8) == 0);
        /* Clearing the bits past the ends must not change the result. */
        s[sw - 1] &= ~(uint64_t)0 >> (64 * sw - (n + m - 1));
        x[xw - 1] &= ~(uint64_t)0 >> (64 * xw - n);
        ASSERT_OK(kagi_toeplitz(s, x, n, m, b));
        ASSERT_TRUE(same_words(a, b, m));
        ASSERT_EQ(a[KAGI_WORDS(m) - 1] >> (m & 63), 0);
        free(s); free(x); free(s0); free(x0); free(a); free(b);
    }
}

static void batch_matches_single_calls_on_any_thread_count(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 15);
    enum { J = 7 };
    kagi_toeplitz_job jobs[J];
    uint64_t *want[J];
    for (int i = 0; i < J; i++) {
        size_t n = i == 3 ? 150000 : 1 + kagi_rng_below(&r, 5000), m = 1 + kagi_rng_below(&r, n);
        jobs[i] = (kagi_toeplitz_job){rand_words(&r, n + m - 1), rand_words(&r, n), n, m, out_words(m), -1};
        want[i] = out_words(m);
        ASSERT_OK(kagi_toeplitz(jobs[i].seed, jobs[i].x, n, m, want[i]));
    }
    int counts[] = {1, 2, 0, 16};
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < J; i++) memset(jobs[i].y, 0, KAGI_WORDS(jobs[i].m) * 8);
        ASSERT_OK(kagi_toeplitz_batch(jobs, J, counts[c]));
        for (int i = 0; i < J; i++) {
            ASSERT_EQ(jobs[i].rc, KAGI_OK);
            if (!same_words(jobs[i].y, want[i], jobs[i].m)) T_FAIL("threads=%d job %d", counts[c], i);
        }
    }
    ASSERT_OK(kagi_toeplitz_batch(jobs, 0, 2));
    /* One bad job: nothing runs, every rc is KAGI_ERR_ARG, detail names it. */
    size_t keep = jobs[5].m;
    jobs[5].m = jobs[5].n + 1;
    memset(jobs[0].y, 0, 8);
    ASSERT_EQ(kagi_toeplitz_batch(jobs, J, 2), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "job 5") != NULL);
    for (int i = 0; i < J; i++) ASSERT_EQ(jobs[i].rc, KAGI_ERR_ARG);
    ASSERT_EQ(jobs[0].y[0], 0);
    jobs[5].m = keep;
    ASSERT_EQ(kagi_toeplitz_batch(NULL, 3, 1), KAGI_ERR_ARG);
    for (int i = 0; i < J; i++) {
        free((void *)jobs[i].seed); free((void *)jobs[i].x); free(jobs[i].y); free(want[i]);
    }
}

/* Output bit i by the definition: the parity over j of s[i - j + n - 1] x[j]. */
static int toeplitz_bit(const uint64_t *s, const uint64_t *x, size_t n, size_t i)
{
    int v = 0;
    for (size_t j = 0; j < n; j++)
        v ^= (int)((s[(i + n - 1 - j) >> 6] >> ((i + n - 1 - j) & 63)) & (x[j >> 6] >> (j & 63)) & 1);
    return v;
}

static void one_block_on_threads_matches_one_thread_and_definition(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 17);
    /* one piece, and a key long enough for several */
    static const size_t sizes[][2] = {{2097165, 1048583}, {3000017, 1200001}, {6000011, 200003}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i][0], m = sizes[i][1];
        uint64_t *s = rand_words(&r, n + m - 1), *x = rand_words(&r, n);
        uint64_t *one = out_words(m), *many = out_words(m);
        ASSERT_OK(kagi_toeplitz(s, x, n, m, one));
        for (int th = 2; th <= 4; th++) {
            memset(many, 0x5a, KAGI_WORDS(m) * sizeof *many);
            ASSERT_OK(kagi_toeplitz_mt(s, x, n, m, many, th));
            if (!same_words(one, many, m)) T_FAIL("%d threads differ from one, n=%zu m=%zu", th, n, m);
        }
        /* and a few output bits (first, last, random) from the definition */
        for (int k = 0; k < 8; k++) {
            size_t b = k == 0 ? 0 : k == 1 ? m - 1 : (size_t)kagi_rng_below(&r, m);
            ASSERT_EQ((int)((many[b >> 6] >> (b & 63)) & 1), toeplitz_bit(s, x, n, b));
        }
        free(s); free(x); free(one); free(many);
    }
    uint64_t s1[2] = {1, 2}, x1[1] = {3}, y1[1] = {0};
    ASSERT_EQ(kagi_toeplitz_mt(s1, x1, 10, 11, y1, 2), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "kagi_toeplitz_mt") != NULL);
}

static void bad_arguments_return_arg_error(void)
{
    uint64_t s[2] = {1, 2}, x[1] = {3}, y[1] = {0};
    typedef int (*fn)(const uint64_t *, const uint64_t *, size_t, size_t, uint64_t *);
    fn fns[] = {kagi_toeplitz_naive, kagi_toeplitz_words, kagi_toeplitz};
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(fns[i](s, x, 10, 0, y), KAGI_ERR_ARG);
        ASSERT_TRUE(strstr(kagi_errdetail(), "m=0") != NULL);
        ASSERT_EQ(fns[i](s, x, 10, 11, y), KAGI_ERR_ARG);
        ASSERT_TRUE(strstr(kagi_errdetail(), "n=10") != NULL);
        ASSERT_EQ(fns[i](s, x, 0, 0, y), KAGI_ERR_ARG);
        ASSERT_EQ(y[0], 0); /* nothing written on failure */
    }
    /* Pointers in a batch job are not covered by nonnull: checked. */
    kagi_toeplitz_job j = {s, NULL, 10, 5, y, -1};
    ASSERT_EQ(kagi_toeplitz_batch(&j, 1, 1), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "job 0") != NULL);
    ASSERT_EQ(j.rc, KAGI_ERR_ARG);
}

T_MAIN(T(oracle_matches_hand_worked_matrix), T(all_paths_match_oracle_at_edge_sizes),
       T(all_paths_match_oracle_at_random_sizes), T(large_sizes_agree_across_algorithms),
       T(inputs_unchanged_and_tail_bits_ignored),
       T(batch_matches_single_calls_on_any_thread_count),
       T(one_block_on_threads_matches_one_thread_and_definition), T(bad_arguments_return_arg_error))
