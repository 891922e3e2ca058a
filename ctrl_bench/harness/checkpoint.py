"""Between-experience checkpoints as ``torch.save`` state (Avalanche's own checkpointing fails on
torch 2.14), written atomically so that a kill never leaves half a file."""

from __future__ import annotations

import os
import pickle
import random
import tempfile

import numpy as np
import torch
from avalanche.training.plugins import EvaluationPlugin


def atomic_write_bytes(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def own_plugins(strategy) -> list:
    """The plugins a strategy was built with (its clock and method plugins), not the evaluator."""
    return [p for p in strategy.plugins if not isinstance(p, EvaluationPlugin)]


def _metrics(strategy) -> list:
    """The evaluator's metrics: forgetting and BWT remember each experience's first accuracy, so
    that a resumed run reports (and logs to TensorBoard) what an uninterrupted one does."""
    return list(getattr(strategy.evaluator, "metrics", []))


def strategy_state(strategy, plugins: list, attributes=()) -> dict | None:
    """Everything training changes: model, optimiser, the state of ``plugins`` and of the evaluator's
    metrics, the strategy ``attributes`` a method keeps outside plugins, and the strategy's own
    ``extra_state()``.
    None when some of it cannot be pickled (a resumed run then starts that method again)."""
    try:
        plugin_state = pickle.dumps([p.__dict__ for p in plugins])
        attribute_state = pickle.dumps({name: getattr(strategy, name) for name in attributes})
        metric_state = pickle.dumps([m.__dict__ for m in _metrics(strategy)])
    except Exception:
        return None
    state = {"model": strategy.model.state_dict(), "optimizer": strategy.optimizer.state_dict(),
             "plugins": plugin_state, "attributes": attribute_state, "metrics": metric_state}
    if hasattr(strategy, "extra_state"):
        state["extra"] = strategy.extra_state()
    return state


def _register_lazy_buffers(model, saved: dict) -> None:
    """Buffers some modules create only once trained (e.g. iCaRL's class means) are registered on
    the fresh model, so that the saved state loads strictly."""
    present = model.state_dict()
    for key, value in saved.items():
        if key not in present:
            path, _, name = key.rpartition(".")
            model.get_submodule(path).register_buffer(name, value.clone())


def load_strategy_state(strategy, state: dict, plugins: list) -> None:
    _register_lazy_buffers(strategy.model, state["model"])
    strategy.model.load_state_dict(state["model"])
    strategy.model.to(strategy.device)
    strategy.optimizer.load_state_dict(state["optimizer"])
    if getattr(strategy, "optimized_param_id", "absent") is None:
        # Avalanche resets the optimiser's state on its first make_optimizer(); a resumed run is
        # past that point, so mark the parameters as already registered.
        strategy.optimized_param_id = dict(strategy.model.named_parameters())
    saved = pickle.loads(state["plugins"])
    if len(saved) != len(plugins):
        raise RuntimeError("checkpoint does not match the strategy's plugins; delete it to start again")
    for plugin, attributes in zip(plugins, saved):
        plugin.__dict__.update(attributes)
    for name, value in pickle.loads(state["attributes"]).items():
        setattr(strategy, name, value)
    saved_metrics = pickle.loads(state["metrics"]) if "metrics" in state else []
    if saved_metrics and len(saved_metrics) != len(_metrics(strategy)):
        raise RuntimeError("checkpoint does not match the evaluator's metrics; delete it to start again")
    for metric, attributes in zip(_metrics(strategy), saved_metrics):
        metric.__dict__.update(attributes)
    if "extra" in state:
        strategy.load_extra_state(state["extra"])
