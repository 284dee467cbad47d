"""Knowledge distillation: KD, NKD, USKD, feature (Proteus-style) and EMA-teacher losses on the foundation Trainer."""

from slimvision.distill.distiller import LOSSES, DistillConfig, Distiller
from slimvision.distill.losses import feature_loss, kd_loss, nkd_loss, uskd_loss, zipf_soft_labels
from slimvision.distill.run import DistillResult, distill, distill_artifact

__all__ = [
    "LOSSES", "DistillConfig", "Distiller", "feature_loss", "kd_loss", "nkd_loss", "uskd_loss", "zipf_soft_labels",
    "DistillResult", "distill", "distill_artifact",
]
