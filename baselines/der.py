"""Dark Experience Replay++ (Buzzega et al. 2020)."""

from avalanche.training import DER
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier, images_budget as memory_budget  # noqa: F401


STATE_ATTRIBUTES = ("storage_policy",)  # DER keeps its buffer (images and logits) on the strategy


def build(ctx):
    model = classifier(ctx)
    return DER(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(), mem_size=ctx.mem_size,
               alpha=0.1, beta=0.5, **ctx.template_kwargs())
