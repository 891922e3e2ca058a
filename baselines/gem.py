"""Gradient Episodic Memory (Lopez-Paz & Ranzato 2017)."""

from avalanche.training import GEM
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier


def _per_experience(ctx):
    return max(1, ctx.mem_size // ctx.options.get("n_experiences", 5))


def build(ctx):
    model = classifier(ctx)
    return GEM(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
               patterns_per_exp=_per_experience(ctx), memory_strength=0.5, **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return f"{_per_experience(ctx) * ctx.options.get('n_experiences', 5)} images"
