"""Search spaces; importing this package registers them in `SPACES`."""

from slimvision.nas.spaces import cell, mbv2, resnet  # noqa: F401

__all__ = ["cell", "mbv2", "resnet"]
