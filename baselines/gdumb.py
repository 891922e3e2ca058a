"""GDumb (Prabhu et al. 2020): greedy class-balanced buffer, retrain from it."""

from avalanche.training import GDumb
from avalanche.training.plugins import GDumbPlugin
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, image_floats, model_floats, plugin
from ._backbones import images_budget as memory_budget  # noqa: F401

REHEARSAL = True  # keeps ctx.mem_size images: --mem-size / --memory-floats set it


def build(ctx):
    model = classifier(ctx)
    return GDumb(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(), mem_size=ctx.mem_size,
                 **ctx.template_kwargs())


def memory_floats(ctx, strategy):
    """The images in the buffer, and the initial model GDumb resets to before every experience."""
    gdumb = plugin(strategy, GDumbPlugin)
    return image_floats(ctx, len(gdumb.storage_policy.buffer)) + model_floats(gdumb.init_model)
