#!/usr/bin/env bash
# Makes the local base image that `make images` builds on: Debian bookworm's essential packages
# (no apt, no perl beyond perl-base: merged /usr made by mmdebstrap's hook, not usrmerge) with Python 3.11
# (python3, python3-venv, ca-certificates, libstdc++6), no documentation, man pages or locales, as an image
# named localhost/kubeopt-base:<key>. Public base registries are out of reach on CI machines; the
# Containerfiles' default base (python:3.11-slim-bookworm) is the same Debian release and Python.
#
# <key> is the sha256 of this script: a second run finds the image and does nothing. Prints the
# image name as its last stdout line. Needs root, mmdebstrap and podman (e2e/install-debian-tools.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE=bookworm
# libstdc++6: numpy, onnxruntime and most binary wheels link it (bookworm-slim has it through apt).
PACKAGES=python3,python3-venv,ca-certificates,libstdc++6
KEY="$(sha256sum "$HERE/base.sh" | cut -c1-16)"
NAME="localhost/kubeopt-base:$KEY"

log() { printf '[images/base.sh] %s\n' "$*" >&2; }

if podman image exists "$NAME"; then
  log "reusing $NAME"
  printf '%s\n' "$NAME"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
# Excluded paths never land in the image; copyright files stay (licences).
mmdebstrap --variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --include="$PACKAGES" --quiet \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
  "$SUITE" "$tmp/rootfs.tar" >&2
podman import --quiet \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  "$tmp/rootfs.tar" "$NAME" >&2
log "made $NAME in $((SECONDS - start))s ($(du -h "$tmp/rootfs.tar" | cut -f1) tar)"
printf '%s\n' "$NAME"
