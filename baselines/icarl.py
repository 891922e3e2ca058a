"""iCaRL (Rebuffi et al. 2017): herding exemplars, distillation, nearest-mean-of-exemplars."""

from avalanche.training import ICaRL
from avalanche.training.losses import ICaRLLossPlugin
# Private, but only read: the public ICaRL strategy (built below) creates this plugin inside its
# __init__ and keeps the herded exemplars (x_memory) there, with no public attribute or accessor on the
# strategy; memory_floats finds the plugin by this class to count them (Avalanche 0.6.0).
from avalanche.training.supervised.icarl import _ICaRLPlugin
from torch import nn

from ._backbones import adam, feature_extractor, model_floats, plugin, tensor_floats
from ._backbones import images_budget as memory_budget  # noqa: F401

REHEARSAL = True  # keeps ctx.mem_size images: --mem-size / --memory-floats set it


def build(ctx):
    features = feature_extractor(ctx)
    head = nn.Linear(ctx.feature_dim, ctx.n_classes)
    optimizer = adam(nn.ModuleList([features, head]), ctx)
    return ICaRL(feature_extractor=features, classifier=head, optimizer=optimizer, memory_size=ctx.mem_size,
                 buffer_transform=None, fixed_memory=True, **ctx.template_kwargs())


def memory_floats(ctx, strategy):
    """The exemplars, the previous model (distillation targets) and the class means (NME classifier)."""
    exemplars = tensor_floats(plugin(strategy, _ICaRLPlugin).x_memory)
    means = tensor_floats(strategy.model.eval_classifier.class_means_dict.values())
    return exemplars + model_floats(plugin(strategy, ICaRLLossPlugin).old_model) + means
