"""results.json / results.csv / results.md from every record under ``--out``, and the console summary.

Runs are pooled over seeds only when they share a reuse key (settings, data, code, device): when a
scenario holds records of one method made under different keys (an earlier command with other
settings, say), each key gets its own row, labelled ``method @<key>``; the row holding this
command's runs (or else the newest) keeps the plain method name.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from .atomic import atomic_write_set
from .budget import PROBE_EPOCHS, PROBES_DIR
from .records import cell_details, flops_text, short_hash, slug, tuned_label
from .stats import paired_difference

SUMMARY_FIELDS = ("last_accuracy", "average_incremental_accuracy", "forgetting", "bwt", "wall_seconds")
OPTIONAL_SUMMARY = ("memory_floats", "replay_accuracy", "task_il_last_accuracy", "task_il_average_accuracy",
                    "train_steps", "train_flops", "peak_memory_bytes", "learning_accuracy", "recency_bias",
                    "last_classes_test_share", "min_accuracy", "stability_gap", "continual_eval_flops",
                    "continual_eval_seconds")
SOURCES = ("ran", "reused", "earlier")  # ran / reused by this command, or a record of an earlier command
ORACLE_MARK = "[oracle]"  # after the label of a row whose runs refit a classifier on real data of old classes


def group_id(run: dict) -> str:
    """Runs of one group differ only in their seed. Records older than reuse keys group by settings."""
    return short_hash(run.get("reuse_key") or {"no reuse key": [run.get("preset"), run.get("settings")]})[:6]


def _stat(values) -> dict:
    values = np.array(values, float)
    return {"mean": float(values.mean()), "std": float(values.std())}


def _finished_at(run: dict) -> str:
    return run.get("provenance", {}).get("finished_at", "")


COMPUTE_MATCHED = "compute-matched"  # the label's mark of a --budget-flops row


def base_label(run: dict) -> str:
    """A row's name: the method, the images a rehearsal run keeps, and its budget when it departs from
    the shared one, e.g. "replay (500 images)", "der (500 images) [4 epochs]"."""
    label = run["method"]
    if run.get("cell_budget_flops"):  # the same name in every scenario; its budget and epochs are in the notes
        shown = cell_details(run.get("memory_images"), None, None) + [COMPUTE_MATCHED]
    else:
        shown = cell_details(run.get("memory_images"), run.get("cell_epochs"), None)
    if shown:
        label += f" ({', '.join(shown)})"
    tuned = (run.get("settings") or {}).get("tuned")
    if tuned:
        label += f" [{tuned_label(tuned)}]"
    override = (run.get("budget") or {}).get("override")
    label = f"{label} [{override}]" if override else label
    return f"{label} [{run['variant']}]" if run.get("variant") else label  # a stored table's named row


def summarise(runs: list[dict], methods: list[str] = ()) -> dict:
    """Per scenario, per row label: mean and std (population, ddof=0) over seeds of every summary
    field and of the optional ones (None when a record lacks them), the seeds by source, the memory
    budget, the training budget and the oracle reason (None for a class-incremental result). Rows
    follow ``methods`` (a rehearsal method's sizes in ascending order), then the others."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["scenario"], base_label(run), group_id(run)), []).append(run)

    order = {m: i for i, m in enumerate(methods)}

    def rank_of(cell):
        scenario, label = cell
        run = next(rs[0] for (s, lb, _), rs in groups.items() if (s, lb) == cell)
        return (scenario, order.get(run["method"], len(order)), run["method"], run.get("memory_images") or 0,
                run.get("cell_epochs") or 0, label)

    summary: dict[str, dict] = {}
    for scenario, label in sorted({(s, lb) for s, lb, _ in groups}, key=rank_of):
        candidates = sorted(((g, rs) for (s, lb, g), rs in groups.items() if (s, lb) == (scenario, label)),
                            key=lambda c: max(_finished_at(r) for r in c[1]), reverse=True)
        candidates.sort(key=lambda c: all(r["source"] == "earlier" for r in c[1]))  # this command's first
        for rank, (gid, group) in enumerate(candidates):
            first = group[0]
            entry = {"method": first["method"], "label": label, "group": gid, "seeds": sorted(r["seed"] for r in group),
                     "sources": {src: sorted(r["seed"] for r in group if r["source"] == src) for src in SOURCES},
                     "memory_budget": first.get("memory_budget", ""), "memory_images": first.get("memory_images"),
                     "cell_epochs": first.get("cell_epochs"),
                     "oracle": first.get("oracle"), "evaluated_on": first.get("evaluated_on", "test"),
                     "budget": budget_text(first)}
            entry["last_by_seed"] = {r["seed"]: r["last_accuracy"] for r in group}
            for name in SUMMARY_FIELDS:
                entry[name] = _stat([r[name] for r in group])
            for name in OPTIONAL_SUMMARY:  # None when a record lacks the field
                values = [r.get(name) for r in group]
                entry[name] = None if None in values else _stat(values)
            entry["per_class_accuracy"] = per_class_mean([r.get("per_class_accuracy") for r in group])
            entry["eval_every"] = (first.get("continual_eval") or {}).get("every_steps")
            sizes = sorted(set((first.get("continual_eval") or {}).get("images_per_experience") or []))
            entry["eval_images"] = (f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}") if sizes else None
            summary.setdefault(scenario, {})[label if rank == 0 else f"{label} @{gid}"] = entry
    return summary


def confusion_figure_name(scenario: str, label: str) -> str:
    """Where a row's confusion matrix is drawn, relative to --out."""
    return f"figures/{slug(scenario)}-confusion-{slug(label)}.png"


def per_class_mean(per_run: list) -> list | None:
    """Each class's accuracy at the end, mean over the runs (None when a run lacks the field, or for a
    class no run has test images of)."""
    if not per_run or any(p is None for p in per_run):
        return None
    columns = zip(*per_run)
    return [None if any(a is None for a in column) else float(np.mean(column)) for column in columns]


def reference_row(rows: dict, method: str | None = None) -> str | None:
    """The label of a scenario's reference row: the best Last among ``method``'s rows (every row when
    None), oracles left out; None when there is none."""
    candidates = [(entry["last_accuracy"]["mean"], label) for label, entry in rows.items()
                  if not entry.get("oracle") and (method is None or entry["method"] == method)]
    return max(candidates)[1] if candidates else None


def paired(summary: dict, reference: str | None = None) -> dict:
    """Per scenario, each row's paired difference in Last to the reference row over the seeds both
    ran (:func:`.stats.paired_difference`; None with fewer than 2): {scenario: {"reference": label,
    "rows": {label: difference}}}."""
    found = {}
    for scenario, rows in summary.items():
        ref = reference_row(rows, reference)
        if ref is None:
            continue
        base = rows[ref]["last_by_seed"]
        found[scenario] = {"reference": ref, "rows": {label: paired_difference(entry["last_by_seed"], base)
                                                      for label, entry in rows.items() if label != ref}}
    return found


def paired_table(comparisons: dict) -> list[str]:
    """The paired differences, a row per (scenario, row) that shares at least 2 seeds with its reference."""
    lines = ["| Scenario | Method | Reference | Δ Last (mean) | 95 % CI | p (paired t) | p (Wilcoxon) | Seeds | "
             "Distinguishable |", "|---|---|---|---|---|---|---|---|---|"]
    for scenario, found in comparisons.items():
        for label, diff in found["rows"].items():
            if diff is None:
                continue
            low, high = diff["ci95"]
            verdict = "yes" if diff["distinguishable"] else f"no (not distinguishable at {diff['n']} seeds)"
            lines.append(f"| {scenario} | {label} | {found['reference']} | {diff['mean']:+.3f} | "
                         f"[{low:+.3f}, {high:+.3f}] | {diff['t_test_p']:.3g} | {diff['wilcoxon_p']:.3g} | {diff['n']} | "
                         f"{verdict} |")
    return lines if len(lines) > 2 else []


def budget_text(run: dict) -> str:
    """What a run trained, e.g. "30 epochs × 5, batch 64, 2,400 steps" or "150 + 30 × 4 epochs, …"."""
    epochs = run.get("epochs_per_experience")
    if not epochs:
        return "?"
    head, rest = epochs[0], epochs[1:]
    shown = (f"{head} epochs × {len(epochs)}" if all(e == head for e in rest)
             else f"{head} + {rest[0]} × {len(rest)} epochs" if rest and all(e == rest[0] for e in rest)
             else f"{', '.join(map(str, epochs))} epochs")
    batch = (run.get("budget") or {}).get("batch_size")
    return shown + (f", batch {batch}" if batch else "") + (f", {run['train_steps']:,} steps" if "train_steps" in run else "")


def _pm(stat: dict, scale: float = 1.0, digits: int = 3) -> str:
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def _floats(stat: dict | None) -> str:
    """e.g. "392,000", "1,210 ± 4"; "?" for records older than the memory_floats field."""
    if stat is None:
        return "?"
    return f"{stat['mean']:,.0f}" + (f" ± {stat['std']:,.0f}" if stat["std"] else "")


def _flops(stat: dict | None) -> str:
    """e.g. "3.41e+12"; "?" for records older than the train_flops field."""
    return "?" if stat is None else f"{stat['mean']:.3g}"


def _mib(stat: dict | None) -> str:
    return "?" if stat is None else f"{stat['mean'] / 2**20:,.0f}"


def display_label(label: str, entry: dict) -> str:
    """A row's label as the tables print it: oracles marked."""
    return f"{label} {ORACLE_MARK}" if entry.get("oracle") else label


def _sources(entry: dict) -> str:
    """e.g. "ran 0 1; earlier 2"."""
    return "; ".join(f"{src} {' '.join(map(str, seeds))}" for src, seeds in entry["sources"].items() if seeds)


def _row_labels(summary: dict) -> list[str]:
    labels: list[str] = []
    for rows in summary.values():
        labels += [label for label in rows if label not in labels]
    return labels


def _scenario_title(scenario: str, rows: dict) -> str:
    """A scenario's column name; results on a validation split say so."""
    on = {e.get("evaluated_on", "test") for e in rows.values()}
    return f"{scenario} (validation)" if on == {"validation"} else scenario


def paper_table(summary: dict) -> list[str]:
    """Method × scenario with Last and Avg (mean ± std over seeds), as in the i-CTRL paper, the
    learning accuracy and forgetting beside them (what a method learns of each experience, and what it
    loses of it), the Task-IL Last (the task's classes known at test time), the memory each method
    keeps, in floats, and what its training cost, in FLOPs (mean over seeds)."""
    scenarios = list(summary)
    titles = {s: _scenario_title(s, summary[s]) for s in scenarios}
    lines = ["| Method | " + " | ".join(f"{titles[s]} Last | {titles[s]} Avg | {titles[s]} Learning acc | "
                                        f"{titles[s]} Forgetting | {titles[s]} Task-IL Last | "
                                        f"{titles[s]} Memory (floats) | {titles[s]} Training FLOPs"
                                        for s in scenarios) + " |",
             "|---|" + "---|---|---|---|---|---|---|" * len(scenarios)]
    for label in _row_labels(summary):
        entries = [summary[s].get(label) for s in scenarios]
        cells = []
        for entry in entries:
            task_il = entry and entry.get("task_il_last_accuracy")
            learning = entry and entry.get("learning_accuracy")
            cells += ([_pm(entry["last_accuracy"]), _pm(entry["average_incremental_accuracy"]),
                       _pm(learning) if learning else "–", _pm(entry["forgetting"]),
                       _pm(task_il) if task_il else "–", _floats(entry["memory_floats"]), _flops(entry.get("train_flops"))]
                      if entry else ["–"] * 7)
        oracle = any(entry and entry["oracle"] for entry in entries)
        lines.append(f"| {f'{label} {ORACLE_MARK}' if oracle else label} | " + " | ".join(cells) + " |")
    return lines


def details_table(summary: dict) -> list[str]:
    lines = ["| Scenario | Method | Seeds | Evaluated on | Budget | Forgetting | BWT | Task-IL Avg | Wall time (s) | "
             "Peak memory (MiB) | Memory | Memory (floats) | Replay accuracy (judge) | Source (seeds) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, rows in summary.items():
        for label, entry in rows.items():
            task_il = entry.get("task_il_average_accuracy")
            lines.append(f"| {s} | {display_label(label, entry)} | {len(entry['seeds'])} | "
                         f"{entry.get('evaluated_on', 'test')} | {entry.get('budget', '?')} | {_pm(entry['forgetting'])} | "
                         f"{_pm(entry['bwt'])} | {_pm(task_il) if task_il else '–'} | "
                         f"{_pm(entry['wall_seconds'], digits=1)} | {_mib(entry.get('peak_memory_bytes'))} | "
                         f"{entry['memory_budget']} | "
                         f"{_floats(entry['memory_floats'])} | "
                         f"{'–' if entry.get('replay_accuracy') is None else _pm(entry['replay_accuracy'])} | "
                         f"{_sources(entry)} |")
    return lines


def _optional(stat: dict | None) -> str:
    return "–" if stat is None else _pm(stat)


def analysis_table(summary: dict) -> list[str]:
    """The continual evaluation (min-ACC, stability gap, and what it cost, apart from training) and the
    recency bias beside the last experience's share of the test set; empty when no record has them."""
    lines = ["| Scenario | Method | Seeds | Min-ACC | Stability gap | Recency bias (predictions → last classes) | "
             "Last classes' share of the test set | Evaluated every (steps) | Images per experience | "
             "Evaluation FLOPs | Evaluation time (s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, rows in summary.items():
        for label, entry in rows.items():
            if entry.get("recency_bias") is None and entry.get("eval_every") is None:
                continue
            every = entry.get("eval_every")
            lines.append(f"| {s} | {display_label(label, entry)} | {len(entry['seeds'])} | "
                         f"{_optional(entry.get('min_accuracy'))} | {_optional(entry.get('stability_gap'))} | "
                         f"{_optional(entry.get('recency_bias'))} | {_optional(entry.get('last_classes_test_share'))} | "
                         f"{every or '–'} | {entry.get('eval_images') or '–'} | "
                         f"{_flops(entry.get('continual_eval_flops')) if every else '–'} | "
                         f"{'–' if entry.get('continual_eval_seconds') is None else _pm(entry['continual_eval_seconds'], digits=2)} |")
    return lines if len(lines) > 2 else []


def per_class_table(summary: dict) -> list[str]:
    """Each row's accuracy on every class after the last experience (mean over seeds), by class id,
    and its confusion-matrix figure; empty when no record has it."""
    lines = ["| Scenario | Method | Accuracy by class (class: accuracy) | Confusion matrix |", "|---|---|---|---|"]
    for s, rows in summary.items():
        for label, entry in rows.items():
            per_class = entry.get("per_class_accuracy")
            if per_class is None:
                continue
            shown = " ".join(f"{c}: {'–' if a is None else f'{a:.2f}'}" for c, a in enumerate(per_class))
            lines.append(f"| {s} | {display_label(label, entry)} | {shown} | {confusion_figure_name(s, label)} |")
    return lines if len(lines) > 2 else []


def _commit(run: dict) -> str:
    commit = run.get("provenance", {}).get("git_commit", "?")
    return commit[:10] + (" dirty" if "dirty" in commit else "")


def _threads(run: dict) -> str:
    return str(run.get("provenance", {}).get("torch_threads", "?"))


def runs_table(runs: list[dict], summary: dict) -> list[str]:
    label_of = {(s, e["label"], e["group"]): label for s, rows in summary.items() for label, e in rows.items()}
    lines = ["| Scenario | Method | Seed | Last | Avg | Memory (floats) | Class order | Seconds per experience | "
             "Threads | Commit | Source |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        seconds = " ".join(f"{t:.1f}" for t in run.get("experience_seconds", []))
        floats = run.get("memory_floats")
        label = display_label(label_of[(run['scenario'], base_label(run), group_id(run))], run)
        lines.append(f"| {run['scenario']} | {label} | "
                     f"{run['seed']} | {run['last_accuracy']:.3f} | {run['average_incremental_accuracy']:.3f} | "
                     f"{'?' if floats is None else f'{floats:,}'} | "
                     f"{' '.join(map(str, run.get('class_order', []))) or '?'} | {seconds or '?'} | {_threads(run)} | "
                     f"{_commit(run)} | {run['source']} |")
    return lines


def failed_lines(failed: list[dict]) -> list[str]:
    """The cells of a grid run that failed, for the console (no record: a rerun runs them again)."""
    if not failed:
        return []
    return [f"Failed runs ({len(failed)}; no record written, the same command runs them again):",
            *[f"  {f['scenario']} {f['method']} seed {f['seed']}: {f['error']}" for f in failed]]


def failed_table(failed: list[dict]) -> list[str]:
    lines = ["| Scenario | Method | Seed | Error |", "|---|---|---|---|"]
    return lines + [f"| {f['scenario']} | {f['method']} | {f['seed']} | {f['error'].replace('|', '/')} |"
                    for f in failed]


def markdown(runs: list[dict], summary: dict, header: list[str], notes: list[str] = (),
             failed: list[dict] | None = None, comparisons: dict | None = None) -> str:
    lines = ["# ctrl-bench results", "", *[f"- {line}" for line in header], "",
             "## Last and Avg accuracy (mean ± std over seeds)", "", *paper_table(summary), ""]
    table = paired_table(comparisons or {})
    if table:
        lines += ["## Paired differences in Last to the reference row (over the seeds both ran)", "", *table, ""]
    lines += ["## Details", "", *details_table(summary), ""]
    analysis, per_class = analysis_table(summary), per_class_table(summary)
    if analysis:
        lines += ["## Continual evaluation and recency bias (mean ± std over seeds)", "", *analysis, ""]
    if per_class:
        lines += ["## Per-class accuracy after the last experience (mean over seeds)", "", *per_class, ""]
    lines += ["## Runs", "", *runs_table(runs, summary)]
    if failed:
        lines += ["", "## Failed runs (no record; the same command runs them again)", "", *failed_table(failed)]
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def accuracy_matrices(runs: list[dict]) -> list[str]:
    """Compact accuracy matrices (in %) of the runs of this command."""
    lines = ["Accuracy matrices in % (row i: after experience i; column j: test data of experience j):"]
    for run in runs:
        if run["source"] == "earlier":
            continue
        seconds = " ".join(f"{t:.0f}" for t in run.get("experience_seconds", []))
        lines.append(f"  {run['scenario']} {base_label(run)} seed {run['seed']} ({run['source']}; "
                     f"{run['wall_seconds']:.0f} s: {seconds} s per experience)")
        lines += ["    " + " ".join(f"{100 * a:3.0f}" for a in row) for row in run["accuracy_matrix"]]
    return lines


def console_summary(runs: list[dict], summary: dict, notes: list[str] = (), failed: list[dict] | None = None,
                    comparisons: dict | None = None) -> str:
    failures = [*failed_lines(failed), ""] if failed else []
    table = paired_table(comparisons or {})
    analysis = analysis_table(summary)
    return "\n".join([*paper_table(summary), "", *([*table, ""] if table else []), *details_table(summary), "",
                      *([*analysis, ""] if analysis else []),
                      *accuracy_matrices(runs), "", *failures, *[f"- {note}" for note in notes]]) + "\n"


CSV_FIELDS = ("scenario", "method", "memory_images", "cell_epochs", "seed", *SUMMARY_FIELDS, "learning_accuracy",
              "task_il_last_accuracy", "task_il_average_accuracy", "memory_floats", "replay_accuracy", "memory_budget",
              "oracle", "evaluated_on", "epochs_per_experience", "train_steps", "train_flops", "peak_memory_bytes",
              "recency_bias", "last_classes_test_share", "per_class_accuracy", "min_accuracy", "stability_gap",
              "eval_every", "continual_eval_flops", "continual_eval_seconds", "device",
              "preset", "torch_threads", "class_order", "experience_seconds", "seen_accuracy", "accuracy_matrix",
              "source", "git_commit", "code_version", "data_sha256", "finished_at", "command")


def csv_text(runs: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for run in runs:
        row = {**run.get("provenance", {}), **run, "eval_every": (run.get("continual_eval") or {}).get("every_steps")}
        for name in ("class_order", "experience_seconds", "seen_accuracy", "accuracy_matrix", "epochs_per_experience",
                     "per_class_accuracy"):
            row[name] = json.dumps(row.get(name))
        writer.writerow(row)
    return out.getvalue()


def notes_of(runs: list[dict]) -> list[str]:
    """The notes under the tables: what the columns mean, then each method's own notes (the ``notes``
    its records carry) and every oracle's reason."""
    notes = ["Last: accuracy on all classes after the final experience; Avg: mean over experiences of the accuracy "
             "on the classes seen so far (first experience included); mean ± std over the seeds of a row",
             "Source: ran / reused by the command above, or earlier (a record another command left under --out); "
             "runs are pooled into one row only when their settings, data, code and device all match, and a "
             "row named 'method @key' holds records made under other ones (see the Runs table)",
             "Memory (floats): numbers a method keeps beyond the model it classifies with, after the last "
             "experience: a stored image counts C·H·W, a feature statistic its size, a kept model (frozen copy, "
             "generator) its parameters and float buffers, EWC / SI their importances and anchors",
             "Training FLOPs: forward and backward of every pass a method makes while it trains, and its upkeep "
             "between experiences (torch.utils.flop_counter on a stratified 1 % of the steps, scaled by the step "
             "count; matrix products, convolutions and the rate terms' factorisations; the evaluation left out)",
             "Paired differences: Last of a row minus Last of the reference row (the best row, or --reference) on "
             "each seed both ran; 95 % confidence interval from the t distribution, p of the paired t-test and of "
             "the Wilcoxon signed-rank test; not distinguishable when the interval holds 0"]
    if any("learning_accuracy" in r for r in runs):
        notes.append("Learning acc (LA): mean over experiences i of the accuracy on experience i's test data right "
                     "after training on it, predicted among every class the model knows then; Forgetting: mean over "
                     "the experiences but the last of the best accuracy on one minus its final accuracy")
    if any("recency_bias" in r for r in runs):
        notes.append("Recency bias: the share of all test predictions after the last experience that go to the last "
                     "experience's classes, beside those classes' share of the test set (equal shares: no bias); "
                     "per-class accuracy and the confusion matrices (figures/<scenario>-confusion-<row>.png) are of "
                     "the same predictions")
    if any(r.get("continual_eval") for r in runs):
        notes.append("Continual evaluation (--eval-every STEPS): every STEPS training steps, the accuracy on a fixed "
                     "seeded subset of the evaluation images of each earlier experience. Min-ACC (De Lange et al. "
                     "2023): for each experience but the last, its lowest accuracy at any evaluation while a later "
                     "experience trained, averaged over experiences. Stability gap: for each experience k after the "
                     "first, the accuracy on the classes of experiences before k at the end of experience k−1 minus "
                     "its lowest value while k trained, averaged. Evaluation FLOPs (its forward passes) are counted "
                     "apart and are not part of Training FLOPs; figures/<scenario>-continual.png draws the trace")
    if any((r.get("settings") or {}).get("tuned") for r in runs):
        notes.append("Rows 'tuned on S (N trials)' ran with the settings ctrl-bench tune chose on S's validation split "
                     "(--settings); the other rows run at their defaults")
    if any(r.get("cell_budget_flops") for r in runs):
        notes.append(f"Rows marked {COMPUTE_MATCHED} trained the most epochs per experience whose training FLOPs "
                     f"fit in the scenario's budget F, measured by runs of each method at "
                     f"{' and '.join(map(str, PROBE_EPOCHS))} epochs and at the epochs they pointed to (under "
                     f"{PROBES_DIR}/); Training FLOPs is what it then spent. {compute_matched_budgets(runs)}. The "
                     "other rows are epoch-matched")
    notes += sorted({f"{r['method']} {note}" for r in runs for note in r.get("notes", ())})
    oracles = sorted({(r["method"], r["oracle"]) for r in runs if r.get("oracle")})
    notes += [f"{ORACLE_MARK} {method}: an oracle, not a class-incremental result: {why}" for method, why in oracles]
    return notes


def compute_matched_budgets(runs: list[dict]) -> str:
    """Each scenario's --budget-flops F and the epochs per experience each method got in it, e.g.
    "mnist_5k-5: F = 1.15e+12 (ctrl 21, der 29 epochs)"."""
    budgets: dict[tuple[str, float], dict[str, set]] = {}
    for r in runs:
        if r.get("cell_budget_flops"):
            name = r["method"] + "".join(f" ({shown})" for shown in cell_details(r.get("memory_images"), None, None))
            budgets.setdefault((r["scenario"], r["cell_budget_flops"]), {}).setdefault(name, set()).add(r["cell_epochs"])
    return "; ".join(f"{scenario}: F = {flops_text(flops)} ("
                     + ", ".join(f"{name} {'/'.join(map(str, sorted(epochs)))}" for name, epochs in sorted(methods.items()))
                     + " epochs)" for (scenario, flops), methods in sorted(budgets.items()))


def write_results(out_dir: str, runs: list[dict], methods: list[str], header: list[str],
                  provenance: dict | None = None, failed: list[dict] | None = None, reference: str | None = None) -> str:
    """Write the three results files atomically; return the console summary. Each run needs a
    ``source`` (one of :data:`SOURCES`). ``failed``: the cells of a grid run that failed (scenario,
    method, seed, error, traceback), listed in results.json (``failed``), results.md and the
    summary; None (a sequential run) leaves them out."""
    runs = sorted(runs, key=lambda r: (r["scenario"], r["method"], r.get("memory_images") or 0, r.get("cell_epochs") or 0,
                                       r["seed"]))
    summary = summarise(runs, methods)
    comparisons = paired(summary, reference)
    notes = notes_of(runs)
    content = {"provenance": provenance, "runs": runs, "summary": summary, "paired": comparisons}
    if failed is not None:
        content["failed"] = failed
    atomic_write_set({f"{out_dir}/results.json": json.dumps(content, indent=2), f"{out_dir}/results.csv": csv_text(runs),
                      f"{out_dir}/results.md": markdown(runs, summary, header, notes, failed, comparisons)})
    return console_summary(runs, summary, notes, failed, comparisons)
