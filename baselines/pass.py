"""PASS (Zhu et al., CVPR 2021): prototype augmentation and self-supervision. Exemplar-free.

The backbone f (same family and size as ctrl's encoder) and a linear head W keep training on
every experience. Self-supervision: each image x of class y is also shown rotated by k·90°,
k = 0..3, as class 4y + k (W has 4K outputs; prediction uses the k = 0 outputs). Loss on
experience t > 0, with τ = 0.1 and λ_kd = λ_proto = 10 (the paper's and PyCIL's values):

    L = CE(W f(x_rot) / τ, 4y + k)                                  (new data)
      + λ_kd · ‖f(x_rot) − f_{t−1}(x_rot)‖₂                         (feature distillation)
      + λ_proto · CE(W (μ_c + r·e) / τ, 4c),  e ~ N(0, I)           (prototype augmentation)

f_{t−1} is the frozen backbone of the previous experience, μ_c the mean feature of old class c
taken when c was learnt (never updated), and r = sqrt(mean_c tr(Σ_c) / d) over the classes seen
so far. Each step draws B·⌊old classes / new classes⌋ prototypes of uniformly drawn old classes
(PyCIL's ``models/pa2s.py``).

Why PASS and not EFC: EFC (Magistri et al., ICLR 2024) needs, per experience, an empirical
feature matrix from Jacobians of the head over the data and a separate prototype re-balancing
stage, and keeps a d × d covariance per class; its public code is a FACIL fork of several hundred
lines. PASS is the method EFC builds on and fits one short file.

Rotations: on by default, as in the paper; ``--option pass.rotation=false`` turns them off. rot90
of a square 28 × 28 or 32 × 32 image is exact (no interpolation), so the size is no obstacle. On
digits the task is partly ill-posed (0, 1 and 8 look alike under 180°, a 6 turned by 180° is a 9)
and each step costs four times as much, yet it pays on this budget (quick preset, conv tiny,
seed 0, 1 CPU thread, Last / Avg / seconds): MNIST-5k 0.721 / 0.803 / 40 with rotations,
0.608 / 0.719 / 18 without; CIFAR-10 subset 0.279 / 0.445 / 20 with, 0.209 / 0.400 / 8 without.
At this budget the λ = 10 weights hold the classes of the current experience back (on the CIFAR
subset they score 1-6 % when their experience ends, and are learnt from their prototypes in the
next one); the paper trains 100 epochs per task.

Avalanche 0.6.0 parts: ``FeatureExtractorModel`` and the ``SupervisedTemplate``. Its
``FeatureDistillationPlugin`` is not PASS's loss (cosine mode), and its "mse" mode fails
(``F.mse_loss(..., dim=1)`` is not a valid call), so the one-line distillation is written here.

Memory: the frozen previous backbone, K·d prototype floats and K radius terms.
"""

import copy

import torch
from avalanche.models.utils import FeatureExtractorModel
from avalanche.training.templates import SupervisedTemplate
from torch import nn
from torch.utils.data import DataLoader

from ._backbones import adam, feature_extractor, model_floats

OPTIONS = {"rotation": "rotation self-supervision, 4 labels per class (default true)",
           "temperature": "τ of the cross-entropies (default 0.1)",
           "lambda_kd": "weight of the feature distillation (default 10)",
           "lambda_proto": "weight of the prototype loss (default 10)"}
OPTION_RANGES = {"temperature": (float, 0.0, False), "lambda_kd": (float, 0.0), "lambda_proto": (float, 0.0)}
SEARCH_SPACE = {"temperature": ("log", 0.05, 0.5), "lambda_kd": ("log", 1.0, 30.0), "lambda_proto": ("log", 1.0, 30.0)}
STATE_ATTRIBUTES = ("prototypes", "spreads", "old_backbone")


class PASS(SupervisedTemplate):
    def __init__(self, *, rotation=True, temperature=0.1, lambda_kd=10.0, lambda_proto=10.0, **kwargs):
        super().__init__(criterion=nn.CrossEntropyLoss(), **kwargs)
        self.rotation, self.temperature = rotation, temperature
        self.lambda_kd, self.lambda_proto = lambda_kd, lambda_proto
        self.prototypes: dict[int, torch.Tensor] = {}
        self.spreads: dict[int, float] = {}  # tr(Σ_c) / d
        self.old_backbone: nn.Module | None = None

    @property
    def views(self) -> int:
        return 4 if self.rotation else 1

    def _unpack_minibatch(self):
        super()._unpack_minibatch()
        if self.is_training and self.rotation:
            x, y, t = self.mbatch[0], self.mbatch[1], self.mbatch[-1]
            self.mbatch = [torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)]),
                           torch.cat([4 * y + k for k in range(4)]), t.repeat(4)]

    def forward(self):
        logits = super().forward()
        return logits if self.is_training else logits[:, ::self.views]

    def criterion(self):
        if not self.is_training:
            return self._criterion(self.mb_output, self.mb_y)
        loss = self._criterion(self.mb_output / self.temperature, self.mb_y)
        if self.old_backbone is None:
            return loss
        with torch.no_grad():
            old_features = self.old_backbone(self.mb_x)
        loss = loss + self.lambda_kd * torch.dist(self.model.features, old_features, 2)
        return loss + self.lambda_proto * self._prototype_loss()

    def _prototype_loss(self):
        old = torch.tensor(sorted(self.prototypes), device=self.device)
        n_new = len(self.experience.classes_in_this_experience)
        n = (len(self.mb_y) // self.views) * max(1, len(old) // n_new)
        pick = torch.randint(len(old), (n,), device=self.device)
        means = torch.stack([self.prototypes[int(c)] for c in old])[pick]
        radius = torch.tensor(list(self.spreads.values())).mean().sqrt()
        logits = self.model.train_classifier(means + radius * torch.randn_like(means))
        return self._criterion(logits / self.temperature, old[pick] * self.views)

    @torch.no_grad()
    def _after_training_exp(self, **kwargs):
        backbone = self.model.feature_extractor
        was_training = backbone.training
        backbone.eval()
        features, labels = [], []
        for x, y, *_ in DataLoader(self.experience.dataset.eval(), batch_size=self.eval_mb_size):
            features.append(backbone(x.to(self.device)))
            labels.append(y.to(self.device))
        features, labels = torch.cat(features), torch.cat(labels)
        for c in labels.unique():
            z = features[labels == c]
            self.prototypes[int(c)] = z.mean(0)
            self.spreads[int(c)] = float(torch.cov(z.T).trace()) / z.shape[1]
        backbone.train(was_training)
        self.old_backbone = copy.deepcopy(backbone).eval().requires_grad_(False)
        super()._after_training_exp(**kwargs)


def build(ctx):
    options = {k: ctx.options[k] for k in OPTIONS if k in ctx.options}
    views = 4 if options.get("rotation", True) else 1
    model = FeatureExtractorModel(feature_extractor(ctx), nn.Linear(ctx.feature_dim, views * ctx.n_classes))
    return PASS(model=model, optimizer=adam(model, ctx), **options, **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return "previous backbone and class prototypes"


def memory_floats(ctx, strategy):
    return model_floats(strategy.old_backbone) + sum(p.numel() for p in strategy.prototypes.values()) \
        + len(strategy.spreads)
