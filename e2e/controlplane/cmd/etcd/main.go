// Command etcd is upstream etcd (go.etcd.io/etcd/server/v3 etcdmain), rebuilt from the
// Go module proxy as the storage of kubeopt's e2e control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
