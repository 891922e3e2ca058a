"""Images the i-CTRL strategy publishes: replay grids, reconstructions, |Z Zᵀ| heatmaps."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.utils import make_grid

PADDING = 2


def to_unit_range(images: Tensor) -> Tensor:
    """Map images from [−1, 1] to [0, 1] for display."""
    return ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """(B, C, H, W) images in [−1, 1] → one (3, H', W') grid in [0, 1]."""
    return make_grid(to_unit_range(images), nrow=nrow, padding=PADDING, pad_value=1.0)


def labelled_rows(images: Tensor, row_labels: list[str], nrow: int) -> Tensor:
    """A grid of ``nrow`` images per row with ``row_labels[i]`` written left of row i (black on white);
    (3, H', W' + margin) in [0, 1]."""
    grid = image_grid(images, nrow)
    _, height, width = grid.shape
    cell = images.shape[-2] + PADDING
    font = ImageFont.load_default()
    margin = max(int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(label, font=font)) for label in row_labels) + 6
    canvas = Image.new("RGB", (width + margin, height), "white")
    pixels = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    canvas.paste(Image.fromarray(pixels), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for row, label in enumerate(row_labels):
        draw.text((3, PADDING + row * cell + cell // 2), label, fill="black", font=font, anchor="lm")
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


def replay_grid(images: Tensor, labels: Tensor) -> Tensor:
    """Decoded images sorted into one labelled row per class (``labels`` (B,), equally many per class)."""
    classes = torch.unique(labels, sorted=True).tolist()
    per_class = len(labels) // len(classes)
    order = torch.cat([(labels == c).nonzero().squeeze(1) for c in classes])
    return labelled_rows(images[order], [f"class {c}" for c in classes], per_class)


def reconstruction_grid(real: Tensor, decoded: Tensor, labels: Tensor) -> Tensor:
    """For every class in ``labels``: a row of real images x, and under it a row of g(f(x))."""
    classes = torch.unique(labels, sorted=True).tolist()
    per_class = min(int((labels == c).sum()) for c in classes)
    rows, names = [], []
    for c in classes:
        members = (labels == c).nonzero().squeeze(1)[:per_class]
        rows += [real[members], decoded[members]]
        names += [f"{c} real", f"{c} g(f(x))"]
    return labelled_rows(torch.cat(rows), names, per_class)


def similarity_heatmap(Z: Tensor, y: Tensor) -> Tensor:
    """|Z Zᵀ| of features sorted by class, as a (1, n, n) image in [0, 1]: block-diagonal when
    classes lie on (near) orthogonal subspaces."""
    order = torch.argsort(y, stable=True)
    Z = Z.detach().float()[order]
    return (Z @ Z.T).abs().clamp(0, 1).cpu()[None]
