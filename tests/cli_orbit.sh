# Command-line tests of kagi orbit. Oracle: python3-sgp4 (Debian's
# python3-sgp4, another implementation of the same SGP4) for the states;
# exit codes and messages for bad input.
. "$(dirname "$0")/cli_common.sh"
PY=${KAGI_PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
ISS=examples/tle/iss.tle
LEO=examples/tle/micius-like.tle

# Compare kagi's JSON with python3-sgp4 at the same minutes: position to
# 1 m, velocity to 1 mm/s, and the row times and UTC stamps.
oracle() { # json tle
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
from sgp4.api import Satrec, WGS72
rows = json.load(open(sys.argv[1]))
lines = [l.rstrip() for l in open(sys.argv[2]) if l.strip()]
sat = Satrec.twoline2rv(next(l for l in lines if l.startswith("1 ")),
                        next(l for l in lines if l.startswith("2 ")), WGS72)
worst_r = worst_v = 0.0
for row in rows:
    assert set(row) == {"minutes", "utc", "r_km", "v_km_s"}, row
    e, r, v = sat.sgp4_tsince(row["minutes"])
    assert e == 0, e
    worst_r = max(worst_r, max(abs(a - b) for a, b in zip(r, row["r_km"])))
    worst_v = max(worst_v, max(abs(a - b) for a, b in zip(v, row["v_km_s"])))
print("  %d states against python3-sgp4: max position error %.3g km, velocity %.3g km/s" % (len(rows), worst_r, worst_v))
sys.exit(0 if worst_r < 1e-3 and worst_v < 1e-6 else 1)
EOF
}

"$kagi" orbit --tle $ISS --minutes 0:1440:7 --json >"$T/iss.json" 2>"$T/err"
check "ISS a day every 7 min matches python3-sgp4 to 1 m" oracle "$T/iss.json" $ISS
check "last row is the end of the range (1440 min)" \
  "$PY" -c "import json,sys; r=json.load(open('$T/iss.json')); sys.exit(0 if len(r)==207 and r[-1]['minutes']==1440 and r[-2]['minutes']==1435 else 1)"
check "UTC stamps: epoch 2008-09-20T12:25:40.104Z" grep -q '"minutes": 0.00000000, "utc": "2008-09-20T12:25:40.104Z"' "$T/iss.json"
"$kagi" orbit --tle $LEO --minutes=-2880:2880:30 --json >"$T/leo.json" 2>/dev/null
check "LEO two days either side of epoch matches python3-sgp4" oracle "$T/leo.json" $LEO

# The table: two comment lines with units, then one row per time.
"$kagi" orbit --tle $ISS --minutes 0:95:10 >"$T/table" 2>/dev/null
check "table has a header with units" grep -q "x (km).*vz (km/s)" "$T/table"
check "table names the satellite and frame" grep -q "^# 25544 ISS (ZARYA), epoch 2008-09-20T12:25:40.104Z; TEME" "$T/table"
check "table has 11 rows for 0:95:10 (95 included)" test "$(grep -vc '^#' "$T/table")" -eq 11
check "table's first row is the epoch state" grep -qE "^ +0\.000000  2008-09-20T12:25:40\.104Z +4083\.9024635" "$T/table"

# Several sets in a file: --sat chooses by number or name.
cat $ISS $LEO >"$T/two.tle"
expect_fail "two sets without --sat" 2 "holds 2 element sets: choose one with --sat" "" -- "$kagi" orbit --tle "$T/two.tle" --minutes 0:10:5
check "--sat by catalogue number" bash -c "'$kagi' orbit --tle '$T/two.tle' --minutes 0:0:1 --sat 99901 | grep -q '^# 99901 MICIUS'"
check "--sat by name, any case" bash -c "'$kagi' orbit --tle '$T/two.tle' --minutes 0:0:1 --sat 'iss (zarya)' | grep -q '^# 25544 ISS'"
expect_fail "--sat that is not there" 2 "[-]-sat: no set numbered or named '12345'" "" -- "$kagi" orbit --tle "$T/two.tle" --minutes 0:10:5 --sat 12345

# Bad TLEs: FILE:LINE:COLUMN and the field, exit 2.
sed '3s/7$/0/' $ISS >"$T/sum.tle"
expect_fail "wrong checksum names file:line:column" 2 "sum.tle:3:69: TLE line 2: checksum is 0 but the line sums to 7" "" -- "$kagi" orbit --tle "$T/sum.tle" --minutes 0:10:5
sed '3s/ 0006703 / 0006x03 /' $ISS >"$T/ecc.tle"
expect_fail "non-numeric eccentricity names its column" 2 "ecc.tle:3:31: TLE line 2: eccentricity \(columns 27-33\)" "" -- "$kagi" orbit --tle "$T/ecc.tle" --minutes 0:10:5
head -c 150 $ISS >"$T/short.tle"
expect_fail "short line 2 names where it ends" 2 "short.tle:3:70: TLE line 2: text after column 69|short.tle:3:[0-9]+: TLE line 2: line ends after column" "" -- "$kagi" orbit --tle "$T/short.tle" --minutes 0:10:5
printf 'ISS\n1 25544U\n' >"$T/trunc.tle"
expect_fail "truncated line 1" 2 "trunc.tle:2:9: TLE line 1: line ends after column 8" "" -- "$kagi" orbit --tle "$T/trunc.tle" --minutes 0:10:5
printf 'hello\nworld\n' >"$T/junk.tle"
expect_fail "a text that is no TLE" 2 "junk.tle:2:1: expected line 1 of the TLE named on line 1" "" -- "$kagi" orbit --tle "$T/junk.tle" --minutes 0:10:5
expect_fail "missing file" 1 "nope.tle: cannot open" "" -- "$kagi" orbit --tle "$T/nope.tle" --minutes 0:10:5
# Mean motion 1e-5 rev/day (verification case 33334): SGP4 fails at epoch.
"$PY" - >"$T/slow.tle" <<'EOF'
def cs(l): return l + str(sum(int(c) if c.isdigit() else c == "-" for c in l) % 10)
print(cs("1 33334U 78066F   06174.85818871  .00000620  00000-0  10000-3 0  680"))
print(cs("2 33334  68.4714 236.1303 5602877 123.7484 302.5767  0.00001000 6752"))
EOF
expect_fail "elements SGP4 cannot start from" 2 "slow.tle:1: satellite 33334: SGP4 fails at the epoch" "" -- "$kagi" orbit --tle "$T/slow.tle" --minutes 0:10:5

# Decay inside the range: exit 1, the time and reason, and no rows.
"$PY" - >"$T/decay.tle" <<'EOF'
print("MINOTAUR R/B")
print("1 28872U 05037B   05333.02012661  .25992681  00000-0  24476-3 0  1534")
print("2 28872  96.4736 157.9986 0303955 244.0492 110.6523 16.46015938 10708")
EOF
expect_fail "decay in the range is an error naming the time" 1 "satellite 28872 at 2005-11-29T01:23:59Z \(\+55\.000 min from epoch\): decayed" "" -- "$kagi" orbit --tle "$T/decay.tle" --minutes 0:60:5
check "no rows printed when the range fails" test ! -s "$T/stdout"
check "up to 50 min it propagates" bash -c "'$kagi' orbit --tle '$T/decay.tle' --minutes 0:50:5 --json | grep -c minutes | grep -qx 11"

# Usage errors in --minutes: exit 2 naming the option.
expect_fail "--minutes with two numbers" 2 "[-]-minutes: '0:10' is not A:B:STEP" "" -- "$kagi" orbit --tle $ISS --minutes 0:10
expect_fail "--minutes end before start" 2 "[-]-minutes: end 0 is before start 10" "" -- "$kagi" orbit --tle $ISS --minutes 10:0:1
expect_fail "--minutes zero step" 2 "STEP must be positive" "" -- "$kagi" orbit --tle $ISS --minutes 0:10:0
expect_fail "--minutes not numbers" 2 "'a:b:c' is not A:B:STEP" "" -- "$kagi" orbit --tle $ISS --minutes a:b:c
expect_fail "--minutes too many rows" 2 "more than 10000000 rows" "" -- "$kagi" orbit --tle $ISS --minutes 0:1e9:1
expect_fail "missing --tle" 2 "missing required option '--tle" "" -- "$kagi" orbit --minutes 0:1:1
check "--help shows the options" bash -c "'$kagi' orbit --help | grep -q -- '--minutes A:B:STEP'"
check "kagi help lists orbit" bash -c "'$kagi' help | grep -q '^  orbit '"
finish
