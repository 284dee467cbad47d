"""Turn a Pareto point into a standalone model artifact (fresh, or inheriting supernet weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimvision.errors import ConfigError
from slimvision.io import ArchSpec, read_json, save_artifact
from slimvision.nas.space import SPACES



def derive(pareto_file: str | Path, index: int, out_dir: str | Path, supernet: str | Path | None = None) -> dict[str, Any]:
    """Save point `index` of `pareto.json` as a model directory; with `supernet`, weights are inherited and BN re-calibrated."""

    data = read_json(Path(pareto_file))
    front = data.get("front", [])
    if not 0 <= index < len(front):
        raise ConfigError(f"{pareto_file}: no Pareto point {index} (the front has {len(front)})")
    space_name = data["space"]
    space = SPACES.get(space_name)()
    if not space.model_name:
        raise ConfigError(f"space {space_name!r} has no standalone model builder")
    arch = space.validate(front[index]["arch"])
    num_classes, in_chans = data["config"]["num_classes"], data["config"]["in_chans"]
    meta: dict[str, Any] = {"nas": {"pareto": str(pareto_file), "index": index, "point": front[index]}, "parent": str(supernet) if supernet else None}
    if data.get("data"):  # the search's data: `profile` and `eval` take the input shape and dataset from it
        meta["data"] = data["data"]
        num_classes, in_chans = data["data"]["num_classes"], data["data"]["in_chans"]
    if supernet:
        from slimvision.data import dataset_for, make_loader
        from slimvision.io import load_artifact
        from slimvision.train.batchnorm import recalibrate_batchnorm

        artifact = load_artifact(supernet)
        if getattr(artifact.model, "space", None) is None or artifact.model.space.name != space_name:
            raise ConfigError(f"{supernet} is not a supernet of the {space_name!r} space this Pareto front comes from")
        train = dataset_for(artifact.data_spec, None, "train")
        model = recalibrate_batchnorm(artifact.model.extract(arch), [x for x, _ in make_loader(train, 64, shuffle=True)][:8])
        num_classes, in_chans = train.spec.num_classes, train.spec.in_chans
        meta["data"] = artifact.data_spec
    spec = ArchSpec(space.model_name, {"num_classes": num_classes, "in_chans": in_chans, **space.model_kwargs(arch)})
    if not supernet:
        model = spec.build()
    save_artifact(model.eval(), spec, out_dir, meta)
    return {"arch": arch, "out": str(out_dir), "inherited": bool(supernet)}
