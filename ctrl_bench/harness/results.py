"""results.json / results.csv / results.md: per-run records, per-method summaries, paper-style table."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from .checkpoint import atomic_write_text

SUMMARY_FIELDS = ("last_accuracy", "average_incremental_accuracy", "forgetting", "bwt", "wall_seconds")


def summarise(runs: list[dict]) -> dict:
    """Per scenario and method: mean and std (population, ddof=0) over seeds of every summary field."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["scenario"], run["method"]), []).append(run)
    summary = {}
    for (scenario, method), group in sorted(groups.items()):
        entry = {"seeds": sorted(r["seed"] for r in group), "memory_budget": group[0].get("memory_budget", "")}
        for name in SUMMARY_FIELDS:
            values = np.array([r[name] for r in group], float)
            entry[name] = {"mean": float(values.mean()), "std": float(values.std())}
        summary.setdefault(scenario, {})[method] = entry
    return summary


def _pm(stat: dict, scale: float = 1.0, digits: int = 3) -> str:
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def markdown_table(summary: dict, methods: list[str], notes: list[str] = ()) -> str:
    """Method × scenario with Last and Avg (mean ± std over seeds), as in the i-CTRL paper, then details."""
    scenarios = list(summary)
    lines = ["| Method | " + " | ".join(f"{s} Last | {s} Avg" for s in scenarios) + " |",
             "|---|" + "---|---|" * len(scenarios)]
    for method in methods:
        cells = []
        for s in scenarios:
            entry = summary[s].get(method)
            cells += [_pm(entry["last_accuracy"]), _pm(entry["average_incremental_accuracy"])] if entry else ["–", "–"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "| Scenario | Method | Seeds | Forgetting | BWT | Wall time (s) | Memory |", "|---|---|---|---|---|---|---|"]
    for s in scenarios:
        for method in methods:
            entry = summary[s].get(method)
            if entry:
                lines.append(f"| {s} | {method} | {len(entry['seeds'])} | {_pm(entry['forgetting'])} | "
                             f"{_pm(entry['bwt'])} | {_pm(entry['wall_seconds'], digits=1)} | {entry['memory_budget']} |")
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def csv_text(runs: list[dict]) -> str:
    out = io.StringIO()
    fields = ["scenario", "method", "seed", *SUMMARY_FIELDS, "memory_budget", "device", "preset", "accuracy_matrix"]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for run in runs:
        writer.writerow({**run, "accuracy_matrix": json.dumps(run["accuracy_matrix"])})
    return out.getvalue()


def write_results(out_dir: str, runs: list[dict], methods: list[str], notes: list[str] = ()) -> str:
    """Write the three results files atomically; return the markdown table."""
    summary = summarise(runs)
    table = markdown_table(summary, methods, notes)
    atomic_write_text(f"{out_dir}/results.json", json.dumps({"runs": runs, "summary": summary}, indent=2))
    atomic_write_text(f"{out_dir}/results.csv", csv_text(runs))
    atomic_write_text(f"{out_dir}/results.md", table)
    return table
