"""INT8 quantization: `quantize(model, calibration, config)`; ONNX export, onnxruntime QDQ (also run by OpenVINO), torchao PT2E, dynamic, QAT."""

from slimvision.quant.config import QuantConfig
from slimvision.quant.export import export_onnx
from slimvision.quant.run import QuantResult, evaluate_quantized, is_quantized_dir, profile_quantized, quantize, quantize_artifact

__all__ = ["QuantConfig", "QuantResult", "export_onnx", "evaluate_quantized", "is_quantized_dir", "profile_quantized", "quantize", "quantize_artifact"]
