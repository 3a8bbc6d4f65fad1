/* Field arithmetic against bit-by-bit references and values worked out by
 * hand; the polynomial hash against naive Horner; the key pool, the MAC
 * and key verification tags against their contracts. */
#include "kagi/auth.h"
#include "kagi/bits.h"
#include "kagi/error.h"
#include "t.h"

static void rand_bits(kagi_rng *r, uint64_t *w, size_t nw)
{
    for (size_t i = 0; i < nw; i++) w[i] = kagi_rng_next(r);
}

/* Bit j of a byte string, as in kagi/bits.h. */
static int byte_bit(const uint8_t *m, size_t j) { return (m[j >> 3] >> (j & 7)) & 1; }

static void gf128_pclmul_matches_reference(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 128);
    for (int t = 0; t < 20000; t++) {
        uint64_t a[2], b[2], x[2], y[2];
        rand_bits(&r, a, 2);
        rand_bits(&r, b, 2);
        /* Sparse and dense operands reach the reduction's corner cases. */
        if (t % 4 == 1) a[1] |= 0xffffffffffff0000ull;
        if (t % 4 == 2) b[0] &= 0xff;
        kagi_gf128_mul(x, a, b);
        kagi_gf128_mul_ref(y, a, b);
        if (x[0] != y[0] || x[1] != y[1]) {
            T_FAIL("case %d: %016" PRIx64 "%016" PRIx64 " vs %016" PRIx64 "%016" PRIx64, t,
                   x[1], x[0], y[1], y[0]);
            break;
        }
    }
    uint64_t ones[2] = {~0ull, ~0ull}, x[2], y[2];
    kagi_gf128_mul(x, ones, ones);
    kagi_gf128_mul_ref(y, ones, ones);
    ASSERT_TRUE(x[0] == y[0] && x[1] == y[1]);
}

static void gf128_hand_values(void)
{
    const uint64_t one[2] = {1, 0}, gen[2] = {2, 0};
    uint64_t r[2];
    kagi_rng rr;
    kagi_rng_seed(&rr, 1);
    for (int t = 0; t < 100; t++) { /* a * 1 = a, both ways round */
        uint64_t a[2];
        rand_bits(&rr, a, 2);
        kagi_gf128_mul(r, a, one);
        ASSERT_TRUE(r[0] == a[0] && r[1] == a[1]);
        kagi_gf128_mul(r, one, a);
        ASSERT_TRUE(r[0] == a[0] && r[1] == a[1]);
    }
    /* x * x^127 = x^128 = x^7 + x^2 + x + 1 = 0x87. */
    const uint64_t x127[2] = {0, 1ull << 63};
    kagi_gf128_mul(r, gen, x127);
    ASSERT_TRUE(r[0] == 0x87 && r[1] == 0);
    /* x * (x^127 + x^64 + 1) = 0x87 + x^65 + x: lo 0x87 ^ 0x2, hi 0x2. */
    const uint64_t a[2] = {1, (1ull << 63) | 1};
    kagi_gf128_mul(r, gen, a);
    ASSERT_TRUE(r[0] == 0x85 && r[1] == 0x2);
    /* x^64 * x^64 = x^128 = 0x87. */
    const uint64_t x64[2] = {0, 1};
    kagi_gf128_mul(r, x64, x64);
    ASSERT_TRUE(r[0] == 0x87 && r[1] == 0);
    /* x^127 * x^127 = x^126 (x^7 + x^2 + x + 1) = x^133 + x^128 + x^127 + x^126
     * = (x^12 + x^7 + x^6 + x^5) + (x^7 + x^2 + x + 1) + x^127 + x^126
     * = x^127 + x^126 + x^12 + x^6 + x^5 + x^2 + x + 1. */
    kagi_gf128_mul(r, x127, x127);
    ASSERT_TRUE(r[0] == 0x1067 && r[1] == 0xc000000000000000ull);
    /* Frobenius: a^(2^128) = a for every a only if the modulus is
     * irreducible and the multiply is that field's. */
    for (int t = 0; t < 20; t++) {
        uint64_t b[2], s[2];
        rand_bits(&rr, b, 2);
        s[0] = b[0];
        s[1] = b[1];
        for (int i = 0; i < 128; i++) kagi_gf128_mul(s, s, s);
        ASSERT_TRUE(s[0] == b[0] && s[1] == b[1]);
    }
}

static void gf64_pclmul_matches_reference_and_hand_values(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 64);
    for (int t = 0; t < 20000; t++) {
        uint64_t a = kagi_rng_next(&r), b = kagi_rng_next(&r);
        if (t % 3 == 1) a |= 0xffffffff00000000ull;
        if (kagi_gf64_mul(a, b) != kagi_gf64_mul_ref(a, b)) {
            T_FAIL("case %d: %016" PRIx64 " * %016" PRIx64, t, a, b);
            break;
        }
        ASSERT_EQ(kagi_gf64_mul(a, 1), a);
    }
    ASSERT_TRUE(kagi_gf64_mul(~0ull, ~0ull) == kagi_gf64_mul_ref(~0ull, ~0ull));
    /* x * x^63 = x^64 = x^4 + x^3 + x + 1 = 0x1b. */
    ASSERT_TRUE(kagi_gf64_mul(2, 1ull << 63) == 0x1b);
    /* x^63 * x^63 = x^62 (x^4 + x^3 + x + 1) = x^66 + x^65 + x^63 + x^62
     * = (x^6 + x^5 + x^3 + x^2) + (x^5 + x^4 + x^2 + x) + x^63 + x^62
     * = x^63 + x^62 + x^6 + x^4 + x^3 + x. */
    ASSERT_TRUE(kagi_gf64_mul(1ull << 63, 1ull << 63) == 0xc00000000000005aull);
    for (int t = 0; t < 20; t++) {
        uint64_t a = kagi_rng_next(&r), s = a;
        for (int i = 0; i < 64; i++) s = kagi_gf64_mul(s, s);
        ASSERT_TRUE(s == a);
    }
}

/* Horner over 128-bit blocks read bit by bit, with the reference multiply. */
static void naive_hash128(const uint64_t h[2], const uint8_t *m, size_t nbits, uint64_t out[2])
{
    uint64_t acc[2] = {0, 0};
    for (size_t blk = 0; blk * 128 < nbits; blk++) {
        for (size_t b = 0; b < 128 && blk * 128 + b < nbits; b++)
            acc[b / 64] ^= (uint64_t)byte_bit(m, blk * 128 + b) << (b % 64);
        kagi_gf128_mul_ref(acc, acc, h);
    }
    acc[0] ^= (uint64_t)nbits;
    kagi_gf128_mul_ref(acc, acc, h);
    out[0] = acc[0];
    out[1] = acc[1];
}

static void polyhash_matches_naive_horner(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 3);
    uint8_t m[200];
    uint64_t w[32];
    for (int t = 0; t < 400; t++) {
        uint64_t h[2], got[2], want[2];
        rand_bits(&r, h, 2);
        size_t len = kagi_rng_below(&r, sizeof m + 1);
        for (size_t i = 0; i < sizeof m; i++) m[i] = (uint8_t)kagi_rng_next(&r);
        kagi_polyhash128(h, len ? m : NULL, len, got);
        naive_hash128(h, m, 8 * len, want);
        if (got[0] != want[0] || got[1] != want[1]) { T_FAIL("bytes, len %zu", len); break; }

        /* Bit strings: any length, junk past nbits ignored. */
        size_t nbits = 1 + kagi_rng_below(&r, 64 * 25);
        rand_bits(&r, w, 32);
        uint8_t wb[256];
        for (size_t i = 0; i < sizeof wb; i++) wb[i] = (uint8_t)(w[i / 8] >> (8 * (i % 8)));
        kagi_polyhash128_bits(h, w, nbits, got);
        naive_hash128(h, wb, nbits, want);
        if (got[0] != want[0] || got[1] != want[1]) { T_FAIL("bits, nbits %zu", nbits); break; }

        /* GF(2^64) over 64-bit blocks. */
        uint64_t acc = 0;
        for (size_t blk = 0; blk * 64 < nbits; blk++) {
            for (size_t b = 0; b < 64 && blk * 64 + b < nbits; b++)
                acc ^= (uint64_t)byte_bit(wb, blk * 64 + b) << b;
            acc = kagi_gf64_mul_ref(acc, h[0]);
        }
        acc = kagi_gf64_mul_ref(acc ^ nbits, h[0]);
        if (kagi_polyhash64_bits(h[0], w, nbits) != acc) { T_FAIL("64, nbits %zu", nbits); break; }
    }
    /* Byte and bit forms agree on the same bits. */
    uint64_t h[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull}, a[2], b[2];
    for (size_t i = 0; i < 64; i++) m[i] = (uint8_t)(i * 37 + 1);
    for (size_t i = 0; i < 8; i++) {
        w[i] = 0;
        for (int j = 0; j < 8; j++) w[i] |= (uint64_t)m[8 * i + j] << (8 * j);
    }
    kagi_polyhash128(h, m, 37, a);
    kagi_polyhash128_bits(h, w, 37 * 8, b);
    ASSERT_TRUE(a[0] == b[0] && a[1] == b[1]);
    ASSERT_NEAR(kagi_polyhash_bound(37 * 8, 128), 4.0 / 0x1p128, 0);
    ASSERT_NEAR(kagi_polyhash_bound(128, 128), 2.0 / 0x1p128, 0);
    ASSERT_NEAR(kagi_polyhash_bound(129, 64), 4.0 / 0x1p64, 0);
    ASSERT_NEAR(kagi_polyhash_bound(100, 32), 1.0, 0);
}

static void keypool_hands_out_bits_in_order_once(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 9);
    kagi_bits *src;
    ASSERT_OK(kagi_bits_new(&src, 1000));
    ASSERT_OK(kagi_bits_random(src));
    kagi_keypool *p;
    ASSERT_OK(kagi_keypool_new(&p, src->w, 1000));
    ASSERT_EQ(kagi_keypool_used(p), 0);
    ASSERT_EQ(kagi_keypool_left(p), 1000);
    size_t at = 0;
    const size_t sizes[] = {3, 70, 1, 128, 64, 200, 5};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        uint8_t out[32];
        memset(out, 0xff, sizeof out);
        ASSERT_OK(kagi_keypool_take(p, out, sizes[s]));
        for (size_t j = 0; j < sizes[s]; j++)
            if (byte_bit(out, j) != kagi_bits_get(src, at + j)) {
                T_FAIL("take %zu: bit %zu", s, j);
                break;
            }
        for (size_t j = sizes[s]; j < (sizes[s] + 7) / 8 * 8; j++) ASSERT_EQ(byte_bit(out, j), 0);
        at += sizes[s];
        ASSERT_EQ(kagi_keypool_used(p), at);
        ASSERT_EQ(kagi_keypool_left(p), 1000 - at);
    }
    /* The rest, for writing back to the key file. */
    kagi_bits *rest;
    ASSERT_OK(kagi_keypool_remainder(p, &rest));
    ASSERT_EQ(rest->n, 1000 - at);
    int same = 1;
    for (size_t j = 0; j < rest->n; j++) same &= kagi_bits_get(rest, j) == kagi_bits_get(src, at + j);
    ASSERT_TRUE(same);
    kagi_bits_free(rest);
    /* Asking for more than is left takes nothing. */
    uint8_t big[128];
    ASSERT_EQ(kagi_keypool_take(p, big, 1000), KAGI_ERR_EXHAUSTED);
    ASSERT_TRUE(strstr(kagi_errdetail(), "1000 bits needed") != NULL);
    ASSERT_TRUE(strstr(kagi_errdetail(), "529 left") != NULL);
    ASSERT_EQ(kagi_keypool_left(p), 1000 - at);
    ASSERT_OK(kagi_keypool_take(p, big, 1000 - at));
    ASSERT_EQ(kagi_keypool_left(p), 0);
    ASSERT_EQ(kagi_keypool_take(p, big, 1), KAGI_ERR_EXHAUSTED);
    ASSERT_OK(kagi_keypool_take(p, big, 0));
    ASSERT_OK(kagi_keypool_remainder(p, &rest));
    ASSERT_EQ(rest->n, 0);
    kagi_bits_free(rest);
    kagi_keypool_free(p);
    kagi_keypool_free(NULL);
    kagi_bits_free(src);
}

typedef struct pair {
    kagi_bits *secret;
    kagi_keypool *pa, *pb;
    kagi_mac *alice, *bob;
} pair;

static void pair_open(pair *x, size_t nbits, uint64_t seed)
{
    kagi_rng r;
    kagi_rng_seed(&r, seed);
    ASSERT_OK(kagi_bits_new(&x->secret, nbits));
    for (size_t i = 0; i < KAGI_WORDS(nbits); i++) x->secret->w[i] = kagi_rng_next(&r);
    if (nbits & 63) x->secret->w[nbits >> 6] &= ((uint64_t)1 << (nbits & 63)) - 1;
    ASSERT_OK(kagi_keypool_new(&x->pa, x->secret->w, nbits));
    ASSERT_OK(kagi_keypool_new(&x->pb, x->secret->w, nbits));
    ASSERT_OK(kagi_mac_new(&x->alice, x->pa));
    ASSERT_OK(kagi_mac_new(&x->bob, x->pb));
}

static void pair_close(pair *x)
{
    kagi_mac_free(x->alice);
    kagi_mac_free(x->bob);
    kagi_keypool_free(x->pa);
    kagi_keypool_free(x->pb);
    kagi_bits_free(x->secret);
}

static void mac_tag_is_hash_of_first_128_bits_xor_next_pad(void)
{
    pair x;
    pair_open(&x, 1024, 11);
    const char *msg = "basis choices 0110...";
    uint8_t tag[16];
    ASSERT_OK(kagi_mac_tag(x.alice, msg, strlen(msg), tag));
    /* H = pool bits 0..127, pad = bits 128..255. */
    uint64_t h[2] = {x.secret->w[0], x.secret->w[1]}, v[2];
    kagi_polyhash128(h, msg, strlen(msg), v);
    v[0] ^= x.secret->w[2];
    v[1] ^= x.secret->w[3];
    uint8_t want[16];
    for (int i = 0; i < 16; i++) want[i] = (uint8_t)(v[i / 8] >> (8 * (i % 8)));
    ASSERT_TRUE(memcmp(tag, want, 16) == 0);
    pair_close(&x);
}

static void mac_check_accepts_in_order_and_counts_bits(void)
{
    pair x;
    pair_open(&x, 4096, 12);
    const char *msgs[] = {"", "a", "sixteen bytes!!!", "a longer message spanning blocks."};
    uint8_t tags[4][16];
    for (int i = 0; i < 4; i++) ASSERT_OK(kagi_mac_tag(x.alice, msgs[i], strlen(msgs[i]), tags[i]));
    for (int i = 0; i < 4; i++) ASSERT_OK(kagi_mac_check(x.bob, msgs[i], strlen(msgs[i]), tags[i]));
    ASSERT_EQ(kagi_mac_bits_consumed(x.alice), 128 + 128 * 4);
    ASSERT_EQ(kagi_mac_bits_consumed(x.bob), 128 + 128 * 4);
    ASSERT_EQ(kagi_keypool_used(x.pa), 128 + 128 * 4);
    ASSERT_NEAR(kagi_mac_epsilon(0), 1.0 / 0x1p128, 0);
    ASSERT_NEAR(kagi_mac_epsilon(33), 4.0 / 0x1p128, 0);
    pair_close(&x);
}

static void mac_rejects_flipped_message_or_tag_bits(void)
{
    const uint8_t msg[40] = "error-correction syndrome block 17";
    for (size_t bit = 0; bit < 8 * sizeof msg + 128; bit += 7) {
        pair x;
        pair_open(&x, 1024, 100 + bit);
        uint8_t m[40], tag[16];
        memcpy(m, msg, sizeof m);
        ASSERT_OK(kagi_mac_tag(x.alice, m, sizeof m, tag));
        if (bit < 8 * sizeof msg) m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        else tag[(bit - 8 * sizeof msg) / 8] ^= (uint8_t)(1u << (bit % 8));
        ASSERT_EQ(kagi_mac_check(x.bob, m, sizeof m, tag), KAGI_ERR_AUTH);
        ASSERT_TRUE(strcmp(kagi_errdetail(), "message 1: tag mismatch") == 0);
        /* The failed check used its pad: both sides stay in step. */
        ASSERT_OK(kagi_mac_tag(x.alice, msg, 5, tag));
        ASSERT_OK(kagi_mac_check(x.bob, msg, 5, tag));
        pair_close(&x);
    }
}

static void mac_rejects_replayed_and_reordered_messages(void)
{
    pair x;
    pair_open(&x, 2048, 13);
    uint8_t t1[16], t2[16];
    ASSERT_OK(kagi_mac_tag(x.alice, "first", 5, t1));
    ASSERT_OK(kagi_mac_tag(x.alice, "second", 6, t2));
    ASSERT_OK(kagi_mac_check(x.bob, "first", 5, t1));
    ASSERT_EQ(kagi_mac_check(x.bob, "first", 5, t1), KAGI_ERR_AUTH); /* replay */
    ASSERT_TRUE(strcmp(kagi_errdetail(), "message 2: tag mismatch") == 0);
    pair_close(&x);

    pair_open(&x, 2048, 14);
    ASSERT_OK(kagi_mac_tag(x.alice, "first", 5, t1));
    ASSERT_OK(kagi_mac_tag(x.alice, "second", 6, t2));
    ASSERT_EQ(kagi_mac_check(x.bob, "second", 6, t2), KAGI_ERR_AUTH); /* reordered */
    ASSERT_EQ(kagi_mac_check(x.bob, "first", 5, t1), KAGI_ERR_AUTH);
    /* A tag from another key fails too. */
    pair y;
    pair_open(&y, 2048, 15);
    uint8_t t3[16];
    ASSERT_OK(kagi_mac_tag(y.alice, "third", 5, t3));
    ASSERT_EQ(kagi_mac_check(x.bob, "third", 5, t3), KAGI_ERR_AUTH);
    pair_close(&y);
    pair_close(&x);
}

static void mac_reports_exhausted_pool(void)
{
    kagi_bits *s;
    ASSERT_OK(kagi_bits_new(&s, 128 + 128 + 50));
    ASSERT_OK(kagi_bits_random(s));
    kagi_keypool *p;
    ASSERT_OK(kagi_keypool_new(&p, s->w, s->n));
    kagi_mac *m;
    ASSERT_OK(kagi_mac_new(&m, p));
    uint8_t tag[16];
    ASSERT_OK(kagi_mac_tag(m, "x", 1, tag));
    ASSERT_EQ(kagi_mac_tag(m, "y", 1, tag), KAGI_ERR_EXHAUSTED);
    ASSERT_TRUE(strstr(kagi_errdetail(), "message 2: 128 pad bits needed, 50 left") != NULL);
    ASSERT_EQ(kagi_mac_check(m, "y", 1, tag), KAGI_ERR_EXHAUSTED);
    ASSERT_EQ(kagi_mac_bits_consumed(m), 256);
    kagi_mac *m2 = (kagi_mac *)1;
    ASSERT_EQ(kagi_mac_new(&m2, p), KAGI_ERR_EXHAUSTED);
    ASSERT_TRUE(m2 == NULL);
    kagi_mac_free(m);
    kagi_mac_free(NULL);
    kagi_keypool_free(p);
    kagi_bits_free(s);
}

static void verify_tags_separate_keys_one_bit_apart(void)
{
    kagi_rng r;
    kagi_rng_seed(&r, 77);
    uint64_t a[80], b[80];
    for (int t = 0; t < 300; t++) {
        size_t nbits = 1 + kagi_rng_below(&r, 64 * 80);
        rand_bits(&r, a, 80);
        memcpy(b, a, sizeof a);
        uint8_t hkey[16], ta[16], tb[16];
        for (int i = 0; i < 16; i++) hkey[i] = (uint8_t)kagi_rng_next(&r);
        for (unsigned bits = 64; bits <= 128; bits += 64) {
            ASSERT_OK(kagi_verify_tag(a, nbits, hkey, bits, ta));
            /* Junk past nbits is not key. */
            if (nbits % 64) b[nbits / 64] ^= ~(uint64_t)0 << (nbits % 64);
            ASSERT_OK(kagi_verify_tag(b, nbits, hkey, bits, tb));
            ASSERT_TRUE(memcmp(ta, tb, 16) == 0);
            memcpy(b, a, sizeof a);
            size_t flip = kagi_rng_below(&r, nbits);
            b[flip / 64] ^= (uint64_t)1 << (flip % 64);
            ASSERT_OK(kagi_verify_tag(b, nbits, hkey, bits, tb));
            if (memcmp(ta, tb, 16) == 0) T_FAIL("case %d: %u-bit tags equal after flipping bit %zu", t, bits, flip);
            memcpy(b, a, sizeof a);
            if (bits == 64) {
                uint64_t h = 0;
                for (int i = 7; i >= 0; i--) h = (h << 8) | hkey[i];
                uint64_t v = kagi_polyhash64_bits(h, a, nbits);
                for (int i = 0; i < 8; i++) ASSERT_EQ(ta[i], (uint8_t)(v >> (8 * i)));
                for (int i = 8; i < 16; i++) ASSERT_EQ(ta[i], 0);
            }
        }
    }
    uint8_t hkey[16] = {1}, tag[16];
    ASSERT_EQ(kagi_verify_tag(a, 100, hkey, 32, tag), KAGI_ERR_ARG);
    ASSERT_EQ(kagi_verify_tag(a, 0, hkey, 64, tag), KAGI_ERR_ARG);
}

static void verify_epsilon_matches_block_count(void)
{
    /* ceil(1000/128) + 1 = 9 blocks; ceil(1000/64) + 1 = 17. */
    ASSERT_NEAR(kagi_verify_epsilon(1000, 128), 9.0 / 0x1p128, 0);
    ASSERT_NEAR(kagi_verify_epsilon(1000, 64), 17.0 / 0x1p64, 0);
    ASSERT_NEAR(kagi_verify_epsilon(1000, 96), 1.0, 0);
    /* 1e6 bits: 15626 / 2^64 = 8.47e-16 and 7814 / 2^128 = 2.3e-35. */
    ASSERT_NEAR(kagi_verify_epsilon(1000000, 64), 15626.0 / 0x1p64, 0);
    ASSERT_EQ(kagi_verify_tag_bits_for(1000000, 1e-15), 64);
    ASSERT_EQ(kagi_verify_tag_bits_for(1000000, 1e-16), 128);
    ASSERT_EQ(kagi_verify_tag_bits_for(1000000, 1e-40), 0);
}

T_MAIN(T(gf128_pclmul_matches_reference), T(gf128_hand_values),
       T(gf64_pclmul_matches_reference_and_hand_values), T(polyhash_matches_naive_horner),
       T(keypool_hands_out_bits_in_order_once), T(mac_tag_is_hash_of_first_128_bits_xor_next_pad),
       T(mac_check_accepts_in_order_and_counts_bits), T(mac_rejects_flipped_message_or_tag_bits),
       T(mac_rejects_replayed_and_reordered_messages), T(mac_reports_exhausted_pool),
       T(verify_tags_separate_keys_one_bit_apart), T(verify_epsilon_matches_block_count))
