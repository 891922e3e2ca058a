"""Experience replay with a class-balanced-by-experience buffer."""

from avalanche.training import Replay
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, images_budget as memory_budget  # noqa: F401


def build(ctx):
    model = classifier(ctx)
    return Replay(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(), mem_size=ctx.mem_size,
                  **ctx.template_kwargs())
