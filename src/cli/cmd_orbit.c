/* kagi orbit: TEME states of a satellite from its two-line elements. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kagi/error.h"
#include "kagi/orbit.h"

#define KAGI__MAX_ROWS 10000000.0

static kagi_cli_opt kagi__opts[] = {
    {"tle", "FILE", "element sets, 2- or 3-line form", 1, NULL},
    {"minutes", "A:B:STEP", "minutes from the epoch: A to B (included) every STEP", 1, NULL},
    {"sat", "ID", "catalogue number or name, when FILE holds several sets", 0, NULL},
    {"json", NULL, "JSON array instead of a table", 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

/* A:B:STEP with A <= B and STEP > 0. */
static int kagi__parse_range(const kagi_cli_cmd *cmd, const char *s, double *a, double *b,
                             double *step)
{
    double v[3];
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        char *end;
        errno = 0;
        v[i] = strtod(p, &end);
        if (end == p || !isfinite(v[i]) || errno == ERANGE || *end != (i < 2 ? ':' : '\0'))
            return kagi_cli_usage_error(cmd, "--minutes: '%s' is not A:B:STEP (three numbers)", s);
        p = end + 1;
    }
    if (v[1] < v[0])
        return kagi_cli_usage_error(cmd, "--minutes: end %g is before start %g", v[1], v[0]);
    if (!(v[2] > 0))
        return kagi_cli_usage_error(cmd, "--minutes: STEP must be positive, got %g", v[2]);
    if ((v[1] - v[0]) / v[2] > KAGI__MAX_ROWS)
        return kagi_cli_usage_error(cmd, "--minutes: %g to %g every %g is more than %.0f rows",
                                    v[0], v[1], v[2], KAGI__MAX_ROWS);
    *a = v[0];
    *b = v[1];
    *step = v[2];
    return KAGI_EXIT_OK;
}

typedef struct kagi__state { double t, r[3], v[3]; } kagi__state;

static void kagi__print(const kagi_tle *tle, const kagi__state *st, size_t n, int json)
{
    char when[KAGI_UTC_STRLEN];
    if (json) {
        printf("[\n");
        for (size_t i = 0; i < n; i++) {
            if (kagi_utc_format(tle->epoch + st[i].t * 60.0, 3, when, sizeof when)) when[0] = 0;
            printf("  {\"minutes\": %.8f, \"utc\": \"%s\", \"r_km\": [%.8f, %.8f, %.8f], "
                   "\"v_km_s\": [%.9f, %.9f, %.9f]}%s\n",
                   st[i].t, when, st[i].r[0], st[i].r[1], st[i].r[2], st[i].v[0], st[i].v[1],
                   st[i].v[2], i + 1 < n ? "," : "");
        }
        printf("]\n");
        return;
    }
    if (kagi_utc_format(tle->epoch, 3, when, sizeof when)) when[0] = 0;
    printf("# %s%s%s, epoch %s; TEME frame (SGP4)\n", tle->satnum, tle->name[0] ? " " : "",
           tle->name, when);
    printf("# %14s  %-24s %16s %16s %16s %13s %13s %13s\n", "minutes", "UTC", "x (km)", "y (km)",
           "z (km)", "vx (km/s)", "vy (km/s)", "vz (km/s)");
    for (size_t i = 0; i < n; i++) {
        if (kagi_utc_format(tle->epoch + st[i].t * 60.0, 3, when, sizeof when)) when[0] = 0;
        printf("  %14.6f  %-24s %16.8f %16.8f %16.8f %13.9f %13.9f %13.9f\n", st[i].t, when,
               st[i].r[0], st[i].r[1], st[i].r[2], st[i].v[0], st[i].v[1], st[i].v[2]);
    }
}

static int kagi__run(kagi_cli_cmd *cmd)
{
    double a = 0, b = 0, step = 1;
    int rc = kagi__parse_range(cmd, kagi_cli_get(cmd, "minutes"), &a, &b, &step);
    if (rc) return rc;
    const char *path = kagi_cli_get(cmd, "tle"), *id = kagi_cli_get(cmd, "sat");
    kagi_tle *list = NULL;
    size_t count = 0;
    int e = kagi_tle_read_file(path, 0, &list, &count);
    if (e) {
        /* A TLE that does not parse is the user's input to fix: exit 2. */
        fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
        return e == KAGI_ERR_FORMAT ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
    }
    const kagi_tle *tle = list;
    if (id) {
        tle = kagi_tle_find(list, count, id);
        if (!tle) {
            kagi_tle_free(list);
            return kagi_cli_usage_error(cmd, "--sat: no set numbered or named '%s' in %s", id,
                                        path);
        }
    } else if (count > 1) {
        size_t n = count;
        kagi_tle_free(list);
        return kagi_cli_usage_error(cmd, "%s holds %zu element sets: choose one with --sat", path,
                                    n);
    }
    kagi_sat *sat = NULL;
    e = kagi_sat_new(tle, &sat);
    if (e) {
        fprintf(stderr, "kagi %s: %s:%zu: %s\n", cmd->name, path, tle->source_line,
                kagi_errdetail());
        kagi_tle_free(list);
        return e == KAGI_ERR_ARG ? KAGI_EXIT_USAGE : KAGI_EXIT_FAIL;
    }
    /* Rows at A + i STEP below B, then B itself. */
    size_t n = (size_t)floor((b - a) / step * (1.0 + 1e-12)) + 1;
    int add_end = a + (double)(n - 1) * step < b - 1e-9 * step;
    size_t rows = n + (size_t)add_end;
    kagi__state *st = malloc(rows * sizeof *st);
    if (!st) {
        kagi_sat_free(sat);
        kagi_tle_free(list);
        return kagi_cli_fail(cmd, KAGI_ERR_NOMEM);
    }
    /* Every state first: a decay in the range prints nothing but the
     * error, so no half table is mistaken for a whole one. */
    for (size_t i = 0; i < rows && !e; i++) {
        st[i].t = i < n ? a + (double)i * step : b;
        e = kagi_sat_propagate(sat, st[i].t, st[i].r, st[i].v);
    }
    if (!e) kagi__print(tle, st, rows, kagi_cli_flag(cmd, "json"));
    free(st);
    kagi_sat_free(sat);
    kagi_tle_free(list);
    if (e) {
        fprintf(stderr, "kagi %s: %s\n", cmd->name, kagi_errdetail());
        return KAGI_EXIT_FAIL;
    }
    return KAGI_EXIT_OK;
}

kagi_cli_cmd kagi_cmd_orbit = {
    "orbit", "satellite position and velocity from two-line elements (SGP4)",
    "--tle FILE --minutes A:B:STEP [--sat ID] [--json]",
    "Propagates a TLE with SGP4/SDP4 (Vallado et al. 2006, WGS-72) and prints\n"
    "the TEME position (km) and velocity (km/s) at minutes A, A+STEP, ... and B\n"
    "after the element set's epoch (negative minutes go back). A TLE that does\n"
    "not parse is named by file:line:column (exit 2); a satellite that decays\n"
    "within the range is an error naming the time (exit 1). See docs/orbit.md.",
    kagi__opts, kagi__run};
