"""``blobs:K``: K classes of generated 28 × 28 grey smooth random patterns (see :mod:`scenarios.synthetic`).

A class (from the class id alone) is a template: white noise blurred with a Gaussian of SIGMA pixels
(circularly, so the template tiles the plane), scaled to zero mean and unit variance. Every image is
its class's template shifted circularly by up to SHIFT pixels along each axis, with a contrast, a
mean brightness and additive noise, so that a class is a pattern of soft light and dark patches with
no edge, stroke or outline, and not its place or brightness.
"""

from __future__ import annotations

import numpy as np

SIZE = 28
SIGMA = 2.0  # pixels: the Gaussian blur of a template's white noise (patches of about 2·SIGMA pixels)
SHIFT = 5  # pixels: the largest circular shift of an image along each axis


def blob_class(c: int) -> np.ndarray:
    """Class ``c``'s template: (28, 28) smooth noise with zero mean and unit variance."""
    rng = np.random.default_rng([c, 303])
    frequency = np.fft.fftfreq(SIZE)
    gain = np.exp(-2 * (np.pi * SIGMA) ** 2 * (frequency[:, None] ** 2 + frequency[None, :] ** 2))  # a Gaussian's
    template = np.fft.ifft2(np.fft.fft2(rng.normal(0, 1, (SIZE, SIZE))) * gain).real
    return (template - template.mean()) / template.std()


def _shifted(template: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """(N, 28, 28): ``template`` rolled by each row (dy, dx) of ``shifts`` (N, 2), wrapping around."""
    index = np.arange(SIZE)
    rows = (index[None, :] - shifts[:, :1]) % SIZE
    cols = (index[None, :] - shifts[:, 1:]) % SIZE
    return template[rows[:, :, None], cols[:, None, :]]


def make_blobs(n_classes: int, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 28, 28) images and int64 labels; the templates depend on nothing but the class, the
    images' draws on ``seed``."""
    rng = np.random.default_rng(seed)
    images = np.empty((n_classes, per_class, SIZE, SIZE), np.float32)
    for c in range(n_classes):
        shifts = rng.integers(-SHIFT, SHIFT + 1, (per_class, 2))
        contrast, mean = rng.uniform(35, 60, (per_class, 1, 1)), rng.uniform(100, 155, (per_class, 1, 1))
        images[c] = mean + contrast * _shifted(blob_class(c), shifts) + rng.normal(0, 30, (per_class, SIZE, SIZE))
    return np.clip(images, 0, 255).astype(np.uint8).reshape(-1, SIZE, SIZE), np.repeat(np.arange(n_classes), per_class)
