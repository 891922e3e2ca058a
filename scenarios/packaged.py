"""Data that ships with ctrl-bench (``scenarios/data/``, with its provenance and licence), so that
the main command runs anywhere: ``mnist_5k``, 5,000 MNIST training images and the full test set."""

from __future__ import annotations

from pathlib import Path

from .npz import load_npz
from .registry import register_scenario

MNIST_5K = Path(__file__).resolve().parent / "data" / "mnist-5k.npz"


@register_scenario("mnist_5k", experiences=(5, 10), files=lambda root: [str(MNIST_5K)], family="mnist")
def mnist_5k(root: str, download: bool, with_test: bool):
    return load_npz(str(MNIST_5K), with_test)
