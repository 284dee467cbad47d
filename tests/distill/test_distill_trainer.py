import json

import pytest
import torch

from slimvision.data import get_dataset
from slimvision.distill import DistillConfig, Distiller, distill
from slimvision.errors import ConfigError
from slimvision.models import create_model
from slimvision.train import TrainConfig, seed_everything


def _models():
    seed_everything(0)
    return create_model("small_cnn", in_chans=1, widths=(4, 8, 8)), create_model("small_cnn", in_chans=1, widths=(8, 16, 16))


@pytest.mark.parametrize("loss,layers", [("kd", {}), ("nkd", {}), ("uskd", {"student_layer": "features.3"}), ("feature", {"student_layer": "features.5", "teacher_layer": "features.5"}), ("ema", {})])
def test_gradients_reach_student_and_heads_only(loss, layers):
    student, teacher = _models()
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    distiller = Distiller(student, None if loss in ("uskd", "ema") else teacher, DistillConfig(loss=loss, **layers), x)
    value, logits = distiller.loss_fn(student, x, y)
    value.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    if loss in ("uskd", "feature"):
        assert distiller.extra_params and all(p.grad is not None for p in distiller.extra_params)
    if distiller.teacher is not None:
        assert not distiller.teacher.training and all(not p.requires_grad for p in distiller.teacher.parameters())
    distiller.close()


def test_teacher_with_other_class_count_is_refused():
    student = create_model("small_cnn", in_chans=1)
    teacher = create_model("small_cnn", in_chans=1, num_classes=7)
    with pytest.raises(ConfigError, match="teacher predicts 7 classes but the student predicts 10"):
        Distiller(student, teacher, DistillConfig("kd"), torch.randn(2, 1, 8, 8))


def test_missing_feature_layer_is_named():
    student, teacher = _models()
    with pytest.raises(ConfigError, match="student has no layer named 'nope'"):
        Distiller(student, teacher, DistillConfig("feature", student_layer="nope", teacher_layer="features.5"), torch.randn(2, 1, 8, 8))


def test_distill_trains_student_above_chance_and_leaves_teacher_untouched():
    student, teacher = _models()
    train = get_dataset("digits", "train")
    val = get_dataset("digits", "val")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    result = distill(student, teacher, train, val, DistillConfig("nkd"), TrainConfig(epochs=3, progress=False))
    assert result.history[-1]["val_accuracy"] > 0.5
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_distill_cli_from_teacher_into_zoo_student(cli, tmp_path):
    assert cli("train", "--model", "small_cnn", "--data", "digits", "--epochs", "4", "--out", tmp_path / "t")[0] == 0
    code, out, err = cli("distill", "--teacher", tmp_path / "t", "--student", "small_cnn", "--loss", "kd", "--epochs", "3", "--out", tmp_path / "s", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert {"accuracy_student", "accuracy_teacher", "loss"} <= set(summary) and summary["accuracy_student"] > 0.5
    code, out, _ = cli("eval", tmp_path / "s", "--json")
    assert json.loads(out)["accuracy"] == pytest.approx(summary["accuracy_student"])
    code, _, err = cli("distill", "--teacher", tmp_path / "t", "--student", "small_cnn", "--loss", "feature", "--student-layer", "bogus", "--teacher-layer", "features.6", "--epochs", "1", "--out", tmp_path / "f")
    assert code == 1 and "bogus" in err and not (tmp_path / "f").exists()


def test_distill_cli_passes_channels_last_to_the_trainer_and_ema_start_to_the_loss(cli, tmp_path, monkeypatch):
    from slimvision.distill import run as distill_run

    layouts, original = [], distill_run.Trainer

    def recording_trainer(student, train_set, val_set, config, *args, **kwargs):
        layouts.append(config.channels_last)
        return original(student, train_set, val_set, config, *args, **kwargs)

    monkeypatch.setattr(distill_run, "Trainer", recording_trainer)
    code, out, err = cli("distill", "--student", "small_cnn", "--loss", "ema", "--ema-start", "0.25", "--ema-decay", "0.99", "--ema-warmup", "--epochs", "1", "--channels-last", "--data", "digits", "--out", tmp_path / "s", "--json")
    assert code == 0, err
    assert layouts == [True]
    recorded = json.loads((tmp_path / "s" / "meta.json").read_text())["distill"]["config"]
    assert (recorded["ema_start"], recorded["ema_decay"], recorded["ema_warmup"]) == (0.25, 0.99, True)
    code, _, err = cli("distill", "--student", "small_cnn", "--loss", "ema", "--ema-start", "1", "--data", "digits", "--out", tmp_path / "bad")
    assert code == 2 and "must be in [0, 1)" in err and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("epochs, ema_start, teaching_epochs", [(5, 0.6, [3, 4]), (5, 0.0, [0, 1, 2, 3, 4]), (1, 0.6, [0])])
def test_ema_teacher_distills_only_after_its_share_of_the_epochs_but_tracks_from_the_first_step(monkeypatch, epochs, ema_start, teaching_epochs):
    from slimvision.distill import run as distill_run

    seed_everything(0)
    train = get_dataset("synthetic", "train", 8).subset(32)
    student = create_model("small_cnn", in_chans=3, widths=(4, 8, 8))
    initial = {k: v.clone() for k, v in student.state_dict().items()}
    trainers, calls, original_trainer, original_teacher = [], [], distill_run.Trainer, Distiller._teacher_logits

    def recording_trainer(*args, **kwargs):
        trainers.append(original_trainer(*args, **kwargs))
        return trainers[-1]

    def recording_teacher(self, inputs):
        moved = any(not torch.equal(v, initial[k]) for k, v in self.teacher.state_dict().items() if v.dtype.is_floating_point)
        calls.append((trainers[0].epoch, moved))
        return original_teacher(self, inputs)

    monkeypatch.setattr(distill_run, "Trainer", recording_trainer)
    monkeypatch.setattr(Distiller, "_teacher_logits", recording_teacher)
    distill(student, None, train, None, DistillConfig("ema", ema_start=ema_start), TrainConfig(epochs=epochs, batch_size=16, warmup_epochs=0, progress=False))
    assert sorted({epoch for epoch, _ in calls}) == teaching_epochs
    assert len(calls) == 2 * len(teaching_epochs)  # every step of a teaching epoch, none before
    if teaching_epochs[0] > 0:  # the EMA has followed the student through the cross-entropy epochs
        assert calls[0][1]


@pytest.mark.parametrize("field", ["ema_start", "ema_decay"])
@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_ema_start_and_decay_outside_zero_to_one_are_refused(field, value):
    with pytest.raises(ConfigError, match=f"{field} must be in"):
        DistillConfig("ema", **{field: value})


def test_ema_warmup_reaches_the_teacher():
    from types import SimpleNamespace

    student, _ = _models()
    before = [p.clone() for p in student.parameters()]
    distiller = Distiller(student, None, DistillConfig("ema", ema_warmup=True), torch.randn(2, 1, 8, 8))
    with torch.no_grad():
        for param in student.parameters():
            param.add_(2.0)
    distiller.callbacks[0].on_batch_end(SimpleNamespace(model=student), 0.0)
    for old, taught in zip(before, distiller.teacher.parameters()):
        assert torch.allclose(taught, old + 1.0)  # the mean of the start and the first step, not 0.001 of the way


@pytest.mark.parametrize("decay, warmup, warns", [(0.999, False, True), (0.999, True, False), (0.5, False, False)])
def test_an_ema_teacher_longer_than_the_run_is_announced(decay, warmup, warns):
    import warnings

    seed_everything(0)
    train = get_dataset("synthetic", "train", 8).subset(32)
    student = create_model("small_cnn", in_chans=3, widths=(4, 8, 8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        distill(student, None, train, None, DistillConfig("ema", ema_decay=decay, ema_warmup=warmup),
                TrainConfig(epochs=1, batch_size=16, warmup_epochs=0, progress=False))
    messages = [str(w.message) for w in caught if "EMA teacher remembers" in str(w.message)]
    assert messages == (["ema: the EMA teacher remembers about 1000 steps but this run has 2, so it stays close to the starting network; "
                         "pass --ema-warmup or a lower --ema-decay"] if warns else [])
