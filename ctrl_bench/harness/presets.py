"""Named settings, and the one training budget every method gets. ``quick``: minutes per method on a
CPU. ``paper``: the papers' training lengths, for a GPU.

A preset states once what every method shares: the network family and size (ctrl's pair; every
other method's classifier is its encoder plus a linear head), the **budget** (``epochs`` per
experience and ``first_epochs`` for the first one, the same for every method), the batch size and
Adam learning rate of the classifier methods, and the images a rehearsal method keeps. A scenario
family ("mnist", "cifar", "strokes") may change shared values (:data:`FAMILY_PRESETS`). A method's own values
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
# Shared values a scenario family changes. The memory holds only what ctrl's decoder can draw, and on
# CIFAR-10 and on generated strokes g needs a longer first experience before it draws anything, so
# every method gets that longer first experience. Strokes (validation split of synthetic:8, 2
# experiences, 3 seeds; the first classes after the second experience): a first experience of 60
# epochs (120 steps of ctrl) keeps 0.00–0.21 of them, 90 epochs 0.84–0.94, 120 epochs 0.93–0.97.
FAMILY_PRESETS = {"quick": {"cifar": {"first_epochs": 150}, "strokes": {"first_epochs": 120}},
                  "paper": {"cifar": {"epochs": 100}}}
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
