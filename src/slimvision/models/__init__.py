"""Model zoo: CIFAR ResNets, MobileNetV2, StarNet, a small CNN; all built by `create_model`."""

from slimvision.models import cifar_resnet, mobilenetv2, small_cnn, starnet  # noqa: F401  (registers builders)
from slimvision.models.registry import MODELS, create_model, list_models, register_model


__all__ = ["MODELS", "create_model", "list_models", "register_model"]
