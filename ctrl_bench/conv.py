"""The DCGAN-style convolutional encoder / decoder pair of the CTRL and i-CTRL papers.

4 × 4 kernels, no convolution bias, 32 × 32 images. Other sizes (28 × 28 MNIST) are
resized to 32 × 32 on the way in and back on the way out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NATIVE_SIZE = 32


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN initialisation of the reference code: conv weights N(0, 0.02), BatchNorm scale
    N(1, 0.02) and shift 0 (use as ``module.apply(dcgan_init)``). With it the decoder of the
    rate-reduction game reaches image-like outputs in fewer steps than from PyTorch's default."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ConvEncoder(nn.Module):
    """f: conv s2 C→w, LReLU; conv s2 w→2w, BN, LReLU; conv s2 2w→4w, BN, LReLU;
    conv 4×4 valid 4w→d; flatten; L2-normalise (paper: w = 64)."""

    def __init__(self, image_shape, feature_dim: int, width: int):
        super().__init__()
        self.feature_dim = feature_dim
        self.normalize = True  # False: raw features, for classifier backbones of the baselines
        C, H, W = image_shape
        self.resize = (H, W) != (NATIVE_SIZE, NATIVE_SIZE)
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(C, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, feature_dim, 4, 1, 0, bias=False), nn.Flatten(),
        )

    def forward(self, X: Tensor) -> Tensor:
        if self.resize:
            X = F.interpolate(X, size=(NATIVE_SIZE, NATIVE_SIZE), mode="bilinear", align_corners=False)
        features = self.net(X)
        return F.normalize(features if features.dtype == torch.float64 else features.float(), dim=-1) if self.normalize \
            else features


class ConvDecoder(nn.Module):
    """g: transposed convs d→8w (4×4) → 4w (8×8) → 2w (16×16) → C (32×32), BN + ReLU, tanh
    (paper: w = 64, i.e. widths 512 → 256 → 128)."""

    def __init__(self, image_shape, feature_dim: int, width: int):
        super().__init__()
        C, H, W = image_shape
        self.out_size = (H, W)
        w = width
        self.net = nn.Sequential(
            nn.Unflatten(1, (feature_dim, 1, 1)),
            nn.ConvTranspose2d(feature_dim, 8 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU(),
            nn.ConvTranspose2d(8 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, C, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, Z: Tensor) -> Tensor:
        X = self.net(Z)
        if self.out_size != (NATIVE_SIZE, NATIVE_SIZE):
            X = F.interpolate(X, size=self.out_size, mode="bilinear", align_corners=False).clamp(-1, 1)
        return X
