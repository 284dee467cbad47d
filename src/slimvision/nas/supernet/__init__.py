"""Weight-sharing supernets; importing this package registers them as zoo models."""

from slimvision.nas.supernet.cell import CellSupernet
from slimvision.nas.supernet.mbv2 import Mbv2Supernet
from slimvision.nas.supernet.resnet import ResNetSupernet

__all__ = ["CellSupernet", "Mbv2Supernet", "ResNetSupernet"]
