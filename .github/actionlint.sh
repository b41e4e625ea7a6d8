#!/usr/bin/env bash
# Lints .github/workflows with actionlint, built once from the Go module proxy into
# ${KUBEOPT_TOOLS:-$HOME/.cache/kubeopt-tools}/actionlint-<version> (a later run reuses it: no Go).
set -euo pipefail

VERSION=v1.7.12
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${KUBEOPT_TOOLS:-$HOME/.cache/kubeopt-tools}/actionlint-$VERSION"
if [ ! -x "$DIR/actionlint" ]; then
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi
  mkdir -p "$DIR"
  start=$SECONDS
  GOBIN="$DIR" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$VERSION"
  echo "[.github/actionlint.sh] built actionlint $VERSION in $((SECONDS - start))s" >&2
fi
cd "$HERE/.."
# shellcheck and pyflakes integrations are off: neither is installed here, and their absence must
# not make the result depend on the machine.
"$DIR/actionlint" -shellcheck= -pyflakes= .github/workflows/*.yml
