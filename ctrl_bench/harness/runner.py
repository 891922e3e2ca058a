"""Run one cell, a (scenario, method, seed), experience by experience, resumable: the method's
context from the cell's settings (:func:`run_cell`), the loop over experiences with a checkpoint
after each (:func:`run_method`), and the record of what it did."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, bwt_metrics, forgetting_metrics
from avalanche.training.plugins import EvaluationPlugin
from tqdm.auto import tqdm

from baselines import MethodContext, declared, get_method, memory_budget, memory_floats, method_options, oracle, record_fields

from .. import distributed, metrics
from ..device import synchronize
from .continual import ContinualEvaluation, Predictions, continual_fields, eval_subsets, prediction_fields
from .checkpoint import (CorruptCheckpoint, load_strategy_state, own_plugins, read_checkpoint, save_checkpoint,
                         set_rng_state, strategy_state)
from .flops import COUNTING, TrainingFlops, peak_memory
from .task_il import TASK_IL_KEY, TaskILAccuracy
from .tb_logger import ExperienceTensorboardLogger, ExperienceWandBLogger

ACCURACY_KEY = "Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{:03d}"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C inside :func:`run_method`, after ``finished`` of ``total`` experiences were checkpointed."""

    def __init__(self, finished: int, total: int):
        super().__init__(f"stopped after {finished} of {total} experiences")
        self.finished, self.total = finished, total


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EpochProgress(SupervisedPlugin, supports_distributed=True):
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
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def make_evaluator(tensorboard_dir: str | None, wandb_run=None) -> EvaluationPlugin:
    """The harness's metrics, logged to TensorBoard under ``tensorboard_dir`` and to the W&B run
    ``wandb_run`` (a :class:`.tb_logger.WandBRun`), each where given."""
    loggers = [ExperienceTensorboardLogger(tensorboard_dir)] if tensorboard_dir else []
    if wandb_run is not None:
        loggers.append(ExperienceWandBLogger(wandb_run))
    return EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True), TaskILAccuracy(),
        forgetting_metrics(experience=True, stream=True), bwt_metrics(experience=True, stream=True), loggers=loggers,
    )


class BudgetCounter(SupervisedPlugin, supports_distributed=True):
    """Counts what each experience actually trained: epochs and optimiser steps (a method may train
    fewer epochs than it was given, e.g. a backbone frozen after the first experience, or more, e.g.
    FeTrIL's head on features), and the seconds its epochs' loops took: the steps and their data
    loading, without the experience's set-up and upkeep (a memory stored, anchors decoded)."""

    def __init__(self):
        super().__init__()
        self.epochs = self.steps = 0
        self.loop_seconds, self._epoch_began = 0.0, None

    def before_training_exp(self, strategy, **kwargs):
        self.epochs = self.steps = 0
        self.loop_seconds = 0.0

    def before_training_epoch(self, strategy, **kwargs):
        synchronize(strategy.device)
        self._epoch_began = time.perf_counter()

    def after_training_epoch(self, strategy, **kwargs):
        self.epochs += 1
        synchronize(strategy.device)
        self.loop_seconds += time.perf_counter() - self._epoch_began

    def after_training_iteration(self, strategy, **kwargs):
        self.steps += 1


def _start(build, ctx, seed: int, extra_plugins, progress: bool, label: str, continual: dict | None = None):
    """A freshly built strategy (seeded as an uninterrupted run is), its own plugins, and the
    harness's: the budget counter, the FLOPs counter (and its marker of a step's beginning, first of
    all), the epoch bar, the evaluation's confusion matrix and, with ``continual`` ({"every",
    "subsets"}), the continual evaluation (outside the FLOPs counter's windows), then
    ``extra_plugins``, whose work after an experience (the replay judge's) is therefore not counted
    as training."""
    seed_everything(seed)
    strategy = build(ctx)
    checkpointed = own_plugins(strategy)
    counter, flops, epoch_bar = BudgetCounter(), TrainingFlops(), EpochProgress(label, progress)
    predictions = Predictions(ctx.n_classes)
    tracker = ContinualEvaluation(continual["subsets"], continual["every"], flops) if continual else None
    strategy.plugins.insert(0, flops.front)
    strategy.plugins.extend([counter, flops, epoch_bar, predictions, *([tracker] if tracker else []), *extra_plugins])
    return strategy, checkpointed, Counters(counter, flops, predictions, tracker), epoch_bar


@dataclass(frozen=True)
class Counters:
    """What the harness counts of each experience's training, and sees of its evaluation."""
    budget: BudgetCounter
    flops: TrainingFlops
    predictions: Predictions
    continual: ContinualEvaluation | None = None


def _aside(path: str) -> str:
    """Move a bad checkpoint out of the way (``<name>.corrupt``, numbered if taken); its new path."""
    target, n = f"{path}.corrupt", 1
    while os.path.exists(target):
        n += 1
        target = f"{path}.corrupt{n}"
    os.replace(path, target)
    return target


def run_method(build, ctx, scenario, checkpoint_path: str, seed: int, progress: bool = True,
               extra_plugins=(), label: str = "", state_attributes=(), continual: dict | None = None) -> dict:
    """Train ``build(ctx)`` on every experience of ``scenario``; after each one, evaluate on the whole
    test stream and checkpoint. A rerun resumes after the last finished experience, from the latest
    checkpoint or, when that one is damaged or foreign (moved aside to ``.corrupt``, with one line),
    from the one before, or from scratch. Ctrl-C raises :class:`RunInterrupted`.
    ``state_attributes``: strategy attributes (beyond model, optimiser, plugins) that hold state.
    ``continual``: {"every": STEPS, "images": N} evaluates the earlier experiences' classes every
    STEPS training steps on N of each one's evaluation images (:mod:`.continual`); None: never.

    Returns the accuracy matrix, the accuracy on the classes seen so far after each experience, the
    seconds each experience took (training and evaluation), the epochs and steps it trained, the
    summary metrics of :mod:`ctrl_bench.metrics`, the final evaluation's per-class accuracy and recency
    bias and, with ``continual``, min-ACC, the stability gap and the trace they come from.
    """
    n = len(scenario.benchmark.train_stream)
    tracking = None
    if continual:
        tracking = {"every": continual["every"],
                    "subsets": eval_subsets(scenario.benchmark.test_stream, continual["images"], seed)}
    strategy, checkpointed, counters, epoch_bar = _start(build, ctx, seed, extra_plugins, progress, label, tracking)
    rows, seconds, counts = [], [], []
    main = not distributed.active() or distributed.is_main()
    # In a distributed run, rank 0 chooses the checkpoint (setting damaged ones aside) and every rank loads it.
    candidates = distributed.broadcast([c for c in (checkpoint_path, checkpoint_path + ".prev") if os.path.lexists(c)])
    for candidate in candidates:
        try:
            saved = read_checkpoint(candidate, n)
            if saved["state"] is not None:
                load_strategy_state(strategy, saved["state"], checkpointed, state_attributes)
                rows, seconds, counts = saved["rows"], saved["experience_seconds"], saved["per_experience"]
                set_rng_state(saved["rng"])
            break
        except CorruptCheckpoint as err:
            distributed.barrier()
            if main:
                moved = _aside(candidate)
                print(f"warning: {candidate} cannot be resumed from: {err}; moved aside to {os.path.basename(moved)}",
                      flush=True)
            strategy, checkpointed, counters, epoch_bar = _start(build, ctx, seed, extra_plugins, progress, label,
                                                                 tracking)
    loggers = getattr(strategy.evaluator, "loggers", [])
    train_stream, test_stream = scenario.benchmark.train_stream, scenario.benchmark.test_stream
    bar = tqdm(total=n, initial=len(rows), desc=label or "experiences", unit="exp", disable=not progress, leave=False)
    try:
        for i in range(len(rows), n):
            for logger in loggers:
                if hasattr(logger, "start_experience"):
                    logger.start_experience(i)
            began = time.perf_counter()
            strategy.train_epochs = ctx.first_epochs if (i == 0 and ctx.first_epochs) else ctx.epochs  # the budget
            strategy.train(train_stream[i], eval_streams=[])
            trained = time.perf_counter() - began
            results = strategy.eval(test_stream)
            elapsed = time.perf_counter() - began
            for logger in loggers:
                if hasattr(logger, "finish_experience"):
                    logger.finish_experience()
            row = [float(results[ACCURACY_KEY.format(j)]) for j in range(len(test_stream))]
            budget, flops = counters.budget, counters.flops
            count = {"epochs": budget.epochs, "steps": budget.steps, "train_seconds": trained,
                     "loop_seconds": budget.loop_seconds, "step_flops": flops.step_flops,
                     "upkeep_flops": flops.upkeep_flops, "peak_memory": flops.peak_memory,
                     # future experiences' classes are unknown to the model: their task-aware score means nothing
                     "task_il": [float(results[TASK_IL_KEY.format(j)]) if j <= i else 0.0 for j in range(len(test_stream))],
                     "confusion": counters.predictions.confusion()}
            if counters.continual is not None:  # its seconds are the evaluation's, not training's
                count["continual"] = trace = counters.continual.experience_trace()
                count["train_seconds"] -= trace["seconds"]
                count["loop_seconds"] -= trace["step_seconds"]
            # rows / seconds grow only once the checkpoint holding them exists: what RunInterrupted reports is on disk
            state = strategy_state(strategy, checkpointed, state_attributes)
            if main:
                save_checkpoint(checkpoint_path, rows + [row], seconds + [elapsed], counts + [count], state)
            distributed.barrier()
            rows.append(row)
            seconds.append(elapsed)
            counts.append(count)
            bar.update()
        result = run_summary(rows, seconds, counts, scenario, continual and {**continual, "seed": seed})
        for logger in loggers:
            if hasattr(logger, "log_summary"):
                logger.log_summary(result)
    except KeyboardInterrupt:
        raise RunInterrupted(len(rows), n) from None
    finally:
        counters.flops.close()
        epoch_bar.close()
        bar.close()
        for logger in loggers:
            if hasattr(logger, "close"):
                logger.close()
    return {
        **result,
        **flops_fields(counts, counters.flops.memory_kind or peak_memory(torch.device(ctx.device))[1]),
        **({"distributed": distributed_summary(strategy, checkpointed, state_attributes)}
           if distributed.active() else {}),
        "strategy": strategy,
    }


def run_summary(rows: list, seconds: list, counts: list, scenario, continual: dict | None = None) -> dict:
    """The record's numbers of a finished run, from what each experience left: its accuracy row,
    seconds and counts (``continual``: the run's {"every", "images", "seed"}, or None)."""
    final = counts[-1].get("confusion")
    traces = [c.get("continual") for c in counts]
    return {
        "accuracy_matrix": rows,
        "seen_accuracy": [float(a) for a in metrics.seen_accuracy(rows, scenario.test_sizes)],
        "last_accuracy": metrics.last_accuracy(rows, scenario.test_sizes),
        "learning_accuracy": metrics.learning_accuracy(rows),
        "average_incremental_accuracy": metrics.average_incremental_accuracy(rows, scenario.test_sizes),
        "forgetting": metrics.forgetting(rows),
        "bwt": metrics.backward_transfer(rows),
        "wall_seconds": sum(seconds),
        "experience_seconds": seconds,
        "task_il_accuracy_matrix": [c["task_il"] for c in counts],
        "task_il_last_accuracy": metrics.last_accuracy([c["task_il"] for c in counts], scenario.test_sizes),
        "task_il_average_accuracy": metrics.average_incremental_accuracy([c["task_il"] for c in counts],
                                                                         scenario.test_sizes),
        "epochs_per_experience": [c["epochs"] for c in counts],
        "train_steps": sum(c["steps"] for c in counts),
        "steps_per_experience": [c["steps"] for c in counts],
        "train_seconds_per_experience": [c.get("train_seconds", 0.0) for c in counts],
        "loop_seconds_per_experience": [c.get("loop_seconds", 0.0) for c in counts],
        **(prediction_fields(final, scenario.experience_classes[-1]) if final else {}),
        **(continual_fields(traces, [min(continual["images"], size) for size in scenario.test_sizes],
                            continual["every"], continual["images"], continual["seed"])
           if continual and all(traces) else {}),
    }


def flops_fields(counts: list[dict], memory_kind: str) -> dict:
    """The record's cost fields: training FLOPs per experience (its sampled steps scaled, and its upkeep)
    and in total, and the peak memory (None where a checkpoint of an older version lacks them)."""
    if any("step_flops" not in c for c in counts):
        return {"train_flops": None}
    per_experience = [c["step_flops"] + c["upkeep_flops"] for c in counts]
    return {"train_flops": sum(per_experience), "train_flops_per_experience": per_experience,
            "step_flops_per_experience": [c["step_flops"] for c in counts],
            "upkeep_flops_per_experience": [c["upkeep_flops"] for c in counts],
            "peak_memory_bytes": max(c["peak_memory"] for c in counts), "peak_memory_kind": memory_kind,
            "flops_counting": COUNTING}


def state_digests(strategy, plugins, attributes=()) -> dict[str, str]:
    """SHA-256 of each part of what a checkpoint holds of the strategy: ``model``, ``optimizer``,
    ``plugin <name>``, ``attributes``, ``extra`` and ``metrics``."""
    def digest_of(node) -> str:
        digest = hashlib.sha256()

        def feed(item):
            if isinstance(item, torch.Tensor):
                digest.update(item.detach().cpu().contiguous().numpy().tobytes())
            elif isinstance(item, dict):
                for key in sorted(item, key=str):
                    digest.update(str(key).encode())
                    feed(item[key])
            elif isinstance(item, (list, tuple)):
                for element in item:
                    feed(element)
            else:
                digest.update(repr(item).encode())

        feed(node)
        return digest.hexdigest()

    state = strategy_state(strategy, plugins, attributes) or {}
    parts = {name: state[name] for name in ("model", "optimizer", "attributes", "extra") if name in state}
    parts.update({f"plugin {type(p).__name__}": s for p, s in zip(plugins, state.get("plugins", []))})
    parts["metrics"] = state.get("metrics")
    return {name: digest_of(value) for name, value in parts.items()}


def distributed_summary(strategy, plugins, attributes=()) -> dict:
    """``world_size`` and :func:`compare_digests` of every rank's :func:`state_digests`."""
    per_rank = distributed.all_equal(json.dumps(state_digests(strategy, plugins, attributes), sort_keys=True))
    summary = {"world_size": distributed.world_size(), **compare_digests([json.loads(d) for d in per_rank])}
    if not summary["ranks_agree"] and distributed.is_main():
        differing = [name for name, values in summary["state_sha256_per_rank"].items()
                     if name != "metrics" and len(set(values)) > 1]
        tqdm.write(f"warning: the processes ended with different {', '.join(differing)}; see the record's "
                   f"distributed.state_sha256_per_rank")
    return summary


def compare_digests(digests: list[dict[str, str]]) -> dict:
    """Per part of the state, its SHA-256 on every rank (rank by rank), and whether all ranks agree on
    every part but ``metrics``: the evaluator's training metrics count each rank's own shard."""
    per_part = {name: [d.get(name) for d in digests] for name in sorted(set().union(*digests))}
    return {"state_sha256_per_rank": per_part,
            "ranks_agree": all(len(set(values)) == 1 for name, values in per_part.items() if name != "metrics")}


def method_context(method: str, scenario, settings: dict, device, evaluator):
    """The :class:`baselines.MethodContext` of a cell: the shared settings (``settings["config"]``)
    with the method's own (``settings["method"]``: its training length and batch size, its learning
    rate where it was given one and has no ``lr`` option of its own, and its options)."""
    common, own = settings["config"], dict(settings["method"])
    epochs, first_epochs, batch_size = own.pop("epochs"), own.pop("first_epochs", None), own.pop("batch_size")
    lr = own.pop("lr") if "lr" in own and "lr" not in method_options(method) else common["lr"]
    return MethodContext(
        image_shape=scenario.image_shape, n_classes=scenario.n_classes, n_experiences=len(scenario.train_sizes),
        device=device, evaluator=evaluator,
        backbone=common["backbone"], size=common["size"], feature_dim=common["feature_dim"], epochs=epochs,
        first_epochs=first_epochs, batch_size=batch_size, eval_batch_size=common["eval_batch_size"], lr=lr,
        mem_size=common["mem_size"], options=own,
    )


def run_cell(method: str, seed: int, scenario, settings: dict, device, checkpoint: str,
             tensorboard_dir: str | None, progress: bool = True, label: str = "", extra_plugins=(),
             wandb_run=None) -> dict:
    """One cell: build ``method`` from ``settings`` (``bench.cell_settings``), train and evaluate it on
    every experience of ``scenario`` (resuming from ``checkpoint``), and return its record (the
    harness adds the reuse key and provenance). A plugin in ``extra_plugins`` with a ``record()``
    method adds its fields (the replay judge's). ``settings["continual_eval"]``, where present, is
    the continual evaluation's {"every_steps", "images_per_experience"}; ``wandb_run``: the cell's
    W&B run, if it logs to W&B."""
    ctx = method_context(method, scenario, settings, device, make_evaluator(tensorboard_dir, wandb_run))
    module = get_method(method)
    tracked = settings.get("continual_eval")
    continual = {"every": tracked["every_steps"], "images": tracked["images_per_experience"]} if tracked else None
    result = run_method(module.build, ctx, scenario, checkpoint, seed, progress=progress, label=label,
                        state_attributes=tuple(declared(method, "STATE_ATTRIBUTES")), extra_plugins=extra_plugins,
                        continual=continual)
    strategy = result.pop("strategy")
    record = {"method": method, "seed": seed, **result,
              "class_order": scenario.class_order, "experience_classes": scenario.experience_classes,
              "memory_budget": memory_budget(method, ctx, strategy),
              "memory_floats": memory_floats(method, ctx, strategy), "oracle": oracle(method, ctx, strategy),
              "preset": settings["preset"], "settings": settings, **record_fields(method, ctx, strategy)}
    for plugin in extra_plugins:
        if hasattr(plugin, "record"):
            record.update(plugin.record())
    return record


