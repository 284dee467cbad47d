"""Training-checkpoint compression (ExCP): residuals, weight-momentum joint shrinking, k-means quantization, packing."""

from slimvision.ckpt.excp import CompressConfig, CompressResult, compress_run, inspect, restore

__all__ = ["CompressConfig", "CompressResult", "compress_run", "inspect", "restore"]
