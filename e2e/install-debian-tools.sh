#!/usr/bin/env bash
# Installs the Debian-packaged tools the tests use besides the Go-built ones (e2e/build.sh):
#   prometheus, promtool   (package "prometheus"; the rule tests in the unit stage, e2e's Prometheus)
#   buildah, podman        (images/build.sh builds the images e2e runs; podman mounts them)
#   mmdebstrap             (images/base.sh makes the local Debian base image)
#   uidmap, fuse-overlayfs (container storage helpers buildah and podman expect)
#   chromium               (headless: the test that lays report.html out in a real browser)
#
# Idempotent: installs only the packages whose command is missing. Needs root (or sudo) for
# apt-get. The prometheus package's systemd unit is not started: there is no init in CI
# containers, and the tests start their own Prometheus on a free loopback port.
set -euo pipefail

log() { printf '[e2e/install-debian-tools.sh] %s\n' "$*" >&2; }

# command -> package
declare -A PACKAGE=([/usr/bin/promtool]=prometheus [/usr/bin/buildah]=buildah [/usr/bin/podman]=podman
                    [/usr/bin/mmdebstrap]=mmdebstrap [/usr/bin/newuidmap]=uidmap
                    [/usr/bin/fuse-overlayfs]=fuse-overlayfs [/usr/bin/chromium]=chromium)
missing=()
for command in "${!PACKAGE[@]}"; do
  [ -x "$command" ] || missing+=("${PACKAGE[$command]}")
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "all installed: $(/usr/bin/promtool --version 2>&1 | head -1); $(buildah --version); $(podman --version); $(/usr/bin/chromium --version 2>/dev/null)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    log "not root and no sudo: install the Debian packages ${missing[*]} by hand"
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
log "installed ${missing[*]}"
