#!/usr/bin/env bash
# Installs the Debian 12 packages fd-router needs to build, test and benchmark.
# Idempotent: skips apt entirely when everything is already installed.
set -euo pipefail
PKGS=(build-essential cmake pkg-config git python3 curl
      libh2o-evloop-dev libssl-dev libjson-c-dev liburcu-dev libcriterion-dev libyaml-dev
      libxxhash-dev libjsmn-dev clang libclang-rt-14-dev clang-format
      wrk nginx-light gnuplot-nox etcd-server)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  # etcd-server starts a system etcd on 127.0.0.1:2379 when installed; the tests start their own
  # on free ports and nothing here wants a daemon left running: service starts are denied for
  # the install (policy-rc.d, honoured by invoke-rc.d and deb-systemd-invoke), then the unit is
  # disabled where systemd runs.
  POLICY=/usr/sbin/policy-rc.d
  OWN_POLICY=0
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    OWN_POLICY=1
    trap '$SUDO rm -f "$POLICY"' EXIT
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ "$OWN_POLICY" = 1 ]; then
    $SUDO rm -f "$POLICY"
    trap - EXIT
  fi
  if [ -d /run/systemd/system ] && systemctl list-unit-files etcd.service >/dev/null 2>&1; then
    $SUDO systemctl disable --now etcd.service >/dev/null 2>&1 || true
  fi
fi
