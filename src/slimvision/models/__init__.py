"""Model zoo (CIFAR ResNets, MobileNetV2, StarNet, a small CNN) and model sources (builders, timm:, torchvision:)."""

from slimvision.models import cifar_resnet, mobilenetv2, small_cnn, starnet  # noqa: F401  (registers builders)
from slimvision.models.registry import MODELS, create_model, list_models, register_model
from slimvision.models.sources import ModelSource, build_model, parse_model_source


__all__ = ["MODELS", "ModelSource", "build_model", "create_model", "list_models", "parse_model_source", "register_model"]
