#!/bin/bash
# Rerun the libmicrohttpd probe: bench/probe_mhd/run_probe.sh [OUTDIR] [REPEATS]
# Run from the repository root after `make build/kagi build/libkagi.a build/bench/bench_kme`.
# Copies build/kagi and build/bench/bench_kme to OUTDIR (so concurrent rebuilds
# do not change the binaries mid-run), builds the probe there, makes a P-256
# PKI, and runs each configuration REPEATS times (default 3), each after
# waiting (up to 60 s) for the machine to be quiet (< 25% of a core busy).
# PROBE_ONLY="mhd1 kagi400 ..." picks configurations (see the case below);
# SECONDS_PER_RUN (default 5) sets the measured time of each run.
# Every run's full output goes to OUTDIR/results.txt.
set -u
root=$(pwd)
out=${1:-/tmp/probe_mhd}
reps=${2:-3}
secs=${SECONDS_PER_RUN:-5}
mkdir -p "$out"
cp build/kagi build/bench/bench_kme "$out/" || exit 1   # build.sh copies build/libkagi.a
"$root/bench/probe_mhd/build.sh" "$out" || exit 1
cd "$out" || exit 1
[ -f pki/ca.pem ] || ./kagi kme --make-pki "$out/pki" --names KME_A,SAE_A,SAE_B >/dev/null || exit 1
res="$out/results.txt"
: >"$res"

busy() { # CPU seconds the machine was busy (all cores) over 1 s
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    echo $(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
}
wait_quiet() {
    local hz; hz=$(getconf CLK_TCK)
    for _ in $(seq 60); do
        [ "$(busy)" -le $((hz / 4)) ] && return 0
    done
    echo "  (machine not quiet after 60 s; running anyway)" | tee -a "$res"
}
header() { echo; echo "=== $1 [$(date -u +%H:%M:%S)]" | tee -a "$res"; }

run_mhd() { # name, server args, load args[, server binary]
    local name=$1 sargs=$2 largs=$3 bin=${4:-mhd_server}
    mkdir -p "$out/kstore"
    for i in $(seq "$reps"); do
        ./$bin --pki pki $sargs >mhd.out 2>mhd.err & local spid=$!
        for _ in $(seq 400); do grep -q '^port' mhd.out 2>/dev/null && break; sleep 0.05; done
        local port; port=$(awk '/^port/{print $2}' mhd.out)
        wait_quiet
        header "$name run $i: ./$bin --pki pki $sargs ; ./bench_kme --threads 1 --port P --pki pki --pid SPID $largs"
        sed -n 2p mhd.out | tee -a "$res"
        ./bench_kme --threads 1 --port "$port" --pki pki --pid "$spid" --seconds "$secs" $largs 2>&1 | tee -a "$res"
        kill "$spid"; wait "$spid" 2>/dev/null
        cat mhd.err | tee -a "$res"
    done
}

run_kagi400() { # name, load args: kagi kme refusing every request (master == slave) before the store
    local name=$1 largs=$2 d="$out/kme400"
    for i in $(seq "$reps"); do
        rm -rf "$d"; mkdir -p "$d/spool"
        ./kagi kme --new-store-key "$d/store.key" >/dev/null 2>&1
        cat >"$d/kme.conf" <<CONF
kme_id = KME_A
listen = 127.0.0.1:0
cert = $out/pki/KME_A.pem
key = $out/pki/KME_A.key
client_ca = $out/pki/ca.pem
store = $d/kme.db
store_key = $d/store.key
ready_file = $d/ready
log = $d/kme.log
log_level = info
workers = 1
max_connections = 4096
sae = SAE_A
sae = SAE_B
[link loop]
peer = KME_A
source = dir
dir = $d/spool
poll_ms = 20
CONF
        ./kagi kme --config "$d/kme.conf" & local kpid=$!
        for _ in $(seq 200); do [ -s "$d/ready" ] && break; sleep 0.05; done
        local port; port=$(sed 's/.*://' "$d/ready")
        wait_quiet
        header "$name run $i: kagi kme (workers=1) ; ./bench_kme --threads 1 --port P --pki pki --pid KPID --slave SAE_A --expect 400 $largs"
        ./bench_kme --threads 1 --port "$port" --pki pki --pid "$kpid" --seconds "$secs" --slave SAE_A --expect 400 $largs 2>&1 | tee -a "$res"
        kill "$kpid"; wait "$kpid" 2>/dev/null
    done
}

run_bench_kme() { # name, bench_kme args
    local name=$1 bargs=$2
    for i in $(seq "$reps"); do
        wait_quiet
        header "$name run $i: bench_kme $bargs --kagi ./kagi --seconds $secs"
        ./bench_kme $bargs --kagi ./kagi --seconds "$secs" 2>&1 | tee -a "$res"
    done
}

what=${PROBE_ONLY:-mhd1 mhdt mhd2 mhd1x64 mhdv kagi400 mhds mhds64 mhdk mhdkt mhdk64 kagi kagi64}
for w in $what; do
    case $w in
    mhd1) run_mhd "MHD+GnuTLS, 1 epoll thread, 32 conns" "" "--connections 32 --threads 1" ;;
    mhd1x64) run_mhd "MHD+GnuTLS, 1 epoll thread, 64 conns" "" "--connections 64 --threads 1" ;;
    mhdt) run_mhd "MHD+GnuTLS, 1 epoll thread, MHD_USE_TURBO, 32 conns" "--turbo" "--connections 32 --threads 1" ;;
    mhdkt) run_mhd "MHD+GnuTLS, 1 epoll thread, MHD_USE_TURBO + kagi's real store (libkagi.a), 32 conns" "--turbo --kagi-store $out/kstore --store-keys 400000" "--connections 32 --threads 1" mhd_server_kagi ;;
    mhd2) run_mhd "MHD+GnuTLS, epoll thread pool of 2, 32 conns" "--threads 2" "--connections 32 --threads 1" ;;
    mhds) run_mhd "MHD+GnuTLS, 1 epoll thread + SQLite store thread (durable, group commit), 32 conns" "--store $out/mhd.db" "--connections 32 --threads 1" ;;
    mhds64) run_mhd "MHD+GnuTLS, 1 epoll thread + SQLite store thread (durable, group commit), 64 conns" "--store $out/mhd.db" "--connections 64 --threads 1" ;;
    mhdk) run_mhd "MHD+GnuTLS, 1 epoll thread + kagi's real store (libkagi.a), 32 conns" "--kagi-store $out/kstore --store-keys 400000" "--connections 32 --threads 1" mhd_server_kagi ;;
    mhdk64) run_mhd "MHD+GnuTLS, 1 epoll thread + kagi's real store (libkagi.a), 64 conns" "--kagi-store $out/kstore --store-keys 400000" "--connections 64 --threads 1" mhd_server_kagi ;;
    mhdv) run_mhd "MHD+GnuTLS, 1 epoll thread, verify+CN every request, 32 conns" "--verify-each-request" "--connections 32 --threads 1" ;;
    kagi400) run_kagi400 "kagi KME, 400 before the store (HTTP+TLS+ETSI+log only), 32 conns" "--connections 32 --threads 1" ;;
    kagi) run_bench_kme "kagi KME full (durable store), 32 conns" "--connections 32 --threads 1" ;;
    kagi64) run_bench_kme "kagi KME full (durable store), 64 conns" "--connections 64 --threads 1" ;;
    esac
done
echo; echo "summary:"; grep -E '^===|RESULT|requests/s|latency|CPU per request|^mhd ' "$res"
