"""The figures of a results folder, rebuilt from every record at the end of each command:

- ``figures/<scenario>-accuracy.png``: accuracy on the classes seen so far after every experience,
  one line per results row (method), mean ± std band over its seeds;
- ``figures/<scenario>-memory.png``: Last accuracy (± std) against ``memory_floats`` on a log
  axis, one point per row. A log axis has no 0: methods that keep nothing sit in a shaded lane at
  the left edge, one decade below the smallest memory, ticked "0" and cut off by a "//" break;
- ``figures/<scenario>-flops.png``: Last accuracy against training FLOPs, where records counted them;
- ``figures/<scenario>-continual.png`` (runs with ``--eval-every``): the accuracy on the classes of
  earlier experiences against training step, one line per row (mean ± std over seeds), the
  experiences' boundaries dashed;
- ``figures/<scenario>-confusion-<row>.png``: the row's confusion matrix after the last experience,
  classes in the order they were learnt (rows normalised, mean over seeds), experiences boxed.

Oracle rows (a classifier refitted on real data of old classes) are dashed / hollow and labelled
``[oracle]``. The same images go to TensorBoard under ``tensorboard/_figures`` (IMAGES), which
holds only the latest version. Matplotlib draws through its Agg canvas only (no pyplot, no display).
"""

from __future__ import annotations

import io
import math
import os

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread

from .atomic import atomic_write_bytes
from .records import slug
from .results import ORACLE_MARK, base_label, confusion_figure_name, group_id, summarise

FIGURES_DIR = "figures"
FIGURES_TB_DIR = os.path.join("tensorboard", "_figures")
MARKERS = "osD^vP*Xhp<>"


def _rows(runs: list[dict], methods) -> dict[str, dict[str, tuple[dict, list[dict]]]]:
    """scenario → row label → (summary entry, its runs), in the order of the results tables."""
    summary = summarise(runs, methods)
    by_group: dict[tuple, list[dict]] = {}
    for run in runs:
        by_group.setdefault((run["scenario"], base_label(run), group_id(run)), []).append(run)
    return {s: {label: (e, by_group[(s, e["label"], e["group"])]) for label, e in rows.items()}
            for s, rows in summary.items()}


def _style(i: int, oracle: bool) -> dict:
    """Row i's colour (tab20: the ten dark shades, then the ten light ones), marker and line."""
    colour = colormaps["tab20"].colors[(2 * i) % 20 + (i // 10) % 2]
    return {"color": colour, "marker": MARKERS[i % len(MARKERS)], "linestyle": "--" if oracle else "-"}


def _label(label: str, entry: dict) -> str:
    return f"{label} {ORACLE_MARK}" if entry.get("oracle") else label


MAX_TICKS = 10  # experience ticks on the accuracy figure's axis: every k-th beyond this many
WORDS_UP_TO = 5  # up to this many experiences a tick says "(4 classes)", beyond it "(4)"


def _classes(k: int) -> str:
    return f"{k} class" if k == 1 else f"{k} classes"


def experience_ticks(n_seen) -> tuple[list[int], list[str]]:
    """The accuracy figure's x ticks: experience i over the classes seen after it, every k-th
    experience (and the last) when there are more than :data:`MAX_TICKS`, so that no label runs into
    the next at 20 experiences or more."""
    n = len(n_seen)
    step = math.ceil(n / MAX_TICKS)
    shown = sorted({*range(1, n + 1, step), n})
    if len(shown) > 1 and shown[-1] - shown[-2] < step:  # the last one squeezed against its neighbour
        shown.pop(-2)
    return shown, [f"{i}\n({_classes(int(n_seen[i - 1])) if n <= WORDS_UP_TO else int(n_seen[i - 1])})" for i in shown]


def _finish(fig: Figure, xlabel: str, ylabel: str, title: str) -> Figure:
    """Accuracy from 0 to 1, the labels, a light grid, and every row named in a legend beside the plot."""
    ax = fig.axes[0]
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False,
              ncol=1 if len(ax.get_legend_handles_labels()[1]) <= 18 else 2)
    return fig


def accuracy_figure(scenario: str, rows: dict) -> Figure:
    fig = Figure(figsize=(8, 4.8))
    ax = fig.subplots()
    n_seen = None
    for i, (label, (entry, runs)) in enumerate(rows.items()):
        curves = [r["seen_accuracy"] for r in runs if r.get("seen_accuracy")]
        if not curves:
            continue
        curves = np.array(curves, float)
        mean, std = curves.mean(0), curves.std(0)
        x = np.arange(1, len(mean) + 1)
        style = _style(i, bool(entry.get("oracle")))
        ax.plot(x, mean, label=f"{_label(label, entry)} (n={len(curves)})", markersize=4, **style)
        ax.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.15, linewidth=0)
        if n_seen is None and runs[0].get("experience_classes"):
            n_seen = np.cumsum([len(c) for c in runs[0]["experience_classes"]])
    if n_seen is not None:
        ax.set_xticks(*experience_ticks(n_seen))
    return _finish(fig, "after experience (classes seen so far)", "accuracy on the classes seen so far",
                   f"{scenario}: accuracy on seen classes, mean ± std over seeds (n)")


def _log_axis(ax, values: list[float], zero_lane: bool) -> float:
    """A log x axis over ``values`` with decade ticks; with ``zero_lane``, a shaded lane left of the
    smallest decade where 0 is drawn. Returns where 0 sits."""
    positive = [v for v in values if v > 0]
    low = math.floor(math.log10(min(positive))) if positive else 0
    high = max(math.ceil(math.log10(max(positive))), low + 1) if positive else 1
    zero = 10.0 ** (low - 1)
    ax.set_xscale("log")
    ticks = [10.0 ** k for k in range(low, high + 1)]
    labels = [f"$10^{{{k}}}$" for k in range(low, high + 1)]
    if zero_lane:
        ax.set_xlim(zero / 10 ** 0.4, 10.0 ** (high + 0.3))
        ax.axvspan(zero / 10 ** 0.4, zero * 10 ** 0.5, color="0.93", zorder=0)
        ax.text(zero * 10 ** 0.5, 0, "//", transform=ax.get_xaxis_transform(), ha="center", va="center",
                fontsize=12, backgroundcolor="white")
        ticks, labels = [zero, *ticks], ["0", *labels]
    else:
        ax.set_xlim(10.0 ** (low - 0.3), 10.0 ** (high + 0.3))
    ax.set_xticks(ticks, labels)
    ax.minorticks_off()
    return zero


def _curves_and_points(ax, points, x_of, join) -> None:
    """Rows as points with error bars over seeds (std of Last), the rows that ``join`` maps to one
    key drawn as one curve in one colour; every row named in the legend (none annotated on the plot,
    so that no label covers another)."""
    curves: dict[str, list] = {}
    for label, entry, i in points:
        key = join(entry)
        if key is not None:
            curves.setdefault(key, []).append((label, entry, i))
    colour_of = {key: _style(members[0][2], False)["color"] for key, members in curves.items()}
    for key, members in curves.items():
        if len(members) > 1:
            members.sort(key=lambda m: x_of(m[1]))
            ax.plot([x_of(m[1]) for m in members], [m[1]["last_accuracy"]["mean"] for m in members],
                    color=colour_of[key], linewidth=1.2, alpha=0.8)
    for label, entry, i in points:
        style = _style(i, bool(entry.get("oracle")))
        colour = colour_of.get(join(entry), style["color"])
        ax.errorbar([x_of(entry)], [entry["last_accuracy"]["mean"]], yerr=[entry["last_accuracy"]["std"]],
                    color=colour, marker=style["marker"], capsize=3, linestyle="none", label=_label(label, entry),
                    markerfacecolor="none" if entry.get("oracle") else colour)


def memory_figure(scenario: str, rows: dict) -> Figure:
    """Last accuracy against memory: one point per row; the rows of one rehearsal method at several
    memory sizes joined into its curve (the trade-off a reader wants: what each float buys)."""
    fig = Figure(figsize=(8, 4.8))
    ax = fig.subplots()
    points = [(label, entry, i) for i, (label, (entry, _)) in enumerate(rows.items()) if entry.get("memory_floats")]
    zero = _log_axis(ax, [e["memory_floats"]["mean"] for _, e, _ in points], zero_lane=True)
    _curves_and_points(ax, points, lambda e: e["memory_floats"]["mean"] or zero,
                       lambda e: (e["method"], e.get("cell_epochs")) if e.get("memory_images") else None)
    return _finish(fig, "memory kept beyond the model (floats, log scale; 0 = keeps nothing, shaded lane)",
                   "Last accuracy (all classes)",
                   f"{scenario}: Last accuracy vs memory (lines: rehearsal methods at several memory sizes)")


def flops_figure(scenario: str, rows: dict) -> Figure | None:
    """Last accuracy against training FLOPs (log scale): one point per row, error bars over seeds, the
    rows of one method at several budgets (``--epochs A B C``) joined into its curve. None when no
    record counted its FLOPs."""
    points = [(label, entry, i) for i, (label, (entry, _)) in enumerate(rows.items()) if entry.get("train_flops")]
    if not points:
        return None
    fig = Figure(figsize=(8, 4.8))
    ax = fig.subplots()
    _log_axis(ax, [e["train_flops"]["mean"] for _, e, _ in points], zero_lane=False)
    _curves_and_points(ax, points, lambda e: e["train_flops"]["mean"],
                       lambda e: (e["method"], e.get("memory_images")))
    return _finish(fig, "training FLOPs (forward, backward and upkeep; log scale)", "Last accuracy (all classes)",
                   f"{scenario}: Last accuracy vs training compute (lines: one method at several budgets)")


def _continual_segments(trace: dict, starts: list[float], widths: list[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per experience k ≥ 1, (x, old-class accuracy): the point just before it (at its start), then each
    evaluation during it, x = start + width · step / its steps."""
    segments = []
    for k in range(1, len(trace["old_accuracy"])):
        steps, total = trace["steps"][k], max(trace["steps_per_experience"][k], 1)
        x = [starts[k]] + [starts[k] + widths[k] * s / total for s in steps]
        segments.append((np.array(x, float), np.array([trace["old_accuracy_before"][k], *trace["old_accuracy"][k]], float)))
    return segments


def continual_figure(scenario: str, rows: dict) -> Figure | None:
    """The accuracy on the classes of earlier experiences against training step, every row whose
    records hold a continual evaluation; mean ± std over seeds where their evaluations line up, else
    one line per seed. The x axis counts training steps when every run trained as many steps in each
    experience, else each experience spans one unit. None when no record has a trace."""
    traced = [(i, label, entry, [r for r in runs if r.get("continual_eval")])
              for i, (label, (entry, runs)) in enumerate(rows.items())]
    traced = [t for t in traced if t[3]]
    if not traced:
        return None
    lengths = {tuple(r["continual_eval"]["steps_per_experience"]) for *_, runs in traced for r in runs}
    common = list(next(iter(lengths))) if len(lengths) == 1 else None
    n = len(traced[0][3][0]["continual_eval"]["steps_per_experience"])
    widths = common if common else [1.0] * n
    starts = list(np.cumsum([0, *widths[:-1]]))
    fig = Figure(figsize=(9, 4.8))
    ax = fig.subplots()
    for i, label, entry, runs in traced:
        style = {**_style(i, bool(entry.get("oracle"))), "marker": None}
        per_run = [_continual_segments(r["continual_eval"], starts, widths) for r in runs]
        aligned = all(len(seg[0]) == len(first[0]) and np.allclose(seg[0], first[0])
                      for segments in per_run for seg, first in zip(segments, per_run[0]))
        name = f"{_label(label, entry)} (n={len(runs)})"
        for k, (x, _) in enumerate(per_run[0]):
            if aligned:
                values = np.array([segments[k][1] for segments in per_run])
                mean, std = values.mean(0), values.std(0)
                ax.plot(x, mean, label=name if k == 0 else None, linewidth=1.4, **style)
                ax.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.15, linewidth=0)
            else:
                for j, segments in enumerate(per_run):
                    ax.plot(*segments[k], label=name if k == 0 and j == 0 else None, linewidth=1, alpha=0.7, **style)
    for boundary in starts[1:]:
        ax.axvline(boundary, color="0.5", linestyle=":", linewidth=1)
    every = sorted({r["continual_eval"]["every_steps"] for *_, runs in traced for r in runs})
    ax.set_xlim(0, starts[-1] + widths[-1])
    xlabel = ("training step (dotted: a new experience begins)" if common else
              "training progress: experience k spans [k−1, k) (dotted: a new experience begins)")
    return _finish(fig, xlabel, "accuracy on the classes of earlier experiences",
                   f"{scenario}: earlier classes during training (evaluated every {'/'.join(map(str, every))} steps)")


def confusion_matrix_in_order(run: dict) -> np.ndarray | None:
    """A run's final confusion matrix, rows and columns in the order its classes were learnt, each row
    divided by its count (None without one)."""
    confusion, order = run.get("confusion_matrix"), run.get("class_order")
    if not confusion or not order or len(order) != len(confusion):
        return None
    C = np.asarray(confusion, float)[np.ix_(order, order)]
    totals = C.sum(1, keepdims=True)
    return np.divide(C, totals, out=np.zeros_like(C), where=totals > 0)


def confusion_figure(scenario: str, label: str, entry: dict, runs: list[dict]) -> Figure | None:
    """A row's confusion matrix after the last experience (mean over seeds of the row-normalised
    matrices, classes in the order learnt), the experiences' blocks outlined. None when its records
    hold none."""
    matrices = [(r, m) for r in runs if (m := confusion_matrix_in_order(r)) is not None]
    if not matrices:
        return None
    mean = np.mean([m for _, m in matrices], axis=0)
    first = matrices[0][0]
    K = len(mean)
    fig = Figure(figsize=(6.4, 5.4))
    ax = fig.subplots()
    shown = ax.imshow(mean, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's test images")
    bounds = np.cumsum([len(c) for c in first.get("experience_classes") or []])[:-1]
    for b in bounds:
        ax.axhline(b - 0.5, color="white", linewidth=0.8)
        ax.axvline(b - 0.5, color="white", linewidth=0.8)
    if K <= 20:
        ticks = list(range(K))
        names = ([str(c) for c in first["class_order"]] if len(matrices) == 1 else [str(t + 1) for t in ticks])
        ax.set_xticks(ticks, names, fontsize=7)
        ax.set_yticks(ticks, names, fontsize=7)
    what = "class id" if len(matrices) == 1 and K <= 20 else "position in the class order"
    ax.set_xlabel(f"predicted class ({what}, in the order learnt)")
    ax.set_ylabel(f"true class ({what}, in the order learnt)")
    bias = entry.get("recency_bias")
    share = entry.get("last_classes_test_share")
    extra = (f"; predictions to the last experience's classes {bias['mean']:.2f} (their test share "
             f"{share['mean']:.2f})" if bias and share else "")
    ax.set_title(f"{scenario} {_label(label, entry)}: confusion after the last experience\n"
                 f"(rows normalised, mean over {len(matrices)} seed{'s' if len(matrices) > 1 else ''}{extra})",
                 fontsize=9)
    return fig


def png_bytes(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def write_figures(out_dir: str, runs: list[dict], methods=()) -> list[str]:
    """Write the figures of every scenario under ``out_dir`` (accuracy, memory and, where records
    counted them, training FLOPs); return the PNG paths."""
    from torch.utils.tensorboard import SummaryWriter  # TensorBoard's writer loads its protobufs: only when figures are drawn

    tb_dir = os.path.join(out_dir, FIGURES_TB_DIR)
    if os.path.isdir(tb_dir):  # TensorBoard shows the latest figures only
        for name in os.listdir(tb_dir):
            if name.startswith("events.out.tfevents."):
                os.remove(os.path.join(tb_dir, name))
    written = []
    with SummaryWriter(tb_dir) as writer:
        def save(figure: Figure | None, path: str, tag: str) -> None:
            if figure is None:
                return
            png = png_bytes(figure)
            atomic_write_bytes(path, png)
            writer.add_image(tag, imread(io.BytesIO(png))[..., :3], 0, dataformats="HWC")
            written.append(path)

        for scenario, rows in _rows(runs, methods).items():
            for kind, draw in (("accuracy", accuracy_figure), ("memory", memory_figure), ("flops", flops_figure),
                               ("continual", continual_figure)):
                save(draw(scenario, rows), os.path.join(out_dir, FIGURES_DIR, f"{slug(scenario)}-{kind}.png"),
                     f"{scenario}/{kind}")
            for label, (entry, group) in rows.items():
                save(confusion_figure(scenario, label, entry, group),
                     os.path.join(out_dir, confusion_figure_name(scenario, label)), f"{scenario}/confusion/{label}")
    return written
