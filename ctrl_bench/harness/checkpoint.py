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


def _plugins(strategy):
    return [p for p in strategy.plugins if not isinstance(p, EvaluationPlugin)]


def strategy_state(strategy) -> dict | None:
    """Everything training changes: model, optimiser, plugin state, the strategy's own extra state.
    None when a plugin's state cannot be pickled (then a resumed run starts that method again)."""
    try:
        plugins = pickle.dumps([p.__dict__ for p in _plugins(strategy)])
    except Exception:
        return None
    state = {"model": strategy.model.state_dict(), "optimizer": strategy.optimizer.state_dict(), "plugins": plugins}
    if hasattr(strategy, "extra_state"):
        state["extra"] = strategy.extra_state()
    return state


def load_strategy_state(strategy, state: dict) -> None:
    strategy.model.load_state_dict(state["model"])
    strategy.model.to(strategy.device)
    strategy.optimizer.load_state_dict(state["optimizer"])
    saved = pickle.loads(state["plugins"])
    current = _plugins(strategy)
    if len(saved) != len(current):
        raise RuntimeError("checkpoint does not match the strategy's plugins; delete it to start again")
    for plugin, attributes in zip(current, saved):
        plugin.__dict__.update(attributes)
    if "extra" in state:
        strategy.load_extra_state(state["extra"])
