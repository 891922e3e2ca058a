"""``digits``: the 1,797 handwritten 8 × 8 digits that scikit-learn ships (``sklearn.datasets.load_digits``,
10 classes, values 0–16, no download), upsampled bilinearly to 28 × 28 uint8 (0–255). It has no test
split of its own: 20 % of every class (rounded), drawn with ``numpy.random.default_rng(0)``
(:data:`TEST_SEED`, by :func:`~.registry.split_validation`), is the test set, the rest the training
set, the same for every run.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
from scipy import ndimage

from .registry import DataMissingError, register_scenario, split_validation

TEST_FRACTION, TEST_SEED = 0.2, 0


def digits_file(root: str = "") -> list[str]:
    """The file scikit-learn reads the digits from (hashed for provenance); it ships with scikit-learn."""
    spec = importlib.util.find_spec("sklearn")  # without importing scikit-learn
    if spec is None:
        raise DataMissingError("the digits scenario needs scikit-learn (pip install scikit-learn)")
    return [os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")]


@register_scenario("digits", experiences=(5, 10), files=digits_file, family="digits")
def load_digits(root: str, download: bool, with_test: bool):
    digits_file()  # a clear error without scikit-learn
    from sklearn.datasets import load_digits as sklearn_digits  # scikit-learn is imported only when the digits load

    data = sklearn_digits()
    x = ndimage.zoom(data.images, (1, 28 / 8, 28 / 8), order=1)  # bilinear, values stay in [0, 16]
    x = np.clip(np.rint(x * 255 / 16), 0, 255).astype(np.uint8)
    x_train, y_train, x_test, y_test = split_validation(x, data.target.astype(np.int64), TEST_FRACTION, TEST_SEED)
    return x_train, y_train, (x_test if with_test else None), (y_test if with_test else None)
