"""The ONNX Runtime backend: its build (quantize or cast, then a session) and its runner."""
