#!/usr/bin/env python3
"""Make web/coast.js, the dashboard's bundled coastline, from Natural Earth's
land polygons as packaged in the npm package world-atlas (TopoJSON, ISC;
the Natural Earth data itself is in the public domain).

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    scripts/gen-coast.py package/land-50m.json > web/coast.js

Each ring is simplified (Douglas-Peucker, TOL degrees), rounded to 0.01
degree, and rings smaller than MIN_AREA square degrees are dropped, so the
file stays small (web/README.md)."""
import json
import sys

TOL = 0.1
MIN_AREA = 0.02


def decode(topo):
    sx, sy = topo["transform"]["scale"]
    tx, ty = topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x += dx
            y += dy
            pts.append((x * sx + tx, y * sy + ty))
        arcs.append(pts)
    return arcs


def ring(arcs, idx):
    out = []
    for i in idx:
        pts = arcs[i] if i >= 0 else arcs[~i][::-1]
        out.extend(pts if not out else pts[1:])
    return out


def dp(pts, tol):
    if len(pts) < 3:
        return pts
    keep = [False] * len(pts)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        a, b = stack.pop()
        ax, ay = pts[a]
        bx, by = pts[b]
        dx, dy = bx - ax, by - ay
        n2 = dx * dx + dy * dy
        best, bi = -1.0, -1
        for i in range(a + 1, b):
            px, py = pts[i]
            if n2 == 0:
                d = (px - ax) ** 2 + (py - ay) ** 2
            else:
                t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / n2))
                d = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2
            if d > best:
                best, bi = d, i
        if bi >= 0 and best > tol * tol:
            keep[bi] = True
            stack.append((a, bi))
            stack.append((bi, b))
    return [p for p, k in zip(pts, keep) if k]


def area(pts):
    s = 0.0
    for i in range(len(pts)):
        x1, y1 = pts[i]
        x2, y2 = pts[(i + 1) % len(pts)]
        s += x1 * y2 - x2 * y1
    return abs(s) / 2


def main():
    topo = json.load(open(sys.argv[1]))
    arcs = decode(topo)
    rings = []
    for g in topo["objects"]["land"]["geometries"]:
        polys = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
        for poly in polys:
            for r in poly:
                pts = ring(arcs, r)
                if area(pts) < MIN_AREA:
                    continue
                pts = dp(pts, TOL)
                if len(pts) < 4:
                    continue
                flat = []
                for x, y in pts:
                    flat += [round(x, 2), round(y, 2)]
                rings.append(flat)
    out = sys.stdout
    out.write("/* Land outlines for the kagi dashboard map: Natural Earth 1:50m land\n"
              " * (public domain, naturalearthdata.com) via the npm package world-atlas\n"
              " * 2.0.2 (ISC), simplified by scripts/gen-coast.py (tolerance %g deg).\n"
              " * Each ring is [lon0, lat0, lon1, lat1, ...], degrees. */\n" % TOL)
    out.write("window.KAGI_COAST = [\n")
    out.write(",\n".join(json.dumps(r, separators=(",", ":")) for r in rings))
    out.write("\n];\n")


if __name__ == "__main__":
    main()
