#!/usr/bin/env bash
# Builds e2e/promop-config (the Prometheus Operator's own config generator, pkg/prometheus of
# github.com/prometheus-operator/prometheus-operator, pinned in go.mod) with e2e/go-tool.sh
# (content-keyed cache under ~/.cache/kubeopt-e2e/bin/promop-config/).
# The last line on stdout is the binary's path; everything else goes to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$HERE/../go-tool.sh" "$HERE"
