"""Weight-sharing supernets; importing this package registers them as zoo models."""

from slimvision.nas.supernet.mbv2 import Mbv2Supernet
from slimvision.nas.supernet.resnet import ResNetSupernet
from slimvision.nas.supernet.shared import recalibrate_bn

__all__ = ["Mbv2Supernet", "ResNetSupernet", "recalibrate_bn"]
