#!/usr/bin/env bash
# Instructions per enc_keys request, counted by callgrind (deterministic,
# unlike the shared VM's clock): the KME and bench_kme both run under
# callgrind; the KME is counted between `callgrind_control -z` and `-d`
# while under load, the load tool in its worker threads (run_worker).
#
#   bench/callgrind_kme.sh [KAGI [BENCH_KME [SECONDS]]]
#   (defaults build/kagi, build/bench/bench_kme, 20; docs/kme.md "Performance")
#
# The store is filled first without valgrind (8 blocks of 1 MiB: 262,144
# keys of 256 bits). Throughput under callgrind is a few hundred requests/s,
# so batches hold 2-3 operations: the per-transaction cost is printed apart.
set -eu
KAGI=$(realpath "${1:-build/kagi}")
BENCH=$(realpath "${2:-build/bench/bench_kme}")
SECS=${3:-20}
D=$(mktemp -d /tmp/kagi-cg.XXXXXX)
trap 'rm -rf "$D"' EXIT
mkdir "$D/spool"
"$KAGI" kme --make-pki "$D" --names KME_A,SAE_A,SAE_B >/dev/null
"$KAGI" kme --new-store-key "$D/store.key" >/dev/null
python3 - "$D/spool" <<'PY'
import os, struct, sys
for i in range(1, 9):
    n = 32768 * 32
    blk = b'KAGIBLK1' + struct.pack('<QI', i, n) + b'loop'.ljust(32, b'\0') + os.urandom(n)
    with open(os.path.join(sys.argv[1], '%08d.key' % i), 'wb') as f:
        f.write(blk)
PY
cat >"$D/kme.conf" <<EOF
kme_id = KME_A
listen = 127.0.0.1:0
cert = $D/KME_A.pem
key = $D/KME_A.key
client_ca = $D/ca.pem
store = $D/kme.db
store_key = $D/store.key
ready_file = $D/ready
log = $D/kme.log
max_key_count = 10000000
sae = SAE_A
sae = SAE_B
[link loop]
peer = KME_A
source = dir
dir = $D/spool
poll_ms = 20
EOF
"$KAGI" kme --config "$D/kme.conf" & P=$!
for _ in $(seq 600); do ls "$D"/spool/*.key >/dev/null 2>&1 || break; sleep 0.1; done
sleep 0.5
kill -TERM $P; wait $P
rm -f "$D/kme.log" "$D/ready"

valgrind --tool=callgrind --callgrind-out-file="$D/kme.cg.%p" "$KAGI" kme --config "$D/kme.conf" 2>"$D/vg-kme.err" & KP=$!
for _ in $(seq 300); do [ -s "$D/ready" ] && break; sleep 0.2; done
PORT=$(cut -d: -f2 "$D/ready")
valgrind --tool=callgrind --toggle-collect=run_worker --callgrind-out-file="$D/bench.cg" \
    "$BENCH" --port "$PORT" --pki "$D" --connections 8 --threads 1 --seconds "$SECS" >"$D/bench.out" 2>"$D/vg-bench.err" & BP=$!
served() { grep -c 'enc_keys SAE_A -> SAE_B: 200' "$D/kme.log" || true; }
sleep 8 # past the load tool's eight handshakes
L0=$(served)
callgrind_control -z $KP >/dev/null
sleep 10
callgrind_control -d $KP >/dev/null
L1=$(served)
wait $BP
LT=$(served)
kill -TERM $KP; wait $KP || true
grep -q 'errors 0' "$D/bench.out" || { echo "callgrind_kme: the load tool saw errors:"; cat "$D/bench.out"; exit 1; }
python3 - "$D" $((L1 - L0)) "$LT" <<'PY'
import glob, re, subprocess, sys
d, n, nt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
part = [f for f in glob.glob(d + '/kme.cg.*') if re.search(r'\.\d+\.1$', f)][0]
def tree(f):
    return subprocess.run(['callgrind_annotate', '--inclusive=yes', '--tree=calling', '--threshold=100', f],
                          capture_output=True, text=True).stdout.split('\n')
def total(f):
    for l in open(f):
        if l.startswith('summary:') or l.startswith('totals:'):
            return int(l.split()[1])
def num(l): return int(l.split()[0].replace(',', ''))
def calls(l): return int(re.search(r'\(([0-9,]+)x\)', l).group(1).replace(',', ''))
t = tree(part)
def own(fn):  # inclusive cost of fn and its direct callees
    for i, l in enumerate(t):
        if '*  ' in l and (':' + fn + ' [') in l:
            out = [l]
            for m in t[i + 1:]:
                if not re.match(r'^\s*[0-9,]+ .*>', m): break
                out.append(m)
            return out
    return []
kme = total(part)
print(f"KME: {kme / n:,.0f} instructions per request ({n} requests counted)")
for th in ('kagi__worker_main', 'kagi__committer', 'kagi__checkpointer', 'kagi__syncer', 'kagi__dir_main'):
    b = own(th)
    if b: print(f"  {th:20s} {num(b[0]) / n:8,.0f}")
b = own('kagi__batch')
ex = [l for l in b if ':kagi__exec (' in l]
if ex:
    txn = calls(ex[0]) // 2
    com = own('kagi__committer')
    print(f"  committer: {txn} transactions, {n / txn:.2f} requests each; BEGIN+COMMIT {num(ex[0]) / txn:,.0f} "
          f"per transaction; the rest {(num(com[0]) - num(ex[0])) / n:,.0f} per request")
print(f"load tool: {total(d + '/bench.cg') / nt:,.0f} instructions per request (run_worker, {nt} requests)")
PY
