"""Strategy state as plain data, and back: what a checkpoint holds, so that it can be read with
``torch.load(..., weights_only=True)`` and nothing in it is ever unpickled.

:func:`to_plain` turns a plugin's or metric's attributes into a tree of tensors, numbers, strings,
lists and dicts, with small tagged nodes for the few other kinds of state continual-learning
strategies keep: a model (its ``state_dict``), an optimiser (its ``state_dict``), a rehearsal
buffer (an Avalanche dataset, its samples as tensors), Avalanche's ``ParamData``, a NumPy array,
and plain value objects (metrics' accumulators, a buffer's groups). :func:`restore` writes such a
tree back into the live objects of a freshly built strategy. It never looks a class up by a name
the file gives, except among :data:`VALUE_CLASSES`, which it creates with ``__new__`` and fills
with restored attributes (no method of theirs runs); a model is rebuilt by copying a live module of
the same class and loading the saved ``state_dict`` into the copy.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types

import numpy as np
import torch
from avalanche.benchmarks.utils import make_avalanche_dataset
from avalanche.benchmarks.utils.classification_dataset import _make_taskaware_tensor_classification_dataset
from avalanche.benchmarks.utils.data import AvalancheDataset
from avalanche.benchmarks.utils.data_attribute import TensorDataAttribute
from avalanche.benchmarks.utils.flat_data import FlatData
from avalanche.evaluation.metrics.accuracy import Accuracy, TaskAwareAccuracy
from avalanche.evaluation.metrics.forgetting_bwt import Forgetting
from avalanche.evaluation.metrics.mean import Mean
from avalanche.training.storage_policy import ReservoirSamplingBuffer
from avalanche.training.utils import ParamData
from torch import nn

PLAIN = (type(None), bool, int, float, str)
CODE = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial, type)


class StateError(ValueError):
    """State that cannot be written as plain data, or a saved tree that does not fit the strategy."""


def _value_classes() -> dict[str, type]:
    return {_name(c): c for c in (Accuracy, TaskAwareAccuracy, Mean, Forgetting, ReservoirSamplingBuffer)}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_dataset(obj) -> bool:
    return isinstance(obj, AvalancheDataset)


def _is_param_data(obj) -> bool:
    return isinstance(obj, ParamData)


# ---------------------------------------------------------------- writing
def to_plain(obj, path: str = "state", _stack: frozenset = frozenset()):
    """``obj`` as plain data (see the module docstring); StateError naming ``path`` for anything else
    (an object that refers back to itself among them)."""
    if isinstance(obj, PLAIN):
        return obj
    if id(obj) in _stack:
        raise StateError(f"{path}: refers back to an object that holds it")
    stack = _stack | {id(obj)}
    return _to_plain(obj, path, stack)


def _to_plain(obj, path: str, stack: frozenset):
    if isinstance(obj, PLAIN):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise StateError(f"{path}: an object array")
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.device):
        return {"__device__": str(obj)}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [to_plain(v, f"{path}[{i}]", stack) for i, v in enumerate(sorted(obj) if isinstance(obj, (set, frozenset))
                                                                     else obj)]
        kind = "list" if isinstance(obj, list) else "tuple" if isinstance(obj, tuple) else "set"
        return items if kind == "list" else {f"__{kind}__": items}
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, PLAIN):
                raise StateError(f"{path}: a dict key of type {type(key).__name__}")
        return {"__dict__": [[k, to_plain(v, f"{path}[{k!r}]", stack)] for k, v in obj.items()]}
    if isinstance(obj, nn.Module):
        return {"__module__": _name(type(obj)), "state": {k: v.detach().clone() for k, v in obj.state_dict().items()}}
    if isinstance(obj, torch.optim.Optimizer):
        return {"__optimizer__": to_plain(obj.state_dict(), f"{path}.state_dict", stack)}
    if _is_dataset(obj):
        return {"__dataset__": _dataset_columns(obj, path)}
    if _is_param_data(obj):
        return {"__param__": {"name": obj.name, "shape": list(obj.shape), "data": obj.data.detach().clone()}}
    if isinstance(obj, torch.utils.data.DataLoader) or "DataLoader" in type(obj).__name__:
        raise StateError(f"{path}: a data loader (its iterator cannot be written down)")
    if dataclasses.is_dataclass(obj) and obj.__dataclass_params__.frozen:
        return {"__config__": _name(type(obj))}  # set when the strategy is built, never changed
    if hasattr(obj, "__dict__") and not isinstance(obj, CODE) and type(obj).__module__.split(".")[0] != "builtins":
        return {"__object__": _name(type(obj)), "attrs": attributes(obj, path, stack)}
    raise StateError(f"{path}: a {type(obj).__name__}, which a checkpoint cannot hold as plain data")


def attributes(obj, path: str = "state", _stack: frozenset = frozenset()) -> dict:
    """The plain form of every attribute of ``obj`` (a plugin, a metric, a value object)."""
    stack = _stack | {id(obj)}
    return {name: to_plain(value, f"{path}.{name}", stack) for name, value in vars(obj).items()}


def _dataset_columns(dataset, path: str) -> dict:
    """A rehearsal buffer's samples as stacked tensors: inputs, targets, task labels, and any other
    attribute returned with each sample (DER's logits), by name."""
    extra = [name for name, attribute in dataset._data_attributes.items()
             if attribute.use_in_getitem and name != "targets_task_labels"]
    columns: dict[str, list] = {"x": [], "y": [], "t": [], **{name: [] for name in extra}}
    for i in range(len(dataset)):
        item = dataset[i]
        if len(item) != 3 + len(extra):
            raise StateError(f"{path}: samples of {len(item)} fields, expected x, y, t and {extra}")
        for name, value in zip(columns, item):
            columns[name].append(torch.as_tensor(value))
    stacked = {name: (torch.stack(values) if values else torch.empty(0)) for name, values in columns.items()}
    return {"columns": stacked, "extra": extra}


# ---------------------------------------------------------------- reading
def restore(tree, live=None, templates=(), path: str = "state"):
    """The object ``tree`` describes, written into ``live`` where that is an object of the same kind
    (a dict, a module, an optimiser, a value object: updated in place), else made anew. ``templates``
    are live modules a saved model may be a copy of (its class and parameter names must match)."""
    if isinstance(tree, PLAIN) or isinstance(tree, torch.Tensor):
        return tree
    if isinstance(tree, list):
        return [restore(v, None, templates, f"{path}[{i}]") for i, v in enumerate(tree)]
    if not isinstance(tree, dict) or len(tree) not in (1, 2):
        raise StateError(f"{path}: not a state node")
    if "__tuple__" in tree:
        return tuple(restore(v, None, templates, path) for v in _list(tree["__tuple__"], path))
    if "__set__" in tree:
        return set(restore(v, None, templates, path) for v in _list(tree["__set__"], path))
    if "__ndarray__" in tree:
        return _tensor(tree["__ndarray__"], path).numpy()
    if "__device__" in tree:
        return torch.device(_text(tree["__device__"], path))
    if "__config__" in tree:
        if live is None or _name(type(live)) != tree["__config__"]:
            raise StateError(f"{path}: a configuration the strategy does not have")
        return live
    if "__dict__" in tree:
        return _restore_dict(_list(tree["__dict__"], path), live, templates, path)
    if "__module__" in tree:
        return _restore_module(tree, live, templates, path)
    if "__optimizer__" in tree:
        if not isinstance(live, torch.optim.Optimizer):
            raise StateError(f"{path}: a saved optimiser with no optimiser to load it into")
        live.load_state_dict(restore(tree["__optimizer__"], None, templates, path))
        return live
    if "__dataset__" in tree:
        return _restore_dataset(tree["__dataset__"], path)
    if "__param__" in tree:
        return _restore_param(tree["__param__"], path)
    if "__object__" in tree:
        return _restore_object(tree, live, templates, path)
    raise StateError(f"{path}: an unknown state node {sorted(tree)}")


def restore_attributes(obj, saved: dict, templates=(), path: str = "state") -> None:
    """Write the attributes :func:`attributes` saved back into ``obj`` (a live plugin or metric)."""
    if not isinstance(saved, dict):
        raise StateError(f"{path}: attributes must be a dict")
    for name, tree in saved.items():
        if not isinstance(name, str):
            raise StateError(f"{path}: an attribute name that is not a string")
        setattr(obj, name, restore(tree, getattr(obj, name, None), templates, f"{path}.{name}"))


def _list(value, path):
    if not isinstance(value, list):
        raise StateError(f"{path}: expected a list")
    return value


def _text(value, path):
    if not isinstance(value, str):
        raise StateError(f"{path}: expected a string")
    return value


def _tensor(value, path):
    if not isinstance(value, torch.Tensor):
        raise StateError(f"{path}: expected a tensor")
    return value


def _restore_dict(pairs, live, templates, path):
    target = live if isinstance(live, dict) else {}
    old = dict(target)
    target.clear()  # in place: a defaultdict keeps its default factory
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], PLAIN)):
            raise StateError(f"{path}: a malformed dict entry")
        key, value = pair
        target[key] = restore(value, old.get(key), templates, f"{path}[{key!r}]")
    return target


def _restore_module(tree, live, templates, path):
    cls_name, state = _text(tree["__module__"], path), tree.get("state")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise StateError(f"{path}: a model's state must map names to tensors")
    if isinstance(live, nn.Module) and _name(type(live)) == cls_name:
        module = live
    else:
        matching = [m for m in templates if _name(type(m)) == cls_name and set(m.state_dict()) == set(state)]
        if not matching:
            raise StateError(f"{path}: a saved {cls_name.rsplit('.', 1)[-1]} that matches no model of the strategy")
        module = copy.deepcopy(matching[0])
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise StateError(f"{path}: {str(err).splitlines()[0]}") from None
    return module


def _restore_dataset(node, path):
    if not isinstance(node, dict) or not isinstance(node.get("columns"), dict):
        raise StateError(f"{path}: a malformed buffer")
    columns, extra = node["columns"], _list(node.get("extra", []), path)
    for name in ("x", "y", "t", *extra):
        _tensor(columns.get(name), f"{path}.{name}")
    if len({len(columns[name]) for name in ("x", "y", "t", *extra)}) != 1:
        raise StateError(f"{path}: columns of different lengths")
    y, t = columns["y"].long(), columns["t"].long()
    # one task label for all, as the benchmarks' own data sets keep it (Avalanche concatenates those only with their kind)
    task_labels = int(t[0]) if len(t) and bool((t == t[0]).all()) else t.tolist()
    dataset = _make_taskaware_tensor_classification_dataset(columns["x"], y, targets=y.tolist(), task_labels=task_labels)
    attributes_ = [TensorDataAttribute(FlatData([list(columns[name])], discard_elements_not_in_indices=True),
                                       name=_text(name, path), use_in_getitem=True) for name in extra]
    return make_avalanche_dataset(dataset, data_attributes=attributes_) if attributes_ else dataset


def _restore_param(node, path):
    if not isinstance(node, dict):
        raise StateError(f"{path}: a malformed parameter")
    data = _tensor(node.get("data"), path)
    return ParamData(_text(node.get("name"), path), tuple(data.shape), init_tensor=data.clone(), device=data.device)


def _restore_object(tree, live, templates, path):
    cls_name, saved = _text(tree["__object__"], path), tree.get("attrs")
    if not isinstance(saved, dict):
        raise StateError(f"{path}: an object's attributes must be a dict")
    if live is not None and _name(type(live)) == cls_name:
        target = live
    else:
        cls = _value_classes().get(cls_name)
        if cls is None:
            raise StateError(f"{path}: a saved {cls_name} that the strategy has no place for")
        target = cls.__new__(cls)
    restore_attributes(target, saved, templates, path)
    return target
