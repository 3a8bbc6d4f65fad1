#!/usr/bin/env bash
# Runs a KME from examples/kme/kme.conf in a temporary folder and makes one
# ETSI GS QKD 014 exchange with curl: SAE_A gets two keys for SAE_B, SAE_B
# fetches them by key_ID, and a second fetch is refused.
#   examples/kme/demo.sh [path/to/kagi]
set -euo pipefail
kagi=$(realpath "${1:-build/kagi}")
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/kagi-kme-demo.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
cd "$dir"
sed 's/^listen .*/listen      = 127.0.0.1:0/' "$here/kme.conf" > kme.conf
mkdir spool
"$kagi" kme --make-pki pki --names KME_A,SAE_A,SAE_B
"$kagi" kme --new-store-key store.key
"$kagi" kme --config kme.conf --check
"$kagi" kme --config kme.conf & pid=$!
for _ in $(seq 100); do [ -s ready ] && break; sleep 0.05; done
url=https://$(cat ready)/api/v1/keys
sleep 0.5   # let the simulated link fill the pool
A="curl -s --cacert pki/ca.pem --cert pki/SAE_A.pem --key pki/SAE_A.key"
B="curl -s --cacert pki/ca.pem --cert pki/SAE_B.pem --key pki/SAE_B.key"
echo "== status (SAE_A about SAE_B)"; $A "$url/SAE_B/status"; echo
echo "== enc_keys (SAE_A)"; keys=$($A -H 'Content-Type: application/json' -d '{"number":2}' "$url/SAE_B/enc_keys")
echo "$keys"
ids=$(python3 -c 'import json,sys; print(json.dumps({"key_IDs":[{"key_ID":k["key_ID"]} for k in json.load(sys.stdin)["keys"]]}))' <<<"$keys")
echo "== dec_keys (SAE_B)"; $B -H 'Content-Type: application/json' -d "$ids" "$url/SAE_A/dec_keys"; echo
echo "== dec_keys again (SAE_B): refused"; $B -w ' (HTTP %{http_code})' -H 'Content-Type: application/json' -d "$ids" "$url/SAE_A/dec_keys"; echo
kill -TERM "$pid"; wait "$pid"; pid=
echo "== the log (no key material in it)"; cat kme.log
