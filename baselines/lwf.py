"""Learning without Forgetting (Li & Hoiem 2016): distillation on the previous model's outputs."""

from avalanche.training import LwF
from avalanche.training.plugins import LwFPlugin
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, model_floats, plugin

OPTIONS = {"alpha": "weight of the distillation loss (default 1.0)",
           "temperature": "softmax temperature of the distillation (default 2.0)"}
OPTION_RANGES = {"alpha": (float, 0.0), "temperature": (float, 0.0, False)}
SEARCH_SPACE = {"alpha": ("log", 0.1, 10.0), "temperature": ("uniform", 1.0, 4.0)}


def build(ctx):
    model = classifier(ctx)
    return LwF(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
               alpha=ctx.options.get("alpha", 1.0), temperature=ctx.options.get("temperature", 2.0),
               **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return "previous model"


def memory_floats(ctx, strategy):
    """The previous model."""
    return model_floats(plugin(strategy, LwFPlugin).lwf.prev_model)
