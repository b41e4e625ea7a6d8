"""The worker: runs inside a target Job (or locally) and turns a model into an optimized one.

load -> convert -> calibrate -> compile -> validate -> benchmark -> publish. Heavy frameworks
are imported lazily, only for the backend in use.
"""
