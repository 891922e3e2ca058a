"""Finished runs on disk (``records/``), their checkpoints, and when a record may be reused.

A record is reused only while its *reuse key* matches: the run's settings (preset values, number
of experiences, fixed class order, torch threads, device type), the data's SHA-256, the code version
of the files that define the method (see :mod:`.provenance`) and the device's name.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass

from .checkpoint import atomic_write_text

REUSE_POLICIES = ("never", "valid", "always")
# Part of the reuse key → what the console says when it differs.
KEY_PARTS = {"settings": "settings changed", "data": "data changed", "code": "code changed",
             "device": "device changed"}
REQUIRED_FIELDS = ("scenario", "method", "seed", "accuracy_matrix", "last_accuracy", "average_incremental_accuracy",
                   "forgetting", "bwt", "wall_seconds")


def short_hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def reuse_key(settings: dict, data_sha256: str, code_version: str, device: str) -> dict:
    return {"settings": short_hash(settings), "data": data_sha256, "code": code_version, "device": device}


def stale_reasons(record: dict, key: dict) -> list[str]:
    old = record.get("reuse_key")
    if not isinstance(old, dict):
        return ["record of an older ctrl-bench without a reuse key"]
    return [reason for part, reason in KEY_PARTS.items() if old.get(part) != key[part]]


def decide(record: dict | None, key: dict, policy: str) -> tuple[bool, str]:
    """(reuse the record?, why) under ``--reuse policy``."""
    if record is None:
        return False, "no record yet"
    if policy == "never":
        return False, "--reuse never"
    reasons = stale_reasons(record, key)
    if not reasons:
        return True, "record still valid"
    if policy == "always":
        return True, f"--reuse always, although {', '.join(reasons)}"
    return False, ", ".join(reasons)


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


@dataclass(frozen=True)
class Cell:
    """One (scenario, method, seed) of a command."""
    scenario: str  # label, e.g. "mnist-5k-5"
    method: str
    seed: int

    @property
    def where(self) -> str:
        return os.path.join(slug(self.scenario), self.method, f"seed{self.seed}")

    def __str__(self) -> str:
        return f"{self.scenario} {self.method} seed {self.seed}"


class RecordStore:
    """``<out>/records/<scenario>/<method>/seed<s>.json`` and ``<out>/checkpoints/…-<key>.pt``."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def record_path(self, cell: Cell) -> str:
        return os.path.join(self.out_dir, "records", cell.where + ".json")

    def checkpoint_path(self, cell: Cell, key: dict) -> str:
        return os.path.join(self.out_dir, "checkpoints", f"{cell.where}-{short_hash(key)[:10]}.pt")

    def tensorboard_dir(self, cell: Cell) -> str:
        return os.path.join(self.out_dir, "tensorboard", cell.where)

    def load(self, cell: Cell) -> dict | None:
        return _read(self.record_path(cell))

    def save(self, cell: Cell, record: dict) -> None:
        atomic_write_text(self.record_path(cell), json.dumps(record, indent=2))

    def drop_checkpoints(self, cell: Cell, keep: str | None = None) -> None:
        """Delete the cell's checkpoints but ``keep`` (those of other keys can never be resumed)."""
        for path in glob.glob(glob.escape(os.path.join(self.out_dir, "checkpoints", cell.where)) + "-*.pt"):
            if path != keep:
                self.remove_checkpoint(path)

    def remove_checkpoint(self, path: str) -> None:
        """Delete ``path`` and the folders under ``checkpoints/`` it leaves empty."""
        os.remove(path)
        root, folder = os.path.join(self.out_dir, "checkpoints"), os.path.dirname(path)
        while os.path.abspath(folder) != os.path.abspath(root) and not os.listdir(folder):
            os.rmdir(folder)
            folder = os.path.dirname(folder)
        if not os.listdir(root):
            os.rmdir(root)

    def all_records(self) -> tuple[dict[str, dict], list[str]]:
        """Every complete record under ``records/`` by path, and the paths that could not be read."""
        records, unreadable = {}, []
        for path in sorted(glob.glob(os.path.join(glob.escape(self.out_dir), "records", "**", "*.json"),
                                     recursive=True)):
            record = _read(path)
            if record is None:
                unreadable.append(path)
            else:
                records[path] = record
        return records, unreadable


def _read(path: str) -> dict | None:
    try:
        with open(path) as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and all(f in record for f in REQUIRED_FIELDS) else None
