/* Bit vectors and bit files against naive byte-by-byte oracles. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kagi/bits.h"
#include "kagi/buf.h"
#include "kagi/error.h"
#include "t.h"

static void parity_range_matches_bit_loop(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 7);
    kagi_bits *b;
    ASSERT_OK(kagi_bits_new(&b, 1000));
    for (size_t i = 0; i < b->n; i++) kagi_bits_set(b, i, (int)(kagi_rng_next(&r) & 1));
    for (int t = 0; t < 5000; t++) {
        size_t lo = kagi_rng_below(&r, 1001), hi = kagi_rng_below(&r, 1001);
        if (lo > hi) { size_t x = lo; lo = hi; hi = x; }
        int p = 0;
        for (size_t i = lo; i < hi; i++) p ^= kagi_bits_get(b, i);
        if (kagi_parity_range(b->w, lo, hi) != p) { T_FAIL("parity [%zu,%zu)", lo, hi); break; }
    }
    kagi_bits_free(b);
}

static void file_roundtrip_uses_lsb_first_bytes(void)
{
    char path[] = "/tmp/kagi-test-bits-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    kagi_bits *b, *c;
    ASSERT_OK(kagi_bits_new(&b, 13));
    kagi_bits_set(b, 0, 1);
    kagi_bits_set(b, 9, 1);
    kagi_bits_set(b, 12, 1);
    ASSERT_OK(kagi_bits_write_file(path, b));
    FILE *f = fopen(path, "rb");
    unsigned char bytes[4] = {0};
    size_t got = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    ASSERT_EQ(got, 2);
    ASSERT_EQ(bytes[0], 0x01);
    ASSERT_EQ(bytes[1], 0x12); /* bits 9 and 12 -> 1<<1 | 1<<4 */
    ASSERT_OK(kagi_bits_read_file(path, 13, &c));
    ASSERT_EQ(kagi_bits_hamming(b->w, c->w, 13), 0);
    kagi_bits_free(c);
    c = NULL;
    ASSERT_EQ(kagi_bits_read_file(path, 17, &c), KAGI_ERR_SHORT);
    ASSERT_TRUE(c == NULL);
    ASSERT_TRUE(strstr(kagi_errdetail(), "16 bits") != NULL);
    ASSERT_EQ(kagi_bits_read_file(path, 0, &c), KAGI_ERR_ARG);
    ASSERT_EQ(kagi_bits_read_file("/nonexistent/kagi", 8, &c), KAGI_ERR_IO);
    unlink(path);
    kagi_bits_free(b);
}

static void rng_below_is_uniform_enough(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 1);
    int hist[6] = {0};
    for (int i = 0; i < 60000; i++) hist[kagi_rng_below(&r, 6)]++;
    for (int i = 0; i < 6; i++) ASSERT_NEAR(hist[i], 10000, 400); /* ~4 sigma */
}

/* The oracle: bits [off, off + len) where a and b differ, one by one. */
static size_t diff_bit_by_bit(const kagi_bits *a, const kagi_bits *b, size_t off, size_t len)
{
    size_t d = 0;
    for (size_t k = off; k < off + len; k++) d += kagi_bits_get(a, k) != kagi_bits_get(b, k);
    return d;
}

/* The BSC pair: the count it reports is the number of differing bits
 * (counted bit by bit), about q n (within 5 sigma of the binomial), and
 * nothing past n is set. */
static void bsc_pair_counts_its_flips(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 3);
    kagi_bits *a = NULL, *b = NULL;
    size_t e = 0, n = 100003;
    ASSERT_OK(kagi_bits_bsc_pair(&r, n, 0.03, &a, &b, &e));
    if (!a || !b) return;
    ASSERT_EQ(diff_bit_by_bit(a, b, 0, n), e);
    ASSERT_NEAR((double)e, 0.03 * (double)n, 5 * 53.9); /* sqrt(n q (1-q)) = 53.9 */
    ASSERT_EQ(a->w[n / 64] >> (n & 63), 0);
    kagi_bits_free(a);
    kagi_bits_free(b);
}

/* kagi_buf_printf appends exactly what snprintf would write, however
 * long (the oracle: snprintf into a big enough array). */
static void buf_printf_is_never_cut(void)
{
    char big[2000], want[2100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    kagi_buf b;
    kagi_buf_init(&b, 1 << 20);
    kagi_buf_printf(&b, "[%d]", 7);
    kagi_buf_printf(&b, "<%s|%05.1f>", big, 2.25);
    int n = snprintf(want, sizeof want, "[%d]<%s|%05.1f>", 7, big, 2.25);
    ASSERT_EQ(b.err, 0);
    ASSERT_EQ(b.len, (size_t)n);
    ASSERT_TRUE(b.p && !memcmp(b.p, want, (size_t)n));
    kagi_buf_free(&b);
    kagi_buf_init(&b, 10); /* over the cap: an error, not a cut */
    kagi_buf_printf(&b, "%s", big);
    ASSERT_TRUE(b.err != 0);
    kagi_buf_free(&b);
}

/* kagi_bits_hamming_at against the bit-by-bit count, at offsets and
 * lengths on and off word boundaries (and a length of 0). */
static void hamming_at_matches_bit_loop(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 17);
    kagi_bits *a = NULL, *b = NULL;
    size_t e = 0, n = 5000;
    ASSERT_OK(kagi_bits_bsc_pair(&r, n, 0.1, &a, &b, &e));
    if (!a || !b) return;
    const size_t offs[] = {0, 1, 63, 64, 65, 1000, 4999}, lens[] = {0, 1, 63, 64, 65, 129, 3000};
    for (size_t i = 0; i < 7; i++)
        for (size_t j = 0; j < 7; j++) {
            size_t off = offs[i], len = offs[i] + lens[j] <= n ? lens[j] : n - offs[i];
            ASSERT_EQ(kagi_bits_hamming_at(a->w, b->w, off, len), diff_bit_by_bit(a, b, off, len));
        }
    ASSERT_EQ(kagi_bits_hamming_at(a->w, b->w, 0, n), e);
    kagi_bits_free(a);
    kagi_bits_free(b);
}

T_MAIN(T(parity_range_matches_bit_loop), T(hamming_at_matches_bit_loop), T(buf_printf_is_never_cut), T(file_roundtrip_uses_lsb_first_bytes),
       T(rng_below_is_uniform_enough), T(bsc_pair_counts_its_flips))
