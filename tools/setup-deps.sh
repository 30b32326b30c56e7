#!/usr/bin/env bash
# Installs the Debian 12 packages fd-router needs to build, test and benchmark.
# Idempotent: skips apt entirely when everything is already installed.
set -euo pipefail
PKGS=(build-essential cmake pkg-config git python3 curl
      libh2o-evloop-dev libssl-dev libjson-c-dev liburcu-dev libcriterion-dev libyaml-dev
      libxxhash-dev libjsmn-dev clang libclang-rt-14-dev
      wrk nginx-light gnuplot-nox)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
