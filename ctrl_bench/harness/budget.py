"""Compute-matched budgets (``--budget-flops F``): every method the epochs per experience whose
training FLOPs fit in F.

A method's training FLOPs grow linearly with its epochs per experience E, flops(E) = a + b·E: b is
the steps' cost per epoch (summed over the experiences), a what does not scale with the epochs (the
upkeep between experiences: memories fitted, exemplars chosen, anchors decoded). Both are measured,
not assumed: each (scenario, method, memory) runs once at :data:`PROBE_EPOCHS` epochs per experience
(the command's first seed, the whole run, so that the later experiences' rehearsal and replay are in
it), the line through those points gives a and b, and E = ⌊(F − a) / b⌋ is a first guess. A method
whose cost per epoch is not the same at every E (a warm-up or a finish that is a fraction of the
epochs, rounded to whole epochs) is not on that line, so the guess is checked: the method runs at E
(the same seed, one probe more), and E moves by regula falsi between the measured counts within F and
over it (:func:`next_check`) until the most epochs within F is measured, at most :data:`MAX_CHECKS`
times. A record carries the FLOPs it actually spent beside F.
"""

from __future__ import annotations

import dataclasses
import math
import os

from .config import ConfigError, RunConfig
from .records import Cell, RecordStore

PROBE_EPOCHS = (1, 2)
MAX_CHECKS = 5  # probes at the guessed epochs per budget, beyond the two of the line
PROBES_DIR = "flops-probes"  # under --out: the probes' records and results, reused by the next command


class ProbeFailed(RuntimeError):
    """A probe that measures a method's FLOPs left no count (it failed on the grid, say)."""


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(a, b) of the least-squares line flops = a + b·E through ``points`` [(E, flops)] (exact for two)."""
    n = len(points)
    mean_e = sum(e for e, _ in points) / n
    mean_f = sum(f for _, f in points) / n
    spread = sum((e - mean_e) ** 2 for e, _ in points)
    if n < 2 or spread == 0:
        raise ValueError("a line needs points at two different epoch counts")
    b = sum((e - mean_e) * (f - mean_f) for e, f in points) / spread
    return mean_f - b * mean_e, b


def epochs_within(budget: float, a: float, b: float) -> int:
    """The most epochs per experience E with a + b·E ≤ ``budget`` (0 when not even one fits)."""
    return max(0, math.floor((budget - a) / b)) if b > 0 else 0


def probe_config(config: RunConfig) -> RunConfig:
    """The command that measures the lines: the same scenarios, methods and memories, the first seed,
    one cell per probe budget, under ``--out/flops-probes``; no continual evaluation (it counts no
    training FLOPs, and the probes stay the same with or without ``--eval-every``)."""
    return dataclasses.replace(config, seeds=config.seeds[:1], epochs_values=PROBE_EPOCHS, budget_flops=(),
                               out=os.path.join(config.out, PROBES_DIR), reference=None, eval_every=None,
                               eval_images=None)


def next_check(points: dict[int, float], budget: float) -> int | None:
    """The next epoch count to measure for ``budget``, or None when the answer (:func:`settled_epochs`)
    is known. ``points``: {E: training FLOPs} measured, rising with E. The largest E within the budget
    is known when E + 1 was measured over it, or, with no count over it yet, when the line through the
    two largest counts within puts E + 1 over it. Otherwise the next is that line's E, or, once some
    count is over, the E of the line through the bracket's ends (the largest within, the smallest
    over), kept strictly inside the bracket."""
    within = sorted(e for e, f in points.items() if f <= budget)
    over = sorted(e for e, f in points.items() if f > budget)
    if not within or (over and over[0] == within[-1] + 1):
        return None
    if over:
        ends = (within[-1], over[0])
    elif len(within) > 1:
        ends = (within[-2], within[-1])
    else:
        return None
    a, b = fit_line([(e, points[e]) for e in ends])
    guess = epochs_within(budget, a, b)
    if over:  # inside the bracket, which shrinks with every check
        return min(max(guess, within[-1] + 1), over[0] - 1)
    return guess if guess > within[-1] else None


def settled_epochs(points: dict[int, float], budget: float) -> int:
    """The most epochs measured within ``budget`` (0 when none is)."""
    return max((e for e, f in points.items() if f <= budget), default=0)


def measured_points(probes: RecordStore, cells: list[tuple[str, Cell]]) -> dict[tuple, dict[int, float]]:
    """{(scenario name, scenario label, method, memory): {epochs: training FLOPs}} from the probes'
    records of ``cells``; ProbeFailed for a cell that left no count."""
    points: dict[tuple, dict[int, float]] = {}
    for name, cell in cells:
        record, _ = probes.load(cell)
        if record is None or record.get("train_flops") is None:
            raise ProbeFailed(f"the FLOPs probe {cell} left no count (see above); rerun the same command")
        points.setdefault((name, cell.scenario, cell.method, cell.memory), {})[cell.epochs] = record["train_flops"]
    return points


def fitted_epochs(config: RunConfig, points: dict[tuple, dict[int, float]]) -> tuple[dict, dict]:
    """The epochs of each (scenario name, method, memory, F) so far, and the epoch counts still to
    measure for them, {(scenario name, method, memory): {E}}, from the probes' ``points``
    (:func:`measured_points`): the line through the :data:`PROBE_EPOCHS` points gives the first guess,
    :func:`next_check` the next ones. ConfigError naming the method and the least budget that holds one
    epoch when some F does not."""
    epochs, wanted = {}, {}
    for (name, label, method, memory), measured in points.items():
        a, b = fit_line([(e, measured[e]) for e in PROBE_EPOCHS])
        for budget in config.budget_flops:
            if epochs_within(budget, a, b) < 1 and measured[PROBE_EPOCHS[0]] > budget:
                raise ConfigError(f"--budget-flops {budget:.3g} holds less than one epoch per experience of {method} "
                                  f"on {label} ({a + b:.3g} FLOPs, measured in {os.path.join(config.out, PROBES_DIR)}): "
                                  f"give at least {a + b:.3g}")
            first_guess = max(epochs_within(budget, a, b), 1)
            guess = first_guess if first_guess not in measured else next_check(measured, budget)
            if guess is not None and guess not in measured:
                wanted.setdefault((name, method, memory), set()).add(guess)
            epochs[(name, method, memory, budget)] = settled_epochs(measured, budget)
    return epochs, wanted
