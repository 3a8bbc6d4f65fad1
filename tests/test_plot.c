/* SVG charts: ticks against hand-computed ones, pixel positions against an
 * independent mapping, well-formed XML, escaping, atomic writes. */
#include <dirent.h>
#include <errno.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kagi/error.h"
#include "kagi/plot.h"
#include "plot_internal.h"
#include "t.h"

/* ---- helpers ---------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    fclose(f);
    s[got] = '\0';
    return s;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* Numeric value of attribute name="..." in the element starting at el. */
static double attr(const char *el, const char *name)
{
    char key[32];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *end = strchr(el, '>'), *at = strstr(el, key);
    if (!at || at > end) return NAN;
    return strtod(at + strlen(key), NULL);
}

/* Points of the k-th polyline (0-based) into xs, ys; returns their count. */
static size_t polyline(const char *svg, size_t k, double *xs, double *ys, size_t max)
{
    const char *p = svg;
    for (size_t i = 0; i <= k; i++) {
        p = strstr(p, "<polyline points=\"");
        if (!p) return 0;
        p += strlen("<polyline points=\"");
    }
    size_t n = 0;
    while (*p != '"' && n < max) {
        char *e;
        xs[n] = strtod(p, &e);
        if (*e != ',') break;
        ys[n++] = strtod(e + 1, &e);
        p = e + strspn(e, " \n");
    }
    return n;
}

static int entity_ok(const char *s)
{
    static const char *const known[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < 5; i++)
        if (!strncmp(s, known[i], strlen(known[i]))) return 1;
    if (s[1] != '#') return 0;
    size_t d = strspn(s + 2, "0123456789");
    return d > 0 && s[2 + d] == ';';
}

/* A small well-formedness check: one root, tags nest and match, attribute
 * values quoted with no '<', every '&' a known entity, no '>' in text. */
static int xml_ok(const char *s)
{
    static const char name_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:";
    const char *stack[64];
    size_t lens[64], depth = 0, roots = 0;
    while (*s) {
        if (*s == '&' && !entity_ok(s)) return 0;
        if (*s == '>') return 0;
        if (*s != '<') {
            if (!depth && !strchr(" \n", *s)) return 0;
            s++;
            continue;
        }
        if (!strncmp(s, "<?", 2)) {
            if (roots || depth || !(s = strstr(s, "?>"))) return 0;
            s += 2;
            continue;
        }
        int closing = s[1] == '/';
        const char *name = s + 1 + closing, *q;
        size_t nl = strspn(name, name_chars);
        if (!nl) return 0;
        for (q = name + nl;;) {
            q += strspn(q, " \n\t");
            if (*q == '>' || (q[0] == '/' && q[1] == '>')) break;
            size_t an = strspn(q, name_chars);
            if (closing || !an || q[an] != '=' || (q[an + 1] != '"' && q[an + 1] != '\'')) return 0;
            char quote = q[an + 1];
            for (q += an + 2; *q != quote; q++)
                if (!*q || *q == '<' || (*q == '&' && !entity_ok(q))) return 0;
            q++;
        }
        int self = *q == '/';
        s = q + (self ? 2 : 1);
        if (closing) {
            if (!depth || lens[depth - 1] != nl || strncmp(stack[depth - 1], name, nl)) return 0;
            depth--;
        } else if (!self) {
            if (depth == 64 || (!depth && roots++)) return 0;
            stack[depth] = name;
            lens[depth++] = nl;
        } else if (!depth && roots++) {
            return 0;
        }
    }
    return depth == 0 && roots == 1;
}

static int python_parses(const char *path)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0) return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])' %s",
             path);
    return system(cmd) == 0;
}

/* Every test writes into one directory, made on first use and removed at exit
 * (so a single test can be run by name). */
static char dir[] = "/tmp/kagi-test-plot-XXXXXX";
static const char *const written[] = {"map.svg", "split.svg", "pass.svg", "esc.svg",
                                      "empty.svg", "copy.svg", "locale.svg"};

static const char *tmp_path(const char *name);

static void remove_tmpdir(void)
{
    for (size_t i = 0; i < sizeof written / sizeof *written; i++) unlink(tmp_path(written[i]));
    if (rmdir(dir) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

static const char *tmp_path(const char *name)
{
    static char buf[256];
    static int made;
    if (!made) {
        made = mkdtemp(dir) != NULL;
        if (!made) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(remove_tmpdir);
    }
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

#define ASSERT_TICKS(t, ...)                                                   \
    do {                                                                       \
        const double want[] = {__VA_ARGS__};                                   \
        size_t nw = sizeof want / sizeof *want;                                \
        ASSERT_EQ((t).nmajor, nw);                                             \
        for (size_t i = 0; i < nw && i < (t).nmajor; i++)                      \
            ASSERT_NEAR((t).major[i], want[i], 1e-12 * fabs(want[i]) + 1e-15); \
        ASSERT_NEAR((t).lo, want[0], 1e-12 * fabs(want[0]) + 1e-15);           \
        ASSERT_NEAR((t).hi, want[nw - 1], 1e-12 * fabs(want[nw - 1]) + 1e-15); \
    } while (0)

/* ---- ticks ------------------------------------------------------------ */

static void linear_ticks_take_the_1_2_5_step_nearest_six_intervals(void)
{
    kagi__ticks t;
    /* [0,137]: steps 10/20/50 give 14/7/3 intervals; 20 is nearest 6. */
    ASSERT_OK(kagi__plot_ticks(&t, 0, 137, KAGI_PLOT_LINEAR));
    ASSERT_TICKS(t, 0, 20, 40, 60, 80, 100, 120, 140);
    ASSERT_EQ(t.decimals, 0);
    ASSERT_EQ(t.nminor, 0);
    /* [0,1]: 0.1 -> 10, 0.2 -> 5, 0.5 -> 2 intervals. */
    ASSERT_OK(kagi__plot_ticks(&t, 0, 1, KAGI_PLOT_LINEAR));
    ASSERT_TICKS(t, 0, 0.2, 0.4, 0.6, 0.8, 1);
    ASSERT_EQ(t.major[3], 0.6); /* 3*2/10, not 3*0.2 = 0.6000000000000001 */
    ASSERT_EQ(t.decimals, 1);
    /* [-3.7,12.2]: step 2 -> [-4,14] 9 intervals, 5 -> [-5,15] 4, 10 -> 3. */
    ASSERT_OK(kagi__plot_ticks(&t, -3.7, 12.2, KAGI_PLOT_LINEAR));
    ASSERT_TICKS(t, -5, 0, 5, 10, 15);
    /* An elevation pass [10,67]: step 10 gives exactly 6. */
    ASSERT_OK(kagi__plot_ticks(&t, 10, 67, KAGI_PLOT_LINEAR));
    ASSERT_TICKS(t, 10, 20, 30, 40, 50, 60, 70);
    /* Reversed bounds are accepted; negative ranges mirror positive ones. */
    ASSERT_OK(kagi__plot_ticks(&t, 0, -137, KAGI_PLOT_LINEAR));
    ASSERT_TICKS(t, -140, -120, -100, -80, -60, -40, -20, 0);
    /* Pool levels in bits: no exponent notation needed. */
    ASSERT_OK(kagi__plot_ticks(&t, 0, 3.2e6, KAGI_PLOT_LINEAR));
    ASSERT_TICKS(t, 0, 5e5, 1e6, 1.5e6, 2e6, 2.5e6, 3e6, 3.5e6);
}

static void constant_linear_range_is_widened(void)
{
    kagi__ticks t;
    /* 5 +- 10% = [4.5,5.5]; step 0.2 -> [4.4,5.6], 6 intervals. */
    ASSERT_OK(kagi__plot_ticks(&t, 5, 5, KAGI_PLOT_LINEAR));
    ASSERT_TICKS(t, 4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6);
    /* 0 +- 1: step 0.5 gives 4 intervals, 0.2 gives 10, 1 gives 2. */
    ASSERT_OK(kagi__plot_ticks(&t, 0, 0, KAGI_PLOT_LINEAR));
    ASSERT_TICKS(t, -1, -0.5, 0, 0.5, 1);
    ASSERT_TRUE(!signbit(t.major[2])); /* +0, so no "-0" label */
}

static void log_ticks_are_whole_decades_with_minor_2_to_9(void)
{
    kagi__ticks t;
    ASSERT_OK(kagi__plot_ticks(&t, 3e-7, 2e-3, KAGI_PLOT_LOG));
    ASSERT_TICKS(t, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2);
    ASSERT_EQ(t.nminor, 5 * 8);
    ASSERT_NEAR(t.minor[0], 2e-7, 1e-22);
    ASSERT_NEAR(t.minor[7], 9e-7, 1e-22);
    ASSERT_NEAR(t.minor[39], 9e-3, 1e-18);
    /* A single power of ten gets a decade either side. */
    ASSERT_OK(kagi__plot_ticks(&t, 1e-3, 1e-3, KAGI_PLOT_LOG));
    ASSERT_TICKS(t, 1e-4, 1e-3, 1e-2);
    /* Exact decades stay put. */
    ASSERT_OK(kagi__plot_ticks(&t, 1e-6, 1e-2, KAGI_PLOT_LOG));
    ASSERT_TICKS(t, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2);
    /* 30 decades: every 4th labelled (ceil(30/8)), from 1e-32 to 1e0, the
     * other decades as minor ticks. */
    ASSERT_OK(kagi__plot_ticks(&t, 1e-30, 1, KAGI_PLOT_LOG));
    ASSERT_TICKS(t, 1e-32, 1e-28, 1e-24, 1e-20, 1e-16, 1e-12, 1e-8, 1e-4, 1);
    ASSERT_EQ(t.nminor, 8 * 3);
    ASSERT_NEAR(t.minor[0], 1e-31, 1e-44);
}

static void ticks_reject_what_no_axis_can_show(void)
{
    kagi__ticks t;
    ASSERT_EQ(kagi__plot_ticks(&t, 0, 1, KAGI_PLOT_LOG), KAGI_ERR_ARG);
    ASSERT_EQ(kagi__plot_ticks(&t, -1, 1, KAGI_PLOT_LOG), KAGI_ERR_ARG);
    ASSERT_EQ(kagi__plot_ticks(&t, 0, NAN, KAGI_PLOT_LINEAR), KAGI_ERR_ARG);
    ASSERT_EQ(kagi__plot_ticks(&t, 0, INFINITY, KAGI_PLOT_LINEAR), KAGI_ERR_ARG);
    ASSERT_EQ(kagi__plot_ticks(&t, -1e300, 1, KAGI_PLOT_LINEAR), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "linear") != NULL);
}

/* ---- charts ----------------------------------------------------------- */

static const double dist[5] = {0, 25, 50, 75, 100};

static void polyline_maps_data_to_expected_pixels(void)
{
    const double rate[5] = {1e-2, 1e-3, 3e-4, 1e-5, 2e-6};
    kagi_plot *p;
    ASSERT_OK(kagi_plot_new(&p, "rate", "distance (km)", "key rate (bits/pulse)", KAGI_PLOT_LOG));
    ASSERT_OK(kagi_plot_series(p, "BB84", dist, rate, 5, KAGI_PLOT_SOLID, 0));
    ASSERT_OK(kagi_plot_write(p, tmp_path("map.svg")));
    kagi_plot_free(p);
    char *svg = slurp(tmp_path("map.svg"));
    ASSERT_TRUE(svg != NULL);
    if (!svg) return;
    const char *area = strstr(svg, "<rect id=\"plot-area\"");
    ASSERT_TRUE(area != NULL);
    if (!area) return;
    double x0 = attr(area, "x"), y0 = attr(area, "y"), w = attr(area, "width");
    double h = attr(area, "height");
    ASSERT_TRUE(w > 300 && h > 200 && x0 > 0 && y0 > 0);
    ASSERT_TRUE(x0 + w <= 720 && y0 + h <= 450);
    /* x axis [0,100] (step 20); y axis [1e-6,1e-2] (4 decades). */
    double xs[8], ys[8];
    ASSERT_EQ(polyline(svg, 0, xs, ys, 8), 5);
    for (size_t i = 0; i < 5; i++) {
        ASSERT_NEAR(xs[i], x0 + dist[i] / 100 * w, 0.02);
        ASSERT_NEAR(ys[i], y0 + h - (log10(rate[i]) + 6) / 4 * h, 0.02);
    }
    ASSERT_NEAR(ys[0], y0, 0.02); /* 1e-2 is the top of the axis */
    /* Decade labels with superscript exponents and a real minus sign. */
    ASSERT_TRUE(strstr(svg, ">10<tspan dy=\"-7\" font-size=\"9\">&#8722;6</tspan>") != NULL);
    ASSERT_TRUE(strstr(svg, ">10<tspan dy=\"-7\" font-size=\"9\">&#8722;2</tspan>") != NULL);
    ASSERT_EQ(count(svg, "&#8722;7<"), 0);
    ASSERT_TRUE(strstr(svg, ">100</text>") != NULL);
    ASSERT_TRUE(strstr(svg, ">distance (km)</text>") != NULL);
    ASSERT_EQ(count(svg, "stroke=\"#0072B2\""), 2); /* the line and its legend sample */
    free(svg);
}

/* One series over dist on a fresh chart, written to split.svg; its text. */
static char *one_series(const char *name, const double *y, int style, int yaxis)
{
    kagi_plot *p;
    ASSERT_OK(kagi_plot_new(&p, "t", "x", "y", yaxis));
    ASSERT_OK(kagi_plot_series(p, name, dist, y, 5, style, 0));
    ASSERT_OK(kagi_plot_write(p, tmp_path("split.svg")));
    kagi_plot_free(p);
    return slurp(tmp_path("split.svg"));
}

static void zero_on_log_axis_splits_the_line(void)
{
    const double rate[5] = {1e-2, 1e-3, 0, 1e-4, 1e-5};
    const double rate_nan[5] = {1e-2, NAN, 1e-3, 1e-4, -1};
    char *svg = one_series("with zero", rate, KAGI_PLOT_SOLID, KAGI_PLOT_LOG);
    double xs[8], ys[8];
    ASSERT_EQ(count(svg, "<polyline"), 2);
    ASSERT_EQ(polyline(svg, 0, xs, ys, 8), 2);
    ASSERT_EQ(polyline(svg, 1, xs, ys, 8), 2);
    free(svg);

    /* NaN breaks the line too; a lone point left over is drawn as a dot. */
    svg = one_series("nan", rate_nan, KAGI_PLOT_DASHED, KAGI_PLOT_LOG);
    ASSERT_EQ(count(svg, "<polyline"), 1);
    ASSERT_EQ(polyline(svg, 0, xs, ys, 8), 2);
    ASSERT_EQ(count(svg, "<circle"), 1);
    ASSERT_EQ(count(svg, "stroke-dasharray=\"7 4\""), 2);
    free(svg);

    /* On a linear axis the same zero is an ordinary point. */
    svg = one_series("linear", rate, KAGI_PLOT_SOLID, KAGI_PLOT_LINEAR);
    ASSERT_EQ(count(svg, "<polyline"), 1);
    ASSERT_EQ(polyline(svg, 0, xs, ys, 8), 5);
    free(svg);
}

static void full_chart_is_well_formed_xml(void)
{
    const double elev[5] = {10, 35, 67, 35, 10}, loss[5] = {52, 41, 33.5, 41, 52};
    const double t[5] = {0, 120, 240, 360, 480};
    kagi_plot *p;
    ASSERT_OK(kagi_plot_new(&p, "Pass <#1> & \"LEO\" 'sat'", "time (s)", "elevation (deg)",
                            KAGI_PLOT_LINEAR));
    ASSERT_OK(kagi_plot_subtitle(p, "Micius-like, 500 km, λ = 850 nm"));
    ASSERT_OK(kagi_plot_right_axis(p, "loss (dB)", KAGI_PLOT_LINEAR));
    ASSERT_OK(kagi_plot_series(p, "elevation", t, elev, 5, KAGI_PLOT_SOLID, 0));
    ASSERT_OK(kagi_plot_series(p, "loss <total>", t, loss, 5, KAGI_PLOT_DOTTED, 1));
    ASSERT_OK(kagi_plot_series(p, "", t, elev, 0, KAGI_PLOT_SOLID, 0)); /* n = 0 */
    ASSERT_OK(kagi_plot_marker(p, 240, "culmination & max"));
    const char *path = tmp_path("pass.svg");
    ASSERT_OK(kagi_plot_write(p, path));
    kagi_plot_free(p);
    char *svg = slurp(path);
    ASSERT_TRUE(xml_ok(svg));
    int py = python_parses(path);
    if (py >= 0) ASSERT_EQ(py, 1);
    else fprintf(stderr, "  (python3 missing: checked with the built-in parser only)\n");
    ASSERT_TRUE(strstr(svg, "viewBox=\"0 0 720 450\"") != NULL);
    ASSERT_TRUE(strstr(svg, "font-family=\"sans-serif\"") != NULL);
    ASSERT_TRUE(strstr(svg, ">loss &lt;total&gt;</text>") != NULL);
    ASSERT_TRUE(strstr(svg, ">culmination &amp; max</text>") != NULL);
    ASSERT_TRUE(strstr(svg, "λ = 850 nm") != NULL);
    /* Right axis: loss [33.5,52] -> step 5 (2 -> 10 intervals) 30..55. */
    ASSERT_TRUE(strstr(svg, "text-anchor=\"start\">55</text>") != NULL);
    ASSERT_TRUE(strstr(svg, "text-anchor=\"start\">30</text>") != NULL);
    ASSERT_EQ(count(svg, "<polyline"), 2);
    ASSERT_EQ(count(svg, "stroke-dasharray=\"2 3\""), 3); /* line, legend, marker */
    free(svg);
}

static void title_special_characters_are_escaped(void)
{
    kagi_plot *p;
    ASSERT_OK(kagi_plot_new(&p, "R&D <fast> \"key\" 'rate'", "x", "y", KAGI_PLOT_LINEAR));
    ASSERT_OK(kagi_plot_series(p, "a", dist, dist, 5, KAGI_PLOT_SOLID, 0));
    ASSERT_OK(kagi_plot_write(p, tmp_path("esc.svg")));
    kagi_plot_free(p);
    char *svg = slurp(tmp_path("esc.svg"));
    const char *want = "R&amp;D &lt;fast&gt; &quot;key&quot; &apos;rate&apos;";
    ASSERT_EQ(count(svg, want), 2); /* <title> and the visible title */
    ASSERT_EQ(count(svg, "<fast>"), 0);
    ASSERT_EQ(count(svg, "R&D"), 0);
    ASSERT_TRUE(xml_ok(svg));
    free(svg);
}

static void all_zero_rates_give_an_empty_chart_with_a_note(void)
{
    const double zero[5] = {0};
    kagi_plot *p;
    ASSERT_OK(kagi_plot_new(&p, "t", "distance (km)", "rate", KAGI_PLOT_LOG));
    ASSERT_OK(kagi_plot_series(p, "nothing", dist, zero, 5, KAGI_PLOT_SOLID, 0));
    ASSERT_OK(kagi_plot_write(p, tmp_path("empty.svg")));
    kagi_plot_free(p);
    char *svg = slurp(tmp_path("empty.svg"));
    ASSERT_TRUE(strstr(svg, ">no positive values</text>") != NULL);
    ASSERT_EQ(count(svg, "<polyline"), 0);
    ASSERT_EQ(count(svg, "<tspan"), 0);                 /* no y labels */
    ASSERT_TRUE(strstr(svg, ">100</text>") != NULL);    /* x still spans the distances */
    ASSERT_TRUE(xml_ok(svg));
    free(svg);

    /* A chart with no series at all still writes. */
    ASSERT_OK(kagi_plot_new(&p, "", "", "", KAGI_PLOT_LINEAR));
    ASSERT_OK(kagi_plot_write(p, tmp_path("empty.svg")));
    kagi_plot_free(p);
    svg = slurp(tmp_path("empty.svg"));
    ASSERT_TRUE(strstr(svg, ">no data</text>") != NULL);
    ASSERT_EQ(count(svg, "<title>"), 0);
    ASSERT_TRUE(xml_ok(svg));
    free(svg);
}

static void series_is_copied(void)
{
    double x[3] = {1, 2, 3}, y[3] = {4, 5, 6};
    kagi_plot *p;
    ASSERT_OK(kagi_plot_new(&p, "t", "x", "y", KAGI_PLOT_LINEAR));
    ASSERT_OK(kagi_plot_series(p, "s", x, y, 3, KAGI_PLOT_SOLID, 0));
    for (int i = 0; i < 3; i++) x[i] = y[i] = NAN;
    ASSERT_OK(kagi_plot_write(p, tmp_path("copy.svg")));
    kagi_plot_free(p);
    char *svg = slurp(tmp_path("copy.svg"));
    double xs[4], ys[4];
    ASSERT_EQ(polyline(svg, 0, xs, ys, 4), 3);
    free(svg);
}

static void bad_arguments_are_refused_with_a_detail(void)
{
    static int dummy;
    kagi_plot *p = (kagi_plot *)(void *)&dummy;
    ASSERT_EQ(kagi_plot_new(&p, NULL, "x", "y", KAGI_PLOT_LOG), KAGI_ERR_ARG);
    ASSERT_TRUE(p == NULL);
    ASSERT_TRUE(strstr(kagi_errdetail(), "title is NULL") != NULL);
    ASSERT_EQ(kagi_plot_new(&p, "t", "x", "y", 7), KAGI_ERR_ARG);
    ASSERT_EQ(kagi_plot_new(&p, "t\x01", "x", "y", KAGI_PLOT_LOG), KAGI_ERR_ARG);
    ASSERT_EQ(kagi_plot_new(&p, "ab\xc3(", "x", "y", KAGI_PLOT_LOG), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "byte 2") != NULL);
    ASSERT_EQ(kagi_plot_new(&p, "\xed\xa0\x80", "x", "y", KAGI_PLOT_LOG), KAGI_ERR_ARG);

    ASSERT_OK(kagi_plot_new(&p, "t", "x", "y", KAGI_PLOT_LOG));
    ASSERT_EQ(kagi_plot_series(p, NULL, dist, dist, 5, KAGI_PLOT_SOLID, 0), KAGI_ERR_ARG);
    ASSERT_EQ(kagi_plot_series(p, "s", dist, dist, 5, 3, 0), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "\"s\"") != NULL);
    ASSERT_EQ(kagi_plot_series(p, "s", dist, NULL, 5, KAGI_PLOT_SOLID, 0), KAGI_ERR_ARG);
    ASSERT_EQ(kagi_plot_series(p, "s", dist, dist, 5, KAGI_PLOT_SOLID, 1), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "right axis") != NULL);
    ASSERT_OK(kagi_plot_series(p, "empty", NULL, NULL, 0, KAGI_PLOT_SOLID, 0));
    ASSERT_EQ(kagi_plot_marker(p, NAN, "m"), KAGI_ERR_ARG);
    ASSERT_OK(kagi_plot_right_axis(p, "r", KAGI_PLOT_LINEAR));
    ASSERT_EQ(kagi_plot_right_axis(p, "r", KAGI_PLOT_LINEAR), KAGI_ERR_ARG);
    for (int i = 1; i < 16; i++) ASSERT_OK(kagi_plot_series(p, "s", dist, dist, 5, 0, i & 1));
    ASSERT_EQ(kagi_plot_series(p, "s", dist, dist, 5, KAGI_PLOT_SOLID, 0), KAGI_ERR_ARG);
    ASSERT_TRUE(strstr(kagi_errdetail(), "16 series") != NULL);
    ASSERT_EQ(kagi_plot_write(p, NULL), KAGI_ERR_ARG);
    ASSERT_EQ(kagi_plot_write(p, ""), KAGI_ERR_ARG);
    kagi_plot_free(p);
    kagi_plot_free(NULL);
}

static size_t entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return (size_t)-1;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void failed_write_is_io_error_and_leaves_nothing(void)
{
    kagi_plot *p;
    ASSERT_OK(kagi_plot_new(&p, "t", "x", "y", KAGI_PLOT_LINEAR));
    ASSERT_OK(kagi_plot_series(p, "s", dist, dist, 5, KAGI_PLOT_SOLID, 0));
    char missing[300];
    (void)tmp_path(""); /* makes the directory */
    snprintf(missing, sizeof missing, "%s/no-such-dir/out.svg", dir);
    ASSERT_EQ(kagi_plot_write(p, missing), KAGI_ERR_IO);
    ASSERT_TRUE(strstr(kagi_errdetail(), missing) != NULL);
    struct stat st;
    ASSERT_TRUE(stat(missing, &st) != 0 && errno == ENOENT);

    /* The rename fails (a directory is in the way) after the temporary
     * file was written: it must be gone afterwards. */
    char sub[300], target[320];
    snprintf(sub, sizeof sub, "%s/busy", dir);
    snprintf(target, sizeof target, "%s/out.svg", sub);
    ASSERT_EQ(mkdir(sub, 0700), 0);
    ASSERT_EQ(mkdir(target, 0700), 0);
    ASSERT_EQ(kagi_plot_write(p, target), KAGI_ERR_IO);
    ASSERT_TRUE(strstr(kagi_errdetail(), target) != NULL);
    ASSERT_EQ(entries(sub), 1);
    rmdir(target);

    /* A successful write leaves exactly the file, mode 0644. */
    ASSERT_OK(kagi_plot_write(p, target));
    ASSERT_EQ(entries(sub), 1);
    ASSERT_TRUE(stat(target, &st) == 0 && (st.st_mode & 0777) == 0644);
    unlink(target);
    rmdir(sub);
    kagi_plot_free(p);
}

static void numbers_use_a_dot_in_any_locale(void)
{
    static const char *const comma[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE.utf8", "ru_RU.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < 4 && !got; i++) got = setlocale(LC_NUMERIC, comma[i]);
    if (!got) fprintf(stderr, "  (no decimal-comma locale installed: checking in C)\n");
    const double x[2] = {0, 1}, y[2] = {0.25, 0.75};
    kagi_plot *p;
    ASSERT_OK(kagi_plot_new(&p, "t", "x", "y", KAGI_PLOT_LINEAR));
    ASSERT_OK(kagi_plot_series(p, "s", x, y, 2, KAGI_PLOT_SOLID, 0));
    ASSERT_OK(kagi_plot_write(p, tmp_path("locale.svg")));
    kagi_plot_free(p);
    setlocale(LC_NUMERIC, "C");
    char *svg = slurp(tmp_path("locale.svg"));
    ASSERT_TRUE(strstr(svg, ">0.2</text>") != NULL); /* x labels 0.0 .. 1.0 */
    ASSERT_TRUE(strstr(svg, ">1.0</text>") != NULL);
    ASSERT_EQ(count(svg, "0,2<"), 0);
    double xs[2], ys[2];
    ASSERT_EQ(polyline(svg, 0, xs, ys, 2), 2); /* "x,y" pairs parse with '.' */
    ASSERT_TRUE(xml_ok(svg));
    free(svg);
}

T_MAIN(T(linear_ticks_take_the_1_2_5_step_nearest_six_intervals),
       T(constant_linear_range_is_widened), T(log_ticks_are_whole_decades_with_minor_2_to_9),
       T(ticks_reject_what_no_axis_can_show), T(polyline_maps_data_to_expected_pixels),
       T(zero_on_log_axis_splits_the_line), T(full_chart_is_well_formed_xml),
       T(title_special_characters_are_escaped), T(all_zero_rates_give_an_empty_chart_with_a_note),
       T(series_is_copied), T(bad_arguments_are_refused_with_a_detail),
       T(failed_write_is_io_error_and_leaves_nothing), T(numbers_use_a_dot_in_any_locale))
