# Command-line tests of kagi link simulate. Oracles: a Python decoder of
# the raw files written from docs/raw-format.md (record counts, sifted bits
# and errors against the JSON report), cmp for reproducibility, exit codes,
# one-line messages naming the parameter, and absent files.
. "$(dirname "$0")/cli_common.sh"
A="$T/a.raw"; B="$T/b.raw"
run() { "$kagi" link simulate --seed 7 --out-alice "$A" --out-bob "$B" "$@"; }

# Bad parameters: exit 2, one line naming the parameter, neither file.
bad_param() { # name pattern args...
  local name=$1 pat=$2; shift 2
  rm -f "$A" "$B"
  expect_fail "$name" 2 "$pat" "$A" -- "$@"
  local lines; lines=$(wc -l <"$T/stderr")
  [ "$lines" -eq 1 ] || bad "$name: $lines lines of message"
  [ -e "$B" ] && bad "$name: left $B"
  ls "$B".tmp.* >/dev/null 2>&1 && bad "$name: left a temporary file of $B"
}
bad_param "negative fibre loss" "link: --fiber-loss" run --distance 50 --pulses 1000 --fiber-loss -0.2
bad_param "efficiency above 1" "link: --detector-efficiency.*1.5" run --distance 50 --pulses 1000 --detector-efficiency 1.5
bad_param "decoy above the signal" "link: --decoy-mu: 0.6 is not below the signal --mu 0.45" run --distance 50 --pulses 1000 --decoy-mu 0.6
bad_param "vacuum above the decoy" "link: --vacuum-mu" run --distance 50 --pulses 1000 --vacuum-mu 0.2
bad_param "--pulses 0" "link: --pulses: must be at least 1" run --distance 50 --pulses 0
bad_param "--pulses not a number" "link: --pulses: 'many' is not a whole number" run --distance 50 --pulses many
bad_param "missing --out-bob" "missing required option '--out-bob" \
  "$kagi" link simulate --seed 7 --out-alice "$A" --distance 50 --pulses 1000
bad_param "missing --distance" "missing required option '--distance" run --pulses 1000
bad_param "negative distance" "link: --distance" run --distance -5 --pulses 1000
bad_param "--eve above 1" "link: --eve" run --distance 50 --pulses 1000 --eve 1.5
bad_param "--pulses and --seconds together" "link: --pulses and --seconds exclude each other" run --distance 50 --pulses 10 --seconds 1
bad_param "neither --pulses nor --seconds" "missing --pulses N or --seconds S" run --distance 50
bad_param "--seconds under one pulse" "link: --seconds: 1e-12 s at --clock 1e\+?0*9 Hz is less than one pulse" run --distance 50 --seconds 1e-12
bad_param "misalignment above 1/2" "link: --misalignment" run --distance 50 --pulses 1000 --misalignment 0.7
bad_param "--p-mu not two numbers" "link: --p-mu" run --distance 50 --pulses 1000 --p-mu 0.5
bad_param "dark count of 1" "link: --dark-count" run --distance 50 --pulses 1000 --dark-count 1
bad_param "same file for both" "must differ" "$kagi" link simulate --seed 7 --out-alice "$A" --out-bob "$A" --distance 5 --pulses 1000
bad_param "no subcommand" "missing subcommand .simulate. before .--distance." "$kagi" link --distance 50
bad_param "unknown subcommand" "unknown subcommand 'run'" "$kagi" link run --distance 50

# Unwritable output: runtime failure, exit 1, no files at all.
expect_fail "missing output folder" 1 "$T/no/b.raw: cannot create" "$A" -- \
  "$kagi" link simulate --seed 1 --distance 50 --pulses 1000 --out-alice "$A" --out-bob "$T/no/b.raw"
check "no folder appears" test ! -e "$T/no"

# An existing output survives a failed run untouched.
printf 'old' >"$A"
run --distance 50 --pulses 0 2>/dev/null
check "a failed run leaves an existing file alone" test "$(cat "$A")" = old
rm -f "$A"

# A run: JSON report, and the files decoded independently agree with it.
run --distance 25 --pulses 2e7 --eve 0.2 --dead-time 5e-9 --json >"$T/r.json" 2>"$T/err"
check "simulate exits 0" test $? -eq 0
check "both files written, owner-only" bash -c "[ \"\$(stat -c %a '$A')\" = 600 ] && [ \"\$(stat -c %a '$B')\" = 600 ]"
check "files and report agree (Python decoder of docs/raw-format.md)" python3 - "$A" "$B" "$T/r.json" <<'PY'
import json, struct, sys
def load(path):
    d = open(path, "rb").read()
    assert d.startswith(b"kagi-raw 1\n"), "magic"
    end = d.index(b"\nend\n") + 5
    hdr = dict(l.split(" ", 1) for l in d[11:end - 5].decode().split("\n"))
    count, nbytes = struct.unpack("<QQ", d[-24:-8])
    assert d[-8:] == b"kagi-end" and nbytes == len(d) - 24 - end, "trailer"
    fb = 4 if hdr["role"] == "alice" else 2
    recs, i, nxt = [], end, 0
    while i < len(d) - 24:
        v, sh = 0, 0
        while True:
            b = d[i]; i += 1
            v |= (b & 0x7f) << sh; sh += 7
            if not b & 0x80: break
        idx = nxt + (v >> fb)
        recs.append((idx, v & 1, (v >> 1) & 1, (v >> 2) & 3 if fb == 4 else 0))
        nxt = idx + 1
    assert len(recs) == count, "count"
    assert all(r[0] < int(hdr["pulses"]) for r in recs), "index past the pulses"
    return hdr, recs
ha, ra = load(sys.argv[1]); hb, rb = load(sys.argv[2])
r = json.load(open(sys.argv[3]))
assert ha["role"] == "alice" and hb["role"] == "bob"
assert ha["pulses"] == hb["pulses"] == "20000000" == str(r["pulses"])
assert ha["seed"] == "7" and ha["eve"] == "0.2" and ha["distance_km"] == "25" and ha["dead_time_s"] == "5e-09"
assert [x[0] for x in ra] == [x[0] for x in rb], "same pulses"
assert len(ra) == r["detections"] == sum(r["by_class"])
assert [sum(1 for x in ra if x[3] == k) for k in range(3)] == r["by_class"]
for basis, key in ((0, "x"), (1, "z")):
    pairs = [(a, b) for a, b in zip(ra, rb) if a[1] == b[1] == basis]
    assert len(pairs) == r["sifted_" + key], key
    assert sum(a[2] != b[2] for a, b in pairs) == r["errors_" + key], key
# Dead time 5 ns at 1 GHz: clicks at least 6 pulses apart.
assert min(b[0] - a[0] for a, b in zip(ra, ra[1:])) >= 6
assert r["dead_pulses"] <= 5 * r["detections"]
assert r["pulses_per_second"] > 0 and r["alice_bytes"] > 0
PY

# Same seed, same files; another seed, other files.
cp "$A" "$T/a1"; cp "$B" "$T/b1"
run --distance 25 --pulses 2e7 --eve 0.2 --dead-time 5e-9 2>/dev/null
check "same seed gives the same files" bash -c "cmp -s '$A' '$T/a1' && cmp -s '$B' '$T/b1'"
"$kagi" link simulate --seed 8 --out-alice "$A" --out-bob "$B" --distance 25 --pulses 2e7 --eve 0.2 --dead-time 5e-9 2>/dev/null
check "another seed gives other files" bash -c "! cmp -s '$A' '$T/a1' && ! cmp -s '$B' '$T/b1'"

# --seconds: S times the clock; the summary with units on stderr.
run --distance 50 --seconds 0.01 --clock 2e9 2>"$T/err"
check "--seconds 0.01 at 2 GHz is 2e7 pulses" grep -q "^pulses 20000000$" "$A"
check "summary names detections, QBER per basis and speed" bash -c \
  "grep -q 'detections: ' '$T/err' && grep -q 'X .* bits, QBER .*%; Z .* bits, QBER .*%' '$T/err' && grep -q 'pulses/s' '$T/err'"
check "no temporary files are left" bash -c "! ls '$T' | grep -q '\.tmp\.'"
check "--help lists the link options" bash -c "'$kagi' link --help | grep -q -- '--detector-efficiency'"
check "help names the subcommand" bash -c "'$kagi' help link | grep -q 'kagi link simulate'"
finish
