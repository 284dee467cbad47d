"""MACs and parameter counts against hand counts on tiny nets: depthwise, grouped, strided, pointwise, linear, batch > 1."""

from __future__ import annotations

import torch.nn as nn

from slimvision.measure import count_macs, count_params

# input 8 x 10 x 12 (non-square, so swapped H/W would show)
INPUT = (8, 10, 12)


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise: 10x12 out
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 6, 3, stride=2, padding=1, groups=2),  # grouped, strided: 5x6 out
        nn.Conv2d(6, 4, 1),  # pointwise
        nn.Flatten(),
        nn.Linear(4 * 5 * 6, 3, bias=False),
    )


# MACs = out_channels x (in_channels / groups) x kernel area x output positions; biases, BN, ReLU not counted
DEPTHWISE_MACS = 8 * 1 * 9 * (10 * 12)  # 8640
GROUPED_MACS = 6 * 4 * 9 * (5 * 6)  # 6480
POINTWISE_MACS = 4 * 6 * 1 * (5 * 6)  # 720
LINEAR_MACS = 120 * 3  # 360


def test_macs_of_depthwise_grouped_strided_pointwise_and_linear_layers():
    macs = count_macs(_net(), INPUT)
    assert macs == DEPTHWISE_MACS + GROUPED_MACS + POINTWISE_MACS + LINEAR_MACS
    assert type(macs) is int  # a count: JSON and tables must show 16200, not 16200.0


def test_macs_are_per_batch_and_scale_with_the_batch_size():
    assert count_macs(_net(), INPUT, batch_size=4) == 4 * (DEPTHWISE_MACS + GROUPED_MACS + POINTWISE_MACS + LINEAR_MACS)


def test_depthwise_conv_alone_is_not_counted_as_a_dense_conv():
    dense = nn.Conv2d(8, 8, 3, padding=1, bias=False)
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    assert count_macs(dense, INPUT) == 8 * 8 * 9 * 120 == 8 * count_macs(depthwise, INPUT)


def test_params_count_weights_biases_and_bn_affine_but_not_bn_statistics():
    net = _net()
    expected = 8 * 1 * 9 + (8 + 8) + (6 * 4 * 9 + 6) + (4 * 6 + 4) + 120 * 3  # depthwise, BN gamma/beta, grouped, pointwise, linear
    assert count_params(net) == expected == 698
    assert sum(b.numel() for b in net.buffers()) > 0  # running mean/var and the batch counter exist but are not parameters


def test_frozen_parameters_are_still_counted():
    net = _net()
    for parameter in net[0].parameters():
        parameter.requires_grad_(False)
    assert count_params(net) == 698


def test_counting_macs_leaves_a_training_model_in_training_mode():
    net = _net().train()
    count_macs(net, INPUT)
    assert net.training and all(m.training for m in net.modules())


def test_macs_are_counted_on_the_model_s_own_device():
    # a model on the meta device has no weights in memory: the example input must be made on that device too
    assert count_macs(_net().to("meta"), INPUT) == DEPTHWISE_MACS + GROUPED_MACS + POINTWISE_MACS + LINEAR_MACS
