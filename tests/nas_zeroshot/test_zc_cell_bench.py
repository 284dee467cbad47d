import json

import pytest
import torch

from slimvision.errors import ConfigError, DataError
from slimvision.nas.bench import BenchConfig, build_bench, load_bench
from slimvision.nas.spaces.cell import CellSpace, arch_from_string, arch_to_string


def test_cell_space_has_15625_archs_and_builds_runnable_networks():
    space = CellSpace()
    archs = space.all_archs()
    assert len(archs) == 5**6 and len({space.encode(a) for a in archs}) == 5**6
    model = space.build(archs[1234], num_classes=10, in_chans=1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_arch_string_round_trips_and_archspec_rebuilds_the_same_network():
    from slimvision.io import ArchSpec
    from slimvision.measure import count_params

    space = CellSpace(channels=8)
    arch = arch_from_string("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|")
    assert arch_from_string(arch_to_string(arch)) == arch
    assert arch_from_string("conv3x3,skip,none,avgpool,conv1x1,skip") == arch
    spec = ArchSpec("nas_cell", {"num_classes": 10, "in_chans": 1, **space.model_kwargs(arch)})
    assert count_params(spec.build()) == count_params(space.build(arch, 10, 1))
    with pytest.raises(ConfigError):
        arch_from_string("conv3x3,skip")


def test_bench_build_writes_rows_resumes_and_refuses_other_conditions(tmp_path):
    out = tmp_path / "bench.jsonl"
    config = BenchConfig(n=2, epochs=1, seeds=(0,), progress=False)
    first = build_bench(config, out)
    assert (first.n_archs, first.n_new) == (2, 2)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["kind"] == "header" and lines[0]["conditions"]["epochs"] == 1
    row = lines[1]
    assert row["params"] > 0 and row["macs"] > 0 and 0 <= row["runs"][0]["test_accuracy"] <= 1
    config.n = 3
    again = build_bench(config, out)
    assert (again.n_archs, again.n_new) == (3, 1)  # the first two are kept, one more trained
    with pytest.raises(ConfigError):
        build_bench(BenchConfig(n=3, epochs=2, seeds=(0,), progress=False), out)
    assert len(out.read_text().splitlines()) == 4


def test_user_csv_table_is_read(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("arch,accuracy\nconv3x3,conv3x3,conv3x3,conv3x3,conv3x3,conv3x3,0.9\n".replace("conv3x3,conv3x3,conv3x3,conv3x3,conv3x3,conv3x3", '"conv3x3,conv3x3,conv3x3,conv3x3,conv3x3,conv3x3"')
                    + '"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",0.1\n"|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",0.5\n')
    table = load_bench(path)
    assert len(table) == 3 and table.accuracies() == [0.9, 0.1, 0.5]
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,score\n\"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\",1\n")
    with pytest.raises(DataError):
        load_bench(bad)


def test_a_shipped_table_is_found_by_name_and_a_file_of_that_name_wins(tmp_path, monkeypatch):
    assert load_bench("digits").path == load_bench(None).path and load_bench(None).path.name == "nas_cell_digits.jsonl"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").write_text('arch,accuracy\n"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",0.1\n'
                                     '"|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",0.5\n'
                                     '"|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",0.7\n')
    with pytest.raises(DataError, match="unknown format"):  # the user's own file, not the shipped table
        load_bench("digits")
    with pytest.raises(DataError, match="does not exist"):
        load_bench("digits-easy")


def test_a_table_built_at_another_resolution_is_scored_at_that_resolution(cli, tmp_path, monkeypatch):
    out = tmp_path / "bench16.jsonl"
    code, _, err = cli("nas", "bench", "build", "--n", "3", "--epochs", "1", "--seeds", "0", "--image-size", "16", "--out", str(out), "--json")
    assert code == 0, err
    header = json.loads(out.read_text().splitlines()[0])
    assert header["conditions"]["image_size"] == 16
    import slimvision.data

    seen = []
    real = slimvision.data.get_dataset
    monkeypatch.setattr(slimvision.data, "get_dataset", lambda *a, **k: seen.append(k.get("image_size")) or real(*a, **k))
    code, _, err = cli("nas", "correlate", "--bench", str(out), "--evaluators", "synflow", "--bootstrap", "10", "--json")
    assert code == 0, err
    assert seen == [16]  # the proxy sees the images the table's networks were trained on


def _table_with_seeds(path, accuracies_by_seed: dict[int, list[float]]):
    """A .jsonl table whose arch i scored accuracies_by_seed[seed][i] with each seed."""
    space = CellSpace()
    archs = space.all_archs()
    count = len(next(iter(accuracies_by_seed.values())))
    lines = [{"kind": "header", "conditions": {"data": "digits", "epochs": 1}}]
    for i in range(count):
        runs = [{"seed": seed, "test_accuracy": accs[i], "val_accuracy": accs[i]} for seed, accs in accuracies_by_seed.items()]
        lines.append({"arch": arch_to_string(archs[i]), "runs": runs})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_seed_agreement_is_kendall_tau_between_every_two_seeds(tmp_path, cli):
    # seed 1 swaps the two best archs of seed 0 (1 discordant pair of 6: tau 4/6); seed 2 reverses seed 0 (tau -1)
    table = load_bench(_table_with_seeds(tmp_path / "t.jsonl", {0: [0.1, 0.2, 0.3, 0.4], 1: [0.1, 0.2, 0.4, 0.3], 2: [0.4, 0.3, 0.2, 0.1]}))
    info = table.seed_agreement()
    assert info["seeds"] == [0, 1, 2] and info["n_archs"] == 4
    assert info["kendall_tau_pairs"] == pytest.approx({"0-1": 4 / 6, "0-2": -1.0, "1-2": -4 / 6})
    assert info["kendall_tau_mean"] == pytest.approx((4 / 6 - 1 - 4 / 6) / 3)
    assert info["accuracy_range"] == [0.1, 0.4]
    code, out, err = cli("nas", "bench", "info", tmp_path / "t.jsonl", "--json")
    assert code == 0, err
    assert json.loads(out)["kendall_tau_pairs"]["0-1"] == pytest.approx(4 / 6)


def test_seed_agreement_uses_only_archs_with_every_seed_and_refuses_one_seed(tmp_path, cli):
    path = _table_with_seeds(tmp_path / "t.jsonl", {0: [0.1, 0.2, 0.3, 0.4, 0.9], 1: [0.1, 0.2, 0.3, 0.4, 0.0]})
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    last["runs"] = last["runs"][:1]  # the fifth arch (which would disagree) has seed 0 only
    path.write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    info = load_bench(path).seed_agreement()
    assert info["n_archs"] == 4 and info["kendall_tau_pairs"]["0-1"] == pytest.approx(1.0)
    code, out, err = cli("nas", "bench", "info", path, "--json")
    assert code == 0, err
    assert (json.loads(out)["archs_in_table"], json.loads(out)["n_archs"]) == (5, 4)
    single = _table_with_seeds(tmp_path / "one.jsonl", {0: [0.1, 0.2, 0.3]})
    with pytest.raises(DataError, match="2 or more seeds"):
        load_bench(single).seed_agreement()


def test_the_shipped_digits_hard_table_has_200_distinct_archs_whose_three_seeds_agree():
    """The table the evaluator study on digits-hard stands on: every seed pair must rank the archs alike (tau >= 0.7)."""
    table = load_bench("digits-hard")
    conditions = table.header["conditions"]
    assert (conditions["data"], conditions["image_size"], conditions["epochs"], conditions["seeds"]) == ("digits-hard", 16, 6, [0, 1, 2])
    assert len(table) == 200 and len({row["arch"] for row in table.rows}) == 200
    info = table.seed_agreement()
    assert info["n_archs"] == 200 and all(tau >= 0.7 for tau in info["kendall_tau_pairs"].values()), info["kendall_tau_pairs"]
    # the mean over seeds is the ground truth; MACs are recorded for every arch (the search's budget)
    assert all(row["accuracy"] == pytest.approx(sum(r["test_accuracy"] for r in row["runs"]) / 3) for row in table.rows)
    assert all(row["macs"] > 0 for row in table.rows)
