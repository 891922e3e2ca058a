"""FeTrIL (Petit et al., WACV 2023): a backbone frozen after the first experience and a linear
head trained on real features of the new classes plus pseudo-features of the old ones.
Exemplar-free.

The backbone f (same family and size as ctrl's encoder) and a linear head W are trained with
cross-entropy on the first experience. From then on f is frozen (it never runs in training mode
nor gets a gradient again) and only the class means μ_c = mean f(x) of the training images of
class c, computed from its own experience, are kept. On experience t > 0, each old class c is
paired with the new class n(c) = argmax_n cos(μ_c, μ_n), and every real feature f(x) of class n(c)
is translated to a pseudo-feature of class c:  f̃ = f(x) − μ_{n(c)} + μ_c.
W is then trained with cross-entropy on the real new-class features and the pseudo-features
(as PyCIL's ``models/fetril.py``: a fully connected head trained from its previous weights for 50
epochs, ``--option fetril.head_epochs``; the paper fits a linear SVM to convergence). These epochs
run over d-dimensional features, not images, so they cost little; with the quick preset's 4
instead, the head is far from converged (seed 0, conv tiny, Last / Avg: MNIST-5k 0.679 / 0.771
with 4, 0.784 / 0.856 with 30, 0.794 / 0.865 with 50; CIFAR-10 subset 0.273 / 0.432, 0.292 /
0.483, 0.318 / 0.490). Prediction: argmax W f(x).

Avalanche 0.6.0 has no FeTrIL; this is a ``SupervisedTemplate`` whose dataloader yields features
once the backbone is frozen, so that every plugin hook still runs.

Memory: K·d floats (K class means of d features).
"""

import torch
from avalanche.training.templates import SupervisedTemplate
from torch.nn import CrossEntropyLoss
from torch.utils.data import DataLoader, TensorDataset

from ._backbones import adam, classifier

STATE_ATTRIBUTES = ("class_means",)
HEAD_EPOCHS = 50  # PyCIL's; the paper fits a linear SVM to convergence
OPTIONS = {"head_epochs": f"epochs of the head on features after the first experience (default {HEAD_EPOCHS})"}
OPTION_RANGES = {"head_epochs": (int, 1)}
SEARCH_SPACE = {"head_epochs": ("int", 10, 100)}


def pseudo_features(features, labels, new_means: dict, old_means: dict):
    """Real features of the new classes, then f − μ_{n(c)} + μ_c for each old class c, with labels."""
    new_classes = sorted(new_means)
    new = torch.stack([new_means[n] for n in new_classes])
    xs, ys = [features], [labels]
    for c, mu in sorted(old_means.items()):
        n = new_classes[int(torch.cosine_similarity(new, mu[None], dim=1).argmax())]
        xs.append(features[labels == n] - new_means[n] + mu)
        ys.append(torch.full_like(labels[labels == n], c))
    return torch.cat(xs), torch.cat(ys)


class FeTrIL(SupervisedTemplate):
    """``model`` is ``Sequential(backbone, head)``."""

    def __init__(self, *, head_epochs: int = HEAD_EPOCHS, **kwargs):
        super().__init__(criterion=CrossEntropyLoss(), **kwargs)
        self.head_epochs = head_epochs
        self.class_means: dict[int, torch.Tensor] = {}

    @property
    def frozen(self) -> bool:
        return self.clock.train_exp_counter > 0

    @torch.no_grad()
    def _features(self):
        """f(x) and labels of the current experience's training data, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        xs, ys = [], []
        for x, y, *_ in DataLoader(self.experience.dataset.eval(), batch_size=self.eval_mb_size):
            xs.append(self.model[0](x.to(self.device)))
            ys.append(y.to(self.device))
        self.model.train(was_training)
        return torch.cat(xs), torch.cat(ys)

    def _store_means(self, features, labels) -> dict:
        new = {int(c): features[labels == c].mean(0) for c in labels.unique()}
        self.class_means.update(new)
        return new

    def make_train_dataloader(self, **kwargs):
        if not self.frozen:  # the first experience trains the backbone for the budget's epochs
            return super().make_train_dataloader(**kwargs)
        self.train_epochs = self.head_epochs
        old = dict(self.class_means)
        features, labels = self._features()
        x, y = pseudo_features(features, labels, self._store_means(features, labels), old)
        self.dataloader = DataLoader(TensorDataset(x, y, torch.zeros_like(y)), batch_size=self.train_mb_size,
                                     shuffle=True)

    def forward(self):
        if self.is_training and self.frozen:
            return self.model[1](self.mb_x)  # the minibatch holds features
        return super().forward()

    def _after_training_exp(self, **kwargs):
        if not self.frozen:
            self._store_means(*self._features())
        super()._after_training_exp(**kwargs)


def build(ctx):
    model = classifier(ctx)
    return FeTrIL(model=model, optimizer=adam(model, ctx), head_epochs=ctx.options.get("head_epochs", HEAD_EPOCHS),
                  **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return "class means"


def memory_floats(ctx, strategy):
    return sum(mu.numel() for mu in strategy.class_means.values())
