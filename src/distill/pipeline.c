/* The distillation pipeline: estimation, reconciliation (Cascade or
 * LDPC), verification, final length, Toeplitz amplification, as two
 * parties over one channel. */
#include <pthread.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/amplify.h"
#include "kagi/distill.h"
#include "kagi/estimate.h"
#include "ldpc_int.h"

#define KAGI__PIPE_VERSION 3u /* 3: the hello carries the reconciliation method */
#define KAGI__MAGIC 0x4947414bu /* "KAGI" */

/* Wall and process CPU clocks when a stage starts. */
typedef struct {
    double wall, cpu;
} kagi__stamp;

static kagi__stamp kagi__stamp_now(void) { return (kagi__stamp){kagi__now(), kagi__cpu_now()}; }

/* Seconds per stage from the stamps of each stage's start (t[0..3]); the
 * last ends now. */
static void kagi__stage_times(kagi_distill_report *r, kagi__stamp t[5])
{
    t[4] = kagi__stamp_now();
    for (int i = 0; i < 4; i++) {
        r->seconds[i] = t[i + 1].wall - t[i].wall;
        r->cpu_seconds[i] = t[i + 1].cpu - t[i].cpu;
    }
}

static uint64_t kagi__dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static void kagi__buf_put_bits(kagi_buf *b, const uint64_t *w, size_t nbits)
{
    uint8_t *d = kagi_buf_grow(b, (nbits + 7) / 8);
    if (d) kagi__bytes_from_words(d, w, (nbits + 7) / 8);
}

static int kagi__take_bits(kagi_rd *r, kagi_bits *out)
{
    const uint8_t *s = kagi_rd_take(r, (out->n + 7) / 8);
    KAGI__FAIL_IF(!s, KAGI_ERR_PROTO, "truncated message: %zu bits expected", out->n);
    memset(out->w, 0, KAGI_WORDS(out->n) * 8);
    kagi__words_from_bytes(out->w, s, (out->n + 7) / 8);
    if (out->n & 63) out->w[out->n >> 6] &= ((uint64_t)1 << (out->n & 63)) - 1;
    return KAGI_OK;
}

static int kagi__resolve(const kagi_distill_params *in, kagi_distill_params *p, size_t n)
{
    *p = *in;
    if (p->eps_sec == 0) p->eps_sec = KAGI_EPS_SEC_DEFAULT;
    if (p->eps_cor == 0) p->eps_cor = KAGI_EPS_COR_DEFAULT;
    KAGI__FAIL_IF(!(p->eps_sec > 0 && p->eps_sec < 1), KAGI_ERR_ARG,
                  "eps_sec %g is outside (0, 1)", p->eps_sec);
    KAGI__FAIL_IF(!(p->eps_cor > 0 && p->eps_cor < 1), KAGI_ERR_ARG,
                  "eps_cor %g is outside (0, 1)", p->eps_cor);
    KAGI__FAIL_IF(n < 64, KAGI_ERR_ARG, "a sifted key of %zu bits is too short to distill", n);
    KAGI__FAIL_IF(p->method != KAGI_RECONCILE_CASCADE && p->method != KAGI_RECONCILE_LDPC,
                  KAGI_ERR_ARG, "unknown reconciliation method %d", p->method);
    kagi__ldpc_params_resolve(&p->ldpc);
    if (!p->amplify_threads) p->amplify_threads = kagi__cpus(64);
    if (p->decoy) {
        KAGI__FAIL_IF(p->sample_bits, KAGI_ERR_ARG,
                      "decoy-state mode draws no sample, %zu sample bits asked", p->sample_bits);
        KAGI__FAIL_IF(!(p->qber_hint >= 0 && p->qber_hint < 0.5), KAGI_ERR_ARG,
                      "QBER hint %g is outside [0, 0.5)", p->qber_hint);
        KAGI__FAIL_IF(!isfinite(p->decoy_length), KAGI_ERR_ARG, "decoy length is not finite");
        return KAGI_OK;
    }
    if (p->sample_bits == 0) p->sample_bits = kagi_sample_size_default(n);
    KAGI__FAIL_IF(p->sample_bits >= n, KAGI_ERR_ARG,
                  "sample of %zu bits leaves nothing of a %zu-bit key", p->sample_bits, n);
    return KAGI_OK;
}

/* Common state of one party's run. */
typedef struct kagi__party {
    kagi_channel *ch;
    kagi_distill_params p;
    kagi_distill_report *r;
    kagi_buf in, out;
    kagi_bits *rest;   /* sifted minus sample: the key being reconciled */
    kagi_bits *seed;   /* Toeplitz seed */
    size_t *pos;
} kagi__party;

static void kagi__party_clear(kagi__party *P)
{
    kagi_buf_free(&P->in);
    kagi_buf_free(&P->out);
    kagi_bits_free(P->rest);
    kagi_bits_free(P->seed);
    free(P->pos);
}

static int kagi__send(kagi__party *P)
{
    if (P->out.err) return P->out.err;
    int rc = kagi_channel_send(P->ch, P->out.p, P->out.len);
    kagi_buf_reset(&P->out);
    return rc;
}

/* The leak both parties assume before Cascade runs, to decide whether any
 * key can come out: 1.2 n h(Q) (Cascade does better) plus a tag. */
static double kagi__leak_guess(size_t n, double q)
{
    return 1.2 * (double)n * kagi_h2(q < 0.5 ? q : 0.5) + 128;
}

/* Both parties decide from the same public numbers whether any key can
 * come out, assuming a reconciliation at kagi__leak_guess. */
static int kagi__qber_check(kagi__party *P)
{
    kagi_distill_report *r = P->r;
    if (P->p.decoy) {
        double q = P->p.qber_hint;
        r->qber = r->qber_upper = q;
        double left = P->p.decoy_length - kagi__leak_guess(r->reconciled_bits, q);
        KAGI__FAIL_IF(!(left >= 1), KAGI_ERR_NOKEY,
                      "the decoy-state bound leaves %.0f bits before error correction, and "
                      "correcting %zu bits at QBER %.2f%% discloses more: no secret key; "
                      "nothing written", P->p.decoy_length, r->reconciled_bits, 100 * q);
        return KAGI_OK;
    }
    kagi_fk_in fi = {.n = r->reconciled_bits, .k = r->sample_bits, .errors = r->sample_errors,
                     .eps_sec = P->p.eps_sec, .eps_cor = P->p.eps_cor};
    double q = (double)r->sample_errors / (double)r->sample_bits;
    fi.leak_ec = kagi__leak_guess(fi.n, q);
    kagi_fk_out fo;
    KAGI__TRY(kagi_finite_key_bb84(&fi, &fo));
    r->qber = fo.qber;
    r->qber_upper = fo.qber_upper;
    KAGI__FAIL_IF(fo.length == 0, KAGI_ERR_NOKEY,
                  "QBER %.2f%% (%zu errors in a %zu-bit sample, upper bound %.2f%%) leaves no "
                  "secret key from %zu bits; nothing written",
                  100 * fo.qber, r->sample_errors, r->sample_bits, 100 * fo.qber_upper,
                  r->sifted_bits);
    return KAGI_OK;
}

static int kagi__final_length(kagi__party *P, size_t leak, size_t *len)
{
    kagi_distill_report *r = P->r;
    if (P->p.decoy) {
        double l = floor(P->p.decoy_length - (double)leak - r->verify_tag_bits);
        *len = l >= 1 ? (size_t)l : 0;
        KAGI__FAIL_IF(!*len, KAGI_ERR_NOKEY,
                      "after disclosing %zu bits to reconcile the decoy-state bound (%.0f bits) "
                      "leaves no secret key; nothing written", leak, P->p.decoy_length);
        return KAGI_OK;
    }
    kagi_fk_in fi = {.n = r->reconciled_bits, .k = r->sample_bits, .errors = r->sample_errors,
                     .leak_ec = (double)leak + r->verify_tag_bits, .eps_sec = P->p.eps_sec,
                     .eps_cor = P->p.eps_cor};
    kagi_fk_out fo;
    KAGI__TRY(kagi_finite_key_bb84(&fi, &fo));
    *len = fo.length;
    KAGI__FAIL_IF(fo.length == 0, KAGI_ERR_NOKEY,
                  "after disclosing %zu bits to reconcile no secret key remains (QBER %.2f%%); "
                  "nothing written", leak, 100 * r->qber);
    return KAGI_OK;
}

static void kagi__report_start(kagi_distill_report *r, const kagi_distill_params *p, size_t n)
{
    memset(r, 0, sizeof *r);
    r->sifted_bits = n;
    r->method = p->method;
    r->sample_bits = p->sample_bits;
    r->reconciled_bits = n - p->sample_bits;
}

static void kagi__report_end(kagi__party *P)
{
    kagi_distill_report *r = P->r;
    r->auth_bits_consumed = kagi_channel_auth_bits(P->ch);
    r->messages = kagi_channel_messages(P->ch);
    int ldpc = r->method == KAGI_RECONCILE_LDPC;
    size_t corrected = ldpc ? r->ldpc.corrected : r->cascade.corrected;
    r->leak_bits = ldpc ? r->ldpc.leak_bits : r->cascade.leak_bits;
    double qa = r->reconciled_bits ? (double)corrected / (double)r->reconciled_bits : 0;
    double h = kagi_h2(qa > 0 && qa < 0.5 ? qa : 0);
    r->efficiency = h > 0 ? (double)r->leak_bits / ((double)r->reconciled_bits * h) : 0;
}

/* Drop the sample and keep the rest (all of it in decoy-state mode). */
static int kagi__split(kagi__party *P, const kagi_bits *sifted, uint64_t seed, kagi_bits **sample)
{
    size_t k = P->p.sample_bits;
    if (P->p.decoy) return kagi_bits_dup(&P->rest, sifted);
    P->pos = malloc(k * sizeof *P->pos);
    KAGI__FAIL_IF(!P->pos, KAGI_ERR_NOMEM, "out of memory");
    KAGI__TRY(kagi_sample_positions(seed, sifted->n, k, P->pos));
    return kagi_split_sample(sifted, P->pos, k, sample, &P->rest);
}

/* Cascade's messages are authenticated only by the tags that follow the
 * exchange, so a failure inside it may be a forged message: say so. */
static int kagi__cascade_failed(int rc)
{
    if (rc != KAGI_ERR_PROTO && rc != KAGI_ERR_RECONCILE && rc != KAGI_ERR_NET) return rc;
    char cause[512]; /* the detail buffer is about to be rewritten */
    snprintf(cause, sizeof cause, "%s", kagi_errdetail());
    return kagi__err(rc, "reconciliation stopped before its messages were authenticated "
                         "(a message may have been altered): %s", cause);
}

/* Decoy-state mode: the whole key is reconciled, the bound is public. */
static int kagi__decoy_start(kagi__party *P, const kagi_bits *sifted)
{
    KAGI__TRY(kagi__split(P, sifted, 0, NULL));
    return kagi__qber_check(P);
}

static int kagi__alice_estimate(kagi__party *P, const kagi_bits *sifted)
{
    kagi_distill_report *r = P->r;
    kagi_rd rd;
    /* Estimation: a public random sample of Alice's bits. */
    uint64_t seed;
    KAGI__TRY(kagi_random_bytes(&seed, sizeof seed));
    kagi_bits *sample = NULL;
    KAGI__TRY(kagi__split(P, sifted, seed, &sample));
    kagi_buf_u64(&P->out, seed);
    kagi__buf_put_bits(&P->out, sample->w, sample->n);
    kagi_bits_free(sample);
    KAGI__TRY(kagi__send(P));
    KAGI__TRY(kagi_channel_recv(P->ch, &P->in));
    kagi_rd_init(&rd, P->in.p, P->in.len);
    r->sample_errors = (size_t)kagi_rd_u64(&rd);
    KAGI__FAIL_IF(rd.err || r->sample_errors > r->sample_bits, KAGI_ERR_PROTO,
                  "bad error count from Bob");
    return kagi__qber_check(P);
}

static int kagi__bob_estimate(kagi__party *P, const kagi_bits *sifted)
{
    kagi_distill_report *r = P->r;
    kagi_rd rd;
    KAGI__TRY(kagi_channel_recv(P->ch, &P->in));
    kagi_rd_init(&rd, P->in.p, P->in.len);
    uint64_t seed = kagi_rd_u64(&rd);
    kagi_bits *theirs = NULL, *mine = NULL;
    KAGI__TRY(kagi_bits_new(&theirs, P->p.sample_bits));
    int rc = kagi__take_bits(&rd, theirs);
    if (!rc) rc = kagi__split(P, sifted, seed, &mine);
    if (!rc) r->sample_errors = kagi_bits_hamming(theirs->w, mine->w, theirs->n);
    kagi_bits_free(theirs);
    kagi_bits_free(mine);
    KAGI__TRY(rc);
    kagi_buf_u64(&P->out, r->sample_errors);
    KAGI__TRY(kagi__send(P));
    return kagi__qber_check(P);
}

/* The QBER an LDPC plan is made for: the estimate plus one standard
 * deviation of it (none with a hint instead of a sample), within the range
 * the codes are planned for. A plan starts 0.02 over a shortened code's
 * threshold, and below it the fallback's reveals of key bits help little:
 * an estimate one sigma low (5.7 % of Q for a 10^5-bit block's sample of
 * 15,000 bits; 1.2 % at 10^7 bits) would eat that margin. */
static double kagi__ldpc_qber(const kagi_distill_report *r)
{
    double q = r->qber;
    if (r->sample_bits) q += sqrt(q * (1 - q) / (double)r->sample_bits);
    return q < 1e-3 ? 1e-3 : q > 0.11 ? 0.11 : q;
}

/* A frame Bob could not decode: the run fails, both sides, once the
 * exchange has been authenticated (Bob's verdict is tagged). */
static int kagi__ldpc_undecoded(const kagi_ldpc_stats *st)
{
    KAGI__FAIL_IF(st->failed_frames, KAGI_ERR_RECONCILE,
                  "LDPC: %zu of %zu frames could not be decoded after all reveals (the QBER may "
                  "be far above the estimate); block discarded, nothing written",
                  st->failed_frames, st->frames);
    return KAGI_OK;
}

/* Bob's account of the LDPC exchange, in his verdict: it must match what
 * Alice counted herself from the bits she sent. */
static int kagi__alice_ldpc_verdict(kagi__party *P, kagi_rd *rd)
{
    kagi_ldpc_stats *st = &P->r->ldpc;
    uint64_t leak = kagi_rd_u64(rd), corr = kagi_rd_u64(rd), trips = kagi_rd_u64(rd),
             failed = kagi_rd_u64(rd), iters = kagi_rd_u64(rd), imax = kagi_rd_u64(rd);
    KAGI__FAIL_IF(rd->err, KAGI_ERR_PROTO, "truncated verification answer");
    KAGI__FAIL_IF(leak != st->leak_bits || failed != st->failed_frames ||
                      trips != st->round_trips || corr > st->key_bits || imax > iters,
                  KAGI_ERR_PROTO,
                  "Bob's account of the LDPC exchange (%llu bits disclosed, %llu frames failed) "
                  "differs from Alice's (%zu, %zu)", (unsigned long long)leak,
                  (unsigned long long)failed, st->leak_bits, st->failed_frames);
    st->corrected = (size_t)corr;
    st->iterations = (size_t)iters;
    st->iter_max = (unsigned)imax;
    P->r->leak_bits = st->leak_bits;
    return kagi__ldpc_undecoded(st);
}

/* Reconciliation, each method and party: Bob's key P->rest is corrected
 * to Alice's. The exchanges run with deferred tags: hundreds of Cascade
 * round trips (or the LDPC syndromes and reveals) are covered by one tag
 * per direction on the verification messages instead of 128 key bits per
 * message. Nothing depends on the exchange before those tags are checked. */
static int kagi__alice_cascade(kagi__party *P)
{
    /* Reconciliation: answer Bob until he ends. */
    kagi_cascade_alice *ca = NULL;
    KAGI__TRY(kagi_cascade_alice_new(&ca, P->rest));
    kagi_channel_defer_tags(P->ch, 1);
    int rc = KAGI_OK, fin = 0;
    while (!rc && !fin) {
        rc = kagi_channel_recv(P->ch, &P->in);
        if (!rc) rc = kagi_cascade_alice_handle(ca, P->in.p, P->in.len, &P->out, &fin);
        if (!rc && !fin) rc = kagi__send(P);
    }
    kagi_channel_defer_tags(P->ch, 0);
    kagi_cascade_alice_free(ca);
    KAGI__TRY(kagi__cascade_failed(rc));
    return KAGI_OK;
}

static int kagi__bob_cascade(kagi__party *P)
{
    /* Cascade needs a QBER above zero to size its blocks. */
    kagi_cascade_params cp = P->p.cascade;
    cp.qber = P->r->qber > 1e-3 ? P->r->qber : 1e-3;
    KAGI__TRY(kagi_random_bytes(&cp.seed, sizeof cp.seed));
    kagi_cascade_bob *cb = NULL;
    KAGI__TRY(kagi_cascade_bob_new(&cb, P->rest, &cp));
    int done = 0;
    kagi_channel_defer_tags(P->ch, 1);
    int rc = kagi_cascade_bob_start(cb, &P->out);
    while (!rc) {
        rc = kagi__send(P);
        if (rc || done) break;
        rc = kagi_channel_recv(P->ch, &P->in);
        if (!rc) rc = kagi_cascade_bob_handle(cb, P->in.p, P->in.len, &P->out, &done);
    }
    kagi_channel_defer_tags(P->ch, 0);
    if (!rc) kagi_cascade_bob_stats(cb, &P->r->cascade);
    kagi_cascade_bob_free(cb);
    KAGI__TRY(kagi__cascade_failed(rc));
    P->r->leak_bits = P->r->cascade.leak_bits;
    return KAGI_OK;
}

static int kagi__alice_ldpc(kagi__party *P)
{
    kagi_channel_defer_tags(P->ch, 1);
    int rc = kagi__ldpc_wire_alice(P->ch, P->rest, kagi__ldpc_qber(P->r), &P->p.ldpc, &P->in,
                                   &P->out, &P->r->ldpc);
    kagi_channel_defer_tags(P->ch, 0);
    return kagi__cascade_failed(rc);
}

static int kagi__bob_ldpc(kagi__party *P)
{
    kagi_channel_defer_tags(P->ch, 1);
    int rc = kagi__ldpc_wire_bob(P->ch, P->rest, kagi__ldpc_qber(P->r), &P->p.ldpc, &P->in,
                                 &P->out, &P->r->ldpc);
    kagi_channel_defer_tags(P->ch, 0);
    P->r->leak_bits = P->r->ldpc.leak_bits;
    return kagi__cascade_failed(rc);
}

static int kagi__alice_run(kagi__party *P, const kagi_bits *sifted, kagi_bits **final)
{
    kagi_distill_report *r = P->r;
    kagi_rd rd;
    kagi__stamp t[5];
    t[0] = kagi__stamp_now();
    /* Hello from Bob: both must run the same parameters. */
    KAGI__TRY(kagi_channel_recv(P->ch, &P->in));
    kagi_rd_init(&rd, P->in.p, P->in.len);
    uint32_t magic = kagi_rd_u32(&rd), ver = kagi_rd_u32(&rd);
    uint64_t n = kagi_rd_u64(&rd), es = kagi_rd_u64(&rd), ec = kagi_rd_u64(&rd),
             k = kagi_rd_u64(&rd), dm = kagi_rd_u64(&rd), dl = kagi_rd_u64(&rd),
             dq = kagi_rd_u64(&rd), meth = kagi_rd_u64(&rd);
    KAGI__FAIL_IF(rd.err || magic != KAGI__MAGIC, KAGI_ERR_PROTO, "peer is not a kagi distiller");
    KAGI__FAIL_IF(ver != KAGI__PIPE_VERSION, KAGI_ERR_PROTO, "peer speaks version %u, not %u",
                  ver, KAGI__PIPE_VERSION);
    KAGI__FAIL_IF(n != sifted->n, KAGI_ERR_PROTO, "Bob holds %llu sifted bits, Alice %zu",
                  (unsigned long long)n, sifted->n);
    KAGI__FAIL_IF(es != kagi__dbits(P->p.eps_sec) || ec != kagi__dbits(P->p.eps_cor) ||
                      k != P->p.sample_bits,
                  KAGI_ERR_PROTO, "Alice and Bob were given different eps or sample sizes");
    KAGI__FAIL_IF(dm != (uint64_t)P->p.decoy || dl != kagi__dbits(P->p.decoy_length) ||
                      dq != kagi__dbits(P->p.qber_hint),
                  KAGI_ERR_PROTO, "Alice and Bob were given different decoy-state estimates");
    KAGI__FAIL_IF(meth != (uint64_t)P->p.method, KAGI_ERR_PROTO,
                  "Bob reconciles by %s, Alice by %s", meth ? "LDPC" : "Cascade",
                  P->p.method ? "LDPC" : "Cascade");
    KAGI__TRY(P->p.decoy ? kagi__decoy_start(P, sifted) : kagi__alice_estimate(P, sifted));
    t[1] = kagi__stamp_now();
    KAGI__TRY(P->p.method == KAGI_RECONCILE_LDPC ? kagi__alice_ldpc(P) : kagi__alice_cascade(P));
    t[2] = kagi__stamp_now();
    /* Verification: a fresh public hash key and Alice's tag. */
    uint8_t hkey[16], tag[16];
    r->verify_tag_bits = kagi_verify_tag_bits_for(P->rest->n, P->p.eps_cor);
    KAGI__FAIL_IF(!r->verify_tag_bits, KAGI_ERR_ARG, "eps_cor %g is out of reach for %zu bits",
                  P->p.eps_cor, P->rest->n);
    r->eps_cor = kagi_verify_epsilon(P->rest->n, r->verify_tag_bits);
    KAGI__TRY(kagi_random_bytes(hkey, sizeof hkey));
    KAGI__TRY(kagi_verify_tag(P->rest->w, P->rest->n, hkey, r->verify_tag_bits, tag));
    kagi_buf_put(&P->out, hkey, 16);
    kagi_buf_u32(&P->out, r->verify_tag_bits);
    kagi_buf_put(&P->out, tag, 16);
    KAGI__TRY(kagi__send(P));
    KAGI__TRY(kagi_channel_recv(P->ch, &P->in));
    kagi_rd_init(&rd, P->in.p, P->in.len);
    uint8_t ok = kagi_rd_u8(&rd);
    if (P->p.method == KAGI_RECONCILE_LDPC) {
        KAGI__TRY(kagi__alice_ldpc_verdict(P, &rd));
    } else {
        /* Bob's account of the reconciliation: leak counted on his side,
         * where parities of blocks holding no key bits (always 0) are left
         * out. */
        r->cascade.leak_bits = (size_t)kagi_rd_u64(&rd);
        r->cascade.corrected = (size_t)kagi_rd_u64(&rd);
        r->cascade.channel_uses = (size_t)kagi_rd_u64(&rd);
        KAGI__FAIL_IF(rd.err, KAGI_ERR_PROTO, "truncated verification answer");
        r->leak_bits = r->cascade.leak_bits;
    }
    r->verify_ok = ok == 1;
    KAGI__FAIL_IF(!r->verify_ok, KAGI_ERR_VERIFY,
                  "verification failed: Bob's corrected key differs from Alice's; block discarded, "
                  "nothing written");
    t[3] = kagi__stamp_now();
    /* Final length and amplification, decided by Alice. */
    size_t m;
    KAGI__TRY(kagi__final_length(P, r->leak_bits, &m));
    KAGI__TRY(kagi_bits_new(&P->seed, P->rest->n + m - 1));
    KAGI__TRY(kagi_bits_random(P->seed));
    kagi_buf_u64(&P->out, m);
    kagi__buf_put_bits(&P->out, P->seed->w, P->seed->n);
    KAGI__TRY(kagi__send(P));
    KAGI__TRY(kagi_bits_new(final, m));
    KAGI__TRY(kagi_toeplitz_mt(P->seed->w, P->rest->w, P->rest->n, m, (*final)->w, (int)P->p.amplify_threads));
    r->final_bits = m;
    kagi__stage_times(r, t);
    return KAGI_OK;
}

static int kagi__bob_run(kagi__party *P, const kagi_bits *sifted, kagi_bits **final)
{
    kagi_distill_report *r = P->r;
    kagi_rd rd;
    kagi__stamp t[5];
    t[0] = kagi__stamp_now();
    kagi_buf_u32(&P->out, KAGI__MAGIC);
    kagi_buf_u32(&P->out, KAGI__PIPE_VERSION);
    kagi_buf_u64(&P->out, sifted->n);
    kagi_buf_u64(&P->out, kagi__dbits(P->p.eps_sec));
    kagi_buf_u64(&P->out, kagi__dbits(P->p.eps_cor));
    kagi_buf_u64(&P->out, P->p.sample_bits);
    kagi_buf_u64(&P->out, (uint64_t)P->p.decoy);
    kagi_buf_u64(&P->out, kagi__dbits(P->p.decoy_length));
    kagi_buf_u64(&P->out, kagi__dbits(P->p.qber_hint));
    kagi_buf_u64(&P->out, (uint64_t)P->p.method);
    KAGI__TRY(kagi__send(P));
    KAGI__TRY(P->p.decoy ? kagi__decoy_start(P, sifted) : kagi__bob_estimate(P, sifted));
    t[1] = kagi__stamp_now();
    KAGI__TRY(P->p.method == KAGI_RECONCILE_LDPC ? kagi__bob_ldpc(P) : kagi__bob_cascade(P));
    t[2] = kagi__stamp_now();
    KAGI__TRY(kagi_channel_recv(P->ch, &P->in));
    kagi_rd_init(&rd, P->in.p, P->in.len);
    const uint8_t *hkey = kagi_rd_take(&rd, 16);
    uint32_t tb = kagi_rd_u32(&rd);
    const uint8_t *theirtag = kagi_rd_take(&rd, 16);
    KAGI__FAIL_IF(rd.err || (tb != 64 && tb != 128), KAGI_ERR_PROTO, "bad verification message");
    r->verify_tag_bits = tb;
    r->eps_cor = kagi_verify_epsilon(P->rest->n, tb);
    KAGI__FAIL_IF(r->eps_cor > P->p.eps_cor, KAGI_ERR_PROTO,
                  "Alice's %u-bit tag does not reach eps_cor %g", tb, P->p.eps_cor);
    uint8_t tag[16];
    KAGI__TRY(kagi_verify_tag(P->rest->w, P->rest->n, hkey, tb, tag));
    r->verify_ok = kagi_ct_equal(tag, theirtag, 16);
    kagi_buf_u8(&P->out, (uint8_t)r->verify_ok);
    if (P->p.method == KAGI_RECONCILE_LDPC) {
        kagi_buf_u64(&P->out, r->ldpc.leak_bits);
        kagi_buf_u64(&P->out, r->ldpc.corrected);
        kagi_buf_u64(&P->out, r->ldpc.round_trips);
        kagi_buf_u64(&P->out, r->ldpc.failed_frames);
        kagi_buf_u64(&P->out, r->ldpc.iterations);
        kagi_buf_u64(&P->out, r->ldpc.iter_max);
    } else {
        kagi_buf_u64(&P->out, r->cascade.leak_bits);
        kagi_buf_u64(&P->out, r->cascade.corrected);
        kagi_buf_u64(&P->out, r->cascade.channel_uses);
    }
    KAGI__TRY(kagi__send(P));
    if (P->p.method == KAGI_RECONCILE_LDPC) KAGI__TRY(kagi__ldpc_undecoded(&r->ldpc));
    KAGI__FAIL_IF(!r->verify_ok, KAGI_ERR_VERIFY,
                  "verification failed: the corrected key differs from Alice's; block discarded, "
                  "nothing written");
    t[3] = kagi__stamp_now();
    KAGI__TRY(kagi_channel_recv(P->ch, &P->in));
    kagi_rd_init(&rd, P->in.p, P->in.len);
    uint64_t m = kagi_rd_u64(&rd);
    size_t bound;
    KAGI__TRY(kagi__final_length(P, r->leak_bits, &bound));
    KAGI__FAIL_IF(rd.err || m == 0 || m > bound, KAGI_ERR_PROTO,
                  "Alice asks for %llu final bits, the bound allows %zu", (unsigned long long)m,
                  bound);
    KAGI__TRY(kagi_bits_new(&P->seed, P->rest->n + (size_t)m - 1));
    KAGI__TRY(kagi__take_bits(&rd, P->seed));
    KAGI__TRY(kagi_bits_new(final, (size_t)m));
    KAGI__TRY(kagi_toeplitz_mt(P->seed->w, P->rest->w, P->rest->n, (size_t)m, (*final)->w,
                               (int)P->p.amplify_threads));
    r->final_bits = (size_t)m;
    kagi__stage_times(r, t);
    return KAGI_OK;
}

typedef int (*kagi__run_fn)(kagi__party *, const kagi_bits *, kagi_bits **);

static int kagi__party_main(kagi__run_fn fn, kagi_channel *ch, const kagi_bits *sifted,
                            const kagi_distill_params *p, kagi_bits **final,
                            kagi_distill_report *r)
{
    *final = NULL;
    kagi_distill_report local;
    if (!r) r = &local;
    kagi__party P = {.ch = ch, .r = r};
    KAGI__TRY(kagi__resolve(p, &P.p, sifted->n));
    kagi__report_start(r, &P.p, sifted->n);
    kagi_buf_init(&P.in, KAGI_CHANNEL_MAX_MSG);
    kagi_buf_init(&P.out, KAGI_CHANNEL_MAX_MSG);
    int rc = fn(&P, sifted, final);
    kagi__report_end(&P);
    kagi__party_clear(&P);
    if (rc) {
        kagi_bits_free(*final);
        *final = NULL;
    }
    return rc;
}

int kagi_distill_alice(kagi_channel *ch, const kagi_bits *sifted, const kagi_distill_params *p,
                       kagi_bits **final, kagi_distill_report *r)
{
    return kagi__party_main(kagi__alice_run, ch, sifted, p, final, r);
}

int kagi_distill_bob(kagi_channel *ch, const kagi_bits *sifted, const kagi_distill_params *p,
                     kagi_bits **final, kagi_distill_report *r)
{
    return kagi__party_main(kagi__bob_run, ch, sifted, p, final, r);
}

size_t kagi_distill_auth_budget(size_t n)
{
    /* Hash key plus one pad per message: a few for the pipeline and one per
     * Cascade round trip, which grows slowly with the key. */
    size_t msgs = 64 + 4096 + n / 1024;
    return 128 * (msgs + 1);
}

typedef struct kagi__thread_arg {
    kagi_channel *ch;
    const kagi_bits *sifted;
    const kagi_distill_params *p;
    kagi_bits *final;
    kagi_distill_report *r;
    int rc;
    char detail[512];
} kagi__thread_arg;

static void *kagi__bob_thread(void *v)
{
    kagi__thread_arg *a = v;
    a->rc = kagi_distill_bob(a->ch, a->sifted, a->p, &a->final, a->r);
    if (a->rc) {
        snprintf(a->detail, sizeof a->detail, "%s", kagi_errdetail());
        /* Unblock Alice if she waits for a message that will not come. */
        kagi_channel_free(a->ch);
        a->ch = NULL;
    }
    return NULL;
}

int kagi_distill_local(const kagi_bits *alice, const kagi_bits *bob, const kagi_distill_params *p,
                       kagi_bits **fa, kagi_bits **fb, kagi_distill_report *ra,
                       kagi_distill_report *rb)
{
    *fa = *fb = NULL;
    KAGI__FAIL_IF(alice->n != bob->n, KAGI_ERR_ARG, "Alice has %zu bits, Bob %zu", alice->n,
                  bob->n);
    /* A fresh shared authentication key, one pool per direction. */
    size_t budget = kagi_distill_auth_budget(alice->n);
    kagi_bits *ak = NULL;
    KAGI__TRY(kagi_bits_new(&ak, 2 * budget));
    int rc = kagi_bits_random(ak);
    kagi_keypool *ab[2] = {NULL, NULL}, *ba[2] = {NULL, NULL};
    for (int i = 0; i < 2 && !rc; i++) {
        rc = kagi_keypool_new(&ab[i], ak->w, budget);
        if (!rc) rc = kagi_keypool_new(&ba[i], ak->w + budget / 64, budget);
    }
    kagi_bits_free(ak);
    kagi_channel *ca = NULL, *cb = NULL;
    if (!rc) rc = kagi_channel_pair(&ca, &cb);
    if (!rc) rc = kagi_channel_auth(ca, ab[0], ba[0]);
    if (!rc) rc = kagi_channel_auth(cb, ba[1], ab[1]);
    /* the two parties share this machine's cores */
    kagi_distill_params lp = *p;
    if (!lp.amplify_threads) lp.amplify_threads = (kagi__cpus(64) + 1) / 2;
    p = &lp;
    kagi__thread_arg arg = {.ch = cb, .sifted = bob, .p = p, .r = rb};
    pthread_t th;
    int started = 0;
    if (!rc) {
        started = pthread_create(&th, NULL, kagi__bob_thread, &arg) == 0;
        if (!started) rc = kagi__err(KAGI_ERR_NOMEM, "cannot start Bob's thread");
    }
    int rca = KAGI_OK;
    char da[512] = "";
    if (!rc) {
        rca = kagi_distill_alice(ca, alice, p, fa, ra);
        if (rca) snprintf(da, sizeof da, "%s", kagi_errdetail());
        kagi_channel_free(ca); /* unblocks Bob if Alice stopped early */
        ca = NULL;
    }
    if (started) pthread_join(th, NULL);
    kagi_channel_free(ca);
    kagi_channel_free(arg.ch);
    for (int i = 0; i < 2; i++) {
        kagi_keypool_free(ab[i]);
        kagi_keypool_free(ba[i]);
    }
    if (rc) return rc;
    *fb = arg.final;
    /* Report the cause, not the echo: the first party to fail names it. */
    if (rca || arg.rc) {
        int code = rca;
        const char *d = da;
        if (arg.rc && (!rca || rca == KAGI_ERR_NET)) {
            code = arg.rc;
            d = arg.detail;
        }
        kagi_bits_free(*fa);
        kagi_bits_free(*fb);
        *fa = *fb = NULL;
        return kagi__err(code, "%s", d);
    }
    return KAGI_OK;
}
