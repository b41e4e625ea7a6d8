#!/usr/bin/env bash
# Builds kubeopt's images with buildah (no daemon), cached by content like e2e/build.sh:
#   images/build.sh operator [worker-onnxruntime ...]
#
# Each image is tagged localhost/kubeopt/<name>:<key>, where <key> is the sha256 of what the build
# reads: this script, images/<name>/Containerfile, .containerignore, the base image's ID and every
# file of the build context (pyproject.toml, README.md, requirements/*.txt, operator/). When that
# image exists the build is skipped (well under a second). It is also tagged with its published name
# from operator/kubeopt/api/images.env (ghcr.io/kubeopt/<name>:<version>).
#
# The base is Debian bookworm with Python 3.11 made here (images/base.sh; KUBEOPT_IMAGE_BASE names
# another). Distributions come from a wheelhouse this script fills on the host with `pip download`
# of the image's lock file (the host's pip configuration and cache serve it) and mounts read-only
# at /wheels: the build reaches no index, and no CA bundle or pip configuration enters an image.
# KUBEOPT_IMAGE_VOLUMES adds build volumes (space-separated HOST:CONTAINER[:OPTIONS], none by default).
#
# stdout: one line per image, its localhost/kubeopt/<name>:<key> reference; progress on stderr.
# Needs root, buildah, podman and mmdebstrap (e2e/install-debian-tools.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
WHEELS="${KUBEOPT_IMAGE_WHEELS:-$HOME/.cache/kubeopt-images/wheels}"
PYTHON="${PYTHON:-python3}"

log() { printf '[images/build.sh] %s\n' "$*" >&2; }

# The extra (and its lock file) each image installs.
declare -A EXTRA=([operator]=operator [worker-onnxruntime]=onnxruntime)

setting() { sed -n "s/^$1=//p" "$ROOT/operator/kubeopt/api/images.env"; }

context_files() {
  (cd "$ROOT" && { printf '%s\n' pyproject.toml README.md requirements/*.txt
    find operator -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*.egg-info/*'; } \
    | LC_ALL=C sort)
}

cache_key() {
  local name="$1" base_id="$2"
  {
    printf 'base=%s\n' "$base_id"
    cat "$HERE/build.sh" "$HERE/$name/Containerfile" "$ROOT/.containerignore"
    context_files | while read -r f; do printf '== %s\n' "$f"; cat "$ROOT/$f"; done
  } | sha256sum | cut -c1-16
}

# The lock's pins that apply here (Linux, CPython 3.11), as wheels; the build backend too.
fill_wheelhouse() {
  local lock="$1"
  mkdir -p "$WHEELS"
  local start=$SECONDS
  # The host is the image's platform (Debian bookworm, x86_64, CPython 3.11): its wheels fit.
  # Offline first: a wheelhouse that has every pin answers in a second, without the index.
  local args=(--quiet --disable-pip-version-check --only-binary=:all: --dest "$WHEELS" -r "$lock" "setuptools>=68")
  if ! "$PYTHON" -m pip download --no-index --find-links "$WHEELS" "${args[@]}" >/dev/null 2>&1; then
    "$PYTHON" -m pip download "${args[@]}" >&2
  fi
  log "wheelhouse for $(basename "$lock") ready in $((SECONDS - start))s ($WHEELS)"
}

build() {
  local name="$1" base="$2" base_id="$3"
  local extra="${EXTRA[$name]:-}"
  if [ -z "$extra" ]; then
    log "no local build for '$name': ${!EXTRA[*]} are built here (GPU images need NVIDIA's bases)"
    return 1
  fi
  local key ref published
  key="$(cache_key "$name" "$base_id")"
  ref="localhost/kubeopt/$name:$key"
  published="$(setting KUBEOPT_REGISTRY)/$(setting "IMAGE_$(echo "$name" | tr 'a-z-' 'A-Z_')"):$(setting KUBEOPT_VERSION)"
  if podman image exists "$ref"; then
    log "reusing $ref"
    podman tag "$ref" "$published"
    printf '%s\n' "$ref"
    return 0
  fi
  fill_wheelhouse "$ROOT/requirements/$extra.txt"
  local volumes=(-v "$WHEELS:/wheels:ro") v
  for v in ${KUBEOPT_IMAGE_VOLUMES:-}; do volumes+=(-v "$v"); done
  local revision
  revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  local start=$SECONDS
  buildah bud --quiet --isolation chroot --layers=false \
    -f "$HERE/$name/Containerfile" --ignorefile "$ROOT/.containerignore" \
    --build-arg BASE="$base" --build-arg PIP_ARGS="--no-index --find-links /wheels" \
    --build-arg VERSION="$(setting KUBEOPT_VERSION)" --build-arg REVISION="$revision" \
    "${volumes[@]}" -t "$ref" -t "$published" "$ROOT" >&2
  log "built $ref ($published) in $((SECONDS - start))s, $(podman image inspect --format '{{.Size}}' "$ref" \
    | awk '{printf "%.0f MB", $1 / 1e6}')"
  prune "localhost/kubeopt/$name"
  printf '%s\n' "$ref"
}

# Keep the newest KUBEOPT_IMAGE_KEEP (default 3) builds of an image; older keys are removed.
prune() {
  local old
  podman images --sort created --format '{{.Repository}}:{{.Tag}}' "$1" | grep "^$1:" \
    | tail -n +"$((${KUBEOPT_IMAGE_KEEP:-3} + 1))" | while read -r old; do
        log "removing old build $old"
        podman rmi "$old" >/dev/null 2>&1 || true
      done
}

main() {
  [ "$#" -gt 0 ] || set -- operator worker-onnxruntime
  local base="${KUBEOPT_IMAGE_BASE:-}"
  [ -n "$base" ] || base="$(bash "$HERE/base.sh" | tail -1)"
  local base_id
  base_id="$(podman image inspect --format '{{.Id}}' "$base")"
  # One build at a time per machine (parallel CI jobs, pytest sessions).
  mkdir -p "$(dirname "$WHEELS")"
  exec 9>"$(dirname "$WHEELS")/.lock"
  flock 9
  local name
  for name in "$@"; do build "$name" "$base" "$base_id"; done
}

# exit at once: an edit of this file while it runs must not run a fragment of the new text.
main "$@"; exit
