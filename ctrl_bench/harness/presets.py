"""Named settings, and the one training budget every method gets. ``quick``: minutes per method on a
CPU. ``paper``: the papers' training lengths, for a GPU.

A preset states once what every method shares: the network family and size (ctrl's pair; every
other method's classifier is its encoder plus a linear head), the **budget** (``epochs`` per
experience and ``first_epochs`` for the first one, the same for every method and, in ``quick``, every
data set), the batch size and Adam learning rate of the classifier methods, and the images a rehearsal
method keeps. Only ``paper`` changes shared values by scenario family (:data:`FAMILY_PRESETS`: the
published lengths). A method's own values
(ctrl's game and batch size, by family) come from its module's ``preset(name, family, backbone)``;
``--option METHOD.NAME=VALUE`` overrides those, and the command's overrides (``--epochs``, …) the
shared ones. A method whose own epochs differ from the budget is labelled with its budget in every
table.
"""

from __future__ import annotations

import copy

from .config import ConfigError

PRESETS = {
    "quick": {"backbone": "crate", "size": "tiny", "feature_dim": 128, "epochs": 30, "first_epochs": None,
              "batch_size": 64, "lr": 1e-3, "mem_size": 500, "eval_batch_size": 1000},
    # i-CTRL's published lengths, for every method: 120 epochs per task on MNIST, 100 on CIFAR-10
    "paper": {"backbone": "crate", "size": "base", "feature_dim": 128, "epochs": 120, "first_epochs": None,
              "batch_size": 128, "lr": 1e-3, "mem_size": 2000, "eval_batch_size": 2000},
}
# Shared values a scenario family changes: only the paper's published lengths. The quick preset gives
# every data set the same budget; what ctrl's decoder needs before its memory can hold anything comes
# from ctrl's own rule (``first_steps``: its first experience's batch shrinks to give it enough steps),
# not from a longer first experience for one family. (Until issue 28 the quick preset gave CIFAR-10's
# first experience 150 epochs and generated strokes' 120, for every method; CIFAR-10 subset, validation,
# seed 0: ctrl 0.368 with 150, 0.363 with 30.)
FAMILY_PRESETS = {"paper": {"cifar": {"epochs": 100}}}
BUDGET = ("epochs", "first_epochs")


def preset_names() -> list[str]:
    return sorted(PRESETS)


def common_settings(name: str, overrides: dict, family: str | None = None) -> dict:
    """The preset's shared settings for a scenario of ``family``, then ``overrides`` (None values ignored)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())}")
    config = copy.deepcopy(PRESETS[name])
    config.update(FAMILY_PRESETS.get(name, {}).get(family, {}))
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


def budget_override(common: dict, own: dict) -> str | None:
    """How a method's own budget departs from the shared one ("4 epochs", "first 60 epochs"), or None."""
    def epochs(n):
        return f"{n} epoch{'' if n == 1 else 's'}"

    parts = []
    if own["epochs"] != common["epochs"]:
        parts.append(epochs(own["epochs"]))
    if own.get("first_epochs") != common["first_epochs"]:
        parts.append(f"first {epochs(own.get('first_epochs') or own['epochs'])}")
    return ", ".join(parts) or None
