/* kagi pass: the passes of a satellite over a ground station, the link loss
 * through each and the secret key each yields (or a block of several). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kagi/error.h"
#include "kagi/freespace.h"
#include "kagi/orbit.h"
#include "kagi/plot.h"

static kagi_cli_opt kagi__opts[] = {
    {"tle", "FILE", "element sets, 2- or 3-line form", 1, NULL},
    {"sat", "ID", "catalogue number or name, when FILE holds several sets", 0, NULL},
    {"station", "LAT,LON,ALT_M", "ground station: WGS-84 degrees (east positive) and metres", 1,
     NULL},
    {"from", "ISO8601", "start of the window, UTC (\"2024-03-01T00:00:00Z\")", 1, NULL},
    {"hours", "H", "length of the window, hours (up to 20 years)", 1, NULL},
    {"min-elevation", "DEG", "passes above this elevation, and the link only there (default 10)",
     0, NULL},
    {"step", "S", "sampling step through each pass, seconds (default 1)", 0, NULL},
    {"passes-per-block", "N",
     "finite-key block of N consecutive passes (default 1: each pass alone)", 0, NULL},
    {"night-only", NULL,
     "only passes wholly at night (Sun below -18 deg at the station): the others are left "
     "out of the list and of the blocks",
     0, NULL},
    {"link", "NAME", "preset of the link (default micius; see docs/freespace.md)", 0, NULL},
    {"direction", "down|up", "downlink (satellite sends) or uplink (default: the preset's)", 0,
     NULL},
    {"wavelength", "M", "wavelength, metres (micius 848.6e-9)", 0, NULL},
    {"tx-aperture", "M", "transmitter aperture diameter, metres (micius 0.3)", 0, NULL},
    {"divergence", "RAD",
     "far-field divergence, full angle at half maximum, rad; 0: diffraction-limited "
     "(micius 10e-6)",
     0, NULL},
    {"rx-aperture", "M", "receiving aperture diameter, metres (micius 1)", 0, NULL},
    {"pointing-jitter", "RAD", "r.m.s. pointing error per axis, rad (micius 1.2e-6)", 0, NULL},
    {"zenith-transmittance", "X", "atmosphere at zenith, (0, 1] (micius 0.55)", 0, NULL},
    {"r0", "M", "Fried parameter at zenith at the wavelength, metres; 0: no turbulence (micius 0)",
     0, NULL},
    {"fov", "RAD", "receiver field of view, full angle, rad; 0: unlimited (micius 0)", 0, NULL},
    {"scintillation", "SI", "scintillation index of a log-normal fading (micius 0)", 0, NULL},
    {"rx-efficiency", "X", "receiver optics, aperture to detectors (micius 0.16)", 0, NULL},
    {"detector-efficiency", "X", "detection efficiency (micius 0.5)", 0, NULL},
    {"dark-count", "Y0", "dark clicks per pulse, all detectors (micius 2e-7)", 0, NULL},
    {"background-night", "Y", "sky clicks per pulse with the Sun below -18 deg (micius 1.7e-6)", 0,
     NULL},
    {"background-day", "Y", "sky clicks per pulse with the Sun above 0 deg (micius 0.0413)", 0,
     NULL},
    {"afterpulse", "P", "probability a click brings an extra random click (micius 0)", 0, NULL},
    {"dead-time", "SECONDS", "non-paralysable detector dead time (micius 0)", 0, NULL},
    {"misalignment", "ED", "probability a detected photon flips, e_d (micius 0.0036)", 0, NULL},
    {"mu", "M", "signal intensity, photons per pulse (micius 0.8)", 0, NULL},
    {"decoy-mu", "NU", "decoy intensity (micius 0.1)", 0, NULL},
    {"vacuum-mu", "W", "vacuum intensity (micius 0)", 0, NULL},
    {"p-mu", "PS,PD",
     "probabilities of signal and decoy; the vacuum gets the rest (micius 0.5,0.25)", 0, NULL},
    {"p-x", "P", "probability of the key basis on both sides (micius 0.5)", 0, NULL},
    {"clock", "HZ", "pulse rate (micius 100e6)", 0, NULL},
    {"ec-efficiency", "F", "error correction leak over n h(QBER), >= 1 (micius 1.16)", 0, NULL},
    {"eps-sec", "E", "secrecy parameter (micius 1e-9)", 0, NULL},
    {"eps-cor", "E", "correctness parameter (micius 1e-15)", 0, NULL},
    {"json", NULL, "JSON array, one object per pass, with the loss profile", 0, NULL},
    {"profile", NULL, "table: every sample of every pass instead of one row per pass", 0, NULL},
    {"plot", "FILE.svg",
     "draw elevation and loss through the pass with the most key (docs/freespace.md)", 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

typedef struct kagi__setup {
    kagi_fso_link link;
    const char *link_name;
    kagi_station st;
    double lat, lon, alt_m;
    kagi_utc t0;
    double hours, min_el, step;
    size_t per_block;
    int json, profile, night_only;
    const char *plot;
    kagi_sat *sat; /* to sample a pass again for printing */
} kagi__setup;

/* "LAT,LON,ALT_M": three numbers, the station's ranges. */
static int kagi__station(const kagi_cli_cmd *cmd, kagi__setup *s)
{
    const char *txt = kagi_cli_get(cmd, "station");
    double v[3];
    const char *p = txt;
    for (int i = 0; i < 3; i++) {
        char *end;
        errno = 0;
        v[i] = strtod(p, &end);
        if (end == p || !isfinite(v[i]) || errno == ERANGE || (i < 2 && *end != ',') ||
            (i == 2 && *end))
            return kagi_cli_usage_error(cmd, "--station: '%s' is not LAT,LON,ALT_M (three numbers)",
                                        txt);
        p = end + 1;
    }
    if (!(v[0] >= -90 && v[0] <= 90))
        return kagi_cli_usage_error(cmd, "--station: latitude %g is not in [-90, 90] degrees",
                                    v[0]);
    if (!(v[1] >= -180 && v[1] <= 360))
        return kagi_cli_usage_error(cmd, "--station: longitude %g is not in [-180, 360] degrees",
                                    v[1]);
    if (!(v[2] >= -11000 && v[2] <= 100000))
        return kagi_cli_usage_error(cmd, "--station: height %g m is not in [-11000, 100000] m",
                                    v[2]);
    if (kagi_station_init(&s->st, v[0], v[1], v[2] / 1000.0))
        return kagi_cli_usage_error(cmd, "--station: %s", kagi_errdetail());
    s->lat = v[0];
    s->lon = v[1];
    s->alt_m = v[2];
    return KAGI_EXIT_OK;
}

/* The preset, then every option given over it. */
static int kagi__link(const kagi_cli_cmd *cmd, kagi__setup *s)
{
    int rc;
    kagi_fso_link *l = &s->link;
    s->link_name = kagi_cli_get(cmd, "link");
    if (!s->link_name) s->link_name = "micius";
    if (kagi_fso_preset(s->link_name, l))
        return kagi_cli_usage_error(cmd, "--link: %s", kagi_errdetail());
    const char *dir = kagi_cli_get(cmd, "direction");
    if (dir && !strcmp(dir, "down"))
        l->fso.direction = KAGI_FSO_DOWNLINK;
    else if (dir && !strcmp(dir, "up"))
        l->fso.direction = KAGI_FSO_UPLINK;
    else if (dir)
        return kagi_cli_usage_error(cmd, "--direction: expected down or up, got '%s'", dir);
    kagi_fso *f = &l->fso;
    if ((rc = kagi_cli_range(cmd, "wavelength", 1e-7, 1, 1e-4, 1, &f->wavelength_m)) ||
        (rc = kagi_cli_range(cmd, "tx-aperture", 0, 0, 100, 1, &f->tx_aperture_m)) ||
        (rc = kagi_cli_range(cmd, "divergence", 0, 1, 0.1, 1, &f->divergence_rad)) ||
        (rc = kagi_cli_range(cmd, "rx-aperture", 0, 0, 100, 1, &f->rx_aperture_m)) ||
        (rc = kagi_cli_range(cmd, "pointing-jitter", 0, 1, 0.1, 1, &f->pointing_jitter_rad)) ||
        (rc = kagi_cli_range(cmd, "zenith-transmittance", 0, 0, 1, 1, &f->zenith_transmittance)) ||
        (rc = kagi_cli_range(cmd, "r0", 0, 1, 100, 1, &f->r0_zenith_m)) ||
        (rc = kagi_cli_range(cmd, "fov", 0, 1, 1, 1, &f->rx_fov_rad)) ||
        (rc = kagi_cli_range(cmd, "scintillation", 0, 1, 10, 1, &f->scintillation_index)) ||
        (rc = kagi_cli_range(cmd, "rx-efficiency", 0, 0, 1, 1, &f->rx_efficiency)) ||
        (rc = kagi_cli_range(cmd, "background-night", 0, 1, 1, 0, &f->background_night)) ||
        (rc = kagi_cli_range(cmd, "background-day", 0, 1, 1, 0, &f->background_day)))
        return rc;
    /* Source and detector options: the parser kagi keyrate uses. */
    if ((rc = kagi_cli_link(cmd, &l->qkd, 1)) ||
        (rc = kagi_cli_range(cmd, "ec-efficiency", 1, 1, 10, 1, &l->qkd.f_ec)) ||
        (rc = kagi_cli_range(cmd, "eps-sec", 0, 0, 1, 0, &l->qkd.eps_sec)) ||
        (rc = kagi_cli_range(cmd, "eps-cor", 0, 0, 1, 0, &l->qkd.eps_cor)) ||
        (rc = kagi_cli_link_decoys(cmd, &l->qkd)))
        return rc;
    if (kagi_fso_check(l)) return kagi_cli_usage_error(cmd, "%s", kagi_errdetail());
    return KAGI_EXIT_OK;
}

static int kagi__parse(const kagi_cli_cmd *cmd, kagi__setup *s)
{
    int rc;
    memset(s, 0, sizeof *s);
    if ((rc = kagi__station(cmd, s))) return rc;
    const char *from = kagi_cli_get(cmd, "from");
    if (kagi_utc_parse(from, &s->t0))
        return kagi_cli_usage_error(cmd, "--from: %s", kagi_errdetail());
    s->hours = 0;
    if ((rc = kagi_cli_range(cmd, "hours", 0, 0, 20 * 8766.0, 1, &s->hours))) return rc;
    s->min_el = 10;
    s->step = 1;
    s->per_block = 1;
    if ((rc = kagi_cli_range(cmd, "min-elevation", 0, 1, 89, 1, &s->min_el)) ||
        (rc = kagi_cli_range(cmd, "step", 0.001, 1, 86400, 1, &s->step)) ||
        (rc = kagi_cli_size(cmd, "passes-per-block", 1, &s->per_block)))
        return rc;
    if ((rc = kagi__link(cmd, s))) return rc;
    s->json = kagi_cli_flag(cmd, "json");
    s->profile = kagi_cli_flag(cmd, "profile");
    s->night_only = kagi_cli_flag(cmd, "night-only");
    if (s->json && s->profile)
        return kagi_cli_usage_error(cmd, "--profile is for the table; --json always has it");
    s->plot = kagi_cli_get(cmd, "plot");
    return KAGI_EXIT_OK;
}

/* A block of consecutive passes and its key. */
typedef struct kagi__block {
    size_t first, count;
    kagi_fso_counts counts;
    kagi_fso_key key;
} kagi__block;

static const char *kagi__light(const kagi_fso_pass *p)
{
    if (p->night) return "night";
    for (size_t i = 0; i < p->npoints; i++)
        if (p->points[i].sun_el_deg < 0) return "twilight";
    return "day";
}

static void kagi__when(kagi_utc t, char *buf)
{
    if (kagi_utc_format(t, 2, buf, KAGI_UTC_STRLEN)) snprintf(buf, KAGI_UTC_STRLEN, "?");
}

/* %.10g, or null for values JSON cannot hold. */
static void kagi__num(double v)
{
    if (isfinite(v))
        printf("%.10g", v);
    else
        printf("null");
}

/* Passes are kept without their samples (a window may hold 20 years of
 * passes, 400 samples each); printing and plotting sample a pass again,
 * which gives the same numbers. */
static int kagi__resample(const kagi__setup *s, const kagi_fso_pass *p, kagi_fso_pass *full)
{
    return kagi_fso_pass_run(s->sat, &s->st, &p->pass, &s->link, s->step, full);
}

static int kagi__print_json(const kagi__setup *s, const kagi_fso_pass *ps, size_t n,
                            const kagi__block *blocks, const char *const *light)
{
    char a[KAGI_UTC_STRLEN], t[KAGI_UTC_STRLEN], z[KAGI_UTC_STRLEN];
    printf("[");
    for (size_t i = 0; i < n; i++) {
        const kagi_fso_pass *p = &ps[i];
        kagi_fso_pass full;
        int e = kagi__resample(s, p, &full);
        if (e) return e;
        kagi__when(p->pass.aos, a);
        kagi__when(p->pass.tca, t);
        kagi__when(p->pass.los, z);
        printf("%s\n  {\"aos\": \"%s\", \"tca\": \"%s\", \"los\": \"%s\", ", i ? "," : "", a, t, z);
        printf("\"max_elevation_deg\": %.4f, \"duration_s\": %.3f, ", p->pass.max_el_deg,
               p->pass.los - p->pass.aos);
        printf("\"starts_before\": %s, \"ends_after\": %s, \"night\": %s, \"light\": \"%s\", ",
               p->pass.starts_before ? "true" : "false", p->pass.ends_after ? "true" : "false",
               p->night ? "true" : "false", light[i]);
        printf("\"min_loss_db\": %.4f, \"max_loss_db\": %.4f, ", p->min_loss_db, p->max_loss_db);
        printf("\"detections\": ");
        kagi__num(p->key.detections);
        printf(", \"sifted_bits\": ");
        kagi__num(p->key.sifted_bits);
        printf(", \"qber\": ");
        kagi__num(p->key.qber);
        printf(", \"qber_x\": ");
        kagi__num(p->key.qber_x);
        printf(", \"key_bits\": %.0f, \"asymptotic_key_bits\": ", p->key.key_bits);
        kagi__num(p->key.asymptotic_bits);
        if (s->per_block > 1) {
            const kagi__block *b = &blocks[i / s->per_block];
            printf(", \"block\": %zu, \"block_passes\": %zu, \"block_key_bits\": %.0f, "
                   "\"block_asymptotic_key_bits\": ",
                   i / s->per_block + 1, b->count, b->key.key_bits);
            kagi__num(b->key.asymptotic_bits);
        }
        printf(", \"profile\": [");
        for (size_t j = 0; j < full.npoints; j++) {
            const kagi_fso_point *q = &full.points[j];
            kagi__when(q->t, a);
            printf("%s\n    {\"time\": \"%s\", \"elevation_deg\": %.4f, \"azimuth_deg\": %.4f, "
                   "\"range_km\": %.4f, \"loss_db\": %.4f, \"sun_elevation_deg\": %.3f, "
                   "\"night\": %s, \"clicks_per_s\": %.6g, \"qber\": %.6g}",
                   j ? "," : "", a, q->el_deg, q->az_deg, q->range_km, q->loss_db, q->sun_el_deg,
                   q->night ? "true" : "false", q->clicks_per_s, q->qber);
        }
        printf("%s]}", full.npoints ? "\n  " : "");
        kagi_fso_pass_clear(&full);
    }
    printf("%s]\n", n ? "\n" : "");
    return KAGI_OK;
}

static void kagi__header(const kagi__setup *s, const kagi_tle *tle)
{
    char from[KAGI_UTC_STRLEN];
    kagi__when(s->t0, from);
    const kagi_fso *f = &s->link.fso;
    const kagi_link *q = &s->link.qkd;
    printf("# %s%s%s over %.6g, %.6g, %.6g m; %s + %g h; passes above %g deg, step %g s\n",
           tle->satnum, tle->name[0] ? " " : "", tle->name, s->lat, s->lon, s->alt_m, from,
           s->hours, s->min_el, s->step);
    printf("# link %s: %s, %.5g nm, %g m -> %g m, divergence %g urad FWHM, jitter %g urad, "
           "zenith T %g, rx %g, det %g; mu %g/%g/%g at %g MHz, p_x %g, f %g, eps_sec %g\n",
           s->link_name, f->direction == KAGI_FSO_UPLINK ? "uplink" : "downlink",
           f->wavelength_m * 1e9, f->tx_aperture_m, f->rx_aperture_m, f->divergence_rad * 1e6,
           f->pointing_jitter_rad * 1e6, f->zenith_transmittance, f->rx_efficiency, q->det_eff,
           q->mu[0], q->mu[1], q->mu[2], q->clock_hz / 1e6, q->p_x, q->f_ec, q->eps_sec);
}

static void kagi__print_table(const kagi__setup *s, const kagi_tle *tle, const kagi_fso_pass *ps,
                              size_t n, const kagi__block *blocks, size_t nblocks,
                              const char *const *light)
{
    char a[KAGI_UTC_STRLEN], t[KAGI_UTC_STRLEN], z[KAGI_UTC_STRLEN];
    kagi__header(s, tle);
    if (!n) {
        printf("# no pass above %g deg in the window\n", s->min_el);
        return;
    }
    printf("# %3s  %-22s %-22s %-22s %7s %8s %-8s %8s %8s %11s %11s %6s %9s %11s\n", "n",
           "AOS (UTC)", "TCA (UTC)", "LOS (UTC)", "max el", "duration", "light", "loss min",
           "loss max", "detections", "sifted", "QBER", "key", "asymptotic");
    printf("# %3s  %-22s %-22s %-22s %7s %8s %-8s %8s %8s %11s %11s %6s %9s %11s\n", "", "", "",
           "", "(deg)", "(s)", "", "(dB)", "(dB)", "(count)", "(bit)", "(%)", "(bit)", "(bit)");
    for (size_t i = 0; i < n; i++) {
        const kagi_fso_pass *p = &ps[i];
        kagi__when(p->pass.aos, a);
        kagi__when(p->pass.tca, t);
        kagi__when(p->pass.los, z);
        printf("  %3zu  %-22s %-22s %-22s %7.2f %8.1f %-8s %8.2f %8.2f %11.0f %11.0f %6.2f %9.0f "
               "%11.0f\n",
               i + 1, a, t, z, p->pass.max_el_deg, p->pass.los - p->pass.aos, light[i],
               p->min_loss_db, p->max_loss_db, p->key.detections, p->key.sifted_bits,
               100 * p->key.qber, p->key.key_bits, p->key.asymptotic_bits);
    }
    if (s->per_block > 1)
        for (size_t b = 0; b < nblocks; b++)
            printf("# block %zu: passes %zu-%zu, %.0f detections, %.0f sifted bits, QBER %.2f%%, "
                   "key %.0f bit (asymptotic %.0f bit)%s\n",
                   b + 1, blocks[b].first + 1, blocks[b].first + blocks[b].count,
                   blocks[b].key.detections, blocks[b].key.sifted_bits, 100 * blocks[b].key.qber,
                   blocks[b].key.key_bits, blocks[b].key.asymptotic_bits,
                   blocks[b].count < s->per_block ? " (incomplete: the window ends)" : "");
}

static int kagi__print_profile(const kagi__setup *s, const kagi_tle *tle, const kagi_fso_pass *ps,
                               size_t n)
{
    char a[KAGI_UTC_STRLEN];
    kagi__header(s, tle);
    if (!n) {
        printf("# no pass above %g deg in the window\n", s->min_el);
        return KAGI_OK;
    }
    for (size_t i = 0; i < n; i++) {
        kagi_fso_pass full;
        int e = kagi__resample(s, &ps[i], &full);
        if (e) return e;
        const kagi_fso_pass *p = &full;
        kagi__when(p->pass.aos, a);
        printf("# pass %zu, AOS %s, max elevation %.2f deg, key %.0f bit\n", i + 1, a,
               p->pass.max_el_deg, p->key.key_bits);
        printf("# %-22s %9s %9s %10s %9s %9s %-5s %12s %7s\n", "time (UTC)", "elevation",
               "azimuth", "range", "loss", "Sun el", "night", "clicks", "QBER");
        printf("# %-22s %9s %9s %10s %9s %9s %-5s %12s %7s\n", "", "(deg)", "(deg)", "(km)", "(dB)",
               "(deg)", "", "(1/s)", "(%)");
        for (size_t j = 0; j < p->npoints; j++) {
            const kagi_fso_point *q = &p->points[j];
            kagi__when(q->t, a);
            printf("  %-22s %9.3f %9.3f %10.3f %9.3f %9.3f %-5s %12.1f %7.3f\n", a, q->el_deg,
                   q->az_deg, q->range_km, q->loss_db, q->sun_el_deg, q->night ? "yes" : "no",
                   q->clicks_per_s, 100 * q->qber);
        }
        kagi_fso_pass_clear(&full);
    }
    return KAGI_OK;
}

/* The pass to draw: the most key; ties (no key anywhere) by elevation. */
static size_t kagi__best(const kagi_fso_pass *ps, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (ps[i].key.key_bits > ps[best].key.key_bits ||
            (ps[i].key.key_bits == ps[best].key.key_bits &&
             ps[i].pass.max_el_deg > ps[best].pass.max_el_deg))
            best = i;
    return best;
}

static int kagi__plot(const kagi_cli_cmd *cmd, const kagi__setup *s, const kagi_tle *tle,
                      const kagi_fso_pass *ps, size_t n, const char *const *light)
{
    kagi_fso_pass full;
    memset(&full, 0, sizeof full);
    char title[160], sub[256], a[KAGI_UTC_STRLEN];
    snprintf(title, sizeof title, "Pass of %s over %.4f, %.4f",
             tle->name[0] ? tle->name : tle->satnum, s->lat, s->lon);
    kagi_plot *pl = NULL;
    double *x = NULL, *el = NULL, *loss = NULL;
    int e = kagi_plot_new(&pl, title, "time since AOS (s)", "elevation (deg)", KAGI_PLOT_LINEAR);
    if (!e) e = kagi_plot_right_axis(pl, "link loss (dB)", KAGI_PLOT_LINEAR);
    if (!e && !n) {
        snprintf(sub, sizeof sub, "no pass above %g deg in the window; link %s", s->min_el,
                 s->link_name);
        e = kagi_plot_subtitle(pl, sub);
        if (!e) e = kagi_plot_series(pl, "elevation", NULL, NULL, 0, KAGI_PLOT_SOLID, 0);
        if (!e) e = kagi_plot_series(pl, "link loss", NULL, NULL, 0, KAGI_PLOT_DASHED, 1);
    } else if (!e) {
        size_t best = kagi__best(ps, n);
        e = kagi__resample(s, &ps[best], &full);
        const kagi_fso_pass *p = &full;
        size_t m = p->npoints;
        x = malloc((m ? m : 1) * sizeof *x);
        el = malloc((m ? m : 1) * sizeof *el);
        loss = malloc((m ? m : 1) * sizeof *loss);
        if (!e && (!x || !el || !loss)) e = KAGI_ERR_NOMEM;
        for (size_t j = 0; !e && j < m; j++) {
            x[j] = p->points[j].t - p->pass.aos;
            el[j] = p->points[j].el_deg;
            loss[j] = p->points[j].loss_db;
        }
        kagi__when(p->pass.aos, a);
        snprintf(sub, sizeof sub,
                 "AOS %s, max elevation %.1f deg, %.0f s, %s; key %.0f bit, QBER %.2f%%; link %s",
                 a, p->pass.max_el_deg, p->pass.los - p->pass.aos, light[best], p->key.key_bits,
                 100 * p->key.qber, s->link_name);
        if (!e) e = kagi_plot_subtitle(pl, sub);
        if (!e) e = kagi_plot_series(pl, "elevation", x, el, m, KAGI_PLOT_SOLID, 0);
        if (!e) e = kagi_plot_series(pl, "link loss", x, loss, m, KAGI_PLOT_DASHED, 1);
    }
    if (!e) e = kagi_plot_write(pl, s->plot);
    kagi_plot_free(pl);
    kagi_fso_pass_clear(&full);
    free(x);
    free(el);
    free(loss);
    if (e) {
        fprintf(stderr, "kagi %s: --plot: %s\n", cmd->name,
                kagi_errdetail()[0] ? kagi_errdetail() : kagi_strerror(e));
        return e == KAGI_ERR_ARG ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
    }
    return KAGI_EXIT_OK;
}

/* The element set named by --sat, or the only one. */
static int kagi__tle(const kagi_cli_cmd *cmd, kagi_tle **list, const kagi_tle **tle)
{
    const char *path = kagi_cli_get(cmd, "tle"), *id = kagi_cli_get(cmd, "sat");
    size_t count = 0;
    int e = kagi_tle_read_file(path, 0, list, &count);
    if (e) {
        fprintf(stderr, "kagi %s: --tle: %s\n", cmd->name, kagi_errdetail());
        return e == KAGI_ERR_FORMAT ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
    }
    *tle = *list;
    if (id) {
        *tle = kagi_tle_find(*list, count, id);
        if (!*tle)
            return kagi_cli_usage_error(cmd, "--sat: no set numbered or named '%s' in %s", id,
                                        path);
    } else if (count > 1) {
        return kagi_cli_usage_error(cmd, "--tle: %s holds %zu element sets: choose one with --sat",
                                    path, count);
    }
    return KAGI_EXIT_OK;
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    kagi__setup s;
    int rc = kagi__parse(cmd, &s);
    if (rc) return rc;
    kagi_tle *list = NULL;
    const kagi_tle *tle = NULL;
    kagi_pass *passes = NULL;
    kagi_fso_pass *ps = NULL;
    const char **light = NULL;
    kagi__block *blocks = NULL;
    size_t np = 0, nb = 0;
    if ((rc = kagi__tle(cmd, &list, &tle))) goto done;
    int e = kagi_sat_new(tle, &s.sat);
    if (e) {
        fprintf(stderr, "kagi %s: --tle: %s:%zu: %s\n", cmd->name, kagi_cli_get(cmd, "tle"),
                tle->source_line, kagi_errdetail());
        rc = e == KAGI_ERR_ARG ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
        goto done;
    }
    /* Every pass is modelled before anything is printed: an SGP4 failure
     * in the window (decay) prints the error alone. */
    e = kagi_passes(s.sat, &s.st, s.t0, s.t0 + s.hours * 3600.0, s.min_el, &passes, &np);
    if (!e && np) {
        ps = calloc(np, sizeof *ps);
        light = calloc(np, sizeof *light);
        blocks = calloc(np, sizeof *blocks);
        if (!ps || !light || !blocks) e = KAGI_ERR_NOMEM;
    }
    size_t kept = 0;
    for (size_t i = 0; !e && i < np; i++) {
        kagi_fso_pass *p = &ps[kept];
        e = kagi_fso_pass_run(s.sat, &s.st, &passes[i], &s.link, s.step, p);
        if (e) break;
        /* Keep the summary only (see kagi__resample). */
        light[kept] = kagi__light(p);
        free(p->points);
        p->points = NULL;
        p->npoints = 0;
        if (!s.night_only || p->night) kept++; /* --night-only: the night passes, in order */
    }
    np = e ? 0 : kept;
    nb = (np + s.per_block - 1) / s.per_block;
    for (size_t b = 0; !e && b < nb; b++) {
        blocks[b].first = b * s.per_block;
        blocks[b].count = np - blocks[b].first < s.per_block ? np - blocks[b].first : s.per_block;
        for (size_t i = 0; i < blocks[b].count; i++)
            kagi_fso_counts_add(&blocks[b].counts, &ps[blocks[b].first + i].counts);
        e = kagi_fso_key_of(&s.link, &blocks[b].counts, &blocks[b].key);
    }
    if (!e && s.json) e = kagi__print_json(&s, ps, np, blocks, light);
    if (!e && s.profile) e = kagi__print_profile(&s, tle, ps, np);
    if (!e && !s.json && !s.profile) kagi__print_table(&s, tle, ps, np, blocks, nb, light);
    if (e) {
        rc = kagi_cli_fail(cmd, e);
        if (rc == KAGI_EXIT_USAGE) rc = KAGI_EXIT_FAIL; /* SGP4 failing in the window */
        goto done;
    }
    rc = s.plot ? kagi__plot(cmd, &s, tle, ps, np, light) : KAGI_EXIT_OK;
done:
    free(ps); /* summaries only: no samples left to free */
    free(light);
    free(blocks);
    kagi_passes_free(passes);
    kagi_sat_free(s.sat);
    kagi_tle_free(list);
    return rc;
}

kagi_cli_cmd kagi_cmd_pass = {
    "pass", "satellite passes over a ground station: link loss and key per pass",
    "--tle FILE --station LAT,LON,ALT_M --from ISO8601 --hours H [--min-elevation DEG] "
    "[--link NAME] [link options] [--step S] [--passes-per-block N] [--night-only] "
    "[--json|--profile] [--plot FILE.svg]",
    "Finds every pass above --min-elevation in the window (SGP4, docs/orbit.md),\n"
    "samples each at --step and models the free-space link through it: Gaussian-\n"
    "beam diffraction into the receiving aperture, pointing jitter, atmosphere by\n"
    "air mass, optional turbulence, receiver optics; background by night or day at\n"
    "the station. Expected detections and errors of decoy BB84 are summed over the\n"
    "pass (or --passes-per-block passes) into one finite-key block (Lim et al.\n"
    "2014). loss is from the transmitter to the detectors' input, detector\n"
    "efficiency excluded. Presets (--link): micius (Liao et al., Nature 549, 43,\n"
    "2017); the other link options override the preset's values. --night-only\n"
    "keeps the passes wholly at night (Sun below -18 deg). --plot draws elevation\n"
    "and loss through the pass with the most key. No pass in the window is an\n"
    "empty list, not an error. See docs/freespace.md.",
    kagi__opts, kagi__run};
