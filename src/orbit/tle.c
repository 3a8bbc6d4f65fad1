/* Two-line element sets: the fixed-column format of NORAD/Space-Track
 * (columns 1-based as in the format's description). Every field is checked
 * for its characters and range; a failure names the line and the column of
 * the first character that is wrong. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "internal.h"
#include "kagi/orbit.h"
#include "orbit_internal.h"

#define KAGI__TLE_COLS 69
#define KAGI__TLE_MAX_LINE 512
#define KAGI__TLE_MAX_FILE ((size_t)64 << 20)

/* Where a pair failed: which of its lines (1 or 2), column, message. */
typedef struct kagi__tle_fail {
    int line, col;
    char msg[200];
} kagi__tle_fail;

static int kagi__bad(kagi__tle_fail *f, int line, int col, const char *fmt, ...)
    KAGI__PRINTF(4, 5);

static int kagi__bad(kagi__tle_fail *f, int line, int col, const char *fmt, ...)
{
    va_list ap;
    f->line = line;
    f->col = col;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return KAGI_ERR_FORMAT;
}

/* A line with its effective length (trailing blanks and CR/LF dropped). */
typedef struct kagi__line {
    const char *s;
    size_t len;
} kagi__line;

static kagi__line kagi__trim(const char *s, size_t len)
{
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                   s[len - 1] == '\t'))
        len--;
    return (kagi__line){s, len};
}

/* Character at 1-based column c (the line is at least 69 long here). */
static char kagi__at(const kagi__line *l, int c) { return l->s[c - 1]; }

static int kagi__blank(const kagi__line *l, int ln, int c, kagi__tle_fail *f)
{
    if (kagi__at(l, c) != ' ')
        return kagi__bad(f, ln, c, "expected a blank between fields, found '%c'", kagi__at(l, c));
    return KAGI_OK;
}

/* Columns a..b hold a decimal number: blanks, then [+-], digits with at
 * most one '.', then nothing. Leading blanks are allowed; inner ones not. */
static int kagi__decimal(const kagi__line *l, int ln, int a, int b, const char *what, double *out,
                         kagi__tle_fail *f)
{
    char buf[32];
    int c = a, n = 0, digits = 0, dot = 0;
    while (c <= b && kagi__at(l, c) == ' ') c++;
    if (c > b) return kagi__bad(f, ln, a, "%s (columns %d-%d) is blank", what, a, b);
    if (kagi__at(l, c) == '+' || kagi__at(l, c) == '-') buf[n++] = kagi__at(l, c++);
    for (; c <= b; c++) {
        char ch = kagi__at(l, c);
        if (ch >= '0' && ch <= '9') digits++;
        else if (ch == '.' && !dot) dot = 1;
        else
            return kagi__bad(f, ln, c, "%s (columns %d-%d): '%.*s' is not a number", what, a, b,
                             b - a + 1, l->s + a - 1);
        buf[n++] = ch;
    }
    if (!digits)
        return kagi__bad(f, ln, a, "%s (columns %d-%d): '%.*s' is not a number", what, a, b,
                         b - a + 1, l->s + a - 1);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return KAGI_OK;
}

/* Columns a..b hold an unsigned integer, right-aligned (leading blanks);
 * all blank gives 0 when blank_ok. */
static int kagi__integer(const kagi__line *l, int ln, int a, int b, const char *what, int blank_ok,
                         long *out, kagi__tle_fail *f)
{
    int c = a;
    long v = 0;
    while (c <= b && kagi__at(l, c) == ' ') c++;
    if (c > b && !blank_ok) return kagi__bad(f, ln, a, "%s (columns %d-%d) is blank", what, a, b);
    for (; c <= b; c++) {
        char ch = kagi__at(l, c);
        if (ch < '0' || ch > '9')
            return kagi__bad(f, ln, c, "%s (columns %d-%d): '%.*s' is not a whole number", what,
                             a, b, b - a + 1, l->s + a - 1);
        v = 10 * v + (ch - '0');
    }
    *out = v;
    return KAGI_OK;
}

/* The "implied decimal point" form of nddot and BSTAR, 8 columns from a:
 * [ +-] ddddd [+-]d meaning +-0.ddddd * 10^(+-d). */
static int kagi__implied(const kagi__line *l, int ln, int a, const char *what, double *out,
                         kagi__tle_fail *f)
{
    char s = kagi__at(l, a);
    if (s != ' ' && s != '+' && s != '-')
        return kagi__bad(f, ln, a, "%s (columns %d-%d): sign must be ' ', '+' or '-', found '%c'",
                         what, a, a + 7, s);
    long mant = 0;
    int c = a + 1;
    while (c <= a + 5 && kagi__at(l, c) == ' ') c++; /* leading blanks read as zeros */
    for (; c <= a + 5; c++) {
        char ch = kagi__at(l, c);
        if (ch < '0' || ch > '9')
            return kagi__bad(f, ln, c, "%s (columns %d-%d): '%.8s' is not of the form ±ddddd±d",
                             what, a, a + 7, l->s + a - 1);
        mant = 10 * mant + (ch - '0');
    }
    char es = kagi__at(l, a + 6), ed = kagi__at(l, a + 7);
    if (es != '+' && es != '-' && es != ' ')
        return kagi__bad(f, ln, a + 6, "%s (columns %d-%d): exponent sign must be '+' or '-'",
                         what, a, a + 7);
    if (ed < '0' || ed > '9')
        return kagi__bad(f, ln, a + 7, "%s (columns %d-%d): exponent must be a digit", what, a,
                         a + 7);
    int e = (ed - '0') * (es == '-' ? -1 : 1);
    double v = (double)mant * 1e-5 * pow(10.0, e);
    *out = s == '-' ? -v : v;
    return KAGI_OK;
}

static int kagi__checksum(const kagi__line *l, int ln, unsigned flags, kagi__tle_fail *f)
{
    int sum = 0;
    for (int c = 1; c <= 68; c++) {
        char ch = kagi__at(l, c);
        if (ch >= '0' && ch <= '9') sum += ch - '0';
        else if (ch == '-') sum += 1;
    }
    char want = (char)('0' + sum % 10), got = kagi__at(l, 69);
    if (got < '0' || got > '9')
        return kagi__bad(f, ln, 69, "checksum (column 69) must be a digit, found '%c'", got);
    if (got != want && !(flags & KAGI_TLE_NO_CHECKSUM))
        return kagi__bad(f, ln, 69, "checksum is %c but the line sums to %c", got, want);
    return KAGI_OK;
}

static int kagi__shape(const kagi__line *l, int ln, kagi__tle_fail *f)
{
    if (l->len < KAGI__TLE_COLS)
        return kagi__bad(f, ln, (int)l->len + 1,
                         "line ends after column %zu; a TLE line has %d columns", l->len,
                         KAGI__TLE_COLS);
    if (l->len > KAGI__TLE_COLS)
        return kagi__bad(f, ln, KAGI__TLE_COLS + 1,
                         "text after column %d, where a TLE line ends", KAGI__TLE_COLS);
    for (size_t i = 0; i < l->len; i++)
        if (!isprint((unsigned char)l->s[i]))
            return kagi__bad(f, ln, (int)i + 1, "unprintable character (byte 0x%02x)",
                             (unsigned char)l->s[i]);
    if (l->s[0] != '0' + ln)
        return kagi__bad(f, ln, 1, "expected '%d' (line %d of a TLE), found '%c'", ln, ln,
                         l->s[0]);
    return kagi__blank(l, ln, 2, f);
}

/* Catalogue number, columns 3-7: five digits (leading blanks read as
 * zeros), or Alpha-5: a letter other than I and O then four digits. */
static int kagi__satnum(const kagi__line *l, int ln, char out[6], kagi__tle_fail *f)
{
    for (int c = 3; c <= 7; c++) {
        char ch = kagi__at(l, c);
        int ok = (ch >= '0' && ch <= '9') ||
                 (c == 3 && ch >= 'A' && ch <= 'Z' && ch != 'I' && ch != 'O');
        if (ch == ' ' && c < 7) {
            int rest_blank = 1;
            for (int k = 3; k < c; k++) rest_blank &= kagi__at(l, k) == ' ';
            ok = rest_blank;
            ch = '0';
        }
        if (!ok)
            return kagi__bad(f, ln, c, "catalogue number (columns 3-7): '%.5s' is not 5 digits",
                             l->s + 2);
        out[c - 3] = ch;
    }
    out[5] = '\0';
    return KAGI_OK;
}

/* Angle field in [0, hi]. */
static int kagi__angle(const kagi__line *l, int a, int b, const char *what, double hi, double *out,
                       kagi__tle_fail *f)
{
    KAGI__TRY(kagi__decimal(l, 2, a, b, what, out, f));
    if (!(*out >= 0 && *out <= hi))
        return kagi__bad(f, 2, a, "%s %.4f deg outside [0, %.0f]", what, *out, hi);
    return KAGI_OK;
}

static int kagi__parse_pair(kagi__line l1, kagi__line l2, unsigned flags, kagi_tle *t,
                            kagi__tle_fail *f)
{
    long v;
    memset(t, 0, sizeof *t);
    /* Line 1. */
    KAGI__TRY(kagi__shape(&l1, 1, f));
    KAGI__TRY(kagi__satnum(&l1, 1, t->satnum, f));
    char cls = kagi__at(&l1, 8);
    if (cls != 'U' && cls != 'C' && cls != 'S' && cls != ' ')
        return kagi__bad(f, 1, 8, "classification must be U, C or S, found '%c'", cls);
    t->classification = cls;
    KAGI__TRY(kagi__blank(&l1, 1, 9, f));
    size_t k = 0;
    for (int c = 10; c <= 17; c++) {
        char ch = kagi__at(&l1, c);
        if (ch == ' ') continue;
        if (!isalnum((unsigned char)ch))
            return kagi__bad(f, 1, c, "international designator (columns 10-17): unexpected '%c'",
                             ch);
        t->intl_designator[k++] = ch;
    }
    KAGI__TRY(kagi__blank(&l1, 1, 18, f));
    KAGI__TRY(kagi__integer(&l1, 1, 19, 20, "epoch year", 0, &v, f));
    t->epoch_year = (int)(v < 57 ? 2000 + v : 1900 + v);
    KAGI__TRY(kagi__decimal(&l1, 1, 21, 32, "epoch day", &t->epoch_day, f));
    int leap = (t->epoch_year % 4 == 0 && t->epoch_year % 100 != 0) || t->epoch_year % 400 == 0;
    if (!(t->epoch_day >= 1.0 && t->epoch_day < 366.0 + leap))
        return kagi__bad(f, 1, 21, "epoch day %.8f is not in 1..%d of %d", t->epoch_day,
                         365 + leap, t->epoch_year);
    KAGI__TRY(kagi__tle_epoch(t->epoch_year, t->epoch_day, &t->epoch));
    KAGI__TRY(kagi__blank(&l1, 1, 33, f));
    KAGI__TRY(kagi__decimal(&l1, 1, 34, 43, "first derivative of mean motion", &t->ndot, f));
    KAGI__TRY(kagi__blank(&l1, 1, 44, f));
    KAGI__TRY(kagi__implied(&l1, 1, 45, "second derivative of mean motion", &t->nddot, f));
    KAGI__TRY(kagi__blank(&l1, 1, 53, f));
    KAGI__TRY(kagi__implied(&l1, 1, 54, "BSTAR drag term", &t->bstar, f));
    KAGI__TRY(kagi__blank(&l1, 1, 62, f));
    KAGI__TRY(kagi__integer(&l1, 1, 63, 63, "ephemeris type", 1, &v, f));
    t->ephemeris_type = (int)v;
    KAGI__TRY(kagi__blank(&l1, 1, 64, f));
    KAGI__TRY(kagi__integer(&l1, 1, 65, 68, "element set number", 1, &v, f));
    t->element_number = (int)v;
    KAGI__TRY(kagi__checksum(&l1, 1, flags, f));

    /* Line 2. */
    char num2[6];
    KAGI__TRY(kagi__shape(&l2, 2, f));
    KAGI__TRY(kagi__satnum(&l2, 2, num2, f));
    if (strcmp(num2, t->satnum) != 0)
        return kagi__bad(f, 2, 3, "catalogue number %s differs from line 1's %s", num2,
                         t->satnum);
    KAGI__TRY(kagi__blank(&l2, 2, 8, f));
    KAGI__TRY(kagi__angle(&l2, 9, 16, "inclination", 180, &t->incl_deg, f));
    KAGI__TRY(kagi__blank(&l2, 2, 17, f));
    KAGI__TRY(kagi__angle(&l2, 18, 25, "right ascension of the node", 360, &t->raan_deg, f));
    KAGI__TRY(kagi__blank(&l2, 2, 26, f));
    long e7 = 0;
    for (int c = 27; c <= 33; c++) {
        char ch = kagi__at(&l2, c);
        if (ch < '0' || ch > '9')
            return kagi__bad(f, 2, c,
                             "eccentricity (columns 27-33): '%.7s' is not 7 digits "
                             "(decimal point implied)",
                             l2.s + 26);
        e7 = 10 * e7 + (ch - '0');
    }
    t->ecc = (double)e7 * 1e-7;
    KAGI__TRY(kagi__blank(&l2, 2, 34, f));
    KAGI__TRY(kagi__angle(&l2, 35, 42, "argument of perigee", 360, &t->argp_deg, f));
    KAGI__TRY(kagi__blank(&l2, 2, 43, f));
    KAGI__TRY(kagi__angle(&l2, 44, 51, "mean anomaly", 360, &t->mean_anomaly_deg, f));
    KAGI__TRY(kagi__blank(&l2, 2, 52, f));
    KAGI__TRY(kagi__decimal(&l2, 2, 53, 63, "mean motion", &t->mean_motion, f));
    if (!(t->mean_motion > 0))
        return kagi__bad(f, 2, 53, "mean motion %.8f rev/day must be positive", t->mean_motion);
    KAGI__TRY(kagi__integer(&l2, 2, 64, 68, "revolution number", 1, &t->rev_number, f));
    KAGI__TRY(kagi__checksum(&l2, 2, flags, f));
    return KAGI_OK;
}

int kagi_tle_parse(const char *line1, const char *line2, unsigned flags, kagi_tle *out)
{
    kagi__tle_fail f;
    kagi_tle t;
    kagi__line l1 = kagi__trim(line1, strlen(line1)), l2 = kagi__trim(line2, strlen(line2));
    int rc = kagi__parse_pair(l1, l2, flags, &t, &f);
    if (rc) return kagi__err(rc, "TLE line %d, column %d: %s", f.line, f.col, f.msg);
    *out = t;
    return KAGI_OK;
}

/* ---- Texts of many sets ------------------------------------------------ */

typedef struct kagi__cursor {
    const char *p, *end;
    size_t lineno;
} kagi__cursor;

/* Next line (without its newline); 0 at the end of the text. */
static int kagi__next_line(kagi__cursor *c, kagi__line *l)
{
    if (c->p >= c->end) return 0;
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    const char *e = nl ? nl : c->end;
    *l = kagi__trim(c->p, (size_t)(e - c->p));
    c->p = nl ? nl + 1 : c->end;
    c->lineno++;
    return 1;
}

static int kagi__is_line(const kagi__line *l, char which)
{
    return l->len >= 2 && l->s[0] == which && l->s[1] == ' ';
}

static int kagi__push(kagi_tle **list, size_t *n, size_t *cap, const kagi_tle *t)
{
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 16;
        kagi_tle *p = realloc(*list, nc * sizeof *p);
        if (!p) return kagi__err(KAGI_ERR_NOMEM, "cannot allocate %zu element sets", nc);
        *list = p;
        *cap = nc;
    }
    (*list)[(*n)++] = *t;
    return KAGI_OK;
}

static int kagi__parse_text(const char *text, size_t len, const char *origin, unsigned flags,
                            kagi_tle **list, size_t *n)
{
    kagi__cursor c = {text, text + len, 0};
    kagi__line l, name = {NULL, 0};
    size_t name_line = 0, cap = 0;
    while (kagi__next_line(&c, &l)) {
        if (l.len > KAGI__TLE_MAX_LINE)
            return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%d: line longer than %d characters", origin,
                             c.lineno, KAGI__TLE_MAX_LINE + 1, KAGI__TLE_MAX_LINE);
        if (!name.s && (l.len == 0 || l.s[0] == '#')) continue;
        if (kagi__is_line(&l, '2'))
            return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:1: TLE line 2 without a line 1 before it",
                             origin, c.lineno);
        if (!kagi__is_line(&l, '1')) {
            if (name.s)
                return kagi__err(KAGI_ERR_FORMAT,
                                 "%s:%zu:1: expected line 1 of the TLE named on line %zu "
                                 "(a line starting \"1 \")",
                                 origin, c.lineno, name_line);
            name = l;
            name_line = c.lineno;
            continue;
        }
        size_t l1_no = c.lineno;
        kagi__line l2;
        kagi_tle t;
        kagi__tle_fail f;
        if (!kagi__next_line(&c, &l2)) {
            /* A broken line 1 says more than the missing line 2. */
            if (kagi__shape(&l, 1, &f))
                return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%d: TLE line 1: %s", origin, l1_no,
                                 f.col, f.msg);
            return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:1: TLE line 2 missing after line 1 (end of text)",
                             origin, l1_no + 1);
        }
        if (kagi__parse_pair(l, l2, flags, &t, &f))
            return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%d: TLE line %d: %s", origin,
                             f.line == 1 ? l1_no : l1_no + 1, f.col, f.line, f.msg);
        if (name.s) {
            const char *s = name.s;
            size_t nl = name.len;
            if (nl >= 2 && s[0] == '0' && s[1] == ' ') { /* Space-Track's "0 NAME" */
                s += 2;
                nl -= 2;
            }
            while (nl && *s == ' ') {
                s++;
                nl--;
            }
            if (nl >= sizeof t.name)
                return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%zu: satellite name longer than %zu characters",
                                 origin, name_line, sizeof t.name, sizeof t.name - 1);
            for (size_t i = 0; i < nl; i++)
                if (!isprint((unsigned char)s[i]))
                    return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:%zu: unprintable character in the name",
                                     origin, name_line, (size_t)(s - name.s) + i + 1);
            memcpy(t.name, s, nl);
            t.name[nl] = '\0';
        }
        t.source_line = l1_no;
        KAGI__TRY(kagi__push(list, n, &cap, &t));
        name.s = NULL;
    }
    if (name.s)
        return kagi__err(KAGI_ERR_FORMAT, "%s:%zu:1: name line without the two TLE lines after it",
                         origin, name_line);
    if (*n == 0) return kagi__err(KAGI_ERR_FORMAT, "%s: no element set found", origin);
    return KAGI_OK;
}

int kagi_tle_parse_text(const char *text, size_t len, const char *origin, unsigned flags,
                        kagi_tle **out, size_t *count)
{
    kagi_tle *list = NULL;
    size_t n = 0;
    *out = NULL;
    *count = 0;
    int rc = kagi__parse_text(text, len, origin, flags, &list, &n);
    if (rc) {
        free(list);
        return rc;
    }
    *out = list;
    *count = n;
    return KAGI_OK;
}

int kagi_tle_read_file(const char *path, unsigned flags, kagi_tle **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return kagi__err(KAGI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return kagi__err(KAGI_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > KAGI__TLE_MAX_FILE) {
        fclose(fp);
        return kagi__err(KAGI_ERR_IO, "%s: %lld bytes, more than the %zu MiB a TLE file may have",
                         path, (long long)st.st_size, KAGI__TLE_MAX_FILE >> 20);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(fp);
        return kagi__err(KAGI_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size);
    }
    size_t got = fread(buf, 1, size, fp);
    int rerr = ferror(fp);
    fclose(fp);
    if (rerr || got != size) {
        free(buf);
        return kagi__err(KAGI_ERR_IO, "%s: read failed", path);
    }
    int rc = kagi_tle_parse_text(buf, size, path, flags, out, count);
    free(buf);
    return rc;
}

void kagi_tle_free(kagi_tle *list) { free(list); }

const kagi_tle *kagi_tle_find(const kagi_tle *list, size_t count, const char *id)
{
    /* Catalogue numbers compare without leading zeros: "5" is "00005". */
    const char *idn = id;
    while (*idn == '0' && idn[1]) idn++;
    for (size_t i = 0; i < count; i++) {
        const char *num = list[i].satnum;
        while (*num == '0' && num[1]) num++;
        if (strcmp(num, idn) == 0) return &list[i];
    }
    for (size_t i = 0; i < count; i++)
        if (list[i].name[0] && strcasecmp(list[i].name, id) == 0) return &list[i];
    return NULL;
}
