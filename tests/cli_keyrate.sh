# Command-line tests of kagi keyrate. Oracles: the GLLP rate and the PLOB
# bound recomputed in python3 from the formulas, the published reach of
# Lim et al. 2014, the square-root scaling of TF-QKD, exit codes and
# one-line messages that name the parameter.
. "$(dirname "$0")/cli_common.sh"

# python3 -c on the JSON the command printed ($T/out): exit 0 if OK.
pyjson() { python3 -c "import json,math,sys; d=json.load(open('$T/out')); $1"; }

check "--help says what a finite block is" bash -c "'$kagi' keyrate --help | grep -q 'key-basis (X) detections'"
check "help lists keyrate" bash -c "'$kagi' help | grep -q keyrate"

# GYS (Lo-Ma-Chen 2005) with standard-BB84 sifting q = p_x^2 = 1/2.
GYS=(--fiber-loss 0.21 --misalignment 0.033 --dark-count 1.7e-6 --detector-efficiency 0.045
     --ec-efficiency 1.22 --afterpulse 0 --mu 0.48 --p-x 0.7071067811865476)
"$kagi" keyrate --distance 0:100:50 --json "${GYS[@]}" >"$T/out" 2>"$T/err"
check "JSON: one object per distance with the documented keys" pyjson "
keys = {'distance_km','key_rate_per_pulse','key_rate_bps','qber','mu_signal','p_x','plob_per_pulse'}
assert len(d) == 3 and all(keys <= set(o) for o in d), d
assert [o['distance_km'] for o in d] == [0, 50, 100]"
check "JSON: GLLP rates equal the python recomputation" pyjson "
def h(p): return 0.0 if p <= 0 else 1.0 if p >= 0.5 else -p*math.log2(p)-(1-p)*math.log2(1-p)
for o in d:
    L = o['distance_km']; mu = 0.48; Y0 = 1.7e-6; eta = 0.045*10**(-0.21*L/10)
    Q = 1-(1-Y0)*math.exp(-eta*mu); EQ = Y0/2+0.033*(1-math.exp(-eta*mu))
    Y1 = Y0+eta-Y0*eta; e1 = (Y0/2+0.033*eta)/Y1
    R = 0.5*(-Q*1.22*h(EQ/Q)+Y1*mu*math.exp(-mu)*(1-h(e1)))
    assert abs(o['key_rate_per_pulse']-R) <= 1e-9*R, (L, o['key_rate_per_pulse'], R)
    assert abs(o['key_rate_bps']-R*1e9) <= 1e-9*R*1e9
    assert abs(o['qber']-EQ/Q) <= 1e-9
    assert abs(o['plob_per_pulse']+math.log2(1-eta)) <= 1e-9*o['plob_per_pulse']"

"$kagi" keyrate --distance 100:200:10 --json "${GYS[@]}" >"$T/out" 2>"$T/err"
check "rates are 0, never negative, beyond the GYS cut-off (~142 km)" pyjson "
r = {o['distance_km']: o['key_rate_per_pulse'] for o in d}
assert r[140] > 0 and all(r[L] == 0 for L in r if L >= 150), r
assert all(v >= 0 for v in r.values())"

"$kagi" keyrate --distance 0:20:10 --csv >"$T/csv" 2>"$T/err"
"$kagi" keyrate --distance 0:20:10 --json >"$T/out" 2>>"$T/err"
check "CSV: header and rows match the JSON" python3 -c "
import csv, json
rows = list(csv.DictReader(open('$T/csv'))); d = json.load(open('$T/out'))
assert len(rows) == len(d) == 3
for r, o in zip(rows, d):
    assert set(r) == set(o)
    for k in r: assert abs(float(r[k]) - o[k]) <= 1e-9 * abs(o[k]), k"

"$kagi" keyrate --distance 0:100:25 >"$T/table" 2>"$T/err"
check "plain output: a table with units" bash -c "grep -q '(km)' '$T/table' && grep -q '(bit/pulse)' '$T/table' && grep -q '(bit/s)' '$T/table' && [ \$(grep -cE '^ +[0-9]+\.[0-9]{3} ' '$T/table') -eq 5 ]"

# Lim et al. 2014: a block of n_X = 1e4 still gives key at ~135 km.
"$kagi" keyrate --distance 125:145:1 --finite 1e4 --optimize --afterpulse-model lim --json >"$T/out" 2>"$T/err"
check "finite 1e4, optimised: key ends near Lim et al.'s 135 km" pyjson "
last = max(o['distance_km'] for o in d if o['key_rate_per_pulse'] > 0)
assert 132 <= last <= 138, last
assert all(o['block_pulses'] > 0 for o in d)"

t0=$(date +%s.%N)
"$kagi" keyrate --optimize --finite 1e10 --distance 0:200:5 --json >"$T/out" 2>"$T/err"
rc=$?
t1=$(date +%s.%N)
check "--optimize --finite 1e10 over 0:200:5 takes under 3 s" python3 -c "assert $rc == 0 and $t1 - $t0 < 3, ($rc, $t1 - $t0)"
check "... and its rate falls with distance, 41 points" pyjson "
r = [o['key_rate_per_pulse'] for o in d]
assert len(r) == 41 and all(a >= b for a, b in zip(r, r[1:])) and r[0] > 0"

# TF-QKD: above PLOB at 400 km, and sqrt(eta): 100 km of fibre (20 dB)
# costs a decade of rate.
SNS=(--protocol tf-qkd --optimize --detector-efficiency 0.8 --dark-count 2e-11 --ec-efficiency 1.1
     --afterpulse 0 --misalignment 0.15 --p-x 1)
"$kagi" keyrate --distance 300:400:100 --json "${SNS[@]}" >"$T/out" 2>"$T/err"
check "TF-QKD beats PLOB and scales as sqrt(eta)" pyjson "
a, b = d
assert b['key_rate_per_pulse'] > b['plob_per_pulse'] > 0
assert abs(math.log10(a['key_rate_per_pulse']/b['key_rate_per_pulse']) - 1) < 0.02
assert 'send_prob' in a"

"$kagi" keyrate --distance 10 --dead-time 1e-6 --json >"$T/out" 2>"$T/err"
check "dead time caps the detected rate R/(1 + R tau)" pyjson "
o = d[0]; R = 1e9*o['gain']
assert abs(o['key_rate_bps'] - o['key_rate_per_pulse']*1e9/(1+R*1e-6)) <= 1e-8*o['key_rate_bps']"

"$kagi" keyrate --distance 0:200:10 --optimize --plot "$T/rate.svg" >/dev/null 2>"$T/err"
check "--plot writes an SVG with the rate and a dashed PLOB curve" bash -c "grep -q '<svg' '$T/rate.svg' && grep -q 'PLOB' '$T/rate.svg' && grep -q 'stroke-dasharray' '$T/rate.svg'"

# Bad parameters: exit 2, one line naming the parameter (patterns start
# with "keyrate:" as expect_fail's grep takes no "--").
one_line() { # name pattern args...
  local name=$1 pat=$2; shift 2
  expect_fail "$name" 2 "$pat" "" -- "$kagi" keyrate "$@"
  [ "$(wc -l <"$T/stderr")" -eq 1 ] || bad "$name: message is not one line"
}
one_line "negative fibre loss" "keyrate: --fiber-loss.*-0.2" --distance 10 --fiber-loss -0.2
one_line "efficiency above 1" "keyrate: --detector-efficiency.*1.5" --distance 10 --detector-efficiency 1.5
one_line "decoy above the signal" "keyrate: --decoy-mu.*0.6.*--mu 0.45" --distance 10 --decoys 2 --decoy-mu 0.6
one_line "decoy mu without two decoys" "keyrate: --decoy-mu.*--decoys 2" --distance 10 --decoy-mu 0.05
one_line "empty distance range" "keyrate: --distance.*empty" --distance 100:50:10
one_line "zero step" "keyrate: --distance.*step 0" --distance 0:100:0
one_line "range without a step" "keyrate: --distance.*STEP" --distance 0:100
one_line "distance not a number" "keyrate: --distance.*'ten'" --distance ten
one_line "negative distance" "keyrate: --distance.*negative" --distance -5
one_line "unknown protocol" "keyrate: --protocol.*'bb85'" --distance 10 --protocol bb85
one_line "unknown decoy setting" "keyrate: --decoys.*'3'" --distance 10 --decoys 3
one_line "finite key with infinite decoys" "keyrate: --finite.*--decoys 2" --distance 10 --finite 1e6 --decoys infinite
one_line "finite TF-QKD" "keyrate: --finite.*TF-QKD" --distance 10 --finite 1e6 --protocol tf-qkd
one_line "finite block below one" "keyrate: --finite" --distance 10 --finite 0
one_line "dark count of 1" "keyrate: --dark-count" --distance 10 --dark-count 1
one_line "misalignment above 1/2" "keyrate: --misalignment" --distance 10 --misalignment 0.6
one_line "ec efficiency below 1" "keyrate: --ec-efficiency" --distance 10 --ec-efficiency 0.9
one_line "class probabilities over 1" "keyrate: --p-mu.*0.7,0.4" --distance 10 --decoys 2 --p-mu 0.7,0.4
one_line "json and csv together" "keyrate: --json and --csv exclude" --distance 10 --json --csv
one_line "send-prob with BB84" "keyrate: --send-prob.*tf-qkd" --distance 10 --send-prob 0.1
one_line "missing distance" "keyrate: missing required option .--distance" --mu 0.5
expect_fail "unwritable plot: exit 1, no file" 1 "keyrate: --plot.*$T/no/dir/x.svg" "$T/no/dir/x.svg" -- "$kagi" keyrate --distance 0:10:5 --plot "$T/no/dir/x.svg"

finish
