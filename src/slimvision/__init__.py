"""slimvision: make vision models small and fast, and prove it with measurements."""

from slimvision.errors import SlimvisionError

__version__ = "0.1.0"
__all__ = ["SlimvisionError", "__version__"]
