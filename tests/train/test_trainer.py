import pytest
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


@pytest.mark.parametrize("channels_last", [False, True])
def test_resume_is_bit_exact(tmp_path, channels_last):
    train, val = _data()
    full = Trainer(_model(), train, val, _config(ema_decay=0.9, optimizer="adamw", channels_last=channels_last), tmp_path / "full")
    full.fit()

    class StopAfter(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 2:
                raise KeyboardInterrupt

    first = Trainer(_model(), train, val, _config(ema_decay=0.9, optimizer="adamw", channels_last=channels_last), tmp_path / "cut", [StopAfter()])
    try:
        first.fit()
    except KeyboardInterrupt:
        pass
    # killed during epoch 2 (after its last step, before its checkpoint): epoch 2 is redone on resume
    assert [p.name for p in checkpoint_dirs(tmp_path / "cut")] == ["epoch_0001"]
    torch.manual_seed(12345)  # a different global RNG state must not matter
    resumed = Trainer(create_model("small_cnn", num_classes=4, in_chans=1, widths=(4, 8, 8)), train, val,
                      _config(ema_decay=0.9, optimizer="adamw", channels_last=channels_last), tmp_path / "cut")
    resumed.fit(resume=True)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(full.ema.module.state_dict().values(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["train_loss"] for h in full.result.history] == [h["train_loss"] for h in resumed.result.history]


def test_channels_last_trains_every_conv_in_nhwc_and_returns_an_ordinary_model():
    # 3 channels: a 1-channel batch is contiguous in both layouts, so it could not tell them apart
    train, val = (get_dataset("synthetic", split, 8, num_samples=96, num_classes=4, in_chans=3) for split in ("train", "val"))
    layouts = []

    def record(conv, inputs):
        if conv.training:
            layouts.append((inputs[0].is_contiguous(memory_format=torch.channels_last), conv.weight.is_contiguous(memory_format=torch.channels_last)))

    seed_everything(0)
    model = create_model("small_cnn", num_classes=4, in_chans=3, widths=(4, 8, 8))
    for conv in (m for m in model.modules() if isinstance(m, torch.nn.Conv2d)):
        conv.register_forward_pre_hook(record)
    nhwc = Trainer(model, train, val, _config(epochs=2, channels_last=True, ema_decay=0.9))
    nhwc.fit()
    # 96 images / 16 = 6 steps x 2 epochs x 3 convs, every one on NHWC inputs and weights
    assert len(layouts) == 36 and all(a and w for a, w in layouts)
    for module in (nhwc.model, nhwc.ema.module):
        assert all(t.is_contiguous() for t in module.state_dict().values())
    seed_everything(0)
    nchw = Trainer(create_model("small_cnn", num_classes=4, in_chans=3, widths=(4, 8, 8)), train, val, _config(epochs=2))
    nchw.fit()
    # the same training up to float rounding
    for (name, a), b in zip(nchw.model.state_dict().items(), nhwc.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4), name


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


@pytest.mark.parametrize("warmup", [True, False])
def test_a_short_runs_ema_is_the_mean_of_its_weights_with_the_warmup(warmup):
    train, val = _data()
    model = _model()
    seen = [[p.detach().clone() for p in model.parameters()]]

    class Record(Callback):
        def on_batch_end(self, trainer, loss):
            seen.append([p.detach().clone() for p in trainer.model.parameters()])

    trainer = Trainer(model, train.subset(48), None, _config(epochs=1, ema_decay=0.999, ema_warmup=warmup), callbacks=[Record()])
    trainer.fit()
    assert len(seen) == 4  # the initial weights and 3 steps
    for index, ema_param in enumerate(trainer.ema.module.parameters()):
        mean = torch.stack([weights[index] for weights in seen]).mean(0)
        if warmup:
            assert torch.allclose(ema_param, mean, atol=1e-6)
        else:  # 0.999 ** 3 of the initial weights remain
            expected = seen[0][index]
            for weights in seen[1:]:
                expected = 0.999 * expected + 0.001 * weights[index]
            assert torch.allclose(ema_param, expected, atol=1e-6)


def test_a_run_recorded_before_the_ema_warmup_resumes_without_it():
    from slimvision.train.run import RunSpec

    recorded = RunSpec("small_cnn", "digits", config=TrainConfig(ema_decay=0.99)).to_dict()
    assert RunSpec.from_dict(recorded).config.ema_warmup is True
    del recorded["config"]["ema_warmup"]
    assert RunSpec.from_dict(recorded).config.ema_warmup is False
