"""``textures:K``: K classes of generated 28 × 28 grey textures (see :mod:`scenarios.synthetic`).

A class (from the class id alone) is two sinusoidal gratings, each with its orientation, period
(3.5–10 pixels) and phase, and a pattern that combines them: a plaid (their sum), checks (the sign of
their product, softened) or a lattice of dots (the positive part of their product). Every image
draws each grating's phase (up to ±0.55 π from the class's: a random phase with a class-specific
centre, so that class means on raw pixels keep some structure), a small orientation jitter (±8°), a
contrast, a mean brightness and additive noise, so that classes share orientations, periods and
patterns, and no pixel names a class.
"""

from __future__ import annotations

import numpy as np

SIZE = 28
PATTERNS = ("plaid", "checks", "dots")


def texture_class(c: int) -> dict:
    """Class ``c``'s texture: its pattern, two gratings' orientations, angular frequencies and phases."""
    rng = np.random.default_rng([c, 101])
    return {"pattern": PATTERNS[rng.integers(len(PATTERNS))], "angle": rng.uniform(0, np.pi, 2),
            "frequency": 2 * np.pi / rng.uniform(3.5, 10, 2), "phase": rng.uniform(0, 2 * np.pi, 2)}


def _texture(pattern, a, b):
    """The pattern of gratings ``a`` and ``b`` (values in [−1, 1]), in [−1, 1]."""
    if pattern == "plaid":
        return (a + b) / 2
    if pattern == "checks":
        return np.tanh(3 * a * b)
    return 2 * np.maximum(a * b, 0) ** 0.5 - 1


def make_textures(n_classes: int, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 28, 28) images and int64 labels; the textures depend on nothing but the class, the
    images' draws on ``seed``."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] - (SIZE - 1) / 2
    rng = np.random.default_rng(seed)
    images = np.empty((n_classes, per_class, SIZE, SIZE), np.float32)
    for c in range(n_classes):
        t = texture_class(c)
        angle = t["angle"] + rng.uniform(-1, 1, (per_class, 1)) * np.radians(8)  # both gratings turn together
        phase = t["phase"] + rng.uniform(-0.55, 0.55, (per_class, 2)) * np.pi
        angle, phase = angle[..., None, None], phase[..., None, None]  # (N, 2, 1, 1)
        a, b = np.cos(t["frequency"][:, None, None] * (xx * np.cos(angle) + yy * np.sin(angle)) + phase).transpose(1, 0, 2, 3)
        contrast, mean = rng.uniform(40, 100, (per_class, 1, 1)), rng.uniform(90, 160, (per_class, 1, 1))
        images[c] = mean + contrast * _texture(t["pattern"], a, b) + rng.normal(0, 30, (per_class, SIZE, SIZE))
    return np.clip(images, 0, 255).astype(np.uint8).reshape(-1, SIZE, SIZE), np.repeat(np.arange(n_classes), per_class)
