#!/usr/bin/env bash
# Builds e2e/argocd-health (the Argo CD health.lua test runner: gopher-lua, as Argo CD embeds it)
# with e2e/go-tool.sh (content-keyed cache under ~/.cache/kubeopt-e2e/bin/argocd-health/).
# The last line on stdout is the binary's path; everything else goes to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$HERE/../go-tool.sh" "$HERE"
