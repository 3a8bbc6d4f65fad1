/* Internal pieces shared by the files of src/orbit (not installed). */
#ifndef KAGI_ORBIT_INTERNAL_H
#define KAGI_ORBIT_INTERNAL_H

#include "kagi/orbit.h"

#define KAGI__PI 3.14159265358979323846
#define KAGI__TWOPI (2.0 * KAGI__PI)
#define KAGI__DEG (KAGI__PI / 180.0)
/* Julian date of 1970-01-01T00:00:00. */
#define KAGI__JD_UNIX 2440587.5
/* Earth's rotation rate, rad/s (Vallado's value, length of day not modelled). */
#define KAGI__OMEGA_EARTH 7.292115146706979e-5
/* WGS-84 ellipsoid. */
#define KAGI__WGS84_A 6378.137
#define KAGI__WGS84_F (1.0 / 298.257223563)

/* TLE epoch (four-digit year, day of year with fraction) as UTC. */
int kagi__tle_epoch(int year, double day, kagi_utc *out);
/* The same instant as days since 1950 January 0.0 (JD 2433281.5), the
 * epoch SGP4 counts from. */
double kagi__days_since_1950(int year, double day);

/* Bounds the pass scan relies on: the lowest and highest geocentric radius
 * the orbit reaches (km) and the fastest angular rate of the satellite's
 * geocentric direction (rad/s), each with a safety margin. */
void kagi__sat_bounds(const kagi_sat *s, double *rmin_km, double *rmax_km, double *rate_rad_s);

#endif
