/* Line charts as standalone SVG 1.1 files (see kagi/plot.h).
 *
 * kagi_plot_write works in three steps: axis ranges and ticks from the
 * data (kagi__plot_ticks); pixel positions of every point, margins wide
 * enough for the tick labels, and the legend corner that hides the fewest
 * points; then the SVG text, written to a temporary file renamed into
 * place. Every double goes through kagi__num, never straight through
 * stdio, so the decimal point is '.' whatever LC_NUMERIC says. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kagi/plot.h"
#include "plot_internal.h"

#define KAGI__PLOT_MAX_SERIES 16
#define KAGI__PLOT_MAX_MARKERS 16
#define KAGI__PLOT_MAX_POINTS ((size_t)1 << 20)
#define KAGI__PLOT_MAX_TEXT 512
#define KAGI__PLOT_BIG 1e200

/* The viewBox, and the fixed parts of the layout (pixels). */
enum { KAGI__W = 720, KAGI__H = 450, KAGI__TOP = 46, KAGI__TOP_SUB = 64, KAGI__BOTTOM = 58 };

typedef struct kagi__series {
    char *name;
    double *xy; /* x[0..n) then y[0..n), owned */
    size_t n;
    int style, right;
} kagi__series;

typedef struct kagi__marker {
    double x;
    char *label;
} kagi__marker;

struct kagi_plot {
    char *title, *subtitle, *xlabel, *ylabel[2];
    int yscale[2], has_right;
    kagi__series s[KAGI__PLOT_MAX_SERIES];
    size_t ns;
    kagi__marker m[KAGI__PLOT_MAX_MARKERS];
    size_t nm;
};

/* Okabe & Ito (2008), darkest first; yellow last as it is faint on white. */
static const char *const kagi__palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                            "#E69F00", "#56B4E9", "#000000", "#F0E442"};
static const char *const kagi__dash[] = {"", " stroke-dasharray=\"7 4\"",
                                         " stroke-dasharray=\"2 3\""};

/* ---- ticks ---------------------------------------------------------- */

static int kagi__drawable(double v, int log_axis)
{
    if (!isfinite(v) || fabs(v) > KAGI__PLOT_BIG) return 0;
    return !log_axis || v >= 1 / KAGI__PLOT_BIG;
}

/* a * 10^k, correctly rounded for small a (0.1 * 3 is not 0.3, 3 / 10 is). */
static double kagi__p10(double a, long k)
{
    return k >= 0 ? a * pow(10, (double)k) : a / pow(10, (double)-k);
}

static long kagi__floordiv(long a, long m) { return a >= 0 ? a / m : -((-a + m - 1) / m); }

static void kagi__ticks_linear(kagi__ticks *t, double lo, double hi)
{
    if (hi - lo <= fmax(1e-9 * fmax(fabs(lo), fabs(hi)), 1 / KAGI__PLOT_BIG)) {
        double c = lo / 2 + hi / 2, pad = fabs(c) > 1 / KAGI__PLOT_BIG ? fabs(c) / 10 : 1;
        lo = c - pad;
        hi = c + pad;
    }
    static const double mult[3] = {1, 2, 5};
    long e = (long)floor(log10((hi - lo) / 6)), bk = 0;
    double best = INFINITY, bm = 1, b0 = 0, b1 = 0;
    for (long k = e - 1; k <= e + 1; k++)
        for (int j = 0; j < 3; j++) {
            double step = kagi__p10(mult[j], k);
            double n0 = floor(lo / step + 1e-9), n1 = ceil(hi / step - 1e-9);
            double score = fabs(n1 - n0 - 6);
            /* <= : on a tie the larger step (fewer labels) wins. The
             * largest step always fits, so some candidate is taken. */
            if (n1 - n0 < KAGI__PLOT_MAX_MAJOR && score <= best) {
                best = score, bk = k, bm = mult[j], b0 = n0, b1 = n1;
            }
        }
    for (double i = b0; i <= b1; i++) {
        double v = kagi__p10(i * bm, bk);
        t->major[t->nmajor++] = v == 0 ? 0 : v; /* no -0 */
    }
    t->lo = t->major[0];
    t->hi = t->major[t->nmajor - 1];
    t->decimals = bk < 0 ? (int)-bk : 0;
    if (t->decimals > 12 || bk >= 15) t->decimals = -1;
}

static void kagi__ticks_log(kagi__ticks *t, double lo, double hi)
{
    long k0 = (long)floor(log10(lo) + 1e-9), k1 = (long)ceil(log10(hi) - 1e-9);
    if (k1 <= k0) { /* a single power of ten: one decade either side */
        k1 = k0 + 1;
        k0--;
    }
    long m = k1 - k0 <= 8 ? 1 : (k1 - k0 + 7) / 8; /* at most 9 labelled decades */
    k0 = kagi__floordiv(k0, m) * m;
    k1 = -kagi__floordiv(-k1, m) * m;
    for (long k = k0; k <= k1 && t->nmajor < KAGI__PLOT_MAX_MAJOR; k += m)
        t->major[t->nmajor++] = kagi__p10(1, k);
    for (long k = k0; k < k1; k++) {
        if (m == 1) {
            for (int j = 2; j <= 9 && t->nminor < KAGI__PLOT_MAX_MINOR; j++)
                t->minor[t->nminor++] = kagi__p10(j, k);
        } else if (m <= 10 && (k - k0) % m != 0 && t->nminor < KAGI__PLOT_MAX_MINOR) {
            t->minor[t->nminor++] = kagi__p10(1, k);
        }
    }
    t->lo = t->major[0];
    t->hi = kagi__p10(1, k1);
    t->decimals = -1;
}

int kagi__plot_ticks(kagi__ticks *t, double lo, double hi, int scale)
{
    memset(t, 0, sizeof *t);
    t->log = scale == KAGI_PLOT_LOG;
    if (lo > hi) {
        double s = lo;
        lo = hi;
        hi = s;
    }
    KAGI__FAIL_IF(!kagi__drawable(lo, t->log) || !kagi__drawable(hi, t->log), KAGI_ERR_ARG,
                  "plot: no %s axis can span [%g, %g]", t->log ? "log" : "linear", lo, hi);
    if (t->log)
        kagi__ticks_log(t, lo, hi);
    else
        kagi__ticks_linear(t, lo, hi);
    return KAGI_OK;
}

/* ---- building a chart ----------------------------------------------- */

/* Byte offset of the first control character or invalid UTF-8 (overlong,
 * surrogate, past U+10FFFF, or U+FFFE/U+FFFF, which XML forbids) in s,
 * or -1 if there is none. */
static long kagi__bad_text(const char *s)
{
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; u[i];) {
        unsigned c = u[i];
        size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (len == 0 || (len == 1 && (c < 0x20 || c == 0x7f))) return (long)i;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((u[i + k] & 0xc0) != 0x80) return (long)i; /* NUL stops here too */
            cp = cp << 6 | (u[i + k] & 0x3f);
        }
        if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe ||
            cp == 0xffff)
            return (long)i;
        i += len;
    }
    return -1;
}

static int kagi__text(char **out, const char *s, const char *what)
{
    *out = NULL;
    KAGI__FAIL_IF(!s, KAGI_ERR_ARG, "plot: %s is NULL", what);
    size_t len = strlen(s);
    KAGI__FAIL_IF(len > KAGI__PLOT_MAX_TEXT, KAGI_ERR_ARG, "plot: %s is %zu bytes long, at most %d",
                  what, len, KAGI__PLOT_MAX_TEXT);
    long bad = kagi__bad_text(s);
    KAGI__FAIL_IF(bad >= 0, KAGI_ERR_ARG,
                  "plot: %s has a control character or invalid UTF-8 at byte %ld", what, bad);
    *out = malloc(len + 1);
    KAGI__FAIL_IF(!*out, KAGI_ERR_NOMEM, "plot: cannot copy %s", what);
    memcpy(*out, s, len + 1);
    return KAGI_OK;
}

static int kagi__check_scale(int scale, const char *axis)
{
    KAGI__FAIL_IF(scale != KAGI_PLOT_LINEAR && scale != KAGI_PLOT_LOG, KAGI_ERR_ARG,
                  "plot: %s scale %d is neither KAGI_PLOT_LINEAR nor KAGI_PLOT_LOG", axis, scale);
    return KAGI_OK;
}

int kagi_plot_new(kagi_plot **out, const char *title, const char *xlabel, const char *ylabel,
                  int yscale)
{
    *out = NULL;
    KAGI__TRY(kagi__check_scale(yscale, "left axis"));
    kagi_plot *p = calloc(1, sizeof *p);
    KAGI__FAIL_IF(!p, KAGI_ERR_NOMEM, "plot: out of memory");
    int rc = kagi__text(&p->title, title, "title");
    if (rc == KAGI_OK) rc = kagi__text(&p->xlabel, xlabel, "x axis label");
    if (rc == KAGI_OK) rc = kagi__text(&p->ylabel[0], ylabel, "y axis label");
    if (rc != KAGI_OK) {
        kagi_plot_free(p);
        return rc;
    }
    p->yscale[0] = yscale;
    *out = p;
    return KAGI_OK;
}

int kagi_plot_subtitle(kagi_plot *p, const char *text)
{
    char *t;
    KAGI__TRY(kagi__text(&t, text, "subtitle"));
    free(p->subtitle);
    p->subtitle = t;
    return KAGI_OK;
}

int kagi_plot_right_axis(kagi_plot *p, const char *ylabel, int yscale)
{
    KAGI__FAIL_IF(p->has_right, KAGI_ERR_ARG, "plot: the chart has a right axis already");
    KAGI__TRY(kagi__check_scale(yscale, "right axis"));
    KAGI__TRY(kagi__text(&p->ylabel[1], ylabel, "right axis label"));
    p->yscale[1] = yscale;
    p->has_right = 1;
    return KAGI_OK;
}

int kagi_plot_series(kagi_plot *p, const char *name, const double *x, const double *y, size_t n,
                     int style, int right)
{
    KAGI__FAIL_IF(p->ns == KAGI__PLOT_MAX_SERIES, KAGI_ERR_ARG, "plot: a chart holds at most %d series",
                  KAGI__PLOT_MAX_SERIES);
    char *nm;
    KAGI__TRY(kagi__text(&nm, name, "series name"));
    int rc = KAGI_OK;
    if (style < KAGI_PLOT_SOLID || style > KAGI_PLOT_DOTTED)
        rc = kagi__err(KAGI_ERR_ARG, "plot: series \"%s\": style %d is not a KAGI_PLOT_ style", nm,
                       style);
    else if (right != 0 && right != 1)
        rc = kagi__err(KAGI_ERR_ARG, "plot: series \"%s\": right is %d, not 0 or 1", nm, right);
    else if (right && !p->has_right)
        rc = kagi__err(KAGI_ERR_ARG,
                       "plot: series \"%s\" is on the right axis, which kagi_plot_right_axis has "
                       "not added", nm);
    else if (n > KAGI__PLOT_MAX_POINTS)
        rc = kagi__err(KAGI_ERR_ARG, "plot: series \"%s\" has %zu points, at most %zu", nm, n,
                       KAGI__PLOT_MAX_POINTS);
    else if (n && (!x || !y))
        rc = kagi__err(KAGI_ERR_ARG, "plot: series \"%s\": %s is NULL with %zu points", nm,
                       !x ? "x" : "y", n);
    double *xy = NULL;
    if (rc == KAGI_OK && n && !(xy = malloc(2 * n * sizeof *xy)))
        rc = kagi__err(KAGI_ERR_NOMEM, "plot: cannot copy %zu points", n);
    if (rc != KAGI_OK) {
        free(nm);
        return rc;
    }
    if (n) {
        memcpy(xy, x, n * sizeof *xy);
        memcpy(xy + n, y, n * sizeof *xy);
    }
    p->s[p->ns++] = (kagi__series){nm, xy, n, style, right};
    return KAGI_OK;
}

int kagi_plot_marker(kagi_plot *p, double x, const char *label)
{
    KAGI__FAIL_IF(p->nm == KAGI__PLOT_MAX_MARKERS, KAGI_ERR_ARG,
                  "plot: a chart holds at most %d markers", KAGI__PLOT_MAX_MARKERS);
    KAGI__FAIL_IF(!kagi__drawable(x, 0), KAGI_ERR_ARG,
                  "plot: marker at x = %g: x must be finite and at most 1e200 in magnitude", x);
    char *l;
    KAGI__TRY(kagi__text(&l, label, "marker label"));
    p->m[p->nm++] = (kagi__marker){x, l};
    return KAGI_OK;
}

void kagi_plot_free(kagi_plot *p)
{
    if (!p) return;
    free(p->title);
    free(p->subtitle);
    free(p->xlabel);
    free(p->ylabel[0]);
    free(p->ylabel[1]);
    for (size_t i = 0; i < p->ns; i++) {
        free(p->s[i].name);
        free(p->s[i].xy);
    }
    for (size_t i = 0; i < p->nm; i++) free(p->m[i].label);
    free(p);
}

/* ---- layout ----------------------------------------------------------- */

typedef struct kagi__chart {
    const kagi_plot *p;
    double x0, y0, w, h; /* plot area */
    kagi__ticks tx, ty[2];
    int has[2];          /* the y axis has a point to draw */
    double *px[KAGI__PLOT_MAX_SERIES]; /* pixel x[0..n) then y[0..n); NAN if left out */
    double lx, ly, lw, lh;             /* legend box; lw = 0 for none */
} kagi__chart;

static double kagi__map(const kagi__ticks *t, double v, double from, double len)
{
    if (t->log) return from + (log10(v) - log10(t->lo)) / (log10(t->hi) - log10(t->lo)) * len;
    return from + (v - t->lo) / (t->hi - t->lo) * len;
}

/* Width in pixels of s in sans-serif of the given size, roughly (0.56 em a character). */
static double kagi__text_width(const char *s, double size)
{
    size_t chars = 0;
    for (; *s; s++) chars += ((unsigned char)*s & 0xc0) != 0x80;
    return (double)chars * 0.56 * size;
}

/* v with '.' as the decimal point whatever the locale; "%.*f" or "%.*g". */
static const char *kagi__num(char *b, size_t n, int fixed, int prec, double v)
{
    if (v == 0) v = 0; /* print -0 as 0 */
    if (fixed)
        snprintf(b, n, "%.*f", prec, v);
    else
        snprintf(b, n, "%.*g", prec, v);
    const char *dp = localeconv()->decimal_point;
    char *at;
    if (dp[0] && strcmp(dp, ".") != 0 && (at = strstr(b, dp)) != NULL) {
        size_t dl = strlen(dp);
        *at = '.';
        memmove(at + 1, at + dl, strlen(at + dl) + 1);
    }
    return b;
}

/* Magnitude of the label of major tick v (the sign is written apart). */
static const char *kagi__tick_text(char *b, size_t n, const kagi__ticks *t, double v)
{
    if (t->log) {
        snprintf(b, n, "%ld", labs(lround(log10(v))));
        return b;
    }
    return kagi__num(b, n, t->decimals >= 0, t->decimals >= 0 ? t->decimals : 6, fabs(v));
}

static double kagi__tick_width(const kagi__ticks *t)
{
    double w = 0;
    char b[48];
    for (size_t i = 0; i < t->nmajor; i++) {
        double v = t->major[i];
        kagi__tick_text(b, sizeof b, t, v);
        double wi = t->log ? 2 * 0.56 * 12 + kagi__text_width(b, 9) + (v < 1 ? 5 : 0)
                           : kagi__text_width(b, 12) + (v < 0 ? 7 : 0);
        w = fmax(w, wi);
    }
    return w;
}

/* Horizontal extent of marker i's label (at the top of the plot area, left
 * of the line near the right edge, else right of it); l0 == l1 if none. */
static int kagi__marker_label(const kagi__chart *c, size_t i, double *l0, double *l1)
{
    double x = kagi__map(&c->tx, c->p->m[i].x, c->x0, c->w);
    double tw = kagi__text_width(c->p->m[i].label, 11);
    int flip = x > c->x0 + 0.75 * c->w;
    *l0 = flip ? x - 4 - tw : x + 4;
    *l1 = *l0 + tw;
    return flip;
}

/* Points of the series that a legend box at (x, y) would hide, sampling
 * segments too; a marker line or label under the box counts heavily. */
static size_t kagi__hidden(const kagi__chart *c, double x, double y)
{
    size_t hid = 0;
    for (size_t i = 0; i < c->p->ns; i++) {
        const double *px = c->px[i];
        size_t n = c->p->s[i].n;
        for (size_t j = 0; j < n; j++) {
            if (isnan(px[j])) continue;
            int seg = j + 1 < n && !isnan(px[j + 1]);
            for (int k = 0; k < (seg ? 4 : 1); k++) {
                double sx = seg ? px[j] + (px[j + 1] - px[j]) * k / 4 : px[j];
                double sy = seg ? px[n + j] + (px[n + j + 1] - px[n + j]) * k / 4 : px[n + j];
                hid += sx >= x && sx <= x + c->lw && sy >= y && sy <= y + c->lh;
            }
        }
    }
    for (size_t i = 0; i < c->p->nm; i++) {
        double mx = kagi__map(&c->tx, c->p->m[i].x, c->x0, c->w), l0, l1;
        kagi__marker_label(c, i, &l0, &l1);
        if (mx >= x && mx <= x + c->lw) hid += 20;
        if (l1 > l0 && l0 <= x + c->lw && l1 >= x && y <= c->y0 + 18) hid += 20;
    }
    return hid;
}

static void kagi__place_legend(kagi__chart *c)
{
    double tw = 0;
    size_t rows = 0;
    for (size_t i = 0; i < c->p->ns; i++) {
        if (!c->p->s[i].name[0]) continue;
        tw = fmax(tw, kagi__text_width(c->p->s[i].name, 12));
        rows++;
    }
    if (!rows) return;
    c->lw = 10 + 28 + 6 + tw + 10;
    c->lh = 18 * (double)rows + 10;
    const double pad = 10, left = c->x0 + pad, right = c->x0 + c->w - c->lw - pad;
    const double top = c->y0 + pad, bottom = c->y0 + c->h - c->lh - pad;
    const double cx[4] = {right, left, right, left}, cy[4] = {top, top, bottom, bottom};
    size_t best = SIZE_MAX;
    for (int k = 0; k < 4; k++) {
        size_t hid = kagi__hidden(c, cx[k], cy[k]);
        if (hid < best) best = hid, c->lx = cx[k], c->ly = cy[k];
    }
}

static void kagi__chart_free(kagi__chart *c)
{
    for (size_t i = 0; i < KAGI__PLOT_MAX_SERIES; i++) free(c->px[i]);
}

static void kagi__extend(double *lo, double *hi, double v)
{
    *lo = fmin(*lo, v);
    *hi = fmax(*hi, v);
}

static int kagi__chart_init(kagi__chart *c, const kagi_plot *p)
{
    memset(c, 0, sizeof *c);
    c->p = p;
    double xlo = INFINITY, xhi = -INFINITY, ylo[2] = {INFINITY, INFINITY};
    double yhi[2] = {-INFINITY, -INFINITY};
    for (size_t i = 0; i < p->ns; i++) {
        const kagi__series *s = &p->s[i];
        for (size_t j = 0; j < s->n; j++) {
            double x = s->xy[j], y = s->xy[s->n + j];
            if (!kagi__drawable(x, 0)) continue;
            kagi__extend(&xlo, &xhi, x);
            if (kagi__drawable(y, p->yscale[s->right]))
                kagi__extend(&ylo[s->right], &yhi[s->right], y);
        }
    }
    for (size_t i = 0; i < p->nm; i++) kagi__extend(&xlo, &xhi, p->m[i].x);

    /* Every bound is drawable by construction, so these do not fail. An
     * axis with nothing to show gets a range to map through, but no ticks. */
    int xs = xlo <= xhi;
    KAGI__TRY(kagi__plot_ticks(&c->tx, xs ? xlo : 0, xs ? xhi : 1, KAGI_PLOT_LINEAR));
    if (!xs) c->tx.nmajor = 0;
    for (int a = 0; a <= p->has_right; a++) {
        int lg = p->yscale[a] == KAGI_PLOT_LOG;
        c->has[a] = ylo[a] <= yhi[a];
        KAGI__TRY(kagi__plot_ticks(&c->ty[a], c->has[a] ? ylo[a] : lg,
                                   c->has[a] ? yhi[a] : lg ? 10 : 1, p->yscale[a]));
        if (!c->has[a]) c->ty[a].nmajor = c->ty[a].nminor = 0;
    }

    /* Margins: a band for the rotated axis label, then the tick labels; on
     * the right without an axis, room for half the last x label. */
    c->x0 = fmax(64, 40 + kagi__tick_width(&c->ty[0]));
    double right = p->has_right ? fmax(64, 40 + kagi__tick_width(&c->ty[1]))
                                : fmax(28, kagi__tick_width(&c->tx) / 2 + 6);
    c->y0 = p->subtitle && p->subtitle[0] ? KAGI__TOP_SUB : KAGI__TOP;
    c->w = KAGI__W - c->x0 - right;
    c->h = KAGI__H - c->y0 - KAGI__BOTTOM;

    for (size_t i = 0; i < p->ns; i++) {
        const kagi__series *s = &p->s[i];
        if (!s->n) continue;
        double *px = c->px[i] = malloc(2 * s->n * sizeof *px);
        KAGI__FAIL_IF(!px, KAGI_ERR_NOMEM, "plot: out of memory for %zu points", s->n);
        for (size_t j = 0; j < s->n; j++) {
            double x = s->xy[j], y = s->xy[s->n + j];
            int ok = kagi__drawable(x, 0) && kagi__drawable(y, p->yscale[s->right]);
            px[j] = ok ? kagi__map(&c->tx, x, c->x0, c->w) : NAN;
            px[s->n + j] = ok ? kagi__map(&c->ty[s->right], y, c->y0 + c->h, -c->h) : NAN;
        }
    }
    kagi__place_legend(c);
    return KAGI_OK;
}

/* ---- SVG text ---------------------------------------------------------- */

static void kagi__xml(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default: putc(*s, f);
        }
    }
}

/* fprintf for SVG: %s raw text, %x text escaped for XML, %p a coordinate
 * (double; at most two decimals, no trailing zeros), %d an int. */
static void kagi__svg(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *c = fmt; *c; c++) {
        if (*c != '%' || !c[1]) {
            putc(*c, f);
            continue;
        }
        char b[64];
        switch (*++c) {
        case 's': fputs(va_arg(ap, const char *), f); break;
        case 'x': kagi__xml(f, va_arg(ap, const char *)); break;
        case 'd': fprintf(f, "%d", va_arg(ap, int)); break;
        case 'p': {
            char *e = b + strlen(kagi__num(b, sizeof b, 1, 2, va_arg(ap, double)));
            while (e[-1] == '0') *--e = '\0';
            if (e[-1] == '.') *--e = '\0';
            fputs(strcmp(b, "-0") ? b : "0", f);
            break;
        }
        default: putc(*c, f);
        }
    }
    va_end(ap);
}

/* Label of major tick v at (x, y): a real minus sign, 10^k as a superscript. */
static void kagi__tick_label(FILE *f, const kagi__ticks *t, double v, double x, double y,
                             const char *anchor)
{
    char b[48];
    kagi__tick_text(b, sizeof b, t, v);
    if (t->log)
        kagi__svg(f, "<text x=\"%p\" y=\"%p\" text-anchor=\"%s\">10<tspan dy=\"-7\" "
                     "font-size=\"9\">%s%s</tspan></text>\n",
                  x, y, anchor, v < 1 ? "&#8722;" : "", b);
    else
        kagi__svg(f, "<text x=\"%p\" y=\"%p\" text-anchor=\"%s\">%s%s</text>\n", x, y, anchor,
                  v < 0 ? "&#8722;" : "", b);
}

static void kagi__emit_grid(FILE *f, const kagi__chart *c)
{
    const kagi__ticks *ty = &c->ty[0];
    double x1 = c->x0 + c->w, ybot = c->y0 + c->h;
    kagi__svg(f, "<g stroke=\"#f0f0f0\" stroke-width=\"1\">\n");
    for (size_t i = 0; i < ty->nminor; i++) {
        double y = kagi__map(ty, ty->minor[i], ybot, -c->h);
        kagi__svg(f, "<line x1=\"%p\" y1=\"%p\" x2=\"%p\" y2=\"%p\"/>\n", c->x0, y, x1, y);
    }
    kagi__svg(f, "</g>\n<g stroke=\"#dcdcdc\" stroke-width=\"1\">\n");
    for (size_t i = 0; i < ty->nmajor; i++) {
        double y = kagi__map(ty, ty->major[i], ybot, -c->h);
        kagi__svg(f, "<line x1=\"%p\" y1=\"%p\" x2=\"%p\" y2=\"%p\"/>\n", c->x0, y, x1, y);
    }
    for (size_t i = 0; i < c->tx.nmajor; i++) {
        double x = kagi__map(&c->tx, c->tx.major[i], c->x0, c->w);
        kagi__svg(f, "<line x1=\"%p\" y1=\"%p\" x2=\"%p\" y2=\"%p\"/>\n", x, c->y0, x, ybot);
    }
    kagi__svg(f, "</g>\n");
}

/* Each run of drawable points is a polyline, a lone point a dot. */
static void kagi__emit_series(FILE *f, const kagi__chart *c, size_t i)
{
    const kagi__series *s = &c->p->s[i];
    const double *px = c->px[i];
    const char *col = kagi__palette[i % (sizeof kagi__palette / sizeof *kagi__palette)];
    kagi__svg(f, "<g fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" stroke-linejoin=\"round\"%s>\n",
              col, kagi__dash[s->style]);
    for (size_t j = 0; j < s->n; j++) {
        if (isnan(px[j])) continue;
        size_t e = j;
        while (e + 1 < s->n && !isnan(px[e + 1])) e++;
        if (e == j) {
            kagi__svg(f, "<circle cx=\"%p\" cy=\"%p\" r=\"2.2\" fill=\"%s\" stroke=\"none\"/>\n",
                      px[j], px[s->n + j], col);
            continue;
        }
        kagi__svg(f, "<polyline points=\"");
        for (size_t k = j; k <= e; k++)
            kagi__svg(f, "%s%p,%p", k == j ? "" : (k - j) % 8 ? " " : "\n", px[k], px[s->n + k]);
        kagi__svg(f, "\"/>\n");
        j = e;
    }
    kagi__svg(f, "</g>\n");
}

static void kagi__emit_axes(FILE *f, const kagi__chart *c)
{
    const kagi_plot *p = c->p;
    double x1 = c->x0 + c->w, ybot = c->y0 + c->h;
    kagi__svg(f, "<rect id=\"plot-area\" x=\"%p\" y=\"%p\" width=\"%p\" height=\"%p\" fill=\"none\" "
                 "stroke=\"#333333\" stroke-width=\"1\"/>\n<g stroke=\"#333333\" stroke-width=\"1\">\n",
              c->x0, c->y0, c->w, c->h);
    for (size_t i = 0; i < c->tx.nmajor; i++) {
        double x = kagi__map(&c->tx, c->tx.major[i], c->x0, c->w);
        kagi__svg(f, "<line x1=\"%p\" y1=\"%p\" x2=\"%p\" y2=\"%p\"/>\n", x, ybot, x, ybot + 5);
    }
    for (int a = 0; a <= p->has_right; a++) {
        const kagi__ticks *t = &c->ty[a];
        double edge = a ? x1 : c->x0, out = a ? 1 : -1;
        for (size_t i = 0; i < t->nmajor + t->nminor; i++) {
            int major = i < t->nmajor;
            double y = kagi__map(t, major ? t->major[i] : t->minor[i - t->nmajor], ybot, -c->h);
            kagi__svg(f, "<line x1=\"%p\" y1=\"%p\" x2=\"%p\" y2=\"%p\"/>\n", edge, y,
                      edge + out * (major ? 5 : 3), y);
        }
    }
    kagi__svg(f, "</g>\n");
    for (size_t i = 0; i < c->tx.nmajor; i++)
        kagi__tick_label(f, &c->tx, c->tx.major[i], kagi__map(&c->tx, c->tx.major[i], c->x0, c->w),
                         ybot + 18, "middle");
    for (int a = 0; a <= p->has_right; a++) {
        const kagi__ticks *t = &c->ty[a];
        for (size_t i = 0; i < t->nmajor; i++)
            kagi__tick_label(f, t, t->major[i], a ? x1 + 8 : c->x0 - 8,
                             kagi__map(t, t->major[i], ybot, -c->h) + 4, a ? "start" : "end");
    }
    double mid = c->x0 + c->w / 2, ymid = c->y0 + c->h / 2;
    if (p->xlabel[0])
        kagi__svg(f, "<text x=\"%p\" y=\"%p\" text-anchor=\"middle\">%x</text>\n", mid,
                  (double)KAGI__H - 14, p->xlabel);
    if (p->ylabel[0][0])
        kagi__svg(f, "<text transform=\"translate(24 %p) rotate(-90)\" text-anchor=\"middle\">%x"
                     "</text>\n", ymid, p->ylabel[0]);
    if (p->has_right && p->ylabel[1][0])
        kagi__svg(f, "<text transform=\"translate(%d %p) rotate(90)\" text-anchor=\"middle\">%x"
                     "</text>\n", KAGI__W - 24, ymid, p->ylabel[1]);
    if (p->title[0])
        kagi__svg(f, "<text x=\"%p\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">%x</text>\n",
                  mid, p->title);
    if (p->subtitle && p->subtitle[0])
        kagi__svg(f, "<text x=\"%p\" y=\"48\" text-anchor=\"middle\" fill=\"#555555\">%x</text>\n",
                  mid, p->subtitle);
}

static void kagi__emit_markers(FILE *f, const kagi__chart *c)
{
    for (size_t i = 0; i < c->p->nm; i++) {
        double x = kagi__map(&c->tx, c->p->m[i].x, c->x0, c->w), l0, l1;
        int flip = kagi__marker_label(c, i, &l0, &l1);
        kagi__svg(f, "<line x1=\"%p\" y1=\"%p\" x2=\"%p\" y2=\"%p\" stroke=\"#666666\" "
                     "stroke-width=\"1\" stroke-dasharray=\"2 3\"/>\n",
                  x, c->y0, x, c->y0 + c->h);
        if (c->p->m[i].label[0])
            kagi__svg(f, "<text x=\"%p\" y=\"%p\" text-anchor=\"%s\" font-size=\"11\" "
                         "fill=\"#444444\">%x</text>\n",
                      x + (flip ? -4 : 4), c->y0 + 14, flip ? "end" : "start", c->p->m[i].label);
    }
}

static void kagi__emit_legend(FILE *f, const kagi__chart *c)
{
    if (c->lw == 0) return;
    kagi__svg(f, "<g id=\"legend\">\n<rect x=\"%p\" y=\"%p\" width=\"%p\" height=\"%p\" "
                 "fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#cccccc\"/>\n",
              c->lx, c->ly, c->lw, c->lh);
    double y = c->ly + 14;
    for (size_t i = 0; i < c->p->ns; i++) {
        const kagi__series *s = &c->p->s[i];
        if (!s->name[0]) continue;
        const char *col = kagi__palette[i % (sizeof kagi__palette / sizeof *kagi__palette)];
        kagi__svg(f, "<line x1=\"%p\" y1=\"%p\" x2=\"%p\" y2=\"%p\" stroke=\"%s\" "
                     "stroke-width=\"1.8\"%s/>\n<text x=\"%p\" y=\"%p\">%x</text>\n",
                  c->lx + 10, y, c->lx + 38, y, col, kagi__dash[s->style], c->lx + 44, y + 4,
                  s->name);
        y += 18;
    }
    kagi__svg(f, "</g>\n");
}

static void kagi__emit(FILE *f, const kagi__chart *c)
{
    kagi__svg(f, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
                 "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
              KAGI__W, KAGI__H, KAGI__W, KAGI__H);
    if (c->p->title[0]) kagi__svg(f, "<title>%x</title>\n", c->p->title);
    kagi__svg(f, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", KAGI__W, KAGI__H);
    kagi__emit_grid(f, c);
    kagi__emit_markers(f, c);
    for (size_t i = 0; i < c->p->ns; i++) kagi__emit_series(f, c, i);
    kagi__emit_axes(f, c);
    kagi__emit_legend(f, c);
    for (int a = 0; a <= c->p->has_right; a++) {
        if (c->has[a]) continue;
        const char *what = c->p->yscale[a] == KAGI_PLOT_LOG ? "no positive values" : "no data";
        kagi__svg(f, "<text x=\"%p\" y=\"%p\" text-anchor=\"middle\" font-size=\"14\" "
                     "fill=\"#666666\">%s%s</text>\n",
                  c->x0 + c->w / 2, c->y0 + c->h / 2 + 20 * a, what, a ? " (right axis)" : "");
    }
    kagi__svg(f, "</svg>\n");
}

int kagi_plot_write(const kagi_plot *p, const char *path)
{
    KAGI__FAIL_IF(!path || !path[0], KAGI_ERR_ARG, "plot: output path is %s",
                  path ? "empty" : "NULL");
    kagi__chart c;
    int rc = kagi__chart_init(&c, p);
    kagi__afile af;
    if (rc == KAGI_OK) rc = kagi__afile_open(&af, path, 0644, 1);
    if (rc == KAGI_OK) {
        kagi__emit(af.f, &c);
        rc = kagi__afile_close(&af, KAGI_OK);
    }
    kagi__chart_free(&c);
    return rc;
}
