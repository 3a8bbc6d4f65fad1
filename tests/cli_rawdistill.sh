# Closing the loop: a simulated link distilled from its raw records.
# Oracles: the other party's key (cmp), the simulator's own error count,
# the finite-key length kagi keyrate predicts for the same link and block
# (Lim et al. 2014 on expected counts, within 5%), and an eavesdropper
# whose errors must stop the key.
. "$(dirname "$0")/cli_common.sh"
A="$T/a.raw"; B="$T/b.raw"; FA="$T/fa"; FB="$T/fb"
pyj() { python3 -c "import json,sys; a=json.load(open('$T/sim')); d=json.load(open('$T/dist')); $1"; }

# 5.5e9 pulses at 50 km: just over 10^7 key-basis bits.
"$kagi" link simulate --distance 50 --pulses 5.5e9 --seed 11 --out-alice "$A" --out-bob "$B" \
  --json >"$T/sim" 2>"$T/err"
check "simulate 5.5e9 pulses at 50 km" test -s "$T/sim"
"$kagi" distill --raw --alice "$A" --bob "$B" --out-alice "$FA" --out-bob "$FB" --json \
  >"$T/dist" 2>"$T/err"
check "distill --raw exits 0" test -s "$T/dist"
check "both final keys identical" cmp -s "$FA" "$FB"
check "a block of at least 10^7 sifted bits, as the simulator counted" pyj "
assert d['sifted_bits'] >= 10**7 and d['sifted_bits'] == a['sifted_x'], (d['sifted_bits'], a['sifted_x'])
assert d['sifted_z'] == a['sifted_z'] and d['errors_z'] == a['errors_z']"
check "Cascade corrected exactly the errors the simulator made" pyj "
assert d['reconcile']['errors_corrected'] == a['errors_x'], (d['reconcile'], a['errors_x'])"
check "final key file holds final_bits" pyj "
import os; assert os.path.getsize('$FA') == (d['final_bits'] + 7) // 8"
n=$(python3 -c "import json; print(json.load(open('$T/dist'))['sifted_bits'])")
f=$(python3 -c "import json; print(json.load(open('$T/dist'))['reconcile']['efficiency'])")
"$kagi" keyrate --decoys 2 --distance 50 --finite "$n" --ec-efficiency "$f" --json >"$T/rate" 2>"$T/err"
check "final length within 5% of kagi keyrate --finite for the same link" python3 -c "
import json
r = json.load(open('$T/rate'))[0]; d = json.load(open('$T/dist'))
want = r['key_rate_per_pulse'] * r['block_pulses']
got = d['final_bits']
print('  distilled %d bits, keyrate predicts %.0f (%+.2f%%)' % (got, want, 100 * (got / want - 1)))
assert want > 0 and abs(got / want - 1) < 0.05"

# An intercept-resend eavesdropper on every pulse: QBER ~25%, no key.
"$kagi" link simulate --distance 50 --pulses 2e9 --seed 12 --eve 1 --out-alice "$A" --out-bob "$B" \
  --json >"$T/sim" 2>"$T/err"
check "intercept-resend raises the QBER to about 25%" python3 -c "
import json; a = json.load(open('$T/sim'))
assert 0.23 < a['qber_x'] < 0.28 and 0.23 < a['qber_z'] < 0.28, (a['qber_x'], a['qber_z'])"
rm -f "$FA" "$FB"
expect_fail "eavesdropped link: exit 3, no key" 3 "no secret key" "$FA" -- \
  "$kagi" distill --raw --alice "$A" --bob "$B" --out-alice "$FA" --out-bob "$FB"
check "... and no key for Bob either" test ! -e "$FB"

# Bad inputs.
"$kagi" link simulate --distance 20 --pulses 1e8 --seed 13 --out-alice "$A" --out-bob "$B" 2>/dev/null
expect_fail "--bits with --raw" 2 "--bits does not go with --raw" "$FA" -- \
  "$kagi" distill --raw --bits 100 --alice "$A" --bob "$B" --out-alice "$FA" --out-bob "$FB"
expect_fail "files swapped" 1 "holds bob records" "$FA" -- \
  "$kagi" distill --raw --alice "$B" --bob "$A" --out-alice "$FA" --out-bob "$FB"
head -c 5000 "$B" >"$T/short.raw"
expect_fail "truncated raw file names the path" 1 "short.raw" "$FA" -- \
  "$kagi" distill --raw --alice "$A" --bob "$T/short.raw" --out-alice "$FA" --out-bob "$FB"
expect_fail "missing --out-bob" 2 "--out-bob" "$FA" -- \
  "$kagi" distill --raw --alice "$A" --bob "$B" --out-alice "$FA"
finish
