/* UTC time: calendar conversions, Julian dates, ISO 8601 text, and
 * Greenwich mean sidereal time. kagi_utc counts POSIX seconds (86400 per
 * day), so calendar arithmetic is exact day counting on the proleptic
 * Gregorian calendar. */
#include <math.h>
#include <stdio.h>

#include "internal.h"
#include "kagi/orbit.h"
#include "orbit_internal.h"

/* Days from 1970-01-01 to y-m-d (m in 1..12). The year is taken from
 * March, so the leap day is the last day of its "year" and the month
 * lengths from March on follow the pattern (153 m + 2) / 5. */
static long long kagi__days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;                                 /* 0..399 */
    long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* 0..146096 */
    return era * 146097 + doe - 719468;
}

/* The inverse: day number since 1970-01-01 to y-m-d. */
static void kagi__civil_from_days(long long z, long long *y, int *m, int *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

kagi_utc kagi_utc_from_civil(int year, int month, int day, int hour, int minute, double sec)
{
    long long y = year, m0 = (long long)month - 1;
    /* Carry months outside 1..12 into the year. */
    y += m0 >= 0 ? m0 / 12 : -((11 - m0) / 12);
    int m = (int)(m0 - 12 * (m0 >= 0 ? m0 / 12 : -((11 - m0) / 12))) + 1;
    long long days = kagi__days_from_civil(y, m, 1) + (day - 1);
    return (double)days * 86400.0 + (double)hour * 3600.0 + (double)minute * 60.0 + sec;
}

void kagi_utc_to_civil(kagi_utc t, int *year, int *month, int *day, int *hour, int *minute,
                       double *sec)
{
    double days = floor(t / 86400.0);
    double s = t - days * 86400.0;
    if (s >= 86400.0) { /* t / 86400 rounded up to a whole day */
        days += 1;
        s -= 86400.0;
    }
    if (s < 0) s = 0;
    long long y;
    kagi__civil_from_days((long long)days, &y, month, day);
    *year = (int)y;
    int h = (int)(s / 3600.0);
    if (h > 23) h = 23;
    s -= h * 3600.0;
    int mi = (int)(s / 60.0);
    if (mi > 59) mi = 59;
    *hour = h;
    *minute = mi;
    *sec = s - mi * 60.0;
}

double kagi_utc_to_jd(kagi_utc t) { return t / 86400.0 + KAGI__JD_UNIX; }
kagi_utc kagi_utc_from_jd(double jd) { return (jd - KAGI__JD_UNIX) * 86400.0; }

int kagi__tle_epoch(int year, double day, kagi_utc *out)
{
    *out = (double)kagi__days_from_civil(year, 1, 1) * 86400.0 + (day - 1.0) * 86400.0;
    return KAGI_OK;
}

double kagi__days_since_1950(int year, double day)
{
    /* Formed as the reference implementation does: the Julian date of the
     * epoch's 0h plus the day fraction, minus JD 2433281.5 (1950 January
     * 0.0). The sum rounds to about 0.5e-9 day; doing the same keeps the
     * lunar-solar terms equal to the reference's to the last printed digit
     * (the exact value moves eccentric orbits such as the verification
     * set's 23333 by up to 4 mm). */
    double whole = floor(day);
    double jd = (KAGI__JD_UNIX + (double)kagi__days_from_civil(year, 1, 1) + (whole - 1.0)) +
                (day - whole);
    return jd - 2433281.5;
}

/* ---- ISO 8601 ---------------------------------------------------------- */

static int kagi__digits(const char *s, size_t *i, int n, int *v, const char *what)
{
    int x = 0;
    for (int k = 0; k < n; k++) {
        char c = s[*i];
        if (c < '0' || c > '9')
            return kagi__err(KAGI_ERR_FORMAT, "'%s': position %zu: expected %d digits of the %s",
                             s, *i + 1, n, what);
        x = 10 * x + (c - '0');
        (*i)++;
    }
    *v = x;
    return KAGI_OK;
}

static int kagi__expect(const char *s, size_t *i, char want, const char *after)
{
    if (s[*i] != want)
        return kagi__err(KAGI_ERR_FORMAT, "'%s': position %zu: expected '%c' after the %s", s,
                         *i + 1, want, after);
    (*i)++;
    return KAGI_OK;
}

static int kagi__month_days(int y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return len[m - 1] + (m == 2 && leap);
}

int kagi_utc_parse(const char *s, kagi_utc *out)
{
    size_t i = 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
    double frac = 0;
    KAGI__TRY(kagi__digits(s, &i, 4, &y, "year"));
    KAGI__TRY(kagi__expect(s, &i, '-', "year"));
    KAGI__TRY(kagi__digits(s, &i, 2, &mo, "month"));
    KAGI__TRY(kagi__expect(s, &i, '-', "month"));
    KAGI__TRY(kagi__digits(s, &i, 2, &d, "day"));
    KAGI__FAIL_IF(mo < 1 || mo > 12, KAGI_ERR_FORMAT, "'%s': month %02d is not 01..12", s, mo);
    KAGI__FAIL_IF(d < 1 || d > kagi__month_days(y, mo), KAGI_ERR_FORMAT,
                  "'%s': day %02d does not exist in %04d-%02d", s, d, y, mo);
    int offset_min = 0;
    if (s[i] != '\0') {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
            return kagi__err(KAGI_ERR_FORMAT, "'%s': position %zu: expected 'T' after the date",
                             s, i + 1);
        i++;
        KAGI__TRY(kagi__digits(s, &i, 2, &h, "hour"));
        KAGI__TRY(kagi__expect(s, &i, ':', "hour"));
        KAGI__TRY(kagi__digits(s, &i, 2, &mi, "minute"));
        if (s[i] == ':') {
            i++;
            KAGI__TRY(kagi__digits(s, &i, 2, &se, "second"));
            if (s[i] == '.' || s[i] == ',') {
                i++;
                double scale = 0.1;
                size_t first = i;
                while (s[i] >= '0' && s[i] <= '9') {
                    frac += (s[i] - '0') * scale;
                    scale *= 0.1;
                    i++;
                }
                KAGI__FAIL_IF(i == first, KAGI_ERR_FORMAT,
                              "'%s': position %zu: expected digits after the decimal point", s,
                              i + 1);
            }
        }
        KAGI__FAIL_IF(h > 23, KAGI_ERR_FORMAT, "'%s': hour %02d is not 00..23", s, h);
        KAGI__FAIL_IF(mi > 59, KAGI_ERR_FORMAT, "'%s': minute %02d is not 00..59", s, mi);
        KAGI__FAIL_IF(se == 60, KAGI_ERR_FORMAT,
                      "'%s': second 60 (a leap second) has no POSIX time", s);
        KAGI__FAIL_IF(se > 59, KAGI_ERR_FORMAT, "'%s': second %02d is not 00..59", s, se);
        if (s[i] == 'Z' || s[i] == 'z') {
            i++;
        } else if (s[i] == '+' || s[i] == '-') {
            int sign = s[i] == '-' ? -1 : 1, oh = 0, om = 0;
            i++;
            KAGI__TRY(kagi__digits(s, &i, 2, &oh, "offset hours"));
            if (s[i] == ':') i++;
            if (s[i] >= '0' && s[i] <= '9') KAGI__TRY(kagi__digits(s, &i, 2, &om, "offset minutes"));
            KAGI__FAIL_IF(oh > 23 || om > 59, KAGI_ERR_FORMAT, "'%s': offset %02d:%02d out of range",
                          s, oh, om);
            offset_min = sign * (oh * 60 + om);
        } else {
            return kagi__err(KAGI_ERR_FORMAT,
                             "'%s': position %zu: expected 'Z' (UTC) or an offset like +09:00", s,
                             i + 1);
        }
        KAGI__FAIL_IF(s[i] != '\0', KAGI_ERR_FORMAT, "'%s': position %zu: unexpected '%c'", s,
                      i + 1, s[i]);
    }
    *out = kagi_utc_from_civil(y, mo, d, h, mi, se) + frac - offset_min * 60.0;
    return KAGI_OK;
}

int kagi_utc_format(kagi_utc t, int decimals, char *buf, size_t len)
{
    KAGI__FAIL_IF(decimals < 0 || decimals > 6, KAGI_ERR_ARG, "decimals %d not in 0..6",
                  decimals);
    KAGI__FAIL_IF(!isfinite(t), KAGI_ERR_ARG, "time is not finite");
    /* Round in whole units of the last decimal, so 59.9999996 s carries
     * into the next minute instead of printing "60.000000". */
    long long unit = 1;
    for (int k = 0; k < decimals; k++) unit *= 10;
    double whole = floor(t);
    long long sec = (long long)whole;
    long long sub = llround((t - whole) * (double)unit);
    if (sub >= unit) {
        sec++;
        sub -= unit;
    }
    long long days = sec >= 0 ? sec / 86400 : -((86399 - sec) / 86400);
    long long sod = sec - days * 86400;
    long long y;
    int m, d;
    kagi__civil_from_days(days, &y, &m, &d);
    KAGI__FAIL_IF(y < 0 || y > 9999, KAGI_ERR_ARG, "year %lld outside 0000..9999", y);
    int n;
    if (decimals)
        n = snprintf(buf, len, "%04lld-%02d-%02dT%02lld:%02lld:%02lld.%0*lldZ", y, m, d, sod / 3600,
                     sod / 60 % 60, sod % 60, decimals, sub);
    else
        n = snprintf(buf, len, "%04lld-%02d-%02dT%02lld:%02lld:%02lldZ", y, m, d, sod / 3600,
                     sod / 60 % 60, sod % 60);
    KAGI__FAIL_IF(n < 0 || (size_t)n >= len, KAGI_ERR_ARG, "buffer of %zu bytes too small", len);
    return KAGI_OK;
}

/* ---- Sidereal time ----------------------------------------------------- */

double kagi_gmst(kagi_utc t)
{
    /* IAU-82 (Aoki et al.): GMST in seconds of time at UT1 Julian
     * centuries T from J2000.0 (2000-01-01T12:00:00, POSIX 946728000). */
    double T = (t - 946728000.0) / (86400.0 * 36525.0);
    double sec = ((-6.2e-6 * T + 0.093104) * T + (876600.0 * 3600.0 + 8640184.812866)) * T +
                 67310.54841;
    /* 86400 s of time are one turn: 240 s per degree. */
    double g = fmod(sec * (KAGI__PI / 180.0) / 240.0, KAGI__TWOPI);
    return g < 0 ? g + KAGI__TWOPI : g;
}
