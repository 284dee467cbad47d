"""Weight-sharing supernets."""

from slimvision.nas.supernet.mbv2 import Mbv2Supernet, recalibrate_bn

__all__ = ["Mbv2Supernet", "recalibrate_bn"]
