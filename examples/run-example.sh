#!/usr/bin/env bash
# The built-in example: a 10^6-bit sifted pair at 2% QBER, distilled end to
# end in one process, then again as two processes over TCP on loopback.
set -euo pipefail
kagi=${1:-build/kagi}
dir=$(mktemp -d /tmp/kagi-example.XXXXXX)
trap 'rm -rf "$dir"' EXIT
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
