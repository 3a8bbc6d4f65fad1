/* kagi/plot.h: line charts as standalone SVG files, for reports a user can
 * put in a paper: key rate against distance on a log axis, elevation and
 * loss through a satellite pass on two y axes, pool levels over time.
 * No key material ever goes through here, only counts and rates. */
#ifndef KAGI_PLOT_H
#define KAGI_PLOT_H

#include <stddef.h>

#include "kagi/bits.h"

typedef struct kagi_plot kagi_plot;

enum { KAGI_PLOT_LINEAR = 0, KAGI_PLOT_LOG = 1 };
enum { KAGI_PLOT_SOLID = 0, KAGI_PLOT_DASHED = 1, KAGI_PLOT_DOTTED = 2 };

/* A chart with a title and axis labels (units in the labels, e.g.
 * "distance (km)"). yscale applies to the left axis. */
int kagi_plot_new(kagi_plot **out, const char *title, const char *xlabel, const char *ylabel,
                  int yscale) KAGI_NODISCARD;
/* Add a second y axis on the right (label and scale); series with
 * right = 1 use it. */
int kagi_plot_right_axis(kagi_plot *p, const char *ylabel, int yscale) KAGI_NODISCARD;
/* Copy n points of a series. On a log axis, points with y <= 0 or
 * non-finite are left out (a rate of 0 ends the curve, it is not drawn
 * at the bottom of the chart). */
int kagi_plot_series(kagi_plot *p, const char *name, const double *x, const double *y, size_t n,
                     int style, int right) KAGI_NODISCARD;
/* Write the SVG atomically (temporary file, then rename). */
int kagi_plot_write(const kagi_plot *p, const char *path) KAGI_NODISCARD;
void kagi_plot_free(kagi_plot *p);

#endif
