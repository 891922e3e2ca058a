"""Naive fine-tuning: the lower bound."""

from avalanche.training import Naive
from torch.nn import CrossEntropyLoss

from ._backbones import adam, classifier


def build(ctx):
    model = classifier(ctx)
    return Naive(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(), **ctx.template_kwargs())
