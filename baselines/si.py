"""Synaptic Intelligence (Zenke et al. 2017)."""

from avalanche.training import SynapticIntelligence
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier


def build(ctx):
    model = classifier(ctx)
    return SynapticIntelligence(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
                                si_lambda=ctx.options.get("si_lambda", 1.0), **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return "parameter importances"
