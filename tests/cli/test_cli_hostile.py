"""Options refused at parse time, and outputs that would destroy an input refused before any work."""

import hashlib

import pytest


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from slimvision.cli import run

    out = tmp_path_factory.mktemp("hostile_cli") / "m"
    assert run(["train", "--model", "small_cnn", "--data", "digits", "--epochs", "1", "--out", str(out)]) == 0
    return out


def _fingerprint(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--model", "small_cnn", "--data", "digits", "--image-size", "0", "--out", "{tmp}/o"], "--image-size"),
        (["train", "--model", "small_cnn", "--data", "digits", "--lr", "nan", "--out", "{tmp}/o"], "--lr"),
        (["train", "--model", "small_cnn", "--data", "digits", "--lr", "inf", "--out", "{tmp}/o"], "--lr"),
        (["train", "--model", "small_cnn", "--data", "digits", "--batch-size", "0", "--out", "{tmp}/o"], "--batch-size"),
        (["train", "--model", "small_cnn", "--data", "digits", "--weight-decay", "-1", "--out", "{tmp}/o"], "--weight-decay"),
        (["profile", "small_cnn", "--batch-size", "0"], "--batch-size"),
        (["profile", "small_cnn", "--threads", "0"], "--threads"),
        (["profile", "small_cnn", "--num-classes", "0"], "--num-classes"),
        (["profile", "small_cnn", "--repeats", "0"], "--repeats"),
        (["ckpt", "compress", "{tmp}", "--beta", "-1", "--out", "{tmp}/o.svckpt"], "--beta"),
        (["ckpt", "compress", "{tmp}", "--alpha", "nan", "--out", "{tmp}/o.svckpt"], "--alpha"),
        (["ckpt", "compress", "{tmp}", "--bits", "0", "--out", "{tmp}/o.svckpt"], "--bits"),
        (["prune", "--model", "small_cnn", "--lr", "-0.1", "--out", "{tmp}/o"], "--lr"),
        (["prune", "--model", "small_cnn", "--threads", "0", "--out", "{tmp}/o"], "--threads"),
        (["quantize", "--model", "{tmp}", "--calib-samples", "0", "--out", "{tmp}/o"], "--calib-samples"),
        (["distill", "--student", "small_cnn", "--temperature", "0", "--out", "{tmp}/o"], "--temperature"),
    ],
)
def test_bad_options_are_refused_at_parse_time_with_one_line(cli, tmp_path, args, needle):
    code, out, err = cli(*[a.format(tmp=tmp_path) for a in args])
    assert code == 2, (out, err)
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even run.json


@pytest.mark.parametrize(
    "verb",
    [
        ["quantize", "--model", "{m}", "--out", "{m}"],
        ["quantize", "--model", "{m}", "--out", "{m}/int8"],
        ["prune", "--model", "{m}", "--macs-ratio", "0.5", "--out", "{m}"],
        ["prune", "--model", "{m}", "--macs-ratio", "0.5", "--out", "{parent}"],  # replacing the parent deletes the input
        ["distill", "--teacher", "{m}", "--student", "small_cnn", "--out", "{m}"],
        ["distill", "--student", "{m}", "--loss", "uskd", "--out", "{m}"],
        ["train", "--model", "small_cnn", "--data", "imagefolder", "--data-root", "{m}", "--out", "{m}/run"],
        ["ckpt", "compress", "{m}", "--out", "{m}/a.svckpt"],
    ],
)
def test_an_out_that_is_or_holds_an_input_is_refused_even_with_overwrite(cli, model_dir, verb):
    before = _fingerprint(model_dir.parent)
    for extra in ([], ["--overwrite"]):
        args = [a.format(m=model_dir, parent=model_dir.parent) for a in verb] + extra
        code, _, err = cli(*args)
        assert code == 1 and "overlaps the input" in err and len(err.strip().splitlines()) == 1, err
    assert _fingerprint(model_dir.parent) == before


def test_train_into_an_existing_artifact_needs_overwrite(cli, model_dir, tmp_path):
    import shutil

    target = tmp_path / "m"
    shutil.copytree(model_dir, target)
    shutil.rmtree(target / "checkpoints")  # a plain model artifact, not a run
    (target / "notes.txt").write_text("mine")
    before = _fingerprint(target)
    code, _, err = cli("train", "--model", "small_cnn", "--data", "digits", "--epochs", "1", "--out", target)
    assert code == 1 and "--overwrite" in err and "--resume" in err
    assert _fingerprint(target) == before
    code, _, err = cli("train", "--model", "small_cnn", "--data", "digits", "--epochs", "1", "--seed", "1", "--out", target, "--overwrite")
    assert code == 0, err
    assert (target / "notes.txt").read_text() == "mine"  # only the run's own files are replaced
    assert _fingerprint(target)["model.safetensors"] != before["model.safetensors"]


def test_quantize_into_an_existing_directory_needs_overwrite(cli, model_dir, tmp_path):
    existing = tmp_path / "q"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    code, _, err = cli("quantize", "--model", model_dir, "--out", existing)
    assert code == 1 and "already exists" in err and (existing / "keep.txt").read_text() == "x"
