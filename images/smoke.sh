#!/usr/bin/env bash
# Smoke test of a built worker image, run by the release workflow where Docker works:
#   images/smoke.sh IMAGE BACKEND_MODULE     (torch, tensorrt or tensorflow)
# 1. `kubeopt run --help` answers (the entrypoint and kubeopt's own imports);
# 2. the backend's framework imports; without a GPU its libraries may refuse to load, and then
#    kubeopt's BackendUnavailable message, which names the image to use, must be what comes out.
set -euo pipefail

image="$1" module="$2"
docker run --rm "$image" run --help >/dev/null
echo "[smoke] $image: kubeopt run --help answered"
if docker run --rm --entrypoint python3 "$image" -c "import $module; print($module.__version__)"; then
  echo "[smoke] $image: $module imports"
else
  out="$(docker run --rm --entrypoint python3 "$image" -c \
    "from kubeopt.worker.frameworks import require; require('$module', 'smoke')" 2>&1 || true)"
  echo "$out"
  grep -q "BackendUnavailable\|worker image" <<<"$out"
fi
