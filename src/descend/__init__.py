"""descend: gradient descent and its variants on PyTorch."""

__version__ = "0.1.0"
