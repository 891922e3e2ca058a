"""``ctrl-bench report``: the README's results section and docs/results.md, rendered from the results
store (:mod:`.store`, ``results/*.json``), with their figures (``docs/figures/results/``).

Each table states once the seeds, budget, tuning, device and code it was made with (the README the
package version, docs/results.md the commit as well); a row whose records are older than its
method's current code (:func:`.provenance.code_version`) says so. ``ctrl-bench report --check``
renders nothing to disk and exits 1 when README.md or docs/results.md (or a figure) differs from
what would be rendered, so a number edited by hand fails the tests. A figure is redrawn only when
the numbers it draws change (their hash is kept in the PNG), so that rendering on another machine
or with another matplotlib rewrites no figure. Any other Markdown file under docs/ may hold marker
pairs ``<!-- table:NAME:begin -->`` … ``<!-- table:NAME:end -->``, between which the render puts a compact
table of stored table NAME (:func:`compact_table`; a table of named rows with a baseline, an ablation,
as :func:`variant_table`), and ``--check`` checks those files too.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys

from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from baselines import method_names

from .atomic import atomic_write_bytes, atomic_write_text
from .plots import accuracy_figure, flops_figure, memory_figure
from .provenance import code_version
from .records import equivalent_code, slug
from .results import base_label, display_label, group_id, paired, paired_table, summarise
from .store import STORE_DIR, StoreError, add_table, dumps, load_tables, table_path

README = "README.md"
RESULTS_DOC = os.path.join("docs", "results.md")
FIGURES_DIR = os.path.join("docs", "figures", "results")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
GENERATED = ("<!-- Rendered by `ctrl-bench report` from results/*.json: edit the store, not this file "
             "(a test checks that they agree). -->")
DIGEST_KEY = "ctrl-bench-data"  # the PNG text chunk holding the hash of what a figure draws
FIGURE_KINDS = ("memory", "accuracy", "flops")
# What the figures draw of a record besides its row's label: a change elsewhere (when it ran, its code
# version) redraws nothing.
DRAWN = ("method", "seed", "oracle", "memory_images", "cell_epochs", "last_accuracy", "memory_floats", "train_flops",
         "seen_accuracy", "experience_sizes")
# A table's markers in any other doc under docs/: <!-- table:NAME:begin --> ... <!-- table:NAME:end -->.
TABLE_MARKER = re.compile(r"<!-- table:([A-Za-z0-9_.-]+):(begin|end) -->")
OLDER_CODE = "older code"  # a row's mark when its method's code changed since its records were made
# Columns docs/results.md shows when any record of a table has the field: field → header.
EXTRA_COLUMNS = {"learning_accuracy": "Learning accuracy", "min_accuracy": "Min accuracy",
                 "stability_gap": "Stability gap", "recency_bias": "Recency bias",
                 "last_classes_test_share": "Last classes' test share", "replay_accuracy": "Replay judge",
                 "continual_eval_flops": "Evaluation FLOPs (apart from training)"}


# ---------------------------------------------------------------- reading a table
def as_run(stored: dict) -> dict:
    """A stored record in the shape :func:`.results.summarise` reads."""
    run = dict(stored, source="ran", reuse_key={"group": stored.get("group")},
               provenance={"finished_at": stored.get("finished_at", "")})
    if stored.get("tuned"):
        run["settings"] = {"tuned": stored["tuned"]}
    if stored.get("budget_override"):
        run["budget"] = {"override": stored["budget_override"]}
    if stored.get("experience_sizes"):  # the accuracy figure ticks the classes seen
        run["experience_classes"] = [list(range(k)) for k in stored["experience_sizes"]]
    return run


def grouped(table: dict) -> dict[str, dict[str, tuple[dict, list[dict]]]]:
    """scenario → row label → (its summary entry, its runs), rows in the table's method order."""
    runs = [as_run(r) for r in table["records"]]
    summary = summarise(runs, table.get("methods") or ())
    rows = {}
    for scenario, entries in summary.items():
        rows[scenario] = {label: (entry, [r for r in runs if r["scenario"] == scenario and base_label(r) == entry["label"]
                                          and group_id(r) == entry["group"]])
                          for label, entry in entries.items()}
    return rows


def stat(runs: list[dict], field: str) -> dict | None:
    """Mean, population std and count of ``field`` over ``runs``; None when a run lacks it."""
    values = [r.get(field) for r in runs]
    if not values or any(not isinstance(v, (int, float)) for v in values):
        return None
    mean = sum(values) / len(values)
    return {"mean": mean, "std": (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5, "n": len(values)}


_CODE_NOW: dict[str, str | None] = {}


def current_code(method: str) -> str | None:
    """``method``'s code version now (None when no such method is registered any more)."""
    if method not in _CODE_NOW:
        _CODE_NOW[method] = code_version(method) if method in method_names() else None
    return _CODE_NOW[method]


def older_code(runs: list[dict]) -> bool:
    """Whether any of a row's records was made by other code than its method's now (a refactor
    checked to change no number excepted)."""
    for run in runs:
        now, then = current_code(run["method"]), run.get("code_version")
        if now is None or (then != now and not equivalent_code(run["method"], str(then), now)):
            return True
    return False


# ---------------------------------------------------------------- numbers as the tables print them
def pm(value: dict | None, digits: int = 3) -> str:
    """"0.913 ± 0.004" over several seeds, "0.913" over one (no "± 0.000"), "–" when missing."""
    if value is None:
        return "–"
    return f"{value['mean']:.{digits}f}" + (f" ± {value['std']:.{digits}f}" if value["n"] > 1 else "")


def floats(value: dict | None) -> str:
    if value is None:
        return "–"
    return f"{value['mean']:,.0f}" + (f" ± {value['std']:,.0f}" if value["n"] > 1 and round(value["std"]) else "")


def flops(value: dict | None) -> str:
    return "–" if value is None else f"{value['mean']:.3g}"


def seconds(value: dict | None) -> str:
    return "–" if value is None else f"{value['mean']:,.0f}"


def seeds_text(seeds) -> str:
    """"seed 0", "seeds 0 1", "seeds 0–4", "seeds 0 2 5"."""
    seeds = sorted(set(seeds))
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + " ".join(map(str, seeds))


def difference(diff: dict | None) -> str:
    if diff is None:
        return "–"
    low, high = diff["ci95"]
    return f"{diff['mean']:+.3f} [{low:+.3f}, {high:+.3f}]"


# ---------------------------------------------------------------- what a table states once
def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _epochs_text(epochs: list[int]) -> str:
    """e.g. "30 epochs per experience, 5 experiences"."""
    head, rest = epochs[0], epochs[1:]
    if all(e == head for e in rest):
        return f"{_count(head, 'epoch')} per experience, {_count(len(epochs), 'experience')}"
    if rest and all(e == rest[0] for e in rest):
        return f"{_count(head, 'epoch')} in the first experience and {rest[0]} in each of {len(rest)} more"
    return f"epochs per experience {', '.join(map(str, epochs))}"


def _joined(texts) -> str:
    texts = sorted(set(texts))
    return "; ".join(texts)


def budget_statement(records: list[dict]) -> str:
    """The shared budget: the preset and its epochs (rows that depart from it say so in their label)."""
    shared = [r for r in records if not (r.get("budget_override") or r.get("cell_epochs") or r.get("cell_budget_flops"))]
    def text(r):
        return f"{r.get('preset', '?')} preset, " + (_epochs_text(r["epochs_per_experience"])
                                                     if r.get("epochs_per_experience") else "epochs not recorded")
    counts: dict[str, set] = {}
    for r in shared or records:
        counts.setdefault(text(r), set()).add(r["method"])
    common = max(counts, key=lambda t: len(counts[t]))  # the budget most methods share; the others by method
    others = [f"{', '.join(sorted(methods))}: {t.split(', ', 1)[1]}" for t, methods in sorted(counts.items())
              if t != common]
    return common + (f" ({'; '.join(others)})" if others else "")


def tuning_statement(records: list[dict]) -> str:
    if any(r.get("tuned") for r in records):
        return ("the rows 'tuned on S (N trials)' ran with the settings `ctrl-bench tune` chose on S's validation "
                "split, the other rows at their defaults")
    return "every method at the defaults in its file"


def device_statement(records: list[dict]) -> str:
    def one(r):
        threads = r.get("torch_threads")
        return f"{r.get('device', '?')}" + (f", {threads} torch thread{'' if threads == 1 else 's'} a run"
                                            if threads else "")
    return _joined(one(r) for r in records)


def evaluated_statement(records: list[dict]) -> str:
    """Where the records were scored, and how often during training when they were evaluated continually."""
    on = {r.get("evaluated_on", "test") for r in records}
    text = "test sets" if on == {"test"} else "validation splits" if on == {"validation"} else \
        "test sets and validation splits"
    continual = {json.dumps(r["continual_eval_settings"], sort_keys=True) for r in records
                 if r.get("continual_eval_settings")}
    for every in sorted(continual):
        every = json.loads(every)
        text += (f", and every {every['every_steps']} training steps on {every['images_per_experience']} images of "
                 "each earlier experience (seeded)")
    return text


def commits(records: list[dict]) -> str:
    def short(commit):
        return commit[:10] + (" (dirty)" if "dirty" in commit else "") if commit else "unknown"
    return ", ".join(sorted({short(r.get("git_commit")) for r in records}))


def statement(table: dict, with_commit: bool) -> str:
    """Seeds, budget, tuning, evaluation, device and code of a table, in one sentence."""
    records = table["records"]
    code = f"ctrl-bench {table.get('package_version', '?')}" + (f" at commit {commits(records)}" if with_commit else "")
    return (f"{code}; {seeds_text(r['seed'] for r in records)}; {budget_statement(records)}; "
            f"{tuning_statement(records)}; {evaluated_statement(records)}; {device_statement(records)}.")


def older_note(stale: list[str], name: str) -> list[str]:
    if not stale:
        return []
    return [f"**Older code:** the records of {', '.join(stale)} were made by an older version of "
            f"{'its' if len(stale) == 1 else 'their'} code than the current one, and {'its' if len(stale) == 1 else 'their'} "
            f"rows say \"{OLDER_CODE}\": rerun the command and add the table again "
            f"(`ctrl-bench report add {name} RUNS_DIR`).", ""]


# ---------------------------------------------------------------- tables
def row_label(label: str, entry: dict, runs: list[dict], table_seeds: set, stale: bool) -> str:
    marks = ([seeds_text(entry["seeds"])] if set(entry["seeds"]) != table_seeds else []) + ([OLDER_CODE] if stale else [])
    return display_label(label, entry) + (f" [{'; '.join(marks)}]" if marks else "")


def _stale_methods(rows: dict) -> list[str]:
    return sorted({e["method"] for scenario in rows.values() for e, runs in scenario.values() if older_code(runs)})


def headline_table(table: dict, rows: dict) -> list[str]:
    """One markdown table of a stored table: per scenario Last, Avg, memory, FLOPs and the paired
    difference in Last to the reference row."""
    scenarios = list(rows)
    comparisons = paired({s: {label: e for label, (e, _) in rows[s].items()} for s in scenarios}, table.get("reference"))
    prefix = (lambda s: f"{s} ") if len(scenarios) > 1 else (lambda s: "")
    header, rule = ["Method"], ["---"]
    for s in scenarios:
        reference = comparisons.get(s, {}).get("reference", "the best row")
        header += [f"{prefix(s)}Last", f"{prefix(s)}Avg", f"{prefix(s)}Memory (floats)", f"{prefix(s)}Training FLOPs",
                   f"{prefix(s)}Δ Last vs {reference} [95 % CI]"]
        rule += ["---"] * 5
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    table_seeds = {r["seed"] for r in table["records"]}
    labels = list(dict.fromkeys(label for s in scenarios for label in rows[s]))
    for label in labels:
        cells, name = [], None
        for s in scenarios:
            if label not in rows[s]:
                cells += ["–"] * 5
                continue
            entry, runs = rows[s][label]
            name = name or row_label(label, entry, runs, table_seeds, older_code(runs))
            found = comparisons.get(s, {})
            delta = "(reference)" if found.get("reference") == label else difference(found.get("rows", {}).get(label))
            cells += [pm(stat(runs, "last_accuracy")), pm(stat(runs, "average_incremental_accuracy")),
                      floats(stat(runs, "memory_floats")), flops(stat(runs, "train_flops")), delta]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def scenario_table(table: dict, rows: dict) -> list[str]:
    """docs/results.md's table of one scenario: every summary number, and the continual-evaluation
    columns (:data:`EXTRA_COLUMNS`) that its records have."""
    runs_all = [r for _, runs in rows.values() for r in runs]
    extra = [f for f in EXTRA_COLUMNS if any(isinstance(r.get(f), (int, float)) for r in runs_all)]
    header = ["Method", "Last", "Avg", "Task-IL Last", "Forgetting", "Memory (floats)", "Training FLOPs",
              "Wall time (s)", *[EXTRA_COLUMNS[f] for f in extra]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table_seeds = {r["seed"] for r in table["records"]}
    for label, (entry, runs) in rows.items():
        cells = [pm(stat(runs, "last_accuracy")), pm(stat(runs, "average_incremental_accuracy")),
                 pm(stat(runs, "task_il_last_accuracy")), pm(stat(runs, "forgetting")),
                 floats(stat(runs, "memory_floats")), flops(stat(runs, "train_flops")), seconds(stat(runs, "wall_seconds")),
                 *[(flops if f.endswith("_flops") else pm)(stat(runs, f)) for f in extra]]
        lines.append(f"| {row_label(label, entry, runs, table_seeds, older_code(runs))} | " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------- figures
def figure_digest(kind: str, scenario: str, rows: dict) -> str:
    """The hash of what a figure draws: its kind, its scenario and its rows' numbers (:data:`DRAWN`)."""
    drawn = {label: [{k: r.get(k) for k in DRAWN} for r in runs] for label, (_, runs) in rows.items()}
    return hashlib.sha256(json.dumps([kind, scenario, drawn], sort_keys=True).encode()).hexdigest()[:16]


def draw(kind: str, scenario: str, rows: dict, digest: str) -> bytes | None:
    """The PNG of one figure (None when its rows have nothing to draw), without the matplotlib version
    and with ``digest`` in its text chunk."""
    if kind == "memory" and not any(e.get("memory_floats") for e, _ in rows.values()):
        return None
    if kind == "accuracy" and not any(r.get("seen_accuracy") for _, runs in rows.values() for r in runs):
        return None
    figure = {"memory": memory_figure, "flops": flops_figure, "accuracy": accuracy_figure}[kind](scenario, rows)
    if figure is None:
        return None
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None, DIGEST_KEY: digest})
    return buffer.getvalue()


def digest_of(path: str) -> str | None:
    """The data hash a rendered figure carries, None for a file that is not one."""
    try:
        with Image.open(path) as image:
            return image.text.get(DIGEST_KEY)
    except (OSError, ValueError):
        return None



def figure_name(table: str, scenario: str, kind: str) -> str:
    return f"{slug(table)}-{slug(scenario)}-{kind}.png"


def planned_figures(tables: dict) -> dict[str, tuple]:
    """Every figure the render shows: its file name → (kind, scenario, rows, digest)."""
    planned = {}
    for name, table in tables.items():
        if table.get("figures") is False:
            continue
        for scenario, rows in grouped(table).items():
            for kind in FIGURE_KINDS:
                planned[figure_name(name, scenario, kind)] = (kind, scenario, rows, figure_digest(kind, scenario, rows))
    return planned


def figure_line(path: str, caption: str) -> str:
    return f"![{caption}]({path})"


# ---------------------------------------------------------------- the two documents
def readme_section(tables: dict, figures: dict) -> str:
    """What goes between the README's markers: the headline table, its statement and one figure."""
    headline = [(n, t) for n, t in tables.items() if t.get("headline")]
    if not headline:
        text = ("No results are stored yet." if not tables else "No table is marked as the headline.") + \
               " [docs/results.md](docs/results.md) holds every stored table and says how one is made."
        return f"{BEGIN}\n{text}\n{END}"
    name, table = headline[0]
    rows = grouped(table)
    lines = [BEGIN, f"**{table.get('title', name)}** ({', '.join(rows)}): {statement(table, with_commit=False)}", ""]
    lines += older_note(_stale_methods(rows), name)
    lines += headline_table(table, rows)
    lines += ["", "Paired differences are over the seeds both rows ran; every table, with its command, is in "
              "[docs/results.md](docs/results.md)."]
    first = next(iter(rows))
    memory = figure_name(name, first, "memory")
    if figures.get(memory) is not None:
        lines += ["", figure_line(f"docs/figures/results/{memory}", f"{first}: Last accuracy against memory in floats")]
    return "\n".join(lines + [END])


def results_doc(tables: dict, figures: dict) -> str:
    """The whole of docs/results.md."""
    lines = ["# Results", "", GENERATED, "",
             "Every table here is rendered from the results store, `results/<table>.json`, which holds the "
             "command that made the table and a summary of each of its records. A table is made by running its "
             "command, storing its records' summaries and rendering:", "",
             "```bash", "ctrl-bench --seeds 0 1 2 --out runs/main",
             "ctrl-bench report add main runs/main --headline --command \"ctrl-bench --seeds 0 1 2 --out runs/main\"",
             "ctrl-bench report   # README.md's results and this file; --check: exit 1 where they differ", "```", "",
             "(`--headline`: the table the README shows; `ctrl-bench report add --help` lists the rest.) "
             "Each table states once the seeds, budget, tuning, device and code it was made with; a row whose "
             "method's code has changed since says so. How every default of i-CTRL was chosen is the recipe's "
             "ablation in [ictrl.md](ictrl.md#the-recipe-and-its-ablation).", "",
             "Last: accuracy on all classes after the final experience; Avg: mean over experiences of the accuracy "
             "on the classes seen so far; Task-IL Last: Last with the task's classes known at test time; mean ± "
             "std (population) over seeds, a row of one seed its value. Memory (floats): what a method keeps "
             "beyond the model it classifies with ([methods.md](methods.md#memory-in-floats)). Training FLOPs: "
             "forward and backward of every pass while training ([usage.md](usage.md#outputs)). Paired "
             "differences: Last of a row minus Last of the reference row on each seed both ran, with the 95 % "
             "confidence interval of the t distribution; not distinguishable when it holds 0.", ""]
    if not tables:
        return "\n".join(lines + ["No results are stored yet.", ""])
    for name, table in tables.items():
        rows = grouped(table)
        lines += [f"## {table.get('title', name)}", ""]
        if table.get("about"):
            lines += [table["about"], ""]
        lines += [f"Made with {statement(table, with_commit=True)} Stored as `results/{name}.json`.", ""]
        lines += older_note(_stale_methods(rows), name)
        lines += ["```bash", *table.get("commands", []), "```", ""]
        comparisons = paired({s: {label: e for label, (e, _) in r.items()} for s, r in rows.items()},
                             table.get("reference"))
        for scenario, scenario_rows in rows.items():
            lines += [f"### {scenario}", "", *scenario_table(table, scenario_rows), ""]
            pairs = paired_table({scenario: comparisons[scenario]} if scenario in comparisons else {})
            if pairs:
                lines += ["Paired differences in Last:", "", *pairs, ""]
            for kind in FIGURE_KINDS:
                file = figure_name(name, scenario, kind)
                if figures.get(file) is not None:
                    lines += [figure_line(f"figures/results/{file}", f"{scenario}: {kind}"), ""]
    return "\n".join(lines)


def splice(readme: str, section: str) -> str:
    """The README with ``section`` between its markers; StoreError when they are missing."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise StoreError(f"{README} needs one {BEGIN} and one {END} line, in that order, around its results")
    head, rest = readme.split(BEGIN)
    return head + section + rest.split(END, 1)[1]


# ---------------------------------------------------------------- compact tables in other docs
def compact_table(name: str, table: dict, link: str) -> list[str]:
    """A compact table of stored table ``name``: one row per (scenario, row label) with Last, learning
    accuracy, forgetting and the seeds, then a line saying where it comes from (``link``: docs/results.md
    relative to the doc that shows it)."""
    lines = ["| scenario | row | Last | learning accuracy | forgetting | seeds |", "|---|---|---|---|---|---|"]
    table_seeds = {r["seed"] for r in table["records"]}
    for scenario, rows in grouped(table).items():
        for label, (entry, runs) in rows.items():
            shown = row_label(label, entry, runs, table_seeds, older_code(runs))
            seeds = seeds_text(r["seed"] for r in runs).split(" ", 1)[1]
            cells = [scenario, shown, pm(stat(runs, "last_accuracy")), pm(stat(runs, "learning_accuracy")),
                     pm(stat(runs, "forgetting")), seeds]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", f"Rendered by `ctrl-bench report` from `results/{name}.json`; its commands are in "
                        f"[results.md]({link})."]


VARIANT_FIELDS = ("last_accuracy", "learning_accuracy", "forgetting")  # a variant table's cell, in this order


def variant_table(name: str, table: dict, link: str) -> list[str]:
    """Stored table ``name`` of named rows (an ablation; ``table["baseline"]`` names the row the others
    leave something out of) as one line per row and one column per scenario. The baseline's cell is its
    Last · learning accuracy · forgetting, mean over its seeds; another row's cell is its change in each,
    paired: the mean over the seeds both rows ran of (row − baseline) at the same seed, so the same data
    order. Rows run most-hurt first (mean change in Last over the scenarios); a cell over fewer seeds than
    the baseline's names them."""
    baseline = table["baseline"]
    by = {}  # (variant, scenario) → {seed: record}
    for record in table["records"]:
        by.setdefault((record.get("variant"), record["scenario"]), {})[record["seed"]] = record
    scenarios = list(dict.fromkeys(r["scenario"] for r in table["records"]))
    variants = list(dict.fromkeys(r.get("variant") for r in table["records"] if r.get("variant") != baseline))

    def change(variant: str, scenario: str) -> dict | None:
        rows, base = by.get((variant, scenario), {}), by.get((baseline, scenario), {})
        seeds = sorted(set(rows) & set(base))
        if not seeds:
            return None
        return {"seeds": seeds, **{f: sum(rows[k][f] - base[k][f] for k in seeds) / len(seeds) for f in VARIANT_FIELDS}}

    def cell(found: dict | None, scenario: str) -> str:
        if found is None:
            return "–"
        text = " · ".join(f"{round(found[f], 3) + 0.0:+.3f}" for f in VARIANT_FIELDS)  # + 0.0: no "-0.000"
        return text if len(found["seeds"]) == len(by[(baseline, scenario)]) else f"{text} ({seeds_text(found['seeds'])})"

    changes = {v: {s: change(v, s) for s in scenarios} for v in variants}
    order = sorted(variants, key=lambda v: sum(c["last_accuracy"] for c in changes[v].values() if c) /
                   max(1, sum(1 for c in changes[v].values() if c)))
    base_cells = []
    for scenario in scenarios:
        runs = list(by.get((baseline, scenario), {}).values())
        base_cells.append(" · ".join(f"{stat(runs, f)['mean']:.3f}" for f in VARIANT_FIELDS) if runs else "–")
    lines = ["| row | " + " | ".join(scenarios) + " |", "|---|" + "---|" * len(scenarios),
             f"| {baseline} | " + " | ".join(base_cells) + " |"]
    lines += [f"| {v} | " + " | ".join(cell(changes[v][s], s) for s in scenarios) + " |" for v in order]
    base_seeds = seeds_text({r["seed"] for r in table["records"] if r.get("variant") == baseline})
    return lines + ["", f"Each cell: Last · learning accuracy · forgetting; {baseline}: their means ({base_seeds}); "
                        "every other row: its paired change from it, seed by seed. Rendered by `ctrl-bench report` "
                        f"from `results/{name}.json`; its commands and every seed's numbers are in [results.md]({link})."]


def table_block(name: str, tables: dict, link: str) -> str:
    """What goes between a doc's markers of table ``name``: its compact table, or a line saying that no
    such table is stored."""
    if name not in tables:
        return f"No table `{name}` is stored yet."
    table = tables[name]
    return "\n".join(variant_table(name, table, link) if table.get("baseline") else compact_table(name, table, link))


def marker_pairs(text: str, where: str) -> list[tuple[str, int, int]]:
    """(table name, end of its begin marker, start of its end marker) of every marker pair in ``text``;
    StoreError naming ``where`` and the table when a begin marker lacks its end marker or the reverse."""
    pairs, open_name, open_at = [], None, 0
    for match in TABLE_MARKER.finditer(text):
        name, kind = match.groups()
        if open_name is None and kind == "begin":
            open_name, open_at = name, match.end()
        elif open_name == name and kind == "end":
            pairs.append((name, open_at, match.start()))
            open_name = None
        else:
            unmatched = open_name or name
            raise StoreError(f"{where}: the markers of table {unmatched!r} do not pair: each <!-- table:NAME:begin "
                             "--> needs its <!-- table:NAME:end --> after it, before any other marker")
    if open_name is not None:
        raise StoreError(f"{where}: <!-- table:{open_name}:begin --> has no <!-- table:{open_name}:end --> after it")
    return pairs


def fill_tables(text: str, where: str, tables: dict, link: str) -> str:
    """``text`` with each marker pair's table rendered between its markers (:func:`table_block`)."""
    parts, last = [], 0
    for name, start, end in marker_pairs(text, where):
        parts += [text[last:start], "\n", table_block(name, tables, link), "\n"]
        last = end
    return "".join(parts) + text[last:]


def marked_docs(root: str, tables: dict) -> dict[str, str]:
    """{path: rendered text} of every Markdown file under docs/ but docs/results.md that holds a table
    marker, each with its tables filled in."""
    texts, results_doc_path = {}, os.path.normpath(os.path.join(root, RESULTS_DOC))
    for folder, dirs, files in os.walk(os.path.join(root, "docs")):
        dirs.sort()
        for file in sorted(f for f in files if f.endswith(".md")):
            path = os.path.join(folder, file)
            if os.path.normpath(path) == results_doc_path:
                continue
            with open(path) as fh:
                text = fh.read()
            if TABLE_MARKER.search(text):
                link = os.path.relpath(results_doc_path, os.path.dirname(os.path.normpath(path))).replace(os.sep, "/")
                texts[path] = fill_tables(text, os.path.relpath(path, root), tables, link)
    return texts


# ---------------------------------------------------------------- render and check
def render_figures(root: str, tables: dict, check: bool, redraw: bool) -> tuple[dict[str, str], list[str]]:
    """({file name: path} of the figures the documents show, the paths that differed). A figure is
    drawn again only when the hash of what it draws changed (or with ``redraw``); a PNG under
    :data:`FIGURES_DIR` that no table draws any more is removed. Nothing is written with ``check``."""
    figures, differ = {}, []
    folder = os.path.join(root, FIGURES_DIR)
    for file, (kind, scenario, rows, digest) in planned_figures(tables).items():
        path = os.path.join(folder, file)
        if not redraw and os.path.isfile(path) and digest_of(path) == digest:
            figures[file] = path
            continue
        png = draw(kind, scenario, rows, digest)
        if png is None:
            continue
        figures[file] = path
        differ.append(path)
        if not check:
            atomic_write_bytes(path, png)
    for file in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if file.endswith(".png") and file not in figures:
            differ.append(os.path.join(folder, file))
            if not check:
                os.remove(os.path.join(folder, file))
    return figures, differ


def render(root: str, check: bool = False, redraw: bool = False) -> list[str]:
    """Render the README's results section, docs/results.md, their figures and the marked tables of the
    other docs (:func:`marked_docs`) from ``root``'s store; write them unless ``check``; return the paths
    that differed from the render."""
    tables = load_tables(root)
    figures, differ = render_figures(root, tables, check, redraw)
    readme_path, doc_path = os.path.join(root, README), os.path.join(root, RESULTS_DOC)
    with open(readme_path) as fh:
        readme = fh.read()
    texts = {readme_path: splice(readme, readme_section(tables, figures)), doc_path: results_doc(tables, figures),
             **marked_docs(root, tables)}
    for path, text in texts.items():
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            differ.append(path)
            if not check:
                atomic_write_text(path, text)
    return differ


def set_headline(root: str, name: str) -> None:
    """Make ``name`` the one headline table: unset the flag in every other table file."""
    for other, table in load_tables(root).items():
        if other != name and table.get("headline"):
            table["headline"] = False
            atomic_write_text(table_path(root, other), dumps(table))


# ---------------------------------------------------------------- the command line
def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=f"examples:\n  {prog}                  # render README.md and docs/results.md\n"
                                       f"  {prog} --check          # exit 1 when they differ from the store\n"
                                       f"  {prog} add mnist-5 runs/ --headline --command \"ctrl-bench --seeds 0 1 2\"")
    p.add_argument("--root", default=".", help="the checkout holding results/, README.md and docs/ (default: .)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a rendered file differs")
    p.add_argument("--redraw", action="store_true", help="draw every figure again, even where its numbers are unchanged")
    return p


def build_add_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Store the summaries of every record under RUNS_DIR as "
                                "results/NAME.json (replacing that table), then render with `ctrl-bench report`.")
    p.add_argument("name", help="the table's name (its file: results/NAME.json)")
    p.add_argument("runs_dir", help="the --out of the command(s) that made the table")
    p.add_argument("--command", action="append", default=[], metavar="CMD",
                   help="the command that makes the table, as the docs show it (repeatable; default: the commands "
                        "the records name)")
    p.add_argument("--title", help="the table's heading (default: NAME)")
    p.add_argument("--about", help="a sentence under the heading")
    p.add_argument("--headline", action="store_true", help="the table the README shows (the only one)")
    p.add_argument("--reference", metavar="METHOD", help="pair every row with this method's best row (default: the best row)")
    p.add_argument("--scenario", nargs="+", default=[], metavar="LABEL", help="only these scenario labels")
    p.add_argument("--methods", nargs="+", default=[], metavar="METHOD", help="only these methods, rows in this order")
    p.add_argument("--variant", metavar="NAME",
                   help="the records are one named row of the table (e.g. \"without anchors\" in an ablation): they "
                        "join the rows stored before, replacing an earlier row of that name")
    p.add_argument("--baseline", metavar="NAME", help="with --variant: the named row the others leave something out "
                   "of; the docs' compact table then gives each row's paired change from it (default: the one stored)")
    p.add_argument("--no-figures", action="store_true", help="the documents show the table without its figures")
    p.add_argument("--root", default=".", help="the checkout holding results/ (default: .)")
    return p


def add_main(argv: list[str], prog: str) -> int:
    args = build_add_parser(prog).parse_args(argv)
    try:
        path = add_table(args.root, args.name, args.runs_dir, args.command, args.title, args.about, args.headline,
                         args.reference, args.scenario, args.methods, args.variant, not args.no_figures, args.baseline)
        if args.headline:
            set_headline(args.root, args.name)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    count = len(json.load(open(path))["records"])
    print(f"stored {count} records in {path}; render with: ctrl-bench report")
    return 0


def main(argv: list[str], prog: str = "ctrl-bench report") -> int:
    """``ctrl-bench report [--check]`` and ``ctrl-bench report add NAME RUNS_DIR``."""
    if argv[:1] == ["add"]:
        return add_main(argv[1:], f"{prog} add")
    args = build_parser(prog).parse_args(argv)
    try:
        differ = render(args.root, check=args.check, redraw=args.redraw)
    except (StoreError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    shown = ", ".join(os.path.relpath(p, args.root) for p in differ)
    if args.check:
        if differ:
            print(f"{shown} differ from what `ctrl-bench report` renders from {STORE_DIR}/: run ctrl-bench report",
                  file=sys.stderr)
            return 1
        return 0
    print(f"rendered from {STORE_DIR}/: " + (shown if differ else "nothing changed"))
    return 0
