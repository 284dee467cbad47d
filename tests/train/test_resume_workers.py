"""Kill -9 in the middle of an epoch with 2 loader workers, resume: the weights equal an uninterrupted run's."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(1)
    for label in range(3):
        (root / f"c{label}").mkdir(parents=True)
        for i in range(30):
            Image.fromarray((rng.random((20, 28, 3)) * 50 + 60 * label).astype(np.uint8)).save(root / f"c{label}" / f"{i}.jpg")
    return root


def test_kill_nine_mid_epoch_with_workers_then_resume_matches_uninterrupted(cli, tmp_path):
    root = _folder(tmp_path / "images")
    args = ["train", "--model", "small_cnn", "--data", "imagefolder", "--data-root", str(root), "--image-size", "12", "--epochs", "3",
            "--batch-size", "2", "--auto-augment", "trivialaugment", "--mixup", "0.5"]
    code, _, err = cli(*args, "--workers", "0", "--out", tmp_path / "full")
    assert code == 0, err

    cut = tmp_path / "cut"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "slimvision", *args, "--workers", "2", "--out", str(cut)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (cut / "checkpoints" / "epoch_0001").is_dir():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.01)
    time.sleep(0.05)  # inside epoch 2 (36 steps of loading and training)
    os.killpg(process.pid, signal.SIGKILL)  # the trainer and its loader workers
    process.wait()
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == ["epoch_0001"], "killed after epoch 2 ended: not mid-epoch"

    code, _, err = cli("train", "--out", cut, "--resume", "--workers", "2")
    assert code == 0, err
    full, resumed = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert full.keys() == resumed.keys()
    for name in full:
        assert torch.equal(full[name], resumed[name]), name
