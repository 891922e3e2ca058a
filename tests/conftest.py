import warnings

import numpy as np
import pytest
import torch

warnings.filterwarnings("ignore")


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


@pytest.fixture
def tiny_npz(tmp_path):
    x_train, y_train = make_images(4, 48, seed=0)
    x_test, y_test = make_images(4, 16, seed=1)
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=x_train, y_train=y_train.astype(np.uint8), x_test=x_test, y_test=y_test.astype(np.uint8))
    return str(path)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
