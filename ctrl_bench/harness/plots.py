"""The two figures of a results folder, rebuilt from every record at the end of each command:

- ``figures/<scenario>-accuracy.png``: accuracy on the classes seen so far after every experience,
  one line per results row (method), mean ± std band over its seeds;
- ``figures/<scenario>-memory.png``: Last accuracy (± std) against ``memory_floats`` on a log
  axis, one point per row. A log axis has no 0: methods that keep nothing sit in a shaded lane at
  the left edge, one decade below the smallest memory, ticked "0" and cut off by a "//" break.

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
from .results import ORACLE_MARK, base_label, group_id, summarise

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
        ax.set_xticks(np.arange(1, len(n_seen) + 1), [f"{i}\n({k} classes)" for i, k in enumerate(n_seen, 1)])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("after experience (classes seen so far)")
    ax.set_ylabel("accuracy on the classes seen so far")
    ax.set_title(f"{scenario}: accuracy on seen classes, mean ± std over seeds (n)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return fig


def memory_figure(scenario: str, rows: dict) -> Figure:
    """Last accuracy against memory: one point per row; the rows of one rehearsal method at several
    memory sizes joined into its curve (the trade-off a reader wants: what each float buys)."""
    fig = Figure(figsize=(8, 4.8))
    ax = fig.subplots()
    points = [(label, entry, i) for i, (label, (entry, _)) in enumerate(rows.items()) if entry.get("memory_floats")]
    positive = [e["memory_floats"]["mean"] for _, e, _ in points if e["memory_floats"]["mean"] > 0]
    low = math.floor(math.log10(min(positive))) if positive else 0
    high = max(math.ceil(math.log10(max(positive))), low + 1) if positive else 1
    zero = 10.0 ** (low - 1)  # the lane of methods that keep nothing
    curves: dict[str, list] = {}
    for label, entry, i in points:
        if entry.get("memory_images"):
            curves.setdefault(entry["method"], []).append((label, entry, i))
    colour_of = {method: _style(members[0][2], False)["color"] for method, members in curves.items()}
    for method, members in curves.items():
        members.sort(key=lambda m: m[1]["memory_floats"]["mean"])
        xs = [m[1]["memory_floats"]["mean"] for m in members]
        ys = [m[1]["last_accuracy"]["mean"] for m in members]
        ax.plot(xs, ys, color=colour_of[method], linewidth=1.2, alpha=0.8)
        ax.annotate(method, (xs[-1], ys[-1]), textcoords="offset points", xytext=(6, -9), fontsize=8,
                    color=colour_of[method])
    for label, entry, i in points:
        x = entry["memory_floats"]["mean"] or zero
        y, err = entry["last_accuracy"]["mean"], entry["last_accuracy"]["std"]
        style = _style(i, bool(entry.get("oracle")))
        colour = colour_of.get(entry["method"], style["color"]) if entry.get("memory_images") else style["color"]
        ax.errorbar([x], [y], yerr=[err], color=colour, marker=style["marker"], capsize=3,
                    markerfacecolor="none" if entry.get("oracle") else colour, linestyle="none")
        if not entry.get("memory_images"):  # a curve is named once, at its end
            ax.annotate(_label(label, entry), (x, y), textcoords="offset points", xytext=(6, 3), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(zero / 10 ** 0.4, 10.0 ** (high + 0.3))
    ax.axvspan(zero / 10 ** 0.4, zero * 10 ** 0.5, color="0.93", zorder=0)
    ax.text(zero * 10 ** 0.5, 0, "//", transform=ax.get_xaxis_transform(), ha="center", va="center",
            fontsize=12, backgroundcolor="white")
    ticks = [zero] + [10.0 ** k for k in range(low, high + 1)]
    ax.set_xticks(ticks, ["0"] + [f"$10^{{{k}}}$" for k in range(low, high + 1)])
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("memory kept beyond the model (floats, log scale; 0 = keeps nothing, shaded lane)")
    ax.set_ylabel("Last accuracy (all classes)")
    ax.set_title(f"{scenario}: Last accuracy vs memory (lines: rehearsal methods at several memory sizes)")
    ax.grid(alpha=0.3)
    return fig


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def write_figures(out_dir: str, runs: list[dict], methods=()) -> list[str]:
    """Write both figures of every scenario under ``out_dir``; return the PNG paths."""
    from torch.utils.tensorboard import SummaryWriter  # TensorBoard's writer loads its protobufs: only when figures are drawn

    tb_dir = os.path.join(out_dir, FIGURES_TB_DIR)
    if os.path.isdir(tb_dir):  # TensorBoard shows the latest figures only
        for name in os.listdir(tb_dir):
            if name.startswith("events.out.tfevents."):
                os.remove(os.path.join(tb_dir, name))
    written = []
    with SummaryWriter(tb_dir) as writer:
        for scenario, rows in _rows(runs, methods).items():
            for kind, draw in (("accuracy", accuracy_figure), ("memory", memory_figure)):
                png = _png(draw(scenario, rows))
                path = os.path.join(out_dir, FIGURES_DIR, f"{slug(scenario)}-{kind}.png")
                atomic_write_bytes(path, png)
                writer.add_image(f"{scenario}/{kind}", imread(io.BytesIO(png))[..., :3], 0, dataformats="HWC")
                written.append(path)
    return written
