"""descend: gradient descent and its variants on PyTorch."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``descend.minimize`` without importing the lab (and matplotlib) on ``import descend``."""
    if name == "minimize":
        from .lab import minimize

        return minimize
    raise AttributeError(f"module 'descend' has no attribute {name!r}")
