"""The resource's API: spec and status models, failure reasons, the termination summary, the CRD."""
