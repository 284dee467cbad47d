"""Streaming data benchmark: `slimvision train` on a folder of >= 10,000 JPEGs vs a plain DataLoader loop.

Generates N 224 px JPEGs (ImageNet layout: train/<class>/, val/<class>/) in a temp folder, then
runs, interleaved (A, B, A, B, ...), each in its own process:
  A  slimvision train --model mobilenetv2 --data imagefolder --image-size 224 --workers W --epochs 1
     (--max-steps-per-epoch S when the full epoch is too slow for the machine)
  B  a plain PyTorch loop: a minimal Dataset (PIL decode + the same kornia train transform),
     torch DataLoader(shuffle, W workers, persistent), the same zoo MobileNetV2, SGD, S steps.
Throughput is images per second of the training loop (loader start to last step, both sides
measured the same way); memory is the peak proportional set size (PSS: shared pages split
between the processes that share them) of each process tree, sampled from /proc every 0.2 s,
plus the main process's own peak RSS (VmHWM).

    nice -n 10 python benchmarks/data.py --images 10000 --steps 10 --rounds 2      # -> results/data.md
    nice -n 10 python benchmarks/data.py --images 10000 --loader-only --rounds 2   # -> results/data_loader.md

`--loader-only` leaves the model out: one full pass of slimvision's Loader (and of the plain
DataLoader) over all images, so the data pipeline's own throughput and memory are seen alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, conditions, conditions_markdown, markdown_table  # noqa: E402

PLAIN_LOOP = r'''
import json, sys, time
import numpy as np, torch
from pathlib import Path
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from slimvision.data import DataSpec, TrainAugment
from slimvision.models import create_model

root, steps, batch, workers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
checkpointed = sys.argv[5] == "checkpoint"
classes = sorted(p.name for p in (root / "train").iterdir())
files = [(str(f), i) for i, c in enumerate(classes) for f in sorted((root / "train" / c).iterdir())]
spec = DataSpec("imagefolder", len(classes), 3, 224, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
augment = TrainAugment(spec, "resized", flip=True)

class Folder(Dataset):
    def __len__(self):
        return len(files)
    def __getitem__(self, i):
        path, label = files[i]
        with Image.open(path) as img:
            x = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).float().div_(255.0)
        return _apply(x), label

def _apply(x):
    x = x.unsqueeze(0)
    for op in augment.ops:
        x = op(x)
    return x.squeeze(0)

torch.manual_seed(0)
model = create_model("mobilenetv2", num_classes=len(classes), in_chans=3)
if checkpointed:  # the textbook way: torch.utils.checkpoint around every block of model.features
    from functools import partial
    from torch.utils.checkpoint import checkpoint
    for block in model.features:
        block.forward = partial(checkpoint, block.forward, use_reentrant=False)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
loader = DataLoader(Folder(), batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0, prefetch_factor=2 if workers else None)
model.train()
start, seen = time.perf_counter(), 0
for step, (x, y) in enumerate(loader):
    if step == steps:
        break
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    seen += len(y)
print(json.dumps({"images_per_second": seen / (time.perf_counter() - start), "images": seen}))
'''


LOADER_ONLY = r'''
import json, sys, time
import numpy as np, torch
from pathlib import Path
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from slimvision.data import Loader, TrainAugment, get_dataset

root, batch, workers, which = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = get_dataset("imagefolder", "train", 224, root=str(root))
augment = TrainAugment(data.spec, "resized", flip=True)
if which == "slimvision":
    loader = Loader(data, batch, shuffle=True, seed=0, workers=workers, augment=augment)
else:
    classes = sorted(p.name for p in (root / "train").iterdir())
    files = [(str(f), i) for i, c in enumerate(classes) for f in sorted((root / "train" / c).iterdir())]

    class Folder(Dataset):
        def __len__(self):
            return len(files)
        def __getitem__(self, i):
            path, label = files[i]
            with Image.open(path) as img:
                x = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).float().div_(255.0).unsqueeze(0)
            for op in augment.ops:
                x = op(x)
            return x.squeeze(0), label

    loader = DataLoader(Folder(), batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
start, seen = time.perf_counter(), 0
for x, y in loader:
    seen += len(y)
print(json.dumps({"images_per_second": seen / (time.perf_counter() - start), "images": seen}))
'''


def make_folder(root: Path, images: int, classes: int, val_per_class: int) -> float:
    """Write `images` training JPEGs (224 px) and a small val/ split; returns seconds taken."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (classes, 28, 28, 3), dtype=np.uint8)
    from PIL import Image

    for split, count in (("train", images // classes), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"class_{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.repeat(np.repeat(base[c], 8, 0), 8, 1).astype(np.int16) + rng.integers(-40, 40, (224, 224, 3))
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)
    return time.perf_counter() - start


def _tree(pid: int) -> list[int]:
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            frontier += children
    return found


def _proc_kb(path: str, key: str) -> int:
    """The kB value of `key` in a /proc file, or 0 once the process is gone."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(command: list[str], env: dict) -> tuple[str, dict]:
    """Run `command`, sampling its process tree's memory; returns (stdout, memory peaks in MB)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"tree_pss_mb": 0.0, "main_rss_mb": 0.0, "processes": 0}

    def sample() -> None:
        while process.poll() is None:
            pids = _tree(process.pid)
            peaks["tree_pss_mb"] = max(peaks["tree_pss_mb"], sum(_proc_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids) / 1024)
            peaks["main_rss_mb"] = max(peaks["main_rss_mb"], _proc_kb(f"/proc/{process.pid}/status", "VmHWM:") / 1024)
            peaks["processes"] = max(peaks["processes"], len(pids))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return out, peaks


def write_results(args, results: dict, folder: dict, started: float) -> None:
    """Write the markdown + JSON results so far (called after every run, so a cut-short run keeps its rows)."""
    done = {name: rows for name, rows in results.items() if rows}
    median = {name: statistics.median(r["images_per_second"] for r in rows) for name, rows in done.items()}
    ratio = median["slimvision"] / median["plain"] if len(median) == 2 else None
    rows = [[name, index, f"{r['images_per_second']:.2f}", r["images"], f"{r['tree_pss_mb']:.0f}", f"{r['main_rss_mb']:.0f}", r["processes"], r["load_1min"]]
            for index in range(args.rounds) for name in results if index < len(results[name]) for r in [results[name][index]]]
    peak_pss = max((r["tree_pss_mb"] for r in results["slimvision"]), default=float("nan"))
    peak_main = max((r["main_rss_mb"] for r in results["slimvision"]), default=float("nan"))
    cond = conditions(threads=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    full_steps = -(-args.images // args.batch_size)
    what = "one full pass of the loader over every image, no model" if args.loader_only else "training mobilenetv2 (zoo), SGD"
    rounds_done = min(len(r) for r in results.values())
    made = "generated earlier" if math.isnan(folder["seconds"]) else f"generated in {folder['seconds']:.0f} s"
    verdict = "n/a (a side has no run yet)" if ratio is None else f"**{ratio:.3f}** (target >= 0.85: {'met' if ratio >= 0.85 else 'NOT met'})"
    lines = [
        f"# Streaming data: slimvision {'Loader' if args.loader_only else 'train'} vs a plain DataLoader loop", "",
        f"Measured: {what}. Folder: {args.images:,} generated 224x224 JPEGs in {args.classes} classes (train/) + "
        f"{10 * args.classes} in val/, {folder['mb']:.0f} MB on disk ({made}). Batch {args.batch_size}, "
        f"{args.workers} loader workers{', activations checkpointed per block on both sides' if args.checkpoint_activations else ''}; train transform kornia RandomResizedCrop(224) + flip + normalise on both sides.", "",
        f"- images/s, median over runs: slimvision **{median.get('slimvision', float('nan')):.2f}**, plain loop "
        f"**{median.get('plain', float('nan')):.2f}**; ratio {verdict}; {rounds_done} of {args.rounds} interleaved rounds complete",
        f"- peak memory of the slimvision process tree (PSS: trainer + {args.workers} workers, shared pages split): **{peak_pss:.0f} MB**; "
        f"main process peak RSS **{peak_main:.0f} MB** (target < 3 GB: {'met' if max(peak_pss, peak_main) < 3072 else 'NOT met'})",
        f"- steps per run: {'the full epoch' if args.loader_only else (str(args.steps) + ', capped with --max-steps-per-epoch' if args.steps else 'the full epoch')} "
        f"(the full epoch is {full_steps} steps)",
        "", markdown_table(["run", "round", "images/s", "images", "tree PSS MB", "main RSS MB", "processes", "load (1 min) before"], rows), "",
        "Both sides list the whole folder up front and decode one image at a time in the workers, so memory does not grow with",
        "the folder's size. Throughput covers the loop only (slimvision: `images_per_second` of its epoch record, from",
        "loader start to the last step; plain: the same span), sides interleaved A/B in separate processes.", "",
        *conditions_markdown({**cond, "machine": "shared with other jobs (heavily contended; see the load column); "
                              "compare the two sides only through the interleaved ratio",
                              "command": "nice -n 10 python benchmarks/data.py " + " ".join(sys.argv[1:])}, time.perf_counter() - started),
    ]
    Path(args.out).write_text("\n".join(lines))
    Path(args.out).with_suffix(".json").write_text(json.dumps({"results": results, "median": median, "ratio": ratio, "args": vars(args)}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="training steps per run (0 = the full epoch)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved A/B rounds")
    parser.add_argument("--out", default=None, help="results file (default data.md, or data_loader.md with --loader-only)")
    parser.add_argument("--loader-only", action="store_true", help="no model: one full pass of the loader over every image")
    parser.add_argument("--checkpoint-activations", action="store_true", help="both sides recompute each block in backward (less memory)")
    parser.add_argument("--folder", default=None, help="use (and keep) the generated folder here; made only if absent")
    args = parser.parse_args()
    args.out = args.out or str(RESULTS / ("data_loader.md" if args.loader_only else "data.md"))
    started = time.perf_counter()
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="slimvision-data-bench-") as tmp:
        root = Path(args.folder) if args.folder else Path(tmp) / "images"
        seconds = make_folder(root, args.images, args.classes, val_per_class=10) if not (root / "val").is_dir() else float("nan")
        folder = {"seconds": seconds, "mb": sum(f.stat().st_size for f in root.rglob("*.jpg")) / 2**20}
        steps = args.steps or -(-args.images // args.batch_size)
        results: dict[str, list] = {"slimvision": [], "plain": []}
        for round_index in range(args.rounds):
            for name in ("slimvision", "plain"):
                load = round(os.getloadavg()[0], 1)
                if args.loader_only:
                    command = [sys.executable, "-c", LOADER_ONLY, str(root), str(args.batch_size), str(args.workers), name]
                    out, peaks = run_measured(command, env)
                    report = json.loads(out.strip().splitlines()[-1])
                    rate, seen = report["images_per_second"], report["images"]
                elif name == "slimvision":
                    out_dir = Path(tmp) / f"run{round_index}"
                    command = [sys.executable, "-m", "slimvision", "train", "--model", "mobilenetv2", "--data", "imagefolder",
                               "--data-root", str(root), "--image-size", "224", "--workers", str(args.workers), "--epochs", "1",
                               "--batch-size", str(args.batch_size), "--out", str(out_dir), "--json"]
                    if args.steps:
                        command += ["--max-steps-per-epoch", str(args.steps)]
                    if args.checkpoint_activations:
                        command += ["--checkpoint-activations"]
                    _, peaks = run_measured(command, env)
                    history = json.loads((out_dir / "meta.json").read_text())["history"][0]
                    rate, seen = history["images_per_second"], history["images_seen"]
                else:
                    command = [sys.executable, "-c", PLAIN_LOOP, str(root), str(steps), str(args.batch_size), str(args.workers),
                               "checkpoint" if args.checkpoint_activations else "keep"]
                    out, peaks = run_measured(command, env)
                    report = json.loads(out.strip().splitlines()[-1])
                    rate, seen = report["images_per_second"], report["images"]
                results[name].append({"images_per_second": rate, "images": seen, "load_1min": load, **peaks})
                print(f"round {round_index} {name}: {rate:.2f} img/s, tree PSS {peaks['tree_pss_mb']:.0f} MB", flush=True)
                write_results(args, results, folder, started)
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
