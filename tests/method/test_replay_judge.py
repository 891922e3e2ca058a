import glob
import json

import numpy as np
import torch
from torch import nn

from ctrl_bench.harness import cli
from helpers import make_images
from ctrl_bench.judge import judge_accuracy, replay_accuracy, train_judge


def as_tensors(images: np.ndarray, labels: np.ndarray):
    return torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1), torch.from_numpy(labels)


def test_the_judge_learns_the_generated_classes():
    judge = train_judge(*as_tensors(*make_images(4, 48, seed=0)), n_classes=4, epochs=4)
    assert judge_accuracy(judge, *as_tensors(*make_images(4, 16, seed=1))) > 0.9  # chance: 0.25


class FixedJudge(nn.Module):
    """Calls every image the class written in its first pixel."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, X):
        return nn.functional.one_hot(X[:, 0, 0, 0].long(), 3).float()


def test_replay_accuracy_is_the_fraction_of_each_class_the_judge_recognises():
    called = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])  # what the judge will say
    labels = torch.tensor([0, 0, 1, 1, 1, 1, 2, 2])
    images = called.float()[:, None, None, None].expand(-1, 1, 2, 2).clone()
    assert replay_accuracy(FixedJudge(), images, labels) == {0: 1.0, 1: 0.75, 2: 0.5}


def test_a_ctrl_run_records_replay_accuracy_and_caches_its_judge(tiny_npz, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "runs"
    argv = ["--scenario", f"npz:{tiny_npz}", "--n-experiences", "2", "--methods", "ctrl", "naive", "--backbone", "conv",
            "--ctrl-epochs", "2", "--ctrl-batch-size", "64", "--epochs", "1", "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    runs = {run["method"]: run for run in json.loads((out / "results.json").read_text())["runs"]}
    assert 0.0 <= runs["ctrl"]["replay_accuracy"] <= 1.0
    assert set(runs["ctrl"]["replay_accuracy_per_class"]) == {"0", "1", "2", "3"}
    assert "replay_accuracy" not in runs["naive"]  # only a method that decodes its memory is judged
    assert len(glob.glob(str(out / "judges" / "*.pt"))) == 1
    events = [EventAccumulator(path).Reload() for path in glob.glob(str(out / "tensorboard" / "**" / "events.*"), recursive=True)]
    steps = sorted(s.step for e in events if "replay/accuracy" in e.Tags()["scalars"] for s in e.Scalars("replay/accuracy"))
    assert len(steps) == 2  # after each experience
    assert any("replay/accuracy/class_3" in e.Tags()["scalars"] for e in events)
