"""The code version in a record's reuse key: the code that defines a method's numbers (its module
and what it imports from the project, the runner, checkpoints, metrics and scenarios), not comments,
docstrings or presentation code."""

import pytest

from ctrl_bench.harness import provenance
from helpers import copy_of_the_code

METHODS = ("ctrl", "naive", "lwf", "icarl", "fetril")


@pytest.fixture
def code(tmp_path, monkeypatch):
    copy = copy_of_the_code(tmp_path / "code")
    monkeypatch.setattr(provenance, "CODE_ROOT", copy)
    return copy


def versions() -> dict[str, str]:
    return {method: provenance.code_version(method) for method in METHODS}


def edit(path, text="\nEDITED = True\n"):
    with open(path, "a") as fh:
        fh.write(text)


def rerun(before: dict, after: dict) -> set[str]:
    return {method for method in before if before[method] != after[method]}


@pytest.mark.parametrize("path, reruns", [
    ("ctrl_bench/ictrl/strategy.py", {"ctrl"}),
    ("ctrl_bench/ictrl/step.py", {"ctrl"}),
    ("ctrl_bench/ictrl/config.py", {"ctrl"}),
    ("ctrl_bench/game.py", {"ctrl"}),
    ("ctrl_bench/harness/plots.py", set()),
    ("ctrl_bench/harness/results.py", set()),
    ("ctrl_bench/harness/cli.py", set()),
    ("baselines/lwf.py", {"lwf"}),
    ("ctrl_bench/crate.py", set(METHODS)),  # every method's backbone
    ("ctrl_bench/harness/runner.py", set(METHODS)),
    ("scenarios/npz.py", set(METHODS)),
])
def test_an_edit_reruns_exactly_the_methods_whose_code_it_changes(code, path, reruns):
    before = versions()
    edit(code / path)
    assert rerun(before, versions()) == reruns


def test_comments_docstrings_and_layout_are_not_code(code):
    before = versions()
    path = code / "ctrl_bench" / "ictrl" / "strategy.py"
    text = path.read_text()
    text = text.replace('"""Incremental closed-loop transcription.', '"""Incremental closed-loop transcription, edited.')
    path.write_text(text.replace("import inspect\n", "import inspect  # a comment\n\n"))
    assert versions() == before

