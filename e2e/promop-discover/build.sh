#!/usr/bin/env bash
# Builds e2e/promop-discover (Prometheus's own Kubernetes service discovery, discovery/kubernetes of
# github.com/prometheus/prometheus pinned in go.mod, writing file_sd files for Debian's Prometheus,
# which is built without it) with e2e/go-tool.sh (content-keyed cache under
# ~/.cache/kubeopt-e2e/bin/promop-discover/).
# The last line on stdout is the binary's path; everything else goes to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$HERE/../go-tool.sh" "$HERE"
