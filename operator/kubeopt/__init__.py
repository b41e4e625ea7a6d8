"""kubeopt: optimize neural networks for inference on Kubernetes."""

__version__ = "0.1.0"
