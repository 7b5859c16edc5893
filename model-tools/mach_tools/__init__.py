"""MACH model tools: synthetic data, training, ONNX bundle export, offline evaluation."""
__version__ = "0.1.0"
