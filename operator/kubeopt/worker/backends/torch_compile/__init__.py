"""The torch-compile backend: torch.compile / AOTInductor builds, its runner, and the torch-only graph
rewrites it applies first (epilogue fusion, int8 and float8 weights)."""
