"""FeCAM (Goswami et al., NeurIPS 2023): class statistics on a backbone frozen after the first
experience, classified by Mahalanobis distance. Exemplar-free.

The backbone f (same family and size as ctrl's encoder) and a linear head are trained with
cross-entropy on the first experience only; later experiences train nothing, so neither the
weights nor the BatchNorm statistics move. After each experience, every new class c is stored as
the mean μ_c and covariance Σ_c of its Tukey-transformed training features φ = f(x)^0.5, from that
experience's data only; Σ_c is shrunk twice, Σ ← Σ + γ₁·mean(diag Σ)·I + γ₂·mean(offdiag Σ)·(1 − I)
with γ₁ = γ₂ = 1 (as the authors' code), then normalised to a correlation matrix Σ̃_c. An image is
given the class of smallest distance (φ̂ − μ̂_c)ᵀ Σ̃_c⁺ (φ̂ − μ̂_c), with φ̂, μ̂_c scaled to unit norm.
The head is used only while training the first experience.

Avalanche 0.6.0 parts: ``TrainEvalModel``, ``FeCAMClassifier``, ``CurrentDataFeCAMUpdate`` (and
``FeCAMOracle`` for ``--option fecam.oracle=true``), the ``Naive`` template. Missing in 0.6.0 and
written here: freezing after the first experience (``_backbones.FirstExperienceOnly``) and the
evaluation fixes of ``_class_statistics.SeenClassesOnly``.

Memory: K(d + d²) floats for K classes of d features (full covariance matrices, as stored).
"""

from avalanche.models import TrainEvalModel
from avalanche.training import Naive
from avalanche.training.plugins import CurrentDataFeCAMUpdate, FeCAMOracle
from torch import nn
from torch.nn import CrossEntropyLoss

from ._backbones import FirstExperienceOnly, adam, feature_extractor
from ._class_statistics import SeenClassesFeCAM, statistics_floats

OPTIONS = {"oracle": "true: refit every class's statistics on all data seen so far (FeCAMOracle); an oracle "
                     "(default false)"}


def build(ctx):
    model = TrainEvalModel(feature_extractor(ctx), train_classifier=nn.Linear(ctx.feature_dim, ctx.n_classes),
                           eval_classifier=SeenClassesFeCAM(ctx.n_classes))
    update = FeCAMOracle() if ctx.options.get("oracle") else CurrentDataFeCAMUpdate()
    return Naive(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
                 plugins=[FirstExperienceOnly(), update], **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return "class means and covariances"


def memory_floats(ctx, strategy):
    return statistics_floats(strategy.model.eval_classifier)


def oracle(ctx, strategy):
    if ctx.options.get("oracle"):
        return "FeCAM statistics refitted on the real training images of every seen class (FeCAMOracle)"
    return None
