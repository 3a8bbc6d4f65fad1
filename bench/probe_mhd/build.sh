#!/bin/sh
# Build the libmicrohttpd probe: bench/probe_mhd/build.sh [OUTDIR]
# Needs: apt-get install libmicrohttpd-dev libgnutls28-dev libssl-dev
set -e
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../build/probe_mhd"}
mkdir -p "$out"
CFLAGS="-O2 -g -std=c11 -Wall -Wextra -Werror -pthread"
cc $CFLAGS "$here/mhd_server.c" -o "$out/mhd_server" -lmicrohttpd -lgnutls -lsqlite3
echo "built $out/mhd_server (the load client is build/bench/bench_kme --port P --pki DIR --pid PID)"
# The same server over kagi's real key store (needs `make build/libkagi.a`;
# a copy is taken so concurrent rebuilds do not change it).
root="$here/../.."
if [ -f "$root/build/libkagi.a" ]; then
    cp "$root/build/libkagi.a" "$out/libkagi.a"
    cc $CFLAGS -DWITH_KAGI_STORE -I"$root/include" "$here/mhd_server.c" -o "$out/mhd_server_kagi" \
        "$out/libkagi.a" -lmicrohttpd -lgnutls -ljansson -lsqlite3 -lssl -lcrypto -lyaml -lgf2x -lm
    echo "built $out/mhd_server_kagi"
fi
