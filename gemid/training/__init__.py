"""PyTorch training, evaluation and ONNX export of the species model (needs the `train` extra)."""
