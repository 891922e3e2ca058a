"""The scenario registry and the one path from uint8 arrays to an Avalanche benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import TensorDataset

ArrayLoader = Callable[[str, bool], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


class DataMissingError(RuntimeError):
    """The data set is not on disk and may not or cannot be downloaded."""


@dataclass(frozen=True)
class ScenarioSpec:
    load: ArrayLoader  # (data_root, download) → x_train, y_train, x_test, y_test (uint8 HW / HWC)
    experiences: tuple[int, ...]  # supported numbers of experiences; the first is the default


@dataclass
class Scenario:
    name: str
    benchmark: object  # avalanche NCScenario
    image_shape: tuple[int, int, int]
    n_classes: int
    test_sizes: list[int]  # test samples per experience, for pooled "seen so far" accuracies
    train_sizes: list[int]


SCENARIOS: dict[str, ScenarioSpec] = {}


def register_scenario(name: str, experiences: tuple[int, ...]):
    def wrap(load: ArrayLoader) -> ArrayLoader:
        SCENARIOS[name] = ScenarioSpec(load, experiences)
        return load
    return wrap


def scenario_names() -> list[str]:
    return sorted(SCENARIOS) + ["npz:PATH"]


def to_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
    """uint8 images (N, H, W) or (N, H, W, C) → float (N, C, H, W) in [−1, 1]; labels int64."""
    images = torch.from_numpy(np.ascontiguousarray(x)).float().div_(127.5).sub_(1.0)
    images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
    return TensorDataset(images, torch.from_numpy(np.asarray(y).astype(np.int64)))


def _resolve(name: str) -> tuple[ArrayLoader, tuple[int, ...] | None]:
    if name.startswith("npz:"):
        from .npz import load_npz
        path = name[4:]
        return (lambda root, download: load_npz(path)), None
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(scenario_names())}")
    spec = SCENARIOS[name]
    return spec.load, spec.experiences


def default_experiences(name: str) -> int:
    _, experiences = _resolve(name)
    return experiences[0] if experiences else 5


def check_scenario(name: str, n_experiences: int | None) -> None:
    """Validate a scenario name and number of experiences without loading any data."""
    _, experiences = _resolve(name)
    if experiences is not None and n_experiences is not None and n_experiences not in experiences:
        raise ValueError(f"scenario {name!r} supports {', '.join(map(str, experiences))} experiences, "
                         f"not {n_experiences}")


def build_scenario(name: str, n_experiences: int | None = None, seed: int = 0, class_order=None,
                   data_root: str = "./data", download: bool = True) -> Scenario:
    """Build the class-incremental benchmark ``name`` with classes split evenly over experiences.

    The class order comes from ``seed`` unless ``class_order`` fixes it.
    """
    from avalanche.benchmarks import nc_benchmark

    check_scenario(name, n_experiences)
    load, experiences = _resolve(name)
    x_train, y_train, x_test, y_test = load(data_root, download)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    if n_experiences is None:
        n_experiences = default_experiences(name)
    if n_classes % n_experiences:
        raise ValueError(f"{n_classes} classes cannot be split evenly into {n_experiences} experiences")
    if class_order is not None:
        class_order = [int(c) for c in class_order]
        if sorted(class_order) != list(range(n_classes)):
            raise ValueError(f"class order must be a permutation of 0..{n_classes - 1}, got {class_order}")
    train, test = to_dataset(x_train, y_train), to_dataset(x_test, y_test)
    benchmark = nc_benchmark(train, test, n_experiences=n_experiences, task_labels=False, seed=seed,
                             fixed_class_order=class_order)
    return Scenario(
        name=name, benchmark=benchmark, image_shape=tuple(train.tensors[0].shape[1:]), n_classes=n_classes,
        test_sizes=[len(e.dataset) for e in benchmark.test_stream],
        train_sizes=[len(e.dataset) for e in benchmark.train_stream],
    )
