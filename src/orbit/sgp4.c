/* SGP4/SDP4 orbit propagation from two-line elements.
 *
 * The model of Hoots and Roehrich, Spacetrack Report #3 (1980), with the
 * corrections of Vallado, Crawford, Hujsak and Kelso, "Revisiting
 * Spacetrack Report #3" (AIAA 2006-6753), in its "improved" operation mode:
 * WGS-72 constants, GMST of the epoch by IAU-82, the Lyddane choice on the
 * perturbed inclination, no wrapping of the node into [0, 2 pi) in the
 * Lyddane branch. Symbols follow the report (its variable names are the
 * common language of everyone who checks SGP4 against it); units are Earth
 * radii and minutes inside, km and km/s outside.
 *
 * Layout: initialisation (un-Kozai the mean motion, secular and drag
 * coefficients; for periods of 225 minutes and more the deep-space terms:
 * lunar-solar coefficients, then resonance set-up), then propagation
 * (secular update, deep-space secular and resonance integration, lunar-solar
 * periodics, long-period periodics, Kepler's equation, short-period
 * periodics, position and velocity). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kagi/orbit.h"
#include "orbit_internal.h"

/* WGS-72, the constants the element sets are fitted with. */
#define RE_KM 6378.135                      /* equatorial radius */
#define MU_KM3_S2 398600.8                  /* gravitational parameter */
#define J2 0.001082616
#define J3 (-0.00000253881)
#define J4 (-0.00000165597)
#define J3OJ2 (J3 / J2)
#define X2O3 (2.0 / 3.0)
#define TWOPI KAGI__TWOPI
#define PI KAGI__PI

/* sqrt(mu / re^3) in 1/minutes: the unit of mean motion. */
static double kagi__xke(void) { return 60.0 / sqrt(RE_KM * RE_KM * RE_KM / MU_KM3_S2); }

struct kagi_sat {
    kagi_tle tle;
    /* Elements at epoch: radians, radians per minute. */
    double ecco, inclo, nodeo, argpo, mo, no_kozai, no, bstar;
    double epoch1950, gsto, xke, ao;
    int deep, isimp;
    /* Near-Earth secular and drag coefficients. */
    double aycof, con41, cc1, cc4, cc5, d2, d3, d4, delmo, eta, argpdot, omgcof, sinmao, t2cof,
        t3cof, t4cof, t5cof, x1mth2, x7thm1, mdot, nodedot, xlcof, xmcof, nodecf, a;
    /* Lunar-solar periodic coefficients. */
    double e3, ee2, se2, se3, sgh2, sgh3, sgh4, sh2, sh3, si2, si3, sl2, sl3, sl4, xgh2, xgh3,
        xgh4, xh2, xh3, xi2, xi3, xl2, xl3, xl4, zmol, zmos;
    /* Lunar-solar secular rates. */
    double dedt, didt, dmdt, dnodt, domdt;
    /* Resonance: 0 none, 1 synchronous (24 h), 2 half-day (12 h). */
    int irez;
    double d2201, d2211, d3210, d3222, d4410, d4422, d5220, d5232, d5421, d5433, del1, del2, del3,
        xfact, xlamo;
    /* Integrator state: its last whole step (minutes) and the values there. */
    double atime, xli, xni;
    kagi_sgp4_fault fault;
};

/* ---- Deep-space initialisation ----------------------------------------- */

/* What the lunar-solar set-up hands on: the trigonometry of the epoch
 * elements and the coefficients of both perturbing bodies (s*, z* of the
 * Moon; ss*, sz* of the Sun). */
typedef struct kagi__dscom {
    double sinim, cosim, emsq;
    double s1, s2, s3, s4, s5, ss1, ss2, ss3, ss4, ss5;
    double z1, z3, z11, z13, z21, z23, z31, z33;
    double sz1, sz3, sz11, sz13, sz21, sz23, sz31, sz33;
} kagi__dscom;

static void kagi__dscom_run(kagi_sat *s, kagi__dscom *o)
{
    const double zes = 0.01675, zel = 0.05490, c1ss = 2.9864797e-6, c1l = 4.7968065e-7,
                 zsinis = 0.39785416, zcosis = 0.91744867, zcosgs = 0.1945905,
                 zsings = -0.98088458;
    double nm = s->no, em = s->ecco;
    double snodm = sin(s->nodeo), cnodm = cos(s->nodeo);
    double sinomm = sin(s->argpo), cosomm = cos(s->argpo);
    double sinim = sin(s->inclo), cosim = cos(s->inclo);
    double emsq = em * em, betasq = 1.0 - emsq, rtemsq = sqrt(betasq);

    /* The Moon's orbit at epoch (tc = 0). */
    double day = s->epoch1950 + 18261.5;
    double xnodce = fmod(4.5236020 - 9.2422029e-4 * day, TWOPI);
    double stem = sin(xnodce), ctem = cos(xnodce);
    double zcosil = 0.91375164 - 0.03568096 * ctem;
    double zsinil = sqrt(1.0 - zcosil * zcosil);
    double zsinhl = 0.089683511 * stem / zsinil;
    double zcoshl = sqrt(1.0 - zsinhl * zsinhl);
    double gam = 5.8351514 + 0.0019443680 * day;
    double zx = 0.39785416 * stem / zsinil;
    double zy = zcoshl * ctem + 0.91744867 * zsinhl * stem;
    zx = atan2(zx, zy);
    zx = gam + zx - xnodce;
    double zcosgl = cos(zx), zsingl = sin(zx);

    /* Pass 1: the Sun; pass 2: the Moon. */
    double zcosg = zcosgs, zsing = zsings, zcosi = zcosis, zsini = zsinis, zcosh = cnodm,
           zsinh = snodm, cc = c1ss, xnoi = 1.0 / nm;
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    double z1 = 0, z2 = 0, z3 = 0, z11 = 0, z12 = 0, z13 = 0, z21 = 0, z22 = 0, z23 = 0, z31 = 0,
           z32 = 0, z33 = 0;
    double ss1 = 0, ss2 = 0, ss3 = 0, ss4 = 0, ss5 = 0, ss6 = 0, ss7 = 0;
    double sz1 = 0, sz2 = 0, sz3 = 0, sz11 = 0, sz12 = 0, sz13 = 0, sz21 = 0, sz22 = 0, sz23 = 0,
           sz31 = 0, sz32 = 0, sz33 = 0;
    for (int body = 1; body <= 2; body++) {
        double a1 = zcosg * zcosh + zsing * zcosi * zsinh;
        double a3 = -zsing * zcosh + zcosg * zcosi * zsinh;
        double a7 = -zcosg * zsinh + zsing * zcosi * zcosh;
        double a8 = zsing * zsini;
        double a9 = zsing * zsinh + zcosg * zcosi * zcosh;
        double a10 = zcosg * zsini;
        double a2 = cosim * a7 + sinim * a8;
        double a4 = cosim * a9 + sinim * a10;
        double a5 = -sinim * a7 + cosim * a8;
        double a6 = -sinim * a9 + cosim * a10;

        double x1 = a1 * cosomm + a2 * sinomm;
        double x2 = a3 * cosomm + a4 * sinomm;
        double x3 = -a1 * sinomm + a2 * cosomm;
        double x4 = -a3 * sinomm + a4 * cosomm;
        double x5 = a5 * sinomm;
        double x6 = a6 * sinomm;
        double x7 = a5 * cosomm;
        double x8 = a6 * cosomm;

        z31 = 12.0 * x1 * x1 - 3.0 * x3 * x3;
        z32 = 24.0 * x1 * x2 - 6.0 * x3 * x4;
        z33 = 12.0 * x2 * x2 - 3.0 * x4 * x4;
        z1 = 3.0 * (a1 * a1 + a2 * a2) + z31 * emsq;
        z2 = 6.0 * (a1 * a3 + a2 * a4) + z32 * emsq;
        z3 = 3.0 * (a3 * a3 + a4 * a4) + z33 * emsq;
        z11 = -6.0 * a1 * a5 + emsq * (-24.0 * x1 * x7 - 6.0 * x3 * x5);
        z12 = -6.0 * (a1 * a6 + a3 * a5) +
              emsq * (-24.0 * (x2 * x7 + x1 * x8) - 6.0 * (x3 * x6 + x4 * x5));
        z13 = -6.0 * a3 * a6 + emsq * (-24.0 * x2 * x8 - 6.0 * x4 * x6);
        z21 = 6.0 * a2 * a5 + emsq * (24.0 * x1 * x5 - 6.0 * x3 * x7);
        z22 = 6.0 * (a4 * a5 + a2 * a6) +
              emsq * (24.0 * (x2 * x5 + x1 * x6) - 6.0 * (x4 * x7 + x3 * x8));
        z23 = 6.0 * a4 * a6 + emsq * (24.0 * x2 * x6 - 6.0 * x4 * x8);
        z1 = z1 + z1 + betasq * z31;
        z2 = z2 + z2 + betasq * z32;
        z3 = z3 + z3 + betasq * z33;
        s3 = cc * xnoi;
        s2 = -0.5 * s3 / rtemsq;
        s4 = s3 * rtemsq;
        s1 = -15.0 * em * s4;
        s5 = x1 * x3 + x2 * x4;
        s6 = x2 * x3 + x1 * x4;
        s7 = x2 * x4 - x1 * x3;

        if (body == 1) { /* keep the Sun's, set up the Moon's geometry */
            ss1 = s1; ss2 = s2; ss3 = s3; ss4 = s4; ss5 = s5; ss6 = s6; ss7 = s7;
            sz1 = z1; sz2 = z2; sz3 = z3;
            sz11 = z11; sz12 = z12; sz13 = z13;
            sz21 = z21; sz22 = z22; sz23 = z23;
            sz31 = z31; sz32 = z32; sz33 = z33;
            zcosg = zcosgl;
            zsing = zsingl;
            zcosi = zcosil;
            zsini = zsinil;
            zcosh = zcoshl * cnodm + zsinhl * snodm;
            zsinh = snodm * zcoshl - cnodm * zsinhl;
            cc = c1l;
        }
    }
    s->zmol = fmod(4.7199672 + 0.22997150 * day - gam, TWOPI);
    s->zmos = fmod(6.2565837 + 0.017201977 * day, TWOPI);

    /* Periodic coefficients, Sun then Moon. */
    s->se2 = 2.0 * ss1 * ss6;
    s->se3 = 2.0 * ss1 * ss7;
    s->si2 = 2.0 * ss2 * sz12;
    s->si3 = 2.0 * ss2 * (sz13 - sz11);
    s->sl2 = -2.0 * ss3 * sz2;
    s->sl3 = -2.0 * ss3 * (sz3 - sz1);
    s->sl4 = -2.0 * ss3 * (-21.0 - 9.0 * emsq) * zes;
    s->sgh2 = 2.0 * ss4 * sz32;
    s->sgh3 = 2.0 * ss4 * (sz33 - sz31);
    s->sgh4 = -18.0 * ss4 * zes;
    s->sh2 = -2.0 * ss2 * sz22;
    s->sh3 = -2.0 * ss2 * (sz23 - sz21);

    s->ee2 = 2.0 * s1 * s6;
    s->e3 = 2.0 * s1 * s7;
    s->xi2 = 2.0 * s2 * z12;
    s->xi3 = 2.0 * s2 * (z13 - z11);
    s->xl2 = -2.0 * s3 * z2;
    s->xl3 = -2.0 * s3 * (z3 - z1);
    s->xl4 = -2.0 * s3 * (-21.0 - 9.0 * emsq) * zel;
    s->xgh2 = 2.0 * s4 * z32;
    s->xgh3 = 2.0 * s4 * (z33 - z31);
    s->xgh4 = -18.0 * s4 * zel;
    s->xh2 = -2.0 * s2 * z22;
    s->xh3 = -2.0 * s2 * (z23 - z21);

    o->sinim = sinim;
    o->cosim = cosim;
    o->emsq = emsq;
    o->s1 = s1; o->s2 = s2; o->s3 = s3; o->s4 = s4; o->s5 = s5;
    o->ss1 = ss1; o->ss2 = ss2; o->ss3 = ss3; o->ss4 = ss4; o->ss5 = ss5;
    o->z1 = z1; o->z3 = z3; o->z11 = z11; o->z13 = z13;
    o->z21 = z21; o->z23 = z23; o->z31 = z31; o->z33 = z33;
    o->sz1 = sz1; o->sz3 = sz3; o->sz11 = sz11; o->sz13 = sz13;
    o->sz21 = sz21; o->sz23 = sz23; o->sz31 = sz31; o->sz33 = sz33;
}

/* Secular lunar-solar rates and the resonance terms (Earth's tesseral
 * harmonics) for orbits near 1 or 2 revolutions per day. */
static void kagi__dsinit(kagi_sat *s, const kagi__dscom *d, double xpidot)
{
    const double q22 = 1.7891679e-6, q31 = 2.1460748e-6, q33 = 2.2123015e-7,
                 root22 = 1.7891679e-6, root44 = 7.3636953e-9, root54 = 2.1765803e-9,
                 rptim = 4.37526908801129966e-3, root32 = 3.7393792e-7,
                 root52 = 1.1428639e-7, znl = 1.5835218e-4, zns = 1.19459e-5;
    double nm = s->no, em = s->ecco, emsq = d->emsq;
    double sinim = d->sinim, cosim = d->cosim, inclm = s->inclo;

    s->irez = 0;
    if (nm < 0.0052359877 && nm > 0.0034906585) s->irez = 1;
    if (nm >= 8.26e-3 && nm <= 9.24e-3 && em >= 0.5) s->irez = 2;

    /* Solar secular terms. */
    double ses = d->ss1 * zns * d->ss5;
    double sis = d->ss2 * zns * (d->sz11 + d->sz13);
    double sls = -zns * d->ss3 * (d->sz1 + d->sz3 - 14.0 - 6.0 * emsq);
    double sghs = d->ss4 * zns * (d->sz31 + d->sz33 - 6.0);
    double shs = -zns * d->ss2 * (d->sz21 + d->sz23);
    if (inclm < 5.2359877e-2 || inclm > PI - 5.2359877e-2) shs = 0.0;
    if (sinim != 0.0) shs = shs / sinim;
    double sgs = sghs - cosim * shs;

    /* Lunar secular terms. */
    s->dedt = ses + d->s1 * znl * d->s5;
    s->didt = sis + d->s2 * znl * (d->z11 + d->z13);
    s->dmdt = sls - znl * d->s3 * (d->z1 + d->z3 - 14.0 - 6.0 * emsq);
    double sghl = d->s4 * znl * (d->z31 + d->z33 - 6.0);
    double shll = -znl * d->s2 * (d->z21 + d->z23);
    if (inclm < 5.2359877e-2 || inclm > PI - 5.2359877e-2) shll = 0.0;
    s->domdt = sgs + sghl;
    s->dnodt = shs;
    if (sinim != 0.0) {
        s->domdt = s->domdt - cosim / sinim * shll;
        s->dnodt = s->dnodt + shll / sinim;
    }

    if (s->irez == 0) return;
    double theta = fmod(s->gsto, TWOPI);
    double aonv = pow(nm / s->xke, X2O3);

    if (s->irez == 2) { /* 12-hour resonance, fitted to the epoch eccentricity */
        double cosisq = cosim * cosim;
        em = s->ecco;
        emsq = em * em;
        double eoc = em * emsq;
        double g201 = -0.306 - (em - 0.64) * 0.440, g211, g310, g322, g410, g422, g520, g521,
               g532, g533;
        if (em <= 0.65) {
            g211 = 3.616 - 13.2470 * em + 16.2900 * emsq;
            g310 = -19.302 + 117.3900 * em - 228.4190 * emsq + 156.5910 * eoc;
            g322 = -18.9068 + 109.7927 * em - 214.6334 * emsq + 146.5816 * eoc;
            g410 = -41.122 + 242.6940 * em - 471.0940 * emsq + 313.9530 * eoc;
            g422 = -146.407 + 841.8800 * em - 1629.014 * emsq + 1083.4350 * eoc;
            g520 = -532.114 + 3017.977 * em - 5740.032 * emsq + 3708.2760 * eoc;
        } else {
            g211 = -72.099 + 331.819 * em - 508.738 * emsq + 266.724 * eoc;
            g310 = -346.844 + 1582.851 * em - 2415.925 * emsq + 1246.113 * eoc;
            g322 = -342.585 + 1554.908 * em - 2366.899 * emsq + 1215.972 * eoc;
            g410 = -1052.797 + 4758.686 * em - 7193.992 * emsq + 3651.957 * eoc;
            g422 = -3581.690 + 16178.110 * em - 24462.770 * emsq + 12422.520 * eoc;
            if (em > 0.715)
                g520 = -5149.66 + 29936.92 * em - 54087.36 * emsq + 31324.56 * eoc;
            else
                g520 = 1464.74 - 4664.75 * em + 3763.64 * emsq;
        }
        if (em < 0.7) {
            g533 = -919.22770 + 4988.6100 * em - 9064.7700 * emsq + 5542.21 * eoc;
            g521 = -822.71072 + 4568.6173 * em - 8491.4146 * emsq + 5337.524 * eoc;
            g532 = -853.66600 + 4690.2500 * em - 8624.7700 * emsq + 5341.4 * eoc;
        } else {
            g533 = -37995.780 + 161616.52 * em - 229838.20 * emsq + 109377.94 * eoc;
            g521 = -51752.104 + 218913.95 * em - 309468.16 * emsq + 146349.42 * eoc;
            g532 = -40023.880 + 170470.89 * em - 242699.48 * emsq + 115605.82 * eoc;
        }
        double sini2 = sinim * sinim;
        double f220 = 0.75 * (1.0 + 2.0 * cosim + cosisq);
        double f221 = 1.5 * sini2;
        double f321 = 1.875 * sinim * (1.0 - 2.0 * cosim - 3.0 * cosisq);
        double f322 = -1.875 * sinim * (1.0 + 2.0 * cosim - 3.0 * cosisq);
        double f441 = 35.0 * sini2 * f220;
        double f442 = 39.3750 * sini2 * sini2;
        double f522 = 9.84375 * sinim *
                      (sini2 * (1.0 - 2.0 * cosim - 5.0 * cosisq) +
                       0.33333333 * (-2.0 + 4.0 * cosim + 6.0 * cosisq));
        double f523 = sinim * (4.92187512 * sini2 * (-2.0 - 4.0 * cosim + 10.0 * cosisq) +
                               6.56250012 * (1.0 + 2.0 * cosim - 3.0 * cosisq));
        double f542 = 29.53125 * sinim *
                      (2.0 - 8.0 * cosim + cosisq * (-12.0 + 8.0 * cosim + 10.0 * cosisq));
        double f543 = 29.53125 * sinim *
                      (-2.0 - 8.0 * cosim + cosisq * (12.0 + 8.0 * cosim - 10.0 * cosisq));
        double xno2 = nm * nm, ainv2 = aonv * aonv;
        double temp1 = 3.0 * xno2 * ainv2;
        double temp = temp1 * root22;
        s->d2201 = temp * f220 * g201;
        s->d2211 = temp * f221 * g211;
        temp1 = temp1 * aonv;
        temp = temp1 * root32;
        s->d3210 = temp * f321 * g310;
        s->d3222 = temp * f322 * g322;
        temp1 = temp1 * aonv;
        temp = 2.0 * temp1 * root44;
        s->d4410 = temp * f441 * g410;
        s->d4422 = temp * f442 * g422;
        temp1 = temp1 * aonv;
        temp = temp1 * root52;
        s->d5220 = temp * f522 * g520;
        s->d5232 = temp * f523 * g532;
        temp = 2.0 * temp1 * root54;
        s->d5421 = temp * f542 * g521;
        s->d5433 = temp * f543 * g533;
        s->xlamo = fmod(s->mo + s->nodeo + s->nodeo - theta - theta, TWOPI);
        s->xfact = s->mdot + s->dmdt + 2.0 * (s->nodedot + s->dnodt - rptim) - s->no;
    } else { /* synchronous resonance */
        double g200 = 1.0 + emsq * (-2.5 + 0.8125 * emsq);
        double g310 = 1.0 + 2.0 * emsq;
        double g300 = 1.0 + emsq * (-6.0 + 6.60937 * emsq);
        double f220 = 0.75 * (1.0 + cosim) * (1.0 + cosim);
        double f311 = 0.9375 * sinim * sinim * (1.0 + 3.0 * cosim) - 0.75 * (1.0 + cosim);
        double f330 = 1.0 + cosim;
        f330 = 1.875 * f330 * f330 * f330;
        double del1 = 3.0 * nm * nm * aonv * aonv;
        s->del2 = 2.0 * del1 * f220 * g200 * q22;
        s->del3 = 3.0 * del1 * f330 * g300 * q33 * aonv;
        s->del1 = del1 * f311 * g310 * q31 * aonv;
        s->xlamo = fmod(s->mo + s->nodeo + s->argpo - theta, TWOPI);
        s->xfact = s->mdot + xpidot - rptim + s->dmdt + s->domdt + s->dnodt - s->no;
    }
    s->xli = s->xlamo;
    s->xni = s->no;
    s->atime = 0.0;
}

/* ---- Deep-space propagation ------------------------------------------- */

/* Secular lunar-solar drift, then the resonance: the mean longitude and
 * mean motion integrated from epoch in 720-minute Euler-Maclaurin steps
 * (resumed from the last whole step when t lies further out on the same
 * side), a Taylor step to t at the end. */
static void kagi__dspace(kagi_sat *s, double t, double *em, double *argpm, double *inclm,
                         double *mm, double *nodem, double *nm)
{
    const double fasx2 = 0.13130908, fasx4 = 2.8843198, fasx6 = 0.37448087, g22 = 5.7686396,
                 g32 = 0.95240898, g44 = 1.8014998, g52 = 1.0508330, g54 = 4.4108898,
                 rptim = 4.37526908801129966e-3, stepp = 720.0, stepn = -720.0,
                 step2 = 259200.0;
    double theta = fmod(s->gsto + t * rptim, TWOPI);
    *em += s->dedt * t;
    *inclm += s->didt * t;
    *argpm += s->domdt * t;
    *nodem += s->dnodt * t;
    *mm += s->dmdt * t;
    if (s->irez == 0) return;

    if (s->atime == 0.0 || t * s->atime <= 0.0 || fabs(t) < fabs(s->atime)) {
        s->atime = 0.0;
        s->xni = s->no;
        s->xli = s->xlamo;
    }
    double delt = t > 0.0 ? stepp : stepn, ft = 0.0;
    double xndt, xldot, xnddt;
    for (;;) {
        if (s->irez != 2) {
            xndt = s->del1 * sin(s->xli - fasx2) + s->del2 * sin(2.0 * (s->xli - fasx4)) +
                   s->del3 * sin(3.0 * (s->xli - fasx6));
            xldot = s->xni + s->xfact;
            xnddt = s->del1 * cos(s->xli - fasx2) + 2.0 * s->del2 * cos(2.0 * (s->xli - fasx4)) +
                    3.0 * s->del3 * cos(3.0 * (s->xli - fasx6));
            xnddt *= xldot;
        } else {
            double xomi = s->argpo + s->argpdot * s->atime;
            double x2omi = xomi + xomi, x2li = s->xli + s->xli;
            xndt = s->d2201 * sin(x2omi + s->xli - g22) + s->d2211 * sin(s->xli - g22) +
                   s->d3210 * sin(xomi + s->xli - g32) + s->d3222 * sin(-xomi + s->xli - g32) +
                   s->d4410 * sin(x2omi + x2li - g44) + s->d4422 * sin(x2li - g44) +
                   s->d5220 * sin(xomi + s->xli - g52) + s->d5232 * sin(-xomi + s->xli - g52) +
                   s->d5421 * sin(xomi + x2li - g54) + s->d5433 * sin(-xomi + x2li - g54);
            xldot = s->xni + s->xfact;
            xnddt = s->d2201 * cos(x2omi + s->xli - g22) + s->d2211 * cos(s->xli - g22) +
                    s->d3210 * cos(xomi + s->xli - g32) + s->d3222 * cos(-xomi + s->xli - g32) +
                    s->d5220 * cos(xomi + s->xli - g52) + s->d5232 * cos(-xomi + s->xli - g52) +
                    2.0 * (s->d4410 * cos(x2omi + x2li - g44) + s->d4422 * cos(x2li - g44) +
                           s->d5421 * cos(xomi + x2li - g54) + s->d5433 * cos(-xomi + x2li - g54));
            xnddt *= xldot;
        }
        if (fabs(t - s->atime) < stepp) {
            ft = t - s->atime;
            break;
        }
        s->xli += xldot * delt + xndt * step2;
        s->xni += xndt * delt + xnddt * step2;
        s->atime += delt;
    }
    *nm = s->xni + xndt * ft + xnddt * ft * ft * 0.5;
    double xl = s->xli + xldot * ft + xndt * ft * ft * 0.5;
    if (s->irez != 1)
        *mm = xl - 2.0 * *nodem + 2.0 * theta;
    else
        *mm = xl - *nodem - *argpm + theta;
}

/* Lunar-solar periodics added to the mean elements at t (minutes). The
 * values at epoch are not subtracted, as in the reference code. Below
 * 0.2 rad of inclination the node and perigee changes go through Lyddane's
 * nonsingular variables. */
static void kagi__dpper(const kagi_sat *s, double t, double *ep, double *inclp, double *nodep,
                        double *argpp, double *mp)
{
    const double zns = 1.19459e-5, zes = 0.01675, znl = 1.5835218e-4, zel = 0.05490;
    double zm = s->zmos + zns * t;
    double zf = zm + 2.0 * zes * sin(zm);
    double sinzf = sin(zf);
    double f2 = 0.5 * sinzf * sinzf - 0.25;
    double f3 = -0.5 * sinzf * cos(zf);
    double ses = s->se2 * f2 + s->se3 * f3;
    double sis = s->si2 * f2 + s->si3 * f3;
    double sls = s->sl2 * f2 + s->sl3 * f3 + s->sl4 * sinzf;
    double sghs = s->sgh2 * f2 + s->sgh3 * f3 + s->sgh4 * sinzf;
    double shs = s->sh2 * f2 + s->sh3 * f3;

    zm = s->zmol + znl * t;
    zf = zm + 2.0 * zel * sin(zm);
    sinzf = sin(zf);
    f2 = 0.5 * sinzf * sinzf - 0.25;
    f3 = -0.5 * sinzf * cos(zf);
    double sel = s->ee2 * f2 + s->e3 * f3;
    double sil = s->xi2 * f2 + s->xi3 * f3;
    double sll = s->xl2 * f2 + s->xl3 * f3 + s->xl4 * sinzf;
    double sghl = s->xgh2 * f2 + s->xgh3 * f3 + s->xgh4 * sinzf;
    double shll = s->xh2 * f2 + s->xh3 * f3;

    double pe = ses + sel, pinc = sis + sil, pl = sls + sll, pgh = sghs + sghl, ph = shs + shll;
    *inclp += pinc;
    *ep += pe;
    double sinip = sin(*inclp), cosip = cos(*inclp);
    if (*inclp >= 0.2) {
        ph /= sinip;
        pgh -= cosip * ph;
        *argpp += pgh;
        *nodep += ph;
        *mp += pl;
    } else {
        double sinop = sin(*nodep), cosop = cos(*nodep);
        double alfdp = sinip * sinop, betdp = sinip * cosop;
        double dalf = ph * cosop + pinc * cosip * sinop;
        double dbet = -ph * sinop + pinc * cosip * cosop;
        alfdp += dalf;
        betdp += dbet;
        *nodep = fmod(*nodep, TWOPI);
        double xls = *mp + *argpp + cosip * *nodep;
        double dls = pl + pgh - pinc * *nodep * sinip;
        xls += dls;
        double xnoh = *nodep;
        *nodep = atan2(alfdp, betdp);
        if (fabs(xnoh - *nodep) > PI) {
            if (*nodep < xnoh) *nodep += TWOPI;
            else *nodep -= TWOPI;
        }
        *mp += pl;
        *argpp = xls - *mp - cosip * *nodep;
    }
}

/* ---- Propagation -------------------------------------------------------- */

/* sin and cos of an angle known to be small (a correction of J2 order):
 * the Taylor series to d^7 is exact in double precision for |d| <= 0.05;
 * larger angles go to the library. Saves the hot path three sincos. */
static inline void kagi__sincos_small(double d, double *sd, double *cd)
{
    if (fabs(d) > 0.05) {
        *sd = sin(d);
        *cd = cos(d);
        return;
    }
    /* Reciprocals as constants: a division costs ten multiplications. */
    const double i6 = 1.0 / 6.0, i20 = 1.0 / 20.0, i42 = 1.0 / 42.0, i12 = 1.0 / 12.0,
                 i30 = 1.0 / 30.0, i56 = 1.0 / 56.0;
    double d2 = d * d;
    *sd = d * (1.0 - d2 * i6 * (1.0 - d2 * i20 * (1.0 - d2 * i42)));
    *cd = 1.0 - 0.5 * d2 * (1.0 - d2 * i12 * (1.0 - d2 * i30 * (1.0 - d2 * i56)));
}

/* fmod(x, 2 pi) for the propagation's angles: the quotient by one
 * multiplication, the remainder by a fused multiply-add, which is exact
 * whenever fmod's result is (it always is) and the quotient right; near a
 * multiple of 2 pi it may return the other end of the range, which no sine
 * or cosine downstream can tell apart. Two to four times faster than the
 * library's fmod, which weighed 13 % of a propagation a year out. */
static inline double kagi__mod2pi(double x)
{
    return fma(-trunc(x * (1.0 / TWOPI)), TWOPI, x);
}

/* (s, c) of angle a to those of a + d, d small. */
static inline void kagi__rotate(double *s, double *c, double d)
{
    double sd, cd;
    kagi__sincos_small(d, &sd, &cd);
    double s1 = *s * cd + *c * sd, c1 = *c * cd - *s * sd;
    *s = s1;
    *c = c1;
}

static kagi_sgp4_fault kagi__sgp4(kagi_sat *s, double t, double r[3], double v[3])
{
    const double temp4 = 1.5e-12, xke = s->xke, vkmpersec = RE_KM * xke / 60.0;

    /* Secular gravity and atmospheric drag. */
    double xmdf = s->mo + s->mdot * t;
    double argpdf = s->argpo + s->argpdot * t;
    double nodedf = s->nodeo + s->nodedot * t;
    double argpm = argpdf, mm = xmdf, t2 = t * t;
    double nodem = nodedf + s->nodecf * t2;
    double tempa = 1.0 - s->cc1 * t;
    double tempe = s->bstar * s->cc4 * t;
    double templ = s->t2cof * t2;
    if (!s->isimp) {
        double delomg = s->omgcof * t;
        double xmdf_r = kagi__mod2pi(xmdf); /* small arguments are faster */
        double sinmm = sin(xmdf_r), cosmm = cos(xmdf_r);
        double delmtemp = 1.0 + s->eta * cosmm;
        double delm = s->xmcof * (delmtemp * delmtemp * delmtemp - s->delmo);
        double temp = delomg + delm;
        mm = xmdf + temp;
        argpm = argpdf - temp;
        double t3 = t2 * t, t4 = t3 * t;
        tempa = tempa - s->d2 * t2 - s->d3 * t3 - s->d4 * t4;
        kagi__rotate(&sinmm, &cosmm, temp); /* sin(mm) */
        tempe = tempe + s->bstar * s->cc5 * (sinmm - s->sinmao);
        templ = templ + s->t3cof * t3 + t4 * (s->t4cof + t * s->t5cof);
    }
    double nm = s->no, em = s->ecco, inclm = s->inclo;
    if (s->deep) kagi__dspace(s, t, &em, &argpm, &inclm, &mm, &nodem, &nm);
    if (nm <= 0.0) return KAGI_SGP4_MEAN_MOTION;
    /* Near Earth nm is the epoch's no, so the power is the epoch's too. */
    double am = (s->deep ? pow(xke / nm, X2O3) : s->ao) * tempa * tempa;
    nm = xke / (am * sqrt(am));
    em -= tempe;
    if (em >= 1.0 || em < -0.001) return KAGI_SGP4_MEAN_ECC;
    if (em < 1.0e-6) em = 1.0e-6;
    mm += s->no * templ;
    double xlm = mm + argpm + nodem;
    nodem = kagi__mod2pi(nodem);
    argpm = kagi__mod2pi(argpm);
    xlm = kagi__mod2pi(xlm);
    mm = kagi__mod2pi(xlm - argpm - nodem);

    /* Lunar-solar periodics. */
    double ep = em, xincp = inclm, argpp = argpm, nodep = nodem, mp = mm;
    double sinip = sin(inclm), cosip = cos(inclm);
    double aycof = s->aycof, xlcof = s->xlcof, con41 = s->con41, x1mth2 = s->x1mth2,
           x7thm1 = s->x7thm1;
    if (s->deep) {
        kagi__dpper(s, t, &ep, &xincp, &nodep, &argpp, &mp);
        if (xincp < 0.0) {
            xincp = -xincp;
            nodep += PI;
            argpp -= PI;
        }
        if (ep < 0.0 || ep > 1.0) return KAGI_SGP4_PERT_ECC;
        sinip = sin(xincp);
        cosip = cos(xincp);
        aycof = -0.5 * J3OJ2 * sinip;
        xlcof = -0.25 * J3OJ2 * sinip * (3.0 + 5.0 * cosip) /
                (fabs(cosip + 1.0) > 1.5e-12 ? 1.0 + cosip : temp4);
    }

    /* Long-period periodics. */
    double axnl = ep * cos(argpp);
    double temp = 1.0 / (am * (1.0 - ep * ep));
    double aynl = ep * sin(argpp) + temp * aycof;
    double xl = mp + argpp + nodep + temp * xlcof * axnl;

    /* Kepler's equation in the Lyddane variables (Newton steps, each at
     * most 0.95 rad). */
    double u = kagi__mod2pi(xl - nodep);
    double eo1 = u, tem5 = 9999.9, sineo1 = sin(u), coseo1 = cos(u);
    for (int k = 1; fabs(tem5) >= 1.0e-12 && k <= 10; k++) {
        if (k > 1) kagi__rotate(&sineo1, &coseo1, tem5); /* to the new eo1 */
        tem5 = 1.0 - coseo1 * axnl - sineo1 * aynl;
        tem5 = (u - aynl * coseo1 + axnl * sineo1 - eo1) / tem5;
        if (fabs(tem5) >= 0.95) tem5 = tem5 > 0.0 ? 0.95 : -0.95;
        eo1 += tem5;
    }

    /* Short-period periodics. */
    double ecose = axnl * coseo1 + aynl * sineo1;
    double esine = axnl * sineo1 - aynl * coseo1;
    double el2 = axnl * axnl + aynl * aynl;
    double pl = am * (1.0 - el2);
    if (pl < 0.0) return KAGI_SGP4_SEMILATUS;
    double rl = am * (1.0 - ecose);
    double rdotl = sqrt(am) * esine / rl;
    double rvdotl = sqrt(pl) / rl;
    double betal = sqrt(1.0 - el2);
    temp = esine / (1.0 + betal);
    double sinu = am / rl * (sineo1 - aynl - axnl * temp);
    double cosu = am / rl * (coseo1 - axnl + aynl * temp);
    double sin2u = (cosu + cosu) * sinu;
    double cos2u = 1.0 - 2.0 * sinu * sinu;
    temp = 1.0 / pl;
    double temp1 = 0.5 * J2 * temp;
    double temp2 = temp1 * temp;
    if (s->deep) {
        double cosisq = cosip * cosip;
        con41 = 3.0 * cosisq - 1.0;
        x1mth2 = 1.0 - cosisq;
        x7thm1 = 7.0 * cosisq - 1.0;
    }
    double mrt = rl * (1.0 - 1.5 * temp2 * betal * con41) + 0.5 * temp1 * x1mth2 * cos2u;
    double dsu = -0.25 * temp2 * x7thm1 * sin2u;
    double xnode = nodep + 1.5 * temp2 * cosip * sin2u;
    double dinc = 1.5 * temp2 * cosip * sinip * cos2u;
    double mvt = rdotl - nm * temp1 * x1mth2 * sin2u / xke;
    double rvdot = rvdotl + nm * temp1 * (x1mth2 * cos2u + 1.5 * con41) / xke;

    /* Orientation: unit vectors along the radius (u) and across it (w). */
    /* The argument of latitude and the inclination move by small
     * corrections from angles whose sin and cos are known already. */
    double un = 1.0 / sqrt(sinu * sinu + cosu * cosu);
    double sinsu = sinu * un, cossu = cosu * un, sini = sinip, cosi = cosip;
    kagi__rotate(&sinsu, &cossu, dsu);
    kagi__rotate(&sini, &cosi, dinc);
    double snod = sin(xnode), cnod = cos(xnode);
    double xmx = -snod * cosi, xmy = cnod * cosi;
    double ux = xmx * sinsu + cnod * cossu, uy = xmy * sinsu + snod * cossu, uz = sini * sinsu;
    double wx = xmx * cossu - cnod * sinsu, wy = xmy * cossu - snod * sinsu, wz = sini * cossu;
    r[0] = mrt * ux * RE_KM;
    r[1] = mrt * uy * RE_KM;
    r[2] = mrt * uz * RE_KM;
    v[0] = (mvt * ux + rvdot * wx) * vkmpersec;
    v[1] = (mvt * uy + rvdot * wy) * vkmpersec;
    v[2] = (mvt * uz + rvdot * wz) * vkmpersec;
    if (mrt < 1.0) return KAGI_SGP4_DECAYED;
    return KAGI_SGP4_OK;
}

/* ---- Initialisation ----------------------------------------------------- */

/* GMST (IAU-82) of a date counted in days since 1950 January 0.0. */
static double kagi__gstime1950(double d1950)
{
    double tut1 = (d1950 + 2433281.5 - 2451545.0) / 36525.0;
    double temp = -6.2e-6 * tut1 * tut1 * tut1 + 0.093104 * tut1 * tut1 +
                  (876600.0 * 3600 + 8640184.812866) * tut1 + 67310.54841;
    temp = fmod(temp * KAGI__DEG / 240.0, TWOPI);
    return temp < 0.0 ? temp + TWOPI : temp;
}

static const char *kagi__fault_text(kagi_sgp4_fault f)
{
    switch (f) {
    case KAGI_SGP4_MEAN_ECC: return "mean eccentricity left [-0.001, 1) (drag)";
    case KAGI_SGP4_MEAN_MOTION: return "mean motion is no longer positive";
    case KAGI_SGP4_PERT_ECC: return "perturbed eccentricity left [0, 1]";
    case KAGI_SGP4_SEMILATUS: return "semi-latus rectum is negative";
    case KAGI_SGP4_DECAYED: return "decayed: orbit radius below the Earth's";
    default: return "no fault";
    }
}

static int kagi__init(kagi_sat *s)
{
    const kagi_tle *tl = &s->tle;
    const double xpdotp = 1440.0 / TWOPI, temp4 = 1.5e-12;
    double xke = s->xke = kagi__xke();
    s->ecco = tl->ecc;
    s->inclo = tl->incl_deg * KAGI__DEG;
    s->nodeo = tl->raan_deg * KAGI__DEG;
    s->argpo = tl->argp_deg * KAGI__DEG;
    s->mo = tl->mean_anomaly_deg * KAGI__DEG;
    s->no_kozai = tl->mean_motion / xpdotp;
    s->bstar = tl->bstar;
    s->epoch1950 = kagi__days_since_1950(tl->epoch_year, tl->epoch_day);

    /* Un-Kozai the mean motion (Brouwer's from the Kozai one). */
    double eccsq = s->ecco * s->ecco, omeosq = 1.0 - eccsq, rteosq = sqrt(omeosq);
    double cosio = cos(s->inclo), cosio2 = cosio * cosio;
    double ak = pow(xke / s->no_kozai, X2O3);
    double d1 = 0.75 * J2 * (3.0 * cosio2 - 1.0) / (rteosq * omeosq);
    double del = d1 / (ak * ak);
    double adel = ak * (1.0 - del * del - del * (1.0 / 3.0 + 134.0 * del * del / 81.0));
    del = d1 / (adel * adel);
    s->no = s->no_kozai / (1.0 + del);
    double ao = s->ao = pow(xke / s->no, X2O3);
    double sinio = sin(s->inclo);
    double po = ao * omeosq;
    double con42 = 1.0 - 5.0 * cosio2;
    s->con41 = -con42 - cosio2 - cosio2;
    double posq = po * po;
    double rp = ao * (1.0 - s->ecco);
    s->gsto = kagi__gstime1950(s->epoch1950);
    s->a = pow(s->no / xke, -X2O3);

    /* Drag: the atmosphere's density parameter s and (q0 - s)^4, moved
     * down for perigees under 156 km. */
    double ss = 78.0 / RE_KM + 1.0, qzms2t = pow((120.0 - 78.0) / RE_KM, 4);
    s->isimp = rp < 220.0 / RE_KM + 1.0;
    double sfour = ss, qzms24 = qzms2t, perige = (rp - 1.0) * RE_KM;
    if (perige < 156.0) {
        sfour = perige - 78.0;
        if (perige < 98.0) sfour = 20.0;
        qzms24 = pow((120.0 - sfour) / RE_KM, 4);
        sfour = sfour / RE_KM + 1.0;
    }
    double pinvsq = 1.0 / posq;
    double tsi = 1.0 / (ao - sfour);
    s->eta = ao * s->ecco * tsi;
    double etasq = s->eta * s->eta, eeta = s->ecco * s->eta;
    double psisq = fabs(1.0 - etasq);
    double coef = qzms24 * pow(tsi, 4.0);
    double coef1 = coef / pow(psisq, 3.5);
    double cc2 = coef1 * s->no *
                 (ao * (1.0 + 1.5 * etasq + eeta * (4.0 + etasq)) +
                  0.375 * J2 * tsi / psisq * s->con41 * (8.0 + 3.0 * etasq * (8.0 + etasq)));
    s->cc1 = s->bstar * cc2;
    double cc3 = 0.0;
    if (s->ecco > 1.0e-4) cc3 = -2.0 * coef * tsi * J3OJ2 * s->no * sinio / s->ecco;
    s->x1mth2 = 1.0 - cosio2;
    s->cc4 = 2.0 * s->no * coef1 * ao * omeosq *
             (s->eta * (2.0 + 0.5 * etasq) + s->ecco * (0.5 + 2.0 * etasq) -
              J2 * tsi / (ao * psisq) *
                  (-3.0 * s->con41 * (1.0 - 2.0 * eeta + etasq * (1.5 - 0.5 * eeta)) +
                   0.75 * s->x1mth2 * (2.0 * etasq - eeta * (1.0 + etasq)) * cos(2.0 * s->argpo)));
    s->cc5 = 2.0 * coef1 * ao * omeosq * (1.0 + 2.75 * (etasq + eeta) + eeta * etasq);

    /* Secular rates from J2 and J4. */
    double cosio4 = cosio2 * cosio2;
    double temp1 = 1.5 * J2 * pinvsq * s->no;
    double temp2 = 0.5 * temp1 * J2 * pinvsq;
    double temp3 = -0.46875 * J4 * pinvsq * pinvsq * s->no;
    s->mdot = s->no + 0.5 * temp1 * rteosq * s->con41 +
              0.0625 * temp2 * rteosq * (13.0 - 78.0 * cosio2 + 137.0 * cosio4);
    s->argpdot = -0.5 * temp1 * con42 + 0.0625 * temp2 * (7.0 - 114.0 * cosio2 + 395.0 * cosio4) +
                 temp3 * (3.0 - 36.0 * cosio2 + 49.0 * cosio4);
    double xhdot1 = -temp1 * cosio;
    s->nodedot = xhdot1 + (0.5 * temp2 * (4.0 - 19.0 * cosio2) + 2.0 * temp3 * (3.0 - 7.0 * cosio2)) *
                              cosio;
    double xpidot = s->argpdot + s->nodedot;
    s->omgcof = s->bstar * cc3 * cos(s->argpo);
    s->xmcof = 0.0;
    if (s->ecco > 1.0e-4) s->xmcof = -X2O3 * coef * s->bstar / eeta;
    s->nodecf = 3.5 * omeosq * xhdot1 * s->cc1;
    s->t2cof = 1.5 * s->cc1;
    s->xlcof = -0.25 * J3OJ2 * sinio * (3.0 + 5.0 * cosio) /
               (fabs(cosio + 1.0) > 1.5e-12 ? 1.0 + cosio : temp4);
    s->aycof = -0.5 * J3OJ2 * sinio;
    double delmotemp = 1.0 + s->eta * cos(s->mo);
    s->delmo = delmotemp * delmotemp * delmotemp;
    s->sinmao = sin(s->mo);
    s->x7thm1 = 7.0 * cosio2 - 1.0;

    /* Deep space: periods of 225 minutes and more. */
    if (TWOPI / s->no >= 225.0) {
        s->deep = 1;
        s->isimp = 1;
        kagi__dscom d;
        kagi__dscom_run(s, &d);
        kagi__dsinit(s, &d, xpidot);
    }

    if (!s->isimp) {
        double cc1sq = s->cc1 * s->cc1;
        s->d2 = 4.0 * ao * tsi * cc1sq;
        double temp = s->d2 * tsi * s->cc1 / 3.0;
        s->d3 = (17.0 * ao + sfour) * temp;
        s->d4 = 0.5 * temp * ao * tsi * (221.0 * ao + 31.0 * sfour) * s->cc1;
        s->t3cof = s->d2 + 2.0 * cc1sq;
        s->t4cof = 0.25 * (3.0 * s->d3 + s->cc1 * (12.0 * s->d2 + 10.0 * cc1sq));
        s->t5cof = 0.2 * (3.0 * s->d4 + 12.0 * s->cc1 * s->d3 + 6.0 * s->d2 * s->d2 +
                          15.0 * cc1sq * (2.0 * s->d2 + cc1sq));
    }

    double r[3], v[3];
    kagi_sgp4_fault f = kagi__sgp4(s, 0.0, r, v);
    s->fault = f;
    if (f != KAGI_SGP4_OK || !isfinite(r[0]) || !isfinite(v[0]))
        return kagi__err(KAGI_ERR_ARG, "satellite %s: SGP4 fails at the epoch: %s", tl->satnum,
                         f ? kagi__fault_text(f) : "result is not finite");
    return KAGI_OK;
}

int kagi_sat_new(const kagi_tle *tle, kagi_sat **out)
{
    *out = NULL;
    KAGI__FAIL_IF(!(tle->ecc >= 0.0 && tle->ecc < 1.0), KAGI_ERR_ARG,
                  "satellite %s: eccentricity %g outside [0, 1)", tle->satnum, tle->ecc);
    KAGI__FAIL_IF(!(tle->mean_motion > 0.0 && tle->mean_motion < 1e4), KAGI_ERR_ARG,
                  "satellite %s: mean motion %g rev/day is not positive and finite", tle->satnum,
                  tle->mean_motion);
    KAGI__FAIL_IF(!(tle->incl_deg >= 0.0 && tle->incl_deg <= 180.0), KAGI_ERR_ARG,
                  "satellite %s: inclination %g deg outside [0, 180]", tle->satnum, tle->incl_deg);
    KAGI__FAIL_IF(!isfinite(tle->raan_deg) || !isfinite(tle->argp_deg) ||
                      !isfinite(tle->mean_anomaly_deg) || !isfinite(tle->bstar) ||
                      !isfinite(tle->epoch_day) || tle->epoch_year < 1900 || tle->epoch_year > 2100,
                  KAGI_ERR_ARG, "satellite %s: elements or epoch not finite or out of range",
                  tle->satnum);
    kagi_sat *s = calloc(1, sizeof *s);
    if (!s) return kagi__err(KAGI_ERR_NOMEM, "cannot allocate a satellite");
    s->tle = *tle;
    int rc = kagi__init(s);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return KAGI_OK;
}

void kagi_sat_free(kagi_sat *s) { free(s); }

const kagi_tle *kagi_sat_tle(const kagi_sat *s) { return &s->tle; }

double kagi_sat_period_min(const kagi_sat *s) { return TWOPI / s->no; }

int kagi_sat_deep_space(const kagi_sat *s) { return s->deep; }

kagi_sgp4_fault kagi_sat_fault(const kagi_sat *s) { return s->fault; }

int kagi_sat_propagate(kagi_sat *s, double minutes, double r_km[3], double v_km_s[3])
{
    double v[3];
    if (!isfinite(minutes)) {
        s->fault = KAGI_SGP4_OK;
        return kagi__err(KAGI_ERR_ARG, "satellite %s: time is not finite", s->tle.satnum);
    }
    kagi_sgp4_fault f = kagi__sgp4(s, minutes, r_km, v);
    s->fault = f;
    if (f != KAGI_SGP4_OK) {
        char when[KAGI_UTC_STRLEN];
        if (kagi_utc_format(s->tle.epoch + minutes * 60.0, 0, when, sizeof when)) when[0] = '\0';
        return kagi__err(KAGI_ERR_ARG, "satellite %s at %s (%+.3f min from epoch): %s",
                         s->tle.satnum, when[0] ? when : "?", minutes, kagi__fault_text(f));
    }
    if (v_km_s) memcpy(v_km_s, v, sizeof v);
    return KAGI_OK;
}

int kagi_sat_at(kagi_sat *s, kagi_utc t, double r_km[3], double v_km_s[3])
{
    return kagi_sat_propagate(s, (t - s->tle.epoch) / 60.0, r_km, v_km_s);
}

void kagi__sat_bounds(const kagi_sat *s, double *rmin_km, double *rmax_km, double *rate_rad_s)
{
    /* Mean semi-major axis from the un-Kozai'd motion; short-period terms
     * and drag move the radius by well under 5 % in a year for any orbit
     * SGP4 still propagates, so 10 % margins keep the bounds safe. */
    double a = s->a * RE_KM, e = s->ecco;
    double rp = a * (1.0 - e), ra = a * (1.0 + e);
    *rmin_km = 0.9 * rp;
    *rmax_km = 1.1 * ra + 50.0;
    /* Fastest angular rate: at perigee, h / rp^2, with h = sqrt(mu p). */
    double h = sqrt(MU_KM3_S2 * a * (1.0 - e * e));
    *rate_rad_s = 1.25 * h / (*rmin_km * *rmin_km);
}
