"""Classifier backbones of the same family and size as ctrl's encoder, so comparisons are fair;
and the counting rules behind every method's ``memory_floats``."""

from __future__ import annotations

import math

import torch
from avalanche.core import SupervisedPlugin
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
    return torch.optim.Adam(model.parameters(), lr=ctx.lr)


class FirstExperienceOnly(SupervisedPlugin):
    """Train on the first experience only: later experiences run no epoch, so that neither the
    weights nor the BatchNorm statistics move (a backbone frozen after the first experience)."""

    def before_training_exp(self, strategy, **kwargs):
        if strategy.clock.train_exp_counter > 0:
            strategy.train_epochs = 0


def images_budget(ctx, strategy=None) -> str:
    return f"{ctx.mem_size} images"


def patterns_per_experience(ctx) -> int:
    """GEM / A-GEM keep a fixed number of images per experience: the budget split evenly."""
    return max(1, ctx.mem_size // ctx.n_experiences)


def episodic_budget(ctx, strategy=None) -> str:
    return f"{patterns_per_experience(ctx) * ctx.n_experiences} images"


# ---------------------------------------------------------------- memory in one unit: floats
# ``memory_floats(ctx, strategy)`` counts the numbers a method keeps beyond the model it classifies
# with, read from the strategy's state after the last experience: a stored image C·H·W, a stored
# feature statistic its size, a kept model (a frozen copy, a generator) its parameters and
# floating-point buffers (BatchNorm statistics: what it takes to run it). Labels are not counted.


def plugin(strategy, kind: type):
    """The strategy's plugin of class ``kind`` (a method's own plugins, not the evaluator)."""
    for p in strategy.plugins:
        if isinstance(p, kind):
            return p
    raise LookupError(f"the strategy has no {kind.__name__}")


def model_floats(model: nn.Module | None) -> int:
    """Parameters and floating-point buffers of a kept model (0 for None)."""
    if model is None:
        return 0
    return (sum(p.numel() for p in model.parameters())
            + sum(b.numel() for b in model.buffers() if b.is_floating_point()))


def tensor_floats(tensors) -> int:
    """Total size of tensors (or Avalanche ``ParamData``, which wrap one in ``.data``)."""
    return sum(getattr(t, "data", t).numel() for t in tensors)


def image_floats(ctx, n_images: int) -> int:
    """``n_images`` stored images of shape C × H × W."""
    return int(n_images) * math.prod(ctx.image_shape)
