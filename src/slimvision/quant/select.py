"""`auto`: pick the deployment (fp32 or INT8, any runtime) that is fastest at the requested batch size within the accuracy limit.

Timing is in the same process. A short interleaved screening round times every candidate; going from the
fastest, the first candidate within the accuracy limit of PyTorch fp32 (on the evaluation set) sets
the bar, anything clearly slower than it (its fastest pass over `prune_ratio` x the bar's median pass)
is dropped without spending an accuracy evaluation, and a
candidate above the accuracy limit is out however fast it is. The rest run interleaved rounds
(order rotated and reversed, `interleaved_order`) whose median of medians decides; after `min_rounds` they stop early when the
fastest candidate won every round against every other. INT8 must beat the fastest fp32
candidate by `min_gain` to win: on a tie the exact model is the better deployment. Every candidate
gets a verdict saying why it won or lost.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from slimvision.quant.runtimes import Runtime, interleaved_order, time_runtime_ms

CHOSEN, SLOWER, PRUNED, INACCURATE, FAILED = "chosen", "slower", "pruned", "inaccurate", "failed"
# Accuracies are counts over a test set: a drop of exactly the limit (5 of 100 images at 0.05) must pass,
# but 1.0 - 0.95 is 0.05000000000000004 in floating point.
ACCURACY_SLACK = 1e-9


@dataclasses.dataclass
class Candidate:
    """A deployment to consider: `make()` builds its runtime (so a failing or costly build is measured and reported)."""

    backend: str  # onnxruntime | openvino | torchao
    precision: str  # fp32 | bf16 | int8
    make: Callable[[], Runtime]
    threads: int | None = None  # None: the thread count quantize runs with; 1: a single-thread variant

    @property
    def name(self) -> str:
        return f"{self.backend} {self.precision}" + (" 1-thread" if self.threads == 1 else "")


@dataclasses.dataclass
class Verdict:
    """What `select_deployment` found about one candidate and why it won or lost."""

    name: str
    backend: str
    precision: str
    threads: int | None = None
    status: str = ""
    reason: str = ""
    accuracy: float | None = None
    agreement: float | None = None
    latency_ms: float | None = None  # median of round medians at the requested batch size
    screen_ms: float | None = None  # the short screening round's fastest pass, every built candidate
    screen_passes_ms: list[float] = dataclasses.field(default_factory=list)
    round_ms: list[float] = dataclasses.field(default_factory=list)
    build_s: float | None = None


@dataclasses.dataclass
class SelectionConfig:
    """How hard `select_deployment` measures: batch size, screening, interleaved rounds, tie margin."""

    batch_size: int = 32
    screen_rounds: int = 3  # interleaved screening passes; a candidate's screening time is its fastest pass
    screen_repeats: int = 2  # timed calls per candidate per screening pass (at least)
    screen_ms: float = 100.0  # and at least this much timed work over the passes, so sub-millisecond models get enough calls
    prune_ratio: float = 1.5  # screened out when this much slower than the best accurate candidate
    rounds: int = 5
    min_rounds: int = 3  # stop after this many rounds once every round of the fastest beat every round of the others
    repeats: int = 5  # timed calls per candidate per round (at least)
    round_ms: float = 50.0  # and at least this much timed work per candidate per round
    warmup: int = 2
    min_gain: float = 0.03  # INT8 must be this much faster (fraction) than the fastest fp32 to be chosen


def select_deployment(
    candidates: list[Candidate],
    predict: Callable[[Runtime], np.ndarray],
    labels: np.ndarray,
    reference: np.ndarray,
    accuracy_limit: float,
    input_size: tuple[int, ...],
    config: SelectionConfig | None = None,
    timer: Callable[[Runtime, np.ndarray, int, int, float], float] = time_runtime_ms,
    phases: dict[str, float] | None = None,
) -> tuple[Verdict | None, list[Verdict], dict[str, Runtime]]:
    """(winner or None, a verdict per candidate, the built runtimes by name); `reference` is PyTorch fp32's predictions.

    `phases`, when given, receives the seconds spent building, screening, scoring accuracy and in the rounds.
    """
    config = config or SelectionConfig()
    phases = phases if phases is not None else {}
    clock = time.perf_counter()
    reference_accuracy = float((reference == labels).mean())
    verdicts = {c.name: Verdict(c.name, c.backend, c.precision, c.threads) for c in candidates}
    runtimes: dict[str, Runtime] = {}
    batch = np.random.default_rng(0).standard_normal((config.batch_size, *input_size), dtype=np.float32)
    for candidate in candidates:
        verdict = verdicts[candidate.name]
        start = time.perf_counter()
        try:
            runtimes[candidate.name] = candidate.make()
            for _ in range(config.warmup):
                runtimes[candidate.name].run(batch)
        except Exception as exc:  # a runtime that cannot build or run this model is a lost candidate, not a crash
            runtimes.pop(candidate.name, None)
            verdict.status, verdict.reason = FAILED, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            continue
        verdict.build_s = time.perf_counter() - start
    phases["build_s"], clock = time.perf_counter() - clock, time.perf_counter()
    # Screening is interleaved too, and keeps each candidate's fastest pass: on a loaded machine noise only
    # adds time, so one unlucky burst must not prune a candidate (or make another look fast).
    screens: dict[str, list[float]] = {name: [] for name in runtimes}
    for pass_index in range(config.screen_rounds):
        for name in interleaved_order(list(runtimes), pass_index):
            screens[name].append(timer(runtimes[name], batch, 0, config.screen_repeats, config.screen_ms / config.screen_rounds))
    for name, values in screens.items():
        verdicts[name].screen_ms = min(values)
        verdicts[name].screen_passes_ms = values
    phases["screen_s"], clock = time.perf_counter() - clock, time.perf_counter()
    # Fastest first: the first accurate candidate sets the bar, and anything clearly slower than it is
    # dropped without spending an accuracy evaluation on it.
    alive: list[str] = []
    for name in sorted(runtimes, key=lambda n: verdicts[n].screen_ms):
        verdict = verdicts[name]
        # "clearly slower": even its fastest pass is prune_ratio x the bar's median pass. Noise only adds
        # time, so the median is never below the bar's true time, and one pass caught in a burst of other
        # load (at batch 1 under load: 0.25, 38.6, 0.25 ms) no longer shields candidates 16x slower
        bar = verdicts[alive[0]] if alive else None
        bar_ms = float(np.median(bar.screen_passes_ms)) if bar else 0.0
        if bar and verdict.screen_ms > config.prune_ratio * bar_ms:
            verdict.status, verdict.latency_ms = PRUNED, verdict.screen_ms
            verdict.reason = (f"screening round: fastest pass {verdict.screen_ms:.2f} ms, {verdict.screen_ms / bar_ms:.2f}x "
                              f"{bar.name}'s median pass ({bar_ms:.2f} ms) > {config.prune_ratio}x")
            continue
        predictions = predict(runtimes[name])
        verdict.accuracy = float((predictions == labels).mean())
        verdict.agreement = float((predictions == reference).mean())
        drop = reference_accuracy - verdict.accuracy
        if drop > accuracy_limit + ACCURACY_SLACK:
            verdict.status = INACCURATE
            verdict.reason = f"top-1 {verdict.accuracy:.4f} is {100 * drop:.1f} points below fp32 {reference_accuracy:.4f} (limit {100 * accuracy_limit:.1f})"
            continue
        alive.append(name)
    phases["accuracy_s"], clock = time.perf_counter() - clock, time.perf_counter()
    if not alive:
        return None, list(verdicts.values()), runtimes
    for round_index in range(config.rounds):
        # vary the order so no candidate always runs first or right after the same other one (caches, turbo,
        # other load, a runtime whose threads are still busy after its call)
        for name in interleaved_order(alive, round_index):
            verdicts[name].round_ms.append(timer(runtimes[name], batch, 1, config.repeats, config.round_ms))
        if round_index + 1 >= config.min_rounds and _separated(alive, verdicts):
            break
    phases["rounds_s"] = time.perf_counter() - clock
    for name in alive:
        verdicts[name].latency_ms = float(np.median(verdicts[name].round_ms))
    winner = _pick(alive, verdicts, config.min_gain)
    fastest_fp32 = min((n for n in alive if verdicts[n].precision != "int8"), key=lambda n: verdicts[n].latency_ms, default=None)
    for name in alive:
        verdict = verdicts[name]
        if name == winner:
            verdict.status = CHOSEN
            verdict.reason = _winning_reason(verdict, alive, verdicts, fastest_fp32)
        else:
            verdict.status = SLOWER
            ratio = verdict.latency_ms / verdicts[winner].latency_ms
            verdict.reason = f"{verdict.latency_ms:.2f} ms, {ratio:.2f}x the chosen {winner} ({verdicts[winner].latency_ms:.2f} ms)"
            if verdict.precision == "int8" and fastest_fp32 == winner and verdict.latency_ms < verdicts[winner].latency_ms:
                verdict.reason += f": less than {100 * config.min_gain:.0f}% faster than fp32, so the exact model is kept"
    return verdicts[winner], list(verdicts.values()), runtimes


def _separated(alive: list[str], verdicts: dict[str, Verdict]) -> bool:
    """True when the fastest candidate's slowest round beat every other candidate's fastest round: more rounds cannot change the order."""
    if len(alive) < 2:
        return True
    fastest = min(alive, key=lambda n: float(np.median(verdicts[n].round_ms)))
    return all(max(verdicts[fastest].round_ms) < min(verdicts[n].round_ms) for n in alive if n != fastest)


def _pick(alive: list[str], verdicts: dict[str, Verdict], min_gain: float) -> str:
    """The fastest candidate, except that INT8 must beat the fastest fp32 candidate by `min_gain`."""
    fastest = min(alive, key=lambda n: verdicts[n].latency_ms)
    fp32 = [n for n in alive if verdicts[n].precision != "int8"]
    if verdicts[fastest].precision != "int8" or not fp32:
        return fastest
    fastest_fp32 = min(fp32, key=lambda n: verdicts[n].latency_ms)
    if verdicts[fastest].latency_ms <= (1 - min_gain) * verdicts[fastest_fp32].latency_ms:
        return fastest
    return fastest_fp32


def _winning_reason(verdict: Verdict, alive: list[str], verdicts: dict[str, Verdict], fastest_fp32: str | None) -> str:
    others = [n for n in alive if n != verdict.name]
    text = f"{verdict.latency_ms:.2f} ms, fastest within the accuracy limit"
    if not others:
        return f"{verdict.latency_ms:.2f} ms, the only candidate left"
    runner_up = min(others, key=lambda n: verdicts[n].latency_ms)
    if verdicts[runner_up].latency_ms < verdict.latency_ms:  # kept over a marginally faster INT8 candidate
        gain = 1 - verdicts[runner_up].latency_ms / verdict.latency_ms
        return f"{verdict.latency_ms:.2f} ms, the fastest fp32; {runner_up} is only {100 * gain:.1f}% faster, below the margin, so the exact model is kept"
    text += f" ({verdicts[runner_up].latency_ms / verdict.latency_ms:.2f}x faster than {runner_up}"
    if fastest_fp32 and fastest_fp32 not in (verdict.name, runner_up):
        text += f", {verdicts[fastest_fp32].latency_ms / verdict.latency_ms:.2f}x faster than {fastest_fp32}"
    return text + ")"
