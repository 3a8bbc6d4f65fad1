/* Sampling against a naive Floyd sampler and a bit loop; the finite-key
 * length against values computed independently with python3. */
#include "kagi/bits.h"
#include "kagi/error.h"
#include "kagi/estimate.h"
#include "t.h"

static int check_positions(const size_t *pos, size_t n, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        if (pos[i] >= n) return 0;
        if (i && pos[i] <= pos[i - 1]) return 0; /* sorted and distinct */
    }
    return 1;
}

static void sample_positions_are_sorted_distinct_in_range(void)
{
    /* Both membership structures: bitmap (k >= n/128) and hash table. */
    const size_t cases[][2] = {{1, 1}, {10, 0}, {10, 10}, {100, 37}, {64, 63},
                               {100000, 5}, {100000, 700}, {100000, 99999}, {1 << 20, 3000}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t n = cases[c][0], k = cases[c][1];
        size_t *pos = malloc((k ? k : 1) * sizeof *pos);
        for (uint64_t seed = 0; seed < 5; seed++) {
            ASSERT_OK(kagi_sample_positions(seed, n, k, pos));
            if (!check_positions(pos, n, k)) T_FAIL("n %zu k %zu seed %" PRIu64, n, k, seed);
        }
        free(pos);
    }
    size_t p[4];
    ASSERT_EQ(kagi_sample_positions(1, 3, 4, p), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "4 positions") != NULL);
    ASSERT_OK(kagi_sample_positions(1, 0, 0, NULL));
    ASSERT_EQ(kagi_sample_positions(1, 10, 2, NULL), KAGI_ERR_ARG);
}

/* Floyd's sampler as documented in estimate.h, membership by linear scan. */
static void naive_floyd(uint64_t seed, size_t n, size_t k, size_t *out)
{
    kagi_rng r;
    kagi_rng_seed(&r, seed);
    size_t got = 0;
    for (size_t j = n - k; j < n; j++) {
        size_t t = (size_t)kagi_rng_below(&r, (uint64_t)j + 1), seen = 0;
        for (size_t i = 0; i < got; i++) seen |= out[i] == t;
        out[got++] = seen ? j : t;
    }
    for (size_t i = 1; i < k; i++) /* insertion sort */
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            size_t x = out[j];
            out[j] = out[j - 1];
            out[j - 1] = x;
        }
}

static void sample_positions_match_documented_floyd(void)
{
    /* ... including several chunks of draws (k > 1024) on both set kinds */
    const size_t cases[][2] = {{50, 20},       {1000, 900},   {1000000, 100}, {20000, 150},
                               {20000, 157},   {5000, 3000},  {10000000, 2500}};
    static size_t a[3000], b[3000];
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (uint64_t seed = 1; seed < 4; seed++) {
            size_t n = cases[c][0], k = cases[c][1];
            ASSERT_OK(kagi_sample_positions(seed, n, k, a));
            naive_floyd(seed, n, k, b);
            if (memcmp(a, b, k * sizeof *a)) T_FAIL("n %zu k %zu seed %" PRIu64, n, k, seed);
        }
    /* Same seed, same positions (both parties); another seed, others. */
    ASSERT_OK(kagi_sample_positions(42, 100000, 50, a));
    ASSERT_OK(kagi_sample_positions(42, 100000, 50, b));
    ASSERT_TRUE(memcmp(a, b, 50 * sizeof *a) == 0);
    ASSERT_OK(kagi_sample_positions(43, 100000, 50, b));
    ASSERT_TRUE(memcmp(a, b, 50 * sizeof *a) != 0);
}

static void sample_positions_are_roughly_uniform(void)
{
    /* Bitmap path: each of 20 positions is picked with probability 1/4;
     * 20000 draws give 5000 +- 61 (sd), so 300 is ~5 sd. */
    int hist[20] = {0};
    size_t pos[10];
    for (uint64_t s = 0; s < 20000; s++) {
        ASSERT_OK(kagi_sample_positions(s, 20, 5, pos));
        for (int i = 0; i < 5; i++) hist[pos[i]]++;
    }
    for (int i = 0; i < 20; i++) ASSERT_NEAR(hist[i], 5000, 300);
    /* Hash path: 10 of 4000, in 10 buckets of 400: 20000 expected each,
     * sd ~ 134, tolerance 700. */
    int buck[10] = {0};
    for (uint64_t s = 0; s < 20000; s++) {
        ASSERT_OK(kagi_sample_positions(s, 4000, 10, pos));
        for (int i = 0; i < 10; i++) buck[pos[i] / 400]++;
    }
    for (int i = 0; i < 10; i++) ASSERT_NEAR(buck[i], 20000, 700);
}

static void split_sample_reassembles_input(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 5);
    for (int t = 0; t < 200; t++) {
        size_t n = 1 + kagi_rng_below(&r, 3000);
        size_t k = t % 10 == 0 ? 0 : t % 10 == 1 ? n : kagi_rng_below(&r, n + 1);
        kagi_bits *in, *s, *rest;
        ASSERT_OK(kagi_bits_new(&in, n));
        for (size_t i = 0; i < n; i++) kagi_bits_set(in, i, (int)(kagi_rng_next(&r) & 1));
        size_t *pos = malloc((k ? k : 1) * sizeof *pos);
        ASSERT_OK(kagi_sample_positions((uint64_t)t, n, k, pos));
        ASSERT_OK(kagi_split_sample(in, pos, k, &s, &rest));
        ASSERT_EQ(s->n, k);
        ASSERT_EQ(rest->n, n - k);
        /* Walk the input bit by bit, taking from sample or rest. */
        size_t si = 0, ri = 0, bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (si < k && pos[si] == i) bad += kagi_bits_get(s, si++) != kagi_bits_get(in, i);
            else bad += kagi_bits_get(rest, ri++) != kagi_bits_get(in, i);
        }
        if (bad) T_FAIL("n %zu k %zu: %zu bits differ", n, k, bad);
        /* Bits past the end stay zero (whole-word operations rely on it). */
        if (k & 63) ASSERT_EQ(s->w[k >> 6] >> (k & 63), 0);
        if ((n - k) & 63) ASSERT_EQ(rest->w[(n - k) >> 6] >> ((n - k) & 63), 0);
        kagi_bits_free(s);
        kagi_bits_free(rest);
        kagi_bits_free(in);
        free(pos);
    }
}

static void split_sample_rejects_bad_positions(void)
{
    kagi_bits *in, *s = (kagi_bits *)1, *rest = (kagi_bits *)1;
    ASSERT_OK(kagi_bits_new(&in, 100));
    const size_t unsorted[] = {3, 9, 7}, dup[] = {3, 3}, far[] = {5, 100};
    ASSERT_EQ(kagi_split_sample(in, unsorted, 3, &s, &rest), KAGI_ERR_ARG);
    ASSERT_TRUE(s == NULL && rest == NULL);
    ASSERT_TRUE(strstr(kagi_errdetail(), "index 2") != NULL);
    ASSERT_EQ(kagi_split_sample(in, dup, 2, &s, &rest), KAGI_ERR_ARG);
    ASSERT_EQ(kagi_split_sample(in, far, 2, &s, &rest), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "position 100") != NULL);
    kagi_bits_free(in);
}

static void h2_known_values(void)
{
    ASSERT_EQ(kagi_h2(0.0), 0);
    ASSERT_EQ(kagi_h2(1.0), 0);
    ASSERT_NEAR(kagi_h2(0.5), 1.0, 1e-15);
    /* python3 -c "import math;p=.11;print(-p*math.log2(p)-(1-p)*math.log2(1-p))" */
    ASSERT_NEAR(kagi_h2(0.11), 0.499915958164528, 1e-14);
    ASSERT_NEAR(kagi_h2(0.25), kagi_h2(0.75), 1e-15);
    ASSERT_TRUE(isnan(kagi_h2(-0.1)) && isnan(kagi_h2(1.5)) && isnan(kagi_h2(NAN)));
}

/* Reference values from python3 with only math:
 *   import math
 *   h = lambda p: -p*math.log2(p) - (1-p)*math.log2(1-p)
 *   def fk(n, k, e, leak, es, ec):
 *       Q = e/k; mu = math.sqrt((n+k)/(n*k) * (k+1)/k * math.log(4/es))
 *       L = n*(1 - h(Q+mu)) - leak - math.log2(2/(es**2*ec))
 *       return Q, mu, L, math.floor(L)
 * (see docs/security.md for the ln(4/eps_sec) in mu). */
static void finite_key_matches_independent_values(void)
{
    const struct {
        kagi_fk_in in;
        double mu, real;
        size_t len;
    } cases[] = {
        /* fk(10**6, 10**5, 2000, 1.1*10**6*h(0.02), 1e-10, 1e-15) */
        {{1000000, 100000, 2000, 155584.59679600273, 1e-10, 1e-15},
         0.016387076723370947, 618823.6837454733, 618823},
        /* fk(10**5, 10**4, 300, 20000, 1e-9, 1e-12) */
        {{100000, 10000, 300, 20000, 1e-9, 1e-12}, 0.049318301136084076, 39922.08060317488, 39922},
        /* fk(10**7, 3*10**5, 9000, 2500000, 1e-10, 1e-15) */
        {{10000000, 300000, 9000, 2500000, 1e-10, 1e-15},
         0.009155070264580956, 5115835.575782328, 5115835},
        /* fk(10**4, 2000, 100, 3000, 1e-10, 1e-15) */
        {{10000, 2000, 100, 3000, 1e-10, 1e-15}, 0.12105622998517476, 281.5795998274629, 281},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        kagi_fk_out out;
        ASSERT_OK(kagi_finite_key_bb84(&cases[c].in, &out));
        ASSERT_NEAR(out.qber, (double)cases[c].in.errors / (double)cases[c].in.k, 1e-15);
        ASSERT_NEAR(out.mu, cases[c].mu, 1e-12);
        ASSERT_NEAR(out.qber_upper, out.qber + out.mu, 1e-15);
        ASSERT_NEAR(out.length_real, cases[c].real, 1e-6 * (1 + cases[c].real));
        ASSERT_EQ(out.length, cases[c].len);
    }
    /* The python value of 1.1*10**6*h(0.02), used above. */
    ASSERT_NEAR(1.1e6 * kagi_h2(0.02), 155584.59679600273, 1e-6);
}

static void finite_key_zero_cases_and_bad_arguments(void)
{
    kagi_fk_out out;
    /* Q = 0.49, Q + mu >= 1/2: nothing, however small the leak. */
    kagi_fk_in in = {1000000, 100000, 49000, 0, 1e-10, 1e-15};
    ASSERT_OK(kagi_finite_key_bb84(&in, &out));
    ASSERT_EQ(out.length, 0);
    ASSERT_TRUE(out.qber_upper >= 0.5);
    /* Q = 0.11 with leak 1.1 n h(Q): the expression is negative. */
    in.errors = 11000;
    in.leak_ec = 1.1e6 * kagi_h2(0.11);
    ASSERT_OK(kagi_finite_key_bb84(&in, &out));
    ASSERT_EQ(out.length, 0);
    ASSERT_TRUE(out.qber_upper < 0.5 && out.length_real < 0);
    /* The same QBER with no leak leaves key: python fk(10**6, 10**5,
     * 11000, 0, 1e-10, 1e-15) = 452436.92164887895. */
    in.leak_ec = 0;
    ASSERT_OK(kagi_finite_key_bb84(&in, &out));
    ASSERT_EQ(out.length, 452436);
    /* Tiny blocks: the log2(2/(eps_sec^2 eps_cor)) = 117.3 bits term alone
     * exceeds n. */
    kagi_fk_in tiny = {100, 100, 0, 0, 1e-10, 1e-15};
    ASSERT_OK(kagi_finite_key_bb84(&tiny, &out));
    ASSERT_EQ(out.length, 0);

    kagi_fk_in bad = {1000, 0, 0, 0, 1e-10, 1e-10};
    ASSERT_EQ(kagi_finite_key_bb84(&bad, &out), KAGI_ERR_ARG);
    bad.k = 100;
    bad.n = 0;
    ASSERT_EQ(kagi_finite_key_bb84(&bad, &out), KAGI_ERR_ARG);
    bad.n = 1000;
    bad.errors = 101;
    ASSERT_EQ(kagi_finite_key_bb84(&bad, &out), KAGI_ERR_ARG);
    bad.errors = 1;
    bad.eps_sec = 0;
    ASSERT_EQ(kagi_finite_key_bb84(&bad, &out), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "eps_sec") != NULL);
    bad.eps_sec = 1e-10;
    bad.eps_cor = 1;
    ASSERT_EQ(kagi_finite_key_bb84(&bad, &out), KAGI_ERR_ARG);
    bad.eps_cor = 1e-10;
    bad.leak_ec = -1;
    ASSERT_EQ(kagi_finite_key_bb84(&bad, &out), KAGI_ERR_ARG);
    bad.leak_ec = INFINITY;
    ASSERT_EQ(kagi_finite_key_bb84(&bad, &out), KAGI_ERR_ARG);
}

static void sample_size_default_follows_documented_rule(void)
{
    ASSERT_EQ(kagi_sample_size_default(0), 0);
    ASSERT_EQ(kagi_sample_size_default(1), 0);
    ASSERT_EQ(kagi_sample_size_default(100), 50);    /* n/2 cap */
    ASSERT_EQ(kagi_sample_size_default(1999), 999);  /* n/2 cap */
    const size_t ns[] = {3000, 10000, 1000000, 100000000};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        double want = ceil(7.0 * pow((double)ns[i], 2.0 / 3.0));
        ASSERT_NEAR((double)kagi_sample_size_default(ns[i]), want, 1.0);
    }
}

T_MAIN(T(sample_positions_are_sorted_distinct_in_range), T(sample_positions_match_documented_floyd),
       T(sample_positions_are_roughly_uniform), T(split_sample_reassembles_input),
       T(split_sample_rejects_bad_positions), T(h2_known_values),
       T(finite_key_matches_independent_values), T(finite_key_zero_cases_and_bad_arguments),
       T(sample_size_default_follows_documented_rule))
