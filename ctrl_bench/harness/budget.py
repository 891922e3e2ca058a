"""Compute-matched budgets (``--budget-flops F``): every method the epochs per experience whose
training FLOPs fit in F.

A method's training FLOPs grow linearly with its epochs per experience E, flops(E) = a + b·E: b is
the steps' cost per epoch (summed over the experiences), a what does not scale with the epochs (the
upkeep between experiences: memories fitted, exemplars chosen, anchors decoded). Both are measured,
not assumed: each (scenario, method, memory) runs once at :data:`PROBE_EPOCHS` epochs per experience
(the command's first seed, the whole run, so that the later experiences' rehearsal and replay are in
it), the line through those points gives a and b, and the cell gets E = ⌊(F − a) / b⌋. A record
carries the FLOPs it actually spent beside F, so a prediction that missed shows in the table.
"""

from __future__ import annotations

import dataclasses
import math
import os

from .config import ConfigError, RunConfig
from .records import Cell, RecordStore

PROBE_EPOCHS = (1, 2)
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


def fitted_epochs(config: RunConfig, probes: RecordStore, cells: list[tuple[str, Cell]]) -> dict:
    """{(scenario name, method, memory, F): epochs} from the probes' records under ``probes``
    (``cells``: the probe command's cells); ConfigError naming the method and the least budget that
    holds one epoch when some F does not."""
    points: dict[tuple, list] = {}
    for name, cell in cells:
        record, _ = probes.load(cell)
        if record is None or record.get("train_flops") is None:
            raise ProbeFailed(f"the FLOPs probe {cell} left no count (see above); rerun the same command")
        points.setdefault((name, cell.scenario, cell.method, cell.memory), []).append(
            (cell.epochs, record["train_flops"]))
    epochs = {}
    for (name, label, method, memory), measured in points.items():
        a, b = fit_line(measured)
        for budget in config.budget_flops:
            fits = epochs_within(budget, a, b)
            if fits < 1:
                raise ConfigError(f"--budget-flops {budget:.3g} holds less than one epoch per experience of {method} "
                                  f"on {label} ({a + b:.3g} FLOPs, measured in {os.path.join(config.out, PROBES_DIR)}): "
                                  f"give at least {a + b:.3g}")
            epochs[(name, method, memory, budget)] = fits
    return epochs
