"""Gradient Episodic Memory (Lopez-Paz & Ranzato 2017)."""

from avalanche.training import GEM
from avalanche.training.plugins import GEMPlugin
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, patterns_per_experience, plugin, tensor_floats
from ._backbones import episodic_budget as memory_budget  # noqa: F401

REHEARSAL = True  # keeps ctx.mem_size images: --mem-size / --memory-floats set it


def build(ctx):
    model = classifier(ctx)
    return GEM(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
               patterns_per_exp=patterns_per_experience(ctx), memory_strength=0.5, **ctx.template_kwargs())


def memory_floats(ctx, strategy):
    """The images kept per experience (their gradients are recomputed at every step, not kept)."""
    return tensor_floats(plugin(strategy, GEMPlugin).memory_x.values())
