"""Distillation losses as plain functions on logits and features, with published defaults.

- `kd_loss`: Hinton et al. 2015, KL(teacher_T || student_T) * T^2.
- `nkd_loss`: Yang et al. 2023 ("From Knowledge Distillation to Self-Knowledge Distillation"),
  the target term -t_t log s_t plus gamma * T^2 * CE between the teacher's and student's
  non-target distributions, each renormalised over the non-target classes. CNN defaults T=1, gamma=1.5.
- `uskd_loss`: the same paper's teacher-free variant: a soft target p_t = s_t^2 + 1 - mean(s_t^2)
  from the student's own (detached) prediction, Zipf (1/rank) soft labels over the non-target
  classes ranked by the student's normalised non-target probabilities (final + weak head), and a
  weak-supervision CE (label smoothing 0.1) on a linear head over intermediate features.
  Defaults alpha=1, beta=0.1, mu=0.005. Ranking uses probabilities for both heads (the paper's
  intent; the released code mixes in log-probabilities after reusing a variable name).
- `feature_loss`: Proteus-style MSE between projected student features and teacher features, at
  feature-map level (4-D) or token level (3-D: CLS token) plus patch level (other tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KD_TEMPERATURE = 4.0
NKD_TEMPERATURE = 1.0
NKD_GAMMA = 1.5
USKD_ALPHA, USKD_BETA, USKD_MU = 1.0, 0.1, 0.005


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = KD_TEMPERATURE) -> torch.Tensor:
    """Hinton KD: batch-mean KL divergence of temperature-softened distributions, times T^2."""
    teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * temperature**2


def _non_target(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, C-1) logits with each row's target class removed."""
    keep = torch.ones_like(logits, dtype=torch.bool).scatter_(1, labels[:, None], False)
    return logits[keep].view(logits.shape[0], -1)


def nkd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
    temperature: float = NKD_TEMPERATURE, gamma: float = NKD_GAMMA,
) -> torch.Tensor:
    """Normalized KD (without the hard-label CE, which the caller adds)."""
    teacher_logits = teacher_logits.detach()
    log_s = F.log_softmax(student_logits, dim=1)
    t_target = F.softmax(teacher_logits, dim=1).gather(1, labels[:, None])
    target_term = -(t_target * log_s.gather(1, labels[:, None])).mean()
    log_s_non = F.log_softmax(_non_target(student_logits, labels) / temperature, dim=1)
    t_non = F.softmax(_non_target(teacher_logits, labels) / temperature, dim=1)
    non_target_term = -gamma * temperature**2 * (t_non * log_s_non).sum(dim=1).mean()
    return target_term + non_target_term


def zipf_soft_labels(rank_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, C-1) soft labels for the non-target classes: 1/rank of each class by `rank_scores`, renormalised."""
    order = rank_scores.argsort(dim=1, descending=True)
    position = order.argsort(dim=1)  # 0 for the highest score
    zipf = 1.0 / (position.float() + 1.0)
    non_target = _non_target(zipf, labels)
    return non_target / non_target.sum(dim=1, keepdim=True)


def uskd_loss(
    student_logits: torch.Tensor, weak_logits: torch.Tensor, labels: torch.Tensor,
    alpha: float = USKD_ALPHA, beta: float = USKD_BETA, mu: float = USKD_MU,
) -> torch.Tensor:
    """Teacher-free USKD: soft target term + Zipf non-target term + weak supervision on `weak_logits`."""
    num_classes = student_logits.shape[1]
    probs = F.softmax(student_logits, dim=1)
    s_target = probs.gather(1, labels[:, None])
    soft_target = (s_target**2 + 1.0 - (s_target**2).mean(0, keepdim=True)).detach()
    log_probs = F.log_softmax(student_logits, dim=1)
    target_term = -(soft_target * log_probs.gather(1, labels[:, None])).mean()
    smoothed = torch.full_like(student_logits, 0.1 / num_classes).scatter_add_(1, labels[:, None], torch.full_like(s_target, 0.9))
    weak_term = -(mu * smoothed * F.log_softmax(weak_logits, dim=1)).sum(dim=1).mean()
    weak_probs = F.softmax(weak_logits, dim=1)
    w_target = weak_probs.gather(1, labels[:, None])
    rank_scores = (weak_probs / (1 - w_target + 1e-6) + probs / (1 - s_target + 1e-6)).detach()
    soft_non = zipf_soft_labels(rank_scores, labels)
    non_target_term = -(soft_non * F.log_softmax(_non_target(student_logits, labels), dim=1)).sum(dim=1).mean()
    return alpha * target_term + beta * non_target_term + weak_term


def feature_loss(student_projected: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """MSE between projected student features and (detached) teacher features of the same shape.

    4-D maps: feature level. 3-D tokens (N, L, C): token level on the first (CLS) token plus
    patch level on the others, as in Proteus.
    """
    teacher_features = teacher_features.detach()
    if student_projected.shape != teacher_features.shape:
        raise ValueError(f"projected student features {tuple(student_projected.shape)} do not match teacher {tuple(teacher_features.shape)}")
    if student_projected.ndim == 3:
        token = F.mse_loss(student_projected[:, 0], teacher_features[:, 0])
        patch = F.mse_loss(student_projected[:, 1:], teacher_features[:, 1:]) if student_projected.shape[1] > 1 else 0.0
        return token + patch
    return F.mse_loss(student_projected, teacher_features)
