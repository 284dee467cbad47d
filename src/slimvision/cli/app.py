"""The Typer app object and the helpers every command module shares."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(
    name="slimvision",
    help="Make vision models small and fast, and prove it with measurements.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """JSON on stdout only (progress and tables go elsewhere), so `--json` output pipes cleanly."""
    typer.echo(json.dumps(data, indent=2, default=str))


MODEL_SOURCE_HELP = "zoo name, model directory, module:function, path/to/file.py:function, timm:NAME or torchvision:NAME"
MODEL_KWARGS_HELP = "JSON object of keyword arguments for the model builder, e.g. '{\"num_classes\": 10}'."
WEIGHTS_HELP = "Weights for a built model: a .pt/.pth (loaded as tensors only) or .safetensors file."
CHANNELS_LAST_HELP = (
    "Train with NHWC (channels-last) weights and batches: CPU convolutions run faster on them (one thread: resnet20 1.2x, "
    "MobileNetV2 1.7-2.2x, an mbv2 supernet at 16 px about 2x); the weights differ from an NCHW run's as float32 rounding "
    "differences grow in training, so do not mix layouts in one comparison."
)


def model_source(spec: str | None, kwargs_json: str | None = None, weights: str | None = None):
    """The `ModelSource` a command's model option, `--model-kwargs` and `--weights` describe (None if no model)."""
    from slimvision.models.sources import ModelSource, parse_model_kwargs

    if spec is None:
        return None
    return ModelSource(str(spec), parse_model_kwargs(kwargs_json), str(weights) if weights else None)
