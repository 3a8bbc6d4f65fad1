/* kagi keyrate: secret key rate of a fibre link against distance, as a
 * table, JSON, CSV or an SVG chart with the PLOB bound. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kagi/error.h"
#include "kagi/keyrate.h"
#include "kagi/plot.h"

static kagi_cli_opt kagi__opts[] = {
    {"protocol", "NAME", "bb84-decoy (default) or tf-qkd", 0, NULL},
    {"distance", "D|A:B:STEP",
     "Alice-Bob fibre in km, or a range; TF-QKD: the total, Charlie in the middle", 1, NULL},
    {"finite", "N",
     "finite key for a block of N key-basis (X) detections; default asymptotic", 0, NULL},
    {"optimize", NULL,
     "choose intensities and probabilities per distance for the best rate", 0, NULL},
    {"decoys", "infinite|2",
     "infinite (default when asymptotic) or 2: one weak decoy and a vacuum", 0, NULL},
    KAGI_CLI_LINK_OPTS,
    {"afterpulse-model", "gate|lim", "gate: the extra click falls in a later gate, any intensity "
                                     "(as kagi link simulate draws it; default); lim: it counts "
                                     "with the pulse that caused it, as in Lim et al. 2014", 0, NULL},
    {"ec-efficiency", "F", "error correction leak over n h(QBER), >= 1 (default 1.16)", 0, NULL},
    {"send-prob", "EPS", "TF-QKD probability of sending in a key window (default 0.05)", 0, NULL},
    {"clock", "HZ", "pulse rate (default 1e9)", 0, NULL},
    {"eps-sec", "E", "secrecy parameter of a finite key (default 1e-10)", 0, NULL},
    {"eps-cor", "E", "correctness parameter of a finite key (default 1e-15)", 0, NULL},
    {"json", NULL, "print a JSON array, one object per distance", 0, NULL},
    {"csv", NULL, "print CSV with a header line", 0, NULL},
    {"plot", "FILE.svg", "draw rate per pulse against distance, with the PLOB bound", 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

/* "D" or "A:B:STEP" into a freshly allocated list. */
#define KAGI__MAX_POINTS 100000
static int kagi__distances(const kagi_cli_cmd *cmd, double **out, size_t *n)
{
    const char *s = kagi_cli_get(cmd, "distance");
    double v[3];
    int k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        v[k] = strtod(p, &end);
        if (end == p || !isfinite(v[k]) || errno == ERANGE || (*end && *end != ':'))
            return kagi_cli_usage_error(cmd, "--distance: '%s' is not D or A:B:STEP (km)", s);
        k++;
        if (!*end) break;
        if (k == 3)
            return kagi_cli_usage_error(cmd, "--distance: '%s' is not D or A:B:STEP (km)", s);
        p = end + 1;
    }
    if (k == 2) return kagi_cli_usage_error(cmd, "--distance: '%s' lacks the STEP of A:B:STEP", s);
    if (v[0] < 0)
        return kagi_cli_usage_error(cmd, "--distance: %g km is negative", v[0]);
    size_t count = 1;
    if (k == 3) {
        if (!(v[2] > 0))
            return kagi_cli_usage_error(cmd, "--distance: step %g km is not positive", v[2]);
        if (v[1] < v[0])
            return kagi_cli_usage_error(cmd,
                                        "--distance: range %g:%g:%g is empty (end below start)",
                                        v[0], v[1], v[2]);
        double steps = floor((v[1] - v[0]) / v[2] * (1 + 1e-12) + 1e-9);
        if (steps >= KAGI__MAX_POINTS)
            return kagi_cli_usage_error(cmd, "--distance: %s has more than %d points", s,
                                        KAGI__MAX_POINTS);
        count = (size_t)steps + 1;
    }
    double *d = malloc(count * sizeof *d);
    if (!d) {
        fprintf(stderr, "kagi %s: out of memory\n", cmd->name);
        return KAGI_EXIT_FAIL;
    }
    for (size_t i = 0; i < count; i++) d[i] = k == 3 ? v[0] + (double)i * v[2] : v[0];
    *out = d;
    *n = count;
    return KAGI_EXIT_OK;
}

typedef struct kagi__setup {
    kagi_protocol proto;
    kagi_decoys decoys;
    double n_block;
    int optimize, json, csv;
    const char *plot;
} kagi__setup;

/* Options into the link and the run settings; usage errors exit 2. */
static int kagi__parse(const kagi_cli_cmd *cmd, kagi_link *l, kagi__setup *s)
{
    int rc;
    kagi_link_defaults(l);
    memset(s, 0, sizeof *s);
    const char *proto = kagi_cli_get(cmd, "protocol");
    s->proto = KAGI_PROTO_BB84_DECOY;
    if (proto && kagi_protocol_parse(proto, &s->proto))
        return kagi_cli_usage_error(cmd, "--protocol: %s", kagi_errdetail());
    int tf = s->proto == KAGI_PROTO_TF_QKD;
    if ((rc = kagi_cli_range(cmd, "finite", 1, 1, 1e30, 1, &s->n_block))) return rc;
    const char *dec = kagi_cli_get(cmd, "decoys");
    if (!dec)
        s->decoys = s->n_block > 0 ? KAGI_DECOYS_TWO : KAGI_DECOYS_INFINITE;
    else if (!strcmp(dec, "infinite"))
        s->decoys = KAGI_DECOYS_INFINITE;
    else if (!strcmp(dec, "2"))
        s->decoys = KAGI_DECOYS_TWO;
    else
        return kagi_cli_usage_error(cmd, "--decoys: '%s' is not infinite or 2", dec);
    if (tf && s->n_block > 0)
        return kagi_cli_usage_error(cmd, "--finite: TF-QKD is modelled asymptotically only");
    if (tf && s->decoys == KAGI_DECOYS_TWO)
        return kagi_cli_usage_error(cmd, "--decoys: TF-QKD is modelled with infinite decoys only");
    if (s->n_block > 0 && s->decoys != KAGI_DECOYS_TWO)
        return kagi_cli_usage_error(cmd,
                                    "--finite: a finite key needs --decoys 2 (Lim et al. 2014)");
    if (s->decoys != KAGI_DECOYS_TWO) {
        static const char *const two_only[] = {"decoy-mu", "vacuum-mu", "p-mu"};
        for (size_t i = 0; i < sizeof two_only / sizeof *two_only; i++)
            if (kagi_cli_get(cmd, two_only[i]))
                return kagi_cli_usage_error(cmd, "--%s: only with --decoys 2", two_only[i]);
    }
    if (!tf && kagi_cli_get(cmd, "send-prob"))
        return kagi_cli_usage_error(cmd, "--send-prob: only with --protocol tf-qkd");
    s->optimize = kagi_cli_flag(cmd, "optimize");
    s->json = kagi_cli_flag(cmd, "json");
    s->csv = kagi_cli_flag(cmd, "csv");
    if (s->json && s->csv) return kagi_cli_usage_error(cmd, "--json and --csv exclude each other");
    s->plot = kagi_cli_get(cmd, "plot");

    if ((rc = kagi_cli_link(cmd, l, s->n_block > 0)) ||
        (rc = kagi_cli_range(cmd, "ec-efficiency", 1, 1, 10, 1, &l->f_ec)) ||
        (rc = kagi_cli_range(cmd, "send-prob", 0, 0, 1, 0, &l->send_prob)) ||
        (rc = kagi_cli_range(cmd, "eps-sec", 0, 0, 1, 0, &l->eps_sec)) ||
        (rc = kagi_cli_range(cmd, "eps-cor", 0, 0, 1, 0, &l->eps_cor)))
        return rc;
    const char *am = kagi_cli_get(cmd, "afterpulse-model");
    l->afterpulse_model = KAGI_AFTERPULSE_GATE;
    if (am && kagi_afterpulse_model_parse(am, &l->afterpulse_model))
        return kagi_cli_usage_error(cmd, "--afterpulse-model: %s", kagi_errdetail());
    if (s->decoys == KAGI_DECOYS_TWO && (rc = kagi_cli_link_decoys(cmd, l))) return rc;
    /* Anything the ranges above let through is caught here, by name. */
    if (kagi_link_check(l, tf ? KAGI_DECOYS_INFINITE : s->decoys) != KAGI_OK)
        return kagi_cli_usage_error(cmd, "%s", kagi_errdetail());
    return KAGI_EXIT_OK;
}

typedef struct kagi__row {
    double d;
    kagi_rate r;
    kagi_link l;
} kagi__row;

/* %.10g, or null/empty for values JSON and CSV cannot hold. */
static void kagi__put(FILE *f, double v, const char *bad)
{
    if (isfinite(v))
        fprintf(f, "%.10g", v);
    else
        fputs(bad, f);
}

/* Column names, shared by JSON and CSV, and their values for one row. */
#define KAGI__MAX_COLS 16
static size_t kagi__cols(const kagi__setup *s, const kagi__row *w, const char **name, double *val)
{
    size_t n = 0;
#define KAGI__COL(nm, v) (name[n] = (nm), val[n] = (v), n++)
    KAGI__COL("distance_km", w->d);
    KAGI__COL("key_rate_per_pulse", w->r.per_pulse);
    KAGI__COL("key_rate_bps", w->r.bps);
    KAGI__COL("qber", w->r.qber);
    KAGI__COL("mu_signal", w->l.mu[0]);
    if (s->proto == KAGI_PROTO_BB84_DECOY && s->decoys == KAGI_DECOYS_TWO) {
        KAGI__COL("mu_decoy", w->l.mu[1]);
        KAGI__COL("mu_vacuum", w->l.mu[2]);
        KAGI__COL("p_signal", w->l.p_mu[0]);
        KAGI__COL("p_decoy", w->l.p_mu[1]);
        KAGI__COL("p_vacuum", w->l.p_mu[2]);
    }
    KAGI__COL("p_x", w->l.p_x);
    if (s->proto == KAGI_PROTO_TF_QKD) KAGI__COL("send_prob", w->l.send_prob);
    KAGI__COL("gain", w->r.gain);
    KAGI__COL("y1_lower", w->r.y1_lower);
    KAGI__COL("e1_upper", w->r.e1_upper);
    if (s->n_block > 0) KAGI__COL("block_pulses", w->r.block_pulses);
    KAGI__COL("plob_per_pulse", w->r.plob_per_pulse);
#undef KAGI__COL
    return n;
}

static void kagi__print_json(const kagi__setup *s, const kagi__row *rows, size_t n)
{
    const char *name[KAGI__MAX_COLS];
    double val[KAGI__MAX_COLS];
    printf("[");
    for (size_t i = 0; i < n; i++) {
        size_t nc = kagi__cols(s, &rows[i], name, val);
        printf("%s\n  {", i ? "," : "");
        for (size_t c = 0; c < nc; c++) {
            printf("%s\"%s\": ", c ? ", " : "", name[c]);
            kagi__put(stdout, val[c], "null");
        }
        printf("}");
    }
    printf("%s]\n", n ? "\n" : "");
}

static void kagi__print_csv(const kagi__setup *s, const kagi__row *rows, size_t n)
{
    const char *name[KAGI__MAX_COLS];
    double val[KAGI__MAX_COLS];
    size_t nc = kagi__cols(s, &rows[0], name, val);
    for (size_t c = 0; c < nc; c++) printf("%s%s", c ? "," : "", name[c]);
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        kagi__cols(s, &rows[i], name, val);
        for (size_t c = 0; c < nc; c++) {
            if (c) putchar(',');
            kagi__put(stdout, val[c], "");
        }
        printf("\n");
    }
}

/* One line of the parameters behind a run; short enough for a chart's
 * subtitle (the protocol is in the title). */
static void kagi__describe(const kagi__setup *s, const kagi_link *l, char *buf, size_t len)
{
    char fin[64] = "asymptotic";
    if (s->n_block > 0) snprintf(fin, sizeof fin, "n_X %g", s->n_block);
    snprintf(buf, len, "%s decoys, %s%s; %g dB/km + %g dB, eta_det %g, Y0 %g, e_d %g, f %g",
             s->decoys == KAGI_DECOYS_TWO ? "2" : "infinite", fin,
             s->optimize ? ", optimised" : "", l->fiber_loss_db_km, l->extra_loss_db, l->det_eff,
             l->dark_count, l->misalignment, l->f_ec);
}

static void kagi__print_table(const kagi__setup *s, const kagi_link *l, const kagi__row *rows,
                              size_t n)
{
    char desc[256];
    kagi__describe(s, l, desc, sizeof desc);
    printf("# %s, %s\n", kagi_protocol_name(s->proto), desc);
    int two = s->proto == KAGI_PROTO_BB84_DECOY && s->decoys == KAGI_DECOYS_TWO;
    int tf = s->proto == KAGI_PROTO_TF_QKD;
    /* Two heading lines, names then units, over the same columns. */
    static const char *const head[2][13] = {
        {"distance", "key rate", "key rate", "QBER", "mu", "mu_decoy", "mu_vacuum", "p_sig",
         "p_dec", "send_prob", "p_x", "pulses N", "PLOB"},
        {"(km)", "(bit/pulse)", "(bit/s)", "(%)", "(photons)", "(photons)", "(photons)", "", "",
         "", "", "", "(bit/pulse)"}};
    for (int r = 0; r < 2; r++) {
        const char *const *c = head[r];
        printf("%10s %13s %13s %8s %9s", c[0], c[1], c[2], c[3], c[4]);
        if (two) printf(" %9s %9s %6s %6s", c[5], c[6], c[7], c[8]);
        if (tf) printf(" %9s", c[9]);
        printf(" %6s", c[10]);
        if (s->n_block > 0) printf(" %11s", c[11]);
        printf(" %13s\n", c[12]);
    }
    for (size_t i = 0; i < n; i++) {
        const kagi__row *w = &rows[i];
        printf("%10.3f %13.4e %13.4e %8.3f %9.4f", w->d, w->r.per_pulse, w->r.bps,
               100 * w->r.qber, w->l.mu[0]);
        if (two)
            printf(" %9.4f %9.2e %6.3f %6.3f", w->l.mu[1], w->l.mu[2], w->l.p_mu[0],
                   w->l.p_mu[1]);
        if (tf) printf(" %9.4f", w->l.send_prob);
        printf(" %6.3f", w->l.p_x);
        if (s->n_block > 0) printf(" %11.3e", w->r.block_pulses);
        printf(" %13.4e\n", w->r.plob_per_pulse);
    }
}

static int kagi__plot(const kagi_cli_cmd *cmd, const kagi__setup *s, const kagi_link *l,
                      const kagi__row *rows, size_t n)
{
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *b = malloc(n * sizeof *b);
    int e = x && y && b ? KAGI_OK : KAGI_ERR_NOMEM;
    double last = -1;
    for (size_t i = 0; !e && i < n; i++) {
        x[i] = rows[i].d;
        y[i] = rows[i].r.per_pulse;
        b[i] = rows[i].r.plob_per_pulse;
        if (y[i] > 0) last = x[i];
    }
    char title[96], desc[256], mark[64];
    snprintf(title, sizeof title, "Secret key rate, %s", kagi_protocol_name(s->proto));
    kagi__describe(s, l, desc, sizeof desc);
    kagi_plot *p = NULL;
    if (!e)
        e = kagi_plot_new(&p, title, "distance (km)", "secret key rate (bit/pulse)",
                          KAGI_PLOT_LOG);
    if (!e) e = kagi_plot_subtitle(p, desc);
    if (!e) e = kagi_plot_series(p, "key rate", x, y, n, KAGI_PLOT_SOLID, 0);
    if (!e) e = kagi_plot_series(p, "PLOB bound", x, b, n, KAGI_PLOT_DASHED, 0);
    if (!e && last >= 0 && n > 1 && last < x[n - 1]) {
        snprintf(mark, sizeof mark, "key up to %g km", last);
        e = kagi_plot_marker(p, last, mark);
    }
    if (!e) e = kagi_plot_write(p, s->plot);
    kagi_plot_free(p);
    free(x);
    free(y);
    free(b);
    if (e) {
        fprintf(stderr, "kagi %s: --plot: %s\n", cmd->name,
                kagi_errdetail()[0] ? kagi_errdetail() : kagi_strerror(e));
        return e == KAGI_ERR_ARG ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
    }
    return KAGI_EXIT_OK;
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    kagi_link l;
    kagi__setup s;
    int rc = kagi__parse(cmd, &l, &s);
    if (rc) return rc;
    double *dist = NULL;
    size_t n = 0;
    if ((rc = kagi__distances(cmd, &dist, &n))) return rc;
    kagi__row *rows = calloc(n, sizeof *rows);
    if (!rows) {
        free(dist);
        fprintf(stderr, "kagi %s: out of memory\n", cmd->name);
        return KAGI_EXIT_FAIL;
    }
    /* With --optimize each distance starts from the previous optimum. */
    kagi_link cur = l;
    int e = KAGI_OK;
    for (size_t i = 0; !e && i < n; i++) {
        cur.distance_km = dist[i];
        rows[i].d = dist[i];
        if (s.optimize)
            e = kagi_keyrate_optimize(s.proto, s.decoys, &cur, s.n_block, &rows[i].r);
        else
            e = kagi_keyrate(s.proto, s.decoys, &cur, s.n_block, &rows[i].r);
        rows[i].l = cur;
    }
    free(dist);
    if (e) {
        free(rows);
        return kagi_cli_fail(cmd, e);
    }
    if (s.json)
        kagi__print_json(&s, rows, n);
    else if (s.csv)
        kagi__print_csv(&s, rows, n);
    else
        kagi__print_table(&s, &l, rows, n);
    rc = s.plot ? kagi__plot(cmd, &s, &l, rows, n) : KAGI_EXIT_OK;
    free(rows);
    return rc;
}

kagi_cli_cmd kagi_cmd_keyrate = {
    "keyrate", "secret key rate of a fibre link against distance",
    "--distance D|A:B:STEP [--protocol bb84-decoy|tf-qkd] [--finite N] [--optimize] "
    "[--decoys infinite|2] [link options] [--json|--csv] [--plot FILE.svg]",
    "Models efficient BB84 with weak coherent pulses and decoy states\n"
    "(asymptotic with infinitely many decoys, Lo-Ma-Chen 2005; with a weak decoy\n"
    "and a vacuum, Ma-Qi-Zhao-Lo 2005; finite key, Lim-Curty-Walenta-Xu-Zbinden\n"
    "2014) and sending-or-not-sending TF-QKD (Wang-Yu-Hu 2018, asymptotic).\n"
    "--finite N is a block of N key-basis (X) detections, summed over the\n"
    "intensities; the pulses it takes are reported. Rates are per pulse sent\n"
    "and per second (at --clock, capped by --dead-time); 0 where no key can be\n"
    "made. PLOB is -log2(1 - eta) with eta of fibre, extra loss and detector.\n"
    "Defaults are Lim et al.'s example system. See docs/keyrate.md.",
    kagi__opts, kagi__run};
