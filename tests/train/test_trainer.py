import torch

from slimvision.data import get_dataset
from slimvision.models import create_model
from slimvision.train import Callback, Trainer, TrainConfig, seed_everything
from slimvision.train.checkpoint import checkpoint_dirs
from slimvision.train.trainer import lr_factor


def _data():
    return get_dataset("synthetic", "train", 8, num_samples=96, num_classes=4, in_chans=1), get_dataset(
        "synthetic", "val", 8, num_samples=64, num_classes=4, in_chans=1
    )


def _model():
    seed_everything(0)
    return create_model("small_cnn", num_classes=4, in_chans=1, widths=(4, 8, 8))


def _config(**kw):
    return TrainConfig(**{"epochs": 4, "batch_size": 16, "progress": False, "seed": 3, **kw})


def test_training_beats_chance_on_learnable_data():
    train, val = _data()
    result = Trainer(_model(), train, val, _config(epochs=6)).fit()
    assert result.final["val_accuracy"] > 0.6  # chance is 0.25


def test_resume_is_bit_exact(tmp_path):
    train, val = _data()
    full = Trainer(_model(), train, val, _config(ema_decay=0.9, optimizer="adamw"), tmp_path / "full")
    full.fit()

    class StopAfter(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 2:
                raise KeyboardInterrupt

    first = Trainer(_model(), train, val, _config(ema_decay=0.9, optimizer="adamw"), tmp_path / "cut", [StopAfter()])
    try:
        first.fit()
    except KeyboardInterrupt:
        pass
    # killed during epoch 2 (after its last step, before its checkpoint): epoch 2 is redone on resume
    assert [p.name for p in checkpoint_dirs(tmp_path / "cut")] == ["epoch_0001"]
    torch.manual_seed(12345)  # a different global RNG state must not matter
    resumed = Trainer(create_model("small_cnn", num_classes=4, in_chans=1, widths=(4, 8, 8)), train, val, _config(ema_decay=0.9, optimizer="adamw"), tmp_path / "cut")
    resumed.fit(resume=True)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(full.ema.module.state_dict().values(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["train_loss"] for h in full.result.history] == [h["train_loss"] for h in resumed.result.history]


def test_callbacks_see_every_hook_in_order():
    train, val = _data()
    seen = []

    class Recorder(Callback):
        def on_train_begin(self, trainer):
            seen.append("train_begin")

        def on_epoch_begin(self, trainer, epoch):
            seen.append("epoch_begin")

        def on_after_backward(self, trainer):
            assert any(p.grad is not None for p in trainer.model.parameters())
            seen.append("backward")

        def on_train_end(self, trainer):
            seen.append("train_end")

    Trainer(_model(), train, val, _config(epochs=1), callbacks=[Recorder()]).fit()
    assert seen[0] == "train_begin" and seen[1] == "epoch_begin" and seen[-1] == "train_end"
    assert seen.count("backward") == 96 // 16


def test_custom_loss_function_is_used():
    train, val = _data()
    calls = []

    def loss_fn(model, x, y):
        calls.append(1)
        logits = model(x)
        return torch.nn.functional.cross_entropy(logits, y), logits

    Trainer(_model(), train, val, _config(epochs=1), loss_fn=loss_fn).fit()
    assert len(calls) == 96 // 16


def test_lr_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 100, 10) == 0.1
    assert lr_factor(9, 100, 10) == 1.0
    assert lr_factor(10, 100, 10) == 1.0
    assert abs(lr_factor(100, 100, 10)) < 1e-12
    assert lr_factor(55, 100, 10) == 0.5
