"""``shapes:K``: K classes of generated 28 × 28 grey polygons (see :mod:`scenarios.synthetic`).

A class (from the class id alone) is a polygon of 3–8 vertices at class-drawn angles (jittered around
even spacing) and radii (0.3–1, the largest 1), star-shaped around its centre. Every image draws a scale (0.6–1 of
11 pixels), a rotation (±20°), a translation (±2.5 pixels), filled or outlined, an intensity and
additive noise, so that a class is its outline, not its place, size or brightness.
"""

from __future__ import annotations

import numpy as np

SIZE = 28
RADIUS = 11.0  # pixels from the centre to the farthest vertex, at scale 1


def shape_class(c: int) -> np.ndarray:
    """Class ``c``'s polygon: (n, 2) vertices (x, y) in units of RADIUS, by increasing angle in [0, 2π)."""
    rng = np.random.default_rng([c, 202])
    n = int(rng.integers(3, 9))
    angle = ((np.arange(n) + rng.uniform(-0.2, 0.2, n)) * 2 * np.pi / n + rng.uniform(0, 2 * np.pi)) % (2 * np.pi)
    radius = rng.uniform(0.3, 1.0, n)
    radius /= radius.max()
    angle, radius = angle[np.argsort(angle)], radius[np.argsort(angle)]
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)


def _draw(polygon: np.ndarray, u: np.ndarray, scale: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Anti-aliased polygons in [0, 1], (N, P): the pixels at ``u`` (N, 2, P) in the polygon's units, ``scale``
    (N, 1) pixels per unit; each filled, or outlined about 2 pixels wide. A pixel's distance to the edge
    is its distance to the line of the edge that its direction from the centre meets (the polygon is
    star-shaped around its centre: the angles between vertices are under π)."""
    edge = np.roll(polygon, -1, 0) - polygon
    normal = np.stack([edge[:, 1], -edge[:, 0]], 1) / np.linalg.norm(edge, axis=1, keepdims=True)  # outward
    corner = np.arctan2(polygon[:, 1], polygon[:, 0]) % (2 * np.pi)
    i = np.searchsorted(corner, np.arctan2(u[:, 1], u[:, 0]) % (2 * np.pi), "right") - 1  # −1: the last edge
    inside = scale * ((normal * polygon).sum(1)[i] - normal[i, 0] * u[:, 0] - normal[i, 1] * u[:, 1])  # pixels
    return np.where(filled[:, None], 1 / (1 + np.exp(-2 * inside)), np.exp(-inside**2 / (2 * 0.75**2)))


def make_shapes(n_classes: int, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 28, 28) images and int64 labels; the polygons depend on nothing but the class, the
    images' draws on ``seed``."""
    xy = np.mgrid[0:SIZE, 0:SIZE][::-1].reshape(2, -1).astype(np.float32)  # (2, P): each pixel's x, y
    rng = np.random.default_rng(seed)
    images = np.empty((n_classes, per_class, SIZE * SIZE), np.float32)
    for c in range(n_classes):
        scale = RADIUS * rng.uniform(0.6, 1.0, (per_class, 1))
        turn = np.radians(rng.uniform(-20, 20, per_class))
        unturn = np.array([[np.cos(turn), np.sin(turn)], [-np.sin(turn), np.cos(turn)]]).transpose(2, 0, 1)
        centre = (SIZE - 1) / 2 + rng.uniform(-2.5, 2.5, (per_class, 2, 1))
        u = (unturn @ (xy - centre) / scale[:, :, None]).astype(np.float32)  # the pixels in the polygon's units
        filled = rng.random(per_class) < 0.5
        intensity = rng.uniform(150, 230, (per_class, 1))
        images[c] = _draw(shape_class(c), u, scale, filled) * intensity + rng.normal(0, 30, (per_class, SIZE * SIZE))
    return np.clip(images, 0, 255).astype(np.uint8).reshape(-1, SIZE, SIZE), np.repeat(np.arange(n_classes), per_class)
