"""Training checkpoints: `checkpoints/epoch_NNNN/` with weights, optimizer state and loop state.

Optimizer tensors are stored by parameter *name* (`state/<param name>/<key>`), so a checkpoint
is readable without the code that wrote it and checkpoint tools can pair momenta with weights.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from slimvision.errors import ArtifactError
from slimvision.io.artifact import load_state_file, load_weights_into, read_json, save_safetensors_atomic
from slimvision.io.atomic import atomic_directory, atomic_write_json, remove_stale_temps

CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "state.json"
_EPOCH_DIR = re.compile(r"epoch_(\d+)$")


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Checkpoint directories of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _EPOCH_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_epoch(checkpoint: str | Path) -> int:
    """The epoch a checkpoint directory was written after."""
    return int(read_json(Path(checkpoint) / STATE_FILE)["epoch"])


RUN_FILES = ("run.json", "model.safetensors", "arch.json", "meta.json")


def remove_run_files(run_dir: str | Path) -> None:
    """Delete a previous run's checkpoints and files from `run_dir` (for `train --overwrite`); other files stay."""
    run_dir = Path(run_dir)
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


def optimizer_to_tensors(optimizer: torch.optim.Optimizer, model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors keyed 'state/<param>/<key>', JSON-able rest: non-tensor state and param groups by name)."""
    names = {id(p): n for n, p in model.named_parameters()}
    state = optimizer.state_dict()
    index_to_name = {}
    for group, live_group in zip(state["param_groups"], optimizer.param_groups):
        for index, param in zip(group["params"], live_group["params"]):
            index_to_name[index] = names[id(param)]
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        name = index_to_name[index]
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state/{name}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{name}/{key}"] = value
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index_to_name[i] for i in g["params"]]} for g in state["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, model: nn.Module, tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> None:
    """Inverse of `optimizer_to_tensors`: load the saved state into `optimizer`."""
    params = dict(model.named_parameters())
    live = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    name_to_index = {n: live[id(p)] for n, p in params.items() if id(p) in live}
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, name, field = key.split("/", 2)
        if name not in name_to_index:
            raise ArtifactError(f"optimizer state names parameter {name!r}, which the model does not have")
        state.setdefault(name_to_index[name], {})[field] = value
    for key, value in rest["scalars"].items():
        name, field = key.rsplit("/", 1)
        state.setdefault(name_to_index[name], {})[field] = value
    groups = [{**g, "params": [name_to_index[n] for n in g["params"]]} for g in rest["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def save_checkpoint(
    run_dir: str | Path,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loop_state: dict[str, Any],
    ema: nn.Module | None = None,
) -> Path:
    """Write `checkpoints/epoch_NNNN/` atomically and return it (after removing what killed saves left behind)."""
    target = Path(run_dir) / CHECKPOINT_DIR / f"epoch_{epoch:04d}"
    remove_stale_temps(Path(run_dir))
    remove_stale_temps(target.parent)
    opt_tensors, opt_rest = optimizer_to_tensors(optimizer, model)
    with atomic_directory(target) as tmp:
        save_safetensors_atomic({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp / MODEL_FILE)
        save_safetensors_atomic(opt_tensors, tmp / OPTIMIZER_FILE)
        if ema is not None:
            save_safetensors_atomic({k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}, tmp / EMA_FILE)
        atomic_write_json(tmp / STATE_FILE, {"epoch": epoch, "optimizer": opt_rest, "rng": rng_state(), **loop_state})
    return target


def load_checkpoint(
    checkpoint: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: nn.Module | None = None
) -> dict[str, Any]:
    """Load weights/optimizer/EMA from a checkpoint directory into the given objects; returns the loop state."""
    checkpoint = Path(checkpoint)
    state = read_json(checkpoint / STATE_FILE)
    load_weights_into(model, load_state_file(checkpoint / MODEL_FILE), str(checkpoint / MODEL_FILE))
    try:
        optimizer_from_tensors(optimizer, model, load_state_file(checkpoint / OPTIMIZER_FILE), state["optimizer"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # a hand-edited or damaged state.json / optimizer file: name the checkpoint instead of a bare KeyError
        raise ArtifactError(f"{checkpoint / STATE_FILE}: optimizer state does not match the model ({type(exc).__name__}: {str(exc)[:200]})") from None
    if ema is not None and (checkpoint / EMA_FILE).exists():
        load_weights_into(ema, load_state_file(checkpoint / EMA_FILE), str(checkpoint / EMA_FILE))
    return state
