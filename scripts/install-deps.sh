#!/usr/bin/env bash
# Installs every Debian 12 package that the build, the tests, the fuzzers and the benchmarks need.
# Idempotent: only missing packages are installed, and the package index is refreshed only then.
set -euo pipefail

PKGS=(
  build-essential g++ cmake ninja-build pkg-config git
  clang libclang-rt-14-dev llvm
  libgtest-dev libgmock-dev libbenchmark-dev
  libboost1.81-dev libssl-dev openssl
  nlohmann-json3-dev libsqlite3-dev libpq-dev
  postgresql
  python3 curl
  systemd
  nginx wrk
  python3-websockets
  pebble
  chromium fonts-nanum
  prometheus
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
