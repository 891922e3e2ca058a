"""Run one (method, seed) on one scenario, experience by experience, resumable."""

from __future__ import annotations

import io
import os
import random
import time

import numpy as np
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, bwt_metrics, forgetting_metrics
from avalanche.logging import TensorboardLogger
from avalanche.training.plugins import EvaluationPlugin
from tqdm.auto import tqdm

from .. import metrics
from .checkpoint import atomic_write_bytes, load_strategy_state, own_plugins, rng_state, set_rng_state, strategy_state

ACCURACY_KEY = "Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{:03d}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EpochProgress(SupervisedPlugin):
    """A tqdm bar over the epochs of the experience being trained."""

    def __init__(self, label: str, enabled: bool):
        super().__init__()
        self.label, self.enabled, self.bar = label, enabled, None

    def before_training_exp(self, strategy, **kwargs):
        if self.enabled:
            self.bar = tqdm(total=strategy.train_epochs, desc=self.label, leave=False, unit="epoch")

    def after_training_epoch(self, strategy, **kwargs):
        if self.bar is not None:
            self.bar.update()

    def after_training_exp(self, strategy, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def make_evaluator(tensorboard_dir: str | None) -> EvaluationPlugin:
    loggers = [TensorboardLogger(tensorboard_dir)] if tensorboard_dir else []
    return EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True), forgetting_metrics(experience=True, stream=True),
        bwt_metrics(experience=True, stream=True), loggers=loggers,
    )


def run_method(build, ctx, scenario, checkpoint_path: str, seed: int, progress: bool = True,
               extra_plugins=(), label: str = "", state_attributes=()) -> dict:
    """Train ``build(ctx)`` on every experience of ``scenario``; after each one, evaluate on the whole
    test stream and checkpoint. A rerun resumes after the last finished experience.
    ``state_attributes``: strategy attributes (beyond model, optimiser, plugins) that hold state.

    Returns the accuracy matrix and the summary metrics of :mod:`ctrl_bench.metrics`.
    """
    seed_everything(seed)
    strategy = build(ctx)
    checkpointed_plugins = own_plugins(strategy)
    for plugin in extra_plugins:
        strategy.plugins.append(plugin)
    strategy.plugins.append(EpochProgress(label, progress))
    train_stream, test_stream = scenario.benchmark.train_stream, scenario.benchmark.test_stream
    rows, wall, start = [], 0.0, 0
    if os.path.exists(checkpoint_path):
        saved = torch.load(checkpoint_path, weights_only=False)
        if saved["state"] is not None:
            load_strategy_state(strategy, saved["state"], checkpointed_plugins)
            rows, wall, start = saved["rows"], saved["wall_seconds"], len(saved["rows"])
            set_rng_state(saved["rng"])
    bar = tqdm(total=len(train_stream), initial=start, desc=label or "experiences", unit="exp",
               disable=not progress, leave=False)
    for i in range(start, len(train_stream)):
        began = time.perf_counter()
        strategy.train(train_stream[i], eval_streams=[])
        results = strategy.eval(test_stream)
        wall += time.perf_counter() - began
        rows.append([float(results[ACCURACY_KEY.format(j)]) for j in range(len(test_stream))])
        torch_save_atomic({"rows": rows, "wall_seconds": wall, "rng": rng_state(),
                           "state": strategy_state(strategy, checkpointed_plugins, state_attributes)}, checkpoint_path)
        bar.update()
    bar.close()
    for logger in getattr(strategy.evaluator, "loggers", []):
        if hasattr(logger, "close"):
            logger.close()
    return {
        "accuracy_matrix": rows,
        "last_accuracy": metrics.last_accuracy(rows, scenario.test_sizes),
        "average_incremental_accuracy": metrics.average_incremental_accuracy(rows, scenario.test_sizes),
        "forgetting": metrics.forgetting(rows),
        "bwt": metrics.backward_transfer(rows),
        "wall_seconds": wall,
        "strategy": strategy,
    }


def torch_save_atomic(obj, path: str) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
