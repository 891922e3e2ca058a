"""iCaRL (Rebuffi et al. 2017): herding exemplars, distillation, nearest-mean-of-exemplars."""

from avalanche.training import ICaRL

from ._backbones import adam, feature_extractor, images_budget as memory_budget  # noqa: F401
from torch import nn


def build(ctx):
    features = feature_extractor(ctx)
    head = nn.Linear(ctx.feature_dim, ctx.n_classes)
    optimizer = adam(nn.ModuleList([features, head]), ctx)
    return ICaRL(feature_extractor=features, classifier=head, optimizer=optimizer, memory_size=ctx.mem_size,
                 buffer_transform=None, fixed_memory=True, **ctx.template_kwargs())
