"""Generated scenarios, ``NAME:K`` (or ``NAME:K:TRAIN:TEST``): K classes of generated 28 × 28 grey
images, no download, for many-class sequences on any machine (tests, benchmarks). :data:`GENERATED`
names each kind and its family; all of them have 100 training and 20 test images per class unless
TRAIN and TEST say otherwise, classes that depend on nothing but the class id, and training and test
images drawn with the seeds 0 and 1.

- ``synthetic:K`` (family "strokes", here): each class is a set of four strokes (random angle, length
  and place, from a class seed), and each image keeps each stroke with probability 0.75, moves the
  whole by up to 3 pixels, and adds noise, so that classes share strokes and a stroke alone does not
  name its class.
- ``textures:K`` (family "textures", :mod:`scenarios.textures`): oriented gratings, checks and dots.
- ``shapes:K`` (family "shapes", :mod:`scenarios.shapes`): polygons, filled or outlined.
- ``blobs:K`` (family "blobs", :mod:`scenarios.blobs`): smooth random patterns (blurred noise), shifted.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .blobs import make_blobs
from .labels import ScenarioError
from .shapes import make_shapes
from .textures import make_textures

SIZE = 28
STROKES = 4


def _stroke(rng, yy, xx):
    angle, length = rng.uniform(0, np.pi), rng.uniform(6, 14)
    cy, cx = rng.uniform(7, SIZE - 7, size=2)
    along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    across = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    return np.exp(-across**2 / 2.0) * (np.abs(along) < length / 2)


def make_strokes(n_classes: int, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 28, 28) images and int64 labels; the classes' strokes depend on nothing but the class,
    the images on ``seed`` (train and test sets: different seeds, the same classes)."""
    yy, xx = np.mgrid[0:SIZE + 6, 0:SIZE + 6] - 3.0
    classes = [[_stroke(np.random.default_rng([c, s]), yy, xx) for s in range(STROKES)] for c in range(n_classes)]
    rng = np.random.default_rng(seed)
    images = np.empty((n_classes * per_class, SIZE, SIZE), np.uint8)
    for c, strokes in enumerate(classes):
        for i in range(per_class):
            keep = rng.random(STROKES) < 0.75
            keep[rng.integers(STROKES)] = True
            canvas = sum(s for s, k in zip(strokes, keep) if k)
            dy, dx = rng.integers(0, 7, size=2)
            img = canvas[dy:dy + SIZE, dx:dx + SIZE] * rng.uniform(150, 230) + rng.normal(0, 30, (SIZE, SIZE))
            images[c * per_class + i] = np.clip(img, 0, 255)
    return images, np.repeat(np.arange(n_classes), per_class)


class Generated(NamedTuple):
    make: Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]  # (classes, per class, seed) → images, labels
    family: str


# name → its generator and family ("strokes": grey images like MNIST; the presets give its first
# experience a longer budget)
GENERATED = {"synthetic": Generated(make_strokes, "strokes"), "textures": Generated(make_textures, "textures"),
             "shapes": Generated(make_shapes, "shapes"), "blobs": Generated(make_blobs, "blobs")}


def generated(name: str) -> Generated | None:
    """The generator of a ``NAME:…`` scenario (also of a bare or malformed one, for :func:`parse` to
    explain), or None for any other scenario."""
    return GENERATED.get(name.split(":")[0])


def parse(name: str) -> tuple[int, int, int]:
    """"synthetic:40" → (40, 100, 20); "textures:40:200:50" → (40, 200, 50); ScenarioError otherwise."""
    prefix, *parts = name.split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if not 1 <= len(numbers) <= 3 or min(numbers) < 1 or numbers[0] < 2:
        raise ScenarioError(f"{name!r}: expected {prefix}:CLASSES[:TRAIN:TEST] with at least 2 classes, "
                            f"e.g. {prefix}:40 or {prefix}:40:100:20")
    classes, train, test = (numbers + [100, 20][len(numbers) - 1:])[:3]
    return classes, train, test


def load(name: str):
    """x_train, y_train, x_test, y_test of a generated scenario (training images: seed 0, test: seed 1)."""
    classes, train, test = parse(name)
    make = GENERATED[name.split(":")[0]].make
    return (*make(classes, train, seed=0), *make(classes, test, seed=1))
