"""Averaged GEM (Chaudhry et al. 2019)."""

from avalanche.training import AGEM
from avalanche.training.plugins import AGEMPlugin
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, image_floats, patterns_per_experience, plugin
from ._backbones import episodic_budget as memory_budget  # noqa: F401

REHEARSAL = True  # keeps ctx.mem_size images: --mem-size / --memory-floats set it


def build(ctx):
    model = classifier(ctx)
    return AGEM(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
                patterns_per_exp=patterns_per_experience(ctx), sample_size=256, **ctx.template_kwargs())


def memory_floats(ctx, strategy):
    """The images of the per-experience buffers."""
    return image_floats(ctx, sum(len(b) for b in plugin(strategy, AGEMPlugin).buffers))
