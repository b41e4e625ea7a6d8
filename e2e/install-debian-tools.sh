#!/usr/bin/env bash
# Installs the Debian-packaged tools the tests use besides the Go-built ones (e2e/build.sh):
#   prometheus, promtool   (package "prometheus"; /usr/bin/prometheus, /usr/bin/promtool)
#
# Idempotent: does nothing when /usr/bin/promtool is already there. Needs root (or sudo)
# for apt-get. The package's systemd unit is not started: there is no init in CI containers,
# and the tests start their own Prometheus on a free loopback port.
set -euo pipefail

log() { printf '[e2e/install-debian-tools.sh] %s\n' "$*" >&2; }

if [ -x /usr/bin/promtool ]; then
  log "prometheus and promtool already installed: $(/usr/bin/promtool --version 2>&1 | head -1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    log "not root and no sudo: install the Debian package 'prometheus' by hand"
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends prometheus
log "installed: $(/usr/bin/promtool --version 2>&1 | head -1)"
