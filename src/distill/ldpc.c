/* Rate-adaptive quasi-cyclic LDPC reconciliation: code construction,
 * syndromes, rate adaption (puncturing, shortening), both parties of a
 * frame and a multi-threaded driver. The decoder kernels are in
 * ldpc_dec.c. docs/ldpc.md describes the construction step by step (so a
 * code can be rebuilt from its seed without this file) and the leak
 * accounting. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/ldpc.h"
#include "ldpc_int.h"

#if KAGI__LDPC_X86
#include <immintrin.h>
#endif

/* ------------------------------------------------------------ the codes */

/* Node-perspective degree profile of each mother rate (of 128 columns):
 * groups of columns in column order, g[k] = {count, degree}, the counts
 * summing to 128. Chosen by simulation with the default (lambda-min)
 * decoder, whose thresholds f_thr are (docs/ldpc.md has the search). */
#define KAGI__LDPC_GROUPS 8
typedef struct {
    unsigned rate, mb;
    unsigned g[KAGI__LDPC_GROUPS][2];
    double f_thr; /* lowest f where all test frames decoded (docs/ldpc.md) */
    uint32_t z_min; /* smallest lifting factor the automatic choice takes it at */
} kagi__ldpc_profile;

static const kagi__ldpc_profile kagi__profiles[] = {
    {50, 64, {{14, 16}, {84, 3}, {30, 2}}, 1.09, 64},
    {60, 51, {{20, 14}, {81, 3}, {27, 2}}, 1.09, 64},
    {70, 38, {{22, 13}, {86, 3}, {20, 2}}, 1.10, 64},
    {75, 32, {{25, 14}, {83, 3}, {20, 2}}, 1.09, 64},
    {80, 26, {{24, 13}, {10, 6}, {74, 3}, {20, 2}}, 1.11, 64},
    {85, 19, {{26, 13}, {10, 6}, {76, 3}, {16, 2}}, 1.12, 64},
    /* Below z = 1024 rate 0.9's 50-column rows force hundreds of
     * 6-cycles and a few % of frames stay stuck (docs/ldpc.md, "Short
     * frames"): short frames at ~1 % take rate 0.85 instead. */
    {90, 13, {{28, 12}, {12, 6}, {76, 3}, {12, 2}}, 1.15, 1024},
};
#define KAGI__NPROFILES (sizeof kagi__profiles / sizeof kagi__profiles[0])

#ifdef KAGI_LDPC_PROFILE_SEARCH
/* Profile search only (bench/bench_codes.c; never in a normal build, where
 * the codes must be the documented ones): KAGI_LDPC_PROFILE="rate mb
 * count:degree ..." replaces or adds one rate. */
static kagi__ldpc_profile kagi__override;

static void kagi__override_read(void)
{
    static int done = 0;
    const char *e = getenv("KAGI_LDPC_PROFILE");
    int off = 0, k = 0;
    unsigned r, mb, cc, dd;
    if (done || !e) return;
    done = 1;
    if (sscanf(e, "%u %u%n", &r, &mb, &off) != 2) return;
    kagi__override = (kagi__ldpc_profile){.rate = r, .mb = mb};
    for (e += off; k < KAGI__LDPC_GROUPS && sscanf(e, " %u:%u%n", &cc, &dd, &off) == 2; e += off, k++) {
        kagi__override.g[k][0] = cc;
        kagi__override.g[k][1] = dd;
    }
}
#endif

static const kagi__ldpc_profile *kagi__profile(unsigned rate)
{
#ifdef KAGI_LDPC_PROFILE_SEARCH
    kagi__override_read();
    if (kagi__override.rate == rate) return &kagi__override;
#endif
    for (size_t i = 0; i < KAGI__NPROFILES; i++)
        if (kagi__profiles[i].rate == rate) return &kagi__profiles[i];
    return NULL;
}

/* Degree of base column j. */
static unsigned kagi__col_degree(const kagi__ldpc_profile *pf, uint32_t j)
{
    for (unsigned k = 0; k < KAGI__LDPC_GROUPS && pf->g[k][0]; k++) {
        if (j < pf->g[k][0]) return pf->g[k][1];
        j -= pf->g[k][0];
    }
    return 0;
}

void kagi_ldpc_code_free(kagi_ldpc_code *c)
{
    if (!c) return;
    free(c->row_ptr);
    free(c->col);
    free(c->shift);
    free(c->erow);
    free(c->col_ptr);
    free(c->col_edge);
    free(c);
}

/* Shift-selection state: the base matrix being lifted, with per-row and
 * per-column lists of circulants whose shift is already fixed. */
typedef struct {
    uint32_t mb, nb, z;
    int32_t *S;                /* mb x nb: shift, -1 none, -2 present but not yet fixed */
    uint32_t *rl, *rn;         /* row lists: columns with fixed shifts */
    uint32_t *cl, *cn;         /* column lists: rows with fixed shifts */
    uint8_t *forb;             /* z: bit 1 closes a 4-cycle, bit 2 a 6-cycle */
} kagi__lift;

static inline uint32_t kagi__modz(int64_t v, uint32_t z)
{
    int64_t r = v % (int64_t)z;
    return (uint32_t)(r < 0 ? r + z : r);
}

static void kagi__lift_fix(kagi__lift *L, uint32_t i, uint32_t j, uint32_t s)
{
    L->S[(size_t)i * L->nb + j] = (int32_t)s;
    L->rl[(size_t)i * L->nb + L->rn[i]++] = j;
    L->cl[(size_t)j * L->mb + L->cn[j]++] = i;
}

/* Mark every shift of (i, j) that would close a 4- or 6-cycle with the
 * circulants fixed so far. A cycle i -j-> i1 -j1-> ... -> i closes in the
 * lifted graph when the alternating sum of its shifts is 0 mod z. */
static void kagi__lift_forbid(kagi__lift *L, uint32_t i, uint32_t j)
{
    const uint32_t nb = L->nb, mb = L->mb, z = L->z;
    const int32_t *S = L->S;
    memset(L->forb, 0, z);
    for (uint32_t a = 0; a < L->cn[j]; a++) {
        uint32_t i1 = L->cl[(size_t)j * mb + a];
        int64_t base = S[(size_t)i1 * nb + j];
        for (uint32_t b = 0; b < L->rn[i1]; b++) {
            uint32_t j1 = L->rl[(size_t)i1 * nb + b];
            if (j1 == j) continue;
            int64_t v1 = base - S[(size_t)i1 * nb + j1];
            int32_t sij1 = S[(size_t)i * nb + j1];
            if (sij1 >= 0) L->forb[kagi__modz(v1 + sij1, z)] |= 1; /* 4-cycle */
            for (uint32_t c = 0; c < L->cn[j1]; c++) {
                uint32_t i2 = L->cl[(size_t)j1 * mb + c];
                if (i2 == i || i2 == i1) continue;
                int64_t v2 = v1 + S[(size_t)i2 * nb + j1];
                for (uint32_t d = 0; d < L->rn[i2]; d++) {
                    uint32_t j2 = L->rl[(size_t)i2 * nb + d];
                    if (j2 == j || j2 == j1) continue;
                    int32_t sij2 = S[(size_t)i * nb + j2];
                    if (sij2 < 0) continue;
                    L->forb[kagi__modz(v2 - S[(size_t)i2 * nb + j2] + sij2, z)] |= 2;
                }
            }
        }
    }
}

/* Pick the k-th (k uniform) shift among those with (forb & mask) == 0;
 * returns z when there is none. */
static uint32_t kagi__lift_pick(const kagi__lift *L, kagi_rng *r, uint8_t mask)
{
    size_t cnt = 0;
    for (uint32_t s = 0; s < L->z; s++) cnt += !(L->forb[s] & mask);
    if (!cnt) return L->z;
    uint64_t k = kagi_rng_below(r, cnt);
    for (uint32_t s = 0; s < L->z; s++)
        if (!(L->forb[s] & mask) && k-- == 0) return s;
    return L->z;
}

/* Root of row i's component (path halving). */
static uint32_t kagi__root(uint32_t *comp, uint32_t i)
{
    while (comp[i] != i) i = comp[i] = comp[comp[i]];
    return i;
}

static uint64_t kagi__fnv(uint64_t h, uint32_t v)
{
    for (int b = 0; b < 4; b++) {
        h ^= (v >> (8 * b)) & 0xff;
        h *= 0x100000001b3ull;
    }
    return h;
}

int kagi_ldpc_code_new(kagi_ldpc_code **out, unsigned rate_pct, uint32_t z, uint64_t seed)
{
    *out = NULL;
    const kagi__ldpc_profile *pf = kagi__profile(rate_pct);
    if (!pf) {
        char list[64];
        size_t o = 0;
        for (size_t i = 0; i < KAGI__NPROFILES && o < sizeof list; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%u", i ? ", " : "", kagi__profiles[i].rate);
        return kagi__err(KAGI_ERR_ARG, "ldpc: rate %u%% is not one of %s", rate_pct, list);
    }
    KAGI__FAIL_IF(z < 64 || z > 65536 || z % 64, KAGI_ERR_ARG,
                  "ldpc: lifting factor %u is not a multiple of 64 in [64, 65536]", z);
    const uint32_t nb = KAGI_LDPC_NB, mb = pf->mb;
    kagi__lift L = {.mb = mb, .nb = nb, .z = z};
    L.S = malloc((size_t)mb * nb * sizeof *L.S);
    L.rl = malloc((size_t)mb * nb * sizeof *L.rl);
    L.cl = malloc((size_t)mb * nb * sizeof *L.cl);
    L.rn = calloc(mb, sizeof *L.rn);
    L.cn = calloc(nb, sizeof *L.cn);
    L.forb = malloc(z);
    uint32_t *deg = calloc(mb, sizeof *deg), *key = malloc(mb * sizeof *key);
    uint32_t *comp = malloc(mb * sizeof *comp);
    kagi_ldpc_code *c = calloc(1, sizeof *c);
    int rc = KAGI_OK;
    if (!L.S || !L.rl || !L.cl || !L.rn || !L.cn || !L.forb || !deg || !key || !comp || !c) {
        rc = kagi__err(KAGI_ERR_NOMEM, "ldpc: code of %u x %u blocks", mb, nb);
        goto done;
    }
    for (size_t i = 0; i < (size_t)mb * nb; i++) L.S[i] = -1;
    kagi_rng r;
    kagi_rng_seed(&r, seed ^ ((uint64_t)rate_pct << 32) ^ 0x6c6470636b616769ull);

    /* 1. The base matrix, column by column, degrees from the profile's
     * groups in order; each column takes the rows of least degree so far,
     * ties broken by a fresh random 32-bit key per row. A degree-2
     * column's second row must lie in another component of the graph the
     * degree-2 columns so far make on the rows (union-find in comp[]):
     * they form a forest, whose lift is a forest too. A cycle of them
     * together with a degree-3 column on the same rows made codewords of
     * weight ~11 that the decoder converged to at 1 % (docs/ldpc.md). */
    for (uint32_t i = 0; i < mb; i++) comp[i] = i;
    for (uint32_t j = 0; j < nb; j++) {
        uint32_t d = kagi__col_degree(pf, j), first = mb, last = mb;
        if (d < 2 || d > mb) {
            rc = kagi__err(KAGI_ERR_ARG, "ldpc: base column %u of degree %u in %u rows", j, d, mb);
            goto done;
        }
        for (uint32_t i = 0; i < mb; i++) key[i] = (uint32_t)kagi_rng_next(&r);
        for (uint32_t t = 0; t < d; t++) {
            uint32_t best = mb, root = first < mb ? kagi__root(comp, first) : mb;
            for (uint32_t i = 0; i < mb; i++) {
                if (L.S[(size_t)i * nb + j] != -1) continue;
                if (d == 2 && t == 1 && kagi__root(comp, i) == root) continue;
                if (best == mb || deg[i] < deg[best] || (deg[i] == deg[best] && key[i] < key[best]))
                    best = i;
            }
            if (best == mb) {
                rc = kagi__err(KAGI_ERR_ARG, "ldpc: %u rows hold no forest of the degree-2 columns", mb);
                goto done;
            }
            L.S[(size_t)best * nb + j] = -2;
            deg[best]++;
            if (t == 0) first = best;
            last = best;
        }
        if (d == 2) comp[kagi__root(comp, first)] = kagi__root(comp, last);
    }
    /* 2. Shifts, column by column and top to bottom: a uniform choice among
     * the shifts closing no 4- or 6-cycle with the circulants placed so
     * far, else among those closing no 4-cycle, else any. */
    for (uint32_t j = 0; j < nb; j++) {
        for (uint32_t i = 0; i < mb; i++) {
            if (L.S[(size_t)i * nb + j] != -2) continue;
            kagi__lift_forbid(&L, i, j);
            uint32_t s = kagi__lift_pick(&L, &r, 3);
            if (s == z) {
                c->cycles6++;
                s = kagi__lift_pick(&L, &r, 1);
            }
            if (s == z) {
                c->cycles4++;
                s = (uint32_t)kagi_rng_below(&r, z);
            }
            kagi__lift_fix(&L, i, j, s);
        }
    }
    /* 3. Row-major circulant lists, column lists, checksum. */
    size_t ne = 0;
    for (uint32_t i = 0; i < mb; i++) ne += L.rn[i];
    c->row_ptr = malloc((mb + 1) * sizeof *c->row_ptr);
    c->col = malloc(ne * sizeof *c->col);
    c->shift = malloc(ne * sizeof *c->shift);
    c->col_ptr = calloc(nb + 1, sizeof *c->col_ptr);
    c->col_edge = malloc(ne * sizeof *c->col_edge);
    c->erow = malloc(ne * sizeof *c->erow);
    if (!c->row_ptr || !c->col || !c->shift || !c->col_ptr || !c->col_edge || !c->erow) {
        rc = kagi__err(KAGI_ERR_NOMEM, "ldpc: %zu circulants", ne);
        goto done;
    }
    c->z = z;
    c->zw = z / 64;
    c->nb = nb;
    c->mb = mb;
    c->n = (size_t)nb * z;
    c->m = (size_t)mb * z;
    c->ncirc = ne;
    c->rate_pct = rate_pct;
    c->seed = seed;
    uint64_t h = 0xcbf29ce484222325ull;
    h = kagi__fnv(kagi__fnv(kagi__fnv(h, nb), mb), z);
    size_t e = 0;
    for (uint32_t i = 0; i < mb; i++) {
        c->row_ptr[i] = (uint32_t)e;
        for (uint32_t j = 0; j < nb; j++) {
            int32_t s = L.S[(size_t)i * nb + j];
            if (s < 0) continue;
            c->col[e] = j;
            c->shift[e] = (uint32_t)s;
            c->erow[e] = i;
            c->col_ptr[j + 1]++;
            h = kagi__fnv(kagi__fnv(kagi__fnv(h, i), j), (uint32_t)s);
            e++;
        }
        uint32_t dc = (uint32_t)e - c->row_ptr[i];
        if (dc > c->dc_max) c->dc_max = dc;
    }
    c->row_ptr[mb] = (uint32_t)e;
    if (c->dc_max > KAGI__LDPC_DCMAX) {
        rc = kagi__err(KAGI_ERR_ARG, "ldpc: a base row has %u circulants (at most %u)", c->dc_max,
                       KAGI__LDPC_DCMAX);
        goto done;
    }
    c->checksum = h;
    for (uint32_t j = 0; j < nb; j++) c->col_ptr[j + 1] += c->col_ptr[j];
    {
        uint32_t *fill = calloc(nb, sizeof *fill);
        if (!fill) {
            rc = kagi__err(KAGI_ERR_NOMEM, "ldpc: column lists");
            goto done;
        }
        for (size_t k = 0; k < ne; k++) {
            uint32_t j = c->col[k];
            c->col_edge[c->col_ptr[j] + fill[j]++] = (uint32_t)k;
        }
        free(fill);
    }
done:
    free(L.S);
    free(L.rl);
    free(L.cl);
    free(L.rn);
    free(L.cn);
    free(L.forb);
    free(deg);
    free(key);
    free(comp);
    if (rc) kagi_ldpc_code_free(c);
    else *out = c;
    return rc;
}

/* A copy of code t: the same circulants in fresh arrays, owned by the
 * caller. */
static int kagi__code_copy(kagi_ldpc_code **out, const kagi_ldpc_code *t)
{
    *out = NULL;
    kagi_ldpc_code *c = malloc(sizeof *c);
    if (!c) return kagi__err(KAGI_ERR_NOMEM, "ldpc: code copy");
    *c = *t;
    size_t ne = t->ncirc, rb = (t->mb + 1) * sizeof *c->row_ptr, cb = (t->nb + 1) * sizeof *c->col_ptr,
           eb = ne * sizeof *c->col;
    c->row_ptr = malloc(rb);
    c->col = malloc(eb);
    c->shift = malloc(eb);
    c->erow = malloc(eb);
    c->col_ptr = malloc(cb);
    c->col_edge = malloc(eb);
    if (!c->row_ptr || !c->col || !c->shift || !c->erow || !c->col_ptr || !c->col_edge) {
        kagi_ldpc_code_free(c);
        return kagi__err(KAGI_ERR_NOMEM, "ldpc: code copy of %zu circulants", ne);
    }
    memcpy(c->row_ptr, t->row_ptr, rb);
    memcpy(c->col, t->col, eb);
    memcpy(c->shift, t->shift, eb);
    memcpy(c->erow, t->erow, eb);
    memcpy(c->col_ptr, t->col_ptr, cb);
    memcpy(c->col_edge, t->col_edge, eb);
    *out = c;
    return KAGI_OK;
}

/* Codes kagi_ldpc_fit built before, by (rate, z, seed): a 10^6-bit code
 * takes 25-35 ms to lift (the girth conditioning over z shifts per
 * circulant) and a few us to copy, and a stream of blocks at a steady
 * QBER asks for the same code each time, on both sides. Eight entries,
 * the oldest replaced; the templates live until the process ends (a few
 * kB each: only the base matrix). kagi_ldpc_code_new itself always
 * constructs, so the tests of the construction see no cache. */
enum { KAGI__CODE_CACHE = 8 };
static struct {
    pthread_mutex_t mu;
    kagi_ldpc_code *t[KAGI__CODE_CACHE];
    unsigned next;
} kagi__codes = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int kagi__code_cached(kagi_ldpc_code **out, unsigned rate, uint32_t z, uint64_t seed)
{
    /* Built under the lock: the two parties of one process fit the same
     * code at the same moment, and the second then copies the first's
     * instead of lifting it again (another code's fit waits meanwhile). */
    pthread_mutex_lock(&kagi__codes.mu);
    for (unsigned i = 0; i < KAGI__CODE_CACHE; i++) {
        const kagi_ldpc_code *t = kagi__codes.t[i];
        if (t && t->rate_pct == rate && t->z == z && t->seed == seed) {
            int rc = kagi__code_copy(out, t);
            pthread_mutex_unlock(&kagi__codes.mu);
            return rc;
        }
    }
    int rc = kagi_ldpc_code_new(out, rate, z, seed);
    kagi_ldpc_code *t;
    if (!rc && kagi__code_copy(&t, *out) == KAGI_OK) { /* no room: just not cached */
        unsigned i = kagi__codes.next++ % KAGI__CODE_CACHE;
        kagi_ldpc_code_free(kagi__codes.t[i]);
        kagi__codes.t[i] = t;
    }
    pthread_mutex_unlock(&kagi__codes.mu);
    return rc;
}

void kagi_ldpc_code_get_info(const kagi_ldpc_code *c, kagi_ldpc_code_info *o)
{
    *o = (kagi_ldpc_code_info){.n = c->n, .m = c->m, .z = c->z, .nb = c->nb, .mb = c->mb,
                               .circulants = c->ncirc, .ones = c->ncirc * c->z,
                               .rate_pct = c->rate_pct, .seed = c->seed, .checksum = c->checksum,
                               .cycles4 = c->cycles4, .cycles6 = c->cycles6};
}

int kagi_ldpc_code_circulant(const kagi_ldpc_code *c, size_t e, uint32_t *row, uint32_t *col,
                             uint32_t *shift)
{
    KAGI__FAIL_IF(e >= c->ncirc, KAGI_ERR_ARG, "ldpc: circulant %zu of %zu", e, c->ncirc);
    *row = c->erow[e];
    *col = c->col[e];
    *shift = c->shift[e];
    return KAGI_OK;
}

/* ------------------------------------------------------------ syndromes */

/* s_i ^= x_j rotated by sh: bit r of the result is bit (r + sh) % z of x_j.
 * z is a multiple of 64, so the rotation wraps at a word boundary. */
void kagi__ldpc_rot_xor(uint64_t *s, const uint64_t *x, size_t zw, uint32_t sh)
{
    size_t k = sh >> 6;
    unsigned b = sh & 63;
    if (!b) {
        for (size_t w = 0; w < zw; w++) {
            s[w] ^= x[k];
            if (++k == zw) k = 0;
        }
        return;
    }
    for (size_t w = 0; w < zw; w++) {
        size_t k1 = k + 1 == zw ? 0 : k + 1;
        s[w] ^= (x[k] >> b) | (x[k1] << (64 - b));
        k = k1;
    }
}

void kagi_ldpc_syndrome(const kagi_ldpc_code *c, const uint64_t *x, uint64_t *s)
{
    const size_t zw = c->zw;
    memset(s, 0, c->mb * zw * sizeof *s);
    for (uint32_t i = 0; i < c->mb; i++)
        for (uint32_t e = c->row_ptr[i]; e < c->row_ptr[i + 1]; e++)
            kagi__ldpc_rot_xor(s + i * zw, x + (size_t)c->col[e] * zw, zw, c->shift[e]);
}

/* Check index of the e-th circulant (in column order) of bit v. */
static inline size_t kagi__check_of(const kagi_ldpc_code *c, uint32_t e, size_t v)
{
    uint32_t t = (uint32_t)(v % c->z), sh = c->shift[e];
    return (size_t)c->erow[e] * c->z + (t >= sh ? t - sh : t + c->z - sh);
}

/* Flip the bits of syndrome s at the checks of bit v. */
static void kagi__flip_checks(const kagi_ldpc_code *c, uint64_t *s, size_t v)
{
    uint32_t j = (uint32_t)(v / c->z);
    for (uint32_t k = c->col_ptr[j]; k < c->col_ptr[j + 1]; k++) {
        size_t ch = kagi__check_of(c, c->col_edge[k], v);
        s[ch >> 6] ^= (uint64_t)1 << (ch & 63);
    }
}

/* --------------------------------------------------------- rate adaption */

static double kagi__h2(double p) { return -p * log2(p) - (1 - p) * log2(1 - p); }

void kagi_ldpc_plan_free(kagi_ldpc_plan *p)
{
    if (!p) return;
    free(p->kind);
    free(p->key_pos);
    free(p->key_idx);
    free(p->reveal);
    free(p->run_pos);
    free(p->run_kidx);
    free(p->run_len);
    free(p->kmask);
    free(p->kpre);
    free(p->llr0);
    free(p);
}

/* Quantised channel LLR of a key bit: round(6 ln((1-q)/q)), in [1, 126]. */
static int8_t kagi__llr(double q)
{
    double v = round(KAGI__LDPC_LLR_SCALE * log((1 - q) / q));
    return (int8_t)(v < 1 ? 1 : v > 126 ? 126 : v);
}

/* Punctured (want_p) or shortened (want_s) positions a plan aims for, so
 * that the syndrome leak per key bit is f h(qber). A plan reaches want_s
 * exactly and at most want_p, so n - want_p - want_s is a floor on its
 * key bits. */
static void kagi__plan_targets(size_t n, size_t m, double qber, double f_target, size_t *want_p,
                               size_t *want_s)
{
    const double H = kagi__h2(qber);
    *want_p = *want_s = 0;
    if ((double)m > f_target * (double)n * H) {
        double p = ((double)m - f_target * (double)n * H) / (1 - f_target * H);
        *want_p = (size_t)llround(p);
        if (*want_p > m) *want_p = m;
    } else {
        double s = (double)n - (double)m / (f_target * H);
        *want_s = (size_t)llround(s);
        if (*want_s > n - m) *want_s = n - m;
    }
}

/* The QBER and efficiency a plan can be made for. */
static int kagi__plan_args(double qber, double f_target)
{
    KAGI__FAIL_IF(!(qber > 0 && qber <= 0.11), KAGI_ERR_ARG, "ldpc: QBER %g outside (0, 0.11]", qber);
    KAGI__FAIL_IF(!(f_target >= 0.8 && f_target <= 2.0), KAGI_ERR_ARG,
                  "ldpc: target efficiency %g outside [0.8, 2]", f_target);
    return KAGI_OK;
}

/* A plan; key_bits 0: as many key bits as f_target gives (kagi_ldpc_plan_new),
 * else exactly key_bits, with p = m - f k h punctured (none if that is
 * negative: the leak per key bit is then m / k h, above what f_target
 * asks) and the rest of the frame shortened; key_bits + p above n falls
 * back to the first kind. A key that does not fill its frames
 * (kagi_ldpc_fit) then leaks f h per key bit instead of the whole m - p. */
static int kagi__plan_build(kagi_ldpc_plan **out, const kagi_ldpc_code *c, double qber, double f_target,
                            uint64_t seed, size_t key_bits)
{
    *out = NULL;
    KAGI__TRY(kagi__plan_args(qber, f_target));
    const size_t n = c->n, m = c->m;
    size_t want_p, want_s;
    kagi__plan_targets(n, m, qber, f_target, &want_p, &want_s);
    if (key_bits) {
        double kp = (double)m - f_target * (double)key_bits * kagi__h2(qber); /* <= m */
        size_t key_p = kp > 0 ? (size_t)llround(kp) : 0;
        if (key_bits + key_p <= n) {
            want_p = key_p;
            want_s = 0; /* set below, from the punctured count reached */
        } else {
            key_bits = 0;
        }
    }
    kagi_ldpc_plan *p = calloc(1, sizeof *p);
    uint32_t *order = malloc(n * sizeof *order);
    uint8_t *cnt = calloc(m, 1), *owned = calloc(m, 1);
    int rc = KAGI_OK;
    if (!p || !order || !cnt || !owned) {
        rc = kagi__err(KAGI_ERR_NOMEM, "ldpc: plan for %zu bits", n);
        goto done;
    }
    p->c = c;
    p->n = n;
    p->m = m;
    p->qber = qber;
    p->f_target = f_target;
    p->llr = kagi__llr(qber);
    p->kind = calloc(n, 1);
    p->key_idx = malloc(n * sizeof *p->key_idx);
    p->reveal = malloc(n * sizeof *p->reveal);
    if (!p->kind || !p->key_idx || !p->reveal) {
        rc = kagi__err(KAGI_ERR_NOMEM, "ldpc: plan for %zu bits", n);
        goto done;
    }
    /* A seeded shuffle of the positions (Fisher-Yates from the end). */
    kagi_rng r;
    kagi_rng_seed(&r, seed ^ 0x70756e6374757265ull);
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    /* The swap partners depend on the random stream only, so a chunk of
     * them is drawn first and each fetched some swaps ahead: the same
     * permutation, without waiting on one cache miss per swap (which was
     * two thirds of a 10^6-bit plan). */
    enum { CH = 1024, AHEAD = 16 };
    uint32_t ks[CH];
    for (size_t i = n; i > 1;) {
        size_t nk = i - 1 < CH ? i - 1 : CH;
        for (size_t j = 0; j < nk; j++) ks[j] = (uint32_t)kagi_rng_below(&r, i - j);
        for (size_t j = 0; j < nk; j++, i--) {
            if (j + AHEAD < nk) __builtin_prefetch(&order[ks[j + AHEAD]], 1);
            uint32_t k = ks[j], t = order[i - 1];
            order[i - 1] = order[k];
            order[k] = t;
        }
    }
    /* Puncture greedily in that order: a position is taken when none of
     * its checks is owned and one has no punctured bit yet; it owns that
     * one (the first in column order). Each punctured bit then has a check
     * of its own, so H restricted to the punctured columns has full rank. */
    size_t np = 0;
    for (size_t t = 0; t < n && np < want_p; t++) {
        size_t v = order[t];
        uint32_t j = (uint32_t)(v / c->z);
        size_t own = SIZE_MAX;
        int ok = 1;
        for (uint32_t k = c->col_ptr[j]; k < c->col_ptr[j + 1]; k++) {
            size_t ch = kagi__check_of(c, c->col_edge[k], v);
            if (owned[ch]) ok = 0;
            else if (!cnt[ch] && own == SIZE_MAX) own = ch;
        }
        if (!ok || own == SIZE_MAX) continue;
        owned[own] = 1;
        for (uint32_t k = c->col_ptr[j]; k < c->col_ptr[j + 1]; k++) {
            size_t ch = kagi__check_of(c, c->col_edge[k], v);
            if (cnt[ch] < 255) cnt[ch]++;
        }
        p->kind[v] = KAGI__LDPC_PUNCT;
        p->reveal[np++] = (uint32_t)v;
    }
    /* Shorten the first want_s unpunctured positions of the order: without
       key_bits p is 0 then; with it, all but key_bits of what the
       puncturing left (whatever p it reached). */
    if (key_bits) want_s = n - key_bits - np;
    size_t ns = 0;
    for (size_t t = 0; t < n && ns < want_s; t++) {
        if (p->kind[order[t]] != KAGI__LDPC_KEY) continue;
        p->kind[order[t]] = KAGI__LDPC_SHORT;
        ns++;
    }
    p->punctured = np;
    p->shortened = ns;
    p->n_key = n - np - ns;
    p->key_pos = malloc(p->n_key * sizeof *p->key_pos + 1);
    if (!p->key_pos) {
        rc = kagi__err(KAGI_ERR_NOMEM, "ldpc: plan for %zu bits", n);
        goto done;
    }
    size_t k = 0;
    for (size_t v = 0; v < n; v++) {
        if (p->kind[v] == KAGI__LDPC_KEY) {
            p->key_idx[v] = (uint32_t)k;
            p->key_pos[k++] = (uint32_t)v;
        } else {
            p->key_idx[v] = UINT32_MAX;
        }
    }
    /* Runs of key positions and Bob's starting LLRs. */
    size_t nr0 = 0;
    for (size_t v = 0; v < n; v++)
        if (p->kind[v] == KAGI__LDPC_KEY && (v == 0 || p->kind[v - 1] != KAGI__LDPC_KEY)) nr0++;
    p->run_pos = malloc((nr0 + 1) * sizeof *p->run_pos);
    p->run_kidx = malloc((nr0 + 1) * sizeof *p->run_kidx);
    p->run_len = malloc((nr0 + 1) * sizeof *p->run_len);
    p->llr0 = malloc(n);
    p->kmask = calloc(n / 64, sizeof *p->kmask);
    p->kpre = malloc(n / 64 * sizeof *p->kpre);
    if (!p->run_pos || !p->run_kidx || !p->run_len || !p->llr0 || !p->kmask || !p->kpre) {
        rc = kagi__err(KAGI_ERR_NOMEM, "ldpc: plan for %zu bits", n);
        goto done;
    }
    size_t nk = 0;
    for (size_t v = 0; v < n; v++) {
        uint8_t kd = p->kind[v];
        p->llr0[v] = kd == KAGI__LDPC_KEY ? p->llr : kd == KAGI__LDPC_PUNCT ? 0 : KAGI__LDPC_PIN;
        if (v % 64 == 0) p->kpre[v / 64] = (uint32_t)nk; /* key bits before v */
        if (kd != KAGI__LDPC_KEY) continue;
        nk++;
        p->kmask[v / 64] |= (uint64_t)1 << (v % 64);
        if (v == 0 || p->kind[v - 1] != KAGI__LDPC_KEY) {
            p->run_pos[p->nruns] = (uint32_t)v;
            p->run_kidx[p->nruns] = p->key_idx[v];
            p->run_len[p->nruns++] = 0;
        }
        p->run_len[p->nruns - 1]++;
    }
    /* Reveal order: punctured bits as chosen, then key bits in the
     * shuffled order. */
    size_t nr = np;
    for (size_t t = 0; t < n; t++)
        if (p->kind[order[t]] == KAGI__LDPC_KEY) p->reveal[nr++] = order[t];
    p->nreveal = nr;
done:
    free(order);
    free(cnt);
    free(owned);
    if (rc) kagi_ldpc_plan_free(p);
    else *out = p;
    return rc;
}

int kagi_ldpc_plan_new(kagi_ldpc_plan **out, const kagi_ldpc_code *c, double qber, double f_target,
                       uint64_t seed)
{
    return kagi__plan_build(out, c, qber, f_target, seed, 0);
}

void kagi_ldpc_plan_get_info(const kagi_ldpc_plan *p, kagi_ldpc_plan_info *o)
{
    size_t leak = p->m - p->punctured;
    *o = (kagi_ldpc_plan_info){.n = p->n, .m = p->m, .n_key = p->n_key, .punctured = p->punctured,
                               .shortened = p->shortened, .leak_syndrome = leak, .qber = p->qber,
                               .f_target = p->f_target,
                               .f_plan = (double)leak / ((double)p->n_key * kagi__h2(p->qber)),
                               .llr = p->llr};
}

/* A code's threshold at lifting factor z: the measured one (z = 8192)
 * plus 0.0125 per halving of the frame below that (finite length: the
 * rate-0.85 mother code decodes down to 1.12 at z = 8192, ~1.14 at 2048,
 * ~1.16-1.17 at 512; docs/ldpc.md), from a quarter halving on (frames a
 * little short of 2^20 bits keep the measured one). */
static double kagi__thr(unsigned rate, uint32_t z)
{
    double h = log2(8192.0 / z) - 0.25; /* z >= 64 */
    return kagi__profile(rate)->f_thr + (h > 0 ? 0.0125 * h : 0);
}

/* kagi_ldpc_rate_for for frames of lifting factor z; *shortened says
 * whether the choice is its first case (a rate above the target,
 * shortened within its threshold), *punct_frac the fraction of the frame
 * punctured otherwise (1 when neither). */
static unsigned kagi__rate_pick(double qber, double f, uint32_t z, int *shortened, double *punct_frac)
{
    *shortened = 0;
    *punct_frac = 1;
    if (!(qber > 0 && qber < 0.5)) return 50;
    double R = 1 - f * kagi__h2(qber), best = 1e9, pfrac = 1;
    unsigned pick = 50, punct = 0, shorten = 0;
    /* The table's rates, in increasing order (the profile hook may
     * replace one's profile, hence the lookup). */
    for (size_t i = 0; i < KAGI__NPROFILES; i++) {
        const unsigned rate = kagi__profiles[i].rate;
        const kagi__ldpc_profile *pf = kagi__profile(rate);
        if (z < pf->z_min) continue;
        double R0 = 1 - (double)pf->mb / KAGI_LDPC_NB;
        /* Fraction of the frame that must be punctured or shortened. */
        double frac = R0 <= R ? (R - R0) / R : (R0 - R) / (1 - R);
        if (frac < best) {
            best = frac;
            pick = rate;
        }
        /* Shortening loses less of a code's threshold than puncturing
         * (0.02-0.03 against 0.04-0.06 in f, docs/ldpc.md): take the lowest
         * rate above R if at most a quarter of the frame is shortened and
         * f is not below that code's threshold (a key bit revealed by the
         * fallback costs a whole bit for h(Q) of information, so starting
         * below it ends worse). */
        if (!shorten && R0 >= R && frac <= 0.25 && f >= kagi__thr(rate, z)) shorten = rate;
        /* Puncturing leaves bits to reveal for the fallback: else take the
         * highest rate below R if it needs at most 0.4 m punctured bits
         * (plans find about 0.5 m positions with a check of their own)
         * and the mother code, all punctured bits revealed, is 0.05 above
         * its threshold at this QBER: revealing them then surely rescues a
         * frame. Without that condition an estimate a little low at 2 %
         * and f 1.08 chose rate 0.85 with 1 % punctured, below its
         * threshold even once they were revealed, and whole blocks failed. */
        if (R0 <= R && (R - R0) / R <= 0.4 * (1 - R0) &&
            (1 - R0) / kagi__h2(qber) >= kagi__thr(rate, z) + 0.05) {
            punct = rate;
            pfrac = (R - R0) / R;
        }
    }
    *shortened = shorten != 0;
    if (!shorten && punct) *punct_frac = pfrac;
    return shorten ? shorten : punct ? punct : pick;
}

unsigned kagi_ldpc_rate_for(double qber, double f)
{
    int sh;
    double pf;
    return kagi__rate_pick(qber, f, 8192, &sh, &pf);
}

/* The lifting factor kagi_ldpc_fit will about choose for nbits: frames of
 * at most z_max, ~85 % of a frame key bits (only the margin of kagi__thr
 * depends on it, by its logarithm). */
static uint32_t kagi__z_guess(size_t nbits, uint32_t z_max)
{
    if (z_max == 0) z_max = 8192;
    double per = 0.85 * KAGI_LDPC_NB;
    double frames = ceil((double)nbits / (per * z_max));
    double z = ceil((double)nbits / (frames * per) / 64) * 64;
    return z < 64 ? 64 : z > z_max ? z_max : (uint32_t)z;
}

static double kagi__f_auto_z(double qber, uint32_t z)
{
    if (!(qber > 0 && qber <= 0.11)) return 1.22;
    for (int k = 10; k <= 22; k++) {
        double f = 1 + k / 100.0, pf;
        int sh;
        unsigned rate = kagi__rate_pick(qber, f, z, &sh, &pf);
        /* Shortened, with room over the mother threshold for the
         * shortening's own loss and the estimate's noise; or lightly
         * punctured (at most 5 % of the frame), with as much more room
         * as the fraction punctured (4 %: rate 0.7 with 2 % punctured
         * decoded every frame at 1.16 in 27 iterations; docs/ldpc.md). */
        double thr = kagi__thr(rate, z) + 0.02 - 1e-9;
        if (sh && f >= thr) return f;
        if (!sh && pf <= 0.05 && f >= thr + pf) return f;
    }
    return 1.22;
}

double kagi_ldpc_f_auto(double qber) { return kagi__f_auto_z(qber, 8192); }

double kagi_ldpc_f_auto_for(double qber, size_t nbits, uint32_t z_max)
{
    return kagi__f_auto_z(qber, kagi__z_guess(nbits, z_max));
}

/* ---------------------------------------------------------------- Alice */

struct kagi_ldpc_alice {
    const kagi_ldpc_plan *p;
    uint64_t *x;        /* the frame, n bits */
    uint64_t *rnd;      /* punctured bits' randomness */
    size_t nbits, next;
};

int kagi_ldpc_alice_new(kagi_ldpc_alice **out, const kagi_ldpc_plan *p)
{
    *out = NULL;
    kagi_ldpc_alice *a = calloc(1, sizeof *a);
    if (a) {
        a->p = p;
        a->x = calloc(KAGI_WORDS(p->n), 8);
        a->rnd = calloc(KAGI_WORDS(p->punctured) + 1, 8);
    }
    if (!a || !a->x || !a->rnd) {
        kagi_ldpc_alice_free(a);
        return kagi__err(KAGI_ERR_NOMEM, "ldpc: Alice's frame of %zu bits", p->n);
    }
    *out = a;
    return KAGI_OK;
}

void kagi_ldpc_alice_free(kagi_ldpc_alice *a)
{
    if (!a) return;
    if (a->x) kagi__wipe(a->x, KAGI_WORDS(a->p->n) * 8);
    if (a->rnd) kagi__wipe(a->rnd, (KAGI_WORDS(a->p->punctured) + 1) * 8);
    free(a->x);
    free(a->rnd);
    free(a);
}

/* Run by run: every CPU. */
static void kagi__move_runs(const kagi_ldpc_plan *p, uint64_t *frame, uint64_t *key,
                            const uint64_t *ckey, size_t off, size_t nbits, int dir)
{
    if (dir == 0) memset(frame, 0, KAGI_WORDS(p->n) * 8);
    for (size_t t = 0; t < p->nruns && p->run_kidx[t] < nbits; t++) {
        size_t k = p->run_kidx[t], len = p->run_len[t];
        if (k + len > nbits) len = nbits - k;
        if (dir == 0) kagi__copy_bits(frame, p->run_pos[t], ckey, off + k, len);
        else kagi__copy_bits(key, off + k, frame, p->run_pos[t], len);
    }
}

#if KAGI__LDPC_X86
/* Word by word: a frame word's key bits are the next popcount(kmask[w])
 * bits of the key, deposited into (or extracted from) the mask's
 * positions. A shortened plan has a key run every ~20 bits, so run by run
 * this was a tenth of a frame's time at f 1.5 (docs/ldpc.md). */
__attribute__((target("bmi2,popcnt"))) static void kagi__move_words(const kagi_ldpc_plan *p,
                                                                    uint64_t *frame, uint64_t *key,
                                                                    const uint64_t *ckey, size_t off,
                                                                    size_t nbits, int dir)
{
    const size_t nw = p->n / 64;
    size_t w = 0;
    for (; w < nw && p->kpre[w] < nbits; w++) {
        uint64_t mk = p->kmask[w];
        size_t k = p->kpre[w];
        unsigned cnt = (unsigned)_mm_popcnt_u64(mk);
        if (k + cnt > nbits) cnt = (unsigned)(nbits - k);
        if (dir == 0) {
            frame[w] = cnt ? _pdep_u64(kagi__get_bits(ckey, off + k, cnt), mk) : 0;
        } else if (cnt) {
            uint64_t v = _pext_u64(frame[w], mk);
            kagi__put_bits(key, off + k, cnt < 64 ? v & (((uint64_t)1 << cnt) - 1) : v, cnt);
        }
    }
    if (dir == 0) memset(frame + w, 0, (nw - w) * 8);
}
#endif

int kagi__ldpc_move_key(const kagi_ldpc_plan *p, uint64_t *frame, uint64_t *key,
                        const uint64_t *ckey, size_t off, size_t nbits, int dir, int words)
{
#if KAGI__LDPC_X86
    if (words) {
        if (!(kagi__ldpc_cpu() & KAGI__LDPC_CPU_BMI2)) return -1;
        kagi__move_words(p, frame, key, ckey, off, nbits, dir);
        return 0;
    }
#else
    if (words) return -1;
#endif
    kagi__move_runs(p, frame, key, ckey, off, nbits, dir);
    return 0;
}

/* Key bits [0, nbits) of the frame, at key offset off, between the key
 * (dir 0: key -> frame, the whole frame written) and the frame (dir 1:
 * frame -> key). */
static void kagi__move_key(const kagi_ldpc_plan *p, uint64_t *frame, uint64_t *key,
                           const uint64_t *ckey, size_t off, size_t nbits, int dir)
{
    if (kagi__ldpc_move_key(p, frame, key, ckey, off, nbits, dir, 1) < 0)
        kagi__move_runs(p, frame, key, ckey, off, nbits, dir);
}

static inline int kagi__bit(const uint64_t *w, size_t i) { return (int)((w[i >> 6] >> (i & 63)) & 1); }
static inline void kagi__setbit(uint64_t *w, size_t i) { w[i >> 6] |= (uint64_t)1 << (i & 63); }

int kagi_ldpc_alice_frame(kagi_ldpc_alice *a, const uint64_t *key, size_t off, size_t nbits,
                          uint64_t *syn)
{
    const kagi_ldpc_plan *p = a->p;
    KAGI__FAIL_IF(nbits > p->n_key, KAGI_ERR_ARG, "ldpc: %zu key bits in a frame of %zu", nbits,
                  p->n_key);
    kagi__move_key(p, a->x, NULL, key, off, nbits, 0);
    if (p->punctured) {
        KAGI__TRY(kagi_random_bytes(a->rnd, KAGI_WORDS(p->punctured) * 8));
        for (size_t t = 0; t < p->punctured; t++)
            if (kagi__bit(a->rnd, t)) kagi__setbit(a->x, p->reveal[t]);
    }
    a->nbits = nbits;
    a->next = 0;
    kagi_ldpc_syndrome(p->c, a->x, syn);
    return KAGI_OK;
}

/* Next reveal position at or after *next, skipping key positions past the
 * frame's key bits (zero and known to both); SIZE_MAX when none is left. */
static size_t kagi__next_reveal(const kagi_ldpc_plan *p, size_t nbits, size_t *next)
{
    while (*next < p->nreveal) {
        size_t v = p->reveal[(*next)++];
        if (p->kind[v] != KAGI__LDPC_KEY || p->key_idx[v] < nbits) return v;
    }
    return SIZE_MAX;
}

size_t kagi_ldpc_alice_reveal(kagi_ldpc_alice *a, size_t count, uint64_t *vals)
{
    size_t t = 0;
    memset(vals, 0, KAGI_WORDS(count) * 8);
    for (; t < count; t++) {
        size_t v = kagi__next_reveal(a->p, a->nbits, &a->next);
        if (v == SIZE_MAX) break;
        if (kagi__bit(a->x, v)) kagi__setbit(vals, t);
    }
    return t;
}

/* ------------------------------------------------------------------ Bob */

#define KAGI__LDPC_RESTART 5 /* reveal round from which Bob's decoder restarts */

struct kagi_ldpc_bob {
    const kagi_ldpc_plan *p;
    kagi_ldpc_decoder *d;
    uint64_t *y, *se, *e;  /* Bob's frame, target syndrome of e, error pattern */
    int8_t *llr;
    size_t nbits, next, revealed;
    unsigned iters, rounds;
    int ok;
};

int kagi_ldpc_bob_new(kagi_ldpc_bob **out, const kagi_ldpc_plan *p, int impl, unsigned alpha16)
{
    *out = NULL;
    kagi_ldpc_bob *b = calloc(1, sizeof *b);
    if (!b) return kagi__err(KAGI_ERR_NOMEM, "ldpc: Bob");
    b->p = p;
    int rc = kagi_ldpc_decoder_new(&b->d, p->c, impl, alpha16);
    if (rc) {
        free(b);
        return rc;
    }
    b->y = calloc(KAGI_WORDS(p->n), 8);
    b->e = calloc(KAGI_WORDS(p->n), 8);
    b->se = calloc(KAGI_WORDS(p->m), 8);
    b->llr = malloc(p->n);
    if (!b->y || !b->e || !b->se || !b->llr) {
        kagi_ldpc_bob_free(b);
        return kagi__err(KAGI_ERR_NOMEM, "ldpc: Bob's frame of %zu bits", p->n);
    }
    *out = b;
    return KAGI_OK;
}

void kagi_ldpc_bob_free(kagi_ldpc_bob *b)
{
    if (!b) return;
    kagi_ldpc_decoder_free(b->d);
    if (b->y) kagi__wipe(b->y, KAGI_WORDS(b->p->n) * 8);
    if (b->e) kagi__wipe(b->e, KAGI_WORDS(b->p->n) * 8);
    if (b->llr) kagi__wipe(b->llr, b->p->n);
    free(b->y);
    free(b->e);
    free(b->se);
    free(b->llr);
    free(b);
}

int kagi_ldpc_bob_frame(kagi_ldpc_bob *b, const uint64_t *key, size_t off, size_t nbits,
                        const uint64_t *syn)
{
    const kagi_ldpc_plan *p = b->p;
    KAGI__FAIL_IF(nbits > p->n_key, KAGI_ERR_ARG, "ldpc: %zu key bits in a frame of %zu", nbits,
                  p->n_key);
    kagi__move_key(p, b->y, NULL, key, off, nbits, 0);
    memcpy(b->llr, p->llr0, p->n);
    for (size_t k = nbits; k < p->n_key; k++) b->llr[p->key_pos[k]] = KAGI__LDPC_PIN;
    /* The error pattern e = x + y must meet H e = s + H y. */
    kagi_ldpc_syndrome(p->c, b->y, b->se);
    for (size_t w = 0; w < KAGI_WORDS(p->m); w++) b->se[w] ^= syn[w];
    kagi_ldpc_decoder_start(b->d, b->llr, b->se);
    b->nbits = nbits;
    b->next = 0;
    b->revealed = 0;
    b->iters = 0;
    b->rounds = 0;
    b->ok = 0;
    return KAGI_OK;
}

int kagi_ldpc_bob_decode(kagi_ldpc_bob *b, unsigned max_iter)
{
    int rc = kagi_ldpc_decoder_run(b->d, max_iter, b->e, &b->iters);
    b->ok = rc == KAGI_OK;
    return rc;
}

void kagi_ldpc_bob_reveal(kagi_ldpc_bob *b, size_t count, const uint64_t *vals)
{
    for (size_t t = 0; t < count; t++) {
        size_t v = kagi__next_reveal(b->p, b->nbits, &b->next);
        if (v == SIZE_MAX) break;
        int wrong = kagi__bit(b->y, v) != kagi__bit(vals, t);
        if (wrong) b->y[v >> 6] ^= (uint64_t)1 << (v & 63);
        if (kagi_ldpc_decoder_fix(b->d, v, wrong)) break; /* never: v < n, from the plan */
        b->llr[v] = KAGI__LDPC_PIN;
        if (wrong) kagi__flip_checks(b->p->c, b->se, v);
        b->revealed++;
    }
    /* From KAGI__LDPC_RESTART on the decoder starts afresh from the
     * channel and the bits known so far: a frame still failing by then has
     * usually wandered off (thousands of unsatisfied checks, however many
     * bits are revealed), and from its own messages it does not come back
     * (docs/ldpc.md, "Keys that do not fill their frames"). */
    if (++b->rounds >= KAGI__LDPC_RESTART) kagi_ldpc_decoder_start(b->d, b->llr, b->se);
}

void kagi_ldpc_bob_result(kagi_ldpc_bob *b, uint64_t *key, size_t off)
{
    const kagi_ldpc_plan *p = b->p;
    /* x = y + e, into e (the decoder restarts from scratch next frame). */
    for (size_t w = 0; w < KAGI_WORDS(p->n); w++) b->e[w] ^= b->y[w];
    kagi__move_key(p, b->e, key, NULL, off, b->nbits, 1);
    for (size_t w = 0; w < KAGI_WORDS(p->n); w++) b->e[w] ^= b->y[w];
}

void kagi_ldpc_bob_stats(const kagi_ldpc_bob *b, kagi_ldpc_frame_stats *o)
{
    *o = (kagi_ldpc_frame_stats){.key_bits = b->nbits,
                                 .leak_bits = b->p->m - b->p->punctured + b->revealed,
                                 .revealed_bits = b->revealed, .iterations = b->iters,
                                 .rounds = b->rounds};
}

/* --------------------------------------------------------- whole keys */

/* Key bits a plan for rate's code at lifting factor z holds at least
 * (kagi__plan_targets), without building either. */
static size_t kagi__key_floor(unsigned rate, uint32_t z, double qber, double f)
{
    const kagi__ldpc_profile *pf = kagi__profile(rate);
    size_t n = (size_t)KAGI_LDPC_NB * z, m = (size_t)pf->mb * z, wp, ws;
    kagi__plan_targets(n, m, qber, f, &wp, &ws);
    return n - wp - ws;
}

int kagi_ldpc_fit(size_t nbits, double qber, double f_start, uint32_t z_max, uint64_t code_seed,
                  uint64_t plan_seed, kagi_ldpc_code **code, kagi_ldpc_plan **plan)
{
    *code = NULL;
    *plan = NULL;
    if (z_max == 0) z_max = 8192;
    KAGI__FAIL_IF(nbits == 0, KAGI_ERR_ARG, "ldpc: empty key");
    KAGI__FAIL_IF(z_max < 64 || z_max > 65536 || z_max % 64, KAGI_ERR_ARG,
                  "ldpc: largest lifting factor %u is not a multiple of 64 in [64, 65536]", z_max);
    KAGI__TRY(kagi__plan_args(qber, f_start));
    int sh;
    double pf;
    unsigned rate = kagi__rate_pick(qber, f_start, kagi__z_guess(nbits, z_max), &sh, &pf);
    /* Frames from the key-bit floor at z_max, then the smallest z whose
     * floor still covers the key in as many: found by arithmetic, so one
     * code and one plan are built (each takes tens of ms at 10^6 bits). */
    size_t kmax = kagi__key_floor(rate, z_max, qber, f_start);
    KAGI__FAIL_IF(kmax == 0, KAGI_ERR_ARG, "ldpc: no key bits left in a frame at QBER %g", qber);
    size_t frames = (nbits + kmax - 1) / kmax;
    uint32_t z = 64;
    while (z < z_max && kagi__key_floor(rate, z, qber, f_start) * frames < nbits) z += 64;
    kagi_ldpc_code *c = NULL;
    kagi_ldpc_plan *pl = NULL;
    KAGI__TRY(kagi__code_cached(&c, rate, z, code_seed));
    /* The key spread evenly over the frames, each planned for its share:
     * frames at z hold up to kagi__key_floor key bits each, and the bits
     * left over would otherwise be shortened while the whole m - p leaks
     * (a 30,000-bit key at 5 % leaked 1.41 h per bit instead of 1.18). */
    size_t share = (nbits + frames - 1) / frames;
    int rc = kagi__plan_build(&pl, c, qber, f_start, plan_seed, share);
    if (rc) {
        kagi_ldpc_code_free(c);
        return rc;
    }
    *code = c;
    *plan = pl;
    return KAGI_OK;
}

typedef struct {
    const kagi_ldpc_plan *plan;
    const kagi_ldpc_params *pr;
    const uint64_t *ka, *kb;  /* Alice's key, Bob's key as given (read only) */
    uint64_t *out;            /* Bob's key, written under mu */
    size_t nkey, frames, step;
    atomic_size_t next;
    pthread_mutex_t mu;
    kagi_ldpc_stats st;
    int rc;
} kagi__ldpc_job;

static void *kagi__ldpc_worker(void *arg)
{
    kagi__ldpc_job *J = arg;
    const kagi_ldpc_plan *p = J->plan;
    kagi_ldpc_alice *A = NULL;
    kagi_ldpc_bob *B = NULL;
    uint64_t *syn = malloc(KAGI_WORDS(p->m) * 8), *vals = malloc(KAGI_WORDS(J->step) * 8 + 8);
    int rc = kagi_ldpc_alice_new(&A, p);
    if (!rc) rc = kagi_ldpc_bob_new(&B, p, J->pr->impl, J->pr->alpha16);
    if (!rc && (!syn || !vals)) rc = kagi__err(KAGI_ERR_NOMEM, "ldpc: worker buffers");
    kagi_ldpc_stats st = {0};
    while (!rc) {
        size_t f = atomic_fetch_add(&J->next, 1);
        if (f >= J->frames) break;
        size_t off = f * p->n_key, nb = J->nkey - off < p->n_key ? J->nkey - off : p->n_key;
        rc = kagi_ldpc_alice_frame(A, J->ka, off, nb, syn);
        if (!rc) rc = kagi_ldpc_bob_frame(B, J->kb, off, nb, syn);
        if (rc) break;
        int drc = kagi_ldpc_bob_decode(B, J->pr->iter_first);
        size_t msgs = 1;
        for (unsigned round = 0; drc && round < J->pr->max_rounds; round++) {
            size_t got = kagi_ldpc_alice_reveal(A, J->step, vals);
            if (!got) break;
            kagi_ldpc_bob_reveal(B, got, vals);
            msgs++;
            drc = kagi_ldpc_bob_decode(B, J->pr->iter_round);
        }
        kagi_ldpc_frame_stats fs;
        kagi_ldpc_bob_stats(B, &fs);
        st.frames++;
        st.leak_bits += fs.leak_bits;
        st.revealed_bits += fs.revealed_bits;
        st.iterations += fs.iterations;
        st.messages += msgs;
        st.syndrome_bits += p->m;
        if (fs.iterations > st.iter_max) st.iter_max = fs.iterations;
        if (drc) {
            st.failed_frames++;
            continue;
        }
        pthread_mutex_lock(&J->mu);
        kagi_ldpc_bob_result(B, J->out, off);
        st.corrected += kagi_bits_hamming_at(J->kb, J->out, off, nb);
        pthread_mutex_unlock(&J->mu);
    }
    if (syn) kagi__wipe(syn, KAGI_WORDS(p->m) * 8);
    free(syn);
    if (vals) kagi__wipe(vals, KAGI_WORDS(J->step) * 8 + 8);
    free(vals);
    kagi_ldpc_alice_free(A);
    kagi_ldpc_bob_free(B);
    pthread_mutex_lock(&J->mu);
    J->st.frames += st.frames;
    J->st.failed_frames += st.failed_frames;
    J->st.leak_bits += st.leak_bits;
    J->st.revealed_bits += st.revealed_bits;
    J->st.iterations += st.iterations;
    J->st.messages += st.messages;
    J->st.syndrome_bits += st.syndrome_bits;
    J->st.corrected += st.corrected;
    if (st.iter_max > J->st.iter_max) J->st.iter_max = st.iter_max;
    if (rc && !J->rc) J->rc = rc;
    pthread_mutex_unlock(&J->mu);
    return NULL;
}

int kagi_ldpc_reconcile_plan(const kagi_ldpc_plan *plan, const kagi_bits *alice, kagi_bits *bob,
                             const kagi_ldpc_params *pin, kagi_ldpc_stats *st)
{
    KAGI__FAIL_IF(alice->n != bob->n, KAGI_ERR_ARG, "ldpc: keys of %zu and %zu bits", alice->n,
                  bob->n);
    KAGI__FAIL_IF(alice->n == 0, KAGI_ERR_ARG, "ldpc: empty key");
    kagi_ldpc_params pr = *pin;
    kagi__ldpc_params_resolve(&pr);
    KAGI__FAIL_IF(pr.threads > 64, KAGI_ERR_ARG, "ldpc: %u threads", pr.threads);
    KAGI__FAIL_IF(!(pr.f_step > 0 && pr.f_step < 1), KAGI_ERR_ARG, "ldpc: f_step %g", pr.f_step);
    kagi__ldpc_job J = {.plan = plan, .pr = &pr, .ka = alice->w, .out = bob->w, .nkey = alice->n};
    J.frames = (alice->n + plan->n_key - 1) / plan->n_key;
    double step = ceil(pr.f_step * (double)plan->n_key * kagi__h2(plan->qber));
    J.step = step < 1 ? 1 : (size_t)step;
    atomic_init(&J.next, 0);
    kagi_bits *copy = NULL;
    KAGI__TRY(kagi_bits_dup(&copy, bob));
    J.kb = copy->w;
    pthread_mutex_init(&J.mu, NULL);
    unsigned nt = pr.threads;
    if (nt > J.frames) nt = (unsigned)J.frames;
    kagi__run_threads(nt, kagi__ldpc_worker, &J);
    pthread_mutex_destroy(&J.mu);
    kagi_bits_free(copy);
    J.st.key_bits = alice->n;
    J.st.punctured = plan->punctured;
    J.st.shortened = plan->shortened;
    J.st.rate_pct = plan->c->rate_pct;
    J.st.z = plan->c->z;
    J.st.frame_key_bits = plan->n_key;
    J.st.efficiency = (double)J.st.leak_bits / ((double)alice->n * kagi__h2(plan->qber));
    if (st) *st = J.st;
    if (J.rc) return J.rc;
    KAGI__FAIL_IF(J.st.failed_frames, KAGI_ERR_RECONCILE, "ldpc: %zu of %zu frames not decoded",
                  J.st.failed_frames, J.st.frames);
    return KAGI_OK;
}

int kagi_ldpc_reconcile(const kagi_ldpc_code *c, const kagi_bits *alice, kagi_bits *bob,
                        const kagi_ldpc_params *p, kagi_ldpc_stats *st)
{
    KAGI__FAIL_IF(alice->n != bob->n, KAGI_ERR_ARG, "ldpc: keys of %zu and %zu bits", alice->n,
                  bob->n);
    kagi_ldpc_plan *plan;
    KAGI__TRY(kagi_ldpc_plan_new(&plan, c, p->qber, p->f_start == 0 ? kagi__f_auto_z(p->qber, c->z) : p->f_start,
                                  p->seed));
    int rc = kagi_ldpc_reconcile_plan(plan, alice, bob, p, st);
    kagi_ldpc_plan_free(plan);
    return rc;
}
