/* The link simulator and its raw files. Oracles: the analytic click and
 * error probabilities (computed here from the model, not by the library),
 * renewal theory for dead time and after-pulses, the per-pulse reference
 * simulator (two-sample tests), the exact geometric law of the gaps, a
 * decoder written here from docs/raw-format.md, and damaged files. */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kagi/error.h"
#include "kagi/keyrate.h"
#include "kagi/linksim.h"
#include "t.h"

/* The per-pulse reference sampler of src/phys/linksim.c. */
int kagi__linksim_run_naive(const kagi_linksim *p, const char *alice_path, const char *bob_path,
                            kagi_linksim_stats *st);

static char dir[64];
static char pa[128], pb[128];

/* Lim et al.'s example system (keyrate.h defaults) without after-pulses. */
static kagi_linksim base(double km, uint64_t pulses, uint64_t seed)
{
    kagi_linksim s;
    memset(&s, 0, sizeof s);
    kagi_link_defaults(&s.link);
    s.link.distance_km = km;
    s.link.afterpulse = 0;
    s.pulses = pulses;
    s.seed = seed;
    return s;
}

static int run(const kagi_linksim *s, kagi_linksim_stats *st, int naive)
{
    return naive ? kagi__linksim_run_naive(s, pa, pb, st) : kagi_linksim_run(s, pa, pb, st);
}

/* The model's probabilities, from the formulas of docs/linksim.md. */
static double eta_of(const kagi_link *l)
{
    return pow(10, -(l->fiber_loss_db_km * l->distance_km + l->extra_loss_db) / 10) * l->det_eff;
}
static double click_p(const kagi_link *l, int k)
{
    return 1 - (1 - l->dark_count) * exp(-eta_of(l) * l->mu[k]);
}
/* Probability of a click with an error in matching bases, class k. */
static double error_p(const kagi_link *l, int k)
{
    double s = 1 - exp(-eta_of(l) * l->mu[k]);
    return l->dark_count / 2 + l->misalignment * (1 - l->dark_count) * s;
}

/* All records of a file (caller frees), or NULL with a failed check. */
static kagi_raw_rec *read_all(const char *path, uint64_t *n)
{
    kagi_raw_reader *r = NULL;
    ASSERT_OK(kagi_raw_open(path, &r));
    if (!r) return NULL;
    *n = kagi_raw_count(r);
    kagi_raw_rec *v = malloc((*n + 1) * sizeof *v);
    uint64_t i = 0;
    int got = 1;
    while (v && got) {
        int rc = kagi_raw_next(r, &v[i], &got);
        if (rc) {
            T_FAIL("%s: %s", path, kagi_errdetail());
            break;
        }
        i += (uint64_t)got;
        if (i > *n) break;
    }
    ASSERT_EQ(i, *n);
    kagi_raw_free(r);
    return v;
}

/* Two-sample chi-square of histograms a and b over n cells (cells empty in
 * both are skipped); returns chi2 and sets *df. */
static double chi2_2(const double *a, const double *b, int n, int *df)
{
    double na = 0, nb = 0, c = 0;
    int cells = 0;
    for (int i = 0; i < n; i++) {
        na += a[i];
        nb += b[i];
    }
    for (int i = 0; i < n; i++) {
        if (a[i] + b[i] == 0) continue;
        double d = a[i] * nb - b[i] * na;
        c += d * d / (na * nb * (a[i] + b[i]));
        cells++;
    }
    *df = cells - 1;
    return c;
}

/* Chi-square value exceeded with probability about 3e-5 (z = 4, Wilson and
 * Hilferty): the fixed seeds pass far below it, a biased sampler far
 * above. */
static double chi2_crit(int df)
{
    double t = 2.0 / (9 * df);
    return df * pow(1 - t + 4 * sqrt(t), 3);
}

static void detections_per_class_match_the_click_probability(void)
{
    const double km[3] = {10, 50, 100};
    const uint64_t pulses[3] = {50000000, 500000000, 2000000000};
    for (int d = 0; d < 3; d++) {
        kagi_linksim s = base(km[d], pulses[d], 11 + (uint64_t)d);
        kagi_linksim_stats st;
        ASSERT_OK(run(&s, &st, 0));
        for (int k = 0; k < 3; k++) {
            double q = s.link.p_mu[k] * click_p(&s.link, k), n = (double)s.pulses;
            double mean = n * q, sd = sqrt(n * q * (1 - q));
            if (fabs((double)st.by_class[k] - mean) > 5 * sd)
                T_FAIL("%g km, class %d: %" PRIu64 " detections, expected %.1f +- %.1f", km[d], k,
                       st.by_class[k], mean, sd);
        }
        ASSERT_EQ(st.detections, st.by_class[0] + st.by_class[1] + st.by_class[2]);
        ASSERT_EQ(st.afterpulses, 0);
        ASSERT_EQ(st.dead_pulses, 0);
    }
}

/* QBER per class and basis of one run, read from the files, against
 * error_p / click_p; min_n: cells with fewer sifted bits are skipped. */
static void check_qber(const kagi_linksim *s, int naive, double min_n)
{
    kagi_linksim_stats st;
    ASSERT_OK(run(s, &st, naive));
    uint64_t na = 0, nb = 0;
    kagi_raw_rec *a = read_all(pa, &na), *b = read_all(pb, &nb);
    if (!a || !b || na != nb) goto out;
    double sifted[3][2] = {{0}}, errs[3][2] = {{0}}, tot_err[2] = {0};
    for (uint64_t i = 0; i < na; i++) {
        ASSERT_EQ(a[i].index, b[i].index);
        if (a[i].basis != b[i].basis) continue;
        sifted[a[i].cls][a[i].basis]++;
        errs[a[i].cls][a[i].basis] += a[i].bit != b[i].bit;
        tot_err[a[i].basis] += a[i].bit != b[i].bit;
    }
    ASSERT_EQ(tot_err[0], st.errors_x);
    ASSERT_EQ(tot_err[1], st.errors_z);
    for (int k = 0; k < 3; k++)
        for (int x = 0; x < 2; x++) {
            double e = error_p(&s->link, k) / click_p(&s->link, k), n = sifted[k][x];
            if (n < min_n) continue;
            double sd = sqrt(e * (1 - e) / n);
            if (fabs(errs[k][x] / n - e) > 5 * sd)
                T_FAIL("%s, class %d basis %d: QBER %.6f, expected %.6f +- %.6f",
                       naive ? "per-pulse" : "gap", k, x, errs[k][x] / n, e, sd);
        }
    /* The whole key basis. */
    double ex = 0, qx = 0;
    for (int k = 0; k < 3; k++) {
        ex += s->link.p_mu[k] * error_p(&s->link, k);
        qx += s->link.p_mu[k] * click_p(&s->link, k);
    }
    double q = (double)st.errors_x / (double)st.sifted_x;
    ASSERT_NEAR(q, ex / qx, 5 * sqrt(q * (1 - q) / (double)st.sifted_x));
out:
    free(a);
    free(b);
}

static void qber_in_matching_bases_matches_the_analytic_expectation(void)
{
    /* Lim et al.'s system at 50 km: every cell but vacuum pulses in Z
     * (about 3 bits) has hundreds of bits or more. */
    kagi_linksim s = base(50, 1000000000, 5);
    check_qber(&s, 0, 200);
    /* The usual approximation (e0 Y0 + e_d (1 - e^(-eta mu))) / Q of the
     * signal class, within the same tolerance. */
    kagi_linksim_stats st;
    ASSERT_OK(run(&s, &st, 0));
    const kagi_link *l = &s.link;
    double approx = (0.5 * l->dark_count + l->misalignment * (1 - exp(-eta_of(l) * l->mu[0]))) /
                    click_p(l, 0);
    double q = (double)st.errors_x / (double)st.sifted_x;
    ASSERT_NEAR(q, approx, 5 * sqrt(approx / (double)st.sifted_x) + 0.001);
    /* A noisy link where dark counts and double clicks matter (a double
     * click gives a random bit: Y0/2, not Y0 e^(-eta mu)/2): both samplers,
     * the reference included. */
    s = base(0, 10000000, 6);
    s.link.det_eff = 0.1;
    s.link.dark_count = 0.05;
    s.link.misalignment = 0.1;
    s.link.mu[0] = 0.8;
    check_qber(&s, 0, 1000);
    s.seed = 7;
    check_qber(&s, 1, 1000);
}

/* Gaps between consecutive records with no dead time and no after-pulses
 * are exactly Geometric(P): chi-square against the pmf, and the far tail
 * (E > 8 goes through the ziggurat's tail) against (1 - P)^g. */
static void gaps_follow_the_geometric_law_exactly(void)
{
    kagi_linksim s = base(50, 300000000, 21);
    kagi_linksim_stats st;
    ASSERT_OK(run(&s, &st, 0));
    double p = 0;
    for (int k = 0; k < 3; k++) p += s.link.p_mu[k] * click_p(&s.link, k);
    uint64_t n = 0;
    kagi_raw_rec *a = read_all(pa, &n);
    if (!a || n < 100000) {
        free(a);
        T_FAIL("too few records: %" PRIu64, n);
        return;
    }
    /* Cells of equal probability 1/64 by the geometric quantiles. */
    enum { C = 64 };
    uint64_t edge[C];
    for (int c = 0; c < C; c++) edge[c] = (uint64_t)ceil(log1p(-(c + 1.0) / C) / log1p(-p));
    double obs[C] = {0}, expect[C];
    uint64_t tail_g = (uint64_t)(8.5 / -log1p(-p)), tail = 0;
    for (uint64_t i = 1; i < n; i++) {
        uint64_t g = a[i].index - a[i - 1].index - 1;
        int c = 0;
        while (c < C - 1 && g >= edge[c]) c++;
        obs[c]++;
        tail += g >= tail_g;
    }
    double prev = 0, chi = 0;
    for (int c = 0; c < C; c++) {
        double cdf = c < C - 1 ? 1 - pow(1 - p, (double)edge[c]) : 1;
        expect[c] = (cdf - prev) * (double)(n - 1);
        prev = cdf;
        chi += (obs[c] - expect[c]) * (obs[c] - expect[c]) / expect[c];
    }
    if (chi > chi2_crit(C - 1)) T_FAIL("gap chi2 %.1f over %d cells", chi, C);
    double et = pow(1 - p, (double)tail_g) * (double)(n - 1);
    if (fabs((double)tail - et) > 5 * sqrt(et)) T_FAIL("tail %" PRIu64 ", expected %.1f", tail, et);
    /* The first index is Geometric(P) too, so P(index 0 clicks) = P. */
    free(a);
}

/* The full model (dead time, after-pulses, dark and double clicks, Eve)
 * with both samplers: the same distribution of gaps, of outcomes and of
 * the detection count in a short run. */
static void gap_sampling_matches_the_per_pulse_simulation(void)
{
    kagi_linksim s = base(0, 400000, 0);
    kagi_link *l = &s.link;
    l->det_eff = 0.3;
    l->mu[0] = 0.6, l->mu[1] = 0.2, l->mu[2] = 0.01;
    l->p_mu[0] = 0.5, l->p_mu[1] = 0.3, l->p_mu[2] = 0.2;
    l->dark_count = 0.02;
    l->misalignment = 0.05;
    l->afterpulse = 0.15;
    l->dead_time_s = 2e-9;
    l->p_x = 0.7;
    s.eve = 0.3;
    enum { G = 48, O = 3 * 2 * 2 * 2 };
    double gap[2][G] = {{0}}, out[2][O] = {{0}}, tally[2][6] = {{0}};
    for (int naive = 0; naive < 2; naive++)
        for (uint64_t seed = 1; seed <= 4; seed++) {
            s.seed = seed + 100 * (uint64_t)naive;
            kagi_linksim_stats st;
            ASSERT_OK(run(&s, &st, naive));
            uint64_t na = 0, nb = 0;
            kagi_raw_rec *a = read_all(pa, &na), *b = read_all(pb, &nb);
            if (a && b && na == nb)
                for (uint64_t i = 0; i < na; i++) {
                    uint64_t g = i ? a[i].index - a[i - 1].index : a[i].index + 1;
                    gap[naive][g < G ? g : G - 1]++;
                    out[naive][a[i].cls * 8 + a[i].basis * 4 + b[i].basis * 2 +
                               (a[i].bit != b[i].bit)]++;
                }
            free(a);
            free(b);
            double t[6] = {(double)st.detections, (double)st.dark_only, (double)st.double_clicks,
                           (double)st.afterpulses, (double)st.dead_pulses, (double)st.errors_x};
            for (int i = 0; i < 6; i++) tally[naive][i] += t[i];
        }
    int df;
    double c = chi2_2(gap[0], gap[1], G, &df);
    if (c > chi2_crit(df)) T_FAIL("gap histograms differ: chi2 %.1f, df %d", c, df);
    c = chi2_2(out[0], out[1], O, &df);
    if (c > chi2_crit(df)) T_FAIL("outcome histograms differ: chi2 %.1f, df %d", c, df);
    /* Totals: dead pulses are 2 per click but the last of a run. */
    const char *name[6] = {"detections", "dark only", "double clicks", "after-pulses",
                           "dead pulses", "X errors"};
    for (int i = 0; i < 6; i++) {
        double x = tally[0][i], y = tally[1][i];
        double sd = i == 4 ? 2 * sqrt(x + y) : sqrt(x + y);
        if (fabs(x - y) > 5 * sd + 8) T_FAIL("%s: gap %.0f, per-pulse %.0f", name[i], x, y);
    }
    /* Short runs: the distribution of the detection count itself. */
    s.pulses = 300;
    enum { R = 400, H = 120 };
    double hist[2][H] = {{0}}, mean[2] = {0};
    for (int naive = 0; naive < 2; naive++)
        for (int r = 0; r < R; r++) {
            s.seed = 1000 + (uint64_t)r + 100000 * (uint64_t)naive;
            kagi_linksim_stats st;
            ASSERT_OK(run(&s, &st, naive));
            hist[naive][st.detections < H ? st.detections : H - 1]++;
            mean[naive] += (double)st.detections / R;
        }
    /* Pool sparse cells so the chi-square approximation holds. */
    double ha[H] = {0}, hb[H] = {0};
    int m = 0;
    for (int i = 0; i < H; i++) {
        ha[m] += hist[0][i];
        hb[m] += hist[1][i];
        if (ha[m] + hb[m] >= 20) m++;
    }
    c = chi2_2(ha, hb, m + 1, &df);
    if (c > chi2_crit(df)) T_FAIL("count histograms differ: chi2 %.1f, df %d", c, df);
    ASSERT_NEAR(mean[0], mean[1], 0.05 * mean[1]);
}

/* 1 if the two files hold the same bytes. */
static int files_equal(const char *x, const char *y)
{
    FILE *f = fopen(x, "rb"), *g = fopen(y, "rb");
    int eq = f && g;
    while (eq) {
        int c = getc(f), d = getc(g);
        if (c != d) eq = 0;
        if (c == EOF) break;
    }
    if (f) fclose(f);
    if (g) fclose(g);
    return eq;
}

/* A click in the last dead pulses ends the run (once it did not: the
 * armed pulse passed the end and the gap test wrapped around). */
static void runs_end_at_the_last_pulse_whatever_the_dead_time(void)
{
    kagi_linksim s = base(0, 40, 0);
    s.link.dead_time_s = 30e-9;
    s.link.afterpulse = 0.5;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        s.seed = seed;
        s.pulses = 1 + seed % 60;
        kagi_linksim_stats st;
        ASSERT_OK(run(&s, &st, 0));
        uint64_t n = 0;
        kagi_raw_rec *r = read_all(pa, &n);
        for (uint64_t i = 0; r && i < n; i++)
            if (r[i].index >= s.pulses) T_FAIL("seed %" PRIu64 ": index %" PRIu64, seed, r[i].index);
        /* At most one click per 31 pulses. */
        ASSERT_TRUE(n <= (s.pulses + 30) / 31);
        free(r);
    }
}

static void same_seed_gives_identical_files_and_another_seed_others(void)
{
    char a2[160], b2[160];
    snprintf(a2, sizeof a2, "%s/a2", dir);
    snprintf(b2, sizeof b2, "%s/b2", dir);
    kagi_linksim s = base(25, 20000000, 77);
    s.link.afterpulse = 0.04;
    kagi_linksim_stats st1, st2;
    ASSERT_OK(kagi_linksim_run(&s, pa, pb, &st1));
    ASSERT_OK(kagi_linksim_run(&s, a2, b2, &st2));
    ASSERT_TRUE(files_equal(pa, a2) && files_equal(pb, b2));
    ASSERT_EQ(st1.detections, st2.detections);
    ASSERT_EQ(st1.errors_x, st2.errors_x);
    s.seed = 78;
    ASSERT_OK(kagi_linksim_run(&s, a2, b2, &st2));
    ASSERT_TRUE(!files_equal(pa, a2));
    ASSERT_TRUE(!files_equal(pb, b2));
    unlink(a2);
    unlink(b2);
}

/* Eve on every pulse: matching bases err when her basis was wrong, half
 * the time, so the QBER is 1/4 (plus e_d/2 and dark counts). */
static void eve_on_every_pulse_gives_a_quarter_qber(void)
{
    kagi_linksim s = base(20, 100000000, 3);
    s.eve = 1;
    kagi_linksim_stats st;
    ASSERT_OK(run(&s, &st, 0));
    const kagi_link *l = &s.link;
    double ex = 0, qx = 0;
    for (int k = 0; k < 3; k++) {
        double sig = (1 - exp(-eta_of(l) * l->mu[k])) * (1 - l->dark_count);
        ex += l->p_mu[k] * (sig * (0.25 + l->misalignment / 2) + l->dark_count / 2);
        qx += l->p_mu[k] * click_p(l, k);
    }
    double qxm = (double)st.errors_x / (double)st.sifted_x;
    double qzm = (double)st.errors_z / (double)st.sifted_z;
    ASSERT_NEAR(qxm, ex / qx, 5 * sqrt(0.25 * 0.75 / (double)st.sifted_x));
    ASSERT_NEAR(qzm, ex / qx, 5 * sqrt(0.25 * 0.75 / (double)st.sifted_z));
    ASSERT_NEAR(qxm, 0.25, 0.01);
    /* Eve changes errors, not clicks. */
    double n = (double)s.pulses;
    ASSERT_NEAR((double)st.detections, n * qx, 5 * sqrt(n * qx));
}

/* Renewal theory: a cycle is G ~ Geom(P) silent pulses, then clicks each
 * taking 1 + d pulses, 1/(1 - a) of them on average (a = after-pulse
 * probability), so clicks per pulse are (1/(1 - a)) / ((1 - P)/P + (1 +
 * d)/(1 - a)); with a = 0 the count has variance n s^2 / m^3 (m, s^2: mean
 * and variance of a cycle). */
static void dead_time_and_afterpulses_change_counts_as_predicted(void)
{
    for (int c = 0; c < 2; c++) {
        kagi_linksim s = base(10, 200000000, 9 + (uint64_t)c);
        double a = c ? 0.2 : 0, d = c ? 10 : 100;
        s.link.afterpulse = a;
        s.link.dead_time_s = d / s.link.clock_hz;
        kagi_linksim_stats st;
        ASSERT_OK(run(&s, &st, 0));
        double p = 0;
        for (int k = 0; k < 3; k++) p += s.link.p_mu[k] * click_p(&s.link, k);
        double n = (double)s.pulses, len = (1 - p) / p + (1 + d) / (1 - a);
        double rate = 1 / (1 - a) / len;
        /* Variance: exact for a = 0; for a > 0 bound it generously. */
        double var = (1 - p) / (p * p) + (a > 0 ? (1 + d) * (1 + d) * 4 : 0);
        double sd = sqrt(n * var / (len * len * len)) * (a > 0 ? 2 : 1);
        if (fabs((double)st.detections - n * rate) > 5 * sd)
            T_FAIL("dead %g, after-pulse %g: %" PRIu64 " detections, expected %.0f +- %.0f", d, a,
                   st.detections, n * rate, sd);
        /* Every click but maybe the last is followed by d dead pulses. */
        ASSERT_TRUE(st.dead_pulses <= st.detections * (uint64_t)d);
        ASSERT_TRUE(st.dead_pulses + (uint64_t)d >= st.detections * (uint64_t)d);
        /* After-pulses: a fraction a of all clicks bring one. */
        if (a > 0)
            ASSERT_NEAR((double)st.afterpulses, a * (double)st.detections,
                        5 * sqrt(a * (double)st.detections));
        else
            ASSERT_EQ(st.afterpulses, 0);
        /* Without dead time the same link clicks more: P per pulse. */
        if (!c) ASSERT_TRUE((double)st.detections < 0.5 * n * p);
    }
    /* Strong after-pulsing: chains of 100 clicks on average (one byte per
     * record), longer than the buffers' slack, so the 1 MiB buffers fill
     * in the middle of chains: a chain must stop for the flush and resume
     * (an overrun once; ASan shows it). */
    {
        kagi_linksim s = base(0, 10000000, 12);
        s.link.afterpulse = 0.99;
        kagi_linksim_stats st;
        ASSERT_OK(run(&s, &st, 0));
        double p = 0;
        for (int k = 0; k < 3; k++) p += s.link.p_mu[k] * click_p(&s.link, k);
        double n = (double)s.pulses, rate = 100 / ((1 - p) / p + 100);
        ASSERT_NEAR((double)st.detections / n, rate, 0.01 * rate);
        ASSERT_TRUE(st.alice_bytes > 2 * (1 << 20)); /* several flushes */
        uint64_t nr = 0;
        kagi_raw_rec *r = read_all(pa, &nr);
        ASSERT_EQ(nr, st.detections);
        free(r);
    }
    /* 50 ns at 1 GHz is 50 pulses, not 51 (50e-9 * 1e9 rounds above 50). */
    kagi_linksim s = base(10, 1000000, 4);
    s.link.dead_time_s = 50e-9;
    kagi_linksim_stats st;
    ASSERT_OK(run(&s, &st, 0));
    ASSERT_TRUE(st.dead_pulses <= 50 * st.detections && st.dead_pulses + 50 >= 50 * st.detections);
    uint64_t n = 0;
    kagi_raw_rec *r = read_all(pa, &n);
    uint64_t min_gap = UINT64_MAX;
    for (uint64_t i = 1; r && i < n; i++)
        if (r[i].index - r[i - 1].index < min_gap) min_gap = r[i].index - r[i - 1].index;
    ASSERT_EQ(min_gap, 51);
    free(r);
}

/* Decode a raw file by docs/raw-format.md, independently of raw.c. */
static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void reader_round_trips_what_the_writer_wrote(void)
{
    kagi_linksim s = base(30, 30000000, 8);
    s.link.afterpulse = 0.04;
    s.link.dead_time_s = 7e-9;
    s.eve = 0.1;
    kagi_linksim_stats st;
    ASSERT_OK(run(&s, &st, 0));
    uint64_t na = 0, nb = 0;
    kagi_raw_rec *a = read_all(pa, &na), *b = read_all(pb, &nb);
    ASSERT_EQ(na, st.detections);
    ASSERT_EQ(nb, st.detections);
    uint64_t cls[3] = {0}, sx = 0, ex = 0, sz = 0, ez = 0;
    for (uint64_t i = 0; a && b && i < na && i < nb; i++) {
        if (a[i].index != b[i].index || a[i].index >= s.pulses ||
            (i && a[i].index <= a[i - 1].index) || a[i].cls > 2 || b[i].cls != 0) {
            T_FAIL("record %" PRIu64 " is off", i);
            break;
        }
        cls[a[i].cls]++;
        if (a[i].basis == b[i].basis) {
            *(a[i].basis ? &sz : &sx) += 1;
            *(a[i].basis ? &ez : &ex) += a[i].bit != b[i].bit;
        }
    }
    for (int k = 0; k < 3; k++) ASSERT_EQ(cls[k], st.by_class[k]);
    ASSERT_EQ(sx, st.sifted_x);
    ASSERT_EQ(ex, st.errors_x);
    ASSERT_EQ(sz, st.sifted_z);
    ASSERT_EQ(ez, st.errors_z);

    /* Header values and the link read back exactly. */
    kagi_raw_reader *r = NULL;
    ASSERT_OK(kagi_raw_open(pa, &r));
    if (r) {
        ASSERT_TRUE(!strcmp(kagi_raw_get(r, "role"), "alice"));
        ASSERT_TRUE(!strcmp(kagi_raw_get(r, "seed"), "8"));
        ASSERT_TRUE(!strcmp(kagi_raw_get(r, "pulses"), "30000000"));
        ASSERT_TRUE(kagi_raw_get(r, "nonsense") == NULL);
        kagi_link l;
        uint64_t pulses = 0;
        ASSERT_OK(kagi_raw_link(r, &l, &pulses));
        ASSERT_EQ(pulses, s.pulses);
        ASSERT_TRUE(memcmp(&l, &s.link, sizeof l) == 0);
        ASSERT_OK(kagi_link_check(&l, KAGI_DECOYS_TWO));
        kagi_raw_free(r);
    }

    /* The bytes as the format document describes them. */
    FILE *f = fopen(pb, "rb");
    unsigned char *buf = NULL;
    long size = 0;
    if (f && !fseek(f, 0, SEEK_END) && (size = ftell(f)) > 0 && !fseek(f, 0, SEEK_SET)) {
        buf = malloc((size_t)size);
        if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) size = 0;
    }
    if (f) fclose(f);
    ASSERT_EQ(size, st.bob_bytes);
    if (buf && size > 24) {
        ASSERT_TRUE(memcmp(buf, "kagi-raw 1\nrole bob\n", 20) == 0);
        unsigned char *e = (unsigned char *)strstr((char *)buf, "\nend\n");
        ASSERT_TRUE(e != NULL);
        size_t off = e ? (size_t)(e - buf) + 5 : (size_t)size;
        size_t stop = (size_t)size - 24;
        ASSERT_TRUE(memcmp(buf + stop + 16, "kagi-end", 8) == 0);
        ASSERT_EQ(le64(buf + stop), st.detections);
        ASSERT_EQ(le64(buf + stop + 8), stop - off);
        uint64_t next = 0, k = 0;
        while (off < stop && b) {
            uint64_t v = 0;
            int sh = 0;
            while (buf[off] & 0x80) v |= (uint64_t)(buf[off++] & 0x7f) << sh, sh += 7;
            v |= (uint64_t)buf[off++] << sh;
            uint64_t idx = next + (v >> 2);
            if (k >= nb || idx != b[k].index || (v & 1) != b[k].basis || (v >> 1 & 1) != b[k].bit) {
                T_FAIL("Bob's record %" PRIu64 " decodes differently", k);
                break;
            }
            next = idx + 1;
            k++;
        }
        ASSERT_EQ(k, nb);
        ASSERT_EQ(off, stop);
    }
    free(buf);
    free(a);
    free(b);
}

/* Write len bytes of data to path. */
static void put_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT_TRUE(f != NULL);
    if (!f) return;
    ASSERT_EQ(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Open (and read through) path: the error code, detail checked to name it. */
static int open_err(const char *path)
{
    kagi_raw_reader *r = NULL;
    int rc = kagi_raw_open(path, &r);
    int got = 1;
    kagi_raw_rec rec;
    while (!rc && got) rc = kagi_raw_next(r, &rec, &got);
    kagi_raw_free(r);
    if (rc && !strstr(kagi_errdetail(), path)) T_FAIL("detail '%s' lacks the path", kagi_errdetail());
    return rc;
}

/* The worked example of docs/raw-format.md, byte for byte. */
static void reader_decodes_the_documented_example(void)
{
    char path[160];
    snprintf(path, sizeof path, "%s/example", dir);
    const char *hdr[2] = {"kagi-raw 1\nrole alice\npulses 1000\nend\n",
                          "kagi-raw 1\nrole bob\npulses 1000\nend\n"};
    const unsigned char rec[2][4] = {{0x91, 0x05, 0xa6, 0x20}, {0xa5, 0x01, 0x8a, 0x08}};
    const kagi_raw_rec want[2][2] = {{{41, 1, 0, 0}, {300, 0, 1, 1}}, {{41, 1, 0, 0}, {300, 0, 1, 0}}};
    for (int role = 0; role < 2; role++) {
        unsigned char buf[128];
        size_t n = strlen(hdr[role]);
        memcpy(buf, hdr[role], n);
        memcpy(buf + n, rec[role], 4);
        n += 4;
        const unsigned char trailer[24] = {2, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0,
                                           'k', 'a', 'g', 'i', '-', 'e', 'n', 'd'};
        memcpy(buf + n, trailer, 24);
        put_file(path, buf, n + 24);
        kagi_raw_reader *r = NULL;
        ASSERT_OK(kagi_raw_open(path, &r));
        if (!r) continue;
        ASSERT_EQ(kagi_raw_count(r), 2);
        for (int i = 0; i < 3; i++) {
            kagi_raw_rec got;
            int more = 0;
            ASSERT_OK(kagi_raw_next(r, &got, &more));
            ASSERT_EQ(more, i < 2);
            if (i < 2 && more) {
                ASSERT_EQ(got.index, want[role][i].index);
                ASSERT_EQ(got.basis, want[role][i].basis);
                ASSERT_EQ(got.bit, want[role][i].bit);
                ASSERT_EQ(got.cls, want[role][i].cls);
            }
        }
        kagi_raw_free(r);
    }
    unlink(path);
}

static void damaged_files_are_format_errors_naming_the_path(void)
{
    kagi_linksim s = base(40, 5000000, 2);
    kagi_linksim_stats st;
    ASSERT_OK(run(&s, &st, 0));
    FILE *f = fopen(pa, "rb");
    size_t size = (size_t)st.alice_bytes;
    unsigned char *good = malloc(size + 64), *bad = malloc(size + 64);
    if (!f || !good || !bad || fread(good, 1, size, f) != size) {
        T_FAIL("cannot read %s", pa);
        if (f) fclose(f);
        free(good);
        free(bad);
        return;
    }
    fclose(f);
    char path[160];
    snprintf(path, sizeof path, "%s/bad", dir);
    ASSERT_EQ(open_err(pa), KAGI_OK);
    /* Truncated anywhere: at the end, in the records, in the header. */
    const size_t cuts[] = {size - 1, size - 8, size - 24, size / 2, 300, 11, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        put_file(path, good, cuts[i]);
        int rc = open_err(path);
        if (rc != KAGI_ERR_FORMAT) T_FAIL("cut at %zu: %s", cuts[i], kagi_errname(rc));
    }
    /* Wrong magic, another version, a header of garbage, no end line. */
    memcpy(bad, good, size);
    bad[0] = 'K';
    put_file(path, bad, size);
    ASSERT_EQ(open_err(path), KAGI_ERR_FORMAT);
    memcpy(bad, good, size);
    bad[9] = '2';
    put_file(path, bad, size);
    ASSERT_EQ(open_err(path), KAGI_ERR_FORMAT);
    ASSERT_TRUE(strstr(kagi_errdetail(), "version") != NULL);
    memcpy(bad, "kagi-raw 1\n", 11);
    for (size_t i = 11; i < 400; i++) bad[i] = (unsigned char)(i * 37 + 11);
    put_file(path, bad, 400);
    ASSERT_EQ(open_err(path), KAGI_ERR_FORMAT);
    const char *headers[] = {
        "kagi-raw 1\nrole alice\npulses 10\n",                 /* no end line */
        "kagi-raw 1\nrole carol\npulses 10\nend\n",            /* unknown role */
        "kagi-raw 1\nrole alice\nend\n",                       /* no pulses */
        "kagi-raw 1\nrole alice\npulses 1x\nend\n",            /* pulses not a number */
        "kagi-raw 1\nrole alice\nrole bob\npulses 9\nend\n",   /* key twice */
        "kagi-raw 1\nRole alice\npulses 9\nend\n",             /* key not lower case */
        "kagi-raw 1\nrole alice\npulses 9\nnote a\tb\nend\n",  /* value with a tab */
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        size_t hl = strlen(headers[i]);
        memcpy(bad, headers[i], hl);
        memcpy(bad + hl, good + size - 24, 24); /* a trailer of 0 records... */
        memset(bad + hl, 0, 16);                /* ...and 0 bytes */
        put_file(path, bad, hl + 24);
        int rc = open_err(path);
        if (rc != KAGI_ERR_FORMAT) T_FAIL("header %zu: %s", i, kagi_errname(rc));
    }
    /* A trailer that miscounts the records. */
    memcpy(bad, good, size);
    bad[size - 24] ^= 1;
    put_file(path, bad, size);
    ASSERT_EQ(open_err(path), KAGI_ERR_FORMAT);
    /* Records past the pulses the header names: "pulses 5000000" -> 100000
     * (still more than the records, so the trailer passes). */
    char *pp = strstr((char *)good, "pulses 5000000\n");
    ASSERT_TRUE(pp != NULL);
    if (pp) {
        size_t at = (size_t)(pp - (char *)good);
        memcpy(bad, good, size);
        memcpy(bad + at, "pulses 100000 ", 14); /* same length; "100000 " is no number */
        put_file(path, bad, size);
        ASSERT_EQ(open_err(path), KAGI_ERR_FORMAT);
        memcpy(bad + at, "pulses 0100000", 14);
        put_file(path, bad, size);
        ASSERT_EQ(open_err(path), KAGI_ERR_FORMAT);
        if (!strstr(kagi_errdetail(), "past the 100000 pulses")) T_FAIL("%s", kagi_errdetail());
    }
    /* Missing and unreadable files are I/O errors. */
    ASSERT_EQ(open_err("/nonexistent/kagi.raw"), KAGI_ERR_IO);
    ASSERT_EQ(open_err(dir), KAGI_ERR_IO);
    unlink(path);
    free(good);
    free(bad);
}

/* Files in dir whose names start with prefix. */
static int count_files(const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

static void failed_runs_leave_no_file(void)
{
    char a[160], b[160];
    snprintf(a, sizeof a, "%s/fa", dir);
    snprintf(b, sizeof b, "%s/nodir/fb", dir);
    kagi_linksim s = base(50, 1000000, 1);
    kagi_linksim_stats st;
    /* Bob's folder is missing: Alice's temporary file goes too. */
    ASSERT_EQ(kagi_linksim_run(&s, a, b, &st), KAGI_ERR_IO);
    ASSERT_TRUE(strstr(kagi_errdetail(), "nodir/fb") != NULL);
    ASSERT_EQ(count_files("fa"), 0);
    /* Bad parameters: nothing is created, the detail names the field. */
    snprintf(b, sizeof b, "%s/fb", dir);
    const char *field[5] = {"fiber_loss", "det_eff", "mu[1]", "pulses", "eve"};
    for (int i = 0; i < 5; i++) {
        kagi_linksim q = s;
        if (i == 0) q.link.fiber_loss_db_km = -0.1;
        if (i == 1) q.link.det_eff = 1.5;
        if (i == 2) q.link.mu[1] = 0.6;
        if (i == 3) q.pulses = 0;
        if (i == 4) q.eve = 1.5;
        ASSERT_EQ(kagi_linksim_run(&q, a, b, &st), KAGI_ERR_ARG);
        if (!strstr(kagi_errdetail(), field[i]))
            T_FAIL("'%s' lacks '%s'", kagi_errdetail(), field[i]);
    }
    ASSERT_EQ(kagi_linksim_run(&s, a, a, &st), KAGI_ERR_ARG);
    ASSERT_EQ(count_files("fa") + count_files("fb"), 0);
    /* A write that fails mid-run (as on a full disk: here a 1 MB file size
     * limit, so the second buffer of records cannot be written). */
    struct rlimit old, small;
    getrlimit(RLIMIT_FSIZE, &old);
    small = old;
    small.rlim_cur = 1 << 20;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &small);
    kagi_linksim big = base(10, 400000000, 3);
    int rc = kagi_linksim_run(&big, a, b, &st);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    ASSERT_EQ(rc, KAGI_ERR_IO);
    if (!strstr(kagi_errdetail(), "write failed")) T_FAIL("detail: %s", kagi_errdetail());
    ASSERT_EQ(count_files("fa") + count_files("fb"), 0);
    ASSERT_OK(kagi_linksim_run(&s, a, b, &st));
    ASSERT_EQ(count_files("fa") + count_files("fb"), 2);
    unlink(a);
    unlink(b);
}

/* Progress: calls never go back, never pass the end, and end at it. */
static void count_progress(void *ctx, uint64_t done, uint64_t pulses)
{
    uint64_t *last = ctx;
    if (done > pulses || done < last[0]) T_FAIL("progress %" PRIu64 " after %" PRIu64, done, last[0]);
    last[0] = done;
    last[1]++;
}

static void progress_is_reported_up_to_the_end(void)
{
    uint64_t last[2] = {0, 0};
    kagi_linksim s = base(5, 400000000, 6);
    s.progress = count_progress;
    s.progress_ctx = last;
    kagi_linksim_stats st;
    ASSERT_OK(run(&s, &st, 0));
    ASSERT_TRUE(last[1] >= 2); /* a megabyte of records (3e6 here) and the end */
    ASSERT_EQ(last[0], s.pulses);
}

static int setup(void)
{
    const char *base_dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/kagi-test-linksim-XXXXXX", base_dir);
    if (!mkdtemp(dir)) return -1;
    snprintf(pa, sizeof pa, "%s/a.raw", dir);
    snprintf(pb, sizeof pb, "%s/b.raw", dir);
    return 0;
}

static void teardown(void)
{
    unlink(pa);
    unlink(pb);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    static const t_case cases[] = {
        T(detections_per_class_match_the_click_probability),
        T(qber_in_matching_bases_matches_the_analytic_expectation),
        T(gaps_follow_the_geometric_law_exactly),
        T(gap_sampling_matches_the_per_pulse_simulation),
        T(runs_end_at_the_last_pulse_whatever_the_dead_time),
        T(same_seed_gives_identical_files_and_another_seed_others),
        T(eve_on_every_pulse_gives_a_quarter_qber),
        T(dead_time_and_afterpulses_change_counts_as_predicted),
        T(reader_round_trips_what_the_writer_wrote),
        T(reader_decodes_the_documented_example),
        T(damaged_files_are_format_errors_naming_the_path),
        T(failed_runs_leave_no_file),
        T(progress_is_reported_up_to_the_end),
        {NULL, NULL},
    };
    /* A runaway writer fails here instead of filling the folder (which may
     * be memory: /dev/shm). The largest file below is some 10 MB. */
    struct rlimit fs = {(rlim_t)1 << 28, (rlim_t)1 << 28};
    setrlimit(RLIMIT_FSIZE, &fs);
    if (setup() != 0) {
        printf("cannot make a temporary folder\n0 passed, 1 failed\n");
        return 1;
    }
    int rc = t_run(cases, argc, argv);
    teardown();
    return rc;
}
