"""Images the i-CTRL strategy publishes: replay grids, reconstructions, |Z Zᵀ| heatmaps."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.utils import make_grid


def to_unit_range(images: Tensor) -> Tensor:
    """Map images from [−1, 1] to [0, 1] for display."""
    return ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """(B, C, H, W) images in [−1, 1] → one (3, H', W') grid in [0, 1]."""
    return make_grid(to_unit_range(images), nrow=nrow, padding=2, pad_value=1.0)


def reconstruction_grid(real: Tensor, decoded: Tensor) -> Tensor:
    """Real images on the top row, their reconstructions g(f(x)) below."""
    return image_grid(torch.cat([real, decoded]), nrow=len(real))


def similarity_heatmap(Z: Tensor, y: Tensor) -> Tensor:
    """|Z Zᵀ| of features sorted by class, as a (1, n, n) image in [0, 1]: block-diagonal when
    classes lie on (near) orthogonal subspaces."""
    order = torch.argsort(y, stable=True)
    Z = Z.detach().float()[order]
    return (Z @ Z.T).abs().clamp(0, 1).cpu()[None]
