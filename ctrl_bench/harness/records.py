"""Finished runs on disk (``records/``), their checkpoints, and when a record may be reused.

A record is reused only while its *reuse key* matches: the run's settings (preset values, number
of experiences, fixed class order, torch threads, device type), the data's SHA-256, the code version
of the files that define the method (see :mod:`.provenance`) and the device's name.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
from dataclasses import dataclass

from .atomic import atomic_write_text
from .equivalences import EQUIVALENT_CODE

# Part of the reuse key → what the console says when it differs.
KEY_PARTS = {"settings": "settings changed", "data": "data changed", "code": "code changed",
             "device": "device changed"}


def short_hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def reuse_key(settings: dict, data_sha256: str, code_version: str, device: str) -> dict:
    return {"settings": short_hash(settings), "data": data_sha256, "code": code_version, "device": device}


def equivalent_code(method: str, old: str, new: str) -> bool:
    """Whether a refactor from code version ``old`` to ``new`` of ``method`` was checked to change no
    number (:mod:`.equivalences`)."""
    return EQUIVALENT_CODE.get(method, {}).get(old) == new


def stale_reasons(record: dict, key: dict) -> list[str]:
    old = record.get("reuse_key")
    if not isinstance(old, dict):
        return ["record of an older ctrl-bench without a reuse key"]
    same = {part: old.get(part) == key[part] for part in KEY_PARTS}
    same["code"] = same["code"] or equivalent_code(record.get("method", ""), str(old.get("code")), key["code"])
    return [reason for part, reason in KEY_PARTS.items() if not same[part]]


def decide(record: dict | None, key: dict, policy: str, missing: str = "no record yet") -> tuple[bool, str]:
    """(reuse the record?, why) under ``--reuse policy``; ``missing`` says why there is no record."""
    if record is None:
        return False, missing
    if policy == "never":
        return False, "--reuse never"
    reasons = stale_reasons(record, key)
    if not reasons:
        refactored = record["reuse_key"].get("code") != key["code"]
        return True, "record still valid" + (": made before a refactor checked to change no number" if refactored else "")
    if policy == "always":
        return True, f"--reuse always, although {', '.join(reasons)}"
    return False, ", ".join(reasons)


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def flops_text(flops: float) -> str:
    """A FLOPs count as tables and paths show it, e.g. "1.2e+12"."""
    return f"{flops:.3g}"


def cell_details(memory: int | None, epochs: int | None, budget_flops: float | None) -> list[str]:
    """What tells a cell's row from the method's others, e.g. ["500 images", "12 epochs ≤ 1e+12 FLOPs"]."""
    shown = [f"{memory} images"] if memory is not None else []
    if epochs is not None:
        shown.append(f"{epochs} epoch{'' if epochs == 1 else 's'}"
                     + (f" ≤ {flops_text(budget_flops)} FLOPs" if budget_flops is not None else ""))
    return shown


def tuned_label(tuned: dict) -> str:
    """How a row run with tuned settings is labelled, e.g. "tuned on mnist_5k (16 trials)"."""
    return f"tuned on {tuned['scenario']} ({tuned['trials']} trial{'' if tuned['trials'] == 1 else 's'})"


@dataclass(frozen=True)
class Cell:
    """One (scenario, method, seed) of a command; for a rehearsal method also the images it keeps."""
    scenario: str  # label, e.g. "mnist-5k-5"
    method: str
    seed: int
    memory: int | None = None  # images a rehearsal method keeps (its runs at other sizes are other cells)
    epochs: int | None = None  # epochs per experience, when a command runs several (a budget curve) or fits them
    budget_flops: float | None = None  # the training FLOPs its epochs were fitted to (--budget-flops)
    tuned: str | None = None  # hash of the tuned.json its settings came from (--settings): beside its defaults' cell

    @property
    def where(self) -> str:
        parts = [self.method] + ([f"tuned-{self.tuned}"] if self.tuned is not None else []) \
            + ([f"mem{self.memory}"] if self.memory is not None else []) \
            + ([f"flops{flops_text(self.budget_flops)}"] if self.budget_flops is not None else []) \
            + ([f"ep{self.epochs}"] if self.epochs is not None else [])
        return os.path.join(slug(self.scenario), *parts, f"seed{self.seed}")

    def __str__(self) -> str:
        shown = cell_details(self.memory, self.epochs, self.budget_flops)
        detail = f" ({', '.join(shown)})" if shown else ""
        tuned = f" [tuned, {self.tuned}]" if self.tuned is not None else ""
        return f"{self.scenario} {self.method}{detail}{tuned} seed {self.seed}"

    @classmethod
    def of(cls, record: dict) -> Cell:
        """The cell a record is of."""
        tuned = (record.get("settings") or {}).get("tuned") or {}
        return cls(record["scenario"], record["method"], record["seed"], record.get("memory_images"),
                   record.get("cell_epochs"), record.get("cell_budget_flops"), tuned.get("sha256"))


class RecordStore:
    """``<out>/records/<scenario>/<method>[/tuned-<file hash>][/mem<N>]…/seed<s>.json`` and ``<out>/checkpoints/…-<key>.pt``."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def record_path(self, cell: Cell) -> str:
        return os.path.join(self.out_dir, "records", cell.where + ".json")

    def checkpoint_path(self, cell: Cell, key: dict) -> str:
        return os.path.join(self.out_dir, "checkpoints", f"{cell.where}-{short_hash(key)[:10]}.pt")

    def tensorboard_dir(self, cell: Cell) -> str:
        return os.path.join(self.out_dir, "tensorboard", cell.where)

    def load(self, cell: Cell) -> tuple[dict | None, str]:
        """(the cell's record, "") when a valid one is at its place, else (None, why not): the cell
        runs again."""
        path = self.record_path(cell)
        if not os.path.lexists(path):
            return None, "no record yet"
        if os.path.islink(path) or not os.path.isfile(path):
            return None, "its record is not a regular file"
        record, why = read_record(path)
        if why:
            return None, f"its record {why.split(';')[0]}"
        if Cell.of(record) != cell:
            return None, "its record file holds another cell"
        return record, ""

    def sources(self, label: str) -> set[str]:
        """The data sources (``scenario_source``) of the records under a scenario label."""
        found = set()
        folder = os.path.join(self.out_dir, "records", slug(label))
        for dirpath, _, files in os.walk(folder, followlinks=False):
            for name in files:
                record, why = read_record(os.path.join(dirpath, name)) if name.endswith(".json") else (None, "x")
                if record is not None and isinstance(record.get("scenario_source"), str):
                    found.add(record["scenario_source"])
        return found

    def save(self, cell: Cell, record: dict) -> None:
        atomic_write_text(self.record_path(cell), json.dumps(record, indent=2))

    def drop_checkpoints(self, cell: Cell, keep: str | None = None) -> None:
        """Delete the cell's checkpoints but ``keep`` (those of other keys can never be resumed)."""
        stem = glob.escape(os.path.join(self.out_dir, "checkpoints", cell.where))
        for path in glob.glob(stem + "-*.pt") + glob.glob(stem + "-*.pt.prev"):
            if path not in (keep, f"{keep}.prev"):
                self.remove_checkpoint(path)

    def remove_checkpoint(self, path: str) -> None:
        """Delete ``path`` (and the previous checkpoint kept beside it) and the folders under
        ``checkpoints/`` they leave empty."""
        for stale in (path, f"{path}.prev"):
            if os.path.lexists(stale):
                os.remove(stale)
        root, folder = os.path.join(self.out_dir, "checkpoints"), os.path.dirname(path)
        if not os.path.isdir(folder):
            return
        while os.path.abspath(folder) != os.path.abspath(root) and not os.listdir(folder):
            os.rmdir(folder)
            folder = os.path.dirname(folder)
        if not os.listdir(root):
            os.rmdir(root)

    def all_records(self) -> tuple[dict[str, dict], list[str]]:
        """Every valid record under ``records/`` (by its path), and one line for each file left out: a
        malformed record, a symbolic link (never followed), or a record that is not at the path its
        own (scenario, method, seed) gives (a copy, a duplicate). Such a cell counts as unrun."""
        records, problems = {}, []
        root = os.path.join(self.out_dir, "records")
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                if not name.endswith(".json"):
                    continue
                if os.path.islink(path):
                    problems.append(f"{path} is a symbolic link; records are never read through links")
                    continue
                record, why = read_record(path)
                if why:
                    problems.append(f"{path} {why}")
                    continue
                cell = Cell.of(record)
                home = self.record_path(cell)
                if os.path.abspath(path) != os.path.abspath(home):
                    problems.append(f"{path} holds {cell}, whose record is {home}; left out")
                    continue
                records[path] = record
        for folder, dirs, _ in os.walk(root, followlinks=False):
            problems += [f"{os.path.join(folder, d)} is a symbolic link; records are never read through links"
                         for d in dirs if os.path.islink(os.path.join(folder, d))]
        return records, problems


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(value) -> bool:
    return isinstance(value, list) and all(_number(v) for v in value)


# field → (test, what it must be); the fields the tables, figures and reuse decisions read
RECORD_FIELDS = {
    "scenario": (lambda v: isinstance(v, str) and bool(v), "a scenario label"),
    "method": (lambda v: isinstance(v, str) and v.isidentifier(), "a method name"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a seed ≥ 0"),
    "accuracy_matrix": (lambda v: isinstance(v, list) and bool(v) and all(_numbers(r) for r in v), "rows of numbers"),
    "last_accuracy": (_number, "a number"),
    "average_incremental_accuracy": (_number, "a number"),
    "forgetting": (_number, "a number"),
    "bwt": (_number, "a number"),
    "wall_seconds": (_number, "a number"),
}
OPTIONAL_FIELDS = {
    "memory_floats": (lambda v: v is None or (_number(v) and v >= 0), "a count ≥ 0"),
    "replay_accuracy": (lambda v: v is None or _number(v), "a number"),
    "seen_accuracy": (_numbers, "a list of numbers"),
    "experience_seconds": (_numbers, "a list of numbers"),
    "class_order": (lambda v: isinstance(v, list) and all(isinstance(c, int) for c in v), "a list of class ids"),
    "experience_classes": (lambda v: isinstance(v, list) and all(isinstance(c, list) for c in v), "lists of class ids"),
    "memory_budget": (lambda v: isinstance(v, str), "a string"),
    "oracle": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "reuse_key": (lambda v: isinstance(v, dict), "an object"),
    "provenance": (lambda v: isinstance(v, dict), "an object"),
    "settings": (lambda v: isinstance(v, dict), "an object"),
    "notes": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of strings"),
    "memory_images": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
                      "a count of images"),
    "cell_epochs": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
                    "a count of epochs"),
    "cell_budget_flops": (lambda v: v is None or (_number(v) and v > 0), "a count > 0"),
    "task_il_last_accuracy": (_number, "a number"),
    "task_il_average_accuracy": (_number, "a number"),
    "epochs_per_experience": (lambda v: isinstance(v, list) and all(isinstance(e, int) for e in v), "epoch counts"),
    "train_steps": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a step count"),
    "budget": (lambda v: isinstance(v, dict), "an object"),
    "train_flops": (lambda v: v is None or (_number(v) and v >= 0), "a count ≥ 0"),
    "peak_memory_bytes": (lambda v: _number(v) and v >= 0, "a count ≥ 0"),
    "evaluated_on": (lambda v: v in ("test", "validation"), "test or validation"),
    "learning_accuracy": (_number, "a number"),
    "per_class_accuracy": (lambda v: isinstance(v, list) and all(a is None or _number(a) for a in v),
                           "a list of numbers (null for a class without test images)"),
    "recency_bias": (_number, "a number"),
    "last_classes_test_share": (_number, "a number"),
    "confusion_matrix": (lambda v: isinstance(v, list) and all(_numbers(r) for r in v), "rows of counts"),
    "min_accuracy": (lambda v: v is None or _number(v), "a number or null"),
    "stability_gap": (lambda v: v is None or _number(v), "a number or null"),
    "continual_eval": (lambda v: isinstance(v, dict), "an object"),
    "continual_eval_flops": (lambda v: _number(v) and v >= 0, "a count ≥ 0"),
}


def read_record(path: str) -> tuple[dict | None, str | None]:
    """(the record at ``path``, None), or (None, why it cannot be used)."""
    try:
        with open(path) as fh:
            record = json.load(fh)
    except OSError as err:
        return None, f"cannot be read ({err.strerror or err}); left out"
    except ValueError:
        return None, "is not JSON (a run interrupted while writing it leaves none: a hand-edited file?); left out"
    if not isinstance(record, dict):
        return None, "is not a record (a JSON object); left out"
    for fields, required in ((RECORD_FIELDS, True), (OPTIONAL_FIELDS, False)):
        for name, (valid, what) in fields.items():
            if name not in record:
                if required:
                    return None, f"is not a complete record (no {name}); left out, the cell runs again"
                continue
            if not valid(record[name]):
                return None, f"is malformed ({name} must be {what}, got {record[name]!r:.40}); left out, the cell runs again"
    return record, None
