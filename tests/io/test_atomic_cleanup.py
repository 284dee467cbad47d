"""Leftovers of killed writes are removed at the next write; a live writer's files are kept."""

import os
import subprocess
import sys
import time

import torch

from slimvision.io.atomic import atomic_directory, atomic_write_bytes, remove_stale_temps


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_checkpoint_save_is_cleaned_at_the_next_save(tmp_path):
    """A process killed inside save_checkpoint leaves .epoch_NNNN.PID.*.tmp; the next save removes it."""
    script = (
        "import os, sys, torch\n"
        "from slimvision.train.checkpoint import save_checkpoint\n"
        "import slimvision.io.artifact as artifact\n"
        "model = torch.nn.Linear(2, 2)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "original = artifact.save\n"
        "def killed(*a, **k):\n"
        "    os._exit(9)  # dies with the temp directory half written\n"
        "artifact.save = killed\n"
        f"save_checkpoint({str(tmp_path)!r}, 3, model, optimizer, {{}})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ}, capture_output=True)
    assert result.returncode == 9, result.stderr
    leftovers = [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".epoch_0003.")
    from slimvision.train.checkpoint import save_checkpoint

    model = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path, 1, model, torch.optim.SGD(model.parameters(), lr=0.1), {})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_0001"]


def test_only_dead_writers_temps_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    (tmp_path / f".model.safetensors.{dead}.abcdefgh.tmp").write_bytes(b"x")
    (tmp_path / f".model.safetensors.{alive}.abcdefgh.tmp").write_bytes(b"x")
    (tmp_path / f".other.json.{dead}.abcdefgh.tmp").write_bytes(b"x")
    atomic_write_bytes(tmp_path / "model.safetensors", b"new")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["model.safetensors", f".model.safetensors.{alive}.abcdefgh.tmp", f".other.json.{dead}.abcdefgh.tmp"])
    remove_stale_temps(tmp_path)
    assert f".other.json.{dead}.abcdefgh.tmp" not in [p.name for p in tmp_path.iterdir()]


def test_old_pidless_temps_go_after_an_hour_and_a_lost_backup_is_put_back(tmp_path):
    legacy = tmp_path / ".epoch_0002.k3j4h5g6.tmp"
    legacy.mkdir()
    fresh = tmp_path / ".epoch_0004.a1b2c3d4.tmp"
    fresh.mkdir()
    old = time.time() - 7200
    os.utime(legacy, (old, old))
    backup = tmp_path / f".run.old-{_dead_pid()}"  # killed between moving `run` away and moving the new one in
    backup.mkdir()
    (backup / "keep.txt").write_text("data")
    remove_stale_temps(tmp_path)
    assert not legacy.exists() and fresh.exists()
    assert (tmp_path / "run" / "keep.txt").read_text() == "data" and not backup.exists()


def test_replacing_a_file_with_a_directory_leaves_no_backup(tmp_path):
    (tmp_path / "out").write_text("a file")
    with atomic_directory(tmp_path / "out") as target:
        (target / "x").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
