/* kagi link simulate: event-level Monte Carlo of one fibre link into a
 * pair of raw detection files (docs/linksim.md, docs/raw-format.md). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "internal.h"
#include "kagi/error.h"
#include "kagi/keyrate.h"
#include "kagi/linksim.h"

static kagi_cli_opt kagi__opts[] = {
    {"distance", "KM", "Alice-Bob fibre length, km", 1, NULL},
    {"pulses", "N", "pulses to send (this or --seconds)", 0, NULL},
    {"seconds", "S", "send S times --clock pulses (this or --pulses)", 0, NULL},
    {"seed", "K", "seed of the generator, 0 to 2^64-1: the same seed gives the same files", 1, NULL},
    {"out-alice", "FA", "Alice's raw file: index, basis, bit, intensity class (replaced atomically)", 1, NULL},
    {"out-bob", "FB", "Bob's raw file: index, basis, bit (replaced atomically)", 1, NULL},
    {"eve", "F", "fraction of pulses an intercept-resend eavesdropper measures, [0, 1] (default 0)", 0, NULL},
    {"fiber-loss", "DB_PER_KM", "fibre attenuation, dB/km (default 0.2)", 0, NULL},
    {"extra-loss", "DB", "insertion loss before the detectors, dB (default 0)", 0, NULL},
    {"detector-efficiency", "X", "Bob's whole transmittance times detection efficiency (default 0.1)", 0, NULL},
    {"dark-count", "Y0", "click probability per pulse without light, all detectors (default 1.2e-6)", 0, NULL},
    {"afterpulse", "P", "probability a click brings an extra random click (default 0.04)", 0, NULL},
    {"dead-time", "SECONDS", "detector dead time after each click (default 0)", 0, NULL},
    {"misalignment", "ED", "probability a detected photon flips, e_d (default 0.005)", 0, NULL},
    {"mu", "M", "signal intensity, photons per pulse (default 0.45)", 0, NULL},
    {"decoy-mu", "NU", "decoy intensity (default 0.2)", 0, NULL},
    {"vacuum-mu", "W", "weak-vacuum intensity (default 2e-4)", 0, NULL},
    {"p-mu", "PS,PD", "probabilities of signal and decoy; the vacuum gets the rest (default 0.4,0.4)", 0, NULL},
    {"p-x", "P", "probability of the key basis on both sides (default 0.85)", 0, NULL},
    {"clock", "HZ", "pulse rate (default 1e9)", 0, NULL},
    {"json", NULL, "print the summary as JSON on stdout", 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

/* A number of option opt in [lo, hi] (each end open unless *_incl); the
 * same rules and messages as kagi keyrate. */
static int kagi__num(const kagi_cli_cmd *cmd, const char *opt, double lo, int lo_incl, double hi,
                     int hi_incl, double *out)
{
    const char *s = kagi_cli_get(cmd, opt);
    if (!s) return KAGI_EXIT_OK;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end || !isfinite(d) || errno == ERANGE)
        return kagi_cli_usage_error(cmd, "--%s: '%s' is not a number", opt, s);
    if (!((lo_incl ? d >= lo : d > lo) && (hi_incl ? d <= hi : d < hi)))
        return kagi_cli_usage_error(cmd, "--%s: must lie in %s%g, %g%s, got %s", opt,
                                    lo_incl ? "[" : "(", lo, hi, hi_incl ? "]" : ")", s);
    *out = d;
    return KAGI_EXIT_OK;
}

/* Options into the simulation; usage errors print one line and give 2. */
static int kagi__parse(const kagi_cli_cmd *cmd, kagi_linksim *p)
{
    int rc;
    kagi_link *l = &p->link;
    memset(p, 0, sizeof *p);
    kagi_link_defaults(l);
    size_t seed = 0, pulses = 0;
    double seconds = 0;
    if ((rc = kagi__num(cmd, "distance", 0, 1, 1e5, 1, &l->distance_km)) ||
        (rc = kagi_cli_size(cmd, "seed", 0, &seed)) ||
        (rc = kagi__num(cmd, "eve", 0, 1, 1, 1, &p->eve)) ||
        (rc = kagi__num(cmd, "fiber-loss", 0, 1, 100, 1, &l->fiber_loss_db_km)) ||
        (rc = kagi__num(cmd, "extra-loss", 0, 1, 1000, 1, &l->extra_loss_db)) ||
        (rc = kagi__num(cmd, "detector-efficiency", 0, 0, 1, 1, &l->det_eff)) ||
        (rc = kagi__num(cmd, "dark-count", 0, 1, 1, 0, &l->dark_count)) ||
        (rc = kagi__num(cmd, "afterpulse", 0, 1, 1, 0, &l->afterpulse)) ||
        (rc = kagi__num(cmd, "dead-time", 0, 1, 1, 1, &l->dead_time_s)) ||
        (rc = kagi__num(cmd, "misalignment", 0, 1, 0.5, 1, &l->misalignment)) ||
        (rc = kagi__num(cmd, "mu", 0, 0, 100, 1, &l->mu[0])) ||
        (rc = kagi__num(cmd, "decoy-mu", 0, 0, 100, 1, &l->mu[1])) ||
        (rc = kagi__num(cmd, "vacuum-mu", 0, 1, 100, 1, &l->mu[2])) ||
        (rc = kagi__num(cmd, "p-x", 0, 0, 1, 1, &l->p_x)) ||
        (rc = kagi__num(cmd, "clock", 0, 0, 1e15, 1, &l->clock_hz)))
        return rc;
    p->seed = (uint64_t)seed;
    const char *pm = kagi_cli_get(cmd, "p-mu");
    if (pm) {
        char *end;
        double a = strtod(pm, &end), b = -1;
        if (*end == ',') b = strtod(end + 1, &end);
        if (*end || !(a > 0) || !(b > 0) || !(a + b < 1))
            return kagi_cli_usage_error(
                cmd, "--p-mu: '%s' is not PS,PD with both positive and PS + PD < 1", pm);
        l->p_mu[0] = a;
        l->p_mu[1] = b;
        l->p_mu[2] = 1 - a - b;
    }
    if (!(l->mu[1] < l->mu[0]))
        return kagi_cli_usage_error(cmd, "--decoy-mu: %g is not below the signal --mu %g",
                                    l->mu[1], l->mu[0]);
    if (!(l->mu[2] < l->mu[1]))
        return kagi_cli_usage_error(cmd, "--vacuum-mu: %g is not below the decoy --decoy-mu %g",
                                    l->mu[2], l->mu[1]);
    if (!(l->mu[0] > l->mu[1] + l->mu[2]))
        return kagi_cli_usage_error(
            cmd, "--mu: %g is not above --decoy-mu + --vacuum-mu = %g (Lim et al. need mu1 > mu2 + mu3)",
            l->mu[0], l->mu[1] + l->mu[2]);

    int has_p = kagi_cli_get(cmd, "pulses") != NULL, has_s = kagi_cli_get(cmd, "seconds") != NULL;
    if (has_p == has_s)
        return kagi_cli_usage_error(cmd, has_p ? "--pulses and --seconds exclude each other"
                                               : "missing --pulses N or --seconds S");
    if (has_p) {
        if ((rc = kagi_cli_size(cmd, "pulses", 1, &pulses))) return rc;
        if ((uint64_t)pulses > ((uint64_t)1 << 60))
            return kagi_cli_usage_error(cmd, "--pulses: %zu is more than 2^60", pulses);
        p->pulses = pulses;
    } else {
        if ((rc = kagi__num(cmd, "seconds", 0, 0, 1e12, 1, &seconds))) return rc;
        double n = round(seconds * l->clock_hz);
        if (n < 1)
            return kagi_cli_usage_error(cmd, "--seconds: %g s at --clock %g Hz is less than one pulse",
                                        seconds, l->clock_hz);
        if (n > 0x1.0p60)
            return kagi_cli_usage_error(cmd, "--seconds: %g s at --clock %g Hz is more than 2^60 pulses",
                                        seconds, l->clock_hz);
        p->pulses = (uint64_t)n;
    }
    return KAGI_EXIT_OK;
}

/* Progress on a terminal, at most twice a second. */
typedef struct kagi__prog {
    double t0, last;
    int shown;
} kagi__prog;

static void kagi__progress(void *ctx, uint64_t done, uint64_t pulses)
{
    kagi__prog *g = ctx;
    double now = kagi__now();
    if (done < pulses && now - g->last < 0.5) return;
    g->last = now;
    if (done < pulses) {
        fprintf(stderr, "\rkagi link: %5.1f%% of %.3g pulses, %.0f s", 100.0 * (double)done / (double)pulses,
                (double)pulses, now - g->t0);
        g->shown = 1;
    } else if (g->shown) {
        fprintf(stderr, "\r%60s\r", "");
    }
}

static double kagi__ratio(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0; }

static void kagi__report(const kagi_cli_cmd *cmd, const kagi_linksim *p, const kagi_linksim_stats *st)
{
    const kagi_link *l = &p->link;
    double qx = kagi__ratio(st->errors_x, st->sifted_x), qz = kagi__ratio(st->errors_z, st->sifted_z);
    double pps = st->seconds > 0 ? (double)st->pulses / st->seconds : 0;
    double dps = st->seconds > 0 ? (double)st->detections / st->seconds : 0;
    if (kagi_cli_flag(cmd, "json")) {
        printf("{\"distance_km\": %.15g, \"pulses\": %" PRIu64 ", \"link_seconds\": %.15g, "
               "\"seed\": %" PRIu64 ", \"eve\": %.15g, \"eta\": %.6g, \"detections\": %" PRIu64
               ", \"detections_per_pulse\": %.6g, \"by_class\": [%" PRIu64 ", %" PRIu64 ", %" PRIu64
               "], \"sifted_x\": %" PRIu64 ", \"errors_x\": %" PRIu64 ", \"qber_x\": %.6f, "
               "\"sifted_z\": %" PRIu64 ", \"errors_z\": %" PRIu64 ", \"qber_z\": %.6f, "
               "\"dark_only\": %" PRIu64 ", \"double_clicks\": %" PRIu64 ", \"afterpulses\": %" PRIu64
               ", \"dead_pulses\": %" PRIu64 ", \"alice_bytes\": %" PRIu64 ", \"bob_bytes\": %" PRIu64
               ", \"seconds\": %.6f, \"sample_seconds\": %.6f, \"pulses_per_second\": %.6g, "
               "\"detections_per_second\": %.6g}\n",
               l->distance_km, st->pulses, (double)st->pulses / l->clock_hz, p->seed, p->eve,
               kagi_link_eta(l), st->detections, kagi__ratio(st->detections, st->pulses),
               st->by_class[0], st->by_class[1], st->by_class[2], st->sifted_x, st->errors_x, qx,
               st->sifted_z, st->errors_z, qz, st->dark_only, st->double_clicks, st->afterpulses,
               st->dead_pulses, st->alice_bytes, st->bob_bytes, st->seconds, st->sample_seconds,
               pps, dps);
        return;
    }
    const char *n = cmd->name;
    fprintf(stderr, "kagi %s: %g km, %" PRIu64 " pulses (%.6g s at %g Hz), seed %" PRIu64 "%s\n", n,
            l->distance_km, st->pulses, (double)st->pulses / l->clock_hz, l->clock_hz, p->seed,
            p->eve > 0 ? ", intercept-resend on a fraction of pulses" : "");
    fprintf(stderr, "  detections: %" PRIu64 " (%.4g per pulse): signal %" PRIu64 ", decoy %" PRIu64
                    ", vacuum %" PRIu64 "\n",
            st->detections, kagi__ratio(st->detections, st->pulses), st->by_class[0],
            st->by_class[1], st->by_class[2]);
    fprintf(stderr, "  sifted: X %" PRIu64 " bits, QBER %.3f%%; Z %" PRIu64 " bits, QBER %.3f%%\n",
            st->sifted_x, 100 * qx, st->sifted_z, 100 * qz);
    fprintf(stderr, "  dark-only clicks %" PRIu64 ", double clicks %" PRIu64 ", after-pulses %" PRIu64
                    ", pulses lost to dead time %" PRIu64 "\n",
            st->dark_only, st->double_clicks, st->afterpulses, st->dead_pulses);
    fprintf(stderr, "  files: Alice %.3f MB, Bob %.3f MB (%.2f bytes per record)\n",
            (double)st->alice_bytes / 1e6, (double)st->bob_bytes / 1e6,
            kagi__ratio(st->alice_bytes + st->bob_bytes, 2 * st->detections));
    fprintf(stderr, "  time: %.3f s (sampling %.3f s), %.3g pulses/s, %.3g detections/s\n",
            st->seconds, st->sample_seconds, pps, dps);
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    kagi_linksim p;
    int rc = kagi__parse(cmd, &p);
    if (rc) return rc;
    kagi__prog prog = {kagi__now(), kagi__now(), 0};
    if (isatty(STDERR_FILENO)) {
        p.progress = kagi__progress;
        p.progress_ctx = &prog;
    }
    kagi_linksim_stats st;
    int e = kagi_linksim_run(&p, kagi_cli_get(cmd, "out-alice"), kagi_cli_get(cmd, "out-bob"), &st);
    if (e) {
        if (prog.shown) fputc('\n', stderr);
        return kagi_cli_fail(cmd, e);
    }
    kagi__report(cmd, &p, &st);
    return KAGI_EXIT_OK;
}

kagi_cli_cmd kagi_cmd_link = {
    "link", "simulate a fibre link event by event into raw detection files",
    "simulate --distance KM (--pulses N | --seconds S) --seed K --out-alice FA --out-bob FB\n"
    "       [--eve F] [link options as in kagi keyrate] [--json]",
    "Monte Carlo of BB84 with decoy states over one fibre link: Alice sends\n"
    "phase-randomised weak coherent pulses of three intensities in the X (key)\n"
    "or Z (test) basis, Bob detects with dark counts, after-pulses and a dead\n"
    "time, and an optional intercept-resend eavesdropper measures a fraction of\n"
    "the pulses. Only the gaps between clicks are drawn, so the cost grows with\n"
    "detections, not pulses. FA and FB hold one record per detection (see\n"
    "docs/raw-format.md) and are written atomically; a summary goes to stderr,\n"
    "or JSON to stdout with --json. See docs/linksim.md.",
    kagi__opts, kagi__run};
