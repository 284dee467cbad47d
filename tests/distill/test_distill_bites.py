"""Distillation losses and the Distiller's total loss against formulas written out independently (numpy, by hand)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from slimvision.distill import Distiller, DistillConfig
from slimvision.distill.losses import kd_loss, nkd_loss

STUDENT = np.array([[2.0, 0.5, -1.0, 0.3], [0.1, 1.2, 0.4, -0.7]])
TEACHER = np.array([[1.5, 1.0, -0.5, 0.0], [-0.3, 2.0, 0.9, 0.2]])
LABELS = np.array([0, 2])  # row 2's target is not the teacher's argmax: an asymmetric case


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _nkd_by_hand(student, teacher, labels, temperature, gamma) -> float:
    """Yang et al. 2023, eq. 8: -t_t log s_t (no temperature) - gamma T^2 sum_{i != t} t^_i(T) log s^_i(T)."""
    total = 0.0
    for s, t, y in zip(student, teacher, labels):
        s_prob, t_prob = _softmax(s), _softmax(t)
        target = -t_prob[y] * np.log(s_prob[y])
        others = [i for i in range(len(s)) if i != y]
        s_non = _softmax(s[others] / temperature)
        t_non = _softmax(t[others] / temperature)
        total += target - gamma * temperature**2 * np.sum(t_non * np.log(s_non))
    return total / len(labels)


def _kd_by_hand(student, teacher, temperature) -> float:
    """Hinton 2015: T^2 * mean over rows of KL(softmax(t/T) || softmax(s/T))."""
    p, q = _softmax(teacher / temperature), _softmax(student / temperature)
    return float(temperature**2 * np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


@pytest.mark.parametrize("temperature, gamma", [(3.0, 3.5), (2.0, 1.5)])
def test_nkd_matches_the_published_formula_at_temperature_above_one(temperature, gamma):
    got = nkd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), temperature=temperature, gamma=gamma)
    assert float(got) == pytest.approx(_nkd_by_hand(STUDENT, TEACHER, LABELS, temperature, gamma), rel=1e-6)


def test_nkd_target_term_ignores_the_temperature():
    # with gamma = 0 only the target term is left; it must not change with T
    args = (torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS))
    at_one, at_four = nkd_loss(*args, temperature=1.0, gamma=0.0), nkd_loss(*args, temperature=4.0, gamma=0.0)
    assert float(at_four) == pytest.approx(float(at_one), rel=1e-9)
    assert float(at_one) == pytest.approx(_nkd_by_hand(STUDENT, TEACHER, LABELS, 1.0, 0.0), rel=1e-6)


def test_kd_matches_hinton_with_the_t_squared_factor():
    got = kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), temperature=3.0)
    assert float(got) == pytest.approx(_kd_by_hand(STUDENT, TEACHER, 3.0), rel=1e-6)


class _Fixed(nn.Module):
    """A 'model' whose logits are a parameter per input row (so the loss is a known function of them)."""

    def __init__(self, logits: np.ndarray):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: x.shape[0]] + 0 * x.sum()


def _distiller_loss(config: DistillConfig) -> float:
    student, teacher = _Fixed(STUDENT), _Fixed(TEACHER)
    inputs = torch.zeros(2, 1)
    distiller = Distiller(student, teacher, config, inputs)
    loss, _ = distiller.loss_fn(student, inputs, torch.tensor(LABELS))
    return float(loss.detach())


def _ce() -> float:
    return float(np.mean([-np.log(_softmax(s)[y]) for s, y in zip(STUDENT, LABELS)]))


def test_distiller_nkd_adds_the_nkd_term_to_cross_entropy():
    got = _distiller_loss(DistillConfig(loss="nkd", temperature=2.0, alpha=1.5))
    assert got == pytest.approx(_ce() + _nkd_by_hand(STUDENT, TEACHER, LABELS, 2.0, 1.5), rel=1e-5)


def test_distiller_kd_weights_kd_by_its_default_alpha():
    got = _distiller_loss(DistillConfig(loss="kd", temperature=4.0))
    assert got == pytest.approx(0.1 * _ce() + 0.9 * _kd_by_hand(STUDENT, TEACHER, 4.0), rel=1e-5)


def test_distiller_kd_with_explicit_alpha():
    got = _distiller_loss(DistillConfig(loss="kd", temperature=2.0, alpha=0.3))
    assert got == pytest.approx(0.7 * _ce() + 0.3 * _kd_by_hand(STUDENT, TEACHER, 2.0), rel=1e-5)


def test_distiller_nkd_preset_cifar100_uses_its_temperature_and_gamma():
    got = _distiller_loss(DistillConfig(loss="nkd", preset="cifar100"))
    assert got == pytest.approx(_ce() + _nkd_by_hand(STUDENT, TEACHER, LABELS, 3.0, 3.5), rel=1e-5)


def test_feature_loss_on_tokens_is_cls_mse_plus_patch_mse():
    from slimvision.distill.losses import feature_loss

    # (N=1, L=2, C=1): CLS token error 1 -> 1; patch error 3 -> 9
    student, teacher = torch.tensor([[[1.0], [3.0]]]), torch.tensor([[[0.0], [0.0]]])
    assert float(feature_loss(student, teacher)) == pytest.approx(1.0 + 9.0)
    # one token only: no patch term
    assert float(feature_loss(student[:, :1], teacher[:, :1])) == pytest.approx(1.0)
    # (N=1, L=3, C=2): token 0 error (1, 1) -> 1; patches errors (2, 0), (0, 2) -> mean 2
    student = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]]])
    assert float(feature_loss(student, torch.zeros_like(student))) == pytest.approx(1.0 + 2.0)


def test_feature_loss_names_both_shapes_on_mismatch():
    from slimvision.distill.losses import feature_loss

    with pytest.raises(ValueError, match=r"projected student features \(2, 3\) do not match teacher \(2, 4\)"):
        feature_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_uskd_names_the_rankings_on_a_bad_one():
    from slimvision.distill.losses import uskd_loss

    with pytest.raises(ValueError, match="unknown USKD ranking 'rank'; use one of prob, log_prob"):
        uskd_loss(torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([0, 1]), ranking="rank")


def test_uskd_soft_labels_of_another_dtype_keep_the_logits_dtype():
    from slimvision.distill.losses import uskd_loss

    labels = torch.tensor([[0.7, 0.3, 0.0, 0.0], [0.0, 0.0, 0.6, 0.4]], dtype=torch.float64)
    loss = uskd_loss(torch.tensor(STUDENT, dtype=torch.float32), torch.tensor(TEACHER, dtype=torch.float32), labels)
    assert loss.dtype == torch.float32
