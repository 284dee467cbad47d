"""Robustness: FGSM / PGD attacks in pixel space, corruption accuracy, adversarial training (PGD, TRADES)."""

from slimvision.robust.attacks import ATTACKS, NORMS, AttackConfig, PixelModel, attack, fgsm, pgd
from slimvision.robust.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from slimvision.robust.evaluate import adversarial_accuracy, corruption_accuracy, evaluate_robustness
from slimvision.robust.train import METHODS, AdversarialConfig, AdversarialTraining, adversarial_train

__all__ = [
    "ATTACKS", "NORMS", "AttackConfig", "PixelModel", "attack", "fgsm", "pgd", "CORRUPTIONS", "SEVERITIES", "corrupt",
    "adversarial_accuracy", "corruption_accuracy", "evaluate_robustness", "METHODS", "AdversarialConfig", "AdversarialTraining", "adversarial_train",
]
