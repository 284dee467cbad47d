import random

import torch

from slimvision.measure import count_macs, count_params
from slimvision.models import create_model
from slimvision.nas import SPACES
from slimvision.nas.supernet import ResNetSupernet

SPACE = SPACES.get("resnet")()


def test_largest_arch_is_resnet20_with_a_projection_in_every_stage():
    # resnet20 with option-B shortcuts has 272,474 params; this space adds a 16->16 projection
    # (256 weights + 32 BN) in front of the first stage so that stage's width can shrink.
    assert count_params(SPACE.build(SPACE.largest(), 10, 3)) == 272_474 + 256 + 32
    assert count_params(create_model("resnet20", shortcut="B")) == 272_474
    assert len(SPACE.choices()) == 6 and SPACE.smallest() == {"d0": 1, "w0": 0.5, "d1": 1, "w1": 0.5, "d2": 1, "w2": 0.5}


def test_analytic_macs_match_the_flop_counter():
    rng = random.Random(0)
    for arch in [SPACE.largest(), SPACE.smallest()] + [SPACE.sample(rng) for _ in range(4)]:
        assert SPACE.macs(arch, 32, 1, 10) == count_macs(SPACE.build(arch, 10, 1), (1, 32, 32))


def test_supernet_subnets_equal_their_extracted_standalone_networks():
    torch.manual_seed(0)
    supernet = ResNetSupernet(num_classes=10, in_chans=1)
    with torch.no_grad():  # non-trivial BN statistics, so extraction must copy the right slices
        for module in supernet.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    supernet.eval()
    x = torch.randn(3, 1, 16, 16)
    rng = random.Random(1)
    for arch in [SPACE.largest(), SPACE.smallest()] + [SPACE.sample(rng) for _ in range(4)]:
        supernet.set_active(arch)
        standalone = supernet.extract(arch).eval()
        assert torch.allclose(supernet(x), standalone(x), atol=1e-5)
        assert count_params(standalone) == count_params(SPACE.build(arch, 10, 1))
