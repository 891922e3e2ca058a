"""Adding a method is adding one file to baselines/: with its own option and preset values, in a copy
of the project where nothing else is edited."""

import json
import os
import subprocess
import sys

import pytest

from helpers import copy_of_the_code

METHOD = '''"""Naive fine-tuning with label smoothing: a method added in one file."""

from avalanche.training import Naive
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier

OPTIONS = {"smoothing": "label smoothing of the cross-entropy"}


def preset(name, family, backbone):
    return {"epochs": 2, "batch_size": 8, "smoothing": 0.1} if name == "quick" else {}


def build(ctx):
    model = classifier(ctx)
    return Naive(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(label_smoothing=ctx.options["smoothing"]),
                 **ctx.template_kwargs())
'''


@pytest.mark.slow
def test_a_new_method_file_with_its_own_preset_runs_with_nothing_else_edited(tiny_npz, tmp_path):
    code = copy_of_the_code(tmp_path / "code")
    (code / "baselines" / "smoothed.py").write_text(METHOD)
    env = {**os.environ, "PYTHONPATH": str(code)}

    def run(*extra):
        out = tmp_path / "out"
        subprocess.run([sys.executable, "-m", "ctrl_bench", "--scenario", f"npz:{tiny_npz}", "--n-experiences", "2",
                        "--methods", "smoothed", "--backbone", "mlp", "--no-progress", "--out", str(out), *extra],
                       cwd=code, env=env, check=True, capture_output=True)
        return json.loads((out / "records" / "tiny-2" / "smoothed" / "seed0.json").read_text())

    record = run()
    assert record["settings"]["method"] == {"epochs": 2, "first_epochs": None, "batch_size": 8, "smoothing": 0.1}
    assert record["budget"]["override"] == "2 epochs" and record["epochs_per_experience"] == [2, 2]
    assert record["last_accuracy"] > 0.25  # it learns: the new classes alone give 0.5
    assert record["provenance"]["code_version"]
    record = run("--option", "smoothed.smoothing=0.2", "--option", "smoothed.epochs=1")
    assert record["settings"]["method"] == {"epochs": 1, "first_epochs": None, "batch_size": 8, "smoothing": 0.2}
