"""GDumb (Prabhu et al. 2020): greedy class-balanced buffer, retrain from it."""

from avalanche.training import GDumb
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, images_budget as memory_budget  # noqa: F401


def build(ctx):
    model = classifier(ctx)
    return GDumb(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(), mem_size=ctx.mem_size,
                 **ctx.template_kwargs())
