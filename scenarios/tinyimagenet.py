"""Split TinyImageNet: 200 classes of 64 × 64 colour images, 500 training and 50 test images each
(the official validation set is its test set), through Avalanche's ``TinyImagenet`` data set, which
downloads ``tiny-imagenet-200.zip`` (MD5-checked) into ``<data_root>/tinyimagenet/`` when it is not
there. The images are read into one uint8 array (1.2 GB for the training set)."""

from __future__ import annotations

import os

import numpy as np

from .registry import DataMissingError, register_scenario

FOLDER = "tinyimagenet"
LAYOUT = ("tiny-imagenet-200/wnids.txt", "tiny-imagenet-200/train/<wnid>/images/*.JPEG",
          "tiny-imagenet-200/val/images/*.JPEG", "tiny-imagenet-200/val/val_annotations.txt")


def _arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([np.asarray(dataset.loader(path).convert("RGB"), dtype=np.uint8) for path in dataset.data])
    return images, np.asarray(dataset.targets, dtype=np.int64)


def files(root: str) -> list[str]:
    folder = os.path.join(root, FOLDER, "tiny-imagenet-200")
    return sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names)


@register_scenario("split_tinyimagenet", experiences=(10, 20), files=files, family="tinyimagenet")
def split_tinyimagenet(root: str, download: bool, with_test: bool):
    from avalanche.benchmarks.datasets import TinyImagenet  # its downloader and folders: only when this scenario loads

    where = os.path.join(os.path.abspath(root), FOLDER)
    try:
        train = TinyImagenet(where, train=True, download=download)
        test = TinyImagenet(where, train=False, download=download) if with_test else None
    except Exception as err:  # Avalanche raises whatever the download or the layout raised
        how = "it could not be downloaded" if download else "downloading is off (--no-download)"
        raise DataMissingError(f"TinyImageNet is not under {where} and {how} ({type(err).__name__}: {err}).\n"
                               f"Put tiny-imagenet-200.zip's contents there ({', '.join(LAYOUT)}), or run once with "
                               "network access and without --no-download.") from None
    x_train, y_train = _arrays(train)
    if test is None:
        return x_train, y_train, None, None
    return (x_train, y_train, *_arrays(test))
