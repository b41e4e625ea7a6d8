#!/usr/bin/env bash
# Builds the real parts that kubeopt's e2e tests run against, from the Go module proxy:
#   etcd, kube-apiserver, kube-controller-manager  (e2e/controlplane, Kubernetes v1.35.4)
#   minio                                          (S3 server, pinned commit, see e2e/README.md)
#   helm                                           (v3.22.0)
#
# Binaries go to ${KUBEOPT_E2E_BIN:-$HOME/.cache/kubeopt-e2e/bin}/<key>/ where <key> is the
# sha256 of this script, the Go version and the e2e Go modules' go.mod/go.sum/*.go files.
# When that directory already holds every binary the build is skipped, so CI on the same
# machine reuses them. The Go build and module caches stay in their default locations.
#
# The last line on stdout is the bin directory; everything else goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi

K8S_VERSION="v1.35.4"
K8S_MAJOR="1"
K8S_MINOR="35"
HELM_VERSION="v3.22.0"
# Helm v3.22.0 is built against k8s.io/client-go v0.37 (Kubernetes 1.37); helm's Makefile
# stamps that into lint/chartutil defaults.
HELM_K8S_MAJOR="1"
HELM_K8S_MINOR="37"
# MinIO publishes RELEASE.* tags that are not semantic versions; the module proxy refuses
# them, so MinIO is pinned to the pseudo-version of its last commit (2026-02-12).
MINIO_MODULE="github.com/minio/minio"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
BUILD_DATE="1970-01-01T00:00:00Z"

BINARIES=(etcd kube-apiserver kube-controller-manager minio helm)

log() { printf '[e2e/build.sh] %s\n' "$*" >&2; }

cache_key() {
  {
    printf 'go=%s\n' "$(go env GOVERSION)"
    printf 'goarch=%s/%s\n' "$(go env GOOS)" "$(go env GOARCH)"
    cat "$HERE/build.sh"
    local mod
    for mod in controlplane s3server tools; do
      [ -d "$HERE/$mod" ] || continue
      (cd "$HERE/$mod" && find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) \
        -not -path './vendor/*' | LC_ALL=C sort | while read -r f; do
          printf '== %s/%s\n' "$mod" "$f"
          cat "$f"
        done)
    done
  } | sha256sum | cut -c1-64
}

have_all() {
  local dir="$1" b
  for b in "${BINARIES[@]}"; do
    [ -x "$dir/$b" ] || return 1
  done
}

build_into() {
  local out="$1"
  local start=$SECONDS

  local kv=""
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kv+=" -X '${pkg}.gitVersion=${K8S_VERSION}'"
    kv+=" -X '${pkg}.gitMajor=${K8S_MAJOR}'"
    kv+=" -X '${pkg}.gitMinor=${K8S_MINOR}'"
    kv+=" -X '${pkg}.gitTreeState=clean'"
    kv+=" -X '${pkg}.buildDate=${BUILD_DATE}'"
  done
  log "building etcd, kube-apiserver, kube-controller-manager (Kubernetes ${K8S_VERSION})"
  (cd "$HERE/controlplane" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w${kv}" -o "$out/" ./cmd/...)
  log "control plane built in $((SECONDS - start))s"

  start=$SECONDS
  log "building helm ${HELM_VERSION}"
  GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w \
    -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} \
    -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${HELM_K8S_MAJOR} \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${HELM_K8S_MINOR} \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${HELM_K8S_MAJOR} \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${HELM_K8S_MINOR}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  log "helm built in $((SECONDS - start))s"

  start=$SECONDS
  log "building minio ${MINIO_VERSION}"
  GOBIN="$out" CGO_ENABLED=0 go install -trimpath -tags kqueue -ldflags "-s -w \
    -X github.com/minio/minio/cmd.Version=2026-02-12T20:18:48Z \
    -X github.com/minio/minio/cmd.ReleaseTag=DEVELOPMENT.2026-02-12T20-18-48Z \
    -X github.com/minio/minio/cmd.CommitID=7aac2a2c5b7c" \
    "${MINIO_MODULE}@${MINIO_VERSION}"
  log "minio built in $((SECONDS - start))s"
}

# Keep the newest KUBEOPT_E2E_KEEP (default 3) builds, each about 400 MB; drop stale temp dirs.
prune() {
  local root="$1" current="$2" keep="${KUBEOPT_E2E_KEEP:-3}" old
  find "$root" -mindepth 1 -maxdepth 1 -type d -name '.tmp-*' -mmin +720 -exec rm -rf {} + || true
  ls -1dt "$root"/*/ 2>/dev/null | tail -n +"$((keep + 1))" | while read -r old; do
    old="${old%/}"
    [ "$old" = "$current" ] && continue
    log "removing old build $old"
    rm -rf "$old"
  done
}

main() {
  local root="${KUBEOPT_E2E_BIN:-$HOME/.cache/kubeopt-e2e/bin}"
  mkdir -p "$root"
  local key dir
  key="$(cache_key)"
  dir="$root/$key"

  if have_all "$dir"; then
    log "reusing $dir"
    touch "$dir"
    printf '%s\n' "$dir"
    return 0
  fi

  # One build at a time per cache root (parallel CI jobs, pytest-xdist workers).
  exec 9>"$root/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9
  fi
  if have_all "$dir"; then
    log "reusing $dir (built by a concurrent run)"
    printf '%s\n' "$dir"
    return 0
  fi

  local tmp="$root/.tmp-$key-$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  local start=$SECONDS
  build_into "$tmp"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  log "all built in $((SECONDS - start))s into $dir"
  prune "$root" "$dir"
  printf '%s\n' "$dir"
}

main "$@"
