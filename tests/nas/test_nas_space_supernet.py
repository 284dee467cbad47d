import random

import pytest
import torch

from slimvision.errors import ConfigError
from slimvision.io import ArchSpec, load_artifact, save_artifact
from slimvision.measure import count_macs
from slimvision.nas.sampling import ComplexitySampler, PerformanceSampler, SandwichSampler, create_sampler
from slimvision.nas.spaces.mbv2 import Mbv2Space
from slimvision.nas.supernet import Mbv2Supernet
from slimvision.train import recalibrate_batchnorm

SPACE = Mbv2Space()


def test_space_spans_10_to_100m_macs_and_analytic_macs_are_exact():
    assert 10e6 < SPACE.macs(SPACE.smallest()) < 15e6
    assert 85e6 < SPACE.macs(SPACE.largest()) < 100e6
    rng = random.Random(0)
    for _ in range(3):
        arch = SPACE.sample(rng)
        assert SPACE.macs(arch) == count_macs(SPACE.build(arch), (3, 32, 32))


def test_arch_is_json_and_validated():
    arch = SPACE.sample(random.Random(1))
    assert SPACE.validate(dict(arch)) == arch
    with pytest.raises(ConfigError, match="is not one of"):
        SPACE.validate({**arch, "d0": 9})
    with pytest.raises(ConfigError, match="missing decision"):
        SPACE.validate({k: v for k, v in arch.items() if k != "d0"})


def test_subnet_extraction_inherits_weights_exactly(tmp_path):
    torch.manual_seed(0)
    supernet = Mbv2Supernet(in_chans=1).eval()
    x = torch.randn(2, 1, 32, 32)
    for seed in range(3):
        arch = SPACE.sample(random.Random(seed))
        supernet.set_active(arch)
        standalone = supernet.extract(arch).eval()
        assert torch.allclose(supernet(x), standalone(x), atol=1e-5)
    spec = ArchSpec("nas_mbv2", {"num_classes": 10, "in_chans": 1, "arch": arch})
    save_artifact(standalone, spec, tmp_path / "m")
    assert torch.allclose(load_artifact(tmp_path / "m").model(x), standalone(x), atol=1e-6)


def test_bn_recalibration_of_the_supernet_itself_matches_its_extracted_subnet():
    # The shared, sliced BN layers must take the same exact average as a plain BN (momentum None), not freeze.
    torch.manual_seed(0)
    supernet = Mbv2Supernet(in_chans=1)
    arch = SPACE.smallest()
    supernet.set_active(arch)
    batches = [torch.randn(4, 1, 32, 32) for _ in range(3)]
    expected = recalibrate_batchnorm(supernet.extract(arch), batches)
    recalibrate_batchnorm(supernet, batches)
    got = supernet.extract(arch)
    for name, buffer in expected.state_dict().items():
        if name.endswith(("running_mean", "running_var")):
            assert torch.allclose(got.state_dict()[name], buffer, atol=1e-5), name


def test_sandwich_samples_largest_smallest_and_random():
    archs = SandwichSampler(SPACE, random_subnets=2).sample()
    assert archs[0] == SPACE.largest() and archs[1] == SPACE.smallest() and len(archs) == 4


def test_complexity_sampler_moves_at_most_one_bucket_per_step():
    sampler = ComplexitySampler(SPACE, seed=0, buckets=6)
    previous = sampler.bucket
    for _ in range(30):
        arch = sampler.sample()[0]
        assert abs(sampler.bucket - previous) <= 1
        previous = sampler.bucket
        assert abs(sampler.bucket_of(arch) - sampler.bucket) <= 1  # rejection sampling lands in (or next to) the bucket


def test_performance_sampler_banks_the_best_subnets():
    sampler = PerformanceSampler(SPACE, seed=0, buckets=4, bank_size=2)
    for loss in (3.0, 1.0, 2.0, 0.5):
        arch = sampler.sample()[0]
        sampler.observe(arch, loss)
    banked = [loss for bank in sampler.bank.values() for loss, _ in bank]
    assert all(len(bank) <= 2 for bank in sampler.bank.values()) and min(banked) == 0.5
    state = sampler.state_dict()
    restored = PerformanceSampler(SPACE, seed=99, buckets=4, bank_size=2)
    restored.load_state_dict(state)
    assert restored.sample() == sampler.sample()


def test_unknown_sampler_is_named():
    with pytest.raises(ConfigError, match="unknown sampler"):
        create_sampler("greedy", SPACE)
