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
    KAGI_CLI_LINK_OPTS,
    {"json", NULL, "print the summary as JSON on stdout", 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

/* Options into the simulation; usage errors print one line and give 2. */
static int kagi__parse(const kagi_cli_cmd *cmd, kagi_linksim *p)
{
    int rc;
    kagi_link *l = &p->link;
    memset(p, 0, sizeof *p);
    kagi_link_defaults(l);
    size_t seed = 0, pulses = 0;
    double seconds = 0;
    if ((rc = kagi_cli_range(cmd, "distance", 0, 1, 1e5, 1, &l->distance_km)) ||
        (rc = kagi_cli_size(cmd, "seed", 0, &seed)) ||
        (rc = kagi_cli_range(cmd, "eve", 0, 1, 1, 1, &p->eve)) ||
        (rc = kagi_cli_link(cmd, l, 0)) || (rc = kagi_cli_link_decoys(cmd, l)))
        return rc;
    p->seed = (uint64_t)seed;

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
        if ((rc = kagi_cli_range(cmd, "seconds", 0, 0, 1e12, 1, &seconds))) return rc;
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
