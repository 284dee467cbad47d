import copy

import pytest
import torch

from slimvision.robust import AdversarialConfig, AdversarialTraining, AttackConfig, adversarial_accuracy
from slimvision.train import Trainer, TrainConfig

EVAL_ATTACK = AttackConfig(eps=0.1, steps=10)


def _fine_tune(model, digits, callbacks):
    model = copy.deepcopy(model).train()
    Trainer(model, digits["train"], None, TrainConfig(epochs=1, lr=0.02, warmup_epochs=0, progress=False), callbacks=callbacks).fit()
    return model.eval()


def test_pgd_training_raises_pgd_accuracy_over_standard_training_at_equal_epochs(trained_digits_model, digits):
    spec = digits["train"].spec
    standard = _fine_tune(trained_digits_model, digits, [])
    robust = _fine_tune(trained_digits_model, digits, [AdversarialTraining(AdversarialConfig("pgd", AttackConfig(eps=0.1, steps=3)), spec.mean, spec.std)])
    standard_scores = adversarial_accuracy(standard, digits["test"], ("pgd",), EVAL_ATTACK)
    robust_scores = adversarial_accuracy(robust, digits["test"], ("pgd",), EVAL_ATTACK)
    assert robust_scores["pgd"] > standard_scores["pgd"] + 0.1


def test_trades_loss_replaces_the_trainers_loss_and_is_finite(trained_digits_model, digits):
    spec = digits["train"].spec
    callback = AdversarialTraining(AdversarialConfig("trades", AttackConfig(eps=0.1, steps=2), trades_beta=6.0), spec.mean, spec.std)
    trainer = Trainer(copy.deepcopy(trained_digits_model), digits["train"].subset(64), None,
                      TrainConfig(epochs=1, lr=0.01, batch_size=32, progress=False), callbacks=[callback])
    trainer.fit()
    assert trainer.loss_fn == callback.loss
    inputs, targets = digits["train"].images[:16], digits["train"].labels[:16]
    loss, logits = callback.loss(trainer.model.train(), inputs, targets)
    clean = torch.nn.functional.cross_entropy(trainer.model(inputs), targets)
    assert torch.isfinite(loss) and logits.shape == (16, 10)
    assert loss.item() > clean.item()  # the KL term adds to the clean loss


def test_bad_method_is_named():
    from slimvision.errors import ConfigError

    with pytest.raises(ConfigError, match="--method"):
        AdversarialConfig("fast")


def test_callback_state_round_trips_the_attack_stream(digits):
    spec = digits["train"].spec
    first = AdversarialTraining(AdversarialConfig(), spec.mean, spec.std)
    torch.rand(3, generator=first.generator)
    second = AdversarialTraining(AdversarialConfig(), spec.mean, spec.std)
    second.load_state_dict(first.state_dict())
    assert torch.equal(torch.rand(5, generator=first.generator), torch.rand(5, generator=second.generator))
