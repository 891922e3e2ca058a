"""Nearest class mean on drifting features (Mensink et al., TPAMI 2013; the NME rule of iCaRL
without exemplars). Exemplar-free.

The backbone f (same family and size as ctrl's encoder) and a linear head are fine-tuned with
cross-entropy on each experience's data, as naive fine-tuning. After each experience, every new
class c is stored as μ_c, the normalised mean of its normalised training features
f(x)/‖f(x)‖, computed from that experience's data only and never updated afterwards. An image is
given the class argmin_c ‖f(x)/‖f(x)‖ − μ_c‖. Old means go stale as the features drift: this
is what keeping class means, and nothing against drift, buys (i-CTRL keeps class statistics too,
and constrains its features not to drift). ``--option ncm.freeze=true`` instead trains the
backbone on the first experience only (the "NCM" of the FeCAM paper: FeCAM with Euclidean
distance and no covariance).

Avalanche 0.6.0 parts: ``TrainEvalModel``, ``NCMClassifier``, ``CurrentDataNCMUpdate`` (and
``NCMOracle`` for ``--option ncm.oracle=true``), the ``Naive`` template; written here only the
evaluation fixes of ``_class_statistics.SeenClassesOnly`` (and, for ``freeze``, the shared
``_backbones.FirstExperienceOnly``).

Memory: K·d floats (K class means of d features).
"""

from avalanche.models import TrainEvalModel
from avalanche.training import Naive
from avalanche.training.plugins import CurrentDataNCMUpdate, NCMOracle
from torch import nn
from torch.nn import CrossEntropyLoss

from ._backbones import FirstExperienceOnly, adam, feature_extractor
from ._class_statistics import SeenClassesNCM, statistics_floats

OPTIONS = {"oracle": "true: refit every mean on all data seen so far (NCMOracle); an oracle (default false)",
           "freeze": "true: train the backbone on the first experience only (default false)"}


def build(ctx):
    model = TrainEvalModel(feature_extractor(ctx), train_classifier=nn.Linear(ctx.feature_dim, ctx.n_classes),
                           eval_classifier=SeenClassesNCM(ctx.n_classes, normalize=True))
    plugins = [NCMOracle() if ctx.options.get("oracle") else CurrentDataNCMUpdate()]
    if ctx.options.get("freeze"):
        plugins.insert(0, FirstExperienceOnly())
    return Naive(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(), plugins=plugins,
                 **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return "class means"


def memory_floats(ctx, strategy):
    return statistics_floats(strategy.model.eval_classifier)


def oracle(ctx, strategy):
    if ctx.options.get("oracle"):
        return "NCM means refitted on the real training images of every seen class (NCMOracle)"
    return None
