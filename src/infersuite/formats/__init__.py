"""Model file formats: safetensors, ONNX, GGUF and TensorRT round trips."""
