/* Internals of plot.c that its tests check directly (not installed). */
#ifndef KAGI_PLOT_INTERNAL_H
#define KAGI_PLOT_INTERNAL_H

#include <stddef.h>

#define KAGI__PLOT_MAX_MAJOR 16
#define KAGI__PLOT_MAX_MINOR 96

typedef struct kagi__ticks {
    int log;                  /* KAGI_PLOT_LOG or KAGI_PLOT_LINEAR */
    double lo, hi;            /* axis range; both ends are major ticks */
    size_t nmajor, nminor;
    double major[KAGI__PLOT_MAX_MAJOR]; /* labelled ticks, ascending */
    double minor[KAGI__PLOT_MAX_MINOR]; /* log only: 2..9 x 10^k, or the
                                           unlabelled decades when labels
                                           skip some */
    int decimals;             /* linear: digits after '.' in labels, -1: %.6g */
} kagi__ticks;

/* Ticks for data spanning [lo, hi] (lo <= hi; equal is fine). Linear: the
 * 1-2-5 step giving closest to 6 intervals, the range widened to whole
 * steps; a degenerate range is first widened by 10% of its value (or 1
 * around 0). Log: whole decades around the data, at least one below and
 * above a single power of ten; past 8 decades only every m-th is labelled.
 * KAGI_ERR_ARG for non-finite bounds, |bound| > 1e200, or a log bound
 * outside [1e-200, 1e200]. */
int kagi__plot_ticks(kagi__ticks *t, double lo, double hi, int scale);

#endif
