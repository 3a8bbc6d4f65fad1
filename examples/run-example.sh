#!/usr/bin/env bash
# The built-in example: first kagi's main job, a network simulation (a
# satellite joining a Tokyo and a Vienna network for a week); then one
# fibre link's predicted key rate, the same link simulated pulse by pulse
# and its raw detections distilled (the length against the prediction),
# and a 10^6-bit sifted pair at 2% QBER distilled in one process and again
# as two processes over TCP on loopback; last, a testbed of four real KMEs
# relays a key across three links.
set -euo pipefail
kagi=${1:-build/kagi}
dir=$(mktemp -d /tmp/kagi-example.XXXXXX)
trap 'rm -rf "$dir"' EXIT
here=$(cd "$(dirname "$0")" && pwd)
echo "== a week of an intercontinental QKD network: Tokyo and Vienna joined by a satellite (kagi sim)"
"$kagi" sim "$here/intercontinental.yaml" --out "$dir/sim"
echo "(the report, with the map and charts, is written to report.html; run"
echo " 'kagi sim examples/intercontinental.yaml --out DIR' to keep it)"
echo
echo "== key rate of decoy BB84 over fibre, 10^7-bit blocks (kagi keyrate)"
"$kagi" keyrate --decoys 2 --finite 1e7 --distance 25:150:25 --plot "$dir/keyrate.svg"
echo
echo "== 50 km simulated event by event, 5.5e9 pulses (kagi link simulate)"
"$kagi" link simulate --distance 50 --pulses 5.5e9 --seed 1 --out-alice "$dir/alice.raw" \
  --out-bob "$dir/bob.raw"
echo
echo "== its raw detections sifted, bounded with the decoy states and distilled (kagi distill --raw)"
"$kagi" distill --raw --alice "$dir/alice.raw" --bob "$dir/bob.raw" \
  --out-alice "$dir/raw-final-alice.bits" --out-bob "$dir/raw-final-bob.bits" --json >"$dir/raw.json"
cmp "$dir/raw-final-alice.bits" "$dir/raw-final-bob.bits" && echo "final keys identical"
python3 - "$dir/raw.json" "$kagi" <<'PY'
import json, subprocess, sys
d = json.load(open(sys.argv[1]))
r = json.loads(subprocess.run([sys.argv[2], "keyrate", "--decoys", "2", "--distance", "50",
    "--finite", str(d["sifted_bits"]), "--ec-efficiency", str(d["reconcile"]["efficiency"]),
    "--json"], check=True, capture_output=True, text=True).stdout)[0]
want = r["key_rate_per_pulse"] * r["block_pulses"]
print("%d sifted bits, QBER %.2f%%, Cascade f = %.3f: %d final bits; kagi keyrate predicts %.0f (%+.2f%%)"
      % (d["sifted_bits"], 100 * d["qber_z"], d["reconcile"]["efficiency"], d["final_bits"], want,
         100 * (d["final_bits"] / want - 1)))
PY
echo
n=1000000
echo "== a sifted pair: $n bits, 2% errors"
"$kagi" pair --bits $n --qber 0.02 --seed 7 --out-alice "$dir/alice.bits" --out-bob "$dir/bob.bits"
echo
echo "== distill in one process (kagi distill --alice ... --bob ...)"
"$kagi" distill --alice "$dir/alice.bits" --bob "$dir/bob.bits" --bits $n \
  --out-alice "$dir/final-alice.bits" --out-bob "$dir/final-bob.bits"
cmp "$dir/final-alice.bits" "$dir/final-bob.bits" && echo "final keys identical: $(stat -c %s "$dir/final-alice.bits") bytes"
echo
echo "== the same pipeline as two processes over TCP (127.0.0.1), pre-shared auth key"
head -c 65536 /dev/urandom > "$dir/auth.key"; cp "$dir/auth.key" "$dir/auth-bob.key"
port=$(( 20000 + RANDOM % 20000 ))
"$kagi" distill --role alice --listen 127.0.0.1:$port --auth-key "$dir/auth.key" \
  --alice "$dir/alice.bits" --out-alice "$dir/tcp-alice.bits" --bits $n > "$dir/alice.log" &
pid=$!
"$kagi" distill --role bob --connect 127.0.0.1:$port --auth-key "$dir/auth-bob.key" \
  --bob "$dir/bob.bits" --out-bob "$dir/tcp-bob.bits" --bits $n
wait $pid
cmp "$dir/tcp-alice.bits" "$dir/tcp-bob.bits" && echo "TCP final keys identical: $(stat -c %s "$dir/tcp-alice.bits") bytes"
cmp -s "$dir/auth.key" "$dir/auth-bob.key" && echo "authentication key files agree: $(stat -c %s "$dir/auth.key") bytes left of 65536"
echo
echo "== a network of real KMEs (kagi testbed): alice at Otemachi gets a key for bob at Koganei,"
echo "   three links and two trusted relays away; bob fetches the same key from his own KME"
tb="$dir/testbed"
"$kagi" testbed "$here/testbed.yaml" --dir "$tb" > "$dir/testbed.log" 2>&1 &
tpid=$!
trap 'kill -TERM $tpid 2>/dev/null; wait $tpid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 200); do [ -f "$tb/endpoints.json" ] && break; sleep 0.1; done
python3 - "$tb/endpoints.json" <<'PY'
import base64, http.client, json, ssl, sys
e = json.load(open(sys.argv[1]))
p = e["pairs"][0]
def call(who, url, path):
    c = ssl.create_default_context(cafile=e["ca"])
    c.load_cert_chain(who["cert"], who["key"])
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    h = http.client.HTTPSConnection(host, int(port), context=c, timeout=20)
    h.request("GET", path)
    r = h.getresponse()
    return r.status, json.loads(r.read())
m, s = p["master"], p["slave"]
st, got = call(m, m["kme_url"], "/api/v1/keys/%s/enc_keys?number=2" % s["id"])
assert st == 200, (st, got)
ids = ",".join(k["key_ID"] for k in got["keys"])
st2, back = call(s, s["kme_url"], "/api/v1/keys/%s/dec_keys?key_ID=%s" % (m["id"], got["keys"][0]["key_ID"]))
assert st2 == 200, (st2, back)
same = back["keys"][0]["key"] == got["keys"][0]["key"]
print("%s at %s: enc_keys for %s -> 2 keys (%d hops); %s at %s: dec_keys -> %s"
      % (m["id"], m["kme"], s["id"], p["hops"], s["id"], s["kme"], "the same key" if same else "A DIFFERENT KEY"))
sys.exit(0 if same else 1)
PY
kill -TERM $tpid; wait $tpid && echo "testbed stopped cleanly (4 KMEs)"
trap 'rm -rf "$dir"' EXIT
