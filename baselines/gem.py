"""Gradient Episodic Memory (Lopez-Paz & Ranzato 2017)."""

from avalanche.training import GEM
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, patterns_per_experience
from ._backbones import episodic_budget as memory_budget  # noqa: F401


def build(ctx):
    model = classifier(ctx)
    return GEM(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
               patterns_per_exp=patterns_per_experience(ctx), memory_strength=0.5, **ctx.template_kwargs())

