"""The scenario registry and the one path from uint8 arrays to an Avalanche benchmark."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from avalanche.benchmarks import nc_benchmark
from torch.utils.data import TensorDataset

from . import synthetic
from .labels import ScenarioError, check_class_order, check_labels
from .npz import load_npz, npz_family

# (data_root, download, with_test) → x_train, y_train, x_test, y_test (uint8 HW / HWC); the test arrays are
# None when with_test is False (a validation run never reads them)
ArrayLoader = Callable[[str, bool, bool], tuple]
DataFiles = Callable[[str], list[str]]  # data_root → the files the arrays were read from


class DataMissingError(RuntimeError):
    """The data set is not on disk and may not or cannot be downloaded."""


VALIDATION_SEED = 0  # the held-out images are the same for every run, method and seed


@dataclass(frozen=True)
class ScenarioSpec:
    load: ArrayLoader
    experiences: tuple[int, ...]  # the usual numbers of experiences; the first is the default (any that divides works)
    files: DataFiles
    family: str  # the kind of data, which picks a method's data-set settings: "mnist", "cifar", …


@dataclass
class ScenarioData:
    """A data set loaded and checked, before it is split into experiences."""
    name: str
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_eval, y_eval
    n_classes: int
    n_experiences: int
    files: list[str]  # what the arrays were read from (hashed for provenance)
    family: str = "mnist"  # see ScenarioSpec.family
    source: str = ""  # what the data is: a registered name, or an npz file's real path (labels stay unique by it)
    validation: float | None = None  # the fraction of every class's training images held out and evaluated on
    first_classes: int | None = None  # a warm start: the first experience holds this many classes

    @property
    def evaluated_on(self) -> str:
        """"validation" (held-out training images; the test set is never read) or "test"."""
        return "test" if self.validation is None else "validation"


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


def scenario_label(name: str, n_experiences: int | None, validation: float | None = None,
                   first_classes: int | None = None) -> str:
    """e.g. "split_mnist-5", "mnist-5k-5" for npz:…/mnist-5k.npz, "mnist-5k-3-first6" for a warm start
    with 6 classes first, and "mnist-5k-5-val10" when 10 % of the training images are held out for
    validation (results on it are another scenario's)."""
    base = (os.path.splitext(os.path.basename(name[4:]))[0] if name.startswith("npz:")
            else name.replace(":", "") if synthetic.generated(name) else name)
    label = f"{base}-{n_experiences or default_experiences(name)}"
    if first_classes is not None:
        label += f"-first{first_classes}"
    return label if validation is None else f"{label}-val{100 * validation:g}"


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float, seed: int = VALIDATION_SEED):
    """Hold out round(fraction · n_c) images of every class c (at least 1, and at least 1 left to
    train on), drawn with ``seed``: (x_train, y_train, x_val, y_val), each in the original order."""
    if not 0 < fraction < 1:
        raise ScenarioError(f"the validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) < 2:
            raise ScenarioError(f"class {int(c)} has {len(members)} training image; a validation split needs at least 2")
        n = min(max(1, round(fraction * len(members))), len(members) - 1)
        held[rng.choice(members, n, replace=False)] = True
    return x[~held], y[~held], x[held], y[held]


def scenario_names() -> list[str]:
    return sorted(SCENARIOS) + ["npz:PATH"] + [f"{prefix}:K" for prefix in sorted(synthetic.GENERATED)]


def to_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
    """uint8 images (N, H, W) or (N, H, W, C) → float (N, C, H, W) in [−1, 1]; labels int64."""
    images = torch.from_numpy(np.ascontiguousarray(x)).float().div_(127.5).sub_(1.0)
    images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
    return TensorDataset(images, torch.from_numpy(np.asarray(y).astype(np.int64)))


def _resolve(name: str) -> tuple[ArrayLoader, tuple[int, ...] | None, DataFiles, str | None]:
    """(loader, supported experiences, data files, family); an npz file's family is its ``family``
    array or inferred from its images (None here)."""
    if name.startswith("npz:"):
        path = name[4:]
        return (lambda root, download, with_test: load_npz(path, with_test)), None, (lambda root: [path]), None
    if generated := synthetic.generated(name):
        synthetic.parse(name)
        files = sorted({synthetic.__file__, inspect.getsourcefile(generated.make)})  # the code that draws the data
        return (lambda root, download, with_test: synthetic.load(name)), None, (lambda root: files), generated.family
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; choose one of: {', '.join(scenario_names())}")
    spec = SCENARIOS[name]
    return spec.load, spec.experiences, spec.files, spec.family


def default_experiences(name: str) -> int:
    experiences = _resolve(name)[1]
    return experiences[0] if experiences else 5


def check_scenario(name: str, n_experiences: int | None) -> None:
    """Validate a scenario name and number of experiences without loading any data."""
    _resolve(name)
    if n_experiences is not None and n_experiences < 1:
        raise ScenarioError(f"--n-experiences must be at least 1, got {n_experiences}")


def load_data(name: str, n_experiences: int | None = None, class_order=None, data_root: str = "./data",
              download: bool = True, validation: float | None = None,
              first_classes: int | None = None) -> ScenarioData:
    """Load ``name``'s arrays and check their labels (and ``class_order``) against ``n_experiences``.

    With ``validation`` (a fraction), that share of every class's training images is held out
    (:func:`split_validation`, the same images for every run) and takes the place of the test set,
    which is then never read. ``first_classes``: a warm start (PyCIL's ``init_cls``), that many classes
    in the first experience and the rest split evenly over the others."""
    check_scenario(name, n_experiences)
    load, _, files, family = _resolve(name)
    arrays = load(data_root, download, validation is None)
    if validation is not None:
        arrays = split_validation(arrays[0], arrays[1], validation)
    if family is None:
        family = npz_family(name[4:]) or infer_family(arrays[0])
    n_experiences = n_experiences or default_experiences(name)
    n_classes = check_labels(name[4:] if name.startswith("npz:") else name, arrays[1], arrays[3], n_experiences,
                             eval_name="y_test" if validation is None else "the validation split",
                             first_classes=first_classes)
    check_class_order(class_order, n_classes)
    source = os.path.realpath(name[4:]) if name.startswith("npz:") else name
    return ScenarioData(name, arrays, n_classes, n_experiences, files(data_root), family, source, validation,
                        first_classes)


def make_scenario(data: ScenarioData, seed: int = 0, class_order=None) -> Scenario:
    """Split checked data into ``data.n_experiences`` experiences of equally many classes, in the
    order ``seed`` draws unless ``class_order`` fixes it."""
    x_train, y_train, x_test, y_test = data.arrays
    train, test = to_dataset(x_train, y_train), to_dataset(x_test, y_test)
    benchmark = nc_benchmark(train, test, n_experiences=data.n_experiences, task_labels=False, seed=seed,
                             fixed_class_order=check_class_order(class_order, data.n_classes),
                             per_exp_classes=None if data.first_classes is None else {0: data.first_classes})
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
