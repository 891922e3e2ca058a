"""Named settings. ``quick``: minutes per method on a CPU. ``paper``: the published settings
(i-CTRL: DCGAN pair at w = 64 with DCGAN initialisation, alternating player updates, d = 128,
ε² = 1, Adam 1e-4 β = (0.5, 0.999), 120 / 100 epochs, λ = 10 / 8, γ = 1, 12 directions × 30 / 40
prototypes, 15 components), for a GPU.

``quick`` plays the game with simultaneous updates from PyTorch's default initialisation: with its
~60 steps per experience that gave the best memory-only accuracy on the MNIST subset (seed 0 on
CPU, Last / Avg: simultaneous + default 0.628 / 0.770, simultaneous + DCGAN 0.618 / 0.732,
alternating + default 0.580 / 0.699, alternating + DCGAN 0.419 / 0.654)."""

from __future__ import annotations

import copy

PRESETS = {
    "quick": {
        "backbone": "conv", "size": "tiny", "feature_dim": 128, "epochs": 4, "batch_size": 64, "lr": 1e-3,
        "mem_size": 500, "eval_batch_size": 1000,
        "ctrl": {"epochs": 15, "batch_size": 256, "lr": 1e-4, "eps2": 1.0, "new_weight": 1.0, "gamma": 100.0,
                 "alternate": False, "init": "default", "replay_per_class": 64, "n_directions": 12,
                 "n_prototypes": 360, "n_components": 12},
    },
    "paper": {
        "backbone": "conv", "size": "base", "feature_dim": 128, "epochs": 60, "batch_size": 128, "lr": 1e-3,
        "mem_size": 2000, "eval_batch_size": 2000,
        "ctrl": {"epochs": 120, "batch_size": 2048, "lr": 1e-4, "eps2": 1.0, "new_weight": 10.0, "gamma": 1.0,
                 "alternate": True, "init": "dcgan",
                 "n_directions": 12, "n_prototypes": 360, "n_components": 15},
    },
}

# Dataset-specific changes in the paper preset (i-CTRL's CIFAR-10 settings).
PAPER_CIFAR = {"ctrl": {"epochs": 100, "batch_size": 1600, "new_weight": 8.0, "n_prototypes": 480, "encoder_steps": 2}}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def resolve_preset(name: str, scenario: str, overrides: dict) -> dict:
    """The preset's settings for ``scenario``, then ``overrides`` (None values ignored; a "ctrl" key merges)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())}")
    config = copy.deepcopy(PRESETS[name])
    if name == "paper" and "cifar" in scenario:
        config["ctrl"].update(PAPER_CIFAR["ctrl"])
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "ctrl":
            config["ctrl"].update({k: v for k, v in value.items() if v is not None})
        else:
            config[key] = value
    return config
