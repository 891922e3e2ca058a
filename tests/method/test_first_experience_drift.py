"""benchmarks/first_experience_drift.py: the share of a class's spread its stored directions hold."""

import importlib.util
import sys
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_script():
    sys.path.insert(0, str(BENCHMARKS))  # it imports its sibling validation_split
    try:
        spec = importlib.util.spec_from_file_location("first_experience_drift", BENCHMARKS / "first_experience_drift.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_the_spread_held_is_the_share_of_squared_offsets_along_the_stored_directions():
    spread_held = load_script().spread_held
    axes = torch.eye(6)
    signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    # class 3 about e0 with offsets ±0.3 along e1 and ±0.1 along e2; class 5 about e3, offsets ±0.2 along e4
    a = axes[0] + signs @ torch.stack([0.3 * axes[1], 0.1 * axes[2]])
    b = axes[3] + signs[:, :1] * 0.2 * axes[4]
    Z, y = torch.cat([a, b]), torch.tensor([3] * 4 + [5] * 4)
    means = torch.stack([axes[0], axes[3]])
    assert abs(spread_held(Z, y, [3, 5], means, torch.stack([axes[1:3], axes[4:6]])) - 1) < 1e-6
    along_e1 = spread_held(Z, y, [3], means[:1], axes[1:2][None])
    assert abs(along_e1 - 0.09 / (0.09 + 0.01)) < 1e-6
    assert spread_held(Z, y, [5], means[1:], axes[5:6][None]) == 0  # nothing of class 5 along e5
    # both classes at once: e1 holds 4·0.09 of class 3's 4·0.10, e4 all of class 5's 4·0.04
    both = spread_held(Z, y, [3, 5], means, torch.stack([axes[1:2], axes[4:5]]))
    assert abs(both - (0.36 + 0.16) / (0.40 + 0.16)) < 1e-6
