#!/usr/bin/env bash
# Builds one small Go program of e2e/ (argocd-health, promop-config, promop-discover: each its own
# module, kept apart from e2e/build.sh so that changing it does not rebuild the control plane) into
# ${KUBEOPT_E2E_BIN:-$HOME/.cache/kubeopt-e2e/bin}/<name>/<key>/<name>, where <name> is the module's
# folder and <key> the sha256 of this script, the module's build.sh, the Go version and its
# go.mod/go.sum/*.go. A built binary for the same key is reused. Built with every core: a cold
# `make test` must stay under an hour on two.
#
#   bash e2e/go-tool.sh e2e/<name>
#
# The last line on stdout is the binary's path; everything else goes to stderr.
set -euo pipefail

TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE="$(cd "$1" && pwd)"
NAME="$(basename "$MODULE")"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi

key="$(
  {
    printf 'go=%s\n' "$(go env GOVERSION)"
    printf 'goarch=%s/%s\n' "$(go env GOOS)" "$(go env GOARCH)"
    printf '== go-tool.sh\n'
    cat "$TOOLS/go-tool.sh"
    cd "$MODULE"
    for f in build.sh go.mod go.sum $(find . -name '*.go' | LC_ALL=C sort); do
      printf '== %s\n' "$f"
      cat "$f"
    done
  } | sha256sum | cut -c1-64
)"
out="${KUBEOPT_E2E_BIN:-$HOME/.cache/kubeopt-e2e/bin}/$NAME/$key"
if [ ! -x "$out/$NAME" ]; then
  printf '[%s/build.sh] building into %s\n' "$NAME" "$out" >&2
  mkdir -p "$out.tmp"
  (cd "$MODULE" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp/$NAME" .)
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
printf '%s\n' "$out/$NAME"
