"""``npz:PATH`` scenarios: x_train, y_train, x_test, y_test in one NumPy archive
(uint8 images (N, H, W) or (N, H, W, C), integer labels), the layout of shared/data/README.md, and
optionally ``family``, a string naming the kind of data ("mnist", "cifar"; inferred from the images
when absent) that picks a method's data-set settings."""

from __future__ import annotations

import os
import zipfile

import numpy as np

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


class MalformedNpzError(ValueError):
    pass


def load_npz(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such .npz file: {path}")
    if not zipfile.is_zipfile(path):  # np.load would take it for pickled data and say so
        raise MalformedNpzError(f"{path} is not a NumPy .npz archive (not a zip file); write one with "
                                f"numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise MalformedNpzError(f"{path} is not a readable NumPy .npz archive ({err})") from None
    with archive:
        missing = [k for k in REQUIRED if k not in archive.files]
        if missing:
            raise MalformedNpzError(f"{path} lacks the arrays {', '.join(missing)}; it needs {', '.join(REQUIRED)}")
        arrays = {k: archive[k] for k in REQUIRED}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8:
            raise MalformedNpzError(f"{path}: x_{split} must be uint8 images, got dtype {x.dtype}")
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
            raise MalformedNpzError(f"{path}: x_{split} must have shape (N, H, W) or (N, H, W, C) with C in "
                                    f"{{1, 3}}, got {x.shape}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise MalformedNpzError(f"{path}: y_{split} must be a 1-D integer array, got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise MalformedNpzError(f"{path}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise MalformedNpzError(f"{path}: train images {arrays['x_train'].shape[1:]} and test images "
                                f"{arrays['x_test'].shape[1:]} differ in shape")
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    if x_train.ndim == 4 and x_train.shape[-1] == 1:
        x_train, x_test = x_train[..., 0], x_test[..., 0]
    return x_train, arrays["y_train"], x_test, arrays["y_test"]


def npz_family(path: str) -> str | None:
    """The archive's ``family`` string, or None when it has none."""
    with np.load(path, allow_pickle=False) as archive:
        if "family" not in archive.files:
            return None
        family = archive["family"]
    if family.ndim != 0 or family.dtype.kind != "U":
        raise MalformedNpzError(f"{path}: family must be one string (e.g. numpy.savez(..., family='cifar')), "
                                f"got {family.dtype} {family.shape}")
    return str(family)
