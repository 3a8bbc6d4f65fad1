# The KME's libFuzzer harnesses (fuzz/), a few seconds each, when clang is
# installed: `make fuzz` with FUZZ_SECONDS=3. Oracles: the sanitizers and
# the harnesses' own checks (an abort is a finding); each must run.
. "$(dirname "$0")/cli_common.sh"
cd "$(dirname "$0")/.."
if ! command -v clang >/dev/null 2>&1; then
  echo "clang not installed: fuzzing skipped (scripts/deps.sh installs it)"
  finish
  exit
fi
make -s fuzz FUZZ_SECONDS="${KAGI_FUZZ_SECONDS:-3}" >"$T/fuzz.log" 2>&1
rc=$?
check "make fuzz exits 0 (no crash, leak or failed check)" test "$rc" -eq 0
for f in fuzz/fuzz_*.c; do
  n=$(basename "$f" .c)
  check "$n ran (libFuzzer 'Done N runs', N > 1000)" \
    bash -c "awk '/== build-fuzz\/$n,/{on=1} on && /^Done [0-9]+ runs/{print \$2; exit}' '$T/fuzz.log' | awk '{exit !(\$1 > 1000)}'"
done
[ "$rc" -ne 0 ] && tail -40 "$T/fuzz.log"
finish
