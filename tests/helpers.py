"""Data the tests generate (no test reads ../shared): small images of bars at class-specific angles."""

from pathlib import Path

import numpy as np


def make_images(n_classes: int, per_class: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, size, size) images: class c is a bright bar at a class-specific angle, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    images, labels = [], []
    for c in range(n_classes):
        angle = np.pi * c / n_classes
        for _ in range(per_class):
            a = angle + rng.normal(0, 0.08)
            dist = np.abs(xx * np.sin(a) - yy * np.cos(a))
            img = np.exp(-dist**2 / 4.0) * 230 + rng.normal(0, 12, (size, size))
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(c)
    return np.stack(images), np.array(labels, dtype=np.int64)


def write_npz(path: Path, n_classes: int = 4, train_per_class: int = 48, test_per_class: int = 16, **extra) -> str:
    """An npz scenario of :func:`make_images` (train seed 0, test seed 1) at ``path``; returns its path."""
    x_train, y_train = make_images(n_classes, train_per_class, seed=0)
    x_test, y_test = make_images(n_classes, test_per_class, seed=1)
    np.savez(path, x_train=x_train, y_train=y_train.astype(np.uint8), x_test=x_test, y_test=y_test.astype(np.uint8),
             **extra)
    return str(path)


def copy_of_the_code(dest: Path) -> Path:
    """A copy of the project's packages (baselines, ctrl_bench, scenarios) under ``dest``, to edit
    without touching the checkout; its shipped data is left out."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    for folder in ("baselines", "ctrl_bench", "scenarios"):
        shutil.copytree(root / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    return dest


REHEARSAL = {"replay", "der", "icarl", "gem", "agem", "gdumb"}  # their cells carry the images they keep


def record_file(out: Path, method: str, seed: int = 0, scenario: str = "tiny-2", memory: int = 40) -> Path:
    """Where a cell's record is: ``records/<scenario>/<method>[/mem<N>]/seed<s>.json``."""
    folder = Path(out) / "records" / scenario / method
    return (folder / f"mem{memory}" if method in REHEARSAL else folder) / f"seed{seed}.json"


def cells_said(text: str, scenario: str = "tiny-2") -> dict[str, str]:
    """What the console said about each cell, e.g. {"replay seed 0": "reused (record still valid)"}
    (a rehearsal cell's "(40 images)" left out of the key)."""
    import re

    found = re.findall(rf"^{re.escape(scenario)} (\w+)(?: \(\d+ images\))? (seed \d+): (.*)$", text, re.M)
    return {f"{method} {seed}": said for method, seed, said in found}
