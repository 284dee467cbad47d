"""Every training verb under torchrun: 2 processes with the same global batch end where 1 process does."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env():
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, processes: int = 1, timeout: int = 240):
    if processes == 1:
        command = [sys.executable, "-m", "slimvision", *map(str, args)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
                   "--master_port", str(_free_port()), "-m", "slimvision", *map(str, args)]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model.safetensors"))


def _assert_close(a: dict, b: dict, atol: float = 2e-5):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name].float(), b[name].float(), atol=atol, rtol=1e-4), (name, (a[name].float() - b[name].float()).abs().max())


TRAIN = ["train", "--model", "small_cnn", "--data", "synthetic", "--image-size", "8", "--epochs", "2", "--batch-size", "32", "--lr", "0.05"]


def test_torchrun_two_processes_match_one_process_train(tmp_path):
    _run([*TRAIN, "--out", tmp_path / "one"])
    _run([*TRAIN, "--out", tmp_path / "two"], processes=2)
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    _assert_close(one, two)  # BatchNorm included: its statistics cover the global batch
    moved = max((one[k].float() - load_file(str(tmp_path / "one" / "checkpoints" / "epoch_0001" / "model.safetensors"))[k].float()).abs().max() for k in one)
    assert moved > 1e-3  # the second epoch really trained (the comparison is not between untouched weights)
    assert not (tmp_path / "two" / "checkpoints" / "epoch_0002" / ".tmp").exists()


def test_torchrun_fine_tune_verbs_match_one_process(tmp_path):
    _run([*TRAIN[:-4], "--epochs", "1", "--out", tmp_path / "teacher"])
    distill = ["distill", "--teacher", tmp_path / "teacher", "--student", "small_cnn", "--loss", "kd", "--epochs", "1"]
    _run([*distill, "--out", tmp_path / "d1"])
    _run([*distill, "--out", tmp_path / "d2"], processes=2)
    _assert_close(_weights(tmp_path / "d1"), _weights(tmp_path / "d2"))
    prune = ["prune", "--model", tmp_path / "teacher", "--method", "l1", "--macs-ratio", "0.6", "--finetune-epochs", "1"]
    _run([*prune, "--out", tmp_path / "p1"])
    _run([*prune, "--out", tmp_path / "p2"], processes=2)
    _assert_close(_weights(tmp_path / "p1"), _weights(tmp_path / "p2"))


def test_batch_size_must_split_evenly_across_processes(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "slimvision", *map(str, TRAIN[:-4]), "--batch-size", "31", "--out", tmp_path / "x"]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "not divisible by the 2 data-parallel processes" in done.stderr


QAT_SCRIPT = """
import sys, torch
from safetensors.torch import save_file
from slimvision.data import get_dataset
from slimvision.models import create_model
from slimvision.quant.config import QuantConfig
from slimvision.quant.run import qat_train
from slimvision.train import distributed

with distributed.process_group():
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_chans=1).eval()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    prepared = qat_train(model, get_dataset("digits", "train").subset(128), QuantConfig(backend="torchao", mode="qat", qat_epochs=1, qat_lr=1e-3))
    state = {k: v.detach().float().clone() for k, v in prepared.state_dict().items() if v.dtype.is_floating_point}
    moved = max((state[k] - initial[k].float()).abs().max().item() for k in initial if k in state and initial[k].dtype.is_floating_point)
    if distributed.is_lead():
        save_file(state, sys.argv[1])
        print("moved", moved)
"""


def test_torchrun_two_processes_match_one_process_qat(tmp_path):
    # PT2E QAT trains an exported graph: its BatchNorm calls and activation observers must see the
    # global batch (not each rank's half) for 2 processes to end where 1 process does
    script = tmp_path / "qat.py"
    script.write_text(QAT_SCRIPT)
    for processes, name in ((1, "one"), (2, "two")):
        command = [sys.executable, str(script), str(tmp_path / f"{name}.safetensors")]
        if processes > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
                       "--master_port", str(_free_port()), *command[1:]]
        done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = load_file(str(tmp_path / "one.safetensors")), load_file(str(tmp_path / "two.safetensors"))
    assert any(".activation_post_process.max_val" in k for k in one)  # the observers' ranges are compared too
    _assert_close(one, two)
    assert float(done.stdout.split("moved")[-1]) > 1e-3  # the fine-tune really moved the weights


def test_process_group_frees_data_parallel_wrappers_left_in_reference_cycles(monkeypatch):
    # A DDP wrapper that outlives the group is freed at interpreter shutdown, where gloo aborts the process.
    import weakref
    from types import SimpleNamespace

    from torch.nn.parallel import DistributedDataParallel

    from slimvision.train import distributed

    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)  # take the torchrun path with a one-process group
    with distributed.process_group():
        holder = SimpleNamespace(wrapper=DistributedDataParallel(torch.nn.Linear(2, 2)))
        holder.itself = holder  # the cycle a Trainer's bound loss method makes
        wrapper = weakref.ref(holder.wrapper)
        del holder
    assert wrapper() is None
