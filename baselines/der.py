"""Dark Experience Replay++ (Buzzega et al. 2020)."""

from avalanche.training import DER
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, image_floats
from ._backbones import images_budget as memory_budget  # noqa: F401

REHEARSAL = True  # keeps ctx.mem_size images: --mem-size / --memory-floats set it


STATE_ATTRIBUTES = ("storage_policy",)  # DER keeps its buffer (images and logits) on the strategy
OPTIONS = {"alpha": "weight α of the logit matching on buffer images (default 0.1)",
           "beta": "weight β of the cross-entropy on buffer images, DER++ (default 0.5)"}
OPTION_RANGES = {"alpha": (float, 0.0), "beta": (float, 0.0)}
SEARCH_SPACE = {"alpha": ("log", 0.03, 1.0), "beta": ("log", 0.1, 2.0)}  # around Mammoth's grid (0.1–1, 0.5–1)


def build(ctx):
    model = classifier(ctx)
    return DER(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(), mem_size=ctx.mem_size,
               alpha=ctx.options.get("alpha", 0.1), beta=ctx.options.get("beta", 0.5), **ctx.template_kwargs())


def memory_floats(ctx, strategy):
    """The images in the buffer and, for each, the logits stored with it."""
    n = len(strategy.storage_policy.buffer)
    return image_floats(ctx, n) + n * ctx.n_classes
