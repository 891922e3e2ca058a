"""Classifier backbones of the same family and size as ctrl's encoder, so comparisons are fair."""

from __future__ import annotations

import math

from torch import nn

from ctrl_bench import build_autoencoder

BACKBONES = ("conv", "crate", "mlp")


def feature_extractor(ctx) -> nn.Module:
    """Image → ``ctx.feature_dim`` features: the ctrl encoder (without the sphere projection) or an MLP."""
    if ctx.backbone == "mlp":
        hidden = 400
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(ctx.image_shape), hidden), nn.ReLU(),
                             nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, ctx.feature_dim), nn.ReLU())
    if ctx.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {ctx.backbone!r}; choose one of {', '.join(BACKBONES)}")
    encoder, _ = build_autoencoder(ctx.backbone, ctx.image_shape, ctx.feature_dim, ctx.size)
    encoder.normalize = False
    return nn.Sequential(encoder, nn.ReLU())


def classifier(ctx) -> nn.Module:
    """Feature extractor followed by a linear layer over all classes of the scenario."""
    return nn.Sequential(feature_extractor(ctx), nn.Linear(ctx.feature_dim, ctx.n_classes))


def adam(model: nn.Module, ctx):
    import torch
    return torch.optim.Adam(model.parameters(), lr=ctx.lr)


def images_budget(ctx, strategy=None) -> str:
    return f"{ctx.mem_size} images"


def patterns_per_experience(ctx) -> int:
    """GEM / A-GEM keep a fixed number of images per experience: the budget split evenly."""
    return max(1, ctx.mem_size // ctx.options.get("n_experiences", 5))


def episodic_budget(ctx, strategy=None) -> str:
    return f"{patterns_per_experience(ctx) * ctx.options.get('n_experiences', 5)} images"
