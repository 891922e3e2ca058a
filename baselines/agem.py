"""Averaged GEM (Chaudhry et al. 2019)."""

from avalanche.training import AGEM
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, patterns_per_experience
from ._backbones import episodic_budget as memory_budget  # noqa: F401


def build(ctx):
    model = classifier(ctx)
    return AGEM(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
                patterns_per_exp=patterns_per_experience(ctx), sample_size=256, **ctx.template_kwargs())

