"""Real parts for kubeopt's end-to-end tests.

A Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager built from source
by ``e2e/build.sh``), an S3 server and helm, each started as its own process on loopback.
"""

from kubeopt_e2e.cluster import ControlPlane, StartupError
from kubeopt_e2e.s3 import S3Server
from kubeopt_e2e.tools import bin_dir

__all__ = ["ControlPlane", "S3Server", "StartupError", "bin_dir"]
