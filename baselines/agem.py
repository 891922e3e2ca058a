"""Averaged GEM (Chaudhry et al. 2019)."""

from avalanche.training import AGEM
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier


def _per_experience(ctx):
    return max(1, ctx.mem_size // ctx.options.get("n_experiences", 5))


def build(ctx):
    model = classifier(ctx)
    return AGEM(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
                patterns_per_exp=_per_experience(ctx), sample_size=256, **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return f"{_per_experience(ctx) * ctx.options.get('n_experiences', 5)} images"
