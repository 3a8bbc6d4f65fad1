# Command-line tests of kagi sim. Oracles: the rate kagi keyrate prints for
# the same link parameters, a fixed-rate link's key counted by hand, the
# accounting identities recomputed in python3 from metrics.json and the
# CSV files, byte equality of metrics.json for a repeated seed, and exit
# codes and messages (file, line, key) for broken scenarios that leave no
# output behind.
. "$(dirname "$0")/cli_common.sh"

pyjson() { python3 -c "import json,csv,sys; d=json.load(open('$1')); $2"; }

check "help lists sim" bash -c "'$kagi' help | grep -q '^  sim '"
check "--help shows the SCENARIO word" bash -c "'$kagi' sim --help | grep -q 'kagi sim SCENARIO'"

"$kagi" sim examples/tokyo-qkd.yaml --until 1d --seed 3 --out "$T/a" >"$T/out" 2>"$T/err"
rc=$?
check "tokyo example runs for a day (exit 0)" test "$rc" -eq 0
check "no progress bar when stderr is not a terminal" test ! -s "$T/err"
check "summary names every demand and the invariants" bash -c "grep -q otp-video '$T/out' && grep -q split-keys '$T/out' && grep -q 'invariants hold' '$T/out'"
check "five outputs, no temporary files" bash -c "cd '$T/a' && test -s metrics.json -a -s links.csv -a -s demands.csv -a -s passes.csv -a -s report.html && [ \$(ls -A | wc -l) -eq 5 ]"
check "metrics: requests = served + blocked + timed out + waiting" pyjson "$T/a/metrics.json" "
t = d['totals']
assert t['requests'] == t['served'] + t['blocked'] + t['timed_out'] + t['waiting'], t
for m in d['demands']:
    assert m['requests'] == m['served'] + m['blocked'] + m['timed_out'] + m['waiting'], m
assert d['simulated_s'] == 86400 and d['seed'] == 3"
check "metrics: per link pool = generated - discarded - consumed, within capacity" pyjson "$T/a/metrics.json" "
for l in d['links']:
    assert l['pool_bits'] == l['generated_bits'] - l['discarded_bits'] - l['consumed_bits'], l
    assert 0 <= l['pool_bits'] <= l['pool_capacity_bits'], l
    assert l['consumed_bits'] == l['relay_payload_bits'] + 256 * l['relay_messages'] + l['direct_bits'], l
assert sum(l['consumed_bits'] for l in d['links']) == sum(m['drawn_bits'] for m in d['demands'])"
check "fixed-rate link: 304 kbit/s in 1 s blocks for a day" pyjson "$T/a/metrics.json" "
l = [x for x in d['links'] if x['name'] == 'toshiba'][0]
assert l['generated_bits'] == 304000 * 86400, l"
"$kagi" keyrate --distance 45 --fiber-loss 0.32 --decoys 2 --finite 1e7 --json >"$T/kr.json" 2>>"$T/err"
check "model link rate equals kagi keyrate's for the same parameters" pyjson "$T/a/metrics.json" "
l = [x for x in d['links'] if x['name'] == 'nec'][0]
k = json.load(open('$T/kr.json'))[0]['key_rate_bps']
assert abs(l['rate_bps'] - k) <= 1e-9 * k, (l['rate_bps'], k)
# whole blocks: generated is a multiple of the block, and within one block of rate x time
assert l['generated_bits'] % l['block_bits'] == 0
assert 0 <= k * 86400 - l['generated_bits'] < l['block_bits'], (k * 86400, l['generated_bits'])"
check "links.csv: one row per sample and link, counters never fall" python3 -c "
import csv
rows = list(csv.DictReader(open('$T/a/links.csv')))
links = {r['link'] for r in rows}
assert len(links) == 6 and len(rows) % 6 == 0 and len(rows) // 6 == 145, len(rows)
last = {}
for r in rows:
    g, c = int(r['generated_bits']), int(r['consumed_bits'])
    pg, pc = last.get(r['link'], (0, 0))
    assert g >= pg and c >= pc and c <= g, r
    last[r['link']] = (g, c)"
check "report.html: inline SVG map and charts, tables" bash -c "grep -q '<svg' '$T/a/report.html' && grep -q 'Network map' '$T/a/report.html' && grep -q 'Key requests, all demands' '$T/a/report.html' && ! grep -q '<?xml' '$T/a/report.html' && grep -q '<td>otp-video</td>' '$T/a/report.html'"

"$kagi" sim examples/tokyo-qkd.yaml --until 1d --seed 3 --out "$T/b" >/dev/null 2>&1
"$kagi" sim examples/tokyo-qkd.yaml --until 1d --seed 4 --out "$T/c" >/dev/null 2>&1
check "same seed: identical metrics.json" cmp -s "$T/a/metrics.json" "$T/b/metrics.json"
check "another seed: different arrivals" bash -c "! cmp -s '$T/a/metrics.json' '$T/c/metrics.json'"

"$kagi" sim examples/japan-backbone.yaml --until 2d12h --out "$T/bb" >"$T/out" 2>&1
check "backbone: a cut with a second route reroutes, the split demand is blocked" pyjson "$T/bb/metrics.json" "
m = {x['name']: x for x in d['demands']}
L = {x['name']: x for x in d['links']}
assert m['tokyo-osaka']['blocked'] + m['tokyo-osaka']['timed_out'] == 0, m['tokyo-osaka']
assert L['Maibara-Otsu']['state'] == 'cut'
lk = {}
for r in csv.DictReader(open('$T/bb/links.csv')):
    lk[(r['link'], float(r['time_s']))] = int(r['consumed_bits'])
# from the cut on, nothing crosses Maibara-Otsu and Tokyo-Osaka's 50 kbit/s
# (plus MAC keys) goes over Tsu-Nara instead; the split demand is blocked
assert lk[('Maibara-Otsu', 216000)] == lk[('Maibara-Otsu', 172800)]
assert lk[('Tsu-Nara', 216000)] - lk[('Tsu-Nara', 172800)] >= 50000 * 43200 * 0.99
# split keys: 10 kbit/s in 4096-bit keys is 1e4/4096 a second, all blocked
# from the cut at 2d (before it, only while the first blocks were on their way)
rows = [r for r in csv.DictReader(open('$T/bb/demands.csv')) if r['demand'] == 'nagoya-osaka-split']
b = {float(r['time_s']): int(r['blocked']) for r in rows}
# (the request at exactly 2d comes after the cut: events at one instant run
# scenario events first)
assert abs(b[216000] - b[171000] - (43200 * 1e4 / 4096 + 1)) <= 1, (b[171000], b[216000])
assert b[171000] == b[3600], b[3600]"

# The intercontinental example, two days: Tokyo-Vienna keys only via the
# satellite, and only from the later of the two stations' first passes
# with key (from passes.csv); pass counts agree between the files.
"$kagi" sim examples/intercontinental.yaml --until 2d --out "$T/ic" >"$T/out" 2>"$T/err"
rc=$?
check "intercontinental example runs for two days (exit 0)" test "$rc" -eq 0
check "summary lists the satellite links' passes" bash -c "grep -q '^Micius-Koganei-OGS .* 2016-12-19T15:15:05Z' '$T/out' && grep -q 'passes, .* at night' '$T/out' && grep -q passes.csv '$T/out'"
check "tokyo-vienna served only after both stations' first passes with key" python3 -c "
import csv, json
d = json.load(open('$T/ic/metrics.json'))
m = {x['name']: x for x in d['demands']}['tokyo-vienna']
assert m['served'] > 100 and m['hop_messages'] == m['served'] * 8, m
ps = list(csv.DictReader(open('$T/ic/passes.csv')))
assert len(ps) == d['totals']['passes'] == sum(s['passes'] for s in d['satellites'])
assert sum(int(p['used']) for p in ps) == d['totals']['passes_used']
first = {}
for p in ps:
    if int(p['key_bits']) >= 512:
        first[p['station']] = min(first.get(p['station'], 1e99), float(p['los_s']))
T = max(first.values())
assert len(first) == 2 and abs(m['wait_max_s'] - T) < 1e-3, (first, m['wait_max_s'])
for r in csv.DictReader(open('$T/ic/demands.csv')):
    if r['demand'] == 'tokyo-vienna':
        t, served = float(r['time_s']), int(r['served'])
        assert (served == 0) == (t < T), (t, served, T)
# night only: every used pass at night; key from a pass only at its LOS
for p in ps:
    assert p['used'] == '0' or p['light'] == 'night', p
L = {x['name']: x for x in d['links']}
for name in ('Micius-Koganei-OGS', 'Micius-Graz-OGS'):
    l = L[name]
    assert l['generated_bits'] <= l['pass_key_bits'] and l['consumed_bits'] == 512 * m['served'], l"
check "report draws the ground track, the satellite pools and lists the passes" bash -c "grep -q 'ground track' '$T/ic/report.html' && grep -q 'Key pools of the satellite links' '$T/ic/report.html' && grep -q '<h2>Satellite passes</h2>' '$T/ic/report.html'"

# Broken scenarios: exit 2, file:line and key named, nothing written.
cat >"$T/typo.yaml" <<'EOF'
duration: 1d
nodes:
  - {name: Tokyo, lat: 35.68, lon: 139.77}
  - {name: Osaka, lat: 34.73, lon: 135.50}
links:
  - ends: [Tokyo, Osaka]
    fibre_loss: 0.2
EOF
expect_fail "typo'd key: exit 2 naming file, line and key" 2 "typo.yaml:7:5: links\[0\]\.fibre_loss: unknown key \(did you mean fiber_loss\?\)" "$T/o1" -- "$kagi" sim "$T/typo.yaml" --out "$T/o1"
sed 's/fibre_loss: 0.2/length_km: 400/; s/ends: \[Tokyo, Osaka\]/ends: [Tokyo, Nagoya]/' "$T/typo.yaml" >"$T/node.yaml"
expect_fail "link to an unknown node: exit 2" 2 "node.yaml:6:.*links\[0\]\.ends: unknown node 'Nagoya'" "$T/o2" -- "$kagi" sim "$T/node.yaml" --out "$T/o2"
sed 's/fibre_loss: 0.2/detector_efficiency: 1.5/' "$T/typo.yaml" >"$T/value.yaml"
expect_fail "impossible value: exit 2" 2 "value.yaml:7:26: links\[0\]\.detector_efficiency: 1.5 is impossible" "$T/o3" -- "$kagi" sim "$T/value.yaml" --out "$T/o3"
sed 's/duration: 1d/duration: 1 fortnight/' "$T/typo.yaml" >"$T/dur.yaml"
expect_fail "bad duration: exit 2" 2 "dur.yaml:1:11: duration" "$T/o4" -- "$kagi" sim "$T/dur.yaml" --out "$T/o4"
expect_fail "missing scenario: exit 2" 2 "missing SCENARIO" "" -- "$kagi" sim
expect_fail "--until must be a duration" 2 "--until: '3 parsecs'" "$T/o5" -- "$kagi" sim examples/tokyo-qkd.yaml --until "3 parsecs" --out "$T/o5"
expect_fail "unreadable scenario: exit 1" 1 "nope.yaml: cannot open" "$T/o6" -- "$kagi" sim "$T/nope.yaml" --out "$T/o6"
sed 's/15.21936487   101/15.21936487   109/' examples/tle/micius-2016-like.tle >"$T/bad.tle"
sed 's#tle/micius-2016-like.tle#bad.tle#' examples/intercontinental.yaml >"$T/tle.yaml"
expect_fail "TLE that fails to parse: exit 2 naming file, line and key" 2 "tle.yaml:[0-9]+:[0-9]+: satellites\[0\]\.tle_file: .*bad.tle:3:69: .*checksum" "$T/o7" -- "$kagi" sim "$T/tle.yaml" --out "$T/o7"
finish
