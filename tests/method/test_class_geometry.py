"""benchmarks/class_geometry.py: its per-class figures on features of known shape."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from ctrl_bench.memory import FeatureMemory

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "class_geometry.py"


def load_script():
    spec = importlib.util.spec_from_file_location("class_geometry", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_class_in_two_equal_directions_has_effective_rank_two_and_no_drift_on_its_own_features():
    torch.manual_seed(0)
    d = 16
    axes = torch.eye(d)
    # one class around e0, spread equally along e1 and e2 only; another around e3, spread along e4
    a = F.normalize(axes[0] + 0.1 * torch.sign(torch.randn(400, 2)) @ axes[1:3], dim=1)
    b = F.normalize(axes[3] + 0.1 * torch.randn(400, 1) @ axes[4:5], dim=1)
    memory = FeatureMemory(n_directions=4, n_prototypes=8)
    memory.store(torch.cat([a, b]), torch.tensor([0] * 400 + [1] * 400))
    rows = load_script().class_rows(SimpleNamespace(memory=memory), {0: a, 1: b})
    cells = [[float(x) for x in row.strip("| ").split(" | ")] for row in rows]
    (c0, var0, in_r0, erank0, drift0, off0), (c1, _, _, erank1, drift1, _) = cells
    assert (c0, c1) == (0, 1)
    assert abs(erank0 - 2) < 0.1 and abs(erank1 - 1) < 0.1  # two equal directions, one direction
    assert in_r0 > 0.99 and off0 < 0.01 and drift0 < 1e-3 and drift1 < 1e-3
    assert abs(var0 - float(a.var(0, unbiased=False).sum())) < 0.01
    moved = F.normalize(a + 0.2 * axes[5], dim=1)  # its real features now lie off the stored mean
    drift = float(load_script().class_rows(SimpleNamespace(memory=memory), {0: moved, 1: b})[0].split(" | ")[4])
    assert abs(drift - float((a.mean(0) - moved.mean(0)).norm())) < 1e-3
