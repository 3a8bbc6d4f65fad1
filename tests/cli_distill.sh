# Command-line tests of kagi distill, reconcile and the common options.
# Oracles: the other party's key file, exit codes, messages, absent files.
. "$(dirname "$0")/cli_common.sh"
n=200000
"$kagi" pair --bits $n --qber 0.02 --seed 3 --out-alice "$T/a" --out-bob "$T/b" 2>/dev/null
"$kagi" pair --bits $n --qber 0.45 --seed 4 --out-alice "$T/a45" --out-bob "$T/b45" 2>/dev/null
"$kagi" pair --bits $n --qber 0 --seed 5 --out-alice "$T/a0" --out-bob "$T/b0" 2>/dev/null

# Help, version, usage errors: one line naming the option, exit 2.
check "version prints the version" bash -c "'$kagi' version | grep -qE '^kagi [0-9]+\.[0-9]+'"
check "help lists distill" bash -c "'$kagi' help | grep -q distill"
check "distill --help shows usage" bash -c "'$kagi' distill --help | grep -q -- '--eps-sec'"
expect_fail "unknown option names it" 2 "unknown option '--frobnicate'" "" -- "$kagi" distill --frobnicate
expect_fail "missing value names the option" 2 "'--bits' needs a value" "" -- "$kagi" distill --alice "$T/a" --bits
expect_fail "missing required option" 2 "missing required option '--bits" "" -- "$kagi" distill --alice "$T/a"
expect_fail "unknown command" 2 "unknown command 'frob'" "" -- "$kagi" frob
expect_fail "--bits 0 is refused" 2 "at least 1" "$T/ka" -- "$kagi" distill --alice "$T/a" --bob "$T/b" --bits 0 --out-alice "$T/ka" --out-bob "$T/kb"
expect_fail "--bits not a number" 2 "not a whole number" "$T/ka" -- "$kagi" distill --alice "$T/a" --bob "$T/b" --bits 12x --out-alice "$T/ka" --out-bob "$T/kb"

# Bad files: message names the file, exit 1, no key file.
: > "$T/empty"
expect_fail "empty file" 1 "empty" "$T/ka" -- "$kagi" distill --alice "$T/empty" --bob "$T/b" --bits $n --out-alice "$T/ka" --out-bob "$T/kb"
expect_fail "file too short" 1 "holds 200000 bits, 300000 bits needed" "$T/ka" -- "$kagi" distill --alice "$T/a" --bob "$T/b" --bits 300000 --out-alice "$T/ka" --out-bob "$T/kb"
expect_fail "unreadable path" 1 "$T/nope.*No such file" "$T/ka" -- "$kagi" distill --alice "$T/nope" --bob "$T/b" --bits $n --out-alice "$T/ka" --out-bob "$T/kb"
expect_fail "unwritable output" 1 "cannot create" "" -- "$kagi" distill --alice "$T/a" --bob "$T/b" --bits $n --out-alice "$T/no/dir/ka" --out-bob "$T/kb"
check "no Bob key left after Alice's write failed" test ! -e "$T/kb"

# QBER near 50%: no key, exit 3, nothing written.
expect_fail "QBER 45% leaves no key" 3 "QBER 4[0-9]\.[0-9]+%.*no secret key" "$T/ka" -- "$kagi" distill --alice "$T/a45" --bob "$T/b45" --bits $n --out-alice "$T/ka" --out-bob "$T/kb"
check "QBER 45% wrote no Bob key" test ! -e "$T/kb"

# The whole pipeline in one process: identical keys, sane report.
"$kagi" distill --alice "$T/a" --bob "$T/b" --bits $n --out-alice "$T/ka" --out-bob "$T/kb" --json > "$T/r.json"
check "distill exits 0" test $? -eq 0
check "final keys are identical" cmp -s "$T/ka" "$T/kb"
check "final key differs from the sifted key" bash -c "! cmp -s '$T/ka' '$T/a'"
check "JSON report has the promised fields and sane values" python3 - "$T/r.json" "$T/ka" <<'PY'
import json, os, sys, math
r = json.load(open(sys.argv[1]))
h = lambda p: -p*math.log2(p)-(1-p)*math.log2(1-p)
assert r["sifted_bits"] == 200000
assert 0.01 < r["qber"] < 0.03, r["qber"]
rc = r["reconcile"]
assert rc["leak_bits"] > 0 and 1.0 < rc["efficiency"] < 1.2, rc
assert rc["channel_uses"] > 0
assert r["verify"]["ok"] is True
assert r["auth_bits_consumed"] >= 256
# the key length never exceeds what is left after the leak
assert 0 < r["final_bits"] < rc["bits"] * (1 - h(r["qber"])) - rc["leak_bits"] + 1, r
assert os.path.getsize(sys.argv[2]) == (r["final_bits"] + 7) // 8
ncpu = os.cpu_count() or 1
for s in ("estimate", "reconcile", "verify", "amplify"):
    assert r["throughput_mbps"][s] > 0
    # throughput is bits over the stage's wall time
    assert abs(r["throughput_mbps"][s] - (r["sifted_bits"] if s == "estimate" else rc["bits"]) / r["seconds"][s] / 1e6) <= 0.05 + 0.001 * r["throughput_mbps"][s], (s, r)
    # CPU time of the process: no more cores than the machine has
    assert 0 <= r["cpu_seconds"][s] <= r["seconds"][s] * ncpu * 1.1 + 0.005, (s, r)
# both parties run in this process: the whole run used CPU
assert sum(r["cpu_seconds"].values()) > 0, r
PY
check "JSON holds no key material" bash -c "! grep -qE '[01]{64}' '$T/r.json'"
"$kagi" distill --alice "$T/a0" --bob "$T/b0" --bits $n --out-alice "$T/k0a" --out-bob "$T/k0b" >/dev/null
check "zero-error pair distils to identical keys" cmp -s "$T/k0a" "$T/k0b"

# Reconcile alone: Bob's corrected key equals Alice's.
"$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --out "$T/bc" > /dev/null
check "reconcile output equals Alice's key" cmp -s "$T/bc" "$T/a"
expect_fail "reconcile unknown method" 2 "unknown method 'frob'" "" -- "$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --method frob

# Two processes over TCP with a pre-shared authentication key.
head -c 65536 /dev/urandom > "$T/auth-a"; cp "$T/auth-a" "$T/auth-b"
port=$(( 20000 + RANDOM % 20000 ))
"$kagi" distill --role alice --listen 127.0.0.1:$port --auth-key "$T/auth-a" --alice "$T/a" \
  --out-alice "$T/ta" --bits $n --timeout 20 > "$T/alice.out" 2>&1 &
apid=$!
"$kagi" distill --role bob --connect 127.0.0.1:$port --auth-key "$T/auth-b" --bob "$T/b" \
  --out-bob "$T/tb" --bits $n --timeout 20 > "$T/bob.out" 2>&1
brc=$?; wait $apid; arc=$?
check "TCP: both parties exit 0" test "$arc$brc" = "00"
check "TCP: the two processes wrote identical keys" cmp -s "$T/ta" "$T/tb"
check "TCP: auth key files consumed alike" cmp -s "$T/auth-a" "$T/auth-b"
check "TCP: auth key file shrank by the tags spent" test "$(stat -c %s "$T/auth-a")" -eq $(( 65536 - 1024 / 8 ))

# Role mode usage errors, and a peer that never comes keeps the auth key.
expect_fail "role needs an auth key" 2 "needs '--auth-key FILE'" "" -- "$kagi" distill --role alice --listen 127.0.0.1:1 --alice "$T/a" --out-alice "$T/ra" --bits $n
expect_fail "listen without role" 2 "need --role" "" -- "$kagi" distill --listen 127.0.0.1:1 --alice "$T/a" --bob "$T/b" --bits $n --out-alice "$T/ra" --out-bob "$T/rb"
head -c 64 /dev/urandom > "$T/tiny.key"
expect_fail "auth key too short" 1 "holds 512 bits, at least 1024" "$T/ra" -- "$kagi" distill --role alice --listen 127.0.0.1:1 --auth-key "$T/tiny.key" --alice "$T/a" --out-alice "$T/ra" --bits $n
cp "$T/auth-a" "$T/auth-lonely"
expect_fail "no peer: connection error" 1 "cannot connect" "$T/rb" -- "$kagi" distill --role bob --connect 127.0.0.1:9 --auth-key "$T/auth-lonely" --bob "$T/b" --out-bob "$T/rb" --bits $n --timeout 1
check "no peer: auth key file untouched" cmp -s "$T/auth-lonely" "$T/auth-a"

# An attacker flips one bit on the wire: in a tagged message (offset 20,
# Bob's hello) or deep inside Cascade (offset 60000, covered by the tag on
# Bob's verdict). Both stop with a clear error and no key on either side.
for off in 20 60000; do
  cp "$T/auth-a" "$T/auth-a2"; cp "$T/auth-a" "$T/auth-b2"
  p1=$(( 20000 + RANDOM % 20000 )); p2=$(( p1 + 1 ))
  "$kagi" distill --role alice --listen 127.0.0.1:$p1 --auth-key "$T/auth-a2" --alice "$T/a" \
    --out-alice "$T/xa" --bits $n --timeout 20 > "$T/xalice.out" 2>&1 &
  apid=$!
  python3 "$(dirname "$0")/tamper_proxy.py" $p2 $p1 $off > "$T/proxy.out" 2>&1 &
  ppid=$!
  for _ in $(seq 50); do grep -q ready "$T/proxy.out" 2>/dev/null && break; sleep 0.1; done
  "$kagi" distill --role bob --connect 127.0.0.1:$p2 --auth-key "$T/auth-b2" --bob "$T/b" \
    --out-bob "$T/xb" --bits $n --timeout 20 > "$T/xbob.out" 2>&1
  brc=$?; wait $apid; arc=$?; wait $ppid 2>/dev/null
  if [ "$off" = 20 ]; then
    check "tampered at byte $off: Alice exits 3" test "$arc" -eq 3
    check "tampered at byte $off: Alice says the tag failed" grep -q "message 1: tag mismatch" "$T/xalice.out"
  else
    # Cascade's messages travel under the tags that close the exchange; a
    # forged one may also stop it earlier, as a protocol error or a silent
    # peer. Either way both fail and say why.
    check "tampered at byte $off: Alice fails" test "$arc" -ne 0
    check "tampered at byte $off: a party names the cause" grep -qE \
      "tag mismatch|before its messages were authenticated" "$T/xalice.out" "$T/xbob.out"
  fi
  check "tampered at byte $off: Bob fails too" test "$brc" -ne 0
  check "tampered at byte $off: no key file on either side" bash -c "[ ! -e '$T/xa' ] && [ ! -e '$T/xb' ]"
done
finish
