"""Teach torch-pruning the option-A (zero-padding) shortcut of the CIFAR ResNets.

torch-pruning cannot see through channel padding, so the shortcut is a module with an explicit
channel map (out channel j <- input channel map[j], or zero where map[j] = -1) and this pruner
edits the map: removing output channels deletes map entries; removing input channels turns the
entries that read them into zeros and renumbers the rest.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch_pruning as tp

from slimvision.models.cifar_resnet import ChannelMapShortcut


class ChannelMapShortcutPruner(tp.pruner.BasePruningFunc):
    TARGET_MODULES = ChannelMapShortcut

    def prune_out_channels(self, layer: ChannelMapShortcut, idxs: Sequence[int]) -> ChannelMapShortcut:
        keep = torch.ones(layer.out_channels, dtype=torch.bool)
        keep[list(idxs)] = False
        layer.channel_map = layer.channel_map[keep].clone()
        return layer

    def prune_in_channels(self, layer: ChannelMapShortcut, idxs: Sequence[int]) -> ChannelMapShortcut:
        removed = torch.zeros(layer.in_channels, dtype=torch.bool)
        removed[list(idxs)] = True
        new_index = torch.cumsum(~removed, 0) - 1  # position of each kept input channel after removal
        old = layer.channel_map
        reads_removed = (old >= 0) & removed[old.clamp(min=0)]
        remapped = torch.where(old >= 0, new_index[old.clamp(min=0)], old)
        layer.channel_map = torch.where(reads_removed, torch.full_like(old, -1), remapped)
        layer.in_channels = int((~removed).sum())
        return layer

    def get_out_channels(self, layer: ChannelMapShortcut) -> int:
        return layer.out_channels

    def get_in_channels(self, layer: ChannelMapShortcut) -> int:
        return layer.in_channels


CUSTOM_PRUNERS = {ChannelMapShortcut: ChannelMapShortcutPruner()}
