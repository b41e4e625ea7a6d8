// Package helmreleasecrd pins the Flux helm-controller API types and controller-gen, the generator
// Flux itself runs on them (helm-controller's `make manifests`: controller-gen crd:crdVersions=v1),
// so that e2e/kstatus/build.sh can write the HelmRelease CRD at build time. The helm-controller
// module with config/crd/bases is not served by the Go module proxy; its api module is.
package helmreleasecrd

import (
	_ "github.com/fluxcd/helm-controller/api/v2"
)
