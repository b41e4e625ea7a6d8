#!/usr/bin/env bash
# Builds e2e/kstatus (sigs.k8s.io/cli-utils' kstatus status.Compute over JSON lines) and gathers
# the Argo CD and Flux CRDs the GitOps examples are dry-run against, into
# ${KUBEOPT_E2E_BIN:-$HOME/.cache/kubeopt-e2e/bin}/kstatus/<key>/{kstatus,crds/*.yaml}, where <key>
# is the sha256 of this script, the Go version and both modules' go.mod/go.sum/*.go. A complete
# directory for the same key is reused; nothing is downloaded when the tests run.
#
# The CRDs come from the projects' own Go modules through the module proxy (go mod download):
# Argo CD's manifests/crds and Flux's config/crd/bases. The helm-controller module itself is not
# served by the proxy, so its HelmRelease CRD is generated from its served api module by
# controller-gen, as helm-controller's own `make manifests` does (module helmrelease-crd/).
# Versions are the newest the proxy serves that build on Go 1.26 (v3.6.x and v1.10.x need 1.27).
# Kept apart from e2e/build.sh so that changing it does not rebuild the control plane. Cold:
# about 3.5 minutes on two cores (controller-gen is most of it); warm: well under a second.
#
# The last line on stdout is the directory; everything else goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi

# module@version path-inside-the-module
CRDS=(
  "github.com/argoproj/argo-cd/v3@v3.5.7 manifests/crds/application-crd.yaml"
  "github.com/argoproj/argo-cd/v3@v3.5.7 manifests/crds/appproject-crd.yaml"
  "github.com/fluxcd/source-controller@v1.9.6 config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml"
  "github.com/fluxcd/source-controller@v1.9.6 config/crd/bases/source.toolkit.fluxcd.io_helmrepositories.yaml"
  "github.com/fluxcd/kustomize-controller@v1.9.6 config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml"
)

key="$(
  {
    printf 'go=%s\n' "$(go env GOVERSION)"
    printf 'goarch=%s/%s\n' "$(go env GOOS)" "$(go env GOARCH)"
    cd "$HERE"
    for f in build.sh $(find . \( -name go.mod -o -name go.sum -o -name '*.go' \) | LC_ALL=C sort); do
      printf '== %s\n' "$f"
      cat "$f"
    done
  } | sha256sum | cut -c1-64
)"
out="${KUBEOPT_E2E_BIN:-$HOME/.cache/kubeopt-e2e/bin}/kstatus/$key"
if [ ! -f "$out/complete" ]; then
  printf '[kstatus/build.sh] building into %s\n' "$out" >&2
  rm -rf "$out.tmp" && mkdir -p "$out.tmp/crds"
  (cd "$HERE" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp/kstatus" .)
  for entry in "${CRDS[@]}"; do
    read -r module file <<<"$entry"
    dir="$(cd "$HERE" && go mod download -json "$module" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
    if [ -z "$dir" ] || [ ! -f "$dir/$file" ]; then
      printf '[kstatus/build.sh] %s has no %s\n' "$module" "$file" >&2
      exit 1
    fi
    cp "$dir/$file" "$out.tmp/crds/$(basename "$file")"
    chmod u+w "$out.tmp/crds/$(basename "$file")"
  done
  (cd "$HERE/helmrelease-crd" \
    && CGO_ENABLED=0 go build -trimpath -o "$out.tmp/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen \
    && "$out.tmp/controller-gen" crd:crdVersions=v1 paths=github.com/fluxcd/helm-controller/api/v2 \
         output:crd:dir="$out.tmp/crds")
  rm -f "$out.tmp/controller-gen"
  touch "$out.tmp/complete"
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
printf '%s\n' "$out"
