"""Distillation losses as plain functions on logits and features, with published defaults.

- `kd_loss`: Hinton et al. 2015, KL(teacher_T || student_T) * T^2.
- `nkd_loss`: Yang et al. 2023 ("From Knowledge Distillation to Self-Knowledge Distillation"),
  the target term -t_t log s_t plus gamma * T^2 * CE between the teacher's and student's
  non-target distributions, each renormalised over the non-target classes. CNN defaults T=1, gamma=1.5.
  Soft (mixup/cutmix) labels: the target class is their argmax, as in the authors' code.
- `uskd_loss`: the same paper's teacher-free variant: a soft target p_t = s_t^2 + 1 - mean(s_t^2)
  from the student's own (detached) prediction, Zipf (1/rank) soft labels over the non-target
  classes ranked by the student's normalised non-target scores (final + weak head), and a
  weak-supervision CE (label smoothing 0.1) on a linear head over intermediate features.
  Defaults alpha=1, beta=0.1, mu=0.005. Soft labels: the two largest classes are the targets, each
  weighted by its label value (as in the authors' code). Ranking: `ranking="prob"` (default) uses
  probabilities for both heads, the paper's intent and the first code release; `ranking="log_prob"`
  reproduces the current released code, which ranks the final head with log-probabilities after
  reusing a variable name.
- `feature_loss`: Proteus-style MSE between projected student features and teacher features, at
  feature-map level (4-D) or token level (3-D: CLS token) plus patch level (other tokens).

`PRESETS` holds the published per-setting hyperparameters (CIFAR-100, ViT); see docs/distill.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KD_TEMPERATURE = 4.0
NKD_TEMPERATURE = 1.0
NKD_GAMMA = 1.5
USKD_ALPHA, USKD_BETA, USKD_MU = 1.0, 0.1, 0.005
USKD_RANKINGS = ("prob", "log_prob")

# Published hyperparameters per setting (the authors' configs); keys are loss -> {parameter: value}.
PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "imagenet-cnn": {"nkd": {"temperature": NKD_TEMPERATURE, "gamma": NKD_GAMMA}, "uskd": {"alpha": USKD_ALPHA, "beta": USKD_BETA, "mu": USKD_MU}},
    "cifar100": {"nkd": {"temperature": 3.0, "gamma": 3.5}, "uskd": {"alpha": 0.1, "beta": 0.1, "mu": 0.1}},
    "vit": {"nkd": {"temperature": 1.0, "gamma": 1.0}},
}


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = KD_TEMPERATURE) -> torch.Tensor:
    """Hinton KD: batch-mean KL divergence of temperature-softened distributions, times T^2."""
    teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * temperature**2


def _drop_columns(values: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """(N, C-k) values with each row's k `columns` (N, k) removed."""
    keep = torch.ones_like(values, dtype=torch.bool).scatter_(1, columns, False)
    return values[keep].view(values.shape[0], -1)


def _non_target(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, C-1) logits with each row's target class removed."""
    return _drop_columns(logits, labels[:, None])


def hard_labels(labels: torch.Tensor) -> torch.Tensor:
    """Class indices (N,) from class indices or soft (N, C) labels (their argmax)."""
    return labels.argmax(dim=1) if labels.ndim > 1 else labels


def nkd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
    temperature: float = NKD_TEMPERATURE, gamma: float = NKD_GAMMA,
) -> torch.Tensor:
    """Normalized KD (without the hard-label CE, which the caller adds); labels (N,) or soft (N, C)."""
    labels = hard_labels(labels)
    teacher_logits = teacher_logits.detach()
    log_s = F.log_softmax(student_logits, dim=1)
    t_target = F.softmax(teacher_logits, dim=1).gather(1, labels[:, None])
    target_term = -(t_target * log_s.gather(1, labels[:, None])).mean()
    log_s_non = F.log_softmax(_non_target(student_logits, labels) / temperature, dim=1)
    t_non = F.softmax(_non_target(teacher_logits, labels) / temperature, dim=1)
    non_target_term = -gamma * temperature**2 * (t_non * log_s_non).sum(dim=1).mean()
    return target_term + non_target_term


def zipf_soft_labels(rank_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, C-k) soft labels for the non-target classes: 1/rank of each class by `rank_scores`, renormalised.

    `labels` is (N,) (one target per row) or (N, k) (k targets per row, all removed).
    """
    targets = labels[:, None] if labels.ndim == 1 else labels
    order = rank_scores.argsort(dim=1, descending=True)
    position = order.argsort(dim=1)  # 0 for the highest score
    zipf = 1.0 / (position.to(rank_scores.dtype) + 1.0)
    non_target = _drop_columns(zipf, targets)
    return non_target / non_target.sum(dim=1, keepdim=True)


def _uskd_targets(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(target columns (N, k), their label values (N, k), label distribution (N, C)) for hard or soft labels."""
    if labels.ndim > 1:
        values, columns = labels.to(dtype).sort(dim=1, descending=True)
        return columns[:, :2], values[:, :2], labels.to(dtype)
    columns = labels[:, None]
    distribution = torch.zeros(labels.shape[0], num_classes, dtype=dtype, device=labels.device).scatter_(1, columns, 1.0)
    return columns, torch.ones(labels.shape[0], 1, dtype=dtype, device=labels.device), distribution


def uskd_loss(
    student_logits: torch.Tensor, weak_logits: torch.Tensor, labels: torch.Tensor,
    alpha: float = USKD_ALPHA, beta: float = USKD_BETA, mu: float = USKD_MU, ranking: str = "prob",
) -> torch.Tensor:
    """Teacher-free USKD: soft target term + Zipf non-target term + weak supervision on `weak_logits`.

    labels: (N,) class indices or soft (N, C) labels (mixup/cutmix; the top-2 classes are the targets).
    """
    if ranking not in USKD_RANKINGS:
        raise ValueError(f"unknown USKD ranking {ranking!r}; use one of {', '.join(USKD_RANKINGS)}")
    num_classes = student_logits.shape[1]
    columns, values, distribution = _uskd_targets(labels, num_classes, student_logits.dtype)
    probs = F.softmax(student_logits, dim=1)
    log_probs = F.log_softmax(student_logits, dim=1)
    s_target = probs.gather(1, columns)
    soft_target = s_target**2 + values - (s_target**2).mean(0, keepdim=True)
    soft_target = torch.where(values == 0, torch.zeros_like(soft_target), soft_target).detach()
    target_term = -(soft_target * log_probs.gather(1, columns)).sum(dim=1).mean()
    smoothed = 0.9 * distribution + 0.1 / num_classes
    weak_term = -(mu * smoothed * F.log_softmax(weak_logits, dim=1)).sum(dim=1).mean()
    weak_probs = F.softmax(weak_logits, dim=1)
    w_target = weak_probs.gather(1, columns).sum(1, keepdim=True)
    final = probs if ranking == "prob" else log_probs  # the current release reuses the log-probabilities here
    f_target = final.gather(1, columns).sum(1, keepdim=True)
    rank_scores = (weak_probs / (1 - w_target + 1e-6) + final / (1 - f_target + 1e-6)).detach()
    soft_non = zipf_soft_labels(rank_scores, columns)
    non_target_term = -(soft_non * F.log_softmax(_drop_columns(student_logits, columns), dim=1)).sum(dim=1).mean()
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
