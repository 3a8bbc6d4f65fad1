#!/usr/bin/env bash
# Runs each test binary (and tests/*.sh) in its own process with a time
# limit, then prints the suite total as "N passed, N failed".
set -u
pass=0; fail=0; broken=()
run_one() {
  local name=$1; shift
  local out; out=$(mktemp)
  local t0=$SECONDS
  timeout "${KAGI_TEST_TIMEOUT:-600}" "$@" >"$out" 2>&1
  local rc=$?
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  if [ -z "$line" ]; then
    echo "!! $name: no result line (exit $rc)"; cat "$out"; broken+=("$name"); fail=$((fail+1))
  else
    local p f; p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    pass=$((pass+p)); fail=$((fail+f))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
      cat "$out"; broken+=("$name")
      [ "$f" -eq 0 ] && fail=$((fail+1))
    fi
    printf '%-28s %s (%ds)\n' "$name" "$line" $((SECONDS-t0))
  fi
  rm -f "$out"
}
for t in "$@"; do run_one "$(basename "$t")" "$t"; done
for s in tests/*.sh; do
  case "$(basename "$s")" in run.sh|cli_common.sh) continue ;; esac
  run_one "$(basename "$s")" bash "$s" "${BUILD:-build}/kagi"
done
[ ${#broken[@]} -gt 0 ] && echo "failing: ${broken[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
