"""The TF-TRT backend: a SavedModel converted by TensorFlow's TensorRT integration, and its runners."""
