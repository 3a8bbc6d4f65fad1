/* The whole pipeline and the authenticated channel, party against party.
 * Oracles: the other party's final key, the finite-key formula evaluated
 * here from the reported counts, and tag failures on tampered traffic. */
#include <pthread.h>

#include "kagi/amplify.h"
#include "kagi/auth.h"
#include "kagi/channel.h"
#include "kagi/distill.h"
#include "kagi/error.h"
#include "kagi/estimate.h"
#include "t.h"

static void make_pair(size_t n, double q, uint64_t seed, kagi_bits **a, kagi_bits **b)
{
    kagi_rng r;
    kagi_rng_seed(&r, seed);
    ASSERT_OK(kagi_bits_new(a, n));
    ASSERT_OK(kagi_bits_new(b, n));
    for (size_t i = 0; i < n; i++) {
        int v = (int)(kagi_rng_next(&r) & 1);
        kagi_bits_set(*a, i, v);
        kagi_bits_set(*b, i, v ^ (kagi_rng_uniform(&r) < q));
    }
}

static void distill_gives_identical_keys_of_the_bound_length(void)
{
    double qs[] = {0.005, 0.02, 0.05};
    for (int i = 0; i < 3; i++) {
        kagi_bits *a, *b, *fa = NULL, *fb = NULL;
        make_pair(300000, qs[i], 10 + (uint64_t)i, &a, &b);
        kagi_distill_params p = {0};
        kagi_distill_report ra, rb;
        ASSERT_OK(kagi_distill_local(a, b, &p, &fa, &fb, &ra, &rb));
        ASSERT_TRUE(fa && fb);
        if (!fa || !fb) return;
        ASSERT_EQ(fa->n, fb->n);
        ASSERT_EQ(kagi_bits_hamming(fa->w, fb->w, fa->n), 0);
        ASSERT_EQ(ra.final_bits, fa->n);
        ASSERT_TRUE(ra.verify_ok && rb.verify_ok);
        /* The length is the TLGR bound recomputed from the reported counts. */
        kagi_fk_in fi = {.n = ra.reconciled_bits, .k = ra.sample_bits, .errors = ra.sample_errors,
                         .leak_ec = (double)ra.cascade.leak_bits + ra.verify_tag_bits,
                         .eps_sec = 1e-10, .eps_cor = 1e-15};
        kagi_fk_out fo;
        ASSERT_OK(kagi_finite_key_bb84(&fi, &fo));
        ASSERT_EQ(fo.length, ra.final_bits);
        /* Both parties saw the same numbers. */
        ASSERT_EQ(ra.sample_errors, rb.sample_errors);
        ASSERT_EQ(ra.cascade.leak_bits, rb.cascade.leak_bits);
        ASSERT_EQ(ra.auth_bits_consumed, rb.auth_bits_consumed);
        /* A 128-bit hash key per direction and a 128-bit pad per tag: three
         * tagged messages each way (hello, errors, verdict; sample, verify,
         * seed); Cascade's messages ride under the verification tags. */
        ASSERT_EQ(ra.auth_bits_consumed, 256 + 128 * 6);
        /* Every other message is Cascade's: one answer per round trip, and
         * Bob's BEGIN plus one message per answer (the last is END). */
        ASSERT_EQ(ra.messages + rb.messages, 6 + 2 * ra.cascade.channel_uses + 1);
        /* The final key is not a copy of the sifted key. */
        ASSERT_TRUE(kagi_bits_hamming(fa->w, a->w, fa->n) > fa->n / 3);
        kagi_bits_free(a);
        kagi_bits_free(b);
        kagi_bits_free(fa);
        kagi_bits_free(fb);
    }
}

static void high_qber_gives_no_key(void)
{
    kagi_bits *a, *b, *fa = (kagi_bits *)1, *fb = (kagi_bits *)1;
    make_pair(100000, 0.30, 3, &a, &b);
    kagi_distill_params p = {0};
    ASSERT_EQ(kagi_distill_local(a, b, &p, &fa, &fb, NULL, NULL), KAGI_ERR_NOKEY);
    ASSERT_TRUE(fa == NULL && fb == NULL);
    ASSERT_TRUE(strstr(kagi_errdetail(), "no secret key") != NULL);
    kagi_bits_free(a);
    kagi_bits_free(b);
}

static void failed_verification_discards_the_block(void)
{
    /* A deliberately weak Cascade (one huge block, one extra pass) leaves
     * errors behind; verification must catch them. */
    kagi_bits *a, *b, *fa = NULL, *fb = NULL;
    make_pair(100000, 0.03, 4, &a, &b);
    kagi_distill_params p = {0};
    p.cascade.k1 = 1u << 16;
    p.cascade.block_passes = 1;
    p.cascade.extra_passes = 1;
    int rc = kagi_distill_local(a, b, &p, &fa, &fb, NULL, NULL);
    ASSERT_EQ(rc, KAGI_ERR_VERIFY);
    ASSERT_TRUE(fa == NULL && fb == NULL);
    kagi_bits_free(a);
    kagi_bits_free(b);
}

static void decoy_mode_keeps_every_bit_and_subtracts_the_leak(void)
{
    kagi_bits *a, *b, *fa = NULL, *fb = NULL;
    make_pair(200000, 0.02, 21, &a, &b);
    kagi_distill_params p = {0};
    p.decoy = 1;
    p.decoy_length = 150000.5;
    p.qber_hint = 0.02;
    kagi_distill_report ra, rb;
    ASSERT_OK(kagi_distill_local(a, b, &p, &fa, &fb, &ra, &rb));
    if (!fa || !fb) return;
    ASSERT_EQ(kagi_bits_hamming(fa->w, fb->w, fa->n), 0);
    /* No sample: every sifted bit is reconciled. */
    ASSERT_EQ(ra.sample_bits, 0);
    ASSERT_EQ(ra.reconciled_bits, 200000);
    /* The oracle: the decoy length minus what was published. */
    double want = floor(150000.5 - (double)ra.cascade.leak_bits - ra.verify_tag_bits);
    ASSERT_EQ(fa->n, (size_t)want);
    ASSERT_EQ(rb.final_bits, (size_t)want);
    kagi_bits_free(fa);
    kagi_bits_free(fb);
    /* A bound that the expected leak alone exhausts stops before Cascade. */
    p.decoy_length = 1.2 * 200000 * kagi_h2(0.02);
    ASSERT_EQ(kagi_distill_local(a, b, &p, &fa, &fb, NULL, NULL), KAGI_ERR_NOKEY);
    ASSERT_TRUE(fa == NULL && fb == NULL);
    kagi_bits_free(a);
    kagi_bits_free(b);
}

/* LDPC reconciliation in the pipeline: Bob's final key equals Alice's, the
 * leak is syndrome bits - punctured bits + revealed bits, both parties
 * count the same, and the final length is the bound with that leak. A low
 * f_start forces reveal rounds, so the fallback is exercised too: 1.04,
 * low enough that a sample estimate one or two sigma high still plans
 * below the threshold (at 1.08, 1 run of 80 needed no reveal). */
static void ldpc_distill_gives_identical_keys_and_counts_the_leak(void)
{
    double qs[] = {0.02, 0.05};
    double fs[] = {1.04, 1.22};
    for (int i = 0; i < 2; i++) {
        kagi_bits *a, *b, *fa = NULL, *fb = NULL;
        make_pair(400000, qs[i], 40 + (uint64_t)i, &a, &b);
        kagi_distill_params p = {0};
        p.method = KAGI_RECONCILE_LDPC;
        p.ldpc.f_start = fs[i];
        p.ldpc.z_max = i == 0 ? 512 : 0; /* 65,536-bit frames: 6 of them, in two batches */
        kagi_distill_report ra, rb;
        ASSERT_OK(kagi_distill_local(a, b, &p, &fa, &fb, &ra, &rb));
        ASSERT_TRUE(fa && fb);
        if (!fa || !fb) return;
        ASSERT_EQ(fa->n, fb->n);
        ASSERT_EQ(kagi_bits_hamming(fa->w, fb->w, fa->n), 0);
        ASSERT_EQ(ra.method, KAGI_RECONCILE_LDPC);
        const kagi_ldpc_stats *l = &ra.ldpc;
        printf("     QBER %.0f%%, f_start %.2f: %zu frames, rate %u, z %u, leak %zu (%zu revealed),"
               " f %.3f, %zu round trips, iterations mean %.1f max %u\n", 100 * qs[i], fs[i],
               l->frames, l->rate_pct, l->z, l->leak_bits, l->revealed_bits, ra.efficiency,
               l->round_trips, (double)l->iterations / (double)l->frames, l->iter_max);
        /* The leak, from its parts; each party counted it from the bits it
         * sent (Alice) or received (Bob). */
        ASSERT_EQ(l->leak_bits, l->syndrome_bits - l->frames * l->punctured + l->revealed_bits);
        /* m = mb z with mb = 64, 51, 38, 26, 19, 13 base rows at rates 50..90. */
        size_t mb = l->rate_pct == 50 ? 64 : l->rate_pct == 60 ? 51 : l->rate_pct == 70 ? 38
                  : l->rate_pct == 80 ? 26 : l->rate_pct == 85 ? 19 : 13;
        ASSERT_EQ(l->syndrome_bits, l->frames * mb * l->z);
        ASSERT_EQ(rb.ldpc.leak_bits, l->leak_bits);
        ASSERT_EQ(rb.ldpc.revealed_bits, l->revealed_bits);
        ASSERT_EQ(ra.leak_bits, l->leak_bits);
        ASSERT_EQ(l->failed_frames, 0);
        ASSERT_TRUE(l->frames * l->frame_key_bits >= ra.reconciled_bits);
        /* Errors corrected: exactly those of the pair outside the sample. */
        ASSERT_EQ(l->corrected, rb.ldpc.corrected);
        ASSERT_TRUE(l->corrected > 0);
        if (i == 0) ASSERT_TRUE(l->revealed_bits > 0 && l->round_trips > 0);
        /* The length is the TLGR bound with that leak. */
        kagi_fk_in fi = {.n = ra.reconciled_bits, .k = ra.sample_bits, .errors = ra.sample_errors,
                         .leak_ec = (double)l->leak_bits + ra.verify_tag_bits,
                         .eps_sec = 1e-10, .eps_cor = 1e-15};
        kagi_fk_out fo;
        ASSERT_OK(kagi_finite_key_bb84(&fi, &fo));
        ASSERT_EQ(fo.length, ra.final_bits);
        ASSERT_EQ(rb.final_bits, ra.final_bits);
        /* Same six tags as Cascade: the LDPC messages ride under the
         * verification tags. Every other message is LDPC's. */
        ASSERT_EQ(ra.auth_bits_consumed, 256 + 128 * 6);
        ASSERT_EQ(ra.messages + rb.messages, 6 + l->messages);
        ASSERT_EQ(l->messages, 2 + (l->frames + 3) / 4 + 2 * l->round_trips);
        ASSERT_TRUE(kagi_bits_hamming(fa->w, a->w, fa->n) > fa->n / 3);
        kagi_bits_free(a);
        kagi_bits_free(b);
        kagi_bits_free(fa);
        kagi_bits_free(fb);
    }
}

/* A key far noisier than the estimate (decoy mode, hint 2%, true 7%): no
 * frame decodes even after the reveals; the run fails with
 * KAGI_ERR_RECONCILE and no key on either side, never unequal keys. */
static void ldpc_undecodable_frames_fail_the_run(void)
{
    kagi_bits *a, *b, *fa = (kagi_bits *)1, *fb = (kagi_bits *)1;
    make_pair(150000, 0.07, 51, &a, &b);
    kagi_distill_params p = {0};
    p.method = KAGI_RECONCILE_LDPC;
    p.ldpc.max_rounds = 3;
    p.decoy = 1;
    p.decoy_length = 140000;
    p.qber_hint = 0.02;
    kagi_distill_report ra, rb;
    ASSERT_EQ(kagi_distill_local(a, b, &p, &fa, &fb, &ra, &rb), KAGI_ERR_RECONCILE);
    ASSERT_TRUE(fa == NULL && fb == NULL);
    ASSERT_TRUE(strstr(kagi_errdetail(), "could not be decoded") != NULL);
    ASSERT_TRUE(ra.ldpc.failed_frames > 0);
    ASSERT_EQ(ra.ldpc.failed_frames, rb.ldpc.failed_frames);
    ASSERT_EQ(ra.ldpc.round_trips, 3);
    ASSERT_EQ(ra.final_bits, 0);
    kagi_bits_free(a);
    kagi_bits_free(b);
}

/* Alice and Bob must agree on the method: the hello says which. */
static void ldpc_and_cascade_parties_refuse_each_other(void)
{
    kagi_bits *a, *b;
    make_pair(100000, 0.02, 52, &a, &b);
    kagi_bits *key;
    kagi_keypool *pools[4];
    kagi_channel *ca, *cb;
    ASSERT_OK(kagi_bits_new(&key, 8192));
    ASSERT_OK(kagi_bits_random(key));
    ASSERT_OK(kagi_keypool_new(&pools[0], key->w, 4096));
    ASSERT_OK(kagi_keypool_new(&pools[1], key->w, 4096));
    ASSERT_OK(kagi_keypool_new(&pools[2], key->w + 64, 4096));
    ASSERT_OK(kagi_keypool_new(&pools[3], key->w + 64, 4096));
    ASSERT_OK(kagi_channel_pair(&ca, &cb));
    ASSERT_OK(kagi_channel_auth(ca, pools[0], pools[2]));
    ASSERT_OK(kagi_channel_auth(cb, pools[3], pools[1]));
    /* Bob (LDPC) sends his hello and waits; Alice (Cascade) refuses it. */
    kagi_distill_params pb = {0};
    pb.method = KAGI_RECONCILE_LDPC;
    kagi_distill_params pa = {0};
    kagi_buf hello;
    kagi_buf_init(&hello, 1 << 20);
    /* Bob's hello as the pipeline writes it (docs/distill.md, message 1). */
    kagi_buf_u32(&hello, 0x4947414bu);
    kagi_buf_u32(&hello, 3);
    kagi_buf_u64(&hello, a->n);
    double es = 1e-10, ec = 1e-15, z = 0;
    uint64_t u;
    memcpy(&u, &es, 8);
    kagi_buf_u64(&hello, u);
    memcpy(&u, &ec, 8);
    kagi_buf_u64(&hello, u);
    kagi_buf_u64(&hello, kagi_sample_size_default(a->n));
    kagi_buf_u64(&hello, 0);
    memcpy(&u, &z, 8);
    kagi_buf_u64(&hello, u);
    kagi_buf_u64(&hello, u);
    kagi_buf_u64(&hello, (uint64_t)pb.method);
    ASSERT_OK(kagi_channel_send(cb, hello.p, hello.len));
    kagi_bits *fa = NULL;
    ASSERT_EQ(kagi_distill_alice(ca, a, &pa, &fa, NULL), KAGI_ERR_PROTO);
    ASSERT_TRUE(strstr(kagi_errdetail(), "Bob reconciles by LDPC, Alice by Cascade") != NULL);
    ASSERT_TRUE(fa == NULL);
    kagi_buf_free(&hello);
    kagi_channel_free(ca);
    kagi_channel_free(cb);
    for (int i = 0; i < 4; i++) kagi_keypool_free(pools[i]);
    kagi_bits_free(key);
    kagi_bits_free(a);
    kagi_bits_free(b);
}

typedef struct {
    kagi_channel *ch;
    kagi_buf got;
    int rc, defer;
    char detail[256];
} recv_arg;

static void *receiver(void *v)
{
    recv_arg *r = v;
    r->rc = KAGI_OK;
    kagi_channel_defer_tags(r->ch, r->defer);
    for (int i = 0; i < 3 && !r->rc; i++) r->rc = kagi_channel_recv(r->ch, &r->got);
    snprintf(r->detail, sizeof r->detail, "%s", kagi_errdetail());
    return NULL;
}

/* Two authenticated ends over fresh pools; *key keeps the bits alive. */
static void auth_pair(kagi_bits **key, kagi_keypool *pools[4], kagi_channel **a, kagi_channel **b)
{
    ASSERT_OK(kagi_bits_new(key, 8192));
    ASSERT_OK(kagi_bits_random(*key));
    ASSERT_OK(kagi_keypool_new(&pools[0], (*key)->w, 4096));
    ASSERT_OK(kagi_keypool_new(&pools[1], (*key)->w, 4096));
    ASSERT_OK(kagi_keypool_new(&pools[2], (*key)->w + 64, 4096));
    ASSERT_OK(kagi_keypool_new(&pools[3], (*key)->w + 64, 4096));
    ASSERT_OK(kagi_channel_pair(a, b));
    ASSERT_OK(kagi_channel_auth(*a, pools[0], pools[2]));
    ASSERT_OK(kagi_channel_auth(*b, pools[3], pools[1]));
}

static void auth_pair_free(kagi_bits *key, kagi_keypool *pools[4], kagi_channel *a, kagi_channel *b)
{
    kagi_channel_free(a);
    kagi_channel_free(b);
    for (int i = 0; i < 4; i++) kagi_keypool_free(pools[i]);
    kagi_bits_free(key);
}

static void deferred_tags_cover_untagged_messages(void)
{
    kagi_bits *key;
    kagi_keypool *pools[4];
    kagi_channel *a, *b;
    /* Untagged then tagged: accepted, and a flipped untagged message is
     * caught by the tag that follows it. */
    for (int tamper = 0; tamper < 2; tamper++) {
        auth_pair(&key, pools, &a, &b);
        recv_arg ra = {.ch = b, .defer = 1};
        kagi_buf_init(&ra.got, 1 << 20);
        pthread_t th;
        pthread_create(&th, NULL, receiver, &ra);
        kagi_channel_defer_tags(a, 1);
        ASSERT_OK(kagi_channel_send(a, "first", 5));
        if (tamper) kagi_channel_tamper_next(a);
        ASSERT_OK(kagi_channel_send(a, "second", 6));
        kagi_channel_defer_tags(a, 0);
        ASSERT_OK(kagi_channel_send(a, "third", 5));
        pthread_join(th, NULL);
        if (tamper) {
            ASSERT_EQ(ra.rc, KAGI_ERR_AUTH);
            ASSERT_TRUE(strstr(ra.detail, "message 3: tag mismatch") != NULL);
        } else {
            ASSERT_OK(ra.rc);
            ASSERT_EQ(ra.got.len, 5);
            /* One hash key per direction, one pad for the single tag. */
            ASSERT_EQ(kagi_channel_auth_bits(a), 128 + 128 + 128);
        }
        kagi_buf_free(&ra.got);
        auth_pair_free(key, pools, a, b);
    }
    /* A receiver that does not defer refuses an untagged message. */
    auth_pair(&key, pools, &a, &b);
    recv_arg rb = {.ch = b, .defer = 0};
    kagi_buf_init(&rb.got, 1 << 20);
    pthread_t th;
    pthread_create(&th, NULL, receiver, &rb);
    kagi_channel_defer_tags(a, 1);
    ASSERT_OK(kagi_channel_send(a, "sneaky", 6));
    pthread_join(th, NULL);
    ASSERT_EQ(rb.rc, KAGI_ERR_AUTH);
    ASSERT_TRUE(strstr(rb.detail, "without the tag") != NULL);
    kagi_buf_free(&rb.got);
    auth_pair_free(key, pools, a, b);
}

static void tampered_message_fails_authentication(void)
{
    kagi_bits *key;
    kagi_keypool *pools[4];
    kagi_channel *a, *b;
    auth_pair(&key, pools, &a, &b);
    recv_arg ra = {.ch = b};
    kagi_buf_init(&ra.got, 1 << 20);
    pthread_t th;
    pthread_create(&th, NULL, receiver, &ra);
    ASSERT_OK(kagi_channel_send(a, "first", 5));
    kagi_channel_tamper_next(a);
    ASSERT_OK(kagi_channel_send(a, "second", 6));
    ASSERT_OK(kagi_channel_send(a, "third", 5));
    pthread_join(th, NULL);
    ASSERT_EQ(ra.rc, KAGI_ERR_AUTH);
    ASSERT_TRUE(strstr(ra.detail, "message 2: tag mismatch") != NULL);
    ASSERT_EQ(ra.got.len, 0); /* nothing of the forged message is handed out */
    /* The channel stays closed after a failure. */
    ASSERT_EQ(kagi_channel_recv(b, &ra.got), KAGI_ERR_AUTH);
    kagi_buf_free(&ra.got);
    auth_pair_free(key, pools, a, b);
}

T_MAIN(T(distill_gives_identical_keys_of_the_bound_length), T(high_qber_gives_no_key),
       T(failed_verification_discards_the_block), T(tampered_message_fails_authentication),
       T(deferred_tags_cover_untagged_messages),
       T(decoy_mode_keeps_every_bit_and_subtracts_the_leak),
       T(ldpc_distill_gives_identical_keys_and_counts_the_leak),
       T(ldpc_undecodable_frames_fail_the_run), T(ldpc_and_cascade_parties_refuse_each_other))
