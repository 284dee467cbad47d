"""Mutation testing of slimvision's core computations: hand-planted bugs and mutmut, one results file.

nice -n 10 python benchmarks/mutation.py --part plants    # each planted bug in a scratch copy of src/ -> results/mutation_plants.json
nice -n 10 python benchmarks/mutation.py --part plants --only "auto:"   # rerun the plants whose name contains "auto:", keep the other rows
nice -n 10 python benchmarks/mutation.py --part mutmut --module src/slimvision/nas/correlation.py --tests tests/nas_zeroshot/test_correlation_bites.py
                                                          # mutmut over one module -> results/mutation_mutmut_<module>.json
python benchmarks/mutation.py --part report               # -> results/mutation.md (+ mutation.json)

Not part of the test suite: each mutant runs a test file, minutes per module on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
COMMAND = "nice -n 10 python " + shlex.join(["benchmarks/mutation.py", *sys.argv[1:]])

# The modules holding the core computations (losses, ranking metrics, the ExCP rule, QDQ configuration and export
# check, the pruning budget search, sensitivity ranking and `auto` selection, MACs/params counting).
CORE_MODULES = (
    "src/slimvision/distill/losses.py", "src/slimvision/nas/correlation.py", "src/slimvision/ckpt/excp.py",
    "src/slimvision/quant/onnx_int8.py", "src/slimvision/quant/export.py", "src/slimvision/quant/run.py", "src/slimvision/quant/select.py",
    "src/slimvision/prune/pruner.py", "src/slimvision/measure/complexity.py",
)

QDQ_TESTS = ["tests/quant/test_qdq_config_bites.py", "tests/quant/test_quant_bites.py"]
AUTO_TESTS = ["tests/quant/test_auto_select.py", "tests/quant/test_auto_select_bites.py", "tests/quant/test_auto_decision_bites.py"]
COMPLEXITY_TESTS = ["tests/measure/test_complexity_bites.py", "tests/measure/test_measure.py"]

# (planted bug, file under src/slimvision, function, original text, replacement, test files that must fail)
PLANTS = [
    ("NKD: T^2 factor dropped", "distill/losses.py", "nkd_loss",
     "non_target_term = -gamma * temperature**2 *", "non_target_term = -gamma *", ["tests/distill/test_distill_bites.py"]),
    ("NKD: temperature applied to the target term", "distill/losses.py", "nkd_loss",
     "log_s = F.log_softmax(student_logits, dim=1)", "log_s = F.log_softmax(student_logits / temperature, dim=1)", ["tests/distill/test_distill_bites.py"]),
    ("KD: T^2 factor dropped", "distill/losses.py", "kd_loss",
     'reduction="batchmean") * temperature**2', 'reduction="batchmean")', ["tests/distill/test_distill_bites.py"]),
    ("Distiller: NKD term dropped (CE only)", "distill/distiller.py", "Distiller.loss_fn",
     "return ce + losses.nkd_loss(", "return ce + 0 * losses.nkd_loss(", ["tests/distill/test_distill_bites.py"]),
    ("Distiller: KD weight 0 (CE only)", "distill/distiller.py", "Distiller.loss_fn",
     '(0.9 if cfg.loss == "kd" else 0.5)', '(0.0 if cfg.loss == "kd" else 0.5)', ["tests/distill/test_distill_bites.py"]),
    ("Kendall tau computed with Spearman", "nas/correlation.py", "ranking_metrics",
     "float(stats.kendalltau(scores, truth).statistic)", "float(stats.spearmanr(scores, truth).statistic)", ["tests/nas_zeroshot/test_correlation_bites.py"]),
    ("precision@K with K + 1", "nas/correlation.py", "ranking_metrics",
     "k = max(1, int(round(top_fraction * n)))", "k = max(1, int(round(top_fraction * n))) + 1", ["tests/nas_zeroshot/test_correlation_bites.py"]),
    ("precision@K with K - 1", "nas/correlation.py", "ranking_metrics",
     "k = max(1, int(round(top_fraction * n)))", "k = max(1, int(round(top_fraction * n)) - 1)", ["tests/nas_zeroshot/test_correlation_bites.py"]),
    ("P@bottom compares the predicted top", "nas/correlation.py", "ranking_metrics",
     "set(pred_order[-k:]) & set(true_order[-k:])", "set(pred_order[:k]) & set(true_order[-k:])", ["tests/nas_zeroshot/test_correlation_bites.py"]),
    ("ExCP: Adam scale inverted", "ckpt/excp.py", "official_weight_mask",
     "alpha / root_mean", "root_mean / alpha", ["tests/ckpt/test_excp_rule_bites.py"]),
    ("ExCP: mean instead of lower median", "ckpt/excp.py", "official_weight_mask",
     "scale * lower_median(magnitude)", "scale * float(magnitude.mean())", ["tests/ckpt/test_excp_rule_bites.py"]),
    ("ExCP: midpoint median instead of lower median", "ckpt/excp.py", "official_weight_mask",
     "scale * lower_median(magnitude)", "scale * float(np.median(magnitude))", ["tests/ckpt/test_excp_rule_bites.py"]),
    ("INT8 weights per tensor", "quant/onnx_int8.py", "quantize_static_qdq",
     "per_channel=True", "per_channel=False", ["tests/quant/test_quant_bites.py"]),
    ("INT8 weights unsigned", "quant/onnx_int8.py", "quantize_static_qdq",
     "weight_type=QuantType.QInt8, calibrate_method", "weight_type=QuantType.QUInt8, calibrate_method", ["tests/quant/test_quant_bites.py"]),
    ("ONNX export check never raises", "quant/export.py", "check_onnx_matches",
     "if diff > atol:", "if diff > atol and False:", ["tests/quant/test_quant_bites.py"]),
    ("keep-float ranks the least sensitive first", "quant/onnx_int8.py", "layer_sensitivity",
     "sorted(scores, key=lambda item: item[1])", "sorted(scores, key=lambda item: -item[1])", ["tests/quant/test_quant_bites.py"]),
    ("keep-float takes the tail of the ranking", "quant/run.py", "quantize",
     "ranking[: config.keep_float]", "ranking[-config.keep_float:]", ["tests/quant/test_quant_bites.py"]),
    # _measure_backends' comparison across backends: quantize() now reaches it with one backend only (auto goes through select.py)
    ("backend comparison ignores the accuracy limit", "quant/run.py", "_measure_backends",
     "pool = acceptable or candidates", "pool = candidates", ["tests/quant/test_quant_bites.py"]),
    ("pruning bisection returns the bracket above the target", "prune/pruner.py", "prune_to_fraction",
     "best = under if over is None or target - under[0] <= over[0] - target else over", "best = over if over is not None else under",
     ["tests/prune/test_prune_budget_bites.py"]),
    ("pruning bisection returns the bracket below the target", "prune/pruner.py", "prune_to_fraction",
     "best = under if over is None or target - under[0] <= over[0] - target else over", "best = under",
     ["tests/prune/test_prune_budget_bites.py"]),
    # (onnxruntime 1.32 ignores WeightSymmetric=False for per-channel INT8 weights, so an "asymmetric weights" plant changes nothing)
    ("INT8 weights on a 7-bit range (reduce_range)", "quant/onnx_int8.py", "quantize_static_qdq",
     "quant_format=QuantFormat.QDQ, per_channel=True,", "quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,", QDQ_TESTS),
    ("activation range averaged over calibration batches", "quant/onnx_int8.py", "quantize_static_qdq",
     '"CalibMovingAverage": False', '"CalibMovingAverage": True', QDQ_TESTS),
    ("ReLU and Add left out of the INT8 flow", "quant/onnx_int8.py", "quantize_static_qdq",
     "op_types_to_quantize=[*QUANTIZABLE_OPS, *flow_ops]", "op_types_to_quantize=[*QUANTIZABLE_OPS]", QDQ_TESTS),
    ("kept-float chain stops after one activation", "quant/onnx_int8.py", "_with_float_inputs",
     "stack.append(node)", "pass", QDQ_TESTS),
    ("percentile calibration runs min-max", "quant/onnx_int8.py", "_calibration_method",
     '"percentile": CalibrationMethod.Percentile', '"percentile": CalibrationMethod.MinMax', QDQ_TESTS),
    ("calibration on every image, not the first --calib-samples", "quant/run.py", "quantize",
     "calib_images = images[: config.calib_samples]", "calib_images = images", QDQ_TESTS),
    ("sensitivity quantizes every layer but one instead of one alone", "quant/onnx_int8.py", "layer_sensitivity",
     "exclude=[n for n in nodes if n != node]", "exclude=[node]", QDQ_TESTS),
    ("auto: INT8 margin ignored", "quant/select.py", "_pick",
     "(1 - min_gain) * verdicts[fastest_fp32]", "(1 + min_gain) * verdicts[fastest_fp32]", AUTO_TESTS),
    ("auto: accuracy scored against fp32's predictions, not the labels", "quant/select.py", "select_deployment",
     "verdict.accuracy = float((predictions == labels).mean())", "verdict.accuracy = float((predictions == reference).mean())", AUTO_TESTS),
    ("auto: accuracy limit exclusive", "quant/select.py", "select_deployment",
     "if drop > accuracy_limit + ACCURACY_SLACK:", "if drop >= accuracy_limit:", AUTO_TESTS),
    ("auto: accuracy limit compared without slack for float rounding", "quant/select.py", "select_deployment",
     "if drop > accuracy_limit + ACCURACY_SLACK:", "if drop > accuracy_limit:", AUTO_TESTS),
    ("auto: screening prunes against the fastest candidate, accurate or not", "quant/select.py", "select_deployment",
     "bar = verdicts[alive[0]] if alive else None", "bar = verdicts[sorted(runtimes, key=lambda n: verdicts[n].screen_ms)[0]]", AUTO_TESTS),
    ("auto: speed-up against the slowest fp32", "quant/run.py", "_speedup_vs_fastest_fp32",
     "best = min(timed, key=lambda v: v.latency_ms)", "best = max(timed, key=lambda v: v.latency_ms)", AUTO_TESTS),
    ("auto: the INT8 file saved when fp32 won", "quant/run.py", "quantize",
     'onnx_file = fp32_path if precision != "int8" else int8_onnx', "onnx_file = int8_onnx", AUTO_TESTS),
    ("params: only trainable ones counted", "measure/complexity.py", "count_params",
     "sum(p.numel() for p in model.parameters())", "sum(p.numel() for p in model.parameters() if p.requires_grad)", COMPLEXITY_TESTS),
    ("params: BN statistics counted", "measure/complexity.py", "count_params",
     "sum(p.numel() for p in model.parameters())", "sum(t.numel() for t in model.state_dict().values())", COMPLEXITY_TESTS),
    ("MACs: batch size ignored", "measure/complexity.py", "count_macs",
     "torch.zeros(batch_size, *input_size", "torch.zeros(1, *input_size", COMPLEXITY_TESTS),
    ("MACs: per image instead of per batch", "measure/complexity.py", "count_macs",
     "return counter.get_total_flops() // 2", "return counter.get_total_flops() // 2 // batch_size", COMPLEXITY_TESTS),
    ("MACs: FLOPs reported as MACs", "measure/complexity.py", "count_macs",
     "return counter.get_total_flops() // 2", "return counter.get_total_flops()", COMPLEXITY_TESTS),
    ("MACs: counting leaves the model in eval mode", "measure/complexity.py", "count_macs",
     "model.train(was_training)", "pass", COMPLEXITY_TESTS),
    ("supernet resume: sampler state not restored", "nas/supernet/train.py", "_SamplerState.load_state_dict",
     "self.sampler.load_state_dict(state)", "pass", ["tests/nas/test_supernet_resume.py"]),
    ("supernet train: --resume not passed on", "cli/nas.py", "supernet_train_command",
     "out, data, image_size, resume, data_root)", "out, data, image_size, False, data_root)", ["tests/nas/test_supernet_resume.py"]),
    ("prune CLI: --global ignored", "cli/prune.py", "prune_command",
     "global_pruning=global_pruning,", "global_pruning=False,", ["tests/cli/test_cli_options_bites.py"]),
    ("prune CLI: --ignore-layers ignored", "cli/prune.py", "prune_command",
     "ignore_layers=tuple(ignore_layers or ())", "ignore_layers=()", ["tests/cli/test_cli_options_bites.py"]),
    ("prune CLI: --saliency ignored", "cli/prune.py", "prune_command",
     "seed=seed, saliency=saliency,", "seed=seed,", ["tests/cli/test_cli_options_bites.py"]),
    ("quantize CLI: --calib-method ignored", "cli/quant.py", "quantize_command",
     "calib_method=calib_method,", 'calib_method="minmax",', ["tests/cli/test_cli_options_bites.py"]),
]


def _env(src: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")


def part_plants(only: str = "") -> None:
    """Apply each planted bug (those whose name contains `only`, if given) to a scratch copy of src/ and run the tests that should catch it.

    With `only`, the rows of the other plants already in results/mutation_plants.json are kept; each row records its command.
    """
    path = RESULTS / "mutation_plants.json"
    previous = json.loads(path.read_text())["rows"] if only and path.exists() else []
    selected = [plant for plant in PLANTS if only in plant[0]]
    rerun = {plant[0] for plant in selected}
    known = {plant[0] for plant in PLANTS}
    rows = [row for row in previous if row["bug"] not in rerun and row["bug"] in known]  # rows of plants since removed are dropped
    for name, rel, function, before, after, tests in selected:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "src"
            shutil.copytree(ROOT / "src", src)
            target = src / "slimvision" / rel
            text = target.read_text()
            if text.count(before) != 1:
                raise SystemExit(f"plant {name!r}: expected one occurrence of {before!r} in {rel}, found {text.count(before)}")
            target.write_text(text.replace(before, after))
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider", *tests],
                                  cwd=ROOT, env=_env(src), capture_output=True, text=True)
            failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.M)
            rows.append({"bug": name, "where": f"src/slimvision/{rel}:{function}", "tests": tests, "command": COMMAND, "caught": proc.returncode == 1,
                         "failing_test": failed[0] if failed else None, "returncode": proc.returncode, "seconds": time.perf_counter() - start})
            print(f"{'caught' if proc.returncode == 1 else 'SURVIVED'}: {name} -> {failed[:1]}")
    order = {plant[0]: index for index, plant in enumerate(PLANTS)}
    rows.sort(key=lambda row: order.get(row["bug"], len(order)))
    path.write_text(json.dumps({"command": COMMAND, "rows": rows}, indent=1))


def part_mutmut(module: str, tests: list[str], functions: list[str], max_children: int, deselect: list[str] = ()) -> None:
    """Run mutmut over one module (only `functions`, mutmut name globs, if given) with `tests` in a scratch copy; record each mutant's status.

    `deselect`: pytest node ids left out of every mutant's run (slow end-to-end tests that other, faster tests back up).
    """
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "repo"
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", "mutants", "benchmarks", "__pycache__", "*.egg-info"))
        config = (
            "\n[tool.mutmut]\n"
            f'paths_to_mutate = ["{module}"]\n'
            f"tests_dir = {json.dumps(tests)}\n"
            'also_copy = ["src/"]\n'
            f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
            f"pytest_add_cli_args = {json.dumps([arg for node in deselect for arg in ('--deselect', node)])}\n"
        )
        pyproject = work / "pyproject.toml"
        # mutmut runs pytest in its own process with its own plugin: no importlib mode, no worker processes
        text, replaced = re.subn(r"^addopts = .*$", 'addopts = "-q"', pyproject.read_text(), count=1, flags=re.M)
        if not replaced:
            raise SystemExit(f"{pyproject}: no pytest addopts line to replace")
        pyproject.write_text(text + config)
        mutmut = shutil.which("mutmut") or str(Path(sys.executable).parent / "mutmut")
        start = time.perf_counter()
        # mutmut puts mutants/src first on sys.path itself; a PYTHONPATH to the clean sources would hide the mutants
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
        run = subprocess.run([mutmut, "run", "--max-children", str(max_children), *functions], cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        results = subprocess.run([mutmut, "results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True)
        mutants = {}
        for line in results.stdout.splitlines():
            match = re.match(r"\s*(\S+): (\S.*)$", line)
            if match:
                mutants[match.group(1)] = match.group(2).strip()
        diffs = {}
        mutants = {m: status for m, status in mutants.items() if status != "not checked"}  # outside --functions
        for mutant, status in mutants.items():
            if status != "killed":
                diffs[mutant] = subprocess.run([mutmut, "show", mutant], cwd=work, env=env, capture_output=True, text=True).stdout
    counts: dict[str, int] = {}
    for status in mutants.values():
        counts[status] = counts.get(status, 0) + 1
    tag = Path(module).stem
    data = {"command": COMMAND, "module": module, "tests": tests, "deselected": list(deselect), "functions": functions, "seconds": seconds, "counts": counts, "mutants": mutants,
            "not_killed_diffs": diffs, "mutmut_returncode": run.returncode, "mutmut_tail": run.stdout[-2000:] + run.stderr[-2000:]}
    (RESULTS / f"mutation_mutmut_{tag}.json").write_text(json.dumps(data, indent=1))
    print(tag, counts, f"{seconds:.0f} s")


def part_report() -> None:
    """results/mutation.md from the plants and mutmut JSON files (equivalent-mutant notes: results/mutation_equivalent.json)."""
    lines = ["# Mutation testing", "", "Written by `benchmarks/mutation.py` (`python benchmarks/mutation.py --part report`) from the JSON files below.", ""]
    plants_path = RESULTS / "mutation_plants.json"
    if plants_path.exists():
        plants = json.loads(plants_path.read_text())
        caught = sum(r["caught"] for r in plants["rows"])
        commands = sorted({r.get("command", plants["command"]) for r in plants["rows"]})
        lines += ["## Planted bugs", "", f"Command(s): {', '.join(f'`{c}`' for c in commands)}. Each bug is applied alone to a scratch copy of `src/`; "
                  f"the listed test files run with `-x`. Caught: **{caught} / {len(plants['rows'])}**.", "",
                  "| planted bug | file:function | caught | first failing test |", "|---|---|---|---|"]
        for r in plants["rows"]:
            lines.append(f"| {r['bug']} | `{r['where']}` | {'yes' if r['caught'] else '**no**'} | `{r['failing_test']}` |")
        lines.append("")
    equivalent_path = RESULTS / "mutation_equivalent.json"
    equivalent = json.loads(equivalent_path.read_text()) if equivalent_path.exists() else {}
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("mutation_mutmut_*.json"))]
    if runs:
        lines += ["## mutmut (per module; only the functions named under 'functions')", "",
                  "Score = killed / (mutants - judged equivalent). 'not killed' = survived + timeout + suspicious + no tests.", "",
                  "| module | functions | tests | mutants | killed | not killed | judged equivalent | score | raw killed / mutants | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
        for run in runs:
            run["mutants"] = {m: s for m, s in run["mutants"].items() if s != "not checked"}
            run["counts"] = {}
            for status in run["mutants"].values():
                run["counts"][status] = run["counts"].get(status, 0) + 1
            total = sum(run["counts"].values())
            killed = run["counts"].get("killed", 0)
            eq = [m for m in equivalent.get(run["module"], {}) if m in run["mutants"] and run["mutants"][m] != "killed"]
            denominator = max(1, total - len(eq))
            functions = ", ".join(f"`{f.split('.x_')[-1].rstrip('*')}`" for f in run.get("functions", [])) or "all"
            tests = ", ".join(f"`{t}`" for t in run["tests"])
            if run.get("deselected"):
                tests += " (without " + ", ".join(f"`{d.split('::')[-1]}`" for d in run["deselected"]) + ")"
            lines.append(f"| `{run['module']}` | {functions} | {tests} | {total} | {killed} | {total - killed} | "
                         f"{len(eq)} | {killed / denominator:.0%} | {killed / max(1, total):.0%} | {run['seconds']:.0f} |")
        lines.append("")
        for run in runs:
            notes = equivalent.get(run["module"], {})
            survivors = [m for m, s in run["mutants"].items() if s != "killed"]
            if not survivors:
                continue
            lines += [f"### Not killed in `{run['module']}`", "", f"Command: `{run['command']}`", ""]
            if run.get("deselected"):
                lines += ["Left out of every mutant's run (slow end-to-end): " + ", ".join(f"`{d}`" for d in run["deselected"]), ""]
            lines += ["| mutant | status | judged equivalent? why |", "|---|---|---|"]
            for mutant in survivors:
                status = run["mutants"][mutant]
                default = "no: a missing test" if status == "survived" else f"no verdict: the mutant's forked test run ended in a {status} (the same mutant may be killed in a rerun); counted as not killed"
                lines.append(f"| `{mutant}` | {status} | {notes.get(mutant, default)} |")
            lines.append("")
    done = {run["module"] for run in runs}
    left = [m for m in CORE_MODULES if m not in done]
    if left:
        lines += ["Core modules not yet run through mutmut: " + ", ".join(f"`{m}`" for m in left) + " (the planted bugs above that live in them are caught).", ""]
    lines += ["Conditions: 2-core machine shared with other jobs, mutants run at nice 10; times are indicative only.", ""]
    (RESULTS / "mutation.md").write_text("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=("plants", "mutmut", "report"), required=True)
    parser.add_argument("--module", help="mutmut: a file under src/")
    parser.add_argument("--tests", default="", help="mutmut: comma-separated test files")
    parser.add_argument("--functions", default="", help="mutmut: comma-separated mutant name globs (default: the whole module)")
    parser.add_argument("--deselect", default="", help="mutmut: comma-separated pytest node ids to leave out of every mutant's run")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--only", default="", help="plants: rerun only the plants whose name contains this text (the other rows are kept)")
    args = parser.parse_args()
    if args.part == "plants":
        part_plants(args.only)
    elif args.part == "mutmut":
        part_mutmut(args.module, args.tests.split(","), [f for f in args.functions.split(",") if f], args.max_children, [d for d in args.deselect.split(",") if d])
    part_report()
