"""Quantization configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from slimvision.errors import ConfigError

BACKENDS = ("onnxruntime", "openvino", "torchao", "auto")
MODES = ("static", "dynamic", "qat")
CALIB_METHODS = ("minmax", "percentile", "entropy")


@dataclass
class QuantConfig:
    backend: str = "onnxruntime"
    mode: str = "static"
    calib_samples: int = 256
    calib_method: str = "minmax"
    keep_float: int = 0  # keep the K most sensitive layers in float (ONNX backends)
    accuracy_limit: float = 0.01  # largest accepted top-1 drop (fraction, 0.01 = 1 point); `auto` keeps runtimes within it
    qat_epochs: int = 3
    qat_lr: float = 1e-4
    threads: int | None = None
    repeats: int = 20
    batch_size: int = 32  # `auto` picks the fastest deployment at this batch size
    auto_torchao: bool = False  # `auto` also compiles a torchao candidate (torch.compile costs tens of seconds)
    block_search: bool = False  # measure per block whether INT8 pays on the target runtime (slimvision.quant.blocks)
    block_budget_s: float = 60.0  # seconds the block search may spend per target runtime
    max_blocks: int = 12  # the graph's pieces are merged down to this many blocks
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.calib_method not in CALIB_METHODS:
            raise ConfigError(f"unknown calibration method {self.calib_method!r}; use one of {', '.join(CALIB_METHODS)}")
        if self.calib_samples < 1:
            raise ConfigError(f"--calib-samples must be >= 1, got {self.calib_samples}")
        if self.qat_epochs < 1:
            raise ConfigError(f"--qat-epochs must be >= 1, got {self.qat_epochs}")
        if self.accuracy_limit < 0:
            raise ConfigError(f"--accuracy-limit must be >= 0, got {self.accuracy_limit}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.keep_float < 0:
            raise ConfigError(f"--keep-float must be >= 0, got {self.keep_float}")
        if self.block_search and (self.mode != "static" or self.backend == "torchao"):
            raise ConfigError("--block-search measures blocks of the static QDQ file: use --mode static with onnxruntime, openvino or auto")
        if self.block_budget_s <= 0:
            raise ConfigError(f"--block-budget must be > 0 seconds, got {self.block_budget_s}")
        if self.max_blocks < 1:
            raise ConfigError(f"--max-blocks must be >= 1, got {self.max_blocks}")
        if self.mode == "qat" and self.backend not in ("torchao", "auto"):
            raise ConfigError("QAT runs through the PT2E flow: use --backend torchao")

    def to_dict(self) -> dict:
        return asdict(self)
