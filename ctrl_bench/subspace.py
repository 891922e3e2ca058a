"""Principal subspaces of features and the nearest-subspace classifier."""

from __future__ import annotations

import math

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


def residual_variance(Z: Tensor, k: int) -> Tensor:
    """σ²_res = (tr Σ − Σ_{i≤k} λ_i) / (d − k): the mean variance of the rows of ``Z`` (n, d) off their
    top-k principal subspace, the maximum-likelihood noise of probabilistic PCA (Tipping & Bishop
    1999); 0 when k ≥ d."""
    Z = Z.float()
    n, d = Z.shape
    if k >= d:
        return Z.new_zeros(())
    eigen = torch.linalg.svdvals(Z - Z.mean(0)).pow(2) / max(n - 1, 1)
    return (eigen.sum() - eigen[:k].sum()).clamp_min(0) / (d - k)


def subspace_coordinates(Z: Tensor, means: Tensor, bases: Tensor) -> tuple[Tensor, Tensor]:
    """For every (sample, class): p = U_c (z − μ_c) (B, K, k) and the residual ‖(I − U_cᵀU_c)(z − μ_c)‖² (B, K)
    (bases with orthonormal or zero rows)."""
    diff = Z.float()[:, None, :] - means.float()[None]  # (B, K, d)
    projected = torch.einsum("bkd,krd->bkr", diff, bases.float())
    return projected, diff.pow(2).sum(-1) - projected.pow(2).sum(-1)


def ppca_log_likelihood(Z: Tensor, means: Tensor, bases: Tensor, variances: Tensor, noise) -> Tensor:
    """log N(z; μ_c, Σ_c) + d/2 · log 2π for every (sample, class), with the probabilistic-PCA covariance
    Σ_c = U_cᵀ diag(σ²_c + s²_c) U_c + s²_c (I − U_cᵀU_c) of a class's stored statistics:
    −½ [Σ_i p_i² / (σ²_{c,i} + s²_c) + ‖(I − U_cᵀU_c)(z − μ_c)‖² / s²_c + Σ_i log(σ²_{c,i} + s²_c) + (d − k) log s²_c],
    p = U_c (z − μ_c). ``noise`` is s² (a variance, not s): one number for every class, or one per class
    (K,). Shapes: Z (B, d), means (K, d), bases (K, k, d), variances (K, k); returns (B, K)."""
    d, k = Z.shape[1], bases.shape[1]
    projected, residual = subspace_coordinates(Z, means, bases)
    noise = torch.as_tensor(noise, dtype=torch.float32, device=Z.device).reshape(-1)  # (1,) or (K,)
    spread = variances.float() + noise[:, None]
    log_det = torch.log(spread).sum(-1) + (d - k) * torch.log(noise)
    return -0.5 * ((projected.pow(2) / spread[None]).sum(-1) + residual / noise[None] + log_det[None])


class NearestSubspaceClassifier:
    """Each class c is an affine subspace (μ_c, U_c); a feature z goes to argmin_c ‖(I − U_cᵀU_c)(z − μ_c)‖².
    With ``noise`` s² > 0 and the directions' variances given, it goes to the class of highest
    probabilistic-PCA likelihood instead (:func:`ppca_log_likelihood`).

    ``scores`` returns −residual² (or the log-likelihood) for every class id in ``range(num_classes)``
    (higher is better), so Avalanche's accuracy / forgetting / confusion metrics read it as logits.
    """

    def __init__(self, noise: float = 0.0, class_spread: bool = False):
        if noise < 0:
            raise ValueError(f"the classifier's noise variance s² must be ≥ 0 (0: nearest subspace), got {noise}")
        self.noise, self.class_spread = noise, class_spread
        self.labels: Tensor | None = None
        self.means: Tensor | None = None
        self.bases: Tensor | None = None
        self.variances: Tensor | None = None
        self.residuals: Tensor | None = None  # (K,) each class's variance off its subspace (class_spread)

    @property
    def fitted(self) -> bool:
        return self.labels is not None

    def set_subspaces(self, labels: Tensor, means: Tensor, bases: Tensor, variances: Tensor | None = None,
                      residuals: Tensor | None = None) -> None:
        """labels (K,), means (K, d), bases (K, k, d) with orthonormal (or zero) rows, variances (K, k)
        along them (needed when ``noise`` > 0), each class's variance off its subspace (K,) (needed with
        ``class_spread``)."""
        if (self.noise or self.class_spread) and variances is None:
            raise ValueError("a likelihood classifier needs the variances along the directions")
        if self.class_spread and residuals is None:
            raise ValueError("class_spread needs each class's variance off its subspace")
        self.labels, self.means, self.bases = labels.long(), means.float(), bases.float()
        self.variances = None if variances is None else variances.float()
        self.residuals = None if residuals is None else residuals.float()

    def fit(self, Z: Tensor, y: Tensor, n_components: int) -> None:
        """Fit one k-dimensional principal subspace per class present in ``y``."""
        labels = torch.unique(y)
        fits = [principal_subspace(Z[y == c], n_components) for c in labels]
        residuals = torch.stack([residual_variance(Z[y == c], n_components) for c in labels])
        self.set_subspaces(labels, *(torch.stack(parts) for parts in zip(*fits)), residuals=residuals)

    def residual_norms(self, Z: Tensor) -> Tensor:
        """‖(I − UᵀU)(z − μ)‖² for every (sample, fitted class): shape (B, K)."""
        return subspace_coordinates(Z, self.means, self.bases)[1]

    def scores(self, Z: Tensor, num_classes: int) -> Tensor:
        out = torch.full((len(Z), num_classes), UNSEEN_CLASS_SCORE, device=Z.device)
        if self.fitted:
            if self.class_spread:  # each class's own spread (floored: a class that fills its subspace)
                noise = (self.residuals.to(Z.device) + self.noise).clamp_min(1e-6)
                fit = ppca_log_likelihood(Z, self.means, self.bases, self.variances, noise)
            elif self.noise:
                fit = ppca_log_likelihood(Z, self.means, self.bases, self.variances, self.noise)
            else:
                fit = -self.residual_norms(Z)
            out[:, self.labels.to(Z.device)] = fit
        return out

    def state_dict(self) -> dict:
        return {"labels": self.labels, "means": self.means, "bases": self.bases, "variances": self.variances,
                "residuals": self.residuals}

    def load_state_dict(self, state: dict) -> None:
        self.labels, self.means, self.bases = state["labels"], state["means"], state["bases"]
        self.variances, self.residuals = state.get("variances"), state.get("residuals")
