# Shared helpers for the command-line tests (sourced, not run).
kagi=${1:-build/kagi}
T=$(mktemp -d /tmp/kagi-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
# expect_fail NAME CODE PATTERN OUTFILE -- command...: exit code, message, no output file
expect_fail() {
  local name=$1 code=$2 pat=$3 out=$4; shift 5
  "$@" >"$T/stdout" 2>"$T/stderr"; local rc=$?
  if [ "$rc" -ne "$code" ]; then bad "$name (exit $rc, expected $code: $(head -c 300 "$T/stderr"))"; return; fi
  if ! grep -qiE -- "$pat" "$T/stderr"; then bad "$name (message '$(head -c 300 "$T/stderr")' lacks /$pat/)"; return; fi
  if [ -n "$out" ] && [ -e "$out" ]; then bad "$name (left $out behind)"; return; fi
  if [ -n "$out" ] && ls "$out".tmp.* >/dev/null 2>&1; then bad "$name (left a temporary file)"; return; fi
  ok "$name"
}
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
