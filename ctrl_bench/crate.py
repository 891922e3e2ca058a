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


class _PatchEmbedding(torch.autograd.Function):
    """Conv2d with kernel = stride = P (non-overlapping patches) whose input gradient is a matrix
    product over the patches: Xgrad[patch] = Σ_c grad[c] W[c], the numbers of oneDNN's convolution
    backward, which for this shape is ~8× slower on a CPU and dominates i-CTRL's step there (the
    decoded images' features are differentiated through f). Forward and weight gradient are the
    convolution's own."""

    @staticmethod
    def forward(ctx, X: Tensor, weight: Tensor, bias: Tensor, patch: int) -> Tensor:
        ctx.save_for_backward(X, weight)
        ctx.patch = patch
        return F.conv2d(X, weight, bias, stride=patch)

    @staticmethod
    def backward(ctx, grad: Tensor):
        X, weight = ctx.saved_tensors
        P, (B, C, H, W) = ctx.patch, X.shape
        grad_X = grad_weight = grad_bias = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad, X, weight, [weight.shape[0]], [P, P], [0, 0], [1, 1], False, [0, 0], 1,
                [False, ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
        if ctx.needs_input_grad[0]:
            patches = grad.flatten(2).transpose(1, 2) @ weight.flatten(1)  # (B, N, C·P·P)
            grad_X = patches.reshape(B, H // P, W // P, C, P, P).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)
        return grad_X, grad_weight, grad_bias, None


def patch_embedding(X: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(X)`` for a patch embedding (kernel = stride, no padding): on a CPU without autocast
    through :class:`_PatchEmbedding` (the same numbers, a faster input gradient), else the convolution."""
    if X.device.type == "cpu" and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"):
        return _PatchEmbedding.apply(X, conv.weight, conv.bias, conv.stride[0])
    return conv(X)


def _check_patches(image_shape: tuple[int, int, int], patch: int) -> int:
    _, H, W = image_shape
    if H % patch or W % patch:
        raise ValueError(f"image size {H}×{W} is not divisible by patch size {patch}")
    return (H // patch) * (W // patch)


def sincos_position_embedding(grid: int, dim: int) -> Tensor:
    """Fixed 2-D sin-cos position embedding (as in MAE / CRATE-MAE) for a grid × grid token layout,
    shape (grid², dim): half the channels encode the row, half the column, each as sin and cos at
    geometric frequencies 1/10000^(2i/(dim/2))."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs dim divisible by 4, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                                indexing="ij")
    parts = []
    for coord in (rows.flatten(), cols.flatten()):
        angles = coord[:, None] * freqs[None]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, 1).float()


POOLS = ("flatten", "mean", "cls")
POSITIONS = ("sincos", "learned")


class CrateEncoder(nn.Module):
    """f: image → P×P patches → tokens (+ positional embedding) → CRATE layers → LN → readout
    → linear → L2-normalised feature on the unit sphere.

    ``pool`` is the readout: "flatten" (every token, concatenated: the linear head sees where each
    patch is, and the feature's rank is not capped by the token width d), "mean" (mean token) or
    "cls" (a class token, as ViT). ``position``: fixed 2-D "sincos" or "learned" embeddings.
    On the MNIST subset a flatten readout with sin-cos positions lifts an MCR²-trained tiny encoder's
    nearest-subspace accuracy from 0.56–0.66 (cls) and 0.79 (mean) to 0.93 (docs/ictrl.md, "How i-CTRL
    keeps its old classes: the retention options", cause 1)."""

    def __init__(self, image_shape, feature_dim: int, dim: int, depth: int, heads: int, patch: int,
                 pool: str = "flatten", position: str = "sincos"):
        super().__init__()
        if pool not in POOLS or position not in POSITIONS:
            raise ValueError(f"pool must be one of {POOLS} and position one of {POSITIONS}, got {pool!r}, {position!r}")
        self.feature_dim = feature_dim
        self.normalize = True  # False: raw features, for classifier backbones of the baselines
        self.pool = pool
        C = image_shape[0]
        n_tokens = _check_patches(image_shape, patch)
        self.patch_embed = nn.Conv2d(C, dim, kernel_size=patch, stride=patch)
        n_extra = int(pool == "cls")
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim)) if n_extra else None
        if position == "sincos":
            grid = sincos_position_embedding(image_shape[1] // patch, dim)
            self.register_buffer("position", torch.cat([torch.zeros(n_extra, dim), grid])[None], persistent=False)
        else:
            self.position = nn.Parameter(torch.randn(1, n_tokens + n_extra, dim) * 0.02)
        self.layers = nn.Sequential(*[CrateEncoderLayer(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim * n_tokens if pool == "flatten" else dim, feature_dim)

    def forward(self, X: Tensor) -> Tensor:
        tokens = patch_embedding(X, self.patch_embed).flatten(2).transpose(1, 2)  # (B, N, d)
        if self.class_token is not None:
            tokens = torch.cat([self.class_token.expand(len(X), -1, -1), tokens], 1)
        Z = self.norm(self.layers(tokens + self.position))
        pooled = {"cls": lambda: Z[:, 0], "mean": lambda: Z.mean(1), "flatten": lambda: Z.flatten(1)}
        features = self.head(pooled[self.pool]())
        return F.normalize(features if features.dtype == torch.float64 else features.float(), dim=-1) if self.normalize \
            else features


class CrateDecoder(nn.Module):
    """g: feature → N tokens (+ positional embedding) → CRATE-AE layers → LN → per-token
    linear to P²·C pixels → un-patchify → tanh image in [−1, 1]."""

    def __init__(self, image_shape, feature_dim: int, dim: int, depth: int, heads: int, patch: int,
                 pool: str = "flatten", position: str = "sincos"):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        self.image_shape, self.patch, self.dim = tuple(image_shape), patch, dim
        self.n_tokens = _check_patches(image_shape, patch)
        self.to_tokens = nn.Linear(feature_dim, self.n_tokens * dim)
        if position == "sincos":
            self.register_buffer("position", sincos_position_embedding(image_shape[1] // patch, dim)[None],
                                 persistent=False)
        else:
            self.position = nn.Parameter(torch.randn(1, self.n_tokens, dim) * 0.02)
        self.layers = nn.Sequential(*[CrateDecoderLayer(dim, heads) for _ in range(depth)])
        self.to_pixels = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, patch * patch * image_shape[0]))

    def forward(self, Z: Tensor) -> Tensor:
        tokens = self.to_tokens(Z).view(len(Z), self.n_tokens, self.dim) + self.position
        pixels = self.to_pixels(self.layers(tokens))  # (B, N, P²C)
        _, H, W = self.image_shape
        image = F.fold(pixels.transpose(1, 2), (H, W), kernel_size=self.patch, stride=self.patch)
        return torch.tanh(image)
