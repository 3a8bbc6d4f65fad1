#!/usr/bin/env python3
"""Independent pass oracle for tests/test_orbit.c.

Propagates with python3-sgp4 (Debian's package: Vallado's SGP4, another
implementation than kagi's), turns TEME into Earth-fixed with its own
IAU-82 sidereal time, puts WGS-84 stations on the ellipsoid with its own
code, and scans the elevation at every whole second of the window: no
skipping, no root finding. A crossing of the minimum elevation is placed by
linear interpolation between the two seconds around it, the culmination by
a parabola through the highest second and its neighbours.

usage: orbit_passes.py TLE_FILE T0_UNIX SECONDS MIN_EL_DEG LAT LON ALT_KM [LAT LON ALT_KM ...]
prints one line per pass: station aos tca los max_el (POSIX seconds, degrees)
"""
import math
import sys

try:
    from sgp4.api import Satrec, WGS72
except ImportError:
    sys.stderr.write("orbit_passes.py: python3-sgp4 is missing (scripts/deps.sh installs it)\n")
    sys.exit(3)

A, F = 6378.137, 1 / 298.257223563
E2 = F * (2 - F)


def station(lat, lon, alt):
    p, l = math.radians(lat), math.radians(lon)
    n = A / math.sqrt(1 - E2 * math.sin(p) ** 2)
    pos = ((n + alt) * math.cos(p) * math.cos(l), (n + alt) * math.cos(p) * math.sin(l),
           (n * (1 - E2) + alt) * math.sin(p))
    east = (-math.sin(l), math.cos(l), 0.0)
    north = (-math.sin(p) * math.cos(l), -math.sin(p) * math.sin(l), math.cos(p))
    up = (math.cos(p) * math.cos(l), math.cos(p) * math.sin(l), math.sin(p))
    return pos, east, north, up


def gmst(unix):
    t = (unix - 946728000.0) / (86400.0 * 36525.0)
    s = 67310.54841 + (876600.0 * 3600 + 8640184.812866) * t + 0.093104 * t * t - 6.2e-6 * t ** 3
    return math.radians(s / 240.0) % (2 * math.pi)


def main():
    lines = [l.rstrip() for l in open(sys.argv[1]) if l.strip()]
    l1 = next(l for l in lines if l.startswith("1 "))
    l2 = next(l for l in lines if l.startswith("2 "))
    sat = Satrec.twoline2rv(l1, l2, WGS72)
    t0, seconds, min_el = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    args = [float(x) for x in sys.argv[5:]]
    stations = [station(*args[i:i + 3]) for i in range(0, len(args), 3)]
    els = [[] for _ in stations]
    for k in range(seconds + 1):
        t = t0 + k
        day = math.floor(t / 86400.0)
        err, r, _ = sat.sgp4(2440587.5 + day, (t - day * 86400.0) / 86400.0)
        if err:
            sys.stderr.write("orbit_passes.py: sgp4 error %d at %+d s\n" % (err, k))
            sys.exit(4)
        g = gmst(t)
        x = math.cos(g) * r[0] + math.sin(g) * r[1]
        y = -math.sin(g) * r[0] + math.cos(g) * r[1]
        for i, (pos, east, north, up) in enumerate(stations):
            d = (x - pos[0], y - pos[1], r[2] - pos[2])
            e = sum(a * b for a, b in zip(d, east))
            n = sum(a * b for a, b in zip(d, north))
            u = sum(a * b for a, b in zip(d, up))
            els[i].append(math.degrees(math.atan2(u, math.hypot(e, n))))
    for i, el in enumerate(els):
        k = 1
        while k <= seconds:
            if el[k - 1] < min_el <= el[k]:
                aos = t0 + k - 1 + (min_el - el[k - 1]) / (el[k] - el[k - 1])
                j = k
                while j <= seconds and el[j] >= min_el:
                    j += 1
                if j > seconds:
                    break  # pass cut by the window's end: not compared
                los = t0 + j - 1 + (el[j - 1] - min_el) / (el[j - 1] - el[j])
                m = max(range(k, j), key=lambda q: el[q])
                a, b, c = el[m - 1], el[m], el[m + 1]
                off = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else 0.0
                top = b - 0.25 * (a - c) * off
                print("%d %.3f %.3f %.3f %.4f" % (i, aos, t0 + m + off, los, top))
                k = j
            k += 1


main()
