"""What a cell's evaluation sees beyond the accuracy matrix:

- :class:`ContinualEvaluation` (``--eval-every STEPS``): every STEPS training steps of experience k, the
  accuracy on a fixed, seeded subset of the test (or validation) images of each earlier experience
  0..k−1, and after the experience's last step on those of 0..k (the point "just before" experience
  k+1). The model is evaluated as the strategy's own evaluation does (its ``forward`` with
  ``is_training`` off, every module in eval mode, under ``torch.no_grad``), with the global RNGs
  forked and the training FLOP counter paused; the modules' modes and the strategy's minibatch are
  restored afterwards. Its FLOPs and seconds are counted apart from training's.
- :class:`Predictions`: the confusion matrix of every evaluation of the test stream (row: true class,
  column: predicted class, the arg max of ``mb_output``, as Avalanche's accuracy takes it), whence the
  per-class accuracy and the recency bias of the record.

Both keep plain data only: what an experience yields goes into the runner's per-experience counts,
hence into the checkpoint, so that a resumed run keeps the trace of its finished experiences.
"""

from __future__ import annotations

import time

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metric_results import MetricValue

from .. import metrics
from ..device import synchronize
from .flops import TrainingFlops, counted

DEFAULT_IMAGES = 1000  # per experience, as De Lange et al. subsample each task's evaluation set
OLD_ACCURACY_TAG = "continual/old_classes_accuracy"


def eval_subsets(test_stream, images: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per experience, up to ``images`` of its evaluation images and their labels, drawn without
    replacement by a generator seeded with ``seed`` (the global RNGs are not touched)."""
    generator = torch.Generator().manual_seed(seed)
    subsets = []
    for experience in test_stream:
        dataset = experience.dataset.eval()
        picked = torch.randperm(len(dataset), generator=generator)[:images].sort().values
        items = [dataset[int(i)] for i in picked]
        subsets.append((torch.stack([item[0] for item in items]), torch.as_tensor([int(item[1]) for item in items])))
    return subsets


def _forks(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


@torch.no_grad()
def evaluate(strategy, subsets, experiences) -> list[float]:
    """The accuracy of ``strategy`` on each of ``subsets[j]``, j in ``experiences``, as its evaluation
    predicts (``forward`` with ``is_training`` off, the model in eval mode); nothing it changes stays
    changed."""
    model, device = strategy.model, torch.device(strategy.device)
    modes = [(module, module.training) for module in model.modules()]
    saved = strategy.mbatch, strategy.mb_output, strategy.is_training
    size = getattr(strategy, "eval_mb_size", None) or 256
    accuracies = []
    try:
        model.eval()
        strategy.is_training = False
        with torch.random.fork_rng(devices=_forks(device)):
            for j in experiences:
                x, y = subsets[j]
                correct = 0
                for xb, yb in zip(x.split(size), y.split(size)):
                    xb, yb = xb.to(device), yb.to(device)
                    strategy.mbatch = [xb, yb, torch.zeros_like(yb)]
                    correct += int((strategy.forward().argmax(1) == yb).sum())
                accuracies.append(correct / len(y))
    finally:
        for module, training in modes:
            module.training = training
        strategy.mbatch, strategy.mb_output, strategy.is_training = saved
    return accuracies


class ContinualEvaluation(SupervisedPlugin, supports_distributed=False):
    """Evaluates the classes of earlier experiences every ``every`` training steps (see the module
    docstring); :meth:`experience_trace` is what the experience that just trained yielded."""

    def __init__(self, subsets, every: int, flops: TrainingFlops):
        super().__init__()
        self.subsets, self.every, self.flops = subsets, every, flops
        self.sizes = [len(y) for _, y in subsets]
        self._reset(0)

    def _reset(self, k: int) -> None:
        self.k, self.step = k, 0
        self.steps: list[int] = []
        self.accuracy: list[list[float]] = []
        self.end: list[float] | None = None
        self.eval_flops, self.eval_seconds, self.step_seconds, self.evaluations = 0, 0.0, 0.0, 0
        self._flops_of: dict[int, int] = {}  # FLOPs of one evaluation of this many experiences (counted once)

    def before_training_exp(self, strategy, **kwargs):
        self._reset(int(strategy.experience.current_experience))

    def after_training_iteration(self, strategy, **kwargs):
        self.step += 1
        if self.k and self.step % self.every == 0:
            began = self.eval_seconds
            self._add(strategy, self._evaluate(strategy, self.k))
            self.step_seconds += self.eval_seconds - began  # inside the epochs' loops

    def after_training(self, strategy, **kwargs):
        """After the last step (and outside the FLOP counter's windows): experiences 0..k."""
        self.end = self._evaluate(strategy, self.k + 1)
        if self.k and (not self.steps or self.steps[-1] != self.step):  # else the last step was just evaluated
            self._add(strategy, self.end[: self.k])

    def _add(self, strategy, accuracies: list[float]) -> None:
        """A point of the trace, also published for TensorBoard / W&B (pooled over the old classes)."""
        self.steps.append(self.step)
        self.accuracy.append(accuracies)
        if strategy.evaluator is not None:
            value = metrics.pooled_accuracy(accuracies, self.sizes)
            strategy.evaluator.publish_metric_value(
                MetricValue(strategy, OLD_ACCURACY_TAG, value, strategy.clock.train_iterations))

    def _evaluate(self, strategy, n: int) -> list[float]:
        device = torch.device(strategy.device)
        with self.flops.paused():
            synchronize(device)
            began = time.perf_counter()
            if n in self._flops_of:
                accuracies = evaluate(strategy, self.subsets, range(n))
            else:
                accuracies, self._flops_of[n] = counted(lambda: evaluate(strategy, self.subsets, range(n)))
            self.eval_flops += self._flops_of[n]
            synchronize(device)
            self.eval_seconds += time.perf_counter() - began
        self.evaluations += 1
        return accuracies

    def experience_trace(self) -> dict:
        """Plain data of the experience that just trained: the step of each evaluation during it and
        its accuracies on experiences 0..k−1, the accuracies on 0..k after its last step, its steps,
        and the evaluation's FLOPs, seconds (``step_seconds``: those spent between steps) and count."""
        return {"steps": list(self.steps), "accuracy": [list(a) for a in self.accuracy], "end": list(self.end or []),
                "total_steps": self.step, "flops": self.eval_flops, "seconds": self.eval_seconds,
                "step_seconds": self.step_seconds, "evaluations": self.evaluations}


def continual_fields(traces: list[dict], sizes: list[int], every: int, images: int, seed: int) -> dict:
    """The record's fields of a run's continual evaluation (``traces``: one :meth:`experience_trace`
    per experience): min-ACC and the stability gap (:mod:`ctrl_bench.metrics`), the old classes'
    accuracy before and during each experience, and the evaluation's cost."""
    during = [t["accuracy"] for t in traces]
    before = [None] + [metrics.pooled_accuracy(traces[k - 1]["end"][:k], sizes) for k in range(1, len(traces))]
    old = [[metrics.pooled_accuracy(point, sizes) for point in points] for points in during]
    return {
        "min_accuracy": metrics.min_accuracy(during),
        "stability_gap": metrics.stability_gap(before, old),
        "continual_eval": {"every_steps": every, "images_per_experience": sizes, "images_asked": images,
                           "subset_seed": seed,
                           "steps": [t["steps"] for t in traces], "steps_per_experience": [t["total_steps"] for t in traces],
                           "accuracy": during, "end": [t["end"] for t in traces],
                           "old_accuracy_before": before, "old_accuracy": old},
        "continual_eval_flops": sum(t["flops"] for t in traces),
        "continual_eval_flops_per_experience": [t["flops"] for t in traces],
        "continual_eval_seconds": sum(t["seconds"] for t in traces),
        "continual_evaluations": sum(t["evaluations"] for t in traces),
    }


class Predictions(SupervisedPlugin, supports_distributed=True):
    """The confusion matrix (``n_classes`` × ``n_classes`` counts) of the latest evaluation."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.counts: torch.Tensor | None = None

    def before_eval(self, strategy, **kwargs):
        self.counts = None

    def after_eval_iteration(self, strategy, **kwargs):
        K = self.n_classes
        predicted, y = strategy.mb_output.argmax(1), strategy.mb_y
        counts = torch.bincount(y.long() * K + predicted, minlength=K * K)
        self.counts = counts if self.counts is None else self.counts + counts

    def confusion(self) -> list[list[int]]:
        if self.counts is None:
            return []
        if self.counts.numel() != self.n_classes**2:
            raise ValueError(f"a prediction outside the {self.n_classes} classes of the scenario")
        return self.counts.view(self.n_classes, self.n_classes).cpu().tolist()


def prediction_fields(confusion: list[list[int]], last_classes) -> dict:
    """The record's fields of the final evaluation's confusion matrix: per-class accuracy (by class
    id), the recency bias and the last experience's share of the test set (:mod:`ctrl_bench.metrics`)."""
    return {"per_class_accuracy": metrics.per_class_accuracy(confusion),
            "recency_bias": metrics.recency_bias(confusion, last_classes),
            "last_classes_test_share": metrics.class_share(confusion, last_classes),
            "confusion_matrix": confusion}
