#!/usr/bin/env bash
# Pins every install of kubeopt: one constraints file per pyproject extra, resolved by uv.
#
#   requirements/venv.txt      every extra `make venv` installs, resolved together (the one resolution)
#   requirements/<extra>.txt   that extra alone (with the base dependencies), constrained by venv.txt so
#                              that no two files pin a package differently
#
# They are constraints (`pip install -c requirements/<extra>.txt '.[<extra>]'`), not requirements:
# kubeopt itself is not in them. `make venv`, CI and every image install through them.
#
# `make lock` keeps every existing pin that still satisfies pyproject.toml (uv prefers the versions
# already in the output file) and resolves only what is new; `make lock UPGRADE=1` takes the newest
# versions. The resolution is universal (Linux x86_64 and aarch64 images, Python >= 3.11).
# Needs uv (the dev extra) and PyPI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV="${UV:-.venv/bin/uv}"
EXTRAS=(operator onnxruntime torch tensorflow tensorrt demo dev)
VENV_EXTRAS=(operator onnxruntime torch tensorflow demo dev)
UPGRADE_FLAG=()
if [ "${UPGRADE:-0}" = 1 ]; then UPGRADE_FLAG=(--upgrade); fi

compile() {
  local out="$1"; shift
  "$UV" pip compile pyproject.toml "$@" "${UPGRADE_FLAG[@]}" --universal --python-version 3.11 \
    --quiet --custom-compile-command "make lock" -o "requirements/$out"
}

args=()
for extra in "${VENV_EXTRAS[@]}"; do args+=(--extra "$extra"); done
compile venv.txt "${args[@]}"
UPGRADE_FLAG=()  # the per-extra files follow venv.txt, where an upgrade happened already
for extra in "${EXTRAS[@]}"; do
  compile "$extra.txt" --extra "$extra" -c requirements/venv.txt
done
echo "requirements/: $(ls requirements/*.txt | wc -l) lock files" >&2
