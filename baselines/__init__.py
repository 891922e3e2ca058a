"""Continual-learning methods by name: one module per method in this package.

A method module defines ``build(ctx: MethodContext)`` returning an Avalanche strategy, and
optionally:

- ``memory_budget(ctx, strategy) -> str``: what it keeps of the past, for a reader ("500 images");
- ``memory_floats(ctx, strategy) -> int``: the same in one unit, the numbers it keeps beyond the
  model it classifies with (rules and helpers in ``_backbones.py``); absent means 0;
- ``oracle(ctx, strategy) -> str | None``: why a run is an oracle (a classifier refitted on real
  data of old classes), or None; every results table marks such runs;
- ``OPTIONS``: {name: help} of the method's own settings, set by ``--option METHOD.NAME=VALUE``
  and read from ``ctx.options``;
- ``preset(name, family, backbone) -> dict``: the method's own settings in preset ``name`` for a
  scenario of ``family`` ("mnist", "cifar", …; Mammoth's ``best_args`` keyed by data set): values
  of its ``OPTIONS`` and of :data:`COMMON_OPTIONS`; ``--option`` overrides them;
- ``resolve_options(options) -> dict``: every option value a run uses, defaults filled in (recorded);
- ``OPTION_RANGES``: {name: (int or float, lowest value, whether it is allowed)} of its numeric
  options, checked before anything runs; ``check_options(options)``: raises ValueError for any
  other option values the method cannot take;
- ``record_fields(ctx, strategy) -> dict``: fields of its own for each record (a ``notes`` list
  among them is printed under the results tables);
- ``STATE_ATTRIBUTES``: names of strategy attributes that hold state outside the model, the
  optimiser and the plugins (checkpointed for resume).

Modules whose name starts with "_" are helpers. Adding a method is adding a file; nothing else is edited.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType

import torch


@dataclass
class MethodContext:
    """Everything a method needs to build its strategy."""

    image_shape: tuple[int, int, int]
    n_classes: int
    device: torch.device
    evaluator: object
    backbone: str = "conv"  # conv | crate | mlp
    size: str = "small"  # network size preset, as for build_autoencoder
    feature_dim: int = 128
    epochs: int = 1
    first_epochs: int | None = None  # epochs of the first experience (None: ``epochs``); the runner applies it
    batch_size: int = 64
    eval_batch_size: int = 1000
    lr: float = 1e-3
    mem_size: int = 500  # images a rehearsal method may keep (``REHEARSAL = True`` in its module)
    options: dict = field(default_factory=dict)  # the method's own settings (its OPTIONS), and n_experiences

    def template_kwargs(self) -> dict:
        return dict(train_mb_size=self.batch_size, train_epochs=self.epochs, eval_mb_size=self.eval_batch_size,
                    device=self.device, evaluator=self.evaluator)


def _discover() -> dict[str, ModuleType]:
    methods = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            methods[info.name] = importlib.import_module(f"{__name__}.{info.name}")
    return methods


METHODS: dict[str, ModuleType] = _discover()


def method_names() -> list[str]:
    return sorted(METHODS)


def get_method(name: str) -> ModuleType:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from: {', '.join(method_names())}")
    return METHODS[name]


def memory_budget(name: str, ctx: MethodContext, strategy) -> str:
    module = get_method(name)
    return module.memory_budget(ctx, strategy) if hasattr(module, "memory_budget") else "none"


def memory_floats(name: str, ctx: MethodContext, strategy) -> int:
    module = get_method(name)
    return int(module.memory_floats(ctx, strategy)) if hasattr(module, "memory_floats") else 0


def oracle(name: str, ctx: MethodContext, strategy) -> str | None:
    module = get_method(name)
    return module.oracle(ctx, strategy) if hasattr(module, "oracle") else None


def record_fields(name: str, ctx: MethodContext, strategy) -> dict:
    module = get_method(name)
    return dict(module.record_fields(ctx, strategy)) if hasattr(module, "record_fields") else {}


def check_options(name: str, options: dict) -> None:
    """ValueError when ``options`` break a range (:data:`COMMON_RANGES`, the method's ``OPTION_RANGES``:
    {name: (int or float, lowest value, whether it is allowed)}) or the method's ``check_options``
    refuses them, before anything runs."""
    module = get_method(name)
    ranges = {**COMMON_RANGES, **getattr(module, "OPTION_RANGES", {})}
    for option, value in options.items():
        if option in ranges and value is not None:
            try:
                check_range(name, option, value, *ranges[option])
            except ValueError as err:
                raise ValueError(f"{name}.{err}") from None
    if hasattr(module, "check_options"):
        try:
            module.check_options({k: v for k, v in options.items() if k not in COMMON_OPTIONS})
        except ValueError as err:
            raise ValueError(f"{name}.{err}") from None


def method_preset(name: str, preset: str, family: str, backbone: str) -> dict:
    """The method's own settings in ``preset`` for a scenario of ``family`` (none: {})."""
    module = get_method(name)
    return dict(module.preset(preset, family, backbone)) if hasattr(module, "preset") else {}


def resolve_options(name: str, options: dict) -> dict:
    """Every option value the method runs with (its ``resolve_options``, or ``options`` as given)."""
    module = get_method(name)
    return dict(module.resolve_options(options)) if hasattr(module, "resolve_options") else dict(options)


# Settings of the training loop that any method may take for itself (``--option METHOD.NAME=VALUE`` or its
# preset), overriding the preset's value for all.
COMMON_OPTIONS = {"epochs": "epochs per experience of this method (a departure from the shared budget, labelled)",
                  "first_epochs": "epochs of its first experience (a departure from the shared budget, labelled)",
                  "batch_size": "its training batch size"}
COMMON_RANGES = {"epochs": (int, 1), "first_epochs": (int, 1), "batch_size": (int, 1)}


def method_options(name: str) -> dict[str, str]:
    """The method's own settings: {name: help}."""
    return dict(getattr(get_method(name), "OPTIONS", {}))


def parse_option(text: str) -> tuple[str, str, object]:
    """"METHOD.NAME=VALUE" → (method, name, value); VALUE true/false → bool, none → None, else int,
    float or str. NAME is one of the method's ``OPTIONS`` or of :data:`COMMON_OPTIONS`. Raises
    ValueError naming what is wrong."""
    target, sep, raw = text.partition("=")
    method, dot, name = target.partition(".")
    if not (sep and dot and method and name and raw):
        raise ValueError(f"--option {text!r}: expected METHOD.NAME=VALUE, e.g. ncm.oracle=true")
    known = {**method_options(method), **COMMON_OPTIONS}  # raises for an unknown method
    if name not in known:
        listing = ", ".join(f"{method}.{k}" for k in sorted(known)) or "none"
        raise ValueError(f"--option {text!r}: {method} has no option {name!r}; its options: {listing}")
    if raw.lower() in ("true", "false"):
        return method, name, raw.lower() == "true"
    if raw.lower() == "none":
        return method, name, None
    for kind in (int, float):
        try:
            value = kind(raw)
        except ValueError:
            continue
        if not math.isfinite(value):
            raise ValueError(f"--option {text!r}: must be a finite number")
        return method, name, value
    return method, name, raw


def check_range(method: str, name: str, value, kind: type, low: float, inclusive: bool = True) -> None:
    """ValueError unless ``value`` is a ``kind`` (an int is a float too) ≥ low (> low if not ``inclusive``)."""
    ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value < low or (value == low and not inclusive):
        bound = f"{'≥' if inclusive else '>'} {low:g}"
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'} {bound}, got {value!r}")
