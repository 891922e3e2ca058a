"""The results store: ``results/<table>.json``, one file per published table.

A table file holds the command(s) that make the table and a short summary of each of its records
(:data:`STORED_FIELDS`: the numbers the tables and figures show, what tells the rows apart, and where
each record came from), never a whole record: small JSON with one record a line, readable in a diff.
``ctrl-bench report add NAME RUNS_DIR`` writes one from the records a command left under
``RUNS_DIR/records``; ``ctrl-bench report`` (:mod:`.report`) renders the README's results section and
docs/results.md from every table file.
"""

from __future__ import annotations

import json
import math
import os
from importlib import metadata

from .atomic import atomic_write_text
from .records import RecordStore
from .results import group_id

STORE_DIR = "results"
PACKAGE = "ctrl-bench"

# Every field a stored record may hold, in the order it is written, and what it is. The first group
# every record has; the numbers after it are stored when the record has them (records older than a
# field, or of a harness that has not measured it yet, lack it). Numbers are a float or a list of them
# (per class, per experience).
REQUIRED_NUMBERS = ("last_accuracy", "average_incremental_accuracy", "forgetting", "bwt", "wall_seconds")
OPTIONAL_NUMBERS = ("task_il_last_accuracy", "task_il_average_accuracy", "memory_floats", "train_flops",
                    "peak_memory_bytes", "replay_accuracy", "learning_accuracy", "min_accuracy", "stability_gap",
                    "recency_bias", "last_classes_test_share", "per_class_accuracy", "seen_accuracy",
                    "continual_eval_flops")
# What tells a record's row from the others (as results.md labels rows) and what the table states once.
DESCRIPTORS = ("scenario", "method", "seed", "memory_images", "cell_epochs", "cell_budget_flops", "memory_budget",
               "oracle", "evaluated_on", "preset", "epochs_per_experience", "experience_sizes", "batch_size",
               "budget_override", "tuned", "continual_eval_settings", "variant", "group")
PROVENANCE = ("device", "torch_threads", "code_version", "git_commit", "finished_at")
STORED_FIELDS = DESCRIPTORS[:3] + REQUIRED_NUMBERS + OPTIONAL_NUMBERS + DESCRIPTORS[3:] + PROVENANCE


class StoreError(ValueError):
    """A table cannot be added or read; the message says why and what to do."""


def package_version() -> str:
    """The installed ctrl-bench's version (pyproject's ``version``); a change to any method's numbers bumps it."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(value) -> bool:
    """A number, or a list of numbers (null where there is none, e.g. a class without test images)."""
    return _number(value) or (isinstance(value, list) and any(_number(v) for v in value)
                              and all(v is None or _number(v) for v in value))


def summary_of(record: dict) -> dict:
    """The stored summary of one record (:data:`STORED_FIELDS` it has, in that order)."""
    provenance = record.get("provenance") or {}
    budget = record.get("budget") or {}
    tuned = (record.get("settings") or {}).get("tuned")
    found = {
        **{name: record.get(name) for name in DESCRIPTORS[:3]},
        **{name: record[name] for name in REQUIRED_NUMBERS},
        **{name: record[name] for name in OPTIONAL_NUMBERS if _numbers(record.get(name))},
        "memory_images": record.get("memory_images"), "cell_epochs": record.get("cell_epochs"),
        "cell_budget_flops": record.get("cell_budget_flops"), "memory_budget": record.get("memory_budget"),
        "oracle": record.get("oracle"), "evaluated_on": record.get("evaluated_on", "test"),
        "preset": record.get("preset"), "epochs_per_experience": record.get("epochs_per_experience"),
        "experience_sizes": [len(c) for c in record["experience_classes"]] if record.get("experience_classes") else None,
        "batch_size": budget.get("batch_size"), "budget_override": budget.get("override"),
        "tuned": {k: tuned[k] for k in ("scenario", "trials", "sha256") if k in tuned} if tuned else None,
        "continual_eval_settings": (record.get("settings") or {}).get("continual_eval"),
        "group": group_id(record),
        **{name: provenance.get(name) for name in PROVENANCE},
    }
    return {name: found[name] for name in STORED_FIELDS if found.get(name) is not None}


def table_path(root: str, name: str) -> str:
    return os.path.join(root, STORE_DIR, f"{name}.json")


def check_name(name: str) -> str:
    """A table's name: letters, digits, '-', '_' and '.', not starting with '.'."""
    if not name or name.startswith(".") or any(not (ch.isalnum() or ch in "-_.") for ch in name):
        raise StoreError(f"a table name takes letters, digits, '-', '_' and '.' (not first), got {name!r}")
    return name


def chosen_records(runs_dir: str, scenarios=(), methods=()) -> list[dict]:
    """Every valid record under ``runs_dir/records`` (of ``scenarios`` and ``methods`` when given);
    a file left out is named in a warning."""
    if not os.path.isdir(os.path.join(runs_dir, "records")):
        raise StoreError(f"{runs_dir} holds no records/ folder: give the --out of a ctrl-bench command")
    records, problems = RecordStore(runs_dir).all_records()
    for problem in problems:
        print(f"warning: {problem}")
    chosen = [r for r in records.values() if (not scenarios or r["scenario"] in scenarios)
              and (not methods or r["method"] in methods)]
    if not chosen:
        raise StoreError(f"no record under {runs_dir}/records" + (" of the scenarios and methods asked" if records else ""))
    return chosen


def summaries_of(records: list[dict]) -> list[dict]:
    """The stored summaries of ``records``, sorted by scenario, method, images kept, budget and seed."""
    return sorted((summary_of(r) for r in records),
                  key=lambda s: (s["scenario"], s["method"], s.get("memory_images") or 0, s.get("cell_epochs") or 0,
                                 s.get("cell_budget_flops") or 0, s.get("tuned", {}).get("sha256", ""), s["seed"]))


def commands_of(records: list[dict]) -> list[str]:
    """The distinct commands that made ``records``, in the order they first finished."""
    found = sorted(((r.get("provenance") or {}).get("finished_at", ""), (r.get("provenance") or {}).get("command") or "")
                   for r in records)
    commands: list[str] = []
    for _, command in found:
        if command and command not in commands:
            commands.append(command)
    return commands


def dumps(table: dict) -> str:
    """A table file's text: its header keys one a line, then one record a line."""
    head = {k: v for k, v in table.items() if k != "records"}
    lines = ["{"] + [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    rows = [f"    {json.dumps(r, ensure_ascii=False)}" for r in table["records"]]
    return "\n".join(lines + ['  "records": [', ",\n".join(rows), "  ]", "}"]) + "\n"


def add_table(root: str, name: str, runs_dir: str, commands=(), title: str | None = None, about: str | None = None,
              headline: bool = False, reference: str | None = None, scenarios=(), methods=(),
              variant: str | None = None, figures: bool = True, baseline: str | None = None) -> str:
    """Write ``results/<name>.json`` from the records under ``runs_dir`` (replacing that table);
    return its path. ``commands``: the command(s) that make the table (default: those the records
    name, in the order they ran); ``headline``: the table the README shows; ``reference``: the method
    whose best row the paired differences are taken against (default: the best row); ``scenarios``,
    ``methods``: only their records (``methods`` also orders the rows). ``variant``: the records are one
    named row of the table, e.g. "without anchors" in an ablation: they join the table's other rows
    (replacing an earlier row of that name in the same scenario) and its header keeps what was stored
    before, unless given. ``figures``: whether the documents draw the table's figures. ``baseline``: the
    named row the others leave something out of (:func:`.report.variant_table`)."""
    check_name(name)
    records = chosen_records(runs_dir, scenarios, methods)
    summaries = [dict(s, variant=variant) if variant else s for s in summaries_of(records)]
    path = table_path(root, name)
    earlier = load_tables(root).get(name) if variant and os.path.exists(path) else None
    if earlier:
        replaced = {(s["scenario"], variant) for s in summaries}
        kept = [r for r in earlier["records"] if (r["scenario"], r.get("variant")) not in replaced]
        summaries = kept + summaries
        commands = list(dict.fromkeys([*earlier.get("commands", []), *(commands or commands_of(records))]))
        figures = figures and earlier.get("figures", True)
        title, about = title or earlier.get("title"), about or earlier.get("about")
        reference, methods = reference or earlier.get("reference"), methods or earlier.get("methods") or ()
        baseline = baseline or earlier.get("baseline")
    if baseline is not None and baseline not in {s.get("variant") for s in summaries}:
        raise StoreError(f"--baseline {baseline!r}: no row of that name; add its records with --variant {baseline!r}")
    if reference is not None and reference not in {s["method"] for s in summaries}:
        raise StoreError(f"--reference {reference}: no record of it under {runs_dir}/records")
    table = {"title": title or name, "about": about, "headline": headline, "reference": reference, "baseline": baseline,
             "methods": list(methods) or None,
             "commands": list(commands) or commands_of(records), "package_version": package_version(),
             "figures": None if figures else False,
             "records": summaries}
    atomic_write_text(path, dumps({k: v for k, v in table.items() if v is not None}))
    return path


def load_tables(root: str) -> dict[str, dict]:
    """Every table of the store, by name, in name order; StoreError for a file that is not one."""
    folder = os.path.join(root, STORE_DIR)
    tables = {}
    for file in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not file.endswith(".json"):
            continue
        path = os.path.join(folder, file)
        try:
            with open(path) as fh:
                table = json.load(fh)
        except (OSError, ValueError) as err:
            raise StoreError(f"{path} is not a results table ({err}); add it again with ctrl-bench report add")
        if not isinstance(table, dict) or not isinstance(table.get("records"), list) or not table["records"]:
            raise StoreError(f"{path} is not a results table (no records); add it again with ctrl-bench report add")
        for record in table["records"]:
            missing = [f for f in (*DESCRIPTORS[:3], *REQUIRED_NUMBERS) if f not in record]
            if missing:
                raise StoreError(f"{path}: a record lacks {', '.join(missing)}; add the table again")
        tables[file[:-5]] = table
    return tables
