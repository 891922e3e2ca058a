"""The paper preset end to end, every epoch count cut to 1, on generated data: the CRATE base pair and
the --backbone conv reference variant (its published game: alternating updates, DCGAN initialisation)."""

import json

import pytest

from ctrl_bench.harness import cli
from helpers import record_file


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["crate", "conv"])
def test_the_paper_preset_runs_end_to_end(tiny_npz, tmp_path, backbone):
    out = tmp_path / "runs"
    assert cli.main(["--scenario", f"npz:{tiny_npz}", "--n-experiences", "2", "--methods", "ctrl", "--preset", "paper",
                     "--backbone", backbone, "--epochs", "1", "--threads", "2", "--no-progress", "--out", str(out)]) == 0
    record = json.loads(record_file(out, "ctrl").read_text())
    method = record["settings"]["method"]
    assert record["epochs_per_experience"] == [1, 1] and record["settings"]["config"]["size"] == "base"
    assert method["batch_size"] == 2048 and method["n_prototypes"] == 360
    if backbone == "conv":
        assert method["alternate"] is True and method["init"] == "dcgan" and method["new_weight"] == 10.0
    assert 0.0 <= record["replay_accuracy"] <= 1.0 and record["memory_floats"] > 0
