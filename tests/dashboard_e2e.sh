# Browser test of the dashboard (docs/dashboard.md; tests/dashboard/e2e.js
# has the checks): kagi sim --serve on a free port, the page in headless
# Chromium driven by playwright-core, a screenshot in BUILD/test-out.
# Installs what it lacks: Debian's chromium, nodejs and npm (apt-get, as
# root or through sudo), and playwright-core at the version pinned in
# tests/dashboard/package-lock.json into a cache folder (npm ci, nothing
# written into the tree). In CI (CI=true) a missing piece fails the test;
# elsewhere it skips with a message saying what to install.
set -u
kagi=${1:-build/kagi}
here=$(cd "$(dirname "$0")" && pwd)
out="${BUILD:-build}/test-out"
chromium=${KAGI_CHROMIUM:-/usr/bin/chromium}
unavailable() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL dashboard_e2e: $1"; echo "0 passed, 1 failed"; exit 1
  fi
  echo "skipped dashboard_e2e: $1"; echo "0 passed, 0 failed"; exit 0
}
need=()
[ -x "$chromium" ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || unavailable "needs ${need[*]} (apt-get install ${need[*]}, or scripts/deps.sh)"
    SUDO="sudo -n"
  fi
  echo "dashboard_e2e: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null 2>&1 ||
    unavailable "cannot install ${need[*]} with apt-get"
fi
[ -x "$chromium" ] || unavailable "no browser at $chromium (KAGI_CHROMIUM names another)"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$major" -ge 20 ] 2>/dev/null || unavailable "node $(node --version 2>/dev/null) is too old for playwright-core 1.65 (20 or later)"
cache=${KAGI_NODE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/kagi/dashboard-e2e}
if ! cmp -s "$here/dashboard/package-lock.json" "$cache/package-lock.json" ||
   [ ! -f "$cache/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$cache" && cp "$here/dashboard/package.json" "$here/dashboard/package-lock.json" "$cache/" &&
    (cd "$cache" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null 2>&1) ||
    { rm -f "$cache/package-lock.json"; unavailable "npm ci of playwright-core into $cache failed"; }
fi
NODE_PATH="$cache/node_modules" exec node "$here/dashboard/e2e.js" "$kagi" "$out"
