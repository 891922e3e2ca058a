"""Split MNIST / Fashion-MNIST / CIFAR-10 / CIFAR-100, loaded through torchvision."""

from __future__ import annotations

import functools
import os

import numpy as np
from torchvision import datasets

from .registry import DataMissingError, register_scenario

# Files torchvision looks for under <data_root>/<folder>, to say what to put where.
EXPECTED_FILES = {
    datasets.MNIST: ("MNIST/raw", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    datasets.FashionMNIST: ("FashionMNIST/raw", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    datasets.CIFAR10: ("cifar-10-batches-py", ["data_batch_1", "…", "data_batch_5", "test_batch"]),
    datasets.CIFAR100: ("cifar-100-python", ["train", "test", "meta"]),
}


def load_torchvision(cls, root: str, download: bool, with_test: bool = True):
    """uint8 arrays from a torchvision data set (its test split only ``with_test``); a clear
    :class:`DataMissingError` when it is missing."""
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download) if with_test else None
    except Exception as err:  # torchvision raises RuntimeError / URLError / OSError, deep inside
        folder, files = EXPECTED_FILES[cls]
        how = ("it could not be downloaded" if download
               else "downloading is off (--no-download)")
        raise DataMissingError(
            f"{cls.__name__} is not under {os.path.abspath(root)} and {how} ({type(err).__name__}: {err}).\n"
            f"Put these files in {os.path.join(os.path.abspath(root), folder)}: {', '.join(files)} "
            f"(torchvision's layout), or run once with network access and without --no-download."
        ) from None
    if test is None:
        return np.asarray(train.data), np.asarray(train.targets), None, None
    return np.asarray(train.data), np.asarray(train.targets), np.asarray(test.data), np.asarray(test.targets)


def data_files(cls):
    """The files of ``cls``'s folder under a data root, all of which are hashed for provenance."""
    def files(root: str) -> list[str]:
        folder = os.path.join(root, EXPECTED_FILES[cls][0])
        return sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names)
    return files


# name, torchvision class, usual numbers of experiences, family
TORCHVISION_SPLITS = (("split_mnist", datasets.MNIST, (5, 10), "mnist"),
                      ("split_fmnist", datasets.FashionMNIST, (5, 10), "mnist"),
                      ("split_cifar10", datasets.CIFAR10, (5, 10), "cifar"),
                      ("split_cifar100", datasets.CIFAR100, (10, 20), "cifar"))
for _name, _cls, _experiences, _family in TORCHVISION_SPLITS:
    register_scenario(_name, experiences=_experiences, files=data_files(_cls), family=_family)(
        functools.partial(load_torchvision, _cls))
