"""Synaptic Intelligence (Zenke et al. 2017)."""

from avalanche.training import SynapticIntelligence
from avalanche.training.plugins import SynapticIntelligencePlugin
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, plugin, tensor_floats

OPTIONS = {"si_lambda": "weight of the surrogate loss (default 1.0)"}
OPTION_RANGES = {"si_lambda": (float, 0.0)}
SEARCH_SPACE = {"si_lambda": ("log", 0.01, 100.0)}


def build(ctx):
    model = classifier(ctx)
    return SynapticIntelligence(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
                                si_lambda=ctx.options.get("si_lambda", 1.0), **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return "parameter importances"


def memory_floats(ctx, strategy):
    """The parameters at the end of the last experience, their importances Ω and the running sum
    of path integrals that Ω is computed from (per-step scratch copies are not counted)."""
    si = plugin(strategy, SynapticIntelligencePlugin)
    anchors, importances = si.ewc_data
    return tensor_floats([*anchors.values(), *importances.values(), *si.syn_data["cum_trajectory"].values()])
