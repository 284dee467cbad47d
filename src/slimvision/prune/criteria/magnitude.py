"""Random, L1/L2 weight magnitude, BN scaling factor (network slimming) and first-order Taylor."""

from __future__ import annotations

import torch.nn as nn
import torch_pruning as tp

from slimvision.prune.criteria.base import CRITERIA, Criterion


@CRITERIA.register("random")
class RandomCriterion(Criterion):
    """Uniformly random scores: the baseline every criterion should beat."""

    def importance(self) -> tp.importance.Importance:
        return tp.importance.RandomImportance()


@CRITERIA.register("l1")
class L1Criterion(Criterion):
    """Sum of |w| over every weight slice a channel removal deletes (whole dependency group)."""

    def importance(self) -> tp.importance.Importance:
        return tp.importance.GroupMagnitudeImportance(p=1)


@CRITERIA.register("l2")
class L2Criterion(Criterion):
    def importance(self) -> tp.importance.Importance:
        return tp.importance.GroupMagnitudeImportance(p=2)


@CRITERIA.register("bn")
class BNScaleCriterion(Criterion):
    """|gamma| of the BatchNorm layers in the group (Liu et al. 2017, network slimming).

    Pair it with `BNSparsityRegulariser` during training, which pushes unneeded gammas to zero.
    """

    def importance(self) -> tp.importance.Importance:
        return tp.importance.GroupMagnitudeImportance(p=1, target_types=[nn.modules.batchnorm._BatchNorm])


@CRITERIA.register("taylor")
class TaylorCriterion(Criterion):
    """|w * dL/dw| summed over the group (Molchanov et al. 2019), gradients from calibration batches."""

    needs_gradients = True

    def importance(self) -> tp.importance.Importance:
        return tp.importance.GroupTaylorImportance()


@CRITERIA.register("precrop")
class PreCropCriterion(L1Criterion):
    """PreCropping picks per-layer widths from saliency densities; within a layer any channels do at
    initialization, so magnitude decides which (the widths come from `schedules.precrop_ratio_dict`)."""


@CRITERIA.register("chex")
class ChexCriterion(Criterion):
    """CHEX explores channels while training (see `slimvision.prune.chex`); it has no one-shot score."""

    during_training = True
