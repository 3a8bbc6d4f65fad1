/* Frames and geometry: TEME to Earth-fixed, WGS-84 stations, look angles,
 * and the Sun by the Astronomical Almanac's low-precision formula. */
#include <math.h>

#include "internal.h"
#include "kagi/orbit.h"
#include "orbit_internal.h"

#define AU_KM 149597870.7

void kagi_teme_to_ecef(kagi_utc t, const double r_teme[3], const double v_teme[3],
                       double r_ecef[3], double v_ecef[3])
{
    /* Earth-fixed = R3(GMST) TEME; the velocity loses omega x r. */
    double g = kagi_gmst(t), c = cos(g), s = sin(g);
    double x = c * r_teme[0] + s * r_teme[1];
    double y = -s * r_teme[0] + c * r_teme[1];
    double z = r_teme[2];
    if (v_teme && v_ecef) {
        double vx = c * v_teme[0] + s * v_teme[1];
        double vy = -s * v_teme[0] + c * v_teme[1];
        v_ecef[0] = vx + KAGI__OMEGA_EARTH * y;
        v_ecef[1] = vy - KAGI__OMEGA_EARTH * x;
        v_ecef[2] = v_teme[2];
    }
    r_ecef[0] = x;
    r_ecef[1] = y;
    r_ecef[2] = z;
}

void kagi_geodetic_to_ecef(double lat_deg, double lon_deg, double alt_km, double r[3])
{
    const double e2 = KAGI__WGS84_F * (2.0 - KAGI__WGS84_F);
    double phi = lat_deg * KAGI__DEG, lam = lon_deg * KAGI__DEG;
    double sp = sin(phi), cp = cos(phi);
    double n = KAGI__WGS84_A / sqrt(1.0 - e2 * sp * sp); /* prime vertical radius */
    r[0] = (n + alt_km) * cp * cos(lam);
    r[1] = (n + alt_km) * cp * sin(lam);
    r[2] = (n * (1.0 - e2) + alt_km) * sp;
}

void kagi_ecef_to_geodetic(const double r[3], double *lat_deg, double *lon_deg, double *alt_km)
{
    const double a = KAGI__WGS84_A, e2 = KAGI__WGS84_F * (2.0 - KAGI__WGS84_F);
    double p = hypot(r[0], r[1]);
    /* Fixed point on the latitude: phi = atan2(z + e2 N sin phi, p), which
     * converges for any point outside the Earth's core; the height then
     * comes from the form that stays exact at the poles. */
    double phi = atan2(r[2], p * (1.0 - e2));
    for (int k = 0; k < 12; k++) {
        double sp = sin(phi);
        double n = a / sqrt(1.0 - e2 * sp * sp);
        double next = atan2(r[2] + e2 * n * sp, p);
        if (fabs(next - phi) < 1e-15) {
            phi = next;
            break;
        }
        phi = next;
    }
    double sp = sin(phi), cp = cos(phi);
    *lat_deg = phi / KAGI__DEG;
    *lon_deg = (p > 0 || r[1] != 0) ? atan2(r[1], r[0]) / KAGI__DEG : 0.0;
    *alt_km = p * cp + r[2] * sp - a * sqrt(1.0 - e2 * sp * sp);
}

int kagi_station_init(kagi_station *st, double lat_deg, double lon_deg, double alt_km)
{
    KAGI__FAIL_IF(!(lat_deg >= -90.0 && lat_deg <= 90.0), KAGI_ERR_ARG,
                  "station latitude %g deg outside [-90, 90]", lat_deg);
    KAGI__FAIL_IF(!(lon_deg >= -180.0 && lon_deg <= 360.0), KAGI_ERR_ARG,
                  "station longitude %g deg outside [-180, 360]", lon_deg);
    KAGI__FAIL_IF(!(alt_km >= -11.0 && alt_km <= 100.0), KAGI_ERR_ARG,
                  "station height %g km outside [-11, 100]", alt_km);
    st->lat_deg = lat_deg;
    st->lon_deg = lon_deg;
    st->alt_km = alt_km;
    kagi_geodetic_to_ecef(lat_deg, lon_deg, alt_km, st->ecef_km);
    double sp = sin(lat_deg * KAGI__DEG), cp = cos(lat_deg * KAGI__DEG);
    double sl = sin(lon_deg * KAGI__DEG), cl = cos(lon_deg * KAGI__DEG);
    st->east[0] = -sl;
    st->east[1] = cl;
    st->east[2] = 0.0;
    st->north[0] = -sp * cl;
    st->north[1] = -sp * sl;
    st->north[2] = cp;
    st->up[0] = cp * cl;
    st->up[1] = cp * sl;
    st->up[2] = sp;
    return KAGI_OK;
}

static double kagi__dot(const double a[3], const double b[3])
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

void kagi_look_ecef(const kagi_station *st, const double r[3], const double v[3], kagi_look *out)
{
    double d[3] = {r[0] - st->ecef_km[0], r[1] - st->ecef_km[1], r[2] - st->ecef_km[2]};
    double e = kagi__dot(d, st->east), n = kagi__dot(d, st->north), u = kagi__dot(d, st->up);
    double range = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    double az = atan2(e, n) / KAGI__DEG;
    if (az < 0) az += 360.0;
    if (az >= 360.0) az -= 360.0;
    out->az_deg = az;
    out->el_deg = atan2(u, hypot(e, n)) / KAGI__DEG;
    out->range_km = range;
    out->range_rate_km_s = (v && range > 0) ? kagi__dot(d, v) / range : 0.0;
}

/* ---- The Sun ----------------------------------------------------------- */

/* Ecliptic longitude, obliquity (radians) and distance (AU), from the
 * Astronomical Almanac's "low precision formulas for the Sun". */
static void kagi__sun(kagi_utc t, double *lambda, double *eps, double *dist)
{
    double n = kagi_utc_to_jd(t) - 2451545.0;
    double L = fmod(280.460 + 0.9856474 * n, 360.0);
    double g = fmod(357.528 + 0.9856003 * n, 360.0) * KAGI__DEG;
    *lambda = (L + 1.915 * sin(g) + 0.020 * sin(2.0 * g)) * KAGI__DEG;
    *eps = (23.439 - 0.0000004 * n) * KAGI__DEG;
    *dist = 1.00014 - 0.01671 * cos(g) - 0.00014 * cos(2.0 * g);
}

void kagi_sun_radec(kagi_utc t, double *ra_deg, double *dec_deg, double *dist_au)
{
    double lam, eps, dist;
    kagi__sun(t, &lam, &eps, &dist);
    double ra = atan2(cos(eps) * sin(lam), cos(lam)) / KAGI__DEG;
    if (ra < 0) ra += 360.0;
    if (ra_deg) *ra_deg = ra;
    if (dec_deg) *dec_deg = asin(sin(eps) * sin(lam)) / KAGI__DEG;
    if (dist_au) *dist_au = dist;
}

void kagi_sun_ecef(kagi_utc t, double r_ecef[3])
{
    double lam, eps, dist;
    kagi__sun(t, &lam, &eps, &dist);
    /* Equatorial of date (close enough to TEME: the two differ by the
     * equation of the equinoxes, < 0.005 deg), then Earth-fixed. */
    double k = dist * AU_KM;
    double eq[3] = {k * cos(lam), k * cos(eps) * sin(lam), k * sin(eps) * sin(lam)};
    kagi_teme_to_ecef(t, eq, NULL, r_ecef, NULL);
}

double kagi_sun_elevation(const kagi_station *st, kagi_utc t)
{
    double r[3];
    kagi_look l;
    kagi_sun_ecef(t, r);
    kagi_look_ecef(st, r, NULL, &l);
    return l.el_deg;
}

int kagi_look_at(kagi_sat *s, const kagi_station *st, kagi_utc t, kagi_look *out)
{
    double r[3], v[3], re[3], ve[3];
    KAGI__TRY(kagi_sat_at(s, t, r, v));
    kagi_teme_to_ecef(t, r, v, re, ve);
    kagi_look_ecef(st, re, ve, out);
    out->t = t;
    out->sun_el_deg = kagi_sun_elevation(st, t);
    return KAGI_OK;
}
