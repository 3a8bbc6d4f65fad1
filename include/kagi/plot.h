/* kagi/plot.h: line charts as standalone SVG files, for reports a user can
 * put in a paper: key rate against distance on a log axis, elevation and
 * loss through a satellite pass on two y axes, pool levels over time.
 * No key material ever goes through here, only counts and rates.
 *
 * A chart is an SVG 1.1 file with a fixed 720x450 viewBox, sans-serif text,
 * a linear x axis, one or two y axes (linear with 1-2-5 ticks, or log with
 * decades labelled 10^k and minor ticks at 2..9), light grey gridlines and
 * a legend. Series take the Okabe-Ito colours (readable with any colour
 * vision) in the order they are added. Numbers are written with '.' as the
 * decimal point whatever the locale.
 *
 * Strings (title, labels, names) are copied; "" leaves one out; NULL, more
 * than 512 bytes, control characters or invalid UTF-8 give KAGI_ERR_ARG. */
#ifndef KAGI_PLOT_H
#define KAGI_PLOT_H

#include <stddef.h>

#include "kagi/bits.h"

typedef struct kagi_plot kagi_plot;

enum { KAGI_PLOT_LINEAR = 0, KAGI_PLOT_LOG = 1 };
enum { KAGI_PLOT_SOLID = 0, KAGI_PLOT_DASHED = 1, KAGI_PLOT_DOTTED = 2 };

/* A chart with a title and axis labels (units in the labels, e.g.
 * "distance (km)"). yscale applies to the left axis. *out is freed with
 * kagi_plot_free. */
int kagi_plot_new(kagi_plot **out, const char *title, const char *xlabel, const char *ylabel,
                  int yscale) KAGI_NODISCARD KAGI_NONNULL(1);
/* One smaller line under the title, e.g. the parameters behind a curve.
 * Calling it again replaces the line. */
int kagi_plot_subtitle(kagi_plot *p, const char *text) KAGI_NODISCARD KAGI_NONNULL(1);
/* Add a second y axis on the right (label and scale); series with
 * right = 1 use it. Call before adding such series; once only. */
int kagi_plot_right_axis(kagi_plot *p, const char *ylabel, int yscale) KAGI_NODISCARD
    KAGI_NONNULL(1);
/* Copy n points of a series (x and y may be freed after the call; with
 * n = 0 they may be NULL and the series is only listed in the legend).
 * Points with a non-finite x or y are left out and the line is broken
 * there; on a log axis so are points with y <= 0 (a rate of 0 ends the
 * curve, it is not drawn at the bottom of the chart). Values beyond 1e200
 * in magnitude, or below 1e-200 on a log axis, count as non-finite. The
 * x range covers every finite x, so a curve that ends early shows it.
 * At most 16 series of at most 2^20 points each. */
int kagi_plot_series(kagi_plot *p, const char *name, const double *x, const double *y, size_t n,
                     int style, int right) KAGI_NODISCARD KAGI_NONNULL(1);
/* A vertical dotted line at x with a short label at its top (e.g. where the
 * rate ends); the x range grows to include it. At most 16 markers. */
int kagi_plot_marker(kagi_plot *p, double x, const char *label) KAGI_NODISCARD KAGI_NONNULL(1);
/* Write the SVG atomically: a temporary file in the same directory,
 * fsync, then rename over path (mode 0644). On failure nothing is left
 * behind and the error is KAGI_ERR_IO with a detail naming path. An axis
 * with nothing to draw gets an empty plot area and a note ("no positive
 * values" on a log axis) instead of an error. */
int kagi_plot_write(const kagi_plot *p, const char *path) KAGI_NODISCARD KAGI_NONNULL(1);
/* Accepts NULL. */
void kagi_plot_free(kagi_plot *p);

#endif
