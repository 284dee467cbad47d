"""DARTS, GDAS, ENAS and predictor-guided search on the cell space: the math, then each strategy end to end."""

import json

import pytest
import torch
import torch.nn.functional as F

from slimvision.nas.controller import Controller, Reinforce
from slimvision.nas.differentiable import arch_gradient, collapse_report, derive_arch, gumbel_softmax_hard
from slimvision.nas.spaces.cell import EDGE_NAMES, OPS, arch_from_string
from slimvision.nas.supernet.cell import CellSupernet, MixedOp


def test_mixed_op_is_the_softmax_weighted_sum_of_its_ops():
    torch.manual_seed(0)
    op = MixedOp(4).eval()
    x = torch.randn(2, 4, 5, 5)
    weights = F.softmax(torch.randn(len(OPS)), -1)
    expected = sum(w * candidate(x) for w, candidate in zip(weights, op.ops))
    assert torch.allclose(op(x, weights), expected, atol=1e-6)
    one_hot = F.one_hot(torch.tensor(3), len(OPS)).float()
    assert torch.allclose(op(x, one_hot, hard=True), op.ops[3](x))


def _tiny_bilevel():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.float64))
    alpha = torch.nn.Parameter(torch.randn(2, dtype=torch.float64))
    x_train, y_train = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    x_val, y_val = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)

    def loss(x, y, weights, logits):
        mix = F.softmax(logits, -1)
        h = x @ weights
        return ((mix[0] * torch.tanh(h) + mix[1] * h * h - y) ** 2).mean()

    return w, alpha, (x_train, y_train), (x_val, y_val), loss


def test_second_order_arch_gradient_matches_finite_differences_of_the_unrolled_objective():
    w, alpha, train, val, loss = _tiny_bilevel()
    lr = 0.3

    def unrolled_val_loss(logits):  # L_val(w - lr * dL_train/dw (w, logits), logits), exactly
        weights = w.detach().requires_grad_(True)
        grad = torch.autograd.grad(loss(*train, weights, logits), weights)[0]
        return loss(*val, weights.detach() - lr * grad, logits).item()

    numeric = torch.zeros_like(alpha)
    for i in range(alpha.numel()):
        step = torch.zeros_like(alpha)
        step[i] = 1e-6
        numeric[i] = (unrolled_val_loss(alpha.detach() + step) - unrolled_val_loss(alpha.detach() - step)) / 2e-6
    second = arch_gradient([w], [alpha], lambda: loss(*train, w, alpha), lambda: loss(*val, w, alpha), lr=lr, second_order=True)[0]
    first = arch_gradient([w], [alpha], lambda: loss(*train, w, alpha), lambda: loss(*val, w, alpha), lr=lr, second_order=False)[0]
    assert torch.allclose(second, numeric, rtol=1e-4, atol=1e-7), (second, numeric)
    assert not torch.allclose(first, numeric, rtol=1e-2)  # the case is not one where the correction vanishes
    w_before = w.detach().clone()
    arch_gradient([w], [alpha], lambda: loss(*train, w, alpha), lambda: loss(*val, w, alpha), lr=lr, second_order=True)
    assert torch.equal(w.detach(), w_before) and w.grad is None and alpha.grad is None


@pytest.mark.parametrize("better_arm", [0, 1])
def test_reinforce_moves_a_two_arm_policy_to_the_better_arm(better_arm):
    torch.manual_seed(0)
    policy = Controller([2], hidden=8)
    trainer = Reinforce(policy, lr=0.05, entropy_weight=1e-3)

    def share_of_better(samples=200):
        with torch.no_grad():
            return sum(policy.sample()[0][0] == better_arm for _ in range(samples)) / samples

    assert 0.3 < share_of_better() < 0.7
    for _ in range(150):
        choices, log_prob, entropy = policy.sample()
        trainer.step(log_prob, entropy, 1.0 if choices[0] == better_arm else 0.2)
    assert share_of_better() > 0.9


def test_gumbel_hard_samples_are_one_hot_with_straight_through_gradients():
    logits = torch.randn(6, 5, requires_grad=True)
    sample = gumbel_softmax_hard(logits, tau=0.7, generator=torch.Generator().manual_seed(3))
    assert set(sample.detach().flatten().tolist()) <= {0.0, 1.0} and torch.equal(sample.detach().sum(1), torch.ones(6))
    coefficients = torch.randn(6, 5)
    (sample * coefficients).sum().backward()
    # the same noise, soft: its gradient is what straight-through must pass to the logits
    soft_logits = logits.detach().clone().requires_grad_(True)
    uniform = torch.rand((6, 5), generator=torch.Generator().manual_seed(3)).clamp(1e-10, 1 - 1e-10)
    soft = F.softmax((soft_logits - torch.log(-torch.log(uniform))) / 0.7, -1)
    (soft * coefficients).sum().backward()
    assert torch.allclose(logits.grad, soft_logits.grad, atol=1e-6) and logits.grad.abs().sum() > 0
    assert torch.equal(sample.detach().argmax(1), soft.detach().argmax(1))


def test_supernet_runs_an_arch_exactly_like_its_extracted_standalone_net():
    torch.manual_seed(0)
    supernet = CellSupernet(in_chans=1, channels=4)
    for module in supernet.modules():  # non-trivial BN statistics, so a wrong copy shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    arch = arch_from_string("conv3x3,skip,conv1x1,avgpool,none,conv3x3")
    supernet.set_active(arch)
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(supernet.eval()(x), supernet.extract(arch)(x), atol=1e-5)


def test_derivation_skips_none_and_collapse_is_reported():
    logits = torch.zeros(len(EDGE_NAMES), len(OPS))
    logits[:, OPS.index("none")] = 5.0
    logits[:, OPS.index("skip")] = 1.0
    arch = derive_arch(logits)
    assert set(arch.values()) == {"skip"}
    report = collapse_report(arch, logits)
    assert report["collapsed"] and report["parameter_free_edges"] == 6 and report["parameter_free_share"] > 0.9
    logits[:, OPS.index("conv3x3")] = 3.0
    assert not collapse_report(derive_arch(logits), logits)["collapsed"]


TINY_PROTOCOL = {"space": "cell", "epochs": 1, "data": "digits", "image_size": None, "seeds": [0], "sample_seed": 0, "batch_size": 64,
                 "lr": 0.05, "weight_decay": 0.0005, "augment": False, "channels": 8, "cells_per_stage": 1, "space_kwargs": {}}


@pytest.fixture
def tiny_bench(tmp_path):
    """A 4-arch table whose protocol trains 1 epoch with 1 seed, so archs outside it are trained in about a second."""
    path = tmp_path / "bench.jsonl"
    rows = [{"kind": "header", "format": "slimvision-nas-bench/1", "conditions": TINY_PROTOCOL}]
    for ops, acc in (("none,none,none,none,none,none", 0.1), ("skip,skip,skip,skip,skip,skip", 0.5),
                     ("conv1x1,conv1x1,conv1x1,conv1x1,conv1x1,conv1x1", 0.8), ("conv3x3,conv3x3,conv3x3,conv3x3,conv3x3,conv3x3", 0.9)):
        rows.append({"arch": ops, "accuracy": acc})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("strategy", ["darts", "gdas", "enas"])
def test_cli_weight_sharing_search_writes_result_and_trajectory(strategy, cli, tmp_path, tiny_bench):
    out = tmp_path / strategy
    code, stdout, err = cli("search", "--space", "cell", "--strategy", strategy, "--data", "digits", "--image-size", "8", "--epochs", "2",
                            "--seed", "0", "--bench", tiny_bench, "--out", out, "--json")
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    arch_from_string(result["arch_string"])  # a valid cell
    assert result["arch"] == arch_from_string(result["arch_string"])
    assert len(result["history"]) == 2 and 0.0 <= result["score"] <= 1.0
    score_key = {"darts": "supernet_accuracy", "gdas": "one_shot_accuracy"}.get(strategy)
    assert strategy == "enas" or result["score"] == pytest.approx(result["history"][-1][score_key])
    # the percentile is the share of the 4 table archs at or below the found arch's accuracy
    table = [0.1, 0.5, 0.8, 0.9]
    assert result["bench_percentile"] == pytest.approx(100 * sum(a <= result["bench_accuracy"] for a in table) / 4)
    assert (out / "trajectory.png").stat().st_size > 1000
    if strategy in ("darts", "gdas"):
        assert "collapsed" in result["collapse"] and "none" not in result["arch"].values()
    if strategy == "gdas":
        assert result["history"][0]["tau"] > result["history"][-1]["tau"]
    if strategy == "enas":
        assert "mean_reward" in result["history"][-1] and len(result["final_candidates"]) >= 2


def test_cli_predictor_search_spends_its_budget_on_ground_truth(cli, tmp_path, tiny_bench):
    out = tmp_path / "p"
    cache = tmp_path / "cache.jsonl"
    code, _, err = cli("search", "--space", "cell", "--strategy", "predictor", "--data", "digits", "--trials", "4", "--seed", "0",
                       "--bench", tiny_bench, "--bench-cache", cache, "--out", out, "--json")
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["archs_trained"] == 4 and result["history"][-1]["evaluated"] == 4
    best = [entry["best_val_accuracy"] for entry in result["history"]]
    assert best == sorted(best) and result["score"] == best[-1]
    assert len(cache.read_text().splitlines()) >= 3  # archs outside the table were trained and cached
    code, _, err = cli("search", "--space", "mbv2", "--strategy", "darts", "--out", tmp_path / "bad")
    assert code == 1 and "cell" in err



def test_bench_evaluator_reads_the_table_and_ranks_by_percentile(tiny_bench):
    from slimvision.nas import SPACES, create_evaluator

    judge = create_evaluator("bench", SPACES.get("cell")(), bench=tiny_bench)
    assert judge.score(arch_from_string("conv1x1,conv1x1,conv1x1,conv1x1,conv1x1,conv1x1")) == pytest.approx(0.8)
    assert judge.oracle.trained == 0
    assert [judge.oracle.percentile(a) for a in (0.05, 0.5, 0.85, 0.95)] == [0.0, 50.0, 75.0, 100.0]


def test_second_order_darts_runs_end_to_end_and_moves_the_logits(tmp_path, tiny_bench):
    from slimvision.nas.cell_search import CellSearchConfig, run_cell_search

    config = CellSearchConfig("darts", image_size=8, epochs=2, second_order=True, max_steps_per_epoch=3, arch_lr=0.05,
                              bench=str(tiny_bench), progress=False)
    result = run_cell_search(config, tmp_path)
    probabilities = torch.tensor(result["arch_probabilities"])
    assert torch.allclose(probabilities.sum(1), torch.ones(6)) and (probabilities - 0.2).abs().max() > 1e-2  # init is within 1e-3
    assert result["config"]["second_order"] and len(result["history"]) == 2
