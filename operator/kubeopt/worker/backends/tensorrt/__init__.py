"""The TensorRT backend: ONNX to a serialized engine, and the runner that enqueues it."""
