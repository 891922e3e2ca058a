"""Avalanche 0.6.0's NCMClassifier and FeCAMClassifier, made to score seen classes only.

Evaluated on the whole test stream after every experience (as this harness does), both misbehave:

- at eval time their ``adaptation`` adds, for every class of the experience being evaluated
  (future classes included), a zero mean (FeCAM: and an identity covariance), and then scores it:
  NCM puts a zero mean at distance 1 from every normalised feature, FeCAM an identity covariance
  at Mahalanobis distance 1, so a test image of a seen class can be given an unseen class;
- NCM also scores every class id below the largest seen one (zero rows of its mean matrix),
  whatever the class order;
- FeCAM replaces only all-zero placeholders when a class is learnt, so a new class's covariance
  is averaged (momentum 0.5) with the identity placeholder its earlier evaluation left behind;
- FeCAM returns its scores on the CPU whatever the device of its input, and both return as many
  scores as the largest class id seen (+1), which a cross-entropy on later labels rejects;
- a parent module's ``load_state_dict`` does not call theirs, so a checkpoint restores the buffers
  but not the dictionaries they classify with.

(:class:`SeenClassesFeCAM` also computes FeCAM's distances without a batch × batch matrix and
inverts each covariance once, not on every batch: same numbers, a fraction of the time.)
:class:`SeenClassesOnly` fixes exactly these: no placeholders, a score for each of the scenario's
classes, −∞ for those without statistics, on the input's device, dictionaries rebuilt on load.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from avalanche.models import FeCAMClassifier, NCMClassifier

# buffer → the dictionary Avalanche classifies with
_DICTIONARIES = {"class_means": "class_means_dict", "class_covs": "class_cov_dict"}


class SeenClassesOnly:
    """Mixin for an Avalanche class-statistics classifier (NCM, FeCAM) over ``n_classes`` classes."""

    def __init__(self, n_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.n_classes = n_classes

    def adaptation(self, experience):
        """No placeholder statistics for the classes of an evaluated experience."""

    @torch.no_grad()
    def forward(self, x):
        scores = torch.full((len(x), self.n_classes), float("-inf"), device=x.device)
        seen = sorted(self.class_means_dict)
        scores[:, seen] = super().forward(x).to(x.device)[:, seen]
        return scores

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for buffer in _DICTIONARIES:  # buffers registered as None take the saved tensor
            if prefix + buffer in state_dict and getattr(self, buffer, None) is None:
                setattr(self, buffer, state_dict[prefix + buffer].clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        for buffer, dictionary in _DICTIONARIES.items():
            rows = getattr(self, buffer, None)
            if rows is not None and hasattr(self, dictionary):
                setattr(self, dictionary, {i: r.clone() for i, r in enumerate(rows) if (r != 0).any()})
        self.max_class = max(self.class_means_dict, default=-1)


class SeenClassesNCM(SeenClassesOnly, NCMClassifier):
    pass


class SeenClassesFeCAM(SeenClassesOnly, FeCAMClassifier):
    def _mahalanobis(self, vectors, class_means, cov):
        """Avalanche's distance, computed row by row (it forms the B × B matrix (x − μ) Σ⁺ (x − μ)ᵀ
        to keep its diagonal) with Σ⁺ computed once per covariance (it recomputes it for every
        class of every batch: 35 of the 73 s of a CIFAR-10-subset run on 2 CPU cores)."""
        diff = F.normalize(vectors, p=2, dim=-1) - F.normalize(class_means, p=2, dim=-1)
        return ((diff @ self._pseudo_inverse(cov).to(vectors.device)) * diff).sum(-1)

    def _pseudo_inverse(self, cov):
        cache = self.__dict__.setdefault("_pinv_cache", {})  # id → (covariance, version, Σ⁺)
        cached = cache.get(id(cov))
        if cached is None or cached[0] is not cov or cached[1] != cov._version:
            live = {id(c) for c in self.class_cov_dict.values()}
            for key in [k for k in cache if k not in live]:
                del cache[key]
            cached = cache[id(cov)] = (cov, cov._version, torch.linalg.pinv(cov).float())
        return cached[2]


def statistics_floats(classifier) -> int:
    """Floats of the per-class statistics a classifier keeps (means, and covariances if any)."""
    return sum(t.numel() for name in _DICTIONARIES.values() for t in getattr(classifier, name, {}).values())
