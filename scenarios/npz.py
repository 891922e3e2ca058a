"""``npz:PATH`` scenarios: x_train, y_train, x_test, y_test in one NumPy archive
(uint8 images (N, H, W) or (N, H, W, C), integer labels), the layout of shared/data/README.md, and
optionally ``family``, a string naming the kind of data ("mnist", "cifar"; inferred from the images
when absent) that picks a method's data-set settings."""

from __future__ import annotations

import os
import stat
import zipfile
import zlib

import numpy as np

from .labels import ScenarioError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


class MalformedNpzError(ScenarioError):
    pass


def check_file(path: str) -> None:
    """A regular, readable file at ``path``, or one line saying what is there instead."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        broken = " (a symbolic link to a missing file)" if os.path.islink(path) else ""
        raise FileNotFoundError(f"no such .npz file: {path}{broken}") from None
    except OSError as err:  # a symbolic link loop (ELOOP), a name too long, …
        raise MalformedNpzError(f"{path} cannot be opened: {err.strerror or err}") from None
    if stat.S_ISDIR(info.st_mode):
        raise MalformedNpzError(f"{path} is a folder, not an .npz file; give the archive's path")
    if not stat.S_ISREG(info.st_mode):
        raise MalformedNpzError(f"{path} is not a regular file (a FIFO, socket or device); give an .npz file")
    try:
        with open(path, "rb") as fh:
            fh.read(4)
    except OSError as err:
        raise MalformedNpzError(f"{path} cannot be read: {err.strerror or err}") from None


def _array(archive, path: str, name: str) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise MalformedNpzError(f"{path}: array {name} holds Python objects (dtype object), which are never "
                                    f"read (reading them would run pickled code); store numbers") from None
        raise MalformedNpzError(f"{path}: array {name} cannot be read ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as err:
        raise MalformedNpzError(f"{path}: array {name} cannot be read ({type(err).__name__}: {err})") from None


def load_npz(path: str, with_test: bool = True):
    """x_train, y_train, x_test, y_test of the archive; without ``with_test`` the test arrays are not
    read (None), so that a validation run cannot see them."""
    check_file(path)
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
        splits = ("train", "test") if with_test else ("train",)
        arrays = {f"{a}_{split}": _array(archive, path, f"{a}_{split}") for split in splits for a in "xy"}
    for split in splits:
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
    if with_test and arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise MalformedNpzError(f"{path}: train images {arrays['x_train'].shape[1:]} and test images "
                                f"{arrays['x_test'].shape[1:]} differ in shape")
    x_train, x_test = arrays["x_train"], arrays.get("x_test")
    if x_train.ndim == 4 and x_train.shape[-1] == 1:
        x_train, x_test = x_train[..., 0], (None if x_test is None else x_test[..., 0])
    return x_train, arrays["y_train"], x_test, arrays.get("y_test")


def npz_family(path: str) -> str | None:
    """The archive's ``family`` string, or None when it has none."""
    with np.load(path, allow_pickle=False) as archive:
        if "family" not in archive.files:
            return None
        family = _array(archive, path, "family")
    if family.ndim != 0 or family.dtype.kind != "U":
        raise MalformedNpzError(f"{path}: family must be one string (e.g. numpy.savez(..., family='cifar')), "
                                f"got {family.dtype} {family.shape}")
    return str(family)
