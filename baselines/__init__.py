"""Continual-learning methods by name: one module per method in this package, the file name being
the method's name on the command line. Modules whose name starts with "_" are helpers.

A method module defines ``build(ctx: MethodContext)`` returning an Avalanche strategy, and any of
the other hooks (:data:`HOOKS`) and attributes (:data:`ATTRIBUTES`) of the method contract; those
two tables are the contract, for readers, for ``--help`` and for the registry, which checks every
module when it loads it (:func:`check_contract`): a missing ``build``, a hook of the wrong kind or a
name one typo away from a hook (``memory_float``) fails loudly with the module's name. Adding a
method is adding a file; nothing else is edited.
"""

from __future__ import annotations

import difflib
import importlib
import math
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType

import torch

from ctrl_bench.harness.presets import PRESETS
from ctrl_bench.limits import FLOAT32_MAX, INT64_MAX

QUICK = PRESETS["quick"]  # the defaults of a context built by hand (tests, notebooks)

# The functions a method module may define (``build`` it must): name → what it does.
HOOKS = {
    "build": "build(ctx: MethodContext) -> an Avalanche strategy (required)",
    "memory_budget": "memory_budget(ctx, strategy) -> str: what it keeps of the past, for a reader (\"500 images\"); "
                     "absent: \"none\"",
    "memory_floats": "memory_floats(ctx, strategy) -> int: the numbers it keeps beyond the model it classifies with "
                     "(rules and helpers in _backbones.py); absent: 0",
    "oracle": "oracle(ctx, strategy) -> str | None: why a run is an oracle (a classifier refitted on real data of old "
              "classes), or None; every results table marks such runs",
    "preset": "preset(name, family, backbone) -> dict: its own settings in preset name for a scenario of family "
              "(\"mnist\", \"cifar\", …; Mammoth's best_args keyed by data set): values of its OPTIONS and of the "
              "common options; --option overrides them",
    "resolve_options": "resolve_options(options) -> dict: every option value a run uses, defaults filled in (recorded)",
    "check_options": "check_options(options): raises ValueError for option values it cannot take, before anything runs",
    "record_fields": "record_fields(ctx, strategy) -> dict: fields of its own for each record (a notes list among "
                     "them is printed under the results tables)",
}
# The values a method module may set: name → (accepted types, default, what it means).
ATTRIBUTES = {
    "OPTIONS": (dict, {}, "{name: help} of its own settings, set by --option METHOD.NAME=VALUE, read from ctx.options"),
    "OPTION_RANGES": (dict, {}, "{name: (int or float, lowest value[, whether it is allowed])} of its numeric "
                                "options, checked before anything runs"),
    "STATE_ATTRIBUTES": ((tuple, list), (), "strategy attributes that hold state outside the model, the optimiser and "
                                            "the plugins (checkpointed for resume)"),
    "REHEARSAL": (bool, False, "it keeps images of old classes: --mem-size and --memory-floats give it ctx.mem_size, "
                               "one run per value"),
    "DECODES_MEMORY": (bool, False, "it decodes its memory into images (strategy.decode_memory(per_class)), which the "
                                    "replay judge scores after every experience"),
    "DISTRIBUTED": (bool, False, "its loss is computed on the whole batch across the processes of --distributed"),
    "BACKBONES": ((tuple, list), ("conv", "crate", "mlp"), "the --backbone families it can be built on"),
    "CLI_FLAGS": (dict, {}, "command-line aliases of its options: {NAME: {\"help\": …, \"option\": name (default NAME), "
                            "\"choices\": {word: value} or \"switch\": value}}; --METHOD-NAME VALUE is --option "
                            "METHOD.NAME=VALUE"),
    "SEARCH_SPACE": (dict, {}, "{option: (kind, …)} the tuner searches for it besides the shared options "
                               "(SHARED_SEARCH_SPACE), with the kinds of SPACE_KINDS; an entry of a shared option "
                               "replaces its shared range; absent: the shared options only"),
}


class MethodContractError(TypeError):
    """A method module that breaks the method contract; the message names the module and the hook."""


@dataclass
class MethodContext:
    """Everything a method needs to build its strategy; the defaults are the quick preset's."""

    image_shape: tuple[int, int, int]
    n_classes: int
    n_experiences: int  # of the scenario (GEM and A-GEM keep mem_size // n_experiences images per experience)
    device: torch.device
    evaluator: object
    backbone: str = QUICK["backbone"]  # conv | crate | mlp
    size: str = QUICK["size"]  # network size preset, as for build_autoencoder
    feature_dim: int = QUICK["feature_dim"]
    epochs: int = QUICK["epochs"]
    first_epochs: int | None = QUICK["first_epochs"]  # epochs of the first experience (None: ``epochs``); the runner applies it
    batch_size: int = QUICK["batch_size"]
    eval_batch_size: int = QUICK["eval_batch_size"]
    lr: float = QUICK["lr"]
    mem_size: int = QUICK["mem_size"]  # images a rehearsal method may keep (``REHEARSAL = True`` in its module)
    options: dict = field(default_factory=dict)  # the method's own settings (its OPTIONS)

    def template_kwargs(self) -> dict:
        return dict(train_mb_size=self.batch_size, train_epochs=self.epochs, eval_mb_size=self.eval_batch_size,
                    device=self.device, evaluator=self.evaluator)


class MethodError(ValueError):
    """An unknown method, or option values a method cannot take (the harness reports it as a bad argument)."""


# Settings of the training loop that any method may take for itself (``--option METHOD.NAME=VALUE`` or its
# preset), overriding the preset's value for all.
COMMON_OPTIONS = {"epochs": "epochs per experience of this method (a departure from the shared budget, labelled)",
                  "first_epochs": "epochs of its first experience (a departure from the shared budget, labelled)",
                  "batch_size": "its training batch size",
                  "lr": "its Adam learning rate (default: the preset's lr)"}
COMMON_RANGES = {"epochs": (int, 1), "first_epochs": (int, 1), "batch_size": (int, 1), "lr": (float, 0.0, False)}
# The options every method is tuned over (``ctrl-bench tune``), and the ranges a module's SEARCH_SPACE
# may give instead. Kinds: ("log", low, high) log-uniform, ("uniform", low, high), ("int", low, high)
# both ends included, ("choice", (values…)). Each method's defaults lie inside its space (checked by
# the tests), so the tuner can find them again.
SPACE_KINDS = {"log": "log-uniform in [low, high]", "uniform": "uniform in [low, high]",
               "int": "an integer in [low, high]", "choice": "one of the values"}
SHARED_SEARCH_SPACE = {"lr": ("log", 1e-4, 1e-2), "batch_size": ("choice", (32, 64, 128))}


def check_contract(name: str, module: ModuleType) -> None:
    """MethodContractError unless ``module`` keeps the method contract: a callable ``build``, every hook
    it defines callable, every attribute of the accepted type, no public name that is a near miss of
    a contract name (a misspelt hook would otherwise be silently ignored), and ``OPTION_RANGES`` and
    ``CLI_FLAGS`` about options it has."""
    where = f"method module {module.__name__} ({getattr(module, '__file__', '?')})"
    if not callable(getattr(module, "build", None)):
        raise MethodContractError(f"{where}: it defines no build(ctx) returning a strategy; every method must")
    contract = {**HOOKS, **ATTRIBUTES}
    folded = {known.lower(): known for known in contract}
    for attribute, value in vars(module).items():
        if attribute.startswith("_"):
            continue
        if attribute in HOOKS:
            if not callable(value):
                raise MethodContractError(f"{where}: the hook {attribute} must be a function, not {type(value).__name__}")
        elif attribute in ATTRIBUTES:
            kinds = ATTRIBUTES[attribute][0]
            if not isinstance(value, kinds):
                raise MethodContractError(f"{where}: {attribute} must be a {_kind_name(kinds)}, not "
                                          f"{type(value).__name__}")
        else:
            near = [folded[attribute.lower()]] if attribute.lower() in folded else \
                difflib.get_close_matches(attribute, contract, n=1, cutoff=0.85)
            if near:
                raise MethodContractError(f"{where}: {attribute} is not a hook of the method contract; did you mean "
                                          f"{near[0]}? (hooks: {', '.join(contract)})")
    options = {**getattr(module, "OPTIONS", {}), **COMMON_OPTIONS}
    for option, spec in getattr(module, "SEARCH_SPACE", {}).items():
        if option not in options:
            raise MethodContractError(f"{where}: SEARCH_SPACE names {option!r}, which is not one of its options "
                                      f"({', '.join(sorted(options))})")
        if not valid_space(spec):
            raise MethodContractError(f"{where}: SEARCH_SPACE[{option!r}] = {spec!r} is not a range the tuner "
                                      f"knows: ('log' | 'uniform' | 'int', low, high) or ('choice', (values…))")
    for table in ("OPTION_RANGES", "CLI_FLAGS"):
        for key, entry in getattr(module, table, {}).items():
            option = entry.get("option", key) if table == "CLI_FLAGS" and isinstance(entry, dict) else key
            if option not in options:
                raise MethodContractError(f"{where}: {table} names {option!r}, which is not one of its options "
                                          f"({', '.join(sorted(options))})")
            if table == "CLI_FLAGS" and not (isinstance(entry, dict) and isinstance(entry.get("help"), str)):
                raise MethodContractError(f"{where}: CLI_FLAGS[{key!r}] must be a dict with a help text")


def valid_space(spec) -> bool:
    """Whether ``spec`` is a range of :data:`SPACE_KINDS` with low < high (log: low > 0)."""
    if not isinstance(spec, tuple) or not spec or spec[0] not in SPACE_KINDS:
        return False
    if spec[0] == "choice":
        return len(spec) == 2 and isinstance(spec[1], tuple) and len(spec[1]) > 0
    return (len(spec) == 3 and all(isinstance(v, (int, float)) for v in spec[1:]) and spec[1] < spec[2]
            and (spec[0] != "log" or spec[1] > 0) and (spec[0] != "int" or all(isinstance(v, int) for v in spec[1:])))


def in_space(spec: tuple, value) -> bool:
    """Whether ``value`` is a point of the range ``spec``."""
    if spec[0] == "choice":
        return value in spec[1]
    if spec[0] == "int" and not isinstance(value, int):
        return False
    return isinstance(value, (int, float)) and not isinstance(value, bool) and spec[1] <= value <= spec[2]


def search_space(name: str) -> dict[str, tuple]:
    """What ``ctrl-bench tune`` searches for method ``name``: the shared options, then its own
    ``SEARCH_SPACE`` (whose entries replace shared ones of the same name)."""
    return {**SHARED_SEARCH_SPACE, **declared(name, "SEARCH_SPACE")}


def _kind_name(kinds) -> str:
    return " or ".join(k.__name__ for k in kinds) if isinstance(kinds, tuple) else kinds.__name__


def _discover() -> dict[str, ModuleType]:
    methods = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            check_contract(info.name, module)
            methods[info.name] = module
    return methods


METHODS: dict[str, ModuleType] = _discover()


def method_names() -> list[str]:
    return sorted(METHODS)


def get_method(name: str) -> ModuleType:
    if name not in METHODS:
        raise MethodError(f"unknown method {name!r}; choose from: {', '.join(method_names())}")
    return METHODS[name]


def declared(name: str, attribute: str):
    """What method ``name`` sets for ``attribute`` (a key of :data:`ATTRIBUTES`), or the contract's default."""
    return getattr(get_method(name), attribute, ATTRIBUTES[attribute][1])


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
    """MethodError when ``options`` break a range (:data:`COMMON_RANGES`, the method's ``OPTION_RANGES``:
    {name: (int or float, lowest value, whether it is allowed)}) or the method's ``check_options``
    refuses them, before anything runs."""
    module = get_method(name)
    ranges = {**COMMON_RANGES, **declared(name, "OPTION_RANGES")}
    for option, value in options.items():
        try:
            if option in ranges and value is not None:
                check_range(name, option, value, *ranges[option])
            check_representable(option, value)
        except ValueError as err:
            raise MethodError(f"{name}.{err}") from None
    if hasattr(module, "check_options"):
        try:
            module.check_options({k: v for k, v in options.items() if k not in COMMON_OPTIONS})
        except ValueError as err:
            raise MethodError(f"{name}.{err}") from None


def method_preset(name: str, preset: str, family: str, backbone: str) -> dict:
    """The method's own settings in ``preset`` for a scenario of ``family`` (none: {})."""
    module = get_method(name)
    return dict(module.preset(preset, family, backbone)) if hasattr(module, "preset") else {}


def resolve_options(name: str, options: dict) -> dict:
    """Every option value the method runs with (its ``resolve_options``, or ``options`` as given)."""
    module = get_method(name)
    return dict(module.resolve_options(options)) if hasattr(module, "resolve_options") else dict(options)


def method_options(name: str) -> dict[str, str]:
    """The method's own settings: {name: help}."""
    return dict(declared(name, "OPTIONS"))


def parse_option(text: str) -> tuple[str, str, object]:
    """"METHOD.NAME=VALUE" → (method, name, value); VALUE true/false → bool, none → None, else int,
    float or str. NAME is one of the method's ``OPTIONS`` or of :data:`COMMON_OPTIONS`. Raises
    MethodError naming what is wrong."""
    target, sep, raw = text.partition("=")
    method, dot, name = target.partition(".")
    if not (sep and dot and method and name and raw):
        raise MethodError(f"--option {text!r}: expected METHOD.NAME=VALUE, e.g. ncm.oracle=true")
    known = {**method_options(method), **COMMON_OPTIONS}  # raises for an unknown method
    if name not in known:
        listing = ", ".join(f"{method}.{k}" for k in sorted(known)) or "none"
        raise MethodError(f"--option {text!r}: {method} has no option {name!r}; its options: {listing}")
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
            raise MethodError(f"--option {text!r}: must be a finite number")
        return method, name, value
    return method, name, raw


def check_range(method: str, name: str, value, kind: type, low: float, inclusive: bool = True) -> None:
    """ValueError unless ``value`` is a ``kind`` (an int is a float too) ≥ low (> low if not ``inclusive``)
    that the tensors it feeds can hold: a float32 for a real, an int64 for an integer."""
    ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    high = INT64_MAX if kind is int else FLOAT32_MAX
    what = 'an integer' if kind is int else 'a number'
    if ok_type and not isinstance(value, bool) and math.isfinite(value) and value > high:
        raise ValueError(f"{name} must be {what} ≤ {high:.4g} ({'an int64' if kind is int else 'a float32'}), "
                         f"got {value!r}")
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value < low or (value == low and not inclusive):
        raise ValueError(f"{name} must be {what} {'≥' if inclusive else '>'} {low:g}, got {value!r}")


def check_representable(name: str, value) -> None:
    """ValueError for a number no tensor of the run can hold: a real beyond float32's range, an integer
    beyond int64's (options without a declared range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    high = INT64_MAX if isinstance(value, int) else FLOAT32_MAX
    if abs(value) > high:
        raise ValueError(f"{name} must be at most {high:.4g} in size ({'an int64' if high == INT64_MAX else 'a float32'}), "
                         f"got {value!r}")
