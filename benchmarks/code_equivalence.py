#!/usr/bin/env python3
"""Is a refactor number-neutral? Runs every method (or --methods) on a small generated scenario with
the code at ``--base`` (a git revision, checked out in a temporary worktree) and with the working
tree, compares the records bit for bit, and prints, per method, whether they match and the two code
versions. With ``--write``, the matching methods whose code version changed are added to
``ctrl_bench/harness/equivalences.json``, so that records made before the refactor are reused after it.

    python benchmarks/code_equivalence.py --base HEAD           # the uncommitted change against HEAD
    python benchmarks/code_equivalence.py --base 3cdaf2f --write
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every field of a record that is a number the method produced (times and provenance are not).
COMPARED = ("accuracy_matrix", "task_il_accuracy_matrix", "forgetting", "bwt", "memory_floats", "replay_accuracy",
            "replay_accuracy_per_class", "epochs_per_experience", "steps_per_experience", "class_order",
            "step_flops_per_experience", "upkeep_flops_per_experience")
# 4 epochs in the second experience, so that i-CTRL's finish (its last 30 %, epochs ≥ 2.8) is reached.
SCENARIO = ("--scenario", "synthetic:4:48:16", "--n-experiences", "2", "--epochs", "4", "--first-epochs", "2",
            "--batch-size", "32", "--mem-size", "40", "--threads", "1", "--seeds", "0", "--no-progress")


def run(code: Path, out: Path, methods: list[str]) -> dict[str, dict]:
    """The records of ``methods`` run with the code under ``code``, by method."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    subprocess.run([sys.executable, "-m", "ctrl_bench", *SCENARIO, "--methods", *methods, "--out", str(out)],
                   cwd=code, env=env, check=True, stdout=subprocess.DEVNULL)
    records = [json.loads(p.read_text()) for p in (out / "records").rglob("*.json")]
    return {record["method"]: record for record in records}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the git revision before the refactor")
    p.add_argument("--methods", nargs="+", help="methods to compare (default: every method in both versions)")
    p.add_argument("--write", action="store_true", help="add the equivalent methods to equivalences.json")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from baselines import method_names

    from ctrl_bench.harness.equivalences import EQUIVALENT_CODE

    methods = args.methods or method_names()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                       capture_output=True)
        try:
            before = run(base, Path(tmp) / "before", methods)
            after = run(ROOT, Path(tmp) / "after", methods)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    table = {method: dict(versions) for method, versions in EQUIVALENT_CODE.items()}
    for method in methods:
        old, new = before.get(method), after.get(method)
        if old is None or new is None:
            print(f"{method}: not in both versions")
            continue
        differ = [field for field in COMPARED if old.get(field) != new.get(field)]
        settings = old["reuse_key"]["settings"] == new["reuse_key"]["settings"]
        codes = old["reuse_key"]["code"], new["reuse_key"]["code"]
        verdict = "numbers differ in " + ", ".join(differ) if differ else "same numbers"
        print(f"{method}: {verdict}; settings {'same' if settings else 'changed'}; code {codes[0]} → {codes[1]}")
        if not differ and codes[0] != codes[1]:
            table.setdefault(method, {})[codes[0]] = codes[1]
    if args.write:
        path = ROOT / "ctrl_bench" / "harness" / "equivalences.json"
        path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
