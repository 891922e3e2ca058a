"""Principal subspaces of features and the nearest-subspace classifier."""

from __future__ import annotations

import torch
from torch import Tensor

UNSEEN_CLASS_SCORE = -1.0e4  # far below any −residual² of unit vectors (≥ −4)


def principal_subspace(Z: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Mean μ (d,), top-k principal directions U (k, d, orthonormal rows) and their variances (k,)
    of the rows of ``Z`` (n, d): the eigen-decomposition of the centred covariance, by SVD.

    With fewer than k informative directions the missing ones are zero vectors of variance 0.
    """
    Z = Z.float()
    n, d = Z.shape
    mean = Z.mean(0)
    _, singular, Vh = torch.linalg.svd(Z - mean, full_matrices=False)
    variances = singular**2 / max(n - 1, 1)
    directions = torch.zeros(k, d, dtype=Z.dtype, device=Z.device)
    kept = min(k, Vh.shape[0])
    directions[:kept] = Vh[:kept]
    padded = torch.zeros(k, dtype=Z.dtype, device=Z.device)
    padded[:kept] = variances[:kept]
    return mean, directions, padded


class NearestSubspaceClassifier:
    """Each class c is an affine subspace (μ_c, U_c); a feature z goes to argmin_c ‖(I − U_cᵀU_c)(z − μ_c)‖².

    ``scores`` returns −residual² for every class id in ``range(num_classes)`` (higher is
    better), so Avalanche's accuracy / forgetting / confusion metrics read it as logits.
    """

    def __init__(self):
        self.labels: Tensor | None = None
        self.means: Tensor | None = None
        self.bases: Tensor | None = None

    @property
    def fitted(self) -> bool:
        return self.labels is not None

    def set_subspaces(self, labels: Tensor, means: Tensor, bases: Tensor) -> None:
        """labels (K,), means (K, d), bases (K, k, d) with orthonormal (or zero) rows."""
        self.labels, self.means, self.bases = labels.long(), means.float(), bases.float()

    def fit(self, Z: Tensor, y: Tensor, n_components: int) -> None:
        """Fit one k-dimensional principal subspace per class present in ``y``."""
        labels = torch.unique(y)
        fits = [principal_subspace(Z[y == c], n_components) for c in labels]
        self.set_subspaces(labels, torch.stack([m for m, _, _ in fits]), torch.stack([u for _, u, _ in fits]))

    def residuals(self, Z: Tensor) -> Tensor:
        """‖(I − UᵀU)(z − μ)‖² for every (sample, fitted class): shape (B, K)."""
        diff = Z.float()[:, None, :] - self.means[None]  # (B, K, d)
        projected = torch.einsum("bkd,krd->bkr", diff, self.bases)
        return diff.pow(2).sum(-1) - projected.pow(2).sum(-1)

    def scores(self, Z: Tensor, num_classes: int) -> Tensor:
        out = torch.full((len(Z), num_classes), UNSEEN_CLASS_SCORE, device=Z.device)
        if self.fitted:
            out[:, self.labels.to(Z.device)] = -self.residuals(Z)
        return out

    def state_dict(self) -> dict:
        return {"labels": self.labels, "means": self.means, "bases": self.bases}

    def load_state_dict(self, state: dict) -> None:
        self.labels, self.means, self.bases = state["labels"], state["means"], state["bases"]
