"""Search spaces; importing this package registers them in `SPACES`."""

from slimvision.nas.spaces import mbv2  # noqa: F401

__all__ = ["mbv2"]
