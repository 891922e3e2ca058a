"""The scenario registry and the one path from uint8 arrays to an Avalanche benchmark."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .labels import check_class_order, check_labels

ArrayLoader = Callable[[str, bool], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
DataFiles = Callable[[str], list[str]]  # data_root → the files the arrays were read from


class DataMissingError(RuntimeError):
    """The data set is not on disk and may not or cannot be downloaded."""


@dataclass(frozen=True)
class ScenarioSpec:
    load: ArrayLoader  # (data_root, download) → x_train, y_train, x_test, y_test (uint8 HW / HWC)
    experiences: tuple[int, ...]  # supported numbers of experiences; the first is the default
    files: DataFiles
    family: str  # the kind of data, which picks a method's data-set settings: "mnist", "cifar", …


@dataclass
class ScenarioData:
    """A data set loaded and checked, before it is split into experiences."""
    name: str
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_test, y_test
    n_classes: int
    n_experiences: int
    files: list[str]  # what the arrays were read from (hashed for provenance)
    family: str = "mnist"  # see ScenarioSpec.family
    source: str = ""  # what the data is: a registered name, or an npz file's real path (labels stay unique by it)


@dataclass
class Scenario:
    name: str
    benchmark: object  # avalanche NCScenario
    image_shape: tuple[int, int, int]
    n_classes: int
    test_sizes: list[int]  # test samples per experience, for pooled "seen so far" accuracies
    train_sizes: list[int]

    @property
    def class_order(self) -> list[int]:
        """The order of the classes over the experiences, as the benchmark drew it."""
        return [int(c) for c in self.benchmark.classes_order_original_ids]

    @property
    def experience_classes(self) -> list[list[int]]:
        return [sorted(int(c) for c in classes) for classes in self.benchmark.original_classes_in_exp]


SCENARIOS: dict[str, ScenarioSpec] = {}


def register_scenario(name: str, experiences: tuple[int, ...], files: DataFiles, family: str):
    def wrap(load: ArrayLoader) -> ArrayLoader:
        SCENARIOS[name] = ScenarioSpec(load, experiences, files, family)
        return load
    return wrap


def infer_family(x_train: np.ndarray) -> str:
    """The family of images nobody named: "cifar" for colour images, "mnist" for grey ones."""
    return "cifar" if x_train.ndim == 4 and x_train.shape[-1] == 3 else "mnist"


def scenario_label(name: str, n_experiences: int | None) -> str:
    """e.g. "split_mnist-5", or "mnist-5k-5" for npz:…/mnist-5k.npz."""
    base = os.path.splitext(os.path.basename(name[4:]))[0] if name.startswith("npz:") else name
    return f"{base}-{n_experiences or default_experiences(name)}"


def scenario_names() -> list[str]:
    return sorted(SCENARIOS) + ["npz:PATH"]


def to_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
    """uint8 images (N, H, W) or (N, H, W, C) → float (N, C, H, W) in [−1, 1]; labels int64."""
    images = torch.from_numpy(np.ascontiguousarray(x)).float().div_(127.5).sub_(1.0)
    images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
    return TensorDataset(images, torch.from_numpy(np.asarray(y).astype(np.int64)))


def _resolve(name: str) -> tuple[ArrayLoader, tuple[int, ...] | None, DataFiles, str | None]:
    """(loader, supported experiences, data files, family); an npz file's family is its ``family``
    array or inferred from its images (None here)."""
    if name.startswith("npz:"):
        from .npz import load_npz
        path = name[4:]
        return (lambda root, download: load_npz(path)), None, (lambda root: [path]), None
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(scenario_names())}")
    spec = SCENARIOS[name]
    return spec.load, spec.experiences, spec.files, spec.family


def default_experiences(name: str) -> int:
    experiences = _resolve(name)[1]
    return experiences[0] if experiences else 5


def check_scenario(name: str, n_experiences: int | None) -> None:
    """Validate a scenario name and number of experiences without loading any data."""
    experiences = _resolve(name)[1]
    if n_experiences is not None and n_experiences < 1:
        raise ValueError(f"--n-experiences must be at least 1, got {n_experiences}")
    if experiences is not None and n_experiences is not None and n_experiences not in experiences:
        raise ValueError(f"scenario {name!r} supports {', '.join(map(str, experiences))} experiences, "
                         f"not {n_experiences}")


def load_data(name: str, n_experiences: int | None = None, class_order=None, data_root: str = "./data",
              download: bool = True) -> ScenarioData:
    """Load ``name``'s arrays and check their labels (and ``class_order``) against ``n_experiences``."""
    check_scenario(name, n_experiences)
    load, _, files, family = _resolve(name)
    arrays = load(data_root, download)
    if family is None:
        from .npz import npz_family
        family = npz_family(name[4:]) or infer_family(arrays[0])
    n_experiences = n_experiences or default_experiences(name)
    n_classes = check_labels(name[4:] if name.startswith("npz:") else name, arrays[1], arrays[3], n_experiences)
    check_class_order(class_order, n_classes)
    source = os.path.realpath(name[4:]) if name.startswith("npz:") else name
    return ScenarioData(name, arrays, n_classes, n_experiences, files(data_root), family, source)


def make_scenario(data: ScenarioData, seed: int = 0, class_order=None) -> Scenario:
    """Split checked data into ``data.n_experiences`` experiences of equally many classes, in the
    order ``seed`` draws unless ``class_order`` fixes it."""
    from avalanche.benchmarks import nc_benchmark

    x_train, y_train, x_test, y_test = data.arrays
    train, test = to_dataset(x_train, y_train), to_dataset(x_test, y_test)
    benchmark = nc_benchmark(train, test, n_experiences=data.n_experiences, task_labels=False, seed=seed,
                             fixed_class_order=check_class_order(class_order, data.n_classes))
    return Scenario(
        name=data.name, benchmark=benchmark, image_shape=tuple(train.tensors[0].shape[1:]),
        n_classes=data.n_classes, test_sizes=[len(e.dataset) for e in benchmark.test_stream],
        train_sizes=[len(e.dataset) for e in benchmark.train_stream],
    )


def build_scenario(name: str, n_experiences: int | None = None, seed: int = 0, class_order=None,
                   data_root: str = "./data", download: bool = True) -> Scenario:
    """Build the class-incremental benchmark ``name`` with classes split evenly over experiences.

    The class order comes from ``seed`` unless ``class_order`` fixes it.
    """
    return make_scenario(load_data(name, n_experiences, class_order, data_root, download), seed, class_order)
