/* LDPC reconciliation between two parties over a kagi_channel: the
 * pipeline's reconciliation stage with method LDPC. Alice sends a setup
 * message and the syndromes (one message per batch of frames); Bob
 * decodes every frame on several threads and asks for reveals for the
 * frames that failed; Alice answers; after at most max_rounds rounds Bob
 * says which frames are still undecoded. docs/ldpc.md ("Wire format")
 * gives every byte. Each side counts the leak from what it sent or
 * received, never from the other's word. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/estimate.h"
#include "ldpc_int.h"

enum { KAGI__LW_SETUP = 1, KAGI__LW_SYN = 2, KAGI__LW_ASK = 3, KAGI__LW_REVEAL = 4, KAGI__LW_DONE = 5 };

/* Frames per syndrome message. */
#define KAGI__LW_BATCH 4u
/* Public seed of the codes (docs/ldpc.md lists their checksums). */
#define KAGI__LW_CODE_SEED 1u

static uint64_t kagi__lw_dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

void kagi__ldpc_params_resolve(kagi_ldpc_params *p)
{
    if (p->f_step == 0) p->f_step = 0.02;
    if (p->max_rounds == 0) p->max_rounds = 20;
    if (p->iter_first == 0) p->iter_first = 100;
    if (p->iter_round == 0) p->iter_round = 40;
    if (p->threads == 0) p->threads = kagi__cpus(64);
    if (p->z_max == 0) p->z_max = 8192;
}

/* What both sides derive from public numbers: code, plan and the step. */
typedef struct {
    kagi_ldpc_code *c;
    kagi_ldpc_plan *pl;
    size_t frames, step, mw;
} kagi__lw_setup;

static void kagi__lw_setup_free(kagi__lw_setup *S)
{
    kagi_ldpc_plan_free(S->pl);
    kagi_ldpc_code_free(S->c);
}

static int kagi__lw_setup_make(kagi__lw_setup *S, size_t nkey, double qber, const kagi_ldpc_params *p,
                               uint64_t plan_seed)
{
    memset(S, 0, sizeof *S);
    KAGI__FAIL_IF(p->max_rounds > 1000, KAGI_ERR_ARG, "ldpc: %u reveal rounds (at most 1000)",
                  p->max_rounds);
    KAGI__FAIL_IF(!(p->f_step > 0 && p->f_step < 1), KAGI_ERR_ARG, "ldpc: f_step %g", p->f_step);
    KAGI__FAIL_IF(p->threads > 64, KAGI_ERR_ARG, "ldpc: %u threads", p->threads);
    KAGI__TRY(kagi_ldpc_fit(nkey, qber, p->f_start, p->z_max, KAGI__LW_CODE_SEED, plan_seed, &S->c,
                            &S->pl));
    S->frames = (nkey + S->pl->n_key - 1) / S->pl->n_key;
    double step = ceil(p->f_step * (double)S->pl->n_key * kagi_h2(qber));
    S->step = step < 1 ? 1 : (size_t)step;
    S->mw = S->pl->m / 64;
    return KAGI_OK;
}

static void kagi__lw_stats_start(kagi_ldpc_stats *st, const kagi__lw_setup *S, size_t nkey)
{
    memset(st, 0, sizeof *st);
    st->frames = S->frames;
    st->key_bits = nkey;
    st->syndrome_bits = S->frames * S->pl->m;
    st->leak_bits = S->frames * (S->pl->m - S->pl->punctured);
    st->punctured = S->pl->punctured;
    st->shortened = S->pl->shortened;
    st->rate_pct = S->c->rate_pct;
    st->z = S->c->z;
    st->frame_key_bits = S->pl->n_key;
}

static void kagi__lw_stats_end(kagi_ldpc_stats *st, double qber)
{
    double h = kagi_h2(qber);
    st->efficiency = h > 0 ? (double)st->leak_bits / ((double)st->key_bits * h) : 0;
}

static int kagi__lw_send(kagi_channel *ch, kagi_buf *out)
{
    if (out->err) return out->err;
    int rc = kagi_channel_send(ch, out->p, out->len);
    kagi_buf_reset(out);
    return rc;
}

/* ------------------------------------------------------------------ Alice */

int kagi__ldpc_wire_alice(kagi_channel *ch, const kagi_bits *key, double qber,
                          const kagi_ldpc_params *pin, kagi_buf *in, kagi_buf *out,
                          kagi_ldpc_stats *st)
{
    kagi_ldpc_params p = *pin;
    kagi__ldpc_params_resolve(&p);
    if (p.f_start == 0) p.f_start = kagi_ldpc_f_auto_for(qber, key->n, p.z_max);
    /* The punctured positions are public (and sent): a fixed seed lets Bob
     * build his plan while Alice builds hers. */
    uint64_t plan_seed = p.seed;
    kagi__lw_setup S;
    KAGI__TRY(kagi__lw_setup_make(&S, key->n, qber, &p, plan_seed));
    kagi__lw_stats_start(st, &S, key->n);
    const kagi_ldpc_plan *pl = S.pl;
    const size_t F = S.frames;
    kagi_ldpc_alice **A = calloc(F, sizeof *A);
    uint64_t *syn = malloc(S.mw * 8 + 8), *vals = malloc(KAGI_WORDS(S.step) * 8 + 8);
    uint32_t *seen = calloc(F, sizeof *seen); /* last round each frame was asked in */
    int rc = !A || !syn || !vals || !seen ? kagi__err(KAGI_ERR_NOMEM, "ldpc: Alice's %zu frames", F)
                                          : KAGI_OK;
    /* Setup: everything Bob needs to rebuild the code and the plan. */
    if (!rc) {
        kagi_buf_u8(out, KAGI__LW_SETUP);
        kagi_buf_u8(out, (uint8_t)S.c->rate_pct);
        kagi_buf_u32(out, S.c->z);
        kagi_buf_u64(out, KAGI__LW_CODE_SEED);
        kagi_buf_u64(out, plan_seed);
        kagi_buf_u64(out, kagi__lw_dbits(qber));
        kagi_buf_u64(out, kagi__lw_dbits(p.f_start));
        kagi_buf_u64(out, key->n);
        kagi_buf_u32(out, (uint32_t)F);
        kagi_buf_u32(out, (uint32_t)pl->n_key);
        kagi_buf_u32(out, (uint32_t)pl->punctured);
        kagi_buf_u32(out, (uint32_t)pl->shortened);
        kagi_buf_u32(out, (uint32_t)S.step);
        kagi_buf_u32(out, p.max_rounds);
        rc = kagi__lw_send(ch, out);
        st->messages++;
    }
    /* Syndromes, KAGI__LW_BATCH frames per message. */
    for (size_t f0 = 0; !rc && f0 < F; f0 += KAGI__LW_BATCH) {
        size_t cnt = F - f0 < KAGI__LW_BATCH ? F - f0 : KAGI__LW_BATCH;
        kagi_buf_u8(out, KAGI__LW_SYN);
        kagi_buf_u32(out, (uint32_t)f0);
        kagi_buf_u32(out, (uint32_t)cnt);
        for (size_t f = f0; !rc && f < f0 + cnt; f++) {
            size_t off = f * pl->n_key, nb = key->n - off < pl->n_key ? key->n - off : pl->n_key;
            rc = kagi_ldpc_alice_new(&A[f], pl);
            if (!rc) rc = kagi_ldpc_alice_frame(A[f], key->w, off, nb, syn);
            uint8_t *d = rc ? NULL : kagi_buf_grow(out, S.mw * 8);
            if (d) kagi__bytes_from_words(d, syn, S.mw * 8);
        }
        if (!rc) rc = kagi__lw_send(ch, out);
        st->messages++;
    }
    /* Reveal rounds until Bob is done. */
    for (uint32_t round = 1; !rc; round++) {
        kagi_rd rd;
        rc = kagi_channel_recv(ch, in);
        if (rc) break;
        st->messages++;
        kagi_rd_init(&rd, in->p, in->len);
        uint8_t type = kagi_rd_u8(&rd);
        if (type == KAGI__LW_DONE) {
            uint32_t nf = kagi_rd_u32(&rd);
            if (rd.err || nf > F) {
                rc = kagi__err(KAGI_ERR_PROTO, "ldpc: bad end message from Bob");
                break;
            }
            uint32_t prev = 0;
            for (uint32_t i = 0; !rc && i < nf; i++) {
                uint32_t f = kagi_rd_u32(&rd);
                if (rd.err || f >= F || (i && f <= prev))
                    rc = kagi__err(KAGI_ERR_PROTO, "ldpc: bad failed-frame list from Bob");
                prev = f;
            }
            if (!rc && rd.off != rd.len) rc = kagi__err(KAGI_ERR_PROTO, "ldpc: trailing bytes");
            st->failed_frames = nf;
            break;
        }
        uint32_t r = kagi_rd_u32(&rd), nf = kagi_rd_u32(&rd);
        if (rd.err || type != KAGI__LW_ASK || r != round || r > p.max_rounds || nf == 0 || nf > F) {
            rc = kagi__err(KAGI_ERR_PROTO, "ldpc: bad reveal request from Bob (round %u)", round);
            break;
        }
        kagi_buf_u8(out, KAGI__LW_REVEAL);
        kagi_buf_u32(out, round);
        kagi_buf_u32(out, nf);
        for (uint32_t i = 0; !rc && i < nf; i++) {
            uint32_t f = kagi_rd_u32(&rd);
            if (rd.err || f >= F || seen[f] == round) {
                rc = kagi__err(KAGI_ERR_PROTO, "ldpc: bad frame in Bob's request (round %u)", round);
                break;
            }
            seen[f] = round;
            size_t got = kagi_ldpc_alice_reveal(A[f], S.step, vals);
            kagi_buf_u32(out, f);
            kagi_buf_u32(out, (uint32_t)got);
            uint8_t *d = kagi_buf_grow(out, (got + 7) / 8);
            if (d) kagi__bytes_from_words(d, vals, (got + 7) / 8);
            st->revealed_bits += got;
            st->leak_bits += got;
        }
        if (!rc && rd.off != rd.len) rc = kagi__err(KAGI_ERR_PROTO, "ldpc: trailing bytes");
        if (!rc) rc = kagi__lw_send(ch, out);
        st->messages++;
        st->round_trips++;
    }
    kagi_buf_reset(out);
    for (size_t f = 0; A && f < F; f++) kagi_ldpc_alice_free(A[f]);
    free(A);
    if (syn) kagi__wipe(syn, S.mw * 8 + 8);
    if (vals) kagi__wipe(vals, KAGI_WORDS(S.step) * 8 + 8);
    free(syn);
    free(vals);
    free(seen);
    kagi__lw_setup_free(&S);
    kagi__lw_stats_end(st, qber);
    return rc;
}

/* -------------------------------------------------------------------- Bob */

/* One decoding round over a list of frames, on several threads. */
typedef struct {
    const kagi_ldpc_plan *pl;
    const kagi_ldpc_params *pr;
    const uint64_t *kb; /* Bob's key as received (read only) */
    uint64_t *out;      /* Bob's key, corrected frame by frame under mu */
    size_t nkey, mw, rvw;
    const uint64_t *syn;
    kagi_ldpc_bob **fb; /* per frame: its decoder while undecoded */
    kagi_ldpc_bob **pool;
    size_t npool;
    const uint32_t *list;
    const uint64_t *rv; /* per list entry: rvw words of revealed values */
    const uint32_t *rvn;
    size_t nlist;
    atomic_size_t next;
    uint32_t round;
    uint8_t *ok;
    unsigned *iters;
    size_t corrected;
    pthread_mutex_t mu;
    int rc;
} kagi__lw_job;

static void *kagi__lw_worker(void *arg)
{
    kagi__lw_job *J = arg;
    const kagi_ldpc_plan *pl = J->pl;
    for (;;) {
        size_t i = atomic_fetch_add(&J->next, 1);
        if (i >= J->nlist) break;
        uint32_t f = J->list[i];
        size_t off = (size_t)f * pl->n_key;
        size_t nb = J->nkey - off < pl->n_key ? J->nkey - off : pl->n_key;
        kagi_ldpc_bob *b = J->fb[f];
        int rc = KAGI_OK, drc;
        if (J->round == 0) {
            pthread_mutex_lock(&J->mu);
            if (J->npool) b = J->pool[--J->npool];
            pthread_mutex_unlock(&J->mu);
            if (!b) rc = kagi_ldpc_bob_new(&b, pl, J->pr->impl, J->pr->alpha16);
            if (!rc) rc = kagi_ldpc_bob_frame(b, J->kb, off, nb, J->syn + (size_t)f * J->mw);
            drc = rc ? rc : kagi_ldpc_bob_decode(b, J->pr->iter_first);
        } else {
            kagi_ldpc_bob_reveal(b, J->rvn[i], J->rv + i * J->rvw);
            drc = kagi_ldpc_bob_decode(b, J->pr->iter_round);
        }
        kagi_ldpc_frame_stats fs = {0};
        if (b) kagi_ldpc_bob_stats(b, &fs);
        J->iters[f] = fs.iterations;
        pthread_mutex_lock(&J->mu);
        if (drc == KAGI_OK) {
            kagi_ldpc_bob_result(b, J->out, off);
            J->corrected += kagi_bits_hamming_at(J->kb, J->out, off, nb);
            J->pool[J->npool++] = b;
            J->fb[f] = NULL;
            J->ok[f] = 1;
        } else if (drc == KAGI_ERR_RECONCILE) {
            J->fb[f] = b;
        } else {
            kagi_ldpc_bob_free(b);
            J->fb[f] = NULL;
            if (!J->rc) J->rc = drc;
        }
        pthread_mutex_unlock(&J->mu);
    }
    return NULL;
}

static int kagi__lw_round(kagi__lw_job *J)
{
    atomic_store(&J->next, 0);
    unsigned nt = J->pr->threads;
    if (nt > J->nlist) nt = (unsigned)J->nlist;
    kagi__run_threads(nt, kagi__lw_worker, J);
    return J->rc;
}

/* Read Alice's setup and rebuild the same code and plan; every public
 * number must be what Bob derives himself. */
static int kagi__lw_bob_setup(kagi_channel *ch, kagi_buf *in, size_t nkey, double qber,
                              const kagi_ldpc_params *p, kagi__lw_setup *S)
{
    /* Bob's own plan first, while Alice makes hers. */
    KAGI__TRY(kagi__lw_setup_make(S, nkey, qber, p, p->seed));
    int rc = kagi_channel_recv(ch, in);
    if (rc) {
        kagi__lw_setup_free(S);
        return rc;
    }
    kagi_rd rd;
    kagi_rd_init(&rd, in->p, in->len);
    uint8_t type = kagi_rd_u8(&rd), rate = kagi_rd_u8(&rd);
    uint32_t z = kagi_rd_u32(&rd);
    uint64_t cseed = kagi_rd_u64(&rd), pseed = kagi_rd_u64(&rd), q = kagi_rd_u64(&rd),
             fs = kagi_rd_u64(&rd), n = kagi_rd_u64(&rd);
    uint32_t F = kagi_rd_u32(&rd), nk = kagi_rd_u32(&rd), np = kagi_rd_u32(&rd),
             ns = kagi_rd_u32(&rd), step = kagi_rd_u32(&rd), mr = kagi_rd_u32(&rd);
    if (rd.err || rd.off != rd.len || type != KAGI__LW_SETUP) {
        kagi__lw_setup_free(S);
        return kagi__err(KAGI_ERR_PROTO, "ldpc: bad setup message from Alice");
    }
    if (cseed != KAGI__LW_CODE_SEED || pseed != p->seed || q != kagi__lw_dbits(qber) ||
        fs != kagi__lw_dbits(p->f_start) || n != nkey || mr != p->max_rounds) {
        kagi__lw_setup_free(S);
        return kagi__err(KAGI_ERR_PROTO,
                         "ldpc: Alice and Bob were given different LDPC parameters (key bits "
                         "%llu / %zu, reveal rounds %u / %u, or QBER, f_start or seed)",
                         (unsigned long long)n, nkey, mr, p->max_rounds);
    }
    if (rate != S->c->rate_pct || z != S->c->z || F != S->frames || nk != S->pl->n_key ||
        np != S->pl->punctured || ns != S->pl->shortened || step != S->step) {
        kagi__lw_setup_free(S);
        return kagi__err(KAGI_ERR_PROTO, "ldpc: Alice's code (rate %u, z %u, %u frames of %u key "
                                         "bits) is not the one Bob derives", rate, z, F, nk);
    }
    return KAGI_OK;
}

int kagi__ldpc_wire_bob(kagi_channel *ch, kagi_bits *key, double qber, const kagi_ldpc_params *pin,
                        kagi_buf *in, kagi_buf *out, kagi_ldpc_stats *st)
{
    kagi_ldpc_params p = *pin;
    kagi__ldpc_params_resolve(&p);
    if (p.f_start == 0) p.f_start = kagi_ldpc_f_auto_for(qber, key->n, p.z_max);
    kagi__lw_setup S;
    KAGI__TRY(kagi__lw_bob_setup(ch, in, key->n, qber, &p, &S));
    kagi__lw_stats_start(st, &S, key->n);
    st->messages++;
    const size_t F = S.frames;
    kagi_bits *orig = NULL;
    kagi__lw_job J = {.pl = S.pl, .pr = &p, .out = key->w, .nkey = key->n, .mw = S.mw,
                      .rvw = KAGI_WORDS(S.step) + 1};
    int rc = kagi_bits_dup(&orig, key);
    uint64_t *syn = rc ? NULL : malloc(F * S.mw * 8);
    J.fb = calloc(F, sizeof *J.fb);
    J.pool = calloc(F, sizeof *J.pool);
    uint32_t *list = malloc(F * sizeof *list), *rvn = malloc(F * sizeof *rvn);
    uint64_t *rv = malloc(F * J.rvw * 8);
    J.ok = calloc(F, 1);
    J.iters = calloc(F, sizeof *J.iters);
    if (!rc && (!syn || !J.fb || !J.pool || !list || !rvn || !rv || !J.ok || !J.iters))
        rc = kagi__err(KAGI_ERR_NOMEM, "ldpc: Bob's %zu frames", F);
    pthread_mutex_init(&J.mu, NULL);
    if (!rc) {
        J.kb = orig->w;
        J.syn = syn;
    }
    /* Syndromes, batch by batch, in order. */
    for (size_t f0 = 0; !rc && f0 < F;) {
        kagi_rd rd;
        rc = kagi_channel_recv(ch, in);
        if (rc) break;
        st->messages++;
        kagi_rd_init(&rd, in->p, in->len);
        uint8_t type = kagi_rd_u8(&rd);
        uint32_t first = kagi_rd_u32(&rd), cnt = kagi_rd_u32(&rd);
        if (rd.err || type != KAGI__LW_SYN || first != f0 || cnt == 0 || cnt > F - f0 ||
            rd.len - rd.off != (size_t)cnt * S.mw * 8) {
            rc = kagi__err(KAGI_ERR_PROTO, "ldpc: bad syndrome message from Alice (frame %zu)", f0);
            break;
        }
        memset(syn + f0 * S.mw, 0, (size_t)cnt * S.mw * 8);
        kagi__words_from_bytes(syn + f0 * S.mw, rd.p + rd.off, (size_t)cnt * S.mw * 8);
        f0 += cnt;
    }
    /* Round 0 on every frame, then reveal rounds for the ones left. */
    size_t nl = F;
    for (size_t f = 0; !rc && f < F; f++) list[f] = (uint32_t)f;
    J.list = list;
    J.rv = rv;
    J.rvn = rvn;
    J.nlist = nl;
    if (!rc) rc = kagi__lw_round(&J);
    for (uint32_t round = 1; !rc && round <= p.max_rounds; round++) {
        nl = 0;
        for (size_t f = 0; f < F; f++)
            if (!J.ok[f]) list[nl++] = (uint32_t)f;
        if (!nl) break;
        kagi_buf_u8(out, KAGI__LW_ASK);
        kagi_buf_u32(out, round);
        kagi_buf_u32(out, (uint32_t)nl);
        for (size_t i = 0; i < nl; i++) kagi_buf_u32(out, list[i]);
        rc = kagi__lw_send(ch, out);
        st->messages++;
        if (!rc) rc = kagi_channel_recv(ch, in);
        if (rc) break;
        st->messages++;
        st->round_trips++;
        kagi_rd rd;
        kagi_rd_init(&rd, in->p, in->len);
        uint8_t type = kagi_rd_u8(&rd);
        uint32_t r = kagi_rd_u32(&rd), cnt = kagi_rd_u32(&rd);
        if (rd.err || type != KAGI__LW_REVEAL || r != round || cnt != nl) {
            rc = kagi__err(KAGI_ERR_PROTO, "ldpc: bad reveal message from Alice (round %u)", round);
            break;
        }
        memset(rv, 0, nl * J.rvw * 8);
        for (size_t i = 0; !rc && i < nl; i++) {
            uint32_t f = kagi_rd_u32(&rd), nb = kagi_rd_u32(&rd);
            const uint8_t *d = rd.err || nb > S.step ? NULL : kagi_rd_take(&rd, (nb + 7) / 8);
            if (f != list[i] || !d) {
                rc = kagi__err(KAGI_ERR_PROTO, "ldpc: bad reveal of frame %u from Alice", list[i]);
                break;
            }
            kagi__words_from_bytes(rv + i * J.rvw, d, (nb + 7) / 8);
            if (nb & 63) rv[i * J.rvw + nb / 64] &= ((uint64_t)1 << (nb & 63)) - 1;
            rvn[i] = nb;
            st->revealed_bits += nb;
            st->leak_bits += nb;
        }
        if (!rc && rd.off != rd.len) rc = kagi__err(KAGI_ERR_PROTO, "ldpc: trailing bytes");
        J.nlist = nl;
        J.round = round;
        if (!rc) rc = kagi__lw_round(&J);
    }
    /* The end: the frames still undecoded (their bits stay as Bob had them;
     * the pipeline then fails the run). */
    if (!rc) {
        nl = 0;
        for (size_t f = 0; f < F; f++)
            if (!J.ok[f]) list[nl++] = (uint32_t)f;
        kagi_buf_u8(out, KAGI__LW_DONE);
        kagi_buf_u32(out, (uint32_t)nl);
        for (size_t i = 0; i < nl; i++) kagi_buf_u32(out, list[i]);
        rc = kagi__lw_send(ch, out);
        st->messages++;
        st->failed_frames = nl;
    }
    kagi_buf_reset(out);
    for (size_t f = 0; f < F; f++) {
        if (J.iters) {
            st->iterations += J.iters[f];
            if (J.iters[f] > st->iter_max) st->iter_max = J.iters[f];
        }
        if (J.fb) kagi_ldpc_bob_free(J.fb[f]);
    }
    for (size_t i = 0; J.pool && i < J.npool; i++) kagi_ldpc_bob_free(J.pool[i]);
    st->corrected = J.corrected;
    pthread_mutex_destroy(&J.mu);
    if (rv) kagi__wipe(rv, F * J.rvw * 8);
    free(rv);
    free(rvn);
    free(list);
    free(syn);
    free(J.fb);
    free(J.pool);
    free(J.ok);
    free(J.iters);
    kagi_bits_free(orig);
    kagi__lw_setup_free(&S);
    kagi__lw_stats_end(st, qber);
    return rc;
}
