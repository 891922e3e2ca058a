"""Rate-reduction (MCR²) quantities.

Conventions used throughout:

* Features are **rows**: ``Z`` has shape ``(n, d)``; rows are expected on the unit sphere.
* ``eps2`` is ε², exactly as the official CTRL / i-CTRL code (``EPS``) plugs it in:
  the scale of an ``n``-sample set is ``d / (n · eps2)``.
* Every log-determinant is taken of a ``d × d`` matrix ``I + scale · ZᵀZ`` through a Cholesky
  factor (``logdet = 2 Σ log diag L``), in at least float32 and outside autocast.
"""

from __future__ import annotations

import torch
from torch import Tensor


class NonFiniteRateError(FloatingPointError):
    """A rate term came out NaN or infinite (usually: unnormalised or NaN features)."""


def _rate_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else (half, bfloat16, float32) is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def half_logdet_identity_plus(gram: Tensor, scale: Tensor | float, term: str = "rate") -> Tensor:
    """½ · logdet(I + scale · G) for one ``(d, d)`` or a batch ``(..., d, d)`` of PSD matrices G.

    ``scale`` broadcasts against the batch dimensions. One batched Cholesky, no loop.
    Raises :class:`NonFiniteRateError` naming ``term`` if the result is not finite.
    """
    dtype = _rate_dtype(gram.dtype)
    with torch.autocast(device_type=gram.device.type, enabled=False):
        gram = gram.to(dtype)
        scale = torch.as_tensor(scale, dtype=dtype, device=gram.device)
        d = gram.shape[-1]
        eye = torch.eye(d, dtype=dtype, device=gram.device)
        matrix = eye + scale[..., None, None] * gram
        chol, info = torch.linalg.cholesky_ex(matrix)
        value = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    if not bool(torch.isfinite(value).all()) or bool((info != 0).any()):
        raise NonFiniteRateError(
            f"{term}: log-determinant is not finite; check that features are finite and "
            "L2-normalised (rows on the unit sphere)"
        )
    return value  # ½ · 2 Σ log diag L


def _as_rate_input(Z: Tensor) -> Tensor:
    if Z.ndim != 2:
        raise ValueError(f"features must be a 2-D (n, d) tensor, got shape {tuple(Z.shape)}")
    return Z.to(_rate_dtype(Z.dtype))


def class_grams(Z: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per-class second moments G_j = Z_jᵀ Z_j, shape ``(K, d, d)``, and counts n_j, shape ``(K,)``.

    The rows are sorted by class and each class's block multiplied by itself: n·d² multiply-adds in
    all (a one-hot product over all K ids costs K·n·d², most of it on zeros; with 40 classes it was
    most of an i-CTRL step). An id without rows gets a zero matrix.
    """
    Z = _as_rate_input(Z)
    with torch.autocast(device_type=Z.device.type, enabled=False):
        counts = torch.bincount(y.long(), minlength=num_classes)
        if len(counts) > num_classes:
            raise ValueError(f"a label is {len(counts) - 1}, beyond the {num_classes} class ids")
        blocks = Z[torch.argsort(y, stable=True)].split(counts.tolist())
        grams = torch.stack([block.T @ block for block in blocks])
    return grams, counts.to(Z.dtype)


def _class_rates(grams: Tensor, counts: Tensor, d: int, eps2: float, term: str) -> Tensor:
    """R(Z_j) = ½ logdet(I + d/(n_j ε²) G_j) for each class j; 0 for a class with n_j = 0."""
    scale = d / (counts.clamp_min(1) * eps2)
    return half_logdet_identity_plus(grams, scale, term)


def coding_rate(Z: Tensor, eps2: float) -> Tensor:
    """R(Z) = ½ logdet(I_d + d/(n·ε²) ZᵀZ) for ``Z`` of shape ``(n, d)``; ``eps2`` is ε²."""
    Z = _as_rate_input(Z)
    n, d = Z.shape
    return half_logdet_identity_plus(Z.T @ Z, d / (n * eps2), "coding_rate")


def class_coding_rate(Z: Tensor, y: Tensor, eps2: float, num_classes: int | None = None) -> Tensor:
    """R_c(Z | y) = Σ_j (n_j/n) · ½ logdet(I_d + d/(n_j·ε²) Z_jᵀZ_j).

    A class absent from ``y`` contributes 0. ``num_classes`` defaults to ``max(y) + 1``.
    """
    Z = _as_rate_input(Z)
    n, d = Z.shape
    K = int(y.max()) + 1 if num_classes is None else num_classes
    grams, counts = class_grams(Z, y, K)
    rates = _class_rates(grams, counts, d, eps2, "class_coding_rate")
    return (counts / n * rates).sum()


def rate_reduction(Z: Tensor, y: Tensor, eps2: float, num_classes: int | None = None) -> Tensor:
    """ΔR(Z | y) = R(Z) − R_c(Z | y)  (≥ 0)."""
    return coding_rate(Z, eps2) - class_coding_rate(Z, y, eps2, num_classes)


def pairwise_rate_reduction(Z1: Tensor, Z2: Tensor, eps2: float) -> Tensor:
    """ΔR(Z1, Z2) = R([Z1; Z2]) − ½ (R(Z1) + R(Z2)); R([Z1; Z2]) uses n1 + n2 in its scale.

    Non-negative, and 0 when both sets have the same second moment (e.g. identical sets).
    """
    return coding_rate(torch.cat([Z1, Z2]), eps2) - 0.5 * (coding_rate(Z1, eps2) + coding_rate(Z2, eps2))
