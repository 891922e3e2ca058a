"""Elastic Weight Consolidation (Kirkpatrick et al. 2017)."""

from avalanche.training import EWC
from avalanche.training.plugins import EWCPlugin
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, plugin, tensor_floats

OPTIONS = {"ewc_lambda": "weight λ of the quadratic penalty (default 100)"}
OPTION_RANGES = {"ewc_lambda": (float, 0.0)}
SEARCH_SPACE = {"ewc_lambda": ("log", 1.0, 1e4)}


def build(ctx):
    model = classifier(ctx)
    return EWC(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
               ewc_lambda=ctx.options.get("ewc_lambda", 100.0), **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return "parameter importances"


def memory_floats(ctx, strategy):
    """Avalanche's "separate" mode keeps, for every past experience, the parameters at its end and
    their Fisher importances."""
    ewc = plugin(strategy, EWCPlugin)
    return sum(tensor_floats(d.values()) for d in (*ewc.saved_params.values(), *ewc.importances.values()))
