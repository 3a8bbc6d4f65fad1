/* The fibre-link options that kagi keyrate and kagi link simulate share:
 * one parser, so both accept and reject the same values with the same
 * messages. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kagi/error.h"
#include "kagi/keyrate.h"

int kagi_cli_range(const kagi_cli_cmd *cmd, const char *opt, double lo, int lo_incl, double hi,
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

int kagi_cli_link(const kagi_cli_cmd *cmd, kagi_link *l, int p_x_below_1)
{
    int rc;
    if ((rc = kagi_cli_range(cmd, "fiber-loss", 0, 1, 100, 1, &l->fiber_loss_db_km)) ||
        (rc = kagi_cli_range(cmd, "extra-loss", 0, 1, 1000, 1, &l->extra_loss_db)) ||
        (rc = kagi_cli_range(cmd, "detector-efficiency", 0, 0, 1, 1, &l->det_eff)) ||
        (rc = kagi_cli_range(cmd, "dark-count", 0, 1, 1, 0, &l->dark_count)) ||
        (rc = kagi_cli_range(cmd, "afterpulse", 0, 1, 1, 0, &l->afterpulse)) ||
        (rc = kagi_cli_range(cmd, "dead-time", 0, 1, 1, 1, &l->dead_time_s)) ||
        (rc = kagi_cli_range(cmd, "misalignment", 0, 1, 0.5, 1, &l->misalignment)) ||
        (rc = kagi_cli_range(cmd, "mu", 0, 0, 100, 1, &l->mu[0])) ||
        (rc = kagi_cli_range(cmd, "decoy-mu", 0, 0, 100, 1, &l->mu[1])) ||
        (rc = kagi_cli_range(cmd, "vacuum-mu", 0, 1, 100, 1, &l->mu[2])) ||
        (rc = kagi_cli_range(cmd, "p-x", 0, 0, 1, !p_x_below_1, &l->p_x)) ||
        (rc = kagi_cli_range(cmd, "clock", 0, 0, 1e15, 1, &l->clock_hz)))
        return rc;
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
    return KAGI_EXIT_OK;
}

int kagi_cli_link_decoys(const kagi_cli_cmd *cmd, const kagi_link *l)
{
    if (!(l->mu[1] < l->mu[0]))
        return kagi_cli_usage_error(cmd, "--decoy-mu: %g is not below the signal --mu %g",
                                    l->mu[1], l->mu[0]);
    if (!(l->mu[2] < l->mu[1]))
        return kagi_cli_usage_error(cmd, "--vacuum-mu: %g is not below the decoy --decoy-mu %g",
                                    l->mu[2], l->mu[1]);
    if (!(l->mu[0] > l->mu[1] + l->mu[2]))
        return kagi_cli_usage_error(
            cmd, "--mu: %g is not above --decoy-mu + --vacuum-mu = %g (need mu1 > mu2 + mu3)",
            l->mu[0], l->mu[1] + l->mu[2]);
    return KAGI_EXIT_OK;
}
