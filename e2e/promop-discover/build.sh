#!/usr/bin/env bash
# Builds e2e/promop-discover (Prometheus's own Kubernetes service discovery, discovery/kubernetes of
# github.com/prometheus/prometheus pinned in go.mod, writing file_sd files for Debian's Prometheus,
# which is built without it) into
# ${KUBEOPT_E2E_BIN:-$HOME/.cache/kubeopt-e2e/bin}/promop-discover/<key>/promop-discover, where <key>
# is the sha256 of this script, the Go version and the module's go.mod/go.sum/*.go. A built binary
# for the same key is reused. Built with every core: a cold
# `make test` must stay under an hour on two.
#
# The last line on stdout is the binary's path; everything else goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi

key="$(
  {
    printf 'go=%s\n' "$(go env GOVERSION)"
    printf 'goarch=%s/%s\n' "$(go env GOOS)" "$(go env GOARCH)"
    cd "$HERE"
    for f in build.sh go.mod go.sum $(find . -name '*.go' | LC_ALL=C sort); do
      printf '== %s\n' "$f"
      cat "$f"
    done
  } | sha256sum | cut -c1-64
)"
out="${KUBEOPT_E2E_BIN:-$HOME/.cache/kubeopt-e2e/bin}/promop-discover/$key"
if [ ! -x "$out/promop-discover" ]; then
  printf '[promop-discover/build.sh] building into %s\n' "$out" >&2
  mkdir -p "$out.tmp"
  (cd "$HERE" && CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w" -o "$out.tmp/promop-discover" .)
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
printf '%s\n' "$out/promop-discover"
