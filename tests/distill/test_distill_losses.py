import math

import pytest
import torch

from slimvision.distill import feature_loss, kd_loss, nkd_loss, uskd_loss, zipf_soft_labels

STUDENT = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, -0.5, 1.5, 0.3]], dtype=torch.float64)
TEACHER = torch.tensor([[0.5, 3.0, 0.0, -2.0], [1.0, 0.0, 2.0, -1.0]], dtype=torch.float64)
LABELS = torch.tensor([1, 2])


def softmax(row, t=1.0):
    exps = [math.exp(v / t) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def test_kd_by_hand():
    t = 4.0
    expected = 0.0
    for s_row, t_row in zip(STUDENT.tolist(), TEACHER.tolist()):
        p, q = softmax(t_row, t), softmax(s_row, t)
        expected += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))
    expected = expected / 2 * t * t
    assert kd_loss(STUDENT, TEACHER, t).item() == pytest.approx(expected, abs=1e-6)


def test_nkd_by_hand():
    gamma, t = 1.5, 1.0
    expected = 0.0
    for s_row, t_row, label in zip(STUDENT.tolist(), TEACHER.tolist(), LABELS.tolist()):
        s_p, t_p = softmax(s_row), softmax(t_row)
        expected += -t_p[label] * math.log(s_p[label]) / 2  # target term, batch mean
        s_non = softmax([v for i, v in enumerate(s_row) if i != label], t)
        t_non = softmax([v for i, v in enumerate(t_row) if i != label], t)
        expected += -gamma * t * t * sum(a * math.log(b) for a, b in zip(t_non, s_non)) / 2
    assert nkd_loss(STUDENT, TEACHER, LABELS, t, gamma).item() == pytest.approx(expected, abs=1e-6)


def test_nkd_with_teacher_equal_student_is_target_entropy_term_plus_non_target_entropy():
    # teacher == student: the non-target part becomes gamma * entropy of the renormalised non-target distribution
    loss = nkd_loss(STUDENT, STUDENT, LABELS, 1.0, 1.5).item()
    expected = 0.0
    for row, label in zip(STUDENT.tolist(), LABELS.tolist()):
        p = softmax(row)
        non = softmax([v for i, v in enumerate(row) if i != label])
        expected += (-p[label] * math.log(p[label]) + 1.5 * -sum(x * math.log(x) for x in non)) / 2
    assert loss == pytest.approx(expected, abs=1e-6)


def test_zipf_soft_labels_by_hand():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    # ranks: class1 first (1/1), class2 (1/2), class3 (1/3), class0 (1/4); target class 1 removed
    labels = zipf_soft_labels(scores, torch.tensor([1]))
    raw = torch.tensor([1 / 4, 1 / 2, 1 / 3])
    assert torch.allclose(labels, (raw / raw.sum()).unsqueeze(0))


def test_uskd_by_hand():
    weak = torch.tensor([[0.2, 1.0, 0.1, 0.0], [0.0, 0.1, 0.9, 0.2]], dtype=torch.float64)
    mu, alpha, beta = 0.005, 1.0, 0.1
    s_probs = [softmax(r) for r in STUDENT.tolist()]
    w_probs = [softmax(r) for r in weak.tolist()]
    s_targets = [p[l] for p, l in zip(s_probs, LABELS.tolist())]
    mean_sq = sum(v * v for v in s_targets) / 2
    expected = 0.0
    for row, p, w, label, s_t in zip(STUDENT.tolist(), s_probs, w_probs, LABELS.tolist(), s_targets):
        soft = s_t**2 + 1 - mean_sq
        expected += alpha * -soft * math.log(p[label]) / 2
        smoothed = [0.1 / 4 + (0.9 if i == label else 0.0) for i in range(4)]
        expected += -mu * sum(a * math.log(b) for a, b in zip(smoothed, w)) / 2
        scores = [w[i] / (1 - w[label] + 1e-6) + p[i] / (1 - p[label] + 1e-6) for i in range(4)]
        order = sorted(range(4), key=lambda i: -scores[i])
        zipf = {c: 1 / (pos + 1) for pos, c in enumerate(order)}
        non = [i for i in range(4) if i != label]
        z = [zipf[i] for i in non]
        z = [v / sum(z) for v in z]
        log_non = [math.log(v) for v in softmax([row[i] for i in non])]
        expected += beta * -sum(a * b for a, b in zip(z, log_non)) / 2
    assert uskd_loss(STUDENT, weak, LABELS, alpha, beta, mu).item() == pytest.approx(expected, abs=1e-6)


def test_feature_loss_levels():
    s = torch.ones(2, 3, 4, 4)
    t = torch.zeros(2, 3, 4, 4)
    assert feature_loss(s, t).item() == pytest.approx(1.0)
    tokens_s, tokens_t = torch.zeros(2, 5, 8), torch.zeros(2, 5, 8)
    tokens_s[:, 0] = 2.0  # CLS token off by 2 -> token-level MSE 4, patch-level 0
    assert feature_loss(tokens_s, tokens_t).item() == pytest.approx(4.0)
    with pytest.raises(ValueError):
        feature_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, 4))


def test_losses_do_not_backpropagate_into_the_teacher():
    student = STUDENT.clone().requires_grad_(True)
    teacher = TEACHER.clone().requires_grad_(True)
    (kd_loss(student, teacher) + nkd_loss(student, teacher, LABELS)).backward()
    assert student.grad is not None and teacher.grad is None
