"""Task-incremental accuracy beside class-incremental accuracy, as Mammoth and FACIL report it (FACIL's
"task-aware" accuracy): on an experience's test data, the prediction is the arg-max of the scores
over that experience's classes only, so the task's classes are known at test time."""

from __future__ import annotations

import torch
from avalanche.evaluation import GenericPluginMetric
from avalanche.evaluation.metrics.accuracy import Accuracy

TASK_IL_KEY = "TaskIL_Acc_Exp/eval_phase/test_stream/Task000/Exp{:03d}"


def task_aware_prediction(scores: torch.Tensor, classes) -> torch.Tensor:
    """arg max over ``classes`` of each row of ``scores`` (B, K), as class ids."""
    classes = torch.as_tensor(sorted(int(c) for c in classes), device=scores.device)
    return classes[scores[:, classes].argmax(1)]


class TaskILAccuracy(GenericPluginMetric[float, Accuracy]):
    """Per evaluated experience, the accuracy of :func:`task_aware_prediction` with the classes of that
    experience (emitted as ``TaskIL_Acc_Exp/...`` next to Avalanche's ``Top1_Acc_Exp/...``)."""

    def __init__(self):
        super().__init__(Accuracy(), reset_at="experience", emit_at="experience", mode="eval")

    def update(self, strategy):
        predicted = task_aware_prediction(strategy.mb_output, strategy.experience.classes_in_this_experience)
        self._metric.update(predicted, strategy.mb_y)

    def reset(self) -> None:
        self._metric.reset()

    def result(self) -> float:
        return self._metric.result()

    def __str__(self):
        return "TaskIL_Acc_Exp"
