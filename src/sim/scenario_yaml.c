/* Scenario files in YAML (libyaml's document loader): every key is looked
 * up in a table of the keys its section allows, so a typo is an error that
 * names the file, line, column and key path, with the nearest known key as
 * a suggestion. docs/scenario.md lists the keys. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "internal.h"
#include "kagi/scenario.h"
#include "sim_internal.h"

#define KAGI__MAX_FILE (64u << 20)

typedef struct kagi__y {
    yaml_document_t doc;
    const char *origin;
    const char *text; /* the scenario's text, for positions inside block scalars */
    size_t len;
    kagi_scenario *sc;
} kagi__y;

typedef yaml_node_t kagi__yn;

static int kagi__yerr(const kagi__y *y, const kagi__yn *n, const char *path, const char *fmt, ...)
    KAGI__PRINTF(4, 5);
static int kagi__yerr(const kagi__y *y, const kagi__yn *n, const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t line = n ? n->start_mark.line + 1 : 0, col = n ? n->start_mark.column + 1 : 0;
    if (line)
        return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%zu: %s%s%s", y->origin, line, col, path,
                         path[0] ? ": " : "", msg);
    return kagi__err(KAGI_ERR_FORMAT, "%s: %s%s%s", y->origin, path, path[0] ? ": " : "", msg);
}

static kagi__yn *kagi__node(kagi__y *y, int i) { return yaml_document_get_node(&y->doc, i); }

static size_t kagi__ed(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    size_t d[41][41];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* " (did you mean X?)" for the closest of names, or "". */
static void kagi__suggest(const char *got, const char *const *names, size_t n, char *buf,
                          size_t len)
{
    size_t best = 99, bi = 0;
    for (size_t i = 0; i < n; i++) {
        size_t e = kagi__ed(got, names[i]);
        if (e < best) {
            best = e;
            bi = i;
        }
    }
    size_t lim = strlen(got) / 3 > 2 ? strlen(got) / 3 : 2;
    if (n && best <= lim)
        snprintf(buf, len, " (did you mean %s?)", names[bi]);
    else
        buf[0] = 0;
}

/* ---- Scalars ---------------------------------------------------------------- */

static int kagi__scalar(kagi__y *y, kagi__yn *n, const char *path, const char **out)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return kagi__yerr(y, n, path, "expected a single value, found a %s",
                          !n ? "nothing" : n->type == YAML_MAPPING_NODE ? "mapping" : "list");
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length)
        return kagi__yerr(y, n, path, "value holds a NUL byte");
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (!v[0] || !strcmp(v, "~") || !strcmp(v, "null")))
        return kagi__yerr(y, n, path, "needs a value");
    *out = v;
    return KAGI_OK;
}

static int kagi__str(kagi__y *y, kagi__yn *n, const char *path, char *buf, size_t len)
{
    const char *v;
    KAGI__TRY(kagi__scalar(y, n, path, &v));
    if (strlen(v) >= len) return kagi__yerr(y, n, path, "'%.40s...' is longer than %zu bytes", v, len - 1);
    memcpy(buf, v, strlen(v) + 1);
    return KAGI_OK;
}

static int kagi__name(kagi__y *y, kagi__yn *n, const char *path, char *buf)
{
    KAGI__TRY(kagi__str(y, n, path, buf, KAGI_SC_NAME_MAX));
    const char *p = kagi__name_problem(buf);
    if (p) return kagi__yerr(y, n, path, "'%s' %s", buf, p);
    return KAGI_OK;
}

/* A number (with an optional unit suffix handled by the callers) in a
 * range; lo_incl/hi_incl say whether the ends belong to it. */
static int kagi__range_err(kagi__y *y, kagi__yn *n, const char *path, const char *v, double lo,
                           int lo_incl, double hi, int hi_incl, const char *unit)
{
    return kagi__yerr(y, n, path, "%s%s%s is impossible: must lie in %s%g, %g%s%s%s", v,
                      unit[0] ? " " : "", unit, lo_incl ? "[" : "(", lo, hi, hi_incl ? "]" : ")",
                      unit[0] ? " " : "", unit);
}

static int kagi__num(kagi__y *y, kagi__yn *n, const char *path, double lo, int lo_incl,
                     double hi, int hi_incl, const char *unit, double *out)
{
    const char *v;
    KAGI__TRY(kagi__scalar(y, n, path, &v));
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    while (*end == ' ') end++;
    if (end == v || *end || !isfinite(d) || errno == ERANGE)
        return kagi__yerr(y, n, path, "'%s' is not a number%s%s", v, unit[0] ? " of " : "", unit);
    if (!((lo_incl ? d >= lo : d > lo) && (hi_incl ? d <= hi : d < hi)))
        return kagi__range_err(y, n, path, v, lo, lo_incl, hi, hi_incl, unit);
    *out = d;
    return KAGI_OK;
}

/* A whole number with an optional unit from a table of multipliers. */
typedef struct kagi__unit {
    const char *name;
    double mult;
} kagi__unit;

static const kagi__unit kagi__bit_units[] = {
    {"bit", 1},        {"bits", 1},       {"kbit", 1e3},        {"Mbit", 1e6},
    {"Gbit", 1e9},     {"Tbit", 1e12},    {"B", 8},             {"kB", 8e3},
    {"MB", 8e6},       {"GB", 8e9},       {"TB", 8e12},         {"KiB", 8192},
    {"MiB", 8388608},  {"GiB", 8589934592.0}, {"TiB", 8796093022208.0}, {NULL, 0}};
static const kagi__unit kagi__rate_units[] = {
    {"bit/s", 1}, {"bps", 1}, {"kbit/s", 1e3}, {"kbps", 1e3}, {"Mbit/s", 1e6},
    {"Mbps", 1e6}, {"Gbit/s", 1e9}, {"Gbps", 1e9}, {NULL, 0}};

static int kagi__with_unit(kagi__y *y, kagi__yn *n, const char *path, const kagi__unit *units,
                           const char *what, double *out)
{
    const char *v;
    KAGI__TRY(kagi__scalar(y, n, path, &v));
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || !isfinite(d) || errno == ERANGE)
        return kagi__yerr(y, n, path, "'%s' is not a number of %s", v, what);
    while (*end == ' ') end++;
    if (*end) {
        const kagi__unit *u = units;
        while (u->name && strcmp(u->name, end)) u++;
        if (!u->name) {
            const char *names[24];
            size_t k = 0;
            for (const kagi__unit *w = units; w->name && k < 24; w++) names[k++] = w->name;
            char sug[80];
            kagi__suggest(end, names, k, sug, sizeof sug);
            return kagi__yerr(y, n, path, "'%s': unknown unit '%s' for %s%s", v, end, what, sug);
        }
        d *= u->mult;
    }
    *out = d;
    return KAGI_OK;
}

static int kagi__bits(kagi__y *y, kagi__yn *n, const char *path, uint64_t lo, uint64_t hi,
                      uint64_t *out)
{
    double d;
    KAGI__TRY(kagi__with_unit(y, n, path, kagi__bit_units, "bits", &d));
    const char *v = (const char *)n->data.scalar.value;
    if (d != floor(d)) return kagi__yerr(y, n, path, "'%s' is not a whole number of bits", v);
    if (!(d >= (double)lo && d <= (double)hi))
        return kagi__yerr(y, n, path, "%s is impossible: must lie in [%llu, %.6g] bits", v,
                          (unsigned long long)lo, (double)hi);
    *out = (uint64_t)d;
    return KAGI_OK;
}

static int kagi__rate(kagi__y *y, kagi__yn *n, const char *path, double *out)
{
    double d;
    KAGI__TRY(kagi__with_unit(y, n, path, kagi__rate_units, "bit/s", &d));
    if (!(d > 0 && d <= 1e12))
        return kagi__yerr(y, n, path, "%s is impossible: must lie in (0, 1e12] bit/s",
                          (const char *)n->data.scalar.value);
    *out = d;
    return KAGI_OK;
}

static int kagi__dur(kagi__y *y, kagi__yn *n, const char *path, int never_ok, double *out)
{
    const char *v;
    KAGI__TRY(kagi__scalar(y, n, path, &v));
    if (never_ok && !strcmp(v, "never")) {
        *out = INFINITY;
        return KAGI_OK;
    }
    if (kagi_duration_parse(v, out) != KAGI_OK) {
        char d[300];
        snprintf(d, sizeof d, "%s", kagi_errdetail());
        return kagi__yerr(y, n, path, "%s%s", d, never_ok ? " or never" : "");
    }
    return KAGI_OK;
}

static int kagi__bool(kagi__y *y, kagi__yn *n, const char *path, int *out)
{
    const char *v;
    KAGI__TRY(kagi__scalar(y, n, path, &v));
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes", "on", "On"};
    static const char *const f[] = {"false", "False", "FALSE", "no", "No", "off", "Off"};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(v, t[i])) return *out = 1, KAGI_OK;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (!strcmp(v, f[i])) return *out = 0, KAGI_OK;
    return kagi__yerr(y, n, path, "'%s' is not true or false", v);
}

/* afterpulse_model: gate or lim (docs/keyrate.md). */
static int kagi__ap_model(kagi__y *y, kagi__yn *n, const char *path, kagi_afterpulse_model *out)
{
    const char *v;
    KAGI__TRY(kagi__scalar(y, n, path, &v));
    if (kagi_afterpulse_model_parse(v, out)) return kagi__yerr(y, n, path, "%s", kagi_errdetail());
    return KAGI_OK;
}

static int kagi__u64(kagi__y *y, kagi__yn *n, const char *path, uint64_t lo, uint64_t hi,
                     uint64_t *out)
{
    const char *v;
    KAGI__TRY(kagi__scalar(y, n, path, &v));
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno == ERANGE || v[0] == '-') {
        double d = strtod(v, &end); /* 1e6 */
        if (end == v || *end || !(d >= 0) || d != floor(d) || d > 1.8e19)
            return kagi__yerr(y, n, path, "'%s' is not a whole number", v);
        x = (unsigned long long)d;
    }
    if (x < lo || x > hi)
        return kagi__yerr(y, n, path, "%s is impossible: must lie in [%llu, %llu]", v,
                          (unsigned long long)lo, (unsigned long long)hi);
    *out = x;
    return KAGI_OK;
}

/* ---- Mappings ----------------------------------------------------------------- */

/* Walk a mapping whose keys must come from names (n of them). For each
 * pair calls fn(y, index, value, path_of_key, ctx). Unknown or repeated
 * keys are errors. */
typedef int (*kagi__pair_fn)(kagi__y *y, size_t key, kagi__yn *val, const char *path, void *ctx);

static int kagi__map(kagi__y *y, kagi__yn *m, const char *path, const char *const *names,
                     size_t n, const char *hint, kagi__pair_fn fn, void *ctx)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return kagi__yerr(y, m, path, "expected a mapping of keys (%s: ...)", names[0]);
    unsigned char seen[64] = {0};
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        kagi__yn *k = kagi__node(y, p->key), *v = kagi__node(y, p->value);
        if (!k || k->type != YAML_SCALAR_NODE)
            return kagi__yerr(y, k, path, "a key must be a plain word");
        const char *key = (const char *)k->data.scalar.value;
        char kp[300];
        snprintf(kp, sizeof kp, "%s%s%.60s", path, path[0] ? "." : "", key);
        size_t i = 0;
        while (i < n && strcmp(names[i], key)) i++;
        if (i == n) {
            char sug[96];
            kagi__suggest(key, names, n, sug, sizeof sug);
            if (!hint || !(strstr(key, "satellite") || strstr(key, "ground"))) hint = "";
            return kagi__yerr(y, k, kp, "unknown key%s%s", sug, hint);
        }
        if (i < 64 && seen[i]) return kagi__yerr(y, k, kp, "given twice");
        if (i < 64) seen[i] = 1;
        KAGI__TRY(fn(y, i, v, kp, ctx));
    }
    return KAGI_OK;
}

/* The value of key name in mapping m, or NULL. */
static kagi__yn *kagi__get(kagi__y *y, kagi__yn *m, const char *name)
{
    if (!m || m->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        kagi__yn *k = kagi__node(y, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, name))
            return kagi__node(y, p->value);
    }
    return NULL;
}

static int kagi__seq(kagi__y *y, kagi__yn *n, const char *path, size_t *count)
{
    if (!n || n->type != YAML_SEQUENCE_NODE)
        return kagi__yerr(y, n, path, "expected a list (items starting with '- ')");
    *count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    return KAGI_OK;
}

static kagi__yn *kagi__item(kagi__y *y, kagi__yn *seq, size_t i)
{
    return kagi__node(y, seq->data.sequence.items.start[i]);
}

/* "unknown WHAT 'NAME'" with a suggestion from count records of stride bytes
 * at recs, each starting with its name (kagi_sc_node, kagi_sc_link). */
_Static_assert(offsetof(kagi_sc_node, name) == 0, "kagi__unknown reads the name first");
_Static_assert(offsetof(kagi_sc_link, name) == 0, "kagi__unknown reads the name first");
static int kagi__unknown(kagi__y *y, kagi__yn *n, const char *path, const char *what,
                         const char *name, const void *recs, size_t stride, size_t count)
{
    const char **names = malloc((count + 1) * sizeof *names);
    char sug[96] = "";
    if (names) {
        for (size_t k = 0; k < count; k++) names[k] = (const char *)recs + k * stride;
        kagi__suggest(name, names, count, sug, sizeof sug);
        free(names);
    }
    return kagi__yerr(y, n, path, "unknown %s '%s'%s", what, name, sug);
}

/* The error kagi_errdetail describes (from a library call), prefixed, at n.
 * Copied first: kagi__yerr sets a new detail. */
static int kagi__yerr_detail(kagi__y *y, kagi__yn *n, const char *path, const char *prefix)
{
    char d[400];
    snprintf(d, sizeof d, "%s", kagi_errdetail());
    return kagi__yerr(y, n, path, "%s%s", prefix, d);
}

/* A node named by a scalar. */
static int kagi__node_ref(kagi__y *y, kagi__yn *n, const char *path, size_t *out)
{
    char name[KAGI_SC_NAME_MAX];
    KAGI__TRY(kagi__name(y, n, path, name));
    long i = kagi_scenario_node(y->sc, name);
    if (i < 0)
        return kagi__unknown(y, n, path, "node", name, y->sc->nodes, sizeof *y->sc->nodes,
                             y->sc->nnodes);
    *out = (size_t)i;
    return KAGI_OK;
}

/* "A-B" into out, or a name too long (which the name check then reports). */
static int kagi__join(char out[KAGI_SC_NAME_MAX], const char *a, char sep, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 >= KAGI_SC_NAME_MAX) return 0;
    memcpy(out, a, la);
    out[la] = sep;
    memcpy(out + la + 1, b, lb + 1);
    return 1;
}

/* ---- Nodes -------------------------------------------------------------------- */

static const char *const kagi__node_keys[] = {"name", "lat", "lon", "trusted", "capacity"};

static int kagi__node_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi_sc_node *n = ctx;
    switch (k) {
    case 0: return kagi__name(y, v, path, n->name);
    case 1: return kagi__num(y, v, path, -90, 1, 90, 1, "degrees", &n->lat_deg);
    case 2: return kagi__num(y, v, path, -180, 1, 180, 1, "degrees", &n->lon_deg);
    case 3: return kagi__bool(y, v, path, &n->trusted);
    default: return kagi__bits(y, v, path, 1, (uint64_t)1 << 60, &n->capacity_bits);
    }
}

static int kagi__nodes(kagi__y *y, kagi__yn *seq)
{
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, seq, "nodes", &n));
    for (size_t i = 0; i < n; i++) {
        kagi__yn *it = kagi__item(y, seq, i);
        char path[64];
        snprintf(path, sizeof path, "nodes[%zu]", i);
        kagi_sc_node nd = {.trusted = 1, .capacity_bits = 1000000000, .lat_deg = NAN,
                           .lon_deg = NAN, .line = it ? it->start_mark.line + 1 : 0};
        KAGI__TRY(kagi__map(y, it, path, kagi__node_keys, 5, NULL, kagi__node_pair, &nd));
        static const char *const req[] = {"name", "lat", "lon"};
        for (size_t r = 0; r < 3; r++)
            if (!kagi__get(y, it, req[r]))
                return kagi__yerr(y, it, path, "missing key '%s'", req[r]);
        if (kagi_scenario_node(y->sc, nd.name) >= 0)
            return kagi__yerr(y, kagi__get(y, it, "name"), path, "name '%s' is used twice",
                              nd.name);
        KAGI__TRY(kagi_scenario_add_node(y->sc, &nd, NULL));
    }
    return KAGI_OK;
}

/* ---- Links ---------------------------------------------------------------------- */

/* Keys of the link model, shared by links and link_defaults (first), then
 * the keys only a link has. */
static const char *const kagi__link_keys[] = {
    "protocol", "decoys", "block", "optimize", "route_factor",
    "fiber_loss", "extra_loss", "detector_efficiency", "dark_count", "afterpulse",
    "afterpulse_model", "dead_time", "misalignment", "mu", "decoy_mu", "vacuum_mu", "p_mu",
    "p_x", "clock", "ec_efficiency", "send_prob", "eps_sec", "eps_cor",
    /* link only */
    "name", "ends", "length_km", "key_rate", "block_bits", "windows", "pool_bits"};
enum { KAGI__NMODEL = 23, KAGI__NLINK = 30, KAGI__FIRST_MODEL_ONLY = 0 };

/* [PS, PD]: signal and decoy probabilities, the vacuum the rest. */
static int kagi__pmu(kagi__y *y, kagi__yn *v, const char *path, double p_mu[3])
{
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, v, path, &n));
    if (n != 2)
        return kagi__yerr(y, v, path, "expected [PS, PD]: signal and decoy probabilities (the "
                          "vacuum gets the rest)");
    double a, b;
    KAGI__TRY(kagi__num(y, kagi__item(y, v, 0), path, 0, 0, 1, 0, "", &a));
    KAGI__TRY(kagi__num(y, kagi__item(y, v, 1), path, 0, 0, 1, 0, "", &b));
    if (!(a + b < 1))
        return kagi__yerr(y, v, path, "%g + %g is impossible: must be below 1 (the vacuum gets "
                          "the rest)", a, b);
    p_mu[0] = a;
    p_mu[1] = b;
    p_mu[2] = 1 - a - b;
    return KAGI_OK;
}

/* The device and protocol keys that fibre links and the two ends of a
 * free-space link share, parsed the same way into q. The order of each run
 * (det_eff..misalignment, mu..p_mu, clock..ec_efficiency, eps_sec..eps_cor)
 * is that of the key tables, which index into it by offset. */
enum {
    KAGI__QF_DET_EFF, KAGI__QF_DARK, KAGI__QF_AFTERPULSE, KAGI__QF_AP_MODEL, KAGI__QF_DEAD,
    KAGI__QF_MISALIGN, KAGI__QF_MU, KAGI__QF_DECOY_MU, KAGI__QF_VACUUM_MU, KAGI__QF_P_MU,
    KAGI__QF_CLOCK, KAGI__QF_EC, KAGI__QF_EPS_SEC, KAGI__QF_EPS_COR
};

static int kagi__qkd_field(kagi__y *y, int f, kagi__yn *v, const char *path, kagi_link *q)
{
    switch (f) {
    case KAGI__QF_DET_EFF: return kagi__num(y, v, path, 0, 0, 1, 1, "", &q->det_eff);
    case KAGI__QF_DARK: return kagi__num(y, v, path, 0, 1, 1, 0, "per pulse", &q->dark_count);
    case KAGI__QF_AFTERPULSE: return kagi__num(y, v, path, 0, 1, 1, 0, "", &q->afterpulse);
    case KAGI__QF_AP_MODEL: return kagi__ap_model(y, v, path, &q->afterpulse_model);
    case KAGI__QF_DEAD: return kagi__num(y, v, path, 0, 1, 1, 1, "s", &q->dead_time_s);
    case KAGI__QF_MISALIGN: return kagi__num(y, v, path, 0, 1, 0.5, 1, "", &q->misalignment);
    case KAGI__QF_MU: return kagi__num(y, v, path, 0, 0, 100, 1, "photons", &q->mu[0]);
    case KAGI__QF_DECOY_MU: return kagi__num(y, v, path, 0, 0, 100, 1, "photons", &q->mu[1]);
    case KAGI__QF_VACUUM_MU: return kagi__num(y, v, path, 0, 1, 100, 1, "photons", &q->mu[2]);
    case KAGI__QF_P_MU: return kagi__pmu(y, v, path, q->p_mu);
    case KAGI__QF_CLOCK: return kagi__num(y, v, path, 0, 0, 1e15, 1, "Hz", &q->clock_hz);
    case KAGI__QF_EC: return kagi__num(y, v, path, 1, 1, 10, 1, "", &q->f_ec);
    case KAGI__QF_EPS_SEC: return kagi__num(y, v, path, 0, 0, 1, 0, "", &q->eps_sec);
    default: return kagi__num(y, v, path, 0, 0, 1, 0, "", &q->eps_cor);
    }
}

typedef struct kagi__lctx {
    kagi_sc_link *l;
    unsigned model_keys;    /* how many device/protocol keys the item gave */
    const char *first_model; /* one of them, for messages */
    kagi__yn *first_model_node;
} kagi__lctx;

static int kagi__windows(kagi__y *y, kagi__yn *seq, const char *path, kagi_sc_link *l);

static int kagi__link_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi__lctx *c = ctx;
    kagi_sc_link *l = c->l;
    kagi_link *m = &l->model;
    const char *s;
    if (k < KAGI__NMODEL && k != 4) {
        c->model_keys++;
        if (!c->first_model) {
            c->first_model = kagi__link_keys[k];
            c->first_model_node = v;
        }
    }
    switch (k) {
    case 0:
        KAGI__TRY(kagi__scalar(y, v, path, &s));
        if (kagi_protocol_parse(s, &l->protocol)) return kagi__yerr(y, v, path, "%s", kagi_errdetail());
        return KAGI_OK;
    case 1:
        KAGI__TRY(kagi__scalar(y, v, path, &s));
        if (!strcmp(s, "2"))
            l->decoys = KAGI_DECOYS_TWO;
        else if (!strcmp(s, "infinite"))
            l->decoys = KAGI_DECOYS_INFINITE;
        else
            return kagi__yerr(y, v, path, "'%s' is not 2 or infinite", s);
        return KAGI_OK;
    case 2:
        KAGI__TRY(kagi__scalar(y, v, path, &s));
        if (!strcmp(s, "asymptotic")) {
            l->n_block = 0;
            return KAGI_OK;
        }
        KAGI__TRY(kagi__num(y, v, path, 0, 1, 1e15, 1, "detections", &l->n_block));
        if (l->n_block > 0 && l->n_block < 100)
            return kagi__yerr(y, v, path, "%s is impossible: a finite block holds at least 100 "
                              "detections (0 or asymptotic: no block)", s);
        return KAGI_OK;
    case 3: return kagi__bool(y, v, path, &l->optimize);
    case 4: return kagi__num(y, v, path, 1, 1, 10, 1, "", &l->route_factor);
    case 5: return kagi__num(y, v, path, 0, 1, 100, 1, "dB/km", &m->fiber_loss_db_km);
    case 6: return kagi__num(y, v, path, 0, 1, 1000, 1, "dB", &m->extra_loss_db);
    case 7: case 8: case 9: case 10: case 11: case 12: /* detector_efficiency..misalignment */
        return kagi__qkd_field(y, KAGI__QF_DET_EFF + (int)(k - 7), v, path, m);
    case 13: case 14: case 15: case 16: /* mu..p_mu */
        return kagi__qkd_field(y, KAGI__QF_MU + (int)(k - 13), v, path, m);
    case 17: return kagi__num(y, v, path, 0, 0, 1, 1, "", &m->p_x);
    case 18: case 19: /* clock, ec_efficiency */
        return kagi__qkd_field(y, KAGI__QF_CLOCK + (int)(k - 18), v, path, m);
    case 20: return kagi__num(y, v, path, 0, 0, 1, 0, "", &m->send_prob);
    case 21: case 22: /* eps_sec, eps_cor */
        return kagi__qkd_field(y, KAGI__QF_EPS_SEC + (int)(k - 21), v, path, m);
    case 23: return kagi__name(y, v, path, l->name);
    case 24: {
        size_t n = 0;
        KAGI__TRY(kagi__seq(y, v, path, &n));
        if (n != 2) return kagi__yerr(y, v, path, "expected [NODE, NODE], got %zu items", n);
        KAGI__TRY(kagi__node_ref(y, kagi__item(y, v, 0), path, &l->a));
        KAGI__TRY(kagi__node_ref(y, kagi__item(y, v, 1), path, &l->b));
        if (l->a == l->b)
            return kagi__yerr(y, v, path, "both ends are %s", y->sc->nodes[l->a].name);
        return KAGI_OK;
    }
    case 25:
        KAGI__TRY(kagi__scalar(y, v, path, &s));
        if (!strcmp(s, "auto")) {
            l->length_km = -1;
            return KAGI_OK;
        }
        return kagi__num(y, v, path, 0, 1, 40000, 1, "km", &l->length_km);
    case 26:
        l->kind = KAGI_SC_LINK_FIXED;
        return kagi__rate(y, v, path, &l->key_rate_bps);
    case 27: return kagi__bits(y, v, path, 1, (uint64_t)1 << 50, &l->block_bits);
    case 28:
        l->kind = KAGI_SC_LINK_SCHEDULED;
        return kagi__windows(y, v, path, l);
    default: return kagi__bits(y, v, path, 1, (uint64_t)1 << 60, &l->pool_bits);
    }
}

static const char *const kagi__win_keys[] = {"from", "to", "bits"};

static int kagi__win_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi_sc_window *w = ctx;
    if (k == 0) return kagi__dur(y, v, path, 0, &w->t0_s);
    if (k == 1) return kagi__dur(y, v, path, 0, &w->t1_s);
    return kagi__bits(y, v, path, 0, (uint64_t)1 << 50, &w->bits);
}

static int kagi__windows(kagi__y *y, kagi__yn *seq, const char *path, kagi_sc_link *l)
{
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, seq, path, &n));
    if (n > 10000000) return kagi__yerr(y, seq, path, "more than 10^7 windows");
    free(l->windows);
    l->windows = n ? calloc(n, sizeof *l->windows) : NULL;
    l->nwindows = 0;
    if (n && !l->windows) return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
    for (size_t i = 0; i < n; i++) {
        kagi__yn *it = kagi__item(y, seq, i);
        char p[320];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        kagi_sc_window w = {0, 0, 0};
        KAGI__TRY(kagi__map(y, it, p, kagi__win_keys, 3, NULL, kagi__win_pair, &w));
        for (size_t r = 0; r < 3; r++)
            if (!kagi__get(y, it, kagi__win_keys[r]))
                return kagi__yerr(y, it, p, "missing key '%s'", kagi__win_keys[r]);
        if (!(w.t1_s > w.t0_s))
            return kagi__yerr(y, kagi__get(y, it, "to"), p, "to: must come after from");
        if (i && w.t0_s < l->windows[i - 1].t1_s)
            return kagi__yerr(y, it, p, "starts before the previous window ends (list windows "
                              "in time order, without overlap)");
        l->windows[l->nwindows++] = w;
    }
    return KAGI_OK;
}

static int kagi__defaults_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    return kagi__link_pair(y, k, v, path, ctx);
}

static int kagi__links(kagi__y *y, kagi__yn *seq, const kagi_sc_link *defaults)
{
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, seq, "links", &n));
    for (size_t i = 0; i < n; i++) {
        kagi__yn *it = kagi__item(y, seq, i);
        char path[64];
        snprintf(path, sizeof path, "links[%zu]", i);
        kagi_sc_link l = *defaults;
        l.windows = NULL;
        l.nwindows = 0;
        l.line = it ? it->start_mark.line + 1 : 0;
        kagi__lctx c = {&l, 0, NULL, NULL};
        int rc = kagi__map(y, it, path, kagi__link_keys, KAGI__NLINK, NULL, kagi__link_pair, &c);
        if (rc == KAGI_OK && !kagi__get(y, it, "ends"))
            rc = kagi__yerr(y, it, path, "missing key 'ends' (ends: [NODE, NODE])");
        if (rc == KAGI_OK && kagi__get(y, it, "key_rate") && kagi__get(y, it, "windows"))
            rc = kagi__yerr(y, kagi__get(y, it, "windows"), path,
                            "windows: a link has either key_rate or windows");
        if (rc == KAGI_OK && l.kind != KAGI_SC_LINK_MODEL && c.model_keys) {
            char p[128];
            snprintf(p, sizeof p, "%s.%s", path, c.first_model);
            rc = kagi__yerr(y, c.first_model_node, p, "a link with %s has no device model "
                            "(drop this key)", l.kind == KAGI_SC_LINK_FIXED ? "key_rate" : "windows");
        }
        if (rc == KAGI_OK && kagi__get(y, it, "block_bits") && l.kind != KAGI_SC_LINK_FIXED)
            rc = kagi__yerr(y, kagi__get(y, it, "block_bits"), path,
                            "block_bits: only for a link with key_rate (model links deliver "
                            "their finite block)");
        if (rc == KAGI_OK && !l.name[0] &&
            !kagi__join(l.name, y->sc->nodes[l.a].name, '-', y->sc->nodes[l.b].name))
            rc = kagi__yerr(y, it, path, "the default name A-B would be longer than 63 bytes: "
                            "give the link a name:");
        if (rc == KAGI_OK && kagi__name_problem(l.name))
            rc = kagi__yerr(y, it, path, "name '%s' %s (give the link a shorter name:)", l.name,
                            kagi__name_problem(l.name));
        if (rc == KAGI_OK && kagi_scenario_link(y->sc, l.name) >= 0)
            rc = kagi__yerr(y, kagi__get(y, it, "name") ? kagi__get(y, it, "name") : it, path,
                            "name '%s' is used twice%s", l.name,
                            kagi__get(y, it, "name") ? "" : " (parallel links need a name:)");
        if (rc != KAGI_OK) {
            free(l.windows);
            return rc;
        }
        KAGI__TRY(kagi_scenario_add_link(y->sc, &l, NULL));
    }
    return KAGI_OK;
}

/* ---- SAEs (testbed applications) ---------------------------------------------------- */

static const char *const kagi__sae_keys[] = {"id", "node"};

static int kagi__sae_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi_sc_sae *a = ctx;
    if (k == 1) return kagi__node_ref(y, v, path, &a->node);
    KAGI__TRY(kagi__str(y, v, path, a->id, sizeof a->id));
    if (!kagi_sc_valid_id(a->id))
        return kagi__yerr(y, v, path, "'%s' is not an SAE id (1 to %d of A-Z a-z 0-9 . _ ~ -)",
                          a->id, KAGI_SC_SAE_ID_MAX);
    return KAGI_OK;
}

static int kagi__saes(kagi__y *y, kagi__yn *seq)
{
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, seq, "saes", &n));
    for (size_t i = 0; i < n; i++) {
        kagi__yn *it = kagi__item(y, seq, i);
        char path[64];
        snprintf(path, sizeof path, "saes[%zu]", i);
        kagi_sc_sae a;
        memset(&a, 0, sizeof a);
        a.line = it ? it->start_mark.line + 1 : 0;
        KAGI__TRY(kagi__map(y, it, path, kagi__sae_keys, 2, NULL, kagi__sae_pair, &a));
        if (!kagi__get(y, it, "id") || !kagi__get(y, it, "node"))
            return kagi__yerr(y, it, path, "missing key '%s'", kagi__get(y, it, "id") ? "node" : "id");
        long j = kagi_scenario_sae(y->sc, a.id);
        if (j >= 0)
            return kagi__yerr(y, kagi__get(y, it, "id"), path, "id: '%s' is already used by "
                              "saes[%ld]", a.id, j);
        KAGI__TRY(kagi_scenario_add_sae(y->sc, &a, NULL));
    }
    return KAGI_OK;
}

/* An SAE named by its id: 1 + its index. */
static int kagi__sae_ref(kagi__y *y, kagi__yn *v, const char *path, size_t *out)
{
    char id[KAGI_SC_SAE_ID_MAX + 1];
    KAGI__TRY(kagi__str(y, v, path, id, sizeof id));
    long i = kagi_scenario_sae(y->sc, id);
    if (i < 0) {
        const char **names = malloc((y->sc->nsaes + 1) * sizeof *names);
        char sug[96] = "";
        if (names) {
            for (size_t k = 0; k < y->sc->nsaes; k++) names[k] = y->sc->saes[k].id;
            kagi__suggest(id, names, y->sc->nsaes, sug, sizeof sug);
            free(names);
        }
        return kagi__yerr(y, v, path, "unknown SAE '%s'%s%s", id, sug,
                          y->sc->nsaes ? "" : " (list it under saes:)");
    }
    *out = (size_t)i + 1;
    return KAGI_OK;
}

/* ---- Demands ------------------------------------------------------------------------ */

static const char *const kagi__dem_keys[] = {"name", "from", "to", "rate", "key_size",
                                             "arrivals", "schedule", "policy", "timeout",
                                             "queue", "split", "start", "stop", "master",
                                             "slave"};
#define KAGI__NDEM 15
static const char *const kagi__req_keys[] = {"at", "bits", "count", "every"};

static int kagi__req_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi_sc_request *r = ctx;
    switch (k) {
    case 0: return kagi__dur(y, v, path, 0, &r->at_s);
    case 1: return kagi__bits(y, v, path, 1, (uint64_t)1 << 40, &r->bits);
    case 2: return kagi__u64(y, v, path, 1, 100000000, &r->count);
    default:
        KAGI__TRY(kagi__dur(y, v, path, 0, &r->every_s));
        if (!(r->every_s > 0)) return kagi__yerr(y, v, path, "must be positive");
        return KAGI_OK;
    }
}

static int kagi__schedule(kagi__y *y, kagi__yn *seq, const char *path, kagi_sc_demand *d)
{
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, seq, path, &n));
    if (!n) return kagi__yerr(y, seq, path, "is empty");
    free(d->schedule);
    d->schedule = calloc(n, sizeof *d->schedule);
    d->nschedule = 0;
    if (!d->schedule) return kagi__err(KAGI_ERR_NOMEM, "scenario: out of memory");
    for (size_t i = 0; i < n; i++) {
        kagi__yn *it = kagi__item(y, seq, i);
        char p[320];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        kagi_sc_request r = {0, 0, 1, 0};
        KAGI__TRY(kagi__map(y, it, p, kagi__req_keys, 4, NULL, kagi__req_pair, &r));
        if (!kagi__get(y, it, "at") || !kagi__get(y, it, "bits"))
            return kagi__yerr(y, it, p, "missing key '%s'", kagi__get(y, it, "at") ? "bits" : "at");
        if (r.count > 1 && !kagi__get(y, it, "every"))
            return kagi__yerr(y, kagi__get(y, it, "count"), p, "count: needs every: (the time "
                              "between the requests)");
        d->schedule[d->nschedule++] = r;
    }
    return KAGI_OK;
}

static int kagi__dem_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi_sc_demand *d = ctx;
    const char *s;
    uint64_t u;
    switch (k) {
    case 0: return kagi__name(y, v, path, d->name);
    case 1: return kagi__node_ref(y, v, path, &d->src);
    case 2: return kagi__node_ref(y, v, path, &d->dst);
    case 3: return kagi__rate(y, v, path, &d->rate_bps);
    case 4: return kagi__bits(y, v, path, 1, (uint64_t)1 << 40, &d->key_bits);
    case 5:
        KAGI__TRY(kagi__scalar(y, v, path, &s));
        if (strcmp(s, "periodic") && strcmp(s, "poisson"))
            return kagi__yerr(y, v, path, "'%s' is not periodic or poisson", s);
        d->poisson = !strcmp(s, "poisson");
        return KAGI_OK;
    case 6: return kagi__schedule(y, v, path, d);
    case 7:
        KAGI__TRY(kagi__scalar(y, v, path, &s));
        if (strcmp(s, "wait") && strcmp(s, "block"))
            return kagi__yerr(y, v, path, "'%s' is not wait or block", s);
        d->policy = !strcmp(s, "block") ? KAGI_SC_BLOCK : KAGI_SC_WAIT;
        return KAGI_OK;
    case 8:
        KAGI__TRY(kagi__dur(y, v, path, 1, &d->timeout_s));
        if (!(d->timeout_s > 0)) return kagi__yerr(y, v, path, "must be positive (or never)");
        return KAGI_OK;
    case 9: return kagi__u64(y, v, path, 0, 100000000, &d->max_queue);
    case 10:
        KAGI__TRY(kagi__u64(y, v, path, 1, 8, &u));
        d->split = (unsigned)u;
        return KAGI_OK;
    case 11: return kagi__dur(y, v, path, 0, &d->start_s);
    case 12: return kagi__dur(y, v, path, 0, &d->stop_s);
    default: return kagi__sae_ref(y, v, path, k == 13 ? &d->master : &d->slave);
    }
}

static int kagi__demands(kagi__y *y, kagi__yn *seq)
{
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, seq, "demands", &n));
    for (size_t i = 0; i < n; i++) {
        kagi__yn *it = kagi__item(y, seq, i);
        char path[64];
        snprintf(path, sizeof path, "demands[%zu]", i);
        kagi_sc_demand d;
        kagi_sc_demand_defaults(&d);
        d.line = it ? it->start_mark.line + 1 : 0;
        int rc = kagi__map(y, it, path, kagi__dem_keys, KAGI__NDEM, NULL, kagi__dem_pair, &d);
        if (rc == KAGI_OK && (!kagi__get(y, it, "from") || !kagi__get(y, it, "to")))
            rc = kagi__yerr(y, it, path, "missing key '%s'", kagi__get(y, it, "from") ? "to" : "from");
        if (rc == KAGI_OK && !kagi__get(y, it, "rate") == !kagi__get(y, it, "schedule"))
            rc = kagi__yerr(y, it, path, "give either rate (bit/s) or schedule");
        if (rc == KAGI_OK && kagi__get(y, it, "schedule") &&
            (kagi__get(y, it, "key_size") || kagi__get(y, it, "arrivals")))
            rc = kagi__yerr(y, kagi__get(y, it, "schedule"), path,
                            "schedule: sizes and times come from the schedule (drop key_size "
                            "and arrivals)");
        if (rc == KAGI_OK && d.src == d.dst)
            rc = kagi__yerr(y, kagi__get(y, it, "to"), path, "to: same node as from");
        if (rc == KAGI_OK && !(d.stop_s > d.start_s))
            rc = kagi__yerr(y, kagi__get(y, it, "stop"), path, "stop: must come after start");
        for (int e = 0; rc == KAGI_OK && e < 2; e++) {
            size_t a = e ? d.slave : d.master, at = e ? d.dst : d.src;
            if (a && y->sc->saes[a - 1].node != at)
                rc = kagi__yerr(y, kagi__get(y, it, e ? "slave" : "master"), path,
                                "%s: SAE %s is at node %s, not at %s (the demand's %s)",
                                e ? "slave" : "master", y->sc->saes[a - 1].id,
                                y->sc->nodes[y->sc->saes[a - 1].node].name,
                                y->sc->nodes[at].name, e ? "to" : "from");
        }
        if (rc == KAGI_OK && !d.name[0] &&
            !kagi__join(d.name, y->sc->nodes[d.src].name, '>', y->sc->nodes[d.dst].name))
            rc = kagi__yerr(y, it, path, "the default name FROM>TO would be longer than 63 "
                            "bytes: give the demand a name:");
        if (rc == KAGI_OK && kagi__name_problem(d.name))
            rc = kagi__yerr(y, it, path, "name '%s' %s (give the demand a shorter name:)", d.name,
                            kagi__name_problem(d.name));
        for (size_t j = 0; rc == KAGI_OK && j < y->sc->ndemands; j++)
            if (!strcmp(y->sc->demands[j].name, d.name))
                rc = kagi__yerr(y, kagi__get(y, it, "name") ? kagi__get(y, it, "name") : it,
                                path, "name '%s' is used twice%s", d.name,
                                kagi__get(y, it, "name") ? "" : " (give each a name:)");
        if (rc != KAGI_OK) {
            free(d.schedule);
            return rc;
        }
        KAGI__TRY(kagi_scenario_add_demand(y->sc, &d, NULL));
    }
    return KAGI_OK;
}

/* ---- Events ---------------------------------------------------------------------- */

static const char *const kagi__ev_keys[] = {"at", "cut", "repair", "eavesdrop", "node_down",
                                            "node_up", "qber"};

/* A link named by its name, or by [A, B] when one link joins them. */
static int kagi__link_ref(kagi__y *y, kagi__yn *v, const char *path, size_t *out)
{
    if (v && v->type == YAML_SEQUENCE_NODE) {
        size_t n = 0, a, b;
        KAGI__TRY(kagi__seq(y, v, path, &n));
        if (n != 2) return kagi__yerr(y, v, path, "expected a link name or [NODE, NODE]");
        KAGI__TRY(kagi__node_ref(y, kagi__item(y, v, 0), path, &a));
        KAGI__TRY(kagi__node_ref(y, kagi__item(y, v, 1), path, &b));
        size_t found = 0, idx = 0;
        for (size_t i = 0; i < y->sc->nlinks; i++) {
            const kagi_sc_link *l = &y->sc->links[i];
            if ((l->a == a && l->b == b) || (l->a == b && l->b == a)) {
                found++;
                idx = i;
            }
        }
        if (!found)
            return kagi__yerr(y, v, path, "no link joins %s and %s", y->sc->nodes[a].name,
                              y->sc->nodes[b].name);
        if (found > 1)
            return kagi__yerr(y, v, path, "%zu links join %s and %s: name the one you mean",
                              found, y->sc->nodes[a].name, y->sc->nodes[b].name);
        *out = idx;
        return KAGI_OK;
    }
    char name[KAGI_SC_NAME_MAX];
    KAGI__TRY(kagi__name(y, v, path, name));
    long i = kagi_scenario_link(y->sc, name);
    if (i < 0)
        return kagi__unknown(y, v, path, "link", name, y->sc->links, sizeof *y->sc->links,
                             y->sc->nlinks);
    *out = (size_t)i;
    return KAGI_OK;
}

typedef struct kagi__ectx {
    kagi_sc_event e;
    int actions;
    kagi__yn *qber_node;
} kagi__ectx;

static int kagi__ev_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi__ectx *c = ctx;
    switch (k) {
    case 0: return kagi__dur(y, v, path, 0, &c->e.at_s);
    case 1: case 2: case 3:
        c->actions++;
        c->e.kind = k == 1 ? KAGI_SC_CUT : k == 2 ? KAGI_SC_REPAIR : KAGI_SC_EAVESDROP;
        return kagi__link_ref(y, v, path, &c->e.target);
    case 4: case 5:
        c->actions++;
        c->e.kind = k == 4 ? KAGI_SC_NODE_DOWN : KAGI_SC_NODE_UP;
        return kagi__node_ref(y, v, path, &c->e.target);
    default:
        c->qber_node = v;
        return kagi__num(y, v, path, 0, 0, 0.5, 1, "", &c->e.qber);
    }
}

static int kagi__events(kagi__y *y, kagi__yn *seq)
{
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, seq, "events", &n));
    for (size_t i = 0; i < n; i++) {
        kagi__yn *it = kagi__item(y, seq, i);
        char path[64];
        snprintf(path, sizeof path, "events[%zu]", i);
        kagi__ectx c = {{0, KAGI_SC_CUT, 0, 0.25, it ? it->start_mark.line + 1 : 0}, 0, NULL};
        KAGI__TRY(kagi__map(y, it, path, kagi__ev_keys, 7, NULL, kagi__ev_pair, &c));
        if (!kagi__get(y, it, "at")) return kagi__yerr(y, it, path, "missing key 'at'");
        if (c.actions != 1)
            return kagi__yerr(y, it, path, "give exactly one of cut, repair, eavesdrop, "
                              "node_down, node_up");
        if (c.qber_node && c.e.kind != KAGI_SC_EAVESDROP)
            return kagi__yerr(y, c.qber_node, path, "qber: only with eavesdrop");
        KAGI__TRY(kagi_scenario_add_event(y->sc, &c.e));
    }
    return KAGI_OK;
}

/* ---- Ground stations and satellites ------------------------------------------------ */

/* Free-space keys: a ground station sets the receiving end, a satellite
 * its payload (kagi_sc_pair_link puts them together). Units as kagi pass:
 * metres, radians, seconds, per pulse. */
static const char *const kagi__ground_fso_keys[] = {
    "rx_aperture", "fov", "rx_efficiency", "zenith_transmittance", "r0", "scintillation",
    "background_night", "background_day", "detector_efficiency", "dark_count", "afterpulse",
    "afterpulse_model", "dead_time", "misalignment"};
static const char *const kagi__payload_fso_keys[] = {
    "wavelength", "tx_aperture", "divergence", "pointing_jitter", "mu", "decoy_mu",
    "vacuum_mu", "p_mu", "p_x", "clock", "ec_efficiency", "eps_sec", "eps_cor"};
#define KAGI__NGROUND_FSO 14
#define KAGI__NPAYLOAD_FSO 13

/* One ground-side free-space key (index into kagi__ground_fso_keys). */
static int kagi__ground_fso(kagi__y *y, size_t k, kagi__yn *v, const char *path, kagi_fso_link *l)
{
    kagi_fso *f = &l->fso;
    kagi_link *q = &l->qkd;
    switch (k) {
    case 0: return kagi__num(y, v, path, 0, 0, 100, 1, "m", &f->rx_aperture_m);
    case 1: return kagi__num(y, v, path, 0, 1, 1, 1, "rad", &f->rx_fov_rad);
    case 2: return kagi__num(y, v, path, 0, 0, 1, 1, "", &f->rx_efficiency);
    case 3: return kagi__num(y, v, path, 0, 0, 1, 1, "", &f->zenith_transmittance);
    case 4: return kagi__num(y, v, path, 0, 1, 100, 1, "m", &f->r0_zenith_m);
    case 5: return kagi__num(y, v, path, 0, 1, 10, 1, "", &f->scintillation_index);
    case 6: return kagi__num(y, v, path, 0, 1, 1, 0, "per pulse", &f->background_night);
    case 7: return kagi__num(y, v, path, 0, 1, 1, 0, "per pulse", &f->background_day);
    default: /* detector_efficiency..misalignment */
        return kagi__qkd_field(y, KAGI__QF_DET_EFF + (int)(k - 8), v, path, q);
    }
}

/* One payload free-space key (index into kagi__payload_fso_keys). */
static int kagi__payload_fso(kagi__y *y, size_t k, kagi__yn *v, const char *path,
                             kagi_fso_link *l)
{
    kagi_fso *f = &l->fso;
    kagi_link *q = &l->qkd;
    switch (k) {
    case 0: return kagi__num(y, v, path, 1e-7, 1, 1e-4, 1, "m", &f->wavelength_m);
    case 1: return kagi__num(y, v, path, 0, 0, 100, 1, "m", &f->tx_aperture_m);
    case 2: return kagi__num(y, v, path, 0, 1, 0.1, 1, "rad", &f->divergence_rad);
    case 3: return kagi__num(y, v, path, 0, 1, 0.1, 1, "rad", &f->pointing_jitter_rad);
    case 4: case 5: case 6: case 7: /* mu..p_mu */
        return kagi__qkd_field(y, KAGI__QF_MU + (int)(k - 4), v, path, q);
    case 8: return kagi__num(y, v, path, 0, 0, 1, 0, "", &q->p_x);
    case 9: case 10: /* clock, ec_efficiency */
        return kagi__qkd_field(y, KAGI__QF_CLOCK + (int)(k - 9), v, path, q);
    default: /* eps_sec, eps_cor */
        return kagi__qkd_field(y, KAGI__QF_EPS_SEC + (int)(k - 11), v, path, q);
    }
}

static long kagi__index_of(const char *key, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], key)) return (long)i;
    return -1;
}

/* A key of the other end in this item: say where it belongs. */
static int kagi__misplaced(kagi__y *y, kagi__yn *m, const char *path, const char *const *other,
                           size_t nother, const char *where)
{
    if (!m || m->type != YAML_MAPPING_NODE) return KAGI_OK;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        kagi__yn *k = kagi__node(y, p->key);
        if (!k || k->type != YAML_SCALAR_NODE) continue;
        const char *key = (const char *)k->data.scalar.value;
        if (kagi__index_of(key, other, nother) >= 0) {
            char kp[300];
            snprintf(kp, sizeof kp, "%s.%.60s", path, key);
            return kagi__yerr(y, k, kp, "belongs to %s", where);
        }
    }
    return KAGI_OK;
}

/* The preset named by the item's link: key (default micius) into *l. */
static int kagi__preset(kagi__y *y, kagi__yn *it, const char *path, char name[32],
                        kagi_fso_link *l)
{
    kagi__yn *v = kagi__get(y, it, "link");
    char p[300];
    snprintf(p, sizeof p, "%s.link", path);
    if (v) KAGI__TRY(kagi__str(y, v, p, name, 32));
    else snprintf(name, 32, "micius");
    if (kagi_fso_preset(name, l) != KAGI_OK)
        return kagi__yerr_detail(y, v, p, "");
    return KAGI_OK;
}

static const char *const kagi__gs_keys[] = {"name", "lat", "lon", "alt_m", "trusted", "capacity",
                                            "min_elevation", "link"};
#define KAGI__NGS 8

typedef struct kagi__gctx {
    kagi_sc_node n;
    kagi_sc_station g;
} kagi__gctx;

static int kagi__gs_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi__gctx *c = ctx;
    switch (k) {
    case 0: return kagi__name(y, v, path, c->n.name);
    case 1: return kagi__num(y, v, path, -90, 1, 90, 1, "degrees", &c->n.lat_deg);
    case 2: return kagi__num(y, v, path, -180, 1, 180, 1, "degrees", &c->n.lon_deg);
    case 3: return kagi__num(y, v, path, -500, 1, 9000, 1, "m", &c->g.alt_m);
    case 4: return kagi__bool(y, v, path, &c->n.trusted);
    case 5: return kagi__bits(y, v, path, 1, (uint64_t)1 << 60, &c->n.capacity_bits);
    case 6: return kagi__num(y, v, path, 0, 1, 89, 1, "degrees", &c->g.min_el_deg);
    case 7: return KAGI_OK; /* the preset, read first */
    default: return kagi__ground_fso(y, k - KAGI__NGS, v, path, &c->g.link);
    }
}

static int kagi__stations(kagi__y *y, kagi__yn *seq)
{
    const char *keys[KAGI__NGS + KAGI__NGROUND_FSO];
    memcpy(keys, kagi__gs_keys, sizeof kagi__gs_keys);
    memcpy(keys + KAGI__NGS, kagi__ground_fso_keys, sizeof kagi__ground_fso_keys);
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, seq, "ground_stations", &n));
    for (size_t i = 0; i < n; i++) {
        kagi__yn *it = kagi__item(y, seq, i);
        char path[64];
        snprintf(path, sizeof path, "ground_stations[%zu]", i);
        kagi__gctx c;
        memset(&c, 0, sizeof c);
        c.n = (kagi_sc_node){.trusted = 1, .capacity_bits = 1000000000, .lat_deg = NAN,
                             .lon_deg = NAN, .line = it ? it->start_mark.line + 1 : 0};
        kagi_sc_station_defaults(&c.g);
        c.g.line = c.n.line;
        KAGI__TRY(kagi__misplaced(y, it, path, kagi__payload_fso_keys, KAGI__NPAYLOAD_FSO,
                                  "the satellite's payload (satellites[].KEY), not a ground "
                                  "station"));
        if (it && it->type == YAML_MAPPING_NODE)
            KAGI__TRY(kagi__preset(y, it, path, c.g.preset, &c.g.link));
        KAGI__TRY(kagi__map(y, it, path, keys, KAGI__NGS + KAGI__NGROUND_FSO, NULL,
                            kagi__gs_pair, &c));
        static const char *const req[] = {"name", "lat", "lon"};
        for (size_t r = 0; r < 3; r++)
            if (!kagi__get(y, it, req[r]))
                return kagi__yerr(y, it, path, "missing key '%s'", req[r]);
        if (kagi_scenario_node(y->sc, c.n.name) >= 0)
            return kagi__yerr(y, kagi__get(y, it, "name"), path, "name '%s' is used twice",
                              c.n.name);
        if (kagi_fso_check(&c.g.link) != KAGI_OK)
            return kagi__yerr_detail(y, it, path, "");
        KAGI__TRY(kagi_scenario_add_node(y->sc, &c.n, &c.g.node));
        KAGI__TRY(kagi_scenario_add_station(y->sc, &c.g, NULL));
    }
    return KAGI_OK;
}

static const char *const kagi__sat_keys[] = {"name", "tle", "tle_file", "tle_id", "link",
                                             "capacity", "passes_per_block", "night_only",
                                             "pass_step"};
#define KAGI__NSAT 9

typedef struct kagi__sctx {
    kagi_sc_node n;
    kagi_sc_satellite s;
} kagi__sctx;

static int kagi__sat_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi__sctx *c = ctx;
    uint64_t u;
    switch (k) {
    case 0: return kagi__name(y, v, path, c->n.name);
    case 1: case 2: case 3: case 4: return KAGI_OK; /* the orbit and preset, read apart */
    case 5: return kagi__bits(y, v, path, 1, (uint64_t)1 << 60, &c->n.capacity_bits);
    case 6:
        KAGI__TRY(kagi__u64(y, v, path, 1, 1000, &u));
        c->s.passes_per_block = (unsigned)u;
        return KAGI_OK;
    case 7: return kagi__bool(y, v, path, &c->s.night_only);
    case 8:
        KAGI__TRY(kagi__dur(y, v, path, 0, &c->s.step_s));
        if (!(c->s.step_s >= 0.01 && c->s.step_s <= 600))
            return kagi__yerr(y, v, path, "%s is impossible: must lie in [10ms, 10m]",
                              (const char *)v->data.scalar.value);
        return KAGI_OK;
    default: return kagi__payload_fso(y, k - KAGI__NSAT, v, path, &c->s.link);
    }
}

/* Line ln (1-based) of the scenario text and its indentation. */
static size_t kagi__indent_of(const kagi__y *y, size_t ln)
{
    const char *p = y->text, *end = y->text + y->len;
    for (size_t l = 1; l < ln && p < end; p++)
        if (*p == '\n') l++;
    size_t n = 0;
    while (p + n < end && p[n] == ' ') n++;
    return n;
}

/* A TLE failure "TLE line L, column C: what" at file positions: line L of
 * the set is at (*lines)[L - 1], column C at cols[L - 1] + C - 1. */
static int kagi__tle_err(kagi__y *y, kagi__yn *at, const char *path, const size_t *lines,
                         const size_t *cols)
{
    char d[400];
    snprintf(d, sizeof d, "%s", kagi_errdetail());
    int L = 0, C = 0;
    if (lines && sscanf(d, "TLE line %d, column %d", &L, &C) == 2 && (L == 1 || L == 2) &&
        C >= 1 && C <= 80 && lines[L - 1])
        return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%zu: %s: %s", y->origin, lines[L - 1],
                         cols[L - 1] + (size_t)C - 1, path, d);
    return kagi__yerr(y, at, path, "%s", d);
}

/* tle: two (or three, a name first) lines, as a list or a block of text. */
static int kagi__tle_inline(kagi__y *y, kagi__yn *v, const char *path, kagi_tle *out)
{
    char ln[3][96];
    size_t lines[3] = {0, 0, 0}, cols[3] = {0, 0, 0}, n = 0;
    if (v && v->type == YAML_SEQUENCE_NODE) {
        size_t k = 0;
        KAGI__TRY(kagi__seq(y, v, path, &k));
        if (k != 2 && k != 3)
            return kagi__yerr(y, v, path, "expected the element set's 2 lines (or 3, a name "
                              "first), got %zu", k);
        for (size_t i = 0; i < k; i++) {
            kagi__yn *e = kagi__item(y, v, i);
            char p[320];
            snprintf(p, sizeof p, "%s[%zu]", path, i);
            KAGI__TRY(kagi__str(y, e, p, ln[i], sizeof ln[i]));
            lines[i] = e->start_mark.line + 1;
            cols[i] = e->start_mark.column + 1 +
                      (e->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                       e->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        }
        n = k;
    } else {
        const char *s;
        KAGI__TRY(kagi__scalar(y, v, path, &s));
        int block = v->data.scalar.style == YAML_LITERAL_SCALAR_STYLE;
        size_t row = 0; /* line of the text, from 0 */
        for (const char *p = s; *p; row++) {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            while (len && (p[len - 1] == ' ' || p[len - 1] == '\r')) len--;
            if (len) {
                if (n == 3)
                    return kagi__yerr(y, v, path, "more than the element set's 2 lines (or 3, a "
                                      "name first)");
                if (len >= sizeof ln[n])
                    return kagi__yerr(y, v, path, "line %zu of the element set is longer than "
                                      "%zu characters", n + 1, sizeof ln[n] - 1);
                memcpy(ln[n], p, len);
                ln[n][len] = 0;
                if (block) { /* the text starts on the line after the '|' */
                    lines[n] = v->start_mark.line + 2 + row;
                    cols[n] = kagi__indent_of(y, lines[n]) + 1;
                }
                n++;
            }
            p = e ? e + 1 : p + strlen(p);
        }
        if (n < 2)
            return kagi__yerr(y, v, path, "expected the element set's 2 lines (or 3, a name "
                              "first), got %zu: give them as a list, or as a block of text "
                              "after 'tle: |'", n);
    }
    size_t f = n - 2; /* a name line first */
    if (kagi_tle_parse(ln[f], ln[f + 1], 0, out) != KAGI_OK)
        return kagi__tle_err(y, v, path, lines[f] ? lines + f : NULL, cols + f);
    if (f) {
        const char *nm = ln[0];
        if (nm[0] == '0' && nm[1] == ' ') nm += 2;
        size_t l = strnlen(nm, sizeof out->name - 1);
        memcpy(out->name, nm, l);
        out->name[l] = 0;
    }
    out->source_line = lines[f];
    return KAGI_OK;
}

/* tle_file: a file of element sets, relative to the scenario's folder;
 * tle_id (or else the satellite's name, when the file holds several)
 * picks one. */
static int kagi__tle_file(kagi__y *y, kagi__yn *it, const char *path, kagi_tle *out)
{
    kagi__yn *v = kagi__get(y, it, "tle_file"), *idn = kagi__get(y, it, "tle_id");
    char p[320], file[4096], id[64] = "";
    snprintf(p, sizeof p, "%s.tle_file", path);
    const char *rel;
    KAGI__TRY(kagi__scalar(y, v, p, &rel));
    const char *slash = strrchr(y->origin, '/');
    int n = rel[0] == '/' || !slash
                ? snprintf(file, sizeof file, "%s", rel)
                : snprintf(file, sizeof file, "%.*s/%s", (int)(slash - y->origin), y->origin, rel);
    if (n < 0 || (size_t)n >= sizeof file) return kagi__yerr(y, v, p, "path too long");
    if (idn) {
        char ip[320];
        snprintf(ip, sizeof ip, "%s.tle_id", path);
        KAGI__TRY(kagi__str(y, idn, ip, id, sizeof id));
    }
    kagi_tle *list = NULL;
    size_t count = 0;
    if (kagi_tle_read_file(file, 0, &list, &count) != KAGI_OK) {
        char d[600];
        snprintf(d, sizeof d, "%s", kagi_errdetail());
        return kagi__yerr(y, v, p, "%s", d);
    }
    const kagi_tle *t = NULL;
    kagi__yn *name = kagi__get(y, it, "name");
    if (id[0]) {
        t = kagi_tle_find(list, count, id);
        if (!t) {
            kagi_tle_free(list);
            char ip[320];
            snprintf(ip, sizeof ip, "%s.tle_id", path);
            return kagi__yerr(y, idn, ip, "no element set numbered or named '%s' in %s", id,
                              file);
        }
    } else if (count == 1) {
        t = list;
    } else {
        const char *nm = name && name->type == YAML_SCALAR_NODE
                             ? (const char *)name->data.scalar.value : NULL;
        t = nm ? kagi_tle_find(list, count, nm) : NULL;
        if (!t) {
            kagi_tle_free(list);
            return kagi__yerr(y, v, p, "%s holds %zu element sets: pick one with tle_id "
                              "(catalogue number or name)%s", file, count,
                              nm ? ", or a satellite name that is one of theirs" : "");
        }
    }
    *out = *t;
    kagi_tle_free(list);
    return KAGI_OK;
}

static int kagi__satellites(kagi__y *y, kagi__yn *seq)
{
    const char *keys[KAGI__NSAT + KAGI__NPAYLOAD_FSO];
    memcpy(keys, kagi__sat_keys, sizeof kagi__sat_keys);
    memcpy(keys + KAGI__NSAT, kagi__payload_fso_keys, sizeof kagi__payload_fso_keys);
    size_t n = 0;
    KAGI__TRY(kagi__seq(y, seq, "satellites", &n));
    for (size_t i = 0; i < n; i++) {
        kagi__yn *it = kagi__item(y, seq, i);
        char path[64], p[96];
        snprintf(path, sizeof path, "satellites[%zu]", i);
        kagi__sctx c;
        memset(&c, 0, sizeof c);
        c.n = (kagi_sc_node){.trusted = 1, .capacity_bits = 1000000000,
                             .line = it ? it->start_mark.line + 1 : 0};
        kagi_sc_satellite_defaults(&c.s);
        c.s.line = c.n.line;
        KAGI__TRY(kagi__misplaced(y, it, path, kagi__ground_fso_keys, KAGI__NGROUND_FSO,
                                  "the ground station's receiver (ground_stations[].KEY), not "
                                  "a satellite"));
        if (it && it->type == YAML_MAPPING_NODE)
            KAGI__TRY(kagi__preset(y, it, path, c.s.preset, &c.s.link));
        KAGI__TRY(kagi__map(y, it, path, keys, KAGI__NSAT + KAGI__NPAYLOAD_FSO, NULL,
                            kagi__sat_pair, &c));
        kagi__yn *tle = kagi__get(y, it, "tle"), *file = kagi__get(y, it, "tle_file");
        if (tle && file)
            return kagi__yerr(y, file, path, "tle_file: give the orbit once: tle (the lines) or "
                              "tle_file");
        if (!tle && !file)
            return kagi__yerr(y, it, path, "missing key 'tle' (the element set's lines) or "
                              "'tle_file'");
        if (kagi__get(y, it, "tle_id") && !file)
            return kagi__yerr(y, kagi__get(y, it, "tle_id"), path, "tle_id: picks a set of "
                              "tle_file (there is none)");
        snprintf(p, sizeof p, "%s.tle", path);
        if (tle)
            KAGI__TRY(kagi__tle_inline(y, tle, p, &c.s.tle));
        else
            KAGI__TRY(kagi__tle_file(y, it, path, &c.s.tle));
        kagi__yn *at = tle ? tle : file;
        if (tle == NULL) snprintf(p, sizeof p, "%s.tle_file", path);
        kagi_sat *o = NULL;
        if (kagi_sat_new(&c.s.tle, &o) != KAGI_OK)
            return kagi__yerr_detail(y, at, p, "SGP4 cannot start from this element set: ");
        kagi_sat_free(o);
        if (!kagi__get(y, it, "name")) { /* the set's name, else its number */
            char nm[80];
            if (c.s.tle.name[0]) snprintf(nm, sizeof nm, "%s", c.s.tle.name);
            else snprintf(nm, sizeof nm, "SAT-%s", c.s.tle.satnum);
            size_t l = strlen(nm);
            while (l && nm[l - 1] == ' ') nm[--l] = 0;
            if (l >= KAGI_SC_NAME_MAX || kagi__name_problem(nm))
                return kagi__yerr(y, it, path, "the element set's name '%s' cannot name the "
                                  "satellite: give it a name:", nm);
            memcpy(c.n.name, nm, l + 1);
        }
        if (kagi_scenario_node(y->sc, c.n.name) >= 0)
            return kagi__yerr(y, kagi__get(y, it, "name") ? kagi__get(y, it, "name") : it, path,
                              "name '%s' is used twice", c.n.name);
        if (kagi_fso_check(&c.s.link) != KAGI_OK)
            return kagi__yerr_detail(y, it, path, "");
        c.n.lat_deg = c.n.lon_deg = 0; /* the sub-satellite point at the start: below */
        KAGI__TRY(kagi_scenario_add_node(y->sc, &c.n, &c.s.node));
        KAGI__TRY(kagi_scenario_add_satellite(y->sc, &c.s, NULL));
    }
    return KAGI_OK;
}

/* Default start (the first satellite's epoch) and every satellite node's
 * position: its sub-satellite point then. */
static int kagi__place_satellites(kagi__y *y, kagi__yn *seq)
{
    kagi_scenario *sc = y->sc;
    if (!sc->nsatellites) return KAGI_OK;
    if (!isfinite(sc->start_utc)) sc->start_utc = sc->satellites[0].tle.epoch;
    for (size_t k = 0; k < sc->nsatellites; k++) {
        kagi_sc_satellite *sa = &sc->satellites[k];
        kagi_sat *o = NULL;
        double r[3], re[3], alt;
        kagi_sc_node *nd = &sc->nodes[sa->node];
        int rc = kagi_sat_new(&sa->tle, &o);
        if (rc == KAGI_OK) rc = kagi_sat_at(o, sc->start_utc, r, NULL);
        kagi_sat_free(o);
        if (rc != KAGI_OK) {
            char d[400], path[64];
            snprintf(d, sizeof d, "%s", kagi_errdetail());
            snprintf(path, sizeof path, "satellites[%zu]", k);
            return kagi__yerr(y, kagi__item(y, seq, k), path, "its orbit fails at the start: %s",
                              d);
        }
        kagi_teme_to_ecef(sc->start_utc, r, NULL, re, NULL);
        kagi_ecef_to_geodetic(re, &nd->lat_deg, &nd->lon_deg, &alt);
        if (nd->lon_deg > 180) nd->lon_deg -= 360;
    }
    return KAGI_OK;
}

/* ---- Top level -------------------------------------------------------------------- */

static const char *const kagi__top_keys[] = {"name", "duration", "seed", "sample", "mac_bits",
                                             "route_reserve", "link_defaults", "nodes", "links",
                                             "demands", "events", "start", "ground_stations",
                                             "satellites", "saes"};
#define KAGI__NTOP 15

typedef struct kagi__tctx {
    kagi__yn *part[KAGI__NTOP];
} kagi__tctx;

static int kagi__top_pair(kagi__y *y, size_t k, kagi__yn *v, const char *path, void *ctx)
{
    kagi__tctx *c = ctx;
    kagi_scenario *sc = y->sc;
    c->part[k] = v;
    switch (k) {
    case 0: return kagi__str(y, v, path, sc->name, sizeof sc->name);
    case 1:
        KAGI__TRY(kagi__dur(y, v, path, 0, &sc->duration_s));
        if (!(sc->duration_s > 0 && sc->duration_s <= 20 * 365.25 * 86400))
            return kagi__yerr(y, v, path, "%s is impossible: must lie in (0 s, 20 years]",
                              (const char *)v->data.scalar.value);
        return KAGI_OK;
    case 2: return kagi__u64(y, v, path, 0, UINT64_MAX, &sc->seed);
    case 3:
        KAGI__TRY(kagi__dur(y, v, path, 0, &sc->sample_s));
        if (!(sc->sample_s > 0)) return kagi__yerr(y, v, path, "must be positive");
        return KAGI_OK;
    case 4: return kagi__bits(y, v, path, 0, 1000000, &sc->mac_bits);
    case 5: return kagi__num(y, v, path, 0, 1, 1e9, 1, "", &sc->route_reserve);
    case 11: {
        const char *s;
        KAGI__TRY(kagi__scalar(y, v, path, &s));
        if (kagi_utc_parse(s, &sc->start_utc) != KAGI_OK) {
            char d[300];
            snprintf(d, sizeof d, "%s", kagi_errdetail());
            return kagi__yerr(y, v, path, "'%s' is not a UTC time like 2016-12-19T12:00:00Z: %s",
                              s, d);
        }
        if (!(sc->start_utc > -2208988800.0 && sc->start_utc < 4102444800.0))
            return kagi__yerr(y, v, path, "'%s' is outside the years 1900-2100", s);
        return KAGI_OK;
    }
    default: return KAGI_OK; /* sections: below, in dependency order */
    }
}

static int kagi__load_doc(kagi__y *y)
{
    kagi__yn *root = yaml_document_get_root_node(&y->doc);
    if (!root) return kagi__yerr(y, NULL, "", "the file is empty");
    kagi__tctx c;
    memset(&c, 0, sizeof c);
    KAGI__TRY(kagi__map(y, root, "", kagi__top_keys, KAGI__NTOP, NULL, kagi__top_pair, &c));
    if (!c.part[7] && !c.part[12])
        return kagi__yerr(y, root, "nodes", "missing (a list of nodes)");
    if (!c.part[8] && !c.part[12] && !c.part[13])
        return kagi__yerr(y, root, "links", "missing (a list of links)");
    kagi_sc_link def;
    kagi_sc_link_defaults(&def);
    if (c.part[6]) {
        kagi__lctx lc = {&def, 0, NULL, NULL};
        KAGI__TRY(kagi__map(y, c.part[6], "link_defaults", kagi__link_keys, KAGI__NMODEL, NULL,
                            kagi__defaults_pair, &lc));
    }
    if (c.part[7]) KAGI__TRY(kagi__nodes(y, c.part[7]));
    if (c.part[12]) KAGI__TRY(kagi__stations(y, c.part[12]));
    if (c.part[13]) KAGI__TRY(kagi__satellites(y, c.part[13]));
    if (c.part[13]) KAGI__TRY(kagi__place_satellites(y, c.part[13]));
    if (c.part[8]) KAGI__TRY(kagi__links(y, c.part[8], &def));
    KAGI__TRY(kagi_scenario_link_satellites(y->sc));
    if (c.part[14]) KAGI__TRY(kagi__saes(y, c.part[14]));
    if (c.part[9]) KAGI__TRY(kagi__demands(y, c.part[9]));
    if (c.part[10]) KAGI__TRY(kagi__events(y, c.part[10]));
    /* What only the whole can tell (names, cross-field values, the link
     * models' own checks), with the item's line. */
    int rc = kagi_scenario_check(y->sc);
    if (rc == KAGI_ERR_ARG) {
        char d[512];
        snprintf(d, sizeof d, "%s", kagi_errdetail());
        return kagi__err(KAGI_ERR_FORMAT, "%s", d);
    }
    return rc;
}

/* libyaml's scanner slows down quadratically with the nesting depth, and
 * its loader builds the whole tree: a first pass over the events refuses
 * a nesting deeper than a scenario ever needs before either happens. */
#define KAGI__MAX_DEPTH 32
static int kagi__depth_ok(const char *text, size_t len, const char *origin)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return kagi__err(KAGI_ERR_NOMEM, "%s: cannot start the YAML parser", origin);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int depth = 0, rc = KAGI_OK;
    for (;;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) break; /* the loader reports the syntax error */
        yaml_event_type_t t = e.type;
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (++depth > KAGI__MAX_DEPTH)
                rc = kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%zu: YAML: nested deeper than %d levels",
                               origin, e.start_mark.line + 1, e.start_mark.column + 1,
                               KAGI__MAX_DEPTH);
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&e);
        if (rc != KAGI_OK || t == YAML_STREAM_END_EVENT) break;
    }
    yaml_parser_delete(&p);
    return rc;
}

int kagi_scenario_parse(const char *text, size_t len, const char *origin, kagi_scenario **out)
{
    *out = NULL;
    if (len > KAGI__MAX_FILE)
        return kagi__err(KAGI_ERR_FORMAT, "%s: larger than 64 MiB", origin);
    KAGI__TRY(kagi__depth_ok(text, len, origin));
    kagi__y y;
    memset(&y, 0, sizeof y);
    y.origin = origin;
    y.text = text;
    y.len = len;
    KAGI__TRY(kagi_scenario_new(&y.sc));
    snprintf(y.sc->origin, sizeof y.sc->origin, "%s", origin);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        kagi_scenario_free(y.sc);
        return kagi__err(KAGI_ERR_NOMEM, "%s: cannot start the YAML parser", origin);
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc;
    if (!yaml_parser_load(&p, &y.doc)) {
        rc = kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%zu: YAML: %s%s%s", origin,
                       p.problem_mark.line + 1, p.problem_mark.column + 1,
                       p.problem ? p.problem : "syntax error", p.context ? " " : "",
                       p.context ? p.context : "");
        yaml_parser_delete(&p);
        kagi_scenario_free(y.sc);
        return rc;
    }
    rc = kagi__load_doc(&y);
    if (rc == KAGI_OK) {
        yaml_document_t next;
        if (!yaml_parser_load(&p, &next)) {
            rc = kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%zu: YAML: %s", origin,
                           p.problem_mark.line + 1, p.problem_mark.column + 1,
                           p.problem ? p.problem : "syntax error");
        } else {
            if (yaml_document_get_root_node(&next))
                rc = kagi__err(KAGI_ERR_FORMAT, "%s:%zu: a scenario file holds one YAML "
                               "document, this one has more", origin,
                               (size_t)next.start_mark.line + 1);
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&y.doc);
    yaml_parser_delete(&p);
    if (rc != KAGI_OK) {
        kagi_scenario_free(y.sc);
        return rc;
    }
    *out = y.sc;
    return KAGI_OK;
}

int kagi_scenario_load(const char *path, kagi_scenario **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return kagi__err(KAGI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int rc = KAGI_OK;
    while (buf) {
        if (len == cap) {
            if (cap > KAGI__MAX_FILE) {
                rc = kagi__err(KAGI_ERR_FORMAT, "%s: larger than 64 MiB", path);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) rc = kagi__err(KAGI_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!buf) return kagi__err(KAGI_ERR_NOMEM, "%s: out of memory", path);
    if (rc == KAGI_OK) rc = kagi_scenario_parse(buf, len, path, out);
    free(buf);
    return rc;
}
