/* Event-level Monte Carlo of one BB84 decoy-state link (docs/linksim.md).
 *
 * While Bob's detector is armed the pulses are independent and alike, so
 * the number of silent pulses before the next click is geometric in the
 * click probability P per pulse (a mixture over the intensity classes).
 * The fast sampler draws that gap as floor(E / -ln(1 - P)) with E ~ Exp(1)
 * from a ziggurat, then everything about the clicking pulse at once from
 * an alias table of its joint distribution given the click (class, kind
 * of click, both bases, misalignment flip, interception, whether an
 * after-pulse follows): two random words per click, none per silent pulse.
 * kagi__linksim_run_naive walks pulse by pulse and photon by photon
 * instead: the reference the tests compare against and the benchmark's
 * baseline. */
#define _GNU_SOURCE
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/linksim.h"
#include "raw_internal.h"

#define KAGI__INLINE static inline __attribute__((always_inline))

/* Kinds of click (bits 3-4 of an outcome code). */
enum {
    KAGI__SIG = 0,     /* photon detected, no dark count */
    KAGI__SIG_EVE = 1, /* the same, on a pulse Eve intercepted */
    KAGI__DARK = 2,    /* dark count alone (or an after-pulse): random bit */
    KAGI__BOTH = 3,    /* photon and dark count: double click, random bit */
};

/* Outcome code of a click: bit 0 Alice's basis, bit 1 Bob's (0 = X), bit 2
 * misalignment flip, bits 3-4 kind, bits 5-6 intensity class, bit 7 an
 * after-pulse follows. The low 3 bits of the word an outcome is drawn
 * from are its fair coins ("fair"): bit 0 Alice's bit, bit 1 Bob's bit
 * when his is random, bit 2 whether Eve measured in Alice's basis. */
#define KAGI__CODE(cls, kind, a, b, flip, ap)                                               \
    ((unsigned)(a) | (unsigned)(b) << 1 | (unsigned)(flip) << 2 | (unsigned)(kind) << 3 | \
     (unsigned)(cls) << 5 | (unsigned)(ap) << 7)
#define KAGI__AP_NEXT 128u
#define KAGI__M53 (((uint64_t)1 << 53) - 1)

/* Walker's alias table over up to 256 columns: the top bits of a random
 * word pick a column, bits 3-55 (53 bits) are compared with its
 * threshold, bits 0-2 stay free for the fair coins. */
typedef struct kagi__alias {
    uint64_t thr[256];
    uint8_t out[256][2]; /* the column's own outcome, its alias */
} kagi__alias;

/* Marsaglia and Tsang's 256-layer ziggurat for Exp(1) (J. Stat. Softw. 5,
 * 2000): layer 0 is the base strip with the tail past R, every layer has
 * area V. */
#define KAGI__ZIG_R 7.69711747013104972
#define KAGI__ZIG_V 0.0039496598225815571993

typedef struct kagi__model {
    uint64_t pulses, dead;   /* pulses to send; pulses ignored after a click */
    double eta;              /* per-photon detection probability */
    double p_click;          /* sum_k p_mu[k] (click probability of class k) */
    double inv_rate;         /* 1 / -ln(1 - p_click) */
    uint64_t zk[256];        /* ziggurat: u < zk[i] is inside layer i's core */
    double zw[256];          /* x_i 2^-53 */
    double zs[256];          /* zw[i] inv_rate: the gap straight from u */
    double zf[257];          /* e^-x_i; zf[256] the top of the top layer */
    kagi__alias click;       /* a pulse's outcome given that it clicked */
    kagi__alias after;       /* the pulse at an after-pulse, and Bob's basis */
    uint8_t fa[1024], fb[1024]; /* record flags of Alice and Bob for
                                   (code & 127) << 3 | fair */
} kagi__model;

/* xoshiro256**, the generator of kagi_rng_next, inlined here so that the
 * sampler's state lives in registers. Same sequence for a seed. */
KAGI__INLINE uint64_t kagi__next(kagi_rng *r)
{
    uint64_t *s = r->s;
    uint64_t res = s[1] * 5;
    res = ((res << 7) | (res >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

/* Uniform in [0, 1) and in (0, 1]. */
KAGI__INLINE double kagi__unif(kagi_rng *r) { return (double)(kagi__next(r) >> 11) * 0x1.0p-53; }
KAGI__INLINE double kagi__unif_pos(kagi_rng *r)
{
    return (double)((kagi__next(r) >> 11) + 1) * 0x1.0p-53;
}

/* The gap to the next click, floor(E / -ln(1 - P)) with E ~ Exp(1) from
 * the ziggurat, starting from the random word y: its top 8 bits pick a
 * layer i, bits 3-55 a point x = u x_i. Inside the layer's core
 * (x < x_{i+1}, 98.9% of words) x is accepted at once; the sampling loop
 * inlines that case and comes here for the rest: in the base strip beyond
 * R, E is R + Exp(1) by inversion; in a wedge x is accepted when a uniform
 * height under the layer's top falls under e^-x; else a new word. */
static double kagi__gap(const kagi__model *m, kagi_rng *r, uint64_t y)
{
    for (;; y = kagi__next(r)) {
        unsigned i = (unsigned)(y >> 56);
        uint64_t u = (y >> 3) & KAGI__M53;
        if (u < m->zk[i]) return floor((double)u * m->zs[i]);
        if (i == 0) return floor((KAGI__ZIG_R - log(kagi__unif_pos(r))) * m->inv_rate);
        double x = (double)u * m->zw[i];
        if (m->zf[i] + kagi__unif(r) * (m->zf[i + 1] - m->zf[i]) < exp(-x))
            return floor(x * m->inv_rate);
    }
}

static void kagi__zig_init(kagi__model *m)
{
    double x[257];
    x[0] = KAGI__ZIG_V * exp(KAGI__ZIG_R); /* base strip, tail included */
    x[1] = KAGI__ZIG_R;
    for (int i = 1; i < 255; i++) x[i + 1] = -log(KAGI__ZIG_V / x[i] + exp(-x[i]));
    x[256] = 0;
    for (int i = 0; i < 256; i++) {
        m->zk[i] = (uint64_t)(x[i + 1] / x[i] * 0x1.0p53);
        m->zw[i] = x[i] * 0x1.0p-53;
        m->zf[i] = exp(-x[i]);
    }
    /* The top layer's height makes its area exactly V (it reaches 1 to
     * within rounding), so every layer is drawn with its true weight. */
    m->zf[256] = m->zf[255] + KAGI__ZIG_V / x[255];
}

/* Vose's construction over cols (a power of 2, >= n) columns; w holds n
 * weights summing to total > 0. A zero weight starts among the small
 * columns and is paired while large ones remain, so its threshold is 0
 * and it never comes out. */
static void kagi__alias_build(kagi__alias *t, const double *w, const uint8_t *code, int n,
                              int cols, double total)
{
    double q[256];
    int small[256], large[256], ns = 0, nl = 0;
    for (int i = 0; i < cols; i++) {
        q[i] = i < n ? w[i] / total * cols : 0;
        t->out[i][0] = t->out[i][1] = i < n ? code[i] : code[0];
        t->thr[i] = 0;
        if (q[i] < 1) small[ns++] = i;
        else large[nl++] = i;
    }
    while (ns && nl) {
        int s = small[--ns], l = large[nl - 1];
        t->out[s][1] = t->out[l][0];
        t->thr[s] = (uint64_t)(q[s] * 0x1.0p53);
        q[l] -= 1 - q[s];
        if (q[l] < 1) {
            nl--;
            small[ns++] = l;
        }
    }
    /* What is left holds probability 1 up to rounding. */
    while (nl) t->thr[large[--nl]] = (uint64_t)1 << 53;
    while (ns) t->thr[small[--ns]] = (uint64_t)1 << 53;
}

/* Branch-free: the comparison indexes the pair (a branch would be
 * mispredicted whenever a column gives its alias). shift is 64 -
 * log2(columns). */
KAGI__INLINE unsigned kagi__alias_draw(const kagi__alias *t, uint64_t y, unsigned shift)
{
    unsigned c = (unsigned)(y >> shift);
    return t->out[c][((y >> 3) & KAGI__M53) >= t->thr[c]];
}

/* Bob's bit for an outcome: Alice's (flipped by misalignment) when the
 * photon he detected carries it in his basis, with no dark count on top
 * and Eve, if she intercepted, in Alice's basis; else his random coin. */
static unsigned kagi__bob_bit(unsigned code, unsigned fair)
{
    unsigned a = code & 1, b = (code >> 1) & 1, flip = (code >> 2) & 1, kind = (code >> 3) & 3;
    unsigned keep = a == b && (kind == KAGI__SIG || (kind == KAGI__SIG_EVE && (fair & 4)));
    return keep ? (fair & 1) ^ flip : (fair >> 1) & 1;
}

static int kagi__prob(const char *name, double v)
{
    KAGI__FAIL_IF(!(v >= 0 && v <= 1), KAGI_ERR_ARG, "%s %g is not a probability in [0, 1]",
                  name, v);
    return KAGI_OK;
}

/* kagi_link_check's rules, then what the sampler itself relies on (checked
 * here too, so that a gap in either is an error, not a wrong table). */
static int kagi__check(const kagi_linksim *p)
{
    const kagi_link *l = &p->link;
    KAGI__TRY(kagi_link_check(l, KAGI_DECOYS_TWO));
    KAGI__FAIL_IF(p->pulses == 0 || p->pulses > KAGI__RAW_MAX_PULSES, KAGI_ERR_ARG,
                  "pulses %" PRIu64 " is not in [1, 2^60]", p->pulses);
    KAGI__TRY(kagi__prob("eve (intercepted fraction)", p->eve));
    static const char *const pn[3] = {"p_mu[0]", "p_mu[1]", "p_mu[2]"};
    double sum = 0;
    for (int k = 0; k < 3; k++) {
        KAGI__FAIL_IF(!(l->mu[k] >= 0 && l->mu[k] <= 1e3), KAGI_ERR_ARG,
                      "mu[%d] %g is not an intensity in [0, 1000]", k, l->mu[k]);
        KAGI__TRY(kagi__prob(pn[k], l->p_mu[k]));
        sum += l->p_mu[k];
    }
    KAGI__FAIL_IF(fabs(sum - 1) > 1e-9, KAGI_ERR_ARG, "p_mu sums to %.12g, not 1", sum);
    KAGI__TRY(kagi__prob("p_x", l->p_x));
    KAGI__TRY(kagi__prob("misalignment", l->misalignment));
    KAGI__TRY(kagi__prob("dark_count", l->dark_count));
    KAGI__TRY(kagi__prob("afterpulse", l->afterpulse));
    KAGI__FAIL_IF(!(l->afterpulse < 1), KAGI_ERR_ARG,
                  "afterpulse 1 would make every click bring another");
    KAGI__TRY(kagi__prob("transmittance (kagi_link_eta)", kagi_link_eta(l)));
    double x = l->dead_time_s * l->clock_hz;
    KAGI__FAIL_IF(!(x >= 0 && x <= 1e12), KAGI_ERR_ARG,
                  "dead_time_s %g at clock_hz %g is not 0 to 10^12 pulses", l->dead_time_s,
                  l->clock_hz);
    return KAGI_OK;
}

/* Pulses the detector ignores after a click: ceil(dead_time clock), where a
 * product within rounding of a whole number counts as that number (50 ns
 * at 1 GHz is 50 pulses, not 51). */
static uint64_t kagi__dead_pulses(const kagi_link *l)
{
    double x = l->dead_time_s * l->clock_hz, r = nearbyint(x);
    if (fabs(x - r) <= 8 * DBL_EPSILON * r) return (uint64_t)r;
    return (uint64_t)ceil(x);
}

static void kagi__model_init(kagi__model *m, const kagi_linksim *p)
{
    const kagi_link *l = &p->link;
    memset(m, 0, sizeof *m);
    m->pulses = p->pulses;
    m->dead = kagi__dead_pulses(l);
    m->eta = kagi_link_eta(l);
    double y0 = l->dark_count, ed = l->misalignment, f = p->eve, ap = l->afterpulse;
    double pb[2] = {l->p_x, 1 - l->p_x}, pap[2] = {1 - ap, ap};
    double w[256], wa[32], total = 0, total_a = 0;
    uint8_t code[256], codea[32];
    int n = 0, na = 0;
    for (int k = 0; k < 3; k++) {
        double e = exp(-m->eta * l->mu[k]), s = -expm1(-m->eta * l->mu[k]);
        double pc = s + y0 * e; /* 1 - (1 - Y0) e^(-eta mu), without cancellation */
        m->p_click += l->p_mu[k] * pc;
        double kind[4] = {s * (1 - y0) * (1 - f), s * (1 - y0) * f, e * y0, s * y0};
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int x = 0; x < 2; x++) {
                    double base = l->p_mu[k] * pb[a] * pb[b] * pap[x];
                    for (int kd = 0; kd < 4; kd++)
                        for (int fl = 0; fl < (kd < KAGI__DARK ? 2 : 1); fl++) {
                            w[n] = base * kind[kd] * (kd < KAGI__DARK ? (fl ? ed : 1 - ed) : 1);
                            total += w[n];
                            code[n++] = (uint8_t)KAGI__CODE(k, kd, a, b, fl, x);
                        }
                    wa[na] = base;
                    total_a += base;
                    codea[na++] = (uint8_t)KAGI__CODE(k, KAGI__DARK, a, b, 0, x);
                }
    }
    if (total > 0) kagi__alias_build(&m->click, w, code, n, 256, total);
    kagi__alias_build(&m->after, wa, codea, na, 32, total_a);
    m->inv_rate = 1 / -log1p(-m->p_click);
    kagi__zig_init(m);
    for (int i = 0; i < 256; i++) m->zs[i] = m->zw[i] * m->inv_rate;
    for (unsigned i = 0; i < 1024; i++) {
        unsigned c = i >> 3, fair = i & 7;
        m->fa[i] = (uint8_t)((c & 1) | (fair & 1) << 1 | (c >> 5) << 2);
        m->fb[i] = (uint8_t)((c >> 1 & 1) | kagi__bob_bit(c, fair) << 1);
    }
}

typedef struct kagi__run {
    const kagi_linksim *p;
    kagi__raw_writer *wa, *wb;
    kagi_linksim_stats *st;
} kagi__run;

/* Flush both buffers and report progress. */
static int kagi__flush(kagi__run *run, size_t la, size_t lb, uint64_t done)
{
    run->wa->len = la;
    run->wb->len = lb;
    KAGI__TRY(kagi__raw_flush(run->wa));
    KAGI__TRY(kagi__raw_flush(run->wb));
    if (run->p->progress) run->p->progress(run->p->progress_ctx, done, run->p->pulses);
    return KAGI_OK;
}

/* Counts of every outcome (code & 127) << 3 | fair into the stats. */
static void kagi__tally(kagi_linksim_stats *st, const uint64_t *hist)
{
    for (unsigned i = 0; i < 1024; i++) {
        uint64_t c = hist[i];
        if (!c) continue;
        unsigned code = i >> 3, a = code & 1, b = (code >> 1) & 1, kind = (code >> 3) & 3;
        unsigned err = (i & 1) != kagi__bob_bit(code, i & 7);
        st->detections += c;
        st->by_class[code >> 5] += c;
        if (a == b) {
            *(a ? &st->sifted_z : &st->sifted_x) += c;
            if (err) *(a ? &st->errors_z : &st->errors_x) += c;
        }
        if (kind == KAGI__DARK) st->dark_only += c;
        if (kind == KAGI__BOTH) st->double_clicks += c;
    }
}

/* kagi__gap through a copy of the generator: r's address then never
 * escapes, and the compiler keeps its state in registers. */
KAGI__INLINE double kagi__gap_call(const kagi__model *m, kagi_rng *r, uint64_t y)
{
    kagi_rng t = *r;
    double g = kagi__gap(m, &t, y);
    *r = t;
    return g;
}

/* One click at pulse i with outcome code and fair coins from word y:
 * both records, the tally, and the pulse the detector is armed again. */
#define KAGI__CLICK(i, code, y)                                                    \
    do {                                                                           \
        unsigned idx_ = ((code) & 127) << 3 | (unsigned)((y) & 7);                 \
        pa += kagi__leb128_put(pa, ((i) - next) << 4 | m->fa[idx_]);               \
        pb += kagi__leb128_put(pb, ((i) - next) << 2 | m->fb[idx_]);               \
        hist[idx_]++;                                                              \
        next = (i) + 1;                                                            \
        j = next + dead;                                                           \
    } while (0)

/* The gap sampler. Records go straight into the writers' buffers through
 * local write pointers; both files get a record at the same pulses, so
 * one "next" (last index + 1) serves both. Every record is preceded by a
 * check that both buffers have room (an after-pulse chain can be long when
 * after-pulsing is strong; a flush may cut it and it resumes after). Only
 * the rare cases call out (a ziggurat word outside the layer cores, a
 * flush), so the loop's state stays in registers. */
static int kagi__sample_fast(const kagi__model *m, kagi_rng *rng, kagi__run *run)
{
    kagi_rng r = *rng;
    uint64_t hist[1024] = {0};
    uint8_t *pa = run->wa->buf + run->wa->len, *pb = run->wb->buf + run->wb->len;
    uint8_t *const ea = run->wa->buf + KAGI__RAW_BUF - 2 * KAGI__RAW_ROOM;
    uint8_t *const eb = run->wb->buf + KAGI__RAW_BUF - 2 * KAGI__RAW_ROOM;
    const uint64_t n = m->pulses, dead = m->dead;
    uint64_t next = 0, j = 0, ap = 0, y; /* j: first pulse the detector is armed for */
    unsigned code = 0;                   /* the last click's outcome */
    double g;
    int rc = KAGI_OK;
    while (m->p_click > 0) {
        /* After-pulse: a click with a random bit in the first gate after
         * the dead time, itself followed by dead time and maybe another. */
        while (__builtin_expect(code & KAGI__AP_NEXT, 0) && j < n) {
            if (pa > ea || pb > eb) goto flush;
            y = kagi__next(&r);
            code = kagi__alias_draw(&m->after, y, 59);
            KAGI__CLICK(j, code, y);
            ap++;
        }
        if (__builtin_expect(pa > ea || pb > eb, 0)) goto flush;
        if (j >= n) break; /* also when the last click fell in the last dead pulses */
        /* Silent pulses before the next click: P(G >= g) = (1 - P)^g. */
        y = kagi__next(&r);
        unsigned li = (unsigned)(y >> 56);
        uint64_t u = (y >> 3) & KAGI__M53;
        g = __builtin_expect(u < m->zk[li], 1) ? floor((double)u * m->zs[li])
                                                : kagi__gap_call(m, &r, y);
        if (!(g < 0x1.0p62) || (uint64_t)(int64_t)g >= n - j) break;
        uint64_t i = j + (uint64_t)(int64_t)g;
        y = kagi__next(&r);
        code = kagi__alias_draw(&m->click, y, 56);
        KAGI__CLICK(i, code, y);
        continue;
    flush:
        rc = kagi__flush(run, (size_t)(pa - run->wa->buf), (size_t)(pb - run->wb->buf),
                         j < n ? j : n);
        pa = run->wa->buf;
        pb = run->wb->buf;
        if (rc) break;
    }
    run->wa->len = (size_t)(pa - run->wa->buf);
    run->wb->len = (size_t)(pb - run->wb->buf);
    kagi_linksim_stats *st = run->st;
    kagi__tally(st, hist);
    st->dark_only -= ap; /* after-pulses were drawn as "random bit" outcomes */
    st->afterpulses = ap;
    /* Every click but the last is followed by its whole dead time. */
    if (st->detections) st->dead_pulses = st->detections * dead - (j > n ? j - n : 0);
    run->wa->count = run->wb->count = st->detections;
    *rng = r;
    return rc;
}

/* Photons in a pulse of mean mu, by inversion. */
static unsigned kagi__poisson(kagi_rng *r, double mu)
{
    double u = kagi__unif(r), p = exp(-mu), c = p;
    unsigned k = 0;
    while (u >= c && k < 10000) {
        p *= mu / ++k;
        c += p;
    }
    return k;
}

/* The reference: every pulse and every photon, as docs/linksim.md tells
 * it, tallied as it goes. */
static int kagi__sample_naive(const kagi_linksim *p, const kagi__model *m, kagi_rng *r,
                              kagi__run *run)
{
    const kagi_link *l = &p->link;
    kagi_linksim_stats *st = run->st;
    kagi__raw_writer *wa = run->wa, *wb = run->wb;
    const size_t lim = KAGI__RAW_BUF - 2 * KAGI__RAW_ROOM;
    uint64_t armed = 0, ap_at = UINT64_MAX;
    for (uint64_t i = 0; i < m->pulses; i++) {
        if (i < armed) {
            st->dead_pulses++;
            continue;
        }
        unsigned cls = 0, a, abit, b, bbit;
        double uc = kagi__unif(r);
        while (cls < 2 && uc >= l->p_mu[cls]) uc -= l->p_mu[cls++];
        a = kagi__unif(r) >= l->p_x;
        abit = kagi__next(r) & 1;
        b = kagi__unif(r) >= l->p_x;
        if (i == ap_at) { /* the after-pulse clicks whatever the pulse did */
            bbit = kagi__next(r) & 1;
            st->afterpulses++;
        } else {
            unsigned photons = kagi__poisson(r, l->mu[cls]), sb = a, sbit = abit;
            if (photons && kagi__unif(r) < p->eve) { /* measure and resend */
                sb = kagi__next(r) & 1;
                sbit = sb == a ? abit : (unsigned)(kagi__next(r) & 1);
            }
            unsigned seen = 0;
            for (unsigned ph = 0; ph < photons; ph++) seen += kagi__unif(r) < m->eta;
            unsigned dark = kagi__unif(r) < l->dark_count;
            if (!seen && !dark) continue;
            if (seen && !dark) {
                unsigned flip = kagi__unif(r) < l->misalignment;
                bbit = b == sb ? sbit ^ flip : (unsigned)(kagi__next(r) & 1);
            } else {
                bbit = kagi__next(r) & 1;
                st->dark_only += !seen;
                st->double_clicks += seen;
            }
        }
        kagi__raw_put(wa, i, a | abit << 1 | cls << 2);
        kagi__raw_put(wb, i, b | bbit << 1);
        st->detections++;
        st->by_class[cls]++;
        if (a == b) {
            *(a ? &st->sifted_z : &st->sifted_x) += 1;
            *(a ? &st->errors_z : &st->errors_x) += abit != bbit;
        }
        armed = i + 1 + m->dead;
        ap_at = kagi__unif(r) < l->afterpulse ? armed : UINT64_MAX;
        if (wa->len > lim || wb->len > lim) {
            int rc = kagi__flush(run, wa->len, wb->len, i + 1);
            wa->len = wb->len = 0;
            KAGI__TRY(rc);
        }
    }
    return KAGI_OK;
}

static int kagi__linksim(const kagi_linksim *p, const char *alice_path, const char *bob_path,
                         kagi_linksim_stats *st, int naive)
{
    double t0 = kagi__now();
    memset(st, 0, sizeof *st);
    KAGI__TRY(kagi__check(p));
    KAGI__FAIL_IF(strcmp(alice_path, bob_path) == 0, KAGI_ERR_ARG,
                  "%s: Alice's and Bob's files must differ", alice_path);
    kagi__model *m = malloc(sizeof *m);
    KAGI__FAIL_IF(!m, KAGI_ERR_NOMEM, "out of memory");
    kagi__model_init(m, p);
    kagi__raw_writer wa, wb;
    memset(&wb, 0, sizeof wb);
    wb.fd = -1;
    const char *sampler = naive ? "per-pulse" : "gap";
    int rc = kagi__raw_create(&wa, alice_path, KAGI__ROLE_ALICE, p, sampler);
    if (!rc) rc = kagi__raw_create(&wb, bob_path, KAGI__ROLE_BOB, p, sampler);
    kagi__run run = {p, &wa, &wb, st};
    double t1 = kagi__now();
    if (!rc) {
        kagi_rng r;
        kagi_rng_seed(&r, p->seed);
        rc = naive ? kagi__sample_naive(p, m, &r, &run) : kagi__sample_fast(m, &r, &run);
    }
    double t2 = kagi__now();
    if (!rc) rc = kagi__raw_finish(&wa);
    if (!rc) rc = kagi__raw_finish(&wb);
    if (!rc) rc = kagi__raw_commit(&wa, &wb);
    kagi__raw_abort(&wa);
    kagi__raw_abort(&wb);
    free(m);
    if (rc) {
        memset(st, 0, sizeof *st);
        return rc;
    }
    if (p->progress) p->progress(p->progress_ctx, p->pulses, p->pulses);
    st->pulses = p->pulses;
    st->alice_bytes = wa.file_bytes;
    st->bob_bytes = wb.file_bytes;
    st->sample_seconds = t2 - t1;
    st->seconds = kagi__now() - t0;
    return KAGI_OK;
}

int kagi_linksim_run(const kagi_linksim *p, const char *alice_path, const char *bob_path,
                     kagi_linksim_stats *st)
{
    return kagi__linksim(p, alice_path, bob_path, st, 0);
}

/* The per-pulse reference sampler (tests and benchmarks declare it): the
 * same model and file format, one pulse at a time. */
int kagi__linksim_run_naive(const kagi_linksim *p, const char *alice_path, const char *bob_path,
                            kagi_linksim_stats *st);
int kagi__linksim_run_naive(const kagi_linksim *p, const char *alice_path, const char *bob_path,
                            kagi_linksim_stats *st)
{
    return kagi__linksim(p, alice_path, bob_path, st, 1);
}
