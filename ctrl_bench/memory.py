"""The i-CTRL structured memory: per-class feature statistics, never images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .subspace import principal_subspace, residual_variance


class FeatureMemory:
    """For every learned class c: mean μ_c (d), top-r principal directions U_c (r × d), their
    variances σ²_c (r) and the mean variance off them, σ²_res,c (1). Prototypes are drawn from
    N(μ_c, U_cᵀ diag(σ²_c) U_c) and mapped back to the unit sphere. Size: K · (d + r·d + r + 1) floats.
    r = ``n_directions``, and ``n_prototypes`` per class are drawn by :meth:`sample`; both are required
    (i-CTRL's defaults live in ``ICTRLConfig``).
    """

    def __init__(self, n_directions: int, n_prototypes: int):
        if n_directions < 1 or n_prototypes < 1:
            raise ValueError("n_directions and n_prototypes must be positive")
        self.n_directions, self.n_prototypes = n_directions, n_prototypes
        self.labels: Tensor | None = None  # (K,)
        self.means: Tensor | None = None  # (K, d)
        self.directions: Tensor | None = None  # (K, r, d)
        self.variances: Tensor | None = None  # (K, r)
        self.residuals: Tensor | None = None  # (K,) each class's mean variance off its r directions

    def __len__(self) -> int:
        return 0 if self.labels is None else len(self.labels)

    @property
    def classes(self) -> list[int]:
        return [] if self.labels is None else self.labels.tolist()

    def size_in_floats(self) -> int:
        if not len(self):
            return 0
        return self.means.numel() + self.directions.numel() + self.variances.numel() + self.residuals.numel()

    def store(self, Z: Tensor, y: Tensor) -> None:
        """Replace or add the statistics of every class present in ``y`` from its features ``Z``."""
        for c in torch.unique(y).tolist():
            Zc = Z[y == c].detach()
            mean, directions, variances = principal_subspace(Zc, self.n_directions)
            self._put(c, mean, directions, variances, residual_variance(Zc, self.n_directions))

    def _put(self, c: int, mean: Tensor, directions: Tensor, variances: Tensor, residual: Tensor) -> None:
        if self.labels is None:
            device = mean.device
            self.labels = torch.empty(0, dtype=torch.long, device=device)
            self.means = mean.new_empty(0, mean.numel())
            self.directions = mean.new_empty(0, *directions.shape)
            self.variances = mean.new_empty(0, len(variances))
            self.residuals = mean.new_empty(0)
        hit = (self.labels == c).nonzero()
        if len(hit):
            i = int(hit[0])
            self.means[i], self.directions[i], self.variances[i], self.residuals[i] = mean, directions, variances, residual
            return
        self.labels = torch.cat([self.labels, torch.tensor([c], device=self.labels.device)])
        self.means = torch.cat([self.means, mean[None]])
        self.directions = torch.cat([self.directions, directions[None]])
        self.variances = torch.cat([self.variances, variances[None]])
        self.residuals = torch.cat([self.residuals, residual.reshape(1)])

    def sample(self, per_class: int | None = None, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``per_class`` prototypes (default ``n_prototypes``) of every stored class.

        z = normalize(μ_c + Σ_i σ_{c,i} ξ_i u_{c,i}),  ξ ~ N(0, I_r). Returns (Z (K·m, d), y (K·m,)).
        """
        if not len(self):
            raise RuntimeError("the memory is empty: no class has been stored yet")
        m = self.n_prototypes if per_class is None else per_class
        K, r, d = self.directions.shape
        noise = torch.randn(K, m, r, device=self.means.device, generator=generator)
        offsets = torch.einsum("kmr,krd->kmd", noise * self.variances.sqrt()[:, None, :], self.directions)
        Z = F.normalize(self.means[:, None, :] + offsets, dim=-1).reshape(K * m, d)
        return Z, self.labels.repeat_interleave(m)

    def to(self, device) -> "FeatureMemory":
        for name in ("labels", "means", "directions", "variances", "residuals"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        return self

    def state_dict(self) -> dict:
        return {name: getattr(self, name) for name in ("labels", "means", "directions", "variances", "residuals")}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def map_classes(self, classes: Tensor, W: Tensor) -> None:
        """Move the statistics of ``classes`` by the linear map z ↦ zW. Each class's covariance, as its
        statistics give it (probabilistic PCA), C_c = U_cᵀ diag(σ²_c) U_c + σ²_res,c (I − U_cᵀU_c), becomes
        Wᵀ C_c W, and μ_c ← μ_c W: its top r eigenvectors and eigenvalues become U_c and σ²_c, and the
        mean of the other d − r its σ²_res,c (in float64)."""
        rows = self._rows(classes)
        W64 = W.double().to(self.means.device)
        U, var = self.directions[rows].double(), self.variances[rows].double()
        residual = self.residuals[rows].double()
        d, r = W64.shape[0], U.shape[1]
        off_subspace = torch.eye(d, dtype=torch.float64, device=W64.device) - U.transpose(1, 2) @ U
        C = torch.einsum("kri,kr,krj->kij", U, var, U) + residual[:, None, None] * off_subspace
        eigenvalues, eigenvectors = torch.linalg.eigh(W64.T @ C @ W64)  # ascending
        eigenvalues = eigenvalues.clamp_min(0)
        self.means[rows] = (self.means[rows].double() @ W64).to(self.means.dtype)
        self.directions[rows] = eigenvectors[..., -r:].flip(-1).transpose(1, 2).to(self.directions.dtype)
        self.variances[rows] = eigenvalues[..., -r:].flip(-1).to(self.variances.dtype)
        if r < d:
            self.residuals[rows] = (eigenvalues[..., :-r].sum(-1) / (d - r)).to(self.residuals.dtype)

    def _rows(self, classes: Tensor) -> Tensor:
        """The memory's row of each class in ``classes`` (KeyError if one is not stored)."""
        match = self.labels[None, :] == classes.to(self.labels.device)[:, None]
        if not match.any(1).all():
            raise KeyError(f"classes {classes[~match.any(1)].tolist()} are not in the memory")
        return match.int().argmax(1)


def drift_map(Z_before: Tensor, Z_after: Tensor, ridge: float) -> Tensor:
    """The linear map of feature drift (LDC, Gomez-Villa et al., ECCV 2024, in closed form), fitted on
    rows z_i = f_start(x_i), z'_i = f_end(x_i) (row vectors, z' ≈ z W):

        W = argmin_W ‖Z W − Z'‖²_F + λ ‖W − I‖²_F = (ZᵀZ + λI)⁻¹ (ZᵀZ' + λI),

    λ = ``ridge`` > 0 (the pull toward "no drift", in the units of ZᵀZ: a count of unit-norm rows).
    Solved in float64; returns W (d, d) in ``Z_before``'s dtype."""
    dtype = Z_before.dtype
    Z, Z_new = Z_before.double(), Z_after.double()
    ridge_identity = ridge * torch.eye(Z.shape[1], dtype=torch.float64, device=Z.device)
    return torch.linalg.solve(Z.T @ Z + ridge_identity, Z.T @ Z_new + ridge_identity).to(dtype)
