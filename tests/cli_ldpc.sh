# Command-line tests of LDPC reconciliation: kagi reconcile --method ldpc
# and kagi distill --method ldpc, in one process and over TCP.
# Oracles: Alice's key (Bob's corrected key must equal it), the other
# party's final key, and the wire itself: a proxy between the two processes
# parses every message (docs/ldpc.md, "Wire format") and counts the
# syndrome and revealed bits Alice actually sent; the leak and the final
# length in the reports must follow from those counts.
. "$(dirname "$0")/cli_common.sh"
n=200000
N=2500000   # three frames of ~10^6 bits over TCP
"$kagi" pair --bits $n --qber 0.02 --seed 3 --out-alice "$T/a" --out-bob "$T/b" 2>/dev/null
"$kagi" pair --bits $n --qber 0.07 --seed 6 --out-alice "$T/a7" --out-bob "$T/b7" 2>/dev/null
"$kagi" pair --bits $n --qber 0.45 --seed 4 --out-alice "$T/a45" --out-bob "$T/b45" 2>/dev/null
"$kagi" pair --bits $N --qber 0.02 --seed 8 --out-alice "$T/A" --out-bob "$T/B" 2>/dev/null

# The proxy: relays whole messages between Bob (connecting) and Alice
# (listening), records Alice's untagged messages (the LDPC exchange rides
# under the verification tags), and can flip one byte of the first
# syndrome message. Writes its counts as JSON when the connection ends.
cat > "$T/proxy.py" <<'PY'
import json, socket, struct, sys, threading
lport, tport, out, flip = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
MB = {50: 64, 60: 51, 70: 38, 80: 26, 85: 19, 90: 13}
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", lport)); srv.listen(1); srv.settimeout(30)
print("ready", flush=True)
bob, _ = srv.accept()
alice = socket.create_connection(("127.0.0.1", tport), timeout=30)
st = {"setup": None, "syn_msgs": 0, "syn_frames": 0, "syn_bits": 0, "reveal_msgs": 0,
      "revealed_bits": 0, "reveal_frames": 0, "alice_untagged": 0, "bob_untagged": 0,
      "errors": [], "flipped": False}

def recv_all(s, k):
    b = b""
    while len(b) < k:
        d = s.recv(k - len(b))
        if not d: raise EOFError
        b += d
    return b

def ldpc(p):
    t = p[0]
    if t == 1:
        f = struct.unpack("<BBIQQddQIIIIII", p)
        st["setup"] = dict(zip(["type", "rate", "z", "code_seed", "plan_seed", "qber", "f_start",
                                "bits", "frames", "n_key", "punctured", "shortened", "step",
                                "max_rounds"], f))
    elif t == 2:
        _, first, cnt = struct.unpack_from("<BII", p)
        m = MB[st["setup"]["rate"]] * st["setup"]["z"]
        if len(p) != 9 + cnt * m // 8: st["errors"].append("syndrome message length")
        st["syn_msgs"] += 1; st["syn_frames"] += cnt; st["syn_bits"] += cnt * m
    elif t == 4:
        _, rnd, cnt = struct.unpack_from("<BII", p); o = 9
        for _ in range(cnt):
            fr, nb = struct.unpack_from("<II", p, o); o += 8 + (nb + 7) // 8
            st["revealed_bits"] += nb; st["reveal_frames"] += 1
        if o != len(p): st["errors"].append("reveal message length")
        st["reveal_msgs"] += 1
    else:
        st["errors"].append("unknown type %d" % t)

def pump(src, dst, from_alice):
    try:
        while True:
            h = recv_all(src, 4)
            ln = struct.unpack("<I", h)[0]; tagged = ln >> 31; ln &= 0x7fffffff
            body = bytearray(recv_all(src, ln + (16 if tagged else 0)))
            if not tagged:
                if from_alice:
                    st["alice_untagged"] += 1
                    ldpc(bytes(body[:ln]))
                    if flip >= 0 and body[0] == 2 and not st["flipped"]:
                        body[9 + flip] ^= 0x04; st["flipped"] = True
                else:
                    st["bob_untagged"] += 1
            dst.sendall(h + bytes(body))
    except (EOFError, OSError):
        pass
    for s in (src, dst):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass

t1 = threading.Thread(target=pump, args=(bob, alice, False))
t2 = threading.Thread(target=pump, args=(alice, bob, True))
t1.start(); t2.start(); t1.join(); t2.join()
json.dump(st, open(out, "w"))
PY

# reconcile --method ldpc: Bob's corrected key equals Alice's; the report's
# leak is its parts.
"$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --out "$T/bc" --json > "$T/rc.json"
check "reconcile ldpc exits 0" test $? -eq 0
check "reconcile ldpc: corrected key equals Alice's" cmp -s "$T/bc" "$T/a"
check "reconcile ldpc: report holds f, FER, iterations, messages and the leak" python3 - "$T/rc.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["method"] == "ldpc" and r["failed_frames"] == 0 and r["frame_error_rate"] == 0, r
assert r["residual_errors"] == 0
assert r["leak_bits"] == r["syndrome_bits"] - r["punctured_bits"] + r["revealed_bits"], r
assert 1.0 < r["efficiency"] < 1.6, r
assert r["iterations_mean"] > 0 and r["iterations_max"] >= r["iterations_mean"], r
assert r["messages"] >= r["frames"] and r["frame_key_bits"] * r["frames"] >= r["bits"], r
PY
# --ldpc-f F: the plan aims at F, so with no reveal the leak over n h(QBER
# corrected) is F up to the estimate's error, and the key is still Alice's;
# a higher F decodes in fewer iterations. Bad values are refused.
"$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --ldpc-f 1.6 --out "$T/bf" --json > "$T/rf.json"
check "reconcile --ldpc-f 1.6 exits 0" test $? -eq 0
check "reconcile --ldpc-f 1.6: corrected key equals Alice's" cmp -s "$T/bf" "$T/a"
check "reconcile --ldpc-f 1.6: f near 1.6, fewer iterations than auto" python3 - "$T/rf.json" "$T/rc.json" <<'PY'
import json, math, sys
r, auto = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
h = lambda p: -p * math.log2(p) - (1 - p) * math.log2(1 - p)
# the plan's f is relative to the estimated QBER; recompute it from the leak
f_est = r["leak_bits"] / (r["bits"] * h(r["qber_estimate"]))
assert r["revealed_bits"] == 0 and abs(f_est - 1.6) < 0.03, (f_est, r)
assert r["iterations_mean"] < auto["iterations_mean"], (r, auto)
assert r["efficiency"] > auto["efficiency"] + 0.2, (r, auto)
PY
expect_fail "reconcile: --ldpc-f above 2 refused" 2 "ldpc-f: must lie in \(1, 2\], got 2.5" "" -- "$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --ldpc-f 2.5
expect_fail "reconcile: --ldpc-f not a number" 2 "ldpc-f: 'fast' is not a number" "" -- "$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --ldpc-f fast
expect_fail "reconcile: --ldpc-f without ldpc refused" 2 "ldpc-f goes with --method ldpc" "" -- "$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --ldpc-f 1.5
expect_fail "distill: --ldpc-f without ldpc refused" 2 "ldpc-f goes with --method ldpc" "$T/kf" -- "$kagi" distill --alice "$T/a" --bob "$T/b" --bits $n --ldpc-f 1.5 --out-alice "$T/kf" --out-bob "$T/kfb"
"$kagi" distill --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --ldpc-f auto --out-alice "$T/kfa" --out-bob "$T/kfb" --json > "$T/dfa.json"
"$kagi" distill --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --ldpc-f 1.5 --out-alice "$T/kf" --out-bob "$T/kfb" --json > "$T/df.json"
check "distill --ldpc-f 1.5: final keys are identical" cmp -s "$T/kf" "$T/kfb"
check "distill --ldpc-f 1.5: more leak, less final key than auto" python3 - "$T/df.json" "$T/dfa.json" <<'PY'
import json, sys
r, a = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert r["reconcile"]["failed_frames"] == 0 and r["verify"]["ok"] is True
assert r["reconcile"]["leak_bits"] > a["reconcile"]["leak_bits"], (r, a)
assert 0 < r["final_bits"] < a["final_bits"], (r["final_bits"], a["final_bits"])
PY

# --threads N: frames are decoded independently, so one thread gives the
# same corrections, leak, iterations and messages as the default.
"$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --threads 1 --out "$T/b1" --json > "$T/r1.json"
check "reconcile --threads 1: corrected key equals Alice's" cmp -s "$T/b1" "$T/a"
check "reconcile --threads 1: same counts as the default" python3 - "$T/r1.json" "$T/rc.json" <<'PY'
import json, sys
r, d = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for k in ("leak_bits", "errors_corrected", "iterations_mean", "iterations_max", "messages", "frames"):
    assert r[k] == d[k], (k, r[k], d[k])
PY
expect_fail "reconcile: --threads 0 refused" 2 "threads: must be at least 1, got 0" "" -- "$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --threads 0
expect_fail "reconcile: --threads 65 refused" 2 "threads: at most 64, got 65" "" -- "$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --threads 65
expect_fail "reconcile: --threads with Cascade refused" 2 "threads goes with --method ldpc" "" -- "$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --threads 2
"$kagi" distill --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --threads 1 --out-alice "$T/kt" --out-bob "$T/ktb" > /dev/null
check "distill --threads 1: final keys are identical" cmp -s "$T/kt" "$T/ktb"

# Too noisy for the plan (told 2%, really 7%): frames fail after the
# reveals, exit 3, no corrected key written.
expect_fail "reconcile ldpc: undecodable frames fail, nothing written" 3 "could not be decoded.*nothing written" "$T/b7c" -- "$kagi" reconcile --alice "$T/a7" --bob "$T/b7" --bits $n --method ldpc --qber 0.02 --out "$T/b7c"
expect_fail "reconcile: unknown method named" 2 "unknown method 'frob' \(known: cascade, ldpc\)" "" -- "$kagi" reconcile --alice "$T/a" --bob "$T/b" --bits $n --method frob
expect_fail "distill: unknown method named" 2 "unknown method 'frob'" "$T/ka" -- "$kagi" distill --alice "$T/a" --bob "$T/b" --bits $n --method frob --out-alice "$T/ka" --out-bob "$T/kb"

# distill --method ldpc in one process.
"$kagi" distill --alice "$T/a" --bob "$T/b" --bits $n --method ldpc --out-alice "$T/ka" --out-bob "$T/kb" --json > "$T/d.json"
check "distill ldpc exits 0" test $? -eq 0
check "distill ldpc: final keys are identical" cmp -s "$T/ka" "$T/kb"
check "distill ldpc: report is consistent" python3 - "$T/d.json" "$T/ka" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1])); rc = r["reconcile"]
assert rc["method"] == "ldpc" and rc["failed_frames"] == 0 and rc["frame_error_rate"] == 0
assert rc["leak_bits"] == rc["syndrome_bits"] - rc["punctured_bits"] + rc["revealed_bits"], rc
assert 1.0 < rc["efficiency"] < 1.6 and rc["iterations_max"] > 0 and rc["messages"] >= 3, rc
assert r["verify"]["ok"] is True and r["auth_bits_consumed"] == 1024
assert os.path.getsize(sys.argv[2]) == (r["final_bits"] + 7) // 8 > 0
PY
expect_fail "distill ldpc: QBER 45% leaves no key" 3 "no secret key" "$T/k45" -- "$kagi" distill --alice "$T/a45" --bob "$T/b45" --bits $n --method ldpc --out-alice "$T/k45" --out-bob "$T/k45b"

# Over TCP through the counting proxy: three frames of ~10^6 bits.
head -c 65536 /dev/urandom > "$T/auth-a"; cp "$T/auth-a" "$T/auth-b"
tcp_run() { # flip-offset alice-method bob-method tag
  local p1=$(( 20000 + RANDOM % 20000 )); local p2=$(( p1 + 1 ))
  cp "$T/auth-a" "$T/aa"; cp "$T/auth-a" "$T/ab"
  rm -f "$T/ta" "$T/tb" "$T/wire.json" "$T/proxy.out"
  "$kagi" distill --role alice --listen 127.0.0.1:$p1 --auth-key "$T/aa" --alice "$T/A" \
    --out-alice "$T/ta" --bits $N --method "$2" --timeout 20 --json > "$T/alice.json" 2> "$T/alice.err" &
  local apid=$!
  python3 "$T/proxy.py" $p2 $p1 "$T/wire.json" "$1" > "$T/proxy.out" 2>&1 &
  local ppid=$!
  for _ in $(seq 50); do grep -q ready "$T/proxy.out" 2>/dev/null && break; sleep 0.1; done
  "$kagi" distill --role bob --connect 127.0.0.1:$p2 --auth-key "$T/ab" --bob "$T/B" \
    --out-bob "$T/tb" --bits $N --method "$3" --timeout 20 --json > "$T/bob.json" 2> "$T/bob.err"
  brc=$?; wait $apid; arc=$?; wait $ppid 2>/dev/null
}
tcp_run -1 ldpc ldpc
check "TCP ldpc: both parties exit 0" test "$arc$brc" = "00"
check "TCP ldpc: the two processes wrote identical keys" cmp -s "$T/ta" "$T/tb"
check "TCP ldpc: auth key files consumed alike, by the six tags" bash -c \
  "cmp -s '$T/aa' '$T/ab' && test \$(stat -c %s '$T/aa') -eq $(( 65536 - 1024 / 8 ))"
check "TCP ldpc: leak and final length follow from the bits on the wire" python3 - "$T/wire.json" "$T/alice.json" "$T/bob.json" <<'PY'
import json, math, sys
w = json.load(open(sys.argv[1])); ra = json.load(open(sys.argv[2])); rb = json.load(open(sys.argv[3]))
assert not w["errors"], w["errors"]
s = w["setup"]
print("     wire: %d frames of %d bits, rate %d, %d syndrome bits in %d messages, %d revealed bits "
      "in %d messages, %d punctured per frame" % (s["frames"], 128 * s["z"], s["rate"], w["syn_bits"],
      w["syn_msgs"], w["revealed_bits"], w["reveal_msgs"], s["punctured"]))
assert s["frames"] == 3 and w["syn_frames"] == 3 and w["syn_msgs"] == 1
leak = w["syn_bits"] - s["frames"] * s["punctured"] + w["revealed_bits"]
for r in (ra, rb):
    rc = r["reconcile"]
    assert rc["syndrome_bits"] == w["syn_bits"], (rc, w)
    assert rc["revealed_bits"] == w["revealed_bits"], (rc, w)
    assert rc["punctured_bits"] == s["frames"] * s["punctured"]
    assert rc["leak_bits"] == leak, (rc["leak_bits"], leak)
    assert rc["frames"] == 3 and rc["failed_frames"] == 0
    # messages: setup + syndrome batches + one ask and one reveal per round + end
    assert rc["messages"] == 1 + w["syn_msgs"] + 2 * w["reveal_msgs"] + 1
    assert rc["channel_uses"] == w["reveal_msgs"] == w["bob_untagged"] - 1
# The plan's QBER: the sample estimate plus one standard deviation
# (docs/ldpc.md, "In the pipeline").
n, k, e = ra["reconcile"]["bits"], ra["sample_bits"], ra["sample_errors"]
q0 = e / k
assert abs(s["qber"] - min(0.11, max(1e-3, q0 + math.sqrt(q0 * (1 - q0) / k)))) < 1e-12, (s["qber"], q0, k)
# The final length: the finite-key bound (docs/security.md) with that leak.
mu = math.sqrt((1 / n + 1 / k) * ((k + 1) / k) * math.log(4 / 1e-10))
q = e / k + mu
h = -q * math.log2(q) - (1 - q) * math.log2(1 - q)
ell = n * (1 - h) - leak - ra["verify"]["tag_bits"] - (1 - 2 * math.log2(1e-10) - math.log2(1e-15))
assert abs(ra["final_bits"] - math.floor(ell)) <= 1, (ra["final_bits"], ell)
assert rb["final_bits"] == ra["final_bits"]
PY

# A byte of the first syndrome flipped on the wire: Bob decodes against a
# wrong syndrome; whatever he concludes, the tag on Alice's verification
# message covers the syndromes, so both fail and neither writes a key.
tcp_run 100 ldpc ldpc
check "TCP ldpc, tampered syndrome: the proxy flipped a byte" grep -q '"flipped": true' "$T/wire.json"
check "TCP ldpc, tampered syndrome: both parties fail" bash -c "[ $arc -ne 0 ] && [ $brc -ne 0 ]"
check "TCP ldpc, tampered syndrome: a party names the cause" grep -qE \
  "tag mismatch|before its messages were authenticated|could not be decoded" "$T/alice.err" "$T/bob.err"
check "TCP ldpc, tampered syndrome: no key file on either side" bash -c "[ ! -e '$T/ta' ] && [ ! -e '$T/tb' ]"

# Alice on LDPC, Bob on Cascade: refused at the hello.
tcp_run -1 ldpc cascade
check "TCP mixed methods: both fail" bash -c "[ $arc -ne 0 ] && [ $brc -ne 0 ]"
check "TCP mixed methods: Alice says why" grep -q "Bob reconciles by Cascade, Alice by LDPC" "$T/alice.err"
check "TCP mixed methods: no key file" bash -c "[ ! -e '$T/ta' ] && [ ! -e '$T/tb' ]"
finish
