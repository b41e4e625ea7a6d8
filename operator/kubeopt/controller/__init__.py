"""The operator: kopf handlers, the Job builder, status and conditions, result intake, metrics.

Layering: this package reads kubeopt.api (and may read kubeopt.storage); it never imports the
worker or any ML framework, so the operator image stays small.
"""
