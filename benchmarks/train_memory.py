"""Where training memory goes at 224 px: zoo MobileNetV2, one process per (batch, mode), no data pipeline.

For each batch size, with activations kept (the default) and with `checkpoint_activations`:
the bytes autograd keeps for the backward pass (distinct storages seen by a saved-tensor hook),
the process's resident memory before the first step (interpreter, torch, model), and its peak
(VmHWM) over two SGD steps on random 224x224 inputs. The rest of a `slimvision train` run's
memory (loader workers, queued batches) is in data.md.

    nice -n 10 python benchmarks/train_memory.py --batch-sizes 16 32 64   # -> results/train_memory.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, conditions, conditions_markdown, markdown_table  # noqa: E402

ONE_RUN = r'''
import json, sys, time
import torch, torch.nn.functional as F
from slimvision.models import create_model
from slimvision.train.recompute import activation_checkpointing

batch, checkpointed = int(sys.argv[1]), sys.argv[2] == "checkpoint"

def status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024

torch.manual_seed(0)
model = create_model("mobilenetv2", num_classes=10).train()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
inputs, targets = torch.randn(batch, 3, 224, 224), torch.randint(0, 10, (batch,))
before = status_mb("VmRSS")
storages = {}

def pack(tensor):
    storage = tensor.untyped_storage()
    storages[storage.data_ptr()] = storage.nbytes()
    return tensor

seconds = []
with activation_checkpointing(model, enabled=checkpointed):
    for step in range(2):
        storages.clear()
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - started)
print(json.dumps({"saved_mb": sum(storages.values()) / 2**20, "rss_before_mb": before, "peak_rss_mb": status_mb("VmHWM"),
                  "seconds_per_step": seconds[-1]}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--out", default=str(RESULTS / "train_memory.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows, records = [], []
    for batch in args.batch_sizes:
        for mode in ("keep", "checkpoint"):
            load = round(os.getloadavg()[0], 1)
            done = subprocess.run([sys.executable, "-c", ONE_RUN, str(batch), mode], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-3000:])
            record = {"batch": batch, "mode": mode, "load_1min": load, **json.loads(done.stdout.strip().splitlines()[-1])}
            records.append(record)
            print(record, flush=True)
            rows.append([batch, "checkpointed" if mode == "checkpoint" else "kept", f"{record['saved_mb']:.0f}",
                         f"{record['saved_mb'] / batch:.1f}", f"{record['rss_before_mb']:.0f}", f"{record['peak_rss_mb']:.0f}",
                         f"{record['seconds_per_step']:.1f}", load])
    cond = conditions(threads=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    lines = [
        "# Training memory of MobileNetV2 at 224 px: activations kept vs checkpointed", "",
        "One training step (SGD, 10 classes) on random 224x224 inputs, each row its own process, no data pipeline.",
        "`saved MB`: what autograd keeps for the backward pass (distinct storages); `peak RSS`: the process's VmHWM over",
        "two steps, including the interpreter, torch and the model (`RSS before`).", "",
        markdown_table(["batch", "activations", "saved MB", "saved MB / image", "RSS before MB", "peak RSS MB", "s / step", "load (1 min)"], rows), "",
        *conditions_markdown({**cond, "machine": "shared with other jobs; seconds per step are indicative only",
                              "command": "nice -n 10 python benchmarks/train_memory.py " + " ".join(sys.argv[1:])}, time.perf_counter() - started),
    ]
    Path(args.out).write_text("\n".join(lines))
    Path(args.out).with_suffix(".json").write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
