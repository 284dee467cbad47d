"""BatchNorm re-estimation: the exact statistics of the given batches, computed as at inference."""

import torch
import torch.nn as nn

from slimvision.train import recalibrate_batchnorm


def test_statistics_are_the_exact_average_over_all_batches_and_momentum_is_restored():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)).eval()
    batches = [torch.randn(8, 1, 4, 4) * (i + 1) + 3 for i in range(3)]  # different scales: a moving average would weigh the last one more
    recalibrate_batchnorm(net, batches)
    with torch.no_grad():
        outputs = torch.cat([net[0](b) for b in batches])
    assert torch.allclose(net[1].running_mean, outputs.mean(dim=(0, 2, 3)), atol=1e-5)
    per_batch_var = torch.stack([net[0](b).var(dim=(0, 2, 3)) for b in batches]).mean(0)  # unbiased per batch, averaged
    assert torch.allclose(net[1].running_var, per_batch_var.detach(), atol=1e-4)
    assert net[1].momentum == 0.1 and not net.training


def test_layers_other_than_batchnorm_run_as_at_inference():
    net = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)).train()
    batch = torch.randn(16, 1, 4, 4) + 3
    recalibrate_batchnorm(net, [batch])
    with torch.no_grad():
        expected = net[1](batch).mean(dim=(0, 2, 3))  # without dropout's zeros and 2x scaling
    assert torch.allclose(net[2].running_mean, expected, atol=1e-5)
    assert net.training  # mode restored
