"""Between-experience checkpoints that hold tensors and plain data only (:mod:`.state`), read with
``torch.load(..., weights_only=True)``; nothing in them is unpickled. Written atomically, the
previous one kept beside the latest, so that a kill never leaves half a file and a damaged latest
checkpoint falls back to the one before. Avalanche's own checkpointing fails on torch 2.14."""

from __future__ import annotations

import io
import os
import random

import numpy as np
import torch
from avalanche.training.plugins import EvaluationPlugin

from .atomic import atomic_write_bytes
from .state import StateError, attributes, restore, restore_attributes, to_plain

FORMAT = "ctrl-bench checkpoint 2"


class CorruptCheckpoint(ValueError):
    """A file that is not a checkpoint this strategy can resume from; the message says why."""


def rng_state() -> dict:
    """Every RNG a run draws from, as tensors and numbers."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def own_plugins(strategy) -> list:
    """The plugins a strategy was built with (its clock and method plugins), not the evaluator."""
    return [p for p in strategy.plugins if not isinstance(p, EvaluationPlugin)]


def _metrics(strategy) -> list:
    """The evaluator's metrics: forgetting and BWT remember each experience's first accuracy, so
    that a resumed run reports (and logs to TensorBoard) what an uninterrupted one does."""
    return list(getattr(strategy.evaluator, "metrics", []))


def _templates(strategy) -> list:
    """Live models a saved one may be a copy of (a previous model, a frozen encoder)."""
    return list(strategy.model.modules())


def strategy_state(strategy, plugins: list, attributes_=()) -> dict | None:
    """Everything training changes, as plain data: model, optimiser, the attributes of ``plugins``
    and of the evaluator's metrics, the strategy ``attributes_`` a method keeps outside plugins,
    and the strategy's own ``extra_state()``. None when some of it cannot be written as plain data
    (a data-loader iterator, say): a resumed run of that method then starts again."""
    try:
        state = {"model": {k: v.detach().clone() for k, v in strategy.model.state_dict().items()},
                 "optimizer": to_plain(strategy.optimizer.state_dict(), "optimizer"),
                 "plugins": [attributes(p, f"plugin {type(p).__name__}") for p in plugins],
                 "attributes": {name: to_plain(getattr(strategy, name), name) for name in attributes_},
                 "metrics": [attributes(m, f"metric {type(m).__name__}") for m in _metrics(strategy)]}
        if hasattr(strategy, "extra_state"):
            state["extra"] = to_plain(strategy.extra_state(), "extra_state")
    except StateError:
        return None
    return state


def save_checkpoint(path: str, rows: list, seconds: list, counts: list, state: dict | None) -> None:
    """The latest checkpoint at ``path``; the one it replaces stays as ``<path>.prev``. ``counts``: per
    finished experience, the epochs and steps it trained and its row of task-aware accuracies."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "rows": rows, "experience_seconds": seconds, "per_experience": counts, "rng": rng_state(),
                "state": state}, buffer)
    atomic_write_bytes(path, buffer.getvalue(), keep_previous=True)


def read_checkpoint(path: str, n_experiences: int) -> dict:
    """The checkpoint at ``path``, checked: CorruptCheckpoint says what is wrong with the file."""
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001  (an unpickler refusal, a truncated zip, an empty file: all mean "not ours")
        raise CorruptCheckpoint(f"not a checkpoint of tensors and plain data ({type(err).__name__}: "
                                f"{str(err).strip().splitlines()[0] if str(err).strip() else 'empty'})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise CorruptCheckpoint("not a ctrl-bench checkpoint of this version")
    rows, seconds, counts = saved.get("rows"), saved.get("experience_seconds"), saved.get("per_experience")

    def row(r):
        return isinstance(r, list) and len(r) == n_experiences and all(isinstance(a, float) for a in r)

    if not (isinstance(rows, list) and isinstance(seconds, list) and isinstance(counts, list)
            and len(rows) == len(seconds) == len(counts) and 1 <= len(rows) <= n_experiences
            and all(row(r) for r in rows) and all(isinstance(t, float) for t in seconds)
            and all(isinstance(c, dict) and isinstance(c.get("epochs"), int) and isinstance(c.get("steps"), int)
                    and row(c.get("task_il")) for c in counts)):
        raise CorruptCheckpoint("its accuracy rows do not fit the scenario")
    if not isinstance(saved.get("rng"), dict) or not (saved.get("state") is None or isinstance(saved["state"], dict)):
        raise CorruptCheckpoint("its RNG or strategy state is malformed")
    return saved


def load_strategy_state(strategy, state: dict, plugins: list, attributes_=()) -> None:
    """Write a saved state back into a freshly built strategy; CorruptCheckpoint when it does not fit."""
    try:
        _load(strategy, state, plugins, attributes_)
    except CorruptCheckpoint:
        raise
    except (StateError, KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        raise CorruptCheckpoint(f"its state does not fit the strategy ({type(err).__name__}: {err})") from None


def _register_lazy_buffers(model, saved: dict) -> None:
    """Buffers some modules create only once trained (e.g. iCaRL's class means) are registered on
    the fresh model, so that the saved state loads strictly."""
    present = model.state_dict()
    for key, value in saved.items():
        if key not in present:
            path, _, name = key.rpartition(".")
            model.get_submodule(path).register_buffer(name, value.clone())


def _load(strategy, state: dict, plugins: list, attributes_) -> None:
    if not isinstance(state.get("model"), dict):
        raise CorruptCheckpoint("it holds no model")
    _register_lazy_buffers(strategy.model, state["model"])
    strategy.model.load_state_dict(state["model"])
    strategy.model.to(strategy.device)
    strategy.optimizer.load_state_dict(restore(state["optimizer"], path="optimizer"))
    if getattr(strategy, "optimized_param_id", "absent") is None:
        # Avalanche resets the optimiser's state on its first make_optimizer(); a resumed run is
        # past that point, so mark the parameters as already registered.
        strategy.optimized_param_id = dict(strategy.model.named_parameters())
    templates = _templates(strategy)
    saved_plugins, saved_metrics = state.get("plugins"), state.get("metrics")
    if not isinstance(saved_plugins, list) or len(saved_plugins) != len(plugins):
        raise CorruptCheckpoint("it does not match the strategy's plugins")
    for plugin, saved in zip(plugins, saved_plugins):
        restore_attributes(plugin, saved, templates, f"plugin {type(plugin).__name__}")
    saved_attributes = state.get("attributes", {})
    if not isinstance(saved_attributes, dict) or set(saved_attributes) != set(attributes_):
        raise CorruptCheckpoint("it does not hold the method's state attributes")
    for name in attributes_:
        setattr(strategy, name, restore(saved_attributes[name], getattr(strategy, name, None), templates, name))
    metrics = _metrics(strategy)
    if not isinstance(saved_metrics, list) or (saved_metrics and len(saved_metrics) != len(metrics)):
        raise CorruptCheckpoint("it does not match the evaluator's metrics")
    for metric, saved in zip(metrics, saved_metrics):
        restore_attributes(metric, saved, templates, f"metric {type(metric).__name__}")
    if "extra" in state:
        strategy.load_extra_state(restore(state["extra"], path="extra_state"))
