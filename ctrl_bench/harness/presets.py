"""Named settings that every method shares. ``quick``: minutes per method on a CPU. ``paper``: the
longer runs of the papers, for a GPU. A method's own values (ctrl's game, its batch size and
training length, by scenario family) come from its module's ``preset(name, family, backbone)``
(``baselines/<method>.py``); ``--option METHOD.NAME=VALUE`` overrides those, and the command's
overrides (``--epochs``, ``--size``, …) these.
"""

from __future__ import annotations

import copy

from baselines import COMMON_OPTIONS, method_preset, resolve_options

# Every method runs on the CRATE family at ``size`` (ctrl's pair; the other methods' classifier is its
# encoder plus a linear head), with ``epochs`` of ``batch_size`` per experience unless its own preset
# says otherwise, Adam at ``lr``, and ``mem_size`` stored images for the rehearsal methods.
PRESETS = {
    "quick": {"backbone": "crate", "size": "tiny", "feature_dim": 128, "epochs": 4, "batch_size": 64, "lr": 1e-3,
              "mem_size": 500, "eval_batch_size": 1000},
    "paper": {"backbone": "crate", "size": "base", "feature_dim": 128, "epochs": 60, "batch_size": 128, "lr": 1e-3,
              "mem_size": 2000, "eval_batch_size": 2000},
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def common_settings(name: str, overrides: dict) -> dict:
    """The preset's shared settings, then ``overrides`` (None values ignored)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())}")
    config = copy.deepcopy(PRESETS[name])
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


def method_settings(method: str, name: str, family: str, common: dict, options: dict) -> dict:
    """Everything ``method`` runs with in preset ``name`` on a scenario of ``family``: its own preset
    values, then its ``--option`` values, the common ones it does not set for itself filled in from
    ``common``, and its remaining defaults (when its module says what they are)."""
    own = {**method_preset(method, name, family, common["backbone"]), **options}
    for key in COMMON_OPTIONS:
        own.setdefault(key, common[key])
    return resolve_options(method, own)
