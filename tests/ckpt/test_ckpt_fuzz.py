"""A seeded fuzz of archives (bytes, structure with valid checksums, forged digest chains): refused or exact, nothing else."""

import json
import time

import pytest
import torch
from safetensors.torch import save_file

from slimvision.ckpt import CompressConfig, compress_run, inspect, restore
from slimvision.ckpt.fuzz import KINDS, run_fuzz


def make_corpus(root):
    """Two small archives: a run (checkpoint dirs, json and run files, lossy) and plain state dicts (lossless, mixed dtypes)."""
    torch.manual_seed(0)
    run = root / "run"
    weight = torch.randn(6, 6)
    for epoch in (1, 2, 3):
        weight = weight + 0.1 * torch.randn(6, 6)
        directory = run / "checkpoints" / f"epoch_{epoch:04d}"
        directory.mkdir(parents=True)
        save_file({"w": weight.contiguous(), "b": torch.randn(6), "n": torch.tensor(epoch)}, str(directory / "model.safetensors"))
        save_file({"state/w/exp_avg": torch.randn(6, 6), "state/w/exp_avg_sq": torch.rand(6, 6)}, str(directory / "optimizer.safetensors"))
        (directory / "state.json").write_text(json.dumps({"epoch": epoch}))
    (run / "run.json").write_text(json.dumps({"model": "small_cnn"}))
    states = root / "states"
    states.mkdir()
    for step in range(3):
        save_file({"h": torch.randn(4, 4).half(), "bf": torch.randn(5).bfloat16(), "mask": torch.rand(3) > 0.5, "i": torch.arange(4) + step},
                  str(states / f"step_{step}.safetensors"))
    compress_run(run, root / "run.svckpt", CompressConfig())
    compress_run(states, root / "states.svckpt", CompressConfig(lossless=True))
    return [root / "run.svckpt", root / "states.svckpt"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("fuzz_corpus"))


@pytest.mark.parametrize("kind", KINDS)
def test_fuzzed_archives_are_refused_or_restored_exactly(corpus, tmp_path, kind):
    """75 archives per kind (300 in all), each inspected and restored at the last checkpoint and at a random index."""
    start = time.perf_counter()
    tally = run_fuzz(corpus, cases=75, seed=16, work=tmp_path / "work", restore=restore, kinds=(kind,), inspect=inspect)
    counts = tally.counts[kind]
    assert sum(counts.values()) >= 150
    for bad in ("wrong", "escaped", "crashed", "leftover"):
        assert counts.get(bad, 0) == 0, (counts, tally.examples)
    assert counts.get("refused", 0) > 75  # the fuzzer really breaks things
    assert time.perf_counter() - start < 60 and tally.slowest_s < 5
