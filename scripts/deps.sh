#!/usr/bin/env bash
# Installs the Debian packages kagi builds and tests with, when missing.
set -euo pipefail
# python3 runs the command-line tests' oracles and the tampering proxy;
# libyaml-dev reads scenario files (kagi sim); the KME (kagi kme) stores keys with
# libsqlite3-dev, parses JSON with libjansson-dev, and its tests use openssl and
# curl (a PKI, an independent client) and clang (libFuzzer harnesses); the
# dashboard's browser test (tests/dashboard_e2e.sh) drives chromium with
# playwright-core, which it installs from the npm registry with npm.
pkgs=(make gcc libc6-dev pkg-config libssl-dev libgf2x-dev libyaml-dev python3 python3-sgp4 libjansson-dev libsqlite3-dev openssl curl clang chromium)
# node and npm by command, not by package: a machine may have them from
# elsewhere (NodeSource's nodejs ships npm and conflicts with Debian's npm)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "kagi: installing missing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
