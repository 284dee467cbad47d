"""NKD/USKD pinned to the authors' formulas on tiny fixed inputs: soft (mixup/cutmix) labels, both USKD
rankings, USKD on (N, tokens, C) features, beta/mu, and the published presets."""

import json
import math

import pytest
import torch
import torch.nn as nn

from slimvision.distill import DistillConfig, Distiller, nkd_loss, uskd_loss
from slimvision.errors import ConfigError

STUDENT = torch.tensor([[1.0, 2.0, 0.5, -1.0, 0.2], [0.0, -0.5, 1.5, 0.3, 0.9], [0.4, 0.1, -0.2, 1.1, 0.6]], dtype=torch.float64)
TEACHER = torch.tensor([[0.5, 3.0, 0.0, -2.0, 0.1], [1.0, 0.0, 2.0, -1.0, 0.3], [0.2, 0.0, 0.3, 2.0, -0.5]], dtype=torch.float64)
WEAK = torch.tensor([[0.2, 1.0, 0.1, 0.0, 0.35], [0.0, 0.1, 0.9, 0.2, 0.45], [0.3, 0.5, 0.05, 0.7, 0.15]], dtype=torch.float64)
# mixup-style labels: row 0 mixes classes 1 (0.7) and 3 (0.3); row 1 is pure class 2; row 2 mixes 3 (0.6) and 0 (0.4)
SOFT = torch.tensor([[0.0, 0.7, 0.0, 0.3, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.6, 0.0]], dtype=torch.float64)


def softmax(row, t=1.0):
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def uskd_reference(student, weak, label_rows, alpha, beta, mu, ranking):
    """USKD from the authors' formulas in plain Python; label_rows = per-row {class: value} of the top-2 (or 1) targets."""
    n, c = len(student), len(student[0])
    probs = [softmax(r) for r in student]
    s_t = [[probs[i][k] for k in label_rows[i]] for i in range(n)]
    width = len(label_rows[0])
    column_mean_sq = [sum(s_t[i][j] ** 2 for i in range(n)) / n for j in range(width)]
    total = 0.0
    for i in range(n):
        classes, values = list(label_rows[i]), list(label_rows[i].values())
        p_t = [0.0 if values[j] == 0 else s_t[i][j] ** 2 + values[j] - column_mean_sq[j] for j in range(width)]
        total += alpha * -sum(p * math.log(probs[i][k]) for p, k in zip(p_t, classes)) / n
        distribution = [label_rows[i].get(k, 0.0) for k in range(c)]
        w = softmax(weak[i])
        total += -mu * sum((0.9 * d + 0.1 / c) * math.log(wk) for d, wk in zip(distribution, w)) / n
        final = probs[i] if ranking == "prob" else [math.log(p) for p in probs[i]]
        w_target, f_target = sum(w[k] for k in classes), sum(final[k] for k in classes)
        scores = [w[k] / (1 - w_target + 1e-6) + final[k] / (1 - f_target + 1e-6) for k in range(c)]
        order = sorted(range(c), key=lambda k: -scores[k])
        zipf = {k: 1 / (pos + 1) for pos, k in enumerate(order)}
        non = [k for k in range(c) if k not in classes]
        z = [zipf[k] / sum(zipf[m] for m in non) for k in non]
        log_non = [math.log(v) for v in softmax([student[i][k] for k in non])]
        total += beta * -sum(a * b for a, b in zip(z, log_non)) / n
    return total


def test_nkd_soft_labels_use_their_argmax():
    hard = torch.tensor([1, 2, 3])
    assert nkd_loss(STUDENT, TEACHER, SOFT, 3.0, 3.5).item() == pytest.approx(nkd_loss(STUDENT, TEACHER, hard, 3.0, 3.5).item(), abs=1e-12)


@pytest.mark.parametrize("ranking", ["prob", "log_prob"])
def test_uskd_hard_labels_by_hand_for_both_rankings(ranking):
    labels = torch.tensor([1, 2, 3])
    rows = [{1: 1.0}, {2: 1.0}, {3: 1.0}]
    expected = uskd_reference(STUDENT.tolist(), WEAK.tolist(), rows, 1.0, 0.1, 0.005, ranking)
    assert uskd_loss(STUDENT, WEAK, labels, ranking=ranking).item() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("ranking", ["prob", "log_prob"])
def test_uskd_soft_labels_take_the_top_two_classes_with_their_values(ranking):
    # row 1 is one-hot: its second "target" is the first zero column (value 0): weight 0, still left out of the Zipf part
    second_of_row_1 = int(SOFT[1].sort(descending=True).indices[1])
    rows = [{1: 0.7, 3: 0.3}, {2: 1.0, second_of_row_1: 0.0}, {3: 0.6, 0: 0.4}]
    expected = uskd_reference(STUDENT.tolist(), WEAK.tolist(), rows, 0.1, 0.2, 0.1, ranking)
    assert uskd_loss(STUDENT, WEAK, SOFT, 0.1, 0.2, 0.1, ranking=ranking).item() == pytest.approx(expected, abs=1e-9)


def test_the_two_rankings_differ_where_the_heads_disagree():
    # target class 1; the weak head prefers class 2, the final head's log-probabilities spread classes 3 and 4 apart
    student = torch.tensor([[3.08, -0.59, -4.36, 1.14, -2.17]], dtype=torch.float64)
    weak = torch.tensor([[-1.4, 0.4, 0.84, -0.72, -0.4]], dtype=torch.float64)
    labels = torch.tensor([1])
    by_prob, by_log_prob = (uskd_loss(student, weak, labels, ranking=r).item() for r in ("prob", "log_prob"))
    assert by_prob != pytest.approx(by_log_prob, abs=1e-6)
    for ranking, value in (("prob", by_prob), ("log_prob", by_log_prob)):
        assert value == pytest.approx(uskd_reference(student.tolist(), weak.tolist(), [{1: 1.0}], 1.0, 0.1, 0.005, ranking), abs=1e-9)


def test_beta_and_mu_scale_their_terms():
    labels = torch.tensor([1, 2, 3])
    base = uskd_loss(STUDENT, WEAK, labels, 0.0, 0.0, 0.0).item()
    assert base == pytest.approx(0.0)
    non_target = uskd_loss(STUDENT, WEAK, labels, 0.0, 1.0, 0.0).item()
    weak = uskd_loss(STUDENT, WEAK, labels, 0.0, 0.0, 1.0).item()
    assert uskd_loss(STUDENT, WEAK, labels, 0.0, 0.3, 0.2).item() == pytest.approx(0.3 * non_target + 0.2 * weak, abs=1e-9)


def test_presets_and_explicit_values():
    assert DistillConfig("nkd", preset="cifar100").hyperparameters() == {"temperature": 3.0, "gamma": 3.5}
    assert DistillConfig("nkd", preset="vit").hyperparameters() == {"temperature": 1.0, "gamma": 1.0}
    assert DistillConfig("nkd").hyperparameters() == {"temperature": 1.0, "gamma": 1.5}
    assert DistillConfig("uskd", preset="cifar100").hyperparameters() == {"alpha": 0.1, "beta": 0.1, "mu": 0.1, "ranking": "prob"}
    assert DistillConfig("uskd", alpha=0.5, mu=0.2, preset="cifar100", uskd_ranking="log_prob").hyperparameters() == {"alpha": 0.5, "beta": 0.1, "mu": 0.2, "ranking": "log_prob"}
    assert DistillConfig("uskd").hyperparameters() == {"alpha": 1.0, "beta": 0.1, "mu": 0.005, "ranking": "prob"}
    with pytest.raises(ConfigError, match="preset"):
        DistillConfig("nkd", preset="cifar10")
    with pytest.raises(ConfigError, match="ranking"):
        DistillConfig("uskd", uskd_ranking="rank")


class TinyViT(nn.Module):
    """Patch embedding -> CLS token + 4 patch tokens -> 4 blocks -> head on the CLS token."""

    def __init__(self, dim=6, classes=5):
        super().__init__()
        self.embed = nn.Linear(4, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.Sequential(*[nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim)) for _ in range(4)])
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        patches = x.reshape(x.shape[0], 4, 4)  # (N, 1, 4, 4) image -> 4 patches of 4 pixels
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.embed(patches)], dim=1)
        return self.head(self.blocks(tokens)[:, 0])


def test_uskd_on_token_features_uses_the_cls_token_after_the_middle_block():
    torch.manual_seed(0)
    model = TinyViT()
    x, y = torch.randn(7, 1, 4, 4), torch.randint(0, 5, (7,))
    distiller = Distiller(model, None, DistillConfig("uskd", student_layer="blocks.1"), x)  # block L/2 of 4
    assert distiller.weak_head.in_features == 6  # sized from the channels, not the 5 tokens
    loss, logits = distiller.loss_fn(model, x, y)
    loss.backward()
    assert distiller.weak_head.weight.grad is not None
    captured = {}
    model.blocks[1].register_forward_hook(lambda m, i, o: captured.setdefault("tokens", o))
    with torch.no_grad():
        logits = model(x)
        weak = distiller.weak_head(captured["tokens"][:, 0])
        expected = torch.nn.functional.cross_entropy(logits, y) + uskd_loss(logits, weak, y)
        assert distiller.loss_fn(model, x, y)[0].item() == pytest.approx(expected.item(), rel=1e-6)
    distiller.close()


def test_distiller_accepts_soft_labels_for_nkd_and_uskd():
    from slimvision.models import create_model
    from slimvision.train import seed_everything

    seed_everything(0)
    student, teacher = create_model("small_cnn", in_chans=1, widths=(4, 8, 8)), create_model("small_cnn", in_chans=1, widths=(8, 16, 16))
    x = torch.randn(6, 1, 8, 8)
    soft = torch.softmax(torch.randn(6, 10), dim=1)
    for config, teacher_model in ((DistillConfig("nkd", preset="cifar100"), teacher), (DistillConfig("uskd", student_layer="features.3"), None)):
        distiller = Distiller(student, teacher_model, config, x)
        value, _ = distiller.loss_fn(student, x, soft)
        assert torch.isfinite(value)
        distiller.close()


def test_distill_cli_uskd_with_preset_and_official_ranking(cli, tmp_path):
    code, out, err = cli("distill", "--student", "small_cnn", "--loss", "uskd", "--student-layer", "features.3", "--preset", "cifar100",
                         "--uskd-ranking", "log_prob", "--mu", "0.05", "--data", "digits", "--epochs", "1", "--out", tmp_path / "s", "--json")
    assert code == 0, err
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["distill"]["config"]["preset"] == "cifar100" and meta["distill"]["config"]["uskd_ranking"] == "log_prob"
    code, _, err = cli("distill", "--student", "small_cnn", "--loss", "uskd", "--student-layer", "features.3", "--preset", "nope", "--data", "digits", "--out", tmp_path / "x")
    assert code == 1 and "nope" in err
