"""Fuzz 1,000 checkpoint archives and judge every restore: refused, exact, wrong content, escaped --out, crashed.

The corpus is a real training run (small_cnn on digits, AdamW, a checkpoint per epoch) compressed
lossy and lossless, plus a directory of plain state dicts with mixed dtypes (fp16, bf16, bool,
int64), compressed lossless. Each case mutates one corpus archive (bytes / structure with valid
crc32s / forged record-digest chain / sealed traversal, in turn; see `slimvision.ckpt.fuzz`) and restores it twice:
the last checkpoint and a random index (one past the end included). A restore that succeeds must
produce exactly the files the unmutated archive restores. Writes benchmarks/results/fuzz.md (+ .json).

    nice -n 10 python benchmarks/ckpt_fuzz.py [--cases 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from _common import conditions, conditions_markdown, markdown_table, write_results
from slimvision.ckpt import CompressConfig, compress_run, inspect, restore
from slimvision.ckpt.fuzz import KINDS, run_fuzz
from slimvision.train import TrainConfig
from slimvision.train.run import RunSpec, train_run


def build_corpus(root: Path, epochs: int) -> list[Path]:
    """Archives of a real run (lossy and lossless) and of plain mixed-dtype state dicts (lossless)."""
    run = root / "run"
    train_run(RunSpec("small_cnn", "digits", config=TrainConfig(epochs=epochs, optimizer="adamw", seed=0)), run)
    states = root / "states"
    states.mkdir()
    torch.manual_seed(0)
    for step in range(3):
        save_file({"h": torch.randn(16, 16).half(), "bf": torch.randn(32).bfloat16(), "mask": torch.rand(9) > 0.5, "i": torch.arange(6) + step},
                  str(states / f"step_{step}.safetensors"))
    compress_run(run, root / "run-lossy.svckpt", CompressConfig())
    compress_run(run, root / "run-lossless.svckpt", CompressConfig(lossless=True))
    compress_run(states, root / "states.svckpt", CompressConfig(lossless=True))
    return [root / "run-lossy.svckpt", root / "run-lossless.svckpt", root / "states.svckpt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build_corpus(Path(tmp) / "corpus", args.epochs)
        sizes = {p.name: p.stat().st_size for p in corpus}
        start = time.perf_counter()
        tally = run_fuzz(corpus, args.cases, args.seed, Path(tmp) / "work", restore, inspect=inspect)
        seconds = time.perf_counter() - start
    outcomes = ("refused", "exact", "wrong", "escaped", "crashed", "leftover")
    rows = [[kind, *[str(tally.counts[kind].get(o, 0)) for o in outcomes]] for kind in KINDS]
    rows.append(["**all**", *[f"**{tally.total(o)}**" for o in outcomes]])
    restores = sum(sum(c.values()) for c in tally.counts.values())
    md = [
        "# Fuzzed checkpoint archives",
        "",
        f"{args.cases} mutated archives (seed {args.seed}), {restores} restores (the last checkpoint and one random index per archive, "
        "one past the end included); every archive is also passed to `ckpt inspect` (an exception other than a SlimvisionError counts "
        "as crashed). Corpus: a small_cnn digits run (AdamW, a checkpoint per epoch, "
        f"{args.epochs} epochs) compressed lossy and lossless, and plain fp16/bf16/bool/int64 state dicts compressed lossless "
        f"(archive bytes: {', '.join(f'{k} {v:,}' for k, v in sizes.items())}).",
        "",
        "- **bytes**: random byte flips, truncation, insertion and deletion anywhere in the file.",
        "- **structure**: headers (names incl. `../..` and absolute paths into a victim directory, dtypes, shapes, counts, json and run files), "
        "blobs (bit flips, truncation, extension) and the record list (drop, repeat, swap) edited inside decoded records, then re-framed "
        "with valid zstd frames, crc32s and end count.",
        "- **forged**: the same edits written with a freshly computed record-digest chain (what an author who knows the format can do); "
        "only the per-tensor and per-record content digests are left as they were.",
        "- **traversal**: one path-bearing name (checkpoint name, JSON file, run file, tensor file) set to `../..`, an absolute path into "
        "a victim directory, `..`, a drive letter, a NUL byte..., with *every* digest recomputed: a perfectly sealed hostile archive that "
        "only the name checks can refuse (a restore of an earlier index never reads the planted record, so it restores exactly).",
        "",
        "Outcomes per restore: *refused* = a one-line SlimvisionError, nothing written; *exact* = restored files identical to the unmutated "
        "archive's restore of the same checkpoint (an edit that does not change the content, e.g. an unused field); *wrong* = exit 0 with "
        "different content; *escaped* = any file created or changed outside --out; *crashed* = any other exception; *leftover* = a temp "
        "file or directory left beside --out.",
        "",
        markdown_table(["mutation", *outcomes], rows),
        "",
        "Which check refused (all kinds): " + ", ".join(f"{k} {v}" for k, v in sorted(tally.reasons.items(), key=lambda kv: -kv[1])) + ".",
        "",
        f"Goals: wrong 0 (measured {tally.total('wrong')}), escaped 0 (measured {tally.total('escaped')}), crashed or hung 0 "
        f"(measured {tally.total('crashed')} crashed; slowest restore {tally.slowest_s * 1000:.0f} ms, so none hung).",
        "",
        "Forged archives are refused by digests an attacker could also recompute: the archive is unsigned, so the digests prove integrity "
        "against corruption and edits, not authorship. Traversal is refused by the name checks whatever the digests say.",
        "",
        *(["Examples of non-refused, non-exact outcomes:", "", *[f"- {e}" for e in tally.examples], ""] if tally.examples else []),
        f"Command: `nice -n 10 python benchmarks/ckpt_fuzz.py --cases {args.cases} --seed {args.seed}` "
        "(library `restore` in-process; the CLI maps its SlimvisionError to one red line and exit 1). Machine shared with other jobs.",
        "",
        *conditions_markdown(conditions(args.threads), seconds),
    ]
    write_results("fuzz", "\n".join(md), {"args": vars(args), "counts": tally.counts, "reasons": tally.reasons, "slowest_s": tally.slowest_s, "examples": tally.examples, "seconds": seconds})
    print("\n".join(md))


if __name__ == "__main__":
    main()
