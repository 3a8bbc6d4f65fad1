/* kagi/orbit.h: the space segment's geometry. UTC time, two-line element
 * sets (TLE), SGP4/SDP4 propagation, WGS-84 ground stations, look angles,
 * the Sun, and pass prediction. See docs/orbit.md.
 *
 * Units at this API: km, km/s, degrees, UTC seconds (kagi_utc); SGP4's own
 * clock is minutes since the element set's epoch.
 * Frames: SGP4 works in TEME (true equator, mean equinox of date). The
 * Earth-fixed frame here is TEME turned by Greenwich mean sidereal time
 * (IAU-82), with UT1 taken equal to UTC (|UT1-UTC| < 0.9 s) and polar motion
 * ignored (< 20 m at the ground); stations are WGS-84 geodetic.
 *
 * Fallible functions return KAGI_OK or a code of kagi/error.h, with a
 * one-line detail in kagi_errdetail(). */
#ifndef KAGI_ORBIT_H
#define KAGI_ORBIT_H

#include <stddef.h>

#include "kagi/bits.h" /* KAGI_NODISCARD, KAGI_NONNULL */

/* ---- Time ------------------------------------------------------------ */

/* A UTC instant: POSIX seconds since 1970-01-01T00:00:00Z, every day 86400 s
 * long (leap seconds are not counted, as with time_t). A double resolves
 * 1 microsecond or better over 1900-2200. */
typedef double kagi_utc;

/* From a proleptic Gregorian date and time of day (no range checks; out of
 * range fields carry over, e.g. hour 24 is the next day's 0h). */
kagi_utc kagi_utc_from_civil(int year, int month, int day, int hour, int minute, double sec);
/* Calendar fields of t; sec in [0, 60). */
void kagi_utc_to_civil(kagi_utc t, int *year, int *month, int *day, int *hour, int *minute,
                       double *sec) KAGI_NONNULL(2, 3, 4, 5, 6, 7);
/* Julian date of t (UTC scale) and back. */
double kagi_utc_to_jd(kagi_utc t);
kagi_utc kagi_utc_from_jd(double jd);

/* Parse ISO 8601 "2024-03-01T12:00:00Z": date, 'T' (or a blank), time with
 * optional fraction ("12:00:00.25"), then 'Z' or an offset "+09:00".
 * A date alone means 0h UTC. KAGI_ERR_FORMAT names the first bad
 * character's position (1-based) and what was expected there. */
int kagi_utc_parse(const char *s, kagi_utc *out) KAGI_NODISCARD KAGI_NONNULL(1, 2);
/* Enough for any kagi_utc_format output. */
#define KAGI_UTC_STRLEN 40
/* Write "2024-03-01T12:00:00Z" with 0..6 decimals of seconds (rounded) into
 * buf. KAGI_ERR_ARG for decimals outside 0..6, a non-finite t, a year
 * outside 0..9999 or a buffer too small. */
int kagi_utc_format(kagi_utc t, int decimals, char *buf, size_t len) KAGI_NODISCARD
    KAGI_NONNULL(3);

/* Greenwich mean sidereal time (IAU-82, UT1 = UTC), radians in [0, 2 pi). */
double kagi_gmst(kagi_utc t);

/* ---- Two-line element sets ------------------------------------------- */

typedef struct kagi_tle {
    char name[64];           /* line 0 of the 3-line form ("" in the 2-line form) */
    char satnum[6];          /* catalogue number, columns 3-7 ("25544"; Alpha-5 "A1234") */
    char classification;     /* 'U', 'C', 'S' or ' ' */
    char intl_designator[9]; /* "98067A", "" when blank */
    int epoch_year;          /* four digits: TLE years 57-99 are 19xx, 00-56 20xx */
    double epoch_day;        /* day of the year with fraction, 1.0 = 1 January 0h */
    kagi_utc epoch;          /* the same instant as UTC */
    double ndot;             /* first derivative of mean motion / 2, rev/day^2 */
    double nddot;            /* second derivative of mean motion / 6, rev/day^3 */
    double bstar;            /* SGP4 drag term, 1/earth radii */
    int ephemeris_type;      /* 0 (or blank) for SGP4 elements */
    int element_number;
    double incl_deg;         /* inclination, [0, 180] */
    double raan_deg;         /* right ascension of the ascending node, [0, 360] */
    double ecc;              /* eccentricity, [0, 1) */
    double argp_deg;         /* argument of perigee, [0, 360] */
    double mean_anomaly_deg; /* [0, 360] */
    double mean_motion;      /* Kozai mean motion, rev/day, > 0 */
    long rev_number;         /* revolution number at epoch */
    size_t source_line;      /* line of "1 ..." in its file, 1-based; 0 if not from a file */
} kagi_tle;

/* Flags for the parsers. */
enum {
    /* Accept a wrong checksum in column 69 (some historic sets, such as the
     * SGP4 verification set, were edited by hand). */
    KAGI_TLE_NO_CHECKSUM = 1u << 0,
};

/* Parse one element set from its two 69-column lines (a trailing newline
 * or blanks are allowed). Checks the layout, every field's digits and
 * range, that both lines name the same satellite, and the checksums. On
 * KAGI_ERR_FORMAT the detail reads "TLE line L, column C: what". */
int kagi_tle_parse(const char *line1, const char *line2, unsigned flags, kagi_tle *out)
    KAGI_NODISCARD KAGI_NONNULL(1, 2, 4);

/* Parse every element set of a text: 3-line sets (a name line, "0 " prefix
 * allowed, then lines 1 and 2) and 2-line sets, mixed freely; blank lines
 * and lines starting with '#' are skipped. *out (count entries, freed with
 * kagi_tle_free) receives them in order; a text without any set is an
 * error. On KAGI_ERR_FORMAT the detail reads "ORIGIN:LINE:COLUMN: what";
 * nothing is returned. origin names the text in messages (a path). */
int kagi_tle_parse_text(const char *text, size_t len, const char *origin, unsigned flags,
                        kagi_tle **out, size_t *count) KAGI_NODISCARD KAGI_NONNULL(1, 3, 5, 6);
/* The same for a file of at most 64 MiB; KAGI_ERR_IO names the path. */
int kagi_tle_read_file(const char *path, unsigned flags, kagi_tle **out, size_t *count)
    KAGI_NODISCARD KAGI_NONNULL(1, 3, 4);
void kagi_tle_free(kagi_tle *list);
/* The first set whose catalogue number (leading zeros optional) or name
 * (case-insensitive) is id; NULL if none. */
const kagi_tle *kagi_tle_find(const kagi_tle *list, size_t count, const char *id)
    KAGI_NONNULL(3);

/* ---- SGP4/SDP4 ------------------------------------------------------- */

/* A satellite ready to propagate: SGP4 for periods under 225 minutes,
 * SDP4 (lunar-solar terms, 12 h and 24 h resonances) above, in the
 * "improved" mode of Vallado et al. 2006 with WGS-72 constants.
 * Propagation updates a resonance-integration cache inside the object: use
 * one object per thread (kagi_sat_new is cheap). */
typedef struct kagi_sat kagi_sat;

/* Why SGP4 gave up on a time (the codes of the reference implementation). */
typedef enum kagi_sgp4_fault {
    KAGI_SGP4_OK = 0,
    KAGI_SGP4_MEAN_ECC = 1,    /* mean eccentricity left [-0.001, 1) */
    KAGI_SGP4_MEAN_MOTION = 2, /* mean motion no longer positive */
    KAGI_SGP4_PERT_ECC = 3,    /* perturbed eccentricity left [0, 1] */
    KAGI_SGP4_SEMILATUS = 4,   /* semi-latus rectum negative */
    KAGI_SGP4_DECAYED = 6,     /* orbit radius below one Earth radius */
} kagi_sgp4_fault;

/* Initialise from an element set (copied). KAGI_ERR_ARG when the elements
 * are out of range or SGP4 fails at the epoch (the detail says why);
 * KAGI_ERR_NOMEM. */
int kagi_sat_new(const kagi_tle *tle, kagi_sat **out) KAGI_NODISCARD KAGI_NONNULL(1, 2);
void kagi_sat_free(kagi_sat *s);
const kagi_tle *kagi_sat_tle(const kagi_sat *s) KAGI_NONNULL(1);
/* Anomalistic period from the un-Kozai'd mean motion, minutes. */
double kagi_sat_period_min(const kagi_sat *s) KAGI_NONNULL(1);
/* 1 when the deep-space (SDP4) branch is used. */
int kagi_sat_deep_space(const kagi_sat *s) KAGI_NONNULL(1);

/* TEME position (km) and velocity (km/s) at minutes since epoch (either
 * side of it). KAGI_ERR_ARG when SGP4 fails at that time (decay, elements
 * out of range), with a detail naming the satellite, the time and the
 * reason; kagi_sat_fault() then tells which. v_km_s may be NULL. */
int kagi_sat_propagate(kagi_sat *s, double minutes, double r_km[3], double v_km_s[3])
    KAGI_NODISCARD KAGI_NONNULL(1, 3);
/* The same at a UTC instant. */
int kagi_sat_at(kagi_sat *s, kagi_utc t, double r_km[3], double v_km_s[3]) KAGI_NODISCARD
    KAGI_NONNULL(1, 3);
/* Fault of the last propagation (KAGI_SGP4_OK after a success). */
kagi_sgp4_fault kagi_sat_fault(const kagi_sat *s) KAGI_NONNULL(1);

/* ---- Frames and ground stations -------------------------------------- */

/* TEME to Earth-fixed (see the top of this file). v_teme and v_ecef may be
 * NULL; the velocity includes the Earth's rotation. */
void kagi_teme_to_ecef(kagi_utc t, const double r_teme[3], const double v_teme[3],
                       double r_ecef[3], double v_ecef[3]) KAGI_NONNULL(2, 4);
/* WGS-84 geodetic latitude, longitude (east positive, degrees) and height
 * above the ellipsoid (km) to Earth-fixed km, and back (exact to < 1 mm
 * for heights under 1e5 km; longitude in (-180, 180]). */
void kagi_geodetic_to_ecef(double lat_deg, double lon_deg, double alt_km, double r_ecef[3])
    KAGI_NONNULL(4);
void kagi_ecef_to_geodetic(const double r_ecef[3], double *lat_deg, double *lon_deg,
                           double *alt_km) KAGI_NONNULL(1, 2, 3, 4);

/* A ground station. Fill it with kagi_station_init; the fields after
 * alt_km are derived. */
typedef struct kagi_station {
    double lat_deg, lon_deg, alt_km; /* WGS-84 geodetic */
    double ecef_km[3];               /* position, Earth-fixed */
    double east[3], north[3], up[3]; /* local unit vectors, Earth-fixed */
} kagi_station;

/* KAGI_ERR_ARG for a latitude outside [-90, 90], a longitude outside
 * [-180, 360] or a height outside [-11, 100] km (or non-finite). */
int kagi_station_init(kagi_station *st, double lat_deg, double lon_deg, double alt_km)
    KAGI_NODISCARD KAGI_NONNULL(1);

/* Where a satellite is seen from a station at one instant. */
typedef struct kagi_look {
    kagi_utc t;
    double az_deg;          /* azimuth from north through east, [0, 360) */
    double el_deg;          /* elevation above the ellipsoid's horizon, [-90, 90] */
    double range_km;        /* slant range */
    double range_rate_km_s; /* d(range)/dt, positive when receding */
    double sun_el_deg;      /* the Sun's elevation at the station (< -18: night) */
} kagi_look;

/* Look angles of an Earth-fixed position and velocity from st (fills all
 * but t and sun_el_deg). v_ecef may be NULL (range rate then 0). */
void kagi_look_ecef(const kagi_station *st, const double r_ecef[3], const double v_ecef[3],
                    kagi_look *out) KAGI_NONNULL(1, 2, 4);
/* Propagate s to t and fill every field of *out. Fails as kagi_sat_at. */
int kagi_look_at(kagi_sat *s, const kagi_station *st, kagi_utc t, kagi_look *out)
    KAGI_NODISCARD KAGI_NONNULL(1, 2, 4);

/* ---- The Sun ----------------------------------------------------------- */

/* Apparent right ascension and declination (degrees, of date) and distance
 * (AU) of the Sun by the Astronomical Almanac's low-precision formula:
 * 0.01 deg over 1950-2050. Any output may be NULL. */
void kagi_sun_radec(kagi_utc t, double *ra_deg, double *dec_deg, double *dist_au);
/* The Sun's Earth-fixed position, km. */
void kagi_sun_ecef(kagi_utc t, double r_ecef[3]) KAGI_NONNULL(2);
/* The Sun's elevation at a station, degrees (geometric, no refraction). */
double kagi_sun_elevation(const kagi_station *st, kagi_utc t) KAGI_NONNULL(1);

/* ---- Passes ------------------------------------------------------------ */

/* One pass above a minimum elevation. Times are within 0.01 s of the true
 * crossing and culmination of the model. */
typedef struct kagi_pass {
    kagi_utc aos;            /* acquisition: elevation rises through the minimum */
    kagi_utc tca;            /* culmination: highest elevation */
    kagi_utc los;            /* loss of signal: elevation falls through the minimum */
    double max_el_deg;       /* elevation at tca */
    double aos_az_deg, tca_az_deg, los_az_deg;
    int starts_before;       /* already up at the window's start: aos is that start */
    int ends_after;          /* still up at the window's end: los is that end */
} kagi_pass;

/* Every pass of s over st in [t0, t1] (t1 - t0 up to 20 years) above
 * min_el_deg (in [-5, 89]), in time order; a window without a pass gives
 * count 0 and *out NULL. Passes are found by a scan that skips the times
 * when the satellite cannot be in view (a bound on its angular speed) and
 * otherwise steps at most 1/200 of the orbital period (28 s in LEO),
 * watching both for crossings and for elevation peaks that might reach the
 * minimum between samples (a bound on the elevation rate decides), which
 * are then refined: root finding for aos/los, golden section for tca. So a
 * pass is missed only if its elevation curve has two peaks within a step.
 * KAGI_ERR_ARG for bad arguments and when SGP4 fails in the window (the
 * detail names the time, e.g. decay). *out is freed with kagi_passes_free. */
int kagi_passes(kagi_sat *s, const kagi_station *st, kagi_utc t0, kagi_utc t1,
                double min_el_deg, kagi_pass **out, size_t *count) KAGI_NODISCARD
    KAGI_NONNULL(1, 2, 6, 7);
void kagi_passes_free(kagi_pass *list);

/* Look angles (with the Sun's elevation) along a pass: at aos, aos + step,
 * aos + 2 step, ... and at los, so (los - aos) / step + 2 samples at most.
 * step_s in [0.001, 86400]. *out (count entries) is freed with
 * kagi_looks_free. This is what link budgets consume. */
int kagi_pass_sample(kagi_sat *s, const kagi_station *st, const kagi_pass *p, double step_s,
                     kagi_look **out, size_t *count) KAGI_NODISCARD KAGI_NONNULL(1, 2, 3, 5, 6);
void kagi_looks_free(kagi_look *list);

#endif
