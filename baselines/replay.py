"""Experience replay with a class-balanced-by-experience buffer."""

from avalanche.training import Replay
from avalanche.training.plugins import ReplayPlugin
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, image_floats, plugin
from ._backbones import images_budget as memory_budget  # noqa: F401

REHEARSAL = True  # keeps ctx.mem_size images: --mem-size / --memory-floats set it


def build(ctx):
    model = classifier(ctx)
    return Replay(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(), mem_size=ctx.mem_size,
                  **ctx.template_kwargs())


def memory_floats(ctx, strategy):
    """The images in the buffer."""
    return image_floats(ctx, len(plugin(strategy, ReplayPlugin).storage_policy.buffer))
