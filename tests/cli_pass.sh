# Command-line tests of kagi pass. Oracles: the link loss of every profile
# sample recomputed in python3 from its range and elevation with the
# formulas of docs/freespace.md (written separately here), Liao et al.'s
# published figures for the night of 19 December 2016, the JSON and table
# layout, and exit codes and messages for bad input.
. "$(dirname "$0")/cli_common.sh"
PY=${KAGI_PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
TLE=examples/tle/micius-2016-like.tle
XL=40.3955,117.5775,890   # Xinglong

# The night pass of 19 December 2016 as JSON.
"$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:00:00Z --hours 1 --json >"$T/night.json" 2>"$T/err"
check "night window: exit 0, valid JSON with one pass" \
  "$PY" -c "import json,sys; r=json.load(open('$T/night.json')); sys.exit(0 if len(r)==1 else 1)"

fields() {
  "$PY" - "$1" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))[0]
need = {"aos", "tca", "los", "max_elevation_deg", "duration_s", "night", "min_loss_db", "max_loss_db",
        "detections", "sifted_bits", "qber", "key_bits", "asymptotic_key_bits", "profile"}
assert need <= set(p), need - set(p)
for k in ("aos", "tca", "los"):
    assert p[k].startswith("2016-12-19T16:4") and p[k].endswith("Z"), p[k]
q = p["profile"]
assert {"time", "elevation_deg", "range_km", "loss_db", "night"} <= set(q[0]), q[0]
assert q[0]["time"] == p["aos"] and q[-1]["time"] == p["los"], (q[0]["time"], q[-1]["time"])
assert len(q) == int(p["duration_s"]) + 2, (len(q), p["duration_s"])   # 1 s steps and los
assert abs(q[0]["elevation_deg"] - 10) < 1e-3 and abs(max(x["elevation_deg"] for x in q) - p["max_elevation_deg"]) < 0.01
assert p["night"] and all(x["night"] for x in q)
assert 5e4 <= p["key_bits"] <= 5e5, p["key_bits"]
assert abs(p["max_elevation_deg"] - 49.24) < 0.05 and abs(min(x["range_km"] for x in q) - 645) < 3
EOF
}
check "pass fields, ISO 8601 times, profile from AOS to LOS at 1 s, key of order 1e5 bit" fields "$T/night.json"

# Every sample's loss from its range and elevation, recomputed here: Gaussian
# beam (10 urad FWHM, 0.15 m waist, 1 m receiver), jitter 1.2 urad with the
# Farid-Hranilovic width, 0.55^airmass (Kasten-Young), 16% receiver optics.
loss_oracle() {
  "$PY" - "$1" <<'EOF'
import json, math, sys
p = json.load(open(sys.argv[1]))[0]
def ky(e): return 1 / (math.sin(math.radians(e)) + 0.50572 * (e + 6.07995) ** -1.6364)
worst = 0
for q in p["profile"]:
    L = q["range_km"] * 1e3; a = 0.5; th = 10e-6 / math.sqrt(2 * math.log(2))
    w = math.hypot(0.15, th * L)
    v = math.sqrt(math.pi) * a / (math.sqrt(2) * w)
    weq2 = w * w * math.sqrt(math.pi) * math.erf(v) / (2 * v * math.exp(-v * v))
    T = (1 - math.exp(-2 * a * a / w / w)) / (1 + 4 * (1.2e-6 * L) ** 2 / weq2) * 0.55 ** ky(q["elevation_deg"]) * 0.16
    worst = max(worst, abs(-10 * math.log10(T) - q["loss_db"]))
print("  %d samples: worst loss difference %.2g dB" % (len(p["profile"]), worst))
sys.exit(0 if worst < 2e-3 else 1)   # JSON rounds range and elevation to 1e-4
EOF
}
check "every sample's loss matches the python3 recomputation" loss_oracle "$T/night.json"

# Liao et al. 2017: ~30 dB at 645 km, 38-40 dB at 1200 km; within 1200 km
# (above 19.8 deg) 273 s, 3,551,136 detections, 1,671,072 sifted bits, QBER
# 1.1%, ~12 kbit/s sifted at 645 km.
"$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:00:00Z --hours 1 --min-elevation 19.8 --json >"$T/liao.json" 2>/dev/null
liao() {
  "$PY" - "$1" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))[0]
q = p["profile"]
ok = abs(p["duration_s"] - 273) < 5 and abs(p["detections"] / 3551136 - 1) < 0.1 \
     and abs(p["sifted_bits"] / 1671072 - 1) < 0.1 and abs(p["qber"] - 0.011) < 0.001
near = [x["loss_db"] for x in q if x["range_km"] < 650]
far = [x["loss_db"] for x in q if x["range_km"] > 1180]
ok = ok and near and far and all(abs(v - 30) < 1 for v in near) and all(38 <= v <= 40 for v in far)
peak = max(x["clicks_per_s"] for x in q) / 2
ok = ok and abs(peak / 12000 - 1) < 0.15
print("  %.1f s, %d detections, %d sifted, QBER %.2f%%, loss %.2f-%.2f dB, peak sifted %.0f bit/s, key %d bit"
      % (p["duration_s"], p["detections"], p["sifted_bits"], 100 * p["qber"], min(near), max(far), peak, p["key_bits"]))
sys.exit(0 if ok else 1)
EOF
}
check "within 1200 km the pass has Liao et al.'s duration, counts, QBER and loss" liao "$T/liao.json"

# Day against night over two days: every day pass 0 bit, night passes key.
"$kagi" pass --tle $TLE --station $XL --from 2016-12-18T00:00:00Z --hours 72 --json >"$T/days.json" 2>/dev/null
daynight() {
  "$PY" - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
day = [p for p in r if p["light"] == "day"]; night = [p for p in r if p["night"]]
ok = len(day) >= 3 and len(night) >= 3 and all(p["key_bits"] == 0 for p in day) \
     and max(p["key_bits"] for p in night) > 1e5 and max(p["max_elevation_deg"] for p in day) > 70
sys.exit(0 if ok else 1)
EOF
}
check "day passes give no key, night passes do" daynight "$T/days.json"

# Blocks of passes: the block's counts are the sum, its key more than the parts'.
"$kagi" pass --tle $TLE --station $XL --from 2016-12-18T00:00:00Z --hours 72 --night-only --passes-per-block 2 --json >"$T/block.json" 2>/dev/null
blocks() {
  "$PY" - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r) == 4 and all(p["night"] for p in r), [p["night"] for p in r]
b = [p for p in r if p["block"] == 2]
assert len(b) == 2 and all(p["block_passes"] == 2 for p in b)
assert b[0]["block_key_bits"] == b[1]["block_key_bits"] > b[0]["key_bits"] + b[1]["key_bits"]
EOF
}
check "--night-only --passes-per-block 2: blocks of night passes, more key together" blocks "$T/block.json"
"$kagi" pass --tle $TLE --station $XL --from 2016-12-18T00:00:00Z --hours 72 --night-only --passes-per-block 3 >"$T/block.txt" 2>/dev/null
check "table lists each block, the last one incomplete" grep -q "^# block 2: passes 4-4, .* (incomplete: the window ends)" "$T/block.txt"

# The table: units in the header, one row per pass.
"$kagi" pass --tle $TLE --station $XL --from 2016-12-19T00:00:00Z --hours 24 >"$T/table" 2>/dev/null
check "table header has units" grep -q "(deg) *(s) *(dB) *(dB) *(count) *(bit) *(%) *(bit) *(bit)" "$T/table"
check "table names satellite, station and link" grep -q "^# 99902 MICIUS-LIKE 2016-12-19 NIGHT over 40.3955, 117.578, 890 m" "$T/table"
check "table has one row per pass (2 on 19 Dec: day and night)" test "$(grep -vc '^#' "$T/table")" -eq 2
"$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:00:00Z --hours 1 --profile >"$T/profile" 2>/dev/null
check "--profile prints every sample with units" bash -c "grep -q '(deg) *(deg) *(km) *(dB)' '$T/profile' && test \$(grep -vc '^#' '$T/profile') -eq 426"

# Options override the preset: without background the QBER falls, key rises.
"$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:00:00Z --hours 1 --background-night 0 --json >"$T/dark.json" 2>/dev/null
check "--background-night 0 lowers QBER and raises key" "$PY" -c "
import json,sys
a=json.load(open('$T/night.json'))[0]; b=json.load(open('$T/dark.json'))[0]
sys.exit(0 if b['qber'] < a['qber'] and b['key_bits'] > a['key_bits'] else 1)"

# No pass in the window: an empty list and exit 0.
"$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:50:00Z --hours 0.5 --json >"$T/none.json" 2>"$T/err"; rc=$?
check "no pass: JSON [] and exit 0" bash -c "test $rc -eq 0 && test \"\$(cat '$T/none.json')\" = '[]'"
"$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:50:00Z --hours 0.5 >"$T/none.txt" 2>/dev/null; rc=$?
check "no pass: table says so, exit 0" bash -c "test $rc -eq 0 && grep -q '^# no pass above 10 deg in the window' '$T/none.txt'"

# --plot: elevation (left) and loss (right) of the best pass.
"$kagi" pass --tle $TLE --station $XL --from 2016-12-18T00:00:00Z --hours 72 --plot "$T/p.svg" >/dev/null 2>&1
check "--plot writes an SVG with both axes" bash -c "grep -q 'elevation (deg)' '$T/p.svg' && grep -q 'link loss (dB)' '$T/p.svg' && grep -q '</svg>' '$T/p.svg'"
check "--plot draws the pass with the most key (20 Dec, 87.7 deg)" grep -q "AOS 2016-12-20T16:21:40.68Z, max elevation 87.7 deg" "$T/p.svg"
"$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:50:00Z --hours 0.5 --plot "$T/empty.svg" >/dev/null 2>&1
check "--plot without a pass writes a chart that says so" grep -q "no pass above 10 deg in the window" "$T/empty.svg"
expect_fail "--plot to a missing directory" 1 "[-]-plot: .*nodir" "$T/nodir/p.svg" -- "$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:00:00Z --hours 1 --plot "$T/nodir/p.svg"

# Bad input: one line naming the option, exit 2.
A="--from 2016-12-19T16:00:00Z --hours 1"
expect_fail "station latitude out of range" 2 "[-]-station: latitude 95 is not in \[-90, 90\]" "" -- "$kagi" pass --tle $TLE --station 95,0,0 $A
expect_fail "station longitude out of range" 2 "[-]-station: longitude 400 is not in" "" -- "$kagi" pass --tle $TLE --station 40,400,0 $A
expect_fail "station height out of range" 2 "[-]-station: height 200000 m" "" -- "$kagi" pass --tle $TLE --station 40,117,200000 $A
expect_fail "station not three numbers" 2 "[-]-station: '40,117' is not LAT,LON,ALT_M" "" -- "$kagi" pass --tle $TLE --station 40,117 $A
expect_fail "--hours 0" 2 "[-]-hours: must lie in \(0, " "" -- "$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:00:00Z --hours 0
expect_fail "--hours negative" 2 "[-]-hours: must lie in \(0, " "" -- "$kagi" pass --tle $TLE --station $XL --from 2016-12-19T16:00:00Z --hours -2
expect_fail "unknown --link" 2 "[-]-link: link 'geo' is not a known preset \(known: micius\)" "" -- "$kagi" pass --tle $TLE --station $XL $A --link geo
expect_fail "bad --from" 2 "[-]-from: " "" -- "$kagi" pass --tle $TLE --station $XL --from yesterday --hours 1
expect_fail "bad --zenith-transmittance" 2 "[-]-zenith-transmittance: must lie in \(0, 1\]" "" -- "$kagi" pass --tle $TLE --station $XL $A --zenith-transmittance 1.5
expect_fail "bad --direction" 2 "[-]-direction: expected down or up" "" -- "$kagi" pass --tle $TLE --station $XL $A --direction sideways
expect_fail "--p-x 1 leaves no test basis" 2 "[-]-p-x: must lie in \(0, 1\)" "" -- "$kagi" pass --tle $TLE --station $XL $A --p-x 1
expect_fail "--json with --profile" 2 "[-]-profile is for the table" "" -- "$kagi" pass --tle $TLE --station $XL $A --json --profile
sed '3s/1$/5/' $TLE >"$T/sum.tle"
expect_fail "TLE with a wrong checksum names --tle and file:line:column" 2 "[-]-tle: .*sum.tle:3:69: TLE line 2: checksum" "" -- "$kagi" pass --tle "$T/sum.tle" --station $XL $A
expect_fail "missing TLE file" 1 "[-]-tle: .*nope.tle: cannot open" "" -- "$kagi" pass --tle "$T/nope.tle" --station $XL $A
cat $TLE examples/tle/iss.tle >"$T/two.tle"
expect_fail "two sets without --sat" 2 "holds 2 element sets: choose one with --sat" "" -- "$kagi" pass --tle "$T/two.tle" --station $XL $A
check "--sat picks the set" bash -c "'$kagi' pass --tle '$T/two.tle' --sat 99902 --station $XL $A | grep -q '^# 99902 MICIUS'"
expect_fail "missing --station" 2 "missing required option '--station" "" -- "$kagi" pass --tle $TLE $A
check "--help lists the link options" bash -c "'$kagi' pass --help | grep -q -- '--divergence RAD'"
check "kagi help lists pass" bash -c "'$kagi' help | grep -q '^  pass '"
finish
