#!/usr/bin/env bash
# kagi amplify end to end: output against an independent Python oracle of
# the Toeplitz product, and every bad input: non-zero exit, a message that
# names the problem, and no output file.
# usage: bash tests/cli_amplify.sh path/to/kagi
set -u
KAGI=${1:-build/kagi}
case $KAGI in /*) ;; *) KAGI=$PWD/$KAGI ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }

# Random bit file of NBYTES bytes, reproducible from SEED.
mkbits() { python3 -c 'import random,sys; r=random.Random(int(sys.argv[2])); open(sys.argv[1],"wb").write(bytes(r.randrange(256) for _ in range(int(sys.argv[3]))))' "$@"; }

# The oracle: y_i = XOR_j s[i-j+n-1] & x[j], bits LSB first in each byte,
# written as ceil(m/8) bytes with the unused top bits zero.
oracle() {
  python3 - "$@" <<'EOF'
import sys
seed, key, n, m, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sb, xb = open(seed, "rb").read(), open(key, "rb").read()
bit = lambda b, i: (b[i >> 3] >> (i & 7)) & 1
s = [bit(sb, k) for k in range(n + m - 1)]
x = [bit(xb, j) for j in range(n)]
y = bytearray((m + 7) // 8)
for i in range(m):
    v = 0
    for j in range(n):
        v ^= s[i - j + n - 1] & x[j]
    y[i >> 3] |= v << (i & 7)
open(out, "wb").write(bytes(y))
EOF
}

# Expect success and the oracle's bytes.
check_ok() { # name n m seedbytes keybytes
  local name=$1 n=$2 m=$3
  mkbits "$tmp/s" 1 "$4"; mkbits "$tmp/x" 2 "$5"
  rm -f "$tmp/y" "$tmp/want"
  "$KAGI" amplify --seed "$tmp/s" --in "$tmp/x" --bits "$n" --out-bits "$m" --out "$tmp/y" 2>"$tmp/err"
  local rc=$?
  oracle "$tmp/s" "$tmp/x" "$n" "$m" "$tmp/want"
  if [ $rc -eq 0 ] && cmp -s "$tmp/y" "$tmp/want" && grep -q "$n bits in, $m bits out" "$tmp/err" \
     && grep -q "Mbit/s" "$tmp/err"; then ok "$name"
  else bad "$name (exit $rc)"; cat "$tmp/err"; fi
}

check_ok "n=1000 m=300 matches the oracle" 1000 300 200 125
check_ok "n=77 m=77 matches the oracle" 77 77 20 10
check_ok "n=1 m=1 matches the oracle" 1 1 1 1
check_ok "n=129 m=1 with longer files uses the prefixes" 129 1 40 40
check_ok "n=2000 m=1100 matches the oracle" 2000 1100 400 250

# Expect failure: exit code, a message matching a pattern, no output file.
check_err() { # name want_exit pattern args...
  local name=$1 want=$2 pat=$3; shift 3
  rm -f "$tmp/y"
  "$KAGI" amplify "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -eq "$want" ] && grep -qE -- "$pat" "$tmp/err" && [ ! -e "$tmp/y" ] \
     && [ -z "$(ls "$tmp" | grep '^y\.tmp')" ]; then ok "$name"
  else bad "$name (exit $rc, wanted $want)"; cat "$tmp/err"; fi
}

mkbits "$tmp/s" 3 100; mkbits "$tmp/x" 4 100; : >"$tmp/empty"; mkdir -p "$tmp/dir"
A=(--seed "$tmp/s" --in "$tmp/x" --out "$tmp/y")
check_err "--bits 0 is a usage error" 2 -- "--bits" "${A[@]}" --bits 0 --out-bits 1
check_err "--out-bits 0 is a usage error" 2 -- "--out-bits" "${A[@]}" --bits 10 --out-bits 0
check_err "M > N is a usage error naming both" 2 -- "--out-bits 11 exceeds --bits 10" "${A[@]}" --bits 10 --out-bits 11
check_err "non-numeric --bits is a usage error" 2 -- "--bits: 'ten'" "${A[@]}" --bits ten --out-bits 1
check_err "missing --out is a usage error" 2 -- "--out" --seed "$tmp/s" --in "$tmp/x" --bits 8 --out-bits 4
check_err "missing seed file names it" 1 "$tmp/nope.*cannot open" \
  --seed "$tmp/nope" --in "$tmp/x" --out "$tmp/y" --bits 8 --out-bits 4
check_err "short seed says bits held and needed" 1 "--seed: $tmp/s: file holds 800 bits, 849 bits needed" \
  "${A[@]}" --bits 500 --out-bits 350
mkbits "$tmp/s2" 5 200
check_err "short key says bits held and needed" 1 "--in: $tmp/x: file holds 800 bits, 801 bits needed" \
  --seed "$tmp/s2" --in "$tmp/x" --out "$tmp/y" --bits 801 --out-bits 1
check_err "empty key file is named" 1 "--in: $tmp/empty: file is empty, 8 bits needed" \
  --seed "$tmp/s" --in "$tmp/empty" --out "$tmp/y" --bits 8 --out-bits 4
check_err "unreadable key (a folder) is named" 1 "--in: $tmp/dir: not a regular file" \
  --seed "$tmp/s" --in "$tmp/dir" --out "$tmp/y" --bits 8 --out-bits 4
check_err "output folder missing: no file, message" 1 "$tmp/no/y: cannot create" \
  --seed "$tmp/s" --in "$tmp/x" --out "$tmp/no/y" --bits 8 --out-bits 4
if [ -e "$tmp/no" ]; then bad "no folder was created"; else ok "no folder was created"; fi

# An existing output survives a failed run untouched.
printf 'old' >"$tmp/y"
"$KAGI" amplify "${A[@]}" --bits 801 --out-bits 1 2>/dev/null
if [ "$(cat "$tmp/y")" = old ]; then ok "failed run leaves an existing output alone"
else bad "failed run leaves an existing output alone"; fi
rm -f "$tmp/y"

if "$KAGI" amplify --help | grep -q -- "--out-bits"; then ok "--help lists the options"
else bad "--help lists the options"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
