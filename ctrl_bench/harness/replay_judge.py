"""The replay judge in the harness: one :class:`~ctrl_bench.judge.JudgeNet` per data set, trained on
its whole training set, cached under ``--out/judges/``, and an Avalanche plugin that scores what a
generative memory decodes after every experience (``replay/accuracy`` in TensorBoard)."""

from __future__ import annotations

import io
import os

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metric_results import MetricValue

from scenarios.registry import to_dataset

from ..judge import JudgeNet, judge_accuracy, replay_accuracy, train_judge
from .atomic import atomic_write_bytes

IMAGES_PER_CLASS = 100  # decoded prototypes judged per class


def load_or_train_judge(cache_path: str, data, device) -> JudgeNet:
    """The judge of ``data`` (a :class:`scenarios.ScenarioData`): loaded from ``cache_path`` when it is
    there, else trained on the whole training set (seed 0, on the CPU, so it is the same on any
    machine), reported with its test accuracy and saved."""
    x_train, y_train, x_test, y_test = data.arrays
    train = to_dataset(x_train, y_train)
    if os.path.lexists(cache_path):
        judge = JudgeNet(train.tensors[0].shape[1], data.n_classes)
        try:
            judge.load_state_dict(torch.load(cache_path, weights_only=True, map_location="cpu"))
            return judge.to(device).eval()
        except Exception as err:  # noqa: BLE001  (truncated, foreign or tampered: train it again)
            target = f"{cache_path}.corrupt"
            os.replace(cache_path, target)
            print(f"warning: {cache_path} is not a replay judge ({type(err).__name__}); moved aside to "
                  f"{os.path.basename(target)}, training it again", flush=True)
    print(f"training the replay judge for {data.name} (once; cached in {cache_path})", flush=True)
    judge = train_judge(*train.tensors, n_classes=data.n_classes)
    accuracy = judge_accuracy(judge, *to_dataset(x_test, y_test).tensors)
    print(f"replay judge: accuracy {accuracy:.3f} on the real {data.evaluated_on} images", flush=True)
    buffer = io.BytesIO()
    torch.save(judge.state_dict(), buffer)
    atomic_write_bytes(cache_path, buffer.getvalue())
    return judge.to(device).eval()


class ReplayJudgePlugin(SupervisedPlugin, supports_distributed=True):
    """After training on every experience of a strategy with ``decode_memory(per_class)`` (i-CTRL), the fraction
    of decoded prototypes of each class that the judge calls that class: published as
    ``replay/accuracy`` (mean over classes) and ``replay/accuracy/class_<c>``; the latest values
    are in ``last``."""

    def __init__(self, judge: torch.nn.Module, per_class: int = IMAGES_PER_CLASS):
        super().__init__()
        self.judge, self.per_class = judge, per_class
        self.last: dict | None = None

    def after_training(self, strategy, **kwargs):  # after the experience, once the harness stopped counting FLOPs
        if not hasattr(strategy, "decode_memory"):
            return
        device = torch.device(strategy.device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # judging trains nothing
            images, labels = strategy.decode_memory(self.per_class)
        per_class = replay_accuracy(self.judge, images, labels)
        mean = sum(per_class.values()) / len(per_class)
        self.last = {"mean": mean, "per_class": {str(c): v for c, v in per_class.items()}}
        x = strategy.clock.train_exp_counter
        if strategy.evaluator is not None:
            strategy.evaluator.publish_metric_value(MetricValue(strategy, "replay/accuracy", mean, x))
            for c, value in per_class.items():
                strategy.evaluator.publish_metric_value(MetricValue(strategy, f"replay/accuracy/class_{c}", value, x))

    def record(self) -> dict:
        """The record's fields: the score after the final experience (none when nothing was judged)."""
        if self.last is None:
            return {}
        return {"replay_accuracy": self.last["mean"], "replay_accuracy_per_class": self.last["per_class"]}
