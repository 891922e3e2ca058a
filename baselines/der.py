"""Dark Experience Replay++ (Buzzega et al. 2020)."""

from avalanche.training import DER
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, image_floats
from ._backbones import images_budget as memory_budget  # noqa: F401

REHEARSAL = True  # keeps ctx.mem_size images: --mem-size / --memory-floats set it


STATE_ATTRIBUTES = ("storage_policy",)  # DER keeps its buffer (images and logits) on the strategy


def build(ctx):
    model = classifier(ctx)
    return DER(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(), mem_size=ctx.mem_size,
               alpha=0.1, beta=0.5, **ctx.template_kwargs())


def memory_floats(ctx, strategy):
    """The images in the buffer and, for each, the logits stored with it."""
    n = len(strategy.storage_policy.buffer)
    return image_floats(ctx, n) + n * ctx.n_classes
