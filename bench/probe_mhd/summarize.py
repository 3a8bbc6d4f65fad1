#!/usr/bin/env python3
"""Summarize run_probe.sh results: summarize.py OUTDIR/results.txt [...]
One markdown row per run: requests/s, p50, p99, server and load-tool CPU
per request, and the CPU other processes took meanwhile (% of one core)."""
import re
import sys

rows = []
for path in sys.argv[1:]:
    name = None
    for line in open(path):
        m = re.match(r'=== (.*?) run (\d+): .* \[(\d\d:\d\d:\d\d)\]', line)
        if m:
            name, run, at = m.group(1), m.group(2), m.group(3)
            cur = {'name': name, 'run': run, 'at': at}
            rows.append(cur)
            continue
        if name is None:
            continue
        m = re.search(r'RESULT rps=(\d+) p50=([\d.]+) p99=([\d.]+) srv_us=([\d.]+) cli_us=([\d.]+) others_pct=(\d+)', line)
        if m:
            cur.update(rps=m.group(1), p50=m.group(2), p99=m.group(3), srv=m.group(4), cli=m.group(5), oth=m.group(6))
        m = re.search(r'= (\d+) requests/s', line)
        if m:
            cur['rps'] = m.group(1)
        m = re.search(r'latency p50 ([\d.]+) ms, p90 [\d.]+ ms, p99 ([\d.]+) ms', line)
        if m and 'p50' not in cur:
            cur.update(p50=m.group(1), p99=m.group(2))
        m = re.search(r'CPU per request: KME ([\d.]+) us, load tool ([\d.]+) us; other processes used (\d+)%', line)
        if m:
            cur.update(srv=m.group(1), cli=m.group(2), oth=m.group(3))
        m = re.search(r'(\d+) operations in (\d+) (?:transactions|commits) \(([\d.]+) each\)', line)
        if m:
            cur['batch'] = m.group(3)
print('| configuration | run | requests/s | p50 ms | p99 ms | server CPU µs/req | load tool µs/req | others, % of a core | ops/commit |')
print('|---|---|---|---|---|---|---|---|---|')
for r in rows:
    print('| %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s |' % (
        r['name'], r['run'], r['at'], r.get('rps', '?'), r.get('p50', '?'), r.get('p99', '?'),
        r.get('srv', '?'), r.get('cli', '?'), r.get('oth', '?'), r.get('batch', '')))
