"""INT8 quantization: ONNX export, onnxruntime QDQ (also run by OpenVINO), torchao PT2E, dynamic, QAT."""

from slimvision.quant.config import QuantConfig
from slimvision.quant.export import export_onnx
from slimvision.quant.run import evaluate_quantized, is_quantized_dir, profile_quantized, quantize_artifact

__all__ = ["QuantConfig", "export_onnx", "evaluate_quantized", "is_quantized_dir", "profile_quantized", "quantize_artifact"]
