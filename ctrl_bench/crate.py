"""CRATE encoder blocks (MSSA + ISTA) and CRATE-AE decoder blocks (Yu et al. 2023; Pai et al. 2024).

Tokens are rows: a batch of token sets has shape (B, N, d).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MSSA(nn.Module):
    """Multi-head subspace self-attention.

    For each head k with subspace basis U_k (d × p, p = d / K): W_k = Z U_k,
    head_k = softmax(W_k W_kᵀ / √p) W_k (row-wise softmax); the heads are concatenated and
    passed through an output linear layer. One shared projection per head: no separate
    query / key / value (they are all U_k).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.subspaces = nn.Linear(dim, dim, bias=False)  # [U_1 … U_K] stacked
        self.out = nn.Linear(dim, dim)

    def forward(self, Z: Tensor) -> Tensor:
        B, N, _ = Z.shape
        W = self.subspaces(Z).view(B, N, self.heads, self.head_dim).transpose(1, 2)  # (B, K, N, p)
        heads = F.scaled_dot_product_attention(W, W, W, scale=1.0 / math.sqrt(self.head_dim))
        return self.out(heads.transpose(1, 2).reshape(B, N, -1))


class ISTA(nn.Module):
    """One proximal step of non-negative sparse coding against dictionary D (d × d).

    ISTA(Z) = ReLU(Z + η (Z − Z Dᵀ) D − η λ), step η and threshold λ (defaults 0.1 / 0.1).
    """

    def __init__(self, dim: int, step: float = 0.1, threshold: float = 0.1):
        super().__init__()
        self.dictionary = nn.Parameter(torch.empty(dim, dim))
        nn.init.kaiming_uniform_(self.dictionary, a=math.sqrt(5))
        self.step, self.threshold = step, threshold

    def forward(self, Z: Tensor) -> Tensor:
        D = self.dictionary
        residual = Z - Z @ D.T
        return F.relu(Z + self.step * (residual @ D) - self.step * self.threshold)


class CrateEncoderLayer(nn.Module):
    """Z ← Z + MSSA(LN(Z)); Z ← ISTA(LN(Z)).  Parameters: 3d² + 5d."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_mssa, self.mssa = nn.LayerNorm(dim), MSSA(dim, heads)
        self.norm_ista, self.ista = nn.LayerNorm(dim), ISTA(dim)

    def forward(self, Z: Tensor) -> Tensor:
        Z = Z + self.mssa(self.norm_mssa(Z))
        return self.ista(self.norm_ista(Z))


class CrateDecoderLayer(nn.Module):
    """CRATE-AE layer, an approximate inverse of an encoder layer:
    Z ← LN(Z) Eᵀ (bias-free d × d); Z ← Z − MSSA(LN(Z)).  Parameters: 3d² + 5d."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_linear, self.linear = nn.LayerNorm(dim), nn.Linear(dim, dim, bias=False)
        self.norm_mssa, self.mssa = nn.LayerNorm(dim), MSSA(dim, heads)

    def forward(self, Z: Tensor) -> Tensor:
        Z = self.linear(self.norm_linear(Z))
        return Z - self.mssa(self.norm_mssa(Z))


def _check_patches(image_shape: tuple[int, int, int], patch: int) -> int:
    _, H, W = image_shape
    if H % patch or W % patch:
        raise ValueError(f"image size {H}×{W} is not divisible by patch size {patch}")
    return (H // patch) * (W // patch)


class CrateEncoder(nn.Module):
    """f: image → P×P patches → tokens (+ class token, positional embedding) → CRATE layers
    → class token → LN → linear → L2-normalised feature on the unit sphere."""

    def __init__(self, image_shape, feature_dim: int, dim: int, depth: int, heads: int, patch: int):
        super().__init__()
        self.feature_dim = feature_dim
        self.normalize = True  # False: raw features, for classifier backbones of the baselines
        C = image_shape[0]
        n_tokens = _check_patches(image_shape, patch)
        self.patch_embed = nn.Conv2d(C, dim, kernel_size=patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.02)
        self.layers = nn.Sequential(*[CrateEncoderLayer(dim, heads) for _ in range(depth)])
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, feature_dim))

    def forward(self, X: Tensor) -> Tensor:
        tokens = self.patch_embed(X).flatten(2).transpose(1, 2)  # (B, N, d)
        cls = self.class_token.expand(len(X), -1, -1)
        Z = self.layers(torch.cat([cls, tokens], 1) + self.position)
        features = self.head(Z[:, 0])
        return F.normalize(features.float(), dim=-1) if self.normalize else features


class CrateDecoder(nn.Module):
    """g: feature → N tokens (+ positional embedding) → CRATE-AE layers → LN → per-token
    linear to P²·C pixels → un-patchify → tanh image in [−1, 1]."""

    def __init__(self, image_shape, feature_dim: int, dim: int, depth: int, heads: int, patch: int):
        super().__init__()
        self.image_shape, self.patch, self.dim = tuple(image_shape), patch, dim
        self.n_tokens = _check_patches(image_shape, patch)
        self.to_tokens = nn.Linear(feature_dim, self.n_tokens * dim)
        self.position = nn.Parameter(torch.randn(1, self.n_tokens, dim) * 0.02)
        self.layers = nn.Sequential(*[CrateDecoderLayer(dim, heads) for _ in range(depth)])
        self.to_pixels = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, patch * patch * image_shape[0]))

    def forward(self, Z: Tensor) -> Tensor:
        tokens = self.to_tokens(Z).view(len(Z), self.n_tokens, self.dim) + self.position
        pixels = self.to_pixels(self.layers(tokens))  # (B, N, P²C)
        _, H, W = self.image_shape
        image = F.fold(pixels.transpose(1, 2), (H, W), kernel_size=self.patch, stride=self.patch)
        return torch.tanh(image)
