"""Object storage: URIs, stores (file, s3) and atomic, manifest-last publishing."""
